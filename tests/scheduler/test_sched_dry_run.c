/* qpo submit --dry-run against a real PostgreSQL: it prints the plan the scheduler then writes
 * (the same jobs per kind, because it is the same planner), estimates LLM calls from the config
 * and the task sizes in the database, and writes nothing: every qpo table keeps its row count
 * and the experiment ids are not advanced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"
#include "sched_util.h"

static qpo_pgtest *pg;

/* 2 tasks x 2 seeds, 3 loops of 2 batches of 3, test sizes 10 (labels) and 5 (math) in 2
 * shards, one configured baseline, the oracle on; D_0 imported (import-check jobs). */
static const char *config =
    "{\"tasks\": [\"tweet_emotion\", \"gsm8k\"], \"settings\": [\"zero_shot\"],"
    " \"seeds\": [0, 1], \"loops\": 3,"
    " \"targets\": [{\"name\": \"sim\", \"base_url\": \"http://127.0.0.1:9/v1\","
    " \"model\": \"sim-7b\"}],"
    " \"collect\": {\"batches\": 2, \"batch_size\": 3},"
    " \"test\": {\"shards\": 2, \"size\": 10, \"math_size\": 5},"
    " \"baselines\": [{\"name\": \"manual\", \"prompt\": \"Answer it.\"}], \"oracle\": true}";

/* Every qpo table's row count as one text, and where the experiment ids stand. */
static const char *census_sql =
    "SELECT string_agg(c.relname || '=' || (xpath('/row/n/text()', query_to_xml("
    "format('SELECT count(*) AS n FROM qpo.%I', c.relname), false, true, '')))[1]::text, ' ' "
    "ORDER BY c.relname) || ' next_exp=' || coalesce((SELECT last_value::text FROM "
    "qpo.experiments_id_seq), '?') FROM pg_class c JOIN pg_namespace n ON n.oid = "
    "c.relnamespace WHERE n.nspname = 'qpo' AND c.relkind IN ('r', 'p')";

static char *write_temp(const char *text) {
    char *path = strdup("/tmp/qpo-dry-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static json_t *dry_run_json(const char *db, const char *path) {
    qpo_run_result r;
    const char *argv[] = {"submit", "--dry-run", "--json", path, "--name", "dry", NULL};
    qpo_run(&r, db, NULL, argv);
    if (r.exit_code != 0)
        fail_msg("qpo submit --dry-run failed (%d): %s", r.exit_code, r.err);
    json_error_t e;
    json_t *out = json_loads(r.out, 0, &e);
    if (!out)
        fail_msg("--dry-run --json printed no JSON (%s): %s", e.text, r.out);
    return out;
}

static void test_dry_run_plans_without_writing(void **state) {
    const char *db = qpo_pgtest_new_db(pg);
    PGconn *conn = test_connect(db);
    /* 7 test items of tweet_emotion (queries of 4 characters); none of gsm8k. */
    q_exec(conn, "INSERT INTO qpo.task_items (task, item_id, split, upstream_split, "
                 "upstream_index, query, fields, label) SELECT 'tweet_emotion', i, 'test', "
                 "'test', i, 'abcd', '{\"text\": \"abcd\"}', i % 4 FROM generate_series(0, 6) i");
    char *path = write_temp(config);
    char *before = q_str(conn, census_sql);

    json_t *plan = dry_run_json(db, path);
    char *after = q_str(conn, census_sql);
    assert_string_equal(before, after);

    assert_int_equal(json_integer_value(json_object_get(plan, "runs")), 4);
    /* Per tweet_emotion run: 8 scored sources (3 loops x {qpo, policy_mode}, manual,
     * best_single) x 7 test items in the database x 4 labels, plus 2 collecting loops x 2
     * batches x 3 pairs x 4 labels = 272. Per gsm8k run (no items: the config's 5): 8 x 5 x 1
     * + 2 x 2 x 3 x 1 = 52. The oracle's prompts come from an imported D_0, none here. */
    json_t *calls = json_object_get(plan, "llm_calls");
    assert_int_equal(json_integer_value(json_object_get(calls, "total")), 2 * (272 + 52));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(calls, "by_kind"), "reward")),
        2 * (48 + 12));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(calls, "by_kind"), "train")), 0);
    assert_true(json_integer_value(json_object_get(plan, "prompt_tokens")) > 2 * (272 + 52));
    assert_int_equal(json_integer_value(json_object_get(plan, "completion_tokens_max")),
                     2 * (272 + 52 * 512));
    json_t *notes = json_object_get(plan, "notes");
    assert_true(json_array_size(notes) >= 2); /* gsm8k has no items; no D_0 for the oracle */

    /* The scheduler then writes exactly the plan the dry run printed. */
    qpo_run_result r;
    const char *submit[] = {"submit", path, "--name", "real", NULL};
    qpo_run(&r, db, NULL, submit);
    assert_int_equal(r.exit_code, 0);
    const char *once[] = {"scheduler", "--once", NULL};
    qpo_run(&r, db, NULL, once);
    assert_int_equal(r.exit_code, 0);
    json_t *by_kind = json_object_get(json_object_get(plan, "jobs"), "by_kind");
    const char *kind;
    json_t *n;
    size_t kinds = 0;
    json_object_foreach(by_kind, kind, n) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM qpo.jobs WHERE kind = '%s'", kind);
        assert_int_equal(q_int(conn, sql), json_integer_value(n));
        kinds++;
    }
    assert_int_equal(q_int(conn, "SELECT count(DISTINCT kind) FROM qpo.jobs"), kinds);
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.jobs"),
                     json_integer_value(json_object_get(json_object_get(plan, "jobs"), "total")));
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.runs"), 4);

    json_decref(plan);
    free(before);
    free(after);
    unlink(path);
    free(path);
    PQfinish(conn);
}

static void test_dry_run_text_and_bad_config(void **state) {
    const char *db = qpo_pgtest_new_db(pg);
    PGconn *conn = test_connect(db);
    char *path = write_temp(config);
    char *before = q_str(conn, census_sql);
    qpo_run_result r;
    const char *argv[] = {"submit", "--dry-run", path, NULL};
    qpo_run(&r, db, NULL, argv);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "dry run, nothing written"));
    assert_non_null(strstr(r.out, "runs: 4"));
    assert_non_null(strstr(r.out, "estimated LLM calls"));
    unlink(path);
    free(path);

    /* An invalid config: exit 2 naming the field, nothing written either. */
    char *bad = write_temp("{\"tasks\": [\"tweet\"], \"seeds\": [0]}");
    const char *argv2[] = {"submit", "--dry-run", bad, NULL};
    qpo_run(&r, db, NULL, argv2);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "tasks[0]"));
    char *after = q_str(conn, census_sql);
    assert_string_equal(before, after);
    unlink(bad);
    free(bad);
    free(before);
    free(after);
    PQfinish(conn);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dry_run_plans_without_writing),
        cmocka_unit_test(test_dry_run_text_and_bad_config),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
