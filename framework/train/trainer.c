#include "framework/train/trainer.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layers/head.h"
#include "framework/data/dataset.h"
#include "framework/data/loader.h"
#include "framework/train/dist.h"
#include "framework/eval/evaluate.h"
#include "framework/core/json.h"
#include "framework/core/memplan.h"
#include "framework/train/optimizer.h"
#include "framework/plot/plot.h"

void wh_train_opts_default(wh_train_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->train_split = "train";
    o->test_split = "test";
    o->out_dir = "runs/train";
    o->seed = 1;
    o->keep_last = 2;
    o->chart_every = 10;
    o->metric = WH_METRIC_VOC07;
    o->prefetch = 1;
    o->burn_in = -1;
    o->sync_bn = -1;
    o->check_finite = 1;
    o->ema = 1;
    o->mosaic = -1;
}

static double wh__now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static wh_status wh__mkdirs(const char *dir, wh_ctx *ctx)
{
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(buf)) return wh_error(ctx, WH_ERR_ARG, "bad output folder '%s'", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return wh_error(ctx, WH_ERR_IO, "%s: cannot create: %s", buf, strerror(errno));
        buf[i] = c;
    }
    return WH_OK;
}

/* Growable float pairs (the chart's history). */
typedef struct wh__series {
    float *x, *y;
    int n, cap;
} wh__series;

static int wh__series_add(wh__series *s, float x, float y)
{
    if (s->n == s->cap) {
        int c = s->cap ? 2 * s->cap : 256;
        float *nx = realloc(s->x, (size_t)c * sizeof(float));
        if (!nx) return -1;
        s->x = nx;
        float *ny = realloc(s->y, (size_t)c * sizeof(float));
        if (!ny) return -1;
        s->y = ny;
        s->cap = c;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return 0;
}

static void wh__series_free(wh__series *s)
{
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof(*s));
}

typedef struct wh__run {
    const wh_train_opts *o;
    char *cfg_text;
    wh_net *net;
    wh_dataset *train, *test;
    wh_loader *loader;
    int max_boxes;      /* truth slots per image in the loader's batches */
    wh_optim *opt;
    wh_ema *ema;        /* NULL: no weight averaging */
    long it;
    double best_map;
    wh__series hist, maps;
    FILE *log;
    int resume;         /* from out_dir/last.h5 */
    wh_dist *dist;
    int rank, ranks;
    /* A test's fault: WH_TEST_NONFINITE="RANK:ITERATION" puts a NaN into
     * that rank's first input of that iteration (a corrupt image on one
     * rank), for the tests of the numerical guards in whole runs, MPI ones
     * included (tests/apps/app_mpi.sh); 0: none. */
    long poison_it;
    double comm_s;      /* this iteration's seconds in collectives */
    wh_mem_plan plan;
    char plan_text[512];
    char sched_text[512]; /* how --max-batches rescaled the cfg's schedule ("" if not) */
    char budget_text[700]; /* how --minutes sized the run ("" if not yet) */
    int bn_synced;      /* batch-norm statistics summed over the ranks */
    float *stats_copy;  /* the running statistics before the iteration (max_skips > 0) */
    size_t stats_floats;
    char path[4096];
} wh__run;

static const char *wh__join(wh__run *r, const char *name)
{
    snprintf(r->path, sizeof(r->path), "%s/%s", r->o->out_dir, name);
    return r->path;
}

static void wh__emit(const wh__run *r, wh_train_event *ev)
{
    if (r->o->on_event && r->rank == 0) r->o->on_event(r->o->event_user, ev);
}

static wh_status wh__set_net_key(char **text, const char *key, const char *val, wh_ctx *ctx)
{
    char *out;
    WH_TRY(wh_cfg_text_set(*text, "net", key, val, &out, ctx));
    free(*text);
    *text = out;
    return WH_OK;
}

/* --max-batches M over a cfg written for M0 iterations: the schedule's
 * iteration counts follow, as darknet users edit them by hand (darknet's
 * rule: steps at 80 % and 90 % of max_batches). Each step becomes
 * round(step x M / M0) (the same share of the run); burn_in is kept unless
 * it is more than a tenth of the run, then it becomes M / 10 (a 1000-
 * iteration warm-up would otherwise be a 425-iteration run's whole life at
 * a tiny rate); an explicit --burn-in wins. Nothing changes when M = M0,
 * so resuming with the same flags is exact. The change is described in
 * note ("" when none). */
static wh_status wh__rescale_schedule(char **text, const char *name, const wh_train_opts *o, long m, char *note,
                                      size_t n, wh_ctx *ctx)
{
    note[0] = '\0';
    if (m <= 0) return WH_OK;
    /* [net] as the cfg has it, before the overrides (a cfg without one:
     * wh_net_create says so later) */
    wh_cfg *c = NULL;
    WH_TRY(wh_cfg_parse_string(*text, name, &c, ctx));
    wh_hparams h;
    const int has_net = c->n_sec > 0 && (!strcmp(c->sec[0].type, "net") || !strcmp(c->sec[0].type, "network"));
    const wh_status st = has_net ? wh_hparams_parse(&c->sec[0], &h, ctx) : WH_OK;
    wh_cfg_free(c);
    if (st != WH_OK || !has_net || h.max_batches <= 0 || h.max_batches == m) return st;
    const int steps = (o->policy ? !strcmp(o->policy, "steps") : h.policy == WH_LR_STEPS) && h.n_steps > 0;
    const int burn = o->burn_in < 0 && h.burn_in > m / 10;
    if (!steps && !burn) return WH_OK; /* nothing in the schedule counts iterations */
    int k = snprintf(note, n, "schedule rescaled from the cfg's max_batches %d to %ld:", h.max_batches, m);
    if (steps) {
        char before[256] = "", after[256] = "";
        for (int i = 0; i < h.n_steps; i++) {
            long v = lround((double)h.steps[i] * (double)m / (double)h.max_batches);
            if (v < 1) v = 1;
            snprintf(before + strlen(before), sizeof(before) - strlen(before), i ? ",%d" : "%d", h.steps[i]);
            snprintf(after + strlen(after), sizeof(after) - strlen(after), i ? ",%ld" : "%ld", v);
        }
        WH_TRY(wh__set_net_key(text, "steps", after, ctx));
        if (k >= 0 && (size_t)k < n) k += snprintf(note + k, n - (size_t)k, " steps %s -> %s", before, after);
    }
    if (burn) {
        char val[32];
        snprintf(val, sizeof(val), "%ld", m / 10);
        WH_TRY(wh__set_net_key(text, "burn_in", val, ctx));
        if (k >= 0 && (size_t)k < n)
            snprintf(note + k, n - (size_t)k, "%s burn_in %d -> %ld (a tenth of the run; --burn-in sets it)",
                     steps ? "," : "", h.burn_in, m / 10);
    }
    return WH_OK;
}

/* The command-line overrides, written into the cfg text itself so that a
 * checkpoint alone rebuilds the network it was trained as. */
