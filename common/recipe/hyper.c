#include "hyper.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const qpo_hyper_spec qpo_hyper_specs[QPO_HYPER_COUNT + 1] = {
    {"batch_size", true, 128, 1, 65536},
    {"lr_first", false, 1e-3, 0, 1},
    {"lr_next", false, 1e-4, 0, 1},
    {"epochs_first", true, 100, 1, 100000},
    {"epochs_next", true, 20, 1, 100000},
    {"weight_decay", false, 1e-4, 0, 1},
    {"lr_step_epochs", true, 20, 1, 100000},
    {"lr_gamma", false, 0.65, 0, 1},
    {"grad_clip", false, 0.25, 0, 1e6},
    {"lambda", false, 0.1, 0, 1e6},
    {"dropout", false, 0.1, 0, 0.99},
    {"top_k", true, 2, 1, 50257},
    {"top_p", false, 0.9, 0, 1},
    {"r_star", false, 100, -1e6, 1e6},
    {"max_query_tokens", true, QPO_RECIPE_MAX_TOKENS, 1, 512},
    {"max_prompt_tokens", true, QPO_RECIPE_MAX_TOKENS, 1, 512},
    /* qpo's, not the recipe's: the share of D_t's queries held out to choose each loop's
     * epoch when hyper.select is "heldout" (workers/trainer/README.md). */
    {"heldout", false, 0.1, 0, 0.5},
    {NULL, false, 0, 0, 0},
};

double qpo_hyper_default(const char *key) {
    for (const qpo_hyper_spec *s = qpo_hyper_specs; s->key; s++)
        if (!strcmp(s->key, key))
            return s->def;
    fprintf(stderr, "qpo: no hyper-parameter \"%s\" in the recipe's table\n", key);
    abort();
}
