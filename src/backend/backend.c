/* Backend registry: opens a backend by name. CUDA registers itself when compiled in (later
 * issue); Metal is planned behind the same table. */
#include <string.h>

#include "backend/backend.h"

int sglc_backend_cpu_open(sglc_backend **out, const sglc_backend_params *params, int exact,
                          sglc_err *err);

int sglc_backend_open(sglc_backend **out, const char *name, const sglc_backend_params *params,
                      sglc_err *err) {
    *out = NULL;
    if (!name || strcmp(name, "cpu") == 0) return sglc_backend_cpu_open(out, params, 0, err);
    /* the CPU backend with llama.cpp's operation order, bit for bit (backend/cpu/ggml_exact.h) */
    if (strcmp(name, "cpu-ggml") == 0) return sglc_backend_cpu_open(out, params, 1, err);
    return sglc_err_set(err, SGLC_ERR_UNSUPPORTED,
                        "unknown device '%s' (this build supports: cpu, cpu-ggml)", name);
}

#ifndef SGLC_HAVE_CUDA
const char *sglc_backend_default_name(void) {
    return "cpu";
}
#endif

void sglc_backend_close(sglc_backend *be) {
    if (be) be->ops->close(be);
}
