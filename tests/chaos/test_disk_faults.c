/* A disk that refuses a checkpoint: the train job fails cleanly (a retryable failure naming
 * the file and the OS error, no checkpoint row, nothing half-written left in the loop's folder),
 * the previous loop's checkpoint stays valid (its file still hashes to its row's SHA-256), and a
 * retry once there is room ends on the bytes of a run that never failed.
 *
 * Two ways to run out of disk: RLIMIT_FSIZE (EFBIG: works as any user) and, where this process
 * may mount (root), a real tmpfs shrunk to what it already holds (ENOSPC). The jobs run in this
 * process against a real PostgreSQL (tests/trainer's fixture). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "pgtest.h"
#include "trainer_fixture.h"
#include "trainer_internal.h"

static qpo_pgtest *pg;

static const tfx_opts opts = {.epochs_first = 2, .with_d0 = 1};

static char *checkpoint_col(tfx *f, const char *col, int loop) {
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT %s FROM qpo.checkpoints WHERE run_id = %lld AND loop = %d",
             col, (long long)f->run_id, loop);
    return db_str(f->conn, sql);
}

static qpo_job_status train(tfx *f, int loop, qpo_err *err) {
    char payload[256];
    tfx_payload(f, "train", loop, payload, sizeof payload);
    return tfx_run(f, qpo_trainer_job_train, payload, 0, NULL, err);
}

static void train_ok(tfx *f, int loop) {
    qpo_err err = {0};
    if (train(f, loop, &err) != QPO_JOB_OK) {
        qpo_err_print(&err);
        fail_msg("train loop %d failed", loop);
    }
}

/* The loop-2 checkpoint's SHA-256 of a run that never failed. */
static char *calm_loop2_sha(void) {
    tfx calm;
    tfx_setup(&calm, qpo_pgtest_new_db(pg), &opts);
    train_ok(&calm, 1);
    train_ok(&calm, 2);
    char *sha = checkpoint_col(&calm, "sha256", 2);
    tfx_teardown(&calm);
    return sha;
}

/* Nothing of loop 2 may be left: no epoch folder, no temporary, no final weights. */
static void assert_loop_dir_empty(tfx *f, int loop) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/run-%lld/loop-%d", f->ckpt_root, (long long)f->run_id, loop);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            fail_msg("%s left in %s after the failed checkpoint", e->d_name, dir);
    closedir(d);
}

/* Loop 2 fails to save, for the reason `want` (an strerror text); then loop 1 is checked. */
static void expect_clean_failure(tfx *f, const char *want) {
    qpo_err err = {0};
    qpo_job_status st = train(f, 2, &err);
    char all[2400];
    snprintf(all, sizeof all, "%s | %s | %s", err.msg, err.detail, err.hint);
    fprintf(stderr, "disk fault: %s\n", all);
    if (st != QPO_JOB_RETRY || !strstr(all, "cannot save the epoch 1 checkpoint") ||
        !strstr(all, want) || !strstr(all, f->ckpt_root) || !strstr(all, "free space"))
        fail_msg("status %d, error \"%s\": expected a retryable failure naming the file and "
                 "\"%s\"",
                 (int)st, all, want);
    assert_int_equal(db_ll(f->conn, "SELECT count(*) FROM qpo.checkpoints WHERE loop = 2"), 0);
    assert_loop_dir_empty(f, 2);
    /* The previous checkpoint is intact: its file still hashes to what its row says. */
    char *path = checkpoint_col(f, "path", 1), *sha = checkpoint_col(f, "sha256", 1);
    char disk[65];
    int64_t bytes = 0;
    qpo_err herr = {0};
    assert_int_equal(qpo_sha256_file(path, disk, &bytes, &herr), 0);
    assert_string_equal(disk, sha);
    free(path);
    free(sha);
}

static char *want_sha; /* calm_loop2_sha(), once for both tests */

static void test_file_size_limit_during_checkpoint(void **state) {
    (void)state;
    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), &opts);
    train_ok(&f, 1);

    /* Writes past 4 KiB fail with EFBIG instead of killing the process with SIGXFSZ. */
    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    expect_clean_failure(&f, strerror(EFBIG));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);

    train_ok(&f, 2);
    char *sha = checkpoint_col(&f, "sha256", 2);
    assert_string_equal(sha, want_sha);
    free(sha);
    tfx_teardown(&f);
}

static unsigned long long used_bytes(const char *dir) {
    struct statvfs s;
    assert_int_equal(statvfs(dir, &s), 0);
    return (unsigned long long)(s.f_blocks - s.f_bfree) * s.f_frsize;
}

static void test_full_disk_during_checkpoint(void **state) {
    (void)state;
    tfx f;
    tfx_setup(&f, qpo_pgtest_new_db(pg), &opts);
    if (mount("tmpfs", f.ckpt_root, "tmpfs", 0, "size=64m") != 0) {
        print_message("skipped: cannot mount a tmpfs here (%s; needs root): the file size limit "
                      "case covers the failure path\n",
                      strerror(errno));
        tfx_teardown(&f);
        skip();
    }
    train_ok(&f, 1);
    /* Shrink the disk to what it holds, plus less than one checkpoint. */
    char opt[64];
    snprintf(opt, sizeof opt, "size=%llu", used_bytes(f.ckpt_root) + 8192);
    assert_int_equal(mount("tmpfs", f.ckpt_root, "tmpfs", MS_REMOUNT, opt), 0);
    expect_clean_failure(&f, strerror(ENOSPC));
    assert_int_equal(mount("tmpfs", f.ckpt_root, "tmpfs", MS_REMOUNT, "size=64m"), 0);
    train_ok(&f, 2);
    char *sha = checkpoint_col(&f, "sha256", 2);
    assert_string_equal(sha, want_sha);
    free(sha);
    assert_int_equal(umount(f.ckpt_root), 0);
    tfx_teardown(&f);
}

static int calm_setup(void **state) {
    (void)state;
    want_sha = calm_loop2_sha();
    return 0;
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_size_limit_during_checkpoint),
        cmocka_unit_test(test_full_disk_during_checkpoint),
    };
    int rc = cmocka_run_group_tests(tests, calm_setup, NULL);
    free(want_sha);
    qpo_pgtest_stop(pg);
    return rc;
}
