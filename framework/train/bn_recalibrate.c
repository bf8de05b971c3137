/* Batch-norm statistics re-estimated on training images (trainer.h). */
#include <string.h>

#include "framework/core/cfg.h"
#include "framework/data/loader.h"
#include "framework/train/trainer.h"

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
    if (st == WH_OK) st = wh_net_copy_params(tn, net, 0, ctx);
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
    for (int k = 1; st == WH_OK && k <= o->batches; k++) {
        const wh_batch *b = NULL;
        st = wh_loader_next(ld, &b, ctx);
        if (st != WH_OK) break;
        memcpy(tn->input, b->images, wh_shape_count(tn->in_shape) * sizeof(float));
        /* share 1/k: after batch k the running statistics are the mean of
         * batches 1..k (the first replaces what the network had) */
        wh_net_set_bn_momentum(tn, 1.f / (float)k);
        st = wh_net_forward(tn, 1, ctx);
    }
    if (st == WH_OK) st = wh_net_copy_params(net, tn, 1, ctx);
    wh_loader_destroy(ld);
    wh_net_destroy(tn);
    return st;
}
