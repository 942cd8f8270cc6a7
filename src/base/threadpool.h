/* A fixed pool of worker threads for data-parallel kernels. sglc_threadpool_run(fn) runs
 * fn(ctx, ith, nth) on every thread (the caller is thread 0) and returns when all are done.
 * Workers spin briefly between jobs (a decode step issues hundreds of short jobs, so a
 * condition-variable wake per job would cost more than the work) and then sleep, so an idle
 * server burns no CPU. Only one thread may call run at a time (the scheduler thread). */
#ifndef SGLC_BASE_THREADPOOL_H
#define SGLC_BASE_THREADPOOL_H

typedef struct sglc_threadpool sglc_threadpool;
typedef void (*sglc_task_fn)(void *ctx, int ith, int nth);

/* n_threads <= 0 means one per online CPU. */
int sglc_threadpool_open(sglc_threadpool **out, int n_threads);
void sglc_threadpool_close(sglc_threadpool *tp);
int sglc_threadpool_size(const sglc_threadpool *tp);
void sglc_threadpool_run(sglc_threadpool *tp, sglc_task_fn fn, void *ctx);

/* Splits [0, n) into nth near-equal parts; part ith is [*lo, *hi). */
void sglc_split_range(long n, int ith, int nth, long *lo, long *hi);

#endif
