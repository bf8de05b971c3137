/* whittle: the memory planner. Before a training run allocates anything,
 * it sizes the run: the network's arenas as the trainer builds them
 * (parameters, gradients, the activations and layer outputs the step keeps,
 * activation gradients, the scratch area with oneDNN's scratchpads), the
 * optimizer's momentum, the loader's prefetched batches, and the process as
 * it stands (code, libraries, the dataset index: VmRSS now) plus what a
 * first step adds beyond its arenas (oneDNN's generated kernels, OpenMP
 * stacks: a constant measured on this machine), and the buffer a checkpoint
 * write reads its largest dataset into. The total is compared with
 * the memory this process may use: MemAvailable from /proc/meminfo, the
 * cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes) less its usage,
 * or WH_MEM_AVAILABLE_MB when set (tests, a user's own cap).
 */
#ifndef WH_MEMPLAN_H
#define WH_MEMPLAN_H

#include <stddef.h>

#include "framework/core/cfg.h"
#include "framework/core/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Measured: VmHWM of two training iterations and a checkpoint, less VmRSS
 * before the net existed, every arena, the momentum, the loader and the
 * checkpoint's buffer: 15-22 MB for yolov4-tiny and yolov4 at 416 with
 * batch 1 and 8 on this machine (oneDNN's generated kernels, OpenMP's
 * threads, HDF5). */
#define WH_MEM_RUNTIME_BYTES ((size_t)20 << 20)

typedef struct wh_mem_plan {
    size_t arenas[WH_ARENA_COUNT]; /* bytes, as wh_net_create would allocate them */
    size_t momentum;               /* the optimizer's state: SGD's velocity, one float per trained
                                    * parameter (AdamW: two; wh_mem_plan_optimizer) */
    size_t average;                /* the weight average: a copy of the parameters (0: none) */
    size_t loader;                 /* the prefetched batches (training, and evaluation when asked) */
    size_t checkpoint;             /* writing one: its checksum reads the largest dataset (the momentum) back */
    size_t process;                /* VmRSS when planned */
    size_t runtime;                /* WH_MEM_RUNTIME_BYTES */
    size_t extra;                  /* a training hook's own (wh_train_hooks.plan): a distillation teacher */
    const char *extra_what;        /* what extra is ("distillation") */
    size_t total;                  /* this process */
    int ranks_on_host;             /* processes of this run on this host (MPI), each planning total */
    size_t available;              /* 0: unknown */
    char available_from[48];       /* "MemAvailable", "cgroup memory.max", "WH_MEM_AVAILABLE_MB" */
} wh_mem_plan;

/* Plans a training network for cfg with opts (built with opts.dry_run: no
 * allocation) plus loader_bytes and a hook's extra_bytes (what names them),
 * for one of ranks_on_host processes on this host. */
wh_status wh_mem_plan_train(wh_cfg *cfg, const wh_net_opts *opts, size_t loader_bytes, size_t extra_bytes,
                            const char *what, int ranks_on_host, wh_mem_plan *out, wh_ctx *ctx);
/* The optimizer's n_state floats per trained parameter (sgd 1, adamw 2)
 * and, with average, the weight average's copy of the parameters
 * (framework/train/optimizer.h): the plan and its total follow. */
void wh_mem_plan_optimizer(wh_mem_plan *p, int n_state, int average);
/* Whether the run fits: total x ranks_on_host within the memory available
 * (always when that is unknown). */
int wh_mem_plan_fits(const wh_mem_plan *p);
/* Bytes this process may still allocate (0: unknown); from names the source. */
size_t wh_mem_available(char *from, size_t n);
/* This process's VmRSS / VmHWM in bytes (0: unknown). */
size_t wh_mem_rss(void);
size_t wh_mem_peak(void);
/* "812 MB (parameters 23, gradients 23, momentum 23, activations 225, outputs 190, activation gradients 85,
 * scratch 100, loader 33, checkpoint 23, process 80, runtime 20[, distillation 90]) [x 2 ranks on this host]
 * of 20480 MB available (MemAvailable)" */
void wh_mem_plan_format(const wh_mem_plan *p, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
