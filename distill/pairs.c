/* Which feature maps are distilled, and with which weight (distill/distill.h). */
#include "distill.h"

#include "pruning/prune.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int wh__bn_conv(const wh_layer *l)
{
    if (l->ops->flow != WH_FLOW_NEW) return 0;
    for (int p = 0; p < l->n_params; p++)
        if (!strcmp(l->params[p].name, "scales")) return 1;
    return 0;
}

wh_status wh_at_pairs_auto(const wh_net *net, wh_at_pair **pairs, int *n, wh_ctx *ctx)
{
    *pairs = NULL;
    *n = 0;
    const int L = net->n_layers;
    wh_role *role = malloc((size_t)(L > 0 ? L : 1) * sizeof(wh_role));
    int *stride = malloc((size_t)(L > 0 ? L : 1) * sizeof(int));
    wh_at_pair *out = malloc((size_t)(L > 0 ? L : 1) * sizeof(wh_at_pair));
    wh_status st = role && stride && out ? WH_OK : wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (st == WH_OK) st = wh_net_roles(net, role, stride, ctx);
    int m = 0;
    for (int i = 0; st == WH_OK && i < L; i++) {
        if (role[i] == WH_ROLE_HEAD || stride[i] < 2 || !wh__bn_conv(&net->layers[i])) continue;
        /* the last such layer of its role and stride */
        int later = 0;
        for (int j = i + 1; j < L && !later; j++)
            later = role[j] == role[i] && stride[j] == stride[i] && wh__bn_conv(&net->layers[j]);
        if (later) continue;
        out[m].layer = i;
        out[m].beta = role[i] != WH_ROLE_BACKBONE ? 1e4 : stride[i] <= 16 ? 1e6 : 1e3;
        m++;
    }
    free(role);
    free(stride);
    if (st != WH_OK || m == 0) {
        free(out);
        return st != WH_OK ? st : wh_error(ctx, WH_ERR_ARG, "no layer to distill: the net has no convolution with BN "
                                                           "outside its heads at stride >= 2");
    }
    *pairs = out;
    *n = m;
    return WH_OK;
}

wh_status wh_at_pairs_parse(const char *text, wh_at_pair **pairs, int *n, wh_ctx *ctx)
{
    *pairs = NULL;
    *n = 0;
    const size_t cap = strlen(text) / 2 + 2;
    wh_at_pair *out = malloc(cap * sizeof(wh_at_pair));
    if (!out) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    int m = 0;
    for (const char *p = text; *p;) {
        char *end;
        errno = 0;
        const long layer = strtol(p, &end, 10);
        double beta = 1e4;
        if (end == p || layer < 0 || errno) goto bad;
        p = end;
        if (*p == ':') {
            beta = strtod(p + 1, &end);
            if (end == p + 1 || !isfinite(beta) || beta < 0) goto bad;
            p = end;
        }
        if (*p && *p != ',') goto bad;
        if (*p) p++;
        out[m].layer = (int)layer;
        out[m].beta = beta;
        m++;
        continue;
    bad:
        free(out);
        return wh_error(ctx, WH_ERR_ARG, "attention layers: expected I:BETA,J:BETA,... (e.g. 54:1e6,136:1e4), got '%s'",
                        text);
    }
    if (m == 0) {
        free(out);
        return wh_error(ctx, WH_ERR_ARG, "attention layers: the list '%s' is empty", text);
    }
    *pairs = out;
    *n = m;
    return WH_OK;
}

wh_status wh_at_pairs_check(const wh_net *teacher, const wh_net *student, const wh_at_pair *pairs, int n,
                            wh_ctx *ctx)
{
    if (teacher->n_layers != student->n_layers)
        return wh_error(ctx, WH_ERR_ARG,
                        "teacher has %d layers, student %d: the student must be the teacher after surgery",
                        teacher->n_layers, student->n_layers);
    for (int k = 0; k < n; k++) {
        const int i = pairs[k].layer;
        if (i < 0 || i >= student->n_layers)
            return wh_error(ctx, WH_ERR_ARG, "attention layer %d: the networks have layers 0..%d", i,
                            student->n_layers - 1);
        const wh_shape a = teacher->layers[i].out_shape, b = student->layers[i].out_shape;
        if (a.h != b.h || a.w != b.w)
            return wh_error(ctx, WH_ERR_SHAPE, "attention layer %d: teacher map %dx%d, student map %dx%d", i, a.w,
                            a.h, b.w, b.h);
        if (strcmp(teacher->layers[i].ops->type, student->layers[i].ops->type))
            return wh_error(ctx, WH_ERR_ARG, "attention layer %d: [%s] in the teacher, [%s] in the student", i,
                            teacher->layers[i].ops->type, student->layers[i].ops->type);
    }
    return WH_OK;
}
