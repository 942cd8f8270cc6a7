/* safetensors reader.
 *
 * A safetensors file is a little-endian u64 header length N, N bytes of JSON
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`), then the
 * data section; offsets are relative to the start of the data. Each file is mmap'd read-only and
 * its header validated against every rule of ROBUSTNESS.md §24 before anything is handed out;
 * tensors are zero-copy views into the map. Only names and metadata strings are copied.
 *
 * JSON goes through cJSON, which does not check UTF-8, keeps duplicate keys, turns a \u0000
 * escape into a silently shortened C string and recurses once per nesting level. A cheap
 * pre-scan of the raw bytes (json_prescan) therefore rejects invalid UTF-8, NUL bytes, raw
 * control characters or \u0000 inside strings and nesting deeper than ST_MAX_JSON_DEPTH (a valid
 * header nests 3 deep) before cJSON sees the text; duplicates are found through a hash of names.
 * cJSON stores numbers as doubles, so integer fields must be whole numbers below 2^53, where a
 * double is exact.
 *
 * Sharded models: model.safetensors.index.json maps each tensor name to a shard file in the same
 * folder. Shards are opened once each, in sorted file-name order (file_index follows that order),
 * and must agree exactly with the index: every listed tensor is in its shard, every tensor of a
 * shard is listed under that shard, no name appears in two shards.
 *
 * Alignment: the format does not align the data section (it starts at 8 + N, and writers pad N
 * only to 8), so a tensor's data pointer may be misaligned for its element type. Consumers must
 * read through memcpy or check ((uintptr_t)data % sglc_st_dtype_size(dtype)) before casting.
 *
 * Threading: an open sglc_safetensors is immutable; any number of threads may read it. cJSON
 * writes a process-global error slot on every parse, so concurrent opens race on that slot
 * (harmless, but ThreadSanitizer reports it). */
#include "formats/safetensors.h"

#include "base/utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads the header length with memcpy and needs a little-endian host"
#endif

#define ST_MAX_HEADER 100000000ull /* the reference loader's MAX_HEADER_SIZE (100 MB) */
#define ST_MAX_INDEX_BYTES 100000000ull
#define ST_MAX_JSON_DEPTH 64
#define ST_EXACT_INT_LIMIT 9007199254740992.0 /* 2^53 */
#define ST_SINGLE_NAME "model.safetensors"
#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_METADATA_KEY "__metadata__"

static const struct {
    const char *name;
    uint8_t size;
} k_dtypes[SGLC_ST_DTYPE_COUNT] = {
    [SGLC_ST_BOOL] = {"BOOL", 1}, [SGLC_ST_U8] = {"U8", 1},   [SGLC_ST_I8] = {"I8", 1},
    [SGLC_ST_U16] = {"U16", 2},   [SGLC_ST_I16] = {"I16", 2}, [SGLC_ST_F16] = {"F16", 2},
    [SGLC_ST_BF16] = {"BF16", 2}, [SGLC_ST_U32] = {"U32", 4}, [SGLC_ST_I32] = {"I32", 4},
    [SGLC_ST_F32] = {"F32", 4},   [SGLC_ST_U64] = {"U64", 8}, [SGLC_ST_I64] = {"I64", 8},
    [SGLC_ST_F64] = {"F64", 8},
};

/* dtypes the safetensors library defines that sglc does not handle: refused by name. */
static const char *const k_unsupported_dtypes[] = {
    "F4",      "F6_E2M3",     "F6_E3M2",     "F8_E4M3", "F8_E5M2",
    "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64",
};

typedef struct {
    char *path;
    const uint8_t *map; /* whole file, PROT_READ */
    size_t size;
} st_file;

/* Open-addressing hash of names to indices; a slot holds index + 1, 0 is empty. The names live
 * elsewhere and are fetched through a name_at_fn. */
typedef struct {
    size_t *slots;
    size_t mask;
} name_hash;

typedef const char *(*name_at_fn)(const void *ctx, size_t i);

struct sglc_safetensors {
    int32_t n_files;
    st_file *files;
    int64_t n_tensors;
    size_t tensors_cap;
    sglc_st_tensor *tensors; /* names malloc'd */
    name_hash tensor_hash;
    size_t n_meta; /* __metadata__ of files[0] */
    char **meta_keys;
    char **meta_vals;
};

