/* qpo data import TASK PATH... | qpo data import-d0 FILE --task T --setting S --target NAME */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd_util.h"
#include "commands.h"
#include "config.h"
#include "db.h"
#include "import.h"

static void data_usage(FILE *out) {
    fprintf(out,
            "usage: qpo data import TASK PATH... [--format F] [--upstream-split S] [--skip-bad]\n"
            "                                    [--replace]\n"
            "       qpo data import-d0 FILE --task T --setting zero_shot|few_shot --target NAME\n"
            "                          [--model-key KEY] [--skip-bad]\n"
            "options: --db CONNINFO\n\n"
            "import     loads a task's upstream files (each file one upstream split: train,\n"
            "           validation or test, told by its name or --upstream-split) into\n"
            "           qpo.task_items with the recipe's seeded train/collect/dev/test splits.\n"
            "           Formats: %s. Tasks: %s.\n"
            "           Rows differing from ones already imported are refused; --replace\n"
            "           replaces the task's items of the files' upstream splits instead, while\n"
            "           no run uses the task.\n"
            "import-d0  loads a released D_0 file into qpo.d0_records.\n"
            "Each import is one transaction; importing the same file again changes nothing.\n",
            qpo_dataset_formats, qpo_config_known_tasks());
}

typedef struct data_opts {
    const char *db, *format, *upstream_split, *task, *setting, *target, *model_key;
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
    qpo_d0_import opts = {file, o->task, o->setting, o->target, o->model_key, o->skip_bad};
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

int qpo_cmd_data(int argc, char **argv) {
    data_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    int nargs = argc - optind;
    char **args = argv + optind;
    if (nargs >= 3 && !strcmp(args[0], "import"))
        return import_items(&o, args[1], args + 2, nargs - 2);
    if (nargs == 2 && !strcmp(args[0], "import-d0"))
        return import_d0(&o, args[1]);
    data_usage(stderr);
    return QPO_EXIT_USAGE;
}
