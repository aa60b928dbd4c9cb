/*
 * Unit tests for the NBD server (libmig/src/nbd): the request parser
 * (decode + check, every protocol error), the handshake and transmission
 * over scripted in-memory connections (what goes out byte for byte), the
 * file export (sparse trim, write-zeroes with and without holes, FUA), and a
 * real server on a socketpair surviving malformed requests.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nbd-internal.h"

/* ---- helpers -------------------------------------------------------------- */

static void put_req(uint8_t *w, uint32_t magic, uint16_t flags, uint16_t type, uint64_t cookie,
                    uint64_t off, uint32_t len)
{
    mig__nbd_put32(w, magic);
    mig__nbd_put16(w + 4, flags);
    mig__nbd_put16(w + 6, type);
    mig__nbd_put64(w + 8, cookie);
    mig__nbd_put64(w + 16, off);
    mig__nbd_put32(w + 24, len);
}

static struct mig__nbd_req req(uint16_t flags, uint16_t type, uint64_t off, uint32_t len)
{
    struct mig__nbd_req r = {.flags = flags, .type = type, .cookie = 7, .offset = off,
                             .length = len};
    return r;
}

#define RW_TFLAGS                                                                              \
    (MIG__NBD_TFLAG_HAS_FLAGS | MIG__NBD_TFLAG_SEND_FLUSH | MIG__NBD_TFLAG_SEND_FUA |          \
     MIG__NBD_TFLAG_SEND_TRIM | MIG__NBD_TFLAG_SEND_WRITE_ZEROES)

static const struct mig__nbd_limits lim_rw = {
    .size = 1 << 20, .max_payload = 64 << 10, .tflags = RW_TFLAGS};

static uint32_t check(struct mig__nbd_req r, const struct mig__nbd_limits *lim, uint32_t *drain)
{
    uint32_t d;
    return mig__nbd_req_check(&r, lim, drain ? drain : &d);
}

/* ---- the parser ----------------------------------------------------------- */

static void decode_fields(void **state)
{
    uint8_t w[28];
    struct mig__nbd_req r;
    (void)state;
    put_req(w, MIG__NBD_REQUEST_MAGIC, MIG__NBD_CMD_FLAG_FUA, MIG__NBD_CMD_WRITE,
            0x1122334455667788ull, 0x0000000100000200ull, 4096);
    assert_int_equal(mig__nbd_req_decode(w, &r), 0);
    assert_int_equal(r.flags, MIG__NBD_CMD_FLAG_FUA);
    assert_int_equal(r.type, MIG__NBD_CMD_WRITE);
    assert_true(r.cookie == 0x1122334455667788ull);
    assert_true(r.offset == 0x0000000100000200ull);
    assert_int_equal(r.length, 4096);
}

static void decode_bad_magic(void **state)
{
    uint8_t w[28];
    struct mig__nbd_req r;
    (void)state;
    put_req(w, MIG__NBD_SIMPLE_REPLY_MAGIC, 0, MIG__NBD_CMD_READ, 1, 0, 512);
    assert_int_equal(mig__nbd_req_decode(w, &r), -MIG_EPROTO);
    put_req(w, 0, 0, MIG__NBD_CMD_READ, 1, 0, 512);
    assert_int_equal(mig__nbd_req_decode(w, &r), -MIG_EPROTO);
}

static void check_valid(void **state)
{
    uint32_t drain = 99;
    (void)state;
    assert_int_equal(check(req(0, MIG__NBD_CMD_READ, 0, 4096), &lim_rw, &drain), 0);
    assert_int_equal(drain, 0);
    assert_int_equal(check(req(0, MIG__NBD_CMD_WRITE, 4096, 8192), &lim_rw, &drain), 0);
    assert_int_equal(drain, 8192);
    /* the very end of the export, and a full-size payload */
    assert_int_equal(check(req(0, MIG__NBD_CMD_READ, (1 << 20) - 1, 1), &lim_rw, NULL), 0);
    assert_int_equal(check(req(0, MIG__NBD_CMD_WRITE, 0, 64 << 10), &lim_rw, NULL), 0);
    /* FUA is valid on every command once advertised */
    assert_int_equal(check(req(MIG__NBD_CMD_FLAG_FUA, MIG__NBD_CMD_READ, 0, 1), &lim_rw, NULL), 0);
    assert_int_equal(check(req(MIG__NBD_CMD_FLAG_FUA, MIG__NBD_CMD_FLUSH, 0, 0), &lim_rw, NULL),
                     0);
    assert_int_equal(check(req(MIG__NBD_CMD_FLAG_FUA, MIG__NBD_CMD_TRIM, 0, 1 << 20), &lim_rw,
                           NULL),
                     0);
    /* trim and zeroes are not payload commands: no max_payload limit */
    assert_int_equal(check(req(MIG__NBD_CMD_FLAG_NO_HOLE | MIG__NBD_CMD_FLAG_FUA,
                               MIG__NBD_CMD_WRITE_ZEROES, 0, 1 << 20),
                           &lim_rw, NULL),
                     0);
    assert_int_equal(check(req(0, MIG__NBD_CMD_DISC, 0, 0), &lim_rw, NULL), 0);
    /* zero-length requests are harmless no-ops */
    assert_int_equal(check(req(0, MIG__NBD_CMD_READ, 1 << 20, 0), &lim_rw, NULL), 0);
}

