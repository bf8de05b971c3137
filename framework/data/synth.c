/* whittle: the synthetic VOC dataset. See synth.h.
 *
 * One easy image = background (two-colour gradient + stripes) -> objects in
 * order (later ones hide earlier ones) -> clutter -> per-pixel noise -> JPEG.
 * One hard image = background (colour field, texture at two scales,
 * straight-edged regions) -> distractors behind -> objects -> distractors in
 * front -> the camera (exposure, cast, vignetting, blur, noise) -> JPEG at
 * the image's own quality.
 * An owner map (H, W) records which object each pixel shows, so an
 * object's hidden share is known exactly: 1 - shown / drawn pixels (hard:
 * 1 - shown / the whole shape's pixels, outside the image included).
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

#include "framework/core/fileio.h"
#include "image.h"

#define WH__SYNTH_VERSION 1 /* bump when the same options would draw other pixels */
#define WH__MAX_OBJ 6      /* easy: 1..6 objects an image */
#define WH__HARD_MAX_OBJ 8 /* hard: 1..8 */
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
    o->preset = WH_SYNTH_EASY;
}

/* The hard preset's defaults: 2000 training and 500 test images of the
 * size detectors are usually trained at (416), 6 classes as in the issue. */
void wh_synth_opts_preset(wh_synth_opts *o, int preset)
{
    wh_synth_opts_default(o);
    o->preset = preset;
    if (preset == WH_SYNTH_HARD) {
        o->images = 2500;
        o->classes = 6;
        o->size = 416;
    }
}

static const char *const wh__preset_names[] = {"easy", "hard"};
#define WH__NPRESET ((int)(sizeof(wh__preset_names) / sizeof(wh__preset_names[0])))
_Static_assert(WH__NPRESET == WH_SYNTH_HARD + 1, "one name per wh_synth_preset");

const char *wh_synth_preset_name(int preset)
{
    return preset >= 0 && preset < WH__NPRESET ? wh__preset_names[preset] : NULL;
}

int wh_synth_preset_parse(const char *name)
{
    for (int i = 0; name && i < WH__NPRESET; i++)
        if (!strcmp(name, wh__preset_names[i])) return i;
    return -1;
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
    long area;             /* hard: pixels of the whole shape, inside the image or not */
    int truncated, difficult;
} wh__obj;