/* ---- messages ----------------------------------------------------------------------------- */

/* A name as it may appear in a one-line message: quoted, control bytes shown as '?', cut at a
 * UTF-8 boundary after about 80 bytes. Returned by value so several fit in one printf. */
typedef struct {
    char s[96];
} shown;

static shown show(const char *name) {
    shown o;
    size_t n = 0, i = 0;
    o.s[n++] = '\'';
    for (; name[i] && n < 81; i++) {
        unsigned char c = (unsigned char)name[i];
        o.s[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (name[i]) {
        if (((unsigned char)name[i] & 0xC0) == 0x80) { /* cut inside a character: drop it */
            while (n > 1 && ((unsigned char)o.s[n - 1] & 0xC0) == 0x80)
                n--;
            if (n > 1 && (unsigned char)o.s[n - 1] >= 0xC0) n--;
        }
        memcpy(o.s + n, "...", 3);
        n += 3;
    }
    o.s[n++] = '\'';
    o.s[n] = 0;
    return o;
}

/* ---- name hash ---------------------------------------------------------------------------- */

static size_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (size_t)h;
}

/* n is bounded by the size of a header or index (<= 100 MB): the doubling cannot overflow. */
static int name_hash_init(name_hash *h, size_t n) {
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    h->slots = calloc(cap, sizeof *h->slots);
    h->mask = cap - 1;
    return h->slots ? 0 : -1;
}

/* Returns the index of name, or -1. On a miss with insert_as >= 0 it inserts insert_as. */
static int64_t name_hash_probe(const name_hash *h, name_at_fn at, const void *ctx, const char *name,
                               int64_t insert_as) {
    if (!h->slots) return -1;
    size_t i = hash_str(name) & h->mask;
    for (;;) {
        size_t s = h->slots[i];
        if (s == 0) {
            if (insert_as >= 0) h->slots[i] = (size_t)insert_as + 1;
            return -1;
        }
        if (strcmp(at(ctx, s - 1), name) == 0) return (int64_t)(s - 1);
        i = (i + 1) & h->mask;
    }
}

static const char *child_name_at(const void *ctx, size_t i) {
    return ((const cJSON *const *)ctx)[i]->string;
}

static const char *tensor_name_at(const void *ctx, size_t i) {
    return ((const sglc_safetensors *)ctx)->tensors[i].name;
}

/* The members of a JSON object as an array (borrowed from the tree); *n = 0 for an empty one. */
static int object_members(const cJSON *obj, cJSON ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    size_t count = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        count++;
    if (count == 0) return 0;
    cJSON **arr = malloc(count * sizeof *arr);
    if (!arr) return -1;
    size_t i = 0;
    for (cJSON *c = obj->child; c; c = c->next)
        arr[i++] = c;
    *out = arr;
    *n = count;
    return 0;
}

/* Finds the first duplicate key among members; returns its name or NULL. *nomem on failure. */
static const char *first_duplicate(cJSON *const *members, size_t n, int *nomem) {
    *nomem = 0;
    if (n < 2) return NULL;
    name_hash h;
    if (name_hash_init(&h, n)) {
        *nomem = 1;
        return NULL;
    }
    const char *dup = NULL;
    for (size_t i = 0; i < n && !dup; i++)
        if (name_hash_probe(&h, child_name_at, members, members[i]->string, (int64_t)i) >= 0)
            dup = members[i]->string;
    free(h.slots);
    return dup;
}

/* ---- JSON --------------------------------------------------------------------------------- */

/* What cJSON does not check (see the top of the file). Returns NULL, or the problem with *at set
 * to its byte offset. */
static const char *json_prescan(const uint8_t *p, size_t n, size_t *at) {
    int depth = 0, in_str = 0;
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        *at = i;
        if (c == 0) return "NUL byte";
        if (c >= 0x80) {
            int k = sglc_utf8_scan(p + i, n - i);
            if (k <= 0) return "invalid UTF-8";
            i += (size_t)k;
            continue;
        }
        if (in_str) {
            if (c < 0x20) return "raw control character inside a string";
            if (c == '"') in_str = 0;
            if (c == '\\' && i + 1 < n) {
                if (p[i + 1] == 'u' && n - i >= 6 && memcmp(p + i + 2, "0000", 4) == 0)
                    return "\\u0000 escape inside a string";
                if (p[i + 1] < 0x80) i++; /* so an escaped quote does not end the string */
            }
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > ST_MAX_JSON_DEPTH) return "nesting deeper than 64 levels";
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
        i++;
    }
    return NULL;
}

