/* GGUF reader tests: facts of the real default model (checked independently with the `gguf`
 * Python package), a crafted valid file whose every value must round-trip, and one crafted
 * broken file per rule of ROBUSTNESS.md §25, each of which must be rejected with a one-line
 * message naming the file. The crafted files are produced by a small writer here that follows
 * the GGUF layout of REFERENCE.md, independently of the reader. */
#include "formats/gguf.h"

#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "quant/ggml_types.h"
#include "test_util.h"

/* ---- writer ------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_u8(buf *b, uint8_t v) {
    put(b, &v, 1);
}
static void put_u16(buf *b, uint16_t v) {
    put(b, &v, 2);
}
static void put_u32(buf *b, uint32_t v) {
    put(b, &v, 4);
}
static void put_u64(buf *b, uint64_t v) {
    put(b, &v, 8);
}
static void put_str_len(buf *b, const char *s, uint64_t len) {
    put_u64(b, len);
    put(b, s, strlen(s));
}
static void put_str(buf *b, const char *s) {
    put_str_len(b, s, strlen(s));
}
static void put_key(buf *b, const char *key, uint32_t type) {
    put_str(b, key);
    put_u32(b, type);
}

/* One mutation of the valid file per rule. */
typedef enum {
    MUT_NONE,
    MUT_ALIGN_64, /* valid: non-default alignment */
    MUT_NAME_63,  /* valid: the longest name GGML_MAX_NAME allows */
    MUT_BAD_MAGIC,
    MUT_VERSION_0,
    MUT_VERSION_1,
    MUT_VERSION_99,
    MUT_VERSION_BIG_ENDIAN,
    MUT_TENSOR_COUNT_MAX,
    MUT_TENSOR_COUNT_BIG,
    MUT_KV_COUNT_MAX,
    MUT_KV_COUNT_BIG,
    MUT_KEY_LEN_MAX,
    MUT_KEY_LEN_PAST_EOF,
    MUT_STR_LEN_MAX,
    MUT_STR_LEN_PAST_EOF,
    MUT_ARR_STR_ELEM_LEN_PAST_EOF,
    MUT_EMPTY_KEY,
    MUT_KEY_WITH_NUL,
    MUT_DUP_KEY,
    MUT_BAD_VALUE_TYPE,
    MUT_BAD_ARR_ELEM_TYPE,
    MUT_NESTED_ARRAY,
    MUT_ARR_COUNT_OVERFLOW,
    MUT_ARR_COUNT_PAST_EOF,
    MUT_STR_ARR_COUNT_MAX,
    MUT_ALIGN_ZERO,
    MUT_ALIGN_NPOT,
    MUT_ALIGN_U64,
    MUT_ALIGN_STRING,
    MUT_NAME_64,
    MUT_NAME_EMPTY,
    MUT_NDIMS_0,
    MUT_NDIMS_5,
    MUT_DIM_0,
    MUT_DIM_NEG,
    MUT_DIM_PRODUCT_OVERFLOW,
    MUT_NBYTES_OVERFLOW,
    MUT_UNKNOWN_TYPE_4,
    MUT_UNKNOWN_TYPE_99,
    MUT_NE0_NOT_BLOCK_MULTIPLE,
    MUT_OFFSET_MISALIGNED,
    MUT_OFFSET_PAST_EOF,
    MUT_OFFSET_WRAPS,
    MUT_DATA_TRUNCATED,
    MUT_OVERLAP,
    MUT_DUP_TENSOR_NAME,
    MUT_COUNT
} mutation;

typedef struct {
    const char *name;
    const char *expect; /* substring the error message must contain; NULL for valid files */
} mutation_info;

