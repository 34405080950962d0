/* qpo bench tokenizer: encoding speed on one core over a real text file, beside the reference
 * npm tokenizer (gpt-tokenizer, r50k_base) timed on the same file in the same run. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd_internal.h"
#include "commands.h"

#ifndef QPO_TOKENIZER_REF_DIR
#define QPO_TOKENIZER_REF_DIR "tests/tokenizer/reference"
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *len, qpo_err *err) {
    FILE *fp = fopen(path, "rb");
    struct stat st;
    if (!fp || fstat(fileno(fp), &st) != 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot open %s", path);
        if (fp)
            fclose(fp);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    *len = buf ? fread(buf, 1, (size_t)st.st_size, fp) : 0;
    fclose(fp);
    if (!buf || *len != (size_t)st.st_size) {
        free(buf);
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot read %s", path);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

/* Encodes every line once; returns the token count, or -1 on allocation failure. */
static long long one_pass(const qpo_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                          size_t *cap) {
    long long tokens = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len, n = 0;
        if (qpo_tokenizer_encode(tok, text + at, end - at, ids, &n, cap) != 0)
            return -1;
        tokens += (long long)n;
        at = end + 1;
    }
    return tokens;
}

static size_t count_newlines(const char *text, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

/* Runs the node baseline; NULL (with a reason in why) when node or the package is missing. */
static json_t *node_baseline(const char *ref_dir, const char *file, double min_s, char *why,
                             size_t whylen) {
    char probe[4096];
    snprintf(probe, sizeof(probe), "%s/node_modules/gpt-tokenizer/package.json", ref_dir);
    struct stat st;
    if (stat(probe, &st) != 0) {
        snprintf(why, whylen, "%s not installed (run npm ci in %s)", probe, ref_dir);
        return NULL;
    }
    if (strchr(ref_dir, '\'') || strchr(file, '\'')) {
        snprintf(why, whylen, "paths with a single quote are not supported for the baseline");
        return NULL;
    }
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "node '%s/bench.js' '%s' %.3f", ref_dir, file, min_s);
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(why, whylen, "cannot run node");
        return NULL;
    }
    char line[4096] = "";
    if (!fgets(line, sizeof(line), p))
        line[0] = '\0';
    int status = pclose(p);
    json_t *j = json_loads(line, 0, NULL);
    if (status != 0 || !json_is_number(json_object_get(j, "mb_per_s"))) {
        json_decref(j);
        snprintf(why, whylen, "node baseline failed (exit status %d; is node installed?)", status);
        return NULL;
    }
    return j;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: qpo bench tokenizer --file TEXT [--bpe DIR] [--seconds S] [--no-baseline]\n"
            "                           [--ref-dir DIR] [--json]\n"
            "\n"
            "Encodes every line of TEXT on one core for at least S seconds (default 2) after a\n"
            "warm-up pass and prints MB/s, beside the npm package gpt-tokenizer (r50k_base, the\n"
            "GPT-2 encoding) timed the same way in the same run, and the ratio qpo / baseline.\n"
            "  --bpe DIR       GPT-2 BPE files (default $QPO_BPE_DIR)\n"
            "  --ref-dir DIR   where the baseline's package.json is (default %s)\n",
            QPO_TOKENIZER_REF_DIR);
}

typedef struct bench_opts {
    const char *file, *bpe, *ref_dir;
    double seconds;
    bool baseline, json;
} bench_opts;

static int parse(int argc, char **argv, bench_opts *o, qpo_err *err) {
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},    {"bpe", required_argument, NULL, 'b'},
        {"seconds", required_argument, NULL, 's'}, {"ref-dir", required_argument, NULL, 'r'},
        {"no-baseline", no_argument, NULL, 'n'},   {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    *o = (bench_opts){NULL, NULL, QPO_TOKENIZER_REF_DIR, 2.0, true, false};
    optind = 0;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        char *end;
        switch (c) {
        case 'f':
            o->file = optarg;
            break;
        case 'b':
            o->bpe = optarg;
            break;
        case 's':
            o->seconds = strtod(optarg, &end);
            if (*end || !(o->seconds > 0 && o->seconds <= 600))
                return qpo_err_set(err, QPO_EXIT_USAGE, "--seconds %s: not in (0, 600]", optarg);
            break;
        case 'r':
            o->ref_dir = optarg;
            break;
        case 'n':
            o->baseline = false;
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return qpo_err_set(err, QPO_EXIT_USAGE, "bad arguments");
        }
    }
    if (!o->file) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--file is required");
        qpo_err_hint(err, "a real text file, e.g. ../shared/data/gsm8k/train.jsonl");
        return -1;
    }
    return 0;
}

static void report(const bench_opts *o, double mbs, long long tokens, int passes, double secs,
                   size_t bytes, json_t *base, const char *why) {
    double bmbs = base ? json_number_value(json_object_get(base, "mb_per_s")) : 0;
    if (o->json) {
        json_t *j = json_pack("{s:s, s:f, s:I, s:I, s:i, s:f}", "file", o->file, "mb_per_s", mbs,
                              "bytes", (json_int_t)bytes, "tokens", (json_int_t)tokens, "passes",
                              passes, "seconds", secs);
        json_object_set(j, "baseline", base ? base : json_null());
        json_object_set_new(j, "ratio", base ? json_real(mbs / bmbs) : json_null());
        if (!base)
            json_object_set_new(j, "baseline_missing", json_string(why));
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
        return;
    }
    printf("qpo tokenizer:  %8.2f MB/s  (%zu bytes, %lld tokens a pass, %d passes in %.2f s, "
           "one core)\n",
           mbs, bytes, tokens, passes, secs);
    if (base)
        printf("gpt-tokenizer:  %8.2f MB/s  (node, r50k_base)\nratio qpo / gpt-tokenizer: %.2f\n",
               bmbs, mbs / bmbs);
    else
        printf("baseline: none (%s)\n", why);
}

int qpo_cmd_bench_tokenizer(int argc, char **argv) {
    qpo_err err = {0};
    bench_opts o;
    int prc = parse(argc, argv, &o, &err);
    if (prc != 0)
        return prc > 0 ? QPO_EXIT_OK : qpo_err_print(&err);
    size_t len;
    char *text = read_file(o.file, &len, &err);
    qpo_tokenizer *tok = text ? qpo_tok_cli_open(o.bpe, false, &err) : NULL;
    if (!tok) {
        free(text);
        return qpo_err_print(&err);
    }
    int32_t *ids = NULL;
    size_t cap = 0;
    long long tokens = one_pass(tok, text, len, &ids, &cap); /* warm-up */
    int passes = 0;
    double t0 = now(), secs = 0;
    while (tokens >= 0 && secs < o.seconds) {
        tokens = one_pass(tok, text, len, &ids, &cap);
        passes++;
        secs = now() - t0;
    }
    free(ids);
    qpo_tokenizer_free(tok);
    size_t bytes = len - count_newlines(text, len); /* newlines separate texts, not encoded */
    free(text);
    if (tokens < 0)
        return qpo_err_set(&err, QPO_EXIT_RUNTIME, "out of memory"), qpo_err_print(&err);
    char why[4600] = "--no-baseline";
    json_t *base =
        o.baseline ? node_baseline(o.ref_dir, o.file, o.seconds, why, sizeof(why)) : NULL;
    report(&o, (double)bytes * passes / 1e6 / secs, tokens, passes, secs, bytes, base, why);
    json_decref(base);
    return QPO_EXIT_OK;
}
