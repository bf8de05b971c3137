// [scale_channels] against a float64 reference written here (act of the
// factor times the feature, one factor per channel or with scale_wh per
// position), with the harness's finite-difference and 1-vs-2-thread checks;
// the previous layer named again; a hand-worked example; darknet's flop
// count (none) and describe; the errors that must name layers and lines.
#include <gtest/gtest.h>

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

// in[0] = factors (N, C, 1, 1) or, with scale_wh, (N, 1, H, W);
// in[1] = features (N, C, H, W). Indexing written out, not shared with the layer.
wht::Vec ref_scale_channels(const std::vector<wht::Vec> &in, int N, int C, int H, int W, bool scale_wh,
                            const std::string &act)
{
    wht::Vec out((size_t)N * C * H * W);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    const size_t i = (((size_t)n * C + c) * H + y) * W + x;
                    const double s = scale_wh ? in[0][((size_t)n * H + y) * W + x] : in[0][(size_t)n * C + c];
                    out[i] = wht::act_ref(act, s * in[1][i]);
                }
    return out;
}

struct Case {
    int n, c, h, w;
    bool scale_wh;
    std::string act;
};

// Producers: layer 0 an identity upsample (the features), layer 1 the
// factors: a global maxpool (C x 1 x 1) or a 1-filter conv (1 x H x W).
std::string producers(const Case &k)
{
    if (k.scale_wh)
        return "[upsample]\nstride=1\n\n[convolutional]\nfilters=1\nsize=1\nstride=1\npad=0\nactivation=logistic\n\n";
    return "[upsample]\nstride=1\n\n[maxpool]\nsize=" + std::to_string(k.h) + "\nstride=" + std::to_string(k.h) +
           "\n\n";
}

TEST(ScaleChannels, MatchesReferenceAndGradients)
{
    const Case cases[] = {
        {2, 5, 6, 6, false, "linear"}, {3, 4, 5, 5, false, "logistic"}, {2, 3, 7, 7, false, "leaky"},
        {1, 6, 4, 4, false, "mish"},   {2, 4, 5, 6, true, "linear"},    {2, 3, 4, 3, true, "swish"},
        {1, 2, 9, 9, true, "tanh"},
    };
    for (const Case &k : cases) {
        std::string layer = "[scale_channels]\nfrom=-2\n";
        if (k.scale_wh) layer += "scale_wh=1\n";
        if (k.act != "linear") layer += "activation=" + k.act + "\n";
        SCOPED_TRACE(layer + " " + std::to_string(k.c) + "x" + std::to_string(k.h) + "x" + std::to_string(k.w));
        wht::LayerCase c;
        ASSERT_TRUE(wht::build(c, net_section(k.n, k.c, k.h, k.w) + producers(k) + layer, 17 + k.c * 3 + k.h));
        ASSERT_EQ(c.l->n_in, 2);
        EXPECT_EQ(c.l->in[0], 1);  // the previous layer: the factors
        EXPECT_EQ(c.l->in[1], 0);  // 'from': the features
        EXPECT_TRUE(wh_shape_eq(c.l->out_shape, c.l->in_shape[1]));
        EXPECT_EQ(c.l->in_shape[0].c, k.scale_wh ? 1 : k.c);
        wht::check_layer(
            c,
            [&](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) {
                return ref_scale_channels(in, k.n, k.c, k.h, k.w, k.scale_wh, k.act);
            },
            true);
    }
}

// from=-1 on a 1x1 map: the factors are the features, out = s * s, and both
// gradients land in one buffer.
TEST(ScaleChannels, PreviousLayerAgainAddsBothGradients)
{
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c,
                           net_section(3, 7, 1, 1) +
                               "[upsample]\nstride=1\n\n[maxpool]\nsize=1\nstride=1\n\n[scale_channels]\nfrom=-1\n"
                               "activation=leaky\n",
                           5));
    ASSERT_EQ(c.l->n_in, 2);
    EXPECT_EQ(c.l->in[0], 1);
    EXPECT_EQ(c.l->in[1], 1);
    wht::check_tied_inputs(
        c, [](const std::vector<wht::Vec> &in) { return ref_scale_channels(in, 3, 7, 1, 1, false, "leaky"); });
}

