/* Radix prefix cache and KV pool: insert / match / split / evict / reference counts on
 * hand-made cases, then a randomized run of 10,000 simulated requests (random lengths, shared
 * prefixes, aborts at random points, pool pressure) after which every slot is free or held by
 * an evictable node, and evicting everything returns the pool to full. */
#include <stdint.h>

#include "engine/kv_pool.h"
#include "engine/radix_cache.h"
#include "test_util.h"

static uint64_t g_rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng % n);
}

static void test_pool(void) {
    sglc_kv_pool *p = NULL;
    CHECK(sglc_kv_pool_open(&p, 8) == 0);
    int32_t s[8];
    CHECK(sglc_kv_pool_alloc(p, 3, s) == 0);
    CHECK(s[0] == 0 && s[1] == 1 && s[2] == 2);
    CHECK(sglc_kv_pool_available(p) == 5);
    CHECK(sglc_kv_pool_alloc(p, 6, s + 3) == -1); /* all or nothing */
    CHECK(sglc_kv_pool_available(p) == 5);
    sglc_kv_pool_free(p, s, 3);
    CHECK(sglc_kv_pool_available(p) == 8);
    sglc_kv_pool_close(p);
}

static void test_basic(void) {
    sglc_kv_pool *p = NULL;
    sglc_radix_cache *c = NULL;
    CHECK(sglc_kv_pool_open(&p, 64) == 0);
    CHECK(sglc_radix_open(&c, p) == 0);
    int32_t a[] = {1, 2, 3, 4, 5, 6};
    int32_t sa[6];
    CHECK(sglc_kv_pool_alloc(p, 6, sa) == 0);
    CHECK(sglc_radix_insert(c, a, sa, 6) == 0);
    CHECK(sglc_radix_evictable_size(c) == 6 && sglc_radix_node_count(c) == 1);

    /* a match that ends inside the edge splits it */
    int32_t q[] = {1, 2, 3, 9};
    int32_t out[8];
    sglc_radix_node *last = NULL;
    CHECK(sglc_radix_match_prefix(c, q, 4, out, &last) == 3);
    CHECK(out[0] == sa[0] && out[1] == sa[1] && out[2] == sa[2]);
    CHECK(sglc_radix_node_count(c) == 2);
    CHECK(sglc_radix_check(c) == 0);

    /* locking protects the matched path only */
    sglc_radix_lock(c, last);
    CHECK(sglc_radix_protected_size(c) == 3 && sglc_radix_evictable_size(c) == 3);
    CHECK(sglc_radix_evict(c, 100) == 3); /* only the unlocked tail {4,5,6} goes */
    CHECK(sglc_kv_pool_available(p) == 64 - 3);
    CHECK(sglc_radix_check(c) == 0);
    sglc_radix_unlock(c, last);
    CHECK(sglc_radix_protected_size(c) == 0 && sglc_radix_evictable_size(c) == 3);

    /* inserting a longer sequence reports the shared prefix; the caller frees its duplicates */
    int32_t b[] = {1, 2, 3, 7, 8};
    int32_t sb[5];
    CHECK(sglc_kv_pool_alloc(p, 5, sb) == 0);
    int32_t shared = sglc_radix_insert(c, b, sb, 5);
    CHECK(shared == 3);
    sglc_kv_pool_free(p, sb, shared);
    CHECK(sglc_radix_match_prefix(c, b, 5, out, &last) == 5);
    CHECK(out[0] == sa[0] && out[3] == sb[3] && out[4] == sb[4]);
    CHECK(sglc_radix_check(c) == 0);

    /* LRU: touch {1,2,3,7,8}; a new branch {20,21} is newer; evicting 2 takes the older leaf */
    int32_t d[] = {20, 21}, sd[2];
    CHECK(sglc_kv_pool_alloc(p, 2, sd) == 0);
    CHECK(sglc_radix_insert(c, d, sd, 2) == 0);
    CHECK(sglc_radix_evict(c, 2) == 2);
    CHECK(sglc_radix_match_prefix(c, d, 2, out, &last) == 2); /* newest survived */
    CHECK(sglc_radix_match_prefix(c, b, 5, out, &last) == 3); /* {7,8} was evicted */
    CHECK(sglc_radix_reset(c) == 0);
    CHECK(sglc_kv_pool_available(p) == 64);
    CHECK(sglc_radix_node_count(c) == 0);
    sglc_radix_close(c);
    sglc_kv_pool_close(p);
}

