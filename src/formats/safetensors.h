/* safetensors reader: single files and sharded folders (model.safetensors.index.json). Each file
 * is mmap'd read-only and validated against every rule of ROBUSTNESS.md §24 before use; tensors
 * are zero-copy views into the maps. All returned pointers are borrowed from the
 * sglc_safetensors and live until sglc_safetensors_close. */
#ifndef SGLC_FORMATS_SAFETENSORS_H
#define SGLC_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/log.h"

typedef enum {
    SGLC_ST_BOOL = 0,
    SGLC_ST_U8,
    SGLC_ST_I8,
    SGLC_ST_U16,
    SGLC_ST_I16,
    SGLC_ST_F16,
    SGLC_ST_BF16,
    SGLC_ST_U32,
    SGLC_ST_I32,
    SGLC_ST_F32,
    SGLC_ST_U64,
    SGLC_ST_I64,
    SGLC_ST_F64,
    SGLC_ST_DTYPE_COUNT
} sglc_st_dtype;

#define SGLC_ST_MAX_DIMS 8

typedef struct {
    const char *name; /* NUL-terminated, owned by the sglc_safetensors */
    sglc_st_dtype dtype;
    int32_t n_dims;
    int64_t shape[SGLC_ST_MAX_DIMS]; /* shape[0] is the slowest-moving dim, as in the file */
    const void *data;                /* into the mmap; NOT aligned in general, see below */
    size_t nbytes;
    int32_t file_index; /* which shard */
} sglc_st_tensor;

/* The format does not align tensor data: the data section starts right after the JSON header and
 * offsets are byte offsets. A consumer must read through memcpy, or check
 * ((uintptr_t)data % sglc_st_dtype_size(dtype)) == 0 before casting data to an element pointer.
 * A tensor with nbytes == 0 may point one past the end of its file's map: do not dereference. */

typedef struct sglc_safetensors sglc_safetensors;

/* path: a .safetensors file, a model.safetensors.index.json, or a folder containing either
 * model.safetensors or model.safetensors.index.json. */
int sglc_safetensors_open(sglc_safetensors **out, const char *path, sglc_err *err);
void sglc_safetensors_close(sglc_safetensors *st);

int64_t sglc_safetensors_n_tensors(const sglc_safetensors *st);
/* Number of files (1, or the number of distinct shards in the index) and the path of file i
 * (shards sorted by file name; a tensor's file_index indexes this), or NULL out of range. */
int32_t sglc_safetensors_n_files(const sglc_safetensors *st);
const char *sglc_safetensors_file_path(const sglc_safetensors *st, int32_t i);
const sglc_st_tensor *sglc_safetensors_tensor_at(const sglc_safetensors *st, int64_t i);
const sglc_st_tensor *sglc_safetensors_find(const sglc_safetensors *st, const char *name);
/* __metadata__ value for key of the first file, or NULL. */
const char *sglc_safetensors_metadata(const sglc_safetensors *st, const char *key);

const char *sglc_st_dtype_name(sglc_st_dtype t);
size_t sglc_st_dtype_size(sglc_st_dtype t);

#endif
