/*
 * e2e-prog.c: the small programs of the Xen end-to-end test, one static
 * multi-call binary (built with the host's gcc -static, no libraries needed
 * in the busybox images). Guest side:
 *   probe                 downtime probe: wakes every 1 ms, prints PROBE-GAP
 *                         when CLOCK_REALTIME moved more than 10 ms between two
 *                         wake-ups, PROBE-HB once a second (SCHED_FIFO)
 *   memcheck MB           fills MB with a seeded pattern, re-checks it every
 *                         2 s: MEM-OK pass=N or MEM-BAD
 *   load MB RATE_MB_S     writes a generation number into every page of MB at
 *                         RATE MB/s and checks the whole area every 2 s
 *                         against its own table: LOAD-OK pass=N or LOAD-BAD
 * dom0 side (clock of host 2 set to host 1's, so that guest timestamps taken
 * on both hosts compare to a few ms):
 *   clockserve PORT       answers UDP probes with this host's CLOCK_REALTIME
 *   now                   prints CLOCK_REALTIME in ms (busybox date has no %N)
 *   clockpush             sets the clock to itself: dom0 Linux then copies it
 *                         into Xen's wallclock, which new guests start from
 *   clocksync HOST PORT set|measure
 *                         min-RTT offset to HOST over 64 probes; 'set' steps
 *                         this clock by it (dom0 Linux then pushes it to Xen's
 *                         wallclock, which a resuming guest reads)
 * and for starting programs from the control shell host 1 drives on host 2
 * (whose sockets would otherwise leak into them and keep the control
 * connection open):
 *   nofds CMD...          closes every descriptor above 2, execs CMD
 *   daemon LOG PIDFILE CMD...  CMD in the background, its own session,
 *                         stdin /dev/null, stdout and stderr to LOG
 * Every output line is one write(2), so lines from several programs never mix.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static void say(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof(buf) - 2)
        n = sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t r = write(STDOUT_FILENO, buf, n);
    (void)r;
}

static int64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *area(size_t mb)
{
    void *p = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    if (p == MAP_FAILED) {
        say("E2E-PROG cannot map %zu MiB: %s", mb, strerror(errno));
        exit(1);
    }
    mlock(p, mb << 20);
    return p;
}

#define GAP_REPORT_NS 50000000 /* 50 ms */

__attribute__((noreturn)) static void probe(void)
{
    struct sched_param sp = {.sched_priority = 50};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0)
        say("PROBE-WARN no SCHED_FIFO: %s", strerror(errno));
    int64_t last_w = now_ns(CLOCK_REALTIME), last_m = now_ns(CLOCK_MONOTONIC);
    int64_t next_hb = last_m + 1000000000, max_ms = 0;
    unsigned long hb = 0, gaps = 0;
    say("PROBE-START at=%lld", (long long)(last_w / 1000000));
    struct timespec tick = {0, 1000000};
    for (;;) {
        nanosleep(&tick, NULL);
        int64_t w = now_ns(CLOCK_REALTIME), m = now_ns(CLOCK_MONOTONIC);
        int64_t gw = w - last_w, gm = m - last_m;
        /* Wakes every 1 ms, so a gap is measured to the ms; only gaps over
         * GAP_REPORT_NS are printed: an emulated one-CPU host deschedules
         * the guest for 10-20 ms many times a second, and that jitter
         * would flood the console log every check reads. */
        if (gw > GAP_REPORT_NS || gm > GAP_REPORT_NS) {
            gaps++;
            /* at = wall time of the wake-up that ended the gap (ms since 1970) */
            say("PROBE-GAP n=%lu wall_ms=%lld.%03lld mono_ms=%lld.%03lld at=%lld", gaps,
                (long long)(gw / 1000000), (long long)(gw / 1000 % 1000),
                (long long)(gm / 1000000), (long long)(gm / 1000 % 1000), (long long)(w / 1000000));
            if (gw / 1000000 > max_ms)
                max_ms = gw / 1000000;
        }
        last_w = w;
        last_m = m;
        if (m >= next_hb) {
            say("PROBE-HB %lu at=%lld max_gap_ms=%lld", ++hb, (long long)(w / 1000000),
                (long long)max_ms);
            next_hb = m + 1000000000;
        }
    }
}

static uint64_t pat(uint64_t seed, uint64_t i)
{
    uint64_t x = seed ^ (i * 0x9E3779B97F4A7C15ULL);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    return x;
}

__attribute__((noreturn)) static void memcheck(size_t mb)
{
    uint64_t *p = area(mb);
    size_t n = (mb << 20) / 8;
    uint64_t seed = (uint64_t)now_ns(CLOCK_REALTIME);
    for (size_t i = 0; i < n; i++)
        p[i] = pat(seed, i);
    say("MEM-FILLED mb=%zu seed=%llx", mb, (unsigned long long)seed);
    for (unsigned long pass = 1;; pass++) {
        sleep(2);
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (p[i] != pat(seed, i) && bad++ == 0)
                first = i;
        if (bad)
            say("MEM-BAD pass=%lu words=%zu first_page=%zu", pass, bad, first * 8 / PAGE);
        else
            say("MEM-OK pass=%lu mb=%zu", pass, mb);
    }
}

