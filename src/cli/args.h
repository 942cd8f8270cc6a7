/* Strict command-line value parsing shared by the subcommands: a value that is not entirely a
 * number in range is an error naming the flag, never a silent zero. Also where --model-path
 * points when it is not given (the default model) or names a Hugging Face hub id. */
#ifndef SGLC_CLI_ARGS_H
#define SGLC_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0 on success, or prints "sglc: <flag>: ..." to stderr and returns -1. */
int sglc_arg_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out);
int sglc_arg_u64(const char *flag, const char *s, uint64_t *out);
int sglc_arg_float(const char *flag, const char *s, double lo, double hi, double *out);
/* argv[*i] is a flag that needs a value: returns argv[*i+1] and advances, or NULL with an
 * error message when the value is missing. */
/* --log-level: debug|info|warning (or warn)|error sets the log level; anything else is an
 * error. */
int sglc_arg_log_level(const char *flag, const char *s);
/* --quantization: "mlx_q4" or "mlx_q8" (stored in *out), anything else is an error. */
int sglc_arg_quantization(const char *flag, const char *s, const char **out);
/* --device: cpu or cpu-ggml (llama.cpp-identical arithmetic) */
int sglc_arg_device(const char *flag, const char *s, const char **out);
const char *sglc_arg_value(int argc, char **argv, int *i);

/* Path of the default model (SmolLM2-135M-Instruct Q4_1), looked up in $SGLC_MODEL_DIR, then
 * models/ next to the source tree the binary was built in, then ./models. Writes the first
 * candidate that exists (or the last tried) into buf; returns 0 if it exists. */
int sglc_default_model_path(char *buf, size_t cap);
/* given when non-NULL; else the default model's path in buf; else prints the one line that says
 * how to install it and returns NULL. */
const char *sglc_model_path_or_default(const char *given, char *buf, size_t cap);

#endif
