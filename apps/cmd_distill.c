/* whittle distill --teacher CKPT --student CKPT [train options]: stage 3,
 * fine-tuning the pruned student on detection loss plus spatial attention
 * losses against its unpruned teacher. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "distill/distill.h"
#include "framework/train/trainer.h"

void wh_cmd_distill_usage(void)
{
    printf("usage: whittle distill --teacher CKPT --student CKPT [--at-layers auto|I:BETA,...] [train options]\n\n"
           "Stage 3: fine-tunes the pruned student (its checkpoint and cfg, e.g. whittle prune's\n"
           "pruned.h5) on its detection loss plus, per paired layer, beta * the squared difference of\n"
           "the teacher's and the student's spatial attention maps (mean over channels of A^2,\n"
           "L2-normalised over the image). The teacher (the unpruned, sparse-trained network) only\n"
           "runs forward.\n"
           "  --teacher CKPT        the unpruned network\n"
           "  --student CKPT        the pruned network (the same layers, fewer channels)\n"
           "  --at-layers auto      the paper's maps: backbone stage outputs per stride (beta 1e6,\n"
           "                        1e3 at stride 32), neck maps per stride (1e4); or I:BETA,J:BETA\n"
           "  --at-beta-scale X     multiplies every beta (default 1)\n"
           "  --at-p 1|2            |A| or A^2 (default 2)\n"
           "  --at-sum              sum over channels instead of the mean\n"
           "  --at-softmax T        softmax(Q / T) instead of the L2 normalisation\n"
           "  --kd-logits W         add W * T^2 * KL(teacher || student) of the objectness and class\n"
           "                        sigmoids of every [yolo] input (the authors' extra term; 0: off)\n"
           "  --kd-temperature T    its temperature (default 3)\n"
           "  --kd-boxes W          add W * sum of teacher objectness * squared difference of the decoded\n"
           "                        boxes (x, y, w, h as fractions of the input) at every anchor and cell\n"
           "  --dump-images K       maps of the first K test images (default 4; 0: none) at the first and\n"
           "                        last iteration: OUT/attention_NNNNNNN.h5 (teacher/layer_III,\n"
           "                        student/layer_III: K x H x W; images: K x 3 x H x W; layers) and a PNG\n"
           "                        panel beside it (rows: layers; columns: image, teacher, student)\n"
           "  --dump-every N        also every N iterations\n"
           "All options of whittle train apply (--data, --out, --max-batches, --lr, ...).\n");
}

int wh_cmd_distill(int argc, char **argv)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_train_opts o;
    wh_app_train_defaults(&o);
    o.out_dir = "runs/distill";
    int threads = 0;
    const char *teacher = NULL, *layers = "auto";
    wh_at_opts at;
    wh_at_opts_default(&at);
    double beta_scale = 1.0;
    int dump_every = 0, dump_images = 4;
    double kd_weight = 0, kd_t = 3, kd_boxes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--teacher")) {
            if (!(teacher = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--student")) {
            if (!(o.init_ckpt = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--at-layers")) {
            if (!(layers = wh_app_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--at-beta-scale")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 0, 1e12, &beta_scale)) return 2;
        } else if (!strcmp(a, "--at-p")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 1, 2, &at.p)) return 2;
        } else if (!strcmp(a, "--kd-logits")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 0, 1e12, &kd_weight)) return 2;
        } else if (!strcmp(a, "--kd-boxes")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 0, 1e12, &kd_boxes)) return 2;
        } else if (!strcmp(a, "--kd-temperature")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 1e-3, 1e3, &kd_t)) return 2;
        } else if (!strcmp(a, "--dump-every")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 1 << 30, &dump_every)) return 2;
        } else if (!strcmp(a, "--dump-images")) {
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_int(a, v, 0, 64, &dump_images)) return 2;
        } else if (!strcmp(a, "--at-sum")) {
            at.sum = 1;
        } else if (!strcmp(a, "--at-softmax")) {
            double t;
            if (!(v = wh_app_value(argc, argv, &i)) || wh_app_double(a, v, 1e-6, 1e6, &t)) return 2;
            at.norm = WH_AT_SOFTMAX;
            at.temperature = (float)t;
        } else {
            int r = wh_app_train_option(argc, argv, &i, &o, &threads, &ctx);
            if (r < 0) return 2;
            if (r == 0) {
                fprintf(stderr, "whittle: error: distill: unknown option '%s' (see whittle distill --help)\n", a);
                return 2;
            }
        }
    }
    if (!teacher || (!o.init_ckpt && !o.resume)) {
        fprintf(stderr, "whittle: error: distill needs --teacher CKPT and --student CKPT (see whittle distill "
                        "--help)\n");
        return 2;
    }
    wh_distill d;
    wh_distill_init(&d, teacher, layers, &at);
    d.beta_scale = beta_scale;
    d.kd_weight = kd_weight;
    d.kd_temperature = (float)kd_t;
    d.kd_box_weight = kd_boxes;
    wh_distill_dumps(&d, o.data ? o.data : WH_DEFAULT_DATA, wh_app_rank() == 0 ? o.out_dir : NULL, /* rank 0 writes */
                     dump_every, dump_images);
    wh_distill_attach(&d, &o.hooks);
    char *cfg = NULL;
    if (!o.cfg_path && !o.resume && wh_app_ckpt_cfg(o.init_ckpt, &cfg, &ctx)) return wh_app_fail(&ctx);
    o.cfg_text = cfg;
    int rc = wh_app_run_training(&o, threads);
    if (rc == 0 && d.batches > 0 && wh_app_rank() == 0) {
        printf("attention losses (per mini-batch, mean over the run):");
        for (int k = 0; k < d.n_pairs; k++)
            printf(" L%d %.4g", d.pairs[k].layer, d.pair_loss[k] / (double)d.batches);
        if (d.kd_weight > 0) printf("; logit KL %.4g", d.kd_loss / (double)d.batches);
        if (d.kd_box_weight > 0) printf("; box L2 %.4g", d.kd_box_loss / (double)d.batches);
        printf("\n");
    }
    free(cfg);
    wh_distill_free(&d);
    return rc;
}
