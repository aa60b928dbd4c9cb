/*
 * hv-provider.h: the domain backend ops table. Every backend (xen:, sim:)
 * fills every member (a no-op where unused); hv.c checks this at
 * registration and picks the backend by URI prefix. The engine reaches a
 * hypervisor only through this table.
 *
 * Conventions for every op: returns 0 or a negative libmig code; never
 * blocks longer than the bound stated on the op; ownership as commented.
 */
#ifndef MIG_HV_PROVIDER_H
#define MIG_HV_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mig-internal.h"

struct mig__hv;

/* What the destination needs to build the incoming domain; sent by the
 * source in the DOMAIN_INFO record. */
struct mig__dom_info {
    char name[64];          /* domain name on the source, NUL-terminated */
    uint64_t nr_pages;      /* pages: guest memory size / page_size */
    uint32_t page_size;     /* bytes: 4096 */
    uint32_t vcpus;         /* count */
    char config[512];       /* backend-specific, NUL-terminated text (sim: "dirty=..,pattern=..") */
};

/* A state blob (device state, CPU context, ...). Heap data, freed by the owner. */
struct mig__blob {
    uint32_t kind;          /* backend-defined tag */
    size_t len;             /* bytes */
    void *data;             /* malloc'ed */
};

/* Where the guest's memory of a batch lives while mapped (source side). */
struct mig__hv_map;

enum mig__probe {
    MIG_PROBE_ABSENT = 0,     /* no such domain here */
    MIG_PROBE_RUNNING,        /* running under its final name: the commit happened */
    MIG_PROBE_DISCARDED,      /* it was still incoming: discarded now */
};

struct mig__hv_ops {
    const char *name;       /* URI prefix without ':' ("xen", "sim") */
    /* True if the destination needs state before the first page (xen: the
     * domain's configuration and CPU policy, docs/xen-stream.md): the
     * source engine then calls save_state once before it connects, with the
     * guest running, and sends it as a STATE_BLOB ahead of every page; the
     * destination passes it to load_state whenever it arrives. */
    bool setup_state;

    /* ---- both sides ---- */
    /* Open a backend instance. Source: 'arg' names an existing domain.
     * Destination: 'arg' names the host/context where domains are created.
     * Caller frees with close(). May block (library connect). */
    int (*open)(struct mig_ctx *ctx, const char *arg, enum mig_role role,
                struct mig__hv **hv_out);
    /* NULL-safe and idempotent. Source: log-dirty off, original throttle
     * restored; the guest's run state is NOT changed (the engine resumes it
     * explicitly on failure, and leaves it paused when the outcome is in
     * doubt). Destination: an incoming domain not committed is discarded. */
    void (*close)(struct mig__hv *hv);
    /* Host facts as a JSON object text; caller frees *json_out. */
    int (*facts)(struct mig__hv *hv, char **json_out);
    /* Describe the (source) domain. */
    int (*info)(struct mig__hv *hv, struct mig__dom_info *info_out);
    /* Name of the dirty-tracking mechanism in use (static string). */
    const char *(*tracking)(struct mig__hv *hv);
    /* ms the backend's own state adds to the downtime (saving it on the
     * source, restoring it on the destination: xen: HVM's device model),
     * for the downtime prediction; 0 when negligible. Short, never fails. */
    uint64_t (*state_cost_ms)(struct mig__hv *hv);

    /* ---- source side ---- */
    int (*logdirty_enable)(struct mig__hv *hv);
    /* Get-and-clear: set a bit in 'bitmap' (caller-owned, nr_pages bits,
     * zeroed by the caller) for every page written since enable or the last
     * clean, and clear the backend's record of them, atomically with respect to
     * the guest's writes. *ndirty_out: number of bits set. */
    int (*logdirty_clean)(struct mig__hv *hv, unsigned long *bitmap, uint64_t *ndirty_out);
    int (*logdirty_disable)(struct mig__hv *hv);
    /* Map 'n' pages (n <= 1024) for reading: ptrs[i] is the address of pfns[i]'s
     * content until unmap_pages(*map_out). Borrowed; valid only while mapped. */
    int (*map_pages)(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void **ptrs,
                     struct mig__hv_map **map_out);
    void (*unmap_pages)(struct mig__hv *hv, struct mig__hv_map *map); /* NULL-safe */
    /* Throttle the guest's vCPUs to (100 - percent)% of their time; 0 lifts it
     * back to the admin's original setting, which the backend saved. */
    int (*throttle)(struct mig__hv *hv, unsigned percent);
    /* Stop the guest at a safe point (bounded by the backend's timeout). */
    int (*suspend)(struct mig__hv *hv);
    /* Resume a suspended source guest after a failed or cancelled migration. */
    int (*resume)(struct mig__hv *hv);
    /* Device/CPU state at stop-and-copy; caller frees blob->data. */
    int (*save_state)(struct mig__hv *hv, struct mig__blob *blob_out);
    /* Rename the source domain (xl: NAME--migratedaway at COMMIT). */
    int (*rename)(struct mig__hv *hv, const char *new_name);
    /* Destroy the source copy after COMMIT-ACK. */
    int (*destroy)(struct mig__hv *hv);

