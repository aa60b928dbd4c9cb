/*
 * profile.c: compatibility profiles (docs/profiles.md): YAML -> struct
 * mig__profile with file:line:column errors, "did you mean" for unknown
 * keys and feature names, type and range checks; name -> file lookup; and
 * the xl.cfg cpuid= string that boots guests inside a profile.
 * Entry points: mig__profile_parse(), mig__profile_load_file(),
 * mig__profile_resolve(), mig__profile_render_cpuid().
 */
#include <config.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "profile-internal.h"

/* ---- small shared helpers ---------------------------------------------- */

const char *mig__vendor_name(enum mig__vendor v)
{
    switch (v) {
    case MIG__VENDOR_ANY:
        return "any";
    case MIG__VENDOR_INTEL:
        return "intel";
    case MIG__VENDOR_AMD:
        return "amd";
    case MIG__VENDOR_HYGON:
        return "hygon";
    default:
        return "other";
    }
}

enum mig__vendor mig__vendor_parse(const char *s)
{
    if (!strcasecmp(s, "intel") || !strcmp(s, "GenuineIntel"))
        return MIG__VENDOR_INTEL;
    if (!strcasecmp(s, "amd") || !strcmp(s, "AuthenticAMD"))
        return MIG__VENDOR_AMD;
    if (!strcasecmp(s, "hygon") || !strcmp(s, "HygonGenuine"))
        return MIG__VENDOR_HYGON;
    if (!strcasecmp(s, "any"))
        return MIG__VENDOR_ANY;
    return MIG__VENDOR_OTHER;
}

bool mig__version_parse(const char *s, struct mig__version *v)
{
    memset(v, 0, sizeof(*v));
    for (int i = 0; i < 3; i++) {
        if (!isdigit((unsigned char)*s))
            return false;
        unsigned long x = 0;
        while (isdigit((unsigned char)*s)) {
            x = x * 10 + (unsigned)(*s - '0');
            if (x > 9999)
                return false;
            s++;
        }
        v->v[i] = (unsigned)x;
        if (*s != '.')
            return true; /* "4.17", "4.17.2-pre", "4.17.0" */
        s++;
    }
    return true;
}

int mig__version_cmp(const struct mig__version *a, const struct mig__version *b)
{
    for (int i = 0; i < 3; i++)
        if (a->v[i] != b->v[i])
            return a->v[i] < b->v[i] ? -1 : 1;
    return 0;
}

/* ---- the walker: one schema check at a time ----------------------------- */

struct walker {
    const char *file;
    struct mig__perr *err;
};

static const char *type_name(const struct mig__ynode *n)
{
    switch (n->type) {
    case MIG__Y_MAP:
        return "a mapping";
    case MIG__Y_SEQ:
        return "a list";
    default:
        return n->quoted ? "a string" : "a scalar";
    }
}

static int fail(struct walker *w, const struct mig__ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct walker *w, const struct mig__ynode *n, const char *fmt, ...)
{
    char msg[MIG__PROF_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mig__perr_set(w->err, w->file, n->line, n->col, "%s", msg);
    return -MIG_EPARSE;
}

static int want(struct walker *w, const struct mig__ynode *n, enum mig__ynode_type t,
                const char *what)
{
    if (n->type == t)
        return 0;
    const char *exp = t == MIG__Y_MAP ? "a mapping" : t == MIG__Y_SEQ ? "a list" : "a value";
    return fail(w, n, "%s must be %s, not %s", what, exp, type_name(n));
}

/* Every key of 'map' must be in 'allowed'; else an error with a hint. */
static int check_keys(struct walker *w, const struct mig__ynode *map, const char *where,
                      const char *const *allowed)
{
    for (size_t i = 0; i < map->n; i++) {
        const struct mig__ynode *k = map->kids[2 * i];
        bool ok = false;
        for (size_t a = 0; allowed[a]; a++)
            if (strcmp(k->str, allowed[a]) == 0)
                ok = true;
        if (ok)
            continue;
        const char *hint = mig__closest(k->str, allowed);
        if (hint)
            return fail(w, k, "unknown key '%.64s' in %s (did you mean '%s'?)", k->str, where,
                        hint);
        char list[256] = "";
        for (size_t a = 0; allowed[a]; a++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof(list) - l, "%s%s", a ? ", " : "", allowed[a]);
        }
        return fail(w, k, "unknown key '%.64s' in %s (expected one of: %s)", k->str, where,
                    list);
    }
    return 0;
}

