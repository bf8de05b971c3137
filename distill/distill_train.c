/* The distillation step inside the trainer (distill/distill.h). */
#include "distill.h"

#include "framework/io/checkpoint.h"
#include "framework/data/dataset.h"
#include "framework/data/image.h"
#include "framework/data/loader.h"
#include "layers/yolo.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

void wh_distill_init(wh_distill *d, const char *teacher_ckpt, const char *layers, const wh_at_opts *at)
{
    memset(d, 0, sizeof(*d));
    d->teacher_ckpt = teacher_ckpt;
    d->layers = layers;
    if (at) d->at = *at;
    else wh_at_opts_default(&d->at);
    d->beta_scale = 1.0;
    d->kd_temperature = 3.f;
    d->dump_images = 4;
}

void wh_distill_dumps(wh_distill *d, const char *data, const char *out_dir, int every, int images)
{
    d->data = data;
    d->out_dir = out_dir;
    d->dump_every = every;
    d->dump_images = images;
}

void wh_distill_free(wh_distill *d)
{
    wh_net_destroy(d->teacher);
    free(d->pairs);
    free(d->qs);
    free(d->qt);
    free(d->scratch);
    free(d->pair_loss);
    free(d->fixed);
    free(d->zt);
    free(d->zs);
    free(d->dzs);
    memset(d, 0, sizeof(*d));
}

/* The teacher at the student's mini-batch and input size (opts.dry_run:
 * only planned) and the pairs, checked against each other. */
static wh_status wh__teacher_pairs(const wh_distill *d, const wh_net *student, int dry_run, wh_net **teacher,
                                   wh_at_pair **pairs, int *n_pairs, wh_ctx *ctx)
{
    const wh_net_opts no = {.batch = student->in_shape.n,
                            .width = student->in_shape.w,
                            .height = student->in_shape.h,
                            .blocked = 1,
                            .dry_run = dry_run};
    WH_TRY(wh_ckpt_build_net(d->teacher_ckpt, &no, teacher, NULL, ctx));
    if ((*teacher)->in_shape.c != student->in_shape.c)
        return wh_error(ctx, WH_ERR_ARG, "%s: the teacher reads %d channels, the student %d", d->teacher_ckpt,
                        (*teacher)->in_shape.c, student->in_shape.c);
    if (!d->layers || !strcmp(d->layers, "auto")) WH_TRY(wh_at_pairs_auto(student, pairs, n_pairs, ctx));
    else WH_TRY(wh_at_pairs_parse(d->layers, pairs, n_pairs, ctx));
    return wh_at_pairs_check(*teacher, student, *pairs, *n_pairs, ctx);
}

/* The buffers' sizes in floats: cap, the largest paired map (n, h, w); zmax,
 * the largest head input (for teachers whose heads are blocked). */
static void wh__buffer_floats(const wh_net *teacher, const wh_net *student, const wh_at_pair *pairs, int n_pairs,
                              size_t *cap, size_t *zmax)
{
    *cap = *zmax = 1;
    for (int k = 0; k < n_pairs; k++) {
        const wh_shape s = student->layers[pairs[k].layer].out_shape;
        const size_t m = (size_t)s.n * s.h * s.w;
        *cap = m > *cap ? m : *cap;
    }
    for (int i = 0; i < teacher->n_layers; i++)
        if (wh_head_of(&teacher->layers[i]) && teacher->layers[i].in[0] >= 0) {
            const size_t m = wh_shape_count(teacher->layers[teacher->layers[i].in[0]].out_shape);
            *zmax = m > *zmax ? m : *zmax;
        }
}

/* The student's gradients that the terms seed before the backward (the
 * paired layers', the heads') kept alive from the loss on. */
static wh_status wh__pin(const wh_distill *d, const wh_at_pair *pairs, int n_pairs, wh_net *net, wh_ctx *ctx)
{
    for (int k = 0; k < n_pairs; k++) WH_TRY(wh_net_pin_dout(net, pairs[k].layer, ctx));
    for (int i = 0; (d->kd_weight > 0 || d->kd_box_weight > 0) && i < net->n_layers; i++)
        if (wh_head_of(&net->layers[i]) && net->layers[i].in[0] >= 0)
            WH_TRY(wh_net_pin_dout(net, net->layers[i].in[0], ctx));
    return WH_OK;
}

/* The memory planner's question (wh_train_hooks.plan): the teacher's arenas,
 * the buffers, the fixed dump images, and what the pins add to the
 * student's arenas, all from dry runs. */
