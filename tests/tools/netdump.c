/* netdump: run a generated network forward and backward, dump everything.
 *
 * The C half of the whole-network cross-check (llm.c's test_gpt2 habit):
 * tests/torch/crosscheck.py rebuilds the same network from the cfg text in
 * PyTorch float64, from darknet's layer definitions, and compares every
 * array written here.
 *
 *   netdump MODEL CLASSES SIZE WIDTH_MULTIPLE BATCH SEED OUT.bin
 *
 * What it does, all reproducible from SEED:
 *   1. wh_model_generate(MODEL, CLASSES, SIZE x SIZE, WIDTH_MULTIPLE) -> cfg;
 *      a training net of batch BATCH; wh_net_init_weights(SEED).
 *   2. Batch-norm parameters made non-trivial: scales in [0.5, 1.5), biases
 *      in [-0.3, 0.3); the rolling statistics are calibrated by one training
 *      forward on the input (so that the inference pass stays in a sane
 *      range through 100+ layers) and then perturbed: mean + 0.2 sd u,
 *      var * exp(0.3 u), u in [-1, 1). In every batch-norm layer whose
 *      index is a multiple of 4, output channel 0's weights are scaled by
 *      2^-8 (exact in floating point, so nothing else changes): its standard
 *      deviation is then ~1e-3 and where darknet's 1e-6 goes (added to the
 *      sd, not to the variance) shows in the outputs.
 *   3. The parameters are saved ("param.*"), then a training forward
 *      ("out.*", and "rolled.*": the rolling statistics it moved), the
 *      [yolo] douts seeded in [-1, 1) ("dout.*", every other dout zero), a
 *      backward ("grad.*", "dinput").
 *   4. The saved parameters are restored (rolling statistics as before the
 *      training forward) and an inference forward runs ("inf.out.*").
 *
 * File format (native little-endian; all counts uint32):
 *   magic    'W','H','N','D'  (uint32 0x444e4857)
 *   version  1
 *   cfg_len, then cfg_len bytes of cfg text (no NUL)
 *   n_arrays
 *   n_arrays records, each:
 *     name_len, name bytes (ASCII, no NUL)
 *     ndim (1..4), dims[ndim]
 *     prod(dims) float32 values, row-major
 * Array names (i = layer index in cfg order, [net] excluded, from 0):
 *   "input"                   (N, C, H, W) the network input
 *   "out.i"                   (N, C, H, W) layer i output, training forward, NCHW
 *   "inf.out.i"               (N, C, H, W) layer i output, inference forward
 *   "param.i.NAME"            (count)  NAME as l->params[]: biases, scales,
 *                             rolling_mean, rolling_variance, weights (OIHW)
 *   "rolled.i.NAME"           (count)  rolling_mean/_variance after the training forward
 *   "grad.i.NAME"             (count)  d loss / d param, trainable params only
 *   "dout.i"                  (N, C, H, W) the seeded gradient of [yolo] layer i
 *   "dinput"                  (N, C, H, W) d loss / d input
 *   "dout.back.i"             (N, C, H, W) d loss / d out.i after the backward
 * where loss = sum over [yolo] layers i of sum(out.i * dout.i).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framework/core/cfg.h"
#include "framework/io/modelgen.h"
#include "framework/core/net.h"

#define ND_MAGIC 0x444e4857u /* "WHND" */
#define ND_VERSION 1u

/* --- reproducible numbers ------------------------------------------------ */
static uint64_t nd_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float nd_uniform(uint64_t *s, float lo, float hi) /* [lo, hi) */
{
    return lo + (hi - lo) * (float)((double)(nd_next(s) >> 40) / 16777216.0);
}

/* --- the writer ---------------------------------------------------------- */
typedef struct nd_file {
    FILE *f;
    long count_pos; /* where n_arrays is, patched at the end */
    uint32_t n_arrays;
    int err;
} nd_file;

