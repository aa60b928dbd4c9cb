/*
 * bench/stream: throughput of the migration stream over loopback, printed as
 * ONE JSON object. Payload: PAGES records of 1024 random pages (the engine's
 * path), received and parsed by the receiver. Measured in the same run:
 *   reference   a plain C socket copy of the same bytes, 1 MiB buffers
 *   tcp: / tls: with 1 and 2 data channels; tls: also with OpenSSL's records
 *               (ours are the default; see tls.c), for comparison
 *   ssh pipe    the same bytes through `ssh localhost 'cat >/dev/null'` (how
 *               xl migrate moves its stream), against a private sshd on a
 *               loopback port with generated keys, stopped afterwards
 * Goals: tcp: >= 0.90 x reference; tls: >= 0.45 x reference and >= 2 x ssh.
 * Usage: stream [--quick]   (--quick: 256 MiB, 1 run; default 4 GiB, median of 5
 * interleaved rounds). Developer knobs: MIG_BENCH_ONLY=tcp|tls, MIG_BENCH_MIB=N.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../libmig/src/stream/crc32c.h"
#include "../libmig/src/stream/stream-internal.h"

#ifndef MIG_SRCDIR
#define MIG_SRCDIR "."
#endif

extern char **environ;

#define BATCH MIG_PAGES_PER_BATCH
#define COPY_BUF (1u << 20)

static uint8_t *pagebuf;          /* BATCH random pages */
static const void *pages[BATCH];
static char tmpdir[128];
static char pki[256], psk[256];
static struct mig_ctx *ctx;

static double now_s(void)
{
    return (double)mig__now_ns() / 1e9;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        getsockname(fd, (struct sockaddr *)&a, &l))
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- reference: plain socket copy ---------------------------------------- */

struct copy {
    int fd;
    uint64_t bytes;
};

static void *copy_recv(void *arg)
{
    struct copy *c = arg;
    uint8_t *buf = malloc(COPY_BUF);
    uint64_t got = 0;
    while (buf && got < c->bytes) {
        ssize_t r = read(c->fd, buf, COPY_BUF);
        if (r <= 0)
            break;
        got += (uint64_t)r;
    }
    free(buf);
    c->bytes = got;
    return NULL;
}

static double plain_copy(uint64_t bytes)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), cfd, sfd;
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
        getsockname(lfd, (struct sockaddr *)&a, &l))
        return -1;
    cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cfd, (struct sockaddr *)&a, sizeof(a)))
        return -1;
    sfd = accept(lfd, NULL, NULL);
    struct copy c = {sfd, bytes};
    pthread_t t;
    double t0 = now_s();
    pthread_create(&t, NULL, copy_recv, &c);
    uint64_t sent = 0;
    while (sent < bytes) {
        size_t off = (size_t)(sent % ((uint64_t)BATCH * MIG_PAGE_SIZE));
        size_t n = COPY_BUF;
        ssize_t w = send(cfd, pagebuf + off, n, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (uint64_t)w;
    }
    shutdown(cfd, SHUT_WR);
    pthread_join(t, NULL);
    double dt = now_s() - t0;
    close(cfd);
    close(sfd);
    close(lfd);
    return c.bytes >= bytes ? (double)bytes / dt / 1e9 : -1;
}

/* ---- our links -------------------------------------------------------------- */

struct chan {
    struct mig__stream *s;
    uint64_t pages;             /* to send / received */
    int rc;
};

static void *chan_send(void *arg)
{
    struct chan *c = arg;
    uint64_t pfns[BATCH];
    uint64_t done = 0;
    while (done < c->pages) {
        unsigned n = c->pages - done < BATCH ? (unsigned)(c->pages - done) : BATCH;
        for (unsigned i = 0; i < n; i++)
            pfns[i] = done + i;
        mig__rec_put_pages(c->s, 1, n, pfns, pages);
        done += n;
    }
    mig__rec_put_round_end(c->s, 1, done);
    c->rc = mig__stream_flush(c->s);
    return NULL;
}

static void *chan_recv(void *arg)
{
    struct chan *c = arg;
    struct mig__rec r;
    struct mig__rec_pages pg;
    uint64_t sum = 0;
    for (;;) {
        if ((c->rc = mig__stream_get(c->s, &r)))
            return NULL;
        if (r.type == MIG_REC_ROUND_END)
            break;
        if ((c->rc = mig__rec_get_pages(&r, &pg)))
            return NULL;
        c->pages += pg.count;
        sum += pg.pfns[pg.count - 1];
    }
    (void)sum;
    return NULL;
}

