/* whittle: the layer interface.
 *
 * A layer is a small generic struct (inputs, shapes, buffers, parameters) plus
 * a private state behind one vtable. Adding a layer type touches its own file
 * layers/<type>.c, one line in the registry (layers/registry.c) and its test.
 *
 * Life of a layer inside wh_net:
 *   init    read the cfg section (unknown keys become warnings afterwards),
 *           fill l->n_in / l->in[] with absolute input indices (-1 = image)
 *   shape   given the input shapes, set l->out_shape (and l->out_layout when
 *           not NCHW) or fail naming layers. Inputs arrive in l->in_layout[k]:
 *           the producer's layout when ops->layouts_in accepts it, else the
 *           net reorders into the first accepted layout (and the gradient back);
 *           shape may set l->in_layout[k] to NCHW to ask for that reorder
 *           (a route whose inputs disagree)
 *   plan    declare parameters and buffers (sizes only, no allocation)
 *   bind    (optional) all pointers are now valid: create oneDNN objects
 *   forward / backward
 * Gradients flow by accumulation: backward ADDS into x->din[k] because one
 * output may feed several layers (route, shortcut). Parameter gradients also
 * accumulate, across calls, until the trainer clears them (subdivisions).
 */
#ifndef WH_LAYER_H
#define WH_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "framework/core/cfg.h"
#include "framework/core/status.h"
#include "framework/core/tensor.h"
#include "activation.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WH_MAX_IN 16
#define WH_MAX_PARAMS 6

typedef struct wh_net wh_net;
typedef struct wh_layer wh_layer;
typedef struct wh_plan wh_plan;

/* How a layer's output channels relate to its inputs' (for pruning's
 * dependency analysis, which is generic over this and never over indices). */
typedef enum wh_flow {
    WH_FLOW_NEW,    /* a new channel space (convolution) */
    WH_FLOW_SAME,   /* the input's space, element by element (pool, upsample, yolo) */
    WH_FLOW_CONCAT, /* the inputs' spaces concatenated, or a slice (route) */
    WH_FLOW_ADD     /* the inputs' spaces added: their channels are coupled (shortcut) */
} wh_flow;

enum {
    WH_PARAM_TRAIN = 1, /* updated by the optimizer, has a gradient */
    WH_PARAM_DECAY = 2, /* gets weight decay (conv weights only, as darknet) */
    WH_PARAM_COUNT = 4  /* counted in the parameter total (darknet's count) */
};

typedef struct wh_param {
    const char *name;   /* "weights", "biases", "scales", "rolling_mean", "rolling_variance" */
    float *data;        /* count floats */
    float *grad;        /* count floats, NULL unless WH_PARAM_TRAIN and training */
    size_t count;
    int flags;
    int ndims;          /* its natural shape: conv weights (OC, IC/groups, K, K) */
    int dims[4];        /* set by wh_plan_param to (count); layers may refine it */
} wh_param;

struct wh_layer {
    const struct wh_layer_ops *ops;
    int index;                   /* position in cfg order, from 0 */
    int line;                    /* line of the [section] header in the cfg */
    int n_in;
    int in[WH_MAX_IN];           /* absolute input layer indices; -1 = network input */
    wh_shape in_shape[WH_MAX_IN];
    wh_layout in_layout[WH_MAX_IN]; /* the layout this layer receives input k in */
    float *in_cvt[WH_MAX_IN];    /* net-inserted copy of input k in in_layout, or NULL */
    float *din_cvt[WH_MAX_IN];   /* its gradient (training), reordered back after backward */
    wh_shape out_shape;          /* batch included */
    wh_layout out_layout;        /* chosen by the layer in shape(); NCHW unless it says */
    float *out;                  /* output activation, out_shape in out_layout */
    float *dout;                 /* d loss / d out, same size; NULL in inference nets */
    int n_params;
    wh_param params[WH_MAX_PARAMS];
    int train;                   /* the net was built for training (buffers exist) */
    wh_layout blocked;           /* the blocked layout the net allows (NCHW: none) */
    void *priv;                  /* the layer type's own state */
};

