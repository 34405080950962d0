/* The client over real loopback HTTP against the evhttp test server: retries per status class,
 * the retry budget, drops, truncated and malformed bodies, timeouts, every attempt reaching
 * the attempt hook, the cache hook answering instead of the server, hundreds of requests in
 * flight at once, cancellation, and the API key never reaching a record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm.h"
#include "llm_test_server.h"
#include "pgtest.h"

#define SECRET "sk-test-SECRET-123"
#define MAX_REC 1024

typedef struct rec {
    int n;
    int attempt[MAX_REC];
    qpo_llm_status status[MAX_REC];
    long http[MAX_REC];
    bool will_retry[MAX_REC];
    int retry_in_ms[MAX_REC];
    bool cache_hit[MAX_REC];
    bool cacheable[MAX_REC];
    int leaks; /* records holding the API key: must stay 0 */
    /* the cache: hash -> body of OK live attempts */
    int ncache, lookups;
    char *cache_hash[16], *cache_body[16];
    int64_t cache_id[16];
    bool serve_garbage;
} rec;

typedef struct outcome {
    bool done;
    qpo_llm_status status;
    int attempts;
    bool cache_hit;
    int64_t call_id;
    double mean_nll;
    size_t ntokens;
    char text[256];
} outcome;

static bool has_secret(const char *s) {
    return s && (strstr(s, SECRET) || strstr(s, "SECRET"));
}

static int64_t on_attempt(const qpo_llm_attempt *a, void *arg) {
    rec *r = arg;
    if (has_secret(a->key->canonical_body) || has_secret(a->response_body) ||
        has_secret(a->error) || has_secret(a->key->target_name) || has_secret(a->key->endpoint))
        r->leaks++;
    int i = r->n < MAX_REC ? r->n : MAX_REC - 1;
    r->attempt[i] = a->attempt;
    r->status[i] = a->status;
    r->http[i] = a->http_status;
    r->will_retry[i] = a->will_retry;
    r->retry_in_ms[i] = a->retry_in_ms;
    r->cache_hit[i] = a->cache_hit;
    r->cacheable[i] = a->key->cacheable;
    r->n++;
    int64_t id = 1000 + r->n;
    if (a->status == QPO_LLM_OK && !a->cache_hit && a->key->cacheable && r->ncache < 16) {
        r->cache_hash[r->ncache] = strdup(a->key->request_hash);
        r->cache_body[r->ncache] = strndup(a->response_body, a->response_len);
        r->cache_id[r->ncache++] = id;
    }
    return id;
}

static bool cache_lookup(const qpo_llm_request_key *k, char **body, int64_t *call_id, void *arg) {
    rec *r = arg;
    r->lookups++;
    assert_true(k->cacheable);
    for (int i = 0; i < r->ncache; i++)
        if (!strcmp(r->cache_hash[i], k->request_hash)) {
            *body = strdup(r->serve_garbage ? "<html>not json" : r->cache_body[i]);
            *call_id = r->cache_id[i];
            return true;
        }
    return false;
}

static void rec_free(rec *r) {
    for (int i = 0; i < r->ncache; i++) {
        free(r->cache_hash[i]);
        free(r->cache_body[i]);
    }
}

static void on_done(const qpo_llm_result *res, void *user) {
    outcome *o = user;
    assert_false(o->done); /* exactly once */
    o->done = true;
    o->status = res->status;
    o->attempts = res->attempts;
    o->cache_hit = res->cache_hit;
    o->call_id = res->call_id;
    o->mean_nll = res->mean_nll;
    o->ntokens = res->ntokens;
    snprintf(o->text, sizeof o->text, "%s", res->text ? res->text : "");
    if (res->status != QPO_LLM_OK)
        assert_true(res->error && *res->error);
}

typedef struct fixture {
    ts_server *srv;
    struct event_base *base;
    qpo_llm_client *c;
    rec r;
} fixture;

