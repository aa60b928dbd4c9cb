/*
 * no-backends.c: the fuzz targets exercise the stream and profile parsers,
 * not domain backends, so their contexts register none (instead of linking
 * every backend and its libraries into the fuzzer).
 */
#include <config.h>

#include "mig-internal.h"

int mig__hv_register_builtins(struct mig_ctx *ctx)
{
    (void)ctx;
    return 0;
}
