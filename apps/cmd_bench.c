/* whittle bench peak | net: how fast this machine is, and how much of it a
 * network uses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "bench/bench.h"
#include "framework/core/cfg.h"
#include "framework/core/json.h"
#include "framework/io/modelgen.h"

void wh_cmd_bench_usage(void)
{
    printf("usage: whittle bench peak [--threads N] [--runs N] [--json]\n"
           "       whittle bench ops [--threads N] [--runs N] [--json]\n"
           "       whittle bench net (--cfg CFG | --model NAME) [--size N] [--batch B] [--mode train|infer]\n"
           "                         [--runs N] [--threads N] [--peak GFLOPS] [--layout plain|blocked]\n"
           "                         [--no-check-finite]\n"
           "                         [--profile] [--json]\n\n"
           "peak: the machine's single-precision peak (an FMA loop on every thread, and on one) and its\n"
           "memory bandwidth (a stream triad over 192 MiB), medians of --runs passes (default 5).\n"
           "ops: every operation of a training step at YOLOv4 shapes (416, batch 1): convolutions with\n"
           "BN and mish (inference, training forward, backward), activations, pools, upsample, route,\n"
           "shortcut, yolo loss, attention loss, sparsity update, SGD step; GFLOP/s against the FMA peak\n"
           "or GB/s against the triad.\n"
           "net: a network with random weights and inputs, 2 warm-up then --runs timed forward passes\n"
           "(infer: the inference network) or training steps (train: forward, loss on random\n"
           "boxes, backward, SGD step, as the trainer with subdivisions 1). Prints img/s, the\n"
           "convolutions' GFLOP/s (a training step counts 3x the forward) against the peak (measured\n"
           "first unless --peak gives it), and the peak resident memory.\n"
           "  --model NAME          yolov4-tiny (default), yolov4, yolov3, yolov3-tiny (20 classes)\n"
           "  --size N              input size (default: the cfg's; --model: 416)\n"
           "  --batch B             (default 1)\n"
           "  --mode train|infer    (default infer)\n"
           "  --layout plain|blocked  activations between layers in NCHW, or (default) in oneDNN's\n"
           "                        blocked layout wherever a layer's channels fill whole blocks\n"
           "  --profile             time every layer on its own and print a per-layer table\n"
           "  --no-check-finite     train: without the trainer's NaN/infinity check of every output and gradient\n"
           "The OpenMP wait policy in force is printed: set OMP_WAIT_POLICY=passive on a shared machine.\n");
}

/* OMP_WAIT_POLICY as set (escaped: printed inside JSON strings) */
static const char *wh__wait(void)
{
    static char buf[128];
    const char *w = getenv("OMP_WAIT_POLICY");
    return wh_json_escape(buf, sizeof(buf), w ? w : "default");
}

/* --threads N --runs N --json, the options of peak and ops; 0 or -1 after printing. */
static int wh__simple_options(int argc, char **argv, const char *mode, int *threads, int *runs, int *json)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--threads")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 4096, threads)) return -1;
        } else if (!strcmp(a, "--runs")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 1000, runs)) return -1;
        } else if (!strcmp(a, "--json")) {
            *json = 1;
        } else {
            fprintf(stderr, "whittle: error: bench %s: unknown option '%s'\n", mode, a);
            return -1;
        }
    }
    return 0;
}

static int wh__peak(int argc, char **argv)
{
    int threads = 0, runs = 5, json = 0;
    if (wh__simple_options(argc, argv, "peak", &threads, &runs, &json)) return 2;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_bench_peak p;
    if (wh_bench_peak_measure(threads, runs, &p, &ctx) != WH_OK) return wh_app_fail(&ctx);
    if (json)
        printf("{\"bench\": \"peak\", \"threads\": %d, \"omp_wait_policy\": \"%s\", \"runs\": %d, "
               "\"fma_gflop_per_s\": %.1f, \"fma_gflop_per_s_one_thread\": %.1f, \"triad_gb_per_s\": %.2f}\n",
               p.threads, wh__wait(), runs, p.fma_gflops, p.fma_gflops_one, p.triad_gbs);
    else
        printf("peak (%d threads, OMP_WAIT_POLICY %s, medians of %d): FMA %.1f GFLOP/s (%.1f on one thread), "
               "triad %.2f GB/s\n",
               p.threads, wh__wait(), runs, p.fma_gflops, p.fma_gflops_one, p.triad_gbs);
    return 0;
}

