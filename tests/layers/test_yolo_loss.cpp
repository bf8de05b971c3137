// Tests of the [yolo] loss (wh_yolo_loss in layers/yolo.c):
//   1. a float64 reference of the whole loss, written here from the rules in
//      layers/yolo.h, against the product's loss parts, and its central
//      finite differences against the product's gradient (dlogit), for every
//      iou_loss x iou_thresh x scale_x_y x label_smooth_eps; plus finite
//      differences of the product's own loss;
//   2. hand-worked cases: a perfect prediction, the ignore rule, which anchor
//      is responsible, darknet's statistics, multi-label averaging, label
//      smoothing, box-loss values worked by hand;
//   3. the backward: dlogit reaches the producer next to dout * f'(x), also
//      through a whole net (conv -> yolo) by finite differences;
//   4. errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "layers/harness.h"

extern "C" {
#include "layers/yolo.h"
}

namespace {

using Vec = std::vector<double>;
using Truths = std::vector<wh_truth>;  // batch * max_boxes entries

double sig(double z) { return 1.0 / (1.0 + std::exp(-z)); }
double logit(double p) { return std::log(p / (1.0 - p)); }

// ---- a small training net: [upsample] (identity producer) -> [yolo] --------

struct LossNet {
    wh_ctx ctx;
    wh_net *net = nullptr;
    wh_layer *l = nullptr;
    float *logits = nullptr;  // the producer's output = the yolo input (N, C, H, W)
    size_t n = 0;
    int per = 0;
    // grid lw x lh, channels from mask size and classes; yolo keys in `yolo`
    LossNet(int lw, int lh, int batch, int n_mask, int classes, const std::string &yolo,
            bool train = true)
    {
        wh_ctx_init(&ctx);
        per = classes + 5;
        const int C = n_mask * per;
        std::string cfg = "[net]\nwidth=" + std::to_string(lw) + "\nheight=" + std::to_string(lh) +
                          "\nchannels=" + std::to_string(C) + "\nbatch=" + std::to_string(batch) +
                          "\n[upsample]\nstride=1\n[yolo]\nclasses=" + std::to_string(classes) +
                          "\n" + yolo;
        wh_cfg *c = nullptr;
        EXPECT_EQ(wh_cfg_parse_string(cfg.c_str(), "loss.cfg", &c, &ctx), WH_OK) << ctx.msg;
        if (!c) return;
        wh_net_opts o = {};
        o.train = train ? 1 : 0;
        EXPECT_EQ(wh_net_create(c, &o, &net, &ctx), WH_OK) << ctx.msg;
        wh_cfg_free(c);
        if (!net) return;
        l = &net->layers[1];
        logits = net->layers[0].out;
        n = wh_shape_count(l->out_shape);
        std::fill(logits, logits + n, 0.f);
    }
    ~LossNet() { wh_net_destroy(net); }
    float &at(int b, int a, int e, int row, int col)
    {
        const wh_shape s = l->out_shape;
        return logits[(((size_t)b * s.c + (size_t)a * per + e) * s.h + row) * s.w + col];
    }
    float dl(int b, int a, int e, int row, int col) const
    {
        const wh_shape s = l->out_shape;
        return wh_yolo_dlogit(l)[(((size_t)b * s.c + (size_t)a * per + e) * s.h + row) * s.w + col];
    }
    // training forward of the yolo layer, then its loss
    wh_status loss(const Truths &t, int max_boxes, int netw, int neth, wh_yolo_loss_parts *pp)
    {
        wh_status st = wh_net_forward_layer(net, 1, 1, &ctx);
        if (st != WH_OK) return st;
        return wh_yolo_loss(l, t.empty() ? nullptr : t.data(), max_boxes, netw, neth, pp, &ctx);
    }
};

// ---- the float64 reference ----------------------------------------------------

struct Box {
    double x, y, w, h;
};

// Overlap of two intervals given by centre and length (negative: apart).
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

// Cross-entropy of logit z with target t, minus the entropy of t.
double bce(double z, double t)
{
    const double ent = (t > 0 && t < 1) ? -(t * std::log(t) + (1 - t) * std::log(1 - t)) : 0;
    return t * std::log1p(std::exp(-z)) + (1 - t) * std::log1p(std::exp(z)) - ent;
}

// The constants of the layer under test (read back from the parsed params so
// that float keys such as scale_x_y=1.1 are the very same numbers).
struct Ref {
    const wh_yolo_params *p;
    int lw, lh, batch, netw, neth;
    int per() const { return p->classes + 5; }
    int nm() const { return p->n_mask; }
    size_t at(int b, int a, int e, int row, int col) const
    {
        return ((((size_t)b * nm() + a) * per() + e) * lh + row) * lw + col;
    }
    Box decode(const Vec &z, int b, int a, int row, int col) const
    {
        const double s = p->scale_x_y;
        const double ox = s * sig(z[at(b, a, 0, row, col)]) - (s - 1) / 2;
        const double oy = s * sig(z[at(b, a, 1, row, col)]) - (s - 1) / 2;
        const int an = p->mask[a];
        return {(col + ox) / lw, (row + oy) / lh,
                std::exp(z[at(b, a, 2, row, col)]) * p->anchors[2 * an] / netw,
                std::exp(z[at(b, a, 3, row, col)]) * p->anchors[2 * an + 1] / neth};
    }
};

// The decisions that are piecewise constant in the logits, frozen at a base
// point for finite differences, and CIoU's alpha (held constant by design).
struct Frozen {
    bool set = false;
    std::vector<char> ignored;                          // (batch * predictions)
    std::map<std::tuple<int, int, int>, double> alpha;  // (image, prediction, truth)
    std::map<std::pair<int, int>, double> obj_target;    // loss_norm=mean: (image, prediction)
};

struct RefOut {
    double loss = 0, box = 0, obj = 0, cls = 0;
    int count = 0, r50 = 0, r75 = 0, n_ignored = 0, n_positive = 0;
    // pairs whose boxes overlap partly in x (in y): neither holds the other,
    // so the IoU losses have a non-zero x (y) gradient there
    int n_partial_x = 0, n_partial_y = 0;
    double iou_sum = 0, obj_sum = 0, cls_sum = 0, anyobj = 0;
    // distances of the base point to the decisions' boundaries
    double ignore_margin = 1e9, class_margin = 1e9, edge_margin = 1e9;
};

// 1 - IoU-kind (iou_loss != mse) with CIoU's alpha from fz (or computed and
// stored when fz is not set yet); edge: distance to the nearest kink.
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

// The whole loss of a batch (logits z, NCHW), written naively from the rules.
double ref_loss(const Ref &R, const Vec &z, const std::vector<Truths> &truths, Frozen &fz,
                RefOut *o)
{
    const wh_yolo_params &P = *R.p;
    const int nm = R.nm(), npred = nm * R.lh * R.lw;
    const bool frozen = fz.set;
    if (!frozen) fz.ignored.assign((size_t)R.batch * npred, 0);
    RefOut out;
    int n_box = 0, n_cls = 0;
    for (int b = 0; b < R.batch; b++) {
        const Truths &T = truths[b];
        auto tbox = [&](int t) { return Box{T[t].x, T[t].y, T[t].w, T[t].h}; };
        // prediction q = (a * lh + row) * lw + col -> list of (truth, counted)
        std::vector<std::vector<std::pair<int, bool>>> assigned(npred);
        std::vector<char> ign(npred);
        for (int a = 0; a < nm; a++)
            for (int row = 0; row < R.lh; row++)
                for (int col = 0; col < R.lw; col++) {
                    const int q = (a * R.lh + row) * R.lw + col;
                    const Box pb = R.decode(z, b, a, row, col);
                    out.anyobj += sig(z[R.at(b, a, 4, row, col)]);
                    double max_cls = 0;
                    for (int c = 0; c < P.classes; c++)
                        max_cls = std::max(max_cls, sig(z[R.at(b, a, 5 + c, row, col)]));
                    double best = 0, best_match = 0;
                    int best_t = -1;
                    for (int t = 0; t < (int)T.size(); t++) {
                        const double v = iou(pb, tbox(t));
                        if (v > best) best = v, best_t = t;
                        if (max_cls > .25) best_match = std::max(best_match, v);
                    }
                    if (!frozen) fz.ignored[(size_t)b * npred + q] = best_match > P.ignore_thresh;
                    ign[q] = fz.ignored[(size_t)b * npred + q];
                    out.ignore_margin =
                        std::min(out.ignore_margin, std::fabs(best_match - P.ignore_thresh));
                    if (best > P.ignore_thresh - .01)
                        out.class_margin = std::min(out.class_margin, std::fabs(max_cls - .25));
                    if (best > P.truth_thresh) assigned[q].push_back({best_t, false});
                }
        for (int t = 0; t < (int)T.size(); t++) {
            const int col = std::min((int)(T[t].x * R.lw), R.lw - 1);
            const int row = std::min((int)(T[t].y * R.lh), R.lh - 1);
            // shape IoU of anchor n with the truth, both centred
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
            if (slot(best_n) >= 0)
                assigned[(slot(best_n) * R.lh + row) * R.lw + col].push_back({t, true});
            if (P.iou_thresh < 1)
                for (int n = 0; n < P.num; n++)
                    if (n != best_n && slot(n) >= 0 && shape(n) > P.iou_thresh)
                        assigned[(slot(n) * R.lh + row) * R.lw + col].push_back({t, true});
        }
        for (int a = 0; a < nm; a++)
            for (int row = 0; row < R.lh; row++)
                for (int col = 0; col < R.lw; col++) {
                    const int q = (a * R.lh + row) * R.lw + col;
                    const double zo = z[R.at(b, a, 4, row, col)];
                    if (assigned[q].empty()) {
                        if (!ign[q]) out.obj += P.obj_normalizer * bce(zo, 0);
                        out.n_ignored += ign[q];
                        continue;
                    }
                    out.n_positive++;
                    n_cls++;
                    n_box += (int)assigned[q].size();
                    double to = 1; // darknet's target; mean: the best IoU of its truths, held constant
                    if (P.loss_norm == WH_YOLO_NORM_MEAN) {
                        const auto key = std::make_pair(b, q);
                        if (!frozen) {
                            const Box pq = R.decode(z, b, a, row, col);
                            double best = 0;
                            for (auto &as : assigned[q]) best = std::max(best, iou(pq, tbox(as.first)));
                            fz.obj_target[key] = best;
                        }
                        to = fz.obj_target[key];
                    }
                    out.obj += P.obj_normalizer * bce(zo, to);
                    std::vector<int> classes;
                    for (auto &as : assigned[q])
                        if (std::find(classes.begin(), classes.end(), T[as.first].cls) ==
                            classes.end())
                            classes.push_back(T[as.first].cls);
                    const double eps = P.label_smooth_eps;
                    for (int c = 0; c < P.classes; c++) {
                        const bool on =
                            std::find(classes.begin(), classes.end(), c) != classes.end();
                        out.cls +=
                            bce(z[R.at(b, a, 5 + c, row, col)], (on ? 1 - eps : 0) + eps / 2);
                    }
                    const double div = P.iou_thresh < 1 ? (double)classes.size() : 1.0;
                    const Box pb = R.decode(z, b, a, row, col);
                    for (auto &as : assigned[q]) {
                        const wh_truth &t = T[as.first];
                        double term;
                        if (P.iou_loss == WH_YOLO_IOU_MSE) {
                            const double s = P.scale_x_y;
                            const int an = P.mask[a];
                            const double tx = (double)t.x * R.lw - col,
                                         ty = (double)t.y * R.lh - row;
                            const double tw = std::log((double)t.w * R.netw / P.anchors[2 * an]);
                            const double th =
                                std::log((double)t.h * R.neth / P.anchors[2 * an + 1]);
                            const double dw = z[R.at(b, a, 2, row, col)] - tw;
                            const double dh = z[R.at(b, a, 3, row, col)] - th;
                            term = (2 - (double)t.w * t.h) * P.iou_normalizer *
                                   (s * bce(z[R.at(b, a, 0, row, col)], (tx + (s - 1) / 2) / s) +
                                    s * bce(z[R.at(b, a, 1, row, col)], (ty + (s - 1) / 2) / s) +
                                    (dw * dw + dh * dh) / 2);
                        } else {
                            const auto key = std::make_tuple(b, q, as.first);
                            double alpha = frozen ? fz.alpha[key] : 0;
                            term =
                                P.iou_normalizer * iou_kind_loss(P.iou_loss, pb, tbox(as.first),
                                                                 &alpha, frozen, &out.edge_margin);
                            if (!frozen) fz.alpha[key] = alpha;
                        }
                        out.box += term / div;
                        const Box tb = tbox(as.first);
                        auto partial = [](double c1, double l1, double c2, double l2) {
                            const bool in1 =
                                c1 - l1 / 2 <= c2 - l2 / 2 && c1 + l1 / 2 >= c2 + l2 / 2;
                            const bool in2 =
                                c2 - l2 / 2 <= c1 - l1 / 2 && c2 + l2 / 2 >= c1 + l1 / 2;
                            return !in1 && !in2 && overlap(c1, l1, c2, l2) > 0;
                        };
                        out.n_partial_x += partial(pb.x, pb.w, tb.x, tb.w);
                        out.n_partial_y += partial(pb.y, pb.h, tb.y, tb.h);
                        if (!as.second) continue;
                        const double v = iou(pb, tbox(as.first));
                        out.count++;
                        out.iou_sum += v;
                        out.r50 += v > .5;
                        out.r75 += v > .75;
                        out.obj_sum += sig(zo);
                        out.cls_sum += sig(z[R.at(b, a, 5 + t.cls, row, col)]);
                    }
                }
    }
    fz.set = true;
    if (P.loss_norm == WH_YOLO_NORM_MEAN) { // yolo.h: averages over the mini-batch's elements
        out.box = n_box ? out.box * R.batch / n_box : 0;
        out.obj /= npred;
        out.cls = n_cls ? out.cls * P.cls_normalizer * R.batch / ((double)n_cls * P.classes) : 0;
    }
    out.loss = out.box + out.obj + out.cls;
    if (o) *o = out;
    return out.loss;
}

// ---- 1. reference and finite differences over the options --------------------

// 5x4 grid of a 160x128 input (stride 32), 2 classes, mask 2,3,4 of 6 anchors,
// batch 2, max 4 boxes. Best anchors (shape IoU, worked from the sizes in
// pixels): T0 40x35.8 -> 2, T1 9.6x11.5 -> 0 (another layer's), T2 32x70.4 -> 3
// (T2 shares T0's cell 1,1), T3 72x38.4 -> 4 (the last cell 4,3),
// T4 112x89.6 -> 5 (another layer's; with iou_thresh .2 it goes to anchors 4
// and 3 here, IoU .279 and .209). Image 1 ends after two truths; the entry
// after the terminator has class 99 and must not be read.
const int kW = 5, kH = 4, kNetW = 160, kNetH = 128, kMax = 4;
const char *kAnchors = "anchors=10,12, 24,20, 40,36, 30,70, 70,40, 110,96\nnum=6\nmask=2,3,4\n";

Truths fd_truths()
{
    return {{.31f, .42f, .25f, .28f, 0},
            {.72f, .20f, .06f, .09f, 1},
            {.35f, .45f, .20f, .55f, 1},
            {0, 0, 0, 0, 0},
            {.9f, .85f, .45f, .3f, 1},
            {.1f, .6f, .7f, .7f, 0},
            {0, 0, 0, 0, 0},
            {.5f, .5f, .5f, .5f, 99}};
}

std::vector<Truths> split(const Truths &flat, int batch, int max_boxes)
{
    std::vector<Truths> out(batch);
    for (int b = 0; b < batch; b++)
        for (int k = 0; k < max_boxes && flat[b * max_boxes + k].w != 0; k++)
            out[b].push_back(flat[b * max_boxes + k]);
    return out;
}

struct FdCase {
    const char *iou_loss;
    int iou_thresh_pct, sxy_pct, eps_pct;
    bool mean = false; // loss_norm=mean
};

std::string fd_name(const FdCase &k)
{
    return std::string(k.iou_loss) + "_ithr" + std::to_string(k.iou_thresh_pct) + "_sxy" +
           std::to_string(k.sxy_pct) + "_eps" + std::to_string(k.eps_pct) + (k.mean ? "_mean" : "");
}

void PrintTo(const FdCase &k, std::ostream *os) { *os << fd_name(k); }

std::string fd_yolo_keys(const FdCase &k)
{
    // cls_normalizer=2 has no effect under darknet's sum (darknet applies it
    // only with counters_per_class); under loss_norm=mean it is the class gain.
    return std::string(kAnchors) + (k.mean ? "loss_norm=mean\n" : "") + "iou_loss=" + k.iou_loss +
           "\niou_thresh=" + std::to_string(k.iou_thresh_pct / 100.0) +
           "\nscale_x_y=" + std::to_string(k.sxy_pct / 100.0) +
           "\nlabel_smooth_eps=" + std::to_string(k.eps_pct / 100.0) +
           "\nignore_thresh=.35\ntruth_thresh=1\niou_normalizer=.6\nobj_normalizer=1.3\n"
           "cls_normalizer=2\n";
}

class YoloLossFd : public ::testing::TestWithParam<FdCase> {};

// max |a - b| / max |b| within each kind of entry (box x, y, w, h;
// objectness; classes), so that the small box gradients of the IoU losses
// are not measured against the larger objectness ones.
void expect_groups_close(const float *a, const Vec &b, int per, int plane, double tol,
                         const std::string &what)
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
        EXPECT_LT(wht::rel_err(av, bv), tol) << what << ": " << names[g];
    }
}

