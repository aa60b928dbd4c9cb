/*
 * mig.h: the public API of libmig, the live-migration library of migrate-live.
 *
 * Entry points: the context (mig_ctx_*: logger, log level), errors
 * (mig_strerror), the migration state machine (mig_fsm_*), and statistics
 * (struct mig_stats). Objects are opaque where the caller has no business
 * with their fields; getters say whether what they return is borrowed.
 */
#ifndef LIBMIG_MIG_H
#define LIBMIG_MIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libmig/mig-errors.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MIG_EXPORT __attribute__((visibility("default")))

/* ---- errors ------------------------------------------------------------ */

/* Text for a libmig error code; accepts the code negative or positive.
 * Returns a static string (borrowed), "unknown error" for unknown codes. */
MIG_EXPORT const char *mig_strerror(int rc);

/* The symbolic name ("EPROTO") of a code; static string. */
MIG_EXPORT const char *mig_errname(int rc);

/* ---- context and logging ----------------------------------------------- */

enum mig_log_level {
    MIG_LOG_ERROR = 0,
    MIG_LOG_WARN,
    MIG_LOG_INFO,
    MIG_LOG_DEBUG,
};

/* A log sink. 'module' and 'msg' are borrowed for the call only. */
typedef void mig_log_fn(void *opaque, enum mig_log_level level, const char *module,
                        const char *msg);

struct mig_ctx;

/* A context owns the logger and the backend tables; everything else in the
 * library hangs off it, so there are no mutable globals. Caller frees with
 * mig_ctx_free(). */
MIG_EXPORT int mig_ctx_new(struct mig_ctx **ctx_out);
MIG_EXPORT void mig_ctx_free(struct mig_ctx *ctx); /* NULL-safe */

/* Replace the logger (default: timestamped lines on stderr). fn NULL mutes. */
MIG_EXPORT void mig_ctx_set_logger(struct mig_ctx *ctx, mig_log_fn *fn, void *opaque);
/* Messages above 'level' are dropped before formatting. Default INFO. */
MIG_EXPORT void mig_ctx_set_log_level(struct mig_ctx *ctx, enum mig_log_level level);
MIG_EXPORT enum mig_log_level mig_ctx_get_log_level(const struct mig_ctx *ctx);

MIG_EXPORT const char *mig_log_level_name(enum mig_log_level level);
/* Parse "error", "warn", "info", "debug"; 0 or -MIG_EINVAL. */
MIG_EXPORT int mig_log_level_parse(const char *s, enum mig_log_level *level_out);

/* ---- migration state machine ------------------------------------------- */

enum mig_role {
    MIG_ROLE_SOURCE,
    MIG_ROLE_DESTINATION,
};

/*
 * One enum for both sides; each role uses its own subset and only the
 * transitions in state.c's table are legal. See ARCHITECTURE.md for the graph.
 */
enum mig_state {
    MIG_STATE_NONE = 0,
    /* source */
    MIG_STATE_SETUP,       /* connected, handshake and pre-flight */
    MIG_STATE_PRECOPY,     /* rounds of memory (and disk) while the guest runs */
    MIG_STATE_STOPCOPY,    /* guest suspended, last pages and device state */
    MIG_STATE_COMMIT_SENT, /* destination said READY, COMMIT sent, awaiting ack */
    MIG_STATE_DONE,        /* COMMIT acknowledged, source copy destroyed */
    MIG_STATE_FAILED,      /* failed before COMMIT; source resumed */
    MIG_STATE_CANCELLED,   /* user cancelled before COMMIT; source resumed */
    MIG_STATE_INDOUBT,     /* link lost after COMMIT sent: source stays paused */
    /* destination */
    MIG_STATE_RECEIVING,   /* incoming domain being built from the stream */
    MIG_STATE_READY,       /* everything applied, paused, READY sent */
    MIG_STATE_COMMITTED,   /* unpaused, COMMIT-ACK sent */
    MIG_STATE_DISCARDED,   /* incoming domain destroyed */
    MIG_STATE__COUNT
};

MIG_EXPORT const char *mig_state_name(enum mig_state s);
/* True for states nothing leaves (except INDOUBT, which resolve leaves). */
MIG_EXPORT bool mig_state_is_final(enum mig_state s);
/* True if 'from' -> 'to' is a legal edge for 'role'. */
MIG_EXPORT bool mig_state_edge_ok(enum mig_role role, enum mig_state from, enum mig_state to);

/* Embedded state machine of one migration side (_init / no dispose needed). */
struct mig_fsm {
    struct mig_ctx *ctx;   /* borrowed, for logging */
    enum mig_role role;
    enum mig_state state;
    uint64_t entered_ns;   /* monotonic ns when 'state' was entered */
};

MIG_EXPORT void mig_fsm_init(struct mig_fsm *fsm, struct mig_ctx *ctx, enum mig_role role);
/* Compare-and-set: move from 'from' to 'to' if the machine is in 'from' and
 * the edge is legal; logs the change. -MIG_ESTATE otherwise (state kept). */
MIG_EXPORT int mig_fsm_transition(struct mig_fsm *fsm, enum mig_state from, enum mig_state to);

/* ---- statistics -------------------------------------------------------- */

/* What a migration reports, as QEMU's query-migrate does. Units in comments. */
struct mig_stats {
    uint64_t total_bytes;          /* bytes: guest memory + mirrored disk to move */
    uint64_t transferred_bytes;    /* bytes: payload put on the wire so far */
    uint64_t wire_bytes;           /* bytes: everything written to transports */
    uint64_t remaining_bytes;      /* bytes: currently dirty, still to send */
    uint64_t zero_pages;           /* pages: sent as zero runs */
    uint64_t normal_pages;         /* pages: sent with content */
    uint64_t compressed_bytes;     /* bytes: compressed payload sent */
    uint64_t uncompressed_bytes;   /* bytes: input of the compressor */
    uint32_t rounds;               /* count: pre-copy rounds started */
    uint64_t pages_last_round;     /* pages: sent in the latest round */
    uint64_t dirty_bytes_per_s;    /* bytes/s: distinct pages dirtied x page size */
    uint64_t bandwidth_bytes_per_s;/* bytes/s: measured send rate, latest round */
    uint32_t throttle_percent;     /* percent: guest CPU throttle now */
    uint64_t expected_downtime_ms; /* ms: predicted stop-and-copy time */
    uint64_t downtime_ms;          /* ms: measured, suspend to resume */
    uint64_t setup_time_ms;        /* ms: connect + handshake + pre-flight */
    uint64_t total_time_ms;        /* ms: start to end */
    const char *dirty_tracking;    /* static string: how writes were tracked */
    /* Mirrored disks (block mirror, docs/block-mirror.md); 0 without any. */
    uint64_t disk_bytes;           /* bytes: size of the mirrored disks */
    uint64_t disk_sent_bytes;      /* bytes: disk data and zero ranges sent by rounds */
    uint64_t disk_forwarded_bytes; /* bytes: guest writes forwarded synchronously */
    uint64_t disk_final_bytes;     /* bytes: disk bytes sent after the guest was suspended */
    uint32_t disk_forwarding;      /* count: disks in synchronous forwarding now */
    uint32_t channels;             /* count: data channels of the session (negotiated) */
};

/* Write 'st' as one JSON object (no trailing newline) to 'f'. */
MIG_EXPORT void mig_stats_write_json(const struct mig_stats *st, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
