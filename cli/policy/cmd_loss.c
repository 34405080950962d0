/* qpo policy loss: the loss, gradients and a short AdamW run on one batch, dropout off: the
 * experiment `pgdt_torch.py ref` records, so the two can be compared number for number. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmd_internal.h"
#include "records.h"
#include "train.h"

typedef struct loss_args {
    const char *weights, *batch, *grads_out;
    long steps;
    int json;
} loss_args;

static void usage(FILE *f) {
    fprintf(f, "usage: qpo policy loss --weights FILE --batch FILE [--grads-out FILE] "
               "[--steps N] --json\n\n"
               "Prints {\"ce\", \"mse\", \"loss\", \"losses\": [...]}: the loss of the batch\n"
               "(lambda 0.1, dropout off) and the loss after each of N AdamW steps (lr 1e-3,\n"
               "weight decay 1e-4, clip 0.25). --grads-out writes the gradients of the\n"
               "starting weights under the weights' names (safetensors).\n");
}

static int parse(int argc, char **argv, loss_args *a, qpo_err *err) {
    static const struct option opts[] = {{"weights", required_argument, 0, 'w'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"grads-out", required_argument, 0, 'g'},
                                         {"steps", required_argument, 0, 's'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 0;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (c == 'w')
            a->weights = optarg;
        else if (c == 'b')
            a->batch = optarg;
        else if (c == 'g')
            a->grads_out = optarg;
        else if (c == 's' && qpo_policy_cmd_int("--steps", optarg, 0, 100000, &a->steps, err))
            return -1;
        else if (c == 'j')
            a->json = 1;
        else if (c == 'h')
            return 1;
        else if (c == '?')
            return qpo_err_set(err, QPO_EXIT_USAGE, "bad option (see qpo policy loss --help)");
    }
    if (!a->weights || !a->batch || !a->json)
        return qpo_err_set(err, QPO_EXIT_USAGE, "need --weights, --batch and --json");
    return 0;
}

static int run(qpo_policy *p, const loss_args *a, const qpo_records *r, qpo_err *err) {
    char msg[1024];
    qpo_batch b = qpo_records_batch(r, 0, (int)r->n);
    qpo_step_opts so = {.lambda = 0.1f};
    qpo_loss l0;
    qpo_loss *ls = calloc(a->steps ? a->steps : 1, sizeof *ls);
    if (!ls || qpo_policy_forward(p, &b, &so, &l0, msg, sizeof msg)) {
        free(ls);
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot evaluate the batch");
        qpo_err_detail(err, "%s: %s", a->batch, ls ? msg : "out of memory");
        return -1;
    }
    qpo_policy_backward(p);
    if ((a->grads_out && qpo_policy_save_grads(p, a->grads_out, msg, sizeof msg)) ||
        qpo_policy_fit_batch(p, &b, (int)a->steps, 1e-3f, 1e-4f, 0.25f, ls, msg, sizeof msg)) {
        free(ls);
        qpo_err_set(err, QPO_EXIT_RUNTIME, "%s", msg);
        return -1;
    }
    json_t *losses = json_array();
    for (long s = 0; s < a->steps; s++)
        json_array_append_new(losses, json_real(ls[s].loss));
    json_t *o = json_pack("{s:f, s:f, s:f, s:o}", "ce", (double)l0.ce, "mse", (double)l0.mse,
                          "loss", (double)l0.loss, "losses", losses);
    free(ls);
    if (!o) /* json_pack refuses a non-finite loss: the weights or the batch overflowed */
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "the loss is not finite (ce %g, mse %g)",
                           (double)l0.ce, (double)l0.mse);
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    printf("%s\n", s);
    free(s);
    json_decref(o);
    return 0;
}

int qpo_policy_cmd_loss(int argc, char **argv) {
    loss_args a = {0};
    qpo_err err = {0};
    int rc = parse(argc, argv, &a, &err);
    if (rc > 0) {
        usage(stdout);
        return QPO_EXIT_OK;
    }
    if (rc)
        return qpo_err_print(&err);
    qpo_policy *p = qpo_policy_cmd_load(a.weights, &err);
    if (!p)
        return qpo_err_print(&err);
    qpo_records r;
    char msg[1024];
    if (qpo_batch_file_load(a.batch, &r, msg, sizeof msg)) {
        qpo_err_set(&err, QPO_EXIT_USAGE, "cannot load the batch");
        qpo_err_detail(&err, "%s", msg);
        qpo_err_hint(&err, "the layout pgdt_torch.py ref writes: query_ids, query_mask, "
                           "prompt_ids, prompt_mask [B,40] int32, reward [B] float32");
        qpo_policy_free(p);
        return qpo_err_print(&err);
    }
    rc = run(p, &a, &r, &err);
    qpo_records_free(&r);
    qpo_policy_free(p);
    return rc ? qpo_err_print(&err) : QPO_EXIT_OK;
}