static const mutation_info k_mut[MUT_COUNT] = {
    [MUT_NONE] = {"valid", NULL},
    [MUT_ALIGN_64] = {"align_64", NULL},
    [MUT_NAME_63] = {"name_63", NULL},
    [MUT_BAD_MAGIC] = {"bad_magic", "bad magic"},
    [MUT_VERSION_0] = {"version_0", "version 0"},
    [MUT_VERSION_1] = {"version_1", "version 1"},
    [MUT_VERSION_99] = {"version_99", "version 99"},
    [MUT_VERSION_BIG_ENDIAN] = {"version_be", "big-endian"},
    [MUT_TENSOR_COUNT_MAX] = {"tensor_count_max", "tensor count 18446744073709551615"},
    [MUT_TENSOR_COUNT_BIG] = {"tensor_count_big", "tensor count"},
    [MUT_KV_COUNT_MAX] = {"kv_count_max", "KV count 18446744073709551615"},
    [MUT_KV_COUNT_BIG] = {"kv_count_big", "KV count"},
    [MUT_KEY_LEN_MAX] = {"key_len_max", "beyond the end of the file"},
    [MUT_KEY_LEN_PAST_EOF] = {"key_len_past_eof", "beyond the end of the file"},
    [MUT_STR_LEN_MAX] = {"str_len_max", "beyond the end of the file"},
    [MUT_STR_LEN_PAST_EOF] = {"str_len_past_eof", "beyond the end of the file"},
    [MUT_ARR_STR_ELEM_LEN_PAST_EOF] = {"arr_str_elem_past_eof", "beyond the end of the file"},
    [MUT_EMPTY_KEY] = {"empty_key", "empty key"},
    [MUT_KEY_WITH_NUL] = {"key_with_nul", "NUL"},
    [MUT_DUP_KEY] = {"dup_key", "duplicate key 'test.u8'"},
    [MUT_BAD_VALUE_TYPE] = {"bad_value_type", "bad value type 13"},
    [MUT_BAD_ARR_ELEM_TYPE] = {"bad_arr_elem_type", "bad element type 99"},
    [MUT_NESTED_ARRAY] = {"nested_array", "nested arrays"},
    [MUT_ARR_COUNT_OVERFLOW] = {"arr_count_overflow", "overflows"},
    [MUT_ARR_COUNT_PAST_EOF] = {"arr_count_past_eof", "truncated reading array data"},
    [MUT_STR_ARR_COUNT_MAX] = {"str_arr_count_max", "count 18446744073709551615"},
    [MUT_ALIGN_ZERO] = {"align_zero", "general.alignment is 0"},
    [MUT_ALIGN_NPOT] = {"align_npot", "general.alignment is 24"},
    [MUT_ALIGN_U64] = {"align_u64", "general.alignment has type uint64"},
    [MUT_ALIGN_STRING] = {"align_string", "general.alignment has type string"},
    [MUT_NAME_64] = {"name_64", "name of 64 bytes"},
    [MUT_NAME_EMPTY] = {"name_empty", "empty name"},
    [MUT_NDIMS_0] = {"ndims_0", "0 dimensions"},
    [MUT_NDIMS_5] = {"ndims_5", "5 dimensions"},
    [MUT_DIM_0] = {"dim_0", "dimension 1 = 0"},
    [MUT_DIM_NEG] = {"dim_neg", "dimension 0 = -1"},
    [MUT_DIM_PRODUCT_OVERFLOW] = {"dim_product_overflow", "product of dimensions overflows"},
    [MUT_NBYTES_OVERFLOW] = {"nbytes_overflow", "byte size overflows"},
    [MUT_UNKNOWN_TYPE_4] = {"unknown_type_4", "unknown ggml type 4"},
    [MUT_UNKNOWN_TYPE_99] = {"unknown_type_99", "unknown ggml type 99"},
    [MUT_NE0_NOT_BLOCK_MULTIPLE] = {"ne0_not_block_multiple", "not a multiple of the block"},
    [MUT_OFFSET_MISALIGNED] = {"offset_misaligned", "not a multiple of the alignment"},
    [MUT_OFFSET_PAST_EOF] = {"offset_past_eof", "past the end of the file"},
    [MUT_OFFSET_WRAPS] = {"offset_wraps", "past the end of the file"},
    [MUT_DATA_TRUNCATED] = {"data_truncated", "past the end of the file"},
    [MUT_OVERLAP] = {"overlap", "overlap"},
    [MUT_DUP_TENSOR_NAME] = {"dup_tensor_name", "duplicate tensor name 'w.q4'"},
};

