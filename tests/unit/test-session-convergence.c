/* Unit tests for the stop policies and auto-converge (convergence.c). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "convergence.h"

#define MB (1000ull * 1000ull)

static struct mig__round_stats base(void)
{
    struct mig__round_stats st = {
        .round = 1,
        .dirty_pages = 0,
        .page_size = 4096,
        .bandwidth = 1000 * MB, /* 1 GB/s */
        .dirty_rate = 0,
        .fixed_cost_ms = 20,
        .elapsed_ms = 1000,
    };
    return st;
}

static void predict(void **state)
{
    (void)state;
    struct mig__round_stats st = base();
    st.dirty_pages = 244140; /* 999,997,440 bytes: 999.997 ms, rounded up */
    assert_int_equal(mig__predict_downtime_ms(&st), 1000 + 20);
    st.dirty_pages = 1;      /* 4096 bytes at 1 GB/s: rounds up to 1 ms */
    assert_int_equal(mig__predict_downtime_ms(&st), 1 + 20);
    st.bandwidth = 0;
    assert_true(mig__predict_downtime_ms(&st) == UINT64_MAX);
}

static void downtime_policy(void **state)
{
    (void)state;
    struct mig__policy_params p = {.policy = MIG_POLICY_DOWNTIME, .downtime_ms = 300};
    struct mig__round_stats st = base();
    /* 100 MB dirty at 1 GB/s = 100 ms + 20 ms fixed: fits 300 ms */
    st.dirty_pages = 100 * MB / 4096;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_STOP_AND_COPY);
    /* 400 MB: 400 ms + 20: does not fit */
    st.dirty_pages = 400 * MB / 4096;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_CONTINUE);
    /* the fixed cost alone can exceed the target */
    st.dirty_pages = 10;
    st.fixed_cost_ms = 400;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_CONTINUE);
    /* nothing dirty: always stop */
    st.dirty_pages = 0;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_STOP_AND_COPY);
    /* unknown bandwidth: keep going */
    st = base();
    st.dirty_pages = 10;
    st.bandwidth = 0;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_CONTINUE);
}

static void downtime_policy_round_cap(void **state)
{
    (void)state;
    struct mig__policy_params p = {.policy = MIG_POLICY_DOWNTIME, .downtime_ms = 300,
                                   .max_rounds = 10};
    struct mig__round_stats st = base();
    st.dirty_pages = 1000 * MB / 4096;
    st.round = 9;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_CONTINUE);
    st.round = 10;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_STOP_AND_COPY);
    /* with a time limit the cap defers to the limit */
    p.timeout_ms = 60000;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_CONTINUE);
}

static void xl_policy(void **state)
{
    (void)state;
    struct mig__policy_params p = {.policy = MIG_POLICY_XL};
    struct mig__round_stats st = base();
    st.dirty_pages = 10000;
    for (uint32_t r = 1; r < 5; r++) {
        st.round = r;
        assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_CONTINUE);
    }
    st.round = 5;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_STOP_AND_COPY);
    st.round = 2;
    st.dirty_pages = 49;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_STOP_AND_COPY);
    st.dirty_pages = 50;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_CONTINUE);
}

static void time_limit(void **state)
{
    (void)state;
    struct mig__policy_params p = {.policy = MIG_POLICY_DOWNTIME, .downtime_ms = 300,
                                   .timeout_ms = 5000, .on_timeout = MIG_ON_TIMEOUT_ABORT};
    struct mig__round_stats st = base();
    st.dirty_pages = 1000 * MB / 4096;
    st.elapsed_ms = 4999;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_CONTINUE);
    st.elapsed_ms = 5000;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_ABORT);
    p.on_timeout = MIG_ON_TIMEOUT_SWITCHOVER;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_STOP_AND_COPY);
    /* the limit applies to the xl policy too */
    p.policy = MIG_POLICY_XL;
    p.on_timeout = MIG_ON_TIMEOUT_ABORT;
    st.round = 1;
    assert_int_equal(mig__policy_decide(&st, &p), MIG_DECIDE_ABORT);
    assert_string_equal(mig__decision_name(MIG_DECIDE_ABORT), "abort");
}

static void throttle_steps(void **state)
{
    (void)state;
    struct mig__throttle_state ts = {0};
    struct mig__round_stats st = base();
    /* converging guest: never throttled */
    st.dirty_rate = 100 * MB;
    for (int i = 0; i < 5; i++)
        assert_int_equal(mig__throttle_next(&ts, &st), 0);
    /* dirtying at 60% of bandwidth: throttled after two bad rounds */
    st.dirty_rate = 600 * MB;
    assert_int_equal(mig__throttle_next(&ts, &st), 0);
    assert_int_equal(mig__throttle_next(&ts, &st), 20);
    assert_int_equal(mig__throttle_next(&ts, &st), 30);
    /* a good round keeps the throttle where it is */
    st.dirty_rate = 100 * MB;
    assert_int_equal(mig__throttle_next(&ts, &st), 30);
    st.dirty_rate = 2000 * MB;
    assert_int_equal(mig__throttle_next(&ts, &st), 40);
    assert_int_equal(mig__throttle_next(&ts, &st), 50);
    /* capped at 99 */
    for (int i = 0; i < 40; i++)
        mig__throttle_next(&ts, &st);
    assert_int_equal(ts.percent, 99);
}

static void cap_conversion(void **state)
{
    (void)state;
    assert_int_equal(mig__throttle_to_cap(1, 20), 80);
    assert_int_equal(mig__throttle_to_cap(4, 20), 320);
    assert_int_equal(mig__throttle_to_cap(2, 99), 2);
    assert_int_equal(mig__throttle_to_cap(1, 100), 1); /* never 0: 0 means uncapped */
    assert_int_equal(mig__throttle_to_cap(3, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(predict),
        cmocka_unit_test(downtime_policy),
        cmocka_unit_test(downtime_policy_round_cap),
        cmocka_unit_test(xl_policy),
        cmocka_unit_test(time_limit),
        cmocka_unit_test(throttle_steps),
        cmocka_unit_test(cap_conversion),
    };
    return cmocka_run_group_tests_name("session-convergence", tests, NULL, NULL);
}
