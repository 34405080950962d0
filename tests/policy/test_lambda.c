/* The MSE weight of the return loss follows the authors' per-batch rule (their model/pgdt.py):
 * a batch whose return MSE is below 10 is weighed 0.5 in that step, any other batch lambda; with
 * the rule off every batch gets lambda. Checked on the loss and on the return head's gradient,
 * which must scale with the weight the step chose. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "train.h"

typedef struct step {
    qpo_loss l;
    float bias_grad; /* d loss / d predict_return.bias */
} step;

static step run_step(qpo_policy *p, fixture_batch *fb, float reward, int lambda_switch) {
    for (int i = 0; i < fb->b.B; i++)
        fb->r[i] = reward;
    qpo_step_opts so = {.lambda = 0.1f, .lambda_switch = lambda_switch};
    char err[256];
    step s;
    assert_int_equal(qpo_policy_forward(p, &fb->b, &so, &s.l, err, sizeof err), 0);
    qpo_policy_backward(p);
    const qpo_policy_tensor *t = qpo_policy_tensor_find(p, "predict_return.bias");
    assert_non_null(t);
    s.bias_grad = qpo_policy_grads(p)[t->offset];
    return s;
}

static void test_per_batch_rule(void **state) {
    (void)state;
    qpo_policy_config cfg = {.n_layer = 1, .n_head = 2, .d = 16, .vocab = 48, .ctx = 96};
    char err[256];
    qpo_policy *p = qpo_policy_new(&cfg, qpo_backend_cpu(), err, sizeof err);
    assert_non_null(p);
    qpo_policy_init_random(p, 3);
    fixture_batch fb;
    fixture_batch_random(&fb, 4, cfg.vocab, 9);

    /* A fresh head predicts about 0: rewards 1 give an MSE near 1, rewards 100 near 10^4. */
    step low = run_step(p, &fb, 1.0f, 1), low_off = run_step(p, &fb, 1.0f, 0);
    /* Per batch: a high-MSE batch after a low one is back at lambda. */
    step high = run_step(p, &fb, 100.0f, 1);
    assert_true(low.l.mse < QPO_LAMBDA_SWITCH_MSE);
    assert_true(high.l.mse >= QPO_LAMBDA_SWITCH_MSE);
    assert_true(low.l.lambda == QPO_LAMBDA_SWITCHED);
    assert_true(low_off.l.lambda == 0.1f);
    assert_true(high.l.lambda == 0.1f);
    assert_float_equal(low.l.loss, low.l.ce + 0.5f * low.l.mse, 1e-5);
    assert_float_equal(high.l.loss, high.l.ce + 0.1f * high.l.mse, 1e-2);
    /* Same batch, same weights: the return head's gradient is 5 times larger under the rule. */
    assert_float_equal(low.l.mse, low_off.l.mse, 1e-7);
    assert_true(fabsf(low_off.bias_grad) > 1e-6f);
    assert_float_equal(low.bias_grad / low_off.bias_grad, 5.0, 1e-4);

    fixture_batch_free(&fb);
    qpo_policy_free(p);
}

/* The trainer applies the rule by default: the authors have no way to turn it off. */
static void test_trainer_default_is_the_rule(void **state) {
    (void)state;
    qpo_train_opts o;
    qpo_train_opts_default(&o);
    assert_int_equal(o.lambda_switch, 1);
    assert_true(o.lambda == 0.1f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_batch_rule),
        cmocka_unit_test(test_trainer_default_is_the_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
