/*
 * nbd-internal.h: what the nbd module's files share and nobody else sees:
 * the server and connection structures, big-endian helpers, and the
 * handshake / transmission entry points (handshake.c, transmit.c).
 */
#ifndef MIG_NBD_INTERNAL_H
#define MIG_NBD_INTERNAL_H

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "nbd-proto.h"
#include "nbd.h"

#undef MIG_LOG_MODULE
#define MIG_LOG_MODULE "nbd"

/* Per connection: input staging (requests and small payloads arrive in few
 * recv calls), and the small-reply accumulator (replies to a pipelined batch
 * leave in one send, flushed before the connection waits for input). */
#define MIG__NBD_INBUF (64u << 10)
#define MIG__NBD_OUTBUF (16u << 10)
/* Options one client may send before it is treated as a denial of service. */
#define MIG__NBD_MAX_OPTIONS 1024u

static inline uint16_t mig__nbd_get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t mig__nbd_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t mig__nbd_get64(const uint8_t *p)
{
    return ((uint64_t)mig__nbd_get32(p) << 32) | mig__nbd_get32(p + 4);
}
static inline void mig__nbd_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void mig__nbd_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void mig__nbd_put64(uint8_t *p, uint64_t v)
{
    mig__nbd_put32(p, (uint32_t)(v >> 32));
    mig__nbd_put32(p + 4, (uint32_t)v);
}

/* A libmig code from an export op -> the NBD error value of the reply. */
MIG_HIDDEN uint32_t mig__nbd_err_to_wire(int rc);

enum mig__nbd_slot_state {
    MIG__NBD_SLOT_FREE,     /* nobody uses its buffer */
    MIG__NBD_SLOT_ASSIGNED, /* fd handed to the slot's worker, not yet picked up */
    MIG__NBD_SLOT_BUSY,     /* being served (by its worker or a serve_fd caller) */
};

/* One connection's worth of memory and, once started, its worker thread. */
struct mig__nbd_slot {
    uint8_t *mem;          /* owned: max_payload + INBUF + OUTBUF bytes */
    int fd;                /* the connection's socket, -1 when none (owned while >= 0) */
    enum mig__nbd_slot_state state;
    pthread_t worker;
    bool has_worker;
    struct mig__nbd_server *srv; /* back pointer for the worker */
};

struct mig__nbd_server {
    struct mig_ctx *ctx;                  /* borrowed */
    struct mig__nbd_export exp;           /* copy; what it points to is borrowed */
    uint64_t size;                        /* exp.ops->size() at creation */
    uint32_t max_payload;
    unsigned max_conns;
    struct mig__nbd_slot *slots;          /* owned: max_conns */
    int listen_fd[2];                     /* unix, tcp; -1 when not listening */
    char *unix_path;                      /* owned; unlinked at stop */
    int wake[2];                          /* pipe: stop wakes the accept thread */
    pthread_t acceptor;
    bool has_acceptor;
    bool stopping;                        /* under lock */
    pthread_mutex_t lock;                 /* slots, stopping */
    pthread_cond_t cond;                  /* slot state changes */
    struct mig__nbd_stats stats;          /* updated with atomic adds */
    struct mig_ratelimit rl;              /* protocol-error warnings (under lock) */
};

/* One connection being served: borrowed buffers of a slot, the I/O. */
struct mig__nbd_conn {
    struct mig__nbd_server *srv;
    const struct mig__nbd_io *io;
    uint8_t *buf;           /* max_payload bytes: READ/WRITE payloads, option data */
    uint8_t *in;            /* MIG__NBD_INBUF staging */
    size_t in_pos, in_len;  /* unread bytes are in[in_pos, in_len) */
    uint8_t *out;           /* MIG__NBD_OUTBUF accumulated small replies */
    size_t out_len;
    bool no_zeroes;         /* client set NBD_FLAG_C_NO_ZEROES */
    uint16_t tflags;        /* transmission flags sent */
    const char *why;        /* static text: why the connection was dropped */
};

/* Read exactly n bytes (staging first). 0, -MIG_EPEER at EOF, or an error.
 * Pending replies are sent before the connection waits for input. */
MIG_HIDDEN int mig__nbd_conn_read(struct mig__nbd_conn *c, void *dst, size_t n);
/* Read and discard n bytes. */
MIG_HIDDEN int mig__nbd_conn_skip(struct mig__nbd_conn *c, uint64_t n);
/* Queue bytes for sending (flushed when full, or before the next wait). */
MIG_HIDDEN int mig__nbd_conn_queue(struct mig__nbd_conn *c, const void *p, size_t n);
MIG_HIDDEN int mig__nbd_conn_flush(struct mig__nbd_conn *c);
/* True if no complete request header is already staged. */
MIG_HIDDEN bool mig__nbd_conn_input_idle(const struct mig__nbd_conn *c);

/* handshake.c: greeting and option haggling. 1: go to transmission; 0: the
 * client left cleanly (ABORT, or closed); < 0: dropped (c->why says why). */
MIG_HIDDEN int mig__nbd_handshake(struct mig__nbd_conn *c);
/* transmit.c: serve requests until DISC/EOF (0) or a violation (< 0). */
MIG_HIDDEN int mig__nbd_transmit(struct mig__nbd_conn *c);

/* Transmission flags this server sends for its export. */
MIG_HIDDEN uint16_t mig__nbd_tflags(const struct mig__nbd_server *srv);

#endif
