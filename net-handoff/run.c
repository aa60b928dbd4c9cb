/*
 * run.c: running ovs-vsctl / ovs-ofctl / ip with an argv array (never a
 * shell string), OVS_RUNDIR set, stdin text, captured stdout and stderr, and
 * a time limit; or, in a dry run, printing the command line instead.
 *
 * Entry points: nh_opts_init, nh_run, nh_print_argv, nh_rundir.
 */
#include <config.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIG_LOG_MODULE "net"
#include "nh.h"

extern char **environ;

#define OUT_CAP (1u << 20) /* bytes: more output than any OVS query of ours gives */

void nh_opts_init(struct nh_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->settle_ms = 2000;
    o->rounds = 5;
    o->first_gap_ms = 50;
    o->port_wait_ms = 1000;
}

const char *nh_rundir(const struct nh_opts *o)
{
    const char *e = getenv("OVS_RUNDIR");
    if (o && o->rundir)
        return o->rundir;
    return e && *e ? e : "/var/run/openvswitch";
}

/* Quote for a shell reader only where needed (dry-run output is for eyes
 * and golden files; nothing here ever goes through a shell). */
static void print_word(FILE *f, const char *w)
{
    bool plain = *w != 0;
    for (const char *p = w; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@%+",
                    *p))
            plain = false;
    if (plain) {
        fputs(w, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = w; *p; p++) {
        if (*p == '\'')
            fputs("'\\''", f);
        else
            fputc(*p, f);
    }
    fputc('\'', f);
}

void nh_print_argv(FILE *f, const char *const *argv)
{
    for (unsigned i = 0; argv[i]; i++) {
        if (i)
            fputc(' ', f);
        print_word(f, argv[i]);
    }
    fputc('\n', f);
    fflush(f);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Append what fd has to buf (grown up to OUT_CAP). 1 at EOF. */
static int drain(int fd, char **buf, size_t *len, size_t *cap)
{
    char tmp[4096];
    ssize_t r = read(fd, tmp, sizeof(tmp));
    if (r <= 0)
        return r == 0 || (errno != EINTR && errno != EAGAIN) ? 1 : 0;
    if (*len + (size_t)r + 1 > *cap) {
        size_t ncap = *cap ? *cap * 2 : 8192;
        while (ncap < *len + (size_t)r + 1)
            ncap *= 2;
        if (ncap > OUT_CAP)
            return 0; /* keep reading, drop the excess */
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return 0;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, tmp, (size_t)r);
    *len += (size_t)r;
    (*buf)[*len] = 0;
    return 0;
}

int nh_run(struct mig_ctx *ctx, const struct nh_opts *o, const char *const *argv, const char *in,
           char **out, const char *dry_out, unsigned timeout_ms)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    char **envp = NULL, *rundir_env = NULL;
    char *obuf = NULL, *ebuf = NULL;
    size_t olen = 0, ocap = 0, elen = 0, ecap = 0, nenv = 0;
    pid_t pid = -1;
    int rc = 0, status = 0;

    if (out)
        *out = NULL;
    if (o->dry_run) {
        nh_print_argv(o->dry_run, argv);
        if (in && *in)
            fprintf(o->dry_run, "  < %s", in);
        if (out) {
            *out = strdup(dry_out ? dry_out : "");
            return *out ? 0 : -MIG_ENOMEM;
        }
        return 0;
    }
    /* The environment with OVS_RUNDIR replaced, built before the fork. */
    while (environ[nenv])
        nenv++;
    envp = calloc(nenv + 2, sizeof(*envp));
    if (asprintf(&rundir_env, "OVS_RUNDIR=%s", nh_rundir(o)) < 0)
        rundir_env = NULL;
    if (!envp || !rundir_env) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "OVS_RUNDIR=", 11) != 0)
            envp[k++] = environ[i];
    envp[k++] = rundir_env;
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        sigset_t none; /* the caller's thread may block signals (simhost's listener) */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execvpe(argv[0], (char *const *)argv, envp);
        dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    pin[0] = pout[1] = perr[1] = -1;
    if (in && *in) {
        size_t n = strlen(in), off = 0;
        while (off < n) {
            ssize_t w = write(pin[1], in + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    close(pin[1]);
    pin[1] = -1;
    uint64_t deadline = now_ms() + (timeout_ms ? timeout_ms : 10000);
    bool oeof = false, eeof = false;
    while (!oeof || !eeof) {
        struct pollfd pf[2] = {{.fd = oeof ? -1 : pout[0], .events = POLLIN},
                               {.fd = eeof ? -1 : perr[0], .events = POLLIN}};
        uint64_t t = now_ms();
        if (t >= deadline) {
            kill(pid, SIGKILL);
            rc = -MIG_ETIMEOUT;
            break;
        }
        int r = poll(pf, 2, (int)(deadline - t));
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && !oeof && (pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
            oeof = drain(pout[0], &obuf, &olen, &ocap) == 1;
        if (r > 0 && !eeof && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)))
            eeof = drain(perr[0], &ebuf, &elen, &ecap) == 1;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (rc == -MIG_ETIMEOUT) {
        MIG_LOG(ctx, ERROR, "%s: no answer within %u ms", argv[0], timeout_ms);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        MIG_LOG(ctx, ERROR, "%s %s: %s", argv[0], argv[1] ? argv[1] : "",
                ebuf ? ebuf : "failed without a message");
        rc = -MIG_EBACKEND;
    }
    if (rc == 0 && out) {
        *out = obuf ? obuf : strdup("");
        obuf = NULL;
        if (!*out)
            rc = -MIG_ENOMEM;
    }
out:
    for (int i = 0; i < 2; i++) {
        if (pin[i] >= 0)
            close(pin[i]);
        if (pout[i] >= 0)
            close(pout[i]);
        if (perr[i] >= 0)
            close(perr[i]);
    }
    free(obuf);
    free(ebuf);
    free(envp);
    free(rundir_env);
    return rc;
}
