/* whittle: the darknet .cfg model generator (see modelgen.h).
 *
 * Each architecture is a short function that calls one emit helper per
 * building block (conv, residual block, CSP stage, SPP, PANet path, detection
 * head). The helpers append darknet cfg text and count layers the way darknet
 * does ([net] is not a layer; the first section after it is layer 0), so a
 * block can keep the index of a layer it will route to later and write that
 * route either relative to the route itself (negative) or absolute, exactly
 * as darknet's shipped cfgs do. The layer counts are checked against
 * darknet's: yolov4 162, yolov4-tiny 38, yolov3 107, yolov3-tiny 24.
 *
 * Shapes in comments are (C, H, W) of the original architecture at an input
 * of (3, H, W); the strides are what matter: at 416, H/32 = 13.
 */
#include "framework/io/modelgen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framework/data/anchors.h"

#define WH__ANCHORS_PER_HEAD 3
#define WH__MAX_CLASSES 100000 /* keeps (classes + 5) * 3 far from int overflow */
#define WH__MIN_SIZE 32
#define WH__MAX_SIZE 4096
#define WH__MAX_WIDTH_MULTIPLE 4.0

struct wh__model;

/* The state while one cfg is written. */
typedef struct wh__gen {
    char *buf;       /* the cfg text so far, NUL-terminated */
    size_t len, cap; /* bytes used (without the NUL), bytes allocated */
    int failed;      /* an allocation failed; everything after is dropped */
    int n;           /* darknet index the next layer section gets */
    int classes;
    double width_multiple;
    int width, height;
    int darknet_loss; /* wh_model_opts.darknet_loss */
    const struct wh__model *model;
    float anchors[2 * WH_ANCHORS_MAX]; /* model->num (w, h) pairs at the generated input size */
} wh__gen;

/* One architecture: its layers and the settings darknet ships it with. */
typedef struct wh__model {
    const char *name;
    void (*layers)(wh__gen *g);
    int n_layers; /* darknet's layer count; the emitter is checked against it */
    /* [net] training settings, as text so they are written exactly as darknet's */
    int subdivisions;
    const char *momentum, *learning_rate, *max_batches, *steps;
    int mosaic;
    /* [yolo] settings shared by all heads */
    const int *anchors; /* num (w, h) pairs, in input pixels */
    int num;
    const char *loss_keys; /* the v4 family's CIoU/NMS keys; NULL for v3 */
} wh__model;

/* ---- text output ---------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void wh__put(wh__gen *g, const char *fmt, ...)
{
    if (g->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(g->buf + g->len, g->cap - g->len, fmt, ap);
        va_end(ap);
        if (k < 0) {
            g->failed = 1;
            return;
        }
        if ((size_t)k < g->cap - g->len) {
            g->len += (size_t)k;
            return;
        }
        size_t cap = g->cap * 2;
        while (cap - g->len <= (size_t)k) cap *= 2;
        char *p = realloc(g->buf, cap);
        if (!p) {
            g->failed = 1;
            return;
        }
        g->buf = p;
        g->cap = cap;
    }
}

/* A comment line, prefixed with the index of the layer that follows it, so a
 * reader of the cfg can check route indices by eye. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void wh__comment(wh__gen *g, const char *fmt, ...)
{
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    wh__put(g, "\n# layer %d: %s\n", g->n, line);
}

/* Starts a layer section; returns its darknet index. */
static int wh__section(wh__gen *g, const char *type)
{
    wh__put(g, "\n[%s]\n", type);
    return g->n++;
}

/* A route or shortcut writes the layers it reads relative to itself: this is
 * that offset for `layer`, evaluated before the route is emitted. */
static int wh__rel(const wh__gen *g, int layer)
{
    return layer - g->n;
}

/* ---- one helper per layer type -------------------------------------------- */

/* Filters of a non-head conv: the original count times width_multiple,
 * rounded to the nearest multiple of 8 (at least 8). Every conv is scaled by
 * this one rule from its original count, so convs whose outputs must agree
 * (the two inputs of a shortcut) still agree, and every count stays even, so
 * a groups=2 route still splits evenly. At 1.0 every count is unchanged: all
 * of darknet's are multiples of 8 already. */
