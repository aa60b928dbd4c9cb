/*
 * Unit tests for xen-stream.c: everything the writer produces is read back
 * by the parser (written separately from the spec), and hand-built streams
 * check what must be rejected (orders libxc's restore refuses, malformed
 * records) and what must be accepted (orders libxc accepts, stock `xl save`
 * images). No Xen library involved.
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <libmig/image.h>

#include "hv-provider.h"
#include "xen-stream.h"

/* ---- a byte builder for hand-made streams ----------------------------- */

struct bb {
    uint8_t b[1 << 20];
    size_t n;
};

static void bb_raw(struct bb *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof(b->b));
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void bb_be32(struct bb *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    bb_raw(b, x, 4);
}
static void bb_be64(struct bb *b, uint64_t v)
{
    bb_be32(b, (uint32_t)(v >> 32));
    bb_be32(b, (uint32_t)v);
}
static void bb_le32(struct bb *b, uint32_t v)
{
    bb_raw(b, &v, 4);
}
/* A record with an explicit header length, body and padding bytes. */
static void bb_rec_raw(struct bb *b, uint32_t type, uint32_t hdr_len, const void *body,
                       size_t body_len, uint8_t pad_byte)
{
    bb_le32(b, type);
    bb_le32(b, hdr_len);
    if (body_len)
        bb_raw(b, body, body_len);
    for (size_t i = body_len; i % 8; i++)
        bb_raw(b, &pad_byte, 1);
}
static void bb_rec(struct bb *b, uint32_t type, const void *body, uint32_t len)
{
    bb_rec_raw(b, type, len, body, len, 0);
}
/* xl's save header: magic, byte order, flags, then the optional data (u32
 * configuration length and the configuration). */
static void bb_xl_hdr(struct bb *b, uint32_t flags, const char *cfg, uint32_t cfg_len)
{
    bb_raw(b, MIG_XS_XL_MAGIC, MIG_XS_XL_MAGIC_LEN);
    bb_le32(b, MIG_XS_XL_BYTEORDER);
    bb_le32(b, flags);
    bb_le32(b, 0);
    bb_le32(b, 4 + cfg_len);
    bb_le32(b, cfg_len);
    bb_raw(b, cfg, cfg_len);
}
static void bb_libxl_hdr(struct bb *b)
{
    bb_be64(b, MIG_XS_LIBXL_IDENT);
    bb_be32(b, 2);
    bb_be32(b, 0);
    bb_rec(b, MIG_XS_LIBXL_LIBXC_CONTEXT, NULL, 0);
}
static void bb_libxc_hdrs(struct bb *b, uint32_t version, uint32_t dtype)
{
    bb_be64(b, MIG_XS_IHDR_MARKER);
    bb_be32(b, MIG_XS_IHDR_ID);
    bb_be32(b, version);
    bb_be32(b, 0); /* options + res */
    bb_be32(b, 0);
    bb_le32(b, dtype);
    uint8_t ps[4] = {12, 0, 0, 0};
    bb_raw(b, ps, 4);
    bb_le32(b, 4);
    bb_le32(b, 17);
}
static void bb_page(struct bb *b, uint64_t pfn, uint8_t fill)
{
    uint8_t body[8 + 8 + 4096];
    memset(body, 0, sizeof(body));
    body[0] = 1;
    memcpy(body + 8, &pfn, 8);
    memset(body + 16, fill, 4096);
    bb_rec(b, MIG_XS_PAGE_DATA, body, sizeof(body));
}
static void bb_tsc(struct bb *b)
{
    uint8_t t[24] = {1};
    bb_rec(b, MIG_XS_X86_TSC_INFO, t, 24);
}
static void bb_ctx(struct bb *b)
{
    uint8_t c[40] = {7};
    bb_rec(b, MIG_XS_HVM_CONTEXT, c, 40);
}
static void bb_params(struct bb *b)
{
    uint8_t p[8 + 16] = {1};
    p[8] = 1;  /* HVM_PARAM_STORE_PFN */
    p[16] = 9; /* value */
    bb_rec(b, MIG_XS_HVM_PARAMS, p, sizeof(p));
}
static void bb_ends(struct bb *b)
{
    bb_rec(b, MIG_XS_END, NULL, 0);
    bb_rec(b, MIG_XS_LIBXL_END, NULL, 0);
}

