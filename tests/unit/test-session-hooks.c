/*
 * Unit tests for the engine's hook points (session/hooks.c and their calls
 * in source.c and dest.c): a whole migration runs in-process between a source
 * and a destination session over a socket pair (one stream) or a unix:
 * listener (two data channels), with an in-memory domain backend and a
 * recording hook on both sides. Each test checks the order of the hook calls
 * on both sides, the data a hook sent arriving at its peer, and that a hook
 * failing at each point before COMMIT rolls back both sides (source running
 * and unchanged, destination discarded, abort called once on each begun hook).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <libmig/migrate.h>

#define MIG_LOG_MODULE "test"
#include "hooks.h"
#include "session-internal.h"
#include "fake-hv.h"


/* ---- the recording hook ---------------------------------------------------- */

/* One log per side: "begin round0 round1 stopcopy round2F ready commit settle". */
static struct {
    pthread_mutex_t lock;
    char src[1024], dst[1024];
    unsigned records;            /* destination: class records received */
    char blob[64];               /* destination: the begin blob it got */
    int nicer;                   /* source, round 0: threads 10 nice levels below the session's */
} hl = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct rec_hook {
    struct mig__hook base;
    bool source;
    char fail[32];               /* the event that fails ("round1", "dst_begin"...) */
    struct mig__hook_io *io;
    uint32_t rounds;
};

