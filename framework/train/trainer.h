/* whittle: the detection trainer.
 *
 * One iteration = one batch of [net] batch images, fed as subdivisions
 * mini-batches of batch/subdivisions (gradients accumulate), then hooks
 * (e.g. the sparsity regulariser), then one SGD step at the scheduled rate.
 * Every [yolo] layer's loss is summed; the loss reported is per image.
 *
 * Files in out_dir:
 *   last.h5            the latest checkpoint (every ckpt_every iterations and at the end)
 *   best.h5            the checkpoint with the best mAP so far
 *   iter_NNNNNNN.h5    the last keep_last periodic checkpoints
 *   train.jsonl        one JSON object per iteration and per evaluation
 *   chart.png          loss per iteration and mAP points, redrawn as training goes
 * All checkpoints are written to a temporary name and renamed.
 *
 * Checkpoint contents beyond the network (framework/io/checkpoint.h layout):
 *   train/iteration (i64), train/seed (u64), train/loader_position (i64),
 *   train/best_map (f32), train/history_iter, train/history_loss (f32 arrays),
 *   train/map_iter, train/map (f32), optimizer/name (string), its state
 *   (optimizer/velocity for sgd; optimizer/adam_m, adam_v for adamw; f32),
 *   optimizer/step, optimizer/nesterov (i64), with weight averaging
 *   ema/trained_weights (f32: the parameter arena), ema/updates (i64),
 *   dist/ranks (i64: the ranks that trained it),
 *   plus whatever the hooks store under their own groups.
 * Resuming restores all of it, so with one thread the losses after a resume
 * equal those of the uninterrupted run bit for bit.
 */
#ifndef WH_TRAINER_H
#define WH_TRAINER_H

#include <stdint.h>

#include "framework/io/checkpoint.h"
#include "framework/eval/metrics.h"
#include "framework/data/dataset.h"
#include "framework/core/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wh_train_event_kind {
    WH_EV_START,  /* text: a summary of the run */
    WH_EV_ITER,   /* one iteration done */
    WH_EV_EVAL,   /* an evaluation done: map, text = the per-class table */
    WH_EV_CKPT,   /* a checkpoint written: text = its path */
    WH_EV_INFO    /* text */
} wh_train_event_kind;

typedef struct wh_train_event {
    wh_train_event_kind kind;
    long iteration, max_batches;
    int epoch;              /* 1-based */
    double epoch_progress;  /* 0..1 within the epoch */
    double loss, box, obj, cls; /* per image */
    double avg_iou, recall50;
    double lr, img_per_s, eta_s;
    double load_wait_s;     /* of this iteration's seconds, those spent waiting for the loader */
    double comm_s;          /* of them, those this rank spent in collectives (data-parallel) */
    int ranks;
    double map;
    const char *text;
} wh_train_event;

/* Hooks let later stages join the loop without the trainer knowing them. */
typedef struct wh_train_hooks {
    void *user;
    /* Once, after the net and the data exist, before the first iteration:
     * train_images = images in one epoch of the training split. */
    wh_status (*begin)(void *user, wh_net *net, long train_images, wh_ctx *ctx);
    /* After all subdivisions' backward, before the optimizer step. */
    wh_status (*after_backward)(void *user, wh_net *net, long iteration, wh_ctx *ctx);
    /* Extra loss terms per mini-batch, after the forward, before backward:
     * may write douts and returns its loss in *loss (per mini-batch sum). */
    wh_status (*extra_loss)(void *user, wh_net *net, double *loss, wh_ctx *ctx);
    wh_status (*save)(void *user, wh_ckpt_writer *w, wh_ctx *ctx);
    wh_status (*load)(void *user, wh_ckpt_reader *r, wh_ctx *ctx);
    /* For the memory planner, before anything is allocated: the bytes the
     * hook will add to a run of cfg built with opts (a teacher network, its
     * buffers, the student's layers it pins), and what they are, for the
     * plan's line ("distillation"). */
    wh_status (*plan)(void *user, wh_cfg *cfg, const wh_net_opts *opts, size_t *bytes, const char **what,
                      wh_ctx *ctx);
} wh_train_hooks;

