#include "framework/train/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef WH_HAVE_MPI
#include <mpi.h>
#endif

/* One bucket: a byte range of the gradient arena that layers lo..hi own. */
typedef struct wh__bucket {
    int lo, hi;      /* layers, lo <= hi */
    float *ptr;
    size_t n;        /* floats */
    int started;
} wh__bucket;

struct wh_dist {
    int rank, size, local_size;
    int mpi;             /* MPI was started here */
    double timeout_s;
    size_t bucket_bytes;
    double comm_s;       /* seconds inside collectives since the last take */
    int agreed;          /* the failure being returned was every rank's verdict */
    wh__bucket *bk;
    int n_bk;
    size_t grad_floats;
#ifdef WH_HAVE_MPI
    MPI_Request *req;    /* one per bucket */
#endif
};

#ifdef WH_HAVE_MPI
static double wh__now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#endif

int wh_dist_compiled(void)
{
#ifdef WH_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

/* Launched by an MPI launcher: Open MPI, MPICH/Hydra, PMIx. */
static int wh__launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

wh_status wh_dist_init(int *argc, char ***argv, wh_dist **out, wh_ctx *ctx)
{
    wh_dist *d = calloc(1, sizeof(*d));
    if (!d) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    d->size = d->local_size = 1;
    d->timeout_s = 60;
    d->bucket_bytes = (size_t)4 << 20;
#ifdef WH_HAVE_MPI
    if (wh__launched()) {
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            free(d);
            return wh_error(ctx, WH_ERR_STATE, "MPI_Init_thread failed");
        }
        d->mpi = 1;
        /* errors come back as codes (the default handler aborts the job
         * before our message could name the collective and the rank) */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
        const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        if (!ls) ls = getenv("MPI_LOCALNRANKS");
        d->local_size = ls && atoi(ls) > 0 ? atoi(ls) : 1;
        if (provided < MPI_THREAD_FUNNELED) {
            wh_dist_finalize(d);
            return wh_error(ctx, WH_ERR_UNSUPPORTED, "this MPI does not provide MPI_THREAD_FUNNELED");
        }
    }
#else
    (void)argc;
    (void)argv;
    if (wh__launched()) {
        free(d);
        return wh_error(ctx, WH_ERR_UNSUPPORTED,
                        "started by an MPI launcher, but this whittle was built without MPI "
                        "(install libopenmpi-dev and rebuild)");
    }
#endif
    *out = d;
    return WH_OK;
}

void wh_dist_finalize(wh_dist *d)
{
    if (!d) return;
#ifdef WH_HAVE_MPI
    if (d->mpi) MPI_Finalize();
    free(d->req);
#endif
    free(d->bk);
    free(d);
}

void wh_dist_abort(wh_dist *d, int code)
{
#ifdef WH_HAVE_MPI
    if (d && d->mpi && d->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)d;
    (void)code;
#endif
}

void wh_dist_mark_agreed(wh_dist *d)
{
    if (d) d->agreed = 1;
}
int wh_dist_agreed(const wh_dist *d) { return d ? d->agreed : 0; }

int wh_dist_rank(const wh_dist *d) { return d ? d->rank : 0; }
int wh_dist_size(const wh_dist *d) { return d ? d->size : 1; }
int wh_dist_local_size(const wh_dist *d) { return d ? d->local_size : 1; }
void wh_dist_set_timeout(wh_dist *d, double seconds) { d->timeout_s = seconds; }
void wh_dist_set_bucket_bytes(wh_dist *d, size_t bytes) { d->bucket_bytes = bytes > 0 ? bytes : 1; }

double wh_dist_take_comm_seconds(wh_dist *d)
{
    const double s = d ? d->comm_s : 0;
    if (d) d->comm_s = 0;
    return s;
}

double wh_dist_grad_bytes(const wh_dist *d)
{
    if (!d || d->size < 2) return 0;
    return 2.0 * (d->size - 1) / d->size * (double)d->grad_floats * sizeof(float);
}

