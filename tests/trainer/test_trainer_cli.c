/* qpo prompt and qpo export through the binary, on runs trained in this process against a real
 * PostgreSQL: the prompt for a test query equals the one evaluate-generate wrote for it, the
 * export holds the recorded weights and the loop's prompts, and refusals leave nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "pgtest.h"
#include "trainer_fixture.h"
#include "trainer_internal.h"

static qpo_pgtest *pg;
/* Trained once for all tests (a training is most of their time): checkpoints in each store.
 * The last test corrupts pg_run's weights. */
static tfx pg_run, dir_run;

/* Runs `qpo ARGS --db CONNINFO`; stdout into out, the exit status returned. */
static int qpo_run(const tfx *f, const char *args, char *out, size_t len) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s --db '%s' 2>/dev/null", qpo_test_binary(), args,
             f->conninfo);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A trained loop 1 with its test prompts, its checkpoints in STORE. */
static void trained(tfx *f, const char *store) {
    tfx_setup(f, qpo_pgtest_new_db(pg), NULL);
    f->artifacts = store;
    char payload[256];
    qpo_err err = {0};
    tfx_payload(f, "train", 1, payload, sizeof payload);
    assert_int_equal(tfx_run(f, qpo_trainer_job_train, payload, 0, NULL, &err), QPO_JOB_OK);
    tfx_payload(f, "evaluate-generate", 1, payload, sizeof payload);
    assert_int_equal(tfx_run(f, qpo_trainer_job_evaluate_generate, payload, 0, NULL, &err),
                     QPO_JOB_OK);
}

static void test_prompt_matches_evaluate_generate(void **state) {
    (void)state;
    tfx f = pg_run;
    /* Test item 100's query: evaluate-generate decoded it greedily at r* = 100. */
    char *query = db_str(f.conn, "SELECT query FROM qpo.task_items WHERE item_id = 100");
    char *want = db_str(f.conn, "SELECT prompt FROM qpo.generations WHERE item_id = 100 AND "
                                "purpose = 'test'");
    char args[512], out[65536];
    snprintf(args, sizeof args, "prompt --run %lld --loop 1 '%s'", (long long)f.run_id, query);
    assert_int_equal(qpo_run(&f, args, out, sizeof out), 0);
    char line[4096];
    snprintf(line, sizeof line, "%s\n", want);
    assert_string_equal(out, line);
    /* Without --loop: the newest trained loop, the same one here. */
    snprintf(args, sizeof args, "prompt --run %lld '%s'", (long long)f.run_id, query);
    assert_int_equal(qpo_run(&f, args, out, sizeof out), 0);
    assert_string_equal(out, line);

    snprintf(args, sizeof args, "prompt --json --run %lld '%s'", (long long)f.run_id, query);
    assert_int_equal(qpo_run(&f, args, out, sizeof out), 0);
    json_error_t jerr;
    json_t *o = json_loads(out, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "prompt")), want);
    assert_string_equal(json_string_value(json_object_get(o, "query")), query);
    assert_int_equal(json_integer_value(json_object_get(o, "loop")), 1);
    assert_true(json_real_value(json_object_get(o, "r_star")) == 100.0);
    json_t *toks = json_object_get(o, "tokens");
    assert_true(json_array_size(toks) >= 1);
    double sum = 0;
    size_t i;
    json_t *t;
    char text[4096] = "";
    json_array_foreach(toks, i, t) {
        double lp = json_real_value(json_object_get(t, "logprob"));
        assert_true(lp <= 0 && lp > -100);
        sum += lp;
        if (json_integer_value(json_object_get(t, "id")) != 256) /* the byte tokenizer's eos */
            strncat(text, json_string_value(json_object_get(t, "text")),
                    sizeof text - strlen(text) - 1);
    }
    assert_true(fabs(sum - json_real_value(json_object_get(o, "logprob"))) < 1e-6);
    /* The tokens spell the prompt (their text, stripped), where no character spans two byte
     * tokens: then each token's text is the character itself. */
    int ascii = 1;
    for (const char *c = want; *c; c++)
        ascii &= (unsigned char)*c < 128;
    if (ascii)
        assert_non_null(strstr(text, want));
    json_decref(o);

    /* Refusals: a run without a trained loop, an untrained loop, no query. */
    assert_int_equal(qpo_run(&f, "prompt --run 999 'x'", out, sizeof out), 2);
    snprintf(args, sizeof args, "prompt --run %lld --loop 2 'x'", (long long)f.run_id);
    assert_int_equal(qpo_run(&f, args, out, sizeof out), 2);
    snprintf(args, sizeof args, "prompt --run %lld", (long long)f.run_id);
    assert_int_equal(qpo_run(&f, args, out, sizeof out), 2);
    free(query), free(want);
}

