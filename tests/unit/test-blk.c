/*
 * Unit tests for the block mirror (libmig/src/blk/): real image files in a
 * temporary folder, real threads writing through the export functions while
 * rounds run. A loopback io hands the source hook's records straight to the
 * destination hook (the same code the engine calls), and a last test runs a
 * whole migration in-process (fake backend, socket pair) with a managed disk
 * registered for the domain. Each checks the destination image byte for byte
 * against the source after the last acknowledged write.
 */
#include <config.h>

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <libmig/blk.h>
#include <libmig/migrate.h>

#define MIG_LOG_MODULE "test"
#include "blk.h"
#include "fake-hv.h"
#include "session-internal.h"

#define DISK (16u << 20)

static char dir[64];
static char src_path[128], dst_path[128], map_arg[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test-blk-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(src_path, sizeof(src_path), "%s/src.img", dir);
    snprintf(dst_path, sizeof(dst_path), "%s/dst.img", dir);
    snprintf(map_arg, sizeof(map_arg), "blk:map=%s=%s", src_path, dst_path);
    int fd = open(src_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK), 0);
    /* 1 MiB of data at 2 MiB, 4 KiB at 10 MiB, 64 KiB of allocated zeroes at 12 MiB */
    uint8_t *buf = malloc(1 << 20);
    for (unsigned i = 0; i < 1u << 20; i++)
        buf[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(pwrite(fd, buf, 1 << 20, 2 << 20), 1 << 20);
    assert_int_equal(pwrite(fd, buf, 4096, 10 << 20), 4096);
    memset(buf, 0, 65536);
    assert_int_equal(pwrite(fd, buf, 65536, 12 << 20), 65536);
    assert_int_equal(fsync(fd), 0);
    close(fd);
    free(buf);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static struct mig_ctx *new_ctx(void)
{
    struct mig_ctx *ctx = NULL;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_log_level(ctx, getenv("TEST_VERBOSE") ? MIG_LOG_DEBUG : MIG_LOG_ERROR);
    return ctx;
}

static void assert_same_files(const char *a, const char *b)
{
    int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
    struct stat sa, sb;
    assert_true(fa >= 0 && fb >= 0);
    assert_int_equal(fstat(fa, &sa), 0);
    assert_int_equal(fstat(fb, &sb), 0);
    assert_int_equal(sa.st_size, sb.st_size);
    uint8_t *x = malloc(1 << 20), *y = malloc(1 << 20);
    for (off_t off = 0; off < sa.st_size; off += 1 << 20) {
        assert_int_equal(pread(fa, x, 1 << 20, off), 1 << 20);
        assert_int_equal(pread(fb, y, 1 << 20, off), 1 << 20);
        if (memcmp(x, y, 1 << 20) != 0)
            fail_msg("images differ in the MiB at %lld", (long long)off);
    }
    free(x);
    free(y);
    close(fa);
    close(fb);
}

/* ---- loopback: the source hook's records go straight to the destination hook */

struct loop {
    struct mig__hook_io io;
    struct mig__hook *dst;
    pthread_mutex_t lock;  /* one record at a time, as on one channel */
    uint64_t bytes;
    unsigned records;
};

static int loop_send(struct mig__hook_io *io, unsigned chan, uint32_t type,
                     const struct iovec *iov, unsigned n)
{
    struct loop *l = (struct loop *)io;
    (void)chan;
    size_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += iov[i].iov_len;
    uint8_t *buf = malloc(len ? len : 1), *p = buf;
    for (unsigned i = 0; i < n; i++) {
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    struct mig__rec rec = {.type = type, .len = (uint32_t)len, .payload = buf};
    pthread_mutex_lock(&l->lock);
    int rc = l->dst->ops->dst_record(l->dst, &rec);
    l->bytes += len;
    l->records++;
    pthread_mutex_unlock(&l->lock);
    free(buf);
    return rc;
}

static int loop_tick(struct mig__hook_io *io)
{
    (void)io;
    return 0;
}

struct pair {
    struct mig_ctx *ctx;
    struct mig__blk_mirror *m;
    struct mig__hook *src, *dst;
    struct loop loop;
};

/* Open the mirror, make both hook instances and begin them. */
static int pair_begin(struct pair *pr, uint64_t dst_free_check_allocated_override)
{
    (void)dst_free_check_allocated_override;
    pr->ctx = new_ctx();
    assert_int_equal(mig__blk_mirror_open(pr->ctx, src_path, &pr->m), 0);
    assert_int_equal(mig__blk_register(pr->ctx, "dom", pr->m), 0);
    struct mig__dom_info info = {.name = "dom"};
    const char *src_args[] = {NULL};
    const char *dst_args[] = {map_arg, NULL};
    struct mig__hook_env se = {.ctx = pr->ctx, .role = MIG_ROLE_SOURCE, .args = src_args,
                               .info = &info};
    struct mig__hook_env de = {.ctx = pr->ctx, .role = MIG_ROLE_DESTINATION, .args = dst_args,
                               .info = &info};
    assert_int_equal(mig__blk_hook_class.src_new(&se, &pr->src), 0);
    assert_non_null(pr->src);
    assert_int_equal(mig__blk_hook_class.dst_new(&de, &pr->dst), 0);
    pr->src->cls = pr->dst->cls = &mig__blk_hook_class;
    pr->loop.io = (struct mig__hook_io){.send = loop_send, .tick = loop_tick, .nchannels = 2};
    pr->loop.dst = pr->dst;
    pthread_mutex_init(&pr->loop.lock, NULL);
    void *blob = NULL;
    size_t len = 0;
    assert_int_equal(pr->src->ops->src_begin(pr->src, &pr->loop.io, &blob, &len), 0);
    int rc = pr->dst->ops->dst_begin(pr->dst, blob, len);
    free(blob);
    return rc;
}

static void pair_free(struct pair *pr)
{
    pr->src->ops->free(pr->src);
    pr->dst->ops->free(pr->dst);
    mig__blk_unregister(pr->ctx, pr->m);
    mig__blk_mirror_free(pr->m);
    pthread_mutex_destroy(&pr->loop.lock);
    mig_ctx_free(pr->ctx);
}

static void test_sparse_bulk_copy(void **state)
{
    (void)state;
    struct pair pr = {0};
    struct mig__blk_stats st;
    assert_int_equal(pair_begin(&pr, 0), 0);
    mig__blk_mirror_stats(pr.m, &st);
    /* holes are not out of sync: 1 MiB + one 64 KiB region + the zero region */
    assert_int_equal(st.pending_bytes, (1u << 20) + 2 * MIG_BLK_REGION);
    assert_int_equal(pr.src->ops->src_pending_bytes(pr.src), st.pending_bytes);
    assert_int_equal(pr.src->ops->src_round(pr.src, 0, false), 0);
    mig__blk_mirror_stats(pr.m, &st);
    assert_int_equal(st.sent_bytes, (1u << 20) + MIG_BLK_REGION); /* zero region skipped */
    assert_int_equal(st.zero_bytes, 0);
    assert_int_equal(st.pending_bytes, 0);
    assert_int_equal(pr.dst->ops->dst_ready(pr.dst), 0);
    assert_same_files(src_path, dst_path);
    /* the destination stayed sparse */
    struct stat sb;
    assert_int_equal(stat(dst_path, &sb), 0);
    assert_true((uint64_t)sb.st_blocks * 512 < 4u << 20);
    pair_free(&pr);
}

struct writer {
    struct mig__blk_mirror *m;
    volatile int stop;
    uint64_t writes, refused;
    unsigned seed;
    bool zeroes;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    uint8_t buf[4096];
    while (!w->stop) {
        uint64_t off = (uint64_t)(rand_r(&w->seed) % (DISK / 4096)) * 4096;
        memset(buf, (int)(w->writes & 0xff), sizeof(buf));
        int rc = (w->zeroes && w->writes % 7 == 0)
                     ? mig__blk_export_write_zeroes(w->m, off, 4096, true, false)
                     : mig__blk_export_pwrite(w->m, off, 4096, buf, w->writes % 5 == 0);
        if (rc == -MIG_ECANCELLED) {
            w->refused++;
            break;
        }
        assert_int_equal(rc, 0);
        w->writes++;
        if (w->writes % 64 == 0)
            usleep(1000);
    }
    return NULL;
}

static void test_rounds_forwarding_switchover(void **state)
{
    (void)state;
    struct pair pr = {0};
    struct mig__blk_stats st;
    struct writer w = {.seed = 42, .zeroes = true};
    pthread_t thr;
    assert_int_equal(pair_begin(&pr, 0), 0);
    w.m = pr.m;
    assert_int_equal(pthread_create(&thr, NULL, writer_main, &w), 0);
    for (uint32_t r = 0; r < 4; r++) {
        assert_int_equal(pr.src->ops->src_round(pr.src, r, false), 0);
        usleep(50000);
    }
    mig__blk_mirror_stats(pr.m, &st);
    assert_true(st.forwarding);
    uint64_t writes_before = w.writes;
    usleep(100000);
    /* switchover: writes held, the residue goes, then the disk has moved */
    assert_int_equal(pr.src->ops->src_stopcopy(pr.src), 0);
    assert_int_equal(pr.src->ops->src_round(pr.src, 4, true), 0);
    assert_int_equal(pr.dst->ops->dst_ready(pr.dst), 0);
    assert_int_equal(pr.src->ops->src_commit(pr.src), 0);
    w.stop = 1;
    pthread_join(thr, NULL);
    mig__blk_mirror_stats(pr.m, &st);
    print_message("writes %llu, forwarded %llu writes / %llu KiB, after suspend %llu KiB, "
                  "rounds sent %llu KiB\n",
                  (unsigned long long)w.writes, (unsigned long long)st.forwarded_writes,
                  (unsigned long long)(st.forwarded_bytes >> 10),
                  (unsigned long long)(st.final_bytes >> 10),
                  (unsigned long long)(st.sent_bytes >> 10));
    assert_true(w.writes > writes_before);
    assert_true(st.forwarded_writes > 0);
    /* forwarding kept the residue small: well under 5% of the disk */
    assert_true(st.final_bytes < DISK / 20);
    assert_true(mig__blk_mirror_moved(pr.m));
    uint8_t b[4096] = {0};
    assert_int_equal(mig__blk_export_pwrite(pr.m, 0, 4096, b, false), -MIG_ECANCELLED);
    assert_same_files(src_path, dst_path);
    pair_free(&pr);
}

static void test_abort_keeps_source_removes_target(void **state)
{
    (void)state;
    struct pair pr = {0};
    assert_int_equal(pair_begin(&pr, 0), 0);
    assert_int_equal(pr.src->ops->src_round(pr.src, 0, false), 0);
    assert_int_equal(pr.src->ops->src_stopcopy(pr.src), 0);
    pr.src->ops->src_abort(pr.src, -MIG_EPEER);
    pr.dst->ops->dst_abort(pr.dst, -MIG_EPEER);
    /* the source disk takes writes again; the target we created is gone */
    uint8_t b[4096];
    memset(b, 0x5a, sizeof(b));
    assert_int_equal(mig__blk_export_pwrite(pr.m, 4096, 4096, b, true), 0);
    uint8_t c[4096];
    assert_int_equal(mig__blk_export_pread(pr.m, 4096, 4096, c), 0);
    assert_memory_equal(b, c, 4096);
    assert_int_equal(access(dst_path, F_OK), -1);
    pair_free(&pr);
}

static void test_destination_refuses_bad_input(void **state)
{
    (void)state;
    struct pair pr = {0};
    assert_int_equal(pair_begin(&pr, 0), 0);
    uint8_t rec[16 + 8] = {0};
    uint64_t off = DISK - 4;
    memcpy(rec + 8, &off, 8);
    struct mig__rec r = {.type = MIG_REC_BLOCK_EXTENT, .len = sizeof(rec), .payload = rec};
    assert_int_equal(pr.dst->ops->dst_record(pr.dst, &r), -MIG_EPROTO); /* past the end */
    uint32_t disk = 3;
    memcpy(rec, &disk, 4);
    off = 0;
    memcpy(rec + 8, &off, 8);
    assert_int_equal(pr.dst->ops->dst_record(pr.dst, &r), -MIG_EPROTO); /* no such disk */
    pr.src->ops->src_abort(pr.src, -MIG_EPROTO);
    pr.dst->ops->dst_abort(pr.dst, -MIG_EPROTO);
    pair_free(&pr);

    /* malformed begin blobs */
    struct mig_ctx *ctx = new_ctx();
    struct mig__dom_info info = {.name = "dom"};
    const char *args[] = {map_arg, NULL};
    struct mig__hook_env de = {.ctx = ctx, .role = MIG_ROLE_DESTINATION, .args = args,
                               .info = &info};
    struct mig__hook *h = NULL;
    uint8_t blob[64] = {1, 0, 0, 0, 1, 0, 0, 0};
    uint64_t size = DISK, alloc = DISK * 2;
    memcpy(blob + 8, &size, 8);
    memcpy(blob + 16, &alloc, 8); /* allocated > size */
    assert_int_equal(mig__blk_hook_class.dst_new(&de, &h), 0);
    h->cls = &mig__blk_hook_class;
    assert_int_equal(h->ops->dst_begin(h, blob, 7), -MIG_EPROTO);
    assert_int_equal(h->ops->dst_begin(h, blob, sizeof(blob)), -MIG_EPROTO);
    h->ops->free(h);
    mig_ctx_free(ctx);
}

static void test_target_checks_before_round0(void **state)
{
    (void)state;
    struct mig__blk_target *t = NULL;
    char why[256] = "";
    struct mig_ctx *ctx = new_ctx();
    /* more data than the filesystem holds */
    assert_int_equal(mig__blk_target_open(ctx, dst_path, 1ull << 50, 1ull << 49, &t, why,
                                          sizeof(why)),
                     -MIG_ENOSPC);
    assert_non_null(strstr(why, "free on its filesystem"));
    assert_int_equal(access(dst_path, F_OK), -1); /* nothing left behind */
    assert_int_equal(mig__blk_target_open(ctx, "/dev/null", DISK, 0, &t, why, sizeof(why)),
                     -MIG_ENOTSUP);

    /* no --disk-map for the disk: refused at begin, naming the option */
    struct pair pr = {0};
    snprintf(map_arg, sizeof(map_arg), "blk:map=/other.img=%s", dst_path);
    assert_int_equal(pair_begin(&pr, 0), -MIG_EINVAL);
    assert_non_null(strstr(pr.dst->why, "--disk-map"));
    pr.src->ops->src_abort(pr.src, -MIG_EINVAL);
    pr.dst->ops->dst_abort(pr.dst, -MIG_EINVAL);
    pair_free(&pr);
    snprintf(map_arg, sizeof(map_arg), "blk:map=src.img=%s", dst_path); /* by file name */
    assert_int_equal(pair_begin(&pr, 0), 0);
    pr.src->ops->src_abort(pr.src, -MIG_EINVAL);
    pr.dst->ops->dst_abort(pr.dst, -MIG_EINVAL);
    pair_free(&pr);
    snprintf(map_arg, sizeof(map_arg), "blk:map=%s=%s", src_path, dst_path);
    mig_ctx_free(ctx);
}

/* ---- a whole migration through the engine --------------------------------- */

struct dst_job {
    struct mig_ctx *ctx;
    struct mig_recv_params p;
    int fd;
    int rc;
};

static void *dst_main(void *arg)
{
    struct dst_job *j = arg;
    j->rc = mig_receive_fds(j->ctx, &j->p, j->fd, dup(j->fd));
    return NULL;
}

/* remote: the disk is served by a managed-disk server (as a daemon or a
 * test-guest host would), found through its control socket under the
 * state directory, and mirrored over it; else registered in-process. */
static void migrate_disk(bool remote, const char *map, int *src_rc, char *err, size_t errlen,
                         struct mig__blk_stats *st, struct writer *w)
{
    int sv[2];
    char uri[64];
    const char *dst_args[] = {map, NULL};
    fake_hv_reset();
    struct dst_job j = {.ctx = new_ctx()};
    assert_int_equal(mig__hv_register(j.ctx, &fake_hv_ops), 0);
    mig_recv_params_init(&j.p);
    j.p.backend = "fake:";
    j.p.state_dir = dir;
    j.p.hook_args = dst_args;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    j.fd = sv[1];
    snprintf(uri, sizeof(uri), "fd:%d,%d", sv[0], dup(sv[0]));
    pthread_t thr, wthr;
    assert_int_equal(pthread_create(&thr, NULL, dst_main, &j), 0);

    struct mig_ctx *sctx = new_ctx();
    assert_int_equal(mig__hv_register(sctx, &fake_hv_ops), 0);
    struct mig__blk_mirror *m = NULL;
    struct mig__blk_server *srv = NULL;
    char sock[160];
    snprintf(sock, sizeof(sock), "%s/disk.nbd", dir);
    struct mig_disk_serve_params sp = {.path = src_path, .domain = "hooked", .name = "disk0",
                                       .state_dir = dir, .socket = sock, .stop_fd = -1};
    struct mig_ctx *dctx = new_ctx(); /* the server's process */
    if (remote) {
        assert_int_equal(mig__blk_server_start(dctx, &sp, &srv), 0);
        m = mig__blk_server_mirror(srv);
    } else {
        assert_int_equal(mig__blk_mirror_open(sctx, src_path, &m), 0);
        assert_int_equal(mig__blk_register(sctx, "hooked", m), 0); /* the fake domain's name */
    }
    w->m = m;
    assert_int_equal(pthread_create(&wthr, NULL, writer_main, w), 0);
    struct mig_params p;
    mig_params_init(&p);
    p.domain = "fake:hooked";
    p.destination = uri;
    p.state_dir = dir;
    p.max_rounds = 5;
    struct mig_session *s = NULL;
    assert_int_equal(mig_session_new(sctx, &p, &s), 0);
    *src_rc = mig_session_run(s);
    snprintf(err, errlen, "%s", mig_session_error(s));
    mig_session_free(s);
    w->stop = 1;
    pthread_join(wthr, NULL);
    mig__blk_mirror_stats(m, st);
    pthread_join(thr, NULL);
    if (remote) {
        mig__blk_server_free(srv);
        char ctl[200];
        snprintf(ctl, sizeof(ctl), "%s/disks/hooked/disk0.ctl", dir);
        assert_int_equal(access(ctl, F_OK), -1); /* the control socket goes with it */
    } else {
        mig__blk_unregister(sctx, m);
        mig__blk_mirror_free(m);
    }
    mig_ctx_free(dctx);
    mig_ctx_free(sctx);
    mig_ctx_free(j.ctx);
}

static void migrate_with_disk(const char *map, int *src_rc, char *err, size_t errlen,
                              struct mig__blk_stats *st, struct writer *w)
{
    migrate_disk(false, map, src_rc, err, errlen, st, w);
}

static void test_engine_migrates_served_disk(void **state)
{
    (void)state;
    int rc;
    char err[512];
    struct mig__blk_stats st;
    struct writer w = {.seed = 11};
    migrate_disk(true, map_arg, &rc, err, sizeof(err), &st, &w);
    assert_int_equal(rc, 0);
    print_message("served disk: writes %llu (refused after COMMIT: %llu), %u rounds, "
                  "forwarded %llu writes, after suspend %llu KiB\n",
                  (unsigned long long)w.writes, (unsigned long long)w.refused, st.rounds,
                  (unsigned long long)st.forwarded_writes,
                  (unsigned long long)(st.final_bytes >> 10));
    assert_true(seen.dst_committed);
    assert_true(w.writes > 0);
    assert_true(st.forwarded_writes > 0);
    assert_true(st.final_bytes < DISK / 20);
    assert_true(w.refused <= 1); /* a write after COMMIT is refused (ESHUTDOWN), then it stops */
    assert_same_files(src_path, dst_path);
}

static void test_served_disk_stays_after_failure(void **state)
{
    (void)state;
    int rc;
    char err[512];
    struct mig__blk_stats st;
    struct writer w = {.seed = 13};
    char bad[300];
    snprintf(bad, sizeof(bad), "blk:map=/nowhere.img=%s", dst_path);
    migrate_disk(true, bad, &rc, err, sizeof(err), &st, &w);
    assert_int_equal(rc, -MIG_EABORTED);
    assert_non_null(strstr(err, "--disk-map"));
    assert_int_equal(st.sent_bytes, 0);
    assert_false(st.forwarding); /* the server stopped the mirror when the link closed */
    assert_true(w.refused == 0);
    assert_int_equal(access(dst_path, F_OK), -1);
}

static void test_engine_migrates_disk_under_writes(void **state)
{
    (void)state;
    int rc;
    char err[512];
    struct mig__blk_stats st;
    struct writer w = {.seed = 7};
    migrate_with_disk(map_arg, &rc, err, sizeof(err), &st, &w);
    assert_int_equal(rc, 0);
    print_message("writes %llu (refused after COMMIT: %llu), %u rounds, forwarded %llu writes, "
                  "after suspend %llu KiB\n",
                  (unsigned long long)w.writes, (unsigned long long)w.refused, st.rounds,
                  (unsigned long long)st.forwarded_writes,
                  (unsigned long long)(st.final_bytes >> 10));
    assert_true(seen.dst_committed);
    assert_true(w.writes > 0);
    assert_true(st.forwarded_writes > 0); /* synchronous forwarding was entered */
    assert_true(st.final_bytes < DISK / 20);
    assert_same_files(src_path, dst_path);
}

static void test_engine_no_map_fails_before_round0(void **state)
{
    (void)state;
    int rc;
    char err[512];
    struct mig__blk_stats st;
    struct writer w = {.seed = 9};
    char bad[300];
    snprintf(bad, sizeof(bad), "blk:map=/nowhere.img=%s", dst_path);
    migrate_with_disk(bad, &rc, err, sizeof(err), &st, &w);
    assert_int_equal(rc, -MIG_EABORTED);
    assert_non_null(strstr(err, "--disk-map"));
    assert_int_equal(seen.src_logdirty_enables, 0); /* before round 0 */
    assert_false(seen.src_suspended_at_end);
    assert_int_equal(st.sent_bytes, 0);
    assert_false(st.forwarding);
    assert_int_equal(access(dst_path, F_OK), -1);
    assert_true(w.refused == 0); /* the source disk kept taking writes */
}

/* The out-of-sync log survives a crash: a child writes through the export
 * with the log on, then dies by SIGKILL (no clean shutdown); the log a new
 * mirror loads marks every extent written, and no other. */
static const uint64_t oos_offs[] = {0, 5u << 20, (8u << 20) - 2048, 15u << 20};

static void test_oos_log_survives_crash(void **state)
{
    (void)state;
    char log[160];
    snprintf(log, sizeof(log), "%s/src.oos", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct mig_ctx *ctx = new_ctx();
        struct mig__blk_mirror *m = NULL;
        uint8_t buf[4096];
        memset(buf, 0x5a, sizeof(buf));
        if (mig__blk_mirror_open(ctx, src_path, &m) < 0 || mig__blk_mirror_persist(m, log) < 0)
            _exit(2);
        for (unsigned i = 0; i < sizeof(oos_offs) / sizeof(oos_offs[0]); i++)
            if (mig__blk_export_pwrite(m, oos_offs[i], 4096, buf, false) < 0) /* no FUA */
                _exit(3);
        if (mig__blk_export_write_zeroes(m, 11u << 20, 4096, true, false) < 0)
            _exit(4);
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    struct mig_ctx *ctx = new_ctx();
    struct mig__blk_mirror *m = NULL;
    assert_int_equal(mig__blk_mirror_open(ctx, src_path, &m), 0);
    assert_int_equal(mig__blk_mirror_persist(m, log), 0);
    uint64_t loaded = 0;
    /* extents 0, 1 (5 MiB), 1 and 2 (the write across 8 MiB), 2 (11 MiB), 3 */
    assert_int_equal(mig__blk_mirror_oos_bytes(m, &loaded, NULL), DISK);
    assert_int_equal(loaded, DISK);
    for (unsigned i = 0; i < sizeof(oos_offs) / sizeof(oos_offs[0]); i++) {
        assert_true(mig__blk_mirror_oos_test(m, oos_offs[i]));
        assert_true(mig__blk_mirror_oos_test(m, oos_offs[i] + 4095));
    }
    /* a completed sync (the disk moved) clears it, durably */
    mig__blk_mirror_release(m, true);
    assert_int_equal(mig__blk_mirror_oos_bytes(m, NULL, NULL), 0);
    mig__blk_mirror_free(m);
    assert_int_equal(mig__blk_mirror_open(ctx, src_path, &m), 0);
    assert_int_equal(mig__blk_mirror_persist(m, log), 0);
    assert_int_equal(mig__blk_mirror_oos_bytes(m, &loaded, NULL), 0);
    uint8_t buf[4096] = {1};
    assert_int_equal(mig__blk_export_pwrite(m, 9u << 20, 4096, buf, false), 0);
    assert_true(mig__blk_mirror_oos_test(m, 9u << 20));
    assert_false(mig__blk_mirror_oos_test(m, 0));
    assert_int_equal(mig__blk_mirror_oos_bytes(m, NULL, NULL), MIG_BLK_OOS_EXTENT);
    mig__blk_mirror_free(m);

    /* a damaged log (truncated) loads as every extent out of sync */
    assert_int_equal(truncate(log, 30), 0);
    assert_int_equal(mig__blk_mirror_open(ctx, src_path, &m), 0);
    assert_int_equal(mig__blk_mirror_persist(m, log), 0);
    assert_int_equal(mig__blk_mirror_oos_bytes(m, NULL, NULL), DISK);
    mig__blk_mirror_free(m);
    mig_ctx_free(ctx);
}

/* A log write that fails refuses the guest's write (not applied, EIO),
 * and the next write rewrites the whole log: nothing written goes
 * unmarked. Needs a fault-injection build (configure
 * --enable-fault-injection, as setup.sh builds). */
static void test_oos_log_write_failure(void **state)
{
    (void)state;
#ifdef MIG_FAULT_INJECTION
    char log[160];
    snprintf(log, sizeof(log), "%s/fail.oos", dir);
    setenv("MIG_FAULT", "blk-oos-write=error", 1);
    struct mig_ctx *ctx = new_ctx();
    unsetenv("MIG_FAULT");
    struct mig__blk_mirror *m = NULL;
    uint8_t buf[4096], got[4096];
    memset(buf, 0xab, sizeof(buf));
    assert_int_equal(mig__blk_mirror_open(ctx, src_path, &m), 0);
    assert_int_equal(mig__blk_mirror_persist(m, log), 0);
    /* 6 MiB is a hole: the refused write must not be there */
    assert_int_equal(mig__blk_export_pwrite(m, 6u << 20, 4096, buf, false), -MIG_EIO);
    assert_int_equal(mig__blk_export_pread(m, 6u << 20, 4096, got), 0);
    assert_int_equal(got[0], 0);
    assert_int_equal(mig__blk_export_pwrite(m, 9u << 20, 4096, buf, false), 0);
    mig__blk_mirror_free(m);
    assert_int_equal(mig__blk_mirror_open(ctx, src_path, &m), 0);
    assert_int_equal(mig__blk_mirror_persist(m, log), 0);
    assert_true(mig__blk_mirror_oos_test(m, 9u << 20));
    assert_true(mig__blk_mirror_oos_test(m, 6u << 20)); /* conservative: marked anyway */
    assert_false(mig__blk_mirror_oos_test(m, 0));
    mig__blk_mirror_free(m);
    mig_ctx_free(ctx);
#else
    print_message("not a fault-injection build: blk-oos-write cannot fire\n");
    skip(); /* reported as SKIPPED; CI's builds have fault injection */
#endif
}

/* The cost of the log: 4 KiB writes (no FUA) to clean extents (each
 * marks its extent: one log write + fdatasync), to marked extents, and
 * without the log. Reported, not asserted (shared, loaded machine). */
static uint64_t median_us(uint64_t *v, unsigned n)
{
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static void test_oos_log_write_cost(void **state)
{
    (void)state;
    char log[160];
    snprintf(log, sizeof(log), "%s/cost.oos", dir);
    struct mig_ctx *ctx = new_ctx();
    struct mig__blk_mirror *m = NULL;
    uint8_t buf[4096];
    memset(buf, 0x33, sizeof(buf));
    uint64_t t[3][20], med[3];
    for (int mode = 0; mode < 3; mode++) {
      for (unsigned rep = 0; rep < 5; rep++) {
        if (mode == 0)
            unlink(log);
        assert_int_equal(mig__blk_mirror_open(ctx, src_path, &m), 0);
        if (mode < 2)
            assert_int_equal(mig__blk_mirror_persist(m, log), 0);
        if (mode == 0)
            assert_int_equal(mig__blk_mirror_oos_bytes(m, NULL, NULL), 0);
        for (unsigned i = 0; i < 4; i++) { /* one write per 4 MiB extent */
            uint64_t t0 = mig__now_ns();
            assert_int_equal(mig__blk_export_pwrite(m, (uint64_t)i * MIG_BLK_OOS_EXTENT + 8192,
                                                    4096, buf, false), 0);
            t[mode][rep * 4 + i] = (mig__now_ns() - t0) / 1000u;
        }
        uint64_t syncs = 0;
        mig__blk_mirror_oos_bytes(m, NULL, &syncs);
        assert_int_equal(syncs, mode == 0 ? 4 : 0);
        mig__blk_mirror_free(m);
      }
      med[mode] = median_us(t[mode], 20);
    }
    print_message("oos log cost, 4 KiB write median: clean extent %" PRIu64
                  " us, marked extent %" PRIu64 " us, no log %" PRIu64 " us (loaded machine)\n",
                  med[0], med[1], med[2]);
    mig_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sparse_bulk_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oos_log_survives_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oos_log_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oos_log_write_cost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rounds_forwarding_switchover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_keeps_source_removes_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destination_refuses_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_checks_before_round0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_migrates_disk_under_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_no_map_fails_before_round0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_migrates_served_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_served_disk_stays_after_failure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
