#ifndef QPO_DEMO_H
#define QPO_DEMO_H

/* `qpo demo`'s steps (demo_steps.c), driven by cmd_demo.c. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "children.h"
#include "error.h"

/* sim-llm per target, scheduler, cpu worker, gpu worker */
#define DEMO_MAX_CHILDREN 16

typedef struct demo_ctx {
    const char *out;  /* --out */
    const char *data; /* the shared data folder, NULL when absent */
    char logs[600];   /* OUT/logs */
    char conninfo[1024];
    json_t *config; /* the experiment config; targets' base_url rewritten to the simulators */
    long long experiment;
    demo_child children[DEMO_MAX_CHILDREN];
    size_t nchildren;
    int sim_start_s; /* how long a simulator may take to print its address */
} demo_ctx;

/* The simulators' start-up limit: 10 s, or QPO_DEMO_SIM_START_S where start-up is slow on
 * purpose (the tests under valgrind). -1 with err set when the variable is not whole seconds. */
int demo_sim_start_s(qpo_err *err);

/* Migrates and imports each task's data (from --data when not imported yet) and, for d0
 * "import", the released D_0 the data folder holds for a task and setting. */
int demo_prepare_data(demo_ctx *d, qpo_err *err);
/* One `qpo sim-llm` per target, serving the model the target names; rewrites base_url. */
int demo_start_simulators(demo_ctx *d, qpo_err *err);
/* Writes OUT/experiment.json and submits it; sets d->experiment. */
int demo_submit(demo_ctx *d, qpo_err *err);
/* The scheduler, a cpu worker and a gpu worker. */
int demo_start_pipeline(demo_ctx *d, qpo_err *err);
/* Polls until the experiment is done (0), failed or a child died (-1, err says which job
 * or process and its error), or *stop was set by a signal (-1). */
int demo_wait(demo_ctx *d, volatile const int *stop, qpo_err *err);
/* Prints `qpo results` and writes OUT/results.txt, .csv and .json (and the report when
 * `qpo report` exists). */
int demo_results(demo_ctx *d, qpo_err *err);

/* OUT/NAME into buf. */
void demo_path(const demo_ctx *d, const char *name, char *buf, size_t n);

#endif
