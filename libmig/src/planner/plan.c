/*
 * plan.c: the planner, a pure function from (pool facts, policy, previous
 * run's moves) to an ordered list of moves, each with its reason.
 * Entry points: mig_plan_compute, mig_plan_free, mig_compat_facts,
 * mig_rule_name.
 *
 * Rules run in this order on one simulated pool, each seeing the moves of
 * the ones before: maintenance and avoid (evacuate flagged or unhealthy
 * hosts: spread by free memory, then best fit if spreading cannot place
 * everything), balance (greedy DRS: the best move that lowers the spread of
 * memory and CPU load around the pool mean, while a host is outside the
 * threshold, at most max_moves), consolidate (empty the least loaded hosts
 * by best-fit packing with CPU headroom, a host at a time, all of its
 * domains or none). Nothing here reads a clock, a file or the network.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmig/planner.h>

#include "planner-internal.h"

#define MIB (1024.0 * 1024.0)

/* The simulated pool while planning. */
struct work {
    const struct mig_plan_input *in;
    const struct mig_pool *pool;
    const struct mig_pool_policy *pol;
    mig_compat_fn *compat;
    int *where;     /* per domain: host index now */
    int64_t *freeb; /* per host: bytes still placeable */
    uint64_t *used; /* per host: bytes of guest memory */
    double *cpu;    /* per host: vCPUs busy (vcpus x cpu_load) */
    bool *dest_ok;  /* per host: may receive domains */
    struct mig_plan *plan;
    size_t cap; /* allocated moves */
};

/* A copy of the mutable part, to try a packing and take it back. */
struct snap {
    int *where;
    int64_t *freeb;
    uint64_t *used;
    double *cpu;
    size_t nmoves;
};

const char *mig_rule_name(enum mig_rule r)
{
    switch (r) {
    case MIG_RULE_MAINTENANCE:
        return "maintenance";
    case MIG_RULE_AVOID:
        return "avoid";
    case MIG_RULE_BALANCE:
        return "balance";
    case MIG_RULE_CONSOLIDATE:
        return "consolidate";
    }
    return "?";
}

/* ---- compatibility ------------------------------------------------------ */

static bool has_token(const char *list, const char *tok, size_t len)
{
    const char *p = list;
    while (p && *p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == len && strncmp(p, tok, len) == 0)
            return true;
        p += n;
    }
    return false;
}

bool mig_compat_facts(void *opaque, const struct mig_pool *pool, const struct mig_pool_dom *dom,
                      int dst, char *why, size_t whylen)
{
    const struct mig_pool_host *src = &pool->hosts[dom->host], *d = &pool->hosts[dst];
    const char *req = dom->cpu_features ? dom->cpu_features : src->cpu_features;
    (void)opaque;
    if (src->cpu_vendor[0] && d->cpu_vendor[0] && strcmp(src->cpu_vendor, d->cpu_vendor) != 0) {
        snprintf(why, whylen, "CPU vendor %s, not %s", d->cpu_vendor, src->cpu_vendor);
        return false;
    }
    for (const char *p = req; p && *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n && !has_token(d->cpu_features, p, n)) {
            snprintf(why, whylen, "lacks CPU feature '%.*s'", (int)n, p);
            return false;
        }
        p += n;
    }
    return true;
}

/* ---- the simulated pool ------------------------------------------------- */

static int snap_take(const struct work *w, struct snap *s)
{
    size_t nh = w->pool->nhosts, nd = w->pool->ndoms;
    s->where = malloc((nd ? nd : 1) * sizeof(*s->where));
    s->freeb = malloc(nh * sizeof(*s->freeb));
    s->used = malloc(nh * sizeof(*s->used));
    s->cpu = malloc(nh * sizeof(*s->cpu));
    if (!s->where || !s->freeb || !s->used || !s->cpu)
        return -MIG_ENOMEM;
    memcpy(s->where, w->where, nd * sizeof(*s->where));
    memcpy(s->freeb, w->freeb, nh * sizeof(*s->freeb));
    memcpy(s->used, w->used, nh * sizeof(*s->used));
    memcpy(s->cpu, w->cpu, nh * sizeof(*s->cpu));
    s->nmoves = w->plan->nmoves;
    return 0;
}