// Product loss parts == reference; product gradient == finite differences of
// the reference (decisions frozen, step 1e-5 in float64); product gradient ==
// finite differences of the product's own loss (float logits, step 1e-3).
TEST_P(YoloLossFd, GradientMatchesReference)
{
    const FdCase k = GetParam();
    LossNet t(kW, kH, 2, 3, 2, fd_yolo_keys(k));
    ASSERT_NE(t.l, nullptr);
    const Ref R{wh_yolo_get(t.l), kW, kH, 2, kNetW, kNetH};
    const Truths flat = fd_truths();
    const std::vector<Truths> truths = split(flat, 2, kMax);
    ASSERT_EQ(truths[0].size(), 3u);
    ASSERT_EQ(truths[1].size(), 2u);

    // Random logits (w, h within [-1, 1], the rest [-2, 2]) far enough from
    // every decision boundary that no step below flips one, with at least
    // one prediction ignored so that the ignore rule is exercised, and a
    // pair overlapping partly in x and one in y (else an IoU loss can have
    // no x or y gradient at all, and a wrong one would go unseen).
    Vec z(t.n);
    Frozen fz;
    RefOut base;
    bool found = false;
    for (uint64_t seed = 1; seed < 300 && !found; seed++) {
        std::mt19937_64 rng(seed * 7919 + (uint64_t)k.sxy_pct);
        std::uniform_real_distribution<double> u(-1, 1);
        for (size_t i = 0; i < t.n; i++) {
            const int e = (int)((i / (kW * kH)) % t.per);
            z[i] = (float)((e == 2 || e == 3) ? u(rng) : 2 * u(rng));
        }
        fz = Frozen();
        ref_loss(R, z, truths, fz, &base);
        found = base.ignore_margin > 5e-3 && base.class_margin > 1e-3 && base.edge_margin > 2e-3 &&
                base.n_ignored >= 1 && base.n_partial_x >= 1 && base.n_partial_y >= 1;
    }
    ASSERT_TRUE(found) << "no logits away from the decision boundaries";
    for (size_t i = 0; i < t.n; i++) t.logits[i] = (float)z[i];

    wh_yolo_loss_parts pp;
    ASSERT_EQ(t.loss(flat, kMax, kNetW, kNetH, &pp), WH_OK) << t.ctx.msg;
    EXPECT_NEAR(pp.box, base.box, 1e-9 * (1 + base.box));
    EXPECT_NEAR(pp.obj, base.obj, 1e-9 * (1 + base.obj));
    EXPECT_NEAR(pp.cls, base.cls, 1e-9 * (1 + base.cls));
    EXPECT_NEAR(pp.loss, base.loss, 1e-9 * (1 + base.loss));
    EXPECT_EQ(pp.count, base.count);
    EXPECT_EQ(pp.n_truth, 5);
    EXPECT_EQ(pp.n_pred, 2L * 3 * kW * kH);
    EXPECT_NEAR(pp.iou_sum, base.iou_sum, 1e-9);
    EXPECT_EQ(pp.recall50, base.r50);
    EXPECT_EQ(pp.recall75, base.r75);
    EXPECT_NEAR(pp.obj_sum, base.obj_sum, 1e-9);
    EXPECT_NEAR(pp.cls_sum, base.cls_sum, 1e-9);
    EXPECT_NEAR(pp.anyobj_sum, base.anyobj, 1e-9);
    // T0 and T2, T3 at their best anchors (T1, T4 belong to other layers);
    // with iou_thresh .2 also T0 -> 3, 4; T2 -> 2, 4; T3 -> 2, 3; T4 -> 4, 3.
    EXPECT_EQ(pp.count, k.iou_thresh_pct < 100 ? 11 : 3);

    const float *dl = wh_yolo_dlogit(t.l);
    ASSERT_NE(dl, nullptr);
    Vec fd(t.n);
    const double h = 1e-5;
    for (size_t i = 0; i < t.n; i++) {
        Vec zp = z, zm = z;
        zp[i] += h;
        zm[i] -= h;
        fd[i] =
            (ref_loss(R, zp, truths, fz, nullptr) - ref_loss(R, zm, truths, fz, nullptr)) / (2 * h);
    }
    expect_groups_close(dl, fd, t.per, kW * kH, 1e-5, fd_name(k) + " vs reference");

    // The product's own loss, by finite differences of its float input. Not
    // for ciou: its gradient holds alpha constant, its loss does not. One
    // thread: 1700 tiny parallel regions are slow on a busy machine. Nor for
    // loss_norm=mean: its objectness target (an IoU) is held constant too.
    if (std::string(k.iou_loss) == "ciou" || k.mean) return;
    const std::vector<float> grad(dl, dl + t.n);
    Vec fd_own(t.n);
    const int saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    for (size_t i = 0; i < t.n; i++) {
        const float z0 = t.logits[i], zp = z0 + 1e-3f, zm = z0 - 1e-3f;
        wh_yolo_loss_parts a, b;
        t.logits[i] = zp;
        ASSERT_EQ(t.loss(flat, kMax, kNetW, kNetH, &a), WH_OK) << t.ctx.msg;
        t.logits[i] = zm;
        ASSERT_EQ(t.loss(flat, kMax, kNetW, kNetH, &b), WH_OK) << t.ctx.msg;
        t.logits[i] = z0;
        fd_own[i] = (a.loss - b.loss) / ((double)zp - (double)zm);
    }
    omp_set_num_threads(saved_threads);
    expect_groups_close(grad.data(), fd_own, t.per, kW * kH, 1e-3, fd_name(k) + " vs own loss");
}

