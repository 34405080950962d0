#ifndef QPO_SIM_MODEL_H
#define QPO_SIM_MODEL_H

/* The simulated LLM's model of prompt sensitivity (docs/sim-llm.md, "The model"). Every
 * quantity is a pure function of (task, prompt, query, demonstrations, temperature, seed).
 *
 *   group g(q)   = 2 * [words(q) >= T_task] + [first letter of q's first word in a..m]
 *   skill s(p,g) = erf(c(p,g) / sqrt 2) + label-mention / "step" bonus, where c is a
 *                  standard normal made of the prompt's words and bigrams (each hashes to a
 *                  value per group) plus a smaller whole-string term
 *   difficulty d = 2 u(H(task, q)) - 1
 *   margin m     = M0 + A s + D d + F [few-shot]
 * Label tasks: z_k = m [k = gold] + B b(p,k) + sigma eps_k (b and eps built like the skill); mean
 * logprob of verbalizer k is log softmax(z)_k + log 0.7. Math: correct iff m + sigma eps > 0. */

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "tasks.h"

/* One (prompt, query) pair as the model sees it. */
typedef struct sim_pair {
    const qpo_task *task;
    const char *prompt; /* the instruction (label tasks) or the text after the question (math) */
    size_t prompt_len;
    const char *query; /* what the policy sees, for the group features */
    size_t query_len;
    uint64_t query_key;  /* identity of the query: its shown fields' key */
    uint64_t demos_hash; /* 0 for zero-shot */
    int n_demos;
    double temperature;
    int64_t seed; /* the request's "seed"; only used when temperature > 0 */
} sim_pair;

int sim_group(const qpo_task *task, const char *query, size_t len);
double sim_margin(const sim_pair *p);
/* s(p, g): the prompt's skill on query group g, bonus included (docs/sim-llm.md). Exposed so
 * tests and tools can reason about which words help which group without sending requests. */
double sim_prompt_skill(const qpo_task *task, const char *prompt, size_t len, int group);

/* Mean log-probability of each label's verbalizer tokens (n_labels of them). */
void sim_label_logprobs(const sim_pair *p, int gold, int n_labels, const char *const *verbalizers,
                        double *out);

typedef struct sim_math {
    int correct;
    char number[QPO_MATH_ANSWER_MAX];
    double confidence; /* in (0, 1): drives the completion's token logprobs */
    char text[512];    /* the whole completion, ending "Final Answer: N" */
} sim_math;

/* gold NULL for an unknown question: the number is then derived from a hash. */
void sim_math_answer(const sim_pair *p, const char *gold, sim_math *out);

/* Log-probability of an ordinary (non-answer) token: depends on the token and its
 * predecessor only, so the same context gets the same values under every prompt. */
double sim_context_logprob(const char *tok, size_t len, const char *prev, size_t prev_len);
/* Log-probability of completion token i of a math answer of that confidence. */
double sim_math_token_logprob(double confidence, uint64_t answer_hash, size_t i);

#endif
