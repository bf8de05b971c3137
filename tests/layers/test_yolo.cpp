// Tests of the [yolo] layer (layers/yolo.c): the head map against a float64
// reference and its gradient by finite differences (tests/layers/harness.h),
// the decoding of boxes on a hand-worked example, and the cfg errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "layers/harness.h"

extern "C" {
#include "layers/yolo.h"
}

namespace {

struct YoloCase {
    int w, h, batch, classes, scale_pct;  // scale_x_y = scale_pct / 100
    std::vector<int> mask;
    int num;
};

std::string join(const std::vector<int> &v);

// Readable names in gtest's output: "7x5_b2_cls3_sxy105_mask3_4_5_of6".
std::string case_name(const YoloCase &k)
{
    std::string m = join(k.mask);
    for (auto &ch : m)
        if (ch == ',') ch = '_';
    return std::to_string(k.w) + "x" + std::to_string(k.h) + "_b" + std::to_string(k.batch) +
           "_cls" + std::to_string(k.classes) + "_sxy" + std::to_string(k.scale_pct) + "_mask" + m +
           "_of" + std::to_string(k.num);
}

void PrintTo(const YoloCase &k, std::ostream *os) { *os << case_name(k); }

std::string join(const std::vector<int> &v)
{
    std::string s;
    for (size_t i = 0; i < v.size(); i++) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

// [net] sized to the grid, an identity [upsample] producer (so its output,
// the yolo input, is finite-difference checked), then the [yolo] under test.
std::string yolo_cfg(const YoloCase &k)
{
    const int C = (int)k.mask.size() * (k.classes + 5);
    std::string anchors;
    for (int a = 0; a < k.num; a++)
        anchors += (a ? "," : "") + std::to_string(10 + 7 * a) + "," + std::to_string(13 + 5 * a);
    return "[net]\nwidth=" + std::to_string(k.w) + "\nheight=" + std::to_string(k.h) +
           "\nchannels=" + std::to_string(C) + "\nbatch=" + std::to_string(k.batch) +
           "\n[upsample]\nstride=1\n[yolo]\nmask=" + join(k.mask) + "\nanchors=" + anchors +
           "\nclasses=" + std::to_string(k.classes) + "\nnum=" + std::to_string(k.num) +
           "\nscale_x_y=" + std::to_string(k.scale_pct / 100.0) + "\n";
}

// Float64 reference of the head map, written from the darknet formulas:
// per anchor block of 5 + classes channels, x, y -> logistic * s - (s-1)/2,
// w, h unchanged, objectness and classes -> logistic.
wht::Vec yolo_ref(const wht::Vec &in, int n, int n_mask, int classes, int h, int w, double sxy)
{
    wht::Vec out(in.size());
    const int per = classes + 5, C = n_mask * per;
    for (int b = 0; b < n; b++)
        for (int c = 0; c < C; c++) {
            const int e = c % per;
            for (int i = 0; i < h * w; i++) {
                const size_t j = ((size_t)b * C + c) * h * w + i;
                const double sg = 1.0 / (1.0 + std::exp(-in[j]));
                if (e == 0 || e == 1)
                    out[j] = sg * sxy - 0.5 * (sxy - 1.0);
                else if (e == 2 || e == 3)
                    out[j] = in[j];
                else
                    out[j] = sg;
            }
        }
    return out;
}

class YoloLayer : public ::testing::TestWithParam<YoloCase> {};

// Forward vs the float64 reference; gradient vs finite differences; 1 vs 2
// threads (wht::check_layer), in training and in inference mode.
TEST_P(YoloLayer, ForwardBackwardMatchReference)
{
    const YoloCase k = GetParam();
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c, yolo_cfg(k), 17 + k.w * 31 + k.classes));
    ASSERT_EQ(c.l->out_shape.n, k.batch);
    ASSERT_EQ(c.l->out_shape.c, (int)k.mask.size() * (k.classes + 5));
    ASSERT_EQ(c.l->out_shape.h, k.h);
    ASSERT_EQ(c.l->out_shape.w, k.w);
    EXPECT_EQ(c.l->n_params, 0);
    const double sxy = k.scale_pct / 100.0;
    auto ref = [&](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) {
        return yolo_ref(in[0], k.batch, (int)k.mask.size(), k.classes, k.h, k.w, sxy);
    };
    wht::check_layer(c, ref, true);
    wht::check_layer(c, ref, false);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, YoloLayer,
    ::testing::Values(YoloCase{7, 5, 2, 1, 100, {0}, 1},          // odd grid, batch 2, 1 class
                      YoloCase{7, 5, 2, 3, 105, {3, 4, 5}, 6},    // 3 masks, scale_x_y 1.05
                      YoloCase{4, 4, 1, 3, 100, {0, 1, 2}, 3},    // no stretch, 3 masks
                      YoloCase{3, 6, 2, 1, 105, {2}, 3},          // 1 mask of 3, stretched
                      YoloCase{13, 13, 1, 3, 120, {1, 2, 3}, 9},  // a real grid, yolov4's 1.2
                      YoloCase{1, 1, 2, 1, 200, {0, 1}, 2}),      // one cell, scale_x_y 2
    [](const ::testing::TestParamInfo<YoloCase> &i) { return case_name(i.param); });

