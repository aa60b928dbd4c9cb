/*
 * xen-internal.h: what the xen: backend's files share (xen.c, xen-config.c)
 * and its unit tests see. Includes libxl: only hv/xen*.c and the Xen unit
 * tests include this header.
 */
#ifndef MIG_XEN_INTERNAL_H
#define MIG_XEN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <libxl.h>

#include "mig-internal.h"

#define MIG_XEN_MAX_MAP  64
#define MIG_XEN_MAX_DIRS 8

/* One SRC=DST pair of a disk-map or net-map. */
struct mig__xen_map_entry {
    char *src; /* owned */
    char *dst; /* owned */
};

/* The destination's rewrite rules (backend arg). */
struct mig__xen_rules {
    struct mig__xen_map_entry disks[MIG_XEN_MAX_MAP];
    unsigned n_disks;
    struct mig__xen_map_entry nets[MIG_XEN_MAX_MAP];
    unsigned n_nets;
    char *kernel_dirs[MIG_XEN_MAX_DIRS]; /* owned, each ends without '/' */
    unsigned n_kernel_dirs;
};

/* Parse "SRC=DST;SRC=DST" into map (appends). -MIG_EINVAL on a bad pair. */
int mig__xen_parse_map(const char *text, struct mig__xen_map_entry *map, unsigned max,
                       unsigned *n_inout);
/* Parse "DIR;DIR" into rules->kernel_dirs (replaces). */
int mig__xen_parse_dirs(const char *text, struct mig__xen_rules *rules);
void mig__xen_rules_dispose(struct mig__xen_rules *rules);

/* Apply the allow-list of docs/xen-stream.md to a configuration that came
 * from the network: refuse (-MIG_EPERM, reason in why[]) anything not
 * allowed, rewrite disk targets and bridges through the maps. Touches
 * nothing outside cfg; runs before any domain is built. */
int mig__xen_config_sanitize(struct mig_ctx *ctx, const struct mig__xen_rules *rules,
                             libxl_domain_config *cfg, char *why, size_t why_len);

/* ---- vifs (xen-net.c) ---- */

/* The domain's vifs as the network handoff reads them from a domain
 * description: ",vif0=MAC/IFNAME/BRIDGE[/IP+IP],vif1=..." into out (cap
 * bytes, NUL-terminated; "" without vifs). IFNAME is the nic's ifname
 * (vifname=) or libxl's vifDOMID.DEVID; BRIDGE xl's default xenbr0 when
 * unset; only ip='s IPv4 addresses (at most 4). A vif whose names the
 * handoff cannot take (over 15 characters, odd characters) or beyond the
 * eighth is left out and counted in *skipped_out (may be NULL). Returns the
 * number listed, or -MIG_ETOOBIG. */
int mig__xen_vifs_text(const libxl_domain_config *cfg, uint32_t domid, char *out, size_t cap,
                       unsigned *skipped_out);

/* ---- HVM (xen-hvm.c) ---- */

/* Refuse (-MIG_ENOTSUP, reason in why[]) an HVM configuration that cannot
 * move: passthrough, nested HVM, a stub-domain or traditional device
 * model, QXL/SPICE, firmware files, serial/USB backends naming host files
 * or devices. Runs on the source before round 0 and on the destination on
 * the configuration that came from the network. */
int mig__xen_hvm_check(struct mig_ctx *ctx, const libxl_domain_config *cfg, char *why,
                       size_t why_len);
/* Switch QEMU's own dirty log (xen-set-global-dirty-log) for domid; the
 * command's round trip in us goes to *rtt_us_out (may be NULL). */
int mig__xen_hvm_dm_logdirty(struct mig_ctx *ctx, uint32_t domid, bool enable,
                             uint64_t *rtt_us_out);
/* QMP stop, then xen-save-devices-state into an unlinked file under dir
 * (NULL: /tmp) passed to QEMU as an fd. *buf_out (caller frees) holds the
 * state, *ms_out the time it took. */
int mig__xen_hvm_save_dm(struct mig_ctx *ctx, uint32_t domid, const char *dir, uint8_t **buf_out,
                         uint32_t *len_out, uint64_t *ms_out);
/* QEMU's physmap keys as libxl packs them (EMULATOR_XENSTORE_DATA body);
 * *buf_out NULL and *len_out 0 when QEMU mapped nothing. Caller frees. */
int mig__xen_hvm_xenstore_data(struct mig_ctx *ctx, uint32_t domid, uint8_t **buf_out,
                               uint32_t *len_out);

#endif
