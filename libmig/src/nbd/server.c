/*
 * server.c: the NBD server object: connection slots (every buffer and
 * worker thread made up front), listeners (unix socket, loopback TCP), the
 * accept thread, and one connection's life (handshake, then transmission).
 * Entry points: mig__nbd_server_new / listen_unix / listen_tcp / start /
 * serve_fd / serve_io / stop / free / stats (nbd.h).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd-internal.h"

/* ---- the socket as connection I/O ---------------------------------------- */

static long sock_recv(void *opaque, void *buf, size_t len)
{
    int fd = *(int *)opaque;
    for (;;) {
        ssize_t r = recv(fd, buf, len, 0);
        if (r >= 0)
            return (long)r;
        if (errno != EINTR)
            return mig__from_errno(errno);
    }
}

static int sock_sendv(void *opaque, const struct iovec *iov_in, int iovcnt, bool more)
{
    int fd = *(int *)opaque;
    struct iovec iov[4];
    struct msghdr m = {0};
    if (iovcnt > 4)
        return -MIG_EINVAL;
    memcpy(iov, iov_in, sizeof(*iov) * (size_t)iovcnt);
    m.msg_iov = iov;
    m.msg_iovlen = (size_t)iovcnt;
    while (m.msg_iovlen) {
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return mig__from_errno(errno);
        }
        size_t left = (size_t)w;
        while (m.msg_iovlen && left >= m.msg_iov->iov_len) {
            left -= m.msg_iov->iov_len;
            m.msg_iov++;
            m.msg_iovlen--;
        }
        if (m.msg_iovlen) {
            m.msg_iov->iov_base = (uint8_t *)m.msg_iov->iov_base + left;
            m.msg_iov->iov_len -= left;
        }
    }
    return 0;
}

/* ---- one connection ------------------------------------------------------- */

static void note_drop(struct mig__nbd_server *srv, int rc, const char *why)
{
    __atomic_fetch_add(&srv->stats.proto_errors, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&srv->lock);
    MIG_LOG_RL(srv->ctx, &srv->rl, WARN, "dropped a client: %s", why ? why : mig_strerror(rc));
    pthread_mutex_unlock(&srv->lock);
}

static int serve(struct mig__nbd_server *srv, struct mig__nbd_slot *slot,
                 const struct mig__nbd_io *io)
{
    struct mig__nbd_conn c = {
        .srv = srv,
        .io = io,
        .buf = slot->mem,
        .in = slot->mem + srv->max_payload,
        .out = slot->mem + srv->max_payload + MIG__NBD_INBUF,
    };
    int rc;
    __atomic_fetch_add(&srv->stats.conns_accepted, 1, __ATOMIC_RELAXED);
    rc = mig__nbd_handshake(&c);
    if (rc == 1)
        rc = mig__nbd_transmit(&c);
    if (rc == -MIG_EPROTO)
        note_drop(srv, rc, c.why);
    else if (rc < 0)
        MIG_LOG(srv->ctx, DEBUG, "connection ended: %s", mig_strerror(rc));
    return rc == -MIG_EPEER ? 0 : rc;
}

/* Claim a free slot for a caller that serves in its own thread. */
static struct mig__nbd_slot *claim(struct mig__nbd_server *srv)
{
    struct mig__nbd_slot *s = NULL;
    pthread_mutex_lock(&srv->lock);
    for (unsigned i = 0; i < srv->max_conns && !srv->stopping; i++)
        if (srv->slots[i].state == MIG__NBD_SLOT_FREE) {
            s = &srv->slots[i];
            s->state = MIG__NBD_SLOT_BUSY;
            break;
        }
    pthread_mutex_unlock(&srv->lock);
    return s;
}

static void release(struct mig__nbd_server *srv, struct mig__nbd_slot *s)
{
    pthread_mutex_lock(&srv->lock);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->state = MIG__NBD_SLOT_FREE;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}

int mig__nbd_server_serve_io(struct mig__nbd_server *srv, const struct mig__nbd_io *io)
{
    struct mig__nbd_slot *s = claim(srv);
    int rc;
    if (!s)
        return -MIG_EBUSY;
    rc = serve(srv, s, io);
    release(srv, s);
    return rc;
}

