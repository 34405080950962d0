/* Generation: the sampling rule (top-k, top-p with the crossing token, ties by id), greedy
 * prompts against the PyTorch fixture (which recomputes the full sequence each step, so the KV
 * cache is checked too), batched decoding equal to one query at a time, stop at eos. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "generate.h"

static void test_filter_rules(void **state) {
    (void)state;
    int32_t ids[8];
    double pr[8];
    /* ties by token id: ids 1 and 2 tie at the top, 3 next */
    float tie[5] = {0.0f, 3.0f, 3.0f, 2.0f, -1.0f};
    assert_int_equal(qpo_sample_filter(tie, 5, 2, 1.0f, ids, pr), 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 2);
    /* probabilities 0.5, 0.3, 0.2: p 0.6 keeps the crossing token (2 kept), p 0.5 keeps 1 */
    float l[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    assert_int_equal(qpo_sample_filter(l, 3, 0, 0.6f, ids, pr), 2);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 1);
    assert_float_equal(pr[0], 0.625, 1e-6);
    assert_int_equal(qpo_sample_filter(l, 3, 0, 0.5f, ids, pr), 1);
    /* top-k first, then top-p over the renormalised k: 0.5/0.8 = 0.625 < 0.9 keeps both */
    assert_int_equal(qpo_sample_filter(l, 3, 2, 0.9f, ids, pr), 2);
    assert_float_equal(pr[1], 0.375, 1e-6);
    /* greedy: the lowest id among equal maxima */
    qpo_gen_opts g = {.greedy = 1};
    assert_int_equal(qpo_sample_token(tie, 5, &g, 0, 0), 1);
}

