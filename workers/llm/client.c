/* The client proper: a libcurl multi handle in socket-action mode on the caller's libevent
 * loop. A request moves incoming -> (cache lookup) -> ready -> (slot, rate tokens) -> on the
 * wire -> attempt ended -> backoff -> ready ... -> done. Requests never block the loop:
 * submission only queues and wakes the dispatcher, so done is never called re-entrantly. */
#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "llm.h"
#include "llm_parse.h"

typedef struct req req;

struct req {
    qpo_llm_client *c;
    uint64_t id;
    qpo_llm_endpoint ep;
    char *body;   /* canonical JSON, the exact bytes sent */
    char *prompt; /* score: context + continuation, to check the echoed offsets against */
    size_t body_len;
    char hash[65];
    bool cacheable;
    size_t span_start, span_end; /* score: the continuation, in code points */
    double est_tokens;
    qpo_llm_done_fn done;
    void *user;
    int attempts;
    CURL *easy; /* non-NULL while on the wire */
    char *resp;
    size_t resp_len, resp_cap;
    bool too_large; /* the body passed max_response_bytes: the transfer was stopped */
    char errbuf[CURL_ERROR_SIZE];
    double t_start;
    struct event *backoff;
    req *next;                /* in a FIFO */
    req *all_prev, *all_next; /* every live request, for cancellation */
};

typedef struct fifo {
    req *head, *tail;
    size_t n;
} fifo;

