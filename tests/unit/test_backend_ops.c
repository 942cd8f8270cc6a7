/* ggml's test-backend-ops idea for sglc: every op of every registered backend ("cpu" and
 * "cpu-ggml" in this build; "cuda" joins the list when compiled in) against a plain float64
 * reference computed here, on random inputs of awkward sizes (odd row counts, odd token counts,
 * every weight format the backend accepts), with three checks on every output:
 *   - normalized error ||y - ref|| / ||ref|| under the format's bound (activation rounding of the
 *     quantized kernels: Q8 activations for integer weights, 16-bit for MLX affine on AVX2);
 *   - no NaN or Inf;
 *   - guard floats after the output untouched (no overrun).
 * A backend that refuses a weight format at prepare_weight is reported, not failed (it says so at
 * load, which is the contract). Outputs are read back through download, inputs go through
 * upload, so a device backend is tested the same way. A backend with the optional
 * quantize_affine op (CUDA) must give codes, scales and biases equal byte for byte to the host's
 * sglc_mlx_affine_quantize. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "engine/sampler.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"
#include "test_util.h"

#define GUARD_FLOATS 16
#define CANARY 1234.5f

static uint64_t g_s = 0x9E3779B97F4A7C15ull;
static float rnd(void) {
    g_s ^= g_s >> 12;
    g_s ^= g_s << 25;
    g_s ^= g_s >> 27;
    return (float)((double)((g_s * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0) * 2.0f -
           1.0f;
}

/* backend buffer of n floats plus guard floats, filled from host (or the canary) */
static float *dev_buf(sglc_backend *be, const float *host, size_t n) {
    float *tmp = malloc((n + GUARD_FLOATS) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        tmp[i] = host ? host[i] : CANARY;
    for (size_t i = n; i < n + GUARD_FLOATS; i++)
        tmp[i] = CANARY;
    float *d = be->ops->alloc(be, (n + GUARD_FLOATS) * sizeof(float));
    be->ops->upload(be, d, tmp, (n + GUARD_FLOATS) * sizeof(float));
    free(tmp);
    return d;
}

/* downloads n floats of d into out and checks d's guard; returns 1 when intact */
static int read_back(sglc_backend *be, const float *d, float *out, size_t n) {
    float *tmp = malloc((n + GUARD_FLOATS) * sizeof(float));
    be->ops->download(be, tmp, d, (n + GUARD_FLOATS) * sizeof(float));
    be->ops->sync(be); /* a download is queued like an op: tmp holds the data after sync */
    memcpy(out, tmp, n * sizeof(float));
    int ok = 1;
    for (size_t i = n; i < n + GUARD_FLOATS; i++)
        ok &= tmp[i] == CANARY;
    free(tmp);
    return ok;
}

static int g_cases, g_skipped;

/* Outputs of the cpu backend by op name, so another backend's output for the same op on the
 * same inputs (the matmul and attention cases reseed the generator from their parameters) is
 * also reported against the CPU's: "cuda vs cpu" says whether two backends compute the same
 * function, which the float64 bound alone cannot (both may sit inside it, apart). */
#define N_CPU_OUT 256
static struct {
    char op[96];
    float *y;
    size_t n;
} g_cpu_out[N_CPU_OUT];
static int g_n_cpu_out;

static void versus_cpu(const char *be_name, const char *op, const float *y, size_t n) {
    if (strcmp(be_name, "cpu") == 0) {
        if (g_n_cpu_out == N_CPU_OUT) return;
        float *c = malloc(n * sizeof(float));
        if (!c) return;
        memcpy(c, y, n * sizeof(float));
        snprintf(g_cpu_out[g_n_cpu_out].op, sizeof g_cpu_out[0].op, "%s", op);
        g_cpu_out[g_n_cpu_out].y = c;
        g_cpu_out[g_n_cpu_out++].n = n;
        return;
    }
    for (int i = 0; i < g_n_cpu_out; i++) {
        if (strcmp(g_cpu_out[i].op, op) != 0 || g_cpu_out[i].n != n) continue;
        double num = 0, den = 0, mx = 0;
        for (size_t j = 0; j < n; j++) {
            double d = (double)y[j] - (double)g_cpu_out[i].y[j];
            num += d * d;
            den += (double)g_cpu_out[i].y[j] * g_cpu_out[i].y[j];
            if (fabs(d) > mx) mx = fabs(d);
        }
        printf("%s vs cpu, %s: normalized difference %.3g, largest %.3g\n", be_name, op,
               den > 0 ? sqrt(num / den) : sqrt(num), mx);
        return;
    }
}

static void reseed(uint64_t a, uint64_t b) {
    g_s = 0x9E3779B97F4A7C15ull ^ (a * 0x100000001B3ull) ^ (b << 17) ^ (b >> 5);
    if (!g_s) g_s = 1;
}

/* normalized error, finite, guard: one CHECK line naming the op */
static void compare(const char *be_name, const char *op, const float *y, const double *ref,
                    size_t n, double bound, int guard_ok) {
    versus_cpu(be_name, op, y, n);
    double num = 0, den = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        finite &= isfinite(y[i]);
        num += (y[i] - ref[i]) * (y[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    double e = den > 0 ? sqrt(num / den) : sqrt(num);
    CHECKF(finite, "%s %s: NaN/Inf in the output", be_name, op);
    CHECKF(guard_ok, "%s %s: wrote past the output", be_name, op);
    CHECKF(e <= bound, "%s %s: normalized error %.3g > %.3g", be_name, op, e, bound);
    g_cases++;
}

/* ---- matmul over every weight format ---- */

typedef struct {
    uint32_t type;
    int bits; /* MLX affine */
    double bound;
    const char *name;
} wfmt;

/* a random weight of format f, prepared on be, with its dequantized values (deq) */
typedef struct {
    sglc_weight w;
    void *data;
    uint16_t *scales, *biases;
    double *deq;
} test_weight;

static void tw_free(test_weight *t) {
    free(t->data);
    free(t->scales);
    free(t->biases);
    free(t->deq);
    memset(t, 0, sizeof *t);
}

/* 0: made and prepared; 1: the backend refuses the format (counted as skipped) */
static int tw_make(sglc_backend *be, const wfmt *f, int64_t n, int64_t k, test_weight *t) {
    memset(t, 0, sizeof *t);
    float *wf = malloc((size_t)n * (size_t)k * sizeof(float));
    for (int64_t i = 0; i < n * k; i++)
        wf[i] = rnd() * 0.5f;
    sglc_weight w = {.type = f->type, .k = k, .n = n, .present = 1};
    void *data = NULL;
    uint16_t *scales = NULL, *biases = NULL;
    double *deq = malloc((size_t)n * (size_t)k * sizeof(double));
    if (f->type == SGLC_WTYPE_MLX_AFFINE) {
        int64_t words = sglc_mlx_affine_row_words(k, f->bits), groups = k / 64;
        data = calloc((size_t)(n * words), 4);
        scales = calloc((size_t)(n * groups), 2);
        biases = calloc((size_t)(n * groups), 2);
        uint16_t *wb = malloc((size_t)(n * k) * 2);
        for (int64_t i = 0; i < n * k; i++)
            wb[i] = sglc_f32_to_bf16(wf[i]);
        sglc_mlx_affine_quantize(wb, SGLC_GGML_TYPE_BF16, n, k, f->bits, 64, data, scales, biases);
        free(wb);
        float *row = malloc((size_t)k * sizeof(float));
        for (int64_t r = 0; r < n; r++) {
            sglc_mlx_affine_dequantize_row_f32(
                (const uint32_t *)data + r * words, (const uint16_t *)scales + r * groups,
                (const uint16_t *)biases + r * groups, SGLC_GGML_TYPE_BF16, k, f->bits, 64, row);
            for (int64_t j = 0; j < k; j++)
                deq[r * k + j] = row[j];
        }
        free(row);
        w.q_bits = f->bits;
        w.q_group = 64;
        w.q_dtype = SGLC_GGML_TYPE_BF16;
        w.q_scales = scales;
        w.q_biases = biases;
    } else {
        size_t rb = sglc_ggml_row_bytes(f->type, k);
        data = calloc((size_t)n, rb);
        float *row = malloc((size_t)k * sizeof(float));
        for (int64_t r = 0; r < n; r++) {
            SGLC_ASSERT(sglc_ggml_quantize_row(f->type, wf + r * k, (char *)data + r * rb, k) == 0);
            sglc_ggml_dequantize_row(f->type, (char *)data + r * rb, row, k);
            for (int64_t j = 0; j < k; j++)
                deq[r * k + j] = row[j];
        }
        free(row);
    }
    free(wf);
    w.host = data;
    t->data = data, t->scales = scales, t->biases = biases, t->deq = deq;
    sglc_err err = {{0}};
    if (!be->ops->supports_weight(be, f->type) || be->ops->prepare_weight(be, &w, &err) != 0) {
        g_skipped++;
        tw_free(t);
        return 1;
    }
    t->w = w;
    return 0;
}

static void test_matmul(sglc_backend *be, const wfmt *f, int64_t n, int64_t k, int64_t rows) {
    const char *bn = be->ops->name;
    reseed((uint64_t)f->type * 31 + (uint64_t)f->bits, (uint64_t)(n * 1000003 + k * 101 + rows));
    test_weight tw;
    if (tw_make(be, f, n, k, &tw)) return;
    float *x = malloc((size_t)(rows * k) * sizeof(float));
    for (int64_t i = 0; i < rows * k; i++)
        x[i] = rnd();
    float *dx = dev_buf(be, x, (size_t)(rows * k)), *dy = dev_buf(be, NULL, (size_t)(rows * n));
    be->ops->matmul(be, &tw.w, NULL, dx, rows, dy);
    float *y = malloc((size_t)(rows * n) * sizeof(float));
    int guard = read_back(be, dy, y, (size_t)(rows * n));
    double *ref = malloc((size_t)(rows * n) * sizeof(double));
    for (int64_t t = 0; t < rows; t++)
        for (int64_t o = 0; o < n; o++) {
            double acc = 0;
            for (int64_t j = 0; j < k; j++)
                acc += tw.deq[o * k + j] * x[t * k + j];
            ref[t * n + o] = acc;
        }
    char op[96];
    snprintf(op, sizeof op, "matmul %s n=%lld k=%lld rows=%lld", f->name, (long long)n,
             (long long)k, (long long)rows);
    compare(bn, op, y, ref, (size_t)(rows * n), f->bound, guard);
    be->ops->free(be, dx);
    be->ops->free(be, dy);
    free(x);
    free(y);
    free(ref);
    tw_free(&tw);
}

/* ---- the fused ops against the op sequences they stand for, on the same backend ---- */

/* normalized difference of a against b (the sequence's result) */
static double rel_diff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void check_fused(const char *bn, const char *op, const float *y, const float *seq, size_t n,
                        int guard) {
    int finite = 1;
    for (size_t i = 0; i < n; i++)
        finite &= isfinite(y[i]);
    const double e = rel_diff(y, seq, n);
    printf("%s %s: fused vs sequence %.3g\n", bn, op, e);
    CHECKF(finite, "%s %s: NaN/Inf in the output", bn, op);
    CHECKF(guard, "%s %s: wrote past the output", bn, op);
    /* the fused ops differ from the sequence by the order of the norm's sum of squares */
    CHECKF(e <= 1e-5, "%s %s: fused differs from the sequence by %.3g", bn, op, e);
    g_cases++;
}

static void test_fused_matmul(sglc_backend *be, const wfmt *f, int64_t n0, int64_t n1, int64_t k,
                              int64_t rows) {
    const sglc_backend_ops *o = be->ops;
    if (!o->norm_matmul_n || !o->matmul_add) return;
    reseed((uint64_t)f->type * 131 + (uint64_t)f->bits, (uint64_t)(n0 * 7919 + k * 13 + rows));
    const int64_t ns[3] = {n0, n1, n1};
    test_weight tw[3];
    for (int i = 0; i < 3; i++)
        if (tw_make(be, f, ns[i], k, &tw[i])) {
            for (int j = 0; j < i; j++)
                tw_free(&tw[j]);
            return;
        }
    const sglc_weight *w3[3] = {&tw[0].w, &tw[1].w, &tw[2].w};
    float *x = malloc((size_t)(rows * k) * 4), *g = malloc((size_t)k * 4);
    for (int64_t i = 0; i < rows * k; i++)
        x[i] = rnd() * 3.0f;
    for (int64_t i = 0; i < k; i++)
        g[i] = 1.0f + 0.5f * rnd();
    sglc_weight nw = {.type = SGLC_GGML_TYPE_F32, .k = k, .n = 1, .present = 1, .host = g};
    sglc_err err = {{0}};
    SGLC_ASSERT(o->prepare_weight(be, &nw, &err) == 0);
    float *dx = dev_buf(be, x, (size_t)(rows * k)), *dxn = dev_buf(be, NULL, (size_t)(rows * k));
    float *dy[3], *ds[3], *hy[3], *hs[3];
    for (int i = 0; i < 3; i++) {
        dy[i] = dev_buf(be, NULL, (size_t)(rows * ns[i]));
        ds[i] = dev_buf(be, NULL, (size_t)(rows * ns[i]));
        hy[i] = malloc((size_t)(rows * ns[i]) * 4);
        hs[i] = malloc((size_t)(rows * ns[i]) * 4);
    }
    const float eps = 1e-6f;
    char op[128];
    /* rmsnorm + three products (q/k/v) */
    o->norm_matmul_n(be, dx, &nw, eps, dxn, 3, w3, NULL, rows, dy, 0);
    o->rmsnorm(be, dx, &nw, dxn, rows, k, eps);
    for (int i = 0; i < 3; i++)
        o->matmul(be, w3[i], NULL, dxn, rows, ds[i]);
    for (int i = 0; i < 3; i++) {
        int guard = read_back(be, dy[i], hy[i], (size_t)(rows * ns[i]));
        read_back(be, ds[i], hs[i], (size_t)(rows * ns[i]));
        snprintf(op, sizeof op, "norm_matmul_n %s n=%lld k=%lld rows=%lld output %d", f->name,
                 (long long)ns[i], (long long)k, (long long)rows, i);
        check_fused(be->ops->name, op, hy[i], hs[i], (size_t)(rows * ns[i]), guard);
    }
    /* rmsnorm + gate/up + silu * up (w[1], w[2] have the same shape) */
    const sglc_weight *gu[2] = {w3[1], w3[2]};
    float *const gy[2] = {dy[1], dy[2]};
    o->norm_matmul_n(be, dx, &nw, eps, dxn, 2, gu, NULL, rows, gy, 1);
    o->rmsnorm(be, dx, &nw, dxn, rows, k, eps);
    o->matmul(be, gu[0], NULL, dxn, rows, ds[1]);
    o->matmul(be, gu[1], NULL, dxn, rows, ds[2]);
    o->silu_mul(be, ds[1], ds[2], ds[1], rows * n1);
    {
        int guard = read_back(be, dy[1], hy[1], (size_t)(rows * n1));
        read_back(be, ds[1], hs[1], (size_t)(rows * n1));
        snprintf(op, sizeof op, "norm_matmul_n glu %s n=%lld k=%lld rows=%lld", f->name,
                 (long long)n1, (long long)k, (long long)rows);
        check_fused(be->ops->name, op, hy[1], hs[1], (size_t)(rows * n1), guard);
    }
    /* product + residual: y starts as the same residual on both sides */
    float *res = malloc((size_t)(rows * n0) * 4);
    for (int64_t i = 0; i < rows * n0; i++)
        res[i] = rnd();
    o->upload(be, dy[0], res, (size_t)(rows * n0) * 4);
    o->upload(be, ds[0], res, (size_t)(rows * n0) * 4);
    float *dt = dev_buf(be, NULL, (size_t)(rows * n0)); /* the product before the add */
    o->matmul_add(be, w3[0], NULL, dx, rows, dy[0], dt);
    o->matmul(be, w3[0], NULL, dx, rows, dt);
    o->add(be, ds[0], dt, rows * n0);
    o->free(be, dt);
    {
        int guard = read_back(be, dy[0], hy[0], (size_t)(rows * n0));
        read_back(be, ds[0], hs[0], (size_t)(rows * n0));
        snprintf(op, sizeof op, "matmul_add %s n=%lld k=%lld rows=%lld", f->name, (long long)n0,
                 (long long)k, (long long)rows);
        check_fused(be->ops->name, op, hy[0], hs[0], (size_t)(rows * n0), guard);
    }
    for (int i = 0; i < 3; i++) {
        o->free(be, dy[i]), o->free(be, ds[i]);
        free(hy[i]), free(hs[i]);
        tw_free(&tw[i]);
    }
    if (o->release_weight) o->release_weight(be, &nw);
    o->free(be, dx), o->free(be, dxn);
    free(x), free(g), free(res);
}

/* the attention of n_head query heads over n_kv kv heads of hd dims, NeoX RoPE over all of
 * them, a cache of kv_slots slots of kv_type */
static sglc_attn_params attn_params(int32_t n_head, int32_t n_kv, int32_t hd, int32_t kv_slots,
                                    uint32_t kv_type) {
    return (sglc_attn_params){.n_head = n_head,
                              .n_head_kv = n_kv,
                              .head_dim = hd,
                              .rot_dim = hd,
                              .theta = 10000.0f,
                              .scale = 1.0f / sqrtf((float)hd),
                              .mode = SGLC_ROPE_NEOX,
                              .kv_slots = kv_slots,
                              .kv_type = kv_type};
}

/* q/k head norms + rope + kv write against rmsnorm, rope and kv_store */
static void test_fused_rope(sglc_backend *be, int32_t T, int32_t n_head, int32_t n_kv, int32_t hd,
                            int32_t rot, int with_norm, uint32_t kv_type) {
    const sglc_backend_ops *o = be->ops;
    if (!o->qk_norm_rope_kv) return;
    const int32_t slots = 64;
    reseed((uint64_t)kv_type + 5, (uint64_t)(T * 1009 + n_head * 31 + hd + with_norm));
    const size_t qd = (size_t)n_head * hd, kvd = (size_t)n_kv * hd;
    const int f16 = kv_type == SGLC_GGML_TYPE_F16;
    float *q = malloc(T * qd * 4), *k = malloc(T * kvd * 4), *v = malloc(T * kvd * 4);
    float *qn = malloc((size_t)hd * 4), *kn = malloc((size_t)hd * 4);
    for (size_t i = 0; i < T * qd; i++)
        q[i] = rnd() * 2.0f;
    for (size_t i = 0; i < T * kvd; i++)
        k[i] = rnd() * 2.0f, v[i] = rnd();
    for (int32_t i = 0; i < hd; i++)
        qn[i] = 1.0f + 0.3f * rnd(), kn[i] = 1.0f + 0.3f * rnd();
    sglc_weight wq = {.type = SGLC_GGML_TYPE_F32, .k = hd, .n = 1, .present = 1, .host = qn};
    sglc_weight wk = {.type = SGLC_GGML_TYPE_F32, .k = hd, .n = 1, .present = 1, .host = kn};
    sglc_err err = {{0}};
    SGLC_ASSERT(o->prepare_weight(be, &wq, &err) == 0 && o->prepare_weight(be, &wk, &err) == 0);
    int32_t *tok = calloc((size_t)T, 4), *pos = malloc((size_t)T * 4), *seq = calloc((size_t)T, 4);
    int32_t *slot = malloc((size_t)T * 4), start = 0, lrow = 0;
    for (int32_t t = 0; t < T; t++)
        pos[t] = 100 + t * 3, slot[t] = (t * 7 + 3) % slots;
    sglc_batch hb = {.n_tokens = T,
                     .n_seqs = 1,
                     .n_logits = 1,
                     .tokens = tok,
                     .pos = pos,
                     .seq = seq,
                     .out_slot = slot,
                     .seq_slot_start = &start,
                     .slot_table = slot,
                     .logit_rows = &lrow};
    sglc_attn_params p = attn_params(n_head, n_kv, hd, slots, kv_type);
    p.rot_dim = rot;
    p.theta = 1000000.0f;
    const sglc_batch *b = o->set_batch(be, &hb);
    const size_t cache_f = f16 ? (size_t)slots * kvd / 2 : (size_t)slots * kvd;
    float *res[2][4]; /* [fused, sequence][q, k cache, v cache] */
    for (int s = 0; s < 2; s++) {
        float *dq = dev_buf(be, q, T * qd), *dk = dev_buf(be, k, T * kvd),
              *dv = dev_buf(be, v, T * kvd);
        float *kc = dev_buf(be, NULL, cache_f), *vc = dev_buf(be, NULL, cache_f);
        const sglc_weight *a = with_norm ? &wq : NULL, *c = with_norm ? &wk : NULL;
        if (s == 0) {
            o->qk_norm_rope_kv(be, b, dq, dk, dv, a, c, 1e-6f, kc, vc, &p);
        } else {
            if (with_norm) {
                o->rmsnorm(be, dq, &wq, dq, T * n_head, hd, 1e-6f);
                o->rmsnorm(be, dk, &wk, dk, T * n_kv, hd, 1e-6f);
            }
            o->rope(be, b, dq, dk, &p);
            o->kv_store(be, b, dk, dv, kc, vc, &p);
        }
        res[s][0] = malloc(T * qd * 4);
        res[s][1] = malloc(cache_f * 4);
        res[s][2] = malloc(cache_f * 4);
        res[s][3] = (float *)(intptr_t)(read_back(be, dq, res[s][0], T * qd) &
                                        read_back(be, kc, res[s][1], cache_f) &
                                        read_back(be, vc, res[s][2], cache_f));
        o->free(be, dq), o->free(be, dk), o->free(be, dv), o->free(be, kc), o->free(be, vc);
    }
    /* the caches compared as values (f16 pairs widened) */
    float *wide[2][2];
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 2; c++) {
            wide[s][c] = malloc((size_t)slots * kvd * 4);
            for (size_t i = 0; i < (size_t)slots * kvd; i++)
                wide[s][c][i] =
                    f16 ? sglc_fp16_to_f32(((uint16_t *)res[s][1 + c])[i]) : res[s][1 + c][i];
        }
    char op[128];
    const int guard = res[0][3] != NULL;
    snprintf(op, sizeof op, "qk_norm_rope_kv T=%d heads=%d/%d hd=%d rot=%d%s kv=%s: q", T, n_head,
             n_kv, hd, rot, with_norm ? " normed" : "", f16 ? "f16" : "f32");
    check_fused(o->name, op, res[0][0], res[1][0], T * qd, guard);
    snprintf(op, sizeof op, "qk_norm_rope_kv T=%d hd=%d: k cache", T, hd);
    check_fused(o->name, op, wide[0][0], wide[1][0], (size_t)slots * kvd, guard);
    snprintf(op, sizeof op, "qk_norm_rope_kv T=%d hd=%d: v cache", T, hd);
    check_fused(o->name, op, wide[0][1], wide[1][1], (size_t)slots * kvd, guard);
    for (int s = 0; s < 2; s++) {
        free(res[s][0]), free(res[s][1]), free(res[s][2]);
        free(wide[s][0]), free(wide[s][1]);
    }
    if (o->release_weight) o->release_weight(be, &wq), o->release_weight(be, &wk);
    free(q), free(k), free(v), free(qn), free(kn), free(tok), free(pos), free(seq), free(slot);
}

/* ---- the float ops ---- */

static void test_rmsnorm(sglc_backend *be, int64_t rows, int64_t dim) {
    float *x = malloc((size_t)(rows * dim) * 4), *g = malloc((size_t)dim * 4);
    for (int64_t i = 0; i < rows * dim; i++)
        x[i] = rnd() * 3;
    for (int64_t i = 0; i < dim; i++)
        g[i] = rnd();
    sglc_weight w = {.type = SGLC_GGML_TYPE_F32, .k = dim, .n = 1, .host = g, .present = 1};
    sglc_err err;
    if (be->ops->prepare_weight(be, &w, &err) != 0) {
        fprintf(stderr, "%s: prepare: %s\n", be->ops->name, err.msg);
        abort();
    }
    float *dx = dev_buf(be, x, (size_t)(rows * dim)), *dy = dev_buf(be, NULL, (size_t)(rows * dim));
    be->ops->rmsnorm(be, dx, &w, dy, rows, dim, 1e-5f);
    float *y = malloc((size_t)(rows * dim) * 4);
    int guard = read_back(be, dy, y, (size_t)(rows * dim));
    double *ref = malloc((size_t)(rows * dim) * sizeof(double));
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t i = 0; i < dim; i++)
            ss += (double)x[r * dim + i] * x[r * dim + i];
        double s = 1.0 / sqrt(ss / (double)dim + 1e-5);
        for (int64_t i = 0; i < dim; i++)
            ref[r * dim + i] = x[r * dim + i] * s * g[i];
    }
    char op[64];
    snprintf(op, sizeof op, "rmsnorm rows=%lld dim=%lld", (long long)rows, (long long)dim);
    compare(be->ops->name, op, y, ref, (size_t)(rows * dim), 1e-5, guard);
    be->ops->free(be, dx);
    be->ops->free(be, dy);
    free(x), free(g), free(y), free(ref);
}

