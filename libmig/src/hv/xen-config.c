/*
 * xen-config.c: the destination's allow-list for the libxl configuration
 * that arrives from the source (docs/xen-stream.md, "The configuration is
 * hostile input"), and the parsing of its disk/net maps. Works on a parsed
 * libxl_domain_config only: no hypervisor call, so it is tested as is.
 *
 * Entry points: mig__xen_config_sanitize, mig__xen_parse_map,
 * mig__xen_parse_dirs, mig__xen_rules_dispose.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIG_LOG_MODULE "hv-xen"
#include "xen-internal.h"

int mig__xen_parse_map(const char *text, struct mig__xen_map_entry *map, unsigned max,
                       unsigned *n_inout)
{
    char *copy = strdup(text), *save = NULL;
    int rc = 0;
    if (!copy)
        return -MIG_ENOMEM;
    for (char *pair = strtok_r(copy, ";", &save); pair; pair = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(pair, '=');
        if (!eq || eq == pair || !eq[1] || strchr(eq + 1, '=')) {
            rc = -MIG_EINVAL;
            goto out;
        }
        *eq = 0;
        if (*n_inout >= max) {
            rc = -MIG_ETOOBIG;
            goto out;
        }
        map[*n_inout].src = strdup(pair);
        map[*n_inout].dst = strdup(eq + 1);
        (*n_inout)++;
        if (!map[*n_inout - 1].src || !map[*n_inout - 1].dst) {
            rc = -MIG_ENOMEM;
            goto out;
        }
    }
out:
    free(copy);
    return rc;
}

int mig__xen_parse_dirs(const char *text, struct mig__xen_rules *rules)
{
    char *copy = strdup(text), *save = NULL;
    int rc = 0;
    if (!copy)
        return -MIG_ENOMEM;
    for (unsigned i = 0; i < rules->n_kernel_dirs; i++)
        free(rules->kernel_dirs[i]);
    rules->n_kernel_dirs = 0;
    for (char *d = strtok_r(copy, ";", &save); d; d = strtok_r(NULL, ";", &save)) {
        size_t n = strlen(d);
        while (n > 1 && d[n - 1] == '/')
            d[--n] = 0;
        if (d[0] != '/' || strstr(d, "/..") || rules->n_kernel_dirs >= MIG_XEN_MAX_DIRS) {
            rc = -MIG_EINVAL;
            goto out;
        }
        rules->kernel_dirs[rules->n_kernel_dirs] = strdup(d);
        if (!rules->kernel_dirs[rules->n_kernel_dirs++]) {
            rc = -MIG_ENOMEM;
            goto out;
        }
    }
out:
    free(copy);
    return rc;
}

void mig__xen_rules_dispose(struct mig__xen_rules *r)
{
    for (unsigned i = 0; i < r->n_disks; i++) {
        free(r->disks[i].src);
        free(r->disks[i].dst);
    }
    for (unsigned i = 0; i < r->n_nets; i++) {
        free(r->nets[i].src);
        free(r->nets[i].dst);
    }
    for (unsigned i = 0; i < r->n_kernel_dirs; i++)
        free(r->kernel_dirs[i]);
    memset(r, 0, sizeof(*r));
}

static const char *lookup(const struct mig__xen_map_entry *map, unsigned n, const char *src)
{
    for (unsigned i = 0; src && i < n; i++)
        if (strcmp(map[i].src, src) == 0)
            return map[i].dst;
    return NULL;
}

static int refuse(struct mig_ctx *ctx, char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(struct mig_ctx *ctx, char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    MIG_LOG(ctx, ERROR, "incoming configuration refused: %s", why);
    return -MIG_EPERM;
}

/* A path libxl will read later (direct-boot kernel at the next reboot). */
static bool path_allowed(const struct mig__xen_rules *r, const char *path)
{
    if (!path || !*path)
        return true;
    if (path[0] != '/' || strstr(path, "/../") || strstr(path, "/./"))
        return false;
    for (unsigned i = 0; i < r->n_kernel_dirs; i++) {
        size_t n = strlen(r->kernel_dirs[i]);
        if (strncmp(path, r->kernel_dirs[i], n) == 0 && path[n] == '/')
            return true;
    }
    return false;
}

static int replace(char **field, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return -MIG_ENOMEM;
    free(*field);
    *field = v;
    return 0;
}

static bool set(const char *s)
{
    return s && *s;
}

/* libxl_defbool_val() asserts on a default value. */
static bool is_true(libxl_defbool d)
{
    return !libxl_defbool_is_default(d) && libxl_defbool_val(d);
}

