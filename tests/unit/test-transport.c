/* Integration tests for links and transports (link.c, tcp.c, tls.c, ssh.c,
 * fd.c, handshake.c) over real sockets on 127.0.0.1 and unix sockets only.
 * TLS material is generated per run by tests/tls/gen-certs.sh. */
#include <config.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define MIG_LOG_MODULE "test"
#include "../../libmig/src/stream/stream-internal.h"
#include "../../libmig/src/transport/transport-provider.h"

static char tmpdir[256];
static char pki_good[300], pki_evil[300], psk_file[300], psk_other[300];

struct logbuf {
    pthread_mutex_t lock;
    char text[65536];
};
static struct logbuf logs = {PTHREAD_MUTEX_INITIALIZER, ""};

static void capture(void *opaque, enum mig_log_level level, const char *module, const char *msg)
{
    struct logbuf *lb = opaque;
    pthread_mutex_lock(&lb->lock);
    size_t n = strlen(lb->text);
    if (n + strlen(msg) + 2 > sizeof(lb->text))
        n = 0; /* wrap: tests look at recent messages */
    snprintf(lb->text + n, sizeof(lb->text) - n, "%s\n", msg);
    pthread_mutex_unlock(&lb->lock);
    if (getenv("MIG_TEST_VERBOSE"))
        fprintf(stderr, "[%s] %s\n", module, msg);
}

static bool logged(const char *needle)
{
    pthread_mutex_lock(&logs.lock);
    bool r = strstr(logs.text, needle) != NULL;
    pthread_mutex_unlock(&logs.lock);
    return r;
}

static void logs_clear(void)
{
    pthread_mutex_lock(&logs.lock);
    logs.text[0] = '\0';
    pthread_mutex_unlock(&logs.lock);
}

static struct mig_ctx *new_ctx(void)
{
    struct mig_ctx *ctx;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, capture, &logs);
    mig_ctx_set_log_level(ctx, MIG_LOG_DEBUG);
    return ctx;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int group_setup(void **state)
{
    char cmd[1024];
    const char *src = getenv("top_srcdir") ? getenv("top_srcdir") : "..";
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mig-tr-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(cmd, sizeof(cmd), "sh '%s/tests/tls/gen-certs.sh' '%s' >/dev/null", src, tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "gen-certs.sh failed (openssl CLI missing?)\n");
        return -1;
    }
    snprintf(pki_good, sizeof(pki_good), "%s/good", tmpdir);
    snprintf(pki_evil, sizeof(pki_evil), "%s/evil", tmpdir);
    snprintf(psk_file, sizeof(psk_file), "%s/psk", tmpdir);
    snprintf(psk_other, sizeof(psk_other), "%s/psk2", tmpdir);
    write_file(psk_file, "correct horse battery staple 0123456789\n");
    write_file(psk_other, "an entirely different key 9876543210\n");
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- a server in a thread ------------------------------------------------ */

struct server {
    struct mig_ctx *ctx;
    struct mig__listener *l;
    struct mig__link *link;
    int rc;
    int idle_ms;                /* after accept: stay silent this long */
    bool echo;                  /* receive pages, check, answer READY */
    unsigned pages_ok;
    unsigned nch;               /* what the accepted link had */
    uint32_t caps;
    uint8_t session_id[16];
    pthread_t tid;
};

static void fill_page(uint8_t *p, unsigned i)
{
    char tmp[48];
    snprintf(tmp, sizeof(tmp), "MIGRATE-LIVE-SECRET-PAGE-%05u||", i % 100000);
    for (unsigned o = 0; o < MIG_PAGE_SIZE; o += 32)
        memcpy(p + o, tmp, 32);
}

static void *server_main(void *arg)
{
    struct server *sv = arg;
    sv->rc = mig__link_accept(sv->l, 5000, &sv->link);
    if (sv->rc)
        return NULL;
    sv->nch = sv->link->nchannels;
    sv->caps = sv->link->caps;
    memcpy(sv->session_id, sv->link->session_id, 16);
    if (sv->idle_ms) {
        usleep((useconds_t)sv->idle_ms * 1000);
        return NULL;
    }
    if (!sv->echo)
        return NULL;
    uint8_t want[MIG_PAGE_SIZE];
    for (unsigned c = 0; c < sv->link->nchannels; c++) {
        struct mig__rec r;
        struct mig__rec_pages pg;
        if ((sv->rc = mig__stream_get(sv->link->data[c], &r)) ||
            (sv->rc = mig__rec_get_pages(&r, &pg))) {
            mig__link_shutdown(sv->link); /* abort the session: the client hears at once */
            return NULL;
        }
        for (unsigned i = 0; i < pg.count; i++) {
            fill_page(want, (unsigned)pg.pfns[i]);
            if (!memcmp(want, pg.data + (size_t)i * MIG_PAGE_SIZE, MIG_PAGE_SIZE))
                sv->pages_ok++;
        }
    }
    mig__rec_put_empty(sv->link->ctrl, MIG_REC_READY);
    sv->rc = mig__stream_flush(sv->link->ctrl);
    return NULL;
}

static void server_start(struct server *sv, const char *uri, const struct mig__link_opts *o)
{
    sv->ctx = new_ctx();
    assert_int_equal(mig__listener_open(sv->ctx, uri, o, &sv->l), 0);
    assert_int_equal(pthread_create(&sv->tid, NULL, server_main, sv), 0);
}

static void server_stop(struct server *sv)
{
    pthread_join(sv->tid, NULL);
    mig__link_close(sv->link);
    mig__listener_close(sv->l);
    mig_ctx_free(sv->ctx);
}

