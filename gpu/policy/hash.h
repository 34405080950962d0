#ifndef QPO_POLICY_HASH_H
#define QPO_POLICY_HASH_H

/* Counter-based randomness: every random number the policy draws (dropout bits, sampling,
 * data order) is a pure function of (seed, index), so results do not depend on thread count
 * and a resumed run needs only its counters to continue exactly. */

#include <stdint.h>

/* The CUDA backend includes this header so its dropout draws the very same bits. */
#ifdef __CUDACC__
#define QPO_HASH_FN static inline __host__ __device__
#else
#define QPO_HASH_FN static inline
#endif

QPO_HASH_FN uint64_t qpo_splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

QPO_HASH_FN uint64_t qpo_hash2(uint64_t seed, uint64_t index) {
    return qpo_splitmix64(qpo_splitmix64(seed) ^ index);
}

/* Uniform in [0, 1) with 24 bits: exactly representable as a float. */
QPO_HASH_FN float qpo_hash_unit(uint64_t seed, uint64_t index) {
    return (float)(qpo_hash2(seed, index) >> 40) * (1.0f / 16777216.0f);
}

/* Uniform in [0, 1) with 53 bits, for sampling. */
QPO_HASH_FN double qpo_hash_unit_f64(uint64_t seed, uint64_t index) {
    return (double)(qpo_hash2(seed, index) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