struct qpo_llm_client {
    struct event_base *base;
    CURLM *multi;
    struct event *timer; /* libcurl's timeout */
    struct event *kick;  /* runs the dispatcher from the loop */
    struct event *rate_wait;
    char *name, *model, *key, *url[2], *ca_file;
    qpo_llm_target t;
    qpo_llm_hooks hooks;
    struct curl_slist *headers;
    fifo incoming, ready;
    req *all;
    CURL **pool;
    size_t npool, inflight, backoffs;
    double rps_tokens, tpm_tokens, last_refill;
    uint64_t next_id, rng;
    bool closing; /* being freed: no new requests */
    bool tls;
    qpo_llm_stats st;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double rand01(qpo_llm_client *c) {
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return (double)(c->rng >> 11) / 9007199254740992.0;
}

static void fifo_push(fifo *q, req *r) {
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->n++;
}

static void fifo_push_front(fifo *q, req *r) {
    r->next = q->head;
    q->head = r;
    if (!q->tail)
        q->tail = r;
    q->n++;
}

static req *fifo_pop(fifo *q) {
    req *r = q->head;
    if (!r)
        return NULL;
    q->head = r->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    r->next = NULL;
    return r;
}

static void kick(qpo_llm_client *c) {
    event_active(c->kick, EV_TIMEOUT, 0);
}

/* ---- rate limits: token buckets refilled lazily from the monotonic clock ---- */

static void refill(qpo_llm_client *c) {
    double t = now_ms(), dt = (t - c->last_refill) / 1000.0;
    c->last_refill = t;
    if (c->t.requests_per_s > 0) {
        double cap = c->t.requests_per_s < 1 ? 1 : c->t.requests_per_s;
        c->rps_tokens = fmin(cap, c->rps_tokens + dt * c->t.requests_per_s);
    }
    if (c->t.tokens_per_min > 0)
        c->tpm_tokens =
            fmin(c->t.tokens_per_min / 6, c->tpm_tokens + dt * c->t.tokens_per_min / 60);
}

/* 0 when r may go now (tokens taken); else the ms to wait. A request bigger than the bucket
 * goes when the bucket is full, leaving it in debt. */
static double rate_wait_ms(qpo_llm_client *c, const req *r) {
    refill(c);
    double wait = 0;
    if (c->t.requests_per_s > 0 && c->rps_tokens < 1)
        wait = (1 - c->rps_tokens) / c->t.requests_per_s * 1000;
    if (c->t.tokens_per_min > 0) {
        double need = fmin(r->est_tokens, c->t.tokens_per_min / 6);
        if (c->tpm_tokens < need)
            wait = fmax(wait, (need - c->tpm_tokens) / (c->t.tokens_per_min / 60) * 1000);
    }
    if (wait > 0)
        return wait;
    c->rps_tokens -= 1;
    c->tpm_tokens -= r->est_tokens;
    return 0;
}

/* ---- libcurl <-> libevent ---- */

static void check_done(qpo_llm_client *c);

static void on_socket_event(evutil_socket_t fd, short what, void *arg) {
    qpo_llm_client *c = arg;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    check_done(c);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    qpo_llm_client *c = userp;
    struct event *ev = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (ev) {
            event_free(ev);
            curl_multi_assign(c->multi, s, NULL);
        }
        return 0;
    }
    short kind =
        EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (ev) {
        event_del(ev);
        event_assign(ev, c->base, s, kind, on_socket_event, c);
    } else {
        ev = event_new(c->base, s, kind, on_socket_event, c);
        if (!ev)
            return -1;
        curl_multi_assign(c->multi, s, ev);
    }
    return event_add(ev, NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    qpo_llm_client *c = arg;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    qpo_llm_client *c = userp;
    if (timeout_ms < 0)
        return event_del(c->timer);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return evtimer_add(c->timer, &tv);
}

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
    req *r = arg;
    size_t len = size * n;
    if (r->resp_len + len > (size_t)r->c->t.max_response_bytes) {
        r->too_large = true;
        return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (r->resp_len + len + 1 > r->resp_cap) {
        size_t cap = r->resp_cap ? r->resp_cap : 4096;
        while (cap < r->resp_len + len + 1)
            cap *= 2;
        char *p = realloc(r->resp, cap);
        if (!p)
            return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
        r->resp = p;
        r->resp_cap = cap;
    }
    memcpy(r->resp + r->resp_len, data, len);
    r->resp_len += len;
    r->resp[r->resp_len] = 0;
    return len;
}

/* ---- one attempt ---- */

static CURL *take_easy(qpo_llm_client *c) {
    return c->npool ? c->pool[--c->npool] : curl_easy_init();
}

static void give_easy(qpo_llm_client *c, CURL *e) {
    /* A pooled handle must not point into a request that is about to be freed. */
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
    if (c->npool < (size_t)c->t.max_inflight)
        c->pool[c->npool++] = e;
    else
        curl_easy_cleanup(e);
}

static void finish_attempt(req *r, qpo_llm_status s, long http, const char *error,
                           long retry_after_ms);

static void start_attempt(qpo_llm_client *c, req *r) {
    CURL *e = take_easy(c);
    r->attempts++;
    r->resp_len = 0;
    r->errbuf[0] = 0;
    r->t_start = now_ms();
    if (!e) {
        finish_attempt(r, QPO_LLM_ERR_INTERNAL, 0, "curl_easy_init failed", -1);
        return;
    }
    curl_easy_setopt(e, CURLOPT_URL, c->url[r->ep]);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* Over TLS, wait for the first connection's ALPN so HTTP/2 multiplexes on it. Over plain
     * HTTP (never h2c here) waiting would hold every transfer behind the first response. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, c->tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->t.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->t.timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     c->t.no_http2 ? CURL_HTTP_VERSION_1_1 : CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->t.insecure_tls ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->t.insecure_tls ? 0L : 2L);
    if (c->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    r->easy = e;
    c->inflight++;
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        r->easy = NULL;
        c->inflight--;
        give_easy(c, e);
        finish_attempt(r, QPO_LLM_ERR_INTERNAL, 0, "curl_multi_add_handle failed", -1);
    }
}

static qpo_llm_status classify_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return QPO_LLM_ERR_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return QPO_LLM_ERR_CONNECT;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_WRITE_ERROR:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return QPO_LLM_ERR_INTERNAL;
    default: /* GOT_NOTHING, RECV_ERROR, SEND_ERROR, PARTIAL_FILE, HTTP2 stream resets... */
        return QPO_LLM_ERR_DROPPED;
    }
}

static long header_retry_after(CURL *e) {
    struct curl_header *h;
    if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return -1;
    return qpo_llm_parse_retry_after(h->value, time(NULL));
}