static int wh__scale(const wh__gen *g, int filters)
{
    int f = (int)(filters * g->width_multiple / 8.0 + 0.5) * 8;
    return f < 8 ? 8 : f;
}

/* Conv + batch norm + activation, pad=1 (darknet: pad = size/2, so a stride-1
 * conv keeps H, W and a stride-2 3x3 halves them).
 * (C_in, H, W) -> (scaled filters, H/stride, W/stride). */
static int wh__conv(wh__gen *g, int filters, int size, int stride, const char *act)
{
    int i = wh__section(g, "convolutional");
    wh__put(g, "batch_normalize=1\nfilters=%d\nsize=%d\nstride=%d\npad=1\nactivation=%s\n",
            wh__scale(g, filters), size, stride, act);
    return i;
}

/* The 1x1 conv that feeds a [yolo] layer: per anchor 4 box terms, objectness
 * and the class scores, so (C_in, H, W) -> ((classes + 5) * 3, H, W). Linear
 * with a bias and no batch norm; never width-scaled. */
static int wh__head_conv(wh__gen *g)
{
    int i = wh__section(g, "convolutional");
    wh__put(g, "filters=%d\nsize=1\nstride=1\npad=1\nactivation=linear\n",
            (g->classes + 5) * WH__ANCHORS_PER_HEAD);
    return i;
}

/* Route: writes its n layer values as given, negative = relative to the
 * route, >= 0 = absolute; the output concatenates their channels. */
static int wh__route(wh__gen *g, int n, ...)
{
    int i = wh__section(g, "route");
    va_list ap;
    va_start(ap, n);
    wh__put(g, "layers=");
    for (int k = 0; k < n; k++) wh__put(g, k ? ",%d" : "%d", va_arg(ap, int));
    va_end(ap);
    wh__put(g, "\n");
    return i;
}

/* Route to the previous layer keeping its second channel half:
 * (C, H, W) -> (C/2, H, W). The CSP split of the tiny models. */
static int wh__route_half(wh__gen *g)
{
    int i = wh__section(g, "route");
    wh__put(g, "layers=-1\ngroups=2\ngroup_id=1\n");
    return i;
}

/* Residual add of `from` to the previous layer; both (C, H, W). */
static int wh__shortcut(wh__gen *g, int from)
{
    int rel = wh__rel(g, from); /* before the section takes its index */
    int i = wh__section(g, "shortcut");
    wh__put(g, "from=%d\nactivation=linear\n", rel);
    return i;
}

/* Darknet's maxpool pads size-1 in total: out = (in + size - 1 - size)/stride
 * + 1, so stride 1 keeps H, W and size 2 stride 2 halves an even H. */
static int wh__maxpool(wh__gen *g, int size, int stride)
{
    int i = wh__section(g, "maxpool");
    wh__put(g, "size=%d\nstride=%d\n", size, stride);
    return i;
}

/* Nearest-neighbour 2x: (C, H, W) -> (C, 2H, 2W). */
static int wh__upsample(wh__gen *g)
{
    int i = wh__section(g, "upsample");
    wh__put(g, "stride=2\n");
    return i;
}

/* [yolo] over anchors mask0 .. mask0+2 of the model's list. random < 0 and
 * scale_x_y == NULL leave those keys out, as darknet's cfgs do on some heads. */
