/* On-the-fly MLX affine quantization of a loaded model (--quantization mlx_q4|mlx_q8): every
 * F32/F16/BF16 matrix (linear layers, embeddings, lm_head) is quantized, one tensor at a time
 * with its rows split over a thread pool, into model-owned buffers (codes, and scales/biases in
 * the tensor's own dtype, as mlx_lm.utils.quantize_model keeps them); the backend then computes
 * with SGLC_WTYPE_MLX_AFFINE weights. A backend with the quantize_affine op (CUDA) does the
 * same on the device instead: the float matrix goes up, only the codes stay there (prepared:
 * sglc_model_prepare skips them), and no host copy of the codes is made. The float source stays
 * in the read-only file mapping and its pages are dropped once quantized, so no second full
 * copy of the model is ever resident. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/threadpool.h"
#include "model/model.h"
#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"

typedef struct {
    const sglc_weight *src;
    uint32_t *wq;
    void *scales, *biases;
    int bits, group;
    size_t es;
} quant_ctx;

static void quant_task(void *vctx, int ith, int nth) {
    quant_ctx *c = vctx;
    long lo, hi;
    sglc_split_range((long)c->src->n, ith, nth, &lo, &hi);
    if (hi <= lo) return;
    const int64_t k = c->src->k, words = sglc_mlx_affine_row_words(k, c->bits), ng = k / c->group;
    sglc_mlx_affine_quantize((const char *)c->src->host + (size_t)lo * (size_t)k * c->es,
                             c->src->type, hi - lo, k, c->bits, c->group, c->wq + lo * words,
                             (char *)c->scales + (size_t)(lo * ng) * c->es,
                             (char *)c->biases + (size_t)(lo * ng) * c->es);
}

static int quantizable(const sglc_weight *w, int group) {
    return (w->type == SGLC_GGML_TYPE_F32 || w->type == SGLC_GGML_TYPE_F16 ||
            w->type == SGLC_GGML_TYPE_BF16) &&
           w->host && w->n > 1 && w->k % group == 0;
}

/* The backend's quantize_affine: w becomes a prepared MLX affine weight in backend memory. */
static int quantize_one_on_device(sglc_model *m, sglc_weight *w, int bits, int group, size_t es,
                                  sglc_err *err) {
    sglc_weight q;
    int rc = m->be->ops->quantize_affine(m->be, w, bits, group, &q, err);
    if (rc) return rc;
    /* the op has read the source: drop its pages when they came from the file mapping */
    if (sglc_model_host_is_mapped(m, w->host))
        sglc_drop_mapped_pages(w->host, (size_t)w->n * (size_t)w->k * es);
    /* quantizing a model already on its backend: the float copy's device memory goes back */
    if (m->prepared && m->be->ops->release_weight) m->be->ops->release_weight(m->be, w);
    *w = q;
    return SGLC_OK;
}

static int quantize_one(sglc_model *m, sglc_weight *w, int bits, int group, sglc_threadpool *tp,
                        size_t *bytes_after, sglc_err *err) {
    const size_t es = w->type == SGLC_GGML_TYPE_F32 ? 4 : 2;
    const int64_t words = sglc_mlx_affine_row_words(w->k, bits), ng = w->k / group;
    size_t qb = (size_t)w->n * (size_t)words * 4, sb = (size_t)w->n * (size_t)ng * es;
    if (m->be->ops->quantize_affine) {
        int rc = quantize_one_on_device(m, w, bits, group, es, err);
        if (rc == SGLC_OK) *bytes_after += qb + 2 * sb;
        return rc;
    }
    void *wq = NULL, *sc = NULL, *bi = NULL;
    if (posix_memalign(&wq, 64, qb) || posix_memalign(&sc, 64, sb) || posix_memalign(&bi, 64, sb)) {
        free(wq);
        free(sc);
        free(bi);
        return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory quantizing the model");
    }
    m->host_owned[m->n_host_owned++] = wq;
    m->host_owned[m->n_host_owned++] = sc;
    m->host_owned[m->n_host_owned++] = bi;
    quant_ctx c = {w, wq, sc, bi, bits, group, es};
    sglc_threadpool_run(tp, quant_task, &c);
    /* drop the source pages only when they came from the file mapping */
    if (sglc_model_host_is_mapped(m, w->host))
        sglc_drop_mapped_pages(w->host, (size_t)w->n * (size_t)w->k * es);
    sglc_weight q = *w;
    q.type = SGLC_WTYPE_MLX_AFFINE;
    q.host = wq;
    q.dev = NULL;
    q.q_bits = bits;
    q.q_group = group;
    q.q_dtype = w->type;
    q.q_scales = sc;
    q.q_biases = bi;
    if (m->prepared) {
        /* quantizing a model already on its backend: the float copy's device memory goes
         * back, the codes are prepared (sglc_model_load quantizes before preparing instead) */
        int rc = m->be->ops->prepare_weight(m->be, &q, err);
        if (rc) return rc;
        if (m->be->ops->release_weight) m->be->ops->release_weight(m->be, w);
    }
    *w = q;
    *bytes_after += qb + 2 * sb;
    return SGLC_OK;
}

int sglc_model_is_quantized(const sglc_model *m) {
    if (m->tok_embd.type == SGLC_WTYPE_MLX_AFFINE) return 1;
    for (int32_t l = 0; l < m->cfg.n_layer; l++)
        if (m->layers[l].wq.type == SGLC_WTYPE_MLX_AFFINE ||
            m->layers[l].w_down.type == SGLC_WTYPE_MLX_AFFINE ||
            !(m->layers[l].wq.type == SGLC_GGML_TYPE_F32 ||
              m->layers[l].wq.type == SGLC_GGML_TYPE_F16 ||
              m->layers[l].wq.type == SGLC_GGML_TYPE_BF16))
            return 1;
    return 0;
}

