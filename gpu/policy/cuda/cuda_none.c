/* qpo_backend_cuda in a build without nvcc: there is no CUDA backend to hand out. */
#include <stdio.h>

#include "../backend.h"

const qpo_backend *qpo_backend_cuda(qpo_dtype dtype, char *errbuf, size_t errlen) {
    (void)dtype;
    snprintf(errbuf, errlen, "this qpo was built without CUDA (no nvcc found at configure time)");
    return NULL;
}
