/*
 * test-planner.c: the policy parser, facts parsing and the pure planner on
 * pools built here: evacuation (maintenance, avoid), balance with its
 * threshold, move cap and hysteresis, anti-affinity, pins, consolidation,
 * impossible plans, and a compatibility predicate plugged in from outside.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libmig/planner.h>

#define G (1024ull * 1024 * 1024)
#define M (1024ull * 1024)

static const char base_policy[] = "profile: xeon-v4\n"
                                  "hosts:\n"
                                  "  - {name: a, uri: 'tcp:127.0.0.1:1'}\n"
                                  "  - {name: b, uri: 'tcp:127.0.0.1:2'}\n"
                                  "  - {name: c, uri: 'tcp:127.0.0.1:3'}\n"
                                  "  - {name: d, uri: 'tcp:127.0.0.1:4'}\n";

static struct mig_pool_policy *policy(const char *extra)
{
    char text[4096], err[512] = "";
    struct mig_pool_policy *pol = NULL;
    snprintf(text, sizeof(text), "%s%s", base_policy, extra ? extra : "");
    int rc = mig_pool_policy_parse(text, strlen(text), "test.yaml", &pol, err, sizeof(err));
    if (rc)
        fail_msg("policy: %s", err);
    return pol;
}

/* A host with 'total' memory and 'cpus', Intel, features given. */
static int host(struct mig_pool *p, const char *name, uint64_t total, unsigned cpus,
                const char *vendor, const char *features)
{
    int idx;
    assert_int_equal(mig_pool_add_host(p, name, &idx), 0);
    p->hosts[idx].reachable = true;
    p->hosts[idx].mem_total_bytes = total;
    p->hosts[idx].cpus = cpus;
    snprintf(p->hosts[idx].cpu_vendor, sizeof(p->hosts[idx].cpu_vendor), "%s", vendor);
    p->hosts[idx].cpu_features = features ? strdup(features) : NULL;
    return idx;
}

static void dom(struct mig_pool *p, int h, const char *name, uint64_t mem, unsigned vcpus,
                double load, const char *features)
{
    struct mig_pool_dom *d;
    assert_int_equal(mig_pool_add_dom(p, h, name, mem, vcpus, &d), 0);
    d->cpu_load = load;
    d->cpu_features = features ? strdup(features) : NULL;
}

static struct mig_plan *plan(struct mig_pool *p, struct mig_pool_policy *pol, unsigned rules,
                             const struct mig_move *prev, size_t nprev)
{
    struct mig_plan_input in = {
        .pool = p, .policy = pol, .rules = rules, .prev = prev, .nprev = nprev};
    struct mig_plan *pl = NULL;
    assert_int_equal(mig_plan_compute(&in, &pl), 0);
    assert_non_null(pl);
    return pl;
}

/* Where domain 'name' runs after the plan. */
static int final_host(const struct mig_pool *p, const struct mig_plan *pl, const char *name)
{
    int d = mig_pool_dom_index(p, name), h;
    assert_true(d >= 0);
    h = p->doms[d].host;
    for (size_t i = 0; i < pl->nmoves; i++)
        if (strcmp(pl->moves[i].domain, name) == 0) {
            assert_int_equal(pl->moves[i].from, h); /* moves chain */
            h = pl->moves[i].to;
        }
    return h;
}

/* Memory after the plan never exceeds a host's total. */
static void assert_fits(const struct mig_pool *p, const struct mig_plan *pl)
{
    for (size_t h = 0; h < p->nhosts; h++) {
        uint64_t used = 0;
        for (size_t d = 0; d < p->ndoms; d++)
            if (final_host(p, pl, p->doms[d].name) == (int)h)
                used += p->doms[d].mem_bytes;
        assert_true(used <= p->hosts[h].mem_total_bytes);
    }
}

/* ---- policy files ------------------------------------------------------- */

