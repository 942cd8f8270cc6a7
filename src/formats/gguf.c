/* GGUF reader.
 *
 * The file is mmap'd read-only and parsed once, front to back, by a bounds-checked cursor; every
 * rule of ROBUSTNESS.md §25 is checked before a single value is handed out, so the getters below
 * never re-validate. Metadata values, string-array elements and tensor data are views into the
 * map; only key and tensor names are copied (NUL-terminated, for the C API), plus an offset index
 * per string array so element i is O(1).
 *
 * Counts read from the file are bounded by the bytes left in it before anything is allocated (a
 * KV takes at least MIN_KV_BYTES, a tensor info MIN_TENSOR_INFO_BYTES), so a hostile header can
 * make us allocate at most a small multiple of the file size. Names are checked for duplicates
 * through a hash table, so a file of millions of keys does not take quadratic time. Nested arrays
 * (array of arrays) are rejected: no GGUF writer emits them and ggml's own reader refuses them.
 *
 * Threading: an open sglc_gguf is immutable; any number of threads may read it concurrently. */
#include "formats/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant/ggml_types.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian values with memcpy and needs a little-endian host"
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64 /* GGML_MAX_NAME, NUL included */
/* u64 key length + 1 key byte + u32 type + 1 value byte */
#define MIN_KV_BYTES (8 + 1 + 4 + 1)
/* u64 name length + 1 name byte + u32 n_dims + 1 u64 dim + u32 type + u64 offset */
#define MIN_TENSOR_INFO_BYTES (8 + 1 + 4 + 8 + 4 + 8)

/* Block geometry of the ggml types this reader knows. Kept here rather than taken from
 * quant/ggml_types.c so the format layer has no dependency on the quantization code; whether a
 * type can be computed with is the model loader's decision. */
typedef struct {
    uint32_t type;
    uint32_t block_elems;
    uint32_t block_bytes;
} ggml_block_info;

static const ggml_block_info k_ggml_blocks[] = {
    {SGLC_GGML_TYPE_F32, 1, 4},
    {SGLC_GGML_TYPE_F16, 1, 2},
    {SGLC_GGML_TYPE_Q4_0, 32, 18},
    {SGLC_GGML_TYPE_Q4_1, 32, 20},
    {SGLC_GGML_TYPE_Q5_0, 32, 22},
    {SGLC_GGML_TYPE_Q5_1, 32, 24},
    {SGLC_GGML_TYPE_Q8_0, 32, 34},
    {SGLC_GGML_TYPE_Q8_1, 32, 36},
    {SGLC_GGML_TYPE_Q2_K, 256, 84},
    {SGLC_GGML_TYPE_Q3_K, 256, 110},
    {SGLC_GGML_TYPE_Q4_K, 256, 144},
    {SGLC_GGML_TYPE_Q5_K, 256, 176},
    {SGLC_GGML_TYPE_Q6_K, 256, 210},
    {SGLC_GGML_TYPE_Q8_K, 256, 292},
    {24 /* I8 */, 1, 1},
    {25 /* I16 */, 1, 2},
    {26 /* I32 */, 1, 4},
    {27 /* I64 */, 1, 8},
    {28 /* F64 */, 1, 8},
    {SGLC_GGML_TYPE_BF16, 1, 2},
};

static const ggml_block_info *ggml_block_lookup(uint32_t type) {
    for (size_t i = 0; i < sizeof k_ggml_blocks / sizeof k_ggml_blocks[0]; i++)
        if (k_ggml_blocks[i].type == type) return &k_ggml_blocks[i];
    return NULL;
}

/* Bytes of one scalar of each value type; 0 for string and array. */
static const uint8_t k_value_size[SGLC_GGUF_TYPE_COUNT] = {
    [SGLC_GGUF_UINT8] = 1,   [SGLC_GGUF_INT8] = 1,  [SGLC_GGUF_UINT16] = 2,  [SGLC_GGUF_INT16] = 2,
    [SGLC_GGUF_UINT32] = 4,  [SGLC_GGUF_INT32] = 4, [SGLC_GGUF_FLOAT32] = 4, [SGLC_GGUF_BOOL] = 1,
    [SGLC_GGUF_STRING] = 0,  [SGLC_GGUF_ARRAY] = 0, [SGLC_GGUF_UINT64] = 8,  [SGLC_GGUF_INT64] = 8,
    [SGLC_GGUF_FLOAT64] = 8,
};

