/*
 * check.c: the pre-flight check, run on the source before the first page
 * moves: the guest's facts and the destination's against each other and
 * against a profile, every incompatibility listed with the rule or fact
 * that decided it (docs/profiles.md "The check"). Pure: no I/O, no clock.
 * Entry points: mig__preflight(), mig__verdict_format(), mig__verdict_free().
 */
#include <config.h>

#define MIG_LOG_MODULE "profile"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile-internal.h"


const char *mig__issue_kind_name(enum mig__issue_kind k)
{
    switch (k) {
    case MIG__ISSUE_FACTS:
        return "facts";
    case MIG__ISSUE_CPU_FEATURE:
        return "cpu-feature";
    case MIG__ISSUE_BASELINE:
        return "profile-baseline";
    case MIG__ISSUE_CPU_VENDOR:
        return "cpu-vendor";
    case MIG__ISSUE_XEN_VERSION:
        return "xen-version";
    case MIG__ISSUE_VIRT_CAP:
        return "virt-cap";
    case MIG__ISSUE_TSC_SCALING:
        return "tsc-scaling";
    case MIG__ISSUE_PASSTHROUGH:
        return "passthrough";
    case MIG__ISSUE_NESTED_HVM:
        return "nested-hvm";
    case MIG__ISSUE_POD:
        return "populate-on-demand";
    case MIG__ISSUE_MEMORY:
        return "memory";
    case MIG__ISSUE_BRIDGE:
        return "bridge";
    case MIG__ISSUE_DISK:
        return "disk";
    }
    return "unknown";
}

void mig__verdict_free(struct mig__verdict *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        free(v->issues[i].subject);
        free(v->issues[i].rule);
        free(v->issues[i].message);
    }
    free(v->issues);
    free(v->profile);
    free(v->destination);
    free(v);
}

bool mig__verdict_ok(const struct mig__verdict *v)
{
    return v && v->n_errors == 0;
}

/* Facts come from the peer: keep terminal control characters out of what we
 * print. */
