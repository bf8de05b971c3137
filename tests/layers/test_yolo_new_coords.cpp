// Tests of the [yolo] layer with new_coords=1 (Scaled-YOLOv4's box coding,
// layers/yolo.h) and of objectness_smooth=1, which the same cfgs use:
//   1. the head map (stretch x, y only) against a float64 reference, and a
//      box decoded by hand from given inputs (scale_x_y 2, one anchor),
//      through wh_yolo_get_detections, resized and letterboxed;
//   2. the loss: a float64 reference written here from the rules in yolo.h,
//      its central finite differences against the product's gradient w.r.t.
//      the layer's input, for every iou_loss x loss_norm x objectness_smooth
//      x iou_thresh; finite differences of the product's own loss; the
//      cross-entropy at probabilities 0 and 1; objectness_smooth's targets
//      worked by hand;
//   3. through a producer with activation=logistic: the loss and the logit
//      gradient equal new_coords=0's where both define the same terms, and
//      the gradient to the network input matches finite differences;
//   4. darknet's yolov4-csp.cfg structure (reduced width, 64x64, 3 classes):
//      it builds, one training iteration (forward, loss, backward, SGD step)
//      gives a finite loss, and its pruned network computes what the masked
//      full one does.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "layers/harness.h"
#include "model_util.h"

extern "C" {
#include "framework/train/optimizer.h"
#include "layers/yolo.h"
#include "pruning/prune.h"
}

namespace {

using Vec = std::vector<double>;
using Truths = std::vector<wh_truth>;  // batch * max_boxes entries

bool has(const std::string &s, const std::string &sub) { return s.find(sub) != std::string::npos; }

// ---- a small net: [upsample] (identity producer) -> [yolo] --------------------

struct NcNet {
    wh_ctx ctx;
    wh_net *net = nullptr;
    wh_layer *l = nullptr;
    float *v = nullptr;  // the producer's output = the yolo input (N, C, H, W)
    size_t n = 0;
    int per = 0;
    NcNet(int lw, int lh, int batch, int n_mask, int classes, const std::string &yolo, bool train = true)
    {
        wh_ctx_init(&ctx);
        per = classes + 5;
        const std::string cfg = "[net]\nwidth=" + std::to_string(lw) + "\nheight=" + std::to_string(lh) +
                                "\nchannels=" + std::to_string(n_mask * per) + "\nbatch=" + std::to_string(batch) +
                                "\n[upsample]\nstride=1\n[yolo]\nnew_coords=1\nclasses=" + std::to_string(classes) +
                                "\n" + yolo;
        wh_cfg *c = nullptr;
        EXPECT_EQ(wh_cfg_parse_string(cfg.c_str(), "nc.cfg", &c, &ctx), WH_OK) << ctx.msg;
        if (!c) return;
        wh_net_opts o = {};
        o.train = train ? 1 : 0;
        EXPECT_EQ(wh_net_create(c, &o, &net, &ctx), WH_OK) << ctx.msg;
        wh_cfg_free(c);
        if (!net) return;
        l = &net->layers[1];
        v = net->layers[0].out;
        n = wh_shape_count(l->out_shape);
        std::fill(v, v + n, .5f);
    }
    ~NcNet() { wh_net_destroy(net); }
    size_t idx(int b, int a, int e, int row, int col) const
    {
        const wh_shape s = l->out_shape;
        return (((size_t)b * s.c + (size_t)a * per + e) * s.h + row) * s.w + col;
    }
    float &at(int b, int a, int e, int row, int col) { return v[idx(b, a, e, row, col)]; }
    float out(int b, int a, int e, int row, int col) const { return l->out[idx(b, a, e, row, col)]; }
    float dl(int b, int a, int e, int row, int col) const { return wh_yolo_dlogit(l)[idx(b, a, e, row, col)]; }
    wh_status loss(const Truths &t, int max_boxes, int netw, int neth, wh_yolo_loss_parts *pp)
    {
        wh_status st = wh_net_forward_layer(net, 1, 1, &ctx);
        if (st != WH_OK) return st;
        return wh_yolo_loss(l, t.empty() ? nullptr : t.data(), max_boxes, netw, neth, pp, &ctx);
    }
};

// ---- 1. the head map and the decoding -------------------------------------------

// out = scale_x_y * v - (scale_x_y - 1)/2 for x, y; v itself elsewhere (the
// producer has applied the logistic); the gradient by finite differences,
// 1 and 2 threads (wht::check_layer).
TEST(YoloNewCoords, HeadMapMatchesReference)
{
    const int W = 5, H = 3, per = 2 + 5;  // 2 anchors of 2 classes: 14 channels
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c,
                           "[net]\nwidth=5\nheight=3\nchannels=14\nbatch=2\n[upsample]\nstride=1\n"
                           "[yolo]\nnew_coords=1\nmask=0,1\nanchors=10,14,23,27\nnum=2\nclasses=2\n"
                           "scale_x_y=2.0\n",
                           29));
    auto ref = [&](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) {
        wht::Vec out(in[0].size());
        for (size_t j = 0; j < out.size(); j++) {
            const int e = (int)((j / (W * H)) % per);
            out[j] = e < 2 ? 2.0 * in[0][j] - 0.5 : in[0][j];
        }
        return out;
    };
    wht::check_layer(c, ref, true);
    wht::check_layer(c, ref, false);
}

