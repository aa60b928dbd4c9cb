/*
 * ovs.c: the OVSDB side (ovs-vsctl with argv arrays): reading a vif's port,
 * copying tag/trunks/external_ids onto the destination's port, flows by
 * cookie (ovs-ofctl), the hotplug-script actions the test-guest backend
 * needs, and the per-domain cleanup. Linux bridge ports are recognised
 * through sysfs.
 *
 * Entry points: nh_ovs_read_port, nh_ovs_apply_meta, nh_ovs_del_cookie,
 * nh_cookie, nh_cookie_domain_mask, nh_hotplug_add, nh_hotplug_remove,
 * nh_cleanup_domain, nh_flow_text.
 */
#include <config.h>

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIG_LOG_MODULE "net"
#include "nh.h"

#define VSCTL_TIMEOUT "--timeout=10"
#define RUN_MS 15000u

uint64_t nh_cookie(const char *domain, uint32_t migration)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)domain; *p; p++)
        h = (h ^ *p) * 16777619u;
    return NH_COOKIE_TAG << 48 | (uint64_t)(h & 0xffffffu) << 24 | (migration & 0xffffffu);
}

uint64_t nh_cookie_domain_mask(void)
{
    return 0xffffffffff000000ull;
}

void nh_flow_text_ports(char *buf, size_t cap, uint64_t cookie, uint16_t priority,
                        const uint8_t mac[6], int vlan, const int *ports, unsigned nports)
{
    char m[18], act[64 + 16 * NH_MAX_FWD];
    size_t n = 0;
    nh_mac_format(mac, m);
    act[0] = 0;
    if (vlan == 0)
        n = (size_t)snprintf(act, sizeof(act), "strip_vlan,");
    else if (vlan > 0)
        n = (size_t)snprintf(act, sizeof(act), "mod_vlan_vid:%d,", vlan);
    if (nports == 0)
        snprintf(act + n, sizeof(act) - n, "FLOOD");
    for (unsigned k = 0; k < nports && k < NH_MAX_FWD && n < sizeof(act); k++)
        n += (size_t)snprintf(act + n, sizeof(act) - n, "%soutput:%d", k ? "," : "", ports[k]);
    snprintf(buf, cap, "cookie=0x%" PRIx64 ",priority=%u,dl_dst=%s,actions=%s", cookie, priority,
             m, act);
}

void nh_flow_text(char *buf, size_t cap, uint64_t cookie, uint16_t priority, const uint8_t mac[6],
                  int vlan, int out_port)
{
    nh_flow_text_ports(buf, cap, cookie, priority, mac, vlan, &out_port, out_port < 0 ? 0 : 1);
}

/* OVSDB string atoms we write are always quoted; decode() only lets safe
 * characters in, so no escaping is needed. */
static bool safe_value(const char *s)
{
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@+", *s))
            return false;
    return true;
}

/* One value of an ovs-vsctl map "{k1=v1, k2="v 2"}": copy key's value. */
static void map_get(const char *map, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    out[0] = 0;
    const char *p = map;
    while ((p = strstr(p, key)) != NULL) {
        bool start = p == map || p[-1] == '{' || p[-1] == ' ' || p[-1] == '"';
        if (p > map && p[-1] == '"') /* quoted key: "iface-id"= */
            start = p - 1 == map || p[-2] == '{' || p[-2] == ' ';
        const char *e = p + klen;
        if (*e == '"')
            e++;
        if (!start || *e != '=') {
            p++;
            continue;
        }
        e++;
        size_t n = 0;
        if (*e == '"') {
            for (e++; *e && *e != '"' && n + 1 < cap; e++) {
                if (*e == '\\' && e[1])
                    e++;
                out[n++] = *e;
            }
        } else {
            for (; *e && *e != ',' && *e != '}' && n + 1 < cap; e++)
                out[n++] = *e;
        }
        out[n] = 0;
        return;
    }
}

