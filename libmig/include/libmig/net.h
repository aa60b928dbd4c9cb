/*
 * net.h: the network handoff's command-line entry points (net-handoff/).
 * A migration drives the handoff itself (the "net" hook); these are for an
 * admin: inspect a vif's port, announce a domain by hand, clean up after a
 * crash, and print what a handoff would do (dry run).
 *
 * Every call: 0 or a negative libmig code. 'rundir' is the Open vSwitch run
 * directory (NULL: $OVS_RUNDIR or /var/run/openvswitch). 'dry_run' non-NULL:
 * print every command there instead of running it.
 */
#ifndef LIBMIG_NET_H
#define LIBMIG_NET_H

#include <stdio.h>

#include <libmig/mig.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Print the port of vif 'ifname' as the handoff reads it (bridge, VLAN tag,
 * trunks, external_ids, ofport), one "key: value" line each, to 'out'. */
MIG_EXPORT int mig_net_show(struct mig_ctx *ctx, const char *rundir, const char *ifname,
                            FILE *out);
/* Announce 'mac' (and the IPv4 addresses 'ips', may be NULL) from port
 * 'ifname': 'rounds' rounds with growing gaps. */
MIG_EXPORT int mig_net_announce(struct mig_ctx *ctx, const char *rundir, const char *ifname,
                                const char *mac, const char *const *ips, unsigned rounds,
                                FILE *dry_run);
/* Remove every flow and every stale port this tool added for 'domain'
 * (idempotent). *bridges_out / *ports_out: bridges cleaned, ports removed. */
MIG_EXPORT int mig_net_cleanup(struct mig_ctx *ctx, const char *rundir, const char *domain,
                               FILE *dry_run, unsigned *bridges_out, unsigned *ports_out);
/* Print, as a dry run, every command both hosts would run to hand over
 * 'domain' whose vifs are 'vifs' ("MAC/IFNAME/BRIDGE[/IPS]" entries) with
 * the given options ("uplink=PORT", "settle=MS", "rounds=N", ...: as
 * --net). 'dest_ifnames' may name the vifs' new names (NULL: the same). */
MIG_EXPORT int mig_net_plan(struct mig_ctx *ctx, const char *domain, const char *const *vifs,
                            const char *const *dest_ifnames, const char *const *opts, FILE *out);
/* Xen's vif syntax "mac=..,bridge=..,vifname=..[,ip=..]" -> the test guest's
 * "MAC/IFNAME/BRIDGE[/IPS]"; -MIG_EPARSE. */
MIG_EXPORT int mig_net_vif_from_xl(const char *xl, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
