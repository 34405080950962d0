#ifndef QPO_LLM_H
#define QPO_LLM_H

/* The target-LLM client: OpenAI-compatible HTTP calls (label scoring through /v1/completions
 * with echo + logprobs, generation through /v1/chat/completions with logprobs), many in flight
 * on one libevent loop that the caller owns (libcurl multi, socket-action mode).
 *
 * The client knows nothing of the database. Two hooks let the caller keep the audit trail and
 * the response cache:
 *   - on_attempt is called once for EVERY HTTP attempt as it ends (success, HTTP error,
 *     network error, unparsable body, cancellation) and once for every cache hit;
 *   - cache_lookup is called before a temperature-0 request is sent, and may answer it with a
 *     recorded response body, which is then parsed exactly as a live one.
 * Neither the API key nor any request header ever reaches a hook: records hold the JSON body
 * only.
 *
 * Threading: one client belongs to one event loop and one thread. Callbacks (hooks and done)
 * run on that loop, synchronously; they may submit new requests but must not free the client.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "target_limits.h"

struct event_base;

/* What went wrong with a request or one attempt. The classes decide retrying
 * (qpo_llm_status_retryable) and tell a user what to fix. */
typedef enum qpo_llm_status {
    QPO_LLM_OK = 0,
    QPO_LLM_ERR_CONNECT,      /* DNS, refused, reset before any reply, TLS handshake */
    QPO_LLM_ERR_TIMEOUT,      /* connect or total timeout */
    QPO_LLM_ERR_DROPPED,      /* connection closed before a complete reply */
    QPO_LLM_ERR_RATE_LIMITED, /* HTTP 429 */
    QPO_LLM_ERR_SERVER,       /* HTTP 5xx, 408, 409 */
    QPO_LLM_ERR_CLIENT,       /* other HTTP 4xx (bad request, auth, unknown model): not retried */
    QPO_LLM_ERR_MALFORMED,    /* 2xx body that is not JSON: truncated, HTML, empty */
    QPO_LLM_ERR_SHAPE,        /* JSON of the wrong shape: empty choices, wrong types, bad lengths */
    QPO_LLM_ERR_NO_LOGPROBS,  /* well-formed but without the logprobs asked for: unsupported */
    QPO_LLM_ERR_SPAN,         /* no echoed token starts inside the continuation's offsets */
    QPO_LLM_ERR_CANCELLED,    /* the client was freed with the request pending or in flight */
    QPO_LLM_ERR_INTERNAL,     /* libcurl or allocation failure */
    QPO_LLM_ERR_TOO_LARGE,    /* body longer than max_response_bytes: stopped, not retried */
} qpo_llm_status;

/* "ok", "connect", "timeout", "dropped", "rate_limited", "server", "client", "malformed",
 * "shape", "no_logprobs", "span", "cancelled", "internal": stable names for records. */
const char *qpo_llm_status_name(qpo_llm_status s);

/* Whether an attempt that ended so is worth another try. Network errors, timeouts, 408, 409,
 * 429, 5xx, and 2xx bodies that are malformed or of the wrong shape (a proxy or server cut it
 * short) are; other 4xx, missing logprobs and span errors (the server will answer the same way
 * again) are not. */
bool qpo_llm_status_retryable(qpo_llm_status s);

/* One target, as in qpo.targets (docs/data-model.md). Strings are copied by
 * qpo_llm_client_new; zero numeric fields take the defaults shown. */
typedef struct qpo_llm_target {
    const char *name;       /* label for records and logs; NULL: the base URL */
    const char *base_url;   /* "http://host:8000" or "http://host:8000/v1"; "/v1/..." appended */
    const char *model;      /* the "model" field of every request */
    const char *api_key;    /* resolved secret (qpo_llm_resolve_api_key); NULL: no auth */
    int max_inflight;       /* 64: requests on the wire at once; more wait in a FIFO */
    double requests_per_s;  /* 0: unlimited; token bucket, burst = 1 s worth */
    double tokens_per_min;  /* 0: unlimited; estimated before sending, corrected by "usage" */
    int connect_timeout_ms; /* 10000 */
    int timeout_ms;         /* 120000: whole attempt, connect to last byte */
    int retry_budget;       /* 4: retries per request after the first attempt; -1: none */
    int backoff_base_ms;    /* 200: first backoff; doubles each retry, full jitter */
    int backoff_max_ms;     /* 30000: cap of one backoff; Retry-After up to max(10x, 60 s) */
    bool no_http2;          /* false: offer HTTP/2 over TLS (h2c is never attempted) */
    bool insecure_tls;      /* false: verify the server's certificate */
    /* 8 MiB: a response body longer than this ends the attempt (a broken endpoint once
     * streamed 770 MB in 5 s into memory). */
    long max_response_bytes;
    const char *ca_file; /* NULL: the system's CAs; else a PEM file of CAs trusted for TLS */
} qpo_llm_target;

