#ifndef QPO_POLICY_BACKEND_H
#define QPO_POLICY_BACKEND_H

/* The backend interface: memory plus the ops the policy is built from. Each op is a
 * forward/backward pair with the same name in every backend (llm.c style); the CPU backend
 * (cpu/) is the reference the CUDA backend is tested against. All pointers are backend memory,
 * fp32 unless typed otherwise; shapes are row-major. Backward ops ACCUMULATE (+=) into every
 * gradient they write, so callers zero gradient buffers once per step. Every op is
 * deterministic: the same inputs give bitwise the same outputs, whatever the thread count
 * (reductions run in a fixed order), which is what makes resumed training bitwise exact. */

#include <stddef.h>
#include <stdint.h>

/* Where each dropout draws its keep/drop bits: a counter-based hash of (seed, site, index),
 * so masks are recomputed in backward instead of stored, and resume needs only the counter. */
typedef struct qpo_dropout {
    float p;       /* 0 = off (evaluation) */
    uint64_t seed; /* per step and per call site, already mixed: bit i = splitmix64(seed ^ i) */
} qpo_dropout;

/* What the matmuls compute in. Everything else (LayerNorm, softmax, losses, AdamW, master
 * weights and moments) is fp32 in every mode. */
typedef enum qpo_dtype {
    QPO_DTYPE_FP32 = 0, /* the reference: op by op comparable with the CPU backend */
    QPO_DTYPE_BF16 = 1, /* matmul operands rounded to bf16, fp32 accumulation and outputs */
} qpo_dtype;

