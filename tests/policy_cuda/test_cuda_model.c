/* The whole model on the CUDA backend: against the PyTorch fixtures (the committed tiny set, or
 * the directory in QPO_CUDA_REF_DIR, e.g. `pgdt_torch.py ref --config gpt2`), and against the
 * CPU backend on the same weights and batch (logits, losses with dropout, every gradient,
 * 10 AdamW steps), all within 1e-4 relative in fp32. QPO_CUDA_TEST_CONFIG picks the size of
 * the CPU comparison (tiny by default; gpt2 on a GPU machine). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda_util.h"
#include "fixture.h"
#include "safetensors.h"
#include "train.h"

#define TOL 1e-4

static const qpo_backend *gpu;

static char *ref_path(const char *name) {
    const char *dir = getenv("QPO_CUDA_REF_DIR");
    if (!dir || !*dir)
        return fixture_path(name);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static void assert_close(double got, double want, double tol, const char *what) {
    double rel = fabs(got - want) / fabs(want);
    if (!(rel <= tol))
        fail_msg("%s: got %.8g, want %.8g (relative difference %.3g, tolerance %.1g)", what, got,
                 want, rel, tol);
}

static double ref_loss(json_t *ref, int step, const char *key) {
    json_t *l = json_array_get(json_object_get(ref, "losses"), step);
    return json_real_value(json_object_get(l, key));
}

/* Every gradient of p (CUDA) against the same-named tensors of a host array or a file. */
static void check_grads(qpo_policy *p, const float *want_all, qpo_st_file *want_file, double tol,
                        const char *against) {
    char err[256];
    float *g = from_dev(gpu, qpo_policy_grads(p), qpo_policy_num_params(p));
    for (size_t i = 0; i < qpo_policy_num_tensors(p); i++) {
        const qpo_policy_tensor *t = qpo_policy_tensor_at(p, i);
        float *want = (float *)want_all + t->offset, *buf = NULL;
        if (want_file) {
            const qpo_st_tensor *st = qpo_st_find(want_file, t->name);
            if (!st)
                fail_msg("gradient %s missing from the fixture", t->name);
            want = buf = malloc(t->numel * 4);
            assert_int_equal(qpo_st_read_f32(st, buf, t->numel, err, sizeof err), 0);
        }
        double rel = rel_max_diff(g + t->offset, want, t->numel);
        if (!(rel <= tol))
            fail_msg("gradient of %s: CUDA differs from %s by %.3g relative", t->name, against,
                     rel);
        free(buf);
    }
    free(g);
}

static void test_pytorch_fixtures(void **state) {
    (void)state;
    char err[512], *w = ref_path("weights.safetensors"), *bp = ref_path("batch.safetensors");
    char *rp = ref_path("ref.json"), *gp = ref_path("grads.safetensors");
    char *lp = ref_path("logits.safetensors");
    printf("fixtures: %s\n", w);
    qpo_policy *p = qpo_policy_load(w, gpu, err, sizeof err);
    if (!p)
        fail_msg("%s", err);
    fixture_batch fb;
    fixture_batch_load(bp, &fb);
    json_error_t jerr;
    json_t *ref = json_load_file(rp, 0, &jerr);
    if (!ref)
        fail_msg("%s: %s", rp, jerr.text);
    qpo_st_file *lf = qpo_st_open(lp, err, sizeof err); /* only the committed set has logits */
    if (lf) {
        size_t n = (size_t)fb.b.B * QPO_PGDT_PLEN * qpo_policy_config_of(p)->vocab;
        float *got = malloc(n * 4), *want = malloc(n * 4);
        assert_int_equal(qpo_st_read_f32(qpo_st_find(lf, "logits"), want, n, err, sizeof err), 0);
        assert_int_equal(qpo_policy_logits(p, &fb.b, got, err, sizeof err), 0);
        double rel = rel_max_diff(got, want, n);
        if (rel > TOL)
            fail_msg("logits differ from PyTorch: %.3g relative", rel);
        free(got), free(want);
        qpo_st_close(lf);
    }
    qpo_step_opts so = {.lambda = 0.1f};
    qpo_loss l;
    assert_int_equal(qpo_policy_forward(p, &fb.b, &so, &l, err, sizeof err), 0);
    assert_close(l.ce, ref_loss(ref, 0, "ce"), TOL, "ce against PyTorch");
    assert_close(l.mse, ref_loss(ref, 0, "mse"), TOL, "mse against PyTorch");
    assert_close(l.loss, ref_loss(ref, 0, "loss"), TOL, "loss against PyTorch");
    qpo_policy_backward(p);
    qpo_st_file *gf = qpo_st_open(gp, err, sizeof err);
    if (!gf)
        fail_msg("%s", err);
    check_grads(p, NULL, gf, TOL, "PyTorch");
    qpo_st_close(gf);
    int steps = (int)json_array_size(json_object_get(ref, "losses")) - 1;
    qpo_loss *losses = calloc(steps, sizeof *losses);
    assert_int_equal(
        qpo_policy_fit_batch(p, &fb.b, steps, 1e-3f, 1e-4f, 0.25f, losses, err, sizeof err), 0);
    for (int s = 1; s <= steps; s++) {
        char what[64];
        snprintf(what, sizeof what, "loss after %d AdamW steps against PyTorch", s);
        assert_close(losses[s - 1].loss, ref_loss(ref, s, "loss"), TOL, what);
    }
    free(losses);
    json_decref(ref);
    fixture_batch_free(&fb);
    qpo_policy_free(p);
    free(w), free(bp), free(rp), free(gp), free(lp);
}

