/* whittle anchors --data D --size WxH [--num N] ...: anchors from the data's
 * box sizes (k-means under 1 - IoU, framework/data/anchors.h), printed as a
 * cfg's anchors= line with the mean best IoU, beside darknet's defaults. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "framework/data/anchors.h"
#include "framework/io/modelgen.h"

void wh_cmd_anchors_usage(void)
{
    printf("usage: whittle anchors [--data PATH] --size WxH [--num N] [--split NAME] [--letterbox] [--seed N]\n\n"
           "Clusters the training boxes' sizes into N anchors for a network input of WxH, as darknet's\n"
           "calc_anchors: k-means under the distance 1 - IoU (boxes sharing a centre), %d restarts, the\n"
           "best kept, sorted by area and rounded to pixels. Prints the anchors= line for a cfg and the\n"
           "mean best IoU of every box with them (and with darknet's default anchors, for comparison).\n"
           "whittle model --anchors-from PATH writes them into a generated cfg.\n\n"
           "  --data PATH     VOC root, VOCdevkit or darknet .data (default runs/synth)\n"
           "  --split NAME    the boxes' image set (default train; a .data file: its train list)\n"
           "  --size WxH | S  the network input the anchors are for (pixels; required)\n"
           "  --num N         anchors (default 9, as yolov4 and yolov3; yolov4-tiny has 6)\n"
           "  --letterbox     the boxes as a letterboxing loader scales them (aspect kept)\n"
           "  --seed N        the first restart's seed (default 1)\n",
           WH_ANCHORS_RESTARTS);
}

int wh_cmd_anchors(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const char *data = WH_DEFAULT_DATA, *split = "train";
    int w = 0, h = 0, num = 9, letterbox = 0, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--data")) {
            if (!(data = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--split")) {
            if (!(split = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--size")) {
            if (!(v = wh_app_value(argc, argv, &i))) return 2;
            if (wh_app_parse_size(v, &w, &h)) {
                fprintf(stderr, "whittle: error: --size expects WxH or S, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--num")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, WH_ANCHORS_MAX, &num)) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 1 << 30, &seed)) return 2;
        } else if (!strcmp(a, "--letterbox")) {
            letterbox = 1;
        } else {
            fprintf(stderr, "whittle: error: anchors: unknown option '%s' (see whittle anchors --help)\n", a);
            return 2;
        }
    }
    if (w < 1) {
        fprintf(stderr, "whittle: error: anchors needs --size WxH: the network input the anchors are for\n");
        return 2;
    }
    if (wh_app_ensure_default_data(data)) return 1;
    float anchors[2 * WH_ANCHORS_MAX], *boxes = NULL;
    double iou = 0;
    long n = 0;
    if (wh_anchors_from_data(data, split, w, h, letterbox, num, (uint64_t)seed, anchors, &iou, &n, &boxes, &ctx) !=
        WH_OK)
        return wh_app_fail(&ctx);
    printf("%ld boxes of %s (split %s) at %dx%d%s, %d anchors:\nanchors=", n, data, split, w, h,
           letterbox ? " (letterboxed)" : "", num);
    for (int k = 0; k < num; k++) printf(k ? ", %.0f,%.0f" : "%.0f,%.0f", anchors[2 * k], anchors[2 * k + 1]);
    printf("\nmean best IoU %.4f\n", iou);
    /* darknet's defaults as a generated cfg scales them to this input (for
     * a --num they fit), to show what the data's anchors gain */
    const char *model = num == 9 ? "yolov4" : num == 6 ? "yolov4-tiny" : NULL;
    float def[2 * WH_ANCHORS_MAX];
    int nd = 0;
    if (model && !wh_model_default_anchors(model, w, h, def, &nd) && nd == num)
        printf("darknet's default %s anchors scaled to %dx%d: mean best IoU %.4f\n", model, w, h,
               wh_anchors_mean_iou(boxes, n, def, num));
    free(boxes);
    return 0;
}