/* The per-layer table of --profile: each layer's median forward and backward
 * time, and for convolutions the rate against the peak (a backward counts 2
 * forwards: data and weights); then the totals per layer type. */
static void wh__print_profile(const wh_bench_net_result *r, int train, double peak)
{
    printf("\n| layer | type | what | output | layout | fwd ms | fwd %% peak |%s\n", train ? " bwd ms | bwd % peak |" : "");
    printf("|---|---|---|---|---|---|---|%s\n", train ? "---|---|" : "");
    double tot = 0;
    for (int i = 0; i < r->n_layers; i++) tot += r->layers[i].fwd_s + r->layers[i].bwd_s;
    const char *types[16];
    double tt[16] = {0};
    int nt = 0;
    for (int i = 0; i < r->n_layers; i++) {
        const wh_bench_layer_time *e = &r->layers[i];
        char fp[16] = "", bp[16] = "";
        if (e->gflop > 0) {
            snprintf(fp, sizeof(fp), "%.0f", 100 * e->gflop / e->fwd_s / peak);
            if (e->bwd_s > 0) snprintf(bp, sizeof(bp), "%.0f", 100 * 2 * e->gflop / e->bwd_s / peak);
        }
        printf("| %d | %s | %s | %dx%dx%d | %s | %.2f | %s |", e->index, e->type, e->what, e->out.w, e->out.h,
               e->out.c, wh_layout_name(e->layout), 1e3 * e->fwd_s, fp);
        if (train) printf(" %.2f | %s |", 1e3 * e->bwd_s, bp);
        printf("\n");
        int k = 0;
        while (k < nt && strcmp(types[k], e->type)) k++;
        if (k == nt && nt < 16) types[nt++] = e->type;
        if (k < 16) tt[k] += e->fwd_s + e->bwd_s;
    }
    printf("\nper type (forward%s, sum of the layers' medians %.1f ms):", train ? " + backward" : "", 1e3 * tot);
    for (int k = 0; k < nt; k++) printf(" %s %.1f ms (%.0f %%)%s", types[k], 1e3 * tt[k], 100 * tt[k] / tot, k + 1 < nt ? "," : "\n");
}

