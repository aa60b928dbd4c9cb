/*
 * record.c: one encode / decode pair per record type, their names and their
 * length limits (docs/stream-format.md, "Record types"). Decoders check every
 * count against the record's length before pointing into the payload.
 *
 * Entry points: mig__rec_put_* / mig__rec_get_* (stream.h),
 * mig__rec_max_len / mig__rec_fixed_len / mig__rec_type_known (internal).
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "stream-internal.h"

/* Arrays (pfns, zero runs) are sent and viewed in place: little-endian hosts
 * only, which is what Xen dom0 runs on (x86-64, arm64). */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "stream arrays assume little-endian");

#define VAR UINT32_MAX
#define PAGES_MAX (8u + MIG_PAGES_PER_BATCH * (8u + MIG_PAGE_SIZE))
#define PAGES_CRC_MAX (12u + MIG_PAGES_PER_BATCH * (12u + MIG_PAGE_SIZE))

static const struct {
    const char *name;
    uint32_t max;
    uint32_t fixed;
    bool handshake;
} types[MIG_REC__COUNT] = {
    [MIG_REC_HELLO] = {"HELLO", 48, 48, true},
    [MIG_REC_HELLO_ACK] = {"HELLO_ACK", 88, 88, true},
    [MIG_REC_FACTS] = {"FACTS", MIG_FACTS_MAX, VAR, false},
    [MIG_REC_DOMAIN_INFO] = {"DOMAIN_INFO", MIG_DOM_INFO_LEN, MIG_DOM_INFO_LEN, false},
    [MIG_REC_PAGES] = {"PAGES", PAGES_MAX, VAR, false},
    [MIG_REC_ZERO_RUNS] = {"ZERO_RUNS", 8 + MIG_ZERO_RUNS_MAX * 16, VAR, false},
    [MIG_REC_PAGES_ZSTD] = {"PAGES_ZSTD", MIG_ZSTD_REC_MAX, VAR, false},
    [MIG_REC_BLOCK_EXTENT] = {"BLOCK_EXTENT", 16 + MIG_BLOCK_DATA_MAX, VAR, false},
    [MIG_REC_STATE_BLOB] = {"STATE_BLOB", 8 + MIG_BLOB_MAX, VAR, false},
    [MIG_REC_ROUND_END] = {"ROUND_END", 16, 16, false},
    [MIG_REC_SWITCHOVER] = {"SWITCHOVER", 0, 0, false},
    [MIG_REC_READY] = {"READY", 0, 0, false},
    [MIG_REC_COMMIT] = {"COMMIT", 0, 0, false},
    [MIG_REC_COMMIT_ACK] = {"COMMIT_ACK", 0, 0, false},
    [MIG_REC_ABORT] = {"ABORT", 4 + MIG_TEXT_MAX, VAR, false},
    [MIG_REC_ERROR] = {"ERROR", 4 + MIG_TEXT_MAX, VAR, false},
    [MIG_REC_KEEPALIVE] = {"KEEPALIVE", 0, 0, false},
    [MIG_REC_CHANNEL_JOIN] = {"CHANNEL_JOIN", 56, 56, true},
    [MIG_REC_RESOLVE_QUERY] = {"RESOLVE_QUERY", 16 + MIG_NAME_MAX, VAR, false},
    [MIG_REC_RESOLVE_ANSWER] = {"RESOLVE_ANSWER", 24, 24, false},
    [MIG_REC_AUTH] = {"AUTH", 32, 32, true},
    [MIG_REC_SESSION] = {"SESSION", 56, 56, true},
    [MIG_REC_JOIN_ACK] = {"JOIN_ACK", 8, 8, true},
    [MIG_REC_HOOK_DATA] = {"HOOK_DATA", 8 + MIG_HOOK_DATA_MAX, VAR, false},
    [MIG_REC_PAGES_CRC] = {"PAGES_CRC", PAGES_CRC_MAX, VAR, false},
};

uint32_t mig__rec_pages_crc_len(uint32_t count)
{
    return 12 + count * (12 + MIG_PAGE_SIZE);
}

bool mig__rec_type_known(uint32_t type)
{
    return type > 0 && type < MIG_REC__COUNT && types[type].name;
}

uint32_t mig__rec_max_len(uint32_t type)
{
    return mig__rec_type_known(type) ? types[type].max : 0;
}

uint32_t mig__rec_fixed_len(uint32_t type)
{
    return mig__rec_type_known(type) ? types[type].fixed : 0;
}

