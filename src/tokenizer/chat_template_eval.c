/* Evaluator of the chat template renderer: expressions over values (comparison, concatenation,
 * indexing, slicing, attributes), the supported filters and string methods, built-in calls
 * (raise_exception, namespace, strftime_now), and statements writing to the output, with caps
 * on loop iterations and recursion. Taint masks follow every string operation. Uses values and
 * output of chat_template_value.c, the lexer's is_ws, and the arena of chat_template.c. */
#include "tokenizer/chat_template_impl.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static value *lookup(scope *s, const char *name) {
    for (; s; s = s->up) {
        value *v = sglc_ct_dict_get(s->vars, name);
        if (v) return v;
    }
    return &sglc_ct_undef_v;
}

static value *eval(ctx *c, scope *s, node *nd);

static int val_eq(const value *a, const value *b) {
    if ((a->t == V_INT || a->t == V_BOOL) && (b->t == V_INT || b->t == V_BOOL)) return a->i == b->i;
    if (a->t != b->t) return 0;
    switch (a->t) {
    case V_STR: return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
    case V_NONE:
    case V_UNDEF: return 1;
    case V_LIST:
        if (a->c->n != b->c->n) return 0;
        for (int i = 0; i < a->c->n; i++)
            if (!val_eq(a->c->items[i], b->c->items[i])) return 0;
        return 1;
    default: return a == b;
    }
}

static value *concat(ctx *c, value *a, value *b) {
    value *sa = sglc_ct_to_str(c, a), *sb = sglc_ct_to_str(c, b);
    if (sa->n + sb->n > CT_MAX_OUTPUT) sglc_ct_fail(c, "string exceeds the size limit");
    value *v = sglc_ct_mk(c, V_STR);
    char *buf = sglc_ct_alloc(c, sa->n + sb->n + 1);
    memcpy(buf, sa->s, sa->n);
    memcpy(buf + sa->n, sb->s, sb->n);
    buf[sa->n + sb->n] = 0;
    v->s = buf;
    v->n = sa->n + sb->n;
    if ((sa->m || sb->m) && v->n) {
        unsigned char *m = sglc_ct_alloc(c, v->n);
        if (sa->m)
            memcpy(m, sa->m, sa->n);
        else
            memset(m, 0, sa->n);
        if (sb->m)
            memcpy(m + sa->n, sb->m, sb->n);
        else
            memset(m + sa->n, 0, sb->n);
        v->m = m;
    }
    return v;
}

static value *get_item(ctx *c, value *o, value *key) {
    if (o->t == V_DICT) {
        if (key->t != V_STR) return &sglc_ct_undef_v;
        value *v = sglc_ct_dict_get(o, key->s);
        return v ? v : &sglc_ct_undef_v;
    }
    if ((o->t == V_LIST || o->t == V_STR) && key->t == V_INT) {
        long long n = o->t == V_LIST ? o->c->n : (long long)o->n, i = key->i;
        if (i < 0) i += n;
        if (i < 0 || i >= n) return &sglc_ct_undef_v;
        return o->t == V_LIST ? o->c->items[i]
                              : sglc_ct_mk_str_m(c, o->s + i, 1, o->m ? o->m + i : NULL);
    }
    if (o->t == V_UNDEF) sglc_ct_fail(c, "indexing an undefined value");
    return &sglc_ct_undef_v;
}

static const char *const STR_METHODS[] = {"strip",      "lstrip", "rstrip",  "startswith",
                                          "endswith",   "upper",  "lower",   "split",
                                          "capitalize", "title",  "replace", NULL};

static value *get_attr(ctx *c, value *o, const char *name) {
    /* ROBUSTNESS.md §28: no walking into an object model */
    if (name[0] == '_')
        sglc_ct_fail(c, "attribute '%s' is not accessible in a chat template", name);
    if (o->t == V_DICT) {
        value *v = sglc_ct_dict_get(o, name);
        if (v) return v;
        if (strcmp(name, "items") == 0 || strcmp(name, "keys") == 0 ||
            strcmp(name, "values") == 0 || strcmp(name, "get") == 0) {
            value *f = sglc_ct_mk(c, V_FUNC);
            f->fname = name;
            f->self = o;
            return f;
        }
        return &sglc_ct_undef_v;
    }
    if (o->t == V_STR)
        for (int i = 0; STR_METHODS[i]; i++)
            if (strcmp(STR_METHODS[i], name) == 0) {
                value *f = sglc_ct_mk(c, V_FUNC);
                f->fname = STR_METHODS[i];
                f->self = o;
                return f;
            }
    if (o->t == V_UNDEF) sglc_ct_fail(c, "attribute '%s' of an undefined value", name);
    return &sglc_ct_undef_v;
}

