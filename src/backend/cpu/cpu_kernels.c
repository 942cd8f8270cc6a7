/* CPU weight-kernel dispatch and the threaded matmul.
 *
 * Each ISA file exports a table of kernel entries; this file picks one per weight type (falling
 * back to a lower ISA where a type has no kernel at the requested one) and runs
 * sglc_cpu_matmul on the thread pool in two phases: the n_tok activation rows are quantized
 * once into the caller's scratch (in parallel when there are many), then output rows are split
 * over threads in 16-row units. A thread walks its rows in tiles of MM_ROW_TILE weight rows and,
 * for each tile, over the tokens in groups of the entry's max_rows, so every weight row is read
 * from memory once per call and then served from L1/L2 to all tokens. */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include "backend/cpu/cpu_kernels.h"

#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels_impl.h"
#include "base/log.h"
#include "quant/ggml_blocks.h"
#include "quant/ggml_types.h"

#define MM_ROW_UNIT 16
#define MM_ROW_TILE 16
/* Below this many multiply-adds a matmul runs on the calling thread only. */
#define MM_SERIAL_MACS 32768

static const char *const k_isa_names[SGLC_CPU_ISA_COUNT] = {"ref", "avx2", "avx512"};

const char *sglc_cpu_isa_name(sglc_cpu_isa isa) {
    return (unsigned)isa < SGLC_CPU_ISA_COUNT ? k_isa_names[isa] : "?";
}

static int cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know
     * "f16c"; avx2 and fma through the builtin, which also checks that the OS saves YMM state */
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
    return 0;
#endif
}

int sglc_cpu_isa_available(sglc_cpu_isa isa) {
    switch (isa) {
    case SGLC_CPU_ISA_REF: return 1;
    case SGLC_CPU_ISA_AVX2: return cpu_has_avx2();
    /* No AVX-512 kernels yet: the AVX2 ones serve AVX-512 machines. */
    case SGLC_CPU_ISA_AVX512: return 0;
    default: return 0;
    }
}

sglc_cpu_isa sglc_cpu_isa_best(void) {
    sglc_cpu_isa best = SGLC_CPU_ISA_REF;
    for (int i = SGLC_CPU_ISA_COUNT - 1; i > 0; i--)
        if (sglc_cpu_isa_available((sglc_cpu_isa)i)) {
            best = (sglc_cpu_isa)i;
            break;
        }
    const char *env = getenv("SGLC_CPU_ISA");
    if (env && *env) {
        for (int i = 0; i < SGLC_CPU_ISA_COUNT; i++)
            if (strcmp(env, k_isa_names[i]) == 0) {
                if (i < (int)best) best = (sglc_cpu_isa)i;
                return best;
            }
        SGLC_LOG_WARN("SGLC_CPU_ISA=%s not recognized (ref|avx2|avx512): using %s", env,
                      k_isa_names[best]);
    }
    return best;
}

static const sglc_cpu_kernel_entry *entry_at(uint32_t wtype, sglc_cpu_isa isa) {
    switch (isa) {
    case SGLC_CPU_ISA_REF: return sglc_cpu_kernels_ref(wtype);
    case SGLC_CPU_ISA_AVX2: return cpu_has_avx2() ? sglc_cpu_kernels_avx2(wtype) : NULL;
    default: return NULL;
    }
}

const sglc_cpu_type_kernels *sglc_cpu_kernels_for(uint32_t wtype, sglc_cpu_isa isa) {
    const sglc_cpu_kernel_entry *e = entry_at(wtype, isa);
    return e ? &e->pub : NULL;
}

/* Best entry at or below isa. */
static const sglc_cpu_kernel_entry *entry_best(uint32_t wtype, sglc_cpu_isa isa) {
    for (int i = (int)isa; i >= 0; i--) {
        const sglc_cpu_kernel_entry *e = entry_at(wtype, (sglc_cpu_isa)i);
        if (e) return e;
    }
    return NULL;
}

/* Scratch: n_tok quantized activation rows, then (64-byte aligned) their f32 block scales. */
static size_t scales_offset(size_t x_bytes) {
    return (x_bytes + 63) & ~(size_t)63;
}

