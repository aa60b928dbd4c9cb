/*
 * Unit tests for qmp.c: the JSON reader on its own, then the client against
 * a fake QEMU, a thread on a unix socket speaking QMP's real wire format
 * (greeting, qmp_capabilities, "id"-tagged replies, error objects,
 * asynchronous events, CRLF-ended messages). The fake also misbehaves: it
 * never answers, sends garbage, oversized or deeply nested messages, a
 * reply to another id, or hangs up, and each must fail within the
 * connection's timeout with a clear error.
 */
#include <config.h>

#include <inttypes.h>
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
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "qmp.h"

#define GREETING                                                                                  \
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "            \
    "\"package\": \"Debian 1:7.2+dfsg-7\"}, \"capabilities\": [\"oob\"]}}\r\n"

static char logs[65536];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void capture(void *opaque, enum mig_log_level level, const char *module, const char *msg)
{
    pthread_mutex_lock(&log_lock);
    size_t n = strlen(logs);
    if (n + strlen(msg) + 2 > sizeof(logs))
        n = 0;
    snprintf(logs + n, sizeof(logs) - n, "%s\n", msg);
    pthread_mutex_unlock(&log_lock);
    if (getenv("MIG_TEST_VERBOSE"))
        fprintf(stderr, "[%s] %s\n", module, msg);
}

static bool logged(const char *needle)
{
    pthread_mutex_lock(&log_lock);
    bool r = strstr(logs, needle) != NULL;
    pthread_mutex_unlock(&log_lock);
    return r;
}

static struct mig_ctx *new_ctx(void)
{
    struct mig_ctx *ctx;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, capture, NULL);
    mig_ctx_set_log_level(ctx, MIG_LOG_DEBUG);
    pthread_mutex_lock(&log_lock);
    logs[0] = 0;
    pthread_mutex_unlock(&log_lock);
    return ctx;
}

static uint64_t now_ms(void)
{
    return mig__now_ns() / 1000000u;
}

/* ---- JSON reader -------------------------------------------------------- */

static struct mig__qmp_json *parse_ok(const char *text)
{
    struct mig__qmp_json *v = NULL;
    char err[128];
    int rc = mig__qmp_json_parse(text, strlen(text), &v, err, sizeof(err));
    if (rc != 0)
        fail_msg("'%s' should parse: %s", text, err);
    return v;
}

static void parse_bad(const char *text, int want)
{
    struct mig__qmp_json *v = NULL;
    char err[128] = "";
    int rc = mig__qmp_json_parse(text, strlen(text), &v, err, sizeof(err));
    if (rc != want)
        fail_msg("'%s': got %d (%s), want %d", text, rc, err, want);
    assert_null(v);
    assert_true(err[0] != 0); /* a reason is given */
}

