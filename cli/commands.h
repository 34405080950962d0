#ifndef QPO_COMMANDS_H
#define QPO_COMMANDS_H

/* Every `qpo` subcommand: int qpo_cmd_NAME(int argc, char **argv), argv[0] being the command's
 * own name. Each returns an exit code (0 ok, 1 runtime failure, 2 bad usage or config) and
 * handles its own --help. A component's commands are compiled in when its library target
 * exists (see cli/CMakeLists.txt), so parts of the tree can be built alone. */

/* common/ + workers/runtime (the queue) */
int qpo_cmd_jobs(int argc, char **argv);
int qpo_cmd_worker(int argc, char **argv);
int qpo_cmd_bench_queue(int argc, char **argv);

/* gpu/ (the policy) */
int qpo_cmd_tokenize(int argc, char **argv);
int qpo_cmd_policy(int argc, char **argv);
int qpo_cmd_bench_policy(int argc, char **argv);
int qpo_cmd_bench_tokenizer(int argc, char **argv);
/* cli/policy (the policy + the scheduler's D_0 reader) */
int qpo_cmd_offline_eval(int argc, char **argv);

/* workers/llm (target-LLM client) */
int qpo_cmd_target(int argc, char **argv);
int qpo_cmd_bench_llm(int argc, char **argv);

/* workers/sim_llm (the simulated target LLM) */
int qpo_cmd_sim_llm(int argc, char **argv);

/* scheduler/ */
int qpo_cmd_submit(int argc, char **argv);
int qpo_cmd_scheduler(int argc, char **argv);
int qpo_cmd_status(int argc, char **argv);
int qpo_cmd_resume(int argc, char **argv);
int qpo_cmd_cancel(int argc, char **argv);
int qpo_cmd_results(int argc, char **argv);
int qpo_cmd_data(int argc, char **argv);
/* cli/fetch (`qpo data fetch`, dispatched by qpo_cmd_data) */
int qpo_cmd_data_fetch(int argc, char **argv);

/* cli/report (over scheduler/'s tables and views) */
int qpo_cmd_report(int argc, char **argv);

/* cli/trainer (workers/trainer's runs and checkpoints) */
int qpo_cmd_prompt(int argc, char **argv);
int qpo_cmd_export(int argc, char **argv);

/* cli/demo (runs the other commands as child processes) */
int qpo_cmd_demo(int argc, char **argv);

/* cli/ itself */
int qpo_cmd_db(int argc, char **argv);

#endif
