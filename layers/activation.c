#include "activation.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static const char *const wh__act_names[] = {"linear", "leaky", "mish", "logistic",
                                            "relu",   "swish", "tanh", NULL};
_Static_assert(sizeof(wh__act_names) / sizeof(wh__act_names[0]) == WH_ACT_COUNT + 1,
               "activation names must match the enum");

const char *wh_act_name(wh_act a)
{
    return (a >= 0 && a < WH_ACT_COUNT) ? wh__act_names[a] : "?";
}

wh_status wh_act_parse(wh_cfg_section *s, wh_act def, wh_act *out, wh_ctx *ctx)
{
    int idx;
    WH_TRY(wh_cfg_choice(s, "activation", wh__act_names, (int)def, &idx, ctx));
    *out = (wh_act)idx;
    return WH_OK;
}

/* Darknet's leaky slope. */
#define WH_LEAKY 0.1f

/* exp(x) inside the vectorised loops below. libm's expf (and fmaxf, fminf
 * without -ffast-math) are calls, and a call keeps "omp simd" from
 * vectorising: leaky, mish and logistic then ran at about 7 ns per element,
 * 10x slower than memory (bench: 5.5 M elements, 40 ms). This is Cephes'
 * expf: n = round(x / ln 2), r = x - n ln 2 in two parts, a degree-6
 * polynomial for exp(r), 2^n from the exponent bits. Within 2 ulp of expf on
 * [-87, 88], where x is clamped (2^n stays a normal float). */
static inline float wh__exp(float x)
{
    x = x < -87.f ? -87.f : x > 88.f ? 88.f : x;
    const float t = x * 1.44269504088896341f;
    /* round to nearest: t + 128.5 > 0 here, so truncation is floor */
    const float n = (float)((int32_t)(t + 128.5f) - 128);
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return y * scale;
}

static inline float wh__sigm(float x) { return 1.f / (1.f + wh__exp(-x)); }

/* tanh(softplus(x)) with one exp: with e = exp(x) and n = e * (e + 2),
 * tanh(log(1 + e)) = ((1+e)^2 - 1) / ((1+e)^2 + 1) = n / (n + 2).
 * x is clamped at 20, where the ratio is 1 in float (darknet's mish also
 * returns x there), so e never overflows. */
static inline float wh__tanh_softplus(float x, float *e_out)
{
    const float e = wh__exp(x < 20.f ? x : 20.f);
    const float n = e * (e + 2.f);
    *e_out = e;
    return n / (n + 2.f);
}

/* The loops of wh_act_forward; P is the pragma each loop carries (parallel
 * or only vectorised). */
#define WH__ACT_FWD(P)                                                                                                 \
    switch (a) {                                                                                                       \
    case WH_ACT_LINEAR:                                                                                                \
        if (x != y) {                                                                                                  \
            _Pragma(P) for (long i = 0; i < nn; i++) y[i] = x[i];                                                      \
        }                                                                                                              \
        break;                                                                                                         \
    case WH_ACT_LEAKY: _Pragma(P) for (long i = 0; i < nn; i++) y[i] = x[i] > 0.f ? x[i] : WH_LEAKY * x[i]; break;     \
    case WH_ACT_RELU: _Pragma(P) for (long i = 0; i < nn; i++) y[i] = x[i] > 0.f ? x[i] : 0.f; break;                  \
    case WH_ACT_LOGISTIC: _Pragma(P) for (long i = 0; i < nn; i++) y[i] = wh__sigm(x[i]); break;                       \
    case WH_ACT_SWISH: _Pragma(P) for (long i = 0; i < nn; i++) y[i] = x[i] * wh__sigm(x[i]); break;                   \
    case WH_ACT_MISH:                                                                                                  \
        _Pragma(P) for (long i = 0; i < nn; i++)                                                                       \
        {                                                                                                              \
            float e;                                                                                                   \
            y[i] = x[i] * wh__tanh_softplus(x[i], &e);                                                                 \
        }                                                                                                              \
        break;                                                                                                         \
    case WH_ACT_TANH: _Pragma(P) for (long i = 0; i < nn; i++) y[i] = tanhf(x[i]); break;                              \
    default: break;                                                                                                    \
    }

