#ifndef QPO_SIM_PARSE_H
#define QPO_SIM_PARSE_H

/* Reading a request's text back into (prompt, query, demonstrations, continuation), using the
 * templates of common/recipe/tasks.h (docs/sim-llm.md, "Reading requests"). */

#include <stddef.h>

#include "dataset.h"
#include "model.h"

typedef struct sim_label_req {
    const qpo_task *task; /* NULL: no task's template matches the text */
    const sim_item *item; /* NULL: an unknown query */
    sim_pair pair;
    size_t ctx_len;  /* bytes of the context, up to and including "Answer:" */
    size_t cont_len; /* bytes of the continuation after it (0: the text ends at "Answer:") */
    int n_labels;    /* 0 when the candidates are unknown (unknown multiple-choice item) */
    const char *verbalizers[QPO_TASK_MAX_LABELS];
    int gold; /* gold index, or a pseudo-gold for an unknown classification query */
    int k;    /* index of the continuation among the verbalizers; -1 if none */
} sim_label_req;

/* 0 when a task's template matches text (out filled), -1 otherwise. */
int sim_parse_label(const sim_data *d, const char *text, size_t n, sim_label_req *out);

/* A math chat: the user message is question + "\n" + prompt. item NULL for an unknown
 * question (then the first line is taken as the question). */
typedef struct sim_math_req {
    const sim_item *item;
    sim_pair pair;
} sim_math_req;

void sim_parse_math(const sim_data *d, const char *user, size_t n, sim_math_req *out);

#endif