static void t_policy_full(void **st)
{
    (void)st;
    struct mig_pool_policy *pol =
        policy("concurrency: 2\n"
               "rules:\n"
               "  balance: {threshold: 15%, aggressiveness: 5, max_moves: 3}\n"
               "  consolidate:\n"
               "    window: '22:30-06:00'\n"
               "    cpu_headroom: 25%\n"
               "    hook: [/usr/local/sbin/power-off, --yes]\n"
               "  avoid: {enabled: false}\n"
               "anti_affinity:\n"
               "  - [web01, web02]\n"
               "  - {name: dns, domains: [ns1, ns2, ns3]}\n"
               "pin:\n"
               "  db01: [a, b]\n");
    assert_string_equal(pol->profile, "xeon-v4");
    assert_int_equal(pol->nhosts, 4);
    assert_string_equal(pol->hosts[1].uri, "tcp:127.0.0.1:2");
    assert_string_equal(pol->hosts[1].exec[0], "ssh"); /* default exec */
    assert_string_equal(pol->hosts[1].exec[1], "b");
    assert_int_equal(pol->concurrency, 2);
    assert_true(pol->balance && pol->consolidate && pol->maintenance && !pol->avoid);
    assert_int_equal(pol->threshold_pct, 15);
    assert_int_equal(pol->max_moves, 3);
    assert_true(mig_pool_policy_threshold(pol) > 7.4 && mig_pool_policy_threshold(pol) < 7.6);
    assert_int_equal(pol->cpu_headroom_pct, 25);
    assert_string_equal(pol->hook[1], "--yes");
    assert_true(mig_pool_policy_in_window(pol, 23 * 60));
    assert_true(mig_pool_policy_in_window(pol, 5 * 60));
    assert_false(mig_pool_policy_in_window(pol, 12 * 60));
    assert_int_equal(pol->nanti_affinity, 2);
    assert_string_equal(pol->anti_affinity[1].domains[2], "ns3");
    assert_string_equal(pol->pins[0].hosts[1], "b");
    mig_pool_policy_free(pol);
}

