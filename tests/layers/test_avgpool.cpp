// [avgpool] against a float64 global-average reference written here, with the
// harness's finite-difference and 1-vs-2-thread checks; the blocked layouts
// against the plain one, darknet's sizes and alias, and keys it refuses.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "harness.h"

extern "C" {
#include "framework/core/tensor.h"
}

namespace {

struct Avg {
    int n, c, h, w;  // the input
};

std::string net_section(int n, int c, int h, int w)
{
    return "[net]\nbatch=" + std::to_string(n) + "\nsubdivisions=1\nwidth=" + std::to_string(w) +
           "\nheight=" + std::to_string(h) + "\nchannels=" + std::to_string(c) + "\n\n";
}

// out[n, c] = the mean of plane (n, c), summed in float64.
wht::Vec ref_avgpool(const wht::Vec &in, const Avg &a)
{
    const size_t hw = (size_t)a.h * a.w;
    wht::Vec out((size_t)a.n * a.c);
    for (size_t p = 0; p < out.size(); p++) {
        double s = 0;
        for (size_t i = 0; i < hw; i++) s += in[p * hw + i];
        out[p] = s / (double)hw;
    }
    return out;
}

TEST(Avgpool, MatchesReferenceAndGradients)
{
    const Avg cases[] = {
        {2, 3, 7, 7},    // a classifier's 7x7 head
        {1, 4, 13, 13},  // odd plane
        {3, 2, 5, 8},    // batch 3, rectangular
        {2, 5, 1, 1},    // 1x1: the identity
        {1, 2, 1, 9},    // one row
    };
    for (const Avg &a : cases) {
        SCOPED_TRACE("[avgpool] on " + std::to_string(a.n) + "x" + std::to_string(a.c) + "x" + std::to_string(a.h) +
                     "x" + std::to_string(a.w));
        wht::LayerCase c;
        std::string cfg = net_section(a.n, a.c, a.h, a.w) + "[upsample]\nstride=1\n\n[avgpool]\n";
        ASSERT_TRUE(wht::build(c, cfg, 5 + a.c * 17 + a.h));
        EXPECT_EQ(c.l->out_shape.n, a.n);
        EXPECT_EQ(c.l->out_shape.c, a.c);
        EXPECT_EQ(c.l->out_shape.h, 1);
        EXPECT_EQ(c.l->out_shape.w, 1);
        wht::check_layer(
            c, [&](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) { return ref_avgpool(in[0], a); },
            true);
    }
}

wh_status create(const std::string &text, wh_ctx &ctx, wh_net **net, int blocked = 0, int train = 0)
{
    wh_cfg *cfg = nullptr;
    wh_status st = wh_cfg_parse_string(text.c_str(), "test.cfg", &cfg, &ctx);
    if (st != WH_OK) return st;
    wh_net_opts o = {};
    o.blocked = blocked;
    o.train = train;
    st = wh_net_create(cfg, &o, net, &ctx);
    wh_cfg_free(cfg);
    return st;
}

// The blocked path: a 16-filter conv outputs blocked (8 or 16 channels per
// block, whichever this CPU's oneDNN uses); the pool keeps it. Output and
// input gradient must be the plain network's, read through the layout.
TEST(Avgpool, BlockedLayoutMatchesPlain)
{
    const std::string text = net_section(2, 3, 6, 5) +
                             "[convolutional]\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=linear\n\n[avgpool]\n";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *plain = nullptr, *blk = nullptr;
    ASSERT_EQ(create(text, ctx, &plain, 0, 1), WH_OK) << ctx.msg;
    ASSERT_EQ(create(text, ctx, &blk, 1, 1), WH_OK) << ctx.msg;
    wh_net_init_weights(plain, 9);
    wh_net_init_weights(blk, 9);
    const wh_layer *lb = &blk->layers[1], *lp = &plain->layers[1];
    if (lb->out_layout == WH_LAYOUT_NCHW) {
        wh_net_destroy(plain);
        wh_net_destroy(blk);
        GTEST_SKIP() << "no blocked layout on this CPU";
    }
    EXPECT_EQ(lb->in_layout[0], blk->layers[0].out_layout) << "no reorder before the pool";
    std::mt19937_64 rng(4);
    std::uniform_real_distribution<float> u(-1, 1);
    const size_t nin = (size_t)2 * 3 * 6 * 5;
    for (size_t i = 0; i < nin; i++) plain->input[i] = blk->input[i] = u(rng);
    ASSERT_EQ(wh_net_forward(plain, 1, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_forward(blk, 1, &ctx), WH_OK) << ctx.msg;
    wh_tensor tb = {lb->out, lb->out_shape, lb->out_layout};
    wh_net_zero_douts(plain);
    wh_net_zero_douts(blk);
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 16; ch++) {
            const float want = lp->out[n * 16 + ch];
            EXPECT_NEAR(lb->out[wh_tensor_offset(&tb, n, ch, 0, 0)], want, 1e-5f) << n << "," << ch;
            const float g = (float)(n * 16 + ch) / 8.f - 2.f;
            lp->dout[n * 16 + ch] = g;
            lb->dout[wh_tensor_offset(&tb, n, ch, 0, 0)] = g;
        }
    ASSERT_EQ(wh_net_backward_layer(plain, 1, nullptr, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_backward_layer(blk, 1, nullptr, &ctx), WH_OK) << ctx.msg;
    const wh_layer *cp = &plain->layers[0], *cb = &blk->layers[0];
    wh_tensor tc = {cb->dout, cb->out_shape, cb->out_layout};
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 16; ch++)
            for (int y = 0; y < 6; y++)
                for (int x = 0; x < 5; x++) {
                    const float want = cp->dout[((n * 16 + ch) * 6 + y) * 5 + x];
                    EXPECT_FLOAT_EQ(cb->dout[wh_tensor_offset(&tc, n, ch, y, x)], want);
                    EXPECT_FLOAT_EQ(want, ((float)(n * 16 + ch) / 8.f - 2.f) / 30.f);
                }
    wh_net_destroy(plain);
    wh_net_destroy(blk);
}

TEST(Avgpool, DarknetSizesAliasAndDescribe)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // darknet's [avg] spelling; darknet counts no FLOPs and no parameters
    ASSERT_EQ(create(net_section(4, 1000, 7, 7) + "[avg]\n", ctx, &net), WH_OK) << ctx.msg;
    const wh_layer *l = &net->layers[0];
    EXPECT_STREQ(l->ops->type, "avgpool");
    EXPECT_EQ(l->out_shape.n, 4);
    EXPECT_EQ(l->out_shape.c, 1000);
    EXPECT_EQ(l->out_shape.h, 1);
    EXPECT_EQ(l->out_shape.w, 1);
    wh_net_cost cost;
    wh_layer_cost(l, &cost);
    EXPECT_EQ(cost.darknet_flops, 0.0);
    EXPECT_EQ(cost.params, 0u);
    EXPECT_EQ(l->ops->flow, WH_FLOW_SAME);
    char buf[64];
    l->ops->describe(l, buf, sizeof(buf));
    EXPECT_STREQ(buf, "7x7 global");
    EXPECT_EQ(ctx.n_warn_total, 0);
    wh_net_destroy(net);
}

TEST(Avgpool, UnknownKeysWarnWithTheirLine)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // darknet's avgpool has no keys: a window size is not one of them (a
    // warning naming the line, the net still builds as darknet's would)
    ASSERT_EQ(create(net_section(1, 2, 8, 8) + "[avgpool]\nsize=2\n", ctx, &net), WH_OK) << ctx.msg;
    ASSERT_EQ(ctx.n_warn_total, 1);
    EXPECT_NE(std::string(ctx.warn[0]).find("test.cfg:9"), std::string::npos) << ctx.warn[0];
    EXPECT_NE(std::string(ctx.warn[0]).find("size"), std::string::npos) << ctx.warn[0];
    wh_net_destroy(net);
}

}  // namespace
