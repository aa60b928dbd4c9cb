/*
 * tls.c: the tls:HOST:PORT class: TCP + OpenSSL, TLS 1.3 only, mutual
 * certificate authentication against the configured CA, the server's name
 * (or IP) checked by the client. Every channel of a session (control and
 * data) is its own TLS connection. Files, in opts->pki_dir or
 * /etc/pki/migrate-live (libvirt's names): cacert.pem, servercert.pem,
 * serverkey.pem, clientcert.pem, clientkey.pem.
 *
 * A plaintext client on a TLS listener is recognised by its first byte (our
 * preamble's 0x89 where a TLS handshake starts with 0x16) and told so in
 * plaintext before the connection is closed.
 *
 * Entry point: mig__tr_tls.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MIG_LOG_MODULE "tls"
#include "../stream/stream-internal.h"
#include "fd-conn.h"
#include "transport-provider.h"

#define DEFAULT_PKI "/etc/pki/migrate-live"
#define TLS_WBUF (64u << 10)

struct tls_conn {
    struct fd_conn fd;          /* socket, wake pipe, deadlines */
    SSL *ssl;                   /* owned */
    uint8_t *wbuf;              /* owned, TLS_WBUF: coalesces small iovecs */
};

/* Log OpenSSL's queue (and empty it): errors never travel further. */
static int tls_fail(struct mig_ctx *ctx, const char *what, const char *peer)
{
    unsigned long e;
    char buf[256];
    bool any = false;
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        MIG_LOG(ctx, ERROR, "%s %s: %s", what, peer, buf);
        any = true;
    }
    if (!any)
        MIG_LOG(ctx, ERROR, "%s %s failed", what, peer);
    return -MIG_ETLS;
}

/* SIGPIPE-free section for calls that may write to the socket. */
struct nosig {
    sigset_t set, old;
};
static void nosig_begin(struct nosig *ns)
{
    sigemptyset(&ns->set);
    sigaddset(&ns->set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &ns->set, &ns->old);
}
static void nosig_end(struct nosig *ns)
{
    struct timespec zero = {0, 0};
    while (sigtimedwait(&ns->set, NULL, &zero) > 0)
        ;
    pthread_sigmask(SIG_SETMASK, &ns->old, NULL);
}

/* After the handshake the socket blocks with SO_RCVTIMEO / SO_SNDTIMEO as
 * deadlines (fewer syscalls than poll + retry); a WANT_READ / WANT_WRITE then
 * means the deadline passed. */
static void sock_tmo(int fd, int opt, int *cur, int ms)
{
    if (*cur == ms)
        return;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)) == 0)
        *cur = ms;
}

static int ssl_after(struct tls_conn *c, int ret)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return c->fd.down ? -MIG_ECANCELLED : -MIG_ETIMEOUT;
    case SSL_ERROR_ZERO_RETURN:
        return -MIG_EPEER;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return c->fd.down ? -MIG_ECANCELLED : -MIG_EPEER;
    default:
        return tls_fail(c->fd.base.ctx, "TLS with", c->fd.base.peer);
    }
}

static int tls_read(struct mig__conn *base, void *buf, size_t len, int timeout_ms, size_t *n_out)
{
    struct tls_conn *c = (struct tls_conn *)base;
    *n_out = 0;
    /* SO_RCVTIMEO 0 would never time out: a zero timeout polls for 1 ms */
    sock_tmo(c->fd.rfd, SO_RCVTIMEO, &c->fd.rcv_tmo, timeout_ms > 0 ? timeout_ms : 1);
    for (;;) {
        if (c->fd.down)
            return -MIG_ECANCELLED;
        size_t n = 0;
        int r = SSL_read_ex(c->ssl, buf, len, &n);
        if (r == 1) {
            *n_out = n;
            return 0;
        }
        return ssl_after(c, r);
    }
}

static int write_all(struct tls_conn *c, const uint8_t *p, size_t len, int timeout_ms)
{
    sock_tmo(c->fd.wfd, SO_SNDTIMEO, &c->fd.snd_tmo, timeout_ms);
    while (len) {
        if (c->fd.down)
            return -MIG_ECANCELLED;
        struct nosig ns;
        size_t n = 0;
        nosig_begin(&ns);
        int r = SSL_write_ex(c->ssl, p, len, &n);
        nosig_end(&ns);
        if (r == 1) {
            p += n;
            len -= n;
            continue;
        }
        return ssl_after(c, r);
    }
    return 0;
}

static int tls_writev(struct mig__conn *base, struct iovec *iov, int iovcnt, int timeout_ms)
{
    struct tls_conn *c = (struct tls_conn *)base;
    size_t used = 0;
    int rc = 0;
    for (int i = 0; i < iovcnt && !rc; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        if (!used && len >= TLS_WBUF) { /* big enough to go out without a copy */
            rc = write_all(c, p, len, timeout_ms);
            continue;
        }
        while (len && !rc) {
            size_t n = TLS_WBUF - used < len ? TLS_WBUF - used : len;
            memcpy(c->wbuf + used, p, n);
            used += n;
            p += n;
            len -= n;
            if (used == TLS_WBUF) {
                rc = write_all(c, c->wbuf, used, timeout_ms);
                used = 0;
            }
        }
    }
    if (!rc && used)
        rc = write_all(c, c->wbuf, used, timeout_ms);
    return rc;
}

