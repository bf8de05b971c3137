/* The [yolo] layer: the elementwise head map, its exact gradient, the
 * decoding of its output into boxes, and the detection loss (darknet's
 * forward_yolo_layer) with its exact gradient.
 *
 * Tensor: (N, C, H, W) NCHW with C = n_mask * (5 + classes); the channel of
 * entry e of anchor block a is a*(5 + classes) + e (darknet's entry_index).
 */
#include "yolo.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const wh_layer_ops wh_yolo_ops;

static const char *const wh__iou_names[] = {"mse", "giou", "diou", "ciou", NULL};
static const char *const wh__nms_names[] = {"greedynms", "diounms", "cornersnms", NULL};
static const char *const wh__norm_names[] = {"sum", "mean", NULL};
_Static_assert(sizeof(wh__iou_names) / sizeof(wh__iou_names[0]) == WH_YOLO_IOU_COUNT + 1,
               "iou_loss names must match the enum");
_Static_assert(sizeof(wh__nms_names) / sizeof(wh__nms_names[0]) == WH_YOLO_NMS_COUNT + 1,
               "nms_kind names must match the enum");

const char *wh_yolo_iou_loss_name(wh_yolo_iou_loss k)
{
    return (k >= 0 && k < WH_YOLO_IOU_COUNT) ? wh__iou_names[k] : "?";
}

const char *wh_yolo_nms_kind_name(wh_yolo_nms_kind k)
{
    return (k >= 0 && k < WH_YOLO_NMS_COUNT) ? wh__nms_names[k] : "?";
}

/* The layer's private state. The parameters come first, so that priv also
 * points at them (wh_yolo_get). */
typedef struct wh__yolo {
    wh_yolo_params p;
    float *dlogit;      /* (N, C, H, W) d loss / d input: ACT arena, training nets only */
    const float *in;    /* (N, C, H, W) the input of the latest training forward: logits,
                         * or probabilities with new_coords */
    int have_loss;      /* dlogit holds the loss of the latest forward */
    void *ws;           /* the loss's work buffers, kept between calls: a training step allocates
                         * nothing once the first has run (it grows only with max_boxes) */
    size_t ws_bytes;
} wh__yolo;

const wh_yolo_params *wh_yolo_get(const wh_layer *l)
{
    return (l && l->ops == &wh_yolo_ops) ? &((const wh__yolo *)l->priv)->p : NULL;
}

/* The line of key in s, or the section's line when the key is absent. */
static int wh__key_line(wh_cfg_section *s, const char *key)
{
    wh_cfg_kv *kv = wh_cfg_find(s, key);
    return kv ? kv->line : s->line;
}

/* mask=, num=, anchors=: which anchors this layer predicts and their sizes. */
static wh_status wh__parse_anchors(wh_yolo_params *p, wh_cfg_section *s, wh_ctx *ctx)
{
    WH_TRY(wh_cfg_int(s, "num", 1, 1, WH_YOLO_MAX_ANCHORS, &p->num, ctx));
    WH_TRY(wh_cfg_ints(s, "mask", p->mask, WH_YOLO_MAX_ANCHORS, &p->n_mask, ctx));
    if (p->n_mask == 0) { /* darknet: no mask = every anchor */
        p->n_mask = p->num;
        for (int a = 0; a < p->num; a++) p->mask[a] = a;
    }
    for (int a = 0; a < p->n_mask; a++)
        if (p->mask[a] < 0 || p->mask[a] >= p->num)
            return wh_error(ctx, WH_ERR_CFG,
                            "%s:%d: [%s] key 'mask': anchor %d is not in 0..%d (num=%d)", s->file,
                            wh__key_line(s, "mask"), s->type, p->mask[a], p->num - 1, p->num);
    if (!wh_cfg_has(s, "anchors")) {
        /* darknet's make_yolo_layer fills the anchors with .5 (pixels): boxes
         * are then tiny but the cfg loads, as it does in darknet. */
        for (int k = 0; k < 2 * p->num; k++) p->anchors[k] = .5f;
        wh_warn(ctx, "%s:%d: [%s] no 'anchors': every anchor is 0.5 x 0.5 pixels (darknet's default)",
                s->file, s->line, s->type);
        return WH_OK;
    }
    int n_anchor_vals = 0;
    WH_TRY(wh_cfg_floats(s, "anchors", p->anchors, 2 * WH_YOLO_MAX_ANCHORS, &n_anchor_vals, ctx));
    const int line = wh__key_line(s, "anchors");
    if (n_anchor_vals != 2 * p->num)
        return wh_error(ctx, WH_ERR_CFG,
                        "%s:%d: [%s] key 'anchors': %d values, but num=%d needs 2*num = %d "
                        "(one w,h pair per anchor)",
                        s->file, line, s->type, n_anchor_vals, p->num, 2 * p->num);
    for (int k = 0; k < n_anchor_vals; k++)
        if (!(p->anchors[k] > 0.f))
            return wh_error(ctx, WH_ERR_CFG, "%s:%d: [%s] key 'anchors': value %d (%g) is not > 0",
                            s->file, line, s->type, k + 1, (double)p->anchors[k]);
    return WH_OK;
}

/* The loss and NMS keys: kept for the trainer and the evaluator. */
static wh_status wh__parse_loss(wh_yolo_params *p, wh_cfg_section *s, wh_ctx *ctx)
{
    WH_TRY(wh_cfg_float(s, "jitter", .2f, 0.f, 1.f, &p->jitter, ctx));
    WH_TRY(wh_cfg_float(s, "ignore_thresh", .5f, 0.f, 1.f, &p->ignore_thresh, ctx));
    WH_TRY(wh_cfg_float(s, "truth_thresh", 1.f, 0.f, 1.f, &p->truth_thresh, ctx));
    WH_TRY(wh_cfg_float(s, "iou_thresh", 1.f, 0.f, 1.f, &p->iou_thresh, ctx));
    WH_TRY(wh_cfg_float(s, "anchor_t", 0.f, 0.f, 1e3f, &p->anchor_t, ctx));
    if (p->anchor_t > 0.f && p->anchor_t <= 1.f)
        return wh_error(ctx, WH_ERR_CFG,
                        "%s:%d: [%s] anchor_t=%g: the largest width or height ratio an anchor may have "
                        "to a truth must be above 1 (YOLOv5: 4), or 0 for darknet's assignment",
                        s->file, wh__key_line(s, "anchor_t"), s->type, p->anchor_t);
    WH_TRY(wh_cfg_float(s, "random", 0.f, 0.f, 10.f, &p->random, ctx));
    WH_TRY(wh_cfg_float(s, "resize", 1.f, 0.f, 100.f, &p->resize, ctx));
    WH_TRY(wh_cfg_float(s, "cls_normalizer", 1.f, 0.f, 1e6f, &p->cls_normalizer, ctx));
    WH_TRY(wh_cfg_float(s, "obj_normalizer", 1.f, 0.f, 1e6f, &p->obj_normalizer, ctx));
    WH_TRY(wh_cfg_float(s, "iou_normalizer", .75f, 0.f, 1e6f, &p->iou_normalizer, ctx));
    WH_TRY(wh_cfg_float(s, "max_delta", FLT_MAX, 0.f, FLT_MAX, &p->max_delta, ctx));
    WH_TRY(wh_cfg_float(s, "label_smooth_eps", 0.f, 0.f, 1.f, &p->label_smooth_eps, ctx));
    WH_TRY(wh_cfg_int(s, "objectness_smooth", 0, 0, 1, &p->objectness_smooth, ctx));
    WH_TRY(wh_cfg_int(s, "focal_loss", 0, 0, 1, &p->focal_loss, ctx));
    int k;
    WH_TRY(wh_cfg_choice(s, "iou_loss", wh__iou_names, WH_YOLO_IOU_MSE, &k, ctx));
    p->iou_loss = (wh_yolo_iou_loss)k;
    WH_TRY(wh_cfg_choice(s, "loss_norm", wh__norm_names, WH_YOLO_NORM_SUM, &p->loss_norm, ctx));
    WH_TRY(wh_cfg_int(s, "bias_prior", 0, 0, 1, &p->bias_prior, ctx));
    /* darknet takes any nms_kind it does not know (its own "default", or a
     * typo such as the authors' released yolov4-voc.cfg "grpeedynms") as
     * its default NMS (do_nms_sort: greedy, per class, IoU), as whittle's
     * evaluation does (wh_eval_opts.nms): accepted with a warning */
    wh_cfg_kv *nk = wh_cfg_find(s, "nms_kind");
    int known = !nk;
    for (int i = 0; nk && wh__nms_names[i]; i++) known |= !strcmp(nk->val, wh__nms_names[i]);
    if (known) {
        WH_TRY(wh_cfg_choice(s, "nms_kind", wh__nms_names, WH_YOLO_NMS_GREEDY, &k, ctx));
        p->nms_kind = (wh_yolo_nms_kind)k;
    } else {
        if (strcmp(nk->val, "default") != 0)
            wh_warn(ctx, "%s:%d: [yolo] nms_kind=%s is not a kind darknet knows: darknet's default NMS is used",
                    s->file, nk->line, nk->val);
        p->nms_kind = WH_YOLO_NMS_GREEDY;
    }
    WH_TRY(wh_cfg_float(s, "beta_nms", .6f, 0.f, 10.f, &p->beta_nms, ctx));
    /* max= (darknet's cap on truths per image) has no use here. */
    (void)wh_cfg_find(s, "max");
    if (wh_cfg_has(s, "counters_per_class"))
        wh_warn(ctx, "%s:%d: [%s] 'counters_per_class' is not supported: classes are not reweighted",
                s->file, wh__key_line(s, "counters_per_class"), s->type);
    return WH_OK;
}

