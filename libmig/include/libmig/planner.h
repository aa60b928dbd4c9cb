/*
 * planner.h: dom0 cron policies (maintenance, balance, consolidate, avoid).
 * See docs/policies.md.
 *
 * Entry points:
 *   policy files:  mig_pool_policy_load() / mig_pool_policy_parse(), mig_pool_policy_free()
 *   the pool:      mig_pool_new(), mig_pool_add_host(), mig_pool_set_facts()
 *                  (a host's `xl-migrate-live facts` JSON), mig_pool_add_dom(),
 *                  mig_pool_free()
 *   planning:      mig_plan_compute(), a pure function from (pool, policy,
 *                  previous run's moves) to an ordered list of moves with a
 *                  reason each; mig_plan_free()
 *   compatibility: mig_compat_fn, a predicate the caller passes in; the
 *                  default mig_compat_facts() uses facts-level rules.
 *
 * The policy struct is mig_pool_policy because `enum mig_policy` (migrate.h)
 * already names the pre-copy stop policy.
 *
 * The pool, policy and plan are plain data: the planner and its callers read
 * their fields directly. Strings in them are owned by the object holding them.
 */
#ifndef LIBMIG_PLANNER_H
#define LIBMIG_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmig/mig.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- policy file ------------------------------------------------------- */

/* One host of the pool as the policy names it. argv arrays are
 * NULL-terminated and owned. */
struct mig_policy_host {
    char *name;    /* the host's name in the pool */
    char *uri;     /* transport URI a migration uses to reach it (tls:H:P, ssh:H, tcp:H:P) */
    char **exec;   /* argv prefix running xl-migrate-live on this host
                      (default: ssh NAME xl-migrate-live) */
    char **health; /* health command run on this dom0, or NULL */
    uint64_t reserve_bytes; /* bytes: memory never planned for guests (default 0) */
};

/* Domains that must run on distinct hosts. */
struct mig_policy_group {
    char *name;     /* "" when the file gives none */
    char **domains; /* NULL-terminated */
};

/* A domain allowed only on some hosts. */
struct mig_policy_pin {
    char *domain;
    char **hosts; /* NULL-terminated host names */
};

struct mig_pool_policy {
    char *file;           /* the path it was read from */
    char *pool;           /* pool name ("" if not given) */
    char *profile;        /* compatibility profile name of the pool */
    unsigned concurrency; /* count: moves at once (default 1) */
    struct mig_policy_host *hosts;
    size_t nhosts;
    /* rules */
    bool maintenance;        /* evacuate hosts flagged for maintenance (default on) */
    bool avoid;              /* evacuate hosts whose health command fails (default on) */
    bool balance;            /* default off */
    unsigned threshold_pct;  /* percent points around the pool mean (default 10) */
    unsigned aggressiveness; /* 1 (conservative) .. 5 (aggressive), default 3 */
    unsigned max_moves;      /* count: balance moves per run (default 4) */
    bool consolidate;        /* default off */
    int window_start_min;    /* minutes after midnight, -1: no window (always) */
    int window_end_min;
    unsigned cpu_headroom_pct; /* percent of a host's CPUs kept free when packing (default 20) */
    unsigned min_hosts;        /* hosts kept powered (default 1) */
    unsigned consolidate_max_moves; /* count, 0: no limit */
    char **hook;                    /* run with the empty host's name appended; NULL: none */
    struct mig_policy_group *anti_affinity;
    size_t nanti_affinity;
    struct mig_policy_pin *pins;
    size_t npins;
};

/* Read and check a policy file. On a parse or schema error returns
 * -MIG_EPARSE (or -MIG_EIO) and writes "FILE:LINE:COLUMN: message" to err.
 * Caller frees *pol_out with mig_pool_policy_free(). */
MIG_EXPORT int mig_pool_policy_load(const char *path, struct mig_pool_policy **pol_out, char *err,
                                    size_t errlen);
/* The same from text in memory; 'name' stands for the file in messages. */
MIG_EXPORT int mig_pool_policy_parse(const char *text, size_t len, const char *name,
                                     struct mig_pool_policy **pol_out, char *err, size_t errlen);
MIG_EXPORT void mig_pool_policy_free(struct mig_pool_policy *pol); /* NULL-safe */
/* Index of host 'name' in pol->hosts, or -1. */
MIG_EXPORT int mig_pool_policy_host_index(const struct mig_pool_policy *pol, const char *name);
/* The effective balance threshold in percent points after aggressiveness. */
MIG_EXPORT double mig_pool_policy_threshold(const struct mig_pool_policy *pol);
/* true if 'minute' (after midnight) is inside the consolidation window. */
MIG_EXPORT bool mig_pool_policy_in_window(const struct mig_pool_policy *pol, int minute);

/* ---- the pool ---------------------------------------------------------- */

#define MIG_POOL_NAME_MAX 80

