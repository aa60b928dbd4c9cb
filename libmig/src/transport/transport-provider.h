/*
 * transport-provider.h: what a transport implements. A class (tcp, tls, ssh,
 * unix, fd) is picked by URI prefix from the static table in transport.c and
 * makes connections; a connection moves bytes with a deadline. Framing,
 * handshake and authentication above the bytes live in stream/ and link.c.
 *
 * Every member of both tables is mandatory (transport.c checks the class
 * table in test-transport's class_table_complete). Errors are 0 or negative libmig codes; errno and
 * OpenSSL's queue are converted inside the transport.
 */
#ifndef MIG_TRANSPORT_PROVIDER_H
#define MIG_TRANSPORT_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "mig-internal.h"

struct mig__link_opts;
struct mig__conn;

/* How a class authenticates its peers (sent in HELLO_ACK, stream-format.md). */
enum mig__auth {
    MIG_AUTH_NONE = 0,  /* insecure tcp:, unix: (file permissions) */
    MIG_AUTH_PSK = 1,   /* tcp: with a key file: HMAC proofs in the handshake */
    MIG_AUTH_TLS = 2,   /* tls: mutual certificates */
    MIG_AUTH_PIPE = 3,  /* ssh: and fd pairs: the pipe's owner authenticated */
};

struct mig__conn_ops {
    /* Read up to 'len' bytes into 'buf'; *n_out 0 means orderly EOF
     * (-MIG_EPEER is returned instead). Waits at most timeout_ms for the first
     * byte: -MIG_ETIMEOUT. A large read on a socket may wait (at most
     * timeout_ms) for all of 'len' before returning what it has. */
    int (*read)(struct mig__conn *c, void *buf, size_t len, int timeout_ms, size_t *n_out);
    /* Write all of iov (the array may be modified). -MIG_ETIMEOUT when no
     * progress for timeout_ms. Never raises SIGPIPE. */
    int (*writev)(struct mig__conn *c, struct iovec *iov, int iovcnt, int timeout_ms);
    /* Wake blocked readers and writers (both directions); idempotent. */
    void (*shutdown)(struct mig__conn *c);
    /* Close and free; NULL is not passed (mig__conn_free checks). */
    void (*close)(struct mig__conn *c);
};

/* The base every connection embeds first. */
struct mig__conn {
    const struct mig__conn_ops *ops;
    struct mig_ctx *ctx;        /* borrowed */
    bool encrypted;             /* TLS: records carry no CRC (AEAD covers them) */
    enum mig__auth auth;        /* what this connection's class provides */
    char peer[64];              /* for logs: "127.0.0.1:4711", "ssh:host" */
};

struct mig__listen;

struct mig__tr_class {
    const char *prefix;         /* "tcp", without the colon */
    unsigned max_channels;      /* data channels one session may use */
    /* Open one connection to 'arg' (the URI after "prefix:"). */
    int (*connect)(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                   struct mig__conn **c_out);
    int (*listen)(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                  struct mig__listen **l_out);
    /* Next connection, transport-level handshake done (TLS). -MIG_ETIMEOUT. */
    int (*accept)(struct mig__listen *l, int timeout_ms, struct mig__conn **c_out);
    void (*listen_close)(struct mig__listen *l);
};

/* The base every listener embeds first. */
struct mig__listen {
    const struct mig__tr_class *cls;
    struct mig_ctx *ctx;        /* borrowed */
};

/* transport.c: class lookup by URI prefix ("tcp:h:p" -> tcp, *arg_out "h:p"). */
int mig__tr_lookup(const char *uri, const struct mig__tr_class **cls_out, const char **arg_out);
/* The i-th class of the table, NULL past the end (for the table's test). */
const struct mig__tr_class *mig__tr_class_at(unsigned i);
void mig__conn_free(struct mig__conn *c); /* NULL-safe */

/* fd.c: a connection over a socket or a pair of pipe fds (owned: closed by
 * close). Used by tcp, unix, ssh and the fd-pair link. */
int mig__conn_fd_new(struct mig_ctx *ctx, int rfd, int wfd, enum mig__auth auth,
                     const char *peer, struct mig__conn **c_out);
/* Poll one fd for 'events' for at most timeout_ms: 0, -MIG_ETIMEOUT, -MIG_EIO. */
int mig__tr_poll(int fd, short events, int timeout_ms);
/* Socket options every stream socket gets: no delay, keepalive and
 * TCP_USER_TIMEOUT from timeout_ms (TCP only; harmless on unix sockets). */
void mig__tr_sockopts(int fd, unsigned timeout_ms);
/* Split "host:port" / "[v6]:port"; host must be loopback-safe resolvable. */
int mig__tr_split_hostport(const char *arg, char *host, size_t hostlen, char *port,
                           size_t portlen);
/* TCP connect/listen helpers shared by tcp.c and tls.c. */
int mig__tr_tcp_connect_fd(struct mig_ctx *ctx, const char *arg, unsigned timeout_ms, int *fd_out);
int mig__tr_tcp_listen_fd(struct mig_ctx *ctx, const char *arg, int *fd_out);
/* accept(2) with a deadline: the new fd is CLOEXEC and blocking. */
int mig__tr_accept_fd(int lfd, int timeout_ms, char *peer, size_t peerlen, int *fd_out);

extern const struct mig__tr_class mig__tr_tcp, mig__tr_tls, mig__tr_ssh, mig__tr_unix;

#endif