static wh_status wh__apply_overrides(char **text, const char *name, const wh_train_opts *o, char *note, size_t n,
                                     wh_ctx *ctx)
{
    WH_TRY(wh__rescale_schedule(text, name, o, o->max_batches, note, n, ctx));
    struct {
        const char *key;
        double v;
        int is_float;
    } ov[] = {{"batch", o->batch, 0},          {"subdivisions", o->subdivisions, 0},
              {"max_batches", (double)o->max_batches, 0}, {"learning_rate", o->learning_rate, 1},
              {"width", o->width, 0},          {"height", o->height, 0}};
    for (size_t i = 0; i < sizeof(ov) / sizeof(ov[0]); i++) {
        if (ov[i].v <= 0) continue;
        char val[64];
        if (ov[i].is_float) snprintf(val, sizeof(val), "%.9g", ov[i].v);
        else snprintf(val, sizeof(val), "%ld", (long)ov[i].v);
        WH_TRY(wh__set_net_key(text, ov[i].key, val, ctx));
    }
    if (o->letterbox) WH_TRY(wh__set_net_key(text, "letter_box", "1", ctx));
    if (o->burn_in >= 0) {
        char val[32];
        snprintf(val, sizeof(val), "%d", o->burn_in);
        WH_TRY(wh__set_net_key(text, "burn_in", val, ctx));
    }
    if (o->policy) WH_TRY(wh__set_net_key(text, "policy", o->policy, ctx));
    return WH_OK;
}

static wh_status wh__save(wh__run *r, const char *path, wh_ctx *ctx)
{
    wh_ckpt_writer *w;
    WH_TRY(wh_ckpt_create(path, &w, ctx));
    const int64_t it = r->it, pos = wh_loader_position(r->loader), nest = r->opt->nesterov;
    const uint64_t seed = r->o->seed;
    const float best = (float)r->best_map;
    const uint64_t nv = r->opt->n, nh = (uint64_t)r->hist.n, nm = (uint64_t)r->maps.n;
    /* with weight averaging the network saved is the average (what
     * evaluation, export and pruning read); the trained weights go beside
     * it for resuming */
    if (r->ema) wh_ema_swap(r->ema, r->net);
    wh_status st = wh_ckpt_put_net(w, r->net, r->cfg_text, ctx);
    if (r->ema) wh_ema_swap(r->ema, r->net);
    if (st == WH_OK && r->ema) {
        const uint64_t ne = r->ema->n;
        const int64_t up = r->ema->updates;
        st = wh_ckpt_put_f32(w, "ema/trained_weights", r->net->arena[WH_ARENA_PARAM], &ne, 1, ctx);
        if (st == WH_OK) st = wh_ckpt_put_i64(w, "ema/updates", &up, NULL, 0, ctx);
    }
    if (st == WH_OK) st = wh_ckpt_put_i64(w, "train/iteration", &it, NULL, 0, ctx);
    if (st == WH_OK) st = wh_ckpt_put_i64(w, "train/loader_position", &pos, NULL, 0, ctx);
    if (st == WH_OK) st = wh_ckpt_put_u64(w, "train/seed", &seed, NULL, 0, ctx);
    if (st == WH_OK) st = wh_ckpt_put_f32(w, "train/best_map", &best, NULL, 0, ctx);
    if (st == WH_OK && nh) st = wh_ckpt_put_f32(w, "train/history_iter", r->hist.x, &nh, 1, ctx);
    if (st == WH_OK && nh) st = wh_ckpt_put_f32(w, "train/history_loss", r->hist.y, &nh, 1, ctx);
    if (st == WH_OK && nm) st = wh_ckpt_put_f32(w, "train/map_iter", r->maps.x, &nm, 1, ctx);
    if (st == WH_OK && nm) st = wh_ckpt_put_f32(w, "train/map", r->maps.y, &nm, 1, ctx);
    if (st == WH_OK) st = wh_ckpt_put_str(w, "optimizer/name", r->opt->ops->name, ctx);
    for (int k = 0; st == WH_OK && k < r->opt->ops->n_state; k++) {
        char name[64];
        snprintf(name, sizeof(name), "optimizer/%s", r->opt->ops->state_names[k]);
        st = wh_ckpt_put_f32(w, name, r->opt->state[k], &nv, 1, ctx);
    }
    const int64_t steps = r->opt->t;
    if (st == WH_OK) st = wh_ckpt_put_i64(w, "optimizer/step", &steps, NULL, 0, ctx);
    if (st == WH_OK) st = wh_ckpt_put_i64(w, "optimizer/nesterov", &nest, NULL, 0, ctx);
    const int64_t ranks = r->ranks;
    if (st == WH_OK) st = wh_ckpt_put_i64(w, "dist/ranks", &ranks, NULL, 0, ctx);
    if (st == WH_OK && r->o->hooks.save) st = r->o->hooks.save(r->o->hooks.user, w, ctx);
    if (st != WH_OK) {
        wh_ckpt_abort(w);
        return st;
    }
    return wh_ckpt_commit(w, ctx);
}

static wh_status wh__load_series(wh_ckpt_reader *rd, const char *xn, const char *yn, wh__series *s,
                                 wh_ctx *ctx)
{
    if (!wh_ckpt_has(rd, xn)) return WH_OK;
    uint64_t dims[8];
    int nd = 0;
    WH_TRY(wh_ckpt_dims(rd, xn, dims, &nd, ctx));
    if (nd != 1 || dims[0] > ((uint64_t)1 << 28)) /* one point per iteration or evaluation */
        return wh_error(ctx, WH_ERR_SHAPE, "%s: %s has %d dimensions, %llu points: expected a list of at most 2^28",
                        wh_ckpt_path(rd), xn, nd, nd ? (unsigned long long)dims[0] : 0ull);
    const size_t n = (size_t)dims[0];
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    wh_status st = x && y ? WH_OK : wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (st == WH_OK) st = wh_ckpt_get_f32(rd, xn, x, n, ctx);
    if (st == WH_OK) st = wh_ckpt_get_f32(rd, yn, y, n, ctx);
    for (size_t i = 0; st == WH_OK && i < n; i++)
        if (wh__series_add(s, x[i], y[i])) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    free(x);
    free(y);
    return st;
}

/* The temporary checkpoint files a killed run left behind (NAME.h5.tmpXXXXXX,
 * framework/io/checkpoint.c: never under a final name), removed when a run
 * resumes in the folder. */
