// [route] against a float64 concatenation reference written here, with the
// harness's finite-difference and 1-vs-2-thread checks: several inputs of
// different channel counts, groups/group_id slices, the same layer twice; and
// the errors that must name layers and lines.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "harness.h"

namespace {

std::string net_section(int n, int c, int h, int w)
{
    return "[net]\nbatch=" + std::to_string(n) + "\nsubdivisions=1\nwidth=" + std::to_string(w) +
           "\nheight=" + std::to_string(h) + "\nchannels=" + std::to_string(c) + "\n\n";
}

struct RouteCase {
    const char *name;
    int n, c, h, w;          // the network input
    std::string layers;      // producers, then the [route] under test
    std::vector<int> chans;  // channels of each input of the route, in 'layers' order
    int groups, group_id;
    const char *describe;
};

// Each input contributes channels [gid*C/g, (gid+1)*C/g), concatenated in order.
wht::Vec ref_route(const std::vector<wht::Vec> &in, const RouteCase &rc)
{
    const size_t plane = (size_t)rc.h * rc.w;
    wht::Vec out;
    for (int b = 0; b < rc.n; b++)
        for (size_t k = 0; k < in.size(); k++) {
            const int C = rc.chans[k], part = C / rc.groups;
            for (int c = rc.group_id * part; c < (rc.group_id + 1) * part; c++)
                for (size_t i = 0; i < plane; i++) out.push_back(in[k][((size_t)b * C + c) * plane + i]);
        }
    return out;
}

TEST(Route, MatchesReferenceAndGradients)
{
    const std::string up = "[upsample]\nstride=1\n\n";
    // clang-format off
    const RouteCase cases[] = {
        {"two inputs, relative and absolute", 2, 3, 5, 7,
         up + "[route]\nlayers=0,0\n\n[maxpool]\nsize=1\nstride=1\n\n[route]\nlayers=-1,0\n",
         {6, 3}, 1, 0, "-1,0"},
        {"yolov4-tiny's second half", 3, 4, 3, 5,
         up + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n",
         {4}, 2, 1, "-1 group 1/2"},
        {"three inputs, first halves", 2, 2, 4, 4,
         up + "[route]\nlayers=0,0\n\n[route]\nlayers=0,0,0\n\n[route]\nlayers=-2,-1,-3\ngroups=2\n",
         {4, 6, 2}, 2, 0, "-2,-1,-3 group 0/2"},
        {"last quarter, odd size", 1, 8, 3, 3,
         up + "[route]\nlayers=0\ngroups=4\ngroup_id=3\n",
         {8}, 4, 3, "0 group 3/4"},
    };
    // clang-format on
    for (const RouteCase &rc : cases) {
        SCOPED_TRACE(rc.name);
        wht::LayerCase c;
        ASSERT_TRUE(wht::build(c, net_section(rc.n, rc.c, rc.h, rc.w) + rc.layers, 21 + rc.c));
        ASSERT_EQ(c.l->n_in, (int)rc.chans.size());
        int oc = 0;
        for (int k = 0; k < c.l->n_in; k++) {
            ASSERT_EQ(c.l->in_shape[k].c, rc.chans[k]);
            oc += rc.chans[k] / rc.groups;
        }
        EXPECT_EQ(c.l->out_shape.n, rc.n);
        EXPECT_EQ(c.l->out_shape.c, oc);
        EXPECT_EQ(c.l->out_shape.h, rc.h);
        EXPECT_EQ(c.l->out_shape.w, rc.w);
        char buf[64];
        c.l->ops->describe(c.l, buf, sizeof(buf));
        EXPECT_STREQ(buf, rc.describe);
        wht::check_layer(
            c,
            [&](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) { return ref_route(in, rc); },
            true);
    }
}

TEST(Route, SameLayerTwiceAddsBothGradients)
{
    {
        wht::LayerCase c;
        ASSERT_TRUE(wht::build(
            c,
            net_section(2, 3, 4, 5) +
                "[upsample]\nstride=1\n\n[maxpool]\nsize=1\nstride=1\n\n[route]\nlayers=-1,-2,-1\n",
            23));
        ASSERT_EQ(c.l->out_shape.c, 9);
        const RouteCase rc = {"", 2, 3, 4, 5, "", {3, 3, 3}, 1, 0, ""};
        wht::check_tied_inputs(c, [&](const std::vector<wht::Vec> &in) { return ref_route(in, rc); });
    }
    {
        // -1 and 0 are the same layer; both take its second half.
        wht::LayerCase c;
        ASSERT_TRUE(wht::build(c,
                               net_section(3, 4, 3, 3) +
                                   "[upsample]\nstride=1\n\n[route]\nlayers=-1,0\ngroups=2\ngroup_id=1\n",
                               24));
        ASSERT_EQ(c.l->out_shape.c, 4);
        const RouteCase rc = {"", 3, 4, 3, 3, "", {4, 4}, 2, 1, ""};
        wht::check_tied_inputs(c, [&](const std::vector<wht::Vec> &in) { return ref_route(in, rc); });
    }
}

TEST(Route, ResolvesIndicesAndCostsNothing)
{
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c,
                           net_section(1, 2, 4, 4) +
                               "[upsample]\nstride=1\n\n[upsample]\nstride=1\n\n[upsample]\nstride=1\n\n"
                               "[route]\nlayers=-1,0,-2\n",
                           5));
    EXPECT_EQ(c.l->in[0], 2);
    EXPECT_EQ(c.l->in[1], 0);
    EXPECT_EQ(c.l->in[2], 1);
    EXPECT_EQ(c.l->ops->flow, WH_FLOW_CONCAT);
    wh_net_cost cost;
    wh_layer_cost(c.l, &cost);
    EXPECT_EQ(cost.darknet_flops, 0.0);
    EXPECT_EQ(cost.params, 0u);
}

