/* Latency histograms for /metrics, with SGLang's default bucket bounds
 * (python/sglang/srt/metrics/collector.py, TokenizerMetricsCollector) so dashboards built for
 * SGLang read sglc unchanged. The scheduler thread observes under the stats lock (smu); readers
 * take a cumulative snapshot under the same lock, so _count, _sum and the buckets agree. */
#include <string.h>

#include "base/log.h"
#include "engine/engine_impl.h"

static const double k_ttft_bounds[] = {0.1, 0.2, 0.4, 0.6, 0.8, 1,  2,   4,   6,
                                       8,   10,  20,  40,  60,  80, 100, 200, 400};
static const double k_itl_bounds[] = {0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025,
                                      0.030, 0.035, 0.040, 0.060, 0.080, 0.100, 0.200, 0.400,
                                      0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000};
static const double k_e2e_bounds[] = {0.1, 0.2, 0.4, 0.6, 0.8, 1,   2,   4,   6,    8,    10,
                                      20,  40,  60,  80,  100, 200, 400, 600, 1200, 1800, 2400};

/* covers the range of older SGLang's time_per_output_token buckets (5 ms .. 2.5 s) */
static const double k_tpot_bounds[] = {0.002, 0.005, 0.010, 0.015, 0.020, 0.025, 0.030,
                                       0.040, 0.050, 0.075, 0.100, 0.150, 0.200, 0.300,
                                       0.400, 0.500, 0.750, 1.000, 2.500, 5.000};

static const struct {
    const double *bounds;
    int32_t n;
} k_hist_bounds[SGLC_HIST_COUNT] = {
    [SGLC_HIST_TTFT] = {k_ttft_bounds, (int32_t)(sizeof k_ttft_bounds / sizeof(double))},
    [SGLC_HIST_INTER_TOKEN] = {k_itl_bounds, (int32_t)(sizeof k_itl_bounds / sizeof(double))},
    [SGLC_HIST_E2E] = {k_e2e_bounds, (int32_t)(sizeof k_e2e_bounds / sizeof(double))},
    [SGLC_HIST_TPOT] = {k_tpot_bounds, (int32_t)(sizeof k_tpot_bounds / sizeof(double))},
};

_Static_assert(sizeof k_ttft_bounds / sizeof(double) <= SGLC_HIST_MAX_BOUNDS, "ttft buckets");
_Static_assert(sizeof k_itl_bounds / sizeof(double) <= SGLC_HIST_MAX_BOUNDS, "itl buckets");
_Static_assert(sizeof k_e2e_bounds / sizeof(double) <= SGLC_HIST_MAX_BOUNDS, "e2e buckets");
_Static_assert(sizeof k_tpot_bounds / sizeof(double) <= SGLC_HIST_MAX_BOUNDS, "tpot buckets");

void sglc_engine_observe_locked(sglc_engine *e, sglc_hist_kind kind, double v, uint64_t n) {
    SGLC_ASSERT(kind >= 0 && kind < SGLC_HIST_COUNT);
    if (n == 0) return;
    if (!(v >= 0.0)) v = 0.0; /* NaN or a clock step backwards */
    sglc_hist_acc *h = &e->hist[kind];
    int32_t b = 0, nb = k_hist_bounds[kind].n;
    while (b < nb && v > k_hist_bounds[kind].bounds[b])
        b++;
    h->counts[b] += n;
    h->count += n;
    h->sum += v * (double)n;
}

void sglc_engine_get_histogram(sglc_engine *e, sglc_hist_kind kind, sglc_histogram *out) {
    memset(out, 0, sizeof *out);
    if (kind < 0 || kind >= SGLC_HIST_COUNT) return;
    int32_t nb = k_hist_bounds[kind].n;
    out->n_bounds = nb;
    memcpy(out->bounds, k_hist_bounds[kind].bounds, (size_t)nb * sizeof(double));
    pthread_mutex_lock(&e->smu);
    const sglc_hist_acc *h = &e->hist[kind];
    uint64_t acc = 0;
    for (int32_t b = 0; b <= nb; b++) {
        acc += h->counts[b];
        out->cumulative[b] = acc;
    }
    out->count = h->count;
    out->sum = h->sum;
    pthread_mutex_unlock(&e->smu);
}
