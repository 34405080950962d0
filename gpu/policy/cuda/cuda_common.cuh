#ifndef QPO_POLICY_CUDA_COMMON_CUH
#define QPO_POLICY_CUDA_COMMON_CUH

/* Shared by the CUDA backend's kernels: launch sizes, error checks, warp reductions in a fixed
 * order (so sums do not depend on scheduling), the dropout bits of hash.h, and the backend's
 * context (stream, cuBLAS handle, grow-only scratch buffers). */

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "../backend.h"
#include "../hash.h"
}

/* A CUDA or cuBLAS failure inside an op has no error channel in the op table (the CPU ops
 * cannot fail either), so it is reported with its place and the process exits: a half-applied
 * training step must not be checkpointed. */
void qpo_cuda_fail(const char *what, const char *file, int line);
#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t err_ = (call);                                                                 \
        if (err_ != cudaSuccess)                                                                   \
            qpo_cuda_fail(cudaGetErrorString(err_), __FILE__, __LINE__);                           \
    } while (0)
#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t st_ = (call);                                                               \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                          \
            qpo_cuda_fail(cublasGetStatusString(st_), __FILE__, __LINE__);                         \
    } while (0)
#define KERNEL_CHECK() CUDA_CHECK(cudaGetLastError())

static inline unsigned qpo_cdiv(size_t n, unsigned d) {
    return (unsigned)((n + d - 1) / d);
}

/* Fixed butterfly order: every lane ends with the same, reproducible value. */
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* As qpo_dropout_scale in cpu/cpu_ops.h: keep with probability 1-p, scaled by 1/(1-p). */
__device__ __forceinline__ float dropout_scale(qpo_dropout d, uint64_t index) {
    float u = (float)(qpo_splitmix64(d.seed ^ index) >> 40) * (1.0f / 16777216.0f);
    return u >= d.p ? 1.0f / (1.0f - d.p) : 0.0f;
}

typedef struct qpo_cuda_ctx {
    cudaStream_t stream;
    cublasHandle_t blas;
    qpo_dtype dtype;
    /* grow-only device scratch, by slot (see QPO_SCRATCH_*) */
    void *scratch[4];
    size_t scratch_bytes[4];
} qpo_cuda_ctx;

enum { QPO_SCRATCH_REDUCE = 0, QPO_SCRATCH_A = 1, QPO_SCRATCH_B = 2, QPO_SCRATCH_C = 3 };

/* The one context every op uses (the backend is per process, device 0). */
extern qpo_cuda_ctx qpo_cuda;
/* At least `bytes` of scratch slot `slot`; grows (synchronously) when needed. */
void *qpo_cuda_scratch(int slot, size_t bytes);

#endif