typedef struct {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[5];
    uint32_t type;
    size_t nbytes;
} tensor_spec;

/* F32 {8,4}: 128 B; Q4_0 {64,2}: 4 blocks x 18 = 72 B; Q8_0 {32,3}: 3 x 34 = 102 B;
 * I32 {5}: 20 B; Q4_K {256,1,1,2}: 2 x 144 = 288 B. */
#define N_TENSORS 5
static const tensor_spec k_tensors[N_TENSORS] = {
    {"tok.f32", 2, {8, 4}, SGLC_GGML_TYPE_F32, 128},
    {"w.q4", 2, {64, 2}, SGLC_GGML_TYPE_Q4_0, 72},
    {"v.q8", 2, {32, 3}, SGLC_GGML_TYPE_Q8_0, 102},
    {"b.i32", 1, {5}, 26, 20},
    {"k.q4k", 4, {256, 1, 1, 2}, SGLC_GGML_TYPE_Q4_K, 288},
};

static const char k_name_64[] = "0123456789012345678901234567890123456789012345678901234567890123";
static const char *const k_arr_strs[] = {"a", "<|im_start|>", "", "xyz"};
static const int32_t k_arr_i32[] = {1, -2, 3};

static uint8_t data_byte(int t, size_t j) {
    return (uint8_t)(t * 31 + j * 7 + 1);
}

/* Writes the test file with mutation m applied; *header_len gets the byte count before the data
 * section padding. */
