/* whittle: [reorg] and [reorg3d], darknet's space-to-channel reorderings.
 *
 * Keys (darknet's parse_reorg): stride (default 1: the identity), reverse
 * (default 0). In AlexeyAB's darknet the section [reorg] builds the OLD
 * layer (src/reorg_old_layer.c, the one YOLOv2's cfgs and weights use) and
 * [reorg3d] the newer one (src/reorg_layer.c); both are one permutation of
 * the elements, reorg_cpu in src/blas.c, called with different sizes:
 *
 * reorg_cpu(w, h, c, s) pairs a "small" (c, h, w) tensor with a "big"
 * (c/s^2, h*s, w*s) one: small element (k, j, i) is big element
 *   (k % (c/s^2), j*s + (k / (c/s^2)) / s, i*s + (k / (c/s^2)) % s)
 * per image; a gather reads the big one into the small one, a scatter the
 * reverse. Both tensors are flat views of the same number of floats:
 *
 *   section   reverse  (w, h, c) given      direction  output (C, H, W)
 *   reorg3d   0        (W/s, H/s, C*s^2)    gather     (C*s^2, H/s, W/s)
 *   reorg3d   1        (W*s, H*s, C/s^2)    scatter    (C/s^2, H*s, W*s)
 *   reorg     0        (W, H, C)            gather     (C*s^2, H/s, W/s)
 *   reorg     1        (W, H, C)            scatter    (C/s^2, H*s, W*s)
 *
 * with (C, H, W) the input. [reorg3d] stride 2 is a true space-to-depth:
 * out[(dy*2 + dx)*C + c, y, x] = in[c, 2y + dy, 2x + dx]. [reorg] reads the
 * input as if it were (C/s^2, H*s, W*s), which mixes rows across channels;
 * it is kept as darknet has it because YOLOv2's weights were trained so.
 * Darknet does not check the sizes; here they must make both views exactly
 * the input's and the output's floats (else darknet reads or writes outside
 * them), which the shape step checks.
 *
 * Backward is the inverse permutation: din += dout read through the same
 * index pairs the other way. No parameters, no FLOPs (darknet counts none).
 * The output channels mix pixels of several input channels: a new channel
 * space (WH_FLOW_NEW) whose producers keep all their channels.
 */
#include <stdio.h>
#include <stdlib.h>

#include "layer.h"

#define WH__REORG_MAX 4096

typedef struct wh_reorg {
    int stride;
    int reverse;
    int old;           /* [reorg]: darknet's reorg_old_layer; 0: [reorg3d] */
    int w, h, c;       /* reorg_cpu's sizes: the small view (c, h, w) */
    int scatter;       /* 1: big view <- small (forward=1 in darknet), 0: small <- big */
} wh_reorg;

static wh_status wh__reorg_init_common(wh_layer *l, wh_cfg_section *s, int old, wh_ctx *ctx)
{
    int stride, reverse;
    WH_TRY(wh_cfg_int(s, "stride", 1, 1, WH__REORG_MAX, &stride, ctx));
    WH_TRY(wh_cfg_int(s, "reverse", 0, 0, 1, &reverse, ctx));
    wh_reorg *r = calloc(1, sizeof(*r));
    if (!r) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    r->stride = stride;
    r->reverse = reverse;
    r->old = old;
    l->priv = r;
    return WH_OK;
}

static wh_status wh__reorg_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    return wh__reorg_init_common(l, s, 1, ctx);
}

static wh_status wh__reorg3d_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    return wh__reorg_init_common(l, s, 0, ctx);
}

static wh_status wh__reorg_shape(wh_layer *l, wh_ctx *ctx)
{
    wh_reorg *r = l->priv;
    const wh_shape in = l->in_shape[0];
    const long s = r->stride, s2 = s * s;
    const char *what = r->old ? "reorg" : "reorg3d", *rev = r->reverse ? " reverse=1" : "";
    if (r->reverse ? in.c % s2 != 0 : in.h % s != 0 || in.w % s != 0)
        return wh_error(ctx, WH_ERR_SHAPE,
                        "[%s] stride=%ld%s on %dx%dx%d: %s (else the output cannot hold every input value)", what, s,
                        rev, in.w, in.h, in.c,
                        r->reverse ? "the channels must be a multiple of stride^2"
                                   : "width and height must be multiples of the stride");
    /* the output as darknet sizes it */
    const long oc = r->reverse ? in.c / s2 : in.c * s2;
    const long oh = r->reverse ? in.h * s : in.h / s, ow = r->reverse ? in.w * s : in.w / s;
    /* reorg_cpu's sizes: the input's for [reorg], the output's for [reorg3d] */
    const long w = r->old ? in.w : ow, h = r->old ? in.h : oh, c = r->old ? in.c : oc;
    if (c % s2 != 0)
        return wh_error(ctx, WH_ERR_SHAPE,
                        "[%s] stride=%ld%s on %dx%dx%d: the channels must be a multiple of stride^%d = %ld "
                        "(darknet would index outside the tensor)",
                        what, s, rev, in.w, in.h, in.c, r->old ? 2 : 4, r->old ? s2 : s2 * s2);
    r->w = (int)w, r->h = (int)h, r->c = (int)c;
    /* darknet's forward: gather (its forward=0) unless reversed */
    r->scatter = r->reverse;
    l->out_shape = (wh_shape){in.n, (int)oc, (int)oh, (int)ow};
    return WH_OK;
}

