/* Gradients against central finite differences on a small config, for every parameter
 * tensor: along the gradient's own direction and on the largest element of each third of the tensor
 * (the q, k and v columns of c_attn).
 * Dropout is on with a fixed seed (the loss stays a deterministic function of the weights),
 * so the dropout paths of backward are checked too. */
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"

#define EPS 2e-3f

typedef struct gc {
    qpo_policy *p;
    fixture_batch fb;
    qpo_step_opts so;
    float *g; /* analytic gradient (copy) */
} gc;

static double loss_at(gc *c) {
    char err[256];
    qpo_loss l;
    assert_int_equal(qpo_policy_forward(c->p, &c->fb.b, &c->so, &l, err, sizeof err), 0);
    return l.loss;
}

/* Derivative of the loss along v (restricted to one tensor), by central differences. */
static double fd_along(gc *c, const qpo_policy_tensor *t, const float *v) {
    float *w = qpo_policy_params(c->p) + t->offset;
    float *saved = malloc(sizeof(float) * t->numel);
    memcpy(saved, w, sizeof(float) * t->numel);
    for (size_t i = 0; i < t->numel; i++)
        w[i] = saved[i] + EPS * v[i];
    double lp = loss_at(c);
    for (size_t i = 0; i < t->numel; i++)
        w[i] = saved[i] - EPS * v[i];
    double lm = loss_at(c);
    memcpy(w, saved, sizeof(float) * t->numel);
    free(saved);
    return (lp - lm) / (2.0 * EPS);
}

static void check(const char *name, const char *what, double fd, double an, double scale) {
    double tol =
        5e-3 * fmax(fabs(an), 0.1 * scale) + 3e-4; /* 3e-4: fp32 noise of the differences */
    if (getenv("GC_VERBOSE"))
        print_message("%-32s %-20s fd %.6g an %.6g rel %.2g\n", name, what, fd, an,
                      fabs(fd - an) / fmax(fabs(an), 1e-12));
    if (fabs(fd - an) > tol)
        fail_msg("%s (%s): finite differences %.6g, backward %.6g", name, what, fd, an);
}

static void check_tensor(gc *c, const qpo_policy_tensor *t) {
    const float *g = c->g + t->offset;
    double norm = 0.0;
    for (size_t i = 0; i < t->numel; i++)
        norm += (double)g[i] * g[i];
    norm = sqrt(norm);
    assert_true(norm > 0.0); /* every tensor takes part in the loss */
    float *v = calloc(t->numel, sizeof(float));
    for (size_t i = 0; i < t->numel; i++)
        v[i] = (float)(g[i] / norm);
    check(t->name, "along the gradient", fd_along(c, t, v), norm, norm);
    /* the largest element in each third of the columns (q, k, v of c_attn) or of the rows */
    size_t best[3] = {SIZE_MAX, SIZE_MAX, SIZE_MAX};
    size_t cols = t->ndim == 2 ? (size_t)t->shape[1] : 1;
    for (size_t i = 0; i < t->numel; i++) {
        size_t grp = cols >= 3 ? (i % cols) * 3 / cols : i * 3 / t->numel;
        if (best[grp] == SIZE_MAX || fabsf(g[i]) > fabsf(g[best[grp]]))
            best[grp] = i;
    }
    for (int k = 0; k < 3; k++) {
        if (best[k] == SIZE_MAX)
            continue;
        memset(v, 0, sizeof(float) * t->numel);
        v[best[k]] = 1.0f;
        check(t->name, "largest of a third", fd_along(c, t, v), g[best[k]], fabs(g[best[k]]));
    }
    free(v);
}

static void every_tensor(qpo_reward_embed mode) {
    qpo_policy_config cfg = {
        .n_layer = 2, .n_head = 2, .d = 16, .vocab = 48, .ctx = 96, .reward_embed = mode};
    char err[256];
    gc c = {0};
    c.p = qpo_policy_new(&cfg, qpo_backend_cpu(), err, sizeof err);
    assert_non_null(c.p);
    qpo_policy_init_random(c.p, 7);
    /* larger weights than GPT-2's init so every path carries a visible gradient */
    for (size_t i = 0; i < qpo_policy_num_tensors(c.p); i++) {
        const qpo_policy_tensor *t = qpo_policy_tensor_at(c.p, i);
        float *w = qpo_policy_params(c.p) + t->offset;
        for (size_t k = 0; t->ndim == 2 && k < t->numel; k++)
            w[k] *= strncmp(t->name, "embed_", 6) ? 8.0f : 0.3f;
    }
    fixture_batch_random(&c.fb, 3, cfg.vocab, 11);
    for (int b = 0; b < 3; b++)
        c.fb.r[b] /= 100.0f; /* keep the MSE term comparable to the CE */
    c.so = (qpo_step_opts){.lambda = 0.1f, .dropout = 0.1f, .dropout_seed = 5};
    loss_at(&c);
    qpo_policy_backward(c.p);
    size_t n = qpo_policy_num_params(c.p);
    c.g = malloc(sizeof(float) * n);
    memcpy(c.g, qpo_policy_grads(c.p), sizeof(float) * n);
    for (size_t i = 0; i < qpo_policy_num_tensors(c.p); i++)
        check_tensor(&c, qpo_policy_tensor_at(c.p, i));
    free(c.g);
    fixture_batch_free(&c.fb);
    qpo_policy_free(c.p);
}

/* qpo's reward input (r_norm / 100) and the authors' (r_norm): same ops, another value. */
static void test_every_tensor_unit_reward(void **state) {
    (void)state;
    every_tensor(QPO_REWARD_EMBED_UNIT);
}

static void test_every_tensor_raw_reward(void **state) {
    (void)state;
    every_tensor(QPO_REWARD_EMBED_RAW);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_tensor_unit_reward),
                                       cmocka_unit_test(test_every_tensor_raw_reward)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