/* Parses n bytes of JSON that must be one object. what names the text in messages. */
static int parse_json_object(const char *path, const char *what, const uint8_t *bytes, size_t n,
                             cJSON **out, sglc_err *err) {
    *out = NULL;
    size_t at = 0;
    const char *problem = json_prescan(bytes, n, &at);
    if (problem)
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: %s is not valid: %s at byte %zu", path, what,
                            problem, at);
    char *text = malloc(n + 1); /* cJSON wants a NUL-terminated copy; the scan excluded NULs */
    if (!text) return sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory reading %s", path, what);
    if (n) memcpy(text, bytes, n); /* bytes is NULL for an empty file */
    text[n] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    int rc = 0;
    if (!root) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s: %s is not valid JSON (error at byte %zu)",
                          path, what, end ? (size_t)(end - text) : (size_t)0);
        goto cleanup;
    }
    for (const char *q = end; *q; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                              "%s: %s is not valid JSON (trailing bytes at byte %zu)", path, what,
                              (size_t)(q - text));
            goto cleanup;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s: %s is not a JSON object", path, what);
        goto cleanup;
    }
cleanup:
    free(text);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return 0;
}

/* An integer field: a whole number in [0, 2^53), the range in which cJSON's double is exact, so
 * 2^53 + 1 cannot pass for 2^53. NaN and infinities fail the range test. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < ST_EXACT_INT_LIMIT)) return -1;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return -1;
    *out = u;
    return 0;
}

/* ---- one file ----------------------------------------------------------------------------- */

typedef struct {
    const cJSON *item; /* borrowed: the tensor's entry in the header tree */
    sglc_st_dtype dtype;
    int32_t n_dims;
    int64_t shape[SGLC_ST_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

static int map_file(st_file *f, sglc_err *err) {
    const char *path = f->path;
    int rc = 0;
    /* O_NONBLOCK so a FIFO given as a path fails the S_ISREG check instead of hanging open() */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: not a regular file", path);
        goto cleanup;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: file too large", path);
        goto cleanup;
    }
    f->size = (size_t)sb.st_size;
    if (f->size > 0) { /* mmap of 0 bytes fails; an empty file is reported as too short */
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rc = sglc_err_set(err, SGLC_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
            goto cleanup;
        }
        f->map = m;
    }
cleanup:
    close(fd);
    return rc;
}

static int dtype_from_name(const char *path, const char *tensor, const char *name,
                           sglc_st_dtype *out, sglc_err *err) {
    for (int t = 0; t < SGLC_ST_DTYPE_COUNT; t++) {
        if (strcmp(name, k_dtypes[t].name) == 0) {
            *out = (sglc_st_dtype)t;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof k_unsupported_dtypes / sizeof k_unsupported_dtypes[0]; i++)
        if (strcmp(name, k_unsupported_dtypes[i]) == 0)
            return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s has unsupported dtype %s",
                                path, show(tensor).s, name);
    return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s has unknown dtype %s", path,
                        show(tensor).s, show(name).s);
}

/* Checks one tensor entry on its own: fields, types, shape, offsets within the data section and
 * their span against shape x dtype size. */
