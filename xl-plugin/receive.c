/*
 * receive.c: the destination and bookkeeping subcommands: 'receive' (what
 * ssh runs on the destination: one session on stdin/stdout), 'listen URI'
 * (a daemon for tls:/tcp:), 'resolve DOMAIN' (settle an in-doubt
 * migration) and 'facts' (this host's facts as JSON).
 */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static volatile int stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static const char *backend_for(const struct cli *c, char *buf, size_t len)
{
    if (c->backend)
        return c->backend;
    if (c->host_dir) {
        snprintf(buf, len, "sim:host=%s", c->host_dir);
        return buf;
    }
    return "xen:";
}

void cli_default_disk_dir(struct cli *c)
{
    /* a test-guest host receives its guests' disks into DIR/disks/NAME/,
     * where it serves them at commit (docs/sim-backend.md, "The disk") */
    if (!c->host_dir || c->backend)
        return;
    for (unsigned i = 0; i < c->n_hook_args; i++)
        if (strncmp(c->hook_args[i], "blk:target-dir=", 15) == 0)
            return;
    if (c->n_hook_args < sizeof(c->hook_args) / sizeof(c->hook_args[0]) - 1 &&
        asprintf(&c->hook_args[c->n_hook_args], "blk:target-dir=%s/disks", c->host_dir) > 0) {
        c->n_hook_args++;
        c->mp.hook_args = (const char *const *)c->hook_args;
    }
}

static void recv_params(const struct cli *c, struct mig_recv_params *rp, char *buf, size_t len)
{
    mig_recv_params_init(rp);
    rp->backend = backend_for(c, buf, len);
    rp->link = c->mp.link;
    if (!c->parallel_given)
        rp->link.channels = 0; /* what the source asks, up to the transport's limit */
    rp->state_dir = c->mp.state_dir;
    rp->hook_args = c->mp.hook_args; /* --disk-map, --disk-dir, --net */
}

int cmd_receive(struct cli *c, struct mig_ctx *ctx)
{
    struct mig_recv_params rp;
    char buf[4200];
    if (c->npos != 1)
        return usage_error("receive takes no arguments (it serves one migration on stdin/stdout)");
    cli_default_disk_dir(c);
    recv_params(c, &rp, buf, sizeof(buf));
    signal(SIGPIPE, SIG_IGN);
    int rc = mig_receive_fds(ctx, &rp, STDIN_FILENO, STDOUT_FILENO);
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live receive: %s\n", mig_strerror(rc));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

int cmd_listen(struct cli *c, struct mig_ctx *ctx)
{
    struct mig_recv_params rp;
    struct sigaction sa = {.sa_handler = on_stop};
    char buf[4200];
    if (c->npos != 2)
        return usage_error("usage: xl-migrate-live listen URI (tls:ADDR:PORT or tcp:ADDR:PORT)");
    if (strncmp(c->pos[1], "tcp:", 4) == 0 && !c->mp.link.psk_file && !c->mp.link.insecure)
        return usage_error("listen %s: a tcp: listener needs --psk FILE (or --insecure on a "
                           "trusted network)",
                           c->pos[1]);
    cli_default_disk_dir(c);
    recv_params(c, &rp, buf, sizeof(buf));
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = mig_listen_serve(ctx, &rp, c->pos[1], &stop_flag);
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live listen: %s: %s\n", c->pos[1], mig_strerror(rc));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

int cmd_resolve(struct cli *c, struct mig_ctx *ctx)
{
    enum mig_outcome o;
    char *dom = NULL;
    if (c->npos != 2)
        return usage_error("usage: xl-migrate-live resolve DOMAIN");
    const char *d = c->pos[1];
    if (strncmp(d, "sim:", 4) == 0 || strncmp(d, "xen:", 4) == 0) {
        if (strncmp(d, "sim:", 4) == 0 && c->host_dir && !strstr(d, ",host="))
            asprintf(&dom, "%s,host=%s", d, c->host_dir) < 0 ? (dom = NULL) : 0;
        else
            dom = strdup(d);
    } else if (c->host_dir) {
        asprintf(&dom, "sim:%s,host=%s", d, c->host_dir) < 0 ? (dom = NULL) : 0;
    } else {
        asprintf(&dom, "xen:%s", d) < 0 ? (dom = NULL) : 0;
    }
    if (!dom)
        return EXIT_FAILED;
    int lock_fd = lock_domain(c->mp.state_dir, dom);
    if (lock_fd == -2) {
        free(dom);
        return EXIT_LOCKED;
    }
    int rc = mig_resolve(ctx, c->mp.state_dir, dom, &c->mp.link, &o);
    if (lock_fd >= 0)
        close(lock_fd);
    if (c->json) {
        printf("{\"domain\":");
        json_str(stdout, dom);
        printf(",\"outcome\":\"%s\",\"exit_code\":%d}\n", mig_outcome_name(o),
               rc == 0 ? EXIT_OK : rc == -MIG_EINDOUBT ? EXIT_INDOUBT : EXIT_FAILED);
    } else if (rc == 0) {
        printf("%s: %s on the destination; %s\n", dom, mig_outcome_name(o),
               o == MIG_OUTCOME_COMMITTED ? "source copy destroyed" : "source copy resumed");
    } else {
        printf("%s: %s (%s)\n", dom, rc == -MIG_EINDOUBT ? "still in doubt" : "not resolved",
               mig_strerror(rc));
    }
    free(dom);
    if (rc == 0)
        return EXIT_OK;
    return rc == -MIG_EINDOUBT ? EXIT_INDOUBT : EXIT_FAILED;
}
