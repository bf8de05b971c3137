/* bench_prune: group channel pruning of a generated model, its sizes and its
 * measured speed.
 *
 *   bench_prune [--model yolov4] [--classes 20] [--size 416] [--groups scale-module]
 *               [--ratios 0.18,0.50,0.97,0.865,0.68] [--target-params 0.647]
 *               [--round-to 1,8,16] [--runs 3] [--batch8 1] [--seed 1] [--threads N]
 *               [--save-cfg PREFIX]   (writes PREFIX-r<round-to>.cfg, for bench_forward --cfg)
 *
 * The model gets darknet's random initialisation and random BN scales
 * (|gamma| uniform in (0, 1), seeded): a stand-in for a sparse-trained
 * network when none is at hand. For each round-to value the budget search
 * finds the ratios (the given ones, scaled) that remove the target share of
 * parameters; the compact network is built (constants folded) and timed
 * against the full one in interleaved rounds (medians; see wh__time_ab).
 * One JSON line per round-to value: parameters, conv
 * FLOPs, latency at batch 1 (and 8), and the ratios of each; the group
 * table of the first goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_util.h"
#include "framework/io/modelgen.h"
#include "framework/core/json.h"
#include "pruning/prune.h"

static int wh__list(const char *v, double *out, int max)
{
    int n = 0;
    for (const char *p = v; *p && n < max;) {
        char *end;
        out[n++] = strtod(p, &end);
        if (end == p) return -1;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

static wh_status wh__build(const char *text, int batch, wh_net **net, wh_ctx *ctx)
{
    wh_cfg *cfg = NULL;
    wh_net_opts no = {.batch = batch, .blocked = 1};
    WH_TRY(wh_cfg_parse_string(text, "bench.cfg", &cfg, ctx));
    wh_status st = wh_net_create(cfg, &no, net, ctx);
    wh_cfg_free(cfg);
    return st;
}

static wh_status wh__ready(const char *text, int batch, wh_net **net, wh_ctx *ctx)
{
    WH_TRY(wh__build(text, batch, net, ctx));
    wh_net_init_weights(*net, 2);
    for (size_t i = 0; i < wh_shape_count((*net)->in_shape); i++) (*net)->input[i] = (float)(i % 251) / 251.f;
    return wh_net_forward(*net, 0, ctx); /* warm-up */
}

/* Median seconds of runs forwards of a and of b, interleaved so that a
 * shared machine's slow spells hit both alike: each round runs a twice and
 * times the second, then b the same way. The untimed pass re-warms caches
 * and pages after the other network ran; without it every timed pass pays a
 * cold start of similar size for both, which biases the ratio towards 1. */
static wh_status wh__time_ab(const char *ta, const char *tb, int batch, int runs, double *sa, double *sb,
                             wh_ctx *ctx)
{
    wh_net *a = NULL, *b = NULL;
    double *t = malloc(2 * (size_t)runs * sizeof(double));
    wh_status st = t ? WH_OK : wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (st == WH_OK) st = wh__ready(ta, batch, &a, ctx);
    if (st == WH_OK) st = wh__ready(tb, batch, &b, ctx);
    for (int r = 0; st == WH_OK && r < runs; r++) {
        st = wh_net_forward(a, 0, ctx);
        double t0 = wh_bench_now();
        if (st == WH_OK) st = wh_net_forward(a, 0, ctx);
        t[r] = wh_bench_now() - t0;
        if (st == WH_OK) st = wh_net_forward(b, 0, ctx);
        t0 = wh_bench_now();
        if (st == WH_OK) st = wh_net_forward(b, 0, ctx);
        t[runs + r] = wh_bench_now() - t0;
    }
    if (st == WH_OK) {
        *sa = wh_bench_median(t, runs);
        *sb = wh_bench_median(t + runs, runs);
    }
    free(t);
    wh_net_destroy(a);
    wh_net_destroy(b);
    return st;
}

