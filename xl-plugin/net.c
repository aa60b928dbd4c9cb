/*
 * net.c: `xl-migrate-live net ...`, the network handoff by hand (a
 * migration runs it by itself through the "net" hook):
 *   net show VIF                     the vif's port as the handoff reads it
 *   net announce VIF MAC [IP...]     RARP (+ GARP per IP) in rounds
 *   net cleanup DOMAIN               remove every flow / stale port we added
 *   net plan DOMAIN VIF...           dry run of a whole handoff (VIF: xl
 *                                    syntax or MAC/IFNAME/BRIDGE[/IPS])
 * --dry-run prints the commands instead of running them; --net rundir=DIR
 * names the Open vSwitch run directory (default $OVS_RUNDIR).
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmig/net.h>

#include "cli.h"

/* The value of --net KEY=... (borrowed), or NULL. */
static const char *net_opt(const struct cli *c, const char *key)
{
    size_t n = strlen(key);
    for (unsigned i = 0; i < c->n_hook_args; i++) {
        const char *a = c->hook_args[i] + 4; /* after "net:" */
        if (strncmp(a, key, n) == 0 && a[n] == '=')
            return a + n + 1;
    }
    return NULL;
}

int xlml_net_main(struct cli *c, struct mig_ctx *ctx)
{
    const char *sub = c->npos > 1 ? c->pos[1] : "";
    const char *rundir = net_opt(c, "rundir");
    FILE *dry = c->dry_run ? stdout : NULL;
    int rc;
    if (strcmp(sub, "show") == 0) {
        if (c->npos != 3)
            return usage_error("usage: net show VIF");
        rc = mig_net_show(ctx, rundir, c->pos[2], stdout);
    } else if (strcmp(sub, "announce") == 0) {
        if (c->npos < 4)
            return usage_error("usage: net announce VIF MAC [IP...]");
        const char *r = net_opt(c, "rounds");
        rc = mig_net_announce(ctx, rundir, c->pos[2], c->pos[3], (const char *const *)c->pos + 4,
                              r ? (unsigned)atoi(r) : 0, dry);
        if (rc == -MIG_EINVAL)
            return usage_error("net announce: bad MAC or IPv4 address");
    } else if (strcmp(sub, "cleanup") == 0) {
        unsigned nb = 0, np = 0;
        if (c->npos != 3)
            return usage_error("usage: net cleanup DOMAIN");
        rc = mig_net_cleanup(ctx, rundir, c->pos[2], dry, &nb, &np);
        if (rc == 0 && !dry && c->verbosity >= 0)
            printf("net cleanup %s: flows removed from %u bridge(s), %u stale port(s) removed\n",
                   c->pos[2], nb, np);
    } else if (strcmp(sub, "plan") == 0) {
        char specs[8][256];
        const char *vifs[9] = {0}, *opts[33] = {0};
        if (c->npos < 4 || c->npos > 11)
            return usage_error("usage: net plan DOMAIN VIF... (at most 8)");
        for (int i = 3; i < c->npos; i++) {
            const char *v = c->pos[i];
            if (strstr(v, "mac=")) {
                if (mig_net_vif_from_xl(v, specs[i - 3], sizeof(specs[0])) < 0)
                    return usage_error("net plan: bad vif '%s'", v);
                v = specs[i - 3];
            }
            vifs[i - 3] = v;
        }
        for (unsigned i = 0; i < c->n_hook_args; i++)
            opts[i] = c->hook_args[i] + 4;
        rc = mig_net_plan(ctx, c->pos[2], vifs, NULL, opts, stdout);
        if (rc == -MIG_EINVAL || rc == -MIG_EPARSE)
            return usage_error("net plan: bad vif or --net option");
    } else {
        return usage_error("usage: net show VIF | announce VIF MAC [IP...] | cleanup DOMAIN | "
                           "plan DOMAIN VIF...");
    }
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live net %s: %s\n", sub, mig_strerror(rc));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}
