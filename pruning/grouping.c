/* Module roles and the grouping plug-ins of stage 2.
 *
 * Roles (backbone, top-down neck, bottom-up neck, head) and strides are read
 * from the graph alone: layer types, inputs and output shapes. The groupings
 * then give every unit (a prunable convolution of wh_depgraph) a group; the
 * paper's "scale-module" grouping is built from the roles, so that the same
 * rule cuts YOLOv3, v4, v4-tiny or a user's net without a layer index.
 *
 * Every plug-in but "file" names each unit's group ("s16", "L12", ...); one
 * helper turns names into group numbers in order of first unit, so the
 * numbering rule lives in one place.
 */
#include "prune.h"

#include "framework/core/fileio.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- module roles ------------------------------------------------------------ */

static const char *const wh__role_names[] = {"backbone", "topdown", "bottomup", "head"};
_Static_assert(sizeof(wh__role_names) / sizeof(wh__role_names[0]) == WH_ROLE_HEAD + 1, "one name per wh_role");

const char *wh_role_name(wh_role r)
{
    return (unsigned)r <= (unsigned)WH_ROLE_HEAD ? wh__role_names[r] : "?";
}

static int wh__is_head(const wh_layer *l)
{
    wh_layer_facts f;
    wh_layer_facts_get(l, &f);
    return f.head;
}

/* A layer that raises the resolution (an upsample, a transposed conv). */
static int wh__raises_resolution(const wh_layer *l)
{
    return l->n_in > 0 && l->out_shape.h > l->in_shape[0].h;
}

/* Whether every layer that reads layer i is marked in head[] (and one does). */
static int wh__all_consumers_head(const wh_net *net, int i, const unsigned char *head)
{
    int n = 0;
    for (int j = i + 1; j < net->n_layers; j++) {
        const wh_layer *c = &net->layers[j];
        for (int k = 0; k < c->n_in; k++)
            if (c->in[k] == i) {
                if (!head[j]) return 0;
                n++;
                break;
            }
    }
    return n > 0;
}

/* The head of a detection layer: the [yolo] layer, the prediction conv that
 * feeds it (no BN, filters = anchors * (classes + 5)) and the conv with BN in
 * front of that (darknet's 3x3), i.e. the single-input chain up the yolo's
 * input while every consumer is already head, ending at the first conv with
 * BN. "Every consumer is head" alone would not stop there: on yolov4 layer
 * 158 only feeds the head conv 159, and so on back to the image. */
static void wh__mark_heads(const wh_net *net, unsigned char *head)
{
    int changed = 1;
    /* repeated until nothing changes: a conv shared by two detection chains
     * becomes head once both chains are marked */
    while (changed) {
        changed = 0;
        for (int y = 0; y < net->n_layers; y++) {
            if (!wh__is_head(&net->layers[y])) continue;
            if (!head[y]) head[y] = 1, changed = 1;
            int p = y;
            while (net->layers[p].n_in == 1 && net->layers[p].in[0] >= 0) {
                const int q = net->layers[p].in[0];
                if (!head[q]) {
                    if (!wh__all_consumers_head(net, q, head)) break;
                    head[q] = 1;
                    changed = 1;
                }
                wh_layer_facts f;
                wh_layer_facts_get(&net->layers[q], &f);
                if (net->layers[q].ops->flow == WH_FLOW_NEW && f.bn) break;
                p = q;
            }
        }
    }
}

static int wh__stride_of(const wh_net *net, int i)
{
    if (i < 0) return 1;
    const int h = net->layers[i].out_shape.h;
    const int s = h > 0 ? net->in_shape.h / h : 1;
    return s >= 1 ? s : 1;
}

wh_status wh_net_roles(const wh_net *net, wh_role *role, int *stride, wh_ctx *ctx)
{
    const int n = net->n_layers;
    unsigned char *head = calloc((size_t)n + 1, 1);
    if (!head) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) stride[i] = wh__stride_of(net, i);
    wh__mark_heads(net, head);
    /* the neck starts at the first layer an upsample reads */
    int first_neck = n;
    for (int i = 0; i < n; i++)
        if (wh__raises_resolution(&net->layers[i]))
            for (int k = 0; k < net->layers[i].n_in; k++)
                if (net->layers[i].in[k] >= 0 && net->layers[i].in[k] < first_neck) first_neck = net->layers[i].in[k];
    /* top-down while the stride falls or holds; from the first stride
     * increase (a downsampling conv in the neck) on, bottom-up */
    int bottomup = 0, prev = -1;
    for (int i = 0; i < n; i++) {
        if (head[i]) role[i] = WH_ROLE_HEAD;
        else if (i < first_neck) role[i] = WH_ROLE_BACKBONE;
        else {
            if (prev >= 0 && stride[i] > prev) bottomup = 1;
            prev = stride[i];
            role[i] = bottomup ? WH_ROLE_BOTTOMUP : WH_ROLE_TOPDOWN;
        }
    }
    free(head);
    return WH_OK;
}

