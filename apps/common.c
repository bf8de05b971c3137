#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"

int wh_app_fail(const wh_ctx *ctx)
{
    wh_app_print_warnings(ctx);
    fprintf(stderr, "whittle: error: %s\n", ctx->msg[0] ? ctx->msg : wh_status_name(ctx->status));
    return 1;
}

void wh_app_print_warnings(const wh_ctx *ctx)
{
    for (int i = 0; i < ctx->n_warn; i++) fprintf(stderr, "whittle: warning: %s\n", ctx->warn[i]);
    if (ctx->n_warn_total > ctx->n_warn)
        fprintf(stderr, "whittle: warning: ... and %d more warnings\n", ctx->n_warn_total - ctx->n_warn);
}

int wh_app_int(const char *flag, const char *val, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (end == val || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "whittle: error: %s expects an integer in [%d, %d], got '%s'\n", flag, lo, hi, val);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int wh_app_double(const char *flag, const char *val, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (end == val || *end || errno || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "whittle: error: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi, val);
        return -1;
    }
    *out = v;
    return 0;
}

int wh_app_parse_size(const char *s, int *w, int *h)
{
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10), b = a;
    if (end == s || errno) return -1;
    if (*end == 'x' || *end == 'X') {
        const char *p = end + 1;
        b = strtol(p, &end, 10);
        if (end == p || errno) return -1;
    }
    if (*end || a < 1 || b < 1 || a > 16384 || b > 16384) return -1;
    *w = (int)a;
    *h = (int)b;
    return 0;
}

const char *wh_app_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "whittle: error: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

void wh_app_threads(wh_ctx *ctx, int threads)
{
    wh_ctx_set_threads(ctx, threads);
}