static wh_status wh__yolo_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    wh__yolo *y = calloc(1, sizeof(*y));
    if (!y) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    l->priv = y; /* freed by destroy, also when init fails below */
    wh_yolo_params *p = &y->p;
    WH_TRY(wh_cfg_int(s, "classes", 20, 1, 1 << 20, &p->classes, ctx));
    WH_TRY(wh__parse_anchors(p, s, ctx));
    WH_TRY(wh_cfg_float(s, "scale_x_y", 1.f, 1e-3f, 100.f, &p->scale_x_y, ctx));
    /* new_coords=1 (yolo.h): the producer applies the logistic itself
     * (activation=logistic, as darknet's Scaled-YOLOv4 cfgs do); darknet
     * does not check that, and a layer cannot see its producer here */
    WH_TRY(wh_cfg_int(s, "new_coords", 0, 0, 1, &p->new_coords, ctx));
    return wh__parse_loss(p, s, ctx);
}

static wh_status wh__yolo_shape(wh_layer *l, wh_ctx *ctx)
{
    const wh_yolo_params *p = wh_yolo_get(l);
    const wh_shape in = l->in_shape[0];
    const long want = (long)p->n_mask * (p->classes + 5);
    if (in.c != want)
        return wh_error(ctx, WH_ERR_SHAPE,
                        "input has %d channels, expected %ld = n_mask %d * (classes %d + 5) "
                        "(mask has %d anchors, classes=%d): the [convolutional] before it "
                        "needs filters=%ld",
                        in.c, want, p->n_mask, p->classes, p->n_mask, p->classes, want);
    l->out_shape = in;
    return WH_OK;
}

/* The loss's gradient buffer exists in training nets only. */
static wh_status wh__yolo_plan(wh_layer *l, wh_plan *plan, wh_ctx *ctx)
{
    (void)ctx;
    wh__yolo *y = l->priv;
    if (l->train)
        WH_TRY(wh_plan_buffer(plan, WH_ARENA_ACT, &y->dlogit, wh_shape_count(l->out_shape)));
    return WH_OK;
}

static inline float wh__sigm(float v) { return 1.f / (1.f + expf(-v)); }

/* The map of one channel: out = alpha * logistic(in) + beta, or without the
 * logistic out = alpha * in + beta (w, h; with new_coords every channel, the
 * producer having applied it). x, y: alpha = scale_x_y, beta =
 * -(scale_x_y - 1)/2 stretches (0, 1) to (-(s-1)/2, (s+1)/2) so cell borders
 * are reachable. */
typedef struct wh__chan_map {
    int logistic;
    float alpha, beta;
} wh__chan_map;

static wh__chan_map wh__chan(const wh_yolo_params *p, int c)
{
    const int e = c % (5 + p->classes);
    wh__chan_map m = {1, 1.f, 0.f};
    if (e == 2 || e == 3 || p->new_coords) m.logistic = 0;
    if (e < 2) {
        m.alpha = p->scale_x_y;
        m.beta = -.5f * (p->scale_x_y - 1.f);
    }
    return m;
}

/* Darknet's CPU forward_yolo_layer applies the scale_x_y stretch to the wrong
 * block (objectness and 1 class, after reusing its index); its GPU path, which
 * trained the published weights, stretches x, y as done here. */
static wh_status wh__yolo_forward(wh_layer *l, wh_exec *x)
{
    wh__yolo *y = l->priv;
    const wh_yolo_params *p = &y->p;
    /* A new forward makes the previous loss's gradient stale. */
    y->have_loss = 0;
    y->in = x->train ? x->in[0] : NULL;
    const wh_shape s = l->out_shape;
    const long plane = (long)s.h * s.w;      /* one (n, c) map, H*W floats */
    const long n_planes = (long)s.n * s.c;
    const float *in = x->in[0];              /* (N, C, H, W) */
    float *out = l->out;                     /* (N, C, H, W) */
#pragma omp parallel for schedule(static)
    for (long pc = 0; pc < n_planes; pc++) {
        const wh__chan_map m = wh__chan(p, (int)(pc % s.c));
        const float *xi = in + pc * plane;
        float *yo = out + pc * plane;
        const float alpha = m.alpha, beta = m.beta;
        if (!m.logistic && alpha == 1.f && beta == 0.f) {
            memcpy(yo, xi, (size_t)plane * sizeof(float));
            continue;
        }
        if (!m.logistic) {
#pragma omp simd
            for (long i = 0; i < plane; i++) yo[i] = alpha * xi[i] + beta;
            continue;
        }
#pragma omp simd
        for (long i = 0; i < plane; i++) yo[i] = alpha * wh__sigm(xi[i]) + beta;
    }
    return WH_OK;
}

/* din += dlogit + dout * d out / d in: alpha * s * (1 - s) with
 * s = logistic(in) recomputed from the input (one exp; cheaper than keeping
 * s), or alpha without the logistic. dlogit (the loss's gradient, already w.r.t. the input) is added
 * only when wh_yolo_loss ran after the latest forward. */
static wh_status wh__yolo_backward(wh_layer *l, wh_exec *x)
{
    float *din = x->din[0];                  /* (N, C, H, W), accumulated */
    if (!din) return WH_OK;
    const wh__yolo *y = l->priv;
    const wh_yolo_params *p = &y->p;
    const wh_shape s = l->out_shape;
    const long plane = (long)s.h * s.w;
    const long n_planes = (long)s.n * s.c;
    const float *in = x->in[0];
    const float *dout = l->dout;
    const float *dl = y->have_loss ? y->dlogit : NULL;
#pragma omp parallel for schedule(static)
    for (long pc = 0; pc < n_planes; pc++) {
        const wh__chan_map m = wh__chan(p, (int)(pc % s.c));
        const float *xi = in + pc * plane, *dy = dout + pc * plane;
        float *dx = din + pc * plane;
        if (dl) {
            const float *g = dl + pc * plane;
#pragma omp simd
            for (long i = 0; i < plane; i++) dx[i] += g[i];
        }
        const float alpha = m.alpha;
        if (!m.logistic) {
#pragma omp simd
            for (long i = 0; i < plane; i++) dx[i] += dy[i] * alpha;
            continue;
        }
#pragma omp simd
        for (long i = 0; i < plane; i++) {
            const float sg = wh__sigm(xi[i]);
            dx[i] += dy[i] * alpha * sg * (1.f - sg);
        }
    }
    return WH_OK;
}

