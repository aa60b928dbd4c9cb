/*
 * hook.c: the network handoff as an engine hook class ("net", wire id
 * MIG_HOOK_ID_NET; libmig/src/session/hooks.h). A domain whose description
 * lists vifs (nh_vifs_parse) gets an instance; one without vifs costs
 * nothing.
 *
 *   source  begin:  read the vifs' ports, send their description
 *           commit: (after COMMIT-ACK) forward the MACs to the uplink
 *           settle: (after the source copy is destroyed) wait out the settle
 *                   period, delete our flows
 *           abort:  delete our flows
 *   dest    begin:  check the description, start watching the OVSDB
 *           devices: (after the backend's ready) the vifs' names here
 *           commit: (after the domain's commit op) announce
 *           abort:  delete our flows; free: settle (wait, delete) if committed
 *
 * Arguments ("net:KEY=VALUE", --net KEY=VALUE on the command line): off=1,
 * rundir=DIR, uplink=PORT, settle=MS, rounds=N, gap=MS, wait=MS, ofctl=1.
 *
 * Entry point: mig__net_hook_register.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MIG_LOG_MODULE "net"
#include "hooks.h"
#include "nh.h"

struct net_hook {
    struct mig__hook base;
    struct mig_ctx *ctx;
    struct nh_opts o;
    char rundir[4096], uplink[NH_NAME_MAX];
    struct nh_handoff *h;   /* owned */
    bool committed;
};

static struct net_hook *to_net(struct mig__hook *h)
{
    return (struct net_hook *)h;
}

static unsigned num_arg(const struct mig__hook_env *env, const char *key, unsigned dflt,
                        unsigned max)
{
    const char *v = mig__hook_arg(env, "net", key, 0);
    if (!v)
        return dflt;
    char *end;
    unsigned long x = strtoul(v, &end, 10);
    return *end || x > max ? dflt : (unsigned)x;
}

static int src_begin(struct mig__hook *hk, struct mig__hook_io *io, void **blob_out,
                     size_t *len_out)
{
    struct net_hook *n = to_net(hk);
    char *text = NULL;
    (void)io;
    int rc = nh_src_begin(n->h);
    if (rc < 0)
        return mig__hook_fail(hk, rc, "network handoff: cannot read the vifs' ports: %s",
                              mig_strerror(rc));
    rc = nh_handoff_encode(n->h, &text);
    if (rc < 0)
        return rc;
    *blob_out = text;
    *len_out = strlen(text);
    return 0;
}

static int src_commit(struct mig__hook *hk)
{
    return nh_src_commit(to_net(hk)->h);
}

static int src_settle(struct mig__hook *hk)
{
    return nh_settle(to_net(hk)->h);
}

static void src_abort(struct mig__hook *hk, int why)
{
    (void)why;
    nh_abort(to_net(hk)->h);
}

static int dst_begin(struct mig__hook *hk, const void *blob, size_t len)
{
    struct net_hook *n = to_net(hk);
    int rc = nh_handoff_decode(n->ctx, &n->o, blob, len, &n->h);
    if (rc < 0)
        return mig__hook_fail(hk, rc, "network handoff: the source's vif description is invalid");
    rc = nh_dst_begin(n->h);
    if (rc < 0)
        return mig__hook_fail(hk, rc, "network handoff: cannot watch the OVSDB: %s",
                              mig_strerror(rc));
    return 0;
}

static int dst_commit(struct mig__hook *hk)
{
    struct net_hook *n = to_net(hk);
    n->committed = true;
    return n->h ? nh_dst_commit(n->h) : 0;
}

/* The new domain's vifs as the backend names them here (xen:
 * vifNEWDOMID.N): the ports to watch for and announce from, by MAC. */
static int dst_devices(struct mig__hook *hk, const char *text)
{
    struct net_hook *n = to_net(hk);
    struct nh_vif_spec vifs[NH_MAX_VIFS];
    unsigned nv = 0;
    if (!n->h)
        return 0;
    int rc = nh_vifs_parse(text, vifs, NH_MAX_VIFS, &nv);
    if (rc < 0)
        return rc;
    for (unsigned k = 0; k < nv; k++)
        for (unsigned i = 0; i < nh_handoff_nvifs(n->h); i++)
            if (!memcmp(nh_handoff_vif(n->h, i)->mac, vifs[k].mac, 6)) {
                MIG_LOG(n->ctx, INFO, "vif %s here is %s", nh_handoff_vif(n->h, i)->name,
                        vifs[k].ifname);
                /* the bridge first: the watcher matches the new name
                 * from the moment it is set */
                rc = nh_handoff_set_bridge(n->h, i, vifs[k].bridge);
                if (rc == 0)
                    rc = nh_handoff_set_ifname(n->h, i, vifs[k].ifname);
                if (rc < 0)
                    return rc;
            }
    return 0;
}