size_t sglc_cpu_matmul_scratch_bytes(uint32_t wtype, int64_t k, int64_t n_tok) {
    const sglc_cpu_kernel_entry *e = sglc_cpu_kernels_ref(wtype);
    if (!e || n_tok < 0) return 0;
    size_t rb = sglc_ggml_row_bytes(e->pub.act_type, k);
    if (rb == 0 || (uint64_t)n_tok > SIZE_MAX / 2 / rb) return 0;
    size_t be = sglc_ggml_block_elems(e->pub.act_type);
    size_t scales =
        be > 1 ? (size_t)n_tok * ((size_t)k / be) * SGLC_CPU_MAX_SCALE_FLOATS * sizeof(float) : 0;
    return scales_offset(rb * (size_t)n_tok) + scales;
}

/* One weight of a (multi-)matmul job: n_out rows into y [n_tok][n_out]. */
typedef struct {
    const char *w; /* borrowed */
    int64_t n_out;
    float *y;
} mm_part;

typedef struct {
    const sglc_cpu_kernel_entry *e;
    mm_part part[SGLC_CPU_MM_MAX_PARTS];
    int n_parts;
    long units; /* 16-row units of all parts */
    size_t w_row_bytes;
    int64_t k;
    const float *x;
    int64_t n_tok;
    const char *xq; /* quantized activations (scratch, or x itself for f32) */
    char *xq_out;
    size_t x_row_bytes;
    float *xs;                        /* f32 activation block scales (scratch), or NULL */
    size_t xs_stride;                 /* floats per activation row in xs */
    const sglc_cpu_packed_kernel *pk; /* w is in pk's packed layout; NULL: the ggml layout */
} matmul_ctx;

static void quantize_task(void *vctx, int ith, int nth) {
    matmul_ctx *c = vctx;
    long lo, hi;
    sglc_split_range((long)c->n_tok, ith, nth, &lo, &hi);
    const int nsc = c->e->act_scale_floats;
    void (*quant)(const float *, void *, int64_t) =
        c->e->quantize_mm && !c->pk ? c->e->quantize_mm : c->e->pub.quantize_act;
    const size_t bb = sglc_ggml_block_bytes(c->e->pub.act_type);
    for (long t = lo; t < hi; t++) {
        char *row = c->xq_out + (size_t)t * c->x_row_bytes;
        quant(c->x + t * c->k, row, c->k);
        if (!c->xs) continue;
        /* the f16 fields (d, then s for Q8_1) open each block */
        float *xs = c->xs + (size_t)t * c->xs_stride;
        for (size_t b = 0; b < c->xs_stride / (size_t)nsc; b++)
            for (int j = 0; j < nsc; j++) {
                uint16_t h;
                memcpy(&h, row + b * bb + 2 * (size_t)j, 2);
                xs[b * (size_t)nsc + (size_t)j] = sglc_fp16_to_f32(h);
            }
    }
}

static void dot_rows(const matmul_ctx *c, const mm_part *pt, int64_t lo, int64_t hi) {
    const int mr = c->e->max_rows;
    float s[SGLC_CPU_DOT_MAX_ROWS_WIDE];
    for (int64_t o0 = lo; o0 < hi; o0 += MM_ROW_TILE) {
        int64_t o1 = o0 + MM_ROW_TILE < hi ? o0 + MM_ROW_TILE : hi;
        for (int64_t t0 = 0; t0 < c->n_tok; t0 += mr) {
            int nr = (int)(c->n_tok - t0 < mr ? c->n_tok - t0 : mr);
            const char *xq = c->xq + (size_t)t0 * c->x_row_bytes;
            const float *xs = c->xs ? c->xs + (size_t)t0 * c->xs_stride : NULL;
            for (int64_t o = o0; o < o1; o++) {
                c->e->vec_dot_n(c->k, s, pt->w + (size_t)o * c->w_row_bytes, xq, c->x_row_bytes, xs,
                                c->xs_stride, nr);
                for (int r = 0; r < nr; r++)
                    pt->y[(t0 + r) * pt->n_out + o] = s[r];
            }
        }
    }
}

/* Packed weights: a thread takes whole 16-row units (two 8-row groups) and, per group, walks
 * the tokens in fours; the group's weights (k / 32 x 160 bytes) stay in L1 across them. */