static double wh__yolo_flops(const wh_layer *l)
{
    (void)l;
    return 0.0; /* darknet counts none for [yolo] */
}

static void wh__yolo_describe(const wh_layer *l, char *buf, int n)
{
    const wh_yolo_params *p = wh_yolo_get(l);
    int used = snprintf(buf, (size_t)n, "mask ");
    for (int a = 0; a < p->n_mask && used >= 0 && used < n; a++)
        used += snprintf(buf + used, (size_t)(n - used), a ? ",%d" : "%d", p->mask[a]);
    if (used >= 0 && used < n)
        used += snprintf(buf + used, (size_t)(n - used), " cls %d", p->classes);
    if (used >= 0 && used < n && p->scale_x_y != 1.f)
        used += snprintf(buf + used, (size_t)(n - used), " sxy %g", (double)p->scale_x_y);
    if (used >= 0 && used < n && p->new_coords) snprintf(buf + used, (size_t)(n - used), " newc");
}

static void wh__yolo_destroy(wh_layer *l)
{
    if (l->priv) free(((wh__yolo *)l->priv)->ws);
    free(l->priv);
    l->priv = NULL;
}

/* bias_prior=1 (yolo.h): YOLOv5's output-bias priors. Producer 0 is the
 * convolution whose (n_mask * (5 + classes)) output channels this head
 * reads; its biases are set, its weights kept. */
static void wh__yolo_init_producers(const wh_layer *l, wh_layer *const *producers)
{
    const wh_yolo_params *p = wh_yolo_get(l);
    wh_layer *c = producers[0];
    if (!p->bias_prior || !c) return;
    const int per = 5 + p->classes;
    for (int k = 0; k < c->n_params; k++) {
        wh_param *b = &c->params[k];
        if (strcmp(b->name, "biases") || b->count != (size_t)p->n_mask * per) continue;
        const double cells = (double)l->out_shape.h * l->out_shape.w;
        for (int a = 0; a < p->n_mask; a++) {
            b->data[a * per + 4] = (float)log(8.0 / cells);
            if (p->classes > 1)
                for (int j = 0; j < p->classes; j++)
                    b->data[a * per + 5 + j] = (float)log(0.6 / (p->classes - 0.99999));
        }
    }
}

/* ---- the head interface (layers/head.h) ---- */

static int wh__head_classes(const wh_layer *l) { return wh_yolo_get(l)->classes; }
static float wh__head_jitter(const wh_layer *l) { return wh_yolo_get(l)->jitter; }
static int wh__head_averages(const wh_layer *l) { return wh_yolo_get(l)->loss_norm == WH_YOLO_NORM_MEAN; }

static const wh_head_ops wh__yolo_head = {
    .classes = wh__head_classes,
    .jitter = wh__head_jitter,
    .loss = wh_yolo_loss,
    .averages = wh__head_averages,
    .loss_rescale = wh_yolo_loss_rescale,
    .count_detections = wh_yolo_count_detections,
    .get_detections = wh_yolo_get_detections,
};

static void wh__yolo_facts(const wh_layer *l, wh_layer_facts *f)
{
    (void)l;
    f->head = 1;
}

const wh_layer_ops wh_yolo_ops = {
    .type = "yolo",
    .flow = WH_FLOW_SAME,
    .facts = wh__yolo_facts,
    .head = &wh__yolo_head,
    .layouts_in = WH_LAYOUT_BIT(WH_LAYOUT_NCHW),
    .init = wh__yolo_init,
    .shape = wh__yolo_shape,
    .plan = wh__yolo_plan,
    .forward = wh__yolo_forward,
    .backward = wh__yolo_backward,
    .backward_reads_input = 1, /* the logits, for the logistic's derivative */
    .flops = wh__yolo_flops,
    .describe = wh__yolo_describe,
    .destroy = wh__yolo_destroy,
    .init_producers = wh__yolo_init_producers,
};

/* --- decoding ---------------------------------------------------------------- */

int wh_yolo_count_detections(const wh_layer *l, int b, float thresh)
{
    const wh_yolo_params *p = wh_yolo_get(l);
    if (!p || !l->out || b < 0 || b >= l->out_shape.n) return 0;
    const wh_shape s = l->out_shape;
    const long plane = (long)s.h * s.w;
    int count = 0;
    for (int a = 0; a < p->n_mask; a++) {
        /* objectness map of anchor a: (H, W) */
        const float *obj = l->out + ((long)b * s.c + (long)a * (5 + p->classes) + 4) * plane;
        for (long i = 0; i < plane; i++) count += obj[i] > thresh;
    }
    return count;
}

/* Darknet's correct_yolo_boxes (relative = 0): undo the letterbox bands or
 * the resize, from fractions of the network input to image pixels. The
 * integer divisions are darknet's: they decide the band sizes. */
static void wh__correct_boxes(wh_detection *dets, int n, int imw, int imh, int netw, int neth,
                              int letterbox)
{
    int new_w = netw, new_h = neth;
    if (letterbox) {
        if ((float)netw / imw < (float)neth / imh) {
            new_w = netw;
            new_h = (imh * netw) / imw;
        } else {
            new_h = neth;
            new_w = (imw * neth) / imh;
        }
        /* an image 1000 times wider than tall would give a 0-pixel band */
        new_w = new_w > 0 ? new_w : 1;
        new_h = new_h > 0 ? new_h : 1;
    }
    const float deltaw = (float)(netw - new_w), deltah = (float)(neth - new_h);
    const float ratiow = (float)new_w / netw, ratioh = (float)new_h / neth;
    for (int i = 0; i < n; i++) {
        wh_box *bx = &dets[i].box;
        bx->x = (bx->x - deltaw / 2.f / netw) / ratiow * imw;
        bx->y = (bx->y - deltah / 2.f / neth) / ratioh * imh;
        bx->w = bx->w / ratiow * imw;
        bx->h = bx->h / ratioh * imh;
    }
}

wh_status wh_yolo_get_detections(const wh_layer *l, int b, int netw, int neth, int imw, int imh,
                                 float thresh, int letterbox, wh_detection *dets, int max,
                                 float *prob_pool, int *n, wh_ctx *ctx)
{
    if (n) *n = 0;
    const wh_yolo_params *p = wh_yolo_get(l);
    if (!p) return wh_error(ctx, WH_ERR_ARG, "wh_yolo_get_detections: not a [yolo] layer");
    if (!l->out) return wh_error(ctx, WH_ERR_STATE, "wh_yolo_get_detections: layer not bound");
    if (!n || max < 0 || (max > 0 && (!dets || !prob_pool)))
        return wh_error(ctx, WH_ERR_ARG, "wh_yolo_get_detections: missing output arrays");
    if (b < 0 || b >= l->out_shape.n)
        return wh_error(ctx, WH_ERR_ARG, "wh_yolo_get_detections: image %d, batch is %d", b,
                        l->out_shape.n);
    if (netw < 1 || neth < 1 || imw < 1 || imh < 1)
        return wh_error(ctx, WH_ERR_ARG,
                        "wh_yolo_get_detections: sizes must be positive (net %dx%d, image %dx%d)",
                        netw, neth, imw, imh);
    const wh_shape s = l->out_shape;
    const int per = 5 + p->classes;
    const long plane = (long)s.h * s.w;
    const float *img = l->out + (long)b * s.c * plane; /* (C, H, W) of image b */
    int count = 0, total = 0;
    for (long i = 0; i < plane; i++) {
        const int row = (int)(i / s.w), col = (int)(i % s.w);
        for (int a = 0; a < p->n_mask; a++) {
            const float *e = img + (long)a * per * plane + i; /* entry k at e[k*plane] */
            const float obj = e[4 * plane];
            if (!(obj > thresh)) continue;
            if (total++ >= max) continue;
            wh_detection *d = &dets[count];
            const float aw = p->anchors[2 * p->mask[a]], ah = p->anchors[2 * p->mask[a] + 1];
            /* fractions of the network input (darknet's get_yolo_box); x, y
             * hold the stretched offsets in the cell, w, h the logits of the
             * anchor's scale, or with new_coords half its square root: the
             * scale is (2 w)^2, in (0, 4) for a logistic w */
            d->box.x = (col + e[0]) / s.w;
            d->box.y = (row + e[plane]) / s.h;
            if (p->new_coords) {
                d->box.w = e[2 * plane] * e[2 * plane] * 4.f * aw / netw;
                d->box.h = e[3 * plane] * e[3 * plane] * 4.f * ah / neth;
            } else {
                d->box.w = expf(e[2 * plane]) * aw / netw;
                d->box.h = expf(e[3 * plane]) * ah / neth;
            }
            d->objectness = obj;
            d->cls_count = p->classes;
            d->prob = prob_pool + (size_t)count * p->classes;
            d->batch = b;
            for (int k = 0; k < p->classes; k++) {
                const float pr = obj * e[(5 + k) * plane];
                d->prob[k] = pr > thresh ? pr : 0.f;
            }
            count++;
        }
    }
    wh__correct_boxes(dets, count, imw, imh, netw, neth, letterbox);
    *n = count;
    if (total > max)
        return wh_error(ctx, WH_ERR_ARG,
                        "wh_yolo_get_detections: %d predictions pass thresh %g but dets holds %d "
                        "(size it with wh_yolo_count_detections)",
                        total, (double)thresh, max);
    return WH_OK;
}

