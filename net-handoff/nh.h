/*
 * nh.h: net-handoff, the network side of a migration (prefix nh_).
 *
 * Makes a domain's traffic follow it at COMMIT, whatever the guest does:
 *  - source, before the copy: read each vif's port from the OVSDB (bridge,
 *    VLAN tag, trunks, external_ids iface-id / attached-mac / vm-id) and
 *    send that description to the destination (nh_handoff_encode);
 *  - destination, before the copy: watch the OVSDB for the domain's future
 *    vif ports (ovsdb-client monitor, no polling); the moment one appears,
 *    give it the source's tag/trunks/external_ids and install a flow for the
 *    domain's MAC towards it, with this migration's cookie;
 *  - destination, at COMMIT: announce every MAC from its new port (RARP, and
 *    gratuitous ARP for the known IPs), in rounds with growing gaps
 *    (50 ms, 100 ms, ...), by OpenFlow packet-out; on a Linux bridge, by an
 *    AF_PACKET socket on the bridge device;
 *  - source, at COMMIT: forward the domain's MACs to the uplink (the
 *    inter-host link or tunnel port) for the settle period;
 *  - both, after settle (or on abort): delete every flow of this migration
 *    by cookie. nh_cleanup_domain() removes every flow and port this tool
 *    ever added for a domain (crash recovery), idempotently.
 *
 * Talking to OVS: ovs-vsctl / ovs-ofctl / ovsdb-client run with argv arrays
 * (run.c), and OpenFlow 1.0 spoken directly on the bridge's management
 * socket for the switchover path (openflow.c). A dry-run sink prints every
 * command instead of running it (direct OpenFlow messages as the ovs-ofctl
 * command that would do the same), for golden tests.
 *
 * Nothing outside net-handoff/ knows OVS exists. The library is compiled
 * into libmig-internal (net-handoff/local.am); the engine reaches it only
 * through the hook class in hook.c (libmig/src/session/hooks.h).
 *
 * Errors: 0 or a negative libmig code (mig-errors.h). Threads: one
 * nh_handoff is used by one thread at a time, except for its own watcher
 * and announcer threads, which it owns and joins.
 */
#ifndef NH_H
#define NH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mig-internal.h"

#define NH_MAX_VIFS 8
#define NH_MAX_IPS 4
#define NH_MAX_FWD 16 /* ports a source forwards a MAC to without --net uplink= */
#define NH_NAME_MAX 64     /* bridge, port and interface names (IFNAMSIZ is 16) */
#define NH_VAL_MAX 128     /* external_ids values */
#define NH_BLOB_MAX 8192   /* bytes: an encoded description */
#define NH_FRAME_LEN 60    /* bytes: RARP/GARP frames, padded to the Ethernet minimum */
#define NH_COOKIE_TAG 0x4d4cull /* "ML" in the top 16 bits of every cookie we set */

/* ---- frames (frame.c) --------------------------------------------------- */

/* RARP "reverse request" from 'mac' (what QEMU's announce sends):
 * broadcast, ethertype 0x8035, sender = target = mac, IPs 0. */
void nh_frame_rarp(const uint8_t mac[6], uint8_t out[NH_FRAME_LEN]);
/* Gratuitous ARP request from mac/ip (network order): broadcast, sender and
 * target IP both 'ip', target MAC zero. */
void nh_frame_garp(const uint8_t mac[6], uint32_t ip_be, uint8_t out[NH_FRAME_LEN]);
/* "02:00:00:00:02:10" <-> bytes. Parse: 0 or -MIG_EPARSE. */
int nh_mac_parse(const char *text, uint8_t mac_out[6]);
void nh_mac_format(const uint8_t mac[6], char out[18]);

/* ---- running commands (run.c) ------------------------------------------- */

/* How nh reaches OVS. Strings borrowed. */
struct nh_opts {
    const char *rundir;     /* OVS run dir (db.sock, BR.mgmt); NULL: $OVS_RUNDIR or
                             * /var/run/openvswitch */
    const char *uplink;     /* source: port towards the other hosts; NULL: flood */
    unsigned settle_ms;     /* ms: source forwarding and destination flows kept (default 2000) */
    unsigned rounds;        /* announcement rounds (default 5) */
    unsigned first_gap_ms;  /* ms: gap after the first round; grows by itself each round (50) */
    unsigned port_wait_ms;  /* ms: at COMMIT, wait this long for the vif port (default 1000;
                             * it delays the COMMIT-ACK, so it stays short) */
    bool use_ofctl;         /* switchover path through forked ovs-ofctl instead of direct
                             * OpenFlow (slower; for comparison) */
    FILE *dry_run;          /* non-NULL: print every command there, run none (borrowed) */
};