static void check_einval(void **state)
{
    (void)state;
    /* unknown and unadvertised commands */
    assert_int_equal(check(req(0, 42, 0, 1), &lim_rw, NULL), MIG__NBD_EINVAL);
    assert_int_equal(check(req(0, MIG__NBD_CMD_CACHE, 0, 1), &lim_rw, NULL), MIG__NBD_EINVAL);
    assert_int_equal(check(req(0, MIG__NBD_CMD_BLOCK_STATUS, 0, 1), &lim_rw, NULL),
                     MIG__NBD_EINVAL);
    struct mig__nbd_limits bare = lim_rw;
    bare.tflags = MIG__NBD_TFLAG_HAS_FLAGS;
    assert_int_equal(check(req(0, MIG__NBD_CMD_FLUSH, 0, 0), &bare, NULL), MIG__NBD_EINVAL);
    assert_int_equal(check(req(0, MIG__NBD_CMD_TRIM, 0, 1), &bare, NULL), MIG__NBD_EINVAL);
    assert_int_equal(check(req(0, MIG__NBD_CMD_WRITE_ZEROES, 0, 1), &bare, NULL),
                     MIG__NBD_EINVAL);
    assert_int_equal(check(req(MIG__NBD_CMD_FLAG_FUA, MIG__NBD_CMD_WRITE, 0, 1), &bare, NULL),
                     MIG__NBD_EINVAL);
    /* flags not valid for the command, or not negotiated */
    assert_int_equal(check(req(MIG__NBD_CMD_FLAG_NO_HOLE, MIG__NBD_CMD_WRITE, 0, 1), &lim_rw,
                           NULL),
                     MIG__NBD_EINVAL);
    assert_int_equal(check(req(MIG__NBD_CMD_FLAG_DF, MIG__NBD_CMD_READ, 0, 1), &lim_rw, NULL),
                     MIG__NBD_EINVAL);
    assert_int_equal(check(req(MIG__NBD_CMD_FLAG_FAST_ZERO, MIG__NBD_CMD_WRITE_ZEROES, 0, 1),
                           &lim_rw, NULL),
                     MIG__NBD_EINVAL);
    assert_int_equal(check(req(0x8000, MIG__NBD_CMD_READ, 0, 1), &lim_rw, NULL), MIG__NBD_EINVAL);
    /* flush's offset and length are reserved */
    assert_int_equal(check(req(0, MIG__NBD_CMD_FLUSH, 1, 0), &lim_rw, NULL), MIG__NBD_EINVAL);
    assert_int_equal(check(req(0, MIG__NBD_CMD_FLUSH, 0, 1), &lim_rw, NULL), MIG__NBD_EINVAL);
}

static void check_a_refused_write_still_drains(void **state)
{
    uint32_t drain = 0;
    (void)state;
    assert_int_equal(check(req(MIG__NBD_CMD_FLAG_NO_HOLE, MIG__NBD_CMD_WRITE, 0, 777), &lim_rw,
                           &drain),
                     MIG__NBD_EINVAL);
    assert_int_equal(drain, 777);
    assert_int_equal(check(req(0, MIG__NBD_CMD_WRITE, 1 << 20, 300), &lim_rw, &drain),
                     MIG__NBD_ENOSPC);
    assert_int_equal(drain, 300);
    assert_int_equal(check(req(0, 99, 0, 5), &lim_rw, &drain), MIG__NBD_EINVAL);
    assert_int_equal(drain, 0); /* only WRITE carries a payload */
}

static void check_oversized(void **state)
{
    uint32_t drain = 0;
    (void)state;
    assert_int_equal(check(req(0, MIG__NBD_CMD_READ, 0, (64 << 10) + 1), &lim_rw, NULL),
                     MIG__NBD_EOVERFLOW);
    assert_int_equal(check(req(0, MIG__NBD_CMD_WRITE, 0, 0xffffffffu), &lim_rw, &drain),
                     MIG__NBD_EOVERFLOW);
    assert_int_equal(drain, 0xffffffffu);
}

static void check_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(check(req(0, MIG__NBD_CMD_READ, 1 << 20, 1), &lim_rw, NULL),
                     MIG__NBD_EINVAL);
    assert_int_equal(check(req(0, MIG__NBD_CMD_READ, (1 << 20) - 1, 2), &lim_rw, NULL),
                     MIG__NBD_EINVAL);
    assert_int_equal(check(req(0, MIG__NBD_CMD_TRIM, 0, (1 << 20) + 1), &lim_rw, NULL),
                     MIG__NBD_EINVAL);
    assert_int_equal(check(req(0, MIG__NBD_CMD_WRITE, (1 << 20) - 1, 2), &lim_rw, NULL),
                     MIG__NBD_ENOSPC);
    assert_int_equal(check(req(0, MIG__NBD_CMD_WRITE_ZEROES, 1 << 21, 1), &lim_rw, NULL),
                     MIG__NBD_ENOSPC);
    /* offsets that would wrap a naive offset + length */
    assert_int_equal(check(req(0, MIG__NBD_CMD_READ, UINT64_MAX, 2), &lim_rw, NULL),
                     MIG__NBD_EINVAL);
    assert_int_equal(check(req(0, MIG__NBD_CMD_WRITE, UINT64_MAX - 100, 4096), &lim_rw, NULL),
                     MIG__NBD_ENOSPC);
}

