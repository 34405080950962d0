#ifndef QPO_POLICY_CPU_OPS_H
#define QPO_POLICY_CPU_OPS_H

/* The CPU backend's ops (fp32, OpenBLAS sgemm, OpenMP), one file per family; cpu_backend.c
 * puts them in the qpo_backend table. Reductions over rows are column-blocked or chunked so
 * that the summation order never depends on the thread count. */

#include "../backend.h"
#include "../hash.h"

/* Hot loops compiled for AVX-512, AVX2 and baseline x86-64, picked at load time. ISO C mode
 * keeps floating-point contraction off, so every variant computes bitwise the same results. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define QPO_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef QPO_MULTIVERSION
#define QPO_MULTIVERSION
#endif

/* Rows per chunk / columns per block in deterministic reductions. */
#define QPO_CPU_COLBLOCK 64

/* Keep with probability 1-p, scaled by 1/(1-p) as torch's Dropout. d.seed is already mixed
 * (qpo_model_dropout), so one splitmix round per element suffices. */
static inline __attribute__((always_inline)) float qpo_dropout_scale(qpo_dropout d,
                                                                     uint64_t index) {
    float u = (float)(qpo_splitmix64(d.seed ^ index) >> 40) * (1.0f / 16777216.0f);
    return u >= d.p ? 1.0f / (1.0f - d.p) : 0.0f;
}

/* Puts OpenBLAS in single-thread mode (OpenMP does the splitting). */
void qpo_cpu_blas_init(void);
void qpo_cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                            int C, int OC, int w_in_out);
void qpo_cpu_matmul_rows_forward(float *out, const float *inp, const float *w, const float *bias,
                                 int N, int C, int OC, int w_in_out);
void qpo_cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                             const float *inp, const float *w, int N, int C, int OC, int w_in_out);
void qpo_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                               const float *w, const float *b, int N, int C);
void qpo_cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, const float *mean,
                                const float *rstd, int N, int C);
void qpo_cpu_attention_forward(float *out, float *probs, const float *qkv, const int32_t *key_mask,
                               int B, int T, int C, int NH, qpo_dropout drop);
void qpo_cpu_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                const float *probs, const int32_t *key_mask, int B, int T, int C,
                                int NH, qpo_dropout drop);
void qpo_cpu_attention_decode(float *out, const float *qkv, const float *kcache,
                              const float *vcache, const int32_t *key_mask, int B, int len,
                              int Tmax, int C, int NH);
void qpo_cpu_kv_store(float *kcache, float *vcache, const float *qkv, int B, int T, int pos0,
                      int Tmax, int C);
void qpo_cpu_gelu_forward(float *out, const float *inp, size_t n);
void qpo_cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void qpo_cpu_relu_forward(float *out, const float *inp, size_t n);
void qpo_cpu_relu_backward(float *dinp, const float *out, const float *dout, size_t n);
void qpo_cpu_dropout_forward(float *x, size_t n, qpo_dropout drop);
void qpo_cpu_dropout_backward(float *dx, size_t n, qpo_dropout drop);
void qpo_cpu_residual_forward(float *out, const float *a, const float *b, size_t n);
void qpo_cpu_accumulate(float *dst, const float *src, size_t n);
void qpo_cpu_pgdt_embed_forward(float *out, const int32_t *qids, const int32_t *pids,
                                const float *reward, const float *wte, const float *seg,
                                const float *ret_w, const float *ret_b, int B, int Q, int P, int C);
void qpo_cpu_pgdt_embed_backward(float *dwte, float *dseg, float *dret_w, float *dret_b,
                                 const float *dout, const int32_t *qids, const int32_t *pids,
                                 const float *reward, int B, int Q, int P, int C);
void qpo_cpu_position_forward(float *out, const float *inp, const float *wpe, int B, int T,
                              int pos0, int C);
void qpo_cpu_position_backward(float *dwpe, const float *dout, int B, int T, int pos0, int C);
void qpo_cpu_gather_rows(float *dst, const float *src, const int32_t *idx, int M, int C);
void qpo_cpu_gather_rows_backward(float *dsrc, const float *ddst, const int32_t *idx, int M, int C);
void qpo_cpu_crossentropy_fused(float *logits, float *losses, const int32_t *targets, int M, int V,
                                float dscale);
double qpo_cpu_sumsq(const float *x, size_t n);
void qpo_cpu_scale(float *x, size_t n, float s);
void qpo_cpu_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float gscale,
                          float lr, float beta1, float beta2, float eps, float wd, int t);

#endif
