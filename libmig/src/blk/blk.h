/*
 * blk.h: the block mirror (issue 10, DRBD-like): a managed disk whose every
 * write goes through us, mirrored to the destination while the guest runs.
 *
 * Source, struct mig__blk_mirror: wraps a local image file (or block
 * device). Its export functions (mig__blk_export_*, the signatures of the NBD
 * server's export ops table, nbd.h) apply each write to the image first, then
 * mark the written 64 KiB regions out of sync in a bitmap, or, once the
 * migration entered synchronous forwarding, send the written bytes to the
 * destination before the write is acknowledged. A migration attaches with
 * mig__blk_mirror_start: every allocated region (SEEK_DATA / SEEK_HOLE) is
 * out of sync; each round sends the regions out of sync since the previous
 * pass (zero regions as ZERO records, not data); at switchover the guest is
 * suspended and the final round sends the residue.
 *
 * Granularity: 64 KiB regions (MIG_BLK_REGION), DRBD's resync extent size
 * scaled down: a 4 KiB guest write costs at most 64 KiB in a later round,
 * and a 1 TiB disk needs a 2 MiB bitmap. Regions are grouped in 1 MiB
 * stripes: every record about a stripe goes on data channel
 * (stripe % channels), so two versions of one region always arrive in the
 * order they were sent (the destination applies hook records per channel,
 * without the round barrier).
 *
 * Destination, struct mig__blk_target: the file or block device given by
 * --disk-map SRC=DST, sized and checked for free space at begin (before
 * round 0), written from the records, fdatasync'ed before READY, removed on
 * abort when it was created by us.
 *
 * The hook class (blk-hook.c, class "blk", id MIG_HOOK_ID_BLK) ties both to
 * the engine (session/hooks.h).
 *
 * Entry points: mig__blk_mirror_*, mig__blk_export_*, mig__blk_target_*,
 * mig__blk_hook_class, mig__blk_register (managed disks served by this
 * process, per domain).
 */
#ifndef MIG_BLK_H
#define MIG_BLK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hooks.h"

#define MIG_BLK_REGION (64u << 10)   /* bytes per bitmap bit */
#define MIG_BLK_STRIPE (1u << 20)    /* bytes: records of one stripe share a channel */
#define MIG_BLK_MAX_DISKS 16u
#define MIG_BLK_OOS_EXTENT (4u << 20) /* bytes per bit of the persistent out-of-sync log */
#define MIG_BLK_INCOMPLETE ".incomplete" /* marker next to a target being written */
#define MIG_BLK_KIND_ZERO MIG_HOOK_KIND_CLASS /* HOOK_DATA: u32 disk, u32 0, u64 off, u64 len */

struct mig__blk_mirror;

/* Counters of one mirror (bytes unless noted), read at any time. */
struct mig__blk_stats {
    uint64_t size;              /* bytes: the disk */
    uint64_t allocated;         /* bytes: allocated when the migration started */
    uint64_t sent_bytes;        /* bytes: region data sent by rounds */
    uint64_t zero_bytes;        /* bytes: sent as ZERO records */
    uint64_t forwarded_bytes;   /* bytes: guest writes forwarded synchronously */
    uint64_t forwarded_writes;  /* count */
    uint64_t final_bytes;       /* bytes: sent after the guest was suspended */
    uint64_t pending_bytes;     /* bytes: out of sync now */
    uint32_t rounds;            /* count */
    bool forwarding;            /* synchronous forwarding is on */
};

/* Open 'path' (file or block device) read-write as a managed disk. */
int mig__blk_mirror_open(struct mig_ctx *ctx, const char *path, struct mig__blk_mirror **m_out);
void mig__blk_mirror_free(struct mig__blk_mirror *m); /* NULL-safe; must be stopped */
/* Keep the out-of-sync log in the file log_path (created 0600 if missing,
 * loaded if present; a file that does not match the disk loads as all out
 * of sync). From now on the first write to a 4 MiB extent not yet marked
 * (MIG_BLK_OOS_EXTENT) marks it in the file and fdatasyncs the file before
 * the write is applied, so after a crash every extent written since the
 * last completed sync (a COMMIT that moved the disk, which clears the log)
 * is marked. Call once, before the export serves. */
