#ifndef QPO_TEST_POLICY_FIXTURE_H
#define QPO_TEST_POLICY_FIXTURE_H

/* Helpers shared by the policy tests: the committed tiny fixtures (tests/reference/tiny) and
 * small synthetic batches. */

#include "policy.h"

typedef struct fixture_batch {
    int32_t *qi, *qm, *pi, *pm;
    float *r;
    qpo_batch b;
} fixture_batch;

/* The directory holding weights/batch/grads/logits .safetensors, ref.json and gen.json. */
const char *fixture_dir(void);
char *fixture_path(const char *name); /* malloc'd */

/* Loads batch.safetensors (the layout pgdt_torch.py ref writes); aborts the test on error. */
void fixture_batch_load(const char *path, fixture_batch *fb);
/* A random batch in the layout pgdt_torch.py's make_batch draws (lengths, eos padding). */
void fixture_batch_random(fixture_batch *fb, int B, int vocab, uint64_t seed);
void fixture_batch_free(fixture_batch *fb);

/* max |a - b| / max |b| */
double rel_max_diff(const float *a, const float *b, size_t n);

/* Writes a file of text content into a fresh temp dir; returns its path (malloc'd). */
char *temp_dir(void);

#endif