static const char *const k_type_names[SGLC_GGUF_TYPE_COUNT] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};

static const char *value_type_name(uint32_t t) {
    return t < SGLC_GGUF_TYPE_COUNT ? k_type_names[t] : "invalid";
}

typedef struct {
    size_t key_off; /* key bytes in the map */
    size_t key_len;
    uint32_t type;
    uint32_t elem_type; /* arrays only */
    uint64_t count;     /* arrays: element count; strings: byte length */
    size_t val_off;     /* scalars: the value; strings: the bytes; arrays: first element */
    size_t *str_offs;   /* string arrays: map offset of each element's u64 length prefix */
} gguf_kv;

typedef struct {
    sglc_gguf_tensor pub;
    char name[GGUF_MAX_NAME];
    uint64_t offset; /* relative to the data section */
} gguf_tensor;

/* Open-addressing hash of names to indices; a slot holds index + 1, 0 is empty. */
typedef struct {
    uint64_t *slots;
    size_t mask;
} name_index;

struct sglc_gguf {
    char *path;
    const uint8_t *map; /* whole file, PROT_READ */
    size_t size;
    uint32_t version;
    size_t alignment;
    size_t data_off;
    int64_t n_kv;
    gguf_kv *kv;
    char *key_arena;  /* NUL-terminated key copies, back to back */
    char **key_names; /* into key_arena */
    int64_t n_tensors;
    gguf_tensor *tensors;
    name_index kv_index;
    name_index tensor_index;
};

/* ---- bounds-checked cursor ---------------------------------------------------------------- */

typedef struct {
    const char *path;
    const uint8_t *base;
    size_t size;
    size_t pos;
    sglc_err *err;
    /* What is being parsed, for messages: "KV" or "tensor info", and its index. */
    const char *ctx;
    int64_t ctx_index;
} cursor;

static size_t remaining(const cursor *c) {
    return c->size - c->pos;
}

static int truncated(cursor *c, const char *what, uint64_t need) {
    if (c->ctx)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: truncated reading %s of %s %lld (need %llu bytes at offset %zu, "
                            "file is %zu bytes)",
                            c->path, what, c->ctx, (long long)c->ctx_index,
                            (unsigned long long)need, c->pos, c->size);
    return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                        "%s: truncated reading %s (need %llu bytes at offset %zu, file is %zu "
                        "bytes)",
                        c->path, what, (unsigned long long)need, c->pos, c->size);
}

/* Outputs are zeroed before any failure return so no caller reads an unset value. */
static int take(cursor *c, uint64_t n, const char *what, size_t *off) {
    *off = 0;
    if (n > remaining(c)) return truncated(c, what, n);
    *off = c->pos;
    c->pos += (size_t)n;
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    *v = 0;
    size_t off = 0;
    int rc = take(c, 4, what, &off);
    if (rc) return rc;
    memcpy(v, c->base + off, 4);
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    *v = 0;
    size_t off = 0;
    int rc = take(c, 8, what, &off);
    if (rc) return rc;
    memcpy(v, c->base + off, 8);
    return 0;
}

/* A GGUF string: u64 length then bytes. The length is checked against the file before use. */
static int rd_str(cursor *c, size_t *off, size_t *len, const char *what) {
    *off = *len = 0;
    uint64_t n;
    int rc = rd_u64(c, &n, what);
    if (rc) return rc;
    if (n > remaining(c))
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: %s of %s %lld has length %llu, beyond the end of the file (%zu "
                            "bytes left: truncated or corrupt file)",
                            c->path, what, c->ctx, (long long)c->ctx_index, (unsigned long long)n,
                            remaining(c));
    *off = c->pos;
    *len = (size_t)n;
    c->pos += (size_t)n;
    return 0;
}

/* Grows *arr (of *cap elements of elem bytes) to hold at least need elements. need is bounded by
 * the file size by the callers, so the products cannot overflow. */