/* --- loss ------------------------------------------------------------------------
 *
 * Written from AlexeyAB darknet's forward_yolo_layer / delta_yolo_box /
 * delta_yolo_class and box.c (see wh_yolo_loss in yolo.h for the rules).
 * Darknet defines deltas (negative gradients) only; the scalar here is the
 * one whose exact gradient reproduces them where they are gradients:
 *  - objectness, classes: darknet's delta (t - s) on the logit is the
 *    gradient of the logistic cross-entropy: kept as is.
 *  - mse x, y: darknet's delta scale * (t_x - out_x) goes straight onto the
 *    logit (no s(1 - s) factor), which is the gradient of a cross-entropy of
 *    the logit, not of a squared error: so the scalar is sxy * BCE(z, t')
 *    with out_x = sxy * s(z) - (sxy - 1)/2 and t' the target moved the same
 *    way; w, h: the squared error (tw - z)^2 / 2.
 *  - giou/diou/ciou: darknet's delta (dx_box_iou) is the derivative of
 *    the IoU-kind w.r.t. the decoded box's x, y and, times exp(tw), w, h,
 *    without the rest of the decode's chain rule (sxy * s(1 - s) / lw on x,
 *    anchor_w / netw on w) and with d/dw twice too large ("we do not divide
 *    by 2"). Ours is the exact gradient of 1 - IoU-kind through the decode:
 *    for the same iou_normalizer its x, y part is smaller by a factor of
 *    about lw / (sxy * s(1 - s)) and its w, h part by 2 netw / anchor_w.
 *    Darknet's box_diou (printed only) uses (d^2/c^2)^0.6, its delta d^2/c^2:
 *    we use d^2/c^2 (the DIoU paper's) for both.
 * new_coords=1 (the logistic lives in the producer, so the layer's input v
 * is already a probability for every entry; yolo.h): darknet's deltas go
 * onto v and then through the producer's logistic:
 *  - objectness, classes: darknet's (t - v) is the gradient of the squared
 *    error (v - t)^2 / 2, whose logit gradient (v - t) v (1 - v) vanishes
 *    for a confident mistake. We keep the cross-entropy of the probability
 *    (as the Scaled-YOLOv4 PyTorch trainer, WongKinYiu/ScaledYOLOv4's
 *    compute_loss, does on the same logits): the same scalar as with
 *    new_coords=0, so after the producer's logistic the logit gradient is
 *    again v - t.
 *  - mse x, y: darknet's scale * (t_x - out_x) on v is the exact gradient
 *    of scale * (out_x - t_x)^2 / (2 sxy), out_x = sxy v - (sxy - 1)/2;
 *    w, h: scale * (t_w - v) with t_w = sqrt(w_truth netw / (4 anchor_w))
 *    is that of scale * (v - t_w)^2 / 2. Both are kept as they are.
 *  - giou/diou/ciou: darknet's delta is dx_box_iou with no chain rule at
 *    all (its new_coords factors are commented out); ours goes through
 *    x = (sxy v + ...)/lw and w = 4 v^2 anchor_w / netw exactly.
 * Everything is computed in double from the float logits, so the loss is a
 * smooth function of them between the discrete decisions (ignore, match)
 * and finite differences of it match the gradient closely. */

#define WH__PI 3.14159265358979323846 /* M_PI is not C11 */

typedef struct wh__bx {
    double x, y, w, h; /* centre and size, fractions of the network input */
} wh__bx;

static double wh__sigd(double v) { return 1.0 / (1.0 + exp(-v)); }

/* log(1 + e^z) without overflow. */
static double wh__softplus(double z) { return (z > 0 ? z : 0) + log1p(exp(-fabs(z))); }

/* The entropy of a target t in [0, 1]: the cross-entropy's minimum. */
static double wh__entropy(double t) { return (t > 0.0 && t < 1.0) ? -(t * log(t) + (1.0 - t) * log1p(-t)) : 0.0; }

/* Logistic cross-entropy of logit z with target t, minus the entropy of t
 * (its minimum over z when 0 <= t <= 1, so a perfect prediction costs 0).
 * The gradient w.r.t. z is s(z) - t. */
static double wh__bce(double z, double t) { return wh__softplus(z) - t * z - wh__entropy(t); }

/* new_coords: the probability v is clamped to [eps, 1 - eps] before the
 * logs, and beyond the clamp the loss continues along its tangent, so it
 * stays finite and its gradient exact (and continuous) for any float v,
 * 0 and 1 included. A float logistic reaches v = 1 at logits above ~17 and
 * 0 below ~-88; 1e-12 (PyTorch's BCELoss gradient epsilon) bounds the
 * gradient by ~1e12, well inside float, and its product with the producer's
 * v (1 - v) in float stays ~|v - t|. */
#define WH__PROB_EPS 1e-12

/* The cross-entropy above as a function of the probability v = s(z), minus
 * the entropy of t; *g receives its derivative w.r.t. v (at the clamp: the
 * tangent's slope), (u - t) / (u (1 - u)) with u = v clamped. */
static double wh__bce_prob(double v, double t, double *g)
{
    const double u = v < WH__PROB_EPS ? WH__PROB_EPS : (v > 1.0 - WH__PROB_EPS ? 1.0 - WH__PROB_EPS : v);
    const double d = (u - t) / (u * (1.0 - u));
    *g = d;
    return -(t * log(u) + (1.0 - t) * log1p(-u)) - wh__entropy(t) + d * (v - u);
}

/* IoU of two boxes, 0 when they do not overlap (darknet's box_iou). */
static double wh__iou(wh__bx a, wh__bx b)
{
    const double iw = fmin(a.x + a.w / 2, b.x + b.w / 2) - fmax(a.x - a.w / 2, b.x - b.w / 2);
    const double ih = fmin(a.y + a.h / 2, b.y + b.h / 2) - fmax(a.y - a.h / 2, b.y - b.h / 2);
    if (iw <= 0 || ih <= 0) return 0.0;
    const double in = iw * ih, un = a.w * a.h + b.w * b.h - in;
    return un > 0 ? in / un : 0.0;
}

/* 1 - IoU-kind of the predicted box p against the truth t, and its gradient
 * g = d/d(x, y, w, h) of p. CIoU's alpha is held constant in g. Derivatives
 * go through the corners l, r, t, b of p (index 0..3); at a tie of two
 * edges the truth's edge is taken (derivative 0), a choice of subgradient. */
