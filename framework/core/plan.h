/* whittle: memory planning (internal to the net).
 *
 * Layers declare what they need through wh_plan_param / wh_plan_buffer
 * (layers/layer.h); the plan records the requests, then lays each arena out
 * in one allocation: PARAM, GRAD and ACT requests one after another, SCRATCH
 * requests one after another within a layer but overlapping across layers
 * (its size is the largest layer's need).
 */
#ifndef WH_PLAN_H
#define WH_PLAN_H

#include <dnnl.h>

#include "layers/layer.h"

typedef struct wh_plan_req {
    wh_arena_kind kind;
    void **slot;
    size_t bytes;
    int group;          /* scratch requests of one layer share a group */
} wh_plan_req;

struct wh_plan {
    wh_plan_req *req;
    int n, cap;
    int train;          /* gradients are only planned in training nets */
    dnnl_engine_t engine; /* for layers that size oneDNN buffers while planning */
    int group;          /* current layer's scratch group */
    int layer_begin;    /* first request of the layer being planned (scratch) */
    int failed;         /* an allocation of the request list failed */
    size_t scratch_max; /* bytes, finished layers */
    int dry;            /* sizes only: wh_plan_allocate allocates nothing (slots NULL) */
};

void wh_plan_init(wh_plan *p, int train);
void wh_plan_free(wh_plan *p);
/* Closes the current layer's scratch group. */
void wh_plan_end_layer(wh_plan *p);
/* Computes the arena sizes, allocates each (64-byte aligned, zeroed) and
 * writes every slot. On failure nothing stays allocated. */
wh_status wh_plan_allocate(wh_plan *p, float *arena[WH_ARENA_COUNT],
                           size_t bytes[WH_ARENA_COUNT], wh_ctx *ctx);

#endif
