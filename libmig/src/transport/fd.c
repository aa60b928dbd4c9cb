/*
 * fd.c: connections over file descriptors (sockets, or a pair of pipes as
 * ssh gives us), with deadlines (poll), no SIGPIPE ever, and a wake pipe so
 * shutdown() interrupts a blocked reader or writer even on pipes. Also the
 * unix: and fd: classes and the socket helpers tcp.c and tls.c share.
 *
 * Entry points: mig__conn_fd_new, mig__tr_poll, mig__tr_sockopts,
 * mig__tr_accept_fd, mig__tr_unix, mig__tr_fd.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIG_LOG_MODULE "transport"
#include "../stream/stream.h"
#include "transport-provider.h"
#include "fd-conn.h"

int mig__tr_poll(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r > 0)
            return 0;
        if (r == 0)
            return -MIG_ETIMEOUT;
        if (errno != EINTR)
            return mig__from_errno(errno);
    }
}

void mig__tr_sockopts(int fd, unsigned timeout_ms)
{
    int one = 1;
    unsigned idle = timeout_ms / 3000 ? timeout_ms / 3000 : 1;
    int iidle = (int)idle, cnt = 3;
    unsigned uto = timeout_ms;
    /* Best effort: unix sockets refuse the TCP ones, which is fine. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &iidle, sizeof(iidle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &iidle, sizeof(iidle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
}

int mig__tr_accept_fd(int lfd, int timeout_ms, char *peer, size_t peerlen, int *fd_out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int rc = mig__tr_poll(lfd, POLLIN, timeout_ms);
    if (rc)
        return rc;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
    if (fd < 0)
        return errno == EAGAIN ? -MIG_ETIMEOUT : mig__from_errno(errno);
    if (peer) {
        char h[64] = "?";
        unsigned port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
            port = ntohs(a->sin6_port);
        } else {
            snprintf(h, sizeof(h), "unix");
        }
        snprintf(peer, peerlen, "%s:%u", h, port);
    }
    *fd_out = fd;
    return 0;
}

/* ---- the fd connection -------------------------------------------------- */

static int wait_fd(struct fd_conn *c, int fd, short events, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = c->wake[0], .events = POLLIN}};
    for (;;) {
        int r = poll(p, 2, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return mig__from_errno(errno);
        if (r == 0)
            return -MIG_ETIMEOUT;
        if (p[1].revents)
            return -MIG_ECANCELLED;
        return 0;
    }
}

int mig__fd_conn_wait(struct fd_conn *c, short events, int timeout_ms)
{
    return wait_fd(c, events == POLLIN ? c->rfd : c->wfd, events, timeout_ms);
}

/* Sockets block in the kernel with SO_RCVTIMEO / SO_SNDTIMEO as the deadline
 * (one syscall per transfer, woken by shutdown(2)); set only when it changes. */
static void sock_tmo(int fd, int opt, int *cur, int ms)
{
    if (*cur == ms)
        return;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)) == 0)
        *cur = ms;
}

/* Large reads ("whole": len >= LOWAT_MIN) wait for all their bytes in one
 * wake-up: SO_RCVLOWAT makes the socket readable only when 'len' bytes are
 * queued (the kernel wakes a reader per arriving segment otherwise, 64 KiB
 * on loopback: an idle 2 GiB move did 29000 context switches, 12000 with
 * it), poll waits for that, recv takes them without sleeping (recv's own
 * wait would sleep again for a full mark after a partial copy). A timeout
 * returns what came meanwhile: a slow link's bytes are progress, not
 * silence. Other reads block in recv with SO_RCVTIMEO as the deadline (one
 * syscall per transfer, woken by shutdown(2)). */
#define LOWAT_MIN (64u << 10)

