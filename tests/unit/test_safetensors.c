/* safetensors reader tests: a crafted valid file (every dtype, a 0-d scalar, an empty tensor, 8
 * dims, metadata with escapes and UTF-8, data laid out in a different order than the header)
 * whose every value must round-trip; a sharded folder with an index; one crafted broken file per
 * rule of ROBUSTNESS.md §24 and per index rule, each rejected with a one-line message naming the
 * offending file; a truncation sweep; a fixture written by the official `safetensors` library
 * (scripts/golden/make_safetensors_fixture.py) checked against the manifest written with it. The
 * crafted files come from a small writer here that follows the layout in REFERENCE.md,
 * independently of the reader. */
#include "formats/safetensors.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

static char g_dir[64];

/* ---- writer ------------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void puts_(buf *b, const char *s) {
    put(b, s, strlen(s));
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n)) abort();
    fclose(f);
}

/* u64 header length (as given, which may lie), header bytes, then data_len bytes of data (zeros
 * when data is NULL). */
static void write_st_len(const char *path, uint64_t header_len, const char *header,
                         size_t header_bytes, const void *data, size_t data_len) {
    buf b = {0};
    put(&b, &header_len, 8);
    put(&b, header, header_bytes);
    for (size_t i = 0; i < data_len; i++) {
        uint8_t v = data ? ((const uint8_t *)data)[i] : 0;
        put(&b, &v, 1);
    }
    write_file(path, b.p, b.len);
    free(b.p);
}

static void write_st(const char *path, const char *header, const void *data, size_t data_len) {
    write_st_len(path, strlen(header), header, strlen(header), data, data_len);
}

static void path_in(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", g_dir, name);
}

/* Opens path expecting failure with code; the one-line message must name the file `names` (and
 * contain expect when given). Prints it. */
static void expect_fail(const char *path, const char *names, int code, const char *expect,
                        const char *label) {
    const char *lb = label ? label : "truncated";
    sglc_safetensors *st = (sglc_safetensors *)&g_dir; /* must be reset to NULL by open */
    sglc_err err = {{0}};
    int rc = sglc_safetensors_open(&st, path, &err);
    CHECKF(rc == code, "%s: %s: rc %d, want %d (%s)", lb, path, rc, code, err.msg);
    CHECK(st == NULL);
    CHECKF(err.msg[0] != 0, "%s: empty message", lb);
    CHECKF(strstr(err.msg, names) != NULL, "%s: message does not name %s: %s", lb, names, err.msg);
    CHECKF(strchr(err.msg, '\n') == NULL, "%s: message is not one line: %s", lb, err.msg);
    if (expect)
        CHECKF(strstr(err.msg, expect) != NULL, "%s: want '%s' in: %s", lb, expect, err.msg);
    if (rc == 0) sglc_safetensors_close(st);
    if (label) fprintf(stderr, "  %-26s -> %s\n", label, err.msg);
}

/* ---- crafted valid file ------------------------------------------------------------------- */

typedef struct {
    const char *json_name; /* as written in the header */
    const char *name;      /* what the reader must return */
    const char *dtype;
    sglc_st_dtype want;
    size_t elem_size; /* from the safetensors spec, not from the reader */
    int n_dims;
    int64_t shape[SGLC_ST_MAX_DIMS];
} spec;

static const spec k_valid[] = {
    {"layer.0.weight", "layer.0.weight", "F32", SGLC_ST_F32, 4, 2, {3, 4}},
    {"emb", "emb", "BF16", SGLC_ST_BF16, 2, 2, {5, 2}},
    {"half", "half", "F16", SGLC_ST_F16, 2, 1, {7}},
    {"ids", "ids", "I64", SGLC_ST_I64, 8, 1, {3}},
    {"scalar", "scalar", "F64", SGLC_ST_F64, 8, 0, {0}},
    {"mask", "mask", "BOOL", SGLC_ST_BOOL, 1, 1, {4}},
    {"u8", "u8", "U8", SGLC_ST_U8, 1, 1, {3}},
    {"i8", "i8", "I8", SGLC_ST_I8, 1, 1, {5}},
    {"u16", "u16", "U16", SGLC_ST_U16, 2, 2, {2, 1}},
    {"i16", "i16", "I16", SGLC_ST_I16, 2, 3, {1, 1, 3}},
    {"u32", "u32", "U32", SGLC_ST_U32, 4, 1, {2}},
    {"i32", "i32", "I32", SGLC_ST_I32, 4, 1, {2}},
    {"u64", "u64", "U64", SGLC_ST_U64, 8, 1, {1}},
    {"eight.dims", "eight.dims", "U8", SGLC_ST_U8, 1, 8, {1, 2, 1, 2, 1, 2, 1, 1}},
    {"zero", "zero", "F32", SGLC_ST_F32, 4, 2, {0, 3}},
    {"w\\\"q\\u00e9\\/x", "w\"q\xc3\xa9/x", "F32", SGLC_ST_F32, 4, 1, {1}},
};
#define N_VALID ((int)(sizeof k_valid / sizeof k_valid[0]))

