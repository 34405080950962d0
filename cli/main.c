/* qpo: one binary, git-style subcommands. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "completion.h"
#include "error.h"
#include "handlers.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static int cmd_help(int argc, char **argv);
static int cmd_bench(int argc, char **argv);
static int cmd_completion(int argc, char **argv);

/* Baked in at build time by cmake/version.cmake. */
extern const char qpo_version[];

static const command commands[] = {
    {"help", cmd_help, "list commands, or show one command's help"},
    {"db", qpo_cmd_db, "apply migrations (db migrate) or show the schema version (db status)"},
#ifdef QPO_HAVE_QUEUE
    {"jobs", qpo_cmd_jobs, "enqueue, list, show, retry or cancel jobs"},
    {"worker", qpo_cmd_worker, "run a worker that claims and runs jobs"},
#endif
#ifdef QPO_HAVE_TOKENIZER
    {"tokenize", qpo_cmd_tokenize, "GPT-2 BPE: text lines to token ids, or back (--decode)"},
#endif
#ifdef QPO_HAVE_POLICY
    {"policy", qpo_cmd_policy, "create, evaluate or sample from a policy checkpoint"},
#endif
#ifdef QPO_HAVE_OFFLINE_EVAL
    {"offline-eval", qpo_cmd_offline_eval,
     "train on part of a released D_0, judge held-out prompts"},
#endif
#ifdef QPO_HAVE_LLM
    {"target", qpo_cmd_target, "check, score or chat with a target LLM endpoint"},
#endif
#ifdef QPO_HAVE_SIMLLM
    {"sim-llm", qpo_cmd_sim_llm, "serve the simulated OpenAI-compatible target LLM"},
#endif
#ifdef QPO_HAVE_SCHEDULER
    {"submit", qpo_cmd_submit, "submit an experiment config; prints its id"},
    {"scheduler", qpo_cmd_scheduler, "plan submitted experiments into jobs"},
    {"status", qpo_cmd_status, "progress of experiments, runs and stages"},
    {"resume", qpo_cmd_resume, "give failed and dead jobs of an experiment fresh attempts"},
    {"cancel", qpo_cmd_cancel, "cancel an experiment and all its jobs"},
    {"results", qpo_cmd_results, "test accuracy per task, setting, target and loop"},
    {"data", qpo_cmd_data, "fetch and import task data sets and released D_0 files"},
#endif
#ifdef QPO_HAVE_REPORT
    {"report", qpo_cmd_report, "an experiment's plots as a self-contained HTML page"},
#endif
#ifdef QPO_HAVE_TRAINER_CLI
    {"prompt", qpo_cmd_prompt, "the prompt a trained policy writes for a new query"},
    {"export", qpo_cmd_export, "a loop's policies, tokenizer, config and prompts to a folder"},
#endif
#ifdef QPO_HAVE_DEMO
    {"demo", qpo_cmd_demo, "run an experiment end to end on a throwaway cluster and simulator"},
#endif
    {"bench", cmd_bench, "benchmarks: queue, policy, llm, tokenizer"},
    {"completion", cmd_completion,
     "print the bash completion script: source <(qpo completion bash)"},
};
static const size_t ncommands = sizeof(commands) / sizeof(commands[0]);

typedef struct bench_command {
    const char *name;
    int (*run)(int argc, char **argv);
} bench_command;

static const bench_command benches[] = {
#ifdef QPO_HAVE_QUEUE
    {"queue", qpo_cmd_bench_queue},
#endif
#ifdef QPO_HAVE_POLICY
    {"policy", qpo_cmd_bench_policy},
#endif
#ifdef QPO_HAVE_TOKENIZER
    {"tokenizer", qpo_cmd_bench_tokenizer},
#endif
#ifdef QPO_HAVE_LLM
    {"llm", qpo_cmd_bench_llm},
#endif
    {NULL, NULL},
};

static void usage(FILE *out) {
    fprintf(out, "usage: qpo <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < ncommands; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n'qpo <command> --help' shows a command's options; 'qpo --version' the version.\n"
            "Database: --db CONNINFO, else $DATABASE_URL, else libpq's PG* variables.\n");
}

static const command *find(const char *name) {
    for (size_t i = 0; i < ncommands; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv) {
    if (argc < 2) {
        usage(stdout);
        return 0;
    }
    const command *c = find(argv[1]);
    if (!c || c->run == cmd_help) {
        fprintf(stderr, "qpo: error: unknown command '%s'\n", argv[1]);
        return QPO_EXIT_USAGE;
    }
    char *help_argv[] = {argv[1], "--help", NULL};
    return c->run(2, help_argv);
}

static int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf(out, "usage: qpo bench <name> [options]\n\nbenchmarks:");
        for (const bench_command *b = benches; b->name; b++)
            fprintf(out, " %s", b->name);
        fprintf(out, "\n");
        return argc < 2 ? QPO_EXIT_USAGE : 0;
    }
    for (const bench_command *b = benches; b->name; b++)
        if (!strcmp(b->name, argv[1]))
            return b->run(argc - 1, argv + 1);
    fprintf(stderr, "qpo: error: unknown benchmark '%s'\n", argv[1]);
    return QPO_EXIT_USAGE;
}

/* The command names come from the table above, so the script never lists a command that
 * is not compiled in, nor misses a new one. */
static int cmd_completion(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "bash")) {
        bool help = argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fprintf(help ? stdout : stderr,
                "usage: qpo completion bash\n\n"
                "Prints the bash completion script for qpo: commands, their subcommands and\n"
                "flags (read from each command's --help). Load it with\n"
                "  source <(qpo completion bash)\n"
                "or install it as /etc/bash_completion.d/qpo.\n");
        return help ? 0 : QPO_EXIT_USAGE;
    }
    const char *names[sizeof(commands) / sizeof(commands[0])];
    for (size_t i = 0; i < ncommands; i++)
        names[i] = commands[i].name;
    qpo_completion_bash(stdout, names, ncommands);
    return 0;
}

int main(int argc, char **argv) {
    qpo_register_all_handlers();
    if (argc < 2) {
        usage(stderr);
        return QPO_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return cmd_help(1, argv + 1);
    if (!strcmp(argv[1], "--version")) {
        printf("qpo %s\n", qpo_version);
        return 0;
    }
    const command *c = find(argv[1]);
    if (!c) {
        fprintf(stderr, "qpo: error: unknown command '%s'\n", argv[1]);
        fprintf(stderr, "  hint: 'qpo help' lists the commands\n");
        return QPO_EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
