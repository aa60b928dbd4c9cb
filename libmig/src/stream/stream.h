/*
 * stream.h: the migration stream as the engine sees it. A link is one
 * authenticated session between source and destination: a control channel
 * plus N data channels, each a struct mig__stream that frames records
 * ({type, length} header, payload, CRC32C on plaintext transports) over a
 * transport connection. docs/stream-format.md is the normative spec.
 *
 * Writers are buffered and have a sticky error: after a failure every put is
 * a no-op and mig__stream_error() returns the first error, so callers check
 * once per batch. Readers validate each header (type known, length within
 * the type's maximum) before allocating or reading the payload.
 */
#ifndef MIG_STREAM_H
#define MIG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mig-internal.h"

#define MIG_PAGE_SIZE 4096u
#define MIG_PAGES_PER_BATCH 1024u   /* max pages in one PAGES / PAGES_ZSTD record */
#define MIG_HOOK_DATA_MAX (4u << 20) /* max bytes after HOOK_DATA's 8-byte header */
#define MIG_BLOCK_DATA_MAX (4u << 20) /* max data bytes in one BLOCK_EXTENT */

enum mig__rec_type {
    MIG_REC_HELLO = 1,        /* handshake (handshake.c); not for engine use */
    MIG_REC_HELLO_ACK,
    MIG_REC_FACTS,            /* JSON text: host facts (destination -> source) */
    MIG_REC_DOMAIN_INFO,      /* struct mig__dom_info fields (source -> destination) */
    MIG_REC_PAGES,            /* round, count, pfns[count], count * 4096 bytes */
    MIG_REC_ZERO_RUNS,        /* round, nruns, {pfn, count}[nruns] */
    MIG_REC_PAGES_ZSTD,       /* round, count, pfns[count], raw_len, zstd frame */
    MIG_REC_BLOCK_EXTENT,     /* disk, offset, length, data (block mirror) */
    MIG_REC_STATE_BLOB,       /* kind, bytes */
    MIG_REC_ROUND_END,        /* round, pages this channel sent in it (barrier) */
    MIG_REC_SWITCHOVER,       /* source suspended; last round follows */
    MIG_REC_READY,            /* destination applied everything, paused */
    MIG_REC_COMMIT,           /* source: resume there */
    MIG_REC_COMMIT_ACK,       /* destination: running */
    MIG_REC_ABORT,            /* code, reason text */
    MIG_REC_ERROR,            /* code, message text */
    MIG_REC_KEEPALIVE,        /* empty */
    MIG_REC_CHANNEL_JOIN,     /* session id, channel index, secret (transport layer) */
    MIG_REC_RESOLVE_QUERY,    /* domain name, session id */
    MIG_REC_RESOLVE_ANSWER,   /* session id, outcome */
    /* Added by the stream layer (handshake only; not for engine use). */
    MIG_REC_AUTH,             /* client's proof of the pre-shared key */
    MIG_REC_SESSION,          /* session id, masked secret, negotiated caps/channels */
    MIG_REC_JOIN_ACK,         /* data channel accepted */
    /* Added by the engine's hooks (session/hooks.h). */
    MIG_REC_HOOK_DATA,        /* hook id, kind, bytes (begin blob, ack, hook data) */
    /* Added with MIG_CAP_PAGE_CRC. */
    MIG_REC_PAGES_CRC,        /* round, count, pfns[count], pages, crcs[count], CRC of the crcs */
    MIG_REC__COUNT
};

/* A record as read: payload is borrowed until the next get on that stream. */
struct mig__rec {
    uint32_t type;            /* enum mig__rec_type */
    uint32_t len;             /* payload bytes */
    const uint8_t *payload;
    /* PAGES and PAGES_CRC, with a placer (mig__stream_set_placer): the page
     * data went straight to where the placer said, and payload holds all but
     * the pages (mig__rec_get_pages knows where); or place_err: the placer
     * refused it (data dropped). */
    bool placed;
    int place_err;
    /* PAGES_CRC only: the pages whose data did not match their own CRC
     * (indices into the record, ascending; borrowed like payload). Their
     * data was stored all the same: the sender read them while the guest
     * was rewriting them, or they were damaged in transit (the receiver
     * tells the two apart by whether they come again, stream-format.md). */
    uint32_t nbad;
    const uint32_t *bad;
};