// A 128x128 input, 4x4 grid (stride 32), one anchor 40x30, 2 classes,
// scale_x_y 2. Cell col 1, row 2 holds vx .75, vy .25, vw .6, vh .4,
// objectness .9, classes .8 and .3; every other objectness .1:
//   out_x = 2 * .75 - .5 = 1,  out_y = 2 * .25 - .5 = 0
//   x = (1 + 1) / 4 = .5,  y = (2 + 0) / 4 = .5
//   w = (2 * .6)^2 * 40 / 128 = 57.6 / 128 = .45,  h = (2 * .4)^2 * 30 / 128 = .15
//   probabilities .9 * .8 = .72 and .9 * .3 = .27 (0 under thresh .5).
// A 640x480 image resized: centre (320, 240), size 288 x 72. A 256x128
// image letterboxed into 128x128 (scaled to 128x64, bands of 32 above and
// below): centre (128, 64), size 115.2 x 38.4.
TEST(YoloNewCoords, DecodesAHandWorkedBox)
{
    NcNet t(4, 4, 1, 1, 2, "anchors=40,30\nnum=1\nmask=0\nscale_x_y=2.0\n", false);
    ASSERT_NE(t.l, nullptr);
    for (int i = 0; i < 16; i++) t.at(0, 0, 4, i / 4, i % 4) = .1f;
    const float in[7] = {.75f, .25f, .6f, .4f, .9f, .8f, .3f};
    for (int e = 0; e < 7; e++) t.at(0, 0, e, 2, 1) = in[e];
    ASSERT_EQ(wh_net_forward_layer(t.net, 1, 0, &t.ctx), WH_OK) << t.ctx.msg;
    EXPECT_FLOAT_EQ(t.out(0, 0, 0, 2, 1), 1.f);
    EXPECT_FLOAT_EQ(t.out(0, 0, 1, 2, 1), 0.f);
    EXPECT_FLOAT_EQ(t.out(0, 0, 2, 2, 1), .6f);  // w, h, scores: as they came
    EXPECT_FLOAT_EQ(t.out(0, 0, 4, 2, 1), .9f);
    EXPECT_FLOAT_EQ(t.out(0, 0, 6, 2, 1), .3f);
    ASSERT_EQ(wh_yolo_count_detections(t.l, 0, .5f), 1);
    wh_detection d[1];
    float pool[2];
    int n = 0;
    ASSERT_EQ(wh_yolo_get_detections(t.l, 0, 128, 128, 640, 480, .5f, 0, d, 1, pool, &n, &t.ctx), WH_OK)
        << t.ctx.msg;
    ASSERT_EQ(n, 1);
    EXPECT_NEAR(d[0].box.x, 320, 1e-3);
    EXPECT_NEAR(d[0].box.y, 240, 1e-3);
    EXPECT_NEAR(d[0].box.w, 288, 1e-3);
    EXPECT_NEAR(d[0].box.h, 72, 1e-3);
    EXPECT_FLOAT_EQ(d[0].objectness, .9f);
    EXPECT_NEAR(d[0].prob[0], .72, 1e-6);
    EXPECT_EQ(d[0].prob[1], 0.f);
    ASSERT_EQ(wh_yolo_get_detections(t.l, 0, 128, 128, 256, 128, .25f, 1, d, 1, pool, &n, &t.ctx), WH_OK)
        << t.ctx.msg;
    ASSERT_EQ(n, 1);
    EXPECT_NEAR(d[0].box.x, 128, 1e-3);
    EXPECT_NEAR(d[0].box.y, 64, 1e-3);
    EXPECT_NEAR(d[0].box.w, 115.2, 1e-3);
    EXPECT_NEAR(d[0].box.h, 38.4, 1e-3);
    EXPECT_NEAR(d[0].prob[1], .27, 1e-6);
    char buf[64];
    t.l->ops->describe(t.l, buf, sizeof(buf));
    EXPECT_TRUE(has(buf, "newc")) << buf;
}

// ---- 2. the loss: a float64 reference ------------------------------------------

struct Box {
    double x, y, w, h;
};

double overlap(double c1, double l1, double c2, double l2)
{
    return std::min(c1 + l1 / 2, c2 + l2 / 2) - std::max(c1 - l1 / 2, c2 - l2 / 2);
}

double iou(Box a, Box b)
{
    const double ow = overlap(a.x, a.w, b.x, b.w), oh = overlap(a.y, a.h, b.y, b.h);
    if (ow <= 0 || oh <= 0) return 0;
    return ow * oh / (a.w * a.h + b.w * b.h - ow * oh);
}

// Cross-entropy of probability p with target t, minus the entropy of t.
double bce_p(double p, double t)
{
    const double ent = (t > 0 && t < 1) ? -(t * std::log(t) + (1 - t) * std::log(1 - t)) : 0;
    return -(t * std::log(p) + (1 - t) * std::log(1 - p)) - ent;
}

struct Ref {
    const wh_yolo_params *p;
    int lw, lh, batch, netw, neth;
    int per() const { return p->classes + 5; }
    int nm() const { return p->n_mask; }
    size_t at(int b, int a, int e, int row, int col) const
    {
        return ((((size_t)b * nm() + a) * per() + e) * lh + row) * lw + col;
    }
    // yolo.h's new_coords decode
    Box decode(const Vec &v, int b, int a, int row, int col) const
    {
        const double s = p->scale_x_y;
        const int an = p->mask[a];
        const double vw = v[at(b, a, 2, row, col)], vh = v[at(b, a, 3, row, col)];
        return {(col + s * v[at(b, a, 0, row, col)] - (s - 1) / 2) / lw,
                (row + s * v[at(b, a, 1, row, col)] - (s - 1) / 2) / lh, 4 * vw * vw * p->anchors[2 * an] / netw,
                4 * vh * vh * p->anchors[2 * an + 1] / neth};
    }
};

// What is held constant for finite differences: the decisions (ignore),
// CIoU's alpha, and the objectness targets that are IoUs (loss_norm=mean,
// objectness_smooth).
struct Frozen {
    bool set = false;
    std::vector<char> ignored;
    std::map<std::tuple<int, int, int>, double> alpha;
    std::map<std::pair<int, int>, double> obj_target;
};

struct RefOut {
    double loss = 0, box = 0, obj = 0, cls = 0, iou_sum = 0, obj_sum = 0, anyobj = 0;
    int count = 0, n_ignored = 0, n_smooth_pos = 0, n_partial_x = 0, n_partial_y = 0;
    double ignore_margin = 1e9, class_margin = 1e9, edge_margin = 1e9;
};

double iou_kind_loss(int kind, Box p, Box t, double *alpha, bool alpha_given, double *edge)
{
    const double pl = p.x - p.w / 2, pr = p.x + p.w / 2, pt = p.y - p.h / 2, pb = p.y + p.h / 2;
    const double tl = t.x - t.w / 2, tr = t.x + t.w / 2, tt = t.y - t.h / 2, tb = t.y + t.h / 2;
    for (double d : {pl - tl, pr - tr, pt - tt, pb - tb, pl - tr, pr - tl, pt - tb, pb - tt})
        *edge = std::min(*edge, std::fabs(d));
    const double I = iou(p, t);
    const double cw = std::max(pr, tr) - std::min(pl, tl), ch = std::max(pb, tb) - std::min(pt, tt);
    if (kind == WH_YOLO_IOU_GIOU) {
        const double ow = overlap(p.x, p.w, t.x, t.w), oh = overlap(p.y, p.h, t.y, t.h);
        const double inter = (ow > 0 && oh > 0) ? ow * oh : 0;
        const double U = p.w * p.h + t.w * t.h - inter, C = cw * ch;
        return 1 - (I - (C - U) / C);
    }
    const double rho2 = (p.x - t.x) * (p.x - t.x) + (p.y - t.y) * (p.y - t.y);
    const double diou = I - rho2 / (cw * cw + ch * ch);
    if (kind == WH_YOLO_IOU_DIOU) return 1 - diou;
    const double pi = std::acos(-1.0);
    const double dv = std::atan(t.w / t.h) - std::atan(p.w / p.h);
    const double v = 4 / (pi * pi) * dv * dv;
    if (!alpha_given) *alpha = v / (1 - I + v + 1e-6);
    return 1 - (diou - *alpha * v);
}

