/* `qpo sim-llm` as a process over real loopback HTTP: the server answers exactly as the
 * in-process API, each fault flag produces its fault on exactly the requests the seed picks
 * (so about its rate: counted, never timed), delayed replies survive clients that leave, bad
 * flags exit 2, SIGTERM and SIGINT exit 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "faults.h"
#include "pgtest.h"
#include "simproc.h"

static const char BODY[] =
    "{\"model\":\"qpo-sim\",\"prompt\":\"Classify the tweet.\\n\\nTweet: grr, stuck in traffic "
    "again\\nEmotion: Anger\",\"echo\":true,\"logprobs\":1,\"max_tokens\":1,\"temperature\":0}";

typedef struct response {
    CURLcode code;
    long status;
    char body[65536];
    size_t len;
    char retry_after[32];
} response;

static size_t on_body(char *p, size_t s, size_t n, void *arg) {
    response *r = arg;
    size_t k = s * n;
    if (r->len + k >= sizeof(r->body))
        k = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return s * n;
}

static size_t on_header(char *p, size_t s, size_t n, void *arg) {
    response *r = arg;
    if (!strncasecmp(p, "Retry-After:", 12))
        sscanf(p + 12, " %31s", r->retry_after);
    return s * n;
}

/* One POST on a fresh connection: a dropped request must not be retried by curl on a reused
 * connection, or it would take two of the server's request numbers. */
static void post(const char *url, const char *path, const char *body, response *r) {
    memset(r, 0, sizeof(*r));
    char full[256];
    snprintf(full, sizeof(full), "%s%s", url, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)qpo_test_seconds(30));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    r->code = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static json_t *choices_of(const char *body, size_t len) {
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *c = json_incref(json_object_get(j, "choices"));
    json_decref(j);
    return c;
}

static void test_http_matches_in_process_api(void **state) {
    simproc p;
    simproc_start(&p, NULL);
    response r;
    post(p.url, "/v1/completions", BODY, &r);
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    sim_data empty = {0};
    sim_api api = {.data = &empty, .model = "qpo-sim"};
    sim_reply local;
    sim_api_handle(&api, "POST", "/v1/completions", NULL, BODY, strlen(BODY), &local);
    json_t *a = choices_of(r.body, r.len), *b = choices_of(local.body, local.len);
    assert_non_null(a);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    sim_reply_free(&local);
    assert_int_equal(simproc_stop(&p, SIGTERM), 0);
}

enum outcome { OK, DROPPED, FAILED, TRUNCATED, MALFORMED, N_OUTCOMES };

static enum outcome classify(const response *r) {
    if (r->code != CURLE_OK)
        return DROPPED;
    if (r->status == 429) {
        assert_string_equal(r->retry_after, "3");
        json_t *j = json_loadb(r->body, r->len, 0, NULL);
        assert_non_null(json_object_get(json_object_get(j, "error"), "message"));
        json_decref(j);
        return FAILED;
    }
    assert_int_equal(r->status, 200);
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    if (!j)
        return TRUNCATED;
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    json_t *lp = json_object_get(c0, "logprobs");
    int ok = json_is_string(json_object_get(c0, "text")) &&
             json_is_array(json_object_get(lp, "text_offset")) &&
             json_is_number(json_array_get(json_object_get(lp, "token_logprobs"), 1));
    json_decref(j);
    return ok ? OK : MALFORMED;
}

