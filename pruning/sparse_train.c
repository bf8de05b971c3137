#include "sparse_train.h"

#include "framework/plot/plot.h"
#include "framework/core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

wh_status wh_sparse_hook_init(wh_sparse_hook *h, const char *spec, const int *exclude, int n_exclude,
                              wh_ctx *ctx)
{
    memset(h, 0, sizeof(*h));
    WH_TRY(wh_sched_create(spec, &h->sched, ctx));
    if (n_exclude > 0) {
        h->exclude = malloc((size_t)n_exclude * sizeof(int));
        if (!h->exclude) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        memcpy(h->exclude, exclude, (size_t)n_exclude * sizeof(int));
        h->n_exclude = n_exclude;
    }
    return WH_OK;
}

void wh_sparse_hook_free(wh_sparse_hook *h)
{
    wh_sched_destroy(h->sched);
    wh_prunable_free(&h->set);
    free(h->exclude);
    free(h->absgamma);
    free(h->rate);
    free(h->hist);
    free(h->hist_iter);
    wh_grouping_free(&h->groups);
    free(h->layer_group);
    free(h->layer_stats);
    free(h->group_stats);
    memset(h, 0, sizeof(*h));
}

void wh_sparse_hook_stats(wh_sparse_hook *h, int every, const char *out_dir)
{
    h->stats_every = every;
    h->out_dir = out_dir;
}

static wh_status wh__add_row(wh_sparse_hook *h, float iter, const float *hist, wh_ctx *ctx)
{
    if (h->n_rows == h->cap_rows) {
        int cap = h->cap_rows ? 2 * h->cap_rows : 16;
        float *a = realloc(h->hist, (size_t)cap * WH_GAMMA_BINS * sizeof(float));
        if (!a) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        h->hist = a;
        float *b = realloc(h->hist_iter, (size_t)cap * sizeof(float));
        if (!b) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        h->hist_iter = b;
        h->cap_rows = cap;
    }
    memcpy(h->hist + (size_t)h->n_rows * WH_GAMMA_BINS, hist, WH_GAMMA_BINS * sizeof(float));
    h->hist_iter[h->n_rows++] = iter;
    return WH_OK;
}

/* One statistics point: the history row, a JSON line, the PNG. */
static wh_status wh__stats(wh_sparse_hook *h, const wh_net *net, long it, wh_ctx *ctx)
{
    wh_gamma_stats gs;
    wh_gamma_stats_compute(h->absgamma, h->set.n_channels, &gs);
    WH_TRY(wh__add_row(h, (float)it, gs.hist, ctx));
    if (!h->out_dir) return WH_OK;
    char path[4096];
    snprintf(path, sizeof(path), "%s/gamma.jsonl", h->out_dir);
    FILE *f = fopen(path, "a");
    if (!f) return wh_error(ctx, WH_ERR_IO, "%s: cannot open", path);
    fprintf(f, "{\"iteration\": %ld, \"epoch\": %.3f, \"channels\": %d, \"below_1e-3\": %.6f, \"below_1e-2\": %.6f, "
               "\"p10\": %.6g, \"median\": %.6g, \"max\": %.6g, \"layers\": [",
            it, h->epoch_images > 0 ? (double)it * net->hp.batch / h->epoch_images : 0.0, gs.n, gs.below_1e3,
            gs.below_1e2, gs.p10, gs.median, gs.max);
    for (int k = 0; k < h->set.n_layers; k++) {
        wh_gamma_stats ls;
        wh_gamma_stats_compute(h->absgamma + h->set.offset[k], net->layers[h->set.layer[k]].out_shape.c, &ls);
        fprintf(f, "%s{\"layer\": %d, \"below_1e-2\": %.4f, \"max\": %.4g}", k ? ", " : "", h->set.layer[k],
                ls.below_1e2, ls.max);
        float *st = h->layer_stats + 3 * k;
        st[0] = (float)ls.below_1e3, st[1] = (float)ls.below_1e2, st[2] = (float)ls.max;
    }
    fprintf(f, "], \"groups\": [");
    float *buf = malloc((size_t)(h->set.n_channels > 0 ? h->set.n_channels : 1) * sizeof(float));
    for (int g = 0; buf && g < h->groups.n_groups; g++) {
        int n = 0;
        for (int k = 0; k < h->set.n_layers; k++)
            if (h->layer_group[k] == g) {
                const int c = net->layers[h->set.layer[k]].out_shape.c;
                memcpy(buf + n, h->absgamma + h->set.offset[k], (size_t)c * sizeof(float));
                n += c;
            }
        wh_gamma_stats gg;
        wh_gamma_stats_compute(buf, n, &gg);
        fprintf(f, "%s{\"group\": ", g ? ", " : "");
        wh_json_str(f, h->groups.name[g]); /* a groups file's names are the user's */
        fprintf(f, ", \"channels\": %d, \"below_1e-3\": %.4f, \"below_1e-2\": %.4f, \"median\": %.4g, \"max\": %.4g}", n,
                gg.below_1e3, gg.below_1e2, gg.median, gg.max);
        float *st = h->group_stats + 3 * g;
        st[0] = (float)gg.below_1e3, st[1] = (float)gg.below_1e2, st[2] = (float)gg.max;
    }
    free(buf);
    fprintf(f, "]}\n");
    fclose(f);
    snprintf(path, sizeof(path), "%s/gamma_hist.png", h->out_dir);
    return wh_hist_chart_save(path, h->hist, h->hist_iter, h->n_rows, WH_GAMMA_BINS, (float)WH_GAMMA_LOG_LO,
                              (float)WH_GAMMA_LOG_HI, "BN SCALES DURING SPARSE TRAINING", "LOG10 |GAMMA|", ctx);
}