static double wh__iou_kind_loss(wh_yolo_iou_loss kind, wh__bx p, wh__bx t, double g[4])
{
    const double pc[4] = {p.x - p.w / 2, p.x + p.w / 2, p.y - p.h / 2, p.y + p.h / 2};
    const double tc[4] = {t.x - t.w / 2, t.x + t.w / 2, t.y - t.h / 2, t.y + t.h / 2};
    const double iw = fmin(pc[1], tc[1]) - fmax(pc[0], tc[0]);
    const double ih = fmin(pc[3], tc[3]) - fmax(pc[2], tc[2]);
    const int overlap = iw > 0 && ih > 0;
    const double in = overlap ? iw * ih : 0.0;
    const double un = p.w * p.h + t.w * t.h - in; /* > 0: the truth has an area */
    const double iou = in / un;
    /* d area / d corner, d intersection / d corner */
    const double da[4] = {-p.h, p.h, -p.w, p.w};
    double di[4] = {0, 0, 0, 0};
    if (overlap) {
        di[0] = pc[0] > tc[0] ? -ih : 0.0;
        di[1] = pc[1] < tc[1] ? ih : 0.0;
        di[2] = pc[2] > tc[2] ? -iw : 0.0;
        di[3] = pc[3] < tc[3] ? iw : 0.0;
    }
    double dc[4]; /* d loss / d corner */
    for (int k = 0; k < 4; k++) dc[k] = -(di[k] * un - in * (da[k] - di[k])) / (un * un);
    double loss = 1.0 - iou, dxc = 0.0, dyc = 0.0, dwc = 0.0, dhc = 0.0; /* direct terms */
    /* the enclosing box */
    const double cw = fmax(pc[1], tc[1]) - fmin(pc[0], tc[0]);
    const double ch = fmax(pc[3], tc[3]) - fmin(pc[2], tc[2]);
    const double dcw[4] = {pc[0] < tc[0] ? -1.0 : 0.0, pc[1] > tc[1] ? 1.0 : 0.0, 0.0, 0.0};
    const double dch[4] = {0.0, 0.0, pc[2] < tc[2] ? -1.0 : 0.0, pc[3] > tc[3] ? 1.0 : 0.0};
    if (kind == WH_YOLO_IOU_GIOU) {
        /* 1 - GIoU = 1 - iou + (C - U)/C = 2 - iou - U/C */
        const double ca = cw * ch;
        loss += 1.0 - un / ca;
        for (int k = 0; k < 4; k++) {
            const double dca = dcw[k] * ch + dch[k] * cw;
            dc[k] -= ((da[k] - di[k]) * ca - un * dca) / (ca * ca);
        }
    } else if (kind == WH_YOLO_IOU_DIOU || kind == WH_YOLO_IOU_CIOU) {
        /* + rho^2 / c^2: squared centre distance over the enclosing diagonal */
        const double c2 = cw * cw + ch * ch;
        const double rho2 = (p.x - t.x) * (p.x - t.x) + (p.y - t.y) * (p.y - t.y);
        loss += rho2 / c2;
        for (int k = 0; k < 4; k++) dc[k] -= rho2 * (2 * cw * dcw[k] + 2 * ch * dch[k]) / (c2 * c2);
        dxc += 2 * (p.x - t.x) / c2;
        dyc += 2 * (p.y - t.y) / c2;
        if (kind == WH_YOLO_IOU_CIOU) {
            /* + alpha * v, v = 4/pi^2 (atan(wt/ht) - atan(w/h))^2, alpha =
             * v / (1 - iou + v + 1e-6) (darknet's epsilon) held constant. */
            const double k4 = 4.0 / (WH__PI * WH__PI);
            /* atan2: a box of zero height (a new_coords scale of 0) gives
             * pi/2, not a NaN */
            const double da_t = atan2(t.w, t.h) - atan2(p.w, p.h);
            const double v = k4 * da_t * da_t;
            const double alpha = v / (1.0 - iou + v + 1e-6);
            loss += alpha * v;
            const double r2 = p.w * p.w + p.h * p.h;
            if (r2 > 0) { /* d atan(w/h) = (h dw - w dh) / (w^2 + h^2) */
                dwc += alpha * k4 * 2 * da_t * (-p.h / r2);
                dhc += alpha * k4 * 2 * da_t * (p.w / r2);
            }
        }
    }
    g[0] = dc[0] + dc[1] + dxc;
    g[1] = dc[2] + dc[3] + dyc;
    g[2] = (dc[1] - dc[0]) / 2 + dwc;
    g[3] = (dc[3] - dc[2]) / 2 + dhc;
    return loss;
}

/* One image's view of the layer: shapes and the decode's constants. */
typedef struct wh__img {
    const wh_yolo_params *p;
    int lw, lh, per; /* grid, channels per anchor block (5 + classes) */
    long plane;      /* lw * lh */
    int netw, neth;
    const float *z; /* (C, H, W) the layer's input for this image: logits, or
                     * with new_coords probabilities */
    float *dz;      /* (C, H, W) its gradient */
} wh__img;

/* The probability an objectness or class entry v of the input says. */
static double wh__score(const wh__img *m, double v) { return m->p->new_coords ? v : wh__sigd(v); }

/* The cross-entropy term of entry v with target t (minus t's entropy); *g
 * receives its derivative w.r.t. v. */
static double wh__score_bce(const wh__img *m, double v, double t, double *g)
{
    if (m->p->new_coords) return wh__bce_prob(v, t, g);
    *g = wh__sigd(v) - t;
    return wh__bce(v, t);
}

/* The box of prediction (anchor block a, cell i) from its input entries:
 * x = (sxy q - (sxy-1)/2 + col) / lw with q = s(z), or the input itself
 * with new_coords; w = e^z aw / netw, or (2 v)^2 aw / netw with new_coords. */
static wh__bx wh__decode(const wh__img *m, int a, long i)
{
    const float *e = m->z + (long)a * m->per * m->plane + i; /* entry k at e[k * plane] */
    const double s = m->p->scale_x_y, off = -.5 * (s - 1.0);
    const int an = m->p->mask[a];
    const double aw = m->p->anchors[2 * an], ah = m->p->anchors[2 * an + 1];
    wh__bx b;
    if (m->p->new_coords) {
        const double vw = e[2 * m->plane], vh = e[3 * m->plane];
        b.x = (s * e[0] + off + (double)(i % m->lw)) / m->lw;
        b.y = (s * e[m->plane] + off + (double)(i / m->lw)) / m->lh;
        b.w = 4.0 * vw * vw * aw / m->netw;
        b.h = 4.0 * vh * vh * ah / m->neth;
        return b;
    }
    b.x = (s * wh__sigd(e[0]) + off + (double)(i % m->lw)) / m->lw;
    b.y = (s * wh__sigd(e[m->plane]) + off + (double)(i / m->lw)) / m->lh;
    b.w = exp(e[2 * m->plane]) * aw / m->netw;
    b.h = exp(e[3 * m->plane]) * ah / m->neth;
    return b;
}

static wh__bx wh__truth_box(const wh_truth *t)
{
    wh__bx b = {t->x, t->y, t->w, t->h};
    return b;
}

static double wh__clip(double v, double m) { return v > m ? m : (v < -m ? -m : v); }

/* The box term of prediction (a, i) for truth t: returns its loss and adds
 * its gradient, divided by div, to the 4 box logits. */
