/* The paired bootstrap of qpo results on hand-made per-item differences whose intervals are
 * known: a clear gain on 200 items excludes 0, a small one on 40 items does not; a constant
 * difference has a point interval; one seed's items never mix with another's; a fixed seed
 * gives the same interval twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "results.h"

/* n items: `up` at +1 (QPO right, baseline wrong), `down` at -1, the rest 0. */
static double *diffs_of(size_t n, size_t up, size_t down) {
    double *d = calloc(n, sizeof *d);
    for (size_t i = 0; i < up; i++)
        d[i] = 1;
    for (size_t i = up; i < up + down; i++)
        d[i] = -1;
    return d;
}

/* mean 0.2, sd 0.6, standard error 0.042: the interval is about [0.12, 0.28]. */
static void test_clear_gain_excludes_zero(void **state) {
    (void)state;
    double *d = diffs_of(200, 60, 20);
    const double *one[] = {d};
    size_t n[] = {200};
    qpo_interval ci;
    assert_int_equal(qpo_paired_bootstrap(one, n, 1, 2000, 7, &ci), 0);
    assert_true(fabs(ci.mean - 0.2) < 1e-12);
    assert_true(ci.lo > 0.09 && ci.lo < 0.15);
    assert_true(ci.hi > 0.25 && ci.hi < 0.31);
    qpo_interval again;
    assert_int_equal(qpo_paired_bootstrap(one, n, 1, 2000, 7, &again), 0);
    assert_true(again.lo == ci.lo && again.hi == ci.hi);
    free(d);
}

/* mean 0.05, standard error 0.079 on 40 items: the interval holds 0. */
static void test_small_gain_on_few_items_includes_zero(void **state) {
    (void)state;
    double *d = diffs_of(40, 6, 4);
    const double *one[] = {d};
    size_t n[] = {40};
    qpo_interval ci;
    assert_int_equal(qpo_paired_bootstrap(one, n, 1, 2000, 7, &ci), 0);
    assert_true(fabs(ci.mean - 0.05) < 1e-12);
    assert_true(ci.lo < 0 && ci.hi > 0);
    assert_true(ci.lo > -0.15 && ci.hi < 0.25);
    free(d);
}

/* Seed 0 always +0.1, seed 1 always -0.3 on a different number of items: resampling inside each
 * seed keeps every statistic at their average, -0.1. Were items pooled across seeds, the
 * interval would be wide. */
static void test_seeds_resample_apart(void **state) {
    (void)state;
    double a[50], b[30];
    for (int i = 0; i < 50; i++)
        a[i] = 0.1;
    for (int i = 0; i < 30; i++)
        b[i] = -0.3;
    const double *two[] = {a, b};
    size_t n[] = {50, 30};
    qpo_interval ci;
    assert_int_equal(qpo_paired_bootstrap(two, n, 2, 500, 1, &ci), 0);
    assert_true(fabs(ci.mean + 0.1) < 1e-12);
    assert_true(fabs(ci.lo + 0.1) < 1e-12 && fabs(ci.hi + 0.1) < 1e-12);
}

static void test_refuses_empty_input(void **state) {
    (void)state;
    double a[1] = {1};
    const double *one[] = {a};
    size_t none[] = {0}, n[] = {1};
    qpo_interval ci;
    assert_int_equal(qpo_paired_bootstrap(one, none, 1, 100, 1, &ci), -1);
    assert_int_equal(qpo_paired_bootstrap(one, n, 0, 100, 1, &ci), -1);
    assert_int_equal(qpo_paired_bootstrap(one, n, 1, 0, 1, &ci), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clear_gain_excludes_zero),
        cmocka_unit_test(test_small_gain_on_few_items_includes_zero),
        cmocka_unit_test(test_seeds_resample_apart),
        cmocka_unit_test(test_refuses_empty_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