static void test_elementwise(sglc_backend *be, int64_t n) {
    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    double *ref = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        a[i] = rnd() * 6;
        b[i] = rnd() * 2;
    }
    float *da = dev_buf(be, a, (size_t)n), *db = dev_buf(be, b, (size_t)n),
          *dy = dev_buf(be, NULL, (size_t)n);
    be->ops->silu_mul(be, da, db, dy, n);
    int guard = read_back(be, dy, y, (size_t)n);
    for (int64_t i = 0; i < n; i++)
        ref[i] = a[i] / (1.0 + exp(-(double)a[i])) * b[i];
    char op[64];
    snprintf(op, sizeof op, "silu_mul n=%lld", (long long)n);
    compare(be->ops->name, op, y, ref, (size_t)n, 1e-5, guard);
    be->ops->add(be, da, db, n);
    guard = read_back(be, da, y, (size_t)n);
    for (int64_t i = 0; i < n; i++)
        ref[i] = (double)a[i] + b[i];
    snprintf(op, sizeof op, "add n=%lld", (long long)n);
    compare(be->ops->name, op, y, ref, (size_t)n, 1e-7, guard);
    be->ops->free(be, da), be->ops->free(be, db), be->ops->free(be, dy);
    free(a), free(b), free(y), free(ref);
}

