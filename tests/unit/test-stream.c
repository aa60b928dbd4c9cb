/* Unit tests for the stream layer: CRC32C, framing, every record type's
 * round trip, and the reader's refusals (stream.c, record.c, crc32c.c,
 * handshake.c), over socketpairs. */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define MIG_LOG_MODULE "test"
#include "../../libmig/src/stream/crc32c.h"
#include "../../libmig/src/stream/stream-internal.h"

struct logbuf {
    char text[16384];
};

static void capture(void *opaque, enum mig_log_level level, const char *module, const char *msg)
{
    struct logbuf *lb = opaque;
    size_t n = strlen(lb->text);
    snprintf(lb->text + n, sizeof(lb->text) - n, "%s\n", msg);
}

struct pair {
    struct mig_ctx *ctx;
    struct logbuf log;
    struct mig__stream *a, *b;  /* a writes, b reads (both can do both) */
    int raw;                    /* dup of a's socket for hand-made bytes */
};

static void pair_open(struct pair *p, unsigned timeout_ms, bool handshake_done)
{
    int sv[2];
    struct mig__conn *ca, *cb;
    memset(p, 0, sizeof(*p));
    assert_int_equal(mig_ctx_new(&p->ctx), 0);
    mig_ctx_set_logger(p->ctx, capture, &p->log);
    mig_ctx_set_log_level(p->ctx, MIG_LOG_DEBUG);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    p->raw = dup(sv[0]);
    assert_int_equal(mig__conn_fd_new(p->ctx, sv[0], sv[0], MIG_AUTH_NONE, "a", &ca), 0);
    assert_int_equal(mig__conn_fd_new(p->ctx, sv[1], sv[1], MIG_AUTH_NONE, "b", &cb), 0);
    assert_int_equal(mig__stream_new(p->ctx, ca, timeout_ms, &p->a), 0);
    assert_int_equal(mig__stream_new(p->ctx, cb, timeout_ms, &p->b), 0);
    mig__stream_set_handshake(p->a, !handshake_done);
    mig__stream_set_handshake(p->b, !handshake_done);
}

static void pair_close(struct pair *p)
{
    mig__stream_free(p->a);
    mig__stream_free(p->b);
    close(p->raw);
    mig_ctx_free(p->ctx);
}

static void raw_write(struct pair *p, const void *b, size_t n)
{
    assert_int_equal(write(p->raw, b, n), (ssize_t)n);
}

static void hdr(uint8_t h[16], uint32_t type, uint32_t len, const void *payload)
{
    static const uint8_t z[8];
    mig__le32_put(h, type);
    mig__le32_put(h + 4, len);
    uint32_t crc = mig__crc32c(0, h, 8);
    crc = mig__crc32c(crc, payload, len);
    crc = mig__crc32c(crc, z, (8 - (len & 7)) & 7);
    mig__le32_put(h + 8, crc);
    mig__le32_put(h + 12, 0);
}

/* ---- CRC32C -------------------------------------------------------------- */

