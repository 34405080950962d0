/* qpo's GPT-2 tokenizer against the reference: the npm package gpt-tokenizer (r50k_base, the
 * GPT-2 encoding), run by reference/encode.js at test time, on every TweetEval emotion tweet,
 * every GSM8K train question and answer, and a set of edge cases. 100% equal ids required.
 * Skips with a message when node, the npm package (npm ci in reference/) or the shared data
 * is absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgtest.h"
#include "tokenizer.h"

typedef struct texts {
    char **v;
    size_t n, cap;
} texts;

static void add_text(texts *t, const char *s, size_t len) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        t->v = realloc(t->v, t->cap * sizeof(char *));
        assert_non_null(t->v);
    }
    t->v[t->n] = malloc(len + 1);
    memcpy(t->v[t->n], s, len);
    t->v[t->n++][len] = '\0';
}

static size_t add_lines(texts *t, const char *path) {
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, before = t->n;
    ssize_t got;
    while ((got = getline(&line, &cap, fp)) >= 0) {
        if (got > 0 && line[got - 1] == '\n')
            got--;
        add_text(t, line, (size_t)got);
    }
    free(line);
    fclose(fp);
    return t->n - before;
}

static size_t add_gsm8k(texts *t, const char *path) {
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, before = t->n;
    while (getline(&line, &cap, fp) >= 0) {
        json_t *row = json_loads(line, 0, NULL);
        assert_non_null(row);
        const char *fields[] = {"question", "answer"};
        for (int i = 0; i < 2; i++) {
            json_t *v = json_object_get(row, fields[i]);
            assert_true(json_is_string(v));
            add_text(t, json_string_value(v), json_string_length(v));
        }
        json_decref(row);
    }
    free(line);
    fclose(fp);
    return t->n - before;
}

static void add_edge_cases(texts *t) {
    static const char *edge[] = {
        "",
        " ",
        "Hello world",
        " Hello world",
        "<|endoftext|>",
        "a <|endoftext|> b<|endoftext|>",
        "   ",
        "a   b",
        "a \n\n b",
        "end   ",
        "\t\t\ttabs\n",
        "don't I'm you're we've she'll he'd it's DON'T O'Neil 'quoted'",
        "1234567890 3.14159 1,000,000 -42 +7 0x1F 1e-10 ²³ ½ ٣ 四",
        "emoji 🙂👍🏽 👨‍👩‍👧 flags 🇫🇷🇯🇵 ❤️",
        "日本語のテキスト、中文文本。한국어 텍스트",
        "Ünïcödé àccents, Ελληνικά, русский, עברית, العربية, हिन्दी",
        "nbsp\xc2\xa0here, em\xe2\x80\x83space, ideographic\xe3\x80\x80space, zwsp\xe2\x80\x8bhere",
        "line\r\nbreaks\rand\x0bvertical\x0c feeds",
        "!!!??? ... --- *** ### @user #hashtag http://t.co/abc123",
        "mixed123abc ABC123 a1b2c3",
    };
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++)
        add_text(t, edge[i], strlen(edge[i]));
    /* A long line (gpt-tokenizer is slow on very long words, so 20 kB). */
    char *s = malloc(20001);
    for (size_t i = 0; i < 20000; i++)
        s[i] = "The quick brown fox, 12 jumps!  "[i % 32];
    add_text(t, s, 20000);
    memset(s, 'x', 2000);
    add_text(t, s, 2000);
    free(s);
}

static bool node_ready(const char *ref_dir) {
    char probe[4096];
    snprintf(probe, sizeof(probe), "%s/node_modules/gpt-tokenizer/package.json", ref_dir);
    struct stat st;
    if (stat(probe, &st) != 0) {
        print_message("skipped: %s is absent (run npm ci in %s)\n", probe, ref_dir);
        return false;
    }
    if (system("node --version >/dev/null 2>&1") != 0) {
        print_message("skipped: node is not on PATH\n");
        return false;
    }
    return true;
}

