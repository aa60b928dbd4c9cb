/*
 * disk.c: `xl-migrate-live disk-serve --domain DOM --socket PATH
 * [--disk-name NAME] [--state-dir DIR] [--daemon] IMAGE`: serve IMAGE as a
 * managed disk of DOM (libmig/blk.h): an NBD export on PATH whose every
 * write goes through the block mirror, and the control socket
 * STATE_DIR/disks/DOM/NAME.ctl through which migrations of DOM mirror it.
 * Serves until SIGTERM/SIGINT. --daemon: lock memory and mark the process
 * an I/O flusher (configs/systemd/xl-migrate-live-disk@.service).
 */
#include <config.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libmig/blk.h>

#include "cli.h"

static int stop_pipe[2] = {-1, -1};

static void on_stop(int sig)
{
    (void)sig;
    ssize_t w = write(stop_pipe[1], "x", 1);
    (void)w;
}

static void print_ready(void *opaque, const char *ctl_path)
{
    const struct cli *c = opaque;
    if (c->verbosity < 0)
        return;
    printf("disk-serve: nbd+unix:///?socket=%s control=%s\n", c->nbd_socket, ctl_path);
    fflush(stdout);
}

int xlml_disk_serve_main(struct cli *c, struct mig_ctx *ctx)
{
    struct mig_disk_serve_params p = {0};
    struct sigaction sa = {.sa_handler = on_stop};
    int rc;

    if (c->npos != 2)
        return usage_error("disk-serve needs one IMAGE (a disk image or block device)");
    if (!c->disk_domain || !c->nbd_socket)
        return usage_error("disk-serve needs --domain DOM and --socket PATH");
    if (strchr(c->disk_domain, '/') || (c->disk_name && strchr(c->disk_name, '/')))
        return usage_error("disk-serve: --domain and --disk-name cannot contain '/'");
    if (pipe2(stop_pipe, O_CLOEXEC) < 0) {
        perror("xl-migrate-live: pipe");
        return EXIT_FAILED;
    }
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    p.path = c->pos[1];
    p.domain = c->disk_domain;
    p.name = c->disk_name;
    p.state_dir = c->mp.state_dir;
    p.socket = c->nbd_socket;
    p.harden = c->nbd_daemon;
    p.stop_fd = stop_pipe[0];
    p.ready = print_ready;
    p.ready_opaque = c;
    rc = mig_disk_serve(ctx, &p);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live: disk-serve %s: %s\n", p.path, mig_strerror(rc));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}