// The whole loss of a batch of inputs v (NCHW), naively from yolo.h's rules
// (truth_thresh 1 here: no prediction is responsible by it).
double ref_loss(const Ref &R, const Vec &v, const std::vector<Truths> &truths, Frozen &fz, RefOut *o)
{
    const wh_yolo_params &P = *R.p;
    const int nm = R.nm(), npred = nm * R.lh * R.lw;
    const bool frozen = fz.set, smooth = P.objectness_smooth != 0, mean = P.loss_norm == WH_YOLO_NORM_MEAN;
    if (!frozen) fz.ignored.assign((size_t)R.batch * npred, 0);
    RefOut out;
    int n_box = 0, n_cls = 0;
    for (int b = 0; b < R.batch; b++) {
        const Truths &T = truths[b];
        auto tbox = [&](int t) { return Box{T[t].x, T[t].y, T[t].w, T[t].h}; };
        std::vector<std::vector<int>> assigned(npred);
        std::vector<double> best_match(npred);
        for (int a = 0; a < nm; a++)
            for (int row = 0; row < R.lh; row++)
                for (int col = 0; col < R.lw; col++) {
                    const int q = (a * R.lh + row) * R.lw + col;
                    const Box pb = R.decode(v, b, a, row, col);
                    out.anyobj += v[R.at(b, a, 4, row, col)];
                    double max_cls = 0;
                    for (int c = 0; c < P.classes; c++) max_cls = std::max(max_cls, v[R.at(b, a, 5 + c, row, col)]);
                    double best = 0;
                    for (int t = 0; t < (int)T.size(); t++) {
                        best = std::max(best, iou(pb, tbox(t)));
                        if (max_cls > .25) best_match[q] = std::max(best_match[q], iou(pb, tbox(t)));
                    }
                    if (!frozen) fz.ignored[(size_t)b * npred + q] = best_match[q] > P.ignore_thresh;
                    out.ignore_margin = std::min(out.ignore_margin, std::fabs(best_match[q] - P.ignore_thresh));
                    if (best > P.ignore_thresh - .01)
                        out.class_margin = std::min(out.class_margin, std::fabs(max_cls - .25));
                }
        for (int t = 0; t < (int)T.size(); t++) {
            const int col = std::min((int)(T[t].x * R.lw), R.lw - 1);
            const int row = std::min((int)(T[t].y * R.lh), R.lh - 1);
            auto shape = [&](int n) {
                const double aw = P.anchors[2 * n] / R.netw, ah = P.anchors[2 * n + 1] / R.neth;
                const double in = std::min(aw, (double)T[t].w) * std::min(ah, (double)T[t].h);
                return in / (aw * ah + (double)T[t].w * T[t].h - in);
            };
            auto slot = [&](int n) {
                for (int a = 0; a < nm; a++)
                    if (P.mask[a] == n) return a;
                return -1;
            };
            int best_n = 0;
            for (int n = 1; n < P.num; n++)
                if (shape(n) > shape(best_n)) best_n = n;
            if (slot(best_n) >= 0) assigned[(slot(best_n) * R.lh + row) * R.lw + col].push_back(t);
            if (P.iou_thresh < 1)
                for (int n = 0; n < P.num; n++)
                    if (n != best_n && slot(n) >= 0 && shape(n) > P.iou_thresh)
                        assigned[(slot(n) * R.lh + row) * R.lw + col].push_back(t);
        }
        for (int a = 0; a < nm; a++)
            for (int row = 0; row < R.lh; row++)
                for (int col = 0; col < R.lw; col++) {
                    const int q = (a * R.lh + row) * R.lw + col;
                    const double vo = v[R.at(b, a, 4, row, col)];
                    const bool ign = fz.ignored[(size_t)b * npred + q];
                    const Box pb = R.decode(v, b, a, row, col);
                    // objectness target: smooth: best_match if ignored, else 0
                    // (responsible or not); mean: best IoU of its truths; sum: 1
                    double to = assigned[q].empty() ? 0 : 1;
                    const auto key = std::make_pair(b, q);
                    if (smooth || (mean && !assigned[q].empty())) {
                        if (!frozen) {
                            double tgt = 0;
                            if (smooth) {
                                tgt = ign ? best_match[q] : 0;
                            } else {
                                for (int t : assigned[q]) tgt = std::max(tgt, iou(pb, tbox(t)));
                            }
                            fz.obj_target[key] = tgt;
                        }
                        to = fz.obj_target[key];
                    }
                    out.n_ignored += ign;
                    out.n_smooth_pos += smooth && to > 0;
                    if (assigned[q].empty()) {
                        if (smooth || !ign) out.obj += P.obj_normalizer * bce_p(vo, to);
                        continue;
                    }
                    out.obj += P.obj_normalizer * bce_p(vo, to);
                    n_cls++;
                    n_box += (int)assigned[q].size();
                    std::vector<int> classes;
                    for (int t : assigned[q])
                        if (std::find(classes.begin(), classes.end(), T[t].cls) == classes.end())
                            classes.push_back(T[t].cls);
                    const double eps = P.label_smooth_eps;
                    for (int c = 0; c < P.classes; c++) {
                        const bool on = std::find(classes.begin(), classes.end(), c) != classes.end();
                        out.cls += bce_p(v[R.at(b, a, 5 + c, row, col)], (on ? 1 - eps : 0) + eps / 2);
                    }
                    const double div = P.iou_thresh < 1 ? (double)classes.size() : 1.0;
                    for (int ti : assigned[q]) {
                        const wh_truth &t = T[ti];
                        double term;
                        if (P.iou_loss == WH_YOLO_IOU_MSE) {
                            const double s = P.scale_x_y;
                            const int an = P.mask[a];
                            const double ex = s * v[R.at(b, a, 0, row, col)] - (s - 1) / 2 - ((double)t.x * R.lw - col);
                            const double ey = s * v[R.at(b, a, 1, row, col)] - (s - 1) / 2 - ((double)t.y * R.lh - row);
                            const double ew =
                                v[R.at(b, a, 2, row, col)] - std::sqrt((double)t.w * R.netw / (4 * P.anchors[2 * an]));
                            const double eh = v[R.at(b, a, 3, row, col)] -
                                              std::sqrt((double)t.h * R.neth / (4 * P.anchors[2 * an + 1]));
                            term = (2 - (double)t.w * t.h) * P.iou_normalizer *
                                   ((ex * ex + ey * ey) / (2 * s) + (ew * ew + eh * eh) / 2);
                        } else {
                            const auto k = std::make_tuple(b, q, ti);
                            double alpha = frozen ? fz.alpha[k] : 0;
                            term = P.iou_normalizer *
                                   iou_kind_loss(P.iou_loss, pb, tbox(ti), &alpha, frozen, &out.edge_margin);
                            if (!frozen) fz.alpha[k] = alpha;
                        }
                        out.box += term / div;
                        const Box tb = tbox(ti);
                        auto partial = [](double c1, double l1, double c2, double l2) {
                            const bool in1 = c1 - l1 / 2 <= c2 - l2 / 2 && c1 + l1 / 2 >= c2 + l2 / 2;
                            const bool in2 = c2 - l2 / 2 <= c1 - l1 / 2 && c2 + l2 / 2 >= c1 + l1 / 2;
                            return !in1 && !in2 && overlap(c1, l1, c2, l2) > 0;
                        };
                        out.n_partial_x += partial(pb.x, pb.w, tb.x, tb.w);
                        out.n_partial_y += partial(pb.y, pb.h, tb.y, tb.h);
                        out.count++;
                        out.iou_sum += iou(pb, tb);
                        out.obj_sum += vo;
                    }
                }
    }
    fz.set = true;
    if (mean) {
        out.box = n_box ? out.box * R.batch / n_box : 0;
        out.obj /= npred;
        out.cls = n_cls ? out.cls * P.cls_normalizer * R.batch / ((double)n_cls * P.classes) : 0;
    }
    out.loss = out.box + out.obj + out.cls;
    if (o) *o = out;
    return out.loss;
}