static const char k_meta_json[] =
    "{\"format\":\"pt\",\"note\":\"line1\\nline2 \\u00e9 \xe2\x9c\x93\"}";
static const char k_meta_note[] = "line1\nline2 \xc3\xa9 \xe2\x9c\x93";

static uint8_t data_byte(int t, size_t j) {
    return (uint8_t)(t * 31 + (int)j * 7 + 1);
}

static size_t spec_nbytes(const spec *s) {
    size_t n = s->elem_size;
    for (int d = 0; d < s->n_dims; d++)
        n *= (size_t)s->shape[d];
    return n;
}

/* Header in k_valid order, data laid out in reverse order so the reader must sort by offset.
 * pad: pad the header with spaces to a multiple of 8, as the official writer does. */
static void build_valid(buf *header, buf *data, int pad) {
    size_t off[N_VALID];
    size_t pos = 0;
    for (int t = N_VALID - 1; t >= 0; t--) {
        off[t] = pos;
        for (size_t j = 0; j < spec_nbytes(&k_valid[t]); j++) {
            uint8_t v = data_byte(t, j);
            put(data, &v, 1);
        }
        pos += spec_nbytes(&k_valid[t]);
    }
    char tmp[512];
    puts_(header, "{\"__metadata__\":");
    puts_(header, k_meta_json);
    for (int t = 0; t < N_VALID; t++) {
        const spec *s = &k_valid[t];
        snprintf(tmp, sizeof tmp, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", s->json_name, s->dtype);
        puts_(header, tmp);
        for (int d = 0; d < s->n_dims; d++) {
            snprintf(tmp, sizeof tmp, "%s%lld", d ? "," : "", (long long)s->shape[d]);
            puts_(header, tmp);
        }
        snprintf(tmp, sizeof tmp, "],%s\"data_offsets\":[%zu,%zu]}",
                 t == 2 ? "\"extra_field\":[1,{\"x\":null}]," : "", off[t],
                 off[t] + spec_nbytes(s));
        puts_(header, tmp);
    }
    puts_(header, "}");
    while (pad && header->len % 8)
        puts_(header, " ");
}

static void check_valid(const char *path) {
    sglc_safetensors *st = NULL;
    sglc_err err = {{0}};
    int rc = sglc_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "open %s: %s", path, err.msg);
    if (rc) return;
    CHECK(sglc_safetensors_n_files(st) == 1);
    CHECK(strcmp(sglc_safetensors_file_path(st, 0), path) == 0);
    CHECK(sglc_safetensors_file_path(st, 1) == NULL);
    CHECK(sglc_safetensors_n_tensors(st) == N_VALID);
    CHECK(sglc_safetensors_tensor_at(st, -1) == NULL);
    CHECK(sglc_safetensors_tensor_at(st, N_VALID) == NULL);
    CHECK(sglc_safetensors_find(st, "absent") == NULL);
    CHECK(sglc_safetensors_find(st, "__metadata__") == NULL);
    for (int i = 0; i < N_VALID; i++) {
        const spec *s = &k_valid[i];
        const sglc_st_tensor *t = sglc_safetensors_find(st, s->name);
        CHECKF(t != NULL, "tensor %s not found", s->name);
        if (!t) continue;
        CHECK(t == sglc_safetensors_tensor_at(st, i)); /* header order */
        CHECK(strcmp(t->name, s->name) == 0);
        CHECK(t->dtype == s->want);
        CHECK(strcmp(sglc_st_dtype_name(t->dtype), s->dtype) == 0);
        CHECK(sglc_st_dtype_size(t->dtype) == s->elem_size);
        CHECK(t->n_dims == s->n_dims);
        for (int d = 0; d < s->n_dims; d++)
            CHECK(t->shape[d] == s->shape[d]);
        CHECK(t->nbytes == spec_nbytes(s));
        CHECK(t->file_index == 0);
        int ok = 1;
        for (size_t j = 0; j < t->nbytes; j++)
            ok &= ((const uint8_t *)t->data)[j] == data_byte(i, j);
        CHECKF(ok, "data of tensor %s does not round-trip", s->name);
    }
    const char *v = sglc_safetensors_metadata(st, "format");
    CHECK(v && strcmp(v, "pt") == 0);
    v = sglc_safetensors_metadata(st, "note");
    CHECK(v && strcmp(v, k_meta_note) == 0);
    CHECK(sglc_safetensors_metadata(st, "absent") == NULL);
    sglc_safetensors_close(st);
}

