/* The PostgreSQL checkpoint store (workers/trainer/ckpt_pg.c, blob_pg.c) against a real
 * server: a file streamed in and out in many chunks, epochs saved, pruned and cleared with
 * their large objects, a flipped byte and a missing artifact refused, a fenced-out save leaving
 * nothing, and a train job whose epochs and final weights live only in the database. Then
 * qpo prompt and qpo export through the binary on the runs that train job made (one per store:
 * training is most of this file's time, so the later tests share them), and last, the pg run's
 * weights corrupted: generate and export refuse them. */
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
#include <unistd.h>

#include "blob_pg.h"
#include "ckpt_store.h"
#include "db.h"
#include "pgtest.h"
#include "trainer_fixture.h"

static qpo_pgtest *pg;
/* Made by test_train_in_pg_matches_dir, used by the tests after it: loop 1 trained, with its
 * test prompts, checkpoints in each store. */
static tfx dir_run, pg_run;

static void write_random(const char *path, size_t n, uint32_t seed) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        fputc((int)(seed >> 24), f);
    }
    assert_int_equal(fclose(f), 0);
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

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void assert_same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(x, y, na);
    free(x), free(y);
}

/* 100003 bytes through 4096-byte writes and 3000-byte reads: both directions cross many chunk
 * boundaries, and neither divides the size. */
static void test_blob_round_trip_many_chunks(void **state) {
    (void)state;
    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    char src[512], dest[512], want[65];
    snprintf(src, sizeof src, "%s/in.bin", f.ckpt_root);
    snprintf(dest, sizeof dest, "%s/out.bin", f.ckpt_root);
    write_random(src, 100003, 7);
    qpo_err err = {0};
    int64_t bytes, got_bytes;
    assert_int_equal(qpo_sha256_file(src, want, &bytes, &err), 0);
    assert_int_equal(qpo_db_begin(f.conn, &err), 0);
    Oid oid;
    char sha[65];
    assert_int_equal(qpo_blob_put(f.conn, src, 4096, &oid, sha, &got_bytes, &err), 0);
    assert_string_equal(sha, want);
    assert_int_equal(got_bytes, 100003);
    assert_int_equal(qpo_blob_get(f.conn, oid, sha, got_bytes, dest, 3000, "test blob", &err), 0);
    assert_int_equal(qpo_db_commit(f.conn, &err), 0);
    assert_same_file(src, dest);
    /* An empty file is an object too. */
    write_random(src, 0, 1);
    assert_int_equal(qpo_db_begin(f.conn, &err), 0);
    assert_int_equal(qpo_blob_put(f.conn, src, 4096, &oid, sha, &got_bytes, &err), 0);
    assert_int_equal(got_bytes, 0);
    assert_int_equal(qpo_blob_get(f.conn, oid, sha, 0, dest, 3000, "empty blob", &err), 0);
    assert_int_equal(qpo_db_commit(f.conn, &err), 0);
    assert_same_file(src, dest);
    tfx_teardown(&f);
}

/* An epoch folder as qpo_ckpt_save_epoch hands it to the store: weights, state, the weights'
 * sha256 in info. Made under the loop's folder, as the trainer does. */
static qpo_epoch_info make_epoch(qpo_ckpt_store *s, int epoch, int best, char *src, size_t len) {
    snprintf(src, len, "%s/.tmp-test-%d", s->loop_dir, epoch);
    assert_int_equal(mkdir(src, 0755), 0);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/" QPO_POLICY_FILE, src);
    write_random(path, 20000 + (size_t)epoch, (uint32_t)epoch);
    qpo_epoch_info info = {.epoch = epoch,
                           .records = 40,
                           .loss = 1.0 / epoch,
                           .ce = 0.5,
                           .mse = 0.25,
                           .heldout_ce = -1,
                           .best_epoch = best,
                           .best_heldout_ce = -1};
    qpo_err err = {0};
    assert_int_equal(qpo_sha256_file(path, info.sha256, &info.bytes, &err), 0);
    snprintf(path, sizeof path, "%s/" QPO_STATE_FILE, src);
    write_random(path, 5000, (uint32_t)(100 + epoch));
    return info;
}

static void open_pg_store(tfx *f, qpo_ckpt_store *s) {
    qpo_err err = {0};
    assert_int_equal(
        qpo_ckpt_store_open(s, &qpo_ckpt_pg_ops, f->ckpt_root, f->conn, f->run_id, 1, &err), 0);
    s->chunk = 4096;
}

