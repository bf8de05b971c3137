#include "framework/core/net.h"

#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "framework/core/plan.h"

wh_status wh_dnnl_check(dnnl_status_t s, const char *what, wh_ctx *ctx)
{
    if (s == dnnl_success) return WH_OK;
    return wh_error(ctx, WH_ERR_DNNL, "oneDNN: %s failed (status %d)", what, (int)s);
}

size_t wh_net_arena_total(const wh_net *net)
{
    size_t b = 0;
    for (int k = 0; k < WH_ARENA_COUNT; k++) b += net->arena_bytes[k];
    return b;
}

void wh_net_destroy(wh_net *net)
{
    if (!net) return;
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        if (l->ops && l->ops->destroy) l->ops->destroy(l);
    }
    free(net->layers);
    free(net->n_consumers);
    free(net->dout_hi);
    free(net->out_hi);
    for (int k = 0; k < WH_ARENA_COUNT; k++) free(net->arena[k]);
    if (net->stream) dnnl_stream_destroy(net->stream);
    if (net->engine) dnnl_engine_destroy(net->engine);
    free(net);
}

static wh_status wh__build_layers(wh_net *net, wh_cfg *cfg, wh_ctx *ctx)
{
    net->n_layers = cfg->n_sec - 1;
    net->layers = calloc((size_t)(net->n_layers > 0 ? net->n_layers : 1), sizeof(wh_layer));
    if (!net->layers) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int i = 0; i < net->n_layers; i++) {
        wh_cfg_section *s = &cfg->sec[i + 1];
        wh_layer *l = &net->layers[i];
        l->index = i;
        l->line = s->line;
        l->train = net->train;
        l->blocked = net->blocked;
        l->out_layout = WH_LAYOUT_NCHW;
        const wh_layer_ops *ops = wh_layer_find(s->type);
        if (!ops) {
            char known[512];
            wh_layer_types(known, sizeof(known));
            return wh_error(ctx, WH_ERR_CFG, "%s:%d: layer %d: unknown section [%s] (known: %s)",
                            s->file, s->line, i, s->type, known);
        }
        l->ops = ops;
        /* Default input: the previous layer (or the image for layer 0). */
        l->n_in = 1;
        l->in[0] = i - 1;
        WH_TRY(ops->init(l, s, ctx));
        wh_cfg_warn_unused(s, ctx);
    }
    return WH_OK;
}

static wh_status wh__infer_shapes(wh_net *net, wh_cfg *cfg, wh_ctx *ctx)
{
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        for (int k = 0; k < l->n_in; k++) {
            int j = l->in[k];
            if (j < -1 || j >= i)
                return wh_error(ctx, WH_ERR_CFG, "%s:%d: layer %d reads layer %d, not an earlier layer",
                                cfg->file, l->line, i, j);
            l->in_shape[k] = j < 0 ? net->in_shape : net->layers[j].out_shape;
            /* Neighbours that disagree on the layout get a reorder between them. */
            wh_layout have = j < 0 ? WH_LAYOUT_NCHW : net->layers[j].out_layout;
            unsigned ok = l->ops->layouts_in ? l->ops->layouts_in : WH_LAYOUT_BIT(WH_LAYOUT_NCHW);
            l->in_layout[k] = have;
            if (!(ok & WH_LAYOUT_BIT(have))) {
                int first = 0;
                while (!(ok & WH_LAYOUT_BIT(first))) first++;
                l->in_layout[k] = (wh_layout)first;
            }
        }
        wh_status st = l->ops->shape(l, ctx);
        if (st != WH_OK)
            return wh_error_prefix(ctx, "%s:%d: layer %d [%s]: ", cfg->file, l->line, i,
                                   l->ops->type);
        /* counted after shape: a layer may ask for NCHW there */
        for (int k = 0; k < l->n_in; k++)
            net->n_layout_cvt += l->in_layout[k] != (l->in[k] < 0 ? WH_LAYOUT_NCHW : net->layers[l->in[k]].out_layout);
        const wh_shape o = l->out_shape;
        if (o.n < 1 || o.c < 1 || o.h < 1 || o.w < 1)
            return wh_error(ctx, WH_ERR_SHAPE,
                            "%s:%d: layer %d [%s]: output %dx%dx%d is empty (input too small?)",
                            cfg->file, l->line, i, l->ops->type, o.w, o.h, o.c);
        /* 2^31 floats per activation keeps every int index in range. */
        if (wh_shape_count(o) > (size_t)1 << 31)
            return wh_error(ctx, WH_ERR_SHAPE, "%s:%d: layer %d [%s]: output too large (%zu floats)",
                            cfg->file, l->line, i, l->ops->type, wh_shape_count(o));
    }
    net->n_consumers = calloc((size_t)(net->n_layers > 0 ? net->n_layers : 1), sizeof(int));
    if (!net->n_consumers) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int i = 0; i < net->n_layers; i++)
        for (int k = 0; k < net->layers[i].n_in; k++)
            if (net->layers[i].in[k] >= 0) net->n_consumers[net->layers[i].in[k]]++;
    /* a dout lives up to its last consumer's backward; a leaf's from the loss on */
    net->dout_hi = malloc((size_t)(net->n_layers > 0 ? net->n_layers : 1) * sizeof(int));
    if (!net->dout_hi) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int i = 0; i < net->n_layers; i++) net->dout_hi[i] = net->n_layers;
    for (int i = net->n_layers - 1; i >= 0; i--)
        for (int k = 0; k < net->layers[i].n_in; k++) {
            const int j = net->layers[i].in[k];
            if (j >= 0 && net->dout_hi[j] == net->n_layers) net->dout_hi[j] = i;
        }
    return WH_OK;
}