static void check_read_only(void **state)
{
    struct mig__nbd_limits ro = lim_rw;
    (void)state;
    ro.tflags = MIG__NBD_TFLAG_HAS_FLAGS | MIG__NBD_TFLAG_READ_ONLY | MIG__NBD_TFLAG_SEND_FLUSH |
                MIG__NBD_TFLAG_SEND_FUA | MIG__NBD_TFLAG_SEND_TRIM;
    assert_int_equal(check(req(0, MIG__NBD_CMD_WRITE, 0, 1), &ro, NULL), MIG__NBD_EPERM);
    assert_int_equal(check(req(0, MIG__NBD_CMD_TRIM, 0, 1), &ro, NULL), MIG__NBD_EPERM);
    assert_int_equal(check(req(0, MIG__NBD_CMD_READ, 0, 1), &ro, NULL), 0);
    assert_int_equal(check(req(0, MIG__NBD_CMD_FLUSH, 0, 0), &ro, NULL), 0);
}

static void error_mapping(void **state)
{
    (void)state;
    assert_int_equal(mig__nbd_err_to_wire(0), 0);
    assert_int_equal(mig__nbd_err_to_wire(-MIG_ENOSPC), MIG__NBD_ENOSPC);
    assert_int_equal(mig__nbd_err_to_wire(-MIG_EPERM), MIG__NBD_EPERM);
    assert_int_equal(mig__nbd_err_to_wire(-MIG_EINVAL), MIG__NBD_EINVAL);
    assert_int_equal(mig__nbd_err_to_wire(-MIG_ECANCELLED), MIG__NBD_ESHUTDOWN);
    assert_int_equal(mig__nbd_err_to_wire(-MIG_EPEER), MIG__NBD_EIO);
    assert_int_equal(mig__nbd_err_to_wire(-MIG_EIO), MIG__NBD_EIO);
}

/* ---- a memory export and a scripted connection ---------------------------- */

#define MEM_SIZE (256u << 10)

struct mem {
    uint8_t data[MEM_SIZE];
    unsigned flushes, fua_writes, trims, zeroes_punch, zeroes_keep;
    int fail_next; /* an error the next op returns */
};

static uint64_t mem_size(void *o)
{
    (void)o;
    return MEM_SIZE;
}
static int mem_pread(void *o, uint64_t off, uint32_t len, void *buf)
{
    struct mem *m = o;
    assert_true(off + len <= MEM_SIZE); /* the server checked it */
    if (m->fail_next) {
        int rc = m->fail_next;
        m->fail_next = 0;
        return rc;
    }
    memcpy(buf, m->data + off, len);
    return 0;
}
static int mem_pwrite(void *o, uint64_t off, uint32_t len, const void *buf, bool fua)
{
    struct mem *m = o;
    assert_true(off + len <= MEM_SIZE);
    if (m->fail_next) {
        int rc = m->fail_next;
        m->fail_next = 0;
        return rc;
    }
    memcpy(m->data + off, buf, len);
    m->fua_writes += fua;
    return 0;
}
static int mem_flush(void *o)
{
    ((struct mem *)o)->flushes++;
    return 0;
}
static int mem_trim(void *o, uint64_t off, uint64_t len, bool fua)
{
    struct mem *m = o;
    (void)fua;
    assert_true(off + len <= MEM_SIZE);
    m->trims++;
    return 0;
}
static int mem_zero(void *o, uint64_t off, uint64_t len, bool may_punch, bool fua)
{
    struct mem *m = o;
    (void)fua;
    assert_true(off + len <= MEM_SIZE);
    memset(m->data + off, 0, len);
    if (may_punch)
        m->zeroes_punch++;
    else
        m->zeroes_keep++;
    return 0;
}
static const struct mig__nbd_export_ops mem_ops = {mem_size, mem_pread, mem_pwrite,
                                                   mem_flush, mem_trim, mem_zero};

/* In-memory connection: the client's bytes in, the server's bytes out. */
struct script {
    const uint8_t *in;
    size_t in_len, in_pos;
    size_t chunk;      /* bytes per recv (exercises partial reads) */
    uint8_t *out;
    size_t out_len, out_cap;
};

static long s_recv(void *opaque, void *buf, size_t len)
{
    struct script *s = opaque;
    size_t n = s->in_len - s->in_pos;
    if (n > len)
        n = len;
    if (s->chunk && n > s->chunk)
        n = s->chunk;
    memcpy(buf, s->in + s->in_pos, n);
    s->in_pos += n;
    return (long)n;
}
static int s_sendv(void *opaque, const struct iovec *iov, int n, bool more)
{
    struct script *s = opaque;
    (void)more;
    for (int i = 0; i < n; i++) {
        if (s->out_len + iov[i].iov_len > s->out_cap) {
            s->out_cap = (s->out_len + iov[i].iov_len) * 2;
            s->out = realloc(s->out, s->out_cap);
            assert_non_null(s->out);
        }
        memcpy(s->out + s->out_len, iov[i].iov_base, iov[i].iov_len);
        s->out_len += iov[i].iov_len;
    }
    return 0;
}