static void test_gather_embed(sglc_backend *be, uint32_t type, int64_t vocab, int64_t dim,
                              int32_t n_tok) {
    float *tab = malloc((size_t)(vocab * dim) * 4);
    for (int64_t i = 0; i < vocab * dim; i++)
        tab[i] = rnd();
    int32_t *ids = malloc((size_t)n_tok * 4), *pos = calloc((size_t)n_tok, 4);
    for (int32_t t = 0; t < n_tok; t++)
        ids[t] = (int32_t)((t * 7919 + 3) % vocab);
    /* the table in the given format; the reference reads the same rows dequantized */
    size_t rb = sglc_ggml_row_bytes(type, dim);
    void *q = calloc((size_t)vocab, rb);
    for (int64_t r = 0; r < vocab; r++) {
        SGLC_ASSERT(sglc_ggml_quantize_row(type, tab + r * dim, (char *)q + r * rb, dim) == 0);
        sglc_ggml_dequantize_row(type, (char *)q + r * rb, tab + r * dim, dim);
    }
    sglc_weight w = {.type = type, .k = dim, .n = vocab, .host = q, .present = 1};
    sglc_err err;
    if (be->ops->prepare_weight(be, &w, &err) != 0) { /* refused at load: said so */
        g_skipped++;
        free(q), free(tab), free(ids), free(pos);
        return;
    }
    sglc_batch hb = {.n_tokens = n_tok, .n_seqs = 1, .tokens = ids, .pos = pos};
    const sglc_batch *b = be->ops->set_batch(be, &hb);
    float *dy = dev_buf(be, NULL, (size_t)(n_tok * dim));
    be->ops->embed(be, &w, b, dy);
    float *y = malloc((size_t)(n_tok * dim) * 4);
    int guard = read_back(be, dy, y, (size_t)(n_tok * dim));
    double *ref = malloc((size_t)((n_tok > 3 ? n_tok : 3) * dim) * sizeof(double));
    for (int32_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < dim; i++)
            ref[t * dim + i] = tab[ids[t] * dim + i];
    char op[64];
    snprintf(op, sizeof op, "embed %s tokens=%d dim=%lld", sglc_ggml_type_name(type), n_tok,
             (long long)dim);
    compare(be->ops->name, op, y, ref, (size_t)(n_tok * dim), 0, guard);
    /* gather_rows: logit rows of a step */
    int32_t rows[3] = {n_tok - 1, 0, n_tok / 2};
    float *dsrc = dev_buf(be, y, (size_t)(n_tok * dim)), *dg = dev_buf(be, NULL, (size_t)(3 * dim));
    /* the row list is backend memory, as the model passes b->logit_rows */
    int32_t *drows = be->ops->alloc(be, sizeof rows);
    be->ops->upload(be, drows, rows, sizeof rows);
    be->ops->gather_rows(be, dsrc, drows, 3, dim, dg);
    float *g = malloc((size_t)(3 * dim) * 4);
    guard = read_back(be, dg, g, (size_t)(3 * dim));
    for (int r = 0; r < 3; r++)
        for (int64_t i = 0; i < dim; i++)
            ref[r * dim + i] = y[rows[r] * dim + i];
    compare(be->ops->name, "gather_rows", g, ref, (size_t)(3 * dim), 0, guard);
    /* embed with token_src: tokens 1 and n_tok-1 come from the previous step's sampled ids
     * (backend memory), the others from tokens */
    if (n_tok >= 2) {
        int32_t prev[2] = {(int32_t)(vocab - 1), (int32_t)(vocab / 3)};
        int32_t *src = malloc((size_t)n_tok * 4);
        for (int32_t t = 0; t < n_tok; t++)
            src[t] = -1;
        src[1] = 0;
        src[n_tok - 1] = 1;
        int32_t *dprev = be->ops->alloc(be, sizeof prev);
        be->ops->upload(be, dprev, prev, sizeof prev);
        sglc_batch hb2 = {.n_tokens = n_tok,
                          .n_seqs = 1,
                          .tokens = ids,
                          .pos = pos,
                          .token_src = src,
                          .prev_ids = dprev};
        b = be->ops->set_batch(be, &hb2);
        be->ops->embed(be, &w, b, dy);
        guard = read_back(be, dy, y, (size_t)(n_tok * dim));
        for (int32_t t = 0; t < n_tok; t++) {
            int32_t id = src[t] >= 0 ? prev[src[t]] : ids[t];
            for (int64_t i = 0; i < dim; i++)
                ref[t * dim + i] = tab[id * dim + i];
        }
        snprintf(op, sizeof op, "embed %s token_src tokens=%d", sglc_ggml_type_name(type), n_tok);
        compare(be->ops->name, op, y, ref, (size_t)(n_tok * dim), 0, guard);
        be->ops->free(be, dprev);
        free(src);
    }
    be->ops->free(be, drows);
    be->ops->free(be, dy), be->ops->free(be, dsrc), be->ops->free(be, dg);
    free(q), free(tab), free(ids), free(pos), free(y), free(ref), free(g);
}

/* rope + kv_store + attention of one sequence of T tokens (a prefill), against f64 attention
 * over the cache the backend wrote (its f16 rounding is the format's, not an error) */
/* slot_writes: the batch's slot table starts wrong and the step's slot writes correct it
 * (set_batch applies them before any op) */
/* T tokens of one sequence at positions 0..T-1 stored and attended (a prefill); with decode,
 * the cache is written by that step and then the last token alone attends to all T keys, twice
 * (a decode step: a GPU splits the context and merges the splits in the kernel; the second
 * run checks that its per-step state was reset) */
