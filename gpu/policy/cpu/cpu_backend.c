/* The CPU backend's table: host memory and the ops in this folder. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"

static void *cpu_alloc(size_t bytes) {
    return calloc(1, bytes ? bytes : 1);
}

static void cpu_copy(void *dst, const void *src, size_t bytes) {
    memcpy(dst, src, bytes);
}

static void cpu_zero(void *dst, size_t bytes) {
    memset(dst, 0, bytes);
}

static const qpo_backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .zero = cpu_zero,
    .matmul_forward = qpo_cpu_matmul_forward,
    .matmul_rows_forward = qpo_cpu_matmul_rows_forward,
    .matmul_backward = qpo_cpu_matmul_backward,
    .layernorm_forward = qpo_cpu_layernorm_forward,
    .layernorm_backward = qpo_cpu_layernorm_backward,
    .attention_forward = qpo_cpu_attention_forward,
    .attention_backward = qpo_cpu_attention_backward,
    .attention_decode = qpo_cpu_attention_decode,
    .kv_store = qpo_cpu_kv_store,
    .gelu_forward = qpo_cpu_gelu_forward,
    .gelu_backward = qpo_cpu_gelu_backward,
    .relu_forward = qpo_cpu_relu_forward,
    .relu_backward = qpo_cpu_relu_backward,
    .dropout_forward = qpo_cpu_dropout_forward,
    .dropout_backward = qpo_cpu_dropout_backward,
    .residual_forward = qpo_cpu_residual_forward,
    .accumulate = qpo_cpu_accumulate,
    .pgdt_embed_forward = qpo_cpu_pgdt_embed_forward,
    .pgdt_embed_backward = qpo_cpu_pgdt_embed_backward,
    .position_forward = qpo_cpu_position_forward,
    .position_backward = qpo_cpu_position_backward,
    .gather_rows = qpo_cpu_gather_rows,
    .gather_rows_backward = qpo_cpu_gather_rows_backward,
    .crossentropy_fused = qpo_cpu_crossentropy_fused,
    .sumsq = qpo_cpu_sumsq,
    .scale = qpo_cpu_scale,
    .adamw_update = qpo_cpu_adamw_update,
};

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

const qpo_backend *qpo_backend_cpu(void) {
    pthread_once(&blas_once, qpo_cpu_blas_init);
    return &cpu_backend;
}
