/*
 * handshake.c: the NBD fixed newstyle handshake and option haggling
 * (mig__nbd_handshake). Options: EXPORT_NAME, GO, INFO, LIST, ABORT;
 * everything else (STRUCTURED_REPLY, the meta contexts, STARTTLS, extended
 * headers, unknown ones) gets NBD_REP_ERR_UNSUP and clients fall back to
 * simple replies. Every length is checked before the data is read; option
 * data is read into the connection's payload buffer, never allocated.
 */
#include <config.h>

#include <string.h>

#include "nbd-internal.h"

uint16_t mig__nbd_tflags(const struct mig__nbd_server *srv)
{
    uint16_t f = MIG__NBD_TFLAG_HAS_FLAGS | MIG__NBD_TFLAG_SEND_FLUSH | MIG__NBD_TFLAG_SEND_FUA;
    if (srv->exp.flags & MIG__NBD_EXPORT_READ_ONLY)
        f |= MIG__NBD_TFLAG_READ_ONLY;
    else
        f |= MIG__NBD_TFLAG_SEND_TRIM | MIG__NBD_TFLAG_SEND_WRITE_ZEROES;
    /* Clients that see multi-conn open several connections (nbdcopy: 4);
     * a server with fewer slots than that would refuse some of them. */
    if ((srv->exp.flags & MIG__NBD_EXPORT_MULTI_CONN) &&
        srv->max_conns >= MIG__NBD_MULTI_CONN_MIN)
        f |= MIG__NBD_TFLAG_CAN_MULTI_CONN;
    return f;
}

/* Queue one option reply: header and data (len bytes at data, may be NULL
 * when len is 0). */
static int reply(struct mig__nbd_conn *c, uint32_t opt, uint32_t type, const void *data,
                 uint32_t len)
{
    uint8_t h[20];
    int rc;
    mig__nbd_put64(h, MIG__NBD_REP_MAGIC);
    mig__nbd_put32(h + 8, opt);
    mig__nbd_put32(h + 12, type);
    mig__nbd_put32(h + 16, len);
    rc = mig__nbd_conn_queue(c, h, sizeof(h));
    if (rc == 0 && len)
        rc = mig__nbd_conn_queue(c, data, len);
    return rc;
}

/* An error reply with a message for the user. */
static int reply_err(struct mig__nbd_conn *c, uint32_t opt, uint32_t type, const char *msg)
{
    return reply(c, opt, type, msg, (uint32_t)strlen(msg));
}

static bool name_matches(const struct mig__nbd_conn *c, const uint8_t *name, uint32_t len)
{
    const char *ours = c->srv->exp.name ? c->srv->exp.name : "";
    return strlen(ours) == len && memcmp(ours, name, len) == 0;
}

/* NBD_REP_INFO with one information type; body is everything after the
 * 16-bit type. */
static int reply_info(struct mig__nbd_conn *c, uint32_t opt, uint16_t info, const void *body,
                      uint32_t len)
{
    uint8_t h[22];
    int rc;
    mig__nbd_put64(h, MIG__NBD_REP_MAGIC);
    mig__nbd_put32(h + 8, opt);
    mig__nbd_put32(h + 12, MIG__NBD_REP_INFO);
    mig__nbd_put32(h + 16, len + 2);
    mig__nbd_put16(h + 20, info);
    rc = mig__nbd_conn_queue(c, h, sizeof(h));
    if (rc == 0 && len)
        rc = mig__nbd_conn_queue(c, body, len);
    return rc;
}

/*
 * NBD_OPT_INFO / NBD_OPT_GO. Data: u32 name length, name, u16 count of
 * information requests, u16 each. We always send NBD_INFO_EXPORT and
 * NBD_INFO_BLOCK_SIZE (the maximum is what the server enforces), the name
 * and description when asked. 1: GO succeeded; 0: replied, haggling goes on;
 * < 0: I/O error.
 */
