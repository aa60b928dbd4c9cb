/*
 * ctx.c: the library context (mig_ctx_new/free) and its settings.
 * Everything that would otherwise be a global lives here.
 */
#include <config.h>

#include <stdlib.h>

#include "mig-internal.h"


int mig_ctx_new(struct mig_ctx **ctx_out)
{
    struct mig_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return -MIG_ENOMEM;
    ctx->log_fn = mig__default_logger;
    ctx->log_opaque = NULL;
    ctx->log_level = MIG_LOG_INFO;
    int rc = mig__hv_register_builtins(ctx);
    if (rc == 0)
        rc = mig__hook_register_builtins(ctx);
#ifdef MIG_FAULT_INJECTION
    if (rc == 0)
        rc = mig__fault_init(ctx);
#endif
    if (rc < 0) {
        mig_ctx_free(ctx);
        return rc;
    }
    *ctx_out = ctx;
    return 0;
}

void mig_ctx_free(struct mig_ctx *ctx)
{
    if (!ctx)
        return;
#ifdef MIG_FAULT_INJECTION
    free(ctx->faults);
#endif
    free(ctx);
}

void mig_ctx_set_logger(struct mig_ctx *ctx, mig_log_fn *fn, void *opaque)
{
    ctx->log_fn = fn;
    ctx->log_opaque = opaque;
}

void mig_ctx_set_log_level(struct mig_ctx *ctx, enum mig_log_level level)
{
    ctx->log_level = level;
}

enum mig_log_level mig_ctx_get_log_level(const struct mig_ctx *ctx)
{
    return ctx->log_level;
}
