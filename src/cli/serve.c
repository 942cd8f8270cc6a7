/* `sglc serve` (alias `launch_server`): SGLang's launch_server flags, parsed strictly, then the
 * HTTP server of src/server/ runs until SIGTERM/SIGINT. The parsed flags also travel to
 * /get_server_info as JSON, under SGLang's names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/log.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/server_args.h"
#include "server/server.h"
#include "sglc.h"

static void usage(FILE *f) {
    fprintf(f, "usage: sglc serve [options]   (alias: sglc launch_server)\n"
               "SGLang's launch_server flags; a flag that has no effect on this device is "
               "accepted and logged.\n");
    sglc_server_args_usage(f, SGLC_SARGS_CMD_SERVE);
}

int sglc_cmd_serve(int argc, char **argv) {
    sglc_server_args sa;
    sglc_log_set_level(SGLC_LOG_INFO);
    sglc_server_args_init(&sa, SGLC_SARGS_CMD_SERVE, "info");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "sglc serve: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        int r = sglc_server_args_parse(&sa, argc, argv, &i);
        if (r < 0) return 2;
        if (r == 0) {
            fprintf(stderr, "sglc serve: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    sglc_server_args_log_env();
    if (sglc_server_args_finish(&sa)) return 2;
    char default_path[4096];
    const char *model =
        sglc_model_path_or_default(sa.model_path, default_path, sizeof default_path);
    if (!model) return 1;
    sa.ep.model_path = model;
    sglc_server_params sp = sa.sp;
    const char *chat_template_file = sa.chat_template_file;

    char *chat_template = NULL;
    if (chat_template_file) {
        FILE *f = fopen(chat_template_file, "rb");
        long n = -1;
        if (f && fseek(f, 0, SEEK_END) == 0) n = ftell(f);
        if (n < 0 || n > (1 << 20)) {
            fprintf(stderr, "sglc: --chat-template %s: %s\n", chat_template_file,
                    f ? "not readable or larger than 1 MB" : "cannot open");
            if (f) fclose(f);
            return 2;
        }
        rewind(f);
        chat_template = calloc(1, (size_t)n + 1);
        if (!chat_template || fread(chat_template, 1, (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "sglc: --chat-template %s: read error\n", chat_template_file);
            free(chat_template);
            fclose(f);
            return 2;
        }
        fclose(f);
        sp.chat_template = chat_template;
    }
    sp.server_args = sglc_server_args_to_json(&sa);

    char err[1024] = {0};
    int rc = sglc_server_run(&sp, &sa.ep, err, sizeof err);
    free(chat_template);
    if (rc != 0) {
        fprintf(stderr, "sglc serve: %s\n", err);
        return 1;
    }
    return 0;
}
