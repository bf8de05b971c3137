/* whittle: [route], darknet's channel concatenation (and slicing).
 *
 * Keys: layers = comma list of layer indices (negative: relative to this
 * layer), groups (default 1), group_id (default 0, < groups).
 * Each input k of C_k channels contributes its channels
 *   [group_id * C_k/groups, (group_id + 1) * C_k/groups)
 * (yolov4-tiny's "groups=2 group_id=1" takes the second half); the slices are
 * concatenated in the order of 'layers'. All inputs share N, H and W.
 * Backward adds each slice of dout back into its input's gradient.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"

#define WH__GROUPS_MAX 65536

typedef struct wh_route {
    int n_layers;
    int layers[WH_MAX_IN];   /* the cfg values, for describe */
    int groups, group_id;
} wh_route;

static wh_status wh__route_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    int vals[WH_MAX_IN], n, groups, group_id;
    WH_TRY(wh_cfg_ints(s, "layers", vals, WH_MAX_IN, &n, ctx));
    if (n == 0)
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: [route] layer %d requires key 'layers'", s->file,
                        s->line, l->index);
    for (int k = 0; k < n; k++) WH_TRY(wh_layer_resolve_index(l, s, "layers", vals[k], &l->in[k], ctx));
    WH_TRY(wh_cfg_int(s, "groups", 1, 1, WH__GROUPS_MAX, &groups, ctx));
    WH_TRY(wh_cfg_int(s, "group_id", 0, 0, groups - 1, &group_id, ctx));
    wh_route *r = malloc(sizeof(*r));
    if (!r) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    r->n_layers = n;
    memcpy(r->layers, vals, (size_t)n * sizeof(int));
    r->groups = groups;
    r->group_id = group_id;
    l->n_in = n;
    l->priv = r;
    return WH_OK;
}

static wh_status wh__route_shape(wh_layer *l, wh_ctx *ctx)
{
    const wh_route *r = l->priv;
    const wh_shape a = l->in_shape[0];
    int c = 0;
    for (int k = 0; k < l->n_in; k++) {
        const wh_shape b = l->in_shape[k];
        if (b.n != a.n || b.h != a.h || b.w != a.w)
            return wh_error(ctx, WH_ERR_SHAPE,
                            "route joins layer %d (%dx%dx%d) and layer %d (%dx%dx%d): spatial "
                            "sizes differ",
                            l->in[0], a.w, a.h, a.c, l->in[k], b.w, b.h, b.c);
        if (b.c % r->groups != 0)
            return wh_error(ctx, WH_ERR_SHAPE,
                            "input layer %d has %d channels, which groups=%d does not divide",
                            l->in[k], b.c, r->groups);
        c += b.c / r->groups;
    }
    l->out_shape = (wh_shape){a.n, c, a.h, a.w};
    /* Blocked only if every input is and every slice is whole blocks;
     * otherwise every input in NCHW (the net reorders the blocked ones). */
    const int B = wh_layout_block(l->blocked);
    int blocked = B > 1;
    for (int k = 0; k < l->n_in; k++)
        blocked &= l->in_layout[k] == l->blocked && (l->in_shape[k].c / r->groups) % B == 0;
    for (int k = 0; k < l->n_in; k++)
        if (!blocked) l->in_layout[k] = WH_LAYOUT_NCHW;
    l->out_layout = blocked ? l->blocked : WH_LAYOUT_NCHW;
    return WH_OK;
}

static wh_status wh__route_forward(wh_layer *l, wh_exec *x)
{
    const wh_route *r = l->priv;
    const wh_shape os = l->out_shape;
    const size_t plane = (size_t)os.h * os.w;
    int oc0 = 0;  /* first output channel of input k's slice */
    const int B = wh_layout_block(l->out_layout);
    if (B > 1) {
        /* whole blocks of B channels: one memcpy of H*W*B floats each */
        const int ocb = os.c / B;
        for (int k = 0; k < l->n_in; k++) {
            const int cb = l->in_shape[k].c / B, part = cb / r->groups, first = r->group_id * part;
#pragma omp parallel for collapse(2) schedule(static)
            for (int n = 0; n < os.n; n++)
                for (int q = 0; q < part; q++)
                    memcpy(l->out + ((size_t)n * ocb + (size_t)(oc0 + q)) * plane * B,
                           x->in[k] + ((size_t)n * cb + (size_t)(first + q)) * plane * B, plane * B * sizeof(float));
            oc0 += part;
        }
        return WH_OK;
    }
    for (int k = 0; k < l->n_in; k++) {
        const int C = l->in_shape[k].c, part = C / r->groups, first = r->group_id * part;
        const float *in = x->in[k];   /* (N, C, H, W) */
        float *out = l->out;          /* (N, OC, H, W) */
#pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n < os.n; n++)
            for (int c = 0; c < part; c++)
                memcpy(out + ((size_t)n * os.c + (size_t)(oc0 + c)) * plane,
                       in + ((size_t)n * C + (size_t)(first + c)) * plane, plane * sizeof(float));
        oc0 += part;
    }
    return WH_OK;
}

