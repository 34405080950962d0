/* qpo.llm_calls as the LLM client's audit record and response cache. See audit.h. */
#include "audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"

static void note_failure(qpo_audit *audit, const qpo_err *err) {
    if (!audit->failed) {
        audit->failed = 1;
        audit->err = *err;
        qpo_err_prefix(&audit->err, "recording an LLM call in qpo.llm_calls");
        qpo_err_hint(&audit->err, "the job is retried; calls recorded so far are reused");
    }
}

static const char *opt_int(char *buf, size_t n, int64_t v, int present) {
    if (!present) {
        return NULL;
    }
    snprintf(buf, n, "%" PRId64, v);
    return buf;
}

static void collect_hit(qpo_audit *audit, const qpo_llm_attempt *a) {
    if (!audit->hits) {
        audit->hits = json_array();
    }
    json_array_append_new(
        audit->hits,
        json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:i,s:b,s:I,s:o,s:o,s:s*}", "target", audit->target,
                  "endpoint", a->key->endpoint, "model", a->key->model, "request_hash",
                  a->key->request_hash, "cacheable", a->key->cacheable, "status", "ok", "attempt",
                  0, "cache_hit", 1, "cached_call_id", (json_int_t)a->cached_call_id, "job_id",
                  audit->job_id > 0 ? json_integer(audit->job_id) : json_null(), "job_attempt",
                  audit->job_id > 0 ? json_integer(audit->job_attempt) : json_null(), "worker",
                  audit->worker));
}

static int64_t record_attempt(const qpo_llm_attempt *a, void *arg) {
    qpo_audit *audit = arg;
    if (a->cache_hit) {
        audit->cache_hits++;
        collect_hit(audit, a);
        return 0; /* the client reports the source call's id for hits */
    }
    audit->attempts++;
    audit->failed_attempts += a->status != QPO_LLM_OK;
    char http[24], lat[32], ptok[24], ctok[24], att[24], job[24], jatt[24];
    snprintf(lat, sizeof lat, "%.3f", a->latency_ms > 0 ? a->latency_ms : 0.0);
    const char *params[20] = {
        audit->target,
        a->key->endpoint,
        a->key->model,
        a->key->request_hash,
        a->key->cacheable ? "true" : "false",
        a->key->canonical_body,
        a->response_body,
        qpo_llm_status_name(a->status),
        a->error ? a->error : "",
        opt_int(http, sizeof http, a->http_status, a->http_status > 0),
        lat,
        opt_int(ptok, sizeof ptok, a->prompt_tokens, a->prompt_tokens >= 0),
        opt_int(ctok, sizeof ctok, a->completion_tokens, a->completion_tokens >= 0),
        opt_int(att, sizeof att, a->attempt, 1),
        a->will_retry ? "true" : "false",
        "false",
        NULL,
        opt_int(job, sizeof job, audit->job_id, audit->job_id > 0),
        opt_int(jatt, sizeof jatt, audit->job_attempt, audit->job_id > 0),
        audit->worker,
    };
    qpo_err err = {0};
    PGresult *res = qpo_db_named(audit->conn, "reward_insert_call", 20, params, &err);
    if (!res) {
        note_failure(audit, &err);
        return 0;
    }
    int64_t id = qpo_db_int64(res, 0, 0);
    PQclear(res);
    return id;
}

static bool lookup_cache(const qpo_llm_request_key *key, char **body, int64_t *call_id, void *arg) {
    qpo_audit *audit = arg;
    const char *params[2] = {key->request_hash, audit->target};
    qpo_err err = {0};
    PGresult *res = qpo_db_named(audit->conn, "reward_cache_lookup", 2, params, &err);
    if (!res) {
        note_failure(audit, &err);
        return false;
    }
    bool hit = PQntuples(res) == 1 && !qpo_db_isnull(res, 0, 1);
    if (hit) {
        *call_id = qpo_db_int64(res, 0, 0);
        *body = strdup(PQgetvalue(res, 0, 1));
        hit = *body != NULL;
    }
    PQclear(res);
    return hit;
}

qpo_llm_hooks qpo_audit_hooks(qpo_audit *audit) {
    return (qpo_llm_hooks){
        .on_attempt = record_attempt, .cache_lookup = lookup_cache, .arg = audit};
}