static int is_strip_char(char ch, value *chars) {
    if (!chars || chars->t != V_STR) return sglc_ct_is_ws(ch);
    return memchr(chars->s, ch, chars->n) != NULL;
}

static value *call_method(ctx *c, value *f, value **args, int nargs) {
    value *o = f->self;
    const char *m = f->fname;
    if (o->t == V_DICT) {
        if (strcmp(m, "get") == 0) {
            if (nargs < 1 || args[0]->t != V_STR) sglc_ct_fail(c, "get() needs a key");
            value *v = sglc_ct_dict_get(o, args[0]->s);
            return v ? v : nargs > 1 ? args[1] : &sglc_ct_none_v;
        }
        value *l = sglc_ct_mk_coll(c, V_LIST);
        for (int i = 0; i < o->c->n; i++) {
            size_t kl = strlen(o->c->keys[i]);
            value *k = sglc_ct_mk_str_m(c, o->c->keys[i], kl,
                                        o->c->tainted_keys ? sglc_ct_mask_all(c, kl) : NULL);
            if (strcmp(m, "keys") == 0) {
                sglc_ct_coll_push(c, l, NULL, k);
            } else if (strcmp(m, "values") == 0) {
                sglc_ct_coll_push(c, l, NULL, o->c->items[i]);
            } else {
                value *pair = sglc_ct_mk_coll(c, V_LIST);
                sglc_ct_coll_push(c, pair, NULL, k);
                sglc_ct_coll_push(c, pair, NULL, o->c->items[i]);
                sglc_ct_coll_push(c, l, NULL, pair);
            }
        }
        return l;
    }
    const char *s = o->s;
    size_t n = o->n;
    if (strcmp(m, "strip") == 0 || strcmp(m, "lstrip") == 0 || strcmp(m, "rstrip") == 0) {
        value *chars = nargs > 0 ? args[0] : NULL;
        size_t b = 0, e = n;
        if (m[0] != 'r')
            while (b < e && is_strip_char(s[b], chars))
                b++;
        if (m[0] != 'l')
            while (e > b && is_strip_char(s[e - 1], chars))
                e--;
        return sglc_ct_mk_str_m(c, s + b, e - b, o->m ? o->m + b : NULL);
    }
    if (strcmp(m, "startswith") == 0 || strcmp(m, "endswith") == 0) {
        if (nargs != 1 || args[0]->t != V_STR) sglc_ct_fail(c, "%s() needs a string", m);
        size_t k = args[0]->n;
        if (k > n) return sglc_ct_mk_bool(c, 0);
        return sglc_ct_mk_bool(c, memcmp(m[0] == 's' ? s : s + n - k, args[0]->s, k) == 0);
    }
    if (strcmp(m, "upper") == 0 || strcmp(m, "lower") == 0 || strcmp(m, "capitalize") == 0 ||
        strcmp(m, "title") == 0) {
        value *r = sglc_ct_mk_str_m(c, s, n, o->m);
        char *d = (char *)r->s;
        int start = 1;
        for (size_t i = 0; i < n; i++) {
            int up = m[0] == 'u' || ((m[0] == 'c' && i == 0) || (m[0] == 't' && start));
            if (up && d[i] >= 'a' && d[i] <= 'z') d[i] = (char)(d[i] - 32);
            if (!up && d[i] >= 'A' && d[i] <= 'Z') d[i] = (char)(d[i] + 32);
            start = !((d[i] >= 'a' && d[i] <= 'z') || (d[i] >= 'A' && d[i] <= 'Z'));
        }
        return r;
    }
    if (strcmp(m, "split") == 0) {
        value *l = sglc_ct_mk_coll(c, V_LIST);
        if (nargs < 1 || args[0]->t != V_STR || args[0]->n == 0) {
            size_t i = 0;
            while (i < n) {
                while (i < n && sglc_ct_is_ws(s[i]))
                    i++;
                size_t b = i;
                while (i < n && !sglc_ct_is_ws(s[i]))
                    i++;
                if (i > b)
                    sglc_ct_coll_push(c, l, NULL,
                                      sglc_ct_mk_str_m(c, s + b, i - b, o->m ? o->m + b : NULL));
            }
            return l;
        }
        const char *sep = args[0]->s;
        size_t k = args[0]->n, b = 0;
        for (size_t i = 0; i + k <= n;) {
            if (++c->iters > CT_MAX_ITERS) sglc_ct_fail(c, "chat template loop limit exceeded");
            if (memcmp(s + i, sep, k) == 0) {
                sglc_ct_coll_push(c, l, NULL,
                                  sglc_ct_mk_str_m(c, s + b, i - b, o->m ? o->m + b : NULL));
                i += k;
                b = i;
            } else {
                i++;
            }
        }
        sglc_ct_coll_push(c, l, NULL, sglc_ct_mk_str_m(c, s + b, n - b, o->m ? o->m + b : NULL));
        return l;
    }
    if (strcmp(m, "replace") == 0) {
        if (nargs != 2 || args[0]->t != V_STR || args[1]->t != V_STR || args[0]->n == 0)
            sglc_ct_fail(c, "replace() needs two strings");
        value *r = sglc_ct_mk_str(c, "", 0);
        size_t i = 0, b = 0, k = args[0]->n;
        while (i + k <= n) {
            if (memcmp(s + i, args[0]->s, k) == 0) {
                r = concat(c, r, sglc_ct_mk_str_m(c, s + b, i - b, o->m ? o->m + b : NULL));
                r = concat(c, r, args[1]);
                i += k;
                b = i;
            } else {
                i++;
            }
        }
        return concat(c, r, sglc_ct_mk_str_m(c, s + b, n - b, o->m ? o->m + b : NULL));
    }
    sglc_ct_fail(c, "unsupported method '%s'", m);
}