/* Send 'per' known pages on every data channel, expect READY back. */
static void send_pages_expect_ready(struct mig__link *link, unsigned per)
{
    uint8_t *mem = malloc((size_t)per * MIG_PAGE_SIZE);
    uint64_t pfns[64];
    const void *pages[64];
    assert_true(per <= 64);
    for (unsigned c = 0; c < link->nchannels; c++) {
        for (unsigned i = 0; i < per; i++) {
            pfns[i] = c * 1000 + i;
            pages[i] = mem + (size_t)i * MIG_PAGE_SIZE;
            fill_page(mem + (size_t)i * MIG_PAGE_SIZE, (unsigned)pfns[i]);
        }
        mig__rec_put_pages(link->data[c], 1, per, pfns, pages);
        assert_int_equal(mig__stream_flush(link->data[c]), 0);
    }
    struct mig__rec r;
    assert_int_equal(mig__stream_get(link->ctrl, &r), 0);
    assert_int_equal(r.type, MIG_REC_READY);
    free(mem);
}

static void roundtrip(const char *uri, struct mig__link_opts *so, struct mig__link_opts *co,
                      unsigned expect_channels)
{
    struct server sv = {.echo = true};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    server_start(&sv, uri, so);
    assert_int_equal(mig__link_connect(ctx, uri, co, &link), 0);
    assert_int_equal(link->nchannels, expect_channels);
    send_pages_expect_ready(link, 16);
    server_stop(&sv);
    assert_int_equal(sv.rc, 0);
    assert_int_equal(sv.pages_ok, 16 * expect_channels);
    assert_memory_equal(link->session_id, sv.session_id, 16);
    assert_string_equal(link->peer_version, PACKAGE_VERSION);
    mig__link_close(link);
    mig_ctx_free(ctx);
}

/* ---- tcp ------------------------------------------------------------------ */

static void tcp_psk_two_channels(void **state)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", free_port());
    struct mig__link_opts so = {.channels = 8, .timeout_ms = 3000, .psk_file = psk_file,
                                .caps = MIG_CAP_ZSTD};
    struct mig__link_opts co = {.channels = 2, .timeout_ms = 3000, .psk_file = psk_file,
                                .caps = MIG_CAP_ZSTD | MIG_CAP_BLOCK};
    struct server sv = {.echo = true};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    server_start(&sv, uri, &so);
    assert_int_equal(mig__link_connect(ctx, uri, &co, &link), 0);
    assert_int_equal(link->nchannels, 2);
    assert_int_equal(link->caps, MIG_CAP_ZSTD); /* the intersection */
    assert_false(link->data_on_ctrl);
    send_pages_expect_ready(link, 32);
    server_stop(&sv);
    assert_int_equal(sv.rc, 0);
    assert_int_equal(sv.pages_ok, 64);
    assert_int_equal(sv.caps, MIG_CAP_ZSTD);
    assert_memory_equal(sv.session_id, link->session_id, 16);
    mig__link_close(link);
    mig_ctx_free(ctx);
}

static void tcp_without_key_refused(void **state)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", free_port());
    struct mig__link_opts so = {.timeout_ms = 2000, .psk_file = psk_file};
    struct mig__link_opts co = {.channels = 1, .timeout_ms = 2000, .insecure = true};
    struct server sv = {0};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    server_start(&sv, uri, &so);
    assert_int_equal(mig__link_connect(ctx, uri, &co, &link), -MIG_EAUTH);
    assert_null(link);
    assert_true(logged("requires pre-shared key"));
    server_stop(&sv);
    assert_int_not_equal(sv.rc, 0);
    assert_int_equal(sv.nch, 0);
    mig_ctx_free(ctx);
}

static void tcp_wrong_key_refused(void **state)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", free_port());
    struct mig__link_opts so = {.timeout_ms = 2000, .psk_file = psk_file};
    struct mig__link_opts co = {.channels = 1, .timeout_ms = 2000, .psk_file = psk_other};
    struct server sv = {0};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    server_start(&sv, uri, &so);
    assert_int_equal(mig__link_connect(ctx, uri, &co, &link), -MIG_EAUTH);
    assert_true(logged("failed to prove the pre-shared key"));
    server_stop(&sv);
    assert_int_not_equal(sv.rc, 0);
    assert_int_equal(sv.nch, 0);
    mig_ctx_free(ctx);
}

static void tcp_needs_key_or_insecure(void **state)
{
    struct mig_ctx *ctx = new_ctx();
    struct mig__listener *l = NULL;
    struct mig__link *link = NULL;
    struct mig__link_opts o = {.timeout_ms = 1000};
    char uri[64];
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", free_port());
    assert_int_equal(mig__listener_open(ctx, uri, &o, &l), -MIG_EAUTH);
    assert_int_equal(mig__link_connect(ctx, uri, &o, &link), -MIG_EAUTH);
    assert_true(logged("refusing an unauthenticated channel"));
    o.insecure = true;
    assert_int_equal(mig__listener_open(ctx, uri, &o, &l), 0);
    assert_true(logged("INSECURE"));
    mig__listener_close(l);
    mig_ctx_free(ctx);
}

/* Insecure mode works (and says so loudly) over IPv6 loopback; the URI
 * parser takes bracketed addresses and refuses malformed ones. */