int mig__xen_config_sanitize(struct mig_ctx *ctx, const struct mig__xen_rules *rules,
                             libxl_domain_config *cfg, char *why, size_t why_len)
{
    libxl_domain_create_info *c = &cfg->c_info;
    libxl_domain_build_info *b = &cfg->b_info;
    int rc;

    if (c->type == LIBXL_DOMAIN_TYPE_PV || b->type == LIBXL_DOMAIN_TYPE_PV)
        return refuse(ctx, why, why_len,
                      "PV guests are not supported (no log-dirty without "
                      "shadow paging)");
    bool hvm = c->type == LIBXL_DOMAIN_TYPE_HVM && b->type == LIBXL_DOMAIN_TYPE_HVM;
    if (!hvm && (c->type != LIBXL_DOMAIN_TYPE_PVH || b->type != LIBXL_DOMAIN_TYPE_PVH))
        return refuse(ctx, why, why_len, "only PVH and HVM guests are supported (type %s)",
                      libxl_domain_type_to_string(c->type));
    if (hvm && (rc = mig__xen_hvm_check(ctx, cfg, why, why_len)) < 0)
        return rc;
    /* Anything that makes dom0 run or read something chosen by the peer. */
    if (set(b->bootloader) || (b->bootloader_args && b->bootloader_args[0]))
        return refuse(ctx, why, why_len, "bootloader '%s' is not allowed",
                      b->bootloader ? b->bootloader : "");
    if (set(b->device_model) || set(b->device_model_user) || set(b->device_model_ssid_label) ||
        b->device_model_ssidref || is_true(b->device_model_stubdomain) ||
        set(b->stubdomain_kernel) || set(b->stubdomain_ramdisk) || set(b->stubdomain_cmdline) ||
        (b->extra && b->extra[0]) || (b->extra_pv && b->extra_pv[0]) ||
        (b->extra_hvm && b->extra_hvm[0]))
        return refuse(ctx, why, why_len, "device model settings (override '%s') are not allowed",
                      b->device_model ? b->device_model : "");
    if ((c->xsdata && c->xsdata[0]) || (c->platformdata && c->platformdata[0]))
        return refuse(ctx, why, why_len, "xenstore/platform data in the configuration");
    if (c->ssidref || set(c->ssid_label) || b->exec_ssidref || set(b->exec_ssid_label))
        return refuse(ctx, why, why_len, "XSM labels are not carried");
    if (is_true(c->driver_domain))
        return refuse(ctx, why, why_len, "driver domains are not migrated");
    if ((c->passthrough != LIBXL_PASSTHROUGH_DEFAULT &&
         c->passthrough != LIBXL_PASSTHROUGH_DISABLED) ||
        cfg->num_pcidevs || cfg->num_rdms || cfg->num_dtdevs || b->num_iomem || b->num_ioports ||
        b->num_irqs)
        return refuse(ctx, why, why_len, "device passthrough cannot be migrated");
    if (cfg->num_vfbs || cfg->num_vkbs || cfg->num_vtpms || cfg->num_p9s || cfg->num_pvcallsifs ||
        cfg->num_vdispls || cfg->num_vsnds || cfg->num_channels || cfg->num_usbctrls ||
        cfg->num_usbdevs)
        return refuse(ctx, why, why_len, "only disks and vifs are allowed as devices");
    if (!path_allowed(rules, b->kernel) || !path_allowed(rules, b->ramdisk) ||
        !path_allowed(rules, b->device_tree) ||
        (!hvm && !path_allowed(rules, b->u.pvh.pvshim_path)))
        return refuse(ctx, why, why_len, "kernel/ramdisk '%s' outside the allowed directories",
                      b->kernel ? b->kernel : (b->ramdisk ? b->ramdisk : "?"));

    for (int i = 0; i < cfg->num_disks; i++) {
        libxl_device_disk *d = &cfg->disks[i];
        const char *dst;
        if (set(d->script))
            return refuse(ctx, why, why_len, "disk %s: script '%s' is not allowed",
                          d->vdev ? d->vdev : "?", d->script);
        if (d->backend_domid || set(d->backend_domname))
            return refuse(ctx, why, why_len, "disk %s: only dom0 backends",
                          d->vdev ? d->vdev : "?");
        if (set(d->colo_host) || set(d->active_disk) || set(d->hidden_disk) || set(d->colo_export))
            return refuse(ctx, why, why_len, "disk %s: COLO settings", d->vdev ? d->vdev : "?");
        if (!set(d->pdev_path) && d->is_cdrom)
            continue; /* an empty CD drive */
        dst = lookup(rules->disks, rules->n_disks, d->pdev_path);
        if (!dst)
            return refuse(ctx, why, why_len, "disk %s: '%s' is not in the disk-map",
                          d->vdev ? d->vdev : "?", d->pdev_path ? d->pdev_path : "");
        rc = replace(&d->pdev_path, dst);
        if (rc < 0)
            return rc;
    }
    for (int i = 0; i < cfg->num_nics; i++) {
        libxl_device_nic *n = &cfg->nics[i];
        const char *dst;
        if (set(n->script))
            return refuse(ctx, why, why_len, "vif %d: script '%s' is not allowed", i, n->script);
        if (n->backend_domid || set(n->backend_domname))
            return refuse(ctx, why, why_len, "vif %d: only dom0 backends", i);
        if (set(n->gatewaydev) || set(n->coloft_forwarddev))
            return refuse(ctx, why, why_len, "vif %d: gatewaydev/COLO settings", i);
        dst = lookup(rules->nets, rules->n_nets, n->bridge);
        if (!dst)
            return refuse(ctx, why, why_len, "vif %d: bridge '%s' is not in the net-map", i,
                          n->bridge ? n->bridge : "");
        rc = replace(&n->bridge, dst);
        if (rc < 0)
            return rc;
    }
    if (c->pool_name) {
        MIG_LOG(ctx, INFO, "cpupool '%s' dropped: the default pool is used", c->pool_name);
        free(c->pool_name);
        c->pool_name = NULL;
        c->poolid = 0;
    }
    return 0;
}