static void save(qpo_ckpt_store *s, int epoch, int best, qpo_epoch_info *info) {
    char src[PATH_MAX];
    *info = make_epoch(s, epoch, best, src, sizeof src);
    qpo_err err = {0};
    if (s->ops->save(s, src, info, &err)) {
        qpo_err_print(&err);
        fail_msg("saving epoch %d failed", epoch);
    }
    qpo_ckpt_remove_tree(src);
}

static long long large_objects(tfx *f) {
    return db_ll(f->conn, "SELECT count(*) FROM pg_largeobject_metadata");
}

/* Epochs 1..3 with epoch 1 the best: 2 is pruned with its objects, 1 and 3 stay; the newest is
 * 3 and its files come back as saved; clear drops everything but a published epoch. */
static void test_store_save_prune_fetch_clear(void **state) {
    (void)state;
    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    qpo_ckpt_store s;
    open_pg_store(&f, &s);
    qpo_epoch_info e[4];
    for (int k = 1; k <= 3; k++)
        save(&s, k, 1, &e[k]);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoint_epochs"), 2);
    char *epochs = db_str(f.conn, "SELECT string_agg(DISTINCT epoch::text, ',') FROM "
                                  "qpo.artifacts");
    assert_string_equal(epochs, "1,3");
    free(epochs);
    assert_int_equal(large_objects(&f), 4);

    qpo_err err = {0};
    qpo_epoch_info latest, one;
    assert_int_equal(s.ops->latest(&s, &latest, &err), 0);
    assert_int_equal(latest.epoch, 3);
    assert_string_equal(latest.sha256, e[3].sha256);
    assert_int_equal(s.ops->read(&s, 2, &one, &err), 1);
    assert_int_equal(s.ops->read(&s, 1, &one, &err), 0);
    assert_string_equal(one.sha256, e[1].sha256);

    char dir[PATH_MAX], path[PATH_MAX + 64];
    assert_int_equal(s.ops->fetch(&s, &latest, dir, sizeof dir, &err), 0);
    snprintf(path, sizeof path, "%s/" QPO_POLICY_FILE, dir);
    char sha[65];
    int64_t bytes;
    assert_int_equal(qpo_sha256_file(path, sha, &bytes, &err), 0);
    assert_string_equal(sha, e[3].sha256);
    assert_int_equal(bytes, 20003);
    snprintf(path, sizeof path, "%s/" QPO_STATE_FILE, dir);
    assert_true(exists(path));
    s.ops->release(&s, dir);
    assert_false(exists(dir));

    /* Saving an epoch another attempt saved first keeps the first and adds no objects. */
    save(&s, 3, 1, &one);
    assert_int_equal(large_objects(&f), 4);

    /* A published epoch is pinned: clear (a start-over) keeps it. */
    json_t *row = json_object();
    assert_int_equal(s.ops->publish(&s, 1, row, &err), 0);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO qpo.checkpoints (run_id, loop, path, state_path, sha256, bytes, epochs, "
             "records, final_loss, final_ce, final_mse, config, artifact_epoch) VALUES (%lld, 1, "
             "'%s', '%s', '%s', 20001, 1, 40, 1, 0.5, 0.25, '{}', 1)",
             (long long)f.run_id, json_string_value(json_object_get(row, "path")),
             json_string_value(json_object_get(row, "state_path")), e[1].sha256);
    db_ok(f.conn, sql);
    json_decref(row);
    assert_int_equal(s.ops->clear(&s, &err), 0);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoint_epochs"), 1);
    assert_int_equal(large_objects(&f), 2);
    /* The schema refuses a pg checkpoint without its epoch, and deleting the pinned epoch. */
    assert_true(qpo_db_exec(f.conn, "DELETE FROM qpo.checkpoint_epochs", &err) != 0);
    qpo_err_clear(&err);
    assert_true(qpo_db_exec(f.conn, "UPDATE qpo.checkpoints SET artifact_epoch = NULL", &err) != 0);
    qpo_err_clear(&err);
    db_ok(f.conn, "DELETE FROM qpo.checkpoints");
    assert_int_equal(s.ops->clear(&s, &err), 0);
    assert_int_equal(large_objects(&f), 0);
    tfx_teardown(&f);
}

/* A flipped byte in the stored weights: refused naming the artifact, nothing left on disk;
 * the state file missing from qpo.artifacts: refused naming it. */
