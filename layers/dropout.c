/* whittle: [dropout], darknet's (inverted) dropout.
 *
 * Keys (darknet's parse_dropout): probability (default 0.2), the share of
 * elements dropped, in [0, 1). dropblock=1 (DropBlock, which darknet only
 * implements on the GPU; its CPU path is plain dropout) is refused.
 *
 * Inference: the identity. Training, per element, with u uniform in [0, 1):
 *   out = u < probability ? 0 : in * scale,   scale = 1 / (1 - probability)
 * (darknet's forward_dropout_layer), and backward sends dout back through the
 * same mask: din += u < probability ? 0 : dout * scale. A backward after an
 * inference forward is the identity's (darknet never runs one).
 *
 * Randomness: darknet draws from the C library's global rand(). Here the
 * layer's seed comes from wh_net_init_weights(net, seed) (the trainer's
 * --seed, mixed with the layer index) and u of element e at the t-th
 * training forward is a pure function of (seed, t, e), e the element's NCHW
 * index whatever layout it is stored in: the masks do not depend on the
 * thread count or on the layout, and a net initialised with the same seed
 * draws the same masks. t counts the layer's training forwards since
 * wh_net_init_weights (it is not saved in checkpoints: a resumed run draws
 * its masks from t = 0 again).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"

typedef struct wh_dropout {
    float prob;           /* darknet's 'probability' */
    float scale;          /* 1 / (1 - prob), as darknet (computed in double) */
    uint64_t seed;        /* from init_weights */
    uint64_t t;           /* training forwards drawn so far */
    void *keep;           /* unsigned char (N, C, H, W) in the output's layout: 1 kept, 0 dropped; training */
    int last;             /* the last forward: -1 none yet, 0 inference, 1 training (mask drawn) */
} wh_dropout;

static wh_status wh__dropout_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    float prob;
    int dropblock;
    WH_TRY(wh_cfg_float(s, "probability", 0.2f, 0.f, 1.f, &prob, ctx));
    if (prob >= 1.f) {
        const wh_cfg_kv *kv = wh_cfg_find(s, "probability");
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: [dropout] probability=%g: must be below 1 (everything dropped)",
                        s->file, kv ? kv->line : s->line, (double)prob);
    }
    WH_TRY(wh_cfg_int(s, "dropblock", 0, 0, 1, &dropblock, ctx));
    if (dropblock) {
        const wh_cfg_kv *kv = wh_cfg_find(s, "dropblock");
        return wh_error(ctx, WH_ERR_UNSUPPORTED, "%s:%d: [dropout] dropblock=1 is not supported (plain dropout only)",
                        s->file, kv ? kv->line : s->line);
    }
    wh_dropout *d = calloc(1, sizeof(*d));
    if (!d) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    d->prob = prob;
    d->scale = (float)(1.0 / (1.0 - (double)prob));
    d->last = -1;
    l->priv = d;
    return WH_OK;
}

static wh_status wh__dropout_shape(wh_layer *l, wh_ctx *ctx)
{
    (void)ctx;
    l->out_shape = l->in_shape[0];
    /* element by element: any layout, as long as no padding channel hides in a block */
    l->out_layout = wh_layer_keep_blocked(l, 0);
    return WH_OK;
}

static wh_status wh__dropout_plan(wh_layer *l, wh_plan *p, wh_ctx *ctx)
{
    (void)ctx;
    wh_dropout *d = l->priv;
    if (!l->train) return WH_OK;
    return wh_plan_bytes(p, WH_ARENA_ACT, &d->keep, wh_shape_count(l->out_shape));
}

static void wh__dropout_init_weights(wh_layer *l, uint64_t *rng)
{
    wh_dropout *d = l->priv;
    d->seed = *rng;
    d->t = 0;
}

