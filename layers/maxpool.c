/* whittle: [maxpool], darknet's max pooling (AlexeyAB fork).
 *
 * Keys (darknet's parser defaults): stride=1, size=stride, padding=size-1.
 *   out_h = (h + padding - size) / stride + 1   (same for w), channels kept.
 * The window of output (i, j) covers rows i*stride - padding/2 + [0, size)
 * and likewise columns; positions outside the image never win (darknet reads
 * them as -FLT_MAX). Ties go to the first position in row-major order, as
 * darknet's strict '>'. yolov3-tiny's size=2 stride=1 keeps 13x13 at 13x13;
 * SPP's size=5/9/13 stride=1 keep the size too.
 *
 * A training forward keeps each output's argmax (its offset within the input
 * plane) so that backward can send dout back to it: din[argmax] += dout.
 */
#include <float.h>
#include <string.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "layer.h"

#define WH__POOL_MAX 65536

typedef struct wh_maxpool {
    int size, stride;
    int pad;            /* darknet's 'padding': total, split pad/2 before */
    void *argmax;       /* int32_t (N, C, OH, OW): offsets into the input plane; training */
    int have_argmax;    /* the last forward was a training one */
} wh_maxpool;

static wh_status wh__maxpool_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    int stride, size, pad;
    WH_TRY(wh_cfg_int(s, "stride", 1, 1, WH__POOL_MAX, &stride, ctx));
    WH_TRY(wh_cfg_int(s, "size", stride, 1, WH__POOL_MAX, &size, ctx));
    WH_TRY(wh_cfg_int(s, "padding", size - 1, 0, WH__POOL_MAX, &pad, ctx));
    wh_maxpool *mp = calloc(1, sizeof(*mp));
    if (!mp) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    mp->size = size;
    mp->stride = stride;
    mp->pad = pad;
    l->priv = mp;
    return WH_OK;
}

/* One spatial dimension: the output size, or -1 when some window would hold
 * no pixel of the image (darknet would output -FLT_MAX there). */
static int wh__pool_out(int n_in, int size, int stride, int pad)
{
    if (n_in + pad < size) return -1;
    const int n_out = (n_in + pad - size) / stride + 1;
    const int off = -(pad / 2);
    if (off + size <= 0 || (n_out - 1) * stride + off >= n_in) return -1;
    return n_out;
}

static wh_status wh__maxpool_shape(wh_layer *l, wh_ctx *ctx)
{
    const wh_maxpool *mp = l->priv;
    const wh_shape in = l->in_shape[0];
    const int oh = wh__pool_out(in.h, mp->size, mp->stride, mp->pad);
    const int ow = wh__pool_out(in.w, mp->size, mp->stride, mp->pad);
    if (oh < 0 || ow < 0)
        return wh_error(ctx, WH_ERR_SHAPE,
                        "a %dx%d/%d window with padding=%d on a %dx%d input leaves some "
                        "windows without any pixel (input too small or padding too large)",
                        mp->size, mp->size, mp->stride, mp->pad, in.w, in.h);
    l->out_shape = (wh_shape){in.n, in.c, oh, ow};
    /* blocked in, blocked out (C a multiple of the block) */
    l->out_layout = wh_layer_keep_blocked(l, 0);
    return WH_OK;
}

static wh_status wh__maxpool_plan(wh_layer *l, wh_plan *p, wh_ctx *ctx)
{
    (void)ctx;
    wh_maxpool *mp = l->priv;
    if (!l->train) return WH_OK;
    return wh_plan_bytes(p, WH_ARENA_ACT, &mp->argmax, wh_shape_count(l->out_shape) * sizeof(int32_t));
}

static inline int wh__imax(int a, int b) { return a > b ? a : b; }
static inline int wh__imin(int a, int b) { return a < b ? a : b; }

/* (N, C/B, H, W, B): the same windows, B channels at a time. arg (training):
 * per output element, the pixel y*W+x its channel's maximum came from (the
 * first one on ties, as the plain path). The B lanes are one GNU vector
 * (GCC and clang): written as a loop over lanes, GCC kept the running maxima
 * on the stack with masked stores, 3x slower (3.3 ms instead of 1.1 for a
 * 64x208x208 2x2/2 pool on 2 cores here, 7x for the SPP's 5x5/1). */
