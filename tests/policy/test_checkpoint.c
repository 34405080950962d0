/* Checkpoints: our layout round-trips bit for bit; Hugging Face GPT-2 files load with or
 * without the transformer. prefix, in bf16, with attn.bias buffers and lm_head ignored; every
 * mismatch (names, shapes, config, corruption) is a clear error. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "safetensors.h"

static char *dir;

static char *path_in(const char *name) {
    char *s = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(s, "%s/%s", dir, name);
    return s;
}

static qpo_policy *tiny(uint64_t seed) {
    qpo_policy_config cfg;
    qpo_policy_config_named("tiny", &cfg);
    char err[256];
    qpo_policy *p = qpo_policy_new(&cfg, qpo_backend_cpu(), err, sizeof err);
    assert_non_null(p);
    qpo_policy_init_random(p, seed);
    return p;
}

static void test_roundtrip(void **state) {
    (void)state;
    qpo_policy *p = tiny(3);
    char err[512], *path = path_in("rt.safetensors");
    assert_int_equal(qpo_policy_save(p, path, err, sizeof err), 0);
    qpo_policy *q = qpo_policy_load(path, qpo_backend_cpu(), err, sizeof err);
    if (!q)
        fail_msg("%s", err);
    assert_memory_equal(qpo_policy_config_of(p), qpo_policy_config_of(q),
                        sizeof(qpo_policy_config));
    assert_memory_equal(qpo_policy_params(p), qpo_policy_params(q),
                        sizeof(float) * qpo_policy_num_params(p));
    qpo_st_file *f = qpo_st_open(path, err, sizeof err);
    assert_string_equal(qpo_st_metadata(f, "format"), "qpo-pgdt");
    assert_non_null(qpo_st_find(f, "h.1.attn.c_attn.weight"));
    assert_int_equal(qpo_st_find(f, "h.1.attn.c_attn.weight")->shape[1], 3 * 64); /* Conv1D */
    qpo_st_close(f);
    qpo_policy_free(p), qpo_policy_free(q);
    free(path);
}

/* A subset vocabulary's base ids travel in the file's metadata and come back with it; a count
 * that does not fit the vocabulary (vocab - 2) is refused. */
static void test_vocab_ids(void **state) {
    (void)state;
    qpo_policy *p = tiny(4);
    size_t n = 1;
    assert_null(qpo_policy_vocab_ids(p, &n));
    assert_int_equal(n, 0);
    int32_t ids[510];
    for (int i = 0; i < 510; i++)
        ids[i] = 3 * i + 1;
    char err[512], *path = path_in("ids.safetensors");
    assert_int_equal(qpo_policy_set_vocab_ids(p, ids, 509, err, sizeof err), -1);
    assert_non_null(strstr(err, "509"));
    assert_int_equal(qpo_policy_set_vocab_ids(p, ids, 510, err, sizeof err), 0);
    assert_int_equal(qpo_policy_save(p, path, err, sizeof err), 0);
    qpo_policy *q = qpo_policy_load(path, qpo_backend_cpu(), err, sizeof err);
    if (!q)
        fail_msg("%s", err);
    const int32_t *got = qpo_policy_vocab_ids(q, &n);
    assert_int_equal(n, 510);
    assert_memory_equal(got, ids, sizeof ids);
    qpo_policy_free(p), qpo_policy_free(q);
    free(path);
}

static uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)(u >> 16); /* truncation: exactly representable back */
}

