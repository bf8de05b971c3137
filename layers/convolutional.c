/* [convolutional]: convolution (oneDNN) + batch norm or bias + activation.
 *
 * Forward, training:   x --conv--> z --BN (batch stats)--> pre --act--> out
 * Forward, inference:  x --conv--> out, then BN (running stats) and act in place
 * Backward:            dpre = dout * act'(pre) --BN--> dz --conv bwd--> dx, dW
 *
 * oneDNN picks its own layouts (format tag any) for src, weights and dst;
 * our activations are plain NCHW, so a reorder runs only where the layout it
 * picked differs. The blocked copies and oneDNN's scratchpad live in the
 * net's shared scratch arena: they are dead once the layer call returns.
 *
 * Batch norm follows darknet's CPU path exactly: the batch variance is the
 * unbiased one (divided by M-1, M = N*H*W), xhat = (x - mean) / (sqrt(var) +
 * 1e-6), running statistics move by 1 % per step. Backward is the exact
 * gradient of that forward (checked by finite differences in the tests).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framework/core/net.h"
#include "framework/core/plan.h"
#include "activation.h"
#include "layer.h"

#define WH_BN_EPS 1e-6f      /* added to the standard deviation, as darknet's CPU path */

/* One tensor argument of a oneDNN primitive: our plain buffer ("user"), the
 * layout the primitive wants, and the reorder between them when they differ. */
typedef struct wh__darg {
    dnnl_memory_desc_t user_md, prim_md;
    int differs;              /* prim_md != user_md: a reorder and a scratch copy */
    void *buf;                /* scratch for the primitive-layout copy */
    dnnl_memory_t user, prim; /* prim == user when !differs */
    dnnl_primitive_t reorder; /* user->prim (inputs) or prim->user (outputs) */
} wh__darg;

enum { P_BIASES, P_SCALES, P_MEAN, P_VAR, P_WEIGHTS }; /* darknet's .weights order */

typedef struct wh__conv {
    int filters, size, stride, pad, groups, bn;
    wh_act act;
    dnnl_dims_t strides, pad_l, pad_r;
    /* buffers (floats) */
    float *z;      /* (N,OC,OH,OW) conv output, training, in the output's layout; the
                    * pre-activation k z + off is recomputed from it, never stored */
    float *mean;   /* (OC) batch mean, training with BN */
    float *sd;     /* (OC) sqrt(batch variance), training with BN */
    float *dz;     /* scratch (N,OC,OH,OW): gradient w.r.t. z */
    float *chan;   /* scratch (4 OC): inv_s, a, mdy, bxh of the BN backward */
    double *part;  /* scratch (N * OC * 2): per-plane partial sums */
    double *sums;  /* scratch (2 OC): per-channel sums of the backward */
    float *dx_tmp; /* scratch (N,C,H,W): backward-data result before accumulation */
    float *dw_tmp; /* scratch (weights): backward-weights result before accumulation */
    void *pad_scratch; /* oneDNN scratchpad (user mode), the largest of the three */
    /* Inference nets: BN (or the bias) and the activation run as post-ops of
     * the convolution primitive: dst = act(conv * k + off) per channel, one
     * pass over the output instead of three. k, off: (OC), this call only. */
    int fused;
    float *fk, *foff;
    dnnl_memory_t m_k, m_off;
    size_t pad_bytes;
    /* oneDNN */
    dnnl_primitive_desc_t fwd_pd, bwdd_pd, bwdw_pd;
    dnnl_primitive_t fwd, bwdd, bwdw;
    dnnl_memory_t pad_fwd, pad_bwdd, pad_bwdw; /* views of pad_scratch, each with its primitive's md */
    wh__darg f_src, f_wei, f_dst;        /* forward */
    wh__darg d_ddst, d_wei, d_dsrc;      /* backward data */
    wh__darg w_src, w_ddst, w_dwei;      /* backward weights */
} wh__conv;

static wh__conv *wh__c(const wh_layer *l) { return (wh__conv *)l->priv; }

static wh_status wh_conv_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    wh__conv *c = calloc(1, sizeof(*c));
    if (!c) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    l->priv = c;
    WH_TRY(wh_cfg_int_req(s, "filters", 1, 1 << 16, &c->filters, ctx));
    WH_TRY(wh_cfg_int(s, "size", 1, 1, 255, &c->size, ctx));
    WH_TRY(wh_cfg_int(s, "stride", 1, 1, 255, &c->stride, ctx));
    int pad_flag, padding;
    WH_TRY(wh_cfg_int(s, "pad", 0, 0, 1, &pad_flag, ctx));
    WH_TRY(wh_cfg_int(s, "padding", 0, 0, 255, &padding, ctx));
    c->pad = pad_flag ? c->size / 2 : padding; /* darknet: pad=1 means size/2 */
    WH_TRY(wh_cfg_int(s, "groups", 1, 1, 1 << 16, &c->groups, ctx));
    WH_TRY(wh_cfg_int(s, "batch_normalize", 0, 0, 1, &c->bn, ctx));
    WH_TRY(wh_act_parse(s, WH_ACT_LOGISTIC, &c->act, ctx)); /* darknet's default */
    /* darknet keys that would change the arithmetic: refuse rather than
     * silently compute something else. */
    static const struct { const char *key; int ok; } unsupported[] = {
        {"dilation", 1}, {"stride_x", -1}, {"stride_y", -1}, {"antialiasing", 0},
        {"binary", 0},   {"xnor", 0},      {"share_index", -1}, {"deform", 0},
        {"assisted_excitation", 0}, {"coordconv", 0}};
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        wh_cfg_kv *kv = wh_cfg_find(s, unsupported[i].key);
        if (!kv) continue;
        int v; /* parsed as strictly as every other key: "1x" is an error, not 1 */
        WH_TRY(wh_cfg_int(s, unsupported[i].key, 0, INT_MIN, INT_MAX, &v, ctx));
        int fine = unsupported[i].ok >= 0 ? v == unsupported[i].ok
                                          : (strcmp(unsupported[i].key, "share_index") != 0 &&
                                             v == c->stride);
        if (!fine)
            return wh_error(ctx, WH_ERR_UNSUPPORTED, "%s:%d: [convolutional] key '%s=%s' is not supported",
                            s->file, kv->line, kv->key, kv->val);
    }
    return WH_OK;
}

