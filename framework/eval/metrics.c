/* whittle: box overlap, NMS, mAP (VOC07, VOC2010+, COCO) and detection files.
 * The contracts, and where each follows a reference, are in metrics.h. */
#include "framework/eval/metrics.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "framework/core/fileio.h"

/* ---- overlaps ---- */

double wh_box_iou(wh_rect a, wh_rect b)
{
    double iw = fmin(a.xmax, b.xmax) - fmax(a.xmin, b.xmin);
    double ih = fmin(a.ymax, b.ymax) - fmax(a.ymin, b.ymin);
    if (iw <= 0 || ih <= 0) return 0;
    double inter = iw * ih;
    double uni = ((double)a.xmax - a.xmin) * ((double)a.ymax - a.ymin) +
                 ((double)b.xmax - b.xmin) * ((double)b.ymax - b.ymin) - inter;
    return uni > 0 ? inter / uni : 0;
}

/* The devkit's intersection (+1 widths); 0 when it skips the pair. */
static double wh__inter_voc(wh_rect a, wh_rect b)
{
    double iw = fmin(a.xmax, b.xmax) - fmax(a.xmin, b.xmin) + 1.0;
    double ih = fmin(a.ymax, b.ymax) - fmax(a.ymin, b.ymin) + 1.0;
    return (iw > 0 && ih > 0) ? iw * ih : 0;
}

static double wh__area_voc(wh_rect a)
{
    return ((double)a.xmax - a.xmin + 1.0) * ((double)a.ymax - a.ymin + 1.0);
}

double wh_box_iou_voc(wh_rect a, wh_rect b)
{
    double inter = wh__inter_voc(a, b);
    if (inter <= 0) return 0;
    /* The devkit's order of operations: det area + gt area - intersection. */
    return inter / (wh__area_voc(a) + wh__area_voc(b) - inter);
}

double wh_box_diou(wh_rect a, wh_rect b, double beta)
{
    double cw = fmax(a.xmax, b.xmax) - fmin(a.xmin, b.xmin);
    double ch = fmax(a.ymax, b.ymax) - fmin(a.ymin, b.ymin);
    double c = cw * cw + ch * ch;
    double iou = wh_box_iou(a, b);
    if (c == 0) return iou;
    double dx = ((double)a.xmin + a.xmax) / 2 - ((double)b.xmin + b.xmax) / 2;
    double dy = ((double)a.ymin + a.ymax) / 2 - ((double)b.ymin + b.ymax) / 2;
    return iou - pow((dx * dx + dy * dy) / c, beta);
}

static wh_rect wh__det_box(const wh_det *d)
{
    return (wh_rect){d->xmin, d->ymin, d->xmax, d->ymax};
}

static wh_rect wh__obj_box(const wh_object *o)
{
    return (wh_rect){o->xmin, o->ymin, o->xmax, o->ymax};
}

/* ---- sorting: qsort is not stable, so every key ends with the input index ---- */

typedef struct wh__key {
    int cls, image;
    float score;
    int idx; /* into the caller's array */
} wh__key;