static int wh__yolo(wh__gen *g, int mask0, int random, const char *scale_x_y)
{
    const wh__model *m = g->model;
    int i = wh__section(g, "yolo");
    wh__put(g, "mask=%d,%d,%d\nanchors=", mask0, mask0 + 1, mask0 + 2);
    for (int k = 0; k < m->num; k++)
        wh__put(g, k ? ", %.0f,%.0f" : "%.0f,%.0f", g->anchors[2 * k], g->anchors[2 * k + 1]);
    wh__put(g, "\nclasses=%d\nnum=%d\njitter=.3\nignore_thresh=.7\ntruth_thresh=1\n", g->classes,
            m->num);
    if (random >= 0) wh__put(g, "random=%d\n", random);
    if (scale_x_y) wh__put(g, "scale_x_y=%s\n", scale_x_y);
    if (g->darknet_loss) {
        if (m->loss_keys) wh__put(g, "%s", m->loss_keys);
        return i;
    }
    /* The balanced loss (modelgen.h): YOLOv5's gains (box .05, objectness
     * 1, classes .5) times its nominal batch of 64, because YOLOv5 sums its
     * averages over a batch of 64 where whittle's trainer averages over the
     * batch; box and classes x 3 / heads, classes x classes / 80, objectness
     * x (size / 640)^2 x 3 / heads x a weight per stride (4 at 8, 1 at 16,
     * .4 at 32: a larger grid's mean has more empty cells in it). The heads
     * go from the largest anchors (stride 32) down, three anchors each. */
    const int nl = m->num / 3, stride = 32 >> (nl - 1 - mask0 / 3);
    const double k3 = 3.0 / nl, area = (double)g->width * g->height / (640.0 * 640.0);
    const double bal = stride <= 8 ? 4.0 : stride == 16 ? 1.0 : 0.4;
    wh__put(g, "# whittle's balanced loss (layers/yolo.h, loss_norm=mean): YOLOv5's gains x its nominal batch 64\n"
               "loss_norm=mean\niou_loss=ciou\niou_normalizer=%.4g\nobj_normalizer=%.4g\ncls_normalizer=%.4g\n"
               "iou_thresh=0.213\nnms_kind=greedynms\nbeta_nms=0.6\n",
            0.05 * 64 * k3, 1.0 * 64 * area * k3 * bal, 0.5 * 64 * g->classes / 80.0 * k3);
    return i;
}

/* ---- building blocks ------------------------------------------------------ */

/* Darknet53 residual block: 1x1 conv -> inner, 3x3 conv -> out, add the
 * block's input. (out, H, W) -> (out, H, W). */
static int wh__res_block(wh__gen *g, int inner, int out, const char *act)
{
    int in = g->n - 1;
    wh__conv(g, inner, 1, 1, act);
    wh__conv(g, out, 3, 1, act);
    return wh__shortcut(g, in);
}

/* Darknet53 stage (yolov3): a 3x3/2 conv then n residual blocks.
 * (C_in, H, W) -> (out, H/2, W/2). Returns the last layer. */
static int wh__dark_stage(wh__gen *g, int out, int n_blocks)
{
    int last = wh__conv(g, out, 3, 2, "leaky");
    for (int k = 0; k < n_blocks; k++) last = wh__res_block(g, out / 2, out, "leaky");
    return last;
}

/* CSPDarknet53 stage (yolov4). (C_in, H, W) -> (out, H/2, W/2):
 *   3x3/2 conv -> out, then two 1x1 branches of it, each (half, H/2, W/2):
 *   part 2 passes straight across; part 1 runs n residual blocks (inner,
 *   half) and a 1x1 transition; their concatenation (2 half) is fused by a
 *   1x1 conv -> out. half = out/2, except stage 1 where half = out = 64 and
 *   the residual inner width is 32. Returns the last conv (the stage output). */
static int wh__csp_stage(wh__gen *g, int out, int half, int inner, int n_blocks)
{
    int down = wh__conv(g, out, 3, 2, "mish");
    int part2 = wh__conv(g, half, 1, 1, "mish");
    wh__route(g, 1, wh__rel(g, down));
    wh__conv(g, half, 1, 1, "mish");
    for (int k = 0; k < n_blocks; k++) wh__res_block(g, inner, half, "mish");
    wh__conv(g, half, 1, 1, "mish");
    wh__route(g, 2, -1, wh__rel(g, part2));
    return wh__conv(g, out, 1, 1, "mish");
}

