/* whittle train --cfg CFG [--data DIR] [--out DIR] [--resume] [...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps.h"
#include "framework/train/dist.h"
#include "framework/train/optimizer.h"
#include "framework/train/trainer.h"

#include <omp.h>

void wh_cmd_train_usage(void)
{
    printf("usage: whittle train --cfg CFG|--init CKPT [--data DIR] [--out DIR] [--resume] [options]\n\n"
           "Trains a detector from a darknet cfg (SGD as darknet: burn-in, policy, momentum,\n"
           "decay on conv weights only; or AdamW), averaging the weights as it goes (EMA: the\n"
           "checkpoints' network and every evaluation are the average). Writes DIR/last.h5,\n"
           "best.h5, train.jsonl, chart.png.\n\n"
           "  --cfg FILE            the network (darknet cfg; [net] gives the schedule)\n"
           "  --data PATH           VOC root, VOCdevkit or darknet .data (default: %s)\n"
           "  --out DIR             output folder (default runs/train)\n"
           "  --resume              continue from DIR/last.h5 exactly where it stopped\n"
           "  --init CKPT           start from these weights (and, without --cfg, its stored cfg)\n"
           "  --max-batches N       override [net] max_batches\n"
           "  --batch N --subdivisions N --lr X --size WxH --burn-in N   override [net]\n"
           "  --policy P            override [net] policy (steps, cosine, sgdr, poly, ...)\n"
           "  --nesterov            Nesterov momentum (sgd)\n"
           "  --optimizer NAME      sgd (default: darknet's) or adamw (decoupled decay, b1 = [net] momentum;\n"
           "                        wants --lr about 0.001); the state is in the checkpoint\n"
           "  --no-ema              no weight averaging (checkpoints hold the trained weights only)\n"
           "  --mosaic P            share of training images made a mosaic of four (default: the cfg's\n"
           "                        mosaic=1 gives .5, as darknet; else 0)\n"
           "  --minutes M           a wall-clock budget: after 10 iterations, max_batches becomes what fits\n"
           "                        in M minutes (the schedule rescaled as for --max-batches); stops at M\n"
           "  --eval-every N        evaluate on --test-split every N iterations (default: at the end)\n"
           "  --ckpt-every N        checkpoint every N iterations (default 100)\n"
           "  --metric M            voc07 (default), voc or coco\n"
           "  --train-split S --test-split S   (default train / test; '' disables evaluation)\n"
           "  --seed N --threads N --letterbox --stop-after N\n"
           "  --auto-resume         continue from DIR/last.h5 when it exists, else start (cluster jobs)\n"
           "  --skip-nonfinite K    skip up to K iterations in a row whose outputs or gradients hold a NaN\n"
           "                        or infinity (default 0: the first one stops the run with exit status 3)\n"
           "  --no-check-finite     do not check every output and gradient (only the loss and the step)\n"
           "  --ignore-memory-plan  run even when the memory planner says the run does not fit\n\n"
           "Over MPI (mpirun -np N whittle train ...; the same flags): --batch stays the images\n"
           "of one iteration over all ranks, each rank takes batch/N of them.\n"
           "  --sync-bn on|off|auto batch-norm statistics over all ranks (auto: when a rank's\n"
           "                        mini-batch is under 16 images)\n"
           "  --dist-timeout S      a collective without progress this long ends the job (default 60)\n"
           "  --allow-rank-change   resume a run saved with another number of ranks\n%s",
           WH_DEFAULT_DATA,
           wh_dist_compiled() ? "" : "(this whittle was built without MPI: install libopenmpi-dev and rebuild)\n");
}

typedef struct wh__printer {
    int tty;
} wh__printer;

static void wh__hms(double s, char *buf, size_t n)
{
    long t = s > 0 ? (long)(s + 0.5) : 0;
    snprintf(buf, n, "%02ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

static void wh__on_event(void *user, const wh_train_event *ev)
{
    const wh__printer *p = user;
    char eta[32];
    switch (ev->kind) {
    case WH_EV_START: printf("train: %s\n", ev->text); break;
    case WH_EV_ITER: {
        wh__hms(ev->eta_s, eta, sizeof(eta));
        if (p->tty) printf("\r\033[K");
        printf("%6ld/%ld: loss %.4f (box %.4f obj %.4f cls %.4f) iou %.3f r50 %.3f lr %.6f %.1f img/s "
               "(loader wait %.0f ms) %s left\n",
               ev->iteration, ev->max_batches, ev->loss, ev->box, ev->obj, ev->cls, ev->avg_iou, ev->recall50,
               ev->lr, ev->img_per_s, 1e3 * ev->load_wait_s, eta);
        int filled = (int)(ev->epoch_progress * 30);
        if (p->tty) {
            printf("epoch %d [", ev->epoch);
            for (int i = 0; i < 30; i++) putchar(i < filled ? '#' : '.');
            printf("] %3.0f%%", ev->epoch_progress * 100);
        }
        fflush(stdout);
        break;
    }
    case WH_EV_EVAL:
        if (p->tty) printf("\r\033[K");
        printf("%s", ev->text);
        fflush(stdout);
        break;
    case WH_EV_CKPT:
        if (p->tty) printf("\r\033[K");
        printf("checkpoint: %s (iteration %ld)\n", ev->text, ev->iteration);
        break;
    case WH_EV_INFO: printf("%s\n", ev->text); break;
    }
}

/* One trainer option at argv[*i] (shared by train and the stage commands):
 * 1 when it was one, 0 when it is not a trainer option, -1 after printing
 * an error about its value. */