static void nd_u32(nd_file *w, uint32_t v)
{
    if (fwrite(&v, sizeof(v), 1, w->f) != 1) w->err = 1;
}

static void nd_array(nd_file *w, const char *name, const float *data, int ndim, const int *dims)
{
    size_t n = 1;
    nd_u32(w, (uint32_t)strlen(name));
    if (fwrite(name, 1, strlen(name), w->f) != strlen(name)) w->err = 1;
    nd_u32(w, (uint32_t)ndim);
    for (int d = 0; d < ndim; d++) {
        nd_u32(w, (uint32_t)dims[d]);
        n *= (size_t)dims[d];
    }
    if (n && fwrite(data, sizeof(float), n, w->f) != n) w->err = 1;
    w->n_arrays++;
}

static void nd_vec(nd_file *w, const char *name, const float *data, size_t count)
{
    const int dims[1] = {(int)count};
    nd_array(w, name, data, 1, dims);
}

/* A layer's buffer in its own layout, written as plain NCHW. */
static int nd_map(nd_file *w, const char *name, const float *data, wh_shape s, wh_layout layout)
{
    const int dims[4] = {s.n, s.c, s.h, s.w};
    if (layout == WH_LAYOUT_NCHW) {
        nd_array(w, name, data, 4, dims);
        return 0;
    }
    float *tmp = malloc(wh_shape_count(s) * sizeof(float));
    if (!tmp) return -1;
    wh_tensor from = {(float *)data, s, layout}, to = {tmp, s, WH_LAYOUT_NCHW};
    wh_tensor_reorder(&from, &to);
    nd_array(w, name, tmp, 4, dims);
    free(tmp);
    return 0;
}

/* --- the network --------------------------------------------------------- */
static wh_param *nd_param(wh_layer *l, const char *name)
{
    for (int p = 0; p < l->n_params; p++)
        if (strcmp(l->params[p].name, name) == 0) return &l->params[p];
    return NULL;
}

static int nd_is_yolo(const wh_layer *l) { return strcmp(l->ops->type, "yolo") == 0; }

/* Step 2: non-trivial batch norm. The rolling statistics come from one
 * training forward (they move by 1 % from 0: batch = 100 * rolled). */
static wh_status nd_perturb_bn(wh_net *net, uint64_t seed, wh_ctx *ctx)
{
    uint64_t rng = seed ^ 0x5bd1e9955bd1e995ull;
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        wh_param *sc = nd_param(l, "scales"), *b = nd_param(l, "biases");
        wh_param *rm = nd_param(l, "rolling_mean"), *rv = nd_param(l, "rolling_variance");
        if (!sc || !b || !rm || !rv) continue;
        wh_param *w = nd_param(l, "weights");
        if (w && i % 4 == 0) /* OIHW (grouped: O still outermost): channel 0 first */
            for (size_t k = 0; k < w->count / b->count; k++) w->data[k] *= 1.f / 256.f;
        for (size_t k = 0; k < sc->count; k++) {
            sc->data[k] = nd_uniform(&rng, .5f, 1.5f);
            b->data[k] = nd_uniform(&rng, -.3f, .3f);
            rm->data[k] = 0.f;
            rv->data[k] = 0.f;
        }
    }
    WH_TRY(wh_net_forward(net, 1, ctx));
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        wh_param *rm = nd_param(l, "rolling_mean"), *rv = nd_param(l, "rolling_variance");
        if (!rm || !rv) continue;
        for (size_t k = 0; k < rm->count; k++) {
            const float mean = 100.f * rm->data[k], var = 100.f * rv->data[k];
            rm->data[k] = mean + .2f * sqrtf(var) * nd_uniform(&rng, -1.f, 1.f);
            rv->data[k] = var * expf(.3f * nd_uniform(&rng, -1.f, 1.f));
        }
    }
    return WH_OK;
}