static void expect_error(const char *text, const char *want)
{
    char err[512] = "";
    struct mig_pool_policy *pol = NULL;
    int rc = mig_pool_policy_parse(text, strlen(text), "p.yaml", &pol, err, sizeof(err));
    assert_int_equal(rc, -MIG_EPARSE);
    assert_null(pol);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void t_policy_errors(void **st)
{
    (void)st;
    expect_error("profile: x\nhosts:\n  - {name: a, uri: 'tcp:h:1'}\nrules:\n  balance:\n"
                 "    thresold: 10\n",
                 "p.yaml:6:5: unknown key 'thresold' in balance (did you mean 'threshold'?)");
    expect_error("profil: x\n", "p.yaml:1:1: unknown key 'profil' in the policy (did you mean "
                                "'profile'?)");
    expect_error("hosts:\n  - {name: a, uri: 'tcp:h:1'}\n", "needs a 'profile'");
    expect_error("profile: x\nhosts:\n  - {name: a}\n", "p.yaml:3:5: host 'a' needs a 'uri'");
    expect_error("profile: x\nhosts:\n  - {name: a, uri: u}\n  - {name: a, uri: v}\n",
                 "p.yaml:4:5: host 'a' is listed twice");
    expect_error("profile: x\nhosts:\n  - {name: a, uri: u}\nrules:\n  consolidate: {window: 25}\n",
                 "p.yaml:5:25: 'window' must be");
    expect_error("profile: x\nhosts:\n  - {name: a, uri: u}\npin:\n  db: [z]\n", "no host 'z'");
    expect_error("profile: x\nhosts: [\n", "p.yaml:");
    expect_error(
        "profile: x\nhosts:\n  - {name: a, uri: u}\nrules: {balance: {aggressiveness: 9}}\n",
        "'aggressiveness' must be a whole number from 1 to 5");
}

/* The documented examples parse. */
static void t_policy_examples(void **st)
{
    (void)st;
    static const char *const files[] = {"maintenance-only.yaml", "drs.yaml", "dpm-night.yaml"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[4096], err[512] = "";
        struct mig_pool_policy *pol = NULL;
        snprintf(path, sizeof(path), "%s/%s", POLICY_EXAMPLES, files[i]);
        if (mig_pool_policy_load(path, &pol, err, sizeof(err)) != 0)
            fail_msg("%s", err);
        assert_true(pol->nhosts >= 3);
        mig_pool_policy_free(pol);
    }
}

/* ---- facts -------------------------------------------------------------- */

static void t_facts(void **st)
{
    (void)st;
    struct mig_pool *p;
    char err[512] = "";
    int a, b;
    assert_int_equal(mig_pool_new(&p), 0);
    assert_int_equal(mig_pool_add_host(p, "a", &a), 0);
    assert_int_equal(mig_pool_add_host(p, "b", &b), 0);
    assert_int_equal(mig_pool_set_facts(
                         p, a,
                         "{\"backend\":\"sim\",\"hostname\":\"x\",\"mem_total_bytes\":8589934592,"
                         "\"mem_free_bytes\":4294967296,\"cpus\":8,\"cpu_vendor\":\"GenuineIntel\","
                         "\"cpu_features\":[\"sse4_2\",\"avx2\"],\"domains\":["
                         "{\"name\":\"web01\",\"mem_bytes\":536870912,\"vcpus\":2,"
                         "\"profile\":\"xeon-v4\"},{\"name\":\"db01\",\"mem_bytes\":1073741824,"
                         "\"vcpus\":4,\"cpu_load\":0.5}]}",
                         err, sizeof(err)),
                     0);
    assert_true(p->hosts[a].reachable);
    assert_int_equal(p->hosts[a].mem_total_bytes, 8 * G);
    assert_int_equal(p->hosts[a].mem_free_bytes, 4 * G);
    assert_int_equal(p->hosts[a].cpus, 8);
    assert_string_equal(p->hosts[a].cpu_features, "sse4_2 avx2");
    assert_int_equal(p->ndoms, 2);
    assert_string_equal(p->doms[0].profile, "xeon-v4");
    assert_int_equal(p->doms[1].vcpus, 4);
    assert_true(p->doms[1].cpu_load > 0.49 && p->doms[1].cpu_load < 0.51);
    /* a domain reported twice, a missing key, bad JSON */
    assert_int_equal(mig_pool_set_facts(p, b,
                                        "{\"mem_total_bytes\":1,\"cpus\":1,\"domains\":"
                                        "[{\"name\":\"web01\",\"mem_bytes\":1}]}",
                                        err, sizeof(err)),
                     -MIG_EPARSE);
    assert_non_null(strstr(err, "also reported by host a"));
    assert_int_equal(mig_pool_set_facts(p, b, "{\"cpus\":1,\"domains\":[]}", err, sizeof(err)),
                     -MIG_EPARSE);
    assert_non_null(strstr(err, "lack 'mem_total_bytes'"));
    assert_int_equal(mig_pool_set_facts(p, b, "{\"cpus\":", err, sizeof(err)), -MIG_EPARSE);
    assert_false(p->hosts[b].reachable);
    mig_pool_free(p);
}

/* ---- evacuation --------------------------------------------------------- */

static void t_evacuate_uneven(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy(NULL);
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    /* a: being evacuated; b: small but has avx2; c: big, no avx2 */
    int a = host(p, "a", 16 * G, 8, "GenuineIntel", "sse4_2 avx2");
    int b = host(p, "b", 8 * G, 8, "GenuineIntel", "sse4_2 avx2");
    int c = host(p, "c", 32 * G, 8, "GenuineIntel", "sse4_2");
    dom(p, a, "big", 6 * G, 2, 1, "sse4_2");
    dom(p, a, "vec", 3 * G, 2, 1, "avx2");
    dom(p, a, "m1", 2 * G, 1, 1, "sse4_2");
    dom(p, a, "m2", 2 * G, 1, 1, "sse4_2");
    dom(p, a, "plain", 1 * G, 1, 1, NULL); /* inherits a's features: only b */
    dom(p, b, "bres", 4 * G, 2, 1, NULL);
    dom(p, c, "cres", 8 * G, 2, 1, NULL);
    p->hosts[a].maintenance = true;
    struct mig_plan *pl = plan(p, pol, MIG_RULE_MAINTENANCE, NULL, 0);
    assert_false(pl->impossible);
    assert_int_equal(pl->nmoves, 5);
    for (size_t i = 0; i < pl->nmoves; i++) {
        char why[200];
        int d = mig_pool_dom_index(p, pl->moves[i].domain);
        assert_int_equal(pl->moves[i].from, a);
        assert_int_equal(pl->moves[i].rule, MIG_RULE_MAINTENANCE);
        assert_true(mig_compat_facts(NULL, p, &p->doms[d], pl->moves[i].to, why, sizeof(why)));
        assert_non_null(strstr(pl->moves[i].reason, "maintenance"));
    }
    assert_int_equal(final_host(p, pl, "vec"), b);
    assert_int_equal(final_host(p, pl, "plain"), b);
    assert_int_equal(final_host(p, pl, "big"), c);
    for (size_t d = 0; d < p->ndoms; d++)
        assert_int_not_equal(final_host(p, pl, p->doms[d].name), a);
    assert_fits(p, pl);
    assert_true(pl->empty[a]);
    mig_plan_free(pl);
    mig_pool_free(p);
    mig_pool_policy_free(pol);
}

static void t_impossible(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy(NULL);
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "GenuineIntel", NULL);
    int b = host(p, "b", 4 * G, 8, "GenuineIntel", NULL);
    int c = host(p, "c", 4 * G, 8, "GenuineIntel", NULL);
    dom(p, a, "small", 1 * G, 1, 1, NULL);
    dom(p, a, "huge", 6 * G, 1, 1, NULL);
    dom(p, b, "x", 1 * G, 1, 1, NULL);
    (void)c;
    p->hosts[a].maintenance = true;
    struct mig_plan *pl = plan(p, pol, MIG_RULE_MAINTENANCE | MIG_RULE_BALANCE, NULL, 0);
    assert_true(pl->impossible);
    assert_int_equal(pl->nmoves, 0); /* "small" fits, but nothing is half-done */
    assert_non_null(strstr(pl->why, "no host can take huge"));
    assert_non_null(strstr(pl->why, "c: 4096 MiB free"));
    mig_plan_free(pl);
    mig_pool_free(p);
    mig_pool_policy_free(pol);
}