static void test_json_values(void **state)
{
    struct mig__qmp_json *v = parse_ok(
        " {\"a\": [1, -2.5e3, true, false, null], \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\","
        " \"u\": \"\\u00e9\\ud83d\\ude00\", \"raw\": \"\xc3\xa9\", \"big\": -9223372036854775808,"
        " \"e\": {}, \"ea\": []}\r\n");
    assert_int_equal(v->type, MIG_QMP_J_OBJ);
    const struct mig__qmp_json *a = mig__qmp_json_get(v, "a");
    assert_int_equal(a->type, MIG_QMP_J_ARR);
    assert_int_equal(a->n, 5);
    int64_t i;
    assert_int_equal(mig__qmp_json_int(a->items[0], &i), 0);
    assert_int_equal(i, 1);
    assert_int_equal(mig__qmp_json_int(a->items[1], &i), -MIG_EINVAL); /* not an integer */
    assert_string_equal(a->items[1]->s, "-2.5e3");
    assert_true(a->items[2]->type == MIG_QMP_J_BOOL && a->items[2]->b);
    assert_true(a->items[3]->type == MIG_QMP_J_BOOL && !a->items[3]->b);
    assert_int_equal(a->items[4]->type, MIG_QMP_J_NULL);
    assert_string_equal(mig__qmp_json_str(mig__qmp_json_get(v, "s")), "q\"\\/\b\f\n\r\t");
    /* U+00E9 and U+1F600 (a surrogate pair) as UTF-8 */
    assert_string_equal(mig__qmp_json_str(mig__qmp_json_get(v, "u")),
                        "\xc3\xa9\xf0\x9f\x98\x80");
    assert_string_equal(mig__qmp_json_str(mig__qmp_json_get(v, "raw")), "\xc3\xa9");
    assert_int_equal(mig__qmp_json_int(mig__qmp_json_get(v, "big"), &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(mig__qmp_json_get(v, "e")->n, 0);
    assert_int_equal(mig__qmp_json_get(v, "ea")->type, MIG_QMP_J_ARR);
    assert_null(mig__qmp_json_get(v, "missing"));
    assert_null(mig__qmp_json_str(a));
    mig__qmp_json_free(v);
    mig__qmp_json_free(NULL);
}

static void test_json_rejects(void **state)
{
    const char *bad[] = {
        "",
        "{",
        "{\"a\":1,}",                 /* trailing comma */
        "[1,]",
        "{'a':1}",                    /* single quotes */
        "{\"a\" 1}",
        "{a:1}",
        "01",                         /* leading zero */
        "1.",
        "-",
        "1e",
        "NaN",
        "Infinity",
        "tru",
        "nul",
        "\"abc",                      /* unterminated */
        "\"a\tb\"",                   /* raw control character */
        "\"\\x41\"",                  /* unknown escape */
        "\"\\u12\"",
        "\"\\ud800\"",                /* lone high surrogate */
        "\"\\udc00\"",                /* lone low surrogate */
        "\"\\ud800\\u0041\"",         /* high surrogate + not a low one */
        "\"\\u0000\"",                /* NUL inside a C string */
        "\"\xc3\"",                   /* truncated UTF-8 */
        "\"\xc0\xaf\"",               /* overlong '/' */
        "\"\xed\xa0\x80\"",           /* an encoded surrogate */
        "\"\xf4\x90\x80\x80\"",       /* above U+10FFFF */
        "\"\xff\"",
        "{} {}",                      /* two values */
        "{}x",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        parse_bad(bad[k], -MIG_EPARSE);
    /* Caps: nesting, number length, node count, total size. */
    char deep[200];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = 0;
    parse_bad(deep, -MIG_ETOOBIG);
    char num[100];
    memset(num, '1', sizeof(num) - 1);
    num[sizeof(num) - 1] = 0;
    parse_bad(num, -MIG_ETOOBIG);
    size_t n = 2 * MIG_QMP_MAX_NODES + 8;
    char *many = malloc(2 * n + 4);
    assert_non_null(many);
    size_t l = 0;
    many[l++] = '[';
    for (size_t k = 0; k < MIG_QMP_MAX_NODES + 1; k++) {
        many[l++] = '0';
        many[l++] = ',';
    }
    many[l++] = '0';
    many[l++] = ']';
    many[l] = 0;
    parse_bad(many, -MIG_ETOOBIG);
    free(many);
    size_t big = MIG_QMP_MAX_MSG + 10;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '1';
    huge[big] = 0;
    parse_bad(huge, -MIG_ETOOBIG);
    free(huge);
}

static void test_args_escaping(void **state)
{
    struct mig__qmp_args a;
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "filename", "/tmp/a\"b\\c\nd\x01");
    mig__qmp_args_bool(&a, "live", false);
    mig__qmp_args_int(&a, "fdset-id", -7);
    assert_false(a.overflow);
    assert_string_equal(a.buf,
                        "\"filename\":\"/tmp/a\\\"b\\\\c\\u000ad\\u0001\",\"live\":false,"
                        "\"fdset-id\":-7");
    /* and it reads back as the same value */
    char obj[sizeof(a.buf) + 2];
    snprintf(obj, sizeof(obj), "{%s}", a.buf);
    struct mig__qmp_json *v = parse_ok(obj);
    assert_string_equal(mig__qmp_json_str(mig__qmp_json_get(v, "filename")), "/tmp/a\"b\\c\nd\x01");
    mig__qmp_json_free(v);
    /* overflow is sticky */
    char long_val[MIG_QMP_MAX_ARGS + 10];
    memset(long_val, 'x', sizeof(long_val) - 1);
    long_val[sizeof(long_val) - 1] = 0;
    mig__qmp_args_str(&a, "more", long_val);
    assert_true(a.overflow);
    mig__qmp_args_bool(&a, "x", true);
    assert_true(a.overflow);
}

/* ---- the fake QEMU ------------------------------------------------------ */

struct fake;
typedef void fake_script(struct fake *f);

struct fake {
    char dir[40];
    char path[64];
    int lfd;           /* listening */
    int cfd;           /* the accepted connection */
    pthread_t thread;
    fake_script *script;
    char rbuf[8192];   /* bytes from the client not yet consumed */
    size_t rlen;
    int received_fd;   /* from SCM_RIGHTS, -1 if none */
    char last_cmd[4096];
    int64_t last_id;
    bool done;
};

static void fake_send(struct fake *f, const char *text)
{
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = send(f->cfd, text + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the client went away: the test decides */
        off += (size_t)w;
    }
}

/* Read one command line (our client ends each with CRLF); remembers the
 * text, its "id" and any fd passed with it. false on EOF. */
static bool fake_read_cmd(struct fake *f)
{
    for (;;) {
        char *nl = memchr(f->rbuf, '\n', f->rlen);
        if (nl) {
            size_t len = (size_t)(nl - f->rbuf) + 1;
            size_t copy = len < sizeof(f->last_cmd) ? len : sizeof(f->last_cmd) - 1;
            memcpy(f->last_cmd, f->rbuf, copy);
            f->last_cmd[copy] = 0;
            memmove(f->rbuf, f->rbuf + len, f->rlen - len);
            f->rlen -= len;
            const char *id = strstr(f->last_cmd, "\"id\":");
            f->last_id = id ? strtoll(id + 5, NULL, 10) : -1;
            return true;
        }
        union {
            char b[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct iovec iov = {.iov_base = f->rbuf + f->rlen, .iov_len = sizeof(f->rbuf) - f->rlen};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                            .msg_controllen = sizeof(u.b)};
        ssize_t n = recvmsg(f->cfd, &mh, 0);
        if (n <= 0)
            return false;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                memcpy(&f->received_fd, CMSG_DATA(c), sizeof(int));
        f->rlen += (size_t)n;
    }
}

/* Reply to the last command with a "return" value (JSON text). */
static void fake_return(struct fake *f, const char *value)
{
    char msg[8192];
    snprintf(msg, sizeof(msg), "{\"return\": %s, \"id\": %" PRId64 "}\r\n", value, f->last_id);
    fake_send(f, msg);
}

static void fake_error(struct fake *f, const char *cls, const char *desc)
{
    char msg[8192];
    snprintf(msg, sizeof(msg), "{\"id\": %" PRId64 ", \"error\": {\"class\": \"%s\", \"desc\": \"%s\"}}\r\n",
             f->last_id, cls, desc);
    fake_send(f, msg);
}

static void fake_event(struct fake *f, const char *name)
{
    char msg[512];
    snprintf(msg, sizeof(msg),
             "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 1}, \"event\": \"%s\"}\r\n",
             name);
    fake_send(f, msg);
}

/* Greeting and capabilities negotiation, checking what the client sent. */
static bool fake_handshake(struct fake *f)
{
    fake_send(f, GREETING);
    if (!fake_read_cmd(f))
        return false;
    assert_non_null(strstr(f->last_cmd, "{\"execute\":\"qmp_capabilities\""));
    assert_null(strstr(f->last_cmd, "arguments"));
    fake_return(f, "{}");
    return true;
}

/* Wait until the client hangs up (a server that never answers does this). */
static void fake_wait_eof(struct fake *f)
{
    char b[256];
    while (recv(f->cfd, b, sizeof(b), 0) > 0)
        ;
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    f->cfd = accept(f->lfd, NULL, NULL);
    if (f->cfd >= 0) {
        f->script(f);
        close(f->cfd);
    }
    f->done = true;
    return NULL;
}

static struct fake *fake_start(fake_script *script)
{
    struct fake *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/qmpfake.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/qmp.sock", f->dir);
    f->script = script;
    f->received_fd = -1;
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 1), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(struct fake *f)
{
    pthread_join(f->thread, NULL);
    close(f->lfd);
    if (f->received_fd >= 0)
        close(f->received_fd);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
}

/* ---- the exchange ------------------------------------------------------- */

static void script_normal(struct fake *f)
{
    if (!fake_handshake(f))
        return;
    /* query-status, with events before and around the reply */
    if (!fake_read_cmd(f))
        return;
    assert_non_null(strstr(f->last_cmd, "\"execute\":\"query-status\""));
    fake_event(f, "RESUME");
    fake_event(f, "RTC_CHANGE");
    fake_return(f, "{\"status\": \"running\", \"singlestep\": false, \"running\": true}");
    /* stop: the STOP event arrives first, as QEMU sends it */
    if (!fake_read_cmd(f))
        return;
    assert_non_null(strstr(f->last_cmd, "\"execute\":\"stop\""));
    fake_event(f, "STOP");
    fake_return(f, "{}");
    /* a command with arguments, checked byte for byte */
    if (!fake_read_cmd(f))
        return;
    assert_non_null(strstr(f->last_cmd, "{\"execute\":\"xen-save-devices-state\",\"arguments\":"
                                        "{\"filename\":\"/var/lib/mig/dm \\\"1\\\"\","
                                        "\"live\":false},\"id\":"));
    fake_return(f, "{}");
    /* an unknown command: QEMU's error object */
    if (!fake_read_cmd(f))
        return;
    fake_error(f, "CommandNotFound", "The command nope has not been found");
    /* the connection still works after an error reply */
    if (!fake_read_cmd(f))
        return;
    fake_return(f, "[1, 2, 3]");
}

static void test_exchange(void **state)
{
    struct mig_ctx *ctx = new_ctx();
    struct fake *f = fake_start(script_normal);
    struct mig__qmp *q = NULL;
    struct mig__qmp_json *ret = NULL;

    assert_int_equal(mig__qmp_connect(ctx, f->path, 2000, &q), 0);
    assert_int_equal(mig__qmp_version(q), 7u << 16 | 2u << 8 | 22u);

    assert_int_equal(mig__qmp_execute(q, "query-status", NULL, &ret), 0);
    assert_string_equal(mig__qmp_json_str(mig__qmp_json_get(ret, "status")), "running");
    assert_true(mig__qmp_json_get(ret, "running")->b);
    mig__qmp_json_free(ret);
    assert_int_equal(mig__qmp_events(q), 2);
    assert_string_equal(mig__qmp_last_event(q), "RTC_CHANGE");

    assert_int_equal(mig__qmp_execute(q, "stop", NULL, NULL), 0);
    assert_string_equal(mig__qmp_last_event(q), "STOP");

    struct mig__qmp_args a;
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "filename", "/var/lib/mig/dm \"1\"");
    mig__qmp_args_bool(&a, "live", false);
    assert_int_equal(mig__qmp_execute(q, "xen-save-devices-state", &a, NULL), 0);

    assert_int_equal(mig__qmp_execute(q, "nope", NULL, &ret), -MIG_EBACKEND);
    assert_null(ret);
    assert_string_equal(mig__qmp_last_error_class(q), "CommandNotFound");
    assert_string_equal(mig__qmp_last_error_desc(q), "The command nope has not been found");

    assert_int_equal(mig__qmp_execute(q, "query-something", NULL, &ret), 0);
    assert_int_equal(ret->type, MIG_QMP_J_ARR);
    assert_int_equal(ret->n, 3);
    assert_string_equal(mig__qmp_last_error_class(q), ""); /* cleared */
    mig__qmp_json_free(ret);

    /* a command name that could inject JSON is refused before sending */
    assert_int_equal(mig__qmp_execute(q, "stop\",\"x", NULL, NULL), -MIG_EINVAL);

    mig__qmp_close(q);
    fake_stop(f);
    mig_ctx_free(ctx);
}

/* Replies cut into single bytes, and several messages in one write, with
 * and without line ends: the framing follows the JSON. */
static void script_fragmented(struct fake *f)
{
    const char *g = GREETING;
    for (const char *p = g; *p; p++) {
        char one[2] = {*p, 0};
        fake_send(f, one);
        if ((p - g) % 16 == 0)
            usleep(1000);
    }
    if (!fake_read_cmd(f))
        return;
    char both[512];
    snprintf(both, sizeof(both),
             "{\"event\": \"A\", \"data\": {\"x\": \"}{\\\"\"}}{\"return\": {}, \"id\": %" PRId64 "}",
             f->last_id);
    fake_send(f, both);
    if (!fake_read_cmd(f))
        return;
    fake_return(f, "{\"text\": \"braces } ] inside [ { strings\"}");
}

static void test_fragmented(void **state)
{
    struct mig_ctx *ctx = new_ctx();
    struct fake *f = fake_start(script_fragmented);
    struct mig__qmp *q = NULL;
    struct mig__qmp_json *ret = NULL;
    assert_int_equal(mig__qmp_connect(ctx, f->path, 2000, &q), 0);
    assert_int_equal(mig__qmp_events(q), 1);
    assert_int_equal(mig__qmp_execute(q, "query-x", NULL, &ret), 0);
    assert_string_equal(mig__qmp_json_str(mig__qmp_json_get(ret, "text")),
                        "braces } ] inside [ { strings");
    mig__qmp_json_free(ret);
    mig__qmp_close(q);
    fake_stop(f);
    mig_ctx_free(ctx);
}

/* ---- a QEMU that never answers ------------------------------------------ */

static void script_silent_greeting(struct fake *f)
{
    fake_wait_eof(f);
}

static void script_silent_command(struct fake *f)
{
    if (!fake_handshake(f) || !fake_read_cmd(f))
        return;
    fake_event(f, "KEEPS_TALKING"); /* events do not extend the deadline */
    usleep(100 * 1000);
    fake_event(f, "KEEPS_TALKING");
    fake_wait_eof(f);
}

static void test_never_answers(void **state)
{
    struct mig_ctx *ctx = new_ctx();
    struct mig__qmp *q = NULL;

    struct fake *f = fake_start(script_silent_greeting);
    uint64_t t0 = now_ms();
    assert_int_equal(mig__qmp_connect(ctx, f->path, 300, &q), -MIG_ETIMEOUT);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 290 && took < 2000);
    assert_null(q);
    assert_true(logged("did not answer the greeting within 300 ms"));
    fake_stop(f);

    f = fake_start(script_silent_command);
    assert_int_equal(mig__qmp_connect(ctx, f->path, 300, &q), 0);
    t0 = now_ms();
    assert_int_equal(mig__qmp_execute(q, "xen-save-devices-state", NULL, NULL), -MIG_ETIMEOUT);
    took = now_ms() - t0;
    assert_true(took >= 290 && took < 2000);
    assert_true(logged("did not answer 'xen-save-devices-state' within 300 ms"));
    /* broken for good: a late reply must not answer the next command */
    t0 = now_ms();
    assert_int_equal(mig__qmp_execute(q, "cont", NULL, NULL), -MIG_ETIMEOUT);
    assert_true(now_ms() - t0 < 50);
    mig__qmp_close(q);
    fake_stop(f);
    mig_ctx_free(ctx);
}

/* ---- hostile and broken peers ------------------------------------------- */

static const char *hostile_reply; /* what script_hostile answers with */
static bool hostile_hangup;       /* and then closes the connection */

static void script_hostile(struct fake *f)
{
    if (!fake_handshake(f) || !fake_read_cmd(f))
        return;
    fake_send(f, hostile_reply);
    if (!hostile_hangup)
        fake_wait_eof(f);
}

static void expect_reply_fails(const char *reply, int want, const char *log)
{
    struct mig_ctx *ctx = new_ctx();
    struct mig__qmp *q = NULL;
    hostile_reply = reply;
    struct fake *f = fake_start(script_hostile);
    assert_int_equal(mig__qmp_connect(ctx, f->path, 1000, &q), 0);
    uint64_t t0 = now_ms();
    int rc = mig__qmp_execute(q, "query-status", NULL, NULL);
    if (rc != want)
        fail_msg("reply '%.60s': got %d, want %d", reply, rc, want);
    assert_true(now_ms() - t0 < 1500);
    if (log && !logged(log))
        fail_msg("reply '%.60s': no log line '%s' in:\n%s", reply, log, logs);
    assert_int_equal(mig__qmp_execute(q, "query-status", NULL, NULL), want); /* sticky */
    mig__qmp_close(q);
    fake_stop(f);
    mig_ctx_free(ctx);
}

static void test_hostile_replies(void **state)
{
    expect_reply_fails("hello\r\n", -MIG_EPROTO, "bytes that are not a QMP message");
    expect_reply_fails("[1]\r\n", -MIG_EPROTO, "bytes that are not a QMP message");
    expect_reply_fails("{\"return\": {}, \"id\": 1,}\r\n", -MIG_EPROTO, "malformed JSON");
    expect_reply_fails("{\"return\": \"\xff\", \"id\": 1}\r\n", -MIG_EPROTO, "invalid UTF-8");
    expect_reply_fails("{\"return\": {}, \"id\": 99}\r\n", -MIG_EPROTO, "does not answer");
    expect_reply_fails("{\"return\": {}}\r\n", -MIG_EPROTO, "does not answer");
    expect_reply_fails("{\"something\": 1, \"id\": 1}\r\n", -MIG_EPROTO, "does not answer");
    expect_reply_fails("{\"error\": {\"class\": 5}, \"id\": 1}\r\n", -MIG_EPROTO, NULL);
    hostile_hangup = true;
    expect_reply_fails("{\"return\": {\"a\"", -MIG_EPEER, "closed the connection");
    hostile_hangup = false;
    /* half a reply, then silence: the deadline still holds */
    expect_reply_fails("{\"return\": {\"a\"", -MIG_ETIMEOUT, "did not answer 'query-status'");

    /* Nested deeper than the cap: refused while framing, before parsing. */
    char deep[600];
    size_t n = (size_t)snprintf(deep, sizeof(deep), "{\"return\": ");
    for (int k = 0; k < 100; k++)
        deep[n++] = '[';
    deep[n] = 0;
    expect_reply_fails(deep, -MIG_ETOOBIG, "over the size or depth limit");

    /* An endless string: refused once it passes MIG_QMP_MAX_MSG. */
    size_t big = MIG_QMP_MAX_MSG + 65536;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memcpy(huge, "{\"return\": \"", 12);
    memset(huge + 12, 'A', big - 12);
    huge[big] = 0;
    expect_reply_fails(huge, -MIG_ETOOBIG, "over the size or depth limit");
    free(huge);
}

static void script_bad_greeting(struct fake *f)
{
    fake_send(f, hostile_reply);
    fake_wait_eof(f);
}

static void test_bad_greeting(void **state)
{
    const char *bad[] = {
        "{\"return\": {}}\r\n",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": \"7\", \"minor\": 2, \"micro\": 0}}, "
        "\"capabilities\": []}}\r\n",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}}}}\r\n",
        "SSH-2.0-OpenSSH_9.2\r\n",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        struct mig_ctx *ctx = new_ctx();
        struct mig__qmp *q = NULL;
        hostile_reply = bad[k];
        struct fake *f = fake_start(script_bad_greeting);
        assert_int_equal(mig__qmp_connect(ctx, f->path, 1000, &q), -MIG_EPROTO);
        assert_null(q);
        fake_stop(f);
        mig_ctx_free(ctx);
    }
}

