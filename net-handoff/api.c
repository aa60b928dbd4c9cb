/*
 * api.c: the exported mig_net_* calls (libmig/include/libmig/net.h) for
 * the command: show a port, announce by hand, clean up a domain, print a
 * dry-run plan of a whole handoff.
 *
 * Entry points: mig_net_show, mig_net_announce, mig_net_cleanup,
 * mig_net_plan, mig_net_vif_from_xl.
 */
#include <config.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmig/net.h>

#define MIG_LOG_MODULE "net"
#include "nh.h"

static void opts(struct nh_opts *o, const char *rundir, FILE *dry_run)
{
    nh_opts_init(o);
    o->rundir = rundir;
    o->dry_run = dry_run;
}

int mig_net_show(struct mig_ctx *ctx, const char *rundir, const char *ifname, FILE *out)
{
    struct nh_opts o;
    struct nh_vif v = {.tag = -1, .ofport = -1};
    opts(&o, rundir, NULL);
    if (strlen(ifname) >= sizeof(v.name))
        return -MIG_EINVAL;
    strcpy(v.name, ifname);
    int rc = nh_ovs_read_port(ctx, &o, &v);
    if (rc < 0)
        return rc;
    fprintf(out, "port: %s\nbridge: %s (%s)\n", v.name, v.bridge, v.ovs ? "Open vSwitch" : "Linux bridge");
    if (v.ovs) {
        fprintf(out, "ofport: %d\n", v.ofport);
        if (v.tag >= 0)
            fprintf(out, "tag: %d\n", v.tag);
        else
            fprintf(out, "tag: none\n");
        fprintf(out, "trunks: %s\n", v.trunks[0] ? v.trunks : "none");
        fprintf(out, "iface-id: %s\nattached-mac: %s\nvm-id: %s\n", v.iface_id,
                v.attached_mac, v.vm_id);
    }
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int mig_net_announce(struct mig_ctx *ctx, const char *rundir, const char *ifname, const char *mac,
                     const char *const *ips, unsigned rounds, FILE *dry_run)
{
    struct nh_opts o;
    struct nh_vif v = {.tag = -1, .ofport = -1};
    struct nh_of *of = NULL;
    int rc;
    opts(&o, rundir, dry_run);
    if (strlen(ifname) >= sizeof(v.name) || nh_mac_parse(mac, v.mac) < 0)
        return -MIG_EINVAL;
    strcpy(v.name, ifname);
    for (unsigned i = 0; ips && ips[i]; i++) {
        if (v.nips >= NH_MAX_IPS || inet_pton(AF_INET, ips[i], &v.ips[v.nips]) != 1)
            return -MIG_EINVAL;
        v.nips++;
    }
    if (dry_run) { /* announce as if the port were an OVS port numbered 1 */
        v.ovs = true;
        v.ofport = 1;
        strcpy(v.bridge, "BRIDGE");
    } else if ((rc = nh_ovs_read_port(ctx, &o, &v)) < 0) {
        return rc;
    }
    if (v.ovs && !dry_run && (rc = nh_of_open(ctx, &o, v.bridge, &of)) < 0)
        return rc;
    rc = 0;
    for (unsigned r = 0; r < (rounds ? rounds : o.rounds) && rc == 0; r++) {
        if (r) {
            if (dry_run)
                fprintf(dry_run, "# after %u ms:\n", nh_announce_gap_ms(&o, r - 1));
            else
                sleep_ms(nh_announce_gap_ms(&o, r - 1));
        }
        rc = nh_announce_round(ctx, &o, of, &v);
    }
    nh_of_close(of);
    return rc;
}

int mig_net_cleanup(struct mig_ctx *ctx, const char *rundir, const char *domain, FILE *dry_run,
                    unsigned *bridges_out, unsigned *ports_out)
{
    struct nh_opts o;
    opts(&o, rundir, dry_run);
    return nh_cleanup_domain(ctx, &o, domain, bridges_out, ports_out);
}

int mig_net_vif_from_xl(const char *xl, char *out, size_t cap)
{
    return nh_vif_from_xl(xl, out, cap);
}

int mig_net_plan(struct mig_ctx *ctx, const char *domain, const char *const *vifs,
                 const char *const *dest_ifnames, const char *const *optv, FILE *out)
{
    struct nh_opts o;
    struct nh_handoff *src = NULL, *dst = NULL;
    char *text = NULL;
    int rc;
    opts(&o, NULL, out);
    o.rundir = "/var/run/openvswitch";
    for (unsigned i = 0; optv && optv[i]; i++) {
        const char *v = strchr(optv[i], '=');
        if (!v)
            return -MIG_EINVAL;
        v++;
        if (!strncmp(optv[i], "uplink=", 7))
            o.uplink = v;
        else if (!strncmp(optv[i], "settle=", 7))
            o.settle_ms = (unsigned)atoi(v);
        else if (!strncmp(optv[i], "rounds=", 7))
            o.rounds = (unsigned)atoi(v);
        else if (!strncmp(optv[i], "gap=", 4))
            o.first_gap_ms = (unsigned)atoi(v);
        else if (!strncmp(optv[i], "rundir=", 7))
            o.rundir = v;
        else if (!strncmp(optv[i], "ofctl=", 6) || !strncmp(optv[i], "wait=", 5))
            ; /* the plan prints ovs-ofctl lines either way */
        else
            return -MIG_EINVAL;
    }
    rc = nh_handoff_new(ctx, &o, domain, 1, &src);
    for (unsigned i = 0; rc == 0 && vifs[i]; i++) {
        struct nh_vif_spec s;
        rc = nh_vif_parse(vifs[i], &s);
        if (rc == 0)
            rc = nh_handoff_add_vif(src, s.mac, s.ifname, s.ips, s.nips);
    }
    if (rc < 0)
        goto out;
    fprintf(out, "# source, before the copy\n");
    rc = nh_src_begin(src);
    if (rc == 0)
        rc = nh_handoff_encode(src, &text);
    if (rc == 0)
        rc = nh_handoff_decode(ctx, &o, text, strlen(text), &dst);
    for (unsigned i = 0; rc == 0 && dest_ifnames && dest_ifnames[i]; i++)
        rc = nh_handoff_set_ifname(dst, i, dest_ifnames[i]);
    if (rc < 0)
        goto out;
    fprintf(out, "# destination, before the copy\n");
    rc = nh_dst_begin(dst);
    fprintf(out, "# destination, when the vif port appears, and at COMMIT\n");
    if (rc == 0)
        rc = nh_dst_commit(dst);
    fprintf(out, "# source, after COMMIT\n");
    if (rc == 0)
        rc = nh_src_commit(src);
    fprintf(out, "# destination, after settle\n");
    if (rc == 0)
        rc = nh_settle(dst);
    fprintf(out, "# source, after settle\n");
    if (rc == 0)
        rc = nh_settle(src);
out:
    free(text);
    nh_handoff_free(src);
    nh_handoff_free(dst);
    return rc;
}