/* An ended transfer: its class from libcurl's code and the HTTP status. */
static void transfer_ended(qpo_llm_client *c, CURL *e, CURLcode rc) {
    req *r;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
    long http = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
    long retry_after = rc == CURLE_OK ? header_retry_after(e) : -1;
    curl_multi_remove_handle(c->multi, e);
    give_easy(c, e);
    r->easy = NULL;
    c->inflight--;
    char msg[CURL_ERROR_SIZE + 64];
    if (r->too_large) {
        snprintf(msg, sizeof msg,
                 "response body longer than %ld bytes (the target's max_response_bytes); the "
                 "first %zu bytes are kept",
                 c->t.max_response_bytes, r->resp_len);
        r->too_large = false;
        finish_attempt(r, QPO_LLM_ERR_TOO_LARGE, http, msg, -1);
        return;
    }
    if (rc != CURLE_OK) {
        snprintf(msg, sizeof msg, "%s: %s", curl_easy_strerror(rc), r->errbuf);
        finish_attempt(r, classify_curl(rc), http, msg, -1);
        return;
    }
    qpo_llm_status s = qpo_llm_classify_http(http);
    if (s != QPO_LLM_OK) {
        snprintf(msg, sizeof msg, "HTTP %ld", http);
        finish_attempt(r, s, http, msg, retry_after);
        return;
    }
    finish_attempt(r, QPO_LLM_OK, http, "", -1);
}

static void check_done(qpo_llm_client *c) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            transfer_ended(c, m->easy_handle, m->data.result);
    kick(c);
}

/* ---- ending attempts and requests ---- */

static void req_free(req *r) {
    qpo_llm_client *c = r->c;
    if (r->all_prev)
        r->all_prev->all_next = r->all_next;
    else
        c->all = r->all_next;
    if (r->all_next)
        r->all_next->all_prev = r->all_prev;
    if (r->backoff)
        event_free(r->backoff);
    free(r->body);
    free(r->prompt);
    free(r->resp);
    free(r);
}

static qpo_llm_status parse_body(const req *r, const char *body, size_t len, qpo_llm_parsed *p) {
    if (r->ep == QPO_LLM_CHAT)
        return qpo_llm_parse_chat(body, len, p);
    return qpo_llm_parse_completion(body, len, r->prompt, r->span_start, r->span_end, p);
}

static void complete(req *r, const qpo_llm_parsed *p, qpo_llm_status s, const char *error,
                     long http, bool cache_hit, int64_t call_id) {
    qpo_llm_client *c = r->c;
    qpo_llm_result res = {
        .status = s,
        .error = error,
        .http_status = http,
        .attempts = r->attempts,
        .cache_hit = cache_hit,
        .call_id = call_id,
        .request_hash = r->hash,
        .ntokens = s == QPO_LLM_OK ? p->ntokens : 0,
        .tokens = s == QPO_LLM_OK ? (const char *const *)p->tokens : NULL,
        .logprobs = s == QPO_LLM_OK ? p->logprobs : NULL,
        .mean_nll = s == QPO_LLM_OK ? p->mean_nll : NAN,
        .text = s == QPO_LLM_OK ? p->text : NULL,
        .prompt_tokens = p ? p->prompt_tokens : -1,
        .completion_tokens = p ? p->completion_tokens : -1,
        .user = r->user,
    };
    c->st.completed++;
    if (s == QPO_LLM_OK)
        c->st.ok++;
    if (r->done)
        r->done(&res, r->user);
    req_free(r);
}

static void key_of(const req *r, qpo_llm_request_key *k) {
    *k = (qpo_llm_request_key){
        .target_name = r->c->name,
        .endpoint = qpo_llm_endpoint_path(r->ep),
        .model = r->c->model,
        .canonical_body = r->body,
        .request_hash = r->hash,
        .cacheable = r->cacheable,
    };
}

static void on_backoff(evutil_socket_t fd, short what, void *arg) {
    req *r = arg;
    r->c->backoffs--;
    fifo_push_front(&r->c->ready, r);
    kick(r->c);
}

static qpo_metric calls =
    QPO_COUNTER("qpo_llm_calls_total", "HTTP attempts to the target LLM, by how each ended.",
                "target", "status");
