/* The method's stages as resumable steps (apps/pipeline.h). */
#define _XOPEN_SOURCE 700
#include "pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dnnl.h>

#include "apps.h"
#include "distill/distill.h"
#include "framework/io/checkpoint.h"
#include "framework/io/darknet_weights.h"
#include "framework/data/anchors.h"
#include "framework/data/dataset.h"
#include "framework/core/cfg.h"
#include "framework/eval/evaluate.h"
#include "framework/train/optimizer.h"
#include "framework/core/fileio.h"
#include "framework/core/json.h"
#include "framework/io/modelgen.h"
#include "framework/train/trainer.h"
#include "pruning/prune.h"
#include "pruning/sparse_train.h"

int wh_pl_budget_get(const char *name, wh_pl_budget *b)
{
    memset(b, 0, sizeof(*b));
    b->name = name;
    b->base_burn_in = -1;
    /* the sparsity rate under the balanced loss (loss_norm=mean), whose
     * gradients are an order of magnitude below darknet's sums: 0.05, tuned
     * for those, cost the embedded data's baseline 0.15 mAP in 200 sparse
     * iterations (0.823 -> 0.673) where 0.005 costs none (0.862) and the
     * fine-tuned network ends higher (0.718 against 0.654) */
    b->s = 0.005;
    b->at_beta_scale = 0.01; /* the paper's betas overwhelm a small model's detection loss (README) */
    /* pruning re-estimates the batch-norm statistics on 800 training
     * images (whittle prune --data, EagleEye's adaptive batch norm): right
     * after pruning, VOC07 0.090 -> 0.254 and 0.100 -> 0.332 on the embedded
     * data, 0.066 -> 0.105 on the hard proxy (scale-module); the one loss
     * seen, 0.051 -> 0.023, was the hard proxy under the global grouping
     * (README, stage 2). --bn-batches 0 turns it off. */
    b->bn_batches = 50;
    if (!strcmp(name, "quick")) {
        /* about 10 minutes on 2 cores for the embedded dataset's small model */
        b->base_its = 500, b->sparse_its = 200, b->ft_its = 150;
        b->batch = 16, b->subdivisions = 1;
        /* the baseline at the balanced loss's rate (YOLOv5's 0.01: whittle model's cfg) */
        b->base_lr = 0.01f, b->sparse_lr = 0.006f, b->ft_lr = 0.004f;
        b->base_burn_in = 100; /* 50 let the early loss spike and the classes stall */
        b->policy = "cosine";
        b->target_params = 0.5;
        b->latency_runs = 15;
    } else if (!strcmp(name, "full")) {
        /* the cfg's own schedule for the baseline and for sparse training,
         * a quarter of it for the fine-tunes; the paper's YOLOv4 budget */
        b->base_its = -1, b->sparse_its = -1, b->ft_its = -0.25;
        b->target_params = 0.647;
        b->latency_runs = 15;
    } else if (!strcmp(name, "smoke")) {
        b->base_its = 4, b->sparse_its = 4, b->ft_its = 3;
        b->batch = 4, b->subdivisions = 1;
        b->base_lr = 0.004f, b->sparse_lr = 0.004f, b->ft_lr = 0.002f;
        b->base_burn_in = 0;
        b->policy = "cosine";
        b->target_params = 0.5;
        b->latency_runs = 2;
        b->bn_batches = 2;
    } else {
        return -1;
    }
    return 0;
}

int wh_pl_path(char *buf, size_t n, const char *dir, const char *file)
{
    const int k = snprintf(buf, n, "%s/%s", dir, file);
    if (k < 0 || (size_t)k >= n) {
        fprintf(stderr, "whittle: error: path too long: %s/%s\n", dir, file);
        return -1;
    }
    return 0;
}

int wh_pl_fmt(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int k = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= n) {
        fprintf(stderr, "whittle: error: a path or name is too long: %.80s...\n", buf);
        return -1;
    }
    return 0;
}

int wh_pl_mkdirs(const char *dir)
{
    char p[4096];
    if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p)) {
        fprintf(stderr, "whittle: error: path too long: %s\n", dir);
        return -1;
    }
    for (char *c = p + 1;; c++) {
        const int end = *c == '\0';
        if (*c == '/' || end) {
            *c = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                fprintf(stderr, "whittle: error: cannot create %s: %s\n", p, strerror(errno));
                return -1;
            }
            if (end) break;
            *c = '/';
        }
    }
    return 0;
}

static int wh__exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int wh__rm_one(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(path);
}

/* ---- stage.json: the measured row ------------------------------------------ */

static void wh__num(FILE *fp, const char *key, double v, const char *sep)
{
    fprintf(fp, "\"%s\": ", key);
    wh_json_num(fp, "%.10g", v);
    fputs(sep, fp);
}

