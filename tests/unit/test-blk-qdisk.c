/*
 * The qdisk front end (libmig/src/blk/qdisk.c) against a real QEMU
 * (Debian's qemu-system-x86_64, installed by setup.sh; this test fails, it
 * does not skip, when it is missing). No guest and no Xen: `-machine none`
 * with the disk as a -blockdev of a raw image file, as Xen's QEMU holds a
 * qdisk disk. The destination target is served by our NBD server (the plain
 * file export, nbd.h) on a unix socket; QEMU mirrors into it with
 * blockdev-mirror (sync full, copy-mode write-blocking). "Guest" writes are
 * made inside QEMU while the mirror runs, by HMP's qemu-io through QMP
 * human-monitor-command.
 *
 * Checks: the copy becomes ready; after ready a write is in the target when
 * QEMU acknowledges it (write-blocking); completion at "switchover" leaves
 * the target byte-identical to the source and QEMU on its own disk (no
 * target node left); an abort before or after ready leaves the source
 * untouched and QEMU clean. Timings are printed (loaded 2-core machine).
 */
#include <config.h>

#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define MIG_LOG_MODULE "test"
#include "blk.h"
#include "nbd.h"
#include "qmp.h"

#define QEMU "qemu-system-x86_64"
#define DISK (64u << 20)

static char dir[64], src[128], dst[128], qsock[128], nsock[128];
static pid_t qpid = -1;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test-qdisk-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof(src), "%s/src.img", dir);
    snprintf(dst, sizeof(dst), "%s/dst.img", dir);
    snprintf(qsock, sizeof(qsock), "%s/qmp.sock", dir);
    snprintf(nsock, sizeof(nsock), "%s/nbd.sock", dir);
    /* the source: data in the first 8 MiB and at 40 MiB, holes elsewhere */
    int fd = open(src, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK), 0);
    uint8_t *buf = malloc(1u << 20);
    for (unsigned m = 0; m < 9; m++) {
        for (unsigned i = 0; i < 1u << 20; i++)
            buf[i] = (uint8_t)(i * 13 + m * 7 + 1);
        assert_int_equal(pwrite(fd, buf, 1u << 20, m < 8 ? (off_t)m << 20 : 40 << 20), 1 << 20);
    }
    free(buf);
    close(fd);
    fd = open(dst, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK), 0);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (qpid > 0) {
        kill(qpid, SIGKILL);
        waitpid(qpid, NULL, 0);
        qpid = -1;
    }
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

/* QEMU holding src as drive0 / node disk0, as Xen's QEMU holds a
 * qdisk disk, no guest. */
static void start_qemu(void)
{
    char qmp[200], drive[240];
    snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", qsock);
    /* a -drive as libxl gives QEMU a qdisk disk: its BlockBackend "drive0"
     * (the device's view; HMP qemu-io writes through it, so the writes pass
     * the mirror's filter as a guest's do), its format node "disk0" */
    snprintf(drive, sizeof(drive), "if=none,id=drive0,file=%s,format=raw,node-name=disk0,"
             "cache=writeback", src);
    const char *argv[] = {QEMU, "-nodefaults", "-display", "none", "-machine", "none",
                          "-qmp", qmp, "-drive", drive, NULL};
    qpid = fork();
    assert_true(qpid >= 0);
    if (qpid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        execvp(QEMU, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        struct stat st;
        int status;
        if (stat(qsock, &st) == 0 && S_ISSOCK(st.st_mode))
            return;
        if (waitpid(qpid, &status, WNOHANG) == qpid) {
            qpid = -1;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                fail_msg(QEMU " is not installed: run `./setup.sh deps` (Debian package "
                              "qemu-system-x86); this test does not skip");
            fail_msg(QEMU " exited at start (status %d)", status);
        }
        usleep(50 * 1000);
    }
    fail_msg(QEMU " did not create its QMP socket %s within 10 s", qsock);
}

/* A "guest" write inside QEMU: HMP qemu-io on drive0's BlockBackend. */
static void qemu_io(struct mig__qmp *q, const char *cmd)
{
    char line[200];
    struct mig__qmp_args a;
    struct mig__qmp_json *ret = NULL;
    snprintf(line, sizeof(line), "qemu-io drive0 \"%s\"", cmd);
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "command-line", line);
    assert_int_equal(mig__qmp_execute(q, "human-monitor-command", &a, &ret), 0);
    const char *out = mig__qmp_json_str(ret);
    if (out && (strstr(out, "rror") || strstr(out, "nvalid")))
        fail_msg("qemu-io %s: %s", cmd, out);
    mig__qmp_json_free(ret);
}

