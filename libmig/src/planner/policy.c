/*
 * policy.c: policy files (docs/policies.md) -> struct mig_pool_policy.
 * Entry points: mig_pool_policy_load, mig_pool_policy_parse, mig_pool_policy_free,
 * mig_pool_policy_host_index, mig_pool_policy_threshold, mig_pool_policy_in_window.
 *
 * Same rules as the profile parser: every error names FILE:LINE:COLUMN, and
 * an unknown key is refused with the closest known one ("did you mean").
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmig/planner.h>

#include "planner-internal.h"

#define POLICY_MAX_BYTES (1u << 20)

/* What the walkers share. */
struct pctx {
    yaml_document_t *doc;
    const char *name; /* file name in messages */
    char *err;
    size_t errlen;
};

static yaml_node_t *node(struct pctx *p, int id)
{
    return yaml_document_get_node(p->doc, id);
}

/* Refuse keys of mapping 'm' that are not in 'known'. */
static int check_keys(struct pctx *p, yaml_node_t *m, const char *where, const char *const *known)
{
    if (m->type != YAML_MAPPING_NODE)
        return mig__yaml_err(p->err, p->errlen, p->name, m, "%s must be a mapping", where);
    for (yaml_node_pair_t *kv = m->data.mapping.pairs.start; kv < m->data.mapping.pairs.top; kv++) {
        yaml_node_t *k = node(p, kv->key);
        const char *ks = mig__yaml_scalar(k);
        bool ok = false;
        if (!ks)
            return mig__yaml_err(p->err, p->errlen, p->name, k, "%s: keys must be plain words",
                                 where);
        for (const char *const *x = known; *x; x++)
            if (strcmp(*x, ks) == 0)
                ok = true;
        if (!ok) {
            const char *s = mig__closest(ks, known);
            if (s)
                return mig__yaml_err(p->err, p->errlen, p->name, k,
                                     "unknown key '%s' in %s (did you mean '%s'?)", ks, where, s);
            return mig__yaml_err(p->err, p->errlen, p->name, k, "unknown key '%s' in %s", ks,
                                 where);
        }
    }
    return 0;
}

static yaml_node_t *get(struct pctx *p, yaml_node_t *m, const char *key)
{
    for (yaml_node_pair_t *kv = m->data.mapping.pairs.start; kv < m->data.mapping.pairs.top; kv++) {
        const char *ks = mig__yaml_scalar(node(p, kv->key));
        if (ks && strcmp(ks, key) == 0)
            return node(p, kv->value);
    }
    return NULL;
}

static int get_str(struct pctx *p, yaml_node_t *v, const char *key, char **out)
{
    const char *s = mig__yaml_scalar(v);
    if (!s || !*s)
        return mig__yaml_err(p->err, p->errlen, p->name, v, "'%s' must be a non-empty string", key);
    free(*out);
    *out = strdup(s);
    return *out ? 0 : -MIG_ENOMEM;
}

static int get_uint(struct pctx *p, yaml_node_t *v, const char *key, unsigned lo, unsigned hi,
                    bool percent, unsigned *out)
{
    const char *s = mig__yaml_scalar(v);
    char *end;
    unsigned long x;
    if (!s || !isdigit((unsigned char)*s))
        goto bad;
    errno = 0;
    x = strtoul(s, &end, 10);
    if (percent && *end == '%')
        end++;
    if (errno || *end || x < lo || x > hi)
        goto bad;
    *out = (unsigned)x;
    return 0;
bad:
    return mig__yaml_err(p->err, p->errlen, p->name, v, "'%s' must be %s from %u to %u", key,
                         percent ? "a percentage" : "a whole number", lo, hi);
}

static int get_bool(struct pctx *p, yaml_node_t *v, const char *key, bool *out)
{
    const char *s = mig__yaml_scalar(v);
    if (s && (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))) {
        *out = true;
        return 0;
    }
    if (s && (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))) {
        *out = false;
        return 0;
    }
    return mig__yaml_err(p->err, p->errlen, p->name, v, "'%s' must be true or false", key);
}

