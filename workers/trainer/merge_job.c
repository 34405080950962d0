/* merge(t): loop t's rewards above D_0's minimum raw reward join the run's dataset
 * (qpo.run_records), one record per (query, prompt). All of it is one INSERT ... SELECT in
 * the completing transaction: the rewards are final once every reward job succeeded, and
 * the statement reads them where it writes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "db.h"
#include "log.h"
#include "train_data.h"
#include "trainer_internal.h"

typedef struct merge_arg {
    char run[24], loop[16];
    json_t *result; /* the runtime stores it after the commit hook, so "kept" lands in it */
} merge_arg;

static int commit_merge(PGconn *conn, const qpo_job *job, void *arg, qpo_err *err) {
    (void)job;
    merge_arg *m = arg;
    const char *params[2] = {m->run, m->loop};
    PGresult *res = qpo_db_named(conn, "trainer_merge_insert", 2, params, err);
    if (!res)
        return -1;
    long long kept = atoll(PQcmdTuples(res));
    PQclear(res);
    json_object_set_new(m->result, "kept", json_integer(kept));
    qpo_info("merge: run %s loop %s kept %lld records", m->run, m->loop, kept);
    return 0;
}

qpo_job_status qpo_trainer_job_merge(const qpo_trainer_env *env, const json_t *payload,
                                     qpo_job_outcome *out, qpo_err *err) {
    qpo_trun run;
    int loop;
    double min_raw, max_raw;
    if (qpo_trun_from_payload(env->conn, payload, &run, &loop, err) ||
        qpo_d0_range(env->conn, &run, &min_raw, &max_raw, err))
        return qpo_trainer_fail(err);
    merge_arg *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    snprintf(m->run, sizeof m->run, "%" PRId64, run.id);
    snprintf(m->loop, sizeof m->loop, "%d", loop);
    const char *params[2] = {m->run, m->loop};
    PGresult *res = qpo_db_named(env->conn, "trainer_merge_stats", 2, params, err);
    if (!res) {
        free(m);
        return QPO_JOB_RETRY;
    }
    long long rewards = atoll(PQgetvalue(res, 0, 0)), above = atoll(PQgetvalue(res, 0, 1));
    PQclear(res);
    m->result = json_pack("{si sI sI sf}", "loop", loop, "rewards", (json_int_t)rewards,
                          "above_d0_min", (json_int_t)above, "d0_min_raw", min_raw);
    out->result = m->result;
    out->commit = commit_merge;
    out->commit_arg = m;
    out->free_arg = free;
    return QPO_JOB_OK;
}