static void log_stderr(void *opaque, enum mig_log_level level, const char *module, const char *msg)
{
    fprintf(stderr, "  [%s] %s\n", module, msg);
}

/* Parse a byte buffer through an fd, as libxl would read it. */
static int parse_buf(const struct bb *b, struct mig__xs_parse_info *info)
{
    struct mig_ctx *ctx = NULL;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, log_stderr, NULL);
    int fd = memfd_create("xs", 0);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b->b, b->n), (ssize_t)b->n);
    lseek(fd, 0, SEEK_SET);
    int rc = mig__xs_parse_stream(ctx, fd, NULL, NULL, info);
    close(fd);
    mig_ctx_free(ctx);
    return rc;
}

/* ---- writer -> parser ------------------------------------------------ */

struct seen {
    uint32_t types[64];
    enum mig__xs_layer layers[64];
    unsigned n;
    uint64_t pfns[64];
    uint8_t fills[64];
    unsigned npages;
};

static int visit(void *opaque, enum mig__xs_layer layer, uint32_t type, const uint8_t *body,
                 uint32_t len)
{
    struct seen *s = opaque;
    if (s->n < 64) {
        s->types[s->n] = type;
        s->layers[s->n++] = layer;
    }
    if (layer == MIG_XS_LAYER_LIBXC && type == MIG_XS_PAGE_DATA) {
        uint32_t count;
        memcpy(&count, body, 4);
        for (uint32_t i = 0; i < count && s->npages < 64; i++) {
            uint64_t w;
            memcpy(&w, body + 8 + 8 * i, 8);
            s->pfns[s->npages] = w & 0x000fffffffffffffull;
            s->fills[s->npages++] = body[8 + 8 * count + 4096 * i + 100];
        }
    }
    return 0;
}

static void test_roundtrip(void **state)
{
    int fd = memfd_create("xs", 0);
    struct mig__xs_writer w;
    struct seen s = {0};
    struct mig__xs_parse_info info;
    uint8_t cpuid[48] = {1}, msr[16] = {2}, tsc[24] = {3}, ctx[100] = {4};
    uint8_t params[8 + 32] = {2};
    uint8_t pages[3 * 4096];
    uint64_t pfns[3] = {5, 0, 77}, zpfns[2] = {9, 10};
    for (int i = 0; i < 3; i++)
        memset(pages + 4096 * i, 0xa0 + i, 4096);
    params[8] = 1;
    params[24] = 5;

    mig__xs_writer_init(&w, fd);
    assert_int_equal(mig__xs_write_head(&w, 4, 17, cpuid, 48, msr, 16), 0);
    assert_int_equal(mig__xs_write_pages(&w, pfns, 3, pages), 0);
    assert_int_equal(mig__xs_write_zero_pages(&w, zpfns, 2), 0);
    assert_int_equal(mig__xs_write_record(&w, MIG_XS_X86_TSC_INFO, tsc, 24), 0);
    assert_int_equal(mig__xs_write_record(&w, MIG_XS_HVM_CONTEXT, ctx, 100), 0);
    assert_int_equal(mig__xs_write_record(&w, MIG_XS_HVM_PARAMS, params, sizeof(params)), 0);
    assert_int_equal(mig__xs_write_end(&w), 0);
    assert_int_equal(w.pages, 5);
    assert_int_equal(w.bytes % 8, 0);
    mig__xs_writer_dispose(&w);

    lseek(fd, 0, SEEK_SET);
    assert_int_equal(mig__xs_parse_stream(NULL, fd, visit, &s, &info), 0);
    close(fd);
    const uint32_t want[] = {MIG_XS_LIBXL_LIBXC_CONTEXT,
                             MIG_XS_X86_CPUID_POLICY,
                             MIG_XS_X86_MSR_POLICY,
                             MIG_XS_STATIC_DATA_END,
                             MIG_XS_PAGE_DATA,
                             MIG_XS_PAGE_DATA,
                             MIG_XS_X86_TSC_INFO,
                             MIG_XS_HVM_CONTEXT,
                             MIG_XS_HVM_PARAMS,
                             MIG_XS_END,
                             MIG_XS_LIBXL_END};
    assert_int_equal(s.n, sizeof(want) / sizeof(want[0]));
    for (unsigned i = 0; i < s.n; i++)
        assert_int_equal(s.types[i], want[i]);
    assert_int_equal(s.layers[0], MIG_XS_LAYER_LIBXL);
    assert_int_equal(s.layers[9], MIG_XS_LAYER_LIBXC);
    assert_int_equal(s.layers[10], MIG_XS_LAYER_LIBXL);
    assert_int_equal(info.version, 3);
    assert_int_equal(info.xen_major, 4);
    assert_int_equal(info.xen_minor, 17);
    assert_int_equal(info.pages, 5);
    assert_false(info.xl_header);
    assert_int_equal(s.npages, 5);
    assert_int_equal(s.pfns[0], 5);
    assert_int_equal(s.fills[0], 0xa0);
    assert_int_equal(s.pfns[2], 77);
    assert_int_equal(s.fills[2], 0xa2);
    assert_int_equal(s.pfns[3], 9);
    assert_int_equal(s.fills[4], 0);
}