static qpo_llm_target target_for(const fixture *f) {
    return (qpo_llm_target){
        .name = "test",
        .base_url = ts_url(f->srv),
        .model = "test-model",
        .api_key = SECRET,
        .max_inflight = 16,
        /* Against a hang only; the connect phase includes 300 TLS handshakes at once. */
        .connect_timeout_ms = (int)(qpo_test_seconds(10) * 1000),
        .timeout_ms = (int)(qpo_test_seconds(10) * 1000),
        .retry_budget = 8,
        .backoff_base_ms = 1,
        .backoff_max_ms = 4,
        .insecure_tls = true, /* the TLS server's certificate is self-signed */
    };
}

static void open_client(fixture *f, const qpo_llm_target *t, bool with_cache) {
    qpo_err err = {0};
    qpo_llm_hooks hooks = {
        .on_attempt = on_attempt, .cache_lookup = with_cache ? cache_lookup : NULL, .arg = &f->r};
    f->c = qpo_llm_client_new(f->base, t, &hooks, &err);
    if (!f->c)
        fail_msg("client: %s", err.msg);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->srv = ts_start();
    f->base = event_base_new();
    qpo_llm_target t = target_for(f);
    open_client(f, &t, true);
    *state = f;
    return 0;
}

static int setup_tls(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->srv = ts_start_tls();
    f->base = event_base_new();
    qpo_llm_target t = target_for(f);
    open_client(f, &t, true);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    qpo_llm_client_free(f->c);
    event_base_free(f->base);
    ts_stop(f->srv);
    assert_int_equal(f->r.leaks, 0);
    rec_free(&f->r);
    free(f);
    return 0;
}

static void score_and_wait(fixture *f, outcome *o) {
    qpo_err err = {0};
    assert_int_equal(qpo_llm_score(f->c, "Tweet: so sad\nEmotion:", " Sadness", on_done, o, &err),
                     0);
    assert_false(o->done); /* never called before submission returns */
    assert_int_equal(qpo_llm_client_drain(f->c), 0);
    assert_true(o->done);
}

static void test_score_roundtrip(void **state) {
    fixture *f = *state;
    outcome o = {0};
    score_and_wait(f, &o);
    assert_int_equal(o.status, QPO_LLM_OK);
    assert_int_equal(o.attempts, 1);
    /* The synthesized server splits at spaces: " Sadness" is token 3, logprob -(3+1)/8. */
    assert_int_equal(o.ntokens, 1);
    assert_float_equal(o.mean_nll, 0.5, 1e-12);
    assert_float_equal(ts_synth_logprob(3), -0.5, 1e-12);
    assert_string_equal(o.text, "\n");
    assert_int_equal(f->r.n, 1);
    assert_int_equal(f->r.attempt[0], 1);
    assert_int_equal(f->r.http[0], 200);
    assert_int_equal(o.call_id, 1001);
    char *auth = ts_last_auth(f->srv), *body = ts_last_body(f->srv);
    assert_string_equal(auth, "Bearer " SECRET);
    assert_non_null(strstr(body, "\"echo\":true"));
    assert_non_null(strstr(body, "\"logprobs\":1"));
    assert_non_null(strstr(body, "\"max_tokens\":1"));
    assert_non_null(strstr(body, "\"model\":\"test-model\""));
    assert_non_null(strstr(body, "\"prompt\":\"Tweet: so sad\\nEmotion: Sadness\""));
    free(auth);
    free(body);
}

static void test_chat_roundtrip(void **state) {
    fixture *f = *state;
    qpo_err err = {0};
    outcome o = {0};
    qpo_llm_message msgs[] = {{"system", "Answer with a number."}, {"user", "2 plus 3?"}};
    assert_int_equal(qpo_llm_chat(f->c, msgs, 2, NULL, on_done, &o, &err), 0);
    assert_int_equal(qpo_llm_client_drain(f->c), 0);
    assert_int_equal(o.status, QPO_LLM_OK);
    assert_int_equal(o.ntokens, 8);
    assert_float_equal(o.mean_nll, 0.25, 1e-12);
    assert_string_equal(o.text, "2 plus 3 is 5.\nFinal Answer: 5");
    char *body = ts_last_body(f->srv);
    assert_non_null(strstr(body, "\"logprobs\":true"));
    assert_non_null(strstr(body, "{\"content\":\"2 plus 3?\",\"role\":\"user\"}"));
    free(body);
}

