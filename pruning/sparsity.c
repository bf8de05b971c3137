#include "sparsity.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WH_PI 3.14159265358979323846

/* ---- specs ----------------------------------------------------------------- */

wh_status wh_spec_parse(const char *text, wh_spec *out, wh_ctx *ctx)
{
    memset(out, 0, sizeof(*out));
    if (!text || !*text) return wh_error(ctx, WH_ERR_ARG, "empty spec (expected name:key=value,...)");
    const char *colon = strchr(text, ':');
    size_t nl = colon ? (size_t)(colon - text) : strlen(text);
    if (nl == 0 || nl >= sizeof(out->name))
        return wh_error(ctx, WH_ERR_ARG, "spec '%s': bad plug-in name", text);
    memcpy(out->name, text, nl);
    if (!colon) return WH_OK;
    const char *p = colon + 1;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p || (size_t)(eq - p) >= sizeof(out->key[0]) || len - (size_t)(eq - p) - 1 == 0 ||
            len - (size_t)(eq - p) - 1 >= sizeof(out->val[0]))
            return wh_error(ctx, WH_ERR_ARG, "spec '%s': expected key=value, got '%.*s'", text, (int)len, p);
        if (out->n >= WH_SPEC_MAX) return wh_error(ctx, WH_ERR_ARG, "spec '%s': too many keys", text);
        size_t kl = (size_t)(eq - p);
        memcpy(out->key[out->n], p, kl);
        memcpy(out->val[out->n], eq + 1, len - kl - 1);
        for (int i = 0; i < out->n; i++)
            if (!strcmp(out->key[i], out->key[out->n]))
                return wh_error(ctx, WH_ERR_ARG, "spec '%s': key '%s' given twice", text, out->key[i]);
        out->n++;
        if (!comma) break;
        p = comma + 1;
        if (!*p) return wh_error(ctx, WH_ERR_ARG, "spec '%s': trailing comma", text);
    }
    return WH_OK;
}

static void wh__join_names(const char *const *names, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; names[i] && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", names[i]);
}

wh_status wh_spec_check_keys(const wh_spec *s, const char *const *keys, wh_ctx *ctx)
{
    for (int i = 0; i < s->n; i++) {
        int ok = 0;
        for (int k = 0; keys[k]; k++) ok |= !strcmp(keys[k], s->key[i]);
        if (!ok) {
            char list[256];
            wh__join_names(keys, list, sizeof(list));
            return wh_error(ctx, WH_ERR_ARG, "%s: unknown key '%s' (valid: %s)", s->name, s->key[i], list);
        }
    }
    return WH_OK;
}

wh_status wh_spec_double(const wh_spec *s, const char *key, double def, double lo, double hi, double *out,
                         wh_ctx *ctx)
{
    *out = def;
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->key[i], key) != 0) continue;
        char *end;
        errno = 0;
        double v = strtod(s->val[i], &end);
        if (end == s->val[i] || *end || errno || !isfinite(v))
            return wh_error(ctx, WH_ERR_ARG, "%s: %s='%s' is not a number", s->name, key, s->val[i]);
        if (v < lo || v > hi)
            return wh_error(ctx, WH_ERR_ARG, "%s: %s=%g is out of range [%g, %g]", s->name, key, v, lo, hi);
        *out = v;
    }
    return WH_OK;
}

/* ---- the schedulers ---------------------------------------------------------- */

/* One parameter block serves every built-in scheduler; each reads its keys. */
typedef struct wh__sp {
    double s, end, at, factor, part, share, target, thresh, by, gain;
    double cur; /* feedback: the rate now */
} wh__sp;

static wh_status wh__sp_new(void **state, wh__sp **p, wh_ctx *ctx)
{
    *p = calloc(1, sizeof(wh__sp));
    if (!*p) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    *state = *p;
    return WH_OK;
}

static void wh__sp_free(void *state) { free(state); }
static void wh__fill(float *s, int n, double v)
{
    for (int c = 0; c < n; c++) s[c] = (float)v;
}
static double wh__frac(long it, long max_it) { return max_it > 0 ? (double)it / (double)max_it : 0.0; }