static int wh__cmp_score_desc(const wh__key *a, const wh__key *b)
{
    if (a->score > b->score) return -1;
    if (a->score < b->score) return 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* image, then score descending: NMS, and COCO's per-image lists. */
static int wh__cmp_image(const void *pa, const void *pb)
{
    const wh__key *a = pa, *b = pb;
    if (a->image != b->image) return a->image < b->image ? -1 : 1;
    return wh__cmp_score_desc(a, b);
}

/* class, then score descending: the VOC devkit's per-class ranking. */
static int wh__cmp_cls(const void *pa, const void *pb)
{
    const wh__key *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    return wh__cmp_score_desc(a, b);
}

/* class, image, score descending: COCO evaluates per (class, image). */
static int wh__cmp_cls_image(const void *pa, const void *pb)
{
    const wh__key *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    return wh__cmp_image(a, b);
}

/* ---- NMS ---- */

static const char *const wh__nms_names[] = {"greedy", "diou"};
_Static_assert(sizeof(wh__nms_names) / sizeof(wh__nms_names[0]) == WH_NMS_KIND_COUNT,
               "NMS names must match the enum");

const char *wh_nms_kind_name(wh_nms_kind k)
{
    return ((int)k >= 0 && k < WH_NMS_KIND_COUNT) ? wh__nms_names[k] : "?";
}

wh_status wh_nms(wh_det *dets, int n, float iou_thresh, int per_class, wh_nms_kind kind, double beta,
                 int *n_keep, wh_ctx *ctx)
{
    if (n < 0 || (n > 0 && !dets) || !n_keep) return wh_error(ctx, WH_ERR_ARG, "nms: bad arguments");
    if ((int)kind < 0 || kind >= WH_NMS_KIND_COUNT)
        return wh_error(ctx, WH_ERR_ARG, "nms: unknown kind %d", (int)kind);
    for (int i = 0; i < n; i++)
        if (isnan(dets[i].score)) return wh_error(ctx, WH_ERR_ARG, "nms: detection %d has a NaN score", i);
    *n_keep = 0;
    if (n == 0) return WH_OK;
    wh__key *keys = malloc((size_t)n * sizeof(*keys));
    unsigned char *gone = calloc((size_t)n, 1); /* by input index */
    if (!keys || !gone) {
        free(keys);
        free(gone);
        return wh_error(ctx, WH_ERR_NOMEM, "nms: out of memory for %d detections", n);
    }
    for (int i = 0; i < n; i++) keys[i] = (wh__key){dets[i].cls, dets[i].image, dets[i].score, i};
    qsort(keys, (size_t)n, sizeof(*keys), wh__cmp_image);
    for (int a = 0; a < n;) {
        int b = a;
        while (b < n && keys[b].image == keys[a].image) b++;
        for (int i = a; i < b; i++) {
            if (gone[keys[i].idx]) continue;
            const wh_det *di = &dets[keys[i].idx];
            wh_rect bi = wh__det_box(di);
            for (int j = i + 1; j < b; j++) {
                const wh_det *dj = &dets[keys[j].idx];
                if (gone[keys[j].idx] || (per_class && dj->cls != di->cls)) continue;
                double ov = kind == WH_NMS_DIOU ? wh_box_diou(bi, wh__det_box(dj), beta)
                                                : wh_box_iou(bi, wh__det_box(dj));
                if (ov > iou_thresh) gone[keys[j].idx] = 1;
            }
        }
        a = b;
    }
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!gone[i]) dets[k++] = dets[i];
    *n_keep = k;
    free(keys);
    free(gone);
    return WH_OK;
}

/* ---- metric names ---- */

static const struct {
    const char *name, *title;
} wh__metrics[] = {
    {"voc07", "mAP@0.5 (VOC07 11-point)"},
    {"voc", "mAP@0.5 (VOC2010+ all-point)"},
    {"coco", "mAP@[0.5:0.95] (COCO 101-point)"},
};
_Static_assert(sizeof(wh__metrics) / sizeof(wh__metrics[0]) == WH_METRIC_COUNT,
               "metric names must match the enum");

const char *wh_metric_name(wh_metric m)
{
    return ((int)m >= 0 && m < WH_METRIC_COUNT) ? wh__metrics[m].name : "?";
}

const char *wh_metric_title(wh_metric m)
{
    return ((int)m >= 0 && m < WH_METRIC_COUNT) ? wh__metrics[m].title : "?";
}

wh_status wh_metric_parse(const char *name, wh_metric *out, wh_ctx *ctx)
{
    for (int i = 0; i < WH_METRIC_COUNT; i++)
        if (name && !strcmp(name, wh__metrics[i].name)) {
            *out = (wh_metric)i;
            return WH_OK;
        }
    char known[128] = "";
    for (int i = 0; i < WH_METRIC_COUNT; i++) {
        strncat(known, i ? ", " : "", sizeof(known) - strlen(known) - 1);
        strncat(known, wh__metrics[i].name, sizeof(known) - strlen(known) - 1);
    }
    return wh_error(ctx, WH_ERR_ARG, "unknown metric '%s' (known: %s)", name ? name : "(null)", known);
}

/* ---- VOC devkit ---- */

/* 11-point AP. ctp/cfp: cumulative TP and FP counts at each ranked
 * detection (ignored ones left out: they add a point with the same TP and FP
 * as the one before, which changes no maximum). */