/* transformers' tojson filter: json.dumps(x, ensure_ascii=False, indent=indent); with an indent,
 * members go on their own lines, indent spaces per level, "," between them (no space) and
 * empty containers stay "[]" / "{}". indent < 0: one line, ", " and ": ". */
static value *newline_indent(ctx *c, value *r, int indent, int level) {
    char buf[1 + 256];
    int n = indent * level;
    if (n > 256) sglc_ct_fail(c, "tojson indent too deep");
    buf[0] = '\n';
    memset(buf + 1, ' ', (size_t)n);
    return concat(c, r, sglc_ct_mk_str(c, buf, (size_t)n + 1));
}

static value *tojson(ctx *c, value *v, int depth, int indent) {
    if (depth > CT_MAX_DEPTH) sglc_ct_fail(c, "value nested too deeply");
    switch (v->t) {
    case V_NONE:
    case V_UNDEF: return sglc_ct_mk_str(c, "null", 4);
    case V_BOOL: return sglc_ct_mk_str(c, v->i ? "true" : "false", v->i ? 4 : 5);
    case V_INT: return sglc_ct_to_str(c, v);
    case V_STR: {
        cJSON *j = cJSON_CreateString(v->s);
        char *p = j ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        if (!p) sglc_ct_fail(c, "out of memory");
        size_t pl = strlen(p);
        value *r =
            sglc_ct_mk_str_m(c, p, pl, sglc_ct_any_taint(v) ? sglc_ct_mask_all(c, pl) : NULL);
        free(p);
        return r;
    }
    case V_LIST:
    case V_DICT: {
        int is_list = v->t == V_LIST;
        value *r = sglc_ct_mk_str(c, is_list ? "[" : "{", 1);
        for (int i = 0; i < v->c->n; i++) {
            if (i)
                r = concat(c, r, sglc_ct_mk_str(c, indent >= 0 ? "," : ", ", indent >= 0 ? 1 : 2));
            if (indent >= 0) r = newline_indent(c, r, indent, depth + 1);
            if (!is_list) {
                size_t kl = strlen(v->c->keys[i]);
                value *k = sglc_ct_mk_str_m(c, v->c->keys[i], kl,
                                            v->c->tainted_keys ? sglc_ct_mask_all(c, kl) : NULL);
                r = concat(c, r, tojson(c, k, depth + 1, indent));
                r = concat(c, r, sglc_ct_mk_str(c, ": ", 2));
            }
            r = concat(c, r, tojson(c, v->c->items[i], depth + 1, indent));
        }
        if (indent >= 0 && v->c->n > 0) r = newline_indent(c, r, indent, depth);
        return concat(c, r, sglc_ct_mk_str(c, is_list ? "]" : "}", 1));
    }
    default: sglc_ct_fail(c, "cannot serialize a %s", sglc_ct_type_name(v->t));
    }
}