static void snap_restore(struct work *w, const struct snap *s)
{
    size_t nh = w->pool->nhosts, nd = w->pool->ndoms;
    memcpy(w->where, s->where, nd * sizeof(*s->where));
    memcpy(w->freeb, s->freeb, nh * sizeof(*s->freeb));
    memcpy(w->used, s->used, nh * sizeof(*s->used));
    memcpy(w->cpu, s->cpu, nh * sizeof(*s->cpu));
    w->plan->nmoves = s->nmoves;
}

static void snap_dispose(struct snap *s)
{
    free(s->where);
    free(s->freeb);
    free(s->used);
    free(s->cpu);
}

static double dom_cpu(const struct mig_pool_dom *d)
{
    return d->vcpus * d->cpu_load;
}

static uint64_t cap_of(const struct mig_pool_host *h)
{
    return h->mem_total_bytes > h->reserve_bytes ? h->mem_total_bytes - h->reserve_bytes : 1;
}

static void relocate(struct work *w, int d, int to)
{
    const struct mig_pool_dom *dom = &w->pool->doms[d];
    int from = w->where[d];
    w->freeb[from] += (int64_t)dom->mem_bytes;
    w->used[from] -= dom->mem_bytes;
    w->cpu[from] -= dom_cpu(dom);
    w->freeb[to] -= (int64_t)dom->mem_bytes;
    w->used[to] += dom->mem_bytes;
    w->cpu[to] += dom_cpu(dom);
    w->where[d] = to;
}

