/*
 * xen-stream.c: writer and parser of the Xen migration stream the xen:
 * destination feeds to libxl (docs/xen-stream.md). The parser is written
 * from the spec, not from the writer, so the tests can check one against
 * the other; it accepts the record orders libxc's restore accepts.
 *
 * Entry points: mig__xs_writer_init/_dispose, mig__xs_write_head/_pages/
 * _zero_pages/_record/_end, mig__xs_parse_stream, mig__xs_parse_records,
 * mig__xs_check_record, mig__xs_append_record.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MIG_LOG_MODULE "xen-stream"
#include "xen-stream.h"

#define PAD8(x)        (((x) + 7u) & ~(uint64_t)7u)
#define PFN_MASK       0x000fffffffffffffull
#define TYPE_MASK      0xf000000000000000ull
#define TYPE_SHIFT     32 /* the type field is (word & TYPE_MASK) >> 32 */
#define PF_NOTAB       0x0u
#define PF_XTAB        0xf0000000u
#define PF_XALLOC      0xe0000000u
#define PF_BROKEN      0xd0000000u
#define PF_LTAB_MASK   0xf0000000u
#define XL_MAGIC       MIG_XS_XL_MAGIC
#define MAX_XL_OPTDATA (16u << 20)

static const uint8_t zero_page[MIG_XS_PAGE_SIZE];

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * (3 - i)));
}
static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * (7 - i)));
}
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Page types as the restore knows them; only NOTAB and the L1-L4 tables
 * (types 1-4, pinned or not) carry a page of data. */
static bool known_page_type(uint32_t t)
{
    switch (t & PF_LTAB_MASK) {
    case PF_NOTAB:
    case 0x10000000u:
    case 0x20000000u:
    case 0x30000000u:
    case 0x40000000u:
    case 0x90000000u:
    case 0xa0000000u:
    case 0xb0000000u:
    case 0xc0000000u:
    case PF_BROKEN:
    case PF_XALLOC:
    case PF_XTAB:
        return true;
    default:
        return false;
    }
}
static bool page_has_data(uint32_t t)
{
    t &= PF_LTAB_MASK;
    return t != PF_XTAB && t != PF_XALLOC && t != PF_BROKEN;
}

uint32_t mig__xs_max_len(uint32_t type)
{
    switch (type) {
    case MIG_XS_END:
    case MIG_XS_STATIC_DATA_END:
    case MIG_XS_VERIFY:
        return 0;
    case MIG_XS_PAGE_DATA:
        return 8 + MIG_XS_MAX_BATCH * (8 + MIG_XS_PAGE_SIZE);
    case MIG_XS_X86_TSC_INFO:
        return 24;
    case MIG_XS_HVM_CONTEXT:
        return 1u << 20;
    case MIG_XS_HVM_PARAMS:
        return 8 + 64 * 16;
    case MIG_XS_X86_CPUID_POLICY:
    case MIG_XS_X86_MSR_POLICY:
        return 64u << 10;
    case MIG_XS_PRIV_CONFIG:
        return 1u << 20;
    case MIG_XS_PRIV_HOLES:
        return 16u << 20;
    case MIG_XS_PRIV_EMU_XENSTORE:
        return MIG_XS_MAX_EMU_XENSTORE;
    case MIG_XS_PRIV_EMU_CONTEXT:
        return MIG_XS_MAX_EMU_CONTEXT;
    default:
        return 1u << 20; /* unknown optional records are skipped, bounded */
    }
}