static void wh__row_json(FILE *fp, const wh_pl_row *r)
{
    fputs("{\"stage\": ", fp);
    wh_json_str(fp, r->stage);
    fputs(", ", fp);
    wh__num(fp, "map", r->map, ", ");
    wh__num(fp, "params", r->params, ", ");
    wh__num(fp, "conv_flops", r->conv_flops, ", ");
    wh__num(fp, "weights_bytes", r->weights_bytes, ", ");
    wh__num(fp, "latency_ms", r->latency_ms, ", ");
    wh__num(fp, "train_img_per_s", r->train_img_s, ", ");
    wh__num(fp, "train_seconds", r->train_s, ", ");
    fprintf(fp, "\"iterations\": %ld}", r->iterations);
}

static int wh__row_save(const char *dir, const wh_pl_row *r)
{
    char path[4096], *buf = NULL;
    size_t len = 0;
    if (wh_pl_path(path, sizeof(path), dir, "stage.json")) return -1;
    FILE *m = open_memstream(&buf, &len);
    if (!m) return -1;
    wh__row_json(m, r);
    fputc('\n', m);
    fclose(m);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const wh_status st = wh_file_write_atomic(path, buf, len, &ctx);
    free(buf);
    return st == WH_OK ? 0 : wh_app_fail(&ctx);
}

/* 1 when dir/stage.json holds a row (read into r), 0 when there is none:
 * absent, unreadable, not JSON, or without the stage's name and iterations
 * (a row is written whole, atomically, when its stage has finished). */
static int wh__row_load(const char *dir, wh_pl_row *r)
{
    char path[4096];
    if (wh_pl_path(path, sizeof(path), dir, "stage.json")) return 0;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_json *j = NULL;
    if (!wh__exists(path) || wh_json_read_file(path, &j, &ctx) != WH_OK) return 0;
    const char *stage = wh_json_get_str(j, "stage");
    const double it = wh_json_get_num(j, "iterations");
    if (!stage || !isfinite(it) || strlen(stage) >= sizeof(r->stage)) {
        wh_json_free(j);
        return 0;
    }
    snprintf(r->stage, sizeof(r->stage), "%s", stage);
    r->map = wh_json_get_num(j, "map");
    r->params = wh_json_get_num(j, "params");
    r->conv_flops = wh_json_get_num(j, "conv_flops");
    r->weights_bytes = wh_json_get_num(j, "weights_bytes");
    r->latency_ms = wh_json_get_num(j, "latency_ms");
    r->train_img_s = wh_json_get_num(j, "train_img_per_s");
    r->train_s = wh_json_get_num(j, "train_seconds");
    r->iterations = (long)it;
    wh_json_free(j);
    return 1;
}

/* ---- measuring ---------------------------------------------------------------- */

static int wh__cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median img/s and the summed seconds of dir/train.jsonl's iterations. */
static void wh__train_speed(const char *dir, wh_pl_row *r)
{
    char path[4096], line[1024];
    r->train_img_s = NAN, r->train_s = NAN;
    if (wh_pl_path(path, sizeof(path), dir, "train.jsonl")) return;
    FILE *fp = fopen(path, "r");
    if (!fp) return;
    double *v = NULL, secs = 0;
    size_t n = 0, cap = 0;
    while (fgets(line, sizeof(line), fp)) {
        const double ips = wh_json_line_num(line, "img_per_s"), s = wh_json_line_num(line, "seconds");
        if (!isfinite(ips)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            double *t = realloc(v, cap * sizeof(double));
            if (!t) break;
            v = t;
        }
        v[n++] = ips;
        if (isfinite(s)) secs += s;
    }
    fclose(fp);
    if (n > 0) {
        qsort(v, n, sizeof(double), wh__cmp_double);
        r->train_img_s = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
        r->train_s = secs;
    }
    free(v);
}

