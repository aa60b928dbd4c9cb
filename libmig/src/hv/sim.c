/*
 * sim.c: the "sim:" domain backend (mig__hv_sim_ops): drives a test guest
 * living in a test-guest host (sim-host.c), both roles.
 *
 * Source, arg "NAME,host=DIR": attaches to guest NAME (memfd, a control
 * connection to the guest, its userfaultfd). Dirty tracking is done here,
 * never by the workload:
 *  - "uffd-wp-async+pagemap-scan": enable write-protects the guest's whole
 *    mapping through its uffd (async mode: the kernel resolves write faults
 *    and clears the page's uffd-wp bit); clean is one PAGEMAP_SCAN ioctl on
 *    /proc/PID/pagemap with PM_SCAN_WP_MATCHING, which reports written pages
 *    and write-protects them again under the page-table lock, like Xen's
 *    log-dirty CLEAN.
 *  - "uffd-wp-sync" (kernels without WP_ASYNC, or MIG_SIM_TRACKING=sync):
 *    a thread here reads the guest's write faults from the uffd, sets the
 *    page's bit and un-protects the page; clean re-protects the recorded
 *    pages and hands the bits over, holding the lock the fault thread takes,
 *    so a write after the re-protect faults again and lands in the next
 *    round.
 * In both, enable returns at once and a thread write-protects the mapping
 * in chunks while round 0 reads it; map_pages waits until its pages are
 * protected, clean and disable until all are.
 * Pages are read through a read-only MAP_SHARED mapping of the memfd.
 *
 * Destination, arg "host=DIR": create-incoming / commit / discard through
 * the host's control socket; pages are written straight into the incoming
 * guest's memfd; write_zero punches holes.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>


#define MIG_LOG_MODULE "hv-sim"
#include "hv-provider.h"
#include "sim.h"
#include "uffd-compat.h"

#define BITS_PER_UL     (8 * sizeof(unsigned long))
#define SCAN_VEC        512
#define STATE_BLOB_KIND 0x53494d31u /* "SIM1" */

struct sim_hv {
    struct mig__hv base;
    char dir[PATH_MAX];
    char name[80];      /* source: guest name; destination: incoming guest's name */
    char orig_name[80]; /* source: the name at open */
    char config[512];
    char tracking[40];
    pid_t pid;
    int guest; /* control connection to the guest */
    int memfd;
    int uffd;
    int pagemap;
    uint8_t *mem; /* memfd mapping: read-only (source) or read-write (destination) */
    /* memfd is the host's memory (simhost --mem) and the guest's is the
     * extent from memoff: no holes there, zero pages are cleared by hand */
    bool pooled;
    bool huge;       /* ... of 2 MiB pages: our mapping faults in per 2 MiB */
    uint64_t memoff; /* bytes */
    uint64_t nr_pages;
    uint64_t guest_addr; /* where the guest maps its memory */
    unsigned vcpus;

    bool tracking_on;
    bool suspended;
    bool destroyed;
    bool handed_over; /* renamed while suspended: stays paused at close */
    bool incoming;    /* destination: an incoming guest exists */
    bool committed;
    unsigned orig_throttle; /* the admin's setting, restored by throttle(0) and close */
    unsigned cur_throttle;

    /* sync tracking */
    pthread_mutex_t lock;
    unsigned long *dirty; /* nr_pages bits, under lock */
    pthread_t fault_thr;
    bool fault_thr_on;
    int stop_pipe[2];
    int fault_err; /* first error of the fault thread (under lock) */

    struct page_region *vec;
    struct mig_ratelimit rl;

    /* Log-dirty enable write-protects the guest's memory in chunks from a
     * thread of its own while round 0 reads it (as Xen's HAP log-dirty
     * enable only marks the p2m for lazy recalculation): map_pages waits
     * until a batch's pages are protected, clean and disable until all are.
     * Under wp_lock except wp_upto, which the thread publishes atomically. */
    pthread_mutex_t wp_lock;
    pthread_cond_t wp_cond; /* wp_upto advanced, or the thread ended */
    pthread_t wp_thr;
    bool wp_thr_on;           /* started, not joined (the engine's thread only) */
    bool wp_stop;             /* disable: stop protecting */
    int wp_err;               /* the thread's failure */
    _Atomic uint64_t wp_upto; /* pages [0, wp_upto) are protected */

    /* map_pages' knowledge of the memfd's holes, so that a batch costs no
     * SEEK_HOLE walk over the rest of the file: one data run and one hole run,
     * learned since the last clean (a page written after a clean is dirty
     * and sent again; one written before it may no longer be a hole, hence
     * the reset at every clean). Under hole_lock: senders call concurrently. */
    pthread_mutex_t hole_lock;
    uint64_t data_lo, data_hi, hole_lo, hole_hi;
};

static void holes_forget(struct sim_hv *s)
{
    pthread_mutex_lock(&s->hole_lock);
    s->data_lo = s->data_hi = s->hole_lo = s->hole_hi = 0;
    pthread_mutex_unlock(&s->hole_lock);
}

static struct sim_hv *to_sim(struct mig__hv *hv)
{
    return (struct sim_hv *)hv;
}

static int guest_cmd(struct sim_hv *s, const char *req, char *resp, size_t cap)
{
    if (s->guest < 0)
        return -MIG_ESTATE;
    return mig__sim_call(s->guest, req, resp, cap, NULL, NULL, MIG_SIM_TIMEOUT_MS);
}

/* ---- probing ------------------------------------------------------------------- */

/* What tracking a guest started by a host on this machine would get. */
static const char *probe_tracking(void)
{
    const char *env = getenv("MIG_SIM_TRACKING");
    struct uffdio_api api = {.api = UFFD_API};
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        return "none";
    int r = ioctl(fd, UFFDIO_API, &api);
    close(fd);
    if (r < 0 || !(api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
        return "none";
    if ((api.features & UFFD_FEATURE_WP_ASYNC) && !(env && !strcmp(env, "sync")))
        return "uffd-wp-async+pagemap-scan";
    return "uffd-wp-sync";
}

/* ---- open / close ------------------------------------------------------------------ */

/* "NAME,host=DIR" (source) or "host=DIR" (destination). */
static int parse_arg(const char *arg, bool want_name, char *name, size_t ncap, char *dir,
                     size_t dcap)
{
    char *copy = strdup(arg ? arg : "");
    char *save = NULL;
    int rc = 0;
    bool have_dir = false;
    if (!copy)
        return -MIG_ENOMEM;
    name[0] = '\0';
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strncmp(tok, "host=", 5)) {
            snprintf(dir, dcap, "%s", tok + 5);
            have_dir = tok[5] != '\0';
        } else if (!strchr(tok, '=') && want_name && !name[0]) {
            snprintf(name, ncap, "%s", tok);
        } else {
            rc = -MIG_EINVAL;
        }
    }
    if (!have_dir || (want_name && !name[0]))
        rc = -MIG_EINVAL;
    free(copy);
    return rc;
}

