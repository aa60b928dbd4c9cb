/*
 * bench/netops: what one switchover step costs when net-handoff talks to
 * Open vSwitch. Reference (the plain way, forked as a script would):
 * `ovs-ofctl packet-out` per RARP; results: the same RARP over net-handoff's
 * open OpenFlow connection (packet-out + barrier, so the switch has really
 * taken it), a flow add both ways, and an OVSDB read by ovs-vsctl. Medians
 * of 5 runs of N operations each. Needs a running OVS: OVS_RUNDIR set and a
 * bridge with a port (tests/integration/t-net-ovs.sh runs it).
 *
 *   OVS_RUNDIR=DIR bench/netops [--quick] BRIDGE PORT
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nh.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum op { FORK_PACKET_OUT, DIRECT_PACKET_OUT, FORK_FLOW, DIRECT_FLOW, VSCTL_READ };

static int run_op(enum op op, struct nh_opts *o, struct nh_of *of, struct nh_vif *v, int i)
{
    uint8_t f[NH_FRAME_LEN], mac[6] = {0x02, 0x00, 0x00, 0x00, 0x99, (uint8_t)i};
    char flow[160];
    nh_frame_rarp(mac, f);
    switch (op) {
    case FORK_PACKET_OUT:
        return nh_announce_round(NULL, o, NULL, v); /* use_ofctl: ovs-ofctl packet-out */
    case DIRECT_PACKET_OUT: {
        int rc = nh_of_packet_out(of, v->ofport, f, sizeof(f));
        return rc ? rc : nh_of_barrier(of, 2000);
    }
    case FORK_FLOW: {
        nh_flow_text(flow, sizeof(flow), nh_cookie("bench", 1), 50, mac, -1, v->ofport);
        const char *argv[] = {"ovs-ofctl", "add-flow", v->bridge, flow, NULL};
        return nh_run(NULL, o, argv, NULL, NULL, NULL, 5000);
    }
    case DIRECT_FLOW: {
        int rc = nh_of_flow_add(of, nh_cookie("bench", 1), 50, mac, -1, v->ofport);
        return rc ? rc : nh_of_barrier(of, 2000);
    }
    case VSCTL_READ: {
        struct nh_vif r = *v;
        return nh_ovs_read_port(NULL, o, &r);
    }
    }
    return -1;
}

/* Median over 5 runs of the per-operation time (ms). */
static double measure(enum op op, struct nh_opts *o, struct nh_of *of, struct nh_vif *v, int n)
{
    double runs[5];
    for (int r = 0; r < 5; r++) {
        double t0 = now_ms();
        for (int i = 0; i < n; i++)
            if (run_op(op, o, of, v, i) < 0) {
                fprintf(stderr, "netops: operation %d failed\n", (int)op);
                exit(1);
            }
        runs[r] = (now_ms() - t0) / n;
    }
    qsort(runs, 5, sizeof(runs[0]), cmp);
    return runs[2];
}

int main(int argc, char **argv)
{
    int a = 1, n = 20;
    if (argc > 1 && !strcmp(argv[1], "--quick"))
        n = 5, a++;
    if (argc - a != 2 || !getenv("OVS_RUNDIR")) {
        fprintf(stderr, "usage: OVS_RUNDIR=DIR bench/netops [--quick] BRIDGE PORT\n");
        return 2;
    }
    struct nh_opts o;
    struct nh_vif v = {.tag = -1, .ofport = -1};
    struct nh_of *of = NULL;
    nh_opts_init(&o);
    snprintf(v.name, sizeof(v.name), "%s", argv[a + 1]);
    if (nh_ovs_read_port(NULL, &o, &v) < 0 || !v.ovs || strcmp(v.bridge, argv[a]) ||
        nh_of_open(NULL, &o, v.bridge, &of) < 0) {
        fprintf(stderr, "netops: no OVS port %s on %s\n", argv[a + 1], argv[a]);
        return 1;
    }
    memset(v.mac, 0, 6);
    v.mac[0] = 0x02, v.mac[5] = 0x99;
    struct nh_opts fork_o = o;
    fork_o.use_ofctl = true;
    double ref = measure(FORK_PACKET_OUT, &fork_o, NULL, &v, n);
    double po = measure(DIRECT_PACKET_OUT, &o, of, &v, n);
    double ff = measure(FORK_FLOW, &o, of, &v, n);
    double df = measure(DIRECT_FLOW, &o, of, &v, n);
    double rd = measure(VSCTL_READ, &o, of, &v, n);
    nh_ovs_del_cookie(NULL, &o, v.bridge, nh_cookie("bench", 1), UINT64_MAX);
    nh_of_close(of);
    printf("{\"bench\":\"netops\",\"reference\":{\"name\":\"ovs-ofctl packet-out (forked)\","
           "\"value\":%.3f,\"unit\":\"ms\"},\"results\":["
           "{\"name\":\"direct OpenFlow packet-out + barrier\",\"value\":%.3f,\"unit\":\"ms\","
           "\"ratio\":%.1f,\"goal\":\"<= 1 ms\",\"met\":%s},"
           "{\"name\":\"direct OpenFlow flow add + barrier\",\"value\":%.3f,\"unit\":\"ms\","
           "\"ratio\":%.1f,\"goal\":\"<= 1 ms\",\"met\":%s},"
           "{\"name\":\"ovs-ofctl add-flow (forked)\",\"value\":%.3f,\"unit\":\"ms\","
           "\"ratio\":%.2f,\"goal\":\"off the switchover path\",\"met\":true},"
           "{\"name\":\"ovs-vsctl port read (forked, before the copy)\",\"value\":%.3f,"
           "\"unit\":\"ms\",\"ratio\":%.2f,\"goal\":\"off the switchover path\",\"met\":true}]}\n",
           ref, po, ref / po, po <= 1.0 ? "true" : "false", df, ref / df,
           df <= 1.0 ? "true" : "false", ff, ref / ff, rd, ref / rd);
    return 0;
}
