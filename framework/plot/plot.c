#include "framework/plot/plot.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 5x7 glyphs: 7 rows, the 5 low bits of each row, bit 4 = leftmost column. */
static const struct {
    char ch;
    unsigned char rows[7];
} wh__font[] = {
    {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},
    {'2', {14, 17, 1, 2, 4, 8, 31}},     {'3', {31, 2, 4, 2, 1, 17, 14}},
    {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},
    {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},
    {'8', {14, 17, 17, 14, 17, 17, 14}}, {'9', {14, 17, 17, 15, 1, 2, 12}},
    {'.', {0, 0, 0, 0, 0, 12, 12}},      {'-', {0, 0, 0, 31, 0, 0, 0}},
    {':', {0, 12, 12, 0, 12, 12, 0}},    {'%', {24, 25, 2, 4, 8, 19, 3}},
    {'/', {0, 1, 2, 4, 8, 16, 0}},       {'(', {2, 4, 8, 8, 8, 4, 2}},
    {')', {8, 4, 2, 2, 2, 4, 8}},        {'@', {14, 17, 1, 13, 21, 21, 14}},
    {'=', {0, 0, 31, 0, 31, 0, 0}},      {'+', {0, 4, 4, 31, 4, 4, 0}},
    {'|', {4, 4, 4, 4, 4, 4, 4}},
    {'A', {14, 17, 17, 31, 17, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}},
    {'C', {14, 17, 16, 16, 16, 17, 14}}, {'D', {28, 18, 17, 17, 17, 18, 28}},
    {'E', {31, 16, 16, 30, 16, 16, 31}}, {'F', {31, 16, 16, 30, 16, 16, 16}},
    {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}},
    {'I', {14, 4, 4, 4, 4, 4, 14}},      {'J', {7, 2, 2, 2, 2, 18, 12}},
    {'K', {17, 18, 20, 24, 20, 18, 17}}, {'L', {16, 16, 16, 16, 16, 16, 31}},
    {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}},
    {'O', {14, 17, 17, 17, 17, 17, 14}}, {'P', {30, 17, 17, 30, 16, 16, 16}},
    {'Q', {14, 17, 17, 17, 21, 18, 13}}, {'R', {30, 17, 17, 30, 20, 18, 17}},
    {'S', {15, 16, 16, 14, 1, 1, 30}},   {'T', {31, 4, 4, 4, 4, 4, 4}},
    {'U', {17, 17, 17, 17, 17, 17, 14}}, {'V', {17, 17, 17, 17, 17, 10, 4}},
    {'W', {17, 17, 17, 21, 21, 21, 10}}, {'X', {17, 17, 10, 4, 10, 17, 17}},
    {'Y', {17, 17, 17, 10, 4, 4, 4}},    {'Z', {31, 1, 2, 4, 8, 16, 31}},
};

static const unsigned char *wh__glyph(char ch)
{
    ch = (char)toupper((unsigned char)ch);
    for (size_t i = 0; i < sizeof(wh__font) / sizeof(wh__font[0]); i++)
        if (wh__font[i].ch == ch) return wh__font[i].rows;
    return NULL; /* space and unknown characters draw nothing */
}

void wh_draw_text(wh_image *img, int x, int y, int scale, const char *text, const float rgb[3])
{
    for (; *text; text++, x += 6 * scale) {
        const unsigned char *g = wh__glyph(*text);
        if (!g) continue;
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 5; c++)
                if (g[r] & (1u << (4 - c)))
                    wh_image_fill_rect(img, x + c * scale, y + r * scale, x + c * scale + scale - 1,
                                       y + r * scale + scale - 1, rgb);
    }
}

