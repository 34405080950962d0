/* Shared parts of the reward, score and d0 jobs. See reward_common.h. */
#include "reward_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "pgarray.h"

/* The cell of column NAME (which the statement must have), NULL for SQL NULL. */
static char *dup_cell(const PGresult *res, int row, const char *name) {
    int col = PQfnumber(res, name);
    return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

static void target_cells(const PGresult *res, qpo_run_info *ri) {
    ri->base_url = dup_cell(res, 0, "base_url");
    ri->model = dup_cell(res, 0, "model");
    ri->config = dup_cell(res, 0, "config");
}

int qpo_run_info_load(PGconn *conn, int64_t run_id, qpo_run_info *ri, qpo_err *err) {
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[1] = {id};
    PGresult *res = qpo_db_named(conn, "reward_run_info", 1, params, err);
    if (!res) {
        return -1;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        qpo_err_set(err, QPO_EXIT_USAGE, "no run %" PRId64 " (or its target is missing)", run_id);
        qpo_err_hint(err, "the job's payload names a run that qpo.runs does not hold");
        return -1;
    }
    snprintf(ri->task, sizeof ri->task, "%s", PQgetvalue(res, 0, PQfnumber(res, "task")));
    snprintf(ri->setting, sizeof ri->setting, "%s", PQgetvalue(res, 0, PQfnumber(res, "setting")));
    ri->seed = atoi(PQgetvalue(res, 0, PQfnumber(res, "seed")));
    ri->test_size = atoi(PQgetvalue(res, 0, PQfnumber(res, "test_size")));
    ri->avg_acc_weight = atof(PQgetvalue(res, 0, PQfnumber(res, "avg_acc_weight")));
    snprintf(ri->target, sizeof ri->target, "%s", PQgetvalue(res, 0, PQfnumber(res, "target")));
    target_cells(res, ri);
    PQclear(res);
    return 0;
}

int qpo_target_info_load(PGconn *conn, qpo_run_info *ri, qpo_err *err) {
    const char *params[1] = {ri->target};
    PGresult *res = qpo_db_named(conn, "reward_target_info", 1, params, err);
    if (!res) {
        return -1;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        qpo_err_set(err, QPO_EXIT_USAGE, "unknown target \"%s\"", ri->target);
        qpo_err_hint(err, "targets come from experiment configs (qpo.targets)");
        return -1;
    }
    target_cells(res, ri);
    PQclear(res);
    return 0;
}

void qpo_run_info_free(qpo_run_info *ri) {
    free(ri->base_url);
    free(ri->model);
    free(ri->config);
    ri->base_url = ri->model = ri->config = NULL;
}

int qpo_llm_session_open(qpo_llm_session *ls, const qpo_reward_env *env, const qpo_run_info *ri,
                         qpo_err *err) {
    memset(ls, 0, sizeof *ls);
    json_error_t jerr;
    json_t *config = json_loads(ri->config ? ri->config : "{}", 0, &jerr);
    qpo_llm_target t;
    int rc = qpo_llm_target_from_json(ri->target, ri->base_url, ri->model, config, &t, &ls->api_key,
                                      err);
    if (rc == 0) {
        ls->audit = (qpo_audit){.conn = env->conn,
                                .target = ri->target,
                                .job_id = env->job_id,
                                .job_attempt = env->job_attempt,
                                .worker = env->worker};
        ls->base = event_base_new();
        qpo_llm_hooks hooks = qpo_audit_hooks(&ls->audit);
        ls->client = ls->base ? qpo_llm_client_new(ls->base, &t, &hooks, err) : NULL;
        if (!ls->client) {
            if (!qpo_err_is_set(err)) {
                qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create an event loop");
            }
            rc = -1;
        }
    }
    json_decref(config);
    if (rc != 0) {
        qpo_llm_session_close(ls);
    }
    return rc;
}

void qpo_llm_session_close(qpo_llm_session *ls) {
    if (ls->client) {
        qpo_llm_client_free(ls->client);
        ls->client = NULL;
    }
    if (ls->base) {
        event_base_free(ls->base);
        ls->base = NULL;
    }
    if (ls->api_key) {
        qpo_llm_free_secret(ls->api_key);
        ls->api_key = NULL;
    }
    json_decref(ls->audit.hits);
    ls->audit.hits = NULL;
}

int qpo_items_read(const PGresult *res, const char *prompt, qpo_score_item **items, size_t *n,
                   qpo_err *err) {
    size_t rows = (size_t)PQntuples(res);
    int c_id = PQfnumber(res, "item_id"), c_query = PQfnumber(res, "query");
    int c_prompt = PQfnumber(res, "prompt"), c_fields = PQfnumber(res, "fields");
    int c_label = PQfnumber(res, "label");
    qpo_score_item *it = calloc(rows ? rows : 1, sizeof *it);
    for (size_t i = 0; i < rows; i++) {
        int r = (int)i;
        it[i].item_id = atoi(PQgetvalue(res, r, c_id));
        it[i].query = strdup(PQgetvalue(res, r, c_query));
        it[i].prompt = strdup(c_prompt >= 0 ? PQgetvalue(res, r, c_prompt) : prompt);
        json_error_t jerr;
        it[i].fields = json_loads(PQgetvalue(res, r, c_fields), 0, &jerr);
        it[i].label = PQgetisnull(res, r, c_label) ? -1 : atoi(PQgetvalue(res, r, c_label));
        it[i].gold = dup_cell(res, r, "answer");
        if (!it[i].fields) {
            qpo_score_items_free(it, rows);
            qpo_err_set(err, QPO_EXIT_USAGE, "task item %d has unreadable fields",
                        atoi(PQgetvalue(res, r, c_id)));
            qpo_err_detail(err, "%s", jerr.text);
            return -1;
        }
    }
    *items = it;
    *n = rows;
    return 0;
}

/* The chosen train item ids of every set, as a PostgreSQL array literal (malloc'd); NULL when a
 * label has too few train items for a balanced set. */
static char *chosen_ids(const qpo_task *task, const PGresult *ids, int n_sets, size_t *chosen) {
    size_t n_train = (size_t)PQntuples(ids);
    /* Classification sets are class-balanced; multiple-choice labels are positions, not
     * classes, so those sets are a plain draw (as the authors' sample_instances). */
    int *labels = NULL;
    if (task->type == QPO_TASK_CLASSIFICATION) {
        labels = malloc((n_train ? n_train : 1) * sizeof *labels);
        if (!labels) {
            abort();
        }
        for (size_t i = 0; i < n_train; i++) {
            labels[i] = PQgetisnull(ids, (int)i, 1) ? -1 : atoi(PQgetvalue(ids, (int)i, 1));
        }
    }
    qpo_strbuf lit;
    qpo_sb_init(&lit);
    qpo_arr_open(&lit);
    for (int set = 0; set < n_sets; set++) {
        if (qpo_task_demo_indices((uint64_t)set, labels, task->n_labels, n_train,
                                  QPO_FEW_SHOT_DEMOS, &chosen[set * QPO_FEW_SHOT_DEMOS]) != 0) {
            free(labels);
            qpo_sb_free(&lit);
            return NULL;
        }
        for (int d = 0; d < QPO_FEW_SHOT_DEMOS; d++) {
            size_t idx = chosen[set * QPO_FEW_SHOT_DEMOS + d];
            qpo_arr_int(&lit, qpo_db_int64(ids, (int)idx, 0));
        }
    }
    qpo_arr_close(&lit);
    free(labels);
    return lit.s;
}

static int fill_sets(const qpo_task *task, const PGresult *ids, const PGresult *rows, int n_sets,
                     const size_t *chosen, qpo_demo_set *sets, json_t *owner, qpo_err *err) {
    int c_id = PQfnumber(rows, "item_id"), c_fields = PQfnumber(rows, "fields");
    int c_label = PQfnumber(rows, "label");
    for (int set = 0; set < n_sets; set++) {
        for (int d = 0; d < QPO_FEW_SHOT_DEMOS; d++) {
            const char *want = PQgetvalue(ids, (int)chosen[set * QPO_FEW_SHOT_DEMOS + d], 0);
            int found = -1;
            for (int r = 0; r < PQntuples(rows) && found < 0; r++) {
                found = strcmp(PQgetvalue(rows, r, c_id), want) == 0 ? r : -1;
            }
            json_error_t jerr;
            json_t *fields =
                found >= 0 ? json_loads(PQgetvalue(rows, found, c_fields), 0, &jerr) : NULL;
            if (!fields || PQgetisnull(rows, found, c_label)) {
                json_decref(fields);
                qpo_err_set(err, QPO_EXIT_USAGE, "demonstration item %s of task %s is unusable",
                            want, task->name);
                qpo_err_hint(err, "train items need fields and a label");
                return -1;
            }
            json_array_append_new(owner, fields);
            sets[set].demos[d] = (qpo_task_example){fields, atoi(PQgetvalue(rows, found, c_label))};
        }
    }
    return 0;
}

int qpo_demo_sets_load(PGconn *conn, const qpo_task *task, int n_sets, qpo_demo_set **sets,
                       json_t **owner, qpo_err *err) {
    const char *p1[1] = {task->name};
    PGresult *ids = qpo_db_named(conn, "reward_train_ids", 1, p1, err);
    if (!ids) {
        return -1;
    }
    if (PQntuples(ids) < QPO_FEW_SHOT_DEMOS) {
        PQclear(ids);
        qpo_err_set(err, QPO_EXIT_USAGE, "task %s has fewer than %d train items", task->name,
                    QPO_FEW_SHOT_DEMOS);
        qpo_err_hint(err, "few-shot demonstrations come from the train split: import it first");
        return -1;
    }
    size_t *chosen = calloc((size_t)n_sets * QPO_FEW_SHOT_DEMOS, sizeof *chosen);
    char *lit = chosen_ids(task, ids, n_sets, chosen);
    if (!lit) {
        free(chosen);
        PQclear(ids);
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "task %s has too few train items of a label for %d "
                    "class-balanced demonstrations",
                    task->name, QPO_FEW_SHOT_DEMOS);
        qpo_err_hint(err, "few-shot demonstrations come from the train split: import it whole");
        return -1;
    }
    const char *p2[2] = {task->name, lit};
    PGresult *rows = qpo_db_named(conn, "reward_items_by_id", 2, p2, err);
    int rc = -1;
    if (rows) {
        *sets = calloc((size_t)n_sets, sizeof **sets);
        *owner = json_array();
        rc = fill_sets(task, ids, rows, n_sets, chosen, *sets, *owner, err);
        if (rc != 0) {
            free(*sets);
            json_decref(*owner);
            *sets = NULL;
            *owner = NULL;
        }
        PQclear(rows);
    }
    free(lit);
    free(chosen);
    PQclear(ids);
    return rc;
}

