/*
 * harden.c: protection of a managed-disk NBD server against memory-pressure
 * deadlock (mig__nbd_harden_daemon). When dom0's kernel writes dirty pages
 * back through /dev/nbdN, the pages are freed only once this process has
 * served the writes: if serving them needed a page fault into reclaim, or an
 * allocation that waits for writeback, the two would wait on each other.
 * mlockall keeps every mapping (buffers are allocated before this call,
 * future ones locked as they appear) resident; PR_SET_IO_FLUSHER (Linux
 * 5.6) makes the kernel treat the process's allocations as GFP_NOIO, as it
 * does for its own block drivers. docs/nbd-server.md shows the systemd unit.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "nbd-internal.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57 /* <linux/prctl.h> of Linux 5.6 */
#endif

int mig__nbd_harden_daemon(struct mig_ctx *ctx, unsigned *applied_out)
{
    unsigned applied = 0;
    int rc = 0;

    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) {
        applied |= MIG__NBD_HARDEN_MLOCK;
    } else {
        int e = errno;
        MIG_LOG(ctx, ERROR, "mlockall: %s (needs CAP_IPC_LOCK or a large enough "
                            "RLIMIT_MEMLOCK, e.g. LimitMEMLOCK=infinity)", strerror(e));
        rc = e == ENOMEM ? -MIG_ENOMEM : -MIG_EPERM;
    }
    if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0)
        applied |= MIG__NBD_HARDEN_IO_FLUSHER;
    else
        MIG_LOG(ctx, WARN, "PR_SET_IO_FLUSHER: %s (needs Linux >= 5.6 and CAP_SYS_RESOURCE); "
                           "going on without it", strerror(errno));
    if (applied_out)
        *applied_out = applied;
    return rc;
}
