/* See trainer_cli.h. */
#include "trainer_cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "db.h"

int qpo_trainer_cli_int(const char *arg, const char *flag, int64_t *out) {
    char *end;
    long long v = strtoll(arg, &end, 10);
    if (end == arg || *end || v < 1) {
        fprintf(stderr, "qpo: error: %s wants a positive number, not '%s'\n", flag, arg);
        return -1;
    }
    *out = v;
    return 0;
}

int qpo_trainer_cli_run(PGconn *conn, int64_t run_id, int *loop, qpo_trun *run, qpo_err *err) {
    char rs[24];
    snprintf(rs, sizeof rs, "%" PRId64, run_id);
    if (*loop == 0) {
        const char *p[1] = {rs};
        PGresult *res = qpo_db_named(conn, "artifacts_newest_loop", 1, p, err);
        if (!res)
            return -1;
        *loop = qpo_db_isnull(res, 0, 0) ? 0 : (int)qpo_db_int64(res, 0, 0);
        PQclear(res);
        if (*loop == 0) {
            qpo_err_set(err, QPO_EXIT_USAGE, "run %" PRId64 " has no trained loop yet", run_id);
            qpo_err_hint(err, "its loop 1 train job must succeed first (qpo status)");
            return -1;
        }
    }
    json_t *payload = json_pack("{sI si}", "run_id", (json_int_t)run_id, "loop", *loop);
    int at;
    int rc = qpo_trun_from_payload(conn, payload, run, &at, err);
    json_decref(payload);
    return rc;
}