#define POOL 4096
#define MAX_RUNNING 24
#define MAX_LEN 300

typedef struct {
    int32_t tokens[MAX_LEN];
    int32_t slots[MAX_LEN];
    int32_t len, prefix_len, done; /* done: tokens whose KV exists */
    sglc_radix_node *last;
    int active;
} sim_req;

static void test_random(void) {
    sglc_kv_pool *p = NULL;
    sglc_radix_cache *c = NULL;
    CHECK(sglc_kv_pool_open(&p, POOL) == 0);
    CHECK(sglc_radix_open(&c, p) == 0);
    int32_t prefixes[8][200];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 200; j++)
            prefixes[i][j] = (int32_t)rnd(50);
    static sim_req reqs[MAX_RUNNING];
    int started = 0, finished = 0, aborted = 0, rejected = 0;
    long cached_total = 0;
    for (;;) {
        /* start new requests while there is room */
        int any_active = 0;
        for (int r = 0; r < MAX_RUNNING; r++) {
            sim_req *q = &reqs[r];
            if (!q->active && started < 10000) {
                started++;
                q->len = 1 + (int32_t)rnd(MAX_LEN);
                int pre = (int)rnd(9);
                int32_t shared = pre < 8 ? (int32_t)rnd(200) : 0;
                if (shared > q->len) shared = q->len;
                for (int32_t j = 0; j < q->len; j++)
                    q->tokens[j] = j < shared ? prefixes[pre][j] : (int32_t)rnd(50);
                q->prefix_len = sglc_radix_match_prefix(c, q->tokens, q->len, q->slots, &q->last);
                cached_total += q->prefix_len;
                sglc_radix_lock(c, q->last);
                int32_t need = q->len - q->prefix_len;
                if (sglc_kv_pool_available(p) < need)
                    sglc_radix_evict(c, need - sglc_kv_pool_available(p));
                if (sglc_kv_pool_alloc(p, need, q->slots + q->prefix_len) != 0) {
                    /* cannot fit now: give the reference back (a scheduler would queue it) */
                    sglc_radix_unlock(c, q->last);
                    rejected++;
                    continue;
                }
                q->done = q->prefix_len;
                q->active = 1;
            }
            if (!q->active) continue;
            any_active = 1;
            /* progress: some tokens computed per step */
            q->done += 1 + (int32_t)rnd(64);
            if (q->done > q->len) q->done = q->len;
            if (rnd(100) < 3) {
                /* abort: cache what was computed, free the rest */
                int32_t shared = sglc_radix_insert(c, q->tokens, q->slots, q->done);
                if (shared > q->prefix_len)
                    sglc_kv_pool_free(p, q->slots + q->prefix_len, shared - q->prefix_len);
                sglc_kv_pool_free(p, q->slots + q->done, q->len - q->done);
                sglc_radix_unlock(c, q->last);
                q->active = 0;
                aborted++;
            } else if (q->done == q->len) {
                int32_t shared = sglc_radix_insert(c, q->tokens, q->slots, q->len);
                if (shared > q->prefix_len)
                    sglc_kv_pool_free(p, q->slots + q->prefix_len, shared - q->prefix_len);
                sglc_radix_unlock(c, q->last);
                q->active = 0;
                finished++;
            }
            CHECK(sglc_kv_pool_available(p) + sglc_radix_evictable_size(c) +
                      sglc_radix_protected_size(c) <=
                  POOL);
        }
        if (started % 500 == 0) CHECK(sglc_radix_check(c) == 0);
        if (!any_active && started >= 10000) break;
    }
    CHECK(sglc_radix_check(c) == 0);
    CHECK(sglc_radix_protected_size(c) == 0);
    /* every slot is free or owned by an evictable node */
    CHECK(sglc_kv_pool_available(p) + sglc_radix_evictable_size(c) == POOL);
    sglc_radix_evict(c, POOL);
    CHECK(sglc_kv_pool_available(p) == POOL);
    CHECK(sglc_radix_node_count(c) == 0);
    fprintf(stderr, "random: %d finished, %d aborted, %d rejected for space, %ld tokens hit\n",
            finished, aborted, rejected, cached_total);
    CHECK(finished + aborted + rejected == 10000);
    CHECK(cached_total > 0);
    sglc_radix_close(c);
    sglc_kv_pool_close(p);
}

int main(void) {
    test_pool();
    test_basic();
    test_random();
    TEST_MAIN_END();
}
