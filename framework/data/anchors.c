/* Anchors from the data: k-means of box sizes under 1 - IoU (anchors.h). */
#include "anchors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

double wh_anchors_iou(double aw, double ah, double bw, double bh)
{
    const double inter = (aw < bw ? aw : bw) * (ah < bh ? ah : bh);
    const double uni = aw * ah + bw * bh - inter;
    return uni > 0 ? inter / uni : 0;
}

/* The anchor of highest IoU with box (w, h); *iou its IoU. Ties: the first. */
static int wh__best(double w, double h, const double *c, int k, double *iou)
{
    int best = 0;
    double bi = -1;
    for (int j = 0; j < k; j++) {
        const double v = wh_anchors_iou(w, h, c[2 * j], c[2 * j + 1]);
        if (v > bi) bi = v, best = j;
    }
    *iou = bi;
    return best;
}

double wh_anchors_mean_iou(const float *wh, long n, const float *anchors, int k)
{
    if (n <= 0 || k <= 0 || k > WH_ANCHORS_MAX) return 0;
    double c[2 * WH_ANCHORS_MAX];
    for (int j = 0; j < 2 * k; j++) c[j] = anchors[j];
    double sum = 0, iou;
    for (long i = 0; i < n; i++) {
        wh__best(wh[2 * i], wh[2 * i + 1], c, k, &iou);
        sum += iou;
    }
    return sum / (double)n;
}

/* splitmix64: a small deterministic generator, uniform in [0, 1). */
static double wh__rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* One k-means run from a k-means++ start; the centres in c (2k doubles),
 * returns the mean best IoU. d and a are n-long work arrays. */
static double wh__run(const float *wh, long n, int k, uint64_t seed, double *c, double *d, int *a)
{
    uint64_t s = seed;
    /* k-means++: the first centre a random box, each next one a box drawn
     * with probability proportional to its squared distance 1 - IoU to the
     * nearest centre so far */
    long first = (long)(wh__rand(&s) * (double)n);
    if (first >= n) first = n - 1;
    c[0] = wh[2 * first], c[1] = wh[2 * first + 1];
    for (long i = 0; i < n; i++) {
        const double dist = 1 - wh_anchors_iou(wh[2 * i], wh[2 * i + 1], c[0], c[1]);
        d[i] = dist * dist;
    }
    for (int j = 1; j < k; j++) {
        double total = 0;
        for (long i = 0; i < n; i++) total += d[i];
        long pick = n - 1;
        if (total > 0) {
            double r = wh__rand(&s) * total;
            for (long i = 0; i < n; i++) {
                r -= d[i];
                if (r < 0) {
                    pick = i;
                    break;
                }
            }
        }
        c[2 * j] = wh[2 * pick], c[2 * j + 1] = wh[2 * pick + 1];
        for (long i = 0; i < n; i++) {
            const double dist = 1 - wh_anchors_iou(wh[2 * i], wh[2 * i + 1], c[2 * j], c[2 * j + 1]);
            if (dist * dist < d[i]) d[i] = dist * dist;
        }
    }
    for (long i = 0; i < n; i++) a[i] = -1;
    double mean = 0;
    for (int iter = 0; iter < 1000; iter++) {
        int changed = 0;
        double sum = 0;
        for (long i = 0; i < n; i++) {
            double iou;
            const int b = wh__best(wh[2 * i], wh[2 * i + 1], c, k, &iou);
            if (b != a[i]) a[i] = b, changed = 1;
            d[i] = iou;
            sum += iou;
        }
        mean = sum / (double)n;
        if (!changed) break;
        /* the mean (w, h) of each cluster; an empty one takes the box that
         * fits its anchor worst, so k anchors stay in use */
        double m[3 * WH_ANCHORS_MAX] = {0};
        for (long i = 0; i < n; i++) {
            m[3 * a[i]] += wh[2 * i], m[3 * a[i] + 1] += wh[2 * i + 1], m[3 * a[i] + 2] += 1;
        }
        for (int j = 0; j < k; j++) {
            if (m[3 * j + 2] > 0) {
                c[2 * j] = m[3 * j] / m[3 * j + 2], c[2 * j + 1] = m[3 * j + 1] / m[3 * j + 2];
            } else {
                long worst = 0;
                for (long i = 1; i < n; i++)
                    if (d[i] < d[worst]) worst = i;
                c[2 * j] = wh[2 * worst], c[2 * j + 1] = wh[2 * worst + 1];
                d[worst] = 1; /* not chosen twice in one pass */
            }
        }
    }
    return mean;
}

static int wh__by_area(const void *pa, const void *pb)
{
    const float *a = pa, *b = pb;
    const double x = (double)a[0] * a[1], y = (double)b[0] * b[1];
    return x < y ? -1 : x > y ? 1 : (a[0] < b[0] ? -1 : a[0] > b[0]);
}

