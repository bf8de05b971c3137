#include "sparse_train.h"

#include <stdlib.h>
#include <string.h>

wh_status wh_sparse_hook_init(wh_sparse_hook *h, const char *spec, const int *exclude, int n_exclude,
                              wh_ctx *ctx)
{
    memset(h, 0, sizeof(*h));
    WH_TRY(wh_sched_create(spec, &h->sched, ctx));
    if (n_exclude > 0) {
        h->exclude = malloc((size_t)n_exclude * sizeof(int));
        if (!h->exclude) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        memcpy(h->exclude, exclude, (size_t)n_exclude * sizeof(int));
        h->n_exclude = n_exclude;
    }
    return WH_OK;
}

void wh_sparse_hook_free(wh_sparse_hook *h)
{
    wh_sched_destroy(h->sched);
    wh_prunable_free(&h->set);
    free(h->exclude);
    free(h->absgamma);
    free(h->rate);
    memset(h, 0, sizeof(*h));
}

static wh_status wh__after_backward(void *user, wh_net *net, long it, wh_ctx *ctx)
{
    wh_sparse_hook *h = user;
    if (!h->have_set) {
        WH_TRY(wh_prunable_find(net, h->exclude, h->n_exclude, &h->set, ctx));
        size_t n = (size_t)(h->set.n_channels > 0 ? h->set.n_channels : 1);
        h->absgamma = malloc(n * sizeof(float));
        h->rate = malloc(n * sizeof(float));
        if (!h->absgamma || !h->rate) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        h->have_set = 1;
    }
    wh_prunable_absgamma(net, &h->set, h->absgamma);
    int below = 0;
    for (int c = 0; c < h->set.n_channels; c++) below += h->absgamma[c] < 1e-2f;
    h->last_below_1e2 = h->set.n_channels ? (double)below / h->set.n_channels : 0.0;
    h->sched->ops->rates(h->sched->state, it, net->hp.max_batches, h->absgamma, h->set.n_channels, h->rate);
    return wh_sparsity_apply(net, &h->set, h->rate, net->hp.batch, ctx);
}

static wh_status wh__save(void *user, wh_ckpt_writer *w, wh_ctx *ctx)
{
    return wh_sched_save(((wh_sparse_hook *)user)->sched, w, "sparsity", ctx);
}

static wh_status wh__load(void *user, wh_ckpt_reader *r, wh_ctx *ctx)
{
    return wh_sched_load(((wh_sparse_hook *)user)->sched, r, "sparsity", ctx);
}

void wh_sparse_hook_attach(wh_sparse_hook *h, wh_train_hooks *hooks)
{
    hooks->user = h;
    hooks->after_backward = wh__after_backward;
    hooks->save = wh__save;
    hooks->load = wh__load;
}
