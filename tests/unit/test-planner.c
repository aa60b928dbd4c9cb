#include <config.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <libmig/planner.h>
static void t_dummy(void **st) { (void)st; }
int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(t_dummy)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
