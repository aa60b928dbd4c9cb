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

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libmig/blk.h>

#include "cli.h"

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
    int stop_pipe[2];
    int rc;

    if (c->npos != 2)
        return usage_error("disk-serve needs one IMAGE (a disk image or block device)");
    if (!c->disk_domain || !c->nbd_socket)
        return usage_error("disk-serve needs --domain DOM and --socket PATH");
    if (strchr(c->disk_domain, '/') || (c->disk_name && strchr(c->disk_name, '/')))
        return usage_error("disk-serve: --domain and --disk-name cannot contain '/'");
    if (cli_stop_pipe_open(stop_pipe) < 0)
        return EXIT_FAILED;
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
    cli_stop_pipe_close(stop_pipe);
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live: disk-serve %s: %s\n", p.path, mig_strerror(rc));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}
