/* Unit tests for the error table (errors.c). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mig-internal.h"

static void strerror_both_signs(void **state)
{
    (void)state;
    assert_string_equal(mig_strerror(-MIG_EPROTO), "stream protocol violation");
    assert_string_equal(mig_strerror(MIG_EPROTO), "stream protocol violation");
    assert_string_equal(mig_strerror(0), "success");
    assert_string_equal(mig_errname(-MIG_ENOMEM), "ENOMEM");
}

static void strerror_unknown(void **state)
{
    (void)state;
    assert_string_equal(mig_strerror(-MIG_ERR_MAX), "unknown error");
    assert_string_equal(mig_strerror(100000), "unknown error");
    assert_string_equal(mig_errname(-100000), "EUNKNOWN");
}

static void every_code_has_text(void **state)
{
    (void)state;
    for (int i = 0; i < MIG_ERR_MAX; i++) {
        const char *t = mig_strerror(-i);
        assert_non_null(t);
        assert_true(strlen(t) > 0);
        assert_string_not_equal(t, "unknown error");
        assert_int_equal(mig_errname(i)[0], i == 0 ? 'O' : 'E');
    }
}

static void errno_conversion(void **state)
{
    (void)state;
    assert_int_equal(mig__from_errno(0), 0);
    assert_int_equal(mig__from_errno(ENOMEM), -MIG_ENOMEM);
    assert_int_equal(mig__from_errno(EPIPE), -MIG_EPEER);
    assert_int_equal(mig__from_errno(ECONNRESET), -MIG_EPEER);
    assert_int_equal(mig__from_errno(ENOSPC), -MIG_ENOSPC);
    assert_int_equal(mig__from_errno(ETIMEDOUT), -MIG_ETIMEOUT);
    assert_int_equal(mig__from_errno(EXDEV), -MIG_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strerror_both_signs),
        cmocka_unit_test(strerror_unknown),
        cmocka_unit_test(every_code_has_text),
        cmocka_unit_test(errno_conversion),
    };
    return cmocka_run_group_tests_name("core-errors", tests, NULL, NULL);
}
