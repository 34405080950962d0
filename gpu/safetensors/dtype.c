/* Dtype names, sizes and the exact widening conversions to fp32. */
#include <string.h>

#include "safetensors.h"
#include "st_internal.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [QPO_ST_F32] = {"F32", 4}, [QPO_ST_F16] = {"F16", 2}, [QPO_ST_BF16] = {"BF16", 2},
    [QPO_ST_I32] = {"I32", 4}, [QPO_ST_I64] = {"I64", 8}, [QPO_ST_U8] = {"U8", 1},
};
#define N_DTYPES (sizeof(dtypes) / sizeof(dtypes[0]))

const char *qpo_st_dtype_name(qpo_st_dtype dtype) {
    return (unsigned)dtype < N_DTYPES ? dtypes[dtype].name : "?";
}

size_t qpo_st_dtype_size(qpo_st_dtype dtype) {
    return (unsigned)dtype < N_DTYPES ? dtypes[dtype].size : 0;
}

int st_dtype_parse(const char *name, qpo_st_dtype *out) {
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (strcmp(dtypes[i].name, name) == 0) {
            *out = (qpo_st_dtype)i;
            return 0;
        }
    }
    return -1;
}

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

float qpo_st_bf16_to_f32(uint16_t b) {
    return bits_to_f32((uint32_t)b << 16);
}

float qpo_st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) /* inf and nan keep their payload */
        return bits_to_f32(sign | 0x7f800000u | (mant << 13));
    if (exp != 0)
        return bits_to_f32(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0)
        return bits_to_f32(sign);
    /* Subnormal half: renormalise into fp32's wider exponent range. */
    int e = -1;
    do {
        mant <<= 1;
        e++;
    } while ((mant & 0x400u) == 0);
    return bits_to_f32(sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ffu) << 13));
}

size_t qpo_st_numel(const qpo_st_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}