static wh_status wh_conv_shape(wh_layer *l, wh_ctx *ctx)
{
    wh__conv *c = wh__c(l);
    const wh_shape in = l->in_shape[0];
    if (in.c % c->groups || c->filters % c->groups)
        return wh_error(ctx, WH_ERR_SHAPE,
                        "groups=%d must divide the input channels (%d) and filters (%d)", c->groups,
                        in.c, c->filters);
    int oh = (in.h + 2 * c->pad - c->size) / c->stride + 1;
    int ow = (in.w + 2 * c->pad - c->size) / c->stride + 1;
    if (in.h + 2 * c->pad < c->size || in.w + 2 * c->pad < c->size)
        return wh_error(ctx, WH_ERR_SHAPE, "kernel %dx%d larger than the padded input %dx%d",
                        c->size, c->size, in.w + 2 * c->pad, in.h + 2 * c->pad);
    l->out_shape = (wh_shape){in.n, c->filters, oh, ow};
    /* Blocked input only in inference nets and without padding channels
     * (training keeps NCHW: BN statistics and gradients assume it). */
    wh_layer_keep_blocked(l, 0);
    /* blocked output where the net allows it and no channel is padding */
    if (l->blocked != WH_LAYOUT_NCHW && c->filters % wh_layout_block(l->blocked) == 0) l->out_layout = l->blocked;
    c->strides[0] = c->strides[1] = c->stride;
    c->pad_l[0] = c->pad_l[1] = c->pad;
    /* Right/bottom padding that makes oneDNN's size equation exact; darknet
     * never reads past it (the division above floors). */
    c->pad_r[0] = (oh - 1) * c->stride + c->size - in.h - c->pad;
    c->pad_r[1] = (ow - 1) * c->stride + c->size - in.w - c->pad;
    return WH_OK;
}

static size_t wh__nweights(const wh_layer *l)
{
    const wh__conv *c = wh__c(l);
    return (size_t)c->filters * (size_t)(l->in_shape[0].c / c->groups) * (size_t)c->size *
           (size_t)c->size;
}

static dnnl_format_tag_t wh__tag(wh_layout lay)
{
    return lay == WH_LAYOUT_NCHW16C ? dnnl_nChw16c : lay == WH_LAYOUT_NCHW8C ? dnnl_nChw8c : dnnl_nchw;
}

/* Memory descriptors in our layouts. */
static void wh__user_mds(const wh_layer *l, dnnl_memory_desc_t *src, dnnl_memory_desc_t *wei,
                         dnnl_memory_desc_t *dst, dnnl_format_tag_t tag_any_or_plain)
{
    const wh__conv *c = wh__c(l);
    const wh_shape in = l->in_shape[0], out = l->out_shape;
    int any = tag_any_or_plain == dnnl_format_tag_any;
    dnnl_dims_t ds = {in.n, in.c, in.h, in.w}, dd = {out.n, out.c, out.h, out.w};
    const dnnl_format_tag_t ts = wh__tag(l->in_layout[0]), td = wh__tag(l->out_layout);
    dnnl_memory_desc_init_by_tag(src, 4, ds, dnnl_f32, any ? dnnl_format_tag_any : ts);
    dnnl_memory_desc_init_by_tag(dst, 4, dd, dnnl_f32, any ? dnnl_format_tag_any : td);
    if (c->groups == 1) {
        dnnl_dims_t dw = {c->filters, in.c, c->size, c->size};
        dnnl_memory_desc_init_by_tag(wei, 4, dw, dnnl_f32, any ? dnnl_format_tag_any : dnnl_oihw);
    } else {
        dnnl_dims_t dw = {c->groups, c->filters / c->groups, in.c / c->groups, c->size, c->size};
        dnnl_memory_desc_init_by_tag(wei, 5, dw, dnnl_f32, any ? dnnl_format_tag_any : dnnl_goihw);
    }
}

static void wh__darg_plan(wh__darg *a, const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *prim)
{
    a->user_md = *user;
    a->prim_md = *prim;
    a->differs = !dnnl_memory_desc_equal(user, prim);
}

static wh_status wh__darg_request(wh__darg *a, wh_plan *p)
{
    if (!a->differs) return WH_OK;
    return wh_plan_bytes(p, WH_ARENA_SCRATCH, &a->buf, dnnl_memory_desc_get_size(&a->prim_md));
}

/* (1, OC, 1, 1) per-channel operand of the binary post-ops */
static void wh__chan_md(const wh__conv *c, dnnl_memory_desc_t *md)
{
    const dnnl_dims_t d = {1, c->filters, 1, 1};
    dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, dnnl_nchw);
}

/* Post-ops: * k, + off (per channel), then the activation. */
static dnnl_status_t wh__fused_attr(const wh__conv *c, dnnl_primitive_attr_t *out)
{
    dnnl_status_t s = dnnl_primitive_attr_create(out);
    if (s != dnnl_success) return s;
    dnnl_primitive_attr_set_scratchpad_mode(*out, dnnl_scratchpad_mode_user);
    dnnl_post_ops_t po;
    if ((s = dnnl_post_ops_create(&po)) != dnnl_success) return s;
    dnnl_memory_desc_t md;
    wh__chan_md(c, &md);
    s = dnnl_post_ops_append_binary(po, dnnl_binary_mul, &md);
    if (s == dnnl_success) s = dnnl_post_ops_append_binary(po, dnnl_binary_add, &md);
    const struct {
        wh_act act;
        dnnl_alg_kind_t alg;
        float alpha;
    } map[] = {{WH_ACT_LEAKY, dnnl_eltwise_relu, 0.1f},     {WH_ACT_RELU, dnnl_eltwise_relu, 0.f},
               {WH_ACT_MISH, dnnl_eltwise_mish, 0.f},       {WH_ACT_LOGISTIC, dnnl_eltwise_logistic, 0.f},
               {WH_ACT_SWISH, dnnl_eltwise_swish, 1.f},     {WH_ACT_TANH, dnnl_eltwise_tanh, 0.f}};
    for (size_t i = 0; s == dnnl_success && i < sizeof(map) / sizeof(map[0]); i++)
        if (map[i].act == c->act) s = dnnl_post_ops_append_eltwise(po, 1.f, map[i].alg, map[i].alpha, 0.f);
    if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(*out, po);
    dnnl_post_ops_destroy(po);
    return s;
}

