/* Each operation at YOLOv4 shapes (bench/bench.h). */
#include "bench/bench.h"
#include "bench/bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distill/distill.h"
#include "framework/core/cfg.h"
#include "framework/io/modelgen.h"
#include "framework/train/optimizer.h"
#include "layers/activation.h"
#include "layers/yolo.h"
#include "pruning/sparsity.h"

/* What one timed call does, and the median over runs after one warm-up. */
typedef wh_status (*wh__fn)(void *arg, wh_ctx *ctx);

static wh_status wh__time(wh__fn fn, void *arg, int runs, double *median_s, wh_ctx *ctx)
{
    double *t = malloc((size_t)runs * sizeof(double));
    if (!t) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    wh_status st = fn(arg, ctx);
    for (int r = 0; st == WH_OK && r < runs; r++) {
        const double t0 = wh_bench_now();
        st = fn(arg, ctx);
        t[r] = wh_bench_now() - t0;
    }
    if (st == WH_OK) *median_s = wh_bench_median(t, runs);
    free(t);
    return st;
}

/* A one-layer (or few-layer) network from a cfg body, random weights and input. */
static wh_status wh__net(const char *body, int c, int hw, int train, int blocked, wh_net **net, wh_ctx *ctx)
{
    char text[4096];
    snprintf(text, sizeof(text), "[net]\nbatch=1\nwidth=%d\nheight=%d\nchannels=%d\n%s", hw, hw, c, body);
    wh_cfg *cfg = NULL;
    WH_TRY(wh_cfg_parse_string(text, "bench", &cfg, ctx));
    const wh_net_opts no = {.batch = 1, .train = train, .blocked = blocked};
    const wh_status st = wh_net_create(cfg, &no, net, ctx);
    wh_cfg_free(cfg);
    WH_TRY(st);
    wh_net_init_weights(*net, 7);
    const size_t n = wh_shape_count((*net)->in_shape);
    for (size_t i = 0; i < n; i++) (*net)->input[i] = (float)((i * 2654435761u) % 1000) / 1000.f - 0.5f;
    return WH_OK;
}

typedef struct wh__layer_arg {
    wh_net *net;
    int train, backward;
} wh__layer_arg;

static wh_status wh__layer_fn(void *arg, wh_ctx *ctx)
{
    wh__layer_arg *a = arg;
    if (!a->backward) return wh_net_forward(a->net, a->train, ctx);
    wh_net_zero_grads(a->net);
    wh_net_zero_douts(a->net);
    wh_layer *last = &a->net->layers[a->net->n_layers - 1];
    const size_t n = wh_shape_count(last->out_shape);
    for (size_t i = 0; i < n; i++) last->dout[i] = 1e-3f;
    return wh_net_backward(a->net, NULL, ctx);
}

typedef struct wh__act_arg {
    wh_act act;
    int backward;
    float *x, *y;
    size_t n;
} wh__act_arg;

static wh_status wh__act_fn(void *arg, wh_ctx *ctx)
{
    (void)ctx;
    wh__act_arg *a = arg;
    if (a->backward)
        wh_act_backward(a->act, a->x, a->y, a->y, a->n, 0);
    else
        wh_act_forward(a->act, a->x, a->y, a->n);
    return WH_OK;
}

typedef struct wh__at_arg {
    float *a, *qs, *qt, *da, *scratch;
    wh_shape s;
    wh_at_opts o;
} wh__at_arg;

static wh_status wh__at_fn(void *arg, wh_ctx *ctx)
{
    (void)ctx;
    wh__at_arg *a = arg;
    wh_at_map(a->a, a->s, WH_LAYOUT_NCHW, &a->o, a->qs);
    wh_at_loss(a->a, a->s, WH_LAYOUT_NCHW, a->qs, a->qt, &a->o, 1.0, a->da, a->scratch);
    return WH_OK;
}

typedef struct wh__yolo_arg {
    wh_net *net;
    wh_truth truth[8];
} wh__yolo_arg;

static wh_status wh__yolo_fn(void *arg, wh_ctx *ctx)
{
    wh__yolo_arg *a = arg;
    wh_layer *l = &a->net->layers[a->net->n_layers - 1];
    return wh_yolo_loss(l, a->truth, 8, a->net->in_shape.w, a->net->in_shape.h, NULL, ctx);
}

typedef struct wh__model_arg {
    wh_net *net;
    wh_prunable p;
    float *s;
    wh_sgd *sgd;
} wh__model_arg;

