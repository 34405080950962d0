/* qpo prompt --run R [--loop T] [--json] "QUERY": the prompt a trained policy writes for a new
 * query, decoded as evaluate-generate decodes the test queries (greedy at the run's r*), from
 * the loop's checkpoint wherever its store keeps it. --json adds each token with its
 * log-probability under the policy (a teacher-forced pass over the prompt it wrote). */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "db.h"
#include "migrate.h"
#include "records.h"
#include "trainer_cli.h"
#include "trainer_internal.h"

static void prompt_usage(FILE *out) {
    fprintf(out, "usage: qpo prompt --run R [--loop T] [--json] [--db CONNINFO] QUERY\n\n"
                 "Prints the prompt run R's policy writes for QUERY: greedy at the run's r* (100\n"
                 "unless configured), rendered as evaluate-generate renders test prompts.\n\n"
                 "  --loop   the loop whose checkpoint to use (default: the newest trained loop)\n"
                 "  --json   one object: run, loop, r_star, query, prompt, and tokens with their\n"
                 "           ids, text and log-probabilities under the policy\n");
}

/* Log-probabilities of the prompt tokens, teacher-forced at r*. */
static int token_logprobs(qpo_policy *p, const qpo_trun *run, const int32_t *qids,
                          const int32_t *qmask, const int32_t *ids, int len, double *lp,
                          qpo_err *err) {
    int V = qpo_policy_config_of(p)->vocab;
    int32_t mask[QPO_PGDT_PLEN] = {0};
    for (int j = 0; j < len; j++)
        mask[j] = 1;
    float reward = (float)run->r_star;
    qpo_batch b = {1, qids, qmask, ids, mask, &reward};
    float *logits = malloc(sizeof(float) * QPO_PGDT_PLEN * (size_t)V);
    char msg[512];
    if (!logits || qpo_policy_logits(p, &b, logits, msg, sizeof msg)) {
        free(logits);
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot score the prompt's tokens");
        qpo_err_detail(err, "%s", logits ? msg : "out of memory");
        return -1;
    }
    for (int j = 0; j < len; j++) {
        const float *row = logits + (size_t)j * V;
        double max = row[0], sum = 0;
        for (int v = 1; v < V; v++)
            max = row[v] > max ? row[v] : max;
        for (int v = 0; v < V; v++)
            sum += exp(row[v] - max);
        lp[j] = row[ids[j]] - max - log(sum);
    }
    free(logits);
    return 0;
}

static json_t *tokens_json(const qpo_tokenizer *tok, const int32_t *ids, const double *lp,
                           int len) {
    json_t *arr = json_array();
    for (int j = 0; j < len; j++) {
        char msg[128];
        size_t n = 0;
        char *raw = qpo_tokenizer_decode(tok, ids + j, 1, &n, msg, sizeof msg);
        char *text = raw ? qpo_text_clean_utf8(raw, n) : NULL;
        json_array_append_new(
            arr, json_pack("{si ss sf}", "id", ids[j], "text", text ? text : "", "logprob", lp[j]));
        free(raw);
        free(text);
    }
    return arr;
}

/* Greedy decoding of QUERY at r*, then its text (and, for --json, its tokens' log-probs). */
static int write_prompt(qpo_policy *p, const qpo_tokenizer *tok, const qpo_trun *run, int loop,
                        const char *query, int as_json, qpo_err *err) {
    int32_t qids[QPO_PGDT_QLEN], qmask[QPO_PGDT_QLEN], ids[QPO_PGDT_PLEN];
    int len = 0;
    char msg[512] = "out of memory";
    qpo_gen_opts o;
    qpo_trainer_gen_opts(run, 1, &o);
    uint64_t seed = 0; /* greedy draws nothing */
    if (qpo_encode_query(tok, query, qids, qmask) ||
        qpo_generate(p, &o, 1, qids, qmask, &seed, ids, &len, msg, sizeof msg)) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "generation failed");
        qpo_err_detail(err, "%s", msg);
        return -1;
    }
    char *text = qpo_trainer_prompt_text(tok, ids, len, msg, sizeof msg);
    if (!text) {
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot decode the prompt");
        qpo_err_detail(err, "%s", msg);
        return -1;
    }
    double lp[QPO_PGDT_PLEN];
    int rc = 0;
    if (!as_json) {
        printf("%s\n", text);
    } else if ((rc = token_logprobs(p, run, qids, qmask, ids, len, lp, err)) == 0) {
        double total = 0;
        for (int j = 0; j < len; j++)
            total += lp[j];
        json_t *out = json_pack("{sI si sf ss ss so sf}", "run_id", (json_int_t)run->id, "loop",
                                loop, "r_star", run->r_star, "query", query, "prompt", text,
                                "tokens", tokens_json(tok, ids, lp, len), "logprob", total);
        char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(out);
    }
    free(text);
    return rc;
}

static int print_prompt(PGconn *conn, int64_t run_id, int loop, const char *query, int as_json,
                        qpo_err *err) {
    qpo_trun run;
    if (qpo_trainer_cli_run(conn, run_id, &loop, &run, err))
        return -1;
    qpo_tokenizer *tok = qpo_trainer_tokenizer(&run, err);
    qpo_policy *p = tok ? qpo_trainer_load_checkpoint(conn, run.id, loop, &tok, err) : NULL;
    int rc = p ? write_prompt(p, tok, &run, loop, query, as_json, err) : -1;
    qpo_policy_free(p);
    qpo_tokenizer_free(tok);
    return rc;
}

int qpo_cmd_prompt(int argc, char **argv) {
    static const struct option opts[] = {
        {"run", required_argument, NULL, 'r'}, {"loop", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},      {"db", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},      {0, 0, 0, 0}};
    int64_t run = 0;
    int loop = 0, as_json = 0, c;
    const char *db = NULL;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (qpo_trainer_cli_int(optarg, "--run", &run))
                return QPO_EXIT_USAGE;
            break;
        case 'l': {
            int64_t v;
            if (qpo_trainer_cli_int(optarg, "--loop", &v))
                return QPO_EXIT_USAGE;
            loop = (int)v;
            break;
        }
        case 'j':
            as_json = 1;
            break;
        case 'd':
            db = optarg;
            break;
        case 'h':
            prompt_usage(stdout);
            return 0;
        default:
            prompt_usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (run == 0 || optind != argc - 1) {
        fprintf(stderr, "qpo: error: qpo prompt wants --run R and one QUERY\n"
                        "  hint: qpo prompt --run 1 \"so happy about today\"\n");
        return QPO_EXIT_USAGE;
    }
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(qpo_db_conninfo(db), "qpo prompt", &err);
    int rc = conn && qpo_migrate_check(conn, &err) == 0
                 ? print_prompt(conn, run, loop, argv[optind], as_json, &err)
                 : -1;
    PQfinish(conn);
    return rc ? qpo_err_print(&err) : 0;
}