/* constant: network slimming's fixed rate */
static const char *const wh__k_const[] = {"s", NULL};
static wh_status wh__const_create(const wh_spec *sp, void **st, wh_ctx *ctx)
{
    wh__sp *p;
    WH_TRY(wh__sp_new(st, &p, ctx));
    return wh_spec_double(sp, "s", 1e-4, 0, 1, &p->s, ctx);
}
static void wh__const_rates(void *st, long it, long max_it, const float *g, int n, float *s)
{
    (void)it, (void)max_it, (void)g;
    wh__fill(s, n, ((wh__sp *)st)->s);
}

/* step: s until the fraction `at` of training, then s * factor */
static const char *const wh__k_step[] = {"s", "at", "factor", NULL};
static wh_status wh__step_create(const wh_spec *sp, void **st, wh_ctx *ctx)
{
    wh__sp *p;
    WH_TRY(wh__sp_new(st, &p, ctx));
    WH_TRY(wh_spec_double(sp, "s", 1e-4, 0, 1, &p->s, ctx));
    WH_TRY(wh_spec_double(sp, "at", 0.5, 0, 1, &p->at, ctx));
    return wh_spec_double(sp, "factor", 0.1, 0, 1e3, &p->factor, ctx);
}
static void wh__step_rates(void *st, long it, long max_it, const float *g, int n, float *s)
{
    const wh__sp *p = st;
    (void)g;
    wh__fill(s, n, wh__frac(it, max_it) < p->at ? p->s : p->s * p->factor);
}

/* linear and cosine: from s to end over training */
static const char *const wh__k_ramp[] = {"s", "end", NULL};
static wh_status wh__ramp_create(const wh_spec *sp, void **st, wh_ctx *ctx)
{
    wh__sp *p;
    WH_TRY(wh__sp_new(st, &p, ctx));
    WH_TRY(wh_spec_double(sp, "s", 1e-4, 0, 1, &p->s, ctx));
    return wh_spec_double(sp, "end", 0, 0, 1, &p->end, ctx);
}
static void wh__linear_rates(void *st, long it, long max_it, const float *g, int n, float *s)
{
    const wh__sp *p = st;
    (void)g;
    double t = fmin(wh__frac(it, max_it), 1.0);
    wh__fill(s, n, p->s + (p->end - p->s) * t);
}
static void wh__cosine_rates(void *st, long it, long max_it, const float *g, int n, float *s)
{
    const wh__sp *p = st;
    (void)g;
    double t = fmin(wh__frac(it, max_it), 1.0);
    wh__fill(s, n, p->end + 0.5 * (p->s - p->end) * (1 + cos(WH_PI * t)));
}

/* dynamic (the paper's): s for every channel during the first `part` of
 * training; then the channels whose |gamma| is in the top `share` of all
 * prunable gammas get s * factor (released), the rest keep s. */
static const char *const wh__k_dyn[] = {"s", "part", "share", "factor", NULL};
static wh_status wh__dyn_create(const wh_spec *sp, void **st, wh_ctx *ctx)
{
    wh__sp *p;
    WH_TRY(wh__sp_new(st, &p, ctx));
    WH_TRY(wh_spec_double(sp, "s", 1e-4, 0, 1, &p->s, ctx));
    WH_TRY(wh_spec_double(sp, "part", 0.4, 0, 1, &p->part, ctx));
    WH_TRY(wh_spec_double(sp, "share", 0.35, 0, 1, &p->share, ctx));
    return wh_spec_double(sp, "factor", 0.01, 0, 1, &p->factor, ctx);
}

static int wh__cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* The |gamma| at rank ceil(share * n) from the top (INFINITY: no channel). */
static float wh__top_threshold(const float *g, int n, double share)
{
    int k = (int)ceil(share * n);
    if (k <= 0 || n <= 0) return INFINITY;
    float *tmp = malloc((size_t)n * sizeof(float));
    if (!tmp) return INFINITY;
    memcpy(tmp, g, (size_t)n * sizeof(float));
    qsort(tmp, (size_t)n, sizeof(float), wh__cmp_desc);
    float t = tmp[(k < n ? k : n) - 1];
    free(tmp);
    return t;
}