/* A writer refuses what the reader would refuse. */
static void test_writer_refuses_bad_input(void **state)
{
    int fd = memfd_create("xs", 0);
    struct mig__xs_writer w;
    uint8_t cpuid[25] = {0}, page[4096] = {0};
    uint64_t pfn = 1ull << 53;
    mig__xs_writer_init(&w, fd);
    assert_int_equal(mig__xs_write_head(&w, 4, 17, cpuid, 25, NULL, 0), -MIG_EINVAL);
    assert_int_equal(mig__xs_write_pages(&w, &pfn, 1, page), -MIG_EINVAL);
    assert_int_equal(mig__xs_write_pages(&w, &pfn, 0, page), -MIG_EINVAL);
    assert_int_equal(mig__xs_write_record(&w, MIG_XS_X86_TSC_INFO, page, 23), -MIG_EINVAL);
    assert_int_equal(mig__xs_write_record(&w, MIG_XS_CHECKPOINT, NULL, 0), -MIG_EINVAL);
    mig__xs_writer_dispose(&w);
    close(fd);
}

/* The restore side going away gives an error, not SIGPIPE or a hang. */
static void test_writer_peer_gone(void **state)
{
    int sv[2];
    struct mig__xs_writer w;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    mig__xs_writer_init(&w, sv[0]);
    assert_int_equal(mig__xs_write_head(&w, 4, 17, NULL, 0, NULL, 0), -MIG_EPEER);
    assert_int_equal(mig__xs_write_end(&w), -MIG_EPEER); /* sticky */
    mig__xs_writer_dispose(&w);
    close(sv[0]);
}

/* ---- what must be rejected -------------------------------------------- */

static void test_reject_page_before_static_data_end(void **state)
{
    struct bb *b = calloc(1, sizeof(*b));
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_page(b, 1, 0x11);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    bb_ends(b);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);
    free(b);
}

static void test_reject_second_static_data_end(void **state)
{
    struct bb *b = calloc(1, sizeof(*b));
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    bb_ends(b);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);
    free(b);
}

static void test_reject_checkpoints(void **state)
{
    struct bb *b = calloc(1, sizeof(*b));
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    bb_rec(b, MIG_XS_CHECKPOINT, NULL, 0);
    bb_ends(b);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);

    /* libxl's CHECKPOINT_END after a complete libxc stream */
    b->n = 0;
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    bb_rec(b, MIG_XS_END, NULL, 0);
    bb_rec(b, MIG_XS_LIBXL_CHECKPOINT_END, NULL, 0);
    bb_rec(b, MIG_XS_LIBXL_END, NULL, 0);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);
    free(b);
}

