/*
 * tcp.c: the tcp:HOST:PORT class: plaintext, but never unauthenticated
 * (link.c runs the pre-shared-key proofs; without a key file the listener
 * must be opened with 'insecure', which is logged loudly). Also the TCP
 * helpers tls.c builds on.
 * Entry points: mig__tr_tcp, mig__tr_split_hostport, mig__tr_tcp_connect_fd,
 * mig__tr_tcp_listen_fd.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIG_LOG_MODULE "tcp"
#include "../stream/stream.h"
#include "transport-provider.h"

int mig__tr_split_hostport(const char *arg, char *host, size_t hostlen, char *port,
                           size_t portlen)
{
    const char *h = arg, *colon;
    size_t hl;
    if (*arg == '[') {
        const char *end = strchr(arg, ']');
        if (!end || end[1] != ':')
            return -MIG_EINVAL;
        h = arg + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(arg, ':');
        if (!colon)
            return -MIG_EINVAL;
        hl = (size_t)(colon - arg);
    }
    if (hl == 0 || hl >= hostlen || strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return -MIG_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

static int resolve(struct mig_ctx *ctx, const char *arg, bool passive, struct addrinfo **res_out)
{
    char host[256], port[16];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    if (passive)
        hints.ai_flags |= AI_PASSIVE;
    if (mig__tr_split_hostport(arg, host, sizeof(host), port, sizeof(port))) {
        MIG_LOG(ctx, ERROR, "'%s': expected HOST:PORT", arg);
        return -MIG_EINVAL;
    }
    int r = getaddrinfo(host, port, &hints, res_out);
    if (r) {
        MIG_LOG(ctx, ERROR, "'%s': %s", arg, gai_strerror(r));
        return -MIG_ENOENT;
    }
    return 0;
}

int mig__tr_tcp_connect_fd(struct mig_ctx *ctx, const char *arg, unsigned timeout_ms, int *fd_out)
{
    struct addrinfo *res = NULL;
    int fd = -1, rc = resolve(ctx, arg, false, &res);
    if (rc)
        return rc;
    rc = -MIG_EIO;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            rc = mig__from_errno(errno);
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            int err = 0;
            socklen_t el = sizeof(err);
            rc = mig__tr_poll(fd, POLLOUT, (int)timeout_ms);
            if (!rc && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
                break;
            if (!rc)
                rc = mig__from_errno(err ? err : errno);
        } else {
            rc = mig__from_errno(errno);
        }
        MIG_LOG(ctx, WARN, "tcp:%s: connect: %s", arg, mig_strerror(rc));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return rc;
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    mig__tr_sockopts(fd, timeout_ms);
    *fd_out = fd;
    return 0;
}

int mig__tr_tcp_listen_fd(struct mig_ctx *ctx, const char *arg, int *fd_out)
{
    struct addrinfo *res = NULL;
    int fd = -1, one = 1, rc = resolve(ctx, arg, true, &res);
    if (rc)
        return rc;
    rc = -MIG_EIO;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
            break;
        rc = mig__from_errno(errno);
        MIG_LOG(ctx, ERROR, "listen on %s: %s", arg, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return rc;
    *fd_out = fd;
    return 0;
}

/* ---- the class ---------------------------------------------------------- */

struct tcp_listen {
    struct mig__listen base;
    int fd;
    unsigned timeout_ms;
    enum mig__auth auth;
};

static int auth_mode(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                     bool server, enum mig__auth *auth_out)
{
    if (opts->psk_file) {
        *auth_out = MIG_AUTH_PSK;
        return 0;
    }
    if (!opts->insecure) {
        MIG_LOG(ctx, ERROR,
                "tcp:%s: refusing an unauthenticated channel: give a pre-shared key file, "
                "use tls:, or say 'insecure'",
                arg);
        return -MIG_EAUTH;
    }
    MIG_LOG(ctx, WARN,
            "INSECURE: tcp:%s %s WITHOUT AUTHENTICATION; anyone who reaches this port can %s",
            arg, server ? "accepts migrations" : "sends this migration",
            server ? "inject a domain" : "read or alter it");
    *auth_out = MIG_AUTH_NONE;
    return 0;
}

static int tcp_connect(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                       struct mig__conn **c_out)
{
    enum mig__auth auth;
    int fd = -1;
    int rc = auth_mode(ctx, arg, opts, false, &auth);
    if (rc)
        return rc;
    rc = mig__tr_tcp_connect_fd(ctx, arg, opts->timeout_ms ? opts->timeout_ms : 10000, &fd);
    if (rc)
        return rc;
    char peer[64];
    snprintf(peer, sizeof(peer), "tcp:%.59s", arg);
    return mig__conn_fd_new(ctx, fd, fd, auth, peer, c_out);
}

static int tcp_listen(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                      struct mig__listen **l_out)
{
    struct tcp_listen *l = NULL;
    enum mig__auth auth;
    int rc = auth_mode(ctx, arg, opts, true, &auth);
    if (rc)
        return rc;
    l = calloc(1, sizeof(*l));
    if (!l)
        return -MIG_ENOMEM;
    rc = mig__tr_tcp_listen_fd(ctx, arg, &l->fd);
    if (rc) {
        free(l);
        return rc;
    }
    l->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 10000;
    l->auth = auth;
    *l_out = &l->base;
    return 0;
}

static int tcp_accept(struct mig__listen *base, int timeout_ms, struct mig__conn **c_out)
{
    struct tcp_listen *l = (struct tcp_listen *)base;
    char peer[64];
    int fd = -1;
    int rc = mig__tr_accept_fd(l->fd, timeout_ms, peer, sizeof(peer), &fd);
    if (rc)
        return rc;
    mig__tr_sockopts(fd, l->timeout_ms);
    return mig__conn_fd_new(base->ctx, fd, fd, l->auth, peer, c_out);
}

static void tcp_listen_close(struct mig__listen *base)
{
    struct tcp_listen *l = (struct tcp_listen *)base;
    close(l->fd);
    free(l);
}

const struct mig__tr_class mig__tr_tcp = {
    .prefix = "tcp",
    .max_channels = 64,
    .connect = tcp_connect,
    .listen = tcp_listen,
    .accept = tcp_accept,
    .listen_close = tcp_listen_close,
};
