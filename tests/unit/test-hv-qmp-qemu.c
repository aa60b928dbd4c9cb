/*
 * The QMP client against a real QEMU (Debian's qemu-system-x86_64, installed
 * by setup.sh; this test fails, it does not skip, when it is missing). No Xen
 * here: a TCG q35 machine with the devices an HVM guest's QEMU emulates
 * (stdvga, an e1000 NIC, an IDE disk), paused before it boots. It drives the
 * exact commands the xen: backend sends to a domain's QEMU:
 *   greeting, qmp_capabilities, query-status, xen-set-global-dirty-log,
 *   stop, add-fd + xen-save-devices-state to /dev/fdset/N (live), remove-fd,
 *   cont (the source resuming after a failed migration),
 * checks QEMU's error classes, then proves the saved device state loads:
 * a second QEMU with the same devices takes it as an incoming migration
 * (getfd + migrate-incoming fd:) and runs. The two -global settings and
 * suppress-vmdesc give a plain machine what Xen's xenfv machine has built in
 * (no configuration section, no vmdescription, no TCG vapic ROM), so the
 * stream is the one a Xen QEMU writes. Timings are printed, measured on a
 * loaded 2-core machine.
 */
#include <config.h>

#include <errno.h>
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

#include "qmp.h"

#define QEMU "qemu-system-x86_64"

static char dir[64];
static pid_t pids[2] = {-1, -1};

static void log_stderr(void *opaque, enum mig_log_level level, const char *module, const char *msg)
{
    if (level <= MIG_LOG_WARN || getenv("MIG_TEST_VERBOSE"))
        fprintf(stderr, "[%s] %s\n", module, msg);
}

static uint64_t now_us(void)
{
    return mig__now_ns() / 1000u;
}

/* Start QEMU with our QMP socket at DIR/NAME.sock; extra args appended. */
static pid_t start_qemu(const char *name, const char *const *extra, char *sock, size_t sock_len)
{
    char qmp[200], drive[200];
    snprintf(sock, sock_len, "%s/%s.sock", dir, name);
    snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", sock);
    snprintf(drive, sizeof(drive), "file=%s/disk.img,format=raw,if=none,id=d0", dir);
    const char *argv[40] = {QEMU,
                            "-qmp", qmp,
                            "-nodefaults", "-display", "none", "-S",
                            "-machine", "q35,accel=tcg,suppress-vmdesc=on",
                            "-m", "32",
                            "-global", "apic-common.vapic=off",
                            "-global", "migration.send-configuration=off",
                            "-device", "VGA",
                            "-device", "e1000",
                            "-drive", drive,
                            "-device", "ide-hd,drive=d0"};
    size_t n = 0;
    while (argv[n])
        n++;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        if (!getenv("MIG_TEST_VERBOSE"))
            dup2(devnull, 2); /* "nic e1000.0 has no peer" */
        execvp(QEMU, (char *const *)argv);
        _exit(127);
    }
    /* Wait for the socket (QEMU creates it before it listens). */
    for (int i = 0; i < 200; i++) {
        struct stat st;
        int status;
        if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
            return pid;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                fail_msg(QEMU " is not installed: run `./setup.sh deps` (Debian package "
                              "qemu-system-x86); this test does not skip");
            fail_msg(QEMU " exited at start (status %d)", status);
        }
        usleep(50 * 1000);
    }
    fail_msg(QEMU " did not create its QMP socket %s within 10 s", sock);
    return -1;
}

static void stop_qemu(pid_t *pid)
{
    if (*pid <= 0)
        return;
    int status;
    for (int i = 0; i < 100 && waitpid(*pid, &status, WNOHANG) == 0; i++)
        usleep(20 * 1000);
    if (waitpid(*pid, &status, WNOHANG) == 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, &status, 0);
    }
    *pid = -1;
}

static void expect_status(struct mig__qmp *q, const char *want)
{
    struct mig__qmp_json *ret = NULL;
    assert_int_equal(mig__qmp_execute(q, "query-status", NULL, &ret), 0);
    const char *got = mig__qmp_json_str(mig__qmp_json_get(ret, "status"));
    if (!got || strcmp(got, want) != 0)
        fail_msg("query-status: '%s', want '%s'", got ? got : "(none)", want);
    mig__qmp_json_free(ret);
}

