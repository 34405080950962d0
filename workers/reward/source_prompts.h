#ifndef QPO_REWARD_SOURCE_PROMPTS_H
#define QPO_REWARD_SOURCE_PROMPTS_H

/* The source prompts D_0 is built from (docs/qpo-recipe.md section 6): InstructEval's YAML
 * lists, collection "instructeval/<folder>" read from <dir>/instructeval/<folder>/<task>.yaml
 * (folder e.g. "ape", "low_perplexity_prompts/llama7b"), and Prompt-OIRL's math prompts,
 * collection "prompt_oirl" read from <dir>/prompt_oirl/math_prompts.json ("train" list).
 * Collection names are the config's (d0.collections), unchanged on their way to the job. */

#include <stddef.h>

#include "error.h"

#define INSTRUCTEVAL_PREFIX "instructeval/"

typedef struct qpo_source_prompt {
    char *method; /* the collection ("instructeval/ape") or "prompt_oirl/<alias>" */
    char *text;
} qpo_source_prompt;

/* Appends the collection's prompts for task to *list (realloc'd). A name outside the two
 * forms or an unreadable file: QPO_EXIT_USAGE naming it. */
int qpo_source_prompts_load(const char *dir, const char *collection, const char *task,
                            qpo_source_prompt **list, size_t *n, qpo_err *err);

void qpo_source_prompts_free(qpo_source_prompt *list, size_t n);

#endif
