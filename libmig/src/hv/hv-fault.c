/*
 * hv-fault.c: fault injection for backend ops (test builds only). When
 * MIG_FAULT names a point "hv-OP" (hv-logdirty_clean, hv-map_pages,
 * hv-suspend, hv-create_incoming, ...), mig__hv_open() wraps the backend
 * instance in this one, which consults the point before forwarding each op:
 * an injected error comes back as the op's own failure, as a hypervisor
 * library's would. Ops that only tear down (close, unmap_pages) are never
 * failed. Entry point: mig__hv_fault_wrap().
 */
#include <config.h>

#include <stdlib.h>

#define MIG_LOG_MODULE "hv-fault"
#include "hv-provider.h"

#ifdef MIG_FAULT_INJECTION

struct fault_hv {
    struct mig__hv base;
    struct mig__hv *inner; /* owned */
};

static struct mig__hv *in(struct mig__hv *hv)
{
    return ((struct fault_hv *)hv)->inner;
}

/* 0 to go on, or the error the op returns ("drop" reads as an I/O error). */
static int point(struct mig__hv *hv, const char *name)
{
    int f = mig__fault(hv->ctx, name, 0);
    return f < 0 ? f : f > 0 ? -MIG_EIO : 0;
}

#define FWD(op, ...)                                                                        \
    do {                                                                                    \
        int rc_ = point(hv, "hv-" #op);                                                     \
        return rc_ ? rc_ : in(hv)->ops->op(in(hv), ##__VA_ARGS__);                         \
    } while (0)

static int f_open(struct mig_ctx *ctx, const char *arg, enum mig_role role, struct mig__hv **out)
{
    (void)ctx;
    (void)arg;
    (void)role;
    (void)out;
    return -MIG_ENOTSUP; /* wrappers are made by mig__hv_fault_wrap() only */
}

static void f_close(struct mig__hv *hv)
{
    if (!hv)
        return;
    in(hv)->ops->close(in(hv));
    free(hv);
}

static int f_facts(struct mig__hv *hv, char **json_out) { FWD(facts, json_out); }
static int f_info(struct mig__hv *hv, struct mig__dom_info *info_out) { FWD(info, info_out); }
static const char *f_tracking(struct mig__hv *hv) { return in(hv)->ops->tracking(in(hv)); }
static uint64_t f_state_cost_ms(struct mig__hv *hv) { return in(hv)->ops->state_cost_ms(in(hv)); }
static int f_logdirty_enable(struct mig__hv *hv) { FWD(logdirty_enable); }
static int f_logdirty_clean(struct mig__hv *hv, unsigned long *bitmap, uint64_t *n)
{
    FWD(logdirty_clean, bitmap, n);
}
static int f_logdirty_disable(struct mig__hv *hv) { FWD(logdirty_disable); }
static int f_map_pages(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void **ptrs,
                       struct mig__hv_map **map_out)
{
    FWD(map_pages, pfns, n, ptrs, map_out);
}
static void f_unmap_pages(struct mig__hv *hv, struct mig__hv_map *map)
{
    in(hv)->ops->unmap_pages(in(hv), map);
}
static int f_throttle(struct mig__hv *hv, unsigned percent) { FWD(throttle, percent); }
static int f_suspend(struct mig__hv *hv) { FWD(suspend); }
static int f_resume(struct mig__hv *hv) { FWD(resume); }
static int f_save_state(struct mig__hv *hv, struct mig__blob *b) { FWD(save_state, b); }
static int f_rename(struct mig__hv *hv, const char *name) { FWD(rename, name); }
static int f_destroy(struct mig__hv *hv) { FWD(destroy); }
static int f_create_incoming(struct mig__hv *hv, const struct mig__dom_info *info)
{
    FWD(create_incoming, info);
}
static int f_write_pages(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void *data)
{
    FWD(write_pages, pfns, n, data);
}
static int f_write_zero(struct mig__hv *hv, uint64_t pfn, uint64_t count)
{
    FWD(write_zero, pfn, count);
}
static int f_load_state(struct mig__hv *hv, const struct mig__blob *b) { FWD(load_state, b); }
static int f_ready(struct mig__hv *hv) { FWD(ready); }
static int f_commit(struct mig__hv *hv) { FWD(commit); }
static int f_discard(struct mig__hv *hv) { FWD(discard); }
static int f_probe(struct mig__hv *hv, const char *name, enum mig__probe *out)
{
    FWD(probe, name, out);
}
static int f_vifs(struct mig__hv *hv, char *out, size_t cap) { FWD(vifs, out, cap); }
static int f_reap(struct mig__hv *hv, const char *name, bool *found) { FWD(reap, name, found); }

int mig__hv_fault_wrap(struct mig__hv *inner, struct mig__hv **hv_out)
{
    struct fault_hv *f = calloc(1, sizeof(*f) + sizeof(struct mig__hv_ops));
    if (!f)
        return -MIG_ENOMEM;
    struct mig__hv_ops *ops = (struct mig__hv_ops *)(f + 1);
    *ops = (struct mig__hv_ops){
        .name = inner->ops->name,
        .setup_state = inner->ops->setup_state,
        .open = f_open, .close = f_close, .facts = f_facts, .info = f_info,
        .tracking = f_tracking, .state_cost_ms = f_state_cost_ms, .logdirty_enable = f_logdirty_enable,
        .logdirty_clean = f_logdirty_clean, .logdirty_disable = f_logdirty_disable,
        .map_pages = f_map_pages, .unmap_pages = f_unmap_pages, .throttle = f_throttle,
        .suspend = f_suspend, .resume = f_resume, .save_state = f_save_state,
        .rename = f_rename, .destroy = f_destroy, .create_incoming = f_create_incoming,
        .write_pages = f_write_pages, .write_zero = f_write_zero, .load_state = f_load_state,
        .ready = f_ready, .commit = f_commit, .discard = f_discard, .probe = f_probe,
        .vifs = inner->ops->vifs ? f_vifs : NULL,
        .reap = inner->ops->reap ? f_reap : NULL,
        /* no place_pages: a wrapped backend takes pages through write_pages,
         * where the hv-write_pages faults are */
    };
    f->base = *inner;
    f->base.ops = ops;
    f->inner = inner;
    *hv_out = &f->base;
    return 0;
}

#endif
