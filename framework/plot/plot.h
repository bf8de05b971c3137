/* whittle: the training chart (darknet's chart.png, as a file we write).
 *
 * A line chart of the loss per iteration (left axis, auto-scaled from 0)
 * with optional mAP points (right axis, 0..1), gridlines with labels drawn
 * in a built-in 5x7 bitmap font, saved as PNG atomically so a user can open
 * it while training runs.
 */
#ifndef WH_PLOT_H
#define WH_PLOT_H

#include "framework/data/image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wh_chart {
    int n;              /* loss points */
    const float *iter;  /* x of each loss point */
    const float *loss;
    int n_map;          /* mAP points (may be 0) */
    const float *map_iter;
    const float *map;
    float max_iter;     /* x axis end (0: the last point) */
    const char *title;  /* upper case letters, digits and . - : % / ( ) @ = + | only */
} wh_chart;

/* Draws the chart into a new w x h image (free it with wh_image_free). */
wh_status wh_chart_render(const wh_chart *c, int w, int h, wh_image *out, wh_ctx *ctx);
wh_status wh_chart_save(const wh_chart *c, const char *path, wh_ctx *ctx);

/* Histograms over time (e.g. |gamma| during sparse training): row r of
 * rows (n_rows x bins, shares) is one curve over x in [x_lo, x_hi] (the bin
 * centres), coloured from blue (first) to red (last); labels say x_label. */
wh_status wh_hist_chart_save(const char *path, const float *rows, const float *iters, int n_rows, int bins,
                             float x_lo, float x_hi, const char *title, const char *x_label, wh_ctx *ctx);

/* Several named curves on shared axes (the pipeline's loss curves of all
 * stages, channels per layer before and after pruning). x runs from the
 * smallest to the largest x of all series, y from 0 (or the smallest y when
 * that is negative) to the largest, or with clip_p90 to 1.5 x the 90th
 * percentile (a loss's first iterations); points above are drawn at the top.
 * Series take the palette's colours in order (wh_lines_color) and a legend
 * entry each, top right; step draws a staircase (one flat segment per point,
 * as for per-layer counts). Names and labels: the font's characters; lower
 * case is drawn as upper case. */
typedef struct wh_series {
    const char *name;
    int n;
    const float *x, *y;
    int step;
} wh_series;

typedef struct wh_lines {
    const wh_series *series;
    int n_series;
    const char *title, *x_label, *y_label;
    int clip_p90;
} wh_lines;

/* The plot area is 70..w-40 x 40..h-50. */
wh_status wh_lines_render(const wh_lines *c, int w, int h, wh_image *out, wh_ctx *ctx);
wh_status wh_lines_save(const wh_lines *c, const char *path, wh_ctx *ctx);
/* The colour of series k (the palette repeats after 8). */
void wh_lines_color(int k, float rgb[3]);

/* Horizontal bars, one per label (top to bottom): a bar from 0 to mean[i]
 * with a whisker from lo[i] to hi[i] (lo, hi may be NULL), the value
 * printed at its end; x from 0 to the largest value (or x_max when > 0).
 * Rows are 22 px high; the label column is as wide as the longest label. */
wh_status wh_bars_render(const char *const *labels, const double *mean, const double *lo, const double *hi, int n,
                         double x_max, const char *title, const char *x_label, wh_image *out, wh_ctx *ctx);
wh_status wh_bars_save(const char *path, const char *const *labels, const double *mean, const double *lo,
                       const double *hi, int n, double x_max, const char *title, const char *x_label, wh_ctx *ctx);

/* Text in the 5x7 font at (x, y) (top-left), scale 1 = 6 px per glyph. */
void wh_draw_text(wh_image *img, int x, int y, int scale, const char *text, const float rgb[3]);

#ifdef __cplusplus
}
#endif
#endif
