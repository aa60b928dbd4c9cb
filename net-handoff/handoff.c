/*
 * handoff.c: one migration's network handoff, on either side.
 *
 * Source: nh_handoff_new + add_vif, nh_src_begin (read the ports),
 * nh_handoff_encode (for the destination), nh_src_commit (forward the MACs
 * to the uplink), nh_settle (delete our flows after the settle period).
 * Destination: nh_handoff_decode, nh_dst_begin (watch the OVSDB with
 * ovsdb-client monitor: the moment a vif port appears, copy tag / trunks /
 * external_ids onto it and install the MAC's flow), nh_dst_commit (announce
 * now, and the later rounds from a thread), nh_settle. nh_abort on any
 * failure before COMMIT. The watcher and announcer threads belong to the
 * handoff and are joined by settle/abort/free.
 *
 * Description format (text, one record per line, checked as hostile):
 *   nh 1
 *   domain NAME
 *   cookie 0xHEX
 *   vif mac=M name=N bridge=B ovs=0|1 tag=T trunks=L ofport=P iface-id=..
 *       attached-mac=.. vm-id=.. ip=A.B.C.D ...     (one line)
 */
#include <config.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIG_LOG_MODULE "net"
#include "nh.h"
#include "profile-internal.h"

#define FLOW_PRIORITY 100    /* above the bridge's own (priority 0, NORMAL) */
#define DEST_EXTRA_SETTLE_MS 500u /* see nh_settle */
#define MAX_LINE 65536       /* bytes: one line of ovsdb-client monitor */

enum side { SIDE_SOURCE, SIDE_DEST };

struct dst_port {
    char ifname[NH_NAME_MAX];    /* name the vif gets here ("": match by MAC) */
    char bridge[NH_NAME_MAX];    /* where it appeared */
    int ofport;                  /* -1 until it appears */
    bool meta_done, flow_done;
    bool claimed;                /* someone is handling its appearance */
    bool pending;                /* seen by COMMIT itself: flow and metadata still to do */
    uint64_t seen_ns;            /* when the watcher saw it with an ofport */
    struct nh_of *of;            /* owned: OpenFlow connection to 'bridge' (when not guess_of) */
    struct nh_of *use_of;        /* borrowed: of or the handoff's guess_of */
};

struct nh_handoff {
    struct mig_ctx *ctx;                  /* borrowed */
    struct nh_opts o;                     /* copy; strings borrowed */
    enum side side;
    char domain[NH_NAME_MAX];
    uint64_t cookie;
    unsigned n;
    struct nh_vif vifs[NH_MAX_VIFS];      /* as on the source */

    /* source */
    int uplink_ofport;                    /* -1: the trunk ports below */
    /* Without --net uplink=: vif i's MAC goes to every port of its bridge
     * that carries its VLAN to other hosts (nh_ovs_trunk_ports), tagged
     * as the trunk expects. Not FLOOD: FLOOD sends the frame as it is in
     * the pipeline, untagged for an access port's, so it would cross the
     * trunk on the native VLAN, and once the destination's own flow is
     * gone the destination's switch looks the guest up in the wrong VLAN
     * and drops it (the loss seen at the settle period's end). */
    int fwd[NH_MAX_VIFS][NH_MAX_FWD];
    unsigned nfwd[NH_MAX_VIFS];
    struct nh_of *src_of[NH_MAX_VIFS];    /* owned; [0]: connection to src_of_bridge */
    char src_of_bridge[NH_NAME_MAX];
    bool src_flows;

    /* destination */
    pthread_mutex_t lock;
    pthread_cond_t cond;                  /* a port appeared or the watcher ended */
    struct dst_port dst[NH_MAX_VIFS];     /* under lock */
    pid_t mon_pid;
    int mon_fd;
    pthread_t watch_thr, ann_thr;
    bool watching, announcing;
    atomic_int stop;
    atomic_int announced;                 /* COMMIT's first round went out */
    struct nh_of *guess_of;               /* owned: connection to the source's bridge name here */
    char guess_bridge[NH_NAME_MAX];
    pthread_mutex_t flow_lock;            /* serialises OpenFlow use (watcher, announcer) */
    bool watch_ended;                     /* under lock */

    uint64_t commit_ns;
    bool settled;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t_ns, atomic_int *stop)
{
    for (;;) {
        uint64_t t = now_ns();
        if (t >= t_ns || (stop && atomic_load(stop)))
            return;
        uint64_t d = t_ns - t;
        if (d > 50000000u)
            d = 50000000u; /* re-check stop every 50 ms */
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)d};
        nanosleep(&ts, NULL);
    }
}

/* Copy a string known (checked) to fit; truncates otherwise. */
static void scopy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memmove(dst, src, n);
    dst[n] = 0;
}

static bool safe(const char *s, size_t cap)
{
    size_t n = strlen(s);
    if (n >= cap)
        return false;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@+,", *s))
            return false;
    return true;
}

