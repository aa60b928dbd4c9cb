/*
 * qsrc.c: a qdisk disk as a source disk of the block mirror (blk-hook.c).
 * The domain's own QEMU serves the disk (Xen's qdisk backend), so we ask
 * it, for the length of one migration, to mirror the disk (qdisk.c:
 * blockdev-mirror, sync full, copy-mode write-blocking) into an NBD export
 * of ours on a private unix socket of this host. That export is a sink: it
 * stores nothing and puts every write QEMU makes (the bulk copy, then each
 * guest write, synchronously) on the session's data channels as the same
 * BLOCK_EXTENT / zero records a managed disk sends, so the destination's
 * side of the mirror (target.c, --disk-map) is unchanged and the bytes
 * travel under the session's own authentication and bandwidth limit. QEMU
 * never connects to the network.
 *
 * Switchover (freeze, guest paused): wait for the job to be ready, cancel
 * it gracefully (the target then equals the source and the domain stays on
 * its own disk, as libvirt does), which returns only once every write QEMU
 * made was acknowledged by the sink, i.e. handed to the data channels ahead
 * of the final round's end marks. Abort: forced cancel; the source disk is
 * never written by the job.
 *
 * Named by "blk:qdisk=SOCKET,DEVICE[,NAME]" (the CLI's --qdisk): QEMU's QMP
 * socket, the disk's device or node name there, and the name the
 * destination's --disk-map matches (default DEVICE).
 *
 * Entry points: mig__blk_qsrc_* (blk.h).
 */
#include <config.h>

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#define MIG_LOG_MODULE "blk"
#include "blk.h"
#include "nbd.h"
#include "qmp.h"

#define QSRC_READY_MS 120000u /* switchover: the job's last catch-up */

struct mig__blk_qsrc {
    struct mig_ctx *ctx;            /* borrowed */
    struct mig__qmp *q;             /* owned */
    char device[128];
    char name[256];
    uint64_t size;
    struct mig__hook_io *io;        /* borrowed from start */
    uint32_t disk;                  /* the disk's index in the session */
    char dir[64];                   /* private socket dir, "" if none */
    char sock[96];
    struct mig__nbd_export exp;
    struct mig__nbd_server *srv;    /* owned */
    struct mig__blk_qdisk *job;     /* owned */
    pthread_mutex_t lock;
    int send_err;                   /* sticky: a write the sink could not send */
    bool frozen;
    struct mig__blk_stats st;       /* under lock */
};

/* ---- the sink export -------------------------------------------------- */

static uint64_t sink_size(void *opaque)
{
    return ((struct mig__blk_qsrc *)opaque)->size;
}

static int sink_pread(void *opaque, uint64_t off, uint32_t len, void *buf)
{
    (void)opaque, (void)off, (void)len, (void)buf;
    return -MIG_ENOTSUP; /* a mirror never reads its target */
}

static void count(struct mig__blk_qsrc *s, uint64_t len, bool zero, int rc)
{
    pthread_mutex_lock(&s->lock);
    if (rc < 0 && !s->send_err)
        s->send_err = rc;
    if (rc == 0) {
        if (zero)
            s->st.zero_bytes += len;
        else if (s->st.forwarding)
            s->st.forwarded_bytes += len, s->st.forwarded_writes++;
        else
            s->st.sent_bytes += len;
        if (s->frozen)
            s->st.final_bytes += len;
    }
    pthread_mutex_unlock(&s->lock);
}

static int sink_pwrite(void *opaque, uint64_t off, uint32_t len, const void *buf, bool fua)
{
    struct mig__blk_qsrc *s = opaque;
    (void)fua; /* durable on the destination at READY (fdatasync); until
                * COMMIT the source disk is the authoritative copy */
    int rc = mig__blk_send_extent(s->io, s->disk, off, buf, len);
    count(s, len, false, rc);
    return rc < 0 ? -MIG_EIO : 0;
}

static int sink_zero(void *opaque, uint64_t off, uint64_t len)
{
    struct mig__blk_qsrc *s = opaque;
    int rc = mig__blk_send_zero(s->io, s->disk, off, len);
    count(s, len, true, rc);
    return rc < 0 ? -MIG_EIO : 0;
}

