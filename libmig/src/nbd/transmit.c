/*
 * transmit.c: the NBD transmission phase of one connection
 * (mig__nbd_transmit) and the connection's buffered I/O.
 *
 * Requests are executed in order. Input is staged in 64 KiB reads, so a
 * pipelined batch of small requests costs few syscalls; a large WRITE
 * payload is received straight into the payload buffer and handed to the
 * export from there; a READ is read by the export into the payload buffer
 * and leaves with its reply header in one sendmsg. Small replies (writes,
 * flushes, errors) accumulate and leave in one send just before the
 * connection would wait for input, i.e. once the client's batch is done.
 */
#include <config.h>

#include <string.h>

#include "nbd-internal.h"

bool mig__nbd_conn_input_idle(const struct mig__nbd_conn *c)
{
    return c->in_len - c->in_pos < MIG__NBD_REQ_SIZE;
}

int mig__nbd_conn_flush(struct mig__nbd_conn *c)
{
    struct iovec iov = {c->out, c->out_len};
    int rc;
    if (!c->out_len)
        return 0;
    rc = c->io->sendv(c->io->opaque, &iov, 1, false);
    c->out_len = 0;
    return rc;
}

int mig__nbd_conn_queue(struct mig__nbd_conn *c, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n) {
        size_t room = MIG__NBD_OUTBUF - c->out_len, k = n < room ? n : room;
        if (!room) {
            int rc = mig__nbd_conn_flush(c);
            if (rc < 0)
                return rc;
            continue;
        }
        memcpy(c->out + c->out_len, s, k);
        c->out_len += k;
        s += k;
        n -= k;
    }
    return 0;
}

/* One recv into dst (at most cap bytes); replies go out first. */
static int recv_some(struct mig__nbd_conn *c, void *dst, size_t cap, size_t *got)
{
    int rc = mig__nbd_conn_flush(c);
    long r;
    if (rc < 0)
        return rc;
    r = c->io->recv(c->io->opaque, dst, cap);
    if (r < 0)
        return (int)r;
    if (r == 0)
        return -MIG_EPEER;
    *got = (size_t)r;
    return 0;
}

int mig__nbd_conn_read(struct mig__nbd_conn *c, void *dst, size_t n)
{
    uint8_t *d = dst;
    while (n) {
        size_t avail = c->in_len - c->in_pos, got = 0;
        int rc;
        if (avail) {
            size_t k = n < avail ? n : avail;
            memcpy(d, c->in + c->in_pos, k);
            c->in_pos += k;
            d += k;
            n -= k;
            continue;
        }
        if (n >= MIG__NBD_INBUF / 2) {
            /* a large payload: straight into the caller's buffer */
            rc = recv_some(c, d, n, &got);
            if (rc < 0)
                return rc;
            d += got;
            n -= got;
            continue;
        }
        c->in_pos = c->in_len = 0;
        rc = recv_some(c, c->in, MIG__NBD_INBUF, &got);
        if (rc < 0)
            return rc;
        c->in_len = got;
    }
    return 0;
}

int mig__nbd_conn_skip(struct mig__nbd_conn *c, uint64_t n)
{
    uint32_t chunk = c->srv->max_payload;
    while (n) {
        size_t k = n < chunk ? (size_t)n : chunk;
        int rc = mig__nbd_conn_read(c, c->buf, k);
        if (rc < 0)
            return rc;
        n -= k;
    }
    return 0;
}

/* A simple reply without data. */
static int reply(struct mig__nbd_conn *c, uint64_t cookie, uint32_t err)
{
    uint8_t h[16];
    mig__nbd_put32(h, MIG__NBD_SIMPLE_REPLY_MAGIC);
    mig__nbd_put32(h + 4, err);
    mig__nbd_put64(h + 8, cookie);
    return mig__nbd_conn_queue(c, h, sizeof(h));
}

/* A successful READ's reply: header (after whatever is queued) and data in
 * one send. */
