/*
 * no-backends.c: the fuzz targets exercise the stream and profile parsers,
 * not domain backends or engine hooks, so their contexts register none
 * (instead of linking every backend, hook and their libraries into the fuzzer).
 */
#include <config.h>

#include "mig-internal.h"

int mig__hv_register_builtins(struct mig_ctx *ctx)
{
    (void)ctx;
    return 0;
}

int mig__hook_register_builtins(struct mig_ctx *ctx)
{
    (void)ctx;
    return 0;
}
