/* whittle detect CKPT IMAGE [-o out.png] [--conf 0.25] [--nms 0.45] [--names FILE | --data PATH]:
 * the detections of one image, printed one a line and optionally drawn.
 *
 * The image goes through the loader's evaluation path (wh_loader_make on a
 * one-sample dataset built here: placed as in training, no augmentation) and the boxes
 * through wh_detect_batch, so a box printed here is the box `whittle eval`
 * scores for the same image. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "apps.h"
#include "framework/io/checkpoint.h"
#include "framework/eval/evaluate.h"
#include "framework/plot/plot.h"
#include "layers/head.h"

void wh_cmd_detect_usage(void)
{
    printf("usage: whittle detect CKPT IMAGE [-o OUT.png] [--conf X] [--nms X]\n"
           "                      [--names FILE | --data PATH] [--threads N]\n\n"
           "Detects objects in one JPEG or PNG image and prints one line per box, best\n"
           "first:  class score xmin ymin xmax ymax  (pixels of the image, 1-based\n"
           "inclusive as VOC annotations; blanks in a class name printed as '_').\n\n"
           "  -o, --out FILE   also draw the boxes, class names and scores on the image\n"
           "                   and save it as PNG (replaced atomically)\n"
           "  --conf X         keep boxes scoring above X (default 0.25, darknet's detector test)\n"
           "  --nms X          per-class greedy NMS IoU threshold (default 0.45)\n"
           "  --names FILE     class names, one per line (darknet's .names)\n"
           "  --data PATH      take the class names from a dataset: a VOC root's classes.txt,\n"
           "                   or whatever the dataset gives (VOC names, a .data file's names=)\n"
           "  --threads N      OpenMP threads (default: all cores)\n"
           "Without --names or --data a class is called 'class N' (printed class_N).\n");
}

/* ---- class names ---------------------------------------------------------- */

typedef struct wh__names {
    int n;
    char **name;
} wh__names;

static void wh__names_free(wh__names *nm)
{
    for (int i = 0; i < nm->n; i++) free(nm->name[i]);
    free(nm->name);
    nm->n = 0;
    nm->name = NULL;
}

static wh_status wh__names_push(wh__names *nm, const char *s, size_t len, wh_ctx *ctx)
{
    char **p = realloc(nm->name, (size_t)(nm->n + 1) * sizeof(char *));
    if (!p) return wh_error(ctx, WH_ERR_NOMEM, "out of memory for class names");
    nm->name = p;
    if (!(p[nm->n] = malloc(len + 1))) return wh_error(ctx, WH_ERR_NOMEM, "out of memory for class names");
    memcpy(p[nm->n], s, len);
    p[nm->n][len] = '\0';
    nm->n++;
    return WH_OK;
}

/* One name a line, surrounding blanks trimmed; darknet gives line k to class
 * k, so a blank line before the last name is refused rather than shifting
 * every later class (blank lines at the end are fine). */
static wh_status wh__names_read(const char *path, wh__names *nm, wh_ctx *ctx)
{
    FILE *f = fopen(path, "rb");
    if (!f) return wh_error(ctx, WH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char line[1024];
    int lineno = 0, blank_at = 0;
    wh_status st = WH_OK;
    while (st == WH_OK && fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            st = wh_error(ctx, WH_ERR_PARSE, "%s:%d: line too long for a class name", path, lineno);
            break;
        }
        char *s = line;
        if (lineno == 1 && !strncmp(s, "\xEF\xBB\xBF", 3)) s += 3; /* UTF-8 byte order mark */
        while (*s && isspace((unsigned char)*s)) s++;
        len = strlen(s);
        while (len && isspace((unsigned char)s[len - 1])) len--;
        if (!len) {
            if (!blank_at) blank_at = lineno;
            continue;
        }
        if (blank_at) {
            st = wh_error(ctx, WH_ERR_PARSE, "%s:%d: blank line among the class names (line k names class k-1)",
                          path, blank_at);
            break;
        }
        st = wh__names_push(nm, s, len, ctx);
    }
    if (st == WH_OK && ferror(f)) st = wh_error(ctx, WH_ERR_IO, "%s: read error", path);
    fclose(f);
    if (st == WH_OK && nm->n == 0) st = wh_error(ctx, WH_ERR_PARSE, "%s: no class names", path);
    return st;
}

/* A VOC root's classes.txt when there is one (cheap: no annotations read),
 * otherwise the names the dataset loader gives (the 20 VOC classes, a
 * VOCdevkit's, a .data file's names=). */
