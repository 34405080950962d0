#ifndef QPO_SIM_EVAL_H
#define QPO_SIM_EVAL_H

/* Measuring the sim the way qpo's reward workers would: render each (prompt, item) with
 * tasks.h, send it through the API (in-process, same code as over HTTP), read the answer back
 * from the response JSON, and summarise prompt sensitivity (docs/sim-llm.md, "The oracle"). */

#include <stddef.h>

#include "api.h"
#include "error.h"

/* correct[p * n_items + q] = 1 when prompt p answers item q right, zero-shot. Label tasks use
 * /v1/completions (argmin mean NLL over verbalizers), math /v1/chat/completions (extracted
 * answer). -1 with err set when a response cannot be read. */
int sim_eval_matrix(const sim_api *api, const char *const *prompts, size_t n_prompts,
                    const sim_item *const *items, size_t n_items, unsigned char *correct,
                    qpo_err *err);

typedef struct sim_eval_summary {
    double mean_prompt; /* mean accuracy over prompts */
    double best_single; /* accuracy of the best single prompt */
    size_t best_prompt;
    double oracle; /* per-query oracle: some prompt answers right */
    /* Learnability on held-out items: prompts picked per query group on the even-indexed
     * items, scored on the odd ones, against the single prompt best on the even ones. */
    double heldout_group_policy, heldout_best_single;
    int distinct_group_winners; /* how many different prompts win some group */
} sim_eval_summary;

void sim_eval_summarize(const unsigned char *correct, size_t n_prompts,
                        const sim_item *const *items, size_t n_items, sim_eval_summary *out);

#endif
