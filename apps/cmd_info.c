/* whittle info FILE.cfg|CKPT.h5 [--size WxH] [--json]: darknet's per-layer
 * table with parameters, and the totals darknet prints (plus the
 * convolution-only FLOPs); for a checkpoint, after verifying it. */
#include <stdio.h>
#include <string.h>

#include "apps.h"
#include "framework/io/checkpoint.h"
#include "framework/core/json.h"
#include "framework/core/net.h"

void wh_cmd_info_usage(void)
{
    printf("usage: whittle info FILE.cfg|CKPT.h5 [--size WxH] [--json] [--threads N]\n\n"
           "Prints every layer (index, type, filters size/stride, input -> output, params,\n"
           "BFLOPs) and the totals: parameters (conv weights + BN scales and shifts, or\n"
           "biases), convolution FLOPs (2 per multiply-add) and darknet's total, which adds\n"
           "maxpool comparisons and shortcut additions. Batch 1. A checkpoint is verified\n"
           "first (its checksum and every parameter's shape; exit status 1 if it fails) and its\n"
           "training iteration printed.\n\n"
           "  --size WxH | S   override the [net] input size\n"
           "  --json           the same as JSON, for scripts\n");
}

int wh_cmd_info(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const char *path = NULL;
    int json = 0, threads = 0;
    wh_net_opts opts = {.batch = 1, .train = 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--size")) {
            if (!(v = wh_app_value(argc, argv, &i))) return 2;
            if (wh_app_parse_size(v, &opts.width, &opts.height)) {
                fprintf(stderr, "whittle: error: --size expects WxH or S, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--threads")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 4096, &threads)) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "whittle: error: info: unknown option '%s' (see whittle info --help)\n", a);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "whittle: error: info: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "whittle: error: info needs a cfg file (see whittle info --help)\n");
        return 2;
    }
    wh_app_threads(&ctx, threads);
    wh_net *net = NULL;
    const size_t len = strlen(path);
    if (len > 3 && !strcmp(path + len - 3, ".h5")) { /* a checkpoint: verify it, load it */
        wh_ckpt_reader *r = NULL;
        if (wh_ckpt_open(path, &r, &ctx) != WH_OK) return wh_app_fail(&ctx);
        int64_t it = -1;
        wh_status st = wh_ckpt_read_net(r, &opts, &net, NULL, &ctx);
        if (st == WH_OK && wh_ckpt_has(r, "train/iteration")) st = wh_ckpt_get_i64(r, "train/iteration", &it, 1, &ctx);
        wh_ckpt_close(r);
        if (st != WH_OK) return wh_app_fail(&ctx);
        if (!json) {
            if (it >= 0) printf("checkpoint %s: verified, iteration %ld\n", path, (long)it);
            else printf("checkpoint %s: verified\n", path);
        }
    } else if (wh_net_load_cfg(path, &opts, &net, &ctx) != WH_OK) {
        return wh_app_fail(&ctx);
    }
    wh_app_print_warnings(&ctx);
    wh_net_cost total;
    wh_net_cost_total(net, &total);
    if (json) {
        printf("{\"cfg\": ");
        wh_json_str(stdout, path);
        printf(", \"width\": %d, \"height\": %d, \"channels\": %d, \"layers\": [\n", net->in_shape.w,
               net->in_shape.h, net->in_shape.c);
    } else {
        printf("%5s %-13s %-24s %-21s %-18s %10s %8s\n", "layer", "type", "filters size/stride",
               "input (W x H x C)", "    output", "params", "BFLOPs");
    }
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        wh_net_cost c;
        wh_layer_cost(l, &c);
        char desc[64] = "";
        if (l->ops->describe) l->ops->describe(l, desc, sizeof(desc));
        const wh_shape in = l->in_shape[0], o = l->out_shape;
        if (json) {
            printf("  {\"index\": %d, \"type\": \"%s\", \"desc\": ", i, l->ops->type);
            wh_json_str(stdout, desc);
            printf(", \"inputs\": [");
            for (int k = 0; k < l->n_in; k++) printf("%s%d", k ? ", " : "", l->in[k]);
            printf("], \"input\": [%d, %d, %d], \"output\": [%d, %d, %d], \"params\": %zu, "
                   "\"flops\": %.0f}%s\n",
                   in.w, in.h, in.c, o.w, o.h, o.c, c.params, c.darknet_flops,
                   i + 1 < net->n_layers ? "," : "");
        } else {
            printf("%5d %-13s %-24s %4d x%4d x%5d -> %4d x%4d x%5d %10zu %8.3f\n", i, l->ops->type, desc,
                   in.w, in.h, in.c, o.w, o.h, o.c, c.params, c.darknet_flops / 1e9);
        }
    }
    if (json) {
        printf("], \"total\": {\"params\": %zu, \"conv_flops\": %.0f, \"darknet_flops\": %.0f, "
               "\"conv_bflops\": %.3f, \"darknet_bflops\": %.3f}}\n",
               total.params, total.conv_flops, total.darknet_flops, total.conv_flops / 1e9,
               total.darknet_flops / 1e9);
    } else {
        printf("Total parameters: %zu (%.2f M)\n", total.params, total.params / 1e6);
        printf("Total BFLOPs (convolutions, 2 per multiply-add): %.3f\n", total.conv_flops / 1e9);
        printf("Total BFLOPS (darknet's count: + maxpool + shortcut): %.3f\n", total.darknet_flops / 1e9);
    }
    wh_net_destroy(net);
    return 0;
}
