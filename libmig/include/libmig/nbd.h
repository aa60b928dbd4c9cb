/*
 * nbd.h: serving a disk image over NBD (issue 10): the managed-disk export
 * and the command's `nbd-serve`. The server speaks the NBD protocol's fixed
 * newstyle handshake with simple replies (docs/nbd-server.md); any NBD
 * client (qemu, libnbd's nbdcopy/nbdinfo, the kernel's nbd-client) can use
 * it. Entry point: mig_nbd_serve(), which blocks until told to stop.
 */
#ifndef LIBMIG_NBD_H
#define LIBMIG_NBD_H

#include <stdbool.h>
#include <stdint.h>

#include <libmig/mig.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What to serve and where. Strings are borrowed for the call. */
struct mig_nbd_serve_params {
    const char *path;       /* regular file or block device */
    const char *socket;     /* unix socket path, or NULL */
    int tcp_port;           /* -1: no TCP; 0: any free port; else the port (127.0.0.1 only) */
    bool read_only;
    /* The managed-disk daemon: lock memory (mlockall) and set
     * PR_SET_IO_FLUSHER, so writeback through this server cannot deadlock
     * on reclaim. Fails if memory cannot be locked. */
    bool harden;
    uint32_t max_payload;   /* bytes, largest READ/WRITE (0: 32 MiB) */
    unsigned max_conns;     /* connections at once (0: 8; with harden 2) */
    int stop_fd;            /* readable (or closed) -> stop; -1: never */
    /* Called once listening (NULL: nothing); tcp_port is the bound port or 0. */
    void (*ready)(void *opaque, uint16_t tcp_port);
    void *ready_opaque;
};

/* Serve p->path until p->stop_fd becomes readable. 0 after a clean stop, or
 * a negative error (open, listen, harden). */
MIG_EXPORT int mig_nbd_serve(struct mig_ctx *ctx, const struct mig_nbd_serve_params *p);

#ifdef __cplusplus
}
#endif

#endif