/* ---- groupings: allocation and the numbering rule ------------------------------- */

wh_status wh_grouping_alloc(wh_grouping *out, int n_groups, int n_units, wh_ctx *ctx)
{
    memset(out, 0, sizeof(*out));
    out->n_groups = n_groups;
    out->name = calloc((size_t)(n_groups > 0 ? n_groups : 1), sizeof(*out->name));
    out->ratio = malloc((size_t)(n_groups > 0 ? n_groups : 1) * sizeof(double));
    out->unit_group = malloc((size_t)(n_units > 0 ? n_units : 1) * sizeof(int));
    if (!out->name || !out->ratio || !out->unit_group) {
        wh_grouping_free(out);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; k < n_groups; k++) out->ratio[k] = NAN;
    /* -1: not assigned yet (wh_grouping_make rejects a plug-in that leaves one) */
    for (int u = 0; u < n_units; u++) out->unit_group[u] = -1;
    return WH_OK;
}

void wh_grouping_free(wh_grouping *gr)
{
    free(gr->name);
    free(gr->ratio);
    free(gr->unit_group);
    memset(gr, 0, sizeof(*gr));
}

/* Groups from a name per unit: equal names are one group, numbered in order
 * of their first unit (units are in layer order). */
static wh_status wh__group_by_name(char (*unit_name)[WH_GROUP_NAME], int n_units, wh_grouping *out, wh_ctx *ctx)
{
    int n_groups = 0;
    for (int u = 0; u < n_units; u++) {
        int seen = 0;
        for (int v = 0; v < u && !seen; v++) seen = !strcmp(unit_name[v], unit_name[u]);
        n_groups += !seen;
    }
    WH_TRY(wh_grouping_alloc(out, n_groups, n_units, ctx));
    int k = 0;
    for (int u = 0; u < n_units; u++) {
        int grp = -1;
        for (int j = 0; j < k && grp < 0; j++)
            if (!strcmp(out->name[j], unit_name[u])) grp = j;
        if (grp < 0) {
            grp = k++;
            memcpy(out->name[grp], unit_name[u], WH_GROUP_NAME);
        }
        out->unit_group[u] = grp;
    }
    return WH_OK;
}

/* What the naming plug-ins read about the net. */
typedef struct wh__netinfo {
    wh_role *role;   /* per layer */
    int *stride;     /* per layer: input size / output size */
    int head_stride; /* smallest stride a detection layer reads (8 on yolov4); 0: none */
    int bottomup;    /* the neck has a bottom-up path */
} wh__netinfo;

typedef void (*wh__namer)(const wh_net *net, const wh_depgraph *g, const wh__netinfo *in, int u,
                          char name[WH_GROUP_NAME]);

static wh_status wh__named(const char *plugin, const wh__namer namer, const wh_net *net, const wh_depgraph *g,
                           const char *arg, wh_grouping *out, wh_ctx *ctx)
{
    if (arg && *arg) return wh_error(ctx, WH_ERR_ARG, "grouping '%s' takes no argument (got '%s')", plugin, arg);
    const int n = net->n_layers;
    wh__netinfo in = {0};
    char(*names)[WH_GROUP_NAME] = malloc((size_t)(g->n_units > 0 ? g->n_units : 1) * sizeof(*names));
    in.role = malloc((size_t)(n > 0 ? n : 1) * sizeof(wh_role));
    in.stride = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    wh_status st = WH_OK;
    if (!names || !in.role || !in.stride) {
        st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = wh_net_roles(net, in.role, in.stride, ctx)) != WH_OK) goto done;
    for (int i = 0; i < n; i++) {
        const wh_layer *l = &net->layers[i];
        if (wh__is_head(l) && l->n_in > 0) {
            const int s = wh__stride_of(net, l->in[0]);
            if (in.head_stride == 0 || s < in.head_stride) in.head_stride = s;
        }
        in.bottomup |= in.role[i] == WH_ROLE_BOTTOMUP;
    }
    for (int u = 0; u < g->n_units; u++) namer(net, g, &in, u, names[u]);
    st = wh__group_by_name(names, g->n_units, out, ctx);
