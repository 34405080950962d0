/* Metrics and logs of the long-running processes, as operators meet them: a worker, the
 * scheduler and sim-llm run as processes of the real binary against a real PostgreSQL, their
 * /metrics scraped over loopback while they work (values move as the jobs do; promtool lints
 * each scrape when installed), the worker's --log-format json lines parsed one by one, and the
 * target-LLM client's own families checked after calls to sim-llm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "llm.h"
#include "metrics.h"
#include "pgtest.h"
#include "qtest.h"
#include "scrape.h"
#include "simproc.h"

static qpo_pgtest *pg;

/* Scrapes until series reads want (metrics move just after the database does); the last
 * scrape's text in *last (malloc'd) when asked. */
static bool wait_sample(int port, const char *series, double want, char **last) {
    char *text = NULL;
    for (double end = qpo_test_deadline(10); qpo_test_before(end);) {
        long status;
        free(text);
        text = http_get(port, "/metrics", &status, 5);
        if (text && sample(text, series) == want)
            break;
        usleep(25000);
    }
    bool ok = text && sample(text, series) == want;
    if (!ok)
        fprintf(stderr, "%s: wanted %g in:\n%s\n", series, want, text ? text : "(no scrape)");
    if (last)
        *last = text;
    else
        free(text);
    return ok;
}

static pid_t spawn_qpo(const char *log, const char *const *argv) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execv(qpo_test_binary(), (char *const *)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    return pid;
}

/* Every line is one JSON object with ts, level and msg; a line about a job has its id and
 * attempt. Returns the lines as an array. */
static json_t *json_lines(const char *path) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    json_t *lines = json_array();
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        if (!o)
            fail_msg("not a JSON line (%s): %s", e.text, line);
        assert_true(json_is_string(json_object_get(o, "ts")));
        assert_true(json_is_string(json_object_get(o, "level")));
        assert_true(json_is_string(json_object_get(o, "msg")));
        if (json_object_get(o, "job_id")) {
            assert_true(json_integer_value(json_object_get(o, "job_id")) > 0);
            assert_true(json_integer_value(json_object_get(o, "attempt")) >= 1);
            assert_non_null(json_object_get(o, "run_id"));
        }
        json_array_append_new(lines, o);
    }
    fclose(f);
    return lines;
}

/* Lines of job id at this attempt whose message contains text. */
static int lines_about(const json_t *lines, int64_t job, int attempt, const char *text) {
    int n = 0;
    size_t i;
    json_t *o;
    json_array_foreach(lines, i, o) {
        n += json_integer_value(json_object_get(o, "job_id")) == job &&
             json_integer_value(json_object_get(o, "attempt")) == attempt &&
             strstr(json_string_value(json_object_get(o, "msg")), text) != NULL;
    }
    return n;
}