typedef struct stop_check {
    const qpo_reward_env *env;
    const qpo_audit *audit;
} stop_check;

/* Stops on cancellation and also once calls can no longer be recorded: every further call
 * would be paid for without a trace and paid again by the retry. */
static bool should_stop(void *arg) {
    const stop_check *sc = arg;
    return sc->audit->failed || (sc->env->should_stop && sc->env->should_stop(sc->env->stop_arg));
}

static qpo_job_status score_in_session(qpo_scoring *s, qpo_llm_session *ls,
                                       const qpo_reward_env *env, qpo_err *err) {
    stop_check sc = {env, &ls->audit};
    int rc = qpo_scoring_run(s, ls->base, ls->client, should_stop, &sc, err);
    if (ls->audit.failed) {
        /* Calls went unrecorded: completing would leave rewards pointing at no audit row. */
        *err = ls->audit.err;
        return QPO_JOB_RETRY;
    }
    if (rc == 1) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "stopped: job cancelled or lease lost");
        return QPO_JOB_CANCELLED;
    }
    if (rc < 0) {
        /* A failure the client would not retry (missing logprobs, a 4xx) is the target's
         * nature only when nothing succeeded; beside successes it was one bad reply, and a job
         * retry costs just the failed requests (the rest come from the cache). */
        bool hopeless = !s->failure_retryable && s->failed == s->requests;
        return err->code == QPO_EXIT_USAGE || hopeless ? QPO_JOB_FATAL : QPO_JOB_RETRY;
    }
    return QPO_JOB_OK;
}