static void test_reject_malformed_records(void **state)
{
    struct bb *b = calloc(1, sizeof(*b));
    uint8_t body[64] = {0};

    /* a record longer than its header says: TSC header 24, 32 bytes follow */
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    bb_rec_raw(b, MIG_XS_X86_TSC_INFO, 24, body, 32, 0);
    bb_ends(b);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);
    b->n = 0;
    memset(body, 0x5a, sizeof(body));
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    bb_rec_raw(b, MIG_XS_X86_TSC_INFO, 24, body, 32, 0);
    bb_ends(b);
    int rc = parse_buf(b, NULL);
    assert_true(rc == -MIG_EPROTO || rc == -MIG_ETOOBIG);

    /* bad alignment: a 5-byte body without its padding */
    b->n = 0;
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_le32(b, MIG_XS_HVM_CONTEXT);
    bb_le32(b, 5);
    bb_raw(b, body, 5);
    bb_rec(b, MIG_XS_END, NULL, 0);
    bb_rec(b, MIG_XS_LIBXL_END, NULL, 0);
    assert_int_not_equal(parse_buf(b, NULL), 0);

    /* non-zero padding */
    b->n = 0;
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec_raw(b, MIG_XS_HVM_CONTEXT, 5, body, 5, 0xee);
    bb_ends(b);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);

    /* PAGE_DATA whose length disagrees with its count */
    b->n = 0;
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    body[0] = 2; /* count 2, one pfn, no data */
    bb_rec(b, MIG_XS_PAGE_DATA, body, 16);
    bb_ends(b);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);

    /* a length above the type's maximum, refused before allocating */
    b->n = 0;
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_le32(b, MIG_XS_PAGE_DATA);
    bb_le32(b, 0xfffffff8u);
    assert_int_equal(parse_buf(b, NULL), -MIG_ETOOBIG);

    /* HVM params count vs length, TSC size, CPUID not a multiple of 24 */
    memset(body, 0, sizeof(body));
    body[0] = 3;
    assert_int_equal(mig__xs_check_record(MIG_XS_HVM_PARAMS, body, 8 + 32), -MIG_EPROTO);
    assert_int_equal(mig__xs_check_record(MIG_XS_X86_TSC_INFO, body, 16), -MIG_EPROTO);
    assert_int_equal(mig__xs_check_record(MIG_XS_X86_CPUID_POLICY, body, 30), -MIG_EPROTO);
    assert_int_equal(mig__xs_check_record(MIG_XS_X86_MSR_POLICY, body, 0), -MIG_EPROTO);
    free(b);
}

static void test_reject_bad_headers(void **state)
{
    struct bb *b = calloc(1, sizeof(*b));
    /* a PV domain header into our HVM parser */
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, 1);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    bb_ends(b);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);
    /* libxc version 4 */
    b->n = 0;
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 4, MIG_XS_DHDR_X86_HVM);
    assert_int_equal(parse_buf(b, NULL), -MIG_EVERSION);
    /* truncated: no END */
    b->n = 0;
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);
    /* a PV record in an HVM stream, an unknown mandatory type */
    b->n = 0;
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec(b, MIG_XS_X86_PV_INFO, "12345678", 8);
    bb_ends(b);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);
    b->n = 0;
    bb_raw(b, "not a stream at all, not at all", 32);
    bb_raw(b, "................", 16);
    assert_int_equal(parse_buf(b, NULL), -MIG_EPROTO);
    free(b);
}

/* ---- what must be accepted (libxc's restore accepts it) -------------- */