static void script_caps_refused(struct fake *f)
{
    fake_send(f, GREETING);
    if (!fake_read_cmd(f))
        return;
    fake_error(f, "CommandNotFound", "Capabilities negotiation is already complete");
    fake_wait_eof(f);
}

static void test_caps_refused(void **state)
{
    struct mig_ctx *ctx = new_ctx();
    struct mig__qmp *q = NULL;
    struct fake *f = fake_start(script_caps_refused);
    assert_int_equal(mig__qmp_connect(ctx, f->path, 1000, &q), -MIG_EBACKEND);
    assert_true(logged("capabilities negotiation failed: Capabilities negotiation is already"));
    fake_stop(f);
    mig_ctx_free(ctx);
}

static void test_no_socket(void **state)
{
    struct mig_ctx *ctx = new_ctx();
    struct mig__qmp *q = NULL;
    assert_int_equal(mig__qmp_connect(ctx, "/nonexistent/qmp-libxl-7", 100, &q), -MIG_ENOENT);
    assert_true(logged("cannot connect to QEMU's QMP socket /nonexistent/qmp-libxl-7"));
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = 0;
    assert_int_equal(mig__qmp_connect(ctx, longp, 100, &q), -MIG_EINVAL);
    mig_ctx_free(ctx);
}

/* ---- an fd passed with a command (add-fd) ------------------------------- */