static double wh__ap_voc07(const int *ctp, const int *cfp, int nd, int npos)
{
    double ap = 0;
    for (int k = 0; k <= 10; k++) {
        double p = 0;
        for (int i = 0; i < nd; i++) {
            /* recall >= k/10, exactly, in integers */
            if ((long long)ctp[i] * 10 < (long long)k * npos) continue;
            double pr = (double)ctp[i] / ((double)ctp[i] + cfp[i]);
            if (pr > p) p = pr;
        }
        ap = ap + p / 11;
    }
    return ap;
}

/* All-point AP, VOCevaldet.m of VOC2010+: sentinels, precision made
 * non-increasing from the right, sum of recall steps times precision. */
static double wh__ap_voc(const int *ctp, const int *cfp, int nd, int npos, double *mrec, double *mpre)
{
    mrec[0] = 0;
    mpre[0] = 0;
    for (int i = 0; i < nd; i++) {
        mrec[i + 1] = (double)ctp[i] / npos;
        mpre[i + 1] = (double)ctp[i] / ((double)ctp[i] + cfp[i]);
    }
    mrec[nd + 1] = 1;
    mpre[nd + 1] = 0;
    for (int i = nd; i >= 0; i--) mpre[i] = fmax(mpre[i], mpre[i + 1]);
    double ap = 0;
    for (int i = 1; i <= nd + 1; i++)
        if (mrec[i] != mrec[i - 1]) ap += (mrec[i] - mrec[i - 1]) * mpre[i];
    return ap;
}

/* keys: the detections sorted by wh__cmp_cls. obj_off: first object of each
 * sample in a flat numbering (n + 1 entries). */
static wh_status wh__eval_voc(const wh_dataset *gt, const wh_det *dets, const wh__key *keys, int n,
                              const int *obj_off, wh_metric m, wh_map_result *res, wh_ctx *ctx)
{
    wh_status st = WH_OK;
    unsigned char *detected = calloc((size_t)obj_off[gt->n] + 1, 1);
    int *ctp = malloc(((size_t)n + 1) * sizeof(int)), *cfp = malloc(((size_t)n + 1) * sizeof(int));
    double *mrec = malloc(((size_t)n + 2) * sizeof(double)), *mpre = malloc(((size_t)n + 2) * sizeof(double));
    if (!detected || !ctp || !cfp || !mrec || !mpre) {
        st = wh_error(ctx, WH_ERR_NOMEM, "map: out of memory for %d detections", n);
        goto done;
    }
    for (int a = 0, c = 0; c < gt->n_classes; c++) {
        int b = a;
        while (b < n && keys[b].cls == c) b++;
        memset(detected, 0, (size_t)obj_off[gt->n]);
        int nd = 0, tp = 0, fp = 0;
        for (int k = a; k < b; k++) {
            const wh_det *d = &dets[keys[k].idx];
            const wh_sample *s = &gt->samples[d->image];
            double ovmax = -INFINITY;
            int jmax = -1;
            for (int j = 0; j < s->n_obj; j++) {
                if (s->obj[j].cls != c) continue;
                double ov = wh_box_iou_voc(wh__det_box(d), wh__obj_box(&s->obj[j]));
                if (ov > ovmax) {
                    ovmax = ov;
                    jmax = j;
                }
            }
            if (ovmax > 0.5) {
                if (s->obj[jmax].difficult) continue; /* neither TP nor FP */
                unsigned char *seen = &detected[obj_off[d->image] + jmax];
                if (!*seen) {
                    *seen = 1;
                    tp++;
                } else {
                    fp++;
                }
            } else {
                fp++;
            }
            ctp[nd] = tp;
            cfp[nd] = fp;
            nd++;
        }
        wh_map_class *r = &res->cls[c];
        r->n_dets = b - a;
        if (r->npos == 0) r->ap = NAN;
        else if (m == WH_METRIC_VOC07) r->ap = wh__ap_voc07(ctp, cfp, nd, r->npos);
        else r->ap = wh__ap_voc(ctp, cfp, nd, r->npos, mrec, mpre);
        a = b;
    }
done:
    free(detected);
    free(ctp);
    free(cfp);
    free(mrec);
    free(mpre);
    return st;
}

/* ---- COCO (pycocotools COCOeval) ---- */

#define WH__COCO_T 10      /* IoU thresholds */
#define WH__COCO_R 101     /* recall thresholds */
#define WH__COCO_MAXDET 100

