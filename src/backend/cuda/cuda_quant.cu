/* MLX affine quantization on the GPU at load (the quantize_affine op, backend.h): a host float
 * matrix goes up in chunks of whole rows and only its codes, scales and biases stay on the
 * device, so --quantization mlx_q4|mlx_q8 never holds the float model in GPU memory and the
 * host does no arithmetic. The plain C reference is sglc_mlx_affine_quantize
 * (quant/mlx_affine.c); the kernel repeats it statement for statement, so the results are the
 * CPU's bit for bit:
 *   - one thread per group, reading its values in the CPU's order (min/max with the CPU's
 *     ternaries, so NaN inputs are skipped the same way);
 *   - every float operation the CPU does as one IEEE operation (subtraction, division) is the
 *     round-to-nearest intrinsic, never contracted or approximated: the C code is built with
 *     -std=c11, where GCC does not contract (-ffp-contract=off), and has no multiply-add to
 *     fuse anyway; rintf rounds half to even like the CPU's rintf and its 1.5 * 2^23 trick;
 *   - the f16/bf16 conversions are integer copies of ggml_types.c's, not the hardware's (which
 *     may differ on NaN payloads);
 *   - a NaN code (from Inf/NaN inputs) is 0, what the CPU's float-to-integer conversion gives
 *     on x86-64 and arm64. NaN scales and biases are NaN on both, but the payload of a NaN an
 *     operation creates is the hardware's (x86: 0xffc00000, CUDA: 0x7fffffff).
 * Denormals must not be flushed (nvcc's default -ftz=false; checked below).
 *
 * The pipeline, per chunk of rows (CUDA_QUANT_SLOT_BYTES of source, CUDA_QUANT_SLOTS slots
 * used round robin): host threads copy the source rows into the slot's pinned buffer (after
 * the slot's previous upload is done), the copy stream uploads it into the slot's device
 * buffer (after the kernel that last read it is done), and the backend's stream runs the kernel
 * on it. So the host copy of chunk c, the upload of chunk c - 1 and the kernel of chunk c - 2
 * overlap, across matrices too: the op returns without waiting, and the outputs are ordered
 * before every later op by the backend's stream. cu_sync gives the staging back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda/cuda_impl.h"

#if defined(__CUDA_FTZ) && __CUDA_FTZ
#error "cuda_quant.cu must be compiled without -ftz=true (the CPU keeps denormals)"
#endif

/* ---- ggml_types.c's conversions, as integer operations ---- */

__device__ __forceinline__ float q_fp16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return __uint_as_float(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        /* zero or subnormal: m * 2^-24 is exact in f32 */
        const float v = __fmul_rn(__uint2float_rn(m), 5.9604644775390625e-8f);
        return sign ? -v : v;
    }
    return __uint_as_float(sign | ((e + 112) << 23) | (m << 13));
}

