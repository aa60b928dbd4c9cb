/*
 * remote.c: a managed disk served by another process (the managed-disk
 * daemon, `xl-migrate-live disk-serve`, or a test-guest host), mirrored by
 * the process that runs the migration. The daemon owns the image, the NBD
 * export and the mirror (every guest write goes through it); the migration
 * owns the session's channels. They talk over the disk's control socket
 * (STATE_DIR/disks/DOMAIN/NAME.ctl, a unix stream socket), and the daemon
 * hands every record its mirror would send (a round's extents, a forwarded
 * write) to the migration, which puts it on the session's data channel.
 *
 * Wire (both ends on one host, host byte order): each message is a 16-byte
 * header {u32 op, u32 a, u32 b, u32 len} and len payload bytes.
 *   migration -> daemon, each answered by one REPLY (a = -error, 0 on success):
 *     START (a disk id, b channels)    reply: u64 size, u64 allocated, path
 *     ROUND (a final)                  the round's records, then the reply
 *     FORWARD (a on), FREEZE, READY, RELEASE (a moved), STOP
 *     STATS                            reply: 8 x u64, u32 rounds, u32 forwarding
 *   daemon -> migration:
 *     REC (a channel, b record type)   one record for mig__hook_io.send
 *     REPLY
 * Ordering: the daemon writes every message under one lock, in the order its
 * mirror produced them (a stripe's records under the stripe's lock), and the
 * migration reads them with one thread that sends each on its channel. A
 * forwarded write is in the socket before the guest's ack, so it precedes
 * the reply of any later ROUND (or FREEZE) and reaches the destination
 * before READY. Until COMMIT the source copy is authoritative: a write lost
 * with a dying migration process only fails that migration.
 *
 * A control connection that closes (the migration died or aborted) stops
 * the mirror and lifts the switchover hold, so the guest's disk goes on at
 * the source, unless READY was announced: then COMMIT may have happened and
 * writes stay held (in doubt) until a RELEASE on a new control connection
 * settles it.
 *
 * Entry points: mig__blk_ctl_* (daemon side), mig__blk_remote_* (migration).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MIG_LOG_MODULE "blk"
#include "blk.h"

enum {
    CTL_START = 1,
    CTL_ROUND,
    CTL_FORWARD,
    CTL_STATS,
    CTL_FREEZE,
    CTL_READY,
    CTL_RELEASE,
    CTL_STOP,
    CTL_REC = 100,
    CTL_REPLY,
};

#define CTL_REQ_MAX 4096u                                 /* bytes: a request's payload */
#define CTL_MSG_MAX (MIG_BLK_STRIPE + (64u << 10))        /* bytes: any message's payload */
#define STATS_LEN (8u * 8u + 8u)

struct ctl_hdr {
    uint32_t op, a, b, len;
};

static int read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return mig__from_errno(errno);
        if (r == 0)
            return -MIG_EIO; /* peer closed */
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* One message: header + iov, all of it, without SIGPIPE. */
static int send_msg(int fd, uint32_t op, uint32_t a, uint32_t b, const struct iovec *iov,
                    unsigned iovcnt)
{
    struct iovec v[8];
    struct ctl_hdr h = {op, a, b, 0};
    if (iovcnt > 7)
        return -MIG_EINVAL;
    v[0].iov_base = &h;
    v[0].iov_len = sizeof(h);
    for (unsigned i = 0; i < iovcnt; i++) {
        v[i + 1] = iov[i];
        h.len += (uint32_t)iov[i].iov_len;
    }
    unsigned n = iovcnt + 1, i = 0;
    while (i < n) {
        struct msghdr mh = {.msg_iov = v + i, .msg_iovlen = n - i};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return mig__from_errno(errno);
        while (i < n && (size_t)w >= v[i].iov_len)
            w -= (ssize_t)v[i++].iov_len;
        if (i < n) {
            v[i].iov_base = (uint8_t *)v[i].iov_base + w;
            v[i].iov_len -= (size_t)w;
        }
    }
    return 0;
}

