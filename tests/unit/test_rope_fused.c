/* The fused RoPE + KV-write op (the seed's custom RoPE, SGLANG_MLX_USE_CUSTOM_ROPE=1) against the
 * separate rope and kv_store ops of the same backend: the rotated q and the K/V cache rows must
 * be bit-identical (same table, same rotation, same rounding), for both CPU devices, f16 and f32
 * caches, NORM and NEOX rotation, partial rotary dims, Llama-3 frequency factors, GQA, head sizes
 * 64 / 80 / 128, one token (the single-thread path) and many (the pooled path), scattered slots. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "quant/ggml_types.h"
#include "test_util.h"

static uint64_t g_s = 987654321;
static float rnd(void) {
    g_s = g_s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((g_s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static void one_case(sglc_backend *be, int n_tok, int n_head, int n_kv, int hd, int rot,
                     sglc_rope_mode mode, uint32_t kv_type, int use_ff) {
    enum { SLOTS = 512 };
    size_t qd = (size_t)n_head * hd, kvd = (size_t)n_kv * hd,
           esz = kv_type == SGLC_GGML_TYPE_F16 ? 2 : 4;
    float *q = malloc((size_t)n_tok * qd * 4), *k = malloc((size_t)n_tok * kvd * 4);
    float *v = malloc((size_t)n_tok * kvd * 4), *q2 = malloc((size_t)n_tok * qd * 4);
    float *k2 = malloc((size_t)n_tok * kvd * 4), ff[256];
    void *kc1 = calloc(SLOTS, kvd * esz), *vc1 = calloc(SLOTS, kvd * esz);
    void *kc2 = calloc(SLOTS, kvd * esz), *vc2 = calloc(SLOTS, kvd * esz);
    int32_t *pos = malloc((size_t)n_tok * 4), *slot = malloc((size_t)n_tok * 4);
    int32_t *seq = calloc((size_t)n_tok, 4), *tok = calloc((size_t)n_tok, 4);
    for (size_t i = 0; i < (size_t)n_tok * qd; i++)
        q[i] = rnd() * 3;
    for (size_t i = 0; i < (size_t)n_tok * kvd; i++) {
        k[i] = rnd() * 3;
        v[i] = rnd();
    }
    for (int i = 0; i < 256; i++)
        ff[i] = 1.0f + (float)(i % 7);
    for (int t = 0; t < n_tok; t++) {
        pos[t] = 3 * t + (t % 5) * 1000;
        slot[t] = (t * 37 + 11) % SLOTS;
    }
    memcpy(q2, q, (size_t)n_tok * qd * 4);
    memcpy(k2, k, (size_t)n_tok * kvd * 4);
    int32_t start = 0;
    sglc_batch b = {.n_tokens = n_tok,
                    .n_seqs = 1,
                    .tokens = tok,
                    .pos = pos,
                    .seq = seq,
                    .out_slot = slot,
                    .seq_slot_start = &start,
                    .slot_table = slot};
    sglc_attn_params p = {.n_head = n_head,
                          .n_head_kv = n_kv,
                          .head_dim = hd,
                          .rot_dim = rot,
                          .theta = 10000.0f,
                          .scale = 0.125f,
                          .mode = mode,
                          .kv_slots = SLOTS,
                          .kv_type = kv_type,
                          .freq_factors = use_ff ? ff : NULL};
    be->ops->rope(be, &b, q, k, &p);
    be->ops->kv_store(be, &b, k, v, kc1, vc1, &p);
    be->ops->rope_kv_store(be, &b, q2, k2, v, kc2, vc2, &p);
    CHECKF(memcmp(q, q2, (size_t)n_tok * qd * 4) == 0, "%s: q differs (T %d, hd %d, rot %d)",
           be->ops->name, n_tok, hd, rot);
    CHECKF(memcmp(kc1, kc2, SLOTS * kvd * esz) == 0 && memcmp(vc1, vc2, SLOTS * kvd * esz) == 0,
           "%s: cache differs (T %d, hd %d, rot %d, mode %d, kv %u)", be->ops->name, n_tok, hd, rot,
           (int)mode, kv_type);
    free(q);
    free(k);
    free(v);
    free(q2);
    free(k2);
    free(kc1);
    free(vc1);
    free(kc2);
    free(vc2);
    free(pos);
    free(slot);
    free(seq);
    free(tok);
}

int main(void) {
    const char *devs[] = {"cpu", "cpu-ggml"};
    int cases = 0;
    for (int d = 0; d < 2; d++) {
        sglc_backend *be = NULL;
        sglc_err err = {{0}};
        sglc_backend_params bp = {.n_threads = 2};
        if (sglc_backend_open(&be, devs[d], &bp, &err) != 0) {
            /* cpu-ggml needs AVX2: say so, the cpu device still ran */
            CHECKF(d == 1, "%s: %s", devs[d], err.msg);
            printf("%s: not available here (%s)\n", devs[d], err.msg);
            continue;
        }
        CHECK(be->ops->rope_kv_store != NULL);
        const int hds[] = {64, 80, 128};
        for (int h = 0; h < 3; h++)
            for (int m = 0; m < 2; m++)
                for (int kv = 0; kv < 2; kv++)
                    for (int nt = 0; nt < 2; nt++) {
                        int hd = hds[h];
                        one_case(be, nt ? 37 : 1, 8, 2, hd, h == 1 ? hd / 2 : hd,
                                 m ? SGLC_ROPE_NEOX : SGLC_ROPE_NORM,
                                 kv ? SGLC_GGML_TYPE_F32 : SGLC_GGML_TYPE_F16, h == 2);
                        cases++;
                    }
        sglc_backend_close(be);
    }
    if (g_test_failures) {
        fprintf(stderr, "%d failures\n", g_test_failures);
        return 1;
    }
    printf("fused rope + kv store: %d cases bit-identical to rope then kv_store\n", cases);
    return 0;
}
