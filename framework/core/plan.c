#include "framework/core/plan.h"

#include <stdlib.h>
#include <string.h>

#define WH__ALIGN 64

static size_t wh__round(size_t b)
{
    return (b + WH__ALIGN - 1) / WH__ALIGN * WH__ALIGN;
}

void wh_plan_init(wh_plan *p, int train)
{
    memset(p, 0, sizeof(*p));
    p->train = train;
}

void wh_plan_free(wh_plan *p)
{
    free(p->req);
    memset(p, 0, sizeof(*p));
}

wh_status wh_plan_bytes(wh_plan *p, wh_arena_kind kind, void **slot, size_t bytes)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 256;
        wh_plan_req *r = realloc(p->req, (size_t)cap * sizeof(*r));
        if (!r) {
            p->failed = 1;
            return WH_ERR_NOMEM;
        }
        p->req = r;
        p->cap = cap;
    }
    p->req[p->n].kind = kind;
    p->req[p->n].slot = slot;
    p->req[p->n].bytes = bytes;
    p->req[p->n].group = p->group;
    p->n++;
    return WH_OK;
}

wh_status wh_plan_buffer(wh_plan *p, wh_arena_kind kind, float **slot, size_t count)
{
    return wh_plan_bytes(p, kind, (void **)slot, count * sizeof(float));
}

int wh_plan_param(wh_plan *p, wh_layer *l, const char *name, size_t count, int flags)
{
    if (l->n_params >= WH_MAX_PARAMS) return -1;
    int i = l->n_params++;
    wh_param *pr = &l->params[i];
    pr->name = name;
    pr->count = count;
    pr->flags = flags;
    pr->ndims = 1;
    pr->dims[0] = (int)count;
    pr->data = NULL;
    pr->grad = NULL;
    if (wh_plan_buffer(p, WH_ARENA_PARAM, &pr->data, count) != WH_OK) return -1;
    if (p->train && (flags & WH_PARAM_TRAIN))
        if (wh_plan_buffer(p, WH_ARENA_GRAD, &pr->grad, count) != WH_OK) return -1;
    return i;
}

void wh_plan_end_layer(wh_plan *p)
{
    size_t s = 0;
    for (int i = p->layer_begin; i < p->n; i++)
        if (p->req[i].kind == WH_ARENA_SCRATCH) s += wh__round(p->req[i].bytes);
    if (s > p->scratch_max) p->scratch_max = s;
    p->layer_begin = p->n;
    p->group++;
}

wh_status wh_plan_allocate(wh_plan *p, float *arena[WH_ARENA_COUNT],
                           size_t bytes[WH_ARENA_COUNT], wh_ctx *ctx)
{
    if (p->failed) return wh_error(ctx, WH_ERR_NOMEM, "out of memory while planning");
    wh_plan_end_layer(p);
    size_t size[WH_ARENA_COUNT] = {0};
    for (int i = 0; i < p->n; i++)
        if (p->req[i].kind != WH_ARENA_SCRATCH) size[p->req[i].kind] += wh__round(p->req[i].bytes);
    size[WH_ARENA_SCRATCH] = p->scratch_max;
    for (int k = 0; k < WH_ARENA_COUNT; k++) {
        arena[k] = NULL;
        bytes[k] = size[k];
    }
    if (p->dry) { /* the sizes were the question */
        for (int i = 0; i < p->n; i++) *p->req[i].slot = NULL;
        return WH_OK;
    }
    for (int k = 0; k < WH_ARENA_COUNT; k++) {
        if (!size[k]) continue;
        arena[k] = aligned_alloc(WH__ALIGN, size[k]);
        if (!arena[k]) {
            for (int j = 0; j < k; j++) {
                free(arena[j]);
                arena[j] = NULL;
            }
            return wh_error(ctx, WH_ERR_NOMEM, "cannot allocate the %s arena (%.1f MiB)",
                            k == WH_ARENA_PARAM  ? "parameter"
                            : k == WH_ARENA_GRAD ? "gradient"
                            : k == WH_ARENA_ACT  ? "activation"
                                                 : "scratch",
                            (double)size[k] / (1 << 20));
        }
        memset(arena[k], 0, size[k]);
    }
    /* Hand out the addresses in request order; scratch restarts at 0 with
     * each layer's group, so layers share it. */
    size_t off[WH_ARENA_COUNT] = {0};
    int group = -1;
    for (int i = 0; i < p->n; i++) {
        wh_plan_req *r = &p->req[i];
        if (r->kind == WH_ARENA_SCRATCH && r->group != group) {
            group = r->group;
            off[WH_ARENA_SCRATCH] = 0;
        }
        *r->slot = r->bytes ? (char *)arena[r->kind] + off[r->kind] : NULL;
        off[r->kind] += wh__round(r->bytes);
    }
    return WH_OK;
}