static int load(size_t mb, size_t rate)
{
    unsigned char *p = area(mb);
    size_t pages = (mb << 20) / PAGE;
    uint32_t *gen = calloc(pages, sizeof(*gen));
    if (!gen)
        return 1;
    /* pages to write per 10 ms slice */
    size_t per_slice = rate * 256 / 100;
    if (per_slice == 0)
        per_slice = 1;
    size_t cur = 0;
    int64_t next_check = now_ns(CLOCK_MONOTONIC) + 2000000000LL;
    unsigned long pass = 0;
    say("LOAD-START mb=%zu rate_mb_s=%zu", mb, rate);
    for (;;) {
        int64_t t0 = now_ns(CLOCK_MONOTONIC);
        for (size_t k = 0; k < per_slice; k++) {
            uint32_t g = ++gen[cur];
            uint32_t *w = (uint32_t *)(p + cur * PAGE);
            w[0] = g;
            w[1] = (uint32_t)cur;
            w[(g * 7) % (PAGE / 4 - 2) + 2] = g ^ 0x5a5a5a5a; /* touch more than the first line */
            cur = (cur * 1103515245u + 12345u) % pages;     /* scattered, not sequential */
        }
        int64_t t1 = now_ns(CLOCK_MONOTONIC);
        if (t1 >= next_check) {
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < pages; i++) {
                uint32_t *w = (uint32_t *)(p + i * PAGE);
                if (gen[i] && (w[0] != gen[i] || w[1] != (uint32_t)i) && bad++ == 0)
                    first = i;
            }
            pass++;
            if (bad)
                say("LOAD-BAD pass=%lu pages=%zu first=%zu", pass, bad, first);
            else
                say("LOAD-OK pass=%lu", pass);
            next_check = t1 + 2000000000LL;
        }
        int64_t rest = 10000000 - (now_ns(CLOCK_MONOTONIC) - t0);
        if (rest > 0) {
            struct timespec ts = {0, rest};
            nanosleep(&ts, NULL);
        }
    }
}

static int udp(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) {
        say("CLOCK socket: %s", strerror(errno));
        exit(1);
    }
    return s;
}

static int clockserve(int port)
{
    int s = udp();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
        say("CLOCK bind: %s", strerror(errno));
        return 1;
    }
    for (;;) {
        int64_t buf[2];
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t r = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
        if (r != sizeof(buf))
            continue;
        buf[1] = now_ns(CLOCK_REALTIME);
        sendto(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, fl);
    }
}

static int clocksync(const char *host, int port, int set)
{
    int s = udp();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        say("CLOCK bad address %s", host);
        return 1;
    }
    struct timeval tv = {0, 200000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int64_t best_rtt = INT64_MAX, best_off = 0;
    int got = 0;
    for (int i = 0; i < 64; i++) {
        int64_t buf[2] = {i, 0};
        int64_t t1 = now_ns(CLOCK_REALTIME);
        sendto(s, buf, sizeof(buf), 0, (struct sockaddr *)&a, sizeof(a));
        ssize_t r = recv(s, buf, sizeof(buf), 0);
        int64_t t3 = now_ns(CLOCK_REALTIME);
        if (r != sizeof(buf) || buf[0] != i)
            continue;
        got++;
        if (t3 - t1 < best_rtt) {
            best_rtt = t3 - t1;
            best_off = buf[1] - (t1 + t3) / 2;
        }
        usleep(2000);
    }
    if (!got) {
        say("CLOCK-FAIL no answer from %s:%d", host, port);
        return 1;
    }
    say("CLOCK %s offset_us=%lld rtt_us=%lld samples=%d", set ? "set" : "measure",
        (long long)(best_off / 1000), (long long)(best_rtt / 1000), got);
    if (set) {
        int64_t t = now_ns(CLOCK_REALTIME) + best_off;
        struct timespec ts = {t / 1000000000, t % 1000000000};
        if (clock_settime(CLOCK_REALTIME, &ts) != 0) {
            say("CLOCK-FAIL settime: %s", strerror(errno));
            return 1;
        }
    }
    return 0;
}

static void close_from_3(void)
{
    struct rlimit rl;
    int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
    for (int fd = 3; fd < max; fd++)
        close(fd);
}

static int run_nofds(char **argv)
{
    close_from_3();
    execvp(argv[0], argv);
    fprintf(stderr, "e2e-prog: cannot run %s: %s\n", argv[0], strerror(errno));
    return 127;
}

static int run_daemon(const char *log, const char *pidfile, char **argv)
{
    pid_t p = fork();
    if (p < 0)
        return 1;
    if (p > 0) {
        FILE *f = fopen(pidfile, "w");
        if (!f)
            return 1;
        fprintf(f, "%d\n", (int)p);
        fclose(f);
        return 0;
    }
    setsid();
    int in = open("/dev/null", O_RDONLY);
    int out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (in < 0 || out < 0)
        _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    _exit(run_nofds(argv));
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "probe") == 0)
        probe();
    if (strcmp(cmd, "memcheck") == 0 && argc > 2)
        memcheck(strtoul(argv[2], NULL, 10));
    if (strcmp(cmd, "load") == 0 && argc > 3)
        return load(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10));
    if (strcmp(cmd, "now") == 0) {
        printf("%lld\n", (long long)(now_ns(CLOCK_REALTIME) / 1000000));
        return 0;
    }
    if (strcmp(cmd, "clockpush") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return clock_settime(CLOCK_REALTIME, &ts) == 0 ? 0 : 1;
    }
    if (strcmp(cmd, "nofds") == 0 && argc > 2)
        return run_nofds(argv + 2);
    if (strcmp(cmd, "daemon") == 0 && argc > 4)
        return run_daemon(argv[2], argv[3], argv + 4);
    if (strcmp(cmd, "clockserve") == 0 && argc > 2)
        return clockserve(atoi(argv[2]));
    if (strcmp(cmd, "clocksync") == 0 && argc > 4)
        return clocksync(argv[2], atoi(argv[3]), strcmp(argv[4], "set") == 0);
    fprintf(stderr, "usage: e2e-prog probe | memcheck MB | load MB RATE | now | clockpush | clockserve PORT | "
                    "clocksync HOST PORT set|measure | nofds CMD... | daemon LOG PIDFILE CMD...\n");
    return 2;
}
