/* darknet .weights: read and write (layout in darknet_weights.h).
 *
 * The parameters are looked up by name in darknet's order rather than taken
 * in l->params order, so a change in how a layer declares its parameters can
 * never silently scramble a file.
 */
#include "framework/io/darknet_weights.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "framework/core/fileio.h"

/* At most this many parameters in a layer's darknet order. */
#define WH__NORDER WH_MAX_PARAMS

static int wh__host_le(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static void wh__swap32(void *data, size_t n)
{
    unsigned char *p = data;
    for (size_t i = 0; i < n; i++, p += 4) {
        unsigned char a = p[0], b = p[1];
        p[0] = p[3];
        p[1] = p[2];
        p[2] = b;
        p[3] = a;
    }
}

static uint32_t wh__le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wh__put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Indices into l->params in file order (the layer type's weights_order,
 * layers/layer.h); *n = 0 for a layer without parameters. */
static wh_status wh__order(const wh_layer *l, int idx[WH__NORDER], int *n, wh_ctx *ctx)
{
    *n = 0;
    if (l->n_params == 0) return WH_OK;
    const char *const *order = l->ops->weights_order;
    if (!order)
        return wh_error(ctx, WH_ERR_UNSUPPORTED,
                        "layer %d [%s] has parameters, but darknet's .weights format defines no "
                        "layout for this layer type",
                        l->index, l->ops->type);
    for (int k = 0; order[k]; k++)
        for (int p = 0; p < l->n_params; p++)
            if (!strcmp(l->params[p].name, order[k]) && *n < WH__NORDER) idx[(*n)++] = p;
    if (*n != l->n_params)
        return wh_error(ctx, WH_ERR_UNSUPPORTED, "layer %d [%s]: %d of its %d parameters have a place in darknet's "
                        "layout", l->index, l->ops->type, *n, l->n_params);
    return WH_OK;
}

static size_t wh__payload(const wh_net *net, wh_ctx *ctx, wh_status *st)
{
    size_t bytes = 0;
    *st = WH_OK;
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        int idx[WH__NORDER], n;
        if ((*st = wh__order(l, idx, &n, ctx)) != WH_OK) return 0;
        for (int k = 0; k < n; k++) bytes += l->params[idx[k]].count * sizeof(float);
    }
    return bytes;
}

size_t wh_darknet_weights_size(const wh_net *net)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_status st;
    size_t payload = wh__payload(net, &ctx, &st);
    return st == WH_OK ? 12 + 8 + payload : 0;
}