static wh_status wh_conv_plan(wh_layer *l, wh_plan *p, wh_ctx *ctx)
{
    wh__conv *c = wh__c(l);
    const int oc = c->filters;
    const size_t n_out = wh_shape_count(l->out_shape), n_in = wh_shape_count(l->in_shape[0]);
    /* darknet's order of the .weights file: biases, [scales, mean, var], weights */
    int cnt = WH_PARAM_COUNT;
    wh_plan_param(p, l, "biases", (size_t)oc, WH_PARAM_TRAIN | cnt);
    if (c->bn) {
        wh_plan_param(p, l, "scales", (size_t)oc, WH_PARAM_TRAIN | cnt);
        wh_plan_param(p, l, "rolling_mean", (size_t)oc, 0);
        wh_plan_param(p, l, "rolling_variance", (size_t)oc, 0);
    }
    int wi = wh_plan_param(p, l, "weights", wh__nweights(l), WH_PARAM_TRAIN | WH_PARAM_DECAY | cnt);
    if (wi < 0) return wh_error(ctx, WH_ERR_NOMEM, "out of memory while planning");
    wh_param *pw = &l->params[wi];
    pw->ndims = 4; /* darknet's and oneDNN's oihw order, groups stacked along OC */
    pw->dims[0] = oc;
    pw->dims[1] = l->in_shape[0].c / c->groups;
    pw->dims[2] = pw->dims[3] = c->size;

    /* oneDNN primitive descriptors: sizes of the blocked copies come from them. */
    dnnl_memory_desc_t u_src, u_wei, u_dst, a_src, a_wei, a_dst;
    wh__user_mds(l, &u_src, &u_wei, &u_dst, dnnl_nchw);
    wh__user_mds(l, &a_src, &a_wei, &a_dst, dnnl_format_tag_any);
    dnnl_primitive_attr_t attr;
    WH_DNNL(dnnl_primitive_attr_create(&attr), "attr create", ctx);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    wh_status st = WH_OK;
    dnnl_convolution_desc_t fd;
    st = wh_dnnl_check(dnnl_convolution_forward_desc_init(
                           &fd, l->train ? dnnl_forward_training : dnnl_forward_inference,
                           dnnl_convolution_direct, &a_src, &a_wei, NULL, &a_dst, c->strides,
                           c->pad_l, c->pad_r),
                       "convolution forward descriptor", ctx);
    c->fused = 0;
    if (st == WH_OK && !l->train) {
        /* the fused inference primitive; if this oneDNN lacks it for the
         * shape, the plain one below (and separate BN/activation passes) */
        dnnl_primitive_attr_t fattr = NULL;
        if (wh__fused_attr(c, &fattr) == dnnl_success &&
            dnnl_primitive_desc_create(&c->fwd_pd, &fd, fattr, p->engine, NULL) == dnnl_success)
            c->fused = 1;
        if (fattr) dnnl_primitive_attr_destroy(fattr);
    }
    if (st == WH_OK && !c->fused)
        st = wh_dnnl_check(dnnl_primitive_desc_create(&c->fwd_pd, &fd, attr, p->engine, NULL),
                           "convolution forward primitive descriptor", ctx);
    if (st == WH_OK && l->train) {
        dnnl_convolution_desc_t bd, bw;
        st = wh_dnnl_check(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct,
                                                                    &a_src, &a_wei, &a_dst,
                                                                    c->strides, c->pad_l, c->pad_r),
                           "convolution backward-data descriptor", ctx);
        if (st == WH_OK)
            st = wh_dnnl_check(dnnl_primitive_desc_create(&c->bwdd_pd, &bd, attr, p->engine, c->fwd_pd),
                               "convolution backward-data primitive descriptor", ctx);
        if (st == WH_OK)
            st = wh_dnnl_check(dnnl_convolution_backward_weights_desc_init(
                                   &bw, dnnl_convolution_direct, &a_src, &a_wei, NULL, &a_dst,
                                   c->strides, c->pad_l, c->pad_r),
                               "convolution backward-weights descriptor", ctx);
        if (st == WH_OK)
            st = wh_dnnl_check(dnnl_primitive_desc_create(&c->bwdw_pd, &bw, attr, p->engine, c->fwd_pd),
                               "convolution backward-weights primitive descriptor", ctx);
    }
    dnnl_primitive_attr_destroy(attr);
    WH_TRY(st);

    wh__darg_plan(&c->f_src, &u_src, dnnl_primitive_desc_query_md(c->fwd_pd, dnnl_query_src_md, 0));
    wh__darg_plan(&c->f_wei, &u_wei, dnnl_primitive_desc_query_md(c->fwd_pd, dnnl_query_weights_md, 0));
    wh__darg_plan(&c->f_dst, &u_dst, dnnl_primitive_desc_query_md(c->fwd_pd, dnnl_query_dst_md, 0));
    c->pad_bytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(c->fwd_pd, dnnl_query_scratchpad_md, 0));
    if (l->train) {
        const dnnl_primitive_desc_t d = c->bwdd_pd, w = c->bwdw_pd;
        wh__darg_plan(&c->d_ddst, &u_dst, dnnl_primitive_desc_query_md(d, dnnl_query_diff_dst_md, 0));
        wh__darg_plan(&c->d_wei, &u_wei, dnnl_primitive_desc_query_md(d, dnnl_query_weights_md, 0));
        wh__darg_plan(&c->d_dsrc, &u_src, dnnl_primitive_desc_query_md(d, dnnl_query_diff_src_md, 0));
        wh__darg_plan(&c->w_src, &u_src, dnnl_primitive_desc_query_md(w, dnnl_query_src_md, 0));
        wh__darg_plan(&c->w_ddst, &u_dst, dnnl_primitive_desc_query_md(w, dnnl_query_diff_dst_md, 0));
        wh__darg_plan(&c->w_dwei, &u_wei, dnnl_primitive_desc_query_md(w, dnnl_query_diff_weights_md, 0));
        size_t b1 = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(d, dnnl_query_scratchpad_md, 0));
        size_t b2 = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(w, dnnl_query_scratchpad_md, 0));
        if (b1 > c->pad_bytes) c->pad_bytes = b1;
        if (b2 > c->pad_bytes) c->pad_bytes = b2;
    }

    /* Activation-lifetime buffers (kept from forward to backward). */
    if (l->train) {
        WH_TRY(wh_plan_buffer(p, WH_ARENA_ACT, &c->z, n_out));
        if (c->bn) {
            WH_TRY(wh_plan_buffer(p, WH_ARENA_ACT, &c->mean, (size_t)oc));
            WH_TRY(wh_plan_buffer(p, WH_ARENA_ACT, &c->sd, (size_t)oc));
        }
    }
    /* Scratch (this call only). Forward and backward never overlap, but one
     * plan covers both; the arena is shared with every other layer anyway. */
    WH_TRY(wh__darg_request(&c->f_src, p));
    WH_TRY(wh__darg_request(&c->f_wei, p));
    WH_TRY(wh__darg_request(&c->f_dst, p));
    if (c->pad_bytes) WH_TRY(wh_plan_bytes(p, WH_ARENA_SCRATCH, &c->pad_scratch, c->pad_bytes));
    /* per-channel k and off of every inference forward, fused or not */
    WH_TRY(wh_plan_buffer(p, WH_ARENA_SCRATCH, &c->fk, (size_t)oc));
    WH_TRY(wh_plan_buffer(p, WH_ARENA_SCRATCH, &c->foff, (size_t)oc));
    if (l->train) {
        WH_TRY(wh_plan_buffer(p, WH_ARENA_SCRATCH, &c->dz, n_out));
        WH_TRY(wh_plan_buffer(p, WH_ARENA_SCRATCH, &c->chan, 4 * (size_t)oc));
        WH_TRY(wh_plan_bytes(p, WH_ARENA_SCRATCH, (void **)&c->part, (size_t)l->out_shape.n * (size_t)oc * 2 * sizeof(double)));
        WH_TRY(wh_plan_bytes(p, WH_ARENA_SCRATCH, (void **)&c->sums, 2 * (size_t)oc * sizeof(double)));
        WH_TRY(wh_plan_buffer(p, WH_ARENA_SCRATCH, &c->dx_tmp, n_in));
        WH_TRY(wh_plan_buffer(p, WH_ARENA_SCRATCH, &c->dw_tmp, wh__nweights(l)));
        WH_TRY(wh__darg_request(&c->d_ddst, p));
        WH_TRY(wh__darg_request(&c->d_wei, p));
        WH_TRY(wh__darg_request(&c->d_dsrc, p));
        WH_TRY(wh__darg_request(&c->w_src, p));
        WH_TRY(wh__darg_request(&c->w_ddst, p));
        WH_TRY(wh__darg_request(&c->w_dwei, p));
    }
    return WH_OK;
}

