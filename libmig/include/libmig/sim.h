/*
 * sim.h: the public API of the test-guest host ("sim"), the stand-in for a
 * dom0 that lets CI, the demo and the benchmarks run the real engine on any
 * Linux machine. See docs/sim-backend.md.
 *
 * Entry points: mig_simhost_run (the blocking host loop), mig_sim_guest_main
 * (the guest process, reached by re-executing the program with a hidden
 * subcommand), and client calls that talk to a running host's control socket
 * DIR/control.sock (mig_simhost_create/destroy/rename/status/list/shutdown).
 */
#ifndef LIBMIG_SIM_H
#define LIBMIG_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmig/mig.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How a host runs. Strings are borrowed for the duration of mig_simhost_run. */
struct mig_simhost_config {
    const char *dir;       /* state dir (created if missing): control.sock, guests/, facts.json */
    const char *guest_exe; /* program re-executed for each guest, e.g. "/proc/self/exe" */
    const char
        *guest_subcmd; /* its argv[1]; the program's main hands the rest to mig_sim_guest_main */
    /* Hook for a second service in the same loop (e.g. a migration listener):
     * -1 for none. When extra_fd is readable the loop calls extra_cb; a
     * nonzero return stops the host. */
    int extra_fd;
    int (*extra_cb)(void *opaque, int fd);
    void *extra_opaque; /* borrowed; passed to extra_cb */
    /* The host's own memory (simhost --mem): 0, each guest's memory is a
     * memfd of its own that the kernel fills on first touch; else this many
     * bytes are allocated and populated at start and guests get extents of
     * them, cleared after use, as a hypervisor hands out its heap. A guest
     * that does not fit is refused. */
    uint64_t memory_bytes;
};

/* Serve requests on DIR/control.sock until SIGTERM/SIGINT, a "shutdown"
 * request, or extra_cb says stop; then destroys every guest it owns. Blocks
 * SIGTERM, SIGINT and SIGCHLD in the calling thread and reads them from a
 * signalfd: block them in other threads too (start those threads after this
 * call has begun, or block first) so they reach it. Reaps only its own
 * guests. 0 or a negative code (-MIG_EBUSY: another host serves DIR). */
MIG_EXPORT int mig_simhost_run(struct mig_ctx *ctx, const struct mig_simhost_config *cfg);

/* The guest process. argv[0] is the subcommand; the host passes the rest.
 * Returns the process exit status. */
MIG_EXPORT int mig_sim_guest_main(int argc, char **argv);

/* Verification of a guest's memory after an incoming migration. */
enum mig_sim_verify {
    MIG_SIM_VERIFY_NONE = 0, /* not an incoming guest (or not committed yet) */
    MIG_SIM_VERIFY_RUNNING,
    MIG_SIM_VERIFY_OK,
    MIG_SIM_VERIFY_FAILED,
};

/* One guest as a host reports it. */
struct mig_sim_guest_status {
    char name[80];
    int pid;
    char state[16];     /* "running", "suspended", "incoming", "verifying" */
    char tracking[40];  /* dirty tracking of this guest, as tracking() reports it */
    char config[512];   /* the config it was created with */
    uint64_t mem_bytes; /* bytes */
    uint64_t writes;    /* pages: written by the workload since start */
    uint32_t throttle;  /* percent */
    enum mig_sim_verify verify;
    uint64_t verify_pages;    /* pages checked */
    uint64_t verify_errors;   /* pages that failed */
    int64_t verify_first_bad; /* pfn of the first bad page, -1 if none */
    int64_t downtime_us;      /* us: gap at the first tick after commit; -1 if none */
    uint64_t max_gap_us;      /* us: largest gap between two clock ticks since start */
    bool tracked;             /* a migrating tool is attached (write tracking may be on) */
    /* The managed disk (config disk=SIZE), written through the host's NBD
     * export; checked with memory (verify covers both). */
    uint64_t disk_bytes;      /* bytes; 0: no disk */
    uint64_t disk_writes;     /* 4 KiB writes acknowledged since the guest started */
    uint64_t disk_checked;    /* blocks checked by the last verification */
    uint64_t disk_errors;     /* blocks that differed from the last acknowledged write */
};

/* Create guest NAME with CONFIG ("mem=256M,vcpus=2,dirty=200M,pattern=hotset"). */
MIG_EXPORT int mig_simhost_create(struct mig_ctx *ctx, const char *dir, const char *name,
                                  const char *config);
MIG_EXPORT int mig_simhost_destroy(struct mig_ctx *ctx, const char *dir, const char *name);
MIG_EXPORT int mig_simhost_rename(struct mig_ctx *ctx, const char *dir, const char *name,
                                  const char *new_name);
MIG_EXPORT int mig_simhost_status(struct mig_ctx *ctx, const char *dir, const char *name,
                                  struct mig_sim_guest_status *st_out);
/* All guests; caller frees *list_out with free(). */
MIG_EXPORT int mig_simhost_list(struct mig_ctx *ctx, const char *dir,
                                struct mig_sim_guest_status **list_out, size_t *n_out);
/* Stop guest NAME at a safe point, check all of its memory, let it go on;
 * the verdict is in st_out (verify, verify_pages, verify_errors). */
MIG_EXPORT int mig_simhost_verify(struct mig_ctx *ctx, const char *dir, const char *name,
                                  struct mig_sim_guest_status *st_out);
/* Ask the host to destroy its guests and exit. */
MIG_EXPORT int mig_simhost_shutdown(struct mig_ctx *ctx, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
