/* whittle: the network, built from a darknet cfg.
 *
 *   cfg --wh_net_create--> layers in cfg order (each names its inputs)
 *       --> shapes inferred and checked --> plan (sizes) --> arenas --> bind
 *
 * One allocation per lifetime (framework/core/plan.c): the parameters, their
 * gradients, the activations of one forward+backward, and one scratch area
 * shared by all layers (darknet's workspace, here also oneDNN's blocked
 * copies and scratchpads).
 */
#ifndef WH_NET_H
#define WH_NET_H

#include <dnnl.h>

#include "layers/layer.h"
#include "framework/core/cfg.h"
#include "framework/core/status.h"
#include "framework/core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wh_lr_policy {
    WH_LR_CONSTANT, WH_LR_STEPS, WH_LR_STEP, WH_LR_EXP, WH_LR_POLY, WH_LR_SGDR,
    WH_LR_RANDOM, WH_LR_SIG, WH_LR_COSINE
} wh_lr_policy;

#define WH_MAX_STEPS 32

/* The [net] section: the input, and what the trainer and the data loader need. */
typedef struct wh_hparams {
    int width, height, channels;
    int batch, subdivisions;     /* the mini-batch in memory is batch/subdivisions */
    float momentum, decay, learning_rate;
    int burn_in, max_batches;
    float power;                 /* burn-in exponent and poly power (darknet: 4) */
    wh_lr_policy policy;
    int n_steps;
    int steps[WH_MAX_STEPS];
    float scales[WH_MAX_STEPS];
    float gamma;                 /* exp/step/sig policies */
    float learning_rate_min;     /* sgdr/cosine floor */
    int sgdr_cycle;              /* sgdr: first cycle length in batches (default max_batches) */
    int sgdr_mult;               /* sgdr: each cycle this many times longer */
    int step;
    /* augmentation */
    float angle, saturation, exposure, hue, aspect;
    int flip, mosaic, letter_box, mixup, cutmix, blur;
} wh_hparams;

wh_status wh_hparams_parse(wh_cfg_section *s, wh_hparams *hp, wh_ctx *ctx);

typedef struct wh_net_opts {
    int batch;          /* 0: [net] batch / subdivisions, as darknet */
    int width, height;  /* 0: from [net] */
    int train;          /* 1: allocate gradients and what backward needs */
    /* Keep activations (and, training, their gradients) in oneDNN's
     * channel-blocked layout (8 channels per block on AVX2, 16 on AVX-512)
     * between the layers that support it (convolutions with a multiple of
     * the block filters, pools, upsamples, routes and shortcuts whose inputs
     * agree), so convolutions skip their layout reorders. Outputs of [yolo]
     * layers stay NCHW; read any other layer's l->out and l->dout through
     * its l->out_layout. */
    int blocked;
    /* Training nets: activation gradients share memory by lifetime. Layer
     * j's dout lives from the backward of its last consumer (or, for a layer
     * nobody reads and for pinned ones, from wh_net_zero_douts) to its own
     * backward; buffers whose lifetimes do not overlap share bytes, so a
     * layer's dout may be read only while it lives (wh_net_backward_layer
     * zeroes it when it starts to). Gradients seeded into a middle layer
     * before the backward (a distillation term) need wh_net_pin_dout. */
    int share_douts;
    /* Training nets: layer outputs (and reordered inputs) that no backward
     * reads share memory by lifetime too: such an output lives from its
     * layer's forward to its last consumer's forward. Outputs a backward
     * reads (a convolution's or a [yolo] layer's input), the net's outputs
     * (layers nobody reads: the [yolo] heads) and pinned layers live to the
     * end of the step. Read any other layer's l->out only right after its
     * forward. */
    int share_outs;
    /* Every layer's output right after its forward, and its output gradient
     * before its backward (complete then), are checked for NaN and
     * infinities: the first one fails with WH_ERR_NUMERIC naming the layer
     * (and, for a gradient, the consumers that made it). */
    int check_finite;
    /* Plan only: every arena is sized (arena_bytes, wh_net_memory_get) but
     * nothing is allocated and the net cannot run (the memory planner). */
    int dry_run;
} wh_net_opts;

struct wh_net {
    wh_hparams hp;
    wh_shape in_shape;       /* (batch, channels, height, width) */
    int n_layers;
    wh_layer *layers;
    int train;
    wh_layout blocked;       /* the blocked layout layers may output (8c on AVX2, 16c on
                                AVX-512), or NCHW: opts.blocked was 0 */
    float *input;            /* in_shape, NCHW */
    float *arena[WH_ARENA_COUNT];
    size_t arena_bytes[WH_ARENA_COUNT];
    int *n_consumers;        /* per layer: how many layers read its output */
    int *dout_hi;            /* per layer: the last layer whose backward its dout lives for (n_layers:
                                from wh_net_zero_douts on: a leaf, pinned, or nothing shared) */
    int share_douts;
    int *out_hi;             /* per layer: the last layer whose forward reads its output (n_layers:
                                through the loss and the backward) */
    int share_outs;
    int check_finite;
    /* Data-parallel training: a non-finite value found by the checks is
     * recorded (the first one, numeric_msg) instead of failing the layer, and
     * the step goes on, so every rank makes the same collective calls; the
     * trainer then agrees with the other ranks to skip or stop
     * (wh_net_numeric). The trainer clears numeric_pending per iteration. */
    int defer_numeric;
    int numeric_pending;
    int numeric_at;          /* where in the step: layer i's forward i, the loss n_layers, layer i's
                                backward 2 n_layers - i (ranks compare it to name the first) */
    char numeric_msg[400];
    int dry_run;
    int n_layout_cvt;        /* edges where the net reorders between disagreeing layouts */
    /* Data-parallel training (framework/train/dist.h): when bn_sum is set, training
     * convolutions add their batch-norm sums over the job's ranks
     * (bn_sum(bn_user, buf, n) sums n doubles in place) and count bn_ranks
     * times their own pixels: the statistics of the whole global mini-batch. */
    wh_status (*bn_sum)(void *user, double *buf, size_t n, wh_ctx *ctx);
    void *bn_user;
    int bn_ranks;
    /* Training forwards move each batch-norm running statistic this share
     * of the way to the batch's (darknet: 0.01; wh_net_set_bn_momentum). */
    float bn_momentum;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
};