static wh_status wh__measure(const wh_pl *p, const char *ckpt, wh_pl_row *r, wh_ctx *ctx)
{
    wh_net *net = NULL;
    const wh_net_opts one = {.batch = 1, .blocked = 1};
    WH_TRY(wh_ckpt_build_net(ckpt, &one, &net, NULL, ctx));
    wh_net_cost c;
    wh_net_cost_total(net, &c);
    r->params = (double)c.params;
    r->conv_flops = c.conv_flops;
    r->weights_bytes = (double)wh_darknet_weights_size(net);
    double sec = NAN;
    wh_status st = p->b.latency_runs > 0 ? wh_prune_time_forward(net, p->b.latency_runs, &sec, ctx) : WH_OK;
    r->latency_ms = 1e3 * sec;
    wh_net_destroy(net);
    net = NULL;
    WH_TRY(st);
    const wh_net_opts eight = {.batch = 8, .blocked = 1};
    wh_dataset *ds = NULL;
    wh_map_result res = {0};
    wh_eval_opts eo;
    wh_eval_opts_default(&eo);
    r->map = NAN;
    st = wh_ckpt_build_net(ckpt, &eight, &net, NULL, ctx);
    if (st == WH_OK) st = wh_dataset_open(p->data, p->test_split, &ds, ctx);
    if (st == WH_OK && ds->n > 0) st = wh_evaluate(net, ds, &eo, p->metric, &res, NULL, NULL, ctx);
    if (st == WH_OK && ds->n > 0) r->map = res.map;
    wh_map_result_free(&res);
    wh_dataset_free(ds);
    wh_net_destroy(net);
    return st;
}

/* ---- training stages ------------------------------------------------------------ */

typedef struct wh__progress {
    const wh_pl *p;
    const char *name;
    FILE *log;
    long next_print;
} wh__progress;

static void wh__on_event(void *user, const wh_train_event *ev)
{
    wh__progress *g = user;
    switch (ev->kind) {
    case WH_EV_START:
        fprintf(g->log, "train: %s\n", ev->text);
        break;
    case WH_EV_ITER:
        fprintf(g->log, "%6ld/%ld: loss %.4f (box %.4f obj %.4f cls %.4f) lr %.6f %.1f img/s (loader wait %.0f ms)\n",
                ev->iteration, ev->max_batches, ev->loss, ev->box, ev->obj, ev->cls, ev->lr, ev->img_per_s,
                1e3 * ev->load_wait_s);
        if (ev->iteration >= g->next_print || ev->iteration == ev->max_batches) {
            const long eta = (long)(ev->eta_s + 0.5);
            fprintf(g->p->term, "%s  %-12s %5ld/%ld  loss %8.3f  %5.1f img/s  %ld:%02ld left%s",
                    g->p->tty ? "\r\033[K" : "", g->name, ev->iteration, ev->max_batches, ev->loss, ev->img_per_s,
                    eta / 60, eta % 60, g->p->tty ? "" : "\n");
            fflush(g->p->term);
            g->next_print = ev->iteration + (g->p->tty ? 1 : (ev->max_batches + 3) / 4);
        }
        break;
    case WH_EV_EVAL:
        fputs(ev->text, g->log);
        break;
    case WH_EV_CKPT:
        fprintf(g->log, "checkpoint: %s (iteration %ld)\n", ev->text, ev->iteration);
        break;
    case WH_EV_INFO:
        fprintf(g->log, "%s\n", ev->text);
        break;
    }
    fflush(g->log);
}

static long wh__its(const wh_pl *p, double v)
{
    if (v >= 0) return (long)v;
    const long k = (long)(-v * (double)p->cfg_max_batches + 0.5);
    return k > 0 ? k : 1;
}

static void wh__print_row(const wh_pl *p, const wh_pl_row *r, const char *how)
{
    if (p->tty) fputs("\r\033[K", p->term);
    fprintf(p->term, "  %-12s %s: %s %.4f, %.3f M params, %.3f conv GFLOPs, %.1f ms at batch 1\n", r->stage, how,
            wh_metric_name(p->metric), r->map, r->params / 1e6, r->conv_flops / 1e9, r->latency_ms);
    fflush(p->term);
}

