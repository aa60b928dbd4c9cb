/*
 * mig-internal.h: what libmig's modules share and the public API hides:
 * the context's fields, the logging macros with rate limiting, time, and
 * errno conversion. Included by library sources and unit tests only.
 */
#ifndef MIG_INTERNAL_H
#define MIG_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>

#include <libmig/mig.h>

#define MIG_HIDDEN __attribute__((visibility("hidden")))

struct mig__hv_ops;
struct mig__hook_class;
struct mig__blk_mirror;
struct mig__fault_entry;

#define MIG_MAX_HV_CLASSES 8
#define MIG_MAX_HOOK_CLASSES 8
#define MIG_MAX_BLK_DISKS 16
#define MIG_MAX_FAULTS 8

struct mig_ctx {
    mig_log_fn *log_fn;          /* NULL: muted */
    void *log_opaque;            /* borrowed; passed to log_fn */
    enum mig_log_level log_level;
    /* Domain backend classes, picked by URI prefix (hv.c). Static tables, borrowed. */
    const struct mig__hv_ops *hv_classes[MIG_MAX_HV_CLASSES];
    unsigned n_hv_classes;
    /* Hook classes (block mirror, network handoff; session/hooks.c). Borrowed. */
    const struct mig__hook_class *hook_classes[MIG_MAX_HOOK_CLASSES];
    unsigned n_hook_classes;
    /* Managed disks this process serves (blk/): the block mirror's hook
     * picks a domain's disks here. Mirrors borrowed. */
    struct {
        char domain[64];
        struct mig__blk_mirror *m;
    } blk_disks[MIG_MAX_BLK_DISKS];
    unsigned n_blk_disks;
#ifdef MIG_FAULT_INJECTION
    struct mig__fault_entry *faults; /* owned: MIG_MAX_FAULTS entries (fault.c) */
    unsigned n_faults;
#endif
};

/* ---- "did you mean" (text.c) ------------------------------------------- */

/* Levenshtein distance, capped at 'max' + 1. */
MIG_HIDDEN unsigned mig__edit_distance(const char *a, const char *b, unsigned max);
/* The closest of 'cands' (NULL-terminated) to 's', or NULL if none is close. */
MIG_HIDDEN const char *mig__closest(const char *s, const char *const *cands);
/* The value of one hex digit (either case), or -1. */
MIG_HIDDEN int mig__hexval(char c);

/* ---- fault injection (fault.c; test builds only) ------------------------ */

#define MIG__FAULT_DROP 1    /* mig__fault(): the caller drops its link */
#define MIG__FAULT_CORRUPT 2 /* mig__fault(): the caller damages what it sends */
#ifdef MIG_FAULT_INJECTION
MIG_HIDDEN int mig__fault_init(struct mig_ctx *ctx);
/* 0: go on; -MIG_EIO: fail here; MIG__FAULT_DROP: drop the link here. May
 * not return (exit) or return late (stall). */
MIG_HIDDEN int mig__fault(struct mig_ctx *ctx, const char *point, long arg);
/* True if some configured point starts with 'prefix'. */
MIG_HIDDEN bool mig__fault_any(struct mig_ctx *ctx, const char *prefix);
/* True when the test build was asked to plant this deliberate bug. */
MIG_HIDDEN bool mig__planted(struct mig_ctx *ctx, const char *bug);
#else
static inline bool mig__planted(struct mig_ctx *ctx, const char *bug)
{
    (void)ctx;
    (void)bug;
    return false;
}
static inline int mig__fault(struct mig_ctx *ctx, const char *point, long arg)
{
    (void)ctx;
    (void)point;
    (void)arg;
    return 0;
}
#endif

/* ---- logging ----------------------------------------------------------- */

/* The default sink: timestamped lines on stderr. */
MIG_HIDDEN void mig__default_logger(void *opaque, enum mig_log_level level, const char *module,
                                    const char *msg);

MIG_HIDDEN void mig__log(struct mig_ctx *ctx, enum mig_log_level level, const char *module,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
MIG_HIDDEN void mig__vlog(struct mig_ctx *ctx, enum mig_log_level level, const char *module,
                          const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static inline int mig__log_enabled(const struct mig_ctx *ctx, enum mig_log_level level)
{
    return ctx && ctx->log_fn && level <= ctx->log_level;
}

#ifndef MIG_LOG_MODULE
#define MIG_LOG_MODULE "mig"
#endif

/* MIG_LOG(ctx, WARN, "round %u", n): level checked before formatting. */
#define MIG_LOG(ctx, LEVEL, ...)                                                      \
    do {                                                                            \
        if (mig__log_enabled((ctx), MIG_LOG_##LEVEL))                               \
            mig__log((ctx), MIG_LOG_##LEVEL, MIG_LOG_MODULE, __VA_ARGS__);          \
    } while (0)

/*
 * A token bucket for logs in hot loops (per page, per record). Embed one per
 * call site in the object doing the work (no static state). 'burst' messages
 * pass, then one per 'interval_ms'; the count of dropped ones is reported
 * with the next message that passes.
 */
struct mig_ratelimit {
    uint32_t interval_ms;
    uint32_t burst;
    uint32_t tokens;
    uint64_t last_ns;
    uint64_t suppressed;
};

MIG_HIDDEN void mig__ratelimit_init(struct mig_ratelimit *rl, uint32_t interval_ms,
                                    uint32_t burst);
/* True if a message may be logged now; counts it as dropped otherwise. */
MIG_HIDDEN bool mig__ratelimit_allow(struct mig_ratelimit *rl, uint64_t now_ns);

#define MIG_LOG_RL(ctx, rl, LEVEL, ...)                                               \
    do {                                                                            \
        if (mig__log_enabled((ctx), MIG_LOG_##LEVEL)) {                             \
            uint64_t mig__sup = (rl)->suppressed;                                   \
            if (mig__ratelimit_allow((rl), mig__now_ns())) {                        \
                if (mig__sup)                                                       \
                    mig__log((ctx), MIG_LOG_##LEVEL, MIG_LOG_MODULE,                \
                             "(%" PRIu64 " similar messages suppressed)", mig__sup);\
                mig__log((ctx), MIG_LOG_##LEVEL, MIG_LOG_MODULE, __VA_ARGS__);      \
            }                                                                       \
        }                                                                           \
    } while (0)

/* ---- time -------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
MIG_HIDDEN uint64_t mig__now_ns(void);

/* ---- errors ------------------------------------------------------------ */

/* Convert an errno value (positive) to a negative libmig code. Use only where
 * the errno was produced. */
MIG_HIDDEN int mig__from_errno(int err);

/* hv.c: registers the built-in domain backends on a new context. */
MIG_HIDDEN int mig__hv_register_builtins(struct mig_ctx *ctx);
/* session/hooks.c: registers the built-in hook classes on a new context. */
MIG_HIDDEN int mig__hook_register_builtins(struct mig_ctx *ctx);

#endif
