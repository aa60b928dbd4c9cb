/*
 * ssh.c: the ssh:HOST class: spawn `ssh HOST xl-migrate-live receive ARGS`
 * (an argv array, never a shell string; opts->ssh_command replaces "ssh" and
 * is split on spaces, as xl's -s) and speak over its stdin/stdout. One pipe,
 * so one channel; the receiving side is mig__link_from_fds on stdin/stdout.
 * Entry point: mig__tr_ssh.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIG_LOG_MODULE "ssh"
#include "../stream/stream.h"
#include "fd-conn.h"
#include "transport-provider.h"

extern char **environ;

#define MAX_ARGS 64

/* Split 's' on spaces into argv[*argc...] (words point into 's'). */
static int split(char *s, char **argv, int *argc)
{
    for (char *tok = strtok(s, " "); tok; tok = strtok(NULL, " ")) {
        if (*argc >= MAX_ARGS - 1)
            return -MIG_EINVAL;
        argv[(*argc)++] = tok;
    }
    return 0;
}

static int ssh_connect(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                       struct mig__conn **c_out)
{
    char *cmd = NULL, *rargs = NULL;
    char *argv[MAX_ARGS];
    int argc = 0, to[2] = {-1, -1}, from[2] = {-1, -1}, rc;
    posix_spawn_file_actions_t fa;
    bool fa_init = false;
    pid_t pid;

    *c_out = NULL;
    /* A host starting with '-' would be read by ssh as an option. */
    if (!*arg || *arg == '-' || strpbrk(arg, " \t\n")) {
        MIG_LOG(ctx, ERROR, "ssh:%s: not a host name", arg);
        return -MIG_EINVAL;
    }
    cmd = strdup(opts->ssh_command ? opts->ssh_command : "ssh");
    rargs = strdup(opts->remote_args ? opts->remote_args : "");
    if (!cmd || !rargs) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    rc = split(cmd, argv, &argc);
    if (!rc && argc == 0)
        rc = -MIG_EINVAL;
    if (rc)
        goto out;
    argv[argc++] = (char *)arg;
    argv[argc++] = "xl-migrate-live";
    argv[argc++] = "receive";
    rc = split(rargs, argv, &argc);
    if (rc)
        goto out;
    argv[argc] = NULL;
    if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC)) {
        rc = mig__from_errno(errno);
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    fa_init = true;
    posix_spawn_file_actions_adddup2(&fa, to[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from[1], 1);
    int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    if (r) {
        MIG_LOG(ctx, ERROR, "cannot run %s: %s", argv[0], strerror(r));
        rc = mig__from_errno(r);
        goto out;
    }
    close(to[0]);
    close(from[1]);
    to[0] = from[1] = -1;
    char peer[64];
    snprintf(peer, sizeof(peer), "ssh:%.59s", arg);
    rc = mig__conn_fd_new(ctx, from[0], to[1], MIG_AUTH_PIPE, peer, c_out);
    from[0] = to[1] = -1;
    if (rc) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        goto out;
    }
    mig__conn_fd_set_child(*c_out, pid);
out:
    if (fa_init)
        posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 2; i++) {
        if (to[i] >= 0)
            close(to[i]);
        if (from[i] >= 0)
            close(from[i]);
    }
    free(rargs);
    free(cmd);
    return rc;
}

static int ssh_listen(struct mig_ctx *ctx, const char *arg, const struct mig__link_opts *opts,
                      struct mig__listen **l_out)
{
    MIG_LOG(ctx, ERROR, "ssh: does not listen: sshd runs 'xl-migrate-live receive', which "
            "serves stdin/stdout");
    return -MIG_ENOTSUP;
}

static int ssh_accept(struct mig__listen *l, int timeout_ms, struct mig__conn **c_out)
{
    return -MIG_ENOTSUP;
}

static void ssh_listen_close(struct mig__listen *l)
{
}

const struct mig__tr_class mig__tr_ssh = {
    .prefix = "ssh",
    .max_channels = 1,
    .connect = ssh_connect,
    .listen = ssh_listen,
    .accept = ssh_accept,
    .listen_close = ssh_listen_close,
};
