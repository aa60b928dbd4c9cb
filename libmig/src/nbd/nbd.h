/*
 * nbd.h: the NBD server of libmig (issue 10) as the rest of the library sees
 * it: an export behind an ops table, a server that serves it on a unix socket
 * (and optionally TCP on loopback), and the request parser the server, its
 * unit tests and its fuzz target share. docs/nbd-server.md describes the
 * protocol subset, the limits and the errors; the wire format is the NBD
 * protocol (fixed newstyle handshake, simple replies only).
 *
 * Entry points:
 *   - struct mig__nbd_export_ops: what an export implements. The block mirror
 *     wraps one (apply locally, mark its dirty bitmap, forward, then ack);
 *     mig__nbd_file_export_open() is the plain file / block device export.
 *   - mig__nbd_server_new / listen_unix / listen_tcp / start / stop / free:
 *     the server; mig__nbd_server_serve_conn() serves one connection in the
 *     calling thread (socketpairs, tests, the fuzz target).
 *   - mig__nbd_req_decode / mig__nbd_req_check: the request parser.
 *   - mig__nbd_harden_daemon: mlockall + PR_SET_IO_FLUSHER for the managed
 *     disk server (a daemon that must make progress under memory pressure
 *     because the kernel may be writing back through it).
 *
 * Threads: one thread accepts, one thread per connection serves it in order
 * (requests of one connection are executed one after another, replies in
 * request order). Export ops are called from every connection thread at once.
 */
#ifndef MIG_NBD_H
#define MIG_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mig-internal.h"

/* ---- the export ---------------------------------------------------------- */

/*
 * What an export implements. Every member is mandatory (mig__nbd_server_new
 * names a missing one). Each returns 0 or a negative libmig code; the server
 * turns codes into NBD errors: -MIG_ENOSPC -> ENOSPC, -MIG_EPERM -> EPERM,
 * -MIG_EINVAL -> EINVAL, -MIG_ENOMEM -> ENOMEM, -MIG_ENOTSUP -> ENOTSUP,
 * -MIG_ECANCELLED -> ESHUTDOWN, anything else -> EIO.
 *
 * The server has already checked every request against size() and the
 * export's flags: off + len <= size, len <= max_payload for pread/pwrite,
 * len > 0. Ops are called concurrently from several connection threads
 * (possibly for overlapping ranges; the client orders its own requests).
 * A reply is sent only after the op returned, so an op that returns 0 has
 * made the effect visible to every later request on every connection.
 */
struct mig__nbd_export_ops {
    /* Size in bytes, fixed for the life of the server (read once at
     * mig__nbd_server_new). */
    uint64_t (*size)(void *opaque);
    /* Fill buf[0..len) from off. buf is the server's, borrowed for the call. */
    int (*pread)(void *opaque, uint64_t off, uint32_t len, void *buf);
    /* Write buf[0..len) at off; with fua, durable (as after flush) before
     * returning. buf borrowed for the call. */
    int (*pwrite)(void *opaque, uint64_t off, uint32_t len, const void *buf, bool fua);
    /* Every write acknowledged so far is durable when this returns 0. */
    int (*flush)(void *opaque);
    /* The client no longer needs [off, off+len): the export may discard it
     * (contents undefined afterwards) or do nothing. fua as for pwrite. */
    int (*trim)(void *opaque, uint64_t off, uint64_t len, bool fua);
    /* [off, off+len) reads as zeroes afterwards. may_punch: the export may
     * deallocate the range (false when the client sent NBD_CMD_FLAG_NO_HOLE:
     * keep it allocated). fua as for pwrite. */
    int (*write_zeroes)(void *opaque, uint64_t off, uint64_t len, bool may_punch, bool fua);
};

/* Export flags (struct mig__nbd_export.flags). */
#define MIG__NBD_EXPORT_READ_ONLY 0x1u  /* writes, trims, zeroes fail with EPERM */
#define MIG__NBD_EXPORT_MULTI_CONN 0x2u /* flush/FUA are visible across connections
                                           (no per-connection cache): clients may
                                           open several connections (advertised
                                           when max_conns >= MIG__NBD_MULTI_CONN_MIN) */
#define MIG__NBD_MULTI_CONN_MIN 4u

/* One export. All pointers borrowed for the life of the server. */
struct mig__nbd_export {
    const char *name;        /* export name; "" is the default export. NBD_OPT_GO/INFO
                                 and EXPORT_NAME with any other name are refused */
    const char *description; /* NBD_INFO_DESCRIPTION, or NULL */
    const struct mig__nbd_export_ops *ops;
    void *opaque;            /* passed to every op */
    uint32_t flags;          /* MIG__NBD_EXPORT_* */
};

