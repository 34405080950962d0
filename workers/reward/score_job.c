/* The score job: one shard of a run's test sample -> qpo.eval_scores, for the policy's greedy
 * test prompts of a loop (source "qpo") or for one fixed baseline prompt ("baseline:NAME",
 * loop 0). Few-shot accuracy is the mean over QPO_FEW_SHOT_SETS_TEST demonstration sets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "reward_common.h"

typedef struct score_shard {
    int64_t run_id, loop, shard, shards;
    const char *source, *prompt;
    qpo_run_info ri;
    qpo_scoring s;
    qpo_demo_set *sets;
    json_t *demo_owner;
} score_shard;

static int read_payload(const json_t *payload, score_shard *sh, qpo_err *err) {
    if (qpo_payload_int(payload, "run_id", &sh->run_id, err) ||
        qpo_payload_int(payload, "loop", &sh->loop, err) ||
        qpo_payload_int(payload, "shard", &sh->shard, err) ||
        qpo_payload_int(payload, "shards", &sh->shards, err) ||
        !(sh->source = qpo_payload_str(payload, "source", err))) {
        return -1;
    }
    if (sh->shards < 1 || sh->shard < 0 || sh->shard >= sh->shards) {
        return qpo_err_set(err, QPO_EXIT_USAGE, "score shard %lld of %lld is out of range",
                           (long long)sh->shard, (long long)sh->shards);
    }
    if (strncmp(sh->source, "baseline:", 9) == 0) {
        sh->prompt = qpo_payload_str_or_empty(payload, "prompt", err);
        return sh->prompt ? 0 : -1;
    }
    if (strcmp(sh->source, "qpo") != 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "unknown score source \"%s\"", sh->source);
        qpo_err_hint(err, "source is \"qpo\" or \"baseline:NAME\" with a \"prompt\"");
        return -1;
    }
    return 0;
}

static PGresult *query_items(PGconn *conn, const score_shard *sh, qpo_err *err) {
    char run[24], loop[24], shard[24], shards[24];
    snprintf(run, sizeof run, "%lld", (long long)sh->run_id);
    snprintf(loop, sizeof loop, "%lld", (long long)sh->loop);
    snprintf(shard, sizeof shard, "%lld", (long long)sh->shard);
    snprintf(shards, sizeof shards, "%lld", (long long)sh->shards);
    if (sh->prompt) {
        const char *p[3] = {run, shard, shards};
        return qpo_db_named(conn, "reward_test_items", 3, p, err);
    }
    const char *p[4] = {run, loop, shard, shards};
    return qpo_db_named(conn, "reward_test_pairs", 4, p, err);
}

static qpo_job_status load_shard(const qpo_reward_env *env, const json_t *payload, score_shard *sh,
                                 qpo_err *err) {
    if (read_payload(payload, sh, err) || qpo_run_info_load(env->conn, sh->run_id, &sh->ri, err)) {
        return err->code == QPO_EXIT_USAGE ? QPO_JOB_FATAL : QPO_JOB_RETRY;
    }
    sh->s.task = qpo_task_find(sh->ri.task);
    if (!sh->s.task) {
        qpo_err_set(err, QPO_EXIT_USAGE, "run %lld has unknown task \"%s\"", (long long)sh->run_id,
                    sh->ri.task);
        return QPO_JOB_FATAL;
    }
    PGresult *res = query_items(env->conn, sh, err);
    if (!res) {
        return QPO_JOB_RETRY;
    }
    sh->s.n_sets = 1;
    int rc = qpo_items_from_result(res, sh->prompt ? -1 : 2, sh->prompt, &sh->s.items,
                                   &sh->s.n_items, err);
    PQclear(res);
    if (rc != 0) {
        return QPO_JOB_FATAL;
    }
    if (strcmp(sh->ri.setting, "few_shot") == 0 && sh->s.task->type != QPO_TASK_MATH) {
        if (qpo_demo_sets_load(env->conn, sh->s.task, QPO_FEW_SHOT_SETS_TEST, &sh->sets,
                               &sh->demo_owner, err)) {
            return err->code == QPO_EXIT_USAGE ? QPO_JOB_FATAL : QPO_JOB_RETRY;
        }
        sh->s.sets = sh->sets;
        sh->s.n_sets = QPO_FEW_SHOT_SETS_TEST;
    }
    return QPO_JOB_OK;
}

static json_t *score_rows(const score_shard *sh) {
    const qpo_scoring *s = &sh->s;
    bool math = s->task->type == QPO_TASK_MATH;
    json_t *rows = json_array();
    for (size_t i = 0; i < s->n_items; i++) {
        const qpo_score_item *it = &s->items[i];
        json_array_append_new(
            rows,
            json_pack("{s:I,s:I,s:s,s:I,s:i,s:s,s:o,s:o,s:o,s:o,s:o,s:f,s:o}", "run_id",
                      (json_int_t)sh->run_id, "loop", (json_int_t)sh->loop, "source", sh->source,
                      "shard", (json_int_t)sh->shard, "item_id", it->item_id, "prompt", it->prompt,
                      "nlls", qpo_score_item_nlls_json(s, it), "completion_nll",
                      math ? json_real(it->completion_nll) : json_null(), "completion",
                      math ? json_string(it->completion ? it->completion : "") : json_null(),
                      "prediction", s->sets ? json_null() : json_string(it->prediction),
                      "predictions", qpo_score_item_predictions_json(s, it), "acc", it->acc,
                      "call_ids", qpo_score_item_calls_json(it)));
    }
    return rows;
}

qpo_job_status qpo_reward_job_score(const qpo_reward_env *env, const json_t *payload,
                                    qpo_job_outcome *out, qpo_err *err) {
    score_shard sh = {0};
    qpo_job_status st = load_shard(env, payload, &sh, err);
    qpo_llm_session ls = {0};
    st = qpo_scoring_job_open_and_run(st, &sh.s, &ls, env, &sh.ri, err);
    if (st == QPO_JOB_OK) {
        json_t *result = qpo_scoring_result_json(&sh.s, &ls);
        json_object_set_new(result, "accuracy", json_real(qpo_scoring_accuracy(&sh.s)));
        json_object_set_new(result, "source", json_string(sh.source));
        out->result = result;
        qpo_rows_commit_set(out, "reward_insert_eval_scores", score_rows(&sh), sh.s.n_items, true);
        qpo_llm_session_commit_hits(out, &ls);
    }
    qpo_llm_session_close(&ls);
    qpo_score_items_free(sh.s.items, sh.s.n_items);
    free(sh.sets);
    json_decref(sh.demo_owner);
    qpo_run_info_free(&sh.ri);
    return st;
}
