/* whittle: the darknet .cfg model generator.
 *
 * Writes the cfg of a known YOLO architecture (yolov4, yolov4-tiny, yolov3,
 * yolov3-tiny) for a given class count, input size and width multiple. With
 * darknet_loss = 1 the text is what darknet's own shipped cfg would be for
 * those settings (by default the [yolo] loss keys and [net]'s learning rate
 * and momentum are whittle's balanced loss instead; nothing else differs): the
 * same [net] training settings, the same sections in the same order, the
 * same route indices, so darknet can read it and darknet .weights of the
 * original architecture (width_multiple = 1) line up with it layer by layer.
 *
 * width_multiple scales every convolution's filters (except the detection
 * heads, whose filters are fixed by the class count) to the nearest multiple
 * of 8, at least 8. The layer count and thus every route index stay the same.
 */
#ifndef WH_MODELGEN_H
#define WH_MODELGEN_H

#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wh_model_opts {
    const char *name;        /* "yolov4", "yolov4-tiny", "yolov3", "yolov3-tiny" */
    int classes;             /* > 0; 80 for COCO-style */
    int width, height;       /* network input, multiples of 32 in 32..4096 */
    double width_multiple;   /* in (0, 4]; 1.0 = the original architecture */
    /* The anchors, (w, h) pairs in input pixels, as many as the model has
     * (wh_model_default_anchors): e.g. from the data (framework/data/anchors.h).
     * NULL: darknet's defaults for 416, scaled to width x height. */
    const float *anchors;
    int n_anchors;
    /* 0 (default): the balanced loss, for training on the user's data: each
     * [yolo] gets loss_norm=mean (per-head averages, IoU objectness target:
     * layers/yolo.h), CIoU, YOLOv5's gains scaled to whittle's conventions
     * (box 3.2, objectness 64 x (size/640)^2 x a weight per stride, classes
     * 32 x classes/80, each x 3/heads; iou_thresh .213), and [net] gets
     * YOLOv5's SGD settings (learning_rate 0.01, momentum 0.937). Why: with
     * darknet's sums and its iou_normalizer 0.07 the exact CIoU gradient is
     * about 1 % of the loss and localisation barely trains.
     * 1: darknet's shipped loss keys and [net] settings, unchanged. */
    int darknet_loss;
} wh_model_opts;

/* darknet's default anchors of model name, given for a 416x416 input, as a
 * generated cfg writes them for width x height: scaled to that size and
 * rounded to whole pixels (framework/data/anchors.h, wh_anchors_round), in
 * anchors ((w, h) pairs; room for WH_ANCHORS_MAX), their count in *num.
 * -1 for an unknown name, else 0. */
int wh_model_default_anchors(const char *name, int width, int height, float *anchors, int *num);

/* yolov4, 80 classes, 416x416, width_multiple 1.0, default anchors.
 *
 * The [net] schedule: for 80 classes darknet's shipped COCO schedule; for
 * any other count darknet's rule for custom training (its README):
 * max_batches = 2000 x classes but at least 6000, steps at 80 % and 90 % of
 * it, burn_in 1000. (`whittle train --max-batches N` rescales the schedule
 * to N: trainer.h.) */
void wh_model_opts_default(wh_model_opts *o);

/* Writes a complete darknet cfg as a malloc'd NUL-terminated string in *text
 * (the caller frees it). On error *text is NULL and ctx holds the message:
 * WH_ERR_ARG for bad options (an unknown name lists the known ones),
 * WH_ERR_NOMEM when out of memory. */
wh_status wh_model_generate(const wh_model_opts *o, char **text, wh_ctx *ctx);

/* NULL-terminated list of known model names, for error messages and --help. */
const char *const *wh_model_names(void);

#ifdef __cplusplus
}
#endif
#endif