/* The plain file / block device export: pread/pwrite on one fd; fua by
 * RWF_DSYNC (fdatasync where the kernel lacks it); flush = fdatasync; trim =
 * fallocate(PUNCH_HOLE) (ignored where unsupported: trim is a hint);
 * write_zeroes = PUNCH_HOLE (when allowed) or ZERO_RANGE, else writes of a
 * zero buffer allocated at open. Regular files and block devices. */
struct mig__nbd_file;
/* Open path (read-only if read_only). *f_out owned by the caller
 * (mig__nbd_file_close). */
MIG_HIDDEN int mig__nbd_file_export_open(struct mig_ctx *ctx, const char *path, bool read_only,
                                         struct mig__nbd_file **f_out);
MIG_HIDDEN void mig__nbd_file_close(struct mig__nbd_file *f); /* NULL-safe */
/* The ops table and opaque of an open file (borrowed; opaque is f itself). */
MIG_HIDDEN const struct mig__nbd_export_ops *mig__nbd_file_ops(void);
/* Fill *exp for f: ops, opaque, flags (READ_ONLY if opened so, MULTI_CONN);
 * name "" and no description. */
MIG_HIDDEN void mig__nbd_file_export(struct mig__nbd_file *f, struct mig__nbd_export *exp);

/* ---- the server ---------------------------------------------------------- */

#define MIG__NBD_DEFAULT_MAX_PAYLOAD (32u << 20) /* what clients assume by default */
#define MIG__NBD_MIN_MAX_PAYLOAD (64u << 10)     /* the protocol's floor */
#define MIG__NBD_DEFAULT_MAX_CONNS 8u

struct mig__nbd_server_config {
    /* Largest READ/WRITE payload, advertised as the maximum block size;
     * longer requests get EOVERFLOW (a write's payload is drained first).
     * 0: MIG__NBD_DEFAULT_MAX_PAYLOAD. Range [64 KiB, 32 MiB]. */
    uint32_t max_payload;
    /* Connections served at once; more are accepted and closed at once.
     * Every connection's buffer (max_payload + 64 KiB) is allocated by
     * mig__nbd_server_new, so nothing is allocated per request or per
     * connection. 0: MIG__NBD_DEFAULT_MAX_CONNS. */
    unsigned max_conns;
};

/* Per-server counters (mig__nbd_server_stats); every field is cumulative. */
struct mig__nbd_stats {
    uint64_t conns_accepted;   /* connections that reached the handshake */
    uint64_t conns_refused;    /* closed at once: max_conns in use */
    uint64_t proto_errors;     /* connections dropped for a protocol violation */
    uint64_t requests;         /* transmission requests executed (DISC excluded) */
    uint64_t request_errors;   /* of those, answered with a nonzero NBD error */
    uint64_t bytes_read;       /* READ payload bytes sent */
    uint64_t bytes_written;    /* WRITE payload bytes applied */
};

struct mig__nbd_server;

/* Check exp's ops table, read its size, allocate every connection buffer.
 * exp and everything it points to are borrowed until mig__nbd_server_free.
 * cfg may be NULL (defaults). */
MIG_HIDDEN int mig__nbd_server_new(struct mig_ctx *ctx, const struct mig__nbd_export *exp,
                                   const struct mig__nbd_server_config *cfg,
                                   struct mig__nbd_server **srv_out);
/* Listen on a unix socket at path (replacing a stale socket file there). The
 * socket appears at path already listening (bound under a temporary name,
 * then renamed), so a client that sees the file can connect. Before start. */
MIG_HIDDEN int mig__nbd_server_listen_unix(struct mig__nbd_server *srv, const char *path);
/* Listen on TCP on the loopback address, port (0: any); *port_out (may be
 * NULL) gets the port. Sets TCP_NODELAY on every accepted connection. */
MIG_HIDDEN int mig__nbd_server_listen_tcp(struct mig__nbd_server *srv, uint16_t port,
                                          uint16_t *port_out);
/* Start the accept thread (at least one listener needed). */
MIG_HIDDEN int mig__nbd_server_start(struct mig__nbd_server *srv);
/* Serve one connected socket in the calling thread until the client leaves
 * (0), breaks the protocol (-MIG_EPROTO), or the server stops. fd is closed
 * before returning. Uses one of the connection buffers (-MIG_EBUSY if all
 * are in use). */