bool mig__rec_is_handshake(uint32_t type)
{
    return mig__rec_type_known(type) && types[type].handshake;
}

const char *mig__rec_type_name(uint32_t type)
{
    return mig__rec_type_known(type) ? types[type].name : "UNKNOWN";
}

/* ---- encoders ----------------------------------------------------------- */

/* PAGES: the list, then the pages from where they are (one iovec each);
 * PAGES_CRC (open): the same without the CRCs that end it. */
static void put_page_list(struct mig__stream *s, uint32_t type, uint32_t round, unsigned n,
                          const uint64_t *pfns, const void *const *pages)
{
    uint8_t hdr[8];
    struct iovec iov[2 + MIG_PAGES_PER_BATCH];

    if (n == 0 || n > MIG_PAGES_PER_BATCH) {
        mig__stream_fail(s, n ? -MIG_ETOOBIG : -MIG_EINVAL);
        if (type == MIG_REC_PAGES_CRC) /* nothing goes out; end still unlocks */
            mig__stream_put_open(s, type, NULL, 0, 0, 0);
        return;
    }
    mig__le32_put(hdr, round);
    mig__le32_put(hdr + 4, n);
    iov[0] = (struct iovec){hdr, sizeof(hdr)};
    iov[1] = (struct iovec){(void *)pfns, (size_t)n * 8};
    for (unsigned i = 0; i < n; i++)
        iov[2 + i] = (struct iovec){(void *)pages[i], MIG_PAGE_SIZE};
    if (type == MIG_REC_PAGES_CRC) /* the record's CRC covers the list */
        mig__stream_put_open(s, type, iov, 2 + n, 2, 4 * n + 4);
    else
        mig__stream_put(s, type, iov, 2 + n);
}

void mig__rec_put_pages(struct mig__stream *s, uint32_t round, unsigned n, const uint64_t *pfns,
                        const void *const *pages)
{
    put_page_list(s, MIG_REC_PAGES, round, n, pfns, pages);
}

void mig__rec_put_pages_crc_begin(struct mig__stream *s, uint32_t round, unsigned n,
                                  const uint64_t *pfns, const void *const *pages)
{
    put_page_list(s, MIG_REC_PAGES_CRC, round, n, pfns, pages);
}

void mig__rec_put_pages_crc_end(struct mig__stream *s, unsigned n, const uint32_t *crcs)
{
    uint8_t tail[4 * (MIG_PAGES_PER_BATCH + 1)];
    if (n == 0 || n > MIG_PAGES_PER_BATCH) {
        mig__stream_fail(s, -MIG_EINVAL);
        mig__stream_put_tail(s, NULL, 0); /* unlocks */
        return;
    }
    memcpy(tail, crcs, 4 * (size_t)n);
    mig__le32_put(tail + 4 * n, mig__crc32c(0, tail, 4 * (size_t)n));
    mig__stream_put_tail(s, tail, 4 * n + 4);
}

void mig__rec_put_pages_zstd(struct mig__stream *s, uint32_t round, unsigned n,
                             const uint64_t *pfns, const void *frame, uint32_t frame_len)
{
    uint8_t hdr[8], tail[8];

    if (n == 0 || n > MIG_PAGES_PER_BATCH || !frame_len) {
        mig__stream_fail(s, n > MIG_PAGES_PER_BATCH ? -MIG_ETOOBIG : -MIG_EINVAL);
        return;
    }
    mig__le32_put(hdr, round);
    mig__le32_put(hdr + 4, n);
    mig__le32_put(tail, n * MIG_PAGE_SIZE);
    mig__le32_put(tail + 4, 0);
    struct iovec iov[4] = {{hdr, 8}, {(void *)pfns, (size_t)n * 8}, {tail, 8},
                           {(void *)frame, frame_len}};
    mig__stream_put(s, MIG_REC_PAGES_ZSTD, iov, 4);
}

void mig__rec_put_zero_runs(struct mig__stream *s, uint32_t round, unsigned nruns,
                            const struct mig__zero_run *runs)
{
    uint8_t hdr[8];

    if (nruns == 0 || nruns > MIG_ZERO_RUNS_MAX) {
        mig__stream_fail(s, nruns ? -MIG_ETOOBIG : -MIG_EINVAL);
        return;
    }
    mig__le32_put(hdr, round);
    mig__le32_put(hdr + 4, nruns);
    struct iovec iov[2] = {{hdr, 8}, {(void *)runs, (size_t)nruns * sizeof(*runs)}};
    mig__stream_put(s, MIG_REC_ZERO_RUNS, iov, 2);
}

