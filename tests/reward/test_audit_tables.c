/* qpo.llm_calls, qpo.rewards and qpo.eval_scores on a real cluster: the named statements the
 * jobs use write what they should, the response cache finds only successful live calls of the
 * same target, and all three tables refuse UPDATE, DELETE and TRUNCATE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "audit.h"
#include "db.h"
#include "llm_test_server.h"
#include "pgtest.h"

static qpo_pgtest *pg;

static PGconn *connect_fresh(void) {
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(qpo_pgtest_new_db(pg), "test_audit", &err);
    if (!conn) {
        qpo_err_print(&err);
    }
    assert_non_null(conn);
    return conn;
}

static void exec_ok(PGconn *conn, const char *sql) {
    qpo_err err = {0};
    if (qpo_db_exec(conn, sql, &err) != 0) {
        qpo_err_print(&err);
        fail_msg("SQL failed: %s", sql);
    }
}

static char *scalar(PGconn *conn, const char *sql) {
    qpo_err err = {0};
    PGresult *res = qpo_db_query(conn, sql, 0, NULL, &err);
    if (!res) {
        qpo_err_print(&err);
        fail_msg("SQL failed: %s", sql);
    }
    char *v = strdup(PQgetisnull(res, 0, 0) ? "NULL" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static void assert_scalar(PGconn *conn, const char *sql, const char *want) {
    char *got = scalar(conn, sql);
    if (strcmp(got, want) != 0) {
        fail_msg("%s: got %s, want %s", sql, got, want);
    }
    free(got);
}

/* Refused with the trigger's message, and nothing changed. */
static void assert_refused(PGconn *conn, const char *sql) {
    qpo_err err = {0};
    if (qpo_db_exec(conn, sql, &err) == 0) {
        fail_msg("append-only table accepted: %s", sql);
    }
    assert_non_null(strstr(err.msg, "append-only"));
}

static const char *hash_a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static int64_t insert_call(PGconn *conn, const char *target, const char *status, int attempt,
                           const char *response, const char *cached_id) {
    const char *params[20] = {target,    "/v1/completions",
                              "m",       hash_a,
                              "true",    cached_id ? NULL : "{\"prompt\":\"x\"}",
                              response,  status,
                              "",        response ? "200" : NULL,
                              "1.5",     "3",
                              "1",       attempt == 0 ? "0" : (attempt == 1 ? "1" : "2"),
                              "false",   cached_id ? "true" : "false",
                              cached_id, NULL,
                              NULL,      "w1"};
    qpo_err err = {0};
    PGresult *res = qpo_db_named(conn, "reward_insert_call", 20, params, &err);
    if (!res) {
        qpo_err_print(&err);
    }
    assert_non_null(res);
    int64_t id = qpo_db_int64(res, 0, 0);
    PQclear(res);
    return id;
}

static void setup_run(PGconn *conn) {
    exec_ok(conn, "INSERT INTO qpo.targets (name, base_url, model) VALUES ('t1', "
                  "'http://127.0.0.1:1', 'm'), ('t2', 'http://127.0.0.1:2', 'm');"
                  "INSERT INTO qpo.experiments (id, name, config) VALUES (1, 'e', '{}');"
                  "INSERT INTO qpo.runs (id, experiment_id, task, setting, target, seed, loops) "
                  "VALUES (1, 1, 'tweet_emotion', 'few_shot', 't1', 0, 4)");
}

static void test_cache_finds_only_ok_live_calls_of_the_target(void **state) {
    (void)state;
    PGconn *conn = connect_fresh();
    setup_run(conn);
    insert_call(conn, "t1", "rate_limited", 1, "{\"error\":\"slow down\"}", NULL);
    qpo_err err = {0};
    const char *p[2] = {hash_a, "t1"};
    PGresult *res = qpo_db_named(conn, "reward_cache_lookup", 2, p, &err);
    assert_int_equal(PQntuples(res), 0);
    PQclear(res);

    int64_t live = insert_call(conn, "t1", "ok", 2, "{\"choices\":[]}", NULL);
    char live_s[24];
    snprintf(live_s, sizeof live_s, "%lld", (long long)live);
    int64_t hit = insert_call(conn, "t1", "ok", 0, NULL, live_s);
    assert_true(hit > live);
    res = qpo_db_named(conn, "reward_cache_lookup", 2, p, &err);
    assert_int_equal(PQntuples(res), 1);
    assert_int_equal(qpo_db_int64(res, 0, 0), live);
    assert_string_equal(PQgetvalue(res, 0, 1), "{\"choices\":[]}");
    PQclear(res);

    const char *other[2] = {hash_a, "t2"};
    res = qpo_db_named(conn, "reward_cache_lookup", 2, other, &err);
    assert_int_equal(PQntuples(res), 0);
    PQclear(res);

    /* A cache hit must name its source; a live call must carry its request. */
    assert_int_not_equal(qpo_db_exec(conn,
                                     "INSERT INTO qpo.llm_calls (target, endpoint, model, "
                                     "request_hash, cacheable, status, attempt, cache_hit) "
                                     "VALUES ('t1', '/v1/completions', 'm', repeat('b', 64), "
                                     "true, 'ok', 0, true)",
                                     &err),
                         0);
    assert_int_not_equal(qpo_db_exec(conn,
                                     "INSERT INTO qpo.llm_calls (target, endpoint, model, "
                                     "request_hash, cacheable, status, attempt) VALUES ('t1', "
                                     "'/v1/completions', 'm', repeat('b', 64), true, 'ok', 1)",
                                     &err),
                         0);

    assert_refused(conn, "UPDATE qpo.llm_calls SET status = 'ok'");
    assert_refused(conn, "DELETE FROM qpo.llm_calls");
    assert_refused(conn, "TRUNCATE qpo.llm_calls CASCADE");
    assert_scalar(conn, "SELECT count(*) FROM qpo.llm_calls", "3");
    PQfinish(conn);
}

