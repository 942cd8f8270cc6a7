/* Thread pool for data-parallel kernels.
 *
 * Threading model: a job is split into n_threads shares (fn(ctx, share, n_threads)). The caller
 * publishes (fn, ctx) and a new job word (generation << 32 | next share) with a seq_cst store;
 * the caller and every worker then claim shares by compare-and-swap on that word until none are
 * left, and the caller waits until all shares are done. Shares are claimed, not assigned: when
 * the machine is oversubscribed and a worker is not running, the caller (or another worker) does
 * that worker's share instead of waiting a scheduler time slice for it, which is what made a
 * decode step hundreds of times slower on a loaded 2-core box with statically assigned shares.
 * A share index runs on one thread at a time, so per-share scratch stays exclusive. A CAS that
 * succeeds on (g, k) proves job g is unfinished, so fn/ctx read after it belong to job g.
 * A decode step issues hundreds of jobs of a few microseconds each, so idle workers spin first
 * (_mm_pause, then sched_yield) and only after SPIN_NS without work sleep on a condition
 * variable. The caller takes the mutex to wake sleepers only when the sleeper count says someone
 * sleeps; both sides use seq_cst on the job word / sleeper pair, so either the worker sees the
 * new generation before sleeping or the caller sees the sleeper and broadcasts under the mutex
 * the worker holds until it waits. */
#include "base/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* How long an idle worker keeps spinning before it sleeps. */
#define SPIN_NS 2000000LL
/* Pause iterations before a spinning thread starts yielding the core. */
#define PAUSE_ITERS 4096

typedef struct {
    sglc_threadpool *tp;
    int ith;
} worker_arg;

struct sglc_threadpool {
    int n_threads;
    pthread_t *threads;             /* n_threads - 1 workers */
    worker_arg *args;               /* n_threads - 1 */
    sglc_task_fn fn;                /* current job; written before generation is bumped */
    void *ctx;                      /* borrowed */
    _Alignas(64) atomic_ullong job; /* generation << 32 | next unclaimed share */
    unsigned generation;            /* the caller's copy of the current generation */
    _Alignas(64) atomic_int n_done;
    _Alignas(64) atomic_int n_sleeping;
    atomic_int stop;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
};

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits until the generation differs from seen; returns the new generation. */
static unsigned job_generation(sglc_threadpool *tp, memory_order mo) {
    return (unsigned)(atomic_load_explicit(&tp->job, mo) >> 32);
}

static unsigned worker_wait(sglc_threadpool *tp, unsigned seen) {
    long long t0 = 0;
    for (unsigned it = 0;; it++) {
        unsigned g = job_generation(tp, memory_order_acquire);
        if (g != seen) return g;
        if (it < PAUSE_ITERS) {
            CPU_RELAX();
            continue;
        }
        if (t0 == 0) t0 = now_ns();
        if ((it & 63) == 0 && now_ns() - t0 > SPIN_NS) break;
        sched_yield();
    }
    pthread_mutex_lock(&tp->mutex);
    atomic_fetch_add(&tp->n_sleeping, 1);
    unsigned g;
    while ((g = job_generation(tp, memory_order_seq_cst)) == seen)
        pthread_cond_wait(&tp->cond, &tp->mutex);
    atomic_fetch_sub(&tp->n_sleeping, 1);
    pthread_mutex_unlock(&tp->mutex);
    return g;
}