/* Writes each text as one JSON string a line, runs encode.js, returns its output lines. */
static texts run_reference(const texts *in, const char *ref_dir, const char *tmp) {
    char inpath[256], outpath[256];
    snprintf(inpath, sizeof(inpath), "%s/texts.jsonl", tmp);
    snprintf(outpath, sizeof(outpath), "%s/ids.txt", tmp);
    FILE *fp = fopen(inpath, "w");
    assert_non_null(fp);
    for (size_t i = 0; i < in->n; i++) {
        json_t *s = json_string(in->v[i]);
        if (!s)
            fail_msg("text %zu is not valid UTF-8", i);
        char *j = json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT);
        fprintf(fp, "%s\n", j);
        free(j);
        json_decref(s);
    }
    fclose(fp);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "node '%s/encode.js' < '%s' > '%s'", ref_dir, inpath, outpath);
    assert_int_equal(system(cmd), 0);
    texts out = {0};
    add_lines(&out, outpath);
    unlink(inpath);
    unlink(outpath);
    return out;
}

static void free_texts(texts *t) {
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
}

static void test_equal_to_reference(void **state) {
    const char *shared = qpo_test_shared_data();
    if (!shared) {
        print_message("skipped: ../shared/data is absent\n");
        skip();
    }
    const char *ref_dir = QPO_TOK_REF_DIR;
    if (!node_ready(ref_dir))
        skip();
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/gpt2_bpe", shared);
    qpo_tokenizer *tok = qpo_tokenizer_load_bpe(path, err, sizeof(err));
    if (!tok)
        fail_msg("%s", err);

    texts in = {0};
    const char *tweets[] = {"train", "val", "test"};
    size_t n_tweets = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/tweet_eval_emotion/%s_text.txt", shared, tweets[i]);
        n_tweets += add_lines(&in, path);
    }
    snprintf(path, sizeof(path), "%s/gsm8k/train.jsonl", shared);
    size_t n_gsm = add_gsm8k(&in, path);
    add_edge_cases(&in);

    char tmp[] = "/tmp/qpo_tokref_XXXXXX";
    assert_non_null(mkdtemp(tmp));
    texts want = run_reference(&in, ref_dir, tmp);
    rmdir(tmp);
    assert_int_equal(want.n, in.n);

    size_t mismatches = 0, tokens = 0;
    int32_t *ids = NULL;
    size_t cap = 0;
    char *line = malloc(1 << 20);
    for (size_t i = 0; i < in.n; i++) {
        size_t n = 0;
        assert_int_equal(qpo_tokenizer_encode(tok, in.v[i], strlen(in.v[i]), &ids, &n, &cap), 0);
        tokens += n;
        size_t at = 0;
        line[0] = '\0';
        for (size_t k = 0; k < n && at < (1 << 20) - 16; k++)
            at += (size_t)sprintf(line + at, k ? " %d" : "%d", (int)ids[k]);
        if (strcmp(line, want.v[i]) != 0 && mismatches++ < 5)
            print_message("mismatch on text %zu '%.200s':\n  qpo: %.300s\n  ref: %.300s\n", i,
                          in.v[i], line, want.v[i]);
    }
    print_message("%zu texts (%zu tweets, %zu GSM8K fields, %zu edge cases), %zu tokens: %zu "
                  "mismatches\n",
                  in.n, n_tweets, n_gsm, in.n - n_tweets - n_gsm, tokens, mismatches);
    assert_int_equal(mismatches, 0);
    assert_true(n_tweets > 5000 && n_gsm > 14000);
    free(line);
    free(ids);
    free_texts(&in);
    free_texts(&want);
    qpo_tokenizer_free(tok);
}

/* The reference must be GPT-2's encoding: gpt-tokenizer's bytes for every id equal those of
 * ../shared/data/gpt2_bpe/encoder.json. */
static void test_reference_is_gpt2(void **state) {
    const char *shared = qpo_test_shared_data();
    if (!shared) {
        print_message("skipped: ../shared/data is absent\n");
        skip();
    }
    if (!node_ready(QPO_TOK_REF_DIR))
        skip();
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "node '%s/check_vocab.js' '%s/gpt2_bpe/encoder.json'",
             QPO_TOK_REF_DIR, shared);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512] = "";
    assert_non_null(fgets(line, sizeof(line), p));
    assert_int_equal(pclose(p), 0);
    json_t *j = json_loads(line, 0, NULL);
    assert_non_null(j);
    print_message("gpt-tokenizer r50k_base vs encoder.json: %s", line);
    assert_int_equal(json_integer_value(json_object_get(j, "checked")), 50256);
    assert_int_equal(json_integer_value(json_object_get(j, "mismatches")), 0);
    json_decref(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_is_gpt2),
        cmocka_unit_test(test_equal_to_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