static void test_accept_libxc_orders(void **state)
{
    struct bb *b = calloc(1, sizeof(*b));
    struct mig__xs_parse_info info;
    uint8_t cpuid[24] = {1}, opt[8] = {1};
    /* end-of-checkpoint records in another order, a policy after
     * STATIC_DATA_END (libxc keeps and ignores it), an optional unknown
     * record, a VERIFY record, HVM_PARAMS before the first page */
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    bb_params(b);
    bb_page(b, 3, 1);
    bb_rec(b, MIG_XS_X86_CPUID_POLICY, cpuid, 24);
    bb_rec(b, 0x80001234u, opt, 8);
    bb_ctx(b);
    bb_rec(b, MIG_XS_VERIFY, NULL, 0);
    bb_tsc(b);
    bb_ends(b);
    assert_int_equal(parse_buf(b, &info), 0);
    assert_int_equal(info.pages, 1);

    /* a v2 image: STATIC_DATA_END inferred at the first page */
    b->n = 0;
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 2, MIG_XS_DHDR_X86_HVM);
    bb_page(b, 0, 2);
    bb_tsc(b);
    bb_ctx(b);
    bb_ends(b);
    assert_int_equal(parse_buf(b, &info), 0);
    assert_int_equal(info.version, 2);
    free(b);
}

static void test_accept_xl_save_image(void **state)
{
    struct bb *b = calloc(1, sizeof(*b));
    struct mig__xs_parse_info info;
    const char cfg[] = "{\"c_info\": {\"type\": \"pvh\", \"name\": \"web-1\"}}";
    bb_xl_hdr(b, 3, cfg, sizeof(cfg));
    bb_libxl_hdr(b);
    bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
    bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
    bb_page(b, 1, 3);
    bb_tsc(b);
    bb_ctx(b);
    bb_params(b);
    bb_rec(b, MIG_XS_END, NULL, 0);
    /* stock HVM images carry emulator records after libxc's END, each
     * with the sub-header {emulator_id 2 = QEMU upstream, index 0} */
    bb_rec(b, MIG_XS_LIBXL_EMULATOR_XENSTORE_DATA, "\2\0\0\0\0\0\0\0physmap/f0/name\0vga.vram\0",
           8 + 25);
    bb_rec(b, MIG_XS_LIBXL_EMULATOR_CONTEXT, "\2\0\0\0\0\0\0\0QEVM", 12);
    bb_rec(b, MIG_XS_LIBXL_END, NULL, 0);
    assert_int_equal(parse_buf(b, &info), 0);
    assert_true(info.xl_header);
    assert_int_equal(info.pages, 1);
    assert_int_equal(info.xl_flags, 3);
    assert_int_equal(info.xl_config_len, sizeof(cfg));
    assert_string_equal(info.xl_name, "web-1");
    free(b);
}

/* ---- HVM: the emulator records ----------------------------------------- */

struct emu_seen {
    uint32_t types[32];
    unsigned n;
    uint8_t xs[256], dm[256];
    uint32_t xs_len, dm_len;
};

static int visit_emu(void *opaque, enum mig__xs_layer layer, uint32_t type, const uint8_t *body,
                     uint32_t len)
{
    struct emu_seen *e = opaque;
    if (e->n < 32)
        e->types[e->n++] = type;
    if (layer == MIG_XS_LAYER_LIBXL && type == MIG_XS_LIBXL_EMULATOR_XENSTORE_DATA &&
        len <= sizeof(e->xs)) {
        memcpy(e->xs, body, len);
        e->xs_len = len;
    }
    if (layer == MIG_XS_LAYER_LIBXL && type == MIG_XS_LIBXL_EMULATOR_CONTEXT &&
        len <= sizeof(e->dm)) {
        memcpy(e->dm, body, len);
        e->dm_len = len;
    }
    return 0;
}

static void write_hvm_stream(int fd, const void *xs, uint32_t xs_len, const void *dm,
                             uint32_t dm_len)
{
    struct mig__xs_writer w;
    uint8_t tsc[24] = {3}, ctx[100] = {4}, page[4096] = {5};
    uint64_t pfn = 1;
    mig__xs_writer_init(&w, fd);
    assert_int_equal(mig__xs_write_head(&w, 4, 17, NULL, 0, NULL, 0), 0);
    assert_int_equal(mig__xs_write_pages(&w, &pfn, 1, page), 0);
    assert_int_equal(mig__xs_write_record(&w, MIG_XS_X86_TSC_INFO, tsc, 24), 0);
    assert_int_equal(mig__xs_write_record(&w, MIG_XS_HVM_CONTEXT, ctx, 100), 0);
    assert_int_equal(mig__xs_write_end_hvm(&w, xs, xs_len, dm, dm_len), 0);
    assert_int_equal(w.bytes % 8, 0);
    mig__xs_writer_dispose(&w);
}