static void build(buf *b, mutation m, size_t *header_len) {
    b->len = 0;
    uint32_t align = m == MUT_ALIGN_64 ? 64 : 32;
    put(b, m == MUT_BAD_MAGIC ? "GGUG" : "GGUF", 4);
    uint32_t version = 3;
    if (m == MUT_VERSION_0) version = 0;
    if (m == MUT_VERSION_1) version = 1;
    if (m == MUT_VERSION_99) version = 99;
    if (m == MUT_VERSION_BIG_ENDIAN) version = 0x03000000u;
    put_u32(b, version);
    uint64_t n_tensors = N_TENSORS, n_kv = 17;
    if (m == MUT_TENSOR_COUNT_MAX) n_tensors = UINT64_MAX;
    if (m == MUT_TENSOR_COUNT_BIG) n_tensors = 1000000;
    if (m == MUT_KV_COUNT_MAX) n_kv = UINT64_MAX;
    if (m == MUT_KV_COUNT_BIG) n_kv = 1000000;
    if (m == MUT_DUP_KEY) n_kv++;
    put_u64(b, n_tensors);
    put_u64(b, n_kv);

    /* KV 0 */
    if (m == MUT_KEY_LEN_MAX)
        put_str_len(b, "general.architecture", UINT64_MAX);
    else if (m == MUT_KEY_LEN_PAST_EOF)
        put_str_len(b, "general.architecture", 100000);
    else if (m == MUT_EMPTY_KEY)
        put_str(b, "");
    else if (m == MUT_KEY_WITH_NUL)
        put(b, "\x05\0\0\0\0\0\0\0ab\0cd", 13);
    else
        put_str(b, "general.architecture");
    put_u32(b, m == MUT_BAD_VALUE_TYPE ? 13 : SGLC_GGUF_STRING);
    if (m == MUT_STR_LEN_MAX)
        put_str_len(b, "llama", UINT64_MAX);
    else if (m == MUT_STR_LEN_PAST_EOF)
        put_str_len(b, "llama", 1u << 20);
    else
        put_str(b, "llama");

    /* KV 1: alignment */
    put_str(b, "general.alignment");
    if (m == MUT_ALIGN_U64) {
        put_u32(b, SGLC_GGUF_UINT64);
        put_u64(b, 32);
    } else if (m == MUT_ALIGN_STRING) {
        put_u32(b, SGLC_GGUF_STRING);
        put_str(b, "32");
    } else {
        put_u32(b, SGLC_GGUF_UINT32);
        put_u32(b, m == MUT_ALIGN_ZERO ? 0 : m == MUT_ALIGN_NPOT ? 24 : align);
    }

    /* KVs 2..12: one scalar of every type */
    put_key(b, "test.u8", SGLC_GGUF_UINT8), put_u8(b, 200);
    put_key(b, "test.i8", SGLC_GGUF_INT8), put_u8(b, (uint8_t)-5);
    put_key(b, "test.u16", SGLC_GGUF_UINT16), put_u16(b, 60000);
    put_key(b, "test.i16", SGLC_GGUF_INT16), put_u16(b, (uint16_t)-300);
    put_key(b, "test.u32", SGLC_GGUF_UINT32), put_u32(b, 4000000000u);
    put_key(b, "test.i32", SGLC_GGUF_INT32), put_u32(b, (uint32_t)-70000);
    float f = 1.5f;
    put_key(b, "test.f32", SGLC_GGUF_FLOAT32), put(b, &f, 4);
    put_key(b, "test.bool", SGLC_GGUF_BOOL), put_u8(b, 1);
    put_key(b, "test.u64", SGLC_GGUF_UINT64), put_u64(b, UINT64_MAX - 1);
    put_key(b, "test.i64", SGLC_GGUF_INT64), put_u64(b, (uint64_t) - (INT64_C(1) << 40));
    double d = 2.25;
    put_key(b, "test.f64", SGLC_GGUF_FLOAT64), put(b, &d, 8);

    /* KV 13: i32 array */
    put_key(b, "test.arr_i32", SGLC_GGUF_ARRAY);
    if (m == MUT_BAD_ARR_ELEM_TYPE)
        put_u32(b, 99);
    else if (m == MUT_NESTED_ARRAY)
        put_u32(b, SGLC_GGUF_ARRAY);
    else
        put_u32(b, SGLC_GGUF_INT32);
    if (m == MUT_ARR_COUNT_OVERFLOW)
        put_u64(b, UINT64_C(1) << 62);
    else if (m == MUT_ARR_COUNT_PAST_EOF)
        put_u64(b, 1000000);
    else
        put_u64(b, 3);
    put(b, k_arr_i32, sizeof k_arr_i32);

    /* KV 14: string array */
    put_key(b, "test.arr_str", SGLC_GGUF_ARRAY);
    put_u32(b, SGLC_GGUF_STRING);
    put_u64(b, m == MUT_STR_ARR_COUNT_MAX ? UINT64_MAX : 4);
    for (int i = 0; i < 4; i++) {
        if (i == 3 && m == MUT_ARR_STR_ELEM_LEN_PAST_EOF)
            put_str_len(b, k_arr_strs[i], 1u << 30);
        else
            put_str(b, k_arr_strs[i]);
    }

    /* KV 15: empty u8 array; KV 16: empty string */
    put_key(b, "test.arr_empty", SGLC_GGUF_ARRAY);
    put_u32(b, SGLC_GGUF_UINT8);
    put_u64(b, 0);
    put_key(b, "test.str_empty", SGLC_GGUF_STRING);
    put_str(b, "");
    if (m == MUT_DUP_KEY) put_key(b, "test.u8", SGLC_GGUF_UINT8), put_u8(b, 1);

    /* tensor infos, data packed in order at aligned offsets */
    uint64_t offs[N_TENSORS], off = 0;
    for (int t = 0; t < N_TENSORS; t++) {
        offs[t] = off;
        off = (off + k_tensors[t].nbytes + align - 1) / align * align;
    }
    for (int t = 0; t < N_TENSORS; t++) {
        const tensor_spec *ts = &k_tensors[t];
        uint32_t n_dims = ts->n_dims;
        uint64_t ne[5] = {ts->ne[0], ts->ne[1], ts->ne[2], ts->ne[3], 1};
        uint32_t type = ts->type;
        uint64_t o = offs[t];
        const char *name = ts->name;
        if (t == 1) { /* the Q4_0 tensor carries the tensor-info mutations */
            if (m == MUT_NAME_64) name = k_name_64;
            if (m == MUT_NAME_63) name = k_name_64 + 1;
            if (m == MUT_NAME_EMPTY) name = "";
            if (m == MUT_NDIMS_0) n_dims = 0;
            if (m == MUT_NDIMS_5) n_dims = 5;
            if (m == MUT_DIM_0) ne[1] = 0;
            if (m == MUT_DIM_NEG) ne[0] = UINT64_MAX;
            if (m == MUT_DIM_PRODUCT_OVERFLOW) ne[0] = UINT64_C(1) << 32, ne[1] = UINT64_C(1) << 32;
            if (m == MUT_NBYTES_OVERFLOW)
                type = SGLC_GGML_TYPE_F32, ne[0] = UINT64_C(1) << 62, ne[1] = 1;
            if (m == MUT_UNKNOWN_TYPE_4) type = 4;
            if (m == MUT_UNKNOWN_TYPE_99) type = 99;
            if (m == MUT_NE0_NOT_BLOCK_MULTIPLE) ne[0] = 48;
            if (m == MUT_OFFSET_MISALIGNED) o += 16;
            if (m == MUT_OFFSET_PAST_EOF) o = UINT64_C(1) << 40;
            if (m == MUT_OFFSET_WRAPS) o = UINT64_MAX - 31;
            if (m == MUT_OVERLAP) o = offs[0] + 32;
        }
        if (t == 3 && m == MUT_DUP_TENSOR_NAME) name = "w.q4";
        put_str(b, name);
        put_u32(b, n_dims);
        for (uint32_t i = 0; i < n_dims && i < 5; i++)
            put_u64(b, ne[i]);
        put_u32(b, type);
        put_u64(b, o);
    }
    *header_len = b->len;
    while (b->len % align)
        put_u8(b, 0);
    size_t data_start = b->len;
    for (int t = 0; t < N_TENSORS; t++) {
        while (b->len < data_start + offs[t])
            put_u8(b, 0);
        for (size_t j = 0; j < k_tensors[t].nbytes; j++)
            put_u8(b, data_byte(t, j));
    }
    if (m == MUT_DATA_TRUNCATED) b->len--;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static char g_dir[64];

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n)) abort();
    fclose(f);
}

