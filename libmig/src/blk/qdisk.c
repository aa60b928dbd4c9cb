/*
 * qdisk.c: the second source front end of the block mirror (blk.h, issue
 * 10): a disk not managed by us, served to the domain by its own QEMU (Xen's
 * qdisk backend). Nothing of ours is in its write path, so for the length of
 * one migration we ask that QEMU, over its QMP socket (hv/qmp.h), to mirror
 * the disk into our destination target, served by our NBD server:
 *
 *   blockdev-add    {driver: nbd, node-name: NODE, server: {type: unix,
 *                    path: SOCKET}, export: NAME}      the target, in QEMU
 *   blockdev-mirror {job-id, device: the disk's node, target: NODE,
 *                    sync: full, copy-mode: write-blocking,
 *                    auto-dismiss: false}
 *
 * write-blocking makes every guest write to a region already copied wait
 * until the target has it too (DRBD's protocol C, as mirror.c's forwarding);
 * "ready" (query-block-jobs) means the copy converged. At switchover, with
 * the guest paused, block-job-cancel of a ready mirror ends the job with the
 * target identical to the source and leaves the domain on its original disk
 * (what libvirt does for storage migration: the source must stay intact until
 * COMMIT); block-job-complete would pivot the source QEMU onto the target,
 * which a migration must not do. Before that (failure, abort) a forced
 * cancel stops the job; the source disk was never written by it.
 * auto-dismiss is off so the job's end state and error stay visible until
 * we dismiss it: a failed copy is never mistaken for a finished one.
 *
 * QMP events are not read (the client skips them); the job is polled with
 * query-block-jobs every POLL_MS.
 *
 * Entry points: mig__blk_qdisk_* (blk.h).
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIG_LOG_MODULE "blk"
#include "blk.h"
#include "qmp.h"

#define POLL_MS 20u

struct mig__blk_qdisk {
    struct mig_ctx *ctx;    /* borrowed */
    struct mig__qmp *q;     /* borrowed */
    char job[64];           /* job-id */
    char node[64];          /* the NBD target's node name in QEMU */
    bool job_on;            /* the job exists (not dismissed) */
    bool node_on;           /* the target node exists */
};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

static int qerr(struct mig__blk_qdisk *d, const char *what, int rc)
{
    MIG_LOG(d->ctx, ERROR, "qdisk %s: %s: %s%s%s", d->job, what, mig_strerror(rc),
            rc == -MIG_EBACKEND ? ": " : "",
            rc == -MIG_EBACKEND ? mig__qmp_last_error_desc(d->q) : "");
    return rc;
}

int mig__blk_qdisk_job(struct mig__blk_qdisk *d, struct mig__blk_qdisk_job *out)
{
    struct mig__qmp_json *ret = NULL;
    memset(out, 0, sizeof(*out));
    int rc = mig__qmp_execute(d->q, "query-block-jobs", NULL, &ret);
    if (rc < 0)
        return qerr(d, "query-block-jobs", rc);
    rc = -MIG_ENOENT;
    for (size_t i = 0; ret && ret->type == MIG_QMP_J_ARR && i < ret->n; i++) {
        const struct mig__qmp_json *j = ret->items[i];
        const char *dev = mig__qmp_json_str(mig__qmp_json_get(j, "device"));
        if (!dev || strcmp(dev, d->job))
            continue;
        int64_t v;
        if (mig__qmp_json_int(mig__qmp_json_get(j, "offset"), &v) == 0 && v >= 0)
            out->offset = (uint64_t)v;
        if (mig__qmp_json_int(mig__qmp_json_get(j, "len"), &v) == 0 && v >= 0)
            out->len = (uint64_t)v;
        const struct mig__qmp_json *r = mig__qmp_json_get(j, "ready");
        out->ready = r && r->type == MIG_QMP_J_BOOL && r->b;
        const char *st = mig__qmp_json_str(mig__qmp_json_get(j, "status"));
        snprintf(out->status, sizeof(out->status), "%s", st ? st : "");
        const char *err = mig__qmp_json_str(mig__qmp_json_get(j, "error"));
        if (err)
            snprintf(out->error, sizeof(out->error), "%s", err);
        rc = 0;
        break;
    }
    mig__qmp_json_free(ret);
    return rc;
}

int mig__blk_qdisk_start(struct mig_ctx *ctx, struct mig__qmp *q,
                         const struct mig__blk_qdisk_params *p, struct mig__blk_qdisk **d_out)
{
    struct mig__qmp_args a;
    int rc;
    if (!p->device || !p->job_id || !p->nbd_socket || !p->device[0] || !p->job_id[0] ||
        strlen(p->job_id) > 40)
        return -MIG_EINVAL;
    struct mig__blk_qdisk *d = calloc(1, sizeof(*d));
    if (!d)
        return -MIG_ENOMEM;
    d->ctx = ctx;
    d->q = q;
    snprintf(d->job, sizeof(d->job), "%s", p->job_id);
    snprintf(d->node, sizeof(d->node), "%s-target", p->job_id);

    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "driver", "nbd");
    mig__qmp_args_str(&a, "node-name", d->node);
    mig__qmp_args_obj_begin(&a, "server");
    mig__qmp_args_str(&a, "type", "unix");
    mig__qmp_args_str(&a, "path", p->nbd_socket);
    mig__qmp_args_obj_end(&a);
    mig__qmp_args_str(&a, "export", p->nbd_export ? p->nbd_export : "");
    if ((rc = mig__qmp_execute(q, "blockdev-add", &a, NULL)) < 0) {
        qerr(d, "blockdev-add of the NBD target", rc);
        goto out;
    }
    d->node_on = true;

    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "job-id", d->job);
    mig__qmp_args_str(&a, "device", p->device);
    mig__qmp_args_str(&a, "target", d->node);
    mig__qmp_args_str(&a, "sync", "full");
    mig__qmp_args_str(&a, "copy-mode", "write-blocking");
    mig__qmp_args_bool(&a, "auto-dismiss", false);
    if (p->speed)
        mig__qmp_args_int(&a, "speed", (int64_t)p->speed);
    if ((rc = mig__qmp_execute(q, "blockdev-mirror", &a, NULL)) < 0) {
        qerr(d, "blockdev-mirror", rc);
        goto out;
    }
    d->job_on = true;
    MIG_LOG(ctx, INFO, "qdisk %s: mirroring %s into nbd+unix:///%s?socket=%s (write-blocking)",
            d->job, p->device, p->nbd_export ? p->nbd_export : "", p->nbd_socket);
