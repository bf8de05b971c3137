/* whittle: detection datasets (PASCAL VOC trees and darknet lists).
 *
 * A dataset is a list of samples: an image path and its objects. Boxes are
 * kept as the annotation gives them, in pixels of the original image, in the
 * VOC devkit convention (1-based, inclusive: a box covering pixel columns 1..w
 * has xmin=1, xmax=w). Darknet labels (normalised centre/size) are converted
 * to that convention on load, so training, evaluation and export all read one
 * kind of box.
 */
#ifndef WH_DATASET_H
#define WH_DATASET_H

#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wh_object {
    float xmin, ymin, xmax, ymax; /* pixels, VOC convention (1-based, inclusive) */
    int cls;                      /* index into the dataset's class names */
    int difficult;                /* VOC: excluded from AP (neither TP nor FP) */
    int truncated;
} wh_object;

typedef struct wh_sample {
    char *id;          /* VOC image id ("000005") or the image file's stem */
    char *image_path;  /* JPEG or PNG; NULL only from wh_dataset_open_annotations */
    int width, height; /* from the annotation; 0 when the source does not say */
    int n_obj;
    wh_object *obj;
    int depth;         /* channels from the VOC <size>; 0 when the source does not say */
} wh_sample;

typedef struct wh_dataset {
    int n_classes;
    char **class_names;
    int n;             /* samples */
    wh_sample *samples;
    char *source;      /* what it was loaded from, for messages */
} wh_dataset;

/* The 20 PASCAL VOC class names in the devkit's order. */
const char *const *wh_voc_class_names(void);

/* Loads split (e.g. "trainval", "test") of one or more VOC roots. A root is a
 * folder holding Annotations/, JPEGImages/ and ImageSets/Main/, or a
 * VOCdevkit folder, whose VOC20xx children are all joined (07+12).
 * class_names: NULL = the file classes.txt (one name per line) in the first
 * root if present, else the 20 VOC classes. An object whose name is not a
 * known class is an error naming the annotation file. */
wh_status wh_voc_load(const char *const *roots, int n_roots, const char *split,
                      const char *const *class_names, int n_classes, wh_dataset **out,
                      wh_ctx *ctx);

/* Loads the "train" or "valid" list of a darknet .data file (classes=,
 * train=, valid=, names=). Labels are found as darknet finds them: the image
 * path with "images"->"labels", "JPEGImages"->"labels" and the extension
 * replaced by .txt; each line "cls xc yc w h" (normalised). Image sizes are
 * read from the image headers to convert boxes to pixels. */
wh_status wh_darknet_load(const char *data_file, const char *which, wh_dataset **out,
                          wh_ctx *ctx);

/* Opens whatever path names: a .data file, a VOC root or a VOCdevkit. */
wh_status wh_dataset_open(const char *path, const char *split, wh_dataset **out, wh_ctx *ctx);
/* The same for scoring detections against the annotations alone (whittle
 * map --gt, as the VOC devkit does): a VOC root's images need not exist (a
 * sample's image_path is NULL when its image is absent). A darknet .data
 * list still needs its images: its labels are normalised, and the pixel
 * boxes come from the image sizes. */
wh_status wh_dataset_open_annotations(const char *path, const char *split, wh_dataset **out, wh_ctx *ctx);
/* wh_voc_load of one root, its images not required (as above). */
wh_status wh_voc_load_annotations(const char *root, const char *split, wh_dataset **out, wh_ctx *ctx);

void wh_dataset_free(wh_dataset *d);