std::vector<FdCase> fd_cases()
{
    std::vector<FdCase> v;
    for (const char *loss : {"mse", "giou", "diou", "ciou"})
        for (int ithr : {100, 20})
            for (int sxy : {100, 110})
                for (int eps : {0, 10}) v.push_back({loss, ithr, sxy, eps});
    for (const char *loss : {"mse", "ciou"})
        for (int ithr : {100, 20}) v.push_back({loss, ithr, 110, 10, true});
    return v;
}

INSTANTIATE_TEST_SUITE_P(Options, YoloLossFd, ::testing::ValuesIn(fd_cases()),
                         [](const ::testing::TestParamInfo<FdCase> &i) {
                             return fd_name(i.param);
                         });

// ---- 2. hand-worked cases ----------------------------------------------------
//
// A 128x128 input with a 4x4 grid (stride 32): cell (col, row) has its
// centre at ((col + .5)/4, (row + .5)/4); a size of P pixels is P/128.

const int kN = 128;

// One truth, and the prediction responsible for it (anchor 1, 40x40, cell
// col 1, row 2) saying exactly that box: x .5 of the cell (logit 0), y .25
// (logit ln(1/3)), size the anchor's (logits 0), objectness, class 0 and not
// class 1 all with logits of +-20; every other objectness -20. Every term is
// then below 1e-6, the IoU 1.
TEST(YoloLossHand, PerfectPredictionCostsNearlyNothing)
{
    LossNet t(4, 4, 1, 3, 2, "anchors=16,16, 40,40, 100,100\nnum=3\nmask=0,1,2\n");
    ASSERT_NE(t.l, nullptr);
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < 16; i++) t.at(0, a, 4, i / 4, i % 4) = -20.f;
    t.at(0, 1, 1, 2, 1) = (float)logit(.25);
    t.at(0, 1, 4, 2, 1) = 20.f;
    t.at(0, 1, 5, 2, 1) = 20.f;
    t.at(0, 1, 6, 2, 1) = -20.f;
    const Truths tr = {{1.5f / 4, 2.25f / 4, 40.f / kN, 40.f / kN, 0}};
    wh_yolo_loss_parts pp;
    ASSERT_EQ(t.loss(tr, 1, kN, kN, &pp), WH_OK) << t.ctx.msg;
    EXPECT_EQ(pp.n_truth, 1);
    EXPECT_EQ(pp.count, 1);
    EXPECT_NEAR(pp.iou_sum, 1.0, 1e-6);
    EXPECT_EQ(pp.recall50, 1);
    EXPECT_EQ(pp.recall75, 1);
    EXPECT_NEAR(pp.obj_sum, 1.0, 1e-6);
    EXPECT_NEAR(pp.cls_sum, 1.0, 1e-6);
    EXPECT_LT(pp.loss, 1e-6);
    EXPECT_LT(pp.box, 1e-9);
    EXPECT_GE(pp.obj, 0.0);
    const float *dl = wh_yolo_dlogit(t.l);
    for (size_t i = 0; i < t.n; i++) EXPECT_LT(std::fabs(dl[i]), 1e-6f) << i;
    // The same truth with the objectness logit at 0 instead: BCE(0, 1) = ln 2.
    t.at(0, 1, 4, 2, 1) = 0.f;
    ASSERT_EQ(t.loss(tr, 1, kN, kN, &pp), WH_OK) << t.ctx.msg;
    EXPECT_NEAR(pp.obj, std::log(2.0), 1e-6);
    EXPECT_FLOAT_EQ(t.dl(0, 1, 4, 2, 1), -.5f);  // s(0) - 1
}