/* tojson's arguments: indent=N (or N positionally); the others transformers takes
 * (ensure_ascii, separators, sort_keys) are refused rather than ignored */
static int tojson_indent(ctx *c, scope *s, node *nd) {
    int indent = -1;
    for (int i = 0; i < nd->nkids; i++) {
        node *k = nd->kids[i];
        if (k->k == N_LIT && k->negate) {
            if (strcmp(k->lit->s, "indent") != 0)
                sglc_ct_fail(c, "tojson: unsupported argument '%s'", k->lit->s);
            k = nd->kids[++i];
        } else if (i > 0) {
            sglc_ct_fail(c, "tojson: too many arguments");
        }
        value *a = eval(c, s, k);
        if (a->t == V_NONE) continue;
        if (a->t != V_INT || a->i < 0 || a->i > 16) sglc_ct_fail(c, "tojson: indent must be 0-16");
        indent = (int)a->i;
    }
    return indent;
}

static value *apply_filter(ctx *c, scope *s, node *nd) {
    value *v = eval(c, s, nd->a);
    const char *f = nd->s;
    if (strcmp(f, "trim") == 0) {
        value fn = {.t = V_FUNC, .fname = "strip", .self = sglc_ct_to_str(c, v)};
        return call_method(c, &fn, NULL, 0);
    }
    if (strcmp(f, "upper") == 0 || strcmp(f, "lower") == 0 || strcmp(f, "capitalize") == 0 ||
        strcmp(f, "title") == 0) {
        value fn = {.t = V_FUNC, .fname = f, .self = sglc_ct_to_str(c, v)};
        return call_method(c, &fn, NULL, 0);
    }
    if (strcmp(f, "length") == 0 || strcmp(f, "count") == 0) {
        if (v->t == V_STR) { /* code points, as Python's len() */
            long long n = 0;
            for (size_t i = 0; i < v->n; i++)
                n += ((unsigned char)v->s[i] & 0xC0) != 0x80;
            return sglc_ct_mk_int(c, n);
        }
        if (v->t == V_LIST || v->t == V_DICT) return sglc_ct_mk_int(c, v->c->n);
        sglc_ct_fail(c, "length of a %s", sglc_ct_type_name(v->t));
    }
    if (strcmp(f, "string") == 0) return sglc_ct_to_str(c, v);
    if (strcmp(f, "tojson") == 0) return tojson(c, v, 0, tojson_indent(c, s, nd));
    if (strcmp(f, "default") == 0 || strcmp(f, "d") == 0) {
        if (v->t != V_UNDEF) return v;
        return nd->nkids > 0 ? eval(c, s, nd->kids[0]) : sglc_ct_mk_str(c, "", 0);
    }
    if (strcmp(f, "first") == 0 || strcmp(f, "last") == 0) {
        if (v->t != V_LIST) sglc_ct_fail(c, "%s of a %s", f, sglc_ct_type_name(v->t));
        if (v->c->n == 0) return &sglc_ct_undef_v;
        return v->c->items[f[0] == 'f' ? 0 : v->c->n - 1];
    }
    if (strcmp(f, "join") == 0) {
        if (v->t != V_LIST) sglc_ct_fail(c, "join of a %s", sglc_ct_type_name(v->t));
        value *sep =
            nd->nkids > 0 ? sglc_ct_to_str(c, eval(c, s, nd->kids[0])) : sglc_ct_mk_str(c, "", 0);
        value *r = sglc_ct_mk_str(c, "", 0);
        for (int i = 0; i < v->c->n; i++) {
            if (i) r = concat(c, r, sep);
            r = concat(c, r, v->c->items[i]);
        }
        return r;
    }
    sglc_ct_fail(c, "unsupported filter '%s'", f);
}