/* Fills *t from a qpo.targets row: name, base_url, model and its config object (keys
 * api_key_env or api_key_file, max_inflight, requests_per_s, tokens_per_min,
 * connect_timeout_ms, timeout_ms, retry_budget, max_response_bytes, ca_file; a retry_budget of 0
 * there means no retries, not the default). The key is resolved and *key_out gets it (t->api_key
 * points to it; free it with qpo_llm_free_secret). Strings of t point into the arguments. Unknown
 * keys or wrong types: QPO_EXIT_USAGE. */
int qpo_llm_target_from_json(const char *name, const char *base_url, const char *model,
                             const json_t *config, qpo_llm_target *t, char **key_out, qpo_err *err);

/* Reads an API key from the environment variable env_var, or else from the file path (first
 * line, whitespace trimmed). Both NULL: *key = NULL, success. A named source that is missing
 * or empty is an error (QPO_EXIT_USAGE) that names the variable or file, never the value. */
int qpo_llm_resolve_api_key(const char *env_var, const char *file, char **key, qpo_err *err);
/* Overwrites the key with zeros before freeing it. */
void qpo_llm_free_secret(char *key);

typedef enum qpo_llm_endpoint {
    QPO_LLM_COMPLETIONS, /* POST {base}/v1/completions */
    QPO_LLM_CHAT,        /* POST {base}/v1/chat/completions */
} qpo_llm_endpoint;

/* "/v1/completions" or "/v1/chat/completions": the endpoint part of a cache key. */
const char *qpo_llm_endpoint_path(qpo_llm_endpoint e);

/* The identity of a request, for the cache and the audit record. */
typedef struct qpo_llm_request_key {
    const char *target_name;
    const char *endpoint; /* qpo_llm_endpoint_path() */
    const char *model;
    const char *canonical_body; /* compact JSON, keys sorted: the exact bytes sent */
    const char *request_hash;   /* hex SHA-256 of endpoint "\n" canonical_body (holds model) */
    bool cacheable;             /* temperature 0: the answer is a function of the key */
} qpo_llm_request_key;

/* One HTTP attempt as it ended, or one cache hit. Pointers are valid during the hook only. */
typedef struct qpo_llm_attempt {
    const qpo_llm_request_key *key;
    uint64_t request_id; /* the client's sequence number of the logical request */
    int attempt;         /* 1 for the first HTTP attempt; 0 for a cache hit */
    bool cache_hit;      /* answered by cache_lookup; cached_call_id says from which */
    int64_t cached_call_id;
    qpo_llm_status status;     /* this attempt's class (QPO_LLM_OK: parsed and usable) */
    const char *error;         /* "" when OK; else what happened, for the record */
    long http_status;          /* 0: no HTTP response */
    const char *response_body; /* NULL: none received; else NUL-terminated (may be partial) */
    size_t response_len;
    double latency_ms; /* from the attempt's start to its end; 0 for a cache hit */
    int prompt_tokens; /* from "usage"; -1 when absent */
    int completion_tokens;
    bool will_retry; /* another attempt follows after retry_in_ms */
    int retry_in_ms;
    void *user; /* the request's user pointer */
} qpo_llm_attempt;

typedef struct qpo_llm_hooks {
    /* Called as each attempt ends, before any retry and before done. Returns the id under
     * which the attempt was recorded (e.g. a qpo.llm_calls row), which the result carries as
     * call_id when this attempt is the final one; 0 when not recorded. */
    int64_t (*on_attempt)(const qpo_llm_attempt *a, void *arg);
    /* Called for cacheable requests before they are sent (and before they count against the
     * rate limits). To answer from the cache: set *body to a malloc'd NUL-terminated response
     * body (the client frees it), *call_id to the recorded call's id, return true. A cached
     * body that fails to parse is ignored and the request goes out live. */
    bool (*cache_lookup)(const qpo_llm_request_key *key, char **body, int64_t *call_id, void *arg);
    void *arg;
} qpo_llm_hooks;

