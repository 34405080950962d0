#ifndef QPO_SIM_DATASET_H
#define QPO_SIM_DATASET_H

/* The items whose gold answers the simulated LLM knows, loaded once at start (from
 * qpo.task_items or the upstream data files) and read-only afterwards, so server threads share
 * it without locks. Items are found by the text a request shows (docs/sim-llm.md, "Knowing
 * the items"). */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tasks.h"

typedef struct sim_item {
    const qpo_task *task;
    json_t *fields;                   /* as in qpo.task_items.fields */
    char *query;                      /* what the policy sees */
    int label;                        /* gold index; -1 for math */
    char answer[QPO_MATH_ANSWER_MAX]; /* gold number (math), "" otherwise */
} sim_item;

typedef struct sim_slot {
    uint64_t key;
    uint32_t item; /* index + 1; 0 = empty */
} sim_slot;

typedef struct sim_data {
    sim_item *items;
    size_t n_items, cap_items;
    sim_slot *slots; /* open addressing, power-of-two size, built by sim_data_finish */
    size_t n_slots;
    size_t duplicates; /* items whose key was already taken (the first one wins) */
} sim_data;

/* Words kept when hashing a shown field value: below QPO_TASK_MAX_WORDS, so a value cut by
 * the renderer still finds its item. */
#define SIM_KEY_WORDS 64

/* Adds one item (takes ownership of fields). 0, or -1 with err set. */
int sim_data_add(sim_data *d, const qpo_task *task, json_t *fields, int label, const char *answer,
                 qpo_err *err);
/* Loads the upstream files found in dir: tweet_eval_emotion/, gsm8k/ (train.jsonl, test.jsonl),
 * svamp/SVAMP.json, or dir being one of those folders. -1 with err set (code 2) when dir holds none
 * of them. */
int sim_data_load_dir(sim_data *d, const char *dir, qpo_err *err);
/* Loads every row of qpo.task_items whose task qpo knows. */
int sim_data_load_db(sim_data *d, const char *conninfo, qpo_err *err);
/* Builds the lookup index; call once after loading. */
int sim_data_finish(sim_data *d, qpo_err *err);
void sim_data_free(sim_data *d);

/* The key of an item's shown field values (label and math tasks alike: math shows one
 * field, the question). values[i] spans value_len[i] bytes. */
uint64_t sim_fields_key(const char *const *values, const size_t *value_len, int n);
/* The item with that key and task, or NULL. */
const sim_item *sim_data_find(const sim_data *d, uint64_t key, const qpo_task *task);

#endif