static void test_worker_metrics_and_json_logs(void **state) {
    char info[600], log[] = "/tmp/qpo-observe-worker-XXXXXX";
    snprintf(info, sizeof info, "%s", qpo_pgtest_new_db(pg));
    close(mkstemp(log));
    PGconn *conn = qt_connect(info);
    /* A dead worker's job whose lease has run out: the reaper's to return. */
    qt_exec(conn, "INSERT INTO qpo.jobs (kind, payload, state, attempt, started_at, lease_owner, "
                  "lease_expires_at) VALUES ('noop', '{}', 'running', 1, now(), 'gone', now() - "
                  "interval '1 minute')");
    qt_exec(conn, "INSERT INTO qpo.jobs (kind, payload) VALUES ('sleep', '{\"ms\": 1500}'), "
                  "('noop', '{}'), ('noop', '{}'), ('noop', '{}'), "
                  "('fail', '{\"times\": 1}'), ('fail', '{\"times\": 1, \"fatal\": true}')");
    int64_t sleep_id = qt_int(conn, "SELECT id FROM qpo.jobs WHERE kind = 'sleep'");
    int64_t retried_id = qt_int(conn, "SELECT id FROM qpo.jobs WHERE payload = '{\"times\": 1}'");
    int port = free_port();
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    setenv("QPO_TEST_LOG", log, 1);
    pid_t w =
        qt_worker(info, "--class", "cpu", "--kinds", "noop,sleep,fail", "--name", "w1",
                  "--concurrency", "2", "--poll", "0.05", "--backoff-ms", "20,100", "--lease", "3",
                  "--metrics-listen", listen, "--log-format", "json", "--log-level", "debug", NULL);
    unsetenv("QPO_TEST_LOG");

    /* While the sleep job runs: claimed, held, not yet succeeded. */
    assert_true(qt_wait_for(conn, 60,
                            "EXISTS (SELECT 1 FROM qpo.jobs WHERE kind = 'sleep' AND "
                            "state = 'running')"));
    char *text = NULL;
    assert_true(wait_sample(port, "qpo_jobs_claimed_total{kind=\"sleep\"}", 1, &text));
    assert_true(sample(text, "qpo_jobs_succeeded_total{kind=\"sleep\"}") <= 0);
    assert_true(sample(text, "qpo_worker_jobs_held") >= 1);
    assert_true(promtool_ok(text));
    free(text);

    /* Once every job is settled, each counter says what happened to it. */
    assert_true(qt_wait_for(conn, 60,
                            "NOT EXISTS (SELECT 1 FROM qpo.jobs WHERE state NOT IN "
                            "('succeeded', 'dead'))"));
    assert_true(wait_sample(port, "qpo_jobs_succeeded_total{kind=\"sleep\"}", 1, NULL));
    assert_true(wait_sample(port, "qpo_jobs_succeeded_total{kind=\"noop\"}", 4, NULL));
    assert_true(wait_sample(port, "qpo_jobs_dead_total{kind=\"fail\"}", 1, &text));
    assert_true(sample(text, "qpo_jobs_claimed_total{kind=\"noop\"}") == 4);
    assert_true(sample(text, "qpo_jobs_claimed_total{kind=\"fail\"}") == 3);
    assert_true(sample(text, "qpo_jobs_failed_total{kind=\"fail\"}") == 2);
    assert_true(sample(text, "qpo_jobs_retried_total{kind=\"fail\"}") == 1);
    assert_true(sample(text, "qpo_jobs_succeeded_total{kind=\"fail\"}") == 1);
    assert_true(sample(text, "qpo_leases_expired_total") == 1);
    assert_true(sample(text, "qpo_job_duration_seconds_count{kind=\"noop\"}") == 4);
    assert_true(sample(text, "qpo_job_duration_seconds_bucket{kind=\"sleep\",le=\"1\"}") == 0);
    assert_true(sample(text, "qpo_job_duration_seconds_bucket{kind=\"sleep\",le=\"5\"}") == 1);
    assert_true(promtool_ok(text));
    free(text);
    kill(w, SIGTERM);
    assert_int_equal(qt_wait_exit(w, 30), 0);

    json_t *lines = json_lines(log);
    assert_true(json_array_size(lines) >= 8);
    assert_int_equal(lines_about(lines, sleep_id, 1, "running a sleep job"), 1);
    /* The failed first attempt is logged by the main thread, still naming the job. */
    assert_int_equal(lines_about(lines, retried_id, 1, "failed"), 1);
    assert_int_equal(lines_about(lines, retried_id, 2, "running a fail job"), 1);
    json_decref(lines);
    unlink(log);
    PQfinish(conn);
}

static void test_scheduler_queue_depth(void **state) {
    char info[600], log[] = "/tmp/qpo-observe-sched-XXXXXX";
    snprintf(info, sizeof info, "%s", qpo_pgtest_new_db(pg));
    close(mkstemp(log));
    PGconn *conn = qt_connect(info);
    qt_exec(conn, "INSERT INTO qpo.jobs (kind) SELECT 'noop' FROM generate_series(1, 5)");
    int port = free_port();
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *argv[] = {"qpo", "scheduler",        "--db", info, "--poll-ms",
                          "100", "--metrics-listen", listen, NULL};
    pid_t s = spawn_qpo(log, argv);
    char *text = NULL;
    assert_true(wait_sample(port, "qpo_queue_jobs{state=\"queued\"}", 5, &text));
    assert_true(sample(text, "qpo_queue_jobs{state=\"running\"}") == 0);
    assert_true(sample(text, "qpo_queue_jobs{state=\"blocked\"}") == 0);
    assert_true(promtool_ok(text));
    free(text);
    /* Read at scrape time: the next scrape sees new jobs at once. */
    qt_exec(conn, "INSERT INTO qpo.jobs (kind) SELECT 'noop' FROM generate_series(1, 2)");
    long status;
    text = http_get(port, "/metrics", &status, 5);
    assert_true(sample(text, "qpo_queue_jobs{state=\"queued\"}") == 7);
    assert_true(sample(text, "qpo_scheduler_passes_total") >= 1);
    free(text);
    kill(s, SIGTERM);
    assert_int_equal(qt_wait_exit(s, 30), 0);
    unlink(log);
    PQfinish(conn);
}

