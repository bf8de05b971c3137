#include "framework/core/json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "framework/core/cfg.h"

/* One character of a JSON string literal, escaped as JSON requires, into
 * out; returns its length (1, 2 or 6 bytes). */
static int wh__escape_char(unsigned char c, char out[8])
{
    switch (c) {
    case '"': return snprintf(out, 8, "\\\"");
    case '\\': return snprintf(out, 8, "\\\\");
    case '\n': return snprintf(out, 8, "\\n");
    case '\t': return snprintf(out, 8, "\\t");
    case '\r': return snprintf(out, 8, "\\r");
    default:
        if (c < 0x20) return snprintf(out, 8, "\\u%04x", c);
        out[0] = (char)c, out[1] = 0;
        return 1;
    }
}

void wh_json_str(FILE *f, const char *s)
{
    char one[8];
    fputc('"', f);
    for (; s && *s; s++) fwrite(one, 1, (size_t)wh__escape_char((unsigned char)*s, one), f);
    fputc('"', f);
}

const char *wh_json_escape(char *buf, size_t n, const char *s)
{
    if (n == 0) return buf;
    size_t k = 0;
    for (; s && *s; s++) {
        char one[8];
        const int m = wh__escape_char((unsigned char)*s, one);
        if (k + (size_t)m >= n) break; /* whole escapes only */
        memcpy(buf + k, one, (size_t)m);
        k += (size_t)m;
    }
    buf[k] = 0;
    return buf;
}

void wh_json_num(FILE *f, const char *fmt, double v)
{
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs("null", f);
}

wh_status wh_json_parse(const char *text, const char *what, wh_json **out, wh_ctx *ctx)
{
    *out = NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        /* where it stopped: line and column, counted from 1 */
        int line = 1, col = 1;
        const char *stop = end ? end : text;
        for (const char *p = text; p < stop && *p; p++) {
            if (*p == '\n') line++, col = 1;
            else col++;
        }
        return wh_error(ctx, WH_ERR_PARSE, "%s: not valid JSON (line %d, column %d)", what, line, col);
    }
    *out = (wh_json *)j;
    return WH_OK;
}

wh_status wh_json_read_file(const char *path, wh_json **out, wh_ctx *ctx)
{
    char *text = NULL;
    *out = NULL;
    WH_TRY(wh_read_text_file(path, &text, ctx));
    const wh_status st = wh_json_parse(text, path, out, ctx);
    free(text);
    return st;
}

void wh_json_free(wh_json *j) { cJSON_Delete((cJSON *)j); }

static const cJSON *wh__member(const wh_json *j, const char *key)
{
    return j && cJSON_IsObject((const cJSON *)j) ? cJSON_GetObjectItemCaseSensitive((const cJSON *)j, key) : NULL;
}

double wh_json_get_num(const wh_json *j, const char *key)
{
    const cJSON *m = wh__member(j, key);
    return cJSON_IsNumber(m) ? m->valuedouble : NAN;
}

const char *wh_json_get_str(const wh_json *j, const char *key)
{
    const cJSON *m = wh__member(j, key);
    return cJSON_IsString(m) ? m->valuestring : NULL;
}

int wh_json_has(const wh_json *j, const char *key) { return wh__member(j, key) != NULL; }

double wh_json_line_num(const char *line, const char *key)
{
    cJSON *j = cJSON_Parse(line);
    const double v = wh_json_get_num((const wh_json *)j, key);
    cJSON_Delete(j);
    return v;
}
