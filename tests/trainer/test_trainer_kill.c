/* A `qpo worker --class gpu` process SIGKILLed in the middle of a train job: the retry (a
 * second worker, once the lease expired) resumes from the last complete epoch and ends on
 * exactly the bytes of a run that was never interrupted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_store.h"
#include "pgtest.h"
#include "trainer_fixture.h"

#define EPOCHS 6

static qpo_pgtest *pg;
/* The calm run both tests compare with: one uninterrupted attempt in this process. */
static tfx calm;
static char *calm_path;

/* A gpu worker whose checkpoints go under ROOT, kept there (dir) or in PostgreSQL (pg). */
static pid_t worker_start_at(const tfx *f, const char *name, const char *root,
                             const char *artifacts) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("QPO_CHECKPOINT_DIR", root, 1);
        execl(qpo_test_binary(), qpo_test_binary(), "worker", "--class", "gpu", "--kinds", "train",
              "--name", name, "--lease", "1", "--poll", "0.2", "--backoff-ms", "10,10", "--db",
              f->conninfo, "--artifacts", artifacts, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static pid_t worker_start(const tfx *f, const char *name) {
    return worker_start_at(f, name, f->ckpt_root, "dir");
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*n ? *n : 1);
    assert_int_equal(fread(buf, 1, *n, f), *n);
    fclose(f);
    return buf;
}

/* `qpo status --json` while the killed attempt still holds its lease: the job is running
 * and its curve is in qpo.train_metrics, so the run shows its newest step. */
static void check_status_shows_training(tfx *f) {
    char cmd[2048], buf[8192];
    snprintf(cmd, sizeof cmd, "'%s' status --json --db '%s'", qpo_test_binary(), f->conninfo);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    assert_int_equal(pclose(p), 0);
    char *tr = strstr(buf, "\"training\": {");
    if (!tr)
        fail_msg("no training in qpo status --json:\n%s", buf);
    assert_non_null(strstr(tr, "\"tokens_per_s\""));
    long long step = db_ll(f->conn, "SELECT max(step) FROM qpo.train_metrics");
    char want[64];
    snprintf(want, sizeof want, "\"step\": %lld", step);
    assert_true(step >= 2);
    assert_non_null(strstr(tr, want));
}