// Backward ADDS into the producer's dout: run it twice, get twice the gradient.
TEST(Yolo, BackwardAccumulates)
{
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c, yolo_cfg(YoloCase{5, 3, 1, 2, 105, {0, 1}, 2}), 5));
    wh_net_zero_douts(c.net);
    ASSERT_EQ(wh_net_forward_layer(c.net, c.l->index, 1, &c.ctx), WH_OK) << c.ctx.msg;
    const size_t n = wh_shape_count(c.l->out_shape);
    for (size_t i = 0; i < n; i++) c.l->dout[i] = 0.25f + 0.001f * (float)i;
    float *din = c.net->layers[0].dout;
    ASSERT_EQ(wh_net_backward_layer(c.net, c.l->index, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
    std::vector<float> once(din, din + n);
    ASSERT_EQ(wh_net_backward_layer(c.net, c.l->index, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
    for (size_t i = 0; i < n; i++) ASSERT_FLOAT_EQ(din[i], 2 * once[i]) << i;
}

// ---- decoding: a hand-worked example ---------------------------------------

double logit(double p) { return std::log(p / (1 - p)); }

// Net 128x128 with a 4x4 grid (stride 32), 2 classes, mask=0,1 over anchors
// (10,14) (23,27): C = 2 * 7 = 14. Batch 2; image 0 has nothing over the
// threshold, image 1 has two predictions:
//   A: anchor block 1 (anchor 23x27), cell col 2, row 1:
//      x raw 0 -> 0.5, y raw logit(.75) -> 0.75, w raw ln 2 -> 2x, h raw 0 -> 1x,
//      obj 0.9, classes 0.5 and 0.2
//   B: anchor block 0 (anchor 10x14), cell col 0, row 3: every raw 0 except
//      obj 0.9 (so x = y = 0.5, w = h = 1x, classes 0.5 and 0.5)
// Fractions of the input:  A: x (2 + .5)/4 = .625, y (1 + .75)/4 = .4375,
//   w 2*23/128 = .359375, h 27/128 = .2109375;  B: x .5/4 = .125,
//   y 3.5/4 = .875, w 10/128 = .078125, h 14/128 = .109375.
// Probabilities at thresh .25: A .9*.5 = .45, .9*.2 = .18 -> 0; B .45, .45.
struct DecodeNet {
    wh_ctx ctx;
    wh_net *net = nullptr;
    wh_layer *l = nullptr;
    DecodeNet(const std::string &extra = "")
    {
        wh_ctx_init(&ctx);
        std::string cfg = "[net]\nwidth=4\nheight=4\nchannels=14\nbatch=2\n"
                          "[upsample]\nstride=1\n"
                          "[yolo]\nmask=0,1\nanchors=10,14, 23,27\nclasses=2\nnum=2\n" + extra;
        wh_cfg *c = nullptr;
        EXPECT_EQ(wh_cfg_parse_string(cfg.c_str(), "decode.cfg", &c, &ctx), WH_OK) << ctx.msg;
        wh_net_opts o = {};
        EXPECT_EQ(wh_net_create(c, &o, &net, &ctx), WH_OK) << ctx.msg;
        wh_cfg_free(c);
        if (!net) return;
        l = &net->layers[1];
        // Raw head values written as the producer's output, then the yolo map.
        float *raw = net->layers[0].out;  // (2, 14, 4, 4)
        for (size_t i = 0; i < wh_shape_count(l->out_shape); i++) raw[i] = 0.f;
        auto at = [&](int b, int a, int e, int row, int col) -> float & {
            return raw[((b * 14 + a * 7 + e) * 4 + row) * 4 + col];
        };
        for (int b = 0; b < 2; b++)
            for (int a = 0; a < 2; a++)
                for (int i = 0; i < 16; i++) at(b, a, 4, i / 4, i % 4) = -20.f;  // obj ~ 2e-9
        at(1, 1, 1, 1, 2) = (float)logit(.75);
        at(1, 1, 2, 1, 2) = (float)std::log(2.0);
        at(1, 1, 4, 1, 2) = (float)logit(.9);
        at(1, 1, 6, 1, 2) = (float)logit(.2);
        at(1, 0, 4, 3, 0) = (float)logit(.9);
        EXPECT_EQ(wh_net_forward_layer(net, 1, 0, &ctx), WH_OK) << ctx.msg;
    }
    ~DecodeNet() { wh_net_destroy(net); }
};

void expect_box(const wh_detection &d, double x, double y, double w, double h)
{
    EXPECT_NEAR(d.box.x, x, 1e-3);
    EXPECT_NEAR(d.box.y, y, 1e-3);
    EXPECT_NEAR(d.box.w, w, 1e-3);
    EXPECT_NEAR(d.box.h, h, 1e-3);
}

TEST(YoloDecode, CountsPerImage)
{
    DecodeNet t;
    ASSERT_NE(t.l, nullptr);
    EXPECT_EQ(wh_yolo_count_detections(t.l, 0, .25f), 0);
    EXPECT_EQ(wh_yolo_count_detections(t.l, 1, .25f), 2);
    EXPECT_EQ(wh_yolo_count_detections(t.l, 1, .95f), 0);
    EXPECT_EQ(wh_yolo_count_detections(t.l, 2, .25f), 0);                // no image 2
    EXPECT_EQ(wh_yolo_count_detections(&t.net->layers[0], 1, .25f), 0);  // not a yolo
}

// Plain resize of a 640x480 image to 128x128: fractions times 640 and 480.
//   A: x .625*640 = 400, y .4375*480 = 210, w .359375*640 = 230, h .2109375*480 = 101.25
//   B: x .125*640 = 80,  y .875*480 = 420,  w .078125*640 = 50,  h .109375*480 = 52.5
TEST(YoloDecode, ResizedImage)
{
    DecodeNet t;
    ASSERT_NE(t.l, nullptr);
    wh_detection d[4];
    float pool[4 * 2];
    int n = -1;
    ASSERT_EQ(wh_yolo_get_detections(t.l, 1, 128, 128, 640, 480, .25f, 0, d, 4, pool, &n, &t.ctx),
              WH_OK) << t.ctx.msg;
    ASSERT_EQ(n, 2);
    // Darknet's order: cells row-major (A is cell 6, B cell 12), then anchors.
    expect_box(d[0], 400, 210, 230, 101.25);
    expect_box(d[1], 80, 420, 50, 52.5);
    EXPECT_NEAR(d[0].objectness, .9, 1e-5);
    EXPECT_EQ(d[0].cls_count, 2);
    EXPECT_EQ(d[0].batch, 1);
    EXPECT_EQ(d[0].prob, pool);
    EXPECT_EQ(d[1].prob, pool + 2);
    EXPECT_NEAR(d[0].prob[0], .45, 1e-5);
    EXPECT_EQ(d[0].prob[1], 0.f);  // .18 is below thresh
    EXPECT_NEAR(d[1].prob[0], .45, 1e-5);
    EXPECT_NEAR(d[1].prob[1], .45, 1e-5);
    // Nothing in image 0.
    ASSERT_EQ(wh_yolo_get_detections(t.l, 0, 128, 128, 640, 480, .25f, 0, d, 4, pool, &n, &t.ctx),
              WH_OK);
    EXPECT_EQ(n, 0);
}

// Letterbox of 640x480 into 128x128: scale 128/640 = .2, the image fills
// 128x96 with 16-pixel grey bands above and below. In input pixels A is
// centred at (.625*128, .4375*128) = (80, 56), size 46x27; in the image:
// x 80/.2 = 400, y (56 - 16)/.2 = 200, w 46/.2 = 230, h 27/.2 = 135.
// B: centre (16, 112), size 10x14 -> x 80, y (112 - 16)/.2 = 480, w 50, h 70.
TEST(YoloDecode, LetterboxedImage)
{
    DecodeNet t;
    ASSERT_NE(t.l, nullptr);
    wh_detection d[2];
    float pool[2 * 2];
    int n = -1;
    ASSERT_EQ(wh_yolo_get_detections(t.l, 1, 128, 128, 640, 480, .25f, 1, d, 2, pool, &n, &t.ctx),
              WH_OK) << t.ctx.msg;
    ASSERT_EQ(n, 2);
    expect_box(d[0], 400, 200, 230, 135);
    expect_box(d[1], 80, 480, 50, 70);
    // A portrait image (480x640) gets bands left and right instead:
    // A x (80 - 16)/.2 = 320, y 56/.2 = 280, w 230, h 135.
    ASSERT_EQ(wh_yolo_get_detections(t.l, 1, 128, 128, 480, 640, .25f, 1, d, 2, pool, &n, &t.ctx),
              WH_OK) << t.ctx.msg;
    expect_box(d[0], 320, 280, 230, 135);
}

// scale_x_y = 2 stretches x, y: s*2 - .5. A: x .5 -> .5, y .75 -> 1.0, so
// y = (1 + 1)/4 = .5 of the input -> 240 in a resized 640x480 image.
TEST(YoloDecode, ScaleXYStretchesCentres)
{
    DecodeNet t("scale_x_y=2\n");
    ASSERT_NE(t.l, nullptr);
    wh_detection d[2];
    float pool[2 * 2];
    int n = -1;
    ASSERT_EQ(wh_yolo_get_detections(t.l, 1, 128, 128, 640, 480, .25f, 0, d, 2, pool, &n, &t.ctx),
              WH_OK) << t.ctx.msg;
    ASSERT_EQ(n, 2);
    expect_box(d[0], 400, 240, 230, 101.25);
}

TEST(YoloDecode, TooManyIsAnErrorAfterFillingMax)
{
    DecodeNet t;
    ASSERT_NE(t.l, nullptr);
    wh_detection d[1];
    float pool[2];
    int n = -1;
    EXPECT_EQ(wh_yolo_get_detections(t.l, 1, 128, 128, 640, 480, .25f, 0, d, 1, pool, &n, &t.ctx),
              WH_ERR_ARG);
    EXPECT_EQ(n, 1);
    EXPECT_NE(std::string(t.ctx.msg).find("2 predictions"), std::string::npos) << t.ctx.msg;
    expect_box(d[0], 400, 210, 230, 101.25);
    // Not a yolo layer.
    EXPECT_EQ(wh_yolo_get_detections(&t.net->layers[0], 1, 128, 128, 640, 480, .25f, 0, d, 1,
                                     pool, &n, &t.ctx),
              WH_ERR_ARG);
}

// ---- parameters and describe -------------------------------------------------

wh_status build_net(const std::string &cfg, wh_net **net, wh_ctx *ctx)
{
    wh_cfg *c = nullptr;
    wh_status st = wh_cfg_parse_string(cfg.c_str(), "test.cfg", &c, ctx);
    if (st != WH_OK) return st;
    wh_net_opts o = {};
    st = wh_net_create(c, &o, net, ctx);
    wh_cfg_free(c);
    return st;
}

const char *kHead = "[net]\nwidth=8\nheight=8\nchannels=255\n[upsample]\nstride=1\n";

TEST(YoloParams, KeysAreKept)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    std::string cfg = std::string(kHead) +
                      "[yolo]\nmask=3,4,5\nanchors=12,16, 19,36, 40,28, 36,75, 76,55, 72,146\n"
                      "classes=80\nnum=6\njitter=.3\nignore_thresh=.7\ntruth_thresh=1\n"
                      "random=1\nscale_x_y=1.1\niou_thresh=0.213\ncls_normalizer=1.0\n"
                      "obj_normalizer=2\niou_normalizer=0.07\niou_loss=ciou\n"
                      "nms_kind=diounms\nbeta_nms=0.6\nmax_delta=5\nresize=1.5\n"
                      "label_smooth_eps=0.1\nobjectness_smooth=1\nfocal_loss=1\nnew_coords=0\n"
                      "max=200\ncounters_per_class=100,200\n";
    ASSERT_EQ(build_net(cfg, &net, &ctx), WH_OK) << ctx.msg;
    const wh_yolo_params *p = wh_yolo_get(&net->layers[1]);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(wh_yolo_get(&net->layers[0]), nullptr);
    EXPECT_EQ(p->classes, 80);
    EXPECT_EQ(p->num, 6);
    ASSERT_EQ(p->n_mask, 3);
    EXPECT_EQ(p->mask[0], 3);
    EXPECT_EQ(p->mask[2], 5);
    EXPECT_FLOAT_EQ(p->anchors[6], 36);
    EXPECT_FLOAT_EQ(p->anchors[11], 146);
    EXPECT_FLOAT_EQ(p->jitter, .3f);
    EXPECT_FLOAT_EQ(p->ignore_thresh, .7f);
    EXPECT_FLOAT_EQ(p->truth_thresh, 1.f);
    EXPECT_FLOAT_EQ(p->random, 1.f);
    EXPECT_FLOAT_EQ(p->scale_x_y, 1.1f);
    EXPECT_FLOAT_EQ(p->iou_thresh, .213f);
    EXPECT_FLOAT_EQ(p->cls_normalizer, 1.f);
    EXPECT_FLOAT_EQ(p->obj_normalizer, 2.f);
    EXPECT_FLOAT_EQ(p->iou_normalizer, .07f);
    EXPECT_EQ(p->iou_loss, WH_YOLO_IOU_CIOU);
    EXPECT_EQ(p->nms_kind, WH_YOLO_NMS_DIOU);
    EXPECT_FLOAT_EQ(p->beta_nms, .6f);
    EXPECT_FLOAT_EQ(p->max_delta, 5.f);
    EXPECT_FLOAT_EQ(p->resize, 1.5f);
    EXPECT_FLOAT_EQ(p->label_smooth_eps, .1f);
    EXPECT_EQ(p->objectness_smooth, 1);
    EXPECT_EQ(p->focal_loss, 1);
    EXPECT_EQ(p->new_coords, 0);
    // Every key was understood; counters_per_class warns that it is ignored.
    bool warned_cpc = false;
    for (int i = 0; i < ctx.n_warn; i++) {
        std::string w = ctx.warn[i];
        EXPECT_EQ(w.find("unknown key"), std::string::npos) << w;
        warned_cpc |= w.find("counters_per_class") != std::string::npos;
    }
    EXPECT_TRUE(warned_cpc);
    char buf[64];
    net->layers[1].ops->describe(&net->layers[1], buf, sizeof(buf));
    EXPECT_STREQ(buf, "mask 3,4,5 cls 80 sxy 1.1");
    EXPECT_EQ(net->layers[1].ops->flow, WH_FLOW_SAME);
    wh_net_cost cost;
    wh_layer_cost(&net->layers[1], &cost);
    EXPECT_EQ(cost.darknet_flops, 0.0);
    EXPECT_EQ(cost.params, 0u);
    wh_net_destroy(net);
}

TEST(YoloParams, DarknetDefaults)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // No mask: every anchor (num=3); classes default 20: C = 3 * 25 = 75.
    std::string cfg = "[net]\nwidth=5\nheight=5\nchannels=75\n[upsample]\nstride=1\n"
                      "[yolo]\nanchors=1,2,3,4,5,6\nnum=3\n";
    ASSERT_EQ(build_net(cfg, &net, &ctx), WH_OK) << ctx.msg;
    const wh_yolo_params *p = wh_yolo_get(&net->layers[1]);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->classes, 20);
    ASSERT_EQ(p->n_mask, 3);
    EXPECT_EQ(p->mask[0], 0);
    EXPECT_EQ(p->mask[1], 1);
    EXPECT_EQ(p->mask[2], 2);
    EXPECT_FLOAT_EQ(p->scale_x_y, 1.f);
    EXPECT_FLOAT_EQ(p->ignore_thresh, .5f);
    EXPECT_FLOAT_EQ(p->truth_thresh, 1.f);
    EXPECT_FLOAT_EQ(p->iou_thresh, 1.f);
    EXPECT_FLOAT_EQ(p->iou_normalizer, .75f);
    EXPECT_FLOAT_EQ(p->cls_normalizer, 1.f);
    EXPECT_FLOAT_EQ(p->obj_normalizer, 1.f);
    EXPECT_EQ(p->iou_loss, WH_YOLO_IOU_MSE);
    EXPECT_EQ(p->nms_kind, WH_YOLO_NMS_GREEDY);
    EXPECT_FLOAT_EQ(p->beta_nms, .6f);
    EXPECT_STREQ(wh_yolo_iou_loss_name(p->iou_loss), "mse");
    EXPECT_STREQ(wh_yolo_nms_kind_name(p->nms_kind), "greedynms");
    char buf[64];
    net->layers[1].ops->describe(&net->layers[1], buf, sizeof(buf));
    EXPECT_STREQ(buf, "mask 0,1,2 cls 20");
    wh_net_destroy(net);
}

