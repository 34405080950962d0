/* The reward job: one collect batch of (query, generated prompt) pairs -> qpo.rewards.
 * Every pair is scored first, because avg_acc, a term of every pair's reward, is the accuracy
 * of the whole batch (docs/qpo-recipe.md section 4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "pair_reward.h"
#include "reward_common.h"
#include "reward_formula.h"

typedef struct d0_range {
    double min, max;
} d0_range;

static int load_d0_range(PGconn *conn, const qpo_run_info *ri, d0_range *r, qpo_err *err) {
    const char *params[3] = {ri->task, ri->setting, ri->target};
    PGresult *res = qpo_db_named(conn, "reward_d0_range", 3, params, err);
    if (!res) {
        return -1;
    }
    int rc = 0;
    if (qpo_db_int64(res, 0, PQfnumber(res, "records")) == 0) {
        rc = qpo_err_set(err, QPO_EXIT_USAGE, "no D_0 for (%s, %s, %s)", ri->task, ri->setting,
                         ri->target);
        qpo_err_hint(err, "normalised rewards use D_0's range: import D_0 or run its d0 job "
                          "before the first loop");
    } else {
        r->min = atof(PQgetvalue(res, 0, PQfnumber(res, "min_raw")));
        r->max = atof(PQgetvalue(res, 0, PQfnumber(res, "max_raw")));
    }
    PQclear(res);
    return rc;
}

/* One qpo.rewards row per pair, keyed by column name (the table defines the row). */
static json_t *reward_rows(const qpo_scoring *s, const json_t *payload, int64_t job_id,
                           double avg_acc, double weight, d0_range range) {
    bool few = s->sets != NULL;
    bool math = s->task->type == QPO_TASK_MATH;
    json_t *rows = json_array();
    for (size_t i = 0; i < s->n_items; i++) {
        const qpo_score_item *it = &s->items[i];
        double raw = qpo_pair_raw_reward(s, it, avg_acc, weight);
        json_t *row = json_object();
        json_object_set(row, "run_id", json_object_get(payload, "run_id"));
        json_object_set(row, "loop", json_object_get(payload, "loop"));
        json_object_set(row, "batch", json_object_get(payload, "batch"));
        json_object_set_new(row, "item_id", json_integer(it->item_id));
        json_object_set_new(row, "query", json_string(it->query));
        json_object_set_new(row, "prompt", json_string(it->prompt));
        json_object_set_new(row, "nlls", qpo_score_item_nlls_json(s, it));
        json_object_set_new(row, "completion_nll",
                            math ? json_real(it->completion_nll) : json_null());
        json_object_set_new(row, "completion",
                            math ? json_string(it->completion ? it->completion : "") : json_null());
        json_object_set_new(row, "prediction", few ? json_null() : json_string(it->prediction));
        json_object_set_new(row, "correct",
                            few ? json_null() : json_boolean(qpo_reward_correct(it->acc)));
        json_object_set_new(row, "predictions", qpo_score_item_predictions_json(s, it));
        json_object_set_new(row, "acc_q", few ? json_real(it->acc) : json_null());
        json_object_set_new(row, "avg_acc", json_real(avg_acc));
        json_object_set_new(row, "raw_reward", json_real(raw));
        json_object_set_new(row, "norm_reward",
                            json_real(qpo_reward_normalise(raw, range.min, range.max)));
        json_object_set_new(row, "d0_min_raw", json_real(range.min));
        json_object_set_new(row, "d0_max_raw", json_real(range.max));
        json_object_set_new(row, "call_ids", qpo_score_item_calls_json(it));
        json_object_set_new(row, "job_id", job_id > 0 ? json_integer(job_id) : json_null());
        json_array_append_new(rows, row);
    }
    return rows;
}

typedef struct reward_batch {
    int64_t run_id, loop, batch;
    qpo_run_info ri;
    const qpo_task *task;
    d0_range range;
    qpo_scoring s;
    qpo_demo_set *sets;
    json_t *demo_owner;
} reward_batch;

