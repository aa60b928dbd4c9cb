/*
 * sim-disk.c: the test guest's managed disk as its workload sees it: an NBD
 * client (fixed newstyle, EXPORT_NAME, simple replies) on the disk's unix
 * socket, a deterministic write sequence, and the check of the whole disk
 * against that sequence.
 *
 * Write number s (0, 1, ...) puts a 4 KiB block at block k(s) = hash(seed,
 * s) % nblocks, filled like a memory page (mig__sim_page_fill) with "pfn"
 * MIG_SIM_DISK_TAG | k and generation s + 1, its body from an RNG seeded by
 * (seed, s). The count of acknowledged writes travels in the guest's state
 * blob (dseq=), so the destination knows the disk it must find: replaying
 * the sequence gives each block's last write (or none: the block reads as
 * zeroes), and every block is read back through the export and checked.
 * That is the invariant "the running copy's disk equals the last
 * acknowledged write".
 *
 * Entry points: mig__sim_disk_* (sim.h).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MIG_LOG_MODULE "sim-guest"
#include "sim.h"

#define BLOCK 4096u
#define NBD_MAGIC 0x4e42444d41474943ull   /* "NBDMAGIC" */
#define NBD_IHAVEOPT 0x49484156454f5054ull /* "IHAVEOPT" */
#define NBD_REQ_MAGIC 0x25609513u
#define NBD_REPLY_MAGIC 0x67446698u
#define NBD_OPT_EXPORT_NAME 1u
#define NBD_FLAG_FIXED_NEWSTYLE 1u
#define NBD_FLAG_NO_ZEROES 2u
#define NBD_CMD_READ 0u
#define NBD_CMD_WRITE 1u
#define NBD_CMD_FLAG_FUA 1u
#define READ_CHUNK (1u << 20)

struct mig__sim_disk {
    char sock[256];
    uint64_t nblocks;
    uint64_t seed;
    int fd;            /* the NBD connection, -1 when none */
    uint64_t size;     /* the export's, once connected */
    uint64_t cookie;
    uint8_t blk[BLOCK];
    uint8_t *chunk;    /* READ_CHUNK, verification */
};

static uint64_t be64(uint64_t v) { return __builtin_bswap64(v); }
static uint32_t be32(uint32_t v) { return __builtin_bswap32(v); }
static uint16_t be16(uint16_t v) { return __builtin_bswap16(v); }

static int xfer(int fd, void *buf, size_t len, bool out)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t r = out ? send(fd, p, len, MSG_NOSIGNAL) : read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? mig__from_errno(errno) : -MIG_EPEER;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int mig__sim_disk_new(const char *sock, uint64_t bytes, uint64_t seed, struct mig__sim_disk **d_out)
{
    struct mig__sim_disk *d = calloc(1, sizeof(*d));
    if (!d)
        return -MIG_ENOMEM;
    if (strlen(sock) >= sizeof(d->sock) || bytes < BLOCK) {
        free(d);
        return -MIG_EINVAL;
    }
    strcpy(d->sock, sock);
    d->nblocks = bytes / BLOCK;
    d->seed = seed;
    d->fd = -1;
    *d_out = d;
    return 0;
}

void mig__sim_disk_set_socket(struct mig__sim_disk *d, const char *sock)
{
    if (strlen(sock) < sizeof(d->sock) && strcmp(sock, d->sock)) {
        strcpy(d->sock, sock);
        if (d->fd >= 0)
            close(d->fd);
        d->fd = -1;
    }
}

void mig__sim_disk_free(struct mig__sim_disk *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    free(d->chunk);
    free(d);
}

/* Connect and haggle: fixed newstyle, no zeroes, EXPORT_NAME "". */
static int nbd_connect(struct mig__sim_disk *d)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    uint64_t magic[2];
    uint16_t hflags, tflags;
    int rc;
    strcpy(sa.sun_path, d->sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mig__from_errno(errno);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = mig__from_errno(errno);
        goto fail;
    }
    if ((rc = xfer(fd, magic, 16, false)) < 0 || (rc = xfer(fd, &hflags, 2, false)) < 0)
        goto fail;
    if (be64(magic[0]) != NBD_MAGIC || be64(magic[1]) != NBD_IHAVEOPT ||
        !(be16(hflags) & NBD_FLAG_FIXED_NEWSTYLE)) {
        rc = -MIG_EPROTO;
        goto fail;
    }
    uint32_t cflags = be32(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    struct __attribute__((packed)) {
        uint64_t magic;
        uint32_t opt, len;
    } opt = {be64(NBD_IHAVEOPT), be32(NBD_OPT_EXPORT_NAME), 0};
    if ((rc = xfer(fd, &cflags, 4, true)) < 0 || (rc = xfer(fd, &opt, sizeof(opt), true)) < 0)
        goto fail;
    uint64_t size;
    if ((rc = xfer(fd, &size, 8, false)) < 0 || (rc = xfer(fd, &tflags, 2, false)) < 0)
        goto fail;
    d->size = be64(size);
    if (d->size < d->nblocks * BLOCK) {
        rc = -MIG_EINVAL;
        goto fail;
    }
    d->fd = fd;
    return 0;
fail:
    close(fd);
    return rc;
}

