/*
 * file.c: the plain export: a regular file or a block device behind the
 * NBD export ops table (mig__nbd_file_export_open, mig__nbd_file_ops).
 *
 * pread/pwrite on one descriptor (safe from every connection thread at
 * once); FUA by pwritev2(RWF_DSYNC), with pwrite + fdatasync where the kernel
 * refuses the flag; flush = fdatasync. Sparse-aware: trim punches a hole
 * (fallocate PUNCH_HOLE|KEEP_SIZE; where the filesystem cannot, trim is a
 * hint and does nothing); write_zeroes punches when the client allows holes,
 * else FALLOC_FL_ZERO_RANGE, and falls back to writing a zero buffer that is
 * allocated at open (nothing is allocated per request).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "nbd-internal.h"

#define ZERO_BUF (1u << 20)

struct mig__nbd_file {
    struct mig_ctx *ctx;  /* borrowed */
    int fd;               /* owned */
    uint64_t size;
    bool read_only;
    bool blockdev;
    bool no_dsync;        /* pwritev2(RWF_DSYNC) refused: pwrite + fdatasync */
    bool no_punch;        /* PUNCH_HOLE refused once: not retried */
    bool no_zero_range;   /* ZERO_RANGE refused once: not retried */
    uint8_t *zeroes;      /* owned: ZERO_BUF zero bytes */
};

static uint64_t file_size(void *o)
{
    return ((struct mig__nbd_file *)o)->size;
}

static int io_error(int err)
{
    if (err == EFBIG || err == EDQUOT)
        return -MIG_ENOSPC; /* as the protocol asks */
    if (err == EROFS || err == EACCES)
        return -MIG_EPERM;
    return mig__from_errno(err);
}

static int file_pread(void *o, uint64_t off, uint32_t len, void *buf)
{
    struct mig__nbd_file *f = o;
    uint8_t *p = buf;
    while (len) {
        ssize_t r = pread(f->fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return io_error(errno);
        }
        if (r == 0) {
            /* a file shrunk under us: what is past its end reads as zeroes */
            memset(p, 0, len);
            return 0;
        }
        p += r;
        off += (uint64_t)r;
        len -= (uint32_t)r;
    }
    return 0;
}

static int file_flush(void *o)
{
    struct mig__nbd_file *f = o;
    if (fdatasync(f->fd) < 0)
        return io_error(errno);
    return 0;
}

static int write_all(struct mig__nbd_file *f, uint64_t off, uint32_t len, const void *buf,
                     bool fua)
{
    const uint8_t *p = buf;
    while (len) {
        struct iovec iov = {(void *)p, len};
        ssize_t w;
        if (fua && !f->no_dsync) {
            w = pwritev2(f->fd, &iov, 1, (off_t)off, RWF_DSYNC);
            if (w < 0 && (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)) {
                __atomic_store_n(&f->no_dsync, true, __ATOMIC_RELAXED);
                continue;
            }
        } else {
            w = pwrite(f->fd, p, len, (off_t)off);
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return io_error(errno);
        }
        p += w;
        off += (uint64_t)w;
        len -= (uint32_t)w;
    }
    if (fua && f->no_dsync)
        return file_flush(f);
    return 0;
}

static int file_pwrite(void *o, uint64_t off, uint32_t len, const void *buf, bool fua)
{
    struct mig__nbd_file *f = o;
    if (f->read_only)
        return -MIG_EPERM;
    return write_all(f, off, len, buf, fua);
}

/* fallocate with a mode; 0, 1 if the filesystem/device cannot (remembered in
 * *never), or an error. */
static int try_fallocate(struct mig__nbd_file *f, int mode, uint64_t off, uint64_t len,
                         bool *never)
{
    if (__atomic_load_n(never, __ATOMIC_RELAXED))
        return 1;
    for (;;) {
        if (fallocate(f->fd, mode, (off_t)off, (off_t)len) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EOPNOTSUPP || errno == ENOSYS || errno == ENODEV) {
            __atomic_store_n(never, true, __ATOMIC_RELAXED);
            return 1;
        }
        /* EINVAL: e.g. a block device range not aligned to its sectors */
        if (errno == EINVAL)
            return 1;
        return io_error(errno);
    }
}