static int grow(void **arr, size_t *cap, size_t elem, size_t need) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap * 2 : 64;
    if (n < need) n = need;
    void *p = realloc(*arr, n * elem);
    if (!p) return -1;
    memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
    *arr = p;
    *cap = n;
    return 0;
}

/* ---- name hash ---------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

static int name_index_init(name_index *ix, int64_t n) {
    size_t cap = 16;
    while (cap < (size_t)n * 2)
        cap *= 2; /* n is bounded by the file size: no overflow */
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    return ix->slots ? 0 : -1;
}

static const char *kv_key(const sglc_gguf *g, int64_t i, size_t *len) {
    *len = g->kv[i].key_len;
    return (const char *)g->map + g->kv[i].key_off;
}

static const char *tensor_key(const sglc_gguf *g, int64_t i, size_t *len) {
    *len = strlen(g->tensors[i].name);
    return g->tensors[i].name;
}

typedef const char *(*name_of_fn)(const sglc_gguf *g, int64_t i, size_t *len);

/* Returns the index of name, or -1. On a miss with insert_as >= 0 it inserts insert_as. */
static int64_t name_index_probe(const name_index *ix, const sglc_gguf *g, name_of_fn name_of,
                                const char *name, size_t len, int64_t insert_as) {
    if (!ix->slots) return -1;
    size_t h = (size_t)hash_bytes(name, len) & ix->mask;
    for (;;) {
        uint64_t s = ix->slots[h];
        if (s == 0) {
            if (insert_as >= 0) ix->slots[h] = (uint64_t)insert_as + 1;
            return -1;
        }
        size_t elen;
        const char *e = name_of(g, (int64_t)(s - 1), &elen);
        if (elen == len && memcmp(e, name, len) == 0) return (int64_t)(s - 1);
        h = (h + 1) & ix->mask;
    }
}

/* ---- parsing ------------------------------------------------------------------------------ */

#define KEY_FMT "'%.*s'"
#define KEY_ARG(g, kv)                                                                             \
    (kv)->key_len > 200 ? 200 : (int)(kv)->key_len, (const char *)(g)->map + (kv)->key_off

static int parse_kv(sglc_gguf *g, cursor *c, gguf_kv *kv) {
    int rc = rd_str(c, &kv->key_off, &kv->key_len, "key");
    if (rc) return rc;
    if (kv->key_len == 0)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT, "%s: KV %lld has an empty key", c->path,
                            (long long)c->ctx_index);
    if (memchr(g->map + kv->key_off, 0, kv->key_len))
        return sglc_err_set(c->err, SGLC_ERR_FORMAT, "%s: key of KV %lld contains a NUL byte",
                            c->path, (long long)c->ctx_index);

    rc = rd_u32(c, &kv->type, "value type");
    if (rc) return rc;
    if (kv->type >= SGLC_GGUF_TYPE_COUNT)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT, "%s: key " KEY_FMT " has bad value type %u",
                            c->path, KEY_ARG(g, kv), kv->type);

    if (kv->type == SGLC_GGUF_STRING) {
        size_t len;
        rc = rd_str(c, &kv->val_off, &len, "string value");
        kv->count = len;
        return rc;
    }
    if (kv->type != SGLC_GGUF_ARRAY) return take(c, k_value_size[kv->type], "value", &kv->val_off);

    rc = rd_u32(c, &kv->elem_type, "array element type");
    if (rc) return rc;
    if (kv->elem_type >= SGLC_GGUF_TYPE_COUNT)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: array " KEY_FMT " has bad element type %u", c->path,
                            KEY_ARG(g, kv), kv->elem_type);
    if (kv->elem_type == SGLC_GGUF_ARRAY)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: array " KEY_FMT " is an array of arrays (nested arrays are not "
                            "supported)",
                            c->path, KEY_ARG(g, kv));
    rc = rd_u64(c, &kv->count, "array count");
    if (rc) return rc;
    kv->val_off = c->pos;

    if (kv->elem_type != SGLC_GGUF_STRING) {
        uint64_t bytes;
        if (__builtin_mul_overflow(kv->count, (uint64_t)k_value_size[kv->elem_type], &bytes))
            return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                                "%s: array " KEY_FMT ": count %llu x element size %u overflows",
                                c->path, KEY_ARG(g, kv), (unsigned long long)kv->count,
                                k_value_size[kv->elem_type]);
        size_t off;
        return take(c, bytes, "array data", &off);
    }

    /* Every string takes at least its 8-byte length: bound the count before allocating. */
    if (kv->count > remaining(c) / 8)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: string array " KEY_FMT " has count %llu, more than the %zu "
                            "bytes left in the file can hold (truncated or corrupt file)",
                            c->path, KEY_ARG(g, kv), (unsigned long long)kv->count, remaining(c));
    if (kv->count == 0) return 0;
    kv->str_offs = malloc((size_t)kv->count * sizeof *kv->str_offs);
    if (!kv->str_offs)
        return sglc_err_set(c->err, SGLC_ERR_NOMEM, "%s: out of memory indexing array " KEY_FMT,
                            c->path, KEY_ARG(g, kv));
    for (uint64_t j = 0; j < kv->count; j++) {
        kv->str_offs[j] = c->pos;
        size_t off, len;
        rc = rd_str(c, &off, &len, "string array element");
        if (rc) return rc;
    }
    return 0;
}

