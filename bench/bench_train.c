/* bench_train: training iterations of a generated model, timed.
 *
 *   bench_train [--model yolov4-tiny] [--classes 20] [--size 416] [--batch 8]
 *               [--runs 5] [--threads N] [--width-multiple 1]
 *
 * One iteration is what the trainer does for one batch with subdivisions=1
 * (bench/lib/net.c: zero the gradients, training forward, every [yolo]
 * layer's loss on random boxes, backward, one SGD step) on random images.
 * After warm-up iterations, --runs are timed; one JSON object gives the
 * median and min seconds per iteration, images per second, the median of
 * each phase, and the convolution GFLOP/s counting a backward as twice a
 * forward. `whittle bench net --mode train` measures the same and also
 * reports % of peak and peak memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "framework/io/modelgen.h"
#include "framework/core/json.h"

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

int main(int argc, char **argv)
{
    wh_model_opts mo;
    wh_model_opts_default(&mo);
    mo.name = "yolov4-tiny";
    mo.classes = 20;
    wh_bench_net_opts o = {.mode = WH_BENCH_TRAIN, .batch = 8, .runs = 5};
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
            else if (!strcmp(a, "--batch")) o.batch = (int)d;
            else if (!strcmp(a, "--runs")) o.runs = (int)d;
            else if (!strcmp(a, "--threads")) o.threads = (int)d;
            else mo.width_multiple = d;
        } else {
            fprintf(stderr, "bench_train: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *text = NULL;
    wh_bench_net_result r;
    if (wh_model_generate(&mo, &text, &ctx) != WH_OK || wh_bench_net(text, mo.name, &o, &r, &ctx) != WH_OK) {
        fprintf(stderr, "bench_train: %s\n", ctx.msg);
        free(text);
        return 1;
    }
    const char *wait = getenv("OMP_WAIT_POLICY");
    char ewait[128];
    printf("{\"bench\": \"train\", \"model\": \"%s\", \"classes\": %d, \"size\": %d, \"width_multiple\": %g, "
           "\"batch\": %d, \"threads\": %d, \"omp_wait_policy\": \"%s\", \"runs\": %d, "
           "\"median_s_per_iter\": %.4f, \"min_s_per_iter\": %.4f, \"img_per_s\": %.2f, "
           "\"median_ms\": {\"forward\": %.1f, \"loss\": %.1f, \"backward\": %.1f, \"sgd_step\": %.1f}, "
           "\"conv_gflop_per_img_fwd\": %.3f, \"train_gflop_per_s\": %.1f, \"peak_rss_mb\": %.0f}\n",
           mo.name, mo.classes, r.width, mo.width_multiple, r.batch, r.threads,
           wh_json_escape(ewait, sizeof(ewait), wait ? wait : "default"), o.runs,
           r.median_s, r.min_s, r.img_per_s, 1e3 * r.phase_s[0], 1e3 * r.phase_s[1], 1e3 * r.phase_s[2],
           1e3 * r.phase_s[3], r.conv_gflop_per_img, r.gflop_per_s, r.peak_rss_mb);
    free(text);
    return 0;
}
