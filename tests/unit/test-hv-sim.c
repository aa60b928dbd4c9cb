/*
 * Unit tests for the test-guest backend (sim.c), its host (sim-host.c) and
 * guest process (sim-guest.c). Real processes, no mocks: each test forks a
 * host that re-executes this binary as guests ("__sim-guest" dispatches to
 * mig_sim_guest_main). Dirty tracking runs in both kernel modes; a mode this
 * kernel cannot run fails the test instead of skipping it.
 */
#include <config.h>

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define MIG_LOG_MODULE "test"
#include "hv-provider.h"
#include "sim.h"

#define ASYNC "uffd-wp-async+pagemap-scan"
#define SYNC  "uffd-wp-sync"
#define BPL   (8 * sizeof(unsigned long))

struct host {
    char dir[64];
    pid_t pid;
};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

/* A host; mem: its own memory (simhost --mem), 0 for none. */
static void host_start_mem(struct host *h, const char *env_tracking, uint64_t mem)
{
    snprintf(h->dir, sizeof(h->dir), "/tmp/mig-sim-test-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    h->pid = fork();
    assert_true(h->pid >= 0);
    if (h->pid == 0) {
        struct mig_ctx *ctx;
        struct mig_simhost_config cfg = {.dir = h->dir,
                                         .guest_exe = "/proc/self/exe",
                                         .guest_subcmd = "__sim-guest",
                                         .extra_fd = -1,
                                         .memory_bytes = mem};
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (env_tracking)
            setenv("MIG_SIM_TRACKING", env_tracking, 1);
        if (mig_ctx_new(&ctx))
            _exit(1);
        mig_ctx_set_log_level(ctx, MIG_LOG_ERROR); /* tests kill guests on purpose */
        int rc = mig_simhost_run(ctx, &cfg);
        mig_ctx_free(ctx);
        _exit(rc ? 1 : 0);
    }
    for (int i = 0; i < 500; i++) {
        int sock;
        if (mig__sim_connect(h->dir, &sock) == 0) {
            close(sock);
            return;
        }
        sleep_ms(10);
    }
    fail_msg("host in %s did not come up", h->dir);
}

static void host_start(struct host *h, const char *env_tracking)
{
    host_start_mem(h, env_tracking, 0);
}

static void host_stop(struct host *h)
{
    int status = -1;
    char path[128];
    assert_int_equal(mig_simhost_shutdown(NULL, h->dir), 0);
    assert_int_equal(waitpid(h->pid, &status, 0), h->pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    snprintf(path, sizeof(path), "%s/facts.json", h->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/guests", h->dir);
    rmdir(path);
    rmdir(h->dir);
}

static struct mig__hv *open_source(struct mig_ctx *ctx, const struct host *h, const char *name)
{
    char arg[128];
    struct mig__hv *hv = NULL;
    snprintf(arg, sizeof(arg), "%s,host=%s", name, h->dir);
    assert_int_equal(mig__hv_sim_ops.open(ctx, arg, MIG_ROLE_SOURCE, &hv), 0);
    return hv;
}

static unsigned long *bitmap_new(uint64_t nr_pages)
{
    unsigned long *b = calloc((nr_pages + BPL - 1) / BPL, sizeof(unsigned long));
    assert_non_null(b);
    return b;
}

static bool test_bit(const unsigned long *b, uint64_t pfn)
{
    return (b[pfn / BPL] >> (pfn % BPL)) & 1;
}

static uint64_t clean(struct mig__hv *hv, unsigned long *b, uint64_t nr_pages)
{
    uint64_t n = 99999;
    memset(b, 0, (nr_pages + BPL - 1) / BPL * sizeof(unsigned long));
    assert_int_equal(hv->ops->logdirty_clean(hv, b, &n), 0);
    uint64_t count = 0;
    for (uint64_t p = 0; p < nr_pages; p++)
        count += test_bit(b, p);
    assert_int_equal(count, n);
    return n;
}

/* Copy the guest's generation table (through the backend's mapping). */
static uint32_t *gen_snapshot(struct mig__hv *hv, uint64_t nr_pages)
{
    uint64_t tp = mig__sim_table_pages(nr_pages);
    uint32_t *g = malloc(tp * MIG_SIM_PAGE);
    uint64_t pfns[1024];
    const void *ptrs[1024];
    struct mig__hv_map *map = NULL;
    assert_non_null(g);
    assert_true(tp <= 1024);
    for (uint64_t i = 0; i < tp; i++)
        pfns[i] = 2 + i;
    assert_int_equal(hv->ops->map_pages(hv, pfns, (unsigned)tp, ptrs, &map), 0);
    for (uint64_t i = 0; i < tp; i++)
        memcpy((uint8_t *)g + i * MIG_SIM_PAGE, ptrs[i], MIG_SIM_PAGE);
    hv->ops->unmap_pages(hv, map);
    return g;
}

static struct mig_ctx *quiet_ctx(void)
{
    struct mig_ctx *ctx;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_log_level(ctx, MIG_LOG_WARN);
    return ctx;
}

/* ---- pure parts ------------------------------------------------------------------- */

static void config_parse(void **state)
{
    (void)state;
    struct mig__sim_config c;
    assert_int_equal(mig__sim_config_parse("mem=2G,vcpus=2,dirty=200M,pattern=hotset", &c), 0);
    assert_int_equal(c.mem_bytes, 2ull << 30);
    assert_int_equal(c.vcpus, 2);
    assert_int_equal(c.dirty_bps, 200ull << 20);
    assert_int_equal(c.pattern, MIG_SIM_HOTSET);
    assert_int_equal(mig__sim_config_parse("dirty=max,fill=zero,touch=10%,tracking=sync", &c), 0);
    assert_true(c.dirty_bps == MIG_SIM_DIRTY_MAX);
    assert_true(c.fill_zero);
    assert_int_equal(c.touch_pct, 10);
    assert_int_equal(c.tracking, MIG_SIM_TRACK_SYNC);
    assert_int_equal(mig__sim_config_parse("mem=1000", &c), -MIG_EPARSE);
    assert_int_equal(mig__sim_config_parse("bogus=1", &c), -MIG_EPARSE);
    /* NICs (sim-net.c): MAC/IFNAME/BRIDGE[/IPS], and where they are now */
    assert_int_equal(mig__sim_config_parse("vif0=02:00:00:00:02:10/vifg/xenbr0.10/10.2.0.10,"
                                           "vif1=02:00:00:00:02:11/vifh/br1,netns=1234", &c), 0);
    assert_int_equal(mig__sim_config_parse("vif0=02:00:00:00:02:10/vifg", &c), -MIG_EPARSE);
    assert_int_equal(mig__sim_config_parse("vif0=ff:ff:ff:ff:ff:ff/vifg/br0", &c), -MIG_EPARSE);
    assert_int_equal(mig__sim_config_parse("vif0=02:00:00:00:02:10/a;b/br0", &c), -MIG_EPARSE);
    assert_int_equal(mig__sim_config_parse("vif0=02:00:00:00:02:10/vifg/br0/1.2.3", &c),
                     -MIG_EPARSE);
    assert_int_equal(mig__sim_config_parse("vif8=02:00:00:00:02:10/vifg/br0", &c), -MIG_EPARSE);
    assert_int_equal(mig__sim_config_parse("netns=0", &c), -MIG_EPARSE);
    /* what the source sends: the config with this host's netns, a previous one dropped */
    char out[512];
    assert_int_equal(mig__sim_net_info("mem=64M,vif0=02:00:00:00:02:10/vifg/br0,netns=7", 42, out,
                                       sizeof(out)), 0);
    assert_string_equal(out, "mem=64M,vif0=02:00:00:00:02:10/vifg/br0,netns=42");
    assert_int_equal(mig__sim_net_info("mem=64M", 42, out, sizeof(out)), 0);
    assert_string_equal(out, "mem=64M");
    assert_int_equal(mig__sim_net_info("mem=64M,vif0=02:00:00:00:02:10/vifg/br0", 42, out, 20),
                     -MIG_ETOOBIG);
    assert_int_equal(mig__sim_config_parse("pattern=zigzag", &c), -MIG_EPARSE);
    assert_int_equal(mig__sim_config_parse("touch=101%", &c), -MIG_EPARSE);
}

static void page_format(void **state)
{
    (void)state;
    static uint8_t page[MIG_SIM_PAGE];
    uint64_t rng = 42;
    memset(page, 0, sizeof(page));
    assert_int_equal(mig__sim_page_check(page, 7, 0), 0);
    mig__sim_page_fill(page, 7, 3, false, &rng);
    assert_int_equal(mig__sim_page_check(page, 7, 3), 0);
    assert_int_equal(mig__sim_page_check(page, 7, 2), -MIG_ECRC);
    assert_int_equal(mig__sim_page_check(page, 8, 3), -MIG_ECRC);
    assert_int_equal(mig__sim_page_check(page, 7, 0), -MIG_ECRC);
    page[MIG_SIM_PAGE - 1] ^= 1;
    assert_int_equal(mig__sim_page_check(page, 7, 3), -MIG_ECRC);
    mig__sim_page_fill(page, 9, 1, true, &rng);
    assert_int_equal(mig__sim_page_check(page, 9, 1), 0);
}

/* ---- host and guest processes ----------------------------------------------------------- */

static void guest_is_a_process(void **state)
{
    (void)state;
    struct host h;
    struct mig_sim_guest_status st, *list = NULL;
    size_t n = 0;
    char path[160], buf[4096];
    host_start(&h, NULL);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "g1", "mem=64M,vcpus=2,dirty=10M"), 0);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "g1", "mem=64M"), -MIG_EEXIST);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "g2", "mem=64M,bad=1"), -MIG_EPARSE);
    assert_int_equal(mig_simhost_status(NULL, h.dir, "g1", &st), 0);
    assert_string_equal(st.name, "g1");
    assert_true(st.pid > 0 && st.pid != getpid() && st.pid != h.pid);
    assert_string_equal(st.state, "running");
    assert_int_equal(st.mem_bytes, 64ull << 20);
    /* a separate process, a child of the host */
    snprintf(path, sizeof(path), "/proc/%d/status", st.pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    buf[len] = '\0';
    fclose(f);
    char want[32];
    snprintf(want, sizeof(want), "PPid:\t%d\n", (int)h.pid);
    assert_non_null(strstr(buf, want));
    assert_int_equal(mig_simhost_list(NULL, h.dir, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "g1");
    assert_int_equal(list[0].pid, st.pid);
    assert_string_equal(list[0].state, "running");
    assert_int_equal(list[0].verify, MIG_SIM_VERIFY_NONE);
    assert_int_equal(list[0].downtime_us, -1);
    free(list);
    /* a state file per guest */
    snprintf(path, sizeof(path), "%s/guests/g1", h.dir);
    assert_int_equal(access(path, R_OK), 0);
    /* a second host on the same dir is refused */
    struct mig_simhost_config cfg2 = {
        .dir = h.dir, .guest_exe = "/proc/self/exe", .guest_subcmd = "__sim-guest", .extra_fd = -1};
    struct mig_ctx *ctx = quiet_ctx();
    assert_int_equal(mig_simhost_run(ctx, &cfg2), -MIG_EBUSY);
    mig_ctx_free(ctx);
    assert_int_equal(mig_simhost_rename(NULL, h.dir, "g1", "g3"), 0);
    assert_int_equal(mig_simhost_status(NULL, h.dir, "g1", &st), -MIG_ENOENT);
    assert_int_equal(mig_simhost_destroy(NULL, h.dir, "g3"), 0);
    assert_int_equal(mig_simhost_list(NULL, h.dir, &list, &n), 0);
    assert_int_equal(n, 0);
    free(list);
    /* the guest process is gone */
    assert_int_equal(access(path, F_OK), -1);
    /* a guest that dies is reaped and forgotten */
    assert_int_equal(mig_simhost_create(NULL, h.dir, "g5", "mem=64M"), 0);
    assert_int_equal(mig_simhost_status(NULL, h.dir, "g5", &st), 0);
    kill(st.pid, SIGKILL);
    int gone = 0;
    for (int i = 0; i < 300 && !gone; i++) {
        gone = mig_simhost_status(NULL, h.dir, "g5", &st) == -MIG_ENOENT;
        sleep_ms(10);
    }
    assert_true(gone);
    /* SIGTERM: the host takes its guests with it */
    assert_int_equal(mig_simhost_create(NULL, h.dir, "g4", "mem=64M,dirty=1M"), 0);
    assert_int_equal(mig_simhost_status(NULL, h.dir, "g4", &st), 0);
    snprintf(path, sizeof(path), "/proc/%d/status", st.pid);
    assert_int_equal(access(path, F_OK), 0);
    int status;
    kill(h.pid, SIGTERM);
    assert_int_equal(waitpid(h.pid, &status, 0), h.pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/control.sock", h.dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/guests/g4", h.dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/guests", h.dir);
    rmdir(path);
    rmdir(h.dir);
}

/* ---- dirty tracking ---------------------------------------------------------------------------
 */

/* Pages touched on command come back exactly (plus their table pages and the
 * clock page), and a second clean reports nothing new. */
static void tracking_exact_mem(const char *mode, const char *env, const char *config,
                               uint64_t host_mem)
{
    struct host h;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig__hv *hv;
    struct mig__dom_info info;
    unsigned long *b;
    host_start_mem(&h, env, host_mem);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "t", config), 0);
    hv = open_source(ctx, &h, "t");
    if (strcmp(hv->ops->tracking(hv), mode))
        fail_msg("tracking is '%s', want '%s' on this kernel", hv->ops->tracking(hv), mode);
    assert_int_equal(hv->ops->info(hv, &info), 0);
    uint64_t np = info.nr_pages;
    uint64_t data = 2 + mig__sim_table_pages(np);
    b = bitmap_new(np);
    assert_int_equal(hv->ops->logdirty_enable(hv), 0);
    clean(hv, b, np);
    /* pages never touched before, one touched twice, first and last */
    uint64_t touch[] = {data, data + 5, data + 100, np - 1, data + 5};
    assert_int_equal(mig__sim_guest_touch(h.dir, "t", touch, 5), 0);
    sleep_ms(5); /* let the ticker tick */
    clean(hv, b, np);
    if (getenv("SIM_DEBUG")) {
        for (uint64_t p = 0; p < np; p++)
            if (test_bit(b, p))
                print_message(" %" PRIu64, p);
        print_message(" (data %" PRIu64 ")\n", data);
    }
    for (uint64_t p = 0; p < np; p++) {
        bool want = p == data || p == data + 5 || p == data + 100 || p == np - 1;
        if (p == 1)
            continue; /* the clock page, written by the ticker every tick (1 ms) */
        if (p >= 2 && p < data) {
            /* table pages: exactly those holding the touched entries */
            want =
                (p - 2) == data * 4 / MIG_SIM_PAGE || (p - 2) == (data + 100) * 4 / MIG_SIM_PAGE ||
                (p - 2) == (data + 5) * 4 / MIG_SIM_PAGE || (p - 2) == (np - 1) * 4 / MIG_SIM_PAGE;
        }
        if (test_bit(b, p) != want)
            fail_msg("%s: pfn %" PRIu64 " reported %d, want %d", mode, p, test_bit(b, p), want);
    }
    /* nothing else is written: later cleans hold at most the clock page,
     * which the ticker keeps writing (it shows up within a few tries even
     * on a loaded machine) */
    bool ticked = test_bit(b, 1);
    for (int i = 0; i < 200 && !ticked; i++) {
        sleep_ms(5);
        uint64_t n2 = clean(hv, b, np);
        assert_true(n2 <= 1);
        ticked = test_bit(b, 1);
        assert_true(n2 == 0 || ticked);
    }
    assert_true(ticked);
    uint64_t n2 = clean(hv, b, np);
    assert_true(n2 <= 1);
    assert_true(n2 == 0 || test_bit(b, 1));
    /* again, after the clean */
    uint64_t again = data + 5;
    assert_int_equal(mig__sim_guest_touch(h.dir, "t", &again, 1), 0);
    clean(hv, b, np);
    assert_true(test_bit(b, data + 5));
    assert_false(test_bit(b, data + 100));
    assert_int_equal(hv->ops->logdirty_disable(hv), 0);
    hv->ops->close(hv);
    mig__hv_sim_ops.close(NULL);
    free(b);
    host_stop(&h);
    mig_ctx_free(ctx);
}