/* An HF-style file of p's backbone: bf16, optional "transformer." prefix, extra buffers. */
static void write_hf(qpo_policy *p, const char *hfdir, int prefix) {
    char err[256], path[512];
    qpo_st_writer *w = qpo_st_writer_new();
    size_t n = qpo_policy_num_params(p);
    uint16_t *half = malloc(2 * n);
    const float *x = qpo_policy_params(p);
    for (size_t i = 0; i < n; i++)
        half[i] = to_bf16(x[i]);
    for (size_t i = 0; i < qpo_policy_num_tensors(p); i++) {
        const qpo_policy_tensor *t = qpo_policy_tensor_at(p, i);
        if (!strncmp(t->name, "embed_", 6) || !strncmp(t->name, "mlp_head", 8) ||
            !strncmp(t->name, "predict_return", 14))
            continue;
        char name[96];
        snprintf(name, sizeof name, "%s%s", prefix ? "transformer." : "", t->name);
        assert_int_equal(
            qpo_st_writer_add(w, name, QPO_ST_BF16, t->ndim, t->shape, half + t->offset), 0);
    }
    int64_t bshape[4] = {1, 1, 128, 128};
    uint8_t *mask = calloc(128 * 128, 1);
    assert_int_equal(qpo_st_writer_add(w, "h.0.attn.bias", QPO_ST_U8, 4, bshape, mask), 0);
    const qpo_policy_tensor *wte = qpo_policy_tensor_find(p, "wte.weight");
    assert_int_equal(qpo_st_writer_add(w, "lm_head.weight", QPO_ST_BF16, 2, wte->shape, half), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", hfdir);
    assert_int_equal(qpo_st_writer_write(w, path, err, sizeof err), 0);
    qpo_st_writer_free(w);
    snprintf(path, sizeof path, "%s/config.json", hfdir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"n_head\": 4, \"n_layer\": 2, \"n_embd\": 64}\n");
    fclose(f);
    free(half), free(mask);
}

/* Files from before the reward input was a choice (and pgdt_torch.py's) are the authors'
 * model; a value this version does not know is refused, not guessed. */
static void test_reward_embed_key(void **state) {
    (void)state;
    qpo_policy_config c;
    char err[256];
    const char *base = "{\"n_layer\": 2, \"n_head\": 4, \"d\": 64, \"vocab\": 512, \"ctx\": 128";
    char js[256];
    snprintf(js, sizeof js, "%s}", base);
    assert_int_equal(qpo_policy_config_parse(js, &c, err, sizeof err), 0);
    assert_int_equal(c.reward_embed, QPO_REWARD_EMBED_RAW);
    snprintf(js, sizeof js, "%s, \"reward_embed\": \"unit\"}", base);
    assert_int_equal(qpo_policy_config_parse(js, &c, err, sizeof err), 0);
    assert_int_equal(c.reward_embed, QPO_REWARD_EMBED_UNIT);
    snprintf(js, sizeof js, "%s, \"reward_embed\": \"fourier\"}", base);
    assert_int_equal(qpo_policy_config_parse(js, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "reward_embed"));
    qpo_policy_config_named("tiny", &c);
    assert_int_equal(c.reward_embed, QPO_REWARD_EMBED_UNIT);
    assert_float_equal(qpo_policy_reward_input(&c, 50.0f), 0.5f, 1e-7);
    c.reward_embed = QPO_REWARD_EMBED_RAW;
    assert_float_equal(qpo_policy_reward_input(&c, 50.0f), 50.0f, 1e-7);
}

static void test_hf_backbone(void **state) {
    (void)state;
    for (int prefix = 0; prefix < 2; prefix++) {
        qpo_policy *p = tiny(5);
        char *hf = path_in(prefix ? "hf_prefixed" : "hf_plain"), err[512];
        mkdir(hf, 0700);
        write_hf(p, hf, prefix);
        qpo_policy *q = qpo_policy_from_hf(hf, qpo_backend_cpu(), 9, err, sizeof err);
        if (!q)
            fail_msg("%s", err);
        assert_int_equal(qpo_policy_config_of(q)->n_head, 4);
        assert_int_equal(qpo_policy_config_of(q)->n_layer, 2);
        const qpo_policy_tensor *t = qpo_policy_tensor_find(q, "h.1.mlp.c_fc.weight");
        for (size_t i = 0; i < t->numel; i++) {
            float want;
            uint32_t u = (uint32_t)to_bf16(qpo_policy_params(p)[t->offset + i]) << 16;
            memcpy(&want, &u, 4);
            assert_true(qpo_policy_params(q)[t->offset + i] == want);
        }
        const qpo_policy_tensor *ln = qpo_policy_tensor_find(q, "embed_ln.weight");
        assert_true(qpo_policy_params(q)[ln->offset] == 1.0f); /* heads freshly initialised */
        qpo_policy_free(p), qpo_policy_free(q);
        free(hf);
    }
}

/* Writes p with one tensor replaced/removed/added, and expects load to fail naming it. */
static void expect_load_error(const char *name, const char *what, const char *config_json,
                              const char *needle) {
    qpo_policy *p = tiny(1);
    char err[512], *path = path_in("bad.safetensors");
    qpo_st_writer *w = qpo_st_writer_new();
    for (size_t i = 0; i < qpo_policy_num_tensors(p); i++) {
        const qpo_policy_tensor *t = qpo_policy_tensor_at(p, i);
        const float *x = qpo_policy_params(p) + t->offset;
        if (name && !strcmp(t->name, name) && !strcmp(what, "drop"))
            continue;
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        if (name && !strcmp(t->name, name) && !strcmp(what, "shrink"))
            shape[0]--;
        float *poisoned = NULL;
        if (name && !strcmp(t->name, name) && (!strcmp(what, "nan") || !strcmp(what, "inf"))) {
            poisoned = malloc(sizeof(float) * t->numel);
            memcpy(poisoned, x, sizeof(float) * t->numel);
            poisoned[t->numel / 2] = !strcmp(what, "nan") ? NAN : -INFINITY;
            x = poisoned;
        }
        qpo_st_writer_add(w, t->name, QPO_ST_F32, t->ndim, shape, x);
        free(poisoned);
    }
    if (name && !strcmp(what, "extra")) {
        int64_t one = 1;
        qpo_st_writer_add(w, name, QPO_ST_F32, 1, &one, qpo_policy_params(p));
    }
    if (config_json)
        qpo_st_writer_metadata(w, "config", config_json);
    assert_int_equal(qpo_st_writer_write(w, path, err, sizeof err), 0);
    qpo_st_writer_free(w);
    qpo_policy *q = qpo_policy_load(path, qpo_backend_cpu(), err, sizeof err);
    assert_null(q);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    qpo_policy_free(p);
    free(path);
}

#define TINY_CFG "{\"n_layer\":2,\"n_head\":4,\"d\":64,\"vocab\":512,\"ctx\":128}"

static void test_mismatches(void **state) {
    (void)state;
    expect_load_error("wte.weight", "shrink", TINY_CFG, "wte.weight");
    expect_load_error("h.1.ln_2.bias", "drop", TINY_CFG, "h.1.ln_2.bias");
    expect_load_error("h.2.ln_1.weight", "extra", TINY_CFG, "h.2.ln_1.weight");
    expect_load_error(NULL, "", NULL, "config");
    expect_load_error(NULL, "", "{\"n_layer\":2,\"n_head\":5,\"d\":64,\"vocab\":512,\"ctx\":128}",
                      "divisible");
    expect_load_error(NULL, "", "{\"n_layer\":3,\"n_head\":4,\"d\":64,\"vocab\":512,\"ctx\":128}",
                      "h.2.");
    expect_load_error(NULL, "", "[1,2]", "config");
}

/* A checkpoint whose weights went NaN/Inf (a diverged run, a flipped bit) is refused by file,
 * tensor and kind instead of loading a policy that samples garbage. */
static void test_non_finite(void **state) {
    (void)state;
    expect_load_error("h.0.attn.c_attn.weight", "nan", TINY_CFG,
                      "bad.safetensors: tensor 'h.0.attn.c_attn.weight' holds a non-finite "
                      "value (NaN)");
    expect_load_error("ln_f.bias", "inf", TINY_CFG,
                      "tensor 'ln_f.bias' holds a non-finite "
                      "value (-Inf)");
}

static void test_truncated(void **state) {
    (void)state;
    qpo_policy *p = tiny(2);
    char err[512], *path = path_in("trunc.safetensors");
    assert_int_equal(qpo_policy_save(p, path, err, sizeof err), 0);
    FILE *f = fopen(path, "r+");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    assert_int_equal(truncate(path, size - 100), 0);
    assert_null(qpo_policy_load(path, qpo_backend_cpu(), err, sizeof err));
    assert_true(strlen(err) > 0);
    assert_null(qpo_policy_load("/nonexistent/x.safetensors", qpo_backend_cpu(), err, sizeof err));
    qpo_policy_free(p);
    free(path);
}

int main(void) {
    dir = temp_dir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),  cmocka_unit_test(test_reward_embed_key),
        cmocka_unit_test(test_vocab_ids),  cmocka_unit_test(test_hf_backbone),
        cmocka_unit_test(test_mismatches), cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_non_finite),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    free(dir);
    return rc;
}
