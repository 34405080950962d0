#ifndef QPO_SIM_FAULTS_H
#define QPO_SIM_FAULTS_H

/* Injected faults. Which request gets which fault is a function of (seed, the request's
 * arrival number), so over requests 0..N-1 the count of each fault is fixed by the seed
 * whatever the thread interleaving: tests count, they never time. */

#include <stdint.h>

#include "error.h"

typedef enum sim_fault {
    SIM_FAULT_NONE,
    SIM_FAULT_DROP,      /* connection closed without a reply */
    SIM_FAULT_FAIL,      /* fail_status with an OpenAI-shaped error body */
    SIM_FAULT_TRUNCATE,  /* 200, Content-Length matching a body cut mid-JSON */
    SIM_FAULT_MALFORMED, /* 200, valid JSON of the wrong shape */
    SIM_FAULT_HANG,      /* the right reply, hang_ms late: past a client's timeout */
} sim_fault;

#define SIM_MAX_FAIL_STATUSES 3

typedef struct sim_faults {
    double drop_rate, fail_rate, truncate_rate, malformed_rate, hang_rate;
    /* 429, 500 or 503; with several, a failed request's status is drawn among them (seeded) */
    int fail_status[SIM_MAX_FAIL_STATUSES];
    int n_fail_status; /* 0: 503 */
    int retry_after;   /* seconds; < 0: no Retry-After header */
    double hang_ms;    /* how late a hung reply comes (default 60 s) */
    uint64_t seed;
} sim_faults;

/* -1 with err set (usage) when rates are out of [0, 1] or sum above 1, or the status is not
 * one of 429, 500, 503. */
int sim_faults_check(const sim_faults *f, qpo_err *err);
/* The fault of request number seq; *variant picks among malformed shapes and fail statuses. */
sim_fault sim_fault_for(const sim_faults *f, uint64_t seq, unsigned *variant);
/* The status a failed request gets, by its variant. */
int sim_fault_status(const sim_faults *f, unsigned variant);

#endif
