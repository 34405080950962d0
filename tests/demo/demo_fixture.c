/* Running `qpo demo` as a process from the tests. See demo_fixture.h. */
#include "demo_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest.h"

pid_t demo_start(char *const args[], const char *log) {
    char *argv[24] = {(char *)qpo_test_binary(), "demo"};
    int n = 2;
    for (int i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    /* The demo's own limit on the simulator's start-up, scaled as the tests' are. */
    char sim_start[32];
    snprintf(sim_start, sizeof sim_start, "%.0f", qpo_test_seconds(10));
    pid_t pid = fork();
    if (pid == 0) {
        setenv("QPO_DEMO_SIM_START_S", sim_start, 1);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

int demo_wait_exit(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *demo_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 1);
    if (!f)
        return buf;
    size_t len = 0;
    char chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        buf = realloc(buf, len + r + 1);
        memcpy(buf + len, chunk, r);
        len += r;
        buf[len] = '\0';
    }
    fclose(f);
    return buf;
}