struct mig__zero_run {
    uint64_t pfn;
    uint64_t count;
};

/* Decoded views; pointers borrow from the record's payload. */
struct mig__rec_pages {
    uint32_t round;
    uint32_t count;
    const uint64_t *pfns;     /* count entries (host order after decode) */
    const uint32_t *crcs;     /* PAGES_CRC: count CRC32Cs, one per page; else NULL */
    const uint8_t *data;      /* PAGES(_CRC): count * 4096 bytes (NULL when the record was
                               * placed); PAGES_ZSTD: zstd frame */
    uint32_t data_len;        /* bytes of 'data' */
    uint32_t raw_len;         /* PAGES_ZSTD: decompressed size (count * 4096) */
};

struct mig__rec_zero_runs {
    uint32_t round;
    uint32_t nruns;
    const struct mig__zero_run *runs;
};

/* DOMAIN_INFO as decoded (same fields as the backend's struct mig__dom_info,
 * kept separate so the stream layer does not depend on hv/). */
#define MIG_DOM_INFO_LEN 592u
struct mig__rec_dom_info {
    char name[64];            /* NUL-terminated */
    uint64_t nr_pages;        /* pages */
    uint32_t page_size;       /* bytes */
    uint32_t vcpus;           /* count */
    char config[512];         /* NUL-terminated */
};

struct mig__stream;

/* ---- framing ---------------------------------------------------------- */

/* Queue one record of 'type' whose payload is the concatenation of iov. */
void mig__stream_put(struct mig__stream *s, uint32_t type, const struct iovec *iov,
                     unsigned iovcnt);
/* An open record: iov's bytes now and a tail of tail_len bytes (> 0) that
 * the same thread sends with mig__stream_put_tail right after: put_open
 * returns holding the stream's write lock and put_tail releases it, so no
 * other writer's record lands inside (KEEPALIVEs skip). The record's CRC covers
 * the header and only the first 'nmeta' iovs: the rest and the tail carry
 * checks of their own (PAGES_CRC's pages and their CRCs). */
void mig__stream_put_open(struct mig__stream *s, uint32_t type, const struct iovec *iov,
                          unsigned iovcnt, unsigned nmeta, uint32_t tail_len);
void mig__stream_put_tail(struct mig__stream *s, const void *tail, uint32_t len);
/* Push everything queued to the transport. Returns the sticky error. */
int mig__stream_flush(struct mig__stream *s);
/* The first error this stream met, or 0. */
int mig__stream_error(const struct mig__stream *s);
/* Read the next record (KEEPALIVEs are consumed silently). Blocks at most the
 * stream's timeout: -MIG_ETIMEOUT when the peer went silent. */
int mig__stream_get(struct mig__stream *s, struct mig__rec *rec_out);

/* Receiving PAGES and PAGES_CRC records straight into their destination
 * (the incoming guest's memory, as QEMU's multifd receive does) instead of
 * the payload buffer and then a copy. Once a record's header, round, count
 * and pfns are read (PAGES_CRC: and the record's CRC checked), place() is
 * called: 0 and ptrs[0..count) set (writable page_size bytes each): the page
 * data is read there and checked after (PAGES: the record's CRC, a mismatch
 * fails the stream, the pages hold garbage and the incoming domain must
 * never run; PAGES_CRC: each page's CRC, which follows the pages,
 * mismatches come back in the record's 'bad'); 1: read the record as
 * usual; < 0: the record is read as usual and comes back with place_err set
 * (its pages must not be applied). A count or length the type may not have
 * is never placed. The placer is borrowed; NULL turns it off. Reader
 * thread only. */
struct mig__placer {
    int (*place)(void *opaque, uint32_t round, uint32_t count, const uint64_t *pfns, void **ptrs);
    void *opaque;
};
void mig__stream_set_placer(struct mig__stream *s, const struct mig__placer *placer);
/* Bytes written to / read from the transport so far (headers included). */
uint64_t mig__stream_bytes_out(const struct mig__stream *s);
uint64_t mig__stream_bytes_in(const struct mig__stream *s);
/* Without blocking: has the peer closed or broken the connection? Bytes that
 * already arrived are kept for the next get. */