static void tcp_ipv6_insecure(void **state)
{
    char h[64], p[16], uri[64];
    assert_int_equal(mig__tr_split_hostport("[::1]:4711", h, sizeof(h), p, sizeof(p)), 0);
    assert_string_equal(h, "::1");
    assert_string_equal(p, "4711");
    assert_int_equal(mig__tr_split_hostport("127.0.0.1:80", h, sizeof(h), p, sizeof(p)), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(mig__tr_split_hostport("host", h, sizeof(h), p, sizeof(p)), -MIG_EINVAL);
    assert_int_equal(mig__tr_split_hostport("host:", h, sizeof(h), p, sizeof(p)), -MIG_EINVAL);
    assert_int_equal(mig__tr_split_hostport("host:8x", h, sizeof(h), p, sizeof(p)), -MIG_EINVAL);
    assert_int_equal(mig__tr_split_hostport("[::1]80", h, sizeof(h), p, sizeof(p)), -MIG_EINVAL);
    assert_int_equal(mig__tr_split_hostport(":80", h, sizeof(h), p, sizeof(p)), -MIG_EINVAL);
    snprintf(uri, sizeof(uri), "tcp:[::1]:%d", free_port());
    struct mig__link_opts o = {.channels = 2, .timeout_ms = 3000, .insecure = true};
    roundtrip(uri, &o, &o, 2);
    assert_true(logged("WITHOUT AUTHENTICATION"));
}

/* A data connection that cannot prove the session secret cannot join; the
 * rightful one still can afterwards. */
static void data_channel_wrong_secret(void **state)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", free_port());
    struct mig__link_opts so = {.channels = 1, .timeout_ms = 3000, .psk_file = psk_file};
    struct mig__link_opts co = {.channels = 1, .timeout_ms = 3000, .psk_file = psk_file};
    struct server sv = {0};
    struct mig_ctx *ctx = new_ctx();
    const struct mig__tr_class *cls;
    const char *arg;
    struct mig__conn *c;
    struct mig__stream *ctrl, *bad, *good;
    struct mig__hs hs = {.ctx = ctx, .auth = MIG_AUTH_PSK, .page_size = 4096, .channels = 1};
    hs.psk = (const uint8_t *)"correct horse battery staple 0123456789";
    hs.psk_len = strlen((const char *)hs.psk);
    server_start(&sv, uri, &so);
    assert_int_equal(mig__tr_lookup(uri, &cls, &arg), 0);
    assert_int_equal(cls->connect(ctx, arg, &co, &c), 0);
    assert_int_equal(mig__stream_new(ctx, c, 3000, &ctrl), 0);
    assert_int_equal(mig__hs_client_control(&hs, ctrl), 0);

    hs.secret[5] ^= 1;
    assert_int_equal(cls->connect(ctx, arg, &co, &c), 0);
    assert_int_equal(mig__stream_new(ctx, c, 3000, &bad), 0);
    assert_int_equal(mig__hs_client_data(&hs, bad, 0), -MIG_EAUTH);
    assert_true(logged("data channel join refused"));
    mig__stream_free(bad);
    /* Right secret, wrong session id: refused too. */
    hs.secret[5] ^= 1;
    hs.session_id[0] ^= 1;
    assert_int_equal(cls->connect(ctx, arg, &co, &c), 0);
    assert_int_equal(mig__stream_new(ctx, c, 3000, &bad), 0);
    assert_int_equal(mig__hs_client_data(&hs, bad, 0), -MIG_EAUTH);
    mig__stream_free(bad);
    hs.session_id[0] ^= 1;

    assert_int_equal(cls->connect(ctx, arg, &co, &c), 0);
    assert_int_equal(mig__stream_new(ctx, c, 3000, &good), 0);
    assert_int_equal(mig__hs_client_data(&hs, good, 0), 0);
    server_stop(&sv);
    assert_int_equal(sv.rc, 0);
    assert_int_equal(sv.nch, 1);
    mig__stream_free(good);
    mig__stream_free(ctrl);
    mig__hs_dispose(&hs);
    mig_ctx_free(ctx);
}

static int raw_connect(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* While a tls: session's data channels join, strays (connect and close,
 * plaintext bytes) are refused without ending the session. */
static void tls_strays_during_join(void **state)
{
    int port = free_port();
    char uri[64];
    snprintf(uri, sizeof(uri), "tls:127.0.0.1:%d", port);
    struct mig__link_opts o = {.channels = 1, .timeout_ms = 3000, .pki_dir = pki_good};
    struct server sv = {0};
    struct mig_ctx *ctx = new_ctx();
    const struct mig__tr_class *cls;
    const char *arg;
    struct mig__conn *c;
    struct mig__stream *ctrl, *data;
    struct mig__hs hs = {.ctx = ctx, .auth = MIG_AUTH_TLS, .page_size = 4096, .channels = 1};
    server_start(&sv, uri, &o);
    assert_int_equal(mig__tr_lookup(uri, &cls, &arg), 0);
    assert_int_equal(cls->connect(ctx, arg, &o, &c), 0);
    assert_int_equal(mig__stream_new(ctx, c, 3000, &ctrl), 0);
    assert_int_equal(mig__hs_client_control(&hs, ctrl), 0);
    close(raw_connect(port));
    int fd = raw_connect(port);
    assert_int_equal(write(fd, "\x89MIG\r\n\x1a\nplaintext!", 18), 18);
    usleep(200 * 1000);
    close(fd);
    assert_int_equal(cls->connect(ctx, arg, &o, &c), 0);
    assert_int_equal(mig__stream_new(ctx, c, 3000, &data), 0);
    assert_int_equal(mig__hs_client_data(&hs, data, 0), 0);
    server_stop(&sv);
    assert_int_equal(sv.rc, 0);
    assert_int_equal(sv.nch, 1);
    assert_true(logged("plaintext client"));
    mig__stream_free(data);
    mig__stream_free(ctrl);
    mig__hs_dispose(&hs);
    mig_ctx_free(ctx);
}

