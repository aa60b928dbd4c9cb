/*
 * builtin.c: the domain backends compiled into this library, registered on
 * every new context. A build without a backend's library links its stub.
 */
#include <config.h>

#include "hv-provider.h"

extern const struct mig__hv_ops mig__hv_sim_ops;
extern const struct mig__hv_ops mig__hv_xen_ops; /* xen.c, or xen-stub.c --without-xen */

int mig__hv_register_builtins(struct mig_ctx *ctx)
{
    static const struct mig__hv_ops *const builtins[] = {
        &mig__hv_sim_ops, /* the test guest: any Linux machine */
        &mig__hv_xen_ops, /* PVH guests on Xen 4.17 */
    };
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        if (!builtins[i])
            continue;
        int rc = mig__hv_register(ctx, builtins[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
