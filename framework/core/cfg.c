#include "framework/core/cfg.h"

#include "framework/core/fileio.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *wh__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void wh_cfg_free(wh_cfg *cfg)
{
    if (!cfg) return;
    for (int i = 0; i < cfg->n_sec; i++) {
        wh_cfg_section *s = &cfg->sec[i];
        for (int k = 0; k < s->n_kv; k++) {
            free(s->kv[k].key);
            free(s->kv[k].val);
        }
        free(s->kv);
        free(s->type);
    }
    free(cfg->sec);
    free(cfg->file);
    free(cfg);
}

/* Drops all whitespace, as darknet's strip() does, and a trailing comment. */
static void wh__clean_line(char *line)
{
    char *w = line;
    for (char *r = line; *r; r++) {
        if (*r == ' ' || *r == '\t' || *r == '\r' || *r == '\n' || *r == '\v' || *r == '\f')
            continue;
        *w++ = *r;
    }
    *w = 0;
    if (line[0] == '#' || line[0] == ';') return; /* whole-line comment: caller skips it */
    char *c = strpbrk(line, "#;");
    if (c) *c = 0;
}

static wh_status wh__add_section(wh_cfg *cfg, const char *type, int line, wh_ctx *ctx)
{
    if (cfg->n_sec == cfg->cap_sec) {
        int cap = cfg->cap_sec ? 2 * cfg->cap_sec : 64;
        wh_cfg_section *p = realloc(cfg->sec, (size_t)cap * sizeof(*p));
        if (!p) return wh_error(ctx, WH_ERR_NOMEM, "%s:%d: out of memory", cfg->file, line);
        cfg->sec = p;
        cfg->cap_sec = cap;
    }
    wh_cfg_section *s = &cfg->sec[cfg->n_sec];
    memset(s, 0, sizeof(*s));
    s->type = wh__strdup(type);
    if (!s->type) return wh_error(ctx, WH_ERR_NOMEM, "%s:%d: out of memory", cfg->file, line);
    s->file = cfg->file;
    s->line = line;
    cfg->n_sec++;
    return WH_OK;
}

static wh_status wh__add_kv(wh_cfg *cfg, const char *key, const char *val, int line, wh_ctx *ctx)
{
    wh_cfg_section *s = &cfg->sec[cfg->n_sec - 1];
    for (int k = 0; k < s->n_kv; k++)
        if (strcmp(s->kv[k].key, key) == 0)
            return wh_error(ctx, WH_ERR_PARSE,
                            "%s:%d: key '%s' given twice in [%s] (first at line %d)", cfg->file,
                            line, key, s->type, s->kv[k].line);
    if (s->n_kv == s->cap_kv) {
        int cap = s->cap_kv ? 2 * s->cap_kv : 8;
        wh_cfg_kv *p = realloc(s->kv, (size_t)cap * sizeof(*p));
        if (!p) return wh_error(ctx, WH_ERR_NOMEM, "%s:%d: out of memory", cfg->file, line);
        s->kv = p;
        s->cap_kv = cap;
    }
    wh_cfg_kv *kv = &s->kv[s->n_kv];
    kv->key = wh__strdup(key);
    kv->val = wh__strdup(val);
    kv->line = line;
    kv->used = 0;
    if (!kv->key || !kv->val) {
        free(kv->key);
        free(kv->val);
        return wh_error(ctx, WH_ERR_NOMEM, "%s:%d: out of memory", cfg->file, line);
    }
    s->n_kv++;
    return WH_OK;
}

