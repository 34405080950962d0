/* A whole tiny experiment through the real processes: qpo data import, qpo submit, qpo
 * scheduler, qpo sim-llm as the target, and one cpu and one gpu `qpo worker`, until the
 * experiment is done: two loops of train, generate, reward, merge, evaluate-generate and
 * score. Needs ../shared/data (the TweetEval files); D_0 is a small hand-made one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest.h"
#include "report_check.h"
#include "trainer_fixture.h"

static qpo_pgtest *pg;

static pid_t spawn(char *const argv[], const char *ckpt_dir, int out_fd) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (ckpt_dir)
            setenv("QPO_CHECKPOINT_DIR", ckpt_dir, 1);
        if (out_fd >= 0)
            dup2(out_fd, STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int run_qpo(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5,
                   const char *a6, const char *conninfo) {
    const char *args[] = {a1, a2, a3, a4, a5, a6};
    char *argv[12];
    int n = 0;
    argv[n++] = (char *)qpo_test_binary();
    for (int i = 0; i < 6 && args[i]; i++)
        argv[n++] = (char *)args[i];
    argv[n++] = "--db";
    argv[n++] = (char *)conninfo;
    argv[n] = NULL;
    return qpo_test_wait_exit(spawn(argv, NULL, -1));
}

/* qpo sim-llm on a free port; its base address (printed when ready) into url. */
static pid_t sim_start(const char *conninfo, char *url, size_t len) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char *argv[] = {(char *)qpo_test_binary(), "sim-llm", "--listen", "127.0.0.1:0", "--db",
                    (char *)conninfo,          NULL};
    pid_t pid = spawn(argv, NULL, fds[1]);
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    if (!fgets(url, (int)len, f))
        fail_msg("qpo sim-llm exited before it was ready");
    fclose(f);
    url[strcspn(url, "\r\n")] = '\0';
    return pid;
}

static void write_config(const char *path, const char *url) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"name\": \"trainer-e2e\", \"tasks\": [\"tweet_emotion\"], \"settings\": "
            "[\"few_shot\"], \"seeds\": [0], \"loops\": 2,\n"
            " \"targets\": [{\"name\": \"sim\", \"base_url\": \"%s/v1\", \"model\": \"qpo-sim\", "
            "\"max_inflight\": 8}],\n"
            " \"policy\": {\"size\": \"tiny\", \"init\": \"scratch\", \"tokenizer\": \"bytes\"},\n"
            " \"hyper\": {\"epochs_first\": 2, \"epochs_next\": 1, \"batch_size\": 32},\n"
            " \"collect\": {\"batches\": 2, \"batch_size\": 10}, \"test\": {\"size\": 8, "
            "\"shards\": 2},\n"
            " \"d0\": {\"source\": \"import\"},\n"
            " \"baselines\": [{\"name\": \"manual\", \"prompt\": \"Which emotion is best "
            "represented by the following tweet?\"}]}\n",
            url);
    fclose(f);
}

/* A small D_0: 20 train tweets x 3 prompts, raw rewards spread over the few-shot range. */
static void insert_d0(PGconn *conn) {
    db_ok(conn, "INSERT INTO qpo.d0_records (task, setting, target, source, query, label, prompt, "
                "acc, avg_acc, raw_reward) "
                "SELECT 'tweet_emotion', 'few_shot', 'sim', 'test', i.query, i.label, p.prompt, "
                "0.5, 0.5, 0.5 + ((i.item_id * 7 + p.k * 5) % 19) "
                "FROM (SELECT * FROM qpo.task_items WHERE task = 'tweet_emotion' AND split = "
                "'train' ORDER BY item_id LIMIT 20) i "
                "CROSS JOIN (VALUES (1, 'Classify the tweet.<|endoftext|>'), (2, 'What emotion "
                "does this tweet show?<|endoftext|>'), (3, '<|endoftext|>')) p(k, prompt)");
}