static void put_stats(uint8_t *p, const struct mig__blk_stats *st)
{
    uint64_t v[8] = {st->size, st->allocated, st->sent_bytes, st->zero_bytes,
                     st->forwarded_bytes, st->forwarded_writes, st->final_bytes,
                     st->pending_bytes};
    uint32_t r = st->rounds, f = st->forwarding;
    memcpy(p, v, 64);
    memcpy(p + 64, &r, 4);
    memcpy(p + 68, &f, 4);
}

static void get_stats(const uint8_t *p, struct mig__blk_stats *st)
{
    uint64_t v[8];
    uint32_t r, f;
    memcpy(v, p, 64);
    memcpy(&r, p + 64, 4);
    memcpy(&f, p + 68, 4);
    *st = (struct mig__blk_stats){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], r, f != 0};
}

/* ---- daemon side ------------------------------------------------------- */

/* The mig__hook_io the daemon lends its mirror: every record becomes a REC
 * message on the control connection. */
struct ctl_io {
    struct mig__hook_io io;
    int fd;                   /* borrowed: the connection */
    pthread_mutex_t *wlock;   /* borrowed: serialises messages on fd */
};

static int ctl_io_send(struct mig__hook_io *io, unsigned chan, uint32_t type,
                       const struct iovec *iov, unsigned iovcnt)
{
    struct ctl_io *c = (struct ctl_io *)io;
    pthread_mutex_lock(c->wlock);
    int rc = send_msg(c->fd, CTL_REC, chan, type, iov, iovcnt);
    pthread_mutex_unlock(c->wlock);
    return rc;
}

static int reply(int fd, pthread_mutex_t *wlock, int rc, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    pthread_mutex_lock(wlock);
    int r = send_msg(fd, CTL_REPLY, (uint32_t)-rc, 0, &iov, data ? 1 : 0);
    pthread_mutex_unlock(wlock);
    return r;
}