static void test_valid_edge_cases(void) {
    char path[256];
    path_in(path, sizeof path, "edge.safetensors");
    /* no tensors at all, with and without metadata; header padded with every JSON whitespace */
    const char *const headers[] = {"{}", "{\"__metadata__\":{}}   ",
                                   " {\"__metadata__\":{}}\t\r\n"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        write_st(path, headers[i], NULL, 0);
        sglc_safetensors *st = NULL;
        sglc_err err = {{0}};
        CHECKF(sglc_safetensors_open(&st, path, &err) == 0, "%s", err.msg);
        if (st) CHECK(sglc_safetensors_n_tensors(st) == 0);
        sglc_safetensors_close(st);
    }
    /* zero-size tensors sharing an offset with a real one; the largest exact integers */
    write_st(path,
             "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
             "\"c\":{\"dtype\":\"U8\",\"shape\":[9007199254740991,0],\"data_offsets\":[8,8]},"
             "\"d\":{\"dtype\":\"I64\",\"shape\":[1,0,1],\"data_offsets\":[8,8]}}",
             NULL, 8);
    sglc_safetensors *st = NULL;
    sglc_err err = {{0}};
    CHECKF(sglc_safetensors_open(&st, path, &err) == 0, "%s", err.msg);
    if (st) {
        CHECK(sglc_safetensors_n_tensors(st) == 4);
        const sglc_st_tensor *c = sglc_safetensors_find(st, "c");
        CHECK(c && c->nbytes == 0 && c->shape[0] == 9007199254740991LL && c->shape[1] == 0);
    }
    sglc_safetensors_close(st);
    unlink(path);
}

/* ---- broken files ------------------------------------------------------------------------- */

#define T(n, dt, sh, b, e)                                                                         \
    "\"" n "\":{\"dtype\":\"" dt "\",\"shape\":" sh ",\"data_offsets\":[" #b "," #e "]}"

typedef struct {
    const char *label;
    const char *header;
    size_t data_len;
    const char *expect;
} broken;