int mig__blk_mirror_persist(struct mig__blk_mirror *m, const char *log_path);
/* Bytes marked in the log now (0 if not persisted); *loaded_out: marked
 * when it was loaded; *syncs_out: log writes so far (each one fdatasync).
 * Either may be NULL. */
uint64_t mig__blk_mirror_oos_bytes(struct mig__blk_mirror *m, uint64_t *loaded_out,
                                   uint64_t *syncs_out);
bool mig__blk_mirror_oos_test(struct mig__blk_mirror *m, uint64_t off); /* extent of off marked */
const char *mig__blk_mirror_path(const struct mig__blk_mirror *m); /* borrowed */

/* The export (signatures of struct mig__nbd_export_ops; opaque = the
 * mirror). Any thread, concurrently. A write is acknowledged (returns 0) only
 * after it reached the image and was either marked out of sync or forwarded
 * to the destination. */
uint64_t mig__blk_export_size(void *opaque);
int mig__blk_export_pread(void *opaque, uint64_t off, uint32_t len, void *buf);
int mig__blk_export_pwrite(void *opaque, uint64_t off, uint32_t len, const void *buf, bool fua);
int mig__blk_export_flush(void *opaque);
int mig__blk_export_trim(void *opaque, uint64_t off, uint64_t len, bool fua);
int mig__blk_export_write_zeroes(void *opaque, uint64_t off, uint64_t len, bool may_punch,
                                 bool fua);

/* Migration side (the blk hook). start: tracking on, every allocated region
 * out of sync, records go to 'io' as disk 'disk_id'. */
int mig__blk_mirror_start(struct mig__blk_mirror *m, struct mig__hook_io *io, uint32_t disk_id);
/* Send every region out of sync now (get-and-clear), then return. final:
 * the guest is suspended (counted as final_bytes). */
int mig__blk_mirror_round(struct mig__blk_mirror *m, bool final);
/* From now on, writes to regions in sync are forwarded before their ack. */
void mig__blk_mirror_set_forwarding(struct mig__blk_mirror *m, bool on);
uint64_t mig__blk_mirror_pending(struct mig__blk_mirror *m);
void mig__blk_mirror_stats(struct mig__blk_mirror *m, struct mig__blk_stats *st_out);
/* Switchover: hold every new write (they wait in the export) until
 * release; returns when the writes in flight have finished. */
void mig__blk_mirror_freeze(struct mig__blk_mirror *m);
/* End of the hold: moved (after COMMIT): writes fail from now on with
 * -MIG_ECANCELLED (the NBD client sees ESHUTDOWN and reconnects to the
 * destination); otherwise (abort) they go on here. */
void mig__blk_mirror_release(struct mig__blk_mirror *m, bool moved);
bool mig__blk_mirror_moved(struct mig__blk_mirror *m);
/* The serving process stops: writes held by a switchover fail from now on
 * (no ack for a write that may not reach the copy that runs). */
void mig__blk_mirror_unhold(struct mig__blk_mirror *m);
/* Tracking and forwarding off (abort, or after COMMIT). Idempotent. */
void mig__blk_mirror_stop(struct mig__blk_mirror *m);

/* ---- managed disks served by this process ----------------------------- */

/* Make 'm' a disk of 'domain' for migrations run with this context
 * (borrowed until mig__blk_unregister). */
int mig__blk_register(struct mig_ctx *ctx, const char *domain, struct mig__blk_mirror *m);
void mig__blk_unregister(struct mig_ctx *ctx, struct mig__blk_mirror *m);

/* The NBD export ops table of a managed disk (opaque: the mirror). */
struct mig__nbd_export_ops;
extern const struct mig__nbd_export_ops mig__blk_export_ops;

/* ---- managed disks served by another process (remote.c) --------------- */

/* Daemon side: the disk's control socket. One control connection at a
 * time may run a migration (START); ctl_serve serves one connection in the
 * calling thread until it closes (the caller closes fd). */
