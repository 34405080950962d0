/* See chaos_fixture.h. */
#include "chaos_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *const chaos_role_name[CHAOS_ROLES] = {"scheduler", "cpu", "gpu"};

static PGconn *connect_or_fail(const char *conninfo) {
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connecting to %s: %s", conninfo, PQerrorMessage(c));
    return c;
}

/* One statement; after a server restart the old connection is dead, so a failure on a
 * connection that is no longer OK reconnects (waiting for the server) and tries once more. */
static PGresult *run_sql(chaos_exp *e, const char *sql) {
    for (int tries = 0;; tries++) {
        PGresult *res = PQexec(e->conn, sql);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
            return res;
        PQclear(res);
        if (tries < 50 && (PQstatus(e->conn) != CONNECTION_OK ||
                           strstr(PQerrorMessage(e->conn), "terminating connection"))) {
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
            PQreset(e->conn);
            continue;
        }
        fail_msg("SQL failed: %.300s: %s", sql, PQerrorMessage(e->conn));
    }
}

char *chaos_str(chaos_exp *e, const char *sql) {
    PGresult *res = run_sql(e, sql);
    char *v =
        strdup(PQntuples(res) == 0 || PQgetisnull(res, 0, 0) ? "NULL" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

long long chaos_ll(chaos_exp *e, const char *sql) {
    char *v = chaos_str(e, sql);
    long long n = atoll(v);
    free(v);
    return n;
}

void chaos_exec(chaos_exp *e, const char *sql) {
    PQclear(run_sql(e, sql));
}

static pid_t spawn(chaos_exp *e, char *const argv[], const char *log, int out_fd) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("QPO_CHECKPOINT_DIR", e->dir, 1);
        int fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            if (out_fd < 0)
                dup2(fd, STDOUT_FILENO);
        }
        if (out_fd >= 0)
            dup2(out_fd, STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

int chaos_qpo(chaos_exp *e, const char *const args[]) {
    char *argv[24];
    int n = 0;
    argv[n++] = (char *)qpo_test_binary();
    for (int i = 0; args[i] && n < 20; i++)
        argv[n++] = (char *)args[i];
    argv[n++] = "--db";
    argv[n++] = e->conninfo;
    argv[n] = NULL;
    char log[320];
    snprintf(log, sizeof log, "%s/logs/cli.log", e->dir);
    return qpo_test_wait_exit(spawn(e, argv, log, -1));
}

static void write_config(const char *path, const char *base_url, const chaos_size *s,
                         const char *target_extra) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"name\": \"chaos\", \"tasks\": [\"tweet_emotion\", \"svamp\"], \"settings\": "
               "[\"zero_shot\"], \"seeds\": [");
    for (int i = 0; i < s->seeds; i++)
        fprintf(f, "%s%d", i ? ", " : "", i);
    fprintf(f,
            "], \"loops\": %d,\n"
            " \"targets\": [{\"name\": \"sim\", \"base_url\": \"%s/v1\", \"model\": \"qpo-sim\", "
            "\"max_inflight\": 8%s%s}],\n"
            " \"policy\": {\"size\": \"tiny\", \"init\": \"scratch\", \"tokenizer\": \"bytes\"},\n"
            " \"hyper\": {\"epochs_first\": %d, \"epochs_next\": %d, \"batch_size\": 16},\n"
            " \"collect\": {\"batches\": %d, \"batch_size\": %d}, \"test\": {\"size\": %d, "
            "\"math_size\": %d, \"shards\": 2},\n"
            " \"d0\": {\"source\": \"import\"}}\n",
            s->loops, base_url, target_extra ? ", " : "", target_extra ? target_extra : "",
            s->epochs_first, s->epochs_next, s->batches, s->batch_size, s->test_size, s->test_size);
    fclose(f);
}

/* A small D_0 per task: 12 non-test items x 3 prompts, raw rewards spread over [0.5, 18.5]. */
static void insert_d0(chaos_exp *e) {
    chaos_exec(e, "INSERT INTO qpo.d0_records (task, setting, target, source, query, label, "
                  "answer, prompt, acc, avg_acc, raw_reward) "
                  "SELECT i.task, 'zero_shot', 'sim', 'chaos', i.query, i.label, i.answer, "
                  "p.prompt, 0.5, 0.5, 0.5 + ((i.item_id * 7 + p.k * 5) % 19) "
                  "FROM (SELECT *, row_number() OVER (PARTITION BY task ORDER BY item_id) r "
                  "FROM qpo.task_items WHERE split <> 'test') i "
                  "CROSS JOIN (VALUES (1, 'Answer the question.<|endoftext|>'), (2, 'Think step "
                  "by step.<|endoftext|>'), (3, '<|endoftext|>')) p(k, prompt) WHERE i.r <= 12");
}