static wh_status wh__names_from_data(const char *path, wh__names *nm, wh_ctx *ctx)
{
    struct stat sb;
    size_t n = strlen(path);
    char *classes = malloc(n + sizeof("/classes.txt"));
    if (!classes) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    snprintf(classes, n + sizeof("/classes.txt"), "%s/classes.txt", path);
    const int have_txt = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && stat(classes, &sb) == 0;
    wh_status st;
    if (have_txt) {
        st = wh__names_read(classes, nm, ctx);
    } else {
        wh_dataset *ds = NULL;
        st = wh_dataset_open(path, "test", &ds, ctx);
        for (int i = 0; st == WH_OK && i < ds->n_classes; i++)
            st = wh__names_push(nm, ds->class_names[i], strlen(ds->class_names[i]), ctx);
        wh_dataset_free(ds);
    }
    free(classes);
    return st;
}

/* ---- drawing ---------------------------------------------------------------- */

/* A saturated colour per class, hues spread by the golden ratio so that
 * neighbouring class indices differ clearly. */
static void wh__class_rgb(int cls, float rgb[3])
{
    wh_hsv_to_rgb((float)fmod(0.13 + cls * 0.618033988749895, 1.0), 0.85f, 0.95f, rgb);
}

/* Box outline (2 px; 3 px and double-size text on images of 600 px and more) with a filled label
 * "NAME 0.87" above it (inside the box when it touches the top edge). */
static void wh__draw_det(wh_image *img, const wh_det *d, const char *name)
{
    float rgb[3];
    wh__class_rgb(d->cls, rgb);
    /* VOC inclusive 1-based -> 0-based pixel indices */
    int x0 = (int)lround(d->xmin) - 1, y0 = (int)lround(d->ymin) - 1;
    int x1 = (int)lround(d->xmax) - 1, y1 = (int)lround(d->ymax) - 1;
    const int side = img->w < img->h ? img->w : img->h;
    const int thick = side >= 600 ? 3 : 2, scale = side >= 600 ? 2 : 1;
    wh_image_draw_box(img, x0, y0, x1, y1, thick, rgb);
    char label[300]; /* name (< 256) + score */
    snprintf(label, sizeof(label), "%s %.2f", name, d->score);
    const int tw = (int)strlen(label) * 6 * scale + 2 * scale, th = 9 * scale;
    int ly = y0 - th >= 0 ? y0 - th : y0;
    int lx = x0 < 0 ? 0 : x0;
    if (lx + tw > img->w) lx = img->w - tw > 0 ? img->w - tw : 0;
    wh_image_fill_rect(img, lx, ly, lx + tw - 1, ly + th - 1, rgb);
    /* dark text on light colours, white on dark ones (Rec. 601 luma) */
    const float luma = 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
    const float ink[3] = {luma > 0.5f ? 0.f : 1.f, luma > 0.5f ? 0.f : 1.f, luma > 0.5f ? 0.f : 1.f};
    wh_draw_text(img, lx + scale, ly + scale, scale, label, ink);
}

/* ---- the command ------------------------------------------------------------ */

static int wh__by_score_desc(const void *a, const void *b)
{
    const wh_det *x = a, *y = b;
    return (x->score < y->score) - (x->score > y->score);
}

