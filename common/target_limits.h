#ifndef QPO_TARGET_LIMITS_H
#define QPO_TARGET_LIMITS_H

/* A target's response-size cap, one definition for the config validator (scheduler/) and the
 * LLM client (workers/llm/): a broken endpoint once streamed 770 MB in 5 s into memory. */

#define QPO_LLM_MAX_RESPONSE_BYTES (8L * 1024 * 1024) /* default of max_response_bytes */
#define QPO_LLM_MIN_RESPONSE_CAP 1024L                /* the range it may take */
#define QPO_LLM_MAX_RESPONSE_CAP (1024L * 1024 * 1024)

#endif
