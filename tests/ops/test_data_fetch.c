/* qpo data fetch through the binary, against a loopback HTTP server that serves
 * ../shared/data with faults (httpd.h): a good transfer lands every file with its bytes and a
 * second run fetches nothing; a wrong checksum, a 404 and a cut transfer each fail naming the
 * file and leave no file behind, and so does a fetch stopped by SIGTERM mid-transfer; --from DIR
 * checks the whole manifest against ../shared/data; and `qpo data import TASK` with no data folder
 * reads the fetch cache into PostgreSQL. Skips (with a message) when ../shared/data is absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "httpd.h"
#include "pgtest.h"

static char tmp[64];
static const char *shared;
static test_httpd *httpd;

static const char *tweet_files[] = {"train_text.txt", "train_labels.txt", "val_text.txt",
                                    "val_labels.txt", "test_text.txt",    "test_labels.txt",
                                    "mapping.txt"};

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = calloc(1, (size_t)len + 1);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    if (n)
        *n = got;
    return buf;
}

/* Starts qpo in cwd with env entries "NAME=VALUE" set ("NAME=" unsets), its stdout and stderr
 * into TMP/qpo.log. */
static pid_t spawn_qpo(const char *cwd, const char *const *env, char *const *args) {
    char log[128];
    snprintf(log, sizeof(log), "%s/qpo.log", tmp);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0 || chdir(cwd) < 0)
            _exit(127);
        for (; env && *env; env++) {
            char name[64];
            const char *eq = strchr(*env, '=');
            snprintf(name, sizeof(name), "%.*s", (int)(eq - *env), *env);
            if (eq[1])
                setenv(name, eq + 1, 1);
            else
                unsetenv(name);
        }
        char *argv[16] = {(char *)qpo_test_binary()};
        for (int i = 0; args[i] && i < 14; i++)
            argv[i + 1] = args[i];
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Runs qpo as spawn_qpo does; returns its exit code and its output in *out (free it). */
static int run_qpo(const char *cwd, const char *const *env, char *const *args, char **out) {
    pid_t pid = spawn_qpo(cwd, env, args);
    char log[128];
    snprintf(log, sizeof(log), "%s/qpo.log", tmp);
    int st;
    waitpid(pid, &st, 0);
    *out = slurp(log, NULL);
    print_message("%s", *out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Regular files under dir, recursively (a failed fetch must leave zero). */
static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0)
            n += S_ISDIR(st.st_mode) ? count_files(p) : 1;
    }
    closedir(d);
    return n;
}

static void assert_same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(na, nb);
    assert_memory_equal(x, y, na);
    free(x);
    free(y);
}

static void cache_path(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", tmp, name);
}

static int fetch(const char *cache, const char *from, const char *set, char **out) {
    char *args[] = {"data",       "fetch",   (char *)set,   "--from",
                    (char *)from, "--cache", (char *)cache, NULL};
    return run_qpo(tmp, NULL, args, out);
}

static void test_http_fetch_lands_verified_files_once(void **state) {
    (void)state;
    char cache[128], from[128], *out;
    cache_path("good", cache, sizeof(cache));
    snprintf(from, sizeof(from), "%s/ok", test_httpd_url(httpd));
    int before = test_httpd_requests(httpd);
    assert_int_equal(fetch(cache, from, "tweet_emotion", &out), 0);
    assert_non_null(strstr(out, "tweet_emotion: 7 files"));
    free(out);
    assert_int_equal(test_httpd_requests(httpd) - before, 7);
    for (size_t i = 0; i < sizeof(tweet_files) / sizeof(tweet_files[0]); i++) {
        char a[512], b[512];
        snprintf(a, sizeof(a), "%s/tweet_eval_emotion/%s", cache, tweet_files[i]);
        snprintf(b, sizeof(b), "%s/tweet_eval_emotion/%s", shared, tweet_files[i]);
        assert_same_file(a, b);
    }
    assert_int_equal(count_files(cache), 7);
    /* Present and matching: nothing is asked of the server again. */
    before = test_httpd_requests(httpd);
    assert_int_equal(fetch(cache, from, "tweet_emotion", &out), 0);
    assert_non_null(strstr(out, "0 fetched, 7 already there"));
    free(out);
    assert_int_equal(test_httpd_requests(httpd), before);
}

/* Each fault fails the first file, names it, and leaves the cache without a file. */
static void expect_fault(const char *mode, const char *message) {
    char cache[128], from[128], *out;
    snprintf(cache, sizeof(cache), "%s/%s", tmp, mode);
    snprintf(from, sizeof(from), "%s/%s", test_httpd_url(httpd), mode);
    assert_int_equal(fetch(cache, from, "tweet_emotion", &out), 1);
    assert_non_null(strstr(out, "tweet_eval_emotion/train_text.txt"));
    assert_non_null(strstr(out, message));
    free(out);
    assert_int_equal(count_files(cache), 0);
}

static void test_wrong_checksum_keeps_nothing(void **state) {
    (void)state;
    expect_fault("corrupt", "SHA-256 mismatch");
}

static void test_404_keeps_nothing(void **state) {
    (void)state;
    expect_fault("missing", "HTTP 404");
}

static void test_cut_transfer_keeps_nothing(void **state) {
    (void)state;
    expect_fault("cut", "failed after");
}

/* A `.part-` file in dir that has bytes: the download is under way. */
static bool partial_in(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        char p[1024];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        found = strstr(e->d_name, ".part-") && stat(p, &st) == 0 && st.st_size > 0;
    }
    closedir(d);
    return found;
}