enum { WH__IGN = 0, WH__TP = 1, WH__FP = 2 };

typedef struct wh__rec {
    wh__key key;                       /* score, and the rank in image order as idx */
    unsigned char state[WH__COCO_T];   /* per IoU threshold */
} wh__rec;

static int wh__cmp_rec(const void *pa, const void *pb)
{
    return wh__cmp_score_desc(&((const wh__rec *)pa)->key, &((const wh__rec *)pb)->key);
}

/* numpy.linspace(start, stop, num): i * ((stop - start) / (num - 1)) + start,
 * the last one stop itself; pycocotools' thresholds are these doubles. */
static double wh__linspace(double start, double stop, int num, int i)
{
    if (i == num - 1) return stop;
    return (double)i * ((stop - start) / (num - 1)) + start;
}

/* evaluateImg for one image and class: dets d[0..nd) sorted, objects of the
 * class in g[0..ng) with the non-difficult ones first; writes recs[0..nd). */
static void wh__coco_image(const wh_det *dets, const wh__key *d, int nd, const wh_object *const *g, int ng,
                           double *ious, unsigned char *gtm, wh__rec *recs)
{
    for (int i = 0; i < nd; i++) {
        wh_rect bd = wh__det_box(&dets[d[i].idx]);
        for (int j = 0; j < ng; j++) {
            wh_rect bg = wh__obj_box(g[j]);
            double inter = wh__inter_voc(bd, bg);
            /* maskUtils.iou: a crowd region's overlap is over the detection's area */
            double u = g[j]->difficult ? wh__area_voc(bd) : wh__area_voc(bd) + wh__area_voc(bg) - inter;
            ious[(size_t)i * ng + j] = inter > 0 ? inter / u : 0;
        }
    }
    for (int t = 0; t < WH__COCO_T; t++) {
        double thr = wh__linspace(0.5, 0.95, WH__COCO_T, t);
        memset(gtm, 0, (size_t)ng);
        for (int i = 0; i < nd; i++) {
            double iou = fmin(thr, 1 - 1e-10);
            int m = -1;
            for (int j = 0; j < ng; j++) {
                if (gtm[j] && !g[j]->difficult) continue;             /* taken, and not crowd */
                if (m > -1 && !g[m]->difficult && g[j]->difficult) break; /* regular match beats crowd */
                if (ious[(size_t)i * ng + j] < iou) continue;
                iou = ious[(size_t)i * ng + j];
                m = j;
            }
            if (m == -1) {
                recs[i].state[t] = WH__FP;
            } else {
                recs[i].state[t] = g[m]->difficult ? WH__IGN : WH__TP;
                gtm[m] = 1;
            }
        }
    }
}

/* accumulate for one class: recs sorted by score; returns the mean of the
 * 10 x 101 interpolated precisions. */
static double wh__coco_ap(const wh__rec *recs, int nr, int npos, double *rc, double *pr)
{
    double sum = 0;
    for (int t = 0; t < WH__COCO_T; t++) {
        int tp = 0, fp = 0;
        for (int i = 0; i < nr; i++) {
            tp += recs[i].state[t] == WH__TP;
            fp += recs[i].state[t] == WH__FP;
            rc[i] = (double)tp / npos;
            pr[i] = (double)tp / (((double)fp + tp) + DBL_EPSILON); /* numpy: tp/(fp+tp+spacing(1)) */
        }
        for (int i = nr - 1; i > 0; i--)
            if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
        int i = 0;
        for (int k = 0; k < WH__COCO_R; k++) {
            double r = wh__linspace(0.0, 1.0, WH__COCO_R, k);
            while (i < nr && rc[i] < r) i++; /* searchsorted(rc, r, side='left') */
            if (i == nr) break;              /* unreached recall: precision 0 */
            sum += pr[i];
        }
    }
    return sum / (WH__COCO_T * WH__COCO_R);
}