static wh_status wh__parse_line(wh_cfg *cfg, char *line, int lineno, wh_ctx *ctx)
{
    wh__clean_line(line);
    if (line[0] == 0 || line[0] == '#' || line[0] == ';') return WH_OK;
    if (line[0] == '[') {
        size_t n = strlen(line);
        if (n < 3 || line[n - 1] != ']')
            return wh_error(ctx, WH_ERR_PARSE, "%s:%d: malformed section header '%s' (expected [name])",
                            cfg->file, lineno, line);
        line[n - 1] = 0;
        for (char *p = line + 1; *p; p++)
            if (*p == '[' || *p == ']' || *p == '=')
                return wh_error(ctx, WH_ERR_PARSE, "%s:%d: malformed section header '[%s]'",
                                cfg->file, lineno, line + 1);
        return wh__add_section(cfg, line + 1, lineno, ctx);
    }
    char *eq = strchr(line, '=');
    if (!eq)
        return wh_error(ctx, WH_ERR_PARSE,
                        "%s:%d: expected '[section]' or 'key=value', got '%s'", cfg->file, lineno,
                        line);
    *eq = 0;
    if (line[0] == 0)
        return wh_error(ctx, WH_ERR_PARSE, "%s:%d: empty key before '='", cfg->file, lineno);
    if (cfg->n_sec == 0)
        return wh_error(ctx, WH_ERR_PARSE, "%s:%d: key '%s' before the first [section]",
                        cfg->file, lineno, line);
    return wh__add_kv(cfg, line, eq + 1, lineno, ctx);
}

wh_status wh_cfg_parse_string(const char *text, const char *name, wh_cfg **out, wh_ctx *ctx)
{
    *out = NULL;
    if (!text) return wh_error(ctx, WH_ERR_ARG, "cfg text is NULL");
    wh_cfg *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    cfg->file = wh__strdup(name ? name : "<string>");
    char *buf = wh__strdup(text);
    if (!cfg->file || !buf) {
        free(buf);
        wh_cfg_free(cfg);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    wh_status st = WH_OK;
    int lineno = 1;
    for (char *p = buf; st == WH_OK && *p; lineno++) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        st = wh__parse_line(cfg, p, lineno, ctx);
        if (!nl) break;
        p = nl + 1;
    }
    free(buf);
    if (st == WH_OK && cfg->n_sec == 0)
        st = wh_error(ctx, WH_ERR_PARSE, "%s: no [section] found", cfg->file);
    if (st != WH_OK) {
        wh_cfg_free(cfg);
        return st;
    }
    *out = cfg;
    return WH_OK;
}

wh_status wh_read_text_file(const char *path, char **out, wh_ctx *ctx)
{
    return wh_file_read_text(path, WH_TEXT_MAX_BYTES, "cfg or text", out, ctx);
}

wh_status wh_cfg_parse_file(const char *path, wh_cfg **out, wh_ctx *ctx)
{
    *out = NULL;
    char *text;
    WH_TRY(wh_read_text_file(path, &text, ctx));
    wh_status st = wh_cfg_parse_string(text, path, out, ctx);
    free(text);
    return st;
}

/* The key of a "key=value" line with whitespace dropped, into buf. */
static void wh__line_key(const char *line, size_t len, char *buf, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < len && line[i] != '=' && k + 1 < cap; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') buf[k++] = line[i];
    buf[k] = 0;
}

/* section != NULL: the first [section]; else the layer-th section after the
 * first one ([net]). */
