/* bench_train: training iterations of a generated model, timed.
 *
 *   bench_train [--model yolov4-tiny] [--classes 20] [--size 416] [--batch 8]
 *               [--runs 5] [--threads N] [--width-multiple 1]
 *
 * One iteration is what the trainer does for one batch with subdivisions=1:
 * zero the gradients, training forward, every [yolo] layer's loss, backward,
 * one SGD step. Inputs are random images (uniform in [0, 1]) with 1..4
 * random truth boxes each, so no dataset is needed; the loader's decoding
 * and augmentation are not timed. After one warm-up iteration, --runs
 * iterations are timed; one JSON object gives the median and min seconds per
 * iteration, images per second, the median of each phase, and the
 * convolution GFLOP/s counting a backward as twice a forward (3x the
 * forward's conv FLOPs per image). The OpenMP wait policy in force is
 * reported, since it changes the numbers on a shared machine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_util.h"
#include "framework/modelgen.h"
#include "framework/net.h"
#include "framework/optimizer.h"
#include "layers/yolo.h"

#define MAX_BOXES 8
enum { PH_FWD, PH_LOSS, PH_BWD, PH_STEP, PH_COUNT };

/* xorshift64*: reproducible inputs without the library's private RNG. */
static double rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static int arg_num(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || d < lo || d > hi) {
        fprintf(stderr, "bench_train: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = d;
    return 0;
}

/* One iteration; t[PH_*] receives each phase's seconds, *loss the summed
 * yolo loss per image. */
static wh_status iteration(wh_net *net, wh_sgd *sgd, const wh_truth *truth, int batch, double t[PH_COUNT],
                           double *loss, wh_ctx *ctx)
{
    double t0 = wh_bench_now();
    wh_net_zero_grads(net);
    WH_TRY(wh_net_forward(net, 1, ctx));
    double t1 = wh_bench_now();
    wh_net_zero_douts(net);
    double sum = 0;
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        if (!wh_yolo_get(l)) continue;
        wh_yolo_loss_parts p;
        WH_TRY(wh_yolo_loss(l, truth, MAX_BOXES, net->in_shape.w, net->in_shape.h, &p, ctx));
        sum += p.loss;
    }
    double t2 = wh_bench_now();
    WH_TRY(wh_net_backward(net, NULL, ctx));
    double t3 = wh_bench_now();
    /* A small fixed rate: the schedule's burn-in would make it ~0, and a
     * large one could diverge on random data over a few steps. */
    WH_TRY(wh_sgd_step(sgd, net, 1e-4f, batch, ctx));
    double t4 = wh_bench_now();
    t[PH_FWD] = t1 - t0;
    t[PH_LOSS] = t2 - t1;
    t[PH_BWD] = t3 - t2;
    t[PH_STEP] = t4 - t3;
    *loss = sum / batch;
    return WH_OK;
}