static void tracking_exact(const char *mode, const char *env, const char *config)
{
    tracking_exact_mem(mode, env, config, 0);
}

/* The same with the guest's memory an extent inside its host's memory. */
static void tracking_exact_host_memory(void **state)
{
    (void)state;
    tracking_exact_mem(ASYNC, NULL, "mem=64M,dirty=0", 130u << 20);
    tracking_exact_mem(SYNC, "sync", "mem=64M,dirty=0", 130u << 20);
}

static void tracking_exact_async(void **state)
{
    (void)state;
    tracking_exact(ASYNC, NULL, "mem=64M,dirty=0");
}

static void tracking_exact_sync(void **state)
{
    (void)state;
    tracking_exact(SYNC, NULL, "mem=64M,dirty=0,tracking=sync");
}

static void tracking_exact_sync_env(void **state)
{
    (void)state;
    tracking_exact(SYNC, "sync", "mem=64M,dirty=0");
}

/* Log-dirty enable protects the guest's memory while round 0 reads it: a
 * page handed out by map_pages right after enable is already watched, so a
 * write after the read is reported by the next clean (1 GiB: protecting it
 * all takes milliseconds, longer than the touch below). Disable right after
 * enable lifts whatever was protected: a write then goes through. */
static void enable_watches_what_is_read_mode(const char *mode, const char *config)
{
    struct host h;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig__dom_info info;
    struct mig__hv_map *map = NULL;
    const void *ptr;
    host_start(&h, NULL);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "e", config), 0);
    struct mig__hv *hv = open_source(ctx, &h, "e");
    if (strcmp(hv->ops->tracking(hv), mode))
        fail_msg("tracking is '%s', want '%s'", hv->ops->tracking(hv), mode);
    assert_int_equal(hv->ops->info(hv, &info), 0);
    uint64_t np = info.nr_pages, last = np - 1;
    unsigned long *b = bitmap_new(np);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hv->ops->logdirty_enable(hv), 0);
        assert_int_equal(hv->ops->map_pages(hv, &last, 1, &ptr, &map), 0);
        hv->ops->unmap_pages(hv, map);
        assert_int_equal(mig__sim_guest_touch(h.dir, "e", &last, 1), 0);
        clean(hv, b, np);
        if (!test_bit(b, last))
            fail_msg("%s: a write after the page was read was not reported (try %d)", mode, i);
        assert_int_equal(hv->ops->logdirty_disable(hv), 0);
    }
    /* disabled at once: nothing stays protected (a sync fault would hang) */
    assert_int_equal(hv->ops->logdirty_enable(hv), 0);
    assert_int_equal(hv->ops->logdirty_disable(hv), 0);
    assert_int_equal(mig__sim_guest_touch(h.dir, "e", &last, 1), 0);
    /* and the map does not wait for tracking that is off */
    assert_int_equal(hv->ops->map_pages(hv, &last, 1, &ptr, &map), 0);
    hv->ops->unmap_pages(hv, map);
    hv->ops->close(hv);
    free(b);
    host_stop(&h);
    mig_ctx_free(ctx);
}

