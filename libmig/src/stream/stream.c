/*
 * stream.c: record framing over one transport connection. A buffered writer
 * with a sticky error (small records are coalesced, large ones go out with
 * one writev of header + caller's buffers, no copy of page data) and a
 * reader that validates each header before allocating or reading its
 * payload, checks padding and CRC32C, and sends KEEPALIVEs while it waits.
 *
 * Entry points: mig__stream_put/flush/get/error (stream.h),
 * mig__stream_new, _free, _shutdown, _peek, _read_raw, _write_raw (stream-internal.h).
 *
 * Threads: one reader and any number of writers; writers serialise on
 * 'wlock', so records never interleave. The reader takes 'wlock' only with
 * trylock to send a KEEPALIVE.
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MIG_LOG_MODULE "stream"
#include "crc32c.h"
#include "stream-internal.h"

#define WBUF_SIZE (256u << 10)
#define RBUF_SIZE (64u << 10)
#define COALESCE_MAX (32u << 10)   /* payloads above this go out by writev */
/* Direct reads (into place, or CRC'd while in cache): 1 MiB, one
 * PAGES_CRC record's pages (the sender's MIG_SEND_DIRECT_PAGES) in one
 * read, so the socket's low-water mark wakes the receiver once per record
 * instead of four times (2 GiB idle guest, 30 and 24 paired moves: 6% and
 * 3% less time than 256 KiB reads; 512 KiB gave the same as 1 MiB). */
#define READ_CHUNK (1u << 20)
/* Page data of an unplaced PAGES_CRC record is read into the payload in
 * steps of this much, which it grows by only as the bytes arrive. */
#define GROW_STEP (256u << 10)
/* Buffered reads take at most this much beyond what is needed: a page
 * record's header and list come with a little of its pages, which are
 * copied out of the buffer, the rest read straight into place (64 KiB
 * reads copied 6% of every page record twice). */
#define FILL_READ (8u << 10)

struct mig__stream {
    struct mig_ctx *ctx;            /* borrowed */
    struct mig__conn *conn;         /* owned */
    unsigned timeout_ms;
    bool crc;                       /* plaintext: compute and check CRC32C */
    bool in_handshake;              /* handshake record types allowed */
    int err;                        /* sticky first error, 0 */

    pthread_mutex_t wlock;          /* guards the write side below */
    uint8_t *wbuf;                  /* owned, WBUF_SIZE */
    size_t wlen;
    struct iovec *wiov;             /* owned scratch for writev */
    unsigned wiov_cap;
    uint64_t bytes_out;
    uint64_t last_tx_ns;
    uint32_t tail_owed;             /* an open record's tail still to come (put_tail) */
    uint32_t tail_pad;              /* its padding, sent after the tail */

    uint8_t *rbuf;                  /* owned, RBUF_SIZE */
    size_t rpos, rend;
    uint8_t *payload;               /* owned; records borrow it until next get */
    size_t payload_cap;
    const struct mig__placer *placer; /* borrowed; NULL: none */
    uint64_t *place_pfns;           /* owned, MIG_PAGES_PER_BATCH (with a placer) */
    void **place_ptrs;              /* owned, MIG_PAGES_PER_BATCH (with a placer) */
    uint32_t *bad_idx;              /* owned, MIG_PAGES_PER_BATCH: a PAGES_CRC's bad pages */
    uint64_t bytes_in;
    struct mig_ratelimit rl;        /* protocol warnings */
};

static const uint8_t zeros[8];

int mig__stream_new(struct mig_ctx *ctx, struct mig__conn *conn, unsigned timeout_ms,
                    struct mig__stream **s_out)
{
    struct mig__stream *s = NULL;
    int rc = -MIG_ENOMEM;

    *s_out = NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        goto out;
    s->ctx = ctx;
    s->conn = conn;
    conn = NULL;
    s->timeout_ms = timeout_ms ? timeout_ms : MIG_DEFAULT_TIMEOUT_MS;
    s->crc = !s->conn->encrypted;
    s->in_handshake = true;
    pthread_mutex_init(&s->wlock, NULL);
    mig__ratelimit_init(&s->rl, 1000, 5);
    s->wbuf = malloc(WBUF_SIZE);
    s->rbuf = malloc(RBUF_SIZE);
    if (!s->wbuf || !s->rbuf)
        goto out;
    s->last_tx_ns = mig__now_ns();
    *s_out = s;
    s = NULL;
    rc = 0;
out:
    mig__conn_free(conn);
    mig__stream_free(s);
    return rc;
}

