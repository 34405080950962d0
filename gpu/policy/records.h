#ifndef QPO_POLICY_RECORDS_H
#define QPO_POLICY_RECORDS_H

/* From text records (query, prompt, raw reward) to the policy's fixed-width rows (recipe
 * section 3): the query's first 40 tokens right-padded with eos; the prompt text, then eos,
 * truncated or padded to 40 (the first eos counts as real); r_norm = (r - min) / (max - min)
 * * 100 with D_0's range. */

#include "tokenizer.h"
#include "train.h"

typedef struct qpo_text_record {
    const char *query, *prompt;
    double raw_reward;
} qpo_text_record;

/* ids/mask [40]. */
int qpo_encode_query(const qpo_tokenizer *tok, const char *text, int32_t *ids, int32_t *mask);
/* A prompt ending in the literal text "<|endoftext|>" (as D_0 files store them) has it
 * replaced by the eos id, so it is not tokenized as 7 ordinary tokens. */
int qpo_encode_prompt(const qpo_tokenizer *tok, const char *text, int32_t *ids, int32_t *mask);
float qpo_reward_norm(double raw, double min_raw, double max_raw);

/* The tokenizer's vocabulary must be the policy's (eos = vocab - 1 on both sides). */
int qpo_records_from_text(const qpo_tokenizer *tok, int vocab, const qpo_text_record *recs,
                          size_t n, double min_raw, double max_raw, qpo_records *out, char *errbuf,
                          size_t errlen);

/* The distinct token ids of r's real query and prompt tokens, eos left out, ascending:
 * *ids malloc'd. For a subset vocabulary (tokenizer.h) of the data a policy trains on. */
int qpo_records_token_ids(const qpo_records *r, int32_t vocab, int32_t eos, int32_t **ids,
                          size_t *n);

/* Prompts for n query texts (generate.h's rules; query i draws from seeds[i]): prompts[i]
 * is a malloc'd, NUL-terminated string without the final eos. */
struct qpo_gen_opts;
int qpo_generate_prompts(qpo_policy *p, const qpo_tokenizer *tok, const struct qpo_gen_opts *o,
                         int n, const char *const *queries, const uint64_t *seeds, char **prompts,
                         char *errbuf, size_t errlen);

/* Loads a batch file in the layout `pgdt_torch.py ref` writes (batch.safetensors). */
int qpo_batch_file_load(const char *path, qpo_records *out, char *errbuf, size_t errlen);
/* A view of B records starting at first. */
qpo_batch qpo_records_batch(const qpo_records *r, size_t first, int B);

#endif
