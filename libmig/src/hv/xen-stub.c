/*
 * xen-stub.c: the "xen:" backend of a build without Xen's libraries
 * (configure --without-xen). Every op answers -MIG_ENOTSUP and open says
 * why, so "xen:NAME" fails clearly instead of "no such backend".
 */
#include <config.h>

#define MIG_LOG_MODULE "hv-xen"
#include "hv-provider.h"

extern const struct mig__hv_ops mig__hv_xen_ops;

static int stub_open(struct mig_ctx *ctx, const char *arg, enum mig_role role,
                     struct mig__hv **hv_out)
{
    *hv_out = NULL;
    MIG_LOG(ctx, ERROR,
            "this build has no Xen backend (configured --without-xen); "
            "rebuild with libxen-dev installed to migrate xen:%s",
            arg ? arg : "");
    return -MIG_ENOTSUP;
}
static void stub_close(struct mig__hv *hv)
{
}
static int stub_facts(struct mig__hv *hv, char **json_out)
{
    *json_out = NULL;
    return -MIG_ENOTSUP;
}
static int stub_info(struct mig__hv *hv, struct mig__dom_info *i)
{
    return -MIG_ENOTSUP;
}
static uint64_t stub_state_cost_ms(struct mig__hv *hv)
{
    return 0;
}

static const char *stub_tracking(struct mig__hv *hv)
{
    return "none";
}
static int stub_hv(struct mig__hv *hv)
{
    return -MIG_ENOTSUP;
}
static int stub_clean(struct mig__hv *hv, unsigned long *b, uint64_t *n)
{
    *n = 0;
    return -MIG_ENOTSUP;
}
static int stub_map(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void **ptrs,
                    struct mig__hv_map **map_out)
{
    *map_out = NULL;
    return -MIG_ENOTSUP;
}
static void stub_unmap(struct mig__hv *hv, struct mig__hv_map *m)
{
}
static int stub_throttle(struct mig__hv *hv, unsigned p)
{
    return -MIG_ENOTSUP;
}
static int stub_save(struct mig__hv *hv, struct mig__blob *b)
{
    return -MIG_ENOTSUP;
}
static int stub_rename(struct mig__hv *hv, const char *n)
{
    return -MIG_ENOTSUP;
}
static int stub_create(struct mig__hv *hv, const struct mig__dom_info *i)
{
    return -MIG_ENOTSUP;
}
static int stub_write(struct mig__hv *hv, const uint64_t *p, unsigned n, const void *d)
{
    return -MIG_ENOTSUP;
}
static int stub_zero(struct mig__hv *hv, uint64_t p, uint64_t c)
{
    return -MIG_ENOTSUP;
}
static int stub_load(struct mig__hv *hv, const struct mig__blob *b)
{
    return -MIG_ENOTSUP;
}

static int stub_probe(struct mig__hv *hv, const char *name, enum mig__probe *state_out)
{
    *state_out = MIG_PROBE_ABSENT;
    return -MIG_ENOTSUP;
}

const struct mig__hv_ops mig__hv_xen_ops = {
    .name = "xen",
    .open = stub_open,
    .close = stub_close,
    .facts = stub_facts,
    .info = stub_info,
    .tracking = stub_tracking,
    .state_cost_ms = stub_state_cost_ms,
    .logdirty_enable = stub_hv,
    .logdirty_clean = stub_clean,
    .logdirty_disable = stub_hv,
    .map_pages = stub_map,
    .unmap_pages = stub_unmap,
    .throttle = stub_throttle,
    .suspend = stub_hv,
    .resume = stub_hv,
    .save_state = stub_save,
    .rename = stub_rename,
    .destroy = stub_hv,
    .create_incoming = stub_create,
    .write_pages = stub_write,
    .write_zero = stub_zero,
    .load_state = stub_load,
    .ready = stub_hv,
    .commit = stub_hv,
    .discard = stub_hv,
    .probe = stub_probe,
};