static const double latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                         1,     2.5,  5,     10,   30,  60,   120};
static qpo_metric latency = QPO_HISTOGRAM(
    "qpo_llm_call_duration_seconds", "Time from an attempt's start to its end, target LLM calls.",
    "target", NULL, latency_buckets);
static qpo_metric cache_hits = QPO_COUNTER(
    "qpo_llm_cache_hits_total",
    "Target LLM requests answered from the response cache, no HTTP call.", "target", NULL);
static qpo_metric tokens =
    QPO_COUNTER("qpo_llm_tokens_total", "Tokens the target LLM reported in usage, live calls.",
                "target", "type");

/* Every attempt and cache hit passes here once: the metrics, then the caller's hook. */
static int64_t record(req *r, const qpo_llm_attempt *a) {
    qpo_llm_client *c = r->c;
    if (a->cache_hit) {
        qpo_metric_add(&cache_hits, 1, c->name, NULL);
    } else {
        qpo_metric_add(&calls, 1, c->name, qpo_llm_status_name(a->status));
        qpo_metric_observe(&latency, a->latency_ms / 1000.0, c->name, NULL);
        if (a->prompt_tokens > 0)
            qpo_metric_add(&tokens, a->prompt_tokens, c->name, "prompt");
        if (a->completion_tokens > 0)
            qpo_metric_add(&tokens, a->completion_tokens, c->name, "completion");
    }
    return c->hooks.on_attempt ? c->hooks.on_attempt(a, c->hooks.arg) : 0;
}

static void finish_attempt(req *r, qpo_llm_status s, long http, const char *error,
                           long retry_after_ms) {
    qpo_llm_client *c = r->c;
    qpo_llm_parsed p;
    memset(&p, 0, sizeof p);
    p.prompt_tokens = p.completion_tokens = -1;
    if (s == QPO_LLM_OK) {
        s = parse_body(r, r->resp, r->resp_len, &p);
        error = p.error;
    }
    /* The rate bucket charged an estimate; the server's count replaces it. */
    if (p.prompt_tokens >= 0 && p.completion_tokens >= 0)
        c->tpm_tokens += r->est_tokens - (p.prompt_tokens + p.completion_tokens);
    int budget = c->t.retry_budget < 0 ? 0 : c->t.retry_budget;
    bool retry = qpo_llm_status_retryable(s) && r->attempts <= budget;
    long delay = retry ? qpo_llm_backoff_ms(r->attempts, c->t.backoff_base_ms, c->t.backoff_max_ms,
                                            retry_after_ms, rand01(c))
                       : 0;
    qpo_llm_request_key k;
    key_of(r, &k);
    qpo_llm_attempt a = {
        .key = &k,
        .request_id = r->id,
        .attempt = r->attempts,
        .status = s,
        .error = error ? error : "",
        .http_status = http,
        .response_body = r->resp_len ? r->resp : NULL,
        .response_len = r->resp_len,
        .latency_ms = now_ms() - r->t_start,
        .prompt_tokens = p.prompt_tokens,
        .completion_tokens = p.completion_tokens,
        .will_retry = retry,
        .retry_in_ms = (int)delay,
        .user = r->user,
    };
    c->st.attempts++;
    if (r->attempts > 1)
        c->st.retries++;
    int64_t id = record(r, &a);
    if (retry) {
        struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
        if (!r->backoff)
            r->backoff = evtimer_new(c->base, on_backoff, r);
        if (r->backoff && evtimer_add(r->backoff, &tv) == 0) {
            c->backoffs++;
            qpo_llm_parsed_free(&p);
            return;
        }
        error = "could not schedule the retry";
        s = QPO_LLM_ERR_INTERNAL;
    }
    char errcopy[256];
    snprintf(errcopy, sizeof errcopy, "%s", error ? error : "");
    complete(r, &p, s, errcopy, http, false, id);
    qpo_llm_parsed_free(&p);
}

/* ---- the dispatcher ---- */