#define WH__MAXPOOL_BLOCKED(NAME, B)                                                                                   \
    typedef float NAME##_vf __attribute__((vector_size(B * 4)));                                                       \
    typedef int32_t NAME##_vi __attribute__((vector_size(B * 4)));                                                     \
    static void NAME(const wh_layer *l, const wh_maxpool *mp, const float *in, float *out, int32_t *arg)               \
    {                                                                                                                  \
        const wh_shape is = l->in_shape[0], os = l->out_shape;                                                         \
        const int H = is.h, W = is.w, OH = os.h, OW = os.w;                                                            \
        const int size = mp->size, stride = mp->stride, off = -(mp->pad / 2);                                          \
        const long planes = (long)os.n * (os.c / B);                                                                   \
        _Pragma("omp parallel for collapse(2) schedule(static)") for (long p = 0; p < planes; p++)                    \
        for (int oy = 0; oy < OH; oy++) {                                                                              \
            const float *ip = in + (size_t)p * H * W * B;                                                              \
            float *op = out + ((size_t)p * OH + (size_t)oy) * OW * B;                                                  \
            int32_t *ap = arg ? arg + ((size_t)p * OH + (size_t)oy) * OW * B : NULL;                                   \
            const int y0 = wh__imax(oy * stride + off, 0), y1 = wh__imin(oy * stride + off + size, H);                 \
            for (int ox = 0; ox < OW; ox++) {                                                                          \
                const int x0 = wh__imax(ox * stride + off, 0), x1 = wh__imin(ox * stride + off + size, W);             \
                NAME##_vf m, v;                                                                                        \
                NAME##_vi mi;                                                                                          \
                for (int t = 0; t < B; t++) m[t] = -FLT_MAX, mi[t] = y0 * W + x0;                                      \
                for (int y = y0; y < y1; y++)                                                                          \
                    for (int xx = x0; xx < x1; xx++) {                                                                 \
                        memcpy(&v, ip + ((size_t)y * W + (size_t)xx) * B, sizeof(v));                                  \
                        const NAME##_vi better = v > m; /* all ones where v wins */                                    \
                        m = (NAME##_vf)(((NAME##_vi)v & better) | ((NAME##_vi)m & ~better));                           \
                        mi = ((int32_t)(y * W + xx) & better) | (mi & ~better);                                        \
                    }                                                                                                  \
                memcpy(op + (size_t)ox * B, &m, sizeof(m));                                                            \
                if (ap) memcpy(ap + (size_t)ox * B, &mi, sizeof(mi));                                                  \
            }                                                                                                          \
        }                                                                                                              \
    }
WH__MAXPOOL_BLOCKED(wh__maxpool_blocked8, 8)
WH__MAXPOOL_BLOCKED(wh__maxpool_blocked16, 16)
#undef WH__MAXPOOL_BLOCKED

static void wh__maxpool_blocked(const wh_layer *l, const wh_maxpool *mp, const float *in, float *out, int32_t *arg)
{
    if (wh_layout_block(l->out_layout) == 8)
        wh__maxpool_blocked8(l, mp, in, out, arg);
    else
        wh__maxpool_blocked16(l, mp, in, out, arg);
}

static wh_status wh__maxpool_forward(wh_layer *l, wh_exec *x)
{
    wh_maxpool *mp = l->priv;
    if (l->out_layout != WH_LAYOUT_NCHW) {
        wh__maxpool_blocked(l, mp, x->in[0], l->out, x->train ? (int32_t *)mp->argmax : NULL);
        mp->have_argmax = x->train;
        return WH_OK;
    }
    const wh_shape is = l->in_shape[0], os = l->out_shape;
    const int H = is.h, W = is.w, OH = os.h, OW = os.w;
    const int size = mp->size, stride = mp->stride, off = -(mp->pad / 2);
    const float *in = x->in[0];     /* (N, C, H, W) */
    float *out = l->out;            /* (N, C, OH, OW) */
    int32_t *arg = x->train ? (int32_t *)mp->argmax : NULL;
    const long planes = (long)os.n * os.c;
#pragma omp parallel for collapse(2) schedule(static)
    for (long p = 0; p < planes; p++)
        for (int oy = 0; oy < OH; oy++) {
            const float *ip = in + (size_t)p * H * W;
            const size_t o0 = ((size_t)p * OH + (size_t)oy) * OW;
            /* The window clipped to the image: no bounds test per pixel. */
            const int y0 = wh__imax(oy * stride + off, 0);
            const int y1 = wh__imin(oy * stride + off + size, H);
            for (int ox = 0; ox < OW; ox++) {
                const int x0 = wh__imax(ox * stride + off, 0);
                const int x1 = wh__imin(ox * stride + off + size, W);
                float m = -FLT_MAX;
                int32_t mi = y0 * W + x0;
                for (int y = y0; y < y1; y++)
                    for (int xx = x0; xx < x1; xx++) {
                        const float v = ip[y * W + xx];
                        const int better = v > m;
                        m = better ? v : m;
                        mi = better ? y * W + xx : mi;
                    }
                out[o0 + (size_t)ox] = m;
                if (arg) arg[o0 + (size_t)ox] = mi;
            }
        }
    mp->have_argmax = x->train;
    return WH_OK;
}

static wh_status wh__maxpool_backward(wh_layer *l, wh_exec *x)
{
    const wh_maxpool *mp = l->priv;
    if (!mp->have_argmax)
        return wh_error(x->ctx, WH_ERR_STATE, "backward needs a training forward first");
    float *din = x->din[0];
    if (!din) return WH_OK;
    const wh_shape is = l->in_shape[0], os = l->out_shape;
    const size_t plane_in = (size_t)is.h * is.w, plane_out = (size_t)os.h * os.w;
    const int32_t *arg = (const int32_t *)mp->argmax;
    const float *dout = l->dout;
    const int B = wh_layout_block(l->out_layout);
    if (B > 1) {
        /* planes of B interleaved channels; lane t's argmax names a pixel */
        const long bplanes = (long)os.n * (os.c / B);
#pragma omp parallel for schedule(static)
        for (long p = 0; p < bplanes; p++) {
            float *dp = din + (size_t)p * plane_in * B;
            const float *gp = dout + (size_t)p * plane_out * B;
            const int32_t *ap = arg + (size_t)p * plane_out * B;
            for (size_t o = 0; o < plane_out * B; o += (size_t)B)
                for (int t = 0; t < B; t++) dp[(size_t)ap[o + t] * B + t] += gp[o + t];
        }
        return WH_OK;
    }
    const long planes = (long)os.n * os.c;
    /* Windows overlap within a plane, never across planes: one thread per
     * plane writes each din element, in a fixed order. */
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        float *dp = din + (size_t)p * plane_in;
        const float *gp = dout + (size_t)p * plane_out;
        const int32_t *ap = arg + (size_t)p * plane_out;
        for (size_t o = 0; o < plane_out; o++) dp[ap[o]] += gp[o];
    }
    return WH_OK;
}

