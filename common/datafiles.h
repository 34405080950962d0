#ifndef QPO_DATAFILES_H
#define QPO_DATAFILES_H

/* The data folder and what it holds: one resolver for every command that reads upstream
 * data files (qpo data import, qpo demo, qpo data fetch), and the manifest of those files
 * (config/data-manifest.json, compiled in): per data set, each file's path inside the data
 * folder, its SHA-256, size and upstream URLs. The data folder's layout is ../shared/data's. */

#include <jansson.h>
#include <stddef.h>

#include "error.h"

/* The manifest, parsed (a new reference: json_decref it). NULL only if the compiled-in text
 * is broken, which a test catches. */
json_t *qpo_data_manifest(qpo_err *err);

/* The data set called name in the manifest (borrowed from it), or NULL with a usage error
 * that lists the known names. */
const json_t *qpo_data_set(const json_t *manifest, const char *name, qpo_err *err);

/* Where `qpo data fetch` keeps files: explicit (--cache), else $QPO_CACHE_DIR, else
 * $XDG_CACHE_HOME/qpo, else $HOME/.cache/qpo. -1 when none of them can be named. */
int qpo_data_cache_dir(const char *explicit_dir, char *buf, size_t n, qpo_err *err);

/* The data folder to read: explicit (--data), else $QPO_DATA_DIR, else ../shared/data, else
 * the fetch cache; each of the first two must be a folder (else a usage error naming it), the
 * last two are used when they exist. Writes "" and returns 0 when there is none; -1 on error. */
int qpo_data_dir(const char *explicit_dir, char *buf, size_t n, qpo_err *err);

#endif