static bool try_cache(qpo_llm_client *c, req *r) {
    if (!r->cacheable || !c->hooks.cache_lookup)
        return false;
    qpo_llm_request_key k;
    key_of(r, &k);
    char *body = NULL;
    int64_t call_id = 0;
    c->st.cache_lookups++;
    if (!c->hooks.cache_lookup(&k, &body, &call_id, c->hooks.arg) || !body) {
        free(body);
        return false;
    }
    qpo_llm_parsed p;
    if (parse_body(r, body, strlen(body), &p) != QPO_LLM_OK) {
        qpo_llm_parsed_free(&p);
        free(body);
        return false;
    }
    c->st.cache_hits++;
    qpo_llm_attempt a = {
        .key = &k,
        .request_id = r->id,
        .cache_hit = true,
        .cached_call_id = call_id,
        .status = QPO_LLM_OK,
        .error = "",
        .http_status = 200,
        .response_body = body,
        .response_len = strlen(body),
        .prompt_tokens = p.prompt_tokens,
        .completion_tokens = p.completion_tokens,
        .user = r->user,
    };
    record(r, &a);
    complete(r, &p, QPO_LLM_OK, "", 200, true, call_id);
    qpo_llm_parsed_free(&p);
    free(body);
    return true;
}

static void on_rate_wait(evutil_socket_t fd, short what, void *arg) {
    kick(arg);
}

static void dispatch(evutil_socket_t fd, short what, void *arg) {
    qpo_llm_client *c = arg;
    req *r;
    while ((r = fifo_pop(&c->incoming)))
        if (!try_cache(c, r))
            fifo_push(&c->ready, r);
    while (c->inflight < (size_t)c->t.max_inflight && (r = fifo_pop(&c->ready))) {
        double wait = rate_wait_ms(c, r);
        if (wait > 0) {
            fifo_push_front(&c->ready, r);
            if (!evtimer_pending(c->rate_wait, NULL)) {
                long w = (long)ceil(wait);
                struct timeval tv = {w / 1000, (w % 1000) * 1000};
                evtimer_add(c->rate_wait, &tv);
            }
            break;
        }
        start_attempt(c, r);
    }
}

/* ---- the public API ---- */

static char *join_url(const char *base, const char *path) {
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    /* A base ending in /v1 (as OpenAI documents it) must not become /v1/v1. */
    if (n >= 3 && !strncmp(base + n - 3, "/v1", 3))
        n -= 3;
    char *u = malloc(n + strlen(path) + 1);
    if (u) {
        memcpy(u, base, n);
        strcpy(u + n, path);
    }
    return u;
}

static int setup_headers(qpo_llm_client *c) {
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip for larger bodies. */
    c->headers = c->headers ? curl_slist_append(c->headers, "Expect:") : NULL;
    if (c->headers && c->key) {
        size_t n = strlen(c->key) + 32;
        char *h = malloc(n);
        if (!h)
            return -1;
        snprintf(h, n, "Authorization: Bearer %s", c->key);
        struct curl_slist *l = curl_slist_append(c->headers, h);
        qpo_llm_free_secret(h);
        if (!l)
            return -1;
        c->headers = l;
    }
    return c->headers ? 0 : -1;
}

static void apply_defaults(qpo_llm_target *t) {
    if (t->max_inflight <= 0)
        t->max_inflight = 64;
    if (t->connect_timeout_ms <= 0)
        t->connect_timeout_ms = 10000;
    if (t->timeout_ms <= 0)
        t->timeout_ms = 120000;
    if (t->retry_budget == 0)
        t->retry_budget = 4;
    if (t->backoff_base_ms <= 0)
        t->backoff_base_ms = 200;
    if (t->backoff_max_ms <= 0)
        t->backoff_max_ms = 30000;
    if (t->max_response_bytes <= 0)
        t->max_response_bytes = QPO_LLM_MAX_RESPONSE_BYTES;
}

static int global_init(qpo_err *err) {
    static int done;
    if (!done && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "curl_global_init failed");
    done = 1;
    return 0;
}

