/* Prompts to token ids, for both APIs: text through the engine's tokenizer, lists of token ids
 * checked against the vocabulary, batches of prompts, and chat messages rendered with the
 * model's template (tokenizer/chat_template.h) then tokenized so that special-token markup in
 * request data stays plain text. It calls the engine's tokenizer API only. */
#include "server/server_impl.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sglc_srv_tokenize_alloc(sglc_engine *e, const char *text, size_t len, int add_bos,
                            int32_t **ids, int32_t *n, char *err, size_t el) {
    int64_t need = sglc_engine_tokenize(e, text, len, 1, add_bos, NULL, 0);
    if (need < 0 || need > (1 << 24)) {
        snprintf(err, el, "cannot tokenize the prompt");
        return -1;
    }
    *ids = malloc(((size_t)need + 1) * sizeof(int32_t));
    if (!*ids) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    sglc_engine_tokenize(e, text, len, 1, add_bos, *ids, (size_t)need);
    *n = (int32_t)need;
    return 0;
}

int sglc_srv_ids_from_json(const cJSON *a, const char *field, int32_t vocab, int32_t **ids,
                           int32_t *n, char *err, size_t el) {
    int cnt = cJSON_GetArraySize(a);
    *ids = malloc(((size_t)cnt + 1) * sizeof(int32_t));
    if (!*ids) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    int k = 0;
    for (const cJSON *e = a->child; e; e = e->next, k++) {
        if (!cJSON_IsNumber(e) || floor(e->valuedouble) != e->valuedouble) {
            snprintf(err, el, "'%s' must be a list of integer token ids", field);
            return -1;
        }
        if (e->valuedouble < 0 || e->valuedouble >= vocab) {
            snprintf(err, el, "'%s'[%d] = %.0f is outside the vocabulary [0, %d)", field, k,
                     e->valuedouble, vocab);
            return -1;
        }
        (*ids)[k] = (int32_t)e->valuedouble;
    }
    *n = k;
    return 0;
}

/* messages -> normalized [{role, content}] + extra keys kept; renders the model's template.
 * *spans (malloc'd) are the prompt's byte ranges that came from the request
 * (sglc_srv_tokenize_chat). */
/* continue_final_message (transformers' semantics): the prompt ends where the final message's
 * text (stripped of surrounding whitespace) last appears, so the model continues that message
 * instead of starting a new turn. Spans past the cut are dropped or clipped. */