void nh_opts_init(struct nh_opts *o);

/* Run argv (argv[0] looked up in PATH) with OVS_RUNDIR set from opts, stdin
 * from 'in' (NULL: /dev/null), stdout captured into *out (caller frees; NULL:
 * discarded), within timeout_ms. Dry run: print the command line and return
 * 0 with *out = "" (or 'dry_out' when given). Nonzero exit: -MIG_BACKEND
 * with stderr logged. */
int nh_run(struct mig_ctx *ctx, const struct nh_opts *o, const char *const *argv, const char *in,
           char **out, const char *dry_out, unsigned timeout_ms);
/* Print a command line the way nh_run's dry run does (shell-quoted). */
void nh_print_argv(FILE *f, const char *const *argv);
/* The OVS run dir nh uses (borrowed: opts, environment or the default). */
const char *nh_rundir(const struct nh_opts *o);

/* ---- OVSDB and flows (ovs.c) -------------------------------------------- */

/* One vif of the domain, as the source sees it (and as it travels). */
struct nh_vif {
    uint8_t mac[6];
    uint32_t ips[NH_MAX_IPS];           /* network order */
    unsigned nips;
    char name[NH_NAME_MAX];             /* port/interface name on this host */
    char bridge[NH_NAME_MAX];           /* bridge it is on ("" unknown) */
    bool ovs;                           /* bridge is an OVS bridge (else Linux bridge) */
    int tag;                            /* VLAN tag, -1 none */
    char trunks[NH_VAL_MAX];            /* "10,20" or "" */
    char iface_id[NH_VAL_MAX];          /* external_ids:iface-id, "" none */
    char attached_mac[NH_VAL_MAX];      /* external_ids:attached-mac */
    char vm_id[NH_VAL_MAX];             /* external_ids:vm-id */
    int ofport;                         /* OpenFlow port number on this host, -1 unknown */
};

/* Fill v's bridge/tag/trunks/external_ids/ofport from the OVSDB by v->name
 * (one ovs-vsctl call). A port not on any OVS bridge but enslaved to a
 * Linux bridge gets ovs=false and that bridge; -MIG_NOENT if neither. */
int nh_ovs_read_port(struct mig_ctx *ctx, const struct nh_opts *o, struct nh_vif *v);
/* Give port 'name' the tag/trunks/external_ids of 'src' (one ovs-vsctl call). */
/* The ports of bridge 'br' that carry VLAN 'vlan' (0: untagged) towards
 * other hosts: every port without an access tag whose trunks (none: all)
 * include it, not 'self' and not the bridge's own port; their OpenFlow
 * numbers in ports[] (at most NH_MAX_FWD; one ovs-vsctl call). */
int nh_ovs_trunk_ports(struct mig_ctx *ctx, const struct nh_opts *o, const char *br,
                       const char *self, int vlan, int *ports, unsigned *nports);
/* Its parser, on that call's output (modified in place). */
int nh_ovs_parse_trunk_ports(char *out, const char *br, const char *self, int vlan, int *ports,
                             unsigned *nports);
int nh_ovs_apply_meta(struct mig_ctx *ctx, const struct nh_opts *o, const char *name,
                      const struct nh_vif *src);
/* Delete every flow whose cookie matches value/mask on bridge 'br'. */
int nh_ovs_del_cookie(struct mig_ctx *ctx, const struct nh_opts *o, const char *br,
                      uint64_t value, uint64_t mask);
/* Our cookies: tag(16) | domain hash(24) | migration(24). */
uint64_t nh_cookie(const char *domain, uint32_t migration);
uint64_t nh_cookie_domain_mask(void);

/* What a vif hotplug script does (xl's vif-openvswitch / vif-bridge), used
 * by the test-guest backend to attach and detach its vifs: add 'ifname' to
 * 'bridge' (OVS or Linux bridge, whichever it is), marked with
 * external_ids:migrate-live-domain=domain on OVS; remove it. Idempotent. */
