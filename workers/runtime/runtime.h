#ifndef QPO_RUNTIME_H
#define QPO_RUNTIME_H

/* The worker runtime: one process claims jobs of one class and runs them on a pool of
 * threads (see README.md). Used by `qpo worker` and by tests that run a worker in-process. */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "handler.h"

typedef struct qpo_worker_opts {
    const char *conninfo;
    const char *name;      /* the lease owner */
    const char *job_class; /* "cpu" or "gpu" */
    const char **kinds;    /* NULL: every registered kind of job_class */
    size_t nkinds;
    int concurrency;        /* handler threads */
    int prefetch;           /* jobs claimed ahead of free threads (the local queue); -1: the
                               class's default (qpo_worker_default_prefetch) */
    double lease_s;         /* lease length; heartbeats every lease_s / 3 */
    double poll_s;          /* claim without a notification this often */
    double grace_s;         /* SIGTERM: let running jobs finish this long, then release */
    double backoff_base_ms; /* retry delay before the 2nd attempt; doubles per attempt */
    double backoff_cap_ms;
    bool exit_when_idle; /* stop once no job of these kinds is unfinished */
    const char *device;  /* where gpu jobs compute ("cpu", "NVIDIA H200"); NULL: not said */
    bool handle_signals; /* SIGTERM/SIGINT drain the worker */
} qpo_worker_opts;

/* Fills the defaults (lease 30 s, poll 1 s, grace 30 s, backoff 1 s .. 10 min, prefetch the
 * class's default). */
void qpo_worker_opts_default(qpo_worker_opts *opts);

/* 16 for cpu (short jobs: claims are batched and no thread waits for one), 0 for gpu (a job
 * runs for minutes: holding more would only keep them from another free GPU). */
int qpo_worker_default_prefetch(const char *job_class);

/* The gpu class's compute backend. The runtime knows no backend: `qpo worker --backend NAME`
 * is handed to this hook, which the component owning gpu jobs installs when it registers its
 * handlers (the trainer). It returns 0 and a device label for logs and the connection's
 * application_name, or -1 with err set (an unknown name, no CUDA device for "cuda"). */
typedef int (*qpo_backend_hook)(const char *name, char *device, size_t len, qpo_err *err);
void qpo_worker_set_backend_hook(qpo_backend_hook hook);
qpo_backend_hook qpo_worker_backend_hook(void);

/* Runs until drained (signal), idle (exit_when_idle) or a fatal error. 0 ok, -1 err set. */
int qpo_worker_run(const qpo_worker_opts *opts, qpo_err *err);

/* Registry iteration (for --kinds defaults and `qpo worker --help`). */
size_t qpo_handler_count(void);
const qpo_handler *qpo_handler_at(size_t i);

/* The built-in kind: noop (README.md). */
void qpo_runtime_register_builtin_handlers(void);

#endif
