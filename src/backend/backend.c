/* Backend registry: opens a backend by name. The CUDA backend registers here when the build has
 * it (SGLC_HAVE_CUDA, CMake -DSGLC_CUDA); Metal is planned behind the same table. The
 * communicator of tensor parallelism (backend.h) dispatches here on the ranks' kind: CPU ranks
 * are summed on the host below, CUDA ranks go to NCCL (cuda_comm.cu, SGLC_HAVE_NCCL). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#ifdef SGLC_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

int sglc_backend_cpu_open(sglc_backend **out, const sglc_backend_params *params, int exact,
                          sglc_err *err);

int sglc_backend_open(sglc_backend **out, const char *name, const sglc_backend_params *params,
                      sglc_err *err) {
    *out = NULL;
    if (!name || strcmp(name, "cpu") == 0) return sglc_backend_cpu_open(out, params, 0, err);
    /* the CPU backend with llama.cpp's operation order, bit for bit (backend/cpu/ggml_exact.h) */
    if (strcmp(name, "cpu-ggml") == 0) return sglc_backend_cpu_open(out, params, 1, err);
    if (strcmp(name, "cuda") == 0) {
#ifdef SGLC_HAVE_CUDA
        return sglc_backend_cuda_open(out, params, err);
#else
        return sglc_err_set(
            err, SGLC_ERR_UNSUPPORTED,
            "--device cuda: this build has no CUDA (configure with -DSGLC_CUDA=ON)");
#endif
    }
    return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                        "unknown device '%s' (this build supports: cpu, cpu-ggml%s)", name,
#ifdef SGLC_HAVE_CUDA
                        ", cuda"
#else
                        ""
#endif
    );
}

void sglc_backend_close(sglc_backend *be) {
    if (be) be->ops->close(be);
}

int sglc_backend_device_count(const char *name) {
    if (name && strcmp(name, "cuda") == 0) {
#ifdef SGLC_HAVE_CUDA
        return sglc_cuda_device_count();
#else
        return 0;
#endif
    }
    return -1;
}

const char *sglc_backend_default_name(void) {
#ifdef SGLC_HAVE_CUDA
    if (sglc_cuda_device_count() > 0) return "cuda";
#endif
    return "cpu";
}

void sglc_rope_table(int32_t pos, const sglc_attn_params *p, const float *ff, float *cs,
                     float *sn) {
    int32_t rd = p->rot_dim;
    float theta_scale = powf(p->theta, -2.0f / (float)rd);
    float theta = (float)pos;
    for (int32_t i = 0; i < rd / 2; i++) {
        float angle = ff ? theta / ff[i] : theta;
        cs[i] = cosf(angle);
        sn[i] = sinf(angle);
        theta *= theta_scale;
    }
}

struct sglc_comm {
    int n;
    int host;   /* CPU ranks: host memory, summed here */
    void *nccl; /* CUDA ranks: the NCCL communicators (cuda_comm.cu) */
};

static int is_host_backend(const sglc_backend *be) {
    return strcmp(be->ops->name, "cpu") == 0 || strcmp(be->ops->name, "cpu-ggml") == 0;
}

int sglc_comm_has_nccl(void) {
#ifdef SGLC_HAVE_NCCL
    return 1;
#else
    return 0;
#endif
}

int sglc_comm_open(sglc_comm **out, sglc_backend *const *ranks, int n, sglc_err *err) {
    *out = NULL;
    if (n < 1 || !ranks) return sglc_err_set(err, SGLC_ERR_ARG, "a communicator of %d ranks", n);
    for (int r = 1; r < n; r++)
        if (strcmp(ranks[r]->ops->name, ranks[0]->ops->name) != 0)
            return sglc_err_set(err, SGLC_ERR_ARG, "tensor-parallel ranks on %s and %s",
                                ranks[0]->ops->name, ranks[r]->ops->name);
    sglc_comm *c = calloc(1, sizeof *c);
    if (!c) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
    c->n = n;
    if (is_host_backend(ranks[0])) {
        c->host = 1;
        *out = c;
        return SGLC_OK;
    }
#ifdef SGLC_HAVE_NCCL
    if (strcmp(ranks[0]->ops->name, "cuda") == 0) {
        int rc = sglc_cuda_comm_open(&c->nccl, ranks, n, err);
        if (rc) {
            free(c);
            return rc;
        }
        *out = c;
        return SGLC_OK;
    }
#endif
    free(c);
    return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                        "--tp-size %d on %s: this build has no communicator for it%s", n,
                        ranks[0]->ops->name,
                        strcmp(ranks[0]->ops->name, "cuda") == 0
                            ? " (NCCL not found at configure time; -DSGLC_NCCL=ON to require it)"
                            : "");
}

void sglc_comm_close(sglc_comm *c) {
    if (!c) return;
#ifdef SGLC_HAVE_NCCL
    if (c->nccl) sglc_cuda_comm_close(c->nccl);
#endif
    free(c);
}

int sglc_comm_size(const sglc_comm *c) {
    return c->n;
}

void sglc_comm_all_reduce_sum(sglc_comm *c, float *const *bufs, int64_t n) {
    if (c->n == 1 || n <= 0) return;
    if (c->host) {
        /* CPU ops run to completion when called, so every partial is there; the fixed rank
         * order makes the sum the same on every run and every rank */
        for (int64_t i = 0; i < n; i++) {
            float s = bufs[0][i];
            for (int r = 1; r < c->n; r++)
                s += bufs[r][i];
            for (int r = 0; r < c->n; r++)
                bufs[r][i] = s;
        }
        return;
    }
#ifdef SGLC_HAVE_NCCL
    sglc_cuda_comm_all_reduce_sum(c->nccl, bufs, n);
#endif
}
