/* whittle eval CKPT [--data PATH] [--split test] [--metric voc07|voc|coco] ...:
 * the mAP of a checkpoint on a dataset, per class and the mean (named by its
 * metric), with the time it took. The detections can be kept (--dets-out) so
 * that `whittle map` re-scores them, with another metric too, without
 * running the network again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps.h"
#include "framework/io/checkpoint.h"
#include "framework/eval/evaluate.h"
#include "layers/head.h"

void wh_cmd_eval_usage(void)
{
    printf("usage: whittle eval CKPT [--data PATH] [--split NAME] [--metric voc07|voc|coco]\n"
           "                    [--conf X] [--nms X] [--batch N] [--dets-out FILE] [--threads N]\n\n"
           "Runs the checkpoint's network over every image of a dataset (placed as in\n"
           "training: letterboxed when the cfg has letter_box=1) and prints the AP of every class and their mean,\n"
           "named by the metric, then the time taken and images per second.\n\n"
           "  --data PATH       VOC root, VOCdevkit or darknet .data (default: %s)\n"
           "  --split NAME      the image set (default test; for a .data file: valid)\n"
           "  --metric NAME     voc07 (default), voc or coco (see whittle map --help)\n"
           "  --conf X          keep detections scoring above X (default 0.005, darknet's map)\n"
           "  --nms X           per-class greedy NMS IoU threshold (default 0.45)\n"
           "  --batch N         images per forward pass (default 8)\n"
           "  --dets-out FILE   also write the detections (image_id class score xmin ymin\n"
           "                    xmax ymax, VOC pixels) for whittle map --dets\n"
           "  --threads N       OpenMP threads (default: all cores)\n",
           WH_DEFAULT_DATA);
}

static double wh__now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Every detection head must predict the dataset's classes: otherwise class
 * indices would name the wrong objects (or none). */
static wh_status wh__check_classes(const wh_net *net, const char *ckpt, const wh_dataset *d, wh_ctx *ctx)
{
    int n_heads = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        const wh_head_ops *h = wh_head_of(l);
        if (!h) continue;
        n_heads++;
        if (h->classes(l) != d->n_classes)
            return wh_error(ctx, WH_ERR_ARG,
                            "%s: [%s] layer %d predicts %d classes but the dataset %s has %d; "
                            "evaluate on the dataset the model was trained for",
                            ckpt, l->ops->type, i, h->classes(l), d->source ? d->source : "", d->n_classes);
    }
    if (!n_heads)
        return wh_error(ctx, WH_ERR_ARG, "%s: the network has no detection head ([yolo] layer) to detect with", ckpt);
    return WH_OK;
}

int wh_cmd_eval(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const char *ckpt = NULL, *data = WH_DEFAULT_DATA, *split = "test", *dets_out = NULL;
    wh_metric metric = WH_METRIC_VOC07;
    wh_eval_opts eo;
    wh_eval_opts_default(&eo);
    int batch = 8, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        double d;
        if (!strcmp(a, "--data")) {
            if (!(data = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--split")) {
            if (!(split = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--metric")) {
            if (!(v = wh_app_value(argc, argv, &i))) return 2;
            if (wh_metric_parse(v, &metric, &ctx) != WH_OK) {
                fprintf(stderr, "whittle: error: --metric: %s\n", ctx.msg);
                return 2;
            }
        } else if (!strcmp(a, "--conf")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 0, 1, &d)) return 2;
            eo.conf_thresh = (float)d;
        } else if (!strcmp(a, "--nms")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 0, 1, &d)) return 2;
            eo.nms_thresh = (float)d;
        } else if (!strcmp(a, "--batch")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 1024, &batch)) return 2;
        } else if (!strcmp(a, "--dets-out")) {
            if (!(dets_out = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--threads")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 4096, &threads)) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "whittle: error: eval: unknown option '%s' (see whittle eval --help)\n", a);
            return 2;
        } else if (!ckpt) {
            ckpt = a;
        } else {
            fprintf(stderr, "whittle: error: eval: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "whittle: error: eval needs a checkpoint (see whittle eval --help)\n");
        return 2;
    }
    wh_app_threads(&ctx, threads);
    if (wh_app_ensure_default_data(data)) return 1;

    int rc = 1;
    wh_net *net = NULL;
    wh_dataset *ds = NULL;
    wh_det *dets = NULL;
    int n_dets = 0;
    wh_map_result res = {0};
    char *text = NULL;
    const wh_net_opts no = {.batch = batch, .train = 0, .blocked = 1};
    if (wh_ckpt_build_net(ckpt, &no, &net, NULL, &ctx) != WH_OK) goto done;
    if (wh_dataset_open(data, split, &ds, &ctx) != WH_OK) goto done;
    if (wh__check_classes(net, ckpt, ds, &ctx) != WH_OK) goto done;
    if (ds->n == 0) {
        wh_error(&ctx, WH_ERR_ARG, "%s: split '%s' has no images", data, split);
        goto done;
    }
    /* One untimed forward first: oneDNN creates its primitives on the first
     * call, which would otherwise dominate the img/s of a small dataset. */
    if (wh_net_forward(net, 0, &ctx) != WH_OK) goto done;
    const double t0 = wh__now_s();
    if (wh_evaluate(net, ds, &eo, metric, &res, &dets, &n_dets, &ctx) != WH_OK) goto done;
    const double secs = wh__now_s() - t0;
    if (dets_out && wh_dets_write(dets_out, ds, dets, n_dets, &ctx) != WH_OK) goto done;
    wh_app_print_warnings(&ctx);
    size_t len = wh_map_format(&res, (const char *const *)ds->class_names, NULL, 0);
    if (!(text = malloc(len + 1))) {
        wh_error(&ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    wh_map_format(&res, (const char *const *)ds->class_names, text, len + 1);
    printf("%s: %d images of %s (split %s), %dx%d input, %d detections (conf > %g, nms %g)\n%s", ckpt, ds->n,
           data, split, net->in_shape.w, net->in_shape.h, n_dets, eo.conf_thresh, eo.nms_thresh, text);
    printf("time: %.2f s, %.1f img/s (batch %d; decoding, forward, NMS and scoring, after one warm-up forward)\n", secs,
           secs > 0 ? ds->n / secs : 0.0, batch);
    if (dets_out) printf("detections: %s\n", dets_out);
    rc = 0;
done:
    if (rc) wh_app_fail(&ctx);
    free(text);
    free(dets);
    wh_map_result_free(&res);
    wh_dataset_free(ds);
    wh_net_destroy(net);
    return rc;
}