/* keys: the detections sorted by wh__cmp_cls_image. */
static wh_status wh__eval_coco(const wh_dataset *gt, const wh_det *dets, const wh__key *keys, int n,
                               wh_map_result *res, wh_ctx *ctx)
{
    wh_status st = WH_OK;
    int max_obj = 0;
    for (int i = 0; i < gt->n; i++)
        if (gt->samples[i].n_obj > max_obj) max_obj = gt->samples[i].n_obj;
    size_t nr_max = (size_t)n + 1;
    wh__rec *recs = malloc(nr_max * sizeof(*recs));
    double *rc = malloc(nr_max * sizeof(double)), *pr = malloc(nr_max * sizeof(double));
    const wh_object **g = malloc(((size_t)max_obj + 1) * sizeof(*g));
    unsigned char *gtm = malloc((size_t)max_obj + 1);
    double *ious = malloc(((size_t)WH__COCO_MAXDET * max_obj + 1) * sizeof(double));
    if (!recs || !rc || !pr || !g || !gtm || !ious) {
        st = wh_error(ctx, WH_ERR_NOMEM, "map: out of memory for %d detections", n);
        goto done;
    }
    for (int a = 0, c = 0; c < gt->n_classes; c++) {
        int b = a, nr = 0;
        while (b < n && keys[b].cls == c) b++;
        /* Every image with objects of c or detections of c; the detections
         * of one image are keys[p..q). */
        for (int img = 0, p = a; img < gt->n; img++) {
            int q = p;
            while (q < b && keys[q].image == img) q++;
            const wh_sample *s = &gt->samples[img];
            int ng = 0;
            for (int pass = 0; pass < 2; pass++) /* regular objects first, then crowd */
                for (int j = 0; j < s->n_obj; j++)
                    if (s->obj[j].cls == c && (s->obj[j].difficult != 0) == pass) g[ng++] = &s->obj[j];
            int nd = q - p < WH__COCO_MAXDET ? q - p : WH__COCO_MAXDET;
            wh__coco_image(dets, keys + p, nd, g, ng, ious, gtm, recs + nr);
            for (int i = 0; i < nd; i++) recs[nr + i].key = (wh__key){c, img, keys[p + i].score, nr + i};
            nr += nd;
            p = q;
        }
        qsort(recs, (size_t)nr, sizeof(*recs), wh__cmp_rec);
        wh_map_class *r = &res->cls[c];
        r->n_dets = b - a;
        r->ap = r->npos ? wh__coco_ap(recs, nr, r->npos, rc, pr) : NAN;
        a = b;
    }
done:
    free(recs);
    free(rc);
    free(pr);
    free(g);
    free(gtm);
    free(ious);
    return st;
}

/* ---- evaluation ---- */

void wh_map_result_free(wh_map_result *res)
{
    if (!res) return;
    free(res->cls);
    res->cls = NULL;
    res->n_classes = 0;
}

wh_status wh_map_eval(const wh_dataset *gt, const wh_det *dets, int n, wh_metric m, wh_map_result *res,
                      wh_ctx *ctx)
{
    if (res) memset(res, 0, sizeof(*res)); /* freeable whatever happens */
    if (!gt || !res || n < 0 || (n > 0 && !dets) || gt->n_classes < 0 || gt->n < 0)
        return wh_error(ctx, WH_ERR_ARG, "map: bad arguments");
    if ((int)m < 0 || m >= WH_METRIC_COUNT) return wh_error(ctx, WH_ERR_ARG, "map: unknown metric %d", (int)m);
    for (int i = 0; i < n; i++) {
        const wh_det *d = &dets[i];
        if (d->image < 0 || d->image >= gt->n)
            return wh_error(ctx, WH_ERR_ARG, "map: detection %d: image %d is not in the dataset (%d images)", i,
                            d->image, gt->n);
        if (d->cls < 0 || d->cls >= gt->n_classes)
            return wh_error(ctx, WH_ERR_ARG, "map: detection %d: class %d is not in the dataset (%d classes)", i,
                            d->cls, gt->n_classes);
        if (isnan(d->score)) return wh_error(ctx, WH_ERR_ARG, "map: detection %d has a NaN score", i);
    }
    wh_status st = WH_OK;
    wh__key *keys = malloc(((size_t)n + 1) * sizeof(*keys));
    int *obj_off = malloc(((size_t)gt->n + 1) * sizeof(int));
    res->cls = calloc((size_t)gt->n_classes + 1, sizeof(*res->cls));
    if (!keys || !obj_off || !res->cls) {
        st = wh_error(ctx, WH_ERR_NOMEM, "map: out of memory");
        goto done;
    }
    res->metric = m;
    res->n_classes = gt->n_classes;
    obj_off[0] = 0;
    for (int i = 0; i < gt->n; i++) {
        const wh_sample *s = &gt->samples[i];
        for (int j = 0; j < s->n_obj; j++) {
            int c = s->obj[j].cls;
            if (c < 0 || c >= gt->n_classes) {
                st = wh_error(ctx, WH_ERR_ARG, "map: image '%s' object %d: class %d out of range (%d classes)",
                              s->id ? s->id : "?", j, c, gt->n_classes);
                goto done;
            }
            if (!s->obj[j].difficult) res->cls[c].npos++;
        }
        obj_off[i + 1] = obj_off[i] + s->n_obj;
    }
    for (int i = 0; i < n; i++) keys[i] = (wh__key){dets[i].cls, dets[i].image, dets[i].score, i};
    qsort(keys, (size_t)n, sizeof(*keys), m == WH_METRIC_COCO ? wh__cmp_cls_image : wh__cmp_cls);
    st = m == WH_METRIC_COCO ? wh__eval_coco(gt, dets, keys, n, res, ctx)
                             : wh__eval_voc(gt, dets, keys, n, obj_off, m, res, ctx);
    if (st != WH_OK) goto done;
    double sum = 0;
    for (int c = 0; c < gt->n_classes; c++)
        if (res->cls[c].npos > 0) {
            sum += res->cls[c].ap;
            res->n_valid++;
        }
    res->map = res->n_valid ? sum / res->n_valid : NAN;
done:
    free(keys);
    free(obj_off);
    if (st != WH_OK) wh_map_result_free(res);
    return st;
}