static double wh__box_term(const wh__img *m, int a, long i, const wh_truth *t, double div)
{
    const wh_yolo_params *p = m->p;
    const long pl = m->plane;
    const float *e = m->z + (long)a * m->per * pl + i;
    float *de = m->dz + (long)a * m->per * pl + i;
    const int an = p->mask[a];
    const double aw = p->anchors[2 * an], ah = p->anchors[2 * an + 1];
    const double sxy = p->scale_x_y, norm = p->iou_normalizer;
    double g[4], loss;
    if (p->iou_loss == WH_YOLO_IOU_MSE && p->new_coords) {
        /* darknet's squared errors (see the top of this section): out_x =
         * sxy v - (sxy-1)/2 against tx, v_w against the v that decodes to
         * the truth's width */
        const double scale = (2.0 - (double)t->w * t->h) * norm, off = -.5 * (sxy - 1.0);
        const double ex = sxy * e[0] + off - ((double)t->x * m->lw - (double)(i % m->lw));
        const double ey = sxy * e[pl] + off - ((double)t->y * m->lh - (double)(i / m->lw));
        const double ew = e[2 * pl] - sqrt((double)t->w * m->netw / (4.0 * aw));
        const double eh = e[3 * pl] - sqrt((double)t->h * m->neth / (4.0 * ah));
        loss = scale * ((ex * ex + ey * ey) / (2.0 * sxy) + .5 * (ew * ew + eh * eh));
        g[0] = scale * ex; /* darknet's delta, negated */
        g[1] = scale * ey;
        g[2] = scale * ew;
        g[3] = scale * eh;
    } else if (p->iou_loss == WH_YOLO_IOU_MSE) {
        const double scale = (2.0 - (double)t->w * t->h) * norm;
        const double tx = (double)t->x * m->lw - (double)(i % m->lw);
        const double ty = (double)t->y * m->lh - (double)(i / m->lw);
        const double tw = log((double)t->w * m->netw / aw), th = log((double)t->h * m->neth / ah);
        /* out = sxy s(z) - (sxy-1)/2 = tx  <=>  s(z) = t' */
        const double tpx = (tx + .5 * (sxy - 1.0)) / sxy, tpy = (ty + .5 * (sxy - 1.0)) / sxy;
        const double zx = e[0], zy = e[pl], zw = e[2 * pl], zh = e[3 * pl];
        loss = scale * (sxy * (wh__bce(zx, tpx) + wh__bce(zy, tpy)) +
                        .5 * ((zw - tw) * (zw - tw) + (zh - th) * (zh - th)));
        g[0] = scale * sxy * (wh__sigd(zx) - tpx); /* = scale * (out_x - tx): darknet's */
        g[1] = scale * sxy * (wh__sigd(zy) - tpy);
        g[2] = scale * (zw - tw);
        g[3] = scale * (zh - th);
    } else {
        const wh__bx pb = wh__decode(m, a, i);
        double gb[4];
        loss = norm * wh__iou_kind_loss(p->iou_loss, pb, wh__truth_box(t), gb);
        /* chain rule through the decode: x = (sxy s(zx) + ...)/lw, w = e^zw aw/netw;
         * new_coords: x = (sxy vx + ...)/lw, w = 4 vw^2 aw/netw */
        if (p->new_coords) {
            g[0] = norm * gb[0] * sxy / m->lw;
            g[1] = norm * gb[1] * sxy / m->lh;
            g[2] = norm * gb[2] * 8.0 * e[2 * pl] * aw / m->netw;
            g[3] = norm * gb[3] * 8.0 * e[3 * pl] * ah / m->neth;
        } else {
            const double sx = wh__sigd(e[0]), sy = wh__sigd(e[pl]);
            g[0] = norm * gb[0] * sxy * sx * (1.0 - sx) / m->lw;
            g[1] = norm * gb[1] * sxy * sy * (1.0 - sy) / m->lh;
            g[2] = norm * gb[2] * pb.w;
            g[3] = norm * gb[3] * pb.h;
        }
        for (int k = 0; k < 4; k++) {
            if (!isfinite(g[k])) g[k] = 0.0; /* darknet's fix_nan_inf */
            /* darknet clips each pair's IoU-loss delta; the loss is unclipped */
            if (p->max_delta != FLT_MAX) g[k] = wh__clip(g[k], p->max_delta);
        }
    }
    for (int k = 0; k < 4; k++) de[k * pl] += (float)(g[k] / div);
    return loss / div;
}

/* Index of anchor n in the mask, or -1 (darknet's int_index). */
static int wh__mask_slot(const wh_yolo_params *p, int n)
{
    for (int a = 0; a < p->n_mask; a++)
        if (p->mask[a] == n) return a;
    return -1;
}

/* Shape IoU of anchor n with the truth, both centred at the origin. */
static double wh__anchor_iou(const wh__img *m, int n, const wh_truth *t)
{
    wh__bx a = {0, 0, m->p->anchors[2 * n] / m->netw, m->p->anchors[2 * n + 1] / m->neth};
    wh__bx b = {0, 0, t->w, t->h};
    return wh__iou(a, b);
}

/* YOLOv5's shape fit of anchor n to the truth: the largest of the width and
 * height ratios, each taken >= 1 (1: the same shape). */
static double wh__anchor_ratio(const wh__img *m, int n, const wh_truth *t)
{
    const double tw = fmax(t->w * m->netw, 1e-6), th = fmax(t->h * m->neth, 1e-6);
    const double aw = m->p->anchors[2 * n], ah = m->p->anchors[2 * n + 1];
    return fmax(fmax(tw / aw, aw / tw), fmax(th / ah, ah / th));
}

/* One (prediction, truth) responsibility; a prediction's list is linked
 * through next, from head[prediction]. */
typedef struct wh__assign {
    int t;     /* truth index in the image */
    int next;  /* next assignment of the same prediction, -1: none */
    int stats; /* 1: counted in darknet's statistics (the truth loop) */
} wh__assign;

typedef struct wh__work {
    int *head;          /* (n_mask * plane) first assignment, -1: none */
    double *match;      /* (n_mask * plane) best IoU with a truth that counts for the ignore
                         * rule: objectness is ignored above ignore_thresh, and
                         * objectness_smooth's target is this IoU */
    wh__assign *as;     /* (cap) */
    int n_as, cap;
} wh__work;

static int wh__ignored(const wh_yolo_params *p, const wh__work *w, long pred)
{
    return w->match[pred] > p->ignore_thresh;
}

static void wh__assign_add(wh__work *w, long pred, int t, int stats)
{
    if (w->n_as >= w->cap) return; /* cap is sized for the worst case */
    wh__assign *s = &w->as[w->n_as];
    s->t = t;
    s->stats = stats;
    s->next = w->head[pred];
    w->head[pred] = w->n_as++;
}

/* Prediction (a, i)'s best IoU with a truth (*best, truth *best_t) and its
 * best among the truths that count for the ignore rule (*best_match):
 * darknet's compare_yolo_class counts them only if the prediction scores
 * some class above .25. */
static void wh__best_ious(const wh__img *m, int a, long i, const wh_truth *tr, int n_t, double *best, int *best_t,
                          double *best_match)
{
    const wh_yolo_params *p = m->p;
    const float *e = m->z + (long)a * m->per * m->plane + i;
    const wh__bx b = wh__decode(m, a, i);
    int some_class = 0;
    for (int c = 0; c < p->classes && !some_class; c++) some_class = wh__score(m, e[(5 + c) * m->plane]) > .25;
    *best = *best_match = 0.0;
    *best_t = 0;
    for (int t = 0; t < n_t; t++) {
        const double iou = wh__iou(b, wh__truth_box(&tr[t]));
        if (iou > *best) {
            *best = iou;
            *best_t = t;
        }
        if (some_class && iou > *best_match) *best_match = iou;
    }
}

/* objectness_smooth=1 (yolo.h): darknet's objectness target of prediction
 * (a, i), held constant: IoU^2 with the truth it holds by truth_thresh, else
 * its best IoU with a truth that counts for the ignore rule when that is
 * above ignore_thresh, else 0. Being responsible by the truth loop does not
 * change it (darknet writes its target 1 only where this target's delta is
 * exactly 0). */
static double wh__smooth_target(const wh__img *m, const wh__work *w, int a, long i, const wh_truth *tr)
{
    const long pred = a * m->plane + i;
    for (int k = w->head[pred]; k >= 0; k = w->as[k].next)
        if (!w->as[k].stats) {
            const double iou = wh__iou(wh__decode(m, a, i), wh__truth_box(&tr[w->as[k].t]));
            return iou * iou;
        }
    return wh__ignored(m->p, w, pred) ? w->match[pred] : 0.0; /* from step 1 of wh__loss_image */
}