static void crc_vectors(void **state)
{
    (void)state;
    assert_int_equal(mig__crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(mig__crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(mig__crc32c(0, "", 0), 0u);
    uint8_t z[32] = {0}, f[32];
    memset(f, 0xff, sizeof(f));
    assert_int_equal(mig__crc32c(0, z, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    assert_int_equal(mig__crc32c(0, f, 32), 0x62A8AB43u);
    /* Incremental equals one shot. */
    assert_int_equal(mig__crc32c(mig__crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

static void crc_fast_matches_fallback(void **state)
{
    (void)state;
    size_t n = 64 * 1024 + 17;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    srand(7);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rand();
    /* The machines we run on have SSE4.2: a fast path must be exercised. */
#if defined(__x86_64__)
    assert_true(mig__crc32c_hw_available());
    assert_true(mig__crc32c_impl_available(MIG_CRC_SSE42));
#endif
    unsigned tested = 0;
    for (int impl = MIG_CRC_SSE42; impl <= MIG_CRC_AVX512; impl++) {
        if (!mig__crc32c_impl_available((enum mig__crc_impl)impl))
            continue;
        tested++;
        for (int t = 0; t < 300; t++) {
            size_t off = (size_t)rand() % 13, len = (size_t)rand() % (n - 16);
            if (t < 40) /* around the block sizes: 256, 3 x 4096, and tiny ones */
                len = (t < 20 ? 256 * (size_t)t / 3 : 3 * 4096 * (size_t)(t - 19) / 2) + 1;
            len |= 1; /* odd lengths */
            if (len > n - off)
                len = n - off;
            struct iovec one = {b + off, len};
            uint32_t seed = (uint32_t)rand();
            assert_int_equal(mig__crc32c_iov_with((enum mig__crc_impl)impl, seed, &one, 1),
                             mig__crc32c_sw(seed, b + off, len));
        }
        /* Scatter lists: whole pages (the interleaved path) and odd pieces. */
        struct iovec iov[7] = {{b, 4096},     {b + 8192, 4096}, {b + 100, 4096},
                               {b + 3, 4096}, {b + 5, 13},      {b + 20000, 4096},
                               {b + 40000, 4095}};
        uint32_t want = 0;
        for (int i = 0; i < 7; i++)
            want = mig__crc32c_sw(want, iov[i].iov_base, iov[i].iov_len);
        assert_int_equal(mig__crc32c_iov_with((enum mig__crc_impl)impl, 0, iov, 7), want);
        struct iovec v = {"123456789", 9};
        assert_int_equal(mig__crc32c_iov_with((enum mig__crc_impl)impl, 0, &v, 1), 0xE3069283u);
    }
    print_message("CRC32C fast paths tested: %u (best: %d)\n", tested, (int)mig__crc32c_best());
    assert_true(tested >= 1);
    free(b);
}

/* ---- round trips ----------------------------------------------------------- */

static void roundtrip_all_types(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    pair_open(&p, 3000, true);

    /* PAGES: 1024 pages with distinct contents, sent from scattered buffers. */
    unsigned n = MIG_PAGES_PER_BATCH;
    uint8_t *mem = malloc((size_t)n * MIG_PAGE_SIZE);
    uint64_t *pfns = malloc(n * sizeof(*pfns));
    const void **pages = malloc(n * sizeof(*pages));
    for (unsigned i = 0; i < n; i++) {
        pfns[i] = 1000 + 3 * i;
        pages[i] = mem + (size_t)((i * 7) % n) * MIG_PAGE_SIZE;
        memset(mem + (size_t)i * MIG_PAGE_SIZE, (int)(i & 0xff), MIG_PAGE_SIZE);
    }
    uint64_t frame_pfn = 77;
    uint8_t frame[100];
    memset(frame, 0x5a, sizeof(frame));
    struct mig__zero_run runs[2] = {{10, 5}, {100, 1}};
    struct mig__rec_dom_info di = {.name = "web01", .nr_pages = 262144, .page_size = 4096,
                                   .vcpus = 2, .config = "dirty=10,pattern=seq"};
    uint8_t sid[16];
    memset(sid, 0xab, sizeof(sid));
    uint8_t blob[1000];
    for (unsigned i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(i * 3);

    /* Writer in a child thread would be nicer; the socket buffer would fill
     * with 4 MiB, so a forked child writes everything. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mig__rec_put_pages(p.a, 5, n, pfns, pages);
        mig__rec_put_pages_zstd(p.a, 6, 1, &frame_pfn, frame, sizeof(frame));
        mig__rec_put_zero_runs(p.a, 7, 2, runs);
        mig__rec_put_round_end(p.a, 8, 123456789012ull);
        mig__rec_put_blob(p.a, 42, blob, sizeof(blob));
        mig__rec_put_block_extent(p.a, 3, 1ull << 40, blob, 100);
        mig__rec_put_text(p.a, MIG_REC_FACTS, "{\"cpu\":\"x86\",\"name\":\"h\u00f6st\"}");
        mig__rec_put_dom_info(p.a, &di);
        uint32_t empties[] = {MIG_REC_SWITCHOVER, MIG_REC_READY, MIG_REC_COMMIT,
                              MIG_REC_COMMIT_ACK, MIG_REC_KEEPALIVE};
        for (unsigned i = 0; i < 5; i++)
            mig__rec_put_empty(p.a, empties[i]);
        mig__rec_put_code_text(p.a, MIG_REC_ABORT, 9, "user cancelled");
        mig__rec_put_code_text(p.a, MIG_REC_ERROR, 4, "bad things");
        mig__rec_put_resolve_query(p.a, sid, "web01");
        mig__rec_put_resolve_answer(p.a, sid, MIG_STATE_COMMITTED);
        _exit(mig__stream_flush(p.a) ? 1 : 0);
    }

    struct mig__rec_pages pg;
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(r.type, MIG_REC_PAGES);
    assert_int_equal(mig__rec_get_pages(&r, &pg), 0);
    assert_int_equal(pg.round, 5);
    assert_int_equal(pg.count, n);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(pg.pfns[i], pfns[i]);
        assert_memory_equal(pg.data + (size_t)i * MIG_PAGE_SIZE, pages[i], MIG_PAGE_SIZE);
    }
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(mig__rec_get_pages(&r, &pg), 0);
    assert_int_equal(pg.round, 6);
    assert_int_equal(pg.pfns[0], 77);
    assert_int_equal(pg.raw_len, 4096);
    assert_int_equal(pg.data_len, sizeof(frame));
    assert_memory_equal(pg.data, frame, sizeof(frame));

    struct mig__rec_zero_runs zr;
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(mig__rec_get_zero_runs(&r, &zr), 0);
    assert_int_equal(zr.round, 7);
    assert_int_equal(zr.nruns, 2);
    assert_int_equal(zr.runs[0].pfn, 10);
    assert_int_equal(zr.runs[1].count, 1);

    uint32_t u32;
    uint64_t u64;
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(mig__rec_get_round_end(&r, &u32, &u64), 0);
    assert_int_equal(u32, 8);
    assert_int_equal(u64, 123456789012ull);

    const void *data;
    size_t len;
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(mig__rec_get_blob(&r, &u32, &data, &len), 0);
    assert_int_equal(u32, 42);
    assert_int_equal(len, sizeof(blob));
    assert_memory_equal(data, blob, sizeof(blob));

    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(mig__rec_get_block_extent(&r, &u32, &u64, &data, &len), 0);
    assert_int_equal(u32, 3);
    assert_int_equal(u64, 1ull << 40);
    assert_int_equal(len, 100);

    char *text = NULL;
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(mig__rec_get_text(&r, &text), 0);
    assert_string_equal(text, "{\"cpu\":\"x86\",\"name\":\"h\u00f6st\"}");
    free(text);

    struct mig__rec_dom_info d2;
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(mig__rec_get_dom_info(&r, &d2), 0);
    assert_string_equal(d2.name, "web01");
    assert_string_equal(d2.config, "dirty=10,pattern=seq");
    assert_int_equal(d2.nr_pages, 262144);
    assert_int_equal(d2.vcpus, 2);

    /* KEEPALIVE is consumed silently: four empties arrive, not five. */
    uint32_t want[] = {MIG_REC_SWITCHOVER, MIG_REC_READY, MIG_REC_COMMIT, MIG_REC_COMMIT_ACK};
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(mig__stream_get(p.b, &r), 0);
        assert_int_equal(r.type, want[i]);
        assert_int_equal(r.len, 0);
    }
    int32_t code;
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(r.type, MIG_REC_ABORT);
    assert_int_equal(mig__rec_get_code_text(&r, &code, &text), 0);
    assert_int_equal(code, 9);
    assert_string_equal(text, "user cancelled");
    free(text);
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(r.type, MIG_REC_ERROR);
    assert_int_equal(mig__rec_get_code_text(&r, &code, &text), 0);
    assert_string_equal(text, "bad things");
    free(text);

    uint8_t sid2[16];
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(mig__rec_get_resolve_query(&r, sid2, &text), 0);
    assert_memory_equal(sid2, sid, 16);
    assert_string_equal(text, "web01");
    free(text);
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(mig__rec_get_resolve_answer(&r, sid2, &u32), 0);
    assert_int_equal(u32, MIG_STATE_COMMITTED);

    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(mig__stream_bytes_in(p.b) > (uint64_t)n * MIG_PAGE_SIZE);
    assert_string_equal(mig__rec_type_name(MIG_REC_PAGES), "PAGES");
    assert_string_equal(mig__rec_type_name(999), "UNKNOWN");
    free(pages);
    free(pfns);
    free(mem);
    pair_close(&p);
}

/* Every type has a name and a limit; no gap in the table. */
static void type_table_complete(void **state)
{
    (void)state;
    for (uint32_t t = 1; t < MIG_REC__COUNT; t++) {
        assert_true(mig__rec_type_known(t));
        assert_string_not_equal(mig__rec_type_name(t), "UNKNOWN");
    }
    assert_false(mig__rec_type_known(0));
    assert_false(mig__rec_type_known(MIG_REC__COUNT));
}

/* ---- the reader's refusals ------------------------------------------------- */

static void truncated_header(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    pair_open(&p, 2000, true);
    uint8_t h[16];
    hdr(h, MIG_REC_READY, 0, NULL);
    raw_write(&p, h, 7);
    mig__stream_shutdown(p.a); /* EOF after 7 bytes */
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_EPEER);
    assert_int_equal(mig__stream_error(p.b), -MIG_EPEER);
    pair_close(&p);
}

static void too_long_rejected_before_allocating(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    pair_open(&p, 5000, true);
    uint8_t h[16] = {0};
    /* Only the header is sent: if the reader tried to allocate and read
     * the payload it would block until the 5 s timeout instead. */
    mig__le32_put(h, MIG_REC_STATE_BLOB);
    mig__le32_put(h + 4, 0xfffffff0u);
    raw_write(&p, h, 16);
    uint64_t t0 = mig__now_ns();
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_ETOOBIG);
    assert_true(mig__now_ns() - t0 < 1000000000ull);
    assert_int_equal(mig__stream_bytes_in(p.b), 16);
    assert_non_null(strstr(p.log.text, "longer than its type allows"));
    /* Sticky: the next get fails the same way without reading. */
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_ETOOBIG);

    /* Writer side: an oversized put is refused and sticks. */
    uint8_t small[8] = {0};
    struct iovec iov = {small, 8};
    mig__stream_put(p.a, MIG_REC_ROUND_END, &iov, 1); /* fixed 16 */
    mig__rec_put_code_text(p.a, MIG_REC_READY, 1, "x"); /* READY max 0 */
    assert_int_equal(mig__stream_flush(p.a), -MIG_ETOOBIG);
    pair_close(&p);
}

static void wrong_fixed_size_rejected(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    pair_open(&p, 2000, true);
    uint8_t buf[16 + 8] = {0};
    hdr(buf, MIG_REC_ROUND_END, 8, buf + 16);
    raw_write(&p, buf, sizeof(buf));
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_EPROTO);
    pair_close(&p);
}

static void unknown_type(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    pair_open(&p, 2000, true);
    uint8_t h[16];
    hdr(h, 9999, 0, NULL);
    raw_write(&p, h, 16);
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_EPROTO);
    assert_non_null(strstr(p.log.text, "unknown record type"));
    pair_close(&p);
}

static void flipped_byte_is_crc_error(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    pair_open(&p, 2000, true);
    uint8_t payload[16] = {1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0};
    uint8_t buf[32];
    hdr(buf, MIG_REC_ROUND_END, 16, payload);
    memcpy(buf + 16, payload, 16);
    buf[16 + 9] ^= 0x04; /* corruption in transit */
    raw_write(&p, buf, sizeof(buf));
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_ECRC);
    assert_non_null(strstr(p.log.text, "CRC32C mismatch"));
    /* The session is over: writes after the error are no-ops. */
    mig__rec_put_empty(p.b, MIG_REC_READY);
    assert_int_equal(mig__stream_flush(p.b), -MIG_ECRC);
    assert_int_equal(mig__stream_bytes_out(p.b), 0);
    pair_close(&p);
}

/* ---- PAGES straight into their destination (mig__placer) ---------------- */

struct placing {
    uint8_t mem[16][MIG_PAGE_SIZE]; /* the "domain" */
    int answer;                     /* 0 place, 1 decline, < 0 refuse */
    unsigned calls;
    uint32_t round, count;
};

static int place_cb(void *opaque, uint32_t round, uint32_t count, const uint64_t *pfns,
                    void **ptrs)
{
    struct placing *pl = opaque;
    pl->calls++;
    pl->round = round;
    pl->count = count;
    if (pl->answer)
        return pl->answer;
    for (uint32_t i = 0; i < count; i++) {
        assert_true(pfns[i] < 16);
        ptrs[i] = pl->mem[pfns[i]];
    }
    return 0;
}

static void put_four_pages(struct pair *p, uint8_t seed)
{
    static uint8_t pages[4][MIG_PAGE_SIZE];
    const uint64_t pfns[4] = {3, 4, 5, 9}; /* a run of three, then one apart */
    const void *ptrs[4];
    for (unsigned i = 0; i < 4; i++) {
        memset(pages[i], seed + i, MIG_PAGE_SIZE);
        pages[i][100] = (uint8_t)(0xa0 + i);
        ptrs[i] = pages[i];
    }
    mig__rec_put_pages(p->a, 7, 4, pfns, ptrs);
    mig__rec_put_round_end(p->a, 7, 4);
    assert_int_equal(mig__stream_flush(p->a), 0);
}

static void placer_reads_pages_into_place(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    struct mig__rec_pages pg;
    static struct placing pl;
    struct mig__placer placer = {.place = place_cb, .opaque = &pl};
    uint32_t round;
    uint64_t pages;
    pair_open(&p, 2000, true);
    mig__stream_set_placer(p.b, &placer);

    /* placed: the data is in the domain, the record has round, count, pfns */
    memset(&pl, 0, sizeof(pl));
    put_four_pages(&p, 0x10);
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(r.type, MIG_REC_PAGES);
    assert_true(r.placed);
    assert_int_equal(r.place_err, 0);
    assert_int_equal(pl.calls, 1);
    assert_int_equal(pl.round, 7);
    assert_int_equal(pl.count, 4);
    const uint64_t want[4] = {3, 4, 5, 9};
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(pl.mem[want[i]][0], 0x10 + i);
        assert_int_equal(pl.mem[want[i]][100], 0xa0 + i);
        assert_int_equal(pl.mem[want[i]][MIG_PAGE_SIZE - 1], 0x10 + i);
    }
    assert_int_equal(pl.mem[6][0], 0); /* between the runs: untouched */
    assert_int_equal(mig__le32_get(r.payload + 4), 4);
    assert_int_equal(mig__le64_get(r.payload + 8 + 3 * 8), 9);
    /* the framing goes on */
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(r.type, MIG_REC_ROUND_END);
    assert_int_equal(mig__rec_get_round_end(&r, &round, &pages), 0);
    assert_int_equal(pages, 4);

    /* declined: read as usual */
    memset(&pl, 0, sizeof(pl));
    pl.answer = 1;
    put_four_pages(&p, 0x20);
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_false(r.placed);
    assert_int_equal(r.place_err, 0);
    assert_int_equal(mig__rec_get_pages(&r, &pg), 0);
    assert_int_equal(pg.count, 4);
    assert_int_equal(((const uint8_t *)pg.data)[3 * MIG_PAGE_SIZE], 0x23);
    assert_int_equal(pl.mem[3][0], 0);
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(r.type, MIG_REC_ROUND_END);

    /* refused: the record says so, its data went nowhere, the stream lives */
    memset(&pl, 0, sizeof(pl));
    pl.answer = -MIG_EPROTO;
    put_four_pages(&p, 0x30);
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_false(r.placed);
    assert_int_equal(r.place_err, -MIG_EPROTO);
    assert_int_equal(pl.mem[3][0], 0);
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(r.type, MIG_REC_ROUND_END);

    /* a count the record's length does not match is never placed */
    memset(&pl, 0, sizeof(pl));
    uint8_t bad[16 + 8 + 8 + MIG_PAGE_SIZE + 8];
    memset(bad, 0, sizeof(bad));
    uint8_t *pay = bad + 16;
    mig__le32_put(pay, 1);     /* round */
    mig__le32_put(pay + 4, 2); /* count 2, but room for one page */
    hdr(bad, MIG_REC_PAGES, 8 + 8 + MIG_PAGE_SIZE + 8, pay);
    raw_write(&p, bad, sizeof(bad));
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_false(r.placed);
    assert_int_equal(pl.calls, 0);
    assert_int_equal(mig__rec_get_pages(&r, &pg), -MIG_EPROTO);
    pair_close(&p);
}