/* Claims and runs shares of job gen until none is left (or the job is no longer current). */
static void run_shares(sglc_threadpool *tp, unsigned gen) {
    const unsigned long long n = (unsigned long long)tp->n_threads;
    unsigned long long v = atomic_load_explicit(&tp->job, memory_order_acquire);
    for (;;) {
        if ((unsigned)(v >> 32) != gen || (v & 0xffffffffULL) >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&tp->job, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        tp->fn(tp->ctx, (int)(v & 0xffffffffULL), tp->n_threads);
        atomic_fetch_add_explicit(&tp->n_done, 1, memory_order_release);
        v = atomic_load_explicit(&tp->job, memory_order_acquire);
    }
}

static void *worker_main(void *p) {
    worker_arg *a = p;
    sglc_threadpool *tp = a->tp;
    unsigned seen = 0;
    for (;;) {
        seen = worker_wait(tp, seen);
        if (atomic_load_explicit(&tp->stop, memory_order_acquire)) break;
        run_shares(tp, seen);
    }
    return NULL;
}

int sglc_threadpool_open(sglc_threadpool **out, int n_threads) {
    *out = NULL;
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)(n < 1024 ? n : 1024) : 1;
    }
    sglc_threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return SGLC_ERR_NOMEM;
    tp->n_threads = n_threads;
    atomic_init(&tp->job, 0);
    atomic_init(&tp->n_done, 0);
    atomic_init(&tp->n_sleeping, 0);
    atomic_init(&tp->stop, 0);
    pthread_mutex_init(&tp->mutex, NULL);
    pthread_cond_init(&tp->cond, NULL);
    int nw = n_threads - 1;
    if (nw > 0) {
        tp->threads = calloc((size_t)nw, sizeof *tp->threads);
        tp->args = calloc((size_t)nw, sizeof *tp->args);
        if (!tp->threads || !tp->args) {
            tp->n_threads = 1;
            sglc_threadpool_close(tp);
            return SGLC_ERR_NOMEM;
        }
    }
    for (int i = 0; i < nw; i++) {
        tp->args[i].tp = tp;
        tp->args[i].ith = i + 1;
        if (pthread_create(&tp->threads[i], NULL, worker_main, &tp->args[i]) != 0) {
            /* Only the first i workers exist: close them and report. */
            tp->n_threads = i + 1;
            sglc_threadpool_close(tp);
            return SGLC_ERR_NOMEM;
        }
    }
    *out = tp;
    return SGLC_OK;
}

void sglc_threadpool_close(sglc_threadpool *tp) {
    if (!tp) return;
    if (tp->n_threads > 1) {
        atomic_store(&tp->stop, 1);
        pthread_mutex_lock(&tp->mutex);
        /* a new generation with no share left to claim */
        atomic_store(&tp->job, ((unsigned long long)(tp->generation + 1) << 32) |
                                   (unsigned long long)tp->n_threads);
        pthread_cond_broadcast(&tp->cond);
        pthread_mutex_unlock(&tp->mutex);
        for (int i = 0; i < tp->n_threads - 1; i++)
            pthread_join(tp->threads[i], NULL);
    }
    pthread_mutex_destroy(&tp->mutex);
    pthread_cond_destroy(&tp->cond);
    free(tp->threads);
    free(tp->args);
    free(tp);
}

int sglc_threadpool_size(const sglc_threadpool *tp) {
    return tp ? tp->n_threads : 1;
}

void sglc_threadpool_run(sglc_threadpool *tp, sglc_task_fn fn, void *ctx) {
    if (!tp || tp->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store_explicit(&tp->n_done, 0, memory_order_relaxed);
    unsigned gen = ++tp->generation;
    /* seq_cst: pairs with the sleeper count below */
    atomic_store(&tp->job, (unsigned long long)gen << 32);
    if (atomic_load(&tp->n_sleeping) > 0) {
        pthread_mutex_lock(&tp->mutex);
        pthread_cond_broadcast(&tp->cond);
        pthread_mutex_unlock(&tp->mutex);
    }
    run_shares(tp, gen);
    for (unsigned it = 0; atomic_load_explicit(&tp->n_done, memory_order_acquire) != tp->n_threads;
         it++) {
        if (it < PAUSE_ITERS)
            CPU_RELAX();
        else
            sched_yield();
    }
}

void sglc_split_range(long n, int ith, int nth, long *lo, long *hi) {
    SGLC_ASSERT(nth > 0 && ith >= 0 && ith < nth && n >= 0);
    long q = n / nth, r = n % nth;
    *lo = ith * q + (ith < r ? ith : r);
    *hi = *lo + q + (ith < r ? 1 : 0);
}