MIG_HIDDEN int mig__nbd_server_serve_fd(struct mig__nbd_server *srv, int fd);
/* Stop accepting, shut every connection down (their threads end after the
 * request in progress), join every thread, unlink the unix socket.
 * Idempotent; NULL-safe. */
MIG_HIDDEN void mig__nbd_server_stop(struct mig__nbd_server *srv);
/* Stop, then free. NULL-safe. */
MIG_HIDDEN void mig__nbd_server_free(struct mig__nbd_server *srv);
MIG_HIDDEN void mig__nbd_server_stats(struct mig__nbd_server *srv, struct mig__nbd_stats *out);

/* ---- connection I/O (for the fuzz target and unit tests) ---------------- */

/*
 * How a connection moves bytes. The server's own is the socket; the fuzz
 * target plugs in memory. recv returns bytes read (> 0), 0 at EOF, or a
 * negative libmig code; sendv sends every byte of iov (more: further replies
 * follow at once, a hint for MSG_MORE) and returns 0 or a negative code.
 */
struct mig__nbd_io {
    long (*recv)(void *opaque, void *buf, size_t len);
    int (*sendv)(void *opaque, const struct iovec *iov, int iovcnt, bool more);
    void *opaque;
};

/* Serve one connection over io with a buffer of the server's (as
 * serve_fd, without closing anything). For tests and fuzzing. */
MIG_HIDDEN int mig__nbd_server_serve_io(struct mig__nbd_server *srv, const struct mig__nbd_io *io);

/* ---- the request parser -------------------------------------------------- */

#define MIG__NBD_REQ_SIZE 28u

/* A transmission request as decoded from its 28 wire bytes. */
struct mig__nbd_req {
    uint16_t flags;   /* NBD_CMD_FLAG_* */
    uint16_t type;    /* NBD_CMD_* */
    uint64_t cookie;  /* the client's handle, echoed in the reply */
    uint64_t offset;
    uint32_t length;
};

/* What a request may do on this connection (from the export and the
 * negotiated transmission flags). */
struct mig__nbd_limits {
    uint64_t size;        /* export size in bytes */
    uint32_t max_payload; /* largest READ/WRITE length */
    uint16_t tflags;      /* transmission flags sent to the client */
};

/* Decode wire bytes; -MIG_EPROTO on a bad magic (the connection is then
 * dropped: the stream cannot be resynchronised). */
MIG_HIDDEN int mig__nbd_req_decode(const uint8_t wire[MIG__NBD_REQ_SIZE], struct mig__nbd_req *r);

/*
 * Validate a decoded request. Returns the NBD error to reply with (0: execute
 * it). *drain_out gets the payload bytes that follow the header on the wire
 * and must be read (and discarded, on error) before the next request: a
 * WRITE's length whatever the verdict. Errors: unknown command or flag, or a
 * flag not valid for the command or not negotiated -> EINVAL; READ/WRITE
 * longer than max_payload -> EOVERFLOW; write to a read-only export -> EPERM;
 * range beyond the end (or wrapping) -> ENOSPC for WRITE and WRITE_ZEROES,
 * EINVAL otherwise. NBD_CMD_DISC returns 0.
 */
MIG_HIDDEN uint32_t mig__nbd_req_check(const struct mig__nbd_req *r,
                                       const struct mig__nbd_limits *lim, uint32_t *drain_out);

/* ---- daemon hardening ---------------------------------------------------- */

/*
 * For a server that backs a disk the kernel writes back through (the managed
 * disk: dom0's nbd client -> this server): lock all current and future memory
 * (mlockall) so serving a write never waits for reclaim, and mark the thread
 * group PR_SET_IO_FLUSHER (Linux >= 5.6) so its own allocations do not
 * recurse into I/O. *applied_out (may be NULL) gets MIG__NBD_HARDEN_* bits of
 * what succeeded. Returns 0 if mlockall succeeded (IO_FLUSHER is best
 * effort: it needs CAP_SYS_RESOURCE and a new kernel), else -MIG_EPERM or
 * -MIG_ENOMEM. Call after mig__nbd_server_new (its buffers are then locked).
 */
#define MIG__NBD_HARDEN_MLOCK 0x1u
#define MIG__NBD_HARDEN_IO_FLUSHER 0x2u
MIG_HIDDEN int mig__nbd_harden_daemon(struct mig_ctx *ctx, unsigned *applied_out);

#endif
