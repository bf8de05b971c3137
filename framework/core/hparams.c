/* The [net] section: the input size and what training and augmentation need.
 * Defaults are darknet's (parser.c parse_net_options). */
#include <string.h>

#include "framework/core/net.h"

/* Keys darknet accepts in [net] that we read but do not use yet; listed so
 * that shipped darknet cfgs load without warnings. */
static const char *const wh__net_ignored[] = {
    "max_chart_loss", "optimized_memory", "workspace_size_limit_MB", "adam", "B1", "B2", "eps",
    "inputs", "min_crop", "max_crop", "track", "time_steps", "augment_speed",
    "sequential_subdivisions", "try_fix_nan", "loss_scale", "dynamic_minibatch",
    "label_smooth_eps", "resize_step", "adversarial_lr", "attention", "show_imgs",
    "gaussian_noise", "ema_alpha", "center", "max_epochs", NULL};

/* "cosine" is ours: one cosine cycle from learning_rate to learning_rate_min
 * over max_batches (the reference implementation's schedule). */
static const char *const wh__policies[] = {"constant", "steps",  "step", "exp",    "poly",
                                           "sgdr",     "random", "sig",  "cosine", NULL};

wh_status wh_hparams_parse(wh_cfg_section *s, wh_hparams *hp, wh_ctx *ctx)
{
    memset(hp, 0, sizeof(*hp));
    WH_TRY(wh_cfg_int(s, "batch", 1, 1, 1 << 16, &hp->batch, ctx));
    WH_TRY(wh_cfg_int(s, "subdivisions", 1, 1, 1 << 16, &hp->subdivisions, ctx));
    WH_TRY(wh_cfg_int_req(s, "width", 1, 16384, &hp->width, ctx));
    WH_TRY(wh_cfg_int_req(s, "height", 1, 16384, &hp->height, ctx));
    WH_TRY(wh_cfg_int(s, "channels", 3, 1, 4096, &hp->channels, ctx));
    WH_TRY(wh_cfg_float(s, "momentum", 0.9f, 0.f, 1.f, &hp->momentum, ctx));
    WH_TRY(wh_cfg_float(s, "decay", 0.0001f, 0.f, 1.f, &hp->decay, ctx));
    WH_TRY(wh_cfg_float(s, "learning_rate", 0.001f, 0.f, 100.f, &hp->learning_rate, ctx));
    WH_TRY(wh_cfg_int(s, "burn_in", 0, 0, 1 << 30, &hp->burn_in, ctx));
    WH_TRY(wh_cfg_int(s, "max_batches", 0, 0, 1 << 30, &hp->max_batches, ctx));
    WH_TRY(wh_cfg_float(s, "power", 4.f, 0.f, 100.f, &hp->power, ctx));
    int pol;
    WH_TRY(wh_cfg_choice(s, "policy", wh__policies, 0, &pol, ctx));
    hp->policy = (wh_lr_policy)pol;
    WH_TRY(wh_cfg_ints(s, "steps", hp->steps, WH_MAX_STEPS, &hp->n_steps, ctx));
    int n_scales = 0;
    WH_TRY(wh_cfg_floats(s, "scales", hp->scales, WH_MAX_STEPS, &n_scales, ctx));
    if (hp->policy == WH_LR_STEPS && n_scales != hp->n_steps) {
        wh_cfg_kv *kv = wh_cfg_find(s, "scales");
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: [net] 'steps' has %d values but 'scales' has %d",
                        s->file, kv ? kv->line : s->line, hp->n_steps, n_scales);
    }
    WH_TRY(wh_cfg_float(s, "gamma", 1.f, 0.f, 100.f, &hp->gamma, ctx));
    WH_TRY(wh_cfg_int(s, "step", 1, 1, 1 << 30, &hp->step, ctx));
    WH_TRY(wh_cfg_float(s, "learning_rate_min", 0.00001f, 0.f, 100.f, &hp->learning_rate_min, ctx));
    WH_TRY(wh_cfg_int(s, "sgdr_cycle", hp->max_batches > 0 ? hp->max_batches : 1, 1, 1 << 30,
                      &hp->sgdr_cycle, ctx));
    WH_TRY(wh_cfg_int(s, "sgdr_mult", 2, 1, 1 << 10, &hp->sgdr_mult, ctx));
    WH_TRY(wh_cfg_float(s, "angle", 0.f, 0.f, 360.f, &hp->angle, ctx));
    WH_TRY(wh_cfg_float(s, "saturation", 1.f, 0.f, 100.f, &hp->saturation, ctx));
    WH_TRY(wh_cfg_float(s, "exposure", 1.f, 0.f, 100.f, &hp->exposure, ctx));
    WH_TRY(wh_cfg_float(s, "hue", 0.f, 0.f, 1.f, &hp->hue, ctx));
    WH_TRY(wh_cfg_float(s, "aspect", 1.f, 0.f, 100.f, &hp->aspect, ctx));
    WH_TRY(wh_cfg_int(s, "flip", 1, 0, 1, &hp->flip, ctx));
    WH_TRY(wh_cfg_int(s, "mosaic", 0, 0, 1, &hp->mosaic, ctx));
    WH_TRY(wh_cfg_int(s, "letter_box", 0, 0, 1, &hp->letter_box, ctx));
    WH_TRY(wh_cfg_int(s, "mixup", 0, 0, 4, &hp->mixup, ctx));
    WH_TRY(wh_cfg_int(s, "cutmix", 0, 0, 1, &hp->cutmix, ctx));
    WH_TRY(wh_cfg_int(s, "blur", 0, 0, 1 << 10, &hp->blur, ctx));
    for (int i = 0; wh__net_ignored[i]; i++) (void)wh_cfg_find(s, wh__net_ignored[i]);
    if (hp->batch % hp->subdivisions != 0)
        return wh_error(ctx, WH_ERR_CFG,
                        "%s:%d: [net] batch=%d is not a multiple of subdivisions=%d", s->file,
                        s->line, hp->batch, hp->subdivisions);
    return WH_OK;
}