static void test_roundtrip_hvm(void **state)
{
    static const char xs[] = "physmap/f0000000/start_addr\0f0000000\0"
                             "physmap/f0000000/size\0800000\0"
                             "physmap/f0000000/name\0vga.vram";
    static const char dm[] = "QEVM\0\0\0\3 device state, 29 b"; /* 8-unaligned on purpose */
    struct emu_seen e = {0};
    int fd = memfd_create("xs", 0);
    write_hvm_stream(fd, xs, sizeof(xs), dm, sizeof(dm));
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(mig__xs_parse_stream(NULL, fd, visit_emu, &e, NULL), 0);
    close(fd);
    /* libxl's order: libxc END, EMULATOR_XENSTORE_DATA, EMULATOR_CONTEXT, libxl END */
    assert_true(e.n >= 4);
    assert_int_equal(e.types[e.n - 4], MIG_XS_END);
    assert_int_equal(e.types[e.n - 3], MIG_XS_LIBXL_EMULATOR_XENSTORE_DATA);
    assert_int_equal(e.types[e.n - 2], MIG_XS_LIBXL_EMULATOR_CONTEXT);
    assert_int_equal(e.types[e.n - 1], MIG_XS_LIBXL_END);
    assert_int_equal(e.xs_len, 8 + sizeof(xs));
    assert_memory_equal(e.xs, "\2\0\0\0\0\0\0\0", 8);
    assert_memory_equal(e.xs + 8, xs, sizeof(xs));
    assert_int_equal(e.dm_len, 8 + sizeof(dm));
    assert_memory_equal(e.dm, "\2\0\0\0\0\0\0\0", 8);
    assert_memory_equal(e.dm + 8, dm, sizeof(dm));

    /* no xenstore keys (QEMU mapped no VRAM yet): that record is left out */
    memset(&e, 0, sizeof(e));
    fd = memfd_create("xs", 0);
    write_hvm_stream(fd, NULL, 0, dm, sizeof(dm));
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(mig__xs_parse_stream(NULL, fd, visit_emu, &e, NULL), 0);
    close(fd);
    assert_int_equal(e.types[e.n - 3], MIG_XS_END);
    assert_int_equal(e.types[e.n - 2], MIG_XS_LIBXL_EMULATOR_CONTEXT);
    assert_int_equal(e.xs_len, 0);
}

