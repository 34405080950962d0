#ifndef QPO_TEST_POLICY_CUDA_UTIL_H
#define QPO_TEST_POLICY_CUDA_UTIL_H

/* Helpers for the CUDA tests: the backend or a clean skip, device copies of host arrays, and
 * comparisons that name what differs. */

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define SKIP_CODE 77

/* The CUDA backend of that dtype; without a device, prints why and exits 77 (ctest: skipped). */
const qpo_backend *cuda_or_skip(qpo_dtype dtype);

/* uniform in [-1, 1) from (seed, i) */
float *rand_host(size_t n, uint64_t seed);
void *to_dev(const qpo_backend *be, const void *host, size_t bytes);
float *from_dev(const qpo_backend *be, const float *dev, size_t n); /* malloc'd host copy */

/* Fails the test when max|got - want| / max|want| exceeds tol; got is device memory. */
void expect_close(const qpo_backend *be, const char *what, const float *got_dev, const float *want,
                  size_t n, double tol);

#endif