static void test_rewards_and_scores_are_written_once_and_never_changed(void **state) {
    (void)state;
    PGconn *conn = connect_fresh();
    setup_run(conn);
    const char *rows =
        "[{\"run_id\":1,\"loop\":1,\"batch\":0,\"item_id\":7,\"query\":\"q\",\"prompt\":\"p\","
        "\"nlls\":[[1.5,0.25,2,3],[1e-05,2,3,4]],\"completion_nll\":null,\"completion\":null,"
        "\"prediction\":null,\"correct\":null,\"predictions\":[1,0],\"acc_q\":0.5,"
        "\"avg_acc\":0.4,\"raw_reward\":9,\"norm_reward\":45,\"d0_min_raw\":0,"
        "\"d0_max_raw\":20,\"call_ids\":[11,12]}]";
    /* As the worker runtime writes a job's rows (workers/runtime/outcome.c). */
    const char *params[3] = {"qpo.rewards", rows, "false"};
    qpo_err err = {0};
    PGresult *res = qpo_db_named(conn, "outcome_insert_rows", 3, params, &err);
    if (!res) {
        qpo_err_print(&err);
    }
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    assert_scalar(conn, "SELECT nlls[2][1] FROM qpo.rewards", "1e-05");
    assert_scalar(conn, "SELECT array_length(nlls, 2) FROM qpo.rewards", "4");
    assert_scalar(conn, "SELECT call_ids::text FROM qpo.rewards", "{11,12}");
    assert_scalar(conn, "SELECT predictions::text FROM qpo.rewards", "{1,0}");

    /* A second write of the same pair and loop is refused: rewards are written once. */
    res = qpo_db_named(conn, "outcome_insert_rows", 3, params, &err);
    assert_null(res);
    qpo_err_clear(&err);

    assert_refused(conn, "UPDATE qpo.rewards SET raw_reward = 100");
    assert_refused(conn, "DELETE FROM qpo.rewards");
    assert_refused(conn, "TRUNCATE qpo.rewards");

    const char *scores = "[{\"run_id\":1,\"loop\":0,\"source\":\"baseline:manual\",\"shard\":0,"
                         "\"item_id\":3,\"prompt\":\"p\",\"nlls\":[0.5,1],\"completion_nll\":null,"
                         "\"completion\":null,\"prediction\":\"0\",\"predictions\":null,"
                         "\"acc\":1,\"call_ids\":[5]}]";
    const char *sp[3] = {"qpo.eval_scores", scores, "false"};
    res = qpo_db_named(conn, "outcome_insert_rows", 3, sp, &err);
    if (!res) {
        qpo_err_print(&err);
    }
    assert_non_null(res);
    PQclear(res);
    assert_scalar(conn, "SELECT nlls::text FROM qpo.eval_scores", "{0.5,1}");
    assert_refused(conn, "UPDATE qpo.eval_scores SET acc = 0");
    assert_refused(conn, "DELETE FROM qpo.eval_scores");
    assert_scalar(conn, "SELECT count(*) FROM qpo.eval_scores", "1");
    PQfinish(conn);
}

static void on_done_status(const qpo_llm_result *r, void *user) {
    *(qpo_llm_status *)user = r->status;
}

/* A target that streams a body without end: the call stops at max_response_bytes and its
 * qpo.llm_calls row says so (status too_large, the limit in the error, a bounded prefix kept). */
static void test_endless_response_is_recorded_too_large(void **state) {
    (void)state;
    PGconn *conn = connect_fresh();
    ts_endless *srv = ts_endless_start();
    struct event_base *base = event_base_new();
    qpo_audit audit = {.conn = conn, .target = "endless", .worker = "test"};
    qpo_llm_hooks hooks = qpo_audit_hooks(&audit);
    qpo_llm_target t = {.name = "endless",
                        .base_url = ts_endless_url(srv),
                        .model = "m",
                        .retry_budget = 3,
                        .max_response_bytes = 200000};
    qpo_err err = {0};
    qpo_llm_client *c = qpo_llm_client_new(base, &t, &hooks, &err);
    assert_non_null(c);
    qpo_llm_status st = QPO_LLM_OK;
    assert_int_equal(qpo_llm_score(c, "Tweet: x\nEmotion:", " Joy", on_done_status, &st, &err), 0);
    assert_int_equal(qpo_llm_client_drain(c), 0);
    assert_int_equal(st, QPO_LLM_ERR_TOO_LARGE);
    assert_int_equal(audit.failed, 0);
    assert_scalar(conn, "SELECT count(*) FROM qpo.llm_calls", "1");
    assert_scalar(conn,
                  "SELECT status || ' ' || http_status || ' ' || (length(response) <= 200000) || "
                  "' ' || (error LIKE 'response body longer than 200000 bytes (the target''s "
                  "max_response_bytes)%') FROM qpo.llm_calls",
                  "too_large 200 true true");
    qpo_llm_client_free(c);
    event_base_free(base);
    ts_endless_stop(srv);
    json_decref(audit.hits);
    PQfinish(conn);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_finds_only_ok_live_calls_of_the_target),
        cmocka_unit_test(test_rewards_and_scores_are_written_once_and_never_changed),
        cmocka_unit_test(test_endless_response_is_recorded_too_large),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