done:
    free(names);
    free(in.role);
    free(in.stride);
    return st;
}

/* ---- the plug-ins ----------------------------------------------------------------- */

static void wh__name_global(const wh_net *net, const wh_depgraph *g, const wh__netinfo *in, int u,
                            char name[WH_GROUP_NAME])
{
    (void)net, (void)g, (void)in, (void)u;
    snprintf(name, WH_GROUP_NAME, "all");
}

static void wh__name_layer(const wh_net *net, const wh_depgraph *g, const wh__netinfo *in, int u,
                           char name[WH_GROUP_NAME])
{
    (void)net, (void)in;
    snprintf(name, WH_GROUP_NAME, "L%d", g->unit_layer[u]);
}

static void wh__name_scale(const wh_net *net, const wh_depgraph *g, const wh__netinfo *in, int u,
                           char name[WH_GROUP_NAME])
{
    (void)net;
    snprintf(name, WH_GROUP_NAME, "s%d", in->stride[g->unit_layer[u]]);
}

/* The paper's groups. The backbone is cut by stride, except that everything
 * that reads a map at or below the finest detection stride is one group:
 * those early maps are few channels each and the paper prunes them as one
 * (G1). A unit belongs to that merged group when its INPUT is at such a
 * stride, so the conv that downsamples out of it stays with it: this is what
 * gives the authors' yolov4 boundaries (layer 55, 3x3/2 from stride 8 to 16,
 * ends G1 = 0-55). Above that, a unit goes by its output stride (86, 3x3/2 to
 * stride 32, starts G3 = 86-116), again as the authors cut it. */
static void wh__name_scale_module(const wh_net *net, const wh_depgraph *g, const wh__netinfo *in, int u,
                                  char name[WH_GROUP_NAME])
{
    const int i = g->unit_layer[u];
    const wh_layer *l = &net->layers[i];
    switch (in->role[i]) {
    case WH_ROLE_BACKBONE: {
        const int in_stride = l->n_in > 0 ? wh__stride_of(net, l->in[0]) : 1;
        const int s = in->head_stride > 0 && in_stride <= in->head_stride ? in->head_stride : in->stride[i];
        snprintf(name, WH_GROUP_NAME, "backbone-s%d", s);
        break;
    }
    case WH_ROLE_TOPDOWN: snprintf(name, WH_GROUP_NAME, "neck-topdown"); break;
    default: snprintf(name, WH_GROUP_NAME, "%s", in->bottomup ? "neck-bottomup+heads" : "heads");
    }
}

static wh_status wh__global(const wh_net *net, const wh_depgraph *g, const char *arg, wh_grouping *out, wh_ctx *ctx)
{
    return wh__named("global", wh__name_global, net, g, arg, out, ctx);
}
static wh_status wh__layer(const wh_net *net, const wh_depgraph *g, const char *arg, wh_grouping *out, wh_ctx *ctx)
{
    return wh__named("layer", wh__name_layer, net, g, arg, out, ctx);
}
static wh_status wh__scale(const wh_net *net, const wh_depgraph *g, const char *arg, wh_grouping *out, wh_ctx *ctx)
{
    return wh__named("scale", wh__name_scale, net, g, arg, out, ctx);
}
static wh_status wh__scale_module(const wh_net *net, const wh_depgraph *g, const char *arg, wh_grouping *out,
                                  wh_ctx *ctx)
{
    return wh__named("scale-module", wh__name_scale_module, net, g, arg, out, ctx);
}

/* ---- "file": groups read from a text file ------------------------------------------- */

typedef struct wh__range {
    int first, last; /* layer indices, inclusive */
    int group;       /* into the file's groups */
    int line;
} wh__range;

typedef struct wh__fgroup {
    char name[WH_GROUP_NAME];
    double ratio;   /* NaN: none given */
    int ratio_line; /* where the ratio was given */
} wh__fgroup;

