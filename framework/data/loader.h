/* whittle: the batch loader (decode, augment, prefetch).
 *
 * Batch b is a pure function of (dataset, options, seed, b): image k = b*B+i
 * of the run is sample perm_e[k mod N] of epoch e = k / N, where perm_e is a
 * shuffle drawn from (seed, e), and its augmentation draws from a generator
 * seeded by (seed, k). So a background thread may prepare batch b+1 while the
 * network computes batch b, and a resumed run that seeks to batch b gets the
 * same batches as the run that was interrupted.
 *
 * Augmentation (training), darknet's detection recipe: a random crop whose
 * edges move by up to jitter * the image size (it may extend past the image:
 * grey fill), placed into the network input either stretched or letterboxed
 * (letter_box=1), a horizontal flip with probability 1/2, and HSV jitter
 * (hue shift, saturation and exposure scaled by up to the given factors).
 * Evaluation: dataset order, the whole image placed as training placed it
 * (stretched, or letterboxed with letterbox=1, as darknet's validation
 * follows the cfg's letter_box). Boxes follow the image; boxes left smaller
 * than 1 pixel of the input are dropped.
 *
 * Mosaic (training, with probability `mosaic` per image; darknet's mosaic=1,
 * Bochkovskiy et al. 2020): the input is cut at a random point (cut_x, cut_y),
 * each coordinate a whole pixel in [0.2, 0.8] of the side, into 4 quadrants,
 * each filled by a different image with its own crop, flip and HSV jitter.
 * One input then shows objects of 4 scenes, out of their usual context and
 * often cut by the quadrant edges, and batch norm sees 4 images' statistics.
 * As in darknet, each image is placed on a full input-sized canvas as above
 * and the quadrant shows a quadrant-sized window of it, not a shrunk copy;
 * the window sits on the side of the image's content that faces the cut, so
 * grey bands (a crop past the image, a letterbox) are pushed out of the
 * quadrant wherever the content is large enough to fill it. (Darknet's extra
 * trick of sometimes moving the crop into a corner, and its refusal of
 * letter_box with mosaic, are not followed.) Quadrant 0 (top-left) shows image
 * k's own sample with exactly the augmentation it gets without mosaic; the
 * top-right, bottom-left and bottom-right quadrants show samples drawn
 * uniformly from the whole dataset (repeats allowed), each augmented from a
 * generator derived from (seed, k, quadrant). The mosaic decision, the cut and
 * those 3 samples come from a stream of their own derived from (seed, k), so
 * an image that is not a mosaic is byte-identical to the one mosaic = 0 gives.
 * Note darknet's mosaic=1 makes a whole batch a mosaic with probability 1/2:
 * the per-image equivalent is mosaic = 0.5.
 *
 * Mosaic boxes: a box is placed on its image's canvas and clipped to it as
 * above (dropped under 1 pixel a side), then shifted with the window and
 * clipped to its quadrant. It is dropped when its visible part is under 1
 * pixel a side, or when its visible width (height) is under
 * WH_MOSAIC_MIN_VISIBLE = 10% of the width (height) it had on its image's
 * canvas: a sliver cut off along a quadrant edge shows too little of the
 * object to learn from, and would teach the network to find objects in a few
 * pixels of texture. The rule is per side, not on the area, so that a large
 * object filling a small quadrant keeps its box (a quadrant side is at least
 * about 20% of the input, so a box that spans its quadrant one way always
 * passes that way); an area rule would leave such a quadrant, full of the
 * object, labelled as background. Quadrants add their boxes in order 0..3
 * until max_boxes are taken (later quadrants' boxes are lost first).
 */
#ifndef WH_LOADER_H
#define WH_LOADER_H

#include <stdint.h>

