/* whittle: the [yolo] detection head (AlexeyAB darknet semantics).
 *
 * The layer itself is an elementwise map on its input (n_mask anchor blocks of
 * 5 + classes channels each): per anchor a, channel a*(5+classes) + e holds
 *   e = 0, 1   x, y offsets in the cell:  logistic, then scale_x_y stretch
 *   e = 2, 3   w, h log-scales of the anchor: unchanged
 *   e = 4      objectness: logistic
 *   e = 5..    class scores: logistic
 * With new_coords=1 (Scaled-YOLOv4: yolov4-csp.cfg, yolov4x-mish.cfg) the
 * convolution before the layer applies the logistic itself
 * (activation=logistic), so the layer takes every entry as it is: x, y are
 * only stretched by scale_x_y, and w, h are decoded as (2 v)^2 times the
 * anchor instead of e^v (wh_yolo_loss gives the decode).
 * Its loss (wh_yolo_loss, below) is computed after a training forward from
 * the layer's input logits; its gradient is kept in a private buffer
 * (dlogit) that the layer's backward adds to the producer's gradient, next
 * to the generic l->dout (zero unless another loss, e.g. distillation,
 * writes it): din += dlogit + dout * f'(in).
 *
 * The decoding functions below turn a forward output into boxes in the
 * pixels of the original image, as darknet's get_yolo_detections.
 */
#ifndef WH_YOLO_H
#define WH_YOLO_H

#include "head.h"
#include "layer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most anchors ([yolo] num=) one cfg may list; darknet cfgs use 6 or 9. */
#define WH_YOLO_MAX_ANCHORS 64

typedef enum wh_yolo_iou_loss {
    WH_YOLO_IOU_MSE, WH_YOLO_IOU_GIOU, WH_YOLO_IOU_DIOU, WH_YOLO_IOU_CIOU, WH_YOLO_IOU_COUNT
} wh_yolo_iou_loss;

enum { WH_YOLO_NORM_SUM = 0, WH_YOLO_NORM_MEAN = 1 };

typedef enum wh_yolo_nms_kind {
    WH_YOLO_NMS_GREEDY, WH_YOLO_NMS_DIOU, WH_YOLO_NMS_CORNERS, WH_YOLO_NMS_COUNT
} wh_yolo_nms_kind;

/* Everything a [yolo] section says. Defaults are darknet's (parse_yolo). */
typedef struct wh_yolo_params {
    int classes;                          /* classes= (20) */
    int num;                              /* num=: anchors listed in anchors= (1) */
    int n_mask;                           /* anchors this layer predicts */
    int mask[WH_YOLO_MAX_ANCHORS];        /* mask=: indices into anchors (0..num-1) */
    float anchors[2 * WH_YOLO_MAX_ANCHORS]; /* num (w, h) pairs, network-input pixels */
    float scale_x_y;                      /* x,y stretch: s*scale - (scale-1)/2 (1) */
    /* loss and training (used by wh_yolo_loss and the trainer) */
    float jitter;                         /* (.2) */
    float ignore_thresh;                  /* (.5) */
    float truth_thresh;                   /* (1) */
    float iou_thresh;                     /* (1) */
    /* anchor_t= (whittle's key; darknet ignores it): > 1 replaces darknet's
     * assignment (the best-shaped anchor, and those above iou_thresh) with
     * YOLOv5's: every anchor whose width and height ratios to the truth are
     * all below anchor_t learns it, the best-fitting one when none is; 0
     * (default): darknet's */
    float anchor_t;
    float random;                         /* (0) multi-scale training */
    float resize;                         /* (1) */
    float cls_normalizer, obj_normalizer; /* (1, 1) */
    float iou_normalizer;                 /* (0.75) */
    wh_yolo_iou_loss iou_loss;            /* (mse) */
    float max_delta;                      /* (FLT_MAX: no clipping) */
    float label_smooth_eps;               /* (0) */
    int objectness_smooth;                /* (0) 1: IoU objectness targets (wh_yolo_loss) */
    int focal_loss;                       /* (0) */
    /* new_coords=1 (0): the input is already logistic (see above); the
     * cfg's producer must say activation=logistic, which, as in darknet,
     * is not checked */
    int new_coords;
    /* loss_norm= (whittle's key; darknet ignores it): WH_YOLO_NORM_SUM
     * (default) sums the terms over predictions, as darknet does;
     * WH_YOLO_NORM_MEAN averages each term over its elements in the
     * mini-batch and uses the IoU as the objectness target (wh_yolo_loss) */
    int loss_norm;
    /* bias_prior=1 (whittle's key; darknet ignores it): a fresh network's
     * head starts with YOLOv5's output biases, objectness log(8 / cells of
     * the grid) and classes log(0.6 / (classes - 0.99999)), instead of 0
     * (scores of 0.5 everywhere). Off by default: with the balanced loss it
     * cost the learning test's data 0.02-0.13 VOC07 on 3 of 3 seeds (0.504
     * -> 0.377, 0.275 -> 0.226, 0.437 -> 0.419) for +0.009 on the hard
     * proxy (0.082 -> 0.091, one seed). */
    int bias_prior;
    /* inference */
    wh_yolo_nms_kind nms_kind;            /* (greedynms) */
    float beta_nms;                       /* (0.6) */
} wh_yolo_params;

