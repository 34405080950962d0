/* The reward job end to end: a real PostgreSQL, `qpo sim-llm` on loopback with injected
 * faults, the real LLM client, and `qpo worker` processes (one of them SIGKILLed mid-batch).
 * Reference batches run in this process, completing through the commit hook in one
 * transaction as the runtime does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "pgtest.h"
#include "reward_jobs.h"
#include "sim_fixture.h"

static qpo_pgtest *pg;

/* Runs the reward job once as attempt `attempt`, completing it like the runtime: the commit
 * hook inside one transaction. Returns the job status; *result_out gets the result (or NULL). */
static qpo_job_status run_reward_job(const char *conninfo, int64_t job_id, int attempt,
                                     json_t **result_out) {
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(conninfo, "test_reward_worker", &err);
    assert_non_null(conn);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT payload::text FROM qpo.jobs WHERE id = %lld",
             (long long)job_id);
    char *payload_text = db_scalar(conn, sql);
    json_error_t jerr;
    json_t *payload = json_loads(payload_text, 0, &jerr);
    free(payload_text);
    qpo_reward_env env = {
        .conn = conn, .job_id = job_id, .job_attempt = attempt, .worker = "test-worker"};
    qpo_job_outcome out = {0};
    qpo_job_status st = qpo_reward_job_reward(&env, payload, &out, &err);
    if (st == QPO_JOB_OK) {
        qpo_job job = {.id = job_id, .kind = "reward", .attempt = attempt, .payload = payload};
        assert_int_equal(qpo_db_begin(conn, &err), 0);
        if (qpo_outcome_write(conn, &job, &out, &err) != 0) {
            qpo_err_print(&err);
            fail_msg("writing the reward job's rows failed");
        }
        assert_int_equal(qpo_db_commit(conn, &err), 0);
    } else {
        fprintf(stderr, "reward job attempt %d: status %d: ", attempt, (int)st);
        qpo_err_print(&err);
    }
    qpo_outcome_free_output(&out);
    if (result_out) {
        *result_out = out.result;
    } else {
        json_decref(out.result);
    }
    json_decref(payload);
    PQfinish(conn);
    return st;
}

/* Retries like the runtime: transient failures again, up to 5 attempts. */
static json_t *run_until_done(const char *conninfo, int64_t job_id, int first_attempt) {
    for (int attempt = first_attempt; attempt <= 5; attempt++) {
        json_t *result = NULL;
        qpo_job_status st = run_reward_job(conninfo, job_id, attempt, &result);
        if (st == QPO_JOB_OK) {
            return result;
        }
        json_decref(result);
        assert_int_equal(st, QPO_JOB_RETRY);
    }
    fail_msg("the reward job did not complete in 5 attempts");
    return NULL;
}

/* Every reward recomputed in SQL from its own stored components and the batch. */
static void assert_rewards_consistent(PGconn *conn, int n_pairs) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT item_id) FROM qpo.rewards");
    assert_int_equal(db_count(conn, sql), n_pairs);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.rewards"), n_pairs);
    /* prediction = argmin of the NLLs, correct = prediction == gold, avg_acc = batch accuracy,
     * raw = 10 correct + 10 avg_acc - nll_gold, norm with D_0's range [-5, 25]. */
    assert_int_equal(
        db_count(conn,
                 "SELECT count(*) FROM qpo.rewards r JOIN qpo.task_items i "
                 "ON i.task = 'tweet_emotion' AND i.item_id = r.item_id "
                 "WHERE r.prediction::int <> (SELECT k - 1 FROM unnest(r.nlls) WITH ORDINALITY "
                 "u(v, k) ORDER BY v, k LIMIT 1) "
                 "OR r.correct <> (r.prediction::int = i.label) "
                 "OR abs(r.avg_acc - (SELECT avg(correct::int) FROM qpo.rewards)) > 1e-9 "
                 "OR abs(r.raw_reward - (10 * r.correct::int + 10 * r.avg_acc - "
                 "r.nlls[i.label + 1])) > 1e-9 "
                 "OR abs(r.norm_reward - (r.raw_reward + 5) / 30 * 100) > 1e-9 "
                 "OR cardinality(r.call_ids) <> 4"),
        0);
    /* Every call a reward names is a successful recorded call. */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.rewards r, unnest(r.call_ids) c "
                                    "WHERE NOT EXISTS (SELECT 1 FROM qpo.llm_calls l "
                                    "WHERE l.id = c AND l.status = 'ok')"),
                     0);
}

