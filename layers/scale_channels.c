/* whittle: [scale_channels], darknet's squeeze-and-excitation multiply.
 *
 * Keys (darknet's parse_scale_channels): from = one layer index (required),
 * scale_wh = 0 or 1 (default 0), activation (default linear).
 * Inputs: in[0] = the previous layer, which holds the factors; in[1] = the
 * 'from' layer, the feature map being scaled. The output has the 'from'
 * layer's shape (N, C, H, W).
 *   scale_wh=0: factors s (N, C, 1, 1), one per channel:
 *                 pre[n,c,h,w] = s[n,c] * x[n,c,h,w]
 *   scale_wh=1: factors s (N, 1, H, W), one per position:
 *                 pre[n,c,h,w] = s[n,h,w] * x[n,c,h,w]
 *   out = act(pre)
 * Backward: d_pre = dout * act'(pre);
 *   ds[n,c] += sum_{h,w} d_pre * x   (scale_wh: ds[n,h,w] += sum_c d_pre * x)
 *   dx      += d_pre * s
 * This is the exact gradient; darknet's CPU code computes the same, while its
 * GPU kernel for scale_wh divides ds by H*W (not followed). Darknet warns
 * that it does not support swish and mish here (its backward derives the
 * activation's gradient from the output); we keep pre, so every activation's
 * gradient is exact. A training forward keeps pre for a non-linear activation.
 * Darknet counts no FLOPs for this layer and it has no parameters.
 *
 * Pruning: a channel pruned away upstream would carry a constant, and a
 * constant times a data-dependent factor is not a constant, so neither
 * input's channels may go (facts: keeps_producers).
 */
#include <stdio.h>
#include <stdlib.h>

#include "activation.h"
#include "layer.h"

typedef struct wh_scale_channels {
    wh_act act;
    int from;       /* the cfg value, for describe */
    int scale_wh;   /* 1: one factor per position instead of per channel */
    float *pre;     /* (N, C, H, W) product before the activation; training, non-linear */
    float *dpre;    /* scratch (N, C, H, W): d loss / d pre; training, non-linear */
    int have_pre;   /* the last forward was a training one */
} wh_scale_channels;

static wh_status wh__scale_channels_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    int from, scale_wh;
    WH_TRY(wh_cfg_int_req(s, "from", -(1 << 30), 1 << 30, &from, ctx));
    WH_TRY(wh_layer_resolve_index(l, s, "from", from, &l->in[1], ctx));
    WH_TRY(wh_cfg_int(s, "scale_wh", 0, 0, 1, &scale_wh, ctx));
    wh_act act;
    WH_TRY(wh_act_parse(s, WH_ACT_LINEAR, &act, ctx));
    wh_scale_channels *sc = calloc(1, sizeof(*sc));
    if (!sc) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    sc->act = act;
    sc->from = from;
    sc->scale_wh = scale_wh;
    l->n_in = 2;
    l->priv = sc;
    return WH_OK;
}

static wh_status wh__scale_channels_shape(wh_layer *l, wh_ctx *ctx)
{
    const wh_scale_channels *sc = l->priv;
    const wh_shape s = l->in_shape[0], x = l->in_shape[1];
    /* darknet asserts the same: one factor per channel of a 1x1 map, or one
     * per position of a single-channel map of the feature map's size */
    const int ok = sc->scale_wh ? s.c == 1 && s.h == x.h && s.w == x.w
                                : s.c == x.c && s.h == 1 && s.w == 1;
    if (!ok || s.n != x.n) {
        char ns[32], nx[32];
        wh_layer_input_name(l->in[0], ns, sizeof(ns));
        wh_layer_input_name(l->in[1], nx, sizeof(nx));
        return wh_error(ctx, WH_ERR_SHAPE,
                        "scale_channels scales %s (%dx%dx%d) by %s (%dx%dx%d): with scale_wh=%d the "
                        "factors must be %dx%dx%d",
                        nx, x.w, x.h, x.c, ns, s.w, s.h, s.c, sc->scale_wh, sc->scale_wh ? x.w : 1,
                        sc->scale_wh ? x.h : 1, sc->scale_wh ? 1 : x.c);
    }
    l->out_shape = x;
    return WH_OK;
}

static wh_status wh__scale_channels_plan(wh_layer *l, wh_plan *p, wh_ctx *ctx)
{
    (void)ctx;
    wh_scale_channels *sc = l->priv;
    if (!l->train || sc->act == WH_ACT_LINEAR) return WH_OK;
    const size_t n = wh_shape_count(l->out_shape);
    WH_TRY(wh_plan_buffer(p, WH_ARENA_ACT, &sc->pre, n));
    return wh_plan_buffer(p, WH_ARENA_SCRATCH, &sc->dpre, n);
}

