/* Submitting and planning experiments. Planning is one transaction holding the experiment's
 * row lock: a crash anywhere leaves the experiment 'submitted' with nothing written, and a
 * second scheduler skips the locked row. */
#include "experiments.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "plan.h"

int qpo_experiment_submit(PGconn *conn, const char *name, const json_t *config, int64_t *id,
                          qpo_err *err) {
    json_t *resolved = qpo_config_resolve(config, err);
    if (!resolved)
        return -1;
    json_decref(resolved);
    char *text = json_dumps(config, JSON_COMPACT);
    const char *params[] = {name, text};
    PGresult *res = qpo_db_named(conn, "exp_insert", 2, params, err);
    free(text);
    if (!res)
        return -1;
    *id = qpo_db_int64(res, 0, 0);
    PQclear(res);
    return 0;
}

static int exec_named(PGconn *conn, const char *name, int n, const char *const *params,
                      qpo_err *err) {
    PGresult *res = qpo_db_named(conn, name, n, params, err);
    PQclear(res);
    return res ? 0 : -1;
}

/* A target named by several experiments must be the same endpoint: runs already planned
 * against it would otherwise silently switch models. Limits may change. */
static int upsert_target(PGconn *conn, const json_t *t, int index, qpo_err *err) {
    const char *name = json_string_value(json_object_get(t, "name"));
    const char *url = json_string_value(json_object_get(t, "base_url"));
    const char *model = json_string_value(json_object_get(t, "model"));
    const char *p1[] = {name};
    PGresult *res = qpo_db_named(conn, "target_get", 1, p1, err);
    if (!res)
        return -1;
    int clash = PQntuples(res) == 1 &&
                (strcmp(PQgetvalue(res, 0, 0), url) || strcmp(PQgetvalue(res, 0, 1), model));
    if (clash) {
        qpo_err_set(err, QPO_EXIT_USAGE, "targets[%d]: target \"%s\" already exists as %s model %s",
                    index, name, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
        qpo_err_hint(err, "give this endpoint another name");
    }
    PQclear(res);
    if (clash)
        return -1;
    json_t *cfg = json_deep_copy(t);
    json_object_del(cfg, "name");
    json_object_del(cfg, "base_url");
    json_object_del(cfg, "model");
    char *text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(cfg);
    const char *p2[] = {name, url, model, text};
    int rc = exec_named(conn, "target_upsert", 4, p2, err);
    free(text);
    return rc;
}

typedef struct run_insert {
    PGconn *conn;
    qpo_err *err;
    char id[24], loops[16], nb[16], bs[16], size[16], msize[16], shards[16], weight[32];
    const char *draw;
} run_insert;

static int insert_run(const char *task, const char *setting, const char *target, long long seed,
                      void *arg) {
    run_insert *ri = arg;
    char s[24];
    snprintf(s, sizeof(s), "%lld", seed);
    const char *params[] = {
        ri->id,     task,     setting,
        target,     s,        ri->loops,
        ri->nb,     ri->bs,   qpo_config_task_is_math(task) ? ri->msize : ri->size,
        ri->shards, ri->draw, ri->weight};
    return exec_named(ri->conn, "run_insert", 12, params, ri->err);
}

static int insert_runs(PGconn *conn, int64_t exp, const json_t *r, qpo_err *err) {
    run_insert ri = {.conn = conn, .err = err};
    snprintf(ri.id, sizeof(ri.id), "%" PRId64, exp);
    snprintf(ri.loops, sizeof(ri.loops), "%lld",
             (long long)json_integer_value(json_object_get(r, "loops")));
    const json_t *c = json_object_get(r, "collect"), *t = json_object_get(r, "test");
    snprintf(ri.nb, sizeof(ri.nb), "%lld",
             (long long)json_integer_value(json_object_get(c, "batches")));
    snprintf(ri.bs, sizeof(ri.bs), "%lld",
             (long long)json_integer_value(json_object_get(c, "batch_size")));
    snprintf(ri.size, sizeof(ri.size), "%lld",
             (long long)json_integer_value(json_object_get(t, "size")));
    snprintf(ri.msize, sizeof(ri.msize), "%lld",
             (long long)json_integer_value(json_object_get(t, "math_size")));
    snprintf(ri.shards, sizeof(ri.shards), "%lld",
             (long long)json_integer_value(json_object_get(t, "shards")));
    ri.draw = json_string_value(json_object_get(c, "draw"));
    snprintf(ri.weight, sizeof(ri.weight), "%.17g",
             json_real_value(json_object_get(json_object_get(r, "reward"), "avg_acc_weight")));
    return qpo_config_each_run(r, insert_run, &ri);
}

static int plan_jobs(PGconn *conn, int64_t exp, const json_t *resolved, size_t fault_after,
                     qpo_err *err) {
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, exp);
    const char *p[] = {id};
    PGresult *res = qpo_db_named(conn, "runs_of_experiment", 1, p, err);
    if (!res)
        return -1;
    int n = PQntuples(res);
    qpo_plan_run *runs = calloc((size_t)(n ? n : 1), sizeof(*runs));
    for (int i = 0; i < n; i++)
        runs[i] =
            (qpo_plan_run){qpo_db_int64(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                           PQgetvalue(res, i, 3), (int)qpo_db_int64(res, i, 4)};
    qpo_plan plan = {0};
    size_t created = 0;
    int rc = qpo_plan_build(exp, resolved, runs, (size_t)n, &plan, err);
    if (rc == 0)
        rc = qpo_plan_enqueue(conn, &plan, fault_after, &created, err);
    qpo_plan_free(&plan);
    free(runs);
    PQclear(res);
    return rc;
}

/* Writes targets, runs and jobs of a valid experiment. Usage errors (a clashing target) make
 * the experiment invalid; the caller rolls back and records that. */
static int plan_valid(PGconn *conn, int64_t exp, const json_t *resolved, size_t fault_after,
                      qpo_err *err) {
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(resolved, "targets"), i, t) {
        if (upsert_target(conn, t, (int)i, err) < 0)
            return -1;
    }
    if (insert_runs(conn, exp, resolved, err) < 0 ||
        plan_jobs(conn, exp, resolved, fault_after, err) < 0)
        return -1;
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, exp);
    char *text = json_dumps(resolved, JSON_COMPACT | JSON_SORT_KEYS);
    const char *p[] = {id, text};
    int rc = exec_named(conn, "exp_mark_planned", 2, p, err);
    free(text);
    return rc;
}