// Worked by hand: features (1, 2, 2, 2), factors (0.5, -2).
//   channel 0: 0.5 * [1, 2, 3, 4]     = [0.5, 1, 1.5, 2]
//   channel 1: -2 * [-1, 0.5, 2, -2]  = [2, -1, -4, 4]
// With dout = 1 everywhere: ds = per-channel sums of the features = [10, -0.5],
// dx = the channel's factor = [0.5 x4, -2 x4]. With scale_wh the factors are
// one map (1, 1, 2, 2) = [1, -1, 2, 0]: ds = sum over channels = [0, 2.5, 5, 2],
// out channel 1 = [-1, -0.5, 4, 0].
TEST(ScaleChannels, HandWorkedExample)
{
    {
        wht::LayerCase c;
        ASSERT_TRUE(wht::build(c, net_section(1, 2, 2, 2) + "[upsample]\nstride=1\n\n[maxpool]\nsize=2\nstride=2\n\n"
                                                            "[scale_channels]\nfrom=-2\n",
                               1));
        c.in[0] = {0.5, -2};
        c.in[1] = {1, 2, 3, 4, -1, 0.5, 2, -2};
        wht::upload(c);
        wh_net_zero_douts(c.net);
        ASSERT_EQ(wh_net_forward_layer(c.net, 2, 1, &c.ctx), WH_OK) << c.ctx.msg;
        const float want[8] = {0.5f, 1, 1.5f, 2, 2, -1, -4, 4};
        for (int i = 0; i < 8; i++) EXPECT_FLOAT_EQ(c.l->out[i], want[i]) << i;
        for (int i = 0; i < 8; i++) c.l->dout[i] = 1;
        ASSERT_EQ(wh_net_backward_layer(c.net, 2, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
        const float *ds = c.net->layers[1].dout, *dx = c.net->layers[0].dout;
        EXPECT_FLOAT_EQ(ds[0], 10);
        EXPECT_FLOAT_EQ(ds[1], -0.5f);
        for (int i = 0; i < 8; i++) EXPECT_FLOAT_EQ(dx[i], i < 4 ? 0.5f : -2.f) << i;
    }
    {
        wht::LayerCase c;
        ASSERT_TRUE(wht::build(c,
                               net_section(1, 2, 2, 2) +
                                   "[upsample]\nstride=1\n\n[convolutional]\nfilters=1\nsize=1\nstride=1\npad=0\n"
                                   "activation=linear\n\n[scale_channels]\nfrom=-2\nscale_wh=1\n",
                               1));
        c.in[0] = {1, -1, 2, 0};
        c.in[1] = {1, 2, 3, 4, -1, 0.5, 2, -2};
        wht::upload(c);
        wh_net_zero_douts(c.net);
        ASSERT_EQ(wh_net_forward_layer(c.net, 2, 1, &c.ctx), WH_OK) << c.ctx.msg;
        const float want[8] = {1, -2, 6, 0, -1, -0.5f, 4, 0};
        for (int i = 0; i < 8; i++) EXPECT_FLOAT_EQ(c.l->out[i], want[i]) << i;
        for (int i = 0; i < 8; i++) c.l->dout[i] = 1;
        ASSERT_EQ(wh_net_backward_layer(c.net, 2, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
        const float wds[4] = {0, 2.5f, 5, 2};
        for (int i = 0; i < 4; i++) EXPECT_FLOAT_EQ(c.net->layers[1].dout[i], wds[i]) << i;
        const float wdx[8] = {1, -1, 2, 0, 1, -1, 2, 0};
        for (int i = 0; i < 8; i++) EXPECT_FLOAT_EQ(c.net->layers[0].dout[i], wdx[i]) << i;
    }
}

wh_status create(const std::string &text, wh_ctx &ctx, wh_net **net, int train = 0)
{
    wh_cfg *cfg = nullptr;
    wh_status st = wh_cfg_parse_string(text.c_str(), "test.cfg", &cfg, &ctx);
    if (st != WH_OK) return st;
    wh_net_opts o = {};
    o.train = train;
    st = wh_net_create(cfg, &o, net, &ctx);
    wh_cfg_free(cfg);
    return st;
}

bool has(const wh_ctx &ctx, const std::string &s)
{
    return std::string(ctx.msg).find(s) != std::string::npos;
}

// An inference net multiplies straight into out: a squeeze-excitation chain
// on the image (global max per channel, scaled back onto the image).
TEST(ScaleChannels, InferenceNetForward)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // padding=0: darknet's default padding (size-1) shifts the window up and left by one
    ASSERT_EQ(create(net_section(2, 3, 4, 4) + "[upsample]\nstride=1\n\n[maxpool]\nsize=4\nstride=4\npadding=0\n\n"
                                               "[scale_channels]\nfrom=-2\nactivation=leaky\n",
                     ctx, &net),
              WH_OK)
        << ctx.msg;
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    const int hw = 16;
    for (int i = 0; i < 2 * 3 * hw; i++) net->input[i] = u(rng);
    ASSERT_EQ(wh_net_forward(net, 0, &ctx), WH_OK) << ctx.msg;
    wht::Vec want(2 * 3 * hw);
    for (int p = 0; p < 2 * 3; p++) {
        double m = net->input[p * hw];
        for (int i = 1; i < hw; i++) m = std::max(m, (double)net->input[p * hw + i]);
        for (int i = 0; i < hw; i++) want[p * hw + i] = wht::act_ref("leaky", m * net->input[p * hw + i]);
    }
    EXPECT_LT(wht::rel_err(net->layers[2].out, want), 1e-6);
    wh_net_destroy(net);
}

// Darknet sets no bflops for the layer; no parameters; flow and facts for pruning.
TEST(ScaleChannels, FlopsDescribeAndFacts)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    ASSERT_EQ(create(net_section(1, 8, 6, 6) +
                         "[upsample]\nstride=1\n\n[maxpool]\nsize=6\nstride=6\n\n[scale_channels]\nfrom=0\n\n"
                         "[convolutional]\nfilters=1\nsize=1\nstride=1\npad=0\nactivation=logistic\n\n"
                         "[scale_channels]\nfrom=-2\nscale_wh=1\nactivation=logistic\n",
                     ctx, &net),
              WH_OK)
        << ctx.msg;
    EXPECT_EQ(ctx.n_warn_total, 0);
    wh_net_cost cost;
    wh_layer_cost(&net->layers[2], &cost);
    EXPECT_EQ(cost.darknet_flops, 0.0);
    EXPECT_EQ(cost.params, 0u);
    EXPECT_EQ(net->layers[2].n_params, 0);
    EXPECT_EQ(net->layers[2].ops->flow, WH_FLOW_ADD);
    EXPECT_EQ(net->layers[2].ops->weights_order, nullptr);
    wh_layer_facts f;
    wh_layer_facts_get(&net->layers[4], &f);
    EXPECT_EQ(f.keeps_producers, 1);
    EXPECT_EQ(f.act, WH_ACT_LOGISTIC);
    char buf[64];
    net->layers[2].ops->describe(&net->layers[2], buf, sizeof(buf));
    EXPECT_STREQ(buf, "0");
    net->layers[4].ops->describe(&net->layers[4], buf, sizeof(buf));
    EXPECT_STREQ(buf, "-2 scale_wh logistic");
    EXPECT_TRUE(wh_shape_eq(net->layers[4].out_shape, net->layers[2].out_shape));
    wh_net_destroy(net);
}

TEST(ScaleChannels, ShapeMismatchNamesLayersAndLine)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // lines: 8 [upsample], 11 [maxpool], 15 [scale_channels]
    // factors 2x2x3 (a pool that is not global): darknet asserts 1x1
    EXPECT_EQ(create(net_section(1, 3, 4, 4) +
                         "[upsample]\nstride=1\n\n[maxpool]\nsize=2\nstride=2\n\n[scale_channels]\nfrom=-2\n",
                     ctx, &net),
              WH_ERR_SHAPE);
    EXPECT_EQ(net, nullptr);
    EXPECT_TRUE(has(ctx, "test.cfg:15")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "layer 0 (4x4x3)")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "layer 1 (2x2x3)")) << ctx.msg;
    // channels differ: factors 1x1x2 for a 3-channel map
    EXPECT_EQ(create(net_section(1, 3, 4, 4) +
                         "[upsample]\nstride=1\n\n[convolutional]\nfilters=2\nsize=4\nstride=1\npad=0\n"
                         "activation=logistic\n\n[scale_channels]\nfrom=-2\n",
                     ctx, &net),
              WH_ERR_SHAPE);
    EXPECT_TRUE(has(ctx, "test.cfg:18")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "1x1x3")) << ctx.msg;
    // scale_wh wants one channel of the map's size
    EXPECT_EQ(create(net_section(1, 3, 4, 4) +
                         "[upsample]\nstride=1\n\n[maxpool]\nsize=4\nstride=4\n\n[scale_channels]\nfrom=-2\n"
                         "scale_wh=1\n",
                     ctx, &net),
              WH_ERR_SHAPE);
    EXPECT_TRUE(has(ctx, "test.cfg:15")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "4x4x1")) << ctx.msg;
    EXPECT_EQ(net, nullptr);
}