/* --- layer outputs and activation gradients, by lifetime ----------------------
 * Every output and dout, and every reordered input edge's copy and gradient,
 * gets an interval of steps in layer indices (wh__plan_lives): layer j's
 * dout is used by the backward of layers j..dout_hi[j] (its consumers write
 * it, j reads it), its output by the forwards of j..out_hi[j]. Buffers
 * whose intervals overlap get disjoint bytes; the others may share them.
 * Offsets: largest first, each at the lowest offset clear of the already
 * placed buffers it overlaps in time (first fit, as compilers lay out stack
 * slots). Without share_douts / share_outs every interval spans the whole
 * step, so nothing shares. */
typedef struct wh__life {
    float **slot;
    size_t bytes;
    int lo, hi;
    size_t off;
} wh__life;

static int wh__by_size(const void *a, const void *b)
{
    const wh__life *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->lo < y->lo ? -1 : x->lo > y->lo; /* a stable, reproducible order */
}

static int wh__by_off(const void *a, const void *b)
{
    const wh__life *x = *(wh__life *const *)a, *y = *(wh__life *const *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Input k of l arrives in another layout than its producer's: the net
 * reorders it into l->in_cvt[k] (and its gradient back from din_cvt[k]). */
static int wh__reordered(const wh_net *net, const wh_layer *l, int k)
{
    const int j = l->in[k];
    return l->in_layout[k] != (j < 0 ? WH_LAYOUT_NCHW : net->layers[j].out_layout);
}

/* How long each output lives (after the shapes, which fix the layouts): to
 * its last consumer's forward, or through the step when a backward reads it
 * (not through a reordered copy: the copy then does), when nobody reads it
 * (a net output), or always without share_outs. */
static wh_status wh__out_lives(wh_net *net, wh_ctx *ctx)
{
    const int n = net->n_layers;
    free(net->out_hi);
    net->out_hi = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (!net->out_hi) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int j = 0; j < n; j++) net->out_hi[j] = net->share_outs && net->n_consumers[j] > 0 ? j : n;
    for (int i = 0; net->share_outs && i < n; i++) {
        const wh_layer *l = &net->layers[i];
        for (int k = 0; k < l->n_in; k++) {
            const int j = l->in[k];
            if (j < 0 || net->out_hi[j] == n) continue;
            const int kept = l->ops->backward_reads_input && !wh__reordered(net, l, k);
            net->out_hi[j] = kept ? n : i > net->out_hi[j] ? i : net->out_hi[j];
        }
    }
    return WH_OK;
}

/* Offsets for v[0..m) by first fit, largest first, 64-byte aligned; one
 * zeroed allocation of their extent replaces arena `kind`, and every slot
 * points into it. */
static wh_status wh__lay_out(wh_net *net, wh__life *v, int m, wh_arena_kind kind, const char *what, wh_ctx *ctx)
{
    wh__life **placed = calloc((size_t)(m > 0 ? m : 1), sizeof(*placed));
    if (!placed) return wh_error(ctx, WH_ERR_NOMEM, "out of memory while planning");
    for (int a = 0; a < m; a++) v[a].bytes = (v[a].bytes + 63) / 64 * 64;
    qsort(v, (size_t)m, sizeof(*v), wh__by_size);
    size_t total = 0;
    for (int a = 0; a < m; a++) {
        int np = 0;
        for (int b = 0; b < a; b++)
            if (v[b].lo <= v[a].hi && v[a].lo <= v[b].hi) placed[np++] = &v[b];
        qsort(placed, (size_t)np, sizeof(*placed), wh__by_off);
        size_t off = 0;
        for (int b = 0; b < np; b++) {
            if (placed[b]->off >= off + v[a].bytes) break; /* the gap before it fits */
            const size_t end = placed[b]->off + placed[b]->bytes;
            off = end > off ? end : off;
        }
        v[a].off = off;
        total = off + v[a].bytes > total ? off + v[a].bytes : total;
    }
    free(placed);
    if (net->dry_run) { /* the size was the question */
        for (int a = 0; a < m; a++) *v[a].slot = NULL;
        net->arena_bytes[kind] = total;
        return WH_OK;
    }
    /* The old arena goes first: a re-plan (wh_net_pin_dout) would otherwise
     * hold both while the new one is zeroed, a peak of old + new (measured:
     * +215 MB, 15 % of a yolov4-tiny 416 b8 distillation run). Nothing in it
     * is kept; on failure the net is left without the arena (destroy it). */
    free(net->arena[kind]);
    net->arena[kind] = NULL;
    net->arena_bytes[kind] = 0;
    char *arena = total ? aligned_alloc(64, total) : NULL;
    if (total && !arena)
        return wh_error(ctx, WH_ERR_NOMEM, "cannot allocate the %s arena (%.1f MiB)", what,
                        (double)total / (1 << 20));
    if (arena) memset(arena, 0, total);
    for (int a = 0; a < m; a++) *v[a].slot = (float *)(void *)(arena + v[a].off);
    net->arena[kind] = (float *)arena;
    net->arena_bytes[kind] = total;
    return WH_OK;
}

/* The buffers of one arena by lifetime. Outputs (grads = 0), in forward
 * steps: layer j's output lives over j..out_hi[j]; layer i's reordered input
 * k over i..i, or to the end when i's backward reads it (n_layers stands for
 * the loss and the backward). Activation gradients (grads = 1), in backward
 * steps: layer j's dout over j..dout_hi[j], a din_cvt of layer i within i's
 * backward; without share_douts every interval spans the whole step. */
static wh_status wh__plan_lives(wh_net *net, int grads, wh_ctx *ctx)
{
    const int n = net->n_layers;
    int cnt = 0;
    for (int i = 0; i < n; i++) {
        cnt++;
        for (int k = 0; k < net->layers[i].n_in; k++) cnt += wh__reordered(net, &net->layers[i], k);
    }
    wh__life *v = calloc((size_t)cnt, sizeof(*v));
    if (!v) return wh_error(ctx, WH_ERR_NOMEM, "out of memory while planning");
    const int sd = net->share_douts;
    int m = 0;
    for (int i = 0; i < n; i++) {
        wh_layer *l = &net->layers[i];
        const size_t bytes = wh_layout_count(l->out_shape, l->out_layout) * sizeof(float);
        v[m++] = grads ? (wh__life){&l->dout, bytes, sd ? i : -1, sd ? net->dout_hi[i] : n, 0}
                       : (wh__life){&l->out, bytes, i, net->out_hi[i], 0};
        for (int k = 0; k < l->n_in; k++) {
            if (!wh__reordered(net, l, k)) continue;
            const size_t b = wh_layout_count(l->in_shape[k], l->in_layout[k]) * sizeof(float);
            v[m++] = grads ? (wh__life){&l->din_cvt[k], b, sd ? i : -1, sd ? i : n, 0}
                           : (wh__life){&l->in_cvt[k], b, i,
                                        net->share_outs && !l->ops->backward_reads_input ? i : n, 0};
        }
    }
    const wh_status st = wh__lay_out(net, v, m, grads ? WH_ARENA_DOUT : WH_ARENA_OUT,
                                     grads ? "activation-gradient" : "layer-output", ctx);
    free(v);
    return st;
}

static wh_status wh__plan_outs(wh_net *net, wh_ctx *ctx) { return wh__plan_lives(net, 0, ctx); }
static wh_status wh__plan_douts(wh_net *net, wh_ctx *ctx) { return wh__plan_lives(net, 1, ctx); }

void wh_net_memory_get(const wh_net *net, wh_net_memory *m)
{
    memset(m, 0, sizeof(*m));
    m->params = net->arena_bytes[WH_ARENA_PARAM];
    m->grads = net->arena_bytes[WH_ARENA_GRAD];
    m->arena_total = wh_net_arena_total(net);
    if (!net->train) return;
    /* the activations a backward reads, and what the loss reads: layers'
     * own buffers (the activation arena, less the input when no backward
     * reads it), the outputs a backward reads (a convolution's or a [yolo]
     * layer's input), the net outputs (no consumer: the loss reads them) and
     * the reordered copies a backward reads; whatever share_outs says */
    const int n = net->n_layers;
    size_t acts = net->arena_bytes[WH_ARENA_ACT];
    int input_read = 0;
    for (int i = 0; i < n; i++) {
        const wh_layer *l = &net->layers[i];
        int read = net->n_consumers[i] == 0;
        for (int c = i + 1; c < n; c++)
            for (int k = 0; k < net->layers[c].n_in; k++)
                if (net->layers[c].in[k] == i && net->layers[c].ops->backward_reads_input &&
                    !wh__reordered(net, &net->layers[c], k))
                    read = 1;
        if (read) acts += (wh_layout_count(l->out_shape, l->out_layout) * sizeof(float) + 63) / 64 * 64;
        for (int k = 0; k < l->n_in; k++) {
            if (l->in[k] < 0 && l->ops->backward_reads_input && !wh__reordered(net, l, k)) input_read = 1;
            if (wh__reordered(net, l, k) && l->ops->backward_reads_input)
                acts += (wh_layout_count(l->in_shape[k], l->in_layout[k]) * sizeof(float) + 63) / 64 * 64;
        }
    }
    if (!input_read) acts -= (wh_shape_count(net->in_shape) * sizeof(float) + 63) / 64 * 64;
    m->needed_acts = acts;
    /* the gradients alive at each backward step, with their lifetimes */
    for (int t = 0; t <= n; t++) {
        size_t live = 0;
        for (int i = 0; i < n; i++) {
            const wh_layer *l = &net->layers[i];
            if (i <= t && t <= net->dout_hi[i]) live += wh_layout_count(l->out_shape, l->out_layout) * sizeof(float);
            for (int k = 0; k < l->n_in && t == i; k++)
                if (l->din_cvt[k]) live += wh_layout_count(l->in_shape[k], l->in_layout[k]) * sizeof(float);
        }
        m->douts_live = live > m->douts_live ? live : m->douts_live;
    }
}

wh_status wh_net_pin_dout(wh_net *net, int i, wh_ctx *ctx)
{
    if (!net->train) return wh_error(ctx, WH_ERR_STATE, "pinning a gradient in a network built for inference");
    if (i < 0 || i >= net->n_layers) return wh_error(ctx, WH_ERR_ARG, "no layer %d", i);
    if (net->out_hi[i] != net->n_layers) {
        net->out_hi[i] = net->n_layers;
        WH_TRY(wh__plan_outs(net, ctx));
    }
    if (net->dout_hi[i] == net->n_layers) return WH_OK;
    net->dout_hi[i] = net->n_layers;
    return wh__plan_douts(net, ctx);
}

static wh_status wh__plan(wh_net *net, wh_cfg *cfg, wh_ctx *ctx)
{
    WH_TRY(wh__out_lives(net, ctx));
    wh_plan plan;
    wh_plan_init(&plan, net->train);
    plan.engine = net->engine;
    plan.dry = net->dry_run;
    wh_status st = wh_plan_buffer(&plan, WH_ARENA_ACT, &net->input, wh_shape_count(net->in_shape));
    for (int i = 0; st == WH_OK && i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        /* outputs and reordered inputs: wh__plan_outs, after */
        if (st == WH_OK && l->ops->plan) {
            st = l->ops->plan(l, &plan, ctx);
            if (st != WH_OK)
                wh_error_prefix(ctx, "%s:%d: layer %d [%s]: ", cfg->file, l->line, i, l->ops->type);
        }
        wh_plan_end_layer(&plan);
    }
    if (st == WH_OK) st = wh_plan_allocate(&plan, net->arena, net->arena_bytes, ctx);
    else if (st == WH_ERR_NOMEM && plan.failed) st = wh_error(ctx, st, "out of memory while planning");
    wh_plan_free(&plan);
    if (st == WH_OK) st = wh__plan_outs(net, ctx);
    if (st == WH_OK && net->train) st = wh__plan_douts(net, ctx);
    return st;
}

wh_status wh_net_create(wh_cfg *cfg, const wh_net_opts *opts, wh_net **out, wh_ctx *ctx)
{
    *out = NULL;
    wh_net_opts o = {0};
    if (opts) o = *opts;
    if (!cfg || cfg->n_sec < 1) return wh_error(ctx, WH_ERR_ARG, "empty cfg");
    wh_cfg_section *s0 = &cfg->sec[0];
    if (strcmp(s0->type, "net") != 0 && strcmp(s0->type, "network") != 0)
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: the first section must be [net], not [%s]",
                        cfg->file, s0->line, s0->type);
    if (cfg->n_sec < 2)
        return wh_error(ctx, WH_ERR_CFG, "%s:%d: no layers after [net]", cfg->file, s0->line);
    wh_net *net = calloc(1, sizeof(*net));
    if (!net) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    net->train = o.train ? 1 : 0;
    net->share_douts = o.train && o.share_douts;
    net->share_outs = o.train && o.share_outs;
    net->check_finite = o.check_finite;
    net->dry_run = o.dry_run;
    net->bn_momentum = WH_NET_BN_MOMENTUM;
    /* the blocked layout oneDNN's convolutions use on this CPU */
    net->blocked = !o.blocked ? WH_LAYOUT_NCHW
                   : dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core ? WH_LAYOUT_NCHW16C
                                                                             : WH_LAYOUT_NCHW8C;
    wh_status st = wh_hparams_parse(s0, &net->hp, ctx);
    if (st == WH_OK) {
        wh_cfg_warn_unused(s0, ctx);
        if (o.width > 0) net->hp.width = o.width;
        if (o.height > 0) net->hp.height = o.height;
        int batch = o.batch > 0 ? o.batch : net->hp.batch / net->hp.subdivisions;
        net->in_shape = (wh_shape){batch, net->hp.channels, net->hp.height, net->hp.width};
        st = wh__build_layers(net, cfg, ctx);
    }
    if (st == WH_OK) st = wh__infer_shapes(net, cfg, ctx);
    if (st == WH_OK) st = wh_dnnl_check(dnnl_engine_create(&net->engine, dnnl_cpu, 0), "engine", ctx);
    if (st == WH_OK)
        st = wh_dnnl_check(dnnl_stream_create(&net->stream, net->engine, dnnl_stream_default_flags),
                           "stream", ctx);
    if (st == WH_OK) st = wh__plan(net, cfg, ctx);
    for (int i = 0; st == WH_OK && !net->dry_run && i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        if (!l->ops->bind) continue;
        st = l->ops->bind(l, net, ctx);
        if (st != WH_OK) wh_error_prefix(ctx, "%s:%d: layer %d [%s]: ", cfg->file, l->line, i, l->ops->type);
    }
    if (st != WH_OK) {
        wh_net_destroy(net);
        return st;
    }
    *out = net;
    return WH_OK;
}