static int cut_after_final(const cJSON *norm, char *prompt, sglc_chat_template_span *spans,
                           size_t *n_spans, char *err, size_t el) {
    const cJSON *last = NULL, *m;
    cJSON_ArrayForEach(m, norm) last = m;
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(last, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
    if (!cJSON_IsString(role) || strcmp(role->valuestring, "assistant") != 0 ||
        !cJSON_IsString(content)) {
        snprintf(err, el, "'continue_final_message' needs an assistant message last");
        return -1;
    }
    const char *t = content->valuestring;
    size_t b = 0, n = strlen(t);
    while (b < n && isspace((unsigned char)t[b]))
        b++;
    while (n > b && isspace((unsigned char)t[n - 1]))
        n--;
    size_t len = strlen(prompt), cut = SIZE_MAX;
    if (n == b) {
        snprintf(err, el, "'continue_final_message': the final message is empty");
        return -1;
    }
    for (size_t i = len >= n - b ? len - (n - b) + 1 : 0; i-- > 0;)
        if (memcmp(prompt + i, t + b, n - b) == 0) {
            cut = i + (n - b);
            break;
        }
    if (cut == SIZE_MAX) {
        snprintf(err, el,
                 "'continue_final_message': the chat template does not write the final message's "
                 "text");
        return -1;
    }
    prompt[cut] = 0;
    size_t k = 0;
    for (size_t i = 0; i < *n_spans; i++) {
        if (spans[i].off >= cut) continue;
        spans[k] = spans[i];
        if (spans[k].off + spans[k].len > cut) spans[k].len = cut - spans[k].off;
        k++;
    }
    *n_spans = k;
    return 0;
}

int sglc_srv_render_chat(server *s, const cJSON *body, const cJSON *tools, int continue_final,
                         char **prompt, sglc_chat_template_span **spans, size_t *n_spans, char *err,
                         size_t el) {
    cJSON *extra = NULL;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!cJSON_IsArray(msgs)) {
        snprintf(err, el, "'messages' must be a list of messages");
        return -1;
    }
    if (!msgs->child) {
        snprintf(err, el, "'messages' must not be empty");
        return -1;
    }
    cJSON *norm = cJSON_CreateArray();
    int idx = 0, rc = -1;
    for (const cJSON *m = msgs->child; m; m = m->next, idx++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            snprintf(err, el, "'messages'[%d] must be an object with a string 'role'", idx);
            goto done;
        }
        cJSON *nm = cJSON_Duplicate(m, 1);
        cJSON_AddItemToArray(norm, nm);
        if (cJSON_IsArray(content)) {
            /* text parts are joined; other parts are not supported by a text model */
            size_t cap = 1, len = 0;
            for (const cJSON *p = content->child; p; p = p->next) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
                const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
                if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") != 0 ||
                    !cJSON_IsString(t)) {
                    snprintf(err, el, "'messages'[%d].content: only text parts are supported", idx);
                    goto done;
                }
                cap += strlen(t->valuestring);
            }
            char *joined = malloc(cap);
            if (!joined) goto done;
            for (const cJSON *p = content->child; p; p = p->next) {
                const char *t = cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring;
                size_t L = strlen(t);
                memcpy(joined + len, t, L);
                len += L;
            }
            joined[len] = 0;
            cJSON_ReplaceItemInObjectCaseSensitive(nm, "content", cJSON_CreateString(joined));
            free(joined);
        } else if (!content || cJSON_IsNull(content)) {
            if (content)
                cJSON_ReplaceItemInObjectCaseSensitive(nm, "content", cJSON_CreateString(""));
            else
                cJSON_AddStringToObject(nm, "content", "");
        } else if (!cJSON_IsString(content)) {
            snprintf(err, el, "'messages'[%d].content must be a string or a list of text parts",
                     idx);
            goto done;
        }
    }
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(body, "chat_template_kwargs");
    if (kw && !cJSON_IsNull(kw) && !cJSON_IsObject(kw)) {
        snprintf(err, el, "'chat_template_kwargs' must be an object");
        goto done;
    }
    if (tools) {
        /* the template sees `tools` (as transformers passes them), next to the kwargs */
        extra = cJSON_IsObject(kw) ? cJSON_Duplicate(kw, 1) : cJSON_CreateObject();
        cJSON *tc = cJSON_Duplicate(tools, 1);
        if (!extra || !tc || !cJSON_AddItemToObject(extra, "tools", tc)) {
            cJSON_Delete(tc);
            snprintf(err, el, "out of memory");
            goto done;
        }
        kw = extra;
    }
    int agp = !continue_final;
    const cJSON *agpj = cJSON_GetObjectItemCaseSensitive(body, "add_generation_prompt");
    if (agpj && !cJSON_IsNull(agpj)) {
        if (!cJSON_IsBool(agpj)) {
            snprintf(err, el, "'add_generation_prompt' must be a boolean");
            goto done;
        }
        agp = cJSON_IsTrue(agpj);
        if (agp && continue_final) {
            snprintf(err, el,
                     "'continue_final_message' and 'add_generation_prompt' exclude each "
                     "other");
            goto done;
        }
    }
    sglc_engine *e = atomic_load(&s->engine);
    size_t bl = 0, elen = 0;
    const char *bos = s->info.bos_id >= 0 ? sglc_engine_token_text(e, s->info.bos_id, &bl) : NULL;
    const char *eos = s->info.eos_id >= 0 ? sglc_engine_token_text(e, s->info.eos_id, &elen) : NULL;
    char bos_s[256] = "", eos_s[256] = "";
    if (bos) snprintf(bos_s, sizeof bos_s, "%.*s", (int)bl, bos);
    if (eos) snprintf(eos_s, sizeof eos_s, "%.*s", (int)elen, eos);
    sglc_chat_template_vars v = {.messages = norm,
                                 .add_generation_prompt = agp,
                                 .bos_token = bos_s,
                                 .eos_token = eos_s,
                                 .extra_vars = cJSON_IsObject(kw) ? kw : NULL};
    char terr[400];
    if (sglc_chat_template_render_spans(s->info.chat_template, &v, prompt, spans, n_spans, terr,
                                        sizeof terr) != 0) {
        snprintf(err, el, "chat template: %s", terr);
        goto done;
    }
    if (continue_final && cut_after_final(norm, *prompt, *spans, n_spans, err, el)) {
        free(*prompt);
        free(*spans);
        *prompt = NULL;
        *spans = NULL;
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(norm);
    cJSON_Delete(extra);
    return rc;
}