/* "512M", "2G", "1048576": powers of 1024. */
static int get_size(struct pctx *p, yaml_node_t *v, const char *key, uint64_t *out)
{
    const char *s = mig__yaml_scalar(v);
    char *end;
    unsigned long long x;
    uint64_t mul = 1;
    if (!s || !isdigit((unsigned char)*s))
        goto bad;
    errno = 0;
    x = strtoull(s, &end, 10);
    switch (toupper((unsigned char)*end)) {
    case 'K':
        mul = 1ull << 10;
        end++;
        break;
    case 'M':
        mul = 1ull << 20;
        end++;
        break;
    case 'G':
        mul = 1ull << 30;
        end++;
        break;
    case 'T':
        mul = 1ull << 40;
        end++;
        break;
    default:
        break;
    }
    if (mul > 1 && (*end == 'i' || *end == 'I'))
        end++;
    if (mul > 1 && (*end == 'B' || *end == 'b'))
        end++;
    if (errno || *end || x > UINT64_MAX / mul)
        goto bad;
    *out = x * mul;
    return 0;
bad:
    return mig__yaml_err(p->err, p->errlen, p->name, v, "'%s' must be a size (e.g. 512M, 2G)", key);
}

/* A sequence of non-empty strings -> NULL-terminated array. */
static int get_strv(struct pctx *p, yaml_node_t *v, const char *key, char ***out)
{
    char **a = NULL;
    size_t n = 0;
    if (!v || v->type != YAML_SEQUENCE_NODE ||
        v->data.sequence.items.top == v->data.sequence.items.start)
        return mig__yaml_err(p->err, p->errlen, p->name, v,
                             "'%s' must be a list of strings (an argv: [prog, arg, ...])", key);
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    a = calloc(n + 1, sizeof(*a));
    if (!a)
        return -MIG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = node(p, v->data.sequence.items.start[i]);
        const char *s = mig__yaml_scalar(it);
        if (!s || !*s) {
            mig__strv_free(a);
            return mig__yaml_err(p->err, p->errlen, p->name, it, "'%s': items must be strings",
                                 key);
        }
        a[i] = strdup(s);
        if (!a[i]) {
            mig__strv_free(a);
            return -MIG_ENOMEM;
        }
    }
    mig__strv_free(*out);
    *out = a;
    return 0;
}

static int parse_hhmm(const char *s, int *min_out)
{
    int h, m, k = 0;
    if (sscanf(s, "%2d:%2d%n", &h, &m, &k) != 2 || h < 0 || h > 23 || m < 0 || m > 59)
        return -1;
    *min_out = h * 60 + m;
    return k;
}

static const char *const host_keys[] = {"name", "uri", "exec", "health", "reserve", NULL};

static int parse_host(struct pctx *p, yaml_node_t *h, struct mig_policy_host *out)
{
    yaml_node_t *v;
    int rc = check_keys(p, h, "a host", host_keys);
    if (rc)
        return rc;
    if (!(v = get(p, h, "name")))
        return mig__yaml_err(p->err, p->errlen, p->name, h, "a host needs a 'name'");
    if ((rc = get_str(p, v, "name", &out->name)))
        return rc;
    if (!(v = get(p, h, "uri")))
        return mig__yaml_err(p->err, p->errlen, p->name, h,
                             "host '%s' needs a 'uri' (tls:H:P, ssh:H, tcp:H:P)", out->name);
    if ((rc = get_str(p, v, "uri", &out->uri)))
        return rc;
    if ((v = get(p, h, "exec")) && (rc = get_strv(p, v, "exec", &out->exec)))
        return rc;
    if ((v = get(p, h, "health")) && (rc = get_strv(p, v, "health", &out->health)))
        return rc;
    if ((v = get(p, h, "reserve")) && (rc = get_size(p, v, "reserve", &out->reserve_bytes)))
        return rc;
    if (!out->exec) {
        out->exec = calloc(4, sizeof(char *));
        if (!out->exec)
            return -MIG_ENOMEM;
        out->exec[0] = strdup("ssh");
        out->exec[1] = strdup(out->name);
        out->exec[2] = strdup("xl-migrate-live");
        if (!out->exec[0] || !out->exec[1] || !out->exec[2])
            return -MIG_ENOMEM;
    }
    return 0;
}

/* A rule is a mapping; present means enabled unless 'enabled: false'. */
static int rule_enabled(struct pctx *p, yaml_node_t *r, const char *name, const char *const *keys,
                        bool *on)
{
    yaml_node_t *v;
    int rc;
    const char *s = mig__yaml_scalar(r);
    if (s)
        return get_bool(p, r, name, on);
    if ((rc = check_keys(p, r, name, keys)))
        return rc;
    *on = true;
    if ((v = get(p, r, "enabled")))
        return get_bool(p, v, "enabled", on);
    return 0;
}

