// [dropout]: the identity at inference (harness, against a float64 copy);
// in training darknet's inverted dropout: the share dropped near p over a
// large tensor, kept values times 1/(1-p), backward through the forward's
// mask (exactly), masks fixed by the seed (wh_net_init_weights) and by the
// step, not by the thread count or the layout; the keys it refuses.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "harness.h"

extern "C" {
#include "framework/core/tensor.h"
}

namespace {

std::string net_section(int n, int c, int h, int w)
{
    return "[net]\nbatch=" + std::to_string(n) + "\nsubdivisions=1\nwidth=" + std::to_string(w) +
           "\nheight=" + std::to_string(h) + "\nchannels=" + std::to_string(c) + "\n\n";
}

std::string cfg(int n, int c, int h, int w, const std::string &prob)
{
    return net_section(n, c, h, w) + "[upsample]\nstride=1\n\n[dropout]\nprobability=" + prob + "\n";
}

// darknet's l.scale: 1./(1.0 - probability) in double, stored as a float
float darknet_scale(float p) { return (float)(1.0 / (1.0 - (double)p)); }

TEST(Dropout, InferenceIsTheIdentity)
{
    for (const char *p : {"0.5", "0.2", "0.9"}) {
        SCOPED_TRACE(std::string("probability=") + p);
        wht::LayerCase c;
        ASSERT_TRUE(wht::build(c, cfg(2, 3, 5, 4, p), 3));
        EXPECT_EQ(c.l->out_shape.c, 3);
        EXPECT_EQ(c.l->out_shape.h, 5);
        EXPECT_EQ(c.l->out_shape.w, 4);
        wht::check_layer(
            c, [](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) { return in[0]; }, false);
    }
}

// probability=0 drops nothing and scales by 1: training is the identity, so
// the harness checks the training forward and the backward too.
TEST(Dropout, ZeroProbabilityTrainsAsTheIdentity)
{
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c, cfg(2, 3, 5, 4, "0"), 5));
    wht::check_layer(
        c, [](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) { return in[0]; }, true);
}

// One training forward of the last layer; returns its output.
std::vector<float> train_forward(wht::LayerCase &c)
{
    EXPECT_EQ(wh_net_forward_layer(c.net, c.l->index, 1, &c.ctx), WH_OK) << c.ctx.msg;
    return std::vector<float>(c.l->out, c.l->out + wh_shape_count(c.l->out_shape));
}

TEST(Dropout, TrainingDropsAboutPAndScalesTheRest)
{
    for (float p : {0.3f, 0.5f, 0.05f}) {
        SCOPED_TRACE("probability=" + std::to_string(p));
        wht::LayerCase c;
        // 2 x 8 x 64 x 64 = 65536 elements
        ASSERT_TRUE(wht::build(c, cfg(2, 8, 64, 64, std::to_string(p)), 17));
        const std::vector<float> out = train_forward(c);
        const float *in = c.net->layers[0].out;
        const float scale = darknet_scale(p);
        size_t dropped = 0, bad = 0;
        for (size_t i = 0; i < out.size(); i++) {
            ASSERT_NE(in[i], 0.f);
            if (out[i] == 0.f) dropped++;
            else bad += out[i] != in[i] * scale;  // exactly darknet's product
        }
        EXPECT_EQ(bad, 0u) << "kept values are in * 1/(1-p)";
        const double n = (double)out.size(), share = (double)dropped / n;
        const double sigma = std::sqrt(p * (1.0 - p) / n);
        EXPECT_NEAR(share, p, 5 * sigma) << dropped << " of " << out.size();
        // every channel plane (4096 elements) drops about p too: no plane is
        // left whole or dropped whole
        const size_t plane = 64 * 64;
        for (size_t q = 0; q < out.size() / plane; q++) {
            size_t d = 0;
            for (size_t i = q * plane; i < (q + 1) * plane; i++) d += out[i] == 0.f;
            EXPECT_NEAR((double)d / plane, p, 6 * std::sqrt(p * (1.0 - p) / plane)) << "plane " << q;
        }
        // the two images get different masks
        size_t same = 0;
        const size_t img = out.size() / 2;
        for (size_t i = 0; i < img; i++) same += (out[i] == 0.f) == (out[img + i] == 0.f);
        EXPECT_LT(same, img);
    }
}