static void wh__remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    const struct dirent *e;
    while ((e = readdir(d))) {
        const char *t = strstr(e->d_name, ".h5.tmp");
        if (!t || strlen(t) != strlen(".h5.tmp") + 6) continue;
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

/* Keys a darknet cfg may set that change darknet's training but that
 * whittle's trainer reads and does not apply: one warning each, naming the
 * file, line and value, when the value is not the neutral one (neutral NULL:
 * any value). Evaluation and export do not warn: they do not train. */
typedef struct wh__unapplied {
    const char *section, *key, *neutral, *why;
} wh__unapplied;

static const wh__unapplied wh__unapplied_keys[] = {
    {"net", "angle", "0", "rotation is not implemented"},
    {"net", "aspect", "1", "aspect-ratio jitter is not implemented"},
    {"net", "mixup", "0", "mixup is not implemented"},
    {"net", "cutmix", "0", "cutmix is not implemented"},
    {"net", "blur", "0", "blur augmentation is not implemented"},
    {"net", "gaussian_noise", "0", "noise augmentation is not implemented"},
    {"net", "min_crop", NULL, "darknet's classifier crops do not apply to detection here"},
    {"net", "max_crop", NULL, "darknet's classifier crops do not apply to detection here"},
    {"net", "adam", "0", "use --optimizer adamw"},
    {"net", "B1", NULL, "AdamW takes b1 from momentum (--optimizer adamw)"},
    {"net", "B2", NULL, "AdamW's b2 is .999"},
    {"net", "eps", NULL, "AdamW's eps is 1e-8"},
    {"net", "ema_alpha", NULL, "whittle's weight average (on by default, --no-ema) has its own schedule"},
    {"net", "label_smooth_eps", NULL, "set label_smooth_eps in [yolo]"},
    {"net", "dynamic_minibatch", "0", "the batch stays as given"},
    {"net", "resize_step", NULL, "multi-scale training is not implemented"},
    {"net", "adversarial_lr", "0", "adversarial training is not implemented"},
    {"net", "loss_scale", "1", "there is no mixed precision in training"},
    {"net", "max_epochs", NULL, "max_batches (or --max-batches, --minutes) ends the run"},
    {"yolo", "random", "0", "multi-scale training is not implemented: the input stays the cfg's size"},
    {"yolo", "resize", "1", "resize jitter is not implemented"},
};

static void wh__warn_unapplied(const wh_cfg *cfg, wh_ctx *ctx)
{
    for (size_t k = 0; k < sizeof(wh__unapplied_keys) / sizeof(wh__unapplied_keys[0]); k++) {
        const wh__unapplied *u = &wh__unapplied_keys[k];
        for (int i = 0; i < cfg->n_sec; i++) {
            wh_cfg_section *sec = &cfg->sec[i];
            const int is_net = !strcmp(sec->type, "net") || !strcmp(sec->type, "network");
            if (strcmp(u->section, "net") ? strcmp(sec->type, u->section) : !is_net) continue;
            const wh_cfg_kv *kv = wh_cfg_find(sec, u->key);
            if (!kv || (u->neutral && strtod(kv->val, NULL) == strtod(u->neutral, NULL))) continue;
            wh_warn(ctx, "%s:%d: [%s] %s=%s is read but not applied by whittle's trainer (%s)", sec->file, kv->line,
                    sec->type, u->key, kv->val, u->why);
            break; /* once per key */
        }
    }
}

static wh_status wh__setup(wh__run *r, wh_ctx *ctx)
{
    const wh_train_opts *o = r->o;
    WH_TRY(wh__mkdirs(o->out_dir, ctx));
    wh_ckpt_reader *rd = NULL;
    struct stat sb;
    r->resume = o->resume || (o->auto_resume && stat(wh__join(r, "last.h5"), &sb) == 0);
    if (r->resume) {
        if (r->rank == 0) wh__remove_stale_temps(o->out_dir);
        WH_TRY(wh_ckpt_open(wh__join(r, "last.h5"), &rd, ctx));
        wh_status st = wh_ckpt_get_str(rd, "cfg", &r->cfg_text, ctx);
        if (st != WH_OK) {
            wh_ckpt_close(rd);
            return st;
        }
    } else {
        if (!o->cfg_path && !o->cfg_text) return wh_error(ctx, WH_ERR_ARG, "train: a cfg is needed (or --resume)");
        if (stat(wh__join(r, "last.h5"), &sb) == 0)
            return wh_error(ctx, WH_ERR_ARG,
                            "%s already holds a training run: continue it with --resume, or choose another "
                            "output folder (nothing was changed)", r->path);
        if (o->cfg_text) {
            r->cfg_text = malloc(strlen(o->cfg_text) + 1);
            if (!r->cfg_text) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
            memcpy(r->cfg_text, o->cfg_text, strlen(o->cfg_text) + 1);
        } else {
            WH_TRY(wh_read_text_file(o->cfg_path, &r->cfg_text, ctx));
        }
    }
    const char *cfg_name = r->resume ? r->path : o->cfg_path ? o->cfg_path : "<checkpoint cfg>";
    wh_status st = wh__apply_overrides(&r->cfg_text, cfg_name, o, r->sched_text, sizeof(r->sched_text), ctx);
    wh_cfg *cfg = NULL;
    if (st == WH_OK) st = wh_cfg_parse_string(r->cfg_text, cfg_name, &cfg, ctx);
    wh_net_opts no = {.train = 1, .blocked = 1, .share_douts = 1, .share_outs = 1, .check_finite = o->check_finite};
    /* [net] as the net will read it: the ranks' shares and the memory plan
     * need it before the net exists (a cfg without it: wh_net_create says so) */
    wh_hparams nh;
    const int has_net = st == WH_OK && cfg->n_sec > 0 &&
                        (!strcmp(cfg->sec[0].type, "net") || !strcmp(cfg->sec[0].type, "network"));
    if (has_net) st = wh_hparams_parse(&cfg->sec[0], &nh, ctx);
    if (st == WH_OK && has_net && r->ranks > 1) { /* each rank holds its share of every mini-batch */
        if (nh.batch % (nh.subdivisions * r->ranks) != 0)
            st = wh_error(ctx, WH_ERR_ARG,
                          "[net] batch=%d is not a multiple of subdivisions=%d x %d ranks: every rank takes an "
                          "equal share of each mini-batch (change --batch, --subdivisions or the ranks)",
                          nh.batch, nh.subdivisions, r->ranks);
        else
            no.batch = nh.batch / (nh.subdivisions * r->ranks);
    }
    if (st == WH_OK && has_net) {
        /* the memory planner: the run sized before anything is allocated */
        wh_loader_opts lo;
        const int mini = no.batch > 0 ? no.batch : nh.batch / (nh.subdivisions > 0 ? nh.subdivisions : 1);
        wh_loader_opts_default(&lo, nh.width, nh.height, mini);
        const size_t loader = wh_loader_bytes(&lo) * (o->test_split && o->test_split[0] ? 2 : 1);
        size_t extra = 0;
        const char *what = NULL;
        if (o->hooks.plan) st = o->hooks.plan(o->hooks.user, cfg, &no, &extra, &what, ctx);
        const int local = wh_dist_local_size(r->dist);
        if (st == WH_OK) st = wh_mem_plan_train(cfg, &no, loader, extra, what, local, &r->plan, ctx);
        if (st == WH_OK) { /* the optimizer's state and the weight average */
            const wh_optim_ops *op = wh_optim_find(o->optimizer ? o->optimizer : "sgd");
            wh_mem_plan_optimizer(&r->plan, op ? op->n_state : 1, o->ema);
        }
        if (st == WH_OK) {
            wh_mem_plan_format(&r->plan, r->plan_text, sizeof(r->plan_text));
            if (!wh_mem_plan_fits(&r->plan) && !o->ignore_memory)
                st = wh_error(ctx, WH_ERR_NOMEM,
                              "this run needs about %.0f MB%s but %.0f MB are available (%s): lower --batch, raise "
                              "--subdivisions (the mini-batch in memory is %d images)%s or lower --size (%dx%d); "
                              "--ignore-memory-plan runs it anyway. The plan: %s",
                              r->plan.total * (double)local / 1048576.0, local > 1 ? " for its ranks on this host" : "",
                              r->plan.available / 1048576.0, r->plan.available_from, mini,
                              local > 1 ? ", run fewer ranks per host" : "", nh.width, nh.height, r->plan_text);
        }
    }
    if (st == WH_OK && r->rank == 0) wh__warn_unapplied(cfg, ctx);
    if (st == WH_OK) st = wh_net_create(cfg, &no, &r->net, ctx);
    wh_cfg_free(cfg);
    if (st == WH_OK) {
        const wh_hparams *hp = &r->net->hp;
        if (hp->policy == WH_LR_RANDOM)
            st = wh_error(ctx, WH_ERR_UNSUPPORTED, "policy=random is not reproducible: not supported");
        else if (hp->max_batches < 1)
            st = wh_error(ctx, WH_ERR_CFG, "[net] max_batches must be set (or --max-batches)");
    }
    if (st == WH_OK) wh_net_init_weights(r->net, o->seed);
    if (st == WH_OK && o->init_ckpt && !r->resume) {
        wh_ckpt_reader *ir = NULL;
        st = wh_ckpt_open(o->init_ckpt, &ir, ctx);
        if (st == WH_OK) st = wh_ckpt_load_net(ir, r->net, ctx);
        wh_ckpt_close(ir);
    }
    /* the optimizer: --optimizer, else the one the checkpoint resumed was
     * trained with, else sgd */
    char saved_opt[32] = "";
    if (st == WH_OK && rd && wh_ckpt_has(rd, "optimizer/name")) {
        char *name = NULL;
        st = wh_ckpt_get_str(rd, "optimizer/name", &name, ctx);
        if (st == WH_OK) snprintf(saved_opt, sizeof(saved_opt), "%s", name);
        free(name);
    } else if (rd) {
        snprintf(saved_opt, sizeof(saved_opt), "sgd"); /* checkpoints from before optimizers had names */
    }
    const char *opt_name = o->optimizer ? o->optimizer : saved_opt[0] ? saved_opt : "sgd";
    if (st == WH_OK && saved_opt[0] && strcmp(opt_name, saved_opt))
        st = wh_error(ctx, WH_ERR_ARG, "%s was trained with --optimizer %s, not %s: resume with the same optimizer",
                      r->path, saved_opt, opt_name);
    if (st == WH_OK)
        st = wh_optim_create(opt_name, r->net, r->net->hp.momentum, r->net->hp.decay, o->nesterov, &r->opt, ctx);
    if (st == WH_OK && o->ema) st = wh_ema_create(r->net, r->net->hp.max_batches, &r->ema, ctx);
    if (st == WH_OK) st = wh_dataset_open(o->data, o->train_split, &r->train, ctx);
    if (st == WH_OK && o->test_split && o->test_split[0])
        st = wh_dataset_open(o->data, o->test_split, &r->test, ctx);
    if (st == WH_OK) {
        /* classes must agree with the heads */
        for (int i = 0; i < r->net->n_layers; i++) {
            const wh_head_ops *h = wh_head_of(&r->net->layers[i]);
            if (h && h->classes(&r->net->layers[i]) != r->train->n_classes) {
                st = wh_error(ctx, WH_ERR_CFG, "layer %d [%s] has classes=%d but the dataset %s has %d classes", i,
                              r->net->layers[i].ops->type, h->classes(&r->net->layers[i]), r->train->source,
                              r->train->n_classes);
                break;
            }
        }
    }
    if (st == WH_OK) {
        const wh_hparams *hp = &r->net->hp;
        wh_loader_opts lo;
        wh_loader_opts_default(&lo, r->net->in_shape.w, r->net->in_shape.h, r->net->in_shape.n);
        lo.seed = o->seed;
        lo.hue = hp->hue;
        lo.saturation = hp->saturation;
        lo.exposure = hp->exposure;
        lo.flip = hp->flip;
        lo.letterbox = hp->letter_box; /* --letterbox was written into the cfg */
        /* darknet's mosaic=1 makes a whole batch a mosaic half the time: per
         * image, probability .5 (framework/data/loader.h) */
        lo.mosaic = o->mosaic >= 0 ? o->mosaic : hp->mosaic ? .5f : 0.f;
        lo.prefetch = o->prefetch;
        lo.stride = lo.batch * r->ranks; /* this rank's share of each global mini-batch */
        lo.offset = lo.batch * r->rank;
        for (int i = 0; i < r->net->n_layers; i++) { /* darknet takes the last head's jitter */
            const wh_head_ops *h = wh_head_of(&r->net->layers[i]);
            const float j = h && h->jitter ? h->jitter(&r->net->layers[i]) : -1.f;
            if (j >= 0) lo.jitter = j;
        }
        r->max_boxes = lo.max_boxes;
        st = wh_loader_create(r->train, &lo, &r->loader, ctx);
    }
    r->best_map = NAN;
    if (st == WH_OK && rd) {
        int64_t it = 0, pos = 0;
        float best = NAN;
        int64_t saved_ranks = 1;
        if (wh_ckpt_has(rd, "dist/ranks")) st = wh_ckpt_get_i64(rd, "dist/ranks", &saved_ranks, 1, ctx);
        if (st == WH_OK && saved_ranks != r->ranks && !o->allow_rank_change)
            st = wh_error(ctx, WH_ERR_ARG,
                          "%s was written by a run of %ld rank(s), this one has %d: resume with %ld, or pass "
                          "--allow-rank-change (the images each rank takes, and without synchronised batch norm "
                          "the statistics, change)",
                          r->path, (long)saved_ranks, r->ranks, (long)saved_ranks);
        if (st == WH_OK) st = wh_ckpt_load_net(rd, r->net, ctx);
        if (st == WH_OK) st = wh_ckpt_get_i64(rd, "train/iteration", &it, 1, ctx);
        if (st == WH_OK) st = wh_ckpt_get_i64(rd, "train/loader_position", &pos, 1, ctx);
        if (st == WH_OK) st = wh_ckpt_get_f32(rd, "train/best_map", &best, 1, ctx);
        for (int k = 0; st == WH_OK && k < r->opt->ops->n_state; k++) {
            char name[64];
            snprintf(name, sizeof(name), "optimizer/%s", r->opt->ops->state_names[k]);
            st = wh_ckpt_get_f32(rd, name, r->opt->state[k], r->opt->n, ctx);
        }
        if (st == WH_OK && wh_ckpt_has(rd, "optimizer/step")) {
            int64_t t = 0;
            st = wh_ckpt_get_i64(rd, "optimizer/step", &t, 1, ctx);
            r->opt->t = t;
        }
        /* the net read is the average when the run averaged: the trained
         * weights are beside it (a run without averaging: the net is them) */
        if (st == WH_OK && wh_ckpt_has(rd, "ema/trained_weights")) {
            const size_t n = r->net->arena_bytes[WH_ARENA_PARAM] / sizeof(float);
            if (r->ema) memcpy(r->ema->avg, r->net->arena[WH_ARENA_PARAM], n * sizeof(float));
            st = wh_ckpt_get_f32(rd, "ema/trained_weights", r->net->arena[WH_ARENA_PARAM], n, ctx);
            int64_t up = 0;
            if (st == WH_OK) st = wh_ckpt_get_i64(rd, "ema/updates", &up, 1, ctx);
            if (r->ema) r->ema->updates = up;
        } else if (st == WH_OK && r->ema) {
            memcpy(r->ema->avg, r->net->arena[WH_ARENA_PARAM], r->ema->n * sizeof(float));
        }
        if (st == WH_OK) st = wh__load_series(rd, "train/history_iter", "train/history_loss", &r->hist, ctx);
        if (st == WH_OK) st = wh__load_series(rd, "train/map_iter", "train/map", &r->maps, ctx);
        if (st == WH_OK && o->hooks.load) st = o->hooks.load(o->hooks.user, rd, ctx);
        if (st == WH_OK) st = wh_loader_seek(r->loader, pos, ctx);
        r->it = it;
        r->best_map = best;
    }
    wh_ckpt_close(rd);
    if (st == WH_OK && r->ranks > 1) {
        /* rank 0's weights and optimizer state on every rank, whatever each
         * read or drew; the same iteration everywhere */
        st = wh_dist_bcast(r->dist, r->net->arena[WH_ARENA_PARAM], r->net->arena_bytes[WH_ARENA_PARAM],
                           "the weights broadcast", ctx);
        if (st == WH_OK)
            for (int k = 0; st == WH_OK && k < r->opt->ops->n_state; k++)
                st = wh_dist_bcast(r->dist, r->opt->state[k], r->opt->n * sizeof(float), "the optimizer state broadcast",
                                   ctx);
        if (st == WH_OK && r->ema)
            st = wh_dist_bcast(r->dist, r->ema->avg, r->ema->n * sizeof(float), "the weight average broadcast", ctx);
        int same = 1;
        if (st == WH_OK) st = wh_dist_same_u64(r->dist, (uint64_t)r->it, &same, "the iteration check", ctx);
        if (st == WH_OK && !same)
            st = wh_error(ctx, WH_ERR_STATE, "the ranks resumed at different iterations: %s must be the same file "
                          "for every rank (a shared folder)", r->path);
        if (st == WH_OK) st = wh_dist_grads_plan(r->dist, r->net, ctx);
        r->bn_synced = o->sync_bn > 0 || (o->sync_bn < 0 && r->net->in_shape.n < 16);
        if (st == WH_OK) wh_dist_bn_sync(r->dist, r->net, r->bn_synced);
    }
    if (st == WH_OK && r->rank == 0) {
        r->log = fopen(wh__join(r, "train.jsonl"), "a");
        if (!r->log) st = wh_error(ctx, WH_ERR_IO, "%s: cannot open: %s", r->path, strerror(errno));
    }
    return st;
}

/* The parameters no gradient moves (batch-norm running statistics): kept
 * before each iteration when one may be skipped, put back when it is. */
static void wh__stats_copy(wh__run *r, int restore)
{
    size_t off = 0;
    for (int i = 0; i < r->net->n_layers; i++)
        for (int p = 0; p < r->net->layers[i].n_params; p++) {
            wh_param *pr = &r->net->layers[i].params[p];
            if (pr->flags & WH_PARAM_TRAIN) continue;
            if (r->stats_copy) {
                if (restore) memcpy(pr->data, r->stats_copy + off, pr->count * sizeof(float));
                else memcpy(r->stats_copy + off, pr->data, pr->count * sizeof(float));
            }
            off += pr->count;
        }
    r->stats_floats = off;
}

static void wh__teardown(wh__run *r)
{
    free(r->stats_copy);
    if (r->log) fclose(r->log);
    wh_loader_destroy(r->loader);
    wh_dataset_free(r->train);
    wh_dataset_free(r->test);
    wh_optim_destroy(r->opt);
    wh_ema_destroy(r->ema);
    wh_net_destroy(r->net);
    free(r->cfg_text);
    wh__series_free(&r->hist);
    wh__series_free(&r->maps);
}

/* The first layer whose output holds a non-finite value, or -1. Outputs
 * share memory by lifetime (opts.share_outs), so the forward runs again,
 * checking each output right after its layer (the input is still there; the
 * running statistics move once more, but the run stops here). */
static int wh__first_nonfinite_output(wh_net *net, wh_ctx *ctx)
{
    if (!net->share_outs) return wh_net_first_nonfinite_output(net);
    for (int i = 0; i < net->n_layers; i++) {
        if (wh_net_forward_layer(net, i, 1, ctx) != WH_OK) return -1;
        const wh_layer *l = &net->layers[i];
        const size_t n = wh_layout_count(l->out_shape, l->out_layout);
        for (size_t k = 0; k < n; k++)
            if (!isfinite(l->out[k])) return i;
    }
    return -1;
}

/* Data-parallel: n_bad ranks recorded a non-finite value this iteration
 * (net->numeric_msg). Rank 0 gathers the records and names the one found
 * first in the step (the lowest rank among equals): over synchronised batch
 * norm a NaN reaches every rank, the rank it arose on sees it first. Every
 * rank returns WH_ERR_NUMERIC, so that all skip the step or stop together. */
static wh_status wh__numeric_verdict(wh__run *r, int n_bad, wh_ctx *ctx)
{
    typedef struct {
        int32_t pending, at;
        char msg[sizeof(r->net->numeric_msg)];
    } rec;
    rec mine;
    memset(&mine, 0, sizeof(mine));
    mine.pending = r->net->numeric_pending;
    mine.at = r->net->numeric_at;
    if (mine.pending) memcpy(mine.msg, r->net->numeric_msg, sizeof(mine.msg) - 1);
    void *all = NULL;
    size_t total = 0;
    WH_TRY(wh_dist_gather(r->dist, &mine, sizeof(mine), &all, &total, "the non-finite report", ctx));
    const rec *v = all;
    int first = -1;
    for (int k = 0; v && (size_t)(k + 1) * sizeof(rec) <= total; k++)
        if (v[k].pending && (first < 0 || v[k].at < v[first].at)) first = k;
    wh_status st;
    if (first >= 0)
        st = wh_error(ctx, WH_ERR_NUMERIC, "rank %d of %d: %s", first, r->ranks, v[first].msg);
    else if (mine.pending) /* not rank 0: its own, for its own message */
        st = wh_error(ctx, WH_ERR_NUMERIC, "rank %d of %d: %s", r->rank, r->ranks, mine.msg);
    else
        st = wh_error(ctx, WH_ERR_NUMERIC, "a non-finite value on %d other rank(s) of %d", n_bad, r->ranks);
    free(all);
    wh_dist_mark_agreed(r->dist); /* every rank returns this verdict */
    return st;
}

/* --minutes: left seconds remain at per seconds an iteration; max_batches
 * becomes the iterations done plus those that fit, the schedule follows
 * (wh__rescale_schedule), the net's [net] settings and the weight average's
 * length are read again, and an INFO event says so. */
static wh_status wh__fit_budget(wh__run *r, double left, double per, wh_ctx *ctx)
{
    long m = r->it + (per > 0 && left > 0 ? (long)(left / per) : 0);
    if (m <= r->it) m = r->it + 1;
    char note[512];
    WH_TRY(wh__rescale_schedule(&r->cfg_text, "<the run's cfg>", r->o, m, note, sizeof(note), ctx));
    char val[32];
    snprintf(val, sizeof(val), "%ld", m);
    WH_TRY(wh__set_net_key(&r->cfg_text, "max_batches", val, ctx));
    wh_cfg *c = NULL;
    WH_TRY(wh_cfg_parse_string(r->cfg_text, "<the run's cfg>", &c, ctx));
    wh_hparams h;
    const wh_status st = wh_hparams_parse(&c->sec[0], &h, ctx);
    wh_cfg_free(c);
    WH_TRY(st);
    /* the schedule's keys only: the rest of [net] is as the net was built */
    wh_hparams *hp = &r->net->hp;
    hp->max_batches = h.max_batches;
    hp->burn_in = h.burn_in;
    hp->n_steps = h.n_steps;
    memcpy(hp->steps, h.steps, sizeof(h.steps));
    memcpy(hp->scales, h.scales, sizeof(h.scales));
    if (r->ema) wh_ema_fit(r->ema, m);
    snprintf(r->budget_text, sizeof(r->budget_text),
             "time budget: %.3g s an iteration, %.0f s left: max_batches %ld%s%s", per, left, m, note[0] ? "; " : "",
             note);
    wh_train_event ev = {.kind = WH_EV_INFO, .iteration = r->it, .max_batches = m, .text = r->budget_text};
    wh__emit(r, &ev);
    return WH_OK;
}

#define WH__MAX_HEADS 32

/* Every head's loss of one mini-batch, added to parts. Over ranks, heads
 * that average over the batch's counts are rescaled to the global
 * mini-batch's counts (the head's loss_rescale), so that R ranks of n
 * images train as one process of R x n. */
static wh_status wh__head_losses(wh__run *r, const wh_batch *b, wh_head_loss *parts, wh_ctx *ctx)
{
    wh_net *net = r->net;
    wh_head_loss lp[WH__MAX_HEADS];
    int li[WH__MAX_HEADS], ny = 0, mean = 0;
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        const wh_head_ops *h = wh_head_of(l);
        if (!h) continue;
        wh_head_loss p;
        WH_TRY(h->loss(l, b->truth, r->max_boxes, net->in_shape.w, net->in_shape.h, &p, ctx));
        if (r->ranks > 1 && h->averages && h->averages(l)) {
            if (ny == WH__MAX_HEADS)
                return wh_error(ctx, WH_ERR_UNSUPPORTED, "more than %d averaging heads over ranks", WH__MAX_HEADS);
            lp[ny] = p;
            li[ny++] = i;
            mean = 1;
        } else {
            wh_head_loss_add(parts, &p);
        }
    }
    if (!mean) return WH_OK;
    double v[2 * WH__MAX_HEADS];
    for (int k = 0; k < ny; k++) v[2 * k] = lp[k].n_box, v[2 * k + 1] = lp[k].n_cls;
    WH_TRY(wh_dist_sum_f64(r->dist, v, 2 * ny, "the loss counts allreduce", ctx));
    for (int k = 0; k < ny; k++) {
        const double kb = v[2 * k] > 0 ? r->ranks * lp[k].n_box / v[2 * k] : 1.0;
        const double kc = v[2 * k + 1] > 0 ? r->ranks * lp[k].n_cls / v[2 * k + 1] : 1.0;
        wh_layer *l = &net->layers[li[k]];
        WH_TRY(wh_head_of(l)->loss_rescale(l, kb, kc, &lp[k], ctx));
        wh_head_loss_add(parts, &lp[k]);
    }
    return WH_OK;
}