static int parse_entry(const char *path, const cJSON *item, uint64_t data_len, st_entry *e,
                       sglc_err *err) {
    const char *tn = item->string;
    e->item = item;
    if (!cJSON_IsObject(item))
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s: entry is not a JSON object", path,
                            show(tn).s);
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON *c = item->child; c; c = c->next) {
        const cJSON **slot = strcmp(c->string, "dtype") == 0          ? &dtype
                             : strcmp(c->string, "shape") == 0        ? &shape
                             : strcmp(c->string, "data_offsets") == 0 ? &offsets
                                                                      : NULL;
        if (!slot) continue; /* unknown fields are ignored, as by the reference loader */
        if (*slot)
            return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s has two '%s' fields", path,
                                show(tn).s, c->string);
        *slot = c;
    }

    if (!dtype || !cJSON_IsString(dtype))
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s: %s", path, show(tn).s,
                            dtype ? "dtype is not a string" : "missing dtype");
    int rc = dtype_from_name(path, tn, dtype->valuestring, &e->dtype, err);
    if (rc) return rc;

    if (!shape || !cJSON_IsArray(shape))
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s: %s", path, show(tn).s,
                            shape ? "shape is not an array" : "missing shape");
    e->n_dims = 0;
    uint64_t n_elems = 1;
    int overflow = 0;
    for (const cJSON *d = shape->child; d; d = d->next) {
        if (e->n_dims == SGLC_ST_MAX_DIMS)
            return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s has more than %d dimensions",
                                path, show(tn).s, SGLC_ST_MAX_DIMS);
        uint64_t v;
        if (json_uint(d, &v))
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "%s: tensor %s: shape[%d] is not an integer in [0, 2^53)", path,
                                show(tn).s, e->n_dims);
        e->shape[e->n_dims++] = (int64_t)v;
        /* checked in order, like the reference loader: a later 0 does not excuse an overflow */
        if (!overflow && __builtin_mul_overflow(n_elems, v, &n_elems)) overflow = 1;
    }
    for (int32_t d = e->n_dims; d < SGLC_ST_MAX_DIMS; d++)
        e->shape[d] = 1;
    uint64_t nbytes = 0;
    if (overflow || n_elems > (uint64_t)INT64_MAX ||
        __builtin_mul_overflow(n_elems, (uint64_t)k_dtypes[e->dtype].size, &nbytes))
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s: product of shape overflows", path,
                            show(tn).s);

    if (!offsets || !cJSON_IsArray(offsets))
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s: %s", path, show(tn).s,
                            offsets ? "data_offsets is not an array" : "missing data_offsets");
    const cJSON *b = offsets->child, *en = b ? b->next : NULL;
    if (!b || !en || en->next)
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "%s: tensor %s: data_offsets must have exactly 2 elements", path,
                            show(tn).s);
    if (json_uint(b, &e->begin) || json_uint(en, &e->end))
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "%s: tensor %s: data_offsets are not integers in [0, 2^53)", path,
                            show(tn).s);
    if (e->begin > e->end)
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "%s: tensor %s: data_offsets begin %llu > end %llu", path, show(tn).s,
                            (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > data_len)
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "%s: tensor %s: data [%llu, %llu) runs past the end of the file "
                            "(data section is %llu bytes)",
                            path, show(tn).s, (unsigned long long)e->begin,
                            (unsigned long long)e->end, (unsigned long long)data_len);
    if (e->end - e->begin != nbytes)
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "%s: tensor %s: data_offsets span %llu bytes but shape x %s size "
                            "needs %llu",
                            path, show(tn).s, (unsigned long long)(e->end - e->begin),
                            k_dtypes[e->dtype].name, (unsigned long long)nbytes);
    return 0;
}

static int cmp_entry_offsets(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Sorted by (begin, end), the tensors must tile [0, data_len) exactly. */
static int check_layout(const char *path, st_entry *entries, size_t n, uint64_t data_len,
                        sglc_err *err) {
    if (n == 0) {
        if (data_len == 0) return 0;
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "%s: no tensors but the data section is %llu bytes", path,
                            (unsigned long long)data_len);
    }
    st_entry **order = malloc(n * sizeof *order);
    if (!order)
        return sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory checking the data layout",
                            path);
    for (size_t i = 0; i < n; i++)
        order[i] = &entries[i];
    qsort(order, n, sizeof *order, cmp_entry_offsets);
    int rc = 0;
    uint64_t pos = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const st_entry *e = order[i];
        if (e->begin > pos)
            rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                              "%s: gap in the data: bytes [%llu, %llu) before tensor %s belong to "
                              "no tensor",
                              path, (unsigned long long)pos, (unsigned long long)e->begin,
                              show(e->item->string).s);
        else if (e->begin < pos)
            rc = sglc_err_set(
                err, SGLC_ERR_FORMAT, "%s: tensors %s [%llu, %llu) and %s [%llu, %llu) overlap",
                path, show(order[i - 1]->item->string).s, (unsigned long long)order[i - 1]->begin,
                (unsigned long long)order[i - 1]->end, show(e->item->string).s,
                (unsigned long long)e->begin, (unsigned long long)e->end);
        pos = e->end;
    }
    if (!rc && pos != data_len)
        rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                          "%s: tensors end at byte %llu of the data but the data section is %llu "
                          "bytes (trailing bytes)",
                          path, (unsigned long long)pos, (unsigned long long)data_len);
    free(order);
    return rc;
}

