/* The import-check job: the first job of a run whose D_0 is imported. It fails at once
 * (fatal, so the run fails with the message) when the task's items or the D_0 are missing,
 * naming the import to run; `qpo resume` retries it afterwards. The check itself is SQL
 * (qpo.run_data_problem) so users can ask it too. */
#include <inttypes.h>
#include <stdio.h>

#include "db.h"
#include "handler.h"
#include "import_check.h"

static qpo_job_status run_import_check(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                                       qpo_err *err) {
    if (!job->run_id) {
        qpo_err_set(err, QPO_EXIT_USAGE, "import-check job %" PRId64 " has no run", job->id);
        return QPO_JOB_FATAL;
    }
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, job->run_id);
    const char *p[] = {id};
    PGresult *res = qpo_db_named(qpo_job_conn(ctx), "run_data_problem", 1, p, err);
    if (!res)
        return QPO_JOB_RETRY;
    qpo_job_status st = QPO_JOB_OK;
    if (!PQgetisnull(res, 0, 0)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s", PQgetvalue(res, 0, 0));
        st = QPO_JOB_FATAL;
    } else
        out->result = json_pack("{sb}", "data_ready", 1);
    PQclear(res);
    return st;
}

void qpo_import_check_register_handlers(void) {
    static const qpo_handler import_check = {"import-check", "cpu", run_import_check};
    qpo_handler_register(&import_check);
}
