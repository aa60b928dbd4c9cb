/*
 * sim.c: the test-guest subcommands. 'simhost' runs a host that owns test
 * guests (the stand-in for a dom0) and, with --listen, is a migration
 * endpoint; 'sim create|list|destroy|status' talk to a host; 'demo' starts
 * two hosts on this machine and live-migrates a guest under write load
 * between them; '__sim-guest' is the guest process itself.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libmig/net.h>
#include <libmig/sim.h>

#include "cli.h"
#include "units.h"

int xlml_sim_main(struct cli *c, struct mig_ctx *ctx);
int xlml_simhost_main(struct cli *c, struct mig_ctx *ctx);
int xlml_demo_main(struct cli *c, struct mig_ctx *ctx);
int xlml_sim_guest_main(int argc, char **argv);

int xlml_sim_guest_main(int argc, char **argv)
{
    return mig_sim_guest_main(argc, argv);
}

/* ---- simhost ----------------------------------------------------------- */

struct listener {
    struct mig_ctx *ctx;
    struct mig_recv_params rp;
    const char *uri;
    volatile int stop;
    int rc;
};

static void *listener_main(void *arg)
{
    struct listener *l = arg;
    l->rc = mig_listen_serve(l->ctx, &l->rp, l->uri, &l->stop);
    return NULL;
}