static int parse_metadata(sglc_safetensors *st, const char *path, const cJSON *meta, int keep,
                          sglc_err *err) {
    if (!cJSON_IsObject(meta))
        return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: __metadata__ is not a JSON object", path);
    cJSON **members = NULL;
    size_t n = 0;
    int nomem = 0, rc = 0;
    if (object_members(meta, &members, &n)) goto nomem;
    for (size_t i = 0; i < n; i++) {
        if (!cJSON_IsString(members[i])) {
            rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                              "%s: __metadata__ value of key %s is not a string", path,
                              show(members[i]->string).s);
            goto cleanup;
        }
    }
    const char *dup = first_duplicate(members, n, &nomem);
    if (nomem) goto nomem;
    if (dup) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s: duplicate __metadata__ key %s", path,
                          show(dup).s);
        goto cleanup;
    }
    if (!keep || n == 0) goto cleanup;
    st->meta_keys = calloc(n, sizeof *st->meta_keys);
    st->meta_vals = calloc(n, sizeof *st->meta_vals);
    if (!st->meta_keys || !st->meta_vals) goto nomem;
    st->n_meta = n;
    for (size_t i = 0; i < n; i++) {
        st->meta_keys[i] = strdup(members[i]->string);
        st->meta_vals[i] = strdup(members[i]->valuestring);
        if (!st->meta_keys[i] || !st->meta_vals[i]) goto nomem;
    }
    goto cleanup;
nomem:
    rc = sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory reading __metadata__", path);
cleanup:
    free(members);
    return rc;
}

static int append_tensors(sglc_safetensors *st, int32_t fi, const st_entry *entries, size_t n,
                          const uint8_t *data) {
    if (n > st->tensors_cap - (size_t)st->n_tensors) {
        size_t need = (size_t)st->n_tensors + n, cap = st->tensors_cap ? st->tensors_cap : 64;
        while (cap < need)
            cap *= 2; /* bounded by the total size of the headers */
        sglc_st_tensor *p = realloc(st->tensors, cap * sizeof *p);
        if (!p) return -1;
        st->tensors = p;
        st->tensors_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        const st_entry *e = &entries[i];
        sglc_st_tensor *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof *t);
        t->name = strdup(e->item->string);
        if (!t->name) return -1;
        st->n_tensors++; /* counted once the name is owned, so close() frees it */
        t->dtype = e->dtype;
        t->n_dims = e->n_dims;
        memcpy(t->shape, e->shape, sizeof t->shape);
        t->data = data + e->begin;
        t->nbytes = (size_t)(e->end - e->begin);
        t->file_index = fi;
    }
    return 0;
}

