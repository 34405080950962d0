/* The experiment config validator (`qpo submit`, the scheduler) on arbitrary JSON: it resolves
 * a config or refuses it with a usage error naming the field, and never crashes. A resolved
 * config must resolve again to itself (the scheduler re-reads resolved configs). */
#include <jansson.h>
#include <stdlib.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t jerr;
    json_t *config = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (!config)
        return 0;
    qpo_err err = {0};
    json_t *resolved = qpo_config_resolve(config, &err);
    if (!resolved) {
        if (err.code != QPO_EXIT_USAGE || !err.msg[0])
            abort();
    } else {
        qpo_err again = {0};
        json_t *twice = qpo_config_resolve(resolved, &again);
        if (!twice || !json_equal(twice, resolved))
            abort();
        json_decref(twice);
    }
    json_decref(resolved);
    json_decref(config);
    return 0;
}
