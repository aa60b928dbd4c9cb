/*
 * link.c: a session = one control channel + N data channels, each a stream
 * over a connection of the URI's class. The client connects and joins its
 * data channels with the session's one-time secret; the server accepts the
 * control channel, then only data channels that prove that secret (strays
 * are closed and logged, and the server keeps waiting for the rightful ones
 * until the timeout).
 *
 * Entry points: mig__link_connect, mig__listener_open, mig__link_accept,
 * mig__link_from_fds, mig__listener_close, mig__link_shutdown,
 * mig__link_close (stream.h).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define MIG_LOG_MODULE "link"
#include "../stream/stream-internal.h"
#include "transport-provider.h"

#define PSK_MIN 16
#define PSK_MAX 1024

struct mig__listener {
    struct mig_ctx *ctx;            /* borrowed */
    const struct mig__tr_class *cls;
    struct mig__listen *tl;         /* owned */
    struct mig__link_opts opts;     /* copy; strings borrowed from the caller */
    uint8_t psk[PSK_MAX];
    size_t psk_len;
    struct mig_ratelimit rl;        /* refused connections */
};

static unsigned timeout_of(const struct mig__link_opts *o)
{
    return o->timeout_ms ? o->timeout_ms : MIG_DEFAULT_TIMEOUT_MS;
}

/* The key is the file's bytes minus one trailing newline; never logged. */
static int load_psk(struct mig_ctx *ctx, const char *path, uint8_t *key, size_t *len_out)
{
    uint8_t buf[PSK_MAX + 2];
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        MIG_LOG(ctx, ERROR, "pre-shared key file %s: %s", path, strerror(e));
        return mig__from_errno(e);
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        MIG_LOG(ctx, WARN, "pre-shared key file %s is readable by group or others (mode %03o)",
                path, (unsigned)(st.st_mode & 0777));
    while (n < sizeof(buf)) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n && buf[n - 1] == '\n')
        n--;
    if (n < PSK_MIN || n > PSK_MAX) {
        MIG_LOG(ctx, ERROR, "pre-shared key file %s: key must be %d to %d bytes", path, PSK_MIN,
                PSK_MAX);
        OPENSSL_cleanse(buf, sizeof(buf));
        return -MIG_EINVAL;
    }
    memcpy(key, buf, n);
    OPENSSL_cleanse(buf, sizeof(buf));
    *len_out = n;
    return 0;
}

static int link_new(unsigned n, struct mig__link **link_out)
{
    struct mig__link *l = calloc(1, sizeof(*l));
    if (!l)
        return -MIG_ENOMEM;
    l->data = calloc(n, sizeof(*l->data));
    if (!l->data) {
        free(l);
        return -MIG_ENOMEM;
    }
    l->nchannels = n;
    *link_out = l;
    return 0;
}

void mig__link_shutdown(struct mig__link *link)
{
    if (!link)
        return;
    mig__stream_shutdown(link->ctrl);
    for (unsigned i = 0; i < link->nchannels && link->data; i++)
        if (link->data[i] && link->data[i] != link->ctrl)
            mig__stream_shutdown(link->data[i]);
}

void mig__link_close(struct mig__link *link)
{
    if (!link)
        return;
    for (unsigned i = 0; i < link->nchannels && link->data; i++)
        if (link->data[i] != link->ctrl)
            mig__stream_free(link->data[i]);
    mig__stream_free(link->ctrl);
    free(link->data);
    free(link);
}

static void hs_init(struct mig__hs *hs, struct mig_ctx *ctx, enum mig__auth auth,
                    const struct mig__link_opts *o, unsigned channels)
{
    memset(hs, 0, sizeof(*hs));
    hs->ctx = ctx;
    hs->auth = auth;
    hs->caps = o->caps;
    hs->page_size = MIG_PAGE_SIZE;
    hs->channels = channels;
}

static void fill_link(struct mig__link *l, const struct mig__hs *hs)
{
    l->caps = hs->neg_caps;
    memcpy(l->session_id, hs->session_id, 16);
    snprintf(l->peer_version, sizeof(l->peer_version), "%s", hs->peer_version);
}

int mig__link_connect(struct mig_ctx *ctx, const char *uri, const struct mig__link_opts *opts,
                      struct mig__link **link_out)
{
    const struct mig__tr_class *cls;
    const char *arg;
    struct mig__link *link = NULL;
    struct mig__conn *conn = NULL;
    struct mig__stream *ctrl = NULL;
    struct mig__hs hs;
    uint8_t psk[PSK_MAX];
    size_t psk_len = 0;
    unsigned want = opts->channels ? opts->channels : 1;
    int rc;

