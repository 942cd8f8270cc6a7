/* The CUDA backend's public entry points (narrow: the op table itself is private to the .cu
 * files). backend.c calls these when the build has CUDA (SGLC_HAVE_CUDA). */
#ifndef SGLC_BACKEND_CUDA_BACKEND_H
#define SGLC_BACKEND_CUDA_BACKEND_H

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens the backend on GPU params->device_index (0 when params is NULL). With no GPU visible
 * it fails with one line: "--device cuda: no CUDA GPU visible (cudaGetDeviceCount: ...)". */
int sglc_backend_cuda_open(sglc_backend **out, const sglc_backend_params *p, sglc_err *err);
/* GPUs the CUDA runtime sees; 0 when none or when the driver is missing. */
int sglc_cuda_device_count(void);
/* Decode graphs captured and replayed so far by a CUDA backend (tests and logs). */
void sglc_cuda_graph_stats(sglc_backend *be, int64_t *captures, int64_t *replays);

#ifdef SGLC_HAVE_NCCL
/* NCCL communicators over n CUDA backends of one process, rank r on ranks[r]'s GPU
 * (backend.h's communicator; cuda_comm.cu). */
int sglc_cuda_comm_open(void **out, sglc_backend *const *ranks, int n, sglc_err *err);
void sglc_cuda_comm_close(void *comm);
void sglc_cuda_comm_all_reduce_sum(void *comm, float *const *bufs, int64_t n);
#endif

#ifdef __cplusplus
}
#endif

#endif
