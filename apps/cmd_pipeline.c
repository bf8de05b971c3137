/* whittle pipeline: the whole method in one command, resumable. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps.h"
#include "framework/core/fileio.h"
#include "pipeline.h"

void wh_cmd_pipeline_usage(void)
{
    printf("usage: whittle pipeline [--data DIR] [--model NAME|--cfg CFG] [--budget quick|full|smoke] [--out DIR]\n\n"
           "The whole method: baseline training, dynamic sparse training, group channel pruning,\n"
           "fine-tuning with attention distilling and plain fine-tuning as the control, and the\n"
           "evaluation of every stage. Each stage works in its own folder under OUT; rerunning the\n"
           "same command after an interruption continues where it stopped (finished stages are kept).\n"
           "Writes OUT/results.md, .csv and .json (stage, mAP, parameters, FLOPs, .weights size,\n"
           "latency at batch 1, training img/s) and OUT/charts/*.png.\n\n"
           "  --data PATH           VOC root, VOCdevkit or darknet .data (default: %s, generated)\n"
           "  --train-split S --test-split S   (default train / test; a VOCdevkit: trainval / test)\n"
           "  --model NAME          yolov4-tiny (default), yolov4, yolov3, yolov3-tiny, for the data's classes\n"
           "  --cfg FILE            your own network instead\n"
           "  --init CKPT           start from this trained baseline (e.g. whittle import-darknet's) and\n"
           "                        skip the baseline training; its cfg is the network\n"
           "  --size S              input size for --model (quick: 256, full: the model's 416)\n"
           "  --width-multiple X    channel width for --model (quick: 0.5, full: 1)\n"
           "  --anchors data|darknet   --model's anchors: k-means of the training boxes at --size\n"
           "                        (default, as whittle anchors) or darknet's, scaled to --size\n"
           "  --loss balanced|darknet   --model's loss keys: whittle's balanced loss (default) or\n"
           "                        darknet's (whittle model --loss)\n"
           "  --optimizer sgd|adamw every training stage's optimizer (default sgd; adamw takes a tenth of\n"
           "                        the budget's learning rates)\n"
           "  --no-ema              no weight averaging in the training stages\n"
           "  --mosaic P            share of mosaic images in training (default: the cfg's)\n"
           "  --budget B            quick (default; 4-12 minutes on 2 cores with the embedded data)\n"
           "                        or full (the cfg's schedule, for real data) or smoke (a few\n"
           "                        iterations per stage: checks that every stage runs, in about a\n"
           "                        minute; its mAPs mean nothing)\n"
           "  --out DIR             (default runs/pipeline)\n"
           "  --sched SPEC          the sparsity scheduler (default dynamic:s=<budget's s>)\n"
           "  --groups NAME         the grouping (default scale-module)\n"
           "  --target-params X     share of parameters to remove (quick 0.5, full 0.647)\n"
           "  --at-beta-scale X     scales the paper's attention betas (default 0.01)\n"
           "  --s X                 the sparsity rate given to the scheduler (default 0.005)\n"
           "  --bn-batches N        after pruning, re-estimate batch-norm statistics on N batches of 16\n"
           "                        training images (adaptive batch norm; default 50, smoke 2; 0: off)\n"
           "  --baseline-iterations N --sparse-iterations N --finetune-iterations N   override the budget\n"
           "  --seed N --threads N\n"
           "  --stop-after N        stop each training run after N iterations (then rerun to go on)\n",
           WH_DEFAULT_DATA);
}

/* The newest attention_*.png of dir, copied to dst (0 when there is none). */
static int wh__copy_newest_panel(const char *dir, const char *dst)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "attention_", 10) && strstr(e->d_name, ".png") && strlen(e->d_name) < sizeof(best) &&
            strcmp(e->d_name, best) > 0)
            memcpy(best, e->d_name, strlen(e->d_name) + 1);
    closedir(d);
    if (!best[0]) return 0;
    char src[4096];
    if (wh_pl_path(src, sizeof(src), dir, best)) return -1;
    char *buf = NULL;
    size_t len = 0;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    FILE *fp = fopen(src, "rb");
    if (!fp) return 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[65536];
    size_t k;
    while (m && (k = fread(chunk, 1, sizeof(chunk), fp)) > 0) fwrite(chunk, 1, k, m);
    fclose(fp);
    if (!m) return -1;
    fclose(m);
    const int rc = wh_file_write_atomic(dst, buf, len, &ctx) == WH_OK ? 0 : (wh_app_fail(&ctx), -1);
    free(buf);
    return rc;
}

