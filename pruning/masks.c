/* Thresholds and masks: a |gamma| quantile per group, the merge of coupled
 * sets, the per-layer minimum and round-to, the analytic cost of the result,
 * and the budget search (a common scale on the groups' base ratios, found
 * by bisection so the parameters or FLOPs removed hit a target).
 */
#include "prune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wh_prune_opts_default(wh_prune_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->ratio = 0.5;
    o->merge = WH_MERGE_UNION;
    o->min_keep = 8;
    o->min_keep_frac = 0.01;
}

static const wh_param *wh__param(const wh_layer *l, const char *name)
{
    for (int p = 0; p < l->n_params; p++)
        if (!strcmp(l->params[p].name, name)) return &l->params[p];
    return NULL;
}

/* |gamma| of every flat channel */
static void wh__absgamma(const wh_net *net, const wh_depgraph *g, float *out)
{
    for (int u = 0; u < g->n_units; u++) {
        const wh_param *s = wh__param(&net->layers[g->unit_layer[u]], "scales");
        for (int x = g->unit_off[u]; x < g->unit_off[u + 1]; x++) out[x] = fabsf(s->data[x - g->unit_off[u]]);
    }
}

void wh_prune_cost(const wh_net *net, const wh_depgraph *g, const unsigned char *keep, wh_net_cost *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        wh_net_cost lc;
        wh_layer_cost(l, &lc);
        const int o = l->out_shape.c, ko = keep ? wh_depgraph_count_kept(g, net, keep, i) : o;
        if (l->ops->flow == WH_FLOW_NEW) {
            /* weights (OC, IC/groups, K, K) scale with both counts, the rest with OC */
            const int in = l->in_shape[0].c;
            const int ki = keep && l->in[0] >= 0 ? wh_depgraph_count_kept(g, net, keep, l->in[0]) : in;
            for (int p = 0; p < l->n_params; p++) {
                const wh_param *pp = &l->params[p];
                if (!(pp->flags & WH_PARAM_COUNT)) continue;
                if (!strcmp(pp->name, "weights"))
                    out->params += pp->count / ((size_t)o * (size_t)in) * (size_t)ko * (size_t)ki;
                else
                    out->params += pp->count / (size_t)o * (size_t)ko;
            }
            const double f = lc.conv_flops * ((double)ko * ki) / ((double)o * in);
            out->conv_flops += f;
            out->darknet_flops += f;
        } else {
            out->params += lc.params; /* no prunable parameters outside convolutions */
            out->darknet_flops += o ? lc.darknet_flops * ko / o : 0.0;
        }
    }
}

void wh_prune_plan_free(wh_prune_plan *p)
{
    free(p->group_name);
    free(p->group_ratio);
    free(p->group_threshold);
    free(p->group_channels);
    free(p->group_kept);
    free(p->unit_group);
    free(p->unit_kept);
    free(p->unit_flags);
    free(p->keep);
    memset(p, 0, sizeof(*p));
}

typedef struct wh__work {
    const wh_net *net;
    const wh_depgraph *g;
    const wh_prune_opts *o;
    const float *absg;
    int *order;   /* per unit: its flat channels by |gamma| descending (concatenated like flat) */
    int *set_members_off, *set_members; /* channels of each set */
    unsigned char *vote;
    int *idx;
} wh__work;