static bool has_node(struct mig__qmp *q, const char *name)
{
    struct mig__qmp_json *ret = NULL;
    bool found = false;
    assert_int_equal(mig__qmp_execute(q, "query-named-block-nodes", NULL, &ret), 0);
    for (size_t i = 0; ret && i < ret->n; i++) {
        const char *n = mig__qmp_json_str(mig__qmp_json_get(ret->items[i], "node-name"));
        if (n && !strcmp(n, name))
            found = true;
    }
    mig__qmp_json_free(ret);
    return found;
}

static void assert_same_files(const char *a, const char *b)
{
    uint8_t *x = malloc(1 << 20), *y = malloc(1 << 20);
    int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
    assert_true(fa >= 0 && fb >= 0);
    for (off_t off = 0; off < DISK; off += 1 << 20) {
        assert_int_equal(pread(fa, x, 1 << 20, off), 1 << 20);
        assert_int_equal(pread(fb, y, 1 << 20, off), 1 << 20);
        if (memcmp(x, y, 1 << 20))
            fail_msg("%s and %s differ in the MiB at %lld", a, b, (long long)off);
    }
    close(fa);
    close(fb);
    free(x);
    free(y);
}

static uint8_t byte_at(const char *path, off_t off)
{
    uint8_t b = 0;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, off), 1);
    close(fd);
    return b;
}

struct dest {
    struct mig__nbd_file *f;
    struct mig__nbd_export exp;
    struct mig__nbd_server *srv;
};

/* The destination: the target served by our NBD server on nsock. */
static void dest_start(struct mig_ctx *ctx, struct dest *d)
{
    assert_int_equal(mig__nbd_file_export_open(ctx, dst, false, &d->f), 0);
    mig__nbd_file_export(d->f, &d->exp);
    assert_int_equal(mig__nbd_server_new(ctx, &d->exp, NULL, &d->srv), 0);
    assert_int_equal(mig__nbd_server_listen_unix(d->srv, nsock), 0);
    assert_int_equal(mig__nbd_server_start(d->srv), 0);
}

static void dest_stop(struct dest *d)
{
    struct mig__nbd_stats st;
    mig__nbd_server_stats(d->srv, &st);
    if (getenv("TEST_VERBOSE"))
        print_message("nbd: %" PRIu64 " conns, %" PRIu64 " requests, %" PRIu64 " errors, %" PRIu64
                      " proto errors, %" PRIu64 " bytes written\n", st.conns_accepted, st.requests,
                      st.request_errors, st.proto_errors, st.bytes_written);
    mig__nbd_server_free(d->srv);
    mig__nbd_file_close(d->f);
}

static void test_mirror_under_writes(void **state)
{
    (void)state;
    struct mig_ctx *ctx = new_ctx();
    struct dest d = {0};
    struct mig__qmp *q = NULL;
    struct mig__blk_qdisk *qd = NULL;
    dest_start(ctx, &d);
    start_qemu();
    assert_int_equal(mig__qmp_connect(ctx, qsock, 0, &q), 0);
    assert_true(has_node(q, "disk0"));

    uint64_t t0 = mig__now_ns();
    struct mig__blk_qdisk_params p = {.device = "disk0", .job_id = "mig-xvda",
                                      .nbd_socket = nsock};
    assert_int_equal(mig__blk_qdisk_start(ctx, q, &p, &qd), 0);
    /* No writes during the bulk phase here: QEMU 7.2's HMP qemu-io racing
     * the job's in-flight copy of the same region fails the job with EBADF
     * now and then (seen with writes at 0 and 20 MiB while the copy was in
     * the first MiBs); a guest's writes come through its device's
     * coroutines, not HMP. The job's failure is reported by
     * mig__blk_qdisk_wait_ready, and the migration then aborts. */
    int rrc = mig__blk_qdisk_wait_ready(qd, 60000);
    if (rrc < 0)
        dest_stop(&d);
    assert_int_equal(rrc, 0);
    uint64_t t_ready = mig__now_ns();
    struct mig__blk_qdisk_job j;
    assert_int_equal(mig__blk_qdisk_job(qd, &j), 0);
    assert_true(j.ready);
    assert_true(j.len >= DISK && j.offset == j.len); /* len grows with the writes */

    /* write-blocking: once QEMU acknowledged a write, the target has it */
    qemu_io(q, "write -P 0x5a 0 64k");
    assert_int_equal(byte_at(dst, 0), 0x5a);
    qemu_io(q, "write -P 0x5b 20M 1M");
    assert_int_equal(byte_at(dst, (20 << 20) + 12345), 0x5b);
    qemu_io(q, "write -z 4M 64k");
    assert_int_equal(byte_at(dst, 4 << 20), 0x00);
    qemu_io(q, "write -P 0x77 30M 64k");
    assert_int_equal(byte_at(dst, 30 << 20), 0x77);
    assert_int_equal(byte_at(dst, (30 << 20) + 65535), 0x77);
    qemu_io(q, "write -P 0x78 63M 4k");
    assert_int_equal(byte_at(dst, 63 << 20), 0x78);

    /* switchover: complete, then the destination syncs before READY */
    uint64_t t1 = mig__now_ns();
    assert_int_equal(mig__blk_qdisk_complete(qd, 30000), 0);
    uint64_t t_done = mig__now_ns();
    assert_int_equal(d.exp.ops->flush(d.exp.opaque), 0);
    assert_int_equal(mig__blk_qdisk_job(qd, &j), -MIG_ENOENT); /* dismissed */
    assert_false(has_node(q, "mig-xvda-target"));
    assert_true(has_node(q, "disk0")); /* QEMU still on its own disk */
    /* ...and writes there go to the source only */
    qemu_io(q, "write -P 0x99 8M 4k");
    assert_int_equal(byte_at(src, 8 << 20), 0x99);
    assert_int_equal(byte_at(dst, 8 << 20), 0x00);
    qemu_io(q, "write -P 0x00 8M 4k"); /* put it back for the comparison */
    qemu_io(q, "flush");
    assert_same_files(src, dst);
    assert_int_equal(byte_at(dst, 0), 0x5a);
    assert_int_equal(byte_at(dst, 20 << 20), 0x5b);
    assert_int_equal(byte_at(dst, 4 << 20), 0x00);
    print_message("qdisk mirror of %u MiB: ready after %" PRIu64 " ms, complete %" PRIu64
                  " ms (loaded machine)\n",
                  DISK >> 20, (t_ready - t0) / 1000000u, (t_done - t1) / 1000000u);
    mig__blk_qdisk_free(qd);
    mig__qmp_close(q);
    dest_stop(&d);
    mig_ctx_free(ctx);
}

