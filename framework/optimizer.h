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

#include "net.h"

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

/* Finds the first non-finite value among the layers' outputs (forward) or
 * the parameter gradients; -1 when all are finite. */
int wh_net_first_nonfinite_output(const wh_net *net);
int wh_net_first_nonfinite_grad(const wh_net *net, int *param);

#ifdef __cplusplus
}
#endif
#endif