static void test_sampling_frequencies(void **state) {
    (void)state;
    float l[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    qpo_gen_opts g = {.top_k = 2, .top_p = 0.9f};
    int counts[3] = {0};
    for (int s = 0; s < 4000; s++)
        counts[qpo_sample_token(l, 3, &g, 99, s)]++;
    assert_int_equal(counts[2], 0); /* outside the top 2 */
    /* 0.625 expected; 4000 draws: 5 standard deviations is about 0.04 */
    assert_in_range(counts[0], 2340, 2660);
}

static qpo_policy *load_scaled(void) {
    char err[512], *w = fixture_path("weights.safetensors");
    qpo_policy *p = qpo_policy_load(w, qpo_backend_cpu(), err, sizeof err);
    if (!p)
        fail_msg("%s", err);
    free(w);
    json_error_t jerr;
    char *g = fixture_path("gen.json");
    json_t *gen = json_load_file(g, 0, &jerr);
    assert_non_null(gen);
    float scale = (float)json_real_value(json_object_get(gen, "weight_scale_2d"));
    json_decref(gen);
    free(g);
    for (size_t i = 0; i < qpo_policy_num_tensors(p); i++) {
        const qpo_policy_tensor *t = qpo_policy_tensor_at(p, i);
        float *x = qpo_policy_params(p) + t->offset;
        for (size_t k = 0; t->ndim == 2 && k < t->numel; k++)
            x[k] *= scale;
    }
    return p;
}

static void test_greedy_matches_pytorch(void **state) {
    (void)state;
    qpo_policy *p = load_scaled();
    fixture_batch fb;
    char *b = fixture_path("batch.safetensors"), *g = fixture_path("gen.json"), err[256];
    fixture_batch_load(b, &fb);
    json_error_t jerr;
    json_t *gen = json_load_file(g, 0, &jerr), *want = json_object_get(gen, "greedy");
    int n = fb.b.B, len[16];
    int32_t out[16 * QPO_PGDT_PLEN];
    uint64_t seeds[16] = {0};
    qpo_gen_opts o;
    qpo_gen_opts_default(&o);
    o.greedy = 1;
    o.reward = (float)json_real_value(json_object_get(gen, "reward"));
    assert_int_equal(qpo_generate(p, &o, n, fb.qi, fb.qm, seeds, out, len, err, sizeof err), 0);
    for (int i = 0; i < n; i++) {
        json_t *row = json_array_get(want, i);
        assert_int_equal(len[i], (int)json_array_size(row));
        for (int t = 0; t < len[i]; t++)
            if (out[i * QPO_PGDT_PLEN + t] != json_integer_value(json_array_get(row, t)))
                fail_msg("query %d, token %d: %d, PyTorch %d", i, t, out[i * QPO_PGDT_PLEN + t],
                         (int)json_integer_value(json_array_get(row, t)));
    }
    json_decref(gen);
    fixture_batch_free(&fb);
    free(b), free(g);
    qpo_policy_free(p);
}

static void generate_in_batches(qpo_policy *p, qpo_gen_opts o, int batch, fixture_batch *fb,
                                const uint64_t *seeds, int32_t *out, int *len) {
    char err[256];
    o.batch = batch;
    assert_int_equal(qpo_generate(p, &o, fb->b.B, fb->qi, fb->qm, seeds, out, len, err, sizeof err),
                     0);
}

static void test_batched_equals_single(void **state) {
    (void)state;
    qpo_policy *p = load_scaled();
    enum { N = 7 };
    fixture_batch fb;
    fixture_batch_random(&fb, N, 512, 3);
    uint64_t seeds[N];
    for (int i = 0; i < N; i++)
        seeds[i] = 1000 + i;
    for (int mode = 0; mode < 2; mode++) {
        qpo_gen_opts o;
        qpo_gen_opts_default(&o);
        o.greedy = mode == 0;
        o.top_k = 5, o.top_p = 0.8f;
        int32_t a[N * QPO_PGDT_PLEN], b[N * QPO_PGDT_PLEN], c[N * QPO_PGDT_PLEN];
        int la[N], lb[N], lc[N];
        generate_in_batches(p, o, N, &fb, seeds, a, la);
        generate_in_batches(p, o, 1, &fb, seeds, b, lb);
        generate_in_batches(p, o, 3, &fb, seeds, c, lc);
        assert_memory_equal(la, lb, sizeof la);
        assert_memory_equal(la, lc, sizeof la);
        assert_memory_equal(a, b, sizeof a);
        assert_memory_equal(a, c, sizeof a);
    }
    fixture_batch_free(&fb);
    qpo_policy_free(p);
}

/* A policy whose prompt head always prefers eos: every prompt is just eos. */
static void test_stops_at_eos(void **state) {
    (void)state;
    qpo_policy_config cfg;
    qpo_policy_config_named("tiny", &cfg);
    char err[256];
    qpo_policy *p = qpo_policy_new(&cfg, qpo_backend_cpu(), err, sizeof err);
    qpo_policy_init_random(p, 1);
    float *w = qpo_policy_params(p);
    const qpo_policy_tensor *mw = qpo_policy_tensor_find(p, "mlp_head.weight");
    const qpo_policy_tensor *mb = qpo_policy_tensor_find(p, "mlp_head.bias");
    const qpo_policy_tensor *wte = qpo_policy_tensor_find(p, "wte.weight");
    memset(w + mw->offset, 0, sizeof(float) * mw->numel);
    for (size_t i = 0; i < mb->numel; i++)
        w[mb->offset + i] = 1.0f;
    for (int c = 0; c < cfg.d; c++)
        w[wte->offset + (size_t)(cfg.vocab - 1) * cfg.d + c] = 1.0f;
    fixture_batch fb;
    fixture_batch_random(&fb, 2, cfg.vocab, 4);
    uint64_t seeds[2] = {1, 2};
    int32_t out[2 * QPO_PGDT_PLEN];
    int len[2];
    qpo_gen_opts o;
    qpo_gen_opts_default(&o);
    assert_int_equal(qpo_generate(p, &o, 2, fb.qi, fb.qm, seeds, out, len, err, sizeof err), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(len[i], 1);
        for (int t = 0; t < QPO_PGDT_PLEN; t++)
            assert_int_equal(out[i * QPO_PGDT_PLEN + t], cfg.vocab - 1);
    }
    o.max_new = 41;
    assert_int_equal(qpo_generate(p, &o, 2, fb.qi, fb.qm, seeds, out, len, err, sizeof err), -1);
    fixture_batch_free(&fb);
    qpo_policy_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_rules),           cmocka_unit_test(test_sampling_frequencies),
        cmocka_unit_test(test_greedy_matches_pytorch), cmocka_unit_test(test_batched_equals_single),
        cmocka_unit_test(test_stops_at_eos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