int xlml_simhost_main(struct cli *c, struct mig_ctx *ctx)
{
    struct listener l = {.ctx = ctx};
    pthread_t th;
    char backend[4200];
    bool listening = false;
    if (!c->host_dir)
        return usage_error("simhost needs --dir DIR");
    if (c->npos != 1)
        return usage_error("simhost takes no arguments");
    struct mig_simhost_config cfg = {
        .dir = c->host_dir,
        .guest_exe = "/proc/self/exe",
        .guest_subcmd = "__sim-guest",
        .extra_fd = -1,
        .memory_bytes = c->sim_mem, /* --mem SIZE: the host's own memory */
    };
    if (c->sim_mem && c->sim_mem < (4ull << 20)) /* two 2 MiB extents */
        return usage_error("simhost --mem: at least 4M");
    signal(SIGPIPE, SIG_IGN);
    if (c->listen_uri) {
        if (strncmp(c->listen_uri, "tcp:", 4) == 0 && !c->mp.link.psk_file && !c->mp.link.insecure)
            return usage_error("--listen %s needs --psk FILE (or --insecure)", c->listen_uri);
        mig_recv_params_init(&l.rp);
        snprintf(backend, sizeof(backend), "sim:host=%s", c->host_dir);
        l.rp.backend = backend;
        l.rp.link = c->mp.link;
        if (!c->parallel_given)
            l.rp.link.channels = 0; /* what the source asks, up to the transport's limit */
        l.rp.state_dir = c->mp.state_dir;
        cli_default_disk_dir(c);
        l.rp.hook_args = c->mp.hook_args; /* --disk-map, --disk-dir, --net */
        l.uri = c->listen_uri;
        /* Block the host's signals in the listener thread: the host loop
         * handles SIGTERM/SIGINT/SIGCHLD. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        if (pthread_create(&th, NULL, listener_main, &l) != 0)
            return EXIT_FAILED;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        listening = true;
    }
    int rc = mig_simhost_run(ctx, &cfg);
    if (listening) {
        l.stop = 1;
        pthread_join(th, NULL);
    }
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live simhost: %s: %s\n", c->host_dir, mig_strerror(rc));
        return rc == -MIG_EBUSY ? EXIT_LOCKED : EXIT_FAILED;
    }
    return EXIT_OK;
}

/* ---- sim create / list / destroy / status ------------------------------ */

static const char *verify_name(enum mig_sim_verify v)
{
    switch (v) {
    case MIG_SIM_VERIFY_RUNNING:
        return "verifying";
    case MIG_SIM_VERIFY_OK:
        return "ok";
    case MIG_SIM_VERIFY_FAILED:
        return "FAILED";
    default:
        return "-";
    }
}

static void print_status_json(const struct mig_sim_guest_status *g)
{
    printf("{\"name\":");
    json_str(stdout, g->name);
    printf(",\"pid\":%d,\"state\":", g->pid);
    json_str(stdout, g->state);
    printf(",\"mem_bytes\":%llu,\"tracking\":", (unsigned long long)g->mem_bytes);
    json_str(stdout, g->tracking);
    printf(",\"writes\":%llu,\"throttle_percent\":%u,\"verify\":\"%s\",\"verify_pages\":%llu,"
           "\"verify_errors\":%llu,\"verify_first_bad\":%lld,\"downtime_us\":%lld,"
           "\"max_gap_us\":%llu,\"tracked\":%s,\"disk_bytes\":%llu,\"disk_writes\":%llu,"
           "\"disk_checked\":%llu,\"disk_errors\":%llu}",
           (unsigned long long)g->writes, g->throttle, verify_name(g->verify),
           (unsigned long long)g->verify_pages, (unsigned long long)g->verify_errors,
           (long long)g->verify_first_bad, (long long)g->downtime_us,
           (unsigned long long)g->max_gap_us, g->tracked ? "true" : "false",
           (unsigned long long)g->disk_bytes, (unsigned long long)g->disk_writes,
           (unsigned long long)g->disk_checked, (unsigned long long)g->disk_errors);
}

int xlml_sim_main(struct cli *c, struct mig_ctx *ctx)
{
    if (!c->host_dir)
        return usage_error("sim needs --host DIR (the test-guest host to act on)");
    if (c->npos < 2)
        return usage_error("usage: xl-migrate-live --host DIR sim create NAME|list|destroy NAME|status NAME|verify NAME");
    const char *sub = c->pos[1];
    int rc;
    if (strcmp(sub, "create") == 0) {
        char config[512];
        char mem[32];
        if (c->npos != 3)
            return usage_error("usage: sim create NAME --mem SIZE [--vcpus N] [--dirty RATE] [--pattern P]");
        snprintf(mem, sizeof(mem), "%lluK", (unsigned long long)((c->sim_mem ? c->sim_mem : 256ull << 20) >> 10));
        /* only what was given: the guest's own defaults apply otherwise (a
         * mem= inside --sim counts as given) */
        bool mem_in_sim = c->sim_extra && (strncmp(c->sim_extra, "mem=", 4) == 0 ||
                                           strstr(c->sim_extra, ",mem="));
        int len = mem_in_sim && !c->sim_mem ? 0 : snprintf(config, sizeof(config), "mem=%s,", mem);
        if (c->sim_vcpus)
            len += snprintf(config + len, sizeof(config) - len, "vcpus=%u,", c->sim_vcpus);
        if (c->sim_dirty)
            len += snprintf(config + len, sizeof(config) - len, "dirty=%s,", c->sim_dirty);
        if (c->sim_pattern)
            len += snprintf(config + len, sizeof(config) - len, "pattern=%s,", c->sim_pattern);
        if (c->sim_disk)
            len += snprintf(config + len, sizeof(config) - len, "disk=%lluK,",
                            (unsigned long long)(c->sim_disk >> 10));
        if (c->sim_extra && (size_t)len < sizeof(config))
            len += snprintf(config + len, sizeof(config) - len, "%s,", c->sim_extra);
        for (unsigned i = 0; i < c->nvifs && (size_t)len < sizeof(config); i++) {
            char vif[256];
            if (mig_net_vif_from_xl(c->vifs[i], vif, sizeof(vif)) < 0)
                return usage_error("--vif '%s': want mac=M,bridge=B,vifname=V[,ip=A B]",
                                   c->vifs[i]);
            len += snprintf(config + len, sizeof(config) - len, "vif%u=%s,", i, vif);
        }
        if (len > 0 && (size_t)len <= sizeof(config))
            config[len - 1] = 0; /* the last comma */
        rc = mig_simhost_create(ctx, c->host_dir, c->pos[2], config);
    } else if (strcmp(sub, "destroy") == 0) {
        if (c->npos != 3)
            return usage_error("usage: sim destroy NAME");
        rc = mig_simhost_destroy(ctx, c->host_dir, c->pos[2]);
    } else if (strcmp(sub, "status") == 0 || strcmp(sub, "verify") == 0) {
        struct mig_sim_guest_status g;
        if (c->npos != 3)
            return usage_error("usage: sim %s NAME", sub);
        rc = sub[0] == 's' ? mig_simhost_status(ctx, c->host_dir, c->pos[2], &g)
                           : mig_simhost_verify(ctx, c->host_dir, c->pos[2], &g);
        if (rc == 0) {
            print_status_json(&g);
            printf("\n");
        }
    } else if (strcmp(sub, "list") == 0) {
        struct mig_sim_guest_status *list = NULL;
        size_t n = 0;
        rc = mig_simhost_list(ctx, c->host_dir, &list, &n);
        if (rc == 0) {
            if (c->json) {
                printf("[");
                for (size_t i = 0; i < n; i++) {
                    if (i)
                        printf(",");
                    print_status_json(&list[i]);
                }
                printf("]\n");
            } else {
                char m[32];
                printf("%-24s %8s %-10s %10s %-9s %s\n", "NAME", "PID", "STATE", "MEM", "VERIFY",
                       "DOWNTIME");
                for (size_t i = 0; i < n; i++) {
                    char dt[32] = "-";
                    if (list[i].downtime_us >= 0)
                        snprintf(dt, sizeof(dt), "%.1f ms", list[i].downtime_us / 1000.0);
                    printf("%-24s %8d %-10s %10s %-9s %s\n", list[i].name, list[i].pid,
                           list[i].state, units_fmt_bytes(list[i].mem_bytes, m, sizeof(m)),
                           verify_name(list[i].verify), dt);
                }
            }
            free(list);
        }
    } else {
        return usage_error("unknown sim command '%s' (create, list, destroy, status, verify)", sub);
    }
    if (rc < 0) {
        fprintf(stderr, "xl-migrate-live sim %s: %s\n", sub, mig_strerror(rc));
        return rc == -MIG_ENOENT ? EXIT_FAILED : EXIT_FAILED;
    }
    return EXIT_OK;
}

/* ---- demo -------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static pid_t spawn_host(const char *dir, const char *listen, const char *psk, const char *log)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    FILE *f = freopen(log, "a", stderr);
    (void)f;
    if (listen)
        execl("/proc/self/exe", "xl-migrate-live", "-v", "--dir", dir, "--listen", listen,
              "--psk", psk, "--state-dir", dir, "simhost", (char *)NULL);
    else
        execl("/proc/self/exe", "xl-migrate-live", "-v", "--dir", dir, "--state-dir", dir,
              "simhost", (char *)NULL);
    _exit(127);
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool wait_for_host(struct mig_ctx *ctx, const char *dir)
{
    struct mig_sim_guest_status *list = NULL;
    size_t n;
    for (int i = 0; i < 100; i++) {
        if (mig_simhost_list(ctx, dir, &list, &n) == 0) {
            free(list);
            return true;
        }
        usleep(50000);
    }
    return false;
}

int xlml_demo_main(struct cli *c, struct mig_ctx *ctx)
{
    char base[] = "/tmp/migrate-live-demo.XXXXXX";
    char a[256], b[256], psk[300], uri[64], loga[300], logb[300];
    pid_t ha = -1, hb = -1;
    int rc = EXIT_FAILED, port;
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return EXIT_FAILED;
    }
    snprintf(a, sizeof(a), "%s/host-a", base);
    snprintf(b, sizeof(b), "%s/host-b", base);
    snprintf(psk, sizeof(psk), "%s/migration.key", base);
    snprintf(loga, sizeof(loga), "%s/host-a.log", base);
    snprintf(logb, sizeof(logb), "%s/host-b.log", base);
    mkdir(a, 0700);
    mkdir(b, 0700);
    /* A fresh pre-shared key: the tcp: listener refuses unauthenticated peers. */
    FILE *kf = fopen(psk, "w");
    FILE *ur = fopen("/dev/urandom", "r");
    if (!kf || !ur) {
        perror("key");
        goto out;
    }
    for (int i = 0; i < 32; i++)
        fprintf(kf, "%02x", fgetc(ur) & 0xff);
    fprintf(kf, "\n");
    fclose(kf);
    fclose(ur);
    chmod(psk, 0600);
    port = free_port();
    if (port < 0)
        goto out;
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", port);

    printf("demo: two test-guest hosts on this machine (state in %s)\n", base);
    printf("  host A: %s\n  host B: %s, listening on %s (pre-shared key)\n", a, b, uri);
    ha = spawn_host(a, NULL, NULL, loga);
    hb = spawn_host(b, uri, psk, logb);
    if (!wait_for_host(ctx, a) || !wait_for_host(ctx, b)) {
        fprintf(stderr, "demo: the test-guest hosts did not start (logs in %s)\n", base);
        goto out;
    }
    const char *config = "mem=512M,vcpus=2,dirty=200M,pattern=hotset";
    printf("demo: creating guest 'demo' on host A: %s\n", config);
    int r = mig_simhost_create(ctx, a, "demo", config);
    if (r < 0) {
        fprintf(stderr, "demo: cannot create the guest: %s\n", mig_strerror(r));
        goto out;
    }
    sleep(1); /* let the workload dirty memory before the move */
    printf("demo: xl-migrate-live --host %s --psk %s sim:demo %s\n\n", a, psk, uri);
    fflush(stdout);

    c->host_dir = a;
    c->mp.link.psk_file = psk;
    c->mp.state_dir = a;
    if (c->verbosity == 0)
        mig_ctx_set_log_level(ctx, MIG_LOG_WARN);
    char *pos[] = {"sim:demo", uri};
    c->pos = pos;
    c->npos = 2;
    rc = cmd_migrate(c, ctx);
    printf("\n");
    if (rc != EXIT_OK) {
        fprintf(stderr, "demo: migration failed (exit %d); host logs in %s\n", rc, base);
        goto out;
    }
    /* The guest verifies its own memory when it resumes on host B. */
    struct mig_sim_guest_status g = {0};
    for (int i = 0; i < 600; i++) {
        if (mig_simhost_status(ctx, b, "demo", &g) == 0 && g.verify != MIG_SIM_VERIFY_RUNNING &&
            g.verify != MIG_SIM_VERIFY_NONE && g.downtime_us >= 0)
            break;
        usleep(100000);
    }
    struct mig_sim_guest_status ga;
    bool gone = mig_simhost_status(ctx, a, "demo", &ga) == -MIG_ENOENT;
    printf("guest 'demo' now runs on host B (pid %d); on host A it is %s\n", g.pid,
           gone ? "gone" : "STILL PRESENT");
    printf("  guest's own memory check: %s (%llu pages checked, %llu bad)\n",
           verify_name(g.verify), (unsigned long long)g.verify_pages,
           (unsigned long long)g.verify_errors);
    if (g.downtime_us >= 0)
        printf("  downtime seen by the guest: %.1f ms (largest gap in its own 1 ms clock)\n",
               g.downtime_us / 1000.0);
    rc = (g.verify == MIG_SIM_VERIFY_OK && gone) ? EXIT_OK : EXIT_FAILED;
    printf("demo: %s\n", rc == EXIT_OK ? "PASS" : "FAIL");
out:
    if (ha > 0) {
        mig_simhost_shutdown(ctx, a);
        kill(ha, SIGTERM);
        waitpid(ha, NULL, 0);
    }
    if (hb > 0) {
        mig_simhost_shutdown(ctx, b);
        kill(hb, SIGTERM);
        waitpid(hb, NULL, 0);
    }
    if (rc == EXIT_OK && nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "demo: could not remove %s\n", base);
    return rc;
}
