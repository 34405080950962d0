/* The tokenizer on its own: the byte tokenizer, GPT-2's known vectors, pre-tokenizer splits,
 * invalid UTF-8, long inputs, round trips, the merge order on tiny hand-made vocabularies,
 * and load errors that name the file and line. Comparison with the reference tokenizer on
 * real text is in test_tokenizer_reference.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"
#include "tokenizer.h"

static char err[1024];
static qpo_tokenizer *gpt2; /* NULL when ../shared/data is absent */

typedef struct ids {
    int32_t *v;
    size_t n, cap;
} ids;

static ids enc(const qpo_tokenizer *tok, const char *s, size_t len) {
    ids r = {0};
    assert_int_equal(qpo_tokenizer_encode(tok, s, len, &r.v, &r.n, &r.cap), 0);
    return r;
}

static ids encs(const qpo_tokenizer *tok, const char *s) {
    return enc(tok, s, strlen(s));
}

static void assert_round_trip(const qpo_tokenizer *tok, const char *s, size_t len) {
    ids r = enc(tok, s, len);
    size_t out_len;
    char *back = qpo_tokenizer_decode(tok, r.v, r.n, &out_len, err, sizeof(err));
    if (!back)
        fail_msg("decode failed: %s", err);
    assert_int_equal(out_len, len);
    assert_memory_equal(back, s, len);
    assert_int_equal(back[len], '\0');
    free(back);
    free(r.v);
}

/* The text of each token of s, joined with '|': shows how the text was split. */
static char *pieces(const qpo_tokenizer *tok, const char *s) {
    ids r = encs(tok, s);
    char *out = calloc(1, 4096);
    for (size_t i = 0; i < r.n; i++) {
        char *t = qpo_tokenizer_decode(tok, &r.v[i], 1, NULL, err, sizeof(err));
        assert_non_null(t);
        if (i)
            strcat(out, "|");
        strcat(out, t);
        free(t);
    }
    free(r.v);
    return out;
}

static void assert_pieces(const qpo_tokenizer *tok, const char *s, const char *want) {
    char *got = pieces(tok, s);
    if (strcmp(got, want) != 0)
        fail_msg("'%s' split as '%s', expected '%s'", s, got, want);
    free(got);
}

