/* gpu_floor: the ceilings of one GPU that bound an LLM decode step (issue 15 item 1), measured
 * with no model code, so the CUDA backend's figures can be read against them:
 *   1. device-to-device copy bandwidth: cudaMemcpyAsync and a 16-byte-vector copy kernel over
 *      --copy-bytes (bytes read + written per second);
 *   2. the time to read every weight byte of a model once: a read-only sum over one buffer of
 *      the model's decode bytes (--bytes N, or --shape + --dtype: q, k, v, o, gate, up, down of
 *      every layer, the lm_head and one embedding row), 16-byte loads;
 *   3. the same bytes read by one kernel per weight matrix (one launch per matrix per layer, as
 *      a decode step launches them), captured in a CUDA graph and replayed; the difference from
 *      (2) divided by the launch count is the launch-gap floor. The same launches issued one by
 *      one on a stream (no graph) are timed too.
 * Each figure is the median of --iters timed runs (CUDA events around each) after warm-up runs.
 * When the bytes are fewer than 3x the L2 cache, reads rotate over enough copies of the buffer
 * that each run starts with the data out of L2. Every kernel's result is checked against a
 * host-side reference once (the buffers hold a known pattern), so a kernel that skipped bytes
 * would fail rather than look fast.
 *
 * Build (nvcc; no GPU needed): bench/build_gpu_floor.sh   (writes build/gpu_floor)
 * Run on the GPU machine, e.g.:
 *   build/gpu_floor --shape llama-3.1-8b --dtype bf16
 *   build/gpu_floor --shape qwen3-0.6b --dtype q4 --iters 50
 *   build/gpu_floor --bytes 4000000000
 * It prints a short table and, last, one JSON line with every figure.
 *
 * Threading: one host thread, one stream. */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "gpu_floor: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,               \
                    cudaGetErrorString(e_));                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define THREADS 256
#define UNROLL 4      /* 16-byte loads in flight per thread per loop trip */
#define ALIGN 256     /* each matrix's region starts on this boundary, as an allocator's would */
#define MAX_MATS 4096 /* 7 per layer + lm_head + embedding row */
#define PATTERN 0x01u /* every byte of every buffer; a uint32 word is 0x01010101 */

/* ---- kernels --------------------------------------------------------------------------------- */

/* Sums the n16 16-byte vectors at p (each as four uint32) into *sink. Grid-stride, UNROLL
 * independent loads per trip; one atomic per block. */
__global__ void read_sum_kernel(const uint4 *__restrict__ p, size_t n16, unsigned long long *sink) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long acc = 0;
    for (; i + (UNROLL - 1) * stride < n16; i += UNROLL * stride) {
        uint4 v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            v[u] = __ldcs(p + i + u * stride); /* streaming: no reuse */
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            acc += (unsigned long long)v[u].x + v[u].y + v[u].z + v[u].w;
    }
    for (; i < n16; i += stride) {
        uint4 v = __ldcs(p + i);
        acc += (unsigned long long)v.x + v.y + v.z + v.w;
    }
    for (int o = 16; o > 0; o >>= 1)
        acc += __shfl_down_sync(0xffffffffu, acc, o);
    __shared__ unsigned long long warp_sum[THREADS / 32];
    if ((threadIdx.x & 31) == 0) warp_sum[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned long long s = 0;
        for (int w = 0; w < THREADS / 32; w++)
            s += warp_sum[w];
        atomicAdd(sink, s);
    }
}

/* dst[i] = src[i] for n16 16-byte vectors. */
__global__ void copy_kernel(uint4 *__restrict__ dst, const uint4 *__restrict__ src, size_t n16) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + (UNROLL - 1) * stride < n16; i += UNROLL * stride) {
        uint4 v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            v[u] = __ldcs(src + i + u * stride);
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            __stcs(dst + i + u * stride, v[u]);
    }
    for (; i < n16; i += stride)
        __stcs(dst + i, __ldcs(src + i));
}

/* ---- host helpers ---------------------------------------------------------------------------- */

typedef struct {
    int sms;
    int l2_bytes;
    int max_blocks; /* resident blocks of THREADS threads the whole device holds */
} device_info;

