#ifndef QPO_REWARD_COMMON_H
#define QPO_REWARD_COMMON_H

/* What the reward, score and d0 jobs share: payload fields, the run and its target, the LLM
 * client wired to the audit trail, items and demonstration sets from qpo.task_items, and the
 * commit hook that writes a prepared JSON array with one named statement. */

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "audit.h"
#include "reward_jobs.h"
#include "scoring.h"

/* Required integer / string payload fields; QPO_EXIT_USAGE naming the field otherwise. */
int qpo_payload_int(const json_t *payload, const char *key, int64_t *out, qpo_err *err);
const char *qpo_payload_str(const json_t *payload, const char *key, qpo_err *err);
/* The same, accepting "" (a baseline prompt may be empty: InstructEval's no_instruction). */
const char *qpo_payload_str_or_empty(const json_t *payload, const char *key, qpo_err *err);

typedef struct qpo_run_info {
    char task[64], setting[16], target[128];
    int seed, test_size;
    char *base_url, *model, *config;
} qpo_run_info;

int qpo_run_info_load(PGconn *conn, int64_t run_id, qpo_run_info *ri, qpo_err *err);
/* Fills base_url, model and config of ri->target (for d0, which has no run). */
int qpo_target_info_load(PGconn *conn, qpo_run_info *ri, qpo_err *err);
void qpo_run_info_free(qpo_run_info *ri);

/* A client for the run's target on a fresh event base, its hooks writing to audit. */
typedef struct qpo_llm_session {
    struct event_base *base;
    qpo_llm_client *client; /* handed to qpo_scoring_run, which frees it */
    char *api_key;
    qpo_audit audit;
} qpo_llm_session;

int qpo_llm_session_open(qpo_llm_session *ls, const qpo_reward_env *env, const qpo_run_info *ri,
                         qpo_err *err);
void qpo_llm_session_close(qpo_llm_session *ls);

/* Items from a result whose columns are (item_id, query, [prompt,] fields, label, answer):
 * prompt_col -1 when the result has no prompt column (every item then gets `prompt`). */
int qpo_items_from_result(PGresult *res, int prompt_col, const char *prompt, qpo_score_item **items,
                          size_t *n, qpo_err *err);

/* Demonstration sets 0..n_sets-1 of a task: QPO_FEW_SHOT_DEMOS train items each, seeded by the
 * set number. *owner keeps their fields alive (json_decref it after scoring). */
int qpo_demo_sets_load(PGconn *conn, const qpo_task *task, int n_sets, qpo_demo_set **sets,
                       json_t **owner, qpo_err *err);

/* Runs the scoring and maps its outcome to a job status (err set unless OK). */
qpo_job_status qpo_scoring_job_run(qpo_scoring *s, qpo_llm_session *ls, const qpo_reward_env *env,
                                   qpo_err *err);

/* Opens the run's target session and scores s, unless an earlier step failed (st) or there is
 * nothing to score. A target config the worker cannot use is fatal; anything else retries. */
qpo_job_status qpo_scoring_job_open_and_run(qpo_job_status st, qpo_scoring *s, qpo_llm_session *ls,
                                            const qpo_reward_env *env, const qpo_run_info *ri,
                                            qpo_err *err);

/* Common result fields: pairs, calls, cache hits, hit rate, HTTP attempts and failures. */
json_t *qpo_scoring_result_json(const qpo_scoring *s, const qpo_llm_session *ls);

/* Adds the session's cache-hit rows to the job's commit (after its outputs). */
void qpo_llm_session_commit_hits(qpo_job_outcome *out, qpo_llm_session *ls);

/* A commit hook writing `rows` (a JSON array) with the named statement NAME($1 rows[, $2 job
 * id]): statements of tables with a job_id column take the job; others only the rows. Called
 * again on the same outcome, it appends: the statements run in order in one transaction. */
typedef struct qpo_rows_commit {
    const char *statement;
    json_t *rows;
    size_t expected; /* rows the statement must insert (-1 cast: any) */
    bool with_job;
    struct qpo_rows_commit *next; /* written after this one, same transaction */
} qpo_rows_commit;

void qpo_rows_commit_set(qpo_job_outcome *out, const char *statement, json_t *rows, size_t expected,
                         bool with_job);

#endif
