#include "framework/train/optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WH_PI 3.14159265358979323846

double wh_lr_at(const wh_hparams *hp, long it)
{
    const double lr = hp->learning_rate;
    if (hp->burn_in > 0 && it < hp->burn_in) return lr * pow((double)it / hp->burn_in, hp->power);
    switch (hp->policy) {
    case WH_LR_CONSTANT: return lr;
    case WH_LR_STEP: return lr * pow(hp->gamma, (double)(it / hp->step));
    case WH_LR_STEPS: {
        double r = lr;
        for (int i = 0; i < hp->n_steps; i++) {
            if (hp->steps[i] > it) return r;
            r *= hp->scales[i];
        }
        return r;
    }
    case WH_LR_EXP: return lr * pow(hp->gamma, (double)it);
    case WH_LR_POLY: {
        double f = hp->max_batches > 0 ? 1.0 - (double)it / hp->max_batches : 1.0;
        return lr * pow(f > 0 ? f : 0, hp->power);
    }
    case WH_LR_SIG: return lr * (1.0 / (1.0 + exp(hp->gamma * (double)(it - hp->step))));
    case WH_LR_SGDR: {
        long start = 0, cycle = hp->sgdr_cycle > 0 ? hp->sgdr_cycle : 1;
        while (start + cycle < it) {
            start += cycle;
            cycle *= hp->sgdr_mult;
        }
        return hp->learning_rate_min +
               0.5 * (lr - hp->learning_rate_min) * (1.0 + cos((double)(it - start) * WH_PI / (double)cycle));
    }
    case WH_LR_COSINE: {
        long m = hp->max_batches > 0 ? hp->max_batches : 1;
        double t = (double)(it < m ? it : m) / (double)m;
        return hp->learning_rate_min + 0.5 * (lr - hp->learning_rate_min) * (1.0 + cos(t * WH_PI));
    }
    case WH_LR_RANDOM: return lr; /* the trainer refuses "random" (not reproducible) */
    }
    return lr;
}

/* The trainable parameters, in the order of layers and their params (the
 * order of every optimizer state array): from *i = *p = 0, each call returns
 * the next one and moves past it, NULL at the end. */
static wh_param *wh__next_trainable(const wh_net *net, int *i, int *p)
{
    for (; *i < net->n_layers; (*i)++, *p = 0)
        while (*p < net->layers[*i].n_params) {
            wh_param *pr = &net->layers[*i].params[(*p)++];
            if (pr->flags & WH_PARAM_TRAIN) return pr;
        }
    return NULL;
}

static size_t wh__trainable_floats(const wh_net *net)
{
    size_t n = 0;
    int i = 0, p = 0;
    for (const wh_param *pr; (pr = wh__next_trainable(net, &i, &p));) n += pr->count;
    return n;
}

wh_status wh_sgd_create(const wh_net *net, float momentum, float decay, int nesterov, wh_sgd **out,
                        wh_ctx *ctx)
{
    *out = NULL;
    const size_t n = wh__trainable_floats(net);
    wh_sgd *o = calloc(1, sizeof(*o));
    if (!o) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    o->velocity = calloc(n ? n : 1, sizeof(float));
    if (!o->velocity) {
        free(o);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory for the optimizer state (%zu floats)", n);
    }
    o->n = n;
    o->momentum = momentum;
    o->decay = decay;
    o->nesterov = nesterov;
    *out = o;
    return WH_OK;
}

void wh_sgd_destroy(wh_sgd *o)
{
    if (!o) return;
    free(o->velocity);
    free(o);
}

static int wh__finite(const float *x, size_t n)
{
    int ok = 1;
    const long nn = (long)n;
#pragma omp parallel for reduction(&& : ok) schedule(static)
    for (long i = 0; i < nn; i++) ok = ok && isfinite(x[i]);
    return ok;
}

int wh_net_first_nonfinite_output(const wh_net *net)
{
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        if (!wh__finite(l->out, wh_layout_count(l->out_shape, l->out_layout))) return i;
    }
    return -1;
}

int wh_net_first_nonfinite_grad(const wh_net *net, int *param)
{
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        for (int p = 0; p < l->n_params; p++)
            if (l->params[p].grad && !wh__finite(l->params[p].grad, l->params[p].count)) {
                if (param) *param = p;
                return i;
            }
    }
    return -1;
}