/* Copies of every parameter array (or back from them). */
static float **nd_save_params(wh_net *net)
{
    float **saved = calloc((size_t)net->n_layers * WH_MAX_PARAMS, sizeof(float *));
    if (!saved) return NULL;
    for (int i = 0; i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++) {
            const wh_param *pa = &net->layers[i].params[p];
            float *c = malloc(pa->count * sizeof(float));
            if (!c) return saved; /* caught by nd_restore_params' NULL check */
            memcpy(c, pa->data, pa->count * sizeof(float));
            saved[i * WH_MAX_PARAMS + p] = c;
        }
    return saved;
}

static int nd_restore_params(wh_net *net, float **saved)
{
    for (int i = 0; i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++) {
            const wh_param *pa = &net->layers[i].params[p];
            const float *c = saved[i * WH_MAX_PARAMS + p];
            if (!c) return -1;
            memcpy(pa->data, c, pa->count * sizeof(float));
        }
    return 0;
}

static void nd_free_params(wh_net *net, float **saved)
{
    if (!saved) return;
    for (int i = 0; i < net->n_layers * WH_MAX_PARAMS; i++) free(saved[i]);
    free(saved);
}

/* Steps 3 and 4, writing as it goes. */
static wh_status nd_run(wh_net *net, uint64_t seed, nd_file *w, wh_ctx *ctx)
{
    char name[128];
    wh_status st = WH_OK;
    uint64_t rng = seed ^ 0x9e3779b97f4a7c15ull; /* the [yolo] douts */
    const wh_shape in = net->in_shape;
    const size_t n_in = wh_shape_count(in);
    const int in_dims[4] = {in.n, in.c, in.h, in.w};
    float *dinput = calloc(n_in, sizeof(float));          /* (N, C, H, W) */
    float **saved = nd_save_params(net);
    if (!dinput || !saved || nd_restore_params(net, saved) != 0) {
        st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    nd_array(w, "input", net->input, 4, in_dims);
    for (int i = 0; i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++) {
            const wh_param *pa = &net->layers[i].params[p];
            snprintf(name, sizeof(name), "param.%d.%s", i, pa->name);
            nd_vec(w, name, pa->data, pa->count);
        }

    /* training forward */
    if ((st = wh_net_forward(net, 1, ctx)) != WH_OK) goto done;
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        snprintf(name, sizeof(name), "out.%d", i);
        if (nd_map(w, name, l->out, l->out_shape, l->out_layout) != 0) goto nomem;
        for (int p = 0; p < l->n_params; p++)
            if (strncmp(l->params[p].name, "rolling_", 8) == 0) {
                snprintf(name, sizeof(name), "rolled.%d.%s", i, l->params[p].name);
                nd_vec(w, name, l->params[p].data, l->params[p].count);
            }
    }

    /* backward from random [yolo] douts */
    wh_net_zero_douts(net);
    wh_net_zero_grads(net);
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        if (!nd_is_yolo(l)) continue;
        const size_t n = wh_shape_count(l->out_shape);
        float *d = malloc(n * sizeof(float));                /* (N, C, H, W) */
        if (!d) goto nomem;
        for (size_t k = 0; k < n; k++) d[k] = nd_uniform(&rng, -1.f, 1.f);
        wh_tensor from = {d, l->out_shape, WH_LAYOUT_NCHW}, to = {l->dout, l->out_shape, l->out_layout};
        wh_tensor_reorder(&from, &to);
        snprintf(name, sizeof(name), "dout.%d", i);
        const int dims[4] = {l->out_shape.n, l->out_shape.c, l->out_shape.h, l->out_shape.w};
        nd_array(w, name, d, 4, dims);
        free(d);
    }
    if ((st = wh_net_backward(net, dinput, ctx)) != WH_OK) goto done;
    for (int i = 0; i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++) {
            const wh_param *pa = &net->layers[i].params[p];
            if (!pa->grad) continue;
            snprintf(name, sizeof(name), "grad.%d.%s", i, pa->name);
            nd_vec(w, name, pa->grad, pa->count);
        }
    nd_array(w, "dinput", dinput, 4, in_dims);
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        snprintf(name, sizeof(name), "dout.back.%d", i);
        if (nd_map(w, name, l->dout, l->out_shape, l->out_layout) != 0) goto nomem;
    }

    /* inference forward from the saved parameters */
    if (nd_restore_params(net, saved) != 0) goto nomem;
    if ((st = wh_net_forward(net, 0, ctx)) != WH_OK) goto done;
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        snprintf(name, sizeof(name), "inf.out.%d", i);
        if (nd_map(w, name, l->out, l->out_shape, l->out_layout) != 0) goto nomem;
    }
    goto done;
