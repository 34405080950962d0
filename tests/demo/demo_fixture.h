#ifndef QPO_DEMO_FIXTURE_H
#define QPO_DEMO_FIXTURE_H

/* Running `qpo demo` as a process from the tests. */

#include <sys/types.h>

/* Starts `qpo demo ARGS...` with stdout and stderr to LOG; returns its pid. */
pid_t demo_start(char *const args[], const char *log);
/* Waits for pid; its exit code, 128 + signal when killed. */
int demo_wait_exit(pid_t pid);
/* The contents of a file (malloc'd), "" when unreadable. */
char *demo_slurp(const char *path);

#endif
