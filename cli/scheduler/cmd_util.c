#include "cmd_util.h"

#include <stdlib.h>

#include "db.h"
#include "migrate.h"

PGconn *qpo_sched_connect(const char *db_flag, const char *app, qpo_err *err) {
    PGconn *conn = qpo_db_connect(qpo_db_conninfo(db_flag), app, err);
    if (conn && qpo_migrate_check(conn, err) < 0) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

long long qpo_sched_parse_id(const char *s) {
    char *end = NULL;
    long long id = s ? strtoll(s, &end, 10) : -1;
    return (s && *s && end && *end == '\0' && id > 0) ? id : -1;
}
