/* The pipeline's charts (apps/pipeline.h): loss curves of every training
 * stage, |gamma| histograms before and after sparse training, channels per
 * layer before and after pruning. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "framework/io/checkpoint.h"
#include "framework/core/json.h"
#include "framework/plot/plot.h"
#include "layers/layer.h"
#include "pruning/sparsity.h"

/* The loss per iteration of dir/train.jsonl, smoothed over a window of
 * about n/50 iterations, shifted by x0. */
static int wh__loss_series(const char *dir, float x0, float **x, float **y)
{
    char path[4096], line[1024];
    *x = *y = NULL;
    if (wh_pl_path(path, sizeof(path), dir, "train.jsonl")) return 0;
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    int n = 0, cap = 0;
    float *it = NULL, *loss = NULL;
    while (fgets(line, sizeof(line), fp)) {
        const double i = wh_json_line_num(line, "iteration"), l = wh_json_line_num(line, "loss");
        if (!isfinite(i) || !isfinite(l)) continue; /* evaluation records have no loss */
        if (n == cap) {
            cap = cap ? 2 * cap : 512;
            float *t1 = realloc(it, (size_t)cap * sizeof(float)), *t2 = realloc(loss, (size_t)cap * sizeof(float));
            if (t1) it = t1;
            if (t2) loss = t2;
            if (!t1 || !t2) break;
        }
        it[n] = x0 + (float)i;
        loss[n] = (float)l;
        n++;
    }
    fclose(fp);
    const int win = n / 50 > 1 ? n / 50 : 1;
    float *sm = n > 0 ? malloc((size_t)n * sizeof(float)) : NULL;
    if (!sm) {
        free(it);
        free(loss);
        return 0;
    }
    double acc = 0;
    for (int i = 0; i < n; i++) {
        acc += loss[i];
        if (i >= win) acc -= loss[i - win];
        sm[i] = (float)(acc / (i + 1 < win ? i + 1 : win));
    }
    free(loss);
    *x = it;
    *y = sm;
    return n;
}

int wh_pl_chart_losses(const char *path, const char *const *dirs, const char *const *names, const float *x0, int n)
{
    wh_series s[8];
    float *xs[8] = {0}, *ys[8] = {0};
    int k = 0;
    for (int i = 0; i < n && k < 8; i++) {
        const int m = wh__loss_series(dirs[i], x0[i], &xs[k], &ys[k]);
        if (m <= 0) continue;
        s[k] = (wh_series){.name = names[i], .n = m, .x = xs[k], .y = ys[k]};
        k++;
    }
    const wh_lines c = {.series = s,
                        .n_series = k,
                        .title = "TRAINING LOSS PER STAGE",
                        .x_label = "ITERATION",
                        .y_label = "LOSS",
                        .clip_p90 = 1};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const wh_status st = wh_lines_save(&c, path, &ctx);
    for (int i = 0; i < k; i++) free(xs[i]), free(ys[i]);
    return st == WH_OK ? 0 : wh_app_fail(&ctx);
}

/* The |gamma| histogram of a checkpoint's prunable channels. */
static wh_status wh__hist(const char *ckpt, float *hist, wh_ctx *ctx)
{
    wh_net *net = NULL;
    const wh_net_opts o = {.batch = 1};
    WH_TRY(wh_ckpt_build_net(ckpt, &o, &net, NULL, ctx));
    wh_prunable p;
    wh_status st = wh_prunable_find(net, NULL, 0, &p, ctx);
    if (st == WH_OK) {
        float *g = malloc((size_t)(p.n_channels > 0 ? p.n_channels : 1) * sizeof(float));
        if (g) {
            wh_prunable_absgamma(net, &p, g);
            wh_gamma_stats gs;
            wh_gamma_stats_compute(g, p.n_channels, &gs);
            memcpy(hist, gs.hist, sizeof(gs.hist));
        } else {
            st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        }
        free(g);
        wh_prunable_free(&p);
    }
    wh_net_destroy(net);
    return st;
}

int wh_pl_chart_gamma(const char *path, const char *before, const char *after, float it_before, float it_after)
{
    float rows[2 * WH_GAMMA_BINS];
    const float its[2] = {it_before, it_after};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    if (wh__hist(before, rows, &ctx) != WH_OK || wh__hist(after, rows + WH_GAMMA_BINS, &ctx) != WH_OK ||
        wh_hist_chart_save(path, rows, its, 2, WH_GAMMA_BINS, (float)WH_GAMMA_LOG_LO, (float)WH_GAMMA_LOG_HI,
                           "BN |GAMMA| BEFORE (BLUE) AND AFTER (RED) SPARSE TRAINING", "LOG10 |GAMMA|", &ctx) != WH_OK)
        return wh_app_fail(&ctx);
    return 0;
}

int wh_pl_chart_channels(const char *path, const char *before, const char *after)
{
    wh_net *a = NULL, *b = NULL;
    const wh_net_opts o = {.batch = 1};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_status st = wh_ckpt_build_net(before, &o, &a, NULL, &ctx);
    if (st == WH_OK) st = wh_ckpt_build_net(after, &o, &b, NULL, &ctx);
    if (st == WH_OK && a->n_layers != b->n_layers)
        st = wh_error(&ctx, WH_ERR_ARG, "%s and %s have different layer counts", before, after);
    float *x = NULL, *ya = NULL, *yb = NULL;
    int n = 0;
    if (st == WH_OK) {
        x = malloc((size_t)a->n_layers * sizeof(float));
        ya = malloc((size_t)a->n_layers * sizeof(float));
        yb = malloc((size_t)a->n_layers * sizeof(float));
        if (!x || !ya || !yb) st = wh_error(&ctx, WH_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; st == WH_OK && i < a->n_layers; i++) {
        if (a->layers[i].ops->flow != WH_FLOW_NEW) continue; /* the layers that make channels */
        x[n] = (float)i;
        ya[n] = (float)a->layers[i].out_shape.c;
        yb[n] = (float)b->layers[i].out_shape.c;
        n++;
    }
    if (st == WH_OK) {
        const wh_series s[2] = {{.name = "before pruning", .n = n, .x = x, .y = ya, .step = 1},
                                {.name = "after pruning", .n = n, .x = x, .y = yb, .step = 1}};
        const wh_lines c = {.series = s,
                            .n_series = 2,
                            .title = "OUTPUT CHANNELS PER CONVOLUTION",
                            .x_label = "LAYER",
                            .y_label = "CHANNELS"};
        st = wh_lines_save(&c, path, &ctx);
    }
    free(x);
    free(ya);
    free(yb);
    wh_net_destroy(a);
    wh_net_destroy(b);
    return st == WH_OK ? 0 : wh_app_fail(&ctx);
}