static int parse_kvs(sglc_gguf *g, cursor *c, uint64_t n_kv) {
    if (n_kv > remaining(c) / MIN_KV_BYTES)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: KV count %llu is absurd: at most %zu fit in the %zu bytes left "
                            "(truncated or corrupt file)",
                            c->path, (unsigned long long)n_kv, remaining(c) / MIN_KV_BYTES,
                            remaining(c));
    size_t cap = 0;
    c->ctx = "KV";
    for (uint64_t i = 0; i < n_kv; i++) {
        if (grow((void **)&g->kv, &cap, sizeof *g->kv, (size_t)i + 1))
            return sglc_err_set(c->err, SGLC_ERR_NOMEM, "%s: out of memory reading KVs", c->path);
        g->n_kv = (int64_t)i + 1; /* so close() frees a partly parsed entry */
        c->ctx_index = (int64_t)i;
        int rc = parse_kv(g, c, &g->kv[i]);
        if (rc) return rc;
    }
    if (name_index_init(&g->kv_index, g->n_kv))
        return sglc_err_set(c->err, SGLC_ERR_NOMEM, "%s: out of memory indexing keys", c->path);
    for (int64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        if (name_index_probe(&g->kv_index, g, kv_key, (const char *)g->map + kv->key_off,
                             kv->key_len, i) >= 0)
            return sglc_err_set(c->err, SGLC_ERR_FORMAT, "%s: duplicate key " KEY_FMT, c->path,
                                KEY_ARG(g, kv));
    }

    size_t arena_len = 0;
    for (int64_t i = 0; i < g->n_kv; i++)
        arena_len += g->kv[i].key_len + 1; /* <= file size */
    g->key_arena = malloc(arena_len ? arena_len : 1);
    g->key_names = malloc((size_t)(g->n_kv ? g->n_kv : 1) * sizeof *g->key_names);
    if (!g->key_arena || !g->key_names)
        return sglc_err_set(c->err, SGLC_ERR_NOMEM, "%s: out of memory copying keys", c->path);
    char *p = g->key_arena;
    for (int64_t i = 0; i < g->n_kv; i++) {
        memcpy(p, g->map + g->kv[i].key_off, g->kv[i].key_len);
        p[g->kv[i].key_len] = 0;
        g->key_names[i] = p;
        p += g->kv[i].key_len + 1;
    }
    return 0;
}

static int apply_alignment(sglc_gguf *g, cursor *c) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = sglc_gguf_find_key(g, "general.alignment");
    if (i < 0) return 0;
    const gguf_kv *kv = &g->kv[i];
    if (kv->type != SGLC_GGUF_UINT32)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: general.alignment has type %s, expected uint32", c->path,
                            value_type_name(kv->type));
    uint32_t a;
    memcpy(&a, g->map + kv->val_off, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: general.alignment is %u, not a power of two", c->path, a);
    g->alignment = a;
    return 0;
}

