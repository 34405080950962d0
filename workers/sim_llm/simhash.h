#ifndef QPO_SIM_HASH_H
#define QPO_SIM_HASH_H

/* The sim's only source of "randomness": every noise term is a pure function of the request's
 * text, so the same request always gets the same answer (docs/sim-llm.md, "Hashing").
 * FNV-1a 64 over bytes, finished with splitmix64 so nearby inputs give unrelated outputs. */

#include <stddef.h>
#include <stdint.h>

uint64_t sim_hash(const void *data, size_t n, uint64_t seed);
/* Combines two hashes (or a hash and a small integer) into a new one. */
uint64_t sim_mix(uint64_t a, uint64_t b);
/* Hash of text with whitespace runs collapsed to one space, trimmed, cut after max_words
 * words: so "a  b\nc" and "a b c" match, and a field cut to 100 words still matches the
 * stored item (both sides are cut shorter than that). */
uint64_t sim_hash_words(const char *s, size_t n, int max_words);
/* Uniform in [0, 1) and standard normal, from a hash. */
double sim_unit(uint64_t h);
double sim_normal(uint64_t h);

#endif
