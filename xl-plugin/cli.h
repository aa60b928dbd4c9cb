/*
 * cli.h: what the command's modules share: the parsed command line, exit
 * codes, and the subcommand entry points.
 */
#ifndef XLML_CLI_H
#define XLML_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <libmig/migrate.h>

/* Fixed exit codes (xl-migrate-live(1), docs/json-output.md). */
enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,      /* failed; the domain still runs on the source */
    EXIT_USAGE = 2,
    EXIT_INCOMPAT = 3,    /* pre-flight refused */
    EXIT_CANCELLED = 4,
    EXIT_INDOUBT = 5,
    EXIT_LOCKED = 6,      /* another migration or policy run holds the lock */
};

struct cli {
    const char *argv0;
    struct mig_params mp;         /* migration parameters (strings borrowed from argv) */
    bool parallel_given;          /* --parallel: on a receiver, its cap on channels */
    const char *transport;        /* ssh | tls | tcp (for a bare host name) */
    const char *host_dir;         /* --host DIR: the test-guest host to act on */
    const char *backend;          /* receive/listen: backend URI for incoming domains */
    bool json;
    bool dry_run;
    int verbosity;                /* -1 quiet, 0 normal, 1+ verbose */
    char **pos;                   /* positional arguments */
    int npos;
    /* sim create */
    uint64_t sim_mem;
    const char *sim_dirty;
    const char *sim_pattern;
    unsigned sim_vcpus;
    const char *sim_extra;
    uint64_t sim_disk;            /* --disk SIZE: a managed disk (bytes) */
    /* simhost */
    const char *listen_uri;
    /* policy */
    const char *policy_file;
    /* nbd-serve */
    const char *nbd_socket;
    int nbd_tcp_port;             /* -1: none */
    bool nbd_read_only;
    bool nbd_daemon;
    /* disk-serve */
    const char *disk_domain;
    const char *disk_name;
    /* --disk-map ...: owned "CLASS:KEY=VALUE" hook arguments, NULL-terminated
     * (mp.hook_args points here once there is one) */
    char *hook_args[33];
    unsigned n_hook_args;
    /* --vif XLSPEC for sim create (borrowed); --net KEY=VALUE goes to
     * hook_args as "net:KEY=VALUE" */
    const char *vifs[8];
    unsigned nvifs;
    /* owned strings built while parsing (URIs) */
    char *domain_uri;
    char *dest_uri;
    char *remote_args;            /* --receive-args plus the --disk-map options (ssh) */
};

int cmd_migrate(struct cli *c, struct mig_ctx *ctx);
int cmd_receive(struct cli *c, struct mig_ctx *ctx);
int cmd_listen(struct cli *c, struct mig_ctx *ctx);
int cmd_resolve(struct cli *c, struct mig_ctx *ctx);
int xlml_profile_main(struct cli *c, struct mig_ctx *ctx);
int xlml_nbd_serve_main(struct cli *c, struct mig_ctx *ctx); /* nbd.c */
int xlml_disk_serve_main(struct cli *c, struct mig_ctx *ctx); /* disk.c */
int xlml_net_main(struct cli *c, struct mig_ctx *ctx); /* net.c */

/* Print "xl-migrate-live: MSG" and the usage hint; returns EXIT_USAGE. */
/* util.c: a pipe SIGINT/SIGTERM write to, for nbd-serve and disk-serve
 * (fds[0] is polled by the server); close restores the default actions. */
int cli_stop_pipe_open(int fds[2]);
void cli_stop_pipe_close(int fds[2]);
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* JSON string literal of s (with quotes) to f; NULL prints null. */
void json_str(FILE *f, const char *s);

/* receive/listen/simhost on a test-guest host: incoming disks without a
 * --disk-map go to HOST_DIR/disks (adds "blk:target-dir=" unless given). */
void cli_default_disk_dir(struct cli *c);

/* Take the per-domain lock in state_dir; fd or -1 (EXIT_LOCKED reported). */
int lock_domain(const char *state_dir, const char *domain);

#endif