/* The loss of one image: overwrites its slice of dlogit, fills *pp. */
static void wh__loss_image(const wh__img *m, const wh_truth *tr, int n_t, wh__work *w,
                           wh_yolo_loss_parts *pp)
{
    const wh_yolo_params *p = m->p;
    const long pl = m->plane, n_pred = (long)p->n_mask * pl;
    memset(m->dz, 0, (size_t)n_pred * m->per * sizeof(float));
    memset(pp, 0, sizeof(*pp));
    pp->n_truth = n_t;
    pp->n_pred = n_pred;
    w->n_as = 0;

    /* 1. every prediction: its best IoU with a truth (ignore, truth_thresh) */
    for (int a = 0; a < p->n_mask; a++)
        for (long i = 0; i < pl; i++) {
            const long pred = a * pl + i;
            const float *e = m->z + (long)a * m->per * pl + i;
            pp->anyobj_sum += wh__score(m, e[4 * pl]);
            double best, best_match;
            int best_t;
            wh__best_ious(m, a, i, tr, n_t, &best, &best_t, &best_match);
            w->head[pred] = -1;
            w->match[pred] = best_match;
            if (best > p->truth_thresh) wh__assign_add(w, pred, best_t, 0);
        }

    /* 2. every truth: the prediction at its cell with the best-shaped anchor
     * (of all num), and with iou_thresh < 1 every anchor of the mask above it */
    for (int t = 0; t < n_t; t++) {
        int col = (int)(tr[t].x * m->lw), row = (int)(tr[t].y * m->lh);
        if (col >= m->lw) col = m->lw - 1; /* x == 1 */
        if (row >= m->lh) row = m->lh - 1;
        const long cell = (long)row * m->lw + col;
        if (p->anchor_t > 0.f) {
            /* YOLOv5: every anchor (of all num) whose ratios to the truth are
             * below anchor_t, and the best-fitting one when none is */
            double best_r = DBL_MAX;
            int best_n = 0, fits = 0;
            for (int n = 0; n < p->num; n++) {
                const double r = wh__anchor_ratio(m, n, &tr[t]);
                if (r < best_r) best_r = r, best_n = n;
                if (r < p->anchor_t) {
                    fits = 1;
                    const int s = wh__mask_slot(p, n);
                    if (s >= 0) wh__assign_add(w, s * pl + cell, t, 1);
                }
            }
            const int s = fits ? -1 : wh__mask_slot(p, best_n);
            if (s >= 0) wh__assign_add(w, s * pl + cell, t, 1);
            continue;
        }
        double best = 0.0;
        int best_n = 0;
        for (int n = 0; n < p->num; n++) {
            const double iou = wh__anchor_iou(m, n, &tr[t]);
            if (iou > best) {
                best = iou;
                best_n = n;
            }
        }
        const int slot = wh__mask_slot(p, best_n);
        if (slot >= 0) wh__assign_add(w, slot * pl + cell, t, 1);
        if (p->iou_thresh < 1.f)
            for (int n = 0; n < p->num; n++) {
                const int s = wh__mask_slot(p, n);
                if (s >= 0 && n != best_n && wh__anchor_iou(m, n, &tr[t]) > p->iou_thresh)
                    wh__assign_add(w, s * pl + cell, t, 1);
            }
    }

    /* 3. the terms of every prediction */
    const double eps = p->label_smooth_eps, on = p->obj_normalizer;
    const int smooth = p->objectness_smooth;
    for (int a = 0; a < p->n_mask; a++)
        for (long i = 0; i < pl; i++) {
            const long pred = a * pl + i;
            const long base = (long)a * m->per * pl + i;
            const float *e = m->z + base;
            float *de = m->dz + base;
            const double zo = e[4 * pl], so = wh__score(m, zo);
            double g;
            if (w->head[pred] < 0) {
                /* objectness_smooth: no prediction is ignored, its target may be > 0 */
                if (smooth || !wh__ignored(p, w, pred)) {
                    const double to = smooth ? wh__smooth_target(m, w, a, i, tr) : 0.0;
                    pp->obj += on * wh__score_bce(m, zo, to, &g);
                    de[4 * pl] = (float)(on * g);
                }
                continue;
            }
            const wh__bx b = wh__decode(m, a, i);
            /* sum: darknet's target; mean: the best IoU of its truths;
             * objectness_smooth (either norm): darknet's smooth target */
            double to = 1.0;
            if (smooth) {
                to = wh__smooth_target(m, w, a, i, tr);
            } else if (p->loss_norm == WH_YOLO_NORM_MEAN) {
                to = 0.0;
                for (int k = w->head[pred]; k >= 0; k = w->as[k].next)
                    to = fmax(to, wh__iou(b, wh__truth_box(&tr[w->as[k].t])));
            }
            pp->obj += on * wh__score_bce(m, zo, to, &g);
            de[4 * pl] = (float)(on * g);
            /* classes: 1 for those of its truths, then smoothed; with
             * objectness_smooth, a class only the truth_thresh truth has
             * gets that pair's IoU^2, unsmoothed (darknet's) */
            int n_cls = 0;
            for (int c = 0; c < p->classes; c++) {
                int has = 0, by_loop = 0, thr = -1;
                for (int k = w->head[pred]; k >= 0; k = w->as[k].next) {
                    if (tr[w->as[k].t].cls != c) continue;
                    has = 1;
                    if (w->as[k].stats) by_loop = 1;
                    else thr = w->as[k].t;
                }
                n_cls += has;
                double tc = (has ? 1.0 : 0.0) * (1.0 - eps) + .5 * eps;
                if (smooth && !by_loop && thr >= 0) {
                    const double iou = wh__iou(b, wh__truth_box(&tr[thr]));
                    tc = iou * iou;
                }
                pp->cls += wh__score_bce(m, e[(5 + c) * pl], tc, &g);
                de[(5 + c) * pl] = (float)g;
            }
            pp->n_cls++;
            /* darknet's averages_yolo_deltas: with iou_thresh < 1 the box
             * deltas of a prediction are divided by its number of classes.
             * Darknet counts the classes whose delta is > 0 (target above
             * score): the same number unless label smoothing puts a score
             * below eps/2 or above 1 - eps/2; we count the target classes,
             * which does not depend on the scores. */
            const double div = (p->iou_thresh < 1.f && p->anchor_t == 0.f && n_cls > 0) ? n_cls : 1.0;
            for (int k = w->head[pred]; k >= 0; k = w->as[k].next) {
                const wh_truth *t = &tr[w->as[k].t];
                pp->box += wh__box_term(m, a, i, t, div);
                pp->n_box++;
                if (!w->as[k].stats) continue;
                const double iou = wh__iou(b, wh__truth_box(t));
                pp->count++;
                pp->iou_sum += iou;
                pp->recall50 += iou > .5;
                pp->recall75 += iou > .75;
                pp->obj_sum += so;
                pp->cls_sum += wh__score(m, e[(5 + t->cls) * pl]);
            }
        }
    pp->loss = pp->box + pp->obj + pp->cls;
}


/* Truths of image b: how many before the terminator, or an error. */
static wh_status wh__count_truths(const wh_yolo_params *p, const wh_truth *tr, int max_boxes, int b,
                                  int *n, wh_ctx *ctx)
{
    int k = 0;
    for (; k < max_boxes && tr[k].w != 0.f; k++) {
        const wh_truth *t = &tr[k];
        if (!(t->x >= 0.f && t->x <= 1.f && t->y >= 0.f && t->y <= 1.f && t->w > 0.f &&
              t->h > 0.f && isfinite(t->w) && isfinite(t->h)))
            return wh_error(ctx, WH_ERR_ARG,
                            "wh_yolo_loss: image %d truth %d: box x %g y %g w %g h %g is not "
                            "within the network input (x, y in [0, 1], w, h > 0)",
                            b, k, (double)t->x, (double)t->y, (double)t->w, (double)t->h);
        if (t->cls < 0 || t->cls >= p->classes)
            return wh_error(ctx, WH_ERR_ARG,
                            "wh_yolo_loss: image %d truth %d: class %d is not in 0..%d "
                            "(classes=%d)",
                            b, k, t->cls, p->classes - 1, p->classes);
    }
    *n = k;
    return WH_OK;
}