/* Linux bridge master of 'ifname', from sysfs. */
static int linux_master(const char *ifname, char *br, size_t cap)
{
    char path[PATH_MAX], link[PATH_MAX];
    snprintf(path, sizeof(path), "/sys/class/net/%s/master", ifname);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n <= 0)
        return -MIG_ENOENT;
    link[n] = 0;
    const char *b = strrchr(link, '/');
    b = b ? b + 1 : link;
    if (strlen(b) >= cap)
        return -MIG_ETOOBIG;
    memcpy(br, b, strlen(b) + 1);
    return 0;
}

static bool ovsdb_present(const struct nh_opts *o)
{
    char path[PATH_MAX];
    struct stat st;
    if (o->dry_run)
        return true;
    snprintf(path, sizeof(path), "%s/db.sock", nh_rundir(o));
    return stat(path, &st) == 0;
}

int nh_ovs_read_port(struct mig_ctx *ctx, const struct nh_opts *o, struct nh_vif *v)
{
    char *out = NULL, dry[512];
    const char *n = v->name;
    const char *argv[] = {"ovs-vsctl", VSCTL_TIMEOUT, "port-to-br", n,
                          "--", "get", "Port", n, "tag",
                          "--", "get", "Port", n, "trunks",
                          "--", "get", "Interface", n, "external_ids",
                          "--", "get", "Interface", n, "ofport", NULL};
    int rc = -MIG_ENOENT;
    if (!n[0])
        return -MIG_EINVAL;
    if (ovsdb_present(o)) {
        char tag[16] = "[]";
        if (v->tag >= 0)
            snprintf(tag, sizeof(tag), "%d", v->tag);
        /* a dry run answers with what the caller already put in v */
        snprintf(dry, sizeof(dry), "%s\n%s\n[%s]\n{}\n%d\n", v->bridge[0] ? v->bridge : "xenbr0",
                 tag, v->trunks, v->ofport);
        rc = nh_run(ctx, o, argv, NULL, &out, dry, RUN_MS);
    }
    if (rc == 0) {
        char *save = NULL, *line[5] = {0};
        unsigned k = 0;
        for (char *l = strtok_r(out, "\n", &save); l && k < 5; l = strtok_r(NULL, "\n", &save))
            line[k++] = l;
        if (k < 5) {
            free(out);
            return -MIG_EPROTO;
        }
        snprintf(v->bridge, sizeof(v->bridge), "%s", line[0]);
        v->ovs = true;
        v->tag = strcmp(line[1], "[]") ? atoi(line[1]) : -1;
        /* "[10, 20]" -> "10,20" */
        size_t t = 0;
        for (const char *p = line[2]; *p && t + 1 < sizeof(v->trunks); p++)
            if ((*p >= '0' && *p <= '9') || *p == ',')
                v->trunks[t++] = *p;
        v->trunks[t] = 0;
        if (!o->dry_run) {
            map_get(line[3], "iface-id", v->iface_id, sizeof(v->iface_id));
            map_get(line[3], "attached-mac", v->attached_mac, sizeof(v->attached_mac));
            map_get(line[3], "vm-id", v->vm_id, sizeof(v->vm_id));
        }
        v->ofport = strcmp(line[4], "[]") ? atoi(line[4]) : -1;
        free(out);
        return 0;
    }
    /* Not an OVS port: a Linux bridge's? */
    if (linux_master(n, v->bridge, sizeof(v->bridge)) == 0) {
        v->ovs = false;
        v->tag = -1;
        v->ofport = -1;
        return 0;
    }
    MIG_LOG(ctx, WARN, "vif %s is on no OVS or Linux bridge here", n);
    return -MIG_ENOENT;
}

/* Does the trunks column "10 20" (bare; "" all) carry 'vlan'? */
static bool carries(const char *trunks, int vlan)
{
    if (!trunks[0])
        return true;
    for (const char *p = trunks; *p;) {
        char *end;
        long t = strtol(p, &end, 10);
        if (end == p)
            return false;
        if (t == vlan)
            return true;
        p = end + strspn(end, " ");
    }
    return false;
}

