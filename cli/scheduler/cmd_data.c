/* qpo data import TASK [PATH...] | qpo data import-d0 FILE --task T --setting S --target NAME
 * | qpo data fetch NAME... (cli/fetch) */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_util.h"
#include "commands.h"
#include "config.h"
#include "datafiles.h"
#include "db.h"
#include "import.h"
#include "reward_formula.h"

static void data_usage(FILE *out) {
    fprintf(out,
            "usage: qpo data import TASK [PATH...] [--data DIR] [--format F] [--upstream-split S]\n"
            "                          [--skip-bad] [--replace]\n"
            "       qpo data import-d0 FILE --task T --setting zero_shot|few_shot --target NAME\n"
            "                          [--model-key KEY] [--skip-bad] [--avg-acc-weight W]\n"
            "       qpo data fetch NAME... [--from URL|DIR] [--cache DIR]   (its --help)\n"
            "options: --db CONNINFO\n\n"
            "import     loads a task's upstream files (each file one upstream split: train,\n"
            "           validation or test, told by its name or --upstream-split) into\n"
            "           qpo.task_items with the recipe's seeded train/collect/dev/test splits.\n"
            "           Formats: %s. Tasks: %s.\n"
            "           Without PATH: the task's files in the data folder (--data DIR, else\n"
            "           $QPO_DATA_DIR, else ../shared/data, else the qpo data fetch cache).\n"
            "           Rows differing from ones already imported are refused; --replace\n"
            "           replaces the task's items of the files' upstream splits instead, while\n"
            "           no run uses the task.\n"
            "import-d0  loads a released D_0 file into qpo.d0_records, raw rewards with W\n"
            "           (0-100, default the authors' 10) as the weight of avg_acc: runs use\n"
            "           it when their config's reward.avg_acc_weight is the same.\n"
            "Each import is one transaction; importing the same file again changes nothing.\n",
            qpo_dataset_formats, qpo_config_known_tasks());
}

typedef struct data_opts {
    const char *db, *format, *upstream_split, *task, *setting, *target, *model_key, *data;
    const char *weight; /* --avg-acc-weight */
    bool skip_bad, replace;
} data_opts;

static int parse(int argc, char **argv, data_opts *o) {
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"upstream-split", required_argument, NULL, 'u'},
                                         {"skip-bad", no_argument, NULL, 'b'},
                                         {"replace", no_argument, NULL, 'r'},
                                         {"task", required_argument, NULL, 't'},
                                         {"setting", required_argument, NULL, 's'},
                                         {"target", required_argument, NULL, 'g'},
                                         {"model-key", required_argument, NULL, 'm'},
                                         {"data", required_argument, NULL, 'D'},
                                         {"avg-acc-weight", required_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->db = optarg;
            break;
        case 'f':
            o->format = optarg;
            break;
        case 'u':
            o->upstream_split = optarg;
            break;
        case 'b':
            o->skip_bad = true;
            break;
        case 'r':
            o->replace = true;
            break;
        case 't':
            o->task = optarg;
            break;
        case 's':
            o->setting = optarg;
            break;
        case 'g':
            o->target = optarg;
            break;
        case 'm':
            o->model_key = optarg;
            break;
        case 'D':
            o->data = optarg;
            break;
        case 'w':
            o->weight = optarg;
            break;
        case 'h':
            data_usage(stdout);
            return 1;
        default:
            data_usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    return 0;
}