/* Whether text from the request holds special-token markup that parse_special would turn into
 * special tokens (its ids differ with and without special parsing). */
static int has_special_markup(sglc_engine *e, const char *text, size_t len) {
    int64_t n1 = sglc_engine_tokenize(e, text, len, 1, 0, NULL, 0);
    int64_t n0 = sglc_engine_tokenize(e, text, len, 0, 0, NULL, 0);
    if (n1 != n0 || n1 <= 0) return n1 != n0;
    int32_t *a = malloc(2 * (size_t)n1 * sizeof *a);
    if (!a) return 1; /* conservative: keep it plain */
    sglc_engine_tokenize(e, text, len, 1, 0, a, (size_t)n1);
    sglc_engine_tokenize(e, text, len, 0, 0, a + n1, (size_t)n1);
    int diff = memcmp(a, a + n1, (size_t)n1 * sizeof *a) != 0;
    free(a);
    return diff;
}

/* Tokenizes a rendered chat prompt (ROBUSTNESS.md §19): special-token markup written by the
 * template becomes special tokens, markup inside request data (spans) stays plain text. Spans
 * without markup are tokenized together with the template text around them, so such prompts
 * get exactly the ids of tokenizing the whole prompt (as transformers does); a span with markup
 * is cut out and encoded with parse_special off. */
int sglc_srv_tokenize_chat(sglc_engine *e, const char *prompt, const sglc_chat_template_span *spans,
                           size_t n_spans, int32_t **ids, int32_t *n, char *err, size_t el) {
    size_t len = strlen(prompt), start = 0, cap = 0;
    int32_t *out = NULL;
    int64_t total = 0;
    for (size_t i = 0; i <= n_spans; i++) {
        size_t cut = i < n_spans ? spans[i].off : len, clen = i < n_spans ? spans[i].len : 0;
        if (i < n_spans && (cut < start || cut + clen > len)) continue;
        if (i < n_spans && !has_special_markup(e, prompt + cut, clen)) continue;
        /* template text (with unprotected spans) in [start, cut), then the span, plain */
        for (int part = 0; part < 2; part++) {
            const char *t = part ? prompt + cut : prompt + start;
            size_t tl = part ? clen : cut - start;
            if (!tl) continue;
            int64_t need = sglc_engine_tokenize(e, t, tl, !part, 0, NULL, 0);
            if (need < 0 || total + need > (1 << 24)) {
                free(out);
                snprintf(err, el, "cannot tokenize the prompt");
                return -1;
            }
            if ((size_t)(total + need) + 1 > cap) {
                size_t ncap = (size_t)(total + need) * 2 + 16;
                int32_t *o = realloc(out, ncap * sizeof *o);
                if (!o) {
                    free(out);
                    snprintf(err, el, "out of memory");
                    return -1;
                }
                out = o;
                cap = ncap;
            }
            sglc_engine_tokenize(e, t, tl, !part, 0, out + total, (size_t)need);
            total += need;
        }
        start = cut + clen;
    }
    if (!out && !(out = malloc(sizeof *out))) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    *ids = out;
    *n = (int32_t)total;
    return 0;
}

void sglc_srv_keep_prompts(conn_ctx *c, prompt_list *pl) {
    c->prompt_ids = pl->ids;
    c->prompt_len = pl->len;
    c->n_prompt_ids = pl->n;
    memset(pl, 0, sizeof *pl);
}

void sglc_srv_prompts_free(prompt_list *pl) {
    for (int i = 0; pl->ids && i < pl->n; i++)
        free(pl->ids[i]);
    free(pl->ids);
    free(pl->len);
    memset(pl, 0, sizeof *pl);
}

/* Room for n prompts; 0, or -1 with err. */
int sglc_srv_prompts_alloc(prompt_list *pl, int n, char *err, size_t el) {
    pl->ids = calloc((size_t)n, sizeof *pl->ids);
    pl->len = calloc((size_t)n, sizeof *pl->len);
    pl->n = n;
    if (!pl->ids || !pl->len) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    return 0;
}

/* A batch field (a list of prompts): its length, checked against MAX_BATCH; -1 with err. */
int sglc_srv_batch_len(const cJSON *a, const char *field, char *err, size_t el) {
    int n = cJSON_GetArraySize(a);
    if (n < 1) {
        snprintf(err, el, "'%s' is an empty list", field);
        return -1;
    }
    if (n > MAX_BATCH) {
        snprintf(err, el, "'%s' has %d prompts; the limit is %d", field, n, MAX_BATCH);
        return -1;
    }
    return n;
}
