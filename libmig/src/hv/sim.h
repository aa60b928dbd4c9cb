/*
 * sim.h: what the test-guest pieces share: the guest memory layout, the
 * config grammar, and the message layer used between the backend, the host
 * and the guests (SOCK_SEQPACKET, one text message per packet, file
 * descriptors attached with SCM_RIGHTS). See docs/sim-backend.md.
 *
 * Files: sim-proto.c (messages, config, memory layout helpers), sim-guest.c
 * (the guest process), sim-host.c (the host and the public client calls),
 * sim-ram.c (the host's own memory),
 * sim.c (the "sim:" backend ops).
 */
#ifndef MIG_SIM_H
#define MIG_SIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmig/sim.h>

#include "mig-internal.h"

#define MIG_SIM_PAGE            4096u
#define MIG_SIM_MSG_MAX         65536u /* bytes: largest message on any sim socket */
#define MIG_SIM_MAX_FDS         4u
#define MIG_SIM_TIMEOUT_MS      10000 /* default bound on a request round trip */
#define MIG_SIM_INCOMING_SUFFIX "--incoming"

/* ---- guest memory layout --------------------------------------------------
 * pfn 0: struct mig__sim_meta; pfn 1: struct mig__sim_clock (the ticker's
 * page); pfn 2 .. 2+table_pages-1: uint32_t gen[nr_pages], the generation of
 * every page; from data_pfn on: workload pages. All of it migrates. */
#define MIG_SIM_MAGIC      0x3130434d4953474dull /* "MGSIMC01" */
#define MIG_SIM_PAGE_MAGIC 0x5347u

struct mig__sim_meta {
    uint64_t magic;
    uint64_t nr_pages;    /* pages in the memfd */
    uint64_t table_pfn;   /* first page of the generation table */
    uint64_t table_pages; /* pages */
    uint64_t data_pfn;    /* first workload page */
};

struct mig__sim_clock {
    uint64_t mono_ns;   /* CLOCK_MONOTONIC at the last tick */
    uint64_t real_ns;   /* CLOCK_REALTIME at the last tick (other boot) */
    uint64_t boot_hash; /* hash of /proc/sys/kernel/random/boot_id of that tick */
    uint64_t seq;       /* ticks */
};

/* The first bytes of every workload page the guest wrote. */
struct mig__sim_page_hdr {
    uint64_t pfn;
    uint32_t gen;
    uint16_t magic; /* MIG_SIM_PAGE_MAGIC */
    uint16_t pad;
    uint64_t csum;  /* mig__sim_page_csum() of pfn, gen and the rest */
    uint64_t spare; /* zero; keeps the body an even number of words */
};

static inline uint64_t mig__sim_table_pages(uint64_t nr_pages)
{
    return (nr_pages * 4 + MIG_SIM_PAGE - 1) / MIG_SIM_PAGE;
}

/* Checksum of a page's body (bytes after the header) keyed by pfn and gen. */
MIG_HIDDEN uint64_t mig__sim_page_csum(uint64_t pfn, uint32_t gen, const void *page);
/* Fill a page as the workload does; *rng is advanced. fill_zero: body zero. */
MIG_HIDDEN void mig__sim_page_fill(void *page, uint64_t pfn, uint32_t gen, bool fill_zero,
                                   uint64_t *rng);
/* 0 if the page is consistent with 'gen' (gen 0: all zero), else -MIG_ECRC. */
MIG_HIDDEN int mig__sim_page_check(const void *page, uint64_t pfn, uint32_t gen);

/* ---- config ------------------------------------------------------------- */

enum mig__sim_pattern { MIG_SIM_UNIFORM, MIG_SIM_HOTSET, MIG_SIM_SEQUENTIAL };
enum mig__sim_tracking { MIG_SIM_TRACK_AUTO, MIG_SIM_TRACK_ASYNC, MIG_SIM_TRACK_SYNC };

#define MIG_SIM_DIRTY_MAX UINT64_MAX

