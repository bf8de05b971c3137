/* whittle: stage 1, sparse training of the BN scales (gamma).
 *
 * After backward and before the optimizer step, every prunable channel c
 * gets grad(gamma_c) += B * s_c * sign(gamma_c), B the batch (our gradients
 * are sums over the batch; the optimizer divides by B), so s_c is the L1
 * rate of network slimming per step whatever the subdivisions. The rate per
 * channel comes from a scheduler plug-in, chosen by a spec string shared by
 * all plug-ins:  name:key=value,key=value   (e.g. "dynamic:s=1e-4,part=0.4").
 *
 * The prunable set is derived from how channels flow through the graph, not
 * from layer indices: every convolution with batch norm, except those whose
 * output feeds a same-size maxpool (SPP), an upsample, a route that takes
 * only a slice of its inputs (a grouped route: CSP-tiny) or a reorg, directly
 * or through routes, shortcuts and pools, those coupled with such a one by a
 * shortcut, and those the user excludes.
 */
#ifndef WH_SPARSITY_H
#define WH_SPARSITY_H

#include "framework/io/checkpoint.h"
#include "framework/core/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- specs: name:key=value,key=value --------------------------------------- */
#define WH_SPEC_MAX 16

typedef struct wh_spec {
    char name[32];
    int n;
    char key[WH_SPEC_MAX][32];
    char val[WH_SPEC_MAX][64];
} wh_spec;

/* Syntax only; a key given twice, an empty name, key or value is an error. */
wh_status wh_spec_parse(const char *text, wh_spec *out, wh_ctx *ctx);
/* Every key must be one of keys (NULL-terminated): else an error listing them. */
wh_status wh_spec_check_keys(const wh_spec *s, const char *const *keys, wh_ctx *ctx);
/* A number for key (def when absent), in [lo, hi]. */
wh_status wh_spec_double(const wh_spec *s, const char *key, double def, double lo, double hi, double *out,
                         wh_ctx *ctx);

/* ---- schedulers ------------------------------------------------------------ */

typedef struct wh_sched_ops {
    const char *name;
    const char *const *keys; /* NULL-terminated */
    const char *help;
    wh_status (*create)(const wh_spec *spec, void **state, wh_ctx *ctx);
    /* s[c] for every prunable channel at iteration it (0-based) of max_it;
     * absgamma[c] = |gamma_c| now. May update the state (feedback). */
    void (*rates)(void *state, long it, long max_it, const float *absgamma, int n, float *s);
    void (*destroy)(void *state);
    /* The state as numbers (for checkpoints); n_state doubles. */
    int n_state;
    void (*get_state)(const void *state, double *out);
    void (*set_state)(void *state, const double *in);
} wh_sched_ops;

/* Adds a scheduler of the user's to the registry (the built-in ones are
 * constant, step, linear, cosine, dynamic, feedback); specs then name it
 * like any other. ops must outlive every use; a name already known is an
 * error. Not thread-safe: register before parsing specs. */
wh_status wh_sched_register(const wh_sched_ops *ops, wh_ctx *ctx);

typedef struct wh_sched {
    const wh_sched_ops *ops;
    void *state;
    char spec[256];
} wh_sched;

/* Looks the name up in the registry; an unknown name or key is an error that
 * lists the valid ones. */
wh_status wh_sched_create(const char *spec, wh_sched **out, wh_ctx *ctx);
void wh_sched_destroy(wh_sched *s);
/* "constant, step, linear, cosine, dynamic, feedback" */
void wh_sched_names(char *buf, size_t n);
/* Saves/loads the state under "<group>/..." (spec text and numbers); loading
 * a state written by another spec is an error. */
wh_status wh_sched_save(const wh_sched *s, wh_ckpt_writer *w, const char *group, wh_ctx *ctx);
wh_status wh_sched_load(wh_sched *s, wh_ckpt_reader *r, const char *group, wh_ctx *ctx);

/* ---- |gamma| statistics: what users look at to choose thresholds ----------- */

/* Bins of log10|gamma| from WH_GAMMA_LOG_LO to WH_GAMMA_LOG_HI, 0.25 wide;
 * values outside fall in the end bins (0 in the first). */
#define WH_GAMMA_BINS 32
#define WH_GAMMA_LOG_LO (-6.0)
#define WH_GAMMA_LOG_HI 2.0

typedef struct wh_gamma_stats {
    int n;
    double below_1e3, below_1e2; /* shares of channels */
    double max;
    double p10, median;          /* quantiles of |gamma| */
    float hist[WH_GAMMA_BINS];   /* shares of channels per bin (sum 1) */
} wh_gamma_stats;

void wh_gamma_stats_compute(const float *absgamma, int n, wh_gamma_stats *out);
/* The q-quantile (0..1, nearest rank) of n values; 0 when n == 0. */
double wh_quantile(const float *v, int n, double q);

/* ---- the prunable set and the regulariser ----------------------------------- */

typedef struct wh_prunable {
    int n_layers;
    int *layer;    /* layer indices, ascending */
    int *offset;   /* first channel of each layer in the flat channel list */
    int n_channels;
} wh_prunable;

/* exclude: layer indices the user keeps out (may be NULL). */
wh_status wh_prunable_find(const wh_net *net, const int *exclude, int n_exclude, wh_prunable *out,
                           wh_ctx *ctx);
void wh_prunable_free(wh_prunable *p);
/* Whether layer i is kept out by the default rules: its output reaches
 * (through layers that pass channels on) a same-size maxpool (SPP), an
 * upsample, a route taking a slice or a reorg, or it is coupled by a
 * shortcut with a layer whose output does. */
int wh_prunable_blocked(const wh_net *net, int i);
/* The same for every layer at once (blocked[i], i < n_layers), in one pass. */
wh_status wh_prunable_blocked_set(const wh_net *net, unsigned char *blocked, wh_ctx *ctx);

/* absgamma[c] = |gamma| of every prunable channel, in the flat order. */
void wh_prunable_absgamma(const wh_net *net, const wh_prunable *p, float *absgamma);
/* grad(gamma_c) += batch * s[c] * sign(gamma_c) for every prunable channel. */
wh_status wh_sparsity_apply(wh_net *net, const wh_prunable *p, const float *s, int batch, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
