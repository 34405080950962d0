#ifndef QPO_GPT2_WEIGHTS_H
#define QPO_GPT2_WEIGHTS_H

/* Where pretrained GPT-2 (124M) weights are found, in the one order every qpo process uses:
 *   1. an explicit folder (the experiment's policy.weights), when given;
 *   2. $QPO_GPT2_DIR;
 *   3. the Hugging Face cache: $HF_HOME, else ~/.cache/huggingface, then
 *      hub/models--gpt2/snapshots/<revision>/ (refs/main's revision first).
 * A folder counts when it holds config.json and model.safetensors (Hugging Face's layout).
 * The scheduler asks at submit time (a warning: the gpu workers may see other files), the
 * train job when it starts (an error). */

#include <stddef.h>

#include "error.h"

/* policy.init's value for these weights. */
#define QPO_INIT_PRETRAINED "pretrained"

#define QPO_GPT2_CONFIG "config.json"
#define QPO_GPT2_WEIGHTS "model.safetensors"

/* Writes the folder into out and returns 0; -1 with err (QPO_EXIT_USAGE) naming the three
 * places and what each lacked. explicit_dir may be NULL. */
int qpo_gpt2_weights_find(const char *explicit_dir, char *out, size_t len, qpo_err *err);

#endif