typedef struct wh_train_opts {
    const char *cfg_path;      /* a darknet cfg, or NULL with resume / cfg_text */
    const char *cfg_text;      /* the cfg as text (e.g. a checkpoint's), instead of cfg_path */
    const char *init_ckpt;     /* start from these weights (fine-tuning), optional */
    const char *data;          /* VOC root, VOCdevkit or .data */
    const char *train_split;   /* default "train" */
    const char *test_split;    /* default "test"; NULL or "" = no evaluation */
    const char *out_dir;
    int resume;                /* continue from out_dir/last.h5 */
    long max_batches;          /* 0: the cfg's */
    int batch, subdivisions;   /* 0: the cfg's */
    float learning_rate;       /* 0: the cfg's */
    int width, height;         /* 0: the cfg's */
    int burn_in;               /* -1: the cfg's */
    const char *policy;        /* NULL: the cfg's; e.g. "cosine" */
    int nesterov;
    /* framework/train/optimizer.h: "sgd" or "adamw"; NULL: the checkpoint's when
     * resuming, else sgd */
    const char *optimizer;
    /* Weight averaging (optimizer.h, wh_ema), on by default: evaluation
     * scores the average, and every checkpoint's network is the average
     * with the trained weights beside it (ema/trained_weights, ema/updates)
     * for resuming, so export, pruning and fine-tuning read the average. */
    int ema;
    /* A wall-clock budget for the training iterations (evaluations not
     * counted), in minutes; 0: none. After the first 10 iterations of the
     * run their pace sizes the run: max_batches becomes the iterations that
     * fit, the schedule is rescaled as for --max-batches (and written into
     * the cfg the checkpoints hold, so a resume continues it); the pace of
     * the whole run so far fits it again at 25 % and at 60 % of the budget;
     * and the run also stops, with an evaluation and a checkpoint, when the
     * time is up. */
    double minutes;
    /* Mosaic augmentation (framework/data/loader.h): the probability that a
     * training image is a mosaic of four; < 0: the cfg's ([net] mosaic=1:
     * .5, as darknet's per-batch coin; else 0). */
    float mosaic;
    uint64_t seed;
    int eval_every;            /* iterations; 0: at the end only */
    int ckpt_every;            /* iterations; 0: at the end only */
    int keep_last;             /* periodic checkpoints kept */
    int chart_every;           /* iterations between chart redraws */
    wh_metric metric;
    int letterbox;             /* training placement keeps the aspect */
    int prefetch;
    long stop_after;           /* stop (with a checkpoint) after this many iterations of this run; 0: never */
    /* Numerical guards: every output and gradient is checked as it is made
     * (check_finite, on by default); the first NaN or infinity fails the
     * iteration with WH_ERR_NUMERIC naming the layer and the iteration, the
     * weights untouched. max_skips > 0 lets up to that many such iterations
     * in a row be skipped instead (no step; batch-norm running statistics
     * restored; logged as "skipped" in train.jsonl). Over MPI the ranks
     * decide together after the loss allreduce (net.h: defer_numeric). */
    int check_finite;
    int max_skips;
    /* The memory planner (framework/core/memplan.h): before anything is
     * allocated the run is sized and, when it would not fit in the memory
     * available, refused with a message saying what to lower; ignore_memory
     * runs it anyway. */
    int ignore_memory;
    /* Data-parallel training (framework/train/dist.h); NULL or one rank: the plain
     * path. [net] batch stays the images of one iteration over all ranks;
     * rank 0 writes the checkpoints, train.jsonl and the chart and is the
     * only one to emit events; evaluation is split over the ranks. */
    struct wh_dist *dist;
    int sync_bn;               /* -1: when a rank's mini-batch is under 16 images; 0 off; 1 on */
    int allow_rank_change;     /* resume a run saved with another number of ranks */
    int auto_resume;           /* continue from out_dir/last.h5 when it exists, else start */
    double dist_timeout_s;     /* the collectives' watchdog (0: framework/train/dist.h's default) */
    void (*on_event)(void *user, const wh_train_event *ev);
    void *event_user;
    wh_train_hooks hooks;
} wh_train_opts;

void wh_train_opts_default(wh_train_opts *o);

typedef struct wh_train_result {
    long iterations;     /* iteration reached */
    double last_loss;    /* per image, of the last iteration */
    double best_map;     /* NaN when never evaluated */
    double final_map;
    double seconds;
    size_t planned_bytes;   /* the memory planner's total */
    size_t peak_bytes;      /* VmHWM at the end of the run */
} wh_train_result;

wh_status wh_train(const wh_train_opts *o, wh_train_result *res, wh_ctx *ctx);

/* --- batch-norm recalibration ------------------------------------------------
 * Replaces every batch-norm layer's running statistics with the mean of the
 * statistics of `batches` batches of shuffled, unaugmented training images
 * (EagleEye's "adaptive batch norm", Li et al. 2020). After pruning, the
 * layers behind a removed channel see inputs other than those their
 * statistics were kept for; re-estimating them is what recovers most of the
 * pruned network's accuracy before any fine-tuning. The weights are not
 * touched. net may be an inference or a training net of cfg_text. */
typedef struct wh_bn_recal_opts {
    int batches; /* how many batches (the mean is over their statistics) */
    int batch;   /* images per batch */
    uint64_t seed;
} wh_bn_recal_opts;

wh_status wh_bn_recalibrate(wh_net *net, const char *cfg_text, const wh_dataset *d, const wh_bn_recal_opts *o,
                            wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
