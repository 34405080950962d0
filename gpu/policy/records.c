/* Batch assembly from text records: tokenization, truncation, padding, masks, r_norm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records.h"

#define EOT_TEXT "<|endoftext|>"

_Static_assert(QPO_PGDT_QLEN == QPO_PGDT_PLEN, "queries and prompts share encode_fixed's width");

/* Tokens of text[0..len) then optionally eos, cut to 40, padded with eos, mask on the real
 * ones. */
static int encode_fixed(const qpo_tokenizer *tok, const char *text, size_t len, int add_eos,
                        int32_t *ids, int32_t *mask) {
    int32_t *buf = NULL, eos = qpo_tokenizer_eos(tok);
    size_t n = 0, cap = 0;
    if (qpo_tokenizer_encode(tok, text, len, &buf, &n, &cap)) {
        free(buf);
        return -1;
    }
    size_t real = n + (add_eos ? 1 : 0);
    for (size_t i = 0; i < QPO_PGDT_QLEN; i++) {
        ids[i] = i < n ? buf[i] : eos;
        mask[i] = i < real;
    }
    free(buf);
    return 0;
}

int qpo_encode_query(const qpo_tokenizer *tok, const char *text, int32_t *ids, int32_t *mask) {
    return encode_fixed(tok, text, strlen(text), 0, ids, mask);
}

int qpo_encode_prompt(const qpo_tokenizer *tok, const char *text, int32_t *ids, int32_t *mask) {
    size_t len = strlen(text), k = strlen(EOT_TEXT);
    if (len >= k && !strcmp(text + len - k, EOT_TEXT))
        len -= k;
    return encode_fixed(tok, text, len, 1, ids, mask);
}

float qpo_reward_norm(double raw, double min_raw, double max_raw) {
    return (float)((raw - min_raw) / (max_raw - min_raw) * 100.0);
}

int qpo_records_from_text(const qpo_tokenizer *tok, int vocab, const qpo_text_record *recs,
                          size_t n, double min_raw, double max_raw, qpo_records *out, char *errbuf,
                          size_t errlen) {
    if (qpo_tokenizer_vocab_size(tok) != vocab) {
        snprintf(errbuf, errlen, "the tokenizer has %d tokens but the policy's vocabulary is %d",
                 qpo_tokenizer_vocab_size(tok), vocab);
        return -1;
    }
    if (!(max_raw > min_raw) || !isfinite(min_raw) || !isfinite(max_raw)) {
        snprintf(errbuf, errlen, "reward range [%g, %g] cannot normalise rewards", min_raw,
                 max_raw);
        return -1;
    }
    if (qpo_records_alloc(out, n)) {
        snprintf(errbuf, errlen, "out of memory for %zu records", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t q = i * QPO_PGDT_QLEN, p = i * QPO_PGDT_PLEN;
        if (!recs[i].query || !recs[i].prompt || !isfinite(recs[i].raw_reward) ||
            qpo_encode_query(tok, recs[i].query, out->query_ids + q, out->query_mask + q) ||
            qpo_encode_prompt(tok, recs[i].prompt, out->prompt_ids + p, out->prompt_mask + p)) {
            snprintf(errbuf, errlen,
                     "record %zu: missing text, non-finite reward or out of "
                     "memory",
                     i);
            qpo_records_free(out);
            return -1;
        }
        out->reward[i] = qpo_reward_norm(recs[i].raw_reward, min_raw, max_raw);
    }
    return 0;
}

static void mark_real(uint8_t *seen, const int32_t *ids, const int32_t *mask, size_t n,
                      int32_t vocab) {
    for (size_t i = 0; i < n; i++)
        if (mask[i] && ids[i] >= 0 && ids[i] < vocab)
            seen[ids[i]] = 1;
}

int qpo_records_token_ids(const qpo_records *r, int32_t vocab, int32_t eos, int32_t **ids,
                          size_t *n) {
    uint8_t *seen = calloc((size_t)vocab, 1);
    *ids = malloc(sizeof(int32_t) * (size_t)vocab);
    *n = 0;
    if (!seen || !*ids) {
        free(seen);
        free(*ids);
        *ids = NULL;
        return -1;
    }
    mark_real(seen, r->query_ids, r->query_mask, r->n * QPO_PGDT_QLEN, vocab);
    mark_real(seen, r->prompt_ids, r->prompt_mask, r->n * QPO_PGDT_PLEN, vocab);
    for (int32_t id = 0; id < vocab; id++)
        if (seen[id] && id != eos)
            (*ids)[(*n)++] = id;
    free(seen);
    return 0;
}
