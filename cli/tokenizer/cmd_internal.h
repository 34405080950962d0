#ifndef QPO_TOK_CMD_INTERNAL_H
#define QPO_TOK_CMD_INTERNAL_H

/* Shared by the tokenizer's commands (qpo_tokenizer_cli, which may use common/). */

#include <stdbool.h>

#include "error.h"
#include "tokenizer.h"

/* The byte tokenizer when bytes is set, else the BPE of bpe_dir, else of $QPO_BPE_DIR; a
 * usage error (exit 2) naming the file when none is given or the files are bad. */
qpo_tokenizer *qpo_tok_cli_open(const char *bpe_dir, bool bytes, qpo_err *err);

#endif
