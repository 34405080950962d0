#include "pgtest.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "migrate.h"

struct qpo_pgtest {
    char dir[256];     /* data directory; also the socket directory */
    char bindir[256];
    int port;
    bool as_postgres;  /* running as root: drop to the postgres user for server commands */
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

/* Runs argv (as postgres when needed), output to the log file; returns the exit status. */
static int run(qpo_pgtest *pg, char *const argv[]) {
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        char log[300];
        snprintf(log, sizeof(log), "%s.log", pg->dir);
        if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr))
            _exit(127);
        if (pg->as_postgres) {
            char *full[32] = {"runuser", "-u", "postgres", "--"};
            int n = 4;
            for (int i = 0; argv[i] && n < 31; i++)
                full[n++] = argv[i];
            full[n] = NULL;
            execvp("runuser", full);
        } else {
            execvp(argv[0], argv);
        }
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void find_bindir(qpo_pgtest *pg) {
    const char *env = getenv("QPO_PG_BINDIR");
    if (env && *env) {
        snprintf(pg->bindir, sizeof(pg->bindir), "%s", env);
        return;
    }
    for (int major = 17; major >= 13; major--) {
        char path[256];
        snprintf(path, sizeof(path), "/usr/lib/postgresql/%d/bin/initdb", major);
        if (access(path, X_OK) == 0) {
            snprintf(pg->bindir, sizeof(pg->bindir), "/usr/lib/postgresql/%d/bin", major);
            return;
        }
    }
    pg->bindir[0] = '\0'; /* rely on PATH */
}

static void tool(qpo_pgtest *pg, const char *name, char *out, size_t n) {
    if (pg->bindir[0])
        snprintf(out, n, "%s/%s", pg->bindir, name);
    else
        snprintf(out, n, "%s", name);
}

static void make_dir(qpo_pgtest *pg) {
    snprintf(pg->dir, sizeof(pg->dir), "/tmp/qpo-pgtest-XXXXXX");
    if (!mkdtemp(pg->dir))
        die("mkdtemp: %s", strerror(errno));
    if (pg->as_postgres) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw)
            die("running as root but there is no 'postgres' user (install postgresql)");
        char log[300];
        snprintf(log, sizeof(log), "%s.log", pg->dir);
        FILE *f = fopen(log, "w");
        if (f)
            fclose(f);
        if (chown(pg->dir, pw->pw_uid, pw->pw_gid) < 0 || chown(log, pw->pw_uid, pw->pw_gid) < 0)
            die("chown %s: %s", pg->dir, strerror(errno));
    }
}

static void initdb(qpo_pgtest *pg) {
    char bin[300];
    tool(pg, "initdb", bin, sizeof(bin));
    char *argv[] = {bin, "-D", pg->dir, "-A", "trust", "-U", "postgres", "-N",
                    "-E", "UTF8", "--locale=C", NULL};
    if (run(pg, argv) != 0)
        die("initdb failed; see %s.log", pg->dir);
}

static void pg_ctl_start(qpo_pgtest *pg) {
    char bin[300], opts[512], log[300];
    tool(pg, "pg_ctl", bin, sizeof(bin));
    snprintf(log, sizeof(log), "%s/server.log", pg->dir);
    /* Unix socket only; fsync off: tests simulate process crashes, not power loss. */
    snprintf(opts, sizeof(opts),
             "-p %d -c listen_addresses='' -c unix_socket_directories='%s' -c fsync=off "
             "-c full_page_writes=off -c max_connections=200",
             pg->port, pg->dir);
    char *argv[] = {bin, "-D", pg->dir, "-l", log, "-w", "-t", "60", "-o", opts, "start", NULL};
    if (run(pg, argv) != 0)
        die("pg_ctl start failed; see %s", log);
}

static void pg_ctl(qpo_pgtest *pg, const char *action, const char *mode) {
    char bin[300];
    tool(pg, "pg_ctl", bin, sizeof(bin));
    char *argv[] = {bin, "-D", pg->dir, "-w", "-m", (char *)mode, (char *)action, NULL};
    if (run(pg, argv) != 0 && strcmp(action, "stop") != 0)
        die("pg_ctl %s failed; see %s/server.log", action, pg->dir);
}

static void stop_at_exit(void) {
    if (live_cluster)
        qpo_pgtest_stop(live_cluster);
}

qpo_pgtest *qpo_pgtest_start(void) {
    qpo_pgtest *pg = calloc(1, sizeof(*pg));
    pg->as_postgres = geteuid() == 0;
    find_bindir(pg);
    srand((unsigned)(time(NULL) ^ getpid()));
    pg->port = 20000 + rand() % 20000;
    make_dir(pg);
    initdb(pg);
    pg_ctl_start(pg);
    snprintf(pg->conninfo, sizeof(pg->conninfo), "host=%s port=%d user=postgres dbname=postgres",
             pg->dir, pg->port);
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
    snprintf(info, sizeof(info), "host=%s port=%d user=postgres dbname=qpo_template", pg->dir,
             pg->port);
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
    snprintf(info, sizeof(info), "host=%s port=%d user=postgres dbname=t%d", pg->dir, pg->port,
             pg->ndbs);
    return info;
}

void qpo_pgtest_restart(qpo_pgtest *pg) {
    pg_ctl(pg, "stop", "fast");
    pg_ctl_start(pg);
}

void qpo_pgtest_crash(qpo_pgtest *pg) {
    pg_ctl(pg, "stop", "immediate");
}

void qpo_pgtest_start_again(qpo_pgtest *pg) {
    pg_ctl_start(pg);
}

void qpo_pgtest_stop(qpo_pgtest *pg) {
    if (!pg || !pg->dir[0])
        return;
    pg_ctl(pg, "stop", "immediate");
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.log'", pg->dir, pg->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "pgtest: could not remove %s\n", pg->dir);
    pg->dir[0] = '\0';
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

const char *qpo_test_binary(void) {
    const char *env = getenv("QPO_BINARY");
    return env && *env ? env : QPO_BINARY_PATH;
}