static void test_attention(sglc_backend *be, int32_t T, int32_t n_head, int32_t n_kv, int32_t hd,
                           uint32_t kv_type, int slot_writes, int decode) {
    const int32_t slots = T <= 256 ? 256 : 2048; /* (t * 37 + 5) % slots is one-to-one */
    const int f16 = kv_type == SGLC_GGML_TYPE_F16;
    reseed((uint64_t)kv_type * 7 + (uint64_t)slot_writes,
           (uint64_t)(T * 1000003 + n_head * 1009 + n_kv * 101 + hd));
    size_t qd = (size_t)n_head * hd, kvd = (size_t)n_kv * hd;
    float *q = malloc(T * qd * 4), *k = malloc(T * kvd * 4), *v = malloc(T * kvd * 4);
    for (size_t i = 0; i < T * qd; i++)
        q[i] = rnd();
    for (size_t i = 0; i < T * kvd; i++) {
        k[i] = rnd();
        v[i] = rnd();
    }
    int32_t *tok = calloc((size_t)T, 4), *pos = malloc((size_t)T * 4), *seq = calloc((size_t)T, 4);
    int32_t *slot = malloc((size_t)T * 4), start = 0, lrow = T - 1;
    int32_t *table = malloc((size_t)T * 4), *widx = malloc((size_t)T * 4);
    for (int32_t t = 0; t < T; t++) {
        pos[t] = t;
        slot[t] = (t * 37 + 5) % slots;
        table[t] = slot_writes ? 0 : slot[t];
        widx[t] = t;
    }
    sglc_batch hb = {.n_tokens = T,
                     .n_seqs = 1,
                     .n_logits = 1,
                     .tokens = tok,
                     .pos = pos,
                     .seq = seq,
                     .out_slot = slot,
                     .seq_slot_start = &start,
                     .slot_table = table,
                     .logit_rows = &lrow,
                     .n_slot_writes = slot_writes ? T : 0,
                     .slot_write_idx = widx,
                     .slot_write_val = slot};
    sglc_attn_params p = attn_params(n_head, n_kv, hd, slots, kv_type);
    /* a backend that takes the host's RoPE table (a GPU's) gets one, as the model gives it */
    float *dcs = NULL;
    if (be->ops->wants_rope_table) {
        float *tab = malloc((size_t)T * (size_t)hd * sizeof(float)), cs[256], sn[256];
        for (int32_t t = 0; t < T; t++) {
            sglc_rope_table(t, &p, NULL, cs, sn);
            for (int32_t i = 0; i < hd / 2; i++)
                tab[(t * (hd / 2) + i) * 2] = cs[i], tab[(t * (hd / 2) + i) * 2 + 1] = sn[i];
        }
        dcs = dev_buf(be, tab, (size_t)T * (size_t)hd);
        free(tab);
        p.rope_cs = dcs;
        p.rope_cs_len = T;
    }
    const sglc_batch *b = be->ops->set_batch(be, &hb);
    float *dq = dev_buf(be, q, T * qd), *dk = dev_buf(be, k, T * kvd),
          *dv = dev_buf(be, v, T * kvd);
    size_t cache_f = f16 ? (size_t)slots * kvd / 2 : (size_t)slots * kvd; /* f16 pairs as floats */
    float *kc = dev_buf(be, NULL, cache_f), *vc = dev_buf(be, NULL, cache_f);
    float *dout = dev_buf(be, NULL, T * qd);
    be->ops->rope(be, b, dq, dk, &p);
    float *qr = malloc(T * qd * 4);
    int guard = read_back(be, dq, qr, T * qd);
    /* rope reference */
    double *ref = malloc(T * qd * sizeof(double));
    for (int32_t t = 0; t < T; t++)
        for (int32_t h = 0; h < n_head; h++)
            for (int32_t i = 0; i < hd / 2; i++) {
                double th = t * pow(10000.0, -2.0 * i / hd);
                double x0 = q[(t * n_head + h) * hd + i],
                       x1 = q[(t * n_head + h) * hd + i + hd / 2];
                ref[(t * n_head + h) * hd + i] = x0 * cos(th) - x1 * sin(th);
                ref[(t * n_head + h) * hd + i + hd / 2] = x0 * sin(th) + x1 * cos(th);
            }
    char op[96];
    snprintf(op, sizeof op, "rope T=%d hd=%d", T, hd);
    /* the angle t * freq in f32 is off by about t * 2^-24 rad: the bound grows past 256 */
    compare(be->ops->name, op, qr, ref, T * qd, T <= 256 ? 1e-5 : 1e-5 * T / 256.0, guard);
    be->ops->kv_store(be, b, dk, dv, kc, vc, &p);
    float *out = malloc(T * qd * 4);
    if (!decode) {
        be->ops->attention(be, b, dq, kc, vc, dout, &p);
        guard = read_back(be, dout, out, T * qd);
    } else { /* the last token alone; its rows of out compared below */
        int32_t zero = 0;
        sglc_batch hd1 = {.n_tokens = 1,
                          .n_seqs = 1,
                          .n_logits = 1,
                          .tokens = tok,
                          .pos = pos + T - 1,
                          .seq = seq,
                          .out_slot = slot + T - 1,
                          .seq_slot_start = &start,
                          .slot_table = table,
                          .logit_rows = &zero};
        const sglc_batch *b1 = be->ops->set_batch(be, &hd1);
        float *o2 = malloc(qd * 4);
        be->ops->attention(be, b1, dq + (size_t)(T - 1) * qd, kc, vc, dout, &p);
        guard = read_back(be, dout, out + (size_t)(T - 1) * qd, qd);
        be->ops->attention(be, b1, dq + (size_t)(T - 1) * qd, kc, vc, dout, &p);
        guard |= read_back(be, dout, o2, qd);
        CHECKF(memcmp(o2, out + (size_t)(T - 1) * qd, qd * 4) == 0,
               "%s: decode attention over %d keys differs when run again", be->ops->name, T);
        free(o2);
    }
    void *kraw = malloc(cache_f * 4), *vraw = malloc(cache_f * 4);
    be->ops->download(be, kraw, kc, cache_f * 4);
    be->ops->download(be, vraw, vc, cache_f * 4);
    be->ops->sync(be);
    /* the cache as the backend wrote it, widened (its f16 rounding is the format's) */
    float *kh = malloc((size_t)slots * kvd * 4), *vh = malloc((size_t)slots * kvd * 4);
    for (size_t i = 0; i < (size_t)slots * kvd; i++) {
        kh[i] = f16 ? sglc_fp16_to_f32(((uint16_t *)kraw)[i]) : ((float *)kraw)[i];
        vh[i] = f16 ? sglc_fp16_to_f32(((uint16_t *)vraw)[i]) : ((float *)vraw)[i];
    }
    free(kraw), free(vraw);
    double *sc = malloc((size_t)T * sizeof(double));
    const int32_t t0 = decode ? T - 1 : 0;
    for (int32_t t = t0; t < T; t++)
        for (int32_t h = 0; h < n_head; h++) {
            int32_t g = h / (n_head / n_kv);
            double mx = -INFINITY, z = 0;
            for (int32_t s = 0; s <= t; s++) {
                double d = 0;
                for (int32_t i = 0; i < hd; i++)
                    d += (double)qr[(t * n_head + h) * hd + i] *
                         kh[(size_t)slot[s] * kvd + (size_t)g * hd + i];
                sc[s] = d * p.scale;
                if (sc[s] > mx) mx = sc[s];
            }
            for (int32_t s = 0; s <= t; s++)
                z += (sc[s] = exp(sc[s] - mx));
            for (int32_t i = 0; i < hd; i++) {
                double acc = 0;
                for (int32_t s = 0; s <= t; s++)
                    acc += sc[s] / z * vh[(size_t)slot[s] * kvd + (size_t)g * hd + i];
                ref[(t * n_head + h) * hd + i] = acc;
            }
        }
    snprintf(op, sizeof op, "kv_store+attention %s=%d heads=%d/%d hd=%d kv=%s%s",
             decode ? "decode ctx" : "T", T, n_head, n_kv, hd, f16 ? "f16" : "f32",
             slot_writes ? " slot-writes" : "");
    /* probabilities are rounded to f16 before the V product on some paths (ggml's order) */
    compare(be->ops->name, op, out + (size_t)t0 * qd, ref + (size_t)t0 * qd, (T - t0) * qd, 2e-3,
            guard);
    be->ops->free(be, dq), be->ops->free(be, dk), be->ops->free(be, dv);
    be->ops->free(be, kc), be->ops->free(be, vc), be->ops->free(be, dout);
    if (dcs) be->ops->free(be, dcs);
    free(q), free(k), free(v), free(tok), free(pos), free(seq), free(slot), free(qr), free(ref);
    free(table), free(widx);
    free(out), free(kh), free(vh), free(sc);
}

/* ---- the sample op ----
 * The reference is the engine's CPU pipeline written out here: penalties, repetition, logit
 * bias, mask (scheduler.c sample_row's order), then sglc_sample (sampler.c) with a generator
 * whose next draw is the row's uniform, and logprobs as scheduler.c row_logprobs computes
 * them. On the CPU devices the sample op is sglc_sample_rows_ref (engine/sampler.c), so this
 * also checks that reference against an independent writing of the pipeline. */
#define S_ROWS 9
typedef struct {
    int32_t id;
    float lp, top_lp[SGLC_SAMPLE_TOP_MAX], ids_lp[SGLC_SAMPLE_IDS_MAX];
    int32_t top_id[SGLC_SAMPLE_TOP_MAX];
} sample_ref;

static void sample_reference(const float *logits_in, int32_t V, const sglc_sample_row *r,
                             const sglc_sample_desc *d, const int32_t *counts, const uint8_t *seen,
                             sglc_rng rng, sample_ref *out) {
    float *l = malloc((size_t)V * 4);
    memcpy(l, logits_in, (size_t)V * 4);
    if (r->forced < 0) {
        if (r->penalty_row >= 0) {
            const int32_t *c = counts + (size_t)r->penalty_row * V;
            const uint8_t *sn = seen + (size_t)r->penalty_row * V;
            for (int32_t t = 0; t < V; t++)
                if (c[t] > 0) l[t] -= r->frequency_penalty * (float)c[t] + r->presence_penalty;
            if (r->repetition_penalty != 1.0f)
                for (int32_t t = 0; t < V; t++)
                    if (c[t] > 0 || sn[t])
                        l[t] =
                            l[t] > 0 ? l[t] / r->repetition_penalty : l[t] * r->repetition_penalty;
        }
        sglc_apply_logit_bias(l, V, d->bias_ids + r->bias_start, d->bias + r->bias_start,
                              r->n_bias);
        if (r->mask_row >= 0) {
            const uint32_t *m = d->masks + (size_t)r->mask_row * (size_t)((V + 31) / 32);
            for (int32_t t = 0; t < V; t++)
                if (!((m[t >> 5] >> (t & 31)) & 1u)) l[t] = -INFINITY;
        }
        sglc_sampler sm;
        SGLC_ASSERT(sglc_sampler_init(&sm, V) == 0);
        sglc_sampling_params sp = {
            .temperature = r->temperature, .top_k = r->top_k, .top_p = r->top_p, .min_p = r->min_p};
        out->id = sglc_sample(&sm, l, &sp, &rng);
        sglc_sampler_free(&sm);
    } else {
        out->id = r->forced;
    }
    float mx = l[sglc_argmax(l, V)];
    double z = 0.0;
    for (int32_t t = 0; t < V; t++)
        z += exp((double)(l[t] - mx));
    float lz = mx + (float)log(z);
    out->lp = l[out->id] - lz;
    int32_t k = r->top_logprobs;
    for (int32_t j = 0; j < k; j++) {
        out->top_id[j] = -1;
        out->top_lp[j] = -INFINITY;
    }
    for (int32_t t = 0; t < V && k > 0; t++) {
        float lp = l[t] - lz;
        if (lp <= out->top_lp[k - 1]) continue;
        int32_t j = k - 1;
        while (j > 0 && out->top_lp[j - 1] < lp) {
            out->top_lp[j] = out->top_lp[j - 1];
            out->top_id[j] = out->top_id[j - 1];
            j--;
        }
        out->top_lp[j] = lp;
        out->top_id[j] = t;
    }
    for (int32_t j = 0; j < r->n_ids; j++)
        out->ids_lp[j] = l[d->lp_ids[r->ids_start + j]] - lz;
    free(l);
}