// 5x4 grid of a 160x128 input, 2 classes, mask 2,3,4 of 6 anchors, batch 2,
// max 4 boxes (the truths of test_yolo_loss.cpp: T0, T2, T3 at their best
// anchors here, 11 pairs with iou_thresh .2; image 1 ends after two truths).
const int kW = 5, kH = 4, kNetW = 160, kNetH = 128, kMax = 4;
const char *kAnchors = "anchors=10,12, 24,20, 40,36, 30,70, 70,40, 110,96\nnum=6\nmask=2,3,4\n";

Truths fd_truths()
{
    return {{.31f, .42f, .25f, .28f, 0}, {.72f, .20f, .06f, .09f, 1}, {.35f, .45f, .20f, .55f, 1},
            {0, 0, 0, 0, 0},             {.9f, .85f, .45f, .3f, 1},   {.1f, .6f, .7f, .7f, 0},
            {0, 0, 0, 0, 0},             {.5f, .5f, .5f, .5f, 99}};
}

std::vector<Truths> split(const Truths &flat, int batch, int max_boxes)
{
    std::vector<Truths> out(batch);
    for (int b = 0; b < batch; b++)
        for (int k = 0; k < max_boxes && flat[b * max_boxes + k].w != 0; k++) out[b].push_back(flat[b * max_boxes + k]);
    return out;
}

struct FdCase {
    const char *iou_loss;
    bool mean, smooth;
    int iou_thresh_pct;
};

std::string fd_name(const FdCase &k)
{
    return std::string(k.iou_loss) + (k.mean ? "_mean" : "_sum") + (k.smooth ? "_smooth" : "") + "_ithr" +
           std::to_string(k.iou_thresh_pct);
}

void PrintTo(const FdCase &k, std::ostream *os) { *os << fd_name(k); }

std::string fd_keys(const FdCase &k)
{
    return std::string(kAnchors) + (k.mean ? "loss_norm=mean\n" : "") + (k.smooth ? "objectness_smooth=1\n" : "") +
           "iou_loss=" + k.iou_loss + "\niou_thresh=" + std::to_string(k.iou_thresh_pct / 100.0) +
           "\nscale_x_y=2.0\nlabel_smooth_eps=.1\nignore_thresh=.35\ntruth_thresh=1\niou_normalizer=.6\n"
           "obj_normalizer=1.3\ncls_normalizer=2\n";
}

// max |a - b| / max |b| within box entries, objectness, classes.
void expect_groups_close(const float *a, const Vec &b, int per, int plane, double tol, const std::string &what)
{
    const char *names[3] = {"box", "objectness", "classes"};
    for (int g = 0; g < 3; g++) {
        Vec av, bv;
        for (size_t i = 0; i < b.size(); i++) {
            const int e = (int)((i / plane) % per);
            if ((e < 4 ? 0 : (e == 4 ? 1 : 2)) != g) continue;
            av.push_back(a[i]);
            bv.push_back(b[i]);
        }
        double m = 0;
        for (double x : bv) m = std::max(m, std::fabs(x));
        EXPECT_GT(m, 0.0) << what << ": " << names[g] << " has no gradient at all";
        EXPECT_LT(wht::rel_err(av, bv), tol) << what << ": " << names[g];
    }
}

class YoloNewCoordsFd : public ::testing::TestWithParam<FdCase> {};

// Product loss parts == reference; product gradient w.r.t. the layer input
// == central differences of the reference (decisions, alpha and IoU targets
// frozen; step 1e-5 in float64); where nothing is held constant, also ==
// differences of the product's own loss (float input, step 1e-3).
TEST_P(YoloNewCoordsFd, GradientMatchesFiniteDifferences)
{
    const FdCase k = GetParam();
    NcNet t(kW, kH, 2, 3, 2, fd_keys(k));
    ASSERT_NE(t.l, nullptr);
    const Ref R{wh_yolo_get(t.l), kW, kH, 2, kNetW, kNetH};
    const Truths flat = fd_truths();
    const std::vector<Truths> truths = split(flat, 2, kMax);

    // Probabilities in [.05, .95] (w, h in [.15, .85]: scales (2v)^2 of .09
    // to 2.9) away from every decision boundary, with a prediction ignored
    // (under objectness_smooth: one given an IoU target) and pairs
    // overlapping partly in x and in y.
    Vec v(t.n);
    Frozen fz;
    RefOut base;
    bool found = false;
    for (uint64_t seed = 1; seed < 400 && !found; seed++) {
        std::mt19937_64 rng(seed * 7919 + (uint64_t)k.iou_thresh_pct);
        std::uniform_real_distribution<double> u(0, 1);
        for (size_t i = 0; i < t.n; i++) {
            const int e = (int)((i / (kW * kH)) % t.per);
            v[i] = (float)((e == 2 || e == 3) ? .15 + .7 * u(rng) : .05 + .9 * u(rng));
        }
        fz = Frozen();
        ref_loss(R, v, truths, fz, &base);
        found = base.ignore_margin > 5e-3 && base.class_margin > 1e-3 && base.edge_margin > 2e-3 &&
                base.n_ignored >= 1 && base.n_partial_x >= 1 && base.n_partial_y >= 1 &&
                (!k.smooth || base.n_smooth_pos >= 1);
    }
    ASSERT_TRUE(found) << "no inputs away from the decision boundaries";
    for (size_t i = 0; i < t.n; i++) t.v[i] = (float)v[i];

    wh_yolo_loss_parts pp;
    ASSERT_EQ(t.loss(flat, kMax, kNetW, kNetH, &pp), WH_OK) << t.ctx.msg;
    EXPECT_NEAR(pp.box, base.box, 1e-9 * (1 + base.box));
    EXPECT_NEAR(pp.obj, base.obj, 1e-9 * (1 + base.obj));
    EXPECT_NEAR(pp.cls, base.cls, 1e-9 * (1 + base.cls));
    EXPECT_NEAR(pp.loss, base.loss, 1e-9 * (1 + base.loss));
    EXPECT_EQ(pp.count, base.count);
    EXPECT_EQ(pp.count, k.iou_thresh_pct < 100 ? 11 : 3);
    EXPECT_NEAR(pp.iou_sum, base.iou_sum, 1e-9);
    EXPECT_NEAR(pp.obj_sum, base.obj_sum, 1e-6);
    EXPECT_NEAR(pp.anyobj_sum, base.anyobj, 1e-6);

    const float *dl = wh_yolo_dlogit(t.l);
    ASSERT_NE(dl, nullptr);
    Vec fd(t.n);
    const double h = 1e-5;
    for (size_t i = 0; i < t.n; i++) {
        Vec vp = v, vm = v;
        vp[i] += h;
        vm[i] -= h;
        fd[i] = (ref_loss(R, vp, truths, fz, nullptr) - ref_loss(R, vm, truths, fz, nullptr)) / (2 * h);
    }
    expect_groups_close(dl, fd, t.per, kW * kH, 1e-5, fd_name(k) + " vs reference");

    if (std::string(k.iou_loss) == "ciou" || k.mean || k.smooth) return;
    const std::vector<float> grad(dl, dl + t.n);
    Vec fd_own(t.n);
    const int saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    for (size_t i = 0; i < t.n; i++) {
        const float v0 = t.v[i], vp = v0 + 1e-3f, vm = v0 - 1e-3f;
        wh_yolo_loss_parts a, b;
        t.v[i] = vp;
        ASSERT_EQ(t.loss(flat, kMax, kNetW, kNetH, &a), WH_OK) << t.ctx.msg;
        t.v[i] = vm;
        ASSERT_EQ(t.loss(flat, kMax, kNetW, kNetH, &b), WH_OK) << t.ctx.msg;
        t.v[i] = v0;
        fd_own[i] = (a.loss - b.loss) / ((double)vp - (double)vm);
    }
    omp_set_num_threads(saved_threads);
    expect_groups_close(grad.data(), fd_own, t.per, kW * kH, 1e-3, fd_name(k) + " vs own loss");
}

