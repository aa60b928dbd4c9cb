/*
 * qmp.c: the QMP client of qmp.h. Three parts: a strict JSON reader (RFC
 * 8259, capped), a framer that cuts QEMU's byte stream into messages
 * without trusting line breaks, and the synchronous command exchange
 * (greeting, qmp_capabilities, execute with an "id", events skipped, every
 * wait bounded by a deadline). errno is converted here and goes no further.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MIG_LOG_MODULE "qmp"
#include "qmp.h"

/* ==== JSON reader ====================================================== */

struct jp {
    const char *p, *end;
    size_t nodes;
    char *err;
    size_t err_len;
    int rc; /* first failure */
};

static int jp_fail(struct jp *j, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int jp_fail(struct jp *j, int rc, const char *fmt, ...)
{
    if (j->rc)
        return j->rc;
    j->rc = rc;
    if (j->err && j->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->err, j->err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static void jp_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

void mig__qmp_json_free(struct mig__qmp_json *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        if (v->keys)
            free(v->keys[i]);
        if (v->items)
            mig__qmp_json_free(v->items[i]);
    }
    free(v->keys);
    free(v->items);
    free(v->s);
    free(v);
}

static struct mig__qmp_json *jp_node(struct jp *j, enum mig__qmp_jtype t)
{
    if (++j->nodes > MIG_QMP_MAX_NODES) {
        jp_fail(j, -MIG_ETOOBIG, "more than %u values", MIG_QMP_MAX_NODES);
        return NULL;
    }
    struct mig__qmp_json *v = calloc(1, sizeof(*v));
    if (!v) {
        jp_fail(j, -MIG_ENOMEM, "out of memory");
        return NULL;
    }
    v->type = t;
    return v;
}

static bool jp_hex4(struct jp *j, unsigned *out)
{
    unsigned v = 0;
    if (j->end - j->p < 4)
        return false;
    for (int i = 0; i < 4; i++) {
        int h = mig__hexval(j->p[i]);
        if (h < 0)
            return false;
        v = v << 4 | (unsigned)h;
    }
    j->p += 4;
    *out = v;
    return true;
}

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid: no
 * overlong forms, no encoded surrogates, nothing above U+10FFFF. */
static size_t utf8_valid(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned cp, min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* A string at j->p (after the opening quote); *out is malloc'ed. The
 * decoded text is never longer than the escaped one. */
static int jp_string(struct jp *j, char **out)
{
    const char *start = j->p;
    const char *q = start;
    while (q < j->end && *q != '"') /* bound the copy first */
        q += (*q == '\\' && q + 1 < j->end) ? 2 : 1;
    if (q >= j->end)
        return jp_fail(j, -MIG_EPARSE, "unterminated string");
    char *o = malloc((size_t)(q - start) + 1);
    size_t n = 0;
    if (!o)
        return jp_fail(j, -MIG_ENOMEM, "out of memory");
    while (j->p < q) {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20) {
            free(o);
            return jp_fail(j, -MIG_EPARSE, "control character 0x%02x in a string", c);
        }
        if (c != '\\') {
            size_t k = utf8_valid((const unsigned char *)j->p, (const unsigned char *)q);
            if (!k) {
                free(o);
                return jp_fail(j, -MIG_EPARSE, "invalid UTF-8 in a string");
            }
            memcpy(o + n, j->p, k);
            n += k;
            j->p += k;
            continue;
        }
        j->p++;
        char e = *j->p++;
        unsigned cp;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            o[n++] = e;
            break;
        case 'b':
            o[n++] = '\b';
            break;
        case 'f':
            o[n++] = '\f';
            break;
        case 'n':
            o[n++] = '\n';
            break;
        case 'r':
            o[n++] = '\r';
            break;
        case 't':
            o[n++] = '\t';
            break;
        case 'u':
            if (!jp_hex4(j, &cp))
                goto bad_escape;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                goto bad_escape; /* a low surrogate first */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (q - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                    goto bad_escape;
                j->p += 2;
                if (!jp_hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    goto bad_escape;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) {
                free(o);
                return jp_fail(j, -MIG_EPARSE, "\\u0000 in a string");
            }
            n += utf8_put(o + n, cp);
            break;
        default:
            goto bad_escape;
        }
    }
    j->p = q + 1;
    o[n] = 0;
    *out = o;
    return 0;
bad_escape:
    free(o);
    return jp_fail(j, -MIG_EPARSE, "bad escape in a string");
}

static int jp_value(struct jp *j, unsigned depth, struct mig__qmp_json **out);

static int jp_number(struct jp *j, struct mig__qmp_json **out)
{
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return jp_fail(j, -MIG_EPARSE, "bad number");
    if (*j->p == '0')
        j->p++;
    else
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return jp_fail(j, -MIG_EPARSE, "bad number");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return jp_fail(j, -MIG_EPARSE, "bad number");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p - s > 64)
        return jp_fail(j, -MIG_ETOOBIG, "number longer than 64 characters");
    struct mig__qmp_json *v = jp_node(j, MIG_QMP_J_NUM);
    if (!v)
        return j->rc;
    v->s = strndup(s, (size_t)(j->p - s));
    if (!v->s) {
        free(v);
        return jp_fail(j, -MIG_ENOMEM, "out of memory");
    }
    *out = v;
    return 0;
}

/* Append to an array or object, growing by doubling. */
static int jp_push(struct jp *j, struct mig__qmp_json *c, size_t *cap, char *key,
                   struct mig__qmp_json *item)
{
    if (c->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        struct mig__qmp_json **ni = realloc(c->items, nc * sizeof(*ni));
        if (!ni)
            goto oom;
        c->items = ni;
        if (c->type == MIG_QMP_J_OBJ) {
            char **nk = realloc(c->keys, nc * sizeof(*nk));
            if (!nk)
                goto oom;
            c->keys = nk;
        }
        *cap = nc;
    }
    if (c->type == MIG_QMP_J_OBJ)
        c->keys[c->n] = key;
    c->items[c->n++] = item;
    return 0;
oom:
    free(key);
    mig__qmp_json_free(item);
    return jp_fail(j, -MIG_ENOMEM, "out of memory");
}

static int jp_container(struct jp *j, unsigned depth, bool obj, struct mig__qmp_json **out)
{
    char close = obj ? '}' : ']';
    size_t cap = 0;
    if (depth >= MIG_QMP_MAX_DEPTH)
        return jp_fail(j, -MIG_ETOOBIG, "nested deeper than %u", MIG_QMP_MAX_DEPTH);
    struct mig__qmp_json *c = jp_node(j, obj ? MIG_QMP_J_OBJ : MIG_QMP_J_ARR);
    if (!c)
        return j->rc;
    j->p++; /* the opening bracket */
    jp_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        *out = c;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        struct mig__qmp_json *item = NULL;
        jp_ws(j);
        if (obj) {
            if (j->p >= j->end || *j->p != '"') {
                jp_fail(j, -MIG_EPARSE, "expected a member name");
                goto fail;
            }
            j->p++;
            if (jp_string(j, &key) < 0)
                goto fail;
            jp_ws(j);
            if (j->p >= j->end || *j->p != ':') {
                free(key);
                jp_fail(j, -MIG_EPARSE, "expected ':' after a member name");
                goto fail;
            }
            j->p++;
        }
        if (jp_value(j, depth + 1, &item) < 0) {
            free(key);
            goto fail;
        }
        if (jp_push(j, c, &cap, key, item) < 0)
            goto fail;
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            *out = c;
            return 0;
        }
        jp_fail(j, -MIG_EPARSE, "expected ',' or '%c'", close);
        goto fail;
    }