// Truths T0 at cell (1,1) and T1 at cell (3,3), both 40x40 at the cell
// centre; anchors 16, 40, 100 (square); every logit 0 (objectness .5,
// classes .5), obj_normalizer 2, ignore_thresh .5.
//   A  anchor 100 at T0's cell, size logits ln .5 -> 50x50 on T0: IoU
//      1600/2500 = .64 > .5, a class above .25: ignored, gradient 0
//   B  anchor 16 at T0's cell: IoU 256/1600 = .16: gradient 2 * .5 = 1
//   C  anchor 100 at T1's cell, 50x50 on T1 (IoU .64) but class logits -3
//      (.047 < .25): not ignored (darknet's class match), gradient 1
//   anchor 40 at both cells is responsible: 2 * (.5 - 1) = -1
// No Obj: 48 predictions of .5 = 24.
TEST(YoloLossHand, IgnoredPredictionsGetNoObjectnessGradient)
{
    LossNet t(
        4, 4, 1, 3, 2,
        "anchors=16,16, 40,40, 100,100\nnum=3\nmask=0,1,2\nobj_normalizer=2\nignore_thresh=.5\n");
    ASSERT_NE(t.l, nullptr);
    for (int e : {2, 3}) {
        t.at(0, 2, e, 1, 1) = (float)std::log(.5);
        t.at(0, 2, e, 3, 3) = (float)std::log(.5);
    }
    t.at(0, 2, 5, 3, 3) = t.at(0, 2, 6, 3, 3) = -3.f;
    const Truths tr = {{1.5f / 4, 1.5f / 4, 40.f / kN, 40.f / kN, 0},
                       {3.5f / 4, 3.5f / 4, 40.f / kN, 40.f / kN, 1}};
    wh_yolo_loss_parts pp;
    ASSERT_EQ(t.loss(tr, 2, kN, kN, &pp), WH_OK) << t.ctx.msg;
    EXPECT_EQ(t.dl(0, 2, 4, 1, 1), 0.f);         // A
    EXPECT_FLOAT_EQ(t.dl(0, 0, 4, 1, 1), 1.f);   // B
    EXPECT_FLOAT_EQ(t.dl(0, 2, 4, 3, 3), 1.f);   // C
    EXPECT_FLOAT_EQ(t.dl(0, 1, 4, 1, 1), -1.f);  // responsible
    EXPECT_FLOAT_EQ(t.dl(0, 1, 4, 3, 3), -1.f);
    EXPECT_FLOAT_EQ(t.dl(0, 0, 4, 0, 0), 1.f);  // far from both
    EXPECT_NEAR(pp.anyobj_sum, 24.0, 1e-9);
    EXPECT_EQ(pp.n_pred, 48);
    // Objectness: 45 predictions at target 0 (48 - 2 responsible - A), and
    // 2 at target 1, each 2 * ln 2.
    EXPECT_NEAR(pp.obj, 47 * 2 * std::log(2.0), 1e-9);
    // With ignore_thresh .7 (above A's IoU .64) A is no longer ignored.
    LossNet t2(
        4, 4, 1, 3, 2,
        "anchors=16,16, 40,40, 100,100\nnum=3\nmask=0,1,2\nobj_normalizer=2\nignore_thresh=.7\n");
    ASSERT_NE(t2.l, nullptr);
    std::copy(t.logits, t.logits + t.n, t2.logits);
    ASSERT_EQ(t2.loss(tr, 2, kN, kN, &pp), WH_OK) << t2.ctx.msg;
    EXPECT_FLOAT_EQ(t2.dl(0, 2, 4, 1, 1), 1.f);
}

// Anchors 20x60, 60x20, 40x40 (mask all, 1 class). Truths A 22x58 at cell
// (0,0), B 58x22 at cell (2,1), C 38x42 at cell (3,3). Shape IoUs:
//   A: anchor 0 1160/1316 = .88, anchor 1 440/2036 = .22, anchor 2 880/1996 = .44
//   B: the mirror image: anchor 1 .88;  C: anchor 2 1520/1676 = .91, 0 and 1 .43
// so the responsible predictions are anchor 0 at A's cell, 1 at B's, 2 at
// C's, and only they get class and box gradients and a negative objectness one.
TEST(YoloLossHand, ResponsibleAnchorIsTheBestShape)
{
    const std::string anchors = "anchors=20,60, 60,20, 40,40\nnum=3\nignore_thresh=.7\n";
    LossNet t(4, 4, 1, 3, 1, anchors + "mask=0,1,2\n");
    ASSERT_NE(t.l, nullptr);
    const Truths tr = {{.5f / 4, .5f / 4, 22.f / kN, 58.f / kN, 0},
                       {2.5f / 4, 1.5f / 4, 58.f / kN, 22.f / kN, 0},
                       {3.5f / 4, 3.5f / 4, 38.f / kN, 42.f / kN, 0}};
    wh_yolo_loss_parts pp;
    ASSERT_EQ(t.loss(tr, 3, kN, kN, &pp), WH_OK) << t.ctx.msg;
    EXPECT_EQ(pp.count, 3);
    const int resp[3][3] = {{0, 0, 0}, {1, 1, 2}, {2, 3, 3}};  // anchor, row, col
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < 16; i++) {
            bool r = false;
            for (auto &x : resp) r |= x[0] == a && x[1] == i / 4 && x[2] == i % 4;
            SCOPED_TRACE("anchor " + std::to_string(a) + " cell " + std::to_string(i));
            EXPECT_EQ(t.dl(0, a, 5, i / 4, i % 4) != 0.f, r);  // class
            EXPECT_EQ(t.dl(0, a, 2, i / 4, i % 4) != 0.f, r);  // box w (truth != anchor)
            EXPECT_FLOAT_EQ(t.dl(0, a, 4, i / 4, i % 4), r ? -.5f : .5f);
        }
    // A layer predicting anchor 1 only: A's best anchor (0) is another
    // layer's, so nothing here is responsible for it...
    LossNet o(4, 4, 1, 1, 1, anchors + "mask=1\n");
    ASSERT_NE(o.l, nullptr);
    const Truths ta = {tr[0]};
    ASSERT_EQ(o.loss(ta, 1, kN, kN, &pp), WH_OK) << o.ctx.msg;
    EXPECT_EQ(pp.count, 0);
    EXPECT_EQ(pp.n_truth, 1);
    for (int i = 0; i < 16; i++) EXPECT_FLOAT_EQ(o.dl(0, 0, 4, i / 4, i % 4), .5f) << i;
    // ...unless iou_thresh admits anchor 1 (shape IoU .22 > .2).
    LossNet o2(4, 4, 1, 1, 1, anchors + "mask=1\niou_thresh=.2\n");
    ASSERT_NE(o2.l, nullptr);
    ASSERT_EQ(o2.loss(ta, 1, kN, kN, &pp), WH_OK) << o2.ctx.msg;
    EXPECT_EQ(pp.count, 1);
    EXPECT_FLOAT_EQ(o2.dl(0, 0, 4, 0, 0), -.5f);
    LossNet o3(4, 4, 1, 1, 1, anchors + "mask=1\niou_thresh=.25\n");
    ASSERT_NE(o3.l, nullptr);
    ASSERT_EQ(o3.loss(ta, 1, kN, kN, &pp), WH_OK) << o3.ctx.msg;
    EXPECT_EQ(pp.count, 0);
}