/* Large socket reads wait for all their bytes in one wake-up (SO_RCVLOWAT):
 * bytes sent in pieces with pauses still arrive whole and at once after the
 * last piece; a small read after it is not held by the mark; a timeout
 * hands over what came below the mark (slow links make progress); nothing
 * at all is still a timeout. */
struct pieces {
    int fd;
    const uint8_t *data;
};

static void *send_pieces(void *arg)
{
    struct pieces *p = arg;
    size_t cut[] = {0, 1000, 100000, 100001, 256u << 10};
    for (int i = 0; i + 1 < 5; i++) {
        usleep(30 * 1000);
        assert_int_equal(send(p->fd, p->data + cut[i], cut[i + 1] - cut[i], 0),
                         (ssize_t)(cut[i + 1] - cut[i]));
    }
    return NULL;
}

static void tcp_large_reads(void **state)
{
    (void)state;
    struct mig_ctx *ctx = new_ctx();
    int l = socket(AF_INET, SOCK_STREAM, 0), w = socket(AF_INET, SOCK_STREAM, 0), r;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    assert_int_equal(connect(w, (struct sockaddr *)&a, sizeof(a)), 0);
    r = accept(l, NULL, NULL);
    assert_true(r >= 0);
    struct mig__conn *c = NULL;
    assert_int_equal(mig__conn_fd_new(ctx, r, r, MIG_AUTH_NONE, "test", &c), 0);
    const size_t big = 256u << 10;
    uint8_t *data = malloc(big), *got = calloc(1, big);
    assert_non_null(data);
    assert_non_null(got);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 7 + i / 4096);

    /* four pieces 30 ms apart: whole, in far less than the timeout */
    struct pieces p = {w, data};
    pthread_t t;
    uint64_t t0 = mig__now_ns();
    assert_int_equal(pthread_create(&t, NULL, send_pieces, &p), 0);
    size_t have = 0, n, reads = 0;
    while (have < big) {
        assert_int_equal(c->ops->read(c, got + have, big - have, 5000, &n), 0);
        have += n;
        reads++;
    }
    pthread_join(t, NULL);
    assert_true(mig__now_ns() - t0 < 2000000000ull);
    assert_memory_equal(got, data, big);
    print_message("256 KiB in 4 pieces: %zu reads\n", reads);

    /* a small read right after: 16 bytes come at once */
    assert_int_equal(send(w, data, 16, 0), 16);
    t0 = mig__now_ns();
    assert_int_equal(c->ops->read(c, got, 64, 5000, &n), 0);
    assert_int_equal(n, 16);
    assert_true(mig__now_ns() - t0 < 1000000000ull);

    /* below the mark until the timeout: what came is returned */
    assert_int_equal(send(w, data, 100000, 0), 100000);
    t0 = mig__now_ns();
    have = 0;
    while (have < 100000) {
        assert_int_equal(c->ops->read(c, got + have, big, 300, &n), 0);
        have += n;
    }
    assert_memory_equal(got, data, 100000);
    assert_true(mig__now_ns() - t0 < 2000000000ull);

    /* nothing: a timeout */
    assert_int_equal(c->ops->read(c, got, big, 200, &n), -MIG_ETIMEOUT);
    mig__conn_free(c);
    close(w);
    close(l);
    free(data);
    free(got);
    mig_ctx_free(ctx);
}

static void silent_peer_detected(void **state)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", free_port());
    struct mig__link_opts so = {.timeout_ms = 800, .psk_file = psk_file, .channels = 1};
    struct mig__link_opts co = {.timeout_ms = 800, .psk_file = psk_file, .channels = 1};
    struct server sv = {.idle_ms = 2500};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    struct mig__rec r;
    server_start(&sv, uri, &so);
    assert_int_equal(mig__link_connect(ctx, uri, &co, &link), 0);
    uint64_t t0 = mig__now_ns();
    assert_int_equal(mig__stream_get(link->ctrl, &r), -MIG_ETIMEOUT);
    uint64_t ms = (mig__now_ns() - t0) / 1000000;
    assert_true(ms >= 750 && ms < 2000);
    server_stop(&sv);
    mig__link_close(link);
    mig_ctx_free(ctx);
}

struct blocked {
    struct mig__stream *s;
    int rc;
};
static void *blocked_get(void *arg)
{
    struct blocked *b = arg;
    struct mig__rec r;
    b->rc = mig__stream_get(b->s, &r);
    return NULL;
}

static void shutdown_wakes_reader(void **state)
{
    char uri[300];
    snprintf(uri, sizeof(uri), "unix:%s/sock-shut", tmpdir);
    struct mig__link_opts o = {.timeout_ms = 10000, .channels = 1};
    struct server sv = {.idle_ms = 1500};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    server_start(&sv, uri, &o);
    assert_int_equal(mig__link_connect(ctx, uri, &o, &link), 0);
    struct blocked b = {link->data[0], 0};
    pthread_t t;
    uint64_t t0 = mig__now_ns();
    assert_int_equal(pthread_create(&t, NULL, blocked_get, &b), 0);
    usleep(100 * 1000);
    mig__link_shutdown(link);
    pthread_join(t, NULL);
    assert_true(b.rc < 0);
    assert_true(mig__now_ns() - t0 < 1000000000ull);
    server_stop(&sv);
    mig__link_close(link);
    mig_ctx_free(ctx);
}

/* ---- unix, fd pair, ssh ---------------------------------------------------- */

