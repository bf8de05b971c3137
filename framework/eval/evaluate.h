/* whittle: running a detector over a dataset and scoring it.
 *
 * The network sees each image placed as in training: stretched to the input,
 * or letterboxed when the cfg says letter_box=1 (darknet's validation does
 * the same);
 * every [yolo] layer's predictions above conf_thresh become one detection per
 * class whose score (objectness x class probability) is above conf_thresh,
 * boxes are mapped back to the original image (the VOC 1-based inclusive
 * convention of the annotations), and greedy NMS per image and class removes
 * duplicates, as darknet's validate_detector_map does.
 */
#ifndef WH_EVALUATE_H
#define WH_EVALUATE_H

#include "framework/data/dataset.h"
#include "framework/data/loader.h"
#include "framework/eval/metrics.h"
#include "framework/core/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wh_eval_opts {
    float conf_thresh;  /* darknet's map: 0.005 */
    float nms_thresh;   /* darknet's map: 0.45 */
    wh_nms_kind nms;
    int max_per_image;  /* keep the best this many after NMS (0: all) */
} wh_eval_opts;

void wh_eval_opts_default(wh_eval_opts *o);

/* Appends the detections of the images of batch b (after an inference
 * forward of net on it) to *dets (capacity *cap, count *n; grown with realloc). */
wh_status wh_detect_batch(const wh_net *net, const wh_batch *b, const wh_eval_opts *o, wh_det **dets,
                          int *n, int *cap, wh_ctx *ctx);

/* The detections (appended to *dets, *n, *cap as wh_detect_batch) of one
 * share of d for data-parallel evaluation: with the net's batch B, shard k
 * of n_shards takes images j*B*n_shards + k*B .. +B-1 for j = 0, 1, ...
 * Shard 0 of 1 is every image, in dataset order. */
wh_status wh_detect_dataset(wh_net *net, const wh_dataset *d, const wh_eval_opts *o, int shard, int n_shards,
                            wh_det **dets, int *n, int *cap, wh_ctx *ctx);

/* Runs net (in inference mode, its own batch size) over every image of d and
 * scores the detections with metric m. dets_out (may be NULL) receives the
 * detections (free() them). */
wh_status wh_evaluate(wh_net *net, const wh_dataset *d, const wh_eval_opts *o, wh_metric m,
                      wh_map_result *res, wh_det **dets_out, int *n_out, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