static int sink_flush(void *opaque)
{
    struct mig__blk_qsrc *s = opaque;
    pthread_mutex_lock(&s->lock);
    int rc = s->send_err ? -MIG_EIO : 0;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* A trim leaves the range undefined: zeroes are one valid content. */
static int sink_trim(void *opaque, uint64_t off, uint64_t len, bool fua)
{
    (void)fua;
    return sink_zero(opaque, off, len);
}

static int sink_write_zeroes(void *opaque, uint64_t off, uint64_t len, bool may_punch, bool fua)
{
    (void)may_punch, (void)fua;
    return sink_zero(opaque, off, len);
}

static const struct mig__nbd_export_ops sink_ops = {
    .size = sink_size,
    .pread = sink_pread,
    .pwrite = sink_pwrite,
    .flush = sink_flush,
    .trim = sink_trim,
    .write_zeroes = sink_write_zeroes,
};

/* ---- the disk ---------------------------------------------------------- */

/* The "image"."virtual-size" of a query entry: 0 if absent. */
static uint64_t vsize(const struct mig__qmp_json *holder)
{
    int64_t v;
    if (mig__qmp_json_int(mig__qmp_json_get(mig__qmp_json_get(holder, "image"), "virtual-size"),
                          &v) < 0 || v <= 0)
        return 0;
    return (uint64_t)v;
}

/* The virtual size of DEVICE: a device or its node in query-block, or any
 * node in query-named-block-nodes. */
static int query_size(struct mig__blk_qsrc *s)
{
    static const char *const cmds[] = {"query-block", "query-named-block-nodes"};
    int rc = 0;
    for (unsigned c = 0; c < 2 && rc == 0 && !s->size; c++) {
        struct mig__qmp_json *r = NULL;
        rc = mig__qmp_execute(s->q, cmds[c], NULL, &r);
        for (size_t i = 0; rc == 0 && r && r->type == MIG_QMP_J_ARR && i < r->n && !s->size; i++) {
            const struct mig__qmp_json *e = r->items[i];
            /* query-block: the device's inserted medium; nodes: the node */
            const struct mig__qmp_json *m = c == 0 ? mig__qmp_json_get(e, "inserted") : e;
            const char *dev = c == 0 ? mig__qmp_json_str(mig__qmp_json_get(e, "device")) : NULL;
            const char *node = mig__qmp_json_str(mig__qmp_json_get(m, "node-name"));
            if ((dev && !strcmp(dev, s->device)) || (node && !strcmp(node, s->device)))
                s->size = vsize(m);
        }
        mig__qmp_json_free(r);
    }
    if (rc < 0)
        return rc;
    if (s->size)
        return 0;
    MIG_LOG(s->ctx, ERROR, "qdisk: QEMU has no disk or node '%s'", s->device);
    return -MIG_ENOENT;
}

int mig__blk_qsrc_open(struct mig_ctx *ctx, const char *spec, struct mig__blk_qsrc **s_out)
{
    char sock[PATH_MAX];
    const char *c1 = strchr(spec, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
    *s_out = NULL;
    if (!c1 || c1 == spec || (size_t)(c1 - spec) >= sizeof(sock) || c1[1] == '\0' ||
        c1[1] == ',' || (c2 && c2[1] == '\0')) {
        MIG_LOG(ctx, ERROR, "qdisk '%s': not SOCKET,DEVICE[,NAME]", spec);
        return -MIG_EINVAL;
    }
    struct mig__blk_qsrc *s = calloc(1, sizeof(*s));
    if (!s)
        return -MIG_ENOMEM;
    s->ctx = ctx;
    pthread_mutex_init(&s->lock, NULL);
    snprintf(sock, sizeof(sock), "%.*s", (int)(c1 - spec), spec);
    snprintf(s->device, sizeof(s->device), "%.*s", (int)(c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1)),
             c1 + 1);
    snprintf(s->name, sizeof(s->name), "%s", c2 ? c2 + 1 : s->device);
    int rc = mig__qmp_connect(ctx, sock, 0, &s->q);
    if (rc == 0)
        rc = query_size(s);
    if (rc < 0) {
        MIG_LOG(ctx, ERROR, "qdisk %s on %s: %s", s->device, sock, mig_strerror(rc));
        mig__blk_qsrc_free(s);
        return rc;
    }
    s->st.size = s->st.allocated = s->size;
    *s_out = s;
    return 0;
}

int mig__blk_qsrc_start(struct mig__blk_qsrc *s, struct mig__hook_io *io, uint32_t id)
{
    char job[48];
    int rc;
    s->io = io;
    s->disk = id;
    snprintf(s->dir, sizeof(s->dir), "/tmp/mlv-qdisk-XXXXXX");
    if (!mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        return mig__from_errno(errno);
    }
    snprintf(s->sock, sizeof(s->sock), "%s/nbd.sock", s->dir);
    s->exp = (struct mig__nbd_export){.name = "", .ops = &sink_ops, .opaque = s};
    struct mig__nbd_server_config cfg = {.max_payload = 8u << 20, .max_conns = 2};
    rc = mig__nbd_server_new(s->ctx, &s->exp, &cfg, &s->srv);
    if (rc == 0)
        rc = mig__nbd_server_listen_unix(s->srv, s->sock);
    if (rc == 0)
        rc = mig__nbd_server_start(s->srv);
    snprintf(job, sizeof(job), "mlv-mirror-%" PRIu32, id);
    struct mig__blk_qdisk_params p = {.device = s->device, .job_id = job, .nbd_socket = s->sock};
    if (rc == 0)
        rc = mig__blk_qdisk_start(s->ctx, s->q, &p, &s->job);
    return rc;
}

/* The job's progress into the stats (pending: what QEMU has still to copy). */
static int poll_job(struct mig__blk_qsrc *s)
{
    struct mig__blk_qdisk_job j;
    if (!s->job)
        return 0;
    int rc = mig__blk_qdisk_job(s->job, &j);
    if (rc < 0)
        return rc;
    if (j.error[0]) {
        MIG_LOG(s->ctx, ERROR, "qdisk %s: QEMU's mirror failed: %s", s->device, j.error);
        return -MIG_EIO;
    }
    pthread_mutex_lock(&s->lock);
    s->st.pending_bytes = j.ready ? 0 : (j.len > j.offset ? j.len - j.offset : 0);
    s->st.forwarding = j.ready;
    rc = s->send_err;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int mig__blk_qsrc_round(struct mig__blk_qsrc *s, bool final)
{
    pthread_mutex_lock(&s->lock);
    s->st.rounds++;
    pthread_mutex_unlock(&s->lock);
    return final ? 0 : poll_job(s); /* QEMU copies on its own; final: done at freeze */
}

int mig__blk_qsrc_stats(struct mig__blk_qsrc *s, struct mig__blk_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->st;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int mig__blk_qsrc_freeze(struct mig__blk_qsrc *s)
{
    pthread_mutex_lock(&s->lock);
    s->frozen = true;
    pthread_mutex_unlock(&s->lock);
    int rc = mig__blk_qdisk_wait_ready(s->job, QSRC_READY_MS);
    if (rc == 0)
        rc = mig__blk_qdisk_complete(s->job, QSRC_READY_MS);
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        rc = s->send_err;
        s->st.pending_bytes = 0;
        pthread_mutex_unlock(&s->lock);
    }
    return rc;
}

void mig__blk_qsrc_settle(struct mig__blk_qsrc *s)
{
    mig__blk_qdisk_free(s->job); /* aborts a job still there (failure before COMMIT) */
    s->job = NULL;
    mig__nbd_server_free(s->srv);
    s->srv = NULL;
    if (s->dir[0]) {
        unlink(s->sock);
        rmdir(s->dir);
        s->dir[0] = '\0';
    }
}

const char *mig__blk_qsrc_name(struct mig__blk_qsrc *s)
{
    return s->name;
}

void mig__blk_qsrc_free(struct mig__blk_qsrc *s)
{
    if (!s)
        return;
    mig__blk_qsrc_settle(s);
    mig__qmp_close(s->q);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