static double wh__now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int wh_cmd_pipeline(int argc, char **argv)
{
    wh_pl_cli c;
    wh_pl_cli_init(&c, "runs/pipeline");
    const char *sched = NULL, *groups = "scale-module";
    int seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        const int r = wh_pl_cli_option(argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "--sched")) {
            if (!(sched = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--groups")) {
            if (!(groups = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 1 << 30, &seed)) return 2;
        } else {
            fprintf(stderr, "whittle: error: pipeline: unknown option '%s' (see whittle pipeline --help)\n", a);
            return 2;
        }
    }
    const char *out = c.out;
    /* the default scheduler takes the budget's s: known after the budget */
    wh_pl_budget bud;
    char sched_buf[128] = "", extra[512], settings[2048];
    if (!sched) {
        if (wh_pl_budget_get(c.budget, &bud) == 0)
            snprintf(sched_buf, sizeof(sched_buf), "dynamic:s=%g", c.srate >= 0 ? c.srate : bud.s);
        sched = sched_buf;
    }
    snprintf(extra, sizeof(extra), "sched=%.200s\ngroups=%.200s\nseed=%d\n", sched, groups, seed);
    wh_pl p;
    char *cfg = NULL;
    int rc = wh_pl_cli_setup(&c, &p, &cfg, extra, settings, sizeof(settings));
    if (rc) return rc;
    if (wh_pl_settings(out, settings)) {
        free(cfg);
        return 1;
    }
    printf("pipeline: %s, budget %s, data %s -> %s (omp wait policy %s)\n",
           c.init ? c.init : c.cfg_path ? c.cfg_path : c.model, c.budget, c.data, out,
           getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "default");
    fflush(stdout);
    const double t0 = wh__now();

    char d_base[4096], d_sparse[4096], d_prune[4096], d_ft[4096], d_dist[4096];
    char c_base[4096], c_sparse[4096], c_pruned[4096];
    if (wh_pl_fmt(d_base, sizeof(d_base), "%s/1-baseline", out)) rc = 1;
    if (wh_pl_fmt(d_sparse, sizeof(d_sparse), "%s/2-sparse", out)) rc = 1;
    if (wh_pl_fmt(d_prune, sizeof(d_prune), "%s/3-pruned", out)) rc = 1;
    if (wh_pl_fmt(d_ft, sizeof(d_ft), "%s/4-finetune", out)) rc = 1;
    if (wh_pl_fmt(d_dist, sizeof(d_dist), "%s/5-distill", out)) rc = 1;
    if (c.init ? wh_pl_fmt(c_base, sizeof(c_base), "%s", c.init) : wh_pl_fmt(c_base, sizeof(c_base), "%s/last.h5", d_base))
        rc = 1;
    if (wh_pl_fmt(c_sparse, sizeof(c_sparse), "%s/last.h5", d_sparse)) rc = 1;
    if (wh_pl_fmt(c_pruned, sizeof(c_pruned), "%s/pruned.h5", d_prune)) rc = 1;
    wh_pl_row rows[5];
    const uint64_t sd = (uint64_t)seed;
    const wh_pl_stage st_base = {.kind = WH_PL_BASELINE, .name = "baseline", .dir = d_base, .init = c.init, .seed = sd};
    const wh_pl_stage st_sparse = {
        .kind = WH_PL_SPARSE, .name = "sparse", .dir = d_sparse, .init = c_base, .sched = sched, .seed = sd};
    const wh_pl_stage st_ft = {.kind = WH_PL_FINETUNE, .name = "fine-tuned", .dir = d_ft, .init = c_pruned, .seed = sd};
    const wh_pl_stage st_dist = {.kind = WH_PL_DISTILL,
                                 .name = "distilled",
                                 .dir = d_dist,
                                 .init = c_pruned,
                                 .teacher = c_sparse,
                                 .distill = "attention",
                                 .seed = sd};
    if (!rc) rc = wh_pl_train(&p, &st_base, &rows[0]);
    if (rc == WH_PL_DONE) rc = wh_pl_train(&p, &st_sparse, &rows[1]);
    if (rc == WH_PL_DONE) rc = wh_pl_prune(&p, "pruned", c_sparse, groups, d_prune, &rows[2]);
    if (rc == WH_PL_DONE) rc = wh_pl_train(&p, &st_ft, &rows[3]);
    if (rc == WH_PL_DONE) rc = wh_pl_train(&p, &st_dist, &rows[4]);
    if (rc != WH_PL_DONE) {
        free(cfg);
        return rc == WH_PL_STOPPED ? 0 : 1;
    }

    /* tables and charts */
    char charts[4096], path[4096];
    if (wh_pl_fmt(charts, sizeof(charts), "%s/charts", out)) rc = 1;
    rc = wh_pl_write_tables(out, rows, 5, p.metric) || wh_pl_mkdirs(charts);
    const char *dirs[4] = {d_base, d_sparse, d_ft, d_dist};
    const char *names[4] = {"baseline", "sparse", "fine-tune", "distill"};
    const float x0[4] = {0, (float)rows[0].iterations, (float)(rows[0].iterations + rows[1].iterations),
                         (float)(rows[0].iterations + rows[1].iterations)};
    if (!rc) rc = wh_pl_path(path, sizeof(path), charts, "loss.png") || wh_pl_chart_losses(path, dirs, names, x0, 4);
    if (!rc)
        rc = wh_pl_path(path, sizeof(path), charts, "gamma.png") ||
             wh_pl_chart_gamma(path, c_base, c_sparse, (float)rows[0].iterations,
                               (float)(rows[0].iterations + rows[1].iterations));
    if (!rc)
        rc = wh_pl_path(path, sizeof(path), charts, "channels.png") || wh_pl_chart_channels(path, c_sparse, c_pruned);
    if (!rc) rc = wh_pl_path(path, sizeof(path), charts, "attention.png") || wh__copy_newest_panel(d_dist, path);
    free(cfg);
    if (rc) return 1;
    printf("\n");
    wh_pl_table_md(stdout, rows, 5, p.metric);
    const wh_pl_row *b = &rows[0], *pr = &rows[2], *ft = &rows[3], *di = &rows[4];
    printf("\npruning: %+.1f %% parameters, %+.1f %% conv FLOPs, latency x%.2f at batch 1; "
           "distilled - fine-tuned: %+.4f %s\n",
           100 * (pr->params / b->params - 1), 100 * (pr->conv_flops / b->conv_flops - 1),
           pr->latency_ms / b->latency_ms, di->map - ft->map, wh_metric_name(p.metric));
    printf("tables: %s/results.md .csv .json   charts: %s/{loss,gamma,channels,attention}.png   (%.0f s)\n", out,
           charts, wh__now() - t0);
    return 0;
}