static size_t wh__al(size_t b) { return (b + 63) / 64 * 64; }

/* dz (the layer's (N, C, H, W) gradient) times kb on every anchor block's
 * box channels 0..3, ko on its objectness channel 4 and kc on its classes. */
static void wh__scale_terms(const wh_yolo_params *p, wh_shape s, float *dz, float kb, float ko, float kc)
{
    const long plane = (long)s.h * s.w, per = 5 + p->classes;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < s.n; b++)
        for (int a = 0; a < p->n_mask; a++)
            for (long e = 0; e < per; e++) {
                const float k = e < 4 ? kb : e == 4 ? ko : kc;
                if (k == 1.f) continue;
                float *d = dz + ((long)b * s.c + (long)a * per + e) * plane;
                for (long i = 0; i < plane; i++) d[i] *= k;
            }
}

/* loss_norm=mean (yolo.h): the per-image sums of wh__loss_image become
 * averages over the mini-batch's elements, loss parts and gradient alike
 * (the terms sit in separate channels: box 0..3, objectness 4, classes
 * 5.. of each anchor block, so each channel is scaled once). */
static void wh__loss_to_means(const wh_yolo_params *p, wh_shape s, float *dz, wh_yolo_loss_parts *pp)
{
    long n_box = 0, n_cls = 0;
    for (int b = 0; b < s.n; b++) {
        n_box += pp[b].n_box;
        n_cls += pp[b].n_cls;
    }
    const long plane = (long)s.h * s.w;
    const double kb = n_box ? (double)s.n / (double)n_box : 0.0;
    /* iou_ and obj_normalizer are already in the sums (as darknet's);
     * cls_normalizer is applied here only (yolo.h) */
    const double kc = n_cls ? (double)p->cls_normalizer * s.n / ((double)n_cls * p->classes) : 0.0;
    const double ko_rel = 1.0 / (double)(p->n_mask * plane);
    wh__scale_terms(p, s, dz, (float)kb, (float)ko_rel, (float)kc);
    for (int b = 0; b < s.n; b++) {
        pp[b].box *= kb;
        pp[b].obj *= ko_rel;
        pp[b].cls *= kc;
        pp[b].loss = pp[b].box + pp[b].obj + pp[b].cls;
    }
}

wh_status wh_yolo_loss(wh_layer *l, const wh_truth *truth, int max_boxes, int netw, int neth,
                       wh_yolo_loss_parts *parts, wh_ctx *ctx)
{
    if (parts) memset(parts, 0, sizeof(*parts));
    const wh_yolo_params *p = wh_yolo_get(l);
    if (!p) return wh_error(ctx, WH_ERR_ARG, "wh_yolo_loss: not a [yolo] layer");
    wh__yolo *y = l->priv;
    if (!l->train || !y->dlogit)
        return wh_error(ctx, WH_ERR_STATE,
                        "wh_yolo_loss: layer %d: the network was built for inference", l->index);
    if (!y->in)
        return wh_error(ctx, WH_ERR_STATE,
                        "wh_yolo_loss: layer %d: no training forward to take the loss of",
                        l->index);
    if (p->focal_loss)
        return wh_error(ctx, WH_ERR_UNSUPPORTED,
                        "wh_yolo_loss: layer %d (cfg line %d): focal_loss=1 is not supported", l->index,
                        l->line);
    if (netw < 1 || neth < 1 || max_boxes < 0 || (max_boxes > 0 && !truth))
        return wh_error(ctx, WH_ERR_ARG,
                        "wh_yolo_loss: bad arguments (net %dx%d, max_boxes %d, truth %s)", netw,
                        neth, max_boxes, truth ? "set" : "NULL");
    const wh_shape s = l->out_shape;
    /* Per image: the truth count, head, best IoUs for the ignore rule and
     * assignments (at most one per prediction from truth_thresh, n_mask per
     * truth from the truth loop), and the loss parts; one workspace, 64-byte
     * aligned parts. */
    const long plane = (long)s.h * s.w, n_pred = (long)p->n_mask * plane;
    const int cap = (int)(n_pred + (long)max_boxes * p->n_mask);
    const size_t o_t = 0, o_head = o_t + wh__al((size_t)s.n * sizeof(int)),
                 o_match = o_head + wh__al((size_t)s.n * n_pred * sizeof(int)),
                 o_as = o_match + wh__al((size_t)s.n * n_pred * sizeof(double)),
                 o_pp = o_as + wh__al((size_t)s.n * cap * sizeof(wh__assign)),
                 need = o_pp + wh__al((size_t)s.n * sizeof(wh_yolo_loss_parts));
    if (need > y->ws_bytes) {
        free(y->ws);
        y->ws = aligned_alloc(64, need);
        y->ws_bytes = y->ws ? need : 0;
        if (!y->ws) return wh_error(ctx, WH_ERR_NOMEM, "wh_yolo_loss: out of memory");
    }
    char *ws = y->ws;
    int *n_t = (int *)(void *)(ws + o_t), *head = (int *)(void *)(ws + o_head);
    double *match = (double *)(void *)(ws + o_match);
    wh__assign *as = (wh__assign *)(void *)(ws + o_as);
    wh_yolo_loss_parts *pp = (wh_yolo_loss_parts *)(void *)(ws + o_pp);
    memset(pp, 0, (size_t)s.n * sizeof(*pp));
    for (int b = 0; b < s.n; b++)
        WH_TRY(wh__count_truths(p, truth + (size_t)b * max_boxes, max_boxes, b, &n_t[b], ctx));
    const long img = (long)s.c * plane; /* floats per image */
#pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < s.n; b++) {
        wh__img m = {
            p, s.w, s.h, 5 + p->classes, plane, netw, neth, y->in + b * img, y->dlogit + b * img};
        wh__work w = {head + b * n_pred, match + b * n_pred, as + (size_t)b * cap, 0, cap};
        wh__loss_image(&m, truth + (size_t)b * max_boxes, n_t[b], &w, &pp[b]);
    }
    if (p->loss_norm == WH_YOLO_NORM_MEAN) wh__loss_to_means(p, s, y->dlogit, pp);
    /* summed in image order: the same total with any thread count */
    if (parts)
        for (int b = 0; b < s.n; b++) wh_yolo_loss_parts_add(parts, &pp[b]);
    y->have_loss = 1;
    return WH_OK;
}

wh_status wh_yolo_loss_rescale(wh_layer *l, double box_k, double cls_k, wh_yolo_loss_parts *parts, wh_ctx *ctx)
{
    const wh_yolo_params *p = wh_yolo_get(l);
    if (!p) return wh_error(ctx, WH_ERR_ARG, "wh_yolo_loss_rescale: not a [yolo] layer");
    wh__yolo *y = l->priv;
    if (!y->have_loss)
        return wh_error(ctx, WH_ERR_STATE, "wh_yolo_loss_rescale: layer %d holds no loss", l->index);
    wh__scale_terms(p, l->out_shape, y->dlogit, (float)box_k, 1.f, (float)cls_k);
    if (parts) {
        parts->box *= box_k;
        parts->cls *= cls_k;
        parts->loss = parts->box + parts->obj + parts->cls;
    }
    return WH_OK;
}

void wh_yolo_loss_clear(wh_layer *l)
{
    if (wh_yolo_get(l)) ((wh__yolo *)l->priv)->have_loss = 0;
}

const float *wh_yolo_dlogit(const wh_layer *l)
{
    if (!wh_yolo_get(l)) return NULL;
    const wh__yolo *y = l->priv;
    return y->have_loss ? y->dlogit : NULL;
}