json_t *qpo_scoring_result_json(const qpo_scoring *s, const qpo_llm_session *ls) {
    double requests = (double)s->requests;
    return json_pack("{s:I,s:I,s:I,s:f,s:I,s:I}", "pairs", (json_int_t)s->n_items, "requests",
                     (json_int_t)s->requests, "cache_hits", (json_int_t)ls->audit.cache_hits,
                     "cache_hit_rate", requests > 0 ? (double)ls->audit.cache_hits / requests : 0.0,
                     "http_attempts", (json_int_t)ls->audit.attempts, "failed_attempts",
                     (json_int_t)ls->audit.failed_attempts);
}

void qpo_llm_session_add_hits(qpo_job_outcome *out, const qpo_llm_session *ls) {
    if (ls->audit.hits && json_array_size(ls->audit.hits) > 0)
        qpo_outcome_add_rows(out, "qpo.llm_calls", json_incref(ls->audit.hits),
                             (long)json_array_size(ls->audit.hits));
}

qpo_job_status qpo_score_on_target(qpo_scoring *s, qpo_llm_session *ls, const qpo_reward_env *env,
                                   const qpo_run_info *ri, qpo_err *err) {
    if (s->n_items == 0)
        return QPO_JOB_OK;
    if (qpo_llm_session_open(ls, env, ri, err))
        return err->code == QPO_EXIT_USAGE ? QPO_JOB_FATAL : QPO_JOB_RETRY;
    return score_in_session(s, ls, env, err);
}
