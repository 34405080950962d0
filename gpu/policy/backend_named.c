/* Backend selection by name, shared by the worker and the policy commands. */
#include <stdio.h>
#include <string.h>

#include "backend.h"

const qpo_backend *qpo_backend_named(const char *name, char *errbuf, size_t errlen) {
    if (!strcmp(name, "cpu"))
        return qpo_backend_cpu();
    if (!strcmp(name, "cuda"))
        return qpo_backend_cuda(QPO_DTYPE_FP32, errbuf, errlen);
    if (!strcmp(name, "cuda-bf16"))
        return qpo_backend_cuda(QPO_DTYPE_BF16, errbuf, errlen);
    if (!strcmp(name, "auto")) {
        char ignored[256];
        const qpo_backend *be = qpo_backend_cuda(QPO_DTYPE_FP32, ignored, sizeof ignored);
        return be ? be : qpo_backend_cpu();
    }
    snprintf(errbuf, errlen, "unknown backend '%s' (cpu, cuda, cuda-bf16, auto)", name);
    return NULL;
}
