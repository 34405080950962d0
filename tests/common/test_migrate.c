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

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_applies_each_file_once),
        cmocka_unit_test(test_changed_migration_is_refused),
        cmocka_unit_test(test_failed_query_reports_sqlstate),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