static void test_fault_flags_hit_the_seeded_requests(void **state) {
    const char *args[] = {"--fail-rate",
                          "0.2",
                          "--fail-status",
                          "429",
                          "--retry-after",
                          "3",
                          "--drop-rate",
                          "0.1",
                          "--truncate-rate",
                          "0.1",
                          "--malformed-rate",
                          "0.1",
                          "--seed",
                          "7",
                          NULL};
    sim_faults f = {.drop_rate = 0.1,
                    .fail_rate = 0.2,
                    .truncate_rate = 0.1,
                    .malformed_rate = 0.1,
                    .fail_status = {429},
                    .n_fail_status = 1,
                    .seed = 7};
    simproc p;
    simproc_start(&p, args);
    enum { N = 400 };
    int got[N_OUTCOMES] = {0}, want[N_OUTCOMES] = {0};
    for (uint64_t i = 0; i < N; i++) {
        response r;
        post(p.url, "/v1/completions", BODY, &r);
        enum outcome o = classify(&r);
        got[o]++;
        unsigned variant;
        static const enum outcome of_fault[] = {OK, DROPPED, FAILED, TRUNCATED, MALFORMED};
        enum outcome expect = of_fault[sim_fault_for(&f, i, &variant)];
        want[expect]++;
        assert_int_equal(o, expect);
    }
    const double rate[N_OUTCOMES] = {0.5, 0.1, 0.2, 0.1, 0.1};
    static const char *const names[] = {"ok", "dropped", "failed", "truncated", "malformed"};
    for (int o = 0; o < N_OUTCOMES; o++)
        printf("%-9s %3d of %d (rate %.2f)\n", names[o], got[o], N, rate[o]);
    for (int o = 0; o < N_OUTCOMES; o++) {
        assert_int_equal(got[o], want[o]);
        assert_true(got[o] > (rate[o] - 0.1) * N && got[o] < (rate[o] + 0.1) * N);
    }
    /* GET /v1/models is never faulted: readiness checks stay reliable. */
    assert_int_equal(simproc_stop(&p, SIGINT), 0);
}

static void test_fail_statuses(void **state) {
    const char *statuses[] = {"500", "503"};
    for (int s = 0; s < 2; s++) {
        const char *args[] = {"--fail-rate", "1", "--fail-status", statuses[s], NULL};
        simproc p;
        simproc_start(&p, args);
        response r;
        post(p.url, "/v1/chat/completions", "{}", &r);
        assert_int_equal(r.status, atoi(statuses[s]));
        assert_string_equal(r.retry_after, "");
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                            "server_error");
        json_decref(j);
        assert_int_equal(simproc_stop(&p, SIGTERM), 0);
    }
}

/* Several fail statuses: each failed request gets the one its seeded variant names, so both
 * appear, each 429 with its Retry-After; a hung reply comes --hang-ms late, whole. */
static void test_mixed_statuses_and_hangs(void **state) {
    const char *args[] = {"--fail-rate", "0.5", "--fail-status", "429,500", "--retry-after", "2",
                          "--hang-rate", "0.2", "--hang-ms",     "700",     "--seed",        "5",
                          NULL};
    sim_faults f = {.fail_rate = 0.5,
                    .fail_status = {429, 500},
                    .n_fail_status = 2,
                    .hang_rate = 0.2,
                    .seed = 5};
    simproc p;
    simproc_start(&p, args);
    int seen429 = 0, seen500 = 0, hung = 0;
    for (uint64_t i = 0; i < 30; i++) {
        response r;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        post(p.url, "/v1/completions", BODY, &r);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        unsigned variant;
        sim_fault fault = sim_fault_for(&f, i, &variant);
        if (fault == SIM_FAULT_FAIL) {
            assert_int_equal(r.status, sim_fault_status(&f, variant));
            assert_string_equal(r.retry_after, "2");
            seen429 += r.status == 429;
            seen500 += r.status == 500;
        } else {
            assert_int_equal(r.status, 200);
            double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
            /* Not a timing assertion on speed: a hung reply cannot come before its timer. */
            if (fault == SIM_FAULT_HANG) {
                assert_true(ms >= 690);
                hung++;
            }
            json_t *c = choices_of(r.body, r.len);
            assert_int_equal(json_array_size(c), 1);
            json_decref(c);
        }
    }
    assert_true(seen429 > 0 && seen500 > 0 && hung > 0);
    assert_int_equal(simproc_stop(&p, SIGTERM), 0);
}

/* Clients that give up before a delayed reply leave requests with no connection: the server
 * must neither crash nor leak them (the sanitized run checks the leak), and keep serving. */