static int grid_for(const device_info *d, size_t n16) {
    /* at least one vector per thread, so that a small matrix still spreads over every SM */
    size_t want = (n16 + THREADS - 1) / THREADS;
    if (want < 1) want = 1;
    return (int)(want < (size_t)d->max_blocks ? want : (size_t)d->max_blocks);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static float median(float *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

/* The sum read_sum_kernel must find over n16 vectors of PATTERN bytes (mod 2^64). */
static unsigned long long expected_sum(size_t n16) {
    unsigned long long word = PATTERN * 0x01010101ull;
    return (unsigned long long)n16 * 4ull * word;
}

static size_t round_up(size_t x, size_t a) {
    return (x + a - 1) / a * a;
}

/* ---- model shapes ---------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int64_t hidden, q_dim, kv_dim, ffn, layers, vocab;
} shape;

/* the config.json numbers (q_dim = heads * head_dim, kv_dim = kv heads * head_dim) */
static const shape k_shapes[] = {
    {"qwen3-0.6b", 1024, 16 * 128, 8 * 128, 3072, 28, 151936},
    {"llama-3.2-1b", 2048, 32 * 64, 8 * 64, 8192, 16, 128256},
    {"llama-3.1-8b", 4096, 32 * 128, 8 * 128, 14336, 32, 128256},
};

/* Bytes of an n-element matrix: bf16 2 per element; q8: 8 bits + a 16-bit scale per 32
 * (GGUF Q8_0; MLX 8-bit with bf16 scale + bias per 64 is the same 8.5 bits); q4: 4 bits + 16 per
 * 32 (Q4_0; MLX 4-bit group 64 also 4.5 bits). */
static int64_t matrix_bytes(int64_t n, const char *dtype) {
    if (strcmp(dtype, "bf16") == 0) return 2 * n;
    if (strcmp(dtype, "q8") == 0) return n / 32 * 34;
    return n / 32 * 18; /* q4 */
}

/* Fills sizes[] with the bytes of each matrix a decode step reads, in launch order; returns
 * the count. */
static int model_matrices(const shape *s, const char *dtype, int64_t *sizes) {
    int n = 0;
    sizes[n++] = matrix_bytes(s->hidden, dtype); /* the token's embedding row */
    for (int64_t l = 0; l < s->layers; l++) {
        sizes[n++] = matrix_bytes(s->hidden * s->q_dim, dtype);  /* q */
        sizes[n++] = matrix_bytes(s->hidden * s->kv_dim, dtype); /* k */
        sizes[n++] = matrix_bytes(s->hidden * s->kv_dim, dtype); /* v */
        sizes[n++] = matrix_bytes(s->q_dim * s->hidden, dtype);  /* o */
        sizes[n++] = matrix_bytes(s->hidden * s->ffn, dtype);    /* gate */
        sizes[n++] = matrix_bytes(s->hidden * s->ffn, dtype);    /* up */
        sizes[n++] = matrix_bytes(s->ffn * s->hidden, dtype);    /* down */
    }
    sizes[n++] = matrix_bytes(s->vocab * s->hidden, dtype); /* lm_head (tied or not) */
    return n;
}

/* ---- measurements ---------------------------------------------------------------------------- */

typedef struct {
    cudaStream_t stream;
    cudaEvent_t t0, t1;
    int warmup, iters;
    float *times;
} timer;

static void check_sum(unsigned long long *d_sink, size_t n16, const char *what) {
    unsigned long long got = 0;
    CHECK(cudaMemcpy(&got, d_sink, sizeof got, cudaMemcpyDeviceToHost));
    if (got != expected_sum(n16)) {
        fprintf(stderr, "gpu_floor: %s read a sum of %llu, expected %llu: kernel is wrong\n", what,
                got, expected_sum(n16));
        exit(1);
    }
}

/* cudaMemcpyAsync and copy_kernel over bytes; returns the medians in ms. */
static void measure_copy(const device_info *d, timer *T, size_t bytes, float *ms_memcpy,
                         float *ms_kernel) {
    size_t n16 = bytes / 16;
    bytes = n16 * 16;
    uint4 *src = NULL, *dst = NULL;
    unsigned long long *d_sink = NULL;
    CHECK(cudaMalloc((void **)&src, bytes));
    CHECK(cudaMalloc((void **)&dst, bytes));
    CHECK(cudaMalloc((void **)&d_sink, sizeof *d_sink));
    CHECK(cudaMemset(src, PATTERN, bytes));
    for (int pass = 0; pass < 2; pass++) {
        CHECK(cudaMemset(dst, 0, bytes));
        for (int it = 0; it < T->warmup + T->iters; it++) {
            CHECK(cudaEventRecord(T->t0, T->stream));
            if (pass == 0) {
                CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, T->stream));
            } else {
                copy_kernel<<<grid_for(d, n16), THREADS, 0, T->stream>>>(dst, src, n16);
                CHECK(cudaGetLastError());
            }
            CHECK(cudaEventRecord(T->t1, T->stream));
            CHECK(cudaEventSynchronize(T->t1));
            if (it >= T->warmup)
                CHECK(cudaEventElapsedTime(&T->times[it - T->warmup], T->t0, T->t1));
        }
        /* the copy is checked by summing the destination */
        CHECK(cudaMemset(d_sink, 0, sizeof *d_sink));
        read_sum_kernel<<<grid_for(d, n16), THREADS, 0, T->stream>>>(dst, n16, d_sink);
        CHECK(cudaGetLastError());
        CHECK(cudaStreamSynchronize(T->stream));
        check_sum(d_sink, n16,
                  pass == 0 ? "cudaMemcpyAsync's destination" : "copy_kernel's destination");
        *(pass == 0 ? ms_memcpy : ms_kernel) = median(T->times, T->iters);
    }
    CHECK(cudaFree(src));
    CHECK(cudaFree(dst));
    CHECK(cudaFree(d_sink));
}