uint64_t wh_dist_hash(const void *buf, size_t bytes, uint64_t h)
{
    const unsigned char *p = buf;
    if (!h) h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

#ifdef WH_HAVE_MPI
/* The watchdog: tests the requests until all are done, sleeping a little
 * between tests after the first hundred (a waiting rank leaves its core to
 * the others: ranks may share cores), and fails after timeout_s seconds. */
static wh_status wh__wait(wh_dist *d, MPI_Request *req, int n, const char *what, wh_ctx *ctx)
{
    const double t0 = wh__now();
    for (long k = 0;; k++) {
        int done = 0;
        const int rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            char why[MPI_MAX_ERROR_STRING];
            int len = 0;
            if (MPI_Error_string(rc, why, &len) != MPI_SUCCESS) snprintf(why, sizeof(why), "error %d", rc);
            return wh_error(ctx, WH_ERR_IO, "rank %d of %d: MPI failed in %s: %s", d->rank, d->size, what, why);
        }
        if (done) break;
        const double t = wh__now();
        if (t - t0 > d->timeout_s)
            return wh_error(ctx, WH_ERR_IO,
                            "rank %d of %d: %s made no progress for %.0f s: another rank died or hangs "
                            "(--dist-timeout sets this watchdog)",
                            d->rank, d->size, what, d->timeout_s);
        if (k > 100) {
            struct timespec ts = {0, 50000}; /* 50 us */
            nanosleep(&ts, NULL);
        }
    }
    d->comm_s += wh__now() - t0;
    return WH_OK;
}

/* MPI counts are int: large buffers go in pieces. */
#define WH__CHUNK ((size_t)1 << 30)

static wh_status wh__sum(wh_dist *d, void *buf, size_t n, MPI_Datatype t, size_t elem, const char *what,
                         wh_ctx *ctx)
{
    for (size_t off = 0; off < n; off += WH__CHUNK / elem) {
        const size_t k = n - off < WH__CHUNK / elem ? n - off : WH__CHUNK / elem;
        MPI_Request r;
        if (MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)k, t, MPI_SUM, MPI_COMM_WORLD, &r) !=
            MPI_SUCCESS)
            return wh_error(ctx, WH_ERR_IO, "rank %d: MPI_Iallreduce failed in %s", d->rank, what);
        WH_TRY(wh__wait(d, &r, 1, what, ctx));
    }
    return WH_OK;
}
#endif

/* In-place sums of n floats (elem 4) or doubles (elem 8). */
static wh_status wh__sum_of(wh_dist *d, void *buf, size_t n, size_t elem, const char *what, wh_ctx *ctx)
{
    if (!d || d->size < 2) return WH_OK;
#ifdef WH_HAVE_MPI
    return wh__sum(d, buf, n, elem == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT, elem, what, ctx);
#else
    (void)buf, (void)n, (void)elem, (void)what, (void)ctx;
    return WH_OK;
#endif
}

wh_status wh_dist_sum_f32(wh_dist *d, float *buf, size_t n, const char *what, wh_ctx *ctx)
{
    return wh__sum_of(d, buf, n, sizeof(float), what, ctx);
}

wh_status wh_dist_sum_f64(wh_dist *d, double *buf, size_t n, const char *what, wh_ctx *ctx)
{
    return wh__sum_of(d, buf, n, sizeof(double), what, ctx);
}

wh_status wh_dist_bcast(wh_dist *d, void *buf, size_t bytes, const char *what, wh_ctx *ctx)
{
    if (!d || d->size < 2) return WH_OK;
#ifdef WH_HAVE_MPI
    for (size_t off = 0; off < bytes; off += WH__CHUNK) {
        const size_t k = bytes - off < WH__CHUNK ? bytes - off : WH__CHUNK;
        MPI_Request r;
        if (MPI_Ibcast((char *)buf + off, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD, &r) != MPI_SUCCESS)
            return wh_error(ctx, WH_ERR_IO, "rank %d: MPI_Ibcast failed in %s", d->rank, what);
        WH_TRY(wh__wait(d, &r, 1, what, ctx));
    }
    return WH_OK;
#else
    (void)buf, (void)bytes, (void)what, (void)ctx;
    return WH_OK;
#endif
}