/* A byte flipped in placed page data: the CRC, checked after the data is
 * in place, ends the stream (the incoming domain is then discarded). */
static void placer_crc_mismatch_fails(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    static struct placing pl;
    struct mig__placer placer = {.place = place_cb, .opaque = &pl};
    static uint8_t buf[16 + 8 + 8 + MIG_PAGE_SIZE];
    static uint8_t page[MIG_PAGE_SIZE];
    pair_open(&p, 2000, true);
    mig__stream_set_placer(p.b, &placer);
    memset(&pl, 0, sizeof(pl));
    memset(page, 0x5c, sizeof(page));
    uint8_t *pay = buf + 16;
    mig__le32_put(pay, 0);
    mig__le32_put(pay + 4, 1);
    mig__le64_put(pay + 8, 2);
    memcpy(pay + 16, page, MIG_PAGE_SIZE);
    hdr(buf, MIG_REC_PAGES, 16 + MIG_PAGE_SIZE, pay);
    buf[16 + 16 + 1234] ^= 0x01; /* corruption in transit */
    raw_write(&p, buf, sizeof(buf));
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_ECRC);
    assert_int_equal(pl.calls, 1);
    assert_non_null(strstr(p.log.text, "CRC32C mismatch in placed pages"));
    pair_close(&p);
}