static void test_sample(sglc_backend *be, int32_t V, uint64_t seed) {
    const char *bn = be->ops->name;
    if (!be->ops->sample) {
        CHECKF(0, "%s: no sample op", bn);
        return;
    }
    float *logits = malloc((size_t)S_ROWS * V * 4);
    for (int64_t i = 0; i < (int64_t)S_ROWS * V; i++)
        logits[i] = rnd() * 4.0f;
    /* row 0: a tie at the maximum (greedy takes the first) */
    logits[5] = logits[9] = 10.0f;
    const int32_t mask_words = (V + 31) / 32;
    uint32_t *masks = calloc((size_t)2 * mask_words, 4);
    for (int32_t t = 0; t < V; t++) {
        if (t % 3 == 0) masks[t >> 5] |= 1u << (t & 31);                 /* mask row 0 */
        if (t % 97 == 1) masks[mask_words + (t >> 5)] |= 1u << (t & 31); /* mask row 1 */
    }
    int32_t bias_ids[4] = {7, 11, 7, V - 1};
    float bias[4] = {3.0f, -INFINITY, 1.5f, 2.0f};
    int32_t lp_ids[5] = {0, 3, V - 1, 42, 100};
    int32_t *counts = calloc((size_t)2 * V, 4);
    uint8_t *seen = calloc((size_t)2 * V, 1);
    for (int32_t t = 0; t < V; t += 7)
        counts[t] = t % 5;
    for (int32_t t = 0; t < V; t += 11)
        seen[t] = 1;
    sglc_rng rngs[S_ROWS];
    sglc_sample_row rows[S_ROWS];
    memset(rows, 0, sizeof rows);
    for (int r = 0; r < S_ROWS; r++) {
        sglc_rng_seed(&rngs[r], seed * 31 + (uint64_t)r);
        sglc_rng copy = rngs[r];
        rows[r] = (sglc_sample_row){.temperature = 0.8f,
                                    .top_k = -1,
                                    .top_p = 1.0f,
                                    .repetition_penalty = 1.0f,
                                    .penalty_row = -1,
                                    .mask_row = -1,
                                    .forced = -1,
                                    .uniform = sglc_rng_uniform(&copy)};
    }
    rows[0].temperature = 0.0f;
    rows[0].want_logprob = 1, rows[0].top_logprobs = 3;
    rows[1].top_k = 1;
    rows[2].temperature = 0.7f; /* the id-order walk */
    rows[3].temperature = 1.0f, rows[3].top_k = 20;
    rows[4].temperature = 0.9f, rows[4].top_p = 0.8f;
    rows[5].temperature = 1.1f, rows[5].top_k = 50, rows[5].top_p = 0.9f, rows[5].min_p = 0.05f;
    rows[6] = (sglc_sample_row){.temperature = 0.8f,
                                .top_k = 10,
                                .top_p = 1.0f,
                                .uniform = rows[6].uniform,
                                .frequency_penalty = 0.5f,
                                .presence_penalty = 0.3f,
                                .repetition_penalty = 1.3f,
                                .penalty_row = 0,
                                .bias_start = 0,
                                .n_bias = 4,
                                .mask_row = 0,
                                .forced = -1,
                                .want_logprob = 1,
                                .top_logprobs = 5,
                                .ids_start = 0,
                                .n_ids = 5};
    rows[7].forced = 42, rows[7].want_logprob = 1, rows[7].top_logprobs = 4;
    rows[7].ids_start = 1, rows[7].n_ids = 3;
    rows[8].temperature = 0.0f, rows[8].mask_row = 1, rows[8].want_logprob = 1;
    rows[8].top_logprobs = SGLC_SAMPLE_TOP_MAX; /* more than the mask allows: -1 / -inf pads */
    sglc_sample_desc d = {.n_rows = S_ROWS,
                          .rows = rows,
                          .bias_ids = bias_ids,
                          .bias = bias,
                          .masks = masks,
                          .n_mask_rows = 2,
                          .lp_ids = lp_ids,
                          .n_bias_total = 4,
                          .n_lp_ids_total = 5,
                          .any_logprob = 1};
    sample_ref ref[S_ROWS];
    for (int r = 0; r < S_ROWS; r++)
        sample_reference(logits + (size_t)r * V, V, &rows[r], &d, counts, seen, rngs[r], &ref[r]);

    float *dl = dev_buf(be, logits, (size_t)S_ROWS * V);
    int32_t *dcounts = be->ops->alloc(be, (size_t)2 * V * 4);
    uint8_t *dseen = be->ops->alloc(be, (size_t)2 * V);
    be->ops->upload(be, dcounts, counts, (size_t)2 * V * 4);
    be->ops->upload(be, dseen, seen, (size_t)2 * V);
    sglc_sample_out o = {
        .ids = be->ops->alloc(be, S_ROWS * 4),
        .logprob = be->ops->alloc(be, S_ROWS * 4),
        .top_ids = be->ops->alloc(be, S_ROWS * SGLC_SAMPLE_TOP_MAX * 4),
        .top_lp = be->ops->alloc(be, S_ROWS * SGLC_SAMPLE_TOP_MAX * 4),
        .ids_lp = be->ops->alloc(be, S_ROWS * SGLC_SAMPLE_IDS_MAX * 4),
    };
    sglc_penalty_tables pen = {.counts = dcounts, .seen = dseen, .n_rows = 2};
    uint64_t before = be->bytes_to_host;
    be->ops->sample(be, dl, V, &d, &pen, &o);
    int32_t ids[S_ROWS], top_ids[S_ROWS * SGLC_SAMPLE_TOP_MAX];
    float lp[S_ROWS], top_lp[S_ROWS * SGLC_SAMPLE_TOP_MAX], ids_lp[S_ROWS * SGLC_SAMPLE_IDS_MAX];
    int32_t *counts_after = malloc((size_t)2 * V * 4);
    be->ops->download(be, ids, o.ids, sizeof ids);
    be->ops->download(be, lp, o.logprob, sizeof lp);
    be->ops->download(be, top_ids, o.top_ids, sizeof top_ids);
    be->ops->download(be, top_lp, o.top_lp, sizeof top_lp);
    be->ops->download(be, ids_lp, o.ids_lp, sizeof ids_lp);
    be->ops->download(be, counts_after, dcounts, (size_t)2 * V * 4);
    be->ops->sync(be);
    CHECKF(be->bytes_to_host - before == sizeof ids + sizeof lp + sizeof top_ids + sizeof top_lp +
                                             sizeof ids_lp + (size_t)2 * V * 4,
           "%s sample: bytes_to_host counted %llu bytes for the downloads", bn,
           (unsigned long long)(be->bytes_to_host - before));
    static const char *const what[S_ROWS] = {"greedy (tie at the max)",
                                             "top_k=1",
                                             "temperature, id-order walk",
                                             "top_k=20",
                                             "top_p=0.8",
                                             "top_k+top_p+min_p",
                                             "penalties+bias+mask+top_k",
                                             "forced",
                                             "greedy under a mask"};
    for (int r = 0; r < S_ROWS; r++) {
        CHECKF(ids[r] == ref[r].id,
               "%s sample V=%d seed=%llu row %d (%s, uniform %.17g): id %d, reference %d", bn, V,
               (unsigned long long)seed, r, what[r], rows[r].uniform, ids[r], ref[r].id);
        if (!rows[r].want_logprob) continue;
        CHECKF(lp[r] == ref[r].lp || fabsf(lp[r] - ref[r].lp) <= 1e-4f,
               "%s sample row %d (%s): logprob %.7g, reference %.7g", bn, r, what[r], lp[r],
               ref[r].lp);
        for (int j = 0; j < rows[r].top_logprobs; j++) {
            int32_t gi = top_ids[r * SGLC_SAMPLE_TOP_MAX + j];
            float gl = top_lp[r * SGLC_SAMPLE_TOP_MAX + j];
            CHECKF(gi == ref[r].top_id[j] &&
                       (gl == ref[r].top_lp[j] || fabsf(gl - ref[r].top_lp[j]) <= 1e-4f),
                   "%s sample row %d (%s): top logprob %d is (%d, %.7g), reference (%d, %.7g)", bn,
                   r, what[r], j, gi, gl, ref[r].top_id[j], ref[r].top_lp[j]);
        }
        for (int j = 0; j < rows[r].n_ids; j++)
            CHECKF(ids_lp[r * SGLC_SAMPLE_IDS_MAX + j] == ref[r].ids_lp[j] ||
                       fabsf(ids_lp[r * SGLC_SAMPLE_IDS_MAX + j] - ref[r].ids_lp[j]) <= 1e-4f,
                   "%s sample row %d (%s): token_ids_logprob %d is %.7g, reference %.7g", bn, r,
                   what[r], j, ids_lp[r * SGLC_SAMPLE_IDS_MAX + j], ref[r].ids_lp[j]);
    }
    /* the penalized row's pick is counted; nothing else changes */
    int bad = 0;
    for (int64_t i = 0; i < (int64_t)2 * V; i++)
        bad += counts_after[i] != counts[i] + (i == ids[6] ? 1 : 0);
    CHECKF(bad == 0, "%s sample: %d penalty counts wrong after the op (expected +1 at id %d)", bn,
           bad, ids[6]);
    g_cases++;
    be->ops->free(be, dl), be->ops->free(be, dcounts), be->ops->free(be, dseen);
    be->ops->free(be, o.ids), be->ops->free(be, o.logprob), be->ops->free(be, o.top_ids);
    be->ops->free(be, o.top_lp), be->ops->free(be, o.ids_lp);
    free(logits), free(masks), free(counts), free(seen), free(counts_after);
}

/* ---- quantize_affine: the backend's MLX affine quantization against the host's ---- */

static size_t dtype_size(uint32_t dtype) {
    return dtype == SGLC_GGML_TYPE_F32 ? 4 : 2;
}