wh_status wh_net_load_cfg(const char *path, const wh_net_opts *opts, wh_net **out, wh_ctx *ctx)
{
    wh_cfg *cfg;
    WH_TRY(wh_cfg_parse_file(path, &cfg, ctx));
    wh_status st = wh_net_create(cfg, opts, out, ctx);
    wh_cfg_free(cfg);
    return st;
}

/* splitmix64: a small reproducible generator for initialisation. */
static uint64_t wh__splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void wh_net_set_bn_momentum(wh_net *net, float m) { net->bn_momentum = m > 0.f && m <= 1.f ? m : WH_NET_BN_MOMENTUM; }

wh_status wh_net_copy_params(wh_net *dst, const wh_net *src, int stats_only, wh_ctx *ctx)
{
    if (dst->n_layers != src->n_layers)
        return wh_error(ctx, WH_ERR_STATE, "copying parameters: %d layers into a network of %d", src->n_layers,
                        dst->n_layers);
    for (int i = 0; i < src->n_layers; i++) {
        const wh_layer *a = &src->layers[i], *b = &dst->layers[i];
        int same = a->n_params == b->n_params;
        for (int p = 0; same && p < a->n_params; p++)
            same = a->params[p].count == b->params[p].count && !strcmp(a->params[p].name, b->params[p].name);
        if (!same)
            return wh_error(ctx, WH_ERR_STATE, "copying parameters: layer %d [%s] differs from the other network's",
                            i, a->ops->type);
    }
    for (int i = 0; i < src->n_layers; i++)
        for (int p = 0; p < src->layers[i].n_params; p++) {
            const wh_param *a = &src->layers[i].params[p];
            if (stats_only && strcmp(a->name, "rolling_mean") && strcmp(a->name, "rolling_variance")) continue;
            memcpy(dst->layers[i].params[p].data, a->data, a->count * sizeof(float));
        }
    return WH_OK;
}