/* "first-last", both non-negative decimal integers. */
static int wh__parse_range(const char *s, int *first, int *last)
{
    char *e;
    if (!isdigit((unsigned char)s[0])) return 0;
    errno = 0;
    const long a = strtol(s, &e, 10);
    if (*e != '-' || !isdigit((unsigned char)e[1])) return 0;
    const long b = strtol(e + 1, &e, 10);
    if (*e || errno || a > 1000000 || b > 1000000) return 0;
    *first = (int)a;
    *last = (int)b;
    return 1;
}

/* Splits s on white space into at most max tokens (in place); returns the
 * number of tokens found, which may exceed max. */
static int wh__split(char *s, char **tok, int max)
{
    int n = 0;
    for (;;) {
        while (*s && isspace((unsigned char)*s)) s++;
        if (!*s) return n;
        if (n < max) tok[n] = s;
        n++;
        while (*s && !isspace((unsigned char)*s)) s++;
        if (*s) *s++ = 0;
    }
}

/* Reads the file into groups and ranges (growing arrays; the caller frees). */
static wh_status wh__read_groups(const char *path, int n_layers, wh__fgroup **gs, int *n_gs, wh__range **rg,
                                 int *n_rg, wh_ctx *ctx)
{
    /* whole and bounded (a regular file of at most 64 MiB), then line by line */
    char *text;
    WH_TRY(wh_file_read_text(path, WH_TEXT_MAX_BYTES, "group preset", &text, ctx));
    FILE *f = fmemopen(text, strlen(text) + 1, "r");
    if (!f) {
        free(text);
        return wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory", path);
    }
    int cap_g = 0, cap_r = 0, line = 0;
    wh_status st = WH_OK;
    char buf[1024];
    while (fgets(buf, sizeof(buf), f)) {
        line++;
        const size_t len = strlen(buf);
        if (len == sizeof(buf) - 1 && buf[len - 1] != '\n' && !feof(f)) {
            st = wh_error(ctx, WH_ERR_ARG, "%s:%d: line longer than %d characters", path, line, (int)sizeof(buf) - 2);
            goto done;
        }
        char *hash = strchr(buf, '#');
        if (hash) *hash = 0;
        char *tok[3];
        const int nt = wh__split(buf, tok, 3);
        if (nt == 0) continue;
        if (nt < 2 || nt > 3) {
            st = wh_error(ctx, WH_ERR_ARG, "%s:%d: expected 'name first-last [ratio]', got %d field%s", path, line,
                          nt, nt == 1 ? "" : "s");
            goto done;
        }
        if (strlen(tok[0]) >= WH_GROUP_NAME) {
            st = wh_error(ctx, WH_ERR_ARG, "%s:%d: group name '%.20s...' longer than %d characters", path, line,
                          tok[0], WH_GROUP_NAME - 1);
            goto done;
        }
        int first, last;
        if (!wh__parse_range(tok[1], &first, &last)) {
            st = wh_error(ctx, WH_ERR_ARG, "%s:%d: bad range '%s' (expected first-last layer indices, e.g. 0-55)",
                          path, line, tok[1]);
            goto done;
        }
        if (first > last) {
            st = wh_error(ctx, WH_ERR_ARG, "%s:%d: range %d-%d is reversed", path, line, first, last);
            goto done;
        }
        if (last >= n_layers) {
            st = wh_error(ctx, WH_ERR_ARG, "%s:%d: range %d-%d goes past the network's last layer %d", path, line,
                          first, last, n_layers - 1);
            goto done;
        }
        double ratio = NAN;
        if (nt == 3) {
            char *e;
            ratio = strtod(tok[2], &e);
            if (e == tok[2] || *e || !isfinite(ratio)) {
                st = wh_error(ctx, WH_ERR_ARG, "%s:%d: bad ratio '%s' (expected a number in [0, 1))", path, line,
                              tok[2]);
                goto done;
            }
            if (ratio < 0 || ratio >= 1) {
                st = wh_error(ctx, WH_ERR_ARG, "%s:%d: ratio %g is outside [0, 1)", path, line, ratio);
                goto done;
            }
        }
        for (int r = 0; r < *n_rg; r++)
            if (first <= (*rg)[r].last && (*rg)[r].first <= last) {
                st = wh_error(ctx, WH_ERR_ARG, "%s:%d: range %d-%d overlaps range %d-%d of line %d", path, line,
                              first, last, (*rg)[r].first, (*rg)[r].last, (*rg)[r].line);
                goto done;
            }
        /* a name given on several lines is one group with several ranges */
        int grp = -1;
        for (int k = 0; k < *n_gs && grp < 0; k++)
            if (!strcmp((*gs)[k].name, tok[0])) grp = k;
        if (grp < 0) {
            if (*n_gs == cap_g) {
                cap_g = cap_g ? 2 * cap_g : 8;
                wh__fgroup *p = realloc(*gs, (size_t)cap_g * sizeof(**gs));
                if (!p) {
                    st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
                    goto done;
                }
                *gs = p;
            }
            grp = (*n_gs)++;
            memset(&(*gs)[grp], 0, sizeof(**gs));
            memcpy((*gs)[grp].name, tok[0], strlen(tok[0]) + 1);
            (*gs)[grp].ratio = NAN;
        }
        wh__fgroup *fg = &(*gs)[grp];
        if (!isnan(ratio)) {
            if (!isnan(fg->ratio) && fg->ratio != ratio) {
                st = wh_error(ctx, WH_ERR_ARG, "%s:%d: group '%s' has ratio %g here but %g on line %d", path, line,
                              fg->name, ratio, fg->ratio, fg->ratio_line);
                goto done;
            }
            fg->ratio = ratio;
            fg->ratio_line = line;
        }
        if (*n_rg == cap_r) {
            cap_r = cap_r ? 2 * cap_r : 8;
            wh__range *p = realloc(*rg, (size_t)cap_r * sizeof(**rg));
            if (!p) {
                st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
                goto done;
            }
            *rg = p;
        }
        (*rg)[(*n_rg)++] = (wh__range){first, last, grp, line};
    }
    if (ferror(f)) st = wh_error(ctx, WH_ERR_IO, "%s: read error after line %d", path, line);
    else if (*n_rg == 0)
        st = wh_error(ctx, WH_ERR_ARG, "%s: no groups (expected lines 'name first-last [ratio]')", path);
done:
    fclose(f);
    free(text);
    return st;
}

