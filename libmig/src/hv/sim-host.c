/*
 * sim-host.c: the test-guest host, the stand-in for a dom0
 * (mig_simhost_run), and the public client calls (mig_simhost_create,
 * _destroy, _rename, _status, _list, _shutdown).
 *
 * The host owns its guests: it creates each guest's memfd, spawns the guest
 * process by re-executing cfg->guest_exe with cfg->guest_subcmd (fd 3: a
 * SOCK_SEQPACKET channel to the host, fd 4: the memfd), and keeps the
 * guest's userfaultfd that the guest sends when ready. One thread, one poll
 * loop: the control socket DIR/control.sock, client connections, a signalfd
 * (SIGTERM, SIGINT, SIGCHLD) and an optional extra fd (a later migration
 * listener). A guest dies with its host (PR_SET_PDEATHSIG); DIR/guests/NAME
 * describes each live guest for people and scripts.
 *
 * Requests (one SOCK_SEQPACKET packet each, text; see docs/sim-backend.md):
 *   create NAME CONFIG            -> ok pid=..
 *   create-incoming NAME CONFIG   -> ok pid=.. addr=.. tracking=..   fds: memfd, guest conn
 *   attach NAME                   -> ok <status line>                fds: memfd, guest conn[, uffd]
 *   commit NAME--incoming         -> ok        (guest unpaused, renamed NAME)
 *   discard NAME--incoming | destroy NAME | rename NAME NEW
 *   status NAME                   -> ok <status line>
 *   list                          -> ok\n<status line>\n...
 *   guest NAME CMD...             -> the guest's answer to CMD (touch, suspend, throttle, ...)
 *   shutdown                      -> ok, then the host destroys its guests and returns
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libmig/blk.h>

#define MIG_LOG_MODULE "sim-host"
#include "blk.h"
#include "sim.h"

#define MAX_CLIENTS 64

struct hguest {
    struct hguest *next;
    char name[80];
    char config[512];
    char tracking[40];
    pid_t pid;
    int chan; /* SOCK_SEQPACKET to the guest */
    int memfd; /* the guest's own, or a dup of the host memory's */
    int uffd;  /* -1 if the guest has no tracking */
    uint64_t mem_bytes;
    bool pooled;      /* its memory is the extent [mem_off, +mem_bytes) of host->ram */
    uint64_t mem_off; /* bytes */
    uint64_t addr; /* where the guest maps its memory */
    bool incoming;
    /* config disk=SIZE: the managed disk this host serves for the guest
     * (DIR/disks/NAME/disk0.img through the block mirror, disk0.nbd for the
     * guest, disk0.ctl for migrations); NULL while incoming. Owned. */
    struct mig__blk_server *disk;
    bool has_disk;
    char disk_name[80]; /* the name its files are under */
};

struct host {
    struct mig_ctx *ctx; /* borrowed */
    const struct mig_simhost_config *cfg;
    int lsock;
    int sigfd;
    int clients[MAX_CLIENTS];
    struct hguest *guests;
    struct mig__sim_ram *ram; /* NULL without --memory; owned */
    bool stop;
    char *buf; /* MIG_SIM_MSG_MAX, requests */
    char *out; /* MIG_SIM_MSG_MAX, responses */
};

static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 63 + strlen(MIG_SIM_INCOMING_SUFFIX))
        return false;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return n[0] != '.';
}

static bool is_incoming_name(const char *n)
{
    size_t len = strlen(n), sl = strlen(MIG_SIM_INCOMING_SUFFIX);
    return len > sl && !strcmp(n + len - sl, MIG_SIM_INCOMING_SUFFIX);
}

static struct hguest *find(struct host *h, const char *name)
{
    for (struct hguest *g = h->guests; g; g = g->next)
        if (!strcmp(g->name, name))
            return g;
    return NULL;
}

static void state_file(struct host *h, const struct hguest *g, bool remove)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/guests/%s", h->cfg->dir, g->name);
    if (remove) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "we");
    if (!f)
        return;
    fprintf(f, "name=%s pid=%d mem=%" PRIu64 " tracking=%s incoming=%d config=%s\n", g->name,
            (int)g->pid, g->mem_bytes, g->tracking, g->incoming ? 1 : 0, g->config);
    fclose(f);
}

