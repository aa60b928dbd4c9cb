/*
 * hooks.h: optional sub-tables that ride along with a migration (the block
 * mirror, the network handoff). A hook *class* is registered on the context;
 * for each migration the engine asks every class for an *instance* (a class
 * with nothing to do for this domain returns none) and calls its ops at fixed
 * points of the session, on both sides:
 *
 *   source:       begin -> round(0) -> round(1).. -> stopcopy -> round(final)
 *                 -> ready -> commit -> settle;  abort(why) on any failure
 *                 before COMMIT (only for instances whose begin was called)
 *   destination:  begin(blob) -> record(rec)* -> ready -> commit;  abort(why)
 *                 when the session ends without COMMIT
 *
 * Any error an op returns before COMMIT fails the migration like any other
 * failure: the source resumes unchanged, the destination discards, and each
 * begun hook gets abort(). After COMMIT (source commit/settle, destination
 * commit) a failure is logged and reported, never rolled back.
 *
 * Wire (docs/stream-format.md, HOOK_DATA): the source's begin blob travels
 * on the control channel right after DOMAIN_INFO; the destination answers
 * each with a BEGIN_ACK (or ERROR), and the source waits for every ack before
 * round 0, so a hook's pre-flight (free space, ...) fails before any page
 * moves. During rounds a source hook sends its data on the data channels
 * (mig__hook_send, sharing the bandwidth limit); the destination hands each
 * such record (HOOK_DATA with the class id, or BLOCK_EXTENT for the class
 * MIG_HOOK_ID_BLK) to record() on the thread that read it. Data channels are
 * applied concurrently: a hook that needs ordering between two records sends
 * them on the same channel (they arrive in order there).
 *
 * Parameters reach hooks as "CLASS:KEY=VALUE" strings (mig_params.hook_args
 * on the source, mig_recv_params.hook_args on the destination; the CLI turns
 * e.g. --disk-map SRC=DST into "blk:map=SRC=DST"); mig__hook_arg() reads them.
 *
 * Entry points: mig__hook_register (classes), mig__hook_arg, mig__hook_send;
 * the engine's side is mig__hooks_* below.
 */
#ifndef MIG_HOOKS_H
#define MIG_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "hv-provider.h"
#include "stream.h"

/* Wire ids of the hook classes (HOOK_DATA's u32 hook). */
#define MIG_HOOK_ID_BLK 1u   /* block mirror (libmig/src/blk/) */
#define MIG_HOOK_ID_NET 2u   /* network handoff (net-handoff/) */
#define MIG_HOOK_ID_TEST 255u /* unit tests' recording hook */

/* HOOK_DATA kinds. */
#define MIG_HOOK_KIND_BEGIN 0u     /* source -> destination, control: the begin blob */
#define MIG_HOOK_KIND_BEGIN_ACK 1u /* destination -> source, control: begin succeeded */
#define MIG_HOOK_KIND_CLASS 16u    /* and above: the class's own data records */

#define MIG_MAX_HOOKS 8u

struct mig__hook;
struct mig__hooks;

/* What the engine lends a source hook to send its data. Borrowed; valid from
 * begin to the end of the session. send() is thread-safe (any thread of the
 * hook, e.g. a write-forwarding path): it puts one record of 'type'
 * (MIG_REC_HOOK_DATA or MIG_REC_BLOCK_EXTENT) on data channel
 * 'chan % nchannels', counts it against the session's bandwidth limit and
 * byte counters, and flushes it. Returns that channel's sticky error. */
struct mig__hook_io {
    int (*send)(struct mig__hook_io *io, unsigned chan, uint32_t type, const struct iovec *iov,
                unsigned iovcnt);
    /* Only from the thread running src_round, at least once a second while
     * it works: keeps the control channel alive and reports progress.
     * -MIG_ECANCELLED when the session was cancelled (return it). */
    int (*tick)(struct mig__hook_io *io);
    unsigned nchannels;
    void *opaque; /* the engine's */
};

/* Where an instance comes from. Everything borrowed for the call (copy what
 * the instance keeps). */
