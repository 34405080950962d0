/* qpo bench queue: throughput of N noop jobs through W worker processes (the real binary),
 * timed on the server's clock from just before the processes start to the beginning of the
 * transaction that completed the last job; then enqueue-to-start latency on an idle queue.
 * One JSON line with --json. */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "db.h"
#include "migrate.h"
#include "queue.h"
#include "runtime.h"

typedef struct bench_opts {
    int jobs, workers, batch, concurrency, latency_jobs;
    int prefetch; /* -1: the worker's default */
    const char *conninfo;
    bool json;
} bench_opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bench_usage(FILE *out) {
    fprintf(out,
            "usage: qpo bench queue [--jobs N] [--workers W] [--batch B] [--concurrency C]\n"
            "                       [--prefetch P] [--latency-jobs M] [--json] [--db CONNINFO]\n\n"
            "Enqueues N noop jobs (batches of B), works them with W `qpo worker` processes of\n"
            "C threads each and a local queue of P (default: the worker's), then measures\n"
            "enqueue-to-start latency of M jobs enqueued one at a time on the idle queue.\n"
            "Throughput is timed on the server's clock, from just before the workers start to\n"
            "the completion of the last job. Defaults: N 20000, W 4, B 1000, C 16, M 200.\n"
            "Use a database of its own (e.g. scripts/pg-throwaway.sh): it adds jobs to it.\n");
}

static pid_t spawn_worker(const bench_opts *b, int i, bool exit_when_idle) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    char name[32], conc[16], prefetch[16];
    snprintf(name, sizeof(name), "bench-%d", i);
    snprintf(conc, sizeof(conc), "%d", b->concurrency);
    snprintf(prefetch, sizeof(prefetch), "%d", b->prefetch);
    const char *argv[20] = {"qpo",           "worker", "--class", "cpu", "--kinds", "noop",
                            "--concurrency", conc,     "--name",  name,  "--lease", "30"};
    int n = 12;
    if (b->prefetch >= 0) {
        argv[n++] = "--prefetch";
        argv[n++] = prefetch;
    }
    if (exit_when_idle)
        argv[n++] = "--exit-when-idle";
    if (b->conninfo && *b->conninfo) {
        argv[n++] = "--db";
        argv[n++] = b->conninfo;
    }
    argv[n] = NULL;
    setenv("QPO_LOG", "warn", 1);
    execv("/proc/self/exe", (char *const *)argv);
    _exit(127);
}

static int wait_all(pid_t *pids, int n) {
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int status = 0;
        if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    return failed;
}

static int enqueue_noops(PGconn *conn, int n, int batch, int64_t *first, int64_t *last,
                         qpo_err *err) {
    qpo_enqueue_opts *o = calloc((size_t)batch, sizeof(*o));
    int64_t *ids = calloc((size_t)batch, sizeof(int64_t));
    for (int i = 0; i < batch; i++)
        o[i].kind = "noop";
    int rc = 0;
    for (int done = 0; rc == 0 && done < n; done += batch) {
        size_t k = (size_t)(n - done < batch ? n - done : batch);
        rc = qpo_enqueue_batch(conn, o, k, ids, err);
        if (rc == 0 && done == 0)
            *first = ids[0];
        if (rc == 0)
            *last = ids[k - 1];
    }
    free(o);
    free(ids);
    return rc;
}

/* Column col of a one-row statement as a double; NaN (err set) on failure or NULL. */
static double server_seconds(PGconn *conn, const char *stmt, int n, const char *const *params,
                             int col, qpo_err *err) {
    PGresult *res = qpo_db_named(conn, stmt, n, params, err);
    if (!res)
        return NAN;
    double v = PQgetisnull(res, 0, col) ? NAN : atof(PQgetvalue(res, 0, col));
    PQclear(res);
    if (isnan(v))
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s returned no time", stmt);
    return v;
}

static int64_t count_done(PGconn *conn, int64_t first, int64_t last, qpo_err *err) {
    char a[32], b[32];
    snprintf(a, sizeof(a), "%lld", (long long)first);
    snprintf(b, sizeof(b), "%lld", (long long)last);
    const char *params[] = {a, b};
    PGresult *res = qpo_db_named(conn, "queue_count_done", 2, params, err);
    if (!res)
        return -1;
    int64_t n = qpo_db_int64(res, 0, 0);
    PQclear(res);
    return n;
}

typedef struct bench_result {
    double enqueue_per_s, jobs_per_s, steady_per_s, p50_ms, p99_ms;
} bench_result;