typedef struct wh__scene {
    wh_image img;
    int *owner; /* (H, W): object index shown there, -1 background or clutter */
    int n_obj;
    int quality; /* JPEG quality 1..100 */
    wh__obj obj[WH__HARD_MAX_OBJ > WH__MAX_OBJ ? WH__HARD_MAX_OBJ : WH__MAX_OBJ];
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

/* Renders image `index` (0-based) of the easy preset into sc; sc->img and
 * sc->owner are allocated here. */
static wh_status wh__render_easy(const wh_synth_opts *o, int index, wh__scene *sc, wh_ctx *ctx)
{
    memset(sc, 0, sizeof(*sc));
    sc->quality = WH__JPEG_QUALITY;
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

/* ------------------------------------------------------- the hard preset */

/* Everything drawn in a hard image (objects and distractors alike) is a
 * primitive: a shape from the table in its own frame (centre, half sides,
 * rotation), perhaps with a piece cut away, painted with a fill. Objects
 * and distractors draw their colour, fill and size from the same
 * distributions, so only the silhouette tells them (and the classes) apart. */

#define WH__HARD_MIN_SIDE 12.0    /* px: the smallest object's geometric mean side */
#define WH__HARD_MAX_FRAC 0.60    /* the largest: share of the shorter image side */
#define WH__HARD_FOREIGN_MIN 20.0 /* px: the smallest non-class shape (below it a hexagon is a disc) */
#define WH__HARD_CUT_MIN 28.0     /* px: the smallest cut class shape (below it the cut blurs away) */
#define WH__HARD_TILT 10.0        /* degrees either way: square and diamond stay 25 degrees apart */
#define WH__HARD_OUTSIDE 0.45     /* share of an object's box that may fall outside the image */
#define WH__HARD_VISIBLE 0.50     /* difficult below this visible share of the whole shape, */
#define WH__HARD_BLURRED 1.4      /* or under 16 px in an image blurred more than this (sigma, px) */
#define WH__HARD_BLOCKY 45        /* or JPEG quality under this, */
#define WH__HARD_CONTRAST 0.12    /* or under this RGB distance from the background under it */

typedef enum { WH__CUT_NONE, WH__CUT_BITE, WH__CUT_QUADRANT } wh__cut;

typedef struct wh__prim {
    wh__shape shape;
    int variant;           /* the arrow's direction */
    double cx, cy, hw, hh; /* centre and half sides of the shape's frame, pixels */
    double c, s;           /* the frame's rotation: cos, sin */
    wh__cut cut;
    double bu, bv, br;     /* bite: centre and radius, in the frame's [-1, 1] units */
    double qc, qs;         /* quadrant cut: the removed quadrant's axes */
} wh__prim;

typedef enum {
    WH__FILL_FLAT, WH__FILL_STRIPES, WH__FILL_CHECKER, WH__FILL_SPECKLE, WH__FILL_RADIAL, WH__NFILL
} wh__fill_kind;

typedef struct wh__fill {
    wh__fill_kind kind;
    float col[3], col2[3]; /* main and second tone */
    double gu, gv;         /* shading slope across the frame */
    double fc, fs, period; /* stripes and checks: direction and period, pixels */
    uint64_t salt;         /* speckle: per-pixel hash */
    double amp;            /* speckle amplitude */
} wh__fill;

/* What painting a primitive covered. */
typedef struct wh__cover {
    long area, drawn; /* pixels of the whole shape; of those inside the image */
    int x0, y0, x1, y1, truncated;
} wh__cover;

/* Objects' and distractors' colours: any hue, saturation and most values.
 * Backgrounds are greyer but overlap them, and both average ~0.43 per
 * channel (V (1 - S/2) over the hue circle), so not even a box's mean
 * colour, which mixes object and background in shape-dependent shares,
 * tells the classes apart (SynthHard.ColourDoesNotTellTheClass). */
static void wh__hard_colour(wh__rng *r, float col[3])
{
    wh__hsv(wh__unif(r, 0, 360), wh__u01(r), wh__unif(r, 0.15, 1.0), col);
}

static void wh__bg_colour(wh__rng *r, float col[3])
{
    wh__hsv(wh__unif(r, 0, 360), wh__unif(r, 0, 0.7), wh__unif(r, 0.12, 0.92), col);
}

/* The inverse of wh__hsv: hue in degrees [0, 360), saturation, value. */
static void wh__rgb_to_hsv(const float rgb[3], double *h, double *s, double *v)
{
    const double mx = fmax(rgb[0], fmax(rgb[1], rgb[2])), mn = fmin(rgb[0], fmin(rgb[1], rgb[2])), d = mx - mn;
    *v = mx;
    *s = mx > 0 ? d / mx : 0;
    *h = 0;
    if (d <= 0) return;
    if (mx == rgb[0]) *h = 60 * fmod((rgb[1] - rgb[2]) / d + 6, 6.0);
    else if (mx == rgb[1]) *h = 60 * ((rgb[2] - rgb[0]) / d + 2);
    else *h = 60 * ((rgb[0] - rgb[1]) / d + 4);
}

static double wh__hash01(uint64_t salt, int x, int y)
{
    wh__rng t = {salt ^ ((uint64_t)(uint32_t)y << 32 | (uint32_t)x)};
    return wh__u01(&t);
}

static void wh__prim_frame(wh__prim *p, double angle)
{
    p->c = cos(angle);
    p->s = sin(angle);
}

static int wh__prim_inside(const wh__prim *p, double u, double v)
{
    if (!wh__inside(p->shape, u, v, p->variant)) return 0;
    if (p->cut == WH__CUT_BITE) return (u - p->bu) * (u - p->bu) + (v - p->bv) * (v - p->bv) > p->br * p->br;
    /* a quadrant reaching 0.15 past the centre: a cross loses two arms, not half of each */
    if (p->cut == WH__CUT_QUADRANT) return !(p->qc * u + p->qs * v > -0.15 && -p->qs * u + p->qc * v > -0.15);
    return 1;
}

/* Share of the uncut shape that the cut removes, on a 32 x 32 grid. */
static double wh__cut_share(const wh__prim *p)
{
    wh__prim whole = *p;
    whole.cut = WH__CUT_NONE;
    int in = 0, kept = 0;
    for (int j = 0; j < 32; j++)
        for (int i = 0; i < 32; i++) {
            const double u = (i + 0.5) / 16 - 1, v = (j + 0.5) / 16 - 1;
            if (!wh__prim_inside(&whole, u, v)) continue;
            in++;
            kept += wh__prim_inside(p, u, v);
        }
    return in ? 1.0 - (double)kept / in : 0;
}

/* The pixel range a primitive may touch (its rotated frame's bounds). */
static void wh__prim_bounds(const wh__prim *p, int *X0, int *Y0, int *X1, int *Y1)
{
    const double ex = fabs(p->c) * p->hw + fabs(p->s) * p->hh, ey = fabs(p->s) * p->hw + fabs(p->c) * p->hh;
    *X0 = (int)floor(p->cx - ex), *X1 = (int)ceil(p->cx + ex);
    *Y0 = (int)floor(p->cy - ey), *Y1 = (int)ceil(p->cy + ey);
}

/* Mean colour of the image over the primitive's bounds (clipped); 0 if none. */
static int wh__under(const wh_image *im, const wh__prim *p, double mean[3])
{
    int X0, Y0, X1, Y1;
    wh__prim_bounds(p, &X0, &Y0, &X1, &Y1);
    X0 = X0 < 0 ? 0 : X0, Y0 = Y0 < 0 ? 0 : Y0;
    X1 = X1 >= im->w ? im->w - 1 : X1, Y1 = Y1 >= im->h ? im->h - 1 : Y1;
    if (X0 > X1 || Y0 > Y1) return 0;
    for (int k = 0; k < 3; k++) {
        double sum = 0;
        for (int y = Y0; y <= Y1; y++) {
            const float *row = im->data + wh_image_index(im, 0, y, k);
            for (int x = X0; x <= X1; x++) sum += row[x];
        }
        mean[k] = sum / ((double)(X1 - X0 + 1) * (Y1 - Y0 + 1));
    }
    return 1;
}

/* Draws a fill for p: colour up to 8 times until it stands 0.2 (RGB
 * distance) off what lies under it, keeping the best; returns that
 * distance. Objects and distractors both come through here, so neither is
 * the more visible one. */
static double wh__hard_fill(wh__rng *r, const wh_image *im, const wh__prim *p, wh__fill *f)
{
    double under[3], best = -1;
    const int have = wh__under(im, p, under);
    for (int t = 0; t < 8; t++) {
        float col[3];
        wh__hard_colour(r, col);
        const double d = have ? sqrt((col[0] - under[0]) * (col[0] - under[0]) +
                                     (col[1] - under[1]) * (col[1] - under[1]) +
                                     (col[2] - under[2]) * (col[2] - under[2]))
                              : 1.0;
        if (d > best) {
            best = d;
            memcpy(f->col, col, sizeof(col));
        }
        if (best >= 0.2) break;
    }
    f->kind = (wh__fill_kind)wh__randint(r, 0, WH__NFILL - 1);
    /* the second tone: the same colour, lighter or darker and a little turned */
    double h, s, v;
    wh__rgb_to_hsv(f->col, &h, &s, &v);
    const double dv = wh__unif(r, 0.45, 0.8);
    v = wh__u01(r) < 0.5 ? v * dv : fmin(1.0, v / dv);
    wh__hsv(h + wh__unif(r, -40, 40), s * wh__unif(r, 0.5, 1.0), v, f->col2);
    const double g = wh__unif(r, 0, 0.25), gt = wh__unif(r, 0, 2 * WH__PI);
    f->gu = g * cos(gt), f->gv = g * sin(gt);
    const double ft = wh__unif(r, 0, WH__PI);
    f->fc = cos(ft), f->fs = sin(ft);
    f->period = wh__unif(r, 3, 14);
    f->salt = wh__next(r);
    f->amp = wh__unif(r, 0.08, 0.25);
    return best;
}

static void wh__fill_at(const wh__fill *f, double u, double v, int x, int y, float out[3])
{
    const float shade = (float)(1 + f->gu * u + f->gv * v);
    const float *c = f->col;
    float mix = 0;
    switch (f->kind) {
    case WH__FILL_FLAT: break;
    case WH__FILL_STRIPES: {
        const double t = (x * f->fc + y * f->fs) / f->period;
        if (t - floor(t) < 0.5) c = f->col2;
        break;
    }
    case WH__FILL_CHECKER: {
        const double a = (x * f->fc + y * f->fs) / f->period, b = (-x * f->fs + y * f->fc) / f->period;
        if (((long)floor(a) + (long)floor(b)) & 1) c = f->col2;
        break;
    }
    case WH__FILL_SPECKLE: {
        const float n = (float)(f->amp * (2 * wh__hash01(f->salt, x, y) - 1));
        for (int k = 0; k < 3; k++) out[k] = c[k] * shade + n;
        return;
    }
    case WH__FILL_RADIAL: mix = (float)fmin(1.0, sqrt(u * u + v * v)); break;
    case WH__NFILL: break;
    }
    for (int k = 0; k < 3; k++) out[k] = (c[k] * (1 - mix) + f->col2[k] * mix) * shade;
}

/* Paints p with f; owner >= 0 marks an object's pixels, -1 a distractor's. */
static void wh__paint_prim(wh__scene *sc, const wh__prim *p, const wh__fill *f, int owner, wh__cover *cv)
{
    wh_image *im = &sc->img;
    int X0, Y0, X1, Y1;
    wh__prim_bounds(p, &X0, &Y0, &X1, &Y1);
    cv->area = cv->drawn = 0;
    cv->x0 = im->w, cv->y0 = im->h, cv->x1 = -1, cv->y1 = -1;
    cv->truncated = 0;
    for (int y = Y0; y <= Y1; y++)
        for (int x = X0; x <= X1; x++) {
            const double dx = x + 0.5 - p->cx, dy = y + 0.5 - p->cy;
            const double u = (p->c * dx + p->s * dy) / p->hw, v = (-p->s * dx + p->c * dy) / p->hh;
            if (!wh__prim_inside(p, u, v)) continue;
            cv->area++;
            if (x < 0 || y < 0 || x >= im->w || y >= im->h) {
                cv->truncated = 1;
                continue;
            }
            float col[3];
            wh__fill_at(f, u, v, x, y, col);
            for (int k = 0; k < 3; k++) im->data[wh_image_index(im, x, y, k)] = col[k];
            sc->owner[(size_t)y * im->w + x] = owner;
            cv->drawn++;
            if (x < cv->x0) cv->x0 = x;
            if (x > cv->x1) cv->x1 = x;
            if (y < cv->y0) cv->y0 = y;
            if (y > cv->y1) cv->y1 = y;
        }
}

/* Adds (or, for the first layer, writes) a bilinearly interpolated grid of
 * nc (1: the same to all channels, or 3) values per node, nodes `cell`
 * pixels apart: nodes (gh, gw, nc) with gw = W / cell + 2, gh = H / cell + 2. */
static wh_status wh__grid_layer(wh_image *im, const float *nodes, int nc, double cell, int add, wh_ctx *ctx)
{
    const int gw = (int)(im->w / cell) + 2;
    int *ix = malloc(sizeof(int) * (size_t)im->w);
    float *tx = malloc(sizeof(float) * (size_t)im->w);
    if (!ix || !tx) {
        free(ix);
        free(tx);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    for (int x = 0; x < im->w; x++) {
        const double fx = x / cell;
        ix[x] = (int)fx;
        tx[x] = (float)(fx - ix[x]);
    }
    for (int y = 0; y < im->h; y++) {
        const double fy = y / cell;
        const int iy = (int)fy;
        const float ty = (float)(fy - iy);
        for (int k = 0; k < 3; k++) {
            const int kk = nc == 3 ? k : 0;
            const float *n0 = nodes + (size_t)iy * gw * nc + kk, *n1 = n0 + (size_t)gw * nc;
            float *row = im->data + wh_image_index(im, 0, y, k);
            for (int x = 0; x < im->w; x++) {
                const int i = ix[x] * nc;
                const float a = n0[i] + (n0[i + nc] - n0[i]) * tx[x];
                const float b = n1[i] + (n1[i + nc] - n1[i]) * tx[x];
                const float val = a + (b - a) * ty;
                row[x] = add ? row[x] + val : val;
            }
        }
    }
    free(ix);
    free(tx);
    return WH_OK;
}

/* One grid layer with nodes drawn here: colours (nc 3) or +-amp (nc 1). */
static wh_status wh__noise_layer(wh_image *im, wh__rng *r, double cell, int nc, double amp, wh_ctx *ctx)
{
    const size_t gw = (size_t)(im->w / cell) + 2, gh = (size_t)(im->h / cell) + 2;
    float *nodes = malloc(sizeof(float) * gw * gh * (size_t)nc);
    if (!nodes) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < gw * gh; i++) {
        if (nc == 3) wh__bg_colour(r, nodes + 3 * i);
        else nodes[i] = (float)wh__unif(r, -amp, amp);
    }
    const wh_status st = wh__grid_layer(im, nodes, nc, cell, nc == 1, ctx);
    free(nodes);
    return st;
}

/* A cluttered background: a coarse field of colours (regions of a scene),
 * luminance texture at a middle and a fine scale (surfaces), and 0..3
 * straight-edged regions, some striped (walls, tables, blinds): edges and
 * texture everywhere, so neither means "object". */
static wh_status wh__hard_background(wh__scene *sc, wh__rng *r, wh_ctx *ctx)
{
    wh_image *im = &sc->img;
    const int W = im->w, H = im->h;
    const double side = W < H ? W : H;
    WH_TRY(wh__noise_layer(im, r, side * wh__unif(r, 0.15, 0.6), 3, 0, ctx));
    WH_TRY(wh__noise_layer(im, r, wh__unif(r, 6, 24), 1, wh__unif(r, 0.02, 0.12), ctx));
    WH_TRY(wh__noise_layer(im, r, wh__unif(r, 1.5, 4), 1, wh__unif(r, 0, 0.08), ctx));
    const int regions = wh__randint(r, 0, 3);
    for (int i = 0; i < regions; i++) {
        float col[3];
        wh__bg_colour(r, col);
        const double px = wh__unif(r, 0, W), py = wh__unif(r, 0, H), th = wh__unif(r, 0, 2 * WH__PI);
        const double nx = cos(th), ny = sin(th), w = wh__unif(r, 0.25, 0.7);
        const int striped = wh__u01(r) < 0.5;
        const double so = wh__unif(r, 0, WH__PI), sp = wh__unif(r, 4, 30), sa = wh__unif(r, 0.03, 0.12);
        const double sx = cos(so) / sp, sy = sin(so) / sp;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                if ((x - px) * nx + (y - py) * ny <= 0) continue;
                double add = 0;
                if (striped) {
                    const double t = x * sx + y * sy;
                    add = t - floor(t) < 0.5 ? sa : -sa;
                }
                for (int k = 0; k < 3; k++) {
                    float *d = &im->data[wh_image_index(im, x, y, k)];
                    *d = (float)(*d * (1 - w) + col[k] * w + add);
                }
            }
    }
    return WH_OK;
}

/* A primitive's size and frame: the geometric mean side log-uniform from
 * min_px (at most a tenth of the shorter side) to WH__HARD_MAX_FRAC of it,
 * width:height up to 1.35:1 either way, turned up to WH__HARD_TILT. */
static void wh__hard_size(const wh__scene *sc, wh__rng *r, wh__shape shape, double min_px, wh__prim *p)
{
    const int W = sc->img.w, H = sc->img.h;
    const double side = W < H ? W : H;
    const double lo = fmin(min_px, 0.1 * side), hi = WH__HARD_MAX_FRAC * side;
    const double s = exp(wh__unif(r, log(lo), log(hi)));
    double ar = exp(wh__unif(r, -0.3, 0.3)); /* width / height */
    if (shape == WH__BAR) {
        ar = wh__unif(r, 3, 5);
        if (wh__u01(r) < 0.5) ar = 1 / ar;
    }
    double bw = s * sqrt(ar), bh = s / sqrt(ar);
    const double fit = fmin(1.0, fmin(0.9 * W / bw, 0.9 * H / bh));
    memset(p, 0, sizeof(*p));
    p->shape = shape;
    p->variant = wh__randint(r, 0, 3);
    p->hw = bw * fit / 2;
    p->hh = bh * fit / 2;
    wh__prim_frame(p, wh__unif(r, -WH__HARD_TILT, WH__HARD_TILT) * WH__PI / 180);
}

static int wh__hard_place(wh__scene *sc, wh__rng *r, int cls, wh__obj *o, wh__prim *p)
{
    const int W = sc->img.w, H = sc->img.h;
    for (int attempt = 0; attempt < 30; attempt++) {
        wh__hard_size(sc, r, wh__classes[cls].shape, WH__HARD_MIN_SIDE, p);
        const double m = 0.5 - WH__HARD_OUTSIDE; /* the centre's least distance inside, in box sides */
        p->cx = wh__unif(r, 2 * m * p->hw, W - 2 * m * p->hw);
        p->cy = wh__unif(r, 2 * m * p->hh, H - 2 * m * p->hh);
        o->cls = cls;
        o->cx = p->cx, o->cy = p->cy, o->hw = p->hw, o->hh = p->hh;
        int ok = 1;
        for (int i = 0; i < sc->n_obj && ok; i++) {
            double fa, fb;
            wh__overlap(&sc->obj[i], o, &fa, &fb);
            if (fa > 0.7 || fb > 0.7) ok = 0;
        }
        if (ok) return 1;
    }
    return 0;
}

/* Distractors: things that look like objects but are none of the classes. */
typedef enum {
    WH__DIS_FOREIGN, WH__DIS_BITE, WH__DIS_QUADRANT, WH__DIS_X, WH__DIS_BLOB, WH__DIS_LINE, WH__NDIS
} wh__dis_kind;

static void wh__hard_distractor(wh__scene *sc, wh__rng *r, int n_classes, wh__prim *p)
{
    const int W = sc->img.w, H = sc->img.h;
    wh__dis_kind kind = (wh__dis_kind)wh__randint(r, 0, WH__NDIS - 1);
    if (kind == WH__DIS_FOREIGN && n_classes >= WH__NCLASS) kind = WH__DIS_BITE;
    switch (kind) {
    case WH__DIS_FOREIGN: /* a table shape that is no class here, turned as objects are */
        wh__hard_size(sc, r, wh__classes[wh__randint(r, n_classes, WH__NCLASS - 1)].shape, WH__HARD_FOREIGN_MIN, p);
        break;
    case WH__DIS_BITE:
    case WH__DIS_QUADRANT: { /* a class shape with 25..60% of it cut away */
        const wh__shape shape = wh__classes[wh__randint(r, 0, n_classes - 1)].shape;
        wh__hard_size(sc, r, shape, WH__HARD_CUT_MIN, p);
        for (int t = 0; t < 20; t++) {
            if (kind == WH__DIS_BITE) {
                const double a = wh__unif(r, 0, 2 * WH__PI), d = wh__unif(r, 0.6, 1.0);
                p->cut = WH__CUT_BITE;
                p->bu = d * cos(a), p->bv = d * sin(a), p->br = wh__unif(r, 0.45, 0.75);
            } else {
                const double a = wh__randint(r, 0, 3) * WH__PI / 2;
                p->cut = WH__CUT_QUADRANT;
                p->qc = cos(a), p->qs = sin(a);
            }
            const double cut = wh__cut_share(p);
            if (cut >= 0.25 && cut <= 0.6) break;
            p->cut = WH__CUT_NONE;
        }
        if (p->cut == WH__CUT_NONE) { /* no cut fitted: an elongated blob instead */
            p->shape = WH__DISC;
            p->hh = p->hw * wh__unif(r, 0.3, 0.6);
        }
        break;
    }
    case WH__DIS_X: /* a cross turned 45 degrees: 30 more than any class cross */
        wh__hard_size(sc, r, WH__CROSS, WH__HARD_MIN_SIDE, p);
        wh__prim_frame(p, (45 + wh__unif(r, -WH__HARD_TILT, WH__HARD_TILT) / 3) * WH__PI / 180);
        break;
    case WH__DIS_BLOB: /* at most 0.6:1, any angle, so that no blob passes for a disc */
        wh__hard_size(sc, r, WH__DISC, WH__HARD_MIN_SIDE, p);
        p->hh = p->hw * wh__unif(r, 0.3, 0.6);
        wh__prim_frame(p, wh__unif(r, 0, WH__PI));
        break;
    case WH__DIS_LINE:
    case WH__NDIS: {
        const double side = W < H ? W : H;
        memset(p, 0, sizeof(*p));
        p->shape = WH__SQUARE;
        p->hw = side * wh__unif(r, 0.1, 0.6);
        p->hh = wh__unif(r, 0.5, 2.5);
        wh__prim_frame(p, wh__unif(r, 0, WH__PI));
        break;
    }
    }
    /* Lines may cross the border; shapes stay whole inside the image: a
     * cut shape whose cut fell outside, or a bar cut short by the border,
     * would be a class object left without a box. */
    int X0, Y0, X1, Y1;
    p->cx = p->cy = 0;
    wh__prim_bounds(p, &X0, &Y0, &X1, &Y1);
    const double ex = kind == WH__DIS_LINE ? 0 : fmin(X1, W / 2.0), ey = kind == WH__DIS_LINE ? 0 : fmin(Y1, H / 2.0);
    p->cx = wh__unif(r, ex, W - ex);
    p->cy = wh__unif(r, ey, H - ey);
}

static void wh__hard_distractors(wh__scene *sc, wh__rng *r, int n_classes, int n)
{
    for (int i = 0; i < n; i++) {
        wh__prim p;
        wh__fill f;
        wh__cover cv;
        wh__hard_distractor(sc, r, n_classes, &p);
        wh__hard_fill(r, &sc->img, &p, &f);
        wh__paint_prim(sc, &p, &f, -1, &cv);
    }
}

/* Separable Gaussian blur of every channel, sigma in pixels; edges clamp. */
static wh_status wh__blur(wh_image *im, double sigma, wh_ctx *ctx)
{
    const int R = (int)ceil(2.5 * sigma), W = im->w, H = im->h;
    float k[16];
    if (R < 1 || R > 7) return WH_OK;
    float sum = 0;
    for (int i = -R; i <= R; i++) sum += k[i + R] = (float)exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * R; i++) k[i] /= sum;
    const int n = W > H ? W : H;
    float *line = malloc(sizeof(float) * (size_t)(n + 2 * R));
    if (!line) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int c = 0; c < 3; c++) {
        float *plane = im->data + wh_image_index(im, 0, 0, c);
        for (int y = 0; y < H; y++) { /* rows */
            float *row = plane + (size_t)y * W;
            for (int x = -R; x < W + R; x++) line[x + R] = row[x < 0 ? 0 : x >= W ? W - 1 : x];
            for (int x = 0; x < W; x++) {
                float a = 0;
                for (int i = 0; i <= 2 * R; i++) a += k[i] * line[x + i];
                row[x] = a;
            }
        }
        for (int x = 0; x < W; x++) { /* columns */
            for (int y = -R; y < H + R; y++) line[y + R] = plane[(size_t)(y < 0 ? 0 : y >= H ? H - 1 : y) * W + x];
            for (int y = 0; y < H; y++) {
                float a = 0;
                for (int i = 0; i <= 2 * R; i++) a += k[i] * line[y + i];
                plane[(size_t)y * W + x] = a;
            }
        }
    }
    free(line);
    return WH_OK;
}

