/* whittle: the [yolo] detection head (AlexeyAB darknet semantics).
 *
 * The layer itself is an elementwise map on its input (n_mask anchor blocks of
 * 5 + classes channels each): per anchor a, channel a*(5+classes) + e holds
 *   e = 0, 1   x, y offsets in the cell:  logistic, then scale_x_y stretch
 *   e = 2, 3   w, h log-scales of the anchor: unchanged
 *   e = 4      objectness: logistic
 *   e = 5..    class scores: logistic
 * Its loss (which writes l->dout) is not part of the layer; the cfg keys the
 * loss needs are parsed and kept in wh_yolo_params for the trainer.
 *
 * The decoding functions below turn a forward output into boxes in the
 * pixels of the original image, as darknet's get_yolo_detections.
 */
#ifndef WH_YOLO_H
#define WH_YOLO_H

#include "layer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most anchors ([yolo] num=) one cfg may list; darknet cfgs use 6 or 9. */
#define WH_YOLO_MAX_ANCHORS 64

typedef enum wh_yolo_iou_loss {
    WH_YOLO_IOU_MSE, WH_YOLO_IOU_GIOU, WH_YOLO_IOU_DIOU, WH_YOLO_IOU_CIOU, WH_YOLO_IOU_COUNT
} wh_yolo_iou_loss;

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
    /* loss and training (used by the trainer, not by the layer) */
    float jitter;                         /* (.2) */
    float ignore_thresh;                  /* (.5) */
    float truth_thresh;                   /* (1) */
    float iou_thresh;                     /* (1) */
    float random;                         /* (0) multi-scale training */
    float resize;                         /* (1) */
    float cls_normalizer, obj_normalizer; /* (1, 1) */
    float iou_normalizer;                 /* (0.75) */
    wh_yolo_iou_loss iou_loss;            /* (mse) */
    float max_delta;                      /* (FLT_MAX: no clipping) */
    float label_smooth_eps;               /* (0) */
    int objectness_smooth;                /* (0) */
    int focal_loss;                       /* (0) */
    int new_coords;                       /* always 0: 1 is rejected */
    /* inference */
    wh_yolo_nms_kind nms_kind;            /* (greedynms) */
    float beta_nms;                       /* (0.6) */
} wh_yolo_params;

/* The parameters of a [yolo] layer; NULL when l is not one. */
const wh_yolo_params *wh_yolo_get(const wh_layer *l);

const char *wh_yolo_iou_loss_name(wh_yolo_iou_loss k);
const char *wh_yolo_nms_kind_name(wh_yolo_nms_kind k);

/* --- decoding ---------------------------------------------------------------- */

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

#ifdef __cplusplus
}
#endif
#endif
