/* What PostgreSQL says reaches qpo_err whole: SQLSTATE, message, detail and hint as fields,
 * from plain statements and from the queue's prepared ones alike (one result check). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "pgtest.h"
#include "prepared.h"

static qpo_pgtest *pg;

static PGconn *connect_fresh(void) {
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(qpo_pgtest_new_db(pg), "test_db_errors", &err);
    if (!conn)
        fail_msg("%s (%s)", err.msg, err.detail);
    return conn;
}

static void test_sqlstate_detail_and_hint_are_fields(void **state) {
    (void)state;
    PGconn *conn = connect_fresh();
    qpo_err err = {0};
    assert_int_equal(qpo_db_exec(conn,
                                 "DO $$ BEGIN RAISE EXCEPTION 'bad thing' USING "
                                 "ERRCODE = 'check_violation', DETAIL = 'row 7, field x', "
                                 "HINT = 'fix the field'; END $$",
                                 &err),
                     -1);
    assert_int_equal(err.code, QPO_EXIT_RUNTIME);
    assert_string_equal(err.msg, "SQL failed: bad thing");
    assert_string_equal(err.detail, "row 7, field x");
    assert_string_equal(err.hint, "fix the field");
    assert_string_equal(err.sqlstate, "23514");
    assert_true(qpo_db_err_sqlstate_is(&err, "23514"));
    assert_false(qpo_db_err_sqlstate_is(&err, "40001"));
    char text[2048];
    qpo_err_format(&err, text, sizeof text);
    assert_string_equal(text, "SQL failed: bad thing\nDETAIL: row 7, field x\nHINT: fix the "
                              "field\nSQLSTATE: 23514");
    /* A prefix keeps what the server said. */
    qpo_err_prefix(&err, "completing job 3");
    assert_string_equal(err.sqlstate, "23514");
    assert_string_equal(err.hint, "fix the field");
    PQfinish(conn);
}

static void test_errors_without_detail_leave_it_empty(void **state) {
    (void)state;
    PGconn *conn = connect_fresh();
    qpo_err err = {0};
    assert_null(qpo_db_query(conn, "SELECT 1 / 0", 0, NULL, &err));
    assert_string_equal(err.sqlstate, "22012");
    assert_string_equal(err.detail, "");
    assert_string_equal(err.hint, "");
    char text[2048];
    qpo_err_format(&err, text, sizeof text);
    assert_string_equal(text, "query failed: division by zero\nSQLSTATE: 22012");
    /* A later error set in C carries no stale SQLSTATE. */
    qpo_err_set(&err, QPO_EXIT_USAGE, "bad payload");
    assert_string_equal(err.sqlstate, "");
    PQfinish(conn);
}

static void test_prepared_statements_report_the_same_way(void **state) {
    (void)state;
    PGconn *conn = connect_fresh();
    qpo_err err = {0};
    const char *params[4] = {"{1}", "{not-a-number}", "{}", "w"};
    assert_null(qpo_queue_exec(conn, "queue_complete_batch", 4, params, &err));
    assert_string_equal(err.sqlstate, "22P02"); /* invalid_text_representation */
    assert_non_null(strstr(err.msg, "queue_complete_batch failed: "));
    assert_null(strstr(err.detail, "SQLSTATE"));
    PQfinish(conn);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlstate_detail_and_hint_are_fields),
        cmocka_unit_test(test_errors_without_detail_leave_it_empty),
        cmocka_unit_test(test_prepared_statements_report_the_same_way),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
