/* whittle: a synthetic detection dataset in PASCAL VOC layout.
 *
 * A small, known-answer dataset for the demo pipeline and the end-to-end
 * tests: coloured shapes (one shape and one base hue per class) on textured
 * backgrounds with clutter, written as a VOC root that wh_voc_load reads:
 *
 *   DIR/JPEGImages/<id>.jpg         id = 000001, 000002, ...
 *   DIR/Annotations/<id>.xml        VOC XML, boxes 1-based inclusive pixels
 *   DIR/ImageSets/Main/train.txt    ids, ascending
 *   DIR/ImageSets/Main/trainval.txt (= train)
 *   DIR/ImageSets/Main/test.txt
 *   DIR/classes.txt                 one class name per line
 *   DIR/synth.txt                   the options and counts, written last
 *
 * Scenes: image sides vary independently in [0.75, 1.25] * size (never
 * square by design); 1..6 objects, each 6%..60% of the shorter side
 * (log-uniform, so small objects are common); a later object may partly hide
 * an earlier one and clutter (lines and blobs in colours no class uses) may
 * cross them. Every object is annotated with the tight box of the pixels its
 * shape covers, clipped to the image:
 *   truncated = 1  the shape extends past the image border;
 *   difficult = 1  the box's geometric mean side is under 12 px, or more
 *                  than 60% of the shape's pixels are hidden.
 *
 * Deterministic: each image has its own random stream derived from (seed,
 * index), so the files are byte-identical for the same options and build,
 * whatever the thread count (images are generated in parallel with OpenMP).
 */
#ifndef WH_SYNTH_H
#define WH_SYNTH_H

#include <stdint.h>

#include "../status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wh_synth_opts {
    int images;           /* total, split into train and test */
    int classes;          /* 1..wh_synth_max_classes() */
    int size;             /* nominal image side in pixels (sides vary +-25%) */
    uint64_t seed;
    double test_fraction; /* share of the images listed in test.txt, [0, 1) */
} wh_synth_opts;

/* Defaults: 1000 images, 5 classes, size 256, seed 1, test_fraction 0.2.
 * Chosen so a small YOLO (e.g. yolov4-tiny at 256..320) reaches VOC07
 * mAP@0.5 above 0.7 after about 15 minutes of CPU training: 5 classes whose
 * hues are 72 degrees apart and whose shapes differ, 800 training images
 * with ~3.5 objects each, images near the network's input size so small
 * objects stay over ~12 px after letterboxing. */
void wh_synth_opts_default(wh_synth_opts *o);

/* Class k's name ("disc", "square", ...) and base hue in degrees [0, 360). */
int wh_synth_max_classes(void);
const char *wh_synth_class_name(int k);
double wh_synth_class_hue(int k);

typedef struct wh_synth_stats {
    int images, train, test;
    long objects, difficult, truncated;
    int reused; /* 1: DIR already held this dataset; nothing was written */
} wh_synth_stats;

/* Writes the dataset into dir (created if missing, parents included).
 * dir must be missing, empty, or a synthetic dataset made with the same
 * options (synth.txt): complete -> nothing is rewritten; interrupted ->
 * generated again. Any other non-empty dir is refused (WH_ERR_IO, naming
 * it): user data is never overwritten. Every file is written under a
 * temporary name and renamed; the filesystem is synced once (not per file)
 * before synth.txt is rewritten to say "complete 1". */
wh_status wh_synth_generate(const wh_synth_opts *o, const char *dir, wh_ctx *ctx);
/* The same, reporting counts in *st (may be NULL). */
wh_status wh_synth_generate_stats(const wh_synth_opts *o, const char *dir, wh_synth_stats *st,
                                  wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