/* A client byte string under construction. */
struct bytes {
    uint8_t b[1 << 20];
    size_t n;
};
static void b32(struct bytes *b, uint32_t v)
{
    mig__nbd_put32(b->b + b->n, v);
    b->n += 4;
}
static void b64(struct bytes *b, uint64_t v)
{
    mig__nbd_put64(b->b + b->n, v);
    b->n += 8;
}
static void bmem(struct bytes *b, const void *p, size_t n)
{
    if (n)
        memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void bopt(struct bytes *b, uint32_t opt, const void *data, uint32_t len)
{
    b64(b, MIG__NBD_IHAVEOPT);
    b32(b, opt);
    b32(b, len);
    bmem(b, data, len);
}
static void breq(struct bytes *b, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t off,
                 uint32_t len)
{
    put_req(b->b + b->n, MIG__NBD_REQUEST_MAGIC, flags, type, cookie, off, len);
    b->n += 28;
}
/* GO for the default export with n info requests. */
static void bgo(struct bytes *b, uint32_t opt)
{
    uint8_t d[10];
    mig__nbd_put32(d, 0);
    mig__nbd_put16(d + 4, 2);
    mig__nbd_put16(d + 6, MIG__NBD_INFO_BLOCK_SIZE);
    mig__nbd_put16(d + 8, MIG__NBD_INFO_NAME);
    bopt(b, opt, d, 10);
}

/* Server output reader. */
struct rd {
    const uint8_t *p;
    size_t n, pos;
};
static uint64_t r64(struct rd *r)
{
    assert_true(r->pos + 8 <= r->n);
    r->pos += 8;
    return mig__nbd_get64(r->p + r->pos - 8);
}
static uint32_t r32(struct rd *r)
{
    assert_true(r->pos + 4 <= r->n);
    r->pos += 4;
    return mig__nbd_get32(r->p + r->pos - 4);
}
static uint16_t r16(struct rd *r)
{
    assert_true(r->pos + 2 <= r->n);
    r->pos += 2;
    return mig__nbd_get16(r->p + r->pos - 2);
}
/* Expect an option reply header; returns its data length. */
static uint32_t expect_rep(struct rd *r, uint32_t opt, uint32_t type)
{
    assert_true(r64(r) == MIG__NBD_REP_MAGIC);
    assert_int_equal(r32(r), opt);
    assert_int_equal(r32(r), type);
    return r32(r);
}
static void expect_reply(struct rd *r, uint64_t cookie, uint32_t err)
{
    assert_int_equal(r32(r), MIG__NBD_SIMPLE_REPLY_MAGIC);
    assert_int_equal(r32(r), err);
    assert_true(r64(r) == cookie);
}
static void expect_greeting(struct rd *r)
{
    assert_true(r64(r) == MIG__NBD_MAGIC);
    assert_true(r64(r) == MIG__NBD_IHAVEOPT);
    assert_int_equal(r16(r), MIG__NBD_FLAG_FIXED_NEWSTYLE | MIG__NBD_FLAG_NO_ZEROES);
}

struct fixture {
    struct mem mem;
    struct mig__nbd_server *srv;
    struct bytes cli;
    struct script s;
    struct rd out;
};

static int fx_setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct mig__nbd_export exp = {.name = "", .description = "test disk", .ops = &mem_ops};
    struct mig__nbd_server_config cfg = {.max_payload = 64 << 10, .max_conns = 1};
    assert_non_null(fx);
    exp.opaque = &fx->mem;
    assert_int_equal(mig__nbd_server_new(NULL, &exp, &cfg, &fx->srv), 0);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fixture *fx = *state;
    mig__nbd_server_free(fx->srv);
    free(fx->s.out);
    free(fx);
    return 0;
}

/* Run the scripted client against the server; returns serve_io's result. */
static int run(struct fixture *fx, size_t chunk)
{
    struct mig__nbd_io io = {s_recv, s_sendv, &fx->s};
    free(fx->s.out);
    memset(&fx->s, 0, sizeof(fx->s));
    fx->s.in = fx->cli.b;
    fx->s.in_len = fx->cli.n;
    fx->s.chunk = chunk;
    int rc = mig__nbd_server_serve_io(fx->srv, &io);
    fx->out.p = fx->s.out;
    fx->out.n = fx->s.out_len;
    fx->out.pos = 0;
    return rc;
}

