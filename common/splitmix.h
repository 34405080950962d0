#ifndef QPO_SPLITMIX_H
#define QPO_SPLITMIX_H

/* splitmix64's finaliser: the one bit mixer of qpo's rooms outside gpu/ (demonstration-set
 * draws, the simulated LLM's hashes). gpu/policy/hash.h keeps its own copy because gpu/
 * depends on nothing of qpo's; the two must stay the same function. */

#include <stdint.h>

#define QPO_SPLITMIX_GAMMA 0x9E3779B97F4A7C15ULL

static inline uint64_t qpo_mix64(uint64_t x) {
    x += QPO_SPLITMIX_GAMMA;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* The splitmix64 generator: the next number of the sequence that *state seeds. */
static inline uint64_t qpo_mix64_next(uint64_t *state) {
    uint64_t x = qpo_mix64(*state);
    *state += QPO_SPLITMIX_GAMMA;
    return x;
}

#endif