int sglc_model_quantize_mlx(sglc_model *m, int bits, int group_size, int n_threads,
                            sglc_model_quant_stats *stats, sglc_err *err) {
    memset(stats, 0, sizeof *stats);
    if (!sglc_mlx_affine_valid(bits, group_size))
        return sglc_err_set(err, SGLC_ERR_ARG, "quantization bits=%d group_size=%d not supported",
                            bits, group_size);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stats->bytes_before = m->weight_bytes;
    if (sglc_model_is_quantized(m)) {
        stats->bytes_after = m->weight_bytes;
        return SGLC_OK;
    }
    const int on_device = m->be->ops->quantize_affine != NULL;
    sglc_threadpool *tp = NULL;
    int rc = SGLC_OK;
    if (!on_device) {
        /* every matrix: 7 per layer, embeddings, lm_head; 3 buffers each */
        size_t max_new = ((size_t)m->cfg.n_layer * 7 + 2) * 3;
        void **a = realloc(m->host_owned, (m->n_host_owned + max_new) * sizeof *a);
        if (!a) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory");
        m->host_owned = a;
        long nproc = sysconf(_SC_NPROCESSORS_ONLN);
        rc = sglc_threadpool_open(&tp, n_threads > 0 ? n_threads : (int)(nproc > 0 ? nproc : 1));
        if (rc) return sglc_err_set(err, SGLC_ERR_NOMEM, "cannot start quantization threads");
    }
    size_t before = 0, after = 0;
    /* one tensor when tied (the same host data, and the same device data once on a backend) */
    int tied = m->output.host == m->tok_embd.host && m->output.dev == m->tok_embd.dev;
    sglc_weight *list[2 + 7];
    for (int32_t l = -1; l < m->cfg.n_layer && rc == 0; l++) {
        sglc_progress("Quantizing", l + 1, m->cfg.n_layer + 1);
        int n = 0;
        if (l < 0) {
            list[n++] = &m->tok_embd;
            if (!tied) list[n++] = &m->output;
        } else {
            sglc_layer_weights *L = &m->layers[l];
            sglc_weight *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            memcpy(list, ws, sizeof ws);
            n = 7;
        }
        for (int i = 0; i < n && rc == 0; i++) {
            sglc_weight *w = list[i];
            if (!quantizable(w, group_size)) continue;
            before += (size_t)w->n * (size_t)w->k * (w->type == SGLC_GGML_TYPE_F32 ? 4 : 2);
            rc = quantize_one(m, w, bits, group_size, tp, &after, err);
            stats->n_quantized++;
        }
    }
    if (rc == 0 && tied) m->output = m->tok_embd;
    if (rc == 0) sglc_progress("Quantizing", m->cfg.n_layer + 1, m->cfg.n_layer + 1);
    sglc_threadpool_close(tp);
    /* the device may still be quantizing: the time counts until it is done, and the backend's
     * staging goes back (backend.h) */
    if (on_device) m->be->ops->sync(m->be);
    if (rc) return rc;
    m->weight_bytes = m->weight_bytes - before + after;
    stats->bytes_after = m->weight_bytes;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    stats->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    return SGLC_OK;
}

int sglc_quant_preset_bits(const char *preset) {
    if (!preset) return 0;
    if (strcmp(preset, "mlx_q4") == 0) return 4;
    if (strcmp(preset, "mlx_q8") == 0) return 8;
    return -1;
}

void sglc_model_say_quant_done(const sglc_model_quant_stats *qs, void (*say)(const char *line)) {
    char line[256];
    snprintf(line, sizeof line,
             "Quantization complete in %.2fs \xe2\x80\x94 weight memory: %.2f GB -> %.2f GB "
             "(%.1f%% reduction)",
             qs->seconds, (double)qs->bytes_before / 1e9, (double)qs->bytes_after / 1e9,
             qs->bytes_before ? 100.0 * (1.0 - (double)qs->bytes_after / (double)qs->bytes_before)
                              : 0.0);
    say(line);
}

int sglc_model_apply_quant_preset_stats(sglc_model *m, const char *preset, const char *model_path,
                                        int n_threads, void (*say)(const char *line),
                                        sglc_model_quant_stats *stats, sglc_err *err) {
    if (stats) memset(stats, 0, sizeof *stats);
    int bits = sglc_quant_preset_bits(preset);
    if (bits == 0) return SGLC_OK;
    if (bits < 0)
        return sglc_err_set(err, SGLC_ERR_ARG,
                            "--quantization: unknown method '%s' (mlx_q4, mlx_q8)", preset);
    char line[256];
    if (sglc_model_is_quantized(m)) {
        snprintf(line, sizeof line, "--quantization %s ignored: %s is already quantized", preset,
                 model_path);
        say(line);
        return SGLC_OK;
    }
    snprintf(line, sizeof line, "Quantizing model on-the-fly: bits=%d group_size=64 (preset=%s)",
             bits, preset);
    say(line);
    sglc_model_quant_stats qs;
    int rc = sglc_model_quantize_mlx(m, bits, 64, n_threads, &qs, err);
    if (rc) return rc;
    if (stats)
        *stats = qs; /* the caller says the result (tensor parallel: summed over the ranks) */
    else
        sglc_model_say_quant_done(&qs, say);
    return SGLC_OK;
}

int sglc_model_apply_quant_preset(sglc_model *m, const char *preset, const char *model_path,
                                  int n_threads, void (*say)(const char *line), sglc_err *err) {
    return sglc_model_apply_quant_preset_stats(m, preset, model_path, n_threads, say, NULL, err);
}