void wh_act_forward(wh_act a, const float *x, float *y, size_t n)
{
    const long nn = (long)n;
    WH__ACT_FWD("omp parallel for simd schedule(static)")
}

void wh_act_forward_serial(wh_act a, const float *x, float *y, size_t n)
{
    const long nn = (long)n;
    WH__ACT_FWD("omp simd")
}

/* f'(x) for each activation, branch-free. */
static inline float wh__dact(wh_act a, float x)
{
    switch (a) {
    case WH_ACT_LEAKY: return x > 0.f ? 1.f : WH_LEAKY;
    case WH_ACT_RELU: return x > 0.f ? 1.f : 0.f;
    case WH_ACT_LOGISTIC: {
        float s = wh__sigm(x);
        return s * (1.f - s);
    }
    case WH_ACT_SWISH: {
        float s = wh__sigm(x);
        return s + x * s * (1.f - s);
    }
    case WH_ACT_MISH: {
        /* d/dx x*t(x) = t + x * (1 - t^2) * sigmoid(x), t = tanh(softplus(x)),
         * sigmoid(x) = e / (1 + e) with the same clamped e */
        float e, t = wh__tanh_softplus(x, &e);
        return t + x * (1.f - t * t) * (e / (1.f + e));
    }
    case WH_ACT_TANH: {
        float t = tanhf(x);
        return 1.f - t * t;
    }
    default: return 1.f;
    }
}

/* The loops of wh_act_backward, with pragma P as above. The switch sits
 * outside the loops so each loop body is branch-free after inlining (the
 * ternaries become blends). */
#define WH__ACT_BWD_ONE(ACT, P)                                                                                        \
    if (accumulate) {                                                                                                  \
        _Pragma(P) for (long i = 0; i < nn; i++) dx[i] += dy[i] * wh__dact(ACT, x[i]);                                 \
    } else {                                                                                                           \
        _Pragma(P) for (long i = 0; i < nn; i++) dx[i] = dy[i] * wh__dact(ACT, x[i]);                                  \
    }                                                                                                                  \
    break;
#define WH__ACT_BWD(P)                                                                                                 \
    switch (a) {                                                                                                       \
    case WH_ACT_LINEAR:                                                                                                \
        if (accumulate) {                                                                                              \
            _Pragma(P) for (long i = 0; i < nn; i++) dx[i] += dy[i];                                                   \
        } else if (dx != dy) {                                                                                         \
            _Pragma(P) for (long i = 0; i < nn; i++) dx[i] = dy[i];                                                    \
        }                                                                                                              \
        break;                                                                                                         \
    case WH_ACT_LEAKY: WH__ACT_BWD_ONE(WH_ACT_LEAKY, P)                                                                \
    case WH_ACT_RELU: WH__ACT_BWD_ONE(WH_ACT_RELU, P)                                                                  \
    case WH_ACT_LOGISTIC: WH__ACT_BWD_ONE(WH_ACT_LOGISTIC, P)                                                          \
    case WH_ACT_SWISH: WH__ACT_BWD_ONE(WH_ACT_SWISH, P)                                                                \
    case WH_ACT_MISH: WH__ACT_BWD_ONE(WH_ACT_MISH, P)                                                                  \
    case WH_ACT_TANH: WH__ACT_BWD_ONE(WH_ACT_TANH, P)                                                                  \
    default: break;                                                                                                    \
    }

void wh_act_backward(wh_act a, const float *x, const float *dy, float *dx, size_t n, int accumulate)
{
    const long nn = (long)n;
    WH__ACT_BWD("omp parallel for simd schedule(static)")
}

void wh_act_backward_serial(wh_act a, const float *x, const float *dy, float *dx, size_t n, int accumulate)
{
    const long nn = (long)n;
    WH__ACT_BWD("omp simd")
}