static const char *const maint_keys[] = {"enabled", NULL};
static const char *const balance_keys[] = {"enabled", "threshold", "aggressiveness", "max_moves",
                                           NULL};
static const char *const cons_keys[] = {
    "enabled", "window", "cpu_headroom", "min_hosts", "max_moves", "hook", NULL};
static const char *const rule_keys[] = {"maintenance", "avoid", "balance", "consolidate", NULL};

static int parse_rules(struct pctx *p, yaml_node_t *r, struct mig_pool_policy *pol)
{
    yaml_node_t *v, *x;
    int rc = check_keys(p, r, "rules", rule_keys);
    if (rc)
        return rc;
    if ((v = get(p, r, "maintenance")) &&
        (rc = rule_enabled(p, v, "maintenance", maint_keys, &pol->maintenance)))
        return rc;
    if ((v = get(p, r, "avoid")) && (rc = rule_enabled(p, v, "avoid", maint_keys, &pol->avoid)))
        return rc;
    if ((v = get(p, r, "balance"))) {
        if ((rc = rule_enabled(p, v, "balance", balance_keys, &pol->balance)))
            return rc;
        if (v->type == YAML_MAPPING_NODE) {
            if ((x = get(p, v, "threshold")) &&
                (rc = get_uint(p, x, "threshold", 1, 100, true, &pol->threshold_pct)))
                return rc;
            if ((x = get(p, v, "aggressiveness")) &&
                (rc = get_uint(p, x, "aggressiveness", 1, 5, false, &pol->aggressiveness)))
                return rc;
            if ((x = get(p, v, "max_moves")) &&
                (rc = get_uint(p, x, "max_moves", 1, 1000, false, &pol->max_moves)))
                return rc;
        }
    }
    if ((v = get(p, r, "consolidate"))) {
        if ((rc = rule_enabled(p, v, "consolidate", cons_keys, &pol->consolidate)))
            return rc;
        if (v->type == YAML_MAPPING_NODE) {
            if ((x = get(p, v, "window"))) {
                const char *s = mig__yaml_scalar(x);
                int a, b, k;
                if (!s || (k = parse_hhmm(s, &a)) < 0 || s[k] != '-' ||
                    parse_hhmm(s + k + 1, &b) < 0 || strlen(s + k + 1) != 5)
                    return mig__yaml_err(p->err, p->errlen, p->name, x,
                                         "'window' must be \"HH:MM-HH:MM\" (local time)");
                pol->window_start_min = a;
                pol->window_end_min = b;
            }
            if ((x = get(p, v, "cpu_headroom")) &&
                (rc = get_uint(p, x, "cpu_headroom", 0, 90, true, &pol->cpu_headroom_pct)))
                return rc;
            if ((x = get(p, v, "min_hosts")) &&
                (rc = get_uint(p, x, "min_hosts", 1, 10000, false, &pol->min_hosts)))
                return rc;
            if ((x = get(p, v, "max_moves")) &&
                (rc = get_uint(p, x, "max_moves", 0, 10000, false, &pol->consolidate_max_moves)))
                return rc;
            if ((x = get(p, v, "hook")) && (rc = get_strv(p, x, "hook", &pol->hook)))
                return rc;
        }
    }
    return 0;
}

static const char *const group_keys[] = {"name", "domains", NULL};

static int parse_anti(struct pctx *p, yaml_node_t *v, struct mig_pool_policy *pol)
{
    size_t n;
    if (v->type != YAML_SEQUENCE_NODE)
        return mig__yaml_err(p->err, p->errlen, p->name, v,
                             "'anti_affinity' must be a list of groups");
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    pol->anti_affinity = calloc(n ? n : 1, sizeof(*pol->anti_affinity));
    if (!pol->anti_affinity)
        return -MIG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *g = node(p, v->data.sequence.items.start[i]), *d = g;
        struct mig_policy_group *grp = &pol->anti_affinity[pol->nanti_affinity++];
        int rc;
        if (g->type == YAML_MAPPING_NODE) {
            yaml_node_t *nm;
            if ((rc = check_keys(p, g, "an anti_affinity group", group_keys)))
                return rc;
            if ((nm = get(p, g, "name")) && (rc = get_str(p, nm, "name", &grp->name)))
                return rc;
            d = get(p, g, "domains");
            if (!d)
                return mig__yaml_err(p->err, p->errlen, p->name, g,
                                     "an anti_affinity group needs 'domains'");
        }
        if (!grp->name && !(grp->name = strdup("")))
            return -MIG_ENOMEM;
        if ((rc = get_strv(p, d, "domains", &grp->domains)))
            return rc;
        if (mig__strv_len(grp->domains) < 2)
            return mig__yaml_err(p->err, p->errlen, p->name, d,
                                 "an anti_affinity group needs at least two domains");
    }
    return 0;
}