// YOLOv5's assignment (anchor_t), same anchors and truths as above. Width
// and height ratios (each >= 1), the largest of the two:
//   A 22x58: anchor 0 max(22/20, 60/58) = 1.1, 1 max(60/22, 58/20) = 2.9,
//            2 max(40/22, 58/40) = 1.82
//   B 58x22: the mirror image (1: 1.1, 0: 2.9, 2: 1.82)
//   C 38x42: anchor 0 max(38/20, 60/42) = 1.9, 1 max(60/38, 42/20) = 2.1,
//            2 max(40/38, 42/40) = 1.053
// anchor_t=2: A -> 0, 2; B -> 1, 2; C -> 0, 2 (6 responsible predictions).
// anchor_t=1.05: no anchor fits any truth, so each gets its best-fitting one
// (A 0, B 1, C 2: darknet's choice here). A layer with anchor 1 only learns
// A under anchor_t=3 (2.9 < 3) but not under 2.
TEST(YoloLossHand, AnchorRatioAssignment)
{
    const std::string anchors = "anchors=20,60, 60,20, 40,40\nnum=3\nignore_thresh=.7\n";
    const Truths tr = {{.5f / 4, .5f / 4, 22.f / kN, 58.f / kN, 0},
                       {2.5f / 4, 1.5f / 4, 58.f / kN, 22.f / kN, 0},
                       {3.5f / 4, 3.5f / 4, 38.f / kN, 42.f / kN, 0}};
    struct Case {
        const char *t;
        std::vector<std::array<int, 3>> resp;  // anchor, row, col
    } cases[] = {{"2", {{0, 0, 0}, {2, 0, 0}, {1, 1, 2}, {2, 1, 2}, {0, 3, 3}, {2, 3, 3}}},
                 {"1.05", {{0, 0, 0}, {1, 1, 2}, {2, 3, 3}}}};
    for (const Case &k : cases) {
        SCOPED_TRACE(std::string("anchor_t=") + k.t);
        LossNet t(4, 4, 1, 3, 1, anchors + "mask=0,1,2\nanchor_t=" + k.t + "\n");
        ASSERT_NE(t.l, nullptr);
        wh_yolo_loss_parts pp;
        ASSERT_EQ(t.loss(tr, 3, kN, kN, &pp), WH_OK) << t.ctx.msg;
        EXPECT_EQ(pp.count, (int)k.resp.size());
        for (int a = 0; a < 3; a++)
            for (int i = 0; i < 16; i++) {
                bool r = false;
                for (auto &x : k.resp) r |= x[0] == a && x[1] == i / 4 && x[2] == i % 4;
                SCOPED_TRACE("anchor " + std::to_string(a) + " cell " + std::to_string(i));
                EXPECT_EQ(t.dl(0, a, 5, i / 4, i % 4) != 0.f, r);  // class
                EXPECT_FLOAT_EQ(t.dl(0, a, 4, i / 4, i % 4), r ? -.5f : .5f);
            }
    }
    const Truths ta = {tr[0]};
    for (const char *at : {"2", "3"}) {
        LossNet o(4, 4, 1, 1, 1, anchors + "mask=1\nanchor_t=" + at + "\n");
        ASSERT_NE(o.l, nullptr);
        wh_yolo_loss_parts pp;
        ASSERT_EQ(o.loss(ta, 1, kN, kN, &pp), WH_OK) << o.ctx.msg;
        EXPECT_EQ(pp.count, std::string(at) == "3" ? 1 : 0) << "anchor_t=" << at;
        EXPECT_FLOAT_EQ(o.dl(0, 0, 4, 0, 0), std::string(at) == "3" ? -.5f : .5f) << "anchor_t=" << at;
    }
    // anchor_t is a ratio >= 1: 0 (darknet's rule) or above 1
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *c = nullptr;
    ASSERT_EQ(wh_cfg_parse_string("[net]\nwidth=4\nheight=4\nchannels=6\n[upsample]\nstride=1\n"
                                  "[yolo]\nclasses=1\nanchors=20,60\nnum=1\nmask=0\nanchor_t=0.5\n",
                                  "bad.cfg", &c, &ctx),
              WH_OK);
    wh_net_opts no = {};
    wh_net *net = nullptr;
    EXPECT_NE(wh_net_create(c, &no, &net, &ctx), WH_OK);
    EXPECT_NE(std::string(ctx.msg).find("bad.cfg:12: [yolo] anchor_t=0.5"), std::string::npos) << ctx.msg;
    wh_net_destroy(net);
    wh_cfg_free(c);
}

// bias_prior=1 starts the head's output biases at YOLOv5's priors
// (objectness log(8 / cells), classes log(0.6 / (classes - 0.99999)));
// without it the convolution keeps its own initial biases (0).
TEST(YoloLossHand, BiasPriors)
{
    for (const char *norm : {"1", "0"}) {
        SCOPED_TRACE(norm);
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        const std::string cfg = std::string("[net]\nwidth=32\nheight=24\nchannels=3\n"
                                            "[convolutional]\nfilters=16\nsize=1\nstride=2\nactivation=linear\n"
                                            "[yolo]\nclasses=3\nanchors=8,8, 16,16\nnum=2\nmask=0,1\nloss_norm=mean\nbias_prior=") +
                                norm + "\n";
        wh_cfg *c = nullptr;
        ASSERT_EQ(wh_cfg_parse_string(cfg.c_str(), "prior.cfg", &c, &ctx), WH_OK) << ctx.msg;
        wh_net_opts no = {};
        wh_net *net = nullptr;
        ASSERT_EQ(wh_net_create(c, &no, &net, &ctx), WH_OK) << ctx.msg;
        wh_cfg_free(c);
        wh_net_init_weights(net, 7);
        const wh_layer &conv = net->layers[0];
        const float *b = nullptr;
        for (int k = 0; k < conv.n_params; k++)
            if (std::string(conv.params[k].name) == "biases") b = conv.params[k].data;
        ASSERT_NE(b, nullptr);
        const bool mean = std::string(norm) == "1";
        // a 16x12 grid: 192 cells
        for (int a = 0; a < 2; a++)
            for (int e = 0; e < 8; e++) {
                const double want = !mean ? 0.0 : e == 4 ? std::log(8.0 / 192) : e >= 5 ? std::log(.6 / 2.00001) : 0.0;
                EXPECT_NEAR(b[a * 8 + e], want, 1e-6) << "anchor " << a << " entry " << e;
            }
        wh_net_destroy(net);
    }
}