int wh_pl_train(const wh_pl *p, const wh_pl_stage *s, wh_pl_row *row)
{
    memset(row, 0, sizeof(*row));
    if (wh__row_load(s->dir, row)) {
        snprintf(row->stage, sizeof(row->stage), "%s", s->name);
        wh__print_row(p, row, "done before");
        return WH_PL_DONE;
    }
    if (wh_pl_mkdirs(s->dir)) return WH_PL_ERROR;
    if (s->kind == WH_PL_BASELINE && s->init) {
        /* a given baseline (e.g. imported darknet weights): measured, not trained */
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_app_threads(&ctx, p->threads);
        snprintf(row->stage, sizeof(row->stage), "%s", s->name);
        if (wh__measure(p, s->init, row, &ctx) != WH_OK) {
            fprintf(stderr, "whittle: error: measuring %s: %s\n", s->init, ctx.msg);
            return WH_PL_ERROR;
        }
        row->train_img_s = NAN, row->train_s = NAN;
        if (wh__row_save(s->dir, row)) return WH_PL_ERROR;
        wh__print_row(p, row, "given");
        return WH_PL_DONE;
    }
    char path[4096];
    if (wh_pl_path(path, sizeof(path), s->dir, "log.txt")) return WH_PL_ERROR;
    wh__progress g = {.p = p, .name = s->name};
    if (!(g.log = fopen(path, "a"))) {
        fprintf(stderr, "whittle: error: cannot write %s: %s\n", path, strerror(errno));
        return WH_PL_ERROR;
    }
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_app_threads(&ctx, p->threads);
    wh_train_opts o;
    wh_train_opts_default(&o);
    o.data = p->data;
    o.train_split = p->train_split;
    o.out_dir = s->dir;
    o.test_split = ""; /* measured below, like every stage */
    o.seed = s->seed;
    o.metric = p->metric;
    o.stop_after = p->stop_after;
    o.on_event = wh__on_event;
    o.event_user = &g;
    if (wh_pl_path(path, sizeof(path), s->dir, "last.h5")) return WH_PL_ERROR;
    o.resume = wh__exists(path);
    const wh_pl_budget *b = &p->b;
    const int base = s->kind == WH_PL_BASELINE;
    o.max_batches = wh__its(p, base ? b->base_its : s->kind == WH_PL_SPARSE ? b->sparse_its : b->ft_its);
    o.ckpt_every = (int)(o.max_batches / 4 > 10 ? o.max_batches / 4 : 10);
    o.batch = b->batch;
    o.subdivisions = b->subdivisions;
    o.learning_rate = base ? b->base_lr : s->kind == WH_PL_SPARSE ? b->sparse_lr : b->ft_lr;
    o.optimizer = p->optimizer;
    if (p->optimizer && !strcmp(p->optimizer, "adamw")) o.learning_rate /= 10; /* the budgets' rates are SGD's */
    o.ema = p->ema;
    o.mosaic = p->mosaic;
    o.burn_in = base ? b->base_burn_in : (b->policy ? 0 : -1);
    o.policy = b->policy;
    char *cfg = NULL;
    if (!o.resume) {
        if (base) {
            o.cfg_text = p->cfg_text;
        } else {
            o.init_ckpt = s->init;
            if (wh_app_ckpt_cfg(s->init, &cfg, &ctx)) {
                fclose(g.log);
                return wh_app_fail(&ctx);
            }
            o.cfg_text = cfg;
        }
    }
    wh_sparse_hook sh;
    wh_distill d;
    int have_sh = 0, have_d = 0;
    wh_status st = WH_OK;
    if (s->kind == WH_PL_SPARSE) {
        st = wh_sparse_hook_init(&sh, s->sched, NULL, 0, &ctx);
        if (st == WH_OK) {
            have_sh = 1;
            wh_sparse_hook_attach(&sh, &o.hooks);
            wh_sparse_hook_stats(&sh, 0, s->dir);
        }
    } else if (s->kind == WH_PL_DISTILL) {
        wh_distill_init(&d, s->teacher, "auto", NULL);
        have_d = 1;
        d.beta_scale = b->at_beta_scale;
        if (strstr(s->distill, "+boxes")) d.kd_box_weight = 100;
        if (strstr(s->distill, "+logits")) d.kd_weight = 0.001;
        wh_distill_dumps(&d, p->data, s->dir, 0, 4);
        wh_distill_attach(&d, &o.hooks);
    }
    wh_train_result res = {0};
    if (st == WH_OK) {
        fprintf(p->term, "  %-12s %s\n", s->name, o.resume ? "resuming" : "starting");
        st = wh_train(&o, &res, &ctx);
    }
    if (have_sh) wh_sparse_hook_free(&sh);
    if (have_d) wh_distill_free(&d);
    free(cfg);
    for (int i = 0; i < ctx.n_warn; i++) fprintf(g.log, "warning: %s\n", ctx.warn[i]);
    fclose(g.log);
    if (st != WH_OK) {
        if (p->tty) fputs("\r\033[K", p->term);
        fprintf(stderr, "whittle: error: stage %s (%s): %s\n", s->name, s->dir, ctx.msg);
        return WH_PL_ERROR;
    }
    if (res.iterations < o.max_batches) {
        if (p->tty) fputs("\r\033[K", p->term);
        fprintf(p->term, "  %-12s stopped at iteration %ld of %ld (--stop-after); rerun the same command to go on\n",
                s->name, res.iterations, o.max_batches);
        return WH_PL_STOPPED;
    }
    snprintf(row->stage, sizeof(row->stage), "%s", s->name);
    row->iterations = res.iterations;
    if (wh_pl_path(path, sizeof(path), s->dir, "last.h5")) return WH_PL_ERROR;
    if (wh__measure(p, path, row, &ctx) != WH_OK) {
        fprintf(stderr, "whittle: error: measuring stage %s: %s\n", s->name, ctx.msg);
        return WH_PL_ERROR;
    }
    wh__train_speed(s->dir, row);
    if (wh__row_save(s->dir, row)) return WH_PL_ERROR;
    wh__print_row(p, row, "done");
    return WH_PL_DONE;
}