static long lines_in(const char *path) {
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    long n = 0;
    int c;
    while ((c = fgetc(fp)) != EOF)
        n += c == '\n';
    fclose(fp);
    return n;
}

static void check_export(tfx f) {
    char out[PATH_MAX], args[PATH_MAX + 64], buf[4096], path[PATH_MAX + 64];
    snprintf(out, sizeof out, "%s/export", f.ckpt_root);
    snprintf(args, sizeof args, "export 1 --loop 1 --out '%s'", out);
    assert_int_equal(qpo_run(&f, args, buf, sizeof buf), 0);

    snprintf(path, sizeof path, "%s/run-%lld/policy.safetensors", out, (long long)f.run_id);
    char sha[65];
    int64_t bytes;
    qpo_err err = {0};
    assert_int_equal(qpo_sha256_file(path, sha, &bytes, &err), 0);
    char *want = db_str(f.conn, "SELECT sha256 FROM qpo.checkpoints");
    assert_string_equal(sha, want);
    free(want);
    snprintf(path, sizeof path, "%s/run-%lld/prompts.jsonl", out, (long long)f.run_id);
    assert_int_equal(lines_in(path), db_ll(f.conn, "SELECT count(*) FROM qpo.generations"));
    snprintf(path, sizeof path, "%s/tokenizer/tokenizer.json", out);
    assert_true(exists(path));
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/config.json", out);
    json_t *cfg = json_load_file(path, 0, &jerr);
    assert_non_null(cfg);
    assert_string_equal(json_string_value(json_object_get(json_object_get(cfg, "policy"), "size")),
                        "tiny");
    json_decref(cfg);
    snprintf(path, sizeof path, "%s/manifest.json", out);
    json_t *m = json_load_file(path, 0, &jerr);
    assert_non_null(m);
    assert_int_equal(json_array_size(json_object_get(m, "runs")), 1);
    json_decref(m);

    /* A folder that holds something is refused and left as it was. */
    assert_int_equal(qpo_run(&f, args, buf, sizeof buf), 2);
    snprintf(path, sizeof path, "%s/manifest.json", out);
    assert_true(exists(path));
    /* A loop not trained: nothing written, no temporary folder left. */
    snprintf(args, sizeof args, "export 1 --loop 2 --out '%s/second'", f.ckpt_root);
    assert_int_equal(qpo_run(&f, args, buf, sizeof buf), 2);
    snprintf(path, sizeof path, "%s/second", f.ckpt_root);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/second.tmp", f.ckpt_root);
    assert_false(exists(path));
}

static void test_export_dir_store(void **state) {
    (void)state;
    check_export(dir_run);
}

static void test_export_pg_store(void **state) {
    (void)state;
    check_export(pg_run);
}

/* Weights changed after they were recorded: the export stops, naming them, and leaves no
 * folder behind. */
static void test_export_refuses_corrupt_weights(void **state) {
    (void)state;
    tfx f = pg_run;
    db_ok(f.conn, "SELECT lo_put(oid, 64, set_byte('\\x00'::bytea, 0, "
                  "get_byte(lo_get(oid, 64, 1), 0) # 4)) FROM qpo.artifacts "
                  "WHERE name = 'policy.safetensors'");
    char args[PATH_MAX + 64], buf[4096], path[PATH_MAX + 16];
    snprintf(args, sizeof args, "export 1 --loop 1 --out '%s/bad'", f.ckpt_root);
    assert_int_equal(qpo_run(&f, args, buf, sizeof buf), 2);
    snprintf(path, sizeof path, "%s/bad", f.ckpt_root);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/bad.tmp", f.ckpt_root);
    assert_false(exists(path));
}

static int setup(void **state) {
    (void)state;
    trained(&pg_run, "pg");
    trained(&dir_run, "dir");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tfx_teardown(&pg_run);
    tfx_teardown(&dir_run);
    return 0;
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_matches_evaluate_generate),
        cmocka_unit_test(test_export_dir_store),
        cmocka_unit_test(test_export_pg_store),
        cmocka_unit_test(test_export_refuses_corrupt_weights),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    qpo_pgtest_stop(pg);
    return rc;
}
