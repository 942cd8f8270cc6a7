/* NCCL communicators for tensor parallelism: backend.h's sglc_comm over CUDA ranks, one GPU
 * per rank, all in this process (ncclCommInitAll), driven from one host thread. The all-reduce
 * is queued on each rank's own stream inside one NCCL group, so it orders after the rank's ops
 * and before the ones that follow, like any other op; the host never waits for it.
 * Not yet: capturing these calls in the decode graphs (tensor-parallel runs open their CUDA
 * backends with graphs off, and an all-reduce outside eager mode is a broken invariant), and
 * the measurement on several GPUs (issue 17). Built only with SGLC_HAVE_NCCL (CMake
 * SGLC_NCCL). */
#ifdef SGLC_HAVE_NCCL

#include <nccl.h>
#include <stdlib.h>

#include "backend/cuda/cuda_impl.h"

extern "C" {
#include "backend/cuda/cuda_backend.h"
#include "base/log.h"
}

#define CUDA_COMM_MAX 8

typedef struct {
    int n;
    ncclComm_t comm[CUDA_COMM_MAX];
    cuda_impl *im[CUDA_COMM_MAX]; /* borrowed: the ranks' backends */
} cuda_comm;

static int nccl_failed(cuda_impl *im, ncclResult_t r, const char *what) {
    if (r == ncclSuccess) return 0;
    sglc_log(SGLC_LOG_ERROR, "cuda: %s failed (NCCL: %s)", what, ncclGetErrorString(r));
    if (im) im->failed = 1;
    return -1;
}

extern "C" int sglc_cuda_comm_open(void **out, sglc_backend *const *ranks, int n, sglc_err *err) {
    *out = NULL;
    if (n < 1 || n > CUDA_COMM_MAX)
        return sglc_err_set(err, SGLC_ERR_ARG, "NCCL: %d ranks (1 to %d)", n, CUDA_COMM_MAX);
    cuda_comm *c = (cuda_comm *)calloc(1, sizeof *c);
    if (!c) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    int devs[CUDA_COMM_MAX];
    for (int r = 0; r < n; r++) {
        c->im[r] = cuda_impl_of(ranks[r]);
        devs[r] = c->im[r]->device;
    }
    /* NVLink multicast (NVLS) stays off on the machines sglc runs on: NCCL must not try it */
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    ncclResult_t rc = ncclCommInitAll(c->comm, n, devs);
    if (rc != ncclSuccess) {
        free(c);
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "--tp-size %d: ncclCommInitAll: %s", n,
                            ncclGetErrorString(rc));
    }
    c->n = n;
    *out = c;
    return SGLC_OK;
}

extern "C" void sglc_cuda_comm_close(void *comm) {
    cuda_comm *c = (cuda_comm *)comm;
    if (!c) return;
    for (int r = 0; r < c->n; r++) {
        (void)cudaSetDevice(c->im[r]->device);
        (void)cudaStreamSynchronize(c->im[r]->stream);
        nccl_failed(c->im[r], ncclCommDestroy(c->comm[r]), "ncclCommDestroy");
    }
    free(c);
}

extern "C" void sglc_cuda_comm_all_reduce_sum(void *comm, float *const *bufs, int64_t n) {
    cuda_comm *c = (cuda_comm *)comm;
    for (int r = 0; r < c->n; r++)
        SGLC_ASSERT(c->im[r]->mode == CUDA_MODE_EAGER);
    if (nccl_failed(c->im[0], ncclGroupStart(), "ncclGroupStart")) return;
    for (int r = 0; r < c->n; r++)
        nccl_failed(c->im[r],
                    ncclAllReduce(bufs[r], bufs[r], (size_t)n, ncclFloat, ncclSum, c->comm[r],
                                  c->im[r]->stream),
                    "ncclAllReduce");
    nccl_failed(c->im[0], ncclGroupEnd(), "ncclGroupEnd");
}

#endif