static const char *test_config(void) {
    const char *c = getenv("QPO_CUDA_TEST_CONFIG");
    return c && *c ? c : "tiny";
}

/* The same random weights on both backends. */
static void twin(qpo_policy **cpu, qpo_policy **cuda) {
    char err[256];
    qpo_policy_config cfg;
    assert_int_equal(qpo_policy_config_named(test_config(), &cfg), 0);
    *cpu = qpo_policy_new(&cfg, qpo_backend_cpu(), err, sizeof err);
    *cuda = qpo_policy_new(&cfg, gpu, err, sizeof err);
    assert_non_null(*cpu);
    assert_non_null(*cuda);
    qpo_policy_init_random(*cpu, 7);
    qpo_policy_init_random(*cuda, 7);
}

static void test_against_cpu(void **state) {
    (void)state;
    qpo_policy *pc, *pg;
    twin(&pc, &pg);
    int V = qpo_policy_config_of(pc)->vocab, B = 4;
    fixture_batch fb;
    fixture_batch_random(&fb, B, V, 3);
    char err[256];
    size_t n = (size_t)B * QPO_PGDT_PLEN * V;
    float *lc = malloc(n * 4), *lg = malloc(n * 4);
    assert_int_equal(qpo_policy_logits(pc, &fb.b, lc, err, sizeof err), 0);
    assert_int_equal(qpo_policy_logits(pg, &fb.b, lg, err, sizeof err), 0);
    double rel = rel_max_diff(lg, lc, n);
    if (rel > TOL)
        fail_msg("logits: CUDA differs from the CPU backend by %.3g relative", rel);
    free(lc), free(lg);
    /* with dropout: the masks come from the same hash on both */
    qpo_step_opts so = {.lambda = 0.1f, .dropout = 0.1f, .dropout_seed = 99};
    qpo_loss a, b;
    assert_int_equal(qpo_policy_forward(pc, &fb.b, &so, &a, err, sizeof err), 0);
    assert_int_equal(qpo_policy_forward(pg, &fb.b, &so, &b, err, sizeof err), 0);
    assert_close(b.ce, a.ce, TOL, "ce against the CPU backend");
    assert_close(b.mse, a.mse, TOL, "mse against the CPU backend");
    assert_close(b.loss, a.loss, TOL, "loss against the CPU backend");
    qpo_policy_backward(pc);
    qpo_policy_backward(pg);
    check_grads(pg, qpo_policy_grads(pc), NULL, TOL, "the CPU backend");
    /* 10 AdamW steps on one batch */
    qpo_loss la[10], lb[10];
    assert_int_equal(qpo_policy_fit_batch(pc, &fb.b, 10, 1e-3f, 1e-4f, 0.25f, la, err, sizeof err),
                     0);
    assert_int_equal(qpo_policy_fit_batch(pg, &fb.b, 10, 1e-3f, 1e-4f, 0.25f, lb, err, sizeof err),
                     0);
    for (int s = 0; s < 10; s++) {
        char what[64];
        snprintf(what, sizeof what, "loss after %d AdamW steps against the CPU", s + 1);
        assert_close(lb[s].loss, la[s].loss, TOL, what);
    }
    fixture_batch_free(&fb);
    qpo_policy_free(pc);
    qpo_policy_free(pg);
}

int main(void) {
    gpu = cuda_or_skip(QPO_DTYPE_FP32);
    printf("device: %s; CPU comparison on config %s\n", gpu->device, test_config());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pytorch_fixtures),
        cmocka_unit_test(test_against_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