int mig__blk_ctl_serve(struct mig__blk_ctl *ctl, int fd)
{
    struct mig__blk_mirror *m = ctl->mirror;
    pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;
    struct ctl_io cio = {.io = {.send = ctl_io_send, .nchannels = 1}, .fd = fd, .wlock = &wlock};
    uint8_t req[CTL_REQ_MAX];
    bool started = false, ready = false;
    int rc = 0;

    for (;;) {
        struct ctl_hdr h;
        rc = read_full(fd, &h, sizeof(h));
        if (rc < 0)
            break;
        if (h.len > sizeof(req)) {
            rc = -MIG_EPROTO;
            break;
        }
        if ((rc = read_full(fd, req, h.len)) < 0)
            break;
        int r = 0;
        uint8_t out[STATS_LEN + 16 + PATH_MAX];
        size_t outlen = 0;
        switch (h.op) {
        case CTL_START: {
            pthread_mutex_lock(&ctl->lock);
            if (ctl->owner) {
                r = -MIG_EBUSY; /* another migration mirrors this disk */
            } else if (h.b == 0 || h.b > 64) {
                r = -MIG_EINVAL;
            } else {
                ctl->owner = &cio;
            }
            pthread_mutex_unlock(&ctl->lock);
            if (r == 0 && mig__blk_mirror_moved(m))
                r = -MIG_ECANCELLED; /* this disk already moved away */
            if (r < 0) {
                if (r != -MIG_EBUSY) {
                    pthread_mutex_lock(&ctl->lock);
                    ctl->owner = NULL;
                    pthread_mutex_unlock(&ctl->lock);
                }
                break;
            }
            cio.io.nchannels = h.b;
            r = mig__blk_mirror_start(m, &cio.io, h.a);
            if (r < 0) {
                pthread_mutex_lock(&ctl->lock);
                ctl->owner = NULL;
                pthread_mutex_unlock(&ctl->lock);
                break;
            }
            started = true;
            struct mig__blk_stats st;
            mig__blk_mirror_stats(m, &st);
            const char *path = mig__blk_mirror_path(m);
            memcpy(out, &st.size, 8);
            memcpy(out + 8, &st.allocated, 8);
            memcpy(out + 16, path, strlen(path));
            outlen = 16 + strlen(path);
            break;
        }
        case CTL_ROUND:
            r = started ? mig__blk_mirror_round(m, h.a != 0) : -MIG_EINVAL;
            break;
        case CTL_FORWARD:
            if (started)
                mig__blk_mirror_set_forwarding(m, h.a != 0);
            else
                r = -MIG_EINVAL;
            break;
        case CTL_STATS: {
            struct mig__blk_stats st;
            mig__blk_mirror_stats(m, &st);
            put_stats(out, &st);
            outlen = STATS_LEN;
            break;
        }
        case CTL_FREEZE:
            if (started)
                mig__blk_mirror_freeze(m);
            else
                r = -MIG_EINVAL;
            break;
        case CTL_READY:
            ready = started;
            r = started ? 0 : -MIG_EINVAL;
            break;
        case CTL_RELEASE:
            /* also from a new connection: settles a hold left in doubt */
            pthread_mutex_lock(&ctl->lock);
            bool free_disk = started || !ctl->owner;
            pthread_mutex_unlock(&ctl->lock);
            if (free_disk) {
                mig__blk_mirror_stop(m);
                mig__blk_mirror_release(m, h.a != 0);
                MIG_LOG(ctl->ctx, INFO, "disk %s: %s", mig__blk_mirror_path(m),
                        h.a ? "moved to the destination: writes refused from now on"
                            : "stays here");
            } else {
                r = -MIG_EBUSY;
            }
            ready = false;
            break;
        case CTL_STOP:
            if (started)
                mig__blk_mirror_stop(m);
            break;
        default:
            r = -MIG_EPROTO;
        }
        if ((rc = reply(fd, &wlock, r, outlen ? out : NULL, outlen)) < 0)
            break;
        if (h.op == CTL_RELEASE || h.op == CTL_STOP) {
            if (started) {
                pthread_mutex_lock(&ctl->lock);
                ctl->owner = NULL;
                pthread_mutex_unlock(&ctl->lock);
            }
            started = false;
        }
    }
    if (started) {
        /* The migration went away without settling the disk. */
        mig__blk_mirror_stop(m);
        if (ready) {
            MIG_LOG(ctl->ctx, ERROR,
                    "disk %s: the migration ended after READY without saying whether it "
                    "committed: writes stay held (in doubt) until it is resolved",
                    mig__blk_mirror_path(m));
        } else {
            mig__blk_mirror_release(m, false);
            MIG_LOG(ctl->ctx, INFO, "disk %s: migration ended; the disk stays here",
                    mig__blk_mirror_path(m));
        }
        pthread_mutex_lock(&ctl->lock);
        ctl->owner = NULL;
        pthread_mutex_unlock(&ctl->lock);
    }
    return rc == -MIG_EIO ? 0 : rc;
}

/* ---- migration side ----------------------------------------------------- */

struct mig__blk_remote {
    struct mig_ctx *ctx;                /* borrowed */
    char ctl_path[PATH_MAX];
    char path[PATH_MAX];                /* the daemon's image */
    int fd;                             /* owned */
    struct mig__hook_io *io;            /* borrowed from START on */
    pthread_t reader;
    bool reader_on;
    uint8_t *buf;                       /* owned: the reader's message buffer */
    pthread_mutex_t req;                /* one request at a time */
    pthread_mutex_t lock;               /* guards below */
    pthread_cond_t cond;
    bool have_reply;
    int reply_rc;
    uint8_t reply[STATS_LEN + 16 + PATH_MAX];
    size_t reply_len;
    int dead;                           /* the connection failed: its error */
    int send_err;                       /* first failure putting a record on a channel */
};