/* Renders image `index` of the hard preset (see synth.h for the why). */
static wh_status wh__render_hard(const wh_synth_opts *o, int index, wh__scene *sc, wh_ctx *ctx)
{
    memset(sc, 0, sizeof(*sc));
    /* a stream of its own, so a hard image shares no draws with the easy one */
    wh__rng r = wh__stream(o->seed ^ 0x68617264ull /* "hard" */, (uint64_t)index);
    const int W = (int)lround(o->size * wh__unif(&r, 10.0 / 13, 16.0 / 13));
    const int H = (int)lround(o->size * wh__unif(&r, 10.0 / 13, 16.0 / 13));
    WH_TRY(wh_image_alloc(&sc->img, W < 16 ? 16 : W, H < 16 ? 16 : H, 3, ctx));
    const size_t npx = (size_t)sc->img.w * sc->img.h;
    sc->owner = malloc(npx * sizeof(int));
    wh_status st = sc->owner ? WH_OK : wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    double contrast[WH__HARD_MAX_OBJ];
    if (st != WH_OK) goto fail;
    for (size_t i = 0; i < npx; i++) sc->owner[i] = -1;
    if ((st = wh__hard_background(sc, &r, ctx)) != WH_OK) goto fail;
    wh__hard_distractors(sc, &r, o->classes, wh__randint(&r, 1, 5)); /* behind the objects */
    const int want = wh__randint(&r, 1, WH__HARD_MAX_OBJ);
    for (int i = 0; i < want; i++) {
        wh__obj ob;
        wh__prim p;
        wh__fill f;
        wh__cover cv;
        memset(&ob, 0, sizeof(ob));
        const int cls = wh__randint(&r, 0, o->classes - 1);
        if (!wh__hard_place(sc, &r, cls, &ob, &p)) continue;
        const double con = wh__hard_fill(&r, &sc->img, &p, &f);
        wh__paint_prim(sc, &p, &f, sc->n_obj, &cv);
        if (cv.drawn == 0) continue;
        ob.x0 = cv.x0, ob.y0 = cv.y0, ob.x1 = cv.x1, ob.y1 = cv.y1;
        ob.drawn = cv.drawn, ob.area = cv.area, ob.truncated = cv.truncated;
        contrast[sc->n_obj] = con;
        sc->obj[sc->n_obj++] = ob;
    }
    wh__hard_distractors(sc, &r, o->classes, wh__randint(&r, 0, 3)); /* in front */
    /* The camera: exposure and colour cast, vignetting, blur, noise, JPEG. */
    wh_image *im = &sc->img;
    const double gain = wh__unif(&r, 0.75, 1.2), offset = wh__unif(&r, -0.05, 0.05);
    double cast[3];
    for (int k = 0; k < 3; k++) cast[k] = gain * wh__unif(&r, 0.94, 1.06);
    const double vig = wh__u01(&r) < 0.5 ? wh__unif(&r, 0, 0.35) : 0;
    const double blur = wh__u01(&r) < 1.0 / 3 ? 0 : wh__unif(&r, 0.4, 1.8);
    const double noise = wh__unif(&r, 0.005, 0.04); /* roughly the standard deviation */
    sc->quality = wh__randint(&r, 35, 90);

    for (size_t i = 0; i < npx; i++)
        if (sc->owner[i] >= 0) sc->obj[sc->owner[i]].shown++;
    for (int i = 0; i < sc->n_obj; i++) {
        wh__obj *ob = &sc->obj[i];
        const double gm = sqrt((double)(ob->x1 - ob->x0 + 1) * (ob->y1 - ob->y0 + 1));
        const int degraded = blur > WH__HARD_BLURRED || sc->quality < WH__HARD_BLOCKY;
        ob->difficult = ob->shown < WH__HARD_VISIBLE * ob->area || gm < 12 || (gm < 16 && degraded) ||
                        contrast[i] < WH__HARD_CONTRAST;
    }
    const double r2 = 0.25 * ((double)im->w * im->w + (double)im->h * im->h);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            const double dx = x - im->w / 2.0, dy = y - im->h / 2.0;
            const double fall = 1 - vig * (dx * dx + dy * dy) / r2;
            for (int k = 0; k < 3; k++) {
                float *d = &im->data[wh_image_index(im, x, y, k)];
                *d = (float)(*d * cast[k] * fall + offset);
            }
        }
    if (blur > 0 && (st = wh__blur(im, blur, ctx)) != WH_OK) goto fail;
    /* near-Gaussian: the sum of four 16-bit uniforms from one draw (sd 1/sqrt(3)) */
    const float ns = (float)(noise * sqrt(3.0) / 65536);
    for (size_t i = 0; i < npx * 3; i++) {
        const uint64_t z = wh__next(&r);
        const long sum = (long)(z & 0xffff) + (long)(z >> 16 & 0xffff) + (long)(z >> 32 & 0xffff) + (long)(z >> 48);
        im->data[i] += ns * (float)(sum - 131070);
    }
    return WH_OK;
