#ifndef QPO_TEST_SIMPROC_H
#define QPO_TEST_SIMPROC_H

/* `qpo sim-llm` as a child process for tests: started with the given extra arguments on a
 * free loopback port, its base URL read from the first line of its stdout. */

#include <sys/types.h>

typedef struct simproc {
    pid_t pid;
    char url[128]; /* http://127.0.0.1:PORT */
} simproc;

/* Starts the server (aborts the test on failure). args: NULL-terminated extra arguments. */
void simproc_start(simproc *p, const char *const *args);
/* Sends sig and returns the exit status (or 128 + signal if it died of one). */
int simproc_stop(simproc *p, int sig);

/* Runs `qpo sim-llm args...` to completion; returns its exit status and fills err_out with
 * the start of its stderr. */
int simproc_run(const char *const *args, char *err_out, size_t err_cap);

#endif