/* A host whose facts could not be read takes nothing and cannot be evacuated;
 * a host reporting less free memory than its guests leave is believed. */
static void t_unreachable_and_reported_free(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy(NULL);
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "", NULL);
    int b = host(p, "b", 64 * G, 8, "", NULL);
    int c = host(p, "c", 16 * G, 8, "", NULL);
    int d = host(p, "d", 16 * G, 8, "", NULL);
    dom(p, a, "x", 2 * G, 1, 1, NULL);
    p->hosts[b].reachable = false;      /* the biggest, but unknown */
    p->hosts[c].mem_free_bytes = 1 * G; /* dom0 and overhead use the rest */
    p->hosts[a].maintenance = true;
    struct mig_plan *pl = plan(p, pol, MIG_RULE_MAINTENANCE, NULL, 0);
    assert_int_equal(pl->nmoves, 1);
    assert_int_equal(final_host(p, pl, "x"), d);
    mig_plan_free(pl);
    p->hosts[a].maintenance = false;
    p->hosts[b].maintenance = true;
    pl = plan(p, pol, MIG_RULE_MAINTENANCE, NULL, 0);
    assert_true(pl->impossible);
    assert_non_null(strstr(pl->why, "cannot evacuate b: its facts could not be read"));
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

/* Spreading fails, best fit succeeds: the planner must not give up. */
static void t_evacuate_best_fit(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy(NULL);
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "", NULL);
    int b = host(p, "b", 4 * G, 8, "", NULL);
    int c = host(p, "c", 3 * G, 8, "", NULL);
    dom(p, a, "d3", 3 * G, 1, 1, NULL);
    dom(p, a, "d2a", 2 * G, 1, 1, NULL);
    dom(p, a, "d2b", 2 * G, 1, 1, NULL);
    p->hosts[a].maintenance = true;
    struct mig_plan *pl = plan(p, pol, MIG_RULE_MAINTENANCE, NULL, 0);
    assert_false(pl->impossible);
    assert_int_equal(pl->nmoves, 3);
    assert_int_equal(final_host(p, pl, "d3"), c);
    assert_int_equal(final_host(p, pl, "d2a"), b);
    assert_fits(p, pl);
    mig_plan_free(pl);
    mig_pool_free(p);
    mig_pool_policy_free(pol);
}