fail:
    free(sc->owner);
    sc->owner = NULL;
    wh_image_free(&sc->img);
    return st;
}

static wh_status wh__render(const wh_synth_opts *o, int index, wh__scene *sc, wh_ctx *ctx)
{
    return o->preset == WH_SYNTH_HARD ? wh__render_hard(o, index, sc, ctx) : wh__render_easy(o, index, sc, ctx);
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
    if ((st = wh_image_encode_jpeg(&sc.img, sc.quality, &jpg, &jlen, ctx)) != WH_OK) goto done;
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

/* The easy preset writes no preset line, so its stamps are byte-identical
 * to those written before presets existed (and those folders are reused). */
static char *wh__stamp_text(const wh__stamp *s)
{
    wh__buf b = {0};
    wh__bprintf(&b,
                "# whittle synthetic dataset (whittle mkdata); regenerate with the same options\n"
                "version %d\nimages %d\nclasses %d\nsize %d\nseed %llu\ntest_fraction %.17g\n",
                s->version, s->o.images, s->o.classes, s->o.size, (unsigned long long)s->o.seed,
                s->o.test_fraction);
    if (s->o.preset != WH_SYNTH_EASY) wh__bprintf(&b, "preset %s\n", wh_synth_preset_name(s->o.preset));
    wh__bprintf(&b, "complete %d\ntrain %d\ntest %d\nobjects %ld\ndifficult %ld\ntruncated %ld\n", s->complete,
                s->st.train, s->st.test, s->st.objects, s->st.difficult, s->st.truncated);
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
        if (!strcmp(key, "preset")) { /* absent: easy */
            s->o.preset = wh_synth_preset_parse(val);
            bad |= s->o.preset < 0;
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
           a->test_fraction == b->test_fraction && a->preset == b->preset;
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
                        "(version %d: preset %s, images %d, classes %d, size %d, seed %llu, test_fraction %g); "
                        "remove it or choose another folder",
                        dir, old->version, wh_synth_preset_name(old->o.preset), old->o.images, old->o.classes,
                        old->o.size, (unsigned long long)old->o.seed, old->o.test_fraction);
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
    if (!wh_synth_preset_name(o->preset))
        return wh_error(ctx, WH_ERR_ARG, "synth: unknown preset %d (the presets: easy, hard)", o->preset);
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
