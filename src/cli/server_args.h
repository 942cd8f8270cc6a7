/* SGLang's server arguments (python/sglang/srt/server_args.py), shared by `serve`,
 * `bench_one_batch` and `bench_offline_throughput`, which in SGLang all take the whole ServerArgs
 * set. One table holds every flag: its names, its group in --help (SGLang's section names), its
 * value and what it does in sglc. A flag that sglc knows but that does nothing on the chosen
 * device (CUDA graphs on the CPU, say) is accepted and logged once; a flag sglc does not know is
 * an error naming it; a value sglc cannot honour (--tp-size 16, more than one host's GPUs) is
 * refused with one line. */
#ifndef SGLC_CLI_SERVER_ARGS_H
#define SGLC_CLI_SERVER_ARGS_H

#include <stdint.h>
#include <stdio.h>

#include "server/server.h"
#include "sglc.h"

/* which subcommand parses: a flag that only the server uses is accepted by the benchmarks too
 * (SGLang's benchmarks take ServerArgs) and logged there as having no effect */
typedef enum {
    SGLC_SARGS_CMD_SERVE = 0,
    SGLC_SARGS_CMD_BENCH_ONE_BATCH,
    SGLC_SARGS_CMD_BENCH_OFFLINE,
    SGLC_SARGS_CMD_COUNT
} sglc_sargs_cmd;

#define SGLC_SARGS_MAX_GIVEN 64

typedef struct {
    sglc_sargs_cmd cmd;
    sglc_engine_params ep;
    sglc_server_params sp;
    const char *model_path; /* NULL: the default model */
    const char *log_level;  /* as given, or the command's default */
    const char *schedule_policy;
    const char *chat_template_file;
    const char *dtype, *kv_cache_dtype, *load_format, *tokenizer_mode;
    const char *attention_backend, *sampling_backend, *grammar_backend;
    const char *reasoning_parser, *tool_call_parser;
    int64_t threads;
    int chunk_given;
    int disable_cuda_graph, trust_remote_code, enable_metrics, skip_tokenizer_init;
    int log_requests, show_time_cost, enable_torch_compile, disable_custom_all_reduce;
    int64_t cuda_graph_max_bs, tp_size, dp_size, stream_interval, page_size;
    double watchdog_timeout;
    /* indices into the table of the flags given, in order, for the one-time "no effect" lines */
    int given[SGLC_SARGS_MAX_GIVEN];
    int n_given;
} sglc_server_args;

/* Defaults of SGLang where sglc has the knob; log_level is the command's default level. */
void sglc_server_args_init(sglc_server_args *sa, sglc_sargs_cmd cmd, const char *log_level);

/* argv[*i] is a flag. Returns 1 when it is a server argument (its value consumed, *i advanced),
 * 0 when it is not one (the caller tries its own flags, then reports it unknown), -1 after
 * printing one line on a bad value. */
int sglc_server_args_parse(sglc_server_args *sa, int argc, char **argv, int *i);

/* After parsing: the device-dependent defaults and the one-time log line for each flag that has
 * no effect here. Returns 0, or -1 after printing one line (a combination sglc refuses). */
int sglc_server_args_finish(sglc_server_args *sa);

/* --help text of the server arguments, grouped under SGLang's section names. */
void sglc_server_args_usage(FILE *f, sglc_sargs_cmd cmd);

/* The effective arguments under SGLang's names, for /get_server_info (caller owns it). */
cJSON *sglc_server_args_to_json(const sglc_server_args *sa);

/* The seed's environment (SGLANG_USE_MLX, SGLANG_MLX_USE_CUSTOM_ROPE): each variable that is set
 * gets one log line saying what sglc does with it. */
void sglc_server_args_log_env(void);

#endif