static void enable_watches_what_is_read(void **state)
{
    (void)state;
    enable_watches_what_is_read_mode(ASYNC, "mem=1G,dirty=0");
    enable_watches_what_is_read_mode(SYNC, "mem=1G,dirty=0,tracking=sync");
}

/* With the workload running: every page whose generation changed between two
 * snapshots is reported by the clean before, between or after them;
 * after suspend the final clean covers the rest, and every page checks. */
static void no_lost_write(const char *mode, const char *config)
{
    struct host h;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig__hv *hv;
    struct mig__dom_info info;
    enum { ROUNDS = 6 };
    unsigned long *c[ROUNDS + 2];
    uint32_t *s[ROUNDS + 1];
    host_start(&h, NULL);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "w", config), 0);
    hv = open_source(ctx, &h, "w");
    if (strcmp(hv->ops->tracking(hv), mode))
        fail_msg("tracking is '%s', want '%s'", hv->ops->tracking(hv), mode);
    assert_int_equal(hv->ops->info(hv, &info), 0);
    uint64_t np = info.nr_pages, data = 2 + mig__sim_table_pages(np);
    assert_int_equal(hv->ops->logdirty_enable(hv), 0);
    for (int i = 0; i < ROUNDS + 2; i++)
        c[i] = bitmap_new(np);
    /* a page written just before enable is not tracked (round 0 copies it)
     * while its table entry may land after; start counting well after */
    clean(hv, c[0], np);
    sleep_ms(20);
    clean(hv, c[0], np);
    s[0] = gen_snapshot(hv, np);
    uint64_t reported = 0;
    for (int i = 1; i <= ROUNDS; i++) {
        sleep_ms(40);
        if (i == ROUNDS)
            assert_int_equal(hv->ops->suspend(hv), 0);
        reported += clean(hv, c[i], np);
        s[i] = gen_snapshot(hv, np);
    }
    /* suspended: nothing more is written */
    assert_int_equal(clean(hv, c[ROUNDS + 1], np), 0);
    uint64_t changed = 0;
    for (int i = 1; i <= ROUNDS; i++) {
        for (uint64_t p = data; p < np; p++) {
            if (s[i][p] == s[i - 1][p])
                continue;
            changed++;
            /* the page is written before its table entry; in sync mode the
             * vCPU may wait on the table page's fault across one clean */
            bool seen =
                test_bit(c[i - 1], p) || test_bit(c[i], p) || (i < ROUNDS && test_bit(c[i + 1], p));
            if (!seen)
                fail_msg("%s: pfn %" PRIu64 " written in round %d (gen %u -> %u) but not reported",
                         mode, p, i, s[i - 1][p], s[i][p]);
        }
    }
    assert_true(changed > 50);
    assert_true(reported >= changed);
    /* the suspended guest's memory is consistent page by page */
    uint64_t pfns[256];
    const void *ptrs[256];
    for (uint64_t p = data; p < np; p += 256) {
        unsigned n = (unsigned)(np - p < 256 ? np - p : 256);
        struct mig__hv_map *map;
        for (unsigned k = 0; k < n; k++)
            pfns[k] = p + k;
        assert_int_equal(hv->ops->map_pages(hv, pfns, n, ptrs, &map), 0);
        for (unsigned k = 0; k < n; k++)
            if (mig__sim_page_check(ptrs[k], p + k, s[ROUNDS][p + k])) {
                const struct mig__sim_page_hdr *hd = ptrs[k];
                fail_msg("pfn %" PRIu64 " inconsistent: table gen %u, page pfn %" PRIu64
                         " gen %u magic %x csum %" PRIx64 " want %" PRIx64,
                         p + k, s[ROUNDS][p + k], hd->pfn, hd->gen, hd->magic, hd->csum,
                         mig__sim_page_csum(p + k, hd->gen, ptrs[k]));
            }
        hv->ops->unmap_pages(hv, map);
    }
    /* the engine resumes a guest explicitly; close leaves its run state alone */
    assert_int_equal(hv->ops->resume(hv), 0);
    hv->ops->close(hv);
    struct mig_sim_guest_status st;
    assert_int_equal(mig_simhost_status(NULL, h.dir, "w", &st), 0);
    assert_string_equal(st.state, "running");
    for (int i = 0; i < ROUNDS + 2; i++)
        free(c[i]);
    for (int i = 0; i <= ROUNDS; i++)
        free(s[i]);
    host_stop(&h);
    mig_ctx_free(ctx);
}