static struct nh_handoff *alloc(struct mig_ctx *ctx, const struct nh_opts *o, enum side side)
{
    struct nh_handoff *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->ctx = ctx;
    h->o = *o;
    h->side = side;
    h->uplink_ofport = -1;
    h->mon_pid = -1;
    h->mon_fd = -1;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    pthread_mutex_init(&h->flow_lock, NULL);
    atomic_init(&h->stop, 0);
    atomic_init(&h->announced, 0);
    for (unsigned i = 0; i < NH_MAX_VIFS; i++)
        h->dst[i].ofport = -1;
    return h;
}

int nh_handoff_new(struct mig_ctx *ctx, const struct nh_opts *o, const char *domain,
                   uint32_t migration, struct nh_handoff **h_out)
{
    if (!safe(domain, NH_NAME_MAX))
        return -MIG_EINVAL;
    struct nh_handoff *h = alloc(ctx, o, SIDE_SOURCE);
    if (!h)
        return -MIG_ENOMEM;
    scopy(h->domain, sizeof(h->domain), domain);
    h->cookie = nh_cookie(domain, migration);
    *h_out = h;
    return 0;
}

int nh_handoff_add_vif(struct nh_handoff *h, const uint8_t mac[6], const char *ifname,
                       const uint32_t *ips, unsigned nips)
{
    if (h->n >= NH_MAX_VIFS || nips > NH_MAX_IPS || !safe(ifname, NH_NAME_MAX))
        return -MIG_EINVAL;
    struct nh_vif *v = &h->vifs[h->n++];
    memset(v, 0, sizeof(*v));
    memcpy(v->mac, mac, 6);
    scopy(v->name, sizeof(v->name), ifname);
    memcpy(v->ips, ips, nips * sizeof(*ips));
    v->nips = nips;
    v->tag = -1;
    v->ofport = -1;
    return 0;
}

unsigned nh_handoff_nvifs(const struct nh_handoff *h)
{
    return h->n;
}

const struct nh_vif *nh_handoff_vif(const struct nh_handoff *h, unsigned i)
{
    return i < h->n ? &h->vifs[i] : NULL;
}

uint64_t nh_handoff_cookie(const struct nh_handoff *h)
{
    return h->cookie;
}

/* Add dl_dst=mac -> port with our cookie: direct OpenFlow, or ovs-ofctl
 * (use_ofctl, dry runs). */
static int flow_add_ports(struct nh_handoff *h, struct nh_of *of, const char *bridge,
                          const uint8_t mac[6], int vlan, const int *ports, unsigned nports)
{
    if (of && !h->o.dry_run && !h->o.use_ofctl) {
        int rc = nh_of_flow_add_ports(of, h->cookie, FLOW_PRIORITY, mac, vlan, ports, nports);
        return rc ? rc : nh_of_barrier(of, 2000);
    }
    char flow[200 + 16 * NH_MAX_FWD];
    nh_flow_text_ports(flow, sizeof(flow), h->cookie, FLOW_PRIORITY, mac, vlan, ports, nports);
    const char *argv[] = {"ovs-ofctl", "add-flow", bridge, flow, NULL};
    return nh_run(h->ctx, &h->o, argv, NULL, NULL, NULL, 5000);
}

static int flow_add(struct nh_handoff *h, struct nh_of *of, const char *bridge,
                    const uint8_t mac[6], int vlan, int port)
{
    return flow_add_ports(h, of, bridge, mac, vlan, &port, port < 0 ? 0 : 1);
}

static int open_of(struct nh_handoff *h, const char *bridge, struct nh_of **of_out)
{
    *of_out = NULL;
    if (h->o.use_ofctl || h->o.dry_run)
        return 0;
    return nh_of_open(h->ctx, &h->o, bridge, of_out);
}

/* ---- source ------------------------------------------------------------- */