std::vector<FdCase> fd_cases()
{
    std::vector<FdCase> v;
    for (const char *loss : {"mse", "giou", "diou", "ciou"})
        for (bool mean : {false, true})
            for (bool smooth : {false, true})
                for (int ithr : {100, 20}) v.push_back({loss, mean, smooth, ithr});
    return v;
}

INSTANTIATE_TEST_SUITE_P(Options, YoloNewCoordsFd, ::testing::ValuesIn(fd_cases()),
                         [](const ::testing::TestParamInfo<FdCase> &i) { return fd_name(i.param); });

// The cross-entropy of a probability at 0 and 1 exactly (a float logistic
// gives both): finite, continued along its tangent past the clamp at 1e-12.
// 4x4 grid, one anchor, 1 class; the truth's prediction at cell (1, 1).
//   v = 1, target 0 (a confident mistake): loss -ln(q) + 1 = 28.63,
//       gradient 1 / q = 1e12, q = 1 - (1 - 1e-12) in double (1.00009e-12);
//       times the producer's v (1 - v) in float that is a logit gradient
//       near 1 (0 at v = 1.0f, where the float logistic has no slope left);
//   v = 0, target 1 (a miss): loss -ln(1e-12) + 1, gradient -1e12;
//   v = 0, target 0: loss 0, gradient 1; v = .5, target 0: ln 2, gradient 2.
TEST(YoloNewCoords, CrossEntropyIsFiniteAtZeroAndOne)
{
    NcNet t(4, 4, 1, 1, 1, "anchors=40,40\nnum=1\nmask=0\nignore_thresh=1\n");
    ASSERT_NE(t.l, nullptr);
    for (int i = 0; i < 16; i++) t.at(0, 0, 4, i / 4, i % 4) = 0.f;
    t.at(0, 0, 4, 0, 0) = 1.f;
    t.at(0, 0, 4, 3, 3) = .5f;
    t.at(0, 0, 4, 1, 1) = 0.f;  // responsible
    t.at(0, 0, 5, 1, 1) = 1.f;  // its class: right, v = 1
    const Truths tr = {{.375f, .375f, .3f, .3f, 0}};
    wh_yolo_loss_parts pp;
    ASSERT_EQ(t.loss(tr, 1, 128, 128, &pp), WH_OK) << t.ctx.msg;
    const double q = 1.0 - (1.0 - 1e-12);
    EXPECT_NEAR(pp.obj, (-std::log(q) + 1) + (-std::log(1e-12) + 1) + std::log(2.0), 1e-6);
    EXPECT_NEAR(pp.cls, 0.0, 1e-9);
    EXPECT_TRUE(std::isfinite(pp.loss));
    EXPECT_NEAR(t.dl(0, 0, 4, 0, 0), 1 / q, 1e-6 / q);
    EXPECT_NEAR(t.dl(0, 0, 4, 1, 1), -1e12, 1e6);
    EXPECT_NEAR(t.dl(0, 0, 4, 2, 2), 1.0, 1e-6);
    EXPECT_NEAR(t.dl(0, 0, 4, 3, 3), 2.0, 1e-6);
    EXPECT_NEAR(t.dl(0, 0, 5, 1, 1), -1.0, 1e-6);  // v = 1, target 1: the tangent's slope ~ -1
    for (size_t i = 0; i < t.n; i++) ASSERT_TRUE(std::isfinite(wh_yolo_dlogit(t.l)[i])) << i;
}