static value *eval_call(ctx *c, scope *s, node *nd) {
    value *args[16];
    const char *kws[16];
    int nargs = 0;
    for (int i = 0; i < nd->nkids; i++) {
        node *k = nd->kids[i];
        const char *kw = NULL;
        if (k->k == N_LIT && k->negate) {
            kw = k->lit->s;
            k = nd->kids[++i];
        }
        if (nargs == 16) sglc_ct_fail(c, "too many call arguments");
        kws[nargs] = kw;
        args[nargs++] = eval(c, s, k);
    }
    if (nd->a->k == N_NAME && strcmp(nd->a->s, "raise_exception") == 0 &&
        lookup(s, "raise_exception")->t == V_UNDEF) {
        value *m = nargs > 0 ? sglc_ct_to_str(c, args[0]) : sglc_ct_mk_str(c, "error", 5);
        sglc_ct_fail(c, "%s", m->s);
    }
    if (nd->a->k == N_NAME && strcmp(nd->a->s, "namespace") == 0) {
        value *d = sglc_ct_mk_coll(c, V_DICT);
        for (int i = 0; i < nargs; i++)
            if (kws[i]) sglc_ct_dict_set(c, d, kws[i], args[i]);
        return d;
    }
    if (nd->a->k == N_NAME && strcmp(nd->a->s, "range") == 0) {
        long long lo = 0, hi = 0;
        if (nargs == 1 && args[0]->t == V_INT)
            hi = args[0]->i;
        else if (nargs == 2 && args[0]->t == V_INT && args[1]->t == V_INT)
            lo = args[0]->i, hi = args[1]->i;
        else
            sglc_ct_fail(c, "range() needs integers");
        if (hi - lo > CT_MAX_ITERS) sglc_ct_fail(c, "range() too large");
        value *l = sglc_ct_mk_coll(c, V_LIST);
        for (long long i = lo; i < hi; i++)
            sglc_ct_coll_push(c, l, NULL, sglc_ct_mk_int(c, i));
        return l;
    }
    value *f = eval(c, s, nd->a);
    if (f->t != V_FUNC) sglc_ct_fail(c, "calling a %s", sglc_ct_type_name(f->t));
    if (!f->self && strcmp(f->fname, "strftime_now") == 0) {
        /* transformers: datetime.now().strftime(format), local time */
        if (nargs != 1 || args[0]->t != V_STR || args[0]->n > 64 ||
            memchr(args[0]->s, 0, args[0]->n))
            sglc_ct_fail(c, "strftime_now() needs a short format string");
        char buf[256];
        time_t now = time(NULL);
        struct tm tmv;
        size_t k = localtime_r(&now, &tmv) ? strftime(buf, sizeof buf, args[0]->s, &tmv) : 0;
        return sglc_ct_mk_str(c, buf, k);
    }
    if (!f->self) sglc_ct_fail(c, "unsupported function '%s'", f->fname);
    return call_method(c, f, args, nargs);
}