static wh_status wh__detect(const char *ckpt, const char *image_path, const wh_eval_opts *eo, int n_names,
                            wh_det **dets, int *n, int *n_classes, wh_ctx *ctx)
{
    wh_net *net = NULL;
    const wh_net_opts no = {.batch = 1, .train = 0, .blocked = 1};
    WH_TRY(wh_ckpt_build_net(ckpt, &no, &net, NULL, ctx));
    wh_status st = WH_OK;
    *n_classes = 0;
    for (int i = 0; st == WH_OK && i < net->n_layers; i++) {
        const wh_head_ops *h = wh_head_of(&net->layers[i]);
        if (!h) continue;
        const int c = h->classes(&net->layers[i]);
        if (*n_classes && c != *n_classes)
            st = wh_error(ctx, WH_ERR_CFG, "%s: the detection heads disagree on the class count (%d, then %d at layer %d)",
                          ckpt, *n_classes, c, i);
        *n_classes = c;
    }
    if (st == WH_OK && !*n_classes)
        st = wh_error(ctx, WH_ERR_ARG, "%s: the network has no detection head ([yolo] layer) to detect with", ckpt);
    if (st == WH_OK && n_names && n_names != *n_classes)
        st = wh_error(ctx, WH_ERR_ARG, "%s predicts %d classes but %d class names were given", ckpt, *n_classes,
                      n_names);
    /* One sample without objects: the loader only needs its image. */
    wh_sample s = {.id = (char *)"image", .image_path = (char *)image_path};
    wh_dataset d = {.n_classes = *n_classes, .n = 1, .samples = &s, .source = (char *)image_path};
    wh_loader_opts lo;
    wh_loader_opts_default(&lo, net->in_shape.w, net->in_shape.h, 1);
    lo.train = 0;
    lo.prefetch = 0;
    lo.letterbox = net->hp.letter_box;
    lo.max_boxes = 1;
    wh_truth truth[1];
    wh_xform xf;
    int sample = 0, cap = 0;
    if (st == WH_OK) st = wh_loader_make(&d, &lo, 0, 0, net->input, truth, &xf, ctx);
    if (st == WH_OK) st = wh_net_forward(net, 0, ctx);
    if (st == WH_OK) {
        wh_batch b = {.n = 1, .images = net->input, .truth = truth, .sample = &sample, .xform = &xf};
        st = wh_detect_batch(net, &b, eo, dets, n, &cap, ctx);
    }
    if (st == WH_OK) qsort(*dets, (size_t)*n, sizeof(wh_det), wh__by_score_desc);
    wh_net_destroy(net);
    return st;
}

int wh_cmd_detect(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const char *ckpt = NULL, *image_path = NULL, *out = NULL, *names_path = NULL, *data = NULL;
    wh_eval_opts eo;
    wh_eval_opts_default(&eo);
    eo.conf_thresh = 0.25f;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        double d;
        if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            if (!(out = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--conf")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 0, 1, &d)) return 2;
            eo.conf_thresh = (float)d;
        } else if (!strcmp(a, "--nms")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 0, 1, &d)) return 2;
            eo.nms_thresh = (float)d;
        } else if (!strcmp(a, "--names")) {
            if (!(names_path = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--data")) {
            if (!(data = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--threads")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 4096, &threads)) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "whittle: error: detect: unknown option '%s' (see whittle detect --help)\n", a);
            return 2;
        } else if (!ckpt) {
            ckpt = a;
        } else if (!image_path) {
            image_path = a;
        } else {
            fprintf(stderr, "whittle: error: detect: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!ckpt || !image_path) {
        fprintf(stderr, "whittle: error: detect needs a checkpoint and an image (see whittle detect --help)\n");
        return 2;
    }
    if (names_path && data) {
        fprintf(stderr, "whittle: error: detect: give --names or --data, not both\n");
        return 2;
    }
    wh_app_threads(&ctx, threads);

    int rc = 1, n = 0, n_classes = 0;
    wh__names nm = {0, NULL};
    wh_det *dets = NULL;
    wh_image img = {0};
    if (names_path && wh__names_read(names_path, &nm, &ctx) != WH_OK) goto done;
    if (data && wh__names_from_data(data, &nm, &ctx) != WH_OK) goto done;
    if (wh__detect(ckpt, image_path, &eo, nm.n, &dets, &n, &n_classes, &ctx) != WH_OK) goto done;
    if (out && wh_image_load(image_path, &img, &ctx) != WH_OK) goto done;
    for (int i = 0; i < n; i++) {
        const wh_det *d = &dets[i];
        char name[256];
        if (nm.n) snprintf(name, sizeof(name), "%s", nm.name[d->cls]);
        else snprintf(name, sizeof(name), "class %d", d->cls);
        if (out) wh__draw_det(&img, d, name);
        /* blanks would split the name into fields of this line */
        for (char *p = name; *p; p++)
            if (isspace((unsigned char)*p)) *p = '_';
        printf("%s %.6f %.1f %.1f %.1f %.1f\n", name, d->score, d->xmin, d->ymin, d->xmax, d->ymax);
    }
    if (out && wh_image_save_png(out, &img, &ctx) != WH_OK) goto done;
    wh_app_print_warnings(&ctx);
    fprintf(stderr, "%s: %d box%s above %g", image_path, n, n == 1 ? "" : "es", eo.conf_thresh);
    if (out) fprintf(stderr, ", drawn in %s", out);
    fprintf(stderr, "\n");
    rc = 0;
done:
    if (rc) wh_app_fail(&ctx);
    wh_image_free(&img);
    free(dets);
    wh__names_free(&nm);
    return rc;
}
