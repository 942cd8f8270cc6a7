/* Thread pool: every run calls fn exactly once per thread index with the pool's size, runs
 * see each other's writes in order (run N+1 starts after run N finished everywhere), pools
 * survive idle periods long enough for workers to fall asleep, and sglc_split_range tiles
 * [0, n) exactly. */
#include <stdatomic.h>
#include <time.h>

#include "base/threadpool.h"
#include "test_util.h"

#define MAX_THREADS 8

typedef struct {
    atomic_int calls[MAX_THREADS];
    atomic_int bad_nth;
    int nth_expected;
    long *data; /* each run adds ith-partition values */
    long n;
    int run;
} job;

static void job_fn(void *vctx, int ith, int nth) {
    job *j = vctx;
    if (nth != j->nth_expected || ith < 0 || ith >= nth) {
        atomic_fetch_add(&j->bad_nth, 1);
        return;
    }
    atomic_fetch_add(&j->calls[ith], 1);
    long lo, hi;
    sglc_split_range(j->n, ith, nth, &lo, &hi);
    /* Each element must have seen exactly the previous runs' increments. */
    for (long i = lo; i < hi; i++)
        j->data[i] += j->run + 1;
}

static void test_pool(int n_threads, int runs, int sleep_every) {
    sglc_threadpool *tp = NULL;
    CHECK(sglc_threadpool_open(&tp, n_threads) == 0);
    if (!tp) return;
    CHECK(sglc_threadpool_size(tp) == n_threads);
    job j = {0};
    j.nth_expected = n_threads;
    j.n = 1001;
    j.data = calloc((size_t)j.n, sizeof(long));
    long expect = 0;
    for (int r = 0; r < runs; r++) {
        for (int t = 0; t < MAX_THREADS; t++)
            atomic_store(&j.calls[t], 0);
        j.run = r;
        sglc_threadpool_run(tp, job_fn, &j);
        expect += r + 1;
        for (int t = 0; t < n_threads; t++)
            CHECKF(atomic_load(&j.calls[t]) == 1, "run %d thread %d called %d times", r, t,
                   atomic_load(&j.calls[t]));
        if (sleep_every && r % sleep_every == sleep_every - 1) {
            struct timespec ts = {0, 5 * 1000 * 1000}; /* longer than the spin phase */
            nanosleep(&ts, NULL);
        }
    }
    CHECK(atomic_load(&j.bad_nth) == 0);
    int bad = 0;
    for (long i = 0; i < j.n; i++)
        bad += j.data[i] != expect;
    CHECKF(bad == 0, "%d elements missed updates (threads %d)", bad, n_threads);
    free(j.data);
    sglc_threadpool_close(tp);
}

static void test_split_range(void) {
    const long ns[] = {0, 1, 2, 7, 16, 33, 1000, 1001, 49152};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (int nth = 1; nth <= 9; nth++) {
            long prev = 0, min_len = ns[a], max_len = 0;
            for (int ith = 0; ith < nth; ith++) {
                long lo, hi;
                sglc_split_range(ns[a], ith, nth, &lo, &hi);
                CHECKF(lo == prev && hi >= lo, "n=%ld nth=%d ith=%d [%ld,%ld)", ns[a], nth, ith, lo,
                       hi);
                prev = hi;
                if (hi - lo < min_len) min_len = hi - lo;
                if (hi - lo > max_len) max_len = hi - lo;
            }
            CHECKF(prev == ns[a], "n=%ld nth=%d ends at %ld", ns[a], nth, prev);
            CHECKF(max_len - min_len <= 1, "n=%ld nth=%d unbalanced", ns[a], nth);
        }
}

static void timing(int n_threads) {
    sglc_threadpool *tp = NULL;
    if (sglc_threadpool_open(&tp, n_threads) != 0) return;
    job j = {0};
    j.nth_expected = n_threads;
    j.n = 0;
    const int runs = 5000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < runs; r++)
        sglc_threadpool_run(tp, job_fn, &j);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us =
        ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / runs;
    fprintf(stderr, "threadpool %d threads: %.2f us per empty run\n", n_threads, us);
    sglc_threadpool_close(tp);
}

int main(void) {
    test_split_range();
    test_pool(1, 100, 0);
    test_pool(2, 5000, 0);
    test_pool(3, 2000, 0);
    test_pool(4, 500, 0); /* more threads than cores here */
    test_pool(2, 40, 4);
    test_pool(3, 40, 3);
    /* open/close with no run, and close(NULL) */
    sglc_threadpool *tp = NULL;
    CHECK(sglc_threadpool_open(&tp, 3) == 0);
    sglc_threadpool_close(tp);
    sglc_threadpool_close(NULL);
    CHECK(sglc_threadpool_open(&tp, 0) == 0 && sglc_threadpool_size(tp) >= 1);
    sglc_threadpool_close(tp);
    timing(2);
    TEST_MAIN_END();
}