int nh_ovs_parse_trunk_ports(char *out, const char *br, const char *self, int vlan, int *ports,
                             unsigned *nports)
{
    enum { MAXP = 256 };
    char(*member)[NH_NAME_MAX] = calloc(MAXP, sizeof(*member));
    char(*trunk)[NH_NAME_MAX] = calloc(MAXP, sizeof(*trunk));
    unsigned nm = 0, nt = 0;
    int rc = 0;
    *nports = 0;
    if (!member || !trunk) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    /* three sections told apart by their number of fields: list-ports
     * (name), Port (name,tag,trunks), Interface (name,ofport) */
    char *save = NULL;
    for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {l, NULL, NULL, NULL};
        unsigned nf = 1;
        for (char *c = l; *c && nf < 4; c++)
            if (*c == ',') {
                *c = 0;
                f[nf++] = c + 1;
            }
        if (strlen(f[0]) >= NH_NAME_MAX || !strcmp(f[0], self) || !strcmp(f[0], br))
            continue;
        if (nf == 1 && nm < MAXP) {
            snprintf(member[nm++], NH_NAME_MAX, "%s", f[0]);
        } else if (nf == 3 && nt < MAXP && !f[1][0] && carries(f[2], vlan)) {
            bool in = false; /* Port rows come after list-ports' */
            for (unsigned k = 0; k < nm && !in; k++)
                in = !strcmp(member[k], f[0]);
            if (in)
                snprintf(trunk[nt++], NH_NAME_MAX, "%s", f[0]);
        } else if (nf == 2 && *nports < NH_MAX_FWD) {
            int ofp = atoi(f[1]);
            for (unsigned k = 0; k < nt; k++)
                if (!strcmp(trunk[k], f[0]) && ofp > 0 && ofp < 0xff00)
                    ports[(*nports)++] = ofp;
        }
    }
out:
    free(member);
    free(trunk);
    return rc;
}

int nh_ovs_trunk_ports(struct mig_ctx *ctx, const struct nh_opts *o, const char *br,
                       const char *self, int vlan, int *ports, unsigned *nports)
{
    char *out = NULL;
    const char *argv[] = {"ovs-vsctl", VSCTL_TIMEOUT, "--format=csv", "--data=bare",
                          "--no-headings", "--", "list-ports", br,
                          "--", "--columns=name,tag,trunks", "list", "Port",
                          "--", "--columns=name,ofport", "list", "Interface", NULL};
    *nports = 0;
    int rc = nh_run(ctx, o, argv, NULL, &out, "", RUN_MS);
    if (rc < 0)
        return rc;
    rc = nh_ovs_parse_trunk_ports(out, br, self, vlan, ports, nports);
    free(out);
    return rc;
}

int nh_ovs_apply_meta(struct mig_ctx *ctx, const struct nh_opts *o, const char *name,
                      const struct nh_vif *src)
{
    char tag[32], trunks[NH_VAL_MAX + 16], ids[3][NH_VAL_MAX + 40];
    const char *argv[20];
    unsigned k = 0, nport = 0;
    argv[k++] = "ovs-vsctl";
    argv[k++] = VSCTL_TIMEOUT;
    argv[k++] = "set";
    argv[k++] = "Port";
    argv[k++] = name;
    if (src->tag >= 0) {
        snprintf(tag, sizeof(tag), "tag=%d", src->tag);
        argv[k++] = tag;
        nport++;
    }
    if (src->trunks[0] && safe_value(src->trunks)) {
        snprintf(trunks, sizeof(trunks), "trunks=%s", src->trunks);
        argv[k++] = trunks;
        nport++;
    }
    if (!nport)
        k -= 3; /* nothing for the Port row: start with the Interface */
    else
        argv[k++] = "--";
    argv[k++] = "set";
    argv[k++] = "Interface";
    argv[k++] = name;
    unsigned before = k;
    const char *keys[3] = {"iface-id", "attached-mac", "vm-id"};
    const char *vals[3] = {src->iface_id, src->attached_mac, src->vm_id};
    for (unsigned i = 0; i < 3; i++) {
        if (!vals[i][0] || !safe_value(vals[i]))
            continue;
        snprintf(ids[i], sizeof(ids[i]), "external_ids:%s=\"%s\"", keys[i], vals[i]);
        argv[k++] = ids[i];
    }
    if (k == before) {
        if (!nport)
            return 0; /* the source port had nothing to copy */
        k -= 4;       /* drop "-- set Interface NAME" */
    }
    argv[k] = NULL;
    return nh_run(ctx, o, argv, NULL, NULL, NULL, RUN_MS);
}

