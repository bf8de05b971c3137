/* bench_forward: inference forward pass of a generated model, timed.
 *
 *   bench_forward [--model yolov4-tiny | --cfg FILE] [--size 416] [--batch 1] [--runs 20]
 *                 [--threads N] [--peak-gflops-per-core 117] [--profile 1] [--blocked 1]
 *
 * Prints one JSON object: median and min latency over the runs (after two
 * warm-up passes), images per second, the convolution GFLOP/s (2 per
 * multiply-add, the model's conv FLOPs divided by the median time) and that
 * as a share of this CPU's peak (per-core peak x threads). The OpenMP wait
 * policy in force is reported, since it changes the numbers on a shared
 * machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_util.h"
#include "framework/core/json.h"
#include "framework/io/modelgen.h"
#include "framework/core/net.h"

int main(int argc, char **argv)
{
    wh_model_opts mo;
    wh_model_opts_default(&mo);
    mo.name = "yolov4-tiny";
    int batch = 1, runs = 20, threads = 0, profile = 0;
    const char *cfg_path = NULL;
    int size_given = 0; /* with --cfg: 0 keeps the cfg's input size */
    int blocked = 1;    /* activations in oneDNN's blocked layout between layers (0: NCHW) */
    double peak_core = 117.0; /* GFLOP/s per core measured with oneDNN on this CPU */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_forward: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model")) mo.name = v;
        else if (!strcmp(a, "--cfg")) cfg_path = v;
        else if (!strcmp(a, "--size")) mo.width = mo.height = size_given = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--runs")) runs = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--peak-gflops-per-core")) peak_core = atof(v);
        else if (!strcmp(a, "--profile")) profile = atoi(v);
        else if (!strcmp(a, "--blocked")) blocked = atoi(v);
        else {
            fprintf(stderr, "bench_forward: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (batch < 1 || runs < 1 || runs > 100000 || threads < 0) {
        fprintf(stderr, "bench_forward: bad --batch/--runs/--threads\n");
        return 2;
    }
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ctx_set_threads(&ctx, threads);
    char *text = NULL;
    wh_cfg *cfg = NULL;
    wh_net *net = NULL;
    wh_net_opts no = {.batch = batch, .train = 0, .blocked = blocked};
    if (cfg_path) no.width = no.height = size_given;
    if ((cfg_path ? wh_cfg_parse_file(cfg_path, &cfg, &ctx)
                  : (wh_model_generate(&mo, &text, &ctx) != WH_OK ? ctx.status
                                                                  : wh_cfg_parse_string(text, mo.name, &cfg, &ctx))) != WH_OK ||
        wh_net_create(cfg, &no, &net, &ctx) != WH_OK) {
        fprintf(stderr, "bench_forward: %s\n", ctx.msg);
        return 1;
    }
    wh_net_init_weights(net, 1);
    for (size_t i = 0; i < wh_shape_count(net->in_shape); i++) net->input[i] = (float)(i % 255) / 255.f;
    double *t = malloc((size_t)runs * sizeof(double));
    if (!t) return 1;
    for (int w = 0; w < 2; w++)
        if (wh_net_forward(net, 0, &ctx) != WH_OK) {
            fprintf(stderr, "bench_forward: %s\n", ctx.msg);
            return 1;
        }
    for (int r = 0; r < runs; r++) {
        double t0 = wh_bench_now();
        if (wh_net_forward(net, 0, &ctx) != WH_OK) {
            fprintf(stderr, "bench_forward: %s\n", ctx.msg);
            return 1;
        }
        t[r] = wh_bench_now() - t0;
    }
    if (profile) {
        /* Per-layer medians go to stderr so stdout stays one JSON object. */
        double *lt = calloc((size_t)net->n_layers * (size_t)runs, sizeof(double));
        if (!lt) return 1;
        for (int r = 0; r < runs; r++)
            for (int i = 0; i < net->n_layers; i++) {
                double t0 = wh_bench_now();
                if (wh_net_forward_layer(net, i, 0, &ctx) != WH_OK) return 1;
                lt[(size_t)i * runs + r] = wh_bench_now() - t0;
            }
        fprintf(stderr, "layer type            median_ms  conv_gflop/s\n");
        for (int i = 0; i < net->n_layers; i++) {
            double *li = lt + (size_t)i * runs;
            qsort(li, (size_t)runs, sizeof(double), wh_bench_cmp);
            wh_net_cost lc;
            wh_layer_cost(&net->layers[i], &lc);
            fprintf(stderr, "%5d %-14s %9.3f %10.1f\n", i, net->layers[i].ops->type, li[runs / 2] * 1e3,
                    lc.conv_flops * batch / li[runs / 2] / 1e9);
        }
        free(lt);
    }
    double med = wh_bench_median(t, runs);
    wh_net_cost cost;
    wh_net_cost_total(net, &cost);
#ifdef _OPENMP
    int nt = omp_get_max_threads();
#else
    int nt = 1;
#endif
    const char *wait = getenv("OMP_WAIT_POLICY");
    char ename[1024], ewait[128];
    double gflops = cost.conv_flops * batch / med / 1e9;
    printf("{\"bench\": \"forward\", \"model\": \"%s\", \"size\": %d, \"batch\": %d, \"threads\": %d, "
           "\"omp_wait_policy\": \"%s\", \"blocked\": %d, \"runs\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f, "
           "\"img_per_s\": %.2f, \"conv_gflop_per_img\": %.3f, \"gflop_per_s\": %.1f, "
           "\"peak_gflop_per_s\": %.1f, \"pct_of_peak\": %.1f}\n",
           wh_json_escape(ename, sizeof(ename), cfg_path ? cfg_path : mo.name), net->in_shape.w, batch, nt,
           wh_json_escape(ewait, sizeof(ewait), wait ? wait : "default"), blocked, runs, med * 1e3, t[0] * 1e3,
           batch / med, cost.conv_flops / 1e9, gflops, peak_core * nt, 100.0 * gflops / (peak_core * nt));
    free(t);
    free(text);
    wh_cfg_free(cfg);
    wh_net_destroy(net);
    return 0;
}
