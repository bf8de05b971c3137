/* whittle: [shortcut], darknet's residual addition.
 *
 * Keys: from = comma list of layer indices (usually one, e.g. -3),
 * activation (default linear). Inputs: in[0] = the previous layer,
 * in[1..] = the 'from' layers, all of one shape.
 *   pre = in[0] + sum_k in[k],   out = act(pre)
 * Backward: d_pre = dout * act'(pre), and every input gets din[k] += d_pre.
 * A training forward keeps pre (only needed for a non-linear activation).
 * Darknet's weighted shortcut (weights_type other than none) is not supported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "layer.h"

typedef struct wh_shortcut {
    wh_act act;
    int n_from;
    int from[WH_MAX_IN - 1];  /* the cfg values, for describe */
    float *pre;               /* (N, C, H, W) sum before the activation; training, non-linear */
    float *dpre;              /* scratch (N, C, H, W): d loss / d pre; training, non-linear */
    int have_pre;             /* the last forward was a training one */
} wh_shortcut;

static wh_status wh__shortcut_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    int vals[WH_MAX_IN - 1], n;
    WH_TRY(wh_cfg_ints(s, "from", vals, WH_MAX_IN - 1, &n, ctx));
    if (n == 0)
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: [shortcut] layer %d requires key 'from'", s->file,
                        s->line, l->index);
    for (int k = 0; k < n; k++)
        WH_TRY(wh_layer_resolve_index(l, s, "from", vals[k], &l->in[k + 1], ctx));
    const char *wt = wh_cfg_str(s, "weights_type", "none");
    if (strcmp(wt, "none") != 0) {
        const wh_cfg_kv *kv = wh_cfg_find(s, "weights_type");
        return wh_error(ctx, WH_ERR_UNSUPPORTED,
                        "%s:%d: [shortcut] key 'weights_type' = '%s': weighted shortcuts are not "
                        "supported (only 'none')",
                        s->file, kv->line, wt);
    }
    /* Without weights darknet ignores the normalisation too. */
    (void)wh_cfg_str(s, "weights_normalization", "none");
    wh_act act;
    WH_TRY(wh_act_parse(s, WH_ACT_LINEAR, &act, ctx));
    wh_shortcut *sc = calloc(1, sizeof(*sc));
    if (!sc) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    sc->act = act;
    sc->n_from = n;
    memcpy(sc->from, vals, (size_t)n * sizeof(int));
    l->n_in = 1 + n;
    l->priv = sc;
    return WH_OK;
}

static wh_status wh__shortcut_shape(wh_layer *l, wh_ctx *ctx)
{
    const wh_shape a = l->in_shape[0];
    for (int k = 1; k < l->n_in; k++) {
        const wh_shape b = l->in_shape[k];
        if (!wh_shape_eq(a, b)) {
            char na[32], nb[32];
            wh_layer_input_name(l->in[0], na, sizeof(na));
            wh_layer_input_name(l->in[k], nb, sizeof(nb));
            return wh_error(ctx, WH_ERR_SHAPE,
                            "shortcut adds %s (%dx%dx%d) and %s (%dx%dx%d): shapes differ", na,
                            a.w, a.h, a.c, nb, b.w, b.h, b.c);
        }
    }
    l->out_shape = a;
    /* elementwise: any layout, as long as all inputs share it */
    int same = a.c % wh_layout_block(l->in_layout[0]) == 0;
    for (int k = 0; k < l->n_in; k++) same &= l->in_layout[k] == l->in_layout[0];
    for (int k = 0; k < l->n_in; k++)
        if (!same) l->in_layout[k] = WH_LAYOUT_NCHW;
    l->out_layout = l->in_layout[0];
    return WH_OK;
}

static wh_status wh__shortcut_plan(wh_layer *l, wh_plan *p, wh_ctx *ctx)
{
    (void)ctx;
    wh_shortcut *sc = l->priv;
    if (!l->train || sc->act == WH_ACT_LINEAR) return WH_OK;
    const size_t n = wh_shape_count(l->out_shape);
    WH_TRY(wh_plan_buffer(p, WH_ARENA_ACT, &sc->pre, n));
    return wh_plan_buffer(p, WH_ARENA_SCRATCH, &sc->dpre, n);
}

static wh_status wh__shortcut_forward(wh_layer *l, wh_exec *x)
{
    wh_shortcut *sc = l->priv;
    const long n = (long)wh_shape_count(l->out_shape);
    /* Sum into pre when backward will need it, else straight into out. */
    float *sum = (x->train && sc->pre) ? sc->pre : l->out;
    const float *a = x->in[0], *b = x->in[1];
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) sum[i] = a[i] + b[i];
    for (int k = 2; k < l->n_in; k++) {
        const float *c = x->in[k];
#pragma omp parallel for simd schedule(static)
        for (long i = 0; i < n; i++) sum[i] += c[i];
    }
    wh_act_forward(sc->act, sum, l->out, (size_t)n);
    sc->have_pre = x->train;
    return WH_OK;
}

static wh_status wh__shortcut_backward(wh_layer *l, wh_exec *x)
{
    wh_shortcut *sc = l->priv;
    const size_t n = wh_shape_count(l->out_shape);
    const float *g = l->dout;
    if (sc->act != WH_ACT_LINEAR) {
        if (!sc->have_pre)
            return wh_error(x->ctx, WH_ERR_STATE, "backward needs a training forward first");
        wh_act_backward(sc->act, sc->pre, l->dout, sc->dpre, n, 0);
        g = sc->dpre;
    }
    /* Inputs one after another: 'from' may name the previous layer again. */
    const long nn = (long)n;
    for (int k = 0; k < l->n_in; k++) {
        float *d = x->din[k];
        if (!d) continue;
#pragma omp parallel for simd schedule(static)
        for (long i = 0; i < nn; i++) d[i] += g[i];
    }
    return WH_OK;
}

/* Darknet counts one add per output element and 'from' layer. */
static double wh__shortcut_flops(const wh_layer *l)
{
    const wh_shortcut *sc = l->priv;
    const wh_shape o = l->out_shape;
    return (double)o.c * o.h * o.w * sc->n_from;
}

static void wh__shortcut_describe(const wh_layer *l, char *buf, int n)
{
    const wh_shortcut *sc = l->priv;
    int used = 0;
    buf[0] = 0;
    for (int k = 0; k < sc->n_from && used < n; k++)
        used += snprintf(buf + used, (size_t)(n - used), "%s%d", k ? "," : "", sc->from[k]);
    if (sc->act != WH_ACT_LINEAR && used < n)
        snprintf(buf + used, (size_t)(n - used), " %s", wh_act_name(sc->act));
}

static void wh__shortcut_destroy(wh_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

static void wh__shortcut_facts(const wh_layer *l, wh_layer_facts *f)
{
    f->act = ((const wh_shortcut *)l->priv)->act;
}

const wh_layer_ops wh_shortcut_ops = {
    .type = "shortcut",
    .flow = WH_FLOW_ADD,
    .facts = wh__shortcut_facts,
    .layouts_in = WH_LAYOUTS_ALL,
    .init = wh__shortcut_init,
    .shape = wh__shortcut_shape,
    .plan = wh__shortcut_plan,
    .forward = wh__shortcut_forward,
    .backward = wh__shortcut_backward,
    .flops = wh__shortcut_flops,
    .describe = wh__shortcut_describe,
    .destroy = wh__shortcut_destroy,
};
