/* The official OpenAI Node client (npm package `openai`, pinned in openai-client/) against
 * `qpo sim-llm` started as a process: openai-client/check.mjs does the checks, this test runs
 * it and wants exit 0. Skips when node or the installed package is missing (./qpo.sh runs
 * `npm ci` there before the tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest.h"
#include "simproc.h"

static void test_official_client(void **state) {
    struct stat st;
    if (stat(OPENAI_CLIENT_DIR "/node_modules/openai/package.json", &st) != 0) {
        print_message("SKIP: npm package openai not installed: run `npm ci` in %s\n",
                      OPENAI_CLIENT_DIR);
        skip();
    }
    if (system("node --version >/dev/null 2>&1") != 0) {
        print_message("SKIP: node is not installed\n");
        skip();
    }
    const char *with_data[] = {"--data", qpo_test_shared_data(), NULL};
    simproc p;
    simproc_start(&p, qpo_test_shared_data() ? with_data : NULL);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "node %s/check.mjs %s", OPENAI_CLIENT_DIR, p.url);
    int rc = system(cmd);
    assert_int_equal(simproc_stop(&p, SIGTERM), 0);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_official_client)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