struct server {
    struct mig__listener *l;
    int rc;
    uint64_t pages;
    pthread_t tid;
};

static void *server_main(void *arg)
{
    struct server *sv = arg;
    struct mig__link *link = NULL;
    struct chan ch[8];
    pthread_t t[8];
    struct mig__rec r;
    sv->rc = mig__link_accept(sv->l, 20000, &link);
    if (sv->rc)
        return NULL;
    for (unsigned i = 0; i < link->nchannels; i++) {
        ch[i] = (struct chan){link->data[i], 0, 0};
        pthread_create(&t[i], NULL, chan_recv, &ch[i]);
    }
    for (unsigned i = 0; i < link->nchannels; i++) {
        pthread_join(t[i], NULL);
        sv->pages += ch[i].pages;
        if (ch[i].rc)
            sv->rc = ch[i].rc;
    }
    mig__rec_put_empty(link->ctrl, MIG_REC_READY);
    if (!sv->rc)
        sv->rc = mig__stream_flush(link->ctrl);
    (void)mig__stream_get(link->ctrl, &r); /* until the client closes */
    mig__link_close(link);
    return NULL;
}

static double run_link(const char *scheme, unsigned channels, bool openssl_records, uint64_t bytes)
{
    char uri[64];
    struct mig__link_opts o = {.channels = channels, .timeout_ms = 20000,
                               .tls_openssl_records = openssl_records};
    struct server sv = {0};
    struct mig__link *link = NULL;
    struct chan ch[8];
    pthread_t t[8];
    struct mig__rec r;
    uint64_t total = bytes / MIG_PAGE_SIZE;
    double gbs = -1;

    if (!strcmp(scheme, "tls"))
        o.pki_dir = pki;
    else
        o.psk_file = psk;
    snprintf(uri, sizeof(uri), "%s:127.0.0.1:%d", scheme, free_port());
    if (mig__listener_open(ctx, uri, &o, &sv.l))
        return -1;
    pthread_create(&sv.tid, NULL, server_main, &sv);
    if (mig__link_connect(ctx, uri, &o, &link) == 0 && link->nchannels == channels) {
        double t0 = now_s();
        for (unsigned i = 0; i < channels; i++) {
            ch[i] = (struct chan){link->data[i], total / channels, 0};
            pthread_create(&t[i], NULL, chan_send, &ch[i]);
        }
        int rc = 0;
        for (unsigned i = 0; i < channels; i++) {
            pthread_join(t[i], NULL);
            rc = rc ? rc : ch[i].rc;
        }
        if (!rc && mig__stream_get(link->ctrl, &r) == 0 && r.type == MIG_REC_READY)
            gbs = (double)(total / channels * channels) * MIG_PAGE_SIZE / (now_s() - t0) / 1e9;
    }
    mig__link_close(link);
    pthread_join(sv.tid, NULL);
    mig__listener_close(sv.l);
    if (sv.rc || sv.pages != total / channels * channels)
        return -1;
    return gbs;
}

/* ---- ssh pipe --------------------------------------------------------------- */

static pid_t sshd_pid = -1;
static int sshd_port;

static int sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int sshd_start(void)
{
    char cmd[2048], conf[256];
    snprintf(cmd, sizeof(cmd),
             "set -e; d=%s; mkdir -p /run/sshd; "
             "ssh-keygen -q -t ed25519 -N '' -f $d/hostkey; "
             "ssh-keygen -q -t ed25519 -N '' -f $d/userkey; "
             "cp $d/userkey.pub $d/authorized_keys; chmod 600 $d/authorized_keys",
             tmpdir);
    if (sh(cmd))
        return -1;
    sshd_port = free_port();
    snprintf(conf, sizeof(conf), "%s/sshd_config", tmpdir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "Port %d\nListenAddress 127.0.0.1\nHostKey %s/hostkey\n"
            "AuthorizedKeysFile %s/authorized_keys\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nPidFile %s/sshd.pid\n",
            sshd_port, tmpdir, tmpdir, tmpdir);
    fclose(f);
    char *argv[] = {"/usr/sbin/sshd", "-D", "-e", "-f", conf, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 0, 0);
    int r = posix_spawn(&sshd_pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r)
        return -1;
    for (int i = 0; i < 100; i++) { /* up to 5 s for it to listen */
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sshd_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return 0;
        usleep(50000);
    }
    return -1;
}