/* Opens path expecting failure with code; checks the message names the file (and contains
 * expect when given) and prints it. */
static void expect_fail(const char *path, int code, const char *expect) {
    sglc_gguf *g = (sglc_gguf *)&g_dir; /* must be reset to NULL by open */
    sglc_err err = {{0}};
    int rc = sglc_gguf_open(&g, path, &err);
    CHECKF(rc == code, "%s: rc %d, want %d (%s)", path, rc, code, err.msg);
    CHECK(g == NULL);
    CHECKF(err.msg[0] != 0, "%s: empty message", path);
    CHECKF(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    CHECKF(strchr(err.msg, '\n') == NULL, "message is not one line: %s", err.msg);
    if (expect) CHECKF(strstr(err.msg, expect) != NULL, "want '%s' in: %s", expect, err.msg);
    if (rc == 0) sglc_gguf_close(g);
}

/* ---- real model --------------------------------------------------------------------------- */

static void test_default_model_facts(void) {
    const char *path = test_default_model();
    CHECK(path != NULL);
    if (!path) return;
    sglc_gguf *g = NULL;
    sglc_err err = {{0}};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = sglc_gguf_open(&g, path, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECKF(rc == 0, "open %s: %s", path, err.msg);
    if (rc) return;
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(stderr, "opened default model in %.2f ms\n", ms);
    CHECKF(ms < 1000, "open took %.1f ms", ms);

    CHECK(sglc_gguf_version(g) == 3);
    CHECK(sglc_gguf_alignment(g) == 32);
    CHECK(sglc_gguf_n_tensors(g) == 272);
    const char *s = NULL;
    size_t len = 0;
    CHECK(sglc_gguf_get_str(g, "general.architecture", &s, &len, &err) == 0);
    CHECK(len == 5 && memcmp(s, "llama", 5) == 0);
    uint32_t u = 0;
    CHECK(sglc_gguf_get_u32(g, "llama.block_count", &u, &err) == 0 && u == 30);

    int64_t ki = sglc_gguf_find_key(g, "tokenizer.ggml.tokens");
    CHECK(ki >= 0);
    CHECK(sglc_gguf_kv_type(g, ki) == SGLC_GGUF_ARRAY);
    sglc_gguf_type et = SGLC_GGUF_TYPE_COUNT;
    uint64_t count = 0;
    const void *data = NULL;
    CHECK(sglc_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count, &data, &err) == 0);
    CHECK(et == SGLC_GGUF_STRING && count == 49152);
    s = sglc_gguf_get_arr_str(g, ki, 1, &len);
    CHECK(s && len == 12 && memcmp(s, "<|im_start|>", 12) == 0);
    CHECK(sglc_gguf_get_arr_str(g, ki, 49151, &len) != NULL);
    CHECK(sglc_gguf_get_arr_str(g, ki, 49152, &len) == NULL);
    CHECK(sglc_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &count, &data, &err) == 0);
    CHECK(et == SGLC_GGUF_STRING && count == 48900);

    const sglc_gguf_tensor *t = sglc_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK(t->type == SGLC_GGML_TYPE_Q8_0 && t->n_dims == 2);
        CHECK(t->ne[0] == 576 && t->ne[1] == 49152 && t->ne[2] == 1 && t->ne[3] == 1);
        CHECK(t->nbytes == (size_t)576 / 32 * 34 * 49152);
    }
    t = sglc_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK(t->type == SGLC_GGML_TYPE_Q4_1);
        CHECK(t->ne[0] == 1536 && t->ne[1] == 576);
    }
    CHECK(sglc_gguf_find_tensor(g, "no.such.tensor") == NULL);
    CHECK(sglc_gguf_find_key(g, "no.such.key") == -1);
    /* every tensor is found by its own name and lies inside the file */
    for (int64_t i = 0; i < sglc_gguf_n_tensors(g); i++) {
        const sglc_gguf_tensor *ti = sglc_gguf_tensor_at(g, i);
        CHECK(sglc_gguf_find_tensor(g, ti->name) == ti);
        CHECK((uintptr_t)ti->data % 32 == 0);
    }
    for (int64_t i = 0; i < sglc_gguf_n_kv(g); i++)
        CHECK(sglc_gguf_find_key(g, sglc_gguf_key_name(g, i)) == i);
    sglc_gguf_close(g);
}

