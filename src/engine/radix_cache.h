/* RadixAttention's prefix cache: a radix tree over token ids whose nodes own KV slot indices.
 * Running requests hold a reference (lock) on the deepest node of their cached prefix, which
 * protects that path; unreferenced leaves are evicted least-recently-used first when the KV
 * pool runs short. Nodes split when a match or insert ends inside them. Owned by the scheduler
 * thread alone: no locking. Semantics follow SGLang's RadixCache. */
#ifndef SGLC_ENGINE_RADIX_CACHE_H
#define SGLC_ENGINE_RADIX_CACHE_H

#include <stdint.h>

#include "engine/kv_pool.h"

typedef struct sglc_radix_node sglc_radix_node;
typedef struct sglc_radix_cache sglc_radix_cache;

/* pool is borrowed: evicted slots go back to it. */
int sglc_radix_open(sglc_radix_cache **out, sglc_kv_pool *pool);
void sglc_radix_close(sglc_radix_cache *c);

sglc_radix_node *sglc_radix_root(sglc_radix_cache *c);

/* Longest cached prefix of tokens[0..n): writes its slots to slots_out (capacity n) and returns
 * its length; *last gets the node where the match ends (the root when nothing matched). A match
 * ending inside a node splits it so that *last covers exactly the matched prefix. */
int32_t sglc_radix_match_prefix(sglc_radix_cache *c, const int32_t *tokens, int32_t n,
                                int32_t *slots_out, sglc_radix_node **last);

/* Inserts tokens with their slots. Returns how many leading tokens were already in the tree:
 * the tree keeps its own slots for those, so the caller still owns (and must free) its slots
 * in [0, returned) that it did not get from the tree; slots in [returned, n) now belong to the
 * tree. */
int32_t sglc_radix_insert(sglc_radix_cache *c, const int32_t *tokens, const int32_t *slots,
                          int32_t n);

/* References: lock a node (and its ancestors) while a request uses the prefix ending there. */
void sglc_radix_lock(sglc_radix_cache *c, sglc_radix_node *node);
void sglc_radix_unlock(sglc_radix_cache *c, sglc_radix_node *node);

/* Frees at least n slots by evicting unreferenced leaves, oldest first (fewer if not enough
 * are evictable); returns the number freed. */
int32_t sglc_radix_evict(sglc_radix_cache *c, int32_t n);

/* Drops every node; only allowed when nothing is locked. Returns -1 otherwise. */
int sglc_radix_reset(sglc_radix_cache *c);

int32_t sglc_radix_evictable_size(const sglc_radix_cache *c); /* tokens in unlocked nodes */
int32_t sglc_radix_protected_size(const sglc_radix_cache *c); /* tokens in locked nodes */
int32_t sglc_radix_node_count(const sglc_radix_cache *c);     /* excluding the root */

/* Walks the tree checking every invariant (sizes, lock counts, no empty non-root node, child
 * keys distinct); returns 0 when consistent. For tests. */
int sglc_radix_check(const sglc_radix_cache *c);

#endif