static void packed_rows(const matmul_ctx *c, const mm_part *pt, int64_t lo, int64_t hi) {
    const int64_t G = SGLC_CPU_PACK_ROWS, TT = SGLC_CPU_PACK_TOKENS;
    const size_t group_bytes = (size_t)(c->k / 32) * c->pk->block_bytes;
    float part[SGLC_CPU_PACK_TOKENS * SGLC_CPU_PACK_ROWS];
    for (int64_t o0 = lo; o0 < hi; o0 += G) {
        const char *wg = pt->w + (size_t)(o0 / G) * group_bytes;
        const int full = o0 + G <= pt->n_out;
        for (int64_t t0 = 0; t0 < c->n_tok; t0 += TT) {
            int nt = (int)(c->n_tok - t0 < TT ? c->n_tok - t0 : TT);
            const char *xq = c->xq + (size_t)t0 * c->x_row_bytes;
            const float *xs = c->xs + (size_t)t0 * c->xs_stride;
            if (full) {
                c->pk->gemm(c->k, wg, xq, c->x_row_bytes, xs, c->xs_stride, nt,
                            pt->y + t0 * pt->n_out + o0, (size_t)pt->n_out);
                continue;
            }
            /* the padded last group: only its real rows are stored */
            c->pk->gemm(c->k, wg, xq, c->x_row_bytes, xs, c->xs_stride, nt, part, (size_t)G);
            for (int t = 0; t < nt; t++)
                memcpy(pt->y + (t0 + t) * pt->n_out + o0, part + t * G,
                       sizeof(float) * (size_t)(pt->n_out - o0));
        }
    }
}

/* A thread's share: a range of the 16-row units of all parts, in part order. */
static void mm_task(void *vctx, int ith, int nth) {
    matmul_ctx *c = vctx;
    long ulo, uhi, base = 0;
    sglc_split_range(c->units, ith, nth, &ulo, &uhi);
    for (int i = 0; i < c->n_parts; i++) {
        const mm_part *pt = &c->part[i];
        long pu = (long)((pt->n_out + MM_ROW_UNIT - 1) / MM_ROW_UNIT);
        long a = ulo > base ? ulo : base, b = uhi < base + pu ? uhi : base + pu;
        if (a < b) {
            int64_t lo = (int64_t)(a - base) * MM_ROW_UNIT, hi = (int64_t)(b - base) * MM_ROW_UNIT;
            if (hi > pt->n_out) hi = pt->n_out;
            if (c->pk)
                packed_rows(c, pt, lo, hi);
            else
                dot_rows(c, pt, lo, hi);
        }
        base += pu;
    }
}

void sglc_cpu_pack_q4_1x8(const void *vw, int64_t n_out, int64_t k, void *out) {
    const sglc_block_q4_1 *w = vw;
    const int64_t nb = k / 32, G = SGLC_CPU_PACK_ROWS;
    sglc_block_q4_1x8 *p = out;
    for (int64_t g = 0; g < (n_out + G - 1) / G; g++)
        for (int64_t ib = 0; ib < nb; ib++, p++) {
            memset(p, 0, sizeof *p);
            for (int64_t r = 0; r < G && g * G + r < n_out; r++) {
                const sglc_block_q4_1 *b = w + (g * G + r) * nb + ib;
                p->d[r] = b->d;
                p->m[r] = b->m;
                for (int c = 0; c < 4; c++)
                    memcpy(p->qs + 32 * c + 4 * r, b->qs + 4 * c, 4);
            }
        }
}

void sglc_cpu_pack_q8_0x8(const void *vw, int64_t n_out, int64_t k, void *out) {
    const sglc_block_q8_0 *w = vw;
    const int64_t nb = k / 32, G = SGLC_CPU_PACK_ROWS;
    sglc_block_q8_0x8 *p = out;
    for (int64_t g = 0; g < (n_out + G - 1) / G; g++)
        for (int64_t ib = 0; ib < nb; ib++, p++) {
            memset(p, 0, sizeof *p);
            for (int64_t r = 0; r < G && g * G + r < n_out; r++) {
                const sglc_block_q8_0 *b = w + (g * G + r) * nb + ib;
                p->d[r] = b->d;
                for (int c = 0; c < 8; c++)
                    memcpy(p->qs + 32 * c + 4 * r, b->qs + 4 * c, 4);
            }
        }
}

static const sglc_cpu_packed_kernel *packed_at(uint32_t wtype, sglc_cpu_isa isa) {
    const sglc_cpu_kernel_entry *e = entry_best(wtype, isa);
    return e ? e->packed : NULL;
}

size_t sglc_cpu_packed_bytes(sglc_cpu_isa isa, uint32_t wtype, int64_t n_out, int64_t k) {
    const sglc_cpu_packed_kernel *pk = packed_at(wtype, isa);
    if (!pk || n_out <= 0 || k <= 0 || k % 32 != 0) return 0;
    const uint64_t groups = (uint64_t)(n_out + SGLC_CPU_PACK_ROWS - 1) / SGLC_CPU_PACK_ROWS;
    const uint64_t blocks = (uint64_t)(k / 32);
    if (groups > SIZE_MAX / 2 / blocks / pk->block_bytes) return 0;
    return (size_t)(groups * blocks * pk->block_bytes);
}