qpo_llm_client *qpo_llm_client_new(struct event_base *base, const qpo_llm_target *target,
                                   const qpo_llm_hooks *hooks, qpo_err *err) {
    if (!base || !target || !target->base_url || !*target->base_url || !target->model ||
        !*target->model) {
        qpo_err_set(err, QPO_EXIT_USAGE, "a target needs a base URL and a model");
        return NULL;
    }
    if (global_init(err) < 0)
        return NULL;
    qpo_llm_client *c = calloc(1, sizeof *c);
    if (!c) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
        return NULL;
    }
    c->base = base;
    c->t = *target;
    apply_defaults(&c->t);
    if (hooks)
        c->hooks = *hooks;
    c->name = strdup(target->name ? target->name : target->base_url);
    c->model = strdup(target->model);
    c->key = target->api_key && *target->api_key ? strdup(target->api_key) : NULL;
    c->url[QPO_LLM_COMPLETIONS] = join_url(target->base_url, "/v1/completions");
    c->url[QPO_LLM_CHAT] = join_url(target->base_url, "/v1/chat/completions");
    c->tls = !strncasecmp(target->base_url, "https:", 6);
    c->ca_file = target->ca_file ? strdup(target->ca_file) : NULL;
    c->t.ca_file = c->ca_file;
    c->t.name = c->name;
    c->t.model = c->model;
    c->t.api_key = NULL;
    c->t.base_url = NULL;
    c->pool = calloc((size_t)c->t.max_inflight, sizeof *c->pool);
    c->multi = curl_multi_init();
    c->timer = evtimer_new(base, on_timer, c);
    c->kick = event_new(base, -1, 0, dispatch, c);
    c->rate_wait = evtimer_new(base, on_rate_wait, c);
    c->rng = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)c;
    if (!c->rng)
        c->rng = 88172645463325252ull;
    c->last_refill = now_ms();
    c->rps_tokens = c->t.requests_per_s < 1 ? 1 : c->t.requests_per_s;
    c->tpm_tokens = c->t.tokens_per_min / 6;
    if (!c->name || !c->model || (target->api_key && *target->api_key && !c->key) ||
        (target->ca_file && !c->ca_file) || !c->url[0] || !c->url[1] || !c->pool || !c->multi ||
        !c->timer || !c->kick || !c->rate_wait || setup_headers(c) < 0) {
        qpo_llm_client_free(c);
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot set up the LLM client (out of memory?)");
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    /* Keep a warm connection per slot so keep-alive survives between batches. */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->t.max_inflight + 8);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    return c;
}

static void cancel_all(qpo_llm_client *c) {
    req *r;
    c->closing = true;
    while ((r = c->all)) {
        if (r->easy) {
            curl_multi_remove_handle(c->multi, r->easy);
            give_easy(c, r->easy);
            r->easy = NULL;
            c->inflight--;
            /* The attempt ended here: record it so the audit trail has every attempt. */
            finish_attempt(r, QPO_LLM_ERR_CANCELLED, 0, "cancelled with the request in flight", -1);
            continue;
        }
        if (r->backoff && evtimer_pending(r->backoff, NULL))
            c->backoffs--;
        complete(r, NULL, QPO_LLM_ERR_CANCELLED, "cancelled before the request finished", 0, false,
                 0);
    }
    c->incoming = (fifo){0};
    c->ready = (fifo){0};
}

void qpo_llm_client_cancel_all(qpo_llm_client *c) {
    if (!c)
        return;
    cancel_all(c);
    c->closing = false;
}

void qpo_llm_client_free(qpo_llm_client *c) {
    if (!c)
        return;
    cancel_all(c);
    while (c->npool)
        curl_easy_cleanup(c->pool[--c->npool]);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    if (c->timer)
        event_free(c->timer);
    if (c->kick)
        event_free(c->kick);
    if (c->rate_wait)
        event_free(c->rate_wait);
    curl_slist_free_all(c->headers);
    free(c->pool);
    free(c->name);
    free(c->model);
    qpo_llm_free_secret(c->key);
    free(c->url[0]);
    free(c->url[1]);
    free(c->ca_file);
    free(c);
}

static void hash_hex(const char *endpoint, const char *body, size_t len, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
        EVP_DigestUpdate(ctx, endpoint, strlen(endpoint)) && EVP_DigestUpdate(ctx, "\n", 1) &&
        EVP_DigestUpdate(ctx, body, len) && EVP_DigestFinal_ex(ctx, md, &n)) {
        for (unsigned i = 0; i < n && i < 32; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
    } else {
        out[0] = 0;
    }
    EVP_MD_CTX_free(ctx);
}

