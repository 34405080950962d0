/* The score job: one shard of a run's test sample -> qpo.eval_scores, for the policy's greedy
 * test prompts of a loop (source "qpo"), one fixed baseline prompt ("baseline:NAME", loop 0),
 * or a prompt the program picks when the job runs ("select"): D_0's best single source prompt
 * (loop 0), the policy's most frequent test prompt of loop t ("policy_mode"), or every D_0
 * source prompt for the per-query oracle (rows "oracle:K", K the prompt's rank in D_0).
 * Few-shot accuracy is the mean over QPO_FEW_SHOT_SETS_TEST demonstration sets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "reward_common.h"

typedef struct score_shard {
    int64_t run_id, loop, shard, shards;
    const char *source, *prompt, *select;
    char *picked;      /* the selected prompt (best_single, policy_mode) */
    size_t per_prompt; /* oracle: items of the shard; item i scores prompt i / per_prompt */
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
    const json_t *sel = json_object_get(payload, "select");
    if (sel) {
        sh->select = json_string_value(sel);
        if (!sh->select || (strcmp(sh->select, "best_single") &&
                            strcmp(sh->select, "policy_mode") && strcmp(sh->select, "oracle"))) {
            qpo_err_set(err, QPO_EXIT_USAGE, "score payload field \"select\" is not known");
            qpo_err_hint(err, "select is \"best_single\", \"policy_mode\" or \"oracle\"");
            return -1;
        }
        return 0;
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

/* The prompt(s) a "select" job scores, read when it runs: D_0 or the loop's generations
 * exist only then. NULL with err when there is none (a fatal defect of the plan). */
static PGresult *selected_prompts(PGconn *conn, const score_shard *sh, qpo_err *err) {
    char run[24], loop[24];
    snprintf(run, sizeof run, "%lld", (long long)sh->run_id);
    snprintf(loop, sizeof loop, "%lld", (long long)sh->loop);
    PGresult *res;
    if (!strcmp(sh->select, "policy_mode")) {
        const char *p[2] = {run, loop};
        res = qpo_db_named(conn, "reward_policy_mode", 2, p, err);
    } else {
        const char *p[3] = {sh->ri.task, sh->ri.setting, sh->ri.target};
        res = qpo_db_named(conn, "reward_source_prompts", 3, p, err);
    }
    if (res && PQntuples(res) == 0) {
        PQclear(res);
        qpo_err_set(err, QPO_EXIT_USAGE, "run %lld: no %s to score", (long long)sh->run_id,
                    strcmp(sh->select, "policy_mode") ? "D_0 source prompt" : "test prompt");
        qpo_err_detail(err, "%s",
                       strcmp(sh->select, "policy_mode")
                           ? "qpo.d0_records has no row for the run's task, setting "
                             "and target"
                           : "qpo.generations has no test prompt for the loop");
        return NULL;
    }
    return res;
}

/* Items of the shard for each selected prompt, prompt-major. */
static int select_items(score_shard *sh, PGresult *items, PGresult *prompts, qpo_err *err) {
    int np = !strcmp(sh->select, "oracle") ? PQntuples(prompts) : 1;
    size_t per = (size_t)PQntuples(items);
    qpo_score_item *all = calloc((size_t)np * per + 1, sizeof *all);
    for (int k = 0; k < np; k++) {
        qpo_score_item *part;
        size_t n;
        if (qpo_items_read(items, PQgetvalue(prompts, k, 0), &part, &n, err)) {
            qpo_score_items_free(all, (size_t)k * per);
            return -1;
        }
        memcpy(all + (size_t)k * per, part, n * sizeof *part);
        free(part);
    }
    sh->s.items = all;
    sh->s.n_items = (size_t)np * per;
    sh->per_prompt = per;
    sh->picked = strdup(PQgetvalue(prompts, 0, 0));
    return 0;
}

static PGresult *query_items(PGconn *conn, const score_shard *sh, qpo_err *err) {
    char run[24], loop[24], shard[24], shards[24];
    snprintf(run, sizeof run, "%lld", (long long)sh->run_id);
    snprintf(loop, sizeof loop, "%lld", (long long)sh->loop);
    snprintf(shard, sizeof shard, "%lld", (long long)sh->shard);
    snprintf(shards, sizeof shards, "%lld", (long long)sh->shards);
    if (sh->prompt || sh->select) {
        const char *p[3] = {run, shard, shards};
        return qpo_db_named(conn, "reward_test_items", 3, p, err);
    }
    const char *p[4] = {run, loop, shard, shards};
    return qpo_db_named(conn, "reward_test_pairs", 4, p, err);
}

static int load_items(PGconn *conn, score_shard *sh, PGresult *res, qpo_err *err) {
    if (!sh->select)
        return qpo_items_read(res, sh->prompt, &sh->s.items, &sh->s.n_items, err);
    PGresult *prompts = selected_prompts(conn, sh, err);
    int rc = prompts ? select_items(sh, res, prompts, err) : -1;
    PQclear(prompts);
    return rc;
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
    int rc = load_items(env->conn, sh, res, err);
    PQclear(res);
    if (rc != 0) {
        return err->code == QPO_EXIT_USAGE ? QPO_JOB_FATAL : QPO_JOB_RETRY;
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

/* One qpo.eval_scores row per item, keyed by column name (the table defines the row). */
static json_t *score_rows(const score_shard *sh, int64_t job_id) {
    const qpo_scoring *s = &sh->s;
    bool math = s->task->type == QPO_TASK_MATH;
    json_t *rows = json_array();
    for (size_t i = 0; i < s->n_items; i++) {
        const qpo_score_item *it = &s->items[i];
        char oracle[32];
        const char *source = sh->source;
        if (sh->select && !strcmp(sh->select, "oracle")) {
            snprintf(oracle, sizeof oracle, "oracle:%zu", i / sh->per_prompt);
            source = oracle;
        }
        json_t *row = json_object();
        json_object_set_new(row, "run_id", json_integer(sh->run_id));
        json_object_set_new(row, "loop", json_integer(sh->loop));
        json_object_set_new(row, "source", json_string(source));
        json_object_set_new(row, "shard", json_integer(sh->shard));
        json_object_set_new(row, "item_id", json_integer(it->item_id));
        json_object_set_new(row, "prompt", json_string(it->prompt));
        json_object_set_new(row, "nlls", qpo_score_item_nlls_json(s, it));
        json_object_set_new(row, "completion_nll",
                            math ? json_real(it->completion_nll) : json_null());
        json_object_set_new(row, "completion",
                            math ? json_string(it->completion ? it->completion : "") : json_null());
        json_object_set_new(row, "prediction", s->sets ? json_null() : json_string(it->prediction));
        json_object_set_new(row, "predictions", qpo_score_item_predictions_json(s, it));
        json_object_set_new(row, "acc", json_real(it->acc));
        json_object_set_new(row, "call_ids", qpo_score_item_calls_json(it));
        json_object_set_new(row, "job_id", job_id > 0 ? json_integer(job_id) : json_null());
        json_array_append_new(rows, row);
    }
    return rows;
}

static void shard_free(score_shard *sh) {
    qpo_score_items_free(sh->s.items, sh->s.n_items);
    free(sh->sets);
    free(sh->picked);
    json_decref(sh->demo_owner);
    qpo_run_info_free(&sh->ri);
}

qpo_job_status qpo_reward_job_score(const qpo_reward_env *env, const json_t *payload,
                                    qpo_job_outcome *out, qpo_err *err) {
    score_shard sh = {0};
    qpo_job_status st = load_shard(env, payload, &sh, err);
    if (st != QPO_JOB_OK) {
        shard_free(&sh);
        return st;
    }
    qpo_llm_session ls = {0};
    st = qpo_score_on_target(&sh.s, &ls, env, &sh.ri, err);
    if (st == QPO_JOB_OK) {
        json_t *result = qpo_scoring_result_json(&sh.s, &ls);
        json_object_set_new(result, "accuracy", json_real(qpo_scoring_accuracy(&sh.s)));
        json_object_set_new(result, "source", json_string(sh.source));
        if (sh.select && sh.per_prompt)
            json_object_set_new(result, "prompts",
                                json_integer((json_int_t)(sh.s.n_items / sh.per_prompt)));
        if (sh.picked && strcmp(sh.select, "oracle"))
            json_object_set_new(result, "prompt", json_string(sh.picked));
        out->result = result;
        qpo_outcome_add_rows(out, "qpo.eval_scores", score_rows(&sh, env->job_id),
                             (long)sh.s.n_items);
        qpo_llm_session_add_hits(out, &ls);
    }
    qpo_llm_session_close(&ls);
    shard_free(&sh);
    return st;
}