int wh_app_train_option(int argc, char **argv, int *i, wh_train_opts *o, int *threads, wh_ctx *ctx)
{
    const char *a = argv[*i], *v;
    int iv;
    if (!strcmp(a, "--cfg")) {
        if (!(o->cfg_path = wh_app_value(argc, argv, i))) return -1;
    } else if (!strcmp(a, "--data")) {
        if (!(o->data = wh_app_value(argc, argv, i))) return -1;
    } else if (!strcmp(a, "--out")) {
        if (!(o->out_dir = wh_app_value(argc, argv, i))) return -1;
    } else if (!strcmp(a, "--init")) {
        if (!(o->init_ckpt = wh_app_value(argc, argv, i))) return -1;
    } else if (!strcmp(a, "--resume")) {
        o->resume = 1;
    } else if (!strcmp(a, "--auto-resume")) {
        o->auto_resume = 1;
    } else if (!strcmp(a, "--skip-nonfinite")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, 0, 1000, &o->max_skips)) return -1;
    } else if (!strcmp(a, "--ignore-memory-plan")) {
        o->ignore_memory = 1;
    } else if (!strcmp(a, "--no-check-finite")) {
        o->check_finite = 0;
    } else if (!strcmp(a, "--allow-rank-change")) {
        o->allow_rank_change = 1;
    } else if (!strcmp(a, "--sync-bn")) {
        if (!(v = wh_app_value(argc, argv, i))) return -1;
        if (!strcmp(v, "on")) o->sync_bn = 1;
        else if (!strcmp(v, "off")) o->sync_bn = 0;
        else if (!strcmp(v, "auto")) o->sync_bn = -1;
        else {
            fprintf(stderr, "whittle: error: --sync-bn expects on, off or auto, got '%s'\n", v);
            return -1;
        }
    } else if (!strcmp(a, "--dist-timeout")) {
        double t;
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_double(a, v, 1, 86400, &t)) return -1;
        o->dist_timeout_s = t;
    } else if (!strcmp(a, "--nesterov")) {
        o->nesterov = 1;
    } else if (!strcmp(a, "--optimizer")) {
        if (!(v = wh_app_value(argc, argv, i))) return -1;
        if (!wh_optim_find(v)) {
            fprintf(stderr, "whittle: error: --optimizer expects one of %s, got '%s'\n", wh_optim_names(), v);
            return -1;
        }
        o->optimizer = v;
    } else if (!strcmp(a, "--mosaic")) {
        double d;
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_double(a, v, 0, 1, &d)) return -1;
        o->mosaic = (float)d;
    } else if (!strcmp(a, "--no-ema")) {
        o->ema = 0;
    } else if (!strcmp(a, "--minutes")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_double(a, v, 0.01, 1e6, &o->minutes)) return -1;
    } else if (!strcmp(a, "--letterbox")) {
        o->letterbox = 1;
    } else if (!strcmp(a, "--max-batches")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, 1, 1 << 30, &iv)) return -1;
        o->max_batches = iv;
    } else if (!strcmp(a, "--burn-in")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, 0, 1 << 30, &o->burn_in)) return -1;
    } else if (!strcmp(a, "--policy")) {
        if (!(o->policy = wh_app_value(argc, argv, i))) return -1;
    } else if (!strcmp(a, "--stop-after")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, 1, 1 << 30, &iv)) return -1;
        o->stop_after = iv;
    } else if (!strcmp(a, "--batch")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, 1, 1 << 16, &o->batch)) return -1;
    } else if (!strcmp(a, "--subdivisions")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, 1, 1 << 16, &o->subdivisions)) return -1;
    } else if (!strcmp(a, "--lr")) {
        double d;
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_double(a, v, 1e-9, 10, &d)) return -1;
        o->learning_rate = (float)d;
    } else if (!strcmp(a, "--size")) {
        if (!(v = wh_app_value(argc, argv, i))) return -1;
        if (wh_app_parse_size(v, &o->width, &o->height)) {
            fprintf(stderr, "whittle: error: --size expects WxH or S, got '%s'\n", v);
            return -1;
        }
    } else if (!strcmp(a, "--eval-every")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, 0, 1 << 30, &o->eval_every)) return -1;
    } else if (!strcmp(a, "--ckpt-every")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, 0, 1 << 30, &o->ckpt_every)) return -1;
    } else if (!strcmp(a, "--metric")) {
        if (!(v = wh_app_value(argc, argv, i))) return -1;
        if (wh_metric_parse(v, &o->metric, ctx) != WH_OK) { wh_app_fail(ctx); return -1; }
    } else if (!strcmp(a, "--train-split")) {
        if (!(o->train_split = wh_app_value(argc, argv, i))) return -1;
    } else if (!strcmp(a, "--test-split")) {
        if (!(o->test_split = wh_app_value(argc, argv, i))) return -1;
    } else if (!strcmp(a, "--seed")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, 0, 1 << 30, &iv)) return -1;
        o->seed = (uint64_t)iv;
    } else if (!strcmp(a, "--threads")) {
        if (!(v = wh_app_value(argc, argv, i)) || wh_app_int(a, v, 0, 4096, threads)) return -1;
    } else {
        return 0;
    }
    return 1;
}

