/* The d0 job: D_0 for a (task, setting, target) that has no released file, built as the
 * authors built theirs (docs/qpo-recipe.md section 6): every source prompt is scored on a
 * seeded sample of train queries (qpo.seeded_order(task, 'train', seed, 'd0')), each prompt's
 * accuracy over that sample is its avg_acc, and each pair's raw reward follows section 4.
 * Few-shot keeps only pairs whose per-query accuracy over the 5 demonstration sets is >= 0.7,
 * the filter the released D_0 was built with; zero-shot and math keep every pair.
 *
 * Payload: {"task", "setting", "target", "queries", "seed", "collections": [..],
 * "avg_acc_weight"} (the weight defaults to the recipe's 10, as payloads planned before it
 * existed) and the prompt files' folder as "prompts_dir" or, when absent, $QPO_PROMPTS_DIR (the
 * layout of ../shared/data/prompts). A D_0 that already holds records of another weight is
 * refused: one (task, setting, target) keeps one reward. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "pair_reward.h"
#include "reward_common.h"
#include "reward_formula.h"
#include "source_prompts.h"

#define QPO_D0_FEW_SHOT_MIN_ACC 0.7

typedef struct d0_build {
    qpo_run_info ri;
    int64_t queries, seed;
    double weight; /* reward.avg_acc_weight */
    qpo_source_prompt *prompts;
    size_t n_prompts;
    qpo_score_item *base; /* the query sample */
    size_t n_base;
    qpo_scoring s; /* prompts x queries, prompt-major */
    qpo_demo_set *sets;
    json_t *demo_owner;
} d0_build;

static int load_prompts(const json_t *payload, d0_build *b, qpo_err *err) {
    const json_t *cols = json_object_get(payload, "collections");
    const char *dir = json_string_value(json_object_get(payload, "prompts_dir"));
    if (!dir) {
        dir = getenv("QPO_PROMPTS_DIR");
    }
    if (!json_is_array(cols) || json_array_size(cols) == 0 || !dir) {
        qpo_err_set(err, QPO_EXIT_USAGE, "d0 job needs \"collections\" and a prompts folder");
        qpo_err_hint(err, "set payload \"prompts_dir\" or QPO_PROMPTS_DIR to the folder holding "
                          "instructeval/ and prompt_oirl/");
        return -1;
    }
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c) {
        if (!json_is_string(c) || qpo_source_prompts_load(dir, json_string_value(c), b->ri.task,
                                                          &b->prompts, &b->n_prompts, err)) {
            if (!qpo_err_is_set(err)) {
                qpo_err_set(err, QPO_EXIT_USAGE, "collections[%zu] must be a string", i);
            }
            return -1;
        }
    }
    return 0;
}

static int read_payload(const json_t *payload, d0_build *b, qpo_err *err) {
    const char *task = qpo_payload_str(payload, "task", err);
    const char *setting = task ? qpo_payload_str(payload, "setting", err) : NULL;
    const char *target = setting ? qpo_payload_str(payload, "target", err) : NULL;
    if (!target || qpo_payload_int(payload, "queries", &b->queries, err) ||
        qpo_payload_int(payload, "seed", &b->seed, err)) {
        return -1;
    }
    const json_t *w = json_object_get(payload, "avg_acc_weight");
    b->weight = w ? json_number_value(w) : QPO_REWARD_AVG_ACC_WEIGHT;
    if (w &&
        (!json_is_number(w) || !(b->weight >= 0 && b->weight <= QPO_REWARD_AVG_ACC_WEIGHT_MAX)))
        return qpo_err_set(err, QPO_EXIT_USAGE,
                           "bad d0 payload: avg_acc_weight must be a number in [0, %g]",
                           QPO_REWARD_AVG_ACC_WEIGHT_MAX);
    snprintf(b->ri.task, sizeof b->ri.task, "%s", task);
    snprintf(b->ri.setting, sizeof b->ri.setting, "%s", setting);
    snprintf(b->ri.target, sizeof b->ri.target, "%s", target);
    if (!qpo_task_find(task) || (strcmp(setting, "zero_shot") && strcmp(setting, "few_shot")) ||
        b->queries < 1) {
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "bad d0 payload: task \"%s\", setting \"%s\", queries %lld", task, setting,
                    (long long)b->queries);
        return -1;
    }
    return 0;
}

/* prompts x queries items, prompt-major: item p * n_base + q. */
static void cross(d0_build *b) {
    b->s.n_items = b->n_prompts * b->n_base;
    b->s.items = calloc(b->s.n_items ? b->s.n_items : 1, sizeof *b->s.items);
    for (size_t p = 0; p < b->n_prompts; p++) {
        for (size_t q = 0; q < b->n_base; q++) {
            qpo_score_item *it = &b->s.items[p * b->n_base + q];
            const qpo_score_item *src = &b->base[q];
            it->item_id = src->item_id;
            it->query = strdup(src->query);
            it->prompt = strdup(b->prompts[p].text);
            it->fields = json_incref(src->fields);
            it->label = src->label;
            it->gold = src->gold ? strdup(src->gold) : NULL;
        }
    }
}

/* 1 (err set) when D_0 already holds records of another avg_acc weight: adding ours would mix
 * two rewards in one D_0. -1 on a database error. */
