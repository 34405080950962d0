/* Upstream file formats to rows: JSON lines, JSON arrays, CSV (RFC 4180), TweetEval's
 * parallel text/label files and IMDB's aclImdb folders. Every row keeps its origin so a
 * malformed one is reported as file:line. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "lines.h"
#include "tasks.h"

const char *const qpo_dataset_formats = "auto, jsonl, json, csv, tweeteval, aclimdb";

typedef struct reader {
    const char *task;
    const char *upstream_split;
    bool skip_bad;
    qpo_item_list *list;
    int next_index;
} reader;

/* A malformed row: fails the import with its file:line, or is counted under --skip-bad. */
static int row_failed(reader *r, const qpo_row_origin *at, qpo_err *err) {
    if (err->code != QPO_EXIT_USAGE)
        return -1;
    if (r->skip_bad) {
        r->list->skipped++;
        qpo_err_clear(err);
        return 0;
    }
    qpo_err_prefix(err, at->element ? "%s: element %ld" : "%s:%ld", at->file, at->line);
    qpo_err_hint(err, "fix or remove the row, or pass --skip-bad to skip malformed rows");
    return -1;
}

static int take_row(reader *r, const json_t *row, const qpo_row_origin *at, qpo_err *err) {
    int index = r->next_index++;
    if (qpo_item_from_row(r->task, row, r->upstream_split, index, r->list, err) == 0)
        return 0;
    return row_failed(r, at, err);
}

static int io_err(qpo_err *err, const char *path) {
    qpo_err_set(err, QPO_EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
    return -1;
}

/* Not skippable with --skip-bad: the file is not text (or not this format), and the rest of
 * the line would be read as rows. */
static int too_long(qpo_err *err, const char *path, long lineno) {
    qpo_err_set(err, QPO_EXIT_USAGE, "%s:%ld: a line longer than %d bytes", path, lineno,
                QPO_MAX_LINE_BYTES);
    qpo_err_hint(err, "is it a text file of the format given? no row of a known data set comes "
                      "near this");
    return -1;
}

static int read_jsonl(reader *r, const char *path, qpo_err *err) {
    FILE *f = fopen(path, "r");
    if (!f)
        return io_err(err, path);
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    ssize_t got;
    while (rc == 0 && (got = qpo_getline_max(&line, &cap, f, QPO_MAX_LINE_BYTES)) != QPO_LINE_EOF) {
        lineno++;
        if (got == QPO_LINE_TOO_LONG) {
            rc = too_long(err, path, lineno);
            break;
        }
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        json_error_t jerr;
        json_t *row = json_loads(line, 0, &jerr);
        qpo_row_origin at = {path, lineno, false};
        if (!row) {
            r->next_index++;
            qpo_err_set(err, QPO_EXIT_USAGE, "not a JSON object: %s", jerr.text);
            rc = row_failed(r, &at, err);
            continue;
        }
        rc = take_row(r, row, &at, err);
        json_decref(row);
    }
    free(line);
    fclose(f);
    return rc;
}

static int read_json_array(reader *r, const char *path, qpo_err *err) {
    json_error_t jerr;
    json_t *all = json_load_file(path, 0, &jerr);
    if (!all) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_array(all)) {
        json_decref(all);
        return qpo_err_set(err, QPO_EXIT_USAGE, "%s: expected a JSON array of objects", path);
    }
    size_t i;
    json_t *row;
    int rc = 0;
    json_array_foreach(all, i, row) {
        qpo_row_origin at = {path, (long)i, true};
        if ((rc = take_row(r, row, &at, err)) < 0)
            break;
    }
    json_decref(all);
    return rc;
}

/* One CSV record (RFC 4180: quoted fields may hold commas, quotes and newlines). Returns the
 * number of fields, 0 at end of file, -1 on an unterminated quote, -2 past
 * QPO_MAX_LINE_BYTES. *lines counts the newlines
 * consumed so the next record's line number is known. */
