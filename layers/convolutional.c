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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../framework/net.h"
#include "../framework/plan.h"
#include "activation.h"
#include "layer.h"

#define WH_BN_EPS 1e-6f      /* added to the standard deviation, as darknet's CPU path */
#define WH_BN_MOMENTUM 0.01f /* running = 0.99 * running + 0.01 * batch */

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
    float *z;      /* (N,OC,OH,OW) conv output before BN, training with BN */
    float *pre;    /* (N,OC,OH,OW) pre-activation, training */
    float *mean;   /* (OC) batch mean, training */
    float *sd;     /* (OC) sqrt(batch variance), training */
    float *dz;     /* scratch (N,OC,OH,OW): gradient w.r.t. z */
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
        int v = atoi(kv->val);
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
        if (c->bn) {
            WH_TRY(wh_plan_buffer(p, WH_ARENA_ACT, &c->z, n_out));
            WH_TRY(wh_plan_buffer(p, WH_ARENA_ACT, &c->mean, (size_t)oc));
            WH_TRY(wh_plan_buffer(p, WH_ARENA_ACT, &c->sd, (size_t)oc));
        }
        WH_TRY(wh_plan_buffer(p, WH_ARENA_ACT, &c->pre, n_out));
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

/* Batch statistics per channel of z (N, C, HW): mean and sqrt(unbiased var). */
static void wh__bn_stats(const float *z, int n, int oc, int hw, float *mean, float *sd)
{
    const double m = (double)n * hw;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < oc; c++) {
        double s = 0;
        for (int b = 0; b < n; b++) {
            const float *p = z + ((size_t)b * oc + c) * hw;
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < hw; i++) s += p[i];
        }
        const double mu = s / m;
        double v = 0;
        for (int b = 0; b < n; b++) {
            const float *p = z + ((size_t)b * oc + c) * hw;
#pragma omp simd reduction(+ : v)
            for (int i = 0; i < hw; i++) v += (p[i] - mu) * (p[i] - mu);
        }
        mean[c] = (float)mu;
        sd[c] = (float)sqrt(v / (m > 1 ? m - 1 : 1));
    }
}

/* y = scale * (x - mean) / (sd + eps) + bias, per channel, x may be y. */
static void wh__bn_apply(const float *x, float *y, int n, int oc, int hw, const float *mean,
                         const float *sd, const float *scale, const float *bias)
{
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++)
        for (int c = 0; c < oc; c++) {
            const float k = scale[c] / (sd[c] + WH_BN_EPS);
            const float off = bias[c] - k * mean[c];
            const float *px = x + ((size_t)b * oc + c) * hw;
            float *py = y + ((size_t)b * oc + c) * hw;
#pragma omp simd
            for (int i = 0; i < hw; i++) py[i] = k * px[i] + off;
        }
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

static void wh__add_bias(float *y, int n, int oc, int hw, const float *bias)
{
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++)
        for (int c = 0; c < oc; c++) {
            float *p = y + ((size_t)b * oc + c) * hw;
            const float v = bias[c];
#pragma omp simd
            for (int i = 0; i < hw; i++) p[i] += v;
        }
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

static wh_status wh_conv_forward(wh_layer *l, wh_exec *x)
{
    wh__conv *c = wh__c(l);
    const wh_shape o = l->out_shape;
    const int hw = o.h * o.w;
    const size_t n_out = wh_shape_count(o);
    float *bias = l->params[P_BIASES].data;
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
    if (c->bn) {
        WH_TRY(wh__conv_fwd(l, x->in[0], c->z, x->net, x->ctx));
        wh__bn_stats(c->z, o.n, o.c, hw, c->mean, c->sd);
        wh__bn_apply(c->z, c->pre, o.n, o.c, hw, c->mean, c->sd, l->params[P_SCALES].data, bias);
        float *rm = l->params[P_MEAN].data, *rv = l->params[P_VAR].data;
        for (int k = 0; k < o.c; k++) {
            rm[k] = (1.f - WH_BN_MOMENTUM) * rm[k] + WH_BN_MOMENTUM * c->mean[k];
            rv[k] = (1.f - WH_BN_MOMENTUM) * rv[k] + WH_BN_MOMENTUM * c->sd[k] * c->sd[k];
        }
    } else {
        WH_TRY(wh__conv_fwd(l, x->in[0], c->pre, x->net, x->ctx));
        wh__add_bias(c->pre, o.n, o.c, hw, bias);
    }
    wh_act_forward(c->act, c->pre, l->out, n_out);
    return WH_OK;
}

