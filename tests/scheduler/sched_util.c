#include "sched_util.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "pgtest.h"

static void build_argv(const char *conninfo, const char *const *argv, char **out, int max) {
    int n = 0;
    out[n++] = (char *)qpo_test_binary();
    for (int i = 0; argv[i] && n < max - 3; i++)
        out[n++] = (char *)argv[i];
    if (conninfo) {
        out[n++] = "--db";
        out[n++] = (char *)conninfo;
    }
    out[n] = NULL;
}

static void child_exec(const char *env_kv, char **args) {
    if (env_kv)
        putenv((char *)env_kv);
    execv(args[0], args);
    _exit(127);
}

static void read_pipes(int fo, int fe, qpo_run_result *r) {
    size_t no = 0, ne = 0;
    struct pollfd p[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0 && poll(p, 2, -1) > 0) {
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            char *buf = i ? r->err : r->out;
            size_t *n = i ? &ne : &no;
            size_t cap = i ? sizeof(r->err) : sizeof(r->out);
            char tmp[4096];
            ssize_t got = read(p[i].fd, tmp, sizeof(tmp));
            if (got <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
                continue;
            }
            size_t take = (size_t)got < cap - 1 - *n ? (size_t)got : cap - 1 - *n;
            memcpy(buf + *n, tmp, take);
            *n += take;
            buf[*n] = '\0';
        }
    }
}

void qpo_wait(int pid, qpo_run_result *r) {
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

void qpo_run(qpo_run_result *r, const char *conninfo, const char *env_kv, const char *const *argv) {
    memset(r, 0, sizeof(*r));
    char *args[64];
    build_argv(conninfo, argv, args, 64);
    int po[2], pe[2];
    assert_int_equal(pipe(po), 0);
    assert_int_equal(pipe(pe), 0);
    int pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        child_exec(env_kv, args);
    }
    close(po[1]);
    close(pe[1]);
    read_pipes(po[0], pe[0], r);
    qpo_wait(pid, r);
}

int qpo_spawn(const char *conninfo, const char *env_kv, const char *const *argv) {
    char *args[64];
    build_argv(conninfo, argv, args, 64);
    int pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        child_exec(env_kv, args);
    }
    return pid;
}

PGconn *test_connect(const char *conninfo) {
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(conninfo, "test", &err);
    if (!conn)
        fail_msg("%s: %s", err.msg, err.detail);
    return conn;
}

static PGresult *must(PGconn *conn, const char *sql) {
    qpo_err err = {0};
    PGresult *res = qpo_db_query(conn, sql, 0, NULL, &err);
    if (!res)
        fail_msg("%s\n  in: %s", err.msg, sql);
    return res;
}

int64_t q_int(PGconn *conn, const char *sql) {
    PGresult *res = must(conn, sql);
    assert_int_equal(PQntuples(res), 1);
    int64_t v = qpo_db_int64(res, 0, 0);
    PQclear(res);
    return v;
}

char *q_str(PGconn *conn, const char *sql) {
    PGresult *res = must(conn, sql);
    assert_int_equal(PQntuples(res), 1);
    char *v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

void q_exec(PGconn *conn, const char *sql) {
    PQclear(must(conn, sql));
}