static void dst_abort(struct mig__hook *hk, int why)
{
    (void)why;
    nh_abort(to_net(hk)->h);
}

static void net_free(struct mig__hook *hk)
{
    struct net_hook *n = to_net(hk);
    if (!n)
        return;
    /* The destination has no settle point of its own: the session is over
     * when its hooks are freed, and the receiver stays until the flows are
     * gone (settle_ms after COMMIT at most). */
    if (n->h && n->committed)
        nh_settle(n->h);
    nh_handoff_free(n->h);
    free(n);
}

static const struct mig__hook_ops net_ops = {
    .src_begin = src_begin,
    .src_commit = src_commit,
    .src_settle = src_settle,
    .src_abort = src_abort,
    .dst_begin = dst_begin,
    .dst_devices = dst_devices,
    .dst_commit = dst_commit,
    .dst_abort = dst_abort,
    .free = net_free,
};

static struct net_hook *hook_new(const struct mig__hook_env *env)
{
    struct net_hook *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->base.ops = &net_ops;
    n->ctx = env->ctx;
    nh_opts_init(&n->o);
    const char *v = mig__hook_arg(env, "net", "rundir", 0);
    if (v && strlen(v) < sizeof(n->rundir)) {
        strcpy(n->rundir, v);
        n->o.rundir = n->rundir;
    }
    v = mig__hook_arg(env, "net", "uplink", 0);
    if (v && strlen(v) < sizeof(n->uplink)) {
        strcpy(n->uplink, v);
        n->o.uplink = n->uplink;
    }
    n->o.settle_ms = num_arg(env, "settle", n->o.settle_ms, 600000);
    n->o.rounds = num_arg(env, "rounds", n->o.rounds, 20);
    n->o.first_gap_ms = num_arg(env, "gap", n->o.first_gap_ms, 10000);
    n->o.port_wait_ms = num_arg(env, "wait", n->o.port_wait_ms, 60000);
    n->o.use_ofctl = num_arg(env, "ofctl", 0, 1) == 1;
    return n;
}

static int net_src_new(const struct mig__hook_env *env, struct mig__hook **h_out)
{
    struct nh_vif_spec vifs[NH_MAX_VIFS];
    unsigned nv = 0;
    uint32_t mig = 0;
    *h_out = NULL;
    if (num_arg(env, "off", 0, 1) == 1)
        return 0;
    int rc = nh_vifs_parse(env->info->config, vifs, NH_MAX_VIFS, &nv);
    if (rc < 0) {
        MIG_LOG(env->ctx, ERROR, "domain %s: malformed vif in its description", env->info->name);
        return rc;
    }
    if (nv == 0)
        return 0;
    struct net_hook *n = hook_new(env);
    if (!n)
        return -MIG_ENOMEM;
    if (getrandom(&mig, sizeof(mig), 0) != sizeof(mig))
        mig = (uint32_t)mig__now_ns();
    rc = nh_handoff_new(env->ctx, &n->o, env->info->name, mig, &n->h);
    for (unsigned i = 0; rc == 0 && i < nv; i++)
        rc = nh_handoff_add_vif(n->h, vifs[i].mac, vifs[i].ifname, vifs[i].ips, vifs[i].nips);
    if (rc < 0) {
        net_free(&n->base);
        return rc;
    }
    *h_out = &n->base;
    return 0;
}

static int net_dst_new(const struct mig__hook_env *env, struct mig__hook **h_out)
{
    struct net_hook *n = hook_new(env);
    if (!n)
        return -MIG_ENOMEM;
    *h_out = &n->base;
    return 0;
}

static const struct mig__hook_class net_class = {
    .name = "net",
    .id = MIG_HOOK_ID_NET,
    .src_new = net_src_new,
    .dst_new = net_dst_new,
};

int mig__net_hook_register(struct mig_ctx *ctx)
{
    return mig__hook_register(ctx, &net_class);
}