static const broken k_broken[] = {
    {"not_json", "{\"a\":", 0, "not valid JSON"},
    {"empty_header", "", 0, "not valid JSON"},
    {"array_header", "[" T("a", "F32", "[1]", 0, 4) "]", 4, "not valid JSON"},
    {"top_level_array", "[1,2]", 0, "not a JSON object"},
    {"top_level_string", "\"x\"", 0, "not a JSON object"},
    {"trailing_garbage", "{} x", 0, "trailing bytes"},
    {"two_objects", "{}{}", 0, "trailing bytes"},
    {"invalid_utf8", "{\"a\xff\":1}", 0, "invalid UTF-8"},
    {"overlong_utf8", "{\"a\xc0\xaf\":1}", 0, "invalid UTF-8"},
    {"surrogate_utf8", "{\"a\xed\xa0\x80\":1}", 0, "invalid UTF-8"},
    {"past_10ffff_utf8", "{\"a\xf4\x90\x80\x80\":1}", 0, "invalid UTF-8"},
    {"cut_utf8", "{\"a\xe2\x9c", 0, "invalid UTF-8"},
    {"raw_newline_in_name", "{\"a\nb\":1}", 0, "control character"},
    {"escaped_nul", "{\"a\\u0000b\":1}", 0, "\\u0000"},
    {"lone_surrogate_escape", "{\"a\\ud800\":1}", 0, "not valid JSON"},
    {"dup_name", "{" T("a", "F32", "[1]", 0, 4) "," T("a", "F32", "[1]", 4, 8) "}", 8,
     "duplicate tensor name 'a'"},
    {"dup_name_escaped", "{" T("a\\nb", "F32", "[1]", 0, 4) ",\"a\\u000ab\":{}}", 4,
     "duplicate tensor name 'a?b'"},
    {"dup_metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__"},
    {"unsupported_dtype", "{" T("a", "F8_E4M3", "[4]", 0, 4) "}", 4, "unsupported dtype F8_E4M3"},
    {"unsupported_dtype_c64", "{" T("a", "C64", "[1]", 0, 8) "}", 8, "unsupported dtype C64"},
    {"unknown_dtype", "{" T("a", "Q4", "[4]", 0, 4) "}", 4, "unknown dtype 'Q4'"},
    {"lowercase_dtype", "{" T("a", "f32", "[1]", 0, 4) "}", 4, "unknown dtype 'f32'"},
    {"missing_dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing dtype"},
    {"dtype_not_string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "dtype is not a string"},
    {"dup_dtype_field",
     "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "two 'dtype' fields"},
    {"entry_not_object", "{\"a\":[1,2]}", 0, "entry is not a JSON object"},
    {"missing_shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing shape"},
    {"shape_not_array", "{" T("a", "F32", "4", 0, 16) "}", 16, "shape is not an array"},
    {"shape_negative", "{" T("a", "F32", "[-1]", 0, 4) "}", 4, "shape[0] is not an integer"},
    {"shape_fraction", "{" T("a", "F32", "[2,1.5]", 0, 12) "}", 12, "shape[1] is not an integer"},
    {"shape_2p53", "{" T("a", "U8", "[9007199254740992]", 0, 4) "}", 4,
     "shape[0] is not an integer"},
    {"shape_huge_exponent", "{" T("a", "U8", "[1e999]", 0, 4) "}", 4, "shape[0] is not an integer"},
    {"shape_string", "{" T("a", "F32", "[\"4\"]", 0, 16) "}", 16, "shape[0] is not an integer"},
    {"shape_null", "{" T("a", "F32", "[null]", 0, 4) "}", 4, "shape[0] is not an integer"},
    {"nine_dims", "{" T("a", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1, "more than 8 dimensions"},
    {"shape_overflow_u64", "{" T("a", "U8", "[4294967296,4294967296]", 0, 4) "}", 4,
     "product of shape overflows"},
    {"shape_overflow_before_zero", "{" T("a", "U8", "[4294967296,4294967296,0]", 0, 0) "}", 0,
     "product of shape overflows"},
    {"shape_overflow_int64", "{" T("a", "U8", "[1099511627776,8388608]", 0, 4) "}", 4,
     "product of shape overflows"},
    {"shape_overflow_bytes", "{" T("a", "F32", "[1099511627776,4194304]", 0, 4) "}", 4,
     "product of shape overflows"},
    {"missing_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing data_offsets"},
    {"offsets_not_array", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":4}}", 4,
     "data_offsets is not an array"},
    {"offsets_one", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4,
     "exactly 2 elements"},
    {"offsets_three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4,
     "exactly 2 elements"},
    {"offsets_negative", "{" T("a", "F32", "[1]", -4, 0) "}", 4, "not integers"},
    {"offsets_fraction", "{" T("a", "U8", "[1]", 0.5, 1.5) "}", 2, "not integers"},
    {"offsets_2p53", "{" T("a", "U8", "[1]", 9007199254740992, 9007199254740993) "}", 4,
     "not integers"},
    {"offsets_bool", "{" T("a", "U8", "[1]", false, true) "}", 4, "not integers"},
    {"begin_after_end", "{" T("a", "U8", "[0]", 8, 4) "}", 8, "begin 8 > end 4"},
    {"data_past_eof", "{" T("a", "F32", "[4]", 0, 16) "}", 12, "runs past the end of the file"},
    {"data_far_past_eof", "{" T("a", "U8", "[1]", 9007199254740990, 9007199254740991) "}", 4,
     "runs past the end of the file"},
    {"span_mismatch", "{" T("a", "F32", "[3]", 0, 16) "}", 16, "span 16 bytes but"},
    {"scalar_span_mismatch", "{" T("a", "F64", "[]", 0, 4) "}", 4, "needs 8"},
    {"gap_at_start", "{" T("a", "F32", "[1]", 4, 8) "}", 8, "gap in the data: bytes [0, 4)"},
    {"gap_between", "{" T("a", "F32", "[1]", 0, 4) "," T("b", "F32", "[1]", 8, 12) "}", 12,
     "gap in the data: bytes [4, 8) before tensor 'b'"},
    {"overlap", "{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[1]", 4, 8) "}", 8, "overlap"},
    {"same_span", "{" T("a", "F32", "[1]", 0, 4) "," T("b", "I32", "[1]", 0, 4) "}", 4, "overlap"},
    {"trailing_data", "{" T("a", "F32", "[1]", 0, 4) "}", 8, "trailing bytes"},
    {"no_tensors_with_data", "{}", 4, "no tensors but the data section is 4 bytes"},
    {"metadata_not_object", "{\"__metadata__\":[\"a\"]}", 0, "__metadata__ is not a JSON object"},
    {"metadata_value_number", "{\"__metadata__\":{\"a\":\"x\",\"n\":1}}", 0,
     "__metadata__ value of key 'n' is not a string"},
    {"metadata_value_object", "{\"__metadata__\":{\"a\":{}}}", 0, "not a string"},
    {"metadata_dup_key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
     "duplicate __metadata__ key 'k'"},
};

static void test_broken(void) {
    char path[256];
    for (size_t i = 0; i < sizeof k_broken / sizeof k_broken[0]; i++) {
        const broken *c = &k_broken[i];
        snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, c->label);
        write_st(path, c->header, NULL, c->data_len);
        expect_fail(path, path, SGLC_ERR_FORMAT, c->expect, c->label);
        unlink(path);
    }

    /* rules about the 8-byte length itself */
    path_in(path, sizeof path, "lengths.safetensors");
    write_file(path, "\x02\0\0\0\0", 5);
    expect_fail(path, path, SGLC_ERR_FORMAT, "too short", "file_5_bytes");
    write_file(path, "", 0);
    expect_fail(path, path, SGLC_ERR_FORMAT, "too short", "file_empty");
    write_st_len(path, 100000001, "{}", 2, NULL, 0);
    expect_fail(path, path, SGLC_ERR_FORMAT, "exceeds the 100 MB limit", "header_len_100MB+1");
    write_st_len(path, UINT64_MAX, "{}", 2, NULL, 0);
    expect_fail(path, path, SGLC_ERR_FORMAT, "exceeds the 100 MB limit", "header_len_2^64-1");
    write_st_len(path, UINT64_MAX - 7, "{}", 2, NULL, 0); /* 8 + N wraps to 0 */
    expect_fail(path, path, SGLC_ERR_FORMAT, "exceeds the 100 MB limit", "header_len_2^64-8");
    write_st_len(path, 3, "{}", 2, NULL, 0);
    expect_fail(path, path, SGLC_ERR_FORMAT, "runs past the end of the file", "header_past_eof");
    write_st_len(path, 1, "{}", 2, NULL, 0); /* "{" then "}" as data */
    expect_fail(path, path, SGLC_ERR_FORMAT, "not valid JSON", "header_len_short");
    write_st_len(path, 3, "{}\0", 3, NULL, 0);
    expect_fail(path, path, SGLC_ERR_FORMAT, "NUL byte", "header_nul_padding");

    /* nesting: refused by depth before cJSON's recursion, however deep */
    const size_t deep = 100000;
    char *h = malloc(deep + 16);
    if (!h) abort();
    memset(h, '[', deep);
    h[deep] = 0;
    write_st(path, h, NULL, 0);
    expect_fail(path, path, SGLC_ERR_FORMAT, NULL, "100k_brackets");
    memcpy(h, "{\"a\":", 5);
    write_st(path, h, NULL, 0);
    expect_fail(path, path, SGLC_ERR_FORMAT, "nesting deeper than 64", "100k_nested_in_object");
    for (size_t i = 5; i < deep; i++)
        h[i] = i % 2 ? '{' : '[';
    write_st(path, h, NULL, 0);
    expect_fail(path, path, SGLC_ERR_FORMAT, "nesting deeper than 64", "100k_mixed_nesting");
    free(h);
    /* brackets inside strings are not nesting */
    buf b = {0};
    puts_(&b, "{\"__metadata__\":{\"k\":\"");
    for (int i = 0; i < 1000; i++)
        puts_(&b, "[{\\\"");
    puts_(&b, "\"}}");
    write_st(path, b.p, NULL, 0);
    sglc_safetensors *st = NULL;
    sglc_err err = {{0}};
    CHECKF(sglc_safetensors_open(&st, path, &err) == 0, "brackets in a string: %s", err.msg);
    if (st) CHECK(strlen(sglc_safetensors_metadata(st, "k")) == 3000);
    sglc_safetensors_close(st);
    free(b.p);

    /* a long hostile name is cut in the message, which stays one line */
    b = (buf){0};
    puts_(&b, "{\"");
    for (int i = 0; i < 300; i++)
        puts_(&b, i == 150 ? "\\n" : "\xc3\xa9");
    puts_(&b, "\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}");
    write_st(path, b.p, NULL, 0);
    expect_fail(path, path, SGLC_ERR_FORMAT, "unknown dtype 'X'", "long_name");
    free(b.p);
    unlink(path);
}

/* ---- sharded folder ----------------------------------------------------------------------- */

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"

static const uint8_t k_shard1_data[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const uint8_t k_shard2_data[6] = {21, 22, 23, 24, 25, 26};

static void write_shards(const char *dir, int a_in_both) {
    char path[256];
    snprintf(path, sizeof path, "%s/" SHARD1, dir);
    write_st(path,
             "{\"__metadata__\":{\"format\":\"pt\"}," T("a", "F32", "[2]", 0,
                                                        8) "," T("b", "I32", "[1]", 8, 12) "}",
             k_shard1_data, sizeof k_shard1_data);
    snprintf(path, sizeof path, "%s/" SHARD2, dir);
    if (a_in_both)
        write_st(path, "{" T("c", "BF16", "[3]", 0, 6) "," T("a", "U8", "[0]", 6, 6) "}",
                 k_shard2_data, sizeof k_shard2_data);
    else
        write_st(path,
                 "{\"__metadata__\":{\"format\":\"other\"}," T("c", "BF16", "[3]", 0,
                                                               6) "," T("d", "U8", "[0]", 6, 6) "}",
                 k_shard2_data, sizeof k_shard2_data);
}

#define WM_OK "\"a\":\"" SHARD1 "\",\"c\":\"" SHARD2 "\",\"b\":\"" SHARD1 "\",\"d\":\"" SHARD2 "\""

static void write_index(const char *dir, const char *json) {
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_file(path, json, strlen(json));
}

static void check_sharded(const char *open_path, const char *dir) {
    sglc_safetensors *st = NULL;
    sglc_err err = {{0}};
    int rc = sglc_safetensors_open(&st, open_path, &err);
    CHECKF(rc == 0, "open %s: %s", open_path, err.msg);
    if (rc) return;
    char want[256];
    CHECK(sglc_safetensors_n_files(st) == 2);
    snprintf(want, sizeof want, "%s/" SHARD1, dir);
    CHECK(strcmp(sglc_safetensors_file_path(st, 0), want) == 0);
    snprintf(want, sizeof want, "%s/" SHARD2, dir);
    CHECK(strcmp(sglc_safetensors_file_path(st, 1), want) == 0);
    CHECK(sglc_safetensors_n_tensors(st) == 4);
    const sglc_st_tensor *a = sglc_safetensors_find(st, "a"), *b = sglc_safetensors_find(st, "b"),
                         *c = sglc_safetensors_find(st, "c"), *d = sglc_safetensors_find(st, "d");
    CHECK(a && b && c && d);
    if (a && b && c && d) {
        CHECK(a->file_index == 0 && b->file_index == 0 && c->file_index == 1 && d->file_index == 1);
        CHECK(a->dtype == SGLC_ST_F32 && a->nbytes == 8 && memcmp(a->data, k_shard1_data, 8) == 0);
        CHECK(b->dtype == SGLC_ST_I32 && b->nbytes == 4 &&
              memcmp(b->data, k_shard1_data + 8, 4) == 0);
        CHECK(c->dtype == SGLC_ST_BF16 && c->shape[0] == 3 && c->nbytes == 6 &&
              memcmp(c->data, k_shard2_data, 6) == 0);
        CHECK(d->dtype == SGLC_ST_U8 && d->n_dims == 1 && d->shape[0] == 0 && d->nbytes == 0);
    }
    const char *v = sglc_safetensors_metadata(st, "format");
    CHECK(v && strcmp(v, "pt") == 0); /* the first shard's */
    sglc_safetensors_close(st);
}

static void test_sharded(void) {
    char dir[128], index[256], shard1[256], shard2[256], single[256];
    snprintf(dir, sizeof dir, "%s/sharded", g_dir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    snprintf(shard1, sizeof shard1, "%s/" SHARD1, dir);
    snprintf(shard2, sizeof shard2, "%s/" SHARD2, dir);
    snprintf(single, sizeof single, "%s/model.safetensors", dir);

    write_shards(dir, 0);
    write_index(dir, "{\"metadata\":{\"total_size\":18},\"weight_map\":{" WM_OK "}}");
    check_sharded(dir, dir);
    check_sharded(index, dir);

    /* a folder holding both opens the single file, as transformers does */
    write_st(single, "{" T("only", "U8", "[1]", 0, 1) "}", "x", 1);
    sglc_safetensors *st = NULL;
    sglc_err err = {{0}};
    CHECKF(sglc_safetensors_open(&st, dir, &err) == 0, "%s", err.msg);
    if (st) CHECK(sglc_safetensors_n_tensors(st) == 1 && sglc_safetensors_find(st, "only"));
    sglc_safetensors_close(st);
    unlink(single);

    static const struct {
        const char *label, *index, *expect;
        int names_shard; /* 0: the index, 1 or 2: that shard */
    } cases[] = {
        {"ix_missing_in_shard", "{\"weight_map\":{" WM_OK ",\"e\":\"" SHARD1 "\"}}",
         "tensor 'e' is listed under shard '" SHARD1 "', which does not contain it", 0},
        {"ix_not_listed",
         "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"c\":\"" SHARD2 "\",\"d\":\"" SHARD2 "\"}}",
         "tensor 'b' is not listed in", 1},
        {"ix_wrong_shard",
         "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"b\":\"" SHARD1 "\",\"c\":\"" SHARD1
         "\",\"d\":\"" SHARD2 "\"}}",
         "tensor 'c' is listed in", 2},
        {"ix_dotdot", "{\"weight_map\":{" WM_OK ",\"e\":\"../" SHARD1 "\"}}",
         "not a plain file name", 0},
        {"ix_dotdot_alone", "{\"weight_map\":{" WM_OK ",\"e\":\"..\"}}", "not a plain file name",
         0},
        {"ix_absolute", "{\"weight_map\":{" WM_OK ",\"e\":\"/etc/passwd\"}}",
         "not a plain file name", 0},
        {"ix_subdir", "{\"weight_map\":{" WM_OK ",\"e\":\"sub/x.safetensors\"}}",
         "not a plain file name", 0},
        {"ix_empty_shard_name", "{\"weight_map\":{" WM_OK ",\"e\":\"\"}}", "not a plain file name",
         0},
        {"ix_value_not_string", "{\"weight_map\":{" WM_OK ",\"e\":1}}", "is not a string", 0},
        {"ix_no_weight_map", "{\"metadata\":{}}", "missing weight_map", 0},
        {"ix_weight_map_array", "{\"weight_map\":[]}", "weight_map is not a JSON object", 0},
        {"ix_weight_map_empty", "{\"weight_map\":{}}", "weight_map is empty", 0},
        {"ix_dup_tensor", "{\"weight_map\":{" WM_OK ",\"a\":\"" SHARD2 "\"}}",
         "duplicate tensor name 'a' in weight_map", 0},
        {"ix_dup_weight_map", "{\"weight_map\":{" WM_OK "},\"weight_map\":{}}",
         "duplicate key 'weight_map'", 0},
        {"ix_not_json", "{\"weight_map\":{", "not valid JSON", 0},
        {"ix_not_object", "[]", "not a JSON object", 0},
        {"ix_bad_utf8", "{\"weight_map\":{\"\xff\":\"x\"}}", "invalid UTF-8", 0},
        {"ix_deep",
         "{\"weight_map\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
         "nesting deeper", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_index(dir, cases[i].index);
        const char *names = cases[i].names_shard == 1   ? shard1
                            : cases[i].names_shard == 2 ? shard2
                                                        : index;
        expect_fail(index, names, SGLC_ERR_FORMAT, cases[i].expect, cases[i].label);
    }
    write_index(dir, "{\"weight_map\":{" WM_OK "}}");
    write_shards(dir, 1); /* 'a' in both shards */
    expect_fail(dir, shard2, SGLC_ERR_FORMAT, "tensor 'a' is also in", "ix_name_in_two_shards");
    write_shards(dir, 0);
    write_st(shard2, "{" T("c", "BF16", "[3]", 0, 6) "}", k_shard2_data, 4);
    expect_fail(dir, shard2, SGLC_ERR_FORMAT, "runs past the end", "ix_broken_shard");
    unlink(shard2);
    expect_fail(dir, shard2, SGLC_ERR_IO, "cannot open", "ix_missing_shard");
    unlink(shard1);
    unlink(index);
    expect_fail(dir, dir, SGLC_ERR_IO, "neither", "folder_without_model");
    rmdir(dir);
}

/* ---- fixture from the official library ---------------------------------------------------- */

static double half_to_double(uint16_t h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? m / 1024.0 / 16384.0 : (1.0 + m / 1024.0) * ((double)(1u << e) / 32768.0);
    return h & 0x8000 ? -v : v; /* fixture has no inf/NaN */
}

/* Element i of t, as a double for floating dtypes, else in *iv (or *uv for U64). */
static int element(const sglc_st_tensor *t, size_t i, double *dv, int64_t *iv, uint64_t *uv) {
    const uint8_t *p = (const uint8_t *)t->data + i * sglc_st_dtype_size(t->dtype);
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        uint64_t u64;
        int64_t i64;
        double f64;
    } v;
    memcpy(&v, p, sglc_st_dtype_size(t->dtype)); /* data need not be aligned */
    *uv = 0;
    switch (t->dtype) {
    case SGLC_ST_BOOL:
    case SGLC_ST_U8: *iv = v.u8; return 0;
    case SGLC_ST_I8: *iv = v.i8; return 0;
    case SGLC_ST_U16: *iv = v.u16; return 0;
    case SGLC_ST_I16: *iv = v.i16; return 0;
    case SGLC_ST_U32: *iv = v.u32; return 0;
    case SGLC_ST_I32: *iv = v.i32; return 0;
    case SGLC_ST_I64: *iv = v.i64; return 0;
    case SGLC_ST_U64: *uv = v.u64; return 2;
    case SGLC_ST_F16: *dv = half_to_double(v.u16); return 1;
    case SGLC_ST_BF16: {
        uint32_t bits = (uint32_t)v.u16 << 16;
        float f;
        memcpy(&f, &bits, 4);
        *dv = f;
        return 1;
    }
    case SGLC_ST_F32: *dv = v.f32; return 1;
    case SGLC_ST_F64: *dv = v.f64; return 1;
    default: return -1;
    }
}

static void check_value(const sglc_st_tensor *t, size_t i, const char *want) {
    double dv = 0;
    int64_t iv = 0;
    uint64_t uv = 0;
    int kind = element(t, i, &dv, &iv, &uv);
    if (kind == 1)
        CHECKF(dv == strtod(want, NULL), "%s[%zu] = %.17g, want %s", t->name, i, dv, want);
    else if (kind == 2)
        CHECKF(uv == strtoull(want, NULL, 10), "%s[%zu] = %llu, want %s", t->name, i,
               (unsigned long long)uv, want);
    else
        CHECKF(kind == 0 && iv == strtoll(want, NULL, 10), "%s[%zu] = %lld, want %s", t->name, i,
               (long long)iv, want);
}

static void test_golden_fixture(void) {
    char st_path[4096], tsv_path[4096];
    snprintf(st_path, sizeof st_path, "%s/tests/golden/st_fixture.safetensors", test_source_dir());
    snprintf(tsv_path, sizeof tsv_path, "%s/tests/golden/st_fixture.tsv", test_source_dir());
    char *manifest = test_read_file(tsv_path, NULL);
    CHECKF(manifest != NULL, "cannot read %s (set SGLC_SOURCE_DIR)", tsv_path);
    if (!manifest) return;
    sglc_safetensors *st = NULL;
    sglc_err err = {{0}};
    int rc = sglc_safetensors_open(&st, st_path, &err);
    CHECKF(rc == 0, "open %s: %s", st_path, err.msg);
    if (rc) {
        free(manifest);
        return;
    }
    int n_tensors = 0, n_meta = 0;
    char *save = NULL;
    for (char *line = strtok_r(manifest, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *f[6] = {0};
        int nf = 0;
        for (char *p = line; nf < 6; nf++) { /* tab-separated; empty fields allowed */
            f[nf] = p;
            char *tab = strchr(p, '\t');
            if (!tab) {
                nf++;
                break;
            }
            *tab = 0;
            p = tab + 1;
        }
        if (strcmp(f[0], "@meta") == 0) {
            CHECK(nf == 3);
            const char *v = nf == 3 ? sglc_safetensors_metadata(st, f[1]) : NULL;
            CHECKF(v && strcmp(v, f[2]) == 0, "metadata %s = %s, want %s", f[1], v ? v : "(none)",
                   f[2]);
            n_meta++;
            continue;
        }
        CHECKF(nf == 6, "bad manifest line for %s", f[0]);
        if (nf != 6) continue;
        n_tensors++;
        const sglc_st_tensor *t = sglc_safetensors_find(st, f[0]);
        CHECKF(t != NULL, "fixture tensor %s not found", f[0]);
        if (!t) continue;
        CHECKF(strcmp(sglc_st_dtype_name(t->dtype), f[1]) == 0, "%s: dtype %s, want %s", f[0],
               sglc_st_dtype_name(t->dtype), f[1]);
        int nd = 0;
        size_t n_elems = 1;
        for (char *p = f[2]; *p; nd++) {
            char *end;
            long long d = strtoll(p, &end, 10);
            CHECK(nd < t->n_dims && t->shape[nd] == d);
            n_elems *= (size_t)d;
            p = *end == ',' ? end + 1 : end;
        }
        CHECKF(nd == t->n_dims, "%s: %d dims, want %d", f[0], t->n_dims, nd);
        CHECK(t->nbytes == (size_t)strtoull(f[3], NULL, 10));
        CHECK(t->nbytes == n_elems * sglc_st_dtype_size(t->dtype));
        if (n_elems) {
            check_value(t, 0, f[4]);
            check_value(t, n_elems - 1, f[5]);
        }
    }
    CHECK(n_tensors == sglc_safetensors_n_tensors(st) && n_tensors >= 10);
    CHECK(n_meta == 2);
    fprintf(stderr, "golden fixture: %d tensors, %d metadata keys match\n", n_tensors, n_meta);
    sglc_safetensors_close(st);
    free(manifest);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(void) {
    sglc_safetensors_close(NULL);
    snprintf(g_dir, sizeof g_dir, "/tmp/sglc_st_XXXXXX");
    if (!mkdtemp(g_dir)) abort();
    char path[256];

    for (int pad = 0; pad < 2; pad++) {
        buf header = {0}, data = {0};
        build_valid(&header, &data, pad);
        path_in(path, sizeof path, "valid.safetensors");
        write_st(path, header.p, data.p, data.len);
        check_valid(path);

        /* every prefix of the file fails cleanly */
        if (pad) {
            buf whole = {0};
            uint64_t hl = header.len;
            put(&whole, &hl, 8);
            put(&whole, header.p, header.len);
            put(&whole, data.p, data.len);
            char cut[256];
            path_in(cut, sizeof cut, "cut.safetensors");
            int before = g_test_failures;
            for (size_t n = 0; n < whole.len; n++) {
                write_file(cut, whole.p, n);
                expect_fail(cut, cut, SGLC_ERR_FORMAT,
                            n < 8 ? "too short" : "runs past the end of the file", NULL);
                if (g_test_failures != before) {
                    fprintf(stderr, "truncation sweep failed at length %zu\n", n);
                    break;
                }
            }
            fprintf(stderr, "truncation sweep: %zu lengths (header %zu bytes)\n", whole.len,
                    header.len);
            unlink(cut);
            free(whole.p);
        }
        unlink(path);
        free(header.p);
        free(data.p);
    }
    test_valid_edge_cases();
    fprintf(stderr, "broken files:\n");
    test_broken();
    fprintf(stderr, "sharded folder:\n");
    test_sharded();
    test_golden_fixture();

    path_in(path, sizeof path, "missing.safetensors");
    expect_fail(path, path, SGLC_ERR_IO, "cannot open", "missing_file");
    path_in(path, sizeof path, "missing.index.json");
    expect_fail(path, path, SGLC_ERR_IO, "cannot open", "missing_index");
    expect_fail("/dev/null", "/dev/null", SGLC_ERR_IO, "not a regular file", "not_regular");
    path_in(path, sizeof path, "fifo.safetensors"); /* must not block in open() */
    CHECK(mkfifo(path, 0600) == 0);
    expect_fail(path, path, SGLC_ERR_IO, "not a regular file", "fifo");
    unlink(path);

    rmdir(g_dir);
    TEST_MAIN_END();
}