wh_status wh_dist_gather(wh_dist *d, const void *mine, size_t bytes, void **all, size_t *total, const char *what,
                         wh_ctx *ctx)
{
    *all = NULL;
    *total = 0;
    if (!d || d->size < 2) {
        *all = malloc(bytes ? bytes : 1);
        if (!*all) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        if (bytes) memcpy(*all, mine, bytes);
        *total = bytes;
        return WH_OK;
    }
#ifdef WH_HAVE_MPI
    if (bytes > (size_t)1 << 30) return wh_error(ctx, WH_ERR_ARG, "%s: %zu bytes from one rank is too many", what, bytes);
    int mine_n = (int)bytes, *counts = NULL, *displs = NULL;
    char *buf = NULL;
    if (d->rank == 0) {
        counts = malloc((size_t)d->size * sizeof(int));
        displs = malloc((size_t)d->size * sizeof(int));
        if (!counts || !displs) {
            free(counts), free(displs);
            return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        }
    }
    MPI_Request r;
    wh_status st = WH_OK;
    if (MPI_Igather(&mine_n, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD, &r) != MPI_SUCCESS)
        st = wh_error(ctx, WH_ERR_IO, "rank %d: MPI_Igather failed in %s", d->rank, what);
    if (st == WH_OK) st = wh__wait(d, &r, 1, what, ctx);
    size_t sum = 0;
    if (st == WH_OK && d->rank == 0) {
        for (int k = 0; k < d->size; k++) {
            if (sum + (size_t)counts[k] > ((size_t)1 << 31) - 1) {
                st = wh_error(ctx, WH_ERR_ARG, "%s: more than 2 GB gathered", what);
                break;
            }
            displs[k] = (int)sum;
            sum += (size_t)counts[k];
        }
        if (st == WH_OK && !(buf = malloc(sum ? sum : 1))) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    /* every rank must enter the collective even when rank 0 failed above:
     * rank 0 then aborts the job, which ends the others */
    if (st == WH_OK &&
        MPI_Igatherv(mine, mine_n, MPI_BYTE, buf, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD, &r) != MPI_SUCCESS)
        st = wh_error(ctx, WH_ERR_IO, "rank %d: MPI_Igatherv failed in %s", d->rank, what);
    if (st == WH_OK) st = wh__wait(d, &r, 1, what, ctx);
    free(counts);
    free(displs);
    if (st != WH_OK) {
        free(buf);
        return st;
    }
    *all = buf;
    *total = sum;
    return WH_OK;
#else
    return wh_error(ctx, WH_ERR_STATE, "%s: no MPI", what);
#endif
}

wh_status wh_dist_same_u64(wh_dist *d, uint64_t v, int *same, const char *what, wh_ctx *ctx)
{
    *same = 1;
    if (!d || d->size < 2) return WH_OK;
#ifdef WH_HAVE_MPI
    uint64_t mm[2] = {v, ~v}, r[2]; /* max of v and of ~v: min and max in one reduction */
    MPI_Request q;
    if (MPI_Iallreduce(mm, r, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD, &q) != MPI_SUCCESS)
        return wh_error(ctx, WH_ERR_IO, "rank %d: MPI_Iallreduce failed in %s", d->rank, what);
    WH_TRY(wh__wait(d, &q, 1, what, ctx));
    *same = r[0] == ~r[1];
    return WH_OK;
#else
    (void)v, (void)what, (void)ctx;
    return WH_OK;
#endif
}

wh_status wh_dist_barrier(wh_dist *d, const char *what, wh_ctx *ctx)
{
    if (!d || d->size < 2) return WH_OK;
#ifdef WH_HAVE_MPI
    MPI_Request r;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &r) != MPI_SUCCESS)
        return wh_error(ctx, WH_ERR_IO, "rank %d: MPI_Ibarrier failed in %s", d->rank, what);
    return wh__wait(d, &r, 1, what, ctx);
#else
    (void)what, (void)ctx;
    return WH_OK;
#endif
}

static wh_status wh__bn_sum(void *user, double *buf, size_t n, wh_ctx *ctx)
{
    return wh_dist_sum_f64(user, buf, n, "the batch-norm statistics allreduce", ctx);
}

void wh_dist_bn_sync(wh_dist *d, wh_net *net, int on)
{
    const int sync = on && d && d->size > 1;
    net->bn_sum = sync ? wh__bn_sum : NULL;
    net->bn_user = sync ? d : NULL;
    net->bn_ranks = sync ? d->size : 1;
}

/* ---- the gradient buckets ---- */

/* The byte range of layer i's gradients: [*lo, *hi) (NULL when none). */
static void wh__layer_grads(const wh_layer *l, float **lo, float **hi)
{
    *lo = *hi = NULL;
    for (int p = 0; p < l->n_params; p++) {
        const wh_param *pr = &l->params[p];
        if (!pr->grad || !pr->count) continue;
        if (!*lo || pr->grad < *lo) *lo = pr->grad;
        if (!*hi || pr->grad + pr->count > *hi) *hi = pr->grad + pr->count;
    }
}