fail:
    mig__qmp_json_free(c);
    return j->rc;
}

static int jp_literal(struct jp *j, const char *word, enum mig__qmp_jtype t, bool b,
                      struct mig__qmp_json **out)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return jp_fail(j, -MIG_EPARSE, "unexpected character '%c'",
                       (*j->p >= 0x20 && *j->p < 0x7f) ? *j->p : '?');
    j->p += n;
    struct mig__qmp_json *v = jp_node(j, t);
    if (!v)
        return j->rc;
    v->b = b;
    *out = v;
    return 0;
}

static int jp_value(struct jp *j, unsigned depth, struct mig__qmp_json **out)
{
    jp_ws(j);
    if (j->p >= j->end)
        return jp_fail(j, -MIG_EPARSE, "unexpected end of input");
    switch (*j->p) {
    case '{':
        return jp_container(j, depth, true, out);
    case '[':
        return jp_container(j, depth, false, out);
    case '"': {
        struct mig__qmp_json *v = jp_node(j, MIG_QMP_J_STR);
        if (!v)
            return j->rc;
        j->p++;
        if (jp_string(j, &v->s) < 0) {
            free(v);
            return j->rc;
        }
        *out = v;
        return 0;
    }
    case 't':
        return jp_literal(j, "true", MIG_QMP_J_BOOL, true, out);
    case 'f':
        return jp_literal(j, "false", MIG_QMP_J_BOOL, false, out);
    case 'n':
        return jp_literal(j, "null", MIG_QMP_J_NULL, false, out);
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return jp_number(j, out);
        return jp_fail(j, -MIG_EPARSE, "unexpected character '%c'",
                       (*j->p >= 0x20 && *j->p < 0x7f) ? *j->p : '?');
    }
}