// One anchor 40x40, 1 class. Three 40x40 truths at cell centres; their
// predictions sit at the same centres with widths 50, 66.7 and 16 pixels
// (width logits ln 1.25, ln(1/.6), ln .4): IoUs 1600/2000 = .8, 40/66.7 = .6
// and .4. Darknet's statistics: count 3, IoU sum 1.8, recall .5: 2, .75: 1;
// objectness .5 each (sum 1.5), class logit ln 3 -> .75 each (sum 2.25).
// A fourth truth (4x4 pixels) goes to an anchor of another layer's.
TEST(YoloLossHand, AverageIouAndRecall)
{
    LossNet t(4, 4, 1, 1, 1, "anchors=40,40, 4,4\nnum=2\nmask=0\n");
    ASSERT_NE(t.l, nullptr);
    for (int i = 0; i < 16; i++) t.at(0, 0, 5, i / 4, i % 4) = (float)std::log(3.0);
    t.at(0, 0, 2, 0, 0) = (float)std::log(1.25);
    t.at(0, 0, 2, 2, 2) = (float)std::log(1 / .6);
    t.at(0, 0, 2, 3, 0) = (float)std::log(.4);
    const float s = 40.f / kN;
    const Truths tr = {{.5f / 4, .5f / 4, s, s, 0},
                       {2.5f / 4, 2.5f / 4, s, s, 0},
                       {.5f / 4, 3.5f / 4, s, s, 0},
                       {1.5f / 4, 1.5f / 4, 4.f / kN, 4.f / kN, 0}};
    wh_yolo_loss_parts pp, sum = {};
    ASSERT_EQ(t.loss(tr, 4, kN, kN, &pp), WH_OK) << t.ctx.msg;
    EXPECT_EQ(pp.n_truth, 4);
    EXPECT_EQ(pp.count, 3);
    EXPECT_NEAR(pp.iou_sum, 1.8, 1e-6);
    EXPECT_EQ(pp.recall50, 2);
    EXPECT_EQ(pp.recall75, 1);
    EXPECT_NEAR(pp.obj_sum, 1.5, 1e-6);
    EXPECT_NEAR(pp.cls_sum, 2.25, 1e-6);
    // parts of two layers add up field by field
    wh_yolo_loss_parts_add(&sum, &pp);
    wh_yolo_loss_parts_add(&sum, &pp);
    EXPECT_EQ(sum.count, 6);
    EXPECT_EQ(sum.n_pred, 32);
    EXPECT_DOUBLE_EQ(sum.loss, 2 * pp.loss);
    EXPECT_DOUBLE_EQ(sum.iou_sum, 2 * pp.iou_sum);
}

// Two truths in the same cell (1,1) with the same (only) anchor: the one
// prediction is responsible for both. Its box gradient is the sum of the two
// truths' (darknet accumulates); with iou_thresh < 1, darknet's
// averages_yolo_deltas divides it by the number of classes (2 here, 1 when
// both truths have the same class). Its class targets are 1 for both classes.
struct PairGrads {
    float box[4];
    double box_loss;
    float cls[3];
};

PairGrads pair_run(const std::string &keys, const Truths &tr)
{
    LossNet t(4, 4, 1, 1, 3, "anchors=40,40\nnum=1\nmask=0\n" + keys);
    PairGrads g = {};
    if (!t.l) return g;
    // the box overlaps both truths partly in x and in y, so that no
    // component of the IoU-loss gradients is 0
    const float z[8] = {2.f, 1.5f, .2f, -.1f, .5f, .7f, -.6f, .1f};
    for (int e = 0; e < 8; e++) t.at(0, 0, e, 1, 1) = z[e];
    wh_yolo_loss_parts pp;
    EXPECT_EQ(t.loss(tr, (int)tr.size(), kN, kN, &pp), WH_OK) << t.ctx.msg;
    for (int e = 0; e < 4; e++) g.box[e] = t.dl(0, 0, e, 1, 1);
    for (int c = 0; c < 3; c++) g.cls[c] = t.dl(0, 0, 5 + c, 1, 1);
    g.box_loss = pp.box;
    return g;
}

TEST(YoloLossHand, SharedPredictionSumsOrAveragesItsTruths)
{
    const wh_truth A = {.395f, .375f, .3f, .35f, 0}, B = {.345f, .39f, .28f, .3f, 2};
    wh_truth B0 = B;
    B0.cls = 0;
    for (const char *kind : {"mse", "giou", "ciou"}) {
        SCOPED_TRACE(kind);
        const std::string k = std::string("iou_loss=") + kind + "\n";
        for (const bool avg : {false, true}) {
            const std::string ithr = avg ? "iou_thresh=.9\n" : "iou_thresh=1\n";
            const PairGrads a = pair_run(k + ithr, {A}), b = pair_run(k + ithr, {B});
            const PairGrads ab = pair_run(k + ithr, {A, B}), ab0 = pair_run(k + ithr, {A, B0});
            const PairGrads b0 = pair_run(k + ithr, {B0});
            for (int e = 0; e < 4; e++) {
                EXPECT_NE(a.box[e], 0.f);
                EXPECT_NEAR(ab.box[e], (a.box[e] + b.box[e]) / (avg ? 2 : 1), 1e-6) << e;
                EXPECT_NEAR(ab0.box[e], a.box[e] + b0.box[e], 1e-6) << e;  // one class
            }
            EXPECT_NEAR(ab.box_loss, (a.box_loss + b.box_loss) / (avg ? 2 : 1), 1e-9);
            // classes 0 and 2 are both targets 1
            EXPECT_FLOAT_EQ(ab.cls[0], (float)(sig(.7) - 1));
            EXPECT_FLOAT_EQ(ab.cls[1], (float)sig(-.6));
            EXPECT_FLOAT_EQ(ab.cls[2], (float)(sig(.1) - 1));
        }
    }
}

// label_smooth_eps .1: targets 1 -> .95, 0 -> .05 at a responsible
// prediction; elsewhere the classes get no gradient.
TEST(YoloLossHand, LabelSmoothingTargets)
{
    LossNet t(4, 4, 1, 1, 3, "anchors=40,40\nnum=1\nmask=0\nlabel_smooth_eps=.1\n");
    ASSERT_NE(t.l, nullptr);
    t.at(0, 0, 5, 1, 1) = .7f;
    t.at(0, 0, 6, 1, 1) = -.6f;
    t.at(0, 0, 7, 1, 1) = .1f;
    const Truths tr = {{.375f, .375f, .3f, .35f, 2}};
    wh_yolo_loss_parts pp;
    ASSERT_EQ(t.loss(tr, 1, kN, kN, &pp), WH_OK) << t.ctx.msg;
    EXPECT_FLOAT_EQ(t.dl(0, 0, 5, 1, 1), (float)(sig(.7) - .05));
    EXPECT_FLOAT_EQ(t.dl(0, 0, 6, 1, 1), (float)(sig(-.6) - .05));
    EXPECT_FLOAT_EQ(t.dl(0, 0, 7, 1, 1), (float)(sig(.1) - .95));
    EXPECT_EQ(t.dl(0, 0, 5, 2, 2), 0.f);
    // cross-entropy minus the targets' entropy: at logit(.95) and logit(.05)
    // the class loss is 0
    t.at(0, 0, 5, 1, 1) = t.at(0, 0, 6, 1, 1) = (float)logit(.05);
    t.at(0, 0, 7, 1, 1) = (float)logit(.95);
    ASSERT_EQ(t.loss(tr, 1, kN, kN, &pp), WH_OK) << t.ctx.msg;
    EXPECT_NEAR(pp.cls, 0.0, 1e-12);
}

