/* The HTTP server behind `sglc serve`: SGLang's native API and the OpenAI-compatible API on
 * libmicrohttpd, over the engine API of include/sglc.h only. */
#ifndef SGLC_SERVER_SERVER_H
#define SGLC_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sglc.h"

typedef struct {
    const char *host;              /* "127.0.0.1" */
    int port;                      /* 30000 */
    const char *api_key;           /* NULL: no authentication */
    const char *served_model_name; /* NULL: the model path */
    int32_t max_queued_requests;   /* <= 0: no cap */
    size_t max_body_bytes;         /* 8 MB */
    unsigned connection_timeout_s; /* idle/slow connections are closed after this (0: 120) */
    const char *chat_template;     /* Jinja source overriding the model's (--chat-template) */
    cJSON *server_args;            /* the command line as JSON for /get_server_info (owned) */
    int32_t stream_interval;       /* streamed responses send a chunk every N tokens (1) */
    int skip_tokenizer_init;       /* input_ids in, output_ids out; text prompts get 400 */
    int disable_grammar;           /* --grammar-backend none: structured output gets 400 */
    const char *reasoning_parser;  /* NULL, "qwen3" or "deepseek-r1" */
    const char *tool_call_parser;  /* NULL, "qwen25" (or "qwen") or "llama3" */
} sglc_server_params;

/* Listens, loads the engine (503 on /health meanwhile), serves until SIGTERM/SIGINT, then stops
 * accepting, lets running requests finish and returns 0. Returns < 0 with one line in err when
 * the socket or the model cannot be opened. Takes ownership of sp->server_args. */
int sglc_server_run(const sglc_server_params *sp, const sglc_engine_params *ep, char *err,
                    size_t errlen);

#endif
