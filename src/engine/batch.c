/* Batch building (batch.h). */
#include "engine/batch.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"

int sglc_bb_init(sglc_batch_builder *bb, int32_t max_tokens, int32_t max_seqs, int32_t max_logits,
                 int32_t stride) {
    memset(bb, 0, sizeof *bb);
    bb->cap_tokens = max_tokens;
    bb->cap_seqs = max_seqs;
    bb->cap_logits = max_logits;
    bb->stride = stride;
    /* every sequence may rewrite its whole row in one step (admission after a prefix match) */
    size_t writes = (size_t)max_seqs * (size_t)stride;
    if (writes > (size_t)INT32_MAX) return -1;
    bb->cap_writes = (int32_t)writes;
    size_t T = (size_t)max_tokens;
    bb->tokens = malloc(T * sizeof(int32_t));
    bb->pos = malloc(T * sizeof(int32_t));
    bb->seq = malloc(T * sizeof(int32_t));
    bb->out_slot = malloc(T * sizeof(int32_t));
    bb->token_src = malloc(T * sizeof(int32_t));
    bb->seq_slot_start = malloc((size_t)max_seqs * sizeof(int32_t));
    bb->logit_rows = malloc((size_t)max_logits * sizeof(int32_t));
    bb->write_idx = malloc(writes * sizeof(int32_t));
    bb->write_val = malloc(writes * sizeof(int32_t));
    if (!bb->tokens || !bb->pos || !bb->seq || !bb->out_slot || !bb->token_src ||
        !bb->seq_slot_start || !bb->logit_rows || !bb->write_idx || !bb->write_val) {
        sglc_bb_free(bb);
        return -1;
    }
    sglc_bb_reset(bb);
    return 0;
}

void sglc_bb_free(sglc_batch_builder *bb) {
    free(bb->tokens), free(bb->pos), free(bb->seq), free(bb->out_slot), free(bb->token_src);
    free(bb->seq_slot_start), free(bb->logit_rows), free(bb->write_idx), free(bb->write_val);
    memset(bb, 0, sizeof *bb);
}

void sglc_bb_reset(sglc_batch_builder *bb) {
    bb->b = (sglc_batch){
        .tokens = bb->tokens,
        .pos = bb->pos,
        .seq = bb->seq,
        .out_slot = bb->out_slot,
        .seq_slot_start = bb->seq_slot_start,
        .logit_rows = bb->logit_rows,
        .slot_write_idx = bb->write_idx,
        .slot_write_val = bb->write_val,
    };
    bb->max_pos = -1;
    bb->any_placeholder = 0;
    bb->all_decode = 1;
}

int32_t sglc_bb_add_seq(sglc_batch_builder *bb, int32_t row, const int32_t *tokens,
                        const int32_t *slots, int32_t from, int32_t n, int32_t in_table) {
    sglc_batch *b = &bb->b;
    SGLC_ASSERT(b->n_seqs < bb->cap_seqs && b->n_tokens + n <= bb->cap_tokens && n > 0 &&
                from + n <= bb->stride && in_table >= 0 && in_table <= from + n);
    int32_t q = b->n_seqs++;
    int32_t base = row * bb->stride;
    bb->seq_slot_start[q] = base;
    for (int32_t p = in_table; p < from + n; p++) {
        SGLC_ASSERT(b->n_slot_writes < bb->cap_writes);
        bb->write_idx[b->n_slot_writes] = base + p;
        bb->write_val[b->n_slot_writes++] = slots[p];
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t t = b->n_tokens++;
        bb->tokens[t] = tokens[i];
        bb->token_src[t] = -1;
        bb->pos[t] = from + i;
        bb->seq[t] = q;
        bb->out_slot[t] = slots[from + i];
    }
    if (from + n - 1 > bb->max_pos) bb->max_pos = from + n - 1;
    if (n != 1) bb->all_decode = 0;
    b->n_slot_table += from + n;
    return q;
}

void sglc_bb_placeholder(sglc_batch_builder *bb, int32_t t, int32_t src) {
    bb->token_src[t] = src;
    bb->tokens[t] = 0;
    bb->any_placeholder = 1;
}

int32_t sglc_bb_add_logits(sglc_batch_builder *bb, int32_t t) {
    SGLC_ASSERT(bb->b.n_logits < bb->cap_logits);
    bb->logit_rows[bb->b.n_logits] = t;
    return bb->b.n_logits++;
}

const sglc_batch *sglc_bb_batch(sglc_batch_builder *bb) {
    sglc_batch *b = &bb->b;
    /* always present (entries -1 without placeholders), so a step's ops get the same arguments
     * whether or not it has placeholders: a captured graph replays either way */
    b->token_src = bb->token_src;
    b->n_tokens_padded = b->n_tokens;
    b->max_context = bb->max_pos + 1;
    b->is_decode = bb->all_decode && b->n_logits == b->n_tokens && b->n_tokens > 0;
    return b;
}
