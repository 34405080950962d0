#ifndef QPO_DEMO_CHILDREN_H
#define QPO_DEMO_CHILDREN_H

/* Child processes of `qpo demo`: other commands of this same binary (/proc/self/exe), either
 * run to completion (migrate, import, submit, results) or left running (sim-llm, scheduler,
 * workers) until the demo stops them. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

typedef struct demo_child {
    char name[32];
    char log[512]; /* where its stderr goes */
    pid_t pid;     /* 0 once reaped */
    int status;    /* wait status once reaped */
} demo_child;

/* Starts `qpo ARGV...` with stdout to OUT_PATH and stderr to c->log (both appended; OUT_PATH
 * NULL: stdout to the log too). */
int demo_spawn(demo_child *c, char *const argv[], const char *out_path, qpo_err *err);

/* Runs `qpo ARGV...` to completion. With out, its stdout is captured into *out (malloc'd,
 * NUL-terminated), else it goes to ours; stderr goes to ours unless quiet (a second run of a
 * command whose warnings were shown already). Returns its exit status (128 + signal when
 * killed, -1 with err set when it could not be started). */
int demo_run(char *const argv[], char **out, bool quiet, qpo_err *err);

/* Reaps c when it has exited; true when it is gone. */
bool demo_child_exited(demo_child *c);

/* SIGTERM to every live child, then SIGKILL to those still alive after grace_ms. */
void demo_children_stop(demo_child *c, size_t n, int grace_ms);

#endif
