/*
 * mirror.c: the source half of the block mirror (blk.h): the managed disk's
 * export functions (apply, then mark out of sync or forward, then ack), the
 * out-of-sync bitmap (64 KiB regions), sparse-aware start (SEEK_DATA /
 * SEEK_HOLE), rounds that send the regions out of sync since the previous
 * pass, and synchronous forwarding once the residue is small.
 *
 * Ordering: a stripe lock (1 MiB stripes, hashed onto STRIPE_LOCKS mutexes)
 * is held by a write from its local apply until it is marked or forwarded,
 * and by a round from reading a stripe's regions until they are on the wire.
 * So the destination sees, per region, versions in the order the image had
 * them, on one channel per stripe.
 *
 * Entry points: mig__blk_mirror_*, mig__blk_export_* (blk.h).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIG_LOG_MODULE "blk"
#include "blk.h"
#include "nbd.h"

#define STRIPE_LOCKS 64u
#define REGIONS_PER_STRIPE (MIG_BLK_STRIPE / MIG_BLK_REGION)
#define BITS 64u

struct mig__blk_mirror {
    struct mig_ctx *ctx;                /* borrowed */
    char path[PATH_MAX];
    int fd;                             /* owned */
    bool blockdev;
    uint64_t size;                      /* bytes */
    uint64_t nregions;
    pthread_mutex_t stripe[STRIPE_LOCKS];

    pthread_mutex_t lock;               /* guards everything below */
    pthread_cond_t thaw;                /* 'phase' left FROZEN */
    enum { LIVE, FROZEN, MOVED } phase; /* writes: go / wait (switchover) / refused */
    uint64_t *dirty;                    /* owned, nregions bits: out of sync */
    uint64_t *sent;                     /* owned, nregions bits: the destination has a copy
                                           (holes: from the start, as it starts zeroed) */
    uint64_t *data;                     /* owned, nregions bits: data was sent (else the
                                           destination's copy is still zero) */
    bool tracking;
    bool forwarding;
    bool in_final;
    struct mig__hook_io *io;            /* borrowed while tracking */
    uint32_t disk;
    int fwd_err;                        /* first forwarding failure (sticky) */
    struct mig__blk_stats st;

    /* The persistent out-of-sync log (mig__blk_mirror_persist): one bit per
     * MIG_BLK_OOS_EXTENT, set on disk (fdatasync'ed) before the first write
     * to a clean extent is applied, cleared only when the disk moved. */
    pthread_mutex_t oos_lock;           /* guards oos[], oos_fd's contents */
    int oos_fd;                         /* owned, -1: not persisted */
    uint64_t *oos;                      /* owned, noos bits: as on disk */
    uint64_t noos;
    uint64_t oos_loaded;                /* bytes marked when the log was loaded */
    uint64_t oos_syncs;                 /* count: log writes (each one fdatasync) */
    bool oos_broken;                    /* a log write failed: the file may lack bits */

    uint8_t *buf;                       /* owned: one stripe, for rounds (session thread) */
    uint64_t *snap;                     /* owned, nregions bits: a round's get-and-clear */
    struct mig_ratelimit rl;
};

static bool test_bit(const uint64_t *bm, uint64_t i)
{
    return (bm[i / BITS] >> (i % BITS)) & 1u;
}

static void set_bit(uint64_t *bm, uint64_t i)
{
    bm[i / BITS] |= 1ull << (i % BITS);
}

static uint64_t words(uint64_t nbits)
{
    return (nbits + BITS - 1) / BITS;
}

