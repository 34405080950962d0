/* A subset vocabulary over another tokenizer: text is encoded exactly as the base encodes it,
 * then each id is renumbered; ids outside the subset become one unknown id. A policy trained
 * from scratch can only learn to write tokens its data holds, so its output layer need not
 * span the other 50k GPT-2 ids (the prompt head dominated a tiny policy's compute). */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

void tok_subset_map(const qpo_tokenizer *tok, int32_t *ids, size_t from, size_t n) {
    int32_t unk = tok->vocab_size - 2;
    for (size_t i = from; i < n; i++)
        ids[i] = tok->to_sub[ids[i]] >= 0 ? tok->to_sub[ids[i]] : unk;
}

static qpo_tokenizer *fail(qpo_tokenizer *tok, qpo_tokenizer *base, char *errbuf, size_t errlen,
                           const char *what, size_t i, int32_t id) {
    tok_fail(errbuf, errlen, "subset vocabulary: id %d (entry %zu) %s", (int)id, i, what);
    qpo_tokenizer_free(tok);
    qpo_tokenizer_free(base);
    return NULL;
}

qpo_tokenizer *qpo_tokenizer_new_subset(qpo_tokenizer *base, const int32_t *ids, size_t n,
                                        char *errbuf, size_t errlen) {
    if (!base) {
        tok_fail(errbuf, errlen, "subset vocabulary: no base tokenizer");
        return NULL;
    }
    qpo_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok || n > (size_t)base->vocab_size)
        return fail(tok, base, errbuf, errlen, "list: too long or out of memory", n, 0);
    tok->vocab_size = (int32_t)n + 2;
    tok->eos = (int32_t)n + 1;
    tok->to_sub = malloc(sizeof(int32_t) * (size_t)base->vocab_size);
    tok->to_base = malloc(sizeof(int32_t) * (n + 2));
    if (!tok->to_sub || !tok->to_base)
        return fail(tok, base, errbuf, errlen, "list: out of memory", n, 0);
    memset(tok->to_sub, 0xff, sizeof(int32_t) * (size_t)base->vocab_size); /* all -1 */
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= base->vocab_size)
            return fail(tok, base, errbuf, errlen, "is outside the base vocabulary", i, ids[i]);
        if (ids[i] == base->eos)
            return fail(tok, base, errbuf, errlen, "is the base's eos (always added last)", i,
                        ids[i]);
        if (tok->to_sub[ids[i]] >= 0)
            return fail(tok, base, errbuf, errlen, "is listed twice", i, ids[i]);
        tok->to_sub[ids[i]] = (int32_t)i;
        tok->to_base[i] = ids[i];
    }
    tok->to_base[n] = -1; /* unk */
    tok->to_base[n + 1] = base->eos;
    tok->to_sub[base->eos] = tok->eos;
    tok->base = base;
    return tok;
}

const int32_t *qpo_tokenizer_subset_ids(const qpo_tokenizer *tok, size_t *n) {
    *n = tok->base ? (size_t)tok->vocab_size - 2 : 0;
    return tok->base ? tok->to_base : NULL;
}

void qpo_tokenizer_subset_map(const qpo_tokenizer *tok, int32_t *ids, size_t n) {
    if (tok->base)
        tok_subset_map(tok, ids, 0, n);
}
