/* whittle: stage 2, group channel pruning and the surgery that writes a
 * physically smaller network.
 *
 *   net --wh_depgraph_build--> units (prunable convolutions with BN), coupled
 *       channel sets (shortcuts; grouped routes), fixed channels
 *       --wh_grouping_make--> a group per unit (plug-ins: global, layer,
 *       scale, scale-module, file)
 *       --wh_prune_plan_make--> a threshold per group (ratio quantile, or a
 *       budget searched), merged masks, minimum and round-to -> keep[]
 *       --wh_prune_build--> constants folded, kept weights copied into the
 *       compact network and its cfg
 *
 * Channels are numbered flat over the units, in layer order ("flat channel"
 * c of unit u is channel c - unit_off[u] of layer unit_layer[u]). Nothing
 * here knows a layer index of a particular model: the analysis reads each
 * layer's flow (layers/layer.h) and facts.
 */
#ifndef WH_PRUNE_H
#define WH_PRUNE_H

#include "framework/core/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dependency analysis ---------------------------------------------------- */

typedef struct wh_depgraph {
    int n_layers;
    /* Per layer, per output channel: the flat channel it carries, or -1 when
     * it can never be pruned (from the image, a non-prunable layer, a net
     * output, or coupled with such a channel). Layer i's channels are
     * src[chan_off[i] .. chan_off[i+1]). */
    int *chan_off, *src;
    int n_units;
    int *unit_layer;  /* layer index per unit, ascending */
    int *unit_off;    /* n_units + 1: first flat channel of each unit */
    int *layer_unit;  /* per layer: its unit, or -1 */
    int n_channels;
    /* Per flat channel: its coupled set (0..n_sets-1; one mask for the whole
     * set), or -1 when it is fixed (coupled with a channel that cannot go). */
    int *set;
    int n_sets;
    int *set_size;    /* channels per set */
    int *chan_unit;   /* per flat channel: its unit */
} wh_depgraph;

typedef struct wh_depgraph_opts {
    const int *exclude; /* layer indices the user keeps (may be NULL) */
    int n_exclude;
    /* 0 (default): the prunable convolutions of stage 1 (no conv feeding the
     * SPP pools, an upsample or a grouped route); 1: every conv with BN,
     * the couplings decide. */
    int all_bn_convs;
} wh_depgraph_opts;

wh_status wh_depgraph_build(const wh_net *net, const wh_depgraph_opts *o, wh_depgraph *out, wh_ctx *ctx);
void wh_depgraph_free(wh_depgraph *g);
/* Flat channel of layer i's output channel c, or -1. */
static inline int wh_depgraph_src(const wh_depgraph *g, int layer, int c) { return g->src[g->chan_off[layer] + c]; }
/* Whether layer i's output channel c survives, given keep[] per flat channel. */
static inline int wh_depgraph_kept(const wh_depgraph *g, const unsigned char *keep, int layer, int c)
{
    const int s = wh_depgraph_src(g, layer, c);
    return s < 0 || g->set[s] < 0 || keep[s];
}
/* Channels of layer i's output that survive. */
int wh_depgraph_count_kept(const wh_depgraph *g, const wh_net *net, const unsigned char *keep, int layer);

/* ---- module roles: what the scale-module grouping (and distillation) read --- */

typedef enum wh_role {
    WH_ROLE_BACKBONE,  /* before the neck: stem, stages, SPP */
    WH_ROLE_TOPDOWN,   /* from the first layer feeding an upsample, while the stride falls or holds */
    WH_ROLE_BOTTOMUP,  /* the neck after its first stride increase */
    WH_ROLE_HEAD       /* layers that only feed detection layers */
} wh_role;
const char *wh_role_name(wh_role r);

/* role[i] and stride[i] (input size / output size, >= 1) for every layer. */
wh_status wh_net_roles(const wh_net *net, wh_role *role, int *stride, wh_ctx *ctx);

/* ---- grouping plug-ins ------------------------------------------------------ */

#define WH_GROUP_NAME 64

typedef struct wh_grouping {
    int n_groups;
    char (*name)[WH_GROUP_NAME];
    double *ratio;      /* the grouping's own ratio per group (file); NaN: none */
    int *unit_group;    /* per unit (wh_depgraph order) */
} wh_grouping;

typedef struct wh_grouping_ops {
    const char *name;
    const char *help;
    /* arg: the plug-in's argument (the file path for "file"), may be NULL.
     * Groups are numbered in order of their first unit; every group has at
     * least one unit. */
    wh_status (*assign)(const wh_net *net, const wh_depgraph *g, const char *arg, wh_grouping *out, wh_ctx *ctx);
} wh_grouping_ops;

/* Unknown name: an error listing the known ones. */
wh_status wh_grouping_make(const char *name, const char *arg, const wh_net *net, const wh_depgraph *g,
                           wh_grouping *out, wh_ctx *ctx);
void wh_grouping_free(wh_grouping *gr);
/* Adds a grouping of the user's to the registry; --groups NAME then finds
 * it. Its groups are checked like the built-in ones' (every unit in one
 * group, none empty, numbered in order of first unit). ops must outlive
 * every use; a known name is an error. Not thread-safe. */