/* input: 1 when the data flows user -> primitive (a source), 0 for results. */
static wh_status wh__darg_bind(wh__darg *a, dnnl_engine_t eng, int input, wh_ctx *ctx)
{
    WH_DNNL(dnnl_memory_create(&a->user, &a->user_md, eng, DNNL_MEMORY_NONE), "memory", ctx);
    if (!a->differs) {
        a->prim = a->user;
        return WH_OK;
    }
    WH_DNNL(dnnl_memory_create(&a->prim, &a->prim_md, eng, a->buf), "memory", ctx);
    dnnl_primitive_desc_t rpd;
    const dnnl_memory_desc_t *from = input ? &a->user_md : &a->prim_md;
    const dnnl_memory_desc_t *to = input ? &a->prim_md : &a->user_md;
    WH_DNNL(dnnl_reorder_primitive_desc_create(&rpd, from, eng, to, eng, NULL), "reorder descriptor", ctx);
    dnnl_status_t s = dnnl_primitive_create(&a->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    return wh_dnnl_check(s, "reorder primitive", ctx);
}

static void wh__darg_destroy(wh__darg *a)
{
    if (a->reorder) dnnl_primitive_destroy(a->reorder);
    if (a->prim && a->prim != a->user) dnnl_memory_destroy(a->prim);
    if (a->user) dnnl_memory_destroy(a->user);
    memset(a, 0, sizeof(*a));
}

/* A view of the shared scratchpad bytes with primitive pd's md. */
static wh_status wh__pad_view(dnnl_primitive_desc_t pd, wh__conv *c, dnnl_engine_t e, dnnl_memory_t *out,
                              wh_ctx *ctx)
{
    if (!c->pad_bytes) return WH_OK;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return wh_dnnl_check(dnnl_memory_create(out, md, e, c->pad_scratch), "scratchpad memory", ctx);
}

static wh_status wh_conv_bind(wh_layer *l, wh_net *net, wh_ctx *ctx)
{
    wh__conv *c = wh__c(l);
    dnnl_engine_t e = net->engine;
    WH_DNNL(dnnl_primitive_create(&c->fwd, c->fwd_pd), "convolution forward primitive", ctx);
    WH_TRY(wh__darg_bind(&c->f_src, e, 1, ctx));
    WH_TRY(wh__darg_bind(&c->f_wei, e, 1, ctx));
    WH_TRY(wh__darg_bind(&c->f_dst, e, 0, ctx));
    WH_TRY(wh__pad_view(c->fwd_pd, c, e, &c->pad_fwd, ctx));
    if (c->fused) {
        dnnl_memory_desc_t md;
        wh__chan_md(c, &md);
        WH_DNNL(dnnl_memory_create(&c->m_k, &md, e, c->fk), "memory", ctx);
        WH_DNNL(dnnl_memory_create(&c->m_off, &md, e, c->foff), "memory", ctx);
    }
    if (l->train) {
        WH_DNNL(dnnl_primitive_create(&c->bwdd, c->bwdd_pd), "convolution backward-data primitive", ctx);
        WH_DNNL(dnnl_primitive_create(&c->bwdw, c->bwdw_pd), "convolution backward-weights primitive", ctx);
        WH_TRY(wh__darg_bind(&c->d_ddst, e, 1, ctx));
        WH_TRY(wh__darg_bind(&c->d_wei, e, 1, ctx));
        WH_TRY(wh__darg_bind(&c->d_dsrc, e, 0, ctx));
        WH_TRY(wh__darg_bind(&c->w_src, e, 1, ctx));
        WH_TRY(wh__darg_bind(&c->w_ddst, e, 1, ctx));
        WH_TRY(wh__darg_bind(&c->w_dwei, e, 0, ctx));
        WH_TRY(wh__pad_view(c->bwdd_pd, c, e, &c->pad_bwdd, ctx));
        WH_TRY(wh__pad_view(c->bwdw_pd, c, e, &c->pad_bwdw, ctx));
    }
    return WH_OK;
}

/* The scratchpad is one byte buffer of pad_bytes (the largest need of the
 * three primitives); each primitive has its own view of it (made at bind). */
static wh_status wh__run(dnnl_primitive_t prim, dnnl_memory_t pad, wh_net *net, dnnl_exec_arg_t *args,
                         int nargs, wh_ctx *ctx)
{
    if (pad) {
        args[nargs].arg = DNNL_ARG_SCRATCHPAD;
        args[nargs].memory = pad;
        nargs++;
    }
    dnnl_status_t s = dnnl_primitive_execute(prim, net->stream, nargs, args);
    if (s == dnnl_success) s = dnnl_stream_wait(net->stream);
    return wh_dnnl_check(s, "primitive execution", ctx);
}

/* Points a's user memory at ptr and, for an input, reorders it into the
 * primitive's layout. */
static wh_status wh__darg_in(wh__darg *a, const void *ptr, wh_net *net, wh_ctx *ctx)
{
    WH_DNNL(dnnl_memory_set_data_handle(a->user, (void *)ptr), "set handle", ctx);
    if (!a->differs) return WH_OK;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a->user}, {DNNL_ARG_TO, a->prim}};
    WH_DNNL(dnnl_primitive_execute(a->reorder, net->stream, 2, args), "reorder", ctx);
    return wh_dnnl_check(dnnl_stream_wait(net->stream), "reorder", ctx);
}

/* After a primitive wrote a's primitive-layout memory: bring it to ptr. */
static wh_status wh__darg_out(wh__darg *a, void *ptr, wh_net *net, wh_ctx *ctx)
{
    WH_DNNL(dnnl_memory_set_data_handle(a->user, ptr), "set handle", ctx);
    if (!a->differs) return WH_OK;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a->prim}, {DNNL_ARG_TO, a->user}};
    WH_DNNL(dnnl_primitive_execute(a->reorder, net->stream, 2, args), "reorder", ctx);
    return wh_dnnl_check(dnnl_stream_wait(net->stream), "reorder", ctx);
}

