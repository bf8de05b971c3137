/* whittle bench: what this machine can do, and how much of it whittle uses.
 *
 * The library side of `whittle bench` (apps/cmd_bench.c prints): the
 * machine's own peak (an FMA loop) and memory bandwidth (a stream triad),
 * and whole networks timed for inference or training steps, with the
 * resident-memory high-water mark. Every figure is a median of timed runs
 * after warm-up runs.
 */
#ifndef WH_BENCH_H
#define WH_BENCH_H

#include "framework/core/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wh_bench_peak {
    int threads;
    double fma_gflops;     /* all threads together, single precision */
    double fma_gflops_one; /* one thread */
    double triad_gbs;      /* a[i] = b[i] + s c[i] over 3 x 64 MiB, bytes read + written per second */
} wh_bench_peak;

/* Measures with threads (0: OpenMP's default); each figure is the median of
 * runs timed passes of about seconds / runs each. */
wh_status wh_bench_peak_measure(int threads, int runs, wh_bench_peak *out, wh_ctx *ctx);
/* The same with the work per pass given: fma_iters iterations of the FMA
 * loop (192 FLOPs each; the default is 25 M) and a triad over 3 arrays of
 * triad_floats (default 16 Mi). Tests use small sizes. */
wh_status wh_bench_peak_measure_sized(int threads, int runs, long fma_iters, size_t triad_floats, wh_bench_peak *out,
                                      wh_ctx *ctx);

typedef enum wh_bench_mode { WH_BENCH_INFER, WH_BENCH_TRAIN } wh_bench_mode;

typedef struct wh_bench_net_opts {
    wh_bench_mode mode;
    int batch;
    int width, height; /* 0: the cfg's */
    int runs;          /* timed (after 2 warm-up) */
    int threads;       /* 0: OpenMP's default */
    int plain;         /* 1: activations in plain NCHW instead of oneDNN's blocked layout */
    int no_check;      /* train: skip the trainer's per-layer NaN/infinity checks */
    int profile;       /* 1: time every layer's forward (and backward) on its own */
} wh_bench_net_opts;

/* One layer's share of a step (profile): medians over the runs. */
typedef struct wh_bench_layer_time {
    int index;
    const char *type;
    char what[48];      /* the layer's describe() text */
    wh_shape out;
    wh_layout layout;
    double fwd_s, bwd_s; /* bwd_s: 0 for inference */
    double gflop;        /* forward convolution GFLOP for the whole batch (0: not a convolution) */
} wh_bench_layer_time;

typedef struct wh_bench_net_result {
    int width, height, batch, threads;
    double median_s, min_s; /* per forward (infer) or per training step */
    double img_per_s;
    double conv_gflop_per_img; /* forward convolutions, 2 per multiply-add */
    double gflop_per_s;        /* convolution FLOPs done per second: a step counts 3x the forward */
    double phase_s[4];         /* train: forward, loss, backward, optimizer step (medians) */
    double peak_rss_mb;        /* VmHWM after the runs */
    size_t params;
    size_t arena_mb[6];        /* the net's arenas: parameters, gradients, activations, scratch, activation
                                  gradients (MB) */
    double theory_mb;          /* train: parameters + gradients + momentum + the activations the backward
                                  reads + the most activation gradients alive at once (wh_net_memory) */
    int n_layers;
    wh_bench_layer_time *layers; /* profile only: n_layers entries (wh_bench_net_result_free) */
} wh_bench_net_result;

void wh_bench_net_result_free(wh_bench_net_result *r);

/* Times the network of cfg_text (random weights, random input; training
 * steps with random boxes, as the trainer runs them with subdivisions 1). */
wh_status wh_bench_net(const char *cfg_text, const char *name, const wh_bench_net_opts *o, wh_bench_net_result *r,
                       wh_ctx *ctx);

/* One operation's median time and its rate: GFLOP/s for convolutions (a
 * backward counts 2 forwards), GB/s (bytes read + written, as counted in
 * ops.c) for the memory-bound ones; NaN where it does not apply. */
typedef struct wh_bench_op {
    const char *name, *shape;
    double seconds, gflop_per_s, gb_per_s;
} wh_bench_op;
typedef void (*wh_bench_op_cb)(void *user, const wh_bench_op *op);

/* Every operation whittle runs in a training step, at YOLOv4 shapes (416,
 * batch 1): convolutions with BN and mish (inference fused, training
 * forward, backward), each activation forward and backward, maxpool,
 * upsample, route, shortcut, the yolo loss, the attention loss, the
 * sparsity update and the SGD step over YOLOv4's parameters. cb receives
 * each result as it is measured. */
wh_status wh_bench_ops(int runs, wh_bench_op_cb cb, void *user, wh_ctx *ctx);

/* This process's peak resident memory in MB (/proc/self/status VmHWM); NaN
 * when unknown. */
double wh_bench_peak_rss_mb(void);

#ifdef __cplusplus
}
#endif
#endif