__device__ __forceinline__ uint16_t q_f32_to_fp16(float f) {
    uint32_t x = __float_as_uint(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu)); /* NaN */
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (x >= 0x38800000u) {                                  /* normal half */
        uint32_t h = (((x >> 23) - 112) << 10) | ((x >> 13) & 0x3ffu);
        const uint32_t rem = x & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    if (x <= 0x33000000u) return sign; /* <= 2^-25 rounds (to even) to zero */
    const uint32_t mant = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - (x >> 23); /* 14..24 */
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

__device__ __forceinline__ uint16_t q_f32_to_bf16(float f) {
    const uint32_t x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64u); /* quiet NaN */
    return (uint16_t)((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

/* element i of a source of ggml type DT (F32 0, F16 1, BF16 30), as f32 */
template <uint32_t DT> __device__ __forceinline__ float q_load(const uint8_t *p, int64_t i) {
    if (DT == SGLC_GGML_TYPE_F32) return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    if (DT == SGLC_GGML_TYPE_F16) return q_fp16_to_f32(h);
    return __uint_as_float((uint32_t)h << 16);
}

template <uint32_t DT> __device__ __forceinline__ void q_store(uint8_t *p, int64_t i, float v) {
    if (DT == SGLC_GGML_TYPE_F32)
        ((float *)p)[i] = v;
    else if (DT == SGLC_GGML_TYPE_F16)
        ((uint16_t *)p)[i] = q_f32_to_fp16(v);
    else
        ((uint16_t *)p)[i] = q_f32_to_bf16(v);
}

/* Group t of the chunk (row t / groups_per_row, group t % groups_per_row: since a row is a
 * whole number of groups, its values start at t * group and its packed words at t * group *
 * bits / 32; its scale and bias are entry t). sglc_mlx_affine_quantize, line for line. */
template <uint32_t DT>
__global__ void k_mlx_affine_quantize(const uint8_t *__restrict__ in, int64_t n_groups, int group,
                                      int bits, uint32_t *__restrict__ codes,
                                      uint8_t *__restrict__ scales, uint8_t *__restrict__ biases) {
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n_groups) return;
    const float n_bins = (float)((1 << bits) - 1);
    const float eps = 1e-7f;
    const int64_t base = t * group;
    float w_min = __uint_as_float(0x7f800000u), w_max = __uint_as_float(0xff800000u);
    for (int j = 0; j < group; j++) {
        const float v = q_load<DT>(in, base + j);
        w_max = w_max < v ? v : w_max;
        w_min = v < w_min ? v : w_min;
    }
    const int mask = fabsf(w_min) > fabsf(w_max);
    const float range = __fsub_rn(w_max, w_min);
    float scale = __fdiv_rn(range, n_bins);
    scale = scale < eps ? eps : scale;
    scale = mask ? scale : -scale;
    const float edge = mask ? w_min : w_max;
    const float q0 = rintf(__fdiv_rn(edge, scale));
    float bias = 0.0f;
    if (q0 != 0.0f) {
        scale = __fdiv_rn(edge, q0);
        bias = edge;
    }
    /* the group's codes as a little-endian bit stream from the low bits up; group * bits is a
     * multiple of 32, so the group owns whole words and the stream ends on a word boundary */
    uint32_t *qw = codes + t * (int64_t)(group * bits / 32);
    uint64_t acc = 0;
    int n_acc = 0;
    for (int j = 0; j < group; j++) {
        const float d = __fsub_rn(q_load<DT>(in, base + j), bias);
        float q = rintf(__fdiv_rn(d, scale));
        q = q < 0.0f ? 0.0f : q;
        q = q > n_bins ? n_bins : q;
        const uint32_t code = isnan(q) ? 0u : (uint32_t)q; /* NaN: 0, as on the CPU */
        acc |= (uint64_t)code << n_acc;
        n_acc += bits;
        if (n_acc >= 32) {
            *qw++ = (uint32_t)acc;
            acc >>= 32;
            n_acc -= 32;
        }
    }
    q_store<DT>(scales, t, scale);
    q_store<DT>(biases, t, bias);
}

/* ---- staging ---- */

void cuda_quant_release(cuda_impl *im) {
    cuda_quant_stage *q = &im->qs;
    if (!q->active) return;
    /* every upload is followed by a kernel on the backend's stream, but after a failure in
     * between only the copy stream knows */
    if (q->copy) CUDA_CHECK(im, cudaStreamSynchronize(q->copy));
    if (im->stream) CUDA_CHECK(im, cudaStreamSynchronize(im->stream));
    for (int i = 0; i < CUDA_QUANT_SLOTS; i++) {
        cuda_quant_slot *s = &q->slot[i];
        if (s->pinned) CUDA_CHECK(im, cudaFreeHost(s->pinned));
        if (s->dev) CUDA_CHECK(im, cudaFree(s->dev));
        if (s->copied) CUDA_CHECK(im, cudaEventDestroy(s->copied));
        if (s->consumed) CUDA_CHECK(im, cudaEventDestroy(s->consumed));
    }
    if (q->copy) CUDA_CHECK(im, cudaStreamDestroy(q->copy));
    sglc_threadpool_close(q->tp);
    memset(q, 0, sizeof *q);
}

/* threads copying the source: the backend's n_threads, else one per core up to 16 (a copy
 * saturates memory bandwidth well before that) */
static int copy_threads(const cuda_impl *im) {
    if (im->n_host_threads > 0) return im->n_host_threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

/* Slots of at least row_bytes each (a chunk is whole rows). */
static int ensure_staging(cuda_impl *im, size_t row_bytes, sglc_err *err) {
    cuda_quant_stage *q = &im->qs;
    const size_t need = row_bytes > CUDA_QUANT_SLOT_BYTES ? row_bytes : CUDA_QUANT_SLOT_BYTES;
    if (q->cap >= need) return SGLC_OK;
    cuda_quant_release(im); /* too small (a row larger than a slot): made again */
    q->active = 1;
    if (sglc_threadpool_open(&q->tp, copy_threads(im)) != 0) {
        q->tp = NULL;
        cuda_quant_release(im);
        return sglc_err_set(err, SGLC_ERR_NOMEM, "cuda: cannot start the quantization threads");
    }
    int bad = CUDA_CHECK(im, cudaStreamCreateWithFlags(&q->copy, cudaStreamNonBlocking));
    for (int i = 0; i < CUDA_QUANT_SLOTS && !bad; i++) {
        cuda_quant_slot *s = &q->slot[i];
        bad = CUDA_CHECK(im, cudaMallocHost(&s->pinned, need)) ||
              CUDA_CHECK(im, cudaMalloc(&s->dev, need)) ||
              CUDA_CHECK(im, cudaEventCreateWithFlags(&s->copied, cudaEventDisableTiming)) ||
              CUDA_CHECK(im, cudaEventCreateWithFlags(&s->consumed, cudaEventDisableTiming));
    }
    if (bad) {
        cuda_quant_release(im);
        return sglc_err_set(err, SGLC_ERR_NOMEM,
                            "cuda: cannot allocate %d x %zu MB of quantization staging (see the "
                            "log line above)",
                            CUDA_QUANT_SLOTS, need >> 20);
    }
    q->cap = need;
    q->next = 0;
    return SGLC_OK;
}

typedef struct {
    uint8_t *dst;
    const uint8_t *src;
    size_t bytes;
} copy_job;

/* one thread's share of a chunk, in whole pages of the chunk */
static void copy_task(void *ctx, int ith, int nth) {
    const copy_job *j = (const copy_job *)ctx;
    const size_t unit = 4096, units = (j->bytes + unit - 1) / unit;
    long lo, hi;
    sglc_split_range((long)units, ith, nth, &lo, &hi);
    size_t a = (size_t)lo * unit, b = (size_t)hi * unit;
    if (b > j->bytes) b = j->bytes;
    if (b > a) memcpy(j->dst + a, j->src + a, b - a);
}

/* ---- the op ---- */

/* Uploads and quantizes src chunk by chunk into the codes, scales and biases buffers. 0, or -1
 * after a CUDA call failed (logged). */
static int quantize_chunks(cuda_impl *im, const sglc_weight *src, int bits, int group,
                           uint32_t *codes, uint8_t *scales, uint8_t *biases) {
    cuda_quant_stage *q = &im->qs;
    const uint32_t dt = src->type;
    const size_t es = dt == SGLC_GGML_TYPE_F32 ? 4 : 2, row_bytes = (size_t)src->k * es;
    const int64_t n = src->n, groups = src->k / group;
    const int64_t words = sglc_mlx_affine_row_words(src->k, bits);
    const int64_t chunk_rows = (int64_t)(q->cap / row_bytes); /* >= 1: ensure_staging */
    const uint8_t *host = (const uint8_t *)src->host;
    for (int64_t r0 = 0; r0 < n; r0 += chunk_rows) {
        const int64_t nr = n - r0 < chunk_rows ? n - r0 : chunk_rows;
        const size_t bytes = (size_t)nr * row_bytes;
        SGLC_ASSERT(bytes <= q->cap);
        cuda_quant_slot *s = &q->slot[q->next];
        q->next = (q->next + 1) % CUDA_QUANT_SLOTS;
        /* the pinned buffer is refilled once its last upload is done (an event never recorded
         * counts as done) */
        if (CUDA_CHECK(im, cudaEventSynchronize(s->copied))) return -1;
        copy_job job = {(uint8_t *)s->pinned, host + (size_t)r0 * row_bytes, bytes};
        sglc_threadpool_run(q->tp, copy_task, &job);
        /* the device buffer is overwritten once the kernel that read it is done */
        if (CUDA_CHECK(im, cudaStreamWaitEvent(q->copy, s->consumed, 0)) ||
            CUDA_CHECK(
                im, cudaMemcpyAsync(s->dev, s->pinned, bytes, cudaMemcpyHostToDevice, q->copy)) ||
            CUDA_CHECK(im, cudaEventRecord(s->copied, q->copy)) ||
            CUDA_CHECK(im, cudaStreamWaitEvent(im->stream, s->copied, 0)))
            return -1;
        const int64_t n_groups = nr * groups, threads = 256;
        const int64_t blocks = (n_groups + threads - 1) / threads;
        SGLC_ASSERT(blocks <= INT32_MAX);
        const uint8_t *in = (const uint8_t *)s->dev;
        uint32_t *c = codes + r0 * words;
        uint8_t *sc = scales + (size_t)(r0 * groups) * es,
                *bi = biases + (size_t)(r0 * groups) * es;
        const dim3 grid((unsigned)blocks), block((unsigned)threads);
        if (dt == SGLC_GGML_TYPE_F32)
            k_mlx_affine_quantize<SGLC_GGML_TYPE_F32>
                <<<grid, block, 0, im->stream>>>(in, n_groups, group, bits, c, sc, bi);
        else if (dt == SGLC_GGML_TYPE_F16)
            k_mlx_affine_quantize<SGLC_GGML_TYPE_F16>
                <<<grid, block, 0, im->stream>>>(in, n_groups, group, bits, c, sc, bi);
        else
            k_mlx_affine_quantize<SGLC_GGML_TYPE_BF16>
                <<<grid, block, 0, im->stream>>>(in, n_groups, group, bits, c, sc, bi);
        if (CUDA_LAUNCHED(im, "mlx affine quantize kernel") ||
            CUDA_CHECK(im, cudaEventRecord(s->consumed, im->stream)))
            return -1;
    }
    return 0;
}

int cuda_quantize_affine(sglc_backend *be, const sglc_weight *src, int bits, int group,
                         sglc_weight *out, sglc_err *err) {
    cuda_impl *im = cuda_impl_of(be);
    SGLC_ASSERT(im->mode == CUDA_MODE_EAGER); /* not an op of a step */
    const uint32_t dt = src->type;
    const int float_src =
        dt == SGLC_GGML_TYPE_F32 || dt == SGLC_GGML_TYPE_F16 || dt == SGLC_GGML_TYPE_BF16;
    if (!float_src || !src->host || src->n < 1 || src->k < 1 ||
        !sglc_mlx_affine_valid(bits, group) || src->k % group != 0)
        return sglc_err_set(err, SGLC_ERR_ARG,
                            "cuda: cannot quantize a %lld x %lld matrix of type %u%s to MLX "
                            "affine bits=%d group_size=%d",
                            (long long)src->n, (long long)src->k, (unsigned)dt,
                            src->host ? "" : " without host data", bits, group);
    if (im->failed)
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                            "cuda: an earlier CUDA call failed (see the log); not quantizing");
    const size_t es = dt == SGLC_GGML_TYPE_F32 ? 4 : 2;
    const int64_t n = src->n, groups = src->k / group;
    const int64_t words = sglc_mlx_affine_row_words(src->k, bits);
    size_t row_bytes, code_bytes, param_bytes;
    if (__builtin_mul_overflow((size_t)src->k, es, &row_bytes) ||
        __builtin_mul_overflow((size_t)words * 4, (size_t)n, &code_bytes) ||
        __builtin_mul_overflow((size_t)groups * es, (size_t)n, &param_bytes) ||
        (size_t)n > SIZE_MAX / row_bytes)
        return sglc_err_set(err, SGLC_ERR_RANGE, "cuda: a %lld x %lld weight overflows size_t",
                            (long long)n, (long long)src->k);
    int rc = ensure_staging(im, row_bytes, err);
    if (rc) return rc;
    void *bufs[3] = {NULL, NULL, NULL}; /* codes, scales, biases */
    const size_t sizes[3] = {code_bytes, param_bytes, param_bytes};
    int n_tracked = 0;
    for (int i = 0; i < 3; i++) {
        if (cudaMalloc(&bufs[i], sizes[i]) != cudaSuccess) {
            (void)cudaGetLastError(); /* out of memory is the caller's to report, not sticky */
            bufs[i] = NULL;
            rc = sglc_err_set(err, SGLC_ERR_NOMEM,
                              "cuda: cannot allocate %zu MB of GPU memory for a quantized weight",
                              (code_bytes + 2 * param_bytes) >> 20);
            goto cleanup;
        }
        if (cuda_track_walloc(im, bufs[i]) != 0) {
            rc = sglc_err_set(err, SGLC_ERR_NOMEM, "cuda: out of memory");
            goto cleanup;
        }
        n_tracked++;
    }
    if (quantize_chunks(im, src, bits, group, (uint32_t *)bufs[0], (uint8_t *)bufs[1],
                        (uint8_t *)bufs[2]) != 0) {
        rc = sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                          "cuda: quantizing a %lld x %lld weight failed (see the log line above)",
                          (long long)n, (long long)src->k);
        goto cleanup;
    }
    *out = *src;
    out->type = SGLC_WTYPE_MLX_AFFINE;
    out->host = NULL;
    out->dev = bufs[0];
    out->q_bits = bits;
    out->q_group = group;
    out->q_dtype = dt;
    out->q_scales = out->q_biases = NULL;
    out->q_scales_dev = bufs[1];
    out->q_biases_dev = bufs[2];
    out->dev_packed = 0;
    out->host_bytes = 0;
    return SGLC_OK;
cleanup:
    for (int i = 0; i < 3; i++) {
        if (!bufs[i]) continue;
        if (i < n_tracked)
            cuda_untrack_free(im, bufs[i]); /* cudaFree waits for kernels still writing it */
        else
            CUDA_CHECK(im, cudaFree(bufs[i]));
    }
    return rc;
}
