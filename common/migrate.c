#include "migrate.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <string.h>

#include "db.h"
#include "sql_files.h"

static void sha256_hex(const char *text, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < len; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
    out[64] = '\0';
}

/* Looks up an applied migration: 1 applied with the same checksum, 0 not applied, -1 error
 * (including a changed file). */
static int applied_state(PGconn *conn, const qpo_sql_file *f, qpo_err *err) {
    char sum[65];
    sha256_hex(f->text, sum);
    const char *params[] = {f->name};
    PGresult *res = qpo_db_named(conn, "migrate_applied_sha", 1, params, err);
    if (!res)
        return -1;
    int state = 0;
    if (PQntuples(res) == 1) {
        state = 1;
        if (strcmp(PQgetvalue(res, 0, 0), sum) != 0) {
            qpo_err_set(err, QPO_EXIT_RUNTIME, "migration %s changed after it was applied",
                        f->name);
            qpo_err_detail(err, "recorded sha256 %s, this build has %s", PQgetvalue(res, 0, 0),
                           sum);
            qpo_err_hint(err, "never edit an applied migration: add a new numbered file to "
                              "sql/migrations/ instead");
            state = -1;
        }
    }
    PQclear(res);
    return state;
}

static int apply_one(PGconn *conn, const qpo_sql_file *f, qpo_err *err) {
    char sum[65];
    sha256_hex(f->text, sum);
    if (qpo_db_begin(conn, err) < 0)
        return -1;
    const char *params[] = {f->name, sum};
    PGresult *res = NULL;
    if (qpo_db_exec(conn, f->text, err) == 0)
        res = qpo_db_named(conn, "migrate_record", 2, params, err);
    if (!res || qpo_db_commit(conn, err) < 0) {
        PQclear(res);
        qpo_db_rollback(conn);
        qpo_err_prefix(err, "applying migration %s", f->name);
        return -1;
    }
    PQclear(res);
    return 0;
}

static int lock_and_bootstrap(PGconn *conn, qpo_err *err) {
    if (qpo_db_exec(conn, qpo_sql("migrate_lock"), err) < 0)
        return -1;
    return qpo_db_exec(conn, qpo_sql("migrate_bootstrap"), err);
}

static void unlock(PGconn *conn) {
    PQclear(PQexec(conn, qpo_sql("migrate_unlock")));
}

int qpo_migrate(PGconn *conn, FILE *out, qpo_err *err) {
    if (lock_and_bootstrap(conn, err) < 0)
        return -1;
    int applied = 0;
    for (const qpo_sql_file *f = qpo_sql_migrations; f->name; f++) {
        int state = applied_state(conn, f, err);
        if (state < 0 || (state == 0 && apply_one(conn, f, err) < 0)) {
            unlock(conn);
            return -1;
        }
        if (state == 0) {
            applied++;
            if (out)
                fprintf(out, "applied %s\n", f->name);
        }
    }
    unlock(conn);
    if (out && applied == 0)
        fprintf(out, "schema is up to date\n");
    return applied;
}

int qpo_migrate_check(PGconn *conn, qpo_err *err) {
    PGresult *res = qpo_db_named(conn, "migrate_has_table", 0, NULL, err);
    if (!res)
        return -1;
    bool exists = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    for (const qpo_sql_file *f = qpo_sql_migrations; f->name; f++) {
        int state = exists ? applied_state(conn, f, err) : 0;
        if (state < 0)
            return -1;
        if (state == 0) {
            qpo_err_set(err, QPO_EXIT_RUNTIME, "the database schema is not up to date");
            qpo_err_detail(err, "migration %s is not applied", f->name);
            qpo_err_hint(err, "run 'qpo db migrate' first");
            return -1;
        }
    }
    return 0;
}

int qpo_migrate_status(PGconn *conn, FILE *out, qpo_err *err) {
    PGresult *res = qpo_db_named(conn, "migrate_has_table", 0, NULL, err);
    if (!res)
        return -1;
    bool exists = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    const char *version = "none";
    int pending = 0;
    for (const qpo_sql_file *f = qpo_sql_migrations; f->name; f++) {
        int state = exists ? applied_state(conn, f, err) : 0;
        if (state < 0)
            return -1;
        fprintf(out, "%-40s %s\n", f->name, state ? "applied" : "pending");
        if (state)
            version = f->name;
        else
            pending++;
    }
    fprintf(out, "version: %s (%d pending)\n", version, pending);
    return 0;
}