static void test_retryable_statuses(void **state) {
    fixture *f = *state;
    const int codes[] = {500, 503, 429, 408, 409, 502};
    for (size_t i = 0; i < 6; i++)
        ts_push(f->srv, (ts_action){.kind = TS_STATUS, .status = codes[i]});
    outcome o = {0};
    score_and_wait(f, &o);
    assert_int_equal(o.status, QPO_LLM_OK);
    assert_int_equal(o.attempts, 7);
    assert_int_equal(f->r.n, 7);
    assert_int_equal(ts_requests(f->srv), 7);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(f->r.attempt[i], i + 1);
        assert_int_equal(f->r.will_retry[i], i < 6);
    }
    assert_int_equal(f->r.status[2], QPO_LLM_ERR_RATE_LIMITED);
    assert_int_equal(f->r.status[0], QPO_LLM_ERR_SERVER);
    assert_int_equal(f->r.http[3], 408);
    assert_int_equal(f->r.status[6], QPO_LLM_OK);
    assert_int_equal(o.call_id, 1007); /* the final attempt's record */
}

static void test_retry_after_honoured(void **state) {
    fixture *f = *state;
    ts_push(f->srv, (ts_action){.kind = TS_STATUS, .status = 429, .retry_after = "1"});
    outcome o = {0};
    score_and_wait(f, &o);
    assert_int_equal(o.status, QPO_LLM_OK);
    assert_int_equal(f->r.n, 2);
    /* The planned delay (a computed value, not a measured time) follows the server's 1 s, not
     * the test's 1..4 ms backoff. */
    assert_in_range(f->r.retry_in_ms[0], 1000, 1100);
}

static void test_client_errors_not_retried(void **state) {
    fixture *f = *state;
    const int codes[] = {400, 401, 404, 422};
    for (size_t i = 0; i < 4; i++) {
        ts_push(f->srv, (ts_action){.kind = TS_STATUS, .status = codes[i]});
        outcome o = {0};
        score_and_wait(f, &o);
        assert_int_equal(o.status, QPO_LLM_ERR_CLIENT);
        assert_int_equal(o.attempts, 1);
        assert_false(f->r.will_retry[f->r.n - 1]);
    }
    assert_int_equal(ts_requests(f->srv), 4);
    assert_int_equal(f->r.n, 4);
}

static void test_budget_exhausted(void **state) {
    fixture *f = *state;
    qpo_llm_client_free(f->c);
    qpo_llm_target t = target_for(f);
    t.retry_budget = 2;
    open_client(f, &t, false);
    ts_set_default(f->srv, (ts_action){.kind = TS_STATUS, .status = 503});
    outcome o = {0};
    score_and_wait(f, &o);
    assert_int_equal(o.status, QPO_LLM_ERR_SERVER);
    assert_int_equal(o.attempts, 3);
    assert_int_equal(f->r.n, 3);
    assert_int_equal(ts_requests(f->srv), 3);
    assert_true(f->r.will_retry[1]);
    assert_false(f->r.will_retry[2]);
    assert_int_equal(o.call_id, 1003);
}

static void test_bad_replies_retried(void **state) {
    fixture *f = *state;
    /* The drop comes first, on a fresh connection, so libcurl cannot retry it on its own. */
    ts_push(f->srv, (ts_action){.kind = TS_DROP});
    ts_push(f->srv, (ts_action){.kind = TS_TRUNCATE});
    ts_push(f->srv, (ts_action){.kind = TS_BODY, .body = "<html><h1>502</h1></html>"});
    ts_push(f->srv, (ts_action){.kind = TS_BODY, .body = "{\"choices\":[]}"});
    ts_push(f->srv, (ts_action){.kind = TS_BODY, .body = "{\"choices\":[{\"logprobs\":7}]}"});
    outcome o = {0};
    score_and_wait(f, &o);
    assert_int_equal(o.status, QPO_LLM_OK);
    assert_int_equal(o.attempts, 6);
    assert_int_equal(f->r.n, ts_requests(f->srv)); /* every attempt reached the hook */
    assert_int_equal(f->r.status[0], QPO_LLM_ERR_DROPPED);
    assert_int_equal(f->r.http[0], 0);
    assert_int_equal(f->r.status[1], QPO_LLM_ERR_MALFORMED);
    assert_int_equal(f->r.status[2], QPO_LLM_ERR_MALFORMED);
    assert_int_equal(f->r.status[3], QPO_LLM_ERR_SHAPE);
    assert_int_equal(f->r.status[4], QPO_LLM_ERR_SHAPE);
}