/* ---- crafted valid file ------------------------------------------------------------------- */

static void check_valid(const char *path, uint32_t align, const char *name1) {
    sglc_gguf *g = NULL;
    sglc_err err = {{0}};
    int rc = sglc_gguf_open(&g, path, &err);
    CHECKF(rc == 0, "open %s: %s", path, err.msg);
    if (rc) return;
    CHECK(sglc_gguf_version(g) == 3);
    CHECK(sglc_gguf_alignment(g) == align);
    CHECK(sglc_gguf_n_kv(g) == 17);
    CHECK(strcmp(sglc_gguf_key_name(g, 0), "general.architecture") == 0);
    CHECK(sglc_gguf_key_name(g, 17) == NULL && sglc_gguf_key_name(g, -1) == NULL);
    CHECK(sglc_gguf_kv_type(g, 2) == SGLC_GGUF_UINT8);

    uint32_t u32 = 7;
    int64_t i64 = 7;
    float f = 0;
    int bl = 0;
    CHECK(sglc_gguf_get_u32(g, "test.u8", &u32, &err) == 0 && u32 == 200);
    CHECK(sglc_gguf_get_u32(g, "test.u16", &u32, &err) == 0 && u32 == 60000);
    CHECK(sglc_gguf_get_u32(g, "test.u32", &u32, &err) == 0 && u32 == 4000000000u);
    CHECK(sglc_gguf_get_i64(g, "test.i8", &i64, &err) == 0 && i64 == -5);
    CHECK(sglc_gguf_get_i64(g, "test.i16", &i64, &err) == 0 && i64 == -300);
    CHECK(sglc_gguf_get_i64(g, "test.i32", &i64, &err) == 0 && i64 == -70000);
    CHECK(sglc_gguf_get_i64(g, "test.i64", &i64, &err) == 0 && i64 == -(INT64_C(1) << 40));
    CHECK(sglc_gguf_get_i64(g, "test.u32", &i64, &err) == 0 && i64 == 4000000000);
    CHECK(sglc_gguf_get_f32(g, "test.f32", &f, &err) == 0 && f == 1.5f);
    CHECK(sglc_gguf_get_f32(g, "test.f64", &f, &err) == 0 && f == 2.25f);
    CHECK(sglc_gguf_get_bool(g, "test.bool", &bl, &err) == 0 && bl == 1);
    /* values that do not fit, and wrong types, are errors naming the key; absent keys are 1 */
    u32 = 7;
    CHECK(sglc_gguf_get_u32(g, "test.i8", &u32, &err) == SGLC_ERR_FORMAT && u32 == 7);
    CHECK(strstr(err.msg, "test.i8") != NULL && strstr(err.msg, path) != NULL);
    CHECK(sglc_gguf_get_u32(g, "test.u64", &u32, &err) == SGLC_ERR_FORMAT);
    CHECK(sglc_gguf_get_i64(g, "test.u64", &i64, &err) == SGLC_ERR_FORMAT);
    CHECK(sglc_gguf_get_u32(g, "test.f32", &u32, &err) == SGLC_ERR_FORMAT);
    CHECK(sglc_gguf_get_f32(g, "test.u8", &f, &err) == SGLC_ERR_FORMAT);
    CHECK(sglc_gguf_get_bool(g, "test.u8", &bl, &err) == SGLC_ERR_FORMAT);
    const char *s = NULL;
    size_t len = 99;
    CHECK(sglc_gguf_get_str(g, "test.u8", &s, &len, &err) == SGLC_ERR_FORMAT);
    CHECK(sglc_gguf_get_u32(g, "absent", &u32, &err) == 1 && u32 == 7);
    CHECK(sglc_gguf_get_str(g, "absent", &s, &len, &err) == 1 && s == NULL);
    CHECK(sglc_gguf_get_str(g, "general.architecture", &s, &len, &err) == 0);
    CHECK(len == 5 && memcmp(s, "llama", 5) == 0);
    CHECK(sglc_gguf_get_str(g, "test.str_empty", &s, &len, &err) == 0 && len == 0);

    sglc_gguf_type et = SGLC_GGUF_TYPE_COUNT;
    uint64_t count = 0;
    const void *data = NULL;
    CHECK(sglc_gguf_get_arr(g, "test.arr_i32", &et, &count, &data, &err) == 0);
    CHECK(et == SGLC_GGUF_INT32 && count == 3 && memcmp(data, k_arr_i32, sizeof k_arr_i32) == 0);
    CHECK(sglc_gguf_get_arr(g, "test.arr_empty", &et, &count, &data, &err) == 0);
    CHECK(et == SGLC_GGUF_UINT8 && count == 0);
    CHECK(sglc_gguf_get_arr(g, "test.u8", &et, &count, &data, &err) == SGLC_ERR_FORMAT);
    CHECK(sglc_gguf_get_arr(g, "test.arr_str", &et, &count, &data, &err) == 0);
    CHECK(et == SGLC_GGUF_STRING && count == 4);
    int64_t ki = sglc_gguf_find_key(g, "test.arr_str");
    CHECK(ki == 14);
    for (uint64_t i = 0; i < 4; i++) {
        s = sglc_gguf_get_arr_str(g, ki, i, &len);
        CHECK(s && len == strlen(k_arr_strs[i]) && memcmp(s, k_arr_strs[i], len) == 0);
    }
    CHECK(sglc_gguf_get_arr_str(g, ki, 4, &len) == NULL);
    CHECK(sglc_gguf_get_arr_str(g, sglc_gguf_find_key(g, "test.arr_i32"), 0, &len) == NULL);
    CHECK(sglc_gguf_get_arr_str(g, -1, 0, &len) == NULL);

    CHECK(sglc_gguf_n_tensors(g) == N_TENSORS);
    CHECK(sglc_gguf_tensor_at(g, N_TENSORS) == NULL);
    for (int t = 0; t < N_TENSORS; t++) {
        const sglc_gguf_tensor *ts = sglc_gguf_tensor_at(g, t);
        const tensor_spec *want = &k_tensors[t];
        const char *name = t == 1 ? name1 : want->name;
        CHECK(ts && strcmp(ts->name, name) == 0);
        CHECK(sglc_gguf_find_tensor(g, name) == ts);
        CHECK(ts->n_dims == want->n_dims && ts->type == want->type);
        for (uint32_t d = 0; d < 4; d++)
            CHECK(ts->ne[d] == (d < want->n_dims ? (int64_t)want->ne[d] : 1));
        CHECK(ts->nbytes == want->nbytes);
        CHECK((uintptr_t)ts->data % align == 0);
        int ok = 1;
        for (size_t j = 0; j < want->nbytes; j++)
            ok &= ((const uint8_t *)ts->data)[j] == data_byte(t, j);
        CHECKF(ok, "data of tensor %s does not round-trip", want->name);
    }
    sglc_gguf_close(g);
}