/* ---- the table ---- */

typedef struct wh__sb {
    char *buf;
    size_t cap, len;
} wh__sb;

static void wh__sb_printf(wh__sb *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void wh__sb_printf(wh__sb *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = s->len < s->cap ? vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap) : vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k > 0) s->len += (size_t)k;
}

size_t wh_map_format(const wh_map_result *res, const char *const *names, char *buf, size_t cap)
{
    wh__sb s = {buf, buf ? cap : 0, 0};
    if (s.cap) s.buf[0] = 0;
    int w = 5; /* "class" */
    for (int c = 0; c < res->n_classes; c++) {
        int l = names && names[c] ? (int)strlen(names[c]) : snprintf(NULL, 0, "class %d", c);
        if (l > w) w = l;
    }
    const char *title = wh_metric_title(res->metric);
    wh__sb_printf(&s, "%s, %d classes\n", title, res->n_classes);
    wh__sb_printf(&s, "%-*s %8s %6s %7s\n", w, "class", "AP", "GT", "dets");
    for (int c = 0; c < res->n_classes; c++) {
        const wh_map_class *r = &res->cls[c];
        char tmp[32];
        const char *name = names && names[c] ? names[c] : (snprintf(tmp, sizeof(tmp), "class %d", c), tmp);
        if (r->npos > 0)
            wh__sb_printf(&s, "%-*s %8.4f %6d %7d\n", w, name, r->ap, r->npos, r->n_dets);
        else
            wh__sb_printf(&s, "%-*s %8s %6d %7d  (no ground truth: not in the mean)\n", w, name, "n/a", r->npos,
                          r->n_dets);
    }
    if (res->n_valid > 0)
        wh__sb_printf(&s, "%s %s = %.4f over %d of %d classes\n", wh_metric_name(res->metric), title, res->map,
                      res->n_valid, res->n_classes);
    else
        wh__sb_printf(&s, "%s %s = n/a (no class has ground truth)\n", wh_metric_name(res->metric), title);
    return s.len;
}

/* ---- detection files ---- */

typedef struct wh__id {
    const char *id;
    int idx;
} wh__id;

static int wh__cmp_id(const void *pa, const void *pb)
{
    const wh__id *a = pa, *b = pb;
    int r = strcmp(a->id, b->id);
    return r ? r : (a->idx > b->idx) - (a->idx < b->idx);
}

static const char *const wh__fields[] = {"image_id", "class_name", "score", "xmin", "ymin", "xmax", "ymax"};