/* Groups whose ranges hold no unit (e.g. a range of routes only, or convs
 * the depgraph left out) are dropped: a group must have a unit. The others
 * are renumbered in order of their first unit, as every grouping; their
 * ratios move with them, so out->ratio[k] is always group k's own ratio
 * whatever the order of the lines in the file. */
static wh_status wh__file(const wh_net *net, const wh_depgraph *g, const char *path, wh_grouping *out, wh_ctx *ctx)
{
    if (!path || !*path) return wh_error(ctx, WH_ERR_ARG, "grouping 'file' needs the path of a groups file");
    wh__fgroup *gs = NULL;
    wh__range *rg = NULL;
    int n_gs = 0, n_rg = 0;
    int *unit_fg = NULL, *map = NULL;
    wh_status st = wh__read_groups(path, net->n_layers, &gs, &n_gs, &rg, &n_rg, ctx);
    if (st != WH_OK) goto done;
    unit_fg = malloc((size_t)(g->n_units > 0 ? g->n_units : 1) * sizeof(int));
    map = malloc((size_t)n_gs * sizeof(int));
    if (!unit_fg || !map) {
        st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int u = 0; u < g->n_units; u++) {
        const int i = g->unit_layer[u];
        unit_fg[u] = -1;
        for (int r = 0; r < n_rg && unit_fg[u] < 0; r++)
            if (rg[r].first <= i && i <= rg[r].last) unit_fg[u] = rg[r].group;
        if (unit_fg[u] < 0) {
            st = wh_error(ctx, WH_ERR_ARG, "%s: layer %d (a prunable convolution) is in no group's range", path, i);
            goto done;
        }
    }
    int n_out = 0;
    for (int k = 0; k < n_gs; k++) map[k] = -1;
    for (int u = 0; u < g->n_units; u++)
        if (map[unit_fg[u]] < 0) map[unit_fg[u]] = n_out++;
    if ((st = wh_grouping_alloc(out, n_out, g->n_units, ctx)) != WH_OK) goto done;
    for (int k = 0; k < n_gs; k++)
        if (map[k] >= 0) {
            memcpy(out->name[map[k]], gs[k].name, WH_GROUP_NAME);
            out->ratio[map[k]] = gs[k].ratio;
        }
    for (int u = 0; u < g->n_units; u++) out->unit_group[u] = map[unit_fg[u]];
done:
    free(gs);
    free(rg);
    free(unit_fg);
    free(map);
    return st;
}

