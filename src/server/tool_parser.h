/* Tool-call parsers (SGLang's --tool-call-parser): find the function calls a model wrote in its
 * answer and return them as OpenAI `tool_calls`, and the text before them as `content`.
 *
 *   qwen25 (alias qwen): <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>, repeated;
 *   llama3:              {"name": "f", "parameters": {...}} (optionally after <|python_tag|>),
 *                        several separated by ';'.
 *
 * Like the reasoning split, a pure function of the whole answer so far: a streamed response
 * sends each call once it is complete, and the content up to where a call may begin. A call
 * whose JSON does not parse, or lacks a string "name" or an object of arguments, leaves the whole
 * answer as content (as SGLang does), so a client never gets a malformed call. Model output is
 * untrusted: bounded sizes, cJSON for the JSON. */
#ifndef SGLC_SERVER_TOOL_PARSER_H
#define SGLC_SERVER_TOOL_PARSER_H

#include <stddef.h>

#include <cjson/cJSON.h>

typedef enum {
    SGLC_TOOL_PARSER_NONE = 0,
    SGLC_TOOL_PARSER_QWEN25,
    SGLC_TOOL_PARSER_LLAMA3,
    SGLC_TOOL_PARSER_COUNT
} sglc_tool_parser_kind;

/* "qwen25" / "qwen", "llama3"; NONE for NULL or anything else. */
sglc_tool_parser_kind sglc_tool_parser_kind_from_name(const char *name);

#define SGLC_TOOL_MAX_CALLS 64

typedef struct {
    size_t content_len; /* text[0, content_len) is content (trailing whitespace excluded) */
    int n_calls;        /* complete calls found */
    cJSON *calls;       /* array of {"name": s, "arguments": "<JSON string>"} (owned), or NULL */
    int in_calls;       /* the call section has begun (content will not grow any more) */
} sglc_tool_parse_result;

/* Parses text[0, len). final: the answer is complete (an unfinished call makes the whole answer
 * content). Returns 0, or < 0 when out of memory. Free with sglc_tool_parse_result_free. */
int sglc_tool_parse(sglc_tool_parser_kind kind, const char *text, size_t len, int final,
                    sglc_tool_parse_result *out);
void sglc_tool_parse_result_free(sglc_tool_parse_result *r);

/* tool_choice "required" or a named function, as SGLang enforces them: the answer is
 * constrained to a JSON array of {"name": ..., "parameters": {...}} items by this JSON schema
 * (anyOf the tools, or only the named one, exactly one call then); the caller owns it. NULL when
 * out of memory. tools: the request's validated `tools` array. */
cJSON *sglc_tool_choice_schema(const cJSON *tools, const char *only);
/* Parses such a constrained answer into calls (content_len 0). Returns 0, or < 0 when it is not
 * such an array (e.g. cut short by max_tokens): then the answer stays content. */
int sglc_tool_parse_forced(const char *text, size_t len, sglc_tool_parse_result *out);

#endif
