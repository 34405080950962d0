/* Commands whose implementation is still being written: each says so and exits 1. */
#include <stdio.h>

#include "commands.h"

static int pending(const char *name) {
    fprintf(stderr, "qpo: error: '%s' is not implemented yet in this build\n", name);
    return 1;
}

int qpo_cmd_submit(int argc, char **argv) {
    return pending(argv[0]);
}
int qpo_cmd_scheduler(int argc, char **argv) {
    return pending(argv[0]);
}
int qpo_cmd_status(int argc, char **argv) {
    return pending(argv[0]);
}
int qpo_cmd_resume(int argc, char **argv) {
    return pending(argv[0]);
}
int qpo_cmd_cancel(int argc, char **argv) {
    return pending(argv[0]);
}
int qpo_cmd_results(int argc, char **argv) {
    return pending(argv[0]);
}
