/* Values of the chat template renderer: undefined, none, bool, int, string (with its taint
 * mask), list, dict and built-in callables, all made in the render's arena; dict access, the
 * request's JSON turned into values (tainted as request data), Jinja truthiness, and the output
 * buffer with its per-byte taint. Calls only the arena of chat_template.c. */
#include "tokenizer/chat_template_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

value sglc_ct_undef_v = {.t = V_UNDEF};
value sglc_ct_none_v = {.t = V_NONE};

value *sglc_ct_mk(ctx *c, vtype t) {
    value *v = sglc_ct_alloc(c, sizeof *v);
    memset(v, 0, sizeof *v);
    v->t = t;
    return v;
}
value *sglc_ct_mk_str(ctx *c, const char *s, size_t n) {
    value *v = sglc_ct_mk(c, V_STR);
    char *d = sglc_ct_alloc(c, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    v->s = d;
    v->n = n;
    return v;
}
/* a string whose bytes carry the taint mask m (may be NULL: template text) */
value *sglc_ct_mk_str_m(ctx *c, const char *s, size_t n, const unsigned char *m) {
    value *v = sglc_ct_mk_str(c, s, n);
    v->m = m && n ? m : NULL;
    return v;
}
const unsigned char *sglc_ct_mask_all(ctx *c, size_t n) {
    unsigned char *m = sglc_ct_alloc(c, n ? n : 1);
    memset(m, 1, n);
    return m;
}
int sglc_ct_any_taint(const value *v) {
    if (v->t != V_STR || !v->m) return 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->m[i]) return 1;
    return 0;
}
/* a global callable (self == NULL): strftime_now */
value *sglc_ct_mk_builtin(ctx *c, const char *name) {
    value *v = sglc_ct_mk(c, V_FUNC);
    v->fname = name;
    return v;
}
value *sglc_ct_mk_int(ctx *c, long long i) {
    value *v = sglc_ct_mk(c, V_INT);
    v->i = i;
    return v;
}
value *sglc_ct_mk_bool(ctx *c, int b) {
    value *v = sglc_ct_mk(c, V_BOOL);
    v->i = b != 0;
    return v;
}
value *sglc_ct_mk_coll(ctx *c, vtype t) {
    value *v = sglc_ct_mk(c, t);
    v->c = sglc_ct_alloc(c, sizeof *v->c);
    memset(v->c, 0, sizeof *v->c);
    return v;
}
void sglc_ct_coll_push(ctx *c, value *v, const char *key, value *item) {
    coll *k = v->c;
    if (k->n == k->cap) {
        int ncap = k->cap ? k->cap * 2 : 8;
        value **ni = sglc_ct_alloc(c, (size_t)ncap * sizeof *ni);
        const char **nk = sglc_ct_alloc(c, (size_t)ncap * sizeof *nk);
        if (k->n) {
            memcpy(ni, k->items, (size_t)k->n * sizeof *ni);
            memcpy(nk, k->keys, (size_t)k->n * sizeof *nk);
        }
        k->items = ni;
        k->keys = nk;
        k->cap = ncap;
    }
    k->items[k->n] = item;
    k->keys[k->n] = key;
    k->n++;
}
value *sglc_ct_dict_get(value *d, const char *key) {
    for (int i = 0; i < d->c->n; i++)
        if (strcmp(d->c->keys[i], key) == 0) return d->c->items[i];
    return NULL;
}
void sglc_ct_dict_set(ctx *c, value *d, const char *key, value *item) {
    for (int i = 0; i < d->c->n; i++)
        if (strcmp(d->c->keys[i], key) == 0) {
            d->c->items[i] = item;
            return;
        }
    size_t L = strlen(key);
    char *k = sglc_ct_alloc(c, L + 1);
    memcpy(k, key, L + 1);
    sglc_ct_coll_push(c, d, k, item);
}

value *sglc_ct_from_json(ctx *c, const cJSON *j, int depth) {
    if (depth > CT_MAX_DEPTH) sglc_ct_fail(c, "input nested too deeply");
    if (!j || cJSON_IsNull(j)) return &sglc_ct_none_v;
    if (cJSON_IsBool(j)) return sglc_ct_mk_bool(c, cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) return sglc_ct_mk_int(c, (long long)j->valuedouble);
    if (cJSON_IsString(j)) {
        size_t n = strlen(j->valuestring);
        return sglc_ct_mk_str_m(c, j->valuestring, n, sglc_ct_mask_all(c, n));
    }
    if (cJSON_IsArray(j)) {
        value *v = sglc_ct_mk_coll(c, V_LIST);
        for (const cJSON *e = j->child; e; e = e->next)
            sglc_ct_coll_push(c, v, NULL, sglc_ct_from_json(c, e, depth + 1));
        return v;
    }
    if (cJSON_IsObject(j)) {
        value *v = sglc_ct_mk_coll(c, V_DICT);
        v->c->tainted_keys = 1;
        for (const cJSON *e = j->child; e; e = e->next)
            sglc_ct_dict_set(c, v, e->string ? e->string : "", sglc_ct_from_json(c, e, depth + 1));
        return v;
    }
    return &sglc_ct_undef_v;
}

int sglc_ct_truthy(const value *v) {
    switch (v->t) {
    case V_BOOL:
    case V_INT: return v->i != 0;
    case V_STR: return v->n != 0;
    case V_LIST:
    case V_DICT: return v->c->n != 0;
    case V_FUNC: return 1;
    default: return 0;
    }
}

const char *sglc_ct_type_name(vtype t) {
    static const char *names[V_TYPE_COUNT] = {"undefined", "none", "bool", "int",
                                              "string",    "list", "dict", "function"};
    return names[t];
}

/* ---------- output ---------- */

void sglc_ct_out_append(ctx *c, const char *s, size_t n, const unsigned char *m) {
    if (c->out_len + n > CT_MAX_OUTPUT)
        sglc_ct_fail(c, "chat template output exceeds %u bytes", CT_MAX_OUTPUT);
    if (c->out_len + n + 1 > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n + 1)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o) sglc_ct_fail(c, "out of memory");
        c->out = o;
        unsigned char *om = realloc(c->out_m, cap);
        if (!om) sglc_ct_fail(c, "out of memory");
        c->out_m = om;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, s, n);
    if (m)
        memcpy(c->out_m + c->out_len, m, n);
    else
        memset(c->out_m + c->out_len, 0, n);
    c->out_len += n;
    c->out[c->out_len] = 0;
}

/* string form of a value, as Jinja's str() */
value *sglc_ct_to_str(ctx *c, value *v) {
    char buf[64];
    switch (v->t) {
    case V_STR: return v;
    case V_UNDEF: return sglc_ct_mk_str(c, "", 0);
    case V_NONE: return sglc_ct_mk_str(c, "None", 4);
    case V_BOOL: return v->i ? sglc_ct_mk_str(c, "True", 4) : sglc_ct_mk_str(c, "False", 5);
    case V_INT: {
        int n = snprintf(buf, sizeof buf, "%lld", v->i);
        return sglc_ct_mk_str(c, buf, (size_t)n);
    }
    default: sglc_ct_fail(c, "cannot convert a %s to a string", sglc_ct_type_name(v->t));
    }
}
