/* whittle: detection metrics: box overlap, non-maximum suppression, mAP.
 *
 * Boxes are in the dataset's convention (framework/data/dataset.h): pixels,
 * 1-based, inclusive (a box covering columns 1..w has xmin=1, xmax=w).
 *
 * Two overlaps, on purpose:
 *   wh_box_iou      continuous: width = xmax - xmin, as darknet's box_iou.
 *                   NMS uses it, so that it suppresses what darknet would.
 *   wh_box_iou_voc  inclusive pixels: width = xmax - xmin + 1, as the VOC
 *                   devkit. Every mAP metric uses it (COCO included: an
 *                   inclusive box [xmin, xmax] is the continuous box
 *                   [xmin - 1, xmax], whose IoU is this one).
 *
 * The metric is always named: a number printed without "voc07", "voc" or
 * "coco" beside it is not comparable with anything.
 */
#ifndef WH_METRICS_H
#define WH_METRICS_H

#include <stddef.h>

#include "framework/data/dataset.h"
#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One detection. image: index of the sample in the dataset it refers to;
 * cls: index into the dataset's class names; box as the dataset's boxes. */
typedef struct wh_det {
    int image;
    int cls;
    float score;
    float xmin, ymin, xmax, ymax;
} wh_det;

typedef struct wh_rect {
    float xmin, ymin, xmax, ymax;
} wh_rect;

/* Continuous IoU (darknet's box_iou): 0 when the boxes do not overlap or the
 * union is empty. */
double wh_box_iou(wh_rect a, wh_rect b);
/* VOC devkit IoU: widths and heights + 1; 0 when the +1 intersection width or
 * height is <= 0 (the devkit then skips the box). */
double wh_box_iou_voc(wh_rect a, wh_rect b);
/* darknet's box_diounms: IoU - (d / c)^beta, d the squared distance between
 * the centres, c the squared diagonal of the smallest enclosing box; the IoU
 * alone when c = 0. Continuous convention. */
double wh_box_diou(wh_rect a, wh_rect b, double beta);

/* ---- non-maximum suppression ---- */

typedef enum wh_nms_kind {
    WH_NMS_GREEDY, /* "greedy": darknet's do_nms_sort, overlap = wh_box_iou */
    WH_NMS_DIOU,   /* "diou": darknet's diounms_sort with DIOU_NMS, overlap = wh_box_diou */
    WH_NMS_KIND_COUNT
} wh_nms_kind;

/* darknet's beta_nms default. Note for callers mapping a cfg's nms_kind:
 * AlexeyAB darknet runs do_nms_sort (WH_NMS_GREEDY) only when nms_kind is
 * absent; nms_kind=greedynms goes to diounms_sort, which then uses box_diou,
 * i.e. DIoU with beta fixed at 0.6 (WH_NMS_DIOU, beta 0.6), and
 * nms_kind=diounms uses DIoU with the cfg's beta_nms. */
#define WH_NMS_DIOU_BETA 0.6

const char *wh_nms_kind_name(wh_nms_kind k);

/* Greedy NMS, per image: within each image, detections are visited by
 * descending score (ties: input order), and each one that is still kept
 * suppresses every later one whose overlap with it is > iou_thresh (strictly)
 * and, when per_class is non-zero, that has the same class. A suppressed
 * detection suppresses nothing (darknet: prob 0 is skipped). beta is used by
 * WH_NMS_DIOU only.
 * On return dets[0 .. *n_keep) are the kept detections, in their input order.
 * Errors: n < 0, a NaN score or an unknown kind (WH_ERR_ARG). */
wh_status wh_nms(wh_det *dets, int n, float iou_thresh, int per_class, wh_nms_kind kind, double beta,
                 int *n_keep, wh_ctx *ctx);

/* ---- mean average precision ---- */

typedef enum wh_metric {
    /* "voc07": VOC2007 devkit, IoU > 0.5, 11-point interpolated AP: the mean
     * over t = 0, 0.1, .., 1 of the best precision at recall >= t. */
    WH_METRIC_VOC07,
    /* "voc": VOC2010+ devkit, IoU > 0.5, area under the PR curve made
     * monotone from the right (all points). */
    WH_METRIC_VOC,
    /* "coco": pycocotools' AP: mean over IoU >= 0.50, 0.55, .., 0.95 of the
     * 101-point interpolated AP, at most 100 detections per image and class,
     * area range "all". Difficult objects are crowd regions (iscrowd=1). */
    WH_METRIC_COCO,
    WH_METRIC_COUNT
} wh_metric;