/* The permutation, one image at a time: small (c, h, w) <-> big (c/s^2,
 * h*s, w*s). to_small: small[...] (+)= big[...], else big[...] (+)= small[...].
 * acc: add (backward) instead of store (forward). Rows of the small view
 * are independent and every element is written once: threads never share
 * an output element. */
static void wh__reorg_permute(const wh_reorg *r, int n, const float *src, float *dst, int to_small, int acc)
{
    const int s = r->stride, w = r->w, h = r->h, c = r->c, ic = r->c / (r->stride * r->stride);
    const size_t img = (size_t)c * h * w;
    const long rows = (long)n * c * h;
#pragma omp parallel for schedule(static)
    for (long row = 0; row < rows; row++) {
        const int j = (int)(row % h), k = (int)(row / h % c);
        const size_t b = (size_t)(row / h / c);
        const int c2 = k % ic, off = k / ic;
        const int h2 = j * s + off / s, dx = off % s;
        /* small (k, j, :) is contiguous; big (c2, h2, dx + s * :) every s-th float */
        const size_t small = b * img + ((size_t)k * h + (size_t)j) * (size_t)w;
        const size_t big = b * img + ((size_t)c2 * h * s + (size_t)h2) * (size_t)w * s + (size_t)dx;
        const float *in = src + (to_small ? big : small);
        float *out = dst + (to_small ? small : big);
        const size_t in_step = to_small ? (size_t)s : 1, out_step = to_small ? 1 : (size_t)s;
        if (acc)
            for (int i = 0; i < w; i++) out[(size_t)i * out_step] += in[(size_t)i * in_step];
        else
            for (int i = 0; i < w; i++) out[(size_t)i * out_step] = in[(size_t)i * in_step];
    }
}

static wh_status wh__reorg_forward(wh_layer *l, wh_exec *x)
{
    const wh_reorg *r = l->priv;
    /* gather: out is the small view; scatter: out is the big view */
    wh__reorg_permute(r, l->out_shape.n, x->in[0], l->out, !r->scatter, 0);
    return WH_OK;
}

static wh_status wh__reorg_backward(wh_layer *l, wh_exec *x)
{
    const wh_reorg *r = l->priv;
    if (!x->din[0]) return WH_OK;
    /* the same pairs, from dout back to din */
    wh__reorg_permute(r, l->out_shape.n, l->dout, x->din[0], r->scatter, 1);
    return WH_OK;
}

static void wh__reorg_describe(const wh_layer *l, char *buf, int n)
{
    const wh_reorg *r = l->priv;
    snprintf(buf, (size_t)n, "/%d%s", r->stride, r->reverse ? " reverse" : "");
}

static void wh__reorg_destroy(wh_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

/* Pruning a channel of the input would remove stride^2 output channels
 * scattered over the output: the convolutions that feed it keep theirs
 * (pruning/sparsity.c, pruning/depgraph.c). */
static void wh__reorg_facts(const wh_layer *l, wh_layer_facts *f)
{
    (void)l;
    f->keeps_producers = 1;
}

const wh_layer_ops wh_reorg_ops = {
    .type = "reorg",
    .flow = WH_FLOW_NEW,
    .facts = wh__reorg_facts,
    .layouts_in = WH_LAYOUT_BIT(WH_LAYOUT_NCHW),
    .init = wh__reorg_init,
    .shape = wh__reorg_shape,
    .forward = wh__reorg_forward,
    .backward = wh__reorg_backward,
    /* no .flops: darknet counts none for it (0) */
    .describe = wh__reorg_describe,
    .destroy = wh__reorg_destroy,
};

const wh_layer_ops wh_reorg3d_ops = {
    .type = "reorg3d",
    .flow = WH_FLOW_NEW,
    .facts = wh__reorg_facts,
    .layouts_in = WH_LAYOUT_BIT(WH_LAYOUT_NCHW),
    .init = wh__reorg3d_init,
    .shape = wh__reorg_shape,
    .forward = wh__reorg_forward,
    .backward = wh__reorg_backward,
    /* no .flops: darknet counts none for it (0) */
    .describe = wh__reorg_describe,
    .destroy = wh__reorg_destroy,
};