static wh_status wh__plan(void *user, wh_cfg *cfg, const wh_net_opts *opts, size_t *bytes, const char **what,
                          wh_ctx *ctx)
{
    const wh_distill *d = user;
    *bytes = 0;
    *what = "distillation";
    wh_net_opts so = *opts;
    so.dry_run = 1;
    wh_net *s = NULL, *t = NULL;
    wh_at_pair *pairs = NULL;
    int n_pairs = 0;
    wh_status st = wh_net_create(cfg, &so, &s, ctx);
    const size_t unpinned = st == WH_OK ? wh_net_arena_total(s) : 0;
    if (st == WH_OK) st = wh__teacher_pairs(d, s, 1, &t, &pairs, &n_pairs, ctx);
    if (st == WH_OK) st = wh__pin(d, pairs, n_pairs, s, ctx);
    if (st == WH_OK) {
        size_t cap, zmax;
        wh__buffer_floats(t, s, pairs, n_pairs, &cap, &zmax);
        const size_t fixed = d->out_dir && d->data && d->dump_images > 0
                                 ? (size_t)(d->dump_images < s->in_shape.n ? d->dump_images : s->in_shape.n) * 3 *
                                       s->in_shape.w * s->in_shape.h
                                 : 0;
        *bytes = wh_net_arena_total(t) + (wh_net_arena_total(s) - unpinned) + (4 * cap + 3 * zmax + fixed) * sizeof(float) +
                 (size_t)n_pairs * sizeof(double);
    }
    free(pairs);
    wh_net_destroy(t);
    wh_net_destroy(s);
    return st;
}

/* The teacher, the pairs, buffers. */
static wh_status wh__setup(wh_distill *d, const wh_net *student, wh_ctx *ctx)
{
    WH_TRY(wh__teacher_pairs(d, student, 0, &d->teacher, &d->pairs, &d->n_pairs, ctx));
    size_t cap, zmax;
    wh__buffer_floats(d->teacher, student, d->pairs, d->n_pairs, &cap, &zmax);
    d->qs = malloc(cap * sizeof(float));
    d->qt = malloc(cap * sizeof(float));
    d->scratch = malloc(2 * cap * sizeof(float));
    d->pair_loss = calloc((size_t)d->n_pairs, sizeof(double));
    if (!d->qs || !d->qt || !d->scratch || !d->pair_loss) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    d->zt = malloc(zmax * sizeof(float));
    d->zs = malloc(zmax * sizeof(float));
    d->dzs = malloc(zmax * sizeof(float));
    if (!d->zt || !d->zs || !d->dzs) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (!d->out_dir || !d->data || d->dump_images <= 0) return WH_OK;
    /* the fixed sample the dumps show: the first images of the test split */
    wh_dataset *ds = NULL;
    if (wh_dataset_open(d->data, "test", &ds, ctx) != WH_OK || ds->n == 0) {
        wh_dataset_free(ds);
        ds = NULL;
        WH_TRY(wh_dataset_open(d->data, "train", &ds, ctx));
    }
    const int W = student->in_shape.w, H = student->in_shape.h;
    d->n_fixed = d->dump_images < ds->n ? d->dump_images : ds->n;
    if (d->n_fixed > student->in_shape.n) d->n_fixed = student->in_shape.n;
    wh_loader_opts lo;
    wh_loader_opts_default(&lo, W, H, 1);
    lo.train = 0;
    lo.letterbox = student->hp.letter_box;
    d->fixed = malloc((size_t)(d->n_fixed > 0 ? d->n_fixed : 1) * 3 * W * H * sizeof(float));
    wh_truth *truth = malloc((size_t)lo.max_boxes * sizeof(wh_truth));
    wh_status st = d->fixed && truth ? WH_OK : wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int k = 0; st == WH_OK && k < d->n_fixed; k++) {
        wh_xform xf;
        st = wh_loader_make(ds, &lo, k, 0, d->fixed + (size_t)k * 3 * W * H, truth, &xf, ctx);
    }
    free(truth);
    wh_dataset_free(ds);
    return st;
}

/* value in [0, 1] -> blue..red */
static void wh__heat(float v, float rgb[3])
{
    v = v < 0.f ? 0.f : v > 1.f ? 1.f : v;
    wh_hsv_to_rgb((1.f - v) * 0.66f, 1.f, 0.25f + 0.75f * v, rgb);
}

/* One dump: maps of the fixed images, HDF5 + PNG (image | teacher | student
 * per paired layer, for the first image). The student runs in inference
 * mode: after backward its activations are no longer needed, and inference
 * BN leaves the running statistics alone. */
