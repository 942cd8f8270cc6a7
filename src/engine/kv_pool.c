/* KV slot allocator: a stack of free indices plus an allocated bitmap that turns double frees
 * and frees of foreign indices into assertion failures instead of silent corruption. */
#include "engine/kv_pool.h"

#include <stdlib.h>

#include "base/log.h"

struct sglc_kv_pool {
    int32_t size, n_free;
    int32_t *free_stack;
    uint8_t *used;
};

int sglc_kv_pool_open(sglc_kv_pool **out, int32_t num_slots) {
    *out = NULL;
    if (num_slots <= 0) return SGLC_ERR_ARG;
    sglc_kv_pool *p = calloc(1, sizeof *p);
    if (!p) return SGLC_ERR_NOMEM;
    p->size = num_slots;
    p->free_stack = malloc((size_t)num_slots * sizeof(int32_t));
    p->used = calloc((size_t)num_slots, 1);
    if (!p->free_stack || !p->used) {
        sglc_kv_pool_close(p);
        return SGLC_ERR_NOMEM;
    }
    sglc_kv_pool_reset(p);
    *out = p;
    return SGLC_OK;
}

void sglc_kv_pool_close(sglc_kv_pool *p) {
    if (!p) return;
    free(p->free_stack);
    free(p->used);
    free(p);
}

int32_t sglc_kv_pool_size(const sglc_kv_pool *p) {
    return p->size;
}
int32_t sglc_kv_pool_available(const sglc_kv_pool *p) {
    return p->n_free;
}

void sglc_kv_pool_reset(sglc_kv_pool *p) {
    /* lowest indices on top of the stack, so a fresh pool hands out 0, 1, 2, ... */
    for (int32_t i = 0; i < p->size; i++) {
        p->free_stack[i] = p->size - 1 - i;
        p->used[i] = 0;
    }
    p->n_free = p->size;
}

int sglc_kv_pool_alloc(sglc_kv_pool *p, int32_t n, int32_t *out) {
    if (n < 0 || n > p->n_free) return -1;
    for (int32_t i = 0; i < n; i++) {
        int32_t s = p->free_stack[--p->n_free];
        SGLC_ASSERT(!p->used[s]);
        p->used[s] = 1;
        out[i] = s;
    }
    return 0;
}

void sglc_kv_pool_free(sglc_kv_pool *p, const int32_t *slots, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        int32_t s = slots[i];
        SGLC_ASSERT(s >= 0 && s < p->size && p->used[s]);
        p->used[s] = 0;
        p->free_stack[p->n_free++] = s;
    }
}