static void t_avoid(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy(NULL);
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "", NULL);
    int b = host(p, "b", 16 * G, 8, "", NULL);
    int c = host(p, "c", 16 * G, 8, "", NULL);
    dom(p, a, "x", 1 * G, 1, 1, NULL);
    dom(p, b, "y", 1 * G, 1, 1, NULL);
    dom(p, b, "z", 1 * G, 1, 1, NULL);
    p->hosts[b].unhealthy = true;
    /* without the rule nothing moves, but b takes nothing either */
    struct mig_plan *pl = plan(p, pol, MIG_RULE_MAINTENANCE, NULL, 0);
    assert_int_equal(pl->nmoves, 0);
    mig_plan_free(pl);
    pl = plan(p, pol, MIG_RULE_AVOID, NULL, 0);
    assert_int_equal(pl->nmoves, 2);
    for (size_t i = 0; i < pl->nmoves; i++) {
        assert_int_equal(pl->moves[i].from, b);
        assert_int_equal(pl->moves[i].rule, MIG_RULE_AVOID);
        assert_non_null(strstr(pl->moves[i].reason, "health check"));
    }
    /* spread: one to each of a and c (c is emptier first) */
    assert_int_equal(final_host(p, pl, "y"), c);
    assert_int_equal(final_host(p, pl, "z"), a);
    mig_plan_free(pl);
    mig_pool_free(p);
    mig_pool_policy_free(pol);
}

static void t_anti_affinity(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy("anti_affinity:\n  - [web01, web02]\n"
                                         "rules: {balance: {max_moves: 10}}\n");
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "", NULL);
    int b = host(p, "b", 16 * G, 8, "", NULL);
    int c = host(p, "c", 16 * G, 8, "", NULL);
    dom(p, a, "web01", 2 * G, 1, 1, NULL);
    dom(p, c, "web02", 2 * G, 1, 1, NULL); /* c has the most free memory */
    dom(p, b, "fill", 8 * G, 1, 1, NULL);
    p->hosts[a].maintenance = true;
    struct mig_plan *pl = plan(p, pol, MIG_RULE_MAINTENANCE, NULL, 0);
    assert_int_equal(pl->nmoves, 1);
    assert_int_equal(final_host(p, pl, "web01"), b);
    mig_plan_free(pl);
    /* nowhere else to go: impossible, not a co-location */
    p->hosts[b].maintenance = true;
    pl = plan(p, pol, MIG_RULE_MAINTENANCE, NULL, 0);
    assert_true(pl->impossible);
    assert_non_null(strstr(pl->why, "runs web02 (anti-affinity)"));
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

static void t_anti_affinity_balance(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy("anti_affinity:\n  - [w1, w2, w3]\n"
                                         "rules: {balance: {max_moves: 10}}\n");
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "", NULL);
    int b = host(p, "b", 16 * G, 8, "", NULL);
    dom(p, a, "w1", 4 * G, 2, 1, NULL);
    dom(p, a, "big", 8 * G, 2, 1, NULL);
    dom(p, b, "w2", 1 * G, 2, 1, NULL);
    struct mig_plan *pl = plan(p, pol, MIG_RULE_BALANCE, NULL, 0);
    assert_true(pl->nmoves >= 1);
    assert_int_not_equal(final_host(p, pl, "w1"), final_host(p, pl, "w2"));
    assert_int_equal(final_host(p, pl, "big"), b);
    (void)a;
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