struct mig__sim_config {
    uint64_t mem_bytes; /* bytes, multiple of the page size */
    unsigned vcpus;     /* workload threads */
    uint64_t dirty_bps; /* bytes/s written by all vCPUs; MIG_SIM_DIRTY_MAX: flat out */
    enum mig__sim_pattern pattern;
    unsigned hot_pct;   /* hotset: percent of the touched pages that are hot */
    unsigned hot_share; /* hotset: percent of writes that go to them */
    bool fill_zero;     /* page bodies zero instead of random */
    unsigned touch_pct; /* percent of workload pages ever written */
    unsigned throttle;  /* percent: initial (the admin's) throttle */
    enum mig__sim_tracking tracking;
    uint64_t seed;
    unsigned tick_us; /* us between clock ticks */
    bool prefill;     /* write every touched page once before the workload starts */
    uint64_t disk_bytes; /* bytes: a managed disk of this size (0: none), multiple of 1 MiB */
    uint64_t disk_bps;   /* bytes/s the guest writes to its disk (4 KiB blocks) */
};

/* ---- the host's own memory (sim-ram.c, simhost --mem) ----------------
 * One file (a memfd, or on a private tmpfs of huge pages when the host may
 * mount one), populated when the host starts; each guest's memory is an
 * extent of it (aligned to MIG_SIM_RAM_ALIGN), cleared by a scrubber thread
 * after the guest goes. */
#define MIG_SIM_RAM_ALIGN (2u << 20)

struct mig__sim_ram;
/* Allocate and populate 'bytes' (rounded down to the alignment). */
MIG_HIDDEN int mig__sim_ram_new(uint64_t bytes, struct mig__sim_ram **r_out);
MIG_HIDDEN void mig__sim_ram_free(struct mig__sim_ram *r);
/* The memfd (owned by r; guests and backends get dups of it). */
MIG_HIDDEN int mig__sim_ram_fd(const struct mig__sim_ram *r);
MIG_HIDDEN uint64_t mig__sim_ram_size(const struct mig__sim_ram *r);
/* Whether it has 2 MiB pages (a private huge tmpfs; needs CAP_SYS_ADMIN). */
MIG_HIDDEN bool mig__sim_ram_huge(const struct mig__sim_ram *r);
/* Free bytes, including those still being scrubbed; the largest free extent. */
MIG_HIDDEN uint64_t mig__sim_ram_free_bytes(struct mig__sim_ram *r);
MIG_HIDDEN uint64_t mig__sim_ram_largest(struct mig__sim_ram *r);
/* An extent of at least 'bytes', all zero: its offset in *off_out.
 * -MIG_ENOSPC when no free extent is large enough (after waiting for the
 * scrubber, if it has work). */
MIG_HIDDEN int mig__sim_ram_alloc(struct mig__sim_ram *r, uint64_t bytes, uint64_t *off_out);
/* Give an extent back (as allocated); it is free again once scrubbed. */
MIG_HIDDEN void mig__sim_ram_release(struct mig__sim_ram *r, uint64_t off, uint64_t bytes);

/* ---- NICs (sim-net.c) ---------------------------------------------------- */
/* 'config' plus netns=PID when it lists vifs (what info() sends). */
MIG_HIDDEN int mig__sim_net_info(const char *config, pid_t pid, char *out, size_t cap);
/* Destination, at COMMIT: bring every vif here and plug it (hotplug). */
MIG_HIDDEN int mig__sim_net_plug(struct mig_ctx *ctx, const char *config, const char *domain);
/* Source, after COMMIT: remove what is left of the vifs' ports here. */
MIG_HIDDEN void mig__sim_net_unplug(struct mig_ctx *ctx, const char *config);

/* Parse "mem=2G,vcpus=2,dirty=200M,pattern=hotset,...". Unknown keys fail. */
MIG_HIDDEN int mig__sim_config_parse(const char *text, struct mig__sim_config *cfg_out);
/* A 64-bit finaliser (murmur3's): page checksums, the disk's write sequence. */
MIG_HIDDEN uint64_t mig__sim_mix64(uint64_t x);
/* Parse a size with optional K/M/G/T suffix (powers of 1024). */
MIG_HIDDEN int mig__sim_parse_size(const char *text, uint64_t *out);

/* ---- messages ------------------------------------------------------------
 * One request or response per SOCK_SEQPACKET packet: text, up to
 * MIG_SIM_MSG_MAX bytes, optionally carrying up to MIG_SIM_MAX_FDS
 * descriptors. Requests: "VERB ARG...". Responses: "ok KEY=VALUE ..." or
 * "err ERRNAME text". */

