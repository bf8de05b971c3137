/* The distillation step inside the trainer (distill/distill.h). */
#include "distill.h"

#include "../framework/checkpoint.h"

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
}

void wh_distill_free(wh_distill *d)
{
    wh_net_destroy(d->teacher);
    free(d->pairs);
    free(d->qs);
    free(d->qt);
    free(d->scratch);
    free(d->pair_loss);
    memset(d, 0, sizeof(*d));
}

/* The teacher at the student's mini-batch and input size, the pairs, buffers. */
static wh_status wh__setup(wh_distill *d, const wh_net *student, wh_ctx *ctx)
{
    const wh_net_opts no = {.batch = student->in_shape.n,
                            .width = student->in_shape.w,
                            .height = student->in_shape.h,
                            .blocked = 1};
    WH_TRY(wh_ckpt_build_net(d->teacher_ckpt, &no, &d->teacher, NULL, ctx));
    if (d->teacher->in_shape.c != student->in_shape.c)
        return wh_error(ctx, WH_ERR_ARG, "%s: the teacher reads %d channels, the student %d", d->teacher_ckpt,
                        d->teacher->in_shape.c, student->in_shape.c);
    if (!d->layers || !strcmp(d->layers, "auto")) WH_TRY(wh_at_pairs_auto(student, &d->pairs, &d->n_pairs, ctx));
    else WH_TRY(wh_at_pairs_parse(d->layers, &d->pairs, &d->n_pairs, ctx));
    WH_TRY(wh_at_pairs_check(d->teacher, student, d->pairs, d->n_pairs, ctx));
    size_t cap = 1;
    for (int k = 0; k < d->n_pairs; k++) {
        const wh_shape s = student->layers[d->pairs[k].layer].out_shape;
        const size_t m = (size_t)s.n * s.h * s.w;
        cap = m > cap ? m : cap;
    }
    d->qs = malloc(cap * sizeof(float));
    d->qt = malloc(cap * sizeof(float));
    d->scratch = malloc(2 * cap * sizeof(float));
    d->pair_loss = calloc((size_t)d->n_pairs, sizeof(double));
    if (!d->qs || !d->qt || !d->scratch || !d->pair_loss) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    return WH_OK;
}

static wh_status wh__extra_loss(void *user, wh_net *net, double *loss, wh_ctx *ctx)
{
    wh_distill *d = user;
    *loss = 0;
    if (!d->teacher) WH_TRY(wh__setup(d, net, ctx));
    memcpy(d->teacher->input, net->input, wh_shape_count(net->in_shape) * sizeof(float));
    WH_TRY(wh_net_forward(d->teacher, 0, ctx));
    for (int k = 0; k < d->n_pairs; k++) {
        const wh_layer *lt = &d->teacher->layers[d->pairs[k].layer];
        wh_layer *ls = &net->layers[d->pairs[k].layer];
        if (ls->out_layout != WH_LAYOUT_NCHW || !ls->dout)
            return wh_error(ctx, WH_ERR_STATE, "attention layer %d: the student must be a training net in NCHW",
                            ls->index);
        wh_at_map(lt->out, lt->out_shape, lt->out_layout, &d->at, d->qt);
        wh_at_map(ls->out, ls->out_shape, WH_LAYOUT_NCHW, &d->at, d->qs);
        const double l = wh_at_loss(ls->out, ls->out_shape, d->qs, d->qt, &d->at, d->pairs[k].beta * d->beta_scale,
                                    ls->dout, d->scratch);
        d->pair_loss[k] += l;
        *loss += l;
    }
    d->batches++;
    return WH_OK;
}

void wh_distill_attach(wh_distill *d, wh_train_hooks *hooks)
{
    hooks->user = d;
    hooks->extra_loss = wh__extra_loss;
}