void chaos_setup(chaos_exp *e, qpo_pgtest *pg, const char *data, const char *base_url,
                 const chaos_size *size, const char *target_extra) {
    memset(e, 0, sizeof *e);
    snprintf(e->conninfo, sizeof e->conninfo, "%s", qpo_pgtest_new_db(pg));
    e->conn = connect_or_fail(e->conninfo);
    snprintf(e->dir, sizeof e->dir, "/tmp/qpo-chaos-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    char path[400];
    snprintf(path, sizeof path, "%s/logs", e->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    char f[3][512], svamp[512];
    const char *names[3] = {"train", "val", "test"};
    for (int i = 0; i < 3; i++)
        snprintf(f[i], sizeof f[i], "%s/tweet_eval_emotion/%s_text.txt", data, names[i]);
    snprintf(svamp, sizeof svamp, "%s/svamp/SVAMP.json", data);
    const char *tweet[] = {"data", "import", "tweet_emotion", f[0], f[1], f[2], NULL};
    const char *math[] = {"data", "import", "svamp", svamp, NULL};
    assert_int_equal(chaos_qpo(e, tweet), 0);
    assert_int_equal(chaos_qpo(e, math), 0);
    insert_d0(e);
    chaos_exec(e, "UPDATE qpo.job_kinds SET max_attempts = 100");
    snprintf(path, sizeof path, "%s/experiment.json", e->dir);
    write_config(path, base_url, size, target_extra);
    const char *submit[] = {"submit", path, NULL};
    assert_int_equal(chaos_qpo(e, submit), 0);
}

void chaos_start(chaos_exp *e, chaos_role r) {
    char name[32], log[400];
    int g = ++e->generation[r];
    snprintf(name, sizeof name, "%s-%d", chaos_role_name[r], g);
    snprintf(log, sizeof log, "%s/logs/%s.log", e->dir, name);
    char *argv[40];
    int n = 0;
    argv[n++] = (char *)qpo_test_binary();
    if (r == CHAOS_SCHEDULER) {
        argv[n++] = "scheduler";
        argv[n++] = "--poll-ms";
        argv[n++] = "200";
    } else {
        /* A short lease: a killed worker's jobs are reaped by the next one within 2 s. */
        const char *common[] = {"worker", "--name", name,           "--lease", "2",
                                "--poll", "0.2",    "--backoff-ms", "10,200"};
        for (size_t i = 0; i < sizeof common / sizeof *common; i++)
            argv[n++] = (char *)common[i];
        argv[n++] = "--class";
        argv[n++] = r == CHAOS_CPU ? "cpu" : "gpu";
        if (r == CHAOS_CPU) {
            argv[n++] = "--concurrency";
            argv[n++] = "4";
        } else {
            argv[n++] = "--backend";
            argv[n++] = "cpu";
        }
    }
    static char flags[256];
    if (r != CHAOS_SCHEDULER && e->worker_flags) {
        snprintf(flags, sizeof flags, "%s", e->worker_flags);
        for (char *t = strtok(flags, " "); t && n < 36; t = strtok(NULL, " "))
            argv[n++] = t;
    }
    argv[n++] = "--db";
    argv[n++] = e->conninfo;
    argv[n] = NULL;
    e->pid[r] = spawn(e, argv, log, -1);
}

int chaos_stop(chaos_exp *e, chaos_role r, int sig) {
    if (e->pid[r] <= 0)
        return 0;
    kill(e->pid[r], sig);
    int rc = qpo_test_wait_exit(e->pid[r]);
    e->pid[r] = 0;
    return rc;
}

static void stop_quietly(chaos_exp *e) {
    for (int r = 0; r < CHAOS_ROLES; r++)
        chaos_stop(e, (chaos_role)r, SIGTERM);
}

void chaos_stop_all(chaos_exp *e) {
    for (int r = 0; r < CHAOS_ROLES; r++) {
        int g = e->generation[r], rc = chaos_stop(e, (chaos_role)r, SIGTERM);
        if (rc != 0) {
            stop_quietly(e);
            fail_msg("%s-%d exited %d before it was stopped (log: %s/logs/%s-%d.log)",
                     chaos_role_name[r], g, rc, e->dir, chaos_role_name[r], g);
        }
    }
}

bool chaos_finished(chaos_exp *e) {
    return chaos_ll(e, "SELECT count(*) FROM qpo.experiments WHERE state IN ('done', 'failed', "
                       "'cancelled')") > 0;
}

char *chaos_wait_finished(chaos_exp *e, int deadline_s) {
    for (int i = 0; i < deadline_s * 5 && !chaos_finished(e); i++) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!chaos_finished(e)) {
        char *jobs = chaos_jobs_text(e);
        fail_msg("the experiment did not finish in %d s (logs in %s/logs); jobs: %s", deadline_s,
                 e->dir, jobs);
    }
    return chaos_str(e, "SELECT state FROM qpo.experiments");
}

char *chaos_results_text(chaos_exp *e) {
    return chaos_str(e, "SELECT string_agg(concat_ws(':', task, setting, target, loop, source, "
                        "seeds, mean_acc, items_min, items_max, seed_acc, distinct_prompts), "
                        "E'\\n' ORDER BY task, setting, loop, source) FROM qpo.results");
}

char *chaos_rewards_text(chaos_exp *e) {
    return chaos_str(e, "SELECT string_agg(concat_ws(':', u.task, u.seed, r.loop, r.batch, "
                        "r.item_id, md5(r.query), md5(r.prompt), r.nlls, r.completion_nll, "
                        "md5(r.completion), r.prediction, r.correct, r.predictions, r.acc_q, "
                        "r.avg_acc, r.raw_reward, r.norm_reward, r.d0_min_raw, r.d0_max_raw), "
                        "E'\\n' ORDER BY u.task, u.seed, r.loop, r.batch, r.item_id) "
                        "FROM qpo.rewards r JOIN qpo.runs u ON u.id = r.run_id");
}

/* Each final checkpoint hashed again from the file, so a file cut short on disk would show. */
char *chaos_checkpoints_text(chaos_exp *e) {
    PGresult *res = run_sql(e, "SELECT u.task || ':' || u.seed || ':' || c.loop, c.sha256, c.path "
                               "FROM qpo.checkpoints c JOIN qpo.runs u ON u.id = c.run_id "
                               "ORDER BY u.task, u.seed, c.loop");
    size_t cap = 256 + (size_t)PQntuples(res) * 160, len = 0;
    char *out = calloc(1, cap);
    for (int i = 0; i < PQntuples(res); i++) {
        char cmd[600], disk[80] = "";
        snprintf(cmd, sizeof cmd, "sha256sum '%s'", PQgetvalue(res, i, 2));
        FILE *p = popen(cmd, "r");
        if (!p || !fgets(disk, sizeof disk, p))
            fail_msg("cannot hash %s", PQgetvalue(res, i, 2));
        pclose(p);
        disk[64] = '\0';
        if (strcmp(disk, PQgetvalue(res, i, 1)))
            fail_msg("%s on disk hashes to %s, qpo.checkpoints says %s", PQgetvalue(res, i, 2),
                     disk, PQgetvalue(res, i, 1));
        len += (size_t)snprintf(out + len, cap - len, "%s:%s\n", PQgetvalue(res, i, 0), disk);
    }
    PQclear(res);
    return out;
}

char *chaos_jobs_text(chaos_exp *e) {
    return chaos_str(e, "SELECT string_agg(kind || ' ' || state || ' x' || n, ', ' ORDER BY kind, "
                        "state) FROM (SELECT kind, state, count(*) n FROM qpo.jobs GROUP BY kind, "
                        "state) s");
}

void chaos_teardown(chaos_exp *e) {
    stop_quietly(e);
    PQfinish(e->conn);
    e->conn = NULL;
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", e->dir);
}

void chaos_sim_start(chaos_sim *s, const char *data, const char *listen, const char *flags) {
    char *argv[40], copy[512];
    int n = 0;
    argv[n++] = (char *)qpo_test_binary();
    argv[n++] = "sim-llm";
    argv[n++] = "--listen";
    argv[n++] = (char *)listen;
    argv[n++] = "--data";
    argv[n++] = (char *)data;
    snprintf(copy, sizeof copy, "%s", flags ? flags : "");
    for (char *t = strtok(copy, " "); t && n < 38; t = strtok(NULL, " "))
        argv[n++] = t;
    argv[n] = NULL;
    int out[2];
    assert_int_equal(pipe(out), 0);
    chaos_exp none = {.dir = "/tmp"};
    snprintf(s->log, sizeof s->log, "/tmp/qpo-chaos-sim-XXXXXX");
    int fd = mkstemp(s->log);
    assert_true(fd >= 0);
    close(fd);
    s->pid = spawn(&none, argv, s->log, out[1]);
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    if (!fgets(s->url, sizeof s->url, f))
        fail_msg("qpo sim-llm exited before it was ready");
    fclose(f);
    s->url[strcspn(s->url, "\r\n")] = '\0';
    assert_true(strncmp(s->url, "http://", 7) == 0);
}

long long chaos_sim_stop(chaos_sim *s) {
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    qpo_test_wait_exit(s->pid);
    s->pid = 0;
    long long n = -1;
    FILE *f = fopen(s->log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        const char *at = strstr(line, "stopped after ");
        if (at)
            n = atoll(at + strlen("stopped after "));
    }
    if (f)
        fclose(f);
    unlink(s->log);
    return n;
}
