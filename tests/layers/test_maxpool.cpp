// [maxpool] against a float64 reference written here (darknet's loops), with
// the harness's finite-difference and 1-vs-2-thread checks, plus darknet's
// output sizes and flop count, and the inference path (no argmax kept).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "harness.h"

namespace {

struct Pool {
    int size, stride, pad;  // pad < 0: darknet's default, size - 1
    int n, c, h, w;         // the input
};

std::string net_section(int n, int c, int h, int w)
{
    return "[net]\nbatch=" + std::to_string(n) + "\nsubdivisions=1\nwidth=" + std::to_string(w) +
           "\nheight=" + std::to_string(h) + "\nchannels=" + std::to_string(c) + "\n\n";
}

std::string pool_section(const Pool &p)
{
    std::string s =
        "[maxpool]\nsize=" + std::to_string(p.size) + "\nstride=" + std::to_string(p.stride) + "\n";
    if (p.pad >= 0) s += "padding=" + std::to_string(p.pad) + "\n";
    return s;
}

// Darknet's forward_maxpool_layer in float64: out-of-image positions never win,
// the first of equal maxima wins.
wht::Vec ref_maxpool(const wht::Vec &in, const Pool &p)
{
    const int pad = p.pad < 0 ? p.size - 1 : p.pad;
    const int oh = (p.h + pad - p.size) / p.stride + 1, ow = (p.w + pad - p.size) / p.stride + 1;
    const int off = -pad / 2;
    wht::Vec out((size_t)p.n * p.c * oh * ow);
    size_t o = 0;
    for (int b = 0; b < p.n; b++)
        for (int c = 0; c < p.c; c++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    double m = -std::numeric_limits<double>::infinity();
                    for (int dy = 0; dy < p.size; dy++)
                        for (int dx = 0; dx < p.size; dx++) {
                            int y = i * p.stride + off + dy, x = j * p.stride + off + dx;
                            if (y < 0 || y >= p.h || x < 0 || x >= p.w) continue;
                            double v = in[(((size_t)b * p.c + c) * p.h + y) * p.w + x];
                            if (v > m) m = v;
                        }
                    out[o++] = m;
                }
    return out;
}

TEST(Maxpool, MatchesReferenceAndGradients)
{
    const Pool cases[] = {
        {2, 2, -1, 2, 3, 8, 8},    // tiny's downsampling, even size
        {2, 2, -1, 3, 2, 7, 5},    // odd sizes: darknet's padding keeps the last column
        {3, 2, -1, 2, 2, 9, 6},    // 3x3/2
        {2, 1, -1, 2, 2, 13, 13},  // yolov3-tiny's 13x13 -> 13x13
        {5, 1, -1, 2, 4, 6, 7},    // SPP
        {13, 1, -1, 1, 2, 5, 6},   // SPP window larger than the image
        {3, 1, 0, 2, 3, 6, 5},     // valid pooling only
        {3, 3, 1, 1, 2, 10, 11},   // explicit padding
        {1, 1, -1, 3, 2, 4, 3},    // identity
    };
    for (const Pool &p : cases) {
        SCOPED_TRACE(pool_section(p) + " on " + std::to_string(p.n) + "x" + std::to_string(p.c) + "x" +
                     std::to_string(p.h) + "x" + std::to_string(p.w));
        wht::LayerCase c;
        std::string cfg = net_section(p.n, p.c, p.h, p.w) + "[upsample]\nstride=1\n\n" + pool_section(p);
        ASSERT_TRUE(wht::build(c, cfg, 7 + p.size * 31 + p.h));
        // float32 values in the reference too: the argmax is then the same.
        for (auto &v : c.in[0]) v = (double)(float)v;
        wht::upload(c);
        const int pad = p.pad < 0 ? p.size - 1 : p.pad;
        EXPECT_EQ(c.l->out_shape.n, p.n);
        EXPECT_EQ(c.l->out_shape.c, p.c);
        EXPECT_EQ(c.l->out_shape.h, (p.h + pad - p.size) / p.stride + 1);
        EXPECT_EQ(c.l->out_shape.w, (p.w + pad - p.size) / p.stride + 1);
        wht::check_layer(
            c,
            [&](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) {
                return ref_maxpool(in[0], p);
            },
            true);
    }
}

// An inference net keeps no argmax: the forward must not need it.
TEST(Maxpool, InferenceNetForward)
{
    const Pool p = {3, 2, -1, 2, 3, 9, 7};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    wh_cfg *cfg = nullptr;
    ASSERT_EQ(wh_cfg_parse_string((net_section(p.n, p.c, p.h, p.w) + pool_section(p)).c_str(), "test.cfg",
                                  &cfg, &ctx),
              WH_OK);
    ASSERT_EQ(wh_net_create(cfg, nullptr, &net, &ctx), WH_OK) << ctx.msg;
    wh_cfg_free(cfg);
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    wht::Vec in((size_t)p.n * p.c * p.h * p.w);
    for (size_t i = 0; i < in.size(); i++) in[i] = net->input[i] = u(rng);
    ASSERT_EQ(wh_net_forward(net, 0, &ctx), WH_OK) << ctx.msg;
    EXPECT_LT(wht::rel_err(net->layers[0].out, ref_maxpool(in, p)), 1e-6);
    wh_net_destroy(net);
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

// Darknet's counts: SPP's 5x5/1 on 13x13x512 stays 13x13 and costs
// size*size*C*out_h*out_w, at batch 1 whatever the net's batch.
TEST(Maxpool, DarknetSizesAndFlops)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    ASSERT_EQ(create(net_section(4, 512, 13, 13) + "[maxpool]\nsize=5\nstride=1\n", ctx, &net), WH_OK)
        << ctx.msg;
    const wh_layer *l = &net->layers[0];
    EXPECT_EQ(l->out_shape.h, 13);
    EXPECT_EQ(l->out_shape.w, 13);
    EXPECT_EQ(l->out_shape.c, 512);
    wh_net_cost cost;
    wh_layer_cost(l, &cost);
    EXPECT_EQ(cost.darknet_flops, 5.0 * 5 * 512 * 13 * 13);
    EXPECT_EQ(cost.conv_flops, 0.0);
    EXPECT_EQ(cost.params, 0u);
    char buf[64];
    l->ops->describe(l, buf, sizeof(buf));
    EXPECT_STREQ(buf, "5x5/1");
    EXPECT_EQ(l->ops->flow, WH_FLOW_SAME);
    wh_net_destroy(net);

    // yolov3-tiny: 2x2/2 halves 26 -> 13, then 2x2/1 keeps 13 (default padding 1).
    ASSERT_EQ(
        create(net_section(1, 16, 26, 26) + "[maxpool]\nsize=2\nstride=2\n\n[maxpool]\nsize=2\nstride=1\n",
               ctx, &net),
        WH_OK)
        << ctx.msg;
    EXPECT_EQ(net->layers[0].out_shape.h, 13);
    EXPECT_EQ(net->layers[0].out_shape.w, 13);
    EXPECT_EQ(net->layers[1].out_shape.h, 13);
    EXPECT_EQ(net->layers[1].out_shape.w, 13);
    wh_net_destroy(net);

    // Defaults: stride 1, size = stride, padding = size - 1; 'max' is darknet's alias.
    ASSERT_EQ(create(net_section(1, 2, 5, 7) + "[max]\nstride=3\n", ctx, &net), WH_OK) << ctx.msg;
    EXPECT_EQ(net->layers[0].out_shape.h, (5 + 2 - 3) / 3 + 1);
    EXPECT_EQ(net->layers[0].out_shape.w, (7 + 2 - 3) / 3 + 1);
    wh_net_destroy(net);
}

TEST(Maxpool, Errors)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // A padding that leaves windows without any pixel.
    EXPECT_EQ(create(net_section(1, 2, 8, 8) + "[maxpool]\nsize=2\nstride=2\npadding=6\n", ctx, &net),
              WH_ERR_SHAPE);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:8"), std::string::npos) << ctx.msg;
    EXPECT_EQ(net, nullptr);
    // A window larger than the unpadded input.
    EXPECT_EQ(create(net_section(1, 2, 3, 3) + "[maxpool]\nsize=5\nstride=1\npadding=0\n", ctx, &net),
              WH_ERR_SHAPE);
    // Out-of-range keys name their line.
    EXPECT_EQ(create(net_section(1, 2, 8, 8) + "[maxpool]\nsize=2\nstride=0\n", ctx, &net), WH_ERR_CFG);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:10"), std::string::npos) << ctx.msg;
    EXPECT_NE(std::string(ctx.msg).find("stride"), std::string::npos) << ctx.msg;
}

