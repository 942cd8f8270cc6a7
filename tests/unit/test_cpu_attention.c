/* The CPU backend's KV store and attention ops, AVX2 against the plain C path (a backend opened
 * with SGLC_CPU_ISA=ref), on a step that mixes sequences, prefill chunks and decode tokens over
 * scattered KV slots, for head sizes 64 and 128 and one that is no multiple of 64 (80):
 *  - the f16 cache written by kv_store is bit-identical (both round to nearest even);
 *  - attention outputs agree within float summation order (normalized error < 2e-4: a score
 *    that differs in its last bit can move a probability across an f16 rounding boundary, one
 *    f16 step being 4.9e-4 relative), and both match an f64 softmax(q k) v computed here from
 *    the same f16 cache within 1e-3 (the probabilities are rounded to f16, as ggml does);
 *  - each token's output is bit-identical whether it is computed alone or in the batch. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "quant/ggml_types.h"
#include "test_util.h"

enum { N_SEQ = 3, MAX_TOK = 160, SLOTS = 256 };

static uint64_t g_s = 12345;
static float rnd(float a) {
    g_s = g_s * 6364136223846793005ull + 1442695040888963407ull;
    return ((float)((g_s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f) * a;
}

typedef struct {
    sglc_batch b;
    int32_t tokens[MAX_TOK], pos[MAX_TOK], seq[MAX_TOK], out_slot[MAX_TOK];
    int32_t seq_slot_start[N_SEQ], slot_table[N_SEQ * 80];
} step;

/* Sequence s holds ctx[s] positions; the step's tokens are the last new[s] of them. */
static void make_step(step *st, const int ctx[N_SEQ], const int new_tok[N_SEQ]) {
    int nt = 0, off = 0;
    for (int s = 0; s < N_SEQ; s++) {
        st->seq_slot_start[s] = off;
        for (int p = 0; p < ctx[s]; p++) /* scattered slots: a permutation-like walk */
            st->slot_table[off + p] = (int32_t)((s * 97 + p * 37) % SLOTS);
        for (int p = ctx[s] - new_tok[s]; p < ctx[s]; p++) {
            st->tokens[nt] = 0;
            st->pos[nt] = p;
            st->seq[nt] = s;
            st->out_slot[nt] = st->slot_table[off + p];
            nt++;
        }
        off += ctx[s];
    }
    st->b = (sglc_batch){.n_tokens = nt,
                         .n_seqs = N_SEQ,
                         .tokens = st->tokens,
                         .pos = st->pos,
                         .seq = st->seq,
                         .out_slot = st->out_slot,
                         .seq_slot_start = st->seq_slot_start,
                         .slot_table = st->slot_table};
}

static double norm_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void run(sglc_backend *be, const sglc_batch *b, const float *q, const float *k,
                const float *v, void *kc, void *vc, float *out, const sglc_attn_params *p) {
    be->ops->kv_store(be, b, k, v, kc, vc, p);
    be->ops->attention(be, b, q, kc, vc, out, p);
    be->ops->sync(be);
}