static int sock_read(struct fd_conn *c, void *buf, size_t len, int timeout_ms, size_t *n_out)
{
    bool whole = timeout_ms > 0 && len >= LOWAT_MIN, waited = false;
    int mark = !whole ? 1 : len > INT_MAX ? INT_MAX : (int)len;
    if (c->rcv_lowat != mark &&
        setsockopt(c->rfd, SOL_SOCKET, SO_RCVLOWAT, &mark, sizeof(mark)) == 0)
        c->rcv_lowat = mark;
    /* SO_RCVTIMEO 0 means "never time out": a zero timeout is a poll */
    int flags = whole || timeout_ms == 0 ? MSG_DONTWAIT : 0;
    if (timeout_ms > 0 && !whole)
        sock_tmo(c->rfd, SO_RCVTIMEO, &c->rcv_tmo, timeout_ms);
    for (;;) {
        if (c->down)
            return -MIG_ECANCELLED;
        ssize_t r = recv(c->rfd, buf, len, flags);
        if (r > 0) {
            *n_out = (size_t)r;
            return 0;
        }
        if (r == 0)
            return c->down ? -MIG_ECANCELLED : -MIG_EPEER;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == ECONNRESET ? -MIG_EPEER : mig__from_errno(errno);
        if (!whole || waited)
            return -MIG_ETIMEOUT;
        int rc = wait_fd(c, c->rfd, POLLIN, timeout_ms);
        if (rc == -MIG_ETIMEOUT)
            waited = true; /* one more look for bytes below the mark */
        else if (rc)
            return rc;
    }
}

static int fd_read(struct mig__conn *base, void *buf, size_t len, int timeout_ms, size_t *n_out)
{
    struct fd_conn *c = (struct fd_conn *)base;
    *n_out = 0;
    if (c->is_sock)
        return sock_read(c, buf, len, timeout_ms, n_out);
    for (;;) {
        if (c->down)
            return -MIG_ECANCELLED;
        ssize_t r = c->is_sock ? recv(c->rfd, buf, len, MSG_DONTWAIT) : read(c->rfd, buf, len);
        if (r > 0) {
            *n_out = (size_t)r;
            return 0;
        }
        if (r == 0)
            return -MIG_EPEER;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == ECONNRESET ? -MIG_EPEER : mig__from_errno(errno);
        int rc = wait_fd(c, c->rfd, POLLIN, timeout_ms);
        if (rc)
            return rc;
    }
}

/* write(2) on a pipe whose reader is gone raises SIGPIPE: block it in this
 * thread around the call and swallow the pending one. */
ssize_t mig__tr_writev_nosig(int fd, const struct iovec *iov, int n)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t r = writev(fd, iov, n);
    int e = errno;
    if (r < 0 && e == EPIPE) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return r;
}