static wh_status wh__text_set(const char *text, const char *section, int layer, const char *key, const char *value,
                              char **out, wh_ctx *ctx)
{
    *out = NULL;
    size_t tl = strlen(text), kl = strlen(key), vl = strlen(value);
    char *res = malloc(tl + kl + vl + 4);
    if (!res) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    size_t w = 0;
    int in_sec = 0, done = 0, seen_sec = 0, n_headers = 0;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char head[128];
        wh__line_key(p, len, head, sizeof(head));
        int is_header = head[0] == '[';
        if (is_header) {
            char name[128];
            snprintf(name, sizeof(name), "[%s]", section ? section : "");
            in_sec = !seen_sec && (section ? strcmp(head, name) == 0 : n_headers == layer + 1);
            if (in_sec) seen_sec = 1;
            n_headers++;
        }
        int replace = in_sec && !done && !is_header && memchr(p, '=', len) && strcmp(head, key) == 0;
        if (replace) {
            w += (size_t)sprintf(res + w, "%s=%s", key, value);
            done = 1;
        } else {
            memcpy(res + w, p, len);
            w += len;
        }
        if (nl) res[w++] = '\n';
        if (is_header && in_sec && !done) {
            /* Look ahead: is the key set later in this section? If not, add it now. */
            int later = 0;
            for (const char *q = nl ? nl + 1 : p + len; *q;) {
                const char *qn = strchr(q, '\n');
                size_t ql = qn ? (size_t)(qn - q) : strlen(q);
                char qk[128];
                wh__line_key(q, ql, qk, sizeof(qk));
                if (qk[0] == '[') break;
                if (memchr(q, '=', ql) && strcmp(qk, key) == 0) later = 1;
                if (!qn) break;
                q = qn + 1;
            }
            if (!later) {
                if (!nl) res[w++] = '\n';
                w += (size_t)sprintf(res + w, "%s=%s\n", key, value);
                done = 1;
            }
        }
        if (!nl) break;
        p = nl + 1;
    }
    res[w] = 0;
    if (!seen_sec) {
        free(res);
        if (!section) return wh_error(ctx, WH_ERR_CFG, "no layer %d to set '%s' in", layer, key);
        return wh_error(ctx, WH_ERR_CFG, "no [%s] section to set '%s' in", section, key);
    }
    *out = res;
    return WH_OK;
}

wh_status wh_cfg_text_set(const char *text, const char *section, const char *key, const char *value,
                          char **out, wh_ctx *ctx)
{
    return wh__text_set(text, section, 0, key, value, out, ctx);
}

wh_status wh_cfg_text_set_layer(const char *text, int layer, const char *key, const char *value, char **out,
                                wh_ctx *ctx)
{
    if (layer < 0) return wh_error(ctx, WH_ERR_ARG, "no layer %d to set '%s' in", layer, key);
    return wh__text_set(text, NULL, layer, key, value, out, ctx);
}

wh_cfg_kv *wh_cfg_find(wh_cfg_section *s, const char *key)
{
    for (int k = 0; k < s->n_kv; k++)
        if (strcmp(s->kv[k].key, key) == 0) {
            s->kv[k].used = 1;
            return &s->kv[k];
        }
    return NULL;
}

int wh_cfg_has(wh_cfg_section *s, const char *key)
{
    return wh_cfg_find(s, key) != NULL;
}

static wh_status wh__parse_long(const wh_cfg_section *s, const wh_cfg_kv *kv, const char *txt,
                                long *v, wh_ctx *ctx)
{
    char *end;
    errno = 0;
    *v = strtol(txt, &end, 10);
    if (end == txt || (*end && *end != ',') || errno == ERANGE || *v < INT_MIN || *v > INT_MAX)
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] key '%s': '%s' is not an integer", s->file,
                        kv->line, s->type, kv->key, kv->val);
    return WH_OK;
}

static wh_status wh__parse_double(const wh_cfg_section *s, const wh_cfg_kv *kv, const char *txt,
                                  double *v, wh_ctx *ctx)
{
    char *end;
    errno = 0;
    *v = strtod(txt, &end);
    if (end == txt || (*end && *end != ',') || errno == ERANGE || !isfinite((float)*v))
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] key '%s': '%s' is not a number", s->file,
                        kv->line, s->type, kv->key, kv->val);
    return WH_OK;
}

static wh_status wh__get_int(wh_cfg_section *s, const char *key, int def, int lo, int hi,
                             int *out, int required, wh_ctx *ctx)
{
    wh_cfg_kv *kv = wh_cfg_find(s, key);
    if (!kv) {
        if (required)
            return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] requires key '%s'", s->file, s->line,
                            s->type, key);
        *out = def;
        return WH_OK;
    }
    long v;
    WH_TRY(wh__parse_long(s, kv, kv->val, &v, ctx));
    if (strchr(kv->val, ','))
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] key '%s': expected one integer, got '%s'",
                        s->file, kv->line, s->type, key, kv->val);
    if (v < lo || v > hi)
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] key '%s' = %ld is out of range [%d, %d]",
                        s->file, kv->line, s->type, key, v, lo, hi);
    *out = (int)v;
    return WH_OK;
}