static wh_status wh__sparsity_fn(void *arg, wh_ctx *ctx)
{
    wh__model_arg *a = arg;
    return wh_sparsity_apply(a->net, &a->p, a->s, 8, ctx);
}

static wh_status wh__sgd_fn(void *arg, wh_ctx *ctx)
{
    wh__model_arg *a = arg;
    return wh_sgd_step(a->sgd, a->net, 1e-6f, 8, ctx);
}

static void wh__emit(wh_bench_op_cb cb, void *user, const char *name, const char *shape, double s, double flops,
                     double bytes)
{
    wh_bench_op r = {.name = name, .shape = shape, .seconds = s};
    r.gflop_per_s = flops > 0 ? flops / s / 1e9 : NAN;
    r.gb_per_s = bytes > 0 ? bytes / s / 1e9 : NAN;
    cb(user, &r);
}

/* A convolution layer cfg: filters, size, stride, BN + activation or linear. */
static void wh__conv_body(char *buf, size_t n, int oc, int k, int stride, int bn, const char *act)
{
    snprintf(buf, n, "[convolutional]\nbatch_normalize=%d\nfilters=%d\nsize=%d\nstride=%d\npad=1\nactivation=%s\n", bn,
             oc, k, stride, act);
}

wh_status wh_bench_ops(int runs, wh_bench_op_cb cb, void *user, wh_ctx *ctx)
{
    if (runs < 1) return wh_error(ctx, WH_ERR_ARG, "bench ops: runs must be >= 1");
    char body[512], shape[128];
    wh_status st = WH_OK;
    /* ---- convolutions of YOLOv4 at 416, batch 1 ---- */
    static const struct {
        int ic, hw, oc, k, stride;
    } convs[] = {{32, 416, 64, 3, 2},  {64, 208, 64, 1, 1},   {128, 104, 128, 3, 1}, {256, 52, 256, 3, 1},
                 {512, 26, 512, 3, 1}, {1024, 13, 512, 1, 1}, {512, 13, 1024, 3, 1}};
    for (size_t i = 0; st == WH_OK && i < sizeof(convs) / sizeof(convs[0]); i++) {
        const int oh = convs[i].hw / convs[i].stride;
        const double flops = 2.0 * convs[i].ic * convs[i].k * convs[i].k * convs[i].oc * oh * oh;
        snprintf(shape, sizeof(shape), "%dx%dx%d -> %d, %dx%d/%d", convs[i].ic, convs[i].hw, convs[i].hw, convs[i].oc,
                 convs[i].k, convs[i].k, convs[i].stride);
        for (int mode = 0; st == WH_OK && mode < 3; mode++) {
            /* all blocked, as the trainer runs: 0: inference (BN + mish fused as post-ops);
             * 1: training forward (BN + mish fused in one pass); 2: training backward */
            wh__conv_body(body, sizeof(body), convs[i].oc, convs[i].k, convs[i].stride, 1, "mish");
            wh_net *net = NULL;
            st = wh__net(body, convs[i].ic, convs[i].hw, mode > 0, 1, &net, ctx);
            wh__layer_arg a = {net, mode > 0, mode == 2};
            double s = 0;
            if (st == WH_OK && mode == 2) st = wh_net_forward(net, 1, ctx);
            if (st == WH_OK) st = wh__time(wh__layer_fn, &a, runs, &s, ctx);
            static const char *names[3] = {"conv+bn+mish forward (inference, fused)", "conv+bn+mish forward (training)",
                                           "conv+bn+mish backward (data + weights + bn)"};
            if (st == WH_OK) wh__emit(cb, user, names[mode], shape, s, mode == 2 ? 2 * flops : flops, 0);
            wh_net_destroy(net);
        }
    }
    /* ---- elementwise: every activation over 64 x 208 x 208 ---- */
    const size_t n = (size_t)64 * 208 * 208;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    if (st == WH_OK && (!x || !y)) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == WH_OK && i < n; i++) x[i] = (float)((i * 2654435761u) % 2000) / 250.f - 4.f;
    for (int act = WH_ACT_LINEAR + 1; st == WH_OK && act < WH_ACT_COUNT; act++) /* linear: nothing to do */
        for (int bwd = 0; st == WH_OK && bwd < 2; bwd++) {
            wh__act_arg a = {(wh_act)act, bwd, x, y, n};
            double s = 0;
            if (bwd) memcpy(y, x, n * sizeof(float));
            st = wh__time(wh__act_fn, &a, runs, &s, ctx);
            char name[64];
            snprintf(name, sizeof(name), "%s %s", wh_act_name((wh_act)act), bwd ? "backward" : "forward");
            if (st == WH_OK) wh__emit(cb, user, name, "64x208x208", s, 0, (bwd ? 3.0 : 2.0) * n * sizeof(float));
        }
    free(x);
    free(y);
    /* ---- pools, upsample, route, shortcut (training nets, blocked as the trainer runs them) ---- */
    /* A 1x1 linear convolution first produces the measured layer's input
     * (and receives its backward); route and shortcut take two. %d: C. */