// ---- errors ------------------------------------------------------------------

struct Err {
    wh_status st;
    std::string msg;
};

Err build_err(const std::string &cfg)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    wh_status st = build_net(cfg, &net, &ctx);
    wh_net_destroy(net);
    return {st, ctx.msg};
}

bool has(const std::string &s, const std::string &sub) { return s.find(sub) != std::string::npos; }

TEST(YoloErrors, WrongChannelCount)
{
    // mask has 3 anchors, classes=1: 3 * 6 = 18 channels wanted, 10 given.
    Err e = build_err("[net]\nwidth=4\nheight=4\nchannels=10\n[upsample]\nstride=1\n"
                      "[yolo]\nmask=0,1,2\nanchors=1,1,2,2,3,3\nclasses=1\nnum=3\n");
    EXPECT_EQ(e.st, WH_ERR_SHAPE);
    EXPECT_TRUE(has(e.msg, "test.cfg:7")) << e.msg;  // the [yolo] header
    EXPECT_TRUE(has(e.msg, "10 channels")) << e.msg;
    EXPECT_TRUE(has(e.msg, "expected 18")) << e.msg;
    EXPECT_TRUE(has(e.msg, "classes=1")) << e.msg;
}

TEST(YoloErrors, AnchorCountNamesTheLine)
{
    // num=3 needs 6 values; line 10 gives 5.
    Err e = build_err("[net]\nwidth=4\nheight=4\nchannels=18\n[upsample]\nstride=1\n"
                      "[yolo]\nmask=0,1,2\nclasses=1\nanchors=1,1,2,2,3\nnum=3\n");
    EXPECT_EQ(e.st, WH_ERR_CFG);
    EXPECT_TRUE(has(e.msg, "test.cfg:10")) << e.msg;
    EXPECT_TRUE(has(e.msg, "anchors")) << e.msg;
    EXPECT_TRUE(has(e.msg, "5 values")) << e.msg;
    EXPECT_TRUE(has(e.msg, "num=3")) << e.msg;
}