void mig__rec_put_round_end(struct mig__stream *s, uint32_t round, uint64_t pages)
{
    uint8_t b[16];
    mig__le32_put(b, round);
    mig__le32_put(b + 4, 0);
    mig__le64_put(b + 8, pages);
    struct iovec iov = {b, sizeof(b)};
    mig__stream_put(s, MIG_REC_ROUND_END, &iov, 1);
}

void mig__rec_put_blob(struct mig__stream *s, uint32_t kind, const void *data, size_t len)
{
    uint8_t hdr[8];
    mig__le32_put(hdr, kind);
    mig__le32_put(hdr + 4, 0);
    struct iovec iov[2] = {{hdr, 8}, {(void *)data, len}};
    mig__stream_put(s, MIG_REC_STATE_BLOB, iov, 2);
}

void mig__rec_put_block_extent(struct mig__stream *s, uint32_t disk, uint64_t offset,
                               const void *data, size_t len)
{
    uint8_t hdr[16];
    mig__le32_put(hdr, disk);
    mig__le32_put(hdr + 4, 0);
    mig__le64_put(hdr + 8, offset);
    struct iovec iov[2] = {{hdr, 16}, {(void *)data, len}};
    mig__stream_put(s, MIG_REC_BLOCK_EXTENT, iov, 2);
}

void mig__rec_put_hook_data(struct mig__stream *s, uint32_t hook, uint32_t kind, const void *data,
                            size_t len)
{
    uint8_t hdr[8];
    mig__le32_put(hdr, hook);
    mig__le32_put(hdr + 4, kind);
    struct iovec iov[2] = {{hdr, 8}, {(void *)data, len}};
    mig__stream_put(s, MIG_REC_HOOK_DATA, iov, 2);
}

void mig__rec_put_text(struct mig__stream *s, uint32_t type, const char *text)
{
    struct iovec iov = {(void *)text, strlen(text)};
    mig__stream_put(s, type, &iov, 1);
}

void mig__rec_put_code_text(struct mig__stream *s, uint32_t type, int32_t code, const char *text)
{
    uint8_t hdr[4];
    size_t len = strlen(text);
    if (len > MIG_TEXT_MAX)
        len = MIG_TEXT_MAX; /* a reason is for humans: truncate rather than fail */
    /* Never cut a UTF-8 sequence in half: back up to a lead byte. */
    while (len && len < strlen(text) && ((uint8_t)text[len] & 0xc0) == 0x80)
        len--;
    mig__le32_put(hdr, (uint32_t)code);
    struct iovec iov[2] = {{hdr, 4}, {(void *)text, len}};
    mig__stream_put(s, type, iov, 2);
}

void mig__rec_put_empty(struct mig__stream *s, uint32_t type)
{
    mig__stream_put(s, type, NULL, 0);
}

void mig__rec_put_dom_info(struct mig__stream *s, const struct mig__rec_dom_info *di)
{
    uint8_t b[MIG_DOM_INFO_LEN] = {0};
    memcpy(b, di->name, strnlen(di->name, 63));
    mig__le64_put(b + 64, di->nr_pages);
    mig__le32_put(b + 72, di->page_size);
    mig__le32_put(b + 76, di->vcpus);
    memcpy(b + 80, di->config, strnlen(di->config, 511));
    struct iovec iov = {b, sizeof(b)};
    mig__stream_put(s, MIG_REC_DOMAIN_INFO, &iov, 1);
}

void mig__rec_put_resolve_query(struct mig__stream *s, const uint8_t session_id[16],
                                const char *domain)
{
    struct iovec iov[2] = {{(void *)session_id, 16}, {(void *)domain, strlen(domain)}};
    mig__stream_put(s, MIG_REC_RESOLVE_QUERY, iov, 2);
}

void mig__rec_put_resolve_answer(struct mig__stream *s, const uint8_t session_id[16],
                                 uint32_t outcome)
{
    uint8_t b[24];
    memcpy(b, session_id, 16);
    mig__le32_put(b + 16, outcome);
    mig__le32_put(b + 20, 0);
    struct iovec iov = {b, sizeof(b)};
    mig__stream_put(s, MIG_REC_RESOLVE_ANSWER, &iov, 1);
}