#define WH__PRODUCER "[convolutional]\nfilters=%d\nsize=1\nstride=1\npad=1\nactivation=linear\n"
    static const struct {
        const char *name, *shape, *body;
        int c, hw;
        double bytes_fwd; /* per forward, in units of the input's bytes */
    } mem[] = {
        {"maxpool 5x5/1 (SPP)", "512x13x13", WH__PRODUCER "[maxpool]\nsize=5\nstride=1\n", 512, 13, 2},
        {"maxpool 2x2/2", "64x208x208", WH__PRODUCER "[maxpool]\nsize=2\nstride=2\n", 64, 208, 1.25},
        {"upsample x2", "128x26x26", WH__PRODUCER "[upsample]\nstride=2\n", 128, 26, 5},
        {"route (concat of two)", "2 x 128x52x52", WH__PRODUCER WH__PRODUCER "[route]\nlayers=-1,-2\n", 128, 52, 4},
        {"shortcut (residual add, linear)", "128x104x104",
         WH__PRODUCER WH__PRODUCER "[shortcut]\nfrom=-2\nactivation=linear\n", 128, 104, 3},
    };
    for (size_t i = 0; st == WH_OK && i < sizeof(mem) / sizeof(mem[0]); i++)
        for (int bwd = 0; st == WH_OK && bwd < 2; bwd++) {
            wh_net *net = NULL;
            char cfg[512];
            snprintf(cfg, sizeof(cfg), mem[i].body, mem[i].c, mem[i].c);
            st = wh__net(cfg, mem[i].c, mem[i].hw, 1, 1, &net, ctx);
            if (st == WH_OK) st = wh_net_forward(net, 1, ctx);
            /* time only the last layer (route and shortcut need a producer) */
            const int last = net ? net->n_layers - 1 : 0;
            double s = 0, *t = malloc((size_t)runs * sizeof(double));
            if (st == WH_OK && !t) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
            for (int r = -1; st == WH_OK && r < runs; r++) {
                if (bwd) {
                    wh_net_zero_douts(net);
                    const size_t m = wh_shape_count(net->layers[last].out_shape);
                    for (size_t k = 0; k < m; k++) net->layers[last].dout[k] = 1e-3f;
                }
                const double t0 = wh_bench_now();
                st = bwd ? wh_net_backward_layer(net, last, NULL, ctx) : wh_net_forward_layer(net, last, 1, ctx);
                if (r >= 0) t[r] = wh_bench_now() - t0;
            }
            if (st == WH_OK) s = wh_bench_median(t, runs);
            free(t);
            char name[96];
            snprintf(name, sizeof(name), "%s %s", mem[i].name, bwd ? "backward" : "forward");
            const double in_bytes = (double)mem[i].c * mem[i].hw * mem[i].hw * sizeof(float);
            if (st == WH_OK) wh__emit(cb, user, name, mem[i].shape, s, 0, mem[i].bytes_fwd * in_bytes);
            wh_net_destroy(net);
        }
    /* ---- the yolo loss at the stride-8 head of YOLOv4 (255 x 52 x 52, 80 classes) ---- */
    if (st == WH_OK) {
        wh_net *net = NULL;
        st = wh__net("[yolo]\nmask=0,1,2\nanchors=12,16,19,36,40,28,36,75,76,55,72,146,142,110,192,243,459,401\n"
                     "classes=80\nnum=9\nscale_x_y=1.2\niou_thresh=0.213\niou_normalizer=0.07\nnms_kind=greedynms\n"
                     "beta_nms=0.6\niou_loss=ciou\n",
                     255, 52, 1, 0, &net, ctx);
        wh__yolo_arg a = {.net = net};
        for (int k = 0; k < 8; k++)
            a.truth[k] = (wh_truth){.x = 0.1f + 0.1f * k, .y = 0.5f, .w = 0.1f, .h = 0.2f, .cls = k};
        double s = 0;
        if (st == WH_OK) st = wh_net_forward(net, 1, ctx);
        if (st == WH_OK) st = wh__time(wh__yolo_fn, &a, runs, &s, ctx);
        if (st == WH_OK)
            wh__emit(cb, user, "yolo loss + gradient (8 truths)", "255x52x52", s, 0, 2.0 * 255 * 52 * 52 * 4);
        wh_net_destroy(net);
    }
    /* ---- the attention loss at a YOLOv4 backbone map (256 x 52 x 52) ---- */
    if (st == WH_OK) {
        const wh_shape sh = {1, 256, 52, 52};
        const size_t m = wh_shape_count(sh), hw = 52 * 52;
        wh__at_arg a = {.a = malloc(m * sizeof(float)),
                        .qs = malloc(hw * sizeof(float)),
                        .qt = malloc(hw * sizeof(float)),
                        .da = calloc(m, sizeof(float)),
                        .scratch = malloc(2 * hw * sizeof(float)),
                        .s = sh};
        wh_at_opts_default(&a.o);
        if (!a.a || !a.qs || !a.qt || !a.da || !a.scratch) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        for (size_t i = 0; st == WH_OK && i < m; i++) a.a[i] = (float)((i * 2654435761u) % 1000) / 1000.f;
        if (st == WH_OK) {
            wh_at_map(a.a, sh, WH_LAYOUT_NCHW, &a.o, a.qt);
            for (size_t i = 0; i < hw; i++) a.qt[i] *= 0.9f;
        }
        double s = 0;
        if (st == WH_OK) st = wh__time(wh__at_fn, &a, runs, &s, ctx);
        /* reads A twice (map, gradient), writes dA */
        if (st == WH_OK) wh__emit(cb, user, "attention map + loss + gradient", "256x52x52", s, 0, 3.0 * m * 4);
        free(a.a), free(a.qs), free(a.qt), free(a.da), free(a.scratch);
    }
    /* ---- per-step work over all of YOLOv4's parameters ---- */
    if (st == WH_OK) {
        wh_model_opts mo;
        wh_model_opts_default(&mo);
        mo.classes = 20;
        mo.width = mo.height = 64; /* the parameters do not depend on the input size */
        char *text = NULL;
        wh_cfg *cfg = NULL;
        wh__model_arg a = {0};
        st = wh_model_generate(&mo, &text, ctx);
        if (st == WH_OK) st = wh_cfg_parse_string(text, "yolov4", &cfg, ctx);
        const wh_net_opts no = {.batch = 1, .train = 1};
        if (st == WH_OK) st = wh_net_create(cfg, &no, &a.net, ctx);
        if (st == WH_OK) st = wh_prunable_find(a.net, NULL, 0, &a.p, ctx);
        if (st == WH_OK) {
            wh_net_init_weights(a.net, 3);
            a.s = malloc((size_t)a.p.n_channels * sizeof(float));
            if (!a.s) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
            for (int c = 0; st == WH_OK && c < a.p.n_channels; c++) a.s[c] = 1e-4f;
        }
        double s = 0;
        if (st == WH_OK) st = wh__time(wh__sparsity_fn, &a, runs, &s, ctx);
        snprintf(shape, sizeof(shape), "%d channels", a.p.n_channels);
        /* reads gamma and s, reads and writes the gradient */
        if (st == WH_OK) wh__emit(cb, user, "sparsity update (L1 on BN scales)", shape, s, 0, 4.0 * a.p.n_channels * 4);
        wh_net_cost c;
        if (st == WH_OK) {
            wh_net_cost_total(a.net, &c);
            st = wh_sgd_create(a.net, 0.949f, 0.0005f, 0, &a.sgd, ctx);
        }
        if (st == WH_OK) st = wh__time(wh__sgd_fn, &a, runs, &s, ctx);
        snprintf(shape, sizeof(shape), "%.1f M parameters", (double)c.params / 1e6);
        /* reads weight, gradient, velocity; writes weight, velocity, zeroes nothing */
        if (st == WH_OK) wh__emit(cb, user, "SGD step (momentum, decay)", shape, s, 0, 5.0 * (double)c.params * 4);
        wh_sgd_destroy(a.sgd);
        free(a.s);
        if (a.p.layer) wh_prunable_free(&a.p);
        wh_net_destroy(a.net);
        wh_cfg_free(cfg);
        free(text);
    }
    return st;
}
