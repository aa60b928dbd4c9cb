/*
 * openflow.c: OpenFlow 1.0 spoken directly on a bridge's management socket
 * (unix:RUNDIR/BR.mgmt), for the switchover path: a forked ovs-ofctl costs
 * milliseconds, a message on an open socket microseconds. Only what the
 * handoff needs: HELLO, FLOW_MOD add (dl_dst -> output), PACKET_OUT with
 * actions=NORMAL, BARRIER (with ERROR replies turned into a failure).
 * Deleting flows by cookie needs OpenFlow 1.1+ matching and stays with
 * ovs-ofctl (it is off the switchover path).
 *
 * Entry points: nh_of_open/close, nh_of_flow_add, nh_of_packet_out,
 * nh_of_barrier, and the encoders the unit tests check byte by byte.
 */
#include <config.h>

#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MIG_LOG_MODULE "net"
#include "nh.h"

#define OFP_VERSION 0x01
#define OFPT_HELLO 0
#define OFPT_ERROR 1
#define OFPT_ECHO_REQUEST 2
#define OFPT_ECHO_REPLY 3
#define OFPT_FEATURES_REQUEST 5
#define OFPT_FEATURES_REPLY 6
#define OFPT_PACKET_OUT 13
#define OFPT_FLOW_MOD 14
#define OFPT_BARRIER_REQUEST 18
#define OFPT_BARRIER_REPLY 19
#define OFPFW_ALL 0x3fffffu
#define OFPFW_DL_DST (1u << 3)
#define OFPP_NORMAL 0xfffa
#define OFPP_FLOOD 0xfffb
#define OFPP_NONE 0xffff
#define OFP_MAX_MSG 65535

