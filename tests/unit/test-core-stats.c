/* Unit tests for statistics serialisation (stats.c). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mig-internal.h"

static void json_has_every_field(void **state)
{
    (void)state;
    struct mig_stats st = {
        .total_bytes = 1ull << 32,
        .transferred_bytes = 123,
        .rounds = 4,
        .throttle_percent = 20,
        .downtime_ms = 87,
        .dirty_tracking = "uffd-wp-async",
        .disk_bytes = 64ull << 20,
        .disk_sent_bytes = 5,
        .disk_forwarded_bytes = 6,
        .disk_final_bytes = 7,
        .disk_forwarding = 1,
        .channels = 2,
    };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    mig_stats_write_json(&st, f);
    fclose(f);
    assert_non_null(strstr(buf, "\"total_bytes\":4294967296,"));
    assert_non_null(strstr(buf, "\"transferred_bytes\":123,"));
    assert_non_null(strstr(buf, "\"rounds\":4,"));
    assert_non_null(strstr(buf, "\"throttle_percent\":20,"));
    assert_non_null(strstr(buf, "\"downtime_ms\":87,"));
    assert_non_null(strstr(buf, "\"dirty_tracking\":\"uffd-wp-async\","));
    assert_non_null(strstr(buf, "\"disk_bytes\":67108864,"));
    assert_non_null(strstr(buf, "\"disk_sent_bytes\":5,"));
    assert_non_null(strstr(buf, "\"disk_forwarded_bytes\":6,"));
    assert_non_null(strstr(buf, "\"disk_final_bytes\":7,"));
    assert_non_null(strstr(buf, "\"disk_forwarding\":1,\"channels\":2}"));
    assert_int_equal(buf[0], '{');
    assert_int_equal(buf[len - 1], '}');
    free(buf);
}

static void json_null_tracking(void **state)
{
    (void)state;
    struct mig_stats st = {0};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mig_stats_write_json(&st, f);
    fclose(f);
    assert_non_null(strstr(buf, "\"dirty_tracking\":\"none\""));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_has_every_field),
        cmocka_unit_test(json_null_tracking),
    };
    return cmocka_run_group_tests_name("core-stats", tests, NULL, NULL);
}
