/* The recipe's split table (docs/qpo-recipe.md section 5) as data: for each task and
 * upstream split, the shares (in 1/10000) of train/collect/dev/test dealt in order over the
 * items sorted by md5("task:upstream_split:index"). Integer shares with cumulative flooring
 * make the counts exact and identical on every machine. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

typedef struct share {
    const char *split;
    int units; /* of 10000 */
} share;

typedef struct split_rule {
    const char *task;
    const char *upstream;
    share shares[4];
} split_rule;

/* qpo: BoolQ's validation keeps 90% as test (the authors' share); the other 10% goes to dev
 * rather than being dropped. CosmosQA's "dev from train" is carved as 9% of train, like
 * HellaSwag. SVAMP's single file is first cut 300 test / 700 (the Hugging Face sizes), then
 * the 700 as 1.8% train / 98% collect / 0.2% dev. */
static const split_rule rules[] = {
    {"ag_news", "train", {{"train", 9000}, {"dev", 1000}}},
    {"ag_news", "test", {{"collect", 1000}, {"test", 9000}}},
    {"boolq", "train", {{"train", 8100}, {"collect", 1000}, {"dev", 900}}},
    {"boolq", "validation", {{"test", 9000}, {"dev", 1000}}},
    {"imdb", "train", {{"train", 8550}, {"collect", 500}, {"dev", 950}}},
    {"imdb", "test", {{"test", 10000}}},
    {"tweet_emotion", "train", {{"train", 8000}, {"dev", 2000}}},
    {"tweet_emotion", "validation", {{"collect", 10000}}},
    {"tweet_emotion", "test", {{"test", 10000}}},
    {"cosmos_qa", "train", {{"train", 8100}, {"collect", 1000}, {"dev", 900}}},
    {"cosmos_qa", "validation", {{"test", 10000}}},
    {"hellaswag", "train", {{"train", 8100}, {"collect", 1000}, {"dev", 900}}},
    {"hellaswag", "validation", {{"test", 10000}}},
    {"gsm8k", "train", {{"train", 4500}, {"collect", 5000}, {"dev", 500}}},
    {"gsm8k", "test", {{"test", 10000}}},
    {"svamp", "all", {{"test", 3000}, {"train", 126}, {"collect", 6860}, {"dev", 14}}},
    {"svamp", "train", {{"train", 180}, {"collect", 9800}, {"dev", 20}}},
    {"svamp", "test", {{"test", 10000}}},
};

int qpo_item_id(const char *upstream_split, int upstream_index) {
    int base = !strcmp(upstream_split, "validation") ? 10000000
               : !strcmp(upstream_split, "test")     ? 20000000
               : !strcmp(upstream_split, "all")      ? 30000000
                                                     : 0;
    return base + upstream_index;
}

static const split_rule *find_rule(const char *task, const char *upstream) {
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (!strcmp(rules[i].task, task) && !strcmp(rules[i].upstream, upstream))
            return &rules[i];
    return NULL;
}

typedef struct keyed {
    unsigned char md5[16];
    qpo_item *item;
} keyed;

static int by_key(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    int c = memcmp(x->md5, y->md5, sizeof(x->md5));
    return c ? c : x->item->upstream_index - y->item->upstream_index;
}

static void deal(const char *task, const split_rule *rule, keyed *ks, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char key[256];
        snprintf(key, sizeof(key), "%s:%s:%d", task, rule->upstream, ks[i].item->upstream_index);
        unsigned int len = 0;
        EVP_Digest(key, strlen(key), ks[i].md5, &len, EVP_md5(), NULL);
    }
    qsort(ks, n, sizeof(*ks), by_key);
    size_t start = 0;
    long cum = 0;
    for (int s = 0; s < 4 && rule->shares[s].split; s++) {
        cum += rule->shares[s].units;
        size_t end = (size_t)((long long)n * cum / 10000);
        for (size_t i = start; i < end; i++)
            ks[i].item->split = rule->shares[s].split;
        start = end;
    }
}

int qpo_items_assign_splits(const char *task, qpo_item_list *list, qpo_err *err) {
    keyed *ks = malloc((list->n ? list->n : 1) * sizeof(*ks));
    if (!ks)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    static const char *const upstreams[] = {"train", "validation", "test", "all"};
    size_t assigned = 0;
    for (size_t u = 0; u < 4; u++) {
        size_t n = 0;
        for (size_t i = 0; i < list->n; i++)
            if (!strcmp(list->items[i].upstream_split, upstreams[u]))
                ks[n++].item = &list->items[i];
        if (!n)
            continue;
        const split_rule *rule = find_rule(task, upstreams[u]);
        if (!rule) {
            free(ks);
            qpo_err_set(err, QPO_EXIT_USAGE, "%s has no use for its upstream split \"%s\"", task,
                        upstreams[u]);
            qpo_err_hint(err,
                         "the recipe's splits (docs/qpo-recipe.md section 5) take %s from "
                         "other upstream splits; import those files instead",
                         task);
            return -1;
        }
        deal(task, rule, ks, n);
        assigned += n;
    }
    free(ks);
    if (assigned != list->n)
        return qpo_err_set(err, QPO_EXIT_USAGE, "unknown upstream split among the rows");
    return 0;
}