static void unix_two_channels(void **state)
{
    char uri[300];
    snprintf(uri, sizeof(uri), "unix:%s/sock", tmpdir);
    struct mig__link_opts o = {.channels = 2, .timeout_ms = 3000};
    roundtrip(uri, &o, &o, 2);
}

struct fdserver {
    struct mig_ctx *ctx;
    int fd;
    int rc;
};
static void *fd_server(void *arg)
{
    struct fdserver *f = arg;
    struct mig__link_opts o = {.timeout_ms = 3000};
    struct mig__link *link = NULL;
    struct mig__rec r;
    f->rc = mig__link_from_fds(f->ctx, f->fd, f->fd, &o, &link);
    if (!f->rc)
        f->rc = mig__stream_get(link->data[0], &r);
    if (!f->rc && r.type != MIG_REC_PAGES)
        f->rc = -MIG_EPROTO;
    if (!f->rc) {
        mig__rec_put_empty(link->ctrl, MIG_REC_READY);
        f->rc = mig__stream_flush(link->ctrl);
    }
    mig__link_close(link);
    return NULL;
}

static void fd_pair_link(void **state)
{
    int sv[2];
    char uri[64];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct fdserver f = {new_ctx(), sv[1], 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fd_server, &f), 0);
    snprintf(uri, sizeof(uri), "fd:%d,%d", sv[0], sv[0]);
    struct mig__link_opts o = {.channels = 1, .timeout_ms = 3000};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    assert_int_equal(mig__link_connect(ctx, uri, &o, &link), 0);
    assert_true(link->data_on_ctrl);
    assert_ptr_equal(link->data[0], link->ctrl);
    send_pages_expect_ready(link, 4);
    pthread_join(t, NULL);
    assert_int_equal(f.rc, 0);
    mig__link_close(link);
    mig_ctx_free(ctx);
    mig_ctx_free(f.ctx);
}

/* ssh: with ssh_command pointing at this program in --fake-ssh mode, which
 * records its argv and serves the link on stdin/stdout as sshd + receive would. */
static int fake_ssh(int argc, char **argv)
{
    const char *out = getenv("MIG_TEST_ARGV_FILE");
    FILE *f = out ? fopen(out, "w") : NULL;
    for (int i = 2; f && i < argc; i++)
        fprintf(f, "%s%s", i > 2 ? "|" : "", argv[i]);
    if (f)
        fclose(f);
    struct fdserver fs = {NULL, 0, 0};
    assert_int_equal(mig_ctx_new(&fs.ctx), 0);
    mig_ctx_set_logger(fs.ctx, NULL, NULL);
    struct mig__link_opts o = {.timeout_ms = 3000};
    struct mig__link *link = NULL;
    struct mig__rec r;
    int rc = mig__link_from_fds(fs.ctx, 0, 1, &o, &link);
    if (!rc)
        rc = mig__stream_get(link->data[0], &r);
    if (!rc) {
        mig__rec_put_empty(link->ctrl, MIG_REC_READY);
        rc = mig__stream_flush(link->ctrl);
    }
    mig__link_close(link);
    mig_ctx_free(fs.ctx);
    return rc ? 1 : 0;
}

static void ssh_spawns_argv(void **state)
{
    char cmd[512], argvf[300], self[256];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(cmd, sizeof(cmd), "%s --fake-ssh", self);
    snprintf(argvf, sizeof(argvf), "%s/argv", tmpdir);
    setenv("MIG_TEST_ARGV_FILE", argvf, 1);
    struct mig__link_opts o = {.channels = 1, .timeout_ms = 3000, .ssh_command = cmd,
                               .remote_args = "--domain web01 --json"};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    assert_int_equal(mig__link_connect(ctx, "ssh:dest.example", &o, &link), 0);
    assert_true(link->data_on_ctrl);
    send_pages_expect_ready(link, 8);
    mig__link_close(link); /* reaps the child */
    char got[512] = "";
    FILE *f = fopen(argvf, "r");
    assert_non_null(f);
    assert_non_null(fgets(got, sizeof(got), f));
    fclose(f);
    assert_string_equal(got, "dest.example|xl-migrate-live|receive|--domain|web01|--json");
    mig_ctx_free(ctx);
}

static void ssh_refuses_channels_and_options(void **state)
{
    struct mig__link_opts o = {.channels = 2, .timeout_ms = 1000};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    assert_int_equal(mig__link_connect(ctx, "ssh:host", &o, &link), -MIG_EINVAL);
    assert_true(logged("use tls: for parallel channels"));
    o.channels = 1;
    assert_int_equal(mig__link_connect(ctx, "ssh:-oProxyCommand=evil", &o, &link), -MIG_EINVAL);
    /* An ssh that fails at once: the link fails and says how ssh ended. */
    o.ssh_command = "false";
    assert_int_equal(mig__link_connect(ctx, "ssh:host", &o, &link), -MIG_EPEER);
    assert_true(logged("the ssh command exited with status 1"));
    assert_int_equal(mig__link_connect(ctx, "carrier-pigeon:x", &o, &link), -MIG_ENOTSUP);
    mig_ctx_free(ctx);
}

/* ---- tls ------------------------------------------------------------------ */

static void tls_two_channels(void **state)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "tls:127.0.0.1:%d", free_port());
    struct mig__link_opts o = {.channels = 2, .timeout_ms = 3000, .pki_dir = pki_good};
    roundtrip(uri, &o, &o, 2);
    snprintf(uri, sizeof(uri), "tls:localhost:%d", free_port());
    roundtrip(uri, &o, &o, 2); /* by name: the DNS SAN is checked */
}