static int add_move(struct work *w, int d, int to, enum mig_rule rule, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int add_move(struct work *w, int d, int to, enum mig_rule rule, const char *fmt, ...)
{
    struct mig_plan *pl = w->plan;
    struct mig_move *m;
    va_list ap;
    if (pl->nmoves == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 16;
        m = realloc(pl->moves, nc * sizeof(*m));
        if (!m)
            return -MIG_ENOMEM;
        pl->moves = m;
        w->cap = nc;
    }
    m = &pl->moves[pl->nmoves++];
    memset(m, 0, sizeof(*m));
    snprintf(m->domain, sizeof(m->domain), "%s", w->pool->doms[d].name);
    m->from = w->where[d];
    m->to = to;
    m->rule = rule;
    va_start(ap, fmt);
    vsnprintf(m->reason, sizeof(m->reason), fmt, ap);
    va_end(ap);
    relocate(w, d, to);
    return 0;
}

/* ---- placement rules ---------------------------------------------------- */

static bool pin_ok(const struct work *w, int d, int h)
{
    const struct mig_pool_policy *pol = w->pol;
    for (size_t i = 0; i < pol->npins; i++)
        if (strcmp(pol->pins[i].domain, w->pool->doms[d].name) == 0)
            return mig__plan_strv_has(pol->pins[i].hosts, w->pool->hosts[h].name);
    return true;
}

/* The member of an anti-affinity group of d already on h, or NULL. */
static const char *anti_conflict(const struct work *w, int d, int h)
{
    const struct mig_pool_policy *pol = w->pol;
    const char *name = w->pool->doms[d].name;
    for (size_t g = 0; g < pol->nanti_affinity; g++) {
        char **doms = pol->anti_affinity[g].domains;
        if (!mig__plan_strv_has(doms, name))
            continue;
        for (char **o = doms; *o; o++) {
            int od = mig_pool_dom_index(w->pool, *o);
            if (od >= 0 && od != d && w->where[od] == h)
                return *o;
        }
    }
    return NULL;
}

/* Hysteresis: the previous run moved d; balance leaves it alone, and no
 * rule but an evacuation sends it back where it came from. */
static bool prev_ok(const struct work *w, int d, int h, enum mig_rule rule)
{
    for (size_t i = 0; i < w->in->nprev; i++) {
        const struct mig_move *m = &w->in->prev[i];
        if (strcmp(m->domain, w->pool->doms[d].name) != 0)
            continue;
        if (rule == MIG_RULE_BALANCE)
            return false;
        if (rule == MIG_RULE_CONSOLIDATE && m->from == h)
            return false;
    }
    return true;
}

/* May d go to h under 'rule'? headroom < 0: no CPU limit. */
static bool can_place(const struct work *w, int d, int h, enum mig_rule rule, int headroom,
                      char *why, size_t whylen)
{
    const struct mig_pool_dom *dom = &w->pool->doms[d];
    const struct mig_pool_host *host = &w->pool->hosts[h];
    const char *o;
    char cw[200] = "";

    if (h == w->where[d]) {
        snprintf(why, whylen, "runs it already");
        return false;
    }
    if (!w->dest_ok[h]) {
        snprintf(why, whylen, "%s",
                 !host->reachable    ? "unreachable"
                 : host->maintenance ? "in maintenance"
                                     : "unhealthy");
        return false;
    }
    if (!pin_ok(w, d, h)) {
        snprintf(why, whylen, "%s is pinned elsewhere", dom->name);
        return false;
    }
    if ((o = anti_conflict(w, d, h))) {
        snprintf(why, whylen, "runs %s (anti-affinity)", o);
        return false;
    }
    if (!prev_ok(w, d, h, rule)) {
        snprintf(why, whylen, "the previous run moved %s (hysteresis)", dom->name);
        return false;
    }
    if (w->freeb[h] < (int64_t)dom->mem_bytes) {
        snprintf(why, whylen, "%.0f MiB free, %s needs %.0f MiB",
                 w->freeb[h] > 0 ? w->freeb[h] / MIB : 0.0, dom->name, dom->mem_bytes / MIB);
        return false;
    }
    if (headroom >= 0 && (w->cpu[h] + dom_cpu(dom)) > host->cpus * (1.0 - headroom / 100.0)) {
        snprintf(why, whylen, "CPU %.1f of %u busy after the move, above %d%% headroom",
                 w->cpu[h] + dom_cpu(dom), host->cpus, headroom);
        return false;
    }
    /* the predicate sees the domain on its current simulated host */
    struct mig_pool_dom tmp = *dom;
    tmp.host = w->where[d];
    if (!w->compat(w->in->compat_opaque, w->pool, &tmp, h, cw, sizeof(cw))) {
        snprintf(why, whylen, "incompatible: %s", cw);
        return false;
    }
    return true;
}

/* ---- evacuation (maintenance, avoid) ----------------------------------- */

static bool evacuating(const struct work *w, int h, unsigned rules)
{
    const struct mig_pool_host *host = &w->pool->hosts[h];
    return (host->maintenance && (rules & MIG_RULE_MAINTENANCE)) ||
           (host->unhealthy && (rules & MIG_RULE_AVOID));
}

static int cmp_mem_desc(const void *a, const void *b, void *pool)
{
    const struct mig_pool *p = pool;
    uint64_t x = p->doms[*(const int *)a].mem_bytes, y = p->doms[*(const int *)b].mem_bytes;
    if (x != y)
        return x > y ? -1 : 1;
    return strcmp(p->doms[*(const int *)a].name, p->doms[*(const int *)b].name);
}

static void sort_by_mem(const struct mig_pool *pool, int *ids, size_t n)
{
    qsort_r(ids, n, sizeof(*ids), cmp_mem_desc, (void *)pool);
}

/* Place each of ids[] somewhere: spread (most free memory after) or best
 * fit (least). 1 and *failed set when one cannot be placed. */
static int place_all(struct work *w, const int *ids, size_t n, bool spread, enum mig_rule rule,
                     int headroom, int *failed)
{
    for (size_t i = 0; i < n; i++) {
        int d = ids[i], best = -1;
        char why[256];
        for (size_t h = 0; h < w->pool->nhosts; h++) {
            if (!can_place(w, d, (int)h, rule, headroom, why, sizeof(why)))
                continue;
            if (best < 0 || (spread ? w->freeb[h] > w->freeb[best] : w->freeb[h] < w->freeb[best]))
                best = (int)h;
        }
        if (best < 0) {
            *failed = d;
            return 1;
        }
        const struct mig_pool_host *src = &w->pool->hosts[w->where[d]];
        int rc = add_move(
            w, d, best, rule, "%s: %s %s; %s has %.0f MiB free for %.0f MiB", mig_rule_name(rule),
            src->name,
            rule == MIG_RULE_CONSOLIDATE                       ? "is emptied to save power"
            : src->maintenance && rule == MIG_RULE_MAINTENANCE ? "is in maintenance"
                                                               : "failed its health check",
            w->pool->hosts[best].name, w->freeb[best] / MIB, w->pool->doms[d].mem_bytes / MIB);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void impossible(struct work *w, int d, enum mig_rule rule, int headroom)
{
    struct mig_plan *pl = w->plan;
    const struct mig_pool_dom *dom = &w->pool->doms[d];
    size_t k;
    k = (size_t)snprintf(pl->why, sizeof(pl->why),
                         "%s: no host can take %s (%.0f MiB, on %s):", mig_rule_name(rule),
                         dom->name, dom->mem_bytes / MIB, w->pool->hosts[w->where[d]].name);
    for (size_t h = 0; h < w->pool->nhosts && k < sizeof(pl->why); h++) {
        char why[256];
        if ((int)h == w->where[d])
            continue;
        if (can_place(w, d, (int)h, rule, headroom, why, sizeof(why)))
            snprintf(why, sizeof(why), "fits once others moved");
        k += (size_t)snprintf(pl->why + k, sizeof(pl->why) - k, " %s: %s;", w->pool->hosts[h].name,
                              why);
    }
    if (k > 0 && k < sizeof(pl->why) && pl->why[k - 1] == ';')
        pl->why[k - 1] = 0;
    pl->impossible = true;
    pl->nmoves = 0;
}

static int evacuate(struct work *w, enum mig_rule rule)
{
    const struct mig_pool *pool = w->pool;
    int *ids = NULL, failed = -1, rc = 0;
    size_t n = 0;
    struct snap s = {0};

    for (size_t h = 0; h < pool->nhosts; h++)
        if (evacuating(w, (int)h, rule) && !pool->hosts[h].reachable) {
            snprintf(w->plan->why, sizeof(w->plan->why),
                     "%s: cannot evacuate %s: its facts could not be read", mig_rule_name(rule),
                     pool->hosts[h].name);
            w->plan->impossible = true;
            w->plan->nmoves = 0;
            return 0;
        }
    ids = malloc((pool->ndoms ? pool->ndoms : 1) * sizeof(*ids));
    if (!ids)
        return -MIG_ENOMEM;
    for (size_t d = 0; d < pool->ndoms; d++)
        if (evacuating(w, w->where[d], rule))
            ids[n++] = (int)d;
    if (!n)
        goto out;
    sort_by_mem(pool, ids, n);
    if ((rc = snap_take(w, &s)) < 0)
        goto out;
    rc = place_all(w, ids, n, true, rule, -1, &failed);
    if (rc == 1) {
        snap_restore(w, &s);
        rc = place_all(w, ids, n, false, rule, -1, &failed);
    }
    if (rc == 1) {
        snap_restore(w, &s);
        impossible(w, failed, rule, -1);
        rc = 0;
    }
out:
    snap_dispose(&s);
    free(ids);
    return rc;
}

/* ---- balance ------------------------------------------------------------ */

static double mem_frac(const struct work *w, size_t h)
{
    return (double)w->used[h] / (double)cap_of(&w->pool->hosts[h]);
}

static double cpu_frac(const struct work *w, size_t h)
{
    return w->cpu[h] / w->pool->hosts[h].cpus;
}

static void means(const struct work *w, double *mm, double *mc)
{
    size_t n = 0;
    *mm = *mc = 0;
    for (size_t h = 0; h < w->pool->nhosts; h++)
        if (w->dest_ok[h]) {
            *mm += mem_frac(w, h);
            *mc += cpu_frac(w, h);
            n++;
        }
    if (n) {
        *mm /= (double)n;
        *mc /= (double)n;
    }
}

/* Sum of squared distances to the mean: what balance lowers. */
static double spread(const struct work *w)
{
    double mm, mc, s = 0;
    means(w, &mm, &mc);
    for (size_t h = 0; h < w->pool->nhosts; h++)
        if (w->dest_ok[h]) {
            double a = mem_frac(w, h) - mm, b = cpu_frac(w, h) - mc;
            s += a * a + b * b;
        }
    return s;
}

/* The host farthest outside the threshold, or -1 if every host is inside. */
static int worst_host(const struct work *w, double thr, double *dev_out)
{
    double mm, mc, worst = thr;
    int hw = -1;
    means(w, &mm, &mc);
    for (size_t h = 0; h < w->pool->nhosts; h++) {
        if (!w->dest_ok[h])
            continue;
        double dm = mem_frac(w, h) - mm, dc = cpu_frac(w, h) - mc;
        dm = dm < 0 ? -dm : dm;
        dc = dc < 0 ? -dc : dc;
        double dv = dm > dc ? dm : dc;
        if (dv > worst + 1e-9) {
            worst = dv;
            hw = (int)h;
        }
    }
    *dev_out = worst;
    return hw;
}

static int balance(struct work *w)
{
    const struct mig_pool *pool = w->pool;
    double thr = mig_pool_policy_threshold(w->pol) / 100.0, dev;
    unsigned moves = 0;
    int hw;

    while (moves < w->pol->max_moves && (hw = worst_host(w, thr, &dev)) >= 0) {
        double cur = spread(w), best = cur - 1e-9, mm, mc;
        int bd = -1, bh = -1;
        char why[256];
        for (size_t d = 0; d < pool->ndoms; d++) {
            int from = w->where[d];
            if (!w->dest_ok[from])
                continue;
            for (size_t h = 0; h < pool->nhosts; h++) {
                if (!can_place(w, (int)d, (int)h, MIG_RULE_BALANCE, -1, why, sizeof(why)))
                    continue;
                relocate(w, (int)d, (int)h);
                double s = spread(w);
                relocate(w, (int)d, from);
                if (s < best) {
                    best = s;
                    bd = (int)d;
                    bh = (int)h;
                }
            }
        }
        if (bd < 0)
            break; /* nothing improves: leave it */
        means(w, &mm, &mc);
        int from = w->where[bd];
        int rc = add_move(w, bd, bh, MIG_RULE_BALANCE,
                          "balance: %s is %.0f points from the pool mean (mem %.0f%%, cpu %.0f%%; "
                          "mean %.0f%%/%.0f%%; threshold %.0f); %s: mem %.0f%%, cpu %.0f%%",
                          pool->hosts[hw].name, dev * 100, mem_frac(w, (size_t)from) * 100,
                          cpu_frac(w, (size_t)from) * 100, mm * 100, mc * 100, thr * 100,
                          pool->hosts[bh].name, mem_frac(w, (size_t)bh) * 100,
                          cpu_frac(w, (size_t)bh) * 100);
        if (rc < 0)
            return rc;
        moves++;
    }
    return 0;
}

/* ---- consolidation ------------------------------------------------------ */

static size_t doms_on(const struct work *w, int h, int *ids)
{
    size_t n = 0;
    for (size_t d = 0; d < w->pool->ndoms; d++)
        if (w->where[d] == h) {
            if (ids)
                ids[n] = (int)d;
            n++;
        }
    return n;
}

static int cmp_used_asc(const void *a, const void *b, void *wp)
{
    const struct work *w = wp;
    int x = *(const int *)a, y = *(const int *)b;
    if (w->used[x] != w->used[y])
        return w->used[x] < w->used[y] ? -1 : 1;
    return x - y;
}

static int consolidate(struct work *w)
{
    const struct mig_pool *pool = w->pool;
    int *order = NULL, *ids = NULL, failed, rc = 0;
    bool *closed = NULL, *saved = NULL;
    size_t n = 0, busy = 0, start_moves = w->plan->nmoves;
    int headroom = (int)w->pol->cpu_headroom_pct;

    order = malloc(pool->nhosts * sizeof(*order));
    ids = malloc((pool->ndoms ? pool->ndoms : 1) * sizeof(*ids));
    closed = calloc(pool->nhosts, sizeof(*closed));
    saved = calloc(pool->nhosts, sizeof(*saved));
    if (!order || !ids || !closed || !saved) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    for (size_t h = 0; h < pool->nhosts; h++)
        if (w->dest_ok[h] && doms_on(w, (int)h, NULL) > 0)
            order[n++] = (int)h;
    busy = n;
    qsort_r(order, n, sizeof(*order), cmp_used_asc, w);
    for (size_t i = 0; i < n && busy > w->pol->min_hosts; i++) {
        struct snap s = {0};
        int c = order[i];
        size_t k = doms_on(w, c, ids);
        if (w->pol->consolidate_max_moves &&
            w->plan->nmoves - start_moves + k > w->pol->consolidate_max_moves)
            break;
        if ((rc = snap_take(w, &s)) < 0) {
            snap_dispose(&s);
            goto out;
        }
        /* neither the host being emptied nor the ones already empty receive */
        closed[c] = true;
        for (size_t h = 0; h < pool->nhosts; h++) {
            saved[h] = w->dest_ok[h];
            if (closed[h] || doms_on(w, (int)h, NULL) == 0)
                w->dest_ok[h] = false;
        }
        sort_by_mem(pool, ids, k);
        rc = place_all(w, ids, k, false, MIG_RULE_CONSOLIDATE, headroom, &failed);
        for (size_t h = 0; h < pool->nhosts; h++)
            w->dest_ok[h] = saved[h];
        if (rc == 1) {
            snap_restore(w, &s);
            closed[c] = false;
            rc = 0;
        } else if (rc == 0) {
            busy--;
        }
        snap_dispose(&s);
        if (rc < 0)
            goto out;
    }
out:
    free(saved);
    free(closed);
    free(ids);
    free(order);
    return rc;
}

/* ---- entry point -------------------------------------------------------- */

int mig_plan_compute(const struct mig_plan_input *in, struct mig_plan **plan_out)
{
    const struct mig_pool *pool = in ? in->pool : NULL;
    struct work w = {0};
    struct mig_plan *pl = NULL;
    int rc = 0;

    *plan_out = NULL;
    if (!pool || !in->policy || !pool->nhosts)
        return -MIG_EINVAL;
    for (size_t d = 0; d < pool->ndoms; d++)
        if (pool->doms[d].host < 0 || (size_t)pool->doms[d].host >= pool->nhosts)
            return -MIG_EINVAL;
    pl = calloc(1, sizeof(*pl));
    w.where = malloc((pool->ndoms ? pool->ndoms : 1) * sizeof(*w.where));
    w.freeb = calloc(pool->nhosts, sizeof(*w.freeb));
    w.used = calloc(pool->nhosts, sizeof(*w.used));
    w.cpu = calloc(pool->nhosts, sizeof(*w.cpu));
    w.dest_ok = calloc(pool->nhosts, sizeof(*w.dest_ok));
    if (pl)
        pl->empty = calloc(pool->nhosts, sizeof(*pl->empty));
    if (!pl || !pl->empty || !w.where || !w.freeb || !w.used || !w.cpu || !w.dest_ok) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    pl->nhosts = pool->nhosts;
    w.in = in;
    w.pool = pool;
    w.pol = in->policy;
    w.compat = in->compat ? in->compat : mig_compat_facts;
    w.plan = pl;
    for (size_t d = 0; d < pool->ndoms; d++) {
        w.where[d] = pool->doms[d].host;
        w.used[w.where[d]] += pool->doms[d].mem_bytes;
        w.cpu[w.where[d]] += dom_cpu(&pool->doms[d]);
    }
    for (size_t h = 0; h < pool->nhosts; h++) {
        const struct mig_pool_host *host = &pool->hosts[h];
        int64_t f = (int64_t)cap_of(host) - (int64_t)w.used[h];
        /* a host that reports its free memory may have less than the sum says (dom0, overhead) */
        if (host->mem_free_bytes) {
            int64_t rep = (int64_t)host->mem_free_bytes - (int64_t)host->reserve_bytes;
            if (rep < f)
                f = rep;
        }
        w.freeb[h] = f;
        w.dest_ok[h] = host->reachable && !host->maintenance && !host->unhealthy;
    }
    if (in->rules & MIG_RULE_MAINTENANCE)
        rc = evacuate(&w, MIG_RULE_MAINTENANCE);
    if (!rc && !pl->impossible && (in->rules & MIG_RULE_AVOID))
        rc = evacuate(&w, MIG_RULE_AVOID);
    if (!rc && !pl->impossible && (in->rules & MIG_RULE_BALANCE))
        rc = balance(&w);
    if (!rc && !pl->impossible && (in->rules & MIG_RULE_CONSOLIDATE))
        rc = consolidate(&w);
    if (rc < 0)
        goto out;
    for (size_t h = 0; h < pool->nhosts; h++)
        pl->empty[h] = pool->hosts[h].reachable && doms_on(&w, (int)h, NULL) == 0;
out:
    free(w.where);
    free(w.freeb);
    free(w.used);
    free(w.cpu);
    free(w.dest_ok);
    if (rc < 0) {
        mig_plan_free(pl);
        return rc;
    }
    *plan_out = pl;
    return 0;
}

void mig_plan_free(struct mig_plan *plan)
{
    if (!plan)
        return;
    free(plan->moves);
    free(plan->empty);
    free(plan);
}