typedef struct wh_exec {
    int train;                   /* 1: batch statistics, keep what backward needs */
    const float *in[WH_MAX_IN];  /* the inputs' activations */
    float *din[WH_MAX_IN];       /* += gradients for the inputs; NULL: not wanted */
    wh_net *net;                 /* engine and stream for oneDNN layers */
    wh_ctx *ctx;
    /* Set by a layer whose forward verified its own output is finite from
     * numbers it computes anyway (batch-norm statistics): the net's
     * NaN/infinity check (opts.check_finite) then skips the full scan. */
    int checked;
    /* Set by a layer whose own sums (batch-norm statistics forward, the
     * gradient sums backward: checks_dout) came out non-finite, with what
     * they were; the layer still finishes its work (a rank must still make
     * its collective calls) and the net reports it (wh_net_numeric). */
    int nonfinite_sums;
    char nonfinite_what[96];
} wh_exec;

/* Structural facts the channel-dependency analysis and surgery read
 * (pruning/), beyond the flow: what a channel's constant value becomes and how
 * a route slices. wh_layer_facts_get fills the defaults first. */
typedef struct wh_layer_facts {
    wh_act act;          /* applied last (conv after BN, shortcut after the sum); default linear */
    int bn;              /* conv: batch norm (its "biases" are then the BN shift beta) */
    int conv_groups;     /* conv: channel groups (1: dense) */
    int ksize;           /* conv: kernel size */
    int slice_groups;    /* route: each input is cut into slice_groups parts ... */
    int slice_id;        /* ... and part slice_id is taken (1, 0: the whole input) */
    /* The authors' pruning rule (their prune_utils): the convolutions this
     * layer reads keep all their channels. Set by an SPP maxpool (stride 1,
     * size kept), an upsample and a route that slices its input. */
    int keeps_producers;
    /* A detection head (the layer the loss and the decoder work on): pruning
     * keeps the chain that feeds it (pruning/grouping.c) and groups by its
     * stride. */
    int head;
} wh_layer_facts;

typedef struct wh_layer_ops {
    const char *type;            /* darknet section name: "convolutional" */
    wh_flow flow;
    unsigned layouts_in;         /* WH_LAYOUT_BIT()s the inputs may be in */
    /* base_index: the layer's own index, for relative input indices. */
    wh_status (*init)(wh_layer *, wh_cfg_section *, wh_ctx *);
    wh_status (*shape)(wh_layer *, wh_ctx *);       /* in_shape[] set by the net */
    wh_status (*plan)(wh_layer *, wh_plan *, wh_ctx *);
    wh_status (*bind)(wh_layer *, wh_net *, wh_ctx *); /* optional */
    void (*init_weights)(wh_layer *, uint64_t *rng);  /* optional: random init */
    wh_status (*forward)(wh_layer *, wh_exec *);
    wh_status (*backward)(wh_layer *, wh_exec *);    /* NULL: inference only */
    double (*flops)(const wh_layer *);  /* darknet's count for this layer, batch 1; NULL: 0 */
    void (*describe)(const wh_layer *, char *buf, int n); /* "32 3x3/1" for tables */
    void (*destroy)(wh_layer *);
    void (*facts)(const wh_layer *, wh_layer_facts *); /* optional */
    /* 1 when backward reads x->in[]: with opts.share_outs, the outputs it
     * reads then live through the backward (0: they may be reused once the
     * forward has read them) */
    int backward_reads_input;
    /* 1 when backward fails with WH_ERR_NUMERIC itself if its output
     * gradient holds a NaN or an infinity (convolutions: their per-channel
     * gradient sums show it): the net's check then skips the full scan. */
    int checks_dout;
    /* optional: runs after every layer's init_weights and may set what its
     * producers hold (a detection head sets its input convolution's output
     * biases to priors); producers[k] is input k's layer, NULL for the
     * network input */
    void (*init_producers)(const wh_layer *, wh_layer *const *producers);
    /* darknet's .weights layout: the names of the layer's parameters in
     * file order, NULL-terminated; a name the layer did not declare is
     * skipped (a conv without batch norm has no "scales"). NULL: the layer
     * has no parameters in darknet's format (import and export refuse a
     * layer with parameters but no order). */
    const char *const *weights_order;
    /* optional: the detection-head interface (layers/head.h) when the
     * layer is a head the trainer and the evaluator work with */
    const struct wh_head_ops *head;
} wh_layer_ops;