/* One iteration: all subdivisions forward + loss + backward, then the step. */
static wh_status wh__iteration(wh__run *r, wh_head_loss *parts, double *extra, double *wait, wh_ctx *ctx)
{
    wh_net *net = r->net;
    const wh_hparams *hp = &net->hp;
    const size_t in_floats = wh_shape_count(net->in_shape);
    memset(parts, 0, sizeof(*parts));
    *extra = 0;
    *wait = 0;
    net->numeric_pending = 0;
    wh_net_zero_grads(net);
    for (int s = 0; s < hp->subdivisions; s++) {
        const wh_batch *b;
        const double tw = wh__now(); /* the loader prefetches: any wait here is a stall */
        WH_TRY(wh_loader_next(r->loader, &b, ctx));
        *wait += wh__now() - tw;
        memcpy(net->input, b->images, in_floats * sizeof(float));
        if (r->poison_it == r->it + 1 && s == 0) net->input[0] = NAN; /* WH_TEST_NONFINITE */
        WH_TRY(wh_net_forward(net, 1, ctx));
        wh_net_zero_douts(net);
        WH_TRY(wh__head_losses(r, b, parts, ctx));
        if (r->o->hooks.extra_loss) {
            double e = 0;
            WH_TRY(r->o->hooks.extra_loss(r->o->hooks.user, net, &e, ctx));
            *extra += e;
        }
        if ((!isfinite(parts->loss) || !isfinite(*extra)) && !net->numeric_pending) {
            /* (over MPI recorded, and the step goes on to the ranks' verdict) */
            int bad = wh__first_nonfinite_output(net, ctx);
            const int at = net->n_layers; /* the loss's place in the step */
            if (bad >= 0)
                WH_TRY(wh_net_numeric(net, at, ctx, "non-finite values first appear in layer %d [%s] output", bad,
                                      net->layers[bad].ops->type));
            else
                WH_TRY(wh_net_numeric(net, at, ctx, "the loss is not finite"));
        }
        /* the last mini-batch's backward starts the gradient allreduce of
         * each bucket of layers as soon as it has passed them */
        const int overlap = r->ranks > 1 && s == hp->subdivisions - 1;
        for (int i = net->n_layers - 1; i >= 0; i--) {
            WH_TRY(wh_net_backward_layer(net, i, NULL, ctx));
            if (overlap) WH_TRY(wh_dist_grads_layer_done(r->dist, i, ctx));
        }
    }
    if (r->ranks > 1) {
        WH_TRY(wh_dist_grads_finish(r->dist, ctx));
        /* the losses reported are those of the whole global batch */
        double v[9] = {parts->loss, parts->box, parts->obj, parts->cls, parts->iou_sum, *extra, parts->count,
                       parts->recall50, net->numeric_pending};
        WH_TRY(wh_dist_sum_f64(r->dist, v, 9, "the loss allreduce", ctx));
        parts->loss = v[0], parts->box = v[1], parts->obj = v[2], parts->cls = v[3], parts->iou_sum = v[4];
        *extra = v[5];
        parts->count = (int)v[6], parts->recall50 = (int)v[7];
        r->comm_s = wh_dist_take_comm_seconds(r->dist);
        /* every rank knows how many found a non-finite value: all stop (or
         * skip) together, before the step, with the first finder's message */
        if (v[8] > 0) return wh__numeric_verdict(r, (int)v[8], ctx);
    }
    /* identical gradients on every rank from here: the regulariser, its
     * scheduler and the step make identical weights */
    if (r->o->hooks.after_backward) WH_TRY(r->o->hooks.after_backward(r->o->hooks.user, net, r->it, ctx));
    const float lr = (float)wh_lr_at(hp, r->it);
    wh_status st = wh_optim_step(r->opt, net, lr, hp->batch, ctx);
    if (st != WH_OK) return st == WH_ERR_NUMERIC ? st : wh_error_prefix(ctx, "iteration %ld: ", r->it + 1);
    if (r->ema) wh_ema_update(r->ema, net);
    return WH_OK;
}