static void wh__dyn_rates(void *st, long it, long max_it, const float *g, int n, float *s)
{
    const wh__sp *p = st;
    if (wh__frac(it, max_it) < p->part) {
        wh__fill(s, n, p->s);
        return;
    }
    /* ties at the threshold are released too: the top share is "at least" */
    const float t = wh__top_threshold(g, n, p->share);
    for (int c = 0; c < n; c++) s[c] = (float)(g[c] >= t ? p->s * p->factor : p->s);
}

/* feedback (ours): steers the rate so that the share of |gamma| below
 * thresh follows a straight line from 0 to target, reached at fraction `by`
 * of training: each step the rate is multiplied by (1 + gain) when behind and
 * divided by it when ahead. */
static const char *const wh__k_fb[] = {"s", "target", "thresh", "by", "gain", NULL};
static wh_status wh__fb_create(const wh_spec *sp, void **st, wh_ctx *ctx)
{
    wh__sp *p;
    WH_TRY(wh__sp_new(st, &p, ctx));
    WH_TRY(wh_spec_double(sp, "s", 1e-4, 0, 1, &p->s, ctx));
    WH_TRY(wh_spec_double(sp, "target", 0.5, 0, 1, &p->target, ctx));
    WH_TRY(wh_spec_double(sp, "thresh", 1e-2, 0, 10, &p->thresh, ctx));
    WH_TRY(wh_spec_double(sp, "by", 0.8, 1e-6, 1, &p->by, ctx));
    WH_TRY(wh_spec_double(sp, "gain", 0.01, 0, 1, &p->gain, ctx));
    p->cur = p->s;
    return WH_OK;
}
static void wh__fb_rates(void *st, long it, long max_it, const float *g, int n, float *s)
{
    wh__sp *p = st;
    int below = 0;
    for (int c = 0; c < n; c++) below += g[c] < p->thresh;
    const double share = n > 0 ? (double)below / n : 0.0;
    const double want = p->target * fmin(wh__frac(it, max_it) / p->by, 1.0);
    if (share < want) p->cur *= 1.0 + p->gain;
    else if (share > want) p->cur /= 1.0 + p->gain;
    wh__fill(s, n, p->cur);
}
static void wh__fb_get(const void *st, double *out) { out[0] = ((const wh__sp *)st)->cur; }
static void wh__fb_set(void *st, const double *in) { ((wh__sp *)st)->cur = in[0]; }

static const wh_sched_ops wh__scheds[] = {
    {"constant", wh__k_const, "s for every channel (network slimming)", wh__const_create, wh__const_rates,
     wh__sp_free, 0, NULL, NULL},
    {"step", wh__k_step, "s, then s*factor after the fraction at", wh__step_create, wh__step_rates,
     wh__sp_free, 0, NULL, NULL},
    {"linear", wh__k_ramp, "from s to end, linearly", wh__ramp_create, wh__linear_rates, wh__sp_free, 0,
     NULL, NULL},
    {"cosine", wh__k_ramp, "from s to end, half a cosine", wh__ramp_create, wh__cosine_rates, wh__sp_free, 0,
     NULL, NULL},
    {"dynamic", wh__k_dyn, "the paper's: s, then the top share of |gamma| get s*factor after part",
     wh__dyn_create, wh__dyn_rates, wh__sp_free, 0, NULL, NULL},
    {"feedback", wh__k_fb, "steers s so that target of |gamma| fall below thresh by the fraction by",
     wh__fb_create, wh__fb_rates, wh__sp_free, 1, wh__fb_get, wh__fb_set},
};
#define WH__NSCHED (sizeof(wh__scheds) / sizeof(wh__scheds[0]))
#define WH__MAX_USER_SCHEDS 32
static const wh_sched_ops *wh__user_scheds[WH__MAX_USER_SCHEDS];
static int wh__n_user_scheds;

static const wh_sched_ops *wh__sched_find(const char *name)
{
    for (size_t i = 0; i < WH__NSCHED; i++)
        if (!strcmp(wh__scheds[i].name, name)) return &wh__scheds[i];
    for (int i = 0; i < wh__n_user_scheds; i++)
        if (!strcmp(wh__user_scheds[i]->name, name)) return wh__user_scheds[i];
    return NULL;
}

