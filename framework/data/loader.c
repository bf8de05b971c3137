#include "loader.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

void wh_loader_opts_default(wh_loader_opts *o, int width, int height, int batch)
{
    memset(o, 0, sizeof(*o));
    o->width = width;
    o->height = height;
    o->batch = batch;
    o->max_boxes = 90;
    o->seed = 1;
    o->train = 1;
    o->letterbox = 0;
    o->jitter = 0.3f;
    o->hue = 0.1f;
    o->saturation = 1.5f;
    o->exposure = 1.5f;
    o->flip = 1;
    o->skip_difficult = 1;
    o->prefetch = 1;
}

/* --- reproducible randomness ---------------------------------------------- */
static uint64_t wh__mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct wh__rng {
    uint64_t s;
} wh__rng;

static double wh__uniform(wh__rng *r, double lo, double hi)
{
    r->s = wh__mix(r->s);
    return lo + (hi - lo) * (double)(r->s >> 11) * (1.0 / 9007199254740992.0);
}

/* darknet's rand_scale: a factor in [1, s], inverted half of the time. */
static double wh__rand_scale(wh__rng *r, double s)
{
    double f = wh__uniform(r, 1.0, s < 1.0 ? 1.0 : s);
    return wh__uniform(r, 0, 1) < 0.5 ? f : 1.0 / f;
}

/* --- one image ------------------------------------------------------------ */

/* A window of the (W, H) canvas: columns [x0, x1), rows [y0, y1). */
typedef struct wh__rect {
    int x0, y0, x1, y1;
} wh__rect;

/* RGB <-> HSV in place on window q of a planar (3, H, W) image (h in [0,1)). */
static void wh__hsv_jitter(float *img, int W, int H, const wh__rect *q, float dhue, float sat, float expo)
{
    const long n = (long)W * H;
    float *R = img, *G = img + n, *B = img + 2 * n;
    for (int v = q->y0; v < q->y1; v++)
        for (long i = (long)v * W + q->x0; i < (long)v * W + q->x1; i++) {
            const float r = R[i], g = G[i], b = B[i];
            float mx = fmaxf(r, fmaxf(g, b)), mn = fminf(r, fminf(g, b)), d = mx - mn;
            float hh = 0.f, s = mx > 0.f ? d / mx : 0.f, val = mx;
            if (d > 0.f) {
                if (mx == r) hh = (g - b) / d;
                else if (mx == g) hh = 2.f + (b - r) / d;
                else hh = 4.f + (r - g) / d;
                hh /= 6.f;
                if (hh < 0.f) hh += 1.f;
            }
            hh += dhue;
            float rgb[3];
            wh_hsv_to_rgb(hh, fminf(s * sat, 1.f), fminf(val * expo, 1.f), rgb);
            R[i] = rgb[0];
            G[i] = rgb[1];
            B[i] = rgb[2];
        }
}

/* Renders src through xf into window q of the (W, H) canvas: bilinear, grey
 * outside the image. xf places src on a canvas of its own, which is shifted
 * by (tx, ty) whole pixels: canvas pixel (u, v) shows its pixel (u-tx, v-ty). */
static void wh__render(const wh_image *src, const wh_xform *xf, int W, int H, const wh__rect *q, int tx,
                       int ty, float *dst)
{
    const long plane = (long)W * H;
    for (int v = q->y0; v < q->y1; v++) {
        const float sy = ((float)(v - ty) + 0.5f - xf->dy) / xf->sy - 0.5f;
        for (int u = q->x0; u < q->x1; u++) {
            const int uo = u - tx;
            float pre = xf->flip ? (float)W - ((float)uo + 0.5f) : (float)uo + 0.5f;
            const float sx = (pre - xf->dx) / xf->sx - 0.5f;
            const long o = (long)v * W + u;
            if (sx < -0.5f || sy < -0.5f || sx > (float)src->w - 0.5f || sy > (float)src->h - 0.5f) {
                dst[o] = dst[o + plane] = dst[o + 2 * plane] = 0.5f;
                continue;
            }
            float fx = fminf(fmaxf(sx, 0.f), (float)(src->w - 1));
            float fy = fminf(fmaxf(sy, 0.f), (float)(src->h - 1));
            int x0 = (int)fx, y0 = (int)fy;
            int x1 = x0 + 1 < src->w ? x0 + 1 : x0, y1 = y0 + 1 < src->h ? y0 + 1 : y0;
            float ax = fx - (float)x0, ay = fy - (float)y0;
            for (int c = 0; c < 3; c++) {
                const float *p = src->data + (size_t)c * src->w * src->h;
                float top = p[y0 * src->w + x0] * (1 - ax) + p[y0 * src->w + x1] * ax;
                float bot = p[y1 * src->w + x0] * (1 - ax) + p[y1 * src->w + x1] * ax;
                dst[o + c * plane] = top * (1 - ay) + bot * ay;
            }
        }
    }
}