/* Gathered detections in dataset order (each image's come from one rank, in
 * that rank's order): a counting sort by image, stable. */
static wh_det *wh__by_image(const wh_det *d, int n, int n_images)
{
    int *start = calloc((size_t)n_images + 1, sizeof(int));
    wh_det *out = malloc((size_t)(n > 0 ? n : 1) * sizeof(wh_det));
    if (!start || !out) {
        free(start);
        free(out);
        return NULL;
    }
    for (int i = 0; i < n; i++) start[d[i].image + 1]++;
    for (int k = 0; k < n_images; k++) start[k + 1] += start[k];
    for (int i = 0; i < n; i++) out[start[d[i].image]++] = d[i];
    free(start);
    return out;
}

/* Without synchronised batch norm every rank keeps running statistics of
 * its own images: before an evaluation or a checkpoint they become the
 * ranks' mean, the same everywhere. */
static wh_status wh__average_bn_stats(wh__run *r, wh_ctx *ctx)
{
    if (r->ranks < 2 || r->bn_synced) return WH_OK;
    for (int i = 0; i < r->net->n_layers; i++) {
        wh_layer *l = &r->net->layers[i];
        for (int p = 0; p < l->n_params; p++) {
            wh_param *pr = &l->params[p];
            if (strcmp(pr->name, "rolling_mean") != 0 && strcmp(pr->name, "rolling_variance") != 0) continue;
            WH_TRY(wh_dist_sum_f32(r->dist, pr->data, pr->count, "the batch-norm statistics average", ctx));
            for (size_t k = 0; k < pr->count; k++) pr->data[k] /= (float)r->ranks;
        }
    }
    return WH_OK;
}