static int csv_record(FILE *f, char ***fields_out, long *lines) {
    size_t nf = 0, capf = 8, len = 0, cap = 256, total = 0;
    char **fields = malloc(capf * sizeof(*fields));
    char *buf = malloc(cap);
    int c, quoted = 0, any = 0, nf_too_long = 0;
    for (;;) {
        c = fgetc(f);
        if (c == EOF && !any) {
            free(buf);
            free(fields);
            return 0;
        }
        if (c == EOF && quoted)
            break;
        if (++total > QPO_MAX_LINE_BYTES) {
            nf_too_long = 1;
            break;
        }
        any = 1;
        if (quoted) {
            if (c == '"') {
                int d = fgetc(f);
                if (d != '"') {
                    quoted = 0;
                    ungetc(d, f);
                    continue;
                }
            } else if (c == '\n')
                (*lines)++;
        } else if (c == '"' && len == 0) {
            quoted = 1;
            continue;
        } else if (c == ',' || c == '\n' || c == EOF) {
            if (len && buf[len - 1] == '\r' && c != ',')
                len--;
            if (nf + 1 >= capf)
                fields = realloc(fields, (capf *= 2) * sizeof(*fields));
            fields[nf++] = strndup(buf, len);
            len = 0;
            if (c == ',')
                continue;
            if (c == '\n')
                (*lines)++;
            *fields_out = fields;
            free(buf);
            return (int)nf;
        }
        if (len + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        buf[len++] = (char)c;
    }
    for (size_t i = 0; i < nf; i++)
        free(fields[i]);
    free(fields);
    free(buf);
    return nf_too_long ? -2 : -1;
}

static void free_fields(char **fields, int n) {
    for (int i = 0; i < n; i++)
        free(fields[i]);
    free(fields);
}

/* AG News' native CSV has no header: class index, title, description. Other CSVs (CosmosQA)
 * name their columns in the first record. */
static int read_csv(reader *r, const char *path, qpo_err *err) {
    FILE *f = fopen(path, "r");
    if (!f)
        return io_err(err, path);
    char **header = NULL;
    int nheader = 0, rc = 0;
    long line = 1, next_line = 1;
    if (!strcmp(r->task, "ag_news")) {
        static const char *const cols[] = {"class_index", "title", "description"};
        nheader = 3;
        header = malloc(3 * sizeof(*header));
        for (int i = 0; i < 3; i++)
            header[i] = strdup(cols[i]);
    } else if ((nheader = csv_record(f, &header, &next_line)) <= 0) {
        fclose(f);
        return nheader == -2 ? too_long(err, path, 1)
                             : qpo_err_set(err, QPO_EXIT_USAGE, "%s: no header row", path);
    }
    for (;;) {
        char **fields = NULL;
        line = next_line;
        int n = csv_record(f, &fields, &next_line);
        if (n == 0)
            break;
        qpo_row_origin at = {path, line, false};
        if (n == -2) {
            rc = too_long(err, path, line);
            break;
        }
        if (n < 0) {
            rc = qpo_err_set(err, QPO_EXIT_USAGE, "%s:%ld: unterminated quoted field", path, line);
            break;
        }
        json_t *row = json_object();
        for (int i = 0; i < n && i < nheader; i++)
            json_object_set_new(row, header[i], json_string(fields[i]));
        if (n != nheader) {
            r->next_index++;
            qpo_err_set(err, QPO_EXIT_USAGE, "%d columns where the header has %d", n, nheader);
            rc = row_failed(r, &at, err);
        } else
            rc = take_row(r, row, &at, err);
        json_decref(row);
        free_fields(fields, n);
        if (rc < 0)
            break;
    }
    free_fields(header, nheader);
    fclose(f);
    return rc;
}

/* The labels file beside X_text.txt is X_labels.txt. mapping.txt, when present, must agree
 * with the task's verbalizer order, or labels would silently mean other emotions. */
static int check_tweeteval_mapping(const char *text_path, qpo_err *err) {
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", text_path);
    char *slash = strrchr(dir, '/');
    snprintf(slash ? slash + 1 : dir, sizeof(dir) - (size_t)(slash ? slash + 1 - dir : 0),
             "mapping.txt");
    FILE *f = fopen(dir, "r");
    if (!f)
        return 0;
    const qpo_task *task = qpo_task_find("tweet_emotion");
    int id, rc = 0;
    char name[64];
    while (rc == 0 && fscanf(f, "%d %63s", &id, name) == 2)
        if (id < 0 || id >= task->n_labels || strcasecmp(name, task->verbalizers[id]))
            rc = qpo_err_set(
                err, QPO_EXIT_USAGE, "%s: label %d is \"%s\" but qpo's verbalizer %d is \"%s\"",
                dir, id, name, id, id >= 0 && id < task->n_labels ? task->verbalizers[id] : "?");
    fclose(f);
    return rc;
}

/* TweetEval's text files end every line with a space that the Hugging Face export (and so
 * the authors' D_0 queries) do not have: trailing blanks go, or D_0 would match no item. */
static void chomp(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

static int read_tweeteval(reader *r, const char *text_path, qpo_err *err) {
    char labels_path[4096];
    snprintf(labels_path, sizeof(labels_path), "%s", text_path);
    char *suffix = strstr(labels_path, "_text.txt");
    if (!suffix)
        return qpo_err_set(err, QPO_EXIT_USAGE, "%s: TweetEval text files end in _text.txt",
                           text_path);
    strcpy(suffix, "_labels.txt");
    if (check_tweeteval_mapping(text_path, err) < 0)
        return -1;
    FILE *ft = fopen(text_path, "r"), *fl = fopen(labels_path, "r");
    if (!ft || !fl) {
        io_err(err, ft ? labels_path : text_path);
        if (ft)
            fclose(ft);
        if (fl)
            fclose(fl);
        return -1;
    }
    char *text = NULL, *label = NULL;
    size_t tcap = 0, lcap = 0;
    long line = 0;
    int rc = 0;
    for (;;) {
        ssize_t tn = qpo_getline_max(&text, &tcap, ft, QPO_MAX_LINE_BYTES);
        ssize_t ln = qpo_getline_max(&label, &lcap, fl, QPO_MAX_LINE_BYTES);
        if (tn == QPO_LINE_EOF && ln == QPO_LINE_EOF)
            break;
        line++;
        if (tn == QPO_LINE_TOO_LONG || ln == QPO_LINE_TOO_LONG) {
            rc = too_long(err, tn == QPO_LINE_TOO_LONG ? text_path : labels_path, line);
            break;
        }
        if (tn == QPO_LINE_EOF || ln == QPO_LINE_EOF) {
            bool short_text = tn == QPO_LINE_EOF;
            rc = qpo_err_set(err, QPO_EXIT_USAGE, "%s:%ld: %s has more lines than %s",
                             short_text ? labels_path : text_path, line,
                             short_text ? labels_path : text_path,
                             short_text ? text_path : labels_path);
            break;
        }
        chomp(text);
        chomp(label);
        json_t *row = json_pack("{s:s, s:s}", "text", text, "label", label);
        qpo_row_origin at = {labels_path, line, false};
        rc = row ? take_row(r, row, &at, err)
                 : qpo_err_set(err, QPO_EXIT_USAGE, "%s:%ld: not UTF-8", text_path, line);
        json_decref(row);
        if (rc < 0)
            break;
    }
    free(text);
    free(label);
    fclose(ft);
    fclose(fl);
    return rc;
}

/* aclImdb/<split>/{neg,pos}/<id>_<rating>.txt; rows are numbered neg then pos, each by id,
 * so upstream indexes are stable whatever order the file system lists them in. */
typedef struct imdb_file {
    long id;
    char name[256];
} imdb_file;

static int by_id(const void *a, const void *b) {
    const imdb_file *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : strcmp(x->name, y->name);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

static int read_imdb_class(reader *r, const char *dir, const char *cls, qpo_err *err) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, cls);
    DIR *d = opendir(path);
    if (!d && errno == ENOENT)
        return 0; /* a split holding one class only */
    if (!d)
        return io_err(err, path);
    size_t n = 0, cap = 1024;
    imdb_file *files = malloc(cap * sizeof(*files));
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt"))
            continue;
        if (n == cap)
            files = realloc(files, (cap *= 2) * sizeof(*files));
        files[n].id = strtol(e->d_name, NULL, 10);
        snprintf(files[n].name, sizeof(files[n].name), "%s", e->d_name);
        n++;
    }
    closedir(d);
    qsort(files, n, sizeof(*files), by_id);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char file[4400];
        snprintf(file, sizeof(file), "%s/%s", path, files[i].name);
        char *text = slurp(file);
        if (!text) {
            rc = io_err(err, file);
            break;
        }
        json_t *row = json_pack("{s:s, s:i}", "text", text, "label", !strcmp(cls, "pos"));
        qpo_row_origin at = {file, 1, false};
        rc = row ? take_row(r, row, &at, err)
                 : qpo_err_set(err, QPO_EXIT_USAGE, "%s: not UTF-8", file);
        json_decref(row);
        free(text);
    }
    free(files);
    return rc;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* The upstream split told by a file's name: the last path component mentioning one. */