static void no_lost_write_async(void **state)
{
    (void)state;
    no_lost_write(ASYNC, "mem=64M,vcpus=2,dirty=40M,pattern=hotset");
}

static void no_lost_write_sync(void **state)
{
    (void)state;
    no_lost_write(SYNC, "mem=64M,vcpus=2,dirty=40M,pattern=uniform,tracking=sync");
}

static uint64_t writes_of(const struct host *h, const char *name);

/* A backend that dies with sync tracking on must not leave the guest's vCPUs
 * blocked on write faults; and one migration at a time per guest. */
static void sync_backend_crash(void **state)
{
    (void)state;
    struct host h;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig__hv *hv, *hv2 = NULL;
    char arg[96];
    host_start(&h, NULL);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "c", "mem=64M,dirty=20M,tracking=sync"), 0);
    hv = open_source(ctx, &h, "c");
    snprintf(arg, sizeof(arg), "c,host=%s", h.dir);
    mig_ctx_set_logger(ctx, NULL, NULL); /* the refusals below are expected */
    assert_int_equal(mig__hv_sim_ops.open(ctx, arg, MIG_ROLE_SOURCE, &hv2), -MIG_EBUSY);
    hv->ops->close(hv);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct mig__hv *x = NULL;
        if (mig__hv_sim_ops.open(ctx, arg, MIG_ROLE_SOURCE, &x) || x->ops->logdirty_enable(x))
            _exit(1);
        sleep_ms(50);
        _exit(0); /* no close: the kernel closes the fds */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 0);
    sleep_ms(50);
    uint64_t w0 = writes_of(&h, "c");
    sleep_ms(200);
    assert_true(writes_of(&h, "c") > w0 + 100);
    hv = open_source(ctx, &h, "c"); /* and it can be migrated again */
    assert_int_equal(hv->ops->logdirty_enable(hv), 0);
    hv->ops->close(hv);
    host_stop(&h);
    mig_ctx_free(ctx);
}

/* ---- suspend, throttle, resume -----------------------------------------------------------------
 */

static uint64_t writes_of(const struct host *h, const char *name)
{
    struct mig_sim_guest_status st;
    assert_int_equal(mig_simhost_status(NULL, h->dir, name, &st), 0);
    return st.writes;
}

