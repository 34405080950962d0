#include "pgtest.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "db.h"
#include "migrate.h"
#include "pg_cluster.h"

struct qpo_pgtest {
    qpo_pg_cluster *cluster;
    char conninfo[512];
    int ndbs;
    bool template_ready;
};

static qpo_pgtest *live_cluster;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pgtest: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static void die_err(const char *what, const qpo_err *err) {
    die("%s: %s (%s)", what, err->msg, err->detail);
}

static void stop_at_exit(void) {
    if (live_cluster)
        qpo_pgtest_stop(live_cluster);
}

qpo_pgtest *qpo_pgtest_start(void) {
    qpo_pgtest *pg = calloc(1, sizeof(*pg));
    char dir[] = "/tmp/qpo-pgtest-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp: %s", strerror(errno));
    qpo_err err = {0};
    pg->cluster = qpo_pg_cluster_start(dir, &err);
    if (!pg->cluster)
        die_err("starting a throwaway cluster", &err);
    snprintf(pg->conninfo, sizeof(pg->conninfo), "%s", qpo_pg_cluster_conninfo(pg->cluster));
    if (!live_cluster) {
        live_cluster = pg;
        atexit(stop_at_exit);
    }
    return pg;
}

const char *qpo_pgtest_admin_conninfo(qpo_pgtest *pg) {
    return pg->conninfo;
}

static PGconn *admin_connect(qpo_pgtest *pg) {
    PGconn *conn = PQconnectdb(pg->conninfo);
    if (PQstatus(conn) != CONNECTION_OK)
        die("connect %s: %s", pg->conninfo, PQerrorMessage(conn));
    return conn;
}

static void admin_exec(PGconn *conn, const char *sql) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die("%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
}

static void prepare_template(qpo_pgtest *pg) {
    PGconn *admin = admin_connect(pg);
    admin_exec(admin, "CREATE DATABASE qpo_template");
    PQfinish(admin);
    char info[600];
    qpo_pg_cluster_conninfo_db(pg->cluster, "qpo_template", info, sizeof(info));
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(info, "pgtest", &err);
    if (!conn || qpo_migrate(conn, NULL, &err) < 0)
        die("migrating the template database: %s (%s)", err.msg, err.detail);
    PQfinish(conn);
    pg->template_ready = true;
}

const char *qpo_pgtest_new_db(qpo_pgtest *pg) {
    static char info[600];
    if (!pg->template_ready)
        prepare_template(pg);
    char sql[128];
    pg->ndbs++;
    snprintf(sql, sizeof(sql), "CREATE DATABASE t%d TEMPLATE qpo_template", pg->ndbs);
    PGconn *admin = admin_connect(pg);
    admin_exec(admin, sql);
    PQfinish(admin);
    char name[32];
    snprintf(name, sizeof(name), "t%d", pg->ndbs);
    qpo_pg_cluster_conninfo_db(pg->cluster, name, info, sizeof(info));
    return info;
}

void qpo_pgtest_restart(qpo_pgtest *pg) {
    qpo_err err = {0};
    if (qpo_pg_cluster_halt(pg->cluster, "fast", &err) < 0 ||
        qpo_pg_cluster_resume(pg->cluster, &err) < 0)
        die_err("restarting the cluster", &err);
}

void qpo_pgtest_crash(qpo_pgtest *pg) {
    qpo_err err = {0};
    if (qpo_pg_cluster_halt(pg->cluster, "immediate", &err) < 0)
        die_err("crashing the cluster", &err);
}

void qpo_pgtest_start_again(qpo_pgtest *pg) {
    qpo_err err = {0};
    if (qpo_pg_cluster_resume(pg->cluster, &err) < 0)
        die_err("starting the cluster again", &err);
}

void qpo_pgtest_stop(qpo_pgtest *pg) {
    if (!pg)
        return;
    qpo_pg_cluster_stop(pg->cluster, true);
    if (live_cluster == pg)
        live_cluster = NULL;
    free(pg);
}

const char *qpo_test_shared_data(void) {
    static char path[512];
    const char *env = getenv("QPO_SHARED_DATA");
    snprintf(path, sizeof(path), "%s", env && *env ? env : QPO_SHARED_DIR "/data");
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? path : NULL;
}

double qpo_test_time_scale(void) {
    static double scale;
    if (scale > 0)
        return scale;
    const char *env = getenv("QPO_TEST_TIME_SCALE");
    if (env && *env) {
        char *end;
        errno = 0;
        double v = strtod(env, &end);
        if (errno || *end || !(v >= 1 && v <= 1000))
            die("QPO_TEST_TIME_SCALE=%s: expected a number from 1 to 1000", env);
        scale = v;
    } else {
        scale = QPO_TEST_TIME_SCALE_DEFAULT;
    }
    return scale;
}

double qpo_test_seconds(double seconds) {
    return seconds * qpo_test_time_scale();
}

static double monotonic_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double qpo_test_deadline(double seconds) {
    return monotonic_s() + qpo_test_seconds(seconds);
}

bool qpo_test_before(double deadline) {
    return monotonic_s() < deadline;
}

const char *qpo_test_binary(void) {
    const char *env = getenv("QPO_BINARY");
    return env && *env ? env : QPO_BINARY_PATH;
}

int qpo_test_wait_exit(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
