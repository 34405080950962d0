/* `qpo tokenize` and `qpo bench tokenizer` as processes: encoding and decoding through
 * stdin/stdout, and the errors a user meets (no or bad --bpe directory, ids that are not in
 * the vocabulary), each with its exit code and no partial output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest.h"

static char dir[64];
static char out[1 << 16], errout[1 << 14];

static const char *in_dir(const char *name) {
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

static void put(const char *name, const char *text) {
    FILE *fp = fopen(in_dir(name), "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void slurp(const char *name, char *buf, size_t cap) {
    FILE *fp = fopen(in_dir(name), "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

/* Runs `env qpo ARGS < input`, capturing stdout and stderr; returns the exit code. */
static int qpo(const char *env, const char *args, const char *input) {
    put("stdin", input);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "env -u QPO_BPE_DIR %s '%s' %s < '%s/stdin' > '%s/stdout' "
             "2> '%s/stderr'",
             env, qpo_test_binary(), args, dir, dir, dir);
    int status = system(cmd);
    assert_true(WIFEXITED(status));
    slurp("stdout", out, sizeof(out));
    slurp("stderr", errout, sizeof(errout));
    return WEXITSTATUS(status);
}

static const char *bpe_dir(void) {
    static char path[4096];
    const char *shared = qpo_test_shared_data();
    if (!shared)
        return NULL;
    snprintf(path, sizeof(path), "%s/gpt2_bpe", shared);
    return path;
}