/* CSP block of yolov4-tiny. (C_in, H, W) -> (2c, H/2, W/2):
 *   3x3 conv -> c; keep its second half (c/2); two 3x3 convs -> c/2 each,
 *   concatenated (c); 1x1 conv -> c (the tap the FPN reads); concatenated
 *   with the first conv (2c); 2x2/2 maxpool. Returns the 1x1 conv. */
static int wh__tiny_csp_block(wh__gen *g, int c)
{
    int first = wh__conv(g, c, 3, 1, "leaky");
    wh__route_half(g);
    int a = wh__conv(g, c / 2, 3, 1, "leaky");
    wh__conv(g, c / 2, 3, 1, "leaky");
    wh__route(g, 2, -1, wh__rel(g, a));
    int tap = wh__conv(g, c, 1, 1, "leaky");
    wh__route(g, 2, wh__rel(g, first), -1);
    wh__maxpool(g, 2, 2);
    return tap;
}

/* Spatial pyramid pooling on the previous layer (C, H, W): stride-1 maxpools
 * 5, 9, 13 of it, concatenated with it -> (4C, H, W). */
static int wh__spp(wh__gen *g)
{
    int in = g->n - 1;
    int p5 = wh__maxpool(g, 5, 1);
    wh__route(g, 1, wh__rel(g, in));
    int p9 = wh__maxpool(g, 9, 1);
    wh__route(g, 1, wh__rel(g, in));
    int p13 = wh__maxpool(g, 13, 1);
    return wh__route(g, 4, wh__rel(g, p13), wh__rel(g, p9), wh__rel(g, p5), wh__rel(g, in));
}

/* Alternating 1x1 (c) and 3x3 (2c) convs, five in all, ending at c. */
static int wh__conv_set5(wh__gen *g, int c)
{
    wh__conv(g, c, 1, 1, "leaky");
    wh__conv(g, 2 * c, 3, 1, "leaky");
    wh__conv(g, c, 1, 1, "leaky");
    wh__conv(g, 2 * c, 3, 1, "leaky");
    return wh__conv(g, c, 1, 1, "leaky");
}

/* One detection head on the previous layer: 3x3 conv -> c, the head conv,
 * [yolo]. Returns the [yolo] layer. */
static int wh__detect(wh__gen *g, int c, int mask0, int random, const char *scale_x_y)
{
    wh__conv(g, c, 3, 1, "leaky");
    wh__head_conv(g);
    return wh__yolo(g, mask0, random, scale_x_y);
}

/* FPN step of the v3 family and yolov4-tiny: back to `from` (C, H, W), 1x1
 * conv -> c, 2x upsample, concatenated with the backbone tap `lateral`
 * (written absolute, as darknet does) -> (c + C_lat, 2H, 2W). */
static int wh__fpn_up(wh__gen *g, int from, int c, int lateral)
{
    wh__route(g, 1, wh__rel(g, from));
    wh__conv(g, c, 1, 1, "leaky");
    wh__upsample(g);
    return wh__route(g, 2, -1, lateral);
}

/* PANet top-down step of yolov4, on the previous layer (2c, H, W): 1x1 conv
 * -> c, 2x upsample; the backbone tap `lateral` (absolute) through a 1x1 conv
 * -> c; concatenated (2c, 2H, 2W) and fused by five convs -> (c, 2H, 2W). */
static int wh__pan_up(wh__gen *g, int c, int lateral)
{
    wh__conv(g, c, 1, 1, "leaky");
    int up = wh__upsample(g);
    wh__route(g, 1, lateral);
    wh__conv(g, c, 1, 1, "leaky");
    wh__route(g, 2, -1, wh__rel(g, up));
    return wh__conv_set5(g, c);
}

/* PANet bottom-up step of yolov4: back to `from` (c/2, H, W), 3x3/2 conv -> c,
 * concatenated with the top-down output `lateral` (c, H/2, W/2), fused by
 * five convs -> (c, H/2, W/2). */
static int wh__pan_down(wh__gen *g, int from, int c, int lateral)
{
    wh__route(g, 1, wh__rel(g, from));
    wh__conv(g, c, 3, 2, "leaky");
    wh__route(g, 2, -1, wh__rel(g, lateral));
    return wh__conv_set5(g, c);
}

