/* whittle: stage 3, spatial attention distilling from the unpruned teacher
 * into the pruned student.
 *
 * The attention map of a feature map A (N, C, H, W) is, per sample,
 *   Q[hw] = (1/C) sum_c f(A[c, hw])     f = |A| (p = 1) or A^2 (p = 2)
 * (the sum instead of the mean with WH_AT_SUM), flattened over H*W and then
 * normalised: Q / ||Q||_2 (the paper's) or softmax(Q / T). The loss of one
 * paired layer for a mini-batch is
 *   L = beta * sum_n mean_hw (Qs[n, hw] - Qt[n, hw])^2,
 * a sum over samples like the detection loss, so gradients scale with the
 * batch as darknet's do. Its gradient with respect to the student's A is
 * exact (tests: finite differences).
 */
#ifndef WH_DISTILL_H
#define WH_DISTILL_H

#include "../framework/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wh_at_norm { WH_AT_L2, WH_AT_SOFTMAX } wh_at_norm;

typedef struct wh_at_opts {
    int p;             /* 1 or 2 */
    int sum;           /* 1: sum over channels instead of the mean */
    wh_at_norm norm;
    float temperature; /* softmax only, > 0 */
} wh_at_opts;

void wh_at_opts_default(wh_at_opts *o); /* p 2, mean, L2 */

/* q (N, H*W): the normalised attention map of a (shape, layout). */
void wh_at_map(const float *a, wh_shape s, wh_layout layout, const wh_at_opts *o, float *q);

/* The loss of the student's map against the teacher's (both (N, H*W),
 * normalised) times beta, and, when da is not NULL, += its gradient with
 * respect to the student's feature map a (shape s, NCHW). qs must be the map
 * of a (wh_at_map). scratch: 2*N*H*W floats. */
double wh_at_loss(const float *a, wh_shape s, const float *qs, const float *qt, const wh_at_opts *o, double beta,
                  float *da, float *scratch);

#ifdef __cplusplus
}
#endif
#endif