static qpo_job_status load_batch(const qpo_reward_env *env, const json_t *payload, reward_batch *b,
                                 qpo_err *err) {
    if (qpo_payload_int(payload, "run_id", &b->run_id, err) ||
        qpo_payload_int(payload, "loop", &b->loop, err) ||
        qpo_payload_int(payload, "batch", &b->batch, err) ||
        qpo_run_info_load(env->conn, b->run_id, &b->ri, err)) {
        return err->code == QPO_EXIT_USAGE ? QPO_JOB_FATAL : QPO_JOB_RETRY;
    }
    b->task = qpo_task_find(b->ri.task);
    if (!b->task) {
        qpo_err_set(err, QPO_EXIT_USAGE, "run %lld has unknown task \"%s\"", (long long)b->run_id,
                    b->ri.task);
        return QPO_JOB_FATAL;
    }
    if (load_d0_range(env->conn, &b->ri, &b->range, err)) {
        return err->code == QPO_EXIT_USAGE ? QPO_JOB_FATAL : QPO_JOB_RETRY;
    }
    char run[24], loop[24], batch[24];
    snprintf(run, sizeof run, "%lld", (long long)b->run_id);
    snprintf(loop, sizeof loop, "%lld", (long long)b->loop);
    snprintf(batch, sizeof batch, "%lld", (long long)b->batch);
    const char *params[3] = {run, loop, batch};
    PGresult *res = qpo_db_named(env->conn, "reward_collect_pairs", 3, params, err);
    if (!res) {
        return QPO_JOB_RETRY;
    }
    b->s.task = b->task;
    b->s.n_sets = 1;
    int rc = qpo_items_read(res, NULL, &b->s.items, &b->s.n_items, err);
    PQclear(res);
    if (rc != 0) {
        return QPO_JOB_FATAL;
    }
    if (strcmp(b->ri.setting, "few_shot") == 0 && b->task->type != QPO_TASK_MATH) {
        if (qpo_demo_sets_load(env->conn, b->task, QPO_FEW_SHOT_SETS_COLLECT, &b->sets,
                               &b->demo_owner, err)) {
            return err->code == QPO_EXIT_USAGE ? QPO_JOB_FATAL : QPO_JOB_RETRY;
        }
        b->s.sets = b->sets;
        b->s.n_sets = QPO_FEW_SHOT_SETS_COLLECT;
    }
    return QPO_JOB_OK;
}

static void batch_free(reward_batch *b) {
    qpo_score_items_free(b->s.items, b->s.n_items);
    free(b->sets);
    json_decref(b->demo_owner);
    qpo_run_info_free(&b->ri);
}

qpo_job_status qpo_reward_job_reward(const qpo_reward_env *env, const json_t *payload,
                                     qpo_job_outcome *out, qpo_err *err) {
    reward_batch b = {0};
    qpo_job_status st = load_batch(env, payload, &b, err);
    if (st != QPO_JOB_OK) {
        batch_free(&b);
        return st;
    }
    qpo_llm_session ls = {0};
    st = qpo_score_on_target(&b.s, &ls, env, &b.ri, err);
    if (st == QPO_JOB_OK) {
        double avg_acc = qpo_scoring_accuracy(&b.s);
        json_t *result = qpo_scoring_result_json(&b.s, &ls);
        json_object_set_new(result, "accuracy", json_real(avg_acc));
        json_object_set_new(result, "d0_min_raw", json_real(b.range.min));
        json_object_set_new(result, "d0_max_raw", json_real(b.range.max));
        qpo_info("reward run %lld loop %lld batch %lld: %zu pairs, accuracy %.3f, %zu requests, "
                 "%llu cache hits, %llu HTTP attempts (%llu failed)",
                 (long long)b.run_id, (long long)b.loop, (long long)b.batch, b.s.n_items, avg_acc,
                 b.s.requests, (unsigned long long)ls.audit.cache_hits,
                 (unsigned long long)ls.audit.attempts,
                 (unsigned long long)ls.audit.failed_attempts);
        out->result = result;
        qpo_outcome_add_rows(
            out, "qpo.rewards",
            reward_rows(&b.s, payload, env->job_id, avg_acc, b.ri.avg_acc_weight, b.range),
            (long)b.s.n_items);
        qpo_llm_session_add_hits(out, &ls);
    }
    qpo_llm_session_close(&ls);
    batch_free(&b);
    return st;
}