static void print_split_counts(PGconn *conn, const char *task) {
    qpo_err err = {0};
    const char *params[] = {task};
    PGresult *res = qpo_db_named(conn, "import_split_counts", 1, params, &err);
    if (!res)
        return;
    printf("%s now holds:", task);
    for (int i = 0; i < PQntuples(res); i++)
        printf(" %s %s", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    printf("\n");
    PQclear(res);
}

static int import_items(const data_opts *o, const char *task, char **paths, int npaths) {
    qpo_err err = {0};
    if (o->upstream_split && strcmp(o->upstream_split, "train") &&
        strcmp(o->upstream_split, "validation") && strcmp(o->upstream_split, "test") &&
        strcmp(o->upstream_split, "all")) {
        qpo_err_set(&err, QPO_EXIT_USAGE,
                    "--upstream-split: \"%s\" is not train, validation, "
                    "test or all",
                    o->upstream_split);
        return qpo_err_print(&err);
    }
    if (o->upstream_split && npaths > 1) {
        qpo_err_set(&err, QPO_EXIT_USAGE, "--upstream-split names the split of one file");
        qpo_err_hint(&err, "import the files one at a time, or let their names tell the split");
        return qpo_err_print(&err);
    }
    qpo_item_list list = {0};
    int rc = 0;
    for (int i = 0; i < npaths && rc == 0; i++)
        rc = qpo_read_dataset(task, paths[i], o->format, o->upstream_split, o->skip_bad, &list,
                              &err);
    if (rc == 0)
        rc = qpo_items_assign_splits(task, &list, &err);
    PGconn *conn = rc == 0 ? qpo_sched_connect(o->db, "qpo data import", &err) : NULL;
    qpo_import_counts counts;
    if (conn && qpo_import_items(conn, task, &list, o->replace, &counts, &err) == 0) {
        if (o->replace)
            printf("%s: %zu rows replaced\n", task, counts.replaced);
        printf("%s: %zu rows read, %zu new, %zu already present, %zu malformed skipped\n", task,
               counts.read, counts.inserted, counts.unchanged, counts.skipped);
        print_split_counts(conn, task);
    } else
        rc = -1;
    PQfinish(conn);
    qpo_item_list_free(&list);
    return rc < 0 ? qpo_err_print(&err) : 0;
}

static int import_d0(const data_opts *o, const char *file) {
    qpo_err err = {0};
    if (!o->task || !o->setting || !o->target) {
        qpo_err_set(&err, QPO_EXIT_USAGE, "import-d0 needs --task, --setting and --target");
        qpo_err_hint(&err, "e.g. qpo data import-d0 FILE --task tweet_emotion --setting few_shot "
                           "--target llama2-7b-chat");
        return qpo_err_print(&err);
    }
    char *end = NULL;
    double weight = o->weight ? strtod(o->weight, &end) : QPO_REWARD_AVG_ACC_WEIGHT;
    if (o->weight &&
        (end == o->weight || *end || !(weight >= 0) || weight > QPO_REWARD_AVG_ACC_WEIGHT_MAX)) {
        qpo_err_set(&err, QPO_EXIT_USAGE, "--avg-acc-weight: \"%s\" is not a number in [0, %g]",
                    o->weight, QPO_REWARD_AVG_ACC_WEIGHT_MAX);
        return qpo_err_print(&err);
    }
    qpo_d0_import opts = {file, o->task, o->setting, o->target, o->model_key, o->skip_bad, weight};
    PGconn *conn = qpo_sched_connect(o->db, "qpo data import-d0", &err);
    qpo_import_counts counts;
    int rc = conn ? qpo_import_d0(conn, &opts, &counts, &err) : -1;
    if (rc == 0)
        printf("D_0 %s/%s/%s: %zu records read, %zu new, %zu already present, %zu malformed "
               "skipped\n",
               o->task, o->setting, o->target, counts.read, counts.inserted, counts.unchanged,
               counts.skipped);
    PQfinish(conn);
    return rc < 0 ? qpo_err_print(&err) : 0;
}

/* `qpo data import TASK` alone: the files the manifest lists for the task, in the data folder. */
static int import_from_data_dir(const data_opts *o, const char *task) {
    qpo_err err = {0};
    char dir[2048];
    json_t *manifest = NULL;
    const json_t *set;
    if (qpo_data_dir(o->data, dir, sizeof(dir), &err) < 0 ||
        !(manifest = qpo_data_manifest(&err)) || !(set = qpo_data_set(manifest, task, &err))) {
        json_decref(manifest);
        return qpo_err_print(&err);
    }
    const json_t *files = json_object_get(set, "import");
    if (!dir[0] || !json_array_size(files)) {
        qpo_err_set(&err, QPO_EXIT_USAGE,
                    dir[0] ? "%s: the manifest lists no file to import"
                           : "%s: no data folder to import from",
                    task);
        qpo_err_hint(&err,
                     "name the files (qpo data import %s PATH...), or fetch them first: "
                     "qpo data fetch %s",
                     task, task);
        json_decref(manifest);
        return qpo_err_print(&err);
    }
    size_t n = json_array_size(files);
    char **paths = calloc(n, sizeof(*paths));
    for (size_t i = 0; paths && i < n; i++)
        if (asprintf(&paths[i], "%s/%s", dir, json_string_value(json_array_get(files, i))) < 0)
            paths[i] = NULL;
    for (size_t i = 0; i < n; i++)
        if (!paths || !paths[i]) {
            fprintf(stderr, "qpo: error: out of memory\n");
            exit(QPO_EXIT_RUNTIME);
        }
    printf("%s: importing from %s\n", task, dir);
    int rc = import_items(o, task, paths, (int)n);
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
    json_decref(manifest);
    return rc;
}

int qpo_cmd_data(int argc, char **argv) {
    /* fetch has its own options, so it is handed over before these are parsed. */
    if (argc >= 2 && !strcmp(argv[1], "fetch"))
        return qpo_cmd_data_fetch(argc - 1, argv + 1);
    data_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    int nargs = argc - optind;
    char **args = argv + optind;
    if (nargs >= 3 && !strcmp(args[0], "import"))
        return import_items(&o, args[1], args + 2, nargs - 2);
    if (nargs == 2 && !strcmp(args[0], "import"))
        return import_from_data_dir(&o, args[1]);
    if (nargs == 2 && !strcmp(args[0], "import-d0"))
        return import_d0(&o, args[1]);
    data_usage(stderr);
    return QPO_EXIT_USAGE;
}