typedef struct {
    int n_mats;
    const int64_t *sizes; /* bytes of each matrix (borrowed) */
    size_t *offsets;      /* byte offset of each matrix's region in a buffer */
    size_t buf_bytes;     /* one buffer: every region, ALIGN-aligned */
    size_t read_bytes;    /* bytes the kernels read: each matrix rounded up to 16 */
    int n_bufs;           /* copies rotated through so that each run misses L2 */
    uint8_t **bufs;
} layout;

static void layout_make(layout *L, const device_info *d, int n_mats, const int64_t *sizes) {
    L->n_mats = n_mats;
    L->sizes = sizes;
    L->offsets = (size_t *)calloc((size_t)n_mats, sizeof *L->offsets);
    if (!L->offsets) {
        fprintf(stderr, "gpu_floor: out of host memory\n");
        exit(1);
    }
    size_t off = 0, rb = 0;
    for (int i = 0; i < n_mats; i++) {
        L->offsets[i] = off;
        off = round_up(off + round_up((size_t)sizes[i], 16), ALIGN);
        rb += round_up((size_t)sizes[i], 16);
    }
    L->buf_bytes = off;
    L->read_bytes = rb;
    size_t l3x = 3 * (size_t)d->l2_bytes;
    L->n_bufs = L->buf_bytes >= l3x ? 1 : (int)((l3x + L->buf_bytes - 1) / L->buf_bytes);
    if (L->n_bufs < 1) L->n_bufs = 1;
    L->bufs = (uint8_t **)calloc((size_t)L->n_bufs, sizeof *L->bufs);
    if (!L->bufs) {
        fprintf(stderr, "gpu_floor: out of host memory\n");
        exit(1);
    }
    for (int b = 0; b < L->n_bufs; b++) {
        CHECK(cudaMalloc((void **)&L->bufs[b], L->buf_bytes));
        CHECK(cudaMemset(L->bufs[b], PATTERN, L->buf_bytes));
    }
}

static void layout_free(layout *L) {
    for (int b = 0; b < L->n_bufs; b++)
        CHECK(cudaFree(L->bufs[b]));
    free(L->bufs);
    free(L->offsets);
}

