#ifndef QPO_COMPLETION_H
#define QPO_COMPLETION_H

#include <stddef.h>
#include <stdio.h>

/* Writes the bash completion script for `qpo` to out. The command names come from the
 * caller (main.c's command table), so a new command completes without touching this file;
 * flags and subcommands are read at completion time from `qpo CMD --help`, the text each
 * command already keeps true, so they cannot drift either. */
void qpo_completion_bash(FILE *out, const char *const *commands, size_t ncommands);

#endif
