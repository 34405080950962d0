/* A prompt's skill follows its content (issue 9, cause 2; docs/sim-llm.md, "The model"),
 * measured through the API the way qpo's reward workers would see it, on TweetEval emotion's
 * validation items with InstructEval's prompts and on GSM8K / SVAMP with Prompt-OIRL's:
 *   - smoothness: a prompt's accuracy and that of its one-word edits (delete, substitute or
 *     insert a word, seeded) correlate at >= 0.7;
 *   - content dependence: a prompt and its edits score closer than unrelated source prompts;
 *   - headroom by recombination: per query group, a prompt made of the source prompts' words
 *     (found by search on the model's group skill, without looking at any item) does at least
 *     as well on that group as the best source prompt picked on the items themselves, and far
 *     better than the best single prompt: what a policy mixing good prompts' words can win.
 * Skips when ../shared/data is absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "model.h"
#include "pgtest.h"
#include "source_prompts.h"

#define EDITS_SEED 20260901u
#define MAX_WORDS 64
#define MAX_VOCAB 512
#define WORD_LEN 48

static sim_data data;
static char prompts_dir[600];

static int setup(void **state) {
    const char *shared = qpo_test_shared_data();
    if (!shared)
        return 0;
    qpo_err err = {0};
    if (sim_data_load_dir(&data, shared, &err) || sim_data_finish(&data, &err))
        return qpo_err_print(&err);
    snprintf(prompts_dir, sizeof(prompts_dir), "%s/prompts", shared);
    return 0;
}

static int teardown(void **state) {
    sim_data_free(&data);
    return 0;
}

static void skip_without_data(void) {
    if (!qpo_test_shared_data()) {
        print_message("SKIP: ../shared/data is absent: prompt content model not measured\n");
        skip();
    }
}

/* ---- prompts as word lists ---- */

typedef struct words {
    char w[MAX_WORDS][WORD_LEN];
    int n;
} words;

static void split(const char *s, words *out) {
    out->n = 0;
    while (*s && out->n < MAX_WORDS) {
        while (*s == ' ' || *s == '\n' || *s == '\t')
            s++;
        size_t len = strcspn(s, " \n\t");
        if (!len)
            break;
        snprintf(out->w[out->n++], WORD_LEN, "%.*s", (int)len, s);
        s += len;
    }
}

static char *join(const words *w) {
    size_t cap = 1;
    for (int i = 0; i < w->n; i++)
        cap += strlen(w->w[i]) + 1;
    char *s = calloc(cap, 1);
    for (int i = 0; i < w->n; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, w->w[i]);
    }
    return s;
}

/* Edits of a word list; word may be NULL for a deletion. */
static void edit(const words *in, int kind, int at, const char *word, words *out) {
    out->n = 0;
    for (int i = 0; i <= in->n; i++) {
        if (kind == 2 && i == at) /* insert before at */
            snprintf(out->w[out->n++], WORD_LEN, "%s", word);
        if (i == in->n)
            break;
        if (i == at && kind == 0) /* delete */
            continue;
        snprintf(out->w[out->n++], WORD_LEN, "%s", i == at && kind == 1 ? word : in->w[i]);
    }
}

/* ---- the source prompts, their vocabulary and items ---- */

typedef struct source {
    const qpo_task *task;
    qpo_source_prompt *list;
    size_t n;
    struct {
        char w[MAX_VOCAB][WORD_LEN];
        int n;
    } vocab; /* distinct words of all the prompts, in first-seen order */
    const sim_item **items;
    size_t n_items;
} source;

static void load_source(source *s, const char *task, const char *const *collections, size_t first,
                        size_t count) {
    memset(s, 0, sizeof(*s));
    s->task = qpo_task_find(task);
    qpo_err err = {0};
    for (int c = 0; collections[c]; c++)
        if (qpo_source_prompts_load(prompts_dir, collections[c], task, &s->list, &s->n, &err))
            fail_msg("loading prompts: %s (%s)", err.msg, err.detail);
    for (size_t i = 0; i < s->n; i++) {
        words w;
        split(s->list[i].text, &w);
        for (int k = 0; k < w.n && s->vocab.n < MAX_VOCAB; k++) {
            int seen = 0;
            for (int j = 0; j < s->vocab.n && !seen; j++)
                seen = !strcmp(s->vocab.w[j], w.w[k]);
            if (!seen)
                snprintf(s->vocab.w[s->vocab.n++], WORD_LEN, "%s", w.w[k]);
        }
    }
    s->items = calloc(count, sizeof(*s->items));
    size_t seen = 0;
    for (size_t i = 0; i < data.n_items && s->n_items < count; i++)
        if (data.items[i].task == s->task && seen++ >= first)
            s->items[s->n_items++] = &data.items[i];
    assert_int_equal(s->n_items, count);
}

static void free_source(source *s) {
    qpo_source_prompts_free(s->list, s->n);
    free(s->items);
}

static const char *const INSTRUCTEVAL[] = {"instructeval/ape",
                                           "instructeval/chat_gpt_prompts",
                                           "instructeval/generic_instruction",
                                           "instructeval/manual",
                                           "instructeval/no_instruction",
                                           "instructeval/rlprompt",
                                           "instructeval/low_perplexity_prompts/llama7b",
                                           NULL};