/* DIR/disks/NAME[/FILE] */
static int disk_path(const struct host *h, const char *name, const char *file, char *out,
                     size_t cap)
{
    int n = snprintf(out, cap, "%s/disks/%s%s%s", h->cfg->dir, name, file ? "/" : "",
                     file ? file : "");
    return n < 0 || (size_t)n >= cap ? -MIG_EINVAL : 0;
}

/* Serve the guest's disk (create: a new sparse image of 'bytes'). */
static int disk_start(struct host *h, struct hguest *g, const char *name, bool create,
                      uint64_t bytes)
{
    char dir[4096], img[4200], sock[4200];
    int rc = disk_path(h, name, NULL, dir, sizeof(dir));
    if (rc == 0)
        rc = disk_path(h, name, MIG_SIM_DISK_NAME ".img", img, sizeof(img));
    if (rc == 0)
        rc = disk_path(h, name, MIG_SIM_DISK_NAME ".nbd", sock, sizeof(sock));
    if (rc < 0)
        return rc;
    if (create) {
        char top[4096];
        snprintf(top, sizeof(top), "%s/disks", h->cfg->dir);
        mkdir(top, 0700);
        mkdir(dir, 0700);
        int fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0) {
            rc = mig__from_errno(errno);
            if (fd >= 0)
                close(fd);
            MIG_LOG(h->ctx, ERROR, "guest %s: disk image %s: %s", name, img, mig_strerror(rc));
            return rc;
        }
        close(fd);
    } else if (access(img, R_OK | W_OK) < 0) {
        MIG_LOG(h->ctx, ERROR, "guest %s: its disk %s is missing (receive it with the "
                "default --disk-dir %s/disks)", name, img, h->cfg->dir);
        return -MIG_ENOENT;
    }
    struct mig_disk_serve_params p = {.path = img, .domain = name, .name = MIG_SIM_DISK_NAME,
                                      .state_dir = h->cfg->dir, .socket = sock, .stop_fd = -1};
    rc = mig__blk_server_start(h->ctx, &p, &g->disk);
    if (rc < 0) {
        MIG_LOG(h->ctx, ERROR, "guest %s: serving its disk: %s", name, mig_strerror(rc));
        /* what the failed start left (its out-of-sync log) goes with the
         * guest's disk when the guest goes (disk_remove) */
        snprintf(g->disk_name, sizeof(g->disk_name), "%s", name);
        return rc;
    }
    snprintf(g->disk_name, sizeof(g->disk_name), "%s", name);
    return 0;
}

/* Stop serving the disk and remove its files (a test guest's disk dies
 * with it; after a move the destination has it). */
static void disk_remove(struct host *h, struct hguest *g)
{
    char path[4200];
    if (!g->disk_name[0])
        return;
    mig__blk_server_free(g->disk);
    g->disk = NULL;
    if (disk_path(h, g->disk_name, MIG_SIM_DISK_NAME ".img", path, sizeof(path)) == 0)
        unlink(path);
    /* the disk server's out-of-sync log (blk.h) goes with the disk */
    if (disk_path(h, g->disk_name, MIG_SIM_DISK_NAME ".oos", path, sizeof(path)) == 0)
        unlink(path);
    if (disk_path(h, g->disk_name, NULL, path, sizeof(path)) == 0)
        rmdir(path);
    g->disk_name[0] = 0;
}

/* Forget a guest whose process is gone (or never ran): its memory goes
 * back to the host to be scrubbed. */
static void guest_free(struct host *h, struct hguest *g)
{
    if (!g)
        return;
    if (g->pooled)
        mig__sim_ram_release(h->ram, g->mem_off, g->mem_bytes);
    if (g->chan >= 0)
        close(g->chan);
    if (g->memfd >= 0)
        close(g->memfd);
    if (g->uffd >= 0)
        close(g->uffd);
    free(g);
}