/* ---- pruning -------------------------------------------------------------- */

/* Runs argv through the prune command with stdout and stderr in log. */
static int wh__run_logged(int (*cmd)(int, char **), int argc, char **argv, const char *log)
{
    fflush(stdout);
    fflush(stderr);
    const int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        fprintf(stderr, "whittle: error: cannot write %s: %s\n", log, strerror(errno));
        return 1;
    }
    const int out = dup(STDOUT_FILENO), err = dup(STDERR_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    const int rc = cmd(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    close(out);
    close(err);
    return rc;
}

int wh_pl_prune(const wh_pl *p, const char *name, const char *src, const char *groups, const char *dir, wh_pl_row *row)
{
    memset(row, 0, sizeof(*row));
    if (wh__row_load(dir, row)) {
        snprintf(row->stage, sizeof(row->stage), "%s", name);
        wh__print_row(p, row, "done before");
        return WH_PL_DONE;
    }
    char tmp[4096], log[4096], ckpt[4096], target[32];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", dir) >= (int)sizeof(tmp) ||
        snprintf(log, sizeof(log), "%s.log", dir) >= (int)sizeof(log))
        return WH_PL_ERROR;
    /* dir exists without stage.json: pruned, not measured; else start over
     * (the .tmp folder is ours: a pruning interrupted half-way) */
    if (!wh__exists(dir)) {
        if (wh__exists(tmp) && nftw(tmp, wh__rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
            fprintf(stderr, "whittle: error: cannot remove %s: %s\n", tmp, strerror(errno));
            return WH_PL_ERROR;
        }
        snprintf(target, sizeof(target), "%.6g", p->b.target_params);
        char threads[32];
        snprintf(threads, sizeof(threads), "%d", p->threads);
        /* kept counts in multiples of oneDNN's channel block on this CPU, so
         * the pruned network keeps the blocked layout and its speed */
        char round_to[16];
        snprintf(round_to, sizeof(round_to), "%d", dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core ? 16 : 8);
        char bn[16];
        snprintf(bn, sizeof(bn), "%d", p->b.bn_batches);
        char *argv[] = {"prune",         (char *)src,    "--groups", (char *)groups, "--target-params", target,
                        "--round-to",    round_to,       "--bench-runs", "0",     "--threads",       threads,
                        "-o",            tmp,            "--data",   (char *)p->data, "--train-split", (char *)p->train_split,
                        "--bn-batches",  bn,             NULL};
        const int argc = p->b.bn_batches > 0 ? 20 : 14; /* without the last six: no recalibration */
        char recal[64] = "";
        if (p->b.bn_batches > 0)
            snprintf(recal, sizeof(recal), ", batch norm re-estimated on %d images", 16 * p->b.bn_batches);
        fprintf(p->term, "  %-12s pruning %s (groups %s, -%g %% parameters%s)\n", name, src, groups,
                100 * p->b.target_params, recal);
        argv[argc] = NULL;
        if (wh__run_logged(wh_cmd_prune, argc, argv, log) != 0) {
            fprintf(stderr, "whittle: error: stage %s: pruning failed; see %s\n", name, log);
            return WH_PL_ERROR;
        }
        if (rename(tmp, dir) != 0) {
            fprintf(stderr, "whittle: error: cannot rename %s to %s: %s\n", tmp, dir, strerror(errno));
            return WH_PL_ERROR;
        }
    }
    if (wh_pl_path(ckpt, sizeof(ckpt), dir, "prune.log") == 0 && wh__exists(log)) rename(log, ckpt);
    if (wh_pl_path(ckpt, sizeof(ckpt), dir, "pruned.h5")) return WH_PL_ERROR;
    snprintf(row->stage, sizeof(row->stage), "%s", name);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_app_threads(&ctx, p->threads);
    if (wh__measure(p, ckpt, row, &ctx) != WH_OK) {
        fprintf(stderr, "whittle: error: measuring stage %s: %s\n", name, ctx.msg);
        return WH_PL_ERROR;
    }
    row->train_img_s = NAN, row->train_s = NAN;
    if (wh__row_save(dir, row)) return WH_PL_ERROR;
    wh__print_row(p, row, "done");
    return WH_PL_DONE;
}

/* ---- tables --------------------------------------------------------------- */

static void wh__cell(FILE *fp, const char *fmt, double v)
{
    if (isfinite(v))
        fprintf(fp, fmt, v);
    else
        fputs(" - |", fp);
}

void wh_pl_table_md(FILE *fp, const wh_pl_row *rows, int n, wh_metric m)
{
    fprintf(fp, "| stage | %s %s | parameters | conv GFLOPs | .weights MB | latency b1 (ms) | train img/s |\n",
            wh_metric_name(m), wh_metric_title(m));
    fprintf(fp, "|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const wh_pl_row *r = &rows[i];
        fprintf(fp, "| %s |", r->stage);
        wh__cell(fp, " %.4f |", r->map);
        wh__cell(fp, " %.0f |", r->params);
        wh__cell(fp, " %.3f |", r->conv_flops / 1e9);
        wh__cell(fp, " %.2f |", r->weights_bytes / 1e6);
        wh__cell(fp, " %.1f |", r->latency_ms);
        wh__cell(fp, " %.1f |", r->train_img_s);
        fputc('\n', fp);
    }
}

static int wh__write_file(const char *out, const char *name, const char *buf, size_t len)
{
    char path[4096];
    if (wh_pl_path(path, sizeof(path), out, name)) return -1;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    return wh_file_write_atomic(path, buf, len, &ctx) == WH_OK ? 0 : wh_app_fail(&ctx);
}

int wh_pl_write_tables(const char *out, const wh_pl_row *rows, int n, wh_metric m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp) return -1;
    wh_pl_table_md(fp, rows, n, m);
    fclose(fp);
    int rc = wh__write_file(out, "results.md", buf, len);
    free(buf);
    if (rc || !(fp = open_memstream(&buf, &len))) return -1;
    fprintf(fp, "stage,metric,map,params,conv_flops,weights_bytes,latency_ms_b1,train_img_per_s,train_seconds,"
                "iterations\n");
    for (int i = 0; i < n; i++) {
        const wh_pl_row *r = &rows[i];
        fprintf(fp, "%s,%s", r->stage, wh_metric_name(m));
        const double v[] = {r->map,        r->params,      r->conv_flops, r->weights_bytes,
                            r->latency_ms, r->train_img_s, r->train_s};
        for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++)
            if (isfinite(v[k]))
                fprintf(fp, ",%.10g", v[k]);
            else
                fputc(',', fp);
        fprintf(fp, ",%ld\n", r->iterations);
    }
    fclose(fp);
    rc = wh__write_file(out, "results.csv", buf, len);
    free(buf);
    if (rc || !(fp = open_memstream(&buf, &len))) return -1;
    fprintf(fp, "{\"metric\": \"%s\", \"metric_title\": \"%s\", \"stages\": [\n", wh_metric_name(m),
            wh_metric_title(m));
    for (int i = 0; i < n; i++) {
        fputs("  ", fp);
        wh__row_json(fp, &rows[i]);
        fputs(i + 1 < n ? ",\n" : "\n", fp);
    }
    fputs("]}\n", fp);
    fclose(fp);
    rc = wh__write_file(out, "results.json", buf, len);
    free(buf);
    return rc;
}

