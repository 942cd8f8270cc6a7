/* libFuzzer target for the grammar engine's regex front end and its matcher (see
 * fuzz_grammar_common.h): input = source [NUL text]. */
#include "fuzz_grammar_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fz_run(SGLC_GRAMMAR_REGEX, data, size);
}