/* Maps files[fi], validates its header and appends its tensors (and, for file 0, metadata). */
static int load_file(sglc_safetensors *st, int32_t fi, sglc_err *err) {
    st_file *f = &st->files[fi];
    const char *path = f->path;
    int rc = map_file(f, err);
    if (rc) return rc;
    if (f->size < 8)
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "%s: file is %zu bytes, too short for the 8-byte header length "
                            "(truncated or not a safetensors file)",
                            path, f->size);
    uint64_t n;
    memcpy(&n, f->map, 8);
    if (n > ST_MAX_HEADER)
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "%s: header length %llu exceeds the 100 MB limit (corrupt or not a "
                            "safetensors file)",
                            path, (unsigned long long)n);
    if (n > f->size - 8)
        return sglc_err_set(err, SGLC_ERR_FORMAT,
                            "%s: header length %llu runs past the end of the file (%zu bytes: "
                            "truncated?)",
                            path, (unsigned long long)n, f->size);
    uint64_t data_len = f->size - 8 - n;

    cJSON *root = NULL;
    cJSON **members = NULL;
    st_entry *entries = NULL;
    size_t n_members = 0, n_entries = 0;
    int nomem = 0;
    rc = parse_json_object(path, "header", f->map + 8, (size_t)n, &root, err);
    if (rc) goto cleanup;
    if (object_members(root, &members, &n_members)) goto nomem;
    const char *dup = first_duplicate(members, n_members, &nomem);
    if (nomem) goto nomem;
    if (dup) {
        rc = strcmp(dup, ST_METADATA_KEY) == 0
                 ? sglc_err_set(err, SGLC_ERR_FORMAT, "%s: duplicate __metadata__", path)
                 : sglc_err_set(err, SGLC_ERR_FORMAT, "%s: duplicate tensor name %s", path,
                                show(dup).s);
        goto cleanup;
    }
    entries = calloc(n_members ? n_members : 1, sizeof *entries);
    if (!entries) goto nomem;
    for (size_t i = 0; i < n_members; i++) {
        if (strcmp(members[i]->string, ST_METADATA_KEY) == 0) {
            rc = parse_metadata(st, path, members[i], fi == 0, err);
        } else {
            rc = parse_entry(path, members[i], data_len, &entries[n_entries], err);
            n_entries++;
        }
        if (rc) goto cleanup;
    }
    rc = check_layout(path, entries, n_entries, data_len, err);
    if (rc) goto cleanup;
    if (append_tensors(st, fi, entries, n_entries, f->map + 8 + n)) goto nomem;
    goto cleanup;
nomem:
    rc = sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory reading the header", path);
cleanup:
    free(entries);
    free(members);
    cJSON_Delete(root);
    return rc;
}

/* ---- sharded folders ---------------------------------------------------------------------- */

typedef struct {
    const char *name;  /* borrowed from the index's cJSON tree */
    const char *shard; /* likewise */
    int32_t file;
} index_entry;

static const char *index_name_at(const void *ctx, size_t i) {
    return ((const index_entry *)ctx)[i].name;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard must be a plain file name in the index's folder. */
static int shard_name_ok(const char *s) {
    return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Tensors of the shards must match the index both ways. */
static int check_against_index(const sglc_safetensors *st, const char *index_path,
                               const index_entry *ix, size_t n_ix, const name_hash *ix_hash,
                               sglc_err *err) {
    for (int64_t i = 0; i < st->n_tensors; i++) {
        const sglc_st_tensor *t = &st->tensors[i];
        const char *shard_path = st->files[t->file_index].path;
        int64_t k = name_hash_probe(ix_hash, index_name_at, ix, t->name, -1);
        if (k < 0)
            return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s is not listed in %s",
                                shard_path, show(t->name).s, index_path);
        if (ix[k].file != t->file_index)
            return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s is listed in %s under %s",
                                shard_path, show(t->name).s, index_path, show(ix[k].shard).s);
    }
    if ((size_t)st->n_tensors == n_ix) return 0;
    for (size_t k = 0; k < n_ix; k++)
        if (sglc_safetensors_find(st, ix[k].name) == NULL)
            return sglc_err_set(err, SGLC_ERR_FORMAT,
                                "%s: tensor %s is listed under shard %s, which does not contain "
                                "it",
                                index_path, show(ix[k].name).s, show(ix[k].shard).s);
    return 0; /* unreachable: counts differ only when some entry is missing */
}

static int build_tensor_hash(sglc_safetensors *st, sglc_err *err) {
    if (name_hash_init(&st->tensor_hash, (size_t)st->n_tensors))
        return sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory indexing tensors",
                            st->files[0].path);
    for (int64_t i = 0; i < st->n_tensors; i++) {
        const sglc_st_tensor *t = &st->tensors[i];
        int64_t j = name_hash_probe(&st->tensor_hash, tensor_name_at, st, t->name, i);
        if (j >= 0) /* only across shards: each header was checked for duplicates */
            return sglc_err_set(err, SGLC_ERR_FORMAT, "%s: tensor %s is also in %s",
                                st->files[t->file_index].path, show(t->name).s,
                                st->files[st->tensors[j].file_index].path);
    }
    return 0;
}