static void sim_close(struct mig__hv *hv);

static int attach(struct sim_hv *s)
{
    char *resp = malloc(MIG_SIM_MSG_MAX);
    char req[128];
    char path[64];
    int fds[3] = {-1, -1, -1};
    unsigned nfds = 3;
    uint64_t v = 0;
    int rc;
    if (!resp)
        return -MIG_ENOMEM;
    snprintf(req, sizeof(req), "attach %s", s->name);
    rc = mig__sim_host_call(s->dir, req, resp, MIG_SIM_MSG_MAX, fds, &nfds);
    if (rc)
        goto out;
    if (nfds < 2) {
        rc = -MIG_EPROTO;
        goto out;
    }
    s->memfd = fds[0];
    s->guest = fds[1];
    s->uffd = nfds > 2 ? fds[2] : -1;
    fds[0] = fds[1] = fds[2] = -1;
    snprintf(s->orig_name, sizeof(s->orig_name), "%s", s->name);
    mig__sim_kv(resp, "tracking", s->tracking, sizeof(s->tracking));
    mig__sim_kv(resp, "config", s->config, sizeof(s->config));
    mig__sim_kv_u64(resp, "addr", &s->guest_addr);
    mig__sim_kv_u64(resp, "nr_pages", &s->nr_pages);
    s->pooled = mig__sim_kv_u64(resp, "memoff", &s->memoff);
    if (mig__sim_kv_u64(resp, "pid", &v))
        s->pid = (pid_t)v;
    if (mig__sim_kv_u64(resp, "vcpus", &v))
        s->vcpus = (unsigned)v;
    if (mig__sim_kv_u64(resp, "throttle", &v))
        s->orig_throttle = s->cur_throttle = (unsigned)v;
    if (!s->nr_pages || !s->pid || !s->guest_addr) {
        rc = -MIG_EPROTO;
        goto out;
    }
    s->mem = mmap(NULL, s->nr_pages * MIG_SIM_PAGE, PROT_READ, MAP_SHARED, s->memfd,
                  (off_t)s->memoff);
    if (s->mem == MAP_FAILED) {
        s->mem = NULL;
        rc = mig__from_errno(errno);
        goto out;
    }
    if (!strcmp(s->tracking, "uffd-wp-async+pagemap-scan")) {
        snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)s->pid);
        s->pagemap = open(path, O_RDONLY | O_CLOEXEC);
        if (s->pagemap < 0) {
            rc = mig__from_errno(errno);
            MIG_LOG(s->base.ctx, ERROR, "sim: cannot open %s: %s", path, strerror(errno));
            goto out;
        }
    }
    /* this connection owns tracking: if we vanish, the guest lifts write protection */
    rc = guest_cmd(s, "track-owner", NULL, 0);
out:
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(resp);
    return rc;
}

static int sim_open(struct mig_ctx *ctx, const char *arg, enum mig_role role,
                    struct mig__hv **hv_out)
{
    struct sim_hv *s = calloc(1, sizeof(*s));
    int rc;
    if (!s)
        return -MIG_ENOMEM;
    s->base.ops = &mig__hv_sim_ops;
    s->base.ctx = ctx;
    s->base.role = role;
    s->guest = s->memfd = s->uffd = s->pagemap = -1;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->hole_lock, NULL);
    pthread_mutex_init(&s->wp_lock, NULL);
    pthread_cond_init(&s->wp_cond, NULL);
    mig__ratelimit_init(&s->rl, 1000, 5);
    rc = parse_arg(arg, role == MIG_ROLE_SOURCE, s->name, sizeof(s->name), s->dir, sizeof(s->dir));
    if (rc) {
        MIG_LOG(ctx, ERROR, "sim: bad argument '%s' (want %s)", arg ? arg : "",
                role == MIG_ROLE_SOURCE ? "NAME,host=DIR" : "host=DIR");
        goto out;
    }
    if (role == MIG_ROLE_SOURCE) {
        rc = attach(s);
        if (rc) {
            MIG_LOG(ctx, ERROR, "sim: cannot attach to %s in %s: %s", s->name, s->dir,
                    mig_strerror(rc));
            goto out;
        }
        MIG_LOG(ctx, INFO, "sim: attached to %s (pid %d, %" PRIu64 " pages, tracking %s)", s->name,
                (int)s->pid, s->nr_pages, s->tracking);
    } else {
        int sock = -1;
        rc = mig__sim_connect(s->dir, &sock); /* is a host there? */
        if (sock >= 0)
            close(sock);
        if (rc) {
            MIG_LOG(ctx, ERROR, "sim: no test-guest host at %s: %s", s->dir, mig_strerror(rc));
            goto out;
        }
        snprintf(s->tracking, sizeof(s->tracking), "%s", probe_tracking());
    }
    *hv_out = &s->base;
    s = NULL;
out:
    if (s)
        sim_close(&s->base);
    return rc;
}

static int sim_logdirty_disable(struct mig__hv *hv);
static int wp_join(struct sim_hv *s, bool stop);
static int sim_throttle(struct mig__hv *hv, unsigned percent);
static int sim_resume(struct mig__hv *hv);
static int sim_discard(struct mig__hv *hv);

