/* Surgery: the compact network that keep[] describes.
 *
 * A pruned channel of a conv+BN unit outputs act(beta) everywhere (its gamma
 * is zero), a constant that pools, upsamples and routes pass on unchanged and
 * a shortcut adds (then applies its activation). A convolution that reads
 * such a constant a on input channel c adds a * sum_k W[o][c][k] to its
 * output o (exactly so away from zero padding, where part of the kernel sees
 * zeros). Folding that sum into the consumer's BN running mean (mean -= it)
 * or, without BN, its bias (bias += it) lets the channel go.
 */
#include "prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static wh_param *wh__param(wh_layer *l, const char *name)
{
    for (int p = 0; p < l->n_params; p++)
        if (!strcmp(l->params[p].name, name)) return &l->params[p];
    return NULL;
}

void wh_prune_mask_net(wh_net *net, const wh_depgraph *g, const unsigned char *keep, int zero_beta)
{
    for (int u = 0; u < g->n_units; u++) {
        wh_layer *l = &net->layers[g->unit_layer[u]];
        wh_param *s = wh__param(l, "scales"), *b = wh__param(l, "biases");
        for (int x = g->unit_off[u]; x < g->unit_off[u + 1]; x++) {
            if (g->set[x] < 0 || keep[x]) continue;
            s->data[x - g->unit_off[u]] = 0.f;
            if (zero_beta && b) b->data[x - g->unit_off[u]] = 0.f;
        }
    }
}

/* The constant every pruned output channel carries (NaN-free only where pruned). */
static void wh__constants(const wh_net *net, const wh_depgraph *g, const unsigned char *keep, float *cst)
{
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        float *out = cst + g->chan_off[i];
        const int C = l->out_shape.c;
        wh_layer_facts f;
        wh_layer_facts_get(l, &f);
        for (int c = 0; c < C; c++) out[c] = 0.f;
#define WH__CIN(k, c) (l->in[k] < 0 ? 0.f : cst[g->chan_off[l->in[k]] + (c)])
        switch (l->ops->flow) {
        case WH_FLOW_NEW: {
            if (g->layer_unit[i] < 0) break;
            const wh_param *b = wh__param((wh_layer *)l, "biases");
            for (int c = 0; c < C; c++)
                if (!wh_depgraph_kept(g, keep, i, c)) wh_act_forward(f.act, &b->data[c], &out[c], 1);
            break;
        }
        case WH_FLOW_SAME:
            for (int c = 0; c < C && c < l->in_shape[0].c; c++) out[c] = WH__CIN(0, c);
            break;
        case WH_FLOW_CONCAT: {
            const int G = f.slice_groups > 0 ? f.slice_groups : 1;
            int w = 0;
            for (int k = 0; k < l->n_in; k++) {
                const int part = l->in_shape[k].c / G;
                for (int j = 0; j < part && w < C; j++) out[w++] = WH__CIN(k, f.slice_id * part + j);
            }
            break;
        }
        case WH_FLOW_ADD:
            for (int c = 0; c < C; c++) {
                if (wh_depgraph_kept(g, keep, i, c)) continue;
                float sum = 0.f;
                for (int k = 0; k < l->n_in; k++) sum += WH__CIN(k, c);
                wh_act_forward(f.act, &sum, &out[c], 1);
            }
            break;
        default:
            break;
        }
#undef WH__CIN
    }
}

/* Copies layer i's kept parameters from full into compact, folding the
 * constants of its pruned inputs when fold. */