int nh_src_begin(struct nh_handoff *h)
{
    for (unsigned i = 0; i < h->n; i++) {
        struct nh_vif *v = &h->vifs[i];
        int rc = nh_ovs_read_port(h->ctx, &h->o, v);
        if (rc == -MIG_ENOENT) {
            /* on no bridge (a routed vif, vif-route): nothing a switch
             * learns; the domain moves, this vif is not handed off */
            MIG_LOG(h->ctx, WARN, "vif %s is on no bridge: not handed off", v->name);
            memmove(v, v + 1, (h->n - i - 1) * sizeof(*v));
            h->n--;
            i--;
            continue;
        }
        if (rc < 0)
            return rc;
        char m[18];
        nh_mac_format(v->mac, m);
        MIG_LOG(h->ctx, INFO, "vif %s (%s) on %s bridge %s, tag %d, ofport %d", v->name, m,
                v->ovs ? "OVS" : "Linux", v->bridge, v->tag, v->ofport);
        if (v->ovs && !h->src_of_bridge[0]) {
            scopy(h->src_of_bridge, sizeof(h->src_of_bridge), v->bridge);
            if ((rc = open_of(h, v->bridge, &h->src_of[0])) < 0)
                return rc;
        }
    }
    for (unsigned i = 0; i < h->n && !h->o.uplink; i++) {
        struct nh_vif *v = &h->vifs[i];
        if (!v->ovs)
            continue;
        int rc = nh_ovs_trunk_ports(h->ctx, &h->o, v->bridge, v->name, v->tag > 0 ? v->tag : 0,
                                    h->fwd[i], &h->nfwd[i]);
        if (rc < 0)
            return rc;
        if (!h->nfwd[i] && !h->o.dry_run)
            MIG_LOG(h->ctx, WARN, "vif %s: no trunk port on %s carries VLAN %d: COMMIT floods "
                    "its MAC untagged (give --net uplink=PORT)", v->name, v->bridge,
                    v->tag > 0 ? v->tag : 0);
        else if (h->nfwd[i])
            MIG_LOG(h->ctx, INFO, "vif %s: at COMMIT its MAC goes to %u trunk port(s) of %s",
                    v->name, h->nfwd[i], v->bridge);
    }
    if (h->o.uplink && h->n && h->vifs[0].ovs) {
        char *out = NULL;
        const char *argv[] = {"ovs-vsctl", "--timeout=10", "get", "Interface", h->o.uplink,
                              "ofport", NULL};
        int rc = nh_run(h->ctx, &h->o, argv, NULL, &out, "2\n", 10000);
        if (rc < 0) {
            MIG_LOG(h->ctx, ERROR, "uplink %s: no such OVS port", h->o.uplink);
            return rc;
        }
        h->uplink_ofport = atoi(out);
        free(out);
    }
    return 0;
}

int nh_src_commit(struct nh_handoff *h)
{
    int rc = 0;
    h->commit_ns = now_ns();
    for (unsigned i = 0; i < h->n && rc == 0; i++) {
        struct nh_vif *v = &h->vifs[i];
        if (!v->ovs)
            continue; /* Linux bridge: the destination's announcement does it */
        /* the OpenFlow connection is to the first OVS vif's bridge */
        struct nh_of *of = h->src_of[0] && !strcmp(v->bridge, h->src_of_bridge) ? h->src_of[0]
                                                                                 : NULL;
        /* an access port's frames carry no tag inside the switch: put
         * their VLAN on them for the trunk(s) */
        if (h->uplink_ofport >= 0 || !h->nfwd[i])
            rc = flow_add(h, of, v->bridge, v->mac,
                          v->tag > 0 && h->uplink_ofport >= 0 ? v->tag : -1, h->uplink_ofport);
        else
            rc = flow_add_ports(h, of, v->bridge, v->mac, v->tag > 0 ? v->tag : -1, h->fwd[i],
                                h->nfwd[i]);
        if (rc == 0)
            h->src_flows = true;
    }
    if (rc < 0)
        MIG_LOG(h->ctx, WARN, "forwarding %s's MACs to the destination: %s", h->domain,
                mig_strerror(rc));
    return rc;
}

/* ---- description -------------------------------------------------------- */

int nh_handoff_encode(const struct nh_handoff *h, char **text_out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -MIG_ENOMEM;
    fprintf(f, "nh 1\ndomain %s\ncookie 0x%" PRIx64 "\n", h->domain, h->cookie);
    for (unsigned i = 0; i < h->n; i++) {
        const struct nh_vif *v = &h->vifs[i];
        char m[18];
        nh_mac_format(v->mac, m);
        fprintf(f, "vif mac=%s name=%s bridge=%s ovs=%d tag=%d ofport=%d", m, v->name,
                v->bridge[0] ? v->bridge : "-", v->ovs ? 1 : 0, v->tag, v->ofport);
        if (v->trunks[0])
            fprintf(f, " trunks=%s", v->trunks);
        if (v->iface_id[0] && safe(v->iface_id, NH_VAL_MAX))
            fprintf(f, " iface-id=%s", v->iface_id);
        if (v->attached_mac[0] && safe(v->attached_mac, NH_VAL_MAX))
            fprintf(f, " attached-mac=%s", v->attached_mac);
        if (v->vm_id[0] && safe(v->vm_id, NH_VAL_MAX))
            fprintf(f, " vm-id=%s", v->vm_id);
        for (unsigned k = 0; k < v->nips; k++) {
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &v->ips[k], ip, sizeof(ip));
            fprintf(f, " ip=%s", ip);
        }
        fputc('\n', f);
    }
    if (fclose(f) || len > NH_BLOB_MAX) {
        free(buf);
        return len > NH_BLOB_MAX ? -MIG_ETOOBIG : -MIG_ENOMEM;
    }
    *text_out = buf;
    return 0;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return -MIG_EPROTO;
    *out = (int)v;
    return 0;
}

