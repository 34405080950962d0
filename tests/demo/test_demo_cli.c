/* qpo demo's edges through the binary: a config it cannot read is refused before anything is
 * made; a config the scheduler refuses fails the demo with submit's error; Ctrl-C stops the
 * children and removes the throwaway cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <libpq-fe.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo_fixture.h"
#include "pgtest.h"

static char tmp[64];

static int setup(void **state) {
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/qpo-demo-cli-XXXXXX");
    /* As root the cluster runs as postgres, which must reach the folders under tmp. */
    return mkdtemp(tmp) && chmod(tmp, 0711) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_unreadable_config_makes_nothing(void **state) {
    (void)state;
    char out[128], cfg[128], log[128];
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(cfg, sizeof(cfg), "%s/broken.json", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("{\"name\": \"x\",\n \"tasks\": [\n", f);
    fclose(f);
    char *args[] = {"--config", cfg, "--out", out, NULL};
    assert_int_equal(demo_wait_exit(demo_start(args, log)), 2);
    char *text = demo_slurp(log);
    assert_non_null(strstr(text, cfg)); /* names the file and line */
    assert_non_null(strstr(text, ":3:"));
    free(text);
    struct stat st;
    assert_int_equal(stat(out, &st), -1);
}

/* The simulators' start-up limit from the environment: refused before anything is made. */
static void test_bad_sim_start_limit_makes_nothing(void **state) {
    (void)state;
    char out[128], log[128];
    snprintf(out, sizeof(out), "%s/out-limit", tmp);
    snprintf(log, sizeof(log), "%s/log-limit", tmp);
    char *args[] = {"--out", out, NULL};
    const char *bad[] = {"abc", "0", "10s", "-5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("QPO_DEMO_SIM_START_S", bad[i], 1);
        pid_t pid = fork();
        if (pid == 0) {
            /* demo_start sets the variable to the scaled limit: exec the demo directly. */
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            execl(qpo_test_binary(), qpo_test_binary(), "demo", args[0], args[1], (char *)NULL);
            _exit(127);
        }
        unsetenv("QPO_DEMO_SIM_START_S");
        assert_int_equal(demo_wait_exit(pid), 2);
        char *text = demo_slurp(log);
        assert_non_null(strstr(text, "QPO_DEMO_SIM_START_S"));
        assert_non_null(strstr(text, bad[i]));
        free(text);
        struct stat st;
        assert_int_equal(stat(out, &st), -1);
    }
}

static void test_refused_config_fails_with_submits_error(void **state) {
    (void)state;
    qpo_pgtest *pg = qpo_pgtest_start();
    char db[600], out[128], cfg[128], log[128];
    snprintf(db, sizeof(db), "%s", qpo_pgtest_new_db(pg));
    snprintf(out, sizeof(out), "%s/out2", tmp);
    snprintf(cfg, sizeof(cfg), "%s/typo.json", tmp);
    snprintf(log, sizeof(log), "%s/log2", tmp);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    /* "seed" for "seeds": unknown keys are errors, and the demo must pass that on. A task
     * with no data and no --data folder would stop it earlier, so give it items. */
    fputs("{\"name\": \"typo\", \"tasks\": [\"tweet_emotion\"], \"settings\": [\"zero_shot\"],\n"
          " \"seed\": [0], \"targets\": [{\"name\": \"sim\", \"base_url\": \"http://x/v1\",\n"
          " \"model\": \"m\"}], \"d0\": {\"source\": \"build\"}}\n",
          f);
    fclose(f);
    PGconn *conn = PQconnectdb(db);
    PGresult *res =
        PQexec(conn, "INSERT INTO qpo.task_items (task, split, upstream_split, "
                     "upstream_index, item_id, query, fields, label) VALUES "
                     "('tweet_emotion', 'test', 'test', 0, 0, 'hi', '{\"text\": \"hi\"}', 0)");
    bool have_item = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    char *args[] = {"--db", db, "--config", cfg, "--out", out, "--data", tmp, NULL};
    int rc = demo_wait_exit(demo_start(args, log));
    char *text = demo_slurp(log);
    if (!have_item)
        print_message("could not insert a task item (schema changed?):\n%s\n", text);
    assert_true(have_item);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(text, "qpo submit"));
    assert_non_null(strstr(text, "seed"));
    free(text);
    res = PQexec(conn, "SELECT count(*) FROM qpo.experiments");
    assert_string_equal(PQgetvalue(res, 0, 0), "0");
    PQclear(res);
    PQfinish(conn);
    qpo_pgtest_stop(pg);
}

static bool alive(pid_t pid) {
    return kill(pid, 0) == 0 || errno != ESRCH;
}

static size_t child_pids(const char *log, pid_t *pids, size_t max) {
    char *text = demo_slurp(log);
    size_t n = 0;
    for (char *p = text; n < max && (p = strstr(p, " pid ")); p += 5)
        pids[n++] = (pid_t)atol(p + 5);
    free(text);
    return n;
}

static bool any_cluster_dir(const char *out) {
    DIR *d = opendir(out);
    bool found = false;
    struct dirent *e;
    while (d && (e = readdir(d)))
        found |= strncmp(e->d_name, "pg-", 3) == 0;
    if (d)
        closedir(d);
    return found;
}

static bool exited(pid_t pid) {
    int status;
    return waitpid(pid, &status, WNOHANG) == pid;
}

static void test_ctrl_c_stops_children_and_cluster(void **state) {
    (void)state;
    const char *data = qpo_test_shared_data();
    if (!data) {
        print_message("skipped: ../shared/data is absent (the demo imports TweetEval from it)\n");
        skip();
    }
    char out[128], log[128];
    snprintf(out, sizeof(out), "%s/out3", tmp);
    snprintf(log, sizeof(log), "%s/log3", tmp);
    char *args[] = {"--out", out, "--data", (char *)data, NULL};
    pid_t pid = demo_start(args, log);
    bool waiting = false;
    for (double end = qpo_test_deadline(300); !waiting && !exited(pid) && qpo_test_before(end);) {
        char *text = demo_slurp(log);
        waiting = strstr(text, "waiting for experiment") != NULL;
        free(text);
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    if (!waiting) {
        char *text = demo_slurp(log);
        print_message("%s\n", text);
        free(text);
    }
    assert_true(waiting);
    assert_true(any_cluster_dir(out));
    pid_t kids[8];
    size_t n = child_pids(log, kids, 8);
    assert_int_equal(n, 3); /* scheduler, cpu worker, gpu worker */
    kill(pid, SIGINT);
    assert_int_equal(demo_wait_exit(pid), 1);
    for (size_t i = 0; i < n; i++)
        assert_false(alive(kids[i]));
    assert_false(any_cluster_dir(out));
    char *text = demo_slurp(log);
    assert_non_null(strstr(text, "interrupted"));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unreadable_config_makes_nothing),
        cmocka_unit_test(test_bad_sim_start_limit_makes_nothing),
        cmocka_unit_test(test_refused_config_fails_with_submits_error),
        cmocka_unit_test(test_ctrl_c_stops_children_and_cluster),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