static const char *split_from_name(const char *task, const char *path) {
    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    if (!strcmp(task, "svamp") && strcasestr(base, "svamp.json"))
        return "all";
    if (strcasestr(base, "train"))
        return "train";
    if (strcasestr(base, "val") || strcasestr(base, "dev"))
        return "validation";
    if (strcasestr(base, "test"))
        return "test";
    return NULL;
}

static const char *detect_format(const char *path, qpo_err *err) {
    if (is_dir(path)) {
        static const char *const probes[] = {"neg", "pos", "train/neg", "test/neg"};
        for (int i = 0; i < 4; i++) {
            char probe[4200];
            snprintf(probe, sizeof(probe), "%s/%s", path, probes[i]);
            if (is_dir(probe))
                return "aclimdb";
        }
        return qpo_err_set(err, QPO_EXIT_USAGE, "%s: a folder, but not an aclImdb split", path),
               NULL;
    }
    if (has_suffix(path, "_text.txt"))
        return "tweeteval";
    if (has_suffix(path, ".csv"))
        return "csv";
    if (has_suffix(path, ".jsonl"))
        return "jsonl";
    FILE *f = fopen(path, "r");
    if (!f)
        return io_err(err, path), NULL;
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\r' || c == '\t')
        ;
    fclose(f);
    if (c == '[')
        return "json";
    if (c == '{')
        return "jsonl";
    qpo_err_set(err, QPO_EXIT_USAGE, "%s: cannot tell the format", path);
    qpo_err_hint(err, "pass --format, one of: %s", qpo_dataset_formats);
    return NULL;
}