static int parse_tensor_info(cursor *c, gguf_tensor *te) {
    sglc_gguf_tensor *t = &te->pub;
    size_t name_off, name_len;
    int rc = rd_str(c, &name_off, &name_len, "name");
    if (rc) return rc;
    const char *name = (const char *)c->base + name_off;
    long long idx = (long long)c->ctx_index;
    if (name_len == 0)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT, "%s: tensor %lld has an empty name", c->path,
                            idx);
    if (name_len >= GGUF_MAX_NAME)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: tensor %lld has a name of %zu bytes (limit %d): '%.*s...'",
                            c->path, idx, name_len, GGUF_MAX_NAME - 1, GGUF_MAX_NAME, name);
    if (memchr(name, 0, name_len))
        return sglc_err_set(c->err, SGLC_ERR_FORMAT, "%s: name of tensor %lld contains a NUL byte",
                            c->path, idx);
    memcpy(te->name, name, name_len);
    te->name[name_len] = 0;
    t->name = te->name; /* re-pointed after the array stops moving */
    const char *tn = te->name;

    rc = rd_u32(c, &t->n_dims, "n_dims");
    if (rc) return rc;
    if (t->n_dims == 0 || t->n_dims > SGLC_GGUF_MAX_DIMS)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: tensor '%s' has %u dimensions (must be 1..%d)", c->path, tn,
                            t->n_dims, SGLC_GGUF_MAX_DIMS);
    int64_t n_elems = 1;
    for (uint32_t d = 0; d < SGLC_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims) continue;
        uint64_t v;
        rc = rd_u64(c, &v, "dimension");
        if (rc) return rc;
        if (v == 0 || v > (uint64_t)INT64_MAX)
            return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                                "%s: tensor '%s' has dimension %u = %lld (must be > 0)", c->path,
                                tn, d, (long long)v);
        t->ne[d] = (int64_t)v;
        if (__builtin_mul_overflow(n_elems, t->ne[d], &n_elems))
            return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                                "%s: tensor '%s': product of dimensions overflows", c->path, tn);
    }
    rc = rd_u32(c, &t->type, "ggml type");
    if (rc) return rc;
    const ggml_block_info *bi = ggml_block_lookup(t->type);
    if (!bi)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT, "%s: tensor '%s' has unknown ggml type %u",
                            c->path, tn, t->type);
    if (t->ne[0] % bi->block_elems != 0)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: tensor '%s': row length %lld is not a multiple of the block "
                            "size %u of ggml type %u",
                            c->path, tn, (long long)t->ne[0], bi->block_elems, t->type);
    uint64_t nbytes;
    if (__builtin_mul_overflow((uint64_t)(n_elems / bi->block_elems), (uint64_t)bi->block_bytes,
                               &nbytes) ||
        nbytes > SIZE_MAX)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT, "%s: tensor '%s': byte size overflows",
                            c->path, tn);
    t->nbytes = (size_t)nbytes;
    return rd_u64(c, &te->offset, "data offset");
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a;
    const gguf_tensor *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Places every tensor in the data section: aligned, inside the file, no two overlapping. */
