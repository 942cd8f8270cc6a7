/* POST /v1/score, SGLang's scoring API: for each item, the probabilities of the label tokens as
 * the next token after query + item (item + query with item_first), one forward pass per item
 * (max_new_tokens 1, greedy, token_ids_logprob = the labels). Request
 *   {"query": str | [ids], "items": [str] | [[ids]], "label_token_ids": [ids],
 *    "apply_softmax": bool (false), "item_first": bool (false), "model": str}
 * answer {"scores": [[p per label] per item], "model", "usage", "object": "scoring"}. With
 * apply_softmax the probabilities are renormalized over the labels (a softmax of their logits);
 * without it they are the model's probabilities over the whole vocabulary. */
#include "server/server_impl.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCORE_ITEMS 256

/* text or ids of one part; *ids malloc'd */
static int part_ids(conn_ctx *c, const cJSON *v, const char *field, int32_t **ids, int32_t *n,
                    char *err, size_t el) {
    if (cJSON_IsArray(v))
        return sglc_srv_ids_from_json(v, field, c->srv->info.vocab_size, ids, n, err, el);
    snprintf(err, el, "'%s' must be token ids here (text parts are concatenated as text)", field);
    return -1;
}

enum MHD_Result sglc_srv_handle_score(conn_ctx *c, cJSON *body) {
    server *s = c->srv;
    sglc_engine *e = atomic_load(&s->engine);
    char err[1024];
    unsigned status = 400;
    prompt_list pl = {0};
    int32_t *qids = NULL, nq = 0;
    cJSON *out = NULL;
    c->api = API_NATIVE;
    c->n_per_prompt = 1;
    const cJSON *query = cJSON_GetObjectItemCaseSensitive(body, "query");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(body, "items");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(body, "label_token_ids");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    int softmax = 0, item_first = 0;
    if (sglc_srv_refuse_unsupported(body, err, sizeof err) ||
        sglc_srv_opt_bool(body, "apply_softmax", &softmax, err, sizeof err) < 0 ||
        sglc_srv_opt_bool(body, "item_first", &item_first, err, sizeof err) < 0)
        goto fail;
    if (!cJSON_IsString(query) && !cJSON_IsArray(query)) {
        snprintf(err, sizeof err, "'query' must be a string or a list of token ids");
        goto fail;
    }
    if (!cJSON_IsArray(items) || cJSON_GetArraySize(items) == 0 ||
        cJSON_GetArraySize(items) > MAX_SCORE_ITEMS) {
        snprintf(err, sizeof err, "'items' must be a list of 1 to %d items", MAX_SCORE_ITEMS);
        goto fail;
    }
    if (!cJSON_IsArray(labels) || cJSON_GetArraySize(labels) == 0) {
        snprintf(err, sizeof err, "'label_token_ids' must be a non-empty list of token ids");
        goto fail;
    }
    if (sglc_srv_parse_token_ids_logprob(c, labels, err, sizeof err) < 0) {
        snprintf(err, sizeof err,
                 "'label_token_ids' must be a list of at most %d token ids in the vocabulary",
                 SGLC_MAX_LOGPROB_TOKEN_IDS);
        goto fail;
    }
    int n = cJSON_GetArraySize(items);
    if (sglc_srv_prompts_alloc(&pl, n, err, sizeof err)) goto fail;
    if (cJSON_IsArray(query) && part_ids(c, query, "query", &qids, &nq, err, sizeof err)) goto fail;
    const cJSON *it = items->child;
    for (int k = 0; k < n; k++, it = it->next) {
        char field[32];
        snprintf(field, sizeof field, "items[%d]", k);
        if (cJSON_IsString(query) != cJSON_IsString(it)) {
            snprintf(err, sizeof err, "'%s' must be of the same kind as 'query' (text or ids)",
                     field);
            goto fail;
        }
        if (cJSON_IsString(it)) {
            /* text: query and item concatenated as text, then tokenized (as SGLang does) */
            const char *a = item_first ? it->valuestring : query->valuestring;
            const char *b = item_first ? query->valuestring : it->valuestring;
            size_t la = strlen(a), lb = strlen(b);
            char *t = malloc(la + lb + 1);
            if (!t) goto oom;
            memcpy(t, a, la);
            memcpy(t + la, b, lb + 1);
            int rc = la + lb == 0
                         ? -1
                         : sglc_srv_tokenize_alloc(e, t, la + lb, s->info.add_bos, &pl.ids[k],
                                                   &pl.len[k], err, sizeof err);
            free(t);
            if (la + lb == 0) snprintf(err, sizeof err, "'%s' and 'query' are both empty", field);
            if (rc) goto fail;
        } else {
            int32_t *iids = NULL, ni = 0;
            if (part_ids(c, it, field, &iids, &ni, err, sizeof err)) goto fail;
            pl.len[k] = nq + ni;
            pl.ids[k] = malloc(((size_t)pl.len[k] + 1) * sizeof(int32_t));
            if (!pl.ids[k]) {
                free(iids);
                goto oom;
            }
            memcpy(pl.ids[k] + (item_first ? ni : 0), qids, (size_t)nq * sizeof(int32_t));
            memcpy(pl.ids[k] + (item_first ? 0 : nq), iids, (size_t)ni * sizeof(int32_t));
            free(iids);
            if (pl.len[k] == 0) {
                snprintf(err, sizeof err, "'%s' and 'query' are both empty", field);
                goto fail;
            }
        }
    }
    sglc_request_params rp;
    sglc_request_params_default(&rp);
    rp.max_new_tokens = 1;
    rp.temperature = 0.0f;
    rp.ignore_eos = 1;
    rp.return_logprob = 1;
    rp.logprob_token_ids = c->lp_ids;
    rp.n_logprob_token_ids = c->n_lp_ids;
    sglc_srv_make_ids(c, "score-", NULL);
    status = sglc_srv_submit_all(c, pl.n, pl.ids, pl.len, &rp, 1, err, sizeof err);
    if (status != 0) goto fail;
    out = cJSON_CreateObject();
    cJSON *scores = cJSON_AddArrayToObject(out, "scores");
    int64_t prompt_tokens = 0;
    for (int k = 0; k < c->n; k++) {
        sglc_output o;
        do {
            sglc_request_wait(c->reqs[k], 0, &o, WAIT_SLICE_MS);
            if (!o.finished && sglc_srv_peer_gone(c->conn)) {
                for (int j = 0; j < c->n; j++)
                    sglc_request_abort(c->reqs[j]);
                cJSON_Delete(out);
                sglc_srv_prompts_free(&pl);
                free(qids);
                return MHD_NO;
            }
        } while (!o.finished);
        prompt_tokens += o.prompt_tokens;
        cJSON *row = cJSON_CreateArray();
        if (o.n_output < 1 || !o.token_ids_logprobs) {
            snprintf(err, sizeof err, "item %d was not scored (aborted)", k);
            status = 500;
            goto fail;
        }
        double mx = -INFINITY, z = 0;
        for (int j = 0; j < c->n_lp_ids; j++)
            if (o.token_ids_logprobs[j] > mx) mx = o.token_ids_logprobs[j];
        for (int j = 0; j < c->n_lp_ids; j++)
            z += exp(o.token_ids_logprobs[j] - mx);
        for (int j = 0; j < c->n_lp_ids; j++) {
            double lp = o.token_ids_logprobs[j];
            cJSON_AddItemToArray(row, cJSON_CreateNumber(softmax ? exp(lp - mx) / z : exp(lp)));
        }
        cJSON_AddItemToArray(scores, row);
    }
    cJSON_AddStringToObject(out, "model",
                            cJSON_IsString(model) ? model->valuestring : s->model_name);
    cJSON_AddStringToObject(out, "object", "scoring");
    cJSON *u = cJSON_AddObjectToObject(out, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", 0);
    cJSON_AddNumberToObject(u, "total_tokens", (double)prompt_tokens);
    sglc_srv_prompts_free(&pl);
    free(qids);
    return sglc_srv_send_json(c->conn, MHD_HTTP_OK, out);
oom:
    snprintf(err, sizeof err, "out of memory");
    status = 500;
fail:
    cJSON_Delete(out);
    sglc_srv_prompts_free(&pl);
    free(qids);
    return sglc_srv_send_error(c->conn, status ? status : 400, err);
}
