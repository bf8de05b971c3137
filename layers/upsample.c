/* whittle: [upsample], darknet's nearest-neighbour upsampling.
 *
 * Keys: stride (default 2; 1 is the identity), scale (default 1).
 *   out[n, c, y, x] = scale * in[n, c, y / stride, x / stride],
 *   out is (N, C, H*stride, W*stride).
 * Backward: din[n, c, y, x] += scale * the sum of dout over its stride x stride
 * block. Darknet's negative stride (downsampling) is not supported.
 */
#include <float.h>
#include <limits.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#include "layer.h"

#define WH__UP_MAX 4096

typedef struct wh_upsample {
    int stride;
    float scale;
} wh_upsample;

static wh_status wh__upsample_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    int stride;
    float scale;
    WH_TRY(wh_cfg_int(s, "stride", 2, -WH__UP_MAX, WH__UP_MAX, &stride, ctx));
    if (stride < 1) {
        const wh_cfg_kv *kv = wh_cfg_find(s, "stride");
        return wh_error(ctx, stride < 0 ? WH_ERR_UNSUPPORTED : WH_ERR_CFG,
                        "%s:%d: [upsample] stride=%d: %s", s->file, kv ? kv->line : s->line,
                        stride, stride < 0 ? "downsampling (stride < 0) is not supported"
                                           : "stride must be at least 1");
    }
    WH_TRY(wh_cfg_float(s, "scale", 1.f, -FLT_MAX, FLT_MAX, &scale, ctx));
    wh_upsample *up = malloc(sizeof(*up));
    if (!up) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    up->stride = stride;
    up->scale = scale;
    l->priv = up;
    return WH_OK;
}

static wh_status wh__upsample_shape(wh_layer *l, wh_ctx *ctx)
{
    const wh_upsample *up = l->priv;
    const wh_shape in = l->in_shape[0];
    if ((long)in.h * up->stride > INT_MAX || (long)in.w * up->stride > INT_MAX)
        return wh_error(ctx, WH_ERR_SHAPE, "%dx%d upsampled %dx is too large", in.w, in.h,
                        up->stride);
    l->out_shape = (wh_shape){in.n, in.c, in.h * up->stride, in.w * up->stride};
    l->out_layout = wh_layer_keep_blocked(l, 0);
    return WH_OK;
}

static wh_status wh__upsample_forward(wh_layer *l, wh_exec *x)
{
    const wh_upsample *up = l->priv;
    const wh_shape is = l->in_shape[0];
    const int s = up->stride, W = is.w, OW = is.w * s;
    const float scale = up->scale;
    const float *in = x->in[0];  /* (N, C, H, W) */
    float *out = l->out;         /* (N, C, H*s, W*s) */
    const int B = wh_layout_block(l->out_layout);
    if (B > 1) {
        /* rows of W pixels of B channels: the same replication per pixel */
        const long brows = (long)is.n * (is.c / B) * is.h;
#pragma omp parallel for schedule(static)
        for (long r = 0; r < brows; r++) {
            const float *src = in + (size_t)r * W * B;
            float *dst = out + (size_t)r * s * OW * B;
            for (int ix = 0; ix < W; ix++)
                for (int k = 0; k < s; k++)
#pragma omp simd
                    for (int t = 0; t < B; t++) dst[((size_t)ix * s + k) * B + t] = scale * src[(size_t)ix * B + t];
            for (int k = 1; k < s; k++) memcpy(dst + (size_t)k * OW * B, dst, (size_t)OW * B * sizeof(float));
        }
        return WH_OK;
    }
    const long rows = (long)is.n * is.c * is.h;
    /* One input row makes s identical output rows: build the first, copy it. */
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *src = in + (size_t)r * W;
        float *dst = out + (size_t)r * s * OW;
        for (int ix = 0; ix < W; ix++) {
            const float v = scale * src[ix];
#pragma omp simd
            for (int k = 0; k < s; k++) dst[ix * s + k] = v;
        }
        for (int k = 1; k < s; k++) {
            float *d = dst + (size_t)k * OW;
#pragma omp simd
            for (int o = 0; o < OW; o++) d[o] = dst[o];
        }
    }
    return WH_OK;
}

static wh_status wh__upsample_backward(wh_layer *l, wh_exec *x)
{
    const wh_upsample *up = l->priv;
    float *din = x->din[0];
    if (!din) return WH_OK;
    const wh_shape is = l->in_shape[0];
    const int s = up->stride, W = is.w, OW = is.w * s;
    const float scale = up->scale;
    const float *dout = l->dout;
    const int B = wh_layout_block(l->out_layout);
    if (B > 1) {
        /* rows of W pixels of B lanes; each pixel gathers its s x s block */
        const long brows = (long)is.n * (is.c / B) * is.h;
#pragma omp parallel for schedule(static)
        for (long r = 0; r < brows; r++) {
            float *d = din + (size_t)r * W * B;
            const float *g = dout + (size_t)r * s * OW * B;
            for (int ix = 0; ix < W; ix++) {
                float acc[16] = {0};
                for (int k = 0; k < s; k++)
                    for (int j = 0; j < s; j++) {
                        const float *gk = g + ((size_t)k * OW + (size_t)ix * s + (size_t)j) * B;
#pragma omp simd
                        for (int t = 0; t < B; t++) acc[t] += gk[t];
                    }
#pragma omp simd
                for (int t = 0; t < B; t++) d[(size_t)ix * B + t] += scale * acc[t];
            }
        }
        return WH_OK;
    }
    const long rows = (long)is.n * is.c * is.h;
    /* Each input row gathers from its own s output rows: no two threads
     * write the same din element. */
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        float *d = din + (size_t)r * W;
        const float *g = dout + (size_t)r * s * OW;
        for (int ix = 0; ix < W; ix++) {
            float acc = 0.f;
            for (int k = 0; k < s; k++) {
                const float *gk = g + (size_t)k * OW + (size_t)ix * s;
#pragma omp simd reduction(+ : acc)
                for (int j = 0; j < s; j++) acc += gk[j];
            }
            d[ix] += scale * acc;
        }
    }
    return WH_OK;
}

static double wh__upsample_flops(const wh_layer *l)
{
    (void)l;
    return 0.0;
}

static void wh__upsample_describe(const wh_layer *l, char *buf, int n)
{
    const wh_upsample *up = l->priv;
    if (up->scale == 1.f)
        snprintf(buf, (size_t)n, "%dx", up->stride);
    else
        snprintf(buf, (size_t)n, "%dx scale %g", up->stride, (double)up->scale);
}

static void wh__upsample_destroy(wh_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

static void wh__upsample_facts(const wh_layer *l, wh_layer_facts *f)
{
    (void)l;
    f->keeps_producers = 1; /* the authors' rule */
}

const wh_layer_ops wh_upsample_ops = {
    .type = "upsample",
    .flow = WH_FLOW_SAME,
    .facts = wh__upsample_facts,
    .layouts_in = WH_LAYOUTS_ALL,
    .init = wh__upsample_init,
    .shape = wh__upsample_shape,
    .forward = wh__upsample_forward,
    .backward = wh__upsample_backward,
    .flops = wh__upsample_flops,
    .describe = wh__upsample_describe,
    .destroy = wh__upsample_destroy,
};