void wh_net_init_weights(wh_net *net, uint64_t seed)
{
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        /* Each layer gets its own stream, so a layer's init does not depend on
         * how many numbers the layers before it drew. */
        uint64_t s = seed ^ ((uint64_t)(i + 1) * 0xD1B54A32D192ED03ull);
        s = wh__splitmix(&s);
        if (l->ops->init_weights) l->ops->init_weights(l, &s);
    }
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        if (!l->ops->init_producers) continue;
        wh_layer *prod[WH_MAX_IN] = {0};
        for (int k = 0; k < l->n_in; k++) prod[k] = l->in[k] < 0 ? NULL : &net->layers[l->in[k]];
        l->ops->init_producers(l, prod);
    }
}

static void wh__exec_for(wh_net *net, wh_layer *l, int train, float *din_input, wh_ctx *ctx,
                         wh_exec *x)
{
    memset(x, 0, sizeof(*x));
    x->train = train;
    x->net = net;
    x->ctx = ctx;
    for (int k = 0; k < l->n_in; k++) {
        int j = l->in[k];
        x->in[k] = j < 0 ? net->input : net->layers[j].out;
        x->din[k] = j < 0 ? din_input : net->layers[j].dout;
        if (l->in_cvt[k]) x->in[k] = l->in_cvt[k];
        if (l->din_cvt[k] && x->din[k]) x->din[k] = l->din_cvt[k];
    }
}