static void test_latency_with_departing_clients(void **state) {
    const char *args[] = {"--latency-ms", "400", "--latency-jitter-ms", "50", NULL};
    simproc p;
    simproc_start(&p, args);
    CURLM *m = curl_multi_init();
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/completions", p.url);
    enum { N = 16 };
    CURL *easy[N];
    response *rs = calloc(N, sizeof(response));
    for (int i = 0; i < N; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, BODY);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &rs[i]);
        /* Half the clients leave after 20 ms, long before the earliest reply (350 ms); the
         * others' limit only guards against a hang. */
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS,
                         i % 2 ? 20L : (long)qpo_test_seconds(30) * 1000L);
        curl_multi_add_handle(m, easy[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    int done = 0, timed_out = 0;
    CURLMsg *msg;
    int q;
    while ((msg = curl_multi_info_read(m, &q))) {
        long status = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        done += msg->data.result == CURLE_OK && status == 200;
        timed_out += msg->data.result == CURLE_OPERATION_TIMEDOUT;
    }
    assert_int_equal(done, N / 2);
    assert_int_equal(timed_out, N / 2);
    for (int i = 0; i < N; i++) {
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    curl_multi_cleanup(m);
    free(rs);
    response r;
    post(p.url, "/v1/completions", BODY, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(simproc_stop(&p, SIGTERM), 0);
}

static void test_bad_flags_exit_2(void **state) {
    const char *cases[][8] = {
        {"--listen", "127.0.0.1:0", "--fail-rate", "0.5", "--fail-status", "404", NULL},
        {"--listen", "127.0.0.1:0", "--fail-rate", "1.5", NULL},
        {"--listen", "127.0.0.1:0", "--drop-rate", "0.6", "--fail-rate", "0.6", NULL},
        {"--listen", "localhost", NULL},
        {"--listen", "127.0.0.1:99999", NULL},
        {"--listen", "not-an-ip:0", NULL},
        {"--drop-rate", "0.1", NULL},
        {"--listen", "127.0.0.1:0", "--data", "/nonexistent-qpo-data", NULL},
        {"--listen", "127.0.0.1:0", "--threads", "0", NULL},
        {"--listen", "127.0.0.1:0", "--latency-ms", "-5", NULL},
        {"--listen", "127.0.0.1:0", "--seed", "x", NULL},
        {"--listen", "127.0.0.1:0", "--bogus", NULL},
        {"--listen", "127.0.0.1:0", "--retry-after", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[4096];
        int rc = simproc_run(cases[i], err, sizeof(err));
        if (rc != 2 || !strstr(err, "qpo: error:"))
            fail_msg("case %zu (%s %s ...): exit %d, stderr: %s", i, cases[i][0],
                     cases[i][1] ? cases[i][1] : "", rc, err);
    }
}

/* A data row the sim cannot read stops it before it serves anything, naming file and line. */
static void test_bad_data_rows_exit_2(void **state) {
    char dir[] = "/tmp/qpo-sim-data-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char text[128], labels[128];
    snprintf(text, sizeof(text), "%s/train_text.txt", dir);
    snprintf(labels, sizeof(labels), "%s/train_labels.txt", dir);
    FILE *f = fopen(text, "w");
    fputs("first tweet\nsecond tweet\n", f);
    fclose(f);
    f = fopen(labels, "w");
    fputs("1\nseven\n", f);
    fclose(f);
    const char *args[] = {"--listen", "127.0.0.1:0", "--data", dir, NULL};
    char err[4096];
    assert_int_equal(simproc_run(args, err, sizeof(err)), 2);
    assert_non_null(strstr(err, "bad TweetEval label"));
    assert_non_null(strstr(err, "line 2"));
    unlink(text);
    unlink(labels);
    rmdir(dir);
}

static void test_help(void **state) {
    const char *args[] = {"--help", NULL};
    char err[256];
    assert_int_equal(simproc_run(args, err, sizeof(err)), 0);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_matches_in_process_api),
        cmocka_unit_test(test_fault_flags_hit_the_seeded_requests),
        cmocka_unit_test(test_fail_statuses),
        cmocka_unit_test(test_mixed_statuses_and_hangs),
        cmocka_unit_test(test_latency_with_departing_clients),
        cmocka_unit_test(test_bad_flags_exit_2),
        cmocka_unit_test(test_bad_data_rows_exit_2),
        cmocka_unit_test(test_help),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