static void sim_close(struct mig__hv *hv)
{
    struct sim_hv *s = to_sim(hv);
    if (!s)
        return;
    if (s->base.role == MIG_ROLE_SOURCE && !s->destroyed && s->guest >= 0) {
        sim_logdirty_disable(hv);
        if (s->cur_throttle != s->orig_throttle)
            sim_throttle(hv, 0);
        /* A suspended guest stays suspended: the engine resumes it after a
         * failure, and must not when the outcome is in doubt. */
    }
    if (s->base.role == MIG_ROLE_DESTINATION && s->incoming && !s->committed)
        sim_discard(hv);
    wp_join(s, true);
    if (s->mem)
        munmap(s->mem, s->nr_pages * MIG_SIM_PAGE);
    if (s->pagemap >= 0)
        close(s->pagemap);
    if (s->uffd >= 0)
        close(s->uffd);
    if (s->memfd >= 0)
        close(s->memfd);
    if (s->guest >= 0)
        close(s->guest);
    free(s->dirty);
    free(s->vec);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->hole_lock);
    pthread_mutex_destroy(&s->wp_lock);
    pthread_cond_destroy(&s->wp_cond);
    free(s);
}

/* ---- both sides ---------------------------------------------------------------------- */

static void json_str(FILE *f, const char *key, const char *v, bool comma)
{
    fprintf(f, "\"%s\":\"", key);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', f);
        if ((unsigned char)*p >= 0x20)
            fputc(*p, f);
    }
    fprintf(f, "\"%s", comma ? "," : "");
}