TEST(Dropout, BackwardUsesTheForwardsMask)
{
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c, cfg(2, 4, 16, 16, "0.4"), 23));
    const float scale = darknet_scale(0.4f);
    // a second forward draws a new mask: backward must use the latest
    const std::vector<float> first = train_forward(c);
    const std::vector<float> out = train_forward(c);
    size_t differ = 0;
    for (size_t i = 0; i < out.size(); i++) differ += (first[i] == 0.f) != (out[i] == 0.f);
    EXPECT_GT(differ, out.size() / 10) << "each training forward draws a new mask";
    std::mt19937_64 rng(8);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> R(out.size());
    wh_net_zero_douts(c.net);
    for (size_t i = 0; i < R.size(); i++) c.l->dout[i] = R[i] = u(rng);
    ASSERT_EQ(wh_net_backward_layer(c.net, c.l->index, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
    const float *din = c.net->layers[0].dout;
    for (size_t i = 0; i < out.size(); i++)
        ASSERT_EQ(din[i], out[i] != 0.f ? R[i] * scale : 0.f) << "at " << i;
    // after an inference forward (the identity) the backward is the identity's
    ASSERT_EQ(wh_net_forward_layer(c.net, c.l->index, 0, &c.ctx), WH_OK);
    wh_net_zero_douts(c.net);
    for (size_t i = 0; i < R.size(); i++) c.l->dout[i] = R[i];
    ASSERT_EQ(wh_net_backward_layer(c.net, c.l->index, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
    for (size_t i = 0; i < out.size(); i++) ASSERT_EQ(din[i], R[i]) << "at " << i;
}

TEST(Dropout, BackwardNeedsAForward)
{
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c, cfg(1, 2, 4, 4, "0.4"), 2));
    EXPECT_EQ(wh_net_backward_layer(c.net, c.l->index, nullptr, &c.ctx), WH_ERR_STATE);
}

// The masks are a function of the seed given to wh_net_init_weights and of
// the number of training forwards since: two nets with the same seed (and 1
// or 2 threads) draw the same ones, another seed others.
TEST(Dropout, MasksAreFixedBySeedAndStepNotThreads)
{
    wht::LayerCase a, b, other;
    ASSERT_TRUE(wht::build(a, cfg(2, 3, 20, 20, "0.5"), 31));
    ASSERT_TRUE(wht::build(b, cfg(2, 3, 20, 20, "0.5"), 31));
    ASSERT_TRUE(wht::build(other, cfg(2, 3, 20, 20, "0.5"), 32));
    for (size_t i = 0; i < a.in[0].size(); i++) other.net->layers[0].out[i] = (float)a.in[0][i];  // a's inputs
    const int saved = omp_get_max_threads();
    std::vector<float> step0;
    for (int step = 0; step < 3; step++) {
        SCOPED_TRACE("step " + std::to_string(step));
        omp_set_num_threads(1);
        const std::vector<float> oa = train_forward(a);
        omp_set_num_threads(2);
        const std::vector<float> ob = train_forward(b);
        const std::vector<float> oo = train_forward(other);
        EXPECT_EQ(oa, ob);
        EXPECT_NE(oa, oo);
        if (step == 0) {
            step0 = oa;
        } else {
            EXPECT_NE(oa, step0);
        }
    }
    omp_set_num_threads(saved);
    // initialising again with the seed starts the same sequence again
    wh_net_init_weights(a.net, 31);
    EXPECT_EQ(train_forward(a), step0);
}

wh_status create(const std::string &text, wh_ctx &ctx, wh_net **net, int blocked = 0, int train = 0)
{
    wh_cfg *c = nullptr;
    wh_status st = wh_cfg_parse_string(text.c_str(), "test.cfg", &c, &ctx);
    if (st != WH_OK) return st;
    wh_net_opts o = {};
    o.blocked = blocked;
    o.train = train;
    st = wh_net_create(c, &o, net, &ctx);
    wh_cfg_free(c);
    return st;
}

// An element's mask follows its (n, c, h, w), not where a layout stores it:
// a blocked network (a 16-filter conv in front keeps the dropout blocked)
// drops the same elements as the plain one.
TEST(Dropout, BlockedLayoutDropsTheSameElements)
{
    const std::string text = net_section(2, 3, 6, 5) +
                             "[convolutional]\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=linear\n\n"
                             "[dropout]\nprobability=0.5\n";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *plain = nullptr, *blk = nullptr;
    ASSERT_EQ(create(text, ctx, &plain, 0, 1), WH_OK) << ctx.msg;
    ASSERT_EQ(create(text, ctx, &blk, 1, 1), WH_OK) << ctx.msg;
    wh_net_init_weights(plain, 12);
    wh_net_init_weights(blk, 12);
    const wh_layer *lb = &blk->layers[1], *lp = &plain->layers[1];
    if (lb->out_layout == WH_LAYOUT_NCHW) {
        wh_net_destroy(plain);
        wh_net_destroy(blk);
        GTEST_SKIP() << "no blocked layout on this CPU";
    }
    std::mt19937_64 rng(6);
    std::uniform_real_distribution<float> u(-1, 1);
    for (size_t i = 0; i < (size_t)2 * 3 * 6 * 5; i++) plain->input[i] = blk->input[i] = u(rng);
    ASSERT_EQ(wh_net_forward(plain, 1, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_forward(blk, 1, &ctx), WH_OK) << ctx.msg;
    wh_tensor tb = {lb->out, lb->out_shape, lb->out_layout};
    const wh_layer *cb = &blk->layers[0];
    wh_tensor tc = {cb->out, cb->out_shape, cb->out_layout};
    int dropped = 0;
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 16; ch++)
            for (int y = 0; y < 6; y++)
                for (int x = 0; x < 5; x++) {
                    const size_t e = (((size_t)n * 16 + ch) * 6 + y) * 5 + x;
                    const float vb = lb->out[wh_tensor_offset(&tb, n, ch, y, x)];
                    ASSERT_EQ(vb == 0.f, lp->out[e] == 0.f) << n << "," << ch << "," << y << "," << x;
                    dropped += vb == 0.f;
                    if (vb != 0.f) {
                        EXPECT_EQ(vb, cb->out[wh_tensor_offset(&tc, n, ch, y, x)] * 2.f);
                    }
                    EXPECT_NEAR(vb, lp->out[e], 1e-4f);
                }
    EXPECT_GT(dropped, 0);
    wh_net_destroy(plain);
    wh_net_destroy(blk);
}

TEST(Dropout, DefaultsDescribeAndCost)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    ASSERT_EQ(create(net_section(1, 16, 8, 8) + "[dropout]\n", ctx, &net), WH_OK) << ctx.msg;
    const wh_layer *l = &net->layers[0];
    char buf[64];
    l->ops->describe(l, buf, sizeof(buf));
    EXPECT_STREQ(buf, "p=0.2");  // darknet's default probability
    EXPECT_EQ(l->ops->flow, WH_FLOW_SAME);
    EXPECT_TRUE(wh_shape_eq(l->out_shape, l->in_shape[0]));
    wh_net_cost cost;
    wh_layer_cost(l, &cost);
    EXPECT_EQ(cost.darknet_flops, 0.0);
    EXPECT_EQ(cost.params, 0u);
    EXPECT_EQ(ctx.n_warn_total, 0);
    wh_net_destroy(net);
}

TEST(Dropout, Errors)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // everything dropped: darknet would scale by 1/0
    EXPECT_EQ(create(net_section(1, 2, 8, 8) + "[dropout]\nprobability=1\n", ctx, &net), WH_ERR_CFG);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:9"), std::string::npos) << ctx.msg;
    EXPECT_EQ(net, nullptr);
    EXPECT_EQ(create(net_section(1, 2, 8, 8) + "[dropout]\nprobability=-0.1\n", ctx, &net), WH_ERR_CFG);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:9"), std::string::npos) << ctx.msg;
    EXPECT_EQ(create(net_section(1, 2, 8, 8) + "[dropout]\nprobability=half\n", ctx, &net), WH_ERR_CFG);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:9"), std::string::npos) << ctx.msg;
    EXPECT_NE(std::string(ctx.msg).find("probability"), std::string::npos) << ctx.msg;
    // DropBlock (darknet's GPU-only variant) is refused, naming its line
    EXPECT_EQ(create(net_section(1, 2, 8, 8) + "[dropout]\nprobability=0.1\ndropblock=1\n", ctx, &net),
              WH_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:10"), std::string::npos) << ctx.msg;
    EXPECT_EQ(net, nullptr);
}

}  // namespace