// objectness_smooth=1, worked by hand: 128x128, 4x4 grid, one anchor 40x40,
// 1 class, scale_x_y 2, ignore_thresh .5; every box 40x40 (vw = vh = .5),
// the truth 40x40 at (48, 48) pixels: cell (1, 1).
//   P (col 1, row 1, responsible): vx .75 -> centre x 64, 16 px off:
//     IoU 24/56 = .43 < .5, so its target is 0 (darknet keeps rule 1's);
//   Q (col 2, row 1): vx .125 -> x 56, 8 px off: IoU 32/48 = 2/3, class .9:
//     target 2/3 (not ignored);
//   S (col 2, row 2): vx .125, vy 0 -> (56, 48), IoU 2/3 too, but class .2
//     does not count for the ignore rule: target 0.
// With objectness v .6 at P and .3 at Q and S (obj_normalizer 1), the
// gradients (v - t) / (v (1 - v)) are 2.5, (.3 - 2/3) / .21 and 1/.7.
// Without smooth: P's target is 1, Q is ignored. With truth_thresh .6 Q is
// responsible by it: objectness and class targets (2/3)^2.
TEST(YoloNewCoords, ObjectnessSmoothTargetsByHand)
{
    auto run = [](const std::string &keys, float g[3], float *g_cls_q) {
        NcNet t(4, 4, 1, 1, 1, "anchors=40,40\nnum=1\nmask=0\nscale_x_y=2.0\nignore_thresh=.5\n" + keys);
        ASSERT_NE(t.l, nullptr);
        for (int i = 0; i < 16; i++) t.at(0, 0, 5, i / 4, i % 4) = .1f;
        t.at(0, 0, 0, 1, 1) = .75f;
        t.at(0, 0, 4, 1, 1) = .6f;
        t.at(0, 0, 5, 1, 1) = .9f;
        t.at(0, 0, 0, 1, 2) = .125f;
        t.at(0, 0, 4, 1, 2) = .3f;
        t.at(0, 0, 5, 1, 2) = .9f;
        t.at(0, 0, 0, 2, 2) = .125f;
        t.at(0, 0, 1, 2, 2) = 0.f;
        t.at(0, 0, 4, 2, 2) = .3f;
        t.at(0, 0, 5, 2, 2) = .2f;
        const Truths tr = {{48.f / 128, 48.f / 128, 40.f / 128, 40.f / 128, 0}};
        wh_yolo_loss_parts pp;
        ASSERT_EQ(t.loss(tr, 1, 128, 128, &pp), WH_OK) << t.ctx.msg;
        EXPECT_NEAR(pp.iou_sum, 24 / 56.0, 1e-6);
        g[0] = t.dl(0, 0, 4, 1, 1);
        g[1] = t.dl(0, 0, 4, 1, 2);
        g[2] = t.dl(0, 0, 4, 2, 2);
        *g_cls_q = t.dl(0, 0, 5, 1, 2);
    };
    float g[3], gc;
    run("objectness_smooth=1\n", g, &gc);
    EXPECT_NEAR(g[0], .6 / (.6 * .4), 1e-5);
    EXPECT_NEAR(g[1], (.3 - 2 / 3.0) / .21, 1e-5);
    EXPECT_NEAR(g[2], .3 / .21, 1e-5);
    EXPECT_EQ(gc, 0.f);  // Q is not responsible: no class term
    run("", g, &gc);
    EXPECT_NEAR(g[0], (.6 - 1) / (.6 * .4), 1e-5);
    EXPECT_EQ(g[1], 0.f);
    EXPECT_NEAR(g[2], .3 / .21, 1e-5);
    run("objectness_smooth=1\ntruth_thresh=.6\n", g, &gc);
    const double t2 = 4 / 9.0;
    EXPECT_NEAR(g[0], .6 / (.6 * .4), 1e-5);
    EXPECT_NEAR(g[1], (.3 - t2) / .21, 1e-5);
    EXPECT_NEAR(gc, (.9 - t2) / (.9 * .1), 1e-5);
}

// ---- 3. through a producer with activation=logistic ---------------------------

// [net] 5x4x4, batch 2 -> 1x1 [convolutional] 21 filters -> [yolo] 3 anchors
// of 2 classes; act is the conv's activation.
std::string conv_yolo_cfg(const char *act, int new_coords, const std::string &yolo)
{
    return "[net]\nwidth=5\nheight=4\nchannels=4\nbatch=2\n[convolutional]\nfilters=21\nsize=1\nstride=1\n"
           "activation=" +
           std::string(act) + "\n[yolo]\nclasses=2\nnew_coords=" + std::to_string(new_coords) + "\n" + kAnchors +
           yolo;
}

struct ConvYolo {
    wh_ctx ctx;
    wh_net *net = nullptr;
    explicit ConvYolo(const std::string &cfg)
    {
        wh_ctx_init(&ctx);
        wh_cfg *c = nullptr;
        EXPECT_EQ(wh_cfg_parse_string(cfg.c_str(), "net.cfg", &c, &ctx), WH_OK) << ctx.msg;
        if (!c) return;
        wh_net_opts o = {};
        o.train = 1;
        EXPECT_EQ(wh_net_create(c, &o, &net, &ctx), WH_OK) << ctx.msg;
        wh_cfg_free(c);
        if (!net) return;
        wh_net_init_weights(net, 11);
        std::mt19937_64 rng(5);
        std::uniform_real_distribution<float> u(-1, 1);
        for (size_t i = 0; i < wh_shape_count(net->in_shape); i++) net->input[i] = u(rng);
    }
    ~ConvYolo() { wh_net_destroy(net); }
    double loss(wh_yolo_loss_parts *pp)
    {
        const Truths flat = fd_truths();
        EXPECT_EQ(wh_net_forward(net, 1, &ctx), WH_OK) << ctx.msg;
        EXPECT_EQ(wh_yolo_loss(&net->layers[1], flat.data(), kMax, kNetW, kNetH, pp, &ctx), WH_OK) << ctx.msg;
        return pp->loss;
    }
    std::vector<float> input_grad()
    {
        std::vector<float> din(wh_shape_count(net->in_shape), 0.f);
        wh_net_zero_douts(net);
        wh_net_zero_grads(net);
        EXPECT_EQ(wh_net_backward(net, din.data(), &ctx), WH_OK) << ctx.msg;
        return din;
    }
};

// The objectness and class terms are the same cross-entropies of the same
// logits whether the logistic is the conv's (new_coords=1) or the head's:
// with the box terms off (iou_normalizer 0) and nothing ignored
// (ignore_thresh 1), the loss and the gradient reaching the network input
// agree (loss_norm=sum: mean's objectness targets are IoUs of boxes, which
// the two codings decode differently).
TEST(YoloNewCoords, ScoresMatchTheLogisticInTheHead)
{
    const std::string keys = "iou_normalizer=0\nignore_thresh=1\n";
    ConvYolo a(conv_yolo_cfg("linear", 0, keys)), b(conv_yolo_cfg("logistic", 1, keys));
    ASSERT_NE(a.net, nullptr);
    ASSERT_NE(b.net, nullptr);
    wh_yolo_loss_parts pa, pb;
    a.loss(&pa);
    b.loss(&pb);
    EXPECT_GT(pa.count, 0);
    EXPECT_NEAR(pb.obj, pa.obj, 1e-5 * pa.obj);
    EXPECT_NEAR(pb.cls, pa.cls, 1e-5 * pa.cls);
    EXPECT_EQ(pb.count, pa.count);
    const std::vector<float> ga = a.input_grad(), gb = b.input_grad();
    const Vec ref(ga.begin(), ga.end());
    double m = 0;
    for (double x : ref) m = std::max(m, std::fabs(x));
    EXPECT_GT(m, 0.0);
    EXPECT_LT(wht::rel_err(gb.data(), ref), 1e-4);
}

