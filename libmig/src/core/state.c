/*
 * state.c: the migration state machine. One table of legal edges per role,
 * one checked transition function (compare-and-set from an expected state)
 * that logs every change. No other code assigns fsm->state.
 */
#include <config.h>

#define MIG_LOG_MODULE "state"
#include "mig-internal.h"

#define BIT(s) (1u << (s))

static const char *const state_names[MIG_STATE__COUNT] = {
    [MIG_STATE_NONE] = "none",
    [MIG_STATE_SETUP] = "setup",
    [MIG_STATE_PRECOPY] = "precopy",
    [MIG_STATE_STOPCOPY] = "stop-and-copy",
    [MIG_STATE_COMMIT_SENT] = "commit-sent",
    [MIG_STATE_DONE] = "done",
    [MIG_STATE_FAILED] = "failed",
    [MIG_STATE_CANCELLED] = "cancelled",
    [MIG_STATE_INDOUBT] = "in-doubt",
    [MIG_STATE_RECEIVING] = "receiving",
    [MIG_STATE_READY] = "ready",
    [MIG_STATE_COMMITTED] = "committed",
    [MIG_STATE_DISCARDED] = "discarded",
};

/* Source: before COMMIT every failure resumes the source (FAILED/CANCELLED);
 * after COMMIT is sent only the destination's answer (or resolve) decides. */
static const uint32_t source_edges[MIG_STATE__COUNT] = {
    [MIG_STATE_NONE] = BIT(MIG_STATE_SETUP),
    [MIG_STATE_SETUP] = BIT(MIG_STATE_PRECOPY) | BIT(MIG_STATE_FAILED) | BIT(MIG_STATE_CANCELLED),
    [MIG_STATE_PRECOPY] =
        BIT(MIG_STATE_STOPCOPY) | BIT(MIG_STATE_FAILED) | BIT(MIG_STATE_CANCELLED),
    [MIG_STATE_STOPCOPY] =
        BIT(MIG_STATE_COMMIT_SENT) | BIT(MIG_STATE_FAILED) | BIT(MIG_STATE_CANCELLED),
    /* FAILED here only on an explicit "commit refused, discarded" from the peer. */
    [MIG_STATE_COMMIT_SENT] = BIT(MIG_STATE_DONE) | BIT(MIG_STATE_INDOUBT) | BIT(MIG_STATE_FAILED),
    /* resolve: the destination committed (DONE) or discarded (FAILED, source resumed). */
    [MIG_STATE_INDOUBT] = BIT(MIG_STATE_DONE) | BIT(MIG_STATE_FAILED),
};

static const uint32_t dest_edges[MIG_STATE__COUNT] = {
    [MIG_STATE_NONE] = BIT(MIG_STATE_RECEIVING),
    [MIG_STATE_RECEIVING] = BIT(MIG_STATE_READY) | BIT(MIG_STATE_DISCARDED),
    [MIG_STATE_READY] = BIT(MIG_STATE_COMMITTED) | BIT(MIG_STATE_DISCARDED),
};

const char *mig_state_name(enum mig_state s)
{
    if ((unsigned)s >= MIG_STATE__COUNT)
        return "invalid";
    return state_names[s];
}

bool mig_state_is_final(enum mig_state s)
{
    switch (s) {
    case MIG_STATE_DONE:
    case MIG_STATE_FAILED:
    case MIG_STATE_CANCELLED:
    case MIG_STATE_COMMITTED:
    case MIG_STATE_DISCARDED:
        return true;
    default:
        return false;
    }
}

bool mig_state_edge_ok(enum mig_role role, enum mig_state from, enum mig_state to)
{
    const uint32_t *edges;
    if ((unsigned)from >= MIG_STATE__COUNT || (unsigned)to >= MIG_STATE__COUNT)
        return false;
    switch (role) {
    case MIG_ROLE_SOURCE:
        edges = source_edges;
        break;
    case MIG_ROLE_DESTINATION:
        edges = dest_edges;
        break;
    default:
        return false;
    }
    return (edges[from] & BIT(to)) != 0;
}

void mig_fsm_init(struct mig_fsm *fsm, struct mig_ctx *ctx, enum mig_role role)
{
    fsm->ctx = ctx;
    fsm->role = role;
    fsm->state = MIG_STATE_NONE;
    fsm->entered_ns = mig__now_ns();
}

int mig_fsm_transition(struct mig_fsm *fsm, enum mig_state from, enum mig_state to)
{
    const char *side = fsm->role == MIG_ROLE_SOURCE ? "source" : "destination";
    if (fsm->state != from) {
        MIG_LOG(fsm->ctx, ERROR, "%s: %s -> %s refused: state is %s", side,
                mig_state_name(from), mig_state_name(to), mig_state_name(fsm->state));
        return -MIG_ESTATE;
    }
    if (!mig_state_edge_ok(fsm->role, from, to)) {
        MIG_LOG(fsm->ctx, ERROR, "%s: illegal transition %s -> %s", side, mig_state_name(from),
                mig_state_name(to));
        return -MIG_ESTATE;
    }
    uint64_t now = mig__now_ns();
    MIG_LOG(fsm->ctx, DEBUG, "%s: %s -> %s after %llu ms", side, mig_state_name(from),
            mig_state_name(to), (unsigned long long)((now - fsm->entered_ns) / 1000000u));
    fsm->state = to;
    fsm->entered_ns = now;
    return 0;
}