/* ---- the architectures ---------------------------------------------------- */

/* yolov4: CSPDarknet53 + SPP + PANet, heads at strides 8, 16, 32. */
static void wh__yolov4(wh__gen *g)
{
    wh__comment(g, "backbone: CSPDarknet53");
    wh__conv(g, 32, 3, 1, "mish");                      /* 0:   (32, H, W) */
    wh__csp_stage(g, 64, 64, 32, 1);                    /* 10:  (64, H/2) */
    wh__csp_stage(g, 128, 64, 64, 2);                   /* 23:  (128, H/4) */
    int c3 = wh__csp_stage(g, 256, 128, 128, 8);        /* 54:  (256, H/8) */
    int c4 = wh__csp_stage(g, 512, 256, 256, 8);        /* 85:  (512, H/16) */
    wh__csp_stage(g, 1024, 512, 512, 4);                /* 104: (1024, H/32) */

    wh__comment(g, "neck: SPP");
    wh__conv(g, 512, 1, 1, "leaky");
    wh__conv(g, 1024, 3, 1, "leaky");
    wh__conv(g, 512, 1, 1, "leaky");
    wh__spp(g);                                         /* 113: (2048, H/32) */
    wh__conv(g, 512, 1, 1, "leaky");
    wh__conv(g, 1024, 3, 1, "leaky");
    int p5 = wh__conv(g, 512, 1, 1, "leaky");           /* 116: (512, H/32) */

    wh__comment(g, "neck: PANet top-down");
    int p4 = wh__pan_up(g, 256, c4);                    /* 126: (256, H/16) */
    int p3 = wh__pan_up(g, 128, c3);                    /* 136: (128, H/8) */

    wh__comment(g, "head: stride 8, then PANet bottom-up to strides 16 and 32");
    wh__detect(g, 256, 0, -1, "1.2");                   /* 139 */
    int n4 = wh__pan_down(g, p3, 256, p4);              /* 147: (256, H/16) */
    wh__detect(g, 512, 3, -1, "1.1");                   /* 150 */
    wh__pan_down(g, n4, 512, p5);                       /* 158: (512, H/32) */
    wh__detect(g, 1024, 6, 1, "1.05");                  /* 161 */
}

/* yolov4-tiny: three tiny CSP blocks, heads at strides 32 and 16. */
static void wh__yolov4_tiny(wh__gen *g)
{
    wh__comment(g, "backbone: tiny CSPDarknet");
    wh__conv(g, 32, 3, 2, "leaky");                     /* 0: (32, H/2) */
    wh__conv(g, 64, 3, 2, "leaky");                     /* 1: (64, H/4) */
    wh__tiny_csp_block(g, 64);                          /* 9:  (128, H/8) */
    wh__tiny_csp_block(g, 128);                         /* 17: (256, H/16) */
    int c4 = wh__tiny_csp_block(g, 256);                /* 23: (256, H/16); 25: (512, H/32) */
    wh__conv(g, 512, 3, 1, "leaky");                    /* 26: (512, H/32) */

    wh__comment(g, "head: stride 32, then FPN up to stride 16");
    int t = wh__conv(g, 256, 1, 1, "leaky");            /* 27: (256, H/32) */
    wh__detect(g, 512, 3, 0, "1.05");                   /* 30 */
    wh__fpn_up(g, t, 128, c4);                          /* 34: (384, H/16) */
    wh__detect(g, 256, 1, 0, "1.05");                   /* 37 */
}