static int same_weight(PGconn *conn, const d0_build *b, qpo_err *err) {
    char w[32];
    snprintf(w, sizeof w, "%.17g", b->weight);
    const char *params[4] = {b->ri.task, b->ri.setting, b->ri.target, w};
    PGresult *res = qpo_db_named(conn, "d0_weight_conflict", 4, params, err);
    if (!res) {
        return -1;
    }
    int rc = 0;
    if (PQntuples(res) > 0) {
        rc = 1;
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "D_0 for (%s, %s, %s) holds records of avg_acc weight %s; this d0 build "
                    "uses %g",
                    b->ri.task, b->ri.setting, b->ri.target, PQgetvalue(res, 0, 0), b->weight);
        qpo_err_hint(err, "one D_0 keeps one reward: give the experiment's target another name, "
                          "or set reward.avg_acc_weight to D_0's");
    }
    PQclear(res);
    return rc;
}

static qpo_job_status load(const qpo_reward_env *env, const json_t *payload, d0_build *b,
                           qpo_err *err) {
    if (read_payload(payload, b, err) || load_prompts(payload, b, err)) {
        return QPO_JOB_FATAL;
    }
    if (qpo_target_info_load(env->conn, &b->ri, err)) {
        return err->code == QPO_EXIT_USAGE ? QPO_JOB_FATAL : QPO_JOB_RETRY;
    }
    int other = same_weight(env->conn, b, err);
    if (other) {
        return other > 0 ? QPO_JOB_FATAL : QPO_JOB_RETRY;
    }
    char seed[24], n[24];
    snprintf(seed, sizeof seed, "%lld", (long long)b->seed);
    snprintf(n, sizeof n, "%lld", (long long)b->queries);
    const char *params[3] = {b->ri.task, seed, n};
    PGresult *res = qpo_db_named(env->conn, "reward_train_sample", 3, params, err);
    if (!res) {
        return QPO_JOB_RETRY;
    }
    int rc = qpo_items_read(res, "", &b->base, &b->n_base, err);
    PQclear(res);
    if (rc != 0) {
        return QPO_JOB_FATAL;
    }
    b->s.task = qpo_task_find(b->ri.task);
    b->s.n_sets = 1;
    if (strcmp(b->ri.setting, "few_shot") == 0 && b->s.task->type != QPO_TASK_MATH) {
        if (qpo_demo_sets_load(env->conn, b->s.task, QPO_FEW_SHOT_SETS_COLLECT, &b->sets,
                               &b->demo_owner, err)) {
            return err->code == QPO_EXIT_USAGE ? QPO_JOB_FATAL : QPO_JOB_RETRY;
        }
        b->s.sets = b->sets;
        b->s.n_sets = QPO_FEW_SHOT_SETS_COLLECT;
    }
    cross(b);
    return QPO_JOB_OK;
}

static json_t *d0_rows(const d0_build *b, size_t *kept) {
    json_t *rows = json_array();
    *kept = 0;
    for (size_t p = 0; p < b->n_prompts; p++) {
        const qpo_score_item *items = &b->s.items[p * b->n_base];
        double avg_acc = 0;
        for (size_t q = 0; q < b->n_base; q++) {
            avg_acc += items[q].acc / (double)b->n_base;
        }
        for (size_t q = 0; q < b->n_base; q++) {
            const qpo_score_item *it = &items[q];
            if (b->s.sets && it->acc < QPO_D0_FEW_SHOT_MIN_ACC) {
                continue;
            }
            json_t *extra = json_pack(
                "{s:o,s:o,s:s,s:o}", "nlls", qpo_score_item_nlls_json(&b->s, it), "completion_nll",
                b->s.task->type == QPO_TASK_MATH ? json_real(it->completion_nll) : json_null(),
                "prediction", it->prediction, "call_ids", qpo_score_item_calls_json(it));
            json_array_append_new(
                rows,
                json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:s,s:f,s:f,s:f,s:o,s:f}", "task",
                          b->ri.task, "setting", b->ri.setting, "target", b->ri.target, "source",
                          "d0-job", "prompt_method", b->prompts[p].method, "query", it->query,
                          "label", it->label >= 0 ? json_integer(it->label) : json_null(), "answer",
                          it->gold ? json_string(it->gold) : json_null(), "prompt", it->prompt,
                          "acc", it->acc, "avg_acc", avg_acc, "raw_reward",
                          qpo_pair_raw_reward(&b->s, it, avg_acc, b->weight), "extra", extra,
                          "avg_acc_weight", b->weight));
            (*kept)++;
        }
    }
    return rows;
}

static void build_free(d0_build *b) {
    qpo_score_items_free(b->s.items, b->s.n_items);
    qpo_score_items_free(b->base, b->n_base);
    qpo_source_prompts_free(b->prompts, b->n_prompts);
    free(b->sets);
    json_decref(b->demo_owner);
    qpo_run_info_free(&b->ri);
}

qpo_job_status qpo_reward_job_d0(const qpo_reward_env *env, const json_t *payload,
                                 qpo_job_outcome *out, qpo_err *err) {
    d0_build b = {0};
    qpo_job_status st = load(env, payload, &b, err);
    if (st != QPO_JOB_OK) {
        build_free(&b);
        return st;
    }
    qpo_llm_session ls = {0};
    st = qpo_score_on_target(&b.s, &ls, env, &b.ri, err);
    if (st == QPO_JOB_OK) {
        size_t kept;
        json_t *rows = d0_rows(&b, &kept);
        json_t *result = qpo_scoring_result_json(&b.s, &ls);
        json_object_set_new(result, "prompts", json_integer((json_int_t)b.n_prompts));
        json_object_set_new(result, "queries", json_integer((json_int_t)b.n_base));
        json_object_set_new(result, "records", json_integer((json_int_t)kept));
        out->result = result;
        /* Records already in D_0 are kept as they were: D_0 rows are written once. */
        qpo_outcome_add_new_rows(out, "qpo.d0_records", rows);
        qpo_llm_session_add_hits(out, &ls);
    }
    qpo_llm_session_close(&ls);
    build_free(&b);
    return st;
}
