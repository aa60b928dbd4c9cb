/* fuzz-mem.h: an in-memory connection for the fuzzer and the seed
 * generator: reads come from a buffer, writes are appended to another. */
#ifndef MIG_FUZZ_MEM_H
#define MIG_FUZZ_MEM_H

#include <stdlib.h>
#include <string.h>

#include "../../libmig/src/stream/stream-internal.h"

struct mem_conn {
    struct mig__conn base;
    const uint8_t *in;
    size_t inlen, inpos;
    uint8_t *out;               /* NULL: writes are discarded */
    size_t outlen, outcap;
};

static int mem_read(struct mig__conn *c, void *buf, size_t len, int timeout_ms, size_t *n_out)
{
    struct mem_conn *m = (struct mem_conn *)c;
    size_t left = m->inlen - m->inpos;
    *n_out = 0;
    if (!left)
        return -MIG_EPEER;
    /* Odd-sized reads exercise the reader's buffering. */
    size_t n = len < left ? len : left;
    if (n > 7 && (m->inpos & 1))
        n = n / 2 + 1;
    memcpy(buf, m->in + m->inpos, n);
    m->inpos += n;
    *n_out = n;
    return 0;
}

static int mem_writev(struct mig__conn *c, struct iovec *iov, int n, int timeout_ms)
{
    struct mem_conn *m = (struct mem_conn *)c;
    for (int i = 0; i < n; i++) {
        if (!m->out && !m->outcap)
            continue;
        if (m->outlen + iov[i].iov_len > m->outcap) {
            size_t cap = (m->outlen + iov[i].iov_len) * 2;
            uint8_t *p = realloc(m->out, cap);
            if (!p)
                return -MIG_ENOMEM;
            m->out = p;
            m->outcap = cap;
        }
        memcpy(m->out + m->outlen, iov[i].iov_base, iov[i].iov_len);
        m->outlen += iov[i].iov_len;
    }
    return 0;
}

static void mem_shutdown(struct mig__conn *c)
{
}

static void mem_close(struct mig__conn *c)
{
    /* The owner keeps the struct (it reads 'out' after the stream is gone). */
}

static const struct mig__conn_ops mem_ops = {mem_read, mem_writev, mem_shutdown, mem_close};

static void mem_init(struct mem_conn *m, const uint8_t *in, size_t len, bool keep_output,
                     bool encrypted)
{
    memset(m, 0, sizeof(*m));
    m->base.ops = &mem_ops;
    m->base.encrypted = encrypted;
    snprintf(m->base.peer, sizeof(m->base.peer), "fuzz");
    m->in = in;
    m->inlen = len;
    if (keep_output)
        m->outcap = 1; /* marks "keep": the first write allocates */
}

#endif