/* Takes ownership of body (a JSON object, model added here) and queues the request. */
static int submit(qpo_llm_client *c, qpo_llm_endpoint ep, json_t *body, bool cacheable,
                  double max_tokens, qpo_llm_done_fn done, void *user, req **out, qpo_err *err) {
    if (c->closing) {
        json_decref(body);
        return qpo_err_set(err, QPO_EXIT_USAGE, "the LLM client is being freed");
    }
    req *r = calloc(1, sizeof *r);
    if (r && body && json_object_set_new(body, "model", json_string(c->model)) == 0)
        r->body = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(body);
    if (!r || !r->body) {
        if (r)
            free(r);
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot build the request body");
    }
    r->c = c;
    r->id = ++c->next_id;
    r->ep = ep;
    r->body_len = strlen(r->body);
    r->cacheable = cacheable;
    r->est_tokens = (double)r->body_len / 4 + max_tokens;
    r->done = done;
    r->user = user;
    hash_hex(qpo_llm_endpoint_path(ep), r->body, r->body_len, r->hash);
    r->all_next = c->all;
    if (c->all)
        c->all->all_prev = r;
    c->all = r;
    c->st.requests++;
    if (out)
        *out = r;
    fifo_push(&c->incoming, r);
    kick(c);
    return 0;
}

int qpo_llm_score(qpo_llm_client *c, const char *context, const char *continuation,
                  qpo_llm_done_fn done, void *user, qpo_err *err) {
    if (!c || !context || !continuation || !*continuation)
        return qpo_err_set(err, QPO_EXIT_USAGE,
                           "scoring needs a context and a non-empty "
                           "continuation");
    size_t lc = strlen(context), ln = strlen(continuation);
    char *prompt = malloc(lc + ln + 1);
    if (!prompt)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    memcpy(prompt, context, lc);
    memcpy(prompt + lc, continuation, ln + 1);
    json_t *body = json_pack("{s:s, s:b, s:i, s:i, s:f}", "prompt", prompt, "echo", 1, "logprobs",
                             1, "max_tokens", 1, "temperature", 0.0);
    size_t start = qpo_llm_utf8_len(context), end = qpo_llm_utf8_len(prompt);
    req *r = NULL;
    if (submit(c, QPO_LLM_COMPLETIONS, body, true, 1, done, user, &r, err) < 0) {
        free(prompt);
        return -1;
    }
    r->prompt = prompt;
    r->span_start = start;
    r->span_end = end;
    return 0;
}

int qpo_llm_chat(qpo_llm_client *c, const qpo_llm_message *msgs, size_t nmsgs,
                 const qpo_llm_chat_opts *opts, qpo_llm_done_fn done, void *user, qpo_err *err) {
    if (!c || !msgs || nmsgs == 0)
        return qpo_err_set(err, QPO_EXIT_USAGE, "a chat request needs at least one message");
    double temperature = opts ? opts->temperature : 0;
    int max_tokens = opts && opts->max_tokens > 0 ? opts->max_tokens : 512;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < nmsgs; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            json_decref(arr);
            return qpo_err_set(err, QPO_EXIT_USAGE, "chat message %zu lacks a role or content", i);
        }
        json_array_append_new(
            arr, json_pack("{s:s, s:s}", "role", msgs[i].role, "content", msgs[i].content));
    }
    json_t *body = json_pack("{s:o, s:b, s:f, s:i}", "messages", arr, "logprobs", 1, "temperature",
                             temperature, "max_tokens", max_tokens);
    return submit(c, QPO_LLM_CHAT, body, temperature == 0, max_tokens, done, user, NULL, err);
}

int qpo_llm_client_drain(qpo_llm_client *c) {
    while (c->all) {
        int rc = event_base_loop(c->base, EVLOOP_ONCE);
        if (rc < 0)
            return -1;
        if (rc == 1 && c->all) /* nothing left to wait for, yet requests remain: a bug */
            return -1;
    }
    return 0;
}

void qpo_llm_client_stats(const qpo_llm_client *c, qpo_llm_stats *s) {
    *s = c->st;
    s->inflight = c->inflight;
    s->queued = c->incoming.n + c->ready.n + c->backoffs;
}
