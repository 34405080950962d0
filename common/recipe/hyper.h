#ifndef QPO_HYPER_H
#define QPO_HYPER_H

/* The recipe's hyper-parameters (docs/qpo-recipe.md sections 2-3): one table of names,
 * defaults and allowed ranges, which the config check (scheduler/config.c) fills experiment
 * configs from and the trainer (workers/trainer/run.c) falls back on. */

#include <stdbool.h>

/* The policy reads this many query tokens and writes this many prompt tokens; gpu/policy's
 * QPO_PGDT_QLEN/PLEN must equal it (the trainer asserts so). */
#define QPO_RECIPE_MAX_TOKENS 40

typedef struct qpo_hyper_spec {
    const char *key; /* the field of an experiment config's "hyper" */
    bool integer;
    double def, lo, hi;
} qpo_hyper_spec;

/* Every numeric hyper-parameter in config order, then a NULL key. ("lambda_switch", a boolean,
 * is not in it: its default is QPO_HYPER_LAMBDA_SWITCH_DEFAULT; nor is "select", "heldout" or
 * "last".) */
#define QPO_HYPER_COUNT 17
/* The authors weigh the return loss per batch (gpu/policy/policy.h QPO_LAMBDA_SWITCH_MSE), with
 * no way to turn it off: on unless a config says false (docs/recipe.md). */
#define QPO_HYPER_LAMBDA_SWITCH_DEFAULT true
extern const qpo_hyper_spec qpo_hyper_specs[QPO_HYPER_COUNT + 1];

/* The default of a key of qpo_hyper_specs; an unknown key is a programming error (abort). */
double qpo_hyper_default(const char *key);

#endif