/* Every rank detects its share of the test images; rank 0 scores them all. */
static wh_status wh__evaluate_net(wh__run *r, double *map, wh_ctx *ctx);

/* Evaluation scores the weight average when there is one. */
static wh_status wh__evaluate(wh__run *r, double *map, wh_ctx *ctx)
{
    if (r->ema) wh_ema_swap(r->ema, r->net);
    const wh_status st = wh__evaluate_net(r, map, ctx);
    if (r->ema) wh_ema_swap(r->ema, r->net);
    return st;
}

static wh_status wh__evaluate_net(wh__run *r, double *map, wh_ctx *ctx)
{
    wh_eval_opts eo;
    wh_eval_opts_default(&eo);
    WH_TRY(wh__average_bn_stats(r, ctx));
    wh_det *dets = NULL;
    int n = 0, cap = 0;
    wh_status st = wh_detect_dataset(r->net, r->test, &eo, r->rank, r->ranks, &dets, &n, &cap, ctx);
    if (st == WH_OK && r->ranks > 1) {
        void *all = NULL;
        size_t total = 0;
        st = wh_dist_gather(r->dist, dets, (size_t)n * sizeof(wh_det), &all, &total, "the detections gather", ctx);
        free(dets);
        dets = NULL;
        n = (int)(total / sizeof(wh_det));
        const wh_det *g = all;
        for (int i = 0; st == WH_OK && i < n; i++)
            if (g[i].image < 0 || g[i].image >= r->test->n)
                st = wh_error(ctx, WH_ERR_STATE, "a rank sent a detection of image %d", g[i].image);
        if (st == WH_OK && r->rank == 0 && !(dets = wh__by_image(g, n, r->test->n)))
            st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        free(all);
    }
    *map = NAN;
    if (st == WH_OK && r->rank == 0) {
        wh_map_result res;
        st = wh_map_eval(r->test, dets, n, r->o->metric, &res, ctx);
        if (st == WH_OK) {
            *map = res.map;
            char text[8192];
            wh_map_format(&res, (const char *const *)r->test->class_names, text, sizeof(text));
            wh_map_result_free(&res);
            wh_train_event ev = {.kind = WH_EV_EVAL, .iteration = r->it, .max_batches = r->net->hp.max_batches,
                                 .map = *map, .text = text};
            wh__emit(r, &ev);
            fprintf(r->log, "{\"eval\": true, \"iteration\": %ld, \"metric\": \"%s\", \"map\": %.6f}\n", r->it,
                    wh_metric_name(r->o->metric), *map);
            fflush(r->log);
        }
    }
    free(dets);
    WH_TRY(st);
    WH_TRY(wh_dist_bcast(r->dist, map, sizeof(*map), "the mAP broadcast", ctx));
    if (wh__series_add(&r->maps, (float)r->it, (float)*map))
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    return WH_OK;
}

