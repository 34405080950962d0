/* qpo tokenize: text lines to token ids, or ids back to text. The whole output is built in
 * memory and written only once every line has succeeded, so bad input leaves no partial
 * output behind. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_internal.h"
#include "commands.h"
#include "lines.h"

typedef struct outbuf {
    char *s;
    size_t len, cap;
} outbuf;

static int out_put(outbuf *o, const char *s, size_t len) {
    if (o->cap - o->len < len + 1) {
        size_t cap = o->cap ? o->cap : 1 << 16;
        while (cap - o->len < len + 1)
            cap *= 2;
        char *p = realloc(o->s, cap);
        if (!p)
            return -1;
        o->s = p;
        o->cap = cap;
    }
    memcpy(o->s + o->len, s, len);
    o->len += len;
    return 0;
}

qpo_tokenizer *qpo_tok_cli_open(const char *bpe_dir, bool bytes, qpo_err *err) {
    if (bytes) {
        qpo_tokenizer *tok = qpo_tokenizer_new_bytes();
        if (!tok)
            qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
        return tok;
    }
    if (!bpe_dir || !*bpe_dir)
        bpe_dir = getenv("QPO_BPE_DIR");
    if (!bpe_dir || !*bpe_dir) {
        qpo_err_set(err, QPO_EXIT_USAGE, "no GPT-2 BPE vocabulary given");
        qpo_err_hint(err, "pass --bpe DIR or set QPO_BPE_DIR to a directory holding encoder.json "
                          "+ vocab.bpe (or Hugging Face's vocab.json + merges.txt); --bytes "
                          "selects the byte tokenizer");
        return NULL;
    }
    char msg[1024];
    qpo_tokenizer *tok = qpo_tokenizer_load_bpe(bpe_dir, msg, sizeof(msg));
    if (!tok) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot load the GPT-2 BPE vocabulary");
        qpo_err_detail(err, "%s", msg);
        qpo_err_hint(err, "--bpe DIR (or QPO_BPE_DIR) must hold encoder.json + vocab.bpe, or "
                          "vocab.json + merges.txt, as published with GPT-2");
    }
    return tok;
}

static int encode_line(const qpo_tokenizer *tok, const char *line, size_t len, outbuf *o,
                       int32_t **ids, size_t *cap) {
    size_t n = 0;
    if (qpo_tokenizer_encode(tok, line, len, ids, &n, cap) != 0)
        return -1;
    char num[16];
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(num, sizeof(num), i ? " %d" : "%d", (int)(*ids)[i]);
        if (out_put(o, num, (size_t)k) != 0)
            return -1;
    }
    return out_put(o, "\n", 1);
}

/* Parses "12 34 5" into ids; a usage error naming the line and the bad word otherwise. */
static int parse_ids(const qpo_tokenizer *tok, char *line, size_t lineno, int32_t **ids, size_t *n,
                     size_t *cap, qpo_err *err) {
    *n = 0;
    for (char *save = NULL, *w = strtok_r(line, " \t\r", &save); w;
         w = strtok_r(NULL, " \t\r", &save)) {
        char *end;
        long long v = strtoll(w, &end, 10);
        if (*end || end == w) {
            qpo_err_set(err, QPO_EXIT_USAGE, "stdin line %zu: '%s' is not a token id", lineno, w);
            return -1;
        }
        if (v < 0 || v >= qpo_tokenizer_vocab_size(tok)) {
            qpo_err_set(err, QPO_EXIT_USAGE,
                        "stdin line %zu: token id %lld is outside the vocabulary (0..%d)", lineno,
                        v, (int)qpo_tokenizer_vocab_size(tok) - 1);
            qpo_err_hint(err, "decode ids made by the same vocabulary (--bpe DIR or --bytes)");
            return -1;
        }
        if (*n == *cap) {
            size_t c = *cap ? 2 * *cap : 64;
            int32_t *p = realloc(*ids, c * sizeof(**ids));
            if (!p)
                return qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
            *ids = p;
            *cap = c;
        }
        (*ids)[(*n)++] = (int32_t)v;
    }
    return 0;
}