static int throughput(PGconn *conn, const bench_opts *b, bench_result *r, qpo_err *err) {
    int64_t first = 0, last = 0;
    double t0 = now_s();
    if (enqueue_noops(conn, b->jobs, b->batch, &first, &last, err) < 0)
        return -1;
    double t1 = now_s();
    r->enqueue_per_s = b->jobs / (t1 - t0);
    double start = server_seconds(conn, "queue_bench_clock", 0, NULL, 0, err);
    if (isnan(start))
        return -1;
    pid_t *pids = calloc((size_t)b->workers, sizeof(pid_t));
    for (int i = 0; i < b->workers; i++)
        pids[i] = spawn_worker(b, i, true);
    int failed = wait_all(pids, b->workers);
    free(pids);
    if (failed)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "%d of %d worker processes failed", failed,
                           b->workers);
    int64_t done = count_done(conn, first, last, err);
    if (done < 0)
        return -1;
    if (done != b->jobs)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "workers exited with %lld of %d jobs done",
                           (long long)done, b->jobs);
    char a[32], z[32];
    snprintf(a, sizeof(a), "%lld", (long long)first);
    snprintf(z, sizeof(z), "%lld", (long long)last);
    const char *range[] = {a, z};
    double end = server_seconds(conn, "queue_bench_finished", 2, range, 0, err);
    double first_done = server_seconds(conn, "queue_bench_finished", 2, range, 1, err);
    if (isnan(end) || isnan(first_done))
        return -1;
    r->jobs_per_s = b->jobs / (end - start);
    /* Without process start-up and the first claim: the steady state alone. */
    r->steady_per_s = end > first_done ? b->jobs / (end - first_done) : 0;
    return 0;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int latency(PGconn *conn, const bench_opts *b, bench_result *r, qpo_err *err) {
    pid_t *pids = calloc((size_t)b->workers, sizeof(pid_t));
    for (int i = 0; i < b->workers; i++)
        pids[i] = spawn_worker(b, 100 + i, false);
    sleep_ms(500); /* let them connect and LISTEN: the queue is idle when measuring starts */
    int64_t first = 0, last = 0, id = 0;
    qpo_enqueue_opts o = {.kind = "noop"};
    int rc = 0;
    for (int i = 0; rc == 0 && i < b->latency_jobs; i++) {
        rc = qpo_enqueue(conn, &o, &id, NULL, err);
        first = i == 0 ? id : first;
        last = id;
        sleep_ms(5); /* one job at a time: the previous one has started by now */
    }
    for (int tries = 0; rc == 0 && tries < 1000; tries++) {
        int64_t done = count_done(conn, first, last, err);
        if (done < 0 || done == b->latency_jobs)
            break;
        sleep_ms(10);
    }
    for (int i = 0; i < b->workers; i++)
        kill(pids[i], SIGTERM);
    wait_all(pids, b->workers);
    free(pids);
    if (rc < 0)
        return -1;
    char a[32], z[32];
    snprintf(a, sizeof(a), "%lld", (long long)first);
    snprintf(z, sizeof(z), "%lld", (long long)last);
    const char *params[] = {a, z};
    PGresult *res = qpo_db_named(conn, "queue_latency", 2, params, err);
    if (!res)
        return -1;
    r->p50_ms = atof(PQgetvalue(res, 0, 0));
    r->p99_ms = atof(PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}

static int parse(int argc, char **argv, bench_opts *b) {
    static const struct option opts[] = {{"jobs", required_argument, NULL, 'n'},
                                         {"workers", required_argument, NULL, 'w'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"concurrency", required_argument, NULL, 'c'},
                                         {"latency-jobs", required_argument, NULL, 'l'},
                                         {"prefetch", required_argument, NULL, 'p'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"db", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    *b = (bench_opts){20000, 4, 1000, 16, 200, -1, NULL, false};
    const char *db = NULL;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            b->jobs = atoi(optarg);
            break;
        case 'w':
            b->workers = atoi(optarg);
            break;
        case 'b':
            b->batch = atoi(optarg);
            break;
        case 'c':
            b->concurrency = atoi(optarg);
            break;
        case 'l':
            b->latency_jobs = atoi(optarg);
            break;
        case 'p':
            b->prefetch = atoi(optarg);
            break;
        case 'j':
            b->json = true;
            break;
        case 'd':
            db = optarg;
            break;
        case 'h':
            bench_usage(stdout);
            return -1;
        default:
            bench_usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    b->conninfo = qpo_db_conninfo(db);
    if (optind != argc || b->jobs < 1 || b->workers < 1 || b->workers > 64 || b->batch < 1 ||
        b->concurrency < 1 || b->latency_jobs < 1 || b->prefetch < -1 || b->prefetch > 10000) {
        fprintf(stderr, "qpo: error: --jobs, --batch, --concurrency and --latency-jobs must be "
                        "positive, --workers 1..64, --prefetch 0..10000\n");
        return QPO_EXIT_USAGE;
    }
    return 0;
}

int qpo_cmd_bench_queue(int argc, char **argv) {
    bench_opts b;
    int rc = parse(argc, argv, &b);
    if (rc)
        return rc < 0 ? 0 : rc;
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(b.conninfo, "qpo bench queue", &err);
    bench_result r = {0};
    bool busy = true;
    const char *noop[] = {"noop"};
    if (!conn || qpo_migrate(conn, NULL, &err) < 0 ||
        qpo_has_unfinished(conn, "cpu", noop, 1, &busy, &err) < 0)
        rc = -1;
    else if (busy)
        rc = qpo_err_set(&err, QPO_EXIT_USAGE, "the database already has unfinished noop jobs");
    if (rc == 0)
        rc = throughput(conn, &b, &r, &err);
    if (rc == 0)
        rc = latency(conn, &b, &r, &err);
    PQfinish(conn);
    if (rc < 0)
        return qpo_err_print(&err);
    if (b.json)
        printf("{\"bench\":\"queue\",\"jobs\":%d,\"workers\":%d,\"concurrency\":%d,"
               "\"prefetch\":%d,\"batch\":%d,\"enqueue_per_s\":%.0f,\"jobs_per_s\":%.0f,"
               "\"steady_jobs_per_s\":%.0f,"
               "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"latency_jobs\":%d}\n",
               b.jobs, b.workers, b.concurrency,
               b.prefetch >= 0 ? b.prefetch : qpo_worker_default_prefetch("cpu"), b.batch,
               r.enqueue_per_s, r.jobs_per_s, r.steady_per_s, r.p50_ms, r.p99_ms, b.latency_jobs);
    else
        printf("enqueue   %.0f jobs/s (batches of %d)\nwork      %.0f jobs/s (%d workers x %d "
               "threads)\nlatency   p50 %.2f ms, p99 %.2f ms (enqueue to start, idle queue)\n",
               r.enqueue_per_s, b.batch, r.jobs_per_s, b.workers, b.concurrency, r.p50_ms,
               r.p99_ms);
    return 0;
}
