/* qpo data fetch NAME... [--from URL|DIR] [--cache DIR]: the upstream files of data sets into
 * the cache that `qpo data import`, `qpo demo` and the images read when no data folder is
 * given (common/datafiles.h). */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "datafiles.h"
#include "fetch.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: qpo data fetch NAME... [--from URL|DIR] [--cache DIR]\n\n"
            "Downloads the upstream files of each named data set (tweet_emotion, svamp, gsm8k,\n"
            "d0, gpt2-bpe, prompts, prompt-oirl, or all) into the cache, checking each file's size "
            "and\n"
            "SHA-256 against the manifest compiled in from config/data-manifest.json. A file is\n"
            "written to a temporary name and renamed into place only once it matches, so a\n"
            "wrong checksum, an HTTP error or a cut transfer leaves nothing; files already\n"
            "present and matching are kept. The cache is a data folder laid out as\n"
            "../shared/data: qpo data import, qpo demo and the images read it when neither\n"
            "--data, $QPO_DATA_DIR nor ../shared/data is there. prompt-oirl has no upstream\n"
            "copy (it was assembled from the paper): only --from DIR fetches it.\n\n"
            "  --from DIR    copy from a local data folder instead (offline; CI: ../shared/data)\n"
            "  --from URL    download from a mirror laid out as the data folder (URL/PATH)\n"
            "  --cache DIR   where to put the files (default $QPO_CACHE_DIR, else\n"
            "                $XDG_CACHE_HOME/qpo, else ~/.cache/qpo)\n");
}

typedef struct fetch_opts {
    const char *from, *cache;
} fetch_opts;

static int parse(int argc, char **argv, fetch_opts *o) {
    static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
                                         {"cache", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o->from = optarg;
            break;
        case 'c':
            o->cache = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return QPO_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "qpo: error: qpo data fetch needs the name of a data set\n");
        usage(stderr);
        return QPO_EXIT_USAGE;
    }
    return 0;
}

static int source_of(const char *from, qpo_fetch_source *src, qpo_err *err) {
    if (!from)
        return 0;
    if (!strncmp(from, "http://", 7) || !strncmp(from, "https://", 8)) {
        src->base_url = from;
        return 0;
    }
    struct stat st;
    if (stat(from, &st) < 0 || !S_ISDIR(st.st_mode)) {
        qpo_err_set(err, QPO_EXIT_USAGE, "--from %s is neither a folder nor an http(s) URL", from);
        qpo_err_hint(err, "e.g. --from ../shared/data or --from https://mirror/qpo-data");
        return -1;
    }
    src->dir = from;
    return 0;
}

static int fetch_set(const json_t *set, const qpo_fetch_source *src, const char *cache,
                     qpo_err *err) {
    const char *name = json_string_value(json_object_get(set, "name"));
    size_t i, fetched = 0, present = 0;
    const json_t *file;
    json_array_foreach(json_object_get(set, "files"), i, file) {
        qpo_fetch_outcome got;
        if (qpo_fetch_file(file, src, cache, &got, err) < 0)
            return -1;
        if (got == QPO_FETCH_FETCHED)
            fetched++;
        else
            present++;
    }
    printf("%s: %zu files in %s (%zu fetched, %zu already there)\n", name, fetched + present, cache,
           fetched, present);
    fflush(stdout);
    return 0;
}

/* The named sets, "all" standing for every one; NULL-terminated into sets (borrowed). */
static int pick(const json_t *manifest, char **names, int n, const json_t **sets, size_t cap,
                qpo_err *err) {
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(names[i], "all")) {
            size_t j;
            const json_t *set;
            json_array_foreach(json_object_get(manifest, "datasets"), j, set) {
                if (k + 1 < cap)
                    sets[k++] = set;
            }
            continue;
        }
        const json_t *set = qpo_data_set(manifest, names[i], err);
        if (!set)
            return -1;
        if (k + 1 < cap)
            sets[k++] = set;
    }
    sets[k] = NULL;
    return 0;
}

int qpo_cmd_data_fetch(int argc, char **argv) {
    fetch_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    qpo_err err = {0};
    qpo_fetch_source src = {0};
    char cache[2048];
    const json_t *sets[64];
    json_t *manifest = NULL;
    if (source_of(o.from, &src, &err) < 0 ||
        qpo_data_cache_dir(o.cache, cache, sizeof(cache), &err) < 0 ||
        !(manifest = qpo_data_manifest(&err)) ||
        pick(manifest, argv + optind, argc - optind, sets, 64, &err) < 0) {
        json_decref(manifest);
        return qpo_err_print(&err);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    qpo_fetch_cleanup_on_signals();
    for (size_t i = 0; sets[i] && rc == 0; i++)
        rc = fetch_set(sets[i], &src, cache, &err);
    curl_global_cleanup();
    json_decref(manifest);
    return rc < 0 ? qpo_err_print(&err) : 0;
}
