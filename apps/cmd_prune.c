/* whittle prune CKPT --groups NAME [...] -o OUT: stage 2, group channel
 * pruning into a physically smaller network, with its report. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <omp.h>
#include <sys/stat.h>

#include "apps.h"
#include "framework/io/checkpoint.h"
#include "framework/io/darknet_weights.h"
#include "framework/core/fileio.h"
#include "framework/train/trainer.h"
#include "pruning/prune.h"

void wh_cmd_prune_usage(void)
{
    char names[256];
    wh_grouping_names(names, sizeof(names));
    printf("usage: whittle prune CKPT --groups NAME [--ratios r1,r2,... | --ratio R | --target-params X |\n"
           "                    --target-flops X] [--merge union|majority] [--round-to N] [-o OUT | --dry-run]\n\n"
           "Stage 2: cuts the network's prunable channels into groups, prunes each group at its\n"
           "own |gamma| threshold and writes the physically smaller network.\n"
           "  --groups NAME         grouping plug-in: %s;\n"
           "                        or a groups file (e.g. models/yolov4.groups: name first-last ratio)\n"
           "  --ratios r1,r2,...    one prune ratio per group, in the report's group order\n"
           "  --ratio R             one ratio for every group without its own (default 0.5)\n"
           "  --target-params X     search the ratios (a common scale on the groups' ratios) so that\n"
           "                        X of the parameters go: 0.647, 64.7%% or -64.7%%\n"
           "  --target-flops X      the same for conv FLOPs\n"
           "  --merge union|majority  one mask per shortcut-coupled set: kept if any / most keep (default union)\n"
           "  --round-to N          kept channels per layer a multiple of N (SIMD-friendly), default 1\n"
           "  --min-keep N          a layer keeps at least N channels (default 8) and 1 %%\n"
           "  --all-bn-convs        also prune convs feeding SPP pools, upsamples and grouped routes\n"
           "  --exclude I,J         layer indices never pruned\n"
           "  --no-fold             drop the pruned channels' constants instead of folding them\n"
           "  --data D              re-estimate the pruned network's batch-norm statistics on training\n"
           "                        images of D (EagleEye's adaptive batch norm): the channels behind a\n"
           "                        pruned one see other inputs than the statistics were kept for\n"
           "  --train-split S       D's split for that (default train)\n"
           "  --bn-batches N        how many batches of 16 unaugmented images (default 50 with --data)\n"
           "  --darknet             also write OUT/pruned.weights (darknet format)\n"
           "  --bench-runs N        latency: median of N forward passes at batch 1 and 8 (default 5; 0: off)\n"
           "  --threads N           OpenMP threads (default: all cores)\n"
           "  -o OUT                a new (or empty) folder: pruned.cfg, pruned.h5, report.md, report.json\n"
           "  --dry-run             print the report only\n",
           names);
}

/* "0.647", "64.7%" or "-64.7%" -> 0.647 */
static int wh__fraction(const char *flag, const char *v, double *out)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", *v == '-' ? v + 1 : v);
    size_t n = strlen(buf);
    const int pct = n > 0 && buf[n - 1] == '%';
    if (pct) buf[n - 1] = 0;
    if (wh_app_double(flag, buf, 0, pct ? 99.999 : 0.99999, out)) return -1;
    if (pct) *out /= 100.0;
    return 0;
}