static void *reader_main(void *arg)
{
    struct mig__blk_remote *r = arg;
    int rc;
    for (;;) {
        struct ctl_hdr h;
        if ((rc = read_full(r->fd, &h, sizeof(h))) < 0)
            break;
        if (h.len > CTL_MSG_MAX || (h.op != CTL_REC && h.op != CTL_REPLY) ||
            (h.op == CTL_REPLY && h.len > sizeof(r->reply))) {
            rc = -MIG_EPROTO;
            break;
        }
        if ((rc = read_full(r->fd, r->buf, h.len)) < 0)
            break;
        if (h.op == CTL_REC) {
            struct iovec iov = {r->buf, h.len};
            int s = r->io && !r->send_err ? r->io->send(r->io, h.a, h.b, &iov, 1) : 0;
            if (s < 0 && !r->send_err) {
                pthread_mutex_lock(&r->lock);
                r->send_err = s;
                pthread_mutex_unlock(&r->lock);
            }
            continue;
        }
        pthread_mutex_lock(&r->lock);
        r->have_reply = true;
        r->reply_rc = -(int32_t)h.a;
        memcpy(r->reply, r->buf, h.len);
        r->reply_len = h.len;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
    }
    pthread_mutex_lock(&r->lock);
    r->dead = rc == -MIG_EIO ? -MIG_EIO : rc;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int mig__blk_remote_open(struct mig_ctx *ctx, const char *ctl_path, struct mig__blk_remote **r_out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc = 0;
    struct mig__blk_remote *r = calloc(1, sizeof(*r));
    if (!r)
        return -MIG_ENOMEM;
    r->ctx = ctx;
    r->fd = -1;
    pthread_mutex_init(&r->req, NULL);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (strlen(ctl_path) >= sizeof(sa.sun_path)) {
        rc = -MIG_EINVAL;
        goto out;
    }
    strcpy(r->ctl_path, ctl_path);
    strcpy(sa.sun_path, ctl_path);
    r->buf = malloc(CTL_MSG_MAX);
    if (!r->buf) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    if (pthread_create(&r->reader, NULL, reader_main, r) != 0) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    r->reader_on = true;
out:
    if (rc < 0) {
        mig__blk_remote_free(r);
        return rc;
    }
    *r_out = r;
    return 0;
}

void mig__blk_remote_free(struct mig__blk_remote *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        shutdown(r->fd, SHUT_RDWR);
    if (r->reader_on)
        pthread_join(r->reader, NULL);
    if (r->fd >= 0)
        close(r->fd);
    pthread_mutex_destroy(&r->req);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r->buf);
    free(r);
}

const char *mig__blk_remote_path(const struct mig__blk_remote *r)
{
    return r->path[0] ? r->path : r->ctl_path;
}

/* Send one request and wait for its reply (calling io->tick every 200 ms
 * when 'tick'). out: the reply's payload (up to *out_len; may be NULL). */
static int request(struct mig__blk_remote *r, uint32_t op, uint32_t a, uint32_t b, bool tick,
                   void *out, size_t *out_len)
{
    pthread_mutex_lock(&r->req);
    pthread_mutex_lock(&r->lock);
    r->have_reply = false;
    int rc = r->dead;
    pthread_mutex_unlock(&r->lock);
    if (rc == 0)
        rc = send_msg(r->fd, op, a, b, NULL, 0);
    pthread_mutex_lock(&r->lock);
    while (rc == 0 && !r->have_reply && !r->dead) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT && tick && r->io &&
            r->io->tick) {
            pthread_mutex_unlock(&r->lock);
            rc = r->io->tick(r->io);
            pthread_mutex_lock(&r->lock);
        }
    }
    if (rc == 0 && !r->have_reply)
        rc = r->dead ? r->dead : -MIG_EIO;
    if (rc == 0) {
        rc = r->reply_rc;
        if (out && out_len) {
            size_t n = r->reply_len < *out_len ? r->reply_len : *out_len;
            memcpy(out, r->reply, n);
            *out_len = n;
        }
    }
    if (rc == 0 && r->send_err)
        rc = r->send_err;
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_unlock(&r->req);
    return rc;
}