void wh_layer_facts_get(const wh_layer *l, wh_layer_facts *f);

/* Every layout, for layers that handle the blocked ones too. */
#define WH_LAYOUTS_ALL (WH_LAYOUT_BIT(WH_LAYOUT_NCHW) | WH_LAYOUT_BIT(WH_LAYOUT_NCHW16C) | WH_LAYOUT_BIT(WH_LAYOUT_NCHW8C))

/* For shape(): keeps input k blocked only in the net's blocked layout, with
 * channels filling whole blocks (no padding channels: batch statistics,
 * gradients and channel slices then never see one); else asks for NCHW.
 * Returns the layout input k arrives in. */
static inline wh_layout wh_layer_keep_blocked(wh_layer *l, int k)
{
    const wh_layout in = l->in_layout[k];
    const int B = wh_layout_block(in);
    if (B > 1 && (in != l->blocked || l->in_shape[k].c % B)) l->in_layout[k] = WH_LAYOUT_NCHW;
    return l->in_layout[k];
}

/* --- planning: layers declare, the net allocates ------------------------- */
typedef enum wh_arena_kind {
    WH_ARENA_PARAM,   /* parameters and running statistics: the model */
    WH_ARENA_GRAD,    /* parameter gradients (training only) */
    WH_ARENA_ACT,     /* activations and what backward needs: one forward+backward */
    WH_ARENA_SCRATCH, /* transient within one layer call; shared by all layers */
    WH_ARENA_DOUT,    /* activation gradients (training): laid out by the net itself, by lifetime */
    WH_ARENA_OUT,     /* layer outputs and reordered inputs: laid out by the net itself (by
                         lifetime in training nets with opts.share_outs) */
    WH_ARENA_COUNT
} wh_arena_kind;

/* Declares a parameter; its data (and grad when training) pointers are set
 * when the net binds. Returns its index in l->params, or -1 on overflow. */
int wh_plan_param(wh_plan *p, wh_layer *l, const char *name, size_t count, int flags);
/* Declares a buffer of count floats; *slot receives its address at bind. */
wh_status wh_plan_buffer(wh_plan *p, wh_arena_kind kind, float **slot, size_t count);
/* Bytes variant for oneDNN buffers whose size is given in bytes. */
wh_status wh_plan_bytes(wh_plan *p, wh_arena_kind kind, void **slot, size_t bytes);

/* --- registry -------------------------------------------------------------- */
const wh_layer_ops *wh_layer_find(const char *type);
/* Adds a layer type of the user's (or a test's) to the registry; a name that
 * is already known is an error. Not thread-safe: register before building. */
wh_status wh_layer_register(const wh_layer_ops *ops, wh_ctx *ctx);
/* Writes the known type names, comma separated, for error messages. */
void wh_layer_types(char *buf, int n);

/* "layer 7" or "the network input" (idx -1), for messages about inputs. */
void wh_layer_input_name(int idx, char *buf, size_t n);

/* Resolves a cfg layer index (relative if negative, else absolute) seen from
 * layer self into an absolute one, or fails naming file:line. */
wh_status wh_layer_resolve_index(const wh_layer *self, wh_cfg_section *s, const char *key,
                                 int idx, int *abs_idx, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