wh_status wh_anchors_kmeans(const float *wh, long n, int k, uint64_t seed, int restarts, float *anchors,
                            double *mean_iou, wh_ctx *ctx)
{
    if (k < 1 || k > WH_ANCHORS_MAX)
        return wh_error(ctx, WH_ERR_ARG, "anchors: %d anchors asked for (1..%d)", k, WH_ANCHORS_MAX);
    if (restarts < 1) return wh_error(ctx, WH_ERR_ARG, "anchors: restarts must be >= 1 (got %d)", restarts);
    if (n < k) return wh_error(ctx, WH_ERR_ARG, "anchors: %ld boxes are fewer than the %d anchors asked for", n, k);
    for (long i = 0; i < 2 * n; i++)
        if (!(wh[i] > 0) || !isfinite(wh[i]))
            return wh_error(ctx, WH_ERR_ARG, "anchors: box %ld has size %g x %g (must be > 0)", i / 2,
                            (double)wh[i - i % 2], (double)wh[i - i % 2 + 1]);
    /* distinct sizes: k-means cannot place more anchors than that */
    long distinct = 0;
    for (long i = 0; i < n && distinct < k; i++) {
        int seen = 0;
        for (long j = 0; j < i && !seen; j++) seen = wh[2 * j] == wh[2 * i] && wh[2 * j + 1] == wh[2 * i + 1];
        distinct += !seen;
    }
    if (distinct < k)
        return wh_error(ctx, WH_ERR_ARG, "anchors: the boxes have only %ld distinct sizes, fewer than the %d anchors",
                        distinct, k);
    double *d = malloc(sizeof(double) * (size_t)n), c[2 * WH_ANCHORS_MAX], best_c[2 * WH_ANCHORS_MAX];
    int *a = malloc(sizeof(int) * (size_t)n);
    if (!d || !a) {
        free(d);
        free(a);
        return wh_error(ctx, WH_ERR_NOMEM, "anchors: out of memory for %ld boxes", n);
    }
    double best = -1;
    for (int r = 0; r < restarts; r++) {
        const double m = wh__run(wh, n, k, seed + (uint64_t)r, c, d, a);
        if (m > best) {
            best = m;
            memcpy(best_c, c, sizeof(double) * 2 * (size_t)k);
        }
    }
    free(d);
    free(a);
    for (int j = 0; j < 2 * k; j++) anchors[j] = (float)best_c[j];
    qsort(anchors, (size_t)k, 2 * sizeof(float), wh__by_area);
    if (mean_iou) *mean_iou = best;
    return WH_OK;
}

wh_status wh_anchors_boxes(const wh_dataset *d, int netw, int neth, int letterbox, float **wh, long *n,
                           wh_ctx *ctx)
{
    *wh = NULL;
    *n = 0;
    if (netw < 1 || neth < 1) return wh_error(ctx, WH_ERR_ARG, "anchors: network size %dx%d", netw, neth);
    long total = 0;
    for (int i = 0; i < d->n; i++) total += d->samples[i].n_obj;
    if (total == 0) return wh_error(ctx, WH_ERR_ARG, "anchors: %s has no objects to cluster", d->source);
    float *out = malloc(sizeof(float) * 2 * (size_t)total);
    if (!out) return wh_error(ctx, WH_ERR_NOMEM, "anchors: out of memory for %ld boxes", total);
    long k = 0;
    for (int i = 0; i < d->n; i++) {
        const wh_sample *s = &d->samples[i];
        if (!s->n_obj) continue;
        int w = s->width, h = s->height;
        if (w < 1 || h < 1) {
            const wh_status st = wh_image_read_size(s->image_path, &w, &h, ctx);
            if (st != WH_OK) {
                free(out);
                return st;
            }
        }
        /* the loader's mapping (loader.c): VOC's inclusive pixel boxes span
         * [xmin - 1, xmax), scaled to the input */
        double sx = (double)netw / w, sy = (double)neth / h;
        if (letterbox) sx = sy = sx < sy ? sx : sy;
        for (int j = 0; j < s->n_obj; j++) {
            const wh_object *o = &s->obj[j];
            const double bw = (o->xmax - o->xmin + 1) * sx, bh = (o->ymax - o->ymin + 1) * sy;
            if (!(bw > 0 && bh > 0)) continue; /* a degenerate box says nothing about sizes */
            out[2 * k] = (float)bw, out[2 * k + 1] = (float)bh;
            k++;
        }
    }
    *wh = out;
    *n = k;
    return WH_OK;
}

void wh_anchors_round(float *anchors, int k)
{
    for (int j = 0; j < 2 * k; j++) {
        const float v = roundf(anchors[j]);
        anchors[j] = v < 1 ? 1 : v;
    }
}

wh_status wh_anchors_from_data(const char *path, const char *split, int netw, int neth, int letterbox, int k,
                               uint64_t seed, float *anchors, double *mean_iou, long *n_boxes, float **boxes,
                               wh_ctx *ctx)
{
    if (boxes) *boxes = NULL;
    wh_dataset *d = NULL;
    WH_TRY(wh_dataset_open(path, split, &d, ctx));
    float *wh = NULL;
    long n = 0;
    wh_status st = wh_anchors_boxes(d, netw, neth, letterbox, &wh, &n, ctx);
    if (st == WH_OK) st = wh_anchors_kmeans(wh, n, k, seed, WH_ANCHORS_RESTARTS, anchors, NULL, ctx);
    if (st == WH_OK) {
        wh_anchors_round(anchors, k);
        if (mean_iou) *mean_iou = wh_anchors_mean_iou(wh, n, anchors, k);
        if (n_boxes) *n_boxes = n;
        if (boxes) *boxes = wh, wh = NULL;
    }
    if (st != WH_OK && st != WH_ERR_NOMEM && !strstr(ctx->msg, path))
        st = wh_error_prefix(ctx, "%s (split %s): ", path, split); /* name where the boxes came from */
    free(wh);
    wh_dataset_free(d);
    return st;
}
