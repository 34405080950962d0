/* The GPT-2 BPE tokenizer on arbitrary bytes: encoding never fails on valid memory, every id
 * is in the vocabulary, and decoding gives back the very bytes (byte-level BPE loses nothing).
 * The vocabulary comes from $QPO_BPE_DIR, else ../shared/data/gpt2_bpe; without either the
 * byte tokenizer is fuzzed instead (said once on stderr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tokenizer.h"

#ifndef QPO_SHARED_DIR
#define QPO_SHARED_DIR "../shared"
#endif

static qpo_tokenizer *load(void) {
    const char *env = getenv("QPO_BPE_DIR");
    char err[512] = "";
    qpo_tokenizer *tok = qpo_tokenizer_load_bpe(env && *env ? env : QPO_SHARED_DIR "/data/gpt2_bpe",
                                                err, sizeof err);
    if (!tok) {
        fprintf(stderr, "fuzz_tokenizer: no BPE files (%s): fuzzing the byte tokenizer\n", err);
        tok = qpo_tokenizer_new_bytes();
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static qpo_tokenizer *tok;
    if (!tok)
        tok = load();
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    if (qpo_tokenizer_encode(tok, (const char *)data, size, &ids, &n, &cap) != 0)
        abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= qpo_tokenizer_vocab_size(tok))
            abort();
    char err[256];
    size_t len = 0;
    char *back = qpo_tokenizer_decode(tok, ids, n, &len, err, sizeof err);
    if (!back || len != size || memcmp(back, data, size))
        abort();
    free(back);
    free(ids);
    return 0;
}
