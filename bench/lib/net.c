/* Whole networks timed (bench/bench.h). */
#include "bench/bench.h"
#include "bench/bench_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "framework/core/cfg.h"
#include "framework/train/optimizer.h"
#include "layers/yolo.h"

#define WH__MAX_BOXES 8
enum { WH__FWD, WH__LOSS, WH__BWD, WH__STEP, WH__NPH };

/* xorshift64*: reproducible inputs */
static double wh__rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

/* The whole forward, or (lt: per-layer times, 2 per layer) layer by layer
 * with each layer timed. */
static wh_status wh__forward(wh_net *net, int train, double *lt, wh_ctx *ctx)
{
    if (!lt) return wh_net_forward(net, train, ctx);
    for (int i = 0; i < net->n_layers; i++) {
        const double t0 = wh_bench_now();
        WH_TRY(wh_net_forward_layer(net, i, train, ctx));
        lt[2 * i] = wh_bench_now() - t0;
    }
    return WH_OK;
}

static wh_status wh__backward(wh_net *net, double *lt, wh_ctx *ctx)
{
    if (!lt) return wh_net_backward(net, NULL, ctx);
    for (int i = net->n_layers - 1; i >= 0; i--) {
        const double t0 = wh_bench_now();
        WH_TRY(wh_net_backward_layer(net, i, NULL, ctx));
        lt[2 * i + 1] = wh_bench_now() - t0;
    }
    return WH_OK;
}

/* One training step as the trainer runs it with subdivisions 1: zero the
 * gradients, forward, every [yolo] loss, backward, one SGD step. */
static wh_status wh__step(wh_net *net, wh_sgd *sgd, const wh_truth *truth, double t[WH__NPH], double *lt,
                          wh_ctx *ctx)
{
    const double t0 = wh_bench_now();
    wh_net_zero_grads(net);
    WH_TRY(wh__forward(net, 1, lt, ctx));
    const double t1 = wh_bench_now();
    wh_net_zero_douts(net);
    for (int i = 0; i < net->n_layers; i++)
        if (wh_yolo_get(&net->layers[i]))
            WH_TRY(wh_yolo_loss(&net->layers[i], truth, WH__MAX_BOXES, net->in_shape.w, net->in_shape.h, NULL, ctx));
    const double t2 = wh_bench_now();
    WH_TRY(wh__backward(net, lt, ctx));
    const double t3 = wh_bench_now();
    /* a small fixed rate: random data must not diverge over a few steps */
    WH_TRY(wh_sgd_step(sgd, net, 1e-4f, net->in_shape.n, ctx));
    const double t4 = wh_bench_now();
    t[WH__FWD] = t1 - t0, t[WH__LOSS] = t2 - t1, t[WH__BWD] = t3 - t2, t[WH__STEP] = t4 - t3;
    return WH_OK;
}