// Darknet's strict '>': among equal values the first position (row-major) of
// the window wins, so its gradient goes there. Random inputs never tie.
TEST(Maxpool, TiesGoToTheFirstPosition)
{
    wht::LayerCase c;
    ASSERT_TRUE(
        wht::build(c, net_section(1, 1, 4, 4) + "[upsample]\nstride=1\n\n[maxpool]\nsize=2\nstride=2\n", 1));
    for (int i = 0; i < 16; i++) c.net->layers[0].out[i] = 0.5f;
    wh_net_zero_douts(c.net);
    ASSERT_EQ(wh_net_forward_layer(c.net, 1, 1, &c.ctx), WH_OK);
    for (int i = 0; i < 4; i++) {
        EXPECT_EQ(c.l->out[i], 0.5f);
        c.l->dout[i] = (float)(i + 1);
    }
    ASSERT_EQ(wh_net_backward_layer(c.net, 1, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
    const float want[16] = {1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0};
    for (int i = 0; i < 16; i++) EXPECT_EQ(c.net->layers[0].dout[i], want[i]) << "at " << i;
}

// Backward without a training forward has no argmax to use.
TEST(Maxpool, BackwardNeedsTrainingForward)
{
    wht::LayerCase c;
    ASSERT_TRUE(
        wht::build(c, net_section(1, 2, 4, 4) + "[upsample]\nstride=1\n\n[maxpool]\nsize=2\nstride=2\n", 1));
    ASSERT_EQ(wh_net_forward_layer(c.net, 1, 0, &c.ctx), WH_OK);
    EXPECT_EQ(wh_net_backward_layer(c.net, 1, nullptr, &c.ctx), WH_ERR_STATE);
    ASSERT_EQ(wh_net_forward_layer(c.net, 1, 1, &c.ctx), WH_OK);
    EXPECT_EQ(wh_net_backward_layer(c.net, 1, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
}

}  // namespace
