/* Validation of request fields shared by the native and the OpenAI API: optional numbers,
 * integers and booleans with ranges, and the sampling parameters (under either API's names),
 * stop strings and ids, and logit bias, gathered into sglc_request_params. Errors name the field
 * for a 400 answer. It calls nothing of the engine; it reads the vocabulary size of the server. */
#include "server/server_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each returns 1 when present and valid, 0 when absent (or null), -1 with err naming the field. */
static int opt_number(const cJSON *o, const char *key, double lo, double hi, double *out, char *err,
                      size_t el) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        snprintf(err, el, "'%s' must be a finite number", key);
        return -1;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        snprintf(err, el, "'%s' = %g is out of range [%g, %g]", key, v->valuedouble, lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 1;
}

int sglc_srv_opt_int(const cJSON *o, const char *key, double lo, double hi, int64_t *out, char *err,
                     size_t el) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        floor(v->valuedouble) != v->valuedouble) {
        snprintf(err, el, "'%s' must be an integer", key);
        return -1;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        snprintf(err, el, "'%s' = %.0f is out of range [%.0f, %.0f]", key, v->valuedouble, lo, hi);
        return -1;
    }
    *out = (int64_t)v->valuedouble;
    return 1;
}

int sglc_srv_opt_bool(const cJSON *o, const char *key, int *out, char *err, size_t el) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        snprintf(err, el, "'%s' must be a boolean", key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 1;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) < 0) return -1;                                                                    \
    } while (0)

/* logit_bias: {"token id": bias} (OpenAI; SGLang's sampling_params use the same map). Keys are
 * decimal token ids in the vocabulary, values finite numbers in [-100, 100] (OpenAI's range,
 * applied to /generate too), at most SGLC_MAX_LOGIT_BIAS entries. */
static int parse_logit_bias(conn_ctx *c, const cJSON *o, sglc_request_params *rp, char *err,
                            size_t el) {
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(o, "logit_bias");
    if (!lb || cJSON_IsNull(lb)) return 0;
    if (!cJSON_IsObject(lb)) {
        snprintf(err, el, "'logit_bias' must be an object mapping token ids to biases");
        return -1;
    }
    if (!c->bias_ids) {
        c->bias_ids = malloc(SGLC_MAX_LOGIT_BIAS * sizeof(int32_t));
        c->bias_vals = malloc(SGLC_MAX_LOGIT_BIAS * sizeof(float));
        if (!c->bias_ids || !c->bias_vals) {
            snprintf(err, el, "out of memory");
            return -1;
        }
    }
    int n = 0;
    for (const cJSON *e = lb->child; e; e = e->next) {
        const char *k = e->string ? e->string : "";
        size_t kl = strlen(k);
        int digits = kl > 0 && kl <= 10;
        for (size_t i = 0; digits && i < kl; i++)
            digits = k[i] >= '0' && k[i] <= '9';
        if (!digits) {
            snprintf(err, el, "'logit_bias' key '%.40s' is not an integer token id", k);
            return -1;
        }
        long long id = strtoll(k, NULL, 10);
        if (id >= c->srv->info.vocab_size) {
            snprintf(err, el, "'logit_bias' key '%s' is outside the vocabulary [0, %d)", k,
                     c->srv->info.vocab_size);
            return -1;
        }
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble < -100.0 ||
            e->valuedouble > 100.0) {
            snprintf(err, el, "'logit_bias' value for token %s must be a number in [-100, 100]", k);
            return -1;
        }
        if (n == SGLC_MAX_LOGIT_BIAS) {
            snprintf(err, el, "'logit_bias' has more than %d entries", SGLC_MAX_LOGIT_BIAS);
            return -1;
        }
        c->bias_ids[n] = (int32_t)id;
        c->bias_vals[n] = (float)e->valuedouble;
        n++;
    }
    rp->logit_bias_ids = c->bias_ids;
    rp->logit_bias = c->bias_vals;
    rp->n_logit_bias = n;
    return 0;
}

