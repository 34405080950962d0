/* The qpo binary's policy commands as a user runs them: loss against the PyTorch fixtures,
 * init + sample with the byte tokenizer, and clear usage errors (exit 2) for bad input. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "fixture.h"
#include "pgtest.h"
#include "safetensors.h"

static char *dir;

/* Runs `qpo ARGS` (stdin from in_text when given); returns the exit code, stdout in *out. */
static int qpo(const char *args, const char *in_text, char **out) {
    char cmd[4096], outp[1024], inp[1024];
    snprintf(outp, sizeof outp, "%s/stdout", dir);
    snprintf(inp, sizeof inp, "%s/stdin", dir);
    FILE *f = fopen(inp, "w");
    fputs(in_text ? in_text : "", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' %s < '%s' > '%s' 2> '%s/stderr'", qpo_test_binary(), args, inp,
             outp, dir);
    int st = system(cmd);
    f = fopen(outp, "r");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    if (out)
        *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_loss_matches_reference(void **state) {
    (void)state;
    char args[2048], *out, *w = fixture_path("weights.safetensors");
    char *b = fixture_path("batch.safetensors"), *r = fixture_path("ref.json");
    snprintf(args, sizeof args,
             "policy loss --weights '%s' --batch '%s' --grads-out '%s/g.safetensors' --steps 10 "
             "--json",
             w, b, dir);
    assert_int_equal(qpo(args, NULL, &out), 0);
    json_error_t jerr;
    json_t *got = json_loads(out, 0, &jerr), *ref = json_load_file(r, 0, &jerr);
    assert_non_null(got);
    json_t *want = json_object_get(ref, "losses");
    double l0 = json_real_value(json_object_get(json_array_get(want, 0), "loss"));
    assert_true(fabs(json_real_value(json_object_get(got, "loss")) - l0) <= 1e-4 * fabs(l0));
    json_t *losses = json_object_get(got, "losses");
    assert_int_equal(json_array_size(losses), 10);
    for (size_t s = 0; s < 10; s++) {
        double a = json_real_value(json_array_get(losses, s));
        double e = json_real_value(json_object_get(json_array_get(want, s + 1), "loss"));
        assert_true(fabs(a - e) <= 1e-4 * fabs(e));
    }
    char gpath[1024], err[256];
    snprintf(gpath, sizeof gpath, "%s/g.safetensors", dir);
    qpo_st_file *g = qpo_st_open(gpath, err, sizeof err);
    assert_non_null(g);
    assert_non_null(qpo_st_find(g, "h.1.mlp.c_proj.weight"));
    assert_non_null(qpo_st_find(g, "predict_return.bias"));
    qpo_st_close(g);
    json_decref(got), json_decref(ref);
    free(w), free(b), free(r);
}

static void test_init_and_sample(void **state) {
    (void)state;
    char args[2048], *out;
    snprintf(args, sizeof args, "policy init --config tiny --vocab 257 --seed 3 --out '%s/b.st'",
             dir);
    assert_int_equal(qpo(args, NULL, NULL), 0);
    snprintf(args, sizeof args,
             "policy sample --weights '%s/b.st' --top-k 2 --top-p 0.9 --seed 1 --reward 100 "
             "--bytes --batch 2",
             dir);
    assert_int_equal(qpo(args, "great movie\nterrible plot\nso so\n", &out), 0);
    int lines = 0;
    for (char *c = out; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 3);
    char first[1 << 16];
    snprintf(first, sizeof first, "%s", out);
    snprintf(args, sizeof args, /* same seed, other batching */
             "policy sample --weights '%s/b.st' --top-k 2 --top-p 0.9 --seed 1 --reward 100 "
             "--bytes --batch 3",
             dir);
    assert_int_equal(qpo(args, "great movie\nterrible plot\nso so\n", &out), 0);
    assert_string_equal(first, out);
}

static void test_usage_errors(void **state) {
    (void)state;
    char args[2048], *w = fixture_path("weights.safetensors");
    assert_int_equal(qpo("policy", NULL, NULL), 2);
    assert_int_equal(qpo("policy frobnicate", NULL, NULL), 2);
    assert_int_equal(qpo("policy init --config huge --out /tmp/x", NULL, NULL), 2);
    assert_int_equal(
        qpo("policy loss --weights /nonexistent --batch /nonexistent --json", NULL, NULL), 2);
    snprintf(args, sizeof args, "policy loss --weights '%s' --batch '%s' --json", w, w);
    assert_int_equal(qpo(args, NULL, NULL), 2); /* weights are not a batch */
    snprintf(args, sizeof args, "policy loss --weights '%s' --batch '%s' --steps -1 --json", w, w);
    assert_int_equal(qpo(args, NULL, NULL), 2);
    snprintf(args, sizeof args, "policy sample --weights '%s' --reward 100 --bytes", w);
    assert_int_equal(qpo(args, "x\n", NULL), 2); /* vocab 512 vs the byte tokenizer's 257 */
    snprintf(args, sizeof args, "policy sample --weights '%s' --reward abc --bytes", w);
    assert_int_equal(qpo(args, "x\n", NULL), 2);
    assert_int_equal(qpo("bench policy --config huge", NULL, NULL), 2);
    assert_int_equal(qpo("bench policy --config tiny --backend tpu", NULL, NULL), 2);
    snprintf(args, sizeof args, "policy loss --weights '%s' --batch '%s' --backend tpu --json", w,
             w);
    assert_int_equal(qpo(args, NULL, NULL), 2);
    assert_int_equal(qpo("policy init --config tiny --out /tmp/x --backend", NULL, NULL), 2);
    snprintf(args, sizeof args, "policy init --backend cpu --config tiny --out '%s/c.st'", dir);
    assert_int_equal(qpo(args, NULL, NULL), 0);
    assert_int_equal(qpo("policy init --help", NULL, NULL), 0);
    free(w);
}

/* The fixture batch with one reward replaced, written to dir/bad.safetensors. */
static void write_bad_batch(float bad) {
    char errbuf[256], path[1100], *b = fixture_path("batch.safetensors");
    qpo_st_file *f = qpo_st_open(b, errbuf, sizeof errbuf);
    assert_non_null(f);
    qpo_st_writer *w = qpo_st_writer_new();
    for (size_t i = 0; i < qpo_st_count(f); i++) {
        const qpo_st_tensor *t = qpo_st_at(f, i);
        void *data = malloc(t->nbytes);
        memcpy(data, t->data, t->nbytes);
        if (!strcmp(t->name, "reward"))
            ((float *)data)[1] = bad;
        assert_int_equal(qpo_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, data), 0);
        free(data);
    }
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    assert_int_equal(qpo_st_writer_write(w, path, errbuf, sizeof errbuf), 0);
    qpo_st_writer_free(w);
    qpo_st_close(f);
    free(b);
}

static const char *stderr_text(void) {
    static char buf[4096];
    char p[1100];
    snprintf(p, sizeof p, "%s/stderr", dir);
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    return buf;
}

/* A NaN, Inf or 1e30 reward used to reach json_pack as a non-finite loss and crash printf. */
static void test_loss_refuses_nonfinite_rewards(void **state) {
    (void)state;
    const float bad[] = {NAN, INFINITY, -INFINITY, 1e30f};
    char args[2048], *w = fixture_path("weights.safetensors");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_bad_batch(bad[i]);
        snprintf(args, sizeof args,
                 "policy loss --weights '%s' --batch '%s/bad.safetensors' --json", w, dir);
        assert_int_equal(qpo(args, NULL, NULL), 2);
        const char *e = stderr_text();
        if (!strstr(e, "'reward' row 1") || !strstr(e, "not a finite reward"))
            fail_msg("reward %g: stderr was: %s", (double)bad[i], e);
    }
    free(w);
}

int main(void) {
    dir = temp_dir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_matches_reference),
        cmocka_unit_test(test_init_and_sample),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_loss_refuses_nonfinite_rewards),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    free(dir);
    return rc;
}
