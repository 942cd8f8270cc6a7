/* Backend registry: opens a backend by name. The CUDA backend registers here when the build has
 * it (SGLC_HAVE_CUDA, CMake -DSGLC_CUDA); Metal is planned behind the same table. */
#include <math.h>
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