int mig__blk_mirror_open(struct mig_ctx *ctx, const char *path, struct mig__blk_mirror **m_out)
{
    struct stat sb;
    int rc = 0;
    struct mig__blk_mirror *m = calloc(1, sizeof(*m));
    if (!m)
        return -MIG_ENOMEM;
    m->ctx = ctx;
    m->fd = -1;
    m->oos_fd = -1;
    for (unsigned i = 0; i < STRIPE_LOCKS; i++)
        pthread_mutex_init(&m->stripe[i], NULL);
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->oos_lock, NULL);
    pthread_cond_init(&m->thaw, NULL);
    mig__ratelimit_init(&m->rl, 1000, 5);
    if (strlen(path) >= sizeof(m->path)) {
        rc = -MIG_EINVAL;
        goto out;
    }
    strcpy(m->path, path);
    m->fd = open(path, O_RDWR | O_CLOEXEC);
    if (m->fd < 0 || fstat(m->fd, &sb) < 0) {
        rc = mig__from_errno(errno);
        MIG_LOG(ctx, ERROR, "managed disk %s: %s", path, strerror(errno));
        goto out;
    }
    if (S_ISBLK(sb.st_mode)) {
        m->blockdev = true;
        if (ioctl(m->fd, BLKGETSIZE64, &m->size) < 0) {
            rc = mig__from_errno(errno);
            goto out;
        }
    } else if (S_ISREG(sb.st_mode)) {
        m->size = (uint64_t)sb.st_size;
    } else {
        MIG_LOG(ctx, ERROR, "managed disk %s: neither a file nor a block device", path);
        rc = -MIG_ENOTSUP;
        goto out;
    }
    m->nregions = (m->size + MIG_BLK_REGION - 1) / MIG_BLK_REGION;
    m->dirty = calloc(words(m->nregions) + 1, sizeof(uint64_t));
    m->sent = calloc(words(m->nregions) + 1, sizeof(uint64_t));
    m->snap = calloc(words(m->nregions) + 1, sizeof(uint64_t));
    m->data = calloc(words(m->nregions) + 1, sizeof(uint64_t));
    m->buf = malloc(MIG_BLK_STRIPE);
    if (!m->dirty || !m->sent || !m->snap || !m->data || !m->buf)
        rc = -MIG_ENOMEM;
    m->st.size = m->size;
out:
    if (rc < 0) {
        mig__blk_mirror_free(m);
        return rc;
    }
    *m_out = m;
    return 0;
}

void mig__blk_mirror_free(struct mig__blk_mirror *m)
{
    if (!m)
        return;
    if (m->fd >= 0)
        close(m->fd);
    if (m->oos_fd >= 0)
        close(m->oos_fd);
    free(m->oos);
    for (unsigned i = 0; i < STRIPE_LOCKS; i++)
        pthread_mutex_destroy(&m->stripe[i]);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->oos_lock);
    pthread_cond_destroy(&m->thaw);
    free(m->dirty);
    free(m->sent);
    free(m->snap);
    free(m->data);
    free(m->buf);
    free(m);
}

const char *mig__blk_mirror_path(const struct mig__blk_mirror *m)
{
    return m->path;
}

/* Lock the stripes [first, last] in ascending lock order (a range longer
 * than STRIPE_LOCKS stripes takes every lock once). */
static void lock_stripes(struct mig__blk_mirror *m, uint64_t first, uint64_t last)
{
    uint64_t n = last - first + 1;
    if (n >= STRIPE_LOCKS) {
        for (unsigned i = 0; i < STRIPE_LOCKS; i++)
            pthread_mutex_lock(&m->stripe[i]);
        return;
    }
    bool take[STRIPE_LOCKS] = {false};
    for (uint64_t s = first; s <= last; s++)
        take[s % STRIPE_LOCKS] = true;
    for (unsigned i = 0; i < STRIPE_LOCKS; i++)
        if (take[i])
            pthread_mutex_lock(&m->stripe[i]);
}

static void unlock_stripes(struct mig__blk_mirror *m, uint64_t first, uint64_t last)
{
    uint64_t n = last - first + 1;
    bool take[STRIPE_LOCKS] = {false};
    for (uint64_t s = first; s <= last && n < STRIPE_LOCKS; s++)
        take[s % STRIPE_LOCKS] = true;
    for (unsigned i = 0; i < STRIPE_LOCKS; i++)
        if (n >= STRIPE_LOCKS || take[i])
            pthread_mutex_unlock(&m->stripe[i]);
}

static int full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t r = pwrite(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return mig__from_errno(errno);
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return mig__from_errno(errno);
        }
        if (r == 0) { /* beyond EOF of a file: zeroes */
            memset(p, 0, len);
            return 0;
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static bool is_zero(const uint8_t *p, size_t len)
{
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < len / 8; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
            return false;
    }
    return true;
}

int mig__blk_send_extent(struct mig__hook_io *io, uint32_t disk, uint64_t off, const void *data,
                         size_t len)
{
    uint8_t hdr[16] = {0};
    memcpy(hdr, &disk, 4);
    memcpy(hdr + 8, &off, 8);
    struct iovec iov[2] = {{hdr, 16}, {(void *)data, len}};
    return io->send(io, (unsigned)(off / MIG_BLK_STRIPE), MIG_REC_BLOCK_EXTENT, iov, 2);
}