/* "voc07", "voc", "coco". */
const char *wh_metric_name(wh_metric m);
/* What the number means, for headers: "mAP@0.5 (VOC07 11-point)". */
const char *wh_metric_title(wh_metric m);
/* Unknown name -> WH_ERR_ARG, the message listing the known names. */
wh_status wh_metric_parse(const char *name, wh_metric *out, wh_ctx *ctx);

typedef struct wh_map_class {
    double ap;   /* NaN when npos = 0: AP is undefined without ground truth */
    int npos;    /* ground-truth objects that count (not difficult) */
    int n_dets;  /* detections of this class given to the evaluation */
} wh_map_class;

typedef struct wh_map_result {
    wh_metric metric;
    int n_classes;
    wh_map_class *cls; /* n_classes entries; owned, see wh_map_result_free */
    int n_valid;       /* classes with npos > 0: those in the mean */
    double map;        /* mean AP over those classes; NaN when there are none */
} wh_map_result;

/* Evaluates dets (n of them, any order) against the ground truth in gt.
 *
 * voc07 / voc follow the devkit (VOCevaldet.m, voc_eval.py): per class,
 * detections by descending score (ties: input order); each takes the
 * same-image same-class object of largest IoU (wh_box_iou_voc; ties: the
 * first); if that IoU is > 0.5 (strictly) the detection is ignored when the
 * object is difficult, a TP when the object is not yet detected (and marks
 * it), else a FP (a duplicate); IoU <= 0.5 is a FP. npos counts the
 * non-difficult objects; recall = TP / npos, precision = TP / (TP + FP).
 * One deliberate difference: voc07 compares recall with t = k/10 exactly
 * (TP*10 >= k*npos), where MATLAB's 0:0.1:1 and numpy's arange hold t = 0.3
 * (both) and 0.6, 0.7 (numpy) slightly above their value, so that a recall
 * of exactly 0.3 there misses its own threshold.
 *
 * coco follows pycocotools' COCOeval (evaluateImg + accumulate), with its
 * float thresholds (numpy.linspace) and precision TP / (TP + FP + eps);
 * difficult objects are crowd: matched last, overlap = intersection / area
 * of the detection, matchable by any number of detections, and a detection
 * matched to one is ignored. Score ties are broken by image, then input
 * order, as pycocotools' per-image concatenation does.
 *
 * A class without ground truth (npos = 0) has ap = NaN and is left out of
 * the mean (the devkit would return NaN for it; pycocotools leaves it out).
 * res is zeroed first, filled on success; free it with wh_map_result_free.
 * Errors (WH_ERR_ARG): a detection whose image or class is out of range or
 * whose score is NaN, an object whose class is out of range. */
wh_status wh_map_eval(const wh_dataset *gt, const wh_det *dets, int n, wh_metric m, wh_map_result *res,
                      wh_ctx *ctx);
void wh_map_result_free(wh_map_result *res);

/* The per-class table and the mean, as text:
 *
 *   mAP@0.5 (VOC07 11-point), 3 classes
 *   class                    AP    GT   dets
 *   cat                  0.7273     3      5
 *   dog                     n/a     0      2  (no ground truth: not in the mean)
 *   ...
 *   voc07 mAP@0.5 (VOC07 11-point) = 0.7273 over 2 of 3 classes
 *
 * names: res->n_classes class names (NULL: "class N"). Writes at most cap
 * bytes including the terminating NUL (buf may be NULL when cap is 0) and,
 * as snprintf, returns the length the whole text needs. */
size_t wh_map_format(const wh_map_result *res, const char *const *names, char *buf, size_t cap);

/* ---- detection files ----
 *
 * One detection a line, fields separated by blanks:
 *     image_id class_name score xmin ymin xmax ymax
 * image_id is a sample's id in the dataset, class_name one of its class
 * names, the box in the dataset's convention. Empty lines and lines whose
 * first non-blank character is '#' are skipped. */

/* Reads path against ds (which gives image ids and class names). Errors name
 * path:line: an unknown image id or class, a missing, extra or non-numeric
 * field, a non-finite number, xmax < xmin or ymax < ymin (WH_ERR_PARSE);
 * a dataset with two samples of the same id (WH_ERR_ARG, the file could not
 * tell them apart). *out is malloc'ed (NULL when *n = 0); free() it. */
wh_status wh_dets_read(const char *path, const wh_dataset *ds, wh_det **out, int *n, wh_ctx *ctx);
/* Writes dets in the same format, atomically (wh_file_write_atomic). Numbers
 * are written with 9 significant digits, so a float reads back exactly. */
wh_status wh_dets_write(const char *path, const wh_dataset *ds, const wh_det *dets, int n, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
