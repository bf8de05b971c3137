/* whittle: anchors from the data.
 *
 * YOLO heads predict a box as a scale of an anchor (w, h in network-input
 * pixels), so anchors that match the data's box sizes start every
 * prediction closer to its truth. These functions cluster the training
 * boxes' sizes with k-means under the distance 1 - IoU of two boxes that
 * share a centre, as darknet's calc_anchors does (a large box is not
 * penalised more than a small one for the same relative error, which
 * Euclidean k-means on (w, h) would do):
 *   IoU(a, b) = min(wa, wb) min(ha, hb) / (wa ha + wb hb - min(wa, wb) min(ha, hb))
 * Assignment: each box to the anchor of highest IoU; update: each anchor the
 * mean (w, h) of its boxes (darknet's); start: k-means++ under the same
 * distance; several restarts from different seeds, the best mean IoU kept.
 * The result is sorted by area, ascending, as darknet's cfgs list anchors.
 */
#ifndef WH_ANCHORS_H
#define WH_ANCHORS_H

#include <stdint.h>

#include "dataset.h"
#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most anchors one clustering makes (as [yolo] num= allows). */
#define WH_ANCHORS_MAX 64

/* IoU of two boxes of sizes (aw, ah) and (bw, bh) with a common centre. */
double wh_anchors_iou(double aw, double ah, double bw, double bh);

/* The mean over the n boxes wh[2i], wh[2i+1] of their best IoU with the k
 * anchors (w, h pairs): the figure darknet's calc_anchors prints. */
double wh_anchors_mean_iou(const float *wh, long n, const float *anchors, int k);

/* k anchors (2k floats, sorted by area) from the n box sizes wh (2n floats,
 * pixels, all > 0): k-means under 1 - IoU, `restarts` starts (>= 1) from
 * seed, seed+1, ...; *mean_iou (may be NULL) the best run's mean IoU.
 * Fewer distinct sizes than k, or n < k, is WH_ERR_ARG. Deterministic for a
 * given seed. */
wh_status wh_anchors_kmeans(const float *wh, long n, int k, uint64_t seed, int restarts, float *anchors,
                            double *mean_iou, wh_ctx *ctx);

/* The size of every object of d (difficult ones too) in the pixels of a
 * network input of netw x neth, as the loader puts it there: resized to the
 * input, or letterboxed (aspect kept). *wh is malloc'd (2 * *n floats; the
 * caller frees it). A sample whose annotation gives no image size has it
 * read from the image header. No object at all is WH_ERR_ARG. */
wh_status wh_anchors_boxes(const wh_dataset *d, int netw, int neth, int letterbox, float **wh, long *n,
                           wh_ctx *ctx);

/* Rounds anchors to whole pixels (at least 1), as a cfg writes them. */
void wh_anchors_round(float *anchors, int k);

/* All of the above for a dataset path (wh_dataset_open: a VOC root, a
 * VOCdevkit or a darknet .data) and its split: k anchors for a netw x neth
 * input, WH_ANCHORS_RESTARTS restarts from seed, rounded to whole pixels;
 * *mean_iou the mean best IoU of the rounded anchors, *n_boxes the boxes
 * clustered (either may be NULL); boxes, when not NULL, receives their sizes
 * (wh_anchors_boxes; the caller frees them) to score other anchors with. */
#define WH_ANCHORS_RESTARTS 10
wh_status wh_anchors_from_data(const char *path, const char *split, int netw, int neth, int letterbox, int k,
                               uint64_t seed, float *anchors, double *mean_iou, long *n_boxes, float **boxes,
                               wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