static wh_status wh__dump(wh_distill *d, wh_net *net, long it, wh_ctx *ctx)
{
    const int K = d->n_fixed, W = net->in_shape.w, H = net->in_shape.h;
    const size_t img = (size_t)3 * W * H;
    memset(net->input, 0, wh_shape_count(net->in_shape) * sizeof(float));
    memcpy(net->input, d->fixed, (size_t)K * img * sizeof(float));
    memcpy(d->teacher->input, net->input, wh_shape_count(net->in_shape) * sizeof(float));
    WH_TRY(wh_net_forward(d->teacher, 0, ctx));
    WH_TRY(wh_net_forward(net, 0, ctx));
    char path[4096];
    snprintf(path, sizeof(path), "%s/attention_%07ld.h5", d->out_dir, it);
    wh_ckpt_writer *w = NULL;
    WH_TRY(wh_ckpt_create(path, &w, ctx));
    wh_image panel = {0};
    wh_status st = wh_image_alloc(&panel, 3 * W, d->n_pairs * H, 3, ctx);
    const int64_t iter = it;
    uint64_t one[1] = {1}, dimg[4] = {(uint64_t)K, 3, (uint64_t)H, (uint64_t)W};
    if (st == WH_OK) st = wh_ckpt_put_i64(w, "iteration", &iter, one, 1, ctx);
    if (st == WH_OK) st = wh_ckpt_put_f32(w, "images", d->fixed, dimg, 4, ctx);
    for (int p = 0; st == WH_OK && p < d->n_pairs; p++) {
        const int i = d->pairs[p].layer;
        const wh_layer *lt = &d->teacher->layers[i], *ls = &net->layers[i];
        wh_at_map(lt->out, lt->out_shape, lt->out_layout, &d->at, d->qt);
        wh_at_map(ls->out, ls->out_shape, ls->out_layout, &d->at, d->qs);
        const int h = ls->out_shape.h, wd = ls->out_shape.w;
        uint64_t dm[3] = {(uint64_t)K, (uint64_t)h, (uint64_t)wd};
        char name[64];
        snprintf(name, sizeof(name), "teacher/layer_%03d", i);
        st = wh_ckpt_put_f32(w, name, d->qt, dm, 3, ctx);
        snprintf(name, sizeof(name), "student/layer_%03d", i);
        if (st == WH_OK) st = wh_ckpt_put_f32(w, name, d->qs, dm, 3, ctx);
        /* the panel row: the image, then both maps of image 0 on one scale */
        float mx = 1e-12f;
        for (int t = 0; t < h * wd; t++) mx = d->qt[t] > mx ? d->qt[t] : mx, mx = d->qs[t] > mx ? d->qs[t] : mx;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int my = y * h / H, mxx = x * wd / W;
                float rt[3], rs[3];
                wh__heat(d->qt[my * wd + mxx] / mx, rt);
                wh__heat(d->qs[my * wd + mxx] / mx, rs);
                for (int c = 0; c < 3; c++) {
                    panel.data[wh_image_index(&panel, x, p * H + y, c)] = d->fixed[((size_t)c * H + y) * W + x];
                    panel.data[wh_image_index(&panel, W + x, p * H + y, c)] = rt[c];
                    panel.data[wh_image_index(&panel, 2 * W + x, p * H + y, c)] = rs[c];
                }
            }
    }
    if (st == WH_OK) {
        int64_t layers[256];
        uint64_t dl[1] = {(uint64_t)(d->n_pairs < 256 ? d->n_pairs : 256)};
        for (uint64_t k = 0; k < dl[0]; k++) layers[k] = d->pairs[k].layer;
        st = wh_ckpt_put_i64(w, "layers", layers, dl, 1, ctx);
    }
    if (st == WH_OK) st = wh_ckpt_commit(w, ctx);
    else wh_ckpt_abort(w);
    snprintf(path, sizeof(path), "%s/attention_%07ld.png", d->out_dir, it);
    if (st == WH_OK) st = wh_image_save_png(path, &panel, ctx);
    wh_image_free(&panel);
    return st;
}

static wh_status wh__after_backward(void *user, wh_net *net, long it, wh_ctx *ctx)
{
    wh_distill *d = user;
    if (!d->teacher || d->n_fixed <= 0) return WH_OK;
    const int due = it == 0 || it == net->hp.max_batches - 1 || (d->dump_every > 0 && it % d->dump_every == 0);
    return due ? wh__dump(d, net, it, ctx) : WH_OK;
}