/* The outcome of one logical request (after retries). Valid during the done callback only. */
typedef struct qpo_llm_result {
    qpo_llm_status status; /* the final attempt's class */
    const char *error;     /* "" when OK */
    long http_status;
    int attempts; /* HTTP attempts made; 0 when answered from the cache */
    bool cache_hit;
    int64_t call_id; /* on_attempt's return for the final attempt, or the cached id */
    const char *request_hash;
    /* Score: the continuation's tokens. Chat: the completion's tokens. */
    size_t ntokens;
    const char *const *tokens;
    const double *logprobs;
    double mean_nll;   /* minus the mean of logprobs */
    const char *text;  /* chat: the message content; score: the one generated token */
    int prompt_tokens; /* from "usage"; -1 when absent */
    int completion_tokens;
    void *user;
} qpo_llm_result;

typedef void (*qpo_llm_done_fn)(const qpo_llm_result *r, void *user);

typedef struct qpo_llm_client qpo_llm_client;

/* The client drives its sockets and timers on base, which the caller owns and dispatches.
 * hooks may be NULL. */
qpo_llm_client *qpo_llm_client_new(struct event_base *base, const qpo_llm_target *target,
                                   const qpo_llm_hooks *hooks, qpo_err *err);
/* Ends every pending and in-flight request with QPO_LLM_ERR_CANCELLED (on_attempt for those
 * on the wire, then done), then frees. Must not be called from a callback. */
void qpo_llm_client_free(qpo_llm_client *c);
/* Ends every pending and in-flight request the same way and keeps the client usable: for a
 * caller whose per-request state ends before the client does (a scoring pass). Must not be
 * called from a callback. */
void qpo_llm_client_cancel_all(qpo_llm_client *c);

/* Label scoring: POST /v1/completions {prompt: context + continuation, echo: true, logprobs:
 * 1, max_tokens: 1, temperature: 0}. The result's tokens are the echoed tokens whose
 * text_offset lies in [len(context), len(context + continuation)) (offsets in Unicode code
 * points, as vLLM and OpenAI count them), mean_nll their mean negative logprob. done is called
 * exactly once, from the loop, never before this returns (cache hits included). -1 (and no
 * done) only for bad arguments. */
int qpo_llm_score(qpo_llm_client *c, const char *context, const char *continuation,
                  qpo_llm_done_fn done, void *user, qpo_err *err);

typedef struct qpo_llm_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} qpo_llm_message;

typedef struct qpo_llm_chat_opts {
    double temperature; /* 0 in the recipe; only temperature 0 is cacheable */
    int max_tokens;     /* 0: 512 */
} qpo_llm_chat_opts;

/* Generation: POST /v1/chat/completions {messages, logprobs: true, temperature, max_tokens};
 * tokens/logprobs from choices[0].logprobs.content[], text from choices[0].message.content.
 * opts NULL: temperature 0, max_tokens 512. Same calling rules as qpo_llm_score. */
int qpo_llm_chat(qpo_llm_client *c, const qpo_llm_message *msgs, size_t nmsgs,
                 const qpo_llm_chat_opts *opts, qpo_llm_done_fn done, void *user, qpo_err *err);

/* Runs the caller's loop until every request of this client has called done. Returns 0, or
 * -1 if the loop failed. For code that submits a batch and waits (commands, handlers). */
int qpo_llm_client_drain(qpo_llm_client *c);

typedef struct qpo_llm_stats {
    uint64_t requests;   /* logical requests submitted */
    uint64_t completed;  /* done called */
    uint64_t ok;         /* done with QPO_LLM_OK */
    uint64_t attempts;   /* HTTP attempts ended */
    uint64_t retries;    /* attempts after a first one */
    uint64_t cache_hits; /* answered by cache_lookup */
    uint64_t cache_lookups;
    size_t inflight; /* on the wire now */
    size_t queued;   /* waiting for a slot, a rate-limit token or a backoff */
} qpo_llm_stats;

void qpo_llm_client_stats(const qpo_llm_client *c, qpo_llm_stats *s);

#endif