static void test_sigkill_mid_training_resumes_bitwise(void **state) {
    (void)state;
    tfx_opts opts = {.epochs_first = EPOCHS, .d0_queries = 24, .with_d0 = 1};
    char payload[256];
    tfx_payload(&calm, "train", 1, payload, sizeof payload);

    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), &opts);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO qpo.jobs (kind, payload, run_id, max_attempts) VALUES ('train', '%s', "
             "%lld, 3)",
             payload, (long long)f.run_id);
    db_ok(f.conn, sql);
    char epoch2[PATH_MAX], final[PATH_MAX];
    snprintf(epoch2, sizeof epoch2, "%s/run-%lld/loop-1/epoch-000002", f.ckpt_root,
             (long long)f.run_id);
    snprintf(final, sizeof final, "%s/run-%lld/loop-1/policy.safetensors", f.ckpt_root,
             (long long)f.run_id);

    pid_t w1 = worker_start(&f, "gpu-killed");
    /* Kill once epoch 2 is on disk: the worker is then inside epoch 3. */
    for (double end = qpo_test_deadline(120); !exists(epoch2) && qpo_test_before(end);)
        usleep(2000);
    assert_true(exists(epoch2));
    assert_int_equal(kill(w1, SIGKILL), 0);
    assert_int_equal(qpo_test_wait_exit(w1), 128 + SIGKILL);
    assert_false(exists(final));
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoints"), 0);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.jobs WHERE state = 'running'"), 1);
    check_status_shows_training(&f);

    /* The second worker reaps the expired lease and runs attempt 2. */
    pid_t w2 = worker_start(&f, "gpu-retry");
    for (double end = qpo_test_deadline(120);
         db_ll(f.conn, "SELECT count(*) FROM qpo.jobs WHERE state IN ('succeeded', 'dead')") == 0 &&
         qpo_test_before(end);)
        usleep(100000);
    assert_int_equal(kill(w2, SIGTERM), 0);
    assert_int_equal(qpo_test_wait_exit(w2), 0);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.jobs WHERE state = 'succeeded' "
                                   "AND attempt = 2"),
                     1);
    long long resumed = db_ll(f.conn, "SELECT (result->>'resumed_from_epoch')::int FROM qpo.jobs");
    assert_true(resumed >= 2 && resumed < EPOCHS);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoints WHERE job_id = 1 AND "
                                   "(training->>'resumed_from_epoch')::int >= 2"),
                     1);

    /* Nothing half-written is left: the last epoch's folder and the final weights. */
    char loop_dir[PATH_MAX];
    snprintf(loop_dir, sizeof loop_dir, "%s/run-%lld/loop-1", f.ckpt_root, (long long)f.run_id);
    DIR *d = opendir(loop_dir);
    assert_non_null(d);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            entries++;
            if (strcmp(e->d_name, "epoch-000006") && strcmp(e->d_name, "policy.safetensors"))
                fail_msg("unexpected %s in %s", e->d_name, loop_dir);
        }
    }
    closedir(d);
    assert_int_equal(entries, 2);

    size_t na, nb;
    unsigned char *a = slurp(calm_path, &na), *b = slurp(final, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    char *sa = db_str(calm.conn, "SELECT sha256 || final_loss FROM qpo.checkpoints");
    char *sb = db_str(f.conn, "SELECT sha256 || final_loss FROM qpo.checkpoints");
    assert_string_equal(sa, sb);
    /* The killed attempt's curve and the retry's are one: each step once, with the calm run's
     * values, both attempts having written some of them. */
    static const char curve[] = "SELECT string_agg(step || ':' || epoch || ':' || loss || ':' "
                                "|| grad_norm, ',' ORDER BY step) FROM qpo.train_metrics";
    char *ca = db_str(calm.conn, curve), *cb = db_str(f.conn, curve);
    assert_string_equal(ca, cb);
    assert_int_equal(db_ll(f.conn, "SELECT count(DISTINCT attempt) FROM qpo.train_metrics"), 2);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) - count(DISTINCT step) FROM "
                                   "qpo.train_metrics"),
                     0);
    free(ca), free(cb);
    free(a), free(b), free(sa), free(sb);
    tfx_teardown(&f);
}

/* Two "hosts" that share only PostgreSQL: two gpu workers with separate, empty checkpoint
 * folders and --artifacts pg. The one holding the train job is SIGKILLed once epoch 2 is in
 * the database; the other, already running, reaps the lease, resumes from epoch 2 read out of
 * PostgreSQL, and ends on the weights of a run that was never interrupted. No folder keeps an
 * epoch, and every large object belongs to a qpo.artifacts row. */
