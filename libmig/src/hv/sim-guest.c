/*
 * sim-guest.c: the test-guest process (mig_sim_guest_main). The host spawns
 * it with the guest's memfd on fd 4 and its channel to the host on fd 3.
 *
 * The guest maps the memfd MAP_SHARED and registers the mapping with a
 * userfaultfd in write-protect mode (async: the kernel keeps the written
 * bits, PAGEMAP_SCAN reads and clears them; sync: whoever holds the uffd,
 * i.e. the backend, gets each write fault). That is the "hardware" being
 * configured; the workload itself never reports a write.
 *
 * Threads: vCPUs (write pages at the configured rate and pattern, park at a
 * safe point between page writes on suspend, sleep on throttle), a ticker
 * (stores the clock in guest memory every tick_us and tracks gaps), the
 * control loop (main thread: host channel plus client connections handed
 * over by the host), and on commit of an incoming guest a verifier.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MIG_LOG_MODULE "sim-guest"
#include "sim.h"
#include "uffd-compat.h"

#define MAX_CONNS          16
#define THROTTLE_PERIOD_NS 10000000ull /* 10 ms */

enum gstate { G_INCOMING, G_VERIFYING, G_RUNNING };

struct guest;

struct vcpu {
    struct guest *g;
    unsigned id;
    pthread_t thr;
    uint64_t rng;
    uint64_t cursor; /* sequential pattern position */
};

struct guest {
    char name[80];
    struct mig__sim_config cfg;
    char cfg_text[512];
    int memfd;
    bool pooled;      /* memfd is the host's memory (simhost --mem) ... */
    uint64_t mem_off; /* ... and the guest's is [mem_off, +mem_bytes) of it */
    int chan;
    int uffd;
    const char *tracking;
    uint8_t *mem;
    uint64_t nr_pages;
    struct mig__sim_meta *meta;
    struct mig__sim_clock *clock;
    uint32_t *gen;
    uint64_t data_pfn;
    uint64_t ntouch; /* workload pages ever written: [data_pfn, data_pfn + ntouch) */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int pause_req; /* 1: threads park at their next safe point */
    int parked;           /* threads parked (under lock) */
    int nthreads;         /* started threads that park (vcpus + ticker) */
    atomic_int quit;
    atomic_uint throttle; /* percent */
    enum gstate state;
    bool suspended;

    struct vcpu *vcpus;
    pthread_t ticker;
    bool ticker_started;
    bool threads_started; /* vCPUs */
    pthread_t verifier;
    bool verifier_started;

    atomic_uint_fast64_t writes;
    atomic_uint_fast64_t max_gap_ns;
    int64_t downtime_us; /* -1 until committed */
    atomic_int verify;   /* enum mig_sim_verify */
    uint64_t verify_pages, verify_errors;
    int64_t verify_first_bad;
    uint64_t boot_hash;
    uint64_t ctl_rng; /* touch command */

    int conns[MAX_CONNS];
    int tracker_conn; /* index in conns of the backend that owns tracking, -1 */

    /* The managed disk (config disk=SIZE; sim-disk.c), written by one more
     * thread that parks like a vCPU. dseq: writes acknowledged so far (in
     * the state blob, so the destination knows what its disk must hold). */
    char disk_dir[256];               /* --disk-dir: the export is DIR/NAME/disk0.nbd */
    struct mig__sim_disk *disk;       /* owned, NULL without a disk */
    atomic_uint_fast64_t dseq;
    pthread_t disk_thr;
    bool disk_started;
    atomic_int disk_failed;           /* a write could not be acknowledged */
    uint64_t disk_checked, disk_errors;
    int64_t disk_first_bad;
};

static uint64_t now_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* ---- safe points ----------------------------------------------------------- */

/* Called by vCPUs and the ticker between writes: park while a pause is asked. */
static void safe_point(struct guest *g)
{
    if (!atomic_load_explicit(&g->pause_req, memory_order_acquire))
        return;
    pthread_mutex_lock(&g->lock);
    g->parked++;
    pthread_cond_broadcast(&g->cond);
    while (atomic_load(&g->pause_req) && !atomic_load(&g->quit))
        pthread_cond_wait(&g->cond, &g->lock);
    g->parked--;
    pthread_mutex_unlock(&g->lock);
}

