/*
 * pool.c: the pool the planner works on: hosts and their domains, filled
 * from each host's facts (the JSON `xl-migrate-live facts` prints there).
 * Entry points: mig_pool_new/free, mig_pool_add_host, mig_pool_add_dom,
 * mig_pool_set_facts, mig_pool_dom_index.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmig/planner.h>

#include "planner-internal.h"

int mig_pool_new(struct mig_pool **pool_out)
{
    *pool_out = calloc(1, sizeof(**pool_out));
    return *pool_out ? 0 : -MIG_ENOMEM;
}

void mig_pool_free(struct mig_pool *pool)
{
    if (!pool)
        return;
    for (size_t i = 0; i < pool->nhosts; i++)
        free(pool->hosts[i].cpu_features);
    for (size_t i = 0; i < pool->ndoms; i++)
        free(pool->doms[i].cpu_features);
    free(pool->hosts);
    free(pool->doms);
    free(pool);
}

int mig_pool_add_host(struct mig_pool *pool, const char *name, int *idx_out)
{
    struct mig_pool_host *h;
    if (strlen(name) >= MIG_POOL_NAME_MAX)
        return -MIG_EINVAL;
    h = realloc(pool->hosts, (pool->nhosts + 1) * sizeof(*h));
    if (!h)
        return -MIG_ENOMEM;
    pool->hosts = h;
    h = &pool->hosts[pool->nhosts];
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", name);
    if (idx_out)
        *idx_out = (int)pool->nhosts;
    pool->nhosts++;
    return 0;
}

int mig_pool_add_dom(struct mig_pool *pool, int host, const char *name, uint64_t mem_bytes,
                     unsigned vcpus, struct mig_pool_dom **dom_out)
{
    struct mig_pool_dom *d;
    if (host < 0 || (size_t)host >= pool->nhosts || strlen(name) >= MIG_POOL_NAME_MAX)
        return -MIG_EINVAL;
    d = realloc(pool->doms, (pool->ndoms + 1) * sizeof(*d));
    if (!d)
        return -MIG_ENOMEM;
    pool->doms = d;
    d = &pool->doms[pool->ndoms++];
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->host = host;
    d->mem_bytes = mem_bytes;
    d->vcpus = vcpus ? vcpus : 1;
    d->cpu_load = 1.0;
    if (dom_out)
        *dom_out = d;
    return 0;
}

int mig_pool_dom_index(const struct mig_pool *pool, const char *name)
{
    for (size_t i = 0; i < pool->ndoms; i++)
        if (strcmp(pool->doms[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- facts JSON ------------------------------------------------------- */

struct fctx {
    yaml_document_t *doc;
    const char *name;
    char *err;
    size_t errlen;
};

static yaml_node_t *fget(struct fctx *f, yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *kv = m->data.mapping.pairs.start; kv < m->data.mapping.pairs.top; kv++) {
        const char *ks = mig__yaml_scalar(yaml_document_get_node(f->doc, kv->key));
        if (ks && strcmp(ks, key) == 0)
            return yaml_document_get_node(f->doc, kv->value);
    }
    return NULL;
}

static int fnum(struct fctx *f, yaml_node_t *m, const char *key, bool required, double *out)
{
    yaml_node_t *v = fget(f, m, key);
    const char *s = mig__yaml_scalar(v);
    char *end;
    if (!v) {
        if (required)
            return mig__yaml_err(f->err, f->errlen, f->name, m, "facts lack '%s'", key);
        return 1;
    }
    errno = 0;
    *out = s ? strtod(s, &end) : -1;
    if (!s || errno || *end || *out < 0)
        return mig__yaml_err(f->err, f->errlen, f->name, v, "facts: '%s' is not a number", key);
    return 0;
}

/* Features as a JSON array of strings or one space-separated string. */
static int ffeatures(struct fctx *f, yaml_node_t *m, const char *key, char **out)
{
    yaml_node_t *v = fget(f, m, key);
    size_t len = 1;
    char *s;
    if (!v)
        return 0;
    if (mig__yaml_scalar(v)) {
        *out = strdup(mig__yaml_scalar(v));
        return *out ? 0 : -MIG_ENOMEM;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return mig__yaml_err(f->err, f->errlen, f->name, v, "facts: '%s' is not a list", key);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        const char *x = mig__yaml_scalar(yaml_document_get_node(f->doc, *it));
        if (!x)
            return mig__yaml_err(f->err, f->errlen, f->name, v, "facts: '%s' holds a non-string",
                                 key);
        len += strlen(x) + 1;
    }
    s = calloc(1, len);
    if (!s)
        return -MIG_ENOMEM;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        if (*s)
            strcat(s, " ");
        strcat(s, mig__yaml_scalar(yaml_document_get_node(f->doc, *it)));
    }
    *out = s;
    return 0;
}