TEST(YoloErrors, UnknownIouLossListsTheValidOnes)
{
    Err e = build_err("[net]\nwidth=4\nheight=4\nchannels=6\n[upsample]\nstride=1\n"
                      "[yolo]\nanchors=1,1\nclasses=1\niou_loss=foo\n");
    EXPECT_EQ(e.st, WH_ERR_CFG);
    EXPECT_TRUE(has(e.msg, "test.cfg:10")) << e.msg;
    EXPECT_TRUE(has(e.msg, "foo")) << e.msg;
    for (const char *name : {"mse", "giou", "diou", "ciou"}) EXPECT_TRUE(has(e.msg, name)) << e.msg;
}

// darknet's parse_yolo takes an nms_kind it does not know as its default
// (greedy); the authors' released yolov4-voc.cfg has "grpeedynms"
TEST(YoloParams, UnknownNmsKindIsDarknetsDefaultWithAWarning)
{
    for (const char *kind : {"grpeedynms", "default"}) {
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_net *net = nullptr;
        std::string cfg = "[net]\nwidth=4\nheight=4\nchannels=6\n[upsample]\nstride=1\n"
                          "[yolo]\nanchors=1,1\nclasses=1\nnms_kind=" + std::string(kind) + "\n";
        ASSERT_EQ(build_net(cfg, &net, &ctx), WH_OK) << ctx.msg;
        EXPECT_EQ(wh_yolo_get(&net->layers[1])->nms_kind, WH_YOLO_NMS_GREEDY);
        int named = 0;
        for (int i = 0; i < ctx.n_warn; i++) named += has(ctx.warn[i], "test.cfg:10") && has(ctx.warn[i], kind);
        // "default" is darknet's own word for it: nothing to warn about
        EXPECT_EQ(named, strcmp(kind, "default") ? 1 : 0) << kind;
        for (int i = 0; i < ctx.n_warn; i++) EXPECT_FALSE(has(ctx.warn[i], "unknown key")) << ctx.warn[i];
        wh_net_destroy(net);
    }
}