static value *eval(ctx *c, scope *s, node *nd) {
    if (++c->depth > CT_MAX_DEPTH * 4) sglc_ct_fail(c, "chat template recursion limit exceeded");
    value *r = &sglc_ct_undef_v;
    switch (nd->k) {
    case N_LIT: r = nd->lit; break;
    case N_NAME: r = lookup(s, nd->s); break;
    case N_LIST:
        r = sglc_ct_mk_coll(c, V_LIST);
        for (int i = 0; i < nd->nkids; i++)
            sglc_ct_coll_push(c, r, NULL, eval(c, s, nd->kids[i]));
        break;
    case N_DICT:
        r = sglc_ct_mk_coll(c, V_DICT);
        for (int i = 0; i + 1 < nd->nkids; i += 2) {
            value *k = eval(c, s, nd->kids[i]);
            if (k->t != V_STR) sglc_ct_fail(c, "dict keys must be strings");
            sglc_ct_dict_set(c, r, k->s, eval(c, s, nd->kids[i + 1]));
        }
        break;
    case N_ATTR: r = get_attr(c, eval(c, s, nd->a), nd->s); break;
    case N_INDEX: r = get_item(c, eval(c, s, nd->a), eval(c, s, nd->b)); break;
    case N_SLICE: {
        value *o = eval(c, s, nd->a);
        long long len = o->t == V_LIST ? o->c->n : o->t == V_STR ? (long long)o->n : -1;
        if (len < 0) sglc_ct_fail(c, "slicing a %s", sglc_ct_type_name(o->t));
        value *lo = nd->b ? eval(c, s, nd->b) : NULL, *hi = nd->d ? eval(c, s, nd->d) : NULL;
        value *st = nd->kids[0] ? eval(c, s, nd->kids[0]) : NULL;
        if ((lo && lo->t != V_INT) || (hi && hi->t != V_INT) || (st && st->t != V_INT))
            sglc_ct_fail(c, "slice bounds must be integers");
        long long step = st ? st->i : 1;
        if (step != 1 && step != -1) sglc_ct_fail(c, "only slice steps 1 and -1 are supported");
        long long a, b;
        if (step == 1) {
            a = lo ? lo->i : 0;
            b = hi ? hi->i : len;
            if (a < 0) a += len;
            if (b < 0) b += len;
            if (a < 0) a = 0;
            if (b > len) b = len;
        } else {
            a = lo ? lo->i : len - 1;
            b = hi ? hi->i : -len - 1;
            if (a < 0) a += len;
            if (b < 0) b += len;
            if (a >= len) a = len - 1;
        }
        if (o->t == V_STR) {
            if (step == 1) {
                r = sglc_ct_mk_str_m(c, o->s + (a < b ? a : 0), a < b ? (size_t)(b - a) : 0,
                                     o->m && a < b ? o->m + a : NULL);
            } else {
                r = sglc_ct_mk_str(c, "", 0);
                for (long long i = a; i > b && i >= 0; i--)
                    r = concat(c, r, sglc_ct_mk_str_m(c, o->s + i, 1, o->m ? o->m + i : NULL));
            }
        } else {
            r = sglc_ct_mk_coll(c, V_LIST);
            if (step == 1)
                for (long long i = a; i < b; i++)
                    sglc_ct_coll_push(c, r, NULL, o->c->items[i]);
            else
                for (long long i = a; i > b && i >= 0; i--)
                    sglc_ct_coll_push(c, r, NULL, o->c->items[i]);
        }
        break;
    }
    case N_CALL: r = eval_call(c, s, nd); break;
    case N_FILTER: r = apply_filter(c, s, nd); break;
    case N_TEST: {
        value *v = eval(c, s, nd->a);
        int res;
        if (strcmp(nd->s, "defined") == 0)
            res = v->t != V_UNDEF;
        else if (strcmp(nd->s, "undefined") == 0)
            res = v->t == V_UNDEF;
        else if (strcmp(nd->s, "none") == 0)
            res = v->t == V_NONE;
        else if (strcmp(nd->s, "string") == 0)
            res = v->t == V_STR;
        else if (strcmp(nd->s, "mapping") == 0)
            res = v->t == V_DICT;
        else if (strcmp(nd->s, "iterable") == 0 || strcmp(nd->s, "sequence") == 0)
            res = v->t == V_LIST || v->t == V_STR || v->t == V_DICT;
        else if (strcmp(nd->s, "number") == 0 || strcmp(nd->s, "integer") == 0)
            res = v->t == V_INT;
        else if (strcmp(nd->s, "boolean") == 0)
            res = v->t == V_BOOL;
        else if (strcmp(nd->s, "true") == 0 || strcmp(nd->s, "false") == 0)
            res = v->t == V_BOOL && v->i == (nd->s[0] == 't'); /* Jinja: `is` True/False */
        else
            sglc_ct_fail(c, "unsupported test '%s'", nd->s);
        r = sglc_ct_mk_bool(c, nd->negate ? !res : res);
        break;
    }
    case N_UNARY: {
        value *v = eval(c, s, nd->a);
        if (nd->s[0] == 'n') {
            r = sglc_ct_mk_bool(c, !sglc_ct_truthy(v));
        } else {
            if (v->t != V_INT) sglc_ct_fail(c, "negating a %s", sglc_ct_type_name(v->t));
            r = sglc_ct_mk_int(c, -v->i);
        }
        break;
    }
    case N_BINARY: {
        const char *op = nd->s;
        if (strcmp(op, "and") == 0) {
            value *a = eval(c, s, nd->a);
            r = sglc_ct_truthy(a) ? eval(c, s, nd->b) : a;
            break;
        }
        if (strcmp(op, "or") == 0) {
            value *a = eval(c, s, nd->a);
            r = sglc_ct_truthy(a) ? a : eval(c, s, nd->b);
            break;
        }
        value *a = eval(c, s, nd->a), *b = eval(c, s, nd->b);
        if (strcmp(op, "~") == 0) {
            r = concat(c, a, b);
        } else if (strcmp(op, "==") == 0) {
            r = sglc_ct_mk_bool(c, val_eq(a, b));
        } else if (strcmp(op, "!=") == 0) {
            r = sglc_ct_mk_bool(c, !val_eq(a, b));
        } else if (strcmp(op, "in") == 0 || strcmp(op, "not in") == 0) {
            int found = 0;
            if (b->t == V_STR && a->t == V_STR)
                found = a->n == 0 || (a->n <= b->n && memmem(b->s, b->n, a->s, a->n) != NULL);
            else if (b->t == V_LIST)
                for (int i = 0; i < b->c->n && !found; i++)
                    found = val_eq(a, b->c->items[i]);
            else if (b->t == V_DICT && a->t == V_STR)
                found = sglc_ct_dict_get(b, a->s) != NULL;
            else if (b->t != V_UNDEF && b->t != V_NONE)
                sglc_ct_fail(c, "'in' on a %s", sglc_ct_type_name(b->t));
            r = sglc_ct_mk_bool(c, op[0] == 'i' ? found : !found);
        } else if (strcmp(op, "+") == 0 && a->t == V_STR && b->t == V_STR) {
            r = concat(c, a, b);
        } else if (strcmp(op, "+") == 0 && a->t == V_LIST && b->t == V_LIST) {
            r = sglc_ct_mk_coll(c, V_LIST);
            for (int i = 0; i < a->c->n; i++)
                sglc_ct_coll_push(c, r, NULL, a->c->items[i]);
            for (int i = 0; i < b->c->n; i++)
                sglc_ct_coll_push(c, r, NULL, b->c->items[i]);
        } else if ((a->t == V_INT || a->t == V_BOOL) && (b->t == V_INT || b->t == V_BOOL)) {
            long long x = a->i, y = b->i, z = 0;
            if (strcmp(op, "<") == 0) {
                r = sglc_ct_mk_bool(c, x < y);
                break;
            } else if (strcmp(op, ">") == 0) {
                r = sglc_ct_mk_bool(c, x > y);
                break;
            } else if (strcmp(op, "<=") == 0) {
                r = sglc_ct_mk_bool(c, x <= y);
                break;
            } else if (strcmp(op, ">=") == 0) {
                r = sglc_ct_mk_bool(c, x >= y);
                break;
            }
            if (strcmp(op, "+") == 0 && !__builtin_add_overflow(x, y, &z)) {
            } else if (strcmp(op, "-") == 0 && !__builtin_sub_overflow(x, y, &z)) {
            } else if (strcmp(op, "*") == 0 && !__builtin_mul_overflow(x, y, &z)) {
            } else if ((op[0] == '/' || op[0] == '%') && y != 0 && !(x == LLONG_MIN && y == -1)) {
                /* Python floors; "/" yields a float in Python, approximated by floor here */
                z = op[0] == '%' ? x % y : x / y;
                if (op[0] == '%' && z != 0 && ((z < 0) != (y < 0))) z += y;
                if (op[0] == '/' && (x % y != 0) && ((x < 0) != (y < 0))) z--;
            } else {
                sglc_ct_fail(c, "arithmetic error ('%s')", op);
            }
            r = sglc_ct_mk_int(c, z);
        } else if (a->t == V_STR && b->t == V_STR && (op[0] == '<' || op[0] == '>')) {
            size_t m = a->n < b->n ? a->n : b->n;
            int cmp = memcmp(a->s, b->s, m);
            if (cmp == 0) cmp = a->n < b->n ? -1 : a->n > b->n;
            int res = strcmp(op, "<") == 0    ? cmp < 0
                      : strcmp(op, ">") == 0  ? cmp > 0
                      : strcmp(op, "<=") == 0 ? cmp <= 0
                                              : cmp >= 0;
            r = sglc_ct_mk_bool(c, res);
        } else {
            sglc_ct_fail(c, "unsupported operand types for '%s': %s and %s", op,
                         sglc_ct_type_name(a->t), sglc_ct_type_name(b->t));
        }
        break;
    }
    case N_COND:
        if (sglc_ct_truthy(eval(c, s, nd->a)))
            r = eval(c, s, nd->b);
        else
            r = nd->d ? eval(c, s, nd->d) : &sglc_ct_undef_v;
        break;
    default: sglc_ct_fail(c, "bad expression node");
    }
    c->depth--;
    return r;
}

