#ifndef QPO_REWARD_SCORING_H
#define QPO_REWARD_SCORING_H

/* Scores (item, prompt) pairs on the target LLM as the recipe says (section 4): label scoring
 * of every verbalizer for classification and multiple choice (per demonstration set in
 * few-shot), one chat completion for math. All calls of a job go out at once on one event
 * loop; the client bounds what is really in flight. The reward, score and d0 jobs differ
 * only in where pairs come from and what they write. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "llm.h"
#include "tasks.h"

struct event_base;

typedef struct qpo_demo_set {
    qpo_task_example demos[QPO_FEW_SHOT_DEMOS];
} qpo_demo_set;

typedef struct qpo_score_item {
    int item_id;
    char *query;
    char *prompt; /* the instruction (NLP) or the text after the question (math) */
    json_t *fields;
    int label;  /* gold label index; -1 for math */
    char *gold; /* math: gold number as text */
    /* results */
    double *nlls;                         /* [n_sets][n_labels]; NULL for math */
    int *predictions;                     /* [n_sets]; NULL for math */
    double acc;                           /* mean correctness over sets; 0/1 zero-shot and math */
    double completion_nll;                /* math */
    char *completion;                     /* math: the model's text */
    char prediction[QPO_MATH_ANSWER_MAX]; /* zero-shot: label index; math: the answer */
    int64_t *call_ids;                    /* the calls the result came from, in request order */
    size_t n_calls;
} qpo_score_item;

typedef struct qpo_scoring {
    const qpo_task *task;
    int n_sets;               /* 1 for zero-shot and math; demonstration sets in few-shot */
    const qpo_demo_set *sets; /* NULL unless few-shot */
    qpo_score_item *items;
    size_t n_items;
    /* outcome */
    size_t requests, failed;
    bool failure_retryable; /* every failure was one a later attempt may get past */
    char first_error[512];
} qpo_scoring;

/* Calls per item (for sizing and results). */
size_t qpo_scoring_calls_per_item(const qpo_scoring *s);

/* Runs every call on base through c, checking should_stop every 200 ms, and cancels anything
 * still in flight before returning (c stays the caller's). Returns 0 when all answered, 1 when
 * stopped, -1
 * when some request failed for good (err says which; s->failure_retryable says whether the
 * job should be retried) or rendering failed (QPO_EXIT_USAGE). */
int qpo_scoring_run(qpo_scoring *s, struct event_base *base, qpo_llm_client *c,
                    bool (*should_stop)(void *), void *stop_arg, qpo_err *err);

/* The accuracy over the items (mean of acc). */
double qpo_scoring_accuracy(const qpo_scoring *s);

/* Frees the items' owned fields and the array. */
void qpo_score_items_free(qpo_score_item *items, size_t n);

/* The item's per-label NLLs as JSON: [labels] for one set, [[set][labels]] otherwise; null for
 * math. And the call ids and per-set predictions. */
json_t *qpo_score_item_nlls_json(const qpo_scoring *s, const qpo_score_item *it);
json_t *qpo_score_item_calls_json(const qpo_score_item *it);
json_t *qpo_score_item_predictions_json(const qpo_scoring *s, const qpo_score_item *it);

#endif