static void test_emulator_checks(void **state)
{
    struct mig__xs_writer w;
    int fd = memfd_create("xs", 0);
    /* what libxl's restore would refuse, the writer refuses */
    static const struct {
        const char *b;
        uint32_t n;
    } bad[] = {
        {"/local/domain/0\0x\0", 18}, /* absolute key */
        {"\0x\0", 3},                  /* empty key */
        {"key\0value", 9},             /* value not terminated */
        {"key", 3},                     /* key not terminated */
        {"ke y\0v\0", 7},              /* not a xenstore character */
        {"key\0v\001\0", 6},           /* control character in a value */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(mig__xs_check_emu_xenstore((const uint8_t *)bad[i].b, bad[i].n),
                         -MIG_EPROTO);
    assert_int_equal(mig__xs_check_emu_xenstore((const uint8_t *)"a\0\0", 3), 0); /* "" value */
    assert_int_equal(mig__xs_check_emu_xenstore(NULL, 0), 0);
    mig__xs_writer_init(&w, fd);
    assert_int_equal(mig__xs_write_end_hvm(&w, "/abs\0v\0", 7, "QEVM", 4), -MIG_EINVAL);
    assert_int_equal(mig__xs_write_end_hvm(&w, NULL, 0, "QEVM", 0), -MIG_EINVAL);
    assert_int_equal(mig__xs_write_end_hvm(&w, NULL, 0, "QEVM", MIG_XS_MAX_EMU_CONTEXT + 1),
                     -MIG_EINVAL);
    assert_int_equal(w.bytes, 0); /* nothing written */
    mig__xs_writer_dispose(&w);
    close(fd);
    /* blob records carry the same checks */
    assert_int_equal(mig__xs_check_record(MIG_XS_PRIV_EMU_XENSTORE, (const uint8_t *)"k\0v", 3),
                     -MIG_EPROTO);
    assert_int_equal(mig__xs_check_record(MIG_XS_PRIV_EMU_CONTEXT, NULL, 0), -MIG_EPROTO);
    assert_int_equal(mig__xs_check_record(MIG_XS_PRIV_EMU_CONTEXT, (const uint8_t *)"Q", 1), 0);

    /* the parser: emulator records without a sub-header, from another
     * emulator, or with bad keys */
    static const struct {
        uint32_t type;
        const char *b;
        uint32_t n;
    } rec[] = {
        {MIG_XS_LIBXL_EMULATOR_CONTEXT, "QEVM", 4},
        {MIG_XS_LIBXL_EMULATOR_CONTEXT, "\1\0\0\0\0\0\0\0QEVM", 12},
        {MIG_XS_LIBXL_EMULATOR_XENSTORE_DATA, "\2\0\0\0\0\0\0\0/a\0b\0", 13},
    };
    for (size_t i = 0; i < sizeof(rec) / sizeof(rec[0]); i++) {
        struct bb *b = calloc(1, sizeof(*b));
        struct mig__xs_parse_info info;
        bb_libxl_hdr(b);
        bb_libxc_hdrs(b, 3, MIG_XS_DHDR_X86_HVM);
        bb_rec(b, MIG_XS_STATIC_DATA_END, NULL, 0);
        bb_tsc(b);
        bb_ctx(b);
        bb_rec(b, MIG_XS_END, NULL, 0);
        bb_rec(b, rec[i].type, rec[i].b, rec[i].n);
        bb_rec(b, MIG_XS_LIBXL_END, NULL, 0);
        assert_int_equal(parse_buf(b, &info), -MIG_EPROTO);
        free(b);
    }
}

/* xl headers our parser must refuse: a legacy v1 stream, a mandatory flag
 * it does not know, a configuration longer than the optional data. */
static void test_reject_xl_headers(void **state)
{
    struct bb *b = calloc(1, sizeof(*b));
    struct mig__xs_parse_info info;
    const char cfg[] = "{}";
    static const uint32_t flags[] = {1, 7};
    for (unsigned i = 0; i < 2; i++) {
        b->n = 0;
        bb_xl_hdr(b, flags[i], cfg, sizeof(cfg));
        bb_libxl_hdr(b);
        assert_int_equal(parse_buf(b, &info), -MIG_EVERSION);
    }
    b->n = 0;
    bb_raw(b, MIG_XS_XL_MAGIC, 32);
    bb_le32(b, MIG_XS_XL_BYTEORDER);
    bb_le32(b, 3);
    bb_le32(b, 0);
    bb_le32(b, 8);
    bb_le32(b, 5); /* 5 bytes of configuration in 4 */
    bb_raw(b, "{}}}", 4);
    bb_libxl_hdr(b);
    assert_int_equal(parse_buf(b, &info), -MIG_EPROTO);
    free(b);
}

/* A real image: `xl save` of the e2e test's PVH guest on Xen 4.17, shrunk by
 * tests/xen/shrink-image.py to two pages with data and 64 holes (every
 * other record verbatim; tests/fixtures/xen/README.md). */
static void test_inspect_stock_xl_save_fixture(void **state)
{
    const char *top = getenv("top_srcdir");
    char path[4096];
    struct mig_ctx *ctx = NULL;
    struct mig_image_info info;
    snprintf(path, sizeof(path), "%s/tests/fixtures/xen/xl-save-pvh.img", top && *top ? top : "..");
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, log_stderr, NULL);
    assert_int_equal(mig_image_inspect(ctx, fd, &info), 0);
    close(fd);
    mig_ctx_free(ctx);
    assert_true(info.xl_header);
    assert_int_equal(info.xl_flags, 3); /* JSON configuration, libxl v2 stream */
    assert_int_equal(info.config_len, 851);
    assert_string_equal(info.name, "vm1");
    assert_int_equal(info.libxc_version, 3);
    assert_int_equal(info.xen_major, 4);
    assert_int_equal(info.xen_minor, 17);
    assert_int_equal(info.pages, 66);
    assert_int_equal(info.data_pages, 2);
    assert_int_equal(info.cpuid_leaves, 51);
    assert_int_equal(info.msr_entries, 2);
    assert_int_equal(info.hvm_context_len, 2504);
    assert_int_equal(info.hvm_params, 8);
    assert_true(info.tsc_info);
    /* CPUID, MSR, STATIC_DATA_END, 2 PAGE_DATA, TSC, context, params, END */
    assert_int_equal(info.records, 9);
}

