/* Subcommand entry points of the command-line front end, one file each, called by main.c. */
#ifndef SGLC_CLI_CLI_H
#define SGLC_CLI_CLI_H

int sglc_cmd_serve(int argc, char **argv);
int sglc_cmd_generate(int argc, char **argv);
int sglc_cmd_quantize(int argc, char **argv);
int sglc_cmd_bench_offline_throughput(int argc, char **argv);
int sglc_cmd_bench_one_batch(int argc, char **argv);
int sglc_cmd_bench_serving(int argc, char **argv);
int sglc_cmd_export_tokenizer(int argc, char **argv);

#endif
