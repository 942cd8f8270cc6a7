/* sglc command-line entry: dispatches to one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sglc.h"

static void usage(FILE *f) {
    fprintf(f,
            "sglc %s: an LLM serving engine in C\n"
            "usage: sglc <command> [options]\n"
            "commands:\n"
            "  serve      the HTTP server, SGLang and OpenAI APIs (alias launch_server; --help)\n"
            "  generate   generate text from a prompt (sglc generate --help)\n"
            "  quantize   write an MLX-quantized copy of a Hugging Face folder (--help)\n"
            "  bench_one_batch  static-batch prefill/decode latency, no scheduler (--help)\n"
            "  bench_offline_throughput  offline throughput through the engine (--help)\n"
            "  bench_serving  online serving benchmark against a running server (--help)\n"
            "  export-tokenizer  the model's tokenizer as a Hugging Face folder (--help)\n"
            "  version    print the version\n",
            SGLC_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "launch_server") == 0)
        return sglc_cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "generate") == 0) return sglc_cmd_generate(argc - 1, argv + 1);
    if (strcmp(cmd, "quantize") == 0) return sglc_cmd_quantize(argc - 1, argv + 1);
    if (strcmp(cmd, "bench_offline_throughput") == 0)
        return sglc_cmd_bench_offline_throughput(argc - 1, argv + 1);
    if (strcmp(cmd, "bench_one_batch") == 0) return sglc_cmd_bench_one_batch(argc - 1, argv + 1);
    if (strcmp(cmd, "bench_serving") == 0) return sglc_cmd_bench_serving(argc - 1, argv + 1);
    if (strcmp(cmd, "export-tokenizer") == 0 || strcmp(cmd, "export_tokenizer") == 0)
        return sglc_cmd_export_tokenizer(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("sglc %s\n", SGLC_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "sglc: unknown command '%s' (try: sglc --help)\n", cmd);
    return 2;
}