static void tls_shutdown(struct mig__conn *base)
{
    struct tls_conn *c = (struct tls_conn *)base;
    c->fd.down = true;
    (void)shutdown(c->fd.rfd, SHUT_RDWR);
    ssize_t r = write(c->fd.wake[1], "x", 1);
    (void)r;
}

static void tls_close(struct mig__conn *base)
{
    struct tls_conn *c = (struct tls_conn *)base;
    if (c->ssl) {
        struct nosig ns;
        nosig_begin(&ns);
        if (!c->fd.down && SSL_is_init_finished(c->ssl)) {
            /* Best-effort close_notify; never wait long for a stuck peer. */
            sock_tmo(c->fd.wfd, SO_SNDTIMEO, &c->fd.snd_tmo, 100);
            (void)SSL_shutdown(c->ssl);
        }
        nosig_end(&ns);
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    free(c->wbuf);
    if (c->fd.rfd >= 0)
        close(c->fd.rfd);
    if (c->fd.wake[0] >= 0)
        close(c->fd.wake[0]);
    if (c->fd.wake[1] >= 0)
        close(c->fd.wake[1]);
    free(c);
}

static const struct mig__conn_ops tls_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

/* ---- contexts --------------------------------------------------------- */

static int make_ctx(struct mig_ctx *ctx, const struct mig__link_opts *opts, bool server,
                    SSL_CTX **out)
{
    const char *dir = opts->pki_dir ? opts->pki_dir : DEFAULT_PKI;
    char ca[512], cert[512], key[512];
    SSL_CTX *sc = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!sc)
        return tls_fail(ctx, "SSL_CTX_new", "");
    snprintf(ca, sizeof(ca), "%s/cacert.pem", dir);
    snprintf(cert, sizeof(cert), "%s/%s", dir, server ? "servercert.pem" : "clientcert.pem");
    snprintf(key, sizeof(key), "%s/%s", dir, server ? "serverkey.pem" : "clientkey.pem");
    SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(sc, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(sc, 0); /* no resumption; SSL_read never writes tickets */
    SSL_CTX_set_mode(sc, SSL_MODE_AUTO_RETRY);
    /* Read whole bursts of records per syscall instead of header + body. */
    SSL_CTX_set_read_ahead(sc, 1);
    SSL_CTX_set_default_read_buffer_len(sc, 256u << 10);
    SSL_CTX_set_verify(sc, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    const char *bad = NULL;
    if (SSL_CTX_load_verify_locations(sc, ca, NULL) != 1)
        bad = ca;
    else if (SSL_CTX_use_certificate_chain_file(sc, cert) != 1)
        bad = cert;
    else if (SSL_CTX_use_PrivateKey_file(sc, key, SSL_FILETYPE_PEM) != 1)
        bad = key;
    else if (SSL_CTX_check_private_key(sc) != 1)
        bad = key;
    if (bad) {
        tls_fail(ctx, "loading", bad);
        SSL_CTX_free(sc);
        return -MIG_ETLS;
    }
    *out = sc;
    return 0;
}

/* Wrap a connected socket (owned) and run the TLS handshake. */
static int handshake(struct mig_ctx *ctx, SSL_CTX *sc, int fd, const char *host, bool server,
                     unsigned timeout_ms, const char *peer, struct mig__conn **c_out)
{
    struct tls_conn *c = calloc(1, sizeof(*c));
    int rc;
    if (!c) {
        close(fd);
        return -MIG_ENOMEM;
    }
    c->fd.rfd = c->fd.wfd = -1;
    c->fd.wake[0] = c->fd.wake[1] = -1;
    rc = mig__fd_conn_init(&c->fd, ctx, fd, fd, MIG_AUTH_TLS, peer);
    c->fd.base.ops = &tls_ops;
    c->fd.base.encrypted = true;
    if (rc)
        goto out;
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->wbuf = malloc(TLS_WBUF);
    c->ssl = SSL_new(sc);
    if (!c->wbuf || !c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
        rc = c->ssl ? tls_fail(ctx, "TLS setup with", peer) : -MIG_ENOMEM;
        goto out;
    }
    if (!server && host) {
        unsigned char ip[16];
        bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1
                  : (SSL_set1_host(c->ssl, host) != 1 ||
                     SSL_set_tlsext_host_name(c->ssl, host) != 1)) {
            rc = tls_fail(ctx, "TLS name check setup for", peer);
            goto out;
        }
    }
    uint64_t deadline = mig__now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        struct nosig ns;
        nosig_begin(&ns);
        int r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
        nosig_end(&ns);
        if (r == 1)
            break;
        int err = SSL_get_error(c->ssl, r);
        uint64_t now = mig__now_ns();
        if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && now < deadline) {
            rc = mig__fd_conn_wait(&c->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                                   (int)((deadline - now) / 1000000ull) + 1);
            if (rc)
                goto out;
            continue;
        }
        long vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK)
            MIG_LOG(ctx, ERROR, "TLS peer %s: certificate rejected: %s", peer,
                    X509_verify_cert_error_string(vr));
        if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            MIG_LOG(ctx, ERROR,
                    "TLS handshake with %s: peer closed the connection (our certificate "
                    "refused?)",
                    peer);
            rc = -MIG_ETLS;
        } else {
            rc = tls_fail(ctx, "TLS handshake with", peer);
        }
        if (now >= deadline)
            rc = -MIG_ETIMEOUT;
        goto out;
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    X509 *pc = SSL_get1_peer_certificate(c->ssl);
    if (pc) {
        char subj[256];
        X509_NAME_oneline(X509_get_subject_name(pc), subj, sizeof(subj));
        MIG_LOG(ctx, DEBUG, "TLS 1.3 with %s, peer certificate %s", peer, subj);
        X509_free(pc);
    }
    *c_out = &c->fd.base;
    return 0;