static void test_two_hosts_share_only_postgres(void **state) {
    (void)state;
#ifdef QPO_TEST_SANITIZE
    fprintf(stderr, "skipped under ASan: test_artifacts_pg runs the pg store's code there\n");
    skip();
#endif
    tfx_opts opts = {.epochs_first = EPOCHS, .d0_queries = 24, .with_d0 = 1};
    char payload[256];
    tfx_payload(&calm, "train", 1, payload, sizeof payload);
    qpo_err err = {0};

    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), &opts);
    char host_a[PATH_MAX], host_b[PATH_MAX], sql[512];
    snprintf(host_a, sizeof host_a, "%s/host-a", f.ckpt_root);
    snprintf(host_b, sizeof host_b, "%s/host-b", f.ckpt_root);
    assert_int_equal(mkdir(host_a, 0755), 0);
    assert_int_equal(mkdir(host_b, 0755), 0);
    snprintf(sql, sizeof sql,
             "INSERT INTO qpo.jobs (kind, payload, run_id, max_attempts) VALUES ('train', '%s', "
             "%lld, 3)",
             payload, (long long)f.run_id);
    db_ok(f.conn, sql);
    pid_t w[2] = {worker_start_at(&f, "host-a", host_a, "pg"),
                  worker_start_at(&f, "host-b", host_b, "pg")};
    for (double end = qpo_test_deadline(120);
         db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoint_epochs WHERE epoch >= 2") == 0 &&
         qpo_test_before(end);)
        usleep(2000);
    char *owner = db_str(f.conn, "SELECT lease_owner FROM qpo.jobs WHERE state = 'running'");
    int victim = !strcmp(owner, "host-b");
    assert_true(victim || !strcmp(owner, "host-a"));
    assert_int_equal(kill(w[victim], SIGKILL), 0);
    assert_int_equal(qpo_test_wait_exit(w[victim]), 128 + SIGKILL);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoints"), 0);

    for (double end = qpo_test_deadline(120);
         db_ll(f.conn, "SELECT count(*) FROM qpo.jobs WHERE state IN ('succeeded', 'dead')") == 0 &&
         qpo_test_before(end);)
        usleep(100000);
    assert_int_equal(kill(w[!victim], SIGTERM), 0);
    assert_int_equal(qpo_test_wait_exit(w[!victim]), 0);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM qpo.jobs WHERE state = 'succeeded' AND attempt = 2 AND "
             "(result->>'resumed_from_epoch')::int >= 2 AND (SELECT worker FROM qpo.job_events "
             "e WHERE e.job_id = jobs.id AND e.to_state = 'running' AND e.attempt = 2) = '%s'",
             victim ? "host-a" : "host-b");
    if (db_ll(f.conn, sql) != 1) {
        char *ev = db_str(f.conn, "SELECT string_agg(to_state || ':' || coalesce(worker, ''), ' ') "
                                  "FROM qpo.job_events");
        fail_msg("the survivor did not resume and finish the job: %s", ev);
    }

    /* The final weights, read back out of PostgreSQL, are the calm run's bytes. */
    char final[PATH_MAX + 16];
    snprintf(final, sizeof final, "%s/final.safetensors", f.ckpt_root);
    long long epoch = db_ll(f.conn, "SELECT artifact_epoch FROM qpo.checkpoints");
    char *sha = db_str(f.conn, "SELECT sha256 FROM qpo.checkpoints");
    assert_int_equal(qpo_ckpt_pg_fetch_file(f.conn, f.run_id, 1, (int)epoch, "policy.safetensors",
                                            sha, final, 0, &err),
                     0);
    size_t na, nb;
    unsigned char *a = slurp(calm_path, &na), *b = slurp(final, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    char *sa = db_str(calm.conn, "SELECT sha256 || final_loss FROM qpo.checkpoints");
    char *sb = db_str(f.conn, "SELECT sha256 || final_loss FROM qpo.checkpoints");
    assert_string_equal(sa, sb);
    /* The survivor's folder keeps nothing; the victim's at most the scratch copy it was killed
     * with (removed when a worker next opens that loop there), never an epoch. */
    assert_int_equal(tfx_count_files(victim ? host_a : host_b, true), 0);
    assert_int_equal(tfx_count_files(victim ? host_b : host_a, false), 0);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM pg_largeobject_metadata m WHERE NOT "
                                   "EXISTS (SELECT 1 FROM qpo.artifacts a WHERE a.oid = m.oid)"),
                     0);
    free(a), free(b), free(sa), free(sb), free(sha), free(owner);
    tfx_teardown(&f);
}

static int calm_setup(void **state) {
    (void)state;
    tfx_opts opts = {.epochs_first = EPOCHS, .d0_queries = 24, .with_d0 = 1};
    tfx_setup(&calm, qpo_pgtest_new_db(pg), &opts);
    char payload[256];
    tfx_payload(&calm, "train", 1, payload, sizeof payload);
    qpo_err err = {0};
    assert_int_equal(tfx_run(&calm, qpo_trainer_job_train, payload, 0, NULL, &err), QPO_JOB_OK);
    calm_path = db_str(calm.conn, "SELECT path FROM qpo.checkpoints WHERE loop = 1");
    return 0;
}

static int calm_teardown(void **state) {
    (void)state;
    free(calm_path);
    tfx_teardown(&calm);
    return 0;
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_mid_training_resumes_bitwise),
        cmocka_unit_test(test_two_hosts_share_only_postgres),
    };
    int rc = cmocka_run_group_tests(tests, calm_setup, calm_teardown);
    qpo_pgtest_stop(pg);
    return rc;
}