// new_coords=1 (Scaled-YOLOv4) is accepted (its semantics are tested in
// test_yolo_new_coords.cpp); other values are not darknet's and fail naming
// the line and the key.
TEST(YoloErrors, NewCoordsIsZeroOrOne)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    ASSERT_EQ(build_net("[net]\nwidth=4\nheight=4\nchannels=6\n[upsample]\nstride=1\n"
                        "[yolo]\nanchors=1,1\nclasses=1\nnew_coords=1\n",
                        &net, &ctx),
              WH_OK)
        << ctx.msg;
    EXPECT_EQ(wh_yolo_get(&net->layers[1])->new_coords, 1);
    wh_net_destroy(net);
    Err e = build_err("[net]\nwidth=4\nheight=4\nchannels=6\n[upsample]\nstride=1\n"
                      "[yolo]\nanchors=1,1\nclasses=1\nnew_coords=2\n");
    EXPECT_EQ(e.st, WH_ERR_CFG);
    EXPECT_TRUE(has(e.msg, "test.cfg:10")) << e.msg;
    EXPECT_TRUE(has(e.msg, "new_coords")) << e.msg;
}

TEST(YoloErrors, MaskOutOfRange)
{
    Err e = build_err("[net]\nwidth=4\nheight=4\nchannels=12\n[upsample]\nstride=1\n"
                      "[yolo]\nmask=0,3\nanchors=1,1,2,2,3,3\nclasses=1\nnum=3\n");
    EXPECT_EQ(e.st, WH_ERR_CFG);
    EXPECT_TRUE(has(e.msg, "test.cfg:8")) << e.msg;
    EXPECT_TRUE(has(e.msg, "mask")) << e.msg;
}

TEST(YoloErrors, ClassesAtLeastOne)
{
    Err e = build_err("[net]\nwidth=4\nheight=4\nchannels=5\n[upsample]\nstride=1\n"
                      "[yolo]\nanchors=1,1\nclasses=0\n");
    EXPECT_EQ(e.st, WH_ERR_CFG);
    EXPECT_TRUE(has(e.msg, "classes")) << e.msg;
}

}  // namespace