/* Before any step: a valid batch and finite gradients, else an error naming
 * the first non-finite one (nothing changed). */
static wh_status wh__step_ready(const wh_net *net, int batch, wh_ctx *ctx)
{
    if (batch < 1) return wh_error(ctx, WH_ERR_ARG, "batch must be >= 1");
    int li = 0, pi = 0;
    for (const wh_param *pr; (pr = wh__next_trainable(net, &li, &pi));)
        if (!pr->grad) return wh_error(ctx, WH_ERR_STATE, "layer %d has no gradients (inference net)", li);
    int bad_p = 0, bad = wh_net_first_nonfinite_grad(net, &bad_p);
    if (bad >= 0)
        return wh_error(ctx, WH_ERR_NUMERIC,
                        "non-finite gradient in layer %d [%s] '%s': step skipped, weights unchanged", bad,
                        net->layers[bad].ops->type, net->layers[bad].params[bad_p].name);
    return WH_OK;
}

wh_status wh_sgd_step(wh_sgd *o, wh_net *net, float lr, int batch, wh_ctx *ctx)
{
    WH_TRY(wh__step_ready(net, batch, ctx));
    const float inv_b = 1.f / (float)batch, m = o->momentum;
    size_t off = 0;
    int i = 0, p = 0;
    for (wh_param *pr; (pr = wh__next_trainable(net, &i, &p)); off += pr->count) {
        float *w = pr->data, *v = o->velocity + off;
        const float *g = pr->grad;
        const float dec = (pr->flags & WH_PARAM_DECAY) ? o->decay : 0.f;
        const long n = (long)pr->count;
        if (o->nesterov) {
#pragma omp parallel for simd schedule(static)
            for (long k = 0; k < n; k++) {
                const float gk = g[k] * inv_b + dec * w[k];
                v[k] = m * v[k] + gk;
                w[k] -= lr * (gk + m * v[k]);
            }
        } else {
#pragma omp parallel for simd schedule(static)
            for (long k = 0; k < n; k++) {
                v[k] = m * v[k] + g[k] * inv_b + dec * w[k];
                w[k] -= lr * v[k];
            }
        }
    }
    return WH_OK;
}

/* ---- optimizers as plug-ins ------------------------------------------------ */

static wh_status wh__sgd_step_optim(wh_optim *o, wh_net *net, float lr, int batch, wh_ctx *ctx)
{
    wh_sgd s = {.momentum = o->momentum, .decay = o->decay, .nesterov = o->nesterov, .n = o->n,
                .velocity = o->state[0]};
    return wh_sgd_step(&s, net, lr, batch, ctx);
}

static wh_status wh__adamw_step(wh_optim *o, wh_net *net, float lr, int batch, wh_ctx *ctx)
{
    WH_TRY(wh__step_ready(net, batch, ctx));
    o->t++;
    const double b1 = o->momentum, b2 = o->beta2;
    /* bias corrections in double: 1 - b^t loses everything in float for small t */
    const float c1 = (float)(1.0 / (1.0 - pow(b1, (double)o->t)));
    const float c2 = (float)(1.0 / (1.0 - pow(b2, (double)o->t)));
    const float inv_b = 1.f / (float)batch, fb1 = (float)b1, fb2 = (float)b2, eps = o->eps;
    size_t off = 0;
    int i = 0, p = 0;
    for (wh_param *pr; (pr = wh__next_trainable(net, &i, &p)); off += pr->count) {
        float *w = pr->data, *m = o->state[0] + off, *v = o->state[1] + off;
        const float *g = pr->grad;
        const float shrink = 1.f - lr * ((pr->flags & WH_PARAM_DECAY) ? o->decay : 0.f);
        const long n = (long)pr->count;
#pragma omp parallel for simd schedule(static)
        for (long k = 0; k < n; k++) {
            const float gk = g[k] * inv_b;
            m[k] = fb1 * m[k] + (1.f - fb1) * gk;
            v[k] = fb2 * v[k] + (1.f - fb2) * gk * gk;
            w[k] = w[k] * shrink - lr * (m[k] * c1) / (sqrtf(v[k] * c2) + eps);
        }
    }
    return WH_OK;
}

static const wh_optim_ops wh__optims[] = {
    {"sgd", 1, {"velocity", NULL}, wh__sgd_step_optim},
    {"adamw", 2, {"adam_m", "adam_v"}, wh__adamw_step},
};

