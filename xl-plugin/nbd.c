/*
 * nbd.c: `xl-migrate-live nbd-serve [--socket PATH] [--tcp-port N]
 * [--read-only] [--daemon] FILE`: serve a disk image or block device over
 * NBD (libmig/nbd.h) until SIGTERM/SIGINT. --daemon is the managed-disk
 * mode for a supervisor (configs/systemd): it stays in the foreground,
 * locks its memory and marks itself an I/O flusher (docs/nbd-server.md).
 */
#include <config.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libmig/nbd.h>

#include "cli.h"

static int stop_pipe[2] = {-1, -1};

static void on_stop(int sig)
{
    (void)sig;
    ssize_t w = write(stop_pipe[1], "x", 1);
    (void)w;
}

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
    struct sigaction sa = {.sa_handler = on_stop};
    int rc;

    if (c->npos != 2)
        return usage_error("nbd-serve needs one FILE (a disk image or block device)");
    if (!c->nbd_socket && c->nbd_tcp_port < 0)
        return usage_error("nbd-serve needs --socket PATH or --tcp-port N");
    if (pipe2(stop_pipe, O_CLOEXEC) < 0) {
        perror("xl-migrate-live: pipe");
        return EXIT_FAILED;
    }
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    p.path = c->pos[1];
    p.socket = c->nbd_socket;
    p.tcp_port = c->nbd_tcp_port;
    p.read_only = c->nbd_read_only;
    p.harden = c->nbd_daemon;
    p.stop_fd = stop_pipe[0];
    p.ready = print_ready;
    p.ready_opaque = c;
    rc = mig_nbd_serve(ctx, &p);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live: nbd-serve %s: %s\n", p.path, mig_strerror(rc));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}
