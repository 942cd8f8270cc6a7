/* Radix prefix cache (see radix_cache.h). Children are kept in a small array per node,
 * searched linearly by first token: fan-out is small except at the root, and a match walks
 * one edge per shared prefix, not one per token. The LRU clock is a counter, not wall time, so
 * behaviour is deterministic. Eviction uses a binary min-heap of evictable leaves. */
#include "engine/radix_cache.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"

struct sglc_radix_node {
    int32_t *key;   /* token ids of this edge */
    int32_t *value; /* KV slots of those tokens */
    int32_t len;
    sglc_radix_node *parent;
    sglc_radix_node **children;
    int32_t n_children, cap_children;
    int32_t lock_ref;
    uint64_t last_access;
};

struct sglc_radix_cache {
    sglc_kv_pool *pool; /* borrowed */
    sglc_radix_node *root;
    uint64_t clock;
    int32_t evictable, protected_, nodes;
};

static sglc_radix_node *node_new(const int32_t *key, const int32_t *value, int32_t len) {
    sglc_radix_node *n = calloc(1, sizeof *n);
    SGLC_ASSERT(n != NULL);
    if (len > 0) {
        n->key = malloc((size_t)len * sizeof(int32_t));
        n->value = malloc((size_t)len * sizeof(int32_t));
        SGLC_ASSERT(n->key && n->value);
        memcpy(n->key, key, (size_t)len * sizeof(int32_t));
        memcpy(n->value, value, (size_t)len * sizeof(int32_t));
    }
    n->len = len;
    return n;
}

static void node_free_tree(sglc_radix_node *n) {
    for (int32_t i = 0; i < n->n_children; i++)
        node_free_tree(n->children[i]);
    free(n->children);
    free(n->key);
    free(n->value);
    free(n);
}

static void child_add(sglc_radix_node *parent, sglc_radix_node *child) {
    if (parent->n_children == parent->cap_children) {
        int32_t cap = parent->cap_children ? parent->cap_children * 2 : 2;
        sglc_radix_node **nc = realloc(parent->children, (size_t)cap * sizeof *nc);
        SGLC_ASSERT(nc != NULL);
        parent->children = nc;
        parent->cap_children = cap;
    }
    parent->children[parent->n_children++] = child;
    child->parent = parent;
}

static void child_remove(sglc_radix_node *parent, sglc_radix_node *child) {
    for (int32_t i = 0; i < parent->n_children; i++)
        if (parent->children[i] == child) {
            parent->children[i] = parent->children[--parent->n_children];
            return;
        }
    SGLC_ASSERT(0 && "child not found");
}

static sglc_radix_node *child_find(const sglc_radix_node *n, int32_t first) {
    for (int32_t i = 0; i < n->n_children; i++)
        if (n->children[i]->key[0] == first) return n->children[i];
    return NULL;
}

int sglc_radix_open(sglc_radix_cache **out, sglc_kv_pool *pool) {
    sglc_radix_cache *c = calloc(1, sizeof *c);
    if (!c) return SGLC_ERR_NOMEM;
    c->pool = pool;
    c->root = node_new(NULL, NULL, 0);
    c->root->lock_ref = 1; /* the root is never evicted */
    *out = c;
    return SGLC_OK;
}

void sglc_radix_close(sglc_radix_cache *c) {
    if (!c) return;
    node_free_tree(c->root);
    free(c);
}

sglc_radix_node *sglc_radix_root(sglc_radix_cache *c) {
    return c->root;
}
int32_t sglc_radix_evictable_size(const sglc_radix_cache *c) {
    return c->evictable;
}
int32_t sglc_radix_protected_size(const sglc_radix_cache *c) {
    return c->protected_;
}
int32_t sglc_radix_node_count(const sglc_radix_cache *c) {
    return c->nodes;
}

/* Splits child after k tokens; returns the new upper node holding the first k. */
static sglc_radix_node *split(sglc_radix_cache *c, sglc_radix_node *child, int32_t k) {
    SGLC_ASSERT(k > 0 && k < child->len);
    sglc_radix_node *parent = child->parent;
    sglc_radix_node *mid = node_new(child->key, child->value, k);
    mid->lock_ref = child->lock_ref;
    mid->last_access = child->last_access;
    int32_t rest = child->len - k;
    memmove(child->key, child->key + k, (size_t)rest * sizeof(int32_t));
    memmove(child->value, child->value + k, (size_t)rest * sizeof(int32_t));
    child->len = rest;
    for (int32_t i = 0; i < parent->n_children; i++)
        if (parent->children[i] == child) parent->children[i] = mid;
    mid->parent = parent;
    child_add(mid, child);
    c->nodes++;
    return mid;
}

