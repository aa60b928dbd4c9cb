/*
 * announce.c: one announcement round for a vif: a RARP and one gratuitous
 * ARP per known IP, as if sent by the guest from its new port. On OVS an
 * OpenFlow packet-out with in_port = the vif's port and actions=NORMAL
 * (MAC learning on this bridge, and flooding to the uplinks so physical
 * switches and OVN's activation-strategy=rarp see the move); on a Linux
 * bridge an AF_PACKET socket on the bridge device, which floods the frames
 * to every port (the uplinks' switches learn; the bridge itself delivers
 * to the vif by flooding until the guest talks).
 *
 * Entry points: nh_announce_round, nh_announce_gap_ms.
 */
#include <config.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIG_LOG_MODULE "net"
#include "nh.h"

unsigned nh_announce_gap_ms(const struct nh_opts *o, unsigned round)
{
    return o->first_gap_ms * (round + 1);
}

static void hex(const uint8_t *f, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[f[i] >> 4];
        out[2 * i + 1] = d[f[i] & 15];
    }
    out[2 * n] = 0;
}

static int ofctl_packet_out(struct mig_ctx *ctx, const struct nh_opts *o, const struct nh_vif *v,
                            const uint8_t *frame)
{
    char spec[64 + 2 * NH_FRAME_LEN], h[2 * NH_FRAME_LEN + 1];
    hex(frame, NH_FRAME_LEN, h);
    snprintf(spec, sizeof(spec), "in_port=%d packet=%s actions=NORMAL", v->ofport, h);
    const char *argv[] = {"ovs-ofctl", "packet-out", v->bridge, spec, NULL};
    return nh_run(ctx, o, argv, NULL, NULL, NULL, 5000);
}

static int raw_send(struct mig_ctx *ctx, const struct nh_opts *o, const struct nh_vif *v,
                    const uint8_t frames[][NH_FRAME_LEN], unsigned n)
{
    int fd = -1, rc = 0;
    if (o->dry_run) {
        char m[18];
        nh_mac_format(v->mac, m);
        fprintf(o->dry_run, "# AF_PACKET on %s: RARP from %s", v->bridge, m);
        for (unsigned i = 0; i < v->nips; i++) {
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &v->ips[i], ip, sizeof(ip));
            fprintf(o->dry_run, ", GARP %s", ip);
        }
        fputc('\n', o->dry_run);
        return 0;
    }
    unsigned idx = if_nametoindex(v->bridge);
    if (!idx)
        return -MIG_ENOENT;
    fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0); /* send only: no protocol, no input */
    if (fd < 0) {
        rc = mig__from_errno(errno);
        MIG_LOG(ctx, ERROR, "announce on %s: socket: %s", v->bridge, strerror(errno));
        return rc;
    }
    for (unsigned i = 0; i < n; i++) {
        struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                                  .sll_ifindex = (int)idx,
                                  .sll_halen = 6};
        memset(sll.sll_addr, 0xff, 6);
        if (sendto(fd, frames[i], NH_FRAME_LEN, 0, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
            rc = mig__from_errno(errno);
            MIG_LOG(ctx, ERROR, "announce on %s: %s", v->bridge, strerror(errno));
            break;
        }
    }
    close(fd);
    return rc;
}

int nh_announce_round(struct mig_ctx *ctx, const struct nh_opts *o, struct nh_of *of,
                      const struct nh_vif *v)
{
    uint8_t frames[1 + NH_MAX_IPS][NH_FRAME_LEN];
    unsigned n = 0;
    int rc = 0;
    nh_frame_rarp(v->mac, frames[n++]);
    for (unsigned i = 0; i < v->nips && i < NH_MAX_IPS; i++)
        nh_frame_garp(v->mac, v->ips[i], frames[n++]);
    if (!v->ovs) {
        /* The bridge device's own frames teach the uplinks but not this
         * bridge, which may still hold the MAC on its uplink from the
         * guest's last visit: point its entry at the vif first (it ages as
         * any learned one). */
        char m[18];
        nh_mac_format(v->mac, m);
        const char *argv[] = {"bridge", "fdb", "replace", m, "dev", v->name, "master", "dynamic",
                              NULL};
        rc = nh_run(ctx, o, argv, NULL, NULL, NULL, 5000);
        if (rc < 0)
            MIG_LOG(ctx, WARN, "%s: cannot point %s's bridge entry at it", v->name, m);
        return raw_send(ctx, o, v, frames, n);
    }
    if (v->ofport < 0)
        return -MIG_ENOENT;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        if (of && !o->dry_run && !o->use_ofctl)
            rc = nh_of_packet_out(of, v->ofport, frames[i], NH_FRAME_LEN);
        else
            rc = ofctl_packet_out(ctx, o, v, frames[i]);
    }
    if (rc == 0 && of && !o->dry_run && !o->use_ofctl)
        rc = nh_of_barrier(of, 2000);
    return rc;
}