static wh_status wh__scale_channels_forward(wh_layer *l, wh_exec *x)
{
    wh_scale_channels *sc = l->priv;
    const wh_shape o = l->out_shape;
    const long planes = (long)o.n * o.c, hw = (long)o.h * o.w;
    float *pre = (x->train && sc->pre) ? sc->pre : l->out;
    const float *s = x->in[0];   /* (N, C, 1, 1) or (N, 1, H, W) */
    const float *f = x->in[1];   /* (N, C, H, W) */
    const int wh = sc->scale_wh, C = o.c;
    /* one (n, c) plane per iteration: a single factor, or the n-th factor map */
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const float *fp = f + p * hw;
        float *op = pre + p * hw;
        if (wh) {
            const float *sp = s + (p / C) * hw;
#pragma omp simd
            for (long i = 0; i < hw; i++) op[i] = sp[i] * fp[i];
        } else {
            const float k = s[p];
#pragma omp simd
            for (long i = 0; i < hw; i++) op[i] = k * fp[i];
        }
    }
    wh_act_forward(sc->act, pre, l->out, (size_t)(planes * hw));
    sc->have_pre = x->train;
    return WH_OK;
}

/* ds[n,h,w] += sum_c g[n,c,h,w] * f[n,c,h,w], in strips of positions so that
 * each thread owns its part of ds and reads g and f along rows. */
#define WH__SC_STRIP 512L
static void wh__scale_wh_dfactors(const float *g, const float *f, float *ds, int N, int C, long hw)
{
    const long strips = (hw + WH__SC_STRIP - 1) / WH__SC_STRIP;
#pragma omp parallel for schedule(static)
    for (long t = 0; t < (long)N * strips; t++) {
        const long n = t / strips, i0 = (t % strips) * WH__SC_STRIP;
        const long i1 = i0 + WH__SC_STRIP < hw ? i0 + WH__SC_STRIP : hw;
        float *d = ds + n * hw;
        for (int c = 0; c < C; c++) {
            const float *gp = g + (n * C + c) * hw, *fp = f + (n * C + c) * hw;
#pragma omp simd
            for (long i = i0; i < i1; i++) d[i] += gp[i] * fp[i];
        }
    }
}

static wh_status wh__scale_channels_backward(wh_layer *l, wh_exec *x)
{
    wh_scale_channels *sc = l->priv;
    const wh_shape o = l->out_shape;
    const long planes = (long)o.n * o.c, hw = (long)o.h * o.w;
    const float *g = l->dout;
    if (sc->act != WH_ACT_LINEAR) {
        if (!sc->have_pre)
            return wh_error(x->ctx, WH_ERR_STATE, "backward needs a training forward first");
        wh_act_backward(sc->act, sc->pre, l->dout, sc->dpre, (size_t)(planes * hw), 0);
        g = sc->dpre;
    }
    const float *s = x->in[0], *f = x->in[1];
    const int wh = sc->scale_wh, C = o.c;
    /* One input after the other: 'from' may name the previous layer again,
     * and then both gradients go to one buffer. */
    float *ds = x->din[0];
    if (ds && wh) {
        wh__scale_wh_dfactors(g, f, ds, o.n, C, hw);
    } else if (ds) {
        /* a plane's sum in double: H*W terms (80x80 = 6400) */
#pragma omp parallel for schedule(static)
        for (long p = 0; p < planes; p++) {
            const float *gp = g + p * hw, *fp = f + p * hw;
            double acc = 0;
#pragma omp simd reduction(+ : acc)
            for (long i = 0; i < hw; i++) acc += (double)gp[i] * fp[i];
            ds[p] += (float)acc;
        }
    }
    float *df = x->din[1];
    if (df) {
#pragma omp parallel for schedule(static)
        for (long p = 0; p < planes; p++) {
            const float *gp = g + p * hw;
            float *dp = df + p * hw;
            if (wh) {
                const float *sp = s + (p / C) * hw;
#pragma omp simd
                for (long i = 0; i < hw; i++) dp[i] += gp[i] * sp[i];
            } else {
                const float k = s[p];
#pragma omp simd
                for (long i = 0; i < hw; i++) dp[i] += gp[i] * k;
            }
        }
    }
    return WH_OK;
}

static void wh__scale_channels_describe(const wh_layer *l, char *buf, int n)
{
    const wh_scale_channels *sc = l->priv;
    int used = snprintf(buf, (size_t)n, "%d%s", sc->from, sc->scale_wh ? " scale_wh" : "");
    if (sc->act != WH_ACT_LINEAR && used >= 0 && used < n)
        snprintf(buf + used, (size_t)(n - used), " %s", wh_act_name(sc->act));
}

static void wh__scale_channels_destroy(wh_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

static void wh__scale_channels_facts(const wh_layer *l, wh_layer_facts *f)
{
    f->act = ((const wh_scale_channels *)l->priv)->act;
    f->keeps_producers = 1; /* a product: a pruned channel's constant would not stay constant */
}

/* Flow ADD: channel c of the factors and of the feature map meet in output
 * channel c, so the dependency analysis couples them as a shortcut's inputs
 * (and, with keeps_producers, keeps the whole coupled set). */
const wh_layer_ops wh_scale_channels_ops = {
    .type = "scale_channels",
    .flow = WH_FLOW_ADD,
    .facts = wh__scale_channels_facts,
    .layouts_in = WH_LAYOUT_BIT(WH_LAYOUT_NCHW),
    .init = wh__scale_channels_init,
    .shape = wh__scale_channels_shape,
    .plan = wh__scale_channels_plan,
    .forward = wh__scale_channels_forward,
    .backward = wh__scale_channels_backward,
    /* no .flops: darknet counts none for it (0) */
    .describe = wh__scale_channels_describe,
    .destroy = wh__scale_channels_destroy,
    .backward_reads_input = 1,
};
