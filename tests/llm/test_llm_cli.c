/* `qpo target check|score|chat` run as a process against the evhttp test server: the JSON
 * they print, the recipe's math messages they send, their exit codes, and the API key never
 * reaching their output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "llm_test_server.h"
#include "pgtest.h"

#define SECRET "sk-cli-SECRET-77"

static char out[65536];

/* Runs qpo with args (NULL-terminated), stdout and stderr into `out`; returns the exit code. */
static int run_qpo(const char *const *args) {
    const char *argv[32] = {qpo_test_binary()};
    size_t n = 1;
    for (; args[n - 1] && n < 31; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t k;
    while ((k = read(fd[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)k;
    out[len] = 0;
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static json_t *last_json_line(void) {
    char *nl = strrchr(out, '{') ? strstr(out, "{\"") : NULL;
    json_t *j = nl ? json_loads(nl, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    if (!j)
        fail_msg("no JSON in output: %s", out);
    return j;
}

static int setup(void **state) {
    *state = ts_start();
    setenv("QPO_TEST_CLI_KEY", SECRET, 1);
    return 0;
}

static int teardown(void **state) {
    ts_stop(*state);
    return 0;
}

static void test_score_json(void **state) {
    ts_server *s = *state;
    const char *args[] = {"target",         "score",
                          "--target",       ts_url(s),
                          "--model",        "m",
                          "--api-key-env",  "QPO_TEST_CLI_KEY",
                          "--context",      "Tweet: so sad\nEmotion:",
                          "--continuation", " Sadness",
                          "--json",         NULL};
    assert_int_equal(run_qpo(args), 0);
    assert_null(strstr(out, "SECRET"));
    json_t *j = last_json_line();
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "tokens"), 0)),
                        " Sadness");
    assert_int_equal(json_array_size(json_object_get(j, "logprobs")), 1);
    assert_float_equal(json_number_value(json_array_get(json_object_get(j, "logprobs"), 0)),
                       ts_synth_logprob(3), 1e-9);
    assert_float_equal(json_number_value(json_object_get(j, "mean_nll")), 0.5, 1e-9);
    json_decref(j);
    char *auth = ts_last_auth(s);
    assert_string_equal(auth, "Bearer " SECRET);
    free(auth);
}

static void test_chat_json_and_messages(void **state) {
    ts_server *s = *state;
    const char *args[] = {"target",   "chat",      "--target", ts_url(s), "--model",
                          "m",        "--task",    "gsm8k",    "--text",  "2 plus 3?",
                          "--prompt", "Add them.", "--json",   NULL};
    assert_int_equal(run_qpo(args), 0);
    json_t *j = last_json_line();
    assert_string_equal(json_string_value(json_object_get(j, "answer")), "5");
    assert_float_equal(json_number_value(json_object_get(j, "mean_nll")), 0.25, 1e-9);
    assert_string_equal(json_string_value(json_object_get(j, "text")),
                        "2 plus 3 is 5.\nFinal Answer: 5");
    json_decref(j);
    /* The recipe's messages: the fixed system line, then question "\n" prompt. */
    char *body = ts_last_body(s);
    json_t *req = json_loads(body, 0, NULL);
    json_t *msgs = json_object_get(req, "messages");
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "content")),
                        "The final answer should be expressed as a single number, prefixed by "
                        "'Final Answer: '.");
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 1), "content")),
                        "2 plus 3?\nAdd them.");
    assert_true(json_is_true(json_object_get(req, "logprobs")));
    json_decref(req);
    free(body);
}

static void test_check(void **state) {
    ts_server *s = *state;
    const char *args[] = {"target", "check", "--target", ts_url(s), "--model", "m", "--json", NULL};
    assert_int_equal(run_qpo(args), 0);
    json_t *j = last_json_line();
    assert_true(json_is_true(json_object_get(j, "reachable")));
    assert_true(json_is_true(json_object_get(json_object_get(j, "label_scoring"), "supported")));
    assert_true(json_is_true(json_object_get(json_object_get(j, "math"), "supported")));
    json_decref(j);
    /* A server without echo logprobs: reachable, label scoring unsupported. */
    ts_set_default(s, (ts_action){.kind = TS_BODY,
                                  .body = "{\"choices\":[{\"text\":\"x\",\"logprobs\":null,"
                                          "\"message\":{\"content\":\"x\"}}]}"});
    assert_int_equal(run_qpo(args), 0);
    j = last_json_line();
    json_t *label = json_object_get(j, "label_scoring");
    assert_false(json_is_true(json_object_get(label, "supported")));
    assert_string_equal(json_string_value(json_object_get(label, "status")), "no_logprobs");
    json_decref(j);
    const char *req[] = {"target", "check",     "--target", ts_url(s), "--model",
                         "m",      "--require", "label",    NULL};
    assert_int_equal(run_qpo(req), 1);
}

