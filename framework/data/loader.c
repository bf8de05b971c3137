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

/* RGB <-> HSV in place on a planar image (h in [0,1)). */
static void wh__hsv_jitter(float *img, int w, int h, float dhue, float sat, float expo)
{
    const long n = (long)w * h;
    float *R = img, *G = img + n, *B = img + 2 * n;
    for (long i = 0; i < n; i++) {
        const float r = R[i], g = G[i], b = B[i];
        float mx = fmaxf(r, fmaxf(g, b)), mn = fminf(r, fminf(g, b)), d = mx - mn;
        float hh = 0.f, s = mx > 0.f ? d / mx : 0.f, v = mx;
        if (d > 0.f) {
            if (mx == r) hh = (g - b) / d;
            else if (mx == g) hh = 2.f + (b - r) / d;
            else hh = 4.f + (r - g) / d;
            hh /= 6.f;
            if (hh < 0.f) hh += 1.f;
        }
        hh += dhue;
        float rgb[3];
        wh_hsv_to_rgb(hh, fminf(s * sat, 1.f), fminf(v * expo, 1.f), rgb);
        R[i] = rgb[0];
        G[i] = rgb[1];
        B[i] = rgb[2];
    }
}

/* Renders src through xf into the (W, H) canvas: bilinear, grey outside. */
static void wh__render(const wh_image *src, const wh_xform *xf, int W, int H, float *dst)
{
    const long plane = (long)W * H;
    for (int v = 0; v < H; v++) {
        const float sy = ((float)v + 0.5f - xf->dy) / xf->sy - 0.5f;
        for (int u = 0; u < W; u++) {
            float pre = xf->flip ? (float)W - ((float)u + 0.5f) : (float)u + 0.5f;
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

wh_status wh_loader_make(const wh_dataset *d, const wh_loader_opts *o, int sample, uint64_t rng_seed,
                         float *image, wh_truth *truth, wh_xform *xf, wh_ctx *ctx)
{
    const wh_sample *s = &d->samples[sample];
    wh_image img = {0};
    WH_TRY(wh_image_load(s->image_path, &img, ctx));
    wh__rng r = {rng_seed};
    const int W = o->width, H = o->height;
    const double iw = img.w, ih = img.h;
    /* the crop, in image pixels: [cx, cx+cw) x [cy, cy+ch) */
    double cx = 0, cy = 0, cw = iw, ch = ih;
    if (o->train && o->jitter > 0) {
        double dw = o->jitter * iw, dh = o->jitter * ih;
        double pl = floor(wh__uniform(&r, -dw, dw)), pr = floor(wh__uniform(&r, -dw, dw));
        double pt = floor(wh__uniform(&r, -dh, dh)), pb = floor(wh__uniform(&r, -dh, dh));
        cx = pl;
        cy = pt;
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
    xf->sx = (float)sx;
    xf->sy = (float)sy;
    xf->dx = (float)(ox - cx * sx);
    xf->dy = (float)(oy - cy * sy);
    xf->flip = o->train && o->flip && wh__uniform(&r, 0, 1) < 0.5;
    xf->orig_w = img.w;
    xf->orig_h = img.h;
    wh__render(&img, xf, W, H, image);
    wh_image_free(&img);
    if (o->train && (o->hue > 0 || o->saturation > 1 || o->exposure > 1)) {
        float dhue = (float)wh__uniform(&r, -o->hue, o->hue);
        float sat = (float)wh__rand_scale(&r, o->saturation), expo = (float)wh__rand_scale(&r, o->exposure);
        wh__hsv_jitter(image, W, H, dhue, sat, expo);
    }
    /* boxes: VOC inclusive pixels -> continuous [xmin-1, xmax) -> the canvas */
    int nt = 0;
    for (int i = 0; i < s->n_obj && nt < o->max_boxes; i++) {
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
        truth[nt].x = (float)((x0 + x1) / 2 / W);
        truth[nt].y = (float)((y0 + y1) / 2 / H);
        truth[nt].w = (float)((x1 - x0) / W);
        truth[nt].h = (float)((y1 - y0) / H);
        truth[nt].cls = ob->cls;
        nt++;
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
