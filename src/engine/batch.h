/* The one place a step's batch description (backend.h's sglc_batch) is built: the scheduler,
 * the single-sequence session and bench_one_batch all fill it through these calls. The slot
 * table persists in the model state (one row per sequence, stride positions): a sequence adds
 * only the slots its row does not hold yet, so a step moves O(new tokens) slot entries, not
 * O(batch x context). */
#ifndef SGLC_ENGINE_BATCH_H
#define SGLC_ENGINE_BATCH_H

#include <stdint.h>

#include "backend/backend.h"

typedef struct {
    int32_t cap_tokens, cap_seqs, cap_logits, cap_writes, stride;
    int32_t *tokens, *pos, *seq, *out_slot, *token_src, *seq_slot_start, *logit_rows;
    int32_t *write_idx, *write_val;
    sglc_batch b;
    int32_t max_pos;
    int any_placeholder, all_decode;
} sglc_batch_builder;

/* Room for steps of max_tokens tokens, max_seqs sequences and max_logits logit rows over a slot
 * table of rows of stride positions. 0, or -1 when out of memory. */
int sglc_bb_init(sglc_batch_builder *bb, int32_t max_tokens, int32_t max_seqs, int32_t max_logits,
                 int32_t stride);
void sglc_bb_free(sglc_batch_builder *bb);
void sglc_bb_reset(sglc_batch_builder *bb);
/* Appends a sequence owning table row `row`: tokens[0, n) at positions from.. with
 * KV slots slots[from, from + n); slots[in_table, from + n) are written into its table row
 * (in_table: how many of its slots the row already holds, 0 for a new or rewritten row).
 * Returns the sequence's index in the step. The caller keeps within the capacities. */
int32_t sglc_bb_add_seq(sglc_batch_builder *bb, int32_t row, const int32_t *tokens,
                        const int32_t *slots, int32_t from, int32_t n, int32_t in_table);
/* Token index t (of the step) takes its id from row src of the previous sample op. */
void sglc_bb_placeholder(sglc_batch_builder *bb, int32_t t, int32_t src);
/* Asks for the logits of token t; returns the logit row. */
int32_t sglc_bb_add_logits(sglc_batch_builder *bb, int32_t t);
/* The finished description (valid until the next reset). */
const sglc_batch *sglc_bb_batch(sglc_batch_builder *bb);

#endif