/* Stop the guest process and forget it. */
static void guest_kill(struct host *h, struct hguest *g)
{
    struct hguest **pp = &h->guests;
    while (*pp && *pp != g)
        pp = &(*pp)->next;
    if (*pp)
        *pp = g->next;
    if (g->pid > 0) {
        int status;
        kill(g->pid, SIGKILL);
        while (waitpid(g->pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    state_file(h, g, true);
    disk_remove(h, g);
    if (g->incoming && g->has_disk && is_incoming_name(g->name)) {
        /* a receiver that died left its partial disk (marked incomplete) */
        char final[80], img[4200], mark[4300];
        snprintf(final, sizeof(final), "%.*s",
                 (int)(strlen(g->name) - strlen(MIG_SIM_INCOMING_SUFFIX)), g->name);
        if (!find(h, final) &&
            disk_path(h, final, MIG_SIM_DISK_NAME ".img", img, sizeof(img)) == 0 &&
            snprintf(mark, sizeof(mark), "%s" MIG_BLK_INCOMPLETE, img) < (int)sizeof(mark) &&
            access(mark, F_OK) == 0) {
            unlink(img);
            unlink(mark);
            if (disk_path(h, final, NULL, img, sizeof(img)) == 0)
                rmdir(img);
        }
    }
    MIG_LOG(h->ctx, INFO, "guest %s (pid %d) destroyed", g->name, (int)g->pid);
    guest_free(h, g);
}

static int spawn(struct host *h, const char *name, const char *config, bool incoming,
                 struct hguest **g_out)
{
    struct mig__sim_config cfg;
    struct hguest *g = NULL;
    int sv[2] = {-1, -1};
    int rc = mig__sim_config_parse(config, &cfg);
    char resp[512];
    int fds[1];
    unsigned nfds = 1;
    if (rc)
        return rc;
    g = calloc(1, sizeof(*g));
    if (!g)
        return -MIG_ENOMEM;
    g->chan = g->memfd = g->uffd = -1;
    snprintf(g->name, sizeof(g->name), "%.79s", name);
    snprintf(g->config, sizeof(g->config), "%.*s", (int)sizeof(g->config) - 1, config);
    g->mem_bytes = cfg.mem_bytes;
    g->incoming = incoming;
    g->has_disk = cfg.disk_bytes != 0;
    char disk_dir[4096], mem_off[24];
    snprintf(disk_dir, sizeof(disk_dir), "%s/disks", h->cfg->dir);
    /* the disk is served before its guest writes (an incoming one: at commit) */
    if (g->has_disk && !incoming && (rc = disk_start(h, g, name, true, cfg.disk_bytes)) < 0)
        goto out;
    if (h->ram) {
        rc = mig__sim_ram_alloc(h->ram, cfg.mem_bytes, &g->mem_off);
        if (rc) {
            MIG_LOG(h->ctx, ERROR, "guest %s needs %" PRIu64 " MiB, this host has %" PRIu64
                    " MiB free in one piece at most (of %" PRIu64 " MiB free)", name,
                    cfg.mem_bytes >> 20, mig__sim_ram_largest(h->ram) >> 20,
                    mig__sim_ram_free_bytes(h->ram) >> 20);
            goto out;
        }
        g->pooled = true;
        g->memfd = fcntl(mig__sim_ram_fd(h->ram), F_DUPFD_CLOEXEC, 0);
    } else {
        g->memfd = memfd_create(name, MFD_CLOEXEC);
        if (g->memfd >= 0 && ftruncate(g->memfd, (off_t)cfg.mem_bytes) < 0) {
            close(g->memfd);
            g->memfd = -1;
        }
    }
    if (g->memfd < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    snprintf(mem_off, sizeof(mem_off), "%" PRIu64, g->mem_off);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    g->pid = fork();
    if (g->pid < 0) {
        rc = mig__from_errno(errno);
        goto out;
    }
    if (g->pid == 0) {
        /* child: only async-signal-safe calls until exec */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(sv[1], 3) < 0 || dup2(g->memfd, 4) < 0)
            _exit(127);
        syscall(SYS_close_range, 5u, ~0u, 0u);
        char *argv[14];
        int n = 0;
        argv[n++] = (char *)h->cfg->guest_exe;
        argv[n++] = (char *)h->cfg->guest_subcmd;
        argv[n++] = (char *)"--name";
        argv[n++] = g->name;
        argv[n++] = (char *)"--config";
        argv[n++] = g->config;
        if (incoming)
            argv[n++] = (char *)"--incoming";
        argv[n++] = (char *)"--disk-dir";
        argv[n++] = disk_dir;
        if (g->pooled) {
            argv[n++] = (char *)"--mem-offset";
            argv[n++] = mem_off;
        }
        argv[n] = NULL;
        execv(h->cfg->guest_exe, argv);
        _exit(127);
    }
    close(sv[1]);
    sv[1] = -1;
    g->chan = sv[0];
    sv[0] = -1;
    /* the guest says ready with its mapping address and its userfaultfd */
    rc = mig__sim_recv(g->chan, resp, sizeof(resp), fds, &nfds, MIG_SIM_TIMEOUT_MS);
    if (rc)
        goto out;
    if (strncmp(resp, "ok ", 3)) {
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        rc = -MIG_EBACKEND;
        goto out;
    }
    if (nfds)
        g->uffd = fds[0];
    mig__sim_kv_u64(resp + 3, "addr", &g->addr);
    if (!mig__sim_kv(resp + 3, "tracking", g->tracking, sizeof(g->tracking)))
        snprintf(g->tracking, sizeof(g->tracking), "none");
    g->next = h->guests;
    h->guests = g;
    state_file(h, g, false);
    MIG_LOG(h->ctx, INFO, "guest %s: pid %d, %s, tracking %s%s", name, (int)g->pid, config,
            g->tracking, incoming ? ", incoming (paused)" : "");
    *g_out = g;
    g = NULL;
out:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (g && g->pid > 0) {
        int st;
        kill(g->pid, SIGKILL);
        waitpid(g->pid, &st, 0);
    }
    if (g)
        disk_remove(h, g);
    guest_free(h, g);
    return rc;
}

/* Ask a guest; its answer (whole) goes to 'out'. */
static int guest_call(struct host *h, struct hguest *g, const char *req, int *fds, unsigned nfds,
                      char *out, size_t cap)
{
    int rc = mig__sim_send(g->chan, req, fds, nfds);
    if (rc)
        return rc;
    rc = mig__sim_recv(g->chan, out, cap, NULL, NULL, MIG_SIM_TIMEOUT_MS);
    if (rc)
        return rc;
    if (!strncmp(out, "err ", 4)) {
        char name[32] = "";
        sscanf(out + 4, "%31s", name);
        for (int i = 1; i < MIG_ERR_MAX; i++)
            if (!strcmp(mig_errname(i), name))
                return -i;
        return -MIG_EBACKEND;
    }
    return 0;
}

/* A new connection to the guest for a client: one end to the guest, the other
 * returned in *conn_out. */
static int guest_conn(struct host *h, struct hguest *g, int *conn_out)
{
    int sv[2];
    char out[256];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return mig__from_errno(errno);
    int rc = guest_call(h, g, "conn", &sv[1], 1, out, sizeof(out));
    close(sv[1]);
    if (rc) {
        close(sv[0]);
        return rc;
    }
    *conn_out = sv[0];
    return 0;
}

static void reply(struct host *h, int sock, int rc, const char *what, const int *fds, unsigned nfds)
{
    if (rc) {
        mig__sim_err(h->out, MIG_SIM_MSG_MAX, rc, what);
        mig__sim_send(sock, h->out, NULL, 0);
    } else {
        mig__sim_send(sock, h->out, fds, nfds);
    }
}

static void handle(struct host *h, int sock)
{
    char verb[32] = "", a1[128] = "", a2[1024] = "";
    struct hguest *g = NULL;
    int fds[3] = {-1, -1, -1};
    unsigned nfds = 0;
    int rc = 0;
    const char *what = NULL;
    const char *rest;

    sscanf(h->buf, "%31s %127s %1023s", verb, a1, a2);
    snprintf(h->out, MIG_SIM_MSG_MAX, "ok");

    if (!strcmp(verb, "create") || !strcmp(verb, "create-incoming")) {
        bool incoming = verb[6] == '-';
        char full[160];
        snprintf(full, sizeof(full), "%s%s", a1, incoming ? MIG_SIM_INCOMING_SUFFIX : "");
        if (!name_ok(a1) || is_incoming_name(a1) || strlen(a1) > 63) {
            rc = -MIG_EINVAL;
            what = "bad guest name";
        } else if (strlen(a2) >= sizeof(((struct hguest *)0)->config)) {
            rc = -MIG_ETOOBIG;
            what = "config too long";
        } else if (find(h, full)) {
            rc = -MIG_EEXIST;
            what = "guest exists";
        } else {
            rc = spawn(h, full, a2, incoming, &g);
            if (rc == -MIG_ENOSPC && h->ram)
                what = "not enough free host memory";
        }
        if (!rc && incoming) {
            rc = guest_conn(h, g, &fds[1]);
            fds[0] = g->memfd;
            nfds = 2;
            if (rc)
                guest_kill(h, g);
        }
        if (!rc)
            snprintf(h->out, MIG_SIM_MSG_MAX, "ok name=%s pid=%d addr=0x%" PRIx64 " tracking=%s",
                     g->name, (int)g->pid, g->addr, g->tracking);
        if (!rc && g->pooled) /* the backend finds the guest's memory here in the memfd */
            snprintf(h->out + strlen(h->out), MIG_SIM_MSG_MAX - strlen(h->out),
                     " memoff=%" PRIu64 " huge=%d", g->mem_off, mig__sim_ram_huge(h->ram));
    } else if (!strcmp(verb, "list")) {
        size_t off = (size_t)snprintf(h->out, MIG_SIM_MSG_MAX, "ok");
        char *line = malloc(MIG_SIM_MSG_MAX);
        if (!line) {
            rc = -MIG_ENOMEM;
        } else {
            for (g = h->guests; g; g = g->next) {
                if (guest_call(h, g, "status", NULL, 0, line, MIG_SIM_MSG_MAX))
                    snprintf(line, MIG_SIM_MSG_MAX, "ok name=%s pid=%d state=unresponsive", g->name,
                             (int)g->pid);
                if (off + strlen(line) + 2 < MIG_SIM_MSG_MAX)
                    off += (size_t)snprintf(h->out + off, MIG_SIM_MSG_MAX - off, "\n%s", line + 3);
            }
            free(line);
        }
    } else if (!(g = find(h, a1)) && strcmp(verb, "shutdown")) {
        rc = -MIG_ENOENT;
        what = "no such guest";
    } else if (!strcmp(verb, "status")) {
        rc = guest_call(h, g, "status", NULL, 0, h->out, MIG_SIM_MSG_MAX);
    } else if (!strcmp(verb, "attach")) {
        rc = guest_call(h, g, "status", NULL, 0, h->out, MIG_SIM_MSG_MAX);
        if (!rc && g->incoming)
            rc = -MIG_ESTATE;
        if (!rc)
            rc = guest_conn(h, g, &fds[1]);
        fds[0] = g->memfd;
        fds[2] = g->uffd;
        nfds = g->uffd >= 0 ? 3 : 2;
    } else if (!strcmp(verb, "commit")) {
        char final[80];
        size_t len = strlen(g->name) - strlen(MIG_SIM_INCOMING_SUFFIX);
        if (!g->incoming || !is_incoming_name(g->name)) {
            rc = -MIG_ESTATE;
            what = "not an incoming guest";
        } else {
            snprintf(final, sizeof(final), "%.*s", (int)len, g->name);
            if (find(h, final)) {
                rc = -MIG_EEXIST;
                what = "a guest with the final name exists";
            } else {
                char cmd[96];
                snprintf(cmd, sizeof(cmd), "commit %s", final);
                /* the received disk is served under the final name first:
                 * the guest checks it, then writes to it */
                if (g->has_disk && !g->disk)
                    rc = disk_start(h, g, final, false, 0);
                if (!rc)
                    rc = guest_call(h, g, cmd, NULL, 0, h->out, MIG_SIM_MSG_MAX);
            }
            if (!rc) {
                state_file(h, g, true);
                snprintf(g->name, sizeof(g->name), "%s", final);
                g->incoming = false;
                state_file(h, g, false);
                snprintf(h->out, MIG_SIM_MSG_MAX, "ok name=%s", g->name);
                MIG_LOG(h->ctx, INFO, "guest %s committed (pid %d)", g->name, (int)g->pid);
            }
        }
    } else if (!strcmp(verb, "discard")) {
        if (!g->incoming) {
            rc = -MIG_ESTATE;
            what = "not an incoming guest";
        } else {
            guest_kill(h, g);
        }
    } else if (!strcmp(verb, "destroy")) {
        guest_kill(h, g);
    } else if (!strcmp(verb, "rename")) {
        if (!name_ok(a2)) {
            rc = -MIG_EINVAL;
        } else if (find(h, a2)) {
            rc = -MIG_EEXIST;
        } else {
            state_file(h, g, true);
            snprintf(g->name, sizeof(g->name), "%.*s", (int)sizeof(g->name) - 1, a2);
            g->incoming = is_incoming_name(a2);
            state_file(h, g, false);
        }
    } else if (!strcmp(verb, "guest")) {
        rest = h->buf;
        while (*rest == ' ')
            rest++;
        rest += strlen(verb);
        while (*rest == ' ')
            rest++;
        rest += strlen(a1);
        while (*rest == ' ')
            rest++;
        rc = guest_call(h, g, rest, NULL, 0, h->out, MIG_SIM_MSG_MAX);
        if (rc == -MIG_EPEER || rc == -MIG_ETIMEOUT)
            what = "guest does not answer";
        else if (rc)
            what = h->out + 4;
    } else if (!strcmp(verb, "shutdown")) {
        h->stop = true;
    } else {
        rc = -MIG_EINVAL;
        what = "unknown request";
    }
    if (rc && what == h->out + 4) {
        /* pass the guest's own error through */
        mig__sim_send(sock, h->out, NULL, 0);
    } else {
        reply(h, sock, rc, what, fds, nfds);
    }
    if (fds[1] >= 0)
        close(fds[1]);
}

static void reap(struct host *h)
{
    struct signalfd_siginfo si;
    while (read(h->sigfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            h->stop = true;
    }
    /* only our guests: the process may have other children (transports) */
    for (struct hguest *g = h->guests, *next; g; g = next) {
        int status;
        next = g->next;
        if (g->pid > 0 && waitpid(g->pid, &status, WNOHANG) == g->pid) {
            MIG_LOG(h->ctx, WARN, "guest %s (pid %d) exited (status 0x%x)", g->name, (int)g->pid,
                    status);
            g->pid = -1;
            guest_kill(h, g);
        }
    }
}

static int setup(struct host *h)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char path[4096];
    sigset_t set;
    int fd = -1;
    if (mkdir(h->cfg->dir, 0750) < 0 && errno != EEXIST)
        return mig__from_errno(errno);
    /* another host serves DIR: leave everything as it is */
    if (mig__sim_connect(h->cfg->dir, &fd) == 0) {
        close(fd);
        return -MIG_EBUSY;
    }
    snprintf(path, sizeof(path), "%s/guests", h->cfg->dir);
    if (mkdir(path, 0750) < 0 && errno != EEXIST)
        return mig__from_errno(errno);
    /* guests die with their host: old state files describe nobody */
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char p2[4400];
            snprintf(p2, sizeof(p2), "%s/%s", path, e->d_name);
            unlink(p2);
        }
        closedir(d);
    }
    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control.sock", h->cfg->dir) >=
        sizeof(sa.sun_path))
        return -MIG_EINVAL;
    unlink(sa.sun_path);
    h->lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (h->lsock < 0)
        return mig__from_errno(errno);
    if (bind(h->lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(h->lsock, 16) < 0)
        return mig__from_errno(errno);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    h->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (h->sigfd < 0)
        return mig__from_errno(errno);
    return 0;
}

int mig_simhost_run(struct mig_ctx *ctx, const struct mig_simhost_config *cfg)
{
    struct host h = {.ctx = ctx, .cfg = cfg, .lsock = -1, .sigfd = -1};
    int rc;
    if (!cfg || !cfg->dir || !cfg->guest_exe || !cfg->guest_subcmd)
        return -MIG_EINVAL;
    for (int i = 0; i < MAX_CLIENTS; i++)
        h.clients[i] = -1;
    h.buf = malloc(MIG_SIM_MSG_MAX);
    h.out = malloc(MIG_SIM_MSG_MAX);
    if (!h.buf || !h.out) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    rc = setup(&h);
    if (rc)
        goto out;
    if (cfg->memory_bytes) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = mig__sim_ram_new(cfg->memory_bytes, &h.ram);
        if (rc) {
            MIG_LOG(ctx, ERROR, "host memory of %" PRIu64 " MiB: %s", cfg->memory_bytes >> 20,
                    mig_strerror(rc));
            goto out;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        MIG_LOG(ctx, INFO, "host memory: %" PRIu64 " MiB (%s pages), populated in %lld ms",
                mig__sim_ram_size(h.ram) >> 20, mig__sim_ram_huge(h.ram) ? "2 MiB" : "4 KiB",
                (long long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    }
    MIG_LOG(ctx, INFO, "test-guest host serving %s/control.sock", cfg->dir);
    while (!h.stop) {
        struct pollfd p[MAX_CLIENTS + 3];
        int map[MAX_CLIENTS + 3];
        int n = 0;
        p[n] = (struct pollfd){.fd = h.lsock, .events = POLLIN};
        map[n++] = -1;
        p[n] = (struct pollfd){.fd = h.sigfd, .events = POLLIN};
        map[n++] = -2;
        if (cfg->extra_fd >= 0 && cfg->extra_cb) {
            p[n] = (struct pollfd){.fd = cfg->extra_fd, .events = POLLIN};
            map[n++] = -3;
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (h.clients[i] >= 0) {
                p[n] = (struct pollfd){.fd = h.clients[i], .events = POLLIN};
                map[n++] = i;
            }
        }
        /* SIGCHLD may go to another thread of the process: look every second */
        int pr = poll(p, (nfds_t)n, 1000);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            rc = mig__from_errno(errno);
            break;
        }
        if (pr == 0) {
            reap(&h);
            continue;
        }
        for (int k = 0; k < n && !h.stop; k++) {
            if (!p[k].revents)
                continue;
            if (map[k] == -1) {
                int c = accept4(h.lsock, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                    continue;
                int slot = -1;
                for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
                    if (h.clients[i] < 0)
                        slot = i;
                if (slot < 0)
                    close(c);
                else
                    h.clients[slot] = c;
            } else if (map[k] == -2) {
                reap(&h);
            } else if (map[k] == -3) {
                if (cfg->extra_cb(cfg->extra_opaque, cfg->extra_fd))
                    h.stop = true;
            } else {
                int *c = &h.clients[map[k]];
                if (mig__sim_recv(*c, h.buf, MIG_SIM_MSG_MAX, NULL, NULL, 0)) {
                    close(*c);
                    *c = -1;
                    continue;
                }
                handle(&h, *c);
            }
        }
    }
out:
    while (h.guests)
        guest_kill(&h, h.guests);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (h.clients[i] >= 0)
            close(h.clients[i]);
    if (h.lsock >= 0) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/control.sock", cfg->dir);
        unlink(path);
        close(h.lsock);
    }
    if (h.sigfd >= 0)
        close(h.sigfd);
    mig__sim_ram_free(h.ram); /* after every guest: they gave their extents back */
    free(h.buf);
    free(h.out);
    MIG_LOG(ctx, INFO, "test-guest host on %s stopped", cfg ? cfg->dir : "?");
    return rc;
}

/* ---- client calls ---------------------------------------------------------------- */

static int simple(struct mig_ctx *ctx, const char *dir, const char *req)
{
    char resp[512];
    int rc = mig__sim_host_call(dir, req, resp, sizeof(resp), NULL, NULL);
    if (rc)
        MIG_LOG(ctx, DEBUG, "%s: %s (%s)", req, mig_strerror(rc), resp);
    return rc;
}

int mig_simhost_create(struct mig_ctx *ctx, const char *dir, const char *name, const char *config)
{
    char req[1024];
    if (!name || strchr(name, ' ') || !config || strchr(config, ' ') || !*config)
        return -MIG_EINVAL;
    snprintf(req, sizeof(req), "create %s %s", name, config);
    return simple(ctx, dir, req);
}

int mig_simhost_destroy(struct mig_ctx *ctx, const char *dir, const char *name)
{
    char req[256];
    snprintf(req, sizeof(req), "destroy %s", name);
    return simple(ctx, dir, req);
}

int mig_simhost_rename(struct mig_ctx *ctx, const char *dir, const char *name, const char *new_name)
{
    char req[256];
    snprintf(req, sizeof(req), "rename %s %s", name, new_name);
    return simple(ctx, dir, req);
}

int mig_simhost_verify(struct mig_ctx *ctx, const char *dir, const char *name,
                       struct mig_sim_guest_status *st_out)
{
    char req[256];
    snprintf(req, sizeof(req), "guest %s verify", name);
    int rc = simple(ctx, dir, req);
    if (rc)
        return rc;
    return mig_simhost_status(ctx, dir, name, st_out);
}

int mig_simhost_shutdown(struct mig_ctx *ctx, const char *dir)
{
    return simple(ctx, dir, "shutdown");
}

int mig_simhost_status(struct mig_ctx *ctx, const char *dir, const char *name,
                       struct mig_sim_guest_status *st_out)
{
    char req[256];
    char *resp = malloc(MIG_SIM_MSG_MAX);
    int rc;
    (void)ctx;
    if (!resp)
        return -MIG_ENOMEM;
    snprintf(req, sizeof(req), "status %s", name);
    rc = mig__sim_host_call(dir, req, resp, MIG_SIM_MSG_MAX, NULL, NULL);
    if (!rc)
        mig__sim_status_parse(resp, st_out);
    free(resp);
    return rc;
}

int mig_simhost_list(struct mig_ctx *ctx, const char *dir, struct mig_sim_guest_status **list_out,
                     size_t *n_out)
{
    char *resp = malloc(MIG_SIM_MSG_MAX);
    struct mig_sim_guest_status *list = NULL;
    size_t n = 0;
    int rc;
    (void)ctx;
    if (!resp)
        return -MIG_ENOMEM;
    rc = mig__sim_host_call(dir, "list", resp, MIG_SIM_MSG_MAX, NULL, NULL);
    if (rc)
        goto out;
    for (char *line = strtok(resp, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "name="))
            continue;
        struct mig_sim_guest_status *nl = realloc(list, (n + 1) * sizeof(*list));
        if (!nl) {
            rc = -MIG_ENOMEM;
            goto out;
        }
        list = nl;
        mig__sim_status_parse(line, &list[n++]);
    }
    *list_out = list;
    *n_out = n;
    list = NULL;
out:
    free(list);
    free(resp);
    return rc;
}

int mig__sim_guest_touch(const char *dir, const char *name, const uint64_t *pfns, unsigned n)
{
    char *req = malloc(MIG_SIM_MSG_MAX);
    size_t off;
    int rc;
    if (!req)
        return -MIG_ENOMEM;
    off = (size_t)snprintf(req, MIG_SIM_MSG_MAX, "guest %s touch", name);
    for (unsigned i = 0; i < n && off + 24 < MIG_SIM_MSG_MAX; i++)
        off += (size_t)snprintf(req + off, MIG_SIM_MSG_MAX - off, " %" PRIu64, pfns[i]);
    rc = mig__sim_host_call(dir, req, NULL, 0, NULL, NULL);
    free(req);
    return rc;
}