/* ---- PAGES_CRC: pages with a CRC each ---------------------------------------- */

/* Five pages (an odd count: the list is padded) at pfns 3, 4, 5, 9, 10 whose
 * CRCs are taken before 'torn' (a mask of page indices) changes them, as a
 * guest writing a page between the sender's CRC and the socket's copy. */
static void put_five_crc_pages(struct pair *p, uint8_t seed, unsigned torn)
{
    static uint8_t pages[5][MIG_PAGE_SIZE];
    const uint64_t pfns[5] = {3, 4, 5, 9, 10};
    const void *ptrs[5];
    uint32_t crcs[5];
    for (unsigned i = 0; i < 5; i++) {
        memset(pages[i], seed + i, MIG_PAGE_SIZE);
        crcs[i] = mig__crc32c(0, pages[i], MIG_PAGE_SIZE);
        if (torn & (1u << i))
            pages[i][2000] ^= 0x40;
        ptrs[i] = pages[i];
    }
    mig__rec_put_pages_crc_begin(p->a, 2, 5, pfns, ptrs);
    mig__rec_put_pages_crc_end(p->a, 5, crcs);
    mig__rec_put_round_end(p->a, 2, 5);
    assert_int_equal(mig__stream_flush(p->a), 0);
}

static void pages_crc_names_torn_pages(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    struct mig__rec_pages pg;
    static struct placing pl;
    struct mig__placer placer = {.place = place_cb, .opaque = &pl};
    pair_open(&p, 2000, true);
    for (int placed = 0; placed < 2; placed++) {
        mig__stream_set_placer(p.b, placed ? &placer : NULL);
        memset(&pl, 0, sizeof(pl));
        /* intact */
        put_five_crc_pages(&p, 0x40, 0);
        assert_int_equal(mig__stream_get(p.b, &r), 0);
        assert_int_equal(r.type, MIG_REC_PAGES_CRC);
        assert_int_equal(r.placed, placed);
        assert_int_equal(r.nbad, 0);
        assert_int_equal(mig__rec_get_pages(&r, &pg), 0);
        assert_int_equal(pg.round, 2);
        assert_int_equal(pg.count, 5);
        assert_int_equal(pg.pfns[4], 10);
        assert_non_null(pg.crcs);
        if (placed) {
            assert_null(pg.data);
            assert_int_equal(pl.mem[10][MIG_PAGE_SIZE - 1], 0x44);
        } else {
            assert_int_equal(pg.data_len, 5 * MIG_PAGE_SIZE);
            assert_int_equal(pg.data[4 * MIG_PAGE_SIZE], 0x44);
        }
        assert_int_equal(mig__stream_get(p.b, &r), 0);
        assert_int_equal(r.type, MIG_REC_ROUND_END);
        assert_int_equal(r.nbad, 0);
        /* pages 1 and 4 torn: named, stored all the same, the stream goes on */
        put_five_crc_pages(&p, 0x50, (1u << 1) | (1u << 4));
        assert_int_equal(mig__stream_get(p.b, &r), 0);
        assert_int_equal(r.nbad, 2);
        assert_int_equal(r.bad[0], 1);
        assert_int_equal(r.bad[1], 4);
        assert_int_equal(mig__rec_get_pages(&r, &pg), 0);
        if (placed)
            assert_int_equal(pl.mem[4][2000], 0x51 ^ 0x40);
        else
            assert_int_equal(pg.data[MIG_PAGE_SIZE + 2000], 0x51 ^ 0x40);
        assert_int_equal(mig__stream_get(p.b, &r), 0);
        assert_int_equal(r.type, MIG_REC_ROUND_END);
    }
    pair_close(&p);
}