    *link_out = NULL;
    memset(&hs, 0, sizeof(hs));
    rc = mig__tr_lookup(uri, &cls, &arg);
    if (rc) {
        MIG_LOG(ctx, ERROR, "'%s': unknown transport (tcp:, tls:, ssh:, unix:)", uri);
        return rc;
    }
    if (want > cls->max_channels) {
        MIG_LOG(ctx, ERROR, "%s: carries at most %u data channel%s, %u asked%s", cls->prefix,
                cls->max_channels, cls->max_channels == 1 ? "" : "s", want,
                cls->max_channels == 1 ? "; use tls: for parallel channels" : "");
        return -MIG_EINVAL;
    }
    if (opts->psk_file && (rc = load_psk(ctx, opts->psk_file, psk, &psk_len)))
        return rc;
    rc = cls->connect(ctx, arg, opts, &conn);
    if (rc)
        goto out;
    hs_init(&hs, ctx, conn->auth, opts, want);
    hs.psk = psk;
    hs.psk_len = psk_len;
    rc = mig__stream_new(ctx, conn, timeout_of(opts), &ctrl);
    conn = NULL;
    if (rc)
        goto out;
    rc = mig__hs_client_control(&hs, ctrl);
    if (rc)
        goto out;
    bool single = cls->max_channels == 1;
    rc = link_new(single ? 1 : hs.neg_channels, &link);
    if (rc)
        goto out;
    link->ctrl = ctrl;
    ctrl = NULL;
    fill_link(link, &hs);
    if (single) {
        link->data[0] = link->ctrl;
        link->data_on_ctrl = true;
    }
    for (unsigned i = 0; !single && i < link->nchannels; i++) {
        rc = cls->connect(ctx, arg, opts, &conn);
        if (rc)
            goto out;
        rc = mig__stream_new(ctx, conn, timeout_of(opts), &link->data[i]);
        conn = NULL;
        if (rc)
            goto out;
        rc = mig__hs_client_data(&hs, link->data[i], i);
        if (rc)
            goto out;
    }
    MIG_LOG(ctx, INFO, "connected to %s: %u data channel%s, caps 0x%x, peer migrate-live %s", uri,
            link->nchannels, link->nchannels == 1 ? "" : "s", link->caps, link->peer_version);
    *link_out = link;
    link = NULL;
out:
    mig__link_close(link);
    mig__stream_free(ctrl);
    mig__conn_free(conn);
    mig__hs_dispose(&hs);
    OPENSSL_cleanse(psk, sizeof(psk));
    return rc;
}

int mig__listener_open(struct mig_ctx *ctx, const char *uri, const struct mig__link_opts *opts,
                       struct mig__listener **l_out)
{
    struct mig__listener *l = NULL;
    const char *arg;
    int rc;

    *l_out = NULL;
    l = calloc(1, sizeof(*l));
    if (!l)
        return -MIG_ENOMEM;
    l->ctx = ctx;
    l->opts = *opts;
    mig__ratelimit_init(&l->rl, 1000, 5);
    rc = mig__tr_lookup(uri, &l->cls, &arg);
    if (rc) {
        MIG_LOG(ctx, ERROR, "'%s': unknown transport (tcp:, tls:, unix:)", uri);
        goto out;
    }
    if (opts->psk_file && (rc = load_psk(ctx, opts->psk_file, l->psk, &l->psk_len)))
        goto out;
    rc = l->cls->listen(ctx, arg, opts, &l->tl);
    if (rc)
        goto out;
    l->tl->cls = l->cls;
    l->tl->ctx = ctx;
    *l_out = l;
    l = NULL;
out:
    mig__listener_close(l);
    return rc;
}

void mig__listener_close(struct mig__listener *l)
{
    if (!l)
        return;
    if (l->tl)
        l->cls->listen_close(l->tl);
    OPENSSL_cleanse(l->psk, sizeof(l->psk));
    free(l);
}

/* Free a refused channel gently: closing a socket with the peer's bytes
 * unread sends a RST that can destroy our ERROR before the peer reads it, so
 * drain what the peer still sends until it closes (at most 200 ms). */
static void refuse_free(struct mig__stream *s)
{
    if (!s)
        return;
    struct mig__conn *c = mig__stream_conn(s);
    uint8_t sink[4096];
    size_t n;
    uint64_t end = mig__now_ns() + 200000000ull;
    for (int i = 0; i < 64 && mig__now_ns() < end; i++) {
        int rc = c->ops->read(c, sink, sizeof(sink), 50, &n);
        if (rc && rc != -MIG_ETIMEOUT)
            break; /* the peer closed: nothing left to reset */
    }
    mig__stream_free(s);
}