    /* ---- destination side ---- */
    /* Create the incoming domain, paused, named info->name + "--incoming". */
    int (*create_incoming)(struct mig__hv *hv, const struct mig__dom_info *info);
    /* Write 'n' pages; data holds n * page_size bytes (borrowed for the call). */
    int (*write_pages)(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void *data);
    /* Make 'count' pages from 'pfn' zero. */
    int (*write_zero)(struct mig__hv *hv, uint64_t pfn, uint64_t count);
    /* Optional: writable addresses of 'n' pages of the incoming domain, so
     * the receiver reads their data straight there (instead of write_pages).
     * ptrs[i] stays valid until the domain is committed or discarded; the
     * caller has checked pfns and orders rounds as for write_pages. n == 0
     * asks whether this domain can (0) or not (-MIG_ENOTSUP). Called from
     * the data channels' threads. */
    int (*place_pages)(struct mig__hv *hv, const uint64_t *pfns, unsigned n, void **ptrs);
    /* A blob sent after SWITCHOVER comes only once every data channel has
     * applied the final round (no write_pages/write_zero after it); a
     * setup_state blob comes whenever it arrives, pages may race it. */
    int (*load_state)(struct mig__hv *hv, const struct mig__blob *blob);
    /* Everything applied; the domain is built and paused. May run device
     * attach (inside the downtime window). */
    int (*ready)(struct mig__hv *hv);
    /* Unpause and rename to the final name. */
    int (*commit)(struct mig__hv *hv);
    /* Destroy the incoming domain (any failure before commit). */
    int (*discard)(struct mig__hv *hv);
    /* What became of a domain this host was receiving as 'name' (the name
     * it was to have after COMMIT): running under that name, still an
     * incoming domain (then this call discards it), or absent. Used by
     * resolve when a commit was recorded as started but not as finished. */
    int (*probe)(struct mig__hv *hv, const char *name, enum mig__probe *state_out);

    /* ---- optional (NULL: the backend has nothing to say) ---- */
    /* Destination, after ready(): the incoming domain's vifs as a domain
     * description lists them (",vifN=MAC/IFNAME/BRIDGE[/IP+IP]...", the
     * syntax of net-handoff's nh_vifs_parse), named as on this host (xen:
     * vifNEWDOMID.N). The engine hands it to the hooks (dst_devices): the
     * network handoff learns the names of the ports to announce from. */
    int (*vifs)(struct mig__hv *hv, char *out, size_t cap);
    /* Destination: the incoming domain a receiver that died (its claim
     * left unlocked, journal.c) built as 'name' (xen: NAME--incoming),
     * destroyed; *found_out says whether there was one. Never touches a
     * domain under its final name. */
    int (*reap)(struct mig__hv *hv, const char *name, bool *found_out);
};

/* Every backend instance starts with this. */
struct mig__hv {
    const struct mig__hv_ops *ops;
    struct mig_ctx *ctx;     /* borrowed */
    enum mig_role role;
};

/* ---- the class table (hv.c) ------------------------------------------- */

/* Add a backend class to ctx. Every op must be set: -MIG_EINVAL names the
 * missing one in the log. -MIG_EEXIST for a duplicate name. */
int mig__hv_register(struct mig_ctx *ctx, const struct mig__hv_ops *ops);
/* Register the backends built into this library (builtin.c). */
int mig__hv_register_builtins(struct mig_ctx *ctx);
/* Find the class for "prefix:arg"; *arg_out points into uri (borrowed). */
int mig__hv_lookup(struct mig_ctx *ctx, const char *uri, const struct mig__hv_ops **ops_out,
                   const char **arg_out);
/* hv-fault.c (test builds): wrap an instance so "hv-OP" fault points fail
 * its ops; the wrapper owns 'inner'. */
int mig__hv_fault_wrap(struct mig__hv *inner, struct mig__hv **hv_out);
/* Lookup + open (wrapped for fault injection when MIG_FAULT names hv- points). */
int mig__hv_open(struct mig_ctx *ctx, const char *uri, enum mig_role role, struct mig__hv **hv_out);
/* The domain URI "prefix:NAME[,options]" with 'suffix' appended to NAME
 * (the source's "NAME--migratedaway"): 0, or -MIG_EINVAL / -MIG_ETOOBIG. */
int mig__hv_uri_suffix(const char *uri, const char *suffix, char *out, size_t len);
#define MIG_AWAY_SUFFIX "--migratedaway" /* xl's name for a source at COMMIT */

#endif
