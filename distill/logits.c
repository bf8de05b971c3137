/* The logit distillation term (distill/distill.h). */
#include "distill.h"

#include <math.h>

/* log(1 + e^x) without overflow */
static double wh__softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

double wh_kd_logits(const float *zs, const float *zt, int n, int n_mask, int classes, int hw, float temperature,
                    double weight, float *dzs)
{
    const int per = 5 + classes;
    const double T = temperature, scale = weight * T * T;
    double loss = 0;
#pragma omp parallel for collapse(2) reduction(+ : loss) schedule(static)
    for (int b = 0; b < n; b++)
        for (int a = 0; a < n_mask; a++)
            for (int k = 4; k < per; k++) {
                const size_t off = (((size_t)b * n_mask + (size_t)a) * (size_t)per + (size_t)k) * (size_t)hw;
                for (int i = 0; i < hw; i++) {
                    const double s = zs[off + i] / T, t = zt[off + i] / T;
                    /* log p = -softplus(-z), log (1 - p) = -softplus(z) */
                    const double pt = 1.0 / (1.0 + exp(-t)), ps = 1.0 / (1.0 + exp(-s));
                    const double kl = pt * (wh__softplus(-s) - wh__softplus(-t)) +
                                      (1.0 - pt) * (wh__softplus(s) - wh__softplus(t));
                    loss += scale * kl;
                    if (dzs) dzs[off + i] += (float)(weight * T * (ps - pt));
                }
            }
    return loss;
}