static void exec_stmt(ctx *c, scope *s, node *nd) {
    switch (nd->k) {
    case N_TEXT: sglc_ct_out_append(c, nd->s, nd->n, NULL); break;
    case N_OUTPUT: {
        value *v = eval(c, s, nd->a);
        if (v->t == V_LIST || v->t == V_DICT) v = tojson(c, v, 0, -1);
        v = sglc_ct_to_str(c, v);
        sglc_ct_out_append(c, v->s, v->n, v->m);
        break;
    }
    case N_IF:
        for (node *cur = nd; cur;) {
            if (cur->k != N_IF) {
                sglc_ct_exec_body(c, s, cur);
                break;
            }
            if (sglc_ct_truthy(eval(c, s, cur->a))) {
                sglc_ct_exec_body(c, s, cur->b);
                break;
            }
            cur = cur->d;
        }
        break;
    case N_FOR: {
        value *seq = eval(c, s, nd->a);
        if (seq->t == V_DICT) {
            value fn = {.t = V_FUNC, .fname = nd->var2 ? "items" : "keys", .self = seq};
            seq = call_method(c, &fn, NULL, 0);
        }
        if (seq->t == V_UNDEF || seq->t == V_NONE) seq = sglc_ct_mk_coll(c, V_LIST);
        if (seq->t != V_LIST) sglc_ct_fail(c, "cannot loop over a %s", sglc_ct_type_name(seq->t));
        int n = seq->c->n;
        if (n == 0) {
            if (nd->d) sglc_ct_exec_body(c, s, nd->d);
            break;
        }
        /* the body's `set`s stay in the loop scope, as in Jinja */
        scope inner = {.up = s, .vars = sglc_ct_mk_coll(c, V_DICT)};
        for (int i = 0; i < n; i++) {
            if (++c->iters > CT_MAX_ITERS) sglc_ct_fail(c, "chat template loop limit exceeded");
            inner.vars = sglc_ct_mk_coll(c, V_DICT);
            value *item = seq->c->items[i];
            if (nd->var2) {
                if (item->t != V_LIST || item->c->n != 2)
                    sglc_ct_fail(c, "cannot unpack a loop item");
                sglc_ct_dict_set(c, inner.vars, nd->s, item->c->items[0]);
                sglc_ct_dict_set(c, inner.vars, nd->var2, item->c->items[1]);
            } else {
                sglc_ct_dict_set(c, inner.vars, nd->s, item);
            }
            value *loop = sglc_ct_mk_coll(c, V_DICT);
            sglc_ct_dict_set(c, loop, "index0", sglc_ct_mk_int(c, i));
            sglc_ct_dict_set(c, loop, "index", sglc_ct_mk_int(c, i + 1));
            sglc_ct_dict_set(c, loop, "revindex0", sglc_ct_mk_int(c, n - 1 - i));
            sglc_ct_dict_set(c, loop, "revindex", sglc_ct_mk_int(c, n - i));
            sglc_ct_dict_set(c, loop, "first", sglc_ct_mk_bool(c, i == 0));
            sglc_ct_dict_set(c, loop, "last", sglc_ct_mk_bool(c, i == n - 1));
            sglc_ct_dict_set(c, loop, "length", sglc_ct_mk_int(c, n));
            sglc_ct_dict_set(c, loop, "previtem", i > 0 ? seq->c->items[i - 1] : &sglc_ct_undef_v);
            sglc_ct_dict_set(c, loop, "nextitem",
                             i + 1 < n ? seq->c->items[i + 1] : &sglc_ct_undef_v);
            sglc_ct_dict_set(c, inner.vars, "loop", loop);
            sglc_ct_exec_body(c, &inner, nd->b);
        }
        break;
    }
    case N_SET: {
        value *v = eval(c, s, nd->a);
        if (nd->var2) {
            value *ns = lookup(s, nd->s);
            if (ns->t != V_DICT) sglc_ct_fail(c, "'%s' is not a namespace", nd->s);
            sglc_ct_dict_set(c, ns, nd->var2, v);
        } else {
            sglc_ct_dict_set(c, s->vars, nd->s, v);
        }
        break;
    }
    default: sglc_ct_fail(c, "bad statement node");
    }
}

void sglc_ct_exec_body(ctx *c, scope *s, node *body) {
    if (++c->depth > CT_MAX_DEPTH * 4) sglc_ct_fail(c, "chat template recursion limit exceeded");
    for (int i = 0; i < body->nkids; i++)
        exec_stmt(c, s, body->kids[i]);
    c->depth--;
}