static int file_trim(void *o, uint64_t off, uint64_t len, bool fua)
{
    struct mig__nbd_file *f = o;
    int rc;
    if (f->read_only)
        return -MIG_EPERM;
    rc = try_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len, &f->no_punch);
    if (rc < 0)
        return rc;
    /* rc 1: trim is advisory; leaving the data is a correct trim */
    return (fua && rc == 0) ? file_flush(f) : 0;
}

static int file_write_zeroes(void *o, uint64_t off, uint64_t len, bool may_punch, bool fua)
{
    struct mig__nbd_file *f = o;
    int rc = 1;
    if (f->read_only)
        return -MIG_EPERM;
    /* A punched hole reads as zeroes in a file; on a block device the kernel
     * zeroes (unmapping where it can). */
    if (may_punch)
        rc = try_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len,
                           &f->no_punch);
    if (rc == 1)
        rc = try_fallocate(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len,
                           &f->no_zero_range);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        while (len) {
            uint32_t k = len < ZERO_BUF ? (uint32_t)len : ZERO_BUF;
            rc = write_all(f, off, k, f->zeroes, false);
            if (rc < 0)
                return rc;
            off += k;
            len -= k;
        }
    }
    return fua ? file_flush(f) : 0;
}

static const struct mig__nbd_export_ops file_ops = {
    .size = file_size,
    .pread = file_pread,
    .pwrite = file_pwrite,
    .flush = file_flush,
    .trim = file_trim,
    .write_zeroes = file_write_zeroes,
};

const struct mig__nbd_export_ops *mig__nbd_file_ops(void)
{
    return &file_ops;
}

int mig__nbd_file_export_open(struct mig_ctx *ctx, const char *path, bool read_only,
                              struct mig__nbd_file **f_out)
{
    struct mig__nbd_file *f = NULL;
    struct stat st;
    int rc;

    *f_out = NULL;
    f = calloc(1, sizeof(*f));
    if (!f)
        return -MIG_ENOMEM;
    f->ctx = ctx;
    f->read_only = read_only;
    f->fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (f->fd < 0) {
        rc = io_error(errno);
        MIG_LOG(ctx, ERROR, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(f->fd, &st) < 0) {
        rc = io_error(errno);
        goto out;
    }
    if (S_ISBLK(st.st_mode)) {
        uint64_t sz = 0;
        if (ioctl(f->fd, BLKGETSIZE64, &sz) < 0) {
            rc = io_error(errno);
            MIG_LOG(ctx, ERROR, "%s: cannot read the device size: %s", path, strerror(errno));
            goto out;
        }
        f->size = sz;
        f->blockdev = true;
    } else if (S_ISREG(st.st_mode)) {
        f->size = (uint64_t)st.st_size;
    } else {
        MIG_LOG(ctx, ERROR, "%s is neither a regular file nor a block device", path);
        rc = -MIG_EINVAL;
        goto out;
    }
    f->zeroes = calloc(1, ZERO_BUF);
    if (!f->zeroes) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    *f_out = f;
    f = NULL;
    rc = 0;
out:
    mig__nbd_file_close(f);
    return rc;
}

void mig__nbd_file_close(struct mig__nbd_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    free(f->zeroes);
    free(f);
}

void mig__nbd_file_export(struct mig__nbd_file *f, struct mig__nbd_export *exp)
{
    memset(exp, 0, sizeof(*exp));
    exp->name = "";
    exp->ops = &file_ops;
    exp->opaque = f;
    exp->flags = MIG__NBD_EXPORT_MULTI_CONN | (f->read_only ? MIG__NBD_EXPORT_READ_ONLY : 0);
}
