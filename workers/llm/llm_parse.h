#ifndef QPO_LLM_PARSE_H
#define QPO_LLM_PARSE_H

/* Pure functions behind the client: response bodies to tokens and NLLs, HTTP statuses and
 * Retry-After to retry decisions. No I/O, so tests feed them documented bodies directly. */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "llm.h"

typedef struct qpo_llm_parsed {
    qpo_llm_status status;
    char error[256];
    size_t ntokens;
    char **tokens;
    double *logprobs;
    double mean_nll;
    char *text;
    int prompt_tokens; /* -1 when "usage" lacks it */
    int completion_tokens;
} qpo_llm_parsed;

void qpo_llm_parsed_free(qpo_llm_parsed *p);

/* Length of a UTF-8 string in code points: the unit of text_offset in vLLM and OpenAI. */
size_t qpo_llm_utf8_len(const char *s);

/* A /v1/completions body with echo + logprobs for prompt. Keeps the tokens whose text_offset
 * lies in [span_start, span_end) (code points); a null logprob is accepted only on the first
 * token (no context to condition on) and is left out of the mean. A leading BOS token that
 * vLLM counts into the offsets is recognised and taken back (prompt NULL: no such check).
 * Returns p->status. */
qpo_llm_status qpo_llm_parse_completion(const char *body, size_t len, const char *prompt,
                                        size_t span_start, size_t span_end, qpo_llm_parsed *p);

/* A /v1/chat/completions body with logprobs: choices[0].logprobs.content[]. */
qpo_llm_status qpo_llm_parse_chat(const char *body, size_t len, qpo_llm_parsed *p);

/* The class of a non-2xx HTTP status (2xx: QPO_LLM_OK). */
qpo_llm_status qpo_llm_classify_http(long status);

/* A Retry-After value (delay seconds or an HTTP-date) as milliseconds from now; -1 when
 * absent or unreadable. A date in the past is 0. */
long qpo_llm_parse_retry_after(const char *value, time_t now);

/* The delay before retry number `retry` (1-based): full jitter over base*2^(retry-1) capped at
 * max_ms, or the server's Retry-After (plus up to 10% jitter) when it asked for one, capped
 * at the larger of 10*max_ms and 60 s. rnd is uniform in [0, 1). */
long qpo_llm_backoff_ms(int retry, int base_ms, int max_ms, long retry_after_ms, double rnd);

#endif