bool mig__stream_peer_closed(struct mig__stream *s);
/* Send a KEEPALIVE if this side wrote nothing for a third of the timeout (for
 * callers busy with local work between records). Returns the sticky error. */
int mig__stream_keepalive(struct mig__stream *s);

/* ---- typed records (one encode / decode pair per type) ----------------- */

void mig__rec_put_pages(struct mig__stream *s, uint32_t round, unsigned n, const uint64_t *pfns,
                        const void *const *pages);
/* PAGES_CRC, in two steps: begin sends the list and the pages, straight
 * from where they are; end sends crcs[i] = mig__crc32c(0, pages[i], 4096),
 * taken by the caller after begin from the pages as they are then (the
 * guest may have written them meanwhile: the receiver finds such pages by
 * their CRC). begin returns holding the stream's write lock and end
 * releases it: the same thread calls end right after, touching no stream
 * in between. */
void mig__rec_put_pages_crc_begin(struct mig__stream *s, uint32_t round, unsigned n,
                                  const uint64_t *pfns, const void *const *pages);
void mig__rec_put_pages_crc_end(struct mig__stream *s, unsigned n, const uint32_t *crcs);
void mig__rec_put_pages_zstd(struct mig__stream *s, uint32_t round, unsigned n,
                             const uint64_t *pfns, const void *frame, uint32_t frame_len);
void mig__rec_put_zero_runs(struct mig__stream *s, uint32_t round, unsigned nruns,
                            const struct mig__zero_run *runs);
void mig__rec_put_round_end(struct mig__stream *s, uint32_t round, uint64_t pages);
void mig__rec_put_blob(struct mig__stream *s, uint32_t kind, const void *data, size_t len);
void mig__rec_put_text(struct mig__stream *s, uint32_t type, const char *text); /* FACTS */
void mig__rec_put_code_text(struct mig__stream *s, uint32_t type, int32_t code,
                            const char *text); /* ABORT, ERROR */
void mig__rec_put_empty(struct mig__stream *s, uint32_t type); /* SWITCHOVER, READY, COMMIT... */
/* Added: the remaining types' encoders. */
void mig__rec_put_block_extent(struct mig__stream *s, uint32_t disk, uint64_t offset,
                               const void *data, size_t len);
void mig__rec_put_dom_info(struct mig__stream *s, const struct mig__rec_dom_info *di);
void mig__rec_put_resolve_query(struct mig__stream *s, const uint8_t session_id[16],
                                const char *domain);
void mig__rec_put_resolve_answer(struct mig__stream *s, const uint8_t session_id[16],
                                 uint32_t outcome);

int mig__rec_get_pages(const struct mig__rec *r, struct mig__rec_pages *out);
int mig__rec_get_zero_runs(const struct mig__rec *r, struct mig__rec_zero_runs *out);
int mig__rec_get_round_end(const struct mig__rec *r, uint32_t *round_out, uint64_t *pages_out);
int mig__rec_get_blob(const struct mig__rec *r, uint32_t *kind_out, const void **data_out,
                      size_t *len_out);
/* Text payloads are checked to be valid NUL-free text; *text_out is a
 * malloc'ed NUL-terminated copy the caller frees. */
int mig__rec_get_text(const struct mig__rec *r, char **text_out);
int mig__rec_get_code_text(const struct mig__rec *r, int32_t *code_out, char **text_out);
/* Added: the remaining types' decoders (views borrow from the record). */
int mig__rec_get_block_extent(const struct mig__rec *r, uint32_t *disk_out, uint64_t *offset_out,
                              const void **data_out, size_t *len_out);
int mig__rec_get_dom_info(const struct mig__rec *r, struct mig__rec_dom_info *out);
/* HOOK_DATA: data (<= MIG_HOOK_DATA_MAX bytes) borrowed from the record. */
void mig__rec_put_hook_data(struct mig__stream *s, uint32_t hook, uint32_t kind, const void *data,
                            size_t len);