/* yolov3: Darknet53 + FPN, heads at strides 32, 16, 8. */
static void wh__yolov3(wh__gen *g)
{
    wh__comment(g, "backbone: Darknet53");
    wh__conv(g, 32, 3, 1, "leaky");                     /* 0:  (32, H, W) */
    wh__dark_stage(g, 64, 1);                           /* 4:  (64, H/2) */
    wh__dark_stage(g, 128, 2);                          /* 11: (128, H/4) */
    int c3 = wh__dark_stage(g, 256, 8);                 /* 36: (256, H/8) */
    int c4 = wh__dark_stage(g, 512, 8);                 /* 61: (512, H/16) */
    wh__dark_stage(g, 1024, 4);                         /* 74: (1024, H/32) */

    wh__comment(g, "head: stride 32, then FPN up to strides 16 and 8");
    int t = wh__conv_set5(g, 512);                      /* 79: (512, H/32) */
    wh__detect(g, 1024, 6, 1, NULL);                    /* 82 */
    wh__fpn_up(g, t, 256, c4);                          /* 86: (768, H/16) */
    t = wh__conv_set5(g, 256);                          /* 91: (256, H/16) */
    wh__detect(g, 512, 3, 1, NULL);                     /* 94 */
    wh__fpn_up(g, t, 128, c3);                          /* 98: (384, H/8) */
    wh__conv_set5(g, 128);                              /* 103: (128, H/8) */
    wh__detect(g, 256, 0, 1, NULL);                     /* 106 */
}

/* yolov3-tiny: conv + maxpool pairs, heads at strides 32 and 16. */
static void wh__yolov3_tiny(wh__gen *g)
{
    wh__comment(g, "backbone: 3x3 convs 16..512, each followed by a 2x2 maxpool");
    int c4 = -1;
    for (int c = 16; c <= 512; c *= 2) {
        int conv = wh__conv(g, c, 3, 1, "leaky");
        if (c == 256) c4 = conv;                        /* 8: (256, H/16) */
        /* The last pool keeps H/32: stride 1, padded by darknet's size-1. */
        wh__maxpool(g, 2, c == 512 ? 1 : 2);
    }
    wh__conv(g, 1024, 3, 1, "leaky");                   /* 12: (1024, H/32) */

    wh__comment(g, "head: stride 32, then FPN up to stride 16");
    int t = wh__conv(g, 256, 1, 1, "leaky");            /* 13: (256, H/32) */
    wh__detect(g, 512, 3, 1, NULL);                     /* 16 */
    wh__fpn_up(g, t, 128, c4);                          /* 20: (384, H/16) */
    wh__detect(g, 256, 0, 1, NULL);                     /* 23 */
}

/* ---- the table ------------------------------------------------------------ */

/* Darknet's default anchors, (w, h) in pixels at 416. */
static const int wh__anchors_v4[] = {12, 16, 19, 36, 40, 28, 36, 75, 76, 55,
                                     72, 146, 142, 110, 192, 243, 459, 401};
static const int wh__anchors_v3[] = {10, 13, 16, 30, 33, 23, 30, 61, 62, 45,
                                     59, 119, 116, 90, 156, 198, 373, 326};
static const int wh__anchors_tiny[] = {10, 14, 23, 27, 37, 58, 81, 82, 135, 169, 344, 319};

/* yolov4's loss (CIoU, its normalisers) and NMS settings. */
static const char wh__loss_v4[] = "iou_thresh=0.213\n"
                                  "cls_normalizer=1.0\n"
                                  "iou_normalizer=0.07\n"
                                  "iou_loss=ciou\n"
                                  "nms_kind=greedynms\n"
                                  "beta_nms=0.6\n"
                                  "max_delta=5\n";
/* yolov4-tiny's: the same loss without iou_thresh / max_delta, plus resize. */
static const char wh__loss_v4_tiny[] = "cls_normalizer=1.0\n"
                                       "iou_normalizer=0.07\n"
                                       "iou_loss=ciou\n"
                                       "nms_kind=greedynms\n"
                                       "beta_nms=0.6\n"
                                       "resize=1.5\n";

