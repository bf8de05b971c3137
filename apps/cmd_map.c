/* whittle map --gt DIR --dets FILE [--metric voc07|voc|coco] [--split test]:
 * mAP of a detections file against a dataset's ground truth, per class and
 * the mean, always printed with the metric's name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "framework/data/dataset.h"
#include "framework/eval/metrics.h"

void wh_cmd_map_usage(void)
{
    printf("usage: whittle map --gt PATH --dets FILE [--metric voc07|voc|coco] [--split NAME]\n\n"
           "Evaluates detections against ground truth and prints the AP of every class and\n"
           "their mean, named by the metric.\n\n"
           "  --gt PATH       a VOC root, a VOCdevkit folder or a darknet .data file\n"
           "  --dets FILE     one detection a line: image_id class_name score xmin ymin xmax ymax\n"
           "                  (pixels, 1-based inclusive as VOC annotations; image_id as the\n"
           "                  dataset names it: '000005', or 'VOC2007/000005' in a VOCdevkit)\n"
           "  --metric NAME   voc07: IoU > 0.5, 11-point interpolation (VOC2007 devkit; default)\n"
           "                  voc:   IoU > 0.5, area under the PR curve (VOC2010+ devkit)\n"
           "                  coco:  mean over IoU 0.50:0.05:0.95, 101-point (pycocotools);\n"
           "                         difficult objects are crowd regions\n"
           "  --split NAME    the image set of a VOC root (default test); for a .data file,\n"
           "                  'train' or 'valid'\n\n"
           "Difficult objects count neither as hits nor as misses. A class without ground\n"
           "truth has no AP and is left out of the mean.\n");
}

int wh_cmd_map(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const char *gt_path = NULL, *dets_path = NULL, *split = "test";
    wh_metric metric = WH_METRIC_VOC07;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--gt")) {
            if (!(gt_path = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--dets")) {
            if (!(dets_path = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--split")) {
            if (!(split = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--metric")) {
            if (!(v = wh_app_value(argc, argv, &i))) return 2;
            if (wh_metric_parse(v, &metric, &ctx) != WH_OK) {
                fprintf(stderr, "whittle: error: --metric: %s\n", ctx.msg);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "whittle: error: map: unknown option '%s' (see whittle map --help)\n", a);
            return 2;
        } else {
            fprintf(stderr, "whittle: error: map: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!gt_path || !dets_path) {
        fprintf(stderr, "whittle: error: map needs --gt and --dets (see whittle map --help)\n");
        return 2;
    }
    int rc = 1;
    wh_dataset *ds = NULL;
    wh_det *dets = NULL;
    int n = 0;
    wh_map_result res = {0};
    char *text = NULL;
    if (wh_dataset_open_annotations(gt_path, split, &ds, &ctx) != WH_OK) goto done;
    if (wh_dets_read(dets_path, ds, &dets, &n, &ctx) != WH_OK) goto done;
    if (wh_map_eval(ds, dets, n, metric, &res, &ctx) != WH_OK) goto done;
    wh_app_print_warnings(&ctx);
    size_t len = wh_map_format(&res, (const char *const *)ds->class_names, NULL, 0);
    if (!(text = malloc(len + 1))) {
        wh_error(&ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    wh_map_format(&res, (const char *const *)ds->class_names, text, len + 1);
    printf("%d images, %d detections (%s)\n%s", ds->n, n, dets_path, text);
    rc = 0;
done:
    if (rc) wh_app_fail(&ctx);
    free(text);
    wh_map_result_free(&res);
    free(dets);
    wh_dataset_free(ds);
    return rc;
}