static wh_status wh__route_backward(wh_layer *l, wh_exec *x)
{
    const wh_route *r = l->priv;
    const wh_shape os = l->out_shape;
    const size_t plane = (size_t)os.h * os.w;
    int oc0 = 0;
    const int B = wh_layout_block(l->out_layout);
    if (B > 1) {
        /* whole blocks of B channels, as the forward copied them */
        const int ocb = os.c / B;
        for (int k = 0; k < l->n_in; k++) {
            const int cb = l->in_shape[k].c / B, part = cb / r->groups, first = r->group_id * part;
            float *din = x->din[k];
            if (din) {
#pragma omp parallel for collapse(2) schedule(static)
                for (int n = 0; n < os.n; n++)
                    for (int q = 0; q < part; q++) {
                        float *d = din + ((size_t)n * cb + (size_t)(first + q)) * plane * B;
                        const float *g = l->dout + ((size_t)n * ocb + (size_t)(oc0 + q)) * plane * B;
#pragma omp simd
                        for (size_t i = 0; i < plane * B; i++) d[i] += g[i];
                    }
            }
            oc0 += part;
        }
        return WH_OK;
    }
    /* Inputs one after another: the same layer may appear twice in 'layers',
     * and then two slices add into the same din planes. */
    for (int k = 0; k < l->n_in; k++) {
        const int C = l->in_shape[k].c, part = C / r->groups, first = r->group_id * part;
        float *din = x->din[k];
        const float *dout = l->dout;
        if (din) {
#pragma omp parallel for collapse(2) schedule(static)
            for (int n = 0; n < os.n; n++)
                for (int c = 0; c < part; c++) {
                    float *d = din + ((size_t)n * C + (size_t)(first + c)) * plane;
                    const float *g = dout + ((size_t)n * os.c + (size_t)(oc0 + c)) * plane;
#pragma omp simd
                    for (size_t i = 0; i < plane; i++) d[i] += g[i];
                }
        }
        oc0 += part;
    }
    return WH_OK;
}

static double wh__route_flops(const wh_layer *l)
{
    (void)l;
    return 0.0;
}

static void wh__route_describe(const wh_layer *l, char *buf, int n)
{
    const wh_route *r = l->priv;
    int used = 0;
    buf[0] = 0;
    for (int k = 0; k < r->n_layers && used < n; k++)
        used += snprintf(buf + used, (size_t)(n - used), "%s%d", k ? "," : "", r->layers[k]);
    if (r->groups > 1 && used < n)
        snprintf(buf + used, (size_t)(n - used), " group %d/%d", r->group_id, r->groups);
}

static void wh__route_destroy(wh_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

static void wh__route_facts(const wh_layer *l, wh_layer_facts *f)
{
    const wh_route *r = l->priv;
    f->slice_groups = r->groups;
    f->slice_id = r->group_id;
    int in_c = 0;
    for (int k = 0; k < l->n_in; k++) in_c += l->in_shape[k].c;
    f->keeps_producers = l->out_shape.c < in_c; /* a slice */
}

const wh_layer_ops wh_route_ops = {
    .type = "route",
    .flow = WH_FLOW_CONCAT,
    .facts = wh__route_facts,
    .layouts_in = WH_LAYOUTS_ALL,
    .init = wh__route_init,
    .shape = wh__route_shape,
    .forward = wh__route_forward,
    .backward = wh__route_backward,
    .flops = wh__route_flops,
    .describe = wh__route_describe,
    .destroy = wh__route_destroy,
};