int mig__xs_check_record(uint32_t type, const uint8_t *body, uint32_t len)
{
    if (len > mig__xs_max_len(type))
        return -MIG_ETOOBIG;
    switch (type) {
    case MIG_XS_END:
    case MIG_XS_STATIC_DATA_END:
    case MIG_XS_VERIFY:
        return len == 0 ? 0 : -MIG_EPROTO;
    case MIG_XS_PAGE_DATA: {
        if (len < 8)
            return -MIG_EPROTO;
        uint32_t count = le32(body);
        if (count < 1 || count > MIG_XS_MAX_BATCH || len < 8 + (uint64_t)count * 8)
            return -MIG_EPROTO;
        uint64_t data_pages = 0;
        for (uint32_t i = 0; i < count; i++) {
            uint64_t w = le64(body + 8 + 8 * i);
            uint32_t t = (uint32_t)((w & TYPE_MASK) >> TYPE_SHIFT);
            if (!known_page_type(t) || (w & ~(PFN_MASK | TYPE_MASK)))
                return -MIG_EPROTO;
            data_pages += page_has_data(t);
        }
        return len == 8 + (uint64_t)count * 8 + data_pages * MIG_XS_PAGE_SIZE ? 0 : -MIG_EPROTO;
    }
    case MIG_XS_X86_TSC_INFO:
        return len == 24 ? 0 : -MIG_EPROTO;
    case MIG_XS_HVM_CONTEXT:
        return len > 0 ? 0 : -MIG_EPROTO;
    case MIG_XS_HVM_PARAMS:
        if (len < 8)
            return -MIG_EPROTO;
        return len == 8 + (uint64_t)le32(body) * 16 ? 0 : -MIG_EPROTO;
    case MIG_XS_X86_CPUID_POLICY:
        return len && len % 24 == 0 ? 0 : -MIG_EPROTO;
    case MIG_XS_X86_MSR_POLICY:
        return len && len % 16 == 0 ? 0 : -MIG_EPROTO;
    case MIG_XS_PRIV_CONFIG:
        /* JSON text: NUL-free, non-empty */
        return len && !memchr(body, 0, len) ? 0 : -MIG_EPROTO;
    case MIG_XS_PRIV_HOLES:
        return len % 16 == 0 ? 0 : -MIG_EPROTO;
    case MIG_XS_PRIV_EMU_XENSTORE:
        return mig__xs_check_emu_xenstore(body, len);
    case MIG_XS_PRIV_EMU_CONTEXT:
        return len > 0 ? 0 : -MIG_EPROTO;
    default:
        return (type & MIG_XS_OPTIONAL) ? 0 : -MIG_EPROTO;
    }
}

/* ---- writer ---------------------------------------------------------- */

void mig__xs_writer_init(struct mig__xs_writer *w, int fd)
{
    memset(w, 0, sizeof(*w));
    w->fd = fd;
    pthread_mutex_init(&w->lock, NULL);
}

void mig__xs_writer_dispose(struct mig__xs_writer *w)
{
    pthread_mutex_destroy(&w->lock);
}

/* Write every iovec fully; a socket gets MSG_NOSIGNAL (the restore side
 * closing must not kill us), anything else plain writev. Lock held. */
static int write_iov(struct mig__xs_writer *w, struct iovec *iov, int n)
{
    if (w->err)
        return w->err;
    struct stat st;
    bool sock = fstat(w->fd, &st) == 0 && S_ISSOCK(st.st_mode);
    while (n > 0) {
        ssize_t r;
        if (sock) {
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)(n > 1024 ? 1024 : n)};
            r = sendmsg(w->fd, &mh, MSG_NOSIGNAL);
        } else {
            r = writev(w->fd, iov, n > 1024 ? 1024 : n);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            w->err = errno == EPIPE || errno == ECONNRESET ? -MIG_EPEER : mig__from_errno(errno);
            return w->err;
        }
        w->bytes += (uint64_t)r;
        while (n > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return 0;
}

/* Header + body pieces + padding, lock held. */
static int put_record(struct mig__xs_writer *w, uint32_t type, struct iovec *body, int nbody,
                      uint32_t len)
{
    static const uint8_t pad[8];
    uint8_t hdr[8];
    struct iovec iov[8];
    int n = 0;
    if (nbody > 6)
        return -MIG_EINVAL;
    put_le32(hdr, type);
    put_le32(hdr + 4, len);
    iov[n++] = (struct iovec){hdr, 8};
    for (int i = 0; i < nbody; i++)
        if (body[i].iov_len)
            iov[n++] = body[i];
    if (PAD8(len) != len)
        iov[n++] = (struct iovec){(void *)pad, (size_t)(PAD8(len) - len)};
    return write_iov(w, iov, n);
}

