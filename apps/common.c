#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "apps.h"
#include "framework/io/checkpoint.h"
#include "framework/data/synth.h"

int wh_app_fail(const wh_ctx *ctx)
{
    wh_app_print_warnings(ctx);
    fprintf(stderr, "whittle: error: %s\n", ctx->msg[0] ? ctx->msg : wh_status_name(ctx->status));
    return ctx->status == WH_ERR_NUMERIC ? WH_APP_EXIT_NUMERIC : 1;
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

int wh_app_double_list(const char *flag, const char *val, double lo, double hi, double *out, int max, int *n)
{
    *n = 0;
    for (const char *p = val; *p;) {
        char *end;
        errno = 0;
        const double v = strtod(p, &end);
        if (end == p || errno || !isfinite(v) || v < lo || v > hi || (*end && *end != ',') || *n == max) {
            fprintf(stderr, "whittle: error: %s expects up to %d numbers in [%g, %g] separated by commas, got '%s'\n",
                    flag, max, lo, hi, val);
            return -1;
        }
        out[(*n)++] = v;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) {
        fprintf(stderr, "whittle: error: %s expects a list of numbers, got '%s'\n", flag, val);
        return -1;
    }
    return 0;
}

int wh_app_int_list(const char *flag, const char *val, int lo, int hi, int *out, int max, int *n)
{
    double d[1024];
    if (max > 1024) max = 1024;
    if (wh_app_double_list(flag, val, lo, hi, d, max, n)) return -1;
    for (int k = 0; k < *n; k++) {
        if (d[k] != (int)d[k]) {
            fprintf(stderr, "whittle: error: %s expects integers, got '%s'\n", flag, val);
            return -1;
        }
        out[k] = (int)d[k];
    }
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

int wh_app_ensure_default_data(const char *path)
{
    struct stat st;
    if (strcmp(path, WH_DEFAULT_DATA) != 0 || stat(path, &st) == 0) return 0;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_synth_opts o;
    wh_synth_opts_default(&o);
    if (mkdir("runs", 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "whittle: error: runs: cannot create: %s\n", strerror(errno));
        return 1;
    }
    fprintf(stderr, "whittle: generating the embedded synthetic dataset in %s (%d images, %d classes)\n", path,
            o.images, o.classes);
    if (wh_synth_generate(&o, path, &ctx) != WH_OK) return wh_app_fail(&ctx);
    return 0;
}

int wh_app_ckpt_cfg(const char *path, char **cfg_text, wh_ctx *ctx)
{
    *cfg_text = NULL;
    wh_ckpt_reader *r = NULL;
    if (wh_ckpt_open(path, &r, ctx) != WH_OK || wh_ckpt_get_str(r, "cfg", cfg_text, ctx) != WH_OK) {
        wh_ckpt_close(r);
        return -1;
    }
    wh_ckpt_close(r);
    return 0;
}