/* The launches of one decode step's weight reads on buffer b: one kernel per matrix. */
static void launch_per_matrix(const device_info *d, const layout *L, int b, cudaStream_t s,
                              unsigned long long *d_sink) {
    for (int i = 0; i < L->n_mats; i++) {
        size_t n16 = round_up((size_t)L->sizes[i], 16) / 16;
        read_sum_kernel<<<grid_for(d, n16), THREADS, 0, s>>>(
            (const uint4 *)(L->bufs[b] + L->offsets[i]), n16, d_sink);
        CHECK(cudaGetLastError());
    }
}

typedef struct {
    float one_kernel_ms, graph_ms, stream_ms;
} read_result;

static void measure_reads(const device_info *d, timer *T, const layout *L, read_result *r) {
    unsigned long long *d_sink = NULL;
    CHECK(cudaMalloc((void **)&d_sink, sizeof *d_sink));
    size_t n16_all = L->buf_bytes / 16; /* (2) reads the whole buffer, padding included */

    /* (2) one kernel over the whole buffer */
    CHECK(cudaMemset(d_sink, 0, sizeof *d_sink));
    read_sum_kernel<<<grid_for(d, n16_all), THREADS, 0, T->stream>>>((const uint4 *)L->bufs[0],
                                                                     n16_all, d_sink);
    CHECK(cudaGetLastError());
    CHECK(cudaStreamSynchronize(T->stream));
    check_sum(d_sink, n16_all, "the one-kernel read");
    for (int it = 0; it < T->warmup + T->iters; it++) {
        const uint4 *p = (const uint4 *)L->bufs[it % L->n_bufs];
        CHECK(cudaEventRecord(T->t0, T->stream));
        read_sum_kernel<<<grid_for(d, n16_all), THREADS, 0, T->stream>>>(p, n16_all, d_sink);
        CHECK(cudaGetLastError());
        CHECK(cudaEventRecord(T->t1, T->stream));
        CHECK(cudaEventSynchronize(T->t1));
        if (it >= T->warmup) CHECK(cudaEventElapsedTime(&T->times[it - T->warmup], T->t0, T->t1));
    }
    r->one_kernel_ms = median(T->times, T->iters);

    /* (3) one kernel per matrix, captured once per buffer copy */
    cudaGraphExec_t *execs = (cudaGraphExec_t *)calloc((size_t)L->n_bufs, sizeof *execs);
    if (!execs) {
        fprintf(stderr, "gpu_floor: out of host memory\n");
        exit(1);
    }
    for (int b = 0; b < L->n_bufs; b++) {
        cudaGraph_t g;
        CHECK(cudaStreamBeginCapture(T->stream, cudaStreamCaptureModeThreadLocal));
        launch_per_matrix(d, L, b, T->stream, d_sink);
        CHECK(cudaStreamEndCapture(T->stream, &g));
        CHECK(cudaGraphInstantiate(&execs[b], g, 0));
        CHECK(cudaGraphDestroy(g));
    }
    size_t n16_mats = L->read_bytes / 16;
    CHECK(cudaMemset(d_sink, 0, sizeof *d_sink));
    CHECK(cudaGraphLaunch(execs[0], T->stream));
    CHECK(cudaStreamSynchronize(T->stream));
    check_sum(d_sink, n16_mats, "the per-matrix graph");
    for (int it = 0; it < T->warmup + T->iters; it++) {
        CHECK(cudaEventRecord(T->t0, T->stream));
        CHECK(cudaGraphLaunch(execs[it % L->n_bufs], T->stream));
        CHECK(cudaEventRecord(T->t1, T->stream));
        CHECK(cudaEventSynchronize(T->t1));
        if (it >= T->warmup) CHECK(cudaEventElapsedTime(&T->times[it - T->warmup], T->t0, T->t1));
    }
    r->graph_ms = median(T->times, T->iters);
    for (int b = 0; b < L->n_bufs; b++)
        CHECK(cudaGraphExecDestroy(execs[b]));
    free(execs);

    /* the same launches one by one, no graph */
    for (int it = 0; it < T->warmup + T->iters; it++) {
        CHECK(cudaEventRecord(T->t0, T->stream));
        launch_per_matrix(d, L, it % L->n_bufs, T->stream, d_sink);
        CHECK(cudaEventRecord(T->t1, T->stream));
        CHECK(cudaEventSynchronize(T->t1));
        if (it >= T->warmup) CHECK(cudaEventElapsedTime(&T->times[it - T->warmup], T->t0, T->t1));
    }
    r->stream_ms = median(T->times, T->iters);
    CHECK(cudaFree(d_sink));
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fprintf(f, "usage: gpu_floor [--shape qwen3-0.6b|llama-3.2-1b|llama-3.1-8b --dtype bf16|q4|q8 |"
               " --bytes N]\n"
               "                 [--copy-bytes N] [--iters N] [--warmup N] [--device N]\n"
               "  default: --shape llama-3.1-8b --dtype bf16 --copy-bytes 4294967296 --iters 20 "
               "--warmup 3\n");
}