int main(int argc, char **argv)
{
    wh_model_opts mo;
    wh_model_opts_default(&mo);
    mo.classes = 20;
    const char *groups = "scale-module";
    double ratios[64], target = 0.647, rounds[8] = {1, 8, 16};
    int n_ratios = wh__list("0.18,0.50,0.97,0.865,0.68", ratios, 64), n_rounds = 3, runs = 3, batch8 = 1,
        threads = 0;
    unsigned long seed = 1;
    const char *save = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_prune: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model")) mo.name = v;
        else if (!strcmp(a, "--classes")) mo.classes = atoi(v);
        else if (!strcmp(a, "--size")) mo.width = mo.height = atoi(v);
        else if (!strcmp(a, "--groups")) groups = v;
        else if (!strcmp(a, "--ratios")) n_ratios = !strcmp(v, "none") ? 0 : wh__list(v, ratios, 64);
        else if (!strcmp(a, "--target-params")) target = atof(v);
        else if (!strcmp(a, "--round-to")) n_rounds = wh__list(v, rounds, 8);
        else if (!strcmp(a, "--runs")) runs = atoi(v);
        else if (!strcmp(a, "--batch8")) batch8 = atoi(v);
        else if (!strcmp(a, "--seed")) seed = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--save-cfg")) save = v;
        else {
            fprintf(stderr, "bench_prune: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (n_ratios < 0 || n_rounds < 1 || runs < 1 || threads < 0) {
        fprintf(stderr, "bench_prune: bad --ratios/--round-to/--runs/--threads\n");
        return 2;
    }
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ctx_set_threads(&ctx, threads);
    char *text = NULL;
    wh_net *net = NULL;
    if (wh_model_generate(&mo, &text, &ctx) != WH_OK || wh__build(text, 1, &net, &ctx) != WH_OK) {
        fprintf(stderr, "bench_prune: %s\n", ctx.msg);
        return 1;
    }
    wh_net_init_weights(net, 1);
    uint64_t s = seed;
    for (int i = 0; i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++)
            if (!strcmp(net->layers[i].params[p].name, "scales"))
                for (size_t c = 0; c < net->layers[i].params[p].count; c++) {
                    s = s * 6364136223846793005ull + 1442695040888963407ull;
                    net->layers[i].params[p].data[c] = (float)((s >> 40) + 1) / 16777217.f;
                }
    wh_depgraph g;
    wh_grouping gr;
    if (wh_depgraph_build(net, NULL, &g, &ctx) != WH_OK || wh_grouping_make(groups, NULL, net, &g, &gr, &ctx) != WH_OK) {
        fprintf(stderr, "bench_prune: %s\n", ctx.msg);
        return 1;
    }
    double full_s[2] = {0, 0};
#ifdef _OPENMP
    const int nt = omp_get_max_threads();
#else
    const int nt = 1;
#endif
    const char *wait = getenv("OMP_WAIT_POLICY");
    char egroups[512], ewait[128];
    for (int r = 0; r < n_rounds; r++) {
        wh_prune_opts o;
        wh_prune_opts_default(&o);
        o.ratios = n_ratios ? ratios : NULL;
        o.n_ratios = n_ratios;
        o.target_params = target;
        o.round_to = (int)rounds[r];
        wh_prune_plan p;
        char *small_cfg = NULL;
        wh_net *small = NULL;
        wh_net_opts no = {.batch = 1, .blocked = 1};
        double t[2] = {0, 0};
        if (wh_prune_plan_make(net, &g, &gr, &o, &p, &ctx) != WH_OK ||
            wh_prune_build(net, text, &g, p.keep, 1, &no, &small_cfg, &small, &ctx) != WH_OK ||
            wh__time_ab(text, small_cfg, 1, runs, &full_s[0], &t[0], &ctx) != WH_OK ||
            (batch8 && wh__time_ab(text, small_cfg, 8, runs, &full_s[1], &t[1], &ctx) != WH_OK)) {
            fprintf(stderr, "bench_prune: %s\n", ctx.msg);
            return 1;
        }
        if (save) {
            char path[4096];
            snprintf(path, sizeof(path), "%s-r%d.cfg", save, o.round_to);
            FILE *f = fopen(path, "w");
            if (!f || fputs(small_cfg, f) < 0 || fclose(f)) {
                fprintf(stderr, "bench_prune: cannot write %s\n", path);
                return 1;
            }
        }
        if (r == 0)
            for (int k = 0; k < p.n_groups; k++)
                fprintf(stderr, "group %-22s channels %6d kept %6d (pruned %5.1f %%, ratio asked %.3f)\n",
                        p.group_name[k], p.group_channels[k], p.group_kept[k],
                        100.0 * (p.group_channels[k] - p.group_kept[k]) / p.group_channels[k], p.group_ratio[k]);
        printf("{\"bench\": \"prune\", \"model\": \"%s\", \"classes\": %d, \"size\": %d, \"groups\": \"%s\", "
               "\"round_to\": %d, \"threads\": %d, \"omp_wait_policy\": \"%s\", \"runs\": %d, \"scale\": %.4f, "
               "\"params\": [%zu, %zu], \"params_ratio\": %.4f, \"conv_gflops\": [%.3f, %.3f], \"flops_ratio\": %.4f, "
               "\"latency_b1_ms\": [%.1f, %.1f], \"latency_b1_ratio\": %.4f",
               mo.name, mo.classes, mo.width, wh_json_escape(egroups, sizeof(egroups), groups), o.round_to, nt,
               wh_json_escape(ewait, sizeof(ewait), wait ? wait : "default"), runs, p.scale,
               p.before.params, p.after.params, (double)p.after.params / p.before.params, p.before.conv_flops / 1e9,
               p.after.conv_flops / 1e9, p.after.conv_flops / p.before.conv_flops, full_s[0] * 1e3, t[0] * 1e3,
               t[0] / full_s[0]);
        if (batch8)
            printf(", \"latency_b8_ms\": [%.1f, %.1f], \"latency_b8_ratio\": %.4f", full_s[1] * 1e3, t[1] * 1e3,
                   t[1] / full_s[1]);
        printf("}\n");
        fflush(stdout);
        free(small_cfg);
        wh_net_destroy(small);
        wh_prune_plan_free(&p);
    }
    wh_grouping_free(&gr);
    wh_depgraph_free(&g);
    wh_net_destroy(net);
    free(text);
    return 0;
}
