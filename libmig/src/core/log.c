/*
 * log.c: formatting log messages to the context's sink, the default stderr
 * sink, level names, and the token-bucket rate limiter for hot loops.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mig-internal.h"

static const char *const level_names[] = {
    [MIG_LOG_ERROR] = "error",
    [MIG_LOG_WARN] = "warn",
    [MIG_LOG_INFO] = "info",
    [MIG_LOG_DEBUG] = "debug",
};

const char *mig_log_level_name(enum mig_log_level level)
{
    if ((unsigned)level > MIG_LOG_DEBUG)
        return "?";
    return level_names[level];
}

int mig_log_level_parse(const char *s, enum mig_log_level *level_out)
{
    for (unsigned i = 0; i <= MIG_LOG_DEBUG; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *level_out = (enum mig_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *level_out = MIG_LOG_WARN;
        return 0;
    }
    return -MIG_EINVAL;
}

/* Default sink: "HH:MM:SS.mmm level module: msg" on stderr, one write. */
void mig__default_logger(void *opaque, enum mig_log_level level, const char *module,
                         const char *msg)
{
    struct timespec ts;
    struct tm tm;
    (void)opaque;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, mig_log_level_name(level), module, msg);
}

void mig__vlog(struct mig_ctx *ctx, enum mig_log_level level, const char *module,
               const char *fmt, va_list ap)
{
    char buf[1024];
    if (!mig__log_enabled(ctx, level))
        return;
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n >= (int)sizeof(buf))
        memcpy(buf + sizeof(buf) - 4, "...", 4);
    ctx->log_fn(ctx->log_opaque, level, module, buf);
}

void mig__log(struct mig_ctx *ctx, enum mig_log_level level, const char *module,
              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mig__vlog(ctx, level, module, fmt, ap);
    va_end(ap);
}

void mig__ratelimit_init(struct mig_ratelimit *rl, uint32_t interval_ms, uint32_t burst)
{
    rl->interval_ms = interval_ms;
    rl->burst = burst ? burst : 1;
    rl->tokens = rl->burst;
    rl->last_ns = 0;
    rl->suppressed = 0;
}

bool mig__ratelimit_allow(struct mig_ratelimit *rl, uint64_t now_ns)
{
    uint64_t interval_ns = (uint64_t)rl->interval_ms * 1000000u;
    if (rl->last_ns == 0)
        rl->last_ns = now_ns;
    if (interval_ns && now_ns > rl->last_ns) {
        uint64_t refill = (now_ns - rl->last_ns) / interval_ns;
        if (refill) {
            uint64_t t = rl->tokens + refill;
            rl->tokens = t > rl->burst ? rl->burst : (uint32_t)t;
            rl->last_ns += refill * interval_ns;
        }
    }
    if (rl->tokens) {
        rl->tokens--;
        rl->suppressed = 0;
        return true;
    }
    rl->suppressed++;
    return false;
}

uint64_t mig__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