static wh_dist *wh__dist;
static int wh__dist_failed;

wh_dist *wh_app_dist(void)
{
    if (wh__dist || wh__dist_failed) return wh__dist;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    if (wh_dist_init(NULL, NULL, &wh__dist, &ctx) != WH_OK) {
        wh__dist_failed = 1;
        wh_app_fail(&ctx);
    }
    return wh__dist;
}

int wh_app_rank(void) { return wh_dist_rank(wh_app_dist()); }

void wh_app_dist_end(int rc)
{
    if (!wh__dist) return;
    if (rc != 0 && wh_dist_size(wh__dist) > 1) {
        fflush(stdout);
        fflush(stderr);
        /* a verdict of all ranks: each has printed it; they end together
         * (mpirun then exits with rc). Aborting at once would kill a rank
         * that has not printed yet. Anything else: a rank may be gone or
         * inside another collective, so abort. */
        wh_ctx c;
        wh_ctx_init(&c);
        if (!wh_dist_agreed(wh__dist) || wh_dist_barrier(wh__dist, "the end of a failed job", &c) != WH_OK)
            wh_dist_abort(wh__dist, rc);
    }
    wh_dist_finalize(wh__dist);
    wh__dist = NULL;
}

/* OpenMP threads per rank when neither --threads nor OMP_NUM_THREADS says:
 * a rank that mpirun bound to some cores uses those; unbound ranks share
 * the host's cores. */