int nh_hotplug_add(struct mig_ctx *ctx, const struct nh_opts *o, const char *bridge,
                   const char *ifname, const char *domain, const uint8_t mac[6]);
int nh_hotplug_remove(struct mig_ctx *ctx, const struct nh_opts *o, const char *ifname);

/* Remove every flow (any bridge) and every stale port (its device gone:
 * ofport -1) this tool added for 'domain'; a live port belongs to the
 * running domain and stays. Idempotent; *bridges_out/ports_out: bridges
 * cleaned, ports removed. */
int nh_cleanup_domain(struct mig_ctx *ctx, const struct nh_opts *o, const char *domain,
                      unsigned *bridges_out, unsigned *ports_out);

/* ---- OpenFlow (openflow.c): direct OpenFlow 1.0 on BR.mgmt -------------- */

struct nh_of;
/* Connect to unix:RUNDIR/BR.mgmt and exchange HELLO. */
int nh_of_open(struct mig_ctx *ctx, const struct nh_opts *o, const char *bridge,
               struct nh_of **of_out);
void nh_of_close(struct nh_of *of); /* NULL-safe */
/* Add "cookie, priority, dl_dst=mac, actions=[VLAN,]output:port" (port < 0:
 * FLOOD). vlan: -1 leave the frame's VLAN as it is (trunk ports, no VLAN);
 * 0 strip_vlan (towards an access port); N mod_vlan_vid:N (from an access
 * port of VLAN N onto a trunk). */
int nh_of_flow_add(struct nh_of *of, uint64_t cookie, uint16_t priority, const uint8_t mac[6],
                   int vlan, int out_port);
/* The same with one output action per port of 'ports' (nports <=
 * NH_MAX_FWD; 0: FLOOD). */
int nh_of_flow_add_ports(struct nh_of *of, uint64_t cookie, uint16_t priority,
                         const uint8_t mac[6], int vlan, const int *ports, unsigned nports);
/* Packet-out 'frame' as if received on in_port, actions=NORMAL. */
int nh_of_packet_out(struct nh_of *of, int in_port, const uint8_t *frame, size_t len);
/* The OpenFlow port number of port 'name' on this bridge (FEATURES_REQUEST):
 * -MIG_ENOENT when the bridge has no such port. */
int nh_of_port_no(struct nh_of *of, const char *name, int *port_out, unsigned timeout_ms);
/* Barrier: returns once the switch has processed everything sent before;
 * an OpenFlow error reply to any of it becomes -MIG_BACKEND. */
int nh_of_barrier(struct nh_of *of, unsigned timeout_ms);
/* Encoders (unit tests check them byte by byte); return the length. */
size_t nh_of_encode_flow_add(uint8_t *buf, size_t cap, uint32_t xid, uint64_t cookie,
                             uint16_t priority, const uint8_t mac[6], int vlan, int out_port);
size_t nh_of_encode_flow_add_ports(uint8_t *buf, size_t cap, uint32_t xid, uint64_t cookie,
                                   uint16_t priority, const uint8_t mac[6], int vlan,
                                   const int *ports, unsigned nports);
size_t nh_of_encode_packet_out(uint8_t *buf, size_t cap, uint32_t xid, int in_port,
                               const uint8_t *frame, size_t len);

/* Flow text as ovs-ofctl takes it (dry runs, the ofctl path). */
void nh_flow_text(char *buf, size_t cap, uint64_t cookie, uint16_t priority, const uint8_t mac[6],
                  int vlan, int out_port);
void nh_flow_text_ports(char *buf, size_t cap, uint64_t cookie, uint16_t priority,
                        const uint8_t mac[6], int vlan, const int *ports, unsigned nports);

/* ---- announcements (announce.c) ----------------------------------------- */

/* One round: RARP + one GARP per IP for every vif (OVS: packet-out from the
 * vif's port; Linux bridge: AF_PACKET on the bridge device). 'of' may be
 * NULL (ofctl path or Linux bridge). */
int nh_announce_round(struct mig_ctx *ctx, const struct nh_opts *o, struct nh_of *of,
                      const struct nh_vif *v);
/* The gap before round r+1 (ms): first_gap_ms * (r + 1). */
unsigned nh_announce_gap_ms(const struct nh_opts *o, unsigned round);

/* ---- a domain's vifs in its description (config.c) ----------------------- */