static const float *wh__sort_key;
static int wh__by_gamma_desc(const void *a, const void *b)
{
    const float x = wh__sort_key[*(const int *)a], y = wh__sort_key[*(const int *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int *)a - *(const int *)b;
}

static int wh__by_gamma_asc(const void *a, const void *b)
{
    const float x = wh__sort_key[*(const int *)a], y = wh__sort_key[*(const int *)b];
    if (x != y) return x < y ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

static int wh__min_keep(const wh_prune_opts *o, int C)
{
    int m = (int)ceil(o->min_keep_frac * C);
    if (o->min_keep > m) m = o->min_keep;
    return m < C ? m : C;
}

static void wh__keep_set(wh__work *w, unsigned char *keep, int x)
{
    const int s = w->g->set[x];
    if (s < 0) return;
    for (int t = w->set_members_off[s]; t < w->set_members_off[s + 1]; t++) keep[w->set_members[t]] = 1;
}

/* Masks for the given group ratios into p (keep, thresholds, flags, counts). */
static void wh__masks(wh__work *w, const double *ratio, wh_prune_plan *p)
{
    const wh_depgraph *g = w->g;
    const wh_prune_opts *o = w->o;
    /* 1. per group, the ceil(ratio * n) smallest |gamma| vote to go (ties
     * broken by channel order, so equal gammas, as in an untrained network,
     * cannot take a whole group); the threshold reported is the largest of
     * them. 2. each channel's vote, 3. merged over its coupled set */
    for (int x = 0; x < g->n_channels; x++) w->vote[x] = 1;
    for (int k = 0; k < p->n_groups; k++) {
        int n = 0;
        for (int u = 0; u < g->n_units; u++)
            if (p->unit_group[u] == k)
                for (int x = g->unit_off[u]; x < g->unit_off[u + 1]; x++)
                    if (g->set[x] >= 0) w->idx[n++] = x;
        wh__sort_key = w->absg;
        qsort(w->idx, (size_t)n, sizeof(int), wh__by_gamma_asc);
        long m = ratio[k] > 0 ? (long)ceil(ratio[k] * n - 1e-9) : 0;
        m = m > n ? n : m;
        for (long t = 0; t < m; t++) w->vote[w->idx[t]] = 0;
        p->group_ratio[k] = ratio[k];
        p->group_threshold[k] = m > 0 ? w->absg[w->idx[m - 1]] : -1.0;
    }
    for (int u = 0; u < g->n_units; u++) p->unit_flags[u] = 0;
    for (int s = 0; s < g->n_sets; s++) {
        int yes = 0, n = 0;
        for (int t = w->set_members_off[s]; t < w->set_members_off[s + 1]; t++) {
            yes += w->vote[w->set_members[t]];
            n++;
        }
        const int k = o->merge == WH_MERGE_UNION ? yes > 0 : 2 * yes >= n;
        for (int t = w->set_members_off[s]; t < w->set_members_off[s + 1]; t++) {
            const int x = w->set_members[t];
            p->keep[x] = (unsigned char)k;
            if (k && !w->vote[x]) p->unit_flags[g->chan_unit[x]] |= WH_KEEP_COUPLED;
            if (!k && w->vote[x]) p->unit_flags[g->chan_unit[x]] |= WH_KEEP_OUTVOTED;
        }
    }
    for (int x = 0; x < g->n_channels; x++)
        if (g->set[x] < 0) p->keep[x] = 1;
    for (int u = 0; u < g->n_units; u++) {
        int any = 0;
        for (int x = g->unit_off[u]; x < g->unit_off[u + 1]; x++) any |= w->vote[x] && g->set[x] >= 0;
        if (!any && g->unit_off[u + 1] > g->unit_off[u]) p->unit_flags[u] |= WH_KEEP_ALL_BELOW;
    }
    /* 4. the minimum and round-to per unit, adding its largest-|gamma| pruned
     * channels (with their whole sets) until nothing changes */
    for (int changed = 1, round = 0; changed && round < 64; round++) {
        changed = 0;
        for (int u = 0; u < g->n_units; u++) {
            const int C = g->unit_off[u + 1] - g->unit_off[u];
            int k = 0;
            for (int x = g->unit_off[u]; x < g->unit_off[u + 1]; x++) k += p->keep[x];
            int need = wh__min_keep(o, C) > k ? wh__min_keep(o, C) : k;
            int flag = need > k ? WH_KEEP_MINIMUM : 0;
            if (o->round_to > 1 && need % o->round_to) {
                const int r = (need + o->round_to - 1) / o->round_to * o->round_to;
                need = r < C ? r : C;
                if (need > k && !flag) flag = WH_KEEP_ROUNDED;
            }
            if (need <= k) continue;
            p->unit_flags[u] |= flag;
            for (int t = g->unit_off[u]; t < g->unit_off[u + 1] && k < need; t++) {
                const int x = w->order[t];
                if (p->keep[x]) continue;
                wh__keep_set(w, p->keep, x);
                p->keep[x] = 1;
                k++;
            }
            changed = 1;
        }
    }
    for (int k = 0; k < p->n_groups; k++) p->group_channels[k] = p->group_kept[k] = 0;
    for (int u = 0; u < g->n_units; u++) {
        int k = 0;
        for (int x = g->unit_off[u]; x < g->unit_off[u + 1]; x++) k += p->keep[x];
        p->unit_kept[u] = k;
        p->group_channels[p->unit_group[u]] += g->unit_off[u + 1] - g->unit_off[u];
        p->group_kept[p->unit_group[u]] += k;
    }
}


static double wh__reduction(const wh_prune_plan *p, const wh_prune_opts *o)
{
    if (o->target_params > 0) return 1.0 - (double)p->after.params / (double)p->before.params;
    return 1.0 - p->after.conv_flops / p->before.conv_flops;
}

wh_status wh_prune_plan_make(const wh_net *net, const wh_depgraph *g, const wh_grouping *gr, const wh_prune_opts *o,
                             wh_prune_plan *p, wh_ctx *ctx)
{
    memset(p, 0, sizeof(*p));
    if (o->ratios && o->n_ratios != gr->n_groups) {
        char names[1024] = "";
        for (int k = 0; k < gr->n_groups; k++)
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", k ? ", " : "", gr->name[k]);
        return wh_error(ctx, WH_ERR_ARG, "%d ratios given for %d groups (%s)", o->n_ratios, gr->n_groups, names);
    }
    if (o->target_params > 0 && o->target_flops > 0)
        return wh_error(ctx, WH_ERR_ARG, "a parameter target and a FLOP target at once: choose one");
    if (o->target_params < 0 || o->target_params >= 1 || o->target_flops < 0 || o->target_flops >= 1)
        return wh_error(ctx, WH_ERR_ARG, "a target reduction must be in [0, 1): %g params, %g FLOPs",
                        o->target_params, o->target_flops);
    const int G = gr->n_groups, U = g->n_units, N = g->n_channels > 0 ? g->n_channels : 1;
    p->n_groups = G;
    p->group_name = calloc((size_t)G + 1, sizeof(*p->group_name));
    p->group_ratio = calloc((size_t)G + 1, sizeof(double));
    p->group_threshold = calloc((size_t)G + 1, sizeof(double));
    p->group_channels = calloc((size_t)G + 1, sizeof(int));
    p->group_kept = calloc((size_t)G + 1, sizeof(int));
    p->unit_group = calloc((size_t)U + 1, sizeof(int));
    p->unit_kept = calloc((size_t)U + 1, sizeof(int));
    p->unit_flags = calloc((size_t)U + 1, sizeof(int));
    p->keep = calloc((size_t)N, 1);
    wh__work w = {net, g, o, NULL, NULL, NULL, NULL, NULL, NULL};
    float *absg = malloc((size_t)N * sizeof(float));
    w.absg = absg;
    w.order = malloc((size_t)N * sizeof(int));
    w.set_members_off = calloc((size_t)g->n_sets + 2, sizeof(int));
    w.set_members = malloc((size_t)N * sizeof(int));
    w.vote = malloc((size_t)N);
    w.idx = malloc((size_t)N * sizeof(int));
    double *base = malloc(((size_t)G + 1) * sizeof(double)), *ratio = malloc(((size_t)G + 1) * sizeof(double));
    wh_status st = WH_OK;
    if (!p->group_name || !p->group_ratio || !p->group_threshold || !p->group_channels || !p->group_kept ||
        !p->unit_group || !p->unit_kept || !p->unit_flags || !p->keep || !absg || !w.order || !w.set_members_off ||
        !w.set_members || !w.vote || !w.idx || !base || !ratio)
        st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int k = 0; st == WH_OK && k < G; k++) {
        snprintf(p->group_name[k], WH_GROUP_NAME, "%s", gr->name[k]);
        base[k] = o->ratios ? o->ratios[k] : !isnan(gr->ratio[k]) ? gr->ratio[k] : o->ratio;
        if (!(base[k] >= 0 && base[k] < 1))
            st = wh_error(ctx, WH_ERR_ARG, "group %s: ratio %g is outside [0, 1)", gr->name[k], base[k]);
    }
    if (st == WH_OK) {
        for (int u = 0; u < U; u++) p->unit_group[u] = gr->unit_group[u];
        wh__absgamma(net, g, absg);
        for (int x = 0; x < g->n_channels; x++) w.order[x] = x;
        wh__sort_key = absg; /* single-threaded use only */
        for (int u = 0; u < U; u++)
            qsort(w.order + g->unit_off[u], (size_t)(g->unit_off[u + 1] - g->unit_off[u]), sizeof(int),
                  wh__by_gamma_desc);
        for (int x = 0; x < g->n_channels; x++)
            if (g->set[x] >= 0) w.set_members_off[g->set[x] + 1]++;
        for (int s = 0; s < g->n_sets; s++) w.set_members_off[s + 1] += w.set_members_off[s];
        int *fill = calloc((size_t)g->n_sets + 1, sizeof(int));
        if (!fill) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        for (int x = 0; st == WH_OK && x < g->n_channels; x++)
            if (g->set[x] >= 0) w.set_members[w.set_members_off[g->set[x]] + fill[g->set[x]]++] = x;
        free(fill);
    }
    if (st == WH_OK) {
        wh_prune_cost(net, g, NULL, &p->before);
        p->scale = 1.0;
        const double target = o->target_params > 0 ? o->target_params : o->target_flops;
        if (target > 0) {
            /* the largest useful scale takes every group to 0.999 */
            double bmin = 1.0;
            for (int k = 0; k < G; k++)
                if (base[k] > 0 && base[k] < bmin) bmin = base[k];
            double lo = 0.0, hi = 0.999 / bmin;
            for (int it = 0; it < 60; it++) {
                const double mid = 0.5 * (lo + hi);
                for (int k = 0; k < G; k++) ratio[k] = fmin(base[k] * mid, 0.999);
                wh__masks(&w, ratio, p);
                wh_prune_cost(net, g, p->keep, &p->after);
                if (wh__reduction(p, o) < target) lo = mid;
                else hi = mid;
            }
            /* of the two ends of the final bracket, the one nearer the target */
            double best = hi, best_err = INFINITY;
            for (int e = 0; e < 2; e++) {
                const double sc = e ? hi : lo;
                for (int k = 0; k < G; k++) ratio[k] = fmin(base[k] * sc, 0.999);
                wh__masks(&w, ratio, p);
                wh_prune_cost(net, g, p->keep, &p->after);
                const double err = fabs(wh__reduction(p, o) - target);
                if (err < best_err) {
                    best_err = err;
                    best = sc;
                }
            }
            p->scale = best;
        }
        for (int k = 0; k < G; k++) ratio[k] = fmin(base[k] * p->scale, target > 0 ? 0.999 : base[k]);
        wh__masks(&w, ratio, p);
        wh_prune_cost(net, g, p->keep, &p->after);
        for (int u = 0; u < U; u++)
            if (p->unit_flags[u] & WH_KEEP_ALL_BELOW)
                wh_warn(ctx, "layer %d: the threshold %.4g of group %s is above its largest |gamma|; it keeps %d "
                             "channels by the minimum rule",
                        g->unit_layer[u], p->group_threshold[p->unit_group[u]], p->group_name[p->unit_group[u]],
                        p->unit_kept[u]);
    }
    free(absg);
    free(w.order);
    free(w.set_members_off);
    free(w.set_members);
    free(w.vote);
    free(w.idx);
    free(base);
    free(ratio);
    if (st != WH_OK) wh_prune_plan_free(p);
    return st;
}