#define WH__COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const wh__model wh__models[] = {
    {"yolov4", wh__yolov4, 162, 8, "0.949", "0.0013", "500500", "400000,450000", 1,
     wh__anchors_v4, WH__COUNT(wh__anchors_v4) / 2, wh__loss_v4},
    {"yolov4-tiny", wh__yolov4_tiny, 38, 1, "0.9", "0.00261", "2000200", "1600000,1800000", 0,
     wh__anchors_tiny, WH__COUNT(wh__anchors_tiny) / 2, wh__loss_v4_tiny},
    {"yolov3", wh__yolov3, 107, 16, "0.9", "0.001", "500200", "400000,450000", 0,
     wh__anchors_v3, WH__COUNT(wh__anchors_v3) / 2, NULL},
    {"yolov3-tiny", wh__yolov3_tiny, 24, 2, "0.9", "0.001", "500200", "400000,450000", 0,
     wh__anchors_tiny, WH__COUNT(wh__anchors_tiny) / 2, NULL},
};

/* Same order as wh__models (the tests generate every listed name). */
static const char *const wh__names[] = {"yolov4", "yolov4-tiny", "yolov3", "yolov3-tiny", NULL};
_Static_assert(sizeof(wh__names) / sizeof(wh__names[0]) ==
                   sizeof(wh__models) / sizeof(wh__models[0]) + 1,
               "model name list must match the model table");

/* darknet's anchors are pixels of a 416x416 input: the same share of the
 * image at another size (416's largest tiny anchor, 344x319, would be larger
 * than a 256 input) */
static void wh__scaled_anchors(const wh__model *m, int width, int height, float *anchors)
{
    for (int k = 0; k < m->num; k++) {
        anchors[2 * k] = (float)m->anchors[2 * k] * (float)width / 416.f;
        anchors[2 * k + 1] = (float)m->anchors[2 * k + 1] * (float)height / 416.f;
    }
    wh_anchors_round(anchors, m->num);
}

int wh_model_default_anchors(const char *name, int width, int height, float *anchors, int *num)
{
    for (int i = 0; i < WH__COUNT(wh__models); i++)
        if (name && !strcmp(name, wh__models[i].name)) {
            wh__scaled_anchors(&wh__models[i], width, height, anchors);
            if (num) *num = wh__models[i].num;
            return 0;
        }
    return -1;
}

const char *const *wh_model_names(void)
{
    return wh__names;
}

void wh_model_opts_default(wh_model_opts *o)
{
    if (!o) return;
    memset(o, 0, sizeof(*o));
    o->name = "yolov4";
    o->classes = 80;
    o->width = 416;
    o->height = 416;
    o->width_multiple = 1.0;
}

/* ---- entry point ---------------------------------------------------------- */

static void wh__net(wh__gen *g, const wh_model_opts *o)
{
    const wh__model *m = g->model;
    wh__put(g, "[net]\n# generated by whittle: %s, classes=%d, width_multiple=%g\n", m->name,
            g->classes, g->width_multiple);
    wh__put(g, "batch=64\nsubdivisions=%d\nwidth=%d\nheight=%d\nchannels=3\n", m->subdivisions,
            o->width, o->height);
    /* the balanced loss trains at YOLOv5's SGD settings (modelgen.h) */
    const char *momentum = g->darknet_loss ? m->momentum : "0.937";
    const char *lr = g->darknet_loss ? m->learning_rate : "0.01";
    wh__put(g, "momentum=%s\ndecay=0.0005\nangle=0\nsaturation=1.5\nexposure=1.5\nhue=.1\n",
            momentum);
    if (g->classes == 80) { /* darknet's COCO cfg */
        wh__put(g, "\nlearning_rate=%s\nburn_in=1000\nmax_batches=%s\npolicy=steps\nsteps=%s\n"
                   "scales=.1,.1\n",
                lr, m->max_batches, m->steps);
    } else { /* darknet's rule for custom training: 2000 per class, at least 6000 */
        const long mb = g->classes * 2000L < 6000 ? 6000 : g->classes * 2000L;
        wh__put(g, "\n# darknet's schedule for custom data: max_batches = 2000 x classes (at least 6000),\n"
                   "# steps at 80 %% and 90 %%; whittle train --max-batches N rescales it to N\n"
                   "learning_rate=%s\nburn_in=1000\nmax_batches=%ld\npolicy=steps\nsteps=%ld,%ld\n"
                   "scales=.1,.1\n",
                lr, mb, mb * 8 / 10, mb * 9 / 10);
    }
    if (m->mosaic) wh__put(g, "mosaic=1\n");
}

