/* Migrations against a real cluster: applied once, idempotent, tamper detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "migrate.h"
#include "pgtest.h"
#include "sql_files.h"

static qpo_pgtest *pg;

static int count_migrations(void) {
    int n = 0;
    for (const qpo_sql_file *f = qpo_sql_migrations; f->name; f++)
        n++;
    return n;
}

static PGconn *fresh_db(void) {
    char admin_info[600];
    snprintf(admin_info, sizeof(admin_info), "%s", qpo_pgtest_admin_conninfo(pg));
    static int n;
    char sql[64];
    snprintf(sql, sizeof(sql), "CREATE DATABASE m%d", ++n);
    qpo_err err = {0};
    PGconn *admin = qpo_db_connect(admin_info, "test", &err);
    assert_non_null(admin);
    assert_int_equal(qpo_db_exec(admin, sql, &err), 0);
    PQfinish(admin);
    char info[700];
    snprintf(info, sizeof(info), "%s", admin_info);
    char *db = strstr(info, "dbname=postgres");
    assert_non_null(db);
    snprintf(db, sizeof(info) - (size_t)(db - info), "dbname=m%d", n);
    PGconn *conn = qpo_db_connect(info, "test", &err);
    assert_non_null(conn);
    return conn;
}

static void test_migrate_applies_each_file_once(void **state) {
    qpo_err err = {0};
    PGconn *conn = fresh_db();
    assert_int_equal(qpo_migrate_check(conn, &err), -1);
    assert_non_null(strstr(err.hint, "qpo db migrate"));
    assert_int_equal(qpo_migrate(conn, NULL, &err), count_migrations());
    assert_int_equal(qpo_migrate(conn, NULL, &err), 0);
    assert_int_equal(qpo_migrate_check(conn, &err), 0);
    PGresult *res = qpo_db_named(conn, "schema_version", 0, NULL, &err);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), qpo_sql_migrations[count_migrations() - 1].name);
    PQclear(res);
    PQfinish(conn);
}

static void test_changed_migration_is_refused(void **state) {
    qpo_err err = {0};
    PGconn *conn = fresh_db();
    assert_true(qpo_migrate(conn, NULL, &err) > 0);
    assert_int_equal(qpo_db_exec(conn,
                                 "UPDATE qpo.schema_migrations SET sha256 = repeat('0', 64) "
                                 "WHERE name = (SELECT min(name) FROM qpo.schema_migrations)",
                                 &err),
                     0);
    assert_int_equal(qpo_migrate(conn, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "changed after it was applied"));
    qpo_err_clear(&err);
    assert_int_equal(qpo_migrate_check(conn, &err), -1);
    assert_non_null(strstr(err.msg, "changed after it was applied"));
    PQfinish(conn);
}

static void test_failed_query_reports_sqlstate(void **state) {
    qpo_err err = {0};
    PGconn *conn = fresh_db();
    PGresult *res = qpo_db_query(conn, "SELECT 1/0", 0, NULL, &err);
    assert_null(res);
    assert_true(qpo_db_err_sqlstate_is(&err, "22012"));
    assert_non_null(strstr(err.msg, "division by zero"));
    PQfinish(conn);
}

/* Runs sql; returns its SQLSTATE ("" when it succeeded). */
static const char *sqlstate_of(PGconn *conn, const char *sql) {
    static char state[8];
    PGresult *res = PQexec(conn, sql);
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(state, sizeof(state), "%s",
             PQresultStatus(res) == PGRES_COMMAND_OK ? ""
             : s                                     ? s
                                                     : "?");
    PQclear(res);
    return state;
}

/* double precision takes 'NaN' and 'Infinity'; the reward columns must not. */
static void test_nonfinite_rewards_are_refused(void **state) {
    qpo_err err = {0};
    PGconn *conn = fresh_db();
    assert_true(qpo_migrate(conn, NULL, &err) > 0);
    /* Only the CHECKs are under test: replica mode skips the foreign keys to runs and jobs. */
    assert_int_equal(qpo_db_exec(conn, "SET session_replication_role = replica", &err), 0);
    static const char *const values[] = {"'NaN'", "'Infinity'", "'-Infinity'"};
    char sql[1024];
    for (int i = 0; i < 3; i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO qpo.d0_records (task, setting, target, source, query, prompt, acc, "
                 "avg_acc, raw_reward) VALUES ('t', 'zero_shot', 'x', 's', 'q%d', 'p', 1, 1, %s)",
                 i, values[i]);
        assert_string_equal(sqlstate_of(conn, sql), "23514");
        for (int col = 0; col < 4; col++) {
            const char *v[4] = {"1", "50", "0", "2"};
            v[col] = values[i];
            snprintf(sql, sizeof(sql),
                     "INSERT INTO qpo.rewards (run_id, loop, batch, item_id, query, prompt, "
                     "correct, avg_acc, raw_reward, norm_reward, d0_min_raw, d0_max_raw, call_ids) "
                     "VALUES (1, 1, 0, %d, 'q', 'p', true, 1, %s, %s, %s, %s, '{1}')",
                     i * 4 + col, v[0], v[1], v[2], v[3]);
            if (strcmp(sqlstate_of(conn, sql), "23514"))
                fail_msg("accepted: %s", sql);
        }
    }
    assert_string_equal(sqlstate_of(conn, "INSERT INTO qpo.d0_records (task, setting, target, "
                                          "source, query, prompt, acc, avg_acc, raw_reward) "
                                          "VALUES ('t', 'zero_shot', 'x', 's', 'q', 'p', 1, 1, "
                                          "1e300)"),
                        "");
    assert_string_equal(sqlstate_of(conn, "INSERT INTO qpo.rewards (run_id, loop, batch, item_id, "
                                          "query, prompt, correct, avg_acc, raw_reward, "
                                          "norm_reward, d0_min_raw, d0_max_raw, call_ids) VALUES "
                                          "(1, 1, 0, 99, 'q', 'p', true, 1, 1, 50, 0, 2, '{1}')"),
                        "");
    PQfinish(conn);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_applies_each_file_once),
        cmocka_unit_test(test_changed_migration_is_refused),
        cmocka_unit_test(test_failed_query_reports_sqlstate),
        cmocka_unit_test(test_nonfinite_rewards_are_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
