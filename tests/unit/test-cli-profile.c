/*
 * Unit tests for the 'profile' subcommand (xl-plugin/profile.c) without
 * main.c: what it prints on stdout/stderr and its exit codes for render,
 * check and preflight (usage_error() and json_str() come from util.c).
 */
#include <config.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"

int xlml_profile_main(struct cli *c, struct mig_ctx *ctx);

struct out {
    char *stdout_text; /* owned */
    char *stderr_text; /* owned */
    int rc;
};

static char *read_all(int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        assert_true(r >= 0);
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return buf;
}

/* Run "xl-migrate-live [--json] profile ARGS..." with stdout/stderr captured. */
static struct out run(bool json, int argc, ...)
{
    char *pos[8] = {"profile"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        pos[i + 1] = va_arg(ap, char *);
    va_end(ap);
    struct cli c = {.argv0 = "xl-migrate-live", .json = json, .pos = pos, .npos = argc + 1};
    struct mig_ctx *ctx = NULL;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, NULL, NULL);

    char o[] = "/tmp/mig-cli-profile-out-XXXXXX", e[] = "/tmp/mig-cli-profile-err-XXXXXX";
    int ofd = mkstemp(o), efd = mkstemp(e);
    assert_true(ofd >= 0 && efd >= 0);
    unlink(o);
    unlink(e);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(ofd, 1);
    dup2(efd, 2);
    struct out r;
    r.rc = xlml_profile_main(&c, ctx);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    r.stdout_text = read_all(ofd);
    r.stderr_text = read_all(efd);
    close(ofd);
    close(efd);
    mig_ctx_free(ctx);
    return r;
}

static void out_free(struct out *r)
{
    free(r->stdout_text);
    free(r->stderr_text);
}

static char *src(const char *rel)
{
    const char *top = getenv("top_srcdir");
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", top && *top ? top : ".", rel) > 0);
    return p;
}

static int setup(void **state)
{
    char *top = src("");
    setenv("MIG_PROFILE_DIR", top, 1);
    unsetenv("XEN_VERSION");
    free(top);
    return 0;
}

static void render(void **state)
{
    struct out r = run(false, 2, "render", "x86-64-v2");
    assert_int_equal(r.rc, EXIT_OK);
    /* One xl.cfg line, ready to paste. */
    assert_int_equal(strncmp(r.stdout_text, "cpuid = \"host,", 14), 0);
    assert_non_null(strstr(r.stdout_text, ",avx2=0,"));
    assert_int_equal(strchr(r.stdout_text, '\n')[1], '\0');
    assert_non_null(strstr(r.stderr_text, "xl before Xen 4.18 cannot hide dbext monitorx xsaveopt"));
    out_free(&r);

    setenv("XEN_VERSION", "4.19.1", 1);
    r = run(true, 2, "render", "x86-64-v3");
    unsetenv("XEN_VERSION");
    assert_int_equal(r.rc, EXIT_OK);
    assert_int_equal(strncmp(r.stdout_text, "{\"profile\":\"x86-64-v3\",\"cpuid\":\"host,", 37),
                     0);
    assert_non_null(strstr(r.stdout_text, ",xsaves=0,"));
    assert_non_null(strstr(r.stdout_text, "\"not_hidden\":\"\"}"));
    assert_string_equal(r.stderr_text, "");
    out_free(&r);
}

static void check(void **state)
{
    char *bad = src("tests/fixtures/profiles/duplicate-key.yaml");
    struct out r = run(false, 2, "check", "x86-64-v3");
    assert_int_equal(r.rc, EXIT_OK);
    assert_non_null(strstr(r.stdout_text, "configs/profiles/x86-64-v3.yaml: profile x86-64-v3 "
                                          "is valid\n"));
    out_free(&r);
    r = run(false, 2, "check", bad);
    assert_int_equal(r.rc, EXIT_FAILED);
    assert_string_equal(r.stdout_text, "");
    assert_non_null(strstr(r.stderr_text, "duplicate-key.yaml:5:1: duplicate key 'cpu' (first at "
                                          "line 2, column 1)\n"));
    out_free(&r);
    r = run(true, 2, "check", bad);
    assert_int_equal(r.rc, EXIT_FAILED);
    assert_non_null(strstr(r.stdout_text, "{\"valid\":false,\"profile\":null,\"path\":"));
    out_free(&r);
    r = run(false, 2, "render", "no-such-profile");
    assert_int_equal(r.rc, EXIT_FAILED);
    assert_non_null(strstr(r.stderr_text, "configs/profiles/no-such-profile.yaml: cannot open"));
    out_free(&r);
    free(bad);
}

static void preflight(void **state)
{
    char *s = src("tests/fixtures/facts/src-host-guest.json");
    char *d = src("tests/fixtures/facts/dst-skylake.json");
    char *ok = src("tests/fixtures/facts/dst-identical.json");
    struct out r = run(false, 3, "preflight", s, d);
    assert_int_equal(r.rc, EXIT_INCOMPAT);
    assert_non_null(strstr(r.stdout_text, "pre-flight to dst02: INCOMPATIBLE (6 errors"));
    assert_non_null(strstr(r.stdout_text, "avx512f (leaf 0x7 subleaf 0 ebx bit 16)"));
    out_free(&r);
    r = run(true, 4, "preflight", s, ok, "x86-64-v3");
    assert_int_equal(r.rc, EXIT_INCOMPAT); /* the guest sees the whole host */
    assert_non_null(strstr(r.stdout_text, "{\"compatible\":false,\"destination\":\"dst01\","
                                          "\"profile\":\"x86-64-v3\""));
    out_free(&r);
    r = run(false, 3, "preflight", s, ok);
    assert_int_equal(r.rc, EXIT_OK);
    assert_non_null(strstr(r.stdout_text, "compatible (0 errors, 0 warnings)"));
    out_free(&r);
    r = run(false, 3, "preflight", s, "/nonexistent.json");
    assert_int_equal(r.rc, EXIT_FAILED);
    assert_non_null(strstr(r.stderr_text, "/nonexistent.json: No such file or directory"));
    out_free(&r);
    free(s);
    free(d);
    free(ok);
}

static void usage(void **state)
{
    struct out r = run(false, 0);
    assert_int_equal(r.rc, EXIT_USAGE);
    assert_non_null(strstr(r.stderr_text, "profile needs render NAME|FILE"));
    out_free(&r);
    r = run(false, 1, "render");
    assert_int_equal(r.rc, EXIT_USAGE);
    out_free(&r);
    r = run(false, 2, "frobnicate", "x");
    assert_int_equal(r.rc, EXIT_USAGE);
    assert_non_null(strstr(r.stderr_text, "unknown profile command 'frobnicate'"));
    out_free(&r);
    r = run(false, 2, "preflight", "a");
    assert_int_equal(r.rc, EXIT_USAGE);
    out_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(render, setup),
        cmocka_unit_test_setup(check, setup),
        cmocka_unit_test_setup(preflight, setup),
        cmocka_unit_test_setup(usage, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