/* One line into d; returns WH_OK or an error naming path:line. */
static wh_status wh__parse_line(char *line, const char *path, long ln, const wh_dataset *ds, const wh__id *ids,
                                wh_det *d, wh_ctx *ctx)
{
    const char *blank = " \t\r\n\v\f";
    char *save = NULL, *tok[8];
    int nt = 0;
    for (char *t = strtok_r(line, blank, &save); t; t = strtok_r(NULL, blank, &save)) {
        if (nt == 7)
            return wh_error(ctx, WH_ERR_PARSE, "%s:%ld: extra field '%s' (expected: image_id class_name score "
                            "xmin ymin xmax ymax)", path, ln, t);
        tok[nt++] = t;
    }
    if (nt < 7)
        return wh_error(ctx, WH_ERR_PARSE, "%s:%ld: %d fields, expected 7 (image_id class_name score xmin ymin "
                        "xmax ymax): '%s' missing", path, ln, nt, wh__fields[nt]);
    wh__id key = {tok[0], -1};
    const wh__id *hit = NULL;
    /* lower bound by id only: the first entry with this id */
    size_t lo = 0, hi = (size_t)ds->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(ids[mid].id, key.id) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < (size_t)ds->n && !strcmp(ids[lo].id, key.id)) hit = &ids[lo];
    if (!hit) return wh_error(ctx, WH_ERR_PARSE, "%s:%ld: unknown image id '%s' (not in %s)", path, ln, tok[0],
                              ds->source ? ds->source : "the dataset");
    d->image = hit->idx;
    d->cls = -1;
    for (int c = 0; c < ds->n_classes; c++)
        if (!strcmp(ds->class_names[c], tok[1])) {
            d->cls = c;
            break;
        }
    if (d->cls < 0) return wh_error(ctx, WH_ERR_PARSE, "%s:%ld: unknown class '%s'", path, ln, tok[1]);
    float v[5];
    for (int k = 0; k < 5; k++) {
        char *end;
        double x = strtod(tok[2 + k], &end);
        if (end == tok[2 + k] || *end)
            return wh_error(ctx, WH_ERR_PARSE, "%s:%ld: %s is not a number: '%s'", path, ln, wh__fields[2 + k],
                            tok[2 + k]);
        v[k] = (float)x;
        if (!isfinite(x) || !isfinite(v[k]))
            return wh_error(ctx, WH_ERR_PARSE, "%s:%ld: %s is not a finite float: '%s'", path, ln,
                            wh__fields[2 + k], tok[2 + k]);
    }
    d->score = v[0];
    d->xmin = v[1];
    d->ymin = v[2];
    d->xmax = v[3];
    d->ymax = v[4];
    /* VOC's inclusive 1-based pixels: width = xmax - xmin + 1, so a box
     * under one pixel wide (written by wh_detect_dataset as x0 + 1, x1) has
     * xmax a little below xmin; only a negative width is malformed */
    if (d->xmax < d->xmin - 1 || d->ymax < d->ymin - 1)
        return wh_error(ctx, WH_ERR_PARSE, "%s:%ld: box (%s %s %s %s) has xmax < xmin - 1 or ymax < ymin - 1 (a "
                        "negative width in VOC's inclusive pixels)", path, ln, tok[3], tok[4], tok[5], tok[6]);
    return WH_OK;
}

/* The samples sorted by id, to look ids up; two samples of one id -> error. */
static wh_status wh__id_index(const wh_dataset *ds, wh__id **out, wh_ctx *ctx)
{
    wh__id *ids = malloc(((size_t)ds->n + 1) * sizeof(*ids));
    if (!ids) return wh_error(ctx, WH_ERR_NOMEM, "out of memory for %d image ids", ds->n);
    for (int i = 0; i < ds->n; i++) {
        if (!ds->samples[i].id) {
            free(ids);
            return wh_error(ctx, WH_ERR_ARG, "sample %d of %s has no id", i,
                            ds->source ? ds->source : "the dataset");
        }
        ids[i] = (wh__id){ds->samples[i].id, i};
    }
    qsort(ids, (size_t)ds->n, sizeof(*ids), wh__cmp_id);
    for (int i = 1; i < ds->n; i++)
        if (!strcmp(ids[i].id, ids[i - 1].id)) {
            wh_status st = wh_error(ctx, WH_ERR_ARG,
                                    "image id '%s' names two samples (%d and %d) of %s: a detection file cannot "
                                    "tell them apart", ids[i].id, ids[i - 1].idx, ids[i].idx,
                                    ds->source ? ds->source : "the dataset");
            free(ids);
            return st;
        }
    *out = ids;
    return WH_OK;
}

