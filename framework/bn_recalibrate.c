/* Batch-norm statistics re-estimated on training images (trainer.h). */
#include <string.h>

#include "cfg.h"
#include "data/loader.h"
#include "trainer.h"

/* Same cfg, so the same layers and parameters in the same order; checked,
 * since a mismatch would copy one layer's numbers into another's. */
static wh_status wh__same_params(const wh_net *a, const wh_net *b, wh_ctx *ctx)
{
    if (a->n_layers != b->n_layers)
        return wh_error(ctx, WH_ERR_STATE, "batch-norm recalibration: the cfg has %d layers, the network %d",
                        b->n_layers, a->n_layers);
    for (int i = 0; i < a->n_layers; i++) {
        const wh_layer *x = &a->layers[i], *y = &b->layers[i];
        if (x->n_params != y->n_params)
            return wh_error(ctx, WH_ERR_STATE, "batch-norm recalibration: layer %d [%s] differs from the cfg's", i,
                            x->ops->type);
        for (int p = 0; p < x->n_params; p++)
            if (x->params[p].count != y->params[p].count || strcmp(x->params[p].name, y->params[p].name))
                return wh_error(ctx, WH_ERR_STATE,
                                "batch-norm recalibration: layer %d [%s] %s has %zu values, the cfg's %zu", i,
                                x->ops->type, x->params[p].name, x->params[p].count, y->params[p].count);
    }
    return WH_OK;
}

static int wh__is_stat(const wh_param *p)
{
    return !strcmp(p->name, "rolling_mean") || !strcmp(p->name, "rolling_variance");
}

wh_status wh_bn_recalibrate(wh_net *net, const char *cfg_text, const wh_dataset *d, const wh_bn_recal_opts *o,
                            wh_ctx *ctx)
{
    if (o->batches < 1 || o->batch < 1)
        return wh_error(ctx, WH_ERR_ARG, "batch-norm recalibration needs at least one batch of one image");
    wh_cfg *cfg = NULL;
    WH_TRY(wh_cfg_parse_string(cfg_text, "recalibration.cfg", &cfg, ctx));
    /* a training net: only its forward computes batch statistics */
    wh_net_opts no = {.batch = o->batch, .width = net->in_shape.w, .height = net->in_shape.h, .train = 1,
                      .blocked = 1};
    wh_net *tn = NULL;
    wh_status st = wh_net_create(cfg, &no, &tn, ctx);
    wh_cfg_free(cfg);
    if (st == WH_OK) st = wh__same_params(net, tn, ctx);
    for (int i = 0; st == WH_OK && i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++)
            memcpy(tn->layers[i].params[p].data, net->layers[i].params[p].data,
                   net->layers[i].params[p].count * sizeof(float));
    /* shuffled training images as evaluation sees images: no augmentation */
    wh_loader *ld = NULL;
    if (st == WH_OK) {
        wh_loader_opts lo;
        wh_loader_opts_default(&lo, tn->in_shape.w, tn->in_shape.h, o->batch);
        lo.seed = o->seed;
        lo.jitter = 0.f, lo.hue = 0.f, lo.saturation = 1.f, lo.exposure = 1.f, lo.flip = 0, lo.mosaic = 0.f;
        lo.letterbox = tn->hp.letter_box;
        st = wh_loader_create(d, &lo, &ld, ctx);
    }
    const size_t in_floats = wh_shape_count(tn ? tn->in_shape : net->in_shape);
    for (int k = 1; st == WH_OK && k <= o->batches; k++) {
        const wh_batch *b = NULL;
        st = wh_loader_next(ld, &b, ctx);
        if (st != WH_OK) break;
        memcpy(tn->input, b->images, in_floats * sizeof(float));
        /* share 1/k: after batch k the running statistics are the mean of
         * batches 1..k (the first replaces what the network had) */
        wh_net_set_bn_momentum(tn, 1.f / (float)k);
        st = wh_net_forward(tn, 1, ctx);
    }
    for (int i = 0; st == WH_OK && i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++)
            if (wh__is_stat(&net->layers[i].params[p]))
                memcpy(net->layers[i].params[p].data, tn->layers[i].params[p].data,
                       net->layers[i].params[p].count * sizeof(float));
    wh_loader_destroy(ld);
    wh_net_destroy(tn);
    return st;
}