/* y = k[c] * y + off[c] for a (N, C, H, W) tensor in either layout. */
static void wh__affine(float *y, wh_shape o, wh_layout lay, const float *k, const float *off)
{
    const size_t hw = (size_t)o.h * o.w;
    const int B = wh_layout_block(lay);
    if (B > 1) {
        const int cb = (o.c + B - 1) / B;
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < o.n; b++)
            for (int q = 0; q < cb; q++) {
                float kk[16], oo[16];
                for (int t = 0; t < B; t++) {
                    const int ch = q * B + t;
                    kk[t] = ch < o.c ? k[ch] : 0.f; /* padding channels stay 0 */
                    oo[t] = ch < o.c ? off[ch] : 0.f;
                }
                float *p = y + ((size_t)b * cb + (size_t)q) * hw * B;
                for (size_t i = 0; i < hw; i++)
#pragma omp simd
                    for (int t = 0; t < B; t++) p[i * B + t] = kk[t] * p[i * B + t] + oo[t];
            }
        return;
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < o.n; b++)
        for (int q = 0; q < o.c; q++) {
            float *p = y + ((size_t)b * o.c + (size_t)q) * hw;
            const float kq = k[q], oq = off[q];
#pragma omp simd
            for (size_t i = 0; i < hw; i++) p[i] = kq * p[i] + oq;
        }
}

/* --- training passes over either layout -------------------------------------
 * The training forward and backward see the output (N, C, H, W), plain or
 * blocked, as n*cb planes of hw*B floats: B = 1 (NCHW) gives one channel per
 * plane (cb = C); a blocked layout interleaves B channels (cb = C / B, the
 * net keeps an output blocked only when B divides C). Float i of plane
 * (b, q) belongs to channel q*B + i % B. As 16 % B == 0, lane e of every
 * 16-float group holds channel q*B + e % B, so one 16-lane loop serves every
 * layout, vectorised, with per-lane copies of the per-channel constants. */
#define WH__LANES 16
#define WH__CHUNK 4096 /* floats per fused step (16 KB): the chunk stays in L1 between its passes */

typedef struct wh__planes {
    int B, cb, n;
    size_t len; /* floats per plane: hw * B */
} wh__planes;

static wh__planes wh__planes_of(wh_shape o, wh_layout lay)
{
    const int B = wh_layout_block(lay);
    return (wh__planes){B, o.c / B, o.n, (size_t)o.h * (size_t)o.w * (size_t)B};
}

/* out[e] = v[q*B + e % B]: a per-channel constant, spread over the lanes */
static inline void wh__lanes(const float *v, int q, int B, float out[WH__LANES])
{
    for (int e = 0; e < WH__LANES; e++) out[e] = v[q * B + e % B];
}

/* Lane sums folded per channel of the plane: out[t] = sum of acc[e], e % B == t. */
static inline void wh__fold(const double acc[WH__LANES], int B, double *out)
{
    for (int t = 0; t < B; t++) out[t] = 0;
    for (int e = 0; e < WH__LANES; e++) out[e % B] += acc[e];
}

/* y = kk * x + oo, lane by lane; n floats from a 16-aligned plane offset */
static inline void wh__affine_lanes(const float *x, float *y, size_t n, const float kk[WH__LANES],
                                    const float oo[WH__LANES])
{
    size_t i = 0;
    for (; i + WH__LANES <= n; i += WH__LANES)
#pragma omp simd
        for (int e = 0; e < WH__LANES; e++) y[i + e] = kk[e] * x[i + e] + oo[e];
    for (int e = 0; i < n; i++, e++) y[i] = kk[e] * x[i] + oo[e];
}

/* Adds the per-plane partial sums (two arrays of B per plane) over the batch
 * in image order: sums[c] and sums[C + c] per channel c. */
static void wh__reduce_parts(const double *part, wh__planes g, double *sums)
{
    const int C = g.cb * g.B;
    for (int q = 0; q < g.cb; q++)
        for (int t = 0; t < g.B; t++) {
            double a = 0, b2 = 0;
            for (int b = 0; b < g.n; b++) {
                const double *pp = part + ((size_t)b * g.cb + (size_t)q) * 2 * g.B;
                a += pp[t];
                b2 += pp[g.B + t];
            }
            sums[q * g.B + t] = a;
            sums[C + q * g.B + t] = b2;
        }
}

/* Batch statistics of z per channel: mean and sqrt(unbiased variance), in one
 * pass (sums of z and z^2 in float64: with M = N*H*W up to ~10^6 terms the
 * cancellation in sum z^2 - M mean^2 stays near 1e-10 relative). Each plane's
 * partial sums go to part (n*cb*2*B doubles) and are added in a fixed order,
 * so the result does not depend on the thread count. */
/* Batch-norm statistics of z. With the net's checks on, sums that are not
 * finite on this rank's images (before any sum over ranks: over MPI the rank
 * where a NaN arose is the one to name) set x's nonfinite_sums. */
static wh_status wh__bn_stats(wh_exec *x, const float *z, wh__planes g, double *part, double *sums, float *mean,
                              float *sd)
{
    const wh_net *net = x->net;
    wh_ctx *ctx = x->ctx;
    const long np = (long)g.n * g.cb;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < np; p++) {
        const float *zp = z + (size_t)p * g.len;
        double s[WH__LANES] = {0}, ss[WH__LANES] = {0};
        size_t i = 0;
        for (; i + WH__LANES <= g.len; i += WH__LANES)
#pragma omp simd
            for (int e = 0; e < WH__LANES; e++) {
                const double v = zp[i + e];
                s[e] += v;
                ss[e] += v * v;
            }
        for (int e = 0; i < g.len; i++, e++) {
            s[e] += zp[i];
            ss[e] += (double)zp[i] * zp[i];
        }
        wh__fold(s, g.B, part + (size_t)p * 2 * g.B);
        wh__fold(ss, g.B, part + (size_t)p * 2 * g.B + g.B);
    }
    wh__reduce_parts(part, g, sums);
    double m = (double)g.n * (double)(g.len / (size_t)g.B);
    const int C = g.cb * g.B;
    /* a NaN or infinity anywhere in z shows in its channel's sums; then
     * act(k z + off) is finite too (the net's check needs no scan) */
    for (int c = 0; net->check_finite && c < C && !x->nonfinite_sums; c++)
        if (!isfinite(sums[c]) || !isfinite(sums[C + c])) {
            x->nonfinite_sums = 1;
            snprintf(x->nonfinite_what, sizeof(x->nonfinite_what), "batch-norm sums of channel %d: %g, %g", c,
                     sums[c], sums[C + c]);
        }
    if (net->bn_sum) { /* data-parallel: the statistics of every rank's images */
        WH_TRY(net->bn_sum(net->bn_user, sums, 2 * (size_t)C, ctx));
        m *= net->bn_ranks;
    }
    for (int c = 0; c < C; c++) {
        const double mu = sums[c] / m;
        mean[c] = (float)mu;
        sd[c] = (float)sqrt(fmax((sums[C + c] - sums[c] * mu) / (m > 1 ? m - 1 : 1), 0.0));
    }
    return WH_OK;
}