/* Sampling parameters under the given names; the others are shared by both APIs. */
int sglc_srv_parse_sampling(conn_ctx *c, const cJSON *o, const char *max_key, const char *max_key2,
                            const char *min_key, const char *seed_key, int32_t default_max,
                            sglc_request_params *rp, int *has_max, char *err, size_t el) {
    double d;
    int64_t i;
    int b, r;
    *has_max = 0;
    rp->max_new_tokens = default_max;
    TRY(r = sglc_srv_opt_int(o, max_key, 1, 2147483647.0 - 1, &i, err, el));
    if (r) rp->max_new_tokens = (int32_t)i, *has_max = 1;
    if (max_key2) {
        TRY(r = sglc_srv_opt_int(o, max_key2, 1, 2147483647.0 - 1, &i, err, el));
        if (r) rp->max_new_tokens = (int32_t)i, *has_max = 1;
    }
    TRY(r = sglc_srv_opt_int(o, min_key, 0, 2147483647.0 - 1, &i, err, el));
    if (r) rp->min_new_tokens = (int32_t)i;
    if (*has_max && rp->min_new_tokens > rp->max_new_tokens) {
        snprintf(err, el, "'%s' (%d) must not exceed '%s' (%d)", min_key, rp->min_new_tokens,
                 max_key, rp->max_new_tokens);
        return -1;
    }
    TRY(r = opt_number(o, "temperature", 0.0, 100.0, &d, err, el));
    if (r) rp->temperature = (float)d;
    TRY(r = opt_number(o, "top_p", 0.0, 1.0, &d, err, el));
    if (r) {
        if (d <= 0.0) {
            snprintf(err, el, "'top_p' must be in (0, 1]");
            return -1;
        }
        rp->top_p = (float)d;
    }
    TRY(r = sglc_srv_opt_int(o, "top_k", -1, 1 << 30, &i, err, el));
    if (r) {
        if (i == 0) {
            snprintf(err, el, "'top_k' must be -1 (off) or at least 1");
            return -1;
        }
        rp->top_k = (int32_t)i;
    }
    TRY(r = opt_number(o, "min_p", 0.0, 1.0, &d, err, el));
    if (r) rp->min_p = (float)d;
    TRY(r = opt_number(o, "frequency_penalty", -2.0, 2.0, &d, err, el));
    if (r) rp->frequency_penalty = (float)d;
    TRY(r = opt_number(o, "presence_penalty", -2.0, 2.0, &d, err, el));
    if (r) rp->presence_penalty = (float)d;
    TRY(r = opt_number(o, "repetition_penalty", 0.0, 100.0, &d, err, el));
    if (r) {
        if (d <= 0.0) {
            snprintf(err, el, "'repetition_penalty' must be positive");
            return -1;
        }
        rp->repetition_penalty = (float)d;
    }
    TRY(r = sglc_srv_opt_bool(o, "ignore_eos", &b, err, el));
    if (r) rp->ignore_eos = b;
    TRY(r = sglc_srv_opt_bool(o, "skip_special_tokens", &b, err, el));
    if (r) rp->skip_special_tokens = b;
    TRY(r = sglc_srv_opt_bool(o, "no_stop_trim", &b, err, el));
    if (r) rp->no_stop_trim = b;
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(o, seed_key);
    if (sv && !cJSON_IsNull(sv)) {
        if (!cJSON_IsNumber(sv) || !isfinite(sv->valuedouble) ||
            floor(sv->valuedouble) != sv->valuedouble || sv->valuedouble < -9223372036854775808.0 ||
            sv->valuedouble > 18446744073709551616.0) {
            snprintf(err, el, "'%s' must be an integer in [-2^63, 2^64)", seed_key);
            return -1;
        }
        /* JSON numbers arrive as doubles: seeds beyond 2^53 are taken at double precision
         * (deterministically), and 2^64 - 1 rounds up to 2^64, which maps to UINT64_MAX */
        rp->has_seed = 1;
        rp->seed = sv->valuedouble < 0                         ? (uint64_t)(int64_t)sv->valuedouble
                   : sv->valuedouble >= 18446744073709551615.0 ? UINT64_MAX
                                                               : (uint64_t)sv->valuedouble;
    }
    /* stop: a string or a list of strings */
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "stop");
    if (st && !cJSON_IsNull(st)) {
        c->stop_json = cJSON_Duplicate(st, 1);
        if (!c->stop_json) {
            snprintf(err, el, "out of memory");
            return -1;
        }
        int n = 0;
        if (cJSON_IsString(c->stop_json)) {
            c->stops[n++] = c->stop_json->valuestring;
        } else if (cJSON_IsArray(c->stop_json)) {
            for (cJSON *e = c->stop_json->child; e; e = e->next) {
                if (!cJSON_IsString(e)) {
                    snprintf(err, el, "'stop' must be a string or a list of strings");
                    return -1;
                }
                if (n == MAX_STOP) {
                    snprintf(err, el, "'stop' has more than %d entries", MAX_STOP);
                    return -1;
                }
                c->stops[n++] = e->valuestring;
            }
        } else {
            snprintf(err, el, "'stop' must be a string or a list of strings");
            return -1;
        }
        for (int k = 0; k < n; k++) {
            size_t L = strlen(c->stops[k]);
            if (L == 0 || L > MAX_STOP_LEN) {
                snprintf(err, el, "'stop' strings must be 1 to %d bytes long", MAX_STOP_LEN);
                return -1;
            }
        }
        rp->stop = c->stops;
        rp->n_stop = n;
    }
    const cJSON *sti = cJSON_GetObjectItemCaseSensitive(o, "stop_token_ids");
    if (sti && !cJSON_IsNull(sti)) {
        if (!cJSON_IsArray(sti)) {
            snprintf(err, el, "'stop_token_ids' must be a list of token ids");
            return -1;
        }
        int n = 0;
        for (const cJSON *e = sti->child; e; e = e->next) {
            if (!cJSON_IsNumber(e) || floor(e->valuedouble) != e->valuedouble ||
                e->valuedouble < 0 || e->valuedouble >= c->srv->info.vocab_size) {
                snprintf(err, el, "'stop_token_ids' entries must be token ids in [0, %d)",
                         c->srv->info.vocab_size);
                return -1;
            }
            if (n == MAX_STOP_IDS) {
                snprintf(err, el, "'stop_token_ids' has more than %d entries", MAX_STOP_IDS);
                return -1;
            }
            c->stop_ids[n++] = (int32_t)e->valuedouble;
        }
        rp->stop_token_ids = c->stop_ids;
        rp->n_stop_token_ids = n;
    }
    TRY(parse_logit_bias(c, o, rp, err, el));
    TRY(sglc_srv_parse_constraint(c, o, &c->grammar, err, el));
    rp->grammar = c->grammar;
    return 0;
}