int nh_ovs_del_cookie(struct mig_ctx *ctx, const struct nh_opts *o, const char *br,
                      uint64_t value, uint64_t mask)
{
    char match[64];
    snprintf(match, sizeof(match), "cookie=0x%" PRIx64 "/0x%" PRIx64, value, mask);
    const char *argv[] = {"ovs-ofctl", "del-flows", br, match, NULL};
    return nh_run(ctx, o, argv, NULL, NULL, NULL, RUN_MS);
}

/* A Linux bridge has /sys/class/net/BR/bridge; anything else is taken for
 * an OVS bridge when an OVSDB is here (add-port then says if it is not). */
static bool is_ovs_bridge(const struct nh_opts *o, const char *bridge)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", bridge);
    if (!o->dry_run && stat(path, &st) == 0)
        return false;
    return ovsdb_present(o);
}

/* ip link set dev IFNAME up, without a fork. */
static int link_up(struct mig_ctx *ctx, const struct nh_opts *o, const char *ifname)
{
    const char *argv[] = {"ip", "link", "set", "dev", ifname, "up", NULL};
    struct ifreq ifr;
    int rc = 0;
    if (o->dry_run)
        return nh_run(ctx, o, argv, NULL, NULL, NULL, RUN_MS);
    if (strlen(ifname) >= sizeof(ifr.ifr_name))
        return -MIG_EINVAL;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mig__from_errno(errno);
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, ifname, strlen(ifname) + 1);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        rc = mig__from_errno(errno);
    } else if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
            rc = mig__from_errno(errno);
    }
    if (rc < 0)
        MIG_LOG(ctx, ERROR, "%s: cannot set it up: %s", ifname, mig_strerror(rc));
    close(fd);
    return rc;
}

int nh_hotplug_add(struct mig_ctx *ctx, const struct nh_opts *o, const char *bridge,
                   const char *ifname, const char *domain, const uint8_t mac[6])
{
    char mark[NH_VAL_MAX + 40];
    (void)mac; /* like vif-openvswitch: the MAC is the guest's, not the port's */
    if (!safe_value(domain) || !safe_value(ifname) || !safe_value(bridge))
        return -MIG_EINVAL;
    int rc = link_up(ctx, o, ifname);
    if (rc < 0)
        return rc;
    /* xl's "bridge=BR.TAG": the port goes on BR with VLAN tag TAG */
    char br[NH_NAME_MAX], tag[16] = "";
    const char *dot = strrchr(bridge, '.');
    snprintf(br, sizeof(br), "%s", bridge);
    if (dot && dot[1] && strspn(dot + 1, "0123456789") == strlen(dot + 1) &&
        is_ovs_bridge(o, bridge) && atoi(dot + 1) < 4096) { /* (a Linux bridge keeps its name) */
        br[dot - bridge] = 0;
        snprintf(tag, sizeof(tag), "tag=%d", atoi(dot + 1));
    }
    if (is_ovs_bridge(o, br)) {
        snprintf(mark, sizeof(mark), "external_ids:migrate-live-domain=\"%s\"", domain);
        const char *argv[] = {"ovs-vsctl", VSCTL_TIMEOUT, "--", "--may-exist", "add-port", br,
                              ifname, tag[0] ? tag : "--", tag[0] ? "--" : "set",
                              tag[0] ? "set" : "Interface", tag[0] ? "Interface" : ifname,
                              tag[0] ? ifname : mark, tag[0] ? mark : NULL, NULL};
        return nh_run(ctx, o, argv, NULL, NULL, NULL, RUN_MS);
    }
    const char *argv[] = {"ip", "link", "set", "dev", ifname, "master", br, NULL};
    return nh_run(ctx, o, argv, NULL, NULL, NULL, RUN_MS);
}