/* out = act(k * z + off) per channel, in one pass: the pre-activation lives
 * only in a chunk-sized buffer (the backward recomputes it from z). */
static void wh__affine_act(const float *z, float *out, wh__planes g, const float *k, const float *off, wh_act act)
{
    const long np = (long)g.n * g.cb;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < np; p++) {
        float kk[WH__LANES], oo[WH__LANES], tmp[WH__CHUNK];
        wh__lanes(k, (int)(p % g.cb), g.B, kk);
        wh__lanes(off, (int)(p % g.cb), g.B, oo);
        const float *x = z + (size_t)p * g.len;
        float *y = out + (size_t)p * g.len;
        for (size_t c0 = 0; c0 < g.len; c0 += WH__CHUNK) {
            const size_t n = g.len - c0 < WH__CHUNK ? g.len - c0 : WH__CHUNK;
            if (act == WH_ACT_LINEAR) {
                wh__affine_lanes(x + c0, y + c0, n, kk, oo);
                continue;
            }
            wh__affine_lanes(x + c0, tmp, n, kk, oo);
            wh_act_forward_serial(act, tmp, y + c0, n);
        }
    }
}

/* The first backward pass, one read of z and dout: dz = dout * act'(k z + off)
 * and, per channel, sum dz and sum dz * xhat (xhat = (z - mu) * inv_s; mu and
 * inv_s are only read when xh is set). Sums go to sums[0..C) and sums[C..2C)
 * through part, in a fixed order. */
static void wh__act_backward_sums(const float *z, const float *dout, float *dz, wh__planes g, const float *k,
                                  const float *off, const float *mu, const float *inv_s, int xh, wh_act act,
                                  double *part, double *sums)
{
    const long np = (long)g.n * g.cb;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < np; p++) {
        const int q = (int)(p % g.cb);
        float kk[WH__LANES], oo[WH__LANES], mm[WH__LANES] = {0}, is[WH__LANES] = {0}, tmp[WH__CHUNK];
        wh__lanes(k, q, g.B, kk);
        wh__lanes(off, q, g.B, oo);
        if (xh) {
            wh__lanes(mu, q, g.B, mm);
            wh__lanes(inv_s, q, g.B, is);
        }
        double s[WH__LANES] = {0}, sx[WH__LANES] = {0};
        const float *zp = z + (size_t)p * g.len, *gp = dout + (size_t)p * g.len;
        float *dp = dz + (size_t)p * g.len;
        for (size_t c0 = 0; c0 < g.len; c0 += WH__CHUNK) {
            const size_t n = g.len - c0 < WH__CHUNK ? g.len - c0 : WH__CHUNK;
            if (act == WH_ACT_LINEAR) {
                memcpy(dp + c0, gp + c0, n * sizeof(float));
            } else {
                wh__affine_lanes(zp + c0, tmp, n, kk, oo);
                wh_act_backward_serial(act, tmp, gp + c0, dp + c0, n, 0);
            }
            const float *zc = zp + c0, *dc = dp + c0;
            size_t i = 0;
            for (; i + WH__LANES <= n; i += WH__LANES)
#pragma omp simd
                for (int e = 0; e < WH__LANES; e++) {
                    s[e] += dc[i + e];
                    sx[e] += dc[i + e] * ((zc[i + e] - mm[e]) * is[e]);
                }
            for (int e = 0; i < n; i++, e++) {
                s[e] += dc[i];
                sx[e] += dc[i] * ((zc[i] - mm[e]) * is[e]);
            }
        }
        wh__fold(s, g.B, part + (size_t)p * 2 * g.B);
        wh__fold(sx, g.B, part + (size_t)p * 2 * g.B + g.B);
    }
    wh__reduce_parts(part, g, sums);
}

/* The second backward pass of batch norm, in place:
 * dz = a * (dz - mdy - (z - mu) * inv_s * bxh) per channel. */
static void wh__bn_backward_apply(const float *z, float *dz, wh__planes g, const float *a, const float *mdy,
                                  const float *mu, const float *inv_s, const float *bxh)
{
    const long np = (long)g.n * g.cb;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < np; p++) {
        const int q = (int)(p % g.cb);
        float aa[WH__LANES], md[WH__LANES], mm[WH__LANES], is[WH__LANES], bx[WH__LANES];
        wh__lanes(a, q, g.B, aa);
        wh__lanes(mdy, q, g.B, md);
        wh__lanes(mu, q, g.B, mm);
        wh__lanes(inv_s, q, g.B, is);
        wh__lanes(bxh, q, g.B, bx);
        const float *zp = z + (size_t)p * g.len;
        float *dp = dz + (size_t)p * g.len;
        size_t i = 0;
        for (; i + WH__LANES <= g.len; i += WH__LANES)
#pragma omp simd
            for (int e = 0; e < WH__LANES; e++)
                dp[i + e] = aa[e] * (dp[i + e] - md[e] - (zp[i + e] - mm[e]) * is[e] * bx[e]);
        for (int e = 0; i < g.len; i++, e++) dp[i] = aa[e] * (dp[i] - md[e] - (zp[i] - mm[e]) * is[e] * bx[e]);
    }
}

static void wh__add_into(float *dst, const float *src, size_t n)
{
    const long nn = (long)n;
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < nn; i++) dst[i] += src[i];
}

static wh_status wh__conv_fwd(wh_layer *l, const float *x, float *z, wh_net *net, wh_ctx *ctx)
{
    wh__conv *c = wh__c(l);
    WH_TRY(wh__darg_in(&c->f_src, x, net, ctx));
    WH_TRY(wh__darg_in(&c->f_wei, l->params[c->bn ? P_WEIGHTS : 1].data, net, ctx));
    WH_DNNL(dnnl_memory_set_data_handle(c->f_dst.user, z), "set handle", ctx);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->f_src.prim},
                               {DNNL_ARG_WEIGHTS, c->f_wei.prim},
                               {DNNL_ARG_DST, c->f_dst.prim}};
    WH_TRY(wh__run(c->fwd, c->pad_fwd, net, args, 3, ctx));
    return wh__darg_out(&c->f_dst, z, net, ctx);
}