#define NEED_BPE()                                                                                 \
    do {                                                                                           \
        if (!bpe_dir()) {                                                                          \
            print_message("skipped: ../shared/data/gpt2_bpe is absent\n");                         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void test_encode_and_decode(void **state) {
    NEED_BPE();
    char args[4200];
    snprintf(args, sizeof(args), "tokenize --bpe '%s'", bpe_dir());
    assert_int_equal(qpo("", args, "Hello world\n Hello world\n\n<|endoftext|>"), 0);
    /* The last line has no newline; an empty line gives an empty line. */
    assert_string_equal(out, "15496 995\n18435 995\n\n27 91 437 1659 5239 91 29\n");
    assert_string_equal(errout, "");

    snprintf(args, sizeof(args), "tokenize --decode --bpe '%s'", bpe_dir());
    assert_int_equal(qpo("", args, "15496 995\n\n50256 18435\n"), 0);
    assert_string_equal(out, "Hello world\n\n<|endoftext|> Hello\n");

    /* QPO_BPE_DIR stands in for --bpe. */
    char env[4200];
    snprintf(env, sizeof(env), "QPO_BPE_DIR='%s'", bpe_dir());
    assert_int_equal(qpo(env, "tokenize", "Hello world\n"), 0);
    assert_string_equal(out, "15496 995\n");
}

static void test_byte_tokenizer(void **state) {
    assert_int_equal(qpo("", "tokenize --bytes", "Hi!\n"), 0);
    assert_string_equal(out, "72 105 33\n");
    assert_int_equal(qpo("", "tokenize --bytes --decode", "72 105 256\n"), 0);
    assert_string_equal(out, "Hi<|endoftext|>\n");
}

/* /dev/zero has no newline: getline() grew its buffer until memory ran out. The line cap
 * stops it with an error naming the line, and nothing is written. */
static void test_endless_line_refused(void **state) {
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' tokenize --bytes < /dev/zero > '%s/stdout' 2> '%s/stderr'",
             qpo_test_binary(), dir, dir);
    int status = system(cmd);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    slurp("stdout", out, sizeof(out));
    slurp("stderr", errout, sizeof(errout));
    assert_string_equal(out, "");
    assert_non_null(strstr(errout, "stdin line 1: longer than 1048576 bytes"));
    /* A long line under the cap is still text. */
    char *big = malloc(1000001);
    memset(big, 'a', 1000000);
    big[1000000] = '\0';
    assert_int_equal(qpo("", "tokenize --bytes", big), 0);
    free(big);
}

static void test_missing_vocabulary(void **state) {
    assert_int_equal(qpo("", "tokenize", "Hello\n"), 2);
    assert_non_null(strstr(errout, "no GPT-2 BPE vocabulary"));
    assert_non_null(strstr(errout, "--bpe DIR"));
    assert_non_null(strstr(errout, "QPO_BPE_DIR"));
    assert_string_equal(out, "");
}

static void test_bad_bpe_dir(void **state) {
    char args[512];
    /* An empty directory: the error names it and the files it looked for. */
    mkdir(in_dir("bpe"), 0755);
    snprintf(args, sizeof(args), "tokenize --bpe '%s'", in_dir("bpe"));
    assert_int_equal(qpo("", args, "Hello\n"), 2);
    assert_non_null(strstr(errout, "encoder.json"));
    assert_non_null(strstr(errout, "/bpe"));
    assert_string_equal(out, "");
    /* encoder.json without vocab.bpe: the error names vocab.bpe. */
    put("bpe/encoder.json", "{\"a\": 0}");
    assert_int_equal(qpo("", args, "Hello\n"), 2);
    assert_non_null(strstr(errout, "encoder.json"));
    assert_non_null(strstr(errout, "not a GPT-2 encoder"));
    unlink(in_dir("bpe/encoder.json"));
    if (bpe_dir()) {
        char cmd[8400];
        snprintf(cmd, sizeof(cmd), "cp '%s/encoder.json' '%s'", bpe_dir(), in_dir("bpe"));
        assert_int_equal(system(cmd), 0);
        assert_int_equal(qpo("", args, "Hello\n"), 2);
        assert_non_null(strstr(errout, "vocab.bpe"));
        assert_non_null(strstr(errout, "cannot open"));
        unlink(in_dir("bpe/encoder.json"));
    }
    rmdir(in_dir("bpe"));
}

static void test_decode_errors_name_the_line(void **state) {
    /* Out of range on line 2: exit 2, the line named, nothing written for line 1 either. */
    assert_int_equal(qpo("", "tokenize --bytes --decode", "72 105\n72 257\n"), 2);
    assert_non_null(strstr(errout, "line 2"));
    assert_non_null(strstr(errout, "257"));
    assert_string_equal(out, "");
    assert_int_equal(qpo("", "tokenize --bytes --decode", "72 -1\n"), 2);
    assert_non_null(strstr(errout, "line 1"));
    assert_int_equal(qpo("", "tokenize --bytes --decode", "\n72 abc\n"), 2);
    assert_non_null(strstr(errout, "line 2"));
    assert_non_null(strstr(errout, "'abc' is not a token id"));
    if (bpe_dir()) {
        char args[4200];
        snprintf(args, sizeof(args), "tokenize --decode --bpe '%s'", bpe_dir());
        assert_int_equal(qpo("", args, "15496\n15496\n50257\n"), 2);
        assert_non_null(strstr(errout, "line 3"));
        assert_non_null(strstr(errout, "0..50256"));
        assert_string_equal(out, "");
    }
}

static void test_usage(void **state) {
    assert_int_equal(qpo("", "tokenize --help", ""), 0);
    assert_non_null(strstr(out, "usage: qpo tokenize"));
    assert_int_equal(qpo("", "tokenize --nope", ""), 2);
    assert_int_equal(qpo("", "tokenize --bytes extra", ""), 2);
    assert_non_null(strstr(errout, "unexpected argument"));
    assert_int_equal(qpo("", "tokenize --bytes --bpe /x", ""), 2);
    assert_int_equal(qpo("", "bench tokenizer", ""), 2);
    assert_non_null(strstr(errout, "--file"));
}

/* The benchmark runs and reports (its speed is measured, never asserted). */
static void test_bench_runs(void **state) {
    NEED_BPE();
    put("text.txt", "Hello world, this is a short text.\nAnd a second line with 123 numbers.\n");
    char args[8400];
    snprintf(args, sizeof(args),
             "bench tokenizer --file '%s' --bpe '%s' --seconds 0.05 --no-baseline --json",
             in_dir("text.txt"), bpe_dir());
    assert_int_equal(qpo("", args, ""), 0);
    assert_non_null(strstr(out, "\"mb_per_s\""));
    assert_non_null(strstr(out, "\"baseline\":null"));
    assert_non_null(strstr(out, "\"tokens\":17"));
}

static int setup(void **state) {
    snprintf(dir, sizeof(dir), "/tmp/qpo_tokcli_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    const char *files[] = {"stdin", "stdout", "stderr", "text.txt"};
    for (size_t i = 0; i < 4; i++)
        unlink(in_dir(files[i]));
    return rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_and_decode),
        cmocka_unit_test(test_byte_tokenizer),
        cmocka_unit_test(test_endless_line_refused),
        cmocka_unit_test(test_missing_vocabulary),
        cmocka_unit_test(test_bad_bpe_dir),
        cmocka_unit_test(test_decode_errors_name_the_line),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_bench_runs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