out:
    if (rc < 0) {
        mig__blk_qdisk_abort(d);
        free(d);
        return rc;
    }
    *d_out = d;
    return 0;
}

int mig__blk_qdisk_wait_ready(struct mig__blk_qdisk *d, unsigned timeout_ms)
{
    uint64_t deadline = mig__now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct mig__blk_qdisk_job j;
    for (;;) {
        int rc = mig__blk_qdisk_job(d, &j);
        if (rc == -MIG_ENOENT) {
            MIG_LOG(d->ctx, ERROR, "qdisk %s: the mirror job is gone", d->job);
            return -MIG_EIO;
        }
        if (rc < 0)
            return rc;
        if (j.error[0] || !strcmp(j.status, "concluded") || !strcmp(j.status, "aborting")) {
            MIG_LOG(d->ctx, ERROR, "qdisk %s: the mirror failed (%s): %s", d->job, j.status,
                    j.error[0] ? j.error : "no reason given");
            return -MIG_EIO;
        }
        if (j.ready)
            return 0;
        if (mig__now_ns() > deadline) {
            MIG_LOG(d->ctx, ERROR, "qdisk %s: not ready after %u ms (%" PRIu64 "/%" PRIu64 ")",
                    d->job, timeout_ms, j.offset, j.len);
            return -MIG_ETIMEOUT;
        }
        sleep_ms(POLL_MS);
    }
}

/* Wait until the job concluded (or vanished); dismiss it. 0 if it ended
 * without an error. */
static int finish(struct mig__blk_qdisk *d, unsigned timeout_ms)
{
    uint64_t deadline = mig__now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct mig__blk_qdisk_job j;
    int rc;
    for (;;) {
        rc = mig__blk_qdisk_job(d, &j);
        if (rc == -MIG_ENOENT) {
            d->job_on = false;
            return -MIG_EIO; /* gone without our dismiss: outcome unknown */
        }
        if (rc < 0)
            return rc;
        if (!strcmp(j.status, "concluded") || !strcmp(j.status, "null"))
            break;
        if (mig__now_ns() > deadline)
            return -MIG_ETIMEOUT;
        sleep_ms(POLL_MS);
    }
    struct mig__qmp_args a;
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "id", d->job);
    if ((rc = mig__qmp_execute(d->q, "job-dismiss", &a, NULL)) < 0)
        return qerr(d, "job-dismiss", rc);
    d->job_on = false;
    if (j.error[0]) {
        MIG_LOG(d->ctx, ERROR, "qdisk %s: the mirror ended with an error: %s", d->job, j.error);
        return -MIG_EIO;
    }
    return 0;
}

static void del_node(struct mig__blk_qdisk *d)
{
    if (!d->node_on)
        return;
    struct mig__qmp_args a;
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "node-name", d->node);
    int rc = mig__qmp_execute(d->q, "blockdev-del", &a, NULL);
    if (rc < 0)
        qerr(d, "blockdev-del of the NBD target", rc);
    else
        d->node_on = false;
}

int mig__blk_qdisk_complete(struct mig__blk_qdisk *d, unsigned timeout_ms)
{
    struct mig__blk_qdisk_job j;
    int rc = mig__blk_qdisk_job(d, &j);
    if (rc == 0 && !j.ready) {
        MIG_LOG(d->ctx, ERROR, "qdisk %s: complete before the mirror is ready (%s)", d->job,
                j.status);
        rc = -MIG_EINVAL;
    }
    if (rc < 0)
        return rc;
    /* a graceful cancel of a ready mirror: QEMU copies what is left, the
     * target equals the source, the domain stays on its own disk */
    struct mig__qmp_args a;
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "device", d->job);
    mig__qmp_args_bool(&a, "force", false);
    if ((rc = mig__qmp_execute(d->q, "block-job-cancel", &a, NULL)) < 0)
        return qerr(d, "block-job-cancel", rc);
    if ((rc = finish(d, timeout_ms)) < 0)
        return rc;
    /* the NBD client flushes on close; the destination fdatasyncs anyway */
    del_node(d);
    return d->node_on ? -MIG_EIO : 0;
}

void mig__blk_qdisk_abort(struct mig__blk_qdisk *d)
{
    if (!d)
        return;
    if (d->job_on) {
        struct mig__qmp_args a;
        mig__qmp_args_init(&a);
        mig__qmp_args_str(&a, "device", d->job);
        mig__qmp_args_bool(&a, "force", true);
        int rc = mig__qmp_execute(d->q, "block-job-cancel", &a, NULL);
        if (rc < 0)
            qerr(d, "block-job-cancel (force)", rc);
        finish(d, 10000u);
    }
    del_node(d);
}

void mig__blk_qdisk_free(struct mig__blk_qdisk *d)
{
    if (!d)
        return;
    if (d->job_on || d->node_on)
        mig__blk_qdisk_abort(d);
    free(d);
}