static int opt_info_go(struct mig__nbd_conn *c, uint32_t opt, const uint8_t *d, uint32_t len)
{
    const struct mig__nbd_server *srv = c->srv;
    uint32_t nlen, nreq;
    const uint8_t *name, *req;
    bool want_name = false, want_desc = false;
    uint8_t body[12];
    int rc;

    if (len < 6)
        return reply_err(c, opt, MIG__NBD_REP_ERR_INVALID, "option data too short");
    nlen = mig__nbd_get32(d);
    if (nlen > len - 6 || nlen > MIG__NBD_MAX_STRING)
        return reply_err(c, opt, MIG__NBD_REP_ERR_INVALID, "export name length is wrong");
    name = d + 4;
    nreq = mig__nbd_get16(d + 4 + nlen);
    if (len != 4 + nlen + 2 + 2 * nreq)
        return reply_err(c, opt, MIG__NBD_REP_ERR_INVALID, "information request count is wrong");
    req = d + 4 + nlen + 2;
    if (!name_matches(c, name, nlen))
        return reply_err(c, opt, MIG__NBD_REP_ERR_UNKNOWN, "no such export");
    for (uint32_t i = 0; i < nreq; i++) {
        uint16_t t = mig__nbd_get16(req + 2 * i);
        if (t == MIG__NBD_INFO_NAME)
            want_name = true;
        else if (t == MIG__NBD_INFO_DESCRIPTION)
            want_desc = true;
    }
    mig__nbd_put64(body, srv->size);
    mig__nbd_put16(body + 8, c->tflags);
    rc = reply_info(c, opt, MIG__NBD_INFO_EXPORT, body, 10);
    if (rc == 0) {
        mig__nbd_put32(body, 1);       /* minimum: any byte granularity */
        mig__nbd_put32(body + 4, 4096); /* preferred */
        mig__nbd_put32(body + 8, srv->max_payload);
        rc = reply_info(c, opt, MIG__NBD_INFO_BLOCK_SIZE, body, 12);
    }
    if (rc == 0 && want_name)
        rc = reply_info(c, opt, MIG__NBD_INFO_NAME, name, nlen);
    if (rc == 0 && want_desc && srv->exp.description) {
        size_t dl = strnlen(srv->exp.description, MIG__NBD_MAX_STRING);
        rc = reply_info(c, opt, MIG__NBD_INFO_DESCRIPTION, srv->exp.description, (uint32_t)dl);
    }
    if (rc == 0)
        rc = reply(c, opt, MIG__NBD_REP_ACK, NULL, 0);
    if (rc < 0)
        return rc;
    return opt == MIG__NBD_OPT_GO ? 1 : 0;
}

/* NBD_OPT_EXPORT_NAME: cannot fail politely; an unknown name ends the session. */
static int opt_export_name(struct mig__nbd_conn *c, const uint8_t *d, uint32_t len)
{
    uint8_t r[10 + 124];
    size_t n = 10;
    if (len > MIG__NBD_MAX_STRING || !name_matches(c, d, len)) {
        c->why = "NBD_OPT_EXPORT_NAME named an unknown export";
        return -MIG_EPROTO;
    }
    mig__nbd_put64(r, c->srv->size);
    mig__nbd_put16(r + 8, c->tflags);
    if (!c->no_zeroes) {
        memset(r + 10, 0, 124);
        n += 124;
    }
    int rc = mig__nbd_conn_queue(c, r, n);
    return rc < 0 ? rc : 1;
}

static int opt_list(struct mig__nbd_conn *c, uint32_t len)
{
    const char *name = c->srv->exp.name ? c->srv->exp.name : "";
    size_t nl = strnlen(name, MIG__NBD_MAX_STRING);
    uint8_t h[4];
    int rc;
    if (len != 0)
        return reply_err(c, MIG__NBD_OPT_LIST, MIG__NBD_REP_ERR_INVALID, "LIST takes no data");
    /* NBD_REP_SERVER: u32 name length, name */
    uint8_t rh[20];
    mig__nbd_put64(rh, MIG__NBD_REP_MAGIC);
    mig__nbd_put32(rh + 8, MIG__NBD_OPT_LIST);
    mig__nbd_put32(rh + 12, MIG__NBD_REP_SERVER);
    mig__nbd_put32(rh + 16, (uint32_t)(4 + nl));
    mig__nbd_put32(h, (uint32_t)nl);
    rc = mig__nbd_conn_queue(c, rh, sizeof(rh));
    if (rc == 0)
        rc = mig__nbd_conn_queue(c, h, 4);
    if (rc == 0)
        rc = mig__nbd_conn_queue(c, name, nl);
    if (rc == 0)
        rc = reply(c, MIG__NBD_OPT_LIST, MIG__NBD_REP_ACK, NULL, 0);
    return rc;
}