static void t_pin(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy("pin:\n  db: [a, d]\n");
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "", NULL);
    host(p, "b", 64 * G, 8, "", NULL);
    host(p, "c", 64 * G, 8, "", NULL);
    int d = host(p, "d", 8 * G, 8, "", NULL);
    dom(p, a, "db", 4 * G, 2, 1, NULL);
    p->hosts[a].maintenance = true;
    struct mig_plan *pl = plan(p, pol, MIG_RULE_MAINTENANCE, NULL, 0);
    assert_int_equal(pl->nmoves, 1);
    assert_int_equal(final_host(p, pl, "db"), d);
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

/* ---- balance ------------------------------------------------------------ */

static void t_balance_balanced(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy("rules: {balance: {threshold: 10, max_moves: 5}}\n");
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "", NULL);
    int b = host(p, "b", 16 * G, 8, "", NULL);
    int c = host(p, "c", 32 * G, 16, "", NULL);
    dom(p, a, "a1", 4 * G, 2, 1, NULL);
    dom(p, a, "a2", 4 * G, 2, 1, NULL);
    dom(p, b, "b1", 7 * G, 4, 1, NULL);
    dom(p, c, "c1", 16 * G, 8, 1, NULL);
    struct mig_plan *pl = plan(p, pol, MIG_RULE_BALANCE, NULL, 0);
    assert_int_equal(pl->nmoves, 0);
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

static double max_dev(const struct mig_pool *p, const struct mig_plan *pl)
{
    double used[8] = {0}, mean = 0, worst = 0;
    for (size_t d = 0; d < p->ndoms; d++)
        used[final_host(p, pl, p->doms[d].name)] += (double)p->doms[d].mem_bytes;
    for (size_t h = 0; h < p->nhosts; h++)
        mean += used[h] / (double)p->hosts[h].mem_total_bytes / (double)p->nhosts;
    for (size_t h = 0; h < p->nhosts; h++) {
        double dv = used[h] / (double)p->hosts[h].mem_total_bytes - mean;
        dv = dv < 0 ? -dv : dv;
        worst = dv > worst ? dv : worst;
    }
    return worst;
}

static void t_balance_unbalanced(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy("rules: {balance: {threshold: 10, max_moves: 2}}\n");
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "", NULL);
    host(p, "b", 16 * G, 8, "", NULL);
    host(p, "c", 16 * G, 8, "", NULL);
    for (int i = 0; i < 6; i++) {
        char n[16];
        snprintf(n, sizeof(n), "g%d", i);
        dom(p, a, n, 2 * G, 1, 0.5, NULL);
    }
    struct mig_plan empty = {0};
    double before = max_dev(p, &empty);
    struct mig_plan *pl = plan(p, pol, MIG_RULE_BALANCE, NULL, 0);
    assert_int_equal(pl->nmoves, 2); /* capped */
    for (size_t i = 0; i < pl->nmoves; i++) {
        assert_int_equal(pl->moves[i].from, a);
        assert_int_equal(pl->moves[i].rule, MIG_RULE_BALANCE);
        assert_non_null(strstr(pl->moves[i].reason, "pool mean"));
    }
    assert_true(max_dev(p, pl) < before);
    mig_plan_free(pl);
    /* with room for more moves it ends inside the threshold */
    pol->max_moves = 10;
    pl = plan(p, pol, MIG_RULE_BALANCE, NULL, 0);
    assert_true(pl->nmoves <= 4);
    assert_true(max_dev(p, pl) <= 0.10 + 1e-9);
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