static void handshake_go_then_io(void **state)
{
    struct fixture *fx = *state;
    struct bytes *c = &fx->cli;
    struct rd *r = &fx->out;
    uint8_t pat[4096];
    (void)state;
    memset(pat, 0xab, sizeof(pat));
    b32(c, MIG__NBD_FLAG_C_FIXED_NEWSTYLE | MIG__NBD_FLAG_C_NO_ZEROES);
    bopt(c, MIG__NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    bopt(c, MIG__NBD_OPT_SET_META_CONTEXT, "\0\0\0\0\0\0\0\0", 8);
    bgo(c, MIG__NBD_OPT_GO);
    breq(c, MIG__NBD_CMD_FLAG_FUA, MIG__NBD_CMD_WRITE, 1, 8192, 4096);
    bmem(c, pat, sizeof(pat));
    breq(c, 0, MIG__NBD_CMD_READ, 2, 8192, 4096);
    breq(c, 0, MIG__NBD_CMD_FLUSH, 3, 0, 0);
    breq(c, 0, MIG__NBD_CMD_TRIM, 4, 0, 65536);
    breq(c, MIG__NBD_CMD_FLAG_NO_HOLE, MIG__NBD_CMD_WRITE_ZEROES, 5, 8192, 100);
    breq(c, 0, MIG__NBD_CMD_WRITE_ZEROES, 6, 0, 1);
    breq(c, 0, MIG__NBD_CMD_READ, 7, 8192, 200);
    breq(c, 0, MIG__NBD_CMD_DISC, 8, 0, 0);
    for (size_t chunk = 0; chunk <= 7; chunk += 7) { /* whole, then 7 bytes per recv */
        memset(&fx->mem, 0, sizeof(fx->mem));
        assert_int_equal(run(fx, chunk), 0);
        expect_greeting(r);
        r->pos += expect_rep(r, MIG__NBD_OPT_STRUCTURED_REPLY, MIG__NBD_REP_ERR_UNSUP);
        r->pos += expect_rep(r, MIG__NBD_OPT_SET_META_CONTEXT, MIG__NBD_REP_ERR_UNSUP);
        /* GO: export info, block sizes, name, then ACK */
        assert_int_equal(expect_rep(r, MIG__NBD_OPT_GO, MIG__NBD_REP_INFO), 12);
        assert_int_equal(r16(r), MIG__NBD_INFO_EXPORT);
        assert_true(r64(r) == MEM_SIZE);
        uint16_t tf = r16(r);
        assert_int_equal(tf, RW_TFLAGS);
        assert_int_equal(expect_rep(r, MIG__NBD_OPT_GO, MIG__NBD_REP_INFO), 14);
        assert_int_equal(r16(r), MIG__NBD_INFO_BLOCK_SIZE);
        assert_int_equal(r32(r), 1);
        assert_int_equal(r32(r), 4096);
        assert_int_equal(r32(r), 64 << 10);
        assert_int_equal(expect_rep(r, MIG__NBD_OPT_GO, MIG__NBD_REP_INFO), 2);
        assert_int_equal(r16(r), MIG__NBD_INFO_NAME);
        assert_int_equal(expect_rep(r, MIG__NBD_OPT_GO, MIG__NBD_REP_ACK), 0);
        /* transmission */
        expect_reply(r, 1, 0);
        expect_reply(r, 2, 0);
        assert_memory_equal(r->p + r->pos, pat, 4096);
        r->pos += 4096;
        expect_reply(r, 3, 0);
        expect_reply(r, 4, 0);
        expect_reply(r, 5, 0);
        expect_reply(r, 6, 0);
        expect_reply(r, 7, 0);
        for (int i = 0; i < 200; i++)
            assert_int_equal(r->p[r->pos + (size_t)i], i < 100 ? 0 : 0xab);
        r->pos += 200;
        assert_int_equal(r->pos, r->n); /* nothing after DISC */
        assert_int_equal(fx->mem.fua_writes, 1);
        assert_int_equal(fx->mem.flushes, 1);
        assert_int_equal(fx->mem.trims, 1);
        assert_int_equal(fx->mem.zeroes_keep, 1);
        assert_int_equal(fx->mem.zeroes_punch, 1);
    }
}

static void handshake_export_name_with_zeroes(void **state)
{
    struct fixture *fx = *state;
    struct bytes *c = &fx->cli;
    struct rd *r = &fx->out;
    b32(c, MIG__NBD_FLAG_C_FIXED_NEWSTYLE); /* no NO_ZEROES: 124 zero bytes follow */
    bopt(c, MIG__NBD_OPT_EXPORT_NAME, NULL, 0);
    breq(c, 0, MIG__NBD_CMD_DISC, 1, 0, 0);
    assert_int_equal(run(fx, 0), 0);
    expect_greeting(r);
    assert_true(r64(r) == MEM_SIZE);
    assert_int_equal(r16(r), RW_TFLAGS);
    for (int i = 0; i < 124; i++)
        assert_int_equal(r->p[r->pos++], 0);
    assert_int_equal(r->pos, r->n);
}

static void handshake_unknown_export(void **state)
{
    struct fixture *fx = *state;
    struct bytes *c = &fx->cli;
    struct rd *r = &fx->out;
    uint8_t d[10];
    mig__nbd_put32(d, 4);
    memcpy(d + 4, "nope", 4);
    mig__nbd_put16(d + 8, 0);
    b32(c, MIG__NBD_FLAG_C_FIXED_NEWSTYLE | MIG__NBD_FLAG_C_NO_ZEROES);
    bopt(c, MIG__NBD_OPT_INFO, d, 10);
    bopt(c, MIG__NBD_OPT_LIST, NULL, 0);
    bopt(c, MIG__NBD_OPT_LIST, "x", 1);
    bopt(c, MIG__NBD_OPT_GO, d, 9); /* counts disagree with the length */
    bopt(c, 12345, "abc", 3);
    bopt(c, MIG__NBD_OPT_ABORT, NULL, 0);
    assert_int_equal(run(fx, 3), 0);
    expect_greeting(r);
    r->pos += expect_rep(r, MIG__NBD_OPT_INFO, MIG__NBD_REP_ERR_UNKNOWN);
    assert_int_equal(expect_rep(r, MIG__NBD_OPT_LIST, MIG__NBD_REP_SERVER), 4);
    assert_int_equal(r32(r), 0); /* the default export's empty name */
    assert_int_equal(expect_rep(r, MIG__NBD_OPT_LIST, MIG__NBD_REP_ACK), 0);
    r->pos += expect_rep(r, MIG__NBD_OPT_LIST, MIG__NBD_REP_ERR_INVALID);
    r->pos += expect_rep(r, MIG__NBD_OPT_GO, MIG__NBD_REP_ERR_INVALID);
    r->pos += expect_rep(r, 12345, MIG__NBD_REP_ERR_UNSUP);
    assert_int_equal(expect_rep(r, MIG__NBD_OPT_ABORT, MIG__NBD_REP_ACK), 0);
    assert_int_equal(r->pos, r->n);
}

static void handshake_violations_drop(void **state)
{
    struct fixture *fx = *state;
    struct bytes *c = &fx->cli;
    /* unknown client flag */
    c->n = 0;
    b32(c, 0x80);
    assert_int_equal(run(fx, 0), -MIG_EPROTO);
    /* bad option magic */
    c->n = 0;
    b32(c, 1);
    b64(c, 0x1234);
    b32(c, MIG__NBD_OPT_GO);
    b32(c, 0);
    assert_int_equal(run(fx, 0), -MIG_EPROTO);
    /* EXPORT_NAME of an unknown export cannot be answered: drop */
    c->n = 0;
    b32(c, 1);
    bopt(c, MIG__NBD_OPT_EXPORT_NAME, "other", 5);
    assert_int_equal(run(fx, 0), -MIG_EPROTO);
    struct mig__nbd_stats st;
    mig__nbd_server_stats(fx->srv, &st);
    assert_true(st.proto_errors == 3);
}

static void handshake_huge_option_skipped(void **state)
{
    struct fixture *fx = *state;
    struct bytes *c = &fx->cli;
    struct rd *r = &fx->out;
    b32(c, 3);
    b64(c, MIG__NBD_IHAVEOPT);
    b32(c, 77);
    b32(c, 200000); /* above MIG__NBD_MAX_OPTION: drained, not read */
    c->n += 200000;
    bopt(c, MIG__NBD_OPT_ABORT, NULL, 0);
    assert_int_equal(run(fx, 0), 0);
    expect_greeting(r);
    r->pos += expect_rep(r, 77, MIG__NBD_REP_ERR_TOO_BIG);
    assert_int_equal(expect_rep(r, MIG__NBD_OPT_ABORT, MIG__NBD_REP_ACK), 0);
}

/* After GO, a sequence of bad requests: each answered, the connection stays. */
static void transmission_errors_answered(void **state)
{
    struct fixture *fx = *state;
    struct bytes *c = &fx->cli;
    struct rd *r = &fx->out;
    b32(c, 3);
    bgo(c, MIG__NBD_OPT_GO);
    breq(c, 0, MIG__NBD_CMD_READ, 1, MEM_SIZE, 1);               /* past the end */
    breq(c, 0, MIG__NBD_CMD_WRITE, 2, MEM_SIZE - 1, 2);          /* past the end */
    c->n += 2;
    breq(c, 0, MIG__NBD_CMD_READ, 3, 0, (64 << 10) + 1);         /* oversized */
    breq(c, 0, MIG__NBD_CMD_WRITE, 4, 0, 200000);                /* oversized, drained */
    memset(c->b + c->n, 0xee, 200000);
    c->n += 200000;
    breq(c, 0, MIG__NBD_CMD_BLOCK_STATUS, 5, 0, 1);              /* not negotiated */
    breq(c, 0, 77, 6, 0, 1);                                     /* unknown */
    breq(c, 0, MIG__NBD_CMD_READ, 7, UINT64_MAX - 3, 8);         /* wraps */
    fx->mem.fail_next = -MIG_EIO;
    breq(c, 0, MIG__NBD_CMD_READ, 8, 0, 16);                     /* the export fails */
    breq(c, 0, MIG__NBD_CMD_READ, 9, 0, 16);                     /* and recovers */
    breq(c, 0, MIG__NBD_CMD_WRITE, 10, 0, 4);
    bmem(c, "\x01\x02\x03\x04", 4);
    breq(c, 0, MIG__NBD_CMD_READ, 11, 0, 4);
    /* the client leaves without DISC: fine */
    assert_int_equal(run(fx, 0), 0);
    expect_greeting(r);
    while (mig__nbd_get64(r->p + r->pos) == MIG__NBD_REP_MAGIC) {
        (void)r64(r);
        (void)r32(r);
        uint32_t t = r32(r);
        r->pos += r32(r);
        if (t == MIG__NBD_REP_ACK)
            break;
    }
    expect_reply(r, 1, MIG__NBD_EINVAL);
    expect_reply(r, 2, MIG__NBD_ENOSPC);
    expect_reply(r, 3, MIG__NBD_EOVERFLOW);
    expect_reply(r, 4, MIG__NBD_EOVERFLOW);
    expect_reply(r, 5, MIG__NBD_EINVAL);
    expect_reply(r, 6, MIG__NBD_EINVAL);
    expect_reply(r, 7, MIG__NBD_EINVAL);
    expect_reply(r, 8, MIG__NBD_EIO);
    expect_reply(r, 9, 0);
    r->pos += 16;
    expect_reply(r, 10, 0);
    expect_reply(r, 11, 0);
    assert_memory_equal(r->p + r->pos, "\x01\x02\x03\x04", 4);
    r->pos += 4;
    assert_int_equal(r->pos, r->n);
    /* nothing of the drained payload reached the export */
    for (size_t i = 4; i < MEM_SIZE; i++)
        assert_int_equal(fx->mem.data[i], 0);
}

static void transmission_bad_magic_drops(void **state)
{
    struct fixture *fx = *state;
    struct bytes *c = &fx->cli;
    b32(c, 3);
    bgo(c, MIG__NBD_OPT_GO);
    breq(c, 0, MIG__NBD_CMD_FLUSH, 1, 0, 0);
    put_req(c->b + c->n, 0xdeadbeef, 0, MIG__NBD_CMD_READ, 2, 0, 1);
    c->n += 28;
    breq(c, 0, MIG__NBD_CMD_FLUSH, 3, 0, 0); /* never read */
    assert_int_equal(run(fx, 0), -MIG_EPROTO);
    assert_int_equal(fx->mem.flushes, 1);
}

static void server_rejects_incomplete_ops(void **state)
{
    struct mig__nbd_export_ops ops = mem_ops;
    struct mig__nbd_export exp = {.name = "", .ops = &ops};
    struct mig__nbd_server *srv = (void *)1;
    (void)state;
    ops.trim = NULL;
    assert_int_equal(mig__nbd_server_new(NULL, &exp, NULL, &srv), -MIG_EINVAL);
    assert_null(srv);
    exp.ops = &mem_ops;
    struct mig__nbd_server_config cfg = {.max_payload = 4096};
    assert_int_equal(mig__nbd_server_new(NULL, &exp, &cfg, &srv), -MIG_EINVAL);
    mig__nbd_server_free(NULL);
}

/* ---- the file export ------------------------------------------------------ */

static char tmpl[64];

static int file_setup(void **state)
{
    int fd;
    (void)state;
    snprintf(tmpl, sizeof(tmpl), "/tmp/test-nbd-XXXXXX");
    fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 8 << 20), 0);
    close(fd);
    return 0;
}