static void test_experiment_end_to_end(void **state) {
    (void)state;
    const char *data = qpo_test_shared_data();
    if (!data) {
        fprintf(stderr, "skipped: ../shared/data is absent (TweetEval files needed)\n");
        skip();
    }
    tfx f;
    tfx_opts none = {.with_d0 = 0};
    tfx_setup(&f, qpo_pgtest_new_db(pg), &none);
    /* The fixture's run and items stand in the way of the real ones. */
    db_ok(f.conn, "DELETE FROM qpo.runs; DELETE FROM qpo.experiments; DELETE FROM qpo.targets; "
                  "DELETE FROM qpo.task_items");
    char files[3][1024];
    const char *names[3] = {"train", "val", "test"};
    for (int i = 0; i < 3; i++)
        snprintf(files[i], sizeof files[i], "%s/tweet_eval_emotion/%s_text.txt", data, names[i]);
    assert_int_equal(
        run_qpo("data", "import", "tweet_emotion", files[0], files[1], files[2], f.conninfo), 0);
    char url[256], cfg[512];
    pid_t sim = sim_start(f.conninfo, url, sizeof url);
    snprintf(cfg, sizeof cfg, "%s/experiment.json", f.ckpt_root);
    write_config(cfg, url);
    assert_int_equal(run_qpo("submit", cfg, NULL, NULL, NULL, NULL, f.conninfo), 0);
    insert_d0(f.conn);
    assert_int_equal(run_qpo("scheduler", "--once", NULL, NULL, NULL, NULL, f.conninfo), 0);

    char *gpu_argv[] = {(char *)qpo_test_binary(),
                        "worker",
                        "--class",
                        "gpu",
                        "--backend",
                        "cpu",
                        "--name",
                        "gpu-1",
                        "--exit-when-idle",
                        "--poll",
                        "0.2",
                        "--db",
                        f.conninfo,
                        NULL};
    char *cpu_argv[] = {(char *)qpo_test_binary(),
                        "worker",
                        "--class",
                        "cpu",
                        "--name",
                        "cpu-1",
                        "--concurrency",
                        "4",
                        "--exit-when-idle",
                        "--poll",
                        "0.2",
                        "--db",
                        f.conninfo,
                        NULL};
    pid_t gpu = spawn(gpu_argv, f.ckpt_root, -1), cpu = spawn(cpu_argv, NULL, -1);
    assert_int_equal(qpo_test_wait_exit(gpu), 0);
    assert_int_equal(qpo_test_wait_exit(cpu), 0);
    kill(sim, SIGTERM);
    qpo_test_wait_exit(sim);
    assert_int_equal(run_qpo("scheduler", "--once", NULL, NULL, NULL, NULL, f.conninfo), 0);

    char *why = db_str(f.conn, "SELECT string_agg(kind || ' ' || state || ': ' || "
                               "coalesce(last_error, ''), E'\\n') FROM qpo.jobs WHERE state <> "
                               "'succeeded'");
    if (strcmp(why, "NULL"))
        fail_msg("unfinished jobs:\n%s", why);
    free(why);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.experiments WHERE state = 'done'"), 1);
    /* records: what the loop trained on; the held-out queries (hyper.select "heldout") apart. */
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoints WHERE records + "
                                   "(training->>'heldout_records')::int >= 60"),
                     2);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.generations WHERE purpose = "
                                   "'collect' AND loop = 1"),
                     20);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.generations WHERE purpose = 'test'"),
                     16);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.eval_scores WHERE source = 'qpo'"),
                     16);
    /* Loop 2 trained on D_0 plus exactly what merge(1) kept. */
    assert_int_equal(db_ll(f.conn, "SELECT (result->>'kept')::int FROM qpo.jobs WHERE kind = "
                                   "'merge'"),
                     db_ll(f.conn, "SELECT count(*) FROM qpo.run_records"));
    assert_int_equal(db_ll(f.conn, "SELECT records + (training->>'heldout_records')::int FROM "
                                   "qpo.checkpoints WHERE loop = 2"),
                     60 + db_ll(f.conn, "SELECT count(*) FROM qpo.run_records"));
    /* The training curves: one row per step (batches of 32), each epoch's mean the loss its
     * checkpoint recorded for the last epoch. */
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.train_metrics WHERE loop = 1"), 2 * 2);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.train_metrics WHERE loop = 2"),
                     db_ll(f.conn, "SELECT (records + 31) / 32 FROM qpo.checkpoints WHERE "
                                   "loop = 2"));
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoints c WHERE abs(final_loss "
                                   "- (SELECT avg(loss) FROM qpo.train_metrics m WHERE m.loop = "
                                   "c.loop AND m.epoch = c.epochs)) < 1e-6 * (1 + final_loss)"),
                     2);
    qpo_report_check(f.conn, f.conninfo, db_ll(f.conn, "SELECT id FROM qpo.experiments"),
                     f.ckpt_root);
    /* every gpu job says where it computed: this worker ran --backend cpu */
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.jobs WHERE kind IN ('train', "
                                   "'generate', 'evaluate-generate') AND result->>'device' IS "
                                   "DISTINCT FROM 'cpu'"),
                     0);
    tfx_teardown(&f);
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_experiment_end_to_end),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qpo_pgtest_stop(pg);
    return rc;
}
