/* qpo-policy: `qpo policy ...` and `qpo bench policy ...` alone, for the GPU machine's
 * policy-only build (no PostgreSQL or HTTP libraries there): the same command code as the qpo
 * binary, dispatched as cli/main.c does. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "policy"))
        return qpo_cmd_policy(argc - 1, argv + 1);
    if (argc >= 3 && !strcmp(argv[1], "bench") && !strcmp(argv[2], "policy"))
        return qpo_cmd_bench_policy(argc - 2, argv + 2);
    fprintf(stderr, "usage: qpo-policy policy ... | qpo-policy bench policy ...\n");
    return 2;
}
