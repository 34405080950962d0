/* Does the reward token condition the policy? A synthetic D where every query has one prompt
 * logged with a high reward and another with a low one, and which prompt is which depends on
 * the query: the policy must read both the query and r* to write the right one. Trained
 * deterministically on the CPU, then greedy on held-out queries at r* = 100 and r* = 47.
 * QPO_TEST_REWARD_EMBED=raw runs the same test on the authors' reward input, which fails it:
 * it writes one prompt whatever r* (docs/recipe.md). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "generate.h"
#include "records.h"
#include "tokenizer.h"

#define EPOCHS 60

#define NCLASS 2
#define NTRAIN 64
#define NTEST 32

static const char *const class_word[NCLASS] = {"apple", "river"};
/* The high and middle prompts swap between the classes: only query and r* together say which
 * to write. */
static const char *const high[NCLASS] = {"Think step by step.", "Be brief."};
static const char *const middle[NCLASS] = {"Be brief.", "Think step by step."};
static const char *const low[NCLASS] = {"Answer as an expert.", "Classify the tone."};

/* Query i belongs to class i % 2; the numbers make every query text distinct. */
static void query_text(int i, char *buf, size_t n) {
    snprintf(buf, n, "%s report %d", class_word[i % NCLASS], 1000 + 37 * i);
}

typedef struct score {
    int high_ok, low_ok, both_ok, n;
} score;

/* Per query: three prompts logged with a high, a middling and a near-0 reward, so r* = 100 and r* =
 * 47 must pick different prompts among rewards that are all far from 0 (where the authors' input
 * saturates). */
static void build_records(qpo_tokenizer *tok, char (*q)[64], qpo_records *r) {
    qpo_text_record recs[3 * NTRAIN];
    for (int i = 0; i < NTRAIN; i++) {
        query_text(i, q[i], sizeof q[i]);
        int c = i % NCLASS;
        double jitter = (i % 4) * 0.05; /* rewards spread within their band */
        recs[3 * i] = (qpo_text_record){q[i], high[c], 0.85 + jitter};
        recs[3 * i + 1] = (qpo_text_record){q[i], middle[c], 0.4 + jitter};
        recs[3 * i + 2] = (qpo_text_record){q[i], low[c], jitter / 3};
    }
    char err[512];
    if (qpo_records_from_text(tok, qpo_tokenizer_vocab_size(tok), recs, 3 * NTRAIN, 0.0, 1.0, r,
                              err, sizeof err))
        fail_msg("%s", err);
}

static void greedy_at(qpo_policy *p, qpo_tokenizer *tok, float r, const char *const *qs,
                      char **out) {
    qpo_gen_opts g;
    qpo_gen_opts_default(&g);
    g.greedy = 1;
    g.reward = r;
    uint64_t seeds[NTEST] = {0};
    char err[512];
    if (qpo_generate_prompts(p, tok, &g, NTEST, qs, seeds, out, err, sizeof err))
        fail_msg("%s", err);
}

static qpo_reward_embed mode_under_test(void) {
    const char *env = getenv("QPO_TEST_REWARD_EMBED");
    return env && !strcmp(env, "raw") ? QPO_REWARD_EMBED_RAW : QPO_REWARD_EMBED_UNIT;
}

static score train_and_score(void) {
    qpo_reward_embed mode = mode_under_test();
    qpo_tokenizer *tok = qpo_tokenizer_new_bytes();
    char q[NTRAIN][64], tq[NTEST][64], err[512];
    qpo_records r;
    build_records(tok, q, &r);
    qpo_policy_config cfg;
    qpo_policy_config_named("tiny", &cfg);
    cfg.vocab = qpo_tokenizer_vocab_size(tok);
    cfg.reward_embed = mode;
    qpo_policy *p = qpo_policy_new(&cfg, qpo_backend_cpu(), err, sizeof err);
    assert_non_null(p);
    qpo_policy_init_random(p, 3);
    qpo_train_opts o;
    qpo_train_opts_default(&o);
    o.seed = 5;
    o.lr = 5e-3f; /* a short run: the tiny model on 192 rows */
    /* the recipe's 0.1 lets the MSE of 0..100 targets own the clipped gradient for hundreds of
     * steps; a smaller weight keeps this test short without changing what it measures */
    o.lambda = 0.01f;
    /* and a fixed weight: the authors' per-batch switch to 0.5 (the trainer's default) would undo
     * the smaller one as soon as the MSE falls below 10 */
    o.lambda_switch = 0;
    o.batch_size = 16;
    qpo_trainer *tr = qpo_trainer_new(p, &o, &r, err, sizeof err);
    assert_non_null(tr);
    qpo_loss l;
    for (int e = 0; e < EPOCHS; e++)
        if (qpo_trainer_epoch(tr, &l, err, sizeof err))
            fail_msg("%s", err);
    const char *qs[NTEST];
    for (int i = 0; i < NTEST; i++) {
        query_text(NTRAIN + i, tq[i], sizeof tq[i]); /* held out: same classes, new texts */
        qs[i] = tq[i];
    }
    char *hi[NTEST], *lo[NTEST];
    greedy_at(p, tok, 100.0f, qs, hi);
    greedy_at(p, tok, 47.0f, qs, lo);
    score s = {.n = NTEST};
    for (int i = 0; i < NTEST; i++) {
        int c = (NTRAIN + i) % NCLASS;
        int h = !strcmp(hi[i], high[c]), w = !strcmp(lo[i], middle[c]);
        s.high_ok += h, s.low_ok += w, s.both_ok += h && w;
        if (getenv("QPO_TEST_VERBOSE") && i < 4)
            print_message("%s | hi [%s] | lo [%s]\n", qs[i], hi[i], lo[i]);
        free(hi[i]), free(lo[i]);
    }
    print_message("reward_embed %s after %d epochs (loss %.3f): r*=100 writes the high prompt "
                  "for %d/%d, r*=47 the middle one for %d/%d, both for %d/%d\n",
                  mode == QPO_REWARD_EMBED_RAW ? "raw" : "unit", EPOCHS, l.loss, s.high_ok, s.n,
                  s.low_ok, s.n, s.both_ok, s.n);
    qpo_trainer_free(tr);
    qpo_policy_free(p);
    qpo_records_free(&r);
    qpo_tokenizer_free(tok);
    return s;
}

/* qpo's reward input: the prompt follows r* for nearly every held-out query (32/32 measured;
 * the authors' input: 0/32, one prompt at both r*). */
static void test_reward_conditions(void **state) {
    (void)state;
    score s = train_and_score();
    assert_true(s.both_ok >= (int)(0.9 * s.n));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reward_conditions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
