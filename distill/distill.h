/* whittle: stage 3, spatial attention distilling from the unpruned teacher
 * into the pruned student.
 *
 * The attention map of a feature map A (N, C, H, W) is, per sample,
 *   Q[hw] = (1/C) sum_c f(A[c, hw])     f = |A| (p = 1) or A^2 (p = 2)
 * (the sum instead of the mean with WH_AT_SUM), flattened over H*W and then
 * normalised: Q / ||Q||_2 (the paper's) or softmax(Q / T). The loss of one
 * paired layer for a mini-batch is
 *   L = beta * sum_n mean_hw (Qs[n, hw] - Qt[n, hw])^2,
 * a sum over samples like the detection loss, so gradients scale with the
 * batch as darknet's do. Its gradient with respect to the student's A is
 * exact (tests: finite differences).
 */
#ifndef WH_DISTILL_H
#define WH_DISTILL_H

#include "framework/core/net.h"
#include "framework/train/trainer.h"
#include "layers/yolo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wh_at_norm { WH_AT_L2, WH_AT_SOFTMAX } wh_at_norm;

typedef struct wh_at_opts {
    int p;             /* 1 or 2 */
    int sum;           /* 1: sum over channels instead of the mean */
    wh_at_norm norm;
    float temperature; /* softmax only, > 0 */
} wh_at_opts;

void wh_at_opts_default(wh_at_opts *o); /* p 2, mean, L2 */

/* q (N, H*W): the normalised attention map of a (shape, layout). */
void wh_at_map(const float *a, wh_shape s, wh_layout layout, const wh_at_opts *o, float *q);

/* The loss of the student's map against the teacher's (both (N, H*W),
 * normalised) times beta, and, when da is not NULL, += its gradient with
 * respect to the student's feature map a (shape s, in layout; da in the same
 * layout, padding lanes untouched). qs must be the map of a (wh_at_map).
 * scratch: 2*N*H*W floats. */
double wh_at_loss(const float *a, wh_shape s, wh_layout layout, const float *qs, const float *qt, const wh_at_opts *o,
                  double beta, float *da, float *scratch);

/* ---- logit distillation ------------------------------------------------------ */

/* The optional extra term of the authors' code: for every anchor and cell of a
 * [yolo] layer's input z (N, n_mask * (5 + classes), H, W, NCHW), the binary
 * KL divergence KL(sigmoid(zt/T) || sigmoid(zs/T)) of the objectness and of
 * each class logit (YOLO's classes are independent sigmoids), summed and
 * multiplied by weight * T^2 (Hinton's scaling, so the gradient does not
 * vanish with T). dzs (may be NULL) += its gradient, weight * T *
 * (sigmoid(zs/T) - sigmoid(zt/T)). The box entries are not touched. */
double wh_kd_logits(const float *zs, const float *zt, int n, int n_mask, int classes, int hw, float temperature,
                    double weight, float *dzs);

/* The optional box term: for every anchor a and cell i of a [yolo] layer's
 * input (layout as wh_kd_logits), both networks' boxes are decoded as the
 * layer does (x, y, w, h as fractions of the network input; yolo.h), and
 *   L = weight * sum_{n,a,i} pt_obj * ((xs - xt)^2 + (ys - yt)^2 + (ws - wt)^2 + (hs - ht)^2) / 2
 * with pt_obj = sigmoid of the teacher's objectness logit: the teacher's box
 * is only worth imitating where it believes there is an object (most cells
 * are background, where its box is noise). dzs (may be NULL) += the exact
 * gradient with respect to the student's 4 box logits; nothing else is
 * touched. lw, lh: the grid; netw, neth: the input in pixels. */
double wh_kd_boxes(const float *zs, const float *zt, int n, const wh_yolo_params *p, int lw, int lh, int netw,
                   int neth, double weight, float *dzs);

/* ---- pairing -------------------------------------------------------------- */

/* A distilled map: the same layer index in teacher and student (surgery keeps
 * the layers, only their channel counts change), weighted by beta. */
typedef struct wh_at_pair {
    int layer;
    double beta;
} wh_at_pair;

/* The paper's maps, from the graph's roles (pruning/prune.h): for the
 * backbone, per output stride >= 2, its last convolution with BN (beta 1e6
 * up to stride 16, 1e3 beyond: the authors' CSP stage outputs and the
 * stride-32 maps); for the top-down and the bottom-up neck, per stride, the
 * last convolution with BN (beta 1e4). Heads are not distilled. *pairs is
 * malloc'd. */
wh_status wh_at_pairs_auto(const wh_net *net, wh_at_pair **pairs, int *n, wh_ctx *ctx);
/* "I:BETA,J:BETA,..." (a missing :BETA means 1e4). */
wh_status wh_at_pairs_parse(const char *text, wh_at_pair **pairs, int *n, wh_ctx *ctx);
/* Every pair names a layer both networks have, with the same spatial size. */
wh_status wh_at_pairs_check(const wh_net *teacher, const wh_net *student, const wh_at_pair *pairs, int n,
                            wh_ctx *ctx);

/* ---- the training step (a wh_train_hooks implementation) -------------------- */

/* Per mini-batch, after the student's forward and detection loss: the
 * teacher (an inference net of the student's mini-batch, built from its
 * checkpoint at the first step; no gradients, nothing kept) runs forward on
 * the same images, and every pair adds beta * its attention loss to the
 * student's loss and its gradient to the student layer's dout. */
typedef struct wh_distill {
    const char *teacher_ckpt;
    const char *layers;    /* NULL or "auto": wh_at_pairs_auto; else wh_at_pairs_parse */
    wh_at_opts at;
    double beta_scale;     /* multiplies every pair's beta (1) */
    double kd_weight;      /* logit KL term (0: off) */
    float kd_temperature;  /* (3, the authors') */
    double kd_box_weight;  /* decoded-box L2 term (0: off) */
    double kd_box_loss;    /* summed over the run */
    float *zt;             /* a teacher head's output in NCHW */
    float *zs, *dzs;       /* a blocked student head's output and gradient in NCHW */
    double kd_loss;        /* summed over the run */
    wh_net *teacher;
    wh_at_pair *pairs;
    int n_pairs;
    float *qs, *qt, *scratch;
    double *pair_loss;     /* per pair, summed over the run */
    long batches;
    /* Map dumps (none without out_dir): at the first and last iteration and
     * every dump_every iterations, the teacher's and the student's maps of
     * the first dump_images images of data's test split (train if it has
     * none) go to out_dir/attention_NNNNNNN.h5 and a PNG panel beside it. */
    const char *data, *out_dir;
    int dump_every, dump_images;
    float *fixed;          /* dump_images rendered inputs (3, H, W) */
    int n_fixed;
} wh_distill;

void wh_distill_init(wh_distill *d, const char *teacher_ckpt, const char *layers, const wh_at_opts *at);
/* Map dumps (see wh_distill): every N iterations (0: first and last only). */
void wh_distill_dumps(wh_distill *d, const char *data, const char *out_dir, int every, int images);
void wh_distill_attach(wh_distill *d, wh_train_hooks *hooks);
void wh_distill_free(wh_distill *d);

#ifdef __cplusplus
}
#endif
#endif