// conv (logistic) -> yolo (new_coords): the gradient to the network input
// against finite differences of the loss (float32 convolution, step 1e-2),
// for an IoU loss and for mse (objectness_smooth off: its targets, held
// constant in the gradient, move with the boxes).
TEST(YoloNewCoords, WholeNetGradientThroughTheLogistic)
{
    for (const char *kind : {"giou", "mse"}) {
        SCOPED_TRACE(kind);
        ConvYolo c(conv_yolo_cfg("logistic", 1,
                                 std::string("scale_x_y=2.0\nignore_thresh=.7\niou_loss=") + kind +
                                     "\n"));
        ASSERT_NE(c.net, nullptr);
        wh_yolo_loss_parts pp;
        c.loss(&pp);
        const std::vector<float> din = c.input_grad();
        double max_g = 0;
        for (float g : din) max_g = std::max(max_g, (double)std::fabs(g));
        ASSERT_GT(max_g, 0.0);
        for (size_t i = 0; i < din.size(); i += 7) {
            const float x0 = c.net->input[i];
            c.net->input[i] = x0 + 1e-2f;
            const double lp = c.loss(&pp);
            c.net->input[i] = x0 - 1e-2f;
            const double lm = c.loss(&pp);
            c.net->input[i] = x0;
            EXPECT_NEAR(din[i], (lp - lm) / 2e-2, 2e-3 * max_g) << i;
        }
    }
}

// ---- 4. yolov4-csp -----------------------------------------------------------------

// darknet's cfg/yolov4-csp.cfg, layer for layer (175 layers: the CSP
// backbone of 1, 2, 8, 8, 4 residual blocks, SPP, the CSP PAN neck, three
// new_coords heads with objectness_smooth on the second and third), its
// filters divided by div, classes and input size given, its anchors (for
// 512) scaled to the input.
std::string yolov4_csp_cfg(int size, int classes, int div)
{
    std::string s = "[net]\nbatch=64\nsubdivisions=8\nwidth=" + std::to_string(size) +
                    "\nheight=" + std::to_string(size) +
                    "\nchannels=3\nmomentum=0.949\ndecay=0.0005\nangle=0\nsaturation=1.5\nexposure=1.5\nhue=.1\n"
                    "learning_rate=0.001\nburn_in=1000\nmax_batches=500500\npolicy=steps\nsteps=400000,450000\n"
                    "scales=.1,.1\nmosaic=1\nletter_box=1\nema_alpha=0.9998\n";
    auto conv = [&](int f, int size_, int stride = 1) {
        s += "[convolutional]\nbatch_normalize=1\nfilters=" + std::to_string(f / div) + "\nsize=" +
             std::to_string(size_) + "\nstride=" + std::to_string(stride) + "\npad=1\nactivation=mish\n";
    };
    auto route = [&](const std::string &layers) { s += "[route]\nlayers=" + layers + "\n"; };
    auto shortcut = [&]() { s += "[shortcut]\nfrom=-3\nactivation=linear\n"; };
    // a CSP stage: downsample to out, split, n residual blocks on mid, merge
    auto stage = [&](int out, int mid, int n) {
        conv(out, 3, 2);
        conv(mid, 1);
        route("-2");
        conv(mid, 1);
        for (int k = 0; k < n; k++) {
            conv(mid, 1);
            conv(mid, 3);
            shortcut();
        }
        conv(mid, 1);
        route("-1,-" + std::to_string(3 * n + 4));
        conv(out, 1);
    };
    // the CSP block of the neck on c channels (after a route into it)
    auto csp = [&](int c) {
        conv(c, 1);
        conv(c, 1);
        route("-2");
        conv(c, 1);
        conv(c, 3);
        conv(c, 1);
        conv(c, 3);
        route("-1,-6");
        conv(c, 1);
    };
    auto head = [&](int f, const char *mask, int smooth, float obj_norm, int max_delta) {
        conv(f, 3);
        s += "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=" + std::to_string(3 * (classes + 5)) +
             "\nactivation=logistic\n[yolo]\nmask=" + mask + "\nanchors=";
        const int a512[18] = {12, 16, 19, 36, 40, 28, 36, 75, 76, 55, 72, 146, 142, 110, 192, 243, 459, 401};
        for (int k = 0; k < 18; k++) s += (k ? "," : "") + std::to_string(std::max(1, a512[k] * size / 512));
        s += "\nclasses=" + std::to_string(classes) +
             "\nnum=9\njitter=.1\nscale_x_y=2.0\nobjectness_smooth=" + std::to_string(smooth) +
             "\nignore_thresh=.7\ntruth_thresh=1\nresize=1.5\niou_thresh=0.2\niou_normalizer=0.05\n"
             "cls_normalizer=0.5\nobj_normalizer=" +
             std::to_string(obj_norm) + "\niou_loss=ciou\nnms_kind=diounms\nbeta_nms=0.6\nnew_coords=1\nmax_delta=" +
             std::to_string(max_delta) + "\n";
    };
    conv(32, 3);
    conv(64, 3, 2);
    conv(32, 1);
    conv(64, 3);
    shortcut();
    stage(128, 64, 2);
    stage(256, 128, 8);   // ends at layer 48
    stage(512, 256, 8);   // ends at layer 79
    stage(1024, 512, 4);  // ends at layer 98
    conv(512, 1);         // 99: SPP's CSP split
    route("-2");
    conv(512, 1);
    conv(512, 3);
    conv(512, 1);
    s += "[maxpool]\nstride=1\nsize=5\n";
    route("-2");
    s += "[maxpool]\nstride=1\nsize=9\n";
    route("-4");
    s += "[maxpool]\nstride=1\nsize=13\n";
    route("-1,-3,-5,-6");
    conv(512, 1);
    conv(512, 3);
    route("-1,-13");
    conv(512, 1);  // 113
    conv(256, 1);
    s += "[upsample]\nstride=2\n";
    route("79");
    conv(256, 1);
    route("-1,-3");
    csp(256);  // ends at 127
    conv(128, 1);
    s += "[upsample]\nstride=2\n";
    route("48");
    conv(128, 1);
    route("-1,-3");
    csp(128);  // ends at 141
    head(256, "0,1,2", 0, 4.f, 5);
    route("-4");
    conv(256, 3, 2);
    route("-1,-20");
    csp(256);  // ends at 156
    head(512, "3,4,5", 1, 1.f, 5);
    route("-4");
    conv(512, 3, 2);
    route("-1,-49");
    csp(512);  // ends at 171
    head(1024, "6,7,8", 1, .4f, 2);
    return s;
}

// Truths for a 64x64 input: one object per head's anchor sizes, per image.
Truths csp_truths(int batch)
{
    Truths t;
    for (int b = 0; b < batch; b++) {
        const float d = .03f * (float)b;
        t.push_back({.3f + d, .4f, .06f, .07f, 0});    // ~4 px: head 1 (stride 8)
        t.push_back({.6f, .55f + d, .2f, .15f, 1});    // ~12 px: head 2 (stride 16)
        t.push_back({.5f - d, .5f, .7f, .6f, 2});      // ~42 px: head 3 (stride 32)
        t.push_back({0, 0, 0, 0, 0});
    }
    return t;
}

