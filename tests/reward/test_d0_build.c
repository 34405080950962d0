/* `d0.source = "build"` as a user runs it: the DEFAULT collections (none named in the config)
 * go through qpo submit, qpo scheduler and a cpu `qpo worker` whose d0 job reads the real
 * prompt files in ../shared/data/prompts and scores them on `qpo sim-llm`. Every default
 * collection must reach its file: a name the job cannot resolve fails the job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"
#include "sched_util.h"
#include "sim_fixture.h"

static qpo_pgtest *pg;

/* InstructEval's prompts for tweet_emotion per default collection (the files' list lengths). */
static const struct {
    const char *method;
    int prompts;
} expected[] = {
    {"instructeval/no_instruction", 1},
    {"instructeval/generic_instruction", 5},
    {"instructeval/ape", 5},
    {"instructeval/rlprompt", 5},
    {"instructeval/manual", 5},
    {"instructeval/chat_gpt_prompts", 5},
    {"instructeval/low_perplexity_prompts/llama7b", 5},
};
enum { QUERIES = 6 };

static void run_ok(const char *conninfo, const char *const *argv) {
    qpo_run_result r;
    qpo_run(&r, conninfo, NULL, argv);
    if (r.exit_code != 0)
        fail_msg("qpo %s %s exited %d: %s", argv[0], argv[1] ? argv[1] : "", r.exit_code, r.err);
}

static void test_default_collections_build_d0_through_the_scheduler(void **state) {
    (void)state;
    const char *data = shared_data_or_skip();
    char *info = strdup(qpo_pgtest_new_db(pg));
    char files[3][1024];
    const char *names[3] = {"train", "val", "test"};
    for (int i = 0; i < 3; i++)
        snprintf(files[i], sizeof files[i], "%s/tweet_eval_emotion/%s_text.txt", data, names[i]);
    const char *import[] = {"data", "import", "tweet_emotion", files[0], files[1], files[2], NULL};
    run_ok(info, import);

    sim_proc sim = {0};
    sim_start(&sim, info, "");
    char cfg[] = "/tmp/qpo-d0-build-XXXXXX";
    int fd = mkstemp(cfg);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    /* No "collections": the defaults are what is under test. */
    fprintf(
        f,
        "{\"name\": \"d0-build\", \"tasks\": [\"tweet_emotion\"], \"settings\": "
        "[\"zero_shot\"], \"seeds\": [0], \"loops\": 1,\n"
        " \"targets\": [{\"name\": \"sim\", \"base_url\": \"%s/v1\", \"model\": \"qpo-sim\"}],\n"
        " \"policy\": {\"size\": \"tiny\", \"init\": \"scratch\", \"tokenizer\": \"bytes\"},\n"
        " \"d0\": {\"source\": \"build\", \"queries\": %d}}\n",
        sim.base_url, QUERIES);
    fclose(f);
    const char *submit[] = {"submit", cfg, NULL};
    run_ok(info, submit);
    const char *sched[] = {"scheduler", "--once", NULL};
    run_ok(info, sched);

    char prompts_env[1100];
    snprintf(prompts_env, sizeof prompts_env, "QPO_PROMPTS_DIR=%s/prompts", data);
    const char *worker[] = {"worker", "--class",          "cpu",    "--kinds", "d0", "--name",
                            "cpu-1",  "--exit-when-idle", "--poll", "0.2",     NULL};
    qpo_run_result w;
    qpo_run(&w, info, prompts_env, worker);
    sim_stop(&sim);
    unlink(cfg);

    PGconn *conn = test_connect(info);
    char *why = q_str(conn, "SELECT coalesce(string_agg(state || ': ' || coalesce(last_error, "
                            "''), E'\\n'), 'none') FROM qpo.jobs WHERE kind = 'd0' AND state "
                            "<> 'succeeded'");
    if (strcmp(why, "none"))
        fail_msg("d0 job did not succeed:\n%s\nworker: %s", why, w.err);
    free(why);
    assert_int_equal(w.exit_code, 0);
    /* Zero-shot keeps every pair: each collection's prompts x the sampled queries. */
    int total = 0;
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM qpo.d0_records WHERE task = 'tweet_emotion' AND setting "
                 "= 'zero_shot' AND target = 'sim' AND prompt_method = '%s'",
                 expected[i].method);
        assert_int_equal(q_int(conn, sql), expected[i].prompts * QUERIES);
        total += expected[i].prompts * QUERIES;
    }
    assert_int_equal(q_int(conn, "SELECT count(*) FROM qpo.d0_records"), total);
    assert_int_equal(q_int(conn, "SELECT count(DISTINCT query) FROM qpo.d0_records"), QUERIES);
    PQfinish(conn);
    free(info);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_collections_build_d0_through_the_scheduler),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_kill_children();
    qpo_pgtest_stop(pg);
    return rc;
}
