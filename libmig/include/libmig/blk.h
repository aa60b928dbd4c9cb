/*
 * blk.h: managed disks (issue 10, docs/block-mirror.md): a disk image or
 * block device served over NBD by libmig so that every write goes through
 * the block mirror, which copies the disk to the destination while the
 * guest runs. mig_disk_serve() is the managed-disk server (`xl-migrate-live
 * disk-serve`): the NBD export on a unix socket, and the disk's control
 * socket at STATE_DIR/disks/DOMAIN/NAME.ctl, through which a migration of
 * DOMAIN (run by any process on this host with the same state directory)
 * mirrors the disk.
 */
#ifndef LIBMIG_BLK_H
#define LIBMIG_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include <libmig/mig.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Strings borrowed for the call. */
struct mig_disk_serve_params {
    const char *path;       /* image file or block device */
    const char *domain;     /* the domain whose disk it is */
    const char *name;       /* disk name (NULL: path's file name) */
    const char *state_dir;  /* host state directory (NULL: /var/lib/migrate-live) */
    const char *socket;     /* NBD unix socket path (the guest's, or dom0's nbd-client's) */
    /* Lock memory (mlockall) and set PR_SET_IO_FLUSHER: dom0's kernel
     * writes back through this server (docs/nbd-server.md). */
    bool harden;
    int stop_fd;            /* readable (or closed) -> stop; -1: never */
    /* Called once both sockets listen (NULL: nothing). */
    void (*ready)(void *opaque, const char *ctl_path);
    void *ready_opaque;
};

/* Serve until stop_fd is readable: 0 after a clean stop, or a negative
 * error (open, listen, harden). */
MIG_EXPORT int mig_disk_serve(struct mig_ctx *ctx, const struct mig_disk_serve_params *p);

#ifdef __cplusplus
}
#endif

#endif
