/*
 * target.c: the destination half of the block mirror (blk.h): the file or
 * block device named by --disk-map, checked for size and free space before
 * round 0, written from BLOCK_EXTENT / ZERO records (bounds-checked: the
 * stream is hostile input), fdatasync'ed before READY, removed on abort when
 * this session created it.
 *
 * Entry points: mig__blk_target_open/write/zero/sync/discard/close.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MIG_LOG_MODULE "blk"
#include "blk.h"

struct mig__blk_target {
    struct mig_ctx *ctx;  /* borrowed */
    char path[PATH_MAX];
    int fd;               /* owned */
    bool blockdev;
    bool created;         /* this session created the file: abort removes it */
    bool marked;          /* PATH.incomplete exists (ours) until the disk is kept */
    uint64_t size;        /* bytes */
};

/* PATH.incomplete: a receiver that dies cannot clean up, so while a target
 * is being written a marker next to it says so (for people, and for the
 * next receiver: a file with a marker is a leftover it may replace). */
static void marker_path(const char *path, char *out, size_t cap)
{
    if (snprintf(out, cap, "%s" MIG_BLK_INCOMPLETE, path) >= (int)cap)
        out[0] = 0;
}

static bool marked(const char *path)
{
    char m[PATH_MAX + 16];
    marker_path(path, m, sizeof(m));
    return m[0] && access(m, F_OK) == 0;
}

static void unmark(struct mig__blk_target *t)
{
    char m[PATH_MAX + 16];
    marker_path(t->path, m, sizeof(m));
    if (t->marked && m[0])
        unlink(m);
    t->marked = false;
}

