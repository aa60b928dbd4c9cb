/*
 * convergence.c: the pre-copy stop policies (downtime target, Xen's xl
 * default, total-time limit) and the auto-converge throttle. Entry points:
 * mig__policy_decide(), mig__throttle_next(), mig__predict_downtime_ms().
 */
#include <config.h>

#include "convergence.h"

/* Xen's libxc defaults (xg_sr_save.c): at most 5 rounds, or stop early when
 * fewer than 50 pages are dirty. */
#define XL_MAX_ROUNDS 5u
#define XL_DIRTY_THRESHOLD 50u

uint64_t mig__predict_downtime_ms(const struct mig__round_stats *st)
{
    if (st->bandwidth == 0)
        return UINT64_MAX;
    uint64_t bytes = st->dirty_pages * st->page_size + st->extra_bytes;
    /* round up so a sub-millisecond copy never predicts zero */
    uint64_t copy_ms = (bytes * 1000u + st->bandwidth - 1) / st->bandwidth;
    return copy_ms + st->fixed_cost_ms;
}

enum mig__decision mig__policy_decide(const struct mig__round_stats *st,
                                      const struct mig__policy_params *p)
{
    if (p->timeout_ms && st->elapsed_ms >= p->timeout_ms)
        return p->on_timeout == MIG_ON_TIMEOUT_SWITCHOVER ? MIG_DECIDE_STOP_AND_COPY
                                                          : MIG_DECIDE_ABORT;
    switch (p->policy) {
    case MIG_POLICY_XL:
        if (st->round >= XL_MAX_ROUNDS || st->dirty_pages < XL_DIRTY_THRESHOLD)
            return MIG_DECIDE_STOP_AND_COPY;
        return MIG_DECIDE_CONTINUE;
    case MIG_POLICY_DOWNTIME:
    default: {
        if (st->dirty_pages == 0 && st->extra_bytes == 0)
            return MIG_DECIDE_STOP_AND_COPY;
        if (mig__predict_downtime_ms(st) <= p->downtime_ms)
            return MIG_DECIDE_STOP_AND_COPY;
        uint32_t cap = p->max_rounds ? p->max_rounds : 30u;
        /* Past the round cap with no time limit to hand over to, stop and copy
         * what is dirty rather than loop for ever (a time limit decides itself). */
        if (st->round >= cap && !p->timeout_ms)
            return MIG_DECIDE_STOP_AND_COPY;
        return MIG_DECIDE_CONTINUE;
    }
    }
}

const char *mig__decision_name(enum mig__decision d)
{
    switch (d) {
    case MIG_DECIDE_CONTINUE:
        return "continue";
    case MIG_DECIDE_STOP_AND_COPY:
        return "stop-and-copy";
    case MIG_DECIDE_ABORT:
        return "abort";
    }
    return "?";
}

uint32_t mig__throttle_next(struct mig__throttle_state *ts, const struct mig__round_stats *st)
{
    /* Not converging: the guest dirties at least half of what we can send in
     * the same time (QEMU's dirty-sync heuristic). */
    bool behind = st->bandwidth == 0 ? false : st->dirty_rate * 2 >= st->bandwidth;
    if (!behind) {
        ts->bad_rounds = 0;
        return ts->percent;
    }
    /* two bad rounds before the first step (one may be a burst); once
     * throttling, every further bad round steps up */
    if (++ts->bad_rounds < 2 && ts->percent == 0)
        return ts->percent;
    if (ts->percent == 0)
        ts->percent = MIG_THROTTLE_INITIAL;
    else if (ts->percent + MIG_THROTTLE_STEP >= MIG_THROTTLE_MAX)
        ts->percent = MIG_THROTTLE_MAX;
    else
        ts->percent += MIG_THROTTLE_STEP;
    return ts->percent;
}

uint32_t mig__throttle_to_cap(uint32_t vcpus, uint32_t percent)
{
    if (percent == 0)
        return 0;
    if (percent > 100)
        percent = 100;
    uint32_t cap = vcpus * (100u - percent);
    return cap ? cap : 1u;
}
