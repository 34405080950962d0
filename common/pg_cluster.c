/* A throwaway PostgreSQL cluster. See pg_cluster.h. */
#define _XOPEN_SOURCE 700
#include "pg_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A unix socket path holds at most 107 bytes; the socket is DIR/.s.PGSQL.PORT. */
#define SOCKET_PATH_MAX 107
#define START_TRIES 3

struct qpo_pg_cluster {
    char dir[256]; /* data directory; also the socket directory */
    char log[270]; /* initdb's and pg_ctl's output: DIR.log */
    char bindir[256];
    int port;
    bool as_postgres; /* running as root: server commands run as the postgres user */
    char conninfo[512];
    char listen[64]; /* listen_addresses of the next start: '' (unix socket only) */
};

/* Runs argv (as postgres when needed) with its output appended to c->log; returns the exit
 * status, 127 when it could not be started. */
static int run(const qpo_pg_cluster *c, char *const argv[]) {
    pid_t pid = fork();
    if (pid < 0)
        return 127;
    if (pid == 0) {
        int fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(127);
        if (c->as_postgres) {
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

static void find_bindir(qpo_pg_cluster *c) {
    const char *env = getenv("QPO_PG_BINDIR");
    if (env && *env) {
        snprintf(c->bindir, sizeof(c->bindir), "%s", env);
        return;
    }
    for (int major = 18; major >= 13; major--) {
        char path[256];
        snprintf(path, sizeof(path), "/usr/lib/postgresql/%d/bin/initdb", major);
        if (access(path, X_OK) == 0) {
            snprintf(c->bindir, sizeof(c->bindir), "/usr/lib/postgresql/%d/bin", major);
            return;
        }
    }
    c->bindir[0] = '\0'; /* rely on PATH */
}

static void tool(const qpo_pg_cluster *c, const char *name, char *out, size_t n) {
    if (c->bindir[0])
        snprintf(out, n, "%s/%s", c->bindir, name);
    else
        snprintf(out, n, "%s", name);
}

static int make_dir(qpo_pg_cluster *c, qpo_err *err) {
    if (mkdir(c->dir, 0700) < 0 && errno != EEXIST)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create %s: %s", c->dir, strerror(errno));
    if (!c->as_postgres)
        return 0;
    struct passwd *pw = getpwnam("postgres");
    if (!pw) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "running as root but there is no 'postgres' user");
        qpo_err_hint(err, "install postgresql (it creates the user), or run as another user");
        return -1;
    }
    if (chown(c->dir, pw->pw_uid, pw->pw_gid) < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "chown %s: %s", c->dir, strerror(errno));
    return 0;
}

static int initdb(qpo_pg_cluster *c, qpo_err *err) {
    char bin[300];
    tool(c, "initdb", bin, sizeof(bin));
    char *argv[] = {bin,        "-D", c->dir, "-A",   "trust",      "-U",
                    "postgres", "-N", "-E",   "UTF8", "--locale=C", NULL};
    if (run(c, argv) == 0)
        return 0;
    qpo_err_set(err, QPO_EXIT_RUNTIME, "initdb failed");
    qpo_err_detail(err, "see %s", c->log);
    if (c->as_postgres)
        qpo_err_hint(err, "the postgres user must reach %s: every folder above it needs o+x",
                     c->dir);
    return -1;
}

static int pg_ctl_start(qpo_pg_cluster *c, qpo_err *err) {
    char bin[300], opts[512], log[300];
    tool(c, "pg_ctl", bin, sizeof(bin));
    snprintf(log, sizeof(log), "%s/server.log", c->dir);
    snprintf(opts, sizeof(opts),
             "-p %d -c listen_addresses='%s' -c unix_socket_directories='%s' -c fsync=off "
             "-c full_page_writes=off -c max_connections=200",
             c->port, c->listen, c->dir);
    char *argv[] = {bin, "-D", c->dir, "-l", log, "-w", "-t", "60", "-o", opts, "start", NULL};
    if (run(c, argv) == 0)
        return 0;
    qpo_err_set(err, QPO_EXIT_RUNTIME, "pg_ctl start failed");
    qpo_err_detail(err, "see %s and %s", log, c->log);
    return -1;
}

static int pick_port_and_start(qpo_pg_cluster *c, qpo_err *err) {
    /* A random port can be taken by another cluster on this machine: try a few. */
    for (int i = 0; i < START_TRIES; i++) {
        c->port = 20000 + rand() % 20000;
        qpo_err_clear(err);
        if (pg_ctl_start(c, err) == 0)
            return 0;
    }
    return -1;
}

static int unlink_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void remove_tree(const char *path) {
    if (nftw(path, unlink_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
        fprintf(stderr, "qpo: could not remove %s: %s\n", path, strerror(errno));
}

qpo_pg_cluster *qpo_pg_cluster_start(const char *dir, qpo_err *err) {
    if (strlen(dir) + strlen("/.s.PGSQL.40000") > SOCKET_PATH_MAX) {
        qpo_err_set(err, QPO_EXIT_USAGE, "the cluster directory's path is too long for a socket");
        qpo_err_detail(err, "%s (%zu bytes; a unix socket path holds %d)", dir, strlen(dir),
                       SOCKET_PATH_MAX);
        qpo_err_hint(err, "use a shorter output folder");
        return NULL;
    }
    qpo_pg_cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
        return NULL;
    }
    snprintf(c->dir, sizeof(c->dir), "%s", dir);
    snprintf(c->log, sizeof(c->log), "%s.log", dir);
    c->as_postgres = geteuid() == 0;
    find_bindir(c);
    srand((unsigned)(time(NULL) ^ getpid()));
    if (make_dir(c, err) < 0 || initdb(c, err) < 0 || pick_port_and_start(c, err) < 0) {
        remove_tree(c->dir);
        free(c);
        return NULL;
    }
    snprintf(c->conninfo, sizeof(c->conninfo), "host=%s port=%d user=postgres dbname=postgres",
             c->dir, c->port);
    return c;
}

const char *qpo_pg_cluster_conninfo(const qpo_pg_cluster *c) {
    return c->conninfo;
}

void qpo_pg_cluster_conninfo_db(const qpo_pg_cluster *c, const char *dbname, char *buf, size_t n) {
    snprintf(buf, n, "host=%s port=%d user=postgres dbname=%s", c->dir, c->port, dbname);
}

const char *qpo_pg_cluster_dir(const qpo_pg_cluster *c) {
    return c->dir;
}

int qpo_pg_cluster_halt(qpo_pg_cluster *c, const char *mode, qpo_err *err) {
    char bin[300];
    tool(c, "pg_ctl", bin, sizeof(bin));
    char *argv[] = {bin, "-D", c->dir, "-w", "-m", (char *)mode, "stop", NULL};
    if (run(c, argv) == 0)
        return 0;
    qpo_err_set(err, QPO_EXIT_RUNTIME, "pg_ctl stop -m %s failed", mode);
    qpo_err_detail(err, "see %s and %s/server.log", c->log, c->dir);
    return -1;
}

void qpo_pg_cluster_listen_tcp(qpo_pg_cluster *c, const char *addresses) {
    snprintf(c->listen, sizeof c->listen, "%s", addresses ? addresses : "");
}

int qpo_pg_cluster_port(const qpo_pg_cluster *c) {
    return c->port;
}

int qpo_pg_cluster_resume(qpo_pg_cluster *c, qpo_err *err) {
    return pg_ctl_start(c, err);
}

void qpo_pg_cluster_release(qpo_pg_cluster *c) {
    free(c);
}

void qpo_pg_cluster_stop(qpo_pg_cluster *c, bool remove) {
    if (!c)
        return;
    qpo_err ignored = {0};
    qpo_pg_cluster_halt(c, "immediate", &ignored);
    if (remove) {
        remove_tree(c->dir);
        unlink(c->log);
    }
    free(c);
}