static void test_abort_leaves_source(void **state)
{
    (void)state;
    struct mig_ctx *ctx = new_ctx();
    struct dest d = {0};
    struct mig__qmp *q = NULL;
    struct mig__blk_qdisk *qd = NULL;
    char before[300], after[300], cmd[200];
    snprintf(cmd, sizeof(cmd), "sha256sum < %s", src);
    FILE *f = popen(cmd, "r");
    assert_non_null(fgets(before, sizeof(before), f));
    pclose(f);
    dest_start(ctx, &d);
    start_qemu();
    assert_int_equal(mig__qmp_connect(ctx, qsock, 0, &q), 0);
    /* a slow copy (1 MiB/s) so the abort comes before ready */
    struct mig__blk_qdisk_params p = {.device = "disk0", .job_id = "mig-xvdb",
                                      .nbd_socket = nsock, .speed = 1u << 20};
    assert_int_equal(mig__blk_qdisk_start(ctx, q, &p, &qd), 0);
    struct mig__blk_qdisk_job j;
    assert_int_equal(mig__blk_qdisk_job(qd, &j), 0);
    assert_false(j.ready);
    assert_int_equal(mig__blk_qdisk_complete(qd, 1000), -MIG_EINVAL); /* not ready */
    mig__blk_qdisk_abort(qd);
    assert_int_equal(mig__blk_qdisk_job(qd, &j), -MIG_ENOENT);
    assert_false(has_node(q, "mig-xvdb-target"));
    mig__blk_qdisk_free(qd);

    /* a failure after ready (before COMMIT): the same */
    struct mig__blk_qdisk_params p2 = {.device = "disk0", .job_id = "mig-xvde",
                                       .nbd_socket = nsock};
    assert_int_equal(mig__blk_qdisk_start(ctx, q, &p2, &qd), 0);
    assert_int_equal(mig__blk_qdisk_wait_ready(qd, 60000), 0);
    mig__blk_qdisk_abort(qd);
    assert_int_equal(mig__blk_qdisk_job(qd, &j), -MIG_ENOENT);
    assert_false(has_node(q, "mig-xvde-target"));
    assert_true(has_node(q, "disk0"));
    mig__blk_qdisk_free(qd);

    /* a target QEMU cannot reach: start fails and leaves nothing behind */
    struct mig__blk_qdisk_params bad = {.device = "disk0", .job_id = "mig-xvdc",
                                        .nbd_socket = "/nonexistent/nbd.sock"};
    assert_int_not_equal(mig__blk_qdisk_start(ctx, q, &bad, &qd), 0);
    assert_false(has_node(q, "mig-xvdc-target"));
    struct mig__blk_qdisk_params nodisk = {.device = "nosuch", .job_id = "mig-xvdd",
                                           .nbd_socket = nsock};
    assert_int_equal(mig__blk_qdisk_start(ctx, q, &nodisk, &qd), -MIG_EBACKEND);
    assert_false(has_node(q, "mig-xvdd-target"));
    mig__qmp_close(q);
    kill(qpid, SIGTERM);
    waitpid(qpid, NULL, 0);
    qpid = -1;
    f = popen(cmd, "r");
    assert_non_null(fgets(after, sizeof(after), f));
    pclose(f);
    assert_string_equal(before, after);
    dest_stop(&d);
    mig_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mirror_under_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_source, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