int main(void) {
    sglc_gguf_close(NULL);
    test_default_model_facts();

    snprintf(g_dir, sizeof g_dir, "/tmp/sglc_gguf_XXXXXX");
    if (!mkdtemp(g_dir)) abort();
    char path[256];
    buf b = {0};
    size_t header_len;

    for (int m = 0; m < MUT_COUNT; m++) {
        build(&b, (mutation)m, &header_len);
        snprintf(path, sizeof path, "%s/%s.gguf", g_dir, k_mut[m].name);
        write_file(path, b.p, b.len);
        if (!k_mut[m].expect) {
            check_valid(path, m == MUT_ALIGN_64 ? 64 : 32,
                        m == MUT_NAME_63 ? k_name_64 + 1 : k_tensors[1].name);
        } else {
            expect_fail(path, SGLC_ERR_FORMAT, k_mut[m].expect);
            sglc_gguf *g = NULL;
            sglc_err err = {{0}};
            sglc_gguf_open(&g, path, &err);
            fprintf(stderr, "  %-24s -> %s\n", k_mut[m].name, err.msg);
        }
        unlink(path);
    }

    /* every truncation of the valid file fails cleanly; the whole file opens */
    build(&b, MUT_NONE, &header_len);
    snprintf(path, sizeof path, "%s/cut.gguf", g_dir);
    int sweep_failures = g_test_failures;
    for (size_t n = 0; n < b.len; n++) {
        write_file(path, b.p, n);
        expect_fail(path, SGLC_ERR_FORMAT, n < header_len ? "truncated" : "past the end");
        if (g_test_failures != sweep_failures) {
            fprintf(stderr, "truncation sweep failed at length %zu\n", n);
            break;
        }
    }
    write_file(path, b.p, b.len);
    check_valid(path, 32, k_tensors[1].name);
    fprintf(stderr, "truncation sweep: %zu lengths (header %zu bytes)\n", b.len, header_len);
    unlink(path);

    /* missing file and a directory */
    snprintf(path, sizeof path, "%s/missing.gguf", g_dir);
    expect_fail(path, SGLC_ERR_IO, "cannot open");
    expect_fail(g_dir, SGLC_ERR_IO, "cannot open");

    free(b.p);
    rmdir(g_dir);
    TEST_MAIN_END();
}