typedef struct call {
    bool done;
    qpo_llm_status status;
} call;

static void on_done(const qpo_llm_result *r, void *user) {
    call *c = user;
    c->done = true;
    c->status = r->status;
}

/* A one-entry response cache: the first answer is kept and serves later lookups. */
static char *cached_body;

static int64_t keep_first(const qpo_llm_attempt *a, void *arg) {
    if (!cached_body && a->status == QPO_LLM_OK && a->response_body)
        cached_body = strdup(a->response_body);
    return 1;
}

static bool answer_cached(const qpo_llm_request_key *key, char **body, int64_t *call_id,
                          void *arg) {
    if (!cached_body)
        return false;
    *body = strdup(cached_body);
    *call_id = 1;
    return true;
}

static qpo_llm_client *client_for(struct event_base *base, const char *name, const char *url,
                                  const char *model) {
    qpo_llm_target t = {.name = name, .base_url = url, .model = model, .retry_budget = -1};
    qpo_llm_hooks hooks = {.on_attempt = keep_first, .cache_lookup = answer_cached};
    qpo_err err = {0};
    qpo_llm_client *c = qpo_llm_client_new(base, &t, &hooks, &err);
    if (!c)
        fail_msg("client: %s", err.msg);
    return c;
}

static void test_llm_calls_both_sides(void **state) {
    int port = free_port();
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *args[] = {"--metrics-listen", listen, NULL};
    simproc sim;
    simproc_start(&sim, args);
    struct event_base *base = event_base_new();
    qpo_llm_client *ok = client_for(base, "sim-ok", sim.url, "qpo-sim");
    qpo_llm_client *bad = client_for(base, "sim-bad", sim.url, "no-such-model");
    call calls[5] = {0};
    qpo_err err = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            qpo_llm_score(ok, "Tweet: so sad\nEmotion:", " Sadness", on_done, &calls[i], &err), 0);
    assert_int_equal(qpo_llm_score(bad, "Tweet: x\nEmotion:", " Joy", on_done, &calls[3], &err), 0);
    assert_int_equal(qpo_llm_client_drain(ok), 0);
    assert_int_equal(qpo_llm_client_drain(bad), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(calls[i].status, QPO_LLM_OK);
    assert_int_equal(calls[3].status, QPO_LLM_ERR_CLIENT);
    /* The same request again: answered by the cache, no HTTP call. */
    assert_int_equal(
        qpo_llm_score(ok, "Tweet: so sad\nEmotion:", " Sadness", on_done, &calls[4], &err), 0);
    assert_int_equal(qpo_llm_client_drain(ok), 0);
    assert_int_equal(calls[4].status, QPO_LLM_OK);

    /* The client's families, in this process. */
    char *text = qpo_metrics_render();
    assert_true(sample(text, "qpo_llm_calls_total{target=\"sim-ok\",status=\"ok\"}") == 3);
    assert_true(sample(text, "qpo_llm_calls_total{target=\"sim-bad\",status=\"client\"}") == 1);
    assert_true(sample(text, "qpo_llm_cache_hits_total{target=\"sim-ok\"}") == 1);
    assert_true(sample(text, "qpo_llm_tokens_total{target=\"sim-ok\",type=\"prompt\"}") > 0);
    assert_true(sample(text, "qpo_llm_call_duration_seconds_count{target=\"sim-ok\"}") == 3);
    assert_true(
        sample(text, "qpo_llm_call_duration_seconds_bucket{target=\"sim-ok\",le=\"+Inf\"}") == 3);
    assert_true(promtool_ok(text));
    free(text);
    /* The server's, scraped. */
    assert_true(wait_sample(
        port, "qpo_sim_requests_total{endpoint=\"/v1/completions\",code=\"2xx\"}", 3, &text));
    assert_true(sample(text, "qpo_sim_requests_total{endpoint=\"/v1/completions\",code=\"4xx\"}") ==
                1);
    assert_true(
        sample(text, "qpo_sim_request_duration_seconds_count{endpoint=\"/v1/completions\"}") == 4);
    assert_true(promtool_ok(text));
    free(text);
    qpo_llm_client_free(ok);
    qpo_llm_client_free(bad);
    free(cached_body);
    event_base_free(base);
    assert_int_equal(simproc_stop(&sim, SIGTERM), 0);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_metrics_and_json_logs),
        cmocka_unit_test(test_scheduler_queue_depth),
        cmocka_unit_test(test_llm_calls_both_sides),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
