/* libFuzzer target: the parsers of model output (src/server/reasoning.c, tool_parser.c) on
 * arbitrary bytes, every prefix as a stream would see it and the whole as the final answer.
 * Checks the invariants the server relies on: ranges inside the text, the split of a prefix no
 * longer than the final one, calls well formed (a name and JSON arguments). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/reasoning.h"
#include "server/tool_parser.h"

#define REQUIRE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

static void check_calls(const sglc_tool_parse_result *r) {
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, r->calls) {
        const cJSON *name = cJSON_GetObjectItem(c, "name");
        const cJSON *args = cJSON_GetObjectItem(c, "arguments");
        REQUIRE(cJSON_IsString(name) && name->valuestring[0] && cJSON_IsString(args));
        cJSON *a = cJSON_Parse(args->valuestring);
        REQUIRE(cJSON_IsObject(a));
        cJSON_Delete(a);
        n++;
    }
    REQUIRE(n == r->n_calls && n <= SGLC_TOOL_MAX_CALLS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    const char *t = (const char *)data;
    for (int k = 0; k < SGLC_REASONING_COUNT; k++) {
        sglc_reasoning_split f;
        sglc_reasoning_split_text((sglc_reasoning_kind)k, t, size, 1, &f);
        REQUIRE(f.reasoning_off + f.reasoning_len <= size && f.content_off + f.content_len <= size);
        for (size_t p = 0; p <= size; p += 1 + size / 64) {
            sglc_reasoning_split s;
            sglc_reasoning_split_text((sglc_reasoning_kind)k, t, p, 0, &s);
            REQUIRE(s.reasoning_off + s.reasoning_len <= p && s.content_off + s.content_len <= p);
        }
    }
    for (int k = 0; k < SGLC_TOOL_PARSER_COUNT; k++) {
        sglc_tool_parse_result r;
        REQUIRE(sglc_tool_parse((sglc_tool_parser_kind)k, t, size, 1, &r) == 0);
        REQUIRE(r.content_len <= size);
        check_calls(&r);
        sglc_tool_parse_result_free(&r);
        for (size_t p = 0; p <= size; p += 1 + size / 16) {
            REQUIRE(sglc_tool_parse((sglc_tool_parser_kind)k, t, p, 0, &r) == 0);
            REQUIRE(r.content_len <= p);
            check_calls(&r);
            sglc_tool_parse_result_free(&r);
        }
    }
    sglc_tool_parse_result r;
    if (sglc_tool_parse_forced(t, size, &r) == 0) {
        check_calls(&r);
        sglc_tool_parse_result_free(&r);
    }
    return 0;
}