static double wh__maxpool_flops(const wh_layer *l)
{
    const wh_maxpool *mp = l->priv;
    const wh_shape o = l->out_shape;
    return (double)mp->size * mp->size * o.c * o.h * o.w;
}

static void wh__maxpool_describe(const wh_layer *l, char *buf, int n)
{
    const wh_maxpool *mp = l->priv;
    snprintf(buf, (size_t)n, "%dx%d/%d", mp->size, mp->size, mp->stride);
}

static void wh__maxpool_destroy(wh_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

/* SPP's pools (stride 1, the size kept, more than one row): the authors
 * keep the convolution they read unpruned */
static void wh__maxpool_facts(const wh_layer *l, wh_layer_facts *f)
{
    f->keeps_producers = l->out_shape.h == l->in_shape[0].h && l->out_shape.w == l->in_shape[0].w &&
                         l->in_shape[0].h > 1;
}

const wh_layer_ops wh_maxpool_ops = {
    .type = "maxpool",
    .flow = WH_FLOW_SAME,
    .facts = wh__maxpool_facts,
    .layouts_in = WH_LAYOUTS_ALL,
    .init = wh__maxpool_init,
    .shape = wh__maxpool_shape,
    .plan = wh__maxpool_plan,
    .forward = wh__maxpool_forward,
    .backward = wh__maxpool_backward,
    .flops = wh__maxpool_flops,
    .describe = wh__maxpool_describe,
    .destroy = wh__maxpool_destroy,
};