static void test_store_refuses_corrupt_and_missing(void **state) {
    (void)state;
    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    qpo_ckpt_store s;
    open_pg_store(&f, &s);
    qpo_epoch_info info;
    save(&s, 1, 0, &info);
    db_ok(f.conn, "SELECT lo_put(oid, 12345, set_byte('\\x00'::bytea, 0, "
                  "get_byte(lo_get(oid, 12345, 1), 0) # 1)) FROM qpo.artifacts "
                  "WHERE name = 'policy.safetensors'");
    qpo_err err = {0};
    char dir[PATH_MAX];
    assert_int_equal(s.ops->fetch(&s, &info, dir, sizeof dir, &err), -1);
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    assert_non_null(strstr(err.msg, "epoch-1/policy.safetensors does not match its recorded "
                                    "sha256"));
    assert_non_null(strstr(err.detail, info.sha256));
    assert_false(exists(dir));

    char dest[PATH_MAX + 16], part[PATH_MAX + 32];
    snprintf(dest, sizeof dest, "%s/copy", f.ckpt_root);
    snprintf(part, sizeof part, "%s.part", dest);
    qpo_err_clear(&err);
    assert_int_equal(
        qpo_ckpt_pg_fetch_file(f.conn, f.run_id, 1, 1, QPO_POLICY_FILE, NULL, dest, 777, &err), -1);
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    assert_false(exists(dest));
    assert_false(exists(part));
    assert_int_equal(PQtransactionStatus(f.conn), PQTRANS_IDLE);

    db_ok(f.conn, "DELETE FROM qpo.artifacts WHERE name = 'policy.safetensors.state'");
    qpo_err_clear(&err);
    assert_int_equal(
        qpo_ckpt_pg_fetch_file(f.conn, f.run_id, 1, 1, QPO_STATE_FILE, NULL, dest, 0, &err), -1);
    assert_int_equal(err.code, QPO_EXIT_USAGE);
    assert_non_null(strstr(err.msg, "policy.safetensors.state is missing from qpo.artifacts"));
    assert_false(exists(dest));
    /* The deleted row took its large object with it. */
    assert_int_equal(large_objects(&f), 1);
    tfx_teardown(&f);
}

/* A save by a worker that no longer holds the job (another owner, or a later attempt) writes
 * nothing: no epoch row, no artifact, no large object. */
static void test_store_save_is_fenced(void **state) {
    (void)state;
    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), NULL);
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO qpo.jobs (kind, payload, run_id, state, attempt, lease_owner, "
             "lease_expires_at, started_at) VALUES ('train', '{}', %lld, 'running', 2, 'gpu-b', "
             "now() + interval '1 hour', now())",
             (long long)f.run_id);
    db_ok(f.conn, sql);
    qpo_ckpt_store s;
    open_pg_store(&f, &s);
    s.job_id = db_ll(f.conn, "SELECT max(id) FROM qpo.jobs");
    s.attempt = 1;
    s.owner = "gpu-a";
    char src[PATH_MAX];
    qpo_epoch_info info = make_epoch(&s, 1, 0, src, sizeof src);
    qpo_err err = {0};
    assert_int_equal(s.ops->save(&s, src, &info, &err), -1);
    assert_non_null(strstr(err.msg, "is no longer this worker's"));
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoint_epochs"), 0);
    assert_int_equal(large_objects(&f), 0);
    /* The owner of the current attempt saves. */
    s.attempt = 2;
    s.owner = "gpu-b";
    qpo_err_clear(&err);
    assert_int_equal(s.ops->save(&s, src, &info, &err), 0);
    assert_int_equal(db_ll(f.conn, "SELECT count(*) FROM qpo.checkpoint_epochs WHERE attempt = 2 "
                                   "AND job_id IS NOT NULL"),
                     1);
    assert_int_equal(large_objects(&f), 2);
    qpo_ckpt_remove_tree(src);
    tfx_teardown(&f);
}

/* The train job with artifacts in pg (stopped after epoch 1 and resumed, as a retry would)
 * ends on the dir store's bytes, leaves no file on the worker's disk, and evaluate-generate
 * reads the weights back from the database into the same prompts. */
