// [upsample] against a float64 nearest-neighbour reference written here, with
// the harness's finite-difference and 1-vs-2-thread checks; darknet's scale,
// the identity stride 1, and the keys it rejects.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"

namespace {

struct Up {
    int stride;
    double scale;  // written to the cfg only when != 1
    int n, c, h, w;
};

std::string net_section(int n, int c, int h, int w)
{
    return "[net]\nbatch=" + std::to_string(n) + "\nsubdivisions=1\nwidth=" + std::to_string(w) +
           "\nheight=" + std::to_string(h) + "\nchannels=" + std::to_string(c) + "\n\n";
}

std::string up_section(const Up &u)
{
    std::string s = "[upsample]\nstride=" + std::to_string(u.stride) + "\n";
    if (u.scale != 1) s += "scale=" + std::to_string(u.scale) + "\n";
    return s;
}

// out[n, c, y, x] = scale * in[n, c, y / s, x / s]
wht::Vec ref_upsample(const wht::Vec &in, const Up &u)
{
    const int s = u.stride, oh = u.h * s, ow = u.w * s;
    wht::Vec out((size_t)u.n * u.c * oh * ow);
    size_t o = 0;
    for (int b = 0; b < u.n; b++)
        for (int c = 0; c < u.c; c++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++)
                    out[o++] = u.scale * in[(((size_t)b * u.c + c) * u.h + y / s) * u.w + x / s];
    return out;
}

TEST(Upsample, MatchesReferenceAndGradients)
{
    const Up cases[] = {
        {2, 1, 2, 3, 5, 4},    // yolov3's 2x, odd height
        {2, 1, 1, 4, 13, 13},  // 13 -> 26
        {3, 1, 3, 2, 4, 3},    // stride 3, batch 3
        {1, 1, 2, 3, 5, 7},    // identity
        {2, 0.5, 2, 2, 3, 5},  // darknet's scale
        {4, -1.5, 1, 1, 2, 3},
    };
    for (const Up &u : cases) {
        SCOPED_TRACE(up_section(u) + " on " + std::to_string(u.n) + "x" + std::to_string(u.c) + "x" +
                     std::to_string(u.h) + "x" + std::to_string(u.w));
        wht::LayerCase c;
        std::string cfg = net_section(u.n, u.c, u.h, u.w) + "[upsample]\nstride=1\n\n" + up_section(u);
        ASSERT_TRUE(wht::build(c, cfg, 11 + u.stride * 5 + u.h));
        EXPECT_EQ(c.l->out_shape.n, u.n);
        EXPECT_EQ(c.l->out_shape.c, u.c);
        EXPECT_EQ(c.l->out_shape.h, u.h * u.stride);
        EXPECT_EQ(c.l->out_shape.w, u.w * u.stride);
        wht::check_layer(
            c,
            [&](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) {
                return ref_upsample(in[0], u);
            },
            true);
    }
}

wh_status create(const std::string &text, wh_ctx &ctx, wh_net **net)
{
    wh_cfg *cfg = nullptr;
    wh_status st = wh_cfg_parse_string(text.c_str(), "test.cfg", &cfg, &ctx);
    if (st != WH_OK) return st;
    st = wh_net_create(cfg, nullptr, net, &ctx);
    wh_cfg_free(cfg);
    return st;
}

TEST(Upsample, DefaultsDescribeAndFlops)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    ASSERT_EQ(create(net_section(2, 128, 13, 13) + "[upsample]\n", ctx, &net), WH_OK) << ctx.msg;
    const wh_layer *l = &net->layers[0];
    EXPECT_EQ(l->out_shape.h, 26);  // default stride 2
    EXPECT_EQ(l->out_shape.w, 26);
    EXPECT_EQ(l->out_shape.c, 128);
    wh_net_cost cost;
    wh_layer_cost(l, &cost);
    EXPECT_EQ(cost.darknet_flops, 0.0);
    EXPECT_EQ(cost.params, 0u);
    EXPECT_EQ(l->ops->flow, WH_FLOW_SAME);
    char buf[64];
    l->ops->describe(l, buf, sizeof(buf));
    EXPECT_STREQ(buf, "2x");
    EXPECT_EQ(ctx.n_warn_total, 0);
    wh_net_destroy(net);
}

TEST(Upsample, Errors)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // darknet's negative stride (downsampling) is not implemented: say so, with the line.
    EXPECT_EQ(create(net_section(1, 2, 8, 8) + "[upsample]\nstride=-2\n", ctx, &net), WH_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:9"), std::string::npos) << ctx.msg;
    EXPECT_EQ(net, nullptr);
    EXPECT_EQ(create(net_section(1, 2, 8, 8) + "[upsample]\nstride=0\n", ctx, &net), WH_ERR_CFG);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:9"), std::string::npos) << ctx.msg;
    EXPECT_EQ(create(net_section(1, 2, 8, 8) + "[upsample]\nstride=2\nscale=abc\n", ctx, &net), WH_ERR_CFG);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:10"), std::string::npos) << ctx.msg;
}

}  // namespace