static int open_index(sglc_safetensors *st, const char *index_path, sglc_err *err) {
    st_file ixf = {.path = (char *)index_path}; /* map_file only reads the path */
    cJSON *root = NULL;
    cJSON **top = NULL, **members = NULL;
    index_entry *ix = NULL;
    const char **shards = NULL;
    name_hash ix_hash = {0};
    size_t n_top = 0, n = 0, n_shards = 0;
    int nomem = 0;
    int rc = map_file(&ixf, err);
    if (rc) goto cleanup;
    if (ixf.size > ST_MAX_INDEX_BYTES) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s: index is %zu bytes, over the 100 MB limit",
                          index_path, ixf.size);
        goto cleanup;
    }
    rc = parse_json_object(index_path, "index", ixf.map, ixf.size, &root, err);
    if (rc) goto cleanup;
    if (object_members(root, &top, &n_top)) goto nomem;
    const char *dup = first_duplicate(top, n_top, &nomem);
    if (nomem) goto nomem;
    if (dup) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s: duplicate key %s", index_path, show(dup).s);
        goto cleanup;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!wm || !cJSON_IsObject(wm)) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s: %s", index_path,
                          wm ? "weight_map is not a JSON object" : "missing weight_map");
        goto cleanup;
    }
    if (object_members(wm, &members, &n)) goto nomem;
    if (n == 0) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s: weight_map is empty", index_path);
        goto cleanup;
    }
    dup = first_duplicate(members, n, &nomem);
    if (nomem) goto nomem;
    if (dup) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s: duplicate tensor name %s in weight_map",
                          index_path, show(dup).s);
        goto cleanup;
    }
    ix = calloc(n, sizeof *ix);
    shards = calloc(n, sizeof *shards);
    if (!ix || !shards) goto nomem;
    for (size_t i = 0; i < n; i++) {
        const cJSON *m = members[i];
        if (!cJSON_IsString(m)) {
            rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                              "%s: weight_map value of tensor %s is not a string", index_path,
                              show(m->string).s);
            goto cleanup;
        }
        if (!shard_name_ok(m->valuestring)) {
            rc = sglc_err_set(err, SGLC_ERR_FORMAT,
                              "%s: tensor %s: shard %s is not a plain file name in the index's "
                              "folder",
                              index_path, show(m->string).s, show(m->valuestring).s);
            goto cleanup;
        }
        ix[i].name = m->string;
        ix[i].shard = m->valuestring;
        shards[i] = m->valuestring;
    }
    qsort(shards, n, sizeof *shards, cmp_str_ptr);
    for (size_t i = 0; i < n; i++)
        if (n_shards == 0 || strcmp(shards[n_shards - 1], shards[i]) != 0)
            shards[n_shards++] = shards[i];
    if (n_shards > INT32_MAX) {
        rc = sglc_err_set(err, SGLC_ERR_FORMAT, "%s: too many shards", index_path);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        const char **hit = bsearch(&ix[i].shard, shards, n_shards, sizeof *shards, cmp_str_ptr);
        SGLC_ASSERT(hit != NULL);
        ix[i].file = (int32_t)(hit - shards);
    }
    if (name_hash_init(&ix_hash, n)) goto nomem;
    for (size_t i = 0; i < n; i++)
        (void)name_hash_probe(&ix_hash, index_name_at, ix, ix[i].name, (int64_t)i);

    const char *slash = strrchr(index_path, '/');
    size_t dir_len = slash ? (size_t)(slash - index_path) : 1;
    const char *dir = slash ? index_path : ".";
    st->files = calloc(n_shards, sizeof *st->files);
    if (!st->files) goto nomem;
    st->n_files = (int32_t)n_shards;
    for (size_t i = 0; i < n_shards; i++) {
        size_t sl = strlen(shards[i]);
        char *p = malloc(dir_len + 1 + sl + 1);
        if (!p) goto nomem;
        memcpy(p, dir, dir_len);
        p[dir_len] = '/';
        memcpy(p + dir_len + 1, shards[i], sl + 1);
        st->files[i].path = p;
    }
    for (int32_t i = 0; i < st->n_files; i++) {
        rc = load_file(st, i, err);
        if (rc) goto cleanup;
    }
    rc = build_tensor_hash(st, err);
    if (rc) goto cleanup;
    rc = check_against_index(st, index_path, ix, n, &ix_hash, err);
    goto cleanup;