static int place_tensors(sglc_gguf *g, cursor *c) {
    size_t header_end = c->pos, data_off;
    if (__builtin_add_overflow(header_end, g->alignment - 1, &data_off))
        return sglc_err_set(c->err, SGLC_ERR_FORMAT, "%s: data section offset overflows", c->path);
    data_off &= ~(g->alignment - 1);
    g->data_off = data_off;
    size_t data_size = data_off <= g->size ? g->size - data_off : 0;

    for (int64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *te = &g->tensors[i];
        if (te->offset % g->alignment != 0)
            return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                                "%s: tensor '%s' has offset %llu, not a multiple of the "
                                "alignment %zu",
                                c->path, te->name, (unsigned long long)te->offset, g->alignment);
        uint64_t end;
        if (__builtin_add_overflow(te->offset, (uint64_t)te->pub.nbytes, &end) || end > data_size)
            return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                                "%s: tensor '%s' data (offset %llu, %zu bytes) runs past the end "
                                "of the file (data section is %zu bytes at offset %zu)",
                                c->path, te->name, (unsigned long long)te->offset, te->pub.nbytes,
                                data_size, data_off);
        te->pub.data = g->map + data_off + te->offset;
    }
    if (g->n_tensors < 2) return 0;

    gguf_tensor **order = malloc((size_t)g->n_tensors * sizeof *order);
    if (!order)
        return sglc_err_set(c->err, SGLC_ERR_NOMEM, "%s: out of memory checking tensor overlap",
                            c->path);
    for (int64_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    qsort(order, (size_t)g->n_tensors, sizeof *order, cmp_tensor_offset);
    int rc = 0;
    for (int64_t i = 1; i < g->n_tensors; i++) {
        const gguf_tensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->pub.nbytes > b->offset) { /* no overflow: both checked above */
            rc = sglc_err_set(c->err, SGLC_ERR_FORMAT,
                              "%s: tensors '%s' (offset %llu, %zu bytes) and '%s' (offset %llu) "
                              "overlap",
                              c->path, a->name, (unsigned long long)a->offset, a->pub.nbytes,
                              b->name, (unsigned long long)b->offset);
            break;
        }
    }
    free(order);
    return rc;
}

static int parse_tensors(sglc_gguf *g, cursor *c, uint64_t n_tensors) {
    if (n_tensors > remaining(c) / MIN_TENSOR_INFO_BYTES)
        return sglc_err_set(c->err, SGLC_ERR_FORMAT,
                            "%s: tensor count %llu is absurd: at most %zu tensor infos fit in the "
                            "%zu bytes left (truncated or corrupt file)",
                            c->path, (unsigned long long)n_tensors,
                            remaining(c) / MIN_TENSOR_INFO_BYTES, remaining(c));
    size_t cap = 0;
    c->ctx = "tensor info";
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (grow((void **)&g->tensors, &cap, sizeof *g->tensors, (size_t)i + 1))
            return sglc_err_set(c->err, SGLC_ERR_NOMEM, "%s: out of memory reading tensor infos",
                                c->path);
        g->n_tensors = (int64_t)i + 1;
        c->ctx_index = (int64_t)i;
        int rc = parse_tensor_info(c, &g->tensors[i]);
        if (rc) return rc;
    }
    c->ctx = NULL;
    for (int64_t i = 0; i < g->n_tensors; i++)
        g->tensors[i].pub.name = g->tensors[i].name;

    if (name_index_init(&g->tensor_index, g->n_tensors))
        return sglc_err_set(c->err, SGLC_ERR_NOMEM, "%s: out of memory indexing tensors", c->path);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const char *name = g->tensors[i].name;
        if (name_index_probe(&g->tensor_index, g, tensor_key, name, strlen(name), i) >= 0)
            return sglc_err_set(c->err, SGLC_ERR_FORMAT, "%s: duplicate tensor name '%s'", c->path,
                                name);
    }
    return place_tensors(g, c);
}

static int parse(sglc_gguf *g, sglc_err *err) {
    cursor c = {.path = g->path, .base = g->map, .size = g->size, .err = err};
    size_t off;
    int rc = take(&c, 4, "magic", &off);
    if (rc) return rc;
    if (memcmp(g->map, GGUF_MAGIC, 4) != 0)
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: bad magic (not a GGUF file)", g->path);
    rc = rd_u32(&c, &g->version, "version");
    if (rc) return rc;
    if (g->version == 1)
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "%s: GGUF version 1 is obsolete and not supported (need 2 or 3)",
                            g->path);
    if (g->version != 2 && g->version != 3) {
        uint32_t swapped = __builtin_bswap32(g->version);
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: unknown GGUF version %u%s", g->path,
                            g->version,
                            swapped == 2 || swapped == 3 ? " (a big-endian file?)" : "");
    }
    uint64_t n_tensors, n_kv;
    rc = rd_u64(&c, &n_tensors, "tensor count");
    if (rc) return rc;
    rc = rd_u64(&c, &n_kv, "KV count");
    if (rc) return rc;
    rc = parse_kvs(g, &c, n_kv);
    if (rc) return rc;
    rc = apply_alignment(g, &c);
    if (rc) return rc;
    return parse_tensors(g, &c, n_tensors);
}