// One anchor 40x40, iou_normalizer .5. The prediction at cell (1,1) with
// logits 0 is the anchor's box at the cell centre, 48 pixels from the left;
// the truth, 40x40 too, is centred 8 pixels to the right (x = 56/128 = .4375,
// still cell 1). In pixels: overlap 32x40, union 48x40 = the enclosing box:
//   IoU = GIoU = 2/3;  DIoU = 2/3 - 8^2 / (48^2 + 40^2) = 2/3 - 64/3904;
//   CIoU = DIoU (same aspect: v = 0).
// d(1 - IoU)/d(x in pixels) = -80/48^2 (IoU = (40 - d)/(40 + d), d the
// offset); x = (s(z) + 1)/4 of 128 pixels: dx/dz = 128 * .25 / 4 = 8 pixels:
// gradient .5 * -80/2304 * 8 = -.138889 (giou; diou adds .5 * 8 * d(rho^2/c^2)).
// mse: tx = .4375*4 - 1 = .75, ty = .5, tw = th = 0, scale 2 - (40/128)^2
// = 1.90234375: loss .5 * scale * BCE(0, .75) = .5 * scale * (ln 2 + .75 ln .75
// + .25 ln .25) = .5 * 1.90234375 * .1308120; x gradient .5 * scale * (.5 - .75).
TEST(YoloLossHand, BoxLossesWorkedByHand)
{
    const Truths tr = {{56.f / kN, 48.f / kN, 40.f / kN, 40.f / kN, 0}};
    auto run = [&](const char *kind, wh_yolo_loss_parts *pp, float gx[2]) {
        LossNet t(4, 4, 1, 1, 1,
                  std::string("anchors=40,40\nnum=1\nmask=0\niou_normalizer=.5\niou_loss=") + kind +
                      "\n");
        ASSERT_NE(t.l, nullptr);
        ASSERT_EQ(t.loss(tr, 1, kN, kN, pp), WH_OK) << t.ctx.msg;
        gx[0] = t.dl(0, 0, 0, 1, 1);
        gx[1] = t.dl(0, 0, 1, 1, 1);
    };
    wh_yolo_loss_parts pp;
    float g[2];
    run("giou", &pp, g);
    EXPECT_NEAR(pp.box, .5 / 3, 1e-6);
    EXPECT_NEAR(g[0], -.5 * 80 / 2304.0 * 8, 1e-6);
    EXPECT_NEAR(g[1], 0.0, 1e-7);
    EXPECT_NEAR(pp.iou_sum, 2 / 3.0, 1e-6);
    run("diou", &pp, g);
    EXPECT_NEAR(pp.box, .5 * (1 / 3.0 + 64 / 3904.0), 1e-6);
    // rho^2/c^2 = d^2 / ((40 + d)^2 + 40^2): derivative in d at 8 is
    // (2*8*3904 - 64*2*48) / 3904^2; d shrinks as x grows.
    const double drho = (2 * 8 * 3904.0 - 64 * 2 * 48.0) / (3904.0 * 3904.0);
    EXPECT_NEAR(g[0], .5 * (-80 / 2304.0 - drho) * 8, 1e-6);
    run("ciou", &pp, g);
    EXPECT_NEAR(pp.box, .5 * (1 / 3.0 + 64 / 3904.0), 1e-6);
    run("mse", &pp, g);
    const double scale = 2 - (40.0 / kN) * (40.0 / kN);
    EXPECT_NEAR(pp.box, .5 * scale * (std::log(2.0) + .75 * std::log(.75) + .25 * std::log(.25)),
                1e-6);
    EXPECT_NEAR(g[0], .5 * scale * (.5 - .75), 1e-6);
    EXPECT_NEAR(g[1], 0.0, 1e-7);
}

// max_delta clips each pair's IoU-loss gradient (darknet's clip_value); the
// mse gradient is not clipped (darknet clips only in its IoU branch).
TEST(YoloLossHand, MaxDeltaClipsIouLossGradient)
{
    const Truths tr = {{56.f / kN, 48.f / kN, 80.f / kN, 20.f / kN, 0}};
    auto grad = [&](const std::string &keys, int e) {
        LossNet t(4, 4, 1, 1, 1, "anchors=40,40\nnum=1\nmask=0\n" + keys);
        if (!t.l) return 0.f;  // the constructor has failed the test
        wh_yolo_loss_parts pp;
        EXPECT_EQ(t.loss(tr, 1, kN, kN, &pp), WH_OK) << t.ctx.msg;
        return t.dl(0, 0, e, 1, 1);
    };
    for (int e = 0; e < 4; e++) {
        const float free_g = grad("iou_loss=giou\n", e);
        const float clip_g = grad("iou_loss=giou\nmax_delta=.01\n", e);
        EXPECT_FLOAT_EQ(clip_g, std::max(-.01f, std::min(.01f, free_g))) << e;
        EXPECT_FLOAT_EQ(grad("iou_loss=mse\nmax_delta=.01\n", e), grad("iou_loss=mse\n", e)) << e;
    }
    EXPECT_GT(std::fabs(grad("iou_loss=giou\n", 2)), .01f);  // the clip did something
}

// ---- 3. backward ---------------------------------------------------------------

// After the loss, the producer's gradient is dlogit + dout * f'(x) with
// f' = sxy s(1 - s) for x, y, 1 for w, h, s(1 - s) for the rest.
TEST(YoloLossBackward, AddsDlogitNextToDout)
{
    LossNet t(kW, kH, 2, 3, 2, std::string(kAnchors) + "scale_x_y=1.1\niou_loss=ciou\n");
    ASSERT_NE(t.l, nullptr);
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    for (size_t i = 0; i < t.n; i++) t.logits[i] = u(rng);
    const Truths flat = fd_truths();
    wh_yolo_loss_parts pp;
    ASSERT_EQ(t.loss(flat, kMax, kNetW, kNetH, &pp), WH_OK) << t.ctx.msg;
    const std::vector<float> dl(wh_yolo_dlogit(t.l), wh_yolo_dlogit(t.l) + t.n);
    wh_net_zero_douts(t.net);
    std::vector<float> R(t.n);
    for (auto &v : R) v = u(rng);
    std::copy(R.begin(), R.end(), t.l->dout);
    float *din = t.net->layers[0].dout;
    ASSERT_EQ(wh_net_backward_layer(t.net, 1, nullptr, &t.ctx), WH_OK) << t.ctx.msg;
    const double sxy = wh_yolo_get(t.l)->scale_x_y;
    auto dact = [&](size_t i) {
        const int e = (int)((i / (kW * kH)) % t.per);
        const double s = sig(t.logits[i]);
        return e < 2 ? sxy * s * (1 - s) : (e < 4 ? 1.0 : s * (1 - s));
    };
    int nonzero = 0;
    for (size_t i = 0; i < t.n; i++) {
        EXPECT_NEAR(din[i], dl[i] + R[i] * dact(i), 1e-6) << i;
        nonzero += dl[i] != 0.f;
    }
    EXPECT_GT(nonzero, 100);
    // dout zero: exactly dlogit; a second backward adds it again
    wh_net_zero_douts(t.net);
    ASSERT_EQ(wh_net_backward_layer(t.net, 1, nullptr, &t.ctx), WH_OK);
    ASSERT_EQ(wh_net_backward_layer(t.net, 1, nullptr, &t.ctx), WH_OK);
    for (size_t i = 0; i < t.n; i++) ASSERT_FLOAT_EQ(din[i], 2 * dl[i]) << i;
    // cleared: nothing
    wh_yolo_loss_clear(t.l);
    EXPECT_EQ(wh_yolo_dlogit(t.l), nullptr);
    wh_net_zero_douts(t.net);
    ASSERT_EQ(wh_net_backward_layer(t.net, 1, nullptr, &t.ctx), WH_OK);
    for (size_t i = 0; i < t.n; i++) ASSERT_EQ(din[i], 0.f) << i;
    // a new forward discards the loss too (it belonged to other outputs)
    ASSERT_EQ(t.loss(flat, kMax, kNetW, kNetH, &pp), WH_OK);
    ASSERT_NE(wh_yolo_dlogit(t.l), nullptr);
    ASSERT_EQ(wh_net_forward_layer(t.net, 1, 1, &t.ctx), WH_OK);
    EXPECT_EQ(wh_yolo_dlogit(t.l), nullptr);
    wh_net_zero_douts(t.net);
    ASSERT_EQ(wh_net_backward_layer(t.net, 1, nullptr, &t.ctx), WH_OK);
    for (size_t i = 0; i < t.n; i++) ASSERT_EQ(din[i], 0.f) << i;
}

// The images are independent and summed in order: the same loss and
// gradient, bit for bit, with 1 and 2 threads.
TEST(YoloLossBackward, SameWithOneAndTwoThreads)
{
    LossNet t(kW, kH, 2, 3, 2, std::string(kAnchors) + "iou_loss=giou\niou_thresh=.2\n");
    ASSERT_NE(t.l, nullptr);
    std::mt19937_64 rng(9);
    std::uniform_real_distribution<float> u(-2, 2);
    for (size_t i = 0; i < t.n; i++) t.logits[i] = u(rng);
    const int saved = omp_get_max_threads();
    wh_yolo_loss_parts p1, p2;
    omp_set_num_threads(1);
    ASSERT_EQ(t.loss(fd_truths(), kMax, kNetW, kNetH, &p1), WH_OK) << t.ctx.msg;
    const std::vector<float> g1(wh_yolo_dlogit(t.l), wh_yolo_dlogit(t.l) + t.n);
    omp_set_num_threads(2);
    ASSERT_EQ(t.loss(fd_truths(), kMax, kNetW, kNetH, &p2), WH_OK) << t.ctx.msg;
    omp_set_num_threads(saved);
    EXPECT_EQ(p1.loss, p2.loss);
    EXPECT_EQ(p1.iou_sum, p2.iou_sum);
    EXPECT_EQ(p1.count, p2.count);
    for (size_t i = 0; i < t.n; i++) ASSERT_EQ(g1[i], wh_yolo_dlogit(t.l)[i]) << i;
}

