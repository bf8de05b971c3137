// Which maps are distilled: the paper's choice derived from the graph on
// YOLOv4 (hand-derived from darknet's yolov4.cfg), kept by surgery, and bad
// lists or mismatched networks refused with a message.
#include "model_util.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <vector>

extern "C" {
#include "distill/distill.h"
#include "pruning/prune.h"
}

TEST(AttentionPairs, PaperMapsOfYolov4SurviveSurgery)
{
    // backbone stage outputs per stride: 10 (2), 23 (4), 54 (8), 85 (16) at
    // 1e6 (54 and 85 are what the neck routes read) and the SPP output 116 (32) at 1e3; top-down 117 (32), 127 (16),
    // 136 (8) and bottom-up 147 (16), 158 (32) at 1e4
    const std::string text = wht::model_cfg("yolov4", 3, 128, 0.5);
    wh_net *teacher = wht::cfg_net(text);
    ASSERT_NE(teacher, nullptr);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_at_pair *p = nullptr;
    int n = 0;
    ASSERT_EQ(wh_at_pairs_auto(teacher, &p, &n, &ctx), WH_OK) << ctx.msg;
    const std::vector<int> want = {10, 23, 54, 85, 116, 117, 127, 136, 147, 158};
    const std::vector<double> beta = {1e6, 1e6, 1e6, 1e6, 1e3, 1e4, 1e4, 1e4, 1e4, 1e4};
    ASSERT_EQ(n, (int)want.size());
    for (int k = 0; k < n; k++) {
        EXPECT_EQ(p[k].layer, want[k]) << k;
        EXPECT_EQ(p[k].beta, beta[k]) << k;
    }
    // a known pruning: every other channel of every unit that can lose it
    wh_depgraph g;
    ASSERT_EQ(wh_depgraph_build(teacher, nullptr, &g, &ctx), WH_OK) << ctx.msg;
    std::vector<unsigned char> keep(g.n_channels + 1, 1);
    for (int x = 0; x < g.n_channels; x++)
        if (g.set[x] >= 0) keep[x] = (g.set[x] % 2) == 0;
    char *cfg = nullptr;
    wh_net *student = nullptr;
    wh_net_opts no = {};
    no.batch = 1;
    ASSERT_EQ(wh_prune_build(teacher, text.c_str(), &g, keep.data(), 1, &no, &cfg, &student, &ctx), WH_OK) << ctx.msg;
    free(cfg);
    EXPECT_LT(student->layers[54].out_shape.c, teacher->layers[54].out_shape.c);
    EXPECT_EQ(wh_at_pairs_check(teacher, student, p, n, &ctx), WH_OK) << ctx.msg;
    // the student's graph gives the same pairs
    wh_at_pair *ps = nullptr;
    int ns = 0;
    ASSERT_EQ(wh_at_pairs_auto(student, &ps, &ns, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(ns, n);
    for (int k = 0; k < n; k++) EXPECT_EQ(ps[k].layer, p[k].layer);
    free(ps);
    free(p);
    wh_depgraph_free(&g);
    wh_net_destroy(student);
    wh_net_destroy(teacher);
}

TEST(AttentionPairs, ListsAndMismatchesAreRefused)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_at_pair *p = nullptr;
    int n = 0;
    ASSERT_EQ(wh_at_pairs_parse("54:1e6,136", &p, &n, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(n, 2);
    EXPECT_EQ(p[0].layer, 54);
    EXPECT_EQ(p[0].beta, 1e6);
    EXPECT_EQ(p[1].beta, 1e4);
    free(p);
    for (const char *bad : {"", "a", "5:", "5:x", "-1:3", "5;6", "5:-1"}) {
        EXPECT_EQ(wh_at_pairs_parse(bad, &p, &n, &ctx), WH_ERR_ARG) << bad;
        EXPECT_TRUE(wht::contains(ctx.msg, "attention layers")) << ctx.msg;
    }
    wh_net *v4 = wht::model_net("yolov4-tiny", 3, 64, 0.25), *v4b = wht::model_net("yolov4-tiny", 3, 128, 0.25);
    ASSERT_NE(v4, nullptr);
    const wh_at_pair far[1] = {{999, 1.0}}, bigger[1] = {{5, 1.0}};
    EXPECT_EQ(wh_at_pairs_check(v4, v4, far, 1, &ctx), WH_ERR_ARG);
    EXPECT_TRUE(wht::contains(ctx.msg, "attention layer 999")) << ctx.msg;
    EXPECT_EQ(wh_at_pairs_check(v4, v4b, bigger, 1, &ctx), WH_ERR_SHAPE);
    EXPECT_TRUE(wht::contains(ctx.msg, "teacher map 16x16, student map 32x32")) << ctx.msg;
    wh_net_destroy(v4);
    wh_net_destroy(v4b);
}