/* Inference BN (or the bias) as y = k * z + off per channel; darknet adds
 * eps to the standard deviation. */
static void wh__inference_affine(const wh_layer *l, float *k, float *off)
{
    const wh__conv *c = wh__c(l);
    const float *bias = l->params[P_BIASES].data;
    for (int q = 0; q < l->out_shape.c; q++) {
        if (c->bn) {
            k[q] = l->params[P_SCALES].data[q] / (sqrtf(fmaxf(l->params[P_VAR].data[q], 0.f)) + WH_BN_EPS);
            off[q] = bias[q] - k[q] * l->params[P_MEAN].data[q];
        } else {
            k[q] = 1.f;
            off[q] = bias[q];
        }
    }
}

/* Training: the per-channel k and off of out = act(k z + off) into fk, foff:
 * BN on the batch statistics (k = scale / (sd + eps), off = bias - k mean)
 * or the bias (k = 1, off = bias). The forward and the backward both need
 * them, and the scratch they live in does not survive between the two. */
static void wh__train_affine(const wh_layer *l)
{
    wh__conv *c = wh__c(l);
    const float *bias = l->params[P_BIASES].data;
    for (int k = 0; k < l->out_shape.c; k++) {
        c->fk[k] = c->bn ? l->params[P_SCALES].data[k] / (c->sd[k] + WH_BN_EPS) : 1.f;
        c->foff[k] = c->bn ? bias[k] - c->fk[k] * c->mean[k] : bias[k];
    }
}

static wh_status wh_conv_forward(wh_layer *l, wh_exec *x)
{
    wh__conv *c = wh__c(l);
    const wh_shape o = l->out_shape;
    if (c->fused) {
        wh__inference_affine(l, c->fk, c->foff);
        WH_TRY(wh__darg_in(&c->f_src, x->in[0], x->net, x->ctx));
        WH_TRY(wh__darg_in(&c->f_wei, l->params[c->bn ? P_WEIGHTS : 1].data, x->net, x->ctx));
        WH_DNNL(dnnl_memory_set_data_handle(c->f_dst.user, l->out), "set handle", x->ctx);
        dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, c->f_src.prim},
                                   {DNNL_ARG_WEIGHTS, c->f_wei.prim},
                                   {DNNL_ARG_DST, c->f_dst.prim},
                                   {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, c->m_k},
                                   {DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, c->m_off}};
        WH_TRY(wh__run(c->fwd, c->pad_fwd, x->net, args, 5, x->ctx));
        return wh__darg_out(&c->f_dst, l->out, x->net, x->ctx);
    }
    if (!x->train) {
        /* unfused: the convolution, then y = k * z + off per channel in the
         * output's layout, then the activation (elementwise, any layout) */
        WH_TRY(wh__conv_fwd(l, x->in[0], l->out, x->net, x->ctx));
        wh__inference_affine(l, c->fk, c->foff);
        wh__affine(l->out, o, l->out_layout, c->fk, c->foff);
        wh_act_forward(c->act, l->out, l->out, wh_layout_count(o, l->out_layout));
        return WH_OK;
    }
    if (!l->train) return wh_error(x->ctx, WH_ERR_STATE, "training forward in an inference net");
    /* z = conv(x); out = act(k z + off) (wh__train_affine) */
    WH_TRY(wh__conv_fwd(l, x->in[0], c->z, x->net, x->ctx));
    const wh__planes g = wh__planes_of(o, l->out_layout);
    if (c->bn) {
        WH_TRY(wh__bn_stats(x, c->z, g, c->part, c->sums, c->mean, c->sd));
        x->checked = 1; /* by the sums (another rank's NaN is that rank's to name) */
        /* running = (1 - m) running + m batch (darknet: m = 0.01) */
        float *rm = l->params[P_MEAN].data, *rv = l->params[P_VAR].data;
        const float m = x->net->bn_momentum;
        for (int k = 0; k < o.c; k++) {
            rm[k] = (1.f - m) * rm[k] + m * c->mean[k];
            rv[k] = (1.f - m) * rv[k] + m * c->sd[k] * c->sd[k];
        }
    }
    wh__train_affine(l);
    wh__affine_act(c->z, l->out, g, c->fk, c->foff, c->act);
    return WH_OK;
}

static wh_status wh_conv_backward(wh_layer *l, wh_exec *x)
{
    wh__conv *c = wh__c(l);
    wh_net *net = x->net;
    wh_ctx *ctx = x->ctx;
    const wh_shape o = l->out_shape;
    wh_param *pb = &l->params[P_BIASES];
    wh_param *pw = &l->params[c->bn ? P_WEIGHTS : 1];

    /* dz = dout * act'(k z + off), with its per-channel sums (one pass), then
     * for BN the second pass. With xhat = (z - mean)/s, s = sd + eps,
     * var = sum (z-mean)^2 / (M-1), g = dL/d(BN output):
     *   dL/dz_i = (scale/s) (g_i - mean(g) - xhat_i (s / ((M-1) sd)) sum_j g_j xhat_j). */
    const wh__planes g = wh__planes_of(o, l->out_layout);
    const double m = (double)o.n * o.h * o.w * (net->bn_sum ? net->bn_ranks : 1); /* pixels per channel, all ranks */
    float *inv_s = c->chan, *a = c->chan + o.c, *mdy = c->chan + 2 * o.c, *bxh = c->chan + 3 * o.c;
    /* k and off as the forward made them (the parameters have not moved) */
    wh__train_affine(l);
    for (int k = 0; c->bn && k < o.c; k++) inv_s[k] = (float)(1.0 / (c->sd[k] + WH_BN_EPS));
    wh__act_backward_sums(c->z, l->dout, c->dz, g, c->fk, c->foff, c->mean, inv_s, c->bn, c->act, c->part, c->sums);
    /* a NaN or infinity in dout shows in its channel's sums (checks_dout) */
    for (int k = 0; net->check_finite && k < o.c && !x->nonfinite_sums; k++)
        if (!isfinite(c->sums[k]) || (c->bn && !isfinite(c->sums[o.c + k]))) {
            x->nonfinite_sums = 1;
            snprintf(x->nonfinite_what, sizeof(x->nonfinite_what), "gradient sums of channel %d: %g", k,
                     c->sums[k]);
        }
    for (int k = 0; k < o.c; k++) pb->grad[k] += (float)c->sums[k];
    if (c->bn) {
        float *dscale = l->params[P_SCALES].grad;
        const float *scale = l->params[P_SCALES].data;
        for (int k = 0; k < o.c; k++) dscale[k] += (float)c->sums[o.c + k];
        /* the gradients above are this rank's share (the gradient allreduce
         * adds them up); the BN backward needs the sums over every rank */
        if (net->bn_sum) WH_TRY(net->bn_sum(net->bn_user, c->sums, 2 * (size_t)o.c, ctx));
        for (int k = 0; k < o.c; k++) {
            const double s = (double)c->sd[k] + WH_BN_EPS, sum_dy = c->sums[k], sum_dy_xh = c->sums[o.c + k];
            const double coef = c->sd[k] > 0 ? s / ((m > 1 ? m - 1 : 1) * c->sd[k]) : 0.0;
            a[k] = (float)(scale[k] / s);
            mdy[k] = (float)(sum_dy / m);
            bxh[k] = (float)(coef * sum_dy_xh);
        }
        wh__bn_backward_apply(c->z, c->dz, g, a, mdy, c->mean, inv_s, bxh);
    }
    /* dW += conv_bwd_weights(x, dz) */
    WH_TRY(wh__darg_in(&c->w_src, x->in[0], net, ctx));
    WH_TRY(wh__darg_in(&c->w_ddst, c->dz, net, ctx));
    {
        WH_DNNL(dnnl_memory_set_data_handle(c->w_dwei.user, c->dw_tmp), "set handle", ctx);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->w_src.prim},
                                   {DNNL_ARG_DIFF_DST, c->w_ddst.prim},
                                   {DNNL_ARG_DIFF_WEIGHTS, c->w_dwei.prim}};
        WH_TRY(wh__run(c->bwdw, c->pad_bwdw, net, args, 3, ctx));
        WH_TRY(wh__darg_out(&c->w_dwei, c->dw_tmp, net, ctx));
        wh__add_into(pw->grad, c->dw_tmp, pw->count);
    }
    /* din += conv_bwd_data(dz, W) */
    if (x->din[0]) {
        WH_TRY(wh__darg_in(&c->d_ddst, c->dz, net, ctx));
        WH_TRY(wh__darg_in(&c->d_wei, pw->data, net, ctx));
        WH_DNNL(dnnl_memory_set_data_handle(c->d_dsrc.user, c->dx_tmp), "set handle", ctx);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, c->d_ddst.prim},
                                   {DNNL_ARG_WEIGHTS, c->d_wei.prim},
                                   {DNNL_ARG_DIFF_SRC, c->d_dsrc.prim}};
        WH_TRY(wh__run(c->bwdd, c->pad_bwdd, net, args, 3, ctx));
        WH_TRY(wh__darg_out(&c->d_dsrc, c->dx_tmp, net, ctx));
        wh__add_into(x->din[0], c->dx_tmp, wh_shape_count(l->in_shape[0]));
    }
    return WH_OK;
}

