/* whittle command line: shared helpers of the subcommands. Only apps/ prints
 * and exits; every subcommand returns its exit status. */
#ifndef WH_APPS_H
#define WH_APPS_H

#include "framework/core/status.h"

typedef struct wh_cmd {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    void (*usage)(void);
} wh_cmd;

/* The exit status of a run stopped by a NaN or an infinity (WH_ERR_NUMERIC),
 * so that job scripts can tell a diverged run from other failures. */
#define WH_APP_EXIT_NUMERIC 3
/* Prints "whittle: error: <ctx message>" and returns 1 (3 after WH_ERR_NUMERIC). */
int wh_app_fail(const wh_ctx *ctx);
/* Prints collected warnings to stderr. */
void wh_app_print_warnings(const wh_ctx *ctx);
/* Parses "WxH" or "S" into w, h; returns 0 on success. */
int wh_app_parse_size(const char *s, int *w, int *h);
/* "a,b,c" into out (at most max values in [lo, hi]); -1 after printing the error. */
int wh_app_double_list(const char *flag, const char *val, double lo, double hi, double *out, int max, int *n);
int wh_app_int_list(const char *flag, const char *val, int lo, int hi, int *out, int max, int *n);
/* Strict integer / float parsing of a flag's value; prints an error naming the flag. */
int wh_app_int(const char *flag, const char *val, int lo, int hi, int *out);
int wh_app_double(const char *flag, const char *val, double lo, double hi, double *out);
/* A flag that needs a value: returns it, or prints an error and returns NULL. */
const char *wh_app_value(int argc, char **argv, int *i);
/* The embedded default dataset: every command taking --data uses it when
 * none is given, generating it (synthetic, VOC layout) on first use. */
#define WH_DEFAULT_DATA "runs/synth"
/* Generates WH_DEFAULT_DATA when path is it and it does not exist yet;
 * returns 0, or 1 after printing an error. */
int wh_app_ensure_default_data(const char *path);
/* Sets OpenMP threads from --threads (0 = default) and the wait policy note. */
void wh_app_threads(wh_ctx *ctx, int threads);

/* The MPI job this process belongs to (framework/train/dist.h), started on first
 * use: one rank when mpirun did not launch it. NULL after printing an error. */
struct wh_dist *wh_app_dist(void);
/* This process's rank (0 when single; starts the job on first use). */
int wh_app_rank(void);
/* At exit (main): MPI_Finalize after a success; after a failure of a job
 * of several ranks, MPI_Abort, so the other ranks end now instead of
 * waiting in a collective for one that is gone. */
void wh_app_dist_end(int rc);

int wh_cmd_anchors(int argc, char **argv);
void wh_cmd_anchors_usage(void);
int wh_cmd_model(int argc, char **argv);
void wh_cmd_model_usage(void);
int wh_cmd_info(int argc, char **argv);
void wh_cmd_info_usage(void);
int wh_cmd_mkdata(int argc, char **argv);
void wh_cmd_mkdata_usage(void);
int wh_cmd_import_darknet(int argc, char **argv);
void wh_cmd_import_darknet_usage(void);
int wh_cmd_export_darknet(int argc, char **argv);
void wh_cmd_export_darknet_usage(void);
/* Shared by train and the stage commands (apps/cmd_train.c). */
struct wh_train_opts;
void wh_app_train_defaults(struct wh_train_opts *o);
int wh_app_train_option(int argc, char **argv, int *i, struct wh_train_opts *o, int *threads, wh_ctx *ctx);
int wh_app_run_training(struct wh_train_opts *o, int threads);
int wh_cmd_train(int argc, char **argv);
void wh_cmd_train_usage(void);
int wh_cmd_sparse(int argc, char **argv);
void wh_cmd_sparse_usage(void);
/* The cfg text stored in a checkpoint (malloc'd); -1 with ctx's message. */
int wh_app_ckpt_cfg(const char *path, char **cfg_text, wh_ctx *ctx);
int wh_cmd_distill(int argc, char **argv);
void wh_cmd_distill_usage(void);
int wh_cmd_prune(int argc, char **argv);
void wh_cmd_prune_usage(void);
int wh_cmd_map(int argc, char **argv);
void wh_cmd_map_usage(void);
int wh_cmd_eval(int argc, char **argv);
void wh_cmd_eval_usage(void);
int wh_cmd_detect(int argc, char **argv);
void wh_cmd_detect_usage(void);
int wh_cmd_bench(int argc, char **argv);
void wh_cmd_bench_usage(void);
int wh_cmd_pipeline(int argc, char **argv);
void wh_cmd_pipeline_usage(void);
int wh_cmd_ablate(int argc, char **argv);
void wh_cmd_ablate_usage(void);

#endif
