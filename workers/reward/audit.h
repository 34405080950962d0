#ifndef QPO_REWARD_AUDIT_H
#define QPO_REWARD_AUDIT_H

/* The LLM client's hooks backed by qpo.llm_calls: every HTTP attempt is one row, autocommitted
 * on the job's connection as it ends (so a killed worker's calls are kept and paid for once),
 * and temperature-0 requests are answered from the first successful live row with the same
 * request hash and target. A cache hit costs nothing, so its row is not written at once: hits
 * are collected in `hits` and written with the job's outputs (qpo_llm_session_add_hits),
 * one round trip instead of one per hit, and only for the attempt that completes. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "error.h"
#include "llm.h"

typedef struct qpo_audit {
    PGconn *conn;       /* outside any transaction */
    const char *target; /* qpo.targets.name: the cache never crosses targets */
    int64_t job_id;     /* 0: none (commands) */
    int job_attempt;
    const char *worker;
    /* counters for the job's result */
    uint64_t attempts;        /* live HTTP attempts recorded */
    uint64_t failed_attempts; /* of which not ok */
    uint64_t cache_hits;
    json_t *hits; /* qpo.llm_calls rows keyed by column, created on the first hit */
    /* The first database failure: the audit is then incomplete and the job must not complete. */
    int failed;
    qpo_err err;
} qpo_audit;

/* Hooks whose arg is audit. */
qpo_llm_hooks qpo_audit_hooks(qpo_audit *audit);

#endif
