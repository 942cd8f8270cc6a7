/* The token-granular KV slot allocator (SGLang's TokenToKVPool): the KV cache is
 * [num_slots] token slots per layer, and requests own lists of slot indices. This object only
 * hands out and takes back indices; the memory itself lives in the model state. Owned by the
 * scheduler thread alone: no locking. */
#ifndef SGLC_ENGINE_KV_POOL_H
#define SGLC_ENGINE_KV_POOL_H

#include <stdint.h>

typedef struct sglc_kv_pool sglc_kv_pool;

int sglc_kv_pool_open(sglc_kv_pool **out, int32_t num_slots);
void sglc_kv_pool_close(sglc_kv_pool *p);
int32_t sglc_kv_pool_size(const sglc_kv_pool *p);
int32_t sglc_kv_pool_available(const sglc_kv_pool *p);
/* Takes n slots into out; returns 0, or -1 (nothing taken) when fewer than n are free. */
int sglc_kv_pool_alloc(sglc_kv_pool *p, int32_t n, int32_t *out);
/* Returns slots. Freeing a slot that is not allocated is a broken invariant (assert). */
void sglc_kv_pool_free(sglc_kv_pool *p, const int32_t *slots, int32_t n);
/* Frees everything (used by /flush_cache when nothing runs). */
void sglc_kv_pool_reset(sglc_kv_pool *p);

#endif