static int decode_vif(char *line, struct nh_vif *v)
{
    char *save = NULL;
    bool have_mac = false, have_name = false;
    memset(v, 0, sizeof(*v));
    v->tag = -1;
    v->ofport = -1;
    for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *val = strchr(t, '=');
        int rc = 0, x = 0;
        if (!val)
            return -MIG_EPROTO;
        *val++ = 0;
        if (!safe(val, NH_VAL_MAX))
            return -MIG_EPROTO;
        if (!strcmp(t, "mac")) {
            rc = nh_mac_parse(val, v->mac) ? -MIG_EPROTO : 0;
            have_mac = true;
        } else if (!strcmp(t, "name")) {
            rc = safe(val, NH_NAME_MAX) ? 0 : -MIG_EPROTO;
            scopy(v->name, sizeof(v->name), val);
            have_name = true;
        } else if (!strcmp(t, "bridge")) {
            rc = safe(val, NH_NAME_MAX) ? 0 : -MIG_EPROTO;
            scopy(v->bridge, sizeof(v->bridge), strcmp(val, "-") ? val : "");
        } else if (!strcmp(t, "ovs")) {
            rc = parse_int(val, 0, 1, &x);
            v->ovs = x == 1;
        } else if (!strcmp(t, "tag")) {
            rc = parse_int(val, -1, 4095, &v->tag);
        } else if (!strcmp(t, "ofport")) {
            rc = parse_int(val, -1, 65279, &v->ofport);
        } else if (!strcmp(t, "trunks")) {
            rc = strspn(val, "0123456789,") == strlen(val) ? 0 : -MIG_EPROTO;
            scopy(v->trunks, sizeof(v->trunks), val);
        } else if (!strcmp(t, "iface-id")) {
            scopy(v->iface_id, sizeof(v->iface_id), val);
        } else if (!strcmp(t, "attached-mac")) {
            scopy(v->attached_mac, sizeof(v->attached_mac), val);
        } else if (!strcmp(t, "vm-id")) {
            scopy(v->vm_id, sizeof(v->vm_id), val);
        } else if (!strcmp(t, "ip")) {
            if (v->nips >= NH_MAX_IPS || inet_pton(AF_INET, val, &v->ips[v->nips]) != 1)
                rc = -MIG_EPROTO;
            else
                v->nips++;
        } else {
            rc = -MIG_EPROTO;
        }
        if (rc < 0)
            return rc;
    }
    return have_mac && have_name ? 0 : -MIG_EPROTO;
}

int nh_handoff_decode(struct mig_ctx *ctx, const struct nh_opts *o, const char *text, size_t len,
                      struct nh_handoff **h_out)
{
    char *copy = NULL, *save = NULL;
    struct nh_handoff *h = NULL;
    int rc = -MIG_EPROTO, line = 0;
    bool have_cookie = false;
    if (len == 0 || len > NH_BLOB_MAX || memchr(text, 0, len))
        return -MIG_EPROTO;
    copy = strndup(text, len);
    h = alloc(ctx, o, SIDE_DEST);
    if (!copy || !h) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save), line++) {
        if (line == 0) {
            if (strcmp(l, "nh 1"))
                goto out;
        } else if (!strncmp(l, "domain ", 7)) {
            if (!safe(l + 7, NH_NAME_MAX))
                goto out;
            scopy(h->domain, sizeof(h->domain), l + 7);
        } else if (!strncmp(l, "cookie 0x", 9)) {
            char *end;
            h->cookie = strtoull(l + 9, &end, 16);
            if (*end || end == l + 9 || h->cookie >> 48 != NH_COOKIE_TAG)
                goto out;
            have_cookie = true;
        } else if (!strncmp(l, "vif ", 4)) {
            if (h->n >= NH_MAX_VIFS || decode_vif(l + 4, &h->vifs[h->n]) < 0)
                goto out;
            scopy(h->dst[h->n].ifname, sizeof(h->dst[h->n].ifname), h->vifs[h->n].name);
            h->n++;
        } else {
            goto out;
        }
    }
    if (!have_cookie || !h->domain[0] || line == 0)
        goto out;
    rc = 0;
    *h_out = h;
    h = NULL;
out:
    if (rc < 0)
        MIG_LOG(ctx, ERROR, "network description from the source rejected (line %d)", line + 1);
    nh_handoff_free(h);
    free(copy);
    return rc;
}

int nh_handoff_set_ifname(struct nh_handoff *h, unsigned vif, const char *ifname)
{
    if (vif >= h->n || !safe(ifname, NH_NAME_MAX))
        return -MIG_EINVAL;
    pthread_mutex_lock(&h->lock);
    scopy(h->dst[vif].ifname, sizeof(h->dst[vif].ifname), ifname);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

int nh_handoff_set_bridge(struct nh_handoff *h, unsigned vif, const char *bridge)
{
    char br[NH_NAME_MAX];
    struct nh_of *of = NULL;
    if (vif >= h->n || !safe(bridge, NH_NAME_MAX))
        return -MIG_EINVAL;
    scopy(br, sizeof(br), bridge);
    br[strcspn(br, ".")] = 0; /* xl's BRIDGE.VLAN: the tag is the port's */
    if (!br[0] || !h->vifs[vif].ovs || !strcmp(br, h->guess_bridge) || h->o.use_ofctl ||
        h->o.dry_run)
        return 0;
    pthread_mutex_lock(&h->lock);
    bool seen = false;
    for (unsigned i = 0; i < h->n; i++)
        seen = seen || h->dst[i].claimed;
    pthread_mutex_unlock(&h->lock);
    if (seen)
        return 0;
    int rc = nh_of_open(h->ctx, &h->o, br, &of);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&h->flow_lock);
    nh_of_close(h->guess_of);
    h->guess_of = of;
    scopy(h->guess_bridge, sizeof(h->guess_bridge), br);
    pthread_mutex_unlock(&h->flow_lock);
    MIG_LOG(h->ctx, INFO, "vif %s lands on bridge %s here", h->vifs[vif].name, br);
    return 0;
}

