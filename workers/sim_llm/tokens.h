#ifndef QPO_SIM_TOKENS_H
#define QPO_SIM_TOKENS_H

/* The sim's tokenizer: a simple, documented scheme (docs/sim-llm.md, "Tokens"), not GPT-2 BPE.
 * A token is a newline or carriage return alone; or a run of spaces/tabs followed by one word
 * piece (letters, digits and non-ASCII characters, at most 12 bytes, never splitting a UTF-8
 * character) or by one ASCII punctuation character; or trailing spaces alone. So " Joy" is one
 * token and a leading space belongs to the word after it, as in GPT-2. */

#include <stddef.h>
#include <stdint.h>

typedef struct sim_token {
    uint32_t start;     /* byte offset in the text */
    uint32_t len;       /* bytes */
    uint32_t cp_offset; /* offset in Unicode code points: what OpenAI's text_offset reports */
} sim_token;

typedef struct sim_tokens {
    sim_token *v;
    size_t n, cap;
} sim_tokens;

/* Appends the tokens of text[0..n) to toks, offsets shifted by (byte_base, cp_base) so a
 * completion can continue the prompt's offsets. 0, or -1 when out of memory. */
int sim_tokenize(const char *text, size_t n, uint32_t byte_base, uint32_t cp_base,
                 sim_tokens *toks);
size_t sim_count_tokens(const char *text, size_t n);
size_t sim_codepoints(const char *text, size_t n);
void sim_tokens_free(sim_tokens *toks);

#endif
