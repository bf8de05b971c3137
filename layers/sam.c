/* whittle: [sam], darknet's spatial attention module multiply (YOLOv4's
 * modified SAM: a point-wise attention map, no pooling).
 *
 * Keys (darknet's parse_sam): from = one layer index (required), activation
 * (default linear). Inputs: in[0] = the previous layer (usually a conv with
 * activation=logistic: the attention), in[1] = the 'from' layer (the feature
 * map); both of one shape (N, C, H, W), which is the output's.
 *   pre = in[0] * in[1]   (element by element),   out = act(pre)
 * Backward: d_pre = dout * act'(pre);  din[0] += d_pre * in[1];
 * din[1] += d_pre * in[0]. This is the exact gradient: darknet's GPU kernel
 * computes the same, its CPU code assigns the 'from' gradient instead of
 * adding to it (which loses the gradient of the from layer's other readers;
 * not followed). Darknet warns that swish and mish are unsupported here (it
 * derives the activation's gradient from the output); we keep pre, so every
 * activation's gradient is exact. Darknet counts no FLOPs for this layer and
 * it has no parameters.
 *
 * Pruning: a pruned channel's constant times a data-dependent attention is
 * not a constant, so neither input's channels may go (facts: keeps_producers).
 */
#include <stdio.h>
#include <stdlib.h>

#include "activation.h"
#include "layer.h"

typedef struct wh_sam {
    wh_act act;
    int from;       /* the cfg value, for describe */
    float *pre;     /* (N, C, H, W) product before the activation; training, non-linear */
    float *dpre;    /* scratch (N, C, H, W): d loss / d pre; training, non-linear */
    int have_pre;   /* the last forward was a training one */
} wh_sam;

static wh_status wh__sam_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    int from;
    WH_TRY(wh_cfg_int_req(s, "from", -(1 << 30), 1 << 30, &from, ctx));
    WH_TRY(wh_layer_resolve_index(l, s, "from", from, &l->in[1], ctx));
    wh_act act;
    WH_TRY(wh_act_parse(s, WH_ACT_LINEAR, &act, ctx));
    wh_sam *sm = calloc(1, sizeof(*sm));
    if (!sm) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    sm->act = act;
    sm->from = from;
    l->n_in = 2;
    l->priv = sm;
    return WH_OK;
}

static wh_status wh__sam_shape(wh_layer *l, wh_ctx *ctx)
{
    const wh_shape a = l->in_shape[0], b = l->in_shape[1];
    if (!wh_shape_eq(a, b)) {
        char na[32], nb[32];
        wh_layer_input_name(l->in[0], na, sizeof(na));
        wh_layer_input_name(l->in[1], nb, sizeof(nb));
        return wh_error(ctx, WH_ERR_SHAPE, "sam multiplies %s (%dx%dx%d) and %s (%dx%dx%d): shapes differ",
                        na, a.w, a.h, a.c, nb, b.w, b.h, b.c);
    }
    l->out_shape = a;
    /* element by element: any layout, as long as both inputs share it and
     * its blocks hold no padding channels */
    const int same = l->in_layout[0] == l->in_layout[1] && a.c % wh_layout_block(l->in_layout[0]) == 0;
    if (!same) l->in_layout[0] = l->in_layout[1] = WH_LAYOUT_NCHW;
    l->out_layout = l->in_layout[0];
    return WH_OK;
}

static wh_status wh__sam_plan(wh_layer *l, wh_plan *p, wh_ctx *ctx)
{
    (void)ctx;
    wh_sam *sm = l->priv;
    if (!l->train || sm->act == WH_ACT_LINEAR) return WH_OK;
    const size_t n = wh_shape_count(l->out_shape);
    WH_TRY(wh_plan_buffer(p, WH_ARENA_ACT, &sm->pre, n));
    return wh_plan_buffer(p, WH_ARENA_SCRATCH, &sm->dpre, n);
}

static wh_status wh__sam_forward(wh_layer *l, wh_exec *x)
{
    wh_sam *sm = l->priv;
    const long n = (long)wh_shape_count(l->out_shape);
    float *pre = (x->train && sm->pre) ? sm->pre : l->out;
    const float *a = x->in[0], *b = x->in[1];
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) pre[i] = a[i] * b[i];
    wh_act_forward(sm->act, pre, l->out, (size_t)n);
    sm->have_pre = x->train;
    return WH_OK;
}

static wh_status wh__sam_backward(wh_layer *l, wh_exec *x)
{
    wh_sam *sm = l->priv;
    const long n = (long)wh_shape_count(l->out_shape);
    const float *g = l->dout;
    if (sm->act != WH_ACT_LINEAR) {
        if (!sm->have_pre)
            return wh_error(x->ctx, WH_ERR_STATE, "backward needs a training forward first");
        wh_act_backward(sm->act, sm->pre, l->dout, sm->dpre, (size_t)n, 0);
        g = sm->dpre;
    }
    /* One input after the other: 'from' may name the previous layer again
     * (out = in^2), and then both gradients go to one buffer. */
    for (int k = 0; k < 2; k++) {
        float *d = x->din[k];
        const float *other = x->in[1 - k];
        if (!d) continue;
#pragma omp parallel for simd schedule(static)
        for (long i = 0; i < n; i++) d[i] += g[i] * other[i];
    }
    return WH_OK;
}

static void wh__sam_describe(const wh_layer *l, char *buf, int n)
{
    const wh_sam *sm = l->priv;
    if (sm->act != WH_ACT_LINEAR)
        snprintf(buf, (size_t)n, "%d %s", sm->from, wh_act_name(sm->act));
    else
        snprintf(buf, (size_t)n, "%d", sm->from);
}

static void wh__sam_destroy(wh_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

static void wh__sam_facts(const wh_layer *l, wh_layer_facts *f)
{
    f->act = ((const wh_sam *)l->priv)->act;
    f->keeps_producers = 1; /* a product: a pruned channel's constant would not stay constant */
}

/* Flow ADD: channel c of both inputs meets in output channel c, so the
 * dependency analysis couples them as a shortcut's inputs (and, with
 * keeps_producers, keeps the whole coupled set). */
const wh_layer_ops wh_sam_ops = {
    .type = "sam",
    .flow = WH_FLOW_ADD,
    .facts = wh__sam_facts,
    .layouts_in = WH_LAYOUTS_ALL,
    .init = wh__sam_init,
    .shape = wh__sam_shape,
    .plan = wh__sam_plan,
    .forward = wh__sam_forward,
    .backward = wh__sam_backward,
    /* no .flops: darknet counts none for it (0) */
    .describe = wh__sam_describe,
    .destroy = wh__sam_destroy,
    .backward_reads_input = 1,
};