struct mig_pool_host {
    char name[MIG_POOL_NAME_MAX];
    bool reachable;           /* its facts were read */
    bool maintenance;         /* evacuated, refuses placements */
    bool unhealthy;           /* its health command failed: evacuated, refuses placements */
    uint64_t mem_total_bytes; /* bytes */
    uint64_t mem_free_bytes;  /* bytes: as the host reports it, 0 if it does not */
    uint64_t reserve_bytes;   /* bytes: kept free (from the policy) */
    unsigned cpus;            /* count: physical CPUs for guests */
    char cpu_vendor[32];      /* "GenuineIntel", "AuthenticAMD", "" unknown */
    char *cpu_features;       /* space-separated, owned; NULL unknown */
};

struct mig_pool_dom {
    char name[MIG_POOL_NAME_MAX];
    int host;           /* index in pool->hosts */
    uint64_t mem_bytes; /* bytes */
    unsigned vcpus;     /* count */
    double cpu_load;    /* fraction of its vCPUs busy, 0..1 (1 when unknown) */
    char profile[64];   /* compatibility profile it runs under, "" unknown */
    char *cpu_features; /* required CPU features, owned; NULL: its host's */
};

struct mig_pool {
    struct mig_pool_host *hosts;
    size_t nhosts;
    struct mig_pool_dom *doms;
    size_t ndoms;
};

MIG_EXPORT int mig_pool_new(struct mig_pool **pool_out);
MIG_EXPORT void mig_pool_free(struct mig_pool *pool); /* NULL-safe */
/* Add host 'name' (unreachable until its facts are set); *idx_out its index. */
MIG_EXPORT int mig_pool_add_host(struct mig_pool *pool, const char *name, int *idx_out);
/* Add a domain on host 'host'; *dom_out is borrowed until the next add. */
MIG_EXPORT int mig_pool_add_dom(struct mig_pool *pool, int host, const char *name,
                                uint64_t mem_bytes, unsigned vcpus, struct mig_pool_dom **dom_out);
/* Fill host 'host' from the JSON text `xl-migrate-live facts` prints there
 * (docs/policies.md, "Facts"): memory, CPUs, vendor, features, and its
 * "domains" array. Marks the host reachable. -MIG_EPARSE with a message in
 * err on bad JSON or a missing key. */
MIG_EXPORT int mig_pool_set_facts(struct mig_pool *pool, int host, const char *json, char *err,
                                  size_t errlen);
/* Index of domain 'name', or -1. */
MIG_EXPORT int mig_pool_dom_index(const struct mig_pool *pool, const char *name);

/* ---- planning ---------------------------------------------------------- */

enum mig_rule {
    MIG_RULE_MAINTENANCE = 1 << 0,
    MIG_RULE_AVOID = 1 << 1,
    MIG_RULE_BALANCE = 1 << 2,
    MIG_RULE_CONSOLIDATE = 1 << 3,
};
MIG_EXPORT const char *mig_rule_name(enum mig_rule r); /* static string */

/* May domain 'dom' run on host 'dst'? false writes the reason to why. The
 * planner checks memory, pins and anti-affinity itself. */
typedef bool mig_compat_fn(void *opaque, const struct mig_pool *pool,
                           const struct mig_pool_dom *dom, int dst, char *why, size_t whylen);

/* Facts-level rules until the profile check plugs in: the same CPU vendor as
 * the domain's host, and the domain's CPU features (its host's when it has
 * none of its own) a subset of the destination's. opaque is unused. */
MIG_EXPORT bool mig_compat_facts(void *opaque, const struct mig_pool *pool,
                                 const struct mig_pool_dom *dom, int dst, char *why, size_t whylen);

struct mig_move {
    char domain[MIG_POOL_NAME_MAX];
    int from; /* host index */
    int to;   /* host index */
    enum mig_rule rule;
    char reason[256];
};

struct mig_plan_input {
    const struct mig_pool *pool;          /* borrowed */
    const struct mig_pool_policy *policy; /* borrowed; hosts in the same order as the pool's */
    unsigned rules;                       /* MIG_RULE_* bits to apply, in the order of the enum */
    const struct mig_move *prev;          /* the previous run's moves (hysteresis), may be NULL */
    size_t nprev;
    mig_compat_fn *compat; /* NULL: mig_compat_facts */
    void *compat_opaque;
};

struct mig_plan {
    struct mig_move *moves; /* in the order to run them */
    size_t nmoves;
    bool impossible; /* nothing may run: see why */
    char why[512];
    bool *empty; /* per host: left without domains (consolidation candidates) */
    size_t nhosts;
};

/* Pure: reads only its input. 0 with *plan_out (caller frees with
 * mig_plan_free()), including an impossible plan (plan->impossible, no
 * moves); -MIG_ENOMEM / -MIG_EINVAL otherwise. */
MIG_EXPORT int mig_plan_compute(const struct mig_plan_input *in, struct mig_plan **plan_out);
MIG_EXPORT void mig_plan_free(struct mig_plan *plan); /* NULL-safe */

#ifdef __cplusplus
}
#endif
#endif