// The way a trainer uses it: [net] -> 1x1 [convolutional] -> [yolo]; forward,
// loss, backward to the network input; checked by finite differences of the
// loss w.r.t. a few input values (float32 convolution, step 1e-2).
TEST(YoloLossBackward, WholeNetGradientToTheInput)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const int C = 3 * 7;
    std::string cfg = "[net]\nwidth=" + std::to_string(kW) + "\nheight=" + std::to_string(kH) +
                      "\nchannels=4\nbatch=2\n[convolutional]\nfilters=" + std::to_string(C) +
                      "\nsize=1\nstride=1\nactivation=linear\n[yolo]\nclasses=2\niou_loss=giou\n"
                      "ignore_thresh=.7\n" +
                      kAnchors;
    wh_cfg *c = nullptr;
    ASSERT_EQ(wh_cfg_parse_string(cfg.c_str(), "net.cfg", &c, &ctx), WH_OK) << ctx.msg;
    wh_net_opts o = {};
    o.train = 1;
    wh_net *net = nullptr;
    ASSERT_EQ(wh_net_create(c, &o, &net, &ctx), WH_OK) << ctx.msg;
    wh_cfg_free(c);
    wh_net_init_weights(net, 11);
    const size_t n_in = wh_shape_count(net->in_shape);
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<float> u(-1, 1);
    for (size_t i = 0; i < n_in; i++) net->input[i] = u(rng);
    const Truths flat = fd_truths();
    wh_layer *y = &net->layers[1];
    auto loss = [&]() {
        wh_yolo_loss_parts pp;
        EXPECT_EQ(wh_net_forward(net, 1, &ctx), WH_OK) << ctx.msg;
        EXPECT_EQ(wh_yolo_loss(y, flat.data(), kMax, kNetW, kNetH, &pp, &ctx), WH_OK) << ctx.msg;
        return pp.loss;
    };
    loss();
    std::vector<float> din(n_in, 0.f);
    wh_net_zero_douts(net);
    wh_net_zero_grads(net);
    ASSERT_EQ(wh_net_backward(net, din.data(), &ctx), WH_OK) << ctx.msg;
    double max_g = 0;
    for (float g : din) max_g = std::max(max_g, (double)std::fabs(g));
    ASSERT_GT(max_g, 0.0);
    for (size_t i = 0; i < n_in; i += 7) {
        const float x0 = net->input[i];
        net->input[i] = x0 + 1e-2f;
        const double lp = loss();
        net->input[i] = x0 - 1e-2f;
        const double lm = loss();
        net->input[i] = x0;
        EXPECT_NEAR(din[i], (lp - lm) / 2e-2, 2e-3 * max_g) << i;
    }
    wh_net_destroy(net);
}

// ---- 4. errors ---------------------------------------------------------------

bool has(const std::string &s, const std::string &sub) { return s.find(sub) != std::string::npos; }

TEST(YoloLossErrors, StateAndArguments)
{
    const Truths tr = {{.5f, .5f, .2f, .2f, 0}};
    {
        LossNet t(4, 4, 1, 1, 1, "anchors=40,40\nnum=1\n");
        ASSERT_NE(t.l, nullptr);
        // no training forward yet
        EXPECT_EQ(wh_yolo_loss(t.l, tr.data(), 1, kN, kN, nullptr, &t.ctx), WH_ERR_STATE);
        EXPECT_TRUE(has(t.ctx.msg, "training forward")) << t.ctx.msg;
        // an inference forward does not count
        ASSERT_EQ(wh_net_forward_layer(t.net, 1, 0, &t.ctx), WH_OK);
        EXPECT_EQ(wh_yolo_loss(t.l, tr.data(), 1, kN, kN, nullptr, &t.ctx), WH_ERR_STATE);
        // not a yolo layer
        EXPECT_EQ(wh_yolo_loss(&t.net->layers[0], tr.data(), 1, kN, kN, nullptr, &t.ctx),
                  WH_ERR_ARG);
        EXPECT_EQ(wh_yolo_dlogit(&t.net->layers[0]), nullptr);
        ASSERT_EQ(wh_net_forward_layer(t.net, 1, 1, &t.ctx), WH_OK);
        EXPECT_EQ(wh_yolo_loss(t.l, tr.data(), 1, 0, kN, nullptr, &t.ctx), WH_ERR_ARG);
        EXPECT_EQ(wh_yolo_loss(t.l, nullptr, 1, kN, kN, nullptr, &t.ctx), WH_ERR_ARG);
        // no truths at all: only the objectness terms
        wh_yolo_loss_parts pp;
        ASSERT_EQ(wh_yolo_loss(t.l, nullptr, 0, kN, kN, &pp, &t.ctx), WH_OK) << t.ctx.msg;
        EXPECT_NEAR(pp.obj, 16 * std::log(2.0), 1e-9);
        EXPECT_EQ(pp.count, 0);
    }
    {
        LossNet t(4, 4, 1, 1, 1, "anchors=40,40\nnum=1\n", false);
        ASSERT_NE(t.l, nullptr);
        ASSERT_EQ(wh_net_forward_layer(t.net, 1, 0, &t.ctx), WH_OK);
        EXPECT_EQ(wh_yolo_loss(t.l, tr.data(), 1, kN, kN, nullptr, &t.ctx), WH_ERR_STATE);
        EXPECT_TRUE(has(t.ctx.msg, "inference")) << t.ctx.msg;
    }
}

TEST(YoloLossErrors, BadTruthsNameImageAndEntry)
{
    LossNet t(4, 4, 2, 1, 3, "anchors=40,40\nnum=1\n");
    ASSERT_NE(t.l, nullptr);
    Truths tr = {
        {.5f, .5f, .2f, .2f, 0}, {0, 0, 0, 0, 0}, {.5f, .5f, .2f, .2f, 1}, {.2f, .3f, .1f, .1f, 7}};
    EXPECT_EQ(t.loss(tr, 2, kN, kN, nullptr), WH_ERR_ARG);
    EXPECT_TRUE(has(t.ctx.msg, "image 1 truth 1")) << t.ctx.msg;
    EXPECT_TRUE(has(t.ctx.msg, "class 7")) << t.ctx.msg;
    tr[3] = {1.2f, .3f, .1f, .1f, 0};
    EXPECT_EQ(t.loss(tr, 2, kN, kN, nullptr), WH_ERR_ARG);
    EXPECT_TRUE(has(t.ctx.msg, "image 1 truth 1")) << t.ctx.msg;
    tr[3] = {.2f, .3f, .1f, -.1f, 0};
    EXPECT_EQ(t.loss(tr, 2, kN, kN, nullptr), WH_ERR_ARG);
    tr[3] = {.2f, .3f, NAN, .1f, 0};
    EXPECT_EQ(t.loss(tr, 2, kN, kN, nullptr), WH_ERR_ARG);
    // x == 1 and y == 1 are inside (the last cell); entries after a w == 0
    // terminator are not read
    tr[3] = {1.f, 1.f, .1f, .1f, 0};
    wh_yolo_loss_parts pp;
    EXPECT_EQ(t.loss(tr, 2, kN, kN, &pp), WH_OK) << t.ctx.msg;
    EXPECT_EQ(pp.n_truth, 3);
    EXPECT_EQ(pp.count, 3);
    tr[1] = {0, 0, 0, 0, 0};
    tr[0].w = 0;
    tr[0].cls = 99;
    EXPECT_EQ(t.loss(tr, 2, kN, kN, &pp), WH_OK) << t.ctx.msg;
    EXPECT_EQ(pp.n_truth, 2);
}

TEST(YoloLossErrors, UnsupportedKeys)
{
    // objectness_smooth=1 is implemented: tests/layers/test_yolo_new_coords.cpp
    for (const char *key : {"focal_loss=1\n"}) {
        LossNet t(4, 4, 1, 1, 1, std::string("anchors=40,40\nnum=1\n") + key);
        ASSERT_NE(t.l, nullptr);
        const Truths tr = {{.5f, .5f, .2f, .2f, 0}};
        EXPECT_EQ(t.loss(tr, 1, kN, kN, nullptr), WH_ERR_UNSUPPORTED);
        EXPECT_TRUE(has(t.ctx.msg, std::string(key).substr(0, 8))) << t.ctx.msg;
    }
}

}  // namespace