static void test_missing_logprobs_final(void **state) {
    fixture *f = *state;
    ts_push(f->srv, (ts_action){.kind = TS_BODY,
                                .body = "{\"choices\":[{\"text\":\"x\",\"logprobs\":null}]}"});
    outcome o = {0};
    score_and_wait(f, &o);
    assert_int_equal(o.status, QPO_LLM_ERR_NO_LOGPROBS);
    assert_int_equal(o.attempts, 1);
}

static void test_timeout(void **state) {
    fixture *f = *state;
    qpo_llm_client_free(f->c);
    qpo_llm_target t = target_for(f);
    t.timeout_ms = 300;
    t.retry_budget = -1;
    open_client(f, &t, false);
    ts_push(f->srv, (ts_action){.kind = TS_DELAY, .delay_ms = 5000});
    outcome o = {0};
    score_and_wait(f, &o);
    assert_int_equal(o.status, QPO_LLM_ERR_TIMEOUT);
    assert_int_equal(o.attempts, 1);
    assert_int_equal(f->r.n, 1);
    assert_false(f->r.will_retry[0]);
}

static void test_connect_refused(void **state) {
    fixture *f = *state;
    qpo_llm_client_free(f->c);
    qpo_llm_target t = target_for(f);
    t.base_url = "http://127.0.0.1:1/v1/";
    t.retry_budget = 1;
    open_client(f, &t, false);
    outcome o = {0};
    score_and_wait(f, &o);
    assert_int_equal(o.status, QPO_LLM_ERR_CONNECT);
    assert_int_equal(o.attempts, 2);
    assert_int_equal(f->r.n, 2);
    assert_int_equal(f->r.http[1], 0);
}

static void test_cache_short_circuits(void **state) {
    fixture *f = *state;
    outcome live = {0}, hit = {0}, other = {0};
    score_and_wait(f, &live);
    assert_int_equal(ts_requests(f->srv), 1);
    score_and_wait(f, &hit);
    assert_int_equal(ts_requests(f->srv), 1); /* not sent */
    assert_true(hit.cache_hit);
    assert_int_equal(hit.attempts, 0);
    assert_int_equal(hit.call_id, live.call_id);
    assert_float_equal(hit.mean_nll, live.mean_nll, 0);
    assert_true(f->r.cache_hit[1]);
    assert_int_equal(f->r.attempt[1], 0);
    qpo_llm_stats st;
    qpo_llm_client_stats(f->c, &st);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cache_lookups, 2);
    /* A different continuation is a different request. */
    qpo_err err = {0};
    assert_int_equal(qpo_llm_score(f->c, "Tweet: so sad\nEmotion:", " Joy", on_done, &other, &err),
                     0);
    assert_int_equal(qpo_llm_client_drain(f->c), 0);
    assert_false(other.cache_hit);
    assert_int_equal(ts_requests(f->srv), 2);
    /* A cached body that does not parse is ignored: the request goes out. */
    f->r.serve_garbage = true;
    outcome again = {0};
    score_and_wait(f, &again);
    assert_false(again.cache_hit);
    assert_int_equal(again.status, QPO_LLM_OK);
    assert_int_equal(ts_requests(f->srv), 3);
}