wh_status wh_sched_register(const wh_sched_ops *ops, wh_ctx *ctx)
{
    if (!ops || !ops->name || !ops->name[0] || !ops->keys || !ops->create || !ops->rates)
        return wh_error(ctx, WH_ERR_ARG, "a sparsity scheduler needs a name, keys, create and rates");
    if (strlen(ops->name) >= sizeof(((wh_spec *)0)->name) || strpbrk(ops->name, ":,= "))
        return wh_error(ctx, WH_ERR_ARG, "scheduler name '%s': at most 31 characters, no ':', ',', '=' or space",
                        ops->name);
    if (ops->n_state < 0 || (ops->n_state > 0 && (!ops->get_state || !ops->set_state)))
        return wh_error(ctx, WH_ERR_ARG, "scheduler '%s': n_state > 0 needs get_state and set_state", ops->name);
    if (wh__sched_find(ops->name))
        return wh_error(ctx, WH_ERR_ARG, "sparsity scheduler '%s' is already registered", ops->name);
    if (wh__n_user_scheds >= WH__MAX_USER_SCHEDS)
        return wh_error(ctx, WH_ERR_ARG, "too many user schedulers (at most %d)", WH__MAX_USER_SCHEDS);
    wh__user_scheds[wh__n_user_scheds++] = ops;
    return WH_OK;
}

void wh_sched_names(char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < WH__NSCHED && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", wh__scheds[i].name);
    for (int i = 0; i < wh__n_user_scheds && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, ", %s", wh__user_scheds[i]->name);
}

wh_status wh_sched_create(const char *spec, wh_sched **out, wh_ctx *ctx)
{
    *out = NULL;
    wh_spec sp;
    WH_TRY(wh_spec_parse(spec, &sp, ctx));
    const wh_sched_ops *ops = wh__sched_find(sp.name);
    if (!ops) {
        char list[256];
        wh_sched_names(list, sizeof(list));
        return wh_error(ctx, WH_ERR_ARG, "unknown sparsity scheduler '%s' (known: %s)", sp.name, list);
    }
    WH_TRY(wh_spec_check_keys(&sp, ops->keys, ctx));
    wh_sched *s = calloc(1, sizeof(*s));
    if (!s) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    s->ops = ops;
    snprintf(s->spec, sizeof(s->spec), "%s", spec);
    wh_status st = ops->create(&sp, &s->state, ctx);
    if (st != WH_OK) {
        wh_sched_destroy(s);
        return st;
    }
    *out = s;
    return WH_OK;
}

void wh_sched_destroy(wh_sched *s)
{
    if (!s) return;
    if (s->ops && s->ops->destroy) s->ops->destroy(s->state);
    free(s);
}

wh_status wh_sched_save(const wh_sched *s, wh_ckpt_writer *w, const char *group, wh_ctx *ctx)
{
    char name[256];
    snprintf(name, sizeof(name), "%s/spec", group);
    WH_TRY(wh_ckpt_put_str(w, name, s->spec, ctx));
    if (s->ops->n_state > 0) {
        /* doubles stored bit for bit (as uint64), so a resumed run continues exactly */
        double st[8];
        uint64_t bits[8];
        s->ops->get_state(s->state, st);
        memcpy(bits, st, (size_t)s->ops->n_state * sizeof(double));
        uint64_t n = (uint64_t)s->ops->n_state;
        snprintf(name, sizeof(name), "%s/state", group);
        WH_TRY(wh_ckpt_put_u64(w, name, bits, &n, 1, ctx));
    }
    return WH_OK;
}

wh_status wh_sched_load(wh_sched *s, wh_ckpt_reader *r, const char *group, wh_ctx *ctx)
{
    char name[256], *spec = NULL;
    snprintf(name, sizeof(name), "%s/spec", group);
    WH_TRY(wh_ckpt_get_str(r, name, &spec, ctx));
    int same = !strcmp(spec, s->spec);
    if (!same) {
        wh_status st = wh_error(ctx, WH_ERR_ARG, "%s: the checkpoint's scheduler is '%s', not '%s'",
                                wh_ckpt_path(r), spec, s->spec);
        free(spec);
        return st;
    }
    free(spec);
    if (s->ops->n_state > 0) {
        uint64_t bits[8];
        double st[8];
        snprintf(name, sizeof(name), "%s/state", group);
        WH_TRY(wh_ckpt_get_u64(r, name, bits, (size_t)s->ops->n_state, ctx));
        memcpy(st, bits, (size_t)s->ops->n_state * sizeof(double));
        s->ops->set_state(s->state, st);
    }
    return WH_OK;
}

