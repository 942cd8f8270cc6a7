/* Tensor-parallel weight shards (tp.h). */
#include "model/tp.h"

#include <stdlib.h>
#include <string.h>

#include "quant/ggml_types.h"
#include "quant/mlx_affine.h"

static size_t scale_bytes(uint32_t dtype) {
    return dtype == SGLC_GGML_TYPE_F32 ? 4 : 2;
}

/* bytes of one row and the elements of its smallest splittable unit */
static int row_layout(const sglc_weight *w, size_t *row_bytes, int64_t *unit, sglc_err *err) {
    if (w->type == SGLC_WTYPE_MLX_AFFINE) {
        if (!sglc_mlx_affine_valid(w->q_bits, w->q_group) || w->k % w->q_group != 0)
            return sglc_err_set(err, SGLC_ERR_FORMAT, "bad MLX affine weight %lld x %lld",
                                (long long)w->n, (long long)w->k);
        *row_bytes = (size_t)sglc_mlx_affine_row_words(w->k, w->q_bits) * 4;
        *unit = w->q_group;
        return SGLC_OK;
    }
    *row_bytes = sglc_ggml_row_bytes(w->type, w->k);
    *unit = (int64_t)sglc_ggml_block_elems(w->type);
    if (*row_bytes == 0 || *unit <= 0)
        return sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "weight type %u cannot be split",
                            (unsigned)w->type);
    return SGLC_OK;
}

int sglc_weight_shard(const sglc_weight *w, sglc_tp_split split, int rank, int n_ranks,
                      sglc_weight *out, void **owned, sglc_err *err) {
    *owned = NULL;
    if (n_ranks <= 0 || rank < 0 || rank >= n_ranks || !w->host)
        return sglc_err_set(err, SGLC_ERR_ARG, "bad shard %d of %d", rank, n_ranks);
    size_t rb = 0;
    int64_t unit = 1;
    int rc = row_layout(w, &rb, &unit, err);
    if (rc) return rc;
    *out = *w;
    out->dev = NULL;
    out->q_scales_dev = out->q_biases_dev = NULL;
    out->dev_packed = 0;
    const int mlx = w->type == SGLC_WTYPE_MLX_AFFINE;
    const int64_t groups = mlx ? w->k / w->q_group : 0;
    const size_t gs = mlx ? scale_bytes(w->q_dtype) : 0;
    /* a vector (bias, norm) splits along its elements whatever the split of its matrix */
    if (w->n == 1 || split == SGLC_TP_COLUMN) {
        int64_t dim = w->n == 1 ? w->k : w->n;
        if (dim % n_ranks != 0 || (w->n == 1 && (dim / n_ranks) % unit != 0))
            return sglc_err_set(
                err, SGLC_ERR_ARG, "a %lld x %lld weight does not split %d ways along its %s",
                (long long)w->n, (long long)w->k, n_ranks, w->n == 1 ? "elements" : "rows");
        int64_t part = dim / n_ranks;
        if (w->n == 1) {
            if (mlx) return sglc_err_set(err, SGLC_ERR_UNSUPPORTED, "MLX affine vector");
            out->k = part;
            out->host = (const char *)w->host + sglc_ggml_row_bytes(w->type, part * rank);
            out->host_bytes = sglc_ggml_row_bytes(w->type, part);
            return SGLC_OK;
        }
        out->n = part;
        out->host = (const char *)w->host + (size_t)(part * rank) * rb;
        out->host_bytes = (size_t)part * rb;
        if (mlx) {
            out->q_scales = (const char *)w->q_scales + (size_t)(part * rank * groups) * gs;
            out->q_biases = (const char *)w->q_biases + (size_t)(part * rank * groups) * gs;
        }
        return SGLC_OK;
    }
    /* row-parallel: every row keeps the rank's slice of k, which must hold whole units */
    if (w->k % n_ranks != 0 || (w->k / n_ranks) % unit != 0)
        return sglc_err_set(err, SGLC_ERR_ARG,
                            "a %lld x %lld weight does not split %d ways along its inputs in "
                            "whole blocks of %lld",
                            (long long)w->n, (long long)w->k, n_ranks, (long long)unit);
    const int64_t kp = w->k / n_ranks;
    /* bytes of the slice and where it starts within a row (blocks, or packed MLX codes) */
    const size_t sb = mlx ? (size_t)sglc_mlx_affine_row_words(kp, w->q_bits) * 4
                          : sglc_ggml_row_bytes(w->type, kp);
    const size_t so = sb * (size_t)rank;
    const int64_t gp = mlx ? kp / w->q_group : 0;
    size_t codes = sb * (size_t)w->n, sc = mlx ? (size_t)gp * gs * (size_t)w->n : 0;
    char *buf = malloc(codes + 2 * sc + 1);
    if (!buf) return sglc_err_set(err, SGLC_ERR_NOMEM, "out of memory for a weight shard");
    for (int64_t r = 0; r < w->n; r++) {
        memcpy(buf + (size_t)r * sb, (const char *)w->host + (size_t)r * rb + so, sb);
        if (mlx) {
            const size_t src = ((size_t)r * (size_t)groups + (size_t)(gp * rank)) * gs;
            memcpy(buf + codes + (size_t)r * (size_t)gp * gs, (const char *)w->q_scales + src,
                   (size_t)gp * gs);
            memcpy(buf + codes + sc + (size_t)r * (size_t)gp * gs, (const char *)w->q_biases + src,
                   (size_t)gp * gs);
        }
    }
    out->k = kp;
    out->host = buf;
    out->host_bytes = codes;
    if (mlx) {
        out->q_scales = buf + codes;
        out->q_biases = buf + codes + sc;
    }
    *owned = buf;
    return SGLC_OK;
}