void sglc_cpu_pack(sglc_cpu_isa isa, uint32_t wtype, const void *w, int64_t n_out, int64_t k,
                   void *out) {
    const sglc_cpu_packed_kernel *pk = packed_at(wtype, isa);
    SGLC_ASSERT(pk != NULL && sglc_cpu_packed_bytes(isa, wtype, n_out, k) > 0);
    pk->pack(w, n_out, k, out);
}

void sglc_cpu_matmul(sglc_threadpool *tp, sglc_cpu_isa isa, uint32_t wtype, const void *w,
                     int64_t n_out, int64_t k, const float *x, int64_t n_tok, float *y,
                     void *scratch) {
    sglc_cpu_matmul_multi(tp, isa, wtype, 0, 1, &w, &n_out, k, x, n_tok, &y, scratch);
}

void sglc_cpu_matmul_packed(sglc_threadpool *tp, sglc_cpu_isa isa, uint32_t wtype, const void *wp,
                            int64_t n_out, int64_t k, const float *x, int64_t n_tok, float *y,
                            void *scratch) {
    sglc_cpu_matmul_multi(tp, isa, wtype, 1, 1, &wp, &n_out, k, x, n_tok, &y, scratch);
}

void sglc_cpu_matmul_multi(sglc_threadpool *tp, sglc_cpu_isa isa, uint32_t wtype, int packed, int n,
                           const void *const *w, const int64_t *n_out, int64_t k, const float *x,
                           int64_t n_tok, float *const *y, void *scratch) {
    const sglc_cpu_kernel_entry *e = entry_best(wtype, isa);
    SGLC_ASSERT(e != NULL);
    SGLC_ASSERT(!packed || (e->packed && e->act_scale_floats > 0 && k % 32 == 0));
    SGLC_ASSERT(e->max_rows >= 1 && e->max_rows <= SGLC_CPU_DOT_MAX_ROWS_WIDE);
    SGLC_ASSERT(n >= 1 && n <= SGLC_CPU_MM_MAX_PARTS && k > 0 && n_tok >= 0);
    matmul_ctx c = {
        .e = e,
        .w_row_bytes = sglc_ggml_row_bytes(wtype, k),
        .k = k,
        .x = x,
        .n_tok = n_tok,
        .x_row_bytes = sglc_ggml_row_bytes(e->pub.act_type, k),
        .pk = packed ? e->packed : NULL,
    };
    double macs = 0;
    for (int i = 0; i < n; i++) {
        SGLC_ASSERT(n_out[i] >= 0);
        if (n_out[i] == 0) continue;
        c.part[c.n_parts++] = (mm_part){(const char *)w[i], n_out[i], y[i]};
        c.units += (long)((n_out[i] + MM_ROW_UNIT - 1) / MM_ROW_UNIT);
        macs += (double)n_out[i] * (double)k * (double)n_tok;
    }
    if (c.n_parts == 0 || n_tok == 0) return;
    SGLC_ASSERT(c.w_row_bytes != 0 && c.x_row_bytes != 0);
    int serial = macs < MM_SERIAL_MACS;
    if (e->pub.act_type == SGLC_GGML_TYPE_F32) {
        c.xq = (const char *)x;
    } else {
        SGLC_ASSERT(scratch != NULL);
        c.xq_out = scratch;
        c.xq = scratch;
        if (e->act_scale_floats > 0) {
            SGLC_ASSERT(e->act_scale_floats <= SGLC_CPU_MAX_SCALE_FLOATS);
            c.xs = (float *)((char *)scratch + scales_offset(c.x_row_bytes * (size_t)n_tok));
            c.xs_stride = (size_t)(k / (int64_t)sglc_ggml_block_elems(e->pub.act_type)) *
                          (size_t)e->act_scale_floats;
        }
        /* Quantizing a few rows costs less than waking the pool for it. */
        if (serial || n_tok <= 4)
            quantize_task(&c, 0, 1);
        else
            sglc_threadpool_run(tp, quantize_task, &c);
    }
    if (serial)
        mm_task(&c, 0, 1);
    else
        sglc_threadpool_run(tp, mm_task, &c);
}
