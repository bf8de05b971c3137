/* whittle: stage 1 inside the trainer (a wh_train_hooks implementation).
 *
 * After every iteration's backward: |gamma| of the prunable channels -> the
 * scheduler's rate per channel -> grad(gamma) += batch * s * sign(gamma).
 * The scheduler's state is saved in (and restored from) the checkpoint under
 * "sparsity/", so a resumed sparse run is the run that was interrupted.
 */
#ifndef WH_SPARSE_TRAIN_H
#define WH_SPARSE_TRAIN_H

#include "framework/train/trainer.h"
#include "prune.h"
#include "sparsity.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wh_sparse_hook {
    wh_sched *sched;
    int *exclude;
    int n_exclude;
    wh_prunable set;  /* found at the first iteration (the net exists then) */
    int have_set;
    float *absgamma, *rate;
    double last_below_1e2; /* share of prunable |gamma| < 1e-2 after the last step */
    /* statistics every stats_every iterations (0: at every epoch start and
     * at the last iteration): gamma.jsonl, gamma_hist.png in out_dir, and the
     * history in the checkpoint (sparsity/gamma_*) */
    int stats_every;
    long epoch_images; /* training images per epoch (from the trainer) */
    const char *out_dir;
    int n_rows, cap_rows;
    float *hist;       /* n_rows x WH_GAMMA_BINS */
    float *hist_iter;  /* n_rows */
    /* The scale-module groups of stage 2 (none if the graph gives none):
     * layer_group[k] for the k-th prunable layer, -1 outside every group. */
    wh_grouping groups;
    int *layer_group;
    /* the latest statistics per layer and per group: below 1e-3, below 1e-2, max */
    float *layer_stats, *group_stats;
} wh_sparse_hook;

wh_status wh_sparse_hook_init(wh_sparse_hook *h, const char *spec, const int *exclude, int n_exclude,
                              wh_ctx *ctx);
/* Statistics every n iterations into out_dir (0: every epoch; -1: none). */
void wh_sparse_hook_stats(wh_sparse_hook *h, int every, const char *out_dir);
void wh_sparse_hook_free(wh_sparse_hook *h);
/* Fills the trainer's hooks with this one's. */
void wh_sparse_hook_attach(wh_sparse_hook *h, wh_train_hooks *hooks);

#ifdef __cplusplus
}
#endif
#endif
