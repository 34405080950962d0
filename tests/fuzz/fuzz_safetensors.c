/* The safetensors reader on arbitrary bytes: a file it accepts must be safe to read whole
 * (every tensor converted to f32, metadata looked up); one it refuses must say why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512] = "";
    qpo_st_file *f = qpo_st_open_buffer(data, size, "fuzz", err, sizeof err);
    if (!f) {
        if (!err[0])
            abort(); /* a refusal without a message */
        return 0;
    }
    for (size_t i = 0; i < qpo_st_count(f); i++) {
        const qpo_st_tensor *t = qpo_st_at(f, i);
        size_t n = qpo_st_numel(t);
        if (n * qpo_st_dtype_size(t->dtype) != t->nbytes || qpo_st_find(f, t->name) != t)
            abort();
        float *dst = malloc((n ? n : 1) * sizeof(float));
        if (dst && qpo_st_read_f32(t, dst, n, err, sizeof err) != 0 && !err[0])
            abort();
        free(dst);
    }
    (void)qpo_st_metadata(f, "format");
    qpo_st_close(f);
    return 0;
}