int main(int argc, char **argv)
{
    wh_model_opts mo;
    wh_model_opts_default(&mo);
    mo.name = "yolov4-tiny";
    mo.classes = 20;
    int batch = 8, runs = 5, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d = 0;
        if (!v) {
            fprintf(stderr, "bench_train: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model")) {
            mo.name = v;
        } else if (!strcmp(a, "--classes") || !strcmp(a, "--size") || !strcmp(a, "--batch") ||
                   !strcmp(a, "--runs") || !strcmp(a, "--threads") || !strcmp(a, "--width-multiple")) {
            const int wm = !strcmp(a, "--width-multiple");
            if (arg_num(a, v, wm ? 1e-3 : 0, wm ? 4 : 100000, &d)) return 2;
            if (!wm && (d != (int)d || (d < 1 && strcmp(a, "--threads")))) {
                fprintf(stderr, "bench_train: %s expects a positive integer, got '%s'\n", a, v);
                return 2;
            }
            if (!strcmp(a, "--classes")) mo.classes = (int)d;
            else if (!strcmp(a, "--size")) mo.width = mo.height = (int)d;
            else if (!strcmp(a, "--batch")) batch = (int)d;
            else if (!strcmp(a, "--runs")) runs = (int)d;
            else if (!strcmp(a, "--threads")) threads = (int)d;
            else mo.width_multiple = d;
        } else {
            fprintf(stderr, "bench_train: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ctx_set_threads(&ctx, threads);
    char *text = NULL;
    wh_cfg *cfg = NULL;
    wh_net *net = NULL;
    wh_sgd *sgd = NULL;
    const wh_net_opts no = {.batch = batch, .train = 1};
    if (wh_model_generate(&mo, &text, &ctx) != WH_OK || wh_cfg_parse_string(text, mo.name, &cfg, &ctx) != WH_OK ||
        wh_net_create(cfg, &no, &net, &ctx) != WH_OK ||
        wh_sgd_create(net, net->hp.momentum, net->hp.decay, 0, &sgd, &ctx) != WH_OK) {
        fprintf(stderr, "bench_train: %s\n", ctx.msg);
        return 1;
    }
    wh_net_init_weights(net, 1);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    const size_t n_in = wh_shape_count(net->in_shape);
    for (size_t i = 0; i < n_in; i++) net->input[i] = (float)rnd(&rng);
    /* (batch, MAX_BOXES): 1..4 boxes per image, 5%..50% of the side, inside the image */
    wh_truth *truth = calloc((size_t)batch * MAX_BOXES, sizeof(wh_truth));
    double *t = malloc((size_t)runs * (PH_COUNT + 1) * sizeof(double));
    if (!truth || !t) {
        fprintf(stderr, "bench_train: out of memory\n");
        return 1;
    }
    for (int b = 0; b < batch; b++) {
        int k = 1 + (int)(rnd(&rng) * 4);
        for (int j = 0; j < k; j++) {
            wh_truth *tr = &truth[b * MAX_BOXES + j];
            tr->w = (float)(0.05 + 0.45 * rnd(&rng));
            tr->h = (float)(0.05 + 0.45 * rnd(&rng));
            tr->x = (float)(tr->w / 2 + (1 - tr->w) * rnd(&rng));
            tr->y = (float)(tr->h / 2 + (1 - tr->h) * rnd(&rng));
            tr->cls = (int)(rnd(&rng) * mo.classes) % mo.classes;
        }
    }
    double ph[PH_COUNT], loss0 = 0, loss = 0;
    if (iteration(net, sgd, truth, batch, ph, &loss0, &ctx) != WH_OK) { /* warm-up */
        fprintf(stderr, "bench_train: %s\n", ctx.msg);
        return 1;
    }
    for (int r = 0; r < runs; r++) {
        if (iteration(net, sgd, truth, batch, ph, &loss, &ctx) != WH_OK) {
            fprintf(stderr, "bench_train: %s\n", ctx.msg);
            return 1;
        }
        double tot = 0;
        for (int p = 0; p < PH_COUNT; p++) {
            t[(size_t)(p + 1) * runs + r] = ph[p];
            tot += ph[p];
        }
        t[r] = tot;
    }
    const double min_s = (qsort(t, (size_t)runs, sizeof(double), wh_bench_cmp), t[0]);
    const double med = wh_bench_median(t, runs);
    double pmed[PH_COUNT];
    for (int p = 0; p < PH_COUNT; p++) pmed[p] = wh_bench_median(t + (size_t)(p + 1) * runs, runs);
    wh_net_cost cost;
    wh_net_cost_total(net, &cost);
#ifdef _OPENMP
    int nt = omp_get_max_threads();
#else
    int nt = 1;
#endif
    const char *wait = getenv("OMP_WAIT_POLICY");
    printf("{\"bench\": \"train\", \"model\": \"%s\", \"classes\": %d, \"size\": %d, \"width_multiple\": %g, "
           "\"batch\": %d, \"threads\": %d, \"omp_wait_policy\": \"%s\", \"runs\": %d, "
           "\"median_s_per_iter\": %.4f, \"min_s_per_iter\": %.4f, \"img_per_s\": %.2f, "
           "\"median_ms\": {\"forward\": %.1f, \"loss\": %.1f, \"backward\": %.1f, \"sgd_step\": %.1f}, "
           "\"conv_gflop_per_img_fwd\": %.3f, \"train_gflop_per_s\": %.1f, "
           "\"loss_per_img_first\": %.4f, \"loss_per_img_last\": %.4f}\n",
           mo.name, mo.classes, mo.width, mo.width_multiple, batch, nt, wait ? wait : "default", runs, med, min_s,
           batch / med, pmed[PH_FWD] * 1e3, pmed[PH_LOSS] * 1e3, pmed[PH_BWD] * 1e3, pmed[PH_STEP] * 1e3,
           cost.conv_flops / 1e9, 3 * cost.conv_flops * batch / med / 1e9, loss0, loss);
    free(t);
    free(truth);
    wh_sgd_destroy(sgd);
    free(text);
    wh_cfg_free(cfg);
    wh_net_destroy(net);
    return 0;
}