/* The previous run moved g0 and g1 off b: balance leaves both alone. */
static void t_balance_hysteresis(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy("rules: {balance: {threshold: 5, max_moves: 10}}\n");
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "", NULL);
    int b = host(p, "b", 16 * G, 8, "", NULL);
    dom(p, a, "g0", 4 * G, 1, 1, NULL);
    dom(p, a, "g1", 4 * G, 1, 1, NULL);
    dom(p, a, "g2", 1 * G, 1, 1, NULL);
    struct mig_move prev[2] = {{.domain = "g0", .from = b, .to = a, .rule = MIG_RULE_BALANCE},
                               {.domain = "g1", .from = b, .to = a, .rule = MIG_RULE_BALANCE}};
    struct mig_plan *pl = plan(p, pol, MIG_RULE_BALANCE, prev, 2);
    for (size_t i = 0; i < pl->nmoves; i++)
        assert_string_equal(pl->moves[i].domain, "g2");
    mig_plan_free(pl);
    pl = plan(p, pol, MIG_RULE_BALANCE, NULL, 0);
    assert_true(pl->nmoves >= 1);
    assert_string_not_equal(pl->moves[0].domain, "g2");
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

/* ---- consolidation ------------------------------------------------------ */

static void t_consolidate(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy("rules: {consolidate: {cpu_headroom: 20%}}\n");
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int h[4];
    for (int i = 0; i < 4; i++) {
        char n[8];
        snprintf(n, sizeof(n), "%c", 'a' + i);
        h[i] = host(p, n, 16 * G, 8, "", NULL);
    }
    dom(p, h[0], "a1", 2 * G, 2, 0.2, NULL);
    dom(p, h[1], "b1", 3 * G, 2, 0.2, NULL);
    dom(p, h[2], "c1", 1 * G, 2, 0.2, NULL);
    dom(p, h[2], "c2", 1 * G, 2, 0.2, NULL);
    dom(p, h[3], "d1", 4 * G, 2, 0.2, NULL);
    struct mig_plan *pl = plan(p, pol, MIG_RULE_CONSOLIDATE, NULL, 0);
    size_t empty = 0;
    for (size_t i = 0; i < p->nhosts; i++)
        empty += pl->empty[i];
    assert_true(empty >= 1);
    assert_true(empty <= 3); /* min_hosts 1 */
    for (size_t i = 0; i < pl->nmoves; i++) {
        assert_int_equal(pl->moves[i].rule, MIG_RULE_CONSOLIDATE);
        assert_true(pl->empty[pl->moves[i].from]); /* every move empties its source */
        assert_false(pl->empty[pl->moves[i].to]);
    }
    assert_fits(p, pl);
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

/* min_hosts: never fewer running hosts; pins hold in packing too. */
static void t_consolidate_min_hosts(void **st)
{
    (void)st;
    struct mig_pool_policy *pol =
        policy("rules: {consolidate: {min_hosts: 2, cpu_headroom: 0}}\npin:\n  p1: [c]\n");
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int h[4];
    for (int i = 0; i < 4; i++) {
        char n[8];
        snprintf(n, sizeof(n), "%c", 'a' + i);
        h[i] = host(p, n, 16 * G, 8, "", NULL);
        char dn[16];
        snprintf(dn, sizeof(dn), "v%d", i);
        dom(p, h[i], dn, 1 * G, 1, 0.1, NULL);
    }
    dom(p, h[2], "p1", 1 * G, 1, 0.1, NULL);
    struct mig_plan *pl = plan(p, pol, MIG_RULE_CONSOLIDATE, NULL, 0);
    size_t empty = 0;
    for (size_t i = 0; i < p->nhosts; i++)
        empty += pl->empty[i];
    assert_int_equal(empty, 2);
    assert_false(pl->empty[h[2]]); /* p1 may only run on c */
    assert_int_equal(final_host(p, pl, "p1"), h[2]);
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

/* CPU headroom stops packing even with memory to spare. */
static void t_consolidate_headroom(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy("rules: {consolidate: {cpu_headroom: 50%}}\n");
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 4, "", NULL);
    int b = host(p, "b", 16 * G, 4, "", NULL);
    dom(p, a, "x", 1 * G, 2, 1, NULL);
    dom(p, b, "y", 1 * G, 2, 1, NULL);
    struct mig_plan *pl = plan(p, pol, MIG_RULE_CONSOLIDATE, NULL, 0);
    assert_int_equal(pl->nmoves, 0); /* 4 busy vCPUs on 4 CPUs breaks 50% headroom */
    mig_plan_free(pl);
    pol->cpu_headroom_pct = 0;
    pl = plan(p, pol, MIG_RULE_CONSOLIDATE, NULL, 0);
    assert_int_equal(pl->nmoves, 1);
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

/* ---- compatibility predicate -------------------------------------------- */

static bool refuse_named(void *opaque, const struct mig_pool *pool, const struct mig_pool_dom *d,
                         int dst, char *why, size_t whylen)
{
    (void)d;
    if (strcmp(pool->hosts[dst].name, opaque) == 0) {
        snprintf(why, whylen, "profile says no");
        return false;
    }
    return true;
}

static void t_compat_plugin(void **st)
{
    (void)st;
    struct mig_pool_policy *pol = policy(NULL);
    struct mig_pool *p;
    assert_int_equal(mig_pool_new(&p), 0);
    int a = host(p, "a", 16 * G, 8, "GenuineIntel", NULL);
    host(p, "b", 16 * G, 8, "AuthenticAMD", NULL);
    host(p, "c", 64 * G, 8, "GenuineIntel", NULL);
    host(p, "d", 8 * G, 8, "GenuineIntel", NULL);
    dom(p, a, "x", 1 * G, 1, 1, NULL);
    dom(p, a, "y", 1 * G, 1, 1, NULL);
    p->hosts[a].maintenance = true;
    struct mig_plan_input in = {.pool = p,
                                .policy = pol,
                                .rules = MIG_RULE_MAINTENANCE,
                                .compat = refuse_named,
                                .compat_opaque = "c"};
    struct mig_plan *pl = NULL;
    assert_int_equal(mig_plan_compute(&in, &pl), 0);
    assert_int_equal(pl->nmoves, 2);
    /* c is refused; b is allowed: the vendor rule was replaced, not added to */
    assert_int_equal(pl->moves[0].to, 1);
    for (size_t i = 0; i < pl->nmoves; i++)
        assert_string_not_equal(p->hosts[pl->moves[i].to].name, "c");
    mig_plan_free(pl);
    /* the default predicate refuses the AMD host */
    pl = plan(p, pol, MIG_RULE_MAINTENANCE, NULL, 0);
    assert_int_equal(pl->nmoves, 2);
    for (size_t i = 0; i < pl->nmoves; i++)
        assert_string_not_equal(p->hosts[pl->moves[i].to].name, "b");
    mig_plan_free(pl);
    mig_pool_policy_free(pol);
    mig_pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_policy_full),
        cmocka_unit_test(t_policy_errors),
        cmocka_unit_test(t_policy_examples),
        cmocka_unit_test(t_facts),
        cmocka_unit_test(t_evacuate_uneven),
        cmocka_unit_test(t_impossible),
        cmocka_unit_test(t_evacuate_best_fit),
        cmocka_unit_test(t_unreachable_and_reported_free),
        cmocka_unit_test(t_avoid),
        cmocka_unit_test(t_anti_affinity),
        cmocka_unit_test(t_anti_affinity_balance),
        cmocka_unit_test(t_pin),
        cmocka_unit_test(t_balance_balanced),
        cmocka_unit_test(t_balance_unbalanced),
        cmocka_unit_test(t_balance_hysteresis),
        cmocka_unit_test(t_consolidate),
        cmocka_unit_test(t_consolidate_min_hosts),
        cmocka_unit_test(t_consolidate_headroom),
        cmocka_unit_test(t_compat_plugin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