/* A record put by another thread (a hook's BLOCK_EXTENT) while a PAGES_CRC
 * is open waits for its end instead of landing inside it. */
static void *put_round_end(void *arg)
{
    mig__rec_put_round_end(arg, 9, 1);
    return NULL;
}

static void pages_crc_open_record_is_not_split(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    struct mig__rec_pages pg;
    static uint8_t pages[2][MIG_PAGE_SIZE];
    const uint64_t pfns[2] = {1, 2};
    const void *ptrs[2] = {pages[0], pages[1]};
    uint32_t crcs[2];
    pthread_t t;
    pair_open(&p, 2000, true);
    memset(pages, 0x3c, sizeof(pages));
    mig__rec_put_pages_crc_begin(p.a, 4, 2, pfns, ptrs);
    assert_int_equal(pthread_create(&t, NULL, put_round_end, p.a), 0);
    usleep(50000); /* the other writer is waiting for the lock */
    for (int i = 0; i < 2; i++)
        crcs[i] = mig__crc32c(0, pages[i], MIG_PAGE_SIZE);
    mig__rec_put_pages_crc_end(p.a, 2, crcs);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(mig__stream_flush(p.a), 0);
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(r.type, MIG_REC_PAGES_CRC);
    assert_int_equal(r.nbad, 0);
    assert_int_equal(mig__rec_get_pages(&r, &pg), 0);
    assert_int_equal(pg.crcs[1], crcs[1]);
    assert_int_equal(mig__stream_get(p.b, &r), 0);
    assert_int_equal(r.type, MIG_REC_ROUND_END);
    pair_close(&p);
}