static void wh__line(wh_image *img, double x0, double y0, double x1, double y1, int t, const float rgb[3])
{
    double dx = x1 - x0, dy = y1 - y0;
    int steps = (int)fmax(fabs(dx), fabs(dy)) + 1;
    for (int i = 0; i <= steps; i++) {
        int x = (int)lround(x0 + dx * i / steps), y = (int)lround(y0 + dy * i / steps);
        wh_image_fill_rect(img, x - t / 2, y - t / 2, x + (t - 1) / 2, y + (t - 1) / 2, rgb);
    }
}

/* Saves img as PNG and frees it, whatever the outcome. */
static wh_status wh__save_free(const char *path, wh_image *img, wh_ctx *ctx)
{
    const wh_status st = wh_image_save_png(path, img, ctx);
    wh_image_free(img);
    return st;
}

static int wh__cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* A "nice" axis step (1, 2 or 5 times a power of ten) giving about n ticks. */
static double wh__nice_step(double range, int n)
{
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

wh_status wh_chart_render(const wh_chart *c, int w, int h, wh_image *out, wh_ctx *ctx)
{
    WH_TRY(wh_image_alloc(out, w, h, 3, ctx));
    const float white[3] = {1, 1, 1}, black[3] = {0, 0, 0}, grid[3] = {0.85f, 0.85f, 0.85f};
    const float blue[3] = {0.1f, 0.3f, 0.85f}, red[3] = {0.85f, 0.1f, 0.1f};
    wh_image_fill_rect(out, 0, 0, w - 1, h - 1, white);
    const int L = 70, R = w - 60, T = 40, B = h - 50; /* plot area */
    double xmax = c->max_iter > 0 ? c->max_iter : (c->n ? c->iter[c->n - 1] : 1);
    if (xmax <= 0) xmax = 1;
    /* The first iterations' loss is often 100x the rest: scale the axis to
     * 1.5 x the 90th percentile (at most the maximum) and clip the start. */
    double ymax = 0;
    int nf = 0;
    float *sorted = c->n > 0 ? malloc((size_t)c->n * sizeof(float)) : NULL;
    for (int i = 0; i < c->n; i++)
        if (isfinite(c->loss[i])) {
            if (c->loss[i] > ymax) ymax = c->loss[i];
            if (sorted) sorted[nf++] = c->loss[i];
        }
    if (sorted && nf > 0) {
        qsort(sorted, (size_t)nf, sizeof(float), wh__cmp_float);
        double p90 = sorted[(int)(0.9 * (nf - 1))];
        if (1.5 * p90 < ymax) ymax = 1.5 * p90;
    }
    free(sorted);
    if (ymax <= 0) ymax = 1;
    double ystep = wh__nice_step(ymax, 6);
    ymax = ceil(ymax / ystep) * ystep;
    char buf[64];
    for (double v = 0; v <= ymax + 1e-9; v += ystep) {
        int y = B - (int)lround(v / ymax * (B - T));
        wh__line(out, L, y, R, y, 1, grid);
        snprintf(buf, sizeof(buf), "%g", v);
        wh_draw_text(out, L - 6 * (int)strlen(buf) - 6, y - 3, 1, buf, black);
    }
    double xstep = wh__nice_step(xmax, 8);
    for (double v = 0; v <= xmax + 1e-9; v += xstep) {
        int x = L + (int)lround(v / xmax * (R - L));
        wh__line(out, x, T, x, B, 1, grid);
        snprintf(buf, sizeof(buf), "%g", v);
        wh_draw_text(out, x - 3 * (int)strlen(buf), B + 8, 1, buf, black);
    }
    wh__line(out, L, B, R, B, 2, black);
    wh__line(out, L, T, L, B, 2, black);
    wh_draw_text(out, (L + R) / 2 - 27, h - 20, 1, "ITERATION", black);
    wh_draw_text(out, 8, T - 20, 1, "LOSS", blue);
    if (c->title) wh_draw_text(out, L, 12, 2, c->title, black);
    for (int i = 1; i < c->n; i++) {
        if (!isfinite(c->loss[i]) || !isfinite(c->loss[i - 1])) continue;
        double x0 = L + c->iter[i - 1] / xmax * (R - L), x1 = L + c->iter[i] / xmax * (R - L);
        double y0 = B - fmin(c->loss[i - 1], ymax) / ymax * (B - T), y1 = B - fmin(c->loss[i], ymax) / ymax * (B - T);
        wh__line(out, x0, y0, x1, y1, 2, blue);
    }
    if (c->n_map > 0) {
        wh__line(out, R, T, R, B, 2, red);
        for (int k = 0; k <= 10; k += 2) {
            int y = B - (int)lround(k / 10.0 * (B - T));
            snprintf(buf, sizeof(buf), "%d%%", k * 10);
            wh_draw_text(out, R + 6, y - 3, 1, buf, red);
        }
        wh_draw_text(out, R - 10, T - 20, 1, "MAP", red);
        for (int i = 0; i < c->n_map; i++) {
            double x = L + c->map_iter[i] / xmax * (R - L), y = B - c->map[i] * (B - T);
            wh_image_fill_rect(out, (int)x - 3, (int)y - 3, (int)x + 3, (int)y + 3, red);
            if (i > 0) {
                double xp = L + c->map_iter[i - 1] / xmax * (R - L), yp = B - c->map[i - 1] * (B - T);
                wh__line(out, xp, yp, x, y, 1, red);
            }
        }
    }
    return WH_OK;
}

wh_status wh_chart_save(const wh_chart *c, const char *path, wh_ctx *ctx)
{
    wh_image img = {0};
    WH_TRY(wh_chart_render(c, 1000, 600, &img, ctx));
    return wh__save_free(path, &img, ctx);
}

wh_status wh_hist_chart_save(const char *path, const float *rows, const float *iters, int n_rows, int bins,
                             float x_lo, float x_hi, const char *title, const char *x_label, wh_ctx *ctx)
{
    const int w = 1000, h = 600, L = 70, R = w - 40, T = 40, B = h - 50;
    wh_image img = {0};
    WH_TRY(wh_image_alloc(&img, w, h, 3, ctx));
    const float white[3] = {1, 1, 1}, black[3] = {0, 0, 0}, grid[3] = {0.85f, 0.85f, 0.85f};
    wh_image_fill_rect(&img, 0, 0, w - 1, h - 1, white);
    double ymax = 0;
    for (int i = 0; i < n_rows * bins; i++)
        if (rows[i] > ymax) ymax = rows[i];
    if (ymax <= 0) ymax = 1;
    double ystep = wh__nice_step(ymax, 5);
    ymax = ceil(ymax / ystep) * ystep;
    char buf[64];
    for (double v = 0; v <= ymax + 1e-9; v += ystep) {
        int y = B - (int)lround(v / ymax * (B - T));
        wh__line(&img, L, y, R, y, 1, grid);
        snprintf(buf, sizeof(buf), "%g", v);
        wh_draw_text(&img, L - 6 * (int)strlen(buf) - 6, y - 3, 1, buf, black);
    }
    for (int k = (int)ceil(x_lo); k <= (int)floor(x_hi); k++) {
        int x = L + (int)lround((k - x_lo) / (x_hi - x_lo) * (R - L));
        wh__line(&img, x, T, x, B, 1, grid);
        snprintf(buf, sizeof(buf), "%d", k);
        wh_draw_text(&img, x - 3 * (int)strlen(buf), B + 8, 1, buf, black);
    }
    wh__line(&img, L, B, R, B, 2, black);
    wh__line(&img, L, T, L, B, 2, black);
    if (x_label) wh_draw_text(&img, (L + R) / 2 - 3 * (int)strlen(x_label), h - 20, 1, x_label, black);
    if (title) wh_draw_text(&img, L, 12, 2, title, black);
    const double bw = (x_hi - x_lo) / bins;
    for (int r = 0; r < n_rows; r++) {
        const float t = n_rows > 1 ? (float)r / (float)(n_rows - 1) : 1.f;
        const float col[3] = {0.1f + 0.8f * t, 0.2f, 0.9f - 0.8f * t};
        for (int b = 1; b < bins; b++) {
            double x0 = L + (0.5 + b - 1) * bw / (x_hi - x_lo) * (R - L), x1 = L + (0.5 + b) * bw / (x_hi - x_lo) * (R - L);
            double y0 = B - rows[r * bins + b - 1] / ymax * (B - T), y1 = B - rows[r * bins + b] / ymax * (B - T);
            wh__line(&img, x0, y0, x1, y1, r == n_rows - 1 ? 2 : 1, col);
        }
        if (iters && (r == 0 || r == n_rows - 1)) {
            snprintf(buf, sizeof(buf), "IT %.0f", iters[r]);
            wh_draw_text(&img, R - 80, T + 6 + (r == 0 ? 0 : 12), 1, buf, col);
        }
    }
    return wh__save_free(path, &img, ctx);
}

void wh_lines_color(int k, float rgb[3])
{
    static const float pal[8][3] = {{0.10f, 0.30f, 0.85f}, {0.85f, 0.10f, 0.10f}, {0.10f, 0.60f, 0.20f},
                                    {0.90f, 0.55f, 0.00f}, {0.55f, 0.20f, 0.75f}, {0.00f, 0.65f, 0.70f},
                                    {0.50f, 0.35f, 0.20f}, {0.90f, 0.30f, 0.65f}};
    const int i = ((k % 8) + 8) % 8;
    memcpy(rgb, pal[i], sizeof(pal[i]));
}

wh_status wh_lines_render(const wh_lines *c, int w, int h, wh_image *out, wh_ctx *ctx)
{
    if (w < 200 || h < 150) return wh_error(ctx, WH_ERR_ARG, "chart: %dx%d is too small", w, h);
    WH_TRY(wh_image_alloc(out, w, h, 3, ctx));
    const float white[3] = {1, 1, 1}, black[3] = {0, 0, 0}, grid[3] = {0.85f, 0.85f, 0.85f};
    wh_image_fill_rect(out, 0, 0, w - 1, h - 1, white);
    const int L = 70, R = w - 40, T = 40, B = h - 50;
    double xlo = INFINITY, xhi = -INFINITY, ylo = 0, yhi = -INFINITY;
    size_t total = 0;
    for (int k = 0; k < c->n_series; k++)
        for (int i = 0; i < c->series[k].n; i++) {
            const double x = c->series[k].x[i], y = c->series[k].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
            total++;
        }
    if (total == 0) xlo = 0, xhi = 1, yhi = 1;
    if (c->clip_p90 && total > 0) {
        float *v = malloc(total * sizeof(float));
        if (!v) {
            wh_image_free(out);
            return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        }
        size_t m = 0;
        for (int k = 0; k < c->n_series; k++)
            for (int i = 0; i < c->series[k].n; i++)
                if (isfinite(c->series[k].x[i]) && isfinite(c->series[k].y[i])) v[m++] = c->series[k].y[i];
        qsort(v, m, sizeof(float), wh__cmp_float);
        const double p90 = v[(size_t)(0.9 * (double)(m - 1))];
        free(v);
        if (1.5 * p90 > 0 && 1.5 * p90 < yhi) yhi = 1.5 * p90;
    }
    /* a step series' last point covers one unit to its right */
    for (int k = 0; k < c->n_series; k++)
        if (c->series[k].step && c->series[k].n > 0) xhi = fmax(xhi, c->series[k].x[c->series[k].n - 1] + 1);
    if (xhi <= xlo) xhi = xlo + 1;
    if (yhi <= ylo) yhi = ylo + 1;
    const double ystep = wh__nice_step(yhi - ylo, 6);
    ylo = floor(ylo / ystep) * ystep, yhi = ceil(yhi / ystep) * ystep;
    char buf[64];
    for (double v = ylo; v <= yhi + 1e-9 * ystep; v += ystep) {
        const int y = B - (int)lround((v - ylo) / (yhi - ylo) * (B - T));
        wh__line(out, L, y, R, y, 1, grid);
        snprintf(buf, sizeof(buf), "%g", fabs(v) < 1e-12 * ystep ? 0.0 : v);
        wh_draw_text(out, L - 6 * (int)strlen(buf) - 6, y - 3, 1, buf, black);
    }
    const double xstep = wh__nice_step(xhi - xlo, 8);
    for (double v = ceil(xlo / xstep) * xstep; v <= xhi + 1e-9 * xstep; v += xstep) {
        const int x = L + (int)lround((v - xlo) / (xhi - xlo) * (R - L));
        wh__line(out, x, T, x, B, 1, grid);
        snprintf(buf, sizeof(buf), "%g", v);
        wh_draw_text(out, x - 3 * (int)strlen(buf), B + 8, 1, buf, black);
    }
    wh__line(out, L, B, R, B, 2, black);
    wh__line(out, L, T, L, B, 2, black);
    if (c->x_label) wh_draw_text(out, (L + R) / 2 - 3 * (int)strlen(c->x_label), h - 20, 1, c->x_label, black);
    if (c->y_label) wh_draw_text(out, 8, T - 20, 1, c->y_label, black);
    if (c->title) wh_draw_text(out, L, 12, 2, c->title, black);
#define WH__PX(xv) (L + ((xv) - xlo) / (xhi - xlo) * (R - L))
#define WH__PY(yv) (B - (fmin((yv), yhi) - ylo) / (yhi - ylo) * (B - T))
    for (int k = 0; k < c->n_series; k++) {
        const wh_series *s = &c->series[k];
        float col[3];
        wh_lines_color(k, col);
        for (int i = 0; i < s->n; i++) {
            if (!isfinite(s->x[i]) || !isfinite(s->y[i])) continue;
            if (s->step) {
                const double x1 = i + 1 < s->n && isfinite(s->x[i + 1]) ? s->x[i + 1] : s->x[i] + 1;
                wh__line(out, WH__PX(s->x[i]), WH__PY(s->y[i]), WH__PX(x1), WH__PY(s->y[i]), 2, col);
                if (i + 1 < s->n && isfinite(s->y[i + 1]))
                    wh__line(out, WH__PX(x1), WH__PY(s->y[i]), WH__PX(x1), WH__PY(s->y[i + 1]), 2, col);
            } else if (i > 0 && isfinite(s->x[i - 1]) && isfinite(s->y[i - 1])) {
                wh__line(out, WH__PX(s->x[i - 1]), WH__PY(s->y[i - 1]), WH__PX(s->x[i]), WH__PY(s->y[i]), 2, col);
            } else if (s->n == 1) {
                const int px = (int)lround(WH__PX(s->x[i])), py = (int)lround(WH__PY(s->y[i]));
                wh_image_fill_rect(out, px - 3, py - 3, px + 3, py + 3, col);
            }
        }
        /* legend: a swatch and the name, right-aligned under the title line */
        const char *name = s->name ? s->name : "";
        const int tx = R - 6 * (int)strlen(name) - 8, ty = T + 8 + 14 * k;
        wh_image_fill_rect(out, tx - 22, ty + 2, tx - 6, ty + 4, col);
        wh_draw_text(out, tx, ty, 1, name, col);
    }
#undef WH__PX
#undef WH__PY
    return WH_OK;
}

wh_status wh_lines_save(const wh_lines *c, const char *path, wh_ctx *ctx)
{
    wh_image img = {0};
    WH_TRY(wh_lines_render(c, 1000, 600, &img, ctx));
    return wh__save_free(path, &img, ctx);
}

wh_status wh_bars_render(const char *const *labels, const double *mean, const double *lo, const double *hi, int n,
                         double x_max, const char *title, const char *x_label, wh_image *out, wh_ctx *ctx)
{
    if (n < 1 || n > 1000) return wh_error(ctx, WH_ERR_ARG, "bar chart: %d bars (1..1000)", n);
    int lab = 0;
    for (int i = 0; i < n; i++) lab = (int)strlen(labels[i]) > lab ? (int)strlen(labels[i]) : lab;
    const int L = 20 + 6 * lab, w = L + 700, T = 40, h = T + 22 * n + 50, R = w - 60, B = T + 22 * n;
    WH_TRY(wh_image_alloc(out, w, h, 3, ctx));
    const float white[3] = {1, 1, 1}, black[3] = {0, 0, 0}, grid[3] = {0.85f, 0.85f, 0.85f};
    const float bar[3] = {0.45f, 0.6f, 0.9f}, whisk[3] = {0.1f, 0.1f, 0.4f};
    wh_image_fill_rect(out, 0, 0, w - 1, h - 1, white);
    double xm = x_max;
    if (xm <= 0)
        for (int i = 0; i < n; i++) {
            xm = fmax(xm, isfinite(mean[i]) ? mean[i] : 0);
            if (hi && isfinite(hi[i])) xm = fmax(xm, hi[i]);
        }
    if (xm <= 0) xm = 1;
    const double step = wh__nice_step(xm, 8);
    xm = ceil(xm / step - 1e-9) * step;
    char buf[64];
    for (double v = 0; v <= xm + 1e-9 * step; v += step) {
        const int x = L + (int)lround(v / xm * (R - L));
        wh__line(out, x, T, x, B, 1, grid);
        snprintf(buf, sizeof(buf), "%g", v);
        wh_draw_text(out, x - 3 * (int)strlen(buf), B + 8, 1, buf, black);
    }
#define WH__BX(v) (L + fmax(0.0, fmin((v), xm)) / xm * (R - L))
    for (int i = 0; i < n; i++) {
        const int y0 = T + 22 * i + 4, y1 = T + 22 * i + 17, ym = (y0 + y1) / 2;
        wh_draw_text(out, L - 6 * (int)strlen(labels[i]) - 8, ym - 3, 1, labels[i], black);
        if (!isfinite(mean[i])) continue;
        const int xe = (int)lround(WH__BX(mean[i]));
        if (xe > L) wh_image_fill_rect(out, L + 1, y0, xe, y1, bar);
        if (lo && hi && isfinite(lo[i]) && isfinite(hi[i])) {
            wh__line(out, WH__BX(lo[i]), ym, WH__BX(hi[i]), ym, 2, whisk);
            wh__line(out, WH__BX(lo[i]), y0 + 2, WH__BX(lo[i]), y1 - 2, 2, whisk);
            wh__line(out, WH__BX(hi[i]), y0 + 2, WH__BX(hi[i]), y1 - 2, 2, whisk);
        }
        snprintf(buf, sizeof(buf), "%.3f", mean[i]);
        const double xt = hi && isfinite(hi[i]) ? fmax(WH__BX(hi[i]), xe) : xe;
        wh_draw_text(out, (int)xt + 6, ym - 3, 1, buf, black);
    }
#undef WH__BX
    wh__line(out, L, B, R, B, 2, black);
    wh__line(out, L, T, L, B, 2, black);
    if (x_label) wh_draw_text(out, (L + R) / 2 - 3 * (int)strlen(x_label), h - 20, 1, x_label, black);
    if (title) wh_draw_text(out, 10, 12, 2, title, black);
    return WH_OK;
}

wh_status wh_bars_save(const char *path, const char *const *labels, const double *mean, const double *lo,
                       const double *hi, int n, double x_max, const char *title, const char *x_label, wh_ctx *ctx)
{
    wh_image img = {0};
    WH_TRY(wh_bars_render(labels, mean, lo, hi, n, x_max, title, x_label, &img, ctx));
    return wh__save_free(path, &img, ctx);
}