static void test_head_dim(sglc_backend *ref, sglc_backend *fast, int hd) {
    const int n_head = 6, n_kv = 2;
    const size_t qd = (size_t)n_head * hd, kvd = (size_t)n_kv * hd;
    sglc_attn_params p = {.n_head = n_head,
                          .n_head_kv = n_kv,
                          .head_dim = hd,
                          .rot_dim = hd,
                          .theta = 10000.0f,
                          .scale = 1.0f / sqrtf((float)hd),
                          .kv_slots = SLOTS,
                          .kv_type = SGLC_GGML_TYPE_F16};
    uint16_t *kc[2], *vc[2];
    for (int i = 0; i < 2; i++) {
        kc[i] = calloc((size_t)SLOTS * kvd, 2);
        vc[i] = calloc((size_t)SLOTS * kvd, 2);
    }
    /* fill every position of every sequence (a prefill of all of them), then a mixed step */
    static const int ctx[N_SEQ] = {50, 7, 80}, all[N_SEQ] = {50, 7, 80};
    static const int mix[N_SEQ] = {1, 7, 13};
    float *q = malloc(sizeof(float) * 137 * qd), *k = malloc(sizeof(float) * 137 * kvd),
          *v = malloc(sizeof(float) * 137 * kvd);
    float *o[2] = {malloc(sizeof(float) * 137 * qd), malloc(sizeof(float) * 137 * qd)};
    step st;
    make_step(&st, ctx, all);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) make_step(&st, ctx, mix);
        const int nt = st.b.n_tokens;
        for (size_t i = 0; i < (size_t)nt * qd; i++)
            q[i] = rnd(3.0f);
        for (size_t i = 0; i < (size_t)nt * kvd; i++) {
            k[i] = rnd(2.0f);
            v[i] = rnd(1.0f);
        }
        sglc_backend *bes[2] = {ref, fast};
        for (int i = 0; i < 2; i++)
            run(bes[i], &st.b, q, k, v, kc[i], vc[i], o[i], &p);
        CHECKF(memcmp(kc[0], kc[1], (size_t)SLOTS * kvd * 2) == 0 &&
                   memcmp(vc[0], vc[1], (size_t)SLOTS * kvd * 2) == 0,
               "hd %d: f16 KV caches differ between ISAs", hd);
        double e = norm_err(o[1], o[0], (size_t)nt * qd);
        CHECKF(e < 2e-4, "hd %d pass %d: attention avx2 vs ref %.3g", hd, pass, e);
        /* f64 reference from the cache */
        double num = 0, den = 0;
        for (int t = 0; t < nt; t++)
            for (int h = 0; h < n_head; h++) {
                const int kvh = h / (n_head / n_kv), n = st.pos[t] + 1;
                const int32_t *slots = st.slot_table + st.seq_slot_start[st.seq[t]];
                double sc[80], mx = -1e300, sum = 0;
                for (int s = 0; s < n; s++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++)
                        d += (double)q[((size_t)t * n_head + h) * hd + i] *
                             sglc_fp16_to_f32(kc[0][(size_t)slots[s] * kvd + (size_t)kvh * hd + i]);
                    sc[s] = d * p.scale;
                    mx = sc[s] > mx ? sc[s] : mx;
                }
                for (int s = 0; s < n; s++)
                    sum += (sc[s] = exp(sc[s] - mx));
                for (int i = 0; i < hd; i++) {
                    double r = 0;
                    for (int s = 0; s < n; s++)
                        r += sc[s] / sum *
                             sglc_fp16_to_f32(vc[0][(size_t)slots[s] * kvd + (size_t)kvh * hd + i]);
                    double got = o[1][((size_t)t * n_head + h) * hd + i];
                    num += (got - r) * (got - r);
                    den += r * r;
                }
            }
        CHECKF(sqrt(num / den) < 1e-3, "hd %d pass %d: attention vs f64 %.3g", hd, pass,
               sqrt(num / den));
    }
    /* batch invariance: each token of the mixed step alone (its K/V are already cached) */
    for (int t = 0; t < st.b.n_tokens; t++) {
        step one = st;
        one.b.tokens = &st.tokens[t];
        one.b.pos = &st.pos[t];
        one.b.seq = &st.seq[t];
        one.b.out_slot = &st.out_slot[t];
        one.b.n_tokens = 1;
        float out1[6 * 128];
        fast->ops->attention(fast, &one.b, q + (size_t)t * qd, kc[1], vc[1], out1, &p);
        CHECKF(memcmp(out1, o[1] + (size_t)t * qd, sizeof(float) * qd) == 0,
               "hd %d: token %d alone differs from it in the batch", hd, t);
    }
    for (int i = 0; i < 2; i++) {
        free(kc[i]);
        free(vc[i]);
        free(o[i]);
    }
    free(q);
    free(k);
    free(v);
}

int main(void) {
    sglc_err err = {{0}};
    sglc_backend *ref = NULL, *fast = NULL;
    sglc_backend_params bp = {.n_threads = 2};
    setenv("SGLC_CPU_ISA", "ref", 1);
    CHECK(sglc_backend_open(&ref, "cpu", &bp, &err) == 0);
    unsetenv("SGLC_CPU_ISA");
    CHECK(sglc_backend_open(&fast, "cpu", &bp, &err) == 0);
    if (ref && fast) {
        test_head_dim(ref, fast, 64);
        test_head_dim(ref, fast, 128);
        test_head_dim(ref, fast, 80);
    }
    sglc_backend_close(ref);
    sglc_backend_close(fast);
    TEST_MAIN_END();
}