/* Stopped mid-transfer (docker stop, Ctrl-C): the half-written file goes with the process. */
static void test_stopped_fetch_keeps_nothing(void **state) {
    (void)state;
    char cache[128], from[128], dir[256];
    cache_path("stall", cache, sizeof(cache));
    snprintf(from, sizeof(from), "%s/stall", test_httpd_url(httpd));
    snprintf(dir, sizeof(dir), "%s/tweet_eval_emotion", cache);
    char *args[] = {"data", "fetch", "tweet_emotion", "--from", from, "--cache", cache, NULL};
    pid_t pid = spawn_qpo(tmp, NULL, args);
    bool seen = false;
    for (double end = qpo_test_deadline(20); !seen && qpo_test_before(end);) {
        seen = partial_in(dir);
        if (!seen)
            usleep(20000);
    }
    assert_true(seen);
    assert_int_equal(kill(pid, SIGTERM), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGTERM);
    assert_int_equal(count_files(cache), 0);
}

/* The manifest's every size and SHA-256 against ../shared/data, and a corrupt cached file is
 * replaced rather than trusted. */
static void test_from_dir_checks_whole_manifest(void **state) {
    (void)state;
    char cache[128], path[256], *out;
    cache_path("all", cache, sizeof(cache));
    snprintf(path, sizeof(path), "%s/svamp", cache);
    assert_int_equal(mkdir(cache, 0755) == 0 && mkdir(path, 0755) == 0, 1);
    snprintf(path, sizeof(path), "%s/svamp/SVAMP.json", cache);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[]\n", f);
    fclose(f);
    assert_int_equal(fetch(cache, shared, "all", &out), 0);
    assert_non_null(strstr(out, "svamp: 2 files"));
    assert_non_null(strstr(out, "prompts: 169 files"));
    assert_non_null(strstr(out, "prompt-oirl: 1 files"));
    free(out);
    char want[256];
    snprintf(want, sizeof(want), "%s/svamp/SVAMP.json", shared);
    assert_same_file(path, want);
}

static void test_bad_usage(void **state) {
    (void)state;
    char *out;
    char *unknown[] = {"data", "fetch", "tweets", "--cache", tmp, NULL};
    assert_int_equal(run_qpo(tmp, NULL, unknown, &out), 2);
    assert_non_null(strstr(out, "unknown data set \"tweets\""));
    assert_non_null(strstr(out, "gpt2-bpe"));
    free(out);
    char *from[] = {"data", "fetch", "svamp", "--from", "/nonexistent", NULL};
    assert_int_equal(run_qpo(tmp, NULL, from, &out), 2);
    assert_non_null(strstr(out, "--from /nonexistent"));
    free(out);
}

/* With no --data, no $QPO_DATA_DIR and no ../shared/data beside the working folder, the
 * importer reads the fetch cache. */
static void test_import_reads_the_cache(void **state) {
    (void)state;
    char cache[128], work[128], *out;
    cache_path("good", cache, sizeof(cache));
    snprintf(work, sizeof(work), "%s/work", tmp);
    assert_int_equal(mkdir(work, 0755), 0);
    char from[128];
    snprintf(from, sizeof(from), "%s/ok", test_httpd_url(httpd));
    assert_int_equal(fetch(cache, from, "tweet_emotion", &out), 0);
    free(out);
    qpo_pgtest *pg = qpo_pgtest_start();
    char db[600], cache_env[200];
    snprintf(db, sizeof(db), "%s", qpo_pgtest_new_db(pg));
    snprintf(cache_env, sizeof(cache_env), "QPO_CACHE_DIR=%s", cache);
    const char *env[] = {cache_env, "QPO_DATA_DIR=", NULL};
    char *args[] = {"data", "import", "tweet_emotion", "--db", db, NULL};
    assert_int_equal(run_qpo(work, env, args, &out), 0);
    assert_non_null(strstr(out, cache));
    free(out);
    PGconn *conn = PQconnectdb(db);
    PGresult *res = PQexec(conn, "SELECT count(*) FROM qpo.task_items WHERE task = "
                                 "'tweet_emotion'");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(atoi(PQgetvalue(res, 0, 0)), 3257 + 374 + 1421);
    PQclear(res);
    PQfinish(conn);
    /* And with nothing to read: a usage error that says how to get the files. */
    snprintf(cache_env, sizeof(cache_env), "QPO_CACHE_DIR=%s/none", tmp);
    assert_int_equal(run_qpo(work, env, args, &out), 2);
    assert_non_null(strstr(out, "qpo data fetch tweet_emotion"));
    free(out);
    qpo_pgtest_stop(pg);
}

int main(void) {
    shared = qpo_test_shared_data();
    if (!shared) {
        printf("skipped: ../shared/data is absent (QPO_SHARED_DIR): nothing to serve\n");
        return 0;
    }
    snprintf(tmp, sizeof(tmp), "/tmp/qpo-fetch-XXXXXX");
    if (!mkdtemp(tmp) || chmod(tmp, 0711) < 0)
        return 1;
    httpd = test_httpd_start(shared);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_fetch_lands_verified_files_once),
        cmocka_unit_test(test_wrong_checksum_keeps_nothing),
        cmocka_unit_test(test_404_keeps_nothing),
        cmocka_unit_test(test_cut_transfer_keeps_nothing),
        cmocka_unit_test(test_stopped_fetch_keeps_nothing),
        cmocka_unit_test(test_from_dir_checks_whole_manifest),
        cmocka_unit_test(test_bad_usage),
        cmocka_unit_test(test_import_reads_the_cache),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    test_httpd_stop(httpd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
