/* whittle: the command line. One table of subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"

static const wh_cmd wh__cmds[] = {
    {"pipeline", "the whole method: baseline, sparse, prune, distill + control, table and charts",
     wh_cmd_pipeline, wh_cmd_pipeline_usage},
    {"ablate", "a grid of strategies (scheduler x grouping x distillation) over seeds, shared stages",
     wh_cmd_ablate, wh_cmd_ablate_usage},
    {"model", "write a darknet cfg for a known YOLO architecture", wh_cmd_model, wh_cmd_model_usage},
    {"anchors", "anchors from a dataset's box sizes (k-means under 1 - IoU, as darknet)", wh_cmd_anchors,
     wh_cmd_anchors_usage},
    {"info", "per-layer shapes, parameters and FLOPs of a cfg", wh_cmd_info, wh_cmd_info_usage},
    {"mkdata", "write a synthetic VOC-format detection dataset", wh_cmd_mkdata, wh_cmd_mkdata_usage},
    {"import-darknet", "cfg + darknet .weights -> checkpoint", wh_cmd_import_darknet, wh_cmd_import_darknet_usage},
    {"export-darknet", "checkpoint -> PREFIX.cfg + PREFIX.weights", wh_cmd_export_darknet, wh_cmd_export_darknet_usage},
    {"train", "train a detector (darknet SGD, checkpoints, mAP, chart)", wh_cmd_train, wh_cmd_train_usage},
    {"sparse", "stage 1: sparse training of BN scales (scheduler plug-ins)", wh_cmd_sparse, wh_cmd_sparse_usage},
    {"prune", "stage 2: group channel pruning into a smaller network", wh_cmd_prune, wh_cmd_prune_usage},
    {"distill", "stage 3: fine-tune a pruned student with attention from its teacher", wh_cmd_distill,
     wh_cmd_distill_usage},
    {"map", "mAP of a detections file against ground truth (voc07, voc, coco)", wh_cmd_map, wh_cmd_map_usage},
    {"eval", "mAP of a checkpoint on a dataset, per class, with img/s", wh_cmd_eval, wh_cmd_eval_usage},
    {"bench", "this machine's peak and bandwidth; a network's img/s, % of peak and memory", wh_cmd_bench,
     wh_cmd_bench_usage},
    {"detect", "detect objects in one image: print the boxes, draw them (PNG)", wh_cmd_detect, wh_cmd_detect_usage},
};
#define WH__NCMD (sizeof(wh__cmds) / sizeof(wh__cmds[0]))

static void wh__usage(FILE *f)
{
    fprintf(f, "usage: whittle COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < WH__NCMD; i++) fprintf(f, "  %-15s %s\n", wh__cmds[i].name, wh__cmds[i].summary);
    fprintf(f, "\n'whittle COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        wh__usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        wh__usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < WH__NCMD; i++) {
        if (strcmp(argv[1], wh__cmds[i].name) != 0) continue;
        for (int k = 2; k < argc; k++)
            if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
                wh__cmds[i].usage();
                return 0;
            }
        /* under mpirun only the training commands run as one job */
        const char *np = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
        if (np && atoi(np) > 1 && strcmp(argv[1], "train") && strcmp(argv[1], "sparse") && strcmp(argv[1], "distill")) {
            fprintf(stderr, "whittle: error: %s does not run over MPI (%s ranks): only train, sparse and distill do; "
                            "start it without mpirun\n", argv[1], np);
            return 2;
        }
        const int rc = wh__cmds[i].run(argc - 1, argv + 1);
        wh_app_dist_end(rc);
        return rc;
    }
    fprintf(stderr, "whittle: error: unknown command '%s'\n\n", argv[1]);
    wh__usage(stderr);
    return 2;
}
