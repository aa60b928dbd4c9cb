/*
 * xen-net.c: a Xen domain's vifs in the domain description, for the network
 * handoff (net-handoff/, issue 11). The source lists them in its info
 * (", vifN=MAC/IFNAME/BRIDGE[/IP+IP]", the syntax nh_vifs_parse reads): the
 * engine's net hook then gets an instance. The destination lists the
 * incoming domain's vifs the same way once libxl has built it (ready): the
 * names there are the new domain's, vifDOMID.DEVID unless the config names
 * them (vifname=), which the hook hands to the handoff so it finds the
 * ports the hotplug script plugs.
 *
 * Everything comes from the domain's libxl configuration
 * (libxl_device_nic: devid, mac, bridge, ifname, ip), the one xl itself
 * uses; nothing here talks to Xen.
 *
 * Entry point: mig__xen_vifs_text.
 */
#include <config.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "xen-internal.h"

#define VIF_MAX 8          /* NH_MAX_VIFS: the handoff's "vifN=" is one digit */
#define VIF_IPS_MAX 4      /* NH_MAX_IPS */
#define VIF_NAME_MAX 16    /* IFNAMSIZ, as nh_vif_parse checks */

/* A name nh_vif_parse accepts (an interface or bridge name). */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < VIF_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

int mig__xen_vifs_text(const libxl_domain_config *cfg, uint32_t domid, char *out, size_t cap,
                       unsigned *skipped_out)
{
    size_t len = 0;
    unsigned n = 0, skipped = 0;
    if (cap == 0)
        return -MIG_ETOOBIG;
    out[0] = 0;
    for (int i = 0; i < cfg->num_nics; i++) {
        const libxl_device_nic *nic = &cfg->nics[i];
        char ifname[32], ips[VIF_IPS_MAX * 16 + 8] = "", entry[160];
        const char *bridge = nic->bridge && nic->bridge[0] ? nic->bridge : "xenbr0"; /* xl's default */
        if (nic->ifname && nic->ifname[0])
            snprintf(ifname, sizeof(ifname), "%s", nic->ifname);
        else /* libxl's name for a PV vif: the backend domain's devices */
            snprintf(ifname, sizeof(ifname), "vif%" PRIu32 ".%d", domid, nic->devid);
        if (n >= VIF_MAX || !name_ok(ifname) || !name_ok(bridge)) {
            skipped++;
            continue;
        }
        /* the IPv4 addresses of ip= (xl: space-separated; others ignored) */
        if (nic->ip) {
            char copy[256], *save = NULL;
            unsigned k = 0;
            snprintf(copy, sizeof(copy), "%s", nic->ip);
            for (char *t = strtok_r(copy, " ", &save); t && k < VIF_IPS_MAX;
                 t = strtok_r(NULL, " ", &save)) {
                struct in_addr a;
                if (inet_pton(AF_INET, t, &a) != 1)
                    continue;
                size_t l = strlen(ips);
                snprintf(ips + l, sizeof(ips) - l, "%s%s", k ? "+" : "", t);
                k++;
            }
        }
        const uint8_t *m = nic->mac;
        snprintf(entry, sizeof(entry), "vif%u=%02x:%02x:%02x:%02x:%02x:%02x/%s/%s%s%s", n, m[0],
                 m[1], m[2], m[3], m[4], m[5], ifname, bridge, ips[0] ? "/" : "", ips);
        size_t el = strlen(entry) + 1;
        if (len + el + 1 > cap)
            return -MIG_ETOOBIG;
        len += (size_t)snprintf(out + len, cap - len, ",%s", entry);
        n++;
    }
    if (skipped_out)
        *skipped_out = skipped;
    return (int)n;
}