static int wh__net(int argc, char **argv)
{
    const char *cfg_path = NULL, *model = NULL, *mode = "infer";
    int size = 0, batch = 1, runs = 5, threads = 0, json = 0, plain = 0, profile = 0, no_check = 0;
    double peak = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--cfg")) {
            if (!(cfg_path = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--model")) {
            if (!(model = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--mode")) {
            if (!(mode = wh_app_value(argc, argv, &i))) return 2;
            if (strcmp(mode, "train") && strcmp(mode, "infer")) {
                fprintf(stderr, "whittle: error: --mode: expected train or infer, got '%s'\n", mode);
                return 2;
            }
        } else if (!strcmp(a, "--size")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 32, 4096, &size)) return 2;
        } else if (!strcmp(a, "--batch")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 4096, &batch)) return 2;
        } else if (!strcmp(a, "--runs")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 100000, &runs)) return 2;
        } else if (!strcmp(a, "--threads")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 4096, &threads)) return 2;
        } else if (!strcmp(a, "--peak")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 1e-3, 1e9, &peak)) return 2;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--profile")) {
            profile = 1;
        } else if (!strcmp(a, "--no-check-finite")) {
            no_check = 1;
        } else if (!strcmp(a, "--layout")) {
            if (!(v = wh_app_value(argc, argv, &i))) return 2;
            if (strcmp(v, "plain") && strcmp(v, "blocked")) {
                fprintf(stderr, "whittle: error: --layout: expected plain or blocked, got '%s'\n", v);
                return 2;
            }
            plain = !strcmp(v, "plain");
        } else {
            fprintf(stderr, "whittle: error: bench net: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (cfg_path && model) {
        fprintf(stderr, "whittle: error: bench net: give --cfg or --model, not both\n");
        return 2;
    }
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *text = NULL;
    if (cfg_path) {
        if (wh_read_text_file(cfg_path, &text, &ctx) != WH_OK) return wh_app_fail(&ctx);
    } else {
        wh_model_opts mo;
        wh_model_opts_default(&mo);
        mo.name = model ? model : "yolov4-tiny";
        mo.classes = 20;
        if (size) mo.width = mo.height = size;
        if (wh_model_generate(&mo, &text, &ctx) != WH_OK) return wh_app_fail(&ctx);
    }
    const char *name = cfg_path ? cfg_path : model ? model : "yolov4-tiny";
    wh_bench_peak pk = {0};
    if (peak <= 0) {
        if (wh_bench_peak_measure(threads, 5, &pk, &ctx) != WH_OK) {
            free(text);
            return wh_app_fail(&ctx);
        }
        peak = pk.fma_gflops;
    }
    const wh_bench_net_opts o = {.mode = !strcmp(mode, "train") ? WH_BENCH_TRAIN : WH_BENCH_INFER,
                                 .batch = batch,
                                 .width = cfg_path ? size : 0,
                                 .height = cfg_path ? size : 0,
                                 .runs = runs,
                                 .threads = threads,
                                 .plain = plain,
                                 .no_check = no_check,
                                 .profile = profile};
    wh_bench_net_result r;
    const wh_status st = wh_bench_net(text, name, &o, &r, &ctx);
    free(text);
    if (st != WH_OK) return wh_app_fail(&ctx);
    const double pct = 100 * r.gflop_per_s / peak;
    if (json) {
        char ename[1024];
        printf("{\"bench\": \"net\", \"net\": \"%s\", \"mode\": \"%s\", \"size\": %d, \"batch\": %d, \"threads\": %d, "
               "\"omp_wait_policy\": \"%s\", \"runs\": %d, \"median_s\": %.5f, \"min_s\": %.5f, \"img_per_s\": %.3f, "
               "\"conv_gflop_per_img\": %.4f, \"gflop_per_s\": %.2f, \"peak_gflop_per_s\": %.1f, \"pct_of_peak\": "
               "%.1f, \"peak_rss_mb\": %.1f, \"params\": %zu",
               wh_json_escape(ename, sizeof(ename), name), mode, r.width, r.batch, r.threads, wh__wait(), runs, r.median_s, r.min_s, r.img_per_s,
               r.conv_gflop_per_img, r.gflop_per_s, peak, pct, r.peak_rss_mb, r.params);
        printf(", \"layout\": \"%s\", \"arena_mb\": {\"params\": %zu, \"grads\": %zu, \"activations\": %zu, "
               "\"scratch\": %zu, \"activation_grads\": %zu, \"outputs\": %zu}",
               plain ? "plain" : "blocked", r.arena_mb[0], r.arena_mb[1], r.arena_mb[2], r.arena_mb[3], r.arena_mb[4],
               r.arena_mb[5]);
        if (o.mode == WH_BENCH_TRAIN)
            printf(", \"theory_mb\": %.1f, \"rss_over_theory\": %.3f", r.theory_mb, r.peak_rss_mb / r.theory_mb);
        if (r.n_layers) {
            printf(", \"layers\": [");
            for (int i = 0; i < r.n_layers; i++) {
                const wh_bench_layer_time *e = &r.layers[i];
                printf("%s{\"i\": %d, \"type\": \"%s\", \"layout\": \"%s\", \"fwd_ms\": %.3f, \"bwd_ms\": %.3f, "
                       "\"gflop\": %.4f}",
                       i ? ", " : "", e->index, e->type, wh_layout_name(e->layout), 1e3 * e->fwd_s, 1e3 * e->bwd_s,
                       e->gflop);
            }
            printf("]");
        }
        if (o.mode == WH_BENCH_TRAIN)
            printf(", \"phase_ms\": {\"forward\": %.2f, \"loss\": %.2f, \"backward\": %.2f, \"sgd_step\": %.2f}",
                   1e3 * r.phase_s[0], 1e3 * r.phase_s[1], 1e3 * r.phase_s[2], 1e3 * r.phase_s[3]);
        printf("}\n");
    } else {
        printf("%s %s %dx%d batch %d, %d threads (OMP_WAIT_POLICY %s): %.2f img/s (median %.1f ms of %d), "
               "%.1f GFLOP/s = %.1f %% of %.1f peak, peak RSS %.0f MB\n",
               name, mode, r.width, r.height, r.batch, r.threads, wh__wait(), r.img_per_s, 1e3 * r.median_s, runs,
               r.gflop_per_s, pct, peak, r.peak_rss_mb);
        if (o.mode == WH_BENCH_TRAIN)
            printf("  phases (ms): forward %.1f, loss %.1f, backward %.1f, SGD step %.1f\n", 1e3 * r.phase_s[0],
                   1e3 * r.phase_s[1], 1e3 * r.phase_s[2], 1e3 * r.phase_s[3]);
        printf("  layout %s; arenas (MB): parameters %zu, gradients %zu, layer outputs %zu, other activations %zu, "
               "scratch %zu, activation gradients %zu\n",
               plain ? "plain NCHW" : "blocked", r.arena_mb[0], r.arena_mb[1], r.arena_mb[5], r.arena_mb[2],
               r.arena_mb[3], r.arena_mb[4]);
        if (o.mode == WH_BENCH_TRAIN)
            printf("  memory in theory (parameters, gradients, momentum, activations the backward reads, the most "
                   "activation gradients alive at once): %.0f MB; peak RSS / theory = %.2f\n",
                   r.theory_mb, r.peak_rss_mb / r.theory_mb);
        if (r.n_layers) wh__print_profile(&r, o.mode == WH_BENCH_TRAIN, peak);
    }
    wh_bench_net_result_free(&r);
    return 0;
}