/* Given dy = dL/d(BN output) in dz (in place), writes dz = dL/dz and adds the
 * scale and shift gradients. With xhat = (z - mean)/s, s = sd + eps,
 * var = sum (z-mean)^2 / (M-1):
 *   dz_i = (1/s) * (g_i - mean(g) - xhat_i * (s / ((M-1) sd)) * sum_j g_j xhat_j),
 * where g = scale * dy (scale factors out of the bracket). */
static void wh__bn_backward(wh__conv *c, float *dz, const float *z, int n, int oc, int hw,
                            const float *scale, float *dscale, float *dbias)
{
    const double m = (double)n * hw;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < oc; k++) {
        const double s = (double)c->sd[k] + WH_BN_EPS, mu = c->mean[k];
        double sum_dy = 0, sum_dy_xh = 0;
        for (int b = 0; b < n; b++) {
            const float *pd = dz + ((size_t)b * oc + k) * hw;
            const float *pz = z + ((size_t)b * oc + k) * hw;
#pragma omp simd reduction(+ : sum_dy, sum_dy_xh)
            for (int i = 0; i < hw; i++) {
                sum_dy += pd[i];
                sum_dy_xh += pd[i] * ((pz[i] - mu) / s);
            }
        }
        dscale[k] += (float)sum_dy_xh;
        dbias[k] += (float)sum_dy;
        const double coef = c->sd[k] > 0 ? s / ((m > 1 ? m - 1 : 1) * c->sd[k]) : 0.0;
        const float a = (float)(scale[k] / s);
        const float mean_dy = (float)(sum_dy / m);
        const float b_xh = (float)(coef * sum_dy_xh);
        const float inv_s = (float)(1.0 / s), fmu = (float)mu;
        for (int b = 0; b < n; b++) {
            float *pd = dz + ((size_t)b * oc + k) * hw;
            const float *pz = z + ((size_t)b * oc + k) * hw;
#pragma omp simd
            for (int i = 0; i < hw; i++) {
                const float xh = (pz[i] - fmu) * inv_s;
                pd[i] = a * (pd[i] - mean_dy - xh * b_xh);
            }
        }
    }
}

static void wh__add_into(float *dst, const float *src, size_t n)
{
    const long nn = (long)n;
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < nn; i++) dst[i] += src[i];
}

static wh_status wh_conv_backward(wh_layer *l, wh_exec *x)
{
    wh__conv *c = wh__c(l);
    wh_net *net = x->net;
    wh_ctx *ctx = x->ctx;
    const wh_shape o = l->out_shape;
    const int hw = o.h * o.w;
    const size_t n_out = wh_shape_count(o);
    wh_param *pb = &l->params[P_BIASES];
    wh_param *pw = &l->params[c->bn ? P_WEIGHTS : 1];

    /* dpre = dout * act'(pre) */
    wh_act_backward(c->act, c->pre, l->dout, c->dz, n_out, 0);
    if (c->bn) {
        wh__bn_backward(c, c->dz, c->z, o.n, o.c, hw, l->params[P_SCALES].data,
                        l->params[P_SCALES].grad, pb->grad);
    } else {
#pragma omp parallel for schedule(static)
        for (int k = 0; k < o.c; k++) {
            double s = 0;
            for (int b = 0; b < o.n; b++) {
                const float *p = c->dz + ((size_t)b * o.c + k) * hw;
#pragma omp simd reduction(+ : s)
                for (int i = 0; i < hw; i++) s += p[i];
            }
            pb->grad[k] += (float)s;
        }
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

const wh_layer_ops wh_conv_ops = {
    .type = "convolutional",
    .flow = WH_FLOW_NEW,
    .facts = wh__conv_facts,
    .layouts_in = WH_LAYOUTS_ALL,
    .init = wh_conv_init,
    .shape = wh_conv_shape,
    .plan = wh_conv_plan,
    .bind = wh_conv_bind,
    .init_weights = wh_conv_init_weights,
    .forward = wh_conv_forward,
    .backward = wh_conv_backward,
    .flops = wh_conv_flops,
    .describe = wh_conv_describe,
    .destroy = wh_conv_destroy,
};
