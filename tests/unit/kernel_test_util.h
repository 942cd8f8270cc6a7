/* Helpers shared by the kernel tests: a seeded xorshift generator (define KERNEL_TEST_SEED
 * before including) and allocations with guard bytes after the end to catch overruns. */
#ifndef SGLC_TEST_KERNEL_UTIL_H
#define SGLC_TEST_KERNEL_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#define GUARD 64
#define GUARD_BYTE 0xA5

static uint64_t g_rng = KERNEL_TEST_SEED;

static uint64_t rng_u64(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1Dull;
}

/* uniform in [lo, hi) */
static float rng_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(rng_u64() >> 11) / 9007199254740992.0);
}

static void *guarded_alloc(size_t n) {
    unsigned char *p = malloc(n + GUARD);
    SGLC_ASSERT(p != NULL);
    memset(p, 0, n);
    memset(p + n, GUARD_BYTE, GUARD);
    return p;
}

static int guard_intact(const void *p, size_t n) {
    const unsigned char *g = (const unsigned char *)p + n;
    for (int i = 0; i < GUARD; i++)
        if (g[i] != GUARD_BYTE) return 0;
    return 1;
}

#endif
