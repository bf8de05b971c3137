/* whittle: a synthetic detection dataset in PASCAL VOC layout.
 *
 * A small, known-answer dataset for the demo pipeline and the end-to-end
 * tests, written as a VOC root that wh_voc_load reads:
 *
 *   DIR/JPEGImages/<id>.jpg         id = 000001, 000002, ...
 *   DIR/Annotations/<id>.xml        VOC XML, boxes 1-based inclusive pixels
 *   DIR/ImageSets/Main/train.txt    ids, ascending
 *   DIR/ImageSets/Main/trainval.txt (= train)
 *   DIR/ImageSets/Main/test.txt
 *   DIR/classes.txt                 one class name per line
 *   DIR/synth.txt                   the options and counts, written last
 *                                   ("preset hard" for the hard preset; no
 *                                   preset line means easy)
 *
 * Two presets. Every object is annotated with the tight box of the pixels
 * its shape covers, clipped to the image, and truncated = 1 when the shape
 * extends past the image border.
 *
 * easy (the default; the files are byte-identical to those of earlier
 * versions for the same options): coloured shapes, one shape and one base
 * hue per class, on textured backgrounds with clutter. Image sides vary
 * independently in [0.75, 1.25] * size (never square by design); 1..6
 * objects, each 6%..60% of the shorter side (log-uniform, so small objects
 * are common); a later object may partly hide an earlier one and clutter
 * (lines and blobs in colours no class uses) may cross them.
 *   difficult = 1  the box's geometric mean side is under 12 px, or more
 *                  than 60% of the shape's pixels are hidden.
 * Colour alone tells the class here, so a detector can score well without
 * learning shapes: fine for a smoke test, too kind as a proxy for photos.
 *
 * hard (--preset hard): what real photos have and the easy set lacks, each
 * ingredient there to take away one shortcut:
 *   - classes are shapes only: every object's colour (any hue, saturation
 *     0..1, value 0.15..1) and fill (flat, stripes, checks, speckle, radial
 *     two-tone, all shaded) come from one distribution for every class, so
 *     colour and texture carry no class information; shapes are turned up
 *     to +-10 degrees (square and diamond stay 25 degrees apart) and
 *     stretched up to 1.35:1 (pose);
 *   - cluttered backgrounds: a coarse field of colours, fine texture at two
 *     scales and straight-edged regions, some striped, so "not flat" does
 *     not mean "object";
 *   - distractors that resemble objects, in the objects' colour and fill
 *     distribution: shapes that are no class (the table's shapes beyond
 *     --classes from 20 px, crosses turned 45 degrees, blobs of at most
 *     0.6:1), class shapes with a bite or a quadrant cut away (25..60% of
 *     the shape, from 28 px), and long thin lines; 1..5 behind the objects
 *     and 0..3 in front. Shapes stay whole inside the image (a cut fallen
 *     outside would leave a class object without a box);
 *   - occlusion (objects may overlap up to 70% of a box, distractors cross
 *     them) and truncation (up to 45% of an object's box may fall outside
 *     the image: about 29% of the objects are truncated);
 *   - scale: 1..8 objects (4.5 on average), geometric mean side log-uniform
 *     from 12 px to 60% of the shorter side (the tight box of a turned,
 *     stretched shape reaches ~67%);
 *   - the camera: per-image exposure, colour cast and vignetting, Gaussian
 *     blur (sigma 0.4..1.8 px in two thirds of the images), sensor noise
 *     (sd 0.005..0.04), and JPEG quality drawn per image in 35..90 (block
 *     and ringing artefacts; the easy set uses 92);
 *   - difficult = 1 (about 9% of the objects, as in VOC) when less than
 *     half of the whole shape is visible (hidden or outside the image), the
 *     clipped box's geometric mean side is under 12 px, it is under 16 px
 *     in an image blurred by sigma > 1.4 or written at quality < 45, or its
 *     colour is within 0.12 (RGB distance) of the background under it.
 * Its defaults differ from the easy ones (wh_synth_opts_preset): 2500
 * images (2000 train, 500 test), 6 classes (disc, square, triangle, cross,
 * ring, diamond), size 416 with sides varying in [10/13, 16/13] * size
 * (320..512 px at 416). The class hues (wh_synth_class_hue) are not used.
 * About 10 ms of one core an image at 416 (2500 images in ~15 s on 2 cores).
 *
 * Deterministic: each image has its own random stream derived from (seed,
 * index), so the files are byte-identical for the same options and build,
 * whatever the thread count (images are generated in parallel with OpenMP).
 */
#ifndef WH_SYNTH_H
#define WH_SYNTH_H

#include <stdint.h>

#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wh_synth_preset {
    WH_SYNTH_EASY = 0, /* one hue per class; the default */
    WH_SYNTH_HARD = 1  /* shape-only classes, clutter, the camera's faults */
} wh_synth_preset;

typedef struct wh_synth_opts {
    int images;           /* total, split into train and test */
    int classes;          /* 1..wh_synth_max_classes() */
    int size;             /* nominal image side in pixels (easy: sides vary +-25%, hard: 10/13..16/13) */
    uint64_t seed;
    double test_fraction; /* share of the images listed in test.txt, [0, 1) */
    int preset;           /* wh_synth_preset */
} wh_synth_opts;

/* Defaults: 1000 images, 5 classes, size 256, seed 1, test_fraction 0.2, easy.
 * Chosen so a small YOLO (e.g. yolov4-tiny at 256..320) reaches VOC07
 * mAP@0.5 above 0.7 after about 15 minutes of CPU training: 5 classes whose
 * hues are 72 degrees apart and whose shapes differ, 800 training images
 * with ~3.5 objects each, images near the network's input size so small
 * objects stay over ~12 px after letterboxing. */
void wh_synth_opts_default(wh_synth_opts *o);
/* A preset's defaults: WH_SYNTH_EASY as wh_synth_opts_default; WH_SYNTH_HARD
 * 2500 images, 6 classes, size 416, seed 1, test_fraction 0.2. An unknown
 * preset gives the easy defaults with that preset (refused on generation). */
void wh_synth_opts_preset(wh_synth_opts *o, int preset);
/* "easy", "hard"; NULL for an unknown preset. */
const char *wh_synth_preset_name(int preset);
/* The preset named name, or -1. */
int wh_synth_preset_parse(const char *name);

/* Class k's name ("disc", "square", ...) and base hue in degrees [0, 360)
 * (the easy preset's; the hard preset draws every class's colour alike). */
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