/* ---- destination: the OVSDB watcher ------------------------------------- */

/* The port of vif i appeared here. Three steps: claim it (once, whoever
 * sees it first: the watcher, or COMMIT asking OpenFlow directly), mark it
 * seen (COMMIT may announce from then on), then install the MAC's flow and
 * copy the source's metadata (finish). The bridge: the one the destination
 * holds an OpenFlow connection to (the source's bridge name, opened at
 * begin) when it has a port of that name with that number, else the
 * OVSDB's answer. */
static bool claim(struct nh_handoff *h, unsigned i)
{
    pthread_mutex_lock(&h->lock);
    bool mine = !h->dst[i].claimed;
    h->dst[i].claimed = true;
    pthread_mutex_unlock(&h->lock);
    return mine;
}

/* Port number of 'name' on the guessed bridge (-1: not there). */
static int guess_port(struct nh_handoff *h, const char *name)
{
    int port = -1;
    if (!h->guess_of)
        return -1;
    pthread_mutex_lock(&h->flow_lock); /* one user of an OpenFlow connection at a time */
    if (nh_of_port_no(h->guess_of, name, &port, 2000) < 0)
        port = -1;
    pthread_mutex_unlock(&h->flow_lock);
    return port;
}

static void mark_seen(struct nh_handoff *h, unsigned i, const char *name, int ofport,
                      const char *br, struct nh_of *of)
{
    struct dst_port *d = &h->dst[i];
    pthread_mutex_lock(&h->lock);
    scopy(d->bridge, sizeof(d->bridge), br);
    scopy(d->ifname, sizeof(d->ifname), name);
    d->ofport = ofport;
    d->use_of = of;
    d->seen_ns = now_ns();
    pthread_cond_broadcast(&h->cond); /* COMMIT may announce now */
    pthread_mutex_unlock(&h->lock);
    MIG_LOG(h->ctx, INFO, "vif port %s appeared on %s as ofport %d", name, br, ofport);
}

static struct nh_vif here(struct nh_handoff *h, unsigned i);

/* A VLAN tag or trunks decide which frames the port sees and how the
 * announcement is tagged: they must be on the port before it announces. */
static bool has_vlan(const struct nh_vif *v)
{
    return v->tag >= 0 || v->trunks[0];
}

static void finish(struct nh_handoff *h, unsigned i)
{
    struct dst_port *d = &h->dst[i];
    struct nh_vif *v = &h->vifs[i];
    pthread_mutex_lock(&h->flow_lock);
    /* towards an access port: without the trunk's tag */
    int rc = flow_add(h, d->use_of, d->bridge, v->mac, v->tag >= 0 ? 0 : -1, d->ofport);
    pthread_mutex_unlock(&h->flow_lock);
    if (rc < 0)
        MIG_LOG(h->ctx, WARN, "flow for %s on %s: %s", d->ifname, d->bridge, mig_strerror(rc));
    pthread_mutex_lock(&h->lock);
    d->flow_done = true;
    d->pending = false;
    pthread_mutex_unlock(&h->lock);
    rc = nh_ovs_apply_meta(h->ctx, &h->o, d->ifname, v);
    if (rc < 0)
        MIG_LOG(h->ctx, WARN, "tag/external_ids for %s: %s", d->ifname, mig_strerror(rc));
    pthread_mutex_lock(&h->lock);
    d->meta_done = true;
    pthread_mutex_unlock(&h->lock);
    /* Announced before the port had its VLAN settings (the switchover path
     * does not wait for a fork; the hotplug script has usually set them
     * already): once more, now surely on the right VLAN. */
    if (has_vlan(v) && atomic_load(&h->announced) && !h->o.dry_run) {
        struct nh_vif now = here(h, i);
        pthread_mutex_lock(&h->flow_lock);
        rc = nh_announce_round(h->ctx, &h->o, d->use_of, &now);
        pthread_mutex_unlock(&h->flow_lock);
    }
}