static int reply_data(struct mig__nbd_conn *c, uint64_t cookie, const void *data, uint32_t len)
{
    struct iovec iov[2];
    int rc = reply(c, cookie, 0);
    if (rc < 0)
        return rc;
    iov[0].iov_base = c->out;
    iov[0].iov_len = c->out_len;
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = len;
    c->out_len = 0;
    return c->io->sendv(c->io->opaque, iov, 2, !mig__nbd_conn_input_idle(c));
}

static void count(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* Execute one valid request; returns the NBD error for its reply, or sets
 * *io_rc when the connection itself failed. */
static uint32_t execute(struct mig__nbd_conn *c, const struct mig__nbd_req *r, bool *replied,
                        int *io_rc)
{
    struct mig__nbd_server *srv = c->srv;
    const struct mig__nbd_export_ops *ops = srv->exp.ops;
    void *o = srv->exp.opaque;
    bool fua = r->flags & MIG__NBD_CMD_FLAG_FUA;
    int rc = 0;

    switch (r->type) {
    case MIG__NBD_CMD_READ:
        if (r->length)
            rc = ops->pread(o, r->offset, r->length, c->buf);
        if (rc < 0)
            return mig__nbd_err_to_wire(rc);
        *io_rc = reply_data(c, r->cookie, c->buf, r->length);
        *replied = true;
        count(&srv->stats.bytes_read, r->length);
        return 0;
    case MIG__NBD_CMD_WRITE:
        *io_rc = mig__nbd_conn_read(c, c->buf, r->length);
        if (*io_rc < 0)
            return 0;
        if (r->length)
            rc = ops->pwrite(o, r->offset, r->length, c->buf, fua);
        if (rc == 0)
            count(&srv->stats.bytes_written, r->length);
        return mig__nbd_err_to_wire(rc);
    case MIG__NBD_CMD_FLUSH:
        return mig__nbd_err_to_wire(ops->flush(o));
    case MIG__NBD_CMD_TRIM:
        if (r->length)
            rc = ops->trim(o, r->offset, r->length, fua);
        return mig__nbd_err_to_wire(rc);
    case MIG__NBD_CMD_WRITE_ZEROES:
        if (r->length)
            rc = ops->write_zeroes(o, r->offset, r->length,
                                   !(r->flags & MIG__NBD_CMD_FLAG_NO_HOLE), fua);
        return mig__nbd_err_to_wire(rc);
    default:
        return MIG__NBD_EINVAL; /* mig__nbd_req_check let nothing else through */
    }
}

int mig__nbd_transmit(struct mig__nbd_conn *c)
{
    struct mig__nbd_server *srv = c->srv;
    struct mig__nbd_limits lim = {
        .size = srv->size, .max_payload = srv->max_payload, .tflags = c->tflags};
    uint8_t wire[MIG__NBD_REQ_SIZE];
    struct mig__nbd_req r;
    int rc;

    for (;;) {
        uint32_t drain, err;
        bool replied = false;
        int io_rc = 0;

        rc = mig__nbd_conn_read(c, wire, sizeof(wire));
        if (rc == -MIG_EPEER)
            return 0; /* the client went away between requests (no DISC): allowed */
        if (rc < 0)
            return rc;
        if (mig__nbd_req_decode(wire, &r) < 0) {
            c->why = "bad request magic";
            return -MIG_EPROTO;
        }
        err = mig__nbd_req_check(&r, &lim, &drain);
        if (r.type == MIG__NBD_CMD_DISC && err == 0)
            return mig__nbd_conn_flush(c);
        count(&srv->stats.requests, 1);
        if (err) {
            /* refused: the payload (if any) still has to be consumed */
            rc = mig__nbd_conn_skip(c, drain);
            if (rc < 0)
                return rc;
        } else {
            err = execute(c, &r, &replied, &io_rc);
            if (io_rc < 0)
                return io_rc;
        }
        if (err)
            count(&srv->stats.request_errors, 1);
        if (!replied) {
            rc = reply(c, r.cookie, err);
            if (rc < 0)
                return rc;
        }
    }
}