static int parse_pins(struct pctx *p, yaml_node_t *v, struct mig_pool_policy *pol)
{
    size_t n;
    if (v->type != YAML_MAPPING_NODE)
        return mig__yaml_err(p->err, p->errlen, p->name, v,
                             "'pin' must map domains to lists of hosts");
    n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    pol->pins = calloc(n ? n : 1, sizeof(*pol->pins));
    if (!pol->pins)
        return -MIG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *kv = &v->data.mapping.pairs.start[i];
        yaml_node_t *k = node(p, kv->key), *hv = node(p, kv->value);
        struct mig_policy_pin *pin = &pol->pins[pol->npins++];
        int rc;
        if ((rc = get_str(p, k, "pin", &pin->domain)))
            return rc;
        if ((rc = get_strv(p, hv, "pin", &pin->hosts)))
            return rc;
        for (char **h = pin->hosts; *h; h++)
            if (mig_pool_policy_host_index(pol, *h) < 0)
                return mig__yaml_err(p->err, p->errlen, p->name, hv,
                                     "pin of '%s': no host '%s' in 'hosts'", pin->domain, *h);
    }
    return 0;
}

static const char *const top_keys[] = {"pool",  "profile",       "concurrency", "hosts",
                                       "rules", "anti_affinity", "pin",         NULL};

static int parse_root(struct pctx *p, yaml_node_t *root, struct mig_pool_policy *pol)
{
    yaml_node_t *v;
    int rc;
    if (!root)
        return mig__yaml_err(p->err, p->errlen, p->name, NULL, "empty policy file");
    if ((rc = check_keys(p, root, "the policy", top_keys)))
        return rc;
    if ((v = get(p, root, "pool")) && (rc = get_str(p, v, "pool", &pol->pool)))
        return rc;
    if (!(v = get(p, root, "profile")))
        return mig__yaml_err(p->err, p->errlen, p->name, root,
                             "the policy needs a 'profile' (the pool's compatibility profile)");
    if ((rc = get_str(p, v, "profile", &pol->profile)))
        return rc;
    if ((v = get(p, root, "concurrency")) &&
        (rc = get_uint(p, v, "concurrency", 1, 64, false, &pol->concurrency)))
        return rc;
    v = get(p, root, "hosts");
    if (!v || v->type != YAML_SEQUENCE_NODE ||
        v->data.sequence.items.top == v->data.sequence.items.start)
        return mig__yaml_err(p->err, p->errlen, p->name, v ? v : root,
                             "'hosts' must be a non-empty list of hosts");
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    pol->hosts = calloc(n, sizeof(*pol->hosts));
    if (!pol->hosts)
        return -MIG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *h = node(p, v->data.sequence.items.start[i]);
        pol->nhosts++; /* owned from here on, even half-parsed */
        if ((rc = parse_host(p, h, &pol->hosts[i])))
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(pol->hosts[j].name, pol->hosts[i].name) == 0)
                return mig__yaml_err(p->err, p->errlen, p->name, h, "host '%s' is listed twice",
                                     pol->hosts[i].name);
        if (strlen(pol->hosts[i].name) >= MIG_POOL_NAME_MAX)
            return mig__yaml_err(p->err, p->errlen, p->name, h, "host name too long");
    }
    if ((v = get(p, root, "rules")) && (rc = parse_rules(p, v, pol)))
        return rc;
    if ((v = get(p, root, "anti_affinity")) && (rc = parse_anti(p, v, pol)))
        return rc;
    if ((v = get(p, root, "pin")) && (rc = parse_pins(p, v, pol)))
        return rc;
    return 0;
}

