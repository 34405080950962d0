/* The CUDA backend's table: device memory, one stream, one cuBLAS handle, and the ops in this
 * folder. Created once per process and dtype; NULL with a reason when no device is visible. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_ops.cuh"

qpo_cuda_ctx qpo_cuda;

void qpo_cuda_fail(const char *what, const char *file, int line) {
    fprintf(stderr, "qpo: CUDA backend: %s (%s:%d)\n", what, file, line);
    exit(1);
}

void *qpo_cuda_scratch(int slot, size_t bytes) {
    if (bytes <= qpo_cuda.scratch_bytes[slot])
        return qpo_cuda.scratch[slot];
    CUDA_CHECK(cudaStreamSynchronize(qpo_cuda.stream));
    if (qpo_cuda.scratch[slot])
        CUDA_CHECK(cudaFree(qpo_cuda.scratch[slot]));
    size_t grow = bytes + bytes / 4; /* fewer regrowths as batch shapes vary */
    CUDA_CHECK(cudaMalloc(&qpo_cuda.scratch[slot], grow));
    qpo_cuda.scratch_bytes[slot] = grow;
    return qpo_cuda.scratch[slot];
}

static void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        (void)cudaGetLastError(); /* an out-of-memory is reported as NULL, not sticky */
        return NULL;
    }
    if (cudaMemsetAsync(p, 0, bytes, qpo_cuda.stream) != cudaSuccess) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void cuda_free(void *p) {
    if (!p)
        return;
    CUDA_CHECK(cudaStreamSynchronize(qpo_cuda.stream));
    CUDA_CHECK(cudaFree(p));
}

/* Host buffers are pageable and may be reused by the caller right after the call returns, so
 * both copies complete before returning. */
static void cuda_upload(void *dst, const void *src, size_t bytes) {
    if (!bytes)
        return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, qpo_cuda.stream));
    CUDA_CHECK(cudaStreamSynchronize(qpo_cuda.stream));
}

static void cuda_download(void *dst, const void *src, size_t bytes) {
    if (!bytes)
        return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, qpo_cuda.stream));
    CUDA_CHECK(cudaStreamSynchronize(qpo_cuda.stream));
}

static void cuda_zero(void *dst, size_t bytes) {
    if (bytes)
        CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, qpo_cuda.stream));
}

static char device_name[256];

static qpo_backend make_table(qpo_dtype dtype) {
    qpo_backend t;
    memset(&t, 0, sizeof t);
    t.name = dtype == QPO_DTYPE_BF16 ? "cuda-bf16" : "cuda";
    t.device = device_name;
    t.dtype = dtype;
    t.alloc = cuda_alloc;
    t.free = cuda_free;
    t.upload = cuda_upload;
    t.download = cuda_download;
    t.zero = cuda_zero;
    t.matmul_forward =
        dtype == QPO_DTYPE_BF16 ? qpo_cuda_matmul_forward_bf16 : qpo_cuda_matmul_forward;
    t.matmul_rows_forward = qpo_cuda_matmul_rows_forward;
    t.matmul_backward =
        dtype == QPO_DTYPE_BF16 ? qpo_cuda_matmul_backward_bf16 : qpo_cuda_matmul_backward;
    t.layernorm_forward = qpo_cuda_layernorm_forward;
    t.layernorm_backward = qpo_cuda_layernorm_backward;
    t.attention_forward = qpo_cuda_attention_forward;
    t.attention_backward = qpo_cuda_attention_backward;
    t.attention_decode = qpo_cuda_attention_decode;
    t.kv_store = qpo_cuda_kv_store;
    t.gelu_forward = qpo_cuda_gelu_forward;
    t.gelu_backward = qpo_cuda_gelu_backward;
    t.relu_forward = qpo_cuda_relu_forward;
    t.relu_backward = qpo_cuda_relu_backward;
    t.dropout_forward = qpo_cuda_dropout_forward;
    t.dropout_backward = qpo_cuda_dropout_backward;
    t.residual_forward = qpo_cuda_residual_forward;
    t.accumulate = qpo_cuda_accumulate;
    t.pgdt_embed_forward = qpo_cuda_pgdt_embed_forward;
    t.pgdt_embed_backward = qpo_cuda_pgdt_embed_backward;
    t.position_forward = qpo_cuda_position_forward;
    t.position_backward = qpo_cuda_position_backward;
    t.gather_rows = qpo_cuda_gather_rows;
    t.gather_rows_backward = qpo_cuda_gather_rows_backward;
    t.crossentropy_fused = qpo_cuda_crossentropy_fused;
    t.sumsq = qpo_cuda_sumsq;
    t.scale = qpo_cuda_scale;
    t.adamw_update = qpo_cuda_adamw_update;
    return t;
}

static qpo_backend tables[2];
static char init_error[256];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(init_error, sizeof init_error, "no CUDA device visible (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return;
    }
    cudaDeviceProp prop;
    if ((e = cudaSetDevice(0)) != cudaSuccess ||
        (e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&qpo_cuda.stream, cudaStreamNonBlocking)) != cudaSuccess) {
        snprintf(init_error, sizeof init_error, "CUDA device 0: %s", cudaGetErrorString(e));
        return;
    }
    cublasStatus_t st = cublasCreate(&qpo_cuda.blas);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasSetStream(qpo_cuda.blas, qpo_cuda.stream);
    /* The default math mode keeps sgemm in fp32 (TF32 only on request), so the fp32 mode is
     * comparable with the CPU op by op, and still lets bf16 GemmEx use the tensor cores.
     * (NVIDIA_TF32_OVERRIDE=1 in the environment would break the first: don't set it.) */
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasSetMathMode(qpo_cuda.blas, CUBLAS_DEFAULT_MATH);
    if (st != CUBLAS_STATUS_SUCCESS) {
        snprintf(init_error, sizeof init_error, "cuBLAS: %s", cublasGetStatusString(st));
        return;
    }
    snprintf(device_name, sizeof device_name, "%s", prop.name);
    tables[QPO_DTYPE_FP32] = make_table(QPO_DTYPE_FP32);
    tables[QPO_DTYPE_BF16] = make_table(QPO_DTYPE_BF16);
}

extern "C" const qpo_backend *qpo_backend_cuda(qpo_dtype dtype, char *errbuf, size_t errlen) {
    pthread_once(&init_once, init);
    if (init_error[0]) {
        snprintf(errbuf, errlen, "%s", init_error);
        return NULL;
    }
    if (dtype != QPO_DTYPE_FP32 && dtype != QPO_DTYPE_BF16) {
        snprintf(errbuf, errlen, "CUDA backend: unknown dtype %d", (int)dtype);
        return NULL;
    }
    return &tables[dtype];
}