/* Statistics at iteration it (0-based, before its step)? */
static int wh__stats_due(const wh_sparse_hook *h, const wh_net *net, long it)
{
    if (h->stats_every > 0) return it % h->stats_every == 0 || it == net->hp.max_batches - 1;
    if (h->stats_every < 0) return 0;
    if (it == 0 || it == net->hp.max_batches - 1) return 1;
    if (h->epoch_images <= 0) return 0;
    const long b = net->hp.batch; /* an epoch starts when it * b crosses a multiple of the split */
    return (it * b) / h->epoch_images != ((it - 1) * b) / h->epoch_images;
}

static wh_status wh__begin(void *user, wh_net *net, long train_images, wh_ctx *ctx)
{
    (void)net;
    (void)ctx;
    ((wh_sparse_hook *)user)->epoch_images = train_images;
    return WH_OK;
}

/* The scale-module groups of the prunable layers, for per-group statistics.
 * A graph the grouping cannot cut (no detection layer, say) just has none. */
static wh_status wh__find_groups(wh_sparse_hook *h, const wh_net *net, wh_ctx *ctx)
{
    const int L = h->set.n_layers > 0 ? h->set.n_layers : 1;
    h->layer_group = malloc((size_t)L * sizeof(int));
    h->layer_stats = calloc(3 * (size_t)L, sizeof(float));
    if (!h->layer_group || !h->layer_stats) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int k = 0; k < h->set.n_layers; k++) h->layer_group[k] = -1;
    wh_ctx quiet;
    wh_ctx_init(&quiet);
    wh_depgraph g;
    wh_depgraph_opts o = {h->exclude, h->n_exclude, 0};
    if (wh_depgraph_build(net, &o, &g, &quiet) != WH_OK) return WH_OK;
    if (wh_grouping_make("scale-module", NULL, net, &g, &h->groups, &quiet) == WH_OK)
        for (int k = 0; k < h->set.n_layers; k++) {
            const int u = g.layer_unit[h->set.layer[k]];
            h->layer_group[k] = u >= 0 ? h->groups.unit_group[u] : -1;
        }
    else
        memset(&h->groups, 0, sizeof(h->groups));
    wh_depgraph_free(&g);
    h->group_stats = calloc(3 * (size_t)(h->groups.n_groups > 0 ? h->groups.n_groups : 1), sizeof(float));
    return h->group_stats ? WH_OK : wh_error(ctx, WH_ERR_NOMEM, "out of memory");
}

static wh_status wh__after_backward(void *user, wh_net *net, long it, wh_ctx *ctx)
{
    wh_sparse_hook *h = user;
    if (!h->have_set) {
        WH_TRY(wh_prunable_find(net, h->exclude, h->n_exclude, &h->set, ctx));
        size_t n = (size_t)(h->set.n_channels > 0 ? h->set.n_channels : 1);
        h->absgamma = malloc(n * sizeof(float));
        h->rate = malloc(n * sizeof(float));
        if (!h->absgamma || !h->rate) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        WH_TRY(wh__find_groups(h, net, ctx));
        h->have_set = 1;
    }
    wh_prunable_absgamma(net, &h->set, h->absgamma);
    int below = 0;
    for (int c = 0; c < h->set.n_channels; c++) below += h->absgamma[c] < 1e-2f;
    h->last_below_1e2 = h->set.n_channels ? (double)below / h->set.n_channels : 0.0;
    if (wh__stats_due(h, net, it)) WH_TRY(wh__stats(h, net, it, ctx));
    h->sched->ops->rates(h->sched->state, it, net->hp.max_batches, h->absgamma, h->set.n_channels, h->rate);
    return wh_sparsity_apply(net, &h->set, h->rate, net->hp.batch, ctx);
}

