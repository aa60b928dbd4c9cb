/*
 * convergence.h: when to stop pre-copy, and how hard to throttle a guest
 * that dirties memory faster than the link moves it. Pure functions over
 * per-round statistics, so they are unit-tested without a guest.
 */
#ifndef MIG_CONVERGENCE_H
#define MIG_CONVERGENCE_H

#include <stdbool.h>
#include <stdint.h>

#include <libmig/migrate.h>

#include "mig-internal.h"


enum mig__decision {
    MIG_DECIDE_CONTINUE = 0,
    MIG_DECIDE_STOP_AND_COPY,
    MIG_DECIDE_ABORT,
};

/* What the engine knows after a round's get-and-clear. */
struct mig__round_stats {
    uint32_t round;             /* count: rounds completed (round 0 = the full copy) */
    uint64_t dirty_pages;       /* pages: dirty now, to be sent next */
    uint64_t extra_bytes;       /* bytes: hooks' data still to send (disk blocks) */
    uint32_t page_size;         /* bytes */
    uint64_t bandwidth;         /* bytes/s: measured in the last round (0: unknown) */
    uint64_t dirty_rate;        /* bytes/s: distinct pages dirtied per second x page size */
    uint64_t fixed_cost_ms;     /* ms: measured or estimated suspend + state + commit cost */
    uint64_t elapsed_ms;        /* ms: since the migration started */
    uint32_t throttle;          /* percent: applied now */
};

struct mig__policy_params {
    enum mig_policy policy;
    uint32_t downtime_ms;       /* ms: target (default 300) */
    uint32_t timeout_ms;        /* ms: total-time limit, 0 = none */
    enum mig_on_timeout on_timeout;
    uint32_t max_rounds;        /* count: hard cap on rounds for the downtime policy (0: 30) */
};

/* Predicted stop-and-copy time in ms: dirty bytes / bandwidth + fixed cost.
 * UINT64_MAX when the bandwidth is unknown. */
uint64_t mig__predict_downtime_ms(const struct mig__round_stats *st);

enum mig__decision mig__policy_decide(const struct mig__round_stats *st,
                                      const struct mig__policy_params *p);

const char *mig__decision_name(enum mig__decision d);

/*
 * Auto-converge (QEMU's auto-converge, vMotion's SDPS): throttle when the
 * guest dirties at least half as fast as we send, for two rounds in a row.
 * First step 20% after two such rounds, then +10% for every further round
 * that still fails to converge, cap 99%.
 */
struct mig__throttle_state {
    uint32_t percent;           /* percent: current throttle */
    uint32_t bad_rounds;        /* count: consecutive rounds without progress */
};

/* Returns the new throttle percent (may equal the old one). */
uint32_t mig__throttle_next(struct mig__throttle_state *ts, const struct mig__round_stats *st);

#define MIG_THROTTLE_INITIAL 20u
#define MIG_THROTTLE_STEP 10u
#define MIG_THROTTLE_MAX 99u

/* Xen's scheduler cap for a throttle of 'percent' (1..100) on 'vcpus' vCPUs:
 * a cap is in percent of one physical CPU and 0 means uncapped, so the
 * throttled cap is max(1, vcpus * (100 - percent)), never 0. percent 0 returns
 * 0, but lifting a throttle restores the admin's saved cap, not 0. */
uint32_t mig__throttle_to_cap(uint32_t vcpus, uint32_t percent);

#endif
