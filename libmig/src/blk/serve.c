/*
 * serve.c: the managed-disk server (libmig/blk.h, `xl-migrate-live
 * disk-serve`): one disk image served over NBD through the block mirror
 * (mig__blk_export_ops), plus the disk's control socket
 * STATE_DIR/disks/DOMAIN/NAME.ctl through which the process running a
 * migration of DOMAIN mirrors it (remote.c). The control socket's presence
 * is how a migration finds the domain's managed disks.
 *
 * Threads: the NBD server's (accept + one per connection), one accepting
 * control connections, one per control connection (at most CTL_CONNS).
 *
 * Entry points: mig__blk_server_start / _free (also used in-process by the
 * test-guest host), mig_disk_serve.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libmig/blk.h>

#define MIG_LOG_MODULE "blk"
#include "blk.h"
#include "nbd.h"

#define CTL_CONNS 4u

struct ctl_conn {
    struct mig__blk_server *srv; /* borrowed */
    int fd;                      /* -1: slot free */
    pthread_t th;
    bool joinable;
};

struct mig__blk_server {
    struct mig_ctx *ctx;             /* borrowed */
    struct mig__blk_mirror *mirror;  /* owned */
    struct mig__nbd_server *nbd;     /* owned */
    struct mig__nbd_export exp;
    struct mig__blk_ctl ctl;
    char ctl_path[PATH_MAX];
    int listen_fd;                   /* owned */
    int wake[2];                     /* owned: stops the accept thread */
    pthread_t accept_th;
    bool accept_on;
    pthread_mutex_t lock;            /* guards conns[].fd */
    struct ctl_conn conns[CTL_CONNS];
};

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof(buf))
        return -MIG_EINVAL;
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return mig__from_errno(errno);
        if (!c)
            return 0;
        *p = c;
    }
}