static void suspend_throttle_resume(void **state)
{
    (void)state;
    struct host h;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig__hv *hv;
    struct mig__dom_info info;
    host_start(&h, NULL);
    assert_int_equal(
        mig_simhost_create(NULL, h.dir, "s", "mem=64M,vcpus=1,dirty=40M,pattern=sequential"), 0);
    hv = open_source(ctx, &h, "s");
    assert_int_equal(hv->ops->info(hv, &info), 0);
    uint64_t np = info.nr_pages;
    unsigned long *b = bitmap_new(np);

    /* throttle: 80% of every 10 ms asleep. The machine may be busy with
     * other work, which changes the guest's free rate from one moment to
     * the next: compare free and throttled slices interleaved, summed over
     * six pairs, so a load change hits both sides alike. */
    uint64_t free_w = 0, thr_w = 0, again_w = 0;
    for (int i = 0; i < 6; i++) {
        uint64_t w0 = writes_of(&h, "s");
        sleep_ms(100);
        uint64_t w1 = writes_of(&h, "s");
        assert_int_equal(hv->ops->throttle(hv, 80), 0);
        sleep_ms(20); /* the guest sees the new setting at its next slice */
        uint64_t w2 = writes_of(&h, "s");
        sleep_ms(100);
        uint64_t w3 = writes_of(&h, "s");
        assert_int_equal(hv->ops->throttle(hv, 0), 0);
        sleep_ms(20);
        free_w += w1 - w0;
        thr_w += w3 - w2;
    }
    uint64_t w4 = writes_of(&h, "s");
    sleep_ms(300);
    again_w = writes_of(&h, "s") - w4;
    print_message("writes/600ms: free %" PRIu64 ", throttled 80%% %" PRIu64
                  "; free again %" PRIu64 "/300ms\n",
                  free_w, thr_w, again_w);
    assert_true(free_w > 1000);
    assert_true(thr_w * 2 < free_w);
    assert_true(again_w * 4 > free_w); /* lifted: back to well above the throttled rate */

    /* suspend really stops writes */
    assert_int_equal(hv->ops->logdirty_enable(hv), 0);
    assert_int_equal(hv->ops->suspend(hv), 0);
    clean(hv, b, np);
    uint32_t *g1 = gen_snapshot(hv, np);
    uint64_t ws = writes_of(&h, "s");
    sleep_ms(100);
    assert_int_equal(clean(hv, b, np), 0);
    uint32_t *g2 = gen_snapshot(hv, np);
    assert_memory_equal(g1, g2, mig__sim_table_pages(np) * MIG_SIM_PAGE);
    assert_int_equal(writes_of(&h, "s"), ws);
    struct mig_sim_guest_status st;
    assert_int_equal(mig_simhost_status(NULL, h.dir, "s", &st), 0);
    assert_string_equal(st.state, "suspended");
    /* resume continues */
    assert_int_equal(hv->ops->resume(hv), 0);
    sleep_ms(100);
    assert_true(writes_of(&h, "s") > ws + 100);
    assert_true(clean(hv, b, np) > 0);
    /* close lifts the throttle but leaves a suspended guest suspended (the
     * in-doubt case needs it paused; the engine resumes explicitly) */
    assert_int_equal(hv->ops->throttle(hv, 50), 0);
    assert_int_equal(hv->ops->suspend(hv), 0);
    hv->ops->close(hv);
    assert_int_equal(mig_simhost_status(NULL, h.dir, "s", &st), 0);
    assert_string_equal(st.state, "suspended");
    assert_int_equal(st.throttle, 0);
    free(g1);
    free(g2);
    free(b);
    host_stop(&h);
    mig_ctx_free(ctx);
}

struct scan_job {
    struct mig__hv *hv;
    uint64_t np, data, seen;
    int rc;
};

/* Count the workload pages a data-channel thread would read. */
static void *scan_thread(void *arg)
{
    struct scan_job *j = arg;
    uint64_t pfns[1024];
    const void *ptrs[1024];
    for (int rep = 0; rep < 4; rep++) {
        j->seen = 0;
        for (uint64_t p = 0; p < j->np; p += 1024) {
            unsigned n = (unsigned)(j->np - p < 1024 ? j->np - p : 1024);
            struct mig__hv_map *map;
            for (unsigned k = 0; k < n; k++)
                pfns[k] = p + k;
            j->rc = j->hv->ops->map_pages(j->hv, pfns, n, ptrs, &map);
            if (j->rc)
                return NULL;
            for (unsigned k = 0; k < n; k++) {
                const struct mig__sim_page_hdr *hd = ptrs[k];
                if (p + k >= j->data && hd->magic == MIG_SIM_PAGE_MAGIC && hd->pfn == p + k)
                    j->seen++;
            }
            j->hv->ops->unmap_pages(j->hv, map);
        }
    }
    return NULL;
}

/* Reading never-written pages gives zeros without allocating them on the
 * source (the memfd of a touch=10% guest stays small). */