wh_status wh_dist_grads_plan(wh_dist *d, wh_net *net, wh_ctx *ctx)
{
    free(d->bk);
    d->bk = NULL;
    d->n_bk = 0;
    d->grad_floats = net->arena_bytes[WH_ARENA_GRAD] / sizeof(float);
    if (d->size < 2 || !net->arena[WH_ARENA_GRAD]) return WH_OK;
    d->bk = calloc((size_t)net->n_layers + 1, sizeof(wh__bucket));
#ifdef WH_HAVE_MPI
    free(d->req);
    d->req = calloc((size_t)net->n_layers + 1, sizeof(MPI_Request));
    if (!d->req) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
#endif
    if (!d->bk) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    /* From the last layer back (the order the backward finishes them), cut
     * a bucket once it holds bucket_bytes. A bucket spans from its lowest
     * gradient to its highest; they must not overlap, which holds when the
     * gradients lie in layer order (the planner's order). */
    /* at most about 16 buckets: each pays the ring's 2 (N-1) latencies */
    const size_t bucket = d->bucket_bytes > net->arena_bytes[WH_ARENA_GRAD] / 16 ? d->bucket_bytes
                                                                                 : net->arena_bytes[WH_ARENA_GRAD] / 16;
    float *prev_lo = NULL;
    int ordered = 1;
    wh__bucket cur = {.lo = -1};
    for (int i = net->n_layers - 1; i >= 0; i--) {
        float *lo, *hi;
        wh__layer_grads(&net->layers[i], &lo, &hi);
        if (!lo) continue;
        if (prev_lo && hi > prev_lo) ordered = 0;
        prev_lo = lo;
        if (cur.lo < 0) {
            cur = (wh__bucket){.lo = i, .hi = i, .ptr = lo, .n = (size_t)(hi - lo)};
        } else {
            cur.n += (size_t)(cur.ptr - lo);
            cur.ptr = lo;
            cur.lo = i;
        }
        if (cur.n * sizeof(float) >= bucket) {
            d->bk[d->n_bk++] = cur;
            cur.lo = -1;
        }
    }
    if (cur.lo >= 0) d->bk[d->n_bk++] = cur;
    if (!ordered) { /* one bucket over the whole arena, at the end */
        d->n_bk = 1;
        d->bk[0] = (wh__bucket){.lo = 0, .hi = net->n_layers - 1, .ptr = net->arena[WH_ARENA_GRAD],
                                .n = d->grad_floats};
    }
    return WH_OK;
}

#ifdef WH_HAVE_MPI
static wh_status wh__start_bucket(wh_dist *d, int b, wh_ctx *ctx)
{
    wh__bucket *k = &d->bk[b];
    if (k->n > (size_t)1 << 30)
        return wh_error(ctx, WH_ERR_UNSUPPORTED, "a gradient bucket of %zu floats is too large", k->n);
    if (MPI_Iallreduce(MPI_IN_PLACE, k->ptr, (int)k->n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &d->req[b]) !=
        MPI_SUCCESS)
        return wh_error(ctx, WH_ERR_IO, "rank %d: MPI_Iallreduce of gradient bucket %d failed", d->rank, b);
    k->started = 1;
    return WH_OK;
}
#endif

wh_status wh_dist_grads_layer_done(wh_dist *d, int layer, wh_ctx *ctx)
{
    if (!d || d->size < 2) return WH_OK;
#ifdef WH_HAVE_MPI
    const double t0 = wh__now();
    int any = 0;
    for (int b = 0; b < d->n_bk; b++) {
        if (!d->bk[b].started && layer <= d->bk[b].lo) WH_TRY(wh__start_bucket(d, b, ctx));
        any |= d->bk[b].started;
    }
    if (any) { /* drive the outstanding ones (Open MPI progresses inside MPI calls) */
        int done;
        for (int b = 0; b < d->n_bk; b++)
            if (d->bk[b].started) MPI_Test(&d->req[b], &done, MPI_STATUS_IGNORE);
    }
    d->comm_s += wh__now() - t0;
#else
    (void)layer, (void)ctx;
#endif
    return WH_OK;
}

wh_status wh_dist_grads_finish(wh_dist *d, wh_ctx *ctx)
{
    if (!d || d->size < 2) return WH_OK;
#ifdef WH_HAVE_MPI
    for (int b = 0; b < d->n_bk; b++)
        if (!d->bk[b].started) WH_TRY(wh__start_bucket(d, b, ctx));
    WH_TRY(wh__wait(d, d->req, d->n_bk, "the gradient allreduce", ctx));
    for (int b = 0; b < d->n_bk; b++) d->bk[b].started = 0;
#else
    (void)ctx;
#endif
    return WH_OK;
}