static void test_train_in_pg_matches_dir(void **state) {
    (void)state;
    tfx_opts o = {.epochs_first = 2, .with_d0 = 1};
    tfx *d = &dir_run, *p = &pg_run;
    tfx_setup(d, qpo_pgtest_new_db(pg), &o);
    tfx_setup(p, qpo_pgtest_new_db(pg), &o);
    d->artifacts = "dir";
    p->artifacts = "pg";
    char payload[256];
    tfx_payload(d, "train", 1, payload, sizeof payload);
    qpo_err err = {0};
    assert_int_equal(tfx_run(d, qpo_trainer_job_train, payload, 0, NULL, &err), QPO_JOB_OK);
    assert_int_equal(tfx_run(p, qpo_trainer_job_train, payload, 1, NULL, &err), QPO_JOB_CANCELLED);
    assert_int_equal(tfx_run(p, qpo_trainer_job_train, payload, 0, NULL, &err), QPO_JOB_OK);
    char *a = db_str(d->conn, "SELECT sha256 || ' ' || bytes FROM qpo.checkpoints");
    char *b = db_str(p->conn, "SELECT sha256 || ' ' || bytes FROM qpo.checkpoints");
    assert_string_equal(a, b);
    free(a), free(b);
    a = db_str(p->conn, "SELECT path || ' ' || artifact_epoch || ' ' || (training->>'artifacts') "
                        "|| ' ' || (training->>'resumed_from_epoch') FROM qpo.checkpoints");
    char want[256];
    snprintf(want, sizeof want, "pg:run-%lld/loop-1/epoch-000002/policy.safetensors 2 pg 1",
             (long long)p->run_id);
    assert_string_equal(a, want);
    free(a);
    assert_int_equal(tfx_count_files(p->ckpt_root, true), 0);
    assert_int_equal(db_ll(p->conn, "SELECT count(*) FROM qpo.checkpoint_epochs"), 1);

    char gen[256];
    tfx_payload(p, "evaluate-generate", 1, gen, sizeof gen);
    assert_int_equal(tfx_run(d, qpo_trainer_job_evaluate_generate, gen, 0, NULL, &err), QPO_JOB_OK);
    assert_int_equal(tfx_run(p, qpo_trainer_job_evaluate_generate, gen, 0, NULL, &err), QPO_JOB_OK);
    static const char prompts[] = "SELECT string_agg(prompt, '|' ORDER BY item_id) FROM "
                                  "qpo.generations";
    a = db_str(d->conn, prompts), b = db_str(p->conn, prompts);
    assert_string_equal(a, b);
    free(a), free(b);
}

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

/* The pg run's weights changed in the database after they were recorded: evaluate-generate
 * fails (fatal, naming them) instead of loading them, and the export stops, leaving no folder. */
static void test_corrupt_weights_refused(void **state) {
    (void)state;
    tfx f = pg_run;
    db_ok(f.conn, "SELECT lo_put(oid, 100, set_byte('\\x00'::bytea, 0, "
                  "get_byte(lo_get(oid, 100, 1), 0) # 128)) FROM qpo.artifacts "
                  "WHERE name = 'policy.safetensors'");
    char gen[256];
    qpo_err err = {0};
    tfx_payload(&f, "evaluate-generate", 1, gen, sizeof gen);
    db_ok(f.conn, "DELETE FROM qpo.generations");
    assert_int_equal(tfx_run(&f, qpo_trainer_job_evaluate_generate, gen, 0, NULL, &err),
                     QPO_JOB_FATAL);
    assert_non_null(strstr(err.msg, "is unusable"));
    assert_non_null(strstr(err.msg, "does not match its recorded sha256"));

    char args[PATH_MAX + 64], buf[4096], path[PATH_MAX + 16];
    snprintf(args, sizeof args, "export 1 --loop 1 --out '%s/bad'", f.ckpt_root);
    assert_int_equal(qpo_run(&f, args, buf, sizeof buf), 2);
    snprintf(path, sizeof path, "%s/bad", f.ckpt_root);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/bad.tmp", f.ckpt_root);
    assert_false(exists(path));
}

static int teardown(void **state) {
    (void)state;
    if (dir_run.conn)
        tfx_teardown(&dir_run);
    if (pg_run.conn)
        tfx_teardown(&pg_run);
    return 0;
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blob_round_trip_many_chunks),
        cmocka_unit_test(test_store_save_prune_fetch_clear),
        cmocka_unit_test(test_store_refuses_corrupt_and_missing),
        cmocka_unit_test(test_store_save_is_fenced),
        cmocka_unit_test(test_train_in_pg_matches_dir),
        cmocka_unit_test(test_prompt_matches_evaluate_generate),
        cmocka_unit_test(test_export_dir_store),
        cmocka_unit_test(test_export_pg_store),
        cmocka_unit_test(test_corrupt_weights_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, teardown);
    qpo_pgtest_stop(pg);
    return rc;
}