static wh_status wh__copy_layer(const wh_net *net, wh_net *small, const wh_depgraph *g, const unsigned char *keep,
                                const float *cst, int fold, int i, wh_ctx *ctx)
{
    wh_layer *l = &net->layers[i], *m = &small->layers[i];
    if (l->n_params != m->n_params)
        return wh_error(ctx, WH_ERR_STATE, "layer %d: %d parameters in the full network, %d in the compact one", i,
                        l->n_params, m->n_params);
    /* a layer without parameters (a reorg makes a new space by moving values) has nothing to cut */
    if (l->ops->flow != WH_FLOW_NEW || l->n_params == 0) {
        for (int p = 0; p < l->n_params; p++) {
            if (l->params[p].count != m->params[p].count)
                return wh_error(ctx, WH_ERR_STATE, "layer %d (%s): parameter %s changed size", i, l->ops->type,
                                l->params[p].name);
            memcpy(m->params[p].data, l->params[p].data, l->params[p].count * sizeof(float));
        }
        return WH_OK;
    }
    const int O = l->out_shape.c, I = l->in_shape[0].c;
    wh_param *w = wh__param(l, "weights");
    if (!w) return wh_error(ctx, WH_ERR_STATE, "layer %d: a convolution without weights", i);
    wh_layer_facts f;
    wh_layer_facts_get(l, &f);
    const size_t per_oc = w->count / (size_t)O;    /* IC/groups * K * K */
    const size_t kk = per_oc / (size_t)(I / f.conv_groups);
    int *ko = malloc((size_t)O * sizeof(int)), *ki = malloc((size_t)I * sizeof(int));
    double *delta = calloc((size_t)O, sizeof(double));
    if (!ko || !ki || !delta) {
        free(ko);
        free(ki);
        free(delta);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    int nko = 0, nki = 0;
    for (int c = 0; c < O; c++)
        if (wh_depgraph_kept(g, keep, i, c)) ko[nko++] = c;
    for (int c = 0; c < I; c++)
        if (l->in[0] < 0 || f.conv_groups != 1 || wh_depgraph_kept(g, keep, l->in[0], c)) ki[nki++] = c;
    wh_status st = WH_OK;
    if (nko != m->out_shape.c || (f.conv_groups == 1 && nki != m->in_shape[0].c))
        st = wh_error(ctx, WH_ERR_STATE, "layer %d: the compact network has %d -> %d channels, the mask says %d -> %d",
                      i, m->in_shape[0].c, m->out_shape.c, nki, nko);
    if (st == WH_OK && fold && f.conv_groups == 1 && l->in[0] >= 0) {
        const float *ci = cst + g->chan_off[l->in[0]];
        for (int c = 0; c < I; c++) {
            if (wh_depgraph_kept(g, keep, l->in[0], c) || ci[c] == 0.f) continue;
            for (int o = 0; o < O; o++) {
                const float *wk = w->data + (size_t)o * per_oc + (size_t)c * kk;
                double s = 0;
                for (size_t t = 0; t < kk; t++) s += wk[t];
                delta[o] += (double)ci[c] * s;
            }
        }
    }
    for (int p = 0; st == WH_OK && p < l->n_params; p++) {
        const wh_param *src = &l->params[p];
        wh_param *dst = &m->params[p];
        if (strcmp(src->name, dst->name)) {
            st = wh_error(ctx, WH_ERR_STATE, "layer %d: parameter %s vs %s", i, src->name, dst->name);
            break;
        }
        if (src == w) {
            const size_t mkk = f.conv_groups == 1 ? kk : per_oc;
            const int mi = f.conv_groups == 1 ? nki : 1;
            for (int a = 0; a < nko; a++)
                for (int b = 0; b < mi; b++)
                    memcpy(dst->data + ((size_t)a * mi + b) * mkk,
                           src->data + (size_t)ko[a] * per_oc + (size_t)(f.conv_groups == 1 ? ki[b] : 0) * kk,
                           mkk * sizeof(float));
            continue;
        }
        if (src->count != (size_t)O) {
            st = wh_error(ctx, WH_ERR_STATE, "layer %d: parameter %s has %zu values for %d channels", i, src->name,
                          src->count, O);
            break;
        }
        const int fold_here = fold && ((f.bn && !strcmp(src->name, "rolling_mean")) ||
                                       (!f.bn && !strcmp(src->name, "biases")));
        const double sign = f.bn ? -1.0 : 1.0;
        for (int a = 0; a < nko; a++)
            dst->data[a] = fold_here ? (float)(src->data[ko[a]] + sign * delta[ko[a]]) : src->data[ko[a]];
    }
    free(ko);
    free(ki);
    free(delta);
    return st;
}

wh_status wh_prune_build(const wh_net *net, const char *cfg_text, const wh_depgraph *g, const unsigned char *keep,
                         int fold, const wh_net_opts *opts, char **out_cfg, wh_net **out_net, wh_ctx *ctx)
{
    *out_cfg = NULL;
    *out_net = NULL;
    char *text = strdup(cfg_text);
    if (!text) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    wh_status st = WH_OK;
    for (int u = 0; st == WH_OK && u < g->n_units; u++) {
        const int i = g->unit_layer[u], k = wh_depgraph_count_kept(g, net, keep, i);
        if (k == net->layers[i].out_shape.c) continue;
        char v[32], *next = NULL;
        snprintf(v, sizeof(v), "%d", k);
        st = wh_cfg_text_set_layer(text, i, "filters", v, &next, ctx);
        free(text);
        text = next;
    }
    wh_cfg *cfg = NULL;
    wh_net *small = NULL;
    if (st == WH_OK) st = wh_cfg_parse_string(text, "pruned.cfg", &cfg, ctx);
    if (st == WH_OK) st = wh_net_create(cfg, opts, &small, ctx);
    wh_cfg_free(cfg);
    if (st == WH_OK && small->n_layers != net->n_layers)
        st = wh_error(ctx, WH_ERR_STATE, "the compact network has %d layers, the full one %d", small->n_layers,
                      net->n_layers);
    float *cst = st == WH_OK ? calloc((size_t)g->chan_off[net->n_layers] + 1, sizeof(float)) : NULL;
    if (st == WH_OK && !cst) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (st == WH_OK) wh__constants(net, g, keep, cst);
    for (int i = 0; st == WH_OK && i < net->n_layers; i++) st = wh__copy_layer(net, small, g, keep, cst, fold, i, ctx);
    free(cst);
    if (st != WH_OK) {
        free(text);
        wh_net_destroy(small);
        return st;
    }
    *out_cfg = text;
    *out_net = small;
    return WH_OK;
}
