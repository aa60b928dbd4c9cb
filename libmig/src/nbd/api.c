/*
 * api.c: the exported mig_nbd_serve() (libmig/nbd.h): open the file
 * export, build the server, listen, optionally harden the process, serve
 * until the stop descriptor is readable, tear down.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <libmig/nbd.h>

#include "nbd-internal.h"

int mig_nbd_serve(struct mig_ctx *ctx, const struct mig_nbd_serve_params *p)
{
    struct mig__nbd_file *f = NULL;
    struct mig__nbd_server *srv = NULL;
    struct mig__nbd_export exp;
    /* Locked memory is dear in dom0: a managed disk has one kernel client
     * (and room for its reconnect), so two connections unless told. */
    struct mig__nbd_server_config cfg = {
        .max_payload = p->max_payload,
        .max_conns = p->max_conns ? p->max_conns : p->harden ? 2 : 0};
    uint16_t port = 0;
    unsigned applied = 0;
    int rc;

    if (!p->path || (!p->socket && p->tcp_port < 0) || p->tcp_port > 65535)
        return -MIG_EINVAL;
    rc = mig__nbd_file_export_open(ctx, p->path, p->read_only, &f);
    if (rc < 0)
        goto out;
    mig__nbd_file_export(f, &exp);
    exp.description = p->path;
    rc = mig__nbd_server_new(ctx, &exp, &cfg, &srv);
    if (rc < 0)
        goto out;
    if (p->socket && (rc = mig__nbd_server_listen_unix(srv, p->socket)) < 0)
        goto out;
    if (p->tcp_port >= 0 && (rc = mig__nbd_server_listen_tcp(srv, (uint16_t)p->tcp_port, &port)) < 0)
        goto out;
    /* after the buffers exist, before any thread: everything gets locked */
    if (p->harden && (rc = mig__nbd_harden_daemon(ctx, &applied)) < 0)
        goto out;
    rc = mig__nbd_server_start(srv);
    if (rc < 0)
        goto out;
    char where[4200] = "";
    if (p->socket)
        snprintf(where, sizeof(where), " unix:%s", p->socket);
    if (p->tcp_port >= 0)
        snprintf(where + strlen(where), sizeof(where) - strlen(where), " tcp:127.0.0.1:%u",
                 (unsigned)port);
    MIG_LOG(ctx, INFO, "serving %s (%" PRIu64 " bytes%s%s) on%s", p->path, srv->size,
            p->read_only ? ", read-only" : "",
            (applied & MIG__NBD_HARDEN_IO_FLUSHER) ? ", memory locked, I/O flusher"
            : applied                             ? ", memory locked"
                                                  : "",
            where);
    if (p->ready)
        p->ready(p->ready_opaque, port);
    if (p->stop_fd >= 0) {
        struct pollfd pf = {p->stop_fd, POLLIN, 0};
        while (poll(&pf, 1, -1) < 0 && errno == EINTR)
            ;
    } else {
        for (;;)
            poll(NULL, 0, -1);
    }
    struct mig__nbd_stats st;
    mig__nbd_server_stats(srv, &st);
    MIG_LOG(ctx, INFO,
            "stopping: %" PRIu64 " connections, %" PRIu64 " requests (%" PRIu64
            " with an error), %" PRIu64 " bytes read, %" PRIu64 " written, %" PRIu64
            " protocol violations",
            st.conns_accepted, st.requests, st.request_errors, st.bytes_read, st.bytes_written,
            st.proto_errors);
    rc = 0;
out:
    mig__nbd_server_free(srv);
    mig__nbd_file_close(f);
    return rc;
}