wh_status wh_darknet_weights_load(wh_net *net, const char *path, uint64_t *seen, wh_ctx *ctx)
{
    wh_status st;
    const size_t payload = wh__payload(net, ctx, &st);
    WH_TRY(st);
    FILE *f = fopen(path, "rb");
    if (!f) return wh_error(ctx, WH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return wh_error(ctx, WH_ERR_IO, "%s: not a regular file", path);
    }
    const size_t actual = (size_t)sb.st_size;
    unsigned char hdr[20];
    if (actual < 16 || fread(hdr, 1, 12, f) != 12) {
        fclose(f);
        return wh_error(ctx, WH_ERR_IO, "%s: %zu bytes, too short for a darknet .weights header", path,
                        actual);
    }
    const int32_t major = (int32_t)wh__le32(hdr), minor = (int32_t)wh__le32(hdr + 4);
    /* darknet: versions from 0.2 on count seen images in 64 bits */
    const size_t seen_bytes = (int64_t)major * 10 + minor >= 2 ? 8 : 4;
    const size_t header = 12 + seen_bytes, expected = header + payload;
    if (actual < header || fread(hdr + 12, 1, seen_bytes, f) != seen_bytes) {
        fclose(f);
        return wh_error(ctx, WH_ERR_IO, "%s: %zu bytes, too short for a darknet .weights header", path,
                        actual);
    }
    uint64_t s = wh__le32(hdr + 12);
    if (seen_bytes == 8) s |= (uint64_t)wh__le32(hdr + 16) << 32;
    if (actual > expected) {
        fclose(f);
        return wh_error(ctx, WH_ERR_SHAPE,
                        "%s: %zu bytes, but the cfg needs %zu (%zu-byte header version %d.%d + %zu "
                        "bytes of parameters): %zu bytes too many, weights of another cfg?",
                        path, actual, expected, header, (int)major, (int)minor, payload,
                        actual - expected);
    }
    if (actual < expected) {
        /* Name the layer and parameter where the data runs out. */
        size_t at = header;
        for (int i = 0; i < net->n_layers; i++) {
            const wh_layer *l = &net->layers[i];
            int idx[WH__NORDER], n;
            wh__order(l, idx, &n, ctx); /* checked by wh__payload */
            for (int k = 0; k < n; k++) {
                const wh_param *p = &l->params[idx[k]];
                if (at + p->count * sizeof(float) > actual) {
                    fclose(f);
                    return wh_error(ctx, WH_ERR_SHAPE,
                                    "%s: %zu bytes, but the cfg needs %zu (%zu bytes short): the data "
                                    "runs out in layer %d [%s] ('%s', %zu floats from byte %zu)",
                                    path, actual, expected, expected - actual, i, l->ops->type,
                                    p->name, p->count, at);
                }
                at += p->count * sizeof(float);
            }
        }
    }
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        int idx[WH__NORDER], n;
        wh__order(l, idx, &n, ctx);
        for (int k = 0; k < n; k++) {
            wh_param *p = &l->params[idx[k]];
            if (fread(p->data, sizeof(float), p->count, f) != p->count) {
                fclose(f);
                return wh_error(ctx, WH_ERR_IO, "%s: read failed in layer %d [%s] ('%s')", path, i,
                                l->ops->type, p->name);
            }
            if (!wh__host_le()) wh__swap32(p->data, p->count);
        }
    }
    fclose(f);
    if (seen) *seen = s;
    return WH_OK;
}

wh_status wh_darknet_weights_save(const wh_net *net, const char *path, uint64_t seen, wh_ctx *ctx)
{
    wh_status st;
    const size_t payload = wh__payload(net, ctx, &st);
    WH_TRY(st);
    const size_t total = 20 + payload;
    unsigned char *buf = malloc(total);
    if (!buf) return wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, total);
    wh__put_le32(buf, WH_DARKNET_MAJOR);
    wh__put_le32(buf + 4, WH_DARKNET_MINOR);
    wh__put_le32(buf + 8, WH_DARKNET_REVISION);
    wh__put_le32(buf + 12, (uint32_t)seen);
    wh__put_le32(buf + 16, (uint32_t)(seen >> 32));
    size_t at = 20;
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        int idx[WH__NORDER], n;
        wh__order(l, idx, &n, ctx);
        for (int k = 0; k < n; k++) {
            const wh_param *p = &l->params[idx[k]];
            memcpy(buf + at, p->data, p->count * sizeof(float));
            if (!wh__host_le()) wh__swap32(buf + at, p->count);
            at += p->count * sizeof(float);
        }
    }
    st = wh_file_write_atomic(path, buf, total, ctx);
    free(buf);
    return st;
}

wh_status wh_darknet_export(const wh_net *net, const char *cfg_text, const char *prefix,
                            uint64_t seen, wh_ctx *ctx)
{
    if (!cfg_text) return wh_error(ctx, WH_ERR_ARG, "%s: no cfg text to export", prefix);
    size_t n = strlen(prefix) + 16;
    char *path = malloc(n);
    if (!path) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    snprintf(path, n, "%s.weights", prefix);
    wh_status st = wh_darknet_weights_save(net, path, seen, ctx);
    if (st == WH_OK) {
        snprintf(path, n, "%s.cfg", prefix);
        st = wh_file_write_atomic(path, cfg_text, strlen(cfg_text), ctx);
    }
    free(path);
    return st;
}