out:
    tls_close(&c->fd.base);
    return rc;
}

static unsigned tmo(const struct mig__link_opts *o)
{
    return o->timeout_ms ? o->timeout_ms : MIG_DEFAULT_TIMEOUT_MS;
}

static int tls_connect(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                       struct mig__conn **c_out)
{
    char host[256], port[16], peer[64];
    SSL_CTX *sc = NULL;
    int fd = -1;
    int rc = mig__tr_split_hostport(arg, host, sizeof(host), port, sizeof(port));
    if (rc)
        return rc;
    rc = make_ctx(ctx, opts, false, &sc);
    if (rc)
        return rc;
    rc = mig__tr_tcp_connect_fd(ctx, arg, tmo(opts), &fd);
    if (!rc) {
        snprintf(peer, sizeof(peer), "tls:%.59s", arg);
        rc = handshake(ctx, sc, fd, host, false, tmo(opts), peer, c_out);
    }
    SSL_CTX_free(sc); /* SSL objects hold their own reference */
    return rc;
}

struct tls_listen {
    struct mig__listen base;
    int fd;
    SSL_CTX *sc;
    unsigned timeout_ms;
};

static int tls_listen(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                      struct mig__listen **l_out)
{
    struct tls_listen *l = calloc(1, sizeof(*l));
    int rc;
    if (!l)
        return -MIG_ENOMEM;
    l->fd = -1;
    l->timeout_ms = tmo(opts);
    rc = make_ctx(ctx, opts, true, &l->sc);
    if (!rc)
        rc = mig__tr_tcp_listen_fd(ctx, arg, &l->fd);
    if (rc) {
        SSL_CTX_free(l->sc);
        free(l);
        return rc;
    }
    *l_out = &l->base;
    return 0;
}

/* Tell a plaintext migrate-live client, in its own framing, why it is refused. */
static void refuse_plaintext(struct mig_ctx *ctx, int fd, const char *peer)
{
    struct mig__conn *c = NULL;
    struct mig__stream *s = NULL;
    int dfd = dup(fd);
    if (dfd < 0 || mig__conn_fd_new(ctx, dfd, dfd, MIG_AUTH_NONE, peer, &c))
        return;
    if (mig__stream_new(ctx, c, 2000, &s))
        return;
    (void)mig__hs_refuse(s, MIG_ETLS,
                         "this listener requires tls: (a plaintext client connected to a TLS "
                         "port)");
    mig__stream_free(s);
}

static int tls_accept(struct mig__listen *base, int timeout_ms, struct mig__conn **c_out)
{
    struct tls_listen *l = (struct tls_listen *)base;
    char peer[64];
    int fd = -1;
    unsigned char first = 0;
    int rc = mig__tr_accept_fd(l->fd, timeout_ms, peer, sizeof(peer), &fd);
    if (rc)
        return rc;
    mig__tr_sockopts(fd, l->timeout_ms);
    rc = mig__tr_poll(fd, POLLIN, (int)l->timeout_ms);
    if (!rc && recv(fd, &first, 1, MSG_PEEK) != 1)
        rc = -MIG_EPEER;
    if (!rc && first != 0x16) {
        MIG_LOG(base->ctx, ERROR,
                "plaintext client %s on a tls: listener refused (first byte 0x%02x, not a TLS "
                "handshake)",
                peer, first);
        if (first == 0x89)
            refuse_plaintext(base->ctx, fd, peer);
        rc = -MIG_ETLS;
    }
    if (rc) {
        close(fd);
        return rc;
    }
    return handshake(base->ctx, l->sc, fd, NULL, true, l->timeout_ms, peer, c_out);
}

static void tls_listen_close(struct mig__listen *base)
{
    struct tls_listen *l = (struct tls_listen *)base;
    close(l->fd);
    SSL_CTX_free(l->sc);
    free(l);
}

const struct mig__tr_class mig__tr_tls = {
    .prefix = "tls",
    .max_channels = 64,
    .connect = tls_connect,
    .listen = tls_listen,
    .accept = tls_accept,
    .listen_close = tls_listen_close,
};
