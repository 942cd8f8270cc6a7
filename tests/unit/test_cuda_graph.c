/* CUDA graphs: a decode-like step (embed, rmsnorm, q/k/v matmuls, rope, kv_store, attention,
 * output matmul, add, gather, the head, a download) run for several steps of growing context on
 * two CUDA backends, one with graphs and one without, must give bit-identical logits every step,
 * and the graph backend must actually have captured once and replayed afterwards. GPU only: on
 * a machine without one this prints one "skipped" line and passes (CI has no GPU). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "quant/ggml_types.h"
#include "test_util.h"
#ifdef SGLC_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#define D 256
#define V 1000
#define NH 4
#define NKV 2
#define HD 64
#define SLOTS 512
#define BS 3 /* sequences decoding together */
#define STEPS 6

static uint64_t g_s = 88172645463325252ull;
static float rnd(void) {
    g_s ^= g_s << 13;
    g_s ^= g_s >> 7;
    g_s ^= g_s << 17;
    return (float)((double)(g_s >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

typedef struct {
    sglc_backend *be;
    sglc_weight emb, norm, wq, wk, wv, wo, out;
    float *x, *xb, *q, *k, *v, *att, *xo, *xl, *logits;
    void *kc, *vc;
} rig;

static void weight(rig *r, sglc_weight *w, uint32_t type, int64_t n, int64_t k, const void *host) {
    *w = (sglc_weight){.type = type, .k = k, .n = n, .host = host, .present = 1};
    sglc_err err = {{0}};
    SGLC_ASSERT(r->be->ops->prepare_weight(r->be, w, &err) == 0);
}

static float *buf(sglc_backend *be, size_t n) {
    float *p = be->ops->alloc(be, n * sizeof(float));
    SGLC_ASSERT(p != NULL);
    return p;
}

/* one decode step: tokens of BS sequences at position `step` */
static void run_step(rig *r, int step, const int32_t *tokens, float *logits_host) {
    const sglc_backend_ops *op = r->be->ops;
    int32_t pos[BS], seq[BS], slot[BS], start[BS], lrows[BS], table[BS * 64];
    for (int s = 0; s < BS; s++) {
        pos[s] = step;
        seq[s] = s;
        start[s] = s * 64;
        lrows[s] = s;
        for (int p = 0; p < 64; p++)
            table[s * 64 + p] = (s * 131 + p * 7) % SLOTS;
        slot[s] = table[s * 64 + step];
    }
    sglc_batch hb = {.n_tokens = BS,
                     .n_seqs = BS,
                     .n_logits = BS,
                     .tokens = tokens,
                     .pos = pos,
                     .seq = seq,
                     .out_slot = slot,
                     .seq_slot_start = start,
                     .slot_table = table,
                     .logit_rows = lrows,
                     .n_tokens_padded = BS,
                     .n_slot_table = BS * 64,
                     .max_context = step + 1,
                     .is_decode = 1};
    sglc_attn_params ap = {.n_head = NH,
                           .n_head_kv = NKV,
                           .head_dim = HD,
                           .rot_dim = HD,
                           .theta = 10000.0f,
                           .scale = 0.125f,
                           .mode = SGLC_ROPE_NEOX,
                           .kv_slots = SLOTS,
                           .kv_type = SGLC_GGML_TYPE_F16};
    const sglc_batch *b = op->set_batch(r->be, &hb);
    op->begin_step(r->be, b);
    op->embed(r->be, &r->emb, b, r->x);
    op->rmsnorm(r->be, r->x, &r->norm, r->xb, BS, D, 1e-5f);
    const sglc_weight *qkv[3] = {&r->wq, &r->wk, &r->wv};
    float *const y[3] = {r->q, r->k, r->v};
    op->matmul_n(r->be, 3, qkv, NULL, r->xb, BS, y);
    op->rope(r->be, b, r->q, r->k, &ap);
    op->kv_store(r->be, b, r->k, r->v, r->kc, r->vc, &ap);
    op->attention(r->be, b, r->q, r->kc, r->vc, r->att, &ap);
    op->matmul(r->be, &r->wo, NULL, r->att, BS, r->xo);
    op->add(r->be, r->x, r->xo, BS * D);
    op->gather_rows(r->be, r->x, b->logit_rows, BS, D, r->xl);
    op->rmsnorm(r->be, r->xl, &r->norm, r->xl, BS, D, 1e-5f);
    op->matmul(r->be, &r->out, NULL, r->xl, BS, r->logits);
    op->download(r->be, logits_host, r->logits, (size_t)BS * V * sizeof(float));
    op->end_step(r->be);
    op->sync(r->be);
}

static int rig_open(rig *r, int graphs, void *const *host) {
    memset(r, 0, sizeof *r);
    sglc_backend_params bp = {.disable_cuda_graph = !graphs};
    sglc_err err = {{0}};
    if (sglc_backend_open(&r->be, "cuda", &bp, &err) != 0) {
        printf("test_cuda_graph: skipped: no GPU (%s)\n", err.msg);
        return -1;
    }
    weight(r, &r->emb, SGLC_GGML_TYPE_Q8_0, V, D, host[0]);
    weight(r, &r->norm, SGLC_GGML_TYPE_F32, 1, D, host[1]);
    weight(r, &r->wq, SGLC_GGML_TYPE_Q4_K, NH * HD, D, host[2]);
    weight(r, &r->wk, SGLC_GGML_TYPE_Q4_K, NKV * HD, D, host[3]);
    weight(r, &r->wv, SGLC_GGML_TYPE_Q4_K, NKV * HD, D, host[4]);
    weight(r, &r->wo, SGLC_GGML_TYPE_BF16, D, NH * HD, host[5]);
    weight(r, &r->out, SGLC_GGML_TYPE_Q8_0, V, D, host[0]);
    r->x = buf(r->be, BS * D), r->xb = buf(r->be, BS * D), r->q = buf(r->be, BS * NH * HD);
    r->k = buf(r->be, BS * NKV * HD), r->v = buf(r->be, BS * NKV * HD);
    r->att = buf(r->be, BS * NH * HD), r->xo = buf(r->be, BS * D), r->xl = buf(r->be, BS * D);
    r->logits = buf(r->be, BS * V);
    r->kc = buf(r->be, SLOTS * NKV * HD / 2), r->vc = buf(r->be, SLOTS * NKV * HD / 2);
    const sglc_weight *ws[] = {&r->emb, &r->wq, &r->wk, &r->wv, &r->wo, &r->out};
    sglc_attn_params ap = {.n_head = NH,
                           .n_head_kv = NKV,
                           .head_dim = HD,
                           .rot_dim = HD,
                           .kv_slots = SLOTS,
                           .kv_type = SGLC_GGML_TYPE_F16};
    SGLC_ASSERT(r->be->ops->reserve(r->be, ws, 6, 16, &ap, &err) == 0);
    /* a zeroed cache, so both rigs start from the same state */
    void *z = calloc(SLOTS * NKV * HD, 2);
    r->be->ops->upload(r->be, r->kc, z, SLOTS * NKV * HD * 2);
    r->be->ops->upload(r->be, r->vc, z, SLOTS * NKV * HD * 2);
    r->be->ops->sync(r->be);
    free(z);
    return 0;
}

static void rig_close(rig *r) {
    float *bufs[] = {r->x, r->xb, r->q, r->k, r->v, r->att, r->xo, r->xl, r->logits, r->kc, r->vc};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        r->be->ops->free(r->be, bufs[i]);
    sglc_backend_close(r->be);
}

static void *quantized(uint32_t type, int64_t n, int64_t k) {
    size_t rb = sglc_ggml_row_bytes(type, k);
    char *q = malloc(rb * (size_t)n);
    float *row = malloc((size_t)k * sizeof(float));
    for (int64_t r = 0; r < n; r++) {
        for (int64_t j = 0; j < k; j++)
            row[j] = rnd() * 0.3f;
        SGLC_ASSERT(sglc_ggml_quantize_row(type, row, q + (size_t)r * rb, k) == 0);
    }
    free(row);
    return q;
}

int main(void) {
    void *host[6];
    host[0] = quantized(SGLC_GGML_TYPE_Q8_0, V, D);
    float *g = malloc(D * sizeof(float));
    for (int i = 0; i < D; i++)
        g[i] = 1.0f + 0.1f * rnd();
    host[1] = g;
    host[2] = quantized(SGLC_GGML_TYPE_Q4_K, NH * HD, D);
    host[3] = quantized(SGLC_GGML_TYPE_Q4_K, NKV * HD, D);
    host[4] = quantized(SGLC_GGML_TYPE_Q4_K, NKV * HD, D);
    host[5] = quantized(SGLC_GGML_TYPE_BF16, D, NH * HD);
    rig with, without;
    int rc = 0;
    if (rig_open(&with, 1, host) != 0) goto done;
    if (rig_open(&without, 0, host) != 0) {
        rig_close(&with);
        goto done;
    }
    float *a = malloc((size_t)BS * V * sizeof(float)), *b = malloc((size_t)BS * V * sizeof(float));
    for (int step = 0; step < STEPS; step++) {
        int32_t tokens[BS];
        for (int s = 0; s < BS; s++)
            tokens[s] = (step * 37 + s * 101 + 5) % V;
        for (size_t i = 0; i < (size_t)BS * V; i++)
            a[i] = b[i] = NAN;
        run_step(&with, step, tokens, a);
        run_step(&without, step, tokens, b);
        size_t diff = 0, first = 0, finite = 1;
        for (size_t i = 0; i < (size_t)BS * V; i++) {
            finite &= isfinite(a[i]) && isfinite(b[i]);
            if (memcmp(&a[i], &b[i], sizeof(float)) != 0 && diff++ == 0) first = i;
        }
        CHECKF(finite, "step %d: NaN/Inf in the logits (graph or eager run)", step);
        CHECKF(diff == 0,
               "step %d: %zu of %d logits differ between graph and eager runs (first at %zu: "
               "%.9g vs %.9g)",
               step, diff, BS * V, first, a[first], b[first]);
    }
#ifdef SGLC_HAVE_CUDA
    int64_t cap = 0, rep = 0, cap0 = 0, rep0 = 0;
    sglc_cuda_graph_stats(with.be, &cap, &rep);
    sglc_cuda_graph_stats(without.be, &cap0, &rep0);
    CHECKF(cap == 1 && rep == STEPS - 1,
           "graphs on: %lld captures and %lld replays over %d steps of one size (expected 1 and "
           "%d)",
           (long long)cap, (long long)rep, STEPS, STEPS - 1);
    CHECKF(cap0 == 0 && rep0 == 0, "graphs off: %lld captures, %lld replays (expected none)",
           (long long)cap0, (long long)rep0);
    /* what the decode log's "cuda graph: True|False" says */
    CHECK(with.be->ops->decode_graph && with.be->ops->decode_graph(with.be, BS) == 1);
    CHECK(without.be->ops->decode_graph(without.be, BS) == 0);
    printf("test_cuda_graph: %d steps identical with and without graphs (%lld capture, %lld "
           "replays)\n",
           STEPS, (long long)cap, (long long)rep);
#endif
    free(a), free(b);
    rig_close(&with);
    rig_close(&without);
    rc = g_test_failures ? 1 : 0;
done:
    for (int i = 0; i < 6; i++)
        free(host[i]);
    if (g_test_failures) fprintf(stderr, "%d check(s) failed\n", g_test_failures);
    return rc;
}