int mig__xs_write_head(struct mig__xs_writer *w, uint32_t xen_major, uint32_t xen_minor,
                       const void *cpuid, uint32_t cpuid_len, const void *msr, uint32_t msr_len)
{
    int rc;
    if ((cpuid_len && mig__xs_check_record(MIG_XS_X86_CPUID_POLICY, cpuid, cpuid_len)) ||
        (msr_len && mig__xs_check_record(MIG_XS_X86_MSR_POLICY, msr, msr_len)))
        return -MIG_EINVAL;
    uint8_t libxl_hdr[16], ctx_rec[8], ihdr[24] = {0}, dhdr[16] = {0};
    put_be64(libxl_hdr, MIG_XS_LIBXL_IDENT);
    put_be32(libxl_hdr + 8, 2);
    put_be32(libxl_hdr + 12, 0);
    put_le32(ctx_rec, MIG_XS_LIBXL_LIBXC_CONTEXT);
    put_le32(ctx_rec + 4, 0);
    put_be64(ihdr, MIG_XS_IHDR_MARKER);
    put_be32(ihdr + 8, MIG_XS_IHDR_ID);
    put_be32(ihdr + 12, 3);
    put_le32(dhdr, MIG_XS_DHDR_X86_HVM);
    dhdr[4] = 12; /* page_shift, u16 LE */
    put_le32(dhdr + 8, xen_major);
    put_le32(dhdr + 12, xen_minor);
    struct iovec iov[4] = {{libxl_hdr, 16}, {ctx_rec, 8}, {ihdr, 24}, {dhdr, 16}};
    pthread_mutex_lock(&w->lock);
    rc = write_iov(w, iov, 4);
    if (rc == 0 && cpuid_len) {
        struct iovec b = {(void *)cpuid, cpuid_len};
        rc = put_record(w, MIG_XS_X86_CPUID_POLICY, &b, 1, cpuid_len);
    }
    if (rc == 0 && msr_len) {
        struct iovec b = {(void *)msr, msr_len};
        rc = put_record(w, MIG_XS_X86_MSR_POLICY, &b, 1, msr_len);
    }
    if (rc == 0)
        rc = put_record(w, MIG_XS_STATIC_DATA_END, NULL, 0, 0);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

static int write_page_record(struct mig__xs_writer *w, const uint64_t *pfns, unsigned n,
                             const void *data, bool zero)
{
    if (n == 0 || n > MIG_XS_MAX_BATCH)
        return -MIG_EINVAL;
    uint8_t *hdr = malloc(8 + (size_t)n * 8);
    struct iovec *iov = NULL;
    int rc;
    if (!hdr)
        return -MIG_ENOMEM;
    put_le32(hdr, n);
    put_le32(hdr + 4, 0);
    for (unsigned i = 0; i < n; i++) {
        if (pfns[i] > PFN_MASK) {
            free(hdr);
            return -MIG_EINVAL;
        }
        put_le64(hdr + 8 + 8 * i, pfns[i]); /* type NOTAB = 0 */
    }
    uint32_t len = 8 + n * 8 + n * MIG_XS_PAGE_SIZE;
    /* header, pfns, pages (one iovec per zero page), no padding: 8-aligned */
    iov = malloc(sizeof(*iov) * (2 + n));
    if (!iov) {
        free(hdr);
        return -MIG_ENOMEM;
    }
    uint8_t rh[8];
    put_le32(rh, MIG_XS_PAGE_DATA);
    put_le32(rh + 4, len);
    int k = 0;
    iov[k++] = (struct iovec){rh, 8};
    iov[k++] = (struct iovec){hdr, 8 + (size_t)n * 8};
    if (zero)
        for (unsigned i = 0; i < n; i++)
            iov[k++] = (struct iovec){(void *)zero_page, MIG_XS_PAGE_SIZE};
    else
        iov[k++] = (struct iovec){(void *)data, (size_t)n * MIG_XS_PAGE_SIZE};
    pthread_mutex_lock(&w->lock);
    rc = write_iov(w, iov, k);
    if (rc == 0)
        w->pages += n;
    pthread_mutex_unlock(&w->lock);
    free(iov);
    free(hdr);
    return rc;
}

int mig__xs_write_pages(struct mig__xs_writer *w, const uint64_t *pfns, unsigned n,
                        const void *data)
{
    return write_page_record(w, pfns, n, data, false);
}

int mig__xs_write_zero_pages(struct mig__xs_writer *w, const uint64_t *pfns, unsigned n)
{
    return write_page_record(w, pfns, n, NULL, true);
}

int mig__xs_write_record(struct mig__xs_writer *w, uint32_t type, const void *body, uint32_t len)
{
    if (type == MIG_XS_PAGE_DATA || type == MIG_XS_PRIV_CONFIG || type == MIG_XS_PRIV_HOLES ||
        mig__xs_check_record(type, body, len) < 0)
        return -MIG_EINVAL;
    struct iovec b = {(void *)body, len};
    pthread_mutex_lock(&w->lock);
    int rc = put_record(w, type, &b, 1, len);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int mig__xs_write_end(struct mig__xs_writer *w)
{
    pthread_mutex_lock(&w->lock);
    int rc = put_record(w, MIG_XS_END, NULL, 0, 0);
    if (rc == 0)
        rc = put_record(w, MIG_XS_LIBXL_END, NULL, 0, 0);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

static bool xs_key_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '/' || c == '_' || c == '@';
}

int mig__xs_check_emu_xenstore(const uint8_t *body, uint32_t len)
{
    uint32_t off = 0;
    if (len > MIG_XS_MAX_EMU_XENSTORE)
        return -MIG_ETOOBIG;
    while (off < len) {
        /* key */
        uint32_t start = off;
        while (off < len && body[off])
            if (!xs_key_char(body[off++]))
                return -MIG_EPROTO;
        if (off == len || off == start || body[start] == '/')
            return -MIG_EPROTO; /* unterminated, empty or absolute */
        off++;
        /* value */
        while (off < len && body[off])
            if (body[off] < 0x20 || body[off] > 0x7e)
                return -MIG_EPROTO;
            else
                off++;
        if (off == len)
            return -MIG_EPROTO;
        off++;
    }
    return 0;
}

/* One libxl emulator record, lock held. */
static int put_emulator(struct mig__xs_writer *w, uint32_t type, const void *body, uint32_t len)
{
    uint8_t sub[8];
    put_le32(sub, MIG_XS_EMU_QEMU_UPSTREAM);
    put_le32(sub + 4, 0);
    struct iovec b[2] = {{sub, 8}, {(void *)body, len}};
    return put_record(w, type, b, 2, 8 + len);
}

int mig__xs_write_end_hvm(struct mig__xs_writer *w, const void *xs, uint32_t xs_len,
                          const void *dm, uint32_t dm_len)
{
    if ((xs_len && mig__xs_check_emu_xenstore(xs, xs_len) < 0) || dm_len == 0 ||
        dm_len > MIG_XS_MAX_EMU_CONTEXT)
        return -MIG_EINVAL;
    pthread_mutex_lock(&w->lock);
    int rc = put_record(w, MIG_XS_END, NULL, 0, 0);
    if (rc == 0 && xs_len)
        rc = put_emulator(w, MIG_XS_LIBXL_EMULATOR_XENSTORE_DATA, xs, xs_len);
    if (rc == 0)
        rc = put_emulator(w, MIG_XS_LIBXL_EMULATOR_CONTEXT, dm, dm_len);
    if (rc == 0)
        rc = put_record(w, MIG_XS_LIBXL_END, NULL, 0, 0);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int mig__xs_append_record(uint8_t **buf, size_t *len, uint32_t type, const void *body,
                          uint32_t body_len)
{
    size_t need = *len + 8 + PAD8(body_len);
    uint8_t *p = realloc(*buf, need);
    if (!p)
        return -MIG_ENOMEM;
    put_le32(p + *len, type);
    put_le32(p + *len + 4, body_len);
    if (body_len)
        memcpy(p + *len + 8, body, body_len);
    memset(p + *len + 8 + body_len, 0, PAD8(body_len) - body_len);
    *buf = p;
    *len = need;
    return 0;
}

/* ---- parser ---------------------------------------------------------- */

struct rd {
    struct mig_ctx *ctx;
    int fd;
    uint8_t *buf; /* owned: the current record body */
    size_t cap;
};

static int read_exact(struct rd *r, void *dst, size_t n)
{
    uint8_t *p = dst;
    while (n) {
        ssize_t got = read(r->fd, p, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return mig__from_errno(errno);
        if (got == 0) {
            MIG_LOG(r->ctx, ERROR, "stream truncated");
            return -MIG_EPROTO;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* One record: header, length capped before allocation, body, zero padding. */
static int read_record(struct rd *r, uint32_t *type, uint32_t *len)
{
    uint8_t h[8], pad[8];
    int rc = read_exact(r, h, 8);
    if (rc < 0)
        return rc;
    *type = le32(h);
    *len = le32(h + 4);
    uint32_t max = mig__xs_max_len(*type);
    if (*len > max && !(*type == MIG_XS_LIBXL_EMULATOR_CONTEXT && *len <= (64u << 20))) {
        MIG_LOG(r->ctx, ERROR, "record type %#x: length %u above %u", *type, *len, max);
        return -MIG_ETOOBIG;
    }
    if (*len > r->cap) {
        uint8_t *p = realloc(r->buf, *len);
        if (!p)
            return -MIG_ENOMEM;
        r->buf = p;
        r->cap = *len;
    }
    rc = read_exact(r, r->buf, *len);
    if (rc == 0 && PAD8(*len) != *len) {
        size_t np = (size_t)(PAD8(*len) - *len);
        rc = read_exact(r, pad, np);
        for (size_t i = 0; rc == 0 && i < np; i++)
            if (pad[i]) {
                MIG_LOG(r->ctx, ERROR, "record type %#x: non-zero padding", *type);
                rc = -MIG_EPROTO;
            }
    }
    return rc;
}

/* The libxc part: image header, domain header, records up to END. */
static int parse_libxc(struct rd *r, mig__xs_visit_fn *visit, void *opaque,
                       struct mig__xs_parse_info *info)
{
    uint8_t ih[24], dh[16];
    bool sde = false;
    int rc = read_exact(r, ih, 24);
    if (rc < 0)
        return rc;
    if (be64(ih) != MIG_XS_IHDR_MARKER || be32(ih + 8) != MIG_XS_IHDR_ID) {
        MIG_LOG(r->ctx, ERROR, "bad libxc image header");
        return -MIG_EPROTO;
    }
    info->version = be32(ih + 12);
    if (info->version < 2 || info->version > 3 || (ih[16] << 8 | ih[17]) & 1) {
        MIG_LOG(r->ctx, ERROR, "libxc image version %u / options unsupported", info->version);
        return -MIG_EVERSION;
    }
    rc = read_exact(r, dh, 16);
    if (rc < 0)
        return rc;
    if (le32(dh) != MIG_XS_DHDR_X86_HVM || dh[4] != 12 || dh[5] != 0) {
        MIG_LOG(r->ctx, ERROR, "domain header: type %u page_shift %u (want x86 HVM, 12)", le32(dh),
                dh[4]);
        return -MIG_EPROTO;
    }
    info->xen_major = le32(dh + 8);
    info->xen_minor = le32(dh + 12);
    for (;;) {
        uint32_t type, len;
        rc = read_record(r, &type, &len);
        if (rc < 0)
            return rc;
        switch (type) {
        case MIG_XS_STATIC_DATA_END:
            if (sde) {
                MIG_LOG(r->ctx, ERROR, "second STATIC_DATA_END");
                return -MIG_EPROTO;
            }
            sde = true;
            break;
        case MIG_XS_PAGE_DATA:
            if (!sde && info->version < 3)
                sde = true; /* v2: inferred at the first page, as libxc does */
            if (!sde) {
                MIG_LOG(r->ctx, ERROR, "PAGE_DATA before STATIC_DATA_END");
                return -MIG_EPROTO;
            }
            if (len >= 4)
                info->pages += le32(r->buf);
            break;
        case MIG_XS_END:
        case MIG_XS_VERIFY:
        case MIG_XS_X86_TSC_INFO:
        case MIG_XS_HVM_CONTEXT:
        case MIG_XS_HVM_PARAMS:
        case MIG_XS_X86_CPUID_POLICY:
        case MIG_XS_X86_MSR_POLICY:
            break;
        case MIG_XS_CHECKPOINT:
            MIG_LOG(r->ctx, ERROR, "CHECKPOINT in a plain migration stream");
            return -MIG_EPROTO;
        default:
            if (!(type & MIG_XS_OPTIONAL)) {
                MIG_LOG(r->ctx, ERROR, "libxc record type %#x not accepted for PVH/HVM", type);
                return -MIG_EPROTO;
            }
            continue; /* optional: skipped, as libxc does */
        }
        rc = mig__xs_check_record(type, r->buf, len);
        if (rc < 0) {
            MIG_LOG(r->ctx, ERROR, "malformed libxc record type %#x (length %u)", type, len);
            return -MIG_EPROTO;
        }
        if (visit && visit(opaque, MIG_XS_LAYER_LIBXC, type, r->buf, len))
            return -MIG_ECANCELLED;
        if (type == MIG_XS_END)
            return 0;
    }
}

/* c_info.name of xl's JSON configuration, for display: the first "name"
 * after "c_info", a plain printable string (anything else gives ""). */
static void xl_config_name(const char *json, size_t len, char *out, size_t out_len)
{
    const char *end = json + len, *p = memmem(json, len, "\"c_info\"", 8);
    out[0] = 0;
    if (!p || !(p = memmem(p, (size_t)(end - p), "\"name\"", 6)))
        return;
    for (p += 6; p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == ':'); p++)
        ;
    if (p >= end || *p++ != '"')
        return;
    size_t n = 0;
    while (p < end && *p != '"' && n + 1 < out_len) {
        if (*p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
            out[0] = 0;
            return;
        }
        out[n++] = *p++;
    }
    out[p < end && *p == '"' ? n : 0] = 0;
}

/* An `xl save` header whose 8 first bytes are already in 'first': checked,
 * its configuration's length and name noted in info, then skipped. */
static int read_xl_header(struct rd *r, const uint8_t first[8], struct mig__xs_parse_info *info)
{
    uint8_t rest[24 + 16];
    int rc = read_exact(r, rest, sizeof(rest));
    if (rc < 0)
        return rc;
    if (memcmp(first, XL_MAGIC, 8) || memcmp(rest, &XL_MAGIC[8], 24)) {
        MIG_LOG(r->ctx, ERROR, "neither a libxl stream nor an xl save image");
        return -MIG_EPROTO;
    }
    /* The xl header's integers are in the saver's byte order. */
    if (le32(rest + 24) != MIG_XS_XL_BYTEORDER) {
        MIG_LOG(r->ctx, ERROR, "xl save image of another byte order");
        return -MIG_EPROTO;
    }
    uint32_t flags = le32(rest + 28), optlen = le32(rest + 36);
    if (flags & ~(MIG_XS_XL_JSON | MIG_XS_XL_STREAMV2)) {
        MIG_LOG(r->ctx, ERROR, "xl save image with unknown mandatory flags %#x", flags);
        return -MIG_EVERSION;
    }
    if (!(flags & MIG_XS_XL_STREAMV2)) {
        MIG_LOG(r->ctx, ERROR, "xl save image of the legacy (v1) stream: not supported");
        return -MIG_EVERSION;
    }
    if (optlen > MAX_XL_OPTDATA)
        return -MIG_ETOOBIG;
    info->xl_flags = flags;
    if (!optlen)
        return 0;
    uint8_t *opt = malloc(optlen);
    if (!opt)
        return -MIG_ENOMEM;
    rc = read_exact(r, opt, optlen);
    /* optional data: u32 configuration length, the configuration */
    if (rc == 0 && optlen >= 4) {
        uint32_t cl = le32(opt);
        if (cl > optlen - 4) {
            MIG_LOG(r->ctx, ERROR, "xl save image: configuration of %u bytes in %u", cl,
                    optlen - 4);
            rc = -MIG_EPROTO;
        } else {
            info->xl_config_len = cl;
            if (flags & MIG_XS_XL_JSON)
                xl_config_name((const char *)opt + 4, cl, info->xl_name, sizeof(info->xl_name));
        }
    }
    free(opt);
    return rc;
}

int mig__xs_parse_stream(struct mig_ctx *ctx, int fd, mig__xs_visit_fn *visit, void *opaque,
                         struct mig__xs_parse_info *info_out)
{
    struct rd r = {.ctx = ctx, .fd = fd};
    struct mig__xs_parse_info info = {0};
    uint8_t h[16];
    bool libxc_done = false;
    int rc = read_exact(&r, h, 8);
    if (rc < 0)
        goto out;
    if (be64(h) != MIG_XS_LIBXL_IDENT) {
        rc = read_xl_header(&r, h, &info);
        if (rc < 0)
            goto out;
        info.xl_header = true;
        rc = read_exact(&r, h, 8);
        if (rc < 0)
            goto out;
        if (be64(h) != MIG_XS_LIBXL_IDENT) {
            MIG_LOG(ctx, ERROR, "no libxl stream after the xl header");
            rc = -MIG_EPROTO;
            goto out;
        }
    }
    rc = read_exact(&r, h + 8, 8);
    if (rc < 0)
        goto out;
    if (be32(h + 8) != 2 || be32(h + 12) & 1) {
        MIG_LOG(ctx, ERROR, "libxl stream version %u options %#x unsupported", be32(h + 8),
                be32(h + 12));
        rc = -MIG_EVERSION;
        goto out;
    }
    for (;;) {
        uint32_t type, len;
        rc = read_record(&r, &type, &len);
        if (rc < 0)
            goto out;
        switch (type) {
        case MIG_XS_LIBXL_LIBXC_CONTEXT:
            if (len != 0 || libxc_done) {
                rc = -MIG_EPROTO;
                MIG_LOG(ctx, ERROR, "second or non-empty LIBXC_CONTEXT");
                goto out;
            }
            if (visit && visit(opaque, MIG_XS_LAYER_LIBXL, type, r.buf, 0)) {
                rc = -MIG_ECANCELLED;
                goto out;
            }
            rc = parse_libxc(&r, visit, opaque, &info);
            if (rc < 0)
                goto out;
            libxc_done = true;
            continue;
        case MIG_XS_LIBXL_EMULATOR_XENSTORE_DATA:
        case MIG_XS_LIBXL_EMULATOR_CONTEXT:
            if (!libxc_done) {
                rc = -MIG_EPROTO;
                MIG_LOG(ctx, ERROR, "emulator record before the libxc stream");
                goto out;
            }
            /* {u32 emulator_id, u32 index} then the body (libxl's restore
             * takes QEMU upstream only) */
            if (len < 8 || le32(r.buf) != MIG_XS_EMU_QEMU_UPSTREAM ||
                (type == MIG_XS_LIBXL_EMULATOR_XENSTORE_DATA &&
                 mig__xs_check_emu_xenstore(r.buf + 8, len - 8) < 0)) {
                rc = -MIG_EPROTO;
                MIG_LOG(ctx, ERROR, "malformed emulator record (type %u, %u bytes)", type, len);
                goto out;
            }
            break;
        case MIG_XS_LIBXL_END:
            if (!libxc_done || len) {
                rc = -MIG_EPROTO;
                MIG_LOG(ctx, ERROR, "libxl END without a libxc stream");
                goto out;
            }
            break;
        default:
            /* CHECKPOINT_END / CHECKPOINT_STATE: only in checkpointed streams */
            rc = -MIG_EPROTO;
            MIG_LOG(ctx, ERROR, "libxl record type %u not accepted in a plain migration", type);
            goto out;
        }
        if (visit && visit(opaque, MIG_XS_LAYER_LIBXL, type, r.buf, len)) {
            rc = -MIG_ECANCELLED;
            goto out;
        }
        if (type == MIG_XS_LIBXL_END)
            break;
    }
    /* Nothing may follow: trailing bytes mean a record was longer than its
     * header said and the rest was misread as headers. */
    {
        uint8_t extra;
        ssize_t got;
        do
            got = read(fd, &extra, 1);
        while (got < 0 && errno == EINTR);
        if (got > 0) {
            MIG_LOG(ctx, ERROR, "data after the end of the stream");
            rc = -MIG_EPROTO;
            goto out;
        }
    }
    rc = 0;
out:
    if (info_out)
        *info_out = info;
    free(r.buf);
    return rc;
}

int mig__xs_parse_records(struct mig_ctx *ctx, const void *buf, size_t len, const uint32_t *allowed,
                          unsigned n_allowed, mig__xs_visit_fn *visit, void *opaque)
{
    const uint8_t *p = buf;
    size_t off = 0;
    while (off < len) {
        if (len - off < 8)
            return -MIG_EPROTO;
        uint32_t type = le32(p + off), rlen = le32(p + off + 4);
        bool ok = false;
        for (unsigned i = 0; i < n_allowed; i++)
            ok |= allowed[i] == type;
        if (!ok) {
            MIG_LOG(ctx, ERROR, "record type %#x not allowed here", type);
            return -MIG_EPROTO;
        }
        if (rlen > mig__xs_max_len(type) || PAD8(rlen) > len - off - 8) {
            MIG_LOG(ctx, ERROR, "record type %#x: length %u beyond the blob", type, rlen);
            return -MIG_EPROTO;
        }
        const uint8_t *body = p + off + 8;
        for (uint64_t i = rlen; i < PAD8(rlen); i++)
            if (body[i])
                return -MIG_EPROTO;
        if (mig__xs_check_record(type, body, rlen) < 0) {
            MIG_LOG(ctx, ERROR, "malformed record type %#x (length %u)", type, rlen);
            return -MIG_EPROTO;
        }
        if (visit && visit(opaque, MIG_XS_LAYER_LIBXC, type, body, rlen))
            return -MIG_ECANCELLED;
        off += 8 + PAD8(rlen);
    }
    return 0;
}