/* Sets the running statistics' update share m in (0, 1]: 1/k at the k-th of
 * a run of training forwards makes them the plain mean of the k batches'
 * statistics (wh_bn_recalibrate); WH_NET_BN_MOMENTUM is darknet's. */
#define WH_NET_BN_MOMENTUM 0.01f
void wh_net_set_bn_momentum(wh_net *net, float m);
/* Copies src's parameters into dst, a net of the same cfg built for another
 * batch, size or mode: all of them, or with stats_only the batch-norm
 * running statistics only. Fails (WH_ERR_STATE) naming the first layer
 * whose parameters differ, before copying anything. */
wh_status wh_net_copy_params(wh_net *dst, const wh_net *src, int stats_only, wh_ctx *ctx);

/* Builds the network; cfg stays owned by the caller and may be freed after. */
wh_status wh_net_create(wh_cfg *cfg, const wh_net_opts *opts, wh_net **out, wh_ctx *ctx);
wh_status wh_net_load_cfg(const char *path, const wh_net_opts *opts, wh_net **out, wh_ctx *ctx);
void wh_net_destroy(wh_net *net);
/* Bytes of all its arenas (as planned, under opts.dry_run). */
size_t wh_net_arena_total(const wh_net *net);

/* Darknet-style random initialisation, reproducible from seed. */
void wh_net_init_weights(wh_net *net, uint64_t seed);

/* A non-finite value found at step position at (see numeric_at):
 * WH_ERR_NUMERIC with the message, or, while net->defer_numeric, WH_OK after
 * recording the first such message in net->numeric_msg (numeric_pending set). */
wh_status wh_net_numeric(wh_net *net, int at, wh_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Runs every layer in order on net->input. */
wh_status wh_net_forward(wh_net *net, int train, wh_ctx *ctx);
/* Sets every layer's dout that lives from the loss on to zero (every dout,
 * unless opts.share_douts): call before seeding the loss gradients. */
void wh_net_zero_douts(wh_net *net);
/* Keeps layer i's output alive after the forward and its dout alive (and
 * zeroed by wh_net_zero_douts) from the loss on, for a loss term that reads
 * the one and seeds the other; lays the memory out again (contents are
 * lost: call before a step). */
wh_status wh_net_pin_dout(wh_net *net, int i, wh_ctx *ctx);
/* Sets parameter gradients to zero. */
void wh_net_zero_grads(wh_net *net);
/* Back-propagates the douts the caller seeded, last layer first; parameter
 * gradients accumulate. din_input (may be NULL) receives d loss / d input. */
wh_status wh_net_backward(wh_net *net, float *din_input, wh_ctx *ctx);

/* One layer alone (tests, per-layer timing): its inputs are whatever the
 * producing layers' outputs hold now. */
wh_status wh_net_forward_layer(wh_net *net, int i, int train, wh_ctx *ctx);
wh_status wh_net_backward_layer(wh_net *net, int i, float *din_input, wh_ctx *ctx);

/* Sizes as darknet counts them (batch 1). */
typedef struct wh_net_cost {
    double conv_flops;     /* convolutions only, 2 per multiply-add */
    double darknet_flops;  /* + maxpool size*size*C per output pixel + shortcut adds */
    size_t params;         /* conv weights + BN scales and shifts (or conv biases) */
} wh_net_cost;
void wh_layer_cost(const wh_layer *l, wh_net_cost *c);
void wh_net_cost_total(const wh_net *net, wh_net_cost *c);

/* What a training step must hold in memory, in theory, against what the net
 * allocated (bytes). needed_acts: the activations some backward reads (a
 * convolution's input and pre-BN output, BN statistics, pool argmax, ...),
 * not the outputs only the forward needed; douts_live: the most activation
 * gradients alive at any one backward step. */
typedef struct wh_net_memory {
    size_t params, grads;       /* the parameter and gradient arenas */
    size_t needed_acts;
    size_t douts_live;
    size_t arena_total;         /* every arena the net allocated */
} wh_net_memory;
void wh_net_memory_get(const wh_net *net, wh_net_memory *m);

/* Helpers for oneDNN calls: translate a failed status into a wh_status. */
wh_status wh_dnnl_check(dnnl_status_t s, const char *what, wh_ctx *ctx);
#define WH_DNNL(call, what, ctx) WH_TRY(wh_dnnl_check((call), (what), (ctx)))

#ifdef __cplusplus
}
#endif
#endif