struct mig__blk_ctl {
    struct mig_ctx *ctx;             /* borrowed */
    struct mig__blk_mirror *mirror;  /* borrowed */
    pthread_mutex_t lock;            /* guards owner */
    void *owner;                     /* the connection running a migration, or NULL */
};
int mig__blk_ctl_serve(struct mig__blk_ctl *ctl, int fd);

/* Migration side: the same operations as the mirror's, over the control
 * socket at ctl_path (STATE_DIR/disks/DOMAIN/NAME.ctl). Records the daemon
 * sends go to the io given at start, from a reader thread. */
struct mig__blk_remote;
int mig__blk_remote_open(struct mig_ctx *ctx, const char *ctl_path, struct mig__blk_remote **r_out);
void mig__blk_remote_free(struct mig__blk_remote *r); /* NULL-safe; closes the connection */
const char *mig__blk_remote_path(const struct mig__blk_remote *r); /* the daemon's image */
int mig__blk_remote_start(struct mig__blk_remote *r, struct mig__hook_io *io, uint32_t disk_id);
int mig__blk_remote_round(struct mig__blk_remote *r, bool final);
void mig__blk_remote_set_forwarding(struct mig__blk_remote *r, bool on);
int mig__blk_remote_stats(struct mig__blk_remote *r, struct mig__blk_stats *st_out);
int mig__blk_remote_freeze(struct mig__blk_remote *r);
/* READY received: a connection lost from now on leaves writes held. */
int mig__blk_remote_ready(struct mig__blk_remote *r);
int mig__blk_remote_release(struct mig__blk_remote *r, bool moved); /* stops, then releases */
void mig__blk_remote_abort(struct mig__blk_remote *r); /* release(false), or drop the link */
/* resolve: settle every managed disk of 'domain' served on this host
 * (STATE_DIR/disks/DOMAIN/\*.ctl) whose writes a migration left held in
 * doubt: moved (refused from now on) or not (they go on). */
int mig__blk_settle(struct mig_ctx *ctx, const char *state_dir, const char *domain, bool moved);

/* The managed-disk server (serve.c): mirror + NBD export + control socket
 * (libmig/blk.h's mig_disk_serve without the wait). Owned by the caller. */
struct mig__blk_server;
struct mig_disk_serve_params;
int mig__blk_server_start(struct mig_ctx *ctx, const struct mig_disk_serve_params *p,
                          struct mig__blk_server **s_out);
const char *mig__blk_server_ctl_path(const struct mig__blk_server *s); /* borrowed */
struct mig__blk_mirror *mig__blk_server_mirror(struct mig__blk_server *s); /* borrowed */
void mig__blk_server_free(struct mig__blk_server *s); /* NULL-safe: stops everything */

/* ---- qdisk disks: QEMU mirrors them for us (qdisk.c) ------------------ */

/* A disk served to the domain by its own QEMU (Xen's qdisk backend): for
 * one migration, QEMU mirrors it over QMP (blockdev-mirror, sync full,
 * copy-mode write-blocking) into an NBD export of the destination target.
 * docs/block-mirror.md "qdisk disks". */
struct mig__qmp;
struct mig__blk_qdisk;
struct mig__blk_qdisk_params {
    const char *device;     /* the disk's node name in QEMU (query-named-block-nodes) */
    const char *job_id;     /* the block job's id, <= 40 chars; the target node is
                               JOB-target */
    const char *nbd_socket; /* unix socket of the NBD server serving the target */
    const char *nbd_export; /* export name; NULL: "" */
    uint64_t speed;         /* bytes/s, 0: unlimited */
};
struct mig__blk_qdisk_job { /* one query-block-jobs entry */
    uint64_t offset, len;   /* bytes: progress */
    bool ready;
    char status[24];        /* "running", "ready", "concluded", ... */
    char error[160];        /* QEMU's error text, "" if none */
};
/* q borrowed for the life of *d_out. Adds the NBD node, starts the job. On
 * failure nothing stays in QEMU. */
