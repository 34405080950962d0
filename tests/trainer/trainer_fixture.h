#ifndef QPO_TEST_TRAINER_FIXTURE_H
#define QPO_TEST_TRAINER_FIXTURE_H

/* A hand-built run for the trainer tests: an experiment with a tiny config (byte tokenizer,
 * a few epochs), task items in collect/test splits, and a small D_0, in a fresh database. */

#include <stdbool.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "trainer_jobs.h"

typedef struct tfx_opts {
    int seed;              /* the run's seed */
    int epochs_first;      /* default 2 */
    int d0_queries;        /* default 8 (x 5 prompts each) */
    const char *tokenizer; /* default "bytes" */
    int with_d0;           /* default 1 */
    const char *select;    /* hyper.select; default: absent (the trainer's default) */
    double heldout;        /* hyper.heldout when > 0 */
    double lr_first;       /* default 0.001 */
    const char *vocab;     /* policy.vocab; default: absent */
} tfx_opts;

typedef struct tfx {
    char conninfo[512];
    PGconn *conn;
    int64_t run_id;
    char ckpt_root[256];
    const char *artifacts; /* the train job's store, "dir" or "pg"; NULL: "dir" */
} tfx;

/* opts may be NULL: the defaults. */
void tfx_setup(tfx *f, const char *conninfo, const tfx_opts *opts);
void tfx_teardown(tfx *f);

void db_ok(PGconn *conn, const char *sql);
char *db_str(PGconn *conn, const char *sql); /* malloc'd; "NULL" for SQL NULL */
long long db_ll(PGconn *conn, const char *sql);

/* Runs one job function in this process as the runtime would: on OK, the commit hook in one
 * transaction. *result (may be NULL) gets the result; err the error otherwise. */
typedef qpo_job_status (*tfx_job_fn)(const qpo_trainer_env *, const json_t *, qpo_job_outcome *,
                                     qpo_err *);
qpo_job_status tfx_run(tfx *f, tfx_job_fn fn, const char *payload_json, int stop_after_epochs,
                       json_t **result, qpo_err *err);

/* Payloads of the fixture's run. */
void tfx_payload(const tfx *f, const char *kind, int loop, char *out, size_t len);

/* Removes a folder tree. */
void tfx_rm_rf(const char *path);
/* Regular files under root; a worker's scratch copies (".tmp-*") only when with_scratch. */
int tfx_count_files(const char *root, bool with_scratch);

#endif