int nh_hotplug_remove(struct mig_ctx *ctx, const struct nh_opts *o, const char *ifname)
{
    if (!safe_value(ifname))
        return -MIG_EINVAL;
    if (ovsdb_present(o)) {
        const char *argv[] = {"ovs-vsctl", VSCTL_TIMEOUT, "--if-exists", "del-port", ifname, NULL};
        int rc = nh_run(ctx, o, argv, NULL, NULL, NULL, RUN_MS);
        if (rc < 0)
            return rc;
    }
    char br[NH_NAME_MAX];
    if (!o->dry_run && linux_master(ifname, br, sizeof(br)) == 0) {
        const char *argv[] = {"ip", "link", "set", "dev", ifname, "nomaster", NULL};
        return nh_run(ctx, o, argv, NULL, NULL, NULL, RUN_MS);
    }
    return 0;
}

int nh_cleanup_domain(struct mig_ctx *ctx, const struct nh_opts *o, const char *domain,
                      unsigned *bridges_out, unsigned *ports_out)
{
    char *brs = NULL, *ports = NULL, cond[NH_VAL_MAX + 40];
    unsigned nb = 0, np = 0;
    int rc = 0;
    *bridges_out = *ports_out = 0;
    if (!safe_value(domain))
        return -MIG_EINVAL;
    if (!ovsdb_present(o))
        return 0; /* no OVS here: we never added anything */
    const char *lb[] = {"ovs-vsctl", VSCTL_TIMEOUT, "list-br", NULL};
    rc = nh_run(ctx, o, lb, NULL, &brs, "xenbr0\n", RUN_MS);
    if (rc < 0)
        goto out;
    uint64_t cookie = nh_cookie(domain, 0);
    char *save = NULL;
    for (char *b = strtok_r(brs, "\n", &save); b; b = strtok_r(NULL, "\n", &save)) {
        rc = nh_ovs_del_cookie(ctx, o, b, cookie, nh_cookie_domain_mask());
        if (rc < 0)
            goto out;
        nb++;
    }
    snprintf(cond, sizeof(cond), "external_ids:migrate-live-domain=\"%s\"", domain);
    const char *find[] = {"ovs-vsctl", VSCTL_TIMEOUT, "--format=csv", "--data=bare",
                          "--no-headings", "--columns=name,ofport", "find", "Interface", cond,
                          NULL};
    rc = nh_run(ctx, o, find, NULL, &ports, "", RUN_MS);
    if (rc < 0)
        goto out;
    save = NULL;
    for (char *p = strtok_r(ports, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
        /* "name,ofport": only ports whose device is gone (ofport -1 or
         * none); a live one belongs to a running domain */
        char *comma = strchr(p, ',');
        if (!comma || (comma[1] && strcmp(comma + 1, "-1")))
            continue;
        *comma = 0;
        const char *del[] = {"ovs-vsctl", VSCTL_TIMEOUT, "--if-exists", "del-port", p, NULL};
        rc = nh_run(ctx, o, del, NULL, NULL, NULL, RUN_MS);
        if (rc < 0)
            goto out;
        np++;
    }
    *bridges_out = nb;
    *ports_out = np;
out:
    free(brs);
    free(ports);
    return rc;
}