/* ---- decoders ----------------------------------------------------------- */

static int want_type(const struct mig__rec *r, uint32_t type)
{
    return r->type == type ? 0 : -MIG_EINVAL;
}

int mig__rec_get_pages(const struct mig__rec *r, struct mig__rec_pages *out)
{
    if (r->type != MIG_REC_PAGES && r->type != MIG_REC_PAGES_ZSTD &&
        r->type != MIG_REC_PAGES_CRC)
        return -MIG_EINVAL;
    if (r->len < 8)
        return -MIG_EPROTO;
    uint32_t count = mig__le32_get(r->payload + 4);
    if (count == 0 || count > MIG_PAGES_PER_BATCH)
        return -MIG_EPROTO;
    uint64_t head = 8 + (uint64_t)count * 8;
    memset(out, 0, sizeof(*out));
    out->round = mig__le32_get(r->payload);
    out->count = count;
    out->pfns = (const uint64_t *)(const void *)(r->payload + 8);
    if (r->type == MIG_REC_PAGES_CRC) {
        /* as read (stream.c): the list, the pages unless placed, the CRCs */
        if (r->len != mig__rec_pages_crc_len(count))
            return -MIG_EPROTO;
        out->data = r->placed ? NULL : r->payload + head;
        out->data_len = r->placed ? 0 : count * MIG_PAGE_SIZE;
        out->crcs = (const uint32_t *)(const void *)(r->payload + head + out->data_len);
        out->raw_len = count * MIG_PAGE_SIZE;
        return 0;
    }
    if (r->type == MIG_REC_PAGES) {
        if ((uint64_t)r->len != head + (uint64_t)count * MIG_PAGE_SIZE)
            return -MIG_EPROTO;
        out->data = r->placed ? NULL : r->payload + head;
        out->data_len = r->placed ? 0 : count * MIG_PAGE_SIZE;
        out->raw_len = count * MIG_PAGE_SIZE;
        return 0;
    }
    if ((uint64_t)r->len <= head + 8)
        return -MIG_EPROTO;
    out->raw_len = mig__le32_get(r->payload + head);
    if (out->raw_len != count * MIG_PAGE_SIZE || mig__le32_get(r->payload + head + 4) != 0)
        return -MIG_EPROTO;
    out->data = r->payload + head + 8;
    out->data_len = (uint32_t)(r->len - head - 8);
    return 0;
}

int mig__rec_get_zero_runs(const struct mig__rec *r, struct mig__rec_zero_runs *out)
{
    if (want_type(r, MIG_REC_ZERO_RUNS))
        return -MIG_EINVAL;
    if (r->len < 8)
        return -MIG_EPROTO;
    uint32_t n = mig__le32_get(r->payload + 4);
    if (n == 0 || n > MIG_ZERO_RUNS_MAX || (uint64_t)r->len != 8 + (uint64_t)n * 16)
        return -MIG_EPROTO;
    out->round = mig__le32_get(r->payload);
    out->nruns = n;
    out->runs = (const struct mig__zero_run *)(const void *)(r->payload + 8);
    for (uint32_t i = 0; i < n; i++) /* pfn + count must not wrap */
        if (out->runs[i].count == 0 || out->runs[i].pfn + out->runs[i].count < out->runs[i].pfn)
            return -MIG_EPROTO;
    return 0;
}

int mig__rec_get_round_end(const struct mig__rec *r, uint32_t *round_out, uint64_t *pages_out)
{
    if (want_type(r, MIG_REC_ROUND_END))
        return -MIG_EINVAL;
    if (r->len != 16 || mig__le32_get(r->payload + 4))
        return -MIG_EPROTO;
    *round_out = mig__le32_get(r->payload);
    *pages_out = mig__le64_get(r->payload + 8);
    return 0;
}

int mig__rec_get_blob(const struct mig__rec *r, uint32_t *kind_out, const void **data_out,
                      size_t *len_out)
{
    if (want_type(r, MIG_REC_STATE_BLOB))
        return -MIG_EINVAL;
    if (r->len < 8 || mig__le32_get(r->payload + 4))
        return -MIG_EPROTO;
    *kind_out = mig__le32_get(r->payload);
    *data_out = r->payload + 8;
    *len_out = r->len - 8;
    return 0;
}