int mig__rec_get_hook_data(const struct mig__rec *r, uint32_t *hook_out, uint32_t *kind_out,
                           const void **data_out, size_t *len_out);
/* *domain_out: malloc'ed, caller frees. */
int mig__rec_get_resolve_query(const struct mig__rec *r, uint8_t session_id_out[16],
                               char **domain_out);
int mig__rec_get_resolve_answer(const struct mig__rec *r, uint8_t session_id_out[16],
                                uint32_t *outcome_out);

/* Name of a record type for logs ("PAGES"); "UNKNOWN" otherwise. */
const char *mig__rec_type_name(uint32_t type);

/* ---- links: one authenticated session = control + data channels -------- */

struct mig__link_opts {
    unsigned channels;        /* data channels wanted (>= 1); ssh: 1 */
    unsigned timeout_ms;      /* peer silence that counts as dead; 0: 10000 */
    const char *psk_file;     /* tcp: pre-shared key file; NULL with insecure */
    bool insecure;            /* tcp: allow unauthenticated (logged loudly) */
    const char *pki_dir;      /* tls: certificate folder; NULL: /etc/pki/migrate-live */
    const char *ssh_command;  /* ssh: replaces "ssh" (xl's -s); NULL: "ssh" */
    const char *remote_args;  /* ssh: arguments after "xl-migrate-live receive" */
    uint32_t caps;            /* capabilities this side offers (MIG_CAP_*) */
    /* tls: after the handshake, bytes travel in our own AEAD records keyed
     * from the TLS exporter (tls.c, stream-format.md) unless this is set or
     * the peer does not offer them: then OpenSSL's records (benchmarks). */
    bool tls_openssl_records;
    /* tls: new keys after this many bytes; 0: the format's 16 GiB. Not
     * negotiated: both sides must agree (tests only). */
    uint64_t tls_rekey_bytes;
};

#define MIG_CAP_ZSTD      (1u << 0)
#define MIG_CAP_BLOCK     (1u << 1)
#define MIG_CAP_NETHANDOFF (1u << 2)
#define MIG_CAP_PAGE_CRC  (1u << 3)   /* PAGES_CRC: pages sent straight from guest memory */

struct mig__link {
    struct mig__stream *ctrl;     /* owned */
    unsigned nchannels;           /* data channels */
    struct mig__stream **data;    /* owned, nchannels entries */
    uint32_t caps;                /* negotiated: intersection of both sides */
    uint8_t session_id[16];
    char peer_version[32];        /* the peer's software version */
    /* Added: ssh: and fd pairs have one pipe, so data[0] == ctrl (owned once);
     * read both from one thread there. */
    bool data_on_ctrl;
};

/* Source side: connect to 'uri' (tcp:H:P, tls:H:P, ssh:HOST, unix:PATH),
 * authenticate, negotiate, open opts->channels data channels. */
int mig__link_connect(struct mig_ctx *ctx, const char *uri, const struct mig__link_opts *opts,
                      struct mig__link **link_out);

struct mig__listener;
/* Destination side: listen on 'uri'; accept one session at a time. */
int mig__listener_open(struct mig_ctx *ctx, const char *uri, const struct mig__link_opts *opts,
                       struct mig__listener **l_out);
/* Wait for the next authenticated session (control + all its data channels).
 * Stream layer note: a control connection that fails the handshake (wrong
 * key, plaintext on tls:, bad version) returns its error; the listener stays
 * open, call again. Strays while data channels join are refused and logged. */
int mig__link_accept(struct mig__listener *l, int timeout_ms, struct mig__link **link_out);
/* Serve one session over an already-connected fd pair (ssh: stdin/stdout).
 * Stream layer note: the link owns rfd and wfd from then on (closed by
 * mig__link_close, also on failure). */
int mig__link_from_fds(struct mig_ctx *ctx, int rfd, int wfd, const struct mig__link_opts *opts,
                       struct mig__link **link_out);
void mig__listener_close(struct mig__listener *l); /* NULL-safe */
/* Shut down every channel (wakes blocked readers) without freeing. */
void mig__link_shutdown(struct mig__link *link);
void mig__link_close(struct mig__link *link);      /* NULL-safe; closes and frees */

#endif