static void tls_other_ca_refused(void **state)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "tls:127.0.0.1:%d", free_port());
    struct mig__link_opts so = {.channels = 1, .timeout_ms = 2000, .pki_dir = pki_good};
    struct mig__link_opts co = {.channels = 1, .timeout_ms = 2000, .pki_dir = pki_evil};
    struct server sv = {0};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    server_start(&sv, uri, &so);
    assert_int_not_equal(mig__link_connect(ctx, uri, &co, &link), 0);
    assert_null(link);
    server_stop(&sv);
    assert_int_equal(sv.rc, -MIG_ETLS);
    assert_int_equal(sv.nch, 0);
    assert_true(logged("certificate rejected") || logged("certificate verify failed"));
    mig_ctx_free(ctx);
}

static void tls_wrong_host_refused(void **state)
{
    /* The server's certificate (a good CA's) names only other.example. */
    char uri[64], pki_wrong[300];
    snprintf(uri, sizeof(uri), "tls:127.0.0.1:%d", free_port());
    snprintf(pki_wrong, sizeof(pki_wrong), "%s/wronghost", tmpdir);
    struct mig__link_opts so = {.channels = 1, .timeout_ms = 2000, .pki_dir = pki_wrong};
    struct mig__link_opts co = {.channels = 1, .timeout_ms = 2000, .pki_dir = pki_good};
    struct server sv = {0};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    server_start(&sv, uri, &so);
    assert_int_equal(mig__link_connect(ctx, uri, &co, &link), -MIG_ETLS);
    assert_true(logged("IP address mismatch"));
    server_stop(&sv);
    assert_int_not_equal(sv.rc, 0);
    mig_ctx_free(ctx);
}

static void tls_plaintext_client_refused(void **state)
{
    char uri[64], curi[64];
    int port = free_port();
    snprintf(uri, sizeof(uri), "tls:127.0.0.1:%d", port);
    snprintf(curi, sizeof(curi), "tcp:127.0.0.1:%d", port);
    struct mig__link_opts so = {.channels = 1, .timeout_ms = 2000, .pki_dir = pki_good};
    struct mig__link_opts co = {.channels = 1, .timeout_ms = 2000, .insecure = true};
    struct server sv = {0};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    server_start(&sv, uri, &so);
    assert_int_equal(mig__link_connect(ctx, curi, &co, &link), -MIG_ETLS);
    assert_true(logged("this listener requires tls:"));
    server_stop(&sv);
    assert_int_equal(sv.rc, -MIG_ETLS);
    assert_true(logged("plaintext client"));
    mig_ctx_free(ctx);
}

/* A relay between client and server that records the client's bytes. */
struct relay {
    int lfd;
    int target_port;
    unsigned conns;
    pthread_mutex_t lock;
    int flip_conn;              /* >= 0: flip one bit of this connection's client bytes */
    size_t flip_at;             /* at this offset */
    size_t seen[8];
    uint8_t *cap;
    size_t caplen, capcap;
    pthread_t tid;
};

static void *relay_main(void *arg)
{
    struct relay *rl = arg;
    struct pollfd p[2 * 8];
    int cfd[8], sfd[8];
    unsigned n = 0;
    for (; n < rl->conns; n++) {
        struct pollfd lp = {rl->lfd, POLLIN, 0};
        if (poll(&lp, 1, 5000) <= 0)
            break;
        cfd[n] = accept(rl->lfd, NULL, NULL);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)rl->target_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        sfd[n] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(sfd[n], (struct sockaddr *)&a, sizeof(a)))
            return NULL;
        /* Forward what already arrived before accepting the next one. */
        for (int spin = 0; spin < 1; spin++)
            ;
        (void)p;
        /* Pump this connection pair until the next one shows up (the client
         * opens channels one after another, each waiting for its handshake). */
        for (;;) {
            struct pollfd q[2 * 8 + 1];
            unsigned k = 0;
            for (unsigned i = 0; i <= n; i++) {
                q[k++] = (struct pollfd){cfd[i], POLLIN, 0};
                q[k++] = (struct pollfd){sfd[i], POLLIN, 0};
            }
            q[k] = (struct pollfd){rl->lfd, POLLIN, 0};
            bool last = n + 1 == rl->conns;
            int r = poll(q, k + (last ? 0 : 1), 5000);
            if (r <= 0)
                goto done;
            if (!last && q[k].revents)
                break;
            bool closed = false;
            for (unsigned i = 0; i < k; i++) {
                if (!q[i].revents)
                    continue;
                uint8_t buf[65536];
                ssize_t got = read(q[i].fd, buf, sizeof(buf));
                if (got <= 0) {
                    closed = true;
                    continue;
                }
                int to = (i & 1) ? cfd[i / 2] : sfd[i / 2];
                if (!(i & 1) && (int)(i / 2) == rl->flip_conn && rl->flip_at >= rl->seen[i / 2] &&
                    rl->flip_at < rl->seen[i / 2] + (size_t)got)
                    buf[rl->flip_at - rl->seen[i / 2]] ^= 0x20; /* corruption in transit */
                if (!(i & 1))
                    rl->seen[i / 2] += (size_t)got;
                if (!(i & 1)) {
                    pthread_mutex_lock(&rl->lock);
                    if (rl->caplen + (size_t)got > rl->capcap) {
                        rl->capcap = (rl->caplen + (size_t)got) * 2;
                        rl->cap = realloc(rl->cap, rl->capcap);
                    }
                    memcpy(rl->cap + rl->caplen, buf, (size_t)got);
                    rl->caplen += (size_t)got;
                    pthread_mutex_unlock(&rl->lock);
                }
                if (write(to, buf, (size_t)got) != got)
                    closed = true;
            }
            if (closed && last)
                goto done;
        }
    }
