/* The C policy against the independent PyTorch fixtures (tests/reference/make_fixtures.py,
 * cross-checked with pgdt_torch.py ref): logits, both losses, every gradient and the loss
 * after each of 10 AdamW steps, within 1e-4 relative (fp32). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "safetensors.h"
#include "train.h"

#define TOL 1e-4

typedef struct ctx {
    qpo_policy *p;
    fixture_batch fb;
    json_t *ref;
} ctx;

static int setup(void **state) {
    ctx *c = calloc(1, sizeof *c);
    char err[512];
    char *w = fixture_path("weights.safetensors"), *b = fixture_path("batch.safetensors");
    char *r = fixture_path("ref.json");
    c->p = qpo_policy_load(w, qpo_backend_cpu(), err, sizeof err);
    if (!c->p)
        fail_msg("%s", err);
    fixture_batch_load(b, &c->fb);
    json_error_t jerr;
    c->ref = json_load_file(r, 0, &jerr);
    assert_non_null(c->ref);
    free(w), free(b), free(r);
    *state = c;
    return 0;
}

static int teardown(void **state) {
    ctx *c = *state;
    qpo_policy_free(c->p);
    fixture_batch_free(&c->fb);
    json_decref(c->ref);
    free(c);
    return 0;
}

static double ref_loss(ctx *c, int step, const char *key) {
    json_t *l = json_array_get(json_object_get(c->ref, "losses"), step);
    return json_real_value(json_object_get(l, key));
}

static void assert_close(double got, double want, const char *what) {
    double rel = fabs(got - want) / fabs(want);
    if (rel > TOL)
        fail_msg("%s: got %.8g, PyTorch %.8g (relative difference %.3g)", what, got, want, rel);
}

static void test_config_from_metadata(void **state) {
    ctx *c = *state;
    const qpo_policy_config *cfg = qpo_policy_config_of(c->p);
    assert_int_equal(cfg->n_layer, 2);
    assert_int_equal(cfg->n_head, 4);
    assert_int_equal(cfg->d, 64);
    assert_int_equal(cfg->vocab, 512);
    assert_int_equal(cfg->ctx, 128);
}

static void test_logits(void **state) {
    ctx *c = *state;
    char err[256], *path = fixture_path("logits.safetensors");
    int V = qpo_policy_config_of(c->p)->vocab;
    size_t n = (size_t)c->fb.b.B * QPO_PGDT_PLEN * V;
    float *got = malloc(n * 4), *want = malloc(n * 4);
    qpo_st_file *f = qpo_st_open(path, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(qpo_st_read_f32(qpo_st_find(f, "logits"), want, n, err, sizeof err), 0);
    assert_int_equal(qpo_policy_logits(c->p, &c->fb.b, got, err, sizeof err), 0);
    double rel = rel_max_diff(got, want, n);
    if (rel > TOL)
        fail_msg("logits differ from PyTorch: %.3g relative", rel);
    qpo_st_close(f);
    free(got), free(want), free(path);
}

static void test_losses_and_grads(void **state) {
    ctx *c = *state;
    char err[256], *path = fixture_path("grads.safetensors");
    qpo_step_opts so = {.lambda = 0.1f};
    qpo_loss l;
    assert_int_equal(qpo_policy_forward(c->p, &c->fb.b, &so, &l, err, sizeof err), 0);
    assert_close(l.ce, ref_loss(c, 0, "ce"), "ce");
    assert_close(l.mse, ref_loss(c, 0, "mse"), "mse");
    assert_close(l.loss, ref_loss(c, 0, "loss"), "loss");
    qpo_policy_backward(c->p);
    qpo_st_file *f = qpo_st_open(path, err, sizeof err);
    assert_non_null(f);
    const float *g = qpo_policy_grads(c->p);
    assert_int_equal(qpo_st_count(f), qpo_policy_num_tensors(c->p));
    for (size_t i = 0; i < qpo_policy_num_tensors(c->p); i++) {
        const qpo_policy_tensor *t = qpo_policy_tensor_at(c->p, i);
        float *want = malloc(t->numel * 4);
        const qpo_st_tensor *st = qpo_st_find(f, t->name);
        if (!st)
            fail_msg("gradient %s missing from the fixture", t->name);
        assert_int_equal(qpo_st_read_f32(st, want, t->numel, err, sizeof err), 0);
        double rel = rel_max_diff(g + t->offset, want, t->numel);
        if (rel > TOL)
            fail_msg("gradient of %s differs from PyTorch: %.3g relative", t->name, rel);
        free(want);
    }
    qpo_st_close(f);
    free(path);
}

static void test_adamw_steps(void **state) {
    ctx *c = *state;
    char err[256];
    qpo_loss losses[10];
    /* reload: the previous tests leave the weights untouched, but be explicit */
    char *w = fixture_path("weights.safetensors");
    qpo_policy *p = qpo_policy_load(w, qpo_backend_cpu(), err, sizeof err);
    assert_non_null(p);
    assert_int_equal(
        qpo_policy_fit_batch(p, &c->fb.b, 10, 1e-3f, 1e-4f, 0.25f, losses, err, sizeof err), 0);
    for (int s = 1; s <= 10; s++) {
        char what[64];
        snprintf(what, sizeof what, "loss after %d AdamW steps", s);
        assert_close(losses[s - 1].loss, ref_loss(c, s, "loss"), what);
    }
    assert_true(losses[9].loss < ref_loss(c, 0, "loss")); /* it learns */
    qpo_policy_free(p);
    free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_from_metadata),
        cmocka_unit_test(test_logits),
        cmocka_unit_test(test_losses_and_grads),
        cmocka_unit_test(test_adamw_steps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
