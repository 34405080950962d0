/* Child processes of `qpo demo`. See children.h. */
#include "children.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *self_path(void) {
    static char path[4096];
    if (!path[0]) {
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        path[n > 0 ? n : 0] = '\0';
    }
    return path;
}

/* In the child: argv[0] becomes this binary, then exec. */
static void exec_self(char *const argv[]) {
    size_t n = 0;
    while (argv[n])
        n++;
    char **full = calloc(n + 2, sizeof(char *));
    if (!full)
        _exit(127);
    full[0] = (char *)self_path();
    memcpy(full + 1, argv, n * sizeof(char *));
    execv(full[0], full);
    fprintf(stderr, "qpo demo: cannot run %s: %s\n", full[0], strerror(errno));
    _exit(127);
}

static int redirect(int fd, const char *path) {
    int f = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (f < 0)
        return -1;
    int rc = dup2(f, fd);
    close(f);
    return rc < 0 ? -1 : 0;
}

int demo_spawn(demo_child *c, char *const argv[], const char *out_path, qpo_err *err) {
    pid_t pid = fork();
    if (pid < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Ctrl-C reaches the whole foreground group; the demo itself stops its children in
         * order, so they ignore it and wait for its SIGTERM. */
        signal(SIGINT, SIG_IGN);
        if (redirect(STDERR_FILENO, c->log) < 0 ||
            redirect(STDOUT_FILENO, out_path ? out_path : c->log) < 0)
            _exit(127);
        exec_self(argv);
    }
    c->pid = pid;
    c->status = 0;
    return 0;
}

static int exit_code(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
}

static void capture(int fd, char **out) {
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1024 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    *out = buf;
}

int demo_run(char *const argv[], char **out, bool quiet, qpo_err *err) {
    int fds[2] = {-1, -1};
    if (out && pipe(fds) < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (out) {
            close(fds[0]);
            dup2(fds[1], STDOUT_FILENO);
            close(fds[1]);
        }
        if (quiet && redirect(STDERR_FILENO, "/dev/null") < 0)
            _exit(127);
        exec_self(argv);
    }
    if (out) {
        close(fds[1]);
        capture(fds[0], out);
        close(fds[0]);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return exit_code(status);
}

bool demo_child_exited(demo_child *c) {
    if (c->pid <= 0)
        return true;
    int status = 0;
    if (waitpid(c->pid, &status, WNOHANG) != c->pid)
        return false;
    c->status = status;
    c->pid = 0;
    return true;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void demo_children_stop(demo_child *c, size_t n, int grace_ms) {
    for (size_t i = 0; i < n; i++)
        if (c[i].pid > 0)
            kill(c[i].pid, SIGTERM);
    for (int waited = 0;; waited += 50) {
        bool alive = false;
        for (size_t i = 0; i < n; i++)
            alive |= !demo_child_exited(&c[i]);
        if (!alive)
            return;
        if (waited >= grace_ms)
            break;
        sleep_ms(50);
    }
    for (size_t i = 0; i < n; i++)
        if (c[i].pid > 0) {
            kill(c[i].pid, SIGKILL);
            while (waitpid(c[i].pid, &c[i].status, 0) < 0 && errno == EINTR)
                ;
            c[i].pid = 0;
        }
}
