/* Text records to training rows (truncation, eos, masks, r_norm), prompts from text, and the
 * epoch loop with a checkpoint after each epoch. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "generate.h"
#include "pgtest.h"
#include "records.h"

static void test_byte_rows(void **state) {
    (void)state;
    qpo_tokenizer *tok = qpo_tokenizer_new_bytes();
    int32_t ids[40], mask[40];
    assert_int_equal(qpo_encode_query(tok, "abc", ids, mask), 0);
    assert_int_equal(ids[0], 'a');
    assert_int_equal(ids[2], 'c');
    assert_int_equal(ids[3], 256);
    assert_int_equal(mask[2], 1);
    assert_int_equal(mask[3], 0);
    assert_int_equal(ids[39], 256);
    const char *long_text = "0123456789012345678901234567890123456789XYZ";
    assert_int_equal(qpo_encode_query(tok, long_text, ids, mask), 0);
    assert_int_equal(ids[39], '9'); /* the first 40 tokens */
    assert_int_equal(mask[39], 1);
    int32_t ids2[40], mask2[40];
    assert_int_equal(qpo_encode_prompt(tok, "hi<|endoftext|>", ids, mask), 0);
    assert_int_equal(qpo_encode_prompt(tok, "hi", ids2, mask2), 0);
    assert_memory_equal(ids, ids2, sizeof ids);
    assert_memory_equal(mask, mask2, sizeof mask);
    assert_int_equal(ids[2], 256); /* eos follows the text and counts as real */
    assert_int_equal(mask[2], 1);
    assert_int_equal(mask[3], 0);
    assert_int_equal(qpo_encode_prompt(tok, long_text, ids, mask), 0);
    assert_int_equal(mask[39], 1); /* truncated: no room for eos */
    assert_int_equal(ids[39], '9');
    assert_float_equal(qpo_reward_norm(5.0, 0.0, 10.0), 50.0f, 1e-6);
    qpo_tokenizer_free(tok);
}

static void test_record_errors(void **state) {
    (void)state;
    qpo_tokenizer *tok = qpo_tokenizer_new_bytes();
    qpo_text_record r = {"q", "p", 1.0};
    qpo_records out;
    char err[256];
    assert_int_equal(qpo_records_from_text(tok, 512, &r, 1, 0, 2, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "vocabulary"));
    assert_int_equal(qpo_records_from_text(tok, 257, &r, 1, 2, 2, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "range"));
    assert_int_equal(qpo_records_from_text(tok, 257, &r, 1, 0, 2, &out, err, sizeof err), 0);
    assert_float_equal(out.reward[0], 50.0f, 1e-5);
    qpo_records_free(&out);
    qpo_tokenizer_free(tok);
}

static void test_bpe_rows(void **state) {
    (void)state;
    const char *data = qpo_test_shared_data();
    if (!data) {
        skip(); /* needs ../shared/data/gpt2_bpe */
        return;
    }
    char dir[1024], err[512];
    snprintf(dir, sizeof dir, "%s/gpt2_bpe", data);
    qpo_tokenizer *tok = qpo_tokenizer_load_bpe(dir, err, sizeof err);
    if (!tok)
        fail_msg("%s", err);
    int32_t ids[40], mask[40];
    assert_int_equal(qpo_encode_prompt(tok, "Hello world<|endoftext|>", ids, mask), 0);
    assert_int_equal(ids[0], 15496);
    assert_int_equal(ids[1], 995);
    assert_int_equal(ids[2], 50256);
    assert_int_equal(mask[2], 1);
    assert_int_equal(mask[3], 0);
    qpo_tokenizer_free(tok);
}

typedef struct seen {
    int epochs;
    float first, last;
} seen;

static int on_epoch(void *ud, int epoch, const qpo_loss *mean, float lr) {
    seen *s = ud;
    s->epochs++;
    if (epoch == 1)
        s->first = mean->loss;
    s->last = mean->loss;
    assert_true(isfinite(mean->loss) && lr > 0.0f);
    return 0;
}

static void test_train_epochs_and_prompts(void **state) {
    (void)state;
    qpo_tokenizer *tok = qpo_tokenizer_new_bytes();
    qpo_text_record recs[8];
    const char *qs[8] = {"good film", "bad film", "fine", "awful", "great", "meh", "nice", "poor"};
    for (int i = 0; i < 8; i++)
        recs[i] = (qpo_text_record){qs[i], i % 2 ? "Rate it.<|endoftext|>" : "Judge it.", i};
    qpo_records r;
    char err[512];
    assert_int_equal(qpo_records_from_text(tok, 257, recs, 8, 0, 7, &r, err, sizeof err), 0);
    qpo_policy_config cfg;
    qpo_policy_config_named("tiny", &cfg);
    cfg.vocab = 257;
    qpo_policy *p = qpo_policy_new(&cfg, qpo_backend_cpu(), err, sizeof err);
    qpo_policy_init_random(p, 1);
    qpo_train_opts o;
    qpo_train_opts_default(&o);
    o.batch_size = 4;
    qpo_trainer *tr = qpo_trainer_new(p, &o, &r, err, sizeof err);
    char *dir = temp_dir(), ckpt[1024], state_path[1100];
    snprintf(ckpt, sizeof ckpt, "%s/policy.safetensors", dir);
    seen s = {0};
    assert_int_equal(qpo_trainer_run(tr, 6, ckpt, on_epoch, &s, err, sizeof err), 0);
    assert_int_equal(s.epochs, 6);
    assert_int_equal(qpo_trainer_epochs_done(tr), 6);
    assert_int_equal(qpo_trainer_global_step(tr), 12);
    assert_true(s.last < s.first); /* it learns the 8 records */
    snprintf(state_path, sizeof state_path, "%s.state", ckpt);
    assert_int_equal(access(state_path, R_OK), 0);
    /* prompts from text, same seeds -> same prompts in any batching */
    qpo_gen_opts g;
    qpo_gen_opts_default(&g);
    uint64_t seeds[3] = {1, 2, 3};
    char *a[3], *b[3];
    assert_int_equal(qpo_generate_prompts(p, tok, &g, 3, qs, seeds, a, err, sizeof err), 0);
    g.batch = 1;
    assert_int_equal(qpo_generate_prompts(p, tok, &g, 3, qs, seeds, b, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(a[i], b[i]);
        free(a[i]), free(b[i]);
    }
    qpo_trainer_free(tr);
    qpo_policy_free(p);
    qpo_records_free(&r);
    qpo_tokenizer_free(tok);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_rows),
        cmocka_unit_test(test_record_errors),
        cmocka_unit_test(test_bpe_rows),
        cmocka_unit_test(test_train_epochs_and_prompts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
