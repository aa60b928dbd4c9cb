/* Unit tests for the migration state machine (state.c). */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mig-internal.h"

static struct mig_ctx *quiet_ctx(void)
{
    struct mig_ctx *ctx;
    assert_int_equal(mig_ctx_new(&ctx), 0);
    mig_ctx_set_logger(ctx, NULL, NULL);
    return ctx;
}

static void source_happy_path(void **state)
{
    (void)state;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig_fsm f;
    mig_fsm_init(&f, ctx, MIG_ROLE_SOURCE);
    assert_int_equal(f.state, MIG_STATE_NONE);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_NONE, MIG_STATE_SETUP), 0);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_SETUP, MIG_STATE_PRECOPY), 0);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_PRECOPY, MIG_STATE_STOPCOPY), 0);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_STOPCOPY, MIG_STATE_COMMIT_SENT), 0);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_COMMIT_SENT, MIG_STATE_DONE), 0);
    assert_true(mig_state_is_final(f.state));
    /* nothing leaves DONE */
    for (int s = 0; s < MIG_STATE__COUNT; s++)
        assert_int_equal(mig_fsm_transition(&f, MIG_STATE_DONE, (enum mig_state)s), -MIG_ESTATE);
    assert_int_equal(f.state, MIG_STATE_DONE);
    mig_ctx_free(ctx);
}

static void compare_and_set_refuses_wrong_from(void **state)
{
    (void)state;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig_fsm f;
    mig_fsm_init(&f, ctx, MIG_ROLE_SOURCE);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_NONE, MIG_STATE_SETUP), 0);
    /* caller believes it is in PRECOPY: refused, state unchanged */
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_PRECOPY, MIG_STATE_STOPCOPY), -MIG_ESTATE);
    assert_int_equal(f.state, MIG_STATE_SETUP);
    mig_ctx_free(ctx);
}

static void source_never_fails_after_commit_without_answer(void **state)
{
    (void)state;
    /* After COMMIT is sent the source cannot be cancelled: only DONE, INDOUBT,
     * or FAILED on the peer's explicit refusal. */
    assert_false(mig_state_edge_ok(MIG_ROLE_SOURCE, MIG_STATE_COMMIT_SENT, MIG_STATE_CANCELLED));
    assert_true(mig_state_edge_ok(MIG_ROLE_SOURCE, MIG_STATE_COMMIT_SENT, MIG_STATE_INDOUBT));
    assert_true(mig_state_edge_ok(MIG_ROLE_SOURCE, MIG_STATE_INDOUBT, MIG_STATE_DONE));
    assert_true(mig_state_edge_ok(MIG_ROLE_SOURCE, MIG_STATE_INDOUBT, MIG_STATE_FAILED));
    assert_false(mig_state_edge_ok(MIG_ROLE_SOURCE, MIG_STATE_INDOUBT, MIG_STATE_PRECOPY));
    assert_false(mig_state_is_final(MIG_STATE_INDOUBT));
    /* Every pre-commit state can fail or be cancelled. */
    enum mig_state pre[] = {MIG_STATE_SETUP, MIG_STATE_PRECOPY, MIG_STATE_STOPCOPY};
    for (unsigned i = 0; i < 3; i++) {
        assert_true(mig_state_edge_ok(MIG_ROLE_SOURCE, pre[i], MIG_STATE_FAILED));
        assert_true(mig_state_edge_ok(MIG_ROLE_SOURCE, pre[i], MIG_STATE_CANCELLED));
    }
}

static void roles_do_not_mix(void **state)
{
    (void)state;
    assert_false(mig_state_edge_ok(MIG_ROLE_SOURCE, MIG_STATE_NONE, MIG_STATE_RECEIVING));
    assert_false(mig_state_edge_ok(MIG_ROLE_DESTINATION, MIG_STATE_NONE, MIG_STATE_SETUP));
    assert_false(mig_state_edge_ok((enum mig_role)7, MIG_STATE_NONE, MIG_STATE_SETUP));
    assert_false(mig_state_edge_ok(MIG_ROLE_SOURCE, MIG_STATE__COUNT, MIG_STATE_SETUP));
}

static void destination_paths(void **state)
{
    (void)state;
    struct mig_ctx *ctx = quiet_ctx();
    struct mig_fsm f;
    mig_fsm_init(&f, ctx, MIG_ROLE_DESTINATION);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_NONE, MIG_STATE_RECEIVING), 0);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_RECEIVING, MIG_STATE_READY), 0);
    /* READY cannot go back to RECEIVING */
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_READY, MIG_STATE_RECEIVING), -MIG_ESTATE);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_READY, MIG_STATE_COMMITTED), 0);
    /* committed cannot be discarded */
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_COMMITTED, MIG_STATE_DISCARDED),
                     -MIG_ESTATE);

    mig_fsm_init(&f, ctx, MIG_ROLE_DESTINATION);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_NONE, MIG_STATE_RECEIVING), 0);
    assert_int_equal(mig_fsm_transition(&f, MIG_STATE_RECEIVING, MIG_STATE_DISCARDED), 0);
    assert_true(mig_state_is_final(f.state));
    mig_ctx_free(ctx);
}

static void names(void **state)
{
    (void)state;
    for (int s = 0; s < MIG_STATE__COUNT; s++)
        assert_non_null(mig_state_name((enum mig_state)s));
    assert_string_equal(mig_state_name(MIG_STATE_INDOUBT), "in-doubt");
    assert_string_equal(mig_state_name(MIG_STATE__COUNT), "invalid");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(source_happy_path),
        cmocka_unit_test(compare_and_set_refuses_wrong_from),
        cmocka_unit_test(source_never_fails_after_commit_without_answer),
        cmocka_unit_test(roles_do_not_mix),
        cmocka_unit_test(destination_paths),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests_name("core-state", tests, NULL, NULL);
}