/* MemAvailable from /proc/meminfo in bytes, 0 if unknown. */
static uint64_t mem_available_bytes(void)
{
    char line[128];
    uint64_t kb = 0;
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

/* Append the contents of 'path' to f; false if it cannot be read. */
static bool append_file(FILE *f, const char *path)
{
    char chunk[4096];
    size_t n;
    FILE *in = fopen(path, "re");
    if (!in)
        return false;
    while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
        fwrite(chunk, 1, n, f);
    fclose(in);
    return true;
}

/* This machine's CPU as /proc/cpuinfo shows it: vendor and feature flags
 * (Linux names; the profile check accepts them for Xen's, '_' for '-'). */
static void cpu_facts(FILE *f)
{
    char line[8192], vendor[64] = "unknown";
    char *flags = NULL;
    FILE *in = fopen("/proc/cpuinfo", "re");
    while (in && fgets(line, sizeof(line), in)) {
        if (!strncmp(line, "vendor_id", 9) && strchr(line, ':'))
            sscanf(strchr(line, ':') + 1, " %63s", vendor);
        else if (!flags && !strncmp(line, "flags", 5) && strchr(line, ':'))
            flags = strdup(strchr(line, ':') + 1);
    }
    if (in)
        fclose(in);
    fprintf(f, "\"cpu\":{");
    json_str(f, "vendor", vendor, true);
    fprintf(f, "\"features\":[");
    bool first = true;
    for (char *save = NULL, *t = flags ? strtok_r(flags, " \n", &save) : NULL; t;
         t = strtok_r(NULL, " \n", &save)) {
        fprintf(f, "%s\"%s\"", first ? "" : ",", t);
        first = false;
    }
    fprintf(f, "]}");
    free(flags);
}

/*
 * Facts in the shape of docs/profiles.md. DIR/facts.json, if present,
 * replaces the host part (tests describe any host with it). On a source
 * with a guest open, a "guest" member follows: DIR/guest-NAME.json if
 * present, else the guest's size and the host's CPU (a test guest sees the
 * host's CPU, as a guest with cpuid=host would).
 */
static int sim_facts(struct mig__hv *hv, char **json_out)
{
    struct sim_hv *s = to_sim(hv);
    char path[PATH_MAX + 96];
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -MIG_ENOMEM;
    snprintf(path, sizeof(path), "%s/facts.json", s->dir);
    FILE *probe = fopen(path, "re");
    if (probe) {
        fclose(probe);
        /* the host part from the file, without its closing brace */
        char *host = NULL;
        size_t hlen = 0;
        FILE *h = open_memstream(&host, &hlen);
        bool ok = h && append_file(h, path);
        if (h)
            fclose(h);
        char *end = ok ? strrchr(host, '}') : NULL;
        if (!end) {
            free(host);
            fclose(f);
            free(buf);
            return -MIG_EPARSE;
        }
        *end = 0;
        fputs(host, f);
        free(host);
    } else {
        struct utsname u;
        struct sysinfo si;
        char hostname[256] = "";
        uname(&u);
        sysinfo(&si);
        gethostname(hostname, sizeof(hostname) - 1);
        fputc('{', f);
        json_str(f, "backend", "sim", true);
        json_str(f, "hostname", hostname, true);
        json_str(f, "kernel", u.release, true);
        json_str(f, "machine", u.machine, true);
        fprintf(f, "\"total_memory_bytes\":%" PRIu64 ",\"free_memory_bytes\":%" PRIu64 ",",
                (uint64_t)si.totalram * si.mem_unit, mem_available_bytes());
        fprintf(f, "\"cpus\":%ld,\"page_size\":%u,", sysconf(_SC_NPROCESSORS_ONLN), MIG_SIM_PAGE);
        json_str(f, "tracking", s->tracking, true);
        cpu_facts(f);
    }
    if (s->base.role == MIG_ROLE_SOURCE && s->name[0]) {
        snprintf(path, sizeof(path), "%s/guest-%s.json", s->dir, s->name);
        fprintf(f, ",\"guest\":");
        if (!append_file(f, path)) {
            fputc('{', f);
            json_str(f, "name", s->name, true);
            fprintf(f, "\"mem_bytes\":%" PRIu64 ",\"max_mem_bytes\":%" PRIu64 ",\"vcpus\":%u,",
                    s->nr_pages * MIG_SIM_PAGE, s->nr_pages * MIG_SIM_PAGE, s->vcpus);
            fprintf(f, "\"passthrough\":false,\"nested_hvm\":false,\"pod\":false,");
            /* the guest's CPU is the host's: "cpu_features" from the same flags */
            char *cpu = NULL;
            size_t clen = 0;
            FILE *c = open_memstream(&cpu, &clen);
            if (c) {
                cpu_facts(c);
                fclose(c);
                /* "cpu":{"vendor":..,"features":[..]} -> "cpu_features":[..] */
                char *feat = cpu ? strstr(cpu, "\"features\":") : NULL;
                if (feat) {
                    feat += strlen("\"features\":");
                    char *close = strrchr(feat, ']');
                    if (close)
                        close[1] = 0;
                    fprintf(f, "\"cpu_features\":%s", feat);
                } else {
                    fprintf(f, "\"cpu_features\":[]");
                }
            }
            free(cpu);
            fputc('}', f);
        }
    }
    fputc('}', f);
    if (fclose(f)) {
        free(buf);
        return -MIG_ENOMEM;
    }
    *json_out = buf;
    return 0;
}

static int sim_info(struct mig__hv *hv, struct mig__dom_info *info_out)
{
    struct sim_hv *s = to_sim(hv);
    if (s->base.role != MIG_ROLE_SOURCE)
        return -MIG_ESTATE;
    memset(info_out, 0, sizeof(*info_out));
    snprintf(info_out->name, sizeof(info_out->name), "%.63s", s->name);
    info_out->nr_pages = s->nr_pages;
    info_out->page_size = MIG_SIM_PAGE;
    info_out->vcpus = s->vcpus;
    return mig__sim_net_info(s->config, s->pid, info_out->config, sizeof(info_out->config));
}

static const char *sim_tracking(struct mig__hv *hv)
{
    /* a static string, as the contract says */
    const char *t = to_sim(hv)->tracking;
    if (!strcmp(t, "uffd-wp-async+pagemap-scan"))
        return "uffd-wp-async+pagemap-scan";
    if (!strcmp(t, "uffd-wp-sync"))
        return "uffd-wp-sync";
    return "none";
}

/* The test guest's state is a few bytes. */
static uint64_t sim_state_cost_ms(struct mig__hv *hv)
{
    return 0;
}

/* ---- source: dirty tracking ---------------------------------------------------------------- */

static int wp_range(struct sim_hv *s, uint64_t pfn, uint64_t count, bool protect)
{
    struct uffdio_writeprotect wp = {
        .range = {.start = s->guest_addr + pfn * MIG_SIM_PAGE, .len = count * MIG_SIM_PAGE},
        .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
    };
    for (;;) {
        if (ioctl(s->uffd, UFFDIO_WRITEPROTECT, &wp) == 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return mig__from_errno(errno);
    }
}

/* Pages protected per ioctl by the enable thread: 16 MiB, about 0.1 ms
 * here, so round 0's first batch hardly waits. */
#define WP_CHUNK_PAGES 4096u

static void *wp_main(void *arg)
{
    struct sim_hv *s = arg;
    int rc = 0;
    for (uint64_t pfn = 0; pfn < s->nr_pages && rc == 0;) {
        pthread_mutex_lock(&s->wp_lock);
        bool stop = s->wp_stop;
        pthread_mutex_unlock(&s->wp_lock);
        if (stop)
            break;
        uint64_t k = s->nr_pages - pfn < WP_CHUNK_PAGES ? s->nr_pages - pfn : WP_CHUNK_PAGES;
        rc = wp_range(s, pfn, k, true);
        if (rc == 0) {
            pfn += k;
            atomic_store_explicit(&s->wp_upto, pfn, memory_order_release);
        }
        pthread_mutex_lock(&s->wp_lock);
        s->wp_err = rc;
        pthread_cond_broadcast(&s->wp_cond);
        pthread_mutex_unlock(&s->wp_lock);
    }
    pthread_mutex_lock(&s->wp_lock);
    if (!s->wp_err && atomic_load(&s->wp_upto) < s->nr_pages)
        s->wp_err = -MIG_ECANCELLED; /* stopped: waiters must not read on */
    pthread_cond_broadcast(&s->wp_cond);
    pthread_mutex_unlock(&s->wp_lock);
    return NULL;
}

/* Wait until pages [0, end) are write-protected (a read of them after this
 * misses no write): 0, or the enable thread's failure. Any thread. */
static int wp_wait(struct sim_hv *s, uint64_t end)
{
    if (atomic_load_explicit(&s->wp_upto, memory_order_acquire) >= end)
        return 0;
    pthread_mutex_lock(&s->wp_lock);
    while (atomic_load(&s->wp_upto) < end && !s->wp_err)
        pthread_cond_wait(&s->wp_cond, &s->wp_lock);
    int rc = atomic_load(&s->wp_upto) >= end ? 0 : s->wp_err;
    pthread_mutex_unlock(&s->wp_lock);
    return rc;
}

/* Join the enable thread (stop: tell it to end first). Returns its
 * failure, 0 when it protected everything or none ran. Engine's thread. */
static int wp_join(struct sim_hv *s, bool stop)
{
    if (!s->wp_thr_on)
        return 0;
    if (stop) {
        pthread_mutex_lock(&s->wp_lock);
        s->wp_stop = true;
        pthread_mutex_unlock(&s->wp_lock);
    }
    pthread_join(s->wp_thr, NULL);
    s->wp_thr_on = false;
    return stop ? 0 : s->wp_err;
}

static void *fault_main(void *arg)
{
    struct sim_hv *s = arg;
    struct uffd_msg msgs[64];
    for (;;) {
        struct pollfd p[2] = {{.fd = s->uffd, .events = POLLIN},
                              {.fd = s->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        ssize_t r = read(s->uffd, msgs, sizeof(msgs));
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            pthread_mutex_lock(&s->lock);
            if (!s->fault_err)
                s->fault_err = mig__from_errno(errno);
            pthread_mutex_unlock(&s->lock);
            break;
        }
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < (size_t)r / sizeof(msgs[0]); i++) {
            if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
                continue;
            uint64_t addr = msgs[i].arg.pagefault.address & ~(uint64_t)(MIG_SIM_PAGE - 1);
            uint64_t pfn = (addr - s->guest_addr) / MIG_SIM_PAGE;
            if (addr < s->guest_addr || pfn >= s->nr_pages)
                continue;
            s->dirty[pfn / BITS_PER_UL] |= 1UL << (pfn % BITS_PER_UL);
            /* un-protect and wake the faulting vCPU: the write goes through */
            int rc = wp_range(s, pfn, 1, false);
            if (rc && !s->fault_err)
                s->fault_err = rc;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static int sim_logdirty_enable(struct mig__hv *hv)
{
    struct sim_hv *s = to_sim(hv);
    if (s->base.role != MIG_ROLE_SOURCE || s->destroyed)
        return -MIG_ESTATE;
    if (s->tracking_on)
        return 0;
    if (s->uffd < 0 || !strcmp(sim_tracking(hv), "none"))
        return -MIG_ENOTSUP;
    if (!strcmp(s->tracking, "uffd-wp-sync")) {
        size_t words = (s->nr_pages + BITS_PER_UL - 1) / BITS_PER_UL;
        free(s->dirty);
        s->dirty = calloc(words, sizeof(unsigned long));
        if (!s->dirty)
            return -MIG_ENOMEM;
        if (pipe2(s->stop_pipe, O_CLOEXEC) < 0)
            return mig__from_errno(errno);
        s->fault_err = 0;
        if (pthread_create(&s->fault_thr, NULL, fault_main, s)) {
            close(s->stop_pipe[0]);
            close(s->stop_pipe[1]);
            s->stop_pipe[0] = s->stop_pipe[1] = -1;
            return -MIG_ENOMEM;
        }
        s->fault_thr_on = true;
    } else if (!s->vec) {
        s->vec = calloc(SCAN_VEC, sizeof(*s->vec));
        if (!s->vec)
            return -MIG_ENOMEM;
    }
    s->tracking_on = true;
    atomic_store(&s->wp_upto, 0);
    s->wp_err = 0;
    s->wp_stop = false;
    if (pthread_create(&s->wp_thr, NULL, wp_main, s)) {
        sim_logdirty_disable(hv);
        return -MIG_ENOMEM;
    }
    s->wp_thr_on = true;
    MIG_LOG(s->base.ctx, DEBUG, "sim: log-dirty on (%s)", s->tracking);
    return 0;
}

static int sim_logdirty_disable(struct mig__hv *hv)
{
    struct sim_hv *s = to_sim(hv);
    int rc = 0;
    if (!s->tracking_on)
        return 0;
    wp_join(s, true);
    /* lift protection first: a vCPU blocked on a sync fault is woken by it */
    rc = wp_range(s, 0, s->nr_pages, false);
    if (s->fault_thr_on) {
        ssize_t w = write(s->stop_pipe[1], "x", 1);
        (void)w;
        pthread_join(s->fault_thr, NULL);
        s->fault_thr_on = false;
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
        s->stop_pipe[0] = s->stop_pipe[1] = -1;
        /* faults that were queued after the unprotect resolve themselves on retry,
         * but wake anyone still waiting */
        struct uffdio_range r = {.start = s->guest_addr, .len = s->nr_pages * MIG_SIM_PAGE};
        ioctl(s->uffd, UFFDIO_WAKE, &r);
    }
    s->tracking_on = false;
    MIG_LOG(s->base.ctx, DEBUG, "sim: log-dirty off");
    return rc;
}

static void set_bits(unsigned long *bitmap, uint64_t pfn, uint64_t end)
{
    for (; pfn < end && pfn % BITS_PER_UL; pfn++)
        bitmap[pfn / BITS_PER_UL] |= 1UL << (pfn % BITS_PER_UL);
    for (; pfn + BITS_PER_UL <= end; pfn += BITS_PER_UL)
        bitmap[pfn / BITS_PER_UL] = ~0UL;
    for (; pfn < end; pfn++)
        bitmap[pfn / BITS_PER_UL] |= 1UL << (pfn % BITS_PER_UL);
}

static int clean_async(struct sim_hv *s, unsigned long *bitmap, uint64_t *ndirty_out)
{
    uint64_t start = s->guest_addr, end = s->guest_addr + s->nr_pages * MIG_SIM_PAGE;
    uint64_t n = 0;
    while (start < end) {
        struct pm_scan_arg arg = {
            .size = sizeof(arg),
            .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
            .start = start,
            .end = end,
            .vec = (uintptr_t)s->vec,
            .vec_len = SCAN_VEC,
            .category_mask = PAGE_IS_WRITTEN,
            .return_mask = PAGE_IS_WRITTEN,
        };
        long r = ioctl(s->pagemap, PAGEMAP_SCAN, &arg);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            MIG_LOG_RL(s->base.ctx, &s->rl, ERROR, "sim: PAGEMAP_SCAN failed: %s", strerror(e));
            return mig__from_errno(e);
        }
        for (long i = 0; i < r; i++) {
            uint64_t a = (s->vec[i].start - s->guest_addr) / MIG_SIM_PAGE;
            uint64_t b = (s->vec[i].end - s->guest_addr) / MIG_SIM_PAGE;
            if (b > s->nr_pages)
                b = s->nr_pages;
            set_bits(bitmap, a, b);
            n += b - a;
        }
        if (arg.walk_end <= start && r == 0)
            return -MIG_EBACKEND; /* no progress */
        start = arg.walk_end;
    }
    *ndirty_out = n;
    return 0;
}

static int clean_sync(struct sim_hv *s, unsigned long *bitmap, uint64_t *ndirty_out)
{
    size_t words = (s->nr_pages + BITS_PER_UL - 1) / BITS_PER_UL;
    uint64_t n = 0;
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    rc = s->fault_err;
    for (size_t w = 0; w < words && !rc; w++) {
        unsigned long bits = s->dirty[w];
        if (!bits)
            continue;
        /* re-protect runs of recorded pages, then hand the bits over; the
         * fault thread waits on the lock, so a write after the re-protect
         * faults again and is recorded for the next round */
        uint64_t base = (uint64_t)w * BITS_PER_UL;
        unsigned b = 0;
        while (b < BITS_PER_UL && !rc) {
            if (!(bits & (1UL << b))) {
                b++;
                continue;
            }
            unsigned e = b;
            while (e < BITS_PER_UL && (bits & (1UL << e)))
                e++;
            rc = wp_range(s, base + b, e - b, true);
            b = e;
        }
        if (rc)
            break;
        bitmap[w] |= bits;
        n += (uint64_t)__builtin_popcountl(bits);
        s->dirty[w] = 0;
    }
    pthread_mutex_unlock(&s->lock);
    if (!rc)
        *ndirty_out = n;
    return rc;
}

static int sim_logdirty_clean(struct mig__hv *hv, unsigned long *bitmap, uint64_t *ndirty_out)
{
    struct sim_hv *s = to_sim(hv);
    if (!s->tracking_on)
        return -MIG_ESTATE;
    int rc = wp_join(s, false);
    if (!rc && atomic_load(&s->wp_upto) < s->nr_pages)
        rc = s->wp_err ? s->wp_err : -MIG_EBACKEND; /* failed earlier: never half-watched */
    if (rc)
        return rc;
    holes_forget(s);
    if (s->fault_thr_on)
        return clean_sync(s, bitmap, ndirty_out);
    return clean_async(s, bitmap, ndirty_out);
}

/* Never-written pages are holes in the memfd: they read as this page instead
 * of through the mapping, where a read fault would allocate shmem (a 2 GiB
 * guest with touch=10% would cost 2 GiB on the source). A write after the
 * check is tracked and sent again, as with any page read while it changes. */
static const uint8_t zero_page[MIG_SIM_PAGE];

static int sim_map_pages(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void **ptrs,
                         struct mig__hv_map **map_out)
{
    /* the whole memfd stays mapped: nothing per batch, safe from any thread
     * (lseek's file position is not used) */
    struct sim_hv *s = to_sim(hv);
    uint64_t data_lo, data_hi, hole_lo, hole_hi, top = 0;
    if (!s->mem || n > 1024)
        return -MIG_EINVAL;
    /* read only what log-dirty already watches (once all is, no per-page walk) */
    if (s->tracking_on && atomic_load_explicit(&s->wp_upto, memory_order_acquire) < s->nr_pages) {
        for (unsigned i = 0; i < n; i++)
            top = pfns[i] > top ? pfns[i] : top;
        int rc = wp_wait(s, top + 1);
        if (rc)
            return rc;
    }
    pthread_mutex_lock(&s->hole_lock);
    data_lo = s->data_lo;
    data_hi = s->data_hi;
    hole_lo = s->hole_lo;
    hole_hi = s->hole_hi;
    pthread_mutex_unlock(&s->hole_lock);
    for (unsigned i = 0; i < n; i++) {
        uint64_t pfn = pfns[i];
        if (pfn >= s->nr_pages)
            return -MIG_EINVAL;
        if (s->pooled) {
            ptrs[i] = s->mem + pfn * MIG_SIM_PAGE; /* no holes in the host's memory */
            continue;
        }
        if (!(pfn >= data_lo && pfn < data_hi) && !(pfn >= hole_lo && pfn < hole_hi)) {
            off_t off = (off_t)(pfn * MIG_SIM_PAGE);
            off_t d = lseek(s->memfd, off, SEEK_DATA);
            if (d < 0 && errno == ENXIO) {
                hole_lo = pfn;
                hole_hi = s->nr_pages;
            } else if (d < 0) {
                data_lo = pfn; /* cannot tell: read it */
                data_hi = pfn + 1;
            } else if ((uint64_t)d / MIG_SIM_PAGE > pfn) {
                hole_lo = pfn;
                hole_hi = (uint64_t)d / MIG_SIM_PAGE;
            } else {
                off_t e = lseek(s->memfd, off, SEEK_HOLE);
                data_lo = pfn;
                data_hi = e < 0 ? pfn + 1 : ((uint64_t)e + MIG_SIM_PAGE - 1) / MIG_SIM_PAGE;
            }
        }
        if (pfn >= hole_lo && pfn < hole_hi)
            ptrs[i] = zero_page;
        else
            ptrs[i] = s->mem + pfn * MIG_SIM_PAGE;
    }
    pthread_mutex_lock(&s->hole_lock);
    if (data_hi > s->data_hi) {
        s->data_lo = data_lo;
        s->data_hi = data_hi;
    }
    if (hole_hi > s->hole_hi) {
        s->hole_lo = hole_lo;
        s->hole_hi = hole_hi;
    }
    pthread_mutex_unlock(&s->hole_lock);
    *map_out = NULL; /* nothing to release; unmap_pages(NULL) is a no-op */
    return 0;
}

static void sim_unmap_pages(struct mig__hv *hv, struct mig__hv_map *map)
{
    (void)hv;
    (void)map;
}

/* ---- source: guest control ----------------------------------------------------------------------
 */

static int sim_throttle(struct mig__hv *hv, unsigned percent)
{
    struct sim_hv *s = to_sim(hv);
    char req[32];
    unsigned p = percent ? percent : s->orig_throttle;
    if (percent > 100)
        return -MIG_EINVAL;
    snprintf(req, sizeof(req), "throttle %u", p);
    int rc = guest_cmd(s, req, NULL, 0);
    if (!rc)
        s->cur_throttle = p;
    return rc;
}

static int sim_suspend(struct mig__hv *hv)
{
    struct sim_hv *s = to_sim(hv);
    int rc = guest_cmd(s, "suspend", NULL, 0);
    if (!rc)
        s->suspended = true;
    return rc;
}

static int sim_resume(struct mig__hv *hv)
{
    struct sim_hv *s = to_sim(hv);
    int rc = guest_cmd(s, "resume", NULL, 0);
    if (!rc) {
        s->suspended = false;
        s->handed_over = false;
    }
    return rc;
}

static int sim_save_state(struct mig__hv *hv, struct mig__blob *blob_out)
{
    struct sim_hv *s = to_sim(hv);
    char resp[2048];
    char rng[1024] = "";
    uint64_t vcpus = s->vcpus;
    int rc = guest_cmd(s, "get-state", resp, sizeof(resp));
    if (rc)
        return rc;
    mig__sim_kv_u64(resp, "vcpus", &vcpus);
    mig__sim_kv(resp, "rng", rng, sizeof(rng));
    /* a guest with a managed disk: its acknowledged disk writes */
    uint64_t dseq = 0;
    bool has_disk = mig__sim_kv_u64(resp, "dseq", &dseq);
    /* the throttle that travels is the admin's, not the one pre-copy imposed */
    int n = snprintf(resp, sizeof(resp), "vcpus=%" PRIu64 " throttle=%u rng=%s", vcpus,
                     s->orig_throttle, rng);
    if (has_disk && n > 0 && (size_t)n < sizeof(resp))
        snprintf(resp + n, sizeof(resp) - (size_t)n, " dseq=%" PRIu64, dseq);
    blob_out->kind = STATE_BLOB_KIND;
    blob_out->len = strlen(resp) + 1;
    blob_out->data = strdup(resp);
    return blob_out->data ? 0 : -MIG_ENOMEM;
}

static int sim_rename(struct mig__hv *hv, const char *new_name)
{
    struct sim_hv *s = to_sim(hv);
    char req[256];
    snprintf(req, sizeof(req), "rename %s %s", s->name, new_name);
    int rc = mig__sim_host_call(s->dir, req, NULL, 0, NULL, NULL);
    if (!rc) {
        snprintf(s->name, sizeof(s->name), "%s", new_name);
        /* renamed while suspended: handed over at COMMIT (xl renames to
         * NAME--migratedaway); close must not resume it (in-doubt rule) */
        s->handed_over = s->suspended && strcmp(new_name, s->orig_name) != 0;
    }
    return rc;
}

static int sim_destroy(struct mig__hv *hv)
{
    struct sim_hv *s = to_sim(hv);
    char req[128];
    snprintf(req, sizeof(req), "destroy %s", s->name);
    wp_join(s, true);
    if (s->fault_thr_on)
        sim_logdirty_disable(hv);
    int rc = mig__sim_host_call(s->dir, req, NULL, 0, NULL, NULL);
    if (!rc) {
        s->destroyed = true;
        s->tracking_on = false;
        mig__sim_net_unplug(s->base.ctx, s->config); /* xl: the vif's hotplug "offline" */
    }
    return rc;
}

/* ---- destination
 * ------------------------------------------------------------------------------------- */

static int sim_create_incoming(struct mig__hv *hv, const struct mig__dom_info *info)
{
    struct sim_hv *s = to_sim(hv);
    struct mig__sim_config cfg;
    char req[1024], resp[512];
    int fds[2] = {-1, -1};
    unsigned nfds = 2;
    int rc;
    if (s->base.role != MIG_ROLE_DESTINATION || s->incoming)
        return -MIG_ESTATE;
    if (info->page_size != MIG_SIM_PAGE)
        return -MIG_EINCOMPAT;
    rc = mig__sim_config_parse(info->config, &cfg);
    if (rc)
        return rc;
    if (cfg.mem_bytes / MIG_SIM_PAGE != info->nr_pages)
        return -MIG_EINVAL;
    /* The size comes from the peer: refuse what this host cannot hold
     * before a byte of it is allocated (Xen: libxl_domain_need_memory). */
    uint64_t avail = mem_available_bytes();
    if (avail && cfg.mem_bytes > avail) {
        MIG_LOG(s->base.ctx, ERROR, "sim: %s needs %" PRIu64 " MiB, this host has %" PRIu64
                " MiB available", info->name, cfg.mem_bytes >> 20, avail >> 20);
        return -MIG_ENOSPC;
    }
    snprintf(req, sizeof(req), "create-incoming %s %s", info->name, info->config);
    rc = mig__sim_host_call(s->dir, req, resp, sizeof(resp), fds, &nfds);
    if (rc)
        return rc;
    if (nfds < 2) {
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        return -MIG_EPROTO;
    }
    s->memfd = fds[0];
    s->guest = fds[1];
    s->incoming = true;
    s->nr_pages = info->nr_pages;
    mig__sim_kv(resp, "name", s->name, sizeof(s->name));
    s->pooled = mig__sim_kv_u64(resp, "memoff", &s->memoff);
    uint64_t huge = 0;
    s->huge = s->pooled && mig__sim_kv_u64(resp, "huge", &huge) && huge;
    snprintf(s->config, sizeof(s->config), "%s", info->config);
    s->mem = mmap(NULL, s->nr_pages * MIG_SIM_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd,
                  (off_t)s->memoff);
    if (s->mem == MAP_FAILED) {
        s->mem = NULL;
        rc = mig__from_errno(errno);
        sim_discard(hv);
        return rc;
    }
    /* Like Xen, which allocates an incoming domain's memory when it builds
     * it, reserve it up front (best effort). fallocate allocates without
     * clearing; the pages are filled by write(2) below, which does not clear
     * either, so no page is zeroed only to be overwritten (first-touch
     * zeroing through the mapping was the largest cost of the copy). A host
     * with memory of its own gave us populated, cleared pages. */
    if (!s->pooled)
        (void)fallocate(s->memfd, 0, 0, (off_t)(s->nr_pages * MIG_SIM_PAGE));
    return rc;
}

/* In the host's memory an incoming guest that is gone (destroyed behind
 * our back) has given its extent back, and the next guest may have it by
 * now: write nothing more once its connection hangs up. */
static int incoming_alive(struct sim_hv *s)
{
    struct pollfd p = {.fd = s->guest, .events = 0};
    if (!s->pooled)
        return 0;
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
        return -MIG_EPEER;
    return 0;
}

static int sim_write_pages(struct mig__hv *hv, const uint64_t *pfns, unsigned n, const void *data)
{
    struct sim_hv *s = to_sim(hv);
    if (!s->mem || s->committed)
        return -MIG_ESTATE;
    int rc = incoming_alive(s);
    if (rc)
        return rc;
    for (unsigned i = 0; i < n; i++)
        if (pfns[i] >= s->nr_pages)
            return -MIG_EINVAL;
    /* pwrite into the memfd, one call per run of consecutive pages: a
     * full-page write into shared memory skips the zeroing a store through
     * the mapping would pay on the page's first touch. */
    for (unsigned i = 0; i < n;) {
        unsigned j = i + 1;
        while (j < n && pfns[j] == pfns[j - 1] + 1)
            j++;
        const uint8_t *p = (const uint8_t *)data + (size_t)i * MIG_SIM_PAGE;
        size_t len = (size_t)(j - i) * MIG_SIM_PAGE;
        off_t off = (off_t)(s->memoff + pfns[i] * MIG_SIM_PAGE);
        while (len) {
            ssize_t w = pwrite(s->memfd, p, len, off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return w < 0 ? mig__from_errno(errno) : -MIG_EIO;
            p += w;
            off += w;
            len -= (size_t)w;
        }
        i = j;
    }
    return 0;
}

/* Clear pages with write(2) from one zero page: stores through our mapping
 * would fault every page into it first. */
static int pwrite_zero(struct sim_hv *s, uint64_t pfn, uint64_t count)
{
    struct iovec iov[256];
    off_t off = (off_t)(s->memoff + pfn * MIG_SIM_PAGE);
    uint64_t left = count * MIG_SIM_PAGE;
    while (left) {
        /* every piece is zeros: after a short write, go on from anywhere */
        int n = 0;
        for (uint64_t want = left; want && n < 256; n++) {
            size_t len = want < MIG_SIM_PAGE ? (size_t)want : MIG_SIM_PAGE;
            iov[n] = (struct iovec){.iov_base = (void *)zero_page, .iov_len = len};
            want -= len;
        }
        ssize_t w = pwritev(s->memfd, iov, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? mig__from_errno(errno) : -MIG_EIO;
        off += w;
        left -= (uint64_t)w;
    }
    return 0;
}

/* Incoming pages straight into the guest's memory: only in a host's memory
 * of 2 MiB pages, where our mapping costs a fault per 2 MiB (elsewhere a
 * store through the mapping faults in every 4 KiB page, and pwrite is
 * cheaper). */
static int sim_place_pages(struct mig__hv *hv, const uint64_t *pfns, unsigned n, void **ptrs)
{
    struct sim_hv *s = to_sim(hv);
    if (!s->huge)
        return -MIG_ENOTSUP;
    if (!s->mem || s->committed)
        return -MIG_ESTATE;
    int rc = incoming_alive(s);
    if (rc)
        return rc;
    for (unsigned i = 0; i < n; i++) {
        if (pfns[i] >= s->nr_pages)
            return -MIG_EINVAL;
        ptrs[i] = s->mem + pfns[i] * MIG_SIM_PAGE;
    }
    return 0;
}

static int sim_write_zero(struct mig__hv *hv, uint64_t pfn, uint64_t count)
{
    struct sim_hv *s = to_sim(hv);
    if (!s->mem || s->committed)
        return -MIG_ESTATE;
    if (pfn > s->nr_pages || count > s->nr_pages - pfn)
        return -MIG_EINVAL;
    if (!count)
        return 0;
    if (s->pooled) { /* the host's memory stays populated: a hole would give pages back */
        int rc = incoming_alive(s);
        return rc ? rc : pwrite_zero(s, pfn, count);
    }
    if (fallocate(s->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(pfn * MIG_SIM_PAGE),
                  (off_t)(count * MIG_SIM_PAGE)) < 0) {
        /* no hole punching here: zero by hand */
        memset(s->mem + pfn * MIG_SIM_PAGE, 0, count * MIG_SIM_PAGE);
    }
    return 0;
}

static int sim_load_state(struct mig__hv *hv, const struct mig__blob *blob)
{
    struct sim_hv *s = to_sim(hv);
    char req[2100];
    if (blob->kind != STATE_BLOB_KIND || blob->len == 0 || blob->len > 2000 ||
        ((const char *)blob->data)[blob->len - 1] != '\0')
        return -MIG_EPROTO;
    snprintf(req, sizeof(req), "set-state %s", (const char *)blob->data);
    return guest_cmd(s, req, NULL, 0);
}

static int sim_ready(struct mig__hv *hv)
{
    struct sim_hv *s = to_sim(hv);
    return s->incoming && !s->committed ? 0 : -MIG_ESTATE;
}

static int sim_commit(struct mig__hv *hv)
{
    struct sim_hv *s = to_sim(hv);
    char req[128];
    if (!s->incoming || s->committed)
        return -MIG_ESTATE;
    snprintf(req, sizeof(req), "commit %s", s->name);
    int rc = mig__sim_host_call(s->dir, req, NULL, 0, NULL, NULL);
    if (!rc) {
        s->committed = true;
        /* The guest runs here now: its NICs follow (a failure leaves it
         * running without network, logged; the commit stands). */
        char final[80];
        snprintf(final, sizeof(final), "%s", s->name);
        char *suffix = strstr(final, MIG_SIM_INCOMING_SUFFIX);
        if (suffix)
            *suffix = 0;
        if (mig__sim_net_plug(s->base.ctx, s->config, final) < 0)
            MIG_LOG(s->base.ctx, ERROR, "sim: %s runs without its network", final);
    }
    return rc;
}

static int sim_discard(struct mig__hv *hv)
{
    struct sim_hv *s = to_sim(hv);
    char req[128];
    if (!s->incoming || s->committed)
        return -MIG_ESTATE;
    snprintf(req, sizeof(req), "discard %s", s->name);
    int rc = mig__sim_host_call(s->dir, req, NULL, 0, NULL, NULL);
    if (!rc || rc == -MIG_ENOENT)
        s->incoming = false;
    return rc;
}

static int sim_probe(struct mig__hv *hv, const char *name, enum mig__probe *state_out)
{
    struct sim_hv *s = to_sim(hv);
    struct mig_sim_guest_status st;
    char incoming[160];
    *state_out = MIG_PROBE_ABSENT;
    if (mig_simhost_status(s->base.ctx, s->dir, name, &st) == 0 &&
        strcmp(st.name, name) == 0) {
        *state_out = MIG_PROBE_RUNNING;
        return 0;
    }
    snprintf(incoming, sizeof(incoming), "%s%s", name, MIG_SIM_INCOMING_SUFFIX);
    if (mig_simhost_status(s->base.ctx, s->dir, incoming, &st) == 0) {
        char req[200];
        snprintf(req, sizeof(req), "discard %s", incoming);
        int rc = mig__sim_host_call(s->dir, req, NULL, 0, NULL, NULL);
        if (rc && rc != -MIG_ENOENT)
            return rc;
        *state_out = MIG_PROBE_DISCARDED;
    }
    return 0;
}

const struct mig__hv_ops mig__hv_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .facts = sim_facts,
    .info = sim_info,
    .tracking = sim_tracking,
    .state_cost_ms = sim_state_cost_ms,
    .logdirty_enable = sim_logdirty_enable,
    .logdirty_clean = sim_logdirty_clean,
    .logdirty_disable = sim_logdirty_disable,
    .map_pages = sim_map_pages,
    .unmap_pages = sim_unmap_pages,
    .throttle = sim_throttle,
    .suspend = sim_suspend,
    .resume = sim_resume,
    .save_state = sim_save_state,
    .rename = sim_rename,
    .destroy = sim_destroy,
    .create_incoming = sim_create_incoming,
    .write_pages = sim_write_pages,
    .place_pages = sim_place_pages,
    .write_zero = sim_write_zero,
    .load_state = sim_load_state,
    .ready = sim_ready,
    .commit = sim_commit,
    .discard = sim_discard,
    .probe = sim_probe,
};
