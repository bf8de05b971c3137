/* whittle import-darknet CFG WEIGHTS -o CKPT
 * whittle export-darknet CKPT -o PREFIX
 *
 * The bridge to darknet: a cfg + .weights pair becomes a checkpoint (the cfg
 * text stored unchanged inside it, "seen" kept), and back. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "framework/io/checkpoint.h"
#include "framework/io/darknet_weights.h"
#include "framework/core/net.h"

void wh_cmd_import_darknet_usage(void)
{
    printf("usage: whittle import-darknet CFG WEIGHTS -o CKPT [--threads N]\n\n"
           "Builds the network of CFG, loads darknet's WEIGHTS into it (the file size must\n"
           "match the cfg exactly) and writes an HDF5 checkpoint holding the cfg text, every\n"
           "parameter and the 'seen' count.\n\n"
           "  -o, --output CKPT   the checkpoint to write (replaced atomically)\n");
}

void wh_cmd_export_darknet_usage(void)
{
    printf("usage: whittle export-darknet CKPT -o PREFIX [--threads N]\n\n"
           "Rebuilds the network stored in CKPT and writes PREFIX.cfg (the stored cfg text,\n"
           "unchanged) and PREFIX.weights (darknet 0.2.5 header, 'seen' from the checkpoint\n"
           "or 0), each atomically.\n\n"
           "  -o, --output PREFIX  where to write PREFIX.cfg and PREFIX.weights\n");
}

/* Strict flags shared by both commands: positionals, -o, --threads. */
static int wh__args(const char *cmd, int argc, char **argv, const char **pos, int n_pos,
                    const char **output, int *threads)
{
    int got = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(v = wh_app_value(argc, argv, &i))) return 2;
            *output = v;
        } else if (!strcmp(a, "--threads")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 4096, threads)) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "whittle: error: %s: unknown option '%s' (see whittle %s --help)\n", cmd, a,
                    cmd);
            return 2;
        } else if (got < n_pos) {
            pos[got++] = a;
        } else {
            fprintf(stderr, "whittle: error: %s: unexpected argument '%s'\n", cmd, a);
            return 2;
        }
    }
    if (got < n_pos || !*output) {
        fprintf(stderr, "whittle: error: %s needs %s and -o (see whittle %s --help)\n", cmd,
                n_pos == 2 ? "CFG, WEIGHTS" : "CKPT", cmd);
        return 2;
    }
    return 0;
}

/* The whole cfg file as text (it is stored verbatim in the checkpoint). */
static char *wh__read_text(const char *path, wh_ctx *ctx)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        wh_error(ctx, WH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *more = realloc(buf, cap * 2);
        if (!more) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = more;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        wh_error(ctx, bad ? WH_ERR_IO : WH_ERR_NOMEM, "%s: cannot read", path);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

int wh_cmd_import_darknet(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const char *pos[2] = {NULL, NULL}, *out = NULL;
    int threads = 0;
    int rc = wh__args("import-darknet", argc, argv, pos, 2, &out, &threads);
    if (rc) return rc;
    wh_app_threads(&ctx, threads);
    char *text = wh__read_text(pos[0], &ctx);
    if (!text) return wh_app_fail(&ctx);
    wh_cfg *cfg = NULL;
    wh_net *net = NULL;
    wh_ckpt_writer *w = NULL;
    uint64_t seen = 0;
    wh_net_opts opts = {.batch = 1, .train = 0};
    wh_status st = wh_cfg_parse_string(text, pos[0], &cfg, &ctx);
    if (st == WH_OK) st = wh_net_create(cfg, &opts, &net, &ctx);
    if (st == WH_OK) st = wh_darknet_weights_load(net, pos[1], &seen, &ctx);
    if (st == WH_OK) st = wh_ckpt_create(out, &w, &ctx);
    if (st == WH_OK) st = wh_ckpt_put_net(w, net, text, &ctx);
    if (st == WH_OK) st = wh_ckpt_put_u64(w, "seen", &seen, NULL, 0, &ctx);
    if (w) st = st == WH_OK ? wh_ckpt_commit(w, &ctx) : (wh_ckpt_abort(w), st);
    if (st == WH_OK) {
        wh_app_print_warnings(&ctx);
        size_t floats = (wh_darknet_weights_size(net) - 20) / sizeof(float);
        printf("%s: %d layers, %zu floats, seen %" PRIu64 "\n", out, net->n_layers, floats, seen);
    }
    wh_net_destroy(net);
    wh_cfg_free(cfg);
    free(text);
    return st == WH_OK ? 0 : wh_app_fail(&ctx);
}

int wh_cmd_export_darknet(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const char *pos[1] = {NULL}, *out = NULL;
    int threads = 0;
    int rc = wh__args("export-darknet", argc, argv, pos, 1, &out, &threads);
    if (rc) return rc;
    wh_app_threads(&ctx, threads);
    wh_net *net = NULL;
    char *text = NULL;
    uint64_t seen = 0;
    wh_net_opts opts = {.batch = 1, .train = 0};
    wh_ckpt_reader *r = NULL;
    wh_status st = wh_ckpt_open(pos[0], &r, &ctx);
    if (st == WH_OK) st = wh_ckpt_read_net(r, &opts, &net, &text, &ctx);
    /* "seen" is optional: a checkpoint without it exports 0, as a fresh net. */
    if (st == WH_OK && wh_ckpt_has(r, "seen")) st = wh_ckpt_get_u64(r, "seen", &seen, 1, &ctx);
    wh_ckpt_close(r);
    if (st == WH_OK) st = wh_darknet_export(net, text, out, seen, &ctx);
    if (st == WH_OK) {
        wh_app_print_warnings(&ctx);
        printf("%s.cfg, %s.weights: %d layers, %zu bytes of weights, seen %" PRIu64 "\n", out, out,
               net->n_layers, wh_darknet_weights_size(net), seen);
    }
    wh_net_destroy(net);
    free(text);
    return st == WH_OK ? 0 : wh_app_fail(&ctx);
}