nomem:
    st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
done:
    nd_free_params(net, saved);
    free(dinput);
    return st;
}

static int nd_usage(void)
{
    fprintf(stderr, "usage: netdump MODEL CLASSES SIZE WIDTH_MULTIPLE BATCH SEED OUT.bin\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 8) return nd_usage();
    wh_model_opts mo;
    wh_model_opts_default(&mo);
    mo.name = argv[1];
    mo.classes = atoi(argv[2]);
    mo.width = mo.height = atoi(argv[3]);
    mo.width_multiple = atof(argv[4]);
    const int batch = atoi(argv[5]);
    const uint64_t seed = strtoull(argv[6], NULL, 10);
    const char *out_path = argv[7];
    if (batch < 1) return nd_usage();

    const wh_net_opts no = {.batch = batch, .train = 1};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *text = NULL;
    wh_cfg *cfg = NULL;
    wh_net *net = NULL;
    nd_file w = {0};
    int rc = 1;
    uint64_t rng = seed ^ 0x2545f4914f6cdd1dull;
    wh_status st = wh_model_generate(&mo, &text, &ctx);
    if (st == WH_OK) st = wh_cfg_parse_string(text, mo.name, &cfg, &ctx);
    if (st == WH_OK) st = wh_net_create(cfg, &no, &net, &ctx);
    if (st != WH_OK) goto done;
    wh_net_init_weights(net, seed);
    for (size_t k = 0; k < wh_shape_count(net->in_shape); k++)  /* (N, C, H, W) in [0, 1) */
        net->input[k] = nd_uniform(&rng, 0.f, 1.f);
    if ((st = nd_perturb_bn(net, seed, &ctx)) != WH_OK) goto done;

    w.f = fopen(out_path, "wb");
    if (!w.f) {
        fprintf(stderr, "netdump: cannot write %s\n", out_path);
        goto done;
    }
    nd_u32(&w, ND_MAGIC);
    nd_u32(&w, ND_VERSION);
    nd_u32(&w, (uint32_t)strlen(text));
    if (fwrite(text, 1, strlen(text), w.f) != strlen(text)) w.err = 1;
    w.count_pos = ftell(w.f);
    nd_u32(&w, 0);
    if ((st = nd_run(net, seed, &w, &ctx)) != WH_OK) goto done;
    if (fseek(w.f, w.count_pos, SEEK_SET) != 0) w.err = 1;
    nd_u32(&w, w.n_arrays);
    if (w.err) {
        fprintf(stderr, "netdump: write error on %s\n", out_path);
        goto done;
    }
    rc = 0;
done:
    if (st != WH_OK) fprintf(stderr, "netdump: %s: %s\n", wh_status_name(st), ctx.msg);
    if (w.f && fclose(w.f) != 0) rc = 1;
    for (int k = 0; k < ctx.n_warn && k < WH_WARN_MAX; k++) fprintf(stderr, "netdump: warning: %s\n", ctx.warn[k]);
    wh_net_destroy(net);
    wh_cfg_free(cfg);
    free(text);
    return rc;
}
