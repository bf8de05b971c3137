/* whittle model NAME [--classes N] [--size WxH] [--width-multiple M] -o FILE.cfg */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "framework/fileio.h"
#include "framework/modelgen.h"

void wh_cmd_model_usage(void)
{
    printf("usage: whittle model NAME [--classes N] [--size WxH] [--width-multiple M] -o FILE.cfg\n\n"
           "Writes a darknet cfg for NAME, one of:");
    for (const char *const *n = wh_model_names(); *n; n++) printf(" %s", *n);
    printf("\n\n  --classes N          object classes (default 80); heads get (N+5)*3 filters\n"
           "  --size WxH | S       network input (default 416x416), multiples of 32\n"
           "  --width-multiple M   scale every non-head conv's filters (rounded to 8; default 1)\n"
           "  -o, --out FILE       where to write (replaced atomically; '-' = stdout)\n");
}

int wh_cmd_model(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_model_opts o;
    wh_model_opts_default(&o);
    const char *out = NULL;
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
