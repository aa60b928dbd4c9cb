/*
 * migrate.h: running a live migration (source), serving one (destination),
 * and settling one whose outcome is in doubt.
 *
 * Source:      mig_params_init(); mig_session_new(); mig_session_run();
 *              mig_session_cancel() from a signal handler or another thread.
 * Destination: mig_receive_fds() (ssh: stdin/stdout), mig_listen_serve().
 * In doubt:    mig_resolve().
 */
#ifndef LIBMIG_MIGRATE_H
#define LIBMIG_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include <libmig/mig.h>

#ifdef __cplusplus
extern "C" {
#endif

enum mig_policy {
    MIG_POLICY_DOWNTIME = 0, /* stop when the predicted final copy fits the target */
    MIG_POLICY_XL,           /* Xen's default: 5 rounds or fewer than 50 dirty pages */
};

enum mig_on_timeout {
    MIG_ON_TIMEOUT_ABORT = 0,  /* the source keeps running */
    MIG_ON_TIMEOUT_SWITCHOVER, /* stop and copy whatever is dirty */
};

/* Transport settings shared by both sides. Strings are borrowed. */
struct mig_link_params {
    unsigned channels;        /* data channels (default 1); a receiver's cap on what a
                               * source may open (default 0: the transport's limit) */
    unsigned timeout_ms;      /* peer silence that counts as dead (default 10000) */
    const char *psk_file;     /* tcp: pre-shared key file */
    bool insecure;            /* tcp: no key (logged loudly) */
    const char *pki_dir;      /* tls: certificates (default /etc/pki/migrate-live) */
    const char *ssh_command;  /* ssh: replaces "ssh", as xl's -s */
    const char *remote_args;  /* ssh: extra arguments for the remote receive */
};

/* Everything a source-side migration needs. Strings are borrowed and must
 * outlive the session. mig_params_init() sets the defaults. */
struct mig_params {
    const char *domain;          /* backend URI: "sim:NAME,host=DIR", "xen:NAME" */
    const char *destination;     /* transport URI: tcp:H:P, tls:H:P, ssh:HOST, unix:PATH */
    struct mig_link_params link;
    enum mig_policy policy;      /* default MIG_POLICY_DOWNTIME */
    uint32_t downtime_ms;        /* ms: target (default 300) */
    uint64_t bandwidth;          /* bytes/s: limit, 0 = unlimited */
    bool compress;               /* zstd per batch */
    bool throttle;               /* auto-converge (default true) */
    uint32_t timeout_s;          /* s: total-time limit, 0 = none */
    enum mig_on_timeout on_timeout;
    uint32_t max_rounds;         /* count: downtime policy round cap (0: 30) */
    const char *state_dir;       /* in-doubt journal (default /var/lib/migrate-live) */
    const char *profile;         /* compatibility profile, name or file (NULL: hosts only) */
    bool check_only;             /* run the pre-flight check, then end without moving */
    /* Options for the engine's hooks (block mirror, network handoff): a
     * NULL-terminated list of "CLASS:KEY=VALUE" strings, or NULL. */
    const char *const *hook_args;
};

MIG_EXPORT void mig_params_init(struct mig_params *p);

/* Called from the session's thread at least once a second and at every
 * state change. 'st' is borrowed for the call. */
typedef void mig_progress_fn(void *opaque, enum mig_state state, const struct mig_stats *st);

struct mig_session;

MIG_EXPORT int mig_session_new(struct mig_ctx *ctx, const struct mig_params *p,
                               struct mig_session **s_out);
MIG_EXPORT void mig_session_set_progress(struct mig_session *s, mig_progress_fn *fn,
                                         void *opaque);
/* Run the whole migration; blocks. 0: committed on the destination.
 * -MIG_ECANCELLED / other: the domain runs on the source, unchanged.
 * -MIG_EINDOUBT: COMMIT was sent but not acknowledged; the source copy stays
 * paused and the journal in state_dir lets mig_resolve() settle it. */
MIG_EXPORT int mig_session_run(struct mig_session *s);
/* Ask a running session to stop before COMMIT; async-signal-safe. */
MIG_EXPORT void mig_session_cancel(struct mig_session *s);
MIG_EXPORT const struct mig_stats *mig_session_stats(const struct mig_session *s); /* borrowed */
MIG_EXPORT enum mig_state mig_session_state(const struct mig_session *s);
/* Human-readable reason of the last failure, "" if none. Borrowed. */
MIG_EXPORT const char *mig_session_error(const struct mig_session *s);
/* The pre-flight verdict (text, every finding), or NULL before it ran. Borrowed. */
MIG_EXPORT const char *mig_session_preflight(const struct mig_session *s);
/* The same verdict as one JSON object ({"compatible", "errors", "warnings",
 * "issues": [...]}, docs/profiles.md), or NULL before it ran. Borrowed. */
MIG_EXPORT const char *mig_session_preflight_json(const struct mig_session *s);
/* The peer's host facts (JSON text) received at setup, or NULL. Borrowed. */
MIG_EXPORT const char *mig_session_peer_facts(const struct mig_session *s);
MIG_EXPORT void mig_session_free(struct mig_session *s); /* NULL-safe */

/* ---- destination ------------------------------------------------------- */

struct mig_recv_params {
    const char *backend;         /* backend URI for incoming domains: "sim:host=DIR", "xen:" */
    struct mig_link_params link;
    const char *state_dir;       /* outcomes journal (default /var/lib/migrate-live) */
    /* Options for the engine's hooks, e.g. "blk:map=SRC=DST" (--disk-map):
     * a NULL-terminated list of "CLASS:KEY=VALUE" strings, or NULL. */
    const char *const *hook_args;
};

MIG_EXPORT void mig_recv_params_init(struct mig_recv_params *p);
/* Serve one session on an fd pair (ssh runs "xl-migrate-live receive"). */
MIG_EXPORT int mig_receive_fds(struct mig_ctx *ctx, const struct mig_recv_params *p, int rfd,
                               int wfd);
/* Listen on 'uri' and serve sessions one after another until *stop becomes
 * true (checked at least every 500 ms). */
MIG_EXPORT int mig_listen_serve(struct mig_ctx *ctx, const struct mig_recv_params *p,
                                const char *uri, volatile int *stop);

/* This host's facts (JSON text) as the backend 'backend' ("xen:", "sim:host=DIR")
 * sees them; caller frees *json_out. */
MIG_EXPORT int mig_host_facts(struct mig_ctx *ctx, const char *backend, char **json_out);

/* ---- in doubt ---------------------------------------------------------- */

enum mig_outcome {
    MIG_OUTCOME_UNKNOWN = 0,  /* the destination cannot tell: keep the source paused */
    MIG_OUTCOME_COMMITTED,    /* the destination runs the domain: destroy the source */
    MIG_OUTCOME_DISCARDED,    /* the destination has no copy: resume the source */
};

/* Settle the in-doubt migration of 'domain' (backend URI) recorded in
 * state_dir: ask the destination it names, then destroy or resume the source.
 * *outcome_out says what was found. -MIG_ENOENT: no journal for it. */
MIG_EXPORT int mig_resolve(struct mig_ctx *ctx, const char *state_dir, const char *domain,
                           const struct mig_link_params *link, enum mig_outcome *outcome_out);
MIG_EXPORT const char *mig_outcome_name(enum mig_outcome o);

#ifdef __cplusplus
}
#endif
#endif
