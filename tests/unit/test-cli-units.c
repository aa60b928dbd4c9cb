/* Unit tests for the command line's size and rate parsing (xl-plugin/units.c). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "units.h"

static void sizes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(units_parse_size("512M", &v), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(units_parse_size("2G", &v), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(units_parse_size("2GiB", &v), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(units_parse_size("1GB", &v), 0);
    assert_int_equal(v, 1000000000ull);
    assert_int_equal(units_parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(units_parse_size("1.5K", &v), 0);
    assert_int_equal(v, 1536);
    assert_int_equal(units_parse_size("12X", &v), -1);
    assert_int_equal(units_parse_size("-1M", &v), -1);
    assert_int_equal(units_parse_size("", &v), -1);
    assert_int_equal(units_parse_size("M", &v), -1);
    assert_int_equal(units_parse_size("100Mbit", &v), -1); /* bits are rates only */
    assert_int_equal(units_parse_size("99999999T", &v), -1);
}

static void rates(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(units_parse_rate("100M", &v), 0);
    assert_int_equal(v, 100ull << 20);
    assert_int_equal(units_parse_rate("100MB/s", &v), 0);
    assert_int_equal(v, 100000000ull);
    assert_int_equal(units_parse_rate("800Mbit", &v), 0);
    assert_int_equal(v, 100000000ull);
    assert_int_equal(units_parse_rate("1Gbit/s", &v), 0);
    assert_int_equal(v, 125000000ull);
    assert_int_equal(units_parse_rate("fast", &v), -1);
    assert_int_equal(units_parse_rate("10/s/s", &v), -1);
}

static void uints(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(units_parse_uint("4", 1, 64, &v), 0);
    assert_int_equal(v, 4);
    assert_int_equal(units_parse_uint("0", 1, 64, &v), -1);
    assert_int_equal(units_parse_uint("65", 1, 64, &v), -1);
    assert_int_equal(units_parse_uint("3x", 1, 64, &v), -1);
}

static void fmt(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(units_fmt_bytes(12, b, sizeof(b)), "12 B");
    assert_string_equal(units_fmt_bytes(512ull << 20, b, sizeof(b)), "512.0 MiB");
    assert_string_equal(units_fmt_bytes(3ull << 29, b, sizeof(b)), "1.5 GiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes),
        cmocka_unit_test(rates),
        cmocka_unit_test(uints),
        cmocka_unit_test(fmt),
    };
    return cmocka_run_group_tests_name("cli-units", tests, NULL, NULL);
}