static int parse_size(const char *s, long long lo, long long hi, long long *out) {
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (!end || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    const char *shape_name = "llama-3.1-8b", *dtype = "bf16";
    long long bytes = 0, copy_bytes = 4ll << 30, iters = 20, warmup = 3, dev = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gpu_floor: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (strcmp(a, "--shape") == 0)
            shape_name = v;
        else if (strcmp(a, "--dtype") == 0)
            dtype = v;
        else if (strcmp(a, "--bytes") == 0)
            bad = parse_size(v, 16, 1ll << 40, &bytes);
        else if (strcmp(a, "--copy-bytes") == 0)
            bad = parse_size(v, 16, 1ll << 40, &copy_bytes);
        else if (strcmp(a, "--iters") == 0)
            bad = parse_size(v, 1, 100000, &iters);
        else if (strcmp(a, "--warmup") == 0)
            bad = parse_size(v, 0, 100000, &warmup);
        else if (strcmp(a, "--device") == 0)
            bad = parse_size(v, 0, 1024, &dev);
        else {
            fprintf(stderr, "gpu_floor: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "gpu_floor: bad value '%s' for %s\n", v, a);
            return 2;
        }
    }
    if (strcmp(dtype, "bf16") && strcmp(dtype, "q4") && strcmp(dtype, "q8")) {
        fprintf(stderr, "gpu_floor: --dtype must be bf16, q4 or q8\n");
        return 2;
    }
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof k_shapes / sizeof k_shapes[0]; i++)
        if (strcmp(k_shapes[i].name, shape_name) == 0) sh = &k_shapes[i];
    if (!bytes && !sh) {
        fprintf(stderr, "gpu_floor: unknown --shape '%s'\n", shape_name);
        return 2;
    }

    CHECK(cudaSetDevice((int)dev));
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, (int)dev));
    device_info d;
    CHECK(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, (int)dev));
    CHECK(cudaDeviceGetAttribute(&d.l2_bytes, cudaDevAttrL2CacheSize, (int)dev));
    int per_sm = 0;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, read_sum_kernel, THREADS, 0));
    d.max_blocks = d.sms * (per_sm > 0 ? per_sm : 1);

    int64_t *sizes = (int64_t *)calloc(MAX_MATS, sizeof *sizes);
    float *times = (float *)calloc((size_t)iters, sizeof *times);
    if (!sizes || !times) {
        fprintf(stderr, "gpu_floor: out of host memory\n");
        return 1;
    }
    int n_mats;
    if (bytes) {
        sizes[0] = bytes;
        n_mats = 1;
    } else {
        n_mats = model_matrices(sh, dtype, sizes);
    }

    timer T;
    T.warmup = (int)warmup;
    T.iters = (int)iters;
    T.times = times;
    CHECK(cudaStreamCreateWithFlags(&T.stream, cudaStreamNonBlocking));
    CHECK(cudaEventCreate(&T.t0));
    CHECK(cudaEventCreate(&T.t1));

    float ms_memcpy, ms_copyk;
    measure_copy(&d, &T, (size_t)copy_bytes, &ms_memcpy, &ms_copyk);
    double cb = (double)((size_t)copy_bytes / 16 * 16);
    double gbps_memcpy = 2.0 * cb / (ms_memcpy * 1e-3) / 1e9;
    double gbps_copyk = 2.0 * cb / (ms_copyk * 1e-3) / 1e9;

    layout L;
    layout_make(&L, &d, n_mats, sizes);
    read_result r;
    measure_reads(&d, &T, &L, &r);
    layout_free(&L);

    double wb = (double)L.read_bytes;
    double gbps_one = (double)L.buf_bytes / (r.one_kernel_ms * 1e-3) / 1e9;
    double gbps_graph = wb / (r.graph_ms * 1e-3) / 1e9;
    /* the bandwidth floor of the per-matrix reads is the one-kernel rate; what the graph takes
     * beyond it, spread over its launches, is the cost of each boundary between kernels */
    double ideal_ms = wb / (gbps_one * 1e9) * 1e3;
    double gap_graph_us = (r.graph_ms - ideal_ms) * 1e3 / n_mats;
    double gap_stream_us = (r.stream_ms - ideal_ms) * 1e3 / n_mats;
    char model[96];
    if (bytes)
        snprintf(model, sizeof model, "--bytes %lld", bytes);
    else
        snprintf(model, sizeof model, "%s %s", sh->name, dtype);

    printf("device: %s, %d SMs, L2 %.1f MB, %d blocks of %d threads resident\n", prop.name, d.sms,
           d.l2_bytes / 1e6, d.max_blocks, THREADS);
    printf("median of %d runs after %d warm-up; GB/s = 1e9 bytes/s\n", T.iters, T.warmup);
    printf("%-44s %12s %10s\n", "measurement", "time", "GB/s");
    printf("%-44s %9.3f ms %10.1f\n", "copy, cudaMemcpyAsync (read + write)", ms_memcpy,
           gbps_memcpy);
    printf("%-44s %9.3f ms %10.1f\n", "copy, 16-byte-vector kernel (read + write)", ms_copyk,
           gbps_copyk);
    printf("weights: %s, %.3f GB in %d matrices%s\n", model, wb / 1e9, n_mats,
           L.n_bufs > 1 ? " (rotating over copies: smaller than 3x L2)" : "");
    printf("%-44s %9.1f us %10.1f\n", "read once, one kernel", r.one_kernel_ms * 1e3, gbps_one);
    printf("%-44s %9.1f us %10.1f\n", "read once, a kernel per matrix, CUDA graph",
           r.graph_ms * 1e3, gbps_graph);
    printf("%-44s %9.1f us %10.1f\n", "read once, a kernel per matrix, stream", r.stream_ms * 1e3,
           wb / (r.stream_ms * 1e-3) / 1e9);
    printf("launch gap per kernel: %.2f us in a graph, %.2f us on a stream\n", gap_graph_us,
           gap_stream_us);
    printf("{\"device\":\"%s\",\"sms\":%d,\"l2_bytes\":%d,\"iters\":%d,\"copy_bytes\":%.0f,"
           "\"copy_memcpy_ms\":%.4f,\"copy_memcpy_gbps\":%.1f,\"copy_kernel_ms\":%.4f,"
           "\"copy_kernel_gbps\":%.1f,\"weights\":\"%s\",\"weight_bytes\":%.0f,\"n_matrices\":%d,"
           "\"n_buffers\":%d,\"read_one_kernel_us\":%.2f,\"read_one_kernel_gbps\":%.1f,"
           "\"read_graph_us\":%.2f,\"read_graph_gbps\":%.1f,\"read_stream_us\":%.2f,"
           "\"launch_gap_graph_us\":%.3f,\"launch_gap_stream_us\":%.3f}\n",
           prop.name, d.sms, d.l2_bytes, T.iters, cb, ms_memcpy, gbps_memcpy, ms_copyk, gbps_copyk,
           model, wb, n_mats, L.n_bufs, r.one_kernel_ms * 1e3, gbps_one, r.graph_ms * 1e3,
           gbps_graph, r.stream_ms * 1e3, gap_graph_us, gap_stream_us);

    CHECK(cudaEventDestroy(T.t0));
    CHECK(cudaEventDestroy(T.t1));
    CHECK(cudaStreamDestroy(T.stream));
    free(sizes);
    free(times);
    return 0;
}
