#ifndef QPO_FUZZ_H
#define QPO_FUZZ_H

/* The libFuzzer entry point every target in this folder defines. The same source links either
 * with libFuzzer (clang -fsanitize=fuzzer, `./qpo.sh fuzz`) or with fuzz_replay.c, which feeds
 * it the committed corpus and the crashers kept as regressions (the normal suite). */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data to PATH (created or truncated); aborts on failure: a fuzz target that cannot
 * write its input would silently test nothing. */
void fuzz_write_file(const char *path, const uint8_t *data, size_t size);
/* A private folder for the process's input files, made once (under /dev/shm when present). */
const char *fuzz_scratch_dir(void);

#endif
