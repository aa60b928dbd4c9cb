/*
 * config.c: a domain's vifs as backends list them in the domain description
 * ("vifN=MAC/IFNAME/BRIDGE[/IP+IP]"), and the translation from Xen's vif
 * syntax ("mac=..,bridge=..,vifname=..,ip=..") the command accepts.
 *
 * Entry points: nh_vifs_parse, nh_vif_parse, nh_vif_from_xl.
 */
#include <config.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "nh.h"

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= 16) /* IFNAMSIZ */
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", s[i]))
            return false;
    return true;
}

int nh_vif_parse(const char *value, struct nh_vif_spec *out)
{
    char buf[256], *save = NULL, *f[4] = {0};
    unsigned k = 0;
    if (strlen(value) >= sizeof(buf))
        return -MIG_EPARSE;
    strcpy(buf, value);
    for (char *t = strtok_r(buf, "/", &save); t && k < 4; t = strtok_r(NULL, "/", &save))
        f[k++] = t;
    if (k < 3 || strtok_r(NULL, "/", &save))
        return -MIG_EPARSE;
    memset(out, 0, sizeof(*out));
    if (nh_mac_parse(f[0], out->mac) < 0 || !name_ok(f[1], strlen(f[1])) ||
        !name_ok(f[2], strlen(f[2])))
        return -MIG_EPARSE;
    memcpy(out->ifname, f[1], strlen(f[1]) + 1);
    memcpy(out->bridge, f[2], strlen(f[2]) + 1);
    if (f[3]) {
        char *s2 = NULL;
        for (char *ip = strtok_r(f[3], "+", &s2); ip; ip = strtok_r(NULL, "+", &s2)) {
            if (out->nips >= NH_MAX_IPS || inet_pton(AF_INET, ip, &out->ips[out->nips]) != 1)
                return -MIG_EPARSE;
            out->nips++;
        }
    }
    return 0;
}

int nh_vifs_parse(const char *config, struct nh_vif_spec *out, unsigned max, unsigned *n_out)
{
    char *copy = strdup(config ? config : ""), *save = NULL;
    int rc = 0;
    unsigned n = 0;
    if (!copy)
        return -MIG_ENOMEM;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strncmp(t, "vif", 3) || t[3] < '0' || t[3] > '9' || t[4] != '=')
            continue;
        if (n >= max || (unsigned)(t[3] - '0') >= NH_MAX_VIFS) {
            rc = -MIG_EPARSE;
            break;
        }
        rc = nh_vif_parse(t + 5, &out[n]);
        if (rc < 0)
            break;
        n++;
    }
    free(copy);
    *n_out = rc < 0 ? 0 : n;
    return rc;
}

int nh_vif_from_xl(const char *xl, char *out, size_t cap)
{
    char buf[512], *save = NULL, mac[32] = "", bridge[64] = "", vifname[64] = "", ips[200] = "";
    if (strlen(xl) >= sizeof(buf))
        return -MIG_EPARSE;
    strcpy(buf, xl);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *v = strchr(t, '=');
        if (!v)
            return -MIG_EPARSE;
        *v++ = 0;
        size_t n = strlen(v);
        if (!strcmp(t, "mac") && n < sizeof(mac))
            memcpy(mac, v, n + 1);
        else if (!strcmp(t, "bridge") && n < sizeof(bridge))
            memcpy(bridge, v, n + 1);
        else if (!strcmp(t, "vifname") && n < sizeof(vifname))
            memcpy(vifname, v, n + 1);
        else if (!strcmp(t, "ip") && n < sizeof(ips)) {
            for (size_t i = 0; i <= n; i++) /* xl separates IPs with spaces */
                ips[i] = v[i] == ' ' ? '+' : v[i];
        } else
            return -MIG_EPARSE;
    }
    if (!mac[0] || !bridge[0] || !vifname[0])
        return -MIG_EPARSE;
    if ((size_t)snprintf(out, cap, "%s/%s/%s%s%s", mac, vifname, bridge, ips[0] ? "/" : "", ips) >=
        cap)
        return -MIG_ETOOBIG;
    struct nh_vif_spec check;
    return nh_vif_parse(out, &check);
}
