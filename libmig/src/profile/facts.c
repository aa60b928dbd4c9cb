/*
 * facts.c: a host's facts (JSON, docs/profiles.md) -> struct mig__facts.
 * The text comes from the peer over the wire, so it goes through the same
 * capped tree builder as profiles (yaml.c). Unknown keys are ignored
 * (backends add their own); a known key with the wrong type is an error
 * naming the position. Entry points: mig__facts_parse(), mig__facts_free().
 */
#include <config.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile-internal.h"

struct fw {
    const char *name;
    struct mig__perr *err;
};

static int bad(struct fw *w, const struct mig__ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(struct fw *w, const struct mig__ynode *n, const char *fmt, ...)
{
    char msg[MIG__PROF_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mig__perr_set(w->err, w->name, n->line, n->col, "%s", msg);
    return -MIG_EPARSE;
}

static bool is_null(const struct mig__ynode *n)
{
    return n->type == MIG__Y_SCALAR && !n->quoted && strcmp(n->str, "null") == 0;
}

/* Present and not null. */
static const struct mig__ynode *member(const struct mig__ynode *obj, const char *key)
{
    const struct mig__ynode *n = mig__ynode_get(obj, key);
    return n && !is_null(n) ? n : NULL;
}

static int str_of(struct fw *w, const struct mig__ynode *obj, const char *key, const char *what,
                  char **out)
{
    const struct mig__ynode *n = member(obj, key);
    if (!n)
        return 0;
    if (n->type != MIG__Y_SCALAR)
        return bad(w, n, "%s must be a string", what);
    *out = strdup(n->str);
    return *out ? 1 : -MIG_ENOMEM;
}

static int u64_of(struct fw *w, const struct mig__ynode *obj, const char *key, const char *what,
                  uint64_t *out)
{
    const struct mig__ynode *n = member(obj, key);
    if (!n)
        return 0;
    if (n->type != MIG__Y_SCALAR || n->quoted || !n->str[0])
        return bad(w, n, "%s must be a non-negative integer", what);
    uint64_t v = 0;
    for (const char *c = n->str; *c; c++) {
        if (!isdigit((unsigned char)*c))
            return bad(w, n, "%s must be a non-negative integer, not '%.40s'", what, n->str);
        unsigned d = (unsigned)(*c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return bad(w, n, "%s is out of range (more than 2^64 - 1)", what);
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static int bool_of(struct fw *w, const struct mig__ynode *obj, const char *key, const char *what,
                   bool *out)
{
    const struct mig__ynode *n = member(obj, key);
    if (!n)
        return 0;
    if (n->type == MIG__Y_SCALAR && !n->quoted && !strcmp(n->str, "true"))
        *out = true;
    else if (n->type == MIG__Y_SCALAR && !n->quoted && !strcmp(n->str, "false"))
        *out = false;
    else
        return bad(w, n, "%s must be true or false", what);
    return 1;
}

static void strv_free(struct mig__strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

bool mig__strv_has(const struct mig__strv *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], x) == 0)
            return true;
    return false;
}

static int list_of(struct fw *w, const struct mig__ynode *obj, const char *key, const char *what,
                   struct mig__strv *out)
{
    const struct mig__ynode *n = member(obj, key);
    if (!n)
        return 0;
    if (n->type != MIG__Y_SEQ)
        return bad(w, n, "%s must be a list of strings", what);
    out->v = calloc(n->n ? n->n : 1, sizeof(char *));
    if (!out->v)
        return -MIG_ENOMEM;
    for (size_t i = 0; i < n->n; i++) {
        const struct mig__ynode *it = n->kids[i];
        if (it->type != MIG__Y_SCALAR)
            return bad(w, it, "%s: each item must be a string", what);
        out->v[i] = strdup(it->str);
        if (!out->v[i])
            return -MIG_ENOMEM;
        out->n = i + 1;
    }
    return 1;
}

static int parse_guest(struct fw *w, const struct mig__ynode *g, struct mig__guest_facts *gf)
{
    uint64_t vcpus = 0;
    int rc;
    if (g->type != MIG__Y_MAP)
        return bad(w, g, "guest must be an object");
    if ((rc = str_of(w, g, "name", "guest.name", &gf->name)) < 0)
        return rc;
    if ((rc = u64_of(w, g, "mem_bytes", "guest.mem_bytes", &gf->mem_bytes)) < 0)
        return rc;
    gf->has_mem = rc > 0;
    if ((rc = u64_of(w, g, "max_mem_bytes", "guest.max_mem_bytes", &gf->max_mem_bytes)) < 0)
        return rc;
    gf->has_max_mem = rc > 0;
    if ((rc = u64_of(w, g, "vcpus", "guest.vcpus", &vcpus)) < 0)
        return rc;
    if (vcpus > 4096)
        return bad(w, mig__ynode_get(g, "vcpus"), "guest.vcpus is out of range (0-4096)");
    gf->vcpus = (uint32_t)vcpus;
    if ((rc = list_of(w, g, "cpu_features", "guest.cpu_features", &gf->cpu_features)) < 0)
        return rc;
    gf->has_cpu_features = rc > 0;
    if ((rc = bool_of(w, g, "passthrough", "guest.passthrough", &gf->passthrough)) < 0 ||
        (rc = bool_of(w, g, "nested_hvm", "guest.nested_hvm", &gf->nested_hvm)) < 0 ||
        (rc = bool_of(w, g, "pod", "guest.pod", &gf->pod)) < 0 ||
        (rc = list_of(w, g, "bridges", "guest.bridges", &gf->bridges)) < 0 ||
        (rc = list_of(w, g, "disks", "guest.disks", &gf->disks)) < 0)
        return rc;
    return 0;
}

static int parse_root(struct fw *w, const struct mig__ynode *root, struct mig__facts *f)
{
    int rc;
    if (root->type != MIG__Y_MAP)
        return bad(w, root, "facts must be a JSON object, not %s",
                   root->type == MIG__Y_SEQ ? "a list" : "a scalar");
    if ((rc = str_of(w, root, "hostname", "hostname", &f->hostname)) < 0 ||
        (rc = str_of(w, root, "backend", "backend", &f->backend)) < 0 ||
        (rc = str_of(w, root, "xen_version", "xen_version", &f->xen_version)) < 0)
        return rc;
    const struct mig__ynode *cpu = member(root, "cpu");
    if (cpu) {
        if (cpu->type != MIG__Y_MAP)
            return bad(w, cpu, "cpu must be an object");
        f->has_cpu = true;
        if ((rc = str_of(w, cpu, "vendor", "cpu.vendor", &f->cpu_vendor)) < 0)
            return rc;
        if ((rc = list_of(w, cpu, "features", "cpu.features", &f->cpu_features)) < 0)
            return rc;
        f->has_cpu_features = rc > 0;
    }
    if ((rc = list_of(w, root, "virt_caps", "virt_caps", &f->virt_caps)) < 0)
        return rc;
    f->has_virt_caps = rc > 0;
    if ((rc = bool_of(w, root, "tsc_scaling", "tsc_scaling", &f->tsc_scaling)) < 0)
        return rc;
    f->has_tsc_scaling = rc > 0;
    if ((rc = u64_of(w, root, "free_memory_bytes", "free_memory_bytes",
                     &f->free_memory_bytes)) < 0)
        return rc;
    f->has_free_memory = rc > 0;
    if ((rc = u64_of(w, root, "total_memory_bytes", "total_memory_bytes",
                     &f->total_memory_bytes)) < 0)
        return rc;
    f->has_total_memory = rc > 0;
    if ((rc = list_of(w, root, "bridges", "bridges", &f->bridges)) < 0)
        return rc;
    f->has_bridges = rc > 0;
    if ((rc = list_of(w, root, "storage_paths", "storage_paths", &f->storage_paths)) < 0)
        return rc;
    f->has_storage_paths = rc > 0;
    if ((rc = list_of(w, root, "disk_map", "disk_map", &f->disk_map)) < 0 ||
        (rc = list_of(w, root, "net_map", "net_map", &f->net_map)) < 0)
        return rc;
    const struct mig__ynode *g = member(root, "guest");
    if (g) {
        if ((rc = parse_guest(w, g, &f->guest)) < 0)
            return rc;
        f->has_guest = true;
    }
    return 0;
}

void mig__facts_free(struct mig__facts *f)
{
    if (!f)
        return;
    free(f->hostname);
    free(f->backend);
    free(f->xen_version);
    free(f->cpu_vendor);
    strv_free(&f->cpu_features);
    strv_free(&f->virt_caps);
    strv_free(&f->bridges);
    strv_free(&f->storage_paths);
    strv_free(&f->disk_map);
    strv_free(&f->net_map);
    free(f->guest.name);
    strv_free(&f->guest.cpu_features);
    strv_free(&f->guest.bridges);
    strv_free(&f->guest.disks);
    free(f);
}

int mig__facts_parse(const char *json, size_t len, const char *name, struct mig__facts **f_out,
                     struct mig__perr *err)
{
    struct mig__ynode *root = NULL;
    struct mig__facts *f = NULL;
    struct fw w = {.name = name, .err = err};
    int rc;

    *f_out = NULL;
    rc = mig__yaml_parse(json, len, name, &root, err);
    if (rc < 0)
        goto out;
    f = calloc(1, sizeof(*f));
    if (!f) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    rc = parse_root(&w, root, f);
    if (rc < 0)
        goto out;
    *f_out = f;
    f = NULL;
out:
    if (rc == -MIG_ENOMEM && err)
        mig__perr_set(err, name, 0, 0, "out of memory");
    mig__facts_free(f);
    mig__ynode_free(root);
    return rc;
}
