/* libFuzzer target for the safetensors reader: each input is written to a memfd and opened
 * through the ordinary path API (via /proc/self/fd), so the fuzzer exercises the real
 * open/mmap/validate code. On success every tensor is looked up by name and the first and last
 * byte of its data are read, so a view outside the map faults under ASan; every metadata getter
 * is called. Failure must leave no handle and a one-line message naming the file.
 *
 * An input that starts with '{' is also tried as a model.safetensors.index.json in a private temp
 * folder that holds two small valid shards, a.safetensors and b.safetensors, so the index rules
 * (weight_map, shard names, index/shard agreement) are fuzzed too. */
#include "formats/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile uint8_t g_sink;

static char g_dir[64];

static int write_all(int fd, const uint8_t *data, size_t size) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

static void write_path(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size)) abort();
    fclose(f);
}

static const char *const k_files[] = {"a.safetensors", "b.safetensors",
                                      "model.safetensors.index.json"};

static void remove_dir(void) {
    char path[128];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, k_files[i]);
        unlink(path);
    }
    rmdir(g_dir);
}

static void make_shards(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/fuzz_st_XXXXXX");
    if (!mkdtemp(g_dir)) abort();
    static const char h1[] = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                             "\"y\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}";
    static const char h2[] = "{\"z\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}";
    const char *const hs[2] = {h1, h2};
    for (int i = 0; i < 2; i++) {
        uint8_t file[256];
        uint64_t n = strlen(hs[i]);
        memcpy(file, &n, 8);
        memcpy(file + 8, hs[i], n);
        memset(file + 8 + n, 0x5a, 4);
        char path[128];
        snprintf(path, sizeof path, "%s/%s", g_dir, k_files[i]);
        write_path(path, file, 8 + n + 4);
    }
    atexit(remove_dir);
}

static void read_everything(const sglc_safetensors *st) {
    for (int64_t i = 0; i < sglc_safetensors_n_tensors(st); i++) {
        const sglc_st_tensor *t = sglc_safetensors_tensor_at(st, i);
        if (!t || sglc_safetensors_find(st, t->name) != t) __builtin_trap();
        if (t->n_dims < 0 || t->n_dims > SGLC_ST_MAX_DIMS || t->file_index < 0 ||
            !sglc_safetensors_file_path(st, t->file_index))
            __builtin_trap();
        size_t elems = 1;
        for (int32_t d = 0; d < t->n_dims; d++) {
            if (t->shape[d] < 0) __builtin_trap();
            elems *= (size_t)t->shape[d];
        }
        if (elems * sglc_st_dtype_size(t->dtype) != t->nbytes) __builtin_trap();
        if (t->nbytes) {
            const uint8_t *p = t->data;
            g_sink ^= (uint8_t)(p[0] ^ p[t->nbytes - 1]);
        }
        g_sink ^= (uint8_t)strlen(sglc_st_dtype_name(t->dtype));
    }
    const char *v = sglc_safetensors_metadata(st, "format");
    if (v) g_sink ^= (uint8_t)strlen(v);
}

/* must_name: what the failure message has to contain (the file, or for an index the folder,
 * since a shard may be the one at fault). */
static void open_and_read(const char *path, const char *must_name) {
    sglc_safetensors *st = NULL;
    sglc_err err;
    int rc = sglc_safetensors_open(&st, path, &err);
    if (rc == 0) {
        read_everything(st);
        sglc_safetensors_close(st);
    } else if (st != NULL || !strstr(err.msg, must_name) || strchr(err.msg, '\n')) {
        __builtin_trap(); /* a failed open leaves no handle and names the file (or a shard) */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0]) make_shards();
    int fd = memfd_create("fuzz_safetensors", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write_all(fd, data, size) == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        open_and_read(path, path);
    }
    close(fd);
    if (size && data[0] == '{') {
        char path[128];
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", g_dir);
        write_path(path, data, size);
        open_and_read(path, g_dir);
    }
    return 0;
}
