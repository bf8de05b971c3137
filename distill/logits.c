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

double wh_kd_boxes(const float *zs, const float *zt, int n, const wh_yolo_params *p, int lw, int lh, int netw,
                   int neth, double weight, float *dzs)
{
    const int per = 5 + p->classes;
    const long hw = (long)lw * lh;
    const double sxy = p->scale_x_y;
    double loss = 0;
#pragma omp parallel for collapse(2) reduction(+ : loss) schedule(static)
    for (int b = 0; b < n; b++)
        for (int a = 0; a < p->n_mask; a++) {
            const size_t base = ((size_t)b * p->n_mask + (size_t)a) * (size_t)per * (size_t)hw;
            const double aw = (double)p->anchors[2 * p->mask[a]] / netw;
            const double ah = (double)p->anchors[2 * p->mask[a] + 1] / neth;
            const float *s = zs + base, *t = zt + base;
            for (long i = 0; i < hw; i++) {
                /* the cell offsets cancel in the difference; x = (sxy sig(z) + off + col) / lw */
                const double sx = 1.0 / (1.0 + exp(-(double)s[i])), tx = 1.0 / (1.0 + exp(-(double)t[i]));
                const double sy = 1.0 / (1.0 + exp(-(double)s[hw + i])), ty = 1.0 / (1.0 + exp(-(double)t[hw + i]));
                const double sw = exp((double)s[2 * hw + i]) * aw, tw = exp((double)t[2 * hw + i]) * aw;
                const double sh = exp((double)s[3 * hw + i]) * ah, th = exp((double)t[3 * hw + i]) * ah;
                const double pt = 1.0 / (1.0 + exp(-(double)t[4 * hw + i]));
                const double ex = sxy * (sx - tx) / lw, ey = sxy * (sy - ty) / lh, ew = sw - tw, eh = sh - th;
                loss += weight * pt * (ex * ex + ey * ey + ew * ew + eh * eh) / 2;
                if (!dzs) continue;
                const double g = weight * pt;
                float *d = dzs + base;
                d[i] += (float)(g * ex * sxy * sx * (1 - sx) / lw);
                d[hw + i] += (float)(g * ey * sxy * sy * (1 - sy) / lh);
                d[2 * hw + i] += (float)(g * ew * sw);
                d[3 * hw + i] += (float)(g * eh * sh);
            }
        }
    return loss;
}