void mig__stream_free(struct mig__stream *s)
{
    if (!s)
        return;
    mig__conn_free(s->conn);
    pthread_mutex_destroy(&s->wlock);
    free(s->payload);
    free(s->place_pfns);
    free(s->place_ptrs);
    free(s->bad_idx);
    free(s->rbuf);
    free(s->wiov);
    free(s->wbuf);
    free(s);
}

void mig__stream_shutdown(struct mig__stream *s)
{
    if (s && s->conn)
        s->conn->ops->shutdown(s->conn);
}

struct mig__conn *mig__stream_conn(struct mig__stream *s)
{
    return s->conn;
}

void mig__stream_set_handshake(struct mig__stream *s, bool in_handshake)
{
    s->in_handshake = in_handshake;
}

int mig__stream_fail(struct mig__stream *s, int rc)
{
    if (!s->err && rc)
        s->err = rc;
    return s->err;
}

int mig__stream_error(const struct mig__stream *s)
{
    return s->err;
}

uint64_t mig__stream_bytes_out(const struct mig__stream *s)
{
    return s->bytes_out;
}

uint64_t mig__stream_bytes_in(const struct mig__stream *s)
{
    return s->bytes_in;
}

/* ---- write side (caller holds wlock) ------------------------------------ */

static int push(struct mig__stream *s, struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    int rc = s->conn->ops->writev(s->conn, iov, n, (int)s->timeout_ms);
    if (rc < 0) {
        MIG_LOG(s->ctx, WARN, "write to %s failed: %s", s->conn->peer, mig_strerror(rc));
        return mig__stream_fail(s, rc);
    }
    s->bytes_out += total;
    s->last_tx_ns = mig__now_ns();
    return 0;
}

static int flush_locked(struct mig__stream *s)
{
    if (s->err)
        return s->err;
    if (!s->wlen)
        return 0;
    struct iovec iov = {s->wbuf, s->wlen};
    s->wlen = 0;
    return push(s, &iov, 1);
}

static int wiov_reserve(struct mig__stream *s, unsigned n)
{
    if (n <= s->wiov_cap)
        return 0;
    struct iovec *v = realloc(s->wiov, n * sizeof(*v));
    if (!v)
        return -MIG_ENOMEM;
    s->wiov = v;
    s->wiov_cap = n;
    return 0;
}

/* Queue a record of iov's bytes plus a tail of tail_len bytes that
 * put_tail sends later (0: none); its CRC covers the header, iov[0..nmeta)
 * and, when that is all of it, the padding. */