int mig__blk_send_zero(struct mig__hook_io *io, uint32_t disk, uint64_t off, uint64_t len)
{
    uint8_t rec[32] = {0};
    uint32_t hook = MIG_HOOK_ID_BLK, kind = MIG_BLK_KIND_ZERO;
    memcpy(rec, &hook, 4);
    memcpy(rec + 4, &kind, 4);
    memcpy(rec + 8, &disk, 4);
    memcpy(rec + 16, &off, 8);
    memcpy(rec + 24, &len, 8);
    struct iovec iov = {rec, sizeof(rec)};
    return io->send(io, (unsigned)(off / MIG_BLK_STRIPE), MIG_REC_HOOK_DATA, &iov, 1);
}

static int send_extent(struct mig__blk_mirror *m, uint64_t off, const void *data, size_t len)
{
    return mig__blk_send_extent(m->io, m->disk, off, data, len);
}

static int send_zero(struct mig__blk_mirror *m, uint64_t off, uint64_t len)
{
    return mig__blk_send_zero(m->io, m->disk, off, len);
}

/* After a local change of [off, off+len) (stripe locks held): mark the
 * regions out of sync, or forward the change for the regions in sync when
 * forwarding is on. data == NULL: the range now reads as zeroes. */
static int track(struct mig__blk_mirror *m, uint64_t off, uint64_t len, const uint8_t *data)
{
    uint64_t first = off / MIG_BLK_REGION, last = (off + len - 1) / MIG_BLK_REGION;
    uint64_t fwd_from = UINT64_MAX;
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    if (!m->tracking) {
        pthread_mutex_unlock(&m->lock);
        return 0;
    }
    bool fwd = m->forwarding && !m->fwd_err;
    for (uint64_t r = first; r <= last; r++) {
        if (fwd && test_bit(m->sent, r) && !test_bit(m->dirty, r)) {
            if (fwd_from == UINT64_MAX)
                fwd_from = r;
        } else {
            set_bit(m->dirty, r);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (fwd_from == UINT64_MAX)
        return 0;
    /* Forward the part of the write that falls in regions in sync, piece by
     * piece (one record per stripe, so it travels with that stripe). */
    for (uint64_t r = fwd_from; r <= last && rc == 0; r++) {
        pthread_mutex_lock(&m->lock);
        bool in_sync = test_bit(m->sent, r) && !test_bit(m->dirty, r);
        pthread_mutex_unlock(&m->lock);
        if (!in_sync)
            continue;
        uint64_t a = r * MIG_BLK_REGION, b = a + MIG_BLK_REGION;
        if (a < off)
            a = off;
        if (b > off + len)
            b = off + len;
        /* campaign self-test: a forwarded write that never leaves (protocol C broken) */
        if (mig__planted(m->ctx, "blk-forward"))
            rc = 0;
        else
            rc = data ? send_extent(m, a, data + (a - off), b - a) : send_zero(m, a, b - a);
        pthread_mutex_lock(&m->lock);
        if (rc < 0) {
            /* the migration fails on this error anyway; keep the bitmap true */
            set_bit(m->dirty, r);
            if (!m->fwd_err)
                m->fwd_err = rc;
        } else {
            m->st.forwarded_bytes += b - a;
            if (data)
                set_bit(m->data, r);
            if (m->in_final)
                m->st.final_bytes += b - a;
        }
        pthread_mutex_unlock(&m->lock);
    }
    pthread_mutex_lock(&m->lock);
    m->st.forwarded_writes++;
    pthread_mutex_unlock(&m->lock);
    /* A write we could not forward is still applied locally and marked: the
     * guest's disk is right; the migration reports the error. */
    return 0;
}

/* ---- the export --------------------------------------------------------- */

uint64_t mig__blk_export_size(void *opaque)
{
    return ((struct mig__blk_mirror *)opaque)->size;
}

static int check_range(struct mig__blk_mirror *m, uint64_t off, uint64_t len)
{
    if (len == 0 || off > m->size || len > m->size - off)
        return -MIG_EINVAL;
    return 0;
}

/* A change may start: waits while the migration's switchover holds writes;
 * -MIG_ECANCELLED once the disk moved to the destination. */
static int may_write(struct mig__blk_mirror *m)
{
    pthread_mutex_lock(&m->lock);
    while (m->phase == FROZEN)
        pthread_cond_wait(&m->thaw, &m->lock);
    int rc = m->phase == MOVED ? -MIG_ECANCELLED : 0;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int mig__blk_export_pread(void *opaque, uint64_t off, uint32_t len, void *buf)
{
    struct mig__blk_mirror *m = opaque;
    int rc = check_range(m, off, len);
    return rc < 0 ? rc : full_pread(m->fd, buf, len, off);
}

int mig__blk_export_flush(void *opaque)
{
    struct mig__blk_mirror *m = opaque;
    return fdatasync(m->fd) < 0 ? mig__from_errno(errno) : 0;
}

/* Make [off, off+len) read as zeroes: punch (files), BLKZEROOUT (devices),
 * or write zeroes. */
static int zero_range(int fd, bool blockdev, uint64_t off, uint64_t len, bool may_punch)
{
    if (!blockdev && may_punch &&
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return 0;
    if (!blockdev && fallocate(fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)len) == 0)
        return 0;
    if (blockdev) {
        uint64_t range[2] = {off, len};
        if (ioctl(fd, BLKZEROOUT, range) == 0)
            return 0;
    }
    static const uint8_t zeros[64 << 10];
    while (len) {
        size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
        int rc = full_pwrite(fd, zeros, n, off);
        if (rc < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

/* ---- the persistent out-of-sync log -------------------------------------- */

/*
 * File layout (host byte order; the file never leaves the host):
 *   0  8  magic "MIGOOS1\0"
 *   8  8  disk size in bytes
 *   16 4  extent size in bytes (MIG_BLK_OOS_EXTENT)
 *   20 4  0
 *   24 .. one bit per extent, LSB first, in 64-bit words
 * A file that does not match this disk (size, extent, length, magic) loads
 * as "every extent out of sync": a damaged log can cost a full copy, never
 * a missed region.
 */
#define OOS_HDR 24u
static const char oos_magic[8] = "MIGOOS1";

static int oos_write_all(struct mig__blk_mirror *m)
{
    uint8_t hdr[OOS_HDR] = {0};
    uint32_t ext = MIG_BLK_OOS_EXTENT;
    memcpy(hdr, oos_magic, 8);
    memcpy(hdr + 8, &m->size, 8);
    memcpy(hdr + 16, &ext, 4);
    int rc = full_pwrite(m->oos_fd, hdr, OOS_HDR, 0);
    if (rc == 0)
        rc = full_pwrite(m->oos_fd, m->oos, (size_t)words(m->noos) * 8, OOS_HDR);
    if (rc == 0 && ftruncate(m->oos_fd, (off_t)(OOS_HDR + words(m->noos) * 8)) < 0)
        rc = mig__from_errno(errno);
    if (rc == 0 && fdatasync(m->oos_fd) < 0)
        rc = mig__from_errno(errno);
    return rc;
}

int mig__blk_mirror_persist(struct mig__blk_mirror *m, const char *log_path)
{
    uint64_t nw;
    int rc = 0;
    if (m->oos_fd >= 0)
        return -MIG_EBUSY;
    m->noos = (m->size + MIG_BLK_OOS_EXTENT - 1) / MIG_BLK_OOS_EXTENT;
    nw = words(m->noos);
    m->oos = calloc(nw + 1, sizeof(uint64_t));
    if (!m->oos)
        return -MIG_ENOMEM;
    m->oos_fd = open(log_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (m->oos_fd < 0) {
        rc = mig__from_errno(errno);
        MIG_LOG(m->ctx, ERROR, "out-of-sync log %s: %s", log_path, strerror(errno));
        goto out;
    }
    struct stat sb;
    uint8_t hdr[OOS_HDR];
    uint64_t size = 0;
    uint32_t ext = 0;
    bool fresh = fstat(m->oos_fd, &sb) == 0 && sb.st_size == 0;
    bool ok = !fresh && sb.st_size == (off_t)(OOS_HDR + nw * 8) &&
              pread(m->oos_fd, hdr, OOS_HDR, 0) == OOS_HDR && !memcmp(hdr, oos_magic, 8);
    if (ok) {
        memcpy(&size, hdr + 8, 8);
        memcpy(&ext, hdr + 16, 4);
        ok = size == m->size && ext == MIG_BLK_OOS_EXTENT &&
             pread(m->oos_fd, m->oos, nw * 8, OOS_HDR) == (ssize_t)(nw * 8);
    }
    if (!ok) {
        /* new (0 bytes): nothing written since; anything else: unknown,
         * so every extent is out of sync */
        memset(m->oos, fresh ? 0 : 0xff, nw * 8);
        if (m->noos % BITS)
            m->oos[nw - 1] &= (1ull << (m->noos % BITS)) - 1;
        if (!fresh)
            MIG_LOG(m->ctx, WARN,
                    "out-of-sync log %s does not match %s: every extent out of sync",
                    log_path, m->path);
        rc = oos_write_all(m);
        if (rc < 0)
            goto out;
    }
    uint64_t n = 0;
    for (uint64_t i = 0; i < nw; i++)
        n += (uint64_t)__builtin_popcountll(m->oos[i]);
    m->oos_loaded = n * MIG_BLK_OOS_EXTENT;
    MIG_LOG(m->ctx, INFO, "disk %s: out-of-sync log %s, %" PRIu64 " MiB written since the last sync",
            m->path, log_path, m->oos_loaded >> 20);
out:
    if (rc < 0) {
        if (m->oos_fd >= 0)
            close(m->oos_fd);
        m->oos_fd = -1;
        free(m->oos);
        m->oos = NULL;
    }
    return rc;
}

/* Before a change of [off, off+len) is applied: make sure each extent it
 * touches is marked in the log on disk. A clean extent costs one pwrite of
 * its word and one fdatasync of the log; a marked one costs a bit test. */
static int oos_mark(struct mig__blk_mirror *m, uint64_t off, uint64_t len)
{
    if (m->oos_fd < 0)
        return 0;
    uint64_t first = off / MIG_BLK_OOS_EXTENT, last = (off + len - 1) / MIG_BLK_OOS_EXTENT;
    uint64_t w0 = UINT64_MAX, w1 = 0;
    int rc = 0;
    pthread_mutex_lock(&m->oos_lock);
    for (uint64_t e = first; e <= last; e++)
        if (!test_bit(m->oos, e)) {
            set_bit(m->oos, e);
            if (w0 == UINT64_MAX)
                w0 = e / BITS;
            w1 = e / BITS;
        }
    /* Held under oos_lock: a concurrent write to the same extent waits here
     * until the mark is durable. After a failed log write the file may lack
     * bits memory has: it is rewritten whole before any write goes on. */
    if (m->oos_broken) {
        rc = oos_write_all(m);
        if (rc == 0)
            m->oos_broken = false;
    } else if (w0 != UINT64_MAX) {
        /* test builds: the log's disk fails (MIG_FAULT=blk-oos-write=error) */
        int f = mig__fault(m->ctx, "blk-oos-write", 0);
        rc = f < 0 ? f : f ? -MIG_EIO : 0;
        if (rc == 0)
            rc = full_pwrite(m->oos_fd, m->oos + w0, (size_t)(w1 - w0 + 1) * 8, OOS_HDR + w0 * 8);
        if (rc == 0 && fdatasync(m->oos_fd) < 0)
            rc = mig__from_errno(errno);
    }
    if (rc < 0) {
        /* the write is refused (EIO) and not applied; memory keeps the bits
         * (a superset of what was written), the file is retried next time */
        m->oos_broken = true;
        MIG_LOG(m->ctx, ERROR, "disk %s: out-of-sync log: %s", m->path, mig_strerror(rc));
    } else if (w0 != UINT64_MAX) {
        m->oos_syncs++;
    }
    pthread_mutex_unlock(&m->oos_lock);
    return rc;
}

uint64_t mig__blk_mirror_oos_bytes(struct mig__blk_mirror *m, uint64_t *loaded_out,
                                   uint64_t *syncs_out)
{
    uint64_t n = 0;
    pthread_mutex_lock(&m->oos_lock);
    for (uint64_t i = 0; m->oos && i < words(m->noos); i++)
        n += (uint64_t)__builtin_popcountll(m->oos[i]);
    if (loaded_out)
        *loaded_out = m->oos_loaded;
    if (syncs_out)
        *syncs_out = m->oos_syncs;
    pthread_mutex_unlock(&m->oos_lock);
    return n * MIG_BLK_OOS_EXTENT;
}

bool mig__blk_mirror_oos_test(struct mig__blk_mirror *m, uint64_t off)
{
    pthread_mutex_lock(&m->oos_lock);
    bool b = m->oos && off < m->size && test_bit(m->oos, off / MIG_BLK_OOS_EXTENT);
    pthread_mutex_unlock(&m->oos_lock);
    return b;
}

/* The disk moved (COMMIT): the destination holds every acknowledged write,
 * this copy is the new baseline. Writes are refused from now on. */
static void oos_clear(struct mig__blk_mirror *m)
{
    pthread_mutex_lock(&m->oos_lock);
    if (m->oos_fd >= 0) {
        memset(m->oos, 0, words(m->noos) * 8);
        int rc = oos_write_all(m);
        m->oos_broken = rc < 0;
        if (rc < 0)
            MIG_LOG(m->ctx, WARN, "disk %s: clearing the out-of-sync log: %s", m->path,
                    mig_strerror(rc));
    }
    pthread_mutex_unlock(&m->oos_lock);
}

/* One change of the disk: wait out a switchover hold, apply it (buf: data;
 * NULL: zeroes), make it durable with fua, then mark or forward it, all
 * under the stripes' locks. */
static int change(struct mig__blk_mirror *m, uint64_t off, uint64_t len, const void *buf,
                  bool may_punch, bool fua)
{
    int rc = check_range(m, off, len);
    if (rc == 0)
        rc = may_write(m);
    if (rc < 0)
        return rc;
    if ((rc = oos_mark(m, off, len)) < 0)
        return rc;
    uint64_t s0 = off / MIG_BLK_STRIPE, s1 = (off + len - 1) / MIG_BLK_STRIPE;
    lock_stripes(m, s0, s1);
    rc = buf ? full_pwrite(m->fd, buf, (size_t)len, off)
             : zero_range(m->fd, m->blockdev, off, len, may_punch);
    if (rc == 0 && fua && fdatasync(m->fd) < 0)
        rc = mig__from_errno(errno);
    if (rc == 0)
        rc = track(m, off, len, buf);
    unlock_stripes(m, s0, s1);
    return rc;
}

int mig__blk_export_pwrite(void *opaque, uint64_t off, uint32_t len, const void *buf, bool fua)
{
    return change(opaque, off, len, buf, false, fua);
}

int mig__blk_export_write_zeroes(void *opaque, uint64_t off, uint64_t len, bool may_punch,
                                 bool fua)
{
    return change(opaque, off, len, NULL, may_punch, fua);
}

int mig__blk_export_trim(void *opaque, uint64_t off, uint64_t len, bool fua)
{
    /* A trimmed range reads as zeroes here, so the mirror stays
     * byte-identical (the protocol would allow anything). */
    return mig__blk_export_write_zeroes(opaque, off, len, true, fua);
}

/* ---- migration side ----------------------------------------------------- */

int mig__blk_mirror_start(struct mig__blk_mirror *m, struct mig__hook_io *io, uint32_t disk_id)
{
    uint64_t allocated = 0;
    lock_stripes(m, 0, STRIPE_LOCKS); /* no write in between */
    pthread_mutex_lock(&m->lock);
    memset(m->dirty, 0, words(m->nregions) * 8);
    memset(m->sent, 0xff, words(m->nregions) * 8);
    memset(m->data, 0, words(m->nregions) * 8);
    /* Holes read as zeroes and the destination starts zeroed: only the
     * allocated extents are out of sync. A device has no holes we can see. */
    uint64_t pos = 0;
    while (pos < m->size) {
        off_t d = m->blockdev ? (off_t)pos : lseek(m->fd, (off_t)pos, SEEK_DATA);
        if (d < 0)
            break; /* ENXIO: no data after pos */
        off_t h = m->blockdev ? (off_t)m->size : lseek(m->fd, d, SEEK_HOLE);
        if (h < 0 || (uint64_t)h > m->size)
            h = (off_t)m->size;
        for (uint64_t r = (uint64_t)d / MIG_BLK_REGION; r * MIG_BLK_REGION < (uint64_t)h; r++) {
            set_bit(m->dirty, r);
            m->sent[r / BITS] &= ~(1ull << (r % BITS));
        }
        allocated += (uint64_t)(h - d);
        pos = (uint64_t)h;
    }
    m->io = io;
    m->disk = disk_id;
    m->tracking = true;
    m->forwarding = false;
    m->in_final = false;
    m->fwd_err = 0;
    memset(&m->st, 0, sizeof(m->st));
    m->st.size = m->size;
    m->st.allocated = allocated;
    pthread_mutex_unlock(&m->lock);
    unlock_stripes(m, 0, STRIPE_LOCKS);
    MIG_LOG(m->ctx, INFO, "disk %u (%s): %" PRIu64 " MiB, %" PRIu64 " MiB allocated%s", disk_id,
            m->path, m->size >> 20, allocated >> 20,
            m->oos_fd >= 0 ? "; full copy: the target is new (out-of-sync log kept)" : "");
    return 0;
}

/* Send the regions of one stripe that are set in the snapshot. */
static int send_stripe(struct mig__blk_mirror *m, uint64_t stripe, bool final)
{
    uint64_t r0 = stripe * REGIONS_PER_STRIPE;
    uint64_t r1 = r0 + REGIONS_PER_STRIPE;
    if (r1 > m->nregions)
        r1 = m->nregions;
    uint64_t base = r0 * MIG_BLK_REGION;
    uint64_t end = r1 * MIG_BLK_REGION < m->size ? r1 * MIG_BLK_REGION : m->size;
    int rc = full_pread(m->fd, m->buf, end - base, base);
    if (rc < 0)
        return rc;
    uint64_t run = UINT64_MAX, data = 0, zero = 0;
    for (uint64_t r = r0; r <= r1 && rc == 0; r++) {
        bool want = r < r1 && test_bit(m->snap, r);
        uint64_t a = r * MIG_BLK_REGION, b = a + MIG_BLK_REGION < end ? a + MIG_BLK_REGION : end;
        bool z = want && is_zero(m->buf + (a - base), (size_t)(b - a));
        if (want && z) {
            pthread_mutex_lock(&m->lock);
            bool had_data = test_bit(m->data, r);
            pthread_mutex_unlock(&m->lock);
            /* no data sent yet: the destination's copy is already zero */
            if (had_data) {
                rc = send_zero(m, a, b - a);
                zero += b - a;
            }
        }
        /* a run of data regions goes out as one extent */
        if (want && !z) {
            if (run == UINT64_MAX)
                run = a;
            continue;
        }
        if (run != UINT64_MAX && rc == 0) {
            rc = send_extent(m, run, m->buf + (run - base), (size_t)(a - run));
            data += a - run;
            run = UINT64_MAX;
        }
    }
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&m->lock);
    for (uint64_t r = r0; r < r1; r++)
        if (test_bit(m->snap, r)) {
            set_bit(m->sent, r);
            uint64_t a = r * MIG_BLK_REGION, b = a + MIG_BLK_REGION < end ? a + MIG_BLK_REGION : end;
            if (!is_zero(m->buf + (a - base), (size_t)(b - a)))
                set_bit(m->data, r);
            else
                m->data[r / BITS] &= ~(1ull << (r % BITS));
        }
    m->st.sent_bytes += data;
    m->st.zero_bytes += zero;
    if (final)
        m->st.final_bytes += data + zero;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int mig__blk_mirror_round(struct mig__blk_mirror *m, bool final)
{
    uint64_t nw = words(m->nregions);
    pthread_mutex_lock(&m->lock);
    if (m->fwd_err) {
        int rc = m->fwd_err;
        pthread_mutex_unlock(&m->lock);
        return rc;
    }
    memcpy(m->snap, m->dirty, nw * 8);
    memset(m->dirty, 0, nw * 8);
    m->in_final = final;
    m->st.rounds++;
    pthread_mutex_unlock(&m->lock);

    uint64_t nstripes = (m->nregions + REGIONS_PER_STRIPE - 1) / REGIONS_PER_STRIPE;
    uint64_t t_tick = mig__now_ns();
    for (uint64_t s = 0; s < nstripes; s++) {
        bool any = false;
        for (uint64_t r = s * REGIONS_PER_STRIPE;
             r < (s + 1) * REGIONS_PER_STRIPE && r < m->nregions && !any; r++)
            any = test_bit(m->snap, r);
        if (!any)
            continue;
        pthread_mutex_lock(&m->stripe[s % STRIPE_LOCKS]);
        int rc = send_stripe(m, s, final);
        pthread_mutex_unlock(&m->stripe[s % STRIPE_LOCKS]);
        if (rc == 0) {
            for (uint64_t r = s * REGIONS_PER_STRIPE;
                 r < (s + 1) * REGIONS_PER_STRIPE && r < m->nregions; r++)
                m->snap[r / BITS] &= ~(1ull << (r % BITS));
        }
        if (rc == 0 && mig__now_ns() - t_tick > 200000000u && m->io->tick) {
            t_tick = mig__now_ns();
            rc = m->io->tick(m->io);
        }
        if (rc < 0) {
            /* what was not sent is still out of sync */
            pthread_mutex_lock(&m->lock);
            for (uint64_t i = 0; i < nw; i++)
                m->dirty[i] |= m->snap[i];
            pthread_mutex_unlock(&m->lock);
            return rc;
        }
    }
    pthread_mutex_lock(&m->lock);
    int rc = m->fwd_err;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void mig__blk_mirror_set_forwarding(struct mig__blk_mirror *m, bool on)
{
    pthread_mutex_lock(&m->lock);
    if (on && !m->forwarding)
        MIG_LOG(m->ctx, INFO, "disk %u: synchronous forwarding on", m->disk);
    m->forwarding = on;
    pthread_mutex_unlock(&m->lock);
}

uint64_t mig__blk_mirror_pending(struct mig__blk_mirror *m)
{
    uint64_t n = 0;
    pthread_mutex_lock(&m->lock);
    for (uint64_t i = 0; i < words(m->nregions); i++)
        n += (uint64_t)__builtin_popcountll(m->dirty[i]);
    pthread_mutex_unlock(&m->lock);
    return n * MIG_BLK_REGION;
}

void mig__blk_mirror_stats(struct mig__blk_mirror *m, struct mig__blk_stats *st_out)
{
    uint64_t pending = mig__blk_mirror_pending(m);
    pthread_mutex_lock(&m->lock);
    *st_out = m->st;
    st_out->pending_bytes = pending;
    st_out->forwarding = m->forwarding;
    pthread_mutex_unlock(&m->lock);
}

void mig__blk_mirror_freeze(struct mig__blk_mirror *m)
{
    pthread_mutex_lock(&m->lock);
    if (m->phase == LIVE)
        m->phase = FROZEN;
    pthread_mutex_unlock(&m->lock);
    /* writes already past may_write finish first */
    lock_stripes(m, 0, STRIPE_LOCKS);
    unlock_stripes(m, 0, STRIPE_LOCKS);
}

void mig__blk_mirror_release(struct mig__blk_mirror *m, bool moved)
{
    pthread_mutex_lock(&m->lock);
    m->phase = moved ? MOVED : LIVE;
    pthread_cond_broadcast(&m->thaw);
    pthread_mutex_unlock(&m->lock);
    if (moved)
        oos_clear(m);
}

void mig__blk_mirror_unhold(struct mig__blk_mirror *m)
{
    pthread_mutex_lock(&m->lock);
    if (m->phase == FROZEN)
        m->phase = MOVED;
    pthread_cond_broadcast(&m->thaw);
    pthread_mutex_unlock(&m->lock);
}

bool mig__blk_mirror_moved(struct mig__blk_mirror *m)
{
    pthread_mutex_lock(&m->lock);
    bool moved = m->phase == MOVED;
    pthread_mutex_unlock(&m->lock);
    return moved;
}

void mig__blk_mirror_stop(struct mig__blk_mirror *m)
{
    /* Wait for writes in flight: none may forward after this returns. */
    lock_stripes(m, 0, STRIPE_LOCKS);
    pthread_mutex_lock(&m->lock);
    m->tracking = false;
    m->forwarding = false;
    m->io = NULL;
    pthread_mutex_unlock(&m->lock);
    unlock_stripes(m, 0, STRIPE_LOCKS);
}

/* The NBD server's view of a managed disk (nbd.h): every write through it
 * is applied, then marked or forwarded, then acknowledged. */
const struct mig__nbd_export_ops mig__blk_export_ops = {
    .size = mig__blk_export_size,
    .pread = mig__blk_export_pread,
    .pwrite = mig__blk_export_pwrite,
    .flush = mig__blk_export_flush,
    .trim = mig__blk_export_trim,
    .write_zeroes = mig__blk_export_write_zeroes,
};