/* Details of the loaders, for callers that need to know them exactly.
 *
 * VOC (framework/data/voc.c):
 *  - ImageSets/Main/<split>.txt holds one image id per line; surrounding
 *    spaces, CRLF endings and blank lines are ignored. The per-class lists
 *    ("000005  1") are not accepted: a line with two fields is an error.
 *  - The image is JPEGImages/<id>.jpg; when that is absent, the annotation's
 *    <filename>, then <id>.png, are tried. It must exist at load time (not for wh_dataset_open_annotations).
 *  - Sample ids are the plain image id when one VOC folder is read; when
 *    several are joined (a VOCdevkit, or several roots) they are prefixed with
 *    the folder's name ("VOC2007/000005") so that they stay unique.
 *  - <difficult> and <truncated> default to 0; coordinates may be integer or
 *    decimal text. A box with xmax < xmin (or ymax < ymin), or reaching more
 *    than one pixel outside [1, width] x [1, height] when <size> gives them, is
 *    an error naming the annotation file and the element's line.
 *
 * Darknet (framework/data/darknet_data.c):
 *  - .data lines are "key = value"; '#' starts a comment line. Keys other
 *    than classes, names, train and valid are ignored (backup, eval, ...).
 *  - Relative paths (names=, train=, valid=) are tried relative to the
 *    current directory first, as darknet does; when nothing is there, they
 *    are tried relative to the .data file's folder. Image paths in a list
 *    file likewise fall back to the list file's folder.
 *  - which: "train" or "trainval" reads train=; "valid", "val" or "test"
 *    reads valid=.
 *  - A missing label file is an image without objects (as in darknet) and
 *    adds a warning. Each label line is "cls xc yc w h": cls an integer in
 *    [0, classes), xc yc w h in [0, 1] (within 1e-3), w and h > 0.
 *  - Boxes are converted as xmin = (xc - w/2) W + 1, xmax = (xc + w/2) W
 *    (and the same for y with H): the label's box covers the continuous span
 *    [(xc - w/2) W, (xc + w/2) W] and VOC pixel i (1-based) covers [i-1, i].
 *    A label written as xc = (xmin - 1 + xmax) / (2W), w = (xmax - xmin + 1) / W
 *    comes back exactly (within float rounding). darknet's voc_label.py
 *    writes xc = ((xmin + xmax)/2 - 1) / W, w = (xmax - xmin) / W, which comes
 *    back with xmax one pixel smaller.
 */

/* The label path darknet derives from an image path: the first "/images/"
 * becomes "/labels/" (also "images/" at the very start), likewise the first
 * "/JPEGImages/", then the extension (.jpg .jpeg .png .bmp, any case) becomes
 * ".txt". *out is malloc'd. Another extension is an error. */
wh_status wh_darknet_label_path(const char *image_path, char **out, wh_ctx *ctx);

/* ---- Internal to framework/data/ (dataset.c, voc.c, darknet_data.c) ----
 * Not an API: shared plumbing of the loaders. */
char *wh__ds_strdup(const char *s);
/* "dir/name", or a copy of name when it is absolute or dir is empty. NULL: out of memory. */
char *wh__ds_join(const char *dir, const char *name);
/* The folder part of path ("" when there is none); malloc'd. */
char *wh__ds_dirname(const char *path);
int wh__ds_is_dir(const char *path);
int wh__ds_is_file(const char *path);
/* The whole file, NUL-terminated, a leading UTF-8 byte order mark dropped. */
wh_status wh__ds_read_text(const char *path, char **text, wh_ctx *ctx);
/* Cuts the next line out of *cursor (at '\n'; a trailing '\r' dropped);
 * NULL once the text is used up. */
char *wh__ds_next_line(char **cursor);
/* Strips leading and trailing whitespace in place. */
char *wh__ds_trim(char *s);
/* A class-name file: one name per line, surrounding spaces trimmed.
 * positional = 0 (VOC classes.txt, names looked up by text): blank lines are
 * skipped and a repeated name is an error. positional = 1 (darknet names=,
 * labels give the index): a blank line before the last name is an error, as
 * darknet would count it as a class, and repeats are allowed. */
wh_status wh__ds_read_names(const char *path, int positional, char ***names, int *n,
                            wh_ctx *ctx);
void wh__ds_free_names(char **names, int n);
wh_dataset *wh__ds_new(const char *source);
/* Copies n names into d. */
wh_status wh__ds_set_classes(wh_dataset *d, const char *const *names, int n, wh_ctx *ctx);
/* Appends a zeroed sample and returns it in *s. */
wh_status wh__ds_add_sample(wh_dataset *d, wh_sample **s, wh_ctx *ctx);
/* What dir is to the VOC reader: 1 a VOC root (has Annotations/), 2 a
 * VOCdevkit (has VOC<digits>/ folders with Annotations/), 0 neither. */
int wh__ds_voc_kind(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