static void logev(struct rec_hook *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logev(struct rec_hook *r, const char *fmt, ...)
{
    char ev[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev, sizeof(ev), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&hl.lock);
    char *log = r->source ? hl.src : hl.dst;
    if (*log)
        strcat(log, " ");
    strcat(log, ev);
    pthread_mutex_unlock(&hl.lock);
}

static int maybe_fail(struct rec_hook *r, const char *ev)
{
    if (strcmp(r->fail, ev) == 0)
        return mig__hook_fail(&r->base, -MIG_ENOSPC, "test hook refuses at %s", ev);
    return 0;
}

static int h_src_begin(struct mig__hook *h, struct mig__hook_io *io, void **blob, size_t *len)
{
    struct rec_hook *r = (struct rec_hook *)h;
    r->io = io;
    logev(r, "begin");
    *blob = strdup("hello peer");
    *len = 10;
    return maybe_fail(r, "begin");
}

/* Threads of this process at nice level 'prio'. */
static int threads_at(int prio)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        errno = 0;
        int p = getpriority(PRIO_PROCESS, (id_t)atoi(e->d_name));
        if ((p != -1 || errno == 0) && p == prio)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static int h_src_round(struct mig__hook *h, uint32_t round, bool final)
{
    struct rec_hook *r = (struct rec_hook *)h;
    char ev[32];
    if (round == 0) {
        /* each data channel's CRC helper runs 10 nice levels below the
         * session (sender.c, HELPER_NICE); it lowers itself as it starts */
        int mine = getpriority(PRIO_PROCESS, (id_t)gettid()), n = 0;
        for (int i = 0; i < 200 && (n = threads_at(mine + 10)) < (int)r->io->nchannels; i++)
            usleep(10000);
        pthread_mutex_lock(&hl.lock);
        hl.nicer = mine + 10 <= 19 ? n : -1;
        pthread_mutex_unlock(&hl.lock);
    }
    snprintf(ev, sizeof(ev), "round%u%s", round, final ? "F" : "");
    logev(r, "%s", ev);
    r->rounds = round + 1;
    /* one record per round on every channel */
    for (unsigned c = 0; c < r->io->nchannels; c++) {
        uint8_t hdr[8] = {MIG_HOOK_ID_TEST, 0, 0, 0, MIG_HOOK_KIND_CLASS, 0, 0, 0};
        struct iovec iov[2] = {{hdr, 8}, {ev, strlen(ev)}};
        int rc = r->io->send(r->io, c, MIG_REC_HOOK_DATA, iov, 2);
        if (rc < 0)
            return rc;
    }
    int rc = r->io->tick(r->io);
    return rc < 0 ? rc : maybe_fail(r, ev);
}

static uint64_t h_src_pending(struct mig__hook *h)
{
    /* keeps pre-copy going for two rounds (the round cap stops it) */
    return ((struct rec_hook *)h)->rounds < 2 ? 1u << 20 : 0;
}

#define SIMPLE(fn, ev)                                                                             \
    static int fn(struct mig__hook *h)                                                             \
    {                                                                                              \
        struct rec_hook *r = (struct rec_hook *)h;                                                 \
        logev(r, ev);                                                                              \
        return maybe_fail(r, ev);                                                                  \
    }
SIMPLE(h_src_stopcopy, "stopcopy")
SIMPLE(h_src_ready, "ready")
SIMPLE(h_src_commit, "commit")
SIMPLE(h_src_settle, "settle")
SIMPLE(h_dst_ready, "dst_ready")
SIMPLE(h_dst_commit, "dst_commit")

static void h_abort(struct mig__hook *h, int why)
{
    logev((struct rec_hook *)h, "abort(%s)", mig_errname(why));
}

static int h_dst_begin(struct mig__hook *h, const void *blob, size_t len)
{
    struct rec_hook *r = (struct rec_hook *)h;
    pthread_mutex_lock(&hl.lock);
    snprintf(hl.blob, sizeof(hl.blob), "%.*s", (int)len, (const char *)blob);
    pthread_mutex_unlock(&hl.lock);
    logev(r, "dst_begin");
    return maybe_fail(r, "dst_begin");
}

static int h_dst_record(struct mig__hook *h, const struct mig__rec *rec)
{
    (void)h;
    uint32_t id, kind;
    const void *data;
    size_t len;
    assert_int_equal(mig__rec_get_hook_data(rec, &id, &kind, &data, &len), 0);
    assert_int_equal(id, MIG_HOOK_ID_TEST);
    assert_int_equal(kind, MIG_HOOK_KIND_CLASS);
    pthread_mutex_lock(&hl.lock);
    hl.records++;
    pthread_mutex_unlock(&hl.lock);
    return 0;
}

static void h_free(struct mig__hook *h)
{
    free(h);
}

static const struct mig__hook_ops src_ops = {
    .src_begin = h_src_begin, .src_round = h_src_round, .src_pending_bytes = h_src_pending,
    .src_stopcopy = h_src_stopcopy, .src_ready = h_src_ready, .src_commit = h_src_commit,
    .src_settle = h_src_settle, .src_abort = h_abort, .free = h_free,
};

static const struct mig__hook_ops dst_ops = {
    .dst_begin = h_dst_begin, .dst_record = h_dst_record, .dst_ready = h_dst_ready,
    .dst_commit = h_dst_commit, .dst_abort = h_abort, .free = h_free,
};

static int new_hook(const struct mig__hook_env *env, bool source, struct mig__hook **out)
{
    const char *on = mig__hook_arg(env, "test", "on", 0);
    const char *fail = mig__hook_arg(env, "test", "fail", 0);
    *out = NULL;
    if (!on)
        return 0; /* nothing to do for this migration */
    struct rec_hook *r = calloc(1, sizeof(*r));
    r->base.ops = source ? &src_ops : &dst_ops;
    r->source = source;
    if (fail)
        snprintf(r->fail, sizeof(r->fail), "%s", fail);
    *out = &r->base;
    return 0;
}

static int h_src_new(const struct mig__hook_env *env, struct mig__hook **out)
{
    return new_hook(env, true, out);
}

static int h_dst_new(const struct mig__hook_env *env, struct mig__hook **out)
{
    return new_hook(env, false, out);
}

static const struct mig__hook_class test_class = {
    .name = "test", .id = MIG_HOOK_ID_TEST, .src_new = h_src_new, .dst_new = h_dst_new,
};

/* ---- running one migration -------------------------------------------------- */

struct dst_job {
    struct mig_ctx *ctx;
    struct mig_recv_params p;
    int fd;                      /* socket pair end, or -1 for the unix listener */
    const char *uri;
    volatile int stop;
    int rc;
};

static void *dst_main(void *arg)
{
    struct dst_job *j = arg;
    if (j->fd >= 0)
        j->rc = mig_receive_fds(j->ctx, &j->p, j->fd, dup(j->fd));
    else
        j->rc = mig_listen_serve(j->ctx, &j->p, j->uri, &j->stop);
    return NULL;
}

static struct mig_ctx *new_ctx(void)
{
    struct mig_ctx *ctx = NULL;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_log_level(ctx, getenv("TEST_VERBOSE") ? MIG_LOG_DEBUG : MIG_LOG_ERROR);
    assert_int_equal(mig__hv_register(ctx, &fake_hv_ops), 0);
    assert_int_equal(mig__hook_register(ctx, &test_class), 0);
    return ctx;
}

struct result {
    int src_rc, dst_rc;
    char err[512];
};

/* With capture_takeback the next migrate()'s source logs at debug level
 * into takeback, keeping the sender's "taken back from the helper" lines. */
static bool capture_takeback;
static char takeback[2048];
static pthread_mutex_t takeback_lock = PTHREAD_MUTEX_INITIALIZER;

static void takeback_log(void *opaque, enum mig_log_level level, const char *module,
                         const char *msg)
{
    (void)opaque;
    (void)level;
    pthread_mutex_lock(&takeback_lock);
    if (!strcmp(module, "sender") && strstr(msg, "taken back") &&
        strlen(takeback) + strlen(msg) + 2 < sizeof(takeback)) {
        strcat(takeback, msg);
        strcat(takeback, "\n");
    }
    pthread_mutex_unlock(&takeback_lock);
}

/* Migrate the fake domain with the recording hook; fail_src / fail_dst name
 * the event at which each side's hook fails (NULL: none). */
static bool fail_rename_next; /* the next migrate()'s source cannot rename */
static unsigned redirty_next; /* the next migrate()'s clean number N reports every page */

static void migrate(bool channels, const char *fail_src, const char *fail_dst, struct result *res)
{
    char dir[] = "/tmp/test-hooks-XXXXXX";
    char uri[256], sock[160], fs[64], fd_[64];
    int sv[2] = {-1, -1};
    assert_non_null(mkdtemp(dir));
    memset(&hl.src, 0, sizeof(hl.src));
    memset(&hl.dst, 0, sizeof(hl.dst));
    hl.records = 0;
    hl.blob[0] = 0;
    hl.nicer = 0;
    fake_hv_reset();
    seen.fail_rename = fail_rename_next;
    seen.redirty_at = redirty_next;

    const char *src_args[4] = {"test:on=1", NULL, NULL, NULL};
    const char *dst_args[4] = {"test:on=1", NULL, NULL, NULL};
    if (fail_src) {
        snprintf(fs, sizeof(fs), "test:fail=%s", fail_src);
        src_args[1] = fs;
    }
    if (fail_dst) {
        snprintf(fd_, sizeof(fd_), "test:fail=%s", fail_dst);
        dst_args[1] = fd_;
    }

    struct dst_job j = {.ctx = new_ctx(), .fd = -1};
    mig_recv_params_init(&j.p);
    j.p.backend = "fake:";
    j.p.state_dir = dir;
    j.p.hook_args = dst_args;
    if (channels) {
        snprintf(sock, sizeof(sock), "unix:%s/mig.sock", dir);
        j.uri = sock;
        j.p.link.channels = 2;
        snprintf(uri, sizeof(uri), "%s", sock);
    } else {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        j.fd = sv[1];
        snprintf(uri, sizeof(uri), "fd:%d,%d", sv[0], dup(sv[0]));
    }
    pthread_t thr;
    assert_int_equal(pthread_create(&thr, NULL, dst_main, &j), 0);
    if (channels)
        usleep(200000); /* the listener binds */

    struct mig_ctx *sctx = new_ctx();
    takeback[0] = 0;
    if (capture_takeback) {
        mig_ctx_set_logger(sctx, takeback_log, NULL);
        mig_ctx_set_log_level(sctx, MIG_LOG_DEBUG);
    }
    struct mig_params p;
    mig_params_init(&p);
    p.domain = "fake:hooked";
    p.destination = uri;
    p.state_dir = dir;
    p.max_rounds = 2;
    p.hook_args = src_args;
    p.link.channels = channels ? 2 : 1;
    struct mig_session *s = NULL;
    assert_int_equal(mig_session_new(sctx, &p, &s), 0);
    res->src_rc = mig_session_run(s);
    snprintf(res->err, sizeof(res->err), "%s", mig_session_error(s));
    mig_session_free(s);
    mig_ctx_free(sctx);

    j.stop = 1;
    pthread_join(thr, NULL);
    res->dst_rc = j.rc;
    mig_ctx_free(j.ctx);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    print_message("source: %s\ndest:   %s\n", hl.src, hl.dst);
}

static void migrate_with_rename_failure(struct result *res)
{
    fail_rename_next = true;
    migrate(false, NULL, NULL, res);
    fail_rename_next = false;
}

static void assert_source_unchanged(void)
{
    assert_false(seen.src_suspended_at_end);
    assert_int_equal(seen.src_destroyed, 0);
    assert_false(seen.dst_committed);
}

/* ---- tests --------------------------------------------------------------------- */

static void assert_helpers_nicer(int n)
{
    if (hl.nicer < 0)
        fail_msg("this test runs at nice 10 or more: the helper cannot be 10 levels nicer");
    assert_int_equal(hl.nicer, n);
}

static void test_order_success_one_stream(void **state)
{
    (void)state;
    struct result r;
    migrate(false, NULL, NULL, &r);
    assert_int_equal(r.src_rc, 0);
    assert_string_equal(hl.src, "begin round0 round1 stopcopy round2F ready commit settle");
    assert_string_equal(hl.dst, "dst_begin dst_ready dst_commit");
    assert_string_equal(hl.blob, "hello peer");
    assert_int_equal(hl.records, 3);
    assert_helpers_nicer(1); /* the one data channel's helper */
    assert_int_equal(seen.src_destroyed, 1);
    assert_true(seen.dst_committed);
    /* as xl, the source gave its name up before COMMIT */
    assert_int_equal(seen.src_renames, 1);
    assert_string_equal(seen.src_name, "hooked--migratedaway");
}

/* The source cannot give its name up: COMMIT is never sent, the source runs
 * on, the destination discards. */
static void test_rename_fails_commit_not_sent(void **state)
{
    (void)state;
    struct result r;
    migrate_with_rename_failure(&r);
    assert_true(r.src_rc < 0);
    assert_int_equal(seen.src_renames, 0);
    assert_int_equal(seen.src_resumes, 1);
    assert_source_unchanged();
    assert_true(seen.dst_discarded);
}

static void test_order_success_two_channels(void **state)
{
    (void)state;
    struct result r;
    migrate(true, NULL, NULL, &r);
    assert_int_equal(r.src_rc, 0);
    assert_string_equal(hl.src, "begin round0 round1 stopcopy round2F ready commit settle");
    assert_string_equal(hl.dst, "dst_begin dst_ready dst_commit");
    assert_int_equal(hl.records, 6); /* 3 rounds x 2 channels, all before READY */
    assert_helpers_nicer(2); /* one helper per data channel */
    assert_true(seen.dst_committed);
}

static void test_dst_begin_fails_before_round0(void **state)
{
    (void)state;
    struct result r;
    migrate(false, NULL, "dst_begin", &r);
    assert_int_equal(r.src_rc, -MIG_EABORTED);
    assert_non_null(strstr(r.err, "test hook refuses at dst_begin"));
    assert_string_equal(hl.src, "begin abort(EABORTED)");
    assert_string_equal(hl.dst, "dst_begin abort(ENOSPC)");
    assert_int_equal(seen.src_logdirty_enables, 0); /* no round started */
    assert_source_unchanged();
    assert_true(seen.dst_discarded);
}

static void test_src_begin_fails(void **state)
{
    (void)state;
    struct result r;
    migrate(false, "begin", NULL, &r);
    assert_int_equal(r.src_rc, -MIG_ENOSPC);
    assert_non_null(strstr(r.err, "test hook refuses at begin"));
    assert_string_equal(hl.src, "begin abort(ENOSPC)");
    assert_string_equal(hl.dst, ""); /* the begin never left */
    assert_int_equal(seen.src_logdirty_enables, 0);
    assert_source_unchanged();
}

static void test_src_round_fails(void **state)
{
    (void)state;
    struct result r;
    migrate(true, "round1", NULL, &r);
    assert_int_equal(r.src_rc, -MIG_ENOSPC);
    assert_string_equal(hl.src, "begin round0 round1 abort(ENOSPC)");
    /* with several channels the destination may see a data channel close
     * (EPEER) before the ABORT on the control channel: either way, once */
    assert_int_equal(strncmp(hl.dst, "dst_begin abort(E", 17), 0);
    assert_null(strstr(hl.dst + 11, "abort(E"));
    assert_source_unchanged();
    assert_true(seen.dst_discarded);
}

static void test_src_stopcopy_fails_resumes(void **state)
{
    (void)state;
    struct result r;
    migrate(false, "stopcopy", NULL, &r);
    assert_int_equal(r.src_rc, -MIG_ENOSPC);
    assert_string_equal(hl.src, "begin round0 round1 stopcopy abort(ENOSPC)");
    assert_string_equal(hl.dst, "dst_begin abort(EABORTED)");
    assert_int_equal(seen.src_resumes, 1);
    assert_source_unchanged();
}

static void test_src_final_round_fails(void **state)
{
    (void)state;
    struct result r;
    migrate(false, "round2F", NULL, &r);
    assert_int_equal(r.src_rc, -MIG_ENOSPC);
    assert_string_equal(hl.src, "begin round0 round1 stopcopy round2F abort(ENOSPC)");
    assert_string_equal(hl.dst, "dst_begin abort(EABORTED)");
    assert_int_equal(seen.src_resumes, 1);
    assert_source_unchanged();
}

static void test_dst_ready_fails(void **state)
{
    (void)state;
    struct result r;
    migrate(true, NULL, "dst_ready", &r);
    assert_int_equal(r.src_rc, -MIG_EABORTED);
    assert_non_null(strstr(r.err, "test hook refuses at dst_ready"));
    assert_string_equal(hl.src, "begin round0 round1 stopcopy round2F abort(EABORTED)");
    assert_string_equal(hl.dst, "dst_begin dst_ready abort(ENOSPC)");
    assert_int_equal(seen.src_resumes, 1);
    assert_source_unchanged();
    assert_true(seen.dst_discarded);
}

static void test_src_ready_fails_commit_not_sent(void **state)
{
    (void)state;
    struct result r;
    migrate(false, "ready", NULL, &r);
    assert_int_equal(seen.src_renames, 0); /* the name is given up only for COMMIT */
    assert_int_equal(r.src_rc, -MIG_ENOSPC);
    assert_string_equal(hl.src, "begin round0 round1 stopcopy round2F ready abort(ENOSPC)");
    assert_string_equal(hl.dst, "dst_begin dst_ready abort(EABORTED)");
    assert_int_equal(seen.src_resumes, 1);
    assert_source_unchanged();
    assert_true(seen.dst_discarded);
}

static void test_after_commit_failure_is_not_rolled_back(void **state)
{
    (void)state;
    struct result r;
    migrate(false, "commit", "dst_commit", &r);
    assert_int_equal(r.src_rc, 0);
    assert_string_equal(hl.src, "begin round0 round1 stopcopy round2F ready commit settle");
    assert_string_equal(hl.dst, "dst_begin dst_ready dst_commit");
    assert_int_equal(seen.src_destroyed, 1);
    assert_true(seen.dst_committed);
}

/* ---- pages read while the guest wrote them (PAGES_CRC) ------------------------ */

#ifdef MIG_FAULT_INJECTION
/* What the fake source's memory holds (f_open, filled with 'salt'). */
static void assert_dst_mem_is_source(uint8_t salt)
{
    for (unsigned i = 0; i < NPAGES; i++)
        for (unsigned b = 0; b < 4096; b += 1021)
            assert_int_equal(seen.dst_mem[i * 4096 + b], i % 3 ? (uint8_t)(i + 1 + salt) : 0);
}

/* Migrate with MIG_FAULT set (both sides' contexts read it). */
static void migrate_fault(bool channels, const char *faults, unsigned redirty_at,
                          struct result *res)
{
    setenv("MIG_FAULT", faults, 1);
    redirty_next = redirty_at;
    migrate(channels, NULL, NULL, res);
    redirty_next = 0;
    unsetenv("MIG_FAULT");
}
#endif

/* A page of round 0 arrives torn (its data does not match its CRC, as when
 * the guest wrote it between the sender's CRC and the socket's copy); the
 * write dirtied it, round 1 sends it again: the migration commits. */
static void test_torn_page_resent(void **state)
{
    (void)state;
#ifdef MIG_FAULT_INJECTION
    for (int channels = 0; channels < 2; channels++) {
        struct result r;
        migrate_fault(channels, "src-torn-page@0=corrupt", 1, &r);
        assert_int_equal(r.src_rc, 0);
        assert_true(seen.dst_committed);
        assert_int_equal(seen.src_destroyed, 1);
        assert_dst_mem_is_source(0);
    }
#else
    print_message("not a fault-injection build: src-torn-page cannot fire\n");
    skip();
#endif
}

/* The same page never comes again (nothing dirtied it): it was damaged in
 * transit. The destination refuses READY, the source runs on. */
static void test_damaged_page_not_resent_aborts(void **state)
{
    (void)state;
#ifdef MIG_FAULT_INJECTION
    struct result r;
    migrate_fault(false, "src-torn-page@0=corrupt", 0, &r);
    assert_int_equal(r.src_rc, -MIG_EABORTED); /* the destination refused */
    assert_non_null(strstr(r.err, "1 pages arrived damaged and never came again (the first: page 1)"));
    assert_source_unchanged();
    assert_int_equal(seen.src_resumes, 1);
    assert_true(seen.dst_discarded);
    /* in the final round (guest paused, every page dirty), the same */
    migrate_fault(false, "src-torn-page@2=corrupt", 2, &r);
    assert_int_equal(r.src_rc, -MIG_EABORTED); /* the destination refused */
    assert_source_unchanged();
#else
    print_message("not a fault-injection build: src-torn-page cannot fire\n");
    skip();
#endif
}

/* The helper gets no CPU for a second (src-helper-late stalls it before it
 * starts its first job): the worker takes back each batch the helper has
 * not started and sends it with zero checks and CRCs of its own; every page
 * arrives intact and the migration commits. */
static void test_helper_late_batches_taken_back(void **state)
{
    (void)state;
#ifdef MIG_FAULT_INJECTION
    struct result r;
    capture_takeback = true;
    fake_hv_salt = 100; /* other pages than earlier tests' (their batches' CRCs) */
    migrate_fault(false, "src-helper-late=stall:1", 0, &r);
    fake_hv_salt = 0;
    capture_takeback = false;
    print_message("%s", takeback);
    assert_int_equal(r.src_rc, 0);
    assert_true(seen.dst_committed);
    assert_int_equal(seen.src_destroyed, 1);
    assert_dst_mem_is_source(100);
    /* round 0 is one batch (NPAGES pages), posted as the helper stalled */
    assert_non_null(strstr(takeback, "round 0: 1 of 1 batches taken back"));
#else
    print_message("not a fault-injection build: src-helper-late cannot fire\n");
    skip();
#endif
}

/* A source that does not offer PAGES_CRC (an older version) sends PAGES
 * from a stable copy; the destination takes them as before. */
static void test_legacy_pages(void **state)
{
    (void)state;
#ifdef MIG_FAULT_INJECTION
    struct result r;
    migrate_fault(true, "src-legacy-pages=error", 1, &r);
    assert_int_equal(r.src_rc, 0);
    assert_true(seen.dst_committed);
    assert_dst_mem_is_source(0);
#else
    print_message("not a fault-injection build: src-legacy-pages cannot fire\n");
    skip();
#endif
}

static void test_no_instance_no_hook_traffic(void **state)
{
    (void)state;
    /* A class with nothing to do for a migration costs nothing on the wire. */
    struct mig_ctx *ctx = new_ctx();
    const char *args[] = {"blk:map=a=b", NULL};
    struct mig__dom_info info = {.name = "x"};
    struct mig__hook_env env = {.ctx = ctx, .role = MIG_ROLE_SOURCE, .args = args, .info = &info};
    struct mig__hooks *hs = NULL;
    assert_int_equal(mig__hooks_src_new(&env, &hs), 0);
    assert_int_equal(mig__hooks_count(hs), 0);
    mig__hooks_src_abort(hs, -MIG_EIO); /* nothing begun: no call */
    mig__hooks_free(hs);
    assert_string_equal(mig__hook_arg(&env, "blk", "map", 0), "a=b");
    assert_null(mig__hook_arg(&env, "blk", "map", 1));
    assert_null(mig__hook_arg(&env, "bl", "map", 0));
    assert_int_equal(mig__hook_register(ctx, &test_class), -MIG_EEXIST);
    mig_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_instance_no_hook_traffic),
        cmocka_unit_test(test_order_success_one_stream),
        cmocka_unit_test(test_rename_fails_commit_not_sent),
        cmocka_unit_test(test_order_success_two_channels),
        cmocka_unit_test(test_dst_begin_fails_before_round0),
        cmocka_unit_test(test_src_begin_fails),
        cmocka_unit_test(test_src_round_fails),
        cmocka_unit_test(test_src_stopcopy_fails_resumes),
        cmocka_unit_test(test_src_final_round_fails),
        cmocka_unit_test(test_dst_ready_fails),
        cmocka_unit_test(test_src_ready_fails_commit_not_sent),
        cmocka_unit_test(test_after_commit_failure_is_not_rolled_back),
        cmocka_unit_test(test_torn_page_resent),
        cmocka_unit_test(test_damaged_page_not_resent_aborts),
        cmocka_unit_test(test_legacy_pages),
        cmocka_unit_test(test_helper_late_batches_taken_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