int mig__nbd_server_serve_fd(struct mig__nbd_server *srv, int fd)
{
    struct mig__nbd_slot *s = claim(srv);
    int rc;
    if (!s) {
        close(fd);
        return -MIG_EBUSY;
    }
    pthread_mutex_lock(&srv->lock);
    s->fd = fd; /* visible to stop(), which shuts it down */
    pthread_mutex_unlock(&srv->lock);
    struct mig__nbd_io io = {sock_recv, sock_sendv, &fd};
    rc = serve(srv, s, &io);
    release(srv, s);
    return rc;
}

/* A slot's worker: serve whatever fd the acceptor assigns, until stop. */
static void *worker_main(void *arg)
{
    struct mig__nbd_slot *s = arg;
    struct mig__nbd_server *srv = s->srv;
    for (;;) {
        int fd;
        pthread_mutex_lock(&srv->lock);
        while (s->state != MIG__NBD_SLOT_ASSIGNED && !srv->stopping)
            pthread_cond_wait(&srv->cond, &srv->lock);
        if (s->state != MIG__NBD_SLOT_ASSIGNED) {
            pthread_mutex_unlock(&srv->lock);
            return NULL;
        }
        s->state = MIG__NBD_SLOT_BUSY;
        fd = s->fd;
        pthread_mutex_unlock(&srv->lock);
        struct mig__nbd_io io = {sock_recv, sock_sendv, &fd};
        serve(srv, s, &io);
        release(srv, s);
    }
}

/* ---- accepting ----------------------------------------------------------- */

static void hand_over(struct mig__nbd_server *srv, int fd, bool tcp)
{
    struct mig__nbd_slot *s = NULL;
    bool taken = false;
    if (tcp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    pthread_mutex_lock(&srv->lock);
    for (unsigned i = 0; i < srv->max_conns; i++)
        if (srv->slots[i].state == MIG__NBD_SLOT_FREE && srv->slots[i].has_worker) {
            s = &srv->slots[i];
            break;
        }
    if (s && !srv->stopping) {
        s->fd = fd;
        s->state = MIG__NBD_SLOT_ASSIGNED;
        taken = true;
        pthread_cond_broadcast(&srv->cond);
    }
    pthread_mutex_unlock(&srv->lock);
    if (!taken) {
        __atomic_fetch_add(&srv->stats.conns_refused, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&srv->lock);
        MIG_LOG_RL(srv->ctx, &srv->rl, WARN, "refused a client: all %u connections in use",
                   srv->max_conns);
        pthread_mutex_unlock(&srv->lock);
        close(fd);
    }
}

static void *acceptor_main(void *arg)
{
    struct mig__nbd_server *srv = arg;
    for (;;) {
        struct pollfd p[3] = {{srv->wake[0], POLLIN, 0},
                              {srv->listen_fd[0], POLLIN, 0},
                              {srv->listen_fd[1], POLLIN, 0}};
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            MIG_LOG(srv->ctx, ERROR, "accept loop: poll: %s", strerror(errno));
            return NULL;
        }
        if (p[0].revents)
            return NULL;
        for (int i = 1; i < 3; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            int fd = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
                    pthread_mutex_lock(&srv->lock);
                    MIG_LOG_RL(srv->ctx, &srv->rl, WARN, "accept: %s", strerror(errno));
                    pthread_mutex_unlock(&srv->lock);
                    if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
                        poll(NULL, 0, 100); /* let descriptors free up */
                }
                continue;
            }
            hand_over(srv, fd, i == 2);
        }
    }
}

/* ---- lifecycle ----------------------------------------------------------- */

static const char *missing_op(const struct mig__nbd_export_ops *o)
{
    if (!o)
        return "the ops table";
    if (!o->size)
        return "size";
    if (!o->pread)
        return "pread";
    if (!o->pwrite)
        return "pwrite";
    if (!o->flush)
        return "flush";
    if (!o->trim)
        return "trim";
    if (!o->write_zeroes)
        return "write_zeroes";
    return NULL;
}

