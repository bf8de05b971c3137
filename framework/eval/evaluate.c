#include "framework/eval/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/head.h"

void wh_eval_opts_default(wh_eval_opts *o)
{
    o->conf_thresh = 0.005f;
    o->nms_thresh = 0.45f;
    o->nms = WH_NMS_GREEDY;
    o->max_per_image = 0;
}

static int wh__by_score_desc(const void *a, const void *b)
{
    const wh_det *x = a, *y = b;
    return (x->score < y->score) - (x->score > y->score);
}

static wh_status wh__grow(wh_det **dets, int *cap, int need, wh_ctx *ctx)
{
    if (need <= *cap) return WH_OK;
    int c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    wh_det *p = realloc(*dets, (size_t)c * sizeof(wh_det));
    if (!p) return wh_error(ctx, WH_ERR_NOMEM, "out of memory for detections");
    *dets = p;
    *cap = c;
    return WH_OK;
}

/* Clips a detection to its image (VOC corners, 1-based inclusive);
 * 0 when nothing of it is left. */
static int wh__clip(wh_det *e, int orig_w, int orig_h)
{
    e->xmin = fmaxf(e->xmin, 1.f);
    e->ymin = fmaxf(e->ymin, 1.f);
    e->xmax = fminf(e->xmax, (float)orig_w);
    e->ymax = fminf(e->ymax, (float)orig_h);
    return e->xmax > e->xmin - 1.f && e->ymax > e->ymin - 1.f;
}

wh_status wh_detect_batch(const wh_net *net, const wh_batch *b, const wh_eval_opts *o, wh_det **dets,
                          int *n, int *cap, wh_ctx *ctx)
{
    const int W = net->in_shape.w, H = net->in_shape.h;
    /* one buffer for every head of every image, grown as needed */
    wh_detection *d = NULL;
    float *pool = NULL;
    size_t d_cap = 0, pool_cap = 0;
    wh_status st = WH_OK;
    for (int i = 0; st == WH_OK && i < b->n; i++) {
        const int first = *n;
        const wh_xform *xf = &b->xform[i];
        for (int li = 0; st == WH_OK && li < net->n_layers; li++) {
            const wh_layer *l = &net->layers[li];
            const wh_head_ops *h = wh_head_of(l);
            if (!h) continue;
            const int classes = h->classes(l);
            const int cnt = h->count_detections(l, i, o->conf_thresh);
            if (!cnt) continue;
            if ((size_t)cnt > d_cap || (size_t)cnt * (size_t)classes > pool_cap) {
                free(d);
                free(pool);
                d_cap = (size_t)cnt;
                pool_cap = (size_t)cnt * (size_t)classes;
                d = malloc(d_cap * sizeof(*d));
                pool = malloc(pool_cap * sizeof(float));
                if (!d || !pool) {
                    st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
                    break;
                }
            }
            int got = 0;
            /* boxes in input pixels: the "original" is the input itself */
            st = h->get_detections(l, i, W, H, W, H, o->conf_thresh, 0, d, cnt, pool, &got, ctx);
            for (int k = 0; st == WH_OK && k < got; k++) {
                /* input pixels -> original pixels (continuous), then VOC
                 * corners; not clipped yet: NMS compares the boxes as the
                 * network drew them, as darknet does */
                double x0 = (d[k].box.x - d[k].box.w / 2), x1 = (d[k].box.x + d[k].box.w / 2);
                double y0 = (d[k].box.y - d[k].box.h / 2), y1 = (d[k].box.y + d[k].box.h / 2);
                if (xf->flip) {
                    double t = W - x1;
                    x1 = W - x0;
                    x0 = t;
                }
                x0 = (x0 - xf->dx) / xf->sx;
                x1 = (x1 - xf->dx) / xf->sx;
                y0 = (y0 - xf->dy) / xf->sy;
                y1 = (y1 - xf->dy) / xf->sy;
                for (int c = 0; c < classes; c++) {
                    if (d[k].prob[c] <= o->conf_thresh) continue;
                    st = wh__grow(dets, cap, *n + 1, ctx);
                    if (st != WH_OK) break;
                    wh_det *e = &(*dets)[(*n)++];
                    e->image = b->sample[i];
                    e->cls = c;
                    e->score = d[k].prob[c];
                    e->xmin = (float)(x0 + 1);
                    e->ymin = (float)(y0 + 1);
                    e->xmax = (float)x1;
                    e->ymax = (float)y1;
                }
            }
        }
        if (st != WH_OK) break;
        int keep = *n - first;
        st = wh_nms(*dets + first, keep, o->nms_thresh, 1, o->nms, WH_NMS_DIOU_BETA, &keep, ctx);
        if (st != WH_OK) break;
        /* then clipped to the image; a box wholly outside it goes */
        int kept = 0;
        for (int k = 0; k < keep; k++) {
            wh_det e = (*dets)[first + k];
            if (wh__clip(&e, xf->orig_w, xf->orig_h)) (*dets)[first + kept++] = e;
        }
        keep = kept;
        if (o->max_per_image > 0 && keep > o->max_per_image) {
            qsort(*dets + first, (size_t)keep, sizeof(wh_det), wh__by_score_desc);
            keep = o->max_per_image;
        }
        *n = first + keep;
    }
    free(d);
    free(pool);
    return st;
}

wh_status wh_detect_dataset(wh_net *net, const wh_dataset *d, const wh_eval_opts *o, int shard, int n_shards,
                            wh_det **dets, int *n, int *cap, wh_ctx *ctx)
{
    if (n_shards < 1 || shard < 0 || shard >= n_shards)
        return wh_error(ctx, WH_ERR_ARG, "evaluation shard %d of %d", shard, n_shards);
    wh_loader_opts lo;
    wh_loader_opts_default(&lo, net->in_shape.w, net->in_shape.h, net->in_shape.n);
    lo.train = 0;
    lo.prefetch = 1;
    lo.letterbox = net->hp.letter_box; /* as trained (darknet's validate follows letter_box) */
    lo.stride = lo.batch * n_shards;
    lo.offset = lo.batch * shard;
    const long nb = (d->n + lo.stride - 1) / lo.stride;
    if (d->n <= lo.offset) return WH_OK; /* a share past the end: nothing to do */
    wh_loader *ld = NULL;
    WH_TRY(wh_loader_create(d, &lo, &ld, ctx));
    wh_status st = WH_OK;
    for (long k = 0; st == WH_OK && k < nb; k++) {
        const wh_batch *b;
        st = wh_loader_next(ld, &b, ctx);
        if (st != WH_OK || b->n == 0) break;
        memcpy(net->input, b->images, (size_t)b->n * 3 * lo.width * lo.height * sizeof(float));
        st = wh_net_forward(net, 0, ctx);
        if (st == WH_OK) st = wh_detect_batch(net, b, o, dets, n, cap, ctx);
    }
    wh_loader_destroy(ld);
    return st;
}

wh_status wh_evaluate(wh_net *net, const wh_dataset *d, const wh_eval_opts *o, wh_metric m,
                      wh_map_result *res, wh_det **dets_out, int *n_out, wh_ctx *ctx)
{
    wh_det *dets = NULL;
    int n = 0, cap = 0;
    wh_status st = wh_detect_dataset(net, d, o, 0, 1, &dets, &n, &cap, ctx);
    if (st == WH_OK) st = wh_map_eval(d, dets, n, m, res, ctx);
    if (st == WH_OK && dets_out) {
        *dets_out = dets;
        *n_out = n;
    } else {
        free(dets);
    }
    return st;
}