/* Mosaic quadrant `quad` (0 top-left, 1 top-right, 2 bottom-left, 3
 * bottom-right of the cut (cx, cy)) and the shift (tx, ty) of the image's
 * own canvas that puts the window next to the cut: the quadrant shows the
 * side of the image's content that faces the cut (the content's right edge
 * for a left quadrant, its left edge for a right one; likewise in y), so
 * grey bands of a crop that reaches past the image, or of a letterbox, are
 * pushed out of the quadrant when the content is large enough to fill it.
 * The window never leaves the own canvas. */
static void wh__window(const wh_xform *xf, int iw, int ih, int W, int H, int quad, int cx, int cy, wh__rect *q,
                       int *tx, int *ty)
{
    /* the content's extent on its own canvas, continuous pixels, whole pixels inwards */
    double a = xf->dx, b = iw * (double)xf->sx + xf->dx;
    if (xf->flip) {
        double t = W - b;
        b = W - a;
        a = t;
    }
    const double c = xf->dy, e = ih * (double)xf->sy + xf->dy, tol = 1e-3;
    const int L = (int)ceil(fmax(a, 0) - tol), R = (int)floor(fmin(b, W) + tol);
    const int T = (int)ceil(fmax(c, 0) - tol), Bm = (int)floor(fmin(e, H) + tol);
    const int right = quad & 1, bottom = quad >> 1;
    q->x0 = right ? cx : 0;
    q->x1 = right ? W : cx;
    q->y0 = bottom ? cy : 0;
    q->y1 = bottom ? H : cy;
    const int qw = q->x1 - q->x0, qh = q->y1 - q->y0;
    int wx = right ? L : R - qw, wy = bottom ? T : Bm - qh; /* the window's corner on the own canvas */
    wx = wx < 0 ? 0 : wx > W - qw ? W - qw : wx;
    wy = wy < 0 ? 0 : wy > H - qh ? H - qh : wy;
    *tx = q->x0 - wx;
    *ty = q->y0 - wy;
}

/* Draws one sample through its own augmentation (the generator seeded by
 * rng_seed: crop, flip, HSV, in that order) onto the (W, H) canvas: the
 * whole canvas (quad < 0) or mosaic quadrant quad of the cut (cx, cy).
 * Appends its boxes to truth[*nt ..] up to max_boxes. *xf: where the sample
 * went on the canvas. */