static int32_t common_len(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

int32_t sglc_radix_match_prefix(sglc_radix_cache *c, const int32_t *tokens, int32_t n,
                                int32_t *slots_out, sglc_radix_node **last) {
    uint64_t now = ++c->clock;
    sglc_radix_node *node = c->root;
    node->last_access = now;
    int32_t matched = 0;
    while (matched < n) {
        sglc_radix_node *child = child_find(node, tokens[matched]);
        if (!child) break;
        child->last_access = now;
        int32_t k = common_len(child->key, child->len, tokens + matched, n - matched);
        if (k < child->len) child = split(c, child, k);
        memcpy(slots_out + matched, child->value, (size_t)k * sizeof(int32_t));
        matched += k;
        node = child;
        if (k < child->len) break; /* unreachable after split; kept for clarity */
    }
    if (last) *last = node;
    return matched;
}

int32_t sglc_radix_insert(sglc_radix_cache *c, const int32_t *tokens, const int32_t *slots,
                          int32_t n) {
    uint64_t now = ++c->clock;
    sglc_radix_node *node = c->root;
    int32_t i = 0;
    while (i < n) {
        sglc_radix_node *child = child_find(node, tokens[i]);
        if (!child) {
            sglc_radix_node *leaf = node_new(tokens + i, slots + i, n - i);
            leaf->last_access = now;
            child_add(node, leaf);
            c->nodes++;
            c->evictable += n - i;
            return i;
        }
        child->last_access = now;
        int32_t k = common_len(child->key, child->len, tokens + i, n - i);
        if (k < child->len) child = split(c, child, k);
        i += k;
        node = child;
    }
    return i;
}

void sglc_radix_lock(sglc_radix_cache *c, sglc_radix_node *node) {
    for (; node && node != c->root; node = node->parent) {
        if (node->lock_ref == 0) {
            c->evictable -= node->len;
            c->protected_ += node->len;
        }
        node->lock_ref++;
    }
}

void sglc_radix_unlock(sglc_radix_cache *c, sglc_radix_node *node) {
    for (; node && node != c->root; node = node->parent) {
        SGLC_ASSERT(node->lock_ref > 0);
        node->lock_ref--;
        if (node->lock_ref == 0) {
            c->evictable += node->len;
            c->protected_ -= node->len;
        }
    }
}

/* ---- eviction heap, ordered by last_access ---- */
typedef struct {
    sglc_radix_node **a;
    int32_t n, cap;
} heap;

static void heap_push(heap *h, sglc_radix_node *x) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->a = realloc(h->a, (size_t)h->cap * sizeof *h->a);
        SGLC_ASSERT(h->a != NULL);
    }
    int32_t i = h->n++;
    while (i > 0) {
        int32_t p = (i - 1) / 2;
        if (h->a[p]->last_access <= x->last_access) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = x;
}

static sglc_radix_node *heap_pop(heap *h) {
    sglc_radix_node *top = h->a[0], *x = h->a[--h->n];
    int32_t i = 0;
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        sglc_radix_node *best = x;
        if (l < h->n && h->a[l]->last_access < best->last_access) m = l, best = h->a[l];
        if (r < h->n && h->a[r]->last_access < best->last_access) m = r, best = h->a[r];
        if (m == i) break;
        h->a[i] = h->a[m];
        i = m;
    }
    if (h->n > 0) h->a[i] = x;
    return top;
}

static void collect_leaves(sglc_radix_node *n, heap *h, const sglc_radix_node *root) {
    if (n->n_children == 0) {
        if (n != root && n->lock_ref == 0) heap_push(h, n);
        return;
    }
    for (int32_t i = 0; i < n->n_children; i++)
        collect_leaves(n->children[i], h, root);
}

int32_t sglc_radix_evict(sglc_radix_cache *c, int32_t n) {
    heap h = {0};
    collect_leaves(c->root, &h, c->root);
    int32_t freed = 0;
    while (freed < n && h.n > 0) {
        sglc_radix_node *leaf = heap_pop(&h);
        sglc_kv_pool_free(c->pool, leaf->value, leaf->len);
        freed += leaf->len;
        c->evictable -= leaf->len;
        sglc_radix_node *parent = leaf->parent;
        child_remove(parent, leaf);
        leaf->n_children = 0;
        node_free_tree(leaf);
        c->nodes--;
        if (parent != c->root && parent->n_children == 0 && parent->lock_ref == 0)
            heap_push(&h, parent);
    }
    free(h.a);
    return freed;
}

static void free_slots_tree(sglc_radix_cache *c, sglc_radix_node *n) {
    if (n != c->root) sglc_kv_pool_free(c->pool, n->value, n->len);
    for (int32_t i = 0; i < n->n_children; i++)
        free_slots_tree(c, n->children[i]);
}

int sglc_radix_reset(sglc_radix_cache *c) {
    if (c->protected_ != 0) return -1;
    free_slots_tree(c, c->root);
    for (int32_t i = 0; i < c->root->n_children; i++)
        node_free_tree(c->root->children[i]);
    c->root->n_children = 0;
    c->evictable = 0;
    c->nodes = 0;
    return 0;
}

static int check_node(const sglc_radix_node *n, const sglc_radix_node *root, int32_t *ev,
                      int32_t *pr, int32_t *count) {
    if (n != root) {
        if (n->len <= 0) return -1;
        if (n->lock_ref < 0) return -1;
        if (n->lock_ref > 0)
            *pr += n->len;
        else
            *ev += n->len;
        (*count)++;
        /* a node's lock count is at least the sum of its children's */
        int32_t child_locks = 0;
        for (int32_t i = 0; i < n->n_children; i++)
            child_locks += n->children[i]->lock_ref;
        if (n->lock_ref < child_locks) return -1;
    }
    for (int32_t i = 0; i < n->n_children; i++) {
        if (n->children[i]->parent != n) return -1;
        for (int32_t j = 0; j < i; j++)
            if (n->children[j]->key[0] == n->children[i]->key[0]) return -1;
        if (check_node(n->children[i], root, ev, pr, count)) return -1;
    }
    return 0;
}

int sglc_radix_check(const sglc_radix_cache *c) {
    int32_t ev = 0, pr = 0, count = 0;
    if (check_node(c->root, c->root, &ev, &pr, &count)) return -1;
    if (ev != c->evictable || pr != c->protected_ || count != c->nodes) return -1;
    return 0;
}