/* One request; its NBD error (> 0), 0, or a negative code for the link. */
static int nbd_io(struct mig__sim_disk *d, uint16_t type, uint16_t flags, uint64_t off,
                  uint32_t len, void *buf)
{
    int rc;
    if (d->fd < 0 && (rc = nbd_connect(d)) < 0)
        return rc;
    struct __attribute__((packed)) {
        uint32_t magic;
        uint16_t flags, type;
        uint64_t cookie, off;
        uint32_t len;
    } req = {be32(NBD_REQ_MAGIC), be16(flags), be16(type), ++d->cookie, be64(off), be32(len)};
    struct __attribute__((packed)) {
        uint32_t magic, error;
        uint64_t cookie;
    } rep;
    if ((rc = xfer(d->fd, &req, sizeof(req), true)) < 0 ||
        (type == NBD_CMD_WRITE && (rc = xfer(d->fd, buf, len, true)) < 0) ||
        (rc = xfer(d->fd, &rep, sizeof(rep), false)) < 0)
        goto drop;
    if (be32(rep.magic) != NBD_REPLY_MAGIC || rep.cookie != req.cookie) {
        rc = -MIG_EPROTO;
        goto drop;
    }
    if (rep.error)
        return (int)be32(rep.error);
    if (type == NBD_CMD_READ && (rc = xfer(d->fd, buf, len, false)) < 0)
        goto drop;
    return 0;
drop:
    close(d->fd);
    d->fd = -1;
    return rc;
}

static uint64_t block_of(const struct mig__sim_disk *d, uint64_t s)
{
    return mig__sim_mix64(d->seed * 0x9e3779b97f4a7c15ull ^ (s + 1)) % d->nblocks;
}

static void fill(struct mig__sim_disk *d, uint64_t s, uint64_t k)
{
    uint64_t rng = mig__sim_mix64(d->seed ^ (s * 0xc2b2ae3d27d4eb4full)) | 1;
    mig__sim_page_fill(d->blk, MIG_SIM_DISK_TAG | k, (uint32_t)(s + 1), false, &rng);
}

int mig__sim_disk_write(struct mig__sim_disk *d, uint64_t s, const atomic_int *quit)
{
    uint64_t k = block_of(d, s);
    fill(d, s, k);
    /* Until acknowledged: a restarted server, a reconnect. An NBD error is
     * final for this write (ESHUTDOWN: the disk moved away). */
    for (unsigned tries = 0;; tries++) {
        int rc = nbd_io(d, NBD_CMD_WRITE, (s % 16 == 15) ? NBD_CMD_FLAG_FUA : 0, k * BLOCK, BLOCK,
                        d->blk);
        if (rc == 0)
            return 0;
        if (rc > 0)
            return -MIG_EIO;
        if (atomic_load(quit) || tries >= 600)
            return rc;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
}

int mig__sim_disk_check(struct mig__sim_disk *d, uint64_t nwrites, uint64_t *checked_out,
                        uint64_t *errors_out, int64_t *first_bad_out)
{
    uint64_t *last = calloc(d->nblocks, sizeof(uint64_t)), errors = 0, checked = 0;
    int64_t first_bad = -1;
    int rc = 0;
    if (!last)
        return -MIG_ENOMEM;
    if (!d->chunk && !(d->chunk = malloc(READ_CHUNK))) {
        free(last);
        return -MIG_ENOMEM;
    }
    for (uint64_t s = 0; s < nwrites; s++)
        last[block_of(d, s)] = s + 1;
    uint64_t per = READ_CHUNK / BLOCK;
    for (uint64_t b0 = 0; b0 < d->nblocks && rc == 0; b0 += per) {
        uint64_t n = d->nblocks - b0 < per ? d->nblocks - b0 : per;
        int r = -1;
        for (unsigned tries = 0; tries < 100 && r != 0; tries++) {
            r = nbd_io(d, NBD_CMD_READ, 0, b0 * BLOCK, (uint32_t)(n * BLOCK), d->chunk);
            if (r > 0)
                break;
            if (r < 0) {
                struct timespec ts = {0, 50000000};
                nanosleep(&ts, NULL);
            }
        }
        if (r != 0) {
            rc = r > 0 ? -MIG_EIO : r;
            break;
        }
        for (uint64_t i = 0; i < n; i++) {
            uint64_t k = b0 + i;
            const uint8_t *p = d->chunk + i * BLOCK;
            bool bad;
            if (!last[k]) {
                bad = false;
                for (unsigned j = 0; j < BLOCK && !bad; j++)
                    bad = p[j] != 0;
            } else {
                bad = mig__sim_page_check(p, MIG_SIM_DISK_TAG | k, (uint32_t)last[k]) != 0;
            }
            checked++;
            if (bad) {
                errors++;
                if (first_bad < 0)
                    first_bad = (int64_t)k;
            }
        }
    }
    free(last);
    *checked_out = checked;
    *errors_out = errors;
    *first_bad_out = first_bad;
    return rc;
}