/* The watcher (or a dry run) saw vif i's port 'name' with number 'ofport'. */
static void port_appeared(struct nh_handoff *h, unsigned i, const char *name, int ofport)
{
    struct dst_port *d = &h->dst[i];
    struct nh_vif *v = &h->vifs[i];
    char *br = NULL;
    struct nh_of *of = NULL;
    if (!claim(h, i))
        return;
    if (guess_port(h, name) == ofport) {
        br = strdup(h->guess_bridge);
        of = h->guess_of; /* borrowed; the handoff owns it */
    } else {
        const char *argv[] = {"ovs-vsctl", "--timeout=10", "port-to-br", name, NULL};
        if (nh_run(h->ctx, &h->o, argv, NULL, &br, v->bridge[0] ? v->bridge : "xenbr0", 10000) < 0)
            return;
        br[strcspn(br, "\n")] = 0;
        if (!h->o.use_ofctl && !h->o.dry_run && nh_of_open(h->ctx, &h->o, br, &d->of) == 0)
            of = d->of;
    }
    if (!br)
        return;
    mark_seen(h, i, name, ofport, br, of);
    free(br);
    finish(h, i);
}

/* Which vif does an Interface row (name, attached-mac) belong to? -1: none. */
static int match_row(struct nh_handoff *h, const char *name, const char *amac)
{
    int hit = -1;
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < h->n && hit < 0; i++) {
        if (h->dst[i].claimed)
            continue;
        if (h->dst[i].ifname[0] && !strcmp(h->dst[i].ifname, name))
            hit = (int)i;
        uint8_t m[6];
        if (amac && nh_mac_parse(amac, m) == 0 && !memcmp(m, h->vifs[i].mac, 6))
            hit = (int)i;
    }
    pthread_mutex_unlock(&h->lock);
    return hit;
}

/* One line of `ovsdb-client monitor --format=json`:
 * {"data":[[uuid, action, name, ofport, ["map",[[k,v],...]]], ...], "headings": [...]} */
static void handle_update(struct nh_handoff *h, const char *line, size_t len)
{
    struct mig__ynode *root = NULL;
    struct mig__perr err;
    if (mig__yaml_parse(line, len, "ovsdb-client monitor", &root, &err) < 0) {
        MIG_LOG(h->ctx, DEBUG, "unparsed OVSDB update: %s", err.msg);
        return;
    }
    const struct mig__ynode *data = mig__ynode_get(root, "data");
    for (size_t r = 0; data && data->type == MIG__Y_SEQ && r < data->n; r++) {
        const struct mig__ynode *row = data->kids[r];
        if (row->type != MIG__Y_SEQ || row->n < 5)
            continue;
        const struct mig__ynode *act = row->kids[1], *name = row->kids[2], *port = row->kids[3],
                                *ids = row->kids[4];
        if (act->type != MIG__Y_SCALAR || name->type != MIG__Y_SCALAR ||
            port->type != MIG__Y_SCALAR)
            continue; /* ofport [] = "set" with nothing yet */
        if (strcmp(act->str, "initial") && strcmp(act->str, "insert") && strcmp(act->str, "new"))
            continue;
        const char *amac = NULL;
        if (ids->type == MIG__Y_SEQ && ids->n == 2 && ids->kids[1]->type == MIG__Y_SEQ) {
            const struct mig__ynode *pairs = ids->kids[1];
            for (size_t k = 0; k < pairs->n; k++) {
                const struct mig__ynode *p = pairs->kids[k];
                if (p->type == MIG__Y_SEQ && p->n == 2 && p->kids[0]->type == MIG__Y_SCALAR &&
                    p->kids[1]->type == MIG__Y_SCALAR && !strcmp(p->kids[0]->str, "attached-mac"))
                    amac = p->kids[1]->str;
            }
        }
        int ofport = atoi(port->str);
        if (ofport <= 0 || ofport >= 0xff00)
            continue;
        int i = match_row(h, name->str, amac);
        if (i >= 0)
            port_appeared(h, (unsigned)i, name->str, ofport);
    }
    mig__ynode_free(root);
}

