/* whittle: the learning-rate schedule and the SGD optimizer, darknet's way.
 *
 * Gradients in the net are sums over the images of a batch (all
 * subdivisions accumulated). One step with batch B, rate lr:
 *   g = grad / B + decay * w          (decay only on WH_PARAM_DECAY: conv weights)
 *   v = momentum * v + g
 *   w -= lr * v                       (plain)
 *   w -= lr * (g + momentum * v)      (Nesterov)
 * which is darknet's update_convolutional_layer with its velocity divided by
 * B. BN scales and biases get no decay.
 */
#ifndef WH_OPTIMIZER_H
#define WH_OPTIMIZER_H

#include <stdint.h>

#include "framework/core/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Darknet's get_current_rate: burn-in lr * (it / burn_in)^power, then the
 * policy. iteration = batches done so far. */
double wh_lr_at(const wh_hparams *hp, long iteration);

typedef struct wh_sgd {
    float momentum, decay;
    int nesterov;
    size_t n;          /* floats of velocity: all trainable parameters */
    float *velocity;   /* in the order of layers and their params */
} wh_sgd;

wh_status wh_sgd_create(const wh_net *net, float momentum, float decay, int nesterov, wh_sgd **out,
                        wh_ctx *ctx);
void wh_sgd_destroy(wh_sgd *o);

/* Checks every trainable gradient for NaN/Inf first; on one, returns
 * WH_ERR_STATE naming the first layer and parameter, and changes nothing. */
wh_status wh_sgd_step(wh_sgd *o, wh_net *net, float lr, int batch, wh_ctx *ctx);

/* --- optimizers as plug-ins ---------------------------------------------------
 *
 * The trainer steps through wh_optim, whose kind is chosen by name
 * (wh_train_opts.optimizer, `--optimizer`):
 *   sgd    darknet's SGD above ([net] momentum, decay; nesterov optional);
 *          state: velocity (checkpoint optimizer/velocity)
 *   adamw  Adam with decoupled weight decay (Loshchilov & Hutter; PyTorch's
 *          AdamW): with g = grad / B and t the steps taken, 1-based,
 *            w -= lr * decay * w                (WH_PARAM_DECAY only)
 *            m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
 *            w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *          b1 = [net] momentum, b2 = .999, eps = 1e-8 (YOLOv5's Adam takes
 *          its momentum as b1 too); the learning rate wants to be about
 *          1e-3. State: m, v (optimizer/adam_m, optimizer/adam_v), t
 *          (optimizer/step).
 * Each state array holds all trainable parameters in the order of layers
 * and their params. */
typedef struct wh_optim wh_optim;

typedef struct wh_optim_ops {
    const char *name;
    int n_state;                     /* float arrays of n each */
    const char *state_names[2];      /* checkpoint names under optimizer/ */
    wh_status (*step)(wh_optim *o, wh_net *net, float lr, int batch, wh_ctx *ctx);
} wh_optim_ops;

struct wh_optim {
    const wh_optim_ops *ops;
    float momentum, decay, beta2, eps;
    int nesterov;
    size_t n;
    float *state[2];
    int64_t t;   /* steps taken */
};

/* The optimizer called name ("sgd", "adamw"), or NULL. */
const wh_optim_ops *wh_optim_find(const char *name);
/* "sgd, adamw": for messages. */
const char *wh_optim_names(void);
wh_status wh_optim_create(const char *name, const wh_net *net, float momentum, float decay, int nesterov,
                          wh_optim **out, wh_ctx *ctx);
void wh_optim_destroy(wh_optim *o);
/* As wh_sgd_step: non-finite gradients fail first, changing nothing. */
wh_status wh_optim_step(wh_optim *o, wh_net *net, float lr, int batch, wh_ctx *ctx);

/* --- weight averaging (EMA) -----------------------------------------------------
 *
 * An exponential moving average of every parameter, trainable or not (batch
 * norm's running statistics too, as YOLOv5's ModelEMA), updated after each
 * step: avg = d * avg + (1 - d) * w, with a decay that ramps up
 *   d(u) = d_max * (1 - exp(-u / tau)),  u = updates so far (1-based),
 * so that the first weights, which are random, are forgotten quickly.
 * YOLOv5 takes d_max = .9999 and tau = 2000 for runs of 10^5 steps and
 * more; for the short runs of a CPU that would average over far more steps
 * than the run has (or, early in the ramp, hardly at all), so both follow
 * the run's length M (max_batches): the averaging window 1 / (1 - d_max) is
 * M / 20 (at least 10, at most 10^4 steps: d_max = .9999 for M >= 2 x 10^5)
 * and tau = min(2000, M / 15). */
typedef struct wh_ema {
    size_t n;       /* floats: the net's parameter arena */
    float *avg;
    int64_t updates;
    double d_max, tau;
} wh_ema;

wh_status wh_ema_create(const wh_net *net, long max_batches, wh_ema **out, wh_ctx *ctx);
void wh_ema_destroy(wh_ema *e);
/* d_max and tau for a run of max_batches steps (as above). */
void wh_ema_fit(wh_ema *e, long max_batches);
/* The decay of update u (1-based). */
double wh_ema_decay(const wh_ema *e, int64_t u);
/* One update from the net's current parameters. */
void wh_ema_update(wh_ema *e, const wh_net *net);
/* Exchanges the net's parameters with the average (twice: back again). */
void wh_ema_swap(wh_ema *e, wh_net *net);

/* Finds the first non-finite value among the layers' outputs (forward) or
 * the parameter gradients; -1 when all are finite. */
int wh_net_first_nonfinite_output(const wh_net *net);
int wh_net_first_nonfinite_grad(const wh_net *net, int *param);

#ifdef __cplusplus
}
#endif
#endif
