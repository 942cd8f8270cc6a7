/* GGUF reader: mmaps the file read-only, validates every structural rule of ROBUSTNESS.md §25
 * before anything is used, and exposes metadata and tensors as zero-copy views into the map.
 * Nothing here knows about models. All returned pointers are borrowed from the sglc_gguf and
 * live until sglc_gguf_close. */
#ifndef SGLC_FORMATS_GGUF_H
#define SGLC_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/log.h"

typedef enum {
    SGLC_GGUF_UINT8 = 0,
    SGLC_GGUF_INT8 = 1,
    SGLC_GGUF_UINT16 = 2,
    SGLC_GGUF_INT16 = 3,
    SGLC_GGUF_UINT32 = 4,
    SGLC_GGUF_INT32 = 5,
    SGLC_GGUF_FLOAT32 = 6,
    SGLC_GGUF_BOOL = 7,
    SGLC_GGUF_STRING = 8,
    SGLC_GGUF_ARRAY = 9,
    SGLC_GGUF_UINT64 = 10,
    SGLC_GGUF_INT64 = 11,
    SGLC_GGUF_FLOAT64 = 12,
    SGLC_GGUF_TYPE_COUNT
} sglc_gguf_type;

#define SGLC_GGUF_MAX_DIMS 4

typedef struct {
    const char *name;     /* NUL-terminated copy owned by the sglc_gguf */
    uint32_t n_dims;
    int64_t ne[SGLC_GGUF_MAX_DIMS]; /* ne[0] is the fastest-moving (row length); unused dims = 1 */
    uint32_t type;        /* sglc_ggml_type */
    const void *data;     /* points into the mmap */
    size_t nbytes;
} sglc_gguf_tensor;

typedef struct sglc_gguf sglc_gguf;

/* Opens and fully validates path. On failure returns a negative sglc_status and writes one
 * line naming the file and the problem into err. */
int sglc_gguf_open(sglc_gguf **out, const char *path, sglc_err *err);
void sglc_gguf_close(sglc_gguf *g);

uint32_t sglc_gguf_version(const sglc_gguf *g);
size_t sglc_gguf_alignment(const sglc_gguf *g);

/* Metadata. Lookups return -1 when the key is absent. */
int64_t sglc_gguf_find_key(const sglc_gguf *g, const char *key);
int64_t sglc_gguf_n_kv(const sglc_gguf *g);
const char *sglc_gguf_key_name(const sglc_gguf *g, int64_t i);
sglc_gguf_type sglc_gguf_kv_type(const sglc_gguf *g, int64_t i);

/* Typed getters: return 0 on success, SGLC_ERR_FORMAT with a message when the key is present
 * but of an incompatible type, and 1 when the key is absent (out untouched). Integer getters
 * accept any integer type whose value fits; get_f32 accepts f32 and f64. */
int sglc_gguf_get_u32(const sglc_gguf *g, const char *key, uint32_t *out, sglc_err *err);
int sglc_gguf_get_i64(const sglc_gguf *g, const char *key, int64_t *out, sglc_err *err);
int sglc_gguf_get_f32(const sglc_gguf *g, const char *key, float *out, sglc_err *err);
int sglc_gguf_get_bool(const sglc_gguf *g, const char *key, int *out, sglc_err *err);
/* String value: pointer into the map (NOT NUL-terminated) and its length. */
int sglc_gguf_get_str(const sglc_gguf *g, const char *key, const char **s, size_t *len,
                      sglc_err *err);

/* Arrays: element type and count. For numeric arrays *data points at the packed little-endian
 * elements in the map (possibly unaligned: read with memcpy). For string arrays use
 * sglc_gguf_get_arr_str. */
int sglc_gguf_get_arr(const sglc_gguf *g, const char *key, sglc_gguf_type *elem_type,
                      uint64_t *count, const void **data, sglc_err *err);
/* Element i of a string array found at key index kv (from sglc_gguf_find_key). O(1). */
const char *sglc_gguf_get_arr_str(const sglc_gguf *g, int64_t kv, uint64_t i, size_t *len);

/* Tensors. */
int64_t sglc_gguf_n_tensors(const sglc_gguf *g);
const sglc_gguf_tensor *sglc_gguf_tensor_at(const sglc_gguf *g, int64_t i);
const sglc_gguf_tensor *sglc_gguf_find_tensor(const sglc_gguf *g, const char *name);

#endif