/* Send 'text' with 'nfds' descriptors (borrowed). */
MIG_HIDDEN int mig__sim_send(int sock, const char *text, const int *fds, unsigned nfds);
/* Receive one message into buf (NUL-terminated). fds_out/nfds_inout: room for
 * descriptors (caller closes what it gets); extra ones are closed. 'timeout_ms'
 * < 0 waits forever. Returns 0, -MIG_EPEER on EOF, -MIG_ETIMEOUT. */
MIG_HIDDEN int mig__sim_recv(int sock, char *buf, size_t cap, int *fds_out, unsigned *nfds_inout,
                             int timeout_ms);
/* Send a request and receive its response; an "err" response becomes its
 * negative code. resp gets the text after "ok " (may be NULL). */
MIG_HIDDEN int mig__sim_call(int sock, const char *req, char *resp, size_t cap, int *fds_out,
                             unsigned *nfds_inout, int timeout_ms);
/* Connect to DIR/control.sock; caller closes *sock_out. */
MIG_HIDDEN int mig__sim_connect(const char *dir, int *sock_out);
/* One request to the host at DIR on a fresh connection. */
MIG_HIDDEN int mig__sim_host_call(const char *dir, const char *req, char *resp, size_t cap,
                                  int *fds_out, unsigned *nfds_inout);
/* Format an error response for code rc (negative). */
MIG_HIDDEN void mig__sim_err(char *buf, size_t cap, int rc, const char *what);
/* Value of KEY in "k=v k=v" text (values end at space or newline). */
MIG_HIDDEN bool mig__sim_kv(const char *text, const char *key, char *val, size_t cap);
MIG_HIDDEN bool mig__sim_kv_u64(const char *text, const char *key, uint64_t *out);
MIG_HIDDEN bool mig__sim_kv_i64(const char *text, const char *key, int64_t *out);
/* Parse one status line (as "status" answers) into st. */
MIG_HIDDEN void mig__sim_status_parse(const char *line, struct mig_sim_guest_status *st);

/* A hash of this boot's boot_id (to tell whether two CLOCK_MONOTONIC values compare). */
MIG_HIDDEN uint64_t mig__sim_boot_hash(void);

/* The "sim:" backend's ops table (sim.c). */
struct mig__hv_ops;
MIG_HIDDEN extern const struct mig__hv_ops mig__hv_sim_ops;

/* ---- test-only guest commands (tests link the internal library) ---------- */

/* Ask guest NAME at DIR to write the given pages now (as its workload would). */
MIG_HIDDEN int mig__sim_guest_touch(const char *dir, const char *name, const uint64_t *pfns,
                                    unsigned n);

/* ---- the guest's managed disk (sim-disk.c) ------------------------------ */

#define MIG_SIM_DISK_TAG (1ull << 62) /* block headers' "pfn": TAG | block number */
#define MIG_SIM_DISK_NAME "disk0"     /* DIR/disks/GUEST/disk0.{img,nbd,ctl} */

struct mig__sim_disk;
/* A disk of 'bytes' (4 KiB blocks) served over NBD at 'sock'; writes follow
 * the sequence of 'seed'. Nothing is connected yet. */
MIG_HIDDEN int mig__sim_disk_new(const char *sock, uint64_t bytes, uint64_t seed,
                                 struct mig__sim_disk **d_out);
/* The export moved (the guest was renamed at commit): reconnect there. */
MIG_HIDDEN void mig__sim_disk_set_socket(struct mig__sim_disk *d, const char *sock);
MIG_HIDDEN void mig__sim_disk_free(struct mig__sim_disk *d);
/* Write number s of the sequence; returns once acknowledged (reconnecting
 * and retrying while the server is away, up to 30 s or *quit). */
MIG_HIDDEN int mig__sim_disk_write(struct mig__sim_disk *d, uint64_t s, const atomic_int *quit);
/* Read the whole disk back and check it against the first nwrites writes. */
MIG_HIDDEN int mig__sim_disk_check(struct mig__sim_disk *d, uint64_t nwrites, uint64_t *checked_out,
                                   uint64_t *errors_out, int64_t *first_bad_out);

#endif
