#ifndef QPO_REWARD_COMMON_H
#define QPO_REWARD_COMMON_H

/* What the reward, score and d0 jobs share: the run and its target, the LLM session wired to
 * the audit trail, items and demonstration sets from qpo.task_items, and scoring on the
 * target. Each handler reads as load -> score -> add rows (qpo_outcome_add_rows). */

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "audit.h"
#include "reward_jobs.h"
#include "scoring.h"

typedef struct qpo_run_info {
    char task[64], setting[16], target[128];
    int seed, test_size;
    double avg_acc_weight; /* the run's reward.avg_acc_weight */
    char *base_url, *model, *config;
} qpo_run_info;

int qpo_run_info_load(PGconn *conn, int64_t run_id, qpo_run_info *ri, qpo_err *err);
/* Fills base_url, model and config of ri->target (for d0, which has no run). */
int qpo_target_info_load(PGconn *conn, qpo_run_info *ri, qpo_err *err);
void qpo_run_info_free(qpo_run_info *ri);

/* A client for the run's target on a fresh event base, its hooks writing to audit. The session
 * owns the base and the client from open to close; scoring borrows them. */
typedef struct qpo_llm_session {
    struct event_base *base;
    qpo_llm_client *client;
    char *api_key;
    qpo_audit audit;
} qpo_llm_session;

int qpo_llm_session_open(qpo_llm_session *ls, const qpo_reward_env *env, const qpo_run_info *ri,
                         qpo_err *err);
void qpo_llm_session_close(qpo_llm_session *ls);

/* Items from a result with columns named item_id, query, fields, label, answer and, when the
 * statement pairs items with prompts, prompt (without it every item gets `prompt`). */
int qpo_items_read(const PGresult *res, const char *prompt, qpo_score_item **items, size_t *n,
                   qpo_err *err);

/* Demonstration sets 0..n_sets-1 of a task: QPO_FEW_SHOT_DEMOS train items each, seeded by the
 * set number. *owner keeps their fields alive (json_decref it after scoring). */
int qpo_demo_sets_load(PGconn *conn, const qpo_task *task, int n_sets, qpo_demo_set **sets,
                       json_t **owner, qpo_err *err);

/* Opens a session on the run's target (ls, closed by the caller even on failure) and scores
 * s, mapping the outcome to a job status (err set unless OK). Nothing to score: OK without a
 * session. A target config the worker cannot use is fatal; anything else retries. */
qpo_job_status qpo_score_on_target(qpo_scoring *s, qpo_llm_session *ls, const qpo_reward_env *env,
                                   const qpo_run_info *ri, qpo_err *err);

/* Common result fields: pairs, calls, cache hits, hit rate, HTTP attempts and failures. */
json_t *qpo_scoring_result_json(const qpo_scoring *s, const qpo_llm_session *ls);

/* Adds the session's cache-hit rows (qpo.llm_calls) to the job's output, after its own. */
void qpo_llm_session_add_hits(qpo_job_outcome *out, const qpo_llm_session *ls);

#endif