struct nh_of {
    struct mig_ctx *ctx;      /* borrowed */
    int fd;
    uint32_t xid;
    int err;                  /* first OpenFlow error seen, 0 none */
    char bridge[NH_NAME_MAX];
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static void header(uint8_t *p, uint8_t type, uint16_t len, uint32_t xid)
{
    p[0] = OFP_VERSION;
    p[1] = type;
    put16(p + 2, len);
    put32(p + 4, xid);
}

size_t nh_of_encode_flow_add_ports(uint8_t *buf, size_t cap, uint32_t xid, uint64_t cookie,
                                   uint16_t priority, const uint8_t mac[6], int vlan,
                                   const int *ports, unsigned nports)
{
    const size_t len = 72 + (vlan >= 0 ? 8 : 0) + 8 * (nports ? nports : 1);
    if (cap < len || nports > NH_MAX_FWD)
        return 0;
    memset(buf, 0, len);
    header(buf, OFPT_FLOW_MOD, (uint16_t)len, xid);
    /* ofp_match: everything wildcarded but dl_dst */
    put32(buf + 8, OFPFW_ALL & ~OFPFW_DL_DST);
    memcpy(buf + 8 + 12, mac, 6); /* wildcards 4, in_port 2, dl_src 6, then dl_dst */
    put64(buf + 48, cookie);
    put16(buf + 56, 0);             /* command: OFPFC_ADD */
    put16(buf + 58, 0);             /* idle timeout: none (we delete by cookie) */
    put16(buf + 60, 0);             /* hard timeout */
    put16(buf + 62, priority);
    put32(buf + 64, 0xffffffffu);   /* buffer_id: none */
    put16(buf + 68, OFPP_NONE);     /* out_port (delete only) */
    put16(buf + 70, 0);             /* flags */
    uint8_t *a = buf + 72;
    if (vlan == 0) {                /* OFPAT_STRIP_VLAN: to an access port */
        put16(a, 3);
        put16(a + 2, 8);
        a += 8;
    } else if (vlan > 0) {          /* OFPAT_SET_VLAN_VID: onto a trunk, keep the VLAN */
        put16(a, 1);
        put16(a + 2, 8);
        put16(a + 4, (uint16_t)vlan);
        a += 8;
    }
    for (unsigned k = 0; k < (nports ? nports : 1); k++, a += 8) {
        put16(a, 0);                /* OFPAT_OUTPUT */
        put16(a + 2, 8);
        put16(a + 4, nports ? (uint16_t)ports[k] : OFPP_FLOOD);
        put16(a + 6, 0);            /* max_len: only for the controller port */
    }
    return len;
}

size_t nh_of_encode_flow_add(uint8_t *buf, size_t cap, uint32_t xid, uint64_t cookie,
                             uint16_t priority, const uint8_t mac[6], int vlan, int out_port)
{
    return nh_of_encode_flow_add_ports(buf, cap, xid, cookie, priority, mac, vlan, &out_port,
                                       out_port < 0 ? 0 : 1);
}

size_t nh_of_encode_packet_out(uint8_t *buf, size_t cap, uint32_t xid, int in_port,
                               const uint8_t *frame, size_t flen)
{
    size_t len = 16 + 8 + flen;
    if (cap < len || len > OFP_MAX_MSG)
        return 0;
    memset(buf, 0, 24);
    header(buf, OFPT_PACKET_OUT, (uint16_t)len, xid);
    put32(buf + 8, 0xffffffffu);    /* buffer_id: the data follows */
    put16(buf + 12, in_port < 0 ? OFPP_NONE : (uint16_t)in_port);
    put16(buf + 14, 8);             /* actions_len */
    put16(buf + 16, 0);             /* OFPAT_OUTPUT */
    put16(buf + 18, 8);
    put16(buf + 20, OFPP_NORMAL);   /* learn and forward as if it came from in_port */
    put16(buf + 22, 0);
    memcpy(buf + 24, frame, flen);
    return len;
}

static int send_all(struct nh_of *of, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(of->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? mig__from_errno(errno) : -MIG_EPEER;
        off += (size_t)w;
    }
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int recv_all(struct nh_of *of, uint8_t *buf, size_t len, uint64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        uint64_t t = now_ms();
        if (t >= deadline)
            return -MIG_ETIMEOUT;
        struct pollfd pf = {.fd = of->fd, .events = POLLIN};
        int r = poll(&pf, 1, (int)(deadline - t));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? -MIG_ETIMEOUT : mig__from_errno(errno);
        ssize_t n = recv(of->fd, buf + off, len - off, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? mig__from_errno(errno) : -MIG_EPEER;
        off += (size_t)n;
    }
    return 0;
}

/* Read one message; the switch's header is checked before its body is read. */
static int recv_msg(struct nh_of *of, uint8_t *type_out, uint32_t *xid_out, uint8_t *body,
                    size_t cap, size_t *len_out, uint64_t deadline)
{
    uint8_t h[8];
    int rc = recv_all(of, h, 8, deadline);
    if (rc < 0)
        return rc;
    size_t len = (size_t)h[2] << 8 | h[3];
    if (len < 8 || len - 8 > cap)
        return -MIG_EPROTO;
    rc = recv_all(of, body, len - 8, deadline);
    if (rc < 0)
        return rc;
    *type_out = h[1];
    *xid_out = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
    *len_out = len - 8;
    return 0;
}

int nh_of_open(struct mig_ctx *ctx, const struct nh_opts *o, const char *bridge,
               struct nh_of **of_out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct nh_of *of = calloc(1, sizeof(*of));
    uint8_t hello[8], body[256];
    int rc;
    if (!of)
        return -MIG_ENOMEM;
    of->ctx = ctx;
    of->fd = -1;
    snprintf(of->bridge, sizeof(of->bridge), "%s", bridge);
    if (o->dry_run) { /* nothing to talk to: the calls print ovs-ofctl lines */
        *of_out = of;
        return 0;
    }
    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.mgmt", nh_rundir(o), bridge) >=
        sizeof(sa.sun_path)) {
        rc = -MIG_ETOOBIG;
        goto out;
    }
    of->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (of->fd < 0 || connect(of->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = mig__from_errno(errno);
        MIG_LOG(ctx, ERROR, "OpenFlow: cannot connect to %s: %s", sa.sun_path, strerror(errno));
        goto out;
    }
    header(hello, OFPT_HELLO, 8, ++of->xid);
    rc = send_all(of, hello, 8);
    if (rc < 0)
        goto out;
    uint8_t type;
    uint32_t xid;
    size_t blen;
    rc = recv_msg(of, &type, &xid, body, sizeof(body), &blen, now_ms() + 3000);
    if (rc == 0 && type != OFPT_HELLO)
        rc = -MIG_EPROTO;
    if (rc < 0) {
        MIG_LOG(ctx, ERROR, "OpenFlow: no HELLO from %s: %s", bridge, mig_strerror(rc));
        goto out;
    }
    *of_out = of;
    of = NULL;
out:
    nh_of_close(of);
    return rc;
}

void nh_of_close(struct nh_of *of)
{
    if (!of)
        return;
    if (of->fd >= 0)
        close(of->fd);
    free(of);
}

int nh_of_flow_add_ports(struct nh_of *of, uint64_t cookie, uint16_t priority,
                         const uint8_t mac[6], int vlan, const int *ports, unsigned nports)
{
    uint8_t buf[96 + 8 * NH_MAX_FWD];
    size_t n = nh_of_encode_flow_add_ports(buf, sizeof(buf), ++of->xid, cookie, priority, mac,
                                           vlan, ports, nports);
    return n ? send_all(of, buf, n) : -MIG_EINVAL;
}

int nh_of_flow_add(struct nh_of *of, uint64_t cookie, uint16_t priority, const uint8_t mac[6],
                   int vlan, int out_port)
{
    return nh_of_flow_add_ports(of, cookie, priority, mac, vlan, &out_port, out_port < 0 ? 0 : 1);
}

int nh_of_packet_out(struct nh_of *of, int in_port, const uint8_t *frame, size_t len)
{
    uint8_t buf[256];
    size_t n = nh_of_encode_packet_out(buf, sizeof(buf), ++of->xid, in_port, frame, len);
    return n ? send_all(of, buf, n) : -MIG_EINVAL;
}

int nh_of_port_no(struct nh_of *of, const char *name, int *port_out, unsigned timeout_ms)
{
    uint8_t req[8], body[OFP_MAX_MSG];
    uint32_t want = ++of->xid;
    uint64_t deadline = now_ms() + timeout_ms;
    header(req, OFPT_FEATURES_REQUEST, 8, want);
    int rc = send_all(of, req, 8);
    *port_out = -1;
    while (rc == 0) {
        uint8_t type;
        uint32_t xid;
        size_t blen;
        rc = recv_msg(of, &type, &xid, body, sizeof(body), &blen, deadline);
        if (rc < 0 || type != OFPT_FEATURES_REPLY || xid != want)
            continue; /* async messages (port status...) are not for us */
        /* datapath_id 8, n_buffers 4, n_tables 1, pad 3, capabilities 4,
         * actions 4, then ofp_phy_port[48]: port_no 2, hw_addr 6, name 16 */
        for (size_t off = 24; off + 48 <= blen; off += 48) {
            char pname[17];
            memcpy(pname, body + off + 8, 16);
            pname[16] = 0;
            if (strcmp(pname, name) == 0) {
                *port_out = body[off] << 8 | body[off + 1];
                return 0;
            }
        }
        return -MIG_ENOENT;
    }
    return rc;
}

int nh_of_barrier(struct nh_of *of, unsigned timeout_ms)
{
    uint8_t req[8], body[OFP_MAX_MSG];
    uint32_t want = ++of->xid;
    uint64_t deadline = now_ms() + timeout_ms;
    header(req, OFPT_BARRIER_REQUEST, 8, want);
    int rc = send_all(of, req, 8);
    while (rc == 0) {
        uint8_t type;
        uint32_t xid;
        size_t blen;
        rc = recv_msg(of, &type, &xid, body, sizeof(body), &blen, deadline);
        if (rc < 0)
            break;
        if (type == OFPT_ERROR) {
            unsigned et = blen >= 4 ? (unsigned)(body[0] << 8 | body[1]) : 0;
            unsigned ec = blen >= 4 ? (unsigned)(body[2] << 8 | body[3]) : 0;
            MIG_LOG(of->ctx, ERROR, "OpenFlow error from %s: type %u code %u (xid %" PRIu32 ")",
                    of->bridge, et, ec, xid);
            if (!of->err)
                of->err = -MIG_EBACKEND;
        } else if (type == OFPT_ECHO_REQUEST) {
            uint8_t rep[8 + 64];
            size_t n = blen > 64 ? 64 : blen;
            header(rep, OFPT_ECHO_REPLY, (uint16_t)(8 + n), xid);
            memcpy(rep + 8, body, n);
            rc = send_all(of, rep, 8 + n);
        } else if (type == OFPT_BARRIER_REPLY && xid == want) {
            break;
        }
    }
    if (rc == 0 && of->err) {
        rc = of->err;
        of->err = 0;
    }
    return rc;
}
