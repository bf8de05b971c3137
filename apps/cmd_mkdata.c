/* whittle mkdata --out DIR [...]: writes the synthetic VOC dataset
 * (framework/data/synth.h) and prints a one-line summary. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "apps.h"
#include "framework/data/synth.h"

void wh_cmd_mkdata_usage(void)
{
    wh_synth_opts d, h;
    wh_synth_opts_default(&d);
    wh_synth_opts_preset(&h, WH_SYNTH_HARD);
    printf("usage: whittle mkdata --out DIR [--preset easy|hard] [--images N] [--classes K] [--size S]\n"
           "                      [--seed X] [--test-fraction F] [--threads N]\n\n"
           "Writes a synthetic detection dataset in PASCAL VOC layout (JPEGImages/,\n"
           "Annotations/, ImageSets/Main/{train,trainval,test}.txt, classes.txt).\n"
           "The same options give byte-identical files. DIR must be new, empty, or a\n"
           "dataset this command wrote with the same options (then nothing is rewritten).\n\n"
           "Presets:\n"
           "  easy   coloured shapes, one shape and hue per class, on textured backgrounds\n"
           "         with clutter; sides vary +-25%%, JPEG quality 92 (colour gives the class away)\n"
           "  hard   a harder proxy of real photos: classes told by shape only (colour and\n"
           "         fill drawn alike for every class, shapes turned up to 10 degrees),\n"
           "         cluttered textured backgrounds, distractors that look like objects\n"
           "         (non-class shapes, cut class shapes, blobs, lines), occlusion,\n"
           "         truncation, objects from 12 px to 60%% of the image, blur, noise and\n"
           "         JPEG quality 35..90 per image; sides vary in [10/13, 16/13] * size\n"
           "         (320..512 px at 416); about 9%% of the objects difficult.\n"
           "         Defaults: --images %d --classes %d --size %d (explicit options win)\n\n"
           "  --out DIR            the dataset's root folder (required)\n"
           "  --preset P           easy or hard (default easy)\n"
           "  --images N           number of images (default %d)\n"
           "  --classes K          1..%d classes (default %d)\n"
           "  --size S             nominal image side in pixels (default %d)\n"
           "  --seed X             random seed (default %llu)\n"
           "  --test-fraction F    share of images in test.txt, [0, 1) (default %g)\n"
           "  --threads N          OpenMP threads (default: all cores)\n",
           h.images, h.classes, h.size, d.images, wh_synth_max_classes(), d.classes, d.size,
           (unsigned long long)d.seed, d.test_fraction);
}

static int wh__u64(const char *flag, const char *val, uint64_t *out)
{
    unsigned long long v = 0;
    const char *p = val;
    if (!*p) goto bad;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > (~0ull - 9) / 10) goto bad;
        v = v * 10 + (unsigned long long)(*p - '0');
    }
    *out = v;
    return 0;
bad:
    fprintf(stderr, "whittle: error: %s expects a non-negative integer below 2^64, got '%s'\n", flag, val);
    return -1;
}

int wh_cmd_mkdata(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_synth_opts o;
    wh_synth_opts_default(&o);
    const char *out = NULL;
    int threads = 0;
    /* which of the preset's defaults the command line overrides */
    int set_images = 0, set_classes = 0, set_size = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            if (!(out = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--preset")) {
            if (!(v = wh_app_value(argc, argv, &i))) return 2;
            if ((o.preset = wh_synth_preset_parse(v)) < 0) {
                fprintf(stderr, "whittle: error: mkdata: --preset expects easy or hard, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--images")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 999999, &o.images)) return 2;
            set_images = 1;
        } else if (!strcmp(a, "--classes")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, wh_synth_max_classes(), &o.classes))
                return 2;
            set_classes = 1;
        } else if (!strcmp(a, "--size")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 32, 4096, &o.size)) return 2;
            set_size = 1;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh__u64(a, v, &o.seed)) return 2;
        } else if (!strcmp(a, "--test-fraction")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 0.0, 0.99, &o.test_fraction)) return 2;
        } else if (!strcmp(a, "--threads")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 4096, &threads)) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "whittle: error: mkdata: unknown option '%s' (see whittle mkdata --help)\n", a);
            return 2;
        } else {
            fprintf(stderr, "whittle: error: mkdata: unexpected argument '%s' (the folder goes after --out)\n", a);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "whittle: error: mkdata needs --out DIR (see whittle mkdata --help)\n");
        return 2;
    }
    wh_synth_opts p;
    wh_synth_opts_preset(&p, o.preset);
    if (!set_images) o.images = p.images;
    if (!set_classes) o.classes = p.classes;
    if (!set_size) o.size = p.size;
    wh_app_threads(&ctx, threads);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wh_synth_stats st;
    if (wh_synth_generate_stats(&o, out, &st, &ctx) != WH_OK) return wh_app_fail(&ctx);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    wh_app_print_warnings(&ctx);
    const double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("mkdata: %s%s: %d images (train %d, test %d), %ld objects (%ld difficult, %ld truncated), "
           "%d classes%s, %.2f s\n",
           out, st.reused ? " (already complete, nothing written)" : "", st.images, st.train, st.test,
           st.objects, st.difficult, st.truncated, o.classes, o.preset == WH_SYNTH_HARD ? ", preset hard" : "",
           secs);
    return 0;
}