int mig__nbd_server_new(struct mig_ctx *ctx, const struct mig__nbd_export *exp,
                        const struct mig__nbd_server_config *cfg,
                        struct mig__nbd_server **srv_out)
{
    struct mig__nbd_server *srv = NULL;
    const char *missing = missing_op(exp ? exp->ops : NULL);
    uint32_t maxp = cfg && cfg->max_payload ? cfg->max_payload : MIG__NBD_DEFAULT_MAX_PAYLOAD;
    unsigned maxc = cfg && cfg->max_conns ? cfg->max_conns : MIG__NBD_DEFAULT_MAX_CONNS;
    int rc;

    *srv_out = NULL;
    if (missing) {
        MIG_LOG(ctx, ERROR, "NBD export lacks %s", missing);
        return -MIG_EINVAL;
    }
    if (maxp < MIG__NBD_MIN_MAX_PAYLOAD || maxp > MIG__NBD_DEFAULT_MAX_PAYLOAD || maxc > 1024) {
        MIG_LOG(ctx, ERROR, "NBD server: max payload %u or connections %u out of range", maxp,
                maxc);
        return -MIG_EINVAL;
    }
    if (exp->name && strlen(exp->name) > MIG__NBD_MAX_STRING)
        return -MIG_EINVAL;
    srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -MIG_ENOMEM;
    srv->ctx = ctx;
    srv->exp = *exp;
    srv->size = exp->ops->size(exp->opaque);
    srv->max_payload = maxp;
    srv->max_conns = maxc;
    srv->listen_fd[0] = srv->listen_fd[1] = -1;
    srv->wake[0] = srv->wake[1] = -1;
    mig__ratelimit_init(&srv->rl, 1000, 5);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    srv->slots = calloc(maxc, sizeof(*srv->slots));
    if (!srv->slots) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < maxc; i++) {
        struct mig__nbd_slot *s = &srv->slots[i];
        s->fd = -1;
        s->srv = srv;
        /* page-aligned, so O_DIRECT exports can use it as it is */
        if (posix_memalign((void **)&s->mem, 4096,
                           (size_t)maxp + MIG__NBD_INBUF + MIG__NBD_OUTBUF)) {
            s->mem = NULL;
            rc = -MIG_ENOMEM;
            goto out;
        }
    }
    if (pipe2(srv->wake, O_CLOEXEC) < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    *srv_out = srv;
    srv = NULL;
    rc = 0;
out:
    mig__nbd_server_free(srv);
    return rc;
}

int mig__nbd_server_listen_unix(struct mig__nbd_server *srv, const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char tmp[sizeof(a.sun_path)];
    int fd = -1, rc;
    struct stat st;

    if (srv->listen_fd[0] >= 0 || srv->has_acceptor)
        return -MIG_ESTATE;
    if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof(tmp)) {
        MIG_LOG(srv->ctx, ERROR, "socket path too long: %s", path);
        return -MIG_EINVAL;
    }
    memcpy(a.sun_path, tmp, sizeof(tmp));
    /* replace a stale socket, never anything else */
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        MIG_LOG(srv->ctx, ERROR, "%s exists and is not a socket", path);
        return -MIG_EEXIST;
    }
    unlink(tmp);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mig__from_errno(errno);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0 ||
        rename(tmp, path) < 0) {
        rc = mig__from_errno(errno);
        MIG_LOG(srv->ctx, ERROR, "cannot listen on %s: %s", path, strerror(errno));
        unlink(tmp);
        close(fd);
        return rc;
    }
    srv->unix_path = strdup(path);
    if (!srv->unix_path) {
        unlink(path);
        close(fd);
        return -MIG_ENOMEM;
    }
    srv->listen_fd[0] = fd;
    return 0;
}

int mig__nbd_server_listen_tcp(struct mig__nbd_server *srv, uint16_t port, uint16_t *port_out)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    socklen_t al = sizeof(a);
    int fd, one = 1, rc;
    if (srv->listen_fd[1] >= 0 || srv->has_acceptor)
        return -MIG_ESTATE;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only: no authentication here */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mig__from_errno(errno);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        rc = mig__from_errno(errno);
        MIG_LOG(srv->ctx, ERROR, "cannot listen on 127.0.0.1:%u: %s", port, strerror(errno));
        close(fd);
        return rc;
    }
    srv->listen_fd[1] = fd;
    if (port_out)
        *port_out = ntohs(a.sin_port);
    return 0;
}

/* The threads' stacks: the connection code keeps its buffers in the slot,
 * so a small stack does; it matters when the daemon locks all its memory. */