const wh_optim_ops *wh_optim_find(const char *name)
{
    for (size_t i = 0; i < sizeof(wh__optims) / sizeof(wh__optims[0]); i++)
        if (name && !strcmp(name, wh__optims[i].name)) return &wh__optims[i];
    return NULL;
}

const char *wh_optim_names(void) { return "sgd, adamw"; }

wh_status wh_optim_create(const char *name, const wh_net *net, float momentum, float decay, int nesterov,
                          wh_optim **out, wh_ctx *ctx)
{
    *out = NULL;
    const wh_optim_ops *ops = wh_optim_find(name ? name : "sgd");
    if (!ops) return wh_error(ctx, WH_ERR_ARG, "unknown optimizer '%s' (known: %s)", name, wh_optim_names());
    if (nesterov && strcmp(ops->name, "sgd"))
        return wh_error(ctx, WH_ERR_ARG, "--nesterov applies to sgd only, not %s", ops->name);
    const size_t n = wh__trainable_floats(net);
    wh_optim *o = calloc(1, sizeof(*o));
    if (!o) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    o->ops = ops;
    o->momentum = momentum;
    o->decay = decay;
    o->nesterov = nesterov;
    o->beta2 = .999f;
    o->eps = 1e-8f;
    o->n = n;
    for (int k = 0; k < ops->n_state; k++)
        if (!(o->state[k] = calloc(n ? n : 1, sizeof(float)))) {
            wh_optim_destroy(o);
            return wh_error(ctx, WH_ERR_NOMEM, "out of memory for the %s state (%zu floats)", ops->name, n);
        }
    *out = o;
    return WH_OK;
}

void wh_optim_destroy(wh_optim *o)
{
    if (!o) return;
    free(o->state[0]);
    free(o->state[1]);
    free(o);
}

wh_status wh_optim_step(wh_optim *o, wh_net *net, float lr, int batch, wh_ctx *ctx)
{
    return o->ops->step(o, net, lr, batch, ctx);
}

/* ---- weight averaging ------------------------------------------------------ */

wh_status wh_ema_create(const wh_net *net, long max_batches, wh_ema **out, wh_ctx *ctx)
{
    *out = NULL;
    wh_ema *e = calloc(1, sizeof(*e));
    const size_t n = net->arena_bytes[WH_ARENA_PARAM] / sizeof(float);
    if (!e || !(e->avg = malloc((n ? n : 1) * sizeof(float)))) {
        free(e);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory for the weight average (%zu floats)", n);
    }
    e->n = n;
    if (n) memcpy(e->avg, net->arena[WH_ARENA_PARAM], n * sizeof(float));
    wh_ema_fit(e, max_batches);
    *out = e;
    return WH_OK;
}

void wh_ema_fit(wh_ema *e, long max_batches)
{
    double window = (double)max_batches / 20.0;
    window = window < 10 ? 10 : window > 1e4 ? 1e4 : window;
    e->d_max = 1.0 - 1.0 / window;
    e->tau = (double)max_batches / 15.0 < 2000 ? (double)max_batches / 15.0 : 2000;
    if (e->tau < 1) e->tau = 1;
}

void wh_ema_destroy(wh_ema *e)
{
    if (!e) return;
    free(e->avg);
    free(e);
}

double wh_ema_decay(const wh_ema *e, int64_t u) { return e->d_max * (1.0 - exp(-(double)u / e->tau)); }

void wh_ema_update(wh_ema *e, const wh_net *net)
{
    e->updates++;
    const float d = (float)wh_ema_decay(e, e->updates), c = 1.f - d;
    const float *w = net->arena[WH_ARENA_PARAM];
    float *a = e->avg;
    const long n = (long)e->n;
#pragma omp parallel for simd schedule(static)
    for (long k = 0; k < n; k++) a[k] = d * a[k] + c * w[k];
}

void wh_ema_swap(wh_ema *e, wh_net *net)
{
    float *w = net->arena[WH_ARENA_PARAM], *a = e->avg;
    const long n = (long)e->n;
#pragma omp parallel for simd schedule(static)
    for (long k = 0; k < n; k++) {
        const float t = w[k];
        w[k] = a[k];
        a[k] = t;
    }
}