static int decode_line(const qpo_tokenizer *tok, char *line, size_t lineno, outbuf *o,
                       int32_t **ids, size_t *cap, qpo_err *err) {
    size_t n;
    if (parse_ids(tok, line, lineno, ids, &n, cap, err) != 0)
        return -1;
    char msg[256];
    size_t len;
    char *text = qpo_tokenizer_decode(tok, *ids, n, &len, msg, sizeof(msg));
    if (!text)
        return qpo_err_set(err, QPO_EXIT_USAGE, "stdin line %zu: %s", lineno, msg);
    int rc = out_put(o, text, len) == 0 && out_put(o, "\n", 1) == 0 ? 0 : -1;
    free(text);
    return rc ? qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory") : 0;
}

static int run(const qpo_tokenizer *tok, bool decode, qpo_err *err) {
    outbuf o = {0};
    char *line = NULL;
    size_t linecap = 0, cap = 0, lineno = 0;
    int32_t *ids = NULL;
    ssize_t got;
    int rc = 0;
    while (rc == 0 &&
           (got = qpo_getline_max(&line, &linecap, stdin, QPO_MAX_LINE_BYTES)) != QPO_LINE_EOF) {
        lineno++;
        if (got == QPO_LINE_TOO_LONG) {
            rc = qpo_err_set(err, QPO_EXIT_USAGE, "stdin line %zu: longer than %d bytes", lineno,
                             QPO_MAX_LINE_BYTES);
            qpo_err_hint(err, "qpo tokenize reads one text a line; is stdin a text file?");
            break;
        }
        size_t len = (size_t)got;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (decode)
            rc = decode_line(tok, line, lineno, &o, &ids, &cap, err);
        else if (encode_line(tok, line, len, &o, &ids, &cap) != 0)
            rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory");
    }
    if (rc == 0 && ferror(stdin))
        rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "reading stdin failed");
    if (rc == 0 && o.len > 0 && (fwrite(o.s, 1, o.len, stdout) != o.len || fflush(stdout) != 0))
        rc = qpo_err_set(err, QPO_EXIT_RUNTIME, "writing stdout failed");
    free(line);
    free(ids);
    free(o.s);
    return rc;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: qpo tokenize [--bpe DIR | --bytes] [--decode]\n"
            "\n"
            "Reads one text a line on stdin and writes its GPT-2 token ids, space separated, a\n"
            "line on stdout; with --decode reads ids and writes the text. Output is written only\n"
            "when every line succeeded.\n"
            "\n"
            "  --bpe DIR   GPT-2 BPE files: encoder.json + vocab.bpe, or vocab.json + merges.txt\n"
            "              (default: $QPO_BPE_DIR; one of the two is required)\n"
            "  --bytes     the byte tokenizer (ids 0..255 are bytes, 256 is <|endoftext|>)\n"
            "  --decode    ids to text; a decoded newline (id 198) starts a new output line\n"
            "\n"
            "The text \"<|endoftext|>\" is ordinary text; only the id decodes to it.\n"
            "Exit: 0 ok; 1 I/O failure; 2 bad usage, bad BPE files, or a line that is not ids\n"
            "in the vocabulary (the error names the line).\n");
}

int qpo_cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {{"bpe", required_argument, NULL, 'b'},
                                         {"bytes", no_argument, NULL, 'B'},
                                         {"decode", no_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *bpe = NULL;
    bool bytes = false, decode = false;
    optind = 0;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case 'b':
            bpe = optarg;
            break;
        case 'B':
            bytes = true;
            break;
        case 'd':
            decode = true;
            break;
        case 'h':
            usage(stdout);
            return QPO_EXIT_OK;
        default:
            usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    qpo_err err = {0};
    if (optind < argc) {
        qpo_err_set(&err, QPO_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
        qpo_err_hint(&err, "texts are read from stdin, one a line");
        return qpo_err_print(&err);
    }
    if (bytes && bpe) {
        qpo_err_set(&err, QPO_EXIT_USAGE, "--bytes and --bpe exclude each other");
        return qpo_err_print(&err);
    }
    qpo_tokenizer *tok = qpo_tok_cli_open(bpe, bytes, &err);
    if (!tok)
        return qpo_err_print(&err);
    int rc = run(tok, decode, &err);
    qpo_tokenizer_free(tok);
    return rc == 0 ? QPO_EXIT_OK : qpo_err_print(&err);
}