static void put_locked(struct mig__stream *s, uint32_t type, const struct iovec *iov,
                       unsigned iovcnt, unsigned nmeta, uint32_t tail_len)
{
    uint8_t hdr[MIG_REC_HDR_LEN];
    uint64_t len = tail_len;
    int rc;

    if (s->err)
        return;
    if (s->tail_owed) {
        MIG_LOG(s->ctx, ERROR, "%s record put inside an open record",
                mig__rec_type_name(type));
        mig__stream_fail(s, -MIG_EINVAL);
        return;
    }
    for (unsigned i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    if (!mig__rec_type_known(type)) {
        MIG_LOG(s->ctx, ERROR, "refusing to send unknown record type %" PRIu32, type);
        mig__stream_fail(s, -MIG_EINVAL);
        return;
    }
    if (len > mig__rec_max_len(type)) {
        MIG_LOG(s->ctx, ERROR, "%s record of %" PRIu64 " bytes exceeds its maximum %" PRIu32,
                mig__rec_type_name(type), len, mig__rec_max_len(type));
        mig__stream_fail(s, -MIG_ETOOBIG);
        return;
    }
    size_t pad = (8 - (len & 7)) & 7;
    mig__le32_put(hdr, type);
    mig__le32_put(hdr + 4, (uint32_t)len);
    uint32_t crc = 0;
    if (s->crc) {
        crc = mig__crc32c(0, hdr, 8);
        crc = mig__crc32c_iov(crc, iov, nmeta);
        if (nmeta == iovcnt && !tail_len)
            crc = mig__crc32c(crc, zeros, pad);
    }
    /* test builds: a record damaged in flight, as the receiver will see it */
    if (s->crc && mig__fault(s->ctx, "wire-corrupt", (long)type) == MIG__FAULT_CORRUPT)
        crc ^= 0x00010000u;
    mig__le32_put(hdr + 8, crc);
    mig__le32_put(hdr + 12, 0);
    if (tail_len) { /* the padding follows the tail */
        s->tail_owed = tail_len;
        s->tail_pad = (uint32_t)pad;
        len -= tail_len;
        pad = 0;
    }

    size_t rec = MIG_REC_HDR_LEN + len + pad;
    if (len <= COALESCE_MAX) {
        if (s->wlen + rec > WBUF_SIZE && flush_locked(s))
            return;
        uint8_t *p = s->wbuf + s->wlen;
        memcpy(p, hdr, sizeof(hdr));
        p += sizeof(hdr);
        for (unsigned i = 0; i < iovcnt; i++) {
            if (iov[i].iov_len)
                memcpy(p, iov[i].iov_base, iov[i].iov_len);
            p += iov[i].iov_len;
        }
        memset(p, 0, pad);
        s->wlen += rec;
        return;
    }
    /* Large: pending bytes + header + the caller's buffers + padding, one writev. */
    rc = wiov_reserve(s, iovcnt + 3);
    if (rc) {
        mig__stream_fail(s, rc);
        return;
    }
    unsigned n = 0;
    if (s->wlen) {
        s->wiov[n++] = (struct iovec){s->wbuf, s->wlen};
        s->wlen = 0;
    }
    s->wiov[n++] = (struct iovec){hdr, sizeof(hdr)};
    for (unsigned i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_len)
            continue;
        /* adjacent pieces (a guest's consecutive pages) go as one: the
         * kernel's copy pays per piece */
        struct iovec *last = &s->wiov[n - 1];
        if ((uint8_t *)last->iov_base + last->iov_len == (uint8_t *)iov[i].iov_base)
            last->iov_len += iov[i].iov_len;
        else
            s->wiov[n++] = iov[i];
    }
    if (pad)
        s->wiov[n++] = (struct iovec){(void *)zeros, pad};
    push(s, s->wiov, (int)n);
}

void mig__stream_put(struct mig__stream *s, uint32_t type, const struct iovec *iov,
                     unsigned iovcnt)
{
    pthread_mutex_lock(&s->wlock);
    put_locked(s, type, iov, iovcnt, iovcnt, 0);
    pthread_mutex_unlock(&s->wlock);
}

/* The write lock stays held until put_tail: another writer of this stream
 * (a hook's thread) must not put a record inside the open one. */
void mig__stream_put_open(struct mig__stream *s, uint32_t type, const struct iovec *iov,
                          unsigned iovcnt, unsigned nmeta, uint32_t tail_len)
{
    pthread_mutex_lock(&s->wlock);
    put_locked(s, type, iov, iovcnt, nmeta < iovcnt ? nmeta : iovcnt, tail_len);
}

void mig__stream_put_tail(struct mig__stream *s, const void *tail, uint32_t len)
{
    if (!s->err && (len != s->tail_owed || !len)) {
        MIG_LOG(s->ctx, ERROR, "record tail of %" PRIu32 " bytes where %" PRIu32 " are owed", len,
                s->tail_owed);
        mig__stream_fail(s, -MIG_EINVAL);
    }
    if (!s->err && s->wlen + len + s->tail_pad > WBUF_SIZE)
        flush_locked(s);
    if (!s->err && len + s->tail_pad <= WBUF_SIZE) {
        memcpy(s->wbuf + s->wlen, tail, len);
        memset(s->wbuf + s->wlen + len, 0, s->tail_pad);
        s->wlen += len + s->tail_pad;
    } else if (!s->err) {
        struct iovec iov[2] = {{(void *)tail, len}, {(void *)zeros, s->tail_pad}};
        push(s, iov, s->tail_pad ? 2 : 1);
    }
    s->tail_owed = 0; /* closed (after an error nothing more goes out anyway) */
    pthread_mutex_unlock(&s->wlock);
}