static wh_status wh__begin(void *user, wh_net *net, long train_images, wh_ctx *ctx);

static wh_status wh__extra_loss(void *user, wh_net *net, double *loss, wh_ctx *ctx)
{
    wh_distill *d = user;
    *loss = 0;
    if (!d->teacher) WH_TRY(wh__begin(d, net, 0, ctx));
    memcpy(d->teacher->input, net->input, wh_shape_count(net->in_shape) * sizeof(float));
    WH_TRY(wh_net_forward(d->teacher, 0, ctx));
    for (int k = 0; k < d->n_pairs; k++) {
        const wh_layer *lt = &d->teacher->layers[d->pairs[k].layer];
        wh_layer *ls = &net->layers[d->pairs[k].layer];
        if (!ls->dout)
            return wh_error(ctx, WH_ERR_STATE, "attention layer %d: the student must be a training net", ls->index);
        wh_at_map(lt->out, lt->out_shape, lt->out_layout, &d->at, d->qt);
        wh_at_map(ls->out, ls->out_shape, ls->out_layout, &d->at, d->qs);
        const double l = wh_at_loss(ls->out, ls->out_shape, ls->out_layout, d->qs, d->qt, &d->at,
                                    d->pairs[k].beta * d->beta_scale, ls->dout, d->scratch);
        d->pair_loss[k] += l;
        *loss += l;
    }
    for (int i = 0; (d->kd_weight > 0 || d->kd_box_weight > 0) && i < net->n_layers; i++) {
        const wh_yolo_params *yp = wh_yolo_get(&net->layers[i]);
        const int j = net->layers[i].in[0];
        if (!yp || j < 0) continue;
        wh_layer *hs = &net->layers[j];
        const wh_layer *ht = &d->teacher->layers[j];
        if (!hs->dout || !wh_shape_eq(hs->out_shape, ht->out_shape))
            return wh_error(ctx, WH_ERR_STATE, "logit/box distillation: layer %d differs between teacher and student", j);
        const wh_shape hsh = hs->out_shape;
        const float *zt = ht->out;
        if (ht->out_layout != WH_LAYOUT_NCHW) {
            wh_tensor src = {(float *)ht->out, hsh, ht->out_layout}, dst = {d->zt, hsh, WH_LAYOUT_NCHW};
            wh_tensor_reorder(&src, &dst);
            zt = d->zt;
        }
        /* The terms read and write NCHW; a blocked student head (its filters
         * a multiple of the block) goes through plain copies. */
        const int blocked = hs->out_layout != WH_LAYOUT_NCHW;
        const float *zs = hs->out;
        float *dz = hs->dout;
        if (blocked) {
            wh_tensor src = {hs->out, hsh, hs->out_layout}, dst = {d->zs, hsh, WH_LAYOUT_NCHW};
            wh_tensor_reorder(&src, &dst);
            memset(d->dzs, 0, wh_shape_count(hsh) * sizeof(float));
            zs = d->zs, dz = d->dzs;
        }
        if (d->kd_weight > 0) {
            const double l = wh_kd_logits(zs, zt, hsh.n, yp->n_mask, yp->classes, hsh.h * hsh.w, d->kd_temperature,
                                          d->kd_weight, dz);
            d->kd_loss += l;
            *loss += l;
        }
        if (d->kd_box_weight > 0) {
            const double l = wh_kd_boxes(zs, zt, hsh.n, yp, hsh.w, hsh.h, net->in_shape.w, net->in_shape.h,
                                         d->kd_box_weight, dz);
            d->kd_box_loss += l;
            *loss += l;
        }
        if (blocked) {
            wh_tensor src = {d->dzs, hsh, WH_LAYOUT_NCHW}, dst = {hs->dout, hsh, hs->out_layout};
            wh_tensor_reorder_add(&src, &dst);
        }
    }
    d->batches++;
    return WH_OK;
}

/* Before the first step: the teacher, the pairs, and the pins (wh__pin). */
static wh_status wh__begin(void *user, wh_net *net, long train_images, wh_ctx *ctx)
{
    (void)train_images;
    wh_distill *d = user;
    if (!d->teacher) WH_TRY(wh__setup(d, net, ctx));
    return wh__pin(d, d->pairs, d->n_pairs, net, ctx);
}

void wh_distill_attach(wh_distill *d, wh_train_hooks *hooks)
{
    hooks->user = d;
    hooks->begin = wh__begin;
    hooks->extra_loss = wh__extra_loss;
    hooks->after_backward = wh__after_backward;
    hooks->plan = wh__plan;
}