static wh_status wh__put(const wh_dataset *d, const wh_loader_opts *o, int sample, uint64_t rng_seed, int quad,
                         int cx, int cy, float *image, wh_truth *truth, int *nt, wh_xform *xf, wh_ctx *ctx)
{
    const wh_sample *s = &d->samples[sample];
    wh_image img = {0};
    WH_TRY(wh_image_load(s->image_path, &img, ctx));
    wh__rng r = {rng_seed};
    const int W = o->width, H = o->height;
    const double iw = img.w, ih = img.h;
    /* the crop, in image pixels: [kx, kx+cw) x [ky, ky+ch) */
    double kx = 0, ky = 0, cw = iw, ch = ih;
    if (o->train && o->jitter > 0) {
        double dw = o->jitter * iw, dh = o->jitter * ih;
        double pl = floor(wh__uniform(&r, -dw, dw)), pr = floor(wh__uniform(&r, -dw, dw));
        double pt = floor(wh__uniform(&r, -dh, dh)), pb = floor(wh__uniform(&r, -dh, dh));
        kx = pl;
        ky = pt;
        cw = fmax(iw - pl - pr, 1.0);
        ch = fmax(ih - pt - pb, 1.0);
    }
    double sx = W / cw, sy = H / ch, ox = 0, oy = 0;
    if (o->letterbox) {
        double k = fmin(sx, sy);
        sx = sy = k;
        ox = (W - cw * k) / 2;
        oy = (H - ch * k) / 2;
    }
    memset(xf, 0, sizeof(*xf));
    xf->sx = (float)sx;
    xf->sy = (float)sy;
    xf->dx = (float)(ox - kx * sx);
    xf->dy = (float)(oy - ky * sy);
    xf->flip = o->train && o->flip && wh__uniform(&r, 0, 1) < 0.5;
    xf->orig_w = img.w;
    xf->orig_h = img.h;
    wh__rect q = {0, 0, W, H};
    int tx = 0, ty = 0;
    if (quad >= 0) wh__window(xf, img.w, img.h, W, H, quad, cx, cy, &q, &tx, &ty);
    wh__render(&img, xf, W, H, &q, tx, ty, image);
    wh_image_free(&img);
    if (o->train && (o->hue > 0 || o->saturation > 1 || o->exposure > 1)) {
        float dhue = (float)wh__uniform(&r, -o->hue, o->hue);
        float sat = (float)wh__rand_scale(&r, o->saturation), expo = (float)wh__rand_scale(&r, o->exposure);
        wh__hsv_jitter(image, W, H, &q, dhue, sat, expo);
    }
    /* boxes: VOC inclusive pixels -> continuous [xmin-1, xmax) -> the own canvas -> the window */
    for (int i = 0; i < s->n_obj && *nt < o->max_boxes; i++) {
        const wh_object *ob = &s->obj[i];
        if (o->skip_difficult && ob->difficult) continue;
        double x0 = (ob->xmin - 1) * sx + xf->dx, x1 = ob->xmax * sx + xf->dx;
        double y0 = (ob->ymin - 1) * sy + xf->dy, y1 = ob->ymax * sy + xf->dy;
        if (xf->flip) {
            double t = W - x1;
            x1 = W - x0;
            x0 = t;
        }
        x0 = fmax(x0, 0);
        y0 = fmax(y0, 0);
        x1 = fmin(x1, W);
        y1 = fmin(y1, H);
        if (x1 - x0 < 1 || y1 - y0 < 1) continue;
        if (quad >= 0) {
            const double pw = x1 - x0, ph = y1 - y0; /* as placed on the own canvas */
            x0 = fmax(x0 + tx, q.x0);
            x1 = fmin(x1 + tx, q.x1);
            y0 = fmax(y0 + ty, q.y0);
            y1 = fmin(y1 + ty, q.y1);
            if (x1 - x0 < 1 || y1 - y0 < 1) continue;
            if (x1 - x0 < WH_MOSAIC_MIN_VISIBLE * pw || y1 - y0 < WH_MOSAIC_MIN_VISIBLE * ph) continue;
        }
        wh_truth *t = &truth[(*nt)++];
        t->x = (float)((x0 + x1) / 2 / W);
        t->y = (float)((y0 + y1) / 2 / H);
        t->w = (float)((x1 - x0) / W);
        t->h = (float)((y1 - y0) / H);
        t->cls = ob->cls;
    }
    if (quad >= 0) { /* the sample on the mosaic: its own placement, shifted */
        xf->dx += (float)(xf->flip ? -tx : tx);
        xf->dy += (float)ty;
    }
    return WH_OK;
}

/* A cut coordinate in [0.2, 0.8] of side n (darknet's rand_int(w*.2, w*.8)),
 * leaving at least one pixel on either side. */
static int wh__cut(wh__rng *m, int n)
{
    int lo = (int)(n * 0.2), hi = (int)(n * 0.8);
    lo = lo < 1 ? 1 : lo;
    hi = hi > n - 1 ? n - 1 : hi < lo ? lo : hi;
    int c = lo + (int)wh__uniform(m, 0, (double)(hi - lo + 1));
    return c > hi ? hi : c;
}

wh_status wh_loader_make(const wh_dataset *d, const wh_loader_opts *o, int sample, uint64_t rng_seed,
                         float *image, wh_truth *truth, wh_xform *xf, wh_ctx *ctx)
{
    const int W = o->width, H = o->height;
    int nt = 0;
    /* The mosaic's draws come from a stream of their own, so that the
     * augmentation stream of a single image is the one mosaic = 0 uses. */
    wh__rng m = {wh__mix(rng_seed ^ 0x6D6F736169637721ull)};
    const int mosaic = o->train && o->mosaic > 0 && W >= 2 && H >= 2 && wh__uniform(&m, 0, 1) < o->mosaic;
    if (!mosaic) {
        WH_TRY(wh__put(d, o, sample, rng_seed, -1, 0, 0, image, truth, &nt, xf, ctx));
        xf->part[0] = sample;
        xf->part[1] = xf->part[2] = xf->part[3] = -1;
    } else {
        const int cx = wh__cut(&m, W), cy = wh__cut(&m, H);
        int part[4] = {sample, 0, 0, 0};
        for (int q = 1; q < 4; q++) {
            part[q] = (int)wh__uniform(&m, 0, (double)d->n);
            if (part[q] >= d->n) part[q] = d->n - 1;
        }
        for (int q = 0; q < 4; q++) {
            wh_xform other;
            uint64_t seed = q == 0 ? rng_seed : wh__mix(rng_seed + (uint64_t)q * 0xD1B54A32D192ED03ull);
            WH_TRY(wh__put(d, o, part[q], seed, q, cx, cy, image, truth, &nt, q == 0 ? xf : &other, ctx));
        }
        xf->mosaic = 1;
        xf->cut_x = cx;
        xf->cut_y = cy;
        memcpy(xf->part, part, sizeof(part));
    }
    for (int i = nt; i < o->max_boxes; i++) memset(&truth[i], 0, sizeof(truth[i]));
    return WH_OK;
}