/* ---- setup shared by pipeline and ablate ------------------------------------------ */

int wh_pl_network(wh_pl *p, const char *init, const char *cfg_path, const char *model, int size, double width,
                  char **cfg)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    *cfg = NULL;
    if (init) {
        if (wh_app_ckpt_cfg(init, cfg, &ctx)) return wh_app_fail(&ctx);
    } else if (cfg_path) {
        if (wh_read_text_file(cfg_path, cfg, &ctx) != WH_OK) return wh_app_fail(&ctx);
    } else {
        wh_dataset *ds = NULL;
        if (wh_dataset_open(p->data, p->train_split, &ds, &ctx) != WH_OK) return wh_app_fail(&ctx);
        wh_model_opts mo;
        wh_model_opts_default(&mo);
        mo.name = model;
        mo.classes = ds->n_classes;
        mo.width = mo.height = size;
        mo.width_multiple = width;
        mo.darknet_loss = p->darknet_loss;
        wh_dataset_free(ds);
        float anchors[2 * WH_ANCHORS_MAX];
        int num = 0;
        if (!p->darknet_anchors && !wh_model_default_anchors(model, size, size, anchors, &num)) {
            /* anchors that fit the data's boxes at this size (whittle anchors) */
            double iou = 0;
            long nb = 0;
            if (wh_anchors_from_data(p->data, p->train_split, size, size, 0, num, 1, anchors, &iou, &nb, NULL,
                                     &ctx) != WH_OK)
                return wh_app_fail(&ctx);
            mo.anchors = anchors;
            mo.n_anchors = num;
            fprintf(p->term, "%s: %d anchors from the data (%ld training boxes at %dx%d, mean best IoU %.3f; "
                             "--anchors darknet keeps darknet's)\n", model, num, nb, size, size, iou);
        }
        if (wh_model_generate(&mo, cfg, &ctx) != WH_OK) return wh_app_fail(&ctx);
    }
    wh_cfg *c = NULL;
    if (wh_cfg_parse_string(*cfg, init ? init : cfg_path ? cfg_path : model, &c, &ctx) != WH_OK) {
        free(*cfg);
        *cfg = NULL;
        return wh_app_fail(&ctx);
    }
    int mb = 0;
    wh_status st = WH_OK;
    for (int i = 0; st == WH_OK && i < c->n_sec; i++)
        if (!strcmp(c->sec[i].type, "net") || !strcmp(c->sec[i].type, "network"))
            st = wh_cfg_int(&c->sec[i], "max_batches", 0, 0, 1 << 30, &mb, &ctx);
    wh_cfg_free(c);
    if (st != WH_OK) {
        free(*cfg);
        *cfg = NULL;
        return wh_app_fail(&ctx);
    }
    p->cfg_text = *cfg;
    p->cfg_max_batches = mb;
    return 0;
}

