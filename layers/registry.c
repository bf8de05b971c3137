/* The table of layer types: one line per type. */
#include <stdio.h>
#include <string.h>

#include "layer.h"

extern const wh_layer_ops wh_conv_ops;
extern const wh_layer_ops wh_maxpool_ops;
extern const wh_layer_ops wh_upsample_ops;
extern const wh_layer_ops wh_route_ops;
extern const wh_layer_ops wh_shortcut_ops;
extern const wh_layer_ops wh_yolo_ops;
extern const wh_layer_ops wh_avgpool_ops;
extern const wh_layer_ops wh_dropout_ops;
extern const wh_layer_ops wh_reorg_ops;
extern const wh_layer_ops wh_reorg3d_ops;
extern const wh_layer_ops wh_scale_channels_ops;
extern const wh_layer_ops wh_sam_ops;

static const struct {
    const char *alias; /* darknet's other spelling of the section, or NULL */
    const wh_layer_ops *ops;
} wh__layers[] = {
    {"conv", &wh_conv_ops},       {"max", &wh_maxpool_ops}, {NULL, &wh_upsample_ops},
    {NULL, &wh_route_ops},        {NULL, &wh_shortcut_ops}, {"region_yolo", &wh_yolo_ops},
    {"avg", &wh_avgpool_ops}, {NULL, &wh_dropout_ops}, {NULL, &wh_reorg_ops}, {NULL, &wh_reorg3d_ops},
    {NULL, &wh_scale_channels_ops}, {NULL, &wh_sam_ops},
};

#define WH__MAX_USER_LAYERS 32
static const wh_layer_ops *wh__user[WH__MAX_USER_LAYERS];
static int wh__n_user;

const wh_layer_ops *wh_layer_find(const char *type)
{
    for (size_t i = 0; i < sizeof(wh__layers) / sizeof(wh__layers[0]); i++)
        if (strcmp(type, wh__layers[i].ops->type) == 0 ||
            (wh__layers[i].alias && strcmp(type, wh__layers[i].alias) == 0))
            return wh__layers[i].ops;
    for (int i = 0; i < wh__n_user; i++)
        if (strcmp(type, wh__user[i]->type) == 0) return wh__user[i];
    return NULL;
}

wh_status wh_layer_register(const wh_layer_ops *ops, wh_ctx *ctx)
{
    if (!ops || !ops->type || !ops->init || !ops->shape || !ops->forward)
        return wh_error(ctx, WH_ERR_ARG, "a layer type needs a name, init, shape and forward");
    if (wh_layer_find(ops->type))
        return wh_error(ctx, WH_ERR_ARG, "layer type [%s] is already registered", ops->type);
    if (wh__n_user >= WH__MAX_USER_LAYERS)
        return wh_error(ctx, WH_ERR_ARG, "too many user layer types (at most %d)", WH__MAX_USER_LAYERS);
    wh__user[wh__n_user++] = ops;
    return WH_OK;
}

void wh_layer_types(char *buf, int n)
{
    int used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof(wh__layers) / sizeof(wh__layers[0]) && used < n; i++)
        used += snprintf(buf + used, (size_t)(n - used), "%s[%s]", i ? ", " : "",
                         wh__layers[i].ops->type);
    for (int i = 0; i < wh__n_user && used < n; i++)
        used += snprintf(buf + used, (size_t)(n - used), ", [%s]", wh__user[i]->type);
}

wh_status wh_layer_resolve_index(const wh_layer *self, wh_cfg_section *s, const char *key,
                                 int idx, int *abs_idx, wh_ctx *ctx)
{
    int a = idx < 0 ? self->index + idx : idx;
    if (a < 0 || a >= self->index) {
        wh_cfg_kv *kv = wh_cfg_find(s, key);
        return wh_error(ctx, WH_ERR_CFG,
                        "%s:%d: [%s] layer %d: '%s' refers to layer %d (%d resolves to %d), "
                        "which is not an earlier layer",
                        s->file, kv ? kv->line : s->line, s->type, self->index, key, idx, idx, a);
    }
    *abs_idx = a;
    return WH_OK;
}

void wh_layer_facts_get(const wh_layer *l, wh_layer_facts *f)
{
    memset(f, 0, sizeof(*f));
    f->act = WH_ACT_LINEAR;
    f->conv_groups = 1;
    f->ksize = 1;
    f->slice_groups = 1;
    if (l->ops->facts) l->ops->facts(l, f);
}

void wh_layer_input_name(int idx, char *buf, size_t n)
{
    if (idx < 0)
        snprintf(buf, n, "the network input");
    else
        snprintf(buf, n, "layer %d", idx);
}