struct mig__hook_env {
    struct mig_ctx *ctx;
    enum mig_role role;
    const char *const *args;         /* NULL-terminated "CLASS:KEY=VALUE", may be NULL */
    const struct mig__dom_info *info; /* the domain being moved */
    const char *state_dir;           /* this host's state directory */
};

/* The ops of one instance. Source-side ops are NULL on a destination
 * instance and the reverse; a NULL op is a no-op. Returns: 0 or a negative
 * libmig code. 'why' is the session's error code. */
struct mig__hook_ops {
    /* ---- source ---- */
    /* After the pre-flight, before round 0. May return a small blob
     * (caller frees, <= MIG_HOOK_BLOB_MAX) for the destination's begin. */
    int (*src_begin)(struct mig__hook *h, struct mig__hook_io *io, void **blob_out,
                     size_t *len_out);
    /* Round 'round' is about to be sent; send this hook's data for it now
     * (the data channels are idle). final: the guest is suspended; this is
     * the residue (blocks until it is all sent). */
    int (*src_round)(struct mig__hook *h, uint32_t round, bool final);
    /* Bytes still to send at switchover if it happened now (downtime
     * prediction). */
    uint64_t (*src_pending_bytes)(struct mig__hook *h);
    /* The guest has just been suspended (before the final round). */
    int (*src_stopcopy)(struct mig__hook *h);
    /* READY received; COMMIT not sent yet. A failure here still rolls back. */
    int (*src_ready)(struct mig__hook *h);
    /* COMMIT-ACK received: the domain runs on the destination. */
    int (*src_commit)(struct mig__hook *h);
    /* After the source copy was destroyed (may block for a settle period). */
    int (*src_settle)(struct mig__hook *h);
    /* Undo everything; the source keeps running. Called at most once. */
    void (*src_abort)(struct mig__hook *h, int why);
    /* Optional: add this hook's figures to the session's statistics (the
     * disk_* fields). Any thread; must not block on the hook's work. */
    void (*src_stats)(struct mig__hook *h, struct mig_stats *st);

    /* ---- destination ---- */
    /* The source's begin blob (hostile input: check it). A failure here is
     * a pre-flight failure: nothing has moved yet. */
    int (*dst_begin)(struct mig__hook *h, const void *blob, size_t len);
    /* One of this hook's data records (from any data-channel thread at once;
     * the payload is borrowed for the call). */
    int (*dst_record)(struct mig__hook *h, const struct mig__rec *rec);
    /* Everything arrived; before READY is sent (make it durable). */
    int (*dst_ready)(struct mig__hook *h);
    /* The incoming domain exists (after the backend's ready, before READY
     * is sent): its vifs as the backend names them on this host, in the
     * description syntax (hv-provider.h, vifs op). Only when the backend
     * lists them; a failure is logged, not fatal. */
    int (*dst_devices)(struct mig__hook *h, const char *vifs);
    /* After the domain's commit op succeeded. */
    int (*dst_commit)(struct mig__hook *h);
    /* The session ends without COMMIT: remove what was written (or mark it
     * incomplete). Called at most once. */
    void (*dst_abort)(struct mig__hook *h, int why);

    /* NULL-safe through the engine; frees the instance. */
    void (*free)(struct mig__hook *h);
};

#define MIG_HOOK_BLOB_MAX (64u << 10)

/* Every instance starts with this. */
struct mig__hook {
    const struct mig__hook_ops *ops;
    const struct mig__hook_class *cls;  /* set by the engine */
    /* An op that fails may say why here (for the user and the peer); the
     * engine shows it instead of the bare error code. */
    char why[256];
};