static void *watch_main(void *arg)
{
    struct nh_handoff *h = arg;
    char *buf = malloc(MAX_LINE);
    size_t len = 0;
    while (buf && !atomic_load(&h->stop)) {
        ssize_t r = read(h->mon_fd, buf + len, MAX_LINE - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        char *nl;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            size_t l = (size_t)(nl - buf);
            if (l > 0)
                handle_update(h, buf, l);
            memmove(buf, nl + 1, len - l - 1);
            len -= l + 1;
        }
        if (len == MAX_LINE - 1)
            len = 0; /* a line beyond any Interface update of ours: drop it */
    }
    free(buf);
    pthread_mutex_lock(&h->lock);
    h->watch_ended = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static bool any_ovs(const struct nh_handoff *h)
{
    for (unsigned i = 0; i < h->n; i++)
        if (h->vifs[i].ovs)
            return true;
    return false;
}

int nh_dst_begin(struct nh_handoff *h)
{
    char db[4200];
    int p[2] = {-1, -1};
    if (!any_ovs(h))
        return 0; /* Linux bridge: nothing to watch, announce at COMMIT */
    snprintf(db, sizeof(db), "unix:%s/db.sock", nh_rundir(&h->o));
    const char *argv[] = {"ovsdb-client", "monitor", db, "Open_vSwitch", "Interface",
                          "name,ofport,external_ids", "--format=json", NULL};
    if (h->o.dry_run) {
        nh_print_argv(h->o.dry_run, argv);
        return 0;
    }
    /* Most likely the vif lands on a bridge of the same name (xl's bridge=,
     * the pre-flight's bridge map): hold an OpenFlow connection to it now,
     * so the switchover path forks nothing. */
    for (unsigned i = 0; i < h->n && !h->guess_of && !h->o.use_ofctl; i++)
        if (h->vifs[i].ovs && h->vifs[i].bridge[0] &&
            nh_of_open(h->ctx, &h->o, h->vifs[i].bridge, &h->guess_of) == 0)
            scopy(h->guess_bridge, sizeof(h->guess_bridge), h->vifs[i].bridge);
    if (pipe2(p, O_CLOEXEC) < 0)
        return mig__from_errno(errno);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return mig__from_errno(errno);
    }
    if (pid == 0) {
        dup2(p[1], 1);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        sigset_t none; /* the caller's thread may block signals (simhost's listener) */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    h->mon_pid = pid;
    h->mon_fd = p[0];
    if (pthread_create(&h->watch_thr, NULL, watch_main, h) != 0) {
        kill(pid, SIGTERM);
        return -MIG_ENOMEM;
    }
    h->watching = true;
    MIG_LOG(h->ctx, INFO, "watching the OVSDB for %u vif port(s) of %s", h->n, h->domain);
    return 0;
}

static void stop_watch(struct nh_handoff *h)
{
    if (h->mon_pid > 0) {
        kill(h->mon_pid, SIGKILL);
        while (waitpid(h->mon_pid, NULL, 0) < 0 && errno == EINTR)
            ;
        h->mon_pid = -1;
    }
    if (h->watching) {
        pthread_join(h->watch_thr, NULL);
        h->watching = false;
    }
    if (h->mon_fd >= 0) {
        close(h->mon_fd);
        h->mon_fd = -1;
    }
}

/* The vif as it is on this host (for announcing). */
static struct nh_vif here(struct nh_handoff *h, unsigned i)
{
    struct nh_vif v = h->vifs[i];
    pthread_mutex_lock(&h->lock);
    if (h->dst[i].ofport >= 0) {
        v.ofport = h->dst[i].ofport;
        scopy(v.bridge, sizeof(v.bridge), h->dst[i].bridge);
    }
    if (h->dst[i].ifname[0])
        scopy(v.name, sizeof(v.name), h->dst[i].ifname);
    pthread_mutex_unlock(&h->lock);
    return v;
}

static void announce_all(struct nh_handoff *h, unsigned round)
{
    for (unsigned i = 0; i < h->n; i++) {
        struct nh_vif v = here(h, i);
        if (v.ovs && v.ofport < 0)
            continue;
        pthread_mutex_lock(&h->flow_lock);
        int rc = nh_announce_round(h->ctx, &h->o, h->dst[i].use_of, &v);
        pthread_mutex_unlock(&h->flow_lock);
        if (rc < 0)
            MIG_LOG(h->ctx, WARN, "announcement round %u for %s: %s", round, v.name,
                    mig_strerror(rc));
    }
}

static void *announce_main(void *arg)
{
    struct nh_handoff *h = arg;
    uint64_t t = now_ns();
    for (unsigned i = 0; i < h->n; i++)
        if (h->dst[i].pending)
            finish(h, i);
    for (unsigned r = 1; r < h->o.rounds && !atomic_load(&h->stop); r++) {
        t += (uint64_t)nh_announce_gap_ms(&h->o, r - 1) * 1000000u;
        sleep_until(t, &h->stop);
        if (atomic_load(&h->stop))
            break;
        announce_all(h, r);
    }
    return NULL;
}

int nh_dst_commit(struct nh_handoff *h)
{
    h->commit_ns = now_ns();
    if (h->o.dry_run) {
        /* no watcher: take the ports as named, with the source's numbers */
        for (unsigned i = 0; i < h->n; i++)
            if (h->vifs[i].ovs)
                port_appeared(h, i, h->dst[i].ifname, h->vifs[i].ofport > 0 ? h->vifs[i].ofport : 1);
    } else if (any_ovs(h)) {
        /* The port may be there already (the test guest plugs it in its
         * commit): ask the bridge now rather than wait for the watcher. */
        for (unsigned i = 0; i < h->n; i++) {
            int port;
            if (!h->vifs[i].ovs || h->dst[i].claimed || !h->dst[i].ifname[0] ||
                (port = guess_port(h, h->dst[i].ifname)) <= 0 || !claim(h, i))
                continue;
            /* no fork here: flow and metadata follow from the announcer
             * thread (finish) */
            mark_seen(h, i, h->dst[i].ifname, port, h->guess_bridge, h->guess_of);
            h->dst[i].pending = true;
        }
        uint64_t deadline = h->commit_ns + (uint64_t)h->o.port_wait_ms * 1000000u;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t abs = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
                       (deadline - h->commit_ns);
        ts.tv_sec = (time_t)(abs / 1000000000u);
        ts.tv_nsec = (long)(abs % 1000000000u);
        pthread_mutex_lock(&h->lock);
        for (;;) {
            bool all = true;
            for (unsigned i = 0; i < h->n; i++)
                all = all && (!h->vifs[i].ovs || h->dst[i].ofport >= 0);
            if (all || h->watch_ended)
                break;
            if (pthread_cond_timedwait(&h->cond, &h->lock, &ts) != 0)
                break;
        }
        pthread_mutex_unlock(&h->lock);
    }
    for (unsigned i = 0; i < h->n; i++)
        if (h->vifs[i].ovs && h->dst[i].ofport < 0)
            MIG_LOG(h->ctx, WARN, "vif %s of %s did not appear within %u ms: not announced",
                    h->dst[i].ifname, h->domain, h->o.port_wait_ms);
    announce_all(h, 0);
    atomic_store(&h->announced, 1);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    MIG_LOG(h->ctx, INFO, "announced %s (round 1 of %u) %" PRIu64 " us after COMMIT, at %lld.%06ld",
            h->domain, h->o.rounds, (now_ns() - h->commit_ns) / 1000u, (long long)wall.tv_sec,
            wall.tv_nsec / 1000);
    if (h->o.rounds > 1) {
        if (h->o.dry_run) {
            for (unsigned r = 1; r < h->o.rounds; r++) {
                fprintf(h->o.dry_run, "# after %u ms:\n", nh_announce_gap_ms(&h->o, r - 1));
                announce_all(h, r);
            }
        } else if (pthread_create(&h->ann_thr, NULL, announce_main, h) == 0) {
            h->announcing = true;
        }
    }
    for (unsigned i = 0; i < h->n && !h->announcing; i++)
        if (h->dst[i].pending)
            finish(h, i);
    return 0;
}

uint64_t nh_port_live_ns(const struct nh_handoff *h, unsigned vif)
{
    return vif < h->n ? h->dst[vif].seen_ns : 0;
}

/* ---- both --------------------------------------------------------------- */

/* Delete this migration's flows on every bridge we touched. */
static int delete_flows(struct nh_handoff *h)
{
    const char *done[NH_MAX_VIFS];
    unsigned nd = 0;
    int rc = 0;
    for (unsigned i = 0; i < h->n; i++) {
        const char *br = h->side == SIDE_SOURCE ? h->vifs[i].bridge : h->dst[i].bridge;
        bool ovs = h->side == SIDE_SOURCE ? h->vifs[i].ovs && h->src_flows
                                          : h->dst[i].flow_done;
        bool seen = false;
        for (unsigned k = 0; k < nd; k++)
            seen = seen || !strcmp(done[k], br);
        if (!ovs || !br[0] || seen)
            continue;
        done[nd++] = br;
        int r = nh_ovs_del_cookie(h->ctx, &h->o, br, h->cookie, UINT64_MAX);
        if (r < 0 && rc == 0)
            rc = r;
    }
    return rc;
}

int nh_settle(struct nh_handoff *h)
{
    if (h->settled)
        return 0;
    /* The destination keeps its flows a little longer than the source its
     * forwarding: what the source forwards last still finds the vif. */
    uint64_t settle_ms = h->o.settle_ms + (h->side == SIDE_DEST ? DEST_EXTRA_SETTLE_MS : 0);
    if (!h->o.dry_run)
        sleep_until(h->commit_ns + settle_ms * 1000000u, NULL);
    else
        fprintf(h->o.dry_run, "# settle %u ms\n", h->o.settle_ms);
    if (h->announcing) {
        pthread_join(h->ann_thr, NULL);
        h->announcing = false;
    }
    atomic_store(&h->stop, 1);
    stop_watch(h);
    struct timespec w0, w1;
    clock_gettime(CLOCK_REALTIME, &w0);
    int rc = delete_flows(h);
    clock_gettime(CLOCK_REALTIME, &w1);
    h->settled = true;
    /* wall clock: the tests line the deletion up with packet times */
    MIG_LOG(h->ctx, INFO,
            "%s: network settled, flows of cookie 0x%" PRIx64 " removed (%s) from %lld.%06ld to %lld.%06ld",
            h->domain, h->cookie, h->side == SIDE_SOURCE ? "source" : "destination",
            (long long)w0.tv_sec, w0.tv_nsec / 1000, (long long)w1.tv_sec, w1.tv_nsec / 1000);
    return rc;
}

void nh_abort(struct nh_handoff *h)
{
    if (!h || h->settled)
        return;
    atomic_store(&h->stop, 1);
    if (h->announcing) {
        pthread_join(h->ann_thr, NULL);
        h->announcing = false;
    }
    stop_watch(h);
    delete_flows(h);
    h->settled = true;
}

void nh_handoff_free(struct nh_handoff *h)
{
    if (!h)
        return;
    nh_abort(h);
    for (unsigned i = 0; i < NH_MAX_VIFS; i++) {
        nh_of_close(h->dst[i].of);
        nh_of_close(h->src_of[i]);
    }
    nh_of_close(h->guess_of);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->flow_lock);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
