/* whittle: [avgpool] (alias [avg]), darknet's global average pooling.
 *
 * No keys (darknet's parse_avgpool reads none). Every channel plane is
 * averaged to one value:
 *   out[n, c, 0, 0] = sum over y, x of in[n, c, y, x] / (H * W),
 *   out is (N, C, 1, 1).
 * Backward spreads each output gradient evenly over its plane:
 *   din[n, c, y, x] += dout[n, c] / (H * W).
 * Darknet counts no FLOPs for it (its make_avgpool_layer sets no bflops).
 */
#include <stdio.h>
#include <stdlib.h>

#include "layer.h"

static wh_status wh__avgpool_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    (void)l, (void)s, (void)ctx;
    return WH_OK;
}

static wh_status wh__avgpool_shape(wh_layer *l, wh_ctx *ctx)
{
    (void)ctx;
    const wh_shape in = l->in_shape[0];
    l->out_shape = (wh_shape){in.n, in.c, 1, 1};
    /* blocked in, blocked out: (N, C/B, 1, 1, B) is B channels side by side */
    l->out_layout = wh_layer_keep_blocked(l, 0);
    return WH_OK;
}

static wh_status wh__avgpool_forward(wh_layer *l, wh_exec *x)
{
    const wh_shape is = l->in_shape[0];
    const size_t hw = (size_t)is.h * is.w;
    const float area = (float)hw; /* divided by, as darknet: not times 1/area */
    const float *in = x->in[0]; /* (N, C, H, W), or (N, C/B, H, W, B) */
    float *out = l->out;        /* (N, C), or (N, C/B, B) */
    const int B = wh_layout_block(l->out_layout);
    if (B > 1) {
        /* a block's B planes are interleaved: B running sums, one per lane */
        const long bplanes = (long)is.n * (is.c / B);
#pragma omp parallel for schedule(static)
        for (long p = 0; p < bplanes; p++) {
            const float *ip = in + (size_t)p * hw * B;
            float acc[16] = {0};
            for (size_t i = 0; i < hw; i++)
#pragma omp simd
                for (int t = 0; t < B; t++) acc[t] += ip[i * B + t];
            for (int t = 0; t < B; t++) out[(size_t)p * B + t] = acc[t] / area;
        }
        return WH_OK;
    }
    const long planes = (long)is.n * is.c;
    /* one thread per plane: each sum is added in the same order whatever the
     * thread count */
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const float *ip = in + (size_t)p * hw;
        float acc = 0.f;
#pragma omp simd reduction(+ : acc)
        for (size_t i = 0; i < hw; i++) acc += ip[i];
        out[p] = acc / area;
    }
    return WH_OK;
}

static wh_status wh__avgpool_backward(wh_layer *l, wh_exec *x)
{
    float *din = x->din[0];
    if (!din) return WH_OK;
    const wh_shape is = l->in_shape[0];
    const size_t hw = (size_t)is.h * is.w;
    const float area = (float)hw;
    const float *dout = l->dout; /* (N, C) or (N, C/B, B) */
    const int B = wh_layout_block(l->out_layout);
    if (B > 1) {
        const long bplanes = (long)is.n * (is.c / B);
#pragma omp parallel for schedule(static)
        for (long p = 0; p < bplanes; p++) {
            float *dp = din + (size_t)p * hw * B;
            float g[16];
            for (int t = 0; t < B; t++) g[t] = dout[(size_t)p * B + t] / area;
            for (size_t i = 0; i < hw; i++)
#pragma omp simd
                for (int t = 0; t < B; t++) dp[i * B + t] += g[t];
        }
        return WH_OK;
    }
    const long planes = (long)is.n * is.c;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        float *dp = din + (size_t)p * hw;
        const float g = dout[p] / area;
#pragma omp simd
        for (size_t i = 0; i < hw; i++) dp[i] += g;
    }
    return WH_OK;
}

static void wh__avgpool_describe(const wh_layer *l, char *buf, int n)
{
    snprintf(buf, (size_t)n, "%dx%d global", l->in_shape[0].w, l->in_shape[0].h);
}

const wh_layer_ops wh_avgpool_ops = {
    .type = "avgpool",
    /* a pruned channel's constant act(beta) averages to itself */
    .flow = WH_FLOW_SAME,
    .layouts_in = WH_LAYOUTS_ALL,
    .init = wh__avgpool_init,
    .shape = wh__avgpool_shape,
    .forward = wh__avgpool_forward,
    .backward = wh__avgpool_backward,
    /* no .flops: darknet counts none for it (0) */
    .describe = wh__avgpool_describe,
};
