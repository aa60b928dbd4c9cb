/*
 * fake-hv.c: an in-memory domain backend ("fake:") for unit tests that run a
 * whole migration in one process (test-session-hooks, test-blk): NPAGES
 * pages, no dirty pages after round 0 (unless a test sets seen.redirty_at),
 * and what each side's instance looked like at close in 'seen'.
 */
#include <config.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake-hv.h"


struct fake_hv {
    struct mig__hv base;
    uint8_t *mem;           /* NPAGES pages */
    bool suspended, logdirty, created, committed, discarded;
    int resumes;
    unsigned cleans;        /* logdirty_clean calls */
};

struct fake_seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
uint8_t fake_hv_salt;

void fake_hv_reset(void)
{
    pthread_mutex_lock(&seen.lock);
    memset((char *)&seen + sizeof(seen.lock), 0, offsetof(struct fake_seen, dst_mem) - sizeof(seen.lock));
    pthread_mutex_unlock(&seen.lock);
}

static struct fake_hv *fh(struct mig__hv *hv)
{
    return (struct fake_hv *)hv;
}

static int f_open(struct mig_ctx *ctx, const char *arg, enum mig_role role, struct mig__hv **out)
{
    (void)arg;
    struct fake_hv *f = calloc(1, sizeof(*f));
    f->mem = calloc(NPAGES, 4096);
    for (unsigned i = 0; i < NPAGES; i++)
        if (role == MIG_ROLE_SOURCE && i % 3)
            memset(f->mem + i * 4096, (int)(uint8_t)(i + 1 + fake_hv_salt), 4096);
    f->base.ops = &fake_hv_ops;
    f->base.ctx = ctx;
    f->base.role = role;
    *out = &f->base;
    return 0;
}

static void f_close(struct mig__hv *hv)
{
    struct fake_hv *f = fh(hv);
    if (!f)
        return;
    pthread_mutex_lock(&seen.lock);
    if (hv->role == MIG_ROLE_SOURCE) {
        seen.src_suspended_at_end = f->suspended;
        seen.src_resumes = f->resumes;
    } else {
        seen.dst_committed = f->committed;
        seen.dst_discarded = f->discarded;
        memcpy(seen.dst_mem, f->mem, sizeof(seen.dst_mem));
    }
    pthread_mutex_unlock(&seen.lock);
    free(f->mem);
    free(f);
}

static int f_facts(struct mig__hv *hv, char **json)
{
    (void)hv;
    *json = strdup("{\"backend\":\"fake\"}");
    return 0;
}

static int f_info(struct mig__hv *hv, struct mig__dom_info *info)
{
    (void)hv;
    memset(info, 0, sizeof(*info));
    strcpy(info->name, "hooked");
    info->nr_pages = NPAGES;
    info->page_size = 4096;
    info->vcpus = 1;
    return 0;
}

static const char *f_tracking(struct mig__hv *hv)
{
    (void)hv;
    return "fake";
}

static int f_logdirty_enable(struct mig__hv *hv)
{
    fh(hv)->logdirty = true;
    pthread_mutex_lock(&seen.lock);
    seen.src_logdirty_enables++;
    pthread_mutex_unlock(&seen.lock);
    return 0;
}

static int f_logdirty_clean(struct mig__hv *hv, unsigned long *bm, uint64_t *n)
{
    *n = 0;
    pthread_mutex_lock(&seen.lock);
    if (++fh(hv)->cleans == seen.redirty_at) { /* as if the guest had written every page */
        for (unsigned i = 0; i < NPAGES; i++)
            bm[i / (8 * sizeof(*bm))] |= 1ul << (i % (8 * sizeof(*bm)));
        *n = NPAGES;
    }
    pthread_mutex_unlock(&seen.lock);
    return 0;
}

static int f_logdirty_disable(struct mig__hv *hv)
{
    fh(hv)->logdirty = false;
    return 0;
}

