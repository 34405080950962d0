/* qpo policy: create, evaluate or sample from a policy checkpoint. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_internal.h"
#include "commands.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: qpo policy <subcommand> [options]\n\n"
            "  init    --config tiny|gpt2 [--vocab N] [--from HF_MODEL_DIR] [--seed S] --out FILE\n"
            "  loss    --weights FILE --batch FILE [--grads-out FILE] [--steps N] --json\n"
            "  sample  --weights FILE [--greedy | --top-k K --top-p P --seed S] --reward R\n"
            "          [--bpe DIR | --bytes] [--batch N]   (queries on stdin, one a line)\n\n"
            "Every subcommand takes --backend cpu|cuda|cuda-bf16|auto (default cpu; auto: CUDA\n"
            "when a device is visible).\n"
            "'qpo policy <subcommand> --help' shows its options.\n");
}

static const char *backend_name = "cpu";

int qpo_policy_cmd_take_backend(int *argc, char **argv, qpo_err *err) {
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        if (!strncmp(argv[i], "--backend=", 10)) {
            backend_name = argv[i] + 10;
        } else if (!strcmp(argv[i], "--backend")) {
            if (i + 1 >= *argc)
                return qpo_err_set(err, QPO_EXIT_USAGE,
                                   "--backend needs a name (cpu, cuda, cuda-bf16, auto)");
            backend_name = argv[++i];
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

const qpo_backend *qpo_policy_cmd_backend(qpo_err *err) {
    char msg[256];
    const qpo_backend *be = qpo_backend_named(backend_name, msg, sizeof msg);
    if (!be) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--backend %s: %s", backend_name, msg);
        qpo_err_hint(err, "--backend auto uses the CPU where no CUDA device is visible");
    }
    return be;
}

int qpo_cmd_policy(int argc, char **argv) {
    qpo_err err = {0};
    if (qpo_policy_cmd_take_backend(&argc, argv, &err))
        return qpo_err_print(&err);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? QPO_EXIT_USAGE : QPO_EXIT_OK;
    }
    if (!strcmp(argv[1], "init"))
        return qpo_policy_cmd_init(argc - 1, argv + 1);
    if (!strcmp(argv[1], "loss"))
        return qpo_policy_cmd_loss(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sample"))
        return qpo_policy_cmd_sample(argc - 1, argv + 1);
    fprintf(stderr, "qpo: error: unknown policy subcommand '%s'\n", argv[1]);
    usage(stderr);
    return QPO_EXIT_USAGE;
}

qpo_policy *qpo_policy_cmd_load(const char *path, qpo_err *err) {
    char msg[1024];
    const qpo_backend *be = qpo_policy_cmd_backend(err);
    if (!be)
        return NULL;
    qpo_policy *p = qpo_policy_load(path, be, msg, sizeof msg);
    if (!p) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot load the policy checkpoint");
        qpo_err_detail(err, "%s", msg);
        qpo_err_hint(err, "pass a file written by 'qpo policy init', a trainer checkpoint or "
                          "pgdt_torch.py ref");
    }
    return p;
}

int qpo_policy_cmd_int(const char *opt, const char *s, long lo, long hi, long *out, qpo_err *err) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s: '%s' is not an integer in %ld..%ld", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int qpo_policy_cmd_float(const char *opt, const char *s, double *out, qpo_err *err) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s: '%s' is not a finite number", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}
