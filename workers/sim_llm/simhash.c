#include "simhash.h"

#include <math.h>

#include "splitmix.h"

#define FNV_PRIME 0x100000001B3ULL
#define FNV_BASIS 0xCBF29CE484222325ULL

uint64_t sim_hash(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = FNV_BASIS ^ qpo_mix64(seed);
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return qpo_mix64(h);
}

uint64_t sim_mix(uint64_t a, uint64_t b) {
    return qpo_mix64(a ^ qpo_mix64(b + 0x632BE59BD9B4E019ULL));
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

uint64_t sim_hash_words(const char *s, size_t n, int max_words) {
    uint64_t h = FNV_BASIS;
    int words = 0;
    size_t i = 0;
    while (i < n && words < max_words) {
        while (i < n && is_space((unsigned char)s[i]))
            i++;
        if (i >= n)
            break;
        if (words > 0)
            h = (h ^ ' ') * FNV_PRIME;
        while (i < n && !is_space((unsigned char)s[i]))
            h = (h ^ (unsigned char)s[i++]) * FNV_PRIME;
        words++;
    }
    return qpo_mix64(h);
}

double sim_unit(uint64_t h) {
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

double sim_normal(uint64_t h) {
    double u1 = sim_unit(h), u2 = sim_unit(qpo_mix64(h ^ 0x5851F42D4C957F2DULL));
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
