/* whittle sparse --cfg CFG --weights CKPT --sched SPEC [trainer options]:
 * stage 1, sparse training of the BN scales from a trained baseline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "framework/train/trainer.h"
#include "pruning/sparse_train.h"

void wh_cmd_sparse_usage(void)
{
    char names[256];
    wh_sched_names(names, sizeof(names));
    printf("usage: whittle sparse --weights CKPT --sched SPEC [--cfg CFG] [--exclude I,J,...] [train options]\n\n"
           "Stage 1: trains with an L1 penalty on the BN scales (gamma) of every prunable\n"
           "channel, at a rate per channel given by a scheduler plug-in:\n"
           "  --sched name:key=value,...   schedulers: %s\n"
           "        constant:s=1e-4                      network slimming\n"
           "        dynamic:s=1e-4,part=0.4,share=0.35,factor=0.01   the paper's\n"
           "        feedback:s=1e-4,target=0.5,thresh=0.01,by=0.8,gain=0.01\n"
           "  --weights CKPT      the trained baseline (its cfg is used unless --cfg)\n"
           "  --exclude I,J       layer indices kept out of the prunable set\n"
           "  --stats-every N     |gamma| statistics every N iterations (default 0: every epoch and at\n"
           "                      the end): OUT/gamma.jsonl, OUT/gamma_hist.png, the history in the checkpoint\n"
           "All options of whittle train apply (--data, --out, --max-batches, --lr, ...).\n",
           names);
}

int wh_cmd_sparse(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_train_opts o;
    wh_app_train_defaults(&o);
    o.out_dir = "runs/sparse";
    int threads = 0, exclude[256], n_exclude = 0;
    const char *spec = NULL;
    int stats_every = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--sched")) {
            if (!(spec = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--weights")) {
            if (!(o.init_ckpt = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--stats-every")) {
            const char *v = wh_app_value(argc, argv, &i);
            if (!v || wh_app_int(a, v, 0, 1 << 30, &stats_every)) return 2;
        } else if (!strcmp(a, "--exclude")) {
            const char *v = wh_app_value(argc, argv, &i);
            if (!v) return 2;
            if (wh_app_int_list(a, v, 0, 1 << 20, exclude, 256, &n_exclude)) return 2;
        } else {
            int r = wh_app_train_option(argc, argv, &i, &o, &threads, &ctx);
            if (r < 0) return 2;
            if (r == 0) {
                fprintf(stderr, "whittle: error: sparse: unknown option '%s' (see whittle sparse --help)\n", a);
                return 2;
            }
        }
    }
    if (!spec || (!o.init_ckpt && !o.resume)) {
        fprintf(stderr, "whittle: error: sparse needs --sched SPEC and --weights CKPT (see whittle sparse --help)\n");
        return 2;
    }
    wh_sparse_hook hook;
    if (wh_sparse_hook_init(&hook, spec, exclude, n_exclude, &ctx) != WH_OK) return wh_app_fail(&ctx);
    wh_sparse_hook_attach(&hook, &o.hooks);
    wh_sparse_hook_stats(&hook, stats_every, wh_app_rank() == 0 ? o.out_dir : NULL); /* rank 0 writes */
    char *cfg_from_ckpt = NULL;
    if (!o.cfg_path && !o.resume) {
        /* the baseline's own cfg, as stored in its checkpoint */
        if (wh_app_ckpt_cfg(o.init_ckpt, &cfg_from_ckpt, &ctx)) {
            wh_sparse_hook_free(&hook);
            return wh_app_fail(&ctx);
        }
    }
    o.cfg_text = cfg_from_ckpt;
    int rc = wh_app_run_training(&o, threads);
    free(cfg_from_ckpt);
    wh_sparse_hook_free(&hook);
    return rc;
}
