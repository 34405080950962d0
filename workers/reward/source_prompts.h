#ifndef QPO_REWARD_SOURCE_PROMPTS_H
#define QPO_REWARD_SOURCE_PROMPTS_H

/* The source prompts D_0 is built from (docs/qpo-recipe.md section 6): InstructEval's YAML
 * lists, <dir>/instructeval/<collection>/<task>.yaml (collection e.g. "ape",
 * "low_perplexity_prompts/llama7b"), and Prompt-OIRL's math prompts,
 * <dir>/prompt_oirl/math_prompts.json ("train" list; collection "prompt_oirl"). */

#include <stddef.h>

#include "error.h"

typedef struct qpo_source_prompt {
    char *method; /* "instructeval/ape", "prompt_oirl/CoT" */
    char *text;
} qpo_source_prompt;

/* Appends the collection's prompts for task to *list (realloc'd). Unknown collection or
 * unreadable file: QPO_EXIT_USAGE naming the path. */
int qpo_source_prompts_load(const char *dir, const char *collection, const char *task,
                            qpo_source_prompt **list, size_t *n, qpo_err *err);

void qpo_source_prompts_free(qpo_source_prompt *list, size_t n);

#endif