/* ---- registry ------------------------------------------------------------------------ */

static const wh_grouping_ops wh__groupings[] = {
    {"global", "one group: every unit", wh__global},
    {"layer", "a group per unit, named L<layer index>", wh__layer},
    {"scale", "a group per output stride, named s8, s16, ...", wh__scale},
    {"scale-module",
     "the paper's groups: backbone by stride (the finest detection stride and below as one), top-down neck, "
     "bottom-up neck with the heads",
     wh__scale_module},
    {"file", "groups from a file of lines 'name first-last [ratio]' (layer indices, inclusive)", wh__file},
};
#define WH__N_GROUPINGS ((int)(sizeof(wh__groupings) / sizeof(wh__groupings[0])))
#define WH__MAX_USER_GROUPINGS 32
static const wh_grouping_ops *wh__user_groupings[WH__MAX_USER_GROUPINGS];
static int wh__n_user_groupings;

static const wh_grouping_ops *wh__grouping_find(const char *name)
{
    for (int i = 0; name && i < WH__N_GROUPINGS; i++)
        if (!strcmp(name, wh__groupings[i].name)) return &wh__groupings[i];
    for (int i = 0; name && i < wh__n_user_groupings; i++)
        if (!strcmp(name, wh__user_groupings[i]->name)) return wh__user_groupings[i];
    return NULL;
}

wh_status wh_grouping_register(const wh_grouping_ops *ops, wh_ctx *ctx)
{
    if (!ops || !ops->name || !ops->name[0] || !ops->assign)
        return wh_error(ctx, WH_ERR_ARG, "a grouping needs a name and assign");
    if (wh__grouping_find(ops->name))
        return wh_error(ctx, WH_ERR_ARG, "grouping '%s' is already registered", ops->name);
    if (wh__n_user_groupings >= WH__MAX_USER_GROUPINGS)
        return wh_error(ctx, WH_ERR_ARG, "too many user groupings (at most %d)", WH__MAX_USER_GROUPINGS);
    wh__user_groupings[wh__n_user_groupings++] = ops;
    return WH_OK;
}

void wh_grouping_names(char *buf, size_t n)
{
    size_t used = 0;
    if (n == 0) return;
    buf[0] = 0;
    for (int i = 0; i < WH__N_GROUPINGS && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", wh__groupings[i].name);
    for (int i = 0; i < wh__n_user_groupings && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, ", %s", wh__user_groupings[i]->name);
}

/* The promises every plug-in makes, checked once here: each unit in a group,
 * no empty group, groups in order of their first unit. */
static wh_status wh__check(const char *plugin, const wh_depgraph *g, const wh_grouping *gr, wh_ctx *ctx)
{
    int next = 0;
    for (int u = 0; u < g->n_units; u++) {
        const int k = gr->unit_group[u];
        if (k < 0 || k >= gr->n_groups || k > next)
            return wh_error(ctx, WH_ERR_STATE, "grouping '%s': unit %d (layer %d) has group %d of %d out of order",
                            plugin, u, g->unit_layer[u], k, gr->n_groups);
        if (k == next) next++;
    }
    if (next != gr->n_groups)
        return wh_error(ctx, WH_ERR_STATE, "grouping '%s': %d of its %d groups have no unit", plugin,
                        gr->n_groups - next, gr->n_groups);
    return WH_OK;
}

wh_status wh_grouping_make(const char *name, const char *arg, const wh_net *net, const wh_depgraph *g,
                           wh_grouping *out, wh_ctx *ctx)
{
    memset(out, 0, sizeof(*out));
    const wh_grouping_ops *ops = wh__grouping_find(name);
    if (!ops) {
        char known[256];
        wh_grouping_names(known, sizeof(known));
        return wh_error(ctx, WH_ERR_ARG, "unknown grouping '%s' (known: %s)", name ? name : "", known);
    }
    if (g->n_layers != net->n_layers)
        return wh_error(ctx, WH_ERR_ARG, "grouping '%s': the dependency graph has %d layers, the network %d",
                        ops->name, g->n_layers, net->n_layers);
    wh_status st = ops->assign(net, g, arg, out, ctx);
    if (st == WH_OK) st = wh__check(ops->name, g, out, ctx);
    if (st != WH_OK) wh_grouping_free(out);
    return st;
}