/* The producer's side of edge k of layer l, as a tensor. */
static wh_tensor wh__producer(wh_net *net, const wh_layer *l, int k, float *data)
{
    int j = l->in[k];
    wh_tensor t = {data, l->in_shape[k], j < 0 ? WH_LAYOUT_NCHW : net->layers[j].out_layout};
    return t;
}

/* Index of the first NaN or infinity in p[0..n), or n. One parallel pass
 * that vectorises (|v| <= FLT_MAX is false exactly for them), then a serial
 * search only when it found one. */
static size_t wh__nonfinite_at(const float *p, size_t n)
{
    int bad = 0;
#pragma omp parallel for simd reduction(| : bad) schedule(static)
    for (size_t k = 0; k < n; k++) bad |= !(fabsf(p[k]) <= FLT_MAX);
    if (!bad) return n;
    for (size_t k = 0; k < n; k++)
        if (!(fabsf(p[k]) <= FLT_MAX)) return k;
    return n;
}

wh_status wh_net_numeric(wh_net *net, int at, wh_ctx *ctx, const char *fmt, ...)
{
    char msg[sizeof(net->numeric_msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!net->defer_numeric) return wh_error(ctx, WH_ERR_NUMERIC, "%s", msg);
    if (!net->numeric_pending) {
        memcpy(net->numeric_msg, msg, sizeof(msg));
        net->numeric_at = at;
    }
    net->numeric_pending = 1;
    return WH_OK;
}

/* Before layer i's backward its output gradient is complete (every consumer
 * has added into it): checked once there, it names the consumers that made
 * it. (Parameter gradients are checked before the optimizer step.) */
static wh_status wh__check_dout(wh_net *net, int i, wh_ctx *ctx)
{
    const wh_layer *l = &net->layers[i];
    const size_t n = wh_layout_count(l->out_shape, l->out_layout), at = wh__nonfinite_at(l->dout, n);
    if (at == n) return WH_OK;
    char from[256] = "";
    size_t len = 0;
    for (int c = i + 1; c < net->n_layers && len + 48 < sizeof(from); c++)
        for (int k = 0; k < net->layers[c].n_in; k++)
            if (net->layers[c].in[k] == i) {
                len += (size_t)snprintf(from + len, sizeof(from) - len, "%s%d [%s]", len ? ", " : "", c,
                                        net->layers[c].ops->type);
                break;
            }
    if (!len) snprintf(from, sizeof(from), "the loss");
    return wh_net_numeric(net, 2 * net->n_layers - i, ctx,
                          "layer %d [%s]: non-finite gradient (%g) of its output, element %zu, made by the backward "
                          "of %s",
                          i, l->ops->type, (double)l->dout[at], at, from);
}

wh_status wh_net_forward_layer(wh_net *net, int i, int train, wh_ctx *ctx)
{
    if (net->dry_run) return wh_error(ctx, WH_ERR_STATE, "a planned-only network (opts.dry_run) cannot run");
    if (i < 0 || i >= net->n_layers) return wh_error(ctx, WH_ERR_ARG, "no layer %d", i);
    if (train && !net->train)
        return wh_error(ctx, WH_ERR_STATE, "training forward on a network built for inference");
    wh_layer *l = &net->layers[i];
    for (int k = 0; k < l->n_in; k++) {
        if (!l->in_cvt[k]) continue;
        int j = l->in[k];
        wh_tensor from = wh__producer(net, l, k, j < 0 ? net->input : net->layers[j].out);
        wh_tensor to = {l->in_cvt[k], l->in_shape[k], l->in_layout[k]};
        wh_tensor_reorder(&from, &to);
    }
    wh_exec x;
    wh__exec_for(net, l, train, NULL, ctx, &x);
    wh_status st = l->ops->forward(l, &x);
    if (st != WH_OK) return wh_error_prefix(ctx, "layer %d [%s] forward: ", i, l->ops->type);
    if (x.nonfinite_sums) /* the layer's own sums show it: the message says which */
        return wh_net_numeric(net, i, ctx, "layer %d [%s] forward: non-finite output (%s)", i, l->ops->type,
                              x.nonfinite_what);
    if (net->check_finite && !x.checked) {
        const size_t n = wh_layout_count(l->out_shape, l->out_layout), at = wh__nonfinite_at(l->out, n);
        if (at < n)
            return wh_net_numeric(net, i, ctx, "layer %d [%s] forward: non-finite output (%g), element %zu", i,
                                  l->ops->type, (double)l->out[at], at);
    }
    return WH_OK;
}

wh_status wh_net_forward(wh_net *net, int train, wh_ctx *ctx)
{
    for (int i = 0; i < net->n_layers; i++) WH_TRY(wh_net_forward_layer(net, i, train, ctx));
    return WH_OK;
}

void wh_net_zero_douts(wh_net *net)
{
    if (!net->train) return;
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        if (net->share_douts && net->dout_hi[i] < net->n_layers) continue; /* zeroed when it comes alive */
        memset(l->dout, 0, wh_layout_count(l->out_shape, l->out_layout) * sizeof(float));
    }
}