wh_status wh_cfg_int(wh_cfg_section *s, const char *key, int def, int lo, int hi, int *out,
                     wh_ctx *ctx)
{
    return wh__get_int(s, key, def, lo, hi, out, 0, ctx);
}

wh_status wh_cfg_int_req(wh_cfg_section *s, const char *key, int lo, int hi, int *out,
                         wh_ctx *ctx)
{
    return wh__get_int(s, key, 0, lo, hi, out, 1, ctx);
}

wh_status wh_cfg_float(wh_cfg_section *s, const char *key, float def, float lo, float hi,
                       float *out, wh_ctx *ctx)
{
    wh_cfg_kv *kv = wh_cfg_find(s, key);
    if (!kv) {
        *out = def;
        return WH_OK;
    }
    double v;
    WH_TRY(wh__parse_double(s, kv, kv->val, &v, ctx));
    if (strchr(kv->val, ','))
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] key '%s': expected one number, got '%s'",
                        s->file, kv->line, s->type, key, kv->val);
    if (v < lo || v > hi)
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] key '%s' = %g is out of range [%g, %g]",
                        s->file, kv->line, s->type, key, v, (double)lo, (double)hi);
    *out = (float)v;
    return WH_OK;
}

const char *wh_cfg_str(wh_cfg_section *s, const char *key, const char *def)
{
    wh_cfg_kv *kv = wh_cfg_find(s, key);
    return kv ? kv->val : def;
}

/* Walks "a,b,c"; an empty item ("1,,2" or a trailing comma) is an error. */
#define WH__LIST_BODY(PARSE, TYPE, CAST)                                                   \
    wh_cfg_kv *kv = wh_cfg_find(s, key);                                                   \
    *n = 0;                                                                                \
    if (!kv) return WH_OK;                                                                 \
    const char *p = kv->val;                                                               \
    while (*p) {                                                                           \
        if (*n >= max)                                                                     \
            return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] key '%s': more than %d values",  \
                            s->file, kv->line, s->type, key, max);                         \
        TYPE v;                                                                            \
        WH_TRY(PARSE(s, kv, p, &v, ctx));                                                  \
        out[(*n)++] = CAST v;                                                              \
        const char *c = strchr(p, ',');                                                    \
        if (!c) break;                                                                     \
        p = c + 1;                                                                         \
        if (!*p)                                                                           \
            return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] key '%s': trailing comma in '%s'", \
                            s->file, kv->line, s->type, key, kv->val);                     \
    }                                                                                      \
    return WH_OK;

wh_status wh_cfg_ints(wh_cfg_section *s, const char *key, int *out, int max, int *n,
                      wh_ctx *ctx)
{
    WH__LIST_BODY(wh__parse_long, long, (int))
}

wh_status wh_cfg_floats(wh_cfg_section *s, const char *key, float *out, int max, int *n,
                        wh_ctx *ctx)
{
    WH__LIST_BODY(wh__parse_double, double, (float))
}

wh_status wh_cfg_choice(wh_cfg_section *s, const char *key, const char *const *choices,
                        int def_idx, int *idx, wh_ctx *ctx)
{
    wh_cfg_kv *kv = wh_cfg_find(s, key);
    if (!kv) {
        *idx = def_idx;
        return WH_OK;
    }
    for (int i = 0; choices[i]; i++)
        if (strcmp(kv->val, choices[i]) == 0) {
            *idx = i;
            return WH_OK;
        }
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; choices[i] && used + 2 < sizeof(list); i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
                                 choices[i]);
    return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] key '%s': unknown value '%s' (known: %s)",
                    s->file, kv->line, s->type, key, kv->val, list);
}

void wh_cfg_warn_unused(const wh_cfg_section *s, wh_ctx *ctx)
{
    for (int k = 0; k < s->n_kv; k++)
        if (!s->kv[k].used)
            wh_warn(ctx, "%s:%d: [%s] unknown key '%s' ignored", s->file, s->kv[k].line, s->type,
                    s->kv[k].key);
}
