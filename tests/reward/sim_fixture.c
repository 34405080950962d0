/* See sim_fixture.h. */
#include "sim_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"

/* Children still running when a test fails: killed by fixture_kill_children(), since a
 * simulator holding a connection would keep the cluster from stopping. */
static pid_t children[64];
static int n_children;

static void track(pid_t pid) {
    if (n_children < 64) {
        children[n_children++] = pid;
    }
}

static void untrack(pid_t pid) {
    for (int i = 0; i < n_children; i++) {
        if (children[i] == pid) {
            children[i] = children[--n_children];
            return;
        }
    }
}

void fixture_kill_children(void) {
    while (n_children > 0) {
        pid_t pid = children[--n_children];
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* In the child: die with the test program, whatever happens to it. */
static void die_with_parent(void) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

void db_exec_ok(PGconn *conn, const char *sql) {
    qpo_err err = {0};
    if (qpo_db_exec(conn, sql, &err) != 0) {
        qpo_err_print(&err);
        fail_msg("SQL failed: %.200s", sql);
    }
}

char *db_scalar(PGconn *conn, const char *sql) {
    qpo_err err = {0};
    PGresult *res = qpo_db_query(conn, sql, 0, NULL, &err);
    if (!res) {
        qpo_err_print(&err);
        fail_msg("SQL failed: %.200s", sql);
    }
    char *v =
        strdup(PQntuples(res) == 0 || PQgetisnull(res, 0, 0) ? "NULL" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

long long db_count(PGconn *conn, const char *sql) {
    char *v = db_scalar(conn, sql);
    long long n = atoll(v);
    free(v);
    return n;
}

void sim_start(sim_proc *sim, const char *conninfo, const char *flags) {
    char *argv[40];
    int argc = 0;
    char *copy = strdup(flags ? flags : "");
    argv[argc++] = (char *)qpo_test_binary();
    argv[argc++] = "sim-llm";
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--db";
    argv[argc++] = (char *)conninfo;
    for (char *tok = strtok(copy, " "); tok && argc < 38; tok = strtok(NULL, " ")) {
        argv[argc++] = tok;
    }
    argv[argc] = NULL;
    int out[2];
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        die_with_parent();
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    free(copy);
    track(pid);
    FILE *f = fdopen(out[0], "r");
    char line[256] = "";
    /* The simulator prints its base address once it listens; EOF means it died. */
    if (!fgets(line, sizeof line, f)) {
        fail_msg("qpo sim-llm exited before it was ready (is it built into %s?)",
                 qpo_test_binary());
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    assert_true(strncmp(line, "http://", 7) == 0);
    snprintf(sim->base_url, sizeof sim->base_url, "%s", line);
    sim->pid = pid;
}

pid_t worker_start(const char *conninfo, const char *name, const char *flags) {
    char *argv[40];
    int argc = 0;
    char *copy = strdup(flags ? flags : "");
    argv[argc++] = (char *)qpo_test_binary();
    argv[argc++] = "worker";
    argv[argc++] = "--class";
    argv[argc++] = "cpu";
    argv[argc++] = "--kinds";
    argv[argc++] = "reward,score,d0";
    argv[argc++] = "--name";
    argv[argc++] = (char *)name;
    argv[argc++] = "--db";
    argv[argc++] = (char *)conninfo;
    for (char *tok = strtok(copy, " "); tok && argc < 38; tok = strtok(NULL, " ")) {
        argv[argc++] = tok;
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        die_with_parent();
        execv(argv[0], argv);
        _exit(127);
    }
    free(copy);
    track(pid);
    return pid;
}

int proc_wait(pid_t pid) {
    untrack(pid);
    return qpo_test_wait_exit(pid);
}

void sim_stop(sim_proc *sim) {
    if (sim->pid > 0) {
        untrack(sim->pid);
        kill(sim->pid, SIGTERM);
        int status;
        while (waitpid(sim->pid, &status, 0) < 0 && errno == EINTR) {
        }
        sim->pid = 0;
    }
}

void reward_db_set_target(PGconn *conn, const char *base_url, const char *config_json) {
    const char *p[2] = {base_url, config_json};
    qpo_err err = {0};
    PGresult *res = qpo_db_query(
        conn, "UPDATE qpo.targets SET base_url = $1, config = $2::jsonb WHERE name = 'sim'", 2, p,
        &err);
    if (!res) {
        qpo_err_print(&err);
    }
    assert_non_null(res);
    PQclear(res);
}

/* Loads <dir>/tweet_eval_emotion/<file>_text.txt and _labels.txt as items of one split,
 * item ids from first_id, through COPY-free batched INSERTs of JSON. */
static void load_tweets(PGconn *conn, const char *dir, const char *file, const char *split,
                        int first_id, int limit) {
    char tp[4096], lp[4096];
    snprintf(tp, sizeof tp, "%s/tweet_eval_emotion/%s_text.txt", dir, file);
    snprintf(lp, sizeof lp, "%s/tweet_eval_emotion/%s_labels.txt", dir, file);
    FILE *ft = fopen(tp, "r"), *fl = fopen(lp, "r");
    assert_non_null(ft);
    assert_non_null(fl);
    json_t *rows = json_array();
    char *text = NULL, label[16];
    size_t cap = 0;
    ssize_t n;
    int i = 0;
    while (i < limit && (n = getline(&text, &cap, ft)) > 0 && fgets(label, sizeof label, fl)) {
        text[strcspn(text, "\r\n")] = '\0';
        json_array_append_new(rows, json_pack("{s:i,s:i,s:s,s:i}", "id", first_id + i, "idx", i,
                                              "text", text, "label", atoi(label)));
        i++;
    }
    free(text);
    fclose(ft);
    fclose(fl);
    char *js = json_dumps(rows, JSON_COMPACT);
    const char *p[3] = {js, split, file};
    qpo_err err = {0};
    PGresult *res = qpo_db_query(
        conn,
        "INSERT INTO qpo.task_items (task, item_id, split, upstream_split, upstream_index, "
        "query, fields, label) SELECT 'tweet_emotion', x.id, $2, $3, x.idx, x.text, "
        "jsonb_build_object('text', x.text), x.label FROM jsonb_to_recordset($1::jsonb) "
        "AS x(id int, idx int, text text, label int)",
        3, p, &err);
    if (!res) {
        qpo_err_print(&err);
    }
    assert_non_null(res);
    PQclear(res);
    free(js);
    json_decref(rows);
}

PGconn *reward_db_setup(qpo_pgtest *pg, const char *data_dir, const char *setting, int n_pairs,
                        char **conninfo, int64_t *job_id) {
    *conninfo = strdup(qpo_pgtest_new_db(pg));
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(*conninfo, "test_reward", &err);
    if (!conn) {
        qpo_err_print(&err);
    }
    assert_non_null(conn);
    char sql[1024];
    db_exec_ok(conn, "INSERT INTO qpo.targets (name, base_url, model) VALUES "
                     "('sim', 'http://127.0.0.1:9', 'qpo-sim');"
                     "INSERT INTO qpo.experiments (id, name, config) VALUES (1, 'e', '{}')");
    snprintf(sql, sizeof sql,
             "INSERT INTO qpo.runs (id, experiment_id, task, setting, target, seed, loops) "
             "VALUES (1, 1, 'tweet_emotion', '%s', 'sim', 0, 4)",
             setting);
    db_exec_ok(conn, sql);
    load_tweets(conn, data_dir, "test", "collect", 0, 1421);
    load_tweets(conn, data_dir, "train", "train", 10000, 400);
    /* Prompts of different quality, so accuracies and rewards differ between pairs. */
    snprintf(sql, sizeof sql,
             "INSERT INTO qpo.generations (run_id, loop, purpose, batch, item_id, prompt) "
             "SELECT 1, 1, 'collect', 0, i, (ARRAY['Classify the tweet.', "
             "'Which emotion among anger, joy, optimism, sadness best describes the tweet?', "
             "'What is the emotion of the text? Hint: anger, joy, optimism, sadness', "
             "'Tell me a story.', ''])[1 + i %% 5] FROM generate_series(0, %d) i",
             n_pairs - 1);
    db_exec_ok(conn, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO qpo.d0_records (task, setting, target, source, query, label, prompt, "
             "acc, avg_acc, raw_reward) VALUES "
             "('tweet_emotion', '%s', 'sim', 'test', 'a', 0, 'p', 0, 0, -5), "
             "('tweet_emotion', '%s', 'sim', 'test', 'b', 1, 'p', 1, 1, 25)",
             setting, setting);
    db_exec_ok(conn, sql);
    char *id = db_scalar(conn, "INSERT INTO qpo.jobs (kind, class, max_attempts, payload, run_id) "
                               "VALUES ('reward', 'cpu', 5, "
                               "'{\"run_id\": 1, \"loop\": 1, \"batch\": 0}', 1) RETURNING id");
    *job_id = atoll(id);
    free(id);
    return conn;
}

void sim_serve(sim_proc *sim, PGconn *conn, const char *conninfo, const char *flags,
               const char *config_json) {
    sim_start(sim, conninfo, flags);
    reward_db_set_target(conn, sim->base_url, config_json);
}

const char *shared_data_or_skip(void) {
    const char *data = qpo_test_shared_data();
    if (!data) {
        fprintf(stderr, "skipped: ../shared/data is absent (the data sets and prompts)\n");
        skip();
    }
    return data;
}
