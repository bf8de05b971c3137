/* whittle: the synthetic VOC dataset. See synth.h.
 *
 * One image = background (two-colour gradient + stripes) -> objects in
 * order (later ones hide earlier ones) -> clutter -> per-pixel noise -> JPEG.
 * An owner map (H, W) records which object each pixel shows, so an
 * object's hidden share is known exactly: 1 - shown / drawn pixels.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syncfs */
#endif
#include "synth.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fileio.h"
#include "image.h"

#define WH__SYNTH_VERSION 1 /* bump when the same options would draw other pixels */
#define WH__MAX_OBJ 6
#define WH__JPEG_QUALITY 92
#define WH__PI 3.14159265358979323846

/* --------------------------------------------------------------- classes */

typedef enum {
    WH__DISC, WH__SQUARE, WH__TRIANGLE, WH__CROSS, WH__RING,
    WH__DIAMOND, WH__STAR, WH__BAR, WH__HEXAGON, WH__ARROW
} wh__shape;

/* Hues: the first five 72 degrees apart (the default 5 classes are as far
 * apart as they can be), the next five in between; every pair of classes
 * also differs in shape. */
static const struct {
    const char *name;
    wh__shape shape;
    double hue;
} wh__classes[] = {
    {"disc", WH__DISC, 0},         {"square", WH__SQUARE, 72},   {"triangle", WH__TRIANGLE, 144},
    {"cross", WH__CROSS, 216},     {"ring", WH__RING, 288},      {"diamond", WH__DIAMOND, 36},
    {"star", WH__STAR, 108},       {"bar", WH__BAR, 180},        {"hexagon", WH__HEXAGON, 252},
    {"arrow", WH__ARROW, 324},
};
#define WH__NCLASS ((int)(sizeof(wh__classes) / sizeof(wh__classes[0])))

int wh_synth_max_classes(void)
{
    return WH__NCLASS;
}

const char *wh_synth_class_name(int k)
{
    return k >= 0 && k < WH__NCLASS ? wh__classes[k].name : NULL;
}

double wh_synth_class_hue(int k)
{
    return k >= 0 && k < WH__NCLASS ? wh__classes[k].hue : -1.0;
}

void wh_synth_opts_default(wh_synth_opts *o)
{
    o->images = 1000;
    o->classes = 5;
    o->size = 256;
    o->seed = 1;
    o->test_fraction = 0.2;
}

/* ------------------------------------------------------------------- rng */

/* splitmix64: tiny, fast, and good enough for pictures; one stream per
 * image so the result does not depend on the thread schedule. */
typedef struct wh__rng {
    uint64_t s;
} wh__rng;