/* A server that answers 500 or garbage used to pass the check (exit 0) and fail the run. */
static void test_check_fails_on_errors_and_garbage(void **state) {
    ts_server *s = *state;
    const char *args[] = {"target", "check",     "--target", ts_url(s), "--model",
                          "m",      "--retries", "0",        NULL};
    ts_set_default(s,
                   (ts_action){.kind = TS_STATUS, .status = 500, .body = "{\"error\":\"boom\"}"});
    assert_int_equal(run_qpo(args), 1);
    assert_non_null(strstr(out, "qpo: error: the target answered with an error (label scoring)"));
    assert_non_null(strstr(out, "server"));
    ts_set_default(s, (ts_action){.kind = TS_BODY, .body = "<html>It works!</html>"});
    assert_int_equal(run_qpo(args), 1);
    assert_non_null(strstr(out, "qpo: error: the target answered with an error (label scoring)"));
    assert_non_null(strstr(out, "malformed"));
    ts_set_default(s, (ts_action){.kind = TS_BODY, .body = "{\"choices\": 7}"});
    assert_int_equal(run_qpo(args), 1);
    assert_non_null(strstr(out, "the target answered with an error"));
}

/* A target behind a private CA: refused with the system's CAs, accepted with --ca-file. */
static void test_check_verifies_tls_with_ca_file(void **state) {
    (void)state;
    ts_server *tls = ts_start_tls();
    char ca[] = "/tmp/qpo-ca-XXXXXX";
    int fd = mkstemp(ca);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ts_write_cert(tls, ca), 0);
    const char *plain[] = {"target", "check",     "--target", ts_url(tls), "--model",
                           "m",      "--retries", "0",        NULL};
    assert_int_equal(run_qpo(plain), 1);
    assert_non_null(strstr(out, "unreachable"));
    const char *with_ca[] = {"target", "check",     "--target", ts_url(tls), "--model",
                             "m",      "--ca-file", ca,         "--json",    NULL};
    assert_int_equal(run_qpo(with_ca), 0);
    json_t *j = last_json_line();
    assert_true(json_is_true(json_object_get(json_object_get(j, "math"), "supported")));
    json_decref(j);
    unlink(ca);
    ts_stop(tls);
}

static void test_unreachable_and_usage(void **state) {
    const char *down[] = {"target",    "check", "--target", "http://127.0.0.1:1", "--model", "m",
                          "--retries", "0",     NULL};
    assert_int_equal(run_qpo(down), 1);
    assert_non_null(strstr(out, "unreachable"));
    const char *nomodel[] = {"target", "score", "--target", "http://127.0.0.1:1", NULL};
    assert_int_equal(run_qpo(nomodel), 2);
    const char *badtask[] = {"target",  "chat", "--target", "http://127.0.0.1:1",
                             "--model", "m",    "--task",   "imdb",
                             "--text",  "x",    NULL};
    assert_int_equal(run_qpo(badtask), 2);
    const char *nokey[] = {"target",  "check", "--target",      "http://127.0.0.1:1",
                           "--model", "m",     "--api-key-env", "QPO_TEST_UNSET_VAR_X",
                           NULL};
    unsetenv("QPO_TEST_UNSET_VAR_X");
    assert_int_equal(run_qpo(nokey), 2);
    assert_non_null(strstr(out, "QPO_TEST_UNSET_VAR_X"));
    /* Refused before any request, so the password reaches neither the wire nor the screen. */
    const char *creds[] = {"target",  "check", "--target", "http://bob:s3cret-pw@127.0.0.1:1",
                           "--model", "m",     NULL};
    assert_int_equal(run_qpo(creds), 2);
    assert_non_null(strstr(out, "--target must not hold credentials"));
    assert_null(strstr(out, "s3cret-pw"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_score_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_json_and_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_fails_on_errors_and_garbage, setup, teardown),
        cmocka_unit_test(test_check_verifies_tls_with_ca_file),
        cmocka_unit_test_setup_teardown(test_unreachable_and_usage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
