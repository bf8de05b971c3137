/* Spatial attention maps and their distillation loss (distill/distill.h). */
#include "distill.h"

#include <math.h>
#include <string.h>

/* F.normalize's floor on the norm: an all-zero map stays zero */
#define WH__AT_EPS 1e-12

void wh_at_opts_default(wh_at_opts *o)
{
    o->p = 2;
    o->sum = 0;
    o->norm = WH_AT_L2;
    o->temperature = 1.f;
}

/* raw (un-normalised) map of sample n into q (H*W) */
static void wh__raw(const float *a, wh_shape s, wh_layout layout, const wh_at_opts *o, int n, float *q)
{
    const size_t hw = (size_t)s.h * s.w;
    const int B = wh_layout_block(layout);
    for (size_t i = 0; i < hw; i++) q[i] = 0.f;
    if (B == 1) {
        for (int c = 0; c < s.c; c++) {
            const float *p = a + ((size_t)n * s.c + (size_t)c) * hw;
            if (o->p == 1)
#pragma omp simd
                for (size_t i = 0; i < hw; i++) q[i] += fabsf(p[i]);
            else
#pragma omp simd
                for (size_t i = 0; i < hw; i++) q[i] += p[i] * p[i];
        }
    } else {
        const int cb = (s.c + B - 1) / B;
        for (int k = 0; k < cb; k++) {
            const float *p = a + ((size_t)n * cb + (size_t)k) * hw * B;
            const int lanes = s.c - k * B < B ? s.c - k * B : B; /* padding lanes are not channels */
            for (size_t i = 0; i < hw; i++)
                for (int t = 0; t < lanes; t++) {
                    const float v = p[i * B + t];
                    q[i] += o->p == 1 ? fabsf(v) : v * v;
                }
        }
    }
    if (!o->sum)
        for (size_t i = 0; i < hw; i++) q[i] /= (float)s.c;
}

static void wh__normalise(float *q, size_t hw, const wh_at_opts *o)
{
    if (o->norm == WH_AT_SOFTMAX) {
        double mx = -INFINITY, z = 0;
        for (size_t i = 0; i < hw; i++) mx = q[i] / o->temperature > mx ? q[i] / o->temperature : mx;
        for (size_t i = 0; i < hw; i++) z += exp(q[i] / o->temperature - mx);
        for (size_t i = 0; i < hw; i++) q[i] = (float)(exp(q[i] / o->temperature - mx) / z);
        return;
    }
    double ss = 0;
    for (size_t i = 0; i < hw; i++) ss += (double)q[i] * q[i];
    const double nrm = fmax(sqrt(ss), WH__AT_EPS);
    for (size_t i = 0; i < hw; i++) q[i] = (float)(q[i] / nrm);
}

void wh_at_map(const float *a, wh_shape s, wh_layout layout, const wh_at_opts *o, float *q)
{
    const size_t hw = (size_t)s.h * s.w;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s.n; n++) {
        wh__raw(a, s, layout, o, n, q + (size_t)n * hw);
        wh__normalise(q + (size_t)n * hw, hw, o);
    }
}

double wh_at_loss(const float *a, wh_shape s, wh_layout layout, const float *qs, const float *qt, const wh_at_opts *o,
                  double beta, float *da, float *scratch)
{
    const size_t hw = (size_t)s.h * s.w;
    double loss = 0;
#pragma omp parallel for reduction(+ : loss) schedule(static)
    for (int n = 0; n < s.n; n++) {
        const float *ps = qs + (size_t)n * hw, *pt = qt + (size_t)n * hw;
        double l = 0;
        for (size_t i = 0; i < hw; i++) l += ((double)ps[i] - pt[i]) * ((double)ps[i] - pt[i]);
        loss += beta * l / (double)hw;
        if (!da) continue;
        /* g = dL/dqs = 2 beta / HW (qs - qt); then back through the normaliser */
        float *g = scratch + (size_t)n * hw;
        double dot = 0;
        for (size_t i = 0; i < hw; i++) {
            g[i] = (float)(2.0 * beta / (double)hw * ((double)ps[i] - pt[i]));
            dot += (double)g[i] * ps[i];
        }
        if (o->norm == WH_AT_SOFTMAX) {
            /* d softmax(Q/T): qs (g - <qs, g>) / T */
            for (size_t i = 0; i < hw; i++) g[i] = (float)(ps[i] * (g[i] - dot) / o->temperature);
        } else {
            /* d (Q / |Q|): (g - qs <qs, g>) / |Q|, |Q| from the raw map again */
            float *raw = scratch + (size_t)s.n * hw + (size_t)n * hw;
            wh__raw(a, s, layout, o, n, raw);
            double ss = 0;
            for (size_t i = 0; i < hw; i++) ss += (double)raw[i] * raw[i];
            const double nrm = sqrt(ss);
            if (nrm > WH__AT_EPS)
                for (size_t i = 0; i < hw; i++) g[i] = (float)((g[i] - ps[i] * dot) / nrm);
            else
                for (size_t i = 0; i < hw; i++) g[i] = (float)(g[i] / WH__AT_EPS);
        }
        /* through Q = (1/C) sum_c f(A): dA = dQ f'(A) / C */
        const float inv_c = o->sum ? 1.f : 1.f / (float)s.c;
        const int B = wh_layout_block(layout);
        if (B > 1) {
            const int cb = (s.c + B - 1) / B;
            for (int k = 0; k < cb; k++) {
                const float *pa = a + ((size_t)n * cb + (size_t)k) * hw * B;
                float *pd = da + ((size_t)n * cb + (size_t)k) * hw * B;
                const int lanes = s.c - k * B < B ? s.c - k * B : B;
                for (size_t i = 0; i < hw; i++) {
                    const float gi = g[i] * inv_c;
                    for (int t = 0; t < lanes; t++) {
                        const float v = pa[i * B + t];
                        pd[i * B + t] += o->p == 1 ? gi * (float)((v > 0.f) - (v < 0.f)) : gi * 2.f * v;
                    }
                }
            }
            continue;
        }
        for (int c = 0; c < s.c; c++) {
            const float *pa = a + ((size_t)n * s.c + (size_t)c) * hw;
            float *pd = da + ((size_t)n * s.c + (size_t)c) * hw;
            if (o->p == 1)
#pragma omp simd
                for (size_t i = 0; i < hw; i++) pd[i] += g[i] * inv_c * (float)((pa[i] > 0.f) - (pa[i] < 0.f));
            else
#pragma omp simd
                for (size_t i = 0; i < hw; i++) pd[i] += g[i] * inv_c * 2.f * pa[i];
        }
    }
    return loss;
}