wh_status wh_bench_net(const char *cfg_text, const char *name, const wh_bench_net_opts *o, wh_bench_net_result *r,
                       wh_ctx *ctx)
{
    memset(r, 0, sizeof(*r));
    if (o->runs < 1 || o->batch < 1) return wh_error(ctx, WH_ERR_ARG, "bench net: runs and batch must be >= 1");
    wh_ctx_set_threads(ctx, o->threads);
    wh_cfg *cfg = NULL;
    WH_TRY(wh_cfg_parse_string(cfg_text, name, &cfg, ctx));
    const int train = o->mode == WH_BENCH_TRAIN;
    const wh_net_opts no = {
        .batch = o->batch, .train = train, .blocked = !o->plain, .share_douts = 1, .share_outs = train, .check_finite = train && !o->no_check, .width = o->width, .height = o->height};
    wh_net *net = NULL;
    wh_status st = wh_net_create(cfg, &no, &net, ctx);
    wh_cfg_free(cfg);
    WH_TRY(st);
    wh_net_init_weights(net, 1);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    const size_t n_in = wh_shape_count(net->in_shape);
    for (size_t i = 0; i < n_in; i++) net->input[i] = (float)wh__rnd(&rng);
    wh_sgd *sgd = NULL;
    wh_truth *truth = NULL;
    double *t = malloc((size_t)o->runs * (WH__NPH + 1) * sizeof(double));
    /* profile: per run, forward and backward seconds per layer; then the
     * medians per layer, one column at a time */
    const size_t nl = (size_t)net->n_layers;
    double *lt = o->profile ? calloc((size_t)o->runs * 2 * nl, sizeof(double)) : NULL;
    double *col = o->profile ? malloc((size_t)o->runs * sizeof(double)) : NULL;
    if (o->profile && (!lt || !col)) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (!t) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    int classes = 1;
    for (int i = 0; i < net->n_layers; i++)
        if (wh_yolo_get(&net->layers[i])) classes = wh_yolo_get(&net->layers[i])->classes;
    if (st == WH_OK && train) {
        st = wh_sgd_create(net, net->hp.momentum, net->hp.decay, 0, &sgd, ctx);
        truth = calloc((size_t)o->batch * WH__MAX_BOXES, sizeof(wh_truth));
        if (st == WH_OK && !truth) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        /* 1..4 boxes per image, 5 % to 50 % of the side, inside the image */
        for (int b = 0; st == WH_OK && b < o->batch; b++) {
            const int k = 1 + (int)(wh__rnd(&rng) * 4);
            for (int j = 0; j < k; j++) {
                wh_truth *tr = &truth[b * WH__MAX_BOXES + j];
                tr->w = (float)(0.05 + 0.45 * wh__rnd(&rng));
                tr->h = (float)(0.05 + 0.45 * wh__rnd(&rng));
                tr->x = (float)(tr->w / 2 + (1 - tr->w) * wh__rnd(&rng));
                tr->y = (float)(tr->h / 2 + (1 - tr->h) * wh__rnd(&rng));
                tr->cls = (int)(wh__rnd(&rng) * classes) % classes;
            }
        }
    }
    double ph[WH__NPH] = {0};
    for (int w = 0; st == WH_OK && w < 2; w++)
        st = train ? wh__step(net, sgd, truth, ph, NULL, ctx) : wh_net_forward(net, 0, ctx);
    for (int k = 0; st == WH_OK && k < o->runs; k++) {
        double *ltk = lt ? lt + (size_t)k * 2 * nl : NULL;
        if (train) {
            st = wh__step(net, sgd, truth, ph, ltk, ctx);
            t[k] = 0;
            for (int p = 0; p < WH__NPH; p++) t[k] += ph[p], t[(size_t)(p + 1) * o->runs + k] = ph[p];
        } else {
            const double t0 = wh_bench_now();
            st = wh__forward(net, 0, ltk, ctx);
            t[k] = wh_bench_now() - t0;
        }
    }
    if (st == WH_OK) {
        r->width = net->in_shape.w, r->height = net->in_shape.h, r->batch = o->batch;
#ifdef _OPENMP
        r->threads = omp_get_max_threads();
#else
        r->threads = 1;
#endif
        r->median_s = wh_bench_median(t, o->runs);
        r->min_s = t[0];
        for (int p = 0; train && p < WH__NPH; p++) r->phase_s[p] = wh_bench_median(t + (size_t)(p + 1) * o->runs, o->runs);
        wh_net_cost c;
        wh_net_cost_total(net, &c);
        r->params = c.params;
        r->conv_gflop_per_img = c.conv_flops / 1e9;
        r->img_per_s = o->batch / r->median_s;
        r->gflop_per_s = (train ? 3 : 1) * c.conv_flops * o->batch / r->median_s / 1e9;
        r->peak_rss_mb = wh_bench_peak_rss_mb();
        for (int a = 0; a < WH_ARENA_COUNT && a < 6; a++) r->arena_mb[a] = (net->arena_bytes[a] + (1u << 19)) >> 20;
        wh_net_memory mem;
        wh_net_memory_get(net, &mem);
        /* SGD's momentum: one float per gradient */
        r->theory_mb = train ? (double)(mem.params + 2 * mem.grads + mem.needed_acts + mem.douts_live) / (1 << 20) : 0;
    }
    if (st == WH_OK && lt) {
        r->layers = calloc(nl, sizeof(*r->layers));
        if (!r->layers) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        for (size_t i = 0; st == WH_OK && i < nl; i++) {
            const wh_layer *l = &net->layers[i];
            wh_bench_layer_time *e = &r->layers[i];
            e->index = (int)i;
            e->type = l->ops->type;
            if (l->ops->describe) l->ops->describe(l, e->what, (int)sizeof(e->what));
            e->out = l->out_shape;
            e->layout = l->out_layout;
            wh_net_cost c;
            wh_layer_cost(l, &c);
            e->gflop = c.conv_flops * o->batch / 1e9;
            for (int ph2 = 0; ph2 < (train ? 2 : 1); ph2++) {
                for (int k = 0; k < o->runs; k++) col[k] = lt[(size_t)k * 2 * nl + 2 * i + (size_t)ph2];
                (ph2 ? &e->bwd_s : &e->fwd_s)[0] = wh_bench_median(col, o->runs);
            }
        }
        r->n_layers = st == WH_OK ? (int)nl : 0;
    }
    free(lt);
    free(col);
    free(t);
    free(truth);
    wh_sgd_destroy(sgd);
    wh_net_destroy(net);
    return st;
}

void wh_bench_net_result_free(wh_bench_net_result *r)
{
    free(r->layers);
    r->layers = NULL;
    r->n_layers = 0;
}