static void assert_job_succeeded(PGconn *conn, int64_t job_id, int min_attempt) {
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT state || ':' || attempt FROM qpo.jobs WHERE id = %lld",
             (long long)job_id);
    char *st = db_scalar(conn, sql);
    if (strncmp(st, "succeeded:", 10) != 0 || atoi(st + 10) < min_attempt) {
        fail_msg("job %lld: %s (want succeeded, attempt >= %d)", (long long)job_id, st,
                 min_attempt);
    }
    free(st);
}

/* Polls until the job is succeeded, dead or cancelled (a deadline against hangs, not a timing
 * assertion). */
static void wait_job_finished(PGconn *conn, int64_t job_id) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM qpo.jobs WHERE id = %lld AND finished_at IS NOT NULL",
             (long long)job_id);
    for (double end = qpo_test_deadline(120); db_count(conn, sql) == 0 && qpo_test_before(end);) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static json_t *job_result(PGconn *conn, int64_t job_id) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT result::text FROM qpo.jobs WHERE id = %lld",
             (long long)job_id);
    char *text = db_scalar(conn, sql);
    json_error_t jerr;
    json_t *result = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(result);
    return result;
}

static void test_reward_job_completes_through_30_percent_faults(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    enum { PAIRS = 1000 };
    char *conninfo;
    int64_t job_id;
    PGconn *conn = reward_db_setup(pg, data, "zero_shot", PAIRS, &conninfo, &job_id);
    sim_proc sim = {0};
    sim_start(&sim, conninfo,
              "--fail-rate 0.1 --fail-status 503 --drop-rate 0.1 --truncate-rate 0.05 "
              "--malformed-rate 0.05 --seed 7");
    reward_db_set_target(conn, sim.base_url, "{\"max_inflight\": 64, \"retry_budget\": 6}");

    pid_t worker = worker_start(conninfo, "w-faults", "--exit-when-idle --backoff-ms 10,100");
    assert_int_equal(proc_wait(worker), 0);
    sim_stop(&sim);
    assert_job_succeeded(conn, job_id, 1);

    assert_rewards_consistent(conn, PAIRS);
    /* Each logical request was answered by exactly one live call: nothing paid twice. */
    long long live_ok = db_count(conn, "SELECT count(*) FROM qpo.llm_calls "
                                       "WHERE status = 'ok' AND NOT cache_hit");
    assert_int_equal(live_ok, PAIRS * 4);
    assert_int_equal(db_count(conn, "SELECT count(DISTINCT request_hash) FROM qpo.llm_calls "
                                    "WHERE status = 'ok' AND NOT cache_hit"),
                     PAIRS * 4);
    /* The failed attempts are there, each with what went wrong, and of several kinds. */
    long long failed = db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE status <> 'ok'");
    long long kinds =
        db_count(conn, "SELECT count(DISTINCT status) FROM qpo.llm_calls WHERE status <> 'ok'");
    fprintf(stderr, "30%% faults: %lld live calls ok, %lld failed attempts (%lld kinds)\n", live_ok,
            failed, kinds);
    char *by_status = db_scalar(conn, "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT "
                                      "status, count(*) n FROM qpo.llm_calls GROUP BY status) s");
    char *attempts = db_scalar(conn, "SELECT attempt FROM qpo.jobs");
    fprintf(stderr, "calls by status: %s; job attempts: %s\n", by_status, attempts);
    free(by_status);
    free(attempts);
    assert_true(failed > 0);
    assert_true(kinds >= 2);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE status <> 'ok' "
                                    "AND error = ''"),
                     0);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE job_id IS NULL "
                                    "OR worker IS DISTINCT FROM 'w-faults'"),
                     0);
    json_t *result = job_result(conn, job_id);
    assert_int_equal(json_integer_value(json_object_get(result, "pairs")), PAIRS);
    assert_non_null(json_object_get(result, "cache_hit_rate"));
    json_decref(result);

    /* Another seed of the same (task, setting, target) whose policy wrote the same prompts:
     * every request is answered from the cache, nothing is paid, and the hits are marked. */
    db_exec_ok(conn, "INSERT INTO qpo.runs (id, experiment_id, task, setting, target, seed, "
                     "loops) VALUES (2, 1, 'tweet_emotion', 'zero_shot', 'sim', 1, 4);"
                     "INSERT INTO qpo.generations (run_id, loop, purpose, batch, item_id, prompt) "
                     "SELECT 2, loop, purpose, batch, item_id, prompt FROM qpo.generations "
                     "WHERE run_id = 1");
    char *id2 = db_scalar(conn, "INSERT INTO qpo.jobs (kind, class, max_attempts, payload, "
                                "run_id) VALUES ('reward', 'cpu', 5, '{\"run_id\": 2, "
                                "\"loop\": 1, \"batch\": 0}', 2) RETURNING id");
    int64_t job2 = atoll(id2);
    free(id2);
    sim_serve(&sim, conn, conninfo, "", "{\"max_inflight\": 64, \"retry_budget\": 6}");
    worker = worker_start(conninfo, "w-rerun", "--exit-when-idle --backoff-ms 10,100");
    assert_int_equal(proc_wait(worker), 0);
    sim_stop(&sim);
    assert_job_succeeded(conn, job2, 1);
    result = job_result(conn, job2);
    assert_int_equal(json_integer_value(json_object_get(result, "cache_hits")), PAIRS * 4);
    assert_true(json_real_value(json_object_get(result, "cache_hit_rate")) == 1.0);
    assert_int_equal(json_integer_value(json_object_get(result, "http_attempts")), 0);
    json_decref(result);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE job_id = (SELECT "
                                    "max(id) FROM qpo.jobs) AND cache_hit AND cached_call_id IN "
                                    "(SELECT id FROM qpo.llm_calls WHERE NOT cache_hit AND "
                                    "status = 'ok')"),
                     PAIRS * 4);
    /* Same answers, same rewards: the cache returns exactly what was paid for. */
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.rewards a JOIN qpo.rewards b "
                                    "USING (item_id) WHERE a.run_id = 1 AND b.run_id = 2 AND "
                                    "a.nlls = b.nlls AND a.raw_reward = b.raw_reward"),
                     PAIRS);
    char *timing = db_scalar(conn, "SELECT string_agg(id || ': ' || round(extract(epoch FROM "
                                   "finished_at - started_at)::numeric, 2) || ' s', ', ' ORDER "
                                   "BY id) FROM qpo.jobs");
    fprintf(stderr, "job wall times (1: live with faults, 2: all cache hits): %s\n", timing);
    free(timing);
    PQfinish(conn);
    free(conninfo);
}