int mig__rec_get_block_extent(const struct mig__rec *r, uint32_t *disk_out, uint64_t *offset_out,
                              const void **data_out, size_t *len_out)
{
    if (want_type(r, MIG_REC_BLOCK_EXTENT))
        return -MIG_EINVAL;
    if (r->len < 16 || mig__le32_get(r->payload + 4))
        return -MIG_EPROTO;
    *disk_out = mig__le32_get(r->payload);
    *offset_out = mig__le64_get(r->payload + 8);
    *data_out = r->payload + 16;
    *len_out = r->len - 16;
    return 0;
}

int mig__rec_get_hook_data(const struct mig__rec *r, uint32_t *hook_out, uint32_t *kind_out,
                           const void **data_out, size_t *len_out)
{
    if (want_type(r, MIG_REC_HOOK_DATA))
        return -MIG_EINVAL;
    if (r->len < 8)
        return -MIG_EPROTO;
    *hook_out = mig__le32_get(r->payload);
    *kind_out = mig__le32_get(r->payload + 4);
    *data_out = r->payload + 8;
    *len_out = r->len - 8;
    return 0;
}

/* Strict UTF-8 without NUL (no overlongs, surrogates or > U+10FFFF). */
static bool text_ok(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        unsigned n;
        uint32_t cp;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (unsigned k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

static int dup_text(const uint8_t *p, size_t len, char **text_out)
{
    *text_out = NULL;
    if (!text_ok(p, len))
        return -MIG_EPROTO;
    char *t = malloc(len + 1);
    if (!t)
        return -MIG_ENOMEM;
    if (len)
        memcpy(t, p, len);
    t[len] = '\0';
    *text_out = t;
    return 0;
}

int mig__rec_get_text(const struct mig__rec *r, char **text_out)
{
    if (r->type != MIG_REC_FACTS) {
        *text_out = NULL;
        return -MIG_EINVAL;
    }
    return dup_text(r->payload, r->len, text_out);
}

int mig__rec_get_code_text(const struct mig__rec *r, int32_t *code_out, char **text_out)
{
    *text_out = NULL;
    if (r->type != MIG_REC_ABORT && r->type != MIG_REC_ERROR)
        return -MIG_EINVAL;
    if (r->len < 4)
        return -MIG_EPROTO;
    *code_out = (int32_t)mig__le32_get(r->payload);
    return dup_text(r->payload + 4, r->len - 4, text_out);
}

/* A NUL-padded fixed field: text up to the first NUL, nothing but NULs after. */
static int fixed_text(const uint8_t *p, size_t n, char *dst)
{
    size_t len = strnlen((const char *)p, n);
    if (len == n)
        return -MIG_EPROTO; /* must keep room for the terminator */
    for (size_t i = len; i < n; i++)
        if (p[i])
            return -MIG_EPROTO;
    if (!text_ok(p, len))
        return -MIG_EPROTO;
    memcpy(dst, p, len + 1);
    return 0;
}

int mig__rec_get_dom_info(const struct mig__rec *r, struct mig__rec_dom_info *out)
{
    if (want_type(r, MIG_REC_DOMAIN_INFO))
        return -MIG_EINVAL;
    if (r->len != MIG_DOM_INFO_LEN)
        return -MIG_EPROTO;
    memset(out, 0, sizeof(*out));
    if (fixed_text(r->payload, 64, out->name) || fixed_text(r->payload + 80, 512, out->config))
        return -MIG_EPROTO;
    out->nr_pages = mig__le64_get(r->payload + 64);
    out->page_size = mig__le32_get(r->payload + 72);
    out->vcpus = mig__le32_get(r->payload + 76);
    return 0;
}

int mig__rec_get_resolve_query(const struct mig__rec *r, uint8_t session_id_out[16],
                               char **domain_out)
{
    *domain_out = NULL;
    if (want_type(r, MIG_REC_RESOLVE_QUERY))
        return -MIG_EINVAL;
    if (r->len <= 16)
        return -MIG_EPROTO;
    memcpy(session_id_out, r->payload, 16);
    return dup_text(r->payload + 16, r->len - 16, domain_out);
}

int mig__rec_get_resolve_answer(const struct mig__rec *r, uint8_t session_id_out[16],
                                uint32_t *outcome_out)
{
    if (want_type(r, MIG_REC_RESOLVE_ANSWER))
        return -MIG_EINVAL;
    if (r->len != 24 || mig__le32_get(r->payload + 20))
        return -MIG_EPROTO;
    memcpy(session_id_out, r->payload, 16);
    *outcome_out = mig__le32_get(r->payload + 16);
    return 0;
}