static int fd_writev(struct mig__conn *base, struct iovec *iov, int iovcnt, int timeout_ms)
{
    struct fd_conn *c = (struct fd_conn *)base;
    while (iovcnt > 0) {
        if (c->down)
            return -MIG_ECANCELLED;
        int n = iovcnt < IOV_MAX ? iovcnt : IOV_MAX;
        ssize_t r;
        if (c->is_sock) {
            struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
            sock_tmo(c->wfd, SO_SNDTIMEO, &c->snd_tmo, timeout_ms);
            r = sendmsg(c->wfd, &m, MSG_NOSIGNAL);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return c->down ? -MIG_ECANCELLED : -MIG_ETIMEOUT;
        } else {
            r = mig__tr_writev_nosig(c->wfd, iov, n);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int rc = wait_fd(c, c->wfd, POLLOUT, timeout_ms);
                if (rc)
                    return rc;
                continue;
            }
            return (errno == EPIPE || errno == ECONNRESET) ? -MIG_EPEER : mig__from_errno(errno);
        }
        size_t done = (size_t)r;
        while (iovcnt > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

static void fd_shutdown(struct mig__conn *base)
{
    struct fd_conn *c = (struct fd_conn *)base;
    c->down = true;
    if (c->is_sock)
        (void)shutdown(c->rfd, SHUT_RDWR);
    if (c->wake[1] >= 0) {
        ssize_t r = write(c->wake[1], "x", 1);
        (void)r;
    }
}

/* Reap an ssh child: closing its pipes ends it; bounded wait, then SIGTERM.
 * A failure status is logged: it usually explains an early EOF (no route,
 * authentication, xl-migrate-live missing on the far side). */
static void reap(struct mig_ctx *ctx, const char *peer, pid_t pid)
{
    int st = 0;
    pid_t r = 0;
    for (int i = 0; i < 200 && r == 0; i++) { /* 2 s */
        r = waitpid(pid, &st, WNOHANG);
        if (r == 0) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (r == 0) {
        kill(pid, SIGTERM);
        r = waitpid(pid, &st, 0);
    }
    if (r == pid && WIFEXITED(st) && WEXITSTATUS(st) != 0)
        MIG_LOG(ctx, WARN, "%s: the ssh command exited with status %d", peer, WEXITSTATUS(st));
    else if (r == pid && WIFSIGNALED(st) && WTERMSIG(st) != SIGTERM)
        MIG_LOG(ctx, WARN, "%s: the ssh command was killed by signal %d", peer, WTERMSIG(st));
}

static void fd_close(struct mig__conn *base)
{
    struct fd_conn *c = (struct fd_conn *)base;
    if (c->wfd >= 0 && c->wfd != c->rfd)
        close(c->wfd);
    if (c->rfd >= 0)
        close(c->rfd);
    if (c->wake[0] >= 0)
        close(c->wake[0]);
    if (c->wake[1] >= 0)
        close(c->wake[1]);
    if (c->child > 0)
        reap(c->base.ctx, c->base.peer, c->child);
    free(c);
}

static const struct mig__conn_ops fd_ops = {
    .read = fd_read,
    .writev = fd_writev,
    .shutdown = fd_shutdown,
    .close = fd_close,
};

static bool is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

int mig__fd_conn_init(struct fd_conn *c, struct mig_ctx *ctx, int rfd, int wfd,
                      enum mig__auth auth, const char *peer)
{
    c->base.ops = &fd_ops;
    c->base.ctx = ctx;
    c->base.auth = auth;
    snprintf(c->base.peer, sizeof(c->base.peer), "%s", peer ? peer : "?");
    c->rfd = rfd;
    c->wfd = wfd;
    c->wake[0] = c->wake[1] = -1;
    c->is_sock = rfd == wfd && is_socket(rfd);
    c->rcv_tmo = c->snd_tmo = -1;
    c->rcv_lowat = 1; /* the kernel's default */

    if (c->is_sock) /* deadlines come from SO_*TIMEO: the socket must block */
        (void)fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) & ~O_NONBLOCK);
    if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK))
        return mig__from_errno(errno);
    if (!c->is_sock) {
        /* Pipes: non-blocking so a write never outlives its deadline. */
        (void)fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
        (void)fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);
    }
    return 0;
}

int mig__conn_fd_new(struct mig_ctx *ctx, int rfd, int wfd, enum mig__auth auth,
                     const char *peer, struct mig__conn **c_out)
{
    struct fd_conn *c = calloc(1, sizeof(*c));
    int rc;
    *c_out = NULL;
    if (!c) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    rc = mig__fd_conn_init(c, ctx, rfd, wfd, auth, peer);
    if (rc)
        goto out;
    *c_out = &c->base;
    return 0;
out:
    if (c) {
        c->wake[0] >= 0 ? close(c->wake[0]) : 0;
        c->wake[1] >= 0 ? close(c->wake[1]) : 0;
        free(c);
    }
    if (wfd >= 0 && wfd != rfd)
        close(wfd);
    if (rfd >= 0)
        close(rfd);
    return rc;
}

