/* Subcommand entry points and helpers shared by the command-line front end. */
#ifndef SGLC_CLI_CLI_H
#define SGLC_CLI_CLI_H

#include <stddef.h>

int sglc_cmd_serve(int argc, char **argv);
int sglc_cmd_generate(int argc, char **argv);
int sglc_cmd_quantize(int argc, char **argv);
int sglc_cmd_bench_offline_throughput(int argc, char **argv);
int sglc_cmd_bench_one_batch(int argc, char **argv);
int sglc_cmd_bench_serving(int argc, char **argv);

/* Path of the default model (SmolLM2-135M-Instruct Q4_1), looked up in $SGLC_MODEL_DIR, then
 * models/ next to the source tree the binary was built in, then ./models. Writes the first
 * candidate that exists (or the last tried) into buf; returns 0 if it exists. */
int sglc_default_model_path(char *buf, size_t cap);
/* given when non-NULL; else the default model's path in buf; else prints the one line that says
 * how to install it and returns NULL. */
const char *sglc_model_path_or_default(const char *given, char *buf, size_t cap);

#endif