static uint64_t wh__next(wh__rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static wh__rng wh__stream(uint64_t seed, uint64_t index)
{
    wh__rng a = {seed}, r;
    r.s = wh__next(&a) ^ (index * 0xD1B54A32D192ED03ull);
    wh__next(&r);
    return r;
}

static double wh__u01(wh__rng *r)
{
    return (double)(wh__next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static double wh__unif(wh__rng *r, double a, double b)
{
    return a + (b - a) * wh__u01(r);
}

static int wh__randint(wh__rng *r, int lo, int hi) /* inclusive */
{
    return lo + (int)(wh__u01(r) * (hi - lo + 1));
}

/* ---------------------------------------------------------------- colour */

static void wh__hsv(double h, double s, double v, float rgb[3])
{
    h = fmod(h, 360.0);
    if (h < 0) h += 360.0;
    const double c = v * s, hp = h / 60.0, x = c * (1 - fabs(fmod(hp, 2.0) - 1));
    double r = 0, g = 0, b = 0;
    switch ((int)hp) {
    case 0: r = c, g = x; break;
    case 1: r = x, g = c; break;
    case 2: g = c, b = x; break;
    case 3: g = x, b = c; break;
    case 4: r = x, b = c; break;
    default: r = c, b = x; break;
    }
    const double m = v - c;
    rgb[0] = (float)(r + m);
    rgb[1] = (float)(g + m);
    rgb[2] = (float)(b + m);
}

/* ---------------------------------------------------------------- shapes */

/* Is (u, v) inside the shape? Coordinates are normalised to the placement
 * box, [-1, 1] on both axes, v pointing down. */
static int wh__inside(wh__shape shape, double u, double v, int variant)
{
    const double au = fabs(u), av = fabs(v);
    if (au > 1 || av > 1) return 0;
    switch (shape) {
    case WH__DISC: return u * u + v * v <= 1;
    case WH__SQUARE:
    case WH__BAR: return 1;
    case WH__TRIANGLE: return au <= (v + 1) / 2; /* apex up */
    case WH__CROSS: return au <= 0.34 || av <= 0.34;
    case WH__RING: {
        const double r2 = u * u + v * v;
        return r2 <= 1 && r2 >= 0.55 * 0.55;
    }
    case WH__DIAMOND: return au + av <= 1;
    case WH__HEXAGON: return av <= 0.8660254 && au + av * 0.5773503 <= 1;
    case WH__STAR: {
        /* Five points, outer radius 1, inner 0.42. Within one 72-degree
         * sector the edge runs from the point (radius 1, angle 0) to the
         * notch (radius ri, angle 36 deg); the ray at angle phi meets it at
         * r = ri sin36 / (sin phi + ri sin(36 - phi)). */
        const double ri = 0.42, s36 = 0.5877852522924731;
        const double r = sqrt(u * u + v * v);
        if (r > 1) return 0;
        double phi = atan2(v, u) + WH__PI / 2; /* 0 at the top point */
        phi = fmod(phi + 4 * WH__PI, 2 * WH__PI / 5);
        if (phi > WH__PI / 5) phi = 2 * WH__PI / 5 - phi;
        return r <= ri * s36 / (sin(phi) + ri * sin(WH__PI / 5 - phi));
    }
    case WH__ARROW: {
        double a = u, b = v; /* variant: 0 right, 1 left, 2 down, 3 up */
        if (variant == 1) a = -u;
        if (variant == 2) a = v, b = u;
        if (variant == 3) a = -v, b = u;
        return (a <= 0 && fabs(b) <= 0.35) || (a >= 0 && fabs(b) <= 1 - a);
    }
    }
    return 0;
}

/* ----------------------------------------------------------------- scene */

typedef struct wh__obj {
    int cls;
    double cx, cy, hw, hh; /* placement box: centre and half sides, pixels */
    int x0, y0, x1, y1;    /* tight box of the drawn pixels, 0-based inclusive, clipped */
    long drawn, shown;     /* pixels inside the image: drawn, still showing at the end */
    int truncated, difficult;
} wh__obj;

typedef struct wh__scene {
    wh_image img;
    int *owner; /* (H, W): object index shown there, -1 background or clutter */
    int n_obj;
    wh__obj obj[WH__MAX_OBJ];
} wh__scene;

static wh_status wh__background(wh__scene *sc, wh__rng *r, wh_ctx *ctx)
{
    wh_image *im = &sc->img;
    float c1[3], c2[3];
    wh__hsv(wh__unif(r, 0, 360), wh__unif(r, 0, 0.3), wh__unif(r, 0.25, 0.85), c1);
    wh__hsv(wh__unif(r, 0, 360), wh__unif(r, 0, 0.3), wh__unif(r, 0.25, 0.85), c2);
    const double th = wh__unif(r, 0, 2 * WH__PI), gx = cos(th), gy = sin(th);
    const double diag = sqrt((double)im->w * im->w + (double)im->h * im->h);
    const double amp = wh__unif(r, 0, 0.08), period = wh__unif(r, 6, 40), ph = wh__unif(r, 0, 2 * WH__PI);
    const double so = wh__unif(r, 0, WH__PI), sx = cos(so) * 2 * WH__PI / period,
                 sy = sin(so) * 2 * WH__PI / period;
    /* sin(x*sx + y*sy + ph) = sin(x*sx) cos(y*sy + ph) + cos(x*sx) sin(y*sy + ph):
     * 2(W + H) sin/cos calls instead of W*H (they were a third of the run time). */
    double *sa = malloc(sizeof(double) * 2 * (size_t)im->w);
    if (!sa) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    double *ca = sa + im->w;
    for (int x = 0; x < im->w; x++) {
        sa[x] = sin(x * sx);
        ca[x] = cos(x * sx);
    }
    for (int y = 0; y < im->h; y++) {
        const double sb = sin(y * sy + ph), cb = cos(y * sy + ph);
        for (int x = 0; x < im->w; x++) {
            double t = ((x - im->w / 2.0) * gx + (y - im->h / 2.0) * gy) / diag + 0.5;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            const double stripe = amp * (sa[x] * cb + ca[x] * sb);
            for (int k = 0; k < 3; k++)
                im->data[wh_image_index(im, x, y, k)] = (float)(c1[k] * (1 - t) + c2[k] * t + stripe);
        }
    }
    free(sa);
    return WH_OK;
}

/* Overlap of two placement boxes as a share of each one's area. */
static void wh__overlap(const wh__obj *a, const wh__obj *b, double *fa, double *fb)
{
    const double ix = fmin(a->cx + a->hw, b->cx + b->hw) - fmax(a->cx - a->hw, b->cx - b->hw);
    const double iy = fmin(a->cy + a->hh, b->cy + b->hh) - fmax(a->cy - a->hh, b->cy - b->hh);
    const double inter = ix > 0 && iy > 0 ? ix * iy : 0;
    *fa = inter / (4 * a->hw * a->hh);
    *fb = inter / (4 * b->hw * b->hh);
}

/* Picks a placement that does not bury an earlier object; 0 if none found. */
static int wh__place(wh__scene *sc, wh__rng *r, int cls, wh__obj *o)
{
    const int W = sc->img.w, H = sc->img.h;
    const double side = W < H ? W : H;
    for (int attempt = 0; attempt < 30; attempt++) {
        /* size: geometric mean side, log-uniform in [6%, 60%] of the shorter image side */
        const double s = side * exp(wh__unif(r, log(0.06), log(0.60)));
        double ar = exp(wh__unif(r, -0.22, 0.22)); /* width / height */
        if (wh__classes[cls].shape == WH__BAR) {
            ar = wh__unif(r, 3, 5);
            if (wh__u01(r) < 0.5) ar = 1 / ar;
        }
        double bw = s * sqrt(ar), bh = s / sqrt(ar);
        const double fit = fmin(1.0, fmin(0.9 * W / bw, 0.9 * H / bh));
        bw *= fit;
        bh *= fit;
        o->cls = cls;
        o->hw = bw / 2;
        o->hh = bh / 2;
        /* Up to 20% of the box may fall outside each border: truncation. */
        o->cx = wh__unif(r, 0.3 * bw, W - 0.3 * bw);
        o->cy = wh__unif(r, 0.3 * bh, H - 0.3 * bh);
        int ok = 1;
        for (int i = 0; i < sc->n_obj && ok; i++) {
            double fa, fb;
            wh__overlap(&sc->obj[i], o, &fa, &fb);
            if (fa > 0.65 || fb > 0.65) ok = 0;
        }
        if (ok) return 1;
    }
    return 0;
}

static void wh__draw_object(wh__scene *sc, wh__rng *r, int index)
{
    wh_image *im = &sc->img;
    wh__obj *o = &sc->obj[index];
    const wh__shape shape = wh__classes[o->cls].shape;
    const int variant = wh__randint(r, 0, 3);
    float col[3];
    wh__hsv(wh__classes[o->cls].hue + wh__unif(r, -6, 6), wh__unif(r, 0.6, 1.0), wh__unif(r, 0.55, 1.0), col);
    /* Soft shading across the object so it is not a flat stamp. */
    const double g = wh__unif(r, 0, 0.15), gt = wh__unif(r, 0, 2 * WH__PI), gu = g * cos(gt), gv = g * sin(gt);
    const int X0 = (int)floor(o->cx - o->hw), X1 = (int)ceil(o->cx + o->hw);
    const int Y0 = (int)floor(o->cy - o->hh), Y1 = (int)ceil(o->cy + o->hh);
    o->x0 = im->w, o->y0 = im->h, o->x1 = -1, o->y1 = -1;
    o->drawn = 0;
    o->truncated = 0;
    for (int y = Y0; y <= Y1; y++)
        for (int x = X0; x <= X1; x++) {
            const double u = (x + 0.5 - o->cx) / o->hw, v = (y + 0.5 - o->cy) / o->hh;
            if (!wh__inside(shape, u, v, variant)) continue;
            if (x < 0 || y < 0 || x >= im->w || y >= im->h) {
                o->truncated = 1;
                continue;
            }
            const float shade = (float)(1 + gu * u + gv * v);
            for (int k = 0; k < 3; k++) im->data[wh_image_index(im, x, y, k)] = col[k] * shade;
            sc->owner[(size_t)y * im->w + x] = index;
            o->drawn++;
            if (x < o->x0) o->x0 = x;
            if (x > o->x1) o->x1 = x;
            if (y < o->y0) o->y0 = y;
            if (y > o->y1) o->y1 = y;
        }
}

/* A colour no active class uses: grey-ish, or a hue midway between two
 * neighbouring class hues. */
static void wh__clutter_colour(wh__rng *r, int n_classes, float col[3])
{
    if (wh__u01(r) < 0.4) {
        wh__hsv(wh__unif(r, 0, 360), wh__unif(r, 0, 0.2), wh__unif(r, 0.1, 0.95), col);
        return;
    }
    double hues[WH__NCLASS];
    for (int k = 0; k < n_classes; k++) hues[k] = wh__classes[k].hue;
    for (int i = 1; i < n_classes; i++) /* insertion sort, at most 10 */
        for (int j = i; j > 0 && hues[j] < hues[j - 1]; j--) {
            const double t = hues[j];
            hues[j] = hues[j - 1];
            hues[j - 1] = t;
        }
    const int k = wh__randint(r, 0, n_classes - 1);
    const double next = k + 1 < n_classes ? hues[k + 1] : hues[0] + 360;
    const double gap = next - hues[k];
    wh__hsv(hues[k] + gap / 2 + wh__unif(r, -0.15, 0.15) * gap, wh__unif(r, 0.3, 0.6), wh__unif(r, 0.4, 0.95),
            col);
}

static void wh__paint(wh__scene *sc, int x, int y, const float col[3])
{
    wh_image *im = &sc->img;
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    for (int k = 0; k < 3; k++) im->data[wh_image_index(im, x, y, k)] = col[k];
    sc->owner[(size_t)y * im->w + x] = -1;
}

static void wh__clutter(wh__scene *sc, wh__rng *r, int n_classes)
{
    const int W = sc->img.w, H = sc->img.h;
    const int n_lines = wh__randint(r, 1, 4), n_blobs = wh__randint(r, 0, 4);
    float col[3];
    for (int i = 0; i < n_lines; i++) {
        wh__clutter_colour(r, n_classes, col);
        const double x0 = wh__unif(r, 0, W), y0 = wh__unif(r, 0, H), x1 = wh__unif(r, 0, W), y1 = wh__unif(r, 0, H);
        const int t = wh__randint(r, 1, 3);
        const int steps = (int)(2 * hypot(x1 - x0, y1 - y0)) + 1; /* half-pixel steps */
        for (int s = 0; s <= steps; s++) {
            const double f = (double)s / steps;
            const int px = (int)(x0 + f * (x1 - x0)), py = (int)(y0 + f * (y1 - y0));
            for (int dy = 0; dy < t; dy++)
                for (int dx = 0; dx < t; dx++) wh__paint(sc, px + dx, py + dy, col);
        }
    }
    const double side = W < H ? W : H;
    for (int i = 0; i < n_blobs; i++) {
        wh__clutter_colour(r, n_classes, col);
        const double cx = wh__unif(r, 0, W), cy = wh__unif(r, 0, H);
        /* elongated (at most 0.65:1) so that no blob passes for a disc */
        double rx = side * wh__unif(r, 0.02, 0.07), ry = rx * wh__unif(r, 0.3, 0.65);
        if (wh__u01(r) < 0.5) {
            const double t = rx;
            rx = ry;
            ry = t;
        }
        for (int y = (int)(cy - ry); y <= (int)(cy + ry) + 1; y++)
            for (int x = (int)(cx - rx); x <= (int)(cx + rx) + 1; x++) {
                const double u = (x + 0.5 - cx) / rx, v = (y + 0.5 - cy) / ry;
                if (u * u + v * v <= 1) wh__paint(sc, x, y, col);
            }
    }
}

/* Renders image `index` (0-based) into sc; sc->img and sc->owner are
 * allocated here. */
static wh_status wh__render(const wh_synth_opts *o, int index, wh__scene *sc, wh_ctx *ctx)
{
    memset(sc, 0, sizeof(*sc));
    wh__rng r = wh__stream(o->seed, (uint64_t)index);
    const int W = (int)lround(o->size * wh__unif(&r, 0.75, 1.25));
    const int H = (int)lround(o->size * wh__unif(&r, 0.75, 1.25));
    WH_TRY(wh_image_alloc(&sc->img, W < 16 ? 16 : W, H < 16 ? 16 : H, 3, ctx));
    const size_t npx = (size_t)sc->img.w * sc->img.h;
    sc->owner = malloc(npx * sizeof(int));
    if (!sc->owner) {
        wh_image_free(&sc->img);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < npx; i++) sc->owner[i] = -1;
    if (wh__background(sc, &r, ctx) != WH_OK) {
        free(sc->owner);
        wh_image_free(&sc->img);
        return ctx->status;
    }
    const int want = wh__randint(&r, 1, WH__MAX_OBJ);
    for (int i = 0; i < want; i++) {
        wh__obj ob;
        memset(&ob, 0, sizeof(ob));
        const int cls = wh__randint(&r, 0, o->classes - 1);
        if (!wh__place(sc, &r, cls, &ob)) continue;
        sc->obj[sc->n_obj] = ob;
        wh__draw_object(sc, &r, sc->n_obj);
        if (sc->obj[sc->n_obj].drawn > 0) sc->n_obj++;
    }
    wh__clutter(sc, &r, o->classes);
    for (size_t i = 0; i < npx; i++)
        if (sc->owner[i] >= 0) sc->obj[sc->owner[i]].shown++;
    for (int i = 0; i < sc->n_obj; i++) {
        wh__obj *ob = &sc->obj[i];
        const double gm = sqrt((double)(ob->x1 - ob->x0 + 1) * (ob->y1 - ob->y0 + 1));
        ob->difficult = gm < 12 || ob->shown < 0.4 * ob->drawn;
    }
    const double noise = wh__unif(&r, 0.01, 0.05);
    for (size_t i = 0; i < npx * 3; i++) sc->img.data[i] += (float)wh__unif(&r, -noise, noise);
    return WH_OK;
}

/* ------------------------------------------------------------- writing */

static wh_status wh__write_text(const char *path, const char *text, wh_ctx *ctx)
{
    return wh_file_write_atomic(path, text, strlen(text), ctx);
}

/* Images and annotations: temporary name + rename, as wh_file_write_atomic,
 * but without an fsync per file. On ext4 each fsync waits for a journal
 * commit (~7 ms here: 14 s for the default 2000 files, against 0.3 s for
 * one syncfs of the whole filesystem). The dataset is made durable as a
 * whole instead: wh__sync_all runs before synth.txt says "complete 1", so
 * a crash before that leaves a stamp saying "complete 0" and the next run
 * regenerates. Elsewhere than Linux every file is synced on its own. */
static wh_status wh__write_file(const char *path, const void *data, size_t len, wh_ctx *ctx)
{
#if defined(__linux__)
    const size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    const int fd = mkstemp(tmp);
    if (fd < 0) {
        wh_status st = wh_error(ctx, WH_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                                strerror(errno));
        free(tmp);
        return st;
    }
    const char *p = data;
    size_t left = len;
    int ok = 1;
    while (left > 0 && ok) {
        const ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) ok = 0;
        else p += w, left -= (size_t)w;
    }
    if (ok && fchmod(fd, 0644) != 0) ok = 0; /* mkstemp makes 0600 */
    if (close(fd) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    wh_status st = WH_OK;
    if (!ok) {
        st = wh_error(ctx, WH_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return st;
#else
    return wh_file_write_atomic(path, data, len, ctx);
#endif
}

static wh_status wh__sync_all(const char *dir, wh_ctx *ctx)
{
#if defined(__linux__)
    const int fd = open(dir, O_RDONLY);
    if (fd < 0 || syncfs(fd) != 0) {
        wh_status st = wh_error(ctx, WH_ERR_IO, "%s: cannot flush the written files to disk: %s", dir,
                                strerror(errno));
        if (fd >= 0) close(fd);
        return st;
    }
    close(fd);
#else
    (void)dir;
    (void)ctx;
#endif
    return WH_OK;
}

/* A growing string buffer; oom is sticky so callers check once. */
typedef struct wh__buf {
    char *p;
    size_t len, cap;
    int oom;
} wh__buf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void wh__bprintf(wh__buf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap <= b->len + (size_t)n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static char *wh__path(const char *dir, const char *sub, const char *name)
{
    const size_t n = strlen(dir) + strlen(sub) + strlen(name) + 3;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s%s", dir, sub, *sub ? "/" : "", name);
    return p;
}

static wh_status wh__write_image(const wh_synth_opts *o, const char *dir, int index, long counts[3],
                                 wh_ctx *ctx)
{
    wh__scene sc;
    WH_TRY(wh__render(o, index, &sc, ctx));
    char id[32], name[48];
    snprintf(id, sizeof(id), "%06d", index + 1);
    wh__buf x = {0};
    wh__bprintf(&x,
                "<annotation>\n\t<folder>whittle-synth</folder>\n\t<filename>%s.jpg</filename>\n"
                "\t<source>\n\t\t<database>whittle synthetic shapes</database>\n\t</source>\n"
                "\t<size>\n\t\t<width>%d</width>\n\t\t<height>%d</height>\n\t\t<depth>3</depth>\n"
                "\t</size>\n\t<segmented>0</segmented>\n",
                id, sc.img.w, sc.img.h);
    for (int i = 0; i < sc.n_obj; i++) {
        const wh__obj *ob = &sc.obj[i];
        /* VOC boxes are 1-based and inclusive: pixel column 0 is xmin = 1. */
        wh__bprintf(&x,
                    "\t<object>\n\t\t<name>%s</name>\n\t\t<pose>Unspecified</pose>\n"
                    "\t\t<truncated>%d</truncated>\n\t\t<difficult>%d</difficult>\n\t\t<bndbox>\n"
                    "\t\t\t<xmin>%d</xmin>\n\t\t\t<ymin>%d</ymin>\n\t\t\t<xmax>%d</xmax>\n"
                    "\t\t\t<ymax>%d</ymax>\n\t\t</bndbox>\n\t</object>\n",
                    wh__classes[ob->cls].name, ob->truncated, ob->difficult, ob->x0 + 1, ob->y0 + 1,
                    ob->x1 + 1, ob->y1 + 1);
        counts[0]++;
        counts[1] += ob->difficult;
        counts[2] += ob->truncated;
    }
    wh__bprintf(&x, "</annotation>\n");
    wh_status st = WH_OK;
    unsigned char *jpg = NULL;
    size_t jlen = 0;
    char *jpath = NULL, *xpath = NULL;
    if (x.oom) {
        st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = wh_image_encode_jpeg(&sc.img, WH__JPEG_QUALITY, &jpg, &jlen, ctx)) != WH_OK) goto done;
    snprintf(name, sizeof(name), "%s.jpg", id);
    jpath = wh__path(dir, "JPEGImages", name);
    snprintf(name, sizeof(name), "%s.xml", id);
    xpath = wh__path(dir, "Annotations", name);
    if (!jpath || !xpath) {
        st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = wh__write_file(jpath, jpg, jlen, ctx)) != WH_OK) goto done;
    st = wh__write_file(xpath, x.p, x.len, ctx);
done:
    free(jpg);
    free(jpath);
    free(xpath);
    free(x.p);
    free(sc.owner);
    wh_image_free(&sc.img);
    return st;
}

/* ------------------------------------------------------------ the folder */

static wh_status wh__mkdirs(const char *path, wh_ctx *ctx)
{
    char *p = strdup(path);
    if (!p) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    wh_status st = WH_OK;
    for (char *s = p + 1;; s++) {
        const char c = *s;
        if (c != '/' && c != 0) continue;
        *s = 0;
        struct stat sb;
        if (mkdir(p, 0755) != 0 && (errno != EEXIST || stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
            st = wh_error(ctx, WH_ERR_IO, "%s: cannot create the folder: %s", p,
                          errno == EEXIST ? "a file of that name exists" : strerror(errno));
            break;
        }
        *s = c;
        if (!c) break;
    }
    free(p);
    return st;
}

/* What synth.txt holds: the options, and whether the run finished. */
typedef struct wh__stamp {
    int version, complete;
    wh_synth_opts o;
    wh_synth_stats st;
} wh__stamp;

static char *wh__stamp_text(const wh__stamp *s)
{
    wh__buf b = {0};
    wh__bprintf(&b,
                "# whittle synthetic dataset (whittle mkdata); regenerate with the same options\n"
                "version %d\nimages %d\nclasses %d\nsize %d\nseed %llu\ntest_fraction %.17g\n"
                "complete %d\ntrain %d\ntest %d\nobjects %ld\ndifficult %ld\ntruncated %ld\n",
                s->version, s->o.images, s->o.classes, s->o.size, (unsigned long long)s->o.seed,
                s->o.test_fraction, s->complete, s->st.train, s->st.test, s->st.objects, s->st.difficult,
                s->st.truncated);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* A stamp's whole number: decimal, nothing after it, within [0, hi]. */
static int wh__stamp_num(const char *v, long long hi, long long *out)
{
    char *end;
    errno = 0;
    const long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno || x < 0 || x > hi) return 0;
    *out = x;
    return 1;
}

/* Returns 1 if path is a readable stamp (filled into *s), 0 otherwise: a
 * value that is not a whole number in range makes it unreadable (the
 * folder is then refused, not overwritten). */
static int wh__stamp_read(const char *path, wh__stamp *s)
{
    memset(s, 0, sizeof(*s));
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256], key[64];
    int seen = 0, bad = 0;
    while (fgets(line, sizeof(line), f)) {
        char val[128];
        if (line[0] == '#' || sscanf(line, "%63s %127s", key, val) != 2) continue;
        long long x = 0;
        if (!strcmp(key, "seed")) {
            char *end;
            errno = 0;
            s->o.seed = strtoull(val, &end, 10);
            bad |= end == val || *end || errno || val[0] == '-';
            seen |= 16;
            continue;
        }
        if (!strcmp(key, "test_fraction")) {
            char *end;
            s->o.test_fraction = strtod(val, &end);
            bad |= end == val || *end || !(s->o.test_fraction >= 0 && s->o.test_fraction <= 1);
            seen |= 32;
            continue;
        }
        static const char *const ints[] = {"version", "images", "classes", "size",      "complete",
                                           "train",   "test",   "objects", "difficult", "truncated"};
        int k = 0;
        while (k < 10 && strcmp(key, ints[k])) k++;
        if (k == 10) continue;
        if (!wh__stamp_num(val, k < 7 ? INT_MAX : LONG_MAX, &x)) {
            bad = 1;
            continue;
        }
        switch (k) {
        case 0: s->version = (int)x, seen |= 1; break;
        case 1: s->o.images = (int)x, seen |= 2; break;
        case 2: s->o.classes = (int)x, seen |= 4; break;
        case 3: s->o.size = (int)x, seen |= 8; break;
        case 4: s->complete = (int)x; break;
        case 5: s->st.train = (int)x; break;
        case 6: s->st.test = (int)x; break;
        case 7: s->st.objects = (long)x; break;
        case 8: s->st.difficult = (long)x; break;
        default: s->st.truncated = (long)x; break;
        }
    }
    fclose(f);
    return seen == 63 && !bad;
}

static int wh__same_opts(const wh_synth_opts *a, const wh_synth_opts *b)
{
    return a->images == b->images && a->classes == b->classes && a->size == b->size && a->seed == b->seed &&
           a->test_fraction == b->test_fraction;
}

static int wh__exists(const char *dir, const char *sub, const char *name)
{
    char *p = wh__path(dir, sub, name);
    struct stat sb;
    const int ok = p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
    free(p);
    return ok;
}

static int wh__complete(const char *dir, const wh_synth_opts *o)
{
    static const char *const lists[] = {"train.txt", "trainval.txt", "test.txt"};
    for (int i = 0; i < 3; i++)
        if (!wh__exists(dir, "ImageSets/Main", lists[i])) return 0;
    if (!wh__exists(dir, "", "classes.txt")) return 0;
    for (int i = 0; i < o->images; i++) {
        char name[48];
        snprintf(name, sizeof(name), "%06d.jpg", i + 1);
        if (!wh__exists(dir, "JPEGImages", name)) return 0;
        snprintf(name, sizeof(name), "%06d.xml", i + 1);
        if (!wh__exists(dir, "Annotations", name)) return 0;
    }
    return 1;
}

/* Decides what to do with dir: 0 generate, 1 reuse (complete, same
 * options; *old filled), or an error. */
static wh_status wh__check_dir(const char *dir, const wh_synth_opts *o, int *reuse, wh__stamp *old,
                               wh_ctx *ctx)
{
    *reuse = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return WH_OK;
        return wh_error(ctx, WH_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    }
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
    closedir(d);
    if (!entries) return WH_OK;
    char *sp = wh__path(dir, "", "synth.txt");
    if (!sp) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    const int have = wh__stamp_read(sp, old);
    free(sp);
    if (!have)
        return wh_error(ctx, WH_ERR_IO,
                        "%s: the folder is not empty and holds no synthetic dataset (no valid synth.txt); "
                        "refusing to write there: choose a new or empty folder",
                        dir);
    if (old->version != WH__SYNTH_VERSION || !wh__same_opts(&old->o, o))
        return wh_error(ctx, WH_ERR_IO,
                        "%s: holds a synthetic dataset made with other options or generator version "
                        "(version %d: images %d, classes %d, size %d, seed %llu, test_fraction %g); "
                        "remove it or choose another folder",
                        dir, old->version, old->o.images, old->o.classes, old->o.size,
                        (unsigned long long)old->o.seed, old->o.test_fraction);
    *reuse = old->complete && wh__complete(dir, o);
    return WH_OK;
}

static wh_status wh__write_lists(const char *dir, const wh_synth_opts *o, wh_synth_stats *st, wh_ctx *ctx)
{
    wh__rng r = wh__stream(o->seed, UINT64_MAX); /* not an image index */
    const int n = o->images;
    int *perm = malloc(sizeof(int) * (size_t)n);
    char *is_test = calloc((size_t)n, 1);
    wh__buf tr = {0}, te = {0};
    wh_status s = WH_OK;
    if (!perm || !is_test) {
        s = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        const int j = wh__randint(&r, 0, i);
        const int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    st->test = (int)floor(n * o->test_fraction + 0.5);
    st->train = n - st->test;
    for (int i = 0; i < st->test; i++) is_test[perm[i]] = 1;
    for (int i = 0; i < n; i++) wh__bprintf(is_test[i] ? &te : &tr, "%06d\n", i + 1);
    if (tr.oom || te.oom) {
        s = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    static const char *const names[] = {"train.txt", "trainval.txt", "test.txt"};
    for (int i = 0; i < 3 && s == WH_OK; i++) {
        char *p = wh__path(dir, "ImageSets/Main", names[i]);
        if (!p) {
            s = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
            break;
        }
        const wh__buf *b = i < 2 ? &tr : &te;
        s = wh_file_write_atomic(p, b->p, b->len, ctx);
        free(p);
    }
done:
    free(perm);
    free(is_test);
    free(tr.p);
    free(te.p);
    return s;
}

static wh_status wh__write_stamp(const char *dir, const wh__stamp *s, wh_ctx *ctx)
{
    char *text = wh__stamp_text(s), *p = wh__path(dir, "", "synth.txt");
    wh_status st = text && p ? wh__write_text(p, text, ctx) : wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    free(text);
    free(p);
    return st;
}

wh_status wh_synth_generate_stats(const wh_synth_opts *o, const char *dir, wh_synth_stats *out,
                                  wh_ctx *ctx)
{
    if (!o || !dir || !*dir) return wh_error(ctx, WH_ERR_ARG, "synth: no options or folder given");
    if (o->classes < 1 || o->classes > WH__NCLASS) {
        char known[256] = "";
        for (int k = 0; k < WH__NCLASS; k++) {
            strcat(known, k ? ", " : "");
            strcat(known, wh__classes[k].name);
        }
        return wh_error(ctx, WH_ERR_ARG, "synth: classes %d is out of range 1..%d (the classes: %s)", o->classes,
                        WH__NCLASS, known);
    }
    if (o->images < 1 || o->images > 999999)
        return wh_error(ctx, WH_ERR_ARG, "synth: images %d is out of range 1..999999", o->images);
    if (o->size < 32 || o->size > 4096)
        return wh_error(ctx, WH_ERR_ARG, "synth: size %d is out of range 32..4096", o->size);
    if (!(o->test_fraction >= 0 && o->test_fraction < 1) ||
        o->images - (int)floor(o->images * o->test_fraction + 0.5) < 1)
        return wh_error(ctx, WH_ERR_ARG,
                        "synth: test_fraction %g must be in [0, 1) and leave at least one training image",
                        o->test_fraction);
    int reuse;
    wh__stamp stamp;
    WH_TRY(wh__check_dir(dir, o, &reuse, &stamp, ctx));
    if (reuse) {
        stamp.st.images = o->images;
        stamp.st.reused = 1;
        if (out) *out = stamp.st;
        return WH_OK;
    }
    memset(&stamp, 0, sizeof(stamp));
    stamp.version = WH__SYNTH_VERSION;
    stamp.o = *o;
    static const char *const subs[] = {"JPEGImages", "Annotations", "ImageSets/Main"};
    WH_TRY(wh__mkdirs(dir, ctx));
    for (int i = 0; i < 3; i++) {
        char *p = wh__path(dir, "", subs[i]);
        if (!p) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        wh_status s = wh__mkdirs(p, ctx);
        free(p);
        WH_TRY(s);
    }
    /* The stamp goes first (complete 0), so an interrupted run leaves a
     * folder we recognise as ours and may regenerate. */
    WH_TRY(wh__write_stamp(dir, &stamp, ctx));
    wh__buf cl = {0};
    for (int k = 0; k < o->classes; k++) wh__bprintf(&cl, "%s\n", wh__classes[k].name);
    char *cp = wh__path(dir, "", "classes.txt");
    wh_status s = cl.oom || !cp ? wh_error(ctx, WH_ERR_NOMEM, "out of memory")
                                : wh_file_write_atomic(cp, cl.p, cl.len, ctx);
    free(cl.p);
    free(cp);
    WH_TRY(s);

    /* Images in parallel; each keeps its own status and message, and the
     * first failing image (lowest index) is the one reported. */
    long objects = 0, difficult = 0, truncated = 0;
    int fail_index = -1;
    wh_ctx *fail = calloc(1, sizeof(*fail));
    if (!fail) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
#pragma omp parallel for schedule(dynamic, 4) reduction(+ : objects, difficult, truncated)
    for (int i = 0; i < o->images; i++) {
        wh_ctx local; /* wh_ctx is not shared between threads */
        wh_ctx_init(&local);
        long c[3] = {0, 0, 0};
        const wh_status si = wh__write_image(o, dir, i, c, &local);
        objects += c[0];
        difficult += c[1];
        truncated += c[2];
        if (si != WH_OK) {
#pragma omp critical(wh__synth_fail)
            if (fail_index < 0 || i < fail_index) {
                fail_index = i;
                *fail = local;
            }
        }
    }
    if (fail_index >= 0) {
        s = wh_error(ctx, fail->status, "%s", fail->msg);
        free(fail);
        return s;
    }
    free(fail);
    stamp.st.images = o->images;
    stamp.st.objects = objects;
    stamp.st.difficult = difficult;
    stamp.st.truncated = truncated;
    WH_TRY(wh__write_lists(dir, o, &stamp.st, ctx));
    WH_TRY(wh__sync_all(dir, ctx));
    stamp.complete = 1;
    WH_TRY(wh__write_stamp(dir, &stamp, ctx));
    if (out) *out = stamp.st;
    return WH_OK;
}

wh_status wh_synth_generate(const wh_synth_opts *o, const char *dir, wh_ctx *ctx)
{
    return wh_synth_generate_stats(o, dir, NULL, ctx);
}
