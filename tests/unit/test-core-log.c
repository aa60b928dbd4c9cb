/* Unit tests for logging and rate limiting (log.c, ctx.c). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <inttypes.h>

#include <cmocka.h>

#define MIG_LOG_MODULE "test"
#include "mig-internal.h"

struct sink {
    int count;
    enum mig_log_level last_level;
    char last_module[32];
    char last_msg[2048];
};

static void capture(void *opaque, enum mig_log_level level, const char *module, const char *msg)
{
    struct sink *s = opaque;
    s->count++;
    s->last_level = level;
    snprintf(s->last_module, sizeof(s->last_module), "%s", module);
    snprintf(s->last_msg, sizeof(s->last_msg), "%s", msg);
}

static void level_filters(void **state)
{
    (void)state;
    struct mig_ctx *ctx;
    struct sink s = {0};
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, capture, &s);
    assert_int_equal(mig_ctx_get_log_level(ctx), MIG_LOG_INFO);
    MIG_LOG(ctx, DEBUG, "hidden %d", 1);
    assert_int_equal(s.count, 0);
    MIG_LOG(ctx, WARN, "round %u: %d pages", 3u, 42);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.last_level, MIG_LOG_WARN);
    assert_string_equal(s.last_module, "test");
    assert_string_equal(s.last_msg, "round 3: 42 pages");
    mig_ctx_set_log_level(ctx, MIG_LOG_DEBUG);
    MIG_LOG(ctx, DEBUG, "shown");
    assert_int_equal(s.count, 2);
    mig_ctx_set_logger(ctx, NULL, NULL);
    MIG_LOG(ctx, ERROR, "muted");
    assert_int_equal(s.count, 2);
    mig_ctx_free(ctx);
    mig_ctx_free(NULL);
}

static void long_message_truncated(void **state)
{
    (void)state;
    struct mig_ctx *ctx;
    struct sink s = {0};
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, capture, &s);
    MIG_LOG(ctx, ERROR, "%s", big);
    assert_int_equal(strlen(s.last_msg), 1023);
    assert_string_equal(s.last_msg + 1020, "...");
    mig_ctx_free(ctx);
}

static void level_names(void **state)
{
    (void)state;
    enum mig_log_level l;
    assert_int_equal(mig_log_level_parse("debug", &l), 0);
    assert_int_equal(l, MIG_LOG_DEBUG);
    assert_int_equal(mig_log_level_parse("WARNING", &l), 0);
    assert_int_equal(l, MIG_LOG_WARN);
    assert_int_equal(mig_log_level_parse("loud", &l), -MIG_EINVAL);
    assert_string_equal(mig_log_level_name(MIG_LOG_ERROR), "error");
    assert_string_equal(mig_log_level_name((enum mig_log_level)99), "?");
}

static void ratelimit_bucket(void **state)
{
    (void)state;
    struct mig_ratelimit rl;
    const uint64_t ms = 1000000;
    uint64_t t = 1000 * ms;
    mig__ratelimit_init(&rl, 100, 3);
    /* burst of 3 passes, then drops until a period has elapsed */
    assert_true(mig__ratelimit_allow(&rl, t));
    assert_true(mig__ratelimit_allow(&rl, t));
    assert_true(mig__ratelimit_allow(&rl, t));
    assert_false(mig__ratelimit_allow(&rl, t + 10 * ms));
    assert_false(mig__ratelimit_allow(&rl, t + 50 * ms));
    assert_int_equal(rl.suppressed, 2);
    assert_true(mig__ratelimit_allow(&rl, t + 100 * ms));
    assert_int_equal(rl.suppressed, 0);
    assert_false(mig__ratelimit_allow(&rl, t + 150 * ms));
    /* a long pause refills only up to the burst */
    for (int i = 0; i < 3; i++)
        assert_true(mig__ratelimit_allow(&rl, t + 10000 * ms));
    assert_false(mig__ratelimit_allow(&rl, t + 10000 * ms));
}

static void ratelimit_macro_reports_suppressed(void **state)
{
    (void)state;
    struct mig_ctx *ctx;
    struct sink s = {0};
    struct mig_ratelimit rl;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, capture, &s);
    mig__ratelimit_init(&rl, 60000, 1);
    for (int i = 0; i < 1000; i++)
        MIG_LOG_RL(ctx, &rl, WARN, "page %d bad", i);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.last_msg, "page 0 bad");
    assert_int_equal(rl.suppressed, 999);
    mig_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(level_filters),
        cmocka_unit_test(long_message_truncated),
        cmocka_unit_test(level_names),
        cmocka_unit_test(ratelimit_bucket),
        cmocka_unit_test(ratelimit_macro_reports_suppressed),
    };
    return cmocka_run_group_tests_name("core-log", tests, NULL, NULL);
}