/* The parameters of a [yolo] layer; NULL when l is not one. */
const wh_yolo_params *wh_yolo_get(const wh_layer *l);

const char *wh_yolo_iou_loss_name(wh_yolo_iou_loss k);
const char *wh_yolo_nms_kind_name(wh_yolo_nms_kind k);

/* --- decoding ---------------------------------------------------------------- */

/* How many (cell, anchor) predictions of image b have objectness > thresh
 * in l->out (after a forward). 0 when l is not a [yolo] layer or b is out of
 * range. */
int wh_yolo_count_detections(const wh_layer *l, int b, float thresh);

/* Decodes image b of l->out (after a forward) into dets[0 .. *n-1], in
 * darknet's order (cells row-major, then the anchors of the mask), for the
 * predictions with objectness > thresh.
 *   netw, neth   the network input size in pixels (anchors are in its units)
 *   imw, imh     the original image size; boxes come out in its pixels
 *   letterbox    1: the image was letterboxed into the input (aspect kept,
 *                grey bands), 0: it was resized to netw x neth
 *   prob_pool    max * classes floats owned by the caller: dets[i].prob
 *                points at prob_pool + i*classes (no allocation here)
 * More than max predictions over thresh is WH_ERR_ARG (the first max are
 * written, *n = max): size the arrays with wh_yolo_count_detections. */
wh_status wh_yolo_get_detections(const wh_layer *l, int b, int netw, int neth, int imw, int imh,
                                 float thresh, int letterbox, wh_detection *dets, int max,
                                 float *prob_pool, int *n, wh_ctx *ctx);

/* --- loss (training) ------------------------------------------------------- */

/* What one wh_yolo_loss call found: the head interface's loss parts
 * (layers/head.h: wh_truth, wh_head_loss, wh_head_loss_add). */
typedef wh_head_loss wh_yolo_loss_parts;
#define wh_yolo_loss_parts_add wh_head_loss_add