static void holes_read_as_zero(void **state)
{
    (void)state;
    struct host h;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig__hv *hv;
    struct mig__dom_info info;
    struct mig_sim_guest_status st;
    struct stat sb;
    char path[64];
    host_start(&h, NULL);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "z", "mem=64M,dirty=0"), 0);
    assert_int_equal(mig_simhost_status(NULL, h.dir, "z", &st), 0);
    hv = open_source(ctx, &h, "z");
    assert_int_equal(hv->ops->info(hv, &info), 0);
    uint64_t np = info.nr_pages, data = 2 + mig__sim_table_pages(np);
    uint64_t t[] = {data + 1000, data + 1001, np - 1};
    assert_int_equal(mig__sim_guest_touch(h.dir, "z", t, 3), 0);
    snprintf(path, sizeof(path), "/proc/%d/fd/4", st.pid); /* the guest's memfd */
    uint64_t pfns[1024];
    const void *ptrs[1024];
    uint64_t seen = 0;
    for (uint64_t p = 0; p < np; p += 1024) {
        unsigned n = (unsigned)(np - p < 1024 ? np - p : 1024);
        struct mig__hv_map *map;
        for (unsigned k = 0; k < n; k++)
            pfns[k] = p + k;
        assert_int_equal(hv->ops->map_pages(hv, pfns, n, ptrs, &map), 0);
        for (unsigned k = 0; k < n; k++) {
            const struct mig__sim_page_hdr *hd = ptrs[k];
            if (p + k >= data && hd->magic == MIG_SIM_PAGE_MAGIC) {
                assert_int_equal(hd->pfn, p + k);
                seen++;
            }
        }
        hv->ops->unmap_pages(hv, map);
    }
    assert_int_equal(seen, 3);
    /* map_pages from several data-channel threads at once */
    struct scan_job jobs[3];
    pthread_t thr[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (struct scan_job){.hv = hv, .np = np, .data = data};
        assert_int_equal(pthread_create(&thr[i], NULL, scan_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(thr[i], NULL);
        assert_int_equal(jobs[i].rc, 0);
        assert_int_equal(jobs[i].seen, 3);
    }
    assert_int_equal(stat(path, &sb), 0);
    assert_true((uint64_t)sb.st_blocks * 512 < (1u << 20)); /* not 64 MiB */
    hv->ops->close(hv);
    host_stop(&h);
    mig_ctx_free(ctx);
}

/* At COMMIT the source is renamed while suspended: close must then leave it
 * paused (in doubt until resolved); close never changes the run state, the
 * engine resumes explicitly after renaming it back. */
static void renamed_source_stays_paused(void **state)
{
    (void)state;
    struct host h;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig__hv *hv;
    struct mig_sim_guest_status st;
    host_start(&h, NULL);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "r", "mem=64M,dirty=5M"), 0);
    hv = open_source(ctx, &h, "r");
    assert_int_equal(hv->ops->suspend(hv), 0);
    assert_int_equal(hv->ops->rename(hv, "r--migratedaway"), 0);
    hv->ops->close(hv);
    assert_int_equal(mig_simhost_status(NULL, h.dir, "r--migratedaway", &st), 0);
    assert_string_equal(st.state, "suspended");
    hv = open_source(ctx, &h, "r--migratedaway");
    assert_int_equal(hv->ops->suspend(hv), 0);
    assert_int_equal(hv->ops->rename(hv, "r2"), 0);
    assert_int_equal(hv->ops->rename(hv, "r--migratedaway"), 0); /* back to its name at open */
    hv->ops->close(hv);
    assert_int_equal(mig_simhost_status(NULL, h.dir, "r--migratedaway", &st), 0);
    assert_string_equal(st.state, "suspended");
    hv = open_source(ctx, &h, "r--migratedaway");
    assert_int_equal(hv->ops->resume(hv), 0);
    hv->ops->close(hv);
    assert_int_equal(mig_simhost_status(NULL, h.dir, "r--migratedaway", &st), 0);
    assert_string_equal(st.state, "running");
    host_stop(&h);
    mig_ctx_free(ctx);
}

/* ---- a manual migration without the engine
 * ---------------------------------------------------------- */

static bool is_zero(const void *page)
{
    const uint64_t *w = page;
    for (size_t i = 0; i < MIG_SIM_PAGE / 8; i++)
        if (w[i])
            return false;
    return true;
}

static void copy_pages(struct mig__hv *src, struct mig__hv *dst, const unsigned long *bitmap,
                       uint64_t np, void *buf)
{
    uint64_t pfns[1024];
    const void *ptrs[1024];
    unsigned n = 0;
    for (uint64_t p = 0; p <= np; p++) {
        if (p < np && (!bitmap || test_bit(bitmap, p)))
            pfns[n++] = p;
        if (n == 1024 || (p == np && n)) {
            struct mig__hv_map *map;
            assert_int_equal(src->ops->map_pages(src, pfns, n, ptrs, &map), 0);
            for (unsigned i = 0; i < n; i++)
                memcpy((uint8_t *)buf + (size_t)i * MIG_SIM_PAGE, ptrs[i], MIG_SIM_PAGE);
            src->ops->unmap_pages(src, map);
            /* zero pages go as zero runs, as the engine sends them */
            unsigned k = 0;
            while (k < n) {
                unsigned e = k;
                bool zero = is_zero((uint8_t *)buf + (size_t)k * MIG_SIM_PAGE);
                while (e < n && pfns[e] == pfns[k] + (e - k) &&
                       is_zero((uint8_t *)buf + (size_t)e * MIG_SIM_PAGE) == zero)
                    e++;
                if (zero)
                    assert_int_equal(dst->ops->write_zero(dst, pfns[k], e - k), 0);
                else
                    assert_int_equal(
                        dst->ops->write_pages(dst, pfns + k, e - k,
                                              (uint8_t *)buf + (size_t)k * MIG_SIM_PAGE),
                        0);
                k = e;
            }
            n = 0;
        }
    }
}

/* host_mem: both hosts have memory of their own (simhost --mem); the
 * destination's was used by another guest first, so its scrubbing counts. */