/* ---- public API --------------------------------------------------------------------------- */

int sglc_gguf_open(sglc_gguf **out, const char *path, sglc_err *err) {
    *out = NULL;
    int rc = 0;
    int fd = -1;
    sglc_gguf *g = calloc(1, sizeof *g);
    if (!g) return sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory", path);
    g->path = strdup(path);
    if (!g->path) {
        rc = sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: not a regular file", path);
        goto cleanup;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: file too large", path);
        goto cleanup;
    }
    g->size = (size_t)st.st_size;
    if (g->size > 0) { /* mmap of 0 bytes fails; an empty file is reported as truncated */
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rc = sglc_err_set(err, SGLC_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
            goto cleanup;
        }
        g->map = m;
    }
    rc = parse(g, err);

cleanup:
    if (fd >= 0) close(fd);
    if (rc) {
        sglc_gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

void sglc_gguf_close(sglc_gguf *g) {
    if (!g) return;
    if (g->map) munmap((void *)g->map, g->size);
    for (int64_t i = 0; i < g->n_kv; i++)
        free(g->kv[i].str_offs);
    free(g->kv);
    free(g->key_arena);
    free(g->key_names);
    free(g->tensors);
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    free(g->path);
    free(g);
}

uint32_t sglc_gguf_version(const sglc_gguf *g) {
    return g->version;
}
size_t sglc_gguf_alignment(const sglc_gguf *g) {
    return g->alignment;
}

int64_t sglc_gguf_find_key(const sglc_gguf *g, const char *key) {
    return name_index_probe(&g->kv_index, g, kv_key, key, strlen(key), -1);
}

int64_t sglc_gguf_n_kv(const sglc_gguf *g) {
    return g->n_kv;
}

const char *sglc_gguf_key_name(const sglc_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->key_names[i] : NULL;
}

sglc_gguf_type sglc_gguf_kv_type(const sglc_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? (sglc_gguf_type)g->kv[i].type : SGLC_GGUF_TYPE_COUNT;
}

/* Finds key; returns 1 when absent, else 0 with *kv set. */
static int lookup(const sglc_gguf *g, const char *key, const gguf_kv **kv) {
    int64_t i = sglc_gguf_find_key(g, key);
    if (i < 0) return 1;
    *kv = &g->kv[i];
    return 0;
}

static int wrong_type(const sglc_gguf *g, const char *key, const gguf_kv *kv, const char *want,
                      sglc_err *err) {
    return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", g->path, key,
                        value_type_name(kv->type), want);
}

/* Reads any integer value as a sign flag and magnitude-preserving pair. Returns 0 when kv is not
 * an integer. */
static int read_int(const sglc_gguf *g, const gguf_kv *kv, int *negative, uint64_t *u, int64_t *s) {
    const uint8_t *p = g->map + kv->val_off;
    *negative = 0;
    switch (kv->type) {
    case SGLC_GGUF_UINT8: *u = p[0]; break;
    case SGLC_GGUF_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        *u = v;
        break;
    }
    case SGLC_GGUF_UINT32: {
        uint32_t v;
        memcpy(&v, p, 4);
        *u = v;
        break;
    }
    case SGLC_GGUF_UINT64: memcpy(u, p, 8); break;
    case SGLC_GGUF_INT8: *s = (int8_t)p[0]; goto sig;
    case SGLC_GGUF_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        *s = v;
        goto sig;
    }
    case SGLC_GGUF_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        *s = v;
        goto sig;
    }
    case SGLC_GGUF_INT64: memcpy(s, p, 8); goto sig;
    default: return 0;
    }
    *s = *u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)*u;
    return 1;
sig:
    *negative = *s < 0;
    *u = *negative ? 0 : (uint64_t)*s;
    return 1;
}