done:
    for (unsigned i = 0; i < n && i < rl->conns; i++) {
        close(cfd[i]);
        close(sfd[i]);
    }
    return NULL;
}

static void relay_start(struct relay *rl, int target_port, unsigned conns, int *port_out)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    memset(rl, 0, sizeof(*rl));
    rl->flip_conn = -1;
    pthread_mutex_init(&rl->lock, NULL);
    rl->target_port = target_port;
    rl->conns = conns;
    rl->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(rl->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(rl->lfd, 8), 0);
    assert_int_equal(getsockname(rl->lfd, (struct sockaddr *)&a, &l), 0);
    *port_out = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&rl->tid, NULL, relay_main, rl), 0);
}

static bool capture_has(struct relay *rl, const char *needle)
{
    return memmem(rl->cap, rl->caplen, needle, strlen(needle)) != NULL;
}

/* Send known pages through a recording relay: over tls: (both data channels)
 * they must not appear in the clear; over tcp: they do (proves the capture). */
static void capture_transfer(const char *scheme, struct mig__link_opts *o, struct relay *rl)
{
    char suri[64], curi[64];
    int sport = free_port(), rport;
    snprintf(suri, sizeof(suri), "%s:127.0.0.1:%d", scheme, sport);
    struct server sv = {.echo = true};
    server_start(&sv, suri, o);
    relay_start(rl, sport, 1 + o->channels, &rport);
    snprintf(curi, sizeof(curi), "%s:127.0.0.1:%d", scheme, rport);
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    assert_int_equal(mig__link_connect(ctx, curi, o, &link), 0);
    assert_int_equal(link->nchannels, o->channels);
    send_pages_expect_ready(link, 32);
    server_stop(&sv);
    assert_int_equal(sv.rc, 0);
    assert_int_equal(sv.pages_ok, 32 * o->channels);
    mig__link_close(link);
    pthread_join(rl->tid, NULL);
    close(rl->lfd);
    mig_ctx_free(ctx);
    assert_true(rl->caplen > (size_t)32 * o->channels * MIG_PAGE_SIZE);
}

static void tls_data_channels_encrypted(void **state)
{
    struct relay rl;
    struct mig__link_opts t = {.channels = 2, .timeout_ms = 3000, .pki_dir = pki_good};
    capture_transfer("tls", &t, &rl);
    assert_false(capture_has(&rl, "MIGRATE-LIVE-SECRET-PAGE"));
    free(rl.cap);

    struct mig__link_opts p = {.channels = 2, .timeout_ms = 3000, .psk_file = psk_file};
    capture_transfer("tcp", &p, &rl);
    assert_true(capture_has(&rl, "MIGRATE-LIVE-SECRET-PAGE-01031")); /* data channel 1 */
    free(rl.cap);
}

/* One batch of 16 zero pages (pfns 0..15) on data channel 0, flushed. */
static int send_zero_batch(struct mig__link *link)
{
    uint8_t *mem = calloc(16, MIG_PAGE_SIZE);
    uint64_t pfns[16];
    const void *pages[16];
    for (unsigned i = 0; i < 16; i++) {
        pfns[i] = i;
        pages[i] = mem + (size_t)i * MIG_PAGE_SIZE;
    }
    mig__rec_put_pages(link->data[0], 1, 16, pfns, pages);
    int rc = mig__stream_flush(link->data[0]);
    free(mem);
    return rc;
}

/* One flipped bit in the data channel of a SCHEME session at byte 'at': the
 * receiver fails with want_rc, logs want_log, and the session ends at once
 * (the client's control channel sees it close, no waiting for a timeout). */
static void flipped_byte_case(const char *scheme, const struct mig__link_opts *o, size_t at,
                              int want_rc, const char *want_log)
{
    struct relay rl;
    char suri[64], curi[64];
    int sport = free_port(), rport;
    snprintf(suri, sizeof(suri), "%s:127.0.0.1:%d", scheme, sport);
    struct server sv = {.echo = true};
    server_start(&sv, suri, o);
    relay_start(&rl, sport, 2, &rport);
    rl.flip_conn = 1; /* the data channel */
    rl.flip_at = at;
    snprintf(curi, sizeof(curi), "%s:127.0.0.1:%d", scheme, rport);
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    logs_clear();
    assert_int_equal(mig__link_connect(ctx, curi, o, &link), 0);
    assert_int_equal(send_zero_batch(link), 0);
    struct mig__rec r;
    uint64_t t0 = mig__now_ns();
    int rc = mig__stream_get(link->ctrl, &r);
    assert_true(rc == -MIG_EPEER || rc == -MIG_ECANCELLED);
    assert_true(mig__now_ns() - t0 < 2000000000ull);
    server_stop(&sv);
    assert_int_equal(sv.rc, want_rc);
    assert_true(logged(want_log));
    mig__link_close(link);
    pthread_join(rl.tid, NULL);
    close(rl.lfd);
    free(rl.cap);
    mig_ctx_free(ctx);
}

/* tcp: the CRC32C catches it; at 20000 bytes: past the channel's handshake,
 * inside the first page batch. */
static void tcp_flipped_byte_aborts(void **state)
{
    struct mig__link_opts o = {.channels = 1, .timeout_ms = 3000, .psk_file = psk_file};
    flipped_byte_case("tcp", &o, 20000, -MIG_ECRC, "CRC32C mismatch");
}