/* --- batches and the prefetch thread -------------------------------------- */

typedef struct wh__slot {
    wh_batch b;
    int ready;
    wh_status st;
    char err[WH_MSG_MAX];
} wh__slot;

struct wh_loader {
    const wh_dataset *d;
    wh_loader_opts o;
    int *perm;           /* the shuffle of perm_epoch (worker only) */
    long perm_epoch;
    wh__slot slot[2];
    int cur;             /* slot handed to the caller, -1 none */
    long next;           /* batch the caller gets next */
    long produce;        /* batch the worker makes next */
    int running, stop;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void wh__shuffle(wh_loader *l, long epoch)
{
    const int n = l->d->n;
    for (int i = 0; i < n; i++) l->perm[i] = i;
    wh__rng r = {l->o.seed ^ wh__mix((uint64_t)epoch * 0x2545F4914F6CDD1Dull + 17)};
    for (int i = n - 1; i > 0; i--) {
        int j = (int)wh__uniform(&r, 0, (double)(i + 1));
        if (j > i) j = i;
        int t = l->perm[i];
        l->perm[i] = l->perm[j];
        l->perm[j] = t;
    }
    l->perm_epoch = epoch;
}

static void wh__fill(wh_loader *l, wh__slot *s, long index)
{
    const wh_loader_opts *o = &l->o;
    const int N = l->d->n, B = o->batch;
    const size_t img = (size_t)3 * o->width * o->height;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    s->st = WH_OK;
    s->b.index = index;
    s->b.n = 0;
    const long S = o->stride > 0 ? o->stride : B;
    long first = index * S + o->offset;
    if (!o->train) {
        long nb = (N + S - 1) / S;
        first = (index % nb) * S + o->offset;
    }
    for (int i = 0; i < B; i++) {
        long k = first + i;
        int sample;
        if (o->train) {
            long epoch = k / N;
            if (epoch != l->perm_epoch) wh__shuffle(l, epoch);
            sample = l->perm[k % N];
        } else {
            if (k >= N) break;
            sample = (int)k;
        }
        uint64_t seed = wh__mix(o->seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)k);
        s->st = wh_loader_make(l->d, o, sample, seed, s->b.images + (size_t)i * img,
                               s->b.truth + (size_t)i * o->max_boxes, &s->b.xform[i], &ctx);
        if (s->st != WH_OK) {
            memcpy(s->err, ctx.msg, sizeof(s->err));
            return;
        }
        s->b.sample[i] = sample;
        s->b.n++;
    }
}

static void *wh__worker(void *arg)
{
    wh_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        int s = -1;
        while (!l->stop) {
            for (int k = 0; k < 2; k++)
                if (!l->slot[k].ready && k != l->cur) s = k;
            if (s >= 0) break;
            pthread_cond_wait(&l->cv, &l->mu);
        }
        if (l->stop) break;
        long index = l->produce++;
        pthread_mutex_unlock(&l->mu);
        wh__fill(l, &l->slot[s], index);
        pthread_mutex_lock(&l->mu);
        l->slot[s].ready = 1;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void wh__stop(wh_loader *l)
{
    if (!l->running) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->th, NULL);
    l->running = 0;
    l->stop = 0;
}

static wh_status wh__start(wh_loader *l, long index, wh_ctx *ctx)
{
    l->slot[0].ready = l->slot[1].ready = 0;
    l->cur = -1;
    l->next = l->produce = index;
    if (!l->o.prefetch) return WH_OK;
    if (pthread_create(&l->th, NULL, wh__worker, l) != 0)
        return wh_error(ctx, WH_ERR_STATE, "cannot start the loader thread");
    l->running = 1;
    return WH_OK;
}

