/* Text in, text out: query strings to generated prompt strings, for the generate jobs. */
#include <stdio.h>
#include <stdlib.h>

#include "generate.h"
#include "records.h"

static int decode_all(const qpo_tokenizer *tok, int n, const int32_t *ids, const int *len, int eos,
                      char **prompts, char *errbuf, size_t errlen) {
    for (int i = 0; i < n; i++) {
        int k = len[i];
        if (k > 0 && ids[i * QPO_PGDT_PLEN + k - 1] == eos)
            k--;
        size_t outlen;
        prompts[i] =
            qpo_tokenizer_decode(tok, ids + i * QPO_PGDT_PLEN, (size_t)k, &outlen, errbuf, errlen);
        if (!prompts[i]) {
            for (int j = 0; j < i; j++)
                free(prompts[j]), prompts[j] = NULL;
            return -1;
        }
    }
    return 0;
}

int qpo_generate_prompts(qpo_policy *p, const qpo_tokenizer *tok, const qpo_gen_opts *o, int n,
                         const char *const *queries, const uint64_t *seeds, char **prompts,
                         char *errbuf, size_t errlen) {
    int vocab = qpo_policy_config_of(p)->vocab;
    if (qpo_tokenizer_vocab_size(tok) != vocab) {
        snprintf(errbuf, errlen, "the tokenizer has %d tokens but the policy's vocabulary is %d",
                 qpo_tokenizer_vocab_size(tok), vocab);
        return -1;
    }
    size_t cells = (size_t)(n > 0 ? n : 1) * QPO_PGDT_QLEN;
    int32_t *qi = malloc(cells * 4), *qm = malloc(cells * 4), *out = malloc(cells * 4);
    int *len = malloc(sizeof(int) * (n > 0 ? n : 1));
    int rc = -1;
    if (!qi || !qm || !out || !len) {
        snprintf(errbuf, errlen, "out of memory for %d queries", n);
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (qpo_encode_query(tok, queries[i], qi + (size_t)i * QPO_PGDT_QLEN,
                             qm + (size_t)i * QPO_PGDT_QLEN)) {
            snprintf(errbuf, errlen, "out of memory tokenizing query %d", i);
            goto done;
        }
    if (!qpo_generate(p, o, n, qi, qm, seeds, out, len, errbuf, errlen))
        rc = decode_all(tok, n, out, len, vocab - 1, prompts, errbuf, errlen);
done:
    free(qi), free(qm), free(out), free(len);
    return rc;
}