static int fdom(struct fctx *f, struct mig_pool *pool, int host, yaml_node_t *d)
{
    struct mig_pool_dom *dom;
    const char *name = mig__yaml_scalar(fget(f, d, "name"));
    double mem, vcpus = 1, load = 1;
    int rc;
    if (!name || !*name || strlen(name) >= MIG_POOL_NAME_MAX)
        return mig__yaml_err(f->err, f->errlen, f->name, d, "facts: a domain without a 'name'");
    if ((rc = fnum(f, d, "mem_bytes", true, &mem)) < 0)
        return rc;
    if ((rc = fnum(f, d, "vcpus", false, &vcpus)) < 0)
        return rc;
    if ((rc = fnum(f, d, "cpu_load", false, &load)) < 0)
        return rc;
    if (mig_pool_dom_index(pool, name) >= 0)
        return mig__yaml_err(f->err, f->errlen, f->name, d,
                             "facts: domain '%s' is also reported by host %s", name,
                             pool->hosts[pool->doms[mig_pool_dom_index(pool, name)].host].name);
    if ((rc = mig_pool_add_dom(pool, host, name, (uint64_t)mem, (unsigned)vcpus, &dom)) < 0)
        return rc;
    dom->cpu_load = load > 1 ? 1 : load;
    const char *prof = mig__yaml_scalar(fget(f, d, "profile"));
    if (prof)
        snprintf(dom->profile, sizeof(dom->profile), "%s", prof);
    return ffeatures(f, d, "cpu_features", &dom->cpu_features);
}

int mig_pool_set_facts(struct mig_pool *pool, int host, const char *json, char *err, size_t errlen)
{
    yaml_document_t doc;
    struct mig_pool_host *h;
    yaml_node_t *root, *doms;
    double total, freeb = 0, cpus;
    int rc;

    if (host < 0 || (size_t)host >= pool->nhosts)
        return -MIG_EINVAL;
    h = &pool->hosts[host];
    rc = mig__yaml_load(json, strlen(json), h->name, &doc, err, errlen);
    if (rc)
        return rc;
    struct fctx f = {.doc = &doc, .name = h->name, .err = err, .errlen = errlen};
    root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = mig__yaml_err(err, errlen, h->name, root, "facts are not a JSON object");
        goto out;
    }
    if ((rc = fnum(&f, root, "mem_total_bytes", true, &total)) < 0 ||
        (rc = fnum(&f, root, "cpus", true, &cpus)) < 0)
        goto out;
    if ((rc = fnum(&f, root, "mem_free_bytes", false, &freeb)) < 0)
        goto out;
    if (rc == 1)
        freeb = 0; /* not reported */
    doms = fget(&f, root, "domains");
    if (!doms || doms->type != YAML_SEQUENCE_NODE) {
        rc = mig__yaml_err(err, errlen, h->name, doms ? doms : root,
                           "facts lack a 'domains' list (xl-migrate-live facts too old?)");
        goto out;
    }
    h->mem_total_bytes = (uint64_t)total;
    h->mem_free_bytes = (uint64_t)freeb;
    h->cpus = cpus < 1 ? 1 : (unsigned)cpus;
    const char *vendor = mig__yaml_scalar(fget(&f, root, "cpu_vendor"));
    snprintf(h->cpu_vendor, sizeof(h->cpu_vendor), "%s", vendor ? vendor : "");
    free(h->cpu_features);
    h->cpu_features = NULL;
    if ((rc = ffeatures(&f, root, "cpu_features", &h->cpu_features)) < 0)
        goto out;
    for (yaml_node_item_t *it = doms->data.sequence.items.start; it < doms->data.sequence.items.top;
         it++)
        if ((rc = fdom(&f, pool, host, yaml_document_get_node(&doc, *it))) < 0)
            goto out;
    h->reachable = true;
    rc = 0;
out:
    yaml_document_delete(&doc);
    return rc;
}