static int get_string(struct walker *w, const struct mig__ynode *n, const char *what,
                      char **out)
{
    int rc = want(w, n, MIG__Y_SCALAR, what);
    if (rc < 0)
        return rc;
    if (!n->str[0])
        return fail(w, n, "%s must not be empty", what);
    char *s = strdup(n->str);
    if (!s)
        return -MIG_ENOMEM;
    free(*out);
    *out = s;
    return 0;
}

static int get_bool(struct walker *w, const struct mig__ynode *n, const char *what, bool *out)
{
    int rc = want(w, n, MIG__Y_SCALAR, what);
    if (rc < 0)
        return rc;
    if (!n->quoted && strcmp(n->str, "true") == 0)
        *out = true;
    else if (!n->quoted && strcmp(n->str, "false") == 0)
        *out = false;
    else
        return fail(w, n, "%s must be true or false, not '%.64s'", what, n->str);
    return 0;
}

static int get_version(struct walker *w, const struct mig__ynode *n, const char *what,
                       struct mig__version *v)
{
    int rc = want(w, n, MIG__Y_SCALAR, what);
    if (rc < 0)
        return rc;
    /* Strict here (a profile is ours): MAJOR.MINOR[.PATCH] and nothing else. */
    const char *p = n->str;
    int dots = 0;
    bool digit = false;
    for (; *p; p++) {
        if (isdigit((unsigned char)*p)) {
            digit = true;
        } else if (*p == '.' && digit && dots < 2) {
            dots++;
            digit = false;
        } else {
            break;
        }
    }
    if (*p || !digit || dots < 1 || !mig__version_parse(n->str, v))
        return fail(w, n, "%s must be a Xen version like \"4.17\" or \"4.17.2\", not '%.64s'",
                    what, n->str);
    return 0;
}

/* A list of feature names into a set; unknown names get a hint. */
static int get_features(struct walker *w, const struct mig__ynode *n, const char *what,
                        struct mig__featset *set)
{
    int rc = want(w, n, MIG__Y_SEQ, what);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n->n; i++) {
        const struct mig__ynode *it = n->kids[i];
        if (it->type != MIG__Y_SCALAR)
            return fail(w, it, "%s: each item must be a feature name, not %s", what,
                        type_name(it));
        int idx = mig__cpuid_lookup(it->str);
        if (idx < 0) {
            const char *hint = mig__cpuid_closest(it->str);
            if (hint)
                return fail(w, it, "%s: unknown CPU feature '%.64s' (did you mean '%s'?)",
                            what, it->str, hint);
            return fail(w, it,
                        "%s: unknown CPU feature '%.64s' (names as in xen-cpuid and "
                        "cpufeatureset.h)",
                        what, it->str);
        }
        if (mig__featset_has(set, (size_t)idx))
            return fail(w, it, "%s: feature '%.64s' is listed twice", what, it->str);
        mig__featset_add(set, (size_t)idx);
    }
    return 0;
}

static const char *const virt_cap_names[] = {
    "pv", "hvm", "hvm_directio", "pv_directio", "hap", "shadow", "iommu_hap_pt_share",
    "vmtrace", "vpmu", "gnttab-v1", "gnttab-v2", NULL,
};