static void test_cache_only_at_temperature_zero(void **state) {
    fixture *f = *state;
    qpo_err err = {0};
    qpo_llm_message msgs[] = {{"user", "2 plus 3?"}};
    qpo_llm_chat_opts warm = {.temperature = 0.7, .max_tokens = 32};
    outcome a = {0}, b = {0}, c = {0}, d = {0};
    assert_int_equal(qpo_llm_chat(f->c, msgs, 1, &warm, on_done, &a, &err), 0);
    assert_int_equal(qpo_llm_client_drain(f->c), 0);
    assert_int_equal(qpo_llm_chat(f->c, msgs, 1, &warm, on_done, &b, &err), 0);
    assert_int_equal(qpo_llm_client_drain(f->c), 0);
    assert_int_equal(f->r.lookups, 0);
    assert_false(f->r.cacheable[0]);
    assert_int_equal(ts_requests(f->srv), 2);
    assert_int_equal(qpo_llm_chat(f->c, msgs, 1, NULL, on_done, &c, &err), 0);
    assert_int_equal(qpo_llm_client_drain(f->c), 0);
    assert_int_equal(qpo_llm_chat(f->c, msgs, 1, NULL, on_done, &d, &err), 0);
    assert_int_equal(qpo_llm_client_drain(f->c), 0);
    assert_int_equal(ts_requests(f->srv), 3);
    assert_true(d.cache_hit);
    assert_string_equal(d.text, c.text);
}

#define MANY 300

static void test_hundreds_in_flight(void **state) {
    fixture *f = *state;
    qpo_llm_client_free(f->c);
    qpo_llm_target t = target_for(f);
    t.max_inflight = MANY;
    /* Every request waits behind the barrier until 256 connections are up: the first one's
     * guard must cover them all, 256 TLS handshakes in this one process under valgrind
     * included (an attempt that times out is sent again, and counted twice below). */
    t.connect_timeout_ms = t.timeout_ms = (int)(qpo_test_seconds(60) * 1000);
    open_client(f, &t, false);
    /* The server answers nobody until 256 requests wait at once. */
    ts_set_barrier(f->srv, 256);
    outcome *o = calloc(MANY, sizeof *o);
    qpo_err err = {0};
    for (int i = 0; i < MANY; i++) {
        char ctx[64];
        snprintf(ctx, sizeof ctx, "Tweet: number %d\nEmotion:", i);
        assert_int_equal(qpo_llm_score(f->c, ctx, " Joy", on_done, &o[i], &err), 0);
    }
    assert_int_equal(qpo_llm_client_drain(f->c), 0);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(o[i].status, QPO_LLM_OK);
    assert_true(ts_max_waiting(f->srv) >= 256);
    assert_int_equal(ts_requests(f->srv), MANY);
    qpo_llm_stats st;
    qpo_llm_client_stats(f->c, &st);
    assert_int_equal(st.ok, MANY);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.queued, 0);
    free(o);
}

static void test_rate_limited_client(void **state) {
    fixture *f = *state;
    qpo_llm_client_free(f->c);
    qpo_llm_target t = target_for(f);
    t.requests_per_s = 40;
    t.tokens_per_min = 60000;
    open_client(f, &t, false);
    outcome o[8] = {{0}};
    qpo_err err = {0};
    for (int i = 0; i < 8; i++)
        assert_int_equal(qpo_llm_score(f->c, "Tweet: x\nEmotion:", " Joy", on_done, &o[i], &err),
                         0);
    assert_int_equal(qpo_llm_client_drain(f->c), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(o[i].status, QPO_LLM_OK);
}

static void test_free_cancels(void **state) {
    fixture *f = *state;
    ts_set_default(f->srv, (ts_action){.kind = TS_DELAY, .delay_ms = 5000});
    outcome wire = {0}, queued = {0};
    qpo_err err = {0};
    assert_int_equal(qpo_llm_score(f->c, "a", " b", on_done, &wire, &err), 0);
    while (ts_requests(f->srv) < 1)
        event_base_loop(f->base, EVLOOP_NONBLOCK), usleep(1000);
    assert_int_equal(qpo_llm_score(f->c, "c", " d", on_done, &queued, &err), 0);
    qpo_llm_client_free(f->c);
    f->c = NULL;
    assert_true(wire.done);
    assert_true(queued.done);
    assert_int_equal(wire.status, QPO_LLM_ERR_CANCELLED);
    assert_int_equal(queued.status, QPO_LLM_ERR_CANCELLED);
    /* The attempt on the wire ended, so it has its record; the queued one never went out. */
    assert_int_equal(f->r.n, 1);
    assert_int_equal(f->r.status[0], QPO_LLM_ERR_CANCELLED);
}

static void test_tls_roundtrip_and_verification(void **state) {
    fixture *f = *state;
    assert_non_null(strstr(ts_url(f->srv), "https://"));
    outcome o = {0};
    score_and_wait(f, &o);
    assert_int_equal(o.status, QPO_LLM_OK);
    assert_float_equal(o.mean_nll, 0.5, 1e-12);
    /* With verification on, a self-signed certificate is refused before any request. */
    qpo_llm_client_free(f->c);
    qpo_llm_target t = target_for(f);
    t.insecure_tls = false;
    t.retry_budget = -1;
    open_client(f, &t, false);
    outcome refused = {0};
    score_and_wait(f, &refused);
    assert_int_equal(refused.status, QPO_LLM_ERR_CONNECT);
    assert_int_equal(ts_requests(f->srv), 1);
    /* Trusting the server's certificate as a CA (ca_file) verifies it: host and chain. */
    char ca[] = "/tmp/qpo-ca-XXXXXX";
    int fd = mkstemp(ca);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ts_write_cert(f->srv, ca), 0);
    qpo_llm_client_free(f->c);
    t.ca_file = ca;
    open_client(f, &t, false);
    outcome trusted = {0};
    score_and_wait(f, &trusted);
    assert_int_equal(trusted.status, QPO_LLM_OK);
    assert_int_equal(ts_requests(f->srv), 2);
    unlink(ca);
}