static void *conn_main(void *arg)
{
    struct ctl_conn *c = arg;
    struct mig__blk_server *s = c->srv;
    int rc = mig__blk_ctl_serve(&s->ctl, c->fd);
    if (rc < 0)
        MIG_LOG(s->ctx, WARN, "disk %s: control connection: %s", mig__blk_mirror_path(s->mirror),
                mig_strerror(rc));
    pthread_mutex_lock(&s->lock);
    close(c->fd);
    c->fd = -1;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct mig__blk_server *s = arg;
    for (;;) {
        struct pollfd pf[2] = {{s->listen_fd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents)
            break;
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct ctl_conn *c = NULL;
        pthread_mutex_lock(&s->lock);
        for (unsigned i = 0; i < CTL_CONNS && !c; i++)
            if (s->conns[i].fd < 0)
                c = &s->conns[i];
        if (c) {
            if (c->joinable)
                pthread_join(c->th, NULL); /* finished: its fd is -1 */
            c->joinable = false;
            c->fd = fd;
        }
        pthread_mutex_unlock(&s->lock);
        if (!c) {
            MIG_LOG(s->ctx, WARN, "disk %s: too many control connections",
                    mig__blk_mirror_path(s->mirror));
            close(fd);
            continue;
        }
        if (pthread_create(&c->th, NULL, conn_main, c) != 0) {
            pthread_mutex_lock(&s->lock);
            close(fd);
            c->fd = -1;
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        c->joinable = true;
    }
    return NULL;
}

/* Listen at path: bound under a temporary name, then renamed, so a process
 * that sees the file can connect. */
static int listen_at(const char *path, int *fd_out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char tmp[sizeof(sa.sun_path)];
    int n = snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -MIG_EINVAL;
    strcpy(sa.sun_path, tmp);
    unlink(tmp);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mig__from_errno(errno);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0 ||
        rename(tmp, path) < 0) {
        int rc = mig__from_errno(errno);
        unlink(tmp);
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

void mig__blk_server_free(struct mig__blk_server *s)
{
    if (!s)
        return;
    if (s->listen_fd >= 0) {
        unlink(s->ctl_path);
        close(s->listen_fd);
    }
    if (s->accept_on) {
        ssize_t w = write(s->wake[1], "x", 1);
        (void)w;
        pthread_join(s->accept_th, NULL);
    }
    /* No write may wait on a hold nobody will lift: held writes fail. */
    if (s->mirror)
        mig__blk_mirror_unhold(s->mirror);
    mig__nbd_server_free(s->nbd);
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < CTL_CONNS; i++)
        if (s->conns[i].fd >= 0)
            shutdown(s->conns[i].fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < CTL_CONNS; i++)
        if (s->conns[i].joinable)
            pthread_join(s->conns[i].th, NULL);
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
    mig__blk_mirror_free(s->mirror);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->ctl.lock);
    free(s);
}

int mig__blk_server_start(struct mig_ctx *ctx, const struct mig_disk_serve_params *p,
                          struct mig__blk_server **s_out)
{
    char dir[PATH_MAX];
    int rc;
    if (!p->path || !p->domain || !p->socket || !p->domain[0] || strchr(p->domain, '/'))
        return -MIG_EINVAL;
    const char *name = p->name ? p->name : strrchr(p->path, '/') ? strrchr(p->path, '/') + 1
                                                                 : p->path;
    if (!name[0] || strchr(name, '/') || name[0] == '.')
        return -MIG_EINVAL;
    struct mig__blk_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -MIG_ENOMEM;
    s->ctx = ctx;
    s->listen_fd = -1;
    s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->ctl.lock, NULL);
    for (unsigned i = 0; i < CTL_CONNS; i++) {
        s->conns[i].srv = s;
        s->conns[i].fd = -1;
    }
    /* the absolute path travels to the destination (--disk-map SRC) */
    char abs[PATH_MAX];
    rc = mig__blk_mirror_open(ctx, realpath(p->path, abs) ? abs : p->path, &s->mirror);
    if (rc < 0)
        goto out;
    s->ctl.ctx = ctx;
    s->ctl.mirror = s->mirror;
    s->exp = (struct mig__nbd_export){.name = "", .description = p->path,
                                      .ops = &mig__blk_export_ops, .opaque = s->mirror,
                                      .flags = MIG__NBD_EXPORT_MULTI_CONN};
    struct mig__nbd_server_config cfg = {.max_conns = p->harden ? 2 : 0};
    if ((rc = mig__nbd_server_new(ctx, &s->exp, &cfg, &s->nbd)) < 0)
        goto out;
    if ((rc = mig__nbd_server_listen_unix(s->nbd, p->socket)) < 0)
        goto out;
    int n = snprintf(dir, sizeof(dir), "%s/disks/%s",
                     p->state_dir ? p->state_dir : "/var/lib/migrate-live", p->domain);
    if (n < 0 || (size_t)n >= sizeof(dir) ||
        snprintf(s->ctl_path, sizeof(s->ctl_path), "%s/%s.ctl", dir, name) >=
            (int)sizeof(s->ctl_path)) {
        rc = -MIG_EINVAL;
        goto out;
    }
    if ((rc = mkdir_p(dir)) < 0) {
        MIG_LOG(ctx, ERROR, "cannot create %s: %s", dir, mig_strerror(rc));
        goto out;
    }
    /* the out-of-sync log next to the control socket: loaded before the
     * export serves its first write */
    char oos_path[PATH_MAX + 8];
    snprintf(oos_path, sizeof(oos_path), "%s/%s.oos", dir, name);
    if ((rc = mig__blk_mirror_persist(s->mirror, oos_path)) < 0)
        goto out;
    if ((rc = listen_at(s->ctl_path, &s->listen_fd)) < 0) {
        MIG_LOG(ctx, ERROR, "control socket %s: %s", s->ctl_path, mig_strerror(rc));
        goto out;
    }
    if (pipe2(s->wake, O_CLOEXEC) < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    if ((rc = mig__nbd_server_start(s->nbd)) < 0)
        goto out;
    if (pthread_create(&s->accept_th, NULL, accept_main, s) != 0) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    s->accept_on = true;
out:
    if (rc < 0) {
        mig__blk_server_free(s);
        return rc;
    }
    *s_out = s;
    return 0;
}

const char *mig__blk_server_ctl_path(const struct mig__blk_server *s)
{
    return s->ctl_path;
}

struct mig__blk_mirror *mig__blk_server_mirror(struct mig__blk_server *s)
{
    return s->mirror;
}

int mig_disk_serve(struct mig_ctx *ctx, const struct mig_disk_serve_params *p)
{
    struct mig__blk_server *s = NULL;
    unsigned applied = 0;
    int rc = mig__blk_server_start(ctx, p, &s);
    if (rc < 0)
        return rc;
    if (p->harden && (rc = mig__nbd_harden_daemon(ctx, &applied)) < 0)
        goto out;
    MIG_LOG(ctx, INFO, "managed disk %s of %s: nbd+unix:///?socket=%s, control %s%s", p->path,
            p->domain, p->socket, s->ctl_path,
            (applied & MIG__NBD_HARDEN_IO_FLUSHER) ? ", memory locked, I/O flusher"
            : applied                             ? ", memory locked"
                                                  : "");
    if (p->ready)
        p->ready(p->ready_opaque, s->ctl_path);
    if (p->stop_fd >= 0) {
        struct pollfd pf = {p->stop_fd, POLLIN, 0};
        while (poll(&pf, 1, -1) < 0 && errno == EINTR)
            ;
    } else {
        for (;;)
            poll(NULL, 0, -1);
    }
    struct mig__nbd_stats st;
    mig__nbd_server_stats(s->nbd, &st);
    MIG_LOG(ctx, INFO,
            "stopping: %" PRIu64 " connections, %" PRIu64 " requests, %" PRIu64 " bytes written",
            st.conns_accepted, st.requests, st.bytes_written);
    rc = 0;
out:
    mig__blk_server_free(s);
    return rc;
}