static int parse_cpu(struct walker *w, const struct mig__ynode *cpu, struct mig__profile *p)
{
    static const char *const keys[] = {"vendor", "features", "mask", NULL};
    int rc = want(w, cpu, MIG__Y_MAP, "cpu");
    if (rc == 0)
        rc = check_keys(w, cpu, "cpu", keys);
    if (rc < 0)
        return rc;
    const struct mig__ynode *n = mig__ynode_get(cpu, "vendor");
    if (n) {
        rc = want(w, n, MIG__Y_SCALAR, "cpu.vendor");
        if (rc < 0)
            return rc;
        p->vendor = mig__vendor_parse(n->str);
        if (p->vendor == MIG__VENDOR_OTHER)
            return fail(w, n, "cpu.vendor must be intel, amd, hygon or any, not '%.64s'",
                        n->str);
    }
    n = mig__ynode_get(cpu, "features");
    if (!n)
        return fail(w, cpu, "cpu needs 'features': the CPU features a guest may see");
    rc = get_features(w, n, "cpu.features", &p->features);
    if (rc < 0)
        return rc;
    p->has_features = true;
    n = mig__ynode_get(cpu, "mask");
    if (n)
        rc = get_features(w, n, "cpu.mask", &p->mask);
    return rc;
}

static int parse_xen(struct walker *w, const struct mig__ynode *xen, struct mig__profile *p)
{
    static const char *const keys[] = {"min_version", "max_version", NULL};
    int rc = want(w, xen, MIG__Y_MAP, "xen");
    if (rc == 0)
        rc = check_keys(w, xen, "xen", keys);
    if (rc < 0)
        return rc;
    const struct mig__ynode *mn = mig__ynode_get(xen, "min_version");
    const struct mig__ynode *mx = mig__ynode_get(xen, "max_version");
    if (mn) {
        rc = get_version(w, mn, "xen.min_version", &p->xen_min);
        if (rc < 0)
            return rc;
        p->has_xen_min = true;
    }
    if (mx) {
        rc = get_version(w, mx, "xen.max_version", &p->xen_max);
        if (rc < 0)
            return rc;
        p->has_xen_max = true;
    }
    if (mn && mx && mig__version_cmp(&p->xen_min, &p->xen_max) > 0)
        return fail(w, mx, "xen.max_version %s is older than xen.min_version %s", mx->str,
                    mn->str);
    return 0;
}

static int parse_virt_caps(struct walker *w, const struct mig__ynode *n, struct mig__profile *p)
{
    int rc = want(w, n, MIG__Y_SEQ, "virt_caps");
    if (rc < 0)
        return rc;
    if (n->n > MIG__MAX_VIRT_CAPS)
        return fail(w, n, "virt_caps: more than %u entries", MIG__MAX_VIRT_CAPS);
    for (size_t i = 0; i < n->n; i++) {
        const struct mig__ynode *it = n->kids[i];
        if (it->type != MIG__Y_SCALAR)
            return fail(w, it, "virt_caps: each item must be a capability name, not %s",
                        type_name(it));
        bool known = false;
        for (size_t k = 0; virt_cap_names[k]; k++)
            if (strcmp(it->str, virt_cap_names[k]) == 0)
                known = true;
        if (!known) {
            const char *hint = mig__closest(it->str, virt_cap_names);
            if (hint)
                return fail(w, it, "virt_caps: unknown capability '%.64s' (did you mean '%s'?)",
                            it->str, hint);
            return fail(w, it, "virt_caps: unknown capability '%.64s' (xl info virt_caps names)",
                        it->str);
        }
        for (size_t k = 0; k < p->n_virt_caps; k++)
            if (strcmp(p->virt_caps[k], it->str) == 0)
                return fail(w, it, "virt_caps: '%.64s' is listed twice", it->str);
        p->virt_caps[p->n_virt_caps] = strdup(it->str);
        if (!p->virt_caps[p->n_virt_caps])
            return -MIG_ENOMEM;
        p->n_virt_caps++;
    }
    return 0;
}