/* The page list has the record's CRC: damage there ends the stream before
 * a page is read or placed; the CRCs have their own: damage there ends it
 * too; counts the length does not match, and padding that is not zero, are
 * refused. */
static void pages_crc_list_checked(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    static struct placing pl;
    struct mig__placer placer = {.place = place_cb, .opaque = &pl};
    static uint8_t buf[16 + 8 + 16 + 2 * MIG_PAGE_SIZE + 12 + 4];
    assert_int_equal(mig__rec_pages_crc_len(1), 8 + 8 + MIG_PAGE_SIZE + 4 + 4);
    static const char *const why[] = {"CRC32C mismatch in a page list",
                                      "page count does not match",
                                      "CRC32C mismatch in a page record's CRCs",
                                      "non-zero padding"};
    for (int c = 0; c < 4; c++) {
        pair_open(&p, 2000, true);
        mig__stream_set_placer(p.b, &placer);
        memset(&pl, 0, sizeof(pl));
        memset(buf, 0, sizeof(buf));
        uint32_t n = c == 3 ? 2 : 1, len = mig__rec_pages_crc_len(n);
        uint8_t *pay = buf + 16, *pages = pay + 8 + 8 * n, *tail = pages + n * MIG_PAGE_SIZE;
        mig__le32_put(pay, 0);
        mig__le32_put(pay + 4, c == 1 ? 2 : n);
        for (uint32_t i = 0; i < n; i++) {
            mig__le64_put(pay + 8 + 8 * i, 2 + i);
            memset(pages + i * MIG_PAGE_SIZE, 0x77, MIG_PAGE_SIZE);
            mig__le32_put(tail + 4 * i, mig__crc32c(0, pages + i * MIG_PAGE_SIZE, MIG_PAGE_SIZE));
        }
        mig__le32_put(tail + 4 * n, mig__crc32c(0, tail, 4 * n));
        if (c == 3)
            tail[4 * n + 4 + 1] = 1; /* the record's padding (len % 8 == 4) */
        /* the record's CRC over the header and the list only */
        mig__le32_put(buf, MIG_REC_PAGES_CRC);
        mig__le32_put(buf + 4, len);
        mig__le32_put(buf + 8, mig__crc32c(mig__crc32c(0, buf, 8), pay, 8 + 8 * n));
        if (c == 0)
            pay[8] ^= 0x01; /* the pfn damaged in transit */
        if (c == 2)
            tail[1] ^= 0x10; /* a page's CRC damaged in transit */
        raw_write(&p, buf, 16 + len + ((8 - (len & 7)) & 7));
        assert_int_equal(mig__stream_get(p.b, &r), c == 0 || c == 2 ? -MIG_ECRC : -MIG_EPROTO);
        assert_int_equal(pl.calls, c >= 2 ? 1 : 0);
        assert_non_null(strstr(p.log.text, why[c]));
        pair_close(&p);
    }
}

