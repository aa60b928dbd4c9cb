/*
 * stream-internal.h: what stream/ and transport/ share beyond stream.h:
 * the stream object's constructor, raw byte access for the preamble, the
 * per-type length limits of record.c, and the handshake of handshake.c.
 * The engine uses stream.h only.
 */
#ifndef MIG_STREAM_INTERNAL_H
#define MIG_STREAM_INTERNAL_H

#include "stream.h"
#include "../transport/transport-provider.h"

#define MIG_STREAM_VERSION 1u
#define MIG_PREAMBLE_LEN 32u
#define MIG_REC_HDR_LEN 16u
#define MIG_DEFAULT_TIMEOUT_MS 10000u
#define MIG_TEXT_MAX 4096u          /* ABORT / ERROR message bytes */
#define MIG_FACTS_MAX (1u << 20)
#define MIG_ZERO_RUNS_MAX 65536u
#define MIG_BLOB_MAX (32u << 20)
#define MIG_ZSTD_REC_MAX (4608u << 10) /* 4.5 MiB */
#define MIG_NAME_MAX 256u

/* Wrap 'conn' (owned from now on, also on failure) into a stream. */
int mig__stream_new(struct mig_ctx *ctx, struct mig__conn *conn, unsigned timeout_ms,
                    struct mig__stream **s_out);
void mig__stream_free(struct mig__stream *s); /* NULL-safe */
/* Wake blocked readers and writers; idempotent. */
void mig__stream_shutdown(struct mig__stream *s);
/* The connection under the stream (borrowed). */
struct mig__conn *mig__stream_conn(struct mig__stream *s);
/* Allow or refuse handshake record types (HELLO, AUTH, ...) on this stream. */
void mig__stream_set_handshake(struct mig__stream *s, bool in_handshake);
/* Record the first error (sticky) and return it. */
int mig__stream_fail(struct mig__stream *s, int rc);
/* Unframed bytes (the preamble): written at once / read exactly. */
int mig__stream_write_raw(struct mig__stream *s, const void *buf, size_t len);
int mig__stream_read_raw(struct mig__stream *s, void *buf, size_t len);
/* Peek at buffered or incoming bytes without consuming them (up to 'len'). */
int mig__stream_peek(struct mig__stream *s, void *buf, size_t len);

/* record.c: limits checked before anything is allocated. */
bool mig__rec_type_known(uint32_t type);
uint32_t mig__rec_max_len(uint32_t type);
/* Fixed payload size of 'type', or UINT32_MAX when variable. */
uint32_t mig__rec_fixed_len(uint32_t type);
bool mig__rec_is_handshake(uint32_t type);
/* PAGES_CRC: the length of a record of 'count' pages. */
uint32_t mig__rec_pages_crc_len(uint32_t count);

/* Little-endian helpers. */
static inline void mig__le32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void mig__le64_put(uint8_t *p, uint64_t v)
{
    mig__le32_put(p, (uint32_t)v);
    mig__le32_put(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t mig__le32_get(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t mig__le64_get(const uint8_t *p)
{
    return (uint64_t)mig__le32_get(p) | (uint64_t)mig__le32_get(p + 4) << 32;
}

/* ---- handshake.c ---- */

enum mig__chan_kind { MIG_CHAN_CONTROL = 1, MIG_CHAN_DATA = 2 };

/* What one side knows about the session while the handshake runs. Secrets
 * live here only, are wiped by mig__hs_dispose, and are never logged. */
struct mig__hs {
    struct mig_ctx *ctx;            /* borrowed */
    enum mig__auth auth;            /* what this side's transport provides */
    const uint8_t *psk;             /* borrowed; PSK auth */
    size_t psk_len;
    uint32_t caps;                  /* offered by this side */
    uint32_t page_size;             /* this side's */
    unsigned channels;              /* client: wanted; server: max */
    /* results */
    uint32_t neg_caps;
    unsigned neg_channels;
    uint8_t session_id[16];
    uint8_t secret[32];
    char peer_version[32];
};

/* Client side of a control channel: preamble, HELLO, proofs, SESSION. */
int mig__hs_client_control(struct mig__hs *hs, struct mig__stream *s);
/* Client side of data channel 'index' of the session in hs (after control). */
int mig__hs_client_data(struct mig__hs *hs, struct mig__stream *s, unsigned index);
/* Server: read the preamble and HELLO, answer HELLO_ACK; *kind_out says what
 * the client opens. Control: continue with mig__hs_server_control. */
int mig__hs_server_hello(struct mig__hs *hs, struct mig__stream *s, uint32_t *kind_out,
                         uint8_t nonce_c[32], uint8_t nonce_s[32]);
/* Server, control channel: check AUTH, create the session, send SESSION. */
int mig__hs_server_control(struct mig__hs *hs, struct mig__stream *s, const uint8_t nonce_c[32],
                           const uint8_t nonce_s[32]);
/* Server, data channel: check CHANNEL_JOIN against the session; *index_out
 * is the channel's index; 'taken' marks indexes already joined. */
int mig__hs_server_data(struct mig__hs *hs, struct mig__stream *s, const uint8_t nonce_c[32],
                        const uint8_t nonce_s[32], const bool *taken, unsigned *index_out);
/* Send ERROR {code, text} and flush, ignoring failures (the peer may be gone). */
void mig__hs_send_error(struct mig__stream *s, int code, const char *text);
/* Server refusing a connection before the handshake: preamble + ERROR. */
int mig__hs_refuse(struct mig__stream *s, int code, const char *text);
void mig__hs_dispose(struct mig__hs *hs);

#endif