static wh_status wh__chart(wh__run *r, wh_ctx *ctx)
{
    wh_chart c = {.n = r->hist.n, .iter = r->hist.x, .loss = r->hist.y, .n_map = r->maps.n,
                  .map_iter = r->maps.x, .map = r->maps.y, .max_iter = (float)r->net->hp.max_batches,
                  .title = "TRAINING LOSS AND MAP"};
    return wh_chart_save(&c, wh__join(r, "chart.png"), ctx);
}

static wh_status wh__checkpoint(wh__run *r, int periodic, wh_ctx *ctx)
{
    if (r->ranks > 1) { /* the ranks must hold the same weights: the saved ones are rank 0's */
        WH_TRY(wh__average_bn_stats(r, ctx));
        int same = 1;
        const uint64_t h = wh_dist_hash(r->net->arena[WH_ARENA_PARAM], r->net->arena_bytes[WH_ARENA_PARAM], 0);
        WH_TRY(wh_dist_same_u64(r->dist, h, &same, "the weights check", ctx));
        if (!same)
            return wh_error(ctx, WH_ERR_STATE, "iteration %ld: the ranks' weights differ (a non-deterministic "
                            "reduction?); nothing was written", r->it);
    }
    if (r->rank != 0) return WH_OK;
    WH_TRY(wh__save(r, wh__join(r, "last.h5"), ctx));
    wh_train_event ev = {.kind = WH_EV_CKPT, .iteration = r->it, .text = r->path};
    wh__emit(r, &ev);
    if (periodic && r->o->keep_last > 0) {
        char name[64];
        snprintf(name, sizeof(name), "iter_%07ld.h5", r->it);
        WH_TRY(wh__save(r, wh__join(r, name), ctx));
        long old = r->it - (long)r->o->keep_last * r->o->ckpt_every;
        if (old > 0) {
            snprintf(name, sizeof(name), "iter_%07ld.h5", old);
            unlink(wh__join(r, name)); /* an older periodic one: fine if it is gone */
        }
    }
    return WH_OK;
}

