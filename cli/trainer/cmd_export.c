/* qpo export EXP --loop T --out DIR: what a loop of an experiment produced, to take elsewhere:
 * each run's policy (safetensors, checked against its recorded sha256), the tokenizer files,
 * the resolved config, the loop's prompts as JSON lines and a manifest. Everything is written
 * under DIR.tmp and renamed to DIR at the end, so DIR either holds the whole export or does not
 * exist; a DIR that holds anything is refused. */
#define _XOPEN_SOURCE_EXTENDED 1
#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "db.h"
#include "migrate.h"
#include "trainer_cli.h"
#include "trainer_internal.h"

static void export_usage(FILE *out) {
    fprintf(out, "usage: qpo export EXP --loop T --out DIR [--db CONNINFO]\n\n"
                 "Writes experiment EXP's loop T to DIR:\n"
                 "  config.json                 the experiment's resolved config\n"
                 "  tokenizer/                  encoder.json + vocab.bpe (GPT-2 BPE), or\n"
                 "                              tokenizer.json for the byte tokenizer\n"
                 "  run-<id>/policy.safetensors the loop's policy (qpo-pgdt safetensors)\n"
                 "  run-<id>/prompts.jsonl      the loop's prompts with their queries\n"
                 "  manifest.json               runs, seeds, sha256 of each policy, prompt counts\n"
                 "DIR must not exist or be empty; it appears whole or not at all.\n");
}

static int dir_state(const char *path) { /* 0 absent, 1 empty folder, 2 anything else */
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : 2;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n ? 2 : 1;
}

static int write_text(const char *dir, const char *name, const char *text, qpo_err *err) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    int bad = !f || fputs(text, f) < 0;
    if (f)
        bad = fclose(f) || bad;
    return bad ? qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot write %s", path) : 0;
}

static int copy_file(const char *src, const char *dest, qpo_err *err) {
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dest, "wb") : NULL;
    int bad = !in || !out;
    char buf[1 << 16];
    size_t n;
    while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0)
        bad = fwrite(buf, 1, n, out) != n;
    bad = bad || (in && ferror(in));
    if (out)
        bad = fclose(out) || bad;
    if (in)
        fclose(in);
    return bad ? qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot copy %s to %s", src, dest) : 0;
}

/* The tokenizer the runs were trained with: its two BPE files, or a note for bytes. */
static int write_tokenizer(const qpo_trun *run, const char *out, qpo_err *err) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/tokenizer", out);
    if (mkdir(dir, 0755))
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create %s", dir);
    if (!strcmp(run->tokenizer, "bytes"))
        return write_text(dir, "tokenizer.json",
                          "{\"type\": \"bytes\", \"vocab\": 257, \"eos\": 256}\n", err);
    const char *src = run->tokenizer;
    if (!strcmp(src, "gpt2_bpe"))
        src = getenv("QPO_BPE_DIR");
    if (!src || !*src) {
        qpo_err_set(err, QPO_EXIT_USAGE, "the runs use gpt2_bpe and QPO_BPE_DIR is not set");
        qpo_err_hint(err, "QPO_BPE_DIR=DIR holding encoder.json and vocab.bpe");
        return -1;
    }
    static const char *const files[] = {"encoder.json", "vocab.bpe"};
    for (int i = 0; i < 2; i++) {
        char a[PATH_MAX + 32], b[PATH_MAX + 32];
        snprintf(a, sizeof a, "%s/%s", src, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        if (copy_file(a, b, err))
            return -1;
    }
    return 0;
}

/* run-<id>/prompts.jsonl; returns the count or -1. */
static long write_prompts(PGconn *conn, const char *rundir, const char *rs, const char *ls,
                          qpo_err *err) {
    const char *p[2] = {rs, ls};
    PGresult *res = qpo_db_named(conn, "export_prompts", 2, p, err);
    if (!res)
        return -1;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/prompts.jsonl", rundir);
    FILE *f = fopen(path, "w");
    int bad = !f;
    for (int r = 0; !bad && r < PQntuples(res); r++)
        bad = fprintf(f, "%s\n", PQgetvalue(res, r, 0)) < 0;
    if (f)
        bad = fclose(f) || bad;
    long n = PQntuples(res);
    PQclear(res);
    return bad ? qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot write %s", path) : n;
}

