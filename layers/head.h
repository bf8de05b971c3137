/* whittle: the detection-head interface.
 *
 * The trainer, the evaluator, the loader and the apps work with detection
 * heads through this interface only: what a truth and a detection are, the
 * loss of a batch and the decoding of a forward. A layer is a head when its
 * ops carry one (wh_layer_ops.head); [yolo] (layers/yolo.c) is the one
 * built in. A second kind of head (an anchor-free one, say) implements
 * these functions in its own layer file and changes nothing else.
 */
#ifndef WH_HEAD_H
#define WH_HEAD_H

#include "layer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One ground-truth box, as darknet's truth array holds it: the centre x, y
 * and the size w, h as fractions of the network input (after letterbox and
 * augmentation), cls in [0, classes). A batch is max_boxes entries per image;
 * an entry with w == 0 ends an image's list (the rest is not read). */
typedef struct wh_truth {
    float x, y, w, h;
    int cls;
} wh_truth;

typedef struct wh_box {
    float x, y, w, h; /* centre and size, in pixels of the original image */
} wh_box;

typedef struct wh_detection {
    wh_box box;
    float objectness;
    int cls_count;   /* entries in prob (the layer's classes) */
    float *prob;     /* (cls_count): objectness * class score, 0 where <= thresh */
    int batch;       /* the image of the batch it came from */
} wh_detection;

/* What one loss call found, summed over the batch (darknet sums; a trainer
 * divides by the batch). The averages darknet prints are
 *   Avg IOU = iou_sum / count, Class = cls_sum / count, Obj = obj_sum / count,
 *   No Obj = anyobj_sum / n_pred, .5R = recall50 / count, .75R = recall75 / count
 * (wh_head_loss_add sums the parts of several heads). */
typedef struct wh_head_loss {
    double loss;          /* box + obj + cls: the scalar whose gradient the head holds */
    double box;           /* box term (mse, or 1 - GIoU / DIoU / CIoU), weighted */
    double obj;           /* objectness cross-entropy, weighted */
    double cls;           /* class cross-entropy at the responsible predictions */
    int n_truth;          /* truths in the batch (every head sees them all) */
    int count;            /* (truth, prediction) pairs this head made responsible */
    double iou_sum;       /* IoU of each pair's predicted box with its truth */
    int recall50;         /* pairs with IoU > .5 */
    int recall75;         /* pairs with IoU > .75 */
    double obj_sum;       /* objectness of each pair's prediction */
    double cls_sum;       /* score of the truth's class at each pair's prediction */
    double anyobj_sum;    /* objectness summed over every prediction */
    long n_pred;          /* predictions: batch * cells * anchors */
    int n_box;            /* box terms: (prediction, truth) pairs */
    int n_cls;            /* predictions with a class term (responsible for a truth) */
} wh_head_loss;

/* dst += src, field by field. */
void wh_head_loss_add(wh_head_loss *dst, const wh_head_loss *src);

typedef struct wh_head_ops {
    /* the classes the head predicts */
    int (*classes)(const wh_layer *l);
    /* the crop jitter the head asks the loader for (darknet's [yolo]
     * jitter=; the trainer takes the last head's), or a negative value for
     * none asked */
    float (*jitter)(const wh_layer *l);
    /* The loss of the head for the truths of its batch after a training
     * forward; the head keeps d loss / d input for its next backward. */
    wh_status (*loss)(wh_layer *l, const wh_truth *truth, int max_boxes, int netw, int neth, wh_head_loss *parts,
                      wh_ctx *ctx);
    /* 1 when the loss averages over the batch's counts (n_box, n_cls):
     * over data-parallel ranks the trainer then rescales it with the global
     * counts (loss_rescale: box part by box_k, class part by cls_k) */
    int (*averages)(const wh_layer *l);
    wh_status (*loss_rescale)(wh_layer *l, double box_k, double cls_k, wh_head_loss *parts, wh_ctx *ctx);
    /* Decoding after a forward: how many predictions of image b score above
     * thresh, and those predictions as boxes in the pixels of an imw x imh
     * image (see wh_yolo_get_detections for the contract). */
    int (*count_detections)(const wh_layer *l, int b, float thresh);
    wh_status (*get_detections)(const wh_layer *l, int b, int netw, int neth, int imw, int imh, float thresh,
                                int letterbox, wh_detection *dets, int max, float *prob_pool, int *n, wh_ctx *ctx);
} wh_head_ops;

/* The head interface of layer l, or NULL when l is not a detection head. */
static inline const wh_head_ops *wh_head_of(const wh_layer *l)
{
    return l && l->ops ? l->ops->head : NULL;
}

#ifdef __cplusplus
}
#endif
#endif
