/* Channel-dependency analysis: which output channels of which layers are
 * the same channel, which must share one mask, and which can never go.
 *
 * Walking the layers in order, every output channel gets the flat channel it
 * carries (src): a prunable convolution starts new ones; pools, upsamples and
 * other same-flow layers pass their input's through; a route concatenates (or
 * slices) its inputs'; a shortcut carries its first input's and couples, for
 * each c, the c-th channels of all its inputs (union-find). A grouped route
 * takes part k of each input, so the compact network must keep the same
 * positions in every part: part j's channel i is coupled with part 0's. A
 * virtual FIXED element absorbs everything that may not be pruned: channels
 * from the image or a non-prunable layer, the input of a grouped convolution
 * or of a new-space layer that keeps its producers (a reorg), the inputs of
 * a product ([scale_channels], [sam]), a network output (a layer nobody
 * reads, e.g. [yolo]) and whatever a shortcut couples with them.
 */
#include "prune.h"
#include "sparsity.h"

#include <stdlib.h>
#include <string.h>

static int wh__find(int *parent, int x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

static void wh__union(int *parent, int a, int b)
{
    a = wh__find(parent, a);
    b = wh__find(parent, b);
    if (a == b) return;
    /* the larger index wins so FIXED (the largest) stays a root */
    if (a < b) parent[a] = b;
    else parent[b] = a;
}

static int wh__has_param(const wh_layer *l, const char *name)
{
    for (int p = 0; p < l->n_params; p++)
        if (!strcmp(l->params[p].name, name)) return 1;
    return 0;
}

void wh_depgraph_free(wh_depgraph *g)
{
    free(g->chan_off);
    free(g->src);
    free(g->unit_layer);
    free(g->unit_off);
    free(g->layer_unit);
    free(g->set);
    free(g->set_size);
    free(g->chan_unit);
    memset(g, 0, sizeof(*g));
}

/* Which layers are units: convolutions with BN, dense, not excluded, and
 * (unless all_bn_convs) not kept out by stage 1's rules. */
static wh_status wh__units(const wh_net *net, const wh_depgraph_opts *o, wh_depgraph *g, wh_ctx *ctx)
{
    const int n = net->n_layers;
    for (int e = 0; o && e < o->n_exclude; e++)
        if (o->exclude[e] < 0 || o->exclude[e] >= n)
            return wh_error(ctx, WH_ERR_ARG, "exclude: no layer %d (the net has %d)", o->exclude[e], n);
    g->unit_layer = malloc((size_t)(n + 1) * sizeof(int));
    g->unit_off = malloc((size_t)(n + 1) * sizeof(int));
    g->layer_unit = malloc((size_t)(n + 1) * sizeof(int));
    if (!g->unit_layer || !g->unit_off || !g->layer_unit) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    unsigned char *blocked = NULL;
    if (!(o && o->all_bn_convs)) {
        if (!(blocked = malloc((size_t)n + 1))) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        const wh_status st = wh_prunable_blocked_set(net, blocked, ctx);
        if (st != WH_OK) {
            free(blocked);
            return st;
        }
    }
    for (int i = 0; i < n; i++) {
        const wh_layer *l = &net->layers[i];
        g->layer_unit[i] = -1;
        if (l->ops->flow != WH_FLOW_NEW || !wh__has_param(l, "scales")) continue;
        wh_layer_facts f;
        wh_layer_facts_get(l, &f);
        if (f.conv_groups != 1) continue;
        int excluded = 0;
        for (int e = 0; o && e < o->n_exclude; e++) excluded |= o->exclude[e] == i;
        if (excluded || (blocked && blocked[i])) continue;
        g->layer_unit[i] = g->n_units;
        g->unit_layer[g->n_units] = i;
        g->unit_off[g->n_units] = g->n_channels;
        g->n_units++;
        g->n_channels += l->out_shape.c;
    }
    g->unit_off[g->n_units] = g->n_channels;
    free(blocked);
    return WH_OK;
}

wh_status wh_depgraph_build(const wh_net *net, const wh_depgraph_opts *o, wh_depgraph *g, wh_ctx *ctx)
{
    memset(g, 0, sizeof(*g));
    const int n = net->n_layers;
    g->n_layers = n;
    wh_status st = wh__units(net, o, g, ctx);
    if (st != WH_OK) {
        wh_depgraph_free(g);
        return st;
    }
    g->chan_off = malloc((size_t)(n + 1) * sizeof(int));
    size_t total = 0;
    if (g->chan_off)
        for (int i = 0; i < n; i++) {
            g->chan_off[i] = (int)total;
            total += (size_t)net->layers[i].out_shape.c;
        }
    const int FIXED = g->n_channels;
    int *parent = malloc((size_t)(FIXED + 1) * sizeof(int));
    int *has_consumer = calloc((size_t)(n + 1), sizeof(int));
    g->src = malloc((total + 1) * sizeof(int));
    if (!g->chan_off || !parent || !has_consumer || !g->src) {
        free(parent);
        free(has_consumer);
        wh_depgraph_free(g);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    g->chan_off[n] = (int)total;
    for (int x = 0; x <= FIXED; x++) parent[x] = x;

    for (int i = 0; i < n; i++) {
        const wh_layer *l = &net->layers[i];
        int *out = g->src + g->chan_off[i];
        const int C = l->out_shape.c;
        /* in_src(k, c): the flat channel (or FIXED) of input k's channel c */
#define WH__IN(k, c) (l->in[k] < 0 ? FIXED : g->src[g->chan_off[l->in[k]] + (c)])
        for (int k = 0; k < l->n_in; k++)
            if (l->in[k] >= 0) has_consumer[l->in[k]] = 1;
        wh_layer_facts f;
        wh_layer_facts_get(l, &f);
        switch (l->ops->flow) {
        case WH_FLOW_NEW:
            for (int c = 0; c < C; c++) out[c] = g->layer_unit[i] >= 0 ? g->unit_off[g->layer_unit[i]] + c : FIXED;
            /* a grouped convolution ties its input channels to its groups; a
             * layer that keeps its producers and makes a new space of them
             * without weights (a reorg: each input channel goes to stride^2
             * output channels) has nothing the surgery could shrink, so its
             * inputs keep every channel whatever the mode (and the
             * shortcuts couple that to the channels added to them) */
            if (f.conv_groups != 1 || f.keeps_producers)
                for (int k = 0; k < l->n_in; k++)
                    for (int c = 0; c < l->in_shape[k].c; c++) wh__union(parent, WH__IN(k, c), FIXED);
            break;
        case WH_FLOW_SAME:
            for (int c = 0; c < C; c++) out[c] = c < l->in_shape[0].c ? WH__IN(0, c) : FIXED;
            if (C != l->in_shape[0].c)
                for (int c = 0; c < l->in_shape[0].c; c++) wh__union(parent, WH__IN(0, c), FIXED);
            break;
        case WH_FLOW_CONCAT: {
            int w = 0;
            const int G = f.slice_groups > 0 ? f.slice_groups : 1;
            for (int k = 0; k < l->n_in; k++) {
                const int part = l->in_shape[k].c / G;
                for (int j = 0; j < part && w < C; j++) out[w++] = WH__IN(k, f.slice_id * part + j);
                for (int p = 1; p < G; p++)
                    for (int j = 0; j < part; j++) wh__union(parent, WH__IN(k, p * part + j), WH__IN(k, j));
            }
            for (; w < C; w++) out[w] = FIXED;
            break;
        }
        case WH_FLOW_ADD: {
            /* An adding layer that keeps its producers multiplies its inputs
             * ([scale_channels], [sam]): a pruned channel's constant times a
             * live factor is no constant, so its inputs keep every channel
             * whatever the mode (and the shortcuts couple that onwards). */
            int same = !f.keeps_producers;
            for (int k = 0; k < l->n_in; k++) same &= l->in_shape[k].c == C;
            for (int c = 0; c < C; c++) out[c] = same ? WH__IN(0, c) : FIXED;
            for (int k = 0; k < l->n_in; k++)
                for (int c = 0; c < l->in_shape[k].c; c++)
                    wh__union(parent, WH__IN(k, c), same ? WH__IN(0, c) : FIXED);
            break;
        }
        default:
            for (int c = 0; c < C; c++) out[c] = FIXED;
            for (int k = 0; k < l->n_in; k++)
                for (int c = 0; c < l->in_shape[k].c; c++) wh__union(parent, WH__IN(k, c), FIXED);
        }
#undef WH__IN
    }
    /* the network's outputs keep every channel */
    for (int i = 0; i < n; i++)
        if (!has_consumer[i])
            for (int c = 0; c < net->layers[i].out_shape.c; c++)
                wh__union(parent, g->src[g->chan_off[i] + c], FIXED);

    g->set = malloc((size_t)(FIXED + 1) * sizeof(int));
    g->set_size = calloc((size_t)(FIXED + 1), sizeof(int));
    g->chan_unit = malloc((size_t)(FIXED + 1) * sizeof(int));
    int *root_set = malloc((size_t)(FIXED + 1) * sizeof(int));
    if (!g->set || !g->set_size || !g->chan_unit || !root_set) {
        free(parent);
        free(has_consumer);
        free(root_set);
        wh_depgraph_free(g);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    for (int x = 0; x <= FIXED; x++) root_set[x] = -1;
    const int fixed_root = wh__find(parent, FIXED);
    for (int u = 0; u < g->n_units; u++)
        for (int x = g->unit_off[u]; x < g->unit_off[u + 1]; x++) g->chan_unit[x] = u;
    for (int x = 0; x < FIXED; x++) {
        const int r = wh__find(parent, x);
        if (r == fixed_root) {
            g->set[x] = -1;
            continue;
        }
        if (root_set[r] < 0) root_set[r] = g->n_sets++;
        g->set[x] = root_set[r];
        g->set_size[g->set[x]]++;
    }
    /* the public src says -1 for FIXED */
    for (size_t t = 0; t < total; t++)
        if (g->src[t] == FIXED) g->src[t] = -1;
    free(parent);
    free(has_consumer);
    free(root_set);
    return WH_OK;
}

int wh_depgraph_count_kept(const wh_depgraph *g, const wh_net *net, const unsigned char *keep, int layer)
{
    int k = 0;
    for (int c = 0; c < net->layers[layer].out_shape.c; c++) k += wh_depgraph_kept(g, keep, layer, c);
    return k;
}