/* A TweetEval folder: each of its train/val/test text files, with its split. 1 when the
 * folder held any, 0 when it is not one, -1 on error. */
static int read_tweeteval_folder(const char *task, const char *dir, bool skip_bad,
                                 qpo_item_list *list, qpo_err *err) {
    static const char *const files[] = {"train_text.txt", "val_text.txt", "test_text.txt"};
    int found = 0;
    for (int i = 0; i < 3; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (access(path, R_OK) != 0)
            continue;
        found = 1;
        if (qpo_read_dataset(task, path, "tweeteval", NULL, skip_bad, list, err) < 0)
            return -1;
    }
    return found;
}

int qpo_read_dataset(const char *task, const char *path, const char *format,
                     const char *upstream_split, bool skip_bad, qpo_item_list *list, qpo_err *err) {
    if ((!format || !strcmp(format, "auto") || !strcmp(format, "tweeteval")) && !upstream_split &&
        is_dir(path)) {
        int found = read_tweeteval_folder(task, path, skip_bad, list, err);
        if (found != 0)
            return found < 0 ? -1 : 0;
    }
    if (!format || !strcmp(format, "auto"))
        format = detect_format(path, err);
    if (!format)
        return -1;
    /* aclImdb's root holds train/ and test/: import each. */
    if (!strcmp(format, "aclimdb") && !upstream_split) {
        char sub[4200];
        snprintf(sub, sizeof(sub), "%s/neg", path);
        if (!is_dir(sub)) {
            static const char *const splits[] = {"train", "test"};
            for (int i = 0; i < 2; i++) {
                snprintf(sub, sizeof(sub), "%s/%s", path, splits[i]);
                if (is_dir(sub) &&
                    qpo_read_dataset(task, sub, format, splits[i], skip_bad, list, err) < 0)
                    return -1;
            }
            return 0;
        }
    }
    if (!upstream_split)
        upstream_split = split_from_name(task, path);
    if (!upstream_split) {
        qpo_err_set(err, QPO_EXIT_USAGE, "%s: cannot tell the upstream split from the name", path);
        qpo_err_hint(err, "pass --upstream-split train|validation|test");
        return -1;
    }
    reader r = {task, upstream_split, skip_bad, list, 0};
    /* Each file is one whole upstream split; two would number their rows over each other. */
    for (size_t i = 0; i < list->n; i++)
        if (!strcmp(list->items[i].upstream_split, upstream_split))
            return qpo_err_set(err, QPO_EXIT_USAGE,
                               "%s: a second file for the upstream split \"%s\"", path,
                               upstream_split);
    if (!strcmp(format, "jsonl"))
        return read_jsonl(&r, path, err);
    if (!strcmp(format, "json"))
        return read_json_array(&r, path, err);
    if (!strcmp(format, "csv"))
        return read_csv(&r, path, err);
    if (!strcmp(format, "tweeteval"))
        return read_tweeteval(&r, path, err);
    if (!strcmp(format, "aclimdb"))
        return read_imdb_class(&r, path, "neg", err) < 0 ? -1
                                                         : read_imdb_class(&r, path, "pos", err);
    qpo_err_set(err, QPO_EXIT_USAGE, "unknown format \"%s\"", format);
    qpo_err_hint(err, "known formats: %s", qpo_dataset_formats);
    return -1;
}
