/* `qpo sim-llm --db`: the gold answers come from qpo.task_items of a real PostgreSQL. The
 * server's answers for a stored item must be those of the in-process model that knows the item
 * (and not those it gives an unknown query); a database it cannot reach is a runtime error. */
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

#include "api.h"
#include "dataset.h"
#include "db.h"
#include "pgtest.h"
#include "simproc.h"

static const char *TWEET = "watching the rain and feeling hopeful about tomorrow";
static const char *QUESTION = "A box holds 12 pens. How many pens are in 6 boxes?";

typedef struct body {
    char data[65536];
    size_t len;
} reply_buf;

static size_t on_body(char *p, size_t s, size_t n, void *arg) {
    reply_buf *b = arg;
    size_t k = s * n < sizeof(b->data) - b->len ? s * n : sizeof(b->data) - b->len;
    memcpy(b->data + b->len, p, k);
    b->len += k;
    return s * n;
}

static json_t *http_choices(const char *url, const char *path, const char *body) {
    char full[256];
    snprintf(full, sizeof(full), "%s%s", url, path);
    reply_buf *b = calloc(1, sizeof(*b));
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    json_t *j = json_loadb(b->data, b->len, 0, NULL);
    free(b);
    assert_non_null(j);
    json_t *choices = json_incref(json_object_get(j, "choices"));
    json_decref(j);
    return choices;
}

static json_t *local_choices(const sim_data *d, const char *path, const char *body) {
    sim_api api = {.data = d, .model = "qpo-sim"};
    sim_reply r;
    sim_api_handle(&api, "POST", path, NULL, body, strlen(body), &r);
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    json_t *choices = json_incref(json_object_get(j, "choices"));
    json_decref(j);
    sim_reply_free(&r);
    return choices;
}

/* A gold label other than the pseudo-gold the model gives the same text when it is unknown. */
static int stored_label(void) {
    const char *values[] = {TWEET};
    size_t lens[] = {strlen(TWEET)};
    return (int)((sim_fields_key(values, lens, 1) + 1) % 4);
}

static void seed_items(const char *conninfo) {
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(conninfo, "test", &err);
    assert_non_null(conn);
    char tweet_fields[256], math_fields[256];
    snprintf(tweet_fields, sizeof(tweet_fields), "{\"text\": \"%s\"}", TWEET);
    snprintf(math_fields, sizeof(math_fields), "{\"question\": \"%s\"}", QUESTION);
    char label[8];
    snprintf(label, sizeof(label), "%d", stored_label());
    const char *p[] = {TWEET, tweet_fields, QUESTION, math_fields, label};
    PGresult *res = qpo_db_query(
        conn,
        "INSERT INTO qpo.task_items (task, item_id, split, upstream_split, upstream_index, "
        "query, fields, label, answer) VALUES "
        "('tweet_emotion', 0, 'test', 'test', 0, $1, $2::jsonb, $5::int, NULL), "
        "('gsm8k', 0, 'train', 'train', 0, $3, $4::jsonb, NULL, '72')",
        5, p, &err);
    assert_non_null(res);
    PQclear(res);
    PQfinish(conn);
}

static void add_same_items(sim_data *d) {
    qpo_err err = {0};
    assert_int_equal(sim_data_add(d, qpo_task_find("tweet_emotion"),
                                  json_pack("{s:s}", "text", TWEET), stored_label(), NULL, &err),
                     0);
    assert_int_equal(sim_data_add(d, qpo_task_find("gsm8k"),
                                  json_pack("{s:s}", "question", QUESTION), -1, "72", &err),
                     0);
    assert_int_equal(sim_data_finish(d, &err), 0);
}

static void test_items_from_the_database(void **state) {
    qpo_pgtest *pg = qpo_pgtest_start();
    char conninfo[1024];
    snprintf(conninfo, sizeof(conninfo), "%s", qpo_pgtest_new_db(pg));
    seed_items(conninfo);
    const char *args[] = {"--db", conninfo, NULL};
    simproc p;
    simproc_start(&p, args);
    sim_data known = {0}, unknown = {0};
    add_same_items(&known);
    qpo_err err = {0};
    assert_int_equal(sim_data_finish(&unknown, &err), 0);
    int differs_from_unknown = 0;
    const char *labels[] = {"Anger", "Joy", "Optimism", "Sadness"};
    for (int i = 0; i < 8; i++) {
        char prompt[128], body[1024];
        snprintf(prompt, sizeof(prompt), "Prompt %d: which emotion does the tweet show?", i);
        char text[512];
        snprintf(text, sizeof(text), "%s\n\nTweet: %s\nEmotion: %s", prompt, TWEET, labels[i % 4]);
        json_t *req = json_pack("{s:s,s:s,s:b,s:i,s:i,s:f}", "model", "qpo-sim", "prompt", text,
                                "echo", 1, "logprobs", 1, "max_tokens", 1, "temperature", 0.0);
        char *s = json_dumps(req, JSON_COMPACT);
        snprintf(body, sizeof(body), "%s", s);
        free(s);
        json_decref(req);
        json_t *h = http_choices(p.url, "/v1/completions", body);
        json_t *k = local_choices(&known, "/v1/completions", body);
        json_t *u = local_choices(&unknown, "/v1/completions", body);
        assert_true(json_equal(h, k));
        differs_from_unknown |= !json_equal(h, u);
        json_decref(h);
        json_decref(k);
        json_decref(u);
    }
    assert_true(differs_from_unknown);
    /* The math item: the answer is the stored gold or a slip from it, as the model decides. */
    json_t *req =
        json_pack("{s:s,s:[{s:s,s:s+}],s:f}", "model", "qpo-sim", "messages", "role", "user",
                  "content", QUESTION, "\nThink step by step.", "temperature", 0.0);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_t *h = http_choices(p.url, "/v1/chat/completions", body),
           *k = local_choices(&known, "/v1/chat/completions", body);
    assert_true(json_equal(h, k));
    json_decref(h);
    json_decref(k);
    free(body);
    sim_data_free(&known);
    sim_data_free(&unknown);
    assert_int_equal(simproc_stop(&p, SIGTERM), 0);
    qpo_pgtest_stop(pg);
}

static void test_unreachable_database_is_a_runtime_error(void **state) {
    const char *args[] = {"--listen", "127.0.0.1:0", "--db",
                          "host=/nonexistent-qpo-socket-dir dbname=x connect_timeout=2", NULL};
    char err[4096];
    assert_int_equal(simproc_run(args, err, sizeof(err)), 1);
    assert_non_null(strstr(err, "qpo: error:"));
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_items_from_the_database),
        cmocka_unit_test(test_unreachable_database_is_a_runtime_error),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