#define THREAD_STACK (256u << 10)

int mig__nbd_server_start(struct mig__nbd_server *srv)
{
    pthread_attr_t attr;
    int rc = 0;
    if (srv->has_acceptor || srv->stopping)
        return -MIG_ESTATE;
    if (srv->listen_fd[0] < 0 && srv->listen_fd[1] < 0)
        return -MIG_EINVAL;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    for (unsigned i = 0; i < srv->max_conns && !rc; i++) {
        rc = pthread_create(&srv->slots[i].worker, &attr, worker_main, &srv->slots[i]);
        if (!rc) {
            pthread_mutex_lock(&srv->lock);
            srv->slots[i].has_worker = true;
            pthread_mutex_unlock(&srv->lock);
        }
    }
    if (!rc)
        rc = pthread_create(&srv->acceptor, &attr, acceptor_main, srv);
    pthread_attr_destroy(&attr);
    if (rc) {
        mig__nbd_server_stop(srv);
        return mig__from_errno(rc);
    }
    srv->has_acceptor = true;
    return 0;
}

void mig__nbd_server_stop(struct mig__nbd_server *srv)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->lock);
    srv->stopping = true;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
    if (srv->has_acceptor) {
        ssize_t w = write(srv->wake[1], "x", 1);
        (void)w;
        pthread_join(srv->acceptor, NULL);
        srv->has_acceptor = false;
    }
    for (int i = 0; i < 2; i++)
        if (srv->listen_fd[i] >= 0) {
            close(srv->listen_fd[i]);
            srv->listen_fd[i] = -1;
        }
    if (srv->unix_path) {
        unlink(srv->unix_path);
        free(srv->unix_path);
        srv->unix_path = NULL;
    }
    /* wake every connection blocked in recv/send; each ends after the request
     * in progress (its reply fails), then frees its slot */
    pthread_mutex_lock(&srv->lock);
    for (;;) {
        bool busy = false;
        for (unsigned i = 0; i < srv->max_conns; i++) {
            struct mig__nbd_slot *s = &srv->slots[i];
            if (s->state == MIG__NBD_SLOT_ASSIGNED && s->fd >= 0) {
                /* never picked up: its worker sees stopping and leaves */
                close(s->fd);
                s->fd = -1;
                s->state = MIG__NBD_SLOT_FREE;
            } else if (s->state == MIG__NBD_SLOT_BUSY) {
                if (s->fd >= 0)
                    shutdown(s->fd, SHUT_RDWR);
                busy = true;
            }
        }
        if (!busy)
            break;
        pthread_cond_wait(&srv->cond, &srv->lock);
    }
    pthread_mutex_unlock(&srv->lock);
    for (unsigned i = 0; i < srv->max_conns; i++)
        if (srv->slots[i].has_worker) {
            pthread_join(srv->slots[i].worker, NULL);
            srv->slots[i].has_worker = false;
        }
}

void mig__nbd_server_free(struct mig__nbd_server *srv)
{
    if (!srv)
        return;
    mig__nbd_server_stop(srv);
    for (unsigned i = 0; srv->slots && i < srv->max_conns; i++)
        free(srv->slots[i].mem);
    free(srv->slots);
    for (int i = 0; i < 2; i++)
        if (srv->wake[i] >= 0)
            close(srv->wake[i]);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

void mig__nbd_server_stats(struct mig__nbd_server *srv, struct mig__nbd_stats *out)
{
    out->conns_accepted = __atomic_load_n(&srv->stats.conns_accepted, __ATOMIC_RELAXED);
    out->conns_refused = __atomic_load_n(&srv->stats.conns_refused, __ATOMIC_RELAXED);
    out->proto_errors = __atomic_load_n(&srv->stats.proto_errors, __ATOMIC_RELAXED);
    out->requests = __atomic_load_n(&srv->stats.requests, __ATOMIC_RELAXED);
    out->request_errors = __atomic_load_n(&srv->stats.request_errors, __ATOMIC_RELAXED);
    out->bytes_read = __atomic_load_n(&srv->stats.bytes_read, __ATOMIC_RELAXED);
    out->bytes_written = __atomic_load_n(&srv->stats.bytes_written, __ATOMIC_RELAXED);
}