int mig__qmp_json_parse(const char *text, size_t len, struct mig__qmp_json **out, char *err,
                        size_t err_len)
{
    struct jp j = {.p = text, .end = text + len, .err = err, .err_len = err_len};
    struct mig__qmp_json *v = NULL;
    *out = NULL;
    if (err && err_len)
        err[0] = 0;
    if (len > MIG_QMP_MAX_MSG)
        return jp_fail(&j, -MIG_ETOOBIG, "%zu bytes, more than %u", len, MIG_QMP_MAX_MSG);
    if (jp_value(&j, 0, &v) < 0)
        return j.rc;
    jp_ws(&j);
    if (j.p != j.end) {
        mig__qmp_json_free(v);
        return jp_fail(&j, -MIG_EPARSE, "trailing data after the value");
    }
    *out = v;
    return 0;
}

const struct mig__qmp_json *mig__qmp_json_get(const struct mig__qmp_json *v, const char *key)
{
    if (!v || v->type != MIG_QMP_J_OBJ)
        return NULL;
    for (size_t i = 0; i < v->n; i++) /* the first of duplicate names wins */
        if (strcmp(v->keys[i], key) == 0)
            return v->items[i];
    return NULL;
}

const char *mig__qmp_json_str(const struct mig__qmp_json *v)
{
    return v && v->type == MIG_QMP_J_STR ? v->s : NULL;
}

int mig__qmp_json_int(const struct mig__qmp_json *v, int64_t *out)
{
    if (!v || v->type != MIG_QMP_J_NUM || strpbrk(v->s, ".eE"))
        return -MIG_EINVAL;
    errno = 0;
    char *end;
    long long n = strtoll(v->s, &end, 10);
    if (errno || *end)
        return -MIG_EINVAL;
    *out = n;
    return 0;
}

/* ==== argument builder ================================================= */

static void args_put(struct mig__qmp_args *a, const char *s, size_t n)
{
    if (a->overflow || a->len + n >= sizeof(a->buf)) {
        a->overflow = true;
        return;
    }
    memcpy(a->buf + a->len, s, n);
    a->len += n;
    a->buf[a->len] = 0;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void args_jstr(struct mig__qmp_args *a, const char *s)
{
    args_put(a, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            args_put(a, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            args_put(a, esc, 6);
        } else {
            args_put(a, (const char *)&c, 1);
        }
    }
    args_put(a, "\"", 1);
}

static void args_key(struct mig__qmp_args *a, const char *key)
{
    if (a->len && a->buf[a->len - 1] != '{')
        args_put(a, ",", 1);
    args_jstr(a, key);
    args_put(a, ":", 1);
}

void mig__qmp_args_init(struct mig__qmp_args *a)
{
    a->len = 0;
    a->overflow = false;
    a->buf[0] = 0;
}

void mig__qmp_args_str(struct mig__qmp_args *a, const char *key, const char *val)
{
    args_key(a, key);
    args_jstr(a, val ? val : "");
}

void mig__qmp_args_bool(struct mig__qmp_args *a, const char *key, bool val)
{
    args_key(a, key);
    args_put(a, val ? "true" : "false", val ? 4 : 5);
}

void mig__qmp_args_int(struct mig__qmp_args *a, const char *key, int64_t val)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%" PRId64, val);
    args_key(a, key);
    args_put(a, num, (size_t)n);
}

void mig__qmp_args_obj_begin(struct mig__qmp_args *a, const char *key)
{
    args_key(a, key);
    args_put(a, "{", 1);
}

void mig__qmp_args_obj_end(struct mig__qmp_args *a)
{
    args_put(a, "}", 1);
}

/* ==== the connection =================================================== */

