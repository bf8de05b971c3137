/* whittle command line: the stages of the method as resumable steps, shared
 * by `whittle pipeline` (one run of the whole method) and `whittle ablate`
 * (a grid of strategies sharing the stages they have in common).
 *
 * A stage works in its own folder. It is finished when stage.json sits
 * there: the measured row (below), written atomically after the stage's
 * training ended at its last iteration and its checkpoint was measured. A
 * folder with last.h5 but no stage.json is an interrupted run: the trainer
 * resumes it (the same flags, the hooks' state from the checkpoint). So
 * rerunning the command after any interruption continues where it stopped,
 * and finished stages are neither rerun nor remeasured.
 */
#ifndef WH_APP_PIPELINE_H
#define WH_APP_PIPELINE_H

#include <stdint.h>
#include <stdio.h>

#include "framework/eval/metrics.h"

/* How much training each stage gets. Iteration counts below 0 are shares
 * of the cfg's [net] max_batches (-1: all of it, -0.25: a quarter). */
typedef struct wh_pl_budget {
    const char *name;
    double base_its, sparse_its, ft_its;
    int batch, subdivisions;         /* 0: the cfg's */
    float base_lr, sparse_lr, ft_lr; /* 0: the cfg's */
    int base_burn_in;                /* -1: the cfg's */
    const char *policy;              /* NULL: the cfg's */
    double s;                        /* the sparsity rate given to the scheduler */
    double target_params;            /* share of parameters pruning removes */
    double at_beta_scale;            /* scales the paper's attention betas */
    int latency_runs;                /* forward passes timed per stage (median) */
    int bn_batches;                  /* pruning re-estimates batch-norm statistics on this many
                                        batches of 16 training images (whittle prune --bn-batches; 0: not) */
} wh_pl_budget;

/* "quick", "full" or "smoke" (a few iterations, for tests); -1 if unknown. */
int wh_pl_budget_get(const char *name, wh_pl_budget *b);

/* One stage's measured results (NaN where a value does not apply). */
typedef struct wh_pl_row {
    char stage[64];
    double map;           /* the metric on the test split */
    double params;        /* darknet's count */
    double conv_flops;    /* per image at the network's input size */
    double weights_bytes; /* the darknet .weights a deployment ships */
    double latency_ms;    /* batch 1, blocked inference net, median */
    double train_img_s;   /* median over the stage's iterations */
    double train_s;       /* wall seconds of the stage's training */
    long iterations;
} wh_pl_row;

typedef struct wh_pl {
    const char *data;
    const char *train_split, *test_split; /* trained on, measured on */
    const char *cfg_text;                 /* the baseline network */
    wh_pl_budget b;
    long cfg_max_batches; /* [net] max_batches of cfg_text */
    wh_metric metric;
    int threads;
    long stop_after; /* stop each training run after this many iterations (0: never) */
    FILE *term;      /* progress lines */
    int tty;
    int darknet_anchors; /* a generated model keeps darknet's anchors (scaled to its size), not the data's */
    int darknet_loss;    /* a generated model keeps darknet's loss keys (whittle model --loss darknet) */
    const char *optimizer; /* the training stages' (trainer.h); NULL: sgd */
    int ema;             /* weight averaging in the training stages */
    float mosaic;        /* < 0: the cfg's */
} wh_pl;

typedef enum wh_pl_kind { WH_PL_BASELINE, WH_PL_SPARSE, WH_PL_FINETUNE, WH_PL_DISTILL } wh_pl_kind;

typedef struct wh_pl_stage {
    wh_pl_kind kind;
    const char *name; /* the row's name */
    const char *dir;
    const char *init;    /* the checkpoint it starts from; BASELINE: the given baseline, measured only */
    const char *teacher; /* DISTILL */
    const char *sched;   /* SPARSE: a scheduler spec */
    const char *distill; /* DISTILL: attention, attention+boxes or attention+logits */
    uint64_t seed;
} wh_pl_stage;

/* Return values of the stage runners. */
enum { WH_PL_DONE = 0, WH_PL_ERROR = 1, WH_PL_STOPPED = 3 };

