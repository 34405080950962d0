#ifndef QPO_ST_INTERNAL_H
#define QPO_ST_INTERNAL_H

#include "safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this library assumes a little-endian host"
#endif

/* 0 and *out set when name is a supported dtype, else -1. */
int st_dtype_parse(const char *name, qpo_st_dtype *out);

#endif
