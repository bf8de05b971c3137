// wh_detect_batch against a hand-worked case: NMS compares the boxes as the
// network drew them and only then clips them to the image, as darknet does
// (darknet's do_nms_sort runs on get_network_boxes' unclipped boxes; the
// clip happens when the detections are printed).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

extern "C" {
#include "framework/eval/evaluate.h"
#include "framework/core/net.h"
}

namespace {

// 100x100 input = a 100x100 grid of raw head logits (the upsample passes them
// through), so a cell is one pixel; 2 anchors of 1 class: channel a*6 + k,
// k = x, y, w, h, objectness, class. Anchor 0 is 60x20 px, anchor 1 22x20.
const char *kCfg =
    "[net]\nwidth=100\nheight=100\nchannels=12\n[upsample]\nstride=1\n"
    "[yolo]\nmask=0,1\nanchors=60,20, 22,20\nnum=2\nclasses=1\n";

void put(wh_net *net, int a, int row, int col, float obj, float cls)
{
    const int W = 100, plane = 100 * 100;
    float *in = net->input;
    // x, y, w, h logits 0: centre at the cell's middle, the anchor's size
    for (int k = 0; k < 4; k++) in[(a * 6 + k) * plane + row * W + col] = 0.f;
    in[(a * 6 + 4) * plane + row * W + col] = obj;
    in[(a * 6 + 5) * plane + row * W + col] = cls;
}

TEST(DetectBatch, NmsBeforeClippingAsDarknet)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *c = nullptr;
    ASSERT_EQ(wh_cfg_parse_string(kCfg, "test.cfg", &c, &ctx), WH_OK) << ctx.msg;
    wh_net_opts o = {};
    wh_net *net = nullptr;
    ASSERT_EQ(wh_net_create(c, &o, &net, &ctx), WH_OK) << ctx.msg;
    wh_cfg_free(c);
    const size_t n_in = (size_t)12 * 100 * 100;
    for (size_t i = 0; i < n_in; i++) net->input[i] = (i / (100 * 100)) % 6 == 4 ? -30.f : 0.f; // no objects
    // A: anchor 0 at column 5, row 49: centre (5.5, 49.5), 60x20 -> x in
    // [-24.5, 35.5], crossing the left border; score 1 * 0.9.
    // B: anchor 1 at column 14: centre (14.5, 49.5), 22x20 -> x in [3.5, 25.5];
    // score 1 * 0.8. Same rows [39.5, 59.5].
    // As drawn: IoU = 22*20 / (60*20) = 0.367 <= 0.45: B stays.
    // Clipped first, A would be [0, 35.5]: IoU = 440 / 710 = 0.62: B would go.
    put(net, 0, 49, 5, 30.f, std::log(9.f));
    put(net, 1, 49, 14, 30.f, std::log(4.f));
    ASSERT_EQ(wh_net_forward(net, 0, &ctx), WH_OK) << ctx.msg;

    int sample = 7;
    wh_xform xf = {};
    xf.sx = xf.sy = 1.f;
    xf.orig_w = xf.orig_h = 100;
    wh_batch b = {};
    b.n = 1;
    b.sample = &sample;
    b.xform = &xf;
    wh_eval_opts eo;
    wh_eval_opts_default(&eo);
    eo.conf_thresh = 0.25f;
    wh_det *dets = nullptr;
    int n = 0, cap = 0;
    ASSERT_EQ(wh_detect_batch(net, &b, &eo, &dets, &n, &cap, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(n, 2) << "B was suppressed by the clipped A";
    const wh_det &a = dets[0].score > dets[1].score ? dets[0] : dets[1];
    const wh_det &bb = dets[0].score > dets[1].score ? dets[1] : dets[0];
    EXPECT_NEAR(a.score, 0.9f, 1e-5);
    EXPECT_NEAR(bb.score, 0.8f, 1e-5);
    EXPECT_EQ(a.image, 7);
    // reported clipped, in VOC's 1-based corners: x0 + 1, max(.., 1)
    EXPECT_NEAR(a.xmin, 1.f, 1e-4);
    EXPECT_NEAR(a.xmax, 35.5f, 1e-3);
    EXPECT_NEAR(a.ymin, 40.5f, 1e-3);
    EXPECT_NEAR(a.ymax, 59.5f, 1e-3);
    EXPECT_NEAR(bb.xmin, 4.5f, 1e-3);
    EXPECT_NEAR(bb.xmax, 25.5f, 1e-3);

    // and the comparison can fail: at 0.3 the unclipped IoU 0.367 suppresses B
    n = 0;
    eo.nms_thresh = 0.3f;
    ASSERT_EQ(wh_detect_batch(net, &b, &eo, &dets, &n, &cap, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(n, 1);
    free(dets);
    wh_net_destroy(net);
}

}  // namespace