/* A training stage, then its measurement (row). */
int wh_pl_train(const wh_pl *p, const wh_pl_stage *s, wh_pl_row *row);
/* Pruning src with grouping groups to the budget's parameter target into
 * dir (through dir.tmp, renamed when complete), then its measurement. */
int wh_pl_prune(const wh_pl *p, const char *name, const char *src, const char *groups, const char *dir, wh_pl_row *row);

/* "dir/file" into a static-free buffer of n bytes; 0, or -1 when too long. */
int wh_pl_path(char *buf, size_t n, const char *dir, const char *file);
/* snprintf that reports truncation: 0, or -1 after printing the error. */
int wh_pl_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The number after the first "key": in one line of our own JSON output
 * (stage.json, train.jsonl, gamma.jsonl); NaN when absent or null. */
/* mkdir -p; 0 or -1 after printing the error. */
int wh_pl_mkdirs(const char *dir);

/* The rows as a Markdown table (fp), and as CSV and JSON files. */
void wh_pl_table_md(FILE *fp, const wh_pl_row *rows, int n, wh_metric m);
int wh_pl_write_tables(const char *out, const wh_pl_row *rows, int n, wh_metric m);

/* The baseline network: the cfg stored in the checkpoint init, or
 * cfg_path's text, or model generated for the classes of p->data's train
 * split at size and width; sets p->cfg_text (to *cfg, malloc'd) and
 * p->cfg_max_batches. 0, or 1 after printing the error. */
int wh_pl_network(wh_pl *p, const char *init, const char *cfg_path, const char *model, int size, double width,
                  char **cfg);
/* out/settings.txt: written on the first run, compared on every later one so
 * that a rerun never mixes stages made with other settings. 0, or 1 after
 * printing the error. */
int wh_pl_settings(const char *out, const char *text);

/* The options pipeline and ablate share. */
typedef struct wh_pl_cli {
    const char *data, *model, *cfg_path, *init, *train_split, *test_split, *budget, *out;
    const char *anchors; /* "data" (default) or "darknet": a generated model's anchors */
    const char *loss;    /* "balanced" (default) or "darknet": a generated model's loss keys */
    const char *optimizer; /* "sgd" (default) or "adamw" for every training stage */
    int no_ema;          /* 1: no weight averaging in the training stages */
    double mosaic;       /* < 0: the cfg's; else the share of mosaic images */
    int size, threads, stop_after;
    double width, target, beta, srate; /* <= 0 / < 0: the budget's */
    int its[3];                        /* baseline, sparse, fine-tune iterations; 0: the budget's */
    int bn_batches;                    /* < 0: the budget's; 0: no batch-norm recalibration */
} wh_pl_cli;

/* Defaults: the embedded data, yolov4-tiny, the quick budget, out. */
void wh_pl_cli_init(wh_pl_cli *c, const char *out);
/* argv[*i]: 1 when it was a shared option (its value consumed), 0 when it
 * is not one, -1 after printing what is wrong with its value. */
int wh_pl_cli_option(int argc, char **argv, int *i, wh_pl_cli *c);
/* Fills p from the options (budget with overrides, splits, threads; the
 * network into *cfg, malloc'd, see wh_pl_network), generating the embedded
 * data when it is used and missing, and writes the settings both commands
 * compare (settings.txt lines, extra appended) into buf. 0, or the exit
 * status after printing the error (2: a bad option value). */
int wh_pl_cli_setup(const wh_pl_cli *c, wh_pl *p, char **cfg, const char *extra, char *buf, size_t n);

/* Charts (apps/charts.c); 0 or 1 after printing the error.
 * Loss curves of the training stages in dirs (their train.jsonl), stage i
 * drawn from iteration x0[i] on; at most 8. */
int wh_pl_chart_losses(const char *path, const char *const *dirs, const char *const *names, const float *x0, int n);
/* |gamma| of the prunable channels of two checkpoints, as histograms. */
int wh_pl_chart_gamma(const char *path, const char *before, const char *after, float it_before, float it_after);
/* Output channels of every convolution of two checkpoints of one architecture. */
int wh_pl_chart_channels(const char *path, const char *before, const char *after);

#endif