typedef struct qpo_backend {
    const char *name;   /* "cpu", "cuda", "cuda-bf16" */
    const char *device; /* the device's own name ("NVIDIA H200"); NULL for the host CPU */
    qpo_dtype dtype;

    /* memory */
    void *(*alloc)(size_t bytes); /* zeroed; NULL on failure */
    void (*free)(void *p);
    void (*upload)(void *dst, const void *src, size_t bytes);
    void (*download)(void *dst, const void *src, size_t bytes);
    void (*zero)(void *dst, size_t bytes);

    /* out[N,OC] = inp[N,C] @ W + bias. w_in_out: W stored [C,OC] (GPT-2 Conv1D), else [OC,C]
     * (torch Linear). bias may be NULL. */
    void (*matmul_forward)(float *out, const float *inp, const float *w, const float *bias, int N,
                           int C, int OC, int w_in_out);
    /* matmul_forward for decoding: few rows, each row computed exactly the same whatever the
     * number of rows (so a query decodes to the same tokens in any batch), weights read once. */
    void (*matmul_rows_forward)(float *out, const float *inp, const float *w, const float *bias,
                                int N, int C, int OC, int w_in_out);
    void (*matmul_backward)(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC, int w_in_out);

    /* LayerNorm over the last dim (eps 1e-5); mean/rstd [N] are saved for backward. */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C);
    void (*layernorm_backward)(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C);

    /* Causal multi-head attention with a key padding mask. qkv [B,T,3C]; key_mask [B,T]
     * (0 = pad, never attended); probs [B,NH,T,T] saved (before dropout); out [B,T,C]. */
    void (*attention_forward)(float *out, float *probs, const float *qkv, const int32_t *key_mask,
                              int B, int T, int C, int NH, qpo_dropout drop);
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *probs,
                               const int32_t *key_mask, int B, int T, int C, int NH,
                               qpo_dropout drop);
    /* One decode step against a KV cache: the new token's qkv [B,3C]; caches [B,Tmax,C] hold
     * positions 0..len-1 (len includes the new token); key_mask [B,Tmax]. */
    void (*attention_decode)(float *out, const float *qkv, const float *kcache, const float *vcache,
                             const int32_t *key_mask, int B, int len, int Tmax, int C, int NH);
    /* Copies the keys and values of qkv [B,T,3C] into caches [B,Tmax,C] at positions
     * pos0..pos0+T-1. */
    void (*kv_store)(float *kcache, float *vcache, const float *qkv, int B, int T, int pos0,
                     int Tmax, int C);

    void (*gelu_forward)(float *out, const float *inp, size_t n); /* tanh approximation */
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*relu_forward)(float *out, const float *inp, size_t n);
    void (*relu_backward)(float *dinp, const float *out, const float *dout, size_t n);

    /* x *= keep / (1 - p), in place; backward applies the same mask to dout in place. */
    void (*dropout_forward)(float *x, size_t n, qpo_dropout drop);
    void (*dropout_backward)(float *dx, size_t n, qpo_dropout drop);

    /* out = a + b (out may alias a); backward is accumulation: dst += src. */
    void (*residual_forward)(float *out, const float *a, const float *b, size_t n);
    void (*accumulate)(float *dst, const float *src, size_t n);

    /* PGDT input tokens before embed_ln, [B, 1+Q+P, C]: embed_return(reward) + seg[0], then
     * wte(query) + seg[1], then wte(prompt) + seg[2]. ids [B,Q] and [B,P]. */
    void (*pgdt_embed_forward)(float *out, const int32_t *qids, const int32_t *pids,
                               const float *reward, const float *wte, const float *seg,
                               const float *ret_w, const float *ret_b, int B, int Q, int P, int C);
    void (*pgdt_embed_backward)(float *dwte, float *dseg, float *dret_w, float *dret_b,
                                const float *dout, const int32_t *qids, const int32_t *pids,
                                const float *reward, int B, int Q, int P, int C);
    /* out[b,t] = inp[b,t] + wpe[pos0 + t]; backward: dwpe[pos0+t] += sum_b dout[b,t]. */
    void (*position_forward)(float *out, const float *inp, const float *wpe, int B, int T, int pos0,
                             int C);
    void (*position_backward)(float *dwpe, const float *dout, int B, int T, int pos0, int C);

    /* Row gather/scatter: dst[i] = src[idx[i]]; backward dsrc[idx[i]] += ddst[i]. */
    void (*gather_rows)(float *dst, const float *src, const int32_t *idx, int M, int C);
    void (*gather_rows_backward)(float *dsrc, const float *ddst, const int32_t *idx, int M, int C);

    /* Cross-entropy over rows of logits [M,V] with targets [M]. Writes the per-row loss and
     * turns logits into dlogits = (softmax - onehot) * dscale, in place. */
    void (*crossentropy_fused)(float *logits, float *losses, const int32_t *targets, int M, int V,
                               float dscale);

    /* Sum of squares of x, reduced in fixed-size chunks in a fixed order. */
    double (*sumsq)(const float *x, size_t n);
    void (*scale)(float *x, size_t n, float s);
    /* torch.optim.AdamW, step t >= 1 (bias corrections from t), on gradients g * gscale (the
     * clipping coefficient, fused here to save a pass over the gradients). */
    void (*adamw_update)(float *p, const float *g, float *m, float *v, size_t n, float gscale,
                         float lr, float beta1, float beta2, float eps, float wd, int t);
} qpo_backend;

const qpo_backend *qpo_backend_cpu(void);

/* The CUDA backend (cuda/) on device 0, or NULL with the reason in errbuf: built without CUDA,
 * no device visible, or a CUDA/cuBLAS failure. One table per dtype, created once. Ops run on
 * one stream in order; download and sumsq wait for the results they return. */
const qpo_backend *qpo_backend_cuda(qpo_dtype dtype, char *errbuf, size_t errlen);

/* "cpu", "cuda" or "auto" (CUDA when a device is visible, else the CPU), with "cuda-bf16" for
 * mixed precision. NULL with a message when the name is unknown or CUDA is unavailable. */
const qpo_backend *qpo_backend_named(const char *name, char *errbuf, size_t errlen);

#endif
