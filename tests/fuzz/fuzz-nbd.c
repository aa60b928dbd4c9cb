/*
 * fuzz-nbd.c: libFuzzer target for what the NBD server reads from a client:
 * the option handshake and the transmission requests (request parser,
 * payload draining, every command against an in-memory export). The input
 * is what a client sends; the first byte picks the mode:
 *   mode % 3 == 0: raw: the bytes from the first client flag onwards
 *   mode % 3 == 1: a valid handshake (flags + NBD_OPT_GO) is prepended, so
 *                  the rest lands in the transmission phase
 *   mode % 3 == 2: the parser alone: 28-byte chunks decoded and checked
 *                  against limits taken from the input; its promises
 *                  (range inside the export, payload within the maximum)
 *                  are asserted
 * The export aborts if the server ever hands it a range outside the export
 * or a payload above the maximum. Build: make fuzz-nbd; run:
 * tests/fuzz/run-fuzz-nbd.sh.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libmig/src/nbd/nbd-internal.h"

#define EXPORT_SIZE (1u << 20)
#define MAX_PAYLOAD (64u << 10)

static uint8_t disk[EXPORT_SIZE];

static uint64_t m_size(void *o)
{
    (void)o;
    return EXPORT_SIZE;
}
static void in_range(uint64_t off, uint64_t len)
{
    if (len == 0 || off > EXPORT_SIZE || len > EXPORT_SIZE - off)
        abort();
}
static int m_pread(void *o, uint64_t off, uint32_t len, void *buf)
{
    (void)o;
    in_range(off, len);
    if (len > MAX_PAYLOAD)
        abort();
    memcpy(buf, disk + off, len);
    return (off & 0xfff) == 0x123 ? -MIG_EIO : 0; /* an export failure now and then */
}
static int m_pwrite(void *o, uint64_t off, uint32_t len, const void *buf, bool fua)
{
    (void)o;
    (void)fua;
    in_range(off, len);
    if (len > MAX_PAYLOAD)
        abort();
    memcpy(disk + off, buf, len);
    return 0;
}
static int m_flush(void *o)
{
    (void)o;
    return 0;
}
static int m_trim(void *o, uint64_t off, uint64_t len, bool fua)
{
    (void)o;
    (void)fua;
    in_range(off, len);
    return 0;
}
static int m_zero(void *o, uint64_t off, uint64_t len, bool may_punch, bool fua)
{
    (void)o;
    (void)may_punch;
    (void)fua;
    in_range(off, len);
    memset(disk + off, 0, len);
    return 0;
}
static const struct mig__nbd_export_ops ops = {m_size, m_pread, m_pwrite, m_flush, m_trim, m_zero};

struct feed {
    const uint8_t *pre;
    size_t pre_len, pre_pos;
    const uint8_t *p;
    size_t n, pos;
    uint64_t sent;
};

static long f_recv(void *opaque, void *buf, size_t len)
{
    struct feed *f = opaque;
    size_t k;
    if (f->pre_pos < f->pre_len) {
        k = f->pre_len - f->pre_pos;
        k = k < len ? k : len;
        memcpy(buf, f->pre + f->pre_pos, k);
        f->pre_pos += k;
        return (long)k;
    }
    k = f->n - f->pos;
    /* short reads: at most 4 KiB, and odd sizes, to exercise reassembly */
    if (k > 4093)
        k = 4093;
    k = k < len ? k : len;
    memcpy(buf, f->p + f->pos, k);
    f->pos += k;
    return (long)k;
}

static int f_sendv(void *opaque, const struct iovec *iov, int n, bool more)
{
    struct feed *f = opaque;
    (void)more;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len && !iov[i].iov_base)
            abort();
        f->sent += iov[i].iov_len;
    }
    return 0;
}

static void parser_only(const uint8_t *d, size_t n)
{
    struct mig__nbd_limits lim;
    if (n < 14)
        return;
    lim.size = mig__nbd_get64(d);
    lim.max_payload = mig__nbd_get32(d + 8);
    lim.tflags = mig__nbd_get16(d + 12);
    d += 14;
    n -= 14;
    for (; n >= MIG__NBD_REQ_SIZE; d += MIG__NBD_REQ_SIZE, n -= MIG__NBD_REQ_SIZE) {
        struct mig__nbd_req r;
        uint32_t drain, err;
        if (mig__nbd_req_decode(d, &r) < 0)
            continue;
        err = mig__nbd_req_check(&r, &lim, &drain);
        if (drain != (r.type == MIG__NBD_CMD_WRITE ? r.length : 0))
            abort();
        if (err || r.type == MIG__NBD_CMD_DISC || r.type == MIG__NBD_CMD_FLUSH)
            continue;
        /* accepted: inside the export, payload within the maximum, and only
         * commands and flags this connection advertised */
        if (r.offset > lim.size || r.length > lim.size - r.offset)
            abort();
        if ((r.type == MIG__NBD_CMD_READ || r.type == MIG__NBD_CMD_WRITE) &&
            r.length > lim.max_payload)
            abort();
        if (r.type != MIG__NBD_CMD_READ && (lim.tflags & MIG__NBD_TFLAG_READ_ONLY))
            abort();
        if (r.type > MIG__NBD_CMD_WRITE_ZEROES || r.type == MIG__NBD_CMD_CACHE)
            abort();
        if ((r.flags & MIG__NBD_CMD_FLAG_FUA) && !(lim.tflags & MIG__NBD_TFLAG_SEND_FUA))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mig__nbd_server *srv;
    static const uint8_t go[] = {
        0, 0, 0, 3,                                     /* FIXED_NEWSTYLE | NO_ZEROES */
        'I', 'H', 'A', 'V', 'E', 'O', 'P', 'T', 0, 0, 0, 7, 0, 0, 0, 6, /* GO, 6 bytes */
        0, 0, 0, 0, 0, 0,                               /* name "", no info requests */
    };
    struct feed f = {0};
    struct mig__nbd_io io = {f_recv, f_sendv, &f};

    if (size < 1)
        return 0;
    if (!srv) {
        struct mig__nbd_export exp = {.name = "", .ops = &ops};
        struct mig__nbd_server_config cfg = {.max_payload = MAX_PAYLOAD, .max_conns = 1};
        if (mig__nbd_server_new(NULL, &exp, &cfg, &srv) < 0)
            abort();
    }
    switch (data[0] % 3) {
    case 0:
        break;
    case 1:
        f.pre = go;
        f.pre_len = sizeof(go);
        break;
    default:
        parser_only(data + 1, size - 1);
        return 0;
    }
    f.p = data + 1;
    f.n = size - 1;
    int rc = mig__nbd_server_serve_io(srv, &io);
    if (rc != 0 && rc != -MIG_EPROTO && rc != -MIG_EPEER)
        abort();
    if (f.sent < 18) /* the greeting always goes out */
        abort();
    return 0;
}