static int remaining_ms(uint64_t deadline_ns)
{
    uint64_t now = mig__now_ns();
    return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

/* Server side of a control channel on 'conn' (owned). */
static int serve_control(struct mig_ctx *ctx, struct mig__conn *conn,
                         const struct mig__link_opts *opts, const uint8_t *psk, size_t psk_len,
                         unsigned max_channels, struct mig__hs *hs, struct mig__stream **s_out)
{
    struct mig__stream *s = NULL;
    uint8_t nc[32], ns[32];
    uint32_t kind;
    int rc = mig__stream_new(ctx, conn, timeout_of(opts), &s);
    if (rc)
        return rc;
    hs_init(hs, ctx, mig__stream_conn(s)->auth, opts, max_channels);
    hs->psk = psk;
    hs->psk_len = psk_len;
    rc = mig__hs_server_hello(hs, s, &kind, nc, ns);
    if (!rc && kind != MIG_CHAN_CONTROL) {
        mig__hs_send_error(s, MIG_EPROTO, "no session is waiting for data channels");
        rc = -MIG_EPROTO;
    }
    if (!rc)
        rc = mig__hs_server_control(hs, s, nc, ns);
    if (rc) {
        refuse_free(s);
        return rc;
    }
    *s_out = s;
    return 0;
}

int mig__link_accept(struct mig__listener *l, int timeout_ms, struct mig__link **link_out)
{
    struct mig__conn *conn = NULL;
    struct mig__stream *ctrl = NULL, *s = NULL;
    struct mig__link *link = NULL;
    struct mig__hs hs;
    bool *taken = NULL;
    uint64_t deadline = mig__now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ull;
    int rc;

    *link_out = NULL;
    memset(&hs, 0, sizeof(hs));
    rc = l->cls->accept(l->tl, timeout_ms, &conn);
    if (rc)
        goto out;
    unsigned maxch = l->opts.channels ? l->opts.channels : l->cls->max_channels;
    if (maxch > l->cls->max_channels)
        maxch = l->cls->max_channels;
    rc = serve_control(l->ctx, conn, &l->opts, l->psk, l->psk_len, maxch, &hs, &ctrl);
    conn = NULL;
    if (rc)
        goto out;
    rc = link_new(hs.neg_channels, &link);
    taken = calloc(hs.neg_channels, sizeof(*taken));
    if (rc || !taken) {
        rc = rc ? rc : -MIG_ENOMEM;
        goto out;
    }
    link->ctrl = ctrl;
    ctrl = NULL;
    fill_link(link, &hs);
    /* The data channels get the whole session timeout from here, not the
     * remainder of the caller's accept wait. */
    deadline = mig__now_ns() + (uint64_t)timeout_of(&l->opts) * 1000000ull;
    unsigned joined = 0;
    while (joined < link->nchannels) {
        uint8_t nc[32], ns[32];
        uint32_t kind;
        unsigned idx;
        int left = remaining_ms(deadline);
        if (!left) {
            MIG_LOG(l->ctx, ERROR, "only %u of %u data channels joined in time", joined,
                    link->nchannels);
            rc = -MIG_ETIMEOUT;
            goto out;
        }
        rc = l->cls->accept(l->tl, left, &conn);
        if (rc == -MIG_ETIMEOUT)
            continue;
        if (rc) {
            /* A stray that failed the transport's own checks (plaintext on
             * tls:, closed at once, bad certificate) must not end the session
             * being assembled; a broken listener ends it at the deadline. */
            MIG_LOG_RL(l->ctx, &l->rl, WARN, "while data channels join: %s", mig_strerror(rc));
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        rc = mig__stream_new(l->ctx, conn, timeout_of(&l->opts), &s);
        conn = NULL;
        if (rc)
            goto out;
        rc = mig__hs_server_hello(&hs, s, &kind, nc, ns);
        if (!rc && kind != MIG_CHAN_DATA) {
            mig__hs_send_error(s, MIG_EBUSY, "a session is being set up; try again later");
            rc = -MIG_EBUSY;
        }
        if (!rc)
            rc = mig__hs_server_data(&hs, s, nc, ns, taken, &idx);
        if (rc) {
            MIG_LOG_RL(l->ctx, &l->rl, WARN, "refused a channel from %s: %s",
                       mig__stream_conn(s)->peer, mig_strerror(rc));
            refuse_free(s);
            s = NULL;
            continue;
        }
        taken[idx] = true;
        link->data[idx] = s;
        s = NULL;
        joined++;
    }
    MIG_LOG(l->ctx, INFO, "session accepted: %u data channel%s, caps 0x%x, peer migrate-live %s",
            link->nchannels, link->nchannels == 1 ? "" : "s", link->caps, link->peer_version);
    *link_out = link;
    link = NULL;
    rc = 0;
out:
    free(taken);
    mig__stream_free(s);
    mig__link_close(link);
    mig__stream_free(ctrl);
    mig__conn_free(conn);
    mig__hs_dispose(&hs);
    return rc;
}

int mig__link_from_fds(struct mig_ctx *ctx, int rfd, int wfd, const struct mig__link_opts *opts,
                       struct mig__link **link_out)
{
    struct mig__conn *conn = NULL;
    struct mig__stream *ctrl = NULL;
    struct mig__link *link = NULL;
    struct mig__hs hs;
    int rc;

    *link_out = NULL;
    memset(&hs, 0, sizeof(hs));
    rc = mig__conn_fd_new(ctx, rfd, wfd, MIG_AUTH_PIPE, "pipe", &conn);
    if (rc)
        return rc;
    rc = serve_control(ctx, conn, opts, NULL, 0, 1, &hs, &ctrl);
    if (rc)
        goto out;
    rc = link_new(1, &link);
    if (rc)
        goto out;
    link->ctrl = ctrl;
    ctrl = NULL;
    link->data[0] = link->ctrl;
    link->data_on_ctrl = true;
    fill_link(link, &hs);
    *link_out = link;
    link = NULL;
out:
    mig__link_close(link);
    mig__stream_free(ctrl);
    mig__hs_dispose(&hs);
    return rc;
}