/* A killed client's server processes live on until they notice the closed socket, and a COMMIT
 * they had already received still lands: counting the dead worker's rows before they are gone
 * can miss its last insert. */
static void wait_backends_gone(PGconn *conn, const char *application_name) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'",
             application_name);
    for (double end = qpo_test_deadline(10); db_count(conn, sql) > 0 && qpo_test_before(end);) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(db_count(conn, sql), 0);
}

/* item -> (prediction, raw, norm) of a finished batch, to compare runs. */
static char *rewards_fingerprint(PGconn *conn) {
    return db_scalar(conn, "SELECT string_agg(item_id || ':' || prediction || ':' || "
                           "round(raw_reward::numeric, 9) || ':' || "
                           "round(norm_reward::numeric, 9), ',' ORDER BY item_id) "
                           "FROM qpo.rewards");
}

static void test_killed_worker_leaves_nothing_and_retry_pays_once(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    enum { PAIRS = 300 };
    /* Reference: the same batch, uninterrupted, run in this process. */
    char *ref_info;
    int64_t ref_job;
    PGconn *ref = reward_db_setup(pg, data, "zero_shot", PAIRS, &ref_info, &ref_job);
    char *conninfo;
    int64_t job_id;
    PGconn *conn = reward_db_setup(pg, data, "zero_shot", PAIRS, &conninfo, &job_id);
    sim_proc sim = {0};
    sim_serve(&sim, ref, ref_info, "--latency-ms 4", "{\"max_inflight\": 64}");
    json_decref(run_until_done(ref_info, ref_job, 1));

    /* Few in flight, so the kill lands mid-batch; a short lease, so the restart reclaims. */
    reward_db_set_target(conn, sim.base_url, "{\"max_inflight\": 4}");
    pid_t worker = worker_start(conninfo, "w-killed", "--lease 2");
    long long recorded = 0;
    for (double end = qpo_test_deadline(30); recorded < PAIRS && qpo_test_before(end);) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
        recorded = db_count(conn, "SELECT count(*) FROM qpo.llm_calls");
    }
    assert_int_equal(kill(worker, SIGKILL), 0);
    assert_int_equal(proc_wait(worker), 128 + SIGKILL);
    wait_backends_gone(conn, "qpo worker w-killed");
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.rewards"), 0);
    long long answered = db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE status = 'ok'");
    assert_true(answered >= PAIRS);
    assert_true(answered < PAIRS * 4);

    /* The restarted worker reaps the dead one's lease once it expires, then runs attempt 2. */
    worker = worker_start(conninfo, "w-restart", "--lease 2 --poll 0.2 --backoff-ms 10,100");
    wait_job_finished(conn, job_id);
    kill(worker, SIGTERM);
    assert_int_equal(proc_wait(worker), 0);
    sim_stop(&sim);
    assert_job_succeeded(conn, job_id, 2);
    json_t *result = job_result(conn, job_id);
    /* The retry answered every recorded call from the cache and called only the rest. */
    assert_int_equal(json_integer_value(json_object_get(result, "cache_hits")), answered);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.llm_calls "
                                    "WHERE status = 'ok' AND NOT cache_hit"),
                     PAIRS * 4);
    assert_int_equal(db_count(conn, "SELECT count(DISTINCT request_hash) FROM qpo.llm_calls "
                                    "WHERE status = 'ok' AND NOT cache_hit"),
                     PAIRS * 4);
    assert_int_equal(db_count(conn, "SELECT count(*) FROM qpo.llm_calls WHERE cache_hit AND "
                                    "worker = 'w-restart'"),
                     answered);
    assert_rewards_consistent(conn, PAIRS);
    char *want = rewards_fingerprint(ref);
    char *got = rewards_fingerprint(conn);
    assert_string_equal(got, want);
    fprintf(stderr, "kill: %lld calls answered before SIGKILL, reused after; hit rate %.3f\n",
            answered, json_real_value(json_object_get(result, "cache_hit_rate")));
    free(want);
    free(got);
    json_decref(result);
    PQfinish(ref);
    PQfinish(conn);
    free(ref_info);
    free(conninfo);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reward_job_completes_through_30_percent_faults),
        cmocka_unit_test(test_killed_worker_leaves_nothing_and_retry_pays_once),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_kill_children();
    qpo_pgtest_stop(pg);
    return rc;
}
