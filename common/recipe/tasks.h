#ifndef QPO_TASKS_H
#define QPO_TASKS_H

/* The eight QPO tasks as data, and how their text is rendered for the target LLM
 * (docs/qpo-recipe.md section 5). Pure: no database, no HTTP, so the reward workers, the
 * simulated LLM and the LLM client all link it (target qpo_tasks).
 *
 * Item fields are the JSON object stored in qpo.task_items.fields:
 *   ag_news, imdb, tweet_emotion  {"text"}
 *   boolq                         {"passage", "question"}
 *   cosmos_qa                     {"context", "question", "choices": [4 strings]}
 *   hellaswag                     {"activity_label", "ctx", "choices": [4 strings]}
 *   gsm8k, svamp                  {"question"}  (SVAMP: Body + " " + Question)
 * Gold: label index (classification, multiple choice) or answer text (math, see qpo_math_*).
 *
 * Rendering (the exact bytes matter: the simulated LLM recognises items by them, and cache
 * hits need identical requests):
 *   [instruction "\n\n"] { demo_block "\n\n" } test_block
 *   block   = one "Label: value" line per shown field, then "Answer: verbalizer"
 *   scoring = context ending in "Answer:" + continuation " " + verbalizer
 * An empty instruction (InstructEval's no_instruction) renders no instruction paragraph.
 * Shown text fields longer than QPO_TASK_MAX_WORDS words are cut the authors' way (their
 * sample_instances): words are what splitting on single spaces gives, and a longer value keeps
 * its first QPO_TASK_MAX_WORDS of them followed by QPO_TASK_CUT_MARK; shorter values are kept
 * byte for byte.
 * Verbalizers are never cut. */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define QPO_TASK_MAX_WORDS 100
#define QPO_TASK_CUT_MARK "..."
#define QPO_TASK_MAX_LABELS 4
#define QPO_TASK_MAX_FIELDS 2
#define QPO_MATH_ANSWER_MAX 64

typedef enum qpo_task_type {
    QPO_TASK_CLASSIFICATION,
    QPO_TASK_MULTIPLE_CHOICE, /* verbalizers are the item's own "choices" */
    QPO_TASK_MATH,            /* chat completion, numeric answer */
} qpo_task_type;

typedef struct qpo_task_field {
    const char *label; /* shown as "label: value" */
    const char *key;   /* JSON key in qpo.task_items.fields */
} qpo_task_field;

typedef struct qpo_task {
    const char *name; /* "tweet_emotion", also the InstructEval file name */
    qpo_task_type type;
    int n_fields;
    qpo_task_field fields[QPO_TASK_MAX_FIELDS];   /* shown fields, in template order */
    const char *answer_label;                     /* "Emotion" (rendered "Emotion:") */
    int n_labels;                                 /* verbalizer count (4 for multiple choice) */
    const char *verbalizers[QPO_TASK_MAX_LABELS]; /* classification only, label-index order */
    /* The policy's query text: each part "prefix value" joined by " "; a NULL prefix means
     * the bare value (e.g. "[Question]: q [Passage]: p", or just the tweet). */
    int n_query_parts;
    qpo_task_field query_parts[QPO_TASK_MAX_FIELDS];
} qpo_task;

/* A rendered demonstration: an item's fields and its gold label index. */
typedef struct qpo_task_example {
    const json_t *fields;
    int label;
} qpo_task_example;

const char *
qpo_task_type_name(qpo_task_type type); /* "classification", "multiple_choice", "math" */

/* NULL for an unknown name. */
const qpo_task *qpo_task_find(const char *name);
/* All eight, in recipe order. */
const qpo_task *qpo_task_all(size_t *count);

/* The verbalizer of label k for an item: the task's fixed word (classification) or the item's
 * choices[k] (multiple choice). NULL with err set when the item lacks it or k is out of range.
 * The string belongs to the task or to fields. */
const char *qpo_task_verbalizer(const qpo_task *task, const json_t *fields, int k, qpo_err *err);