struct mig__qmp {
    struct mig_ctx *ctx; /* borrowed */
    int fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    unsigned timeout_ms;
    char *buf;        /* owned: bytes received, not yet cut into messages */
    size_t len, cap;
    int broken;       /* sticky: a timeout or protocol error ends the session */
    uint64_t next_id; /* "id" of the next command */
    uint32_t version;
    unsigned events;
    char last_event[64];
    char err_class[64];
    char err_desc[512];
};

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* Where the message starting at buf[0] ends (one past its closing brace),
 * 0 if it is not complete yet, negative if the bytes cannot be QMP. QEMU
 * ends messages with CRLF, but the framing follows the JSON itself. */
static long frame(struct mig__qmp *q)
{
    unsigned depth = 0;
    bool str = false, esc = false;
    for (size_t i = 0; i < q->len; i++) {
        char c = q->buf[i];
        if (i == 0 && c != '{')
            return -MIG_EPROTO;
        if (str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                str = false;
            continue;
        }
        if (c == '"') {
            str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > MIG_QMP_MAX_DEPTH)
                return -MIG_ETOOBIG;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return (long)i + 1;
        }
    }
    return q->len > MIG_QMP_MAX_MSG ? -MIG_ETOOBIG : 0;
}

static int remaining_ms(uint64_t deadline_ns)
{
    uint64_t now = mig__now_ns();
    if (now >= deadline_ns)
        return 0;
    uint64_t ms = (deadline_ns - now + 999999u) / 1000000u;
    return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

static int broken(struct mig__qmp *q, int rc)
{
    if (!q->broken)
        q->broken = rc;
    return rc;
}

/* The next whole message, parsed; bounded by deadline_ns. */
static int read_message(struct mig__qmp *q, uint64_t deadline_ns, const char *what,
                        struct mig__qmp_json **msg_out)
{
    char why[160];
    *msg_out = NULL;
    for (;;) {
        /* Whitespace between messages (QEMU's CRLF) is skipped. */
        size_t skip = 0;
        while (skip < q->len && strchr(" \t\r\n", q->buf[skip]))
            skip++;
        if (skip) {
            memmove(q->buf, q->buf + skip, q->len - skip);
            q->len -= skip;
        }
        long end = q->len ? frame(q) : 0;
        if (end < 0) {
            MIG_LOG(q->ctx, ERROR, "%s: %s while waiting for %s", q->path,
                    end == -MIG_ETOOBIG ? "a message over the size or depth limit"
                                        : "bytes that are not a QMP message",
                    what);
            return broken(q, (int)end);
        }
        if (end > 0) {
            int rc = mig__qmp_json_parse(q->buf, (size_t)end, msg_out, why, sizeof(why));
            memmove(q->buf, q->buf + end, q->len - (size_t)end);
            q->len -= (size_t)end;
            if (rc < 0) {
                MIG_LOG(q->ctx, ERROR, "%s: malformed JSON while waiting for %s: %s", q->path,
                        what, why);
                return broken(q, rc == -MIG_ENOMEM ? rc : -MIG_EPROTO);
            }
            if ((*msg_out)->type != MIG_QMP_J_OBJ) {
                mig__qmp_json_free(*msg_out);
                *msg_out = NULL;
                return broken(q, -MIG_EPROTO);
            }
            return 0;
        }
        if (q->cap - q->len < 4096) {
            size_t ncap = q->cap ? q->cap * 2 : 8192;
            if (ncap > MIG_QMP_MAX_MSG + 8192)
                ncap = MIG_QMP_MAX_MSG + 8192;
            if (ncap - q->len < 1) /* frame() refuses before this is reached */
                return broken(q, -MIG_ETOOBIG);
            char *nb = realloc(q->buf, ncap);
            if (!nb)
                return broken(q, -MIG_ENOMEM);
            q->buf = nb;
            q->cap = ncap;
        }
        struct pollfd pfd = {.fd = q->fd, .events = POLLIN};
        int ms = remaining_ms(deadline_ns);
        int r = ms > 0 ? poll(&pfd, 1, ms) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return broken(q, mig__from_errno(errno));
        if (r == 0) {
            MIG_LOG(q->ctx, ERROR, "%s: QEMU did not answer %s within %u ms", q->path, what,
                    q->timeout_ms);
            return broken(q, -MIG_ETIMEOUT);
        }
        ssize_t n = recv(q->fd, q->buf + q->len, q->cap - q->len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return broken(q, mig__from_errno(errno));
        if (n == 0) {
            MIG_LOG(q->ctx, ERROR, "%s: QEMU closed the connection while we waited for %s",
                    q->path, what);
            return broken(q, -MIG_EPEER);
        }
        q->len += (size_t)n;
    }
}

/* Send all of buf (with 'fd' attached to the first byte if >= 0). */
static int send_all(struct mig__qmp *q, const char *buf, size_t len, int fd,
                    uint64_t deadline_ns)
{
    size_t off = 0;
    while (off < len) {
        struct pollfd pfd = {.fd = q->fd, .events = POLLOUT};
        int ms = remaining_ms(deadline_ns);
        int r = ms > 0 ? poll(&pfd, 1, ms) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            MIG_LOG(q->ctx, ERROR, "%s: QEMU does not read its socket", q->path);
            return broken(q, r == 0 ? -MIG_ETIMEOUT : mig__from_errno(errno));
        }
        struct iovec iov = {.iov_base = (char *)buf + off, .iov_len = len - off};
        union {
            char b[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (fd >= 0 && off == 0) {
            memset(&u, 0, sizeof(u));
            mh.msg_control = u.b;
            mh.msg_controllen = sizeof(u.b);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        ssize_t n = sendmsg(q->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            int rc = errno == EPIPE || errno == ECONNRESET ? -MIG_EPEER : mig__from_errno(errno);
            MIG_LOG(q->ctx, ERROR, "%s: cannot send to QEMU: %s", q->path, strerror(errno));
            return broken(q, rc);
        }
        off += (size_t)n;
    }
    return 0;
}

static bool command_name_ok(const char *cmd)
{
    if (!cmd || !*cmd || strlen(cmd) > 64)
        return false;
    for (const char *c = cmd; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    return true;
}

int mig__qmp_execute_fd(struct mig__qmp *q, const char *cmd, const struct mig__qmp_args *args,
                        int fd, struct mig__qmp_json **ret_out)
{
    char line[MIG_QMP_MAX_ARGS + 160];
    struct mig__qmp_json *msg = NULL;
    int rc;

    if (ret_out)
        *ret_out = NULL;
    q->err_class[0] = q->err_desc[0] = 0;
    if (q->broken)
        return q->broken;
    if (!command_name_ok(cmd) || (args && args->overflow))
        return -MIG_EINVAL;
    uint64_t id = q->next_id++;
    int n = snprintf(line, sizeof(line), "{\"execute\":\"%s\"%s%s%s,\"id\":%" PRIu64 "}\r\n", cmd,
                     args ? ",\"arguments\":{" : "", args ? args->buf : "", args ? "}" : "", id);
    if (n < 0 || (size_t)n >= sizeof(line))
        return -MIG_EINVAL;
    uint64_t deadline = mig__now_ns() + (uint64_t)q->timeout_ms * 1000000u;
    rc = send_all(q, line, (size_t)n, fd, deadline);
    if (rc < 0)
        return rc;
    char what[96];
    snprintf(what, sizeof(what), "'%s'", cmd);
    for (;;) {
        rc = read_message(q, deadline, what, &msg);
        if (rc < 0)
            return rc;
        const struct mig__qmp_json *ev = mig__qmp_json_get(msg, "event");
        if (ev) {
            q->events++;
            copy_str(q->last_event, sizeof(q->last_event), mig__qmp_json_str(ev));
            MIG_LOG(q->ctx, DEBUG, "%s: event %s", q->path, q->last_event);
            mig__qmp_json_free(msg);
            continue;
        }
        const struct mig__qmp_json *ret = mig__qmp_json_get(msg, "return");
        const struct mig__qmp_json *err = mig__qmp_json_get(msg, "error");
        int64_t got = -1;
        if ((!ret && !err) || mig__qmp_json_int(mig__qmp_json_get(msg, "id"), &got) < 0 ||
            (uint64_t)got != id) {
            MIG_LOG(q->ctx, ERROR, "%s: a reply that does not answer %s (id %" PRIu64 ")",
                    q->path, what, id);
            mig__qmp_json_free(msg);
            return broken(q, -MIG_EPROTO);
        }
        if (err) {
            const char *cls = mig__qmp_json_str(mig__qmp_json_get(err, "class"));
            const char *desc = mig__qmp_json_str(mig__qmp_json_get(err, "desc"));
            if (!cls || !desc) {
                mig__qmp_json_free(msg);
                return broken(q, -MIG_EPROTO);
            }
            copy_str(q->err_class, sizeof(q->err_class), cls);
            copy_str(q->err_desc, sizeof(q->err_desc), desc);
            MIG_LOG(q->ctx, DEBUG, "%s: %s failed: %s: %s", q->path, what, q->err_class,
                    q->err_desc);
            mig__qmp_json_free(msg);
            return -MIG_EBACKEND;
        }
        if (ret_out) {
            /* Detach the "return" value from the message. */
            for (size_t i = 0; i < msg->n; i++)
                if (msg->items[i] == ret) {
                    *ret_out = msg->items[i];
                    msg->items[i] = NULL;
                    break;
                }
        }
        mig__qmp_json_free(msg);
        return 0;
    }
}

int mig__qmp_execute(struct mig__qmp *q, const char *cmd, const struct mig__qmp_args *args,
                     struct mig__qmp_json **ret_out)
{
    return mig__qmp_execute_fd(q, cmd, args, -1, ret_out);
}

static int greeting(struct mig__qmp *q)
{
    struct mig__qmp_json *msg = NULL;
    uint64_t deadline = mig__now_ns() + (uint64_t)q->timeout_ms * 1000000u;
    int rc = read_message(q, deadline, "the greeting", &msg);
    if (rc < 0)
        return rc;
    const struct mig__qmp_json *g = mig__qmp_json_get(msg, "QMP");
    const struct mig__qmp_json *v = mig__qmp_json_get(mig__qmp_json_get(g, "version"), "qemu");
    const struct mig__qmp_json *caps = mig__qmp_json_get(g, "capabilities");
    int64_t ma, mi, mc;
    if (!g || !caps || caps->type != MIG_QMP_J_ARR ||
        mig__qmp_json_int(mig__qmp_json_get(v, "major"), &ma) < 0 ||
        mig__qmp_json_int(mig__qmp_json_get(v, "minor"), &mi) < 0 ||
        mig__qmp_json_int(mig__qmp_json_get(v, "micro"), &mc) < 0 || ma < 0 || ma > 0xffff ||
        mi < 0 || mi > 0xff || mc < 0 || mc > 0xff) {
        MIG_LOG(q->ctx, ERROR, "%s: the first message is not a QMP greeting", q->path);
        mig__qmp_json_free(msg);
        return broken(q, -MIG_EPROTO);
    }
    q->version = (uint32_t)(ma << 16 | mi << 8 | mc);
    mig__qmp_json_free(msg);
    rc = mig__qmp_execute(q, "qmp_capabilities", NULL, NULL);
    if (rc < 0)
        MIG_LOG(q->ctx, ERROR, "%s: capabilities negotiation failed%s%s", q->path,
                q->err_desc[0] ? ": " : "", q->err_desc);
    return rc;
}

int mig__qmp_connect(struct mig_ctx *ctx, const char *path, unsigned timeout_ms,
                     struct mig__qmp **q_out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct mig__qmp *q = NULL;
    int rc;

    *q_out = NULL;
    if (!path || !*path || strlen(path) >= sizeof(sa.sun_path))
        return -MIG_EINVAL;
    q = calloc(1, sizeof(*q));
    if (!q)
        return -MIG_ENOMEM;
    q->ctx = ctx;
    q->fd = -1;
    q->timeout_ms = timeout_ms ? timeout_ms : MIG_QMP_DEFAULT_MS;
    q->next_id = 1;
    copy_str(q->path, sizeof(q->path), path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (q->fd < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        rc = e == ENOENT || e == ECONNREFUSED ? -MIG_ENOENT : mig__from_errno(e);
        MIG_LOG(ctx, ERROR, "cannot connect to QEMU's QMP socket %s: %s", path, strerror(e));
        goto out;
    }
    rc = greeting(q);
out:
    if (rc < 0) {
        mig__qmp_close(q);
        return rc;
    }
    *q_out = q;
    return 0;
}

const char *mig__qmp_last_error_class(const struct mig__qmp *q)
{
    return q->err_class;
}

const char *mig__qmp_last_error_desc(const struct mig__qmp *q)
{
    return q->err_desc;
}

uint32_t mig__qmp_version(const struct mig__qmp *q)
{
    return q->version;
}

unsigned mig__qmp_events(const struct mig__qmp *q)
{
    return q->events;
}

const char *mig__qmp_last_event(const struct mig__qmp *q)
{
    return q->last_event;
}

void mig__qmp_close(struct mig__qmp *q)
{
    if (!q)
        return;
    if (q->fd >= 0)
        close(q->fd);
    free(q->buf);
    free(q);
}