int wh_pl_settings(const char *out, const char *text)
{
    char path[4096], *old = NULL;
    if (wh_pl_mkdirs(out) || wh_pl_path(path, sizeof(path), out, "settings.txt")) return 1;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    if (!wh__exists(path)) return wh_file_write_atomic(path, text, strlen(text), &ctx) == WH_OK ? 0 : wh_app_fail(&ctx);
    if (wh_read_text_file(path, &old, &ctx) != WH_OK) return wh_app_fail(&ctx);
    const int same = !strcmp(old, text);
    free(old);
    if (!same) {
        fprintf(stderr,
                "whittle: error: %s holds runs with other settings (see %s): rerun with the same options, or "
                "choose another --out\n",
                out, path);
        return 1;
    }
    return 0;
}

/* ---- the shared command line ------------------------------------------------------ */

void wh_pl_cli_init(wh_pl_cli *c, const char *out)
{
    memset(c, 0, sizeof(*c));
    c->data = WH_DEFAULT_DATA;
    c->model = "yolov4-tiny";
    c->train_split = "train";
    c->test_split = "test";
    c->budget = "quick";
    c->anchors = "data";
    c->loss = "balanced";
    c->optimizer = "sgd";
    c->mosaic = -1;
    c->out = out;
    c->target = c->beta = c->srate = -1;
    c->bn_batches = -1;
}

int wh_pl_cli_option(int argc, char **argv, int *i, wh_pl_cli *c)
{
    static const struct {
        const char *flag;
        size_t off;
    } strs[] = {{"--data", offsetof(wh_pl_cli, data)},
                {"--model", offsetof(wh_pl_cli, model)},
                {"--cfg", offsetof(wh_pl_cli, cfg_path)},
                {"--init", offsetof(wh_pl_cli, init)},
                {"--train-split", offsetof(wh_pl_cli, train_split)},
                {"--test-split", offsetof(wh_pl_cli, test_split)},
                {"--budget", offsetof(wh_pl_cli, budget)},
                {"--anchors", offsetof(wh_pl_cli, anchors)},
                {"--loss", offsetof(wh_pl_cli, loss)},
                {"--optimizer", offsetof(wh_pl_cli, optimizer)},
                {"--out", offsetof(wh_pl_cli, out)}};
    static const struct {
        const char *flag;
        size_t off;
        int lo, hi;
    } ints[] = {{"--size", offsetof(wh_pl_cli, size), 32, 4096},
                {"--threads", offsetof(wh_pl_cli, threads), 0, 4096},
                {"--stop-after", offsetof(wh_pl_cli, stop_after), 1, 1 << 30},
                {"--baseline-iterations", offsetof(wh_pl_cli, its), 1, 1 << 30},
                {"--sparse-iterations", offsetof(wh_pl_cli, its) + sizeof(int), 1, 1 << 30},
                {"--finetune-iterations", offsetof(wh_pl_cli, its) + 2 * sizeof(int), 1, 1 << 30},
                {"--bn-batches", offsetof(wh_pl_cli, bn_batches), 0, 100000}};
    static const struct {
        const char *flag;
        size_t off;
        double lo, hi;
    } dbls[] = {{"--width-multiple", offsetof(wh_pl_cli, width), 1e-3, 4},
                {"--target-params", offsetof(wh_pl_cli, target), 1e-3, 0.99},
                {"--at-beta-scale", offsetof(wh_pl_cli, beta), 0, 1e12},
                {"--s", offsetof(wh_pl_cli, srate), 0, 10},
                {"--mosaic", offsetof(wh_pl_cli, mosaic), 0, 1}};
    const char *a = argv[*i], *v;
    char *base = (char *)c;
    if (!strcmp(a, "--no-ema")) {
        c->no_ema = 1;
        return 1;
    }
    for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++)
        if (!strcmp(a, strs[k].flag)) {
            if (!(v = wh_app_value(argc, argv, i))) return -1;
            *(const char **)(base + strs[k].off) = v;
            return 1;
        }
    for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++)
        if (!strcmp(a, ints[k].flag)) {
            if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, ints[k].lo, ints[k].hi, (int *)(base + ints[k].off)))
                return -1;
            return 1;
        }
    for (size_t k = 0; k < sizeof(dbls) / sizeof(dbls[0]); k++)
        if (!strcmp(a, dbls[k].flag)) {
            if (!(v = wh_app_value(argc, argv, i)) ||
                wh_app_double(a, v, dbls[k].lo, dbls[k].hi, (double *)(base + dbls[k].off)))
                return -1;
            return 1;
        }
    return 0;
}