static int wh__rank_threads(const wh_dist *d)
{
    const int mine = omp_get_num_procs(), host = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (mine < host) return mine;
    const int t = host / wh_dist_local_size(d);
    return t > 0 ? t : 1;
}

/* A long run's warnings (e.g. a cfg key read but not applied) are printed
 * as they come, not after the run. */
static void wh__warn_now(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, "whittle: warning: %s\n", msg);
    fflush(stderr);
}

int wh_app_run_training(wh_train_opts *o, int threads)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_dist *dist = wh_app_dist();
    if (!dist) return 1;
    const int rank = wh_dist_rank(dist), ranks = wh_dist_size(dist);
    if (ranks > 1 && threads == 0 && !getenv("OMP_NUM_THREADS")) threads = wh__rank_threads(dist);
    wh_app_threads(&ctx, threads);
    /* rank 0 makes the default data; the others wait for it */
    if (rank == 0 && wh_app_ensure_default_data(o->data)) return 1;
    if (o->dist_timeout_s > 0) wh_dist_set_timeout(dist, o->dist_timeout_s);
    if (wh_dist_barrier(dist, "the start", &ctx) != WH_OK) return wh_app_fail(&ctx);
    o->dist = dist;
    wh__printer pr = {ranks == 1 && isatty(STDOUT_FILENO)}; /* mpirun hands ranks a pty even into a file */
    o->on_event = wh__on_event;
    o->event_user = &pr;
    if (ranks > 1 && rank == 0)
        printf("train: %d ranks x %d OpenMP threads (MPI data-parallel)\n", ranks, omp_get_max_threads());
    if (rank == 0) ctx.sink = wh__warn_now;
    wh_train_result res;
    wh_status st = wh_train(o, &res, &ctx);
    if (pr.tty) printf("\r\033[K");
    if (st != WH_OK) {
        if (ranks > 1) fprintf(stderr, "whittle: error: rank %d of %d: %s\n", rank, ranks, ctx.msg);
        if (ranks > 1) return ctx.status == WH_ERR_NUMERIC ? WH_APP_EXIT_NUMERIC : 1;
        return wh_app_fail(&ctx);
    }
    if (rank == 0) {
        printf("done: %ld iterations in %.1f s, last loss %.4f, %s %.4f (best %.4f)\n", res.iterations, res.seconds,
               res.last_loss, wh_metric_name(o->metric), res.final_map, res.best_map);
        if (res.planned_bytes && res.peak_bytes)
            printf("memory: peak %.0f MB (VmHWM), planned %.0f MB (%+.1f %%)\n", res.peak_bytes / 1048576.0,
                   res.planned_bytes / 1048576.0, 100.0 * ((double)res.planned_bytes / res.peak_bytes - 1));
    }
    return 0;
}

void wh_app_train_defaults(wh_train_opts *o)
{
    wh_train_opts_default(o);
    o->data = WH_DEFAULT_DATA;
    o->ckpt_every = 100;
}

int wh_cmd_train(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_train_opts o;
    wh_app_train_defaults(&o);
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        int r = wh_app_train_option(argc, argv, &i, &o, &threads, &ctx);
        if (r < 0) return 2;
        if (r == 0) {
            fprintf(stderr, "whittle: error: train: unknown option '%s' (see whittle train --help)\n", argv[i]);
            return 2;
        }
    }
    if (!o.cfg_path && !o.resume && !o.init_ckpt) {
        fprintf(stderr, "whittle: error: train needs --cfg FILE (or --init CKPT, or --resume)\n");
        return 2;
    }
    /* --init alone fine-tunes the checkpoint's own network (its stored cfg) */
    char *cfg = NULL;
    if (!o.cfg_path && !o.resume && wh_app_ckpt_cfg(o.init_ckpt, &cfg, &ctx)) return wh_app_fail(&ctx);
    o.cfg_text = cfg;
    const int rc = wh_app_run_training(&o, threads);
    free(cfg);
    return rc;
}
