/* Tensor-parallel weight shards (issue 17, the Megatron split): a rank's part of a weight
 * matrix, so that N backends each hold 1/N of a model. Column-parallel (q/k/v, gate/up, the
 * vocabulary-parallel output head): the rank computes a contiguous range of the output rows, and
 * the ranks' outputs concatenate. Row-parallel (o, down): the rank multiplies a contiguous range
 * of the input features, and the ranks' outputs add up (the all-reduce). Vectors (biases, norms
 * of a split dimension) split along their elements. Column shards of a row-major matrix are
 * views into the caller's weight; row shards are copies (each row's slice of blocks). */
#ifndef SGLC_MODEL_TP_H
#define SGLC_MODEL_TP_H

#include "backend/backend.h"
#include "base/log.h"

typedef enum {
    SGLC_TP_COLUMN = 0, /* split the output rows (w->n) */
    SGLC_TP_ROW = 1,    /* split the input features (w->k) */
} sglc_tp_split;

/* Writes rank's shard of w (of n_ranks) into out, unprepared (out->dev unset). A row shard's
 * data is a new allocation handed out through *owned (free it when out is done; NULL for a view).
 * Refused, with one line naming the weight's sizes, when the split dimension does not divide by
 * n_ranks or a row shard would cut a quantization block (ggml) or group (MLX affine). */
int sglc_weight_shard(const sglc_weight *w, sglc_tp_split split, int rank, int n_ranks,
                      sglc_weight *out, void **owned, sglc_err *err);

#endif
