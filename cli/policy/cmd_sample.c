/* qpo policy sample: one prompt per query line on stdin. Query i draws from seed hash(S, i),
 * so the output does not depend on --batch. Newlines inside a prompt print as spaces so that
 * the output stays one prompt a line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_internal.h"
#include "generate.h"
#include "hash.h"
#include "records.h"

typedef struct sample_args {
    const char *weights, *bpe;
    int bytes, have_reward;
    long seed, batch, top_k;
    double top_p, reward;
    qpo_gen_opts g;
} sample_args;

typedef struct lines {
    char **v;
    size_t n, cap;
} lines;

static void usage(FILE *f) {
    fprintf(f, "usage: qpo policy sample --weights FILE [--greedy | --top-k K --top-p P "
               "--seed S] --reward R [--bpe DIR | --bytes] [--batch N]\n\n"
               "Reads queries (one a line) on stdin; prints one prompt a line.\n"
               "  --greedy    argmax decoding (ties to the lowest id), as for test prompts\n"
               "  --top-k/-p  sampling as in collection (defaults 2 and 0.9), seeded (--seed)\n"
               "  --reward    r*, the normalised reward to condition on (100 in QPO)\n"
               "  --bpe DIR   GPT-2 BPE files (or $QPO_BPE_DIR); --bytes: the byte tokenizer\n"
               "  --batch     queries decoded together (64)\n");
}

static int parse_opt(int c, sample_args *a, qpo_err *err) {
    switch (c) {
    case 'w':
        a->weights = optarg;
        return 0;
    case 'B':
        a->bpe = optarg;
        return 0;
    case 'y':
        a->bytes = 1;
        return 0;
    case 'g':
        a->g.greedy = 1;
        return 0;
    case 'k':
        return qpo_policy_cmd_int("--top-k", optarg, 0, 10000000, &a->top_k, err);
    case 'p':
        return qpo_policy_cmd_float("--top-p", optarg, &a->top_p, err);
    case 's':
        return qpo_policy_cmd_int("--seed", optarg, 0, 1L << 62, &a->seed, err);
    case 'n':
        return qpo_policy_cmd_int("--batch", optarg, 1, 4096, &a->batch, err);
    case 'r':
        a->have_reward = 1;
        return qpo_policy_cmd_float("--reward", optarg, &a->reward, err);
    default:
        return qpo_err_set(err, QPO_EXIT_USAGE, "bad option (see qpo policy sample --help)");
    }
}

static int parse(int argc, char **argv, sample_args *a, qpo_err *err) {
    static const struct option opts[] = {{"weights", required_argument, 0, 'w'},
                                         {"bpe", required_argument, 0, 'B'},
                                         {"bytes", no_argument, 0, 'y'},
                                         {"greedy", no_argument, 0, 'g'},
                                         {"top-k", required_argument, 0, 'k'},
                                         {"top-p", required_argument, 0, 'p'},
                                         {"seed", required_argument, 0, 's'},
                                         {"batch", required_argument, 0, 'n'},
                                         {"reward", required_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    qpo_gen_opts_default(&a->g);
    a->top_k = a->g.top_k, a->top_p = a->g.top_p, a->batch = a->g.batch;
    optind = 0;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (c == 'h')
            return 1;
        if (parse_opt(c, a, err))
            return -1;
    }
    if (!a->weights || !a->have_reward)
        return qpo_err_set(err, QPO_EXIT_USAGE, "need --weights and --reward");
    if (a->top_p <= 0.0 || a->top_p > 1.0)
        return qpo_err_set(err, QPO_EXIT_USAGE, "--top-p must be in (0, 1]");
    a->g.top_k = (int)a->top_k, a->g.top_p = (float)a->top_p, a->g.batch = (int)a->batch;
    a->g.reward = (float)a->reward;
    return 0;
}

static int read_lines(lines *l) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 64;
            char **v = realloc(l->v, sizeof(char *) * l->cap);
            if (!v)
                return -1;
            l->v = v;
        }
        l->v[l->n++] = strdup(line);
    }
    free(line);
    return 0;
}

static void lines_free(lines *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int generate(qpo_policy *p, const qpo_tokenizer *tok, const sample_args *a, const lines *q,
                    qpo_err *err) {
    int n = (int)q->n;
    char **prompts = calloc(n ? n : 1, sizeof(char *));
    uint64_t *seeds = malloc(sizeof(uint64_t) * (n ? n : 1));
    char msg[1024];
    int rc = -1;
    if (!prompts || !seeds) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "out of memory for %d queries", n);
    } else {
        for (int i = 0; i < n; i++)
            seeds[i] = qpo_hash2((uint64_t)a->seed, (uint64_t)i);
        rc = qpo_generate_prompts(p, tok, &a->g, n, (const char *const *)q->v, seeds, prompts, msg,
                                  sizeof msg);
        if (rc)
            qpo_err_set(err, QPO_EXIT_RUNTIME, "%s", msg);
    }
    for (int i = 0; i < n && prompts; i++) {
        for (char *c = prompts[i]; !rc && c && *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
        if (!rc)
            printf("%s\n", prompts[i]);
        free(prompts[i]);
    }
    free(prompts), free(seeds);
    return rc;
}

static qpo_tokenizer *open_tokenizer(const sample_args *a, int vocab, qpo_err *err) {
    char msg[1024];
    const char *dir = a->bpe ? a->bpe : getenv("QPO_BPE_DIR");
    qpo_tokenizer *tok = NULL;
    if (a->bytes)
        tok = qpo_tokenizer_new_bytes();
    else if (!dir)
        qpo_err_set(err, QPO_EXIT_USAGE,
                    "no tokenizer: pass --bpe DIR (or set QPO_BPE_DIR) "
                    "or --bytes");
    else if (!(tok = qpo_tokenizer_load_bpe(dir, msg, sizeof msg)))
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot load the GPT-2 BPE files: %s", msg);
    if (tok && qpo_tokenizer_vocab_size(tok) != vocab) {
        qpo_err_set(err, QPO_EXIT_USAGE, "the tokenizer has %d tokens, the policy %d",
                    qpo_tokenizer_vocab_size(tok), vocab);
        qpo_err_hint(err, "byte-tokenizer policies need 'qpo policy init --vocab 257'");
        qpo_tokenizer_free(tok);
        tok = NULL;
    }
    return tok;
}

int qpo_policy_cmd_sample(int argc, char **argv) {
    sample_args a = {0};
    qpo_err err = {0};
    int rc = parse(argc, argv, &a, &err);
    if (rc > 0) {
        usage(stdout);
        return QPO_EXIT_OK;
    }
    if (rc)
        return qpo_err_print(&err);
    qpo_policy *p = qpo_policy_cmd_load(a.weights, &err);
    qpo_tokenizer *tok = p ? open_tokenizer(&a, qpo_policy_config_of(p)->vocab, &err) : NULL;
    lines q = {0};
    rc = -1;
    if (tok && read_lines(&q))
        qpo_err_set(&err, QPO_EXIT_RUNTIME, "out of memory reading queries");
    else if (tok)
        rc = generate(p, tok, &a, &q, &err);
    lines_free(&q);
    qpo_tokenizer_free(tok);
    qpo_policy_free(p);
    return rc ? qpo_err_print(&err) : QPO_EXIT_OK;
}