/* tls: the record fails authentication; at 40000 bytes: past the TLS
 * handshake (~3 KiB) and the join, inside the first page batch. */
static void tls_flipped_byte_aborts(void **state)
{
    struct mig__link_opts o = {.channels = 1, .timeout_ms = 3000, .pki_dir = pki_good};
    flipped_byte_case("tls", &o, 40000, -MIG_ETLS,
                      "failed authentication: corrupted or forged in transit");
}

/* Connect and send a page batch, ignoring failures: used where the peers'
 * keys diverge, so the session may end in the handshake or at the pages. */
static void rc_connect_then_send(struct mig_ctx *ctx, const char *uri,
                                 const struct mig__link_opts *o, struct mig__link **link)
{
    if (mig__link_connect(ctx, uri, o, link) != 0)
        return;
    (void)send_zero_batch(*link);
    struct mig__rec r;
    (void)mig__stream_get((*link)->ctrl, &r);
}

/* Our records are used when both sides offer them, OpenSSL's when either
 * side asks for those; new keys every record (a rekey limit of 1 byte) keep
 * both sides in step. */
static void tls_record_layers(void **state)
{
    char uri[64];
    struct mig__link_opts own = {.channels = 2, .timeout_ms = 3000, .pki_dir = pki_good};
    struct mig__link_opts ossl = own, rekey = own;
    ossl.tls_openssl_records = true;
    rekey.tls_rekey_bytes = 1;

    logs_clear();
    snprintf(uri, sizeof(uri), "tls:127.0.0.1:%d", free_port());
    roundtrip(uri, &own, &own, 2);
    assert_true(logged("migrate-live records"));
    assert_false(logged("OpenSSL records"));

    const struct mig__link_opts *pairs[][2] = {{&own, &ossl}, {&ossl, &own}, {&ossl, &ossl}};
    for (unsigned i = 0; i < 3; i++) {
        logs_clear();
        snprintf(uri, sizeof(uri), "tls:127.0.0.1:%d", free_port());
        roundtrip(uri, (struct mig__link_opts *)pairs[i][0], (struct mig__link_opts *)pairs[i][1],
                  2);
        assert_true(logged("OpenSSL records"));
        assert_false(logged("migrate-live records"));
    }

    logs_clear();
    snprintf(uri, sizeof(uri), "tls:127.0.0.1:%d", free_port());
    roundtrip(uri, &rekey, &rekey, 2);
    assert_true(logged("migrate-live records"));

    /* ...and the new keys are really used: a receiver that keeps its first
     * key (the default limit) cannot open the client's second record. */
    logs_clear();
    snprintf(uri, sizeof(uri), "tls:127.0.0.1:%d", free_port());
    struct server sv = {.echo = true};
    struct mig__link *link = NULL;
    struct mig_ctx *ctx = new_ctx();
    server_start(&sv, uri, &own);
    rc_connect_then_send(ctx, uri, &rekey, &link);
    server_stop(&sv);
    assert_int_equal(sv.rc, -MIG_ETLS);
    assert_true(logged("failed authentication"));
    mig__link_close(link);
    mig_ctx_free(ctx);
}

/* Every class fills every member, and its prefix finds it. */
static void class_table_complete(void **state)
{
    const struct mig__tr_class *c, *found;
    const char *arg;
    char uri[32];
    unsigned n = 0;
    for (unsigned i = 0; (c = mig__tr_class_at(i)) != NULL; i++, n++) {
        assert_non_null(c->prefix);
        assert_true(c->max_channels >= 1);
        assert_non_null(c->connect);
        assert_non_null(c->listen);
        assert_non_null(c->accept);
        assert_non_null(c->listen_close);
        snprintf(uri, sizeof(uri), "%s:x", c->prefix);
        assert_int_equal(mig__tr_lookup(uri, &found, &arg), 0);
        assert_ptr_equal(found, c);
        assert_string_equal(arg, "x");
    }
    assert_int_equal(n, 5); /* tcp tls ssh unix fd */
    assert_int_equal(mig__tr_lookup("tcpx:1", &found, &arg), -MIG_ENOTSUP);
    assert_int_equal(mig__tr_lookup("nocolon", &found, &arg), -MIG_EINVAL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--fake-ssh"))
        return fake_ssh(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(class_table_complete),
        cmocka_unit_test(tcp_psk_two_channels),
        cmocka_unit_test(tcp_without_key_refused),
        cmocka_unit_test(tcp_wrong_key_refused),
        cmocka_unit_test(tcp_needs_key_or_insecure),
        cmocka_unit_test(tcp_ipv6_insecure),
        cmocka_unit_test(data_channel_wrong_secret),
        cmocka_unit_test(tcp_flipped_byte_aborts),
        cmocka_unit_test(tcp_large_reads),
        cmocka_unit_test(silent_peer_detected),
        cmocka_unit_test(shutdown_wakes_reader),
        cmocka_unit_test(unix_two_channels),
        cmocka_unit_test(fd_pair_link),
        cmocka_unit_test(ssh_spawns_argv),
        cmocka_unit_test(ssh_refuses_channels_and_options),
        cmocka_unit_test(tls_two_channels),
        cmocka_unit_test(tls_other_ca_refused),
        cmocka_unit_test(tls_wrong_host_refused),
        cmocka_unit_test(tls_plaintext_client_refused),
        cmocka_unit_test(tls_strays_during_join),
        cmocka_unit_test(tls_data_channels_encrypted),
        cmocka_unit_test(tls_record_layers),
        cmocka_unit_test(tls_flipped_byte_aborts),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