int sglc_gguf_get_u32(const sglc_gguf *g, const char *key, uint32_t *out, sglc_err *err) {
    const gguf_kv *kv;
    if (lookup(g, key, &kv)) return 1;
    int neg;
    uint64_t u;
    int64_t s;
    if (!read_int(g, kv, &neg, &u, &s)) return wrong_type(g, key, kv, "an integer", err);
    if (neg || u > UINT32_MAX)
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: key '%s' value %s%llu does not fit uint32",
                            g->path, key, neg ? "-" : "",
                            neg ? 0ull - (unsigned long long)s : (unsigned long long)u);
    *out = (uint32_t)u;
    return 0;
}

int sglc_gguf_get_i64(const sglc_gguf *g, const char *key, int64_t *out, sglc_err *err) {
    const gguf_kv *kv;
    if (lookup(g, key, &kv)) return 1;
    int neg;
    uint64_t u;
    int64_t s;
    if (!read_int(g, kv, &neg, &u, &s)) return wrong_type(g, key, kv, "an integer", err);
    if (!neg && u > (uint64_t)INT64_MAX)
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: key '%s' value %llu does not fit int64",
                            g->path, key, (unsigned long long)u);
    *out = s;
    return 0;
}

int sglc_gguf_get_f32(const sglc_gguf *g, const char *key, float *out, sglc_err *err) {
    const gguf_kv *kv;
    if (lookup(g, key, &kv)) return 1;
    if (kv->type == SGLC_GGUF_FLOAT32) {
        memcpy(out, g->map + kv->val_off, 4);
        return 0;
    }
    if (kv->type == SGLC_GGUF_FLOAT64) {
        double d;
        memcpy(&d, g->map + kv->val_off, 8);
        *out = (float)d;
        return 0;
    }
    return wrong_type(g, key, kv, "float32 or float64", err);
}

int sglc_gguf_get_bool(const sglc_gguf *g, const char *key, int *out, sglc_err *err) {
    const gguf_kv *kv;
    if (lookup(g, key, &kv)) return 1;
    if (kv->type != SGLC_GGUF_BOOL) return wrong_type(g, key, kv, "bool", err);
    *out = g->map[kv->val_off] != 0;
    return 0;
}

int sglc_gguf_get_str(const sglc_gguf *g, const char *key, const char **s, size_t *len,
                      sglc_err *err) {
    const gguf_kv *kv;
    if (lookup(g, key, &kv)) return 1;
    if (kv->type != SGLC_GGUF_STRING) return wrong_type(g, key, kv, "string", err);
    *s = (const char *)g->map + kv->val_off;
    *len = (size_t)kv->count;
    return 0;
}

int sglc_gguf_get_arr(const sglc_gguf *g, const char *key, sglc_gguf_type *elem_type,
                      uint64_t *count, const void **data, sglc_err *err) {
    const gguf_kv *kv;
    if (lookup(g, key, &kv)) return 1;
    if (kv->type != SGLC_GGUF_ARRAY) return wrong_type(g, key, kv, "array", err);
    *elem_type = (sglc_gguf_type)kv->elem_type;
    *count = kv->count;
    *data = g->map + kv->val_off;
    return 0;
}

const char *sglc_gguf_get_arr_str(const sglc_gguf *g, int64_t kv_i, uint64_t i, size_t *len) {
    if (kv_i < 0 || kv_i >= g->n_kv) return NULL;
    const gguf_kv *kv = &g->kv[kv_i];
    if (kv->type != SGLC_GGUF_ARRAY || kv->elem_type != SGLC_GGUF_STRING || i >= kv->count)
        return NULL;
    uint64_t n;
    memcpy(&n, g->map + kv->str_offs[i], 8);
    *len = (size_t)n;
    return (const char *)g->map + kv->str_offs[i] + 8;
}

int64_t sglc_gguf_n_tensors(const sglc_gguf *g) {
    return g->n_tensors;
}

const sglc_gguf_tensor *sglc_gguf_tensor_at(const sglc_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i].pub : NULL;
}

const sglc_gguf_tensor *sglc_gguf_find_tensor(const sglc_gguf *g, const char *name) {
    int64_t i = name_index_probe(&g->tensor_index, g, tensor_key, name, strlen(name), -1);
    return i >= 0 ? &g->tensors[i].pub : NULL;
}