static void manual_migration_mem(const char *config, bool corrupt, uint64_t host_mem)
{
    struct host a, b;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig__hv *src, *dst = NULL;
    struct mig__dom_info info;
    struct mig__blob blob = {0};
    struct mig_sim_guest_status st;
    void *buf = malloc(1024 * MIG_SIM_PAGE);
    assert_non_null(buf);
    host_start_mem(&a, NULL, host_mem);
    host_start_mem(&b, NULL, host_mem);
    if (host_mem) {
        /* a guest that wrote random data over all its memory, gone */
        assert_int_equal(mig_simhost_create(NULL, b.dir, "junk", "mem=64M,prefill=1,dirty=0"), 0);
        assert_int_equal(mig_simhost_destroy(NULL, b.dir, "junk"), 0);
    }
    assert_int_equal(mig_simhost_create(NULL, a.dir, "vm", config), 0);
    src = open_source(ctx, &a, "vm");
    char arg[96];
    snprintf(arg, sizeof(arg), "host=%s", b.dir);
    assert_int_equal(mig__hv_sim_ops.open(ctx, arg, MIG_ROLE_DESTINATION, &dst), 0);
    assert_int_equal(src->ops->info(src, &info), 0);
    uint64_t np = info.nr_pages, data = 2 + mig__sim_table_pages(np);
    unsigned long *bm = bitmap_new(np);
    assert_int_equal(dst->ops->create_incoming(dst, &info), 0);
    assert_int_equal(mig_simhost_status(NULL, b.dir, "vm--incoming", &st), 0);
    assert_string_equal(st.state, "incoming");

    assert_int_equal(src->ops->logdirty_enable(src), 0);
    copy_pages(src, dst, NULL, np, buf); /* round 0: everything */
    for (int r = 0; r < 3; r++) {
        sleep_ms(30);
        clean(src, bm, np);
        copy_pages(src, dst, bm, np, buf);
    }
    assert_int_equal(src->ops->suspend(src), 0);
    clean(src, bm, np);
    copy_pages(src, dst, bm, np, buf);
    assert_int_equal(src->ops->save_state(src, &blob), 0);
    assert_int_equal(dst->ops->load_state(dst, &blob), 0);
    free(blob.data);
    uint64_t bad = 0;
    if (corrupt) {
        /* a page the guest wrote, with one byte changed on the way */
        uint32_t *g = gen_snapshot(src, np);
        for (uint64_t p = data; p < np && !bad; p++)
            if (g[p])
                bad = p;
        free(g);
        assert_true(bad != 0);
        const void *ptr;
        struct mig__hv_map *map;
        assert_int_equal(src->ops->map_pages(src, &bad, 1, &ptr, &map), 0);
        memcpy(buf, ptr, MIG_SIM_PAGE);
        ((uint8_t *)buf)[2000] ^= 0x40;
        assert_int_equal(dst->ops->write_pages(dst, &bad, 1, buf), 0);
    }
    /* the zero path: a never-written page sent as zero stays valid */
    uint64_t last = np - 1;
    uint32_t *g = gen_snapshot(src, np);
    if (!g[last])
        assert_int_equal(dst->ops->write_zero(dst, last, 1), 0);
    free(g);
    assert_int_equal(dst->ops->ready(dst), 0);
    assert_int_equal(dst->ops->commit(dst), 0);
    assert_int_equal(src->ops->destroy(src), 0);
    src->ops->close(src);
    dst->ops->close(dst);

    for (int i = 0; i < 500; i++) {
        assert_int_equal(mig_simhost_status(NULL, b.dir, "vm", &st), 0);
        if (st.verify != MIG_SIM_VERIFY_RUNNING)
            break;
        sleep_ms(10);
    }
    print_message("verify %d: %" PRIu64 " pages, %" PRIu64 " errors, first bad %" PRId64
                  ", downtime %" PRId64 " us\n",
                  st.verify, st.verify_pages, st.verify_errors, st.verify_first_bad,
                  st.downtime_us);
    assert_int_equal(st.verify_pages, np - data);
    if (strstr(config, "touch=50%") && !host_mem) {
        /* zero pages stayed holes through write_zero and verification */
        struct stat sb;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/fd/4", st.pid);
        assert_int_equal(stat(path, &sb), 0);
        assert_true((uint64_t)sb.st_blocks * 512 < np * MIG_SIM_PAGE * 3 / 4);
    }
    assert_true(st.downtime_us >= 0 && st.downtime_us < 5000000);
    if (corrupt) {
        assert_int_equal(st.verify, MIG_SIM_VERIFY_FAILED);
        assert_int_equal(st.verify_errors, 1);
        assert_int_equal(st.verify_first_bad, (int64_t)bad);
    } else {
        assert_int_equal(st.verify, MIG_SIM_VERIFY_OK);
        assert_int_equal(st.verify_errors, 0);
        assert_int_equal(st.verify_first_bad, -1);
        /* and it runs on at the destination */
        uint64_t w = st.writes;
        sleep_ms(100);
        assert_true(writes_of(&b, "vm") > w);
    }
    assert_int_equal(mig_simhost_status(NULL, a.dir, "vm", &st), -MIG_ENOENT);
    free(bm);
    free(buf);
    host_stop(&a);
    host_stop(&b);
    mig_ctx_free(ctx);
}

static void manual_migration(const char *config, bool corrupt)
{
    manual_migration_mem(config, corrupt, 0);
}

/* Hosts with memory of their own, just enough for one guest: the incoming
 * guest gets the extent a guest full of random data had, once scrubbed. */
static void migration_host_memory(void **state)
{
    (void)state;
    manual_migration_mem("mem=64M,vcpus=2,dirty=30M,pattern=hotset,touch=50%", false, 66u << 20);
}

/* The extent allocator: best fit, merging, scrubbing before reuse. */
static void host_memory_extents(void **state)
{
    (void)state;
    const uint64_t M = 1u << 20;
    struct mig__sim_ram *r = NULL;
    uint64_t a, b, c;
    assert_int_equal(mig__sim_ram_new(M, &r), -MIG_EINVAL); /* less than one extent */
    assert_int_equal(mig__sim_ram_new(13 * M, &r), 0);      /* rounded down to 12 MiB */
    assert_int_equal(mig__sim_ram_size(r), 12 * M);
    int fd = mig__sim_ram_fd(r);
    uint8_t *map = mmap(NULL, 12 * M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mig__sim_ram_alloc(r, 0, &a), -MIG_EINVAL);
    assert_int_equal(mig__sim_ram_alloc(r, 3 * M, &a), 0); /* takes 4 MiB */
    assert_int_equal(mig__sim_ram_alloc(r, 2 * M, &b), 0);
    assert_int_equal(mig__sim_ram_alloc(r, 4 * M, &c), 0);
    assert_int_equal(a, 0);
    assert_int_equal(b, 4 * M);
    assert_int_equal(c, 6 * M);
    assert_int_equal(mig__sim_ram_free_bytes(r), 2 * M);
    assert_int_equal(mig__sim_ram_alloc(r, 4 * M, &a), -MIG_ENOSPC);
    /* used memory, given back: the next owner finds it cleared */
    memset(map + b, 0xa5, 2 * M);
    memset(map + c, 0x5a, 4 * M);
    mig__sim_ram_release(r, b, 2 * M);
    mig__sim_ram_release(r, c, 4 * M);
    /* b, c and the free tail merge into 8 MiB from 4 MiB once scrubbed */
    assert_int_equal(mig__sim_ram_alloc(r, 8 * M, &a), 0);
    assert_int_equal(a, 4 * M);
    for (uint64_t i = 0; i < 8 * M; i += 4096)
        if (map[a + i] || map[a + i + 4095])
            fail_msg("byte %" PRIu64 " of a scrubbed extent is not zero", a + i);
    assert_int_equal(mig__sim_ram_free_bytes(r), 0);
    assert_int_equal(mig__sim_ram_largest(r), 0);
    mig__sim_ram_release(r, 4 * M, 8 * M);
    mig__sim_ram_release(r, 0, 3 * M);
    assert_int_equal(mig__sim_ram_free_bytes(r), 12 * M);
    mig__sim_ram_release(r, 1 * M, 2 * M); /* not an extent: ignored */
    mig__sim_ram_release(r, 12 * M, 2 * M);
    assert_int_equal(mig__sim_ram_alloc(r, 12 * M, &a), 0); /* whole again */
    munmap(map, 12 * M);
    mig__sim_ram_free(r);
}

/* A host that cannot hold a guest refuses it, new or incoming, and keeps
 * the guests it has. */
