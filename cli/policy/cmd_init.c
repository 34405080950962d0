/* qpo policy init: a fresh policy checkpoint, random or from Hugging Face GPT-2 weights. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd_internal.h"

typedef struct init_args {
    const char *config, *from, *out;
    long seed, vocab;
} init_args;

static void usage(FILE *f) {
    fprintf(f, "usage: qpo policy init --config tiny|gpt2 [--vocab N] [--seed S] --out FILE\n"
               "       qpo policy init --from HF_MODEL_DIR [--seed S] --out FILE\n\n"
               "  --config   a named size (tiny: 2 layers, d 64; gpt2: 124M)\n"
               "  --vocab    override the vocabulary (257 for the byte tokenizer)\n"
               "  --from     a Hugging Face GPT-2 directory (model.safetensors, config.json):\n"
               "             the backbone from it, the PGDT heads freshly initialised\n"
               "  --seed     initialisation seed (0)\n"
               "  --out      the checkpoint to write (atomically)\n");
}

static int parse(int argc, char **argv, init_args *a, qpo_err *err) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"from", required_argument, 0, 'f'},
                                         {"out", required_argument, 0, 'o'},
                                         {"seed", required_argument, 0, 's'},
                                         {"vocab", required_argument, 0, 'v'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 0;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (c == 'c')
            a->config = optarg;
        else if (c == 'f')
            a->from = optarg;
        else if (c == 'o')
            a->out = optarg;
        else if (c == 's' && qpo_policy_cmd_int("--seed", optarg, 0, 1L << 62, &a->seed, err))
            return -1;
        else if (c == 'v' && qpo_policy_cmd_int("--vocab", optarg, 2, 10000000, &a->vocab, err))
            return -1;
        else if (c == 'h')
            return 1;
        else if (c == '?')
            return qpo_err_set(err, QPO_EXIT_USAGE, "bad option (see qpo policy init --help)");
    }
    if (!a->out || (!a->config == !a->from))
        return qpo_err_set(err, QPO_EXIT_USAGE, "need --out and exactly one of --config, --from");
    return 0;
}

static qpo_policy *create(const init_args *a, qpo_err *err) {
    char msg[1024];
    qpo_policy *p = NULL;
    const qpo_backend *be = qpo_policy_cmd_backend(err);
    if (!be)
        return NULL;
    if (a->from) {
        p = qpo_policy_from_hf(a->from, be, (uint64_t)a->seed, msg, sizeof msg);
        if (!p) {
            qpo_err_set(err, QPO_EXIT_USAGE, "cannot load Hugging Face GPT-2 weights");
            qpo_err_detail(err, "%s", msg);
        }
        return p;
    }
    qpo_policy_config cfg;
    if (qpo_policy_config_named(a->config, &cfg)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--config: unknown size '%s'", a->config);
        qpo_err_hint(err, "use tiny or gpt2");
        return NULL;
    }
    if (a->vocab)
        cfg.vocab = (int)a->vocab;
    p = qpo_policy_new(&cfg, be, msg, sizeof msg);
    if (!p)
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s", msg);
    else
        qpo_policy_init_random(p, (uint64_t)a->seed);
    return p;
}

int qpo_policy_cmd_init(int argc, char **argv) {
    init_args a = {0};
    qpo_err err = {0};
    int rc = parse(argc, argv, &a, &err);
    if (rc > 0) {
        usage(stdout);
        return QPO_EXIT_OK;
    }
    if (rc)
        return qpo_err_print(&err);
    qpo_policy *p = create(&a, &err);
    if (!p)
        return qpo_err_print(&err);
    char msg[1024];
    if (qpo_policy_save(p, a.out, msg, sizeof msg)) {
        qpo_err_set(&err, QPO_EXIT_RUNTIME, "cannot write the checkpoint");
        qpo_err_detail(&err, "%s", msg);
        qpo_policy_free(p);
        return qpo_err_print(&err);
    }
    const qpo_policy_config *c = qpo_policy_config_of(p);
    fprintf(stderr, "wrote %s: %d layers, %d heads, d %d, vocab %d, ctx %d, %zu parameters\n",
            a.out, c->n_layer, c->n_head, c->d, c->vocab, c->ctx, qpo_policy_num_params(p));
    qpo_policy_free(p);
    return QPO_EXIT_OK;
}
