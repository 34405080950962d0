#include "qtest.h"

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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgtest.h"

PGconn *qt_connect(const char *conninfo) {
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(conn));
    return conn;
}

void qt_exec(PGconn *conn, const char *sql) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
}

static PGresult *query_v(PGconn *conn, const char *fmt, va_list ap) {
    char sql[4096];
    vsnprintf(sql, sizeof(sql), fmt, ap);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
        fail_msg("%s: %s", sql, PQntuples(res) < 1 ? "no row" : PQerrorMessage(conn));
    return res;
}

int64_t qt_int(PGconn *conn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    PGresult *res = query_v(conn, fmt, ap);
    va_end(ap);
    int64_t v = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

const char *qt_text(PGconn *conn, const char *fmt, ...) {
    static char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    PGresult *res = query_v(conn, fmt, ap);
    va_end(ap);
    snprintf(buf, sizeof(buf), "%s", PQgetisnull(res, 0, 0) ? "(null)" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return buf;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

bool qt_wait_for(PGconn *conn, double timeout_s, const char *cond_fmt, ...) {
    char cond[2048], sql[2100];
    va_list ap;
    va_start(ap, cond_fmt);
    vsnprintf(cond, sizeof(cond), cond_fmt, ap);
    va_end(ap);
    snprintf(sql, sizeof(sql), "SELECT (%s)", cond);
    double deadline = mono_s() + qpo_test_seconds(timeout_s);
    while (mono_s() < deadline) {
        PGresult *res = PQexec(conn, sql);
        bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
        if (ok)
            return true;
        if (PQstatus(conn) != CONNECTION_OK)
            PQreset(conn); /* the server may be restarting under the test */
        nap_ms(20);
    }
    return false;
}

pid_t qt_worker(const char *conninfo, const char *arg, ...) {
    const char *argv[64] = {"qpo", "worker", "--db", conninfo};
    int n = 4;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 63; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        const char *log = getenv("QPO_TEST_LOG");
        int fd = open(log && *log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execv(qpo_test_binary(), (char *const *)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    return pid;
}

int qt_wait_exit(pid_t pid, double timeout_s) {
    double deadline = mono_s() + qpo_test_seconds(timeout_s);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (mono_s() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -2;
        }
        nap_ms(10);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
