#include "simproc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest.h"

#define MAX_ARGS 32
#define MAX_CHILDREN 64

/* Servers still running when the test program exits (a failed assert skips the stop) are
 * killed, so ctest is not left waiting on their output. */
static pid_t children[MAX_CHILDREN];
static int n_children;

static void kill_children(void) {
    for (int i = 0; i < n_children; i++)
        if (children[i] > 0 && kill(children[i], SIGKILL) == 0)
            waitpid(children[i], NULL, 0);
}

static void remember(pid_t pid) {
    if (n_children == 0)
        atexit(kill_children);
    if (n_children < MAX_CHILDREN)
        children[n_children++] = pid;
}

static void forget(pid_t pid) {
    for (int i = 0; i < n_children; i++)
        if (children[i] == pid)
            children[i] = 0;
}

static void build_argv(const char *first[], const char *const *args, char **argv) {
    int n = 0;
    for (int i = 0; first[i]; i++)
        argv[n++] = (char *)first[i];
    for (int i = 0; args && args[i] && n < MAX_ARGS - 1; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
}

void simproc_start(simproc *p, const char *const *args) {
    const char *first[] = {qpo_test_binary(), "sim-llm", "--listen", "127.0.0.1:0", NULL};
    char *argv[MAX_ARGS];
    build_argv(first, args, argv);
    int out[2];
    assert_int_equal(pipe(out), 0);
    unsigned limit = (unsigned)qpo_test_seconds(300); /* a hung server must not hang the suite */
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        alarm(limit);
        unsetenv("DATABASE_URL"); /* only the items the test asks for */
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    remember(p->pid);
    FILE *f = fdopen(out[0], "r");
    char line[256] = "";
    if (!fgets(line, sizeof(line), f)) {
        int status;
        waitpid(p->pid, &status, 0);
        fail_msg("qpo sim-llm printed no address (exit status %d)", WEXITSTATUS(status));
    }
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    assert_true(!strncmp(line, "http://127.0.0.1:", 17));
    snprintf(p->url, sizeof(p->url), "%s", line);
}

int simproc_stop(simproc *p, int sig) {
    int status;
    kill(p->pid, sig);
    assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
    forget(p->pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int simproc_run(const char *const *args, char *err_out, size_t err_cap) {
    const char *first[] = {qpo_test_binary(), "sim-llm", NULL};
    char *argv[MAX_ARGS];
    build_argv(first, args, argv);
    int errp[2];
    assert_int_equal(pipe(errp), 0);
    unsigned limit = (unsigned)qpo_test_seconds(20);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(limit);
        unsetenv("DATABASE_URL");
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(errp[1], 2);
        close(errp[0]);
        close(errp[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(errp[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < err_cap && (r = read(errp[0], err_out + n, err_cap - 1 - n)) > 0)
        n += (size_t)r;
    err_out[n] = '\0';
    close(errp[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
