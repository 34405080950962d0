#ifndef QPO_SQL_FILES_H
#define QPO_SQL_FILES_H

/* The SQL files compiled into the binary (see embed_sql.cmake); each list ends with {0, 0}. */
typedef struct qpo_sql_file {
    const char *name;
    const char *text;
} qpo_sql_file;

extern const qpo_sql_file qpo_sql_migrations[];
extern const qpo_sql_file qpo_sql_queries[];

#endif
