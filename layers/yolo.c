/* The [yolo] layer: the elementwise head map, its exact gradient, and the
 * decoding of its output into boxes. The loss lives elsewhere (it writes
 * l->dout); this file keeps the cfg keys it needs in wh_yolo_params.
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

const wh_yolo_params *wh_yolo_get(const wh_layer *l)
{
    return (l && l->ops == &wh_yolo_ops) ? (const wh_yolo_params *)l->priv : NULL;
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
    WH_TRY(wh_cfg_choice(s, "nms_kind", wh__nms_names, WH_YOLO_NMS_GREEDY, &k, ctx));
    p->nms_kind = (wh_yolo_nms_kind)k;
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
    wh_yolo_params *p = calloc(1, sizeof(*p));
    if (!p) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    l->priv = p; /* freed by destroy, also when init fails below */
    WH_TRY(wh_cfg_int(s, "classes", 20, 1, 1 << 20, &p->classes, ctx));
    WH_TRY(wh__parse_anchors(p, s, ctx));
    WH_TRY(wh_cfg_float(s, "scale_x_y", 1.f, 1e-3f, 100.f, &p->scale_x_y, ctx));
    WH_TRY(wh_cfg_int(s, "new_coords", 0, 0, 1, &p->new_coords, ctx));
    if (p->new_coords)
        return wh_error(ctx, WH_ERR_UNSUPPORTED,
                        "%s:%d: [%s] new_coords=1 (scaled-yolov4 box coding) is not supported",
                        s->file, wh__key_line(s, "new_coords"), s->type);
    return wh__parse_loss(p, s, ctx);
}

static wh_status wh__yolo_shape(wh_layer *l, wh_ctx *ctx)
{
    const wh_yolo_params *p = l->priv;
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

static inline float wh__sigm(float v) { return 1.f / (1.f + expf(-v)); }

/* The map of one channel: out = alpha * logistic(in) + beta, or the identity
 * (w, h). x, y: alpha = scale_x_y, beta = -(scale_x_y - 1)/2 stretches the
 * logistic's (0, 1) to (-(s-1)/2, (s+1)/2) so cell borders are reachable. */
typedef struct wh__chan_map {
    int logistic;
    float alpha, beta;
} wh__chan_map;

static wh__chan_map wh__chan(const wh_yolo_params *p, int c)
{
    const int e = c % (5 + p->classes);
    wh__chan_map m = {1, 1.f, 0.f};
    if (e == 2 || e == 3) m.logistic = 0;
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
    const wh_yolo_params *p = l->priv;
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
        if (!m.logistic) {
            memcpy(yo, xi, (size_t)plane * sizeof(float));
            continue;
        }
        const float alpha = m.alpha, beta = m.beta;
#pragma omp simd
        for (long i = 0; i < plane; i++) yo[i] = alpha * wh__sigm(xi[i]) + beta;
    }
    return WH_OK;
}

/* din += dout * d out / d in: alpha * s * (1 - s) with s = logistic(in)
 * recomputed from the input (one exp; cheaper than keeping s), or 1. */
static wh_status wh__yolo_backward(wh_layer *l, wh_exec *x)
{
    float *din = x->din[0];                  /* (N, C, H, W), accumulated */
    if (!din) return WH_OK;
    const wh_yolo_params *p = l->priv;
    const wh_shape s = l->out_shape;
    const long plane = (long)s.h * s.w;
    const long n_planes = (long)s.n * s.c;
    const float *in = x->in[0];
    const float *dout = l->dout;
#pragma omp parallel for schedule(static)
    for (long pc = 0; pc < n_planes; pc++) {
        const wh__chan_map m = wh__chan(p, (int)(pc % s.c));
        const float *xi = in + pc * plane, *dy = dout + pc * plane;
        float *dx = din + pc * plane;
        if (!m.logistic) {
#pragma omp simd
            for (long i = 0; i < plane; i++) dx[i] += dy[i];
            continue;
        }
        const float alpha = m.alpha;
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
    const wh_yolo_params *p = l->priv;
    int used = snprintf(buf, (size_t)n, "mask ");
    for (int a = 0; a < p->n_mask && used >= 0 && used < n; a++)
        used += snprintf(buf + used, (size_t)(n - used), a ? ",%d" : "%d", p->mask[a]);
    if (used >= 0 && used < n)
        used += snprintf(buf + used, (size_t)(n - used), " cls %d", p->classes);
    if (used >= 0 && used < n && p->scale_x_y != 1.f)
        snprintf(buf + used, (size_t)(n - used), " sxy %g", (double)p->scale_x_y);
}

static void wh__yolo_destroy(wh_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const wh_layer_ops wh_yolo_ops = {
    .type = "yolo",
    .flow = WH_FLOW_SAME,
    .layouts_in = WH_LAYOUT_BIT(WH_LAYOUT_NCHW),
    .init = wh__yolo_init,
    .shape = wh__yolo_shape,
    .forward = wh__yolo_forward,
    .backward = wh__yolo_backward,
    .flops = wh__yolo_flops,
    .describe = wh__yolo_describe,
    .destroy = wh__yolo_destroy,
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
            /* fractions of the network input (darknet's get_yolo_box) */
            d->box.x = (col + e[0]) / s.w;
            d->box.y = (row + e[plane]) / s.h;
            d->box.w = expf(e[2 * plane]) * aw / netw;
            d->box.h = expf(e[3 * plane]) * ah / neth;
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