/* The loss of layer l for the truths of its batch, after a training forward
 * (wh_net_forward / wh_net_forward_layer with train = 1). Overwrites the
 * layer's dlogit with d loss / d input, which the next backward of l adds to
 * its producer's gradient; a new forward discards it. parts (may be NULL)
 * receives the loss and darknet's statistics.
 *   truth       batch * max_boxes entries, image b at truth + b * max_boxes
 *   netw, neth  the network input in pixels (the unit of the anchors)
 * Errors: not a [yolo] layer, no training forward, a truth outside [0, 1] or
 * with a class outside [0, classes) (naming image and entry), and the keys
 * whose loss is not implemented (focal_loss=1).
 *
 * The loss, per image, follows AlexeyAB darknet's forward_yolo_layer; all
 * boxes are fractions of the network input, and a prediction (anchor a of
 * the mask, cell col, row of the lw x lh grid) is decoded from its logits as
 *   x = (sxy * s(tx) - (sxy - 1)/2 + col) / lw,  y likewise with row, lh,
 *   w = exp(tw) * anchor_w / netw,  h = exp(th) * anchor_h / neth
 * (s = logistic, sxy = scale_x_y). With new_coords=1 the input v of every
 * entry is already a logistic (of the producer's logit), and
 *   x = (sxy * vx - (sxy - 1)/2 + col) / lw,  y likewise,
 *   w = (2 vw)^2 * anchor_w / netw,  h = (2 vh)^2 * anchor_h / neth,
 * objectness and class scores are v itself.
 *  1. Every prediction whose best IoU with a truth exceeds ignore_thresh, and
 *     which scores some class above .25, is "ignored" (no objectness term);
 *     with best IoU > truth_thresh it is responsible for that truth.
 *  2. Each truth is given to the prediction at its cell whose anchor has the
 *     best shape IoU (centred boxes) among ALL the anchors (num), when that
 *     anchor is in this layer's mask; with iou_thresh < 1 also to every other
 *     anchor of the mask whose shape IoU with it is > iou_thresh.
 *  3. Terms (BCE(z, t) = logistic cross-entropy of logit z with target t,
 *     minus the target's entropy, so that a perfect prediction costs 0;
 *     with new_coords the same cross-entropy of the probability v, with v
 *     clamped to [1e-12, 1 - 1e-12] and continued along its tangent beyond,
 *     so that it and its gradient stay finite at v = 0 and 1):
 *     objectness  obj_normalizer * BCE(z, 1) at a responsible prediction,
 *                 obj_normalizer * BCE(z, 0) at the others unless ignored;
 *     class       at a responsible prediction, BCE(z_c, t_c) for every class,
 *                 t_c = 1 for the classes of all its truths (darknet's
 *                 multi-label), else 0, smoothed t(1 - eps) + eps/2 by
 *                 label_smooth_eps. Darknet applies cls_normalizer only with
 *                 counters_per_class, which is not supported: so never here;
 *     box         per (prediction, truth) pair, iou_normalizer times
 *                 mse:  (2 - w*h of the truth) * [sxy * BCE(tx, t') for x
 *                       and y, with t' = (x_target + (sxy-1)/2) / sxy, and
 *                       (tw - log(w_truth * netw / anchor_w))^2 / 2 for w, h]
 *                 mse with new_coords: (2 - w*h of the truth) * [(out_x -
 *                       x_target)^2 / (2 sxy) for x and y, out_x = sxy vx
 *                       - (sxy-1)/2, and (vw - sqrt(w_truth * netw /
 *                       (4 anchor_w)))^2 / 2 for w, h]: darknet's deltas;
 *                 giou/diou/ciou: 1 - GIoU / DIoU / CIoU of the decoded box;
 *                 with iou_thresh < 1, a prediction's box terms are divided
 *                 by the number of distinct classes among its truths.
 *  4. objectness_smooth=1 (darknet's IoU objectness) changes the objectness
 *     targets of every prediction, held constant like CIoU's alpha: nothing
 *     is ignored; the target is IoU^2 with the truth a prediction holds by
 *     truth_thresh, else its best IoU with a truth that counts for the
 *     ignore rule (1.) when that is above ignore_thresh, else 0, also where
 *     it is responsible by rule 2 (darknet keeps the target of rule 1 there:
 *     its target 1 is written only where that delta is exactly 0). A class
 *     that only the truth_thresh truth gives gets target IoU^2, unsmoothed.
 *     Under loss_norm=mean these targets replace its IoU target.
 * The gradient is exact for this scalar (checked by finite differences in
 * tests/layers/test_yolo_loss.cpp, with new_coords and objectness_smooth in
 * tests/layers/test_yolo_new_coords.cpp) except where darknet makes it not so:
 * CIoU's alpha is held constant (as the CIoU paper does), and max_delta,
 * when set, clips each pair's IoU-loss gradient. Darknet's own IoU-loss
 * deltas are not gradients: see yolo.c for how ours differ in scale.
 *
 * loss_norm=mean (whittle's balanced loss, written by `whittle model`): the
 * rules above decide who learns what, but each term is an average, as in the
 * well-known PyTorch YOLO trainers (YOLOv5's ComputeLoss), so that no term
 * outgrows the others as the grid, the anchors or the classes grow:
 *     box  = iou_normalizer * sum over box terms / n_box            * n
 *     obj  = obj_normalizer * sum over predictions / (n_mask*lw*lh)  (per image)
 *     cls  = cls_normalizer * sum over class terms / (n_cls*classes) * n
 * (n = images in the mini-batch, n_box and n_cls counted over it; the
 * trainer divides the batch's sum by the batch, so the gradient is that of
 * the averages). The objectness target of a responsible prediction is the
 * IoU of its decoded box with its truth (the largest of its truths'),
 * clamped at 0 and held constant, so that scores rank boxes by how well they
 * fit. Under darknet's sum, the objectness term of a 13x13x3 + 26x26x3 head
 * pair at 416 has 2535 elements per image against a few box terms: with
 * darknet's iou_normalizer=0.07 and an exact CIoU gradient the box term is
 * about 1 % of the loss; the averages remove that dependence. */
wh_status wh_yolo_loss(wh_layer *l, const wh_truth *truth, int max_boxes, int netw, int neth,
                       wh_yolo_loss_parts *parts, wh_ctx *ctx);

/* loss_norm=mean over data-parallel ranks: each rank's wh_yolo_loss
 * averages over its own share (n_box, n_cls of its mini-batch). Multiplying
 * the box part of the latest loss (dlogit and parts alike) by
 * box_k = ranks * n_box / (n_box over all ranks), the class part by cls_k
 * likewise, gives every rank the terms of the mean over the whole global
 * mini-batch, so R ranks of n images train as one process of R x n. */
wh_status wh_yolo_loss_rescale(wh_layer *l, double box_k, double cls_k, wh_yolo_loss_parts *parts, wh_ctx *ctx);

/* Forgets the latest loss: the next backward adds only dout * f'(in). */
void wh_yolo_loss_clear(wh_layer *l);

/* The layer's d loss / d input (N, C, H, W) from the latest wh_yolo_loss,
 * or NULL when l is not a [yolo] layer of a training net or none is held. */
const float *wh_yolo_dlogit(const wh_layer *l);


#ifdef __cplusplus
}
#endif
#endif