int mig__nbd_handshake(struct mig__nbd_conn *c)
{
    uint8_t g[18], h[16];
    uint32_t cflags;
    int rc;

    mig__nbd_put64(g, MIG__NBD_MAGIC);
    mig__nbd_put64(g + 8, MIG__NBD_IHAVEOPT);
    mig__nbd_put16(g + 16, MIG__NBD_FLAG_FIXED_NEWSTYLE | MIG__NBD_FLAG_NO_ZEROES);
    c->tflags = mig__nbd_tflags(c->srv);
    rc = mig__nbd_conn_queue(c, g, sizeof(g));
    if (rc < 0)
        return rc;
    rc = mig__nbd_conn_read(c, h, 4);
    if (rc < 0)
        return rc == -MIG_EPEER ? 0 : rc; /* a probe that only looked at the greeting */
    cflags = mig__nbd_get32(h);
    if (cflags & ~(uint32_t)(MIG__NBD_FLAG_C_FIXED_NEWSTYLE | MIG__NBD_FLAG_C_NO_ZEROES)) {
        c->why = "unknown client flags";
        return -MIG_EPROTO;
    }
    c->no_zeroes = cflags & MIG__NBD_FLAG_C_NO_ZEROES;

    for (unsigned n = 0;; n++) {
        uint32_t opt, len;
        if (n == MIG__NBD_MAX_OPTIONS) {
            c->why = "too many options";
            return -MIG_EPROTO;
        }
        rc = mig__nbd_conn_read(c, h, 16);
        if (rc < 0)
            return rc == -MIG_EPEER ? 0 : rc;
        if (mig__nbd_get64(h) != MIG__NBD_IHAVEOPT) {
            c->why = "bad option magic";
            return -MIG_EPROTO;
        }
        opt = mig__nbd_get32(h + 8);
        len = mig__nbd_get32(h + 12);
        if (len > MIG__NBD_MAX_OPTION) {
            if (opt == MIG__NBD_OPT_EXPORT_NAME) {
                c->why = "NBD_OPT_EXPORT_NAME longer than a name can be";
                return -MIG_EPROTO;
            }
            /* Skip what we will not read; the length is bounded by 32 bits. */
            rc = mig__nbd_conn_skip(c, len);
            if (rc == 0)
                rc = reply_err(c, opt, MIG__NBD_REP_ERR_TOO_BIG, "option data too long");
            if (rc < 0)
                return rc;
            continue;
        }
        rc = mig__nbd_conn_read(c, c->buf, len); /* max_payload >= MAX_OPTION */
        if (rc < 0)
            return rc;
        switch (opt) {
        case MIG__NBD_OPT_EXPORT_NAME:
            return opt_export_name(c, c->buf, len);
        case MIG__NBD_OPT_ABORT:
            rc = reply(c, opt, MIG__NBD_REP_ACK, NULL, 0);
            if (rc == 0)
                rc = mig__nbd_conn_flush(c);
            return rc;
        case MIG__NBD_OPT_LIST:
            rc = opt_list(c, len);
            break;
        case MIG__NBD_OPT_INFO:
        case MIG__NBD_OPT_GO:
            rc = opt_info_go(c, opt, c->buf, len);
            if (rc == 1)
                return 1;
            break;
        default:
            /* STRUCTURED_REPLY, LIST/SET_META_CONTEXT, STARTTLS, EXTENDED_HEADERS
             * and anything newer: the client falls back (simple replies). */
            rc = reply_err(c, opt, MIG__NBD_REP_ERR_UNSUP, "option not supported");
            break;
        }
        if (rc < 0)
            return rc;
    }
}