wh_status wh_grouping_register(const wh_grouping_ops *ops, wh_ctx *ctx);
void wh_grouping_names(char *buf, size_t n); /* "global, layer, scale, scale-module, file" */
/* Allocates out for n_groups groups and n_units units (names empty, ratios NaN). */
wh_status wh_grouping_alloc(wh_grouping *out, int n_groups, int n_units, wh_ctx *ctx);

/* ---- thresholds and masks ---------------------------------------------------- */

typedef enum wh_merge { WH_MERGE_UNION, WH_MERGE_MAJORITY } wh_merge;

typedef struct wh_prune_opts {
    const double *ratios; /* per group, in group order; NULL: the grouping's, else ratio */
    int n_ratios;
    double ratio;         /* for every group without one (default 0.5) */
    double target_params; /* fraction of parameters to remove (0.647), 0: off */
    double target_flops;  /* fraction of conv FLOPs to remove, 0: off */
    wh_merge merge;
    int round_to;         /* kept channels per layer a multiple of this (0/1: off) */
    int min_keep;         /* a layer keeps at least min(C, max(min_keep, ceil(min_keep_frac*C))) */
    double min_keep_frac;
} wh_prune_opts;
void wh_prune_opts_default(wh_prune_opts *o); /* ratio 0.5, union, min_keep 8, frac 0.01 */

enum { /* why a unit kept more than its threshold says (wh_prune_plan.unit_flags) */
    WH_KEEP_MINIMUM = 1,   /* raised to the minimum */
    WH_KEEP_ROUNDED = 2,   /* raised to a multiple of round_to */
    WH_KEEP_COUPLED = 4,   /* the merge of a coupled set kept channels below the threshold */
    WH_KEEP_ALL_BELOW = 8, /* every channel voted to go (its largest |gamma| is at most the threshold) */
    WH_KEEP_OUTVOTED = 16  /* majority merge pruned channels above the threshold */
};

typedef struct wh_prune_plan {
    int n_groups;
    char (*group_name)[WH_GROUP_NAME];
    double *group_ratio;     /* asked (after the budget scale) */
    double *group_threshold; /* the largest |gamma| voted out: ceil(ratio * n) go, ties by channel order; -1: none */
    int *group_channels, *group_kept;
    int *unit_group, *unit_kept, *unit_flags;
    unsigned char *keep;     /* per flat channel */
    double scale;            /* budget mode: the factor found on the base ratios (1 otherwise) */
    wh_net_cost before, after;
} wh_prune_plan;

wh_status wh_prune_plan_make(const wh_net *net, const wh_depgraph *g, const wh_grouping *gr,
                             const wh_prune_opts *o, wh_prune_plan *out, wh_ctx *ctx);
void wh_prune_plan_free(wh_prune_plan *p);

/* Parameters and FLOPs of the network that keep[] would give (batch 1,
 * darknet's counts), without building it. */
void wh_prune_cost(const wh_net *net, const wh_depgraph *g, const unsigned char *keep, wh_net_cost *out);

/* ---- surgery ------------------------------------------------------------------ */

/* The compact network: cfg_text with every pruned unit's filters= lowered,
 * built with opts, the kept weights copied in. With fold, each pruned
 * channel's constant output act(beta) (through pools, upsamples, routes and
 * shortcuts) is folded into its consumers: into their BN running mean, or
 * their bias without BN. Exact away from zero-padded borders. */
wh_status wh_prune_build(const wh_net *net, const char *cfg_text, const wh_depgraph *g, const unsigned char *keep,
                         int fold, const wh_net_opts *opts, char **out_cfg, wh_net **out_net, wh_ctx *ctx);
/* Sets the BN scale (gamma) of every pruned channel of net to zero, and its
 * shift (beta) too when zero_beta: the full network the compact one stands for. */
void wh_prune_mask_net(wh_net *net, const wh_depgraph *g, const unsigned char *keep, int zero_beta);

/* ---- measuring and reporting ------------------------------------------------- */

/* Median wall seconds of runs forward passes (after one warm-up), inference. */
wh_status wh_prune_time_forward(wh_net *net, int runs, double *median_s, wh_ctx *ctx);
/* Max |a - b| and max |a| over the outputs of both networks' output layers
 * (layers nobody reads), after a forward each on the same input. */
wh_status wh_prune_output_error(const wh_net *a, const wh_net *b, double *max_abs, double *max_ref, wh_ctx *ctx);

typedef struct wh_prune_info {
    const char *source;       /* the checkpoint pruned */
    const char *grouping;     /* plug-in name (and file) */
    const wh_prune_opts *opts;
    int fold;
    /* measured; lat_runs 0: latency not measured; err_ref < 0: no error measured */
    int lat_runs, lat_threads;
    const char *wait_policy;  /* OMP_WAIT_POLICY in effect */
    int lat_batch[2];
    double lat_before[2], lat_after[2]; /* median seconds per forward of a batch */
    double err_abs, err_ref;
    double bytes_before, bytes_after; /* checkpoint sizes; 0: unknown */
    int bn_images;            /* batch-norm statistics re-estimated on this many images (0: not) */
} wh_prune_info;

/* The report: per layer channels before and after (and why a layer kept
 * more), per group ratio, threshold and counts, totals of parameters, FLOPs
 * and file size, latency, output error. Markdown for people, JSON for
 * scripts; both malloc'd. */
wh_status wh_prune_report(const wh_net *net, const wh_depgraph *g, const wh_prune_plan *p, const wh_prune_info *info,
                          char **markdown, char **json, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