TEST(ScaleChannels, CfgErrors)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    const std::string head = net_section(1, 3, 8, 8) + "[upsample]\nstride=1\n\n[scale_channels]\n";  // line 11
    // 'from' is required and must name one earlier layer.
    EXPECT_EQ(create(head, ctx, &net), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:11")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "from")) << ctx.msg;
    EXPECT_EQ(create(head + "from=-2\n", ctx, &net), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:12")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "'from'")) << ctx.msg;
    EXPECT_EQ(create(head + "from=1\n", ctx, &net), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:12")) << ctx.msg;
    EXPECT_EQ(create(head + "from=-1,-1\n", ctx, &net), WH_ERR_CFG);  // darknet reads one index
    EXPECT_TRUE(has(ctx, "test.cfg:12")) << ctx.msg;
    EXPECT_EQ(create(head + "from=-1\nscale_wh=2\n", ctx, &net), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:13")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "scale_wh")) << ctx.msg;
    EXPECT_EQ(create(head + "from=-1\nactivation=gelu\n", ctx, &net), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:13")) << ctx.msg;
    EXPECT_EQ(net, nullptr);
}

// With a non-linear activation backward needs the product a training forward kept.
TEST(ScaleChannels, BackwardNeedsTrainingForward)
{
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c,
                           net_section(1, 2, 4, 4) +
                               "[upsample]\nstride=1\n\n[maxpool]\nsize=4\nstride=4\n\n[scale_channels]\nfrom=-2\n"
                               "activation=logistic\n",
                           1));
    ASSERT_EQ(wh_net_forward_layer(c.net, 2, 0, &c.ctx), WH_OK);
    EXPECT_EQ(wh_net_backward_layer(c.net, 2, nullptr, &c.ctx), WH_ERR_STATE);
    ASSERT_EQ(wh_net_forward_layer(c.net, 2, 1, &c.ctx), WH_OK);
    EXPECT_EQ(wh_net_backward_layer(c.net, 2, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
}

}  // namespace