static int f_map(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void **ptrs,
                 struct mig__hv_map **map)
{
    for (unsigned i = 0; i < n; i++)
        ptrs[i] = fh(hv)->mem + pfns[i] * 4096;
    *map = NULL;
    return 0;
}

static void f_unmap(struct mig__hv *hv, struct mig__hv_map *map)
{
    (void)hv;
    (void)map;
}

static int f_throttle(struct mig__hv *hv, unsigned pct)
{
    (void)hv;
    (void)pct;
    return 0;
}

static int f_suspend(struct mig__hv *hv)
{
    fh(hv)->suspended = true;
    return 0;
}

static int f_resume(struct mig__hv *hv)
{
    fh(hv)->suspended = false;
    fh(hv)->resumes++;
    return 0;
}

static int f_save_state(struct mig__hv *hv, struct mig__blob *b)
{
    (void)hv;
    b->kind = 1;
    b->len = 8;
    b->data = strdup("state!!");
    return 0;
}

static int f_rename(struct mig__hv *hv, const char *name)
{
    (void)hv;
    pthread_mutex_lock(&seen.lock);
    int rc = seen.fail_rename ? -MIG_EBACKEND : 0;
    if (!rc) {
        seen.src_renames++;
        snprintf(seen.src_name, sizeof(seen.src_name), "%s", name);
    }
    pthread_mutex_unlock(&seen.lock);
    return rc;
}

static int f_destroy(struct mig__hv *hv)
{
    fh(hv)->suspended = false;
    pthread_mutex_lock(&seen.lock);
    seen.src_destroyed++;
    pthread_mutex_unlock(&seen.lock);
    return 0;
}

static int f_create(struct mig__hv *hv, const struct mig__dom_info *info)
{
    assert_int_equal(info->nr_pages, NPAGES);
    fh(hv)->created = true;
    return 0;
}

static int f_write_pages(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void *data)
{
    for (unsigned i = 0; i < n; i++)
        memcpy(fh(hv)->mem + pfns[i] * 4096, (const uint8_t *)data + (size_t)i * 4096, 4096);
    return 0;
}

static int f_write_zero(struct mig__hv *hv, uint64_t pfn, uint64_t count)
{
    memset(fh(hv)->mem + pfn * 4096, 0, count * 4096);
    return 0;
}

static int f_load_state(struct mig__hv *hv, const struct mig__blob *b)
{
    (void)hv;
    (void)b;
    return 0;
}

static int f_ready(struct mig__hv *hv)
{
    (void)hv;
    return 0;
}

static int f_commit(struct mig__hv *hv)
{
    fh(hv)->committed = true;
    return 0;
}

static int f_discard(struct mig__hv *hv)
{
    fh(hv)->discarded = true;
    return 0;
}

/* No device model: the switchover costs nothing beyond the engine's own. */
static uint64_t f_state_cost_ms(struct mig__hv *hv)
{
    (void)hv;
    return 0;
}

static int f_probe(struct mig__hv *hv, const char *name, enum mig__probe *st)
{
    (void)hv;
    (void)name;
    *st = MIG_PROBE_ABSENT;
    return 0;
}

const struct mig__hv_ops fake_hv_ops = {
    .name = "fake", .open = f_open, .close = f_close, .facts = f_facts, .info = f_info,
    .tracking = f_tracking, .logdirty_enable = f_logdirty_enable,
    .logdirty_clean = f_logdirty_clean, .logdirty_disable = f_logdirty_disable,
    .map_pages = f_map, .unmap_pages = f_unmap, .throttle = f_throttle, .suspend = f_suspend,
    .resume = f_resume, .save_state = f_save_state, .rename = f_rename, .destroy = f_destroy,
    .create_incoming = f_create, .write_pages = f_write_pages, .write_zero = f_write_zero,
    .load_state = f_load_state, .ready = f_ready, .commit = f_commit, .discard = f_discard,
    .probe = f_probe,
    .state_cost_ms = f_state_cost_ms,
};

