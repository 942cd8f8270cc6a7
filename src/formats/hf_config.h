/* Hugging Face model configuration: config.json (and generation_config.json when present) of a
 * model folder, parsed and validated (ROBUSTNESS.md §27) into one flat struct. Only the decoder
 * families sglc runs are accepted (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM); any
 * other architecture, an unknown rope scaling type, or a missing, mistyped, absurd or
 * contradictory field is refused with one line "PATH/config.json: problem". Both spellings of
 * the rope fields are read: rope_theta + rope_scaling (older checkpoints) and rope_parameters
 * (transformers 5). */
#ifndef SGLC_FORMATS_HF_CONFIG_H
#define SGLC_FORMATS_HF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "base/log.h"

typedef enum {
    SGLC_HF_ARCH_LLAMA = 0, /* LlamaForCausalLM */
    SGLC_HF_ARCH_QWEN2,     /* Qwen2ForCausalLM: q/k/v bias always */
    SGLC_HF_ARCH_QWEN3,     /* Qwen3ForCausalLM: per-head q_norm/k_norm */
    SGLC_HF_ARCH_COUNT
} sglc_hf_arch;

typedef enum {
    SGLC_HF_ROPE_SCALING_NONE = 0,
    SGLC_HF_ROPE_SCALING_LLAMA3, /* Llama 3.1+: per-frequency factors, see sglc_hf_rope_freq_factors
                                  */
    SGLC_HF_ROPE_SCALING_COUNT
} sglc_hf_rope_scaling;

#define SGLC_HF_MAX_EOS 8

typedef struct {
    sglc_hf_arch arch;
    int32_t hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
        num_key_value_heads, head_dim, vocab_size, max_position_embeddings;
    float rms_norm_eps, rope_theta;
    int tie_word_embeddings;
    int attention_bias;   /* q/k/v (and, for llama, o) projections carry a bias */
    char torch_dtype[16]; /* "float32", "bfloat16", ... as written; "" when absent */
    struct {
        sglc_hf_rope_scaling type;
        float factor, low_freq_factor, high_freq_factor;
        int32_t original_max_position_embeddings;
    } rope_scaling;
    int32_t bos_token_id; /* -1 when absent */
    int32_t n_eos;
    int32_t eos_token_ids[SGLC_HF_MAX_EOS];
} sglc_hf_config;

/* Reads dir/config.json and, when present, dir/generation_config.json (its bos/eos override
 * those of config.json). */
int sglc_hf_config_load(sglc_hf_config *out, const char *dir, sglc_err *err);

/* Parses the text of a config.json; path names it in messages. */
int sglc_hf_config_parse(sglc_hf_config *out, const char *json, size_t len, const char *path,
                         sglc_err *err);

const char *sglc_hf_arch_name(sglc_hf_arch arch);

/* Llama-3 rope scaling as transformers' _compute_llama3_parameters: fills out[rot_dim / 2] with
 * the divisor of each rotary pair's frequency (1 for high frequencies, factor for low ones,
 * smoothly between), the form llama.cpp keeps in rope_freqs. For other scaling types every
 * factor is 1. */
void sglc_hf_rope_freq_factors(const sglc_hf_config *c, int32_t rot_dim, float *out);

#endif