int mig_pool_policy_parse(const char *text, size_t len, const char *name,
                          struct mig_pool_policy **pol_out, char *err, size_t errlen)
{
    yaml_document_t doc;
    struct mig_pool_policy *pol = NULL;
    bool have_doc = false;
    int rc;

    *pol_out = NULL;
    pol = calloc(1, sizeof(*pol));
    if (!pol)
        return -MIG_ENOMEM;
    pol->concurrency = 1;
    pol->maintenance = true;
    pol->avoid = true;
    pol->threshold_pct = 10;
    pol->aggressiveness = 3;
    pol->max_moves = 4;
    pol->window_start_min = -1;
    pol->window_end_min = -1;
    pol->cpu_headroom_pct = 20;
    pol->min_hosts = 1;
    if (!(pol->file = strdup(name)) || !(pol->pool = strdup("")) || !(pol->profile = strdup(""))) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    rc = mig__yaml_load(text, len, name, &doc, err, errlen);
    if (rc)
        goto out;
    have_doc = true;
    struct pctx p = {.doc = &doc, .name = name, .err = err, .errlen = errlen};
    rc = parse_root(&p, yaml_document_get_root_node(&doc), pol);
out:
    if (have_doc)
        yaml_document_delete(&doc);
    if (rc) {
        if (rc == -MIG_ENOMEM)
            snprintf(err, errlen, "%s: out of memory", name);
        mig_pool_policy_free(pol);
        return rc;
    }
    *pol_out = pol;
    return 0;
}

int mig_pool_policy_load(const char *path, struct mig_pool_policy **pol_out, char *err,
                         size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t n = 0;
    int rc;

    *pol_out = NULL;
    f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = errno == ENOENT ? -MIG_ENOENT : -MIG_EIO;
        goto out;
    }
    buf = malloc(POLICY_MAX_BYTES + 1);
    if (!buf) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    n = fread(buf, 1, POLICY_MAX_BYTES + 1, f);
    if (ferror(f) || n > POLICY_MAX_BYTES) {
        snprintf(err, errlen, "%s: %s", path,
                 n > POLICY_MAX_BYTES ? "larger than 1 MiB" : "read error");
        rc = n > POLICY_MAX_BYTES ? -MIG_ETOOBIG : -MIG_EIO;
        goto out;
    }
    rc = mig_pool_policy_parse(buf, n, path, pol_out, err, errlen);
out:
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

void mig_pool_policy_free(struct mig_pool_policy *pol)
{
    if (!pol)
        return;
    for (size_t i = 0; i < pol->nhosts; i++) {
        free(pol->hosts[i].name);
        free(pol->hosts[i].uri);
        mig__strv_free(pol->hosts[i].exec);
        mig__strv_free(pol->hosts[i].health);
    }
    free(pol->hosts);
    for (size_t i = 0; i < pol->nanti_affinity; i++) {
        free(pol->anti_affinity[i].name);
        mig__strv_free(pol->anti_affinity[i].domains);
    }
    free(pol->anti_affinity);
    for (size_t i = 0; i < pol->npins; i++) {
        free(pol->pins[i].domain);
        mig__strv_free(pol->pins[i].hosts);
    }
    free(pol->pins);
    mig__strv_free(pol->hook);
    free(pol->file);
    free(pol->pool);
    free(pol->profile);
    free(pol);
}

int mig_pool_policy_host_index(const struct mig_pool_policy *pol, const char *name)
{
    for (size_t i = 0; i < pol->nhosts; i++)
        if (pol->hosts[i].name && strcmp(pol->hosts[i].name, name) == 0)
            return (int)i;
    return -1;
}

double mig_pool_policy_threshold(const struct mig_pool_policy *pol)
{
    static const double scale[5] = {2.0, 1.5, 1.0, 0.75, 0.5};
    unsigned a = pol->aggressiveness < 1 ? 1 : pol->aggressiveness > 5 ? 5 : pol->aggressiveness;
    return pol->threshold_pct * scale[a - 1];
}

bool mig_pool_policy_in_window(const struct mig_pool_policy *pol, int minute)
{
    int a = pol->window_start_min, b = pol->window_end_min;
    if (a < 0 || b < 0)
        return true;
    if (a <= b)
        return minute >= a && minute < b;
    return minute >= a || minute < b; /* across midnight */
}