wh_status wh_train(const wh_train_opts *o, wh_train_result *res, wh_ctx *ctx)
{
    wh__run r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    r.dist = o->dist;
    r.rank = wh_dist_rank(o->dist);
    r.ranks = wh_dist_size(o->dist);
    memset(res, 0, sizeof(*res));
    res->best_map = res->final_map = NAN;
    wh_status st = wh__setup(&r, ctx);
    const double t_start = wh__now();
    long run_iters = 0;
    if (st == WH_OK) {
        char text[512];
        const wh_hparams *hp = &r.net->hp;
        wh_net_cost cost;
        wh_net_cost_total(r.net, &cost);
        snprintf(text, sizeof(text),
                 "%s %d images (%d classes), input %dx%d, batch %d = %d x %d, max_batches %d, lr %g, "
                 "%.2f M params, %.3f conv BFLOPs/img, from iteration %ld",
                 r.train->source, r.train->n, r.train->n_classes, r.net->in_shape.w, r.net->in_shape.h,
                 hp->batch, hp->subdivisions, r.net->in_shape.n, hp->max_batches, hp->learning_rate,
                 cost.params / 1e6, cost.conv_flops / 1e9, r.it);
        wh_train_event ev = {.kind = WH_EV_START, .iteration = r.it, .max_batches = hp->max_batches, .text = text};
        wh__emit(&r, &ev);
        char mem[600];
        snprintf(mem, sizeof(mem), "memory plan: %s", r.plan_text);
        wh_train_event mev = {.kind = WH_EV_INFO, .iteration = r.it, .text = mem};
        wh__emit(&r, &mev);
        if (r.sched_text[0]) {
            wh_train_event sev = {.kind = WH_EV_INFO, .iteration = r.it, .text = r.sched_text};
            wh__emit(&r, &sev);
        }
        if (o->hooks.begin) st = o->hooks.begin(o->hooks.user, r.net, r.train->n, ctx);
    }
    /* over MPI a rank that finds a non-finite value finishes the step's
     * collectives, and the ranks decide together (wh__numeric_verdict) */
    if (st == WH_OK && r.ranks > 1) r.net->defer_numeric = 1;
    const char *poison = getenv("WH_TEST_NONFINITE");
    int poison_rank = -1;
    long poison_it = 0;
    if (poison && sscanf(poison, "%d:%ld", &poison_rank, &poison_it) == 2 && poison_rank == r.rank)
        r.poison_it = poison_it;
    if (st == WH_OK && o->max_skips > 0) {
        wh__stats_copy(&r, 0); /* counts them */
        r.stats_copy = malloc((r.stats_floats ? r.stats_floats : 1) * sizeof(float));
        if (!r.stats_copy) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    double ema_dt = 0, train_s = 0, calib_s = 0;
    int budget_fits = 0;
    int skipped_row = 0;
    while (st == WH_OK && r.it < r.net->hp.max_batches) {
        const wh_hparams *hp = &r.net->hp;
        const double t0 = wh__now();
        wh_head_loss p;
        double extra, wait;
        if (r.stats_copy) wh__stats_copy(&r, 0);
        st = wh__iteration(&r, &p, &extra, &wait, ctx);
        int skipped = 0;
        if (st == WH_ERR_NUMERIC) {
            wh_error_prefix(ctx, "iteration %ld: ", r.it + 1);
            if (skipped_row >= o->max_skips) {
                char keep[WH_MSG_MAX], row[96] = "";
                snprintf(keep, sizeof(keep), "%s", ctx->msg); /* wh_error must not read the buffer it writes */
                if (o->max_skips > 0)
                    snprintf(row, sizeof(row), "; %d iterations in a row were not finite (--skip-nonfinite %d)",
                             skipped_row + 1, o->max_skips);
                wh_error(ctx, WH_ERR_NUMERIC, "%s%s; this iteration changed no weights (the last checkpoint is %s)",
                         keep, row, r.it > 0 ? "intact" : "none yet");
                break;
            }
            /* skip it: no step was taken; the running statistics go back */
            wh__stats_copy(&r, 1);
            skipped = 1;
            skipped_row++;
            char text[WH_MSG_MAX + 64];
            snprintf(text, sizeof(text), "skipped (%d of %d in a row): %s", skipped_row, o->max_skips, ctx->msg);
            wh_train_event ev = {.kind = WH_EV_INFO, .iteration = r.it + 1, .text = text};
            wh__emit(&r, &ev);
            if (r.log) {
                fprintf(r.log, "{\"iteration\": %ld, \"skipped\": true, \"reason\": ", r.it + 1);
                wh_json_str(r.log, ctx->msg);
                fprintf(r.log, "}\n");
                fflush(r.log);
            }
            ctx->status = WH_OK;
            ctx->msg[0] = 0;
            st = WH_OK;
        } else if (st != WH_OK) {
            break;
        } else {
            skipped_row = 0;
        }
        r.it++;
        run_iters++;
        const double dt = wh__now() - t0;
        ema_dt = ema_dt > 0 ? 0.9 * ema_dt + 0.1 * dt : dt;
        train_s += dt;
        if (run_iters > 1) calib_s += dt; /* the first iteration warms up */
        /* --minutes: fitted after 10 iterations, fitted again at a quarter
         * and at 60 % of the budget on the pace so far (the first ten are a
         * noisy sample: a busy neighbour, a cold page cache) */
        const double budget = o->minutes * 60.0;
        const int fit = run_iters == 10 || (budget_fits == 1 && train_s >= .25 * budget) ||
                        (budget_fits == 2 && train_s >= .6 * budget);
        if (st == WH_OK && o->minutes > 0 && run_iters >= 10 && fit) {
            st = wh__fit_budget(&r, budget - train_s, calib_s / (double)(run_iters - 1), ctx);
            budget_fits++;
        }
        if (!skipped) { /* a skipped iteration has its own line in the log */
            const double per_img = 1.0 / hp->batch;
            wh_train_event ev = {.kind = WH_EV_ITER, .iteration = r.it, .max_batches = hp->max_batches};
            ev.loss = (p.loss + extra) * per_img;
            ev.box = p.box * per_img;
            ev.obj = p.obj * per_img;
            ev.cls = p.cls * per_img;
            ev.avg_iou = p.count ? p.iou_sum / p.count : 0;
            ev.recall50 = p.count ? (double)p.recall50 / p.count : 0;
            ev.lr = wh_lr_at(hp, r.it - 1);
            ev.img_per_s = hp->batch / dt;
            ev.load_wait_s = wait;
            ev.comm_s = r.comm_s;
            ev.ranks = r.ranks;
            ev.eta_s = ema_dt * (double)(hp->max_batches - r.it);
            const long images = (long)r.it * hp->batch;
            ev.epoch = (int)(images / r.train->n) + 1;
            ev.epoch_progress = (double)(images % r.train->n) / r.train->n;
            wh__emit(&r, &ev);
            res->last_loss = ev.loss;
            if (r.log) {
                fprintf(r.log,
                        "{\"iteration\": %ld, \"loss\": %.6f, \"box\": %.6f, \"obj\": %.6f, \"cls\": %.6f, "
                        "\"avg_iou\": %.4f, \"recall50\": %.4f, \"lr\": %.8g, \"img_per_s\": %.3f, \"seconds\": %.3f, "
                        "\"load_wait_s\": %.4f",
                        r.it, ev.loss, ev.box, ev.obj, ev.cls, ev.avg_iou, ev.recall50, ev.lr, ev.img_per_s, dt, wait);
                if (r.ranks > 1) fprintf(r.log, ", \"ranks\": %d, \"comm_s\": %.4f", r.ranks, r.comm_s);
                fprintf(r.log, "}\n");
                fflush(r.log);
            }
            if (wh__series_add(&r.hist, (float)r.it, (float)ev.loss)) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        }
        const int out_of_time = o->minutes > 0 && train_s >= o->minutes * 60.0;
        const int last =
            r.it == hp->max_batches || (o->stop_after > 0 && run_iters >= o->stop_after) || out_of_time;
        if (st == WH_OK && r.test && (last || (o->eval_every > 0 && r.it % o->eval_every == 0))) {
            double map;
            st = wh__evaluate(&r, &map, ctx);
            if (st == WH_OK) {
                res->final_map = map;
                if (!(map <= r.best_map)) { /* also when best is NaN */
                    r.best_map = map;
                    if (r.rank == 0) st = wh__save(&r, wh__join(&r, "best.h5"), ctx);
                }
            }
        }
        if (st == WH_OK && r.rank == 0 && (last || (o->chart_every > 0 && r.it % o->chart_every == 0)))
            st = wh__chart(&r, ctx);
        if (st == WH_OK && (last || (o->ckpt_every > 0 && r.it % o->ckpt_every == 0)))
            st = wh__checkpoint(&r, !last || (o->ckpt_every > 0 && r.it % o->ckpt_every == 0), ctx);
        if ((o->stop_after > 0 && run_iters >= o->stop_after) || out_of_time) break;
    }
    res->iterations = r.it;
    res->best_map = r.best_map;
    res->planned_bytes = r.plan.total;
    res->peak_bytes = wh_mem_peak();
    res->seconds = wh__now() - t_start;
    wh__teardown(&r);
    return st;
}
