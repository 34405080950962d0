/* Named SQL statements: each file in sql/queries/ holds blocks that start with a line
 * "-- name: NAME"; a block runs to the next such line. Parsed once, on first use. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "sql_files.h"

typedef struct named_stmt {
    char *name;
    char *text;
} named_stmt;

static named_stmt *stmts;
static size_t nstmts;
static pthread_once_t parsed = PTHREAD_ONCE_INIT;

static void add_stmt(const char *name, size_t name_len, const char *body, size_t body_len) {
    stmts = realloc(stmts, (nstmts + 1) * sizeof(*stmts));
    if (!stmts)
        abort();
    stmts[nstmts].name = strndup(name, name_len);
    stmts[nstmts].text = strndup(body, body_len);
    nstmts++;
}

static void parse_file(const char *text) {
    static const char marker[] = "-- name: ";
    const char *p = strstr(text, marker);
    while (p) {
        const char *name = p + sizeof(marker) - 1;
        const char *eol = strchr(name, '\n');
        if (!eol)
            return;
        size_t name_len = (size_t)(eol - name);
        while (name_len && (name[name_len - 1] == ' ' || name[name_len - 1] == '\r'))
            name_len--;
        const char *next = strstr(eol, marker);
        const char *end = next ? next : eol + strlen(eol);
        add_stmt(name, name_len, eol + 1, (size_t)(end - eol - 1));
        p = next;
    }
}

static void parse_all(void) {
    for (const qpo_sql_file *f = qpo_sql_queries; f->name; f++)
        parse_file(f->text);
}

const char *qpo_sql(const char *name) {
    pthread_once(&parsed, parse_all);
    for (size_t i = 0; i < nstmts; i++)
        if (!strcmp(stmts[i].name, name))
            return stmts[i].text;
    fprintf(stderr, "qpo: internal error: no SQL statement named '%s' in sql/queries/\n", name);
    abort();
}