/* Backends list a domain's vifs in mig__dom_info.config as
 *   vifN=MAC/IFNAME/BRIDGE[/IP[+IP...]]      (N = 0..NH_MAX_VIFS-1)
 * among their own comma-separated keys (Xen: MAC and bridge from the domain
 * configuration, IFNAME vifDOMID.N; sim: from the guest's config). */
struct nh_vif_spec {
    uint8_t mac[6];
    char ifname[NH_NAME_MAX];
    char bridge[NH_NAME_MAX];
    uint32_t ips[NH_MAX_IPS];
    unsigned nips;
};
/* Every vifN entry of 'config' (other keys ignored); -MIG_EPARSE names none. */
int nh_vifs_parse(const char *config, struct nh_vif_spec *out, unsigned max, unsigned *n_out);
/* One entry's value ("MAC/IFNAME/BRIDGE[/IPS]"). */
int nh_vif_parse(const char *value, struct nh_vif_spec *out);
/* Xen's vif syntax "mac=M,bridge=B,vifname=V,ip=A B" -> an entry value. */
int nh_vif_from_xl(const char *xl, char *out, size_t cap);

/* ---- one migration (handoff.c) ------------------------------------------ */

struct nh_handoff;

/* Source: describe 'domain's vifs (MAC, IPs, port name) and read their
 * ports. 'migration' picks the cookie (e.g. from the session id). */
int nh_handoff_new(struct mig_ctx *ctx, const struct nh_opts *o, const char *domain,
                   uint32_t migration, struct nh_handoff **h_out);
int nh_handoff_add_vif(struct nh_handoff *h, const uint8_t mac[6], const char *ifname,
                       const uint32_t *ips, unsigned nips);
/* Source, before the copy: read every vif's port from the OVSDB. */
int nh_src_begin(struct nh_handoff *h);
/* The description for the destination; caller frees *text_out. */
int nh_handoff_encode(const struct nh_handoff *h, char **text_out);
/* Destination: parse the source's description (hostile input: bounded,
 * every field checked). 'ifnames' (may be NULL): the names the incoming
 * domain's vifs will have here, in order (Xen: vifDOMID.N); without it the
 * watcher matches by external_ids:attached-mac or the source's name. */
int nh_handoff_decode(struct mig_ctx *ctx, const struct nh_opts *o, const char *text, size_t len,
                      struct nh_handoff **h_out);
int nh_handoff_set_ifname(struct nh_handoff *h, unsigned vif, const char *ifname);
/* Destination, before COMMIT: the bridge vif's port lands on here ("BR" or
 * xl's "BR.VLAN"), when it is not the source's (a net-map): the OpenFlow
 * connection COMMIT asks for the port's number goes there. Takes effect
 * only while no port has been seen. */
int nh_handoff_set_bridge(struct nh_handoff *h, unsigned vif, const char *bridge);
/* Destination, before the copy: start the OVSDB watcher. */
int nh_dst_begin(struct nh_handoff *h);
/* Destination, at COMMIT: wait (bounded) for each vif's port, make sure
 * its flow is in, announce round 0 now and the other rounds from a thread. */
int nh_dst_commit(struct nh_handoff *h);
/* Source, at COMMIT: forward the MACs to the uplink (or flood). */
int nh_src_commit(struct nh_handoff *h);
/* Both: wait out the settle period (from COMMIT), then delete this
 * migration's flows by cookie; joins the threads. */
int nh_settle(struct nh_handoff *h);
/* Both, on failure before COMMIT: delete this migration's flows, stop threads. */
void nh_abort(struct nh_handoff *h);
/* Milliseconds from the port's appearance (destination) to the end of the
 * first announcement round; 0 if unknown. */
uint64_t nh_port_live_ns(const struct nh_handoff *h, unsigned vif);
unsigned nh_handoff_nvifs(const struct nh_handoff *h);
const struct nh_vif *nh_handoff_vif(const struct nh_handoff *h, unsigned i); /* borrowed */
uint64_t nh_handoff_cookie(const struct nh_handoff *h);
void nh_handoff_free(struct nh_handoff *h); /* NULL-safe; aborts what is still running */

/* ---- the engine hook (hook.c) ------------------------------------------- */

/* Register the "net" hook class on ctx (from mig__hook_register_builtins). */
int mig__net_hook_register(struct mig_ctx *ctx);

#endif