static void store_value(void *w, uint32_t dtype, int64_t i, float v) {
    if (dtype == SGLC_GGML_TYPE_F32)
        ((float *)w)[i] = v;
    else if (dtype == SGLC_GGML_TYPE_F16)
        ((uint16_t *)w)[i] = sglc_f32_to_fp16(v);
    else
        ((uint16_t *)w)[i] = sglc_f32_to_bf16(v);
}

/* A [n][k] source of dtype: random rows of magnitudes 1e-3..1e3 (some all positive), and, when
 * there are enough rows, the cases a quantizer gets wrong: a constant row, a row of zeros,
 * the dtype's largest finite values (their range overflows f32 for F32 and BF16), values
 * subnormal in the dtype, groups holding a NaN, an Inf, only NaN, both infinities, and a row of
 * +-1 (edges of equal magnitude). */
static void fill_quant_source(void *w, uint32_t dtype, int64_t n, int64_t k, int group) {
    const float huge = dtype == SGLC_GGML_TYPE_F16 ? 65504.0f : 3.38e38f;
    const float tiny = dtype == SGLC_GGML_TYPE_F16 ? 3e-6f : 1e-40f;
    const float inf = INFINITY, nan = NAN;
    for (int64_t r = 0; r < n; r++) {
        const float mag = powf(10.0f, 3.0f * rnd()), off = r % 3 == 0 ? 1.5f * mag : 0.0f;
        for (int64_t j = 0; j < k; j++) {
            float v = rnd() * mag + off;
            const int64_t g = j / group, jg = j % group;
            switch (n >= 8 ? r : -1) {
            case 0: v = 0.37f; break;
            case 1: v = 0.0f; break;
            case 2: v = jg == 0 ? huge : jg == 1 ? -huge : rnd() * huge; break;
            case 3: v = rnd() * tiny; break;
            case 4:
                if (g == 0 && jg == 3) v = nan;
                if (g == 1 && jg == 5) v = inf;
                if (g == 2) v = nan;
                if (g == 3) v = jg == 0 ? -inf : jg == 1 ? inf : v;
                break;
            case 5: v = rnd() < 0.0f ? -1.0f : 1.0f; break;
            default: break;
            }
            store_value(w, dtype, r * k + j, v);
        }
    }
}