/* One example block. verbalizer NULL: ends with "Answer:" (the scoring context's tail);
 * otherwise "Answer: verbalizer". Returns malloc'd text or NULL with err set (missing or
 * non-string field). */
char *qpo_task_render_block(const qpo_task *task, const json_t *fields, const char *verbalizer,
                            qpo_err *err);

/* The scoring context: instruction, demonstrations with their gold verbalizers, then the test
 * block ending with "Answer:". malloc'd, or NULL with err set. */
char *qpo_task_render_context(const qpo_task *task, const char *instruction,
                              const qpo_task_example *demos, int n_demos, const json_t *test_fields,
                              qpo_err *err);

/* The full text scored for label k: context + " " + verbalizer_k. *context_len receives the
 * byte length of the context: the continuation's tokens are those whose text_offset lies in
 * [context_len, strlen(result)). malloc'd, or NULL with err set. */
char *qpo_task_render_scoring(const qpo_task *task, const char *instruction,
                              const qpo_task_example *demos, int n_demos, const json_t *test_fields,
                              int k, size_t *context_len, qpo_err *err);

/* What the policy sees as the query (section 5). malloc'd, or NULL with err set. */
char *qpo_task_query_text(const qpo_task *task, const json_t *fields, qpo_err *err);

/* Cuts text to its first max_words words, marked (see above). malloc'd. */
char *qpo_task_cut_words(const char *text, int max_words);

/* Few-shot demonstration set `set_seed` (0..4 at collection, 0..9 at test): k distinct indices
 * into the task's train items (ordered by item_id), identical on every machine (seeded
 * Fisher-Yates prefixes, splitmix64). Class-balanced like the authors' sample_instances when
 * labels (labels[i] of item i, in 0..n_labels-1) are given: k / n_labels per label, the last
 * k % n_labels labels one more, then shuffled. labels NULL (multiple choice, math): a plain
 * draw. Returns 0, or -1 when there are too few items (of a label). */
int qpo_task_demo_indices(uint64_t set_seed, const int *labels, int n_labels, size_t n_train,
                          size_t k, size_t *out);

#define QPO_FEW_SHOT_DEMOS 6
#define QPO_FEW_SHOT_SETS_COLLECT 5
#define QPO_FEW_SHOT_SETS_TEST 10

/* ---- math (GSM8K, SVAMP) ---- */

/* The recipe's system message. */
extern const char *const QPO_MATH_SYSTEM_MESSAGE;

/* The longest completion a math chat may generate (qpo's choice where the recipe is silent:
 * room for a worked answer). */
#define QPO_MATH_MAX_TOKENS 512

/* question + "\n" + prompt. malloc'd. */
char *qpo_math_user_message(const char *question, const char *prompt);

/* The recipe's answer extraction: remove commas, take the last match of -?\d+\.?\d*, drop a
 * trailing ".", drop an all-zero decimal part ("12.00" -> "12"). Writes the answer to out and
 * returns 0, or returns -1 (no number in text; out = ""). */
int qpo_math_extract_answer(const char *text, char out[QPO_MATH_ANSWER_MAX]);

/* GSM8K gold: the number after the last "#### " (commas removed, normalised as above).
 * 0, or -1 with err set when the marker or number is missing, or when the text after the
 * marker is not a plain decimal that the stored text reproduces ("1e999", "12 apples"). */
int qpo_math_gold_gsm8k(const char *answer_text, char out[QPO_MATH_ANSWER_MAX], qpo_err *err);

/* SVAMP gold: the float "Answer", written in the extractor's normal form (51.0 -> "51",
 * 0.5 -> "0.5"). */
void qpo_math_gold_number(double answer, char out[QPO_MATH_ANSWER_MAX]);

/* Numeric comparison of an extracted answer with the gold text (both parsed as doubles, equal
 * within 1e-6 relative): "5" == "5.0"; an empty prediction is never correct. */
int qpo_math_is_correct(const char *prediction, const char *gold);

#endif