static wh_status wh__save(void *user, wh_ckpt_writer *w, wh_ctx *ctx)
{
    wh_sparse_hook *h = user;
    WH_TRY(wh_sched_save(h->sched, w, "sparsity", ctx));
    if (h->n_rows == 0) return WH_OK;
    uint64_t dims[2] = {(uint64_t)h->n_rows, WH_GAMMA_BINS};
    WH_TRY(wh_ckpt_put_f32(w, "sparsity/gamma_hist", h->hist, dims, 2, ctx));
    WH_TRY(wh_ckpt_put_f32(w, "sparsity/gamma_hist_iter", h->hist_iter, dims, 1, ctx));
    /* the latest statistics: rows (below 1e-3, below 1e-2, max) per prunable
     * layer (sparsity/layer_index order) and per group (sparsity/group_names) */
    int64_t *idx = malloc((size_t)(h->set.n_layers > 0 ? h->set.n_layers : 1) * sizeof(int64_t));
    if (!idx) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int k = 0; k < h->set.n_layers; k++) idx[k] = h->set.layer[k];
    uint64_t d1[1] = {(uint64_t)h->set.n_layers}, d2[2] = {(uint64_t)h->set.n_layers, 3};
    wh_status st = wh_ckpt_put_i64(w, "sparsity/layer_index", idx, d1, 1, ctx);
    free(idx);
    if (st == WH_OK) st = wh_ckpt_put_f32(w, "sparsity/layer_stats", h->layer_stats, d2, 2, ctx);
    if (st != WH_OK || h->groups.n_groups == 0) return st;
    char names[1024] = "";
    for (int g = 0; g < h->groups.n_groups; g++)
        snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", g ? "," : "", h->groups.name[g]);
    uint64_t d3[2] = {(uint64_t)h->groups.n_groups, 3};
    WH_TRY(wh_ckpt_put_str(w, "sparsity/group_names", names, ctx));
    return wh_ckpt_put_f32(w, "sparsity/group_stats", h->group_stats, d3, 2, ctx);
}

static wh_status wh__load(void *user, wh_ckpt_reader *r, wh_ctx *ctx)
{
    wh_sparse_hook *h = user;
    WH_TRY(wh_sched_load(h->sched, r, "sparsity", ctx));
    if (!wh_ckpt_has(r, "sparsity/gamma_hist_iter")) return WH_OK;
    uint64_t dims[8];
    int nd = 0;
    WH_TRY(wh_ckpt_dims(r, "sparsity/gamma_hist_iter", dims, &nd, ctx));
    if (nd != 1 || dims[0] > (1u << 24)) /* one row per logged iteration: millions at most */
        return wh_error(ctx, WH_ERR_SHAPE,
                        "%s: sparsity/gamma_hist_iter has %d dimensions, %llu rows: expected a list of at most %u "
                        "iterations",
                        wh_ckpt_path(r), nd, nd ? (unsigned long long)dims[0] : 0ull, 1u << 24);
    const int n = (int)dims[0];
    float *rows = malloc((size_t)n * WH_GAMMA_BINS * sizeof(float)), *iters = malloc((size_t)n * sizeof(float));
    wh_status st = rows && iters ? WH_OK : wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (st == WH_OK) st = wh_ckpt_get_f32(r, "sparsity/gamma_hist", rows, (size_t)n * WH_GAMMA_BINS, ctx);
    if (st == WH_OK) st = wh_ckpt_get_f32(r, "sparsity/gamma_hist_iter", iters, (size_t)n, ctx);
    h->n_rows = 0;
    for (int i = 0; st == WH_OK && i < n; i++) st = wh__add_row(h, iters[i], rows + (size_t)i * WH_GAMMA_BINS, ctx);
    free(rows);
    free(iters);
    return st;
}

void wh_sparse_hook_attach(wh_sparse_hook *h, wh_train_hooks *hooks)
{
    hooks->user = h;
    hooks->begin = wh__begin;
    hooks->after_backward = wh__after_backward;
    hooks->save = wh__save;
    hooks->load = wh__load;
}
