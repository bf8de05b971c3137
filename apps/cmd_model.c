/* whittle model NAME [--classes N] [--size WxH] [--width-multiple M] [--anchors-from D] [--loss L] -o FILE.cfg */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "framework/data/anchors.h"
#include "framework/core/fileio.h"
#include "framework/io/modelgen.h"

void wh_cmd_model_usage(void)
{
    printf("usage: whittle model NAME [--classes N] [--size WxH] [--width-multiple M] [--anchors-from PATH]\n"
           "                    -o FILE.cfg\n\n"
           "Writes a darknet cfg for NAME, one of:");
    for (const char *const *n = wh_model_names(); *n; n++) printf(" %s", *n);
    printf("\n\n  --classes N          object classes (default 80); heads get (N+5)*3 filters\n"
           "  --size WxH | S       network input (default 416x416), multiples of 32\n"
           "  --width-multiple M   scale every non-head conv's filters (rounded to 8; default 1)\n"
           "  --anchors-from PATH  anchors from this dataset's training boxes at --size (whittle anchors:\n"
           "                       k-means under 1 - IoU); without it darknet's anchors for 416, scaled\n"
           "                       to --size\n"
           "  --split NAME         the image set --anchors-from clusters (default train)\n"
           "  --loss balanced|darknet\n"
           "                       balanced (default): per-head averaged terms (loss_norm=mean), CIoU,\n"
           "                       YOLOv5's gains and SGD settings (lr 0.01, momentum 0.937), so no term\n"
           "                       vanishes on a new dataset; darknet: darknet's shipped cfg unchanged\n"
           "  -o, --out FILE       where to write (replaced atomically; '-' = stdout)\n");
}

int wh_cmd_model(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_model_opts o;
    wh_model_opts_default(&o);
    const char *out = NULL, *anchors_from = NULL, *split = "train";
    int have_name = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--classes")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 100000, &o.classes)) return 2;
        } else if (!strcmp(a, "--size")) {
            if (!(v = wh_app_value(argc, argv, &i))) return 2;
            if (wh_app_parse_size(v, &o.width, &o.height)) {
                fprintf(stderr, "whittle: error: --size expects WxH or S, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--width-multiple")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 1e-3, 4.0, &o.width_multiple))
                return 2;
        } else if (!strcmp(a, "--anchors-from")) {
            if (!(anchors_from = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--split")) {
            if (!(split = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--loss")) {
            if (!(v = wh_app_value(argc, argv, &i))) return 2;
            if (strcmp(v, "balanced") && strcmp(v, "darknet")) {
                fprintf(stderr, "whittle: error: --loss expects balanced or darknet, got '%s'\n", v);
                return 2;
            }
            o.darknet_loss = !strcmp(v, "darknet");
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            if (!(out = wh_app_value(argc, argv, &i))) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "whittle: error: model: unknown option '%s' (see whittle model --help)\n", a);
            return 2;
        } else if (!have_name) {
            o.name = a;
            have_name = 1;
        } else {
            fprintf(stderr, "whittle: error: model: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!have_name || !out) {
        fprintf(stderr, "whittle: error: model needs NAME and -o FILE (see whittle model --help)\n");
        return 2;
    }
    float anchors[2 * WH_ANCHORS_MAX];
    if (anchors_from) {
        int num = 0;
        double iou = 0;
        long nb = 0;
        if (wh_model_default_anchors(o.name, o.width, o.height, anchors, &num)) {
            fprintf(stderr, "whittle: error: model: unknown model '%s' (see whittle model --help)\n", o.name);
            return 2;
        }
        if (wh_anchors_from_data(anchors_from, split, o.width, o.height, 0, num, 1, anchors, &iou, &nb, NULL,
                                 &ctx) != WH_OK)
            return wh_app_fail(&ctx);
        o.anchors = anchors;
        o.n_anchors = num;
        fprintf(stderr, "anchors from %s (%ld boxes, split %s) at %dx%d: mean best IoU %.4f\n", anchors_from, nb,
                split, o.width, o.height, iou);
    }
    char *text = NULL;
    if (wh_model_generate(&o, &text, &ctx) != WH_OK) return wh_app_fail(&ctx);
    int rc = 0;
    if (!strcmp(out, "-")) {
        fputs(text, stdout);
    } else if (wh_file_write_atomic(out, text, strlen(text), &ctx) != WH_OK) {
        rc = wh_app_fail(&ctx);
    } else {
        fprintf(stderr, "wrote %s (%s, %d classes, %dx%d, width x%g)\n", out, o.name, o.classes, o.width,
                o.height, o.width_multiple);
    }
    free(text);
    return rc;
}