// Builds (no warning: every key known), trains one iteration with a finite
// loss that moves every head, and its loss falls on the same batch after a
// few more.
TEST(YoloNewCoords, Yolov4CspBuildsAndTrains)
{
    const int batch = 2;
    wh_net *net = wht::cfg_net(yolov4_csp_cfg(64, 3, 8), batch, 1);
    ASSERT_NE(net, nullptr);
    ASSERT_EQ(net->n_layers, 175);
    int heads = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const wh_yolo_params *p = wh_yolo_get(&net->layers[i]);
        if (!p) continue;
        heads++;
        EXPECT_EQ(p->new_coords, 1);
        EXPECT_EQ(p->objectness_smooth, heads > 1 ? 1 : 0);
        EXPECT_EQ(net->layers[i].out_shape.w, 64 / (8 << (heads - 1)));
    }
    ASSERT_EQ(heads, 3);
    wh_net_init_weights(net, 3);
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> u(0, 1);
    for (size_t i = 0; i < wh_shape_count(net->in_shape); i++) net->input[i] = u(rng);
    const Truths tr = csp_truths(batch);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_sgd *sgd = nullptr;
    ASSERT_EQ(wh_sgd_create(net, .9f, .0005f, 0, &sgd, &ctx), WH_OK) << ctx.msg;
    auto step = [&](double *loss, int *count) {
        wht::forward_and_loss(net, tr.data(), 4);
        *loss = 0;
        *count = 0;
        for (int i = 0; i < net->n_layers; i++) {
            if (!wh_yolo_get(&net->layers[i])) continue;
            wh_yolo_loss_parts pp;
            ASSERT_EQ(wh_yolo_loss(&net->layers[i], tr.data(), 4, 64, 64, &pp, &ctx), WH_OK) << ctx.msg;
            EXPECT_TRUE(std::isfinite(pp.loss)) << "head " << i;
            EXPECT_GT(pp.count, 0) << "head " << i << " learns no truth";
            *loss += pp.loss;
            *count += pp.count;
        }
        ASSERT_EQ(wh_net_backward(net, nullptr, &ctx), WH_OK) << ctx.msg;
        ASSERT_EQ(wh_sgd_step(sgd, net, 1e-3f, batch, &ctx), WH_OK) << ctx.msg;  // fails on a NaN gradient
    };
    double first = 0, last = 0;
    int count = 0;
    step(&first, &count);
    EXPECT_TRUE(std::isfinite(first));
    EXPECT_GT(first, 0.0);
    for (int k = 0; k < 4; k++) step(&last, &count);
    EXPECT_TRUE(std::isfinite(last));
    EXPECT_LT(last, first) << "five steps on one batch";
    wh_sgd_destroy(sgd);
    wh_net_destroy(net);
}

uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
float uni(uint64_t &s) { return (float)((mix(s++) >> 11) * (1.0 / 9007199254740992.0)); }

// Pruned with a random mask over every BN convolution (surgery as in
// tests/pruning/test_surgery.cpp, zero BN shifts): the compact network's
// heads give what the masked full network's give, and the heads' own
// convolutions keep every channel.
TEST(YoloNewCoords, Yolov4CspPrunedMatchesMasked)
{
    const std::string text = yolov4_csp_cfg(64, 3, 8);
    wh_net *full = wht::cfg_net(text);
    ASSERT_NE(full, nullptr);
    wh_net_init_weights(full, 21);
    uint64_t s = 21 * 7919;
    for (int i = 0; i < full->n_layers; i++)
        for (int p = 0; p < full->layers[i].n_params; p++) {
            wh_param *pp = &full->layers[i].params[p];
            const std::string n = pp->name;
            for (size_t t = 0; t < pp->count; t++) {
                if (n == "scales") pp->data[t] = .5f + uni(s);
                else if (n == "biases") pp->data[t] = 0.f;  // BN shifts: a pruned channel is then 0
                else if (n == "rolling_mean") pp->data[t] = .2f * (uni(s) - .5f);
                else if (n == "rolling_variance") pp->data[t] = .5f + uni(s);
            }
        }
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_depgraph g{};
    wh_depgraph_opts o = {};
    o.all_bn_convs = 1;
    ASSERT_EQ(wh_depgraph_build(full, &o, &g, &ctx), WH_OK) << ctx.msg;
    std::vector<int> set_keep(g.n_sets + 1);
    uint64_t r = 5;
    for (int k = 0; k < g.n_sets; k++) set_keep[k] = uni(r) < .6f;
    for (int un = 0; un < g.n_units; un++) {
        bool any = false;
        for (int x = g.unit_off[un]; x < g.unit_off[un + 1]; x++) any |= g.set[x] < 0 || set_keep[g.set[x]];
        if (!any) set_keep[g.set[g.unit_off[un]]] = 1;
    }
    std::vector<unsigned char> keep(g.n_channels + 1);
    int kept = 0;
    for (int x = 0; x < g.n_channels; x++) kept += keep[x] = g.set[x] < 0 || set_keep[g.set[x]];
    EXPECT_LT(kept, g.n_channels * .8) << "the mask prunes something";
    char *cfg = nullptr;
    wh_net *small = nullptr;
    wh_net_opts no = {};
    no.batch = 1;
    ASSERT_EQ(wh_prune_build(full, text.c_str(), &g, keep.data(), 0, &no, &cfg, &small, &ctx), WH_OK) << ctx.msg;
    EXPECT_TRUE(has(cfg, "new_coords=1")) << "the heads' keys are kept";
    free(cfg);
    ASSERT_EQ(small->n_layers, full->n_layers);
    for (int i = 0; i < full->n_layers; i++)
        if (wh_yolo_get(&full->layers[i])) {
            const int c = full->layers[i].in[0];
            EXPECT_EQ(small->layers[c].out_shape.c, full->layers[c].out_shape.c) << "head conv " << c;
            EXPECT_EQ(wh_yolo_get(&small->layers[i])->new_coords, 1);
        }
    wh_prune_mask_net(full, &g, keep.data(), 1);
    uint64_t si = 9;
    for (size_t t = 0; t < wh_shape_count(full->in_shape); t++) full->input[t] = small->input[t] = uni(si);
    ASSERT_EQ(wh_net_forward(full, 0, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_forward(small, 0, &ctx), WH_OK) << ctx.msg;
    double err = 0, scale = 0;
    ASSERT_EQ(wh_prune_output_error(full, small, &err, &scale, &ctx), WH_OK) << ctx.msg;
    EXPECT_GT(scale, 0.0);
    EXPECT_LE(err, 1e-4 * scale) << "max error " << err << " of " << scale;
    wh_depgraph_free(&g);
    wh_net_destroy(small);
    wh_net_destroy(full);
}

}  // namespace