int mig__blk_qdisk_start(struct mig_ctx *ctx, struct mig__qmp *q,
                         const struct mig__blk_qdisk_params *p, struct mig__blk_qdisk **d_out);
int mig__blk_qdisk_job(struct mig__blk_qdisk *d, struct mig__blk_qdisk_job *out);
/* Poll until the job is ready (0), failed (-MIG_EIO) or timeout_ms passed. */
int mig__blk_qdisk_wait_ready(struct mig__blk_qdisk *d, unsigned timeout_ms);
/* Switchover (guest paused): cancel the ready job gracefully (the target
 * then equals the source; the domain stays on its own disk), check that it
 * ended without error, dismiss it, remove the NBD node. */
int mig__blk_qdisk_complete(struct mig__blk_qdisk *d, unsigned timeout_ms);
/* Failure before COMMIT: forced cancel, dismiss, remove the node. The
 * source disk is never written by the job. NULL-safe. */
void mig__blk_qdisk_abort(struct mig__blk_qdisk *d);
void mig__blk_qdisk_free(struct mig__blk_qdisk *d); /* aborts what is left; NULL-safe */

/* A qdisk disk as a source disk of the mirror (qsrc.c): spec
 * "SOCKET,DEVICE[,NAME]" (QEMU's QMP socket, the disk's device or node
 * name, the name --disk-map matches; default DEVICE). open connects to QEMU
 * and reads the size; start serves the sink export on a private unix socket
 * and starts QEMU's mirror into it; freeze (guest paused) waits for ready and
 * completes the job; settle removes everything from QEMU. */
struct mig__blk_qsrc;
/* The wire records of a disk's data (mirror.c; docs/stream-format.md): an
 * extent (BLOCK_EXTENT) and a zero range (HOOK_DATA kind ZERO), on the data
 * channel of the offset's stripe. */
int mig__blk_send_extent(struct mig__hook_io *io, uint32_t disk, uint64_t off, const void *data,
                         size_t len);
int mig__blk_send_zero(struct mig__hook_io *io, uint32_t disk, uint64_t off, uint64_t len);
int mig__blk_qsrc_open(struct mig_ctx *ctx, const char *spec, struct mig__blk_qsrc **s_out);
int mig__blk_qsrc_start(struct mig__blk_qsrc *s, struct mig__hook_io *io, uint32_t id);
int mig__blk_qsrc_round(struct mig__blk_qsrc *s, bool final);
int mig__blk_qsrc_stats(struct mig__blk_qsrc *s, struct mig__blk_stats *out);
int mig__blk_qsrc_freeze(struct mig__blk_qsrc *s);
void mig__blk_qsrc_settle(struct mig__blk_qsrc *s);
const char *mig__blk_qsrc_name(struct mig__blk_qsrc *s);
void mig__blk_qsrc_free(struct mig__blk_qsrc *s); /* NULL-safe */

/* ---- destination --------------------------------------------------------- */

struct mig__blk_target;

/* Open (or create, sparse) 'path' for a disk of 'size' bytes of which
 * 'allocated' are data: -MIG_ENOSPC with a message in why[] when a block
 * device is smaller than size or the filesystem lacks room for allocated. */
int mig__blk_target_open(struct mig_ctx *ctx, const char *path, uint64_t size, uint64_t allocated,
                         struct mig__blk_target **t_out, char *why, size_t why_len);
/* Apply data / zeroes (hostile input: bounds-checked). Any thread. */
int mig__blk_target_write(struct mig__blk_target *t, uint64_t off, const void *data, size_t len);
int mig__blk_target_zero(struct mig__blk_target *t, uint64_t off, uint64_t len);
int mig__blk_target_sync(struct mig__blk_target *t);
/* Abort: a file we created is removed; an existing one is left, logged as
 * incomplete. Then frees. */
void mig__blk_target_discard(struct mig__blk_target *t);
/* Keep it (after COMMIT): close and free. NULL-safe. */
void mig__blk_target_close(struct mig__blk_target *t);

extern const struct mig__hook_class mig__blk_hook_class;

#endif