static int do_suspend(struct guest *g)
{
    struct timespec dl;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&g->lock);
    atomic_store(&g->pause_req, 1);
    while (g->parked < g->nthreads && !rc)
        rc = pthread_cond_timedwait(&g->cond, &g->lock, &dl);
    if (rc)
        atomic_store(&g->pause_req, 0);
    else
        g->suspended = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    return rc ? -MIG_ETIMEOUT : 0;
}

static void do_resume(struct guest *g)
{
    pthread_mutex_lock(&g->lock);
    atomic_store(&g->pause_req, 0);
    g->suspended = false;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* ---- the workload ------------------------------------------------------------ */

static void write_page(struct guest *g, uint64_t pfn, uint64_t *rng)
{
    uint32_t gen = g->gen[pfn] + 1;
    if (gen == 0)
        gen = 1;
    mig__sim_page_fill(g->mem + pfn * MIG_SIM_PAGE, pfn, gen, g->cfg.fill_zero, rng);
    /* the table entry is written after the page: a suspended guest is consistent */
    __atomic_store_n(&g->gen[pfn], gen, __ATOMIC_RELEASE);
    atomic_fetch_add_explicit(&g->writes, 1, memory_order_relaxed);
}

/* The vCPU's next page: pages p with p % vcpus == id belong to it, so no two
 * vCPUs ever write the same page. */
static uint64_t pick(struct vcpu *v)
{
    struct guest *g = v->g;
    uint64_t n = g->ntouch / g->cfg.vcpus; /* pages of this vCPU */
    uint64_t k;
    if (n == 0)
        n = 1;
    switch (g->cfg.pattern) {
    case MIG_SIM_SEQUENTIAL:
        k = v->cursor++ % n;
        break;
    case MIG_SIM_HOTSET: {
        uint64_t hot = n * g->cfg.hot_pct / 100;
        if (hot == 0)
            hot = 1;
        if (rnd(&v->rng) % 100 < g->cfg.hot_share)
            k = rnd(&v->rng) % hot;
        else
            k = rnd(&v->rng) % n;
        break;
    }
    default:
        k = rnd(&v->rng) % n;
        break;
    }
    uint64_t pfn = g->data_pfn + k * g->cfg.vcpus + v->id;
    if (pfn >= g->nr_pages)
        pfn = g->data_pfn + v->id;
    return pfn;
}

static void *vcpu_main(void *arg)
{
    struct vcpu *v = arg;
    struct guest *g = v->g;
    uint64_t rate = g->cfg.dirty_bps; /* bytes/s, all vCPUs */
    bool flat_out = rate == MIG_SIM_DIRTY_MAX;
    double pages_per_ns = flat_out ? 0 : (double)rate / MIG_SIM_PAGE / g->cfg.vcpus / 1e9;
    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    uint64_t done = 0;

    while (!atomic_load_explicit(&g->quit, memory_order_relaxed)) {
        if (atomic_load_explicit(&g->pause_req, memory_order_acquire)) {
            safe_point(g);
            t0 = now_ns(CLOCK_MONOTONIC); /* no burst to catch up after a pause */
            done = 0;
            continue;
        }
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        unsigned thr = atomic_load_explicit(&g->throttle, memory_order_relaxed);
        if (thr) {
            /* sleep the first thr% of every period */
            uint64_t in = now % THROTTLE_PERIOD_NS;
            uint64_t off = THROTTLE_PERIOD_NS * thr / 100;
            if (in < off) {
                sleep_ns(off - in);
                continue;
            }
        }
        if (!flat_out) {
            if (rate == 0) {
                sleep_ns(2000000);
                continue;
            }
            uint64_t allowed = (uint64_t)((double)(now - t0) * pages_per_ns);
            if (done >= allowed) {
                uint64_t wait = (uint64_t)((double)(done + 1 - allowed) / pages_per_ns);
                sleep_ns(wait > 1000000 ? 1000000 : wait);
                continue;
            }
            /* credit does not pile up beyond ~1 ms (throttle and pauses cost writes) */
            uint64_t slack = (uint64_t)(1e6 * pages_per_ns) + 1;
            if (allowed - done > slack) {
                done = allowed - slack;
            }
        }
        write_page(g, pick(v), &v->rng);
        done++;
    }
    return NULL;
}

static void disk_socket(const struct guest *g, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s/" MIG_SIM_DISK_NAME ".nbd", g->disk_dir, g->name);
}

/* The disk's writer: 4 KiB writes at cfg.disk_bps, each acknowledged
 * before the next; parks between writes like a vCPU. */
static void *disk_main(void *arg)
{
    struct guest *g = arg;
    double per_ns = (double)g->cfg.disk_bps / 4096.0 / 1e9;
    uint64_t t0 = now_ns(CLOCK_MONOTONIC), done = 0;
    while (!atomic_load(&g->quit)) {
        if (atomic_load_explicit(&g->pause_req, memory_order_acquire)) {
            safe_point(g);
            t0 = now_ns(CLOCK_MONOTONIC);
            done = 0;
            continue;
        }
        uint64_t allowed = (uint64_t)((double)(now_ns(CLOCK_MONOTONIC) - t0) * per_ns);
        if (per_ns <= 0 || done >= allowed || atomic_load(&g->disk_failed)) {
            sleep_ns(1000000);
            continue;
        }
        uint64_t s = atomic_load(&g->dseq);
        if (mig__sim_disk_write(g->disk, s, &g->quit) < 0) {
            if (!atomic_load(&g->quit))
                atomic_store(&g->disk_failed, 1);
            continue;
        }
        atomic_store(&g->dseq, s + 1);
        done++;
    }
    return NULL;
}

/* Check the disk against the acknowledged writes (nothing writes it now). */
static void check_disk(struct guest *g)
{
    uint64_t checked = 0, errors = 0;
    int64_t first_bad = -1;
    char sock[512];
    if (!g->disk)
        return;
    disk_socket(g, sock, sizeof(sock));
    mig__sim_disk_set_socket(g->disk, sock);
    int rc = mig__sim_disk_check(g->disk, atomic_load(&g->dseq), &checked, &errors, &first_bad);
    pthread_mutex_lock(&g->lock);
    g->disk_checked = checked;
    g->disk_errors = rc < 0 && !errors ? 1 : errors; /* an unreadable disk fails too */
    g->disk_first_bad = first_bad;
    pthread_mutex_unlock(&g->lock);
}

static void tick(struct guest *g, uint64_t *last)
{
    uint64_t now = now_ns(CLOCK_MONOTONIC);
    if (*last && now - *last > atomic_load(&g->max_gap_ns))
        atomic_store(&g->max_gap_ns, now - *last);
    *last = now;
    struct mig__sim_clock c = {.mono_ns = now,
                               .real_ns = now_ns(CLOCK_REALTIME),
                               .boot_hash = g->boot_hash,
                               .seq = g->clock->seq + 1};
    memcpy(g->clock, &c, sizeof(c));
}

static void *ticker_main(void *arg)
{
    struct guest *g = arg;
    uint64_t last = g->clock->boot_hash == g->boot_hash ? g->clock->mono_ns : 0;
    while (!atomic_load(&g->quit)) {
        safe_point(g);
        tick(g, &last);
        sleep_ns((uint64_t)g->cfg.tick_us * 1000);
    }
    return NULL;
}

/* The ticker runs from start (or from commit on an incoming guest). */
static void start_ticker(struct guest *g)
{
    pthread_mutex_lock(&g->lock);
    if (!g->ticker_started && pthread_create(&g->ticker, NULL, ticker_main, g) == 0) {
        g->ticker_started = true;
        g->nthreads++;
    }
    pthread_mutex_unlock(&g->lock);
}

static int start_vcpus(struct guest *g)
{
    int rc = 0;
    pthread_mutex_lock(&g->lock);
    if (g->threads_started)
        goto out;
    if (!g->vcpus)
        g->vcpus = calloc(g->cfg.vcpus, sizeof(*g->vcpus));
    if (!g->vcpus) {
        rc = -MIG_ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < g->cfg.vcpus; i++) {
        struct vcpu *v = &g->vcpus[i];
        v->g = g;
        v->id = i;
        if (!v->rng)
            v->rng = g->cfg.seed * 0x9e3779b97f4a7c15ull + i + 1;
        if (pthread_create(&v->thr, NULL, vcpu_main, v) == 0)
            g->nthreads++;
        else
            v->g = NULL;
    }
    if (g->disk && !g->disk_started && pthread_create(&g->disk_thr, NULL, disk_main, g) == 0) {
        g->disk_started = true;
        g->nthreads++;
    }
    g->threads_started = true;
out:
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static void stop_threads(struct guest *g)
{
    pthread_mutex_lock(&g->lock);
    atomic_store(&g->quit, 1);
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    if (g->ticker_started)
        pthread_join(g->ticker, NULL);
    for (unsigned i = 0; g->threads_started && i < g->cfg.vcpus; i++)
        if (g->vcpus[i].g)
            pthread_join(g->vcpus[i].thr, NULL);
    if (g->disk_started)
        pthread_join(g->disk_thr, NULL);
}

/* ---- incoming: first tick, verification ------------------------------------ */

/* Check every page against the generation table; the guest must not be
 * writing (incoming before its vCPUs start, or suspended). */
static void check_memory(struct guest *g, uint64_t *checked_out, uint64_t *errors_out,
                         int64_t *first_bad_out);

static void *verifier_main(void *arg)
{
    struct guest *g = arg;
    uint64_t errors = 0, checked = 0;
    int64_t first_bad = -1;
    check_memory(g, &checked, &errors, &first_bad);
    check_disk(g);
    pthread_mutex_lock(&g->lock);
    g->verify_pages = checked;
    g->verify_errors = errors;
    g->verify_first_bad = first_bad;
    g->state = G_RUNNING;
    bool bad = errors || g->disk_errors;
    pthread_mutex_unlock(&g->lock);
    atomic_store(&g->verify, bad ? MIG_SIM_VERIFY_FAILED : MIG_SIM_VERIFY_OK);
    /* the vCPUs start only now: nothing writes while memory is checked */
    start_vcpus(g);
    return NULL;
}

static void check_memory(struct guest *g, uint64_t *checked_out, uint64_t *errors_out,
                         int64_t *first_bad_out)
{
    uint64_t errors = 0, checked = 0;
    int64_t first_bad = -1;
    if (g->meta->magic != MIG_SIM_MAGIC || g->meta->nr_pages != g->nr_pages ||
        g->meta->data_pfn != g->data_pfn) {
        errors = 1;
        first_bad = 0;
    } else {
        uint64_t hole_end = 0; /* [pfn, hole_end) is a hole in the memfd */
        uint64_t data_end = 0; /* [pfn, data_end) holds data */
        for (uint64_t pfn = g->data_pfn; pfn < g->nr_pages; pfn++) {
            checked++;
            if (g->pooled) {
                data_end = g->nr_pages; /* the host's memory has no holes */
            } else if (pfn >= hole_end && pfn >= data_end) {
                /* holes read as zero: check them without a read fault that
                 * would allocate them (write_zero punched them on purpose) */
                off_t d = lseek(g->memfd, (off_t)(pfn * MIG_SIM_PAGE), SEEK_DATA);
                if (d < 0 && errno == ENXIO) {
                    hole_end = g->nr_pages;
                } else if (d >= 0 && (uint64_t)d / MIG_SIM_PAGE > pfn) {
                    hole_end = (uint64_t)d / MIG_SIM_PAGE;
                } else {
                    off_t e = lseek(g->memfd, (off_t)(pfn * MIG_SIM_PAGE), SEEK_HOLE);
                    data_end = e > 0 ? ((uint64_t)e + MIG_SIM_PAGE - 1) / MIG_SIM_PAGE : pfn + 1;
                }
            }
            bool bad;
            if (pfn < hole_end)
                bad = g->gen[pfn] != 0;
            else
                bad = mig__sim_page_check(g->mem + pfn * MIG_SIM_PAGE, pfn, g->gen[pfn]) != 0;
            if (bad) {
                if (first_bad < 0)
                    first_bad = (int64_t)pfn;
                errors++;
            }
        }
    }
    *checked_out = checked;
    *errors_out = errors;
    *first_bad_out = first_bad;
}

/* On demand (tests, the fault campaign): stop at a safe point, check all of
 * memory, go on. A guest suspended by a migration stays suspended. */
static int do_verify(struct guest *g)
{
    uint64_t checked = 0, errors = 0;
    int64_t first_bad = -1;
    bool stop = g->state == G_RUNNING && !atomic_load(&g->pause_req);
    if (g->state != G_RUNNING)
        return -MIG_ESTATE;
    if (stop) {
        int rc = do_suspend(g);
        if (rc)
            return rc;
    }
    check_memory(g, &checked, &errors, &first_bad);
    check_disk(g);
    if (stop)
        do_resume(g);
    pthread_mutex_lock(&g->lock);
    g->verify_pages = checked;
    g->verify_errors = errors;
    g->verify_first_bad = first_bad;
    bool bad = errors || g->disk_errors;
    pthread_mutex_unlock(&g->lock);
    atomic_store(&g->verify, bad ? MIG_SIM_VERIFY_FAILED : MIG_SIM_VERIFY_OK);
    return 0;
}

static int do_commit(struct guest *g)
{
    if (g->state != G_INCOMING)
        return -MIG_ESTATE;
    /* the first tick: the gap since the migrated last tick is the downtime */
    struct mig__sim_clock c;
    memcpy(&c, g->clock, sizeof(c));
    uint64_t gap;
    if (c.boot_hash == g->boot_hash)
        gap = now_ns(CLOCK_MONOTONIC) - c.mono_ns;
    else
        gap = now_ns(CLOCK_REALTIME) - c.real_ns;
    uint64_t last = 0;
    tick(g, &last);
    g->downtime_us = (int64_t)(gap / 1000);
    atomic_store(&g->max_gap_ns, gap);
    g->state = G_VERIFYING;
    atomic_store(&g->verify, MIG_SIM_VERIFY_RUNNING);
    start_ticker(g);
    if (pthread_create(&g->verifier, NULL, verifier_main, g))
        return -MIG_ENOMEM;
    g->verifier_started = true;
    return 0;
}

/* ---- tracking setup ------------------------------------------------------------ */

static int setup_tracking(struct guest *g)
{
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    struct uffdio_register reg = {0};
    const char *env = getenv("MIG_SIM_TRACKING");
    enum mig__sim_tracking want = g->cfg.tracking;
    int fd;

    if (want == MIG_SIM_TRACK_AUTO && env && !strcmp(env, "sync"))
        want = MIG_SIM_TRACK_SYNC;
    if (want == MIG_SIM_TRACK_AUTO && env && !strcmp(env, "async"))
        want = MIG_SIM_TRACK_ASYNC;
    g->tracking = "none";
    /* probe: UFFDIO_API with no features reports what the kernel has */
    fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        return 0;
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        close(fd);
        return 0;
    }
    close(fd);
    uint64_t have = api.features;
    bool async_ok = (have & UFFD_FEATURE_WP_ASYNC) && (have & UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    bool sync_ok = (have & UFFD_FEATURE_WP_HUGETLBFS_SHMEM) != 0;
    if (want == MIG_SIM_TRACK_AUTO)
        want = async_ok ? MIG_SIM_TRACK_ASYNC : MIG_SIM_TRACK_SYNC;
    if ((want == MIG_SIM_TRACK_ASYNC && !async_ok) || (want == MIG_SIM_TRACK_SYNC && !sync_ok))
        return 0;

    fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        return 0;
    api.api = UFFD_API;
    api.features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
    if (want == MIG_SIM_TRACK_ASYNC)
        api.features |= UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
    if (ioctl(fd, UFFDIO_API, &api) < 0)
        goto fail;
    reg.range.start = (uintptr_t)g->mem;
    reg.range.len = g->nr_pages * MIG_SIM_PAGE;
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
        goto fail;
    g->uffd = fd;
    g->tracking = want == MIG_SIM_TRACK_ASYNC ? "uffd-wp-async+pagemap-scan" : "uffd-wp-sync";
    return 0;
fail:
    close(fd);
    return 0;
}

/* Lift write protection from all of memory: the backend that owned tracking
 * went away, and in sync mode nobody would resolve the faults otherwise. */
static void unprotect_all(struct guest *g)
{
    struct uffdio_writeprotect wp = {
        .range = {.start = (uintptr_t)g->mem, .len = g->nr_pages * MIG_SIM_PAGE}, .mode = 0};
    if (g->uffd >= 0)
        ioctl(g->uffd, UFFDIO_WRITEPROTECT, &wp);
}

/* ---- control ------------------------------------------------------------------- */

static const char *state_name(const struct guest *g)
{
    if (g->state == G_INCOMING)
        return "incoming";
    if (g->state == G_VERIFYING)
        return "verifying";
    return g->suspended ? "suspended" : "running";
}

static void status_line(struct guest *g, char *out, size_t cap)
{
    static const char *const vnames[] = {"none", "running", "ok", "failed"};
    char memoff[40] = ""; /* where the guest is in its host's memory, if there */
    if (g->pooled)
        snprintf(memoff, sizeof(memoff), " memoff=%" PRIu64, g->mem_off);
    pthread_mutex_lock(&g->lock);
    snprintf(out, cap,
             "ok name=%s pid=%d state=%s tracking=%s mem=%" PRIu64 " writes=%" PRIu64
             " throttle=%u verify=%s checked=%" PRIu64 " errors=%" PRIu64 " first_bad=%" PRId64
             " downtime_us=%" PRId64 " max_gap_us=%" PRIu64 " addr=0x%" PRIxPTR " nr_pages=%" PRIu64
             " vcpus=%u tracked=%d disk=%" PRIu64 " disk_writes=%" PRIu64 " disk_checked=%" PRIu64
             " disk_errors=%" PRIu64 " disk_first_bad=%" PRId64 " disk_failed=%d%s config=%s",
             g->name, (int)getpid(), state_name(g), g->tracking, g->cfg.mem_bytes,
             (uint64_t)atomic_load(&g->writes), atomic_load(&g->throttle),
             vnames[atomic_load(&g->verify)], g->verify_pages, g->verify_errors,
             g->verify_first_bad, g->downtime_us, (uint64_t)atomic_load(&g->max_gap_ns) / 1000,
             (uintptr_t)g->mem, g->nr_pages, g->cfg.vcpus, g->tracker_conn >= 0, g->cfg.disk_bytes,
             (uint64_t)atomic_load(&g->dseq), g->disk_checked, g->disk_errors, g->disk_first_bad,
             atomic_load(&g->disk_failed), memoff, g->cfg_text);
    pthread_mutex_unlock(&g->lock);
}

/* get-state / set-state: the small blob that travels besides memory */
static void state_blob(struct guest *g, char *out, size_t cap)
{
    size_t off = (size_t)snprintf(out, cap, "ok vcpus=%u throttle=%u rng=", g->cfg.vcpus,
                                  atomic_load(&g->throttle));
    for (unsigned i = 0; i < g->cfg.vcpus && off < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, "%s%" PRIx64, i ? ":" : "",
                                g->vcpus ? g->vcpus[i].rng : 0);
    if (g->disk && off < cap)
        snprintf(out + off, cap - off, " dseq=%" PRIu64, (uint64_t)atomic_load(&g->dseq));
}

static int set_state(struct guest *g, const char *args)
{
    char rng[1024];
    uint64_t v;
    if (g->state != G_INCOMING)
        return -MIG_ESTATE;
    if (mig__sim_kv_u64(args, "vcpus", &v) && v != g->cfg.vcpus)
        return -MIG_EINCOMPAT;
    if (mig__sim_kv_u64(args, "throttle", &v) && v <= 100)
        atomic_store(&g->throttle, (unsigned)v);
    if (mig__sim_kv_u64(args, "dseq", &v))
        atomic_store(&g->dseq, v);
    if (mig__sim_kv(args, "rng", rng, sizeof(rng))) {
        if (!g->vcpus) {
            g->vcpus = calloc(g->cfg.vcpus, sizeof(*g->vcpus));
            if (!g->vcpus)
                return -MIG_ENOMEM;
        }
        char *p = rng;
        for (unsigned i = 0; i < g->cfg.vcpus && *p; i++) {
            g->vcpus[i].rng = strtoull(p, &p, 16);
            if (*p == ':')
                p++;
        }
    }
    return 0;
}

static int touch(struct guest *g, const char *args)
{
    const char *p = args;
    while (*p) {
        char *end;
        uint64_t pfn = strtoull(p, &end, 0);
        if (end == p)
            break;
        if (pfn < g->data_pfn || pfn >= g->nr_pages)
            return -MIG_EINVAL;
        write_page(g, pfn, &g->ctl_rng);
        p = end;
        while (*p == ' ')
            p++;
    }
    return 0;
}

/* One request from the host or a client. Returns true to quit. */
static bool handle(struct guest *g, int sock, int idx, char *buf, int *fds, unsigned nfds)
{
    char *out = malloc(MIG_SIM_MSG_MAX);
    char verb[32] = "";
    const char *args;
    int rc = 0;
    bool quit = false;
    if (!out)
        return false;
    sscanf(buf, "%31s", verb);
    args = buf + strlen(verb);
    while (*args == ' ')
        args++;
    snprintf(out, MIG_SIM_MSG_MAX, "ok");

    if (!strcmp(verb, "status")) {
        status_line(g, out, MIG_SIM_MSG_MAX);
    } else if (!strcmp(verb, "conn")) {
        /* the host hands over one end of a new client connection */
        rc = -MIG_EBUSY;
        for (int i = 0; i < MAX_CONNS && nfds; i++) {
            if (g->conns[i] < 0) {
                g->conns[i] = fds[0];
                nfds = 0;
                rc = 0;
            }
        }
    } else if (!strcmp(verb, "commit")) {
        /* the host renames an incoming guest at commit: "commit NAME" (its
         * disk is served under the final name: rename before verifying) */
        if (g->state == G_INCOMING && args && *args) {
            pthread_mutex_lock(&g->lock);
            snprintf(g->name, sizeof(g->name), "%.*s", (int)sizeof(g->name) - 1, args);
            pthread_mutex_unlock(&g->lock);
        }
        rc = do_commit(g);
    } else if (!strcmp(verb, "verify")) {
        rc = do_verify(g);
    } else if (!strcmp(verb, "suspend")) {
        rc = g->state == G_RUNNING ? do_suspend(g) : -MIG_ESTATE;
    } else if (!strcmp(verb, "resume")) {
        do_resume(g);
    } else if (!strcmp(verb, "throttle")) {
        unsigned long p = strtoul(args, NULL, 10);
        if (p > 100)
            rc = -MIG_EINVAL;
        else
            atomic_store(&g->throttle, (unsigned)p);
    } else if (!strcmp(verb, "get-state")) {
        state_blob(g, out, MIG_SIM_MSG_MAX);
    } else if (!strcmp(verb, "set-state")) {
        rc = set_state(g, args);
    } else if (!strcmp(verb, "track-owner")) {
        /* one migration at a time, as Xen locks a domain */
        if (g->tracker_conn >= 0 && g->tracker_conn != idx)
            rc = -MIG_EBUSY;
        else
            g->tracker_conn = idx;
    } else if (!strcmp(verb, "touch")) {
        rc = touch(g, args);
    } else if (!strcmp(verb, "quit")) {
        quit = true;
    } else {
        rc = -MIG_EINVAL;
    }
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (rc)
        mig__sim_err(out, MIG_SIM_MSG_MAX, rc, NULL);
    mig__sim_send(sock, out, NULL, 0);
    free(out);
    return quit;
}

static void control_loop(struct guest *g)
{
    char *buf = malloc(MIG_SIM_MSG_MAX);
    if (!buf)
        return;
    for (;;) {
        struct pollfd p[MAX_CONNS + 1];
        int map[MAX_CONNS + 1];
        int n = 0;
        p[n] = (struct pollfd){.fd = g->chan, .events = POLLIN};
        map[n++] = -1;
        for (int i = 0; i < MAX_CONNS; i++) {
            if (g->conns[i] >= 0) {
                p[n] = (struct pollfd){.fd = g->conns[i], .events = POLLIN};
                map[n++] = i;
            }
        }
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int k = 0; k < n; k++) {
            if (!p[k].revents)
                continue;
            int fds[MIG_SIM_MAX_FDS];
            unsigned nfds = MIG_SIM_MAX_FDS;
            int rc = mig__sim_recv(p[k].fd, buf, MIG_SIM_MSG_MAX, fds, &nfds, 0);
            if (rc == -MIG_ETIMEOUT)
                continue;
            if (rc) {
                if (map[k] < 0)
                    goto out; /* the host is gone: so is the guest */
                if (g->tracker_conn == map[k]) {
                    /* the migrating tool went away: no write protection and
                     * no migration throttle may outlive it */
                    unprotect_all(g);
                    atomic_store(&g->throttle, g->cfg.throttle);
                    g->tracker_conn = -1;
                }
                close(g->conns[map[k]]);
                g->conns[map[k]] = -1;
                /* an incoming guest whose receiver is gone will never be
                 * committed: it discards itself (the host reaps it) */
                if (g->state == G_INCOMING)
                    goto out;
                continue;
            }
            if (handle(g, p[k].fd, map[k], buf, fds, nfds))
                goto out;
        }
    }
out:
    free(buf);
}

/* argv: SUBCMD --name NAME --config CONFIG [--incoming] [--disk-dir DIR] [--mem-offset OFF];
 * fd 3 channel, fd 4 memfd (with --mem-offset: the host's, ours from OFF) */
int mig_sim_guest_main(int argc, char **argv)
{
    struct guest *g = calloc(1, sizeof(*g));
    const char *name = NULL, *config = "";
    bool incoming = false;
    int status = 1;
    if (!g)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--name") && i + 1 < argc)
            name = argv[++i];
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            config = argv[++i];
        else if (!strcmp(argv[i], "--incoming"))
            incoming = true;
        else if (!strcmp(argv[i], "--disk-dir") && i + 1 < argc)
            snprintf(g->disk_dir, sizeof(g->disk_dir), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--mem-offset") && i + 1 < argc) {
            g->pooled = true; /* fd 4 is the host's memory; ours starts here */
            g->mem_off = strtoull(argv[++i], NULL, 10);
        }
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    g->chan = 3;
    g->memfd = 4;
    g->uffd = -1;
    g->tracker_conn = -1;
    g->downtime_us = -1;
    g->verify_first_bad = -1;
    g->disk_first_bad = -1;
    for (int i = 0; i < MAX_CONNS; i++)
        g->conns[i] = -1;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    if (!name || mig__sim_config_parse(config, &g->cfg)) {
        mig__sim_send(g->chan, "err INVAL bad guest arguments", NULL, 0);
        goto out;
    }
    snprintf(g->name, sizeof(g->name), "%s", name);
    snprintf(g->cfg_text, sizeof(g->cfg_text), "%s", config);
    g->boot_hash = mig__sim_boot_hash();
    if (g->cfg.disk_bytes) {
        char sock[512];
        disk_socket(g, sock, sizeof(sock));
        if (!g->disk_dir[0] || mig__sim_disk_new(sock, g->cfg.disk_bytes, g->cfg.seed, &g->disk)) {
            mig__sim_send(g->chan, "err INVAL the disk needs --disk-dir", NULL, 0);
            goto out;
        }
    }
    g->ctl_rng = g->cfg.seed ^ 0x5bd1e995u;
    g->nr_pages = g->cfg.mem_bytes / MIG_SIM_PAGE;
    g->mem = mmap(NULL, g->cfg.mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd,
                  (off_t)g->mem_off);
    if (g->mem == MAP_FAILED) {
        mig__sim_send(g->chan, "err NOMEM mmap failed", NULL, 0);
        goto out;
    }
    /* Small pages in our page tables even where the host's memory has huge
     * ones: dirty tracking works on page table entries, and Xen's log-dirty
     * tracks 4 KiB pages. */
    (void)madvise(g->mem, g->cfg.mem_bytes, MADV_NOHUGEPAGE);
    g->meta = (struct mig__sim_meta *)g->mem;
    g->clock = (struct mig__sim_clock *)(g->mem + MIG_SIM_PAGE);
    g->gen = (uint32_t *)(g->mem + 2 * MIG_SIM_PAGE);
    g->data_pfn = 2 + mig__sim_table_pages(g->nr_pages);
    g->ntouch = (g->nr_pages - g->data_pfn) * g->cfg.touch_pct / 100;
    atomic_store(&g->throttle, g->cfg.throttle);
    setup_tracking(g);
    if (!incoming) {
        struct mig__sim_meta m = {.magic = MIG_SIM_MAGIC,
                                  .nr_pages = g->nr_pages,
                                  .table_pfn = 2,
                                  .table_pages = mig__sim_table_pages(g->nr_pages),
                                  .data_pfn = g->data_pfn};
        memcpy(g->meta, &m, sizeof(m));
        /* A guest that has used all its memory once (benchmarks: "full of
         * random data"), before the workload and the clock start. */
        if (g->cfg.prefill)
            for (uint64_t pfn = g->data_pfn; pfn < g->data_pfn + g->ntouch; pfn++)
                write_page(g, pfn, &g->ctl_rng);
        g->state = G_RUNNING;
        start_ticker(g);
        start_vcpus(g);
    } else {
        g->state = G_INCOMING;
    }
    {
        char ready[256];
        int fds[1] = {g->uffd};
        snprintf(ready, sizeof(ready), "ok addr=0x%" PRIxPTR " tracking=%s", (uintptr_t)g->mem,
                 g->tracking);
        if (mig__sim_send(g->chan, ready, fds, g->uffd >= 0 ? 1 : 0))
            goto out;
    }
    control_loop(g);
    status = 0;
out:
    /* a parked guest must not keep its threads waiting for a resume */
    do_resume(g);
    unprotect_all(g);
    if (g->verifier_started)
        pthread_join(g->verifier, NULL);
    stop_threads(g);
    for (int i = 0; i < MAX_CONNS; i++)
        if (g->conns[i] >= 0)
            close(g->conns[i]);
    if (g->uffd >= 0)
        close(g->uffd);
    if (g->mem && g->mem != MAP_FAILED)
        munmap(g->mem, g->cfg.mem_bytes);
    free(g->vcpus);
    mig__sim_disk_free(g->disk);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    free(g);
    return status;
}