static void expect_error(struct mig__qmp *q, const char *cmd, const struct mig__qmp_args *a,
                         const char *cls, const char *desc_part)
{
    assert_int_equal(mig__qmp_execute(q, cmd, a, NULL), -MIG_EBACKEND);
    assert_string_equal(mig__qmp_last_error_class(q), cls);
    if (desc_part && !strstr(mig__qmp_last_error_desc(q), desc_part))
        fail_msg("%s: error '%s' lacks '%s'", cmd, mig__qmp_last_error_desc(q), desc_part);
}

static void quit(struct mig__qmp *q)
{
    /* QEMU answers, then exits (its SHUTDOWN event may come first) */
    assert_int_equal(mig__qmp_execute(q, "quit", NULL, NULL), 0);
}

static void test_real_qemu(void **state)
{
    struct mig_ctx *ctx;
    struct mig__qmp *src = NULL, *dst = NULL;
    struct mig__qmp_args a;
    struct mig__qmp_json *ret = NULL;
    char sock[128], path[128];

    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, log_stderr, NULL);
    mig_ctx_set_log_level(ctx, MIG_LOG_DEBUG);
    snprintf(path, sizeof(path), "%s/disk.img", dir);
    int disk = open(path, O_CREAT | O_RDWR, 0600);
    assert_true(disk >= 0);
    assert_int_equal(ftruncate(disk, 1 << 20), 0);
    close(disk);

    /* ---- the source's QEMU ---- */
    pids[0] = start_qemu("src", NULL, sock, sizeof(sock));
    assert_int_equal(mig__qmp_connect(ctx, sock, 10000, &src), 0);
    uint32_t v = mig__qmp_version(src);
    print_message("QEMU %u.%u.%u\n", v >> 16, v >> 8 & 0xff, v & 0xff);
    assert_true(v >> 16 >= 2); /* "live" needs 2.11, add-fd 1.x */
    expect_status(src, "prelaunch");
    assert_int_equal(mig__qmp_execute(src, "cont", NULL, NULL), 0);
    expect_status(src, "running");

    /* Before round 0: QEMU reports its own writes to guest memory. Plain
     * QEMU accepts the command (a no-op outside Xen). */
    mig__qmp_args_init(&a);
    mig__qmp_args_bool(&a, "enable", true);
    assert_int_equal(mig__qmp_execute(src, "xen-set-global-dirty-log", &a, NULL), 0);

    /* Switchover: stop, then the device state into a file we own, passed
     * as an fd (QEMU may run as another user under Xen). */
    unsigned ev0 = mig__qmp_events(src);
    assert_int_equal(mig__qmp_execute(src, "stop", NULL, NULL), 0);
    expect_status(src, "paused");
    assert_true(mig__qmp_events(src) > ev0);
    assert_string_equal(mig__qmp_last_event(src), "STOP");
    snprintf(path, sizeof(path), "%s/dm-state", dir);
    /* QEMU matches an fdset member by access mode: write-only, as it opens
     * the file for the save. */
    int wfd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(wfd >= 0);
    mig__qmp_args_init(&a);
    mig__qmp_args_int(&a, "fdset-id", 7);
    assert_int_equal(mig__qmp_execute_fd(src, "add-fd", &a, wfd, &ret), 0);
    close(wfd); /* QEMU holds its own copy */
    int64_t fdset = -1;
    assert_int_equal(mig__qmp_json_int(mig__qmp_json_get(ret, "fdset-id"), &fdset), 0);
    assert_int_equal(fdset, 7);
    mig__qmp_json_free(ret);
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "filename", "/dev/fdset/7");
    mig__qmp_args_bool(&a, "live", true);
    uint64_t t0 = now_us();
    assert_int_equal(mig__qmp_execute(src, "xen-save-devices-state", &a, NULL), 0);
    uint64_t save_us = now_us() - t0;
    mig__qmp_args_init(&a);
    mig__qmp_args_int(&a, "fdset-id", 7);
    assert_int_equal(mig__qmp_execute(src, "remove-fd", &a, NULL), 0);

    int sfd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(sfd >= 0);
    struct stat st;
    assert_int_equal(fstat(sfd, &st), 0);
    assert_true(st.st_size > 1024);
    char *img = malloc((size_t)st.st_size);
    assert_non_null(img);
    assert_int_equal(pread(sfd, img, (size_t)st.st_size, 0), st.st_size);
    /* QEMU's savevm stream: "QEVM", version 3; the emulated devices are in it */
    assert_memory_equal(img, "QEVM\0\0\0\3", 8);
    assert_non_null(memmem(img, (size_t)st.st_size, "e1000", 5));
    assert_non_null(memmem(img, (size_t)st.st_size, "vga", 3));
    assert_non_null(memmem(img, (size_t)st.st_size, "ich9_ahci", 9)); /* the disk controller */
    free(img);
    print_message("device state: %lld bytes, saved in %" PRIu64 " us\n", (long long)st.st_size,
                  save_us);

    /* Errors carry QEMU's classes. */
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "filename", "/nonexistent/dir/state");
    mig__qmp_args_bool(&a, "live", false);
    expect_error(src, "xen-save-devices-state", &a, "GenericError", "/nonexistent/dir/state");
    expect_error(src, "xen-no-such-command", NULL, "CommandNotFound", "xen-no-such-command");
    mig__qmp_args_init(&a);
    mig__qmp_args_bool(&a, "bogus", true);
    expect_error(src, "stop", &a, "GenericError", "bogus");

    /* A failed migration: the source's QEMU runs again after "cont" (the
     * disk, released by live=true, is taken back). */
    assert_int_equal(mig__qmp_execute(src, "cont", NULL, NULL), 0);
    expect_status(src, "running");
    mig__qmp_args_init(&a);
    mig__qmp_args_bool(&a, "enable", false);
    assert_int_equal(mig__qmp_execute(src, "xen-set-global-dirty-log", &a, NULL), 0);
    quit(src);
    mig__qmp_close(src);
    stop_qemu(&pids[0]);

    /* ---- the destination: the saved device state loads and runs ---- */
    static const char *const incoming[] = {"-incoming", "defer", NULL};
    pids[1] = start_qemu("dst", incoming, sock, sizeof(sock));
    assert_int_equal(mig__qmp_connect(ctx, sock, 10000, &dst), 0);
    expect_status(dst, "inmigrate");
    assert_int_equal(lseek(sfd, 0, SEEK_SET), 0);
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "fdname", "dmstate");
    assert_int_equal(mig__qmp_execute_fd(dst, "getfd", &a, sfd, NULL), 0);
    close(sfd);
    mig__qmp_args_init(&a);
    mig__qmp_args_str(&a, "uri", "fd:dmstate");
    t0 = now_us();
    assert_int_equal(mig__qmp_execute(dst, "migrate-incoming", &a, NULL), 0);
    const char *status = NULL;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(mig__qmp_execute(dst, "query-migrate", NULL, &ret), 0);
        status = mig__qmp_json_str(mig__qmp_json_get(ret, "status"));
        bool done = status && (!strcmp(status, "completed") || !strcmp(status, "failed"));
        if (done) {
            status = strcmp(status, "completed") == 0 ? "completed" : "failed";
            mig__qmp_json_free(ret);
            break;
        }
        mig__qmp_json_free(ret);
        status = NULL;
        usleep(10 * 1000);
    }
    uint64_t load_us = now_us() - t0;
    assert_non_null(status);
    assert_string_equal(status, "completed");
    expect_status(dst, "paused");
    assert_int_equal(mig__qmp_execute(dst, "cont", NULL, NULL), 0);
    expect_status(dst, "running");
    print_message("device state loaded by a second QEMU in %" PRIu64 " us (incl. polling)\n",
                  load_us);
    quit(dst);
    mig__qmp_close(dst);
    stop_qemu(&pids[1]);
    mig_ctx_free(ctx);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/qmpqemu.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    static const char *const files[] = {"disk.img", "dm-state", "src.sock", "dst.sock"};
    char path[128];
    stop_qemu(&pids[0]);
    stop_qemu(&pids[1]);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_real_qemu, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