static wh_status wh__bad_size(wh_ctx *ctx, const char *what, int v)
{
    return wh_error(ctx, WH_ERR_ARG, "model %s %d: must be a multiple of 32 in %d..%d", what, v,
                    WH__MIN_SIZE, WH__MAX_SIZE);
}

static int wh__size_ok(int v)
{
    return v >= WH__MIN_SIZE && v <= WH__MAX_SIZE && v % 32 == 0;
}

wh_status wh_model_generate(const wh_model_opts *o, char **text, wh_ctx *ctx)
{
    if (text) *text = NULL;
    if (!o || !text) return wh_error(ctx, WH_ERR_ARG, "wh_model_generate: NULL argument");

    const wh__model *m = NULL;
    for (int i = 0; i < WH__COUNT(wh__models); i++)
        if (o->name && strcmp(o->name, wh__models[i].name) == 0) m = &wh__models[i];
    if (!m) {
        char known[256] = "";
        for (const char *const *n = wh__names; *n; n++) {
            if (n != wh__names) strncat(known, ", ", sizeof(known) - strlen(known) - 1);
            strncat(known, *n, sizeof(known) - strlen(known) - 1);
        }
        return wh_error(ctx, WH_ERR_ARG, "unknown model '%s'; known models: %s",
                        o->name ? o->name : "(null)", known);
    }
    if (o->classes <= 0 || o->classes > WH__MAX_CLASSES)
        return wh_error(ctx, WH_ERR_ARG, "model classes %d: must be in 1..%d", o->classes,
                        WH__MAX_CLASSES);
    if (!wh__size_ok(o->width)) return wh__bad_size(ctx, "width", o->width);
    if (!wh__size_ok(o->height)) return wh__bad_size(ctx, "height", o->height);
    /* Written so that NaN fails too. */
    if (!(o->width_multiple > 0.0 && o->width_multiple <= WH__MAX_WIDTH_MULTIPLE))
        return wh_error(ctx, WH_ERR_ARG, "model width_multiple %g: must be in (0, %g]",
                        o->width_multiple, WH__MAX_WIDTH_MULTIPLE);

    if (o->anchors && o->n_anchors != m->num)
        return wh_error(ctx, WH_ERR_ARG, "model %s: %d anchors given, the model has %d", m->name, o->n_anchors,
                        m->num);
    wh__gen g = {0};
    g.classes = o->classes;
    g.width_multiple = o->width_multiple;
    g.width = o->width;
    g.height = o->height;
    g.darknet_loss = o->darknet_loss;
    g.model = m;
    if (o->anchors) {
        for (int k = 0; k < 2 * m->num; k++)
            if (!(o->anchors[k] > 0))
                return wh_error(ctx, WH_ERR_ARG, "model %s: anchor %d is %g x %g (must be > 0)", m->name, k / 2,
                                (double)o->anchors[k - k % 2], (double)o->anchors[k - k % 2 + 1]);
        memcpy(g.anchors, o->anchors, sizeof(float) * 2 * (size_t)m->num);
        wh_anchors_round(g.anchors, m->num);
    } else {
        wh__scaled_anchors(m, o->width, o->height, g.anchors);
    }
    g.cap = 16384; /* yolov4 at 80 classes is about 13 KB */
    g.buf = malloc(g.cap);
    if (!g.buf) return wh_error(ctx, WH_ERR_NOMEM, "model %s: out of memory", m->name);
    g.buf[0] = '\0';

    wh__net(&g, o);
    m->layers(&g);

    if (g.failed) {
        free(g.buf);
        return wh_error(ctx, WH_ERR_NOMEM, "model %s: out of memory", m->name);
    }
    if (g.n != m->n_layers) {
        free(g.buf);
        return wh_error(ctx, WH_ERR_STATE, "model %s: emitted %d layers, darknet has %d", m->name,
                        g.n, m->n_layers);
    }
    *text = g.buf;
    return WH_OK;
}