static int wh__dir_usable(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT;
    int empty = 1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

static double wh__file_bytes(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0 ? (double)s.st_size : 0.0;
}

/* batch-b copies of the full and compact networks, parameters copied */
static wh_status wh__rebatch(const wh_net *src, const char *cfg_text, int batch, wh_net **out, wh_ctx *ctx)
{
    *out = NULL;
    wh_cfg *cfg = NULL;
    wh_net_opts no = {.batch = batch, .blocked = 1};
    WH_TRY(wh_cfg_parse_string(cfg_text, "pruned.cfg", &cfg, ctx));
    wh_status st = wh_net_create(cfg, &no, out, ctx);
    wh_cfg_free(cfg);
    return st == WH_OK ? wh_net_copy_params(*out, src, 0, ctx) : st;
}

static void wh__fill_input(wh_net *net)
{
    uint64_t s = 12345;
    const size_t n = (size_t)net->in_shape.n * net->in_shape.c * net->in_shape.h * net->in_shape.w;
    for (size_t t = 0; t < n; t++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        net->input[t] = (float)((s >> 40) & 0xffff) / 65535.f;
    }
}

int wh_cmd_prune(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_prune_opts po;
    wh_prune_opts_default(&po);
    const char *ckpt = NULL, *groups = NULL, *out = NULL, *data = NULL, *split = "train";
    int bn_batches = 50;
    double ratios[256];
    int n_ratios = 0, dry = 0, threads = 0, fold = 1, darknet = 0, bench_runs = 5, exclude[1024], n_exclude = 0;
    wh_depgraph_opts dgo = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--groups")) {
            if (!(groups = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--ratios")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double_list(a, v, 0, 0.999, ratios, 256, &n_ratios))
                return 2;
        } else if (!strcmp(a, "--ratio")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 0, 0.999, &po.ratio)) return 2;
        } else if (!strcmp(a, "--target-params")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh__fraction(a, v, &po.target_params)) return 2;
        } else if (!strcmp(a, "--target-flops")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh__fraction(a, v, &po.target_flops)) return 2;
        } else if (!strcmp(a, "--merge")) {
            if (!(v = wh_app_value(argc, argv, &i))) return 2;
            if (!strcmp(v, "union")) po.merge = WH_MERGE_UNION;
            else if (!strcmp(v, "majority")) po.merge = WH_MERGE_MAJORITY;
            else {
                fprintf(stderr, "whittle: error: --merge expects union or majority, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--round-to")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 1024, &po.round_to)) return 2;
        } else if (!strcmp(a, "--min-keep")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 1 << 20, &po.min_keep)) return 2;
        } else if (!strcmp(a, "--exclude")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int_list(a, v, 0, 1 << 20, exclude, 1024, &n_exclude))
                return 2;
        } else if (!strcmp(a, "--bench-runs")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 1000, &bench_runs)) return 2;
        } else if (!strcmp(a, "--threads")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 4096, &threads)) return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            if (!(out = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--data")) {
            if (!(data = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--train-split")) {
            if (!(split = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--bn-batches")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 100000, &bn_batches)) return 2;
        } else if (!strcmp(a, "--all-bn-convs")) {
            dgo.all_bn_convs = 1;
        } else if (!strcmp(a, "--no-fold")) {
            fold = 0;
        } else if (!strcmp(a, "--darknet")) {
            darknet = 1;
        } else if (!strcmp(a, "--dry-run")) {
            dry = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "whittle: error: prune: unknown option '%s' (see whittle prune --help)\n", a);
            return 2;
        } else if (!ckpt) {
            ckpt = a;
        } else {
            fprintf(stderr, "whittle: error: prune: one checkpoint expected, got '%s' and '%s'\n", ckpt, a);
            return 2;
        }
    }
    if (!ckpt || !groups || (!out && !dry)) {
        fprintf(stderr, "whittle: error: prune needs CKPT, --groups NAME and -o OUT (or --dry-run); see whittle "
                        "prune --help\n");
        return 2;
    }
    if (po.target_params > 0 && po.target_flops > 0) {
        fprintf(stderr, "whittle: error: --target-params and --target-flops exclude each other\n");
        return 2;
    }
    if (out && !dry && !wh__dir_usable(out)) {
        fprintf(stderr, "whittle: error: %s exists and is not an empty folder: choose a new -o (nothing is "
                        "overwritten)\n", out);
        return 2;
    }
    po.ratios = n_ratios ? ratios : NULL;
    po.n_ratios = n_ratios;
    dgo.exclude = exclude;
    dgo.n_exclude = n_exclude;
    wh_app_threads(&ctx, threads);
    /* a registered name, else a groups file */
    char known[256];
    wh_grouping_names(known, sizeof(known));
    const char *gname = groups, *garg = NULL;
    struct stat sb;
    if (!strstr(known, groups) && (strchr(groups, '/') || strchr(groups, '.') || stat(groups, &sb) == 0)) {
        gname = "file";
        garg = groups;
    } else if (!strncmp(groups, "file:", 5)) {
        gname = "file";
        garg = groups + 5;
    }

    wh_net *full = NULL, *small = NULL, *full8 = NULL, *small8 = NULL;
    char *cfg_text = NULL, *small_cfg = NULL, *md = NULL, *json = NULL;
    wh_depgraph g = {0};
    wh_grouping gr = {0};
    wh_prune_plan plan = {0};
    wh_net_opts no = {.batch = 1, .blocked = 1};
    wh_status st = wh_ckpt_build_net(ckpt, &no, &full, &cfg_text, &ctx);
    if (st == WH_OK) st = wh_depgraph_build(full, &dgo, &g, &ctx);
    if (st == WH_OK) st = wh_grouping_make(gname, garg, full, &g, &gr, &ctx);
    if (st == WH_OK) st = wh_prune_plan_make(full, &g, &gr, &po, &plan, &ctx);
    if (st == WH_OK) st = wh_prune_build(full, cfg_text, &g, plan.keep, fold, &no, &small_cfg, &small, &ctx);
    wh_prune_info info = {.source = ckpt, .grouping = garg ? garg : gname, .opts = &po, .fold = fold,
                          .err_ref = -1, .lat_batch = {1, 8}};
    info.wait_policy = getenv("OMP_WAIT_POLICY");
    info.lat_threads = omp_get_max_threads();
    if (st == WH_OK && bench_runs > 0) {
        /* latency before the full net's gammas are zeroed (values do not matter for time) */
        info.lat_runs = bench_runs;
        st = wh_prune_time_forward(full, bench_runs, &info.lat_before[0], &ctx);
        if (st == WH_OK) st = wh_prune_time_forward(small, bench_runs, &info.lat_after[0], &ctx);
        if (st == WH_OK) st = wh__rebatch(full, cfg_text, 8, &full8, &ctx);
        if (st == WH_OK) st = wh_prune_time_forward(full8, bench_runs, &info.lat_before[1], &ctx);
        wh_net_destroy(full8);
        if (st == WH_OK) st = wh__rebatch(small, small_cfg, 8, &small8, &ctx);
        if (st == WH_OK) st = wh_prune_time_forward(small8, bench_runs, &info.lat_after[1], &ctx);
        wh_net_destroy(small8);
    }
    if (st == WH_OK) {
        /* what folding leaves: the full net with the pruned gammas at zero vs the compact one */
        wh_prune_mask_net(full, &g, plan.keep, 0);
        wh__fill_input(full);
        memcpy(small->input, full->input,
               sizeof(float) * full->in_shape.n * full->in_shape.c * full->in_shape.h * full->in_shape.w);
        st = wh_net_forward(full, 0, &ctx);
        if (st == WH_OK) st = wh_net_forward(small, 0, &ctx);
        if (st == WH_OK) st = wh_prune_output_error(full, small, &info.err_abs, &info.err_ref, &ctx);
    }
    if (st == WH_OK && data) {
        /* after the check above, which compares the surgery with masking */
        wh_dataset *ds = NULL;
        wh_bn_recal_opts ro = {.batches = bn_batches, .batch = 16, .seed = 1};
        st = wh_dataset_open(data, split, &ds, &ctx);
        if (st == WH_OK) st = wh_bn_recalibrate(small, small_cfg, ds, &ro, &ctx);
        wh_dataset_free(ds);
        info.bn_images = bn_batches * 16;
    }
    char path[4096];
    if (st == WH_OK && !dry) {
        if (mkdir(out, 0777) && errno != EEXIST) st = wh_error(&ctx, WH_ERR_IO, "%s: cannot create the folder", out);
        snprintf(path, sizeof(path), "%s/pruned.cfg", out);
        if (st == WH_OK) st = wh_file_write_atomic(path, small_cfg, strlen(small_cfg), &ctx);
        snprintf(path, sizeof(path), "%s/pruned.h5", out);
        wh_ckpt_writer *w = NULL;
        if (st == WH_OK) st = wh_ckpt_create(path, &w, &ctx);
        if (st == WH_OK) st = wh_ckpt_put_net(w, small, small_cfg, &ctx);
        if (st == WH_OK) st = wh_ckpt_put_str(w, "prune/source", ckpt, &ctx);
        if (st == WH_OK) st = wh_ckpt_commit(w, &ctx);
        else if (w) wh_ckpt_abort(w);
        info.bytes_before = wh__file_bytes(ckpt);
        info.bytes_after = wh__file_bytes(path);
        if (st == WH_OK && darknet) {
            snprintf(path, sizeof(path), "%s/pruned.weights", out);
            st = wh_darknet_weights_save(small, path, 0, &ctx);
        }
    }
    if (st == WH_OK) st = wh_prune_report(full, &g, &plan, &info, &md, &json, &ctx);
    if (st == WH_OK && !dry) {
        snprintf(path, sizeof(path), "%s/report.md", out);
        st = wh_file_write_atomic(path, md, strlen(md), &ctx);
        snprintf(path, sizeof(path), "%s/report.json", out);
        if (st == WH_OK) st = wh_file_write_atomic(path, json, strlen(json), &ctx);
    }
    int rc = 0;
    if (st == WH_OK) {
        wh_app_print_warnings(&ctx);
        fputs(md, stdout);
        if (!dry) printf("\nwritten: %s/pruned.cfg %s/pruned.h5%s %s/report.md %s/report.json\n", out, out,
                         darknet ? " pruned.weights" : "", out, out);
    } else {
        rc = wh_app_fail(&ctx);
    }
    free(md);
    free(json);
    free(cfg_text);
    free(small_cfg);
    wh_prune_plan_free(&plan);
    wh_grouping_free(&gr);
    wh_depgraph_free(&g);
    wh_net_destroy(full);
    wh_net_destroy(small);
    return rc;
}