void wh_loader_destroy(wh_loader *l)
{
    if (!l) return;
    wh__stop(l);
    for (int k = 0; k < 2; k++) {
        free(l->slot[k].b.images);
        free(l->slot[k].b.truth);
        free(l->slot[k].b.sample);
        free(l->slot[k].b.xform);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->perm);
    free(l);
}

size_t wh_loader_bytes(const wh_loader_opts *o)
{
    const size_t n = (size_t)(o->batch > 0 ? o->batch : 0);
    return 2 * n * ((size_t)3 * o->width * o->height * sizeof(float) + (size_t)o->max_boxes * sizeof(wh_truth) +
                    sizeof(int) + sizeof(wh_xform));
}

wh_status wh_loader_create(const wh_dataset *d, const wh_loader_opts *o, wh_loader **out, wh_ctx *ctx)
{
    *out = NULL;
    if (!d || d->n < 1) return wh_error(ctx, WH_ERR_ARG, "the dataset has no images");
    if (o->width < 1 || o->height < 1 || o->batch < 1 || o->max_boxes < 1)
        return wh_error(ctx, WH_ERR_ARG, "loader: width, height, batch and max_boxes must be >= 1");
    if (!(o->mosaic >= 0.f && o->mosaic <= 1.f))
        return wh_error(ctx, WH_ERR_ARG, "loader: mosaic is a probability in [0, 1], not %g", (double)o->mosaic);
    if (o->stride < 0 || o->offset < 0 || (o->stride > 0 && o->offset + o->batch > o->stride))
        return wh_error(ctx, WH_ERR_ARG, "loader: a share of %d images at offset %d does not fit a stride of %d",
                        o->batch, o->offset, o->stride);
    wh_loader *l = calloc(1, sizeof(*l));
    if (!l) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    l->d = d;
    l->o = *o;
    l->perm_epoch = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->perm = malloc((size_t)d->n * sizeof(int));
    const size_t img = (size_t)3 * o->width * o->height;
    int ok = l->perm != NULL;
    for (int k = 0; k < 2 && ok; k++) {
        wh_batch *b = &l->slot[k].b;
        b->images = malloc(img * (size_t)o->batch * sizeof(float));
        b->truth = calloc((size_t)o->batch * o->max_boxes, sizeof(wh_truth));
        b->sample = calloc((size_t)o->batch, sizeof(int));
        b->xform = calloc((size_t)o->batch, sizeof(wh_xform));
        ok = b->images && b->truth && b->sample && b->xform;
    }
    if (!ok) {
        wh_loader_destroy(l);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory for the loader's batches");
    }
    wh_status st = wh__start(l, 0, ctx);
    if (st != WH_OK) {
        wh_loader_destroy(l);
        return st;
    }
    *out = l;
    return WH_OK;
}

wh_status wh_loader_next(wh_loader *l, const wh_batch **out, wh_ctx *ctx)
{
    *out = NULL;
    if (!l->o.prefetch) {
        wh__fill(l, &l->slot[0], l->next++);
        if (l->slot[0].st != WH_OK) return wh_error(ctx, l->slot[0].st, "%s", l->slot[0].err);
        *out = &l->slot[0].b;
        return WH_OK;
    }
    pthread_mutex_lock(&l->mu);
    if (l->cur >= 0) {
        l->slot[l->cur].ready = 0; /* the caller is done with it: the worker may refill */
        l->cur = -1;
        pthread_cond_broadcast(&l->cv);
    }
    int s = -1;
    for (;;) {
        for (int k = 0; k < 2; k++)
            if (l->slot[k].ready && l->slot[k].b.index == l->next) s = k;
        if (s >= 0) break;
        pthread_cond_wait(&l->cv, &l->mu);
    }
    l->cur = s;
    l->next++;
    pthread_mutex_unlock(&l->mu);
    if (l->slot[s].st != WH_OK) return wh_error(ctx, l->slot[s].st, "%s", l->slot[s].err);
    *out = &l->slot[s].b;
    return WH_OK;
}

long wh_loader_position(const wh_loader *l)
{
    return l->next;
}

wh_status wh_loader_seek(wh_loader *l, long index, wh_ctx *ctx)
{
    if (index < 0) return wh_error(ctx, WH_ERR_ARG, "loader: negative batch index %ld", index);
    wh__stop(l);
    return wh__start(l, index, ctx);
}