wh_status create(const std::string &text, wh_ctx &ctx)
{
    wh_cfg *cfg = nullptr;
    wh_status st = wh_cfg_parse_string(text.c_str(), "test.cfg", &cfg, &ctx);
    if (st != WH_OK) return st;
    wh_net *net = nullptr;
    st = wh_net_create(cfg, nullptr, &net, &ctx);
    wh_cfg_free(cfg);
    wh_net_destroy(net);
    return st;
}

bool has(const wh_ctx &ctx, const std::string &s)
{
    return std::string(ctx.msg).find(s) != std::string::npos;
}

TEST(Route, SpatialMismatchNamesBothLayers)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    // lines: 8 [upsample], 11 [maxpool], 15 [route]
    EXPECT_EQ(create(net_section(1, 3, 8, 8) +
                         "[upsample]\nstride=1\n\n[maxpool]\nsize=2\nstride=2\n\n[route]\nlayers=-1,-2\n",
                     ctx),
              WH_ERR_SHAPE);
    EXPECT_TRUE(has(ctx, "test.cfg:15")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "layer 1 (4x4x3)")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "layer 0 (8x8x3)")) << ctx.msg;
}

TEST(Route, IndexOutOfRangeNamesTheLine)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const std::string head =
        net_section(1, 3, 8, 8) + "[upsample]\nstride=1\n\n[route]\n";  // [route] on line 11
    for (const char *bad : {"layers=-5\n", "layers=1\n", "layers=0,7\n", "layers=-1,-2\n"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(create(head + bad, ctx), WH_ERR_CFG);
        EXPECT_TRUE(has(ctx, "test.cfg:12")) << ctx.msg;
        EXPECT_TRUE(has(ctx, "layers")) << ctx.msg;
    }
}

TEST(Route, GroupErrors)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const std::string head = net_section(1, 3, 8, 8) + "[upsample]\nstride=1\n\n[route]\nlayers=-1\n";
    // 3 channels cannot be split in 2.
    EXPECT_EQ(create(head + "groups=2\n", ctx), WH_ERR_SHAPE);
    EXPECT_TRUE(has(ctx, "test.cfg:11")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "layer 1")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "input layer 0 has 3 channels")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "groups=2")) << ctx.msg;
    // group_id must be below groups.
    EXPECT_EQ(create(head + "groups=3\ngroup_id=3\n", ctx), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:14")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "group_id")) << ctx.msg;
    EXPECT_EQ(create(head + "groups=0\n", ctx), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:13")) << ctx.msg;
}

TEST(Route, MissingOrTooManyLayers)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const std::string head = net_section(1, 3, 8, 8) + "[upsample]\nstride=1\n\n[route]\n";
    EXPECT_EQ(create(head, ctx), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:11")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "layers")) << ctx.msg;
    std::string many = "layers=0";
    for (int i = 0; i < WH_MAX_IN; i++) many += ",0";
    EXPECT_EQ(create(head + many + "\n", ctx), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:12")) << ctx.msg;
}

}  // namespace