/* A body that never ends used to be kept in memory until the worker died: the attempt stops
 * at max_response_bytes (8 MiB unless the target says otherwise), is not retried, and its
 * record says why. */
static void test_endless_body_capped(void **state) {
    fixture *f = *state;
    ts_endless *e = ts_endless_start();
    qpo_llm_client_free(f->c);
    qpo_llm_target t = target_for(f);
    t.base_url = ts_endless_url(e);
    open_client(f, &t, false);
    outcome o = {0};
    score_and_wait(f, &o); /* the default cap */
    assert_int_equal(o.status, QPO_LLM_ERR_TOO_LARGE);
    assert_int_equal(o.attempts, 1);
    assert_int_equal(f->r.n, 1);
    assert_int_equal(f->r.status[0], QPO_LLM_ERR_TOO_LARGE);
    qpo_llm_client_free(f->c);
    t.max_response_bytes = 100000;
    open_client(f, &t, false);
    outcome small = {0};
    score_and_wait(f, &small);
    assert_int_equal(small.status, QPO_LLM_ERR_TOO_LARGE);
    assert_int_equal(small.attempts, 1);
    assert_int_equal(ts_endless_requests(e), 2);
    assert_string_equal(qpo_llm_status_name(QPO_LLM_ERR_TOO_LARGE), "too_large");
    assert_false(qpo_llm_status_retryable(QPO_LLM_ERR_TOO_LARGE));
    qpo_llm_client_free(f->c);
    f->c = NULL;
    ts_endless_stop(e);
}

static void test_bad_arguments(void **state) {
    fixture *f = *state;
    qpo_err err = {0};
    outcome o = {0};
    assert_int_equal(qpo_llm_score(f->c, "ctx", "", on_done, &o, &err), -1);
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    assert_int_equal(qpo_llm_chat(f->c, NULL, 0, NULL, on_done, &o, &err), -1);
    assert_false(o.done);
    qpo_llm_target t = {.base_url = "http://x"};
    assert_null(qpo_llm_client_new(f->base, &t, NULL, &err));
    assert_int_equal(err.code, QPO_EXIT_USAGE);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_score_roundtrip),
        T(test_chat_roundtrip),
        T(test_retryable_statuses),
        T(test_retry_after_honoured),
        T(test_client_errors_not_retried),
        T(test_budget_exhausted),
        T(test_bad_replies_retried),
        T(test_missing_logprobs_final),
        T(test_timeout),
        T(test_connect_refused),
        T(test_cache_short_circuits),
        T(test_cache_only_at_temperature_zero),
        T(test_hundreds_in_flight),
        T(test_rate_limited_client),
        T(test_free_cancels),
        T(test_bad_arguments),
        T(test_endless_body_capped),
        /* Over TLS to an HTTP/1.1-only server: the client must not wait to multiplex. */
        cmocka_unit_test_setup_teardown(test_tls_roundtrip_and_verification, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_hundreds_in_flight, setup_tls, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