static void nonzero_padding_rejected(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    pair_open(&p, 2000, true);
    uint8_t buf[16 + 8] = {0};
    buf[16] = 'x';
    buf[20] = 1; /* in the padding of a 1-byte FACTS */
    mig__le32_put(buf, MIG_REC_FACTS);
    mig__le32_put(buf + 4, 1);
    uint32_t crc = mig__crc32c(mig__crc32c(0, buf, 8), buf + 16, 8);
    mig__le32_put(buf + 8, crc);
    raw_write(&p, buf, sizeof(buf));
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_EPROTO);
    pair_close(&p);
}

static void handshake_records_refused_after_handshake(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    pair_open(&p, 2000, true);
    uint8_t buf[16 + 32] = {0};
    hdr(buf, MIG_REC_AUTH, 32, buf + 16);
    raw_write(&p, buf, sizeof(buf));
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_EPROTO);
    pair_close(&p);
}

static void bad_text_rejected(void **state)
{
    (void)state;
    char *t = (char *)1;
    int32_t code;
    const uint8_t nul[] = {'a', 0, 'b'};
    const uint8_t overlong[] = {0xc0, 0xaf};
    const uint8_t cut[] = {'a', 0xe2, 0x82};
    struct mig__rec r = {.type = MIG_REC_FACTS, .len = 3, .payload = nul};
    assert_int_equal(mig__rec_get_text(&r, &t), -MIG_EPROTO);
    assert_null(t);
    r = (struct mig__rec){.type = MIG_REC_FACTS, .len = 2, .payload = overlong};
    assert_int_equal(mig__rec_get_text(&r, &t), -MIG_EPROTO);
    r = (struct mig__rec){.type = MIG_REC_FACTS, .len = 3, .payload = cut};
    assert_int_equal(mig__rec_get_text(&r, &t), -MIG_EPROTO);
    r = (struct mig__rec){.type = MIG_REC_ERROR, .len = 2, .payload = overlong};
    assert_int_equal(mig__rec_get_code_text(&r, &code, &t), -MIG_EPROTO);
    /* Decoders refuse counts that do not match the length. */
    uint8_t pg[8 + 8 + 4096] = {0};
    mig__le32_put(pg + 4, 2); /* claims 2 pages, carries 1 */
    struct mig__rec_pages v;
    r = (struct mig__rec){.type = MIG_REC_PAGES, .len = sizeof(pg), .payload = pg};
    assert_int_equal(mig__rec_get_pages(&r, &v), -MIG_EPROTO);
    mig__le32_put(pg + 4, 1);
    assert_int_equal(mig__rec_get_pages(&r, &v), 0);
    uint8_t zr[8 + 16] = {0};
    mig__le32_put(zr + 4, 1);
    mig__le64_put(zr + 8, UINT64_MAX);
    mig__le64_put(zr + 16, 2); /* pfn + count wraps */
    struct mig__rec_zero_runs z;
    r = (struct mig__rec){.type = MIG_REC_ZERO_RUNS, .len = sizeof(zr), .payload = zr};
    assert_int_equal(mig__rec_get_zero_runs(&r, &z), -MIG_EPROTO);
}

