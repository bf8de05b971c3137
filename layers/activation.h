/* whittle: darknet's activation functions, forward and backward.
 *
 * The hot loops are branch-free (fmaxf/fminf blends, one exp per element) and
 * carry #pragma omp simd so the compiler vectorises them.
 */
#ifndef WH_ACTIVATION_H
#define WH_ACTIVATION_H

#include <stddef.h>

#include "framework/core/cfg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wh_act {
    WH_ACT_LINEAR, WH_ACT_LEAKY, WH_ACT_MISH, WH_ACT_LOGISTIC, WH_ACT_RELU, WH_ACT_SWISH,
    WH_ACT_TANH, WH_ACT_COUNT
} wh_act;

const char *wh_act_name(wh_act a);
/* Reads key "activation" (default def), naming file:line on an unknown one. */
wh_status wh_act_parse(wh_cfg_section *s, wh_act def, wh_act *out, wh_ctx *ctx);

/* y = f(x), n elements, in parallel (x == y allowed). */
void wh_act_forward(wh_act a, const float *x, float *y, size_t n);
/* dx (+)= dy * f'(x): x is the activation's input. accumulate=1 adds into dx.
 * x == dx is not allowed; dy == dx is allowed when accumulate is 0. */
void wh_act_backward(wh_act a, const float *x, const float *dy, float *dx, size_t n,
                     int accumulate);
/* The same on the calling thread only (vectorised): for fused passes that
 * already run inside a parallel loop, one cache-sized chunk at a time. */
void wh_act_forward_serial(wh_act a, const float *x, float *y, size_t n);
void wh_act_backward_serial(wh_act a, const float *x, const float *dy, float *dx, size_t n, int accumulate);

#ifdef __cplusplus
}
#endif
#endif