/* splitmix64's output function: a bijection that mixes every bit */
static inline uint64_t wh__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Whether element e (its NCHW index) is dropped: u, the e-th number of a
 * splitmix64 stream that starts at base (one per forward), with 53 bits,
 * against prob. */
static inline int wh__dropped(uint64_t base, size_t e, double prob)
{
    const uint64_t r = wh__mix64(base + ((uint64_t)e + 1) * 0x9E3779B97F4A7C15ull);
    return (double)(r >> 11) * 0x1.0p-53 < prob;
}

static wh_status wh__dropout_forward(wh_layer *l, wh_exec *x)
{
    wh_dropout *d = l->priv;
    const wh_shape s = l->out_shape;
    const float *in = x->in[0];
    float *out = l->out;
    const size_t count = wh_shape_count(s);
    if (!x->train) {
        memcpy(out, in, count * sizeof(float));
        d->last = 0;
        return WH_OK;
    }
    if (!d->keep) return wh_error(x->ctx, WH_ERR_STATE, "a training forward needs a net built for training");
    const uint64_t base = wh__mix64(d->seed ^ wh__mix64(++d->t));
    const double prob = d->prob;
    const float scale = d->scale;
    unsigned char *keep = d->keep;
    const int B = wh_layout_block(l->out_layout);
    const size_t hw = (size_t)s.h * s.w;
    /* rows of one channel's plane (B = 1) or of a block's pixels with B
     * lanes; an element's memory position i and its NCHW index e differ only
     * in the blocked layouts */
    const long units = (long)s.n * (s.c / B);
#pragma omp parallel for schedule(static)
    for (long u = 0; u < units; u++) {
        const size_t n = (size_t)u / (size_t)(s.c / B), c0 = (size_t)u % (size_t)(s.c / B) * (size_t)B;
        for (size_t px = 0; px < hw; px++)
            for (int t = 0; t < B; t++) {
                const size_t i = ((size_t)u * hw + px) * (size_t)B + (size_t)t;
                const size_t e = (n * (size_t)s.c + c0 + (size_t)t) * hw + px;
                const int k = !wh__dropped(base, e, prob);
                keep[i] = (unsigned char)k;
                out[i] = k ? in[i] * scale : 0.f;
            }
    }
    d->last = 1;
    return WH_OK;
}

static wh_status wh__dropout_backward(wh_layer *l, wh_exec *x)
{
    const wh_dropout *d = l->priv;
    if (d->last < 0) return wh_error(x->ctx, WH_ERR_STATE, "backward needs a forward first");
    float *din = x->din[0];
    if (!din) return WH_OK;
    const float *dout = l->dout;
    const long count = (long)wh_shape_count(l->out_shape);
    if (d->last == 0) {
        /* after an inference forward: the gradient of the identity it was */
#pragma omp parallel for simd schedule(static)
        for (long i = 0; i < count; i++) din[i] += dout[i];
        return WH_OK;
    }
    const unsigned char *keep = d->keep;
    const float scale = d->scale;
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < count; i++) din[i] += keep[i] ? dout[i] * scale : 0.f;
    return WH_OK;
}

static void wh__dropout_describe(const wh_layer *l, char *buf, int n)
{
    const wh_dropout *d = l->priv;
    snprintf(buf, (size_t)n, "p=%g", (double)d->prob);
}

static void wh__dropout_destroy(wh_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const wh_layer_ops wh_dropout_ops = {
    .type = "dropout",
    /* the identity at inference: a pruned channel's constant stays itself */
    .flow = WH_FLOW_SAME,
    .layouts_in = WH_LAYOUTS_ALL,
    .init = wh__dropout_init,
    .shape = wh__dropout_shape,
    .plan = wh__dropout_plan,
    .init_weights = wh__dropout_init_weights,
    .forward = wh__dropout_forward,
    .backward = wh__dropout_backward,
    /* no .flops: darknet counts none for it (0) */
    .describe = wh__dropout_describe,
    .destroy = wh__dropout_destroy,
};
