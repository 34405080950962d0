/* Reading source prompt collections. See source_prompts.h. */
#include "source_prompts.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static void append(qpo_source_prompt **list, size_t *n, const char *method, const char *text) {
    qpo_source_prompt *grown = realloc(*list, (*n + 1) * sizeof **list);
    if (!grown) {
        abort();
    }
    *list = grown;
    grown[*n] = (qpo_source_prompt){strdup(method), strdup(text)};
    (*n)++;
}

/* A YAML file holding one sequence of strings. */
static int load_yaml_list(const char *path, const char *method, qpo_source_prompt **list, size_t *n,
                          qpo_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot read source prompts");
        qpo_err_detail(err, "file %s", path);
        qpo_err_hint(err, "check the d0 job's prompts_dir and collection names");
        return -1;
    }
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int depth = 0, rc = 0;
    for (bool done = false; !done;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            qpo_err_set(err, QPO_EXIT_USAGE, "bad YAML in source prompts");
            qpo_err_detail(err, "%s line %zu: %s", path, parser.problem_mark.line + 1,
                           parser.problem ? parser.problem : "parse error");
            rc = -1;
            break;
        }
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
            depth++;
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (ev.type == YAML_SCALAR_EVENT && depth == 1) {
            append(list, n, method, (const char *)ev.data.scalar.value);
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

static int load_oirl(const char *path, qpo_source_prompt **list, size_t *n, qpo_err *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    json_t *train = json_object_get(root, "train");
    if (!json_is_array(train)) {
        json_decref(root);
        qpo_err_set(err, QPO_EXIT_USAGE, "cannot read Prompt-OIRL prompts");
        qpo_err_detail(err, "%s: %s", path, root ? "no \"train\" list" : jerr.text);
        return -1;
    }
    size_t i;
    json_t *p;
    json_array_foreach(train, i, p) {
        const char *alias = json_string_value(json_object_get(p, "alias"));
        const char *text = json_string_value(json_object_get(p, "text"));
        if (!alias || !text) {
            json_decref(root);
            qpo_err_set(err, QPO_EXIT_USAGE, "Prompt-OIRL prompt %zu lacks alias or text", i);
            qpo_err_detail(err, "file %s", path);
            return -1;
        }
        char method[128];
        snprintf(method, sizeof method, "prompt_oirl/%s", alias);
        append(list, n, method, text);
    }
    json_decref(root);
    return 0;
}

int qpo_source_prompts_load(const char *dir, const char *collection, const char *task,
                            qpo_source_prompt **list, size_t *n, qpo_err *err) {
    char path[4096];
    if (strcmp(collection, "prompt_oirl") == 0) {
        snprintf(path, sizeof path, "%s/prompt_oirl/math_prompts.json", dir);
        return load_oirl(path, list, n, err);
    }
    /* The name is the one the config uses, so the folder is what follows the prefix. */
    size_t plen = strlen(INSTRUCTEVAL_PREFIX);
    const char *folder = collection + plen;
    if (strncmp(collection, INSTRUCTEVAL_PREFIX, plen) || !*folder || strstr(folder, "..") ||
        folder[0] == '/') {
        qpo_err_set(err, QPO_EXIT_USAGE, "bad collection name \"%s\"", collection);
        qpo_err_hint(err, "collections are \"prompt_oirl\" or \"" INSTRUCTEVAL_PREFIX
                          "<folder>\", e.g. " INSTRUCTEVAL_PREFIX "manual, " INSTRUCTEVAL_PREFIX
                          "low_perplexity_prompts/llama7b (config/README.md)");
        return -1;
    }
    snprintf(path, sizeof path, "%s/instructeval/%s/%s.yaml", dir, folder, task);
    return load_yaml_list(path, collection, list, n, err);
}

void qpo_source_prompts_free(qpo_source_prompt *list, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(list[i].method);
        free(list[i].text);
    }
    free(list);
}
