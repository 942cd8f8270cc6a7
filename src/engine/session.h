/* A single-sequence generation session over a model: chunked prefill of a prompt, then one
 * token per decode step, each returning the next-token logits. It is what `sglc generate`, the
 * perplexity and greedy tests use; the batching scheduler (issue 5) builds multi-sequence steps
 * the same way. */
#ifndef SGLC_ENGINE_SESSION_H
#define SGLC_ENGINE_SESSION_H

#include <stdint.h>

#include "model/model.h"

typedef struct sglc_session sglc_session;

/* n_ctx: most tokens the sequence may hold; chunk: most prompt tokens per prefill step. */
int sglc_session_open(sglc_session **out, const sglc_model *m, int32_t n_ctx, int32_t chunk,
                      sglc_err *err);
void sglc_session_close(sglc_session *s);
void sglc_session_reset(sglc_session *s); /* forget the sequence, keep the buffers */
int32_t sglc_session_n_past(const sglc_session *s);

/* Appends n tokens. When all_logits is NULL, *last_logits receives the logits of the last
 * token (valid until the next call). When all_logits is non-NULL it must hold n * n_vocab
 * floats and receives the logits of every token (used by perplexity). */
int sglc_session_eval(sglc_session *s, const int32_t *ids, int32_t n, const float **last_logits,
                      float *all_logits, sglc_err *err);

#endif