static int mark_invalid(PGconn *conn, int64_t exp, const qpo_err *why, qpo_err *err) {
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, exp);
    const char *p[] = {id, why->msg};
    if (qpo_db_begin(conn, err) < 0 || exec_named(conn, "exp_mark_invalid", 2, p, err) < 0 ||
        qpo_db_commit(conn, err) < 0) {
        qpo_db_rollback(conn);
        return -1;
    }
    return 0;
}

int qpo_experiment_plan_next(PGconn *conn, size_t fault_after_jobs, int64_t *planned_id,
                             qpo_err *err) {
    *planned_id = 0;
    if (qpo_db_begin(conn, err) < 0)
        return -1;
    PGresult *res = qpo_db_named(conn, "exp_claim_submitted", 0, NULL, err);
    if (!res || PQntuples(res) == 0) {
        PQclear(res);
        qpo_db_rollback(conn);
        return res ? 0 : -1;
    }
    int64_t exp = qpo_db_int64(res, 0, 0);
    json_t *config = json_loads(PQgetvalue(res, 0, 2), 0, NULL);
    PQclear(res);
    *planned_id = exp;
    qpo_err why = {0};
    json_t *resolved = qpo_config_resolve(config, &why);
    json_decref(config);
    int rc = resolved ? plan_valid(conn, exp, resolved, fault_after_jobs, &why) : -1;
    json_decref(resolved);
    if (rc == 0)
        return qpo_db_commit(conn, err) < 0 ? (qpo_db_rollback(conn), -1) : 0;
    qpo_db_rollback(conn);
    if (why.code != QPO_EXIT_USAGE) {
        *err = why;
        qpo_err_prefix(err, "planning experiment %" PRId64, exp);
        return -1;
    }
    /* Another scheduler may have taken the row between our rollback and this update: the
     * update is idempotent (same config, same verdict). */
    return mark_invalid(conn, exp, &why, err);
}

int qpo_experiments_refresh(PGconn *conn, qpo_err *err) {
    PGresult *res = qpo_db_named(conn, "exp_active", 0, NULL, err);
    if (!res)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        const char *p[] = {PQgetvalue(res, i, 0)};
        rc = exec_named(conn, "exp_refresh", 1, p, err);
    }
    PQclear(res);
    return rc;
}
