/*
 * hv.c: the domain backend class table. Backends register an ops table on
 * the context; the engine opens a domain by URI ("sim:web01,host=/run/x",
 * "xen:web01") and never names a backend itself.
 */
#include <config.h>

#include <stddef.h>
#include <string.h>

#define MIG_LOG_MODULE "hv"
#include "hv-provider.h"

/* Offsets of every mandatory op, for the registration check. */
#define OP(name) {#name, offsetof(struct mig__hv_ops, name)}
static const struct {
    const char *name;
    size_t off;
} mandatory_ops[] = {
    OP(open), OP(close), OP(facts), OP(info), OP(tracking), OP(state_cost_ms),
    OP(logdirty_enable), OP(logdirty_clean), OP(logdirty_disable), OP(map_pages),
    OP(unmap_pages), OP(throttle), OP(suspend), OP(resume), OP(save_state), OP(rename),
    OP(destroy), OP(create_incoming), OP(write_pages), OP(write_zero), OP(load_state),
    OP(ready), OP(commit), OP(discard), OP(probe),
};
#undef OP

int mig__hv_register(struct mig_ctx *ctx, const struct mig__hv_ops *ops)
{
    if (!ops || !ops->name || !*ops->name) {
        MIG_LOG(ctx, ERROR, "backend without a name");
        return -MIG_EINVAL;
    }
    for (size_t i = 0; i < sizeof(mandatory_ops) / sizeof(mandatory_ops[0]); i++) {
        void *const *slot = (void *const *)((const char *)ops + mandatory_ops[i].off);
        if (!*slot) {
            MIG_LOG(ctx, ERROR, "backend '%s' lacks the mandatory op '%s'", ops->name,
                    mandatory_ops[i].name);
            return -MIG_EINVAL;
        }
    }
    for (unsigned i = 0; i < ctx->n_hv_classes; i++) {
        if (strcmp(ctx->hv_classes[i]->name, ops->name) == 0)
            return -MIG_EEXIST;
    }
    if (ctx->n_hv_classes >= MIG_MAX_HV_CLASSES)
        return -MIG_ENOMEM;
    ctx->hv_classes[ctx->n_hv_classes++] = ops;
    return 0;
}

int mig__hv_lookup(struct mig_ctx *ctx, const char *uri, const struct mig__hv_ops **ops_out,
                   const char **arg_out)
{
    const char *colon = strchr(uri, ':');
    if (!colon) {
        MIG_LOG(ctx, ERROR, "domain '%s' has no backend prefix (sim: or xen:)", uri);
        return -MIG_EINVAL;
    }
    size_t n = (size_t)(colon - uri);
    for (unsigned i = 0; i < ctx->n_hv_classes; i++) {
        const struct mig__hv_ops *ops = ctx->hv_classes[i];
        if (strlen(ops->name) == n && strncmp(ops->name, uri, n) == 0) {
            *ops_out = ops;
            *arg_out = colon + 1;
            return 0;
        }
    }
    MIG_LOG(ctx, ERROR, "no backend for '%.*s:' in this build", (int)n, uri);
    return -MIG_ENOTSUP;
}

int mig__hv_open(struct mig_ctx *ctx, const char *uri, enum mig_role role, struct mig__hv **hv_out)
{
    const struct mig__hv_ops *ops;
    const char *arg;
    int rc = mig__hv_lookup(ctx, uri, &ops, &arg);
    if (rc < 0)
        return rc;
    rc = ops->open(ctx, arg, role, hv_out);
#ifdef MIG_FAULT_INJECTION
    if (rc == 0 && mig__fault_any(ctx, "hv-")) {
        struct mig__hv *inner = *hv_out;
        rc = mig__hv_fault_wrap(inner, hv_out);
        if (rc < 0)
            ops->close(inner);
    }
#endif
    return rc;
}

int mig__hv_uri_suffix(const char *uri, const char *suffix, char *out, size_t len)
{
    const char *colon = strchr(uri, ':');
    if (!colon)
        return -MIG_EINVAL;
    size_t end = strcspn(colon + 1, ",") + (size_t)(colon + 1 - uri);
    int n = snprintf(out, len, "%.*s%s%s", (int)end, uri, suffix, uri + end);
    return n < 0 || (size_t)n >= len ? -MIG_ETOOBIG : 0;
}