static int file_teardown(void **state)
{
    (void)state;
    unlink(tmpl);
    return 0;
}

static uint64_t allocated(void)
{
    struct stat st;
    assert_int_equal(stat(tmpl, &st), 0);
    return (uint64_t)st.st_blocks * 512;
}

static void file_export_ops(void **state)
{
    struct mig__nbd_file *f = NULL;
    struct mig__nbd_export exp;
    static uint8_t buf[1 << 20], back[1 << 20];
    (void)state;
    assert_int_equal(mig__nbd_file_export_open(NULL, tmpl, false, &f), 0);
    mig__nbd_file_export(f, &exp);
    const struct mig__nbd_export_ops *o = exp.ops;
    assert_true(o->size(f) == 8 << 20);
    assert_true(exp.flags & MIG__NBD_EXPORT_MULTI_CONN);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(o->pwrite(f, 1 << 20, sizeof(buf), buf, true), 0);
    assert_int_equal(o->pwrite(f, 4 << 20, sizeof(buf), buf, false), 0);
    assert_int_equal(o->flush(f), 0);
    assert_int_equal(o->pread(f, 1 << 20, sizeof(back), back), 0);
    assert_memory_equal(buf, back, sizeof(buf));
    uint64_t before = allocated();
    assert_true(before >= (2u << 20));
    /* trim punches a hole (where the filesystem can) */
    assert_int_equal(o->trim(f, 1 << 20, 1 << 20, false), 0);
    uint64_t after = allocated();
    if (after < before) /* tmpfs, ext4, xfs: yes */
        assert_true(before - after >= (1u << 20) - 8192);
    /* zeroes that may punch, and ones that must stay allocated */
    assert_int_equal(o->write_zeroes(f, (4 << 20) + 100, 5000, true, false), 0);
    assert_int_equal(o->write_zeroes(f, (4 << 20) + 200000, 300000, false, true), 0);
    assert_int_equal(o->pread(f, 4 << 20, sizeof(back), back), 0);
    for (size_t i = 0; i < sizeof(back); i++) {
        bool zero = (i >= 100 && i < 5100) || (i >= 200000 && i < 500000);
        if (back[i] != (zero ? 0 : buf[i]))
            fail_msg("byte %zu is %u", i, back[i]);
    }
    mig__nbd_file_close(f);
    /* read-only refuses writes */
    assert_int_equal(mig__nbd_file_export_open(NULL, tmpl, true, &f), 0);
    mig__nbd_file_export(f, &exp);
    assert_true(exp.flags & MIG__NBD_EXPORT_READ_ONLY);
    assert_int_equal(exp.ops->pwrite(f, 0, 1, buf, false), -MIG_EPERM);
    assert_int_equal(exp.ops->pread(f, 0, 1, back), 0);
    mig__nbd_file_close(f);
    assert_int_equal(mig__nbd_file_export_open(NULL, "/nonexistent/x", false, &f), -MIG_ENOENT);
    assert_int_equal(mig__nbd_file_export_open(NULL, "/tmp", false, &f) < 0, 1);
}