#include "layers/head.h"
#include "dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wh_loader_opts {
    int width, height;   /* the network input */
    int batch;           /* images per batch */
    int max_boxes;       /* truth slots per image (darknet: 90) */
    uint64_t seed;
    int train;           /* 1: shuffle and augment; 0: dataset order, no augmentation */
    int letterbox;       /* placement keeps the aspect ratio (grey bands), else stretches */
    float jitter;        /* crop edges move by up to this share of the image side */
    float hue;           /* hue shift up to +-hue (fraction of the colour circle) */
    float saturation;    /* saturation scaled by a factor in [1/s, s] */
    float exposure;      /* value scaled by a factor in [1/e, e] */
    int flip;            /* random horizontal flips */
    int skip_difficult;  /* leave VOC "difficult" objects out of the truth (darknet's voc_label.py) */
    int prefetch;        /* prepare the next batch in a background thread */
    /* A share of a larger batch (data-parallel ranks): batch b holds images
     * b*stride + offset .. + batch-1 of the run (training) or of the dataset
     * (evaluation). 0 and 0: stride = batch, offset 0 (the whole batch). */
    int stride, offset;
    /* Probability that a training image is a mosaic of 4 (0 = never, the
     * default; 1 = every training image). Evaluation never is. */
    float mosaic;
} wh_loader_opts;

/* A mosaic box whose visible width or height is less than this share of
 * the width or height it had on its own image's canvas is dropped (see above). */
#define WH_MOSAIC_MIN_VISIBLE 0.1

/* Defaults: training with darknet's usual values (jitter .3, hue .1,
 * saturation and exposure 1.5, flips, difficult skipped, prefetch, no mosaic). */
void wh_loader_opts_default(wh_loader_opts *o, int width, int height, int batch);

/* Where an original image went: net_x = x * sx + dx (pixels, continuous
 * coordinates where the image spans [0, W)); flip mirrors after that.
 * A mosaic (mosaic = 1) cannot be described by one placement: the fields
 * above then describe the sample of quadrant 0 (part[0], the batch's
 * sample[i]), net_x = x * sx + dx on the whole input as above, of which only
 * the top-left quadrant [0, cut_x) x [0, cut_y) is visible. */
typedef struct wh_xform {
    float sx, sy, dx, dy;
    int flip;
    int orig_w, orig_h;
    int mosaic;       /* 1: a mosaic of 4 images */
    int cut_x, cut_y; /* the cut, pixels of the input (0 when not a mosaic) */
    int part[4];      /* dataset index in each quadrant (TL, TR, BL, BR); not a mosaic: {sample, -1, -1, -1} */
} wh_xform;

typedef struct wh_batch {
    int n;             /* images filled (the last evaluation batch may be short) */
    float *images;     /* (batch, 3, height, width), RGB in [0, 1] */
    wh_truth *truth;   /* batch * max_boxes; w == 0 ends an image's list */
    int *sample;       /* dataset index of each image */
    wh_xform *xform;
    long index;        /* which batch of the run this is */
} wh_batch;

typedef struct wh_loader wh_loader;

wh_status wh_loader_create(const wh_dataset *d, const wh_loader_opts *o, wh_loader **out,
                           wh_ctx *ctx);
/* The next batch; valid until the following call. A decoding error (a
 * missing or corrupt image) is returned here, naming the file. */
wh_status wh_loader_next(wh_loader *l, const wh_batch **out, wh_ctx *ctx);
/* Index of the batch the next call returns (the loader's state to save). */
long wh_loader_position(const wh_loader *l);
/* Makes the next call return batch `index` (resume). */
wh_status wh_loader_seek(wh_loader *l, long index, wh_ctx *ctx);
void wh_loader_destroy(wh_loader *l);
/* The bytes a loader with these options holds: its two batches (the one
 * handed out and the one being prepared), images, truth and bookkeeping;
 * the memory planner counts them. Mosaic adds nothing: its 4 images are
 * decoded one after the other straight into the batch. */
size_t wh_loader_bytes(const wh_loader_opts *o);

/* Fills one image of a batch: exposed for tests and for single-image tools. */
wh_status wh_loader_make(const wh_dataset *d, const wh_loader_opts *o, int sample, uint64_t rng_seed,
                         float *image, wh_truth *truth, wh_xform *xf, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
