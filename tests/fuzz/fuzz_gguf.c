/* libFuzzer target for the GGUF reader: each input is written to a memfd and opened through the
 * ordinary path API (via /proc/self/fd), so the fuzzer exercises the real open/mmap/parse code.
 * On success every key, array element and tensor is read back, touching the first and last byte
 * of each tensor's data so an out-of-bounds view faults. */
#include "formats/gguf.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile uint8_t g_sink;

static void read_everything(const sglc_gguf *g) {
    sglc_err err;
    for (int64_t i = 0; i < sglc_gguf_n_kv(g); i++) {
        const char *key = sglc_gguf_key_name(g, i);
        if (sglc_gguf_find_key(g, key) != i) __builtin_trap();
        uint32_t u32;
        int64_t i64;
        float f;
        int b;
        const char *s;
        size_t len;
        sglc_gguf_type et;
        uint64_t count;
        const void *data;
        (void)sglc_gguf_get_u32(g, key, &u32, &err);
        (void)sglc_gguf_get_i64(g, key, &i64, &err);
        (void)sglc_gguf_get_f32(g, key, &f, &err);
        (void)sglc_gguf_get_bool(g, key, &b, &err);
        if (sglc_gguf_get_str(g, key, &s, &len, &err) == 0 && len) g_sink ^= (uint8_t)s[len - 1];
        if (sglc_gguf_get_arr(g, key, &et, &count, &data, &err) != 0) continue;
        if (et == SGLC_GGUF_STRING) {
            for (uint64_t j = 0; j < count; j++) {
                s = sglc_gguf_get_arr_str(g, i, j, &len);
                if (!s) __builtin_trap();
                if (len) g_sink ^= (uint8_t)(s[0] ^ s[len - 1]);
            }
        } else if (count) {
            g_sink ^= *(const uint8_t *)data;
        }
    }
    for (int64_t i = 0; i < sglc_gguf_n_tensors(g); i++) {
        const sglc_gguf_tensor *t = sglc_gguf_tensor_at(g, i);
        if (sglc_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        const uint8_t *p = t->data;
        g_sink ^= (uint8_t)(p[0] ^ p[t->nbytes - 1]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz_gguf", MFD_CLOEXEC);
    if (fd < 0) return 0;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return 0;
        }
        done += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sglc_gguf *g = NULL;
    sglc_err err;
    int rc = sglc_gguf_open(&g, path, &err);
    if (rc == 0) {
        read_everything(g);
        sglc_gguf_close(g);
    } else if (g != NULL || !strstr(err.msg, path)) {
        __builtin_trap(); /* a failed open leaves no handle and names the file */
    }
    close(fd);
    return 0;
}