int wh_pl_cli_setup(const wh_pl_cli *c, wh_pl *p, char **cfg, const char *extra, char *buf, size_t n)
{
    *cfg = NULL;
    memset(p, 0, sizeof(*p));
    p->data = c->data;
    p->train_split = c->train_split;
    p->test_split = c->test_split;
    p->metric = WH_METRIC_VOC07;
    p->threads = c->threads;
    p->stop_after = c->stop_after;
    p->term = stdout;
    p->tty = isatty(STDOUT_FILENO);
    if (strcmp(c->anchors, "data") && strcmp(c->anchors, "darknet")) {
        fprintf(stderr, "whittle: error: --anchors: '%s' is neither data nor darknet\n", c->anchors);
        return 2;
    }
    p->darknet_anchors = !strcmp(c->anchors, "darknet");
    if (strcmp(c->loss, "balanced") && strcmp(c->loss, "darknet")) {
        fprintf(stderr, "whittle: error: --loss: '%s' is neither balanced nor darknet\n", c->loss);
        return 2;
    }
    p->darknet_loss = !strcmp(c->loss, "darknet");
    if (!wh_optim_find(c->optimizer)) {
        fprintf(stderr, "whittle: error: --optimizer: '%s' is not one of %s\n", c->optimizer, wh_optim_names());
        return 2;
    }
    p->optimizer = c->optimizer;
    p->ema = !c->no_ema;
    p->mosaic = (float)c->mosaic;
    if (wh_pl_budget_get(c->budget, &p->b)) {
        fprintf(stderr, "whittle: error: --budget: unknown budget '%s' (known: quick, full, smoke)\n", c->budget);
        return 2;
    }
    if (c->target > 0) p->b.target_params = c->target;
    if (c->beta >= 0) p->b.at_beta_scale = c->beta;
    if (c->srate >= 0) p->b.s = c->srate;
    if (c->bn_batches >= 0) p->b.bn_batches = c->bn_batches;
    if (c->its[0]) p->b.base_its = c->its[0];
    if (c->its[1]) p->b.sparse_its = c->its[1];
    if (c->its[2]) p->b.ft_its = c->its[2];
    const int full = !strcmp(c->budget, "full");
    const int size = c->size ? c->size : full ? 416 : 256;
    const double width = c->width > 0 ? c->width : full ? 1.0 : 0.5;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_app_threads(&ctx, c->threads);
    if (wh_app_ensure_default_data(c->data)) return 1;
    if (wh_pl_network(p, c->init, c->cfg_path, c->model, size, width, cfg)) return 1;
    if (full && p->cfg_max_batches < 1) {
        fprintf(stderr, "whittle: error: --budget full needs [net] max_batches in the cfg\n");
        free(*cfg);
        *cfg = NULL;
        return 2;
    }
    const int given = c->init || c->cfg_path;
    const char *net = c->init ? c->init : c->cfg_path ? c->cfg_path : c->model;
    if (wh_pl_fmt(buf, n,
                  "data=%s\nsplits=%s/%s\nnetwork=%s\nsize=%d\nwidth_multiple=%g\nbudget=%s\ntarget_params=%g\n"
                  "at_beta_scale=%g\ns=%g\niterations=%g,%g,%g\nanchors=%s\nloss=%s\noptimizer=%s\nema=%d\n"
                  "mosaic=%g\nbn_batches=%d\n%s",
                  c->data, c->train_split, c->test_split, net, given ? 0 : size, given ? 0 : width, c->budget,
                  p->b.target_params, p->b.at_beta_scale, p->b.s, p->b.base_its, p->b.sparse_its, p->b.ft_its,
                  given ? "-" : c->anchors, given ? "-" : c->loss, c->optimizer, !c->no_ema, c->mosaic,
                  p->b.bn_batches, extra ? extra : "")) {
        free(*cfg);
        *cfg = NULL;
        return 1;
    }
    return 0;
}
