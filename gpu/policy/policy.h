#ifndef QPO_POLICY_H
#define QPO_POLICY_H

/* The QPO policy ("PGDT", recipe section 3): GPT-2 plus a reward token, segment embeddings,
 * embed_ln, a prompt head (mlp_head + ReLU + tied wte^T) and a return head. Forward, backward
 * and the loss run on a backend (backend.h); parameters use Hugging Face GPT-2 names and
 * storage order so checkpoints map 1:1 to memory. Errors go to a caller's buffer. */

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define QPO_PGDT_QLEN 40
#define QPO_PGDT_PLEN 40
#define QPO_PGDT_SEQ (1 + QPO_PGDT_QLEN + QPO_PGDT_PLEN)

/* How r_norm enters embed_return. The authors feed r_norm (0..100) itself: once w*r dominates
 * the bias, embed_ln removes its scale and every r* > ~10 gives the same reward token, so the
 * prompt barely depends on r*. qpo feeds r_norm / 100, so the token's direction varies with r.
 * Checkpoints without the key are the authors' (pgdt_torch.py and files before the change). */
typedef enum qpo_reward_embed {
    QPO_REWARD_EMBED_UNIT = 0, /* "unit": embed_return(r_norm / 100), qpo's default */
    QPO_REWARD_EMBED_RAW = 1,  /* "raw": embed_return(r_norm), the authors' model */
} qpo_reward_embed;

typedef struct qpo_policy_config {
    int n_layer, n_head, d, vocab, ctx; /* eos = vocab - 1 */
    qpo_reward_embed reward_embed;
} qpo_policy_config;

/* The value embed_return sees for a normalised reward. */
float qpo_policy_reward_input(const qpo_policy_config *cfg, float r_norm);

/* "tiny" (2 layers, 4 heads, d 64, vocab 512, ctx 128) or "gpt2" (124M). -1 if unknown. */
int qpo_policy_config_named(const char *name, qpo_policy_config *out);
/* Checks sizes are positive, d divisible by n_head, ctx >= 81. -1 with a message. */
int qpo_policy_config_check(const qpo_policy_config *cfg, char *errbuf, size_t errlen);
/* {"n_layer":..,"n_head":..,"d":..,"vocab":..,"ctx":..,"reward_embed":"unit"|"raw"};
 * malloc'd. Parsing takes a missing "reward_embed" as "raw" and refuses unknown values. */
char *qpo_policy_config_json(const qpo_policy_config *cfg);
int qpo_policy_config_parse(const char *json, qpo_policy_config *out, char *errbuf, size_t errlen);

typedef struct qpo_policy qpo_policy;

/* Parameters zeroed; use qpo_policy_init_random or a checkpoint load. */
qpo_policy *qpo_policy_new(const qpo_policy_config *cfg, const qpo_backend *be, char *errbuf,
                           size_t errlen);
void qpo_policy_free(qpo_policy *p);
const qpo_policy_config *qpo_policy_config_of(const qpo_policy *p);
const qpo_backend *qpo_policy_backend(const qpo_policy *p);

/* GPT-2's init for the backbone (N(0, 0.02), residual projections / sqrt(2 n_layer)) and
 * torch's default init for the PGDT heads, as the authors' model gets them; seeded. */
void qpo_policy_init_random(qpo_policy *p, uint64_t seed);
/* Re-initialises only the PGDT heads (after loading a Hugging Face backbone). */
void qpo_policy_init_heads(qpo_policy *p, uint64_t seed);

/* The named tensors, in a fixed order. Shapes as in the checkpoint. */
size_t qpo_policy_num_tensors(const qpo_policy *p);
size_t qpo_policy_num_params(const qpo_policy *p);
typedef struct qpo_policy_tensor {
    const char *name;
    int ndim;
    int64_t shape[2];
    size_t offset, numel; /* in floats, within the flat parameter (and gradient) buffer */
} qpo_policy_tensor;
const qpo_policy_tensor *qpo_policy_tensor_at(const qpo_policy *p, size_t i);
const qpo_policy_tensor *qpo_policy_tensor_find(const qpo_policy *p, const char *name);
/* Flat buffers in backend memory (host memory on the CPU backend). */
float *qpo_policy_params(qpo_policy *p);
float *qpo_policy_grads(qpo_policy *p);

/* A batch on the host: [B,40] ids and masks (1 = real), reward = r_norm [B]. */
typedef struct qpo_batch {
    int B;
    const int32_t *query_ids, *query_mask, *prompt_ids, *prompt_mask;
    const float *reward;
} qpo_batch;

int qpo_batch_check(const qpo_batch *b, int vocab, char *errbuf, size_t errlen);

typedef struct qpo_loss {
    float ce, mse, loss;
    float lambda; /* the MSE weight this step used */
} qpo_loss;

/* The authors' per-batch rule for the MSE weight (their model/pgdt.py): a batch whose return
 * MSE is below 10 weighs it 0.5 in that same step, any other batch lambda. The weight is a
 * constant of the step: no gradient flows through the choice. */
#define QPO_LAMBDA_SWITCH_MSE 10.0f
#define QPO_LAMBDA_SWITCHED 0.5f

typedef struct qpo_step_opts {
    float lambda;          /* weight of the MSE term (0.1) */
    int lambda_switch;     /* the authors' per-batch rule above */
    float dropout;         /* 0 = eval */
    uint64_t dropout_seed; /* per step */
} qpo_step_opts;

/* Forward and loss, keeping activations for a following qpo_policy_backward. */
int qpo_policy_forward(qpo_policy *p, const qpo_batch *b, const qpo_step_opts *o, qpo_loss *out,
                       char *errbuf, size_t errlen);
/* Gradients of the last forward's loss into qpo_policy_grads (overwritten, not summed). */
void qpo_policy_backward(qpo_policy *p);

/* Prompt logits for every prompt slot, dropout off: out [B,40,vocab] on the host. */
int qpo_policy_logits(qpo_policy *p, const qpo_batch *b, float *out, char *errbuf, size_t errlen);

/* Checkpoints (checkpoint.c). Policy files: safetensors, HF GPT-2 backbone names + PGDT heads,
 * __metadata__ {"config": JSON, "format": "qpo-pgdt"}, fp32. */
qpo_policy *qpo_policy_load(const char *path, const qpo_backend *be, char *errbuf, size_t errlen);
int qpo_policy_save(qpo_policy *p, const char *path, char *errbuf, size_t errlen);
/* A Hugging Face GPT-2 directory (model.safetensors + config.json) as a fresh policy: the
 * backbone from the file (fp32/fp16/bf16), the heads initialised with seed. */
qpo_policy *qpo_policy_from_hf(const char *dir, const qpo_backend *be, uint64_t seed, char *errbuf,
                               size_t errlen);
/* A policy over a subset of its tokenizer's vocabulary (tokenizer.h, qpo_tokenizer_new_subset)
 * carries the subset's base ids (n = vocab - 2) in its checkpoints' metadata ("vocab_ids", a
 * JSON array), so whoever loads it rebuilds the tokenizer it was trained with. */
int qpo_policy_set_vocab_ids(qpo_policy *p, const int32_t *ids, size_t n, char *errbuf,
                             size_t errlen);
/* NULL (and *n = 0) for a policy over its tokenizer's whole vocabulary. */
const int32_t *qpo_policy_vocab_ids(const qpo_policy *p, size_t *n);
/* Writes every gradient under the weights' names. */
int qpo_policy_save_grads(qpo_policy *p, const char *path, char *errbuf, size_t errlen);

#endif