static void sanitize(char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

static int add(struct mig__verdict *v, enum mig__issue_kind kind, enum mig__severity sev,
               const struct mig__cpuid_feat *feat, const char *subject, const char *rule,
               const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static int add(struct mig__verdict *v, enum mig__issue_kind kind, enum mig__severity sev,
               const struct mig__cpuid_feat *feat, const char *subject, const char *rule,
               const char *fmt, ...)
{
    struct mig__issue is = {.kind = kind, .severity = sev, .feat = feat};
    va_list ap;
    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 8;
        struct mig__issue *n = realloc(v->issues, ncap * sizeof(*n));
        if (!n)
            return -MIG_ENOMEM;
        v->issues = n;
        v->cap = ncap;
    }
    va_start(ap, fmt);
    int r = vasprintf(&is.message, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -MIG_ENOMEM;
    is.subject = strdup(subject ? subject : "");
    is.rule = strdup(rule ? rule : "");
    if (!is.subject || !is.rule) {
        free(is.message);
        free(is.subject);
        free(is.rule);
        return -MIG_ENOMEM;
    }
    sanitize(is.message);
    sanitize(is.subject);
    sanitize(is.rule);
    v->issues[v->n++] = is;
    if (sev == MIG__SEV_ERROR)
        v->n_errors++;
    else
        v->n_warnings++;
    return 0;
}

/* ---- CPU features: canonical, sorted name sets -------------------------- */

struct nameset {
    char **v;  /* owned canonical names, sorted */
    size_t n;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void nameset_free(struct nameset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int nameset_build(const struct mig__strv *in, struct nameset *s)
{
    s->n = 0;
    s->v = calloc(in->n ? in->n : 1, sizeof(char *));
    if (!s->v)
        return -MIG_ENOMEM;
    for (size_t i = 0; i < in->n; i++) {
        /* Room for the whole name (no truncation can make two names equal)
         * and for the longest alias target. */
        size_t cap = strlen(in->v[i]) + 32;
        s->v[i] = malloc(cap);
        if (!s->v[i])
            return -MIG_ENOMEM;
        s->n = i + 1;
        mig__cpuid_canon(in->v[i], s->v[i], cap);
    }
    qsort(s->v, s->n, sizeof(char *), cmp_str);
    return 0;
}

static bool nameset_has(const struct nameset *s, const char *canon)
{
    return s->n && bsearch(&canon, s->v, s->n, sizeof(char *), cmp_str) != NULL;
}

static void feat_where(const struct mig__cpuid_feat *f, char *buf, size_t cap)
{
    if (f)
        mig__cpuid_describe(f, buf, cap);
    else
        snprintf(buf, cap, "not in migrate-live's CPUID table");
}

static int check_cpu(struct mig__verdict *v, const struct mig__facts *src,
                     const struct mig__facts *dst, const struct mig__profile *p)
{
    struct nameset gs = {0}, ds = {0};
    char where[96];
    int rc = 0;
    const struct mig__guest_facts *g = &src->guest;

    if (!g->has_cpu_features || !dst->has_cpu_features) {
        rc = add(v, MIG__ISSUE_FACTS, MIG__SEV_WARNING, NULL, "cpu_features",
                 "fact: guest.cpu_features, destination cpu.features",
                 "CPU features not compared: %s",
                 !g->has_cpu_features ? "the source facts list no guest.cpu_features"
                                      : "the destination facts list no cpu.features");
        goto profile;
    }
    if ((rc = nameset_build(&g->cpu_features, &gs)) < 0 ||
        (rc = nameset_build(&dst->cpu_features, &ds)) < 0)
        goto out;
    for (size_t i = 0; i < gs.n; i++) {
        if (i && strcmp(gs.v[i], gs.v[i - 1]) == 0)
            continue;
        if (nameset_has(&ds, gs.v[i]))
            continue;
        int idx = mig__cpuid_lookup(gs.v[i]);
        const struct mig__cpuid_feat *f = idx >= 0 ? mig__cpuid_at((size_t)idx) : NULL;
        feat_where(f, where, sizeof(where));
        rc = add(v, MIG__ISSUE_CPU_FEATURE, MIG__SEV_ERROR, f, gs.v[i],
                 "fact: guest.cpu_features must be a subset of the destination's cpu.features",
                 "the guest uses CPU feature %s (%s), which the destination does not have",
                 gs.v[i], where);
        if (rc < 0)
            goto out;
    }

profile:
    if (!p || !p->has_features)
        goto out;
    /* The profile layer: the guest must stay inside the baseline... */
    if (g->has_cpu_features) {
        if (!gs.v && (rc = nameset_build(&g->cpu_features, &gs)) < 0)
            goto out;
        for (size_t i = 0; i < gs.n; i++) {
            if (i && strcmp(gs.v[i], gs.v[i - 1]) == 0)
                continue;
            int idx = mig__cpuid_lookup(gs.v[i]);
            if (idx < 0 || mig__profile_allows(p, (size_t)idx))
                continue;
            const struct mig__cpuid_feat *f = mig__cpuid_at((size_t)idx);
            char rule[160];
            feat_where(f, where, sizeof(where));
            snprintf(rule, sizeof(rule), "profile %s: cpu.%s", p->name,
                     mig__featset_has(&p->mask, (size_t)idx) ? "mask" : "features");
            rc = add(v, MIG__ISSUE_BASELINE, MIG__SEV_ERROR, f, f->name, rule,
                     "the guest sees CPU feature %s (%s), outside profile %s: boot it with "
                     "the cpuid= from 'xl-migrate-live profile render %s'",
                     f->name, where, p->name, p->name);
            if (rc < 0)
                goto out;
        }
    }
    /* ...and a destination below the baseline is not a member of the pool. */
    if (dst->has_cpu_features) {
        if (!ds.v && (rc = nameset_build(&dst->cpu_features, &ds)) < 0)
            goto out;
        for (size_t i = 0; i < mig__cpuid_count(); i++) {
            const struct mig__cpuid_feat *f = mig__cpuid_at(i);
            if (!mig__featset_has(&p->features, i) || !mig__profile_allows(p, i) ||
                mig__cpuid_is_platform(i) || nameset_has(&ds, f->name))
                continue;
            char rule[160];
            feat_where(f, where, sizeof(where));
            snprintf(rule, sizeof(rule), "profile %s: cpu.features", p->name);
            rc = add(v, MIG__ISSUE_BASELINE, MIG__SEV_WARNING, f, f->name, rule,
                     "the destination lacks CPU feature %s (%s) that profile %s promises to "
                     "guests",
                     f->name, where, p->name);
            if (rc < 0)
                goto out;
        }
    }
out:
    nameset_free(&gs);
    nameset_free(&ds);
    return rc;
}

static int check_vendor(struct mig__verdict *v, const struct mig__facts *src,
                        const struct mig__facts *dst, const struct mig__profile *p)
{
    int rc = 0;
    const char *sv = src->cpu_vendor, *dv = dst->cpu_vendor;
    if (!sv || !dv) {
        bool needed = p && p->vendor != MIG__VENDOR_ANY;
        return add(v, MIG__ISSUE_FACTS, needed ? MIG__SEV_ERROR : MIG__SEV_WARNING, NULL,
                   "cpu.vendor", needed ? "profile: cpu.vendor" : "fact: cpu.vendor",
                   "CPU vendors not compared: the %s facts have no cpu.vendor",
                   !sv ? "source" : "destination");
    }
    enum mig__vendor se = mig__vendor_parse(sv), de = mig__vendor_parse(dv);
    bool differ = se != de || (se == MIG__VENDOR_OTHER && strcmp(sv, dv) != 0);
    if (differ)
        rc = add(v, MIG__ISSUE_CPU_VENDOR, MIG__SEV_ERROR, NULL, dv,
                 "fact: source cpu.vendor must equal destination cpu.vendor",
                 "CPU vendor differs: source %s, destination %s", sv, dv);
    if (rc == 0 && p && p->vendor != MIG__VENDOR_ANY) {
        char rule[160];
        snprintf(rule, sizeof(rule), "profile %s: cpu.vendor", p->name);
        if (de != p->vendor)
            rc = add(v, MIG__ISSUE_CPU_VENDOR, MIG__SEV_ERROR, NULL, dv, rule,
                     "the destination's CPU vendor %s is not the profile's %s", dv,
                     mig__vendor_name(p->vendor));
        if (rc == 0 && se != p->vendor)
            rc = add(v, MIG__ISSUE_CPU_VENDOR, MIG__SEV_ERROR, NULL, sv, rule,
                     "the source's CPU vendor %s is not the profile's %s", sv,
                     mig__vendor_name(p->vendor));
    }
    return rc;
}

static void version_str(const struct mig__version *x, char *buf, size_t cap)
{
    snprintf(buf, cap, "%u.%u.%u", x->v[0], x->v[1], x->v[2]);
}

static int check_one_xen(struct mig__verdict *v, const char *side, const char *ver,
                         const struct mig__profile *p)
{
    struct mig__version x;
    char rule[160], lim[32];
    if (!ver || !mig__version_parse(ver, &x)) {
        snprintf(rule, sizeof(rule), "profile %s: xen.%s", p->name,
                 p->has_xen_min ? "min_version" : "max_version");
        return add(v, MIG__ISSUE_FACTS, MIG__SEV_ERROR, NULL, "xen_version", rule,
                   "the %s facts %s, needed by the profile's Xen version range", side,
                   ver ? "have an unreadable xen_version" : "have no xen_version");
    }
    if (p->has_xen_min && mig__version_cmp(&x, &p->xen_min) < 0) {
        version_str(&p->xen_min, lim, sizeof(lim));
        snprintf(rule, sizeof(rule), "profile %s: xen.min_version", p->name);
        return add(v, MIG__ISSUE_XEN_VERSION, MIG__SEV_ERROR, NULL, ver, rule,
                   "the %s runs Xen %s, older than the profile's minimum %s", side, ver, lim);
    }
    if (p->has_xen_max && mig__version_cmp(&x, &p->xen_max) > 0) {
        version_str(&p->xen_max, lim, sizeof(lim));
        snprintf(rule, sizeof(rule), "profile %s: xen.max_version", p->name);
        return add(v, MIG__ISSUE_XEN_VERSION, MIG__SEV_ERROR, NULL, ver, rule,
                   "the %s runs Xen %s, newer than the profile's maximum %s", side, ver, lim);
    }
    return 0;
}

static int check_xen(struct mig__verdict *v, const struct mig__facts *src,
                     const struct mig__facts *dst, const struct mig__profile *p)
{
    int rc;
    struct mig__version s, d;
    if (p && (p->has_xen_min || p->has_xen_max)) {
        if ((rc = check_one_xen(v, "destination", dst->xen_version, p)) < 0 ||
            (rc = check_one_xen(v, "source", src->xen_version, p)) < 0)
            return rc;
    }
    /* Xen streams go to the same or a newer Xen only. */
    if (src->xen_version && dst->xen_version && mig__version_parse(src->xen_version, &s) &&
        mig__version_parse(dst->xen_version, &d) && mig__version_cmp(&d, &s) < 0)
        return add(v, MIG__ISSUE_XEN_VERSION, MIG__SEV_ERROR, NULL, dst->xen_version,
                   "fact: destination xen_version must not be older than the source's",
                   "the destination runs Xen %s, older than the source's %s: Xen migrates "
                   "to the same or a newer version only",
                   dst->xen_version, src->xen_version);
    return 0;
}

static int check_host_caps(struct mig__verdict *v, const struct mig__facts *dst,
                           const struct mig__profile *p)
{
    int rc = 0;
    char rule[160];
    if (!p)
        return 0;
    snprintf(rule, sizeof(rule), "profile %s: virt_caps", p->name);
    for (size_t i = 0; i < p->n_virt_caps && rc == 0; i++) {
        if (!dst->has_virt_caps)
            rc = add(v, MIG__ISSUE_FACTS, MIG__SEV_ERROR, NULL, "virt_caps", rule,
                     "the destination facts have no virt_caps, which the profile requires");
        else if (!mig__strv_has(&dst->virt_caps, p->virt_caps[i]))
            rc = add(v, MIG__ISSUE_VIRT_CAP, MIG__SEV_ERROR, NULL, p->virt_caps[i], rule,
                     "the destination lacks virtualization capability '%s' (xl info "
                     "virt_caps)",
                     p->virt_caps[i]);
        if (!dst->has_virt_caps)
            break;
    }
    if (rc == 0 && p->require_tsc_scaling && !(dst->has_tsc_scaling && dst->tsc_scaling)) {
        snprintf(rule, sizeof(rule), "profile %s: tsc_scaling: required", p->name);
        rc = add(v, dst->has_tsc_scaling ? MIG__ISSUE_TSC_SCALING : MIG__ISSUE_FACTS,
                 MIG__SEV_ERROR, NULL, "tsc_scaling", rule,
                 dst->has_tsc_scaling ? "the destination cannot scale the guest's TSC"
                                      : "the destination facts do not say whether it can "
                                        "scale the TSC (tsc_scaling)");
    }
    return rc;
}

static int check_guest_flags(struct mig__verdict *v, const struct mig__guest_facts *g,
                             const struct mig__profile *p)
{
    int rc = 0;
    char rule[160];
    const char *who = p ? p->name : NULL;
    struct {
        bool set, forbidden;
        enum mig__issue_kind kind;
        const char *key, *what;
    } flags[] = {
        {g->passthrough, !p || p->forbid_passthrough, MIG__ISSUE_PASSTHROUGH, "passthrough",
         "has a PCI device passed through, which cannot be migrated"},
        {g->nested_hvm, !p || p->forbid_nested_hvm, MIG__ISSUE_NESTED_HVM, "nested_hvm",
         "runs nested HVM, whose state Xen does not migrate"},
        {g->pod, !p || p->forbid_pod, MIG__ISSUE_POD, "pod",
         "uses populate-on-demand memory (memory < maxmem at boot)"},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && rc == 0; i++) {
        if (!flags[i].set || !flags[i].forbidden)
            continue;
        if (who)
            snprintf(rule, sizeof(rule), "profile %s: forbid.%s", who, flags[i].key);
        else
            snprintf(rule, sizeof(rule), "default: forbid.%s (no profile)", flags[i].key);
        rc = add(v, flags[i].kind, MIG__SEV_ERROR, NULL, flags[i].key, rule, "the guest %s",
                 flags[i].what);
    }
    return rc;
}

static int check_memory(struct mig__verdict *v, const struct mig__guest_facts *g,
                        const struct mig__facts *dst)
{
    if (!g->has_mem && !g->has_max_mem)
        return add(v, MIG__ISSUE_FACTS, MIG__SEV_WARNING, NULL, "mem_bytes",
                   "fact: guest.mem_bytes", "memory not compared: the guest's size is unknown");
    if (!dst->has_free_memory)
        return add(v, MIG__ISSUE_FACTS, MIG__SEV_WARNING, NULL, "free_memory_bytes",
                   "fact: destination free_memory_bytes",
                   "memory not compared: the destination facts have no free_memory_bytes");
    uint64_t need = g->has_mem ? g->mem_bytes : g->max_mem_bytes;
    char subj[32];
    snprintf(subj, sizeof(subj), "%llu", (unsigned long long)need);
    if (dst->free_memory_bytes < need)
        return add(v, MIG__ISSUE_MEMORY, MIG__SEV_ERROR, NULL, subj,
                   "fact: destination free_memory_bytes >= guest.mem_bytes",
                   "the guest needs %llu MiB, the destination has %llu MiB free",
                   (unsigned long long)(need >> 20),
                   (unsigned long long)(dst->free_memory_bytes >> 20));
    if (g->has_max_mem && g->max_mem_bytes > dst->free_memory_bytes)
        return add(v, MIG__ISSUE_MEMORY, MIG__SEV_WARNING, NULL, subj,
                   "fact: destination free_memory_bytes >= guest.max_mem_bytes",
                   "the guest may balloon up to %llu MiB; the destination has %llu MiB free",
                   (unsigned long long)(g->max_mem_bytes >> 20),
                   (unsigned long long)(dst->free_memory_bytes >> 20));
    return 0;
}

static const char *mapped(const struct mig__map_pair *m, size_t n, const char *x)
{
    for (size_t i = 0; i < n; i++)
        if (m[i].from && m[i].to && strcmp(m[i].from, x) == 0)
            return m[i].to;
    return x;
}

/* A disk target exists if it is one of the storage paths or lies below one
 * (at a '/' boundary). */
static bool storage_has(const struct mig__strv *paths, const char *target)
{
    for (size_t i = 0; i < paths->n; i++) {
        const char *p = paths->v[i];
        size_t l = strlen(p);
        while (l > 1 && p[l - 1] == '/')
            l--;
        if (strncmp(p, target, l) == 0 &&
            (target[l] == '\0' || target[l] == '/' || (l == 1 && p[0] == '/')))
            return true;
    }
    return false;
}

static int check_devices(struct mig__verdict *v, const struct mig__guest_facts *g,
                         const struct mig__facts *dst, const struct mig__preflight_maps *maps)
{
    int rc = 0;
    for (size_t i = 0; i < g->bridges.n && rc == 0; i++) {
        const char *b = maps ? mapped(maps->bridges, maps->n_bridges, g->bridges.v[i])
                             : g->bridges.v[i];
        if (!dst->has_bridges) {
            rc = add(v, MIG__ISSUE_FACTS, MIG__SEV_ERROR, NULL, "bridges",
                     "fact: destination bridges",
                     "the guest uses bridges but the destination facts list none");
            break;
        }
        if (!mig__strv_has(&dst->bridges, b))
            rc = add(v, MIG__ISSUE_BRIDGE, MIG__SEV_ERROR, NULL, b,
                     "fact: every guest bridge (after the destination's bridge map) must exist on the destination",
                     b == g->bridges.v[i]
                         ? "the destination has no bridge %s (the guest's network uses it)"
                         : "the destination has no bridge %s (mapped from %s)",
                     b, g->bridges.v[i]);
    }
    for (size_t i = 0; i < g->disks.n && rc == 0; i++) {
        const char *d =
            maps ? mapped(maps->disks, maps->n_disks, g->disks.v[i]) : g->disks.v[i];
        if (!dst->has_storage_paths) {
            rc = add(v, MIG__ISSUE_FACTS, MIG__SEV_ERROR, NULL, "storage_paths",
                     "fact: destination storage_paths",
                     "the guest has disks but the destination facts list no storage_paths");
            break;
        }
        if (!storage_has(&dst->storage_paths, d))
            rc = add(v, MIG__ISSUE_DISK, MIG__SEV_ERROR, NULL, d,
                     "fact: every disk target (after --disk-map) must exist in the "
                     "destination's storage_paths",
                     d == g->disks.v[i] ? "the disk target %s does not exist on the destination"
                                        : "the disk target %s (mapped from %s) does not exist "
                                          "on the destination",
                     d, g->disks.v[i]);
    }
    return rc;
}

int mig__preflight(struct mig_ctx *ctx, const char *src_facts_json, const char *dst_facts_json,
                   const struct mig__profile *profile, const struct mig__preflight_maps *maps,
                   struct mig__verdict **v_out)
{
    struct mig__facts *src = NULL, *dst = NULL;
    struct mig__verdict *v = NULL;
    struct mig__perr err = {{0}};
    int rc;

    if (!v_out)
        return -MIG_EINVAL;
    *v_out = NULL;
    if (!src_facts_json || !dst_facts_json)
        return -MIG_EINVAL;
    v = calloc(1, sizeof(*v));
    if (!v)
        return -MIG_ENOMEM;
    if (profile && !(v->profile = strdup(profile->name))) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    rc = mig__facts_parse(src_facts_json, strlen(src_facts_json), "source facts", &src, &err);
    if (rc == 0)
        rc = mig__facts_parse(dst_facts_json, strlen(dst_facts_json), "destination facts", &dst,
                              &err);
    if (rc == -MIG_ENOMEM)
        goto out;
    if (rc < 0) {
        rc = add(v, MIG__ISSUE_FACTS, MIG__SEV_ERROR, NULL, "facts", "facts must parse",
                 "unreadable facts: %s", err.msg);
        if (rc == 0)
            rc = -MIG_EPARSE;
        goto out;
    }
    if (dst->hostname && !(v->destination = strdup(dst->hostname))) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    sanitize(v->destination);
    if (!src->has_guest) {
        rc = add(v, MIG__ISSUE_FACTS, MIG__SEV_WARNING, NULL, "guest", "fact: guest",
                 "the source facts describe no guest: guest checks skipped");
        if (rc < 0)
            goto out;
    }
    if ((rc = check_vendor(v, src, dst, profile)) < 0 ||
        (rc = check_xen(v, src, dst, profile)) < 0 ||
        (rc = check_host_caps(v, dst, profile)) < 0)
        goto out;
    /* Without maps from the caller, the destination's own (its facts say how
     * it maps disks and bridges): "SRC=DST" split at the first '='. */
    struct mig__map_pair dpairs[64], npairs[64];
    char *dcopy[64] = {0}, *ncopy[64] = {0};
    struct mig__preflight_maps own = {.disks = dpairs, .bridges = npairs};
    if (!maps && (dst->disk_map.n || dst->net_map.n)) {
        for (size_t i = 0; i < dst->disk_map.n && own.n_disks < 64; i++) {
            char *c = dcopy[own.n_disks] = strdup(dst->disk_map.v[i]);
            char *eq = c ? strchr(c, '=') : NULL;
            if (!eq)
                continue;
            *eq = 0;
            dpairs[own.n_disks++] = (struct mig__map_pair){c, eq + 1};
        }
        for (size_t i = 0; i < dst->net_map.n && own.n_bridges < 64; i++) {
            char *c = ncopy[own.n_bridges] = strdup(dst->net_map.v[i]);
            char *eq = c ? strchr(c, '=') : NULL;
            if (!eq)
                continue;
            *eq = 0;
            npairs[own.n_bridges++] = (struct mig__map_pair){c, eq + 1};
        }
        maps = &own;
    }
    if (src->has_guest) {
        if ((rc = check_cpu(v, src, dst, profile)) < 0 ||
            (rc = check_guest_flags(v, &src->guest, profile)) < 0 ||
            (rc = check_memory(v, &src->guest, dst)) < 0 ||
            (rc = check_devices(v, &src->guest, dst, maps)) < 0) {
            for (size_t i = 0; i < 64; i++) {
                free(dcopy[i]);
                free(ncopy[i]);
            }
            goto out;
        }
    }
    for (size_t i = 0; i < 64; i++) {
        free(dcopy[i]);
        free(ncopy[i]);
    }
    MIG_LOG(ctx, INFO, "pre-flight%s%s: %u error(s), %u warning(s)",
            profile ? " with profile " : "", profile ? profile->name : "", v->n_errors,
            v->n_warnings);
    rc = v->n_errors ? -MIG_EINCOMPAT : 0;
out:
    mig__facts_free(src);
    mig__facts_free(dst);
    if (rc == -MIG_ENOMEM || rc == -MIG_EINVAL) {
        mig__verdict_free(v);
        return rc;
    }
    *v_out = v;
    return rc;
}

/* ---- rendering ---------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void format_text(const struct mig__verdict *v, FILE *f)
{
    char where[96];
    fprintf(f, "pre-flight%s%s%s%s: %s (%u error%s, %u warning%s)\n",
            v->destination ? " to " : "", v->destination ? v->destination : "",
            v->profile ? ", profile " : "", v->profile ? v->profile : "",
            v->n_errors ? "INCOMPATIBLE" : "compatible", v->n_errors, v->n_errors == 1 ? "" : "s",
            v->n_warnings, v->n_warnings == 1 ? "" : "s");
    for (int pass = 0; pass < 2; pass++) {
        enum mig__severity want = pass == 0 ? MIG__SEV_ERROR : MIG__SEV_WARNING;
        for (size_t i = 0; i < v->n; i++) {
            const struct mig__issue *is = &v->issues[i];
            if (is->severity != want)
                continue;
            fprintf(f, "  %-7s [%s] %s\n", want == MIG__SEV_ERROR ? "error" : "warning",
                    mig__issue_kind_name(is->kind), is->message);
            if (is->feat) {
                mig__cpuid_describe(is->feat, where, sizeof(where));
                fprintf(f, "          cpuid: %s (%s)\n", is->feat->name, where);
            }
            fprintf(f, "          rule: %s\n", is->rule);
        }
    }
}

static void format_json(const struct mig__verdict *v, FILE *f)
{
    fprintf(f, "{\"compatible\":%s,\"destination\":", v->n_errors ? "false" : "true");
    if (v->destination)
        json_str(f, v->destination);
    else
        fputs("null", f);
    fputs(",\"profile\":", f);
    if (v->profile)
        json_str(f, v->profile);
    else
        fputs("null", f);
    fprintf(f, ",\"errors\":%u,\"warnings\":%u,\"issues\":[", v->n_errors, v->n_warnings);
    for (size_t i = 0; i < v->n; i++) {
        const struct mig__issue *is = &v->issues[i];
        fprintf(f, "%s{\"severity\":\"%s\",\"kind\":\"%s\",\"subject\":", i ? "," : "",
                is->severity == MIG__SEV_ERROR ? "error" : "warning",
                mig__issue_kind_name(is->kind));
        json_str(f, is->subject);
        fputs(",\"cpuid\":", f);
        if (is->feat) {
            fprintf(f, "{\"feature\":\"%s\",\"leaf\":%u,\"subleaf\":", is->feat->name,
                    is->feat->leaf);
            if (is->feat->subleaf == MIG__CPUID_NO_SUBLEAF)
                fputs("null", f);
            else
                fprintf(f, "%u", is->feat->subleaf);
            fprintf(f, ",\"register\":\"%s\",\"bit\":%u}", mig__cpuid_reg_name(is->feat->reg),
                    is->feat->bit);
        } else {
            fputs("null", f);
        }
        fputs(",\"rule\":", f);
        json_str(f, is->rule);
        fputs(",\"message\":", f);
        json_str(f, is->message);
        fputc('}', f);
    }
    fputs("]}", f);
}

int mig__verdict_format(const struct mig__verdict *v, enum mig__verdict_fmt fmt, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    if (!v || !out)
        return -MIG_EINVAL;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -MIG_ENOMEM;
    if (fmt == MIG__VERDICT_JSON)
        format_json(v, f);
    else
        format_text(v, f);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return -MIG_ENOMEM;
    }
    *out = buf;
    return 0;
}