void mig__conn_fd_set_child(struct mig__conn *base, pid_t pid)
{
    ((struct fd_conn *)base)->child = pid;
}

/* ---- unix:PATH ---------------------------------------------------------- */

struct sock_listen {
    struct mig__listen base;
    int fd;
    unsigned timeout_ms;
    char path[108];             /* unix: unlinked on close */
};

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (!*path || strlen(path) >= sizeof(sa->sun_path))
        return -MIG_EINVAL;
    strcpy(sa->sun_path, path);
    return 0;
}

static int unix_connect(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                        struct mig__conn **c_out)
{
    struct sockaddr_un sa;
    int fd = -1, rc = unix_addr(arg, &sa);
    if (rc)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mig__from_errno(errno);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        rc = mig__from_errno(errno);
        MIG_LOG(ctx, ERROR, "unix:%s: connect: %s", arg, strerror(errno));
        close(fd);
        return rc;
    }
    char peer[64];
    snprintf(peer, sizeof(peer), "unix:%.58s", arg);
    return mig__conn_fd_new(ctx, fd, fd, MIG_AUTH_NONE, peer, c_out);
}

static int unix_listen(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                       struct mig__listen **l_out)
{
    struct sockaddr_un sa;
    struct sock_listen *l = NULL;
    int rc = unix_addr(arg, &sa);
    if (rc)
        return rc;
    l = calloc(1, sizeof(*l));
    if (!l)
        return -MIG_ENOMEM;
    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(l->fd, 16)) {
        rc = mig__from_errno(errno);
        MIG_LOG(ctx, ERROR, "unix:%s: listen: %s", arg, strerror(errno));
        if (l->fd >= 0)
            close(l->fd);
        free(l);
        return rc;
    }
    snprintf(l->path, sizeof(l->path), "%s", arg);
    *l_out = &l->base;
    return 0;
}

static int unix_accept(struct mig__listen *base, int timeout_ms, struct mig__conn **c_out)
{
    struct sock_listen *l = (struct sock_listen *)base;
    int fd = -1;
    int rc = mig__tr_accept_fd(l->fd, timeout_ms, NULL, 0, &fd);
    if (rc)
        return rc;
    return mig__conn_fd_new(base->ctx, fd, fd, MIG_AUTH_NONE, "unix peer", c_out);
}

static void unix_listen_close(struct mig__listen *base)
{
    struct sock_listen *l = (struct sock_listen *)base;
    close(l->fd);
    unlink(l->path);
    free(l);
}

const struct mig__tr_class mig__tr_unix = {
    .prefix = "unix",
    .max_channels = 64,
    .connect = unix_connect,
    .listen = unix_listen,
    .accept = unix_accept,
    .listen_close = unix_listen_close,
};

/* ---- fd:RFD,WFD (tests; the link owns the fds) --------------------------- */

static int fdpair_connect(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                          struct mig__conn **c_out)
{
    int r, w, n = 0;
    if (sscanf(arg, "%d,%d%n", &r, &w, &n) != 2 || arg[n] || r < 0 || w < 0)
        return -MIG_EINVAL;
    return mig__conn_fd_new(ctx, r, w, MIG_AUTH_PIPE, "fd pair", c_out);
}

static int fdpair_listen(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                         struct mig__listen **l_out)
{
    MIG_LOG(ctx, ERROR, "fd: cannot listen; serve an fd pair with mig__link_from_fds");
    return -MIG_ENOTSUP;
}

static int no_accept(struct mig__listen *l, int timeout_ms, struct mig__conn **c_out)
{
    return -MIG_ENOTSUP;
}

static void no_listen_close(struct mig__listen *l)
{
}

const struct mig__tr_class mig__tr_fd = {
    .prefix = "fd",
    .max_channels = 1,
    .connect = fdpair_connect,
    .listen = fdpair_listen,
    .accept = no_accept,
    .listen_close = no_listen_close,
};