static void host_memory_full(void **state)
{
    (void)state;
    struct host h;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig__hv *dst = NULL;
    struct mig__dom_info info = {.name = "x",
                                 .nr_pages = (32u << 20) / MIG_SIM_PAGE,
                                 .page_size = MIG_SIM_PAGE,
                                 .vcpus = 1,
                                 .config = "mem=32M"};
    struct mig_sim_guest_status st;
    char arg[96];
    host_start_mem(&h, NULL, 80u << 20);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "a", "mem=64M,dirty=1M"), 0);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "b", "mem=32M"), -MIG_ENOSPC);
    snprintf(arg, sizeof(arg), "host=%s", h.dir);
    assert_int_equal(mig__hv_sim_ops.open(ctx, arg, MIG_ROLE_DESTINATION, &dst), 0);
    assert_int_equal(dst->ops->create_incoming(dst, &info), -MIG_ENOSPC);
    dst->ops->close(dst);
    assert_int_equal(mig_simhost_status(NULL, h.dir, "a", &st), 0);
    assert_string_equal(st.state, "running");
    assert_int_equal(mig_simhost_status(NULL, h.dir, "x--incoming", &st), -MIG_ENOENT);
    /* once a goes, its memory holds the next guest */
    assert_int_equal(mig_simhost_destroy(NULL, h.dir, "a"), 0);
    assert_int_equal(mig_simhost_create(NULL, h.dir, "b", "mem=72M"), 0);
    assert_int_equal(mig_simhost_destroy(NULL, h.dir, "b"), 0);
    /* an incoming guest destroyed behind the receiver's back: its memory
     * may be someone else's now, the receiver writes no more of it */
    uint64_t pfn = 5;
    static uint8_t page[MIG_SIM_PAGE];
    assert_int_equal(mig__hv_sim_ops.open(ctx, arg, MIG_ROLE_DESTINATION, &dst), 0);
    assert_int_equal(dst->ops->create_incoming(dst, &info), 0);
    assert_int_equal(dst->ops->write_pages(dst, &pfn, 1, page), 0);
    assert_int_equal(mig_simhost_destroy(NULL, h.dir, "x--incoming"), 0);
    assert_int_equal(dst->ops->write_pages(dst, &pfn, 1, page), -MIG_EPEER);
    assert_int_equal(dst->ops->write_zero(dst, pfn, 1), -MIG_EPEER);
    dst->ops->close(dst);
    host_stop(&h);
    mig_ctx_free(ctx);
}

static void migration_verifies(void **state)
{
    (void)state;
    manual_migration("mem=64M,vcpus=2,dirty=30M,pattern=hotset,touch=50%", false);
}

static void migration_verifies_sync(void **state)
{
    (void)state;
    manual_migration("mem=64M,vcpus=2,dirty=30M,pattern=uniform,tracking=sync", false);
}

/* Flat out: every vCPU writes as fast as it can while pages are copied; a
 * write lost between reading and clearing the dirty state fails verification. */
static void migration_flat_out_async(void **state)
{
    (void)state;
    manual_migration("mem=64M,vcpus=2,dirty=max,pattern=uniform,tracking=async", false);
}

static void migration_flat_out_sync(void **state)
{
    (void)state;
    manual_migration("mem=64M,vcpus=2,dirty=max,pattern=uniform,tracking=sync", false);
}

static void migration_catches_corruption(void **state)
{
    (void)state;
    manual_migration("mem=64M,vcpus=1,dirty=10M,pattern=uniform,fill=zero", true);
}

/* ---- destination failures and facts
 * ------------------------------------------------------------------- */

static void discard_and_facts(void **state)
{
    (void)state;
    struct host h;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig__hv *dst = NULL;
    struct mig__dom_info info = {.name = "x",
                                 .nr_pages = (64u << 20) / MIG_SIM_PAGE,
                                 .page_size = MIG_SIM_PAGE,
                                 .vcpus = 1,
                                 .config = "mem=64M"};
    struct mig_sim_guest_status *list = NULL;
    size_t n = 9;
    char arg[96], *json = NULL;
    host_start(&h, NULL);
    snprintf(arg, sizeof(arg), "host=%s", h.dir);
    mig_ctx_set_logger(ctx, NULL, NULL); /* the refusals below are expected */
    assert_int_equal(mig__hv_sim_ops.open(ctx, "nohost", MIG_ROLE_DESTINATION, &dst), -MIG_EINVAL);
    assert_int_equal(mig__hv_sim_ops.open(ctx, "x,host=/nonexistent", MIG_ROLE_SOURCE, &dst),
                     -MIG_ENOENT);
    assert_int_equal(mig__hv_sim_ops.open(ctx, arg, MIG_ROLE_DESTINATION, &dst), 0);
    assert_int_equal(dst->ops->facts(dst, &json), 0);
    assert_non_null(strstr(json, "\"tracking\":\"" ASYNC "\""));
    assert_non_null(strstr(json, "\"kernel\":"));
    free(json);
    char path[128];
    snprintf(path, sizeof(path), "%s/facts.json", h.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"cpu\":\"pretend\"}", f);
    fclose(f);
    assert_int_equal(dst->ops->facts(dst, &json), 0);
    assert_string_equal(json, "{\"cpu\":\"pretend\"}");
    free(json);
    assert_int_equal(dst->ops->create_incoming(dst, &info), 0);
    assert_int_equal(mig_simhost_list(NULL, h.dir, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "x--incoming");
    free(list);
    dst->ops->close(dst); /* not committed: discarded */
    assert_int_equal(mig_simhost_list(NULL, h.dir, &list, &n), 0);
    assert_int_equal(n, 0);
    free(list);
    host_stop(&h);
    mig_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "__sim-guest"))
        return mig_sim_guest_main(argc - 1, argv + 1);
    if (getenv("SIM_TEST"))
        cmocka_set_test_filter(getenv("SIM_TEST"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_parse),
        cmocka_unit_test(page_format),
        cmocka_unit_test(guest_is_a_process),
        cmocka_unit_test(tracking_exact_async),
        cmocka_unit_test(tracking_exact_sync),
        cmocka_unit_test(tracking_exact_sync_env),
        cmocka_unit_test(enable_watches_what_is_read),
        cmocka_unit_test(no_lost_write_async),
        cmocka_unit_test(no_lost_write_sync),
        cmocka_unit_test(sync_backend_crash),
        cmocka_unit_test(suspend_throttle_resume),
        cmocka_unit_test(holes_read_as_zero),
        cmocka_unit_test(renamed_source_stays_paused),
        cmocka_unit_test(migration_verifies),
        cmocka_unit_test(migration_verifies_sync),
        cmocka_unit_test(migration_flat_out_async),
        cmocka_unit_test(migration_flat_out_sync),
        cmocka_unit_test(migration_catches_corruption),
        cmocka_unit_test(discard_and_facts),
        cmocka_unit_test(tracking_exact_host_memory),
        cmocka_unit_test(migration_host_memory),
        cmocka_unit_test(host_memory_extents),
        cmocka_unit_test(host_memory_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