/* One run's folder; adds its manifest entry. */
static int export_run(PGconn *conn, PGresult *runs, int r, int loop, const char *out,
                      json_t *manifest, qpo_err *err) {
    const char *id = PQgetvalue(runs, r, 0);
    if (qpo_db_isnull(runs, r, 5))
        return qpo_err_set(err, QPO_EXIT_USAGE, "run %s has no checkpoint for loop %d", id, loop);
    char rundir[PATH_MAX], policy[PATH_MAX + 32], ls[16];
    snprintf(rundir, sizeof rundir, "%s/run-%s", out, id);
    snprintf(ls, sizeof ls, "%d", loop);
    if (mkdir(rundir, 0755))
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create %s", rundir);
    snprintf(policy, sizeof policy, "%s/policy.safetensors", rundir);
    if (qpo_trainer_checkpoint_copy(conn, qpo_db_int64(runs, r, 0), loop, policy, err))
        return -1;
    long prompts = write_prompts(conn, rundir, id, ls, err);
    if (prompts < 0)
        return -1;
    json_array_append_new(
        json_object_get(manifest, "runs"),
        json_pack("{sI ss ss ss sI ss sI sI}", "run_id", (json_int_t)qpo_db_int64(runs, r, 0),
                  "task", PQgetvalue(runs, r, 1), "setting", PQgetvalue(runs, r, 2), "target",
                  PQgetvalue(runs, r, 3), "seed", (json_int_t)qpo_db_int64(runs, r, 4), "sha256",
                  PQgetvalue(runs, r, 5), "bytes", (json_int_t)qpo_db_int64(runs, r, 6), "prompts",
                  (json_int_t)prompts));
    return 0;
}

static int export_all(PGconn *conn, int64_t exp, int loop, const char *out, qpo_err *err) {
    char es[24], ls[16];
    snprintf(es, sizeof es, "%" PRId64, exp);
    snprintf(ls, sizeof ls, "%d", loop);
    const char *p[2] = {es, ls};
    PGresult *runs = qpo_db_named(conn, "export_runs", 2, p, err);
    if (!runs)
        return -1;
    int rc = -1;
    qpo_trun run;
    int at = loop;
    json_t *manifest =
        json_pack("{sI si s[]}", "experiment", (json_int_t)exp, "loop", loop, "runs");
    if (PQntuples(runs) == 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "experiment %" PRId64 " has no runs", exp);
        qpo_err_hint(err, "qpo status lists experiments; the scheduler plans runs on submit");
    } else if (qpo_trainer_cli_run(conn, qpo_db_int64(runs, 0, 0), &at, &run, err) == 0) {
        json_error_t jerr;
        json_t *cfg = json_loads(PQgetvalue(runs, 0, 7), 0, &jerr);
        char *cfg_text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
        rc = cfg_text ? write_text(out, "config.json", cfg_text, err) : -1;
        free(cfg_text);
        json_decref(cfg);
        rc = rc ? rc : write_tokenizer(&run, out, err);
        for (int r = 0; rc == 0 && r < PQntuples(runs); r++)
            rc = export_run(conn, runs, r, loop, out, manifest, err);
        char *m = rc ? NULL : json_dumps(manifest, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        rc = rc ? rc : write_text(out, "manifest.json", m, err);
        free(m);
    }
    json_decref(manifest);
    PQclear(runs);
    return rc;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_all(const char *path) {
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS))
        fprintf(stderr, "qpo: warning: could not remove %s\n", path);
}

static int run_export(PGconn *conn, int64_t exp, int loop, const char *out, qpo_err *err) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    int st = dir_state(out);
    if (st == 2) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s exists and is not an empty folder", out);
        qpo_err_hint(err, "export into a new folder, or remove %s first", out);
        return -1;
    }
    if (dir_state(tmp) != 0) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s exists (an interrupted export?)", tmp);
        qpo_err_hint(err, "remove %s and export again", tmp);
        return -1;
    }
    if (mkdir(tmp, 0755))
        return qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot create %s: %s", tmp, strerror(errno));
    if (export_all(conn, exp, loop, tmp, err) == 0 && (st == 0 || rmdir(out) == 0) &&
        rename(tmp, out) == 0)
        return 0;
    if (!qpo_err_is_set(err))
        qpo_err_set(err, QPO_EXIT_RUNTIME, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
    remove_all(tmp);
    return -1;
}

int qpo_cmd_export(int argc, char **argv) {
    static const struct option opts[] = {{"loop", required_argument, NULL, 'l'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"db", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int64_t exp = 0, loop = 0;
    const char *db = NULL, *out = NULL;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (qpo_trainer_cli_int(optarg, "--loop", &loop))
                return QPO_EXIT_USAGE;
            break;
        case 'o':
            out = optarg;
            break;
        case 'd':
            db = optarg;
            break;
        case 'h':
            export_usage(stdout);
            return 0;
        default:
            export_usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !out || !*out || loop == 0 ||
        qpo_trainer_cli_int(argv[optind], "EXP", &exp)) {
        fprintf(stderr, "qpo: error: qpo export wants EXP, --loop T and --out DIR\n"
                        "  hint: qpo export 1 --loop 2 --out exported/\n");
        return QPO_EXIT_USAGE;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", out);
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
        path[n - 1] = '\0';
    qpo_err err = {0};
    PGconn *conn = qpo_db_connect(qpo_db_conninfo(db), "qpo export", &err);
    int rc = conn && qpo_migrate_check(conn, &err) == 0
                 ? run_export(conn, exp, (int)loop, path, &err)
                 : -1;
    PQfinish(conn);
    if (rc == 0)
        printf("%s\n", path);
    return rc ? qpo_err_print(&err) : 0;
}
