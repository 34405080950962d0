/* qpo_backend_cuda in a build without nvcc: there is no CUDA backend to hand out. */
#include <stdio.h>

#include "../backend.h"

const qpo_backend *qpo_backend_cuda(qpo_dtype dtype, char *errbuf, size_t errlen) {
    (void)dtype;
    snprintf(
        errbuf, errlen,
        "this qpo was built without the CUDA backend (no nvcc at configure time, or QPO_CUDA=OFF)");
    return NULL;
}