int mig__blk_remote_start(struct mig__blk_remote *r, struct mig__hook_io *io, uint32_t disk_id)
{
    uint8_t out[16 + PATH_MAX];
    size_t len = sizeof(out) - 1;
    r->io = io;
    int rc = request(r, CTL_START, disk_id, io->nchannels ? io->nchannels : 1, false, out, &len);
    if (rc < 0)
        return rc;
    if (len < 17)
        return -MIG_EPROTO;
    out[len] = 0;
    memcpy(r->path, out + 16, len - 16 + 1);
    return 0;
}

int mig__blk_remote_round(struct mig__blk_remote *r, bool final)
{
    return request(r, CTL_ROUND, final, 0, true, NULL, NULL);
}

void mig__blk_remote_set_forwarding(struct mig__blk_remote *r, bool on)
{
    int rc = request(r, CTL_FORWARD, on, 0, false, NULL, NULL);
    if (rc < 0)
        MIG_LOG(r->ctx, WARN, "disk %s: forwarding: %s", mig__blk_remote_path(r), mig_strerror(rc));
}

int mig__blk_remote_stats(struct mig__blk_remote *r, struct mig__blk_stats *st_out)
{
    uint8_t out[STATS_LEN];
    size_t len = sizeof(out);
    int rc = request(r, CTL_STATS, 0, 0, false, out, &len);
    if (rc == 0 && len != STATS_LEN)
        rc = -MIG_EPROTO;
    if (rc < 0) {
        memset(st_out, 0, sizeof(*st_out));
        return rc;
    }
    get_stats(out, st_out);
    return 0;
}

int mig__blk_remote_freeze(struct mig__blk_remote *r)
{
    return request(r, CTL_FREEZE, 0, 0, false, NULL, NULL);
}

int mig__blk_remote_ready(struct mig__blk_remote *r)
{
    return request(r, CTL_READY, 0, 0, false, NULL, NULL);
}

int mig__blk_remote_release(struct mig__blk_remote *r, bool moved)
{
    return request(r, CTL_RELEASE, moved, 0, false, NULL, NULL);
}

void mig__blk_remote_abort(struct mig__blk_remote *r)
{
    /* The daemon stops the mirror and lifts the hold when the connection
     * closes; say it first when the link still works. */
    if (request(r, CTL_RELEASE, 0, 0, false, NULL, NULL) < 0 && r->fd >= 0)
        shutdown(r->fd, SHUT_RDWR);
}

/* ---- resolve ------------------------------------------------------------- */

static int ctl_only(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 4 && e->d_name[0] != '.' && strcmp(e->d_name + n - 4, ".ctl") == 0;
}

int mig__blk_settle(struct mig_ctx *ctx, const char *state_dir, const char *domain, bool moved)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct dirent **ents = NULL;
    int first = 0;
    int n = snprintf(dir, sizeof(dir), "%s/disks/%s", state_dir, domain);
    if (n < 0 || (size_t)n >= sizeof(dir) || strchr(domain, '/'))
        return 0;
    n = scandir(dir, &ents, ctl_only, alphasort);
    for (int i = 0; i < n; i++) {
        struct mig__blk_remote *r = NULL;
        int rc = snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name) >= (int)sizeof(path)
                     ? -MIG_EINVAL
                     : mig__blk_remote_open(ctx, path, &r);
        if (rc == 0)
            rc = mig__blk_remote_release(r, moved);
        mig__blk_remote_free(r);
        if (rc < 0) {
            MIG_LOG(ctx, ERROR, "managed disk %s: cannot settle it (%s)", path, mig_strerror(rc));
            if (!first)
                first = rc;
        } else {
            MIG_LOG(ctx, INFO, "managed disk %s: %s", path,
                    moved ? "moved: writes refused here" : "writes go on here");
        }
        free(ents[i]);
    }
    free(ents);
    return first;
}