nomem:
    rc = sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory reading the index", index_path);
cleanup:
    free(ix_hash.slots);
    free(shards);
    free(ix);
    free(members);
    free(top);
    cJSON_Delete(root);
    if (ixf.map) munmap((void *)ixf.map, ixf.size);
    return rc;
}

static int open_single(sglc_safetensors *st, const char *path, sglc_err *err) {
    st->files = calloc(1, sizeof *st->files);
    if (!st->files) return sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory", path);
    st->n_files = 1;
    st->files[0].path = strdup(path);
    if (!st->files[0].path) return sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory", path);
    int rc = load_file(st, 0, err);
    if (rc) return rc;
    return build_tensor_hash(st, err);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- public API --------------------------------------------------------------------------- */

int sglc_safetensors_open(sglc_safetensors **out, const char *path, sglc_err *err) {
    *out = NULL;
    int rc = 0;
    char *joined = NULL;
    sglc_safetensors *st = calloc(1, sizeof *st);
    if (!st) return sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory", path);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        rc = sglc_err_set(err, SGLC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    if (S_ISDIR(sb.st_mode)) {
        size_t pl = strlen(path);
        size_t jl = pl + 1 + sizeof ST_INDEX_NAME; /* the longer name, NUL included */
        joined = malloc(jl);
        if (!joined) {
            rc = sglc_err_set(err, SGLC_ERR_NOMEM, "%s: out of memory", path);
            goto cleanup;
        }
        /* a single file wins over an index, as in transformers */
        snprintf(joined, jl, "%s/%s", path, ST_SINGLE_NAME);
        if (stat(joined, &sb) == 0) {
            rc = open_single(st, joined, err);
            goto cleanup;
        }
        snprintf(joined, jl, "%s/%s", path, ST_INDEX_NAME);
        if (stat(joined, &sb) == 0) {
            rc = open_index(st, joined, err);
            goto cleanup;
        }
        rc = sglc_err_set(
            err, SGLC_ERR_IO,
            "%s: cannot open: folder has neither " ST_SINGLE_NAME " nor " ST_INDEX_NAME, path);
        goto cleanup;
    }
    rc = ends_with(path, ".json") ? open_index(st, path, err) : open_single(st, path, err);

cleanup:
    free(joined);
    if (rc) {
        sglc_safetensors_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void sglc_safetensors_close(sglc_safetensors *st) {
    if (!st) return;
    for (int32_t i = 0; i < st->n_files; i++) {
        if (st->files[i].map) munmap((void *)st->files[i].map, st->files[i].size);
        free(st->files[i].path);
    }
    free(st->files);
    for (int64_t i = 0; i < st->n_tensors; i++)
        free((char *)st->tensors[i].name);
    free(st->tensors);
    free(st->tensor_hash.slots);
    for (size_t i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->meta_keys);
    free(st->meta_vals);
    free(st);
}

int64_t sglc_safetensors_n_tensors(const sglc_safetensors *st) {
    return st->n_tensors;
}

int32_t sglc_safetensors_n_files(const sglc_safetensors *st) {
    return st->n_files;
}

const char *sglc_safetensors_file_path(const sglc_safetensors *st, int32_t i) {
    return i >= 0 && i < st->n_files ? st->files[i].path : NULL;
}

const sglc_st_tensor *sglc_safetensors_tensor_at(const sglc_safetensors *st, int64_t i) {
    return i >= 0 && i < st->n_tensors ? &st->tensors[i] : NULL;
}

const sglc_st_tensor *sglc_safetensors_find(const sglc_safetensors *st, const char *name) {
    int64_t i = name_hash_probe(&st->tensor_hash, tensor_name_at, st, name, -1);
    return i >= 0 ? &st->tensors[i] : NULL;
}

const char *sglc_safetensors_metadata(const sglc_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

const char *sglc_st_dtype_name(sglc_st_dtype t) {
    return (unsigned)t < SGLC_ST_DTYPE_COUNT ? k_dtypes[t].name : "invalid";
}

size_t sglc_st_dtype_size(sglc_st_dtype t) {
    return (unsigned)t < SGLC_ST_DTYPE_COUNT ? k_dtypes[t].size : 0;
}