typedef struct wh__ops_print {
    int json, first;
    double peak, triad;
} wh__ops_print;

static void wh__op(void *user, const wh_bench_op *op)
{
    wh__ops_print *p = user;
    const int conv = isfinite(op->gflop_per_s);
    const double pct = conv ? 100 * op->gflop_per_s / p->peak : 100 * op->gb_per_s / p->triad;
    if (p->json) {
        printf("%s  {\"op\": \"%s\", \"shape\": \"%s\", \"ms\": %.4f, ", p->first ? "" : ",\n", op->name, op->shape,
               1e3 * op->seconds);
        if (conv)
            printf("\"gflop_per_s\": %.2f, \"pct_of_peak\": %.1f}", op->gflop_per_s, pct);
        else
            printf("\"gb_per_s\": %.2f, \"pct_of_triad\": %.1f}", op->gb_per_s, pct);
    } else {
        printf("| %s | %s | %.3f | %s%.1f %s | %.0f %% |\n", op->name, op->shape, 1e3 * op->seconds, "",
               conv ? op->gflop_per_s : op->gb_per_s, conv ? "GFLOP/s" : "GB/s", pct);
    }
    p->first = 0;
    fflush(stdout);
}

static int wh__ops(int argc, char **argv)
{
    int threads = 0, runs = 7, json = 0;
    if (wh__simple_options(argc, argv, "ops", &threads, &runs, &json)) return 2;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ctx_set_threads(&ctx, threads);
    wh_bench_peak pk;
    if (wh_bench_peak_measure(threads, 5, &pk, &ctx) != WH_OK) return wh_app_fail(&ctx);
    wh__ops_print p = {json, 1, pk.fma_gflops, pk.triad_gbs};
    if (json)
        printf("{\"bench\": \"ops\", \"threads\": %d, \"omp_wait_policy\": \"%s\", \"runs\": %d, "
               "\"peak_gflop_per_s\": %.1f, \"triad_gb_per_s\": %.2f, \"ops\": [\n",
               pk.threads, wh__wait(), runs, pk.fma_gflops, pk.triad_gbs);
    else
        printf("ops at YOLOv4 shapes (416, batch 1), %d threads, OMP_WAIT_POLICY %s, medians of %d; peak %.1f "
               "GFLOP/s (FMA loop), %.2f GB/s (triad)\n\n| op | shape | ms | rate | of peak (conv: FMA; others: "
               "triad) |\n|---|---|---|---|---|\n",
               pk.threads, wh__wait(), runs, pk.fma_gflops, pk.triad_gbs);
    if (wh_bench_ops(runs, wh__op, &p, &ctx) != WH_OK) {
        if (json) printf("]}\n");
        return wh_app_fail(&ctx);
    }
    if (json) printf("\n]}\n");
    return 0;
}

int wh_cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "whittle: error: bench needs a mode: peak, net or ops (see whittle bench --help)\n");
        return 2;
    }
    if (!strcmp(argv[1], "peak")) return wh__peak(argc, argv);
    if (!strcmp(argv[1], "net")) return wh__net(argc, argv);
    if (!strcmp(argv[1], "ops")) return wh__ops(argc, argv);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        wh_cmd_bench_usage();
        return 0;
    }
    fprintf(stderr, "whittle: error: bench: unknown mode '%s' (known: peak, net, ops)\n", argv[1]);
    return 2;
}