static void sshd_stop(void)
{
    if (sshd_pid > 0) {
        kill(sshd_pid, SIGTERM);
        waitpid(sshd_pid, NULL, 0);
        sshd_pid = -1;
    }
}

static double ssh_pipe(uint64_t bytes)
{
    char key[256], port[16];
    int p[2];
    pid_t pid;
    snprintf(key, sizeof(key), "%s/userkey", tmpdir);
    snprintf(port, sizeof(port), "%d", sshd_port);
    char *argv[] = {"ssh", "-q", "-i", key, "-p", port, "-o", "BatchMode=yes",
                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "root@127.0.0.1", "cat > /dev/null", NULL};
    if (pipe(p))
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    double t0 = now_s();
    int r = posix_spawnp(&pid, "ssh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[0]);
    if (r) {
        close(p[1]);
        return -1;
    }
    uint64_t sent = 0;
    while (sent < bytes) {
        size_t off = (size_t)(sent % ((uint64_t)BATCH * MIG_PAGE_SIZE));
        ssize_t w = write(p[1], pagebuf + off, COPY_BUF);
        if (w <= 0)
            break;
        sent += (uint64_t)w;
    }
    close(p[1]);
    int st;
    waitpid(pid, &st, 0);
    double dt = now_s() - t0;
    return sent >= bytes && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? (double)bytes / dt / 1e9 : -1;
}

/* ---- driver ------------------------------------------------------------------ */

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double med(double *v, int n)
{
    for (int i = 0; i < n; i++)
        if (v[i] < 0)
            return -1;
    qsort(v, (size_t)n, sizeof(v[0]), cmp);
    return v[n / 2];
}

static double ref_fn(const char *s, unsigned c, uint64_t b)
{
    return plain_copy(b);
}
static double ssh_fn(const char *s, unsigned c, uint64_t b)
{
    return ssh_pipe(b);
}

static void result(bool *first, const char *name, double v, double ratio, double goal,
                   const char *extra)
{
    printf("%s{\"name\":\"%s\",\"value\":", *first ? "" : ",", name);
    if (v < 0 || ratio < 0)
        printf("null,\"unit\":\"GB/s\",\"ratio\":null,\"goal\":");
    else
        printf("%.3f,\"unit\":\"GB/s\",\"ratio\":%.3f,\"goal\":", v, ratio);
    if (goal > 0)
        printf("%.2f,\"met\":%s", goal, v > 0 && ratio >= goal ? "true" : "false");
    else
        printf("null,\"met\":null");
    printf("%s%s}", extra ? "," : "", extra ? extra : "");
    *first = false;
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    uint64_t bytes = quick ? (256ull << 20) : (4ull << 30);
    int runs = quick ? 1 : 5;
    if (getenv("MIG_BENCH_MIB")) /* a developer's knob while tuning */
        bytes = strtoull(getenv("MIG_BENCH_MIB"), NULL, 10) << 20;
    char cmd[4096];

    signal(SIGPIPE, SIG_IGN);
    if (mig_ctx_new(&ctx))
        return 1;
    mig_ctx_set_log_level(ctx, MIG_LOG_ERROR);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mig-bench-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    snprintf(pki, sizeof(pki), "%s/good", tmpdir);
    snprintf(psk, sizeof(psk), "%s/psk", tmpdir);
    snprintf(cmd, sizeof(cmd),
             "sh '%s/tests/tls/gen-certs.sh' '%s' >/dev/null && "
             "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > '%s'",
             MIG_SRCDIR, tmpdir, psk);
    if (sh(cmd)) {
        fprintf(stderr, "bench/stream: cannot generate certificates or key\n");
        return 1;
    }
    pagebuf = malloc((size_t)BATCH * MIG_PAGE_SIZE);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < (size_t)BATCH * MIG_PAGE_SIZE / 8; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(pagebuf + i * 8, &x, 8);
    }
    for (unsigned i = 0; i < BATCH; i++)
        pages[i] = pagebuf + (size_t)i * MIG_PAGE_SIZE;

    /* MIG_BENCH_ONLY=tcp|tls: a developer's shortcut while tuning. */
    const char *only = getenv("MIG_BENCH_ONLY");
    bool do_tcp = !only || !strcmp(only, "tcp"), do_tls = !only || !strcmp(only, "tls");
    bool do_ssh = !only && sshd_start() == 0;
    if (!only && !do_ssh)
        fprintf(stderr, "bench/stream: could not start a local sshd (openssh-server)\n");
    /* Rounds interleave every configuration with its own reference copy, so a
     * neighbour's load shifts all of them alike; ratios are medians of the
     * per-round ratios, values medians of the values. */
    enum { REF, TCP1, TCP2, TLS1, TLS2, TLSO, SSH, N };
    double v[N][5], ratio[N][5];
    for (int r = 0; r < runs; r++) {
        v[REF][r] = ref_fn(NULL, 0, bytes);
        v[TCP1][r] = do_tcp ? run_link("tcp", 1, false, bytes) : -1;
        v[TCP2][r] = do_tcp ? run_link("tcp", 2, false, bytes) : -1;
        v[TLS1][r] = do_tls ? run_link("tls", 1, false, bytes) : -1;
        v[TLS2][r] = do_tls ? run_link("tls", 2, false, bytes) : -1;
        v[TLSO][r] = do_tls ? run_link("tls", 1, true, bytes) : -1;
        v[SSH][r] = do_ssh ? ssh_fn(NULL, 0, bytes) : -1;
        for (int k = 0; k < N; k++)
            ratio[k][r] = v[k][r] > 0 && v[REF][r] > 0 ? v[k][r] / v[REF][r] : -1;
    }
    double val[N], rat[N];
    for (int k = 0; k < N; k++) {
        rat[k] = med(ratio[k], runs);
        val[k] = med(v[k], runs);
    }
    double ref = val[REF], tcp1 = val[TCP1], tcp2 = val[TCP2], tls1 = val[TLS1],
           tls2 = val[TLS2], sshv = val[SSH];
    sshd_stop();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    (void)sh(cmd);

    char e1[128], e2[128];
    bool tls1_ok = tls1 > 0 && sshv > 0 && tls1 >= 2 * sshv;
    bool tls2_ok = tls2 > 0 && sshv > 0 && tls2 >= 2 * sshv;
    snprintf(e1, sizeof(e1), "\"vs_ssh\":%.2f,\"goal_vs_ssh\":2.0,\"met_vs_ssh\":%s",
             sshv > 0 && tls1 > 0 ? tls1 / sshv : 0.0, tls1_ok ? "true" : "false");
    snprintf(e2, sizeof(e2), "\"vs_ssh\":%.2f,\"goal_vs_ssh\":2.0,\"met_vs_ssh\":%s",
             sshv > 0 && tls2 > 0 ? tls2 / sshv : 0.0, tls2_ok ? "true" : "false");
    printf("{\"bench\":\"stream\",\"bytes\":%" PRIu64 ",\"runs\":%d,\"cpus\":%ld,"
           "\"crc32c_hw\":%s,\"reference\":{\"name\":\"plain socket copy\",\"value\":%.3f,"
           "\"unit\":\"GB/s\"},\"results\":[",
           bytes, runs, sysconf(_SC_NPROCESSORS_ONLN), mig__crc32c_hw_available() ? "true" : "false",
           ref);
    bool first = true;
    result(&first, "tcp: 1 channel", tcp1, rat[TCP1], 0.90, NULL);
    result(&first, "tcp: 2 channels", tcp2, rat[TCP2], 0.90, NULL);
    result(&first, "tls: 1 channel", tls1, rat[TLS1], 0.45, e1);
    result(&first, "tls: 2 channels", tls2, rat[TLS2], 0.45, e2);
    /* what the same link moves with OpenSSL's own record layer (no goal) */
    result(&first, "tls: 1 channel, OpenSSL records", val[TLSO], rat[TLSO], 0, NULL);
    result(&first, "ssh pipe", sshv, rat[SSH], 0, NULL);
    printf("]}\n");
    free(pagebuf);
    mig_ctx_free(ctx);
    if (only)
        return ref > 0 ? 0 : 1;
    return ref > 0 && tcp1 > 0 && tcp2 > 0 && tls1 > 0 && tls2 > 0 && sshv > 0 ? 0 : 1;
}