int mig__stream_flush(struct mig__stream *s)
{
    pthread_mutex_lock(&s->wlock);
    int rc = flush_locked(s);
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

int mig__stream_keepalive(struct mig__stream *s)
{
    if (pthread_mutex_trylock(&s->wlock))
        return s->err; /* a writer is active: the peer hears from us anyway */
    uint64_t quiet = mig__now_ns() - s->last_tx_ns;
    if (!s->err && !s->tail_owed && quiet >= (uint64_t)s->timeout_ms * 1000000ull / 3) {
        put_locked(s, MIG_REC_KEEPALIVE, NULL, 0, 0, 0);
        flush_locked(s);
    }
    int rc = s->err;
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

int mig__stream_write_raw(struct mig__stream *s, const void *buf, size_t len)
{
    pthread_mutex_lock(&s->wlock);
    int rc = flush_locked(s);
    if (!rc) {
        struct iovec iov = {(void *)buf, len};
        rc = push(s, &iov, 1);
    }
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

/* ---- read side ----------------------------------------------------------- */

/* One transport read with the stream's liveness rules: wait in slices of a
 * third of the timeout, sending a KEEPALIVE after each silent slice. */
static int read_some(struct mig__stream *s, void *buf, size_t len, size_t *n_out)
{
    unsigned slice = s->timeout_ms / 3 ? s->timeout_ms / 3 : 1;
    uint64_t deadline = mig__now_ns() + (uint64_t)s->timeout_ms * 1000000ull;
    for (;;) {
        int rc = s->conn->ops->read(s->conn, buf, len, (int)slice, n_out);
        if (rc == 0) {
            s->bytes_in += *n_out;
            return 0;
        }
        if (rc != -MIG_ETIMEOUT)
            return mig__stream_fail(s, rc);
        if (mig__now_ns() >= deadline) {
            MIG_LOG(s->ctx, ERROR, "%s silent for %u ms: peer considered dead", s->conn->peer,
                    s->timeout_ms);
            return mig__stream_fail(s, -MIG_ETIMEOUT);
        }
        if (!s->in_handshake)
            mig__stream_keepalive(s);
    }
}

/* Make at least 'need' (<= RBUF_SIZE) bytes available at rbuf + rpos. */
static int fill(struct mig__stream *s, size_t need)
{
    if (s->rend - s->rpos >= need)
        return 0;
    if (s->rpos) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rend - s->rpos);
        s->rend -= s->rpos;
        s->rpos = 0;
    }
    while (s->rend < need) {
        size_t n, want = need - s->rend < FILL_READ ? FILL_READ : need - s->rend;
        if (want > RBUF_SIZE - s->rend)
            want = RBUF_SIZE - s->rend;
        int rc = read_some(s, s->rbuf + s->rend, want, &n);
        if (rc)
            return rc;
        s->rend += n;
    }
    return 0;
}

/* Read exactly 'len' bytes into dst, updating *crc as they arrive. */
static int read_exact(struct mig__stream *s, uint8_t *dst, size_t len, uint32_t *crc)
{
    if (!len)
        return 0;
    size_t have = s->rend - s->rpos;
    if (have) {
        size_t n = have < len ? have : len;
        memcpy(dst, s->rbuf + s->rpos, n);
        s->rpos += n;
        if (crc)
            *crc = mig__crc32c(*crc, dst, n);
        dst += n;
        len -= n;
    }
    while (len) {
        if (len < RBUF_SIZE / 2) {
            int rc = fill(s, len);
            if (rc)
                return rc;
            memcpy(dst, s->rbuf + s->rpos, len);
            s->rpos += len;
            if (crc)
                *crc = mig__crc32c(*crc, dst, len);
            return 0;
        }
        size_t n;
        int rc = read_some(s, dst, len < READ_CHUNK ? len : READ_CHUNK, &n);
        if (rc)
            return rc;
        if (crc)
            *crc = mig__crc32c(*crc, dst, n);
        dst += n;
        len -= n;
    }
    return 0;
}

int mig__stream_read_raw(struct mig__stream *s, void *buf, size_t len)
{
    if (s->err)
        return s->err;
    return read_exact(s, buf, len, NULL);
}

int mig__stream_peek(struct mig__stream *s, void *buf, size_t len)
{
    if (s->err)
        return s->err;
    if (len > RBUF_SIZE)
        return -MIG_EINVAL;
    int rc = fill(s, len);
    if (!rc)
        memcpy(buf, s->rbuf + s->rpos, len);
    return rc;
}

static int bad(struct mig__stream *s, int rc, const char *what, uint32_t type, uint32_t len)
{
    MIG_LOG_RL(s->ctx, &s->rl, ERROR, "from %s: %s (type %" PRIu32 " %s, length %" PRIu32 ")",
               s->conn->peer, what, type, mig__rec_type_name(type), len);
    return mig__stream_fail(s, rc);
}

void mig__stream_set_placer(struct mig__stream *s, const struct mig__placer *placer)
{
    if (placer && !s->place_pfns) {
        s->place_pfns = calloc(MIG_PAGES_PER_BATCH, sizeof(*s->place_pfns));
        s->place_ptrs = calloc(MIG_PAGES_PER_BATCH, sizeof(*s->place_ptrs));
        if (!s->place_pfns || !s->place_ptrs)
            placer = NULL; /* no room: records are read as usual */
    }
    s->placer = placer;
}

/* Make the payload buffer hold at least 'cap' bytes (keeping what it has). */
static int payload_reserve(struct mig__stream *s, size_t cap)
{
    if (s->payload_cap >= cap)
        return 0;
    uint8_t *p = realloc(s->payload, cap);
    if (!p)
        return mig__stream_fail(s, -MIG_ENOMEM);
    s->payload = p;
    s->payload_cap = cap;
    return 0;
}

/* Ask the placer where a page record's pages go (its pfns at payload + 8):
 * 0 and s->place_ptrs set, 1 (read as usual) or an error (refused). */
static int ask_placer(struct mig__stream *s, uint32_t round, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        s->place_pfns[i] = mig__le64_get(s->payload + 8 + 8 * (size_t)i);
    return s->placer->place(s->placer->opaque, round, count, s->place_pfns, s->place_ptrs);
}

/* Read 'count' pages to s->place_ptrs, runs of adjacent destinations in
 * one go, updating *crc (NULL: none) as they arrive. */
static int read_placed(struct mig__stream *s, uint32_t count, uint32_t *crc)
{
    for (uint32_t i = 0, j; i < count; i = j) {
        uint8_t *dst = s->place_ptrs[i];
        for (j = i + 1; j < count; j++)
            if ((uint8_t *)s->place_ptrs[j] != dst + (size_t)(j - i) * MIG_PAGE_SIZE)
                break;
        int rc = read_exact(s, dst, (size_t)(j - i) * MIG_PAGE_SIZE, crc);
        if (rc)
            return rc;
    }
    return 0;
}

/* A PAGES record with a placer: read round, count and pfns into the
 * payload, ask where the pages go, read them there. *got_out: payload bytes
 * read so far (the caller reads the rest as usual unless *placed_out). */
static int place_pages(struct mig__stream *s, uint32_t len, uint32_t *crc, size_t *got_out,
                       bool *placed_out, int *err_out)
{
    const uint32_t per = 8 + MIG_PAGE_SIZE;
    int rc = payload_reserve(s, 8 + 8 * (size_t)MIG_PAGES_PER_BATCH);
    if (rc)
        return rc;
    rc = read_exact(s, s->payload, 8, crc);
    if (rc)
        return rc;
    *got_out = 8;
    uint32_t round = mig__le32_get(s->payload), count = mig__le32_get(s->payload + 4);
    if (count == 0 || count > MIG_PAGES_PER_BATCH || len != 8 + (uint64_t)count * per)
        return 0; /* not a PAGES record this reader accepts: the usual path rejects it */
    rc = read_exact(s, s->payload + 8, 8 * (size_t)count, crc);
    if (rc)
        return rc;
    *got_out = 8 + 8 * (size_t)count;
    rc = ask_placer(s, round, count);
    if (rc < 0)
        *err_out = rc;
    if (rc != 0)
        return 0;
    rc = read_placed(s, count, crc);
    if (rc == 0)
        *placed_out = true;
    return rc;
}

/* PAGES_CRC: the list (round, count, pfns) first, its record CRC checked
 * before a page is read; then the pages, into place (a placer) or into the
 * payload after the list; then the CRCs and their own CRC, after the list
 * (placed) or the pages; then each page checked against its CRC. 'crc'
 * holds the header's part. */
static int get_pages_crc(struct mig__stream *s, uint32_t len, uint32_t crc, uint32_t want,
                         struct mig__rec *rec)
{
    const uint32_t type = MIG_REC_PAGES_CRC, run_max = GROW_STEP / MIG_PAGE_SIZE;
    uint32_t *crcp = s->crc ? &crc : NULL;
    if (len < 8)
        return bad(s, -MIG_EPROTO, "page record too short", type, len);
    if (!s->bad_idx) {
        s->bad_idx = malloc(MIG_PAGES_PER_BATCH * sizeof(*s->bad_idx));
        if (!s->bad_idx)
            return mig__stream_fail(s, -MIG_ENOMEM);
    }
    int rc = payload_reserve(s, 8 + 12 * (size_t)MIG_PAGES_PER_BATCH + 4);
    if (rc)
        return rc;
    rc = read_exact(s, s->payload, 8, crcp);
    if (rc)
        return rc;
    uint32_t round = mig__le32_get(s->payload), count = mig__le32_get(s->payload + 4);
    if (count == 0 || count > MIG_PAGES_PER_BATCH || len != mig__rec_pages_crc_len(count))
        return bad(s, -MIG_EPROTO, "page count does not match the record's length", type, len);
    const size_t list = 8 + 8 * (size_t)count, pages = (size_t)count * MIG_PAGE_SIZE;
    rc = read_exact(s, s->payload + 8, list - 8, crcp);
    if (rc)
        return rc;
    if (s->crc && crc != want)
        return bad(s, -MIG_ECRC, "CRC32C mismatch in a page list: record corrupted in transit",
                   type, len);
    if (!s->crc && want != 0)
        return bad(s, -MIG_EPROTO, "CRC field set on an encrypted channel", type, len);

    void **ptrs = NULL;
    if (s->placer) {
        rc = ask_placer(s, round, count);
        if (rc < 0)
            rec->place_err = rc;
        else if (rc == 0)
            ptrs = s->place_ptrs;
    }
    if (ptrs) {
        rc = read_placed(s, count, NULL);
        if (rc)
            return rc;
    }
    for (uint32_t i = 0, j; !ptrs && i < count; i = j) { /* the payload grows as it arrives */
        j = count - i < run_max ? count : i + run_max;
        rc = payload_reserve(s, list + (size_t)j * MIG_PAGE_SIZE);
        if (rc == 0)
            rc = read_exact(s, s->payload + list + (size_t)i * MIG_PAGE_SIZE,
                            (size_t)(j - i) * MIG_PAGE_SIZE, NULL);
        if (rc)
            return rc;
    }
    /* the CRCs, their CRC, the record's padding */
    const size_t at = list + (ptrs ? 0 : pages), tail = 4 * (size_t)count + 4;
    const size_t pad = (8 - (len & 7)) & 7;
    rc = payload_reserve(s, at + tail + pad);
    if (rc == 0)
        rc = read_exact(s, s->payload + at, tail + pad, NULL);
    if (rc)
        return rc;
    for (size_t i = 0; i < pad; i++)
        if (s->payload[at + tail + i])
            return bad(s, -MIG_EPROTO, "non-zero padding", type, len);
    if (mig__crc32c(0, s->payload + at, tail - 4) != mig__le32_get(s->payload + at + tail - 4))
        return bad(s, -MIG_ECRC, "CRC32C mismatch in a page record's CRCs: corrupted in transit",
                   type, len);
    uint32_t nbad = 0;
    for (uint32_t k = 0; k < count; k++) {
        const uint8_t *pg = ptrs ? ptrs[k] : s->payload + list + (size_t)k * MIG_PAGE_SIZE;
        if (mig__crc32c(0, pg, MIG_PAGE_SIZE) != mig__le32_get(s->payload + at + 4 * (size_t)k))
            s->bad_idx[nbad++] = k;
    }
    rec->type = type;
    rec->len = len;
    rec->payload = s->payload;
    rec->placed = ptrs != NULL;
    rec->nbad = nbad;
    rec->bad = s->bad_idx;
    return 0;
}

int mig__stream_get(struct mig__stream *s, struct mig__rec *rec_out)
{
    for (;;) {
        if (s->err)
            return s->err;
        int rc = fill(s, MIG_REC_HDR_LEN);
        if (rc)
            return rc;
        const uint8_t *h = s->rbuf + s->rpos;
        uint32_t type = mig__le32_get(h), len = mig__le32_get(h + 4);
        uint32_t want = mig__le32_get(h + 8), rsvd = mig__le32_get(h + 12);
        /* Every check happens before a byte of payload is allocated or read. */
        if (!mig__rec_type_known(type))
            return bad(s, -MIG_EPROTO, "unknown record type", type, len);
        if (mig__rec_is_handshake(type) != s->in_handshake && type != MIG_REC_ERROR &&
            type != MIG_REC_KEEPALIVE) {
            if (s->in_handshake)
                return bad(s, -MIG_EPROTO, "record before the handshake finished", type, len);
            return bad(s, -MIG_EPROTO, "handshake record after the handshake", type, len);
        }
        if (len > mig__rec_max_len(type))
            return bad(s, -MIG_ETOOBIG, "record longer than its type allows", type, len);
        uint32_t fixed = mig__rec_fixed_len(type);
        if (fixed != UINT32_MAX && len != fixed)
            return bad(s, -MIG_EPROTO, "record of the wrong fixed size", type, len);
        if (rsvd != 0)
            return bad(s, -MIG_EPROTO, "reserved header field not zero", type, len);
        uint32_t crc = s->crc ? mig__crc32c(0, h, 8) : 0;
        s->rpos += MIG_REC_HDR_LEN;
        memset(rec_out, 0, sizeof(*rec_out));
        if (type == MIG_REC_PAGES_CRC)
            return get_pages_crc(s, len, crc, want, rec_out);

        /* The buffer grows with the bytes that actually arrive (doubling from
         * 1 MiB), so a peer announcing a large record must send it before we
         * hold that much memory. It is kept for the next records. */
        size_t need = (size_t)len + ((8 - (len & 7)) & 7), got = 0;
        bool placed = false;
        int place_err = 0;
        if (type == MIG_REC_PAGES && s->placer && len >= 8) {
            rc = place_pages(s, len, s->crc ? &crc : NULL, &got, &placed, &place_err);
            if (rc)
                return rc;
            if (placed)
                need = got; /* the rest went to the pages; no padding (len % 8 == 0) */
        }
        while (got < need) {
            if (s->payload_cap <= got) {
                size_t cap = s->payload_cap * 2;
                if (cap < got + (1u << 20))
                    cap = got + (1u << 20);
                if (cap > need)
                    cap = need < 4096 ? 4096 : need;
                uint8_t *p = realloc(s->payload, cap);
                if (!p)
                    return mig__stream_fail(s, -MIG_ENOMEM);
                s->payload = p;
                s->payload_cap = cap;
            }
            size_t n = (s->payload_cap < need ? s->payload_cap : need) - got;
            rc = read_exact(s, s->payload + got, n, s->crc ? &crc : NULL);
            if (rc)
                return rc;
            got += n;
        }
        for (size_t i = len; i < need; i++)
            if (s->payload[i])
                return bad(s, -MIG_EPROTO, "non-zero padding", type, len);
        if (s->crc && crc != want)
            return bad(s, -MIG_ECRC,
                       placed ? "CRC32C mismatch in placed pages: record corrupted in transit"
                              : "CRC32C mismatch: record corrupted in transit",
                       type, len);
        if (!s->crc && want != 0)
            return bad(s, -MIG_EPROTO, "CRC field set on an encrypted channel", type, len);
        if (type == MIG_REC_KEEPALIVE)
            continue;
        rec_out->type = type;
        rec_out->len = len;
        rec_out->payload = s->payload;
        rec_out->placed = placed;
        rec_out->place_err = place_err;
        return 0;
    }
}

bool mig__stream_peer_closed(struct mig__stream *s)
{
    size_t n = 0;
    if (s->err)
        return true;
    if (s->rpos) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rend - s->rpos);
        s->rend -= s->rpos;
        s->rpos = 0;
    }
    if (s->rend == RBUF_SIZE)
        return false; /* unread records waiting: the peer was alive */
    int rc = s->conn->ops->read(s->conn, s->rbuf + s->rend, RBUF_SIZE - s->rend, 0, &n);
    if (rc == 0) {
        s->rend += n;
        s->bytes_in += n;
        return false;
    }
    if (rc == -MIG_ETIMEOUT)
        return false;
    mig__stream_fail(s, rc);
    return true;
}