static void script_fd(struct fake *f)
{
    if (!fake_handshake(f) || !fake_read_cmd(f))
        return;
    assert_non_null(strstr(f->last_cmd, "\"execute\":\"add-fd\""));
    assert_true(f->received_fd >= 0);
    assert_int_equal(write(f->received_fd, "device state", 12), 12);
    fake_return(f, "{\"fdset-id\": 4, \"fd\": 25}");
}

static void test_fd_passing(void **state)
{
    struct mig_ctx *ctx = new_ctx();
    struct mig__qmp *q = NULL;
    struct mig__qmp_json *ret = NULL;
    char path[] = "/tmp/qmpfd.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    struct fake *f = fake_start(script_fd);
    assert_int_equal(mig__qmp_connect(ctx, f->path, 2000, &q), 0);
    struct mig__qmp_args a;
    mig__qmp_args_init(&a);
    mig__qmp_args_int(&a, "fdset-id", 4);
    assert_int_equal(mig__qmp_execute_fd(q, "add-fd", &a, fd, &ret), 0);
    int64_t id;
    assert_int_equal(mig__qmp_json_int(mig__qmp_json_get(ret, "fdset-id"), &id), 0);
    assert_int_equal(id, 4);
    mig__qmp_json_free(ret);
    char buf[32] = "";
    assert_int_equal(pread(fd, buf, sizeof(buf), 0), 12);
    assert_memory_equal(buf, "device state", 12);
    close(fd);
    mig__qmp_close(q);
    fake_stop(f);
    mig_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_values),
        cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_args_escaping),
        cmocka_unit_test(test_exchange),
        cmocka_unit_test(test_fragmented),
        cmocka_unit_test(test_never_answers),
        cmocka_unit_test(test_hostile_replies),
        cmocka_unit_test(test_bad_greeting),
        cmocka_unit_test(test_caps_refused),
        cmocka_unit_test(test_no_socket),
        cmocka_unit_test(test_fd_passing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