/* Moves what sglc_srv_parse_sampling left in c (stop strings, stop ids, logit bias) into a, and
 * points rp at a's copies, so the next item can be parsed; 0, or -1 when out of memory. */
int sglc_srv_detach_args(conn_ctx *c, item_args *a, sglc_request_params *rp) {
    a->stop_json = c->stop_json;
    c->stop_json = NULL;
    a->grammar = c->grammar;
    c->grammar = NULL;
    memcpy(a->stops, c->stops, sizeof a->stops);
    if (rp->n_stop > 0) rp->stop = a->stops;
    memcpy(a->stop_ids, c->stop_ids, sizeof a->stop_ids);
    if (rp->n_stop_token_ids > 0) rp->stop_token_ids = a->stop_ids;
    if (rp->n_logit_bias > 0) {
        a->bias_ids = malloc((size_t)rp->n_logit_bias * sizeof(int32_t));
        a->bias_vals = malloc((size_t)rp->n_logit_bias * sizeof(float));
        if (!a->bias_ids || !a->bias_vals) return -1;
        memcpy(a->bias_ids, rp->logit_bias_ids, (size_t)rp->n_logit_bias * sizeof(int32_t));
        memcpy(a->bias_vals, rp->logit_bias, (size_t)rp->n_logit_bias * sizeof(float));
        rp->logit_bias_ids = a->bias_ids;
        rp->logit_bias = a->bias_vals;
    }
    return 0;
}

int sglc_srv_refuse_unsupported(const cJSON *o, char *err, size_t el) {
    /* SGLang request fields sglc does not implement: refused by name, never dropped, so a client
     * never believes it got what it asked for. false / null / absent are fine. */
    static const char *const keys[] = {"return_hidden_states", "custom_logit_processor",
                                       "custom_params",        "lora_path",
                                       "image_data",           "audio_data",
                                       "video_data",           "bootstrap_host",
                                       "structural_tag"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) continue;
        snprintf(err, el, "'%s' is not supported by sglc", keys[i]);
        return -1;
    }
    return 0;
}

int sglc_srv_parse_token_ids_logprob(conn_ctx *c, const cJSON *a, char *err, size_t el) {
    c->n_lp_ids = 0;
    if (!a || cJSON_IsNull(a)) return 0;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > SGLC_MAX_LOGPROB_TOKEN_IDS) {
        snprintf(err, el, "'token_ids_logprob' must be a list of at most %d token ids",
                 SGLC_MAX_LOGPROB_TOKEN_IDS);
        return -1;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || floor(e->valuedouble) != e->valuedouble || e->valuedouble < 0 ||
            e->valuedouble >= c->srv->info.vocab_size) {
            snprintf(err, el, "'token_ids_logprob' entries must be token ids in [0, %d)",
                     c->srv->info.vocab_size);
            return -1;
        }
        c->lp_ids[c->n_lp_ids++] = (int32_t)e->valuedouble;
    }
    return 1;
}