static void mark(struct mig__blk_target *t)
{
    char m[PATH_MAX + 16];
    marker_path(t->path, m, sizeof(m));
    int fd = m[0] ? open(m, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    if (fd < 0)
        return;
    static const char text[] = "a migration is writing this disk; it is not usable unless the "
                               "migration commits (then this file goes)\n";
    ssize_t w = write(fd, text, sizeof(text) - 1);
    (void)w;
    close(fd);
    t->marked = true;
}

int mig__blk_target_open(struct mig_ctx *ctx, const char *path, uint64_t size, uint64_t allocated,
                         struct mig__blk_target **t_out, char *why, size_t why_len)
{
    struct stat sb;
    struct statvfs vfs;
    int rc = 0;
    struct mig__blk_target *t = calloc(1, sizeof(*t));
    if (!t)
        return -MIG_ENOMEM;
    t->ctx = ctx;
    t->fd = -1;
    t->size = size;
    if (strlen(path) >= sizeof(t->path)) {
        snprintf(why, why_len, "disk target path too long");
        rc = -MIG_EINVAL;
        goto out;
    }
    strcpy(t->path, path);
    int st_rc = stat(path, &sb);
    if (st_rc == 0 && S_ISBLK(sb.st_mode)) {
        uint64_t dev = 0;
        t->fd = open(path, O_RDWR | O_CLOEXEC);
        if (t->fd < 0 || ioctl(t->fd, BLKGETSIZE64, &dev) < 0) {
            rc = mig__from_errno(errno);
            snprintf(why, why_len, "disk target %s: %s", path, strerror(errno));
            goto out;
        }
        t->blockdev = true;
        if (dev < size) {
            snprintf(why, why_len,
                     "disk target %s holds %" PRIu64 " bytes; the disk has %" PRIu64, path, dev,
                     size);
            rc = -MIG_ENOSPC;
            goto out;
        }
        /* the mirror skips holes: the device must read as zeroes */
        uint64_t range[2] = {0, size};
        mark(t);
        if (ioctl(t->fd, BLKZEROOUT, range) < 0) {
            rc = mig__from_errno(errno);
            snprintf(why, why_len, "disk target %s: cannot zero it: %s", path, strerror(errno));
            goto out;
        }
        goto out;
    }
    if (st_rc == 0 && !S_ISREG(sb.st_mode)) {
        snprintf(why, why_len, "disk target %s is neither a file nor a block device", path);
        rc = -MIG_ENOTSUP;
        goto out;
    }
    t->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (t->fd < 0 && errno == EEXIST) {
        /* An existing file is overwritten (an admin's preallocated target);
         * one a dead receiver left (marked incomplete) is ours to remove. */
        bool leftover = marked(path);
        t->fd = open(path, O_RDWR | O_CLOEXEC);
        t->created = leftover;
        t->marked = leftover;
    } else if (t->fd >= 0) {
        t->created = true;
    }
    if (t->fd < 0) {
        rc = mig__from_errno(errno);
        snprintf(why, why_len, "disk target %s: %s", path, strerror(errno));
        goto out;
    }
    /* Free space before round 0: the data the source holds must fit. */
    if (fstatvfs(t->fd, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        if (avail < allocated) {
            snprintf(why, why_len,
                     "disk target %s: %" PRIu64 " MiB free on its filesystem, the disk holds %" PRIu64
                     " MiB of data",
                     path, avail >> 20, (allocated + (1u << 20) - 1) >> 20);
            rc = -MIG_ENOSPC;
            goto out;
        }
    }
    mark(t);
    /* Start from zeroes, sparse: what the source never sends reads as zero. */
    if (ftruncate(t->fd, 0) < 0 || ftruncate(t->fd, (off_t)size) < 0) {
        rc = mig__from_errno(errno);
        snprintf(why, why_len, "disk target %s: cannot size it to %" PRIu64 " bytes: %s", path,
                 size, strerror(errno));
        goto out;
    }
out:
    if (rc < 0) {
        mig__blk_target_discard(t);
        return rc;
    }
    MIG_LOG(ctx, INFO, "disk target %s: %" PRIu64 " MiB%s", path, size >> 20,
            t->created ? " (created)" : "");
    *t_out = t;
    return 0;
}

static int in_range(const struct mig__blk_target *t, uint64_t off, uint64_t len)
{
    return len != 0 && off <= t->size && len <= t->size - off ? 0 : -MIG_EPROTO;
}

int mig__blk_target_write(struct mig__blk_target *t, uint64_t off, const void *data, size_t len)
{
    int rc = in_range(t, off, len);
    if (rc < 0)
        return rc;
    const uint8_t *p = data;
    while (len) {
        ssize_t r = pwrite(t->fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return mig__from_errno(errno);
        }
        p += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return 0;
}

int mig__blk_target_zero(struct mig__blk_target *t, uint64_t off, uint64_t len)
{
    int rc = in_range(t, off, len);
    if (rc < 0)
        return rc;
    if (t->blockdev) {
        uint64_t range[2] = {off, len};
        if (ioctl(t->fd, BLKZEROOUT, range) == 0)
            return 0;
    } else if (fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                         (off_t)len) == 0) {
        return 0;
    }
    static const uint8_t zeros[64 << 10];
    while (len && rc == 0) {
        size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
        rc = mig__blk_target_write(t, off, zeros, n);
        off += n;
        len -= n;
    }
    return rc;
}

int mig__blk_target_sync(struct mig__blk_target *t)
{
    return fdatasync(t->fd) < 0 ? mig__from_errno(errno) : 0;
}

void mig__blk_target_discard(struct mig__blk_target *t)
{
    if (!t)
        return;
    if (t->fd >= 0)
        close(t->fd);
    if (t->created) {
        if (unlink(t->path) == 0)
            MIG_LOG(t->ctx, INFO, "disk target %s removed", t->path);
        unmark(t);
    } else if (t->fd >= 0) {
        /* the marker stays: the device or file says it is incomplete */
        MIG_LOG(t->ctx, WARN, "disk target %s is INCOMPLETE (%s" MIG_BLK_INCOMPLETE " says so): "
                "the migration failed after writing into it", t->path, t->path);
    }
    free(t);
}

void mig__blk_target_close(struct mig__blk_target *t)
{
    if (!t)
        return;
    if (t->fd >= 0)
        close(t->fd);
    unmark(t);
    free(t);
}