#define NEED_GPT2()                                                                                \
    do {                                                                                           \
        if (!gpt2) {                                                                               \
            print_message("skipped: ../shared/data/gpt2_bpe is absent\n");                         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- the byte tokenizer ---- */

static void test_byte_tokenizer(void **state) {
    qpo_tokenizer *tok = qpo_tokenizer_new_bytes();
    assert_int_equal(qpo_tokenizer_vocab_size(tok), 257);
    assert_int_equal(qpo_tokenizer_eos(tok), 256);
    const char text[] = "a\x00\xff<|endoftext|>";
    ids r = enc(tok, text, sizeof(text) - 1);
    assert_int_equal(r.n, sizeof(text) - 1);
    assert_int_equal(r.v[0], 'a');
    assert_int_equal(r.v[1], 0);
    assert_int_equal(r.v[2], 255);
    assert_round_trip(tok, text, sizeof(text) - 1);
    int32_t eos[2] = {'x', 256};
    size_t len;
    char *s = qpo_tokenizer_decode(tok, eos, 2, &len, err, sizeof(err));
    assert_string_equal(s, "x<|endoftext|>");
    free(s);
    int32_t bad[2] = {1, 257};
    assert_null(qpo_tokenizer_decode(tok, bad, 2, &len, err, sizeof(err)));
    assert_non_null(strstr(err, "257"));
    bad[1] = -1;
    assert_null(qpo_tokenizer_decode(tok, bad, 2, &len, err, sizeof(err)));
    free(r.v);
    qpo_tokenizer_free(tok);
}

/* A subset renumbers the base's ids in list order, sends every other id to unk (no text) and
 * keeps eos last; a list naming eos, an id twice or an id outside the base is refused. */
static void test_subset(void **state) {
    const int32_t keep[3] = {'c', 'a', 't'};
    qpo_tokenizer *tok =
        qpo_tokenizer_new_subset(qpo_tokenizer_new_bytes(), keep, 3, err, sizeof(err));
    assert_non_null(tok);
    assert_int_equal(qpo_tokenizer_vocab_size(tok), 5);
    assert_int_equal(qpo_tokenizer_eos(tok), 4);
    ids r = enc(tok, "tacks", 5);
    assert_int_equal(r.n, 5);
    const int32_t want[5] = {2, 1, 0, 3, 3}; /* t a c, then k and s are unk */
    assert_memory_equal(r.v, want, sizeof(want));
    const int32_t out[4] = {0, 3, 1, 4};
    size_t len, n;
    char *s = qpo_tokenizer_decode(tok, out, 4, &len, err, sizeof(err));
    assert_string_equal(s, "ca<|endoftext|>");
    free(s);
    int32_t base_ids[3] = {'t', 'x', 256};
    qpo_tokenizer_subset_map(tok, base_ids, 3);
    assert_int_equal(base_ids[0], 2);
    assert_int_equal(base_ids[1], 3);
    assert_int_equal(base_ids[2], 4);
    const int32_t *back = qpo_tokenizer_subset_ids(tok, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(back, keep, sizeof(keep));
    free(r.v);
    qpo_tokenizer_free(tok);
    qpo_tokenizer *plain = qpo_tokenizer_new_bytes();
    assert_null(qpo_tokenizer_subset_ids(plain, &n));
    assert_int_equal(n, 0);
    qpo_tokenizer_free(plain);

    const int32_t with_eos[2] = {'a', 256}, twice[2] = {'a', 'a'}, outside[1] = {300};
    assert_null(qpo_tokenizer_new_subset(qpo_tokenizer_new_bytes(), with_eos, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "eos"));
    assert_null(qpo_tokenizer_new_subset(qpo_tokenizer_new_bytes(), twice, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "twice"));
    assert_null(qpo_tokenizer_new_subset(qpo_tokenizer_new_bytes(), outside, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "outside"));
}

/* ---- GPT-2 ---- */

static void test_known_vectors(void **state) {
    NEED_GPT2();
    assert_int_equal(qpo_tokenizer_vocab_size(gpt2), 50257);
    assert_int_equal(qpo_tokenizer_eos(gpt2), 50256);
    ids r = encs(gpt2, "Hello world");
    assert_int_equal(r.n, 2);
    assert_int_equal(r.v[0], 15496);
    assert_int_equal(r.v[1], 995);
    free(r.v);
    r = encs(gpt2, " Hello world");
    assert_int_equal(r.n, 2);
    assert_int_equal(r.v[0], 18435);
    assert_int_equal(r.v[1], 995);
    free(r.v);
    /* The special token's text is ordinary text: 7 tokens, none of them eos. */
    r = encs(gpt2, "<|endoftext|>");
    assert_int_equal(r.n, 7);
    for (size_t i = 0; i < r.n; i++)
        assert_int_not_equal(r.v[i], 50256);
    free(r.v);
    int32_t eos = 50256;
    char *s = qpo_tokenizer_decode(gpt2, &eos, 1, NULL, err, sizeof(err));
    assert_string_equal(s, "<|endoftext|>");
    free(s);
    int32_t bad = 50257;
    assert_null(qpo_tokenizer_decode(gpt2, &bad, 1, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "50257"));
}

static void test_pre_tokenizer_splits(void **state) {
    NEED_GPT2();
    ids r = encs(gpt2, "");
    assert_int_equal(r.n, 0);
    free(r.v);
    /* A whitespace run keeps its last space for the next word (" b"); GPT-2 has no token for
     * two spaces, so the rest of the run is single spaces. */
    assert_pieces(gpt2, "a   b", "a| | | b");
    assert_pieces(gpt2, "a \n\n b", "a| |\n\n| b");
    assert_pieces(gpt2, "end   ", "end| | | ");
    /* Contractions are split off (lowercase only, as in GPT-2). */
    assert_pieces(gpt2, "don't", "don|'t");
    assert_pieces(gpt2, "we'll", "we|'ll");
    assert_pieces(gpt2, "DON'T", "DON|'|T");
    /* Letters, digits and other symbols never share a pre-token. */
    char *p = pieces(gpt2, "abc123!!");
    assert_non_null(strstr(p, "abc|"));
    assert_null(strstr(p, "c1"));
    assert_null(strstr(p, "3!"));
    free(p);
}

/* encode(whole) must equal the concatenation of encoding each part alone. */
static void assert_splits_into(const qpo_tokenizer *tok, const char *whole, const char **parts,
                               int n_parts) {
    ids w = encs(tok, whole), cat = {0};
    for (int i = 0; i < n_parts; i++)
        assert_int_equal(
            qpo_tokenizer_encode(tok, parts[i], strlen(parts[i]), &cat.v, &cat.n, &cat.cap), 0);
    assert_int_equal(w.n, cat.n);
    assert_memory_equal(w.v, cat.v, w.n * sizeof(int32_t));
    free(w.v);
    free(cat.v);
}

/* \s is Unicode White_Space, as in tiktoken and Hugging Face: U+0085 (NEL) is whitespace, so
 * in "x \u0085y" the space and NEL split like two spaces; U+FEFF is not, so a space leads it
 * as it leads any symbol. (JavaScript's \s, in gpt-tokenizer, has both the other way round:
 * it gives " \u0085" one pre-token and the space its own.) */
static void test_whitespace_is_unicode_white_space(void **state) {
    NEED_GPT2();
    const char *nel[] = {"x", " ", "\xc2\x85", "y"};
    assert_splits_into(gpt2, "x \xc2\x85y", nel, 4);
    const char *bom[] = {"x", " \xef\xbb\xbf", "y"};
    assert_splits_into(gpt2, "x \xef\xbb\xbfy", bom, 3);
    const char *em[] = {"a", "\xe2\x80\x83", "\xe2\x80\x83", "b"}; /* em spaces */
    assert_splits_into(gpt2,
                       "a\xe2\x80\x83\xe2\x80\x83"
                       "b",
                       em, 4);
    /* The split matters: the NEL after a space is not merged with it. */
    ids r = encs(gpt2, "x \xc2\x85y");
    assert_int_equal(r.v[1], 220); /* " " alone */
    free(r.v);
}

static void test_round_trips(void **state) {
    NEED_GPT2();
    const char *texts[] = {
        "",
        "Hello world",
        "  leading and trailing  ",
        "tabs\tand\nnewlines\r\n",
        "I'm sure they've 3,141.59 apples; we'd've said 'no'.",
        "emoji 🙂👍🏽 and flags 🇫🇷",
        "日本語のテキストと中文文本",
        "Ünïcödé àccents, Ελληνικά, русский, עברית, العربية",
        "zero\xe2\x80\x8bwidth and nbsp\xc2\xa0here and nel\xc2\x85there",
        "<|endoftext|> in the middle <|endoftext|>",
        "\x01\x02 control \x7f",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        assert_round_trip(gpt2, texts[i], strlen(texts[i]));
}

/* Invalid UTF-8: every maximal run of bytes that do not form a character is one pre-token of
 * its own (README), so the text around it splits as if the run were a boundary, and any byte
 * string round-trips. */
static void test_invalid_utf8(void **state) {
    NEED_GPT2();
    const char *bad[] = {"\xff",
                         /* split so that \xff does not swallow the b */
                         ("a\xff"
                          "b"),
                         "\xe6\x97", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                         "\xe6\x97\xa5\x97", " \x80 x", "x\xf0\x9f\x99"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_round_trip(gpt2, bad[i], strlen(bad[i]));
    assert_pieces(gpt2,
                  "a\xff"
                  "b",
                  "a|\xff|b");
    assert_pieces(gpt2, "Hello\xfe world", "Hello|\xfe| world");
    /* A valid character right after an invalid byte is still recognised. */
    char *p = pieces(gpt2, "\x80\xe6\x97\xa5");
    assert_int_equal((unsigned char)p[0], 0x80);
    assert_int_equal(p[1], '|');
    free(p);

    /* Seeded random bytes: no crash, exact round trip. */
    uint64_t rng = 42;
    char buf[300];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0;
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        len = (size_t)(rng >> 33) % sizeof(buf);
        for (size_t i = 0; i < len; i++) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            unsigned v = (unsigned)(rng >> 33);
            /* Mix ASCII, continuation bytes and lead bytes so some characters are valid. */
            buf[i] = (char)(v % 3 == 0   ? 0x20 + v % 90
                            : v % 3 == 1 ? 0x80 + v % 64
                                         : 0xc0 + v % 64);
        }
        assert_round_trip(gpt2, buf, len);
    }
}

static void test_long_lines(void **state) {
    NEED_GPT2();
    size_t len = 300000;
    char *s = malloc(len + 1);
    memset(s, 'a', len); /* one 300 kB word: the merge loop must not be quadratic */
    assert_round_trip(gpt2, s, len);
    memset(s, ' ', len);
    assert_round_trip(gpt2, s, len);
    for (size_t i = 0; i < len; i++)
        s[i] = "The quick brown fox, 12 jumps! "[i % 31];
    assert_round_trip(gpt2, s, len);
    for (size_t i = 0; i + 3 <= len; i += 3)
        memcpy(s + i, "\xe6\x97\xa5", 3); /* one long CJK letter run */
    assert_round_trip(gpt2, s, len - len % 3);
    free(s);
}

/* Encoding takes a const tokenizer and keeps no shared mutable state: two threads encoding
 * at once get what one thread gets. */
typedef struct job {
    const char *text;
    ids out;
} job;

static void *encode_many(void *arg) {
    job *j = arg;
    for (int rep = 0; rep < 50; rep++) {
        free(j->out.v);
        j->out = encs(gpt2, j->text);
    }
    return NULL;
}

static void test_threads(void **state) {
    NEED_GPT2();
    const char *text = "Threads 🙂 share one tokenizer: don't they? 12345 日本語 \xff end";
    job jobs[2] = {{text, {0}}, {text, {0}}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, encode_many, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ids one = encs(gpt2, text);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jobs[i].out.n, one.n);
        assert_memory_equal(jobs[i].out.v, one.v, one.n * sizeof(int32_t));
        free(jobs[i].out.v);
    }
    free(one.v);
}

/* ---- tiny hand-made vocabularies: merge order, the whole-token shortcut, load errors ---- */

static char dir[64];

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

/* GPT-2's byte alphabet for one byte, as UTF-8, JSON-escaped where needed. */
static void byte_token_json(int b, char *out) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    int cp = b;
    if (!printable) {
        cp = 256;
        for (int c = 0; c < b; c++)
            cp += !((c >= '!' && c <= '~') || (c >= 0xa1 && c <= 0xac) || c >= 0xae);
    }
    if (cp == '"' || cp == '\\')
        sprintf(out, "\\%c", cp);
    else if (cp < 0x80)
        sprintf(out, "%c", cp);
    else
        sprintf(out, "%c%c", 0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
}

/* An encoder with the 256 bytes, eos and extra tokens (plain ASCII letters). */
static void put_encoder(const char *name, const char **extra, int n_extra) {
    char *json = malloc(65536), tok[8];
    strcpy(json, "{");
    int id = 0;
    for (int b = 0; b < 256; b++, id++) {
        byte_token_json(b, tok);
        sprintf(json + strlen(json), "\"%s\": %d, ", tok, id);
    }
    for (int i = 0; i < n_extra; i++, id++)
        sprintf(json + strlen(json), "\"%s\": %d, ", extra[i], id);
    sprintf(json + strlen(json), "\"<|endoftext|>\": %d}", id);
    put(name, json);
    free(json);
}

static int setup_dir(void) {
    snprintf(dir, sizeof(dir), "/tmp/qpo_tok_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static void clear_dir(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            unlink(in_dir(e->d_name));
    if (d)
        closedir(d);
}

static qpo_tokenizer *load_tiny(const char **extra, int n_extra, const char *merges) {
    clear_dir();
    put_encoder("vocab.json", extra, n_extra); /* Hugging Face's file names */
    put("merges.txt", merges);
    qpo_tokenizer *tok = qpo_tokenizer_load_bpe(dir, err, sizeof(err));
    if (!tok)
        fail_msg("%s", err);
    return tok;
}

static void test_merge_order(void **state) {
    /* "a a" merges every pair left to right: aaaaa -> aa aa a. */
    const char *extra[] = {"aa", "bc", "ab", "abc"};
    qpo_tokenizer *tok = load_tiny(extra, 4, "#version: 0.2\na a\nb c\na b\nab c\n");
    assert_int_equal(qpo_tokenizer_vocab_size(tok), 256 + 4 + 1);
    assert_int_equal(qpo_tokenizer_eos(tok), 260);
    assert_pieces(tok, "aaaaa", "aa|aa|a");
    /* "b c" outranks "a b", so abc -> a bc, and "abc" is never reached even though it is a
     * token: a pre-token equal to a token's bytes must not short-cut to it. */
    assert_pieces(tok, "abc", "a|bc");
    assert_pieces(tok, "abd", "ab|d");
    ids r = encs(tok, "abc");
    assert_int_equal(r.n, 2);
    assert_int_equal(r.v[1], 257);
    free(r.v);
    qpo_tokenizer_free(tok);
}

static void expect_load_error(const char *want1, const char *want2) {
    qpo_tokenizer *tok = qpo_tokenizer_load_bpe(dir, err, sizeof(err));
    if (tok || !strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("expected an error with '%s' and '%s', got '%s'", want1, want2 ? want2 : "",
                 tok ? "success" : err);
}

static void test_load_errors(void **state) {
    const char *extra[] = {"ab"};
    clear_dir();
    expect_load_error(dir, "encoder.json + vocab.bpe");
    assert_null(qpo_tokenizer_load_bpe("/nonexistent/bpe", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/bpe"));

    put_encoder("encoder.json", extra, 1);
    expect_load_error("vocab.bpe", "cannot open");
    put("vocab.bpe", "#version: 0.2\na b\nx q\n");
    expect_load_error("vocab.bpe line 3", "\"x q\"");
    put("vocab.bpe", "#version: 0.2\na b\nab\n");
    expect_load_error("vocab.bpe line 3", "two tokens");
    put("vocab.bpe", "a b\n\xe2\x82\xac b\n"); /* U+20AC is outside the byte alphabet */
    expect_load_error("vocab.bpe line 2", "byte alphabet");

    /* Hugging Face's names: merges.txt is named when missing. */
    clear_dir();
    put_encoder("vocab.json", extra, 1);
    expect_load_error("merges.txt", "cannot open");
    unlink(in_dir("vocab.json"));
    put_encoder("encoder.json", extra, 1);

    put("encoder.json", "{\"a\": 0,");
    expect_load_error("encoder.json", NULL);
    put("encoder.json", "[1, 2]");
    expect_load_error("encoder.json", "not a GPT-2 encoder");
    put("encoder.json", "{\"a\": 0, \"b\": 0}");
    expect_load_error("encoder.json", "not a GPT-2 encoder");
    /* Ids must be dense and unique. */
    clear_dir();
    put_encoder("encoder.json", extra, 1);
    FILE *fp = fopen(in_dir("encoder.json"), "r+");
    fseek(fp, -1, SEEK_END);
    fputs(", \"zz\": 9999}", fp);
    fclose(fp);
    put("vocab.bpe", "a b\n");
    expect_load_error("encoder.json", "\"zz\"");
}

static int setup(void **state) {
    const char *shared = qpo_test_shared_data();
    if (shared) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/gpt2_bpe", shared);
        gpt2 = qpo_tokenizer_load_bpe(path, err, sizeof(err));
        if (!gpt2) {
            fprintf(stderr, "loading %s: %s\n", path, err);
            return -1;
        }
    }
    return setup_dir();
}

static int teardown(void **state) {
    qpo_tokenizer_free(gpt2);
    clear_dir();
    return rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_tokenizer),
        cmocka_unit_test(test_subset),
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_pre_tokenizer_splits),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_whitespace_is_unicode_white_space),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_merge_order),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