static int parse_forbid(struct walker *w, const struct mig__ynode *f, struct mig__profile *p)
{
    static const char *const keys[] = {"passthrough", "nested_hvm", "pod", NULL};
    int rc = want(w, f, MIG__Y_MAP, "forbid");
    if (rc == 0)
        rc = check_keys(w, f, "forbid", keys);
    if (rc < 0)
        return rc;
    const struct mig__ynode *n;
    if ((n = mig__ynode_get(f, "passthrough")) &&
        (rc = get_bool(w, n, "forbid.passthrough", &p->forbid_passthrough)) < 0)
        return rc;
    if ((n = mig__ynode_get(f, "nested_hvm")) &&
        (rc = get_bool(w, n, "forbid.nested_hvm", &p->forbid_nested_hvm)) < 0)
        return rc;
    if ((n = mig__ynode_get(f, "pod")) && (rc = get_bool(w, n, "forbid.pod", &p->forbid_pod)) < 0)
        return rc;
    return 0;
}

static int parse_root(struct walker *w, const struct mig__ynode *root, struct mig__profile *p)
{
    static const char *const keys[] = {"name", "description", "cpu", "xen",
                                       "virt_caps", "tsc_scaling", "forbid", NULL};
    int rc = want(w, root, MIG__Y_MAP, "a profile");
    if (rc == 0)
        rc = check_keys(w, root, "the profile", keys);
    if (rc < 0)
        return rc;
    const struct mig__ynode *n = mig__ynode_get(root, "name");
    if (!n)
        return fail(w, root, "the profile needs a 'name'");
    rc = get_string(w, n, "name", &p->name);
    if (rc < 0)
        return rc;
    for (const char *c = p->name; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
            return fail(w, n, "name may hold letters, digits, '-', '_' and '.' only");
    if ((n = mig__ynode_get(root, "description")) &&
        (rc = get_string(w, n, "description", &p->description)) < 0)
        return rc;
    n = mig__ynode_get(root, "cpu");
    if (!n)
        return fail(w, root, "the profile needs a 'cpu' section (vendor, features)");
    if ((rc = parse_cpu(w, n, p)) < 0)
        return rc;
    if ((n = mig__ynode_get(root, "xen")) && (rc = parse_xen(w, n, p)) < 0)
        return rc;
    if ((n = mig__ynode_get(root, "virt_caps")) && (rc = parse_virt_caps(w, n, p)) < 0)
        return rc;
    if ((n = mig__ynode_get(root, "tsc_scaling"))) {
        if ((rc = want(w, n, MIG__Y_SCALAR, "tsc_scaling")) < 0)
            return rc;
        if (strcmp(n->str, "required") == 0)
            p->require_tsc_scaling = true;
        else if (strcmp(n->str, "optional") == 0)
            p->require_tsc_scaling = false;
        else
            return fail(w, n, "tsc_scaling must be 'required' or 'optional', not '%.64s'",
                        n->str);
    }
    if ((n = mig__ynode_get(root, "forbid")) && (rc = parse_forbid(w, n, p)) < 0)
        return rc;
    return 0;
}

void mig__profile_free(struct mig__profile *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_virt_caps; i++)
        free(p->virt_caps[i]);
    free(p->name);
    free(p->description);
    free(p->path);
    free(p);
}

int mig__profile_parse(const char *buf, size_t len, const char *name, struct mig__profile **p_out,
                       struct mig__perr *err)
{
    struct mig__ynode *root = NULL;
    struct mig__profile *p = NULL;
    struct walker w = {.file = name, .err = err};
    int rc;

    *p_out = NULL;
    rc = mig__yaml_parse(buf, len, name, &root, err);
    if (rc < 0)
        goto out;
    p = calloc(1, sizeof(*p));
    if (!p) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    p->forbid_passthrough = p->forbid_nested_hvm = p->forbid_pod = true;
    p->path = strdup(name ? name : "<input>");
    if (!p->path) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    rc = parse_root(&w, root, p);
    if (rc < 0)
        goto out;
    *p_out = p;
    p = NULL;
out:
    if (rc == -MIG_ENOMEM && err)
        mig__perr_set(err, name, 0, 0, "out of memory");
    mig__profile_free(p);
    mig__ynode_free(root);
    return rc;
}