/* ---- a real server on a socketpair ---------------------------------------- */

struct serve_arg {
    struct mig__nbd_server *srv;
    int fd;
    int rc;
};

static void *serve_thread(void *p)
{
    struct serve_arg *a = p;
    a->rc = mig__nbd_server_serve_fd(a->srv, a->fd);
    return NULL;
}

static void wr(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void rd_exact(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (uint8_t *)p + got, n - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

static void socket_server_survives(void **state)
{
    struct mem *m = calloc(1, sizeof(*m));
    struct mig__nbd_export exp = {.name = "", .ops = &mem_ops, .opaque = m};
    struct serve_arg a = {0};
    pthread_t t;
    int sv[2];
    uint8_t buf[256];
    struct bytes *c = calloc(1, sizeof(*c));
    (void)state;
    assert_int_equal(mig__nbd_server_new(NULL, &exp, NULL, &a.srv), 0);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        a.fd = sv[1];
        assert_int_equal(pthread_create(&t, NULL, serve_thread, &a), 0);
        rd_exact(sv[0], buf, 18);
        c->n = 0;
        b32(c, 3);
        bgo(c, MIG__NBD_OPT_GO);
        wr(sv[0], c->b, c->n);
        rd_exact(sv[0], buf, 20 + 12 + 20 + 14 + 20 + 2 + 20);
        c->n = 0;
        breq(c, 0, MIG__NBD_CMD_READ, 1, 0, 0xffffffffu); /* oversized */
        wr(sv[0], c->b, c->n);
        rd_exact(sv[0], buf, 16);
        assert_int_equal(mig__nbd_get32(buf + 4), MIG__NBD_EOVERFLOW);
        c->n = 0;
        if (round == 0) {
            put_req(c->b, 0x12345678, 0, 0, 2, 0, 0); /* bad magic: dropped */
            c->n = 28;
        } else {
            breq(c, 0, MIG__NBD_CMD_DISC, 2, 0, 0);
        }
        wr(sv[0], c->b, c->n);
        assert_int_equal(recv(sv[0], buf, 1, 0), 0); /* closed by the server */
        pthread_join(t, NULL);
        assert_int_equal(a.rc, round == 0 ? -MIG_EPROTO : 0);
        close(sv[0]);
    }
    struct mig__nbd_stats st;
    mig__nbd_server_stats(a.srv, &st);
    assert_true(st.conns_accepted == 2 && st.proto_errors == 1 && st.request_errors == 2);
    mig__nbd_server_free(a.srv);
    free(c);
    free(m);
}

/* Listeners, the accept thread, the connection cap, and stop() ending a
 * connection that is waiting for its client. */
static void server_lifecycle(void **state)
{
    struct mem *m = calloc(1, sizeof(*m));
    struct mig__nbd_export exp = {.name = "", .ops = &mem_ops, .opaque = m};
    struct mig__nbd_server_config cfg = {.max_payload = 64 << 10, .max_conns = 1};
    struct mig__nbd_server *srv = NULL;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char path[64];
    uint8_t buf[64];
    uint16_t port = 0;
    int c1, c2;
    struct stat st;
    (void)state;
    snprintf(path, sizeof(path), "/tmp/test-nbd-%d.sock", (int)getpid());
    assert_int_equal(mig__nbd_server_new(NULL, &exp, &cfg, &srv), 0);
    assert_int_equal(mig__nbd_server_start(srv), -MIG_EINVAL); /* nothing to listen on */
    assert_int_equal(mig__nbd_server_listen_unix(srv, path), 0);
    assert_int_equal(mig__nbd_server_listen_tcp(srv, 0, &port), 0);
    assert_true(port != 0);
    assert_int_equal(mig__nbd_server_start(srv), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    memcpy(a.sun_path, path, strlen(path) + 1);
    c1 = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(c1, (struct sockaddr *)&a, sizeof(a)), 0);
    rd_exact(c1, buf, 18); /* the greeting: the one slot is now busy */
    c2 = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(c2, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_true(recv(c2, buf, 1, 0) <= 0); /* refused: closed at once */
    close(c2);
    struct mig__nbd_stats st2;
    mig__nbd_server_stats(srv, &st2);
    assert_true(st2.conns_refused == 1 && st2.conns_accepted == 1);
    /* c1 idles in the handshake; stop must still end it and return */
    mig__nbd_server_stop(srv);
    assert_true(recv(c1, buf, 1, 0) <= 0);
    assert_int_equal(stat(path, &st), -1); /* socket removed */
    mig__nbd_server_stop(srv); /* idempotent */
    assert_int_equal(mig__nbd_server_serve_fd(srv, dup(c1)), -MIG_EBUSY); /* stopped */
    close(c1);
    mig__nbd_server_free(srv);
    /* a path that exists and is not a socket is never replaced */
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mig__nbd_server_new(NULL, &exp, &cfg, &srv), 0);
    assert_int_equal(mig__nbd_server_listen_unix(srv, path), -MIG_EEXIST);
    mig__nbd_server_free(srv);
    unlink(path);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_fields),
        cmocka_unit_test(decode_bad_magic),
        cmocka_unit_test(check_valid),
        cmocka_unit_test(check_einval),
        cmocka_unit_test(check_a_refused_write_still_drains),
        cmocka_unit_test(check_oversized),
        cmocka_unit_test(check_out_of_range),
        cmocka_unit_test(check_read_only),
        cmocka_unit_test(error_mapping),
        cmocka_unit_test_setup_teardown(handshake_go_then_io, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(handshake_export_name_with_zeroes, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(handshake_unknown_export, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(handshake_violations_drop, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(handshake_huge_option_skipped, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(transmission_errors_answered, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(transmission_bad_magic_drops, fx_setup, fx_teardown),
        cmocka_unit_test(server_rejects_incomplete_ops),
        cmocka_unit_test_setup_teardown(file_export_ops, file_setup, file_teardown),
        cmocka_unit_test(socket_server_survives),
        cmocka_unit_test(server_lifecycle),
    };
    return cmocka_run_group_tests_name("nbd", tests, NULL, NULL);
}
