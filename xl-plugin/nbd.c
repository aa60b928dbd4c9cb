/*
 * nbd.c: `xl-migrate-live nbd-serve [--socket PATH] [--tcp-port N]
 * [--read-only] [--daemon] FILE`: serve a disk image or block device over
 * NBD (libmig/nbd.h) until SIGTERM/SIGINT. --daemon is the managed-disk
 * mode for a supervisor (configs/systemd): it stays in the foreground,
 * locks its memory and marks itself an I/O flusher (docs/nbd-server.md).
 */
#include <config.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libmig/nbd.h>

#include "cli.h"

static void print_ready(void *opaque, uint16_t port)
{
    const struct cli *c = opaque;
    if (c->verbosity < 0)
        return;
    if (c->nbd_socket)
        printf("nbd-serve: nbd+unix:///?socket=%s\n", c->nbd_socket);
    if (c->nbd_tcp_port >= 0)
        printf("nbd-serve: nbd://127.0.0.1:%u/\n", port);
    fflush(stdout);
}

int xlml_nbd_serve_main(struct cli *c, struct mig_ctx *ctx)
{
    struct mig_nbd_serve_params p = {0};
    int stop_pipe[2];
    int rc;

    if (c->npos != 2)
        return usage_error("nbd-serve needs one FILE (a disk image or block device)");
    if (!c->nbd_socket && c->nbd_tcp_port < 0)
        return usage_error("nbd-serve needs --socket PATH or --tcp-port N");
    if (cli_stop_pipe_open(stop_pipe) < 0)
        return EXIT_FAILED;
    p.path = c->pos[1];
    p.socket = c->nbd_socket;
    p.tcp_port = c->nbd_tcp_port;
    p.read_only = c->nbd_read_only;
    p.harden = c->nbd_daemon;
    p.stop_fd = stop_pipe[0];
    p.ready = print_ready;
    p.ready_opaque = c;
    rc = mig_nbd_serve(ctx, &p);
    cli_stop_pipe_close(stop_pipe);
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live: nbd-serve %s: %s\n", p.path, mig_strerror(rc));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}