static int is_nan_param(const uint8_t *p, uint32_t dtype) {
    if (dtype == SGLC_GGML_TYPE_F32) {
        float f;
        memcpy(&f, p, 4);
        return isnan(f);
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return dtype == SGLC_GGML_TYPE_F16 ? (h & 0x7fff) > 0x7c00 : (h & 0x7fff) > 0x7f80;
}

/* scales or biases: byte for byte, except that two NaNs are the same (an operation's NaN
 * payload is the hardware's); returns the entries that differ, *n_nan the entries NaN on both */
static int64_t diff_params(const uint8_t *a, const uint8_t *b, int64_t count, uint32_t dtype,
                           int64_t *first, int64_t *n_nan) {
    const size_t es = dtype_size(dtype);
    int64_t bad = 0;
    for (int64_t i = 0; i < count; i++) {
        if (is_nan_param(a + (size_t)i * es, dtype) && is_nan_param(b + (size_t)i * es, dtype)) {
            (*n_nan)++;
            continue;
        }
        if (memcmp(a + (size_t)i * es, b + (size_t)i * es, es) == 0) continue;
        if (!bad) *first = i;
        bad++;
    }
    return bad;
}

static int g_quant_cases;
static int64_t g_quant_nan_pairs;

static const char *dtype_name(uint32_t dtype) {
    return dtype == SGLC_GGML_TYPE_F32 ? "F32" : dtype == SGLC_GGML_TYPE_F16 ? "F16" : "BF16";
}

/* Quantizes a random [n][k] matrix through the op and compares its codes, scales and biases
 * with sglc_mlx_affine_quantize's. With matmul_rows > 0 also runs a matmul with the result and
 * with the host's quantization prepared by prepare_weight: the outputs must be equal, since the
 * weights are. */
static void test_quantize_affine(sglc_backend *be, uint32_t dtype, int64_t n, int64_t k, int bits,
                                 int group, int64_t matmul_rows) {
    const char *bn = be->ops->name;
    if (!be->ops->quantize_affine) return;
    reseed((uint64_t)dtype * 7 + (uint64_t)bits * 131 + (uint64_t)group,
           (uint64_t)(n * 1000003 + k));
    const size_t es = dtype_size(dtype);
    const int64_t words = sglc_mlx_affine_row_words(k, bits), groups = k / group;
    const size_t code_bytes = (size_t)(n * words) * 4, param_bytes = (size_t)(n * groups) * es;
    void *src = malloc((size_t)(n * k) * es);
    uint32_t *codes = malloc(code_bytes), *dcodes = malloc(code_bytes);
    uint8_t *scales = malloc(param_bytes), *biases = malloc(param_bytes);
    uint8_t *dscales = malloc(param_bytes), *dbiases = malloc(param_bytes);
    SGLC_ASSERT(src && codes && dcodes && scales && biases && dscales && dbiases);
    fill_quant_source(src, dtype, n, k, group);
    sglc_mlx_affine_quantize(src, dtype, n, k, bits, group, codes, scales, biases);

    char op[96];
    snprintf(op, sizeof op, "quantize_affine %s n=%lld k=%lld bits=%d group=%d", dtype_name(dtype),
             (long long)n, (long long)k, bits, group);
    sglc_weight w = {.type = dtype,
                     .k = k,
                     .n = n,
                     .host = src,
                     .present = 1,
                     .host_bytes = (size_t)(n * k) * es};
    sglc_weight q;
    memset(&q, 0, sizeof q);
    sglc_err err = {{0}};
    int rc = be->ops->quantize_affine(be, &w, bits, group, &q, &err);
    CHECKF(rc == 0, "%s %s: failed: %s", bn, op, err.msg);
    if (rc != 0) goto done;
    CHECKF(q.type == SGLC_WTYPE_MLX_AFFINE && q.k == k && q.n == n && q.q_bits == bits &&
               q.q_group == group && q.q_dtype == dtype && q.present && !q.host && !q.q_scales &&
               !q.q_biases && q.dev && q.q_scales_dev && q.q_biases_dev,
           "%s %s: the weight it returns is not a prepared MLX affine weight", bn, op);
    be->ops->download(be, dcodes, q.dev, code_bytes);
    be->ops->download(be, dscales, q.q_scales_dev, param_bytes);
    be->ops->download(be, dbiases, q.q_biases_dev, param_bytes);
    be->ops->sync(be);
    int64_t bad_codes = 0, first_code = -1;
    for (int64_t i = 0; i < n * words; i++)
        if (codes[i] != dcodes[i]) {
            if (!bad_codes) first_code = i;
            bad_codes++;
        }
    CHECKF(bad_codes == 0,
           "%s %s: %lld code words differ from the host's, the first at row %lld word %lld "
           "(host %08x, %s %08x)",
           bn, op, (long long)bad_codes, (long long)(first_code / words),
           (long long)(first_code % words), bad_codes ? codes[first_code] : 0u, bn,
           bad_codes ? dcodes[first_code] : 0u);
    int64_t first_s = -1, first_b = -1, n_nan = 0;
    int64_t bad_s = diff_params(scales, dscales, n * groups, dtype, &first_s, &n_nan);
    int64_t bad_b = diff_params(biases, dbiases, n * groups, dtype, &first_b, &n_nan);
    CHECKF(bad_s == 0,
           "%s %s: %lld scales differ from the host's, the first at row %lld group %lld", bn, op,
           (long long)bad_s, (long long)(first_s / groups), (long long)(first_s % groups));
    CHECKF(bad_b == 0,
           "%s %s: %lld biases differ from the host's, the first at row %lld group %lld", bn, op,
           (long long)bad_b, (long long)(first_b / groups), (long long)(first_b % groups));
    /* the Inf group (group 1 of row 4) gives NaN scales on both: else that case did not run
     * (a single NaN, in group 0, is skipped by min/max and leaves the scale finite) */
    if (n >= 8 && groups >= 2)
        CHECKF(n_nan > 0, "%s %s: no NaN scale or bias from the Inf/NaN groups", bn, op);
    if (matmul_rows > 0) {
        sglc_weight h = {.type = SGLC_WTYPE_MLX_AFFINE,
                         .k = k,
                         .n = n,
                         .host = codes,
                         .q_bits = bits,
                         .q_group = group,
                         .q_dtype = dtype,
                         .q_scales = scales,
                         .q_biases = biases,
                         .present = 1,
                         .host_bytes = code_bytes};
        rc = be->ops->prepare_weight(be, &h, &err);
        CHECKF(rc == 0, "%s %s: prepare_weight of the host's codes failed: %s", bn, op, err.msg);
        if (rc == 0) {
            float *x = malloc((size_t)(matmul_rows * k) * sizeof(float));
            for (int64_t i = 0; i < matmul_rows * k; i++)
                x[i] = rnd();
            const size_t ny = (size_t)(matmul_rows * n);
            float *dx = dev_buf(be, x, (size_t)(matmul_rows * k));
            float *dy1 = dev_buf(be, NULL, ny), *dy2 = dev_buf(be, NULL, ny);
            be->ops->matmul(be, &q, NULL, dx, matmul_rows, dy1);
            be->ops->matmul(be, &h, NULL, dx, matmul_rows, dy2);
            float *y1 = malloc(ny * sizeof(float)), *y2 = malloc(ny * sizeof(float));
            int g1 = read_back(be, dy1, y1, ny), g2 = read_back(be, dy2, y2, ny);
            CHECKF(g1 && g2, "%s %s: matmul wrote past its output", bn, op);
            CHECKF(memcmp(y1, y2, ny * sizeof(float)) == 0,
                   "%s %s: a matmul with the quantized weight differs from one with the host's", bn,
                   op);
            be->ops->free(be, dx), be->ops->free(be, dy1), be->ops->free(be, dy2);
            free(x), free(y1), free(y2);
            if (be->ops->release_weight) be->ops->release_weight(be, &h);
        }
    }
    if (be->ops->release_weight) be->ops->release_weight(be, &q);
    g_cases++;
    g_quant_cases++;
    g_quant_nan_pairs += n_nan;
done:
    free(src), free(codes), free(dcodes), free(scales), free(biases), free(dscales), free(dbiases);
}

/* The op over every source dtype, bits 4 and 8 (and the other widths MLX writes, whose codes
 * cross words), group sizes 32/64/128, k from 64 to 4096 and odd row counts; a matrix of
 * several staging chunks, one whose row alone exceeds a chunk; arguments it must refuse; and
 * release_weight giving back what it allocated. */
static void test_quantize_affine_all(sglc_backend *be) {
    const char *bn = be->ops->name;
    if (!be->ops->quantize_affine) {
        printf("%s: no quantize_affine op (the host quantizes at load)\n", bn);
        return;
    }
    const int cases0 = g_quant_cases, failures0 = g_test_failures;
    const int64_t nan0 = g_quant_nan_pairs;
    const uint32_t dtypes[] = {SGLC_GGML_TYPE_F32, SGLC_GGML_TYPE_F16, SGLC_GGML_TYPE_BF16};
    const int64_t ks[] = {64, 192, 1152, 4096}, ns[] = {37, 101, 67, 129};
    const int all_groups[] = {32, 64, 128};
    for (int d = 0; d < 3; d++)
        for (int bits = 4; bits <= 8; bits += 4)
            for (int gi = 0; gi < 3; gi++)
                for (int ki = 0; ki < 4; ki++)
                    if (ks[ki] % all_groups[gi] == 0)
                        test_quantize_affine(be, dtypes[d], ns[ki], ks[ki], bits, all_groups[gi],
                                             0);
    const int other_bits[] = {2, 3, 5, 6};
    for (int b = 0; b < 4; b++) {
        test_quantize_affine(be, SGLC_GGML_TYPE_BF16, 67, 1152, other_bits[b], 64, 0);
        test_quantize_affine(be, SGLC_GGML_TYPE_F16, 9, 384, other_bits[b], 32, 0);
    }
    /* the computable weight it makes: a matmul gives what the host's quantization gives */
    test_quantize_affine(be, SGLC_GGML_TYPE_BF16, 67, 1024, 4, 64, 5);
    test_quantize_affine(be, SGLC_GGML_TYPE_F16, 37, 512, 8, 64, 1);

    size_t free0 = 0, free1 = 0, total = 0;
    be->ops->sync(be);
    int have_mem = be->ops->mem_info(be, &free0, &total) == 0 && free0 > 0;
    /* many chunks (73 MB of bf16), then a row larger than a chunk (the staging grows) */
    test_quantize_affine(be, SGLC_GGML_TYPE_BF16, 9001, 4096, 4, 64, 0);
    test_quantize_affine(be, SGLC_GGML_TYPE_F32, 3, 4195328, 8, 128, 0);
    test_quantize_affine(be, SGLC_GGML_TYPE_F32, 4099, 4096, 4, 32, 0);
    be->ops->sync(be);
    if (have_mem && be->ops->mem_info(be, &free1, &total) == 0) {
        const double leaked = ((double)free0 - (double)free1) / (1024.0 * 1024.0);
        CHECKF(leaked < 4.0,
               "%s quantize_affine: %.1f MB of backend memory not given back after release_weight "
               "and sync",
               bn, leaked);
    }

    /* refused, not computed: k not a multiple of the group, a width MLX does not write, a
     * quantized source, no host data */
    float fsrc[2 * 96];
    for (int i = 0; i < 2 * 96; i++)
        fsrc[i] = rnd();
    sglc_weight w = {.type = SGLC_GGML_TYPE_F32, .k = 96, .n = 2, .host = fsrc, .present = 1};
    sglc_weight q;
    sglc_err err = {{0}};
    CHECK(be->ops->quantize_affine(be, &w, 4, 64, &q, &err) == SGLC_ERR_ARG);
    CHECK(be->ops->quantize_affine(be, &w, 7, 32, &q, &err) == SGLC_ERR_ARG);
    w.type = SGLC_GGML_TYPE_Q8_0;
    CHECK(be->ops->quantize_affine(be, &w, 4, 32, &q, &err) == SGLC_ERR_ARG);
    w.type = SGLC_GGML_TYPE_F32;
    w.host = NULL;
    CHECK(be->ops->quantize_affine(be, &w, 4, 32, &q, &err) == SGLC_ERR_ARG);
    g_cases++;
    be->ops->sync(be);
    printf("%s: quantize_affine: %d matrices quantized, %s (%lld scales/biases NaN on both, "
           "payloads not compared)\n",
           bn, g_quant_cases - cases0,
           g_test_failures == failures0 ? "codes, scales and biases equal to the host's"
                                        : "FAILURES above",
           (long long)(g_quant_nan_pairs - nan0));
}

/* Several sequences in one step, as the scheduler builds them, over an f16 cache filled
 * directly: prefills from position 0, chunks after a cached prefix, single tokens (a mixed
 * step), sequences that end inside a GPU warp's tokens (16 / G of them; cuda_attention.cu
 * k_attn_tc_pre); with decode, one token per sequence (k_attn_tc_dec, split by context).
 * Every token against f64 attention over the same cache. */
static void test_attention_seqs(sglc_backend *be, int32_t n_head, int32_t n_kv, int32_t hd,
                                int decode, const int32_t (*sq)[2], int32_t n_seqs) {
    reseed((uint64_t)decode + 91, (uint64_t)(n_head * 1009 + n_kv * 101 + hd + n_seqs));
    int32_t T = 0, n_table = 0;
    for (int32_t s = 0; s < n_seqs; s++)
        T += sq[s][1], n_table += sq[s][0] + sq[s][1];
    /* (i * 37 + 11) % slots is one-to-one: slots a power of two */
    int32_t slots = 8192;
    while (slots < n_table)
        slots *= 2;
    const size_t qd = (size_t)n_head * hd, kvd = (size_t)n_kv * hd;
    int32_t *tok = calloc((size_t)T, 4), *pos = malloc((size_t)T * 4), *seq = malloc((size_t)T * 4);
    int32_t *start = malloc((size_t)n_seqs * 4), *table = malloc((size_t)n_table * 4);
    for (int32_t i = 0; i < n_table; i++)
        table[i] = (i * 37 + 11) % slots;
    for (int32_t s = 0, t = 0, e = 0; s < n_seqs; s++) {
        start[s] = e;
        e += sq[s][0] + sq[s][1];
        for (int32_t i = 0; i < sq[s][1]; i++, t++)
            pos[t] = sq[s][0] + i, seq[t] = s;
    }
    uint16_t *kh = malloc((size_t)slots * kvd * 2), *vh = malloc((size_t)slots * kvd * 2);
    for (size_t i = 0; i < (size_t)slots * kvd; i++) {
        kh[i] = sglc_f32_to_fp16(rnd());
        vh[i] = sglc_f32_to_fp16(rnd());
    }
    float *q = malloc((size_t)T * qd * 4);
    for (size_t i = 0; i < (size_t)T * qd; i++)
        q[i] = 2.0f * rnd(); /* scores of a few units: a peaked softmax as well as flat ones */
    int32_t lrow = T - 1;
    sglc_batch hb = {.n_tokens = T,
                     .n_seqs = n_seqs,
                     .n_logits = 1,
                     .tokens = tok,
                     .pos = pos,
                     .seq = seq,
                     .out_slot = pos, /* not read by attention */
                     .seq_slot_start = start,
                     .slot_table = table,
                     .logit_rows = &lrow,
                     .n_slot_table = n_table,
                     .is_decode = decode};
    sglc_attn_params p = attn_params(n_head, n_kv, hd, slots, SGLC_GGML_TYPE_F16);
    const sglc_batch *b = be->ops->set_batch(be, &hb);
    const size_t cache_f = (size_t)slots * kvd / 2; /* f16 pairs as floats */
    float *dq = dev_buf(be, q, (size_t)T * qd), *kc = dev_buf(be, (const float *)kh, cache_f),
          *vc = dev_buf(be, (const float *)vh, cache_f), *dout = dev_buf(be, NULL, (size_t)T * qd);
    be->ops->attention(be, b, dq, kc, vc, dout, &p);
    float *out = malloc((size_t)T * qd * 4);
    int guard = read_back(be, dout, out, (size_t)T * qd);
    double *ref = malloc((size_t)T * qd * sizeof(double)), *sc = malloc(4096 * sizeof(double));
    for (int32_t t = 0; t < T; t++)
        for (int32_t h = 0; h < n_head; h++) {
            const int32_t g = h / (n_head / n_kv), *sl = table + start[seq[t]];
            double mx = -INFINITY, z = 0;
            for (int32_t s = 0; s <= pos[t]; s++) {
                double d = 0;
                for (int32_t i = 0; i < hd; i++)
                    d += (double)q[((size_t)t * n_head + h) * hd + i] *
                         sglc_fp16_to_f32(kh[(size_t)sl[s] * kvd + (size_t)g * hd + i]);
                sc[s] = d * p.scale;
                if (sc[s] > mx) mx = sc[s];
            }
            for (int32_t s = 0; s <= pos[t]; s++)
                z += (sc[s] = exp(sc[s] - mx));
            for (int32_t i = 0; i < hd; i++) {
                double acc = 0;
                for (int32_t s = 0; s <= pos[t]; s++)
                    acc +=
                        sc[s] / z * sglc_fp16_to_f32(vh[(size_t)sl[s] * kvd + (size_t)g * hd + i]);
                ref[((size_t)t * n_head + h) * hd + i] = acc;
            }
        }
    char op[96];
    snprintf(op, sizeof op, "attention %s %d seqs %d tokens heads=%d/%d hd=%d kv=f16",
             decode ? "decode" : "mixed", n_seqs, T, n_head, n_kv, hd);
    /* q and the probabilities are rounded to f16 on some paths (the CPU's, a GPU's tensor
     * cores): about 3e-4 of the output's norm */
    compare(be->ops->name, op, out, ref, (size_t)T * qd, 2e-3, guard);
    /* the largest error of any one token and head against that row's norm: a key masked
     * wrongly shows here even where the whole step's norm hides it */
    double worst = 0;
    for (size_t r = 0; r < (size_t)T * n_head; r++) {
        double num = 0, den = 0;
        for (int32_t i = 0; i < hd; i++) {
            const double d = out[r * hd + i] - ref[r * hd + i];
            num += d * d, den += ref[r * hd + i] * ref[r * hd + i];
        }
        const double e = den > 0 ? sqrt(num / den) : sqrt(num);
        if (e > worst) worst = e;
    }
    CHECKF(worst < 1e-2, "%s %s: a row is off by %.3g of its norm", be->ops->name, op, worst);
    be->ops->free(be, dq), be->ops->free(be, kc), be->ops->free(be, vc), be->ops->free(be, dout);
    free(tok), free(pos), free(seq), free(start), free(table), free(kh), free(vh), free(q);
    free(out), free(ref), free(sc);
}

static void test_attention_batch(sglc_backend *be, int32_t n_head, int32_t n_kv, int32_t hd,
                                 int decode) {
    /* (first position, tokens) per sequence; the last mixed one a chunk deep in its context */
    static const int32_t mixed[][2] = {{0, 37}, {300, 1}, {100, 50}, {0, 5},    {1999, 1},
                                       {0, 1},  {64, 19}, {7, 3},    {1200, 24}};
    static const int32_t dec[][2] = {{0, 1},    {9, 1},  {700, 1}, {63, 1},
                                     {1999, 1}, {15, 1}, {64, 1},  {1200, 1}};
    if (decode)
        test_attention_seqs(be, n_head, n_kv, hd, 1, dec, 8);
    else
        test_attention_seqs(be, n_head, n_kv, hd, 0, mixed, 9);
}

/* more than 65,535 tokens in one step (a GPU's grid y and z take no more): n_seqs sequences
 * of per tokens each from position first */
static void test_attention_wide(sglc_backend *be, int32_t n_seqs, int32_t first, int32_t per) {
    int32_t(*sq)[2] = malloc((size_t)n_seqs * sizeof *sq);
    for (int32_t s = 0; s < n_seqs; s++)
        sq[s][0] = first, sq[s][1] = per;
    test_attention_seqs(be, 2, 1, 64, per == 1, (const int32_t(*)[2])sq, n_seqs);
    free(sq);
}

int main(void) {
    /* cuda twice: its default kernels, then --enable-deterministic-inference (the CPU-parity
     * attention and products; its "cuda vs cpu" lines say how close to the CPU's bits) */
    /* a third time with SGLC_CUDA_EXACT_ATTN_KEYS=0: the split attention kernel that float
     * models use (the runs before have quantized weights loaded, which selects the CPU-exact
     * attention) */
    /* a fourth with SGLC_CUDA_ATTN_TC=0 SGLC_CUDA_MVQ=0 SGLC_CUDA_MV_EARLY=0 as well: the
     * CUDA-core attention by kv head (k_attn_gqa), the MLX 4/8-bit k_fmv and k_fmv16's late
     * first loads, which the defaults replaced (kept for A/B and for the shapes those do not
     * take), a fifth with SGLC_CUDA_ATTN_GQA=0 SGLC_CUDA_MVR=0: the per-head split kernel
     * (head shapes neither takes) and k_fmvq (MLX launches whose x k_fmvr cannot stage) */
    static const char *const backends[] = {"cpu",  "cpu-ggml", "cuda", "cuda",
                                           "cuda", "cuda",     "cuda"};
    const wfmt fmts[] = {
        {SGLC_GGML_TYPE_F32, 0, 1e-5, "F32"},       {SGLC_GGML_TYPE_F16, 0, 2e-3, "F16"},
        {SGLC_GGML_TYPE_BF16, 0, 1e-2, "BF16"},     {SGLC_GGML_TYPE_Q8_0, 0, 1e-2, "Q8_0"},
        {SGLC_GGML_TYPE_Q4_0, 0, 1e-2, "Q4_0"},     {SGLC_GGML_TYPE_Q4_1, 0, 1e-2, "Q4_1"},
        {SGLC_GGML_TYPE_Q4_K, 0, 1e-2, "Q4_K"},     {SGLC_GGML_TYPE_Q5_K, 0, 1e-2, "Q5_K"},
        {SGLC_GGML_TYPE_Q6_K, 0, 1e-2, "Q6_K"},     {SGLC_WTYPE_MLX_AFFINE, 4, 1e-2, "mlx-q4"},
        {SGLC_WTYPE_MLX_AFFINE, 8, 1e-2, "mlx-q8"},
    };
    for (size_t bi = 0; bi < sizeof backends / sizeof backends[0]; bi++) {
        sglc_backend *be = NULL;
        sglc_err err = {{0}};
        sglc_backend_params bp = {.n_threads = 2, .deterministic = bi == 3};
        if (bi == 3) printf("cuda with --enable-deterministic-inference:\n");
        if (bi == 4) {
            printf("cuda with SGLC_CUDA_EXACT_ATTN_KEYS=0:\n");
            setenv("SGLC_CUDA_EXACT_ATTN_KEYS", "0", 1);
        }
        if (bi == 5) {
            printf("cuda with SGLC_CUDA_EXACT_ATTN_KEYS=0 SGLC_CUDA_ATTN_TC=0 SGLC_CUDA_MVQ=0 "
                   "SGLC_CUDA_MV_EARLY=0:\n");
            setenv("SGLC_CUDA_ATTN_TC", "0", 1);
            setenv("SGLC_CUDA_MVQ", "0", 1);
            setenv("SGLC_CUDA_MV_EARLY", "0", 1);
        }
        if (bi == 6) {
            printf("cuda with SGLC_CUDA_EXACT_ATTN_KEYS=0 SGLC_CUDA_ATTN_TC=0 SGLC_CUDA_ATTN_GQA=0 "
                   "SGLC_CUDA_MVR=0:\n");
            unsetenv("SGLC_CUDA_MVQ");
            unsetenv("SGLC_CUDA_MV_EARLY");
            setenv("SGLC_CUDA_ATTN_GQA", "0", 1);
            setenv("SGLC_CUDA_MVR", "0", 1);
        }
        if (sglc_backend_open(&be, backends[bi], &bp, &err) != 0) {
            if (strcmp(backends[bi], "cuda") == 0)
                printf("cuda: not tested here (no GPU visible, or no CUDA in this build): %s\n",
                       err.msg);
            else
                printf("%s: not available here (%s)\n", backends[bi], err.msg);
            continue;
        }
        int before = g_cases, skipped = g_skipped;
        for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
            /* k a multiple of 256 for the K quants; odd output rows; 1..13 tokens */
            const int64_t shapes[][3] = {{37, 256, 1}, {64, 512, 3}, {67, 256, 8}, {17, 768, 13}};
            for (size_t s = 0; s < 4; s++)
                test_matmul(be, &fmts[f], shapes[s][0], shapes[s][1], shapes[s][2]);
        }
        /* the fused decode ops (GPU backends) against their op sequences: matrix-vector
         * sizes (1..8 tokens), the exact integer path (13 tokens: Q4_1 / Q8_0) and the
         * sequence fallback (13 tokens, other formats) */
        for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
            test_fused_matmul(be, &fmts[f], 67, 45, 256, 1);
            test_fused_matmul(be, &fmts[f], 64, 96, 512, 3);
            test_fused_matmul(be, &fmts[f], 33, 40, 768, 8);
            test_fused_matmul(be, &fmts[f], 20, 17, 256, 13);
            if (fmts[f].type == SGLC_GGML_TYPE_F16 || fmts[f].type == SGLC_GGML_TYPE_BF16) {
                /* the streaming 16-bit kernel (cuda_fused.cu k_fmv16): more row groups than
                 * its grid holds (a block loops), row shares (wpr 2 and 4), x staged for 1 and
                 * 2 tokens, too large to stage (9216 x 2 tokens), rounds past a row's end */
                test_fused_matmul(be, &fmts[f], 2051, 1030, 1024, 1);
                test_fused_matmul(be, &fmts[f], 600, 1800, 2048, 2);
                test_fused_matmul(be, &fmts[f], 130, 70, 9216, 2);
                test_fused_matmul(be, &fmts[f], 50, 40, 800, 1);
            }
            if (fmts[f].type == SGLC_WTYPE_MLX_AFFINE) {
                /* the streaming MLX 4/8-bit kernel (cuda_fused.cu k_fmvq), as above: a block
                 * loops, row shares, x staged (rotated) for 1 and 2 tokens, too large to stage
                 * (the norm applied per chunk), rounds past a row's end */
                test_fused_matmul(be, &fmts[f], 2051, 1030, 1024, 1);
                test_fused_matmul(be, &fmts[f], 600, 1800, 2048, 2);
                test_fused_matmul(be, &fmts[f], 130, 70, 9216, 2);
                test_fused_matmul(be, &fmts[f], 50, 40, 832, 1);
                /* k_fmvr staging past 48 KiB of shared memory (the opt-in that
                 * cuda_blocks_per_sm gives), as the 8B shape's down product at one token */
                test_fused_matmul(be, &fmts[f], 70, 40, 14336, 1);
            }
        }
        test_fused_rope(be, 1, 16, 8, 128, 128, 1, SGLC_GGML_TYPE_F16);
        test_fused_rope(be, 5, 8, 2, 64, 64, 0, SGLC_GGML_TYPE_F16);
        test_fused_rope(be, 3, 4, 4, 128, 64, 1, SGLC_GGML_TYPE_F32);
        test_rmsnorm(be, 1, 576);
        test_rmsnorm(be, 7, 100);
        test_elementwise(be, 1);
        test_elementwise(be, 1537);
        test_gather_embed(be, SGLC_GGML_TYPE_F32, 500, 96, 9);
        test_gather_embed(be, SGLC_GGML_TYPE_Q8_0, 500, 96, 9);
        test_gather_embed(be, SGLC_GGML_TYPE_Q4_1, 333, 64, 1);
        const uint32_t F16 = SGLC_GGML_TYPE_F16, F32 = SGLC_GGML_TYPE_F32;
        test_attention(be, 1, 4, 2, 64, F16, 0, 0);
        test_attention(be, 19, 6, 2, 64, F16, 0, 0);
        test_attention(be, 33, 4, 4, 128, F16, 0, 0);
        test_attention(be, 21, 8, 2, 128, F32, 0, 0);
        /* enough (token, head) pairs that a GPU runs it unsplit (the prefill path) */
        test_attention(be, 150, 4, 2, 64, F16, 0, 0);
        test_attention(be, 40, 4, 1, 64, F16, 1, 0); /* with slot writes applied by set_batch */
        /* decode steps: Qwen3-0.6B's heads (GQA 2) over 1,200 keys (a GPU's 32 splits), GQA 4
         * at head_dim 64 over 300, GQA 8 at 256 (past the GPU's by-kv-head kernel) */
        test_attention(be, 1200, 16, 8, 128, F16, 0, 1);
        test_attention(be, 300, 12, 3, 64, F16, 0, 1);
        test_attention(be, 77, 8, 1, 256, F16, 0, 1);
        test_attention(be, 500, 8, 2, 128, F32, 0, 1);
        /* several sequences in one step: the 8B shape (GQA 4, head_dim 128), Qwen3-0.6B's
         * (GQA 2), GQA 3 at head_dim 64 (SmolLM2's: 16 / G does not divide), MHA */
        test_attention_batch(be, 32, 8, 128, 0);
        test_attention_batch(be, 32, 8, 128, 1);
        test_attention_batch(be, 16, 8, 128, 0);
        test_attention_batch(be, 16, 8, 128, 1);
        test_attention_batch(be, 9, 3, 64, 0);
        test_attention_batch(be, 9, 3, 64, 1);
        test_attention_batch(be, 4, 4, 64, 0);
        test_attention_wide(be, 70000, 1, 1); /* decode: one token each, two keys */
        test_attention_wide(be, 36000, 0, 2); /* prefill: 72,000 tokens */
        test_sample(be, 1013, 1);
        test_sample(be, 1013, 2);
        test_sample(be, 50000, 3);
        test_sample(be, 4096, 4);
        test_quantize_affine_all(be);
        printf("%s: %d op cases checked, %d weight formats it refuses (said at load)\n",
               be->ops->name, g_cases - before, g_skipped - skipped);
        sglc_backend_close(be);
    }
    if (g_test_failures) {
        fprintf(stderr, "%d failures\n", g_test_failures);
        return 1;
    }
    printf("backend ops: ok\n");
    return 0;
}