int mig__profile_load_file(const char *path, struct mig__profile **p_out, struct mig__perr *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = mig__read_file_capped(path, MIG__PROF_MAX_BYTES, &buf, &len, err);
    if (rc == 0)
        rc = mig__profile_parse(buf, len, path, p_out, err);
    free(buf);
    return rc;
}

int mig__profile_resolve(const char *name_or_path, char **path_out)
{
    size_t l = strlen(name_or_path);
    bool is_path = strchr(name_or_path, '/') || (l > 5 && !strcmp(name_or_path + l - 5, ".yaml")) ||
                   (l > 4 && !strcmp(name_or_path + l - 4, ".yml"));
    char *path = NULL;
    *path_out = NULL;
    if (!l)
        return -MIG_EINVAL;
    if (is_path) {
        path = strdup(name_or_path);
    } else {
        for (const char *c = name_or_path; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
                return -MIG_EINVAL;
        const char *dir = getenv("MIG_PROFILE_DIR");
        int n;
        if (dir && *dir)
            n = asprintf(&path, "%s/configs/profiles/%s.yaml", dir, name_or_path);
        else
            n = asprintf(&path, "/etc/migrate-live/profiles/%s.yaml", name_or_path);
        if (n < 0)
            path = NULL;
    }
    if (!path)
        return -MIG_ENOMEM;
    *path_out = path;
    return 0;
}

bool mig__profile_allows(const struct mig__profile *p, size_t i)
{
    if (mig__featset_has(&p->mask, i))
        return false;
    if (mig__cpuid_is_platform(i))
        return true;
    return !p->has_features || mig__featset_has(&p->features, i);
}

int mig__profile_render_cpuid(const struct mig__profile *p, const char *xen_version, char **out,
                              char **skipped_out)
{
    char *buf = NULL, *sk = NULL;
    size_t len = 0, sklen = 0;
    struct mig__version v, v418 = {{4, 18, 0}};
    /* Xen 4.18 made libxl take every name xen-cpuid prints; before, only
     * its own table's (the default: Debian 12 ships 4.17). */
    bool all_names = xen_version && mig__version_parse(xen_version, &v) &&
                     mig__version_cmp(&v, &v418) >= 0;
    FILE *f = open_memstream(&buf, &len);
    FILE *s = skipped_out ? open_memstream(&sk, &sklen) : NULL;
    int rc = 0;

    *out = NULL;
    if (skipped_out)
        *skipped_out = NULL;
    if (!f || (skipped_out && !s)) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    /* Start from the host's policy (xl's default), then switch off every
     * feature the profile does not let a guest see. */
    fputs("host", f);
    for (size_t i = 0; i < mig__cpuid_count(); i++) {
        if (mig__profile_allows(p, i))
            continue;
        const struct mig__cpuid_feat *ft = mig__cpuid_at(i);
        if (ft->xl_name)
            fprintf(f, ",%s=0", ft->xl_name);
        else if (all_names)
            fprintf(f, ",%s=0", ft->name);
        else if (s)
            fprintf(s, "%s%s", sklen || ftell(s) ? " " : "", ft->name);
    }
out:
    if (f && fclose(f) != 0)
        rc = -MIG_ENOMEM;
    if (s && fclose(s) != 0)
        rc = -MIG_ENOMEM;
    if (rc == 0 && (!buf || (skipped_out && !sk)))
        rc = -MIG_ENOMEM;
    if (rc < 0) {
        free(buf);
        free(sk);
        return rc;
    }
    *out = buf;
    if (skipped_out)
        *skipped_out = sk;
    return 0;
}