/* ---- handshake over a socketpair ------------------------------------------- */

static void garbage_before_handshake(void **state)
{
    (void)state;
    struct pair p;
    struct mig__hs hs = {0};
    uint8_t nc[32], ns[32];
    uint32_t kind;
    pair_open(&p, 2000, false);
    hs.ctx = p.ctx;
    hs.page_size = 4096;
    hs.channels = 4;
    raw_write(&p, "GET / HTTP/1.1\r\nHost: example\r\n\r\n", 34);
    assert_int_equal(mig__hs_server_hello(&hs, p.b, &kind, nc, ns), -MIG_EPROTO);
    assert_non_null(strstr(p.log.text, "not a migrate-live stream"));
    pair_close(&p);
}

static void wrong_version_names_both(void **state)
{
    (void)state;
    struct pair p;
    struct mig__hs hs = {0};
    uint8_t nc[32], ns[32], pre[32] = {0x89, 'M', 'I', 'G', '\r', '\n', 0x1a, '\n'};
    uint32_t kind;
    struct mig__rec r;
    pair_open(&p, 2000, false);
    hs.ctx = p.ctx;
    hs.page_size = 4096;
    hs.channels = 4;
    mig__le32_put(pre + 8, 7);
    memcpy(pre + 16, "9.9.9", 5);
    raw_write(&p, pre, 32);
    assert_int_equal(mig__hs_server_hello(&hs, p.b, &kind, nc, ns), -MIG_EVERSION);
    assert_non_null(strstr(p.log.text, "version 7 (migrate-live 9.9.9)"));
    assert_non_null(strstr(p.log.text, "version 1 (migrate-live " PACKAGE_VERSION ")"));
    /* The peer is told the same, after the server's own preamble. */
    uint8_t theirs[32];
    assert_int_equal(mig__stream_read_raw(p.a, theirs, 32), 0);
    assert_int_equal(mig__le32_get(theirs + 8), 1);
    assert_int_equal(mig__stream_get(p.a, &r), 0);
    assert_int_equal(r.type, MIG_REC_ERROR);
    char *text;
    int32_t code;
    assert_int_equal(mig__rec_get_code_text(&r, &code, &text), 0);
    assert_int_equal(code, MIG_EVERSION);
    assert_non_null(strstr(text, "9.9.9"));
    assert_non_null(strstr(text, PACKAGE_VERSION));
    free(text);
    pair_close(&p);
}

static void silent_peer_times_out(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    pair_open(&p, 600, true);
    uint64_t t0 = mig__now_ns();
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_ETIMEOUT);
    uint64_t ms = (mig__now_ns() - t0) / 1000000;
    assert_true(ms >= 550 && ms < 1500);
    assert_non_null(strstr(p.log.text, "peer considered dead"));
    pair_close(&p);
}

static void waiting_reader_sends_keepalives(void **state)
{
    (void)state;
    struct pair p;
    struct mig__rec r;
    pair_open(&p, 600, true);
    /* b waits (and times out); meanwhile it must have sent KEEPALIVEs that a
     * reads silently: a sees nothing but its own timeout, later. */
    assert_int_equal(mig__stream_get(p.b, &r), -MIG_ETIMEOUT);
    assert_true(mig__stream_bytes_out(p.b) >= 16);
    assert_int_equal(mig__stream_bytes_out(p.b) % 16, 0);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc_vectors),
        cmocka_unit_test(crc_fast_matches_fallback),
        cmocka_unit_test(type_table_complete),
        cmocka_unit_test(roundtrip_all_types),
        cmocka_unit_test(truncated_header),
        cmocka_unit_test(too_long_rejected_before_allocating),
        cmocka_unit_test(wrong_fixed_size_rejected),
        cmocka_unit_test(unknown_type),
        cmocka_unit_test(flipped_byte_is_crc_error),
        cmocka_unit_test(nonzero_padding_rejected),
        cmocka_unit_test(placer_reads_pages_into_place),
        cmocka_unit_test(placer_crc_mismatch_fails),
        cmocka_unit_test(pages_crc_names_torn_pages),
        cmocka_unit_test(pages_crc_list_checked),
        cmocka_unit_test(pages_crc_open_record_is_not_split),
        cmocka_unit_test(handshake_records_refused_after_handshake),
        cmocka_unit_test(bad_text_rejected),
        cmocka_unit_test(garbage_before_handshake),
        cmocka_unit_test(wrong_version_names_both),
        cmocka_unit_test(silent_peer_times_out),
        cmocka_unit_test(waiting_reader_sends_keepalives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