/* ---- the prunable set ---------------------------------------------------------- */

static int wh__param(const wh_layer *l, const char *name)
{
    for (int p = 0; p < l->n_params; p++)
        if (!strcmp(l->params[p].name, name)) return p;
    return -1;
}

/* Marks in carry[] the layers whose outputs hold channels of layer a: a
 * itself and, walking forward, every layer that reads a marked one and
 * passes channels on (any flow but a new channel space). Returns whether a
 * layer whose facts say keeps_producers (layers/layer.h: an SPP maxpool, an
 * upsample, a route that slices its input, a reorg) reads a marked one. */
static int wh__reaches_keeper(const wh_net *net, int a, unsigned char *carry)
{
    memset(carry, 0, (size_t)net->n_layers);
    carry[a] = 1;
    int hit = 0;
    for (int j = a + 1; j < net->n_layers; j++) {
        const wh_layer *c = &net->layers[j];
        int reads = 0;
        for (int k = 0; k < c->n_in; k++) reads |= c->in[k] >= 0 && carry[c->in[k]];
        if (!reads) continue;
        wh_layer_facts f;
        wh_layer_facts_get(c, &f);
        hit |= f.keeps_producers;
        carry[j] = c->ops->flow != WH_FLOW_NEW;
    }
    return hit;
}

static int wh__root(int *parent, int x)
{
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
}

/* Does a layer that keeps its producers make a layer's channels unprunable?
 * It does when they reach its input, directly or through routes, shortcuts,
 * pools and the like (a conv -> route -> reorg too), and when the layer is
 * coupled by a shortcut with a layer whose channels do (a residual partner
 * of such a conv: the two share their channels' masks). The coupling is
 * taken per layer, not per channel: on the safe side. One pass for every
 * layer: blocked[i] for i < n_layers. */
wh_status wh_prunable_blocked_set(const wh_net *net, unsigned char *blocked, wh_ctx *ctx)
{
    const int n = net->n_layers;
    unsigned char *carry = calloc((size_t)n * 2 + 1, 1);
    int *parent = calloc((size_t)n * 2 + 1, sizeof(int));
    if (!carry || !parent) {
        free(carry);
        free(parent);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    unsigned char *direct = carry + n; /* per layer: its own channels reach a keeper */
    int *owner = parent + n;           /* per shortcut: the first layer seen adding into it, or -1 */
    for (int j = 0; j < n; j++) parent[j] = j, owner[j] = -1, direct[j] = 0;
    for (int a = 0; a < n; a++) {
        if (net->layers[a].ops->flow != WH_FLOW_NEW) continue; /* where channel spaces start */
        direct[a] = (unsigned char)wh__reaches_keeper(net, a, carry);
        for (int j = a + 1; j < n; j++) {
            if (!carry[j] || net->layers[j].ops->flow != WH_FLOW_ADD) continue;
            if (owner[j] < 0) owner[j] = a;
            else parent[wh__root(parent, a)] = wh__root(parent, owner[j]);
        }
    }
    /* a coupled set is blocked when any of its layers is */
    memset(carry, 0, (size_t)n); /* free again: now marks the blocked sets' roots */
    for (int a = 0; a < n; a++)
        if (direct[a]) carry[wh__root(parent, a)] = 1;
    for (int i = 0; i < n; i++) blocked[i] = carry[wh__root(parent, i)];
    free(carry);
    free(parent);
    return WH_OK;
}

int wh_prunable_blocked(const wh_net *net, int i)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    unsigned char *blocked = malloc((size_t)net->n_layers + 1);
    /* out of memory: blocked (the layer keeps its channels) */
    const int b = !blocked || wh_prunable_blocked_set(net, blocked, &ctx) != WH_OK || blocked[i];
    free(blocked);
    return b;
}