/* darknet: uniform in [-scale, scale], scale = sqrt(2 / fan_in). */
static void wh_conv_init_weights(wh_layer *l, uint64_t *rng)
{
    wh__conv *c = wh__c(l);
    const double fan_in = (double)(l->in_shape[0].c / c->groups) * c->size * c->size;
    const float scale = (float)sqrt(2.0 / fan_in);
    wh_param *w = &l->params[c->bn ? P_WEIGHTS : 1];
    for (size_t i = 0; i < w->count; i++) {
        /* xorshift64*: enough quality for initialisation, reproducible */
        uint64_t v = *rng;
        v ^= v >> 12;
        v ^= v << 25;
        v ^= v >> 27;
        *rng = v;
        double u = (double)((v * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
        w->data[i] = scale * (float)(2 * u - 1);
    }
    memset(l->params[P_BIASES].data, 0, (size_t)c->filters * sizeof(float));
    if (c->bn) {
        for (int k = 0; k < c->filters; k++) {
            l->params[P_SCALES].data[k] = 1.f;
            l->params[P_MEAN].data[k] = 0.f;
            l->params[P_VAR].data[k] = 1.f;
        }
    }
}

static double wh_conv_flops(const wh_layer *l)
{
    const wh_shape o = l->out_shape;
    return 2.0 * (double)wh__nweights(l) * o.h * o.w;
}

static void wh_conv_describe(const wh_layer *l, char *buf, int n)
{
    const wh__conv *c = wh__c(l);
    if (c->groups > 1)
        snprintf(buf, (size_t)n, "%5d %2dx%-2d/%d g%d", c->filters, c->size, c->size, c->stride, c->groups);
    else
        snprintf(buf, (size_t)n, "%5d %2dx%-2d/%d", c->filters, c->size, c->size, c->stride);
}

static void wh_conv_destroy(wh_layer *l)
{
    wh__conv *c = wh__c(l);
    if (!c) return;
    wh__darg *args[] = {&c->f_src, &c->f_wei, &c->f_dst, &c->d_ddst, &c->d_wei,
                        &c->d_dsrc, &c->w_src, &c->w_ddst, &c->w_dwei};
    for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) wh__darg_destroy(args[i]);
    dnnl_memory_t pads[] = {c->pad_fwd, c->pad_bwdd, c->pad_bwdw};
    for (size_t i = 0; i < 3; i++)
        if (pads[i]) dnnl_memory_destroy(pads[i]);
    if (c->m_k) dnnl_memory_destroy(c->m_k);
    if (c->m_off) dnnl_memory_destroy(c->m_off);
    if (c->fwd) dnnl_primitive_destroy(c->fwd);
    if (c->bwdd) dnnl_primitive_destroy(c->bwdd);
    if (c->bwdw) dnnl_primitive_destroy(c->bwdw);
    if (c->fwd_pd) dnnl_primitive_desc_destroy(c->fwd_pd);
    if (c->bwdd_pd) dnnl_primitive_desc_destroy(c->bwdd_pd);
    if (c->bwdw_pd) dnnl_primitive_desc_destroy(c->bwdw_pd);
    free(c);
    l->priv = NULL;
}

static void wh__conv_facts(const wh_layer *l, wh_layer_facts *f)
{
    const wh__conv *c = l->priv;
    f->act = c->act;
    f->bn = c->bn;
    f->conv_groups = c->groups;
    f->ksize = c->size;
}

/* darknet's order; the batch-norm three are all or none (checked on import) */
static const char *const wh__conv_weights_order[] = {"biases", "scales", "rolling_mean", "rolling_variance",
                                                     "weights", NULL};

const wh_layer_ops wh_conv_ops = {
    .type = "convolutional",
    .flow = WH_FLOW_NEW,
    .weights_order = wh__conv_weights_order,
    .facts = wh__conv_facts,
    .layouts_in = WH_LAYOUTS_ALL,
    .init = wh_conv_init,
    .shape = wh_conv_shape,
    .plan = wh_conv_plan,
    .bind = wh_conv_bind,
    .backward_reads_input = 1, /* x for the weight gradient */
    .checks_dout = 1,
    .init_weights = wh_conv_init_weights,
    .forward = wh_conv_forward,
    .backward = wh_conv_backward,
    .flops = wh_conv_flops,
    .describe = wh_conv_describe,
    .destroy = wh_conv_destroy,
};