void wh_net_zero_grads(wh_net *net)
{
    if (net->arena[WH_ARENA_GRAD]) memset(net->arena[WH_ARENA_GRAD], 0, net->arena_bytes[WH_ARENA_GRAD]);
}

wh_status wh_net_backward_layer(wh_net *net, int i, float *din_input, wh_ctx *ctx)
{
    if (net->dry_run) return wh_error(ctx, WH_ERR_STATE, "a planned-only network (opts.dry_run) cannot run");
    if (!net->train) return wh_error(ctx, WH_ERR_STATE, "backward on a network built for inference");
    if (i < 0 || i >= net->n_layers) return wh_error(ctx, WH_ERR_ARG, "no layer %d", i);
    wh_layer *l = &net->layers[i];
    if (!l->ops->backward)
        return wh_error(ctx, WH_ERR_UNSUPPORTED, "layer %d [%s] has no backward pass", i,
                        l->ops->type);
    if (net->check_finite && !l->ops->checks_dout) WH_TRY(wh__check_dout(net, i, ctx));
    wh_exec x;
    wh__exec_for(net, l, 1, din_input, ctx, &x);
    /* inputs whose gradient comes alive here (this is their last consumer) */
    for (int k = 0; net->share_douts && k < l->n_in; k++) {
        const int j = l->in[k];
        if (j >= 0 && net->dout_hi[j] == i) {
            const wh_layer *p = &net->layers[j];
            memset(p->dout, 0, wh_layout_count(p->out_shape, p->out_layout) * sizeof(float));
        }
    }
    for (int k = 0; k < l->n_in; k++)
        if (l->din_cvt[k])
            memset(l->din_cvt[k], 0, wh_layout_count(l->in_shape[k], l->in_layout[k]) * sizeof(float));
    wh_status st = l->ops->backward(l, &x);
    if (st != WH_OK) return wh_error_prefix(ctx, "layer %d [%s] backward: ", i, l->ops->type);
    /* the layer's sums showed a non-finite dout (checks_dout): the full scan
     * names the element and who made it (the layer finished its backward) */
    if (x.nonfinite_sums) WH_TRY(wh__check_dout(net, i, ctx));
    for (int k = 0; k < l->n_in; k++) {
        int j = l->in[k];
        float *dst = j < 0 ? din_input : net->layers[j].dout;
        if (!l->din_cvt[k] || !dst) continue;
        wh_tensor from = {l->din_cvt[k], l->in_shape[k], l->in_layout[k]};
        wh_tensor to = wh__producer(net, l, k, dst);
        wh_tensor_reorder_add(&from, &to);
    }
    return WH_OK;
}

wh_status wh_net_backward(wh_net *net, float *din_input, wh_ctx *ctx)
{
    for (int i = net->n_layers - 1; i >= 0; i--) WH_TRY(wh_net_backward_layer(net, i, din_input, ctx));
    return WH_OK;
}

void wh_layer_cost(const wh_layer *l, wh_net_cost *c)
{
    memset(c, 0, sizeof(*c));
    for (int p = 0; p < l->n_params; p++)
        if (l->params[p].flags & WH_PARAM_COUNT) c->params += l->params[p].count;
    c->darknet_flops = l->ops->flops ? l->ops->flops(l) : 0.0;
    if (l->ops->flow == WH_FLOW_NEW) c->conv_flops = c->darknet_flops;
}

void wh_net_cost_total(const wh_net *net, wh_net_cost *c)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < net->n_layers; i++) {
        wh_net_cost lc;
        wh_layer_cost(&net->layers[i], &lc);
        c->conv_flops += lc.conv_flops;
        c->darknet_flops += lc.darknet_flops;
        c->params += lc.params;
    }
}