wh_status wh_dets_read(const char *path, const wh_dataset *ds, wh_det **out, int *n, wh_ctx *ctx)
{
    *out = NULL;
    *n = 0;
    wh__id *ids = NULL;
    WH_TRY(wh__id_index(ds, &ids, ctx));
    FILE *f = fopen(path, "r");
    if (!f) {
        free(ids);
        return wh_error(ctx, WH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    /* only a regular file of bounded size: /dev/zero would be one endless line */
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || (unsigned long long)sb.st_size > WH_LIST_MAX_BYTES) {
        fclose(f);
        free(ids);
        return wh_error(ctx, WH_ERR_IO, "%s: not a regular file of at most %zu MiB (a detections list)", path,
                        WH_LIST_MAX_BYTES >> 20);
    }
    wh_status st = WH_OK;
    wh_det *dets = NULL;
    int nd = 0, cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    long ln = 0;
    for (;;) {
        errno = 0;
        if (getline(&line, &line_cap, f) < 0) {
            if (ferror(f)) st = wh_error(ctx, WH_ERR_IO, "%s:%ld: read error: %s", path, ln + 1, strerror(errno));
            break;
        }
        ln++;
        const char *p = line + strspn(line, " \t\r\n\v\f");
        if (!*p || *p == '#') continue;
        if (nd == cap) {
            if (cap > (1 << 29)) {
                st = wh_error(ctx, WH_ERR_ARG, "%s:%ld: too many detections", path, ln);
                break;
            }
            int nc = cap ? 2 * cap : 1024;
            wh_det *nb = realloc(dets, (size_t)nc * sizeof(*nb));
            if (!nb) {
                st = wh_error(ctx, WH_ERR_NOMEM, "%s:%ld: out of memory", path, ln);
                break;
            }
            dets = nb;
            cap = nc;
        }
        st = wh__parse_line(line, path, ln, ds, ids, &dets[nd], ctx);
        if (st != WH_OK) break;
        nd++;
    }
    free(line);
    fclose(f);
    free(ids);
    if (st != WH_OK) {
        free(dets);
        return st;
    }
    if (nd == 0) {
        free(dets);
        dets = NULL;
    }
    *out = dets;
    *n = nd;
    return WH_OK;
}

static int wh__has_blank(const char *s)
{
    return s[strcspn(s, " \t\r\n\v\f")] != 0 || !*s;
}

wh_status wh_dets_write(const char *path, const wh_dataset *ds, const wh_det *dets, int n, wh_ctx *ctx)
{
    if (n < 0 || (n > 0 && !dets)) return wh_error(ctx, WH_ERR_ARG, "%s: bad arguments", path);
    for (int i = 0; i < n; i++) {
        const wh_det *d = &dets[i];
        if (d->image < 0 || d->image >= ds->n || d->cls < 0 || d->cls >= ds->n_classes)
            return wh_error(ctx, WH_ERR_ARG, "%s: detection %d: image %d or class %d out of range", path, i,
                            d->image, d->cls);
        const char *id = ds->samples[d->image].id, *name = ds->class_names[d->cls];
        if (!id || wh__has_blank(id) || wh__has_blank(name))
            return wh_error(ctx, WH_ERR_ARG, "%s: detection %d: image id '%s' or class '%s' is empty or has a "
                            "blank, which the format cannot hold", path, i, id ? id : "", name);
    }
    wh__sb s = {NULL, 0, 0};
    /* Two passes: measure, then write into one buffer. */
    for (int pass = 0; pass < 2; pass++) {
        s.len = 0;
        for (int i = 0; i < n; i++) {
            const wh_det *d = &dets[i];
            wh__sb_printf(&s, "%s %s %.9g %.9g %.9g %.9g %.9g\n", ds->samples[d->image].id,
                          ds->class_names[d->cls], d->score, d->xmin, d->ymin, d->xmax, d->ymax);
        }
        if (pass == 0) {
            s.cap = s.len + 1;
            s.buf = malloc(s.cap);
            if (!s.buf) return wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory for %zu bytes", path, s.cap);
        }
    }
    wh_status st = wh_file_write_atomic(path, s.buf, s.len, ctx);
    free(s.buf);
    return st;
}