/* ---- state blobs ------------------------------------------------------- */

static void test_blob_records(void **state)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    uint8_t tsc[24] = {0}, ctx[9] = {1};
    const uint32_t allowed[] = {MIG_XS_X86_TSC_INFO, MIG_XS_HVM_CONTEXT};
    struct seen s = {0};
    assert_int_equal(mig__xs_append_record(&buf, &len, MIG_XS_X86_TSC_INFO, tsc, 24), 0);
    assert_int_equal(mig__xs_append_record(&buf, &len, MIG_XS_HVM_CONTEXT, ctx, 9), 0);
    assert_int_equal(len, 8 + 24 + 8 + 16);
    assert_int_equal(mig__xs_parse_records(NULL, buf, len, allowed, 2, visit, &s), 0);
    assert_int_equal(s.n, 2);
    /* a type not allowed in this blob */
    assert_int_equal(mig__xs_parse_records(NULL, buf, len, allowed + 1, 1, NULL, NULL),
                     -MIG_EPROTO);
    /* truncated */
    assert_int_equal(mig__xs_parse_records(NULL, buf, len - 8, allowed, 2, NULL, NULL),
                     -MIG_EPROTO);
    /* a header claiming more than the blob holds */
    uint32_t big = 4096;
    memcpy(buf + 32 + 4, &big, 4);
    assert_int_equal(mig__xs_parse_records(NULL, buf, len, allowed, 2, NULL, NULL), -MIG_EPROTO);
    free(buf);
    /* configuration: NUL inside the JSON */
    assert_int_equal(mig__xs_check_record(MIG_XS_PRIV_CONFIG, (const uint8_t *)"{\0}", 3),
                     -MIG_EPROTO);
}

/* xen: is always registered: the stub (--without-xen) says "not supported",
 * the real backend fails cleanly without a hypervisor or such a domain. */
static void test_xen_backend_registered(void **state)
{
    struct mig_ctx *ctx = NULL;
    struct mig__hv *hv = NULL;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    int rc = mig__hv_open(ctx, "xen:no-such-domain-for-a-unit-test", MIG_ROLE_SOURCE, &hv);
    assert_true(rc < 0);
    assert_null(hv);
#ifndef HAVE_XEN
    assert_int_equal(rc, -MIG_ENOTSUP);
#endif
    mig_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_writer_refuses_bad_input),
        cmocka_unit_test(test_writer_peer_gone),
        cmocka_unit_test(test_reject_page_before_static_data_end),
        cmocka_unit_test(test_reject_second_static_data_end),
        cmocka_unit_test(test_reject_checkpoints),
        cmocka_unit_test(test_reject_malformed_records),
        cmocka_unit_test(test_reject_bad_headers),
        cmocka_unit_test(test_accept_libxc_orders),
        cmocka_unit_test(test_accept_xl_save_image),
        cmocka_unit_test(test_roundtrip_hvm),
        cmocka_unit_test(test_emulator_checks),
        cmocka_unit_test(test_reject_xl_headers),
        cmocka_unit_test(test_inspect_stock_xl_save_fixture),
        cmocka_unit_test(test_blob_records),
        cmocka_unit_test(test_xen_backend_registered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
