/* whittle: data-parallel training over MPI.
 *
 * A job of N ranks trains the network one process would train with the same
 * flags: [net] batch stays the images of one iteration over all ranks, and
 * rank r takes images r*n .. r*n+n-1 of every mini-batch of n*N (n =
 * batch / (subdivisions * N)), the same images, with the same augmentation,
 * that the single process sees. Rank 0's weights are broadcast at the start;
 * parameter gradients are summed with MPI_Iallreduce in buckets of layers,
 * each started as soon as the backward has passed its layers (the last
 * mini-batch of an iteration) and driven forward between layers; batch-norm
 * statistics may be summed across ranks too (wh_dist_bn_sync), so that a
 * 2 x 4 job normalises over the same 8 images as one process with batch 8.
 * Everything after the allreduce (the sparsity regulariser, its scheduler,
 * the optimizer step) then sees identical numbers on every rank.
 *
 * Every collective here is non-blocking underneath and waited for by a
 * watchdog: one that makes no progress for timeout_s seconds (a rank died or
 * hangs) fails with a message naming the collective and the rank, and the
 * app aborts the whole job (wh_dist_abort) so that it ends with a non-zero
 * status instead of waiting forever.
 *
 * Without MPI at build time, or when the process was not started by an MPI
 * launcher (no OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK in the
 * environment), there is one rank and every call is the identity: the plain
 * single-process path.
 */
#ifndef WH_DIST_H
#define WH_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "framework/core/net.h"
#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wh_dist wh_dist;

/* Starts MPI when launched under it (MPI_THREAD_FUNNELED: only the main
 * thread calls MPI) and returns the job's handle; one rank otherwise. */
wh_status wh_dist_init(int *argc, char ***argv, wh_dist **out, wh_ctx *ctx);
/* MPI_Finalize (when started) and free. */
void wh_dist_finalize(wh_dist *d);
/* Ends every rank of the job with this exit code (MPI_Abort); apps only. */
void wh_dist_abort(wh_dist *d, int code);

/* A failure that every rank decided together (the same collective verdict,
 * e.g. a non-finite value on some rank): each rank still reaches the app,
 * which can let all of them report it and meet in a barrier before ending,
 * instead of aborting the job while another rank is still printing. A
 * failure of one rank alone (an I/O error, a dead peer) is not agreed and
 * ends the job with wh_dist_abort. */
void wh_dist_mark_agreed(wh_dist *d);
int wh_dist_agreed(const wh_dist *d);

int wh_dist_rank(const wh_dist *d);
int wh_dist_size(const wh_dist *d);
/* Ranks on this host (OMPI_COMM_WORLD_LOCAL_SIZE, else 1): the app divides
 * the cores among them. */
int wh_dist_local_size(const wh_dist *d);
/* 1 when compiled with MPI. */
int wh_dist_compiled(void);

/* The watchdog: a collective without progress for this long fails (default 60 s). */
void wh_dist_set_timeout(wh_dist *d, double seconds);
/* Gradient buckets of about this many bytes (default 4 MiB; at least 1/16 of
 * the gradients, so that there are at most about 16). */
void wh_dist_set_bucket_bytes(wh_dist *d, size_t bytes);

/* In-place sums over all ranks. */
wh_status wh_dist_sum_f32(wh_dist *d, float *buf, size_t n, const char *what, wh_ctx *ctx);
wh_status wh_dist_sum_f64(wh_dist *d, double *buf, size_t n, const char *what, wh_ctx *ctx);
/* Rank 0's bytes to every rank. */
wh_status wh_dist_bcast(wh_dist *d, void *buf, size_t bytes, const char *what, wh_ctx *ctx);
/* Every rank's bytes concatenated in rank order on rank 0 (*all malloc'd,
 * *total bytes; NULL and 0 on other ranks). */
wh_status wh_dist_gather(wh_dist *d, const void *mine, size_t bytes, void **all, size_t *total, const char *what,
                         wh_ctx *ctx);
/* *same = 1 when v is equal on every rank. */
wh_status wh_dist_same_u64(wh_dist *d, uint64_t v, int *same, const char *what, wh_ctx *ctx);
wh_status wh_dist_barrier(wh_dist *d, const char *what, wh_ctx *ctx);

/* Sums every convolution's batch-norm statistics over the ranks in training
 * forwards and backwards of net (on = 1), or stops (on = 0). */
void wh_dist_bn_sync(wh_dist *d, wh_net *net, int on);

/* ---- the gradient allreduce, overlapped with the backward ----
 * grads_plan once per net (buckets of consecutive layers, about bucket_bytes
 * each, see wh_dist_set_bucket_bytes; one bucket for the whole gradient arena when the layers' gradients
 * do not lie in layer order). Per iteration: grads_layer_done(i) after each
 * layer's backward of the last mini-batch (starts the buckets the backward
 * has passed, tests the outstanding ones so they progress), then
 * grads_finish, which starts what is left and waits for all. */
wh_status wh_dist_grads_plan(wh_dist *d, wh_net *net, wh_ctx *ctx);
wh_status wh_dist_grads_layer_done(wh_dist *d, int layer, wh_ctx *ctx);
wh_status wh_dist_grads_finish(wh_dist *d, wh_ctx *ctx);

/* Seconds this rank spent inside collectives (waiting and driving them)
 * since the last call, and the gradient bytes each rank sends per iteration
 * (the ring allreduce's 2 (N-1)/N times the gradient). */
double wh_dist_take_comm_seconds(wh_dist *d);
double wh_dist_grad_bytes(const wh_dist *d);

/* A 64-bit FNV-1a hash of bytes: ranks compare their weights with it. */
uint64_t wh_dist_hash(const void *buf, size_t bytes, uint64_t h);

#ifdef __cplusplus
}
#endif
#endif