static const char *const OIRL[] = {"prompt_oirl", NULL};

/* Accuracy of each prompt on the source's items, through the API. */
static void accuracies(const source *s, char *const *prompts, size_t np, double *acc) {
    unsigned char *c = calloc(np * s->n_items, 1);
    sim_api api = {.data = &data, .model = "qpo-sim"};
    qpo_err err = {0};
    if (sim_eval_matrix(&api, (const char *const *)prompts, np, s->items, s->n_items, c, &err))
        fail_msg("%s: %s", s->task->name, err.msg);
    for (size_t p = 0; p < np; p++) {
        long n = 0;
        for (size_t q = 0; q < s->n_items; q++)
            n += c[p * s->n_items + q];
        acc[p] = (double)n / (double)s->n_items;
    }
    free(c);
}

static double pearson(const double *x, const double *y, size_t n) {
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i] / (double)n;
        my += y[i] / (double)n;
    }
    for (size_t i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / sqrt(sxx * syy);
}

/* splitmix64: the test's own seeded choice of edits. */
static uint64_t next(uint64_t *state) {
    uint64_t x = (*state += 0x9E3779B97F4A7C15ULL);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* ---- smoothness and content dependence ---- */

/* Each non-empty source prompt gets `rounds` x three edits: delete one word (when it has two or
 * more), substitute one, insert one, at seeded positions with seeded words of the vocabulary. */
static void smoothness(const char *task, const char *const *collections, size_t first, size_t count,
                       int rounds, double min_corr, double max_gap_ratio) {
    skip_without_data();
    static source s;
    load_source(&s, task, collections, first, count);
    size_t cap = s.n * (1 + 3 * (size_t)rounds), np = 0, n_pairs = 0;
    char **prompts = calloc(cap, sizeof(*prompts));
    size_t *parent =
        calloc(cap, sizeof(*parent)); /* index of the edited prompt; self for a source */
    uint64_t rng = EDITS_SEED;
    for (size_t i = 0; i < s.n; i++) {
        words w, e;
        split(s.list[i].text, &w);
        if (!w.n)
            continue;
        size_t self = np;
        parent[np] = self;
        prompts[np++] = strdup(s.list[i].text);
        for (int round = 0; round < rounds; round++)
            for (int kind = w.n >= 2 ? 0 : 1; kind < 3; kind++) {
                int at = (int)(next(&rng) % (uint64_t)(w.n + (kind == 2)));
                const char *word = s.vocab.w[next(&rng) % (uint64_t)s.vocab.n];
                edit(&w, kind, at, word, &e);
                parent[np] = self;
                prompts[np++] = join(&e);
            }
    }
    double *acc = calloc(np, sizeof(double)), *x = calloc(np, sizeof(double)),
           *y = calloc(np, sizeof(double));
    accuracies(&s, prompts, np, acc);
    double edit_gap = 0, unrelated_gap = 0;
    size_t n_unrelated = 0;
    for (size_t i = 0; i < np; i++) {
        if (parent[i] != i) {
            x[n_pairs] = acc[parent[i]];
            y[n_pairs++] = acc[i];
            edit_gap += fabs(acc[i] - acc[parent[i]]);
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (parent[j] == j) {
                unrelated_gap += fabs(acc[i] - acc[j]);
                n_unrelated++;
            }
    }
    edit_gap /= (double)n_pairs;
    unrelated_gap /= (double)n_unrelated;
    double r = pearson(x, y, n_pairs);
    printf("%s: %zu items, %zu one-word edits of %zu source prompts: correlation of accuracy "
           "%.3f; mean |accuracy gap| to an edit %.3f, between source prompts %.3f\n",
           task, s.n_items, n_pairs, np - n_pairs, r, edit_gap, unrelated_gap);
    assert_true(r >= min_corr);
    /* Sharing all words but one keeps a prompt's score closer than another source prompt's. */
    assert_true(edit_gap <= max_gap_ratio * unrelated_gap);
    for (size_t i = 0; i < np; i++)
        free(prompts[i]);
    free(prompts);
    free(parent);
    free(acc);
    free(x);
    free(y);
    free_source(&s);
}

static void test_tweet_emotion_edits_are_smooth(void **state) {
    /* Validation (after 3257 train tweets), its first 200: 96,000 scoring calls. */
    smoothness("tweet_emotion", INSTRUCTEVAL, 3257, 200, 1, 0.7, 0.5);
}

static void test_math_edits_are_smooth(void **state) {
    /* Six prompts each whose accuracies lie within about 0.1 of one another, so an edit's
     * effect is a larger share of the spread than on TweetEval's 30: lower bounds. */
    smoothness("gsm8k", OIRL, 0, 300, 10, 0.5, 0.8);
    smoothness("svamp", OIRL, 0, 300, 10, 0.5, 0.8);
}

/* ---- headroom by recombination ---- */

#define SEARCH_STEPS 12
#define N_GROUPS 4

/* Greedy: the one-word edit (vocabulary words only) that most raises the group's skill,
 * until none does. Returns how many edits were taken. */
static int climb(const source *s, int group, words *w) {
    int taken = 0;
    for (int step = 0; step < SEARCH_STEPS; step++) {
        char *cur = join(w);
        double best = sim_prompt_skill(s->task, cur, strlen(cur), group);
        free(cur);
        words best_w = *w, e;
        int improved = 0;
        for (int kind = 0; kind < 3; kind++)
            for (int at = 0; at < w->n + (kind == 2); at++)
                for (int v = 0; v < (kind ? s->vocab.n : 1); v++) {
                    if (kind == 0 && w->n < 2)
                        continue;
                    if (kind == 2 && w->n >= MAX_WORDS)
                        continue;
                    edit(w, kind, at, s->vocab.w[v], &e);
                    char *t = join(&e);
                    double k = sim_prompt_skill(s->task, t, strlen(t), group);
                    free(t);
                    if (k > best + 1e-9) {
                        best = k;
                        best_w = e;
                        improved = 1;
                    }
                }
        if (!improved)
            break;
        *w = best_w;
        taken++;
    }
    return taken;
}

static void recombination(const char *task, const char *const *collections, size_t first,
                          size_t count) {
    skip_without_data();
    static source s;
    load_source(&s, task, collections, first, count);
    int *group = calloc(s.n_items, sizeof(int));
    long in_group[N_GROUPS] = {0};
    for (size_t q = 0; q < s.n_items; q++) {
        group[q] = sim_group(s.task, s.items[q]->query, strlen(s.items[q]->query));
        in_group[group[q]]++;
    }
    char **src = calloc(s.n, sizeof(*src));
    for (size_t i = 0; i < s.n; i++)
        src[i] = s.list[i].text;
    unsigned char *c = calloc(s.n * s.n_items, 1);
    sim_api api = {.data = &data, .model = "qpo-sim"};
    qpo_err err = {0};
    if (sim_eval_matrix(&api, (const char *const *)src, s.n, s.items, s.n_items, c, &err))
        fail_msg("%s: %s", task, err.msg);
    /* Best single prompt overall, and best source prompt per group, both picked on the items
     * (the source side's advantage: the recombined prompts never see an item). */
    long single_n = -1, by_source = 0;
    size_t single = 0, winner[N_GROUPS] = {0};
    long winner_n[N_GROUPS] = {-1, -1, -1, -1};
    for (size_t p = 0; p < s.n; p++) {
        long n = 0, ng[N_GROUPS] = {0};
        for (size_t q = 0; q < s.n_items; q++) {
            n += c[p * s.n_items + q];
            ng[group[q]] += c[p * s.n_items + q];
        }
        if (n > single_n) {
            single_n = n;
            single = p;
        }
        for (int g = 0; g < N_GROUPS; g++)
            if (ng[g] > winner_n[g]) {
                winner_n[g] = ng[g];
                winner[g] = (size_t)p;
            }
    }
    char *made[N_GROUPS];
    for (int g = 0; g < N_GROUPS; g++) {
        words w;
        split(s.list[winner[g]].text, &w);
        int taken = climb(&s, g, &w);
        made[g] = join(&w);
        by_source += winner_n[g];
        printf("%s group %d (%ld items): best source %.3f \"%.50s\"; recombined after %d edits: "
               "\"%s\"\n",
               task, g, in_group[g], in_group[g] ? (double)winner_n[g] / in_group[g] : 0,
               src[winner[g]], taken, made[g]);
        if (in_group[g])
            assert_true(taken >= 1); /* the best source prompt is not already a local optimum */
    }
    unsigned char *cm = calloc(N_GROUPS * s.n_items, 1);
    if (sim_eval_matrix(&api, (const char *const *)made, N_GROUPS, s.items, s.n_items, cm, &err))
        fail_msg("%s: %s", task, err.msg);
    long by_made = 0;
    for (size_t q = 0; q < s.n_items; q++)
        by_made += cm[(size_t)group[q] * s.n_items + q];
    double n = (double)s.n_items, made_acc = by_made / n, source_acc = by_source / n,
           single_acc = single_n / n;
    printf("%s: recombined group prompts %.3f, best source prompt per group %.3f (picked on the "
           "items), best single %.3f (\"%.50s\")\n",
           task, made_acc, source_acc, single_acc, src[single]);
    assert_true(made_acc >= source_acc);
    assert_true(made_acc >= single_acc + 0.07);
    for (int g = 0; g < N_GROUPS; g++)
        free(made[g]);
    free(cm);
    free(c);
    free(src);
    free(group);
    free_source(&s);
}

static void test_tweet_emotion_recombined_words_win(void **state) {
    recombination("tweet_emotion", INSTRUCTEVAL, 3257, 374);
}

static void test_math_recombined_words_win(void **state) {
    recombination("gsm8k", OIRL, 0, 300);
    recombination("svamp", OIRL, 0, 300);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tweet_emotion_edits_are_smooth),
        cmocka_unit_test(test_math_edits_are_smooth),
        cmocka_unit_test(test_tweet_emotion_recombined_words_win),
        cmocka_unit_test(test_math_recombined_words_win),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