wh_status wh_prunable_find(const wh_net *net, const int *exclude, int n_exclude, wh_prunable *out, wh_ctx *ctx)
{
    memset(out, 0, sizeof(*out));
    for (int e = 0; e < n_exclude; e++)
        if (exclude[e] < 0 || exclude[e] >= net->n_layers)
            return wh_error(ctx, WH_ERR_ARG, "exclude: no layer %d (the net has %d)", exclude[e], net->n_layers);
    out->layer = malloc((size_t)(net->n_layers > 0 ? net->n_layers : 1) * sizeof(int));
    out->offset = malloc((size_t)(net->n_layers > 0 ? net->n_layers : 1) * sizeof(int));
    if (!out->layer || !out->offset) {
        wh_prunable_free(out);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    unsigned char *blocked = malloc((size_t)net->n_layers + 1);
    if (!blocked) {
        wh_prunable_free(out);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    const wh_status st = wh_prunable_blocked_set(net, blocked, ctx);
    for (int i = 0; st == WH_OK && i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        if (l->ops->flow != WH_FLOW_NEW || wh__param(l, "scales") < 0) continue; /* conv with BN */
        int excluded = 0;
        for (int e = 0; e < n_exclude; e++) excluded |= exclude[e] == i;
        if (excluded || blocked[i]) continue;
        out->layer[out->n_layers] = i;
        out->offset[out->n_layers] = out->n_channels;
        out->n_layers++;
        out->n_channels += l->out_shape.c;
    }
    free(blocked);
    if (st != WH_OK) wh_prunable_free(out);
    return st;
}

void wh_prunable_free(wh_prunable *p)
{
    free(p->layer);
    free(p->offset);
    memset(p, 0, sizeof(*p));
}

void wh_prunable_absgamma(const wh_net *net, const wh_prunable *p, float *absgamma)
{
    for (int k = 0; k < p->n_layers; k++) {
        const wh_layer *l = &net->layers[p->layer[k]];
        const float *g = l->params[wh__param(l, "scales")].data;
        for (int c = 0; c < l->out_shape.c; c++) absgamma[p->offset[k] + c] = fabsf(g[c]);
    }
}

wh_status wh_sparsity_apply(wh_net *net, const wh_prunable *p, const float *s, int batch, wh_ctx *ctx)
{
    for (int k = 0; k < p->n_layers; k++) {
        wh_layer *l = &net->layers[p->layer[k]];
        wh_param *g = &l->params[wh__param(l, "scales")];
        if (!g->grad) return wh_error(ctx, WH_ERR_STATE, "layer %d has no gradients (inference net)", l->index);
        for (int c = 0; c < l->out_shape.c; c++) {
            const float v = g->data[c];
            const float sign = (float)((v > 0.f) - (v < 0.f));
            g->grad[c] += (float)batch * s[p->offset[k] + c] * sign;
        }
    }
    return WH_OK;
}

void wh_gamma_stats_compute(const float *absgamma, int n, wh_gamma_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->n = n;
    if (n <= 0) return;
    const double w = (WH_GAMMA_LOG_HI - WH_GAMMA_LOG_LO) / WH_GAMMA_BINS;
    int b3 = 0, b2 = 0;
    for (int c = 0; c < n; c++) {
        const double g = absgamma[c];
        b3 += g < 1e-3;
        b2 += g < 1e-2;
        if (g > out->max) out->max = g;
        int bin = g > 0 ? (int)floor((log10(g) - WH_GAMMA_LOG_LO) / w) : 0;
        bin = bin < 0 ? 0 : bin >= WH_GAMMA_BINS ? WH_GAMMA_BINS - 1 : bin;
        out->hist[bin] += 1.f;
    }
    for (int b = 0; b < WH_GAMMA_BINS; b++) out->hist[b] /= (float)n;
    out->p10 = wh_quantile(absgamma, n, 0.1);
    out->median = wh_quantile(absgamma, n, 0.5);
    out->below_1e3 = (double)b3 / n;
    out->below_1e2 = (double)b2 / n;
}

static int wh__cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double wh_quantile(const float *v, int n, double q)
{
    if (n <= 0) return 0.0;
    float *t = malloc((size_t)n * sizeof(float));
    if (!t) return NAN;
    memcpy(t, v, (size_t)n * sizeof(float));
    qsort(t, (size_t)n, sizeof(float), wh__cmp_float);
    /* nearest rank: the smallest value with at least q*n values <= it */
    long k = (long)ceil(q * n) - 1;
    k = k < 0 ? 0 : k >= n ? n - 1 : k;
    const double r = t[k];
    free(t);
    return r;
}
