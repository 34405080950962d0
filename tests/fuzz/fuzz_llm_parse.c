/* The OpenAI response parser on arbitrary bodies: the first byte picks completions (label
 * scoring, with a span from the next two bytes) or chat (math). Every body gets a status; an
 * ok one has a finite NLL; any other has a message that is valid UTF-8 (it is stored in
 * qpo.llm_calls). Regression: a non-JSON body shorter than the message's 40-byte preview was
 * read past its end. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "llm_parse.h"

static const char PROMPT[] = "Tweet: so happy today\nEmotion: Joy";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3)
        return 0;
    qpo_llm_parsed p;
    memset(&p, 0, sizeof p);
    int chat = data[0] & 1;
    size_t start = data[1] % 40, end = start + data[2] % 40;
    const char *body = (const char *)data + 3;
    size_t len = size - 3;
    qpo_llm_status st =
        chat ? qpo_llm_parse_chat(body, len, &p)
             : qpo_llm_parse_completion(body, len, data[0] & 2 ? PROMPT : NULL, start, end, &p);
    if (st != p.status)
        abort();
    if (st == QPO_LLM_OK) {
        if (!isfinite(p.mean_nll) || (p.ntokens && (!p.tokens || !p.logprobs)))
            abort();
    } else {
        /* The message goes to qpo.llm_calls as text: it must exist and be valid UTF-8. */
        json_t *e = json_string(p.error);
        if (!p.error[0] || !e)
            abort();
        json_decref(e);
    }
    qpo_llm_parsed_free(&p);
    return 0;
}
