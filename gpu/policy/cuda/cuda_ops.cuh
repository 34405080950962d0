#ifndef QPO_POLICY_CUDA_OPS_CUH
#define QPO_POLICY_CUDA_OPS_CUH

/* The CUDA backend's ops, one file per family as in cpu/; cuda_backend.cu puts them in the
 * qpo_backend table. Each mirrors the CPU op of the same name (the reference). */

#include "cuda_common.cuh"

void qpo_cuda_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                             int C, int OC, int w_in_out);
/* bf16 mode: operands rounded to bf16 in scratch, fp32 accumulation and fp32 results. */
void qpo_cuda_matmul_forward_bf16(float *out, const float *inp, const float *w, const float *bias,
                                  int N, int C, int OC, int w_in_out);
void qpo_cuda_matmul_backward_bf16(float *dinp, float *dw, float *dbias, const float *dout,
                                   const float *inp, const float *w, int N, int C, int OC,
                                   int w_in_out);
void qpo_cuda_matmul_rows_forward(float *out, const float *inp, const float *w, const float *bias,
                                  int N, int C, int OC, int w_in_out);
void qpo_cuda_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                              const float *inp, const float *w, int N, int C, int OC, int w_in_out);
void qpo_cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C);
void qpo_cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, const float *mean,
                                 const float *rstd, int N, int C);
void qpo_cuda_attention_forward(float *out, float *probs, const float *qkv, const int32_t *key_mask,
                                int B, int T, int C, int NH, qpo_dropout drop);
void qpo_cuda_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                 const float *probs, const int32_t *key_mask, int B, int T, int C,
                                 int NH, qpo_dropout drop);
void qpo_cuda_attention_decode(float *out, const float *qkv, const float *kcache,
                               const float *vcache, const int32_t *key_mask, int B, int len,
                               int Tmax, int C, int NH);
void qpo_cuda_kv_store(float *kcache, float *vcache, const float *qkv, int B, int T, int pos0,
                       int Tmax, int C);
void qpo_cuda_gelu_forward(float *out, const float *inp, size_t n);
void qpo_cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void qpo_cuda_relu_forward(float *out, const float *inp, size_t n);
void qpo_cuda_relu_backward(float *dinp, const float *out, const float *dout, size_t n);
void qpo_cuda_dropout_forward(float *x, size_t n, qpo_dropout drop);
void qpo_cuda_dropout_backward(float *dx, size_t n, qpo_dropout drop);
void qpo_cuda_residual_forward(float *out, const float *a, const float *b, size_t n);
void qpo_cuda_accumulate(float *dst, const float *src, size_t n);
void qpo_cuda_pgdt_embed_forward(float *out, const int32_t *qids, const int32_t *pids,
                                 const float *reward, const float *wte, const float *seg,
                                 const float *ret_w, const float *ret_b, int B, int Q, int P,
                                 int C);
void qpo_cuda_pgdt_embed_backward(float *dwte, float *dseg, float *dret_w, float *dret_b,
                                  const float *dout, const int32_t *qids, const int32_t *pids,
                                  const float *reward, int B, int Q, int P, int C);
void qpo_cuda_position_forward(float *out, const float *inp, const float *wpe, int B, int T,
                               int pos0, int C);
void qpo_cuda_position_backward(float *dwpe, const float *dout, int B, int T, int pos0, int C);
void qpo_cuda_gather_rows(float *dst, const float *src, const int32_t *idx, int M, int C);
void qpo_cuda_gather_rows_backward(float *dsrc, const float *ddst, const int32_t *idx, int M,
                                   int C);
void qpo_cuda_crossentropy_fused(float *logits, float *losses, const int32_t *targets, int M, int V,
                                 float dscale);
double qpo_cuda_sumsq(const float *x, size_t n);
void qpo_cuda_scale(float *x, size_t n, float s);
void qpo_cuda_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float gscale,
                           float lr, float beta1, float beta2, float eps, float wd, int t);

/* dst[c] += sum_n g[n,c] (times (x[n,c] - mean[n]) * rstd[n] when x is given), rows summed in
 * fixed chunks and the chunks in order: the bias and LayerNorm parameter gradients. */
void qpo_cuda_colsum(float *dst, const float *g, const float *x, const float *mean,
                     const float *rstd, int N, int C);

#endif