/* Fill h->why (printf format) and return rc: `return mig__hook_fail(h, -MIG_ENOSPC, ...)`. */
int mig__hook_fail(struct mig__hook *h, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The first failure any hook of the set explained, or "" (borrowed). */
const char *mig__hooks_why(const struct mig__hooks *hs);

struct mig__hook_class {
    const char *name; /* "blk", "net": also the prefix of its args */
    uint32_t id;      /* MIG_HOOK_ID_*: unique on a context */
    /* Source: an instance for this migration, or *h_out = NULL when the class
     * has nothing to do for it. An error fails the migration in setup. */
    int (*src_new)(const struct mig__hook_env *env, struct mig__hook **h_out);
    /* Destination: an instance because the source began this class. */
    int (*dst_new)(const struct mig__hook_env *env, struct mig__hook **h_out);
};

/* Add a class to ctx (-MIG_EEXIST for a duplicate name or id, -MIG_EINVAL
 * without a name or constructors). */
int mig__hook_register(struct mig_ctx *ctx, const struct mig__hook_class *cls);
/* Register the hook classes built into this library. */
int mig__hook_register_builtins(struct mig_ctx *ctx);

/* The value of the idx-th "CLASS:KEY=VALUE" argument for (cls, key), or NULL
 * (borrowed from env->args). */
const char *mig__hook_arg(const struct mig__hook_env *env, const char *cls, const char *key,
                          unsigned idx);

/* ---- the engine's side (hooks.c) -------------------------------------- */

/* The instances of one session, in class registration order. */
struct mig__hooks;

/* Source: ask every class for an instance. *hs_out is never NULL on success. */
int mig__hooks_src_new(const struct mig__hook_env *env, struct mig__hooks **hs_out);
/* Destination: an empty set; instances join with mig__hooks_dst_begin. */
int mig__hooks_dst_new(const struct mig__hook_env *env, struct mig__hooks **hs_out);
void mig__hooks_free(struct mig__hooks *hs); /* NULL-safe; does not call abort */

unsigned mig__hooks_count(const struct mig__hooks *hs);

/* Source: call every src_begin and queue its HOOK_DATA(BEGIN) on 'ctrl'
 * (not flushed). On failure, the hooks begun so far are the ones abort
 * reaches. */
int mig__hooks_src_begin(struct mig__hooks *hs, struct mig__hook_io *io, struct mig__stream *ctrl);
/* Source: one BEGIN_ACK record received: check it names a begun hook not
 * acknowledged yet. */
int mig__hooks_src_ack(struct mig__hooks *hs, const struct mig__rec *rec);
int mig__hooks_src_round(struct mig__hooks *hs, uint32_t round, bool final);
uint64_t mig__hooks_src_pending_bytes(struct mig__hooks *hs);
/* Every hook's src_stats into st (NULL-safe set). */
void mig__hooks_src_stats(struct mig__hooks *hs, struct mig_stats *st);
int mig__hooks_src_stopcopy(struct mig__hooks *hs);
int mig__hooks_src_ready(struct mig__hooks *hs);
/* After COMMIT: every hook is called even when one fails; returns the first
 * error (logged by the caller, not rolled back). */
int mig__hooks_src_commit(struct mig__hooks *hs);
int mig__hooks_src_settle(struct mig__hooks *hs);
/* Every begun hook's abort, once (idempotent). */
void mig__hooks_src_abort(struct mig__hooks *hs, int why);

/* Destination: a HOOK_DATA(BEGIN) from the control channel: make the
 * instance and call dst_begin; on success queue the BEGIN_ACK on 'ctrl'. */
int mig__hooks_dst_begin(struct mig__hooks *hs, const struct mig__rec *rec,
                         struct mig__stream *ctrl);
/* A data record (HOOK_DATA of a class kind, BLOCK_EXTENT): to its instance.
 * Any data-channel thread; -MIG_EPROTO when no begun hook takes it. */
int mig__hooks_dst_record(struct mig__hooks *hs, const struct mig__rec *rec);
int mig__hooks_dst_ready(struct mig__hooks *hs);
int mig__hooks_dst_commit(struct mig__hooks *hs);
/* Every hook's dst_devices (failures logged; returns the first). */
int mig__hooks_dst_devices(struct mig__hooks *hs, const char *vifs);
void mig__hooks_dst_abort(struct mig__hooks *hs, int why);

#endif
