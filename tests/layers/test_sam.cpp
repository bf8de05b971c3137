// [sam] against a float64 reference written here (act of the element-wise
// product of the two inputs), with the harness's finite-difference and
// 1-vs-2-thread checks; the previous layer named again; a hand-worked
// example; the blocked layout against the plain one; darknet's flop count
// (none) and describe; the errors that must name layers and lines.
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

wht::Vec ref_sam(const std::vector<wht::Vec> &in, const std::string &act)
{
    wht::Vec out(in[0].size());
    for (size_t i = 0; i < out.size(); i++) out[i] = wht::act_ref(act, in[0][i] * in[1][i]);
    return out;
}

TEST(Sam, MatchesReferenceAndGradients)
{
    struct Case {
        int n, c, h, w;
        std::string act;
    };
    const Case cases[] = {
        {2, 4, 5, 6, "linear"}, {3, 3, 3, 7, "leaky"}, {2, 2, 4, 5, "logistic"},
        {1, 5, 7, 7, "mish"},   {2, 2, 3, 4, "swish"}, {2, 3, 3, 4, "tanh"},
    };
    for (const Case &k : cases) {
        std::string layer = "[sam]\nfrom=-2\n";
        if (k.act != "linear") layer += "activation=" + k.act + "\n";
        SCOPED_TRACE(layer);
        wht::LayerCase c;
        ASSERT_TRUE(wht::build(c,
                               net_section(k.n, k.c, k.h, k.w) +
                                   "[upsample]\nstride=1\n\n[maxpool]\nsize=1\nstride=1\n\n" + layer,
                               23 + k.c * 5 + k.h));
        ASSERT_EQ(c.l->n_in, 2);
        EXPECT_EQ(c.l->in[0], 1);  // the previous layer: the attention
        EXPECT_EQ(c.l->in[1], 0);  // 'from': the features
        EXPECT_TRUE(wh_shape_eq(c.l->out_shape, c.l->in_shape[0]));
        wht::check_layer(
            c, [&](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) { return ref_sam(in, k.act); },
            true);
    }
}

// from=-1: out = act(in * in), both gradients into one buffer.
TEST(Sam, PreviousLayerAgainAddsBothGradients)
{
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c,
                           net_section(2, 3, 5, 3) +
                               "[upsample]\nstride=1\n\n[maxpool]\nsize=1\nstride=1\n\n[sam]\nfrom=-1\n"
                               "activation=logistic\n",
                           41));
    ASSERT_EQ(c.l->n_in, 2);
    EXPECT_EQ(c.l->in[0], 1);
    EXPECT_EQ(c.l->in[1], 1);
    wht::check_tied_inputs(c, [](const std::vector<wht::Vec> &in) { return ref_sam(in, "logistic"); });
}

// Worked by hand: attention a = [0.5, -1, 2, 0], features x = [4, 3, -0.5, 7]
// (1, 1, 2, 2): out = a * x = [2, -3, -1, 0]; with leaky, [2, -0.3, -0.1, 0].
// dout = [1, 2, 3, 4] on the linear one: da = dout * x = [4, 6, -1.5, 28],
// dx = dout * a = [0.5, -2, 6, 0].
TEST(Sam, HandWorkedExample)
{
    for (const char *act : {"linear", "leaky"}) {
        wht::LayerCase c;
        ASSERT_TRUE(wht::build(c,
                               net_section(1, 1, 2, 2) + "[upsample]\nstride=1\n\n[maxpool]\nsize=1\nstride=1\n\n"
                                                         "[sam]\nfrom=-2\nactivation=" + act + "\n",
                               1));
        c.in[0] = {0.5, -1, 2, 0};
        c.in[1] = {4, 3, -0.5, 7};
        wht::upload(c);
        wh_net_zero_douts(c.net);
        ASSERT_EQ(wh_net_forward_layer(c.net, 2, 1, &c.ctx), WH_OK) << c.ctx.msg;
        const bool leaky = std::string(act) == "leaky";
        const float want_lin[4] = {2, -3, -1, 0}, want_leaky[4] = {2, -0.3f, -0.1f, 0};
        for (int i = 0; i < 4; i++) EXPECT_FLOAT_EQ(c.l->out[i], leaky ? want_leaky[i] : want_lin[i]) << i;
        if (leaky) continue;
        for (int i = 0; i < 4; i++) c.l->dout[i] = (float)(i + 1);
        ASSERT_EQ(wh_net_backward_layer(c.net, 2, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
        const float da[4] = {4, 6, -1.5f, 28}, dx[4] = {0.5f, -2, 6, 0};
        for (int i = 0; i < 4; i++) {
            EXPECT_FLOAT_EQ(c.net->layers[1].dout[i], da[i]) << i;
            EXPECT_FLOAT_EQ(c.net->layers[0].dout[i], dx[i]) << i;
        }
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

bool has(const wh_ctx &ctx, const std::string &s)
{
    return std::string(ctx.msg).find(s) != std::string::npos;
}

// The blocked path: two 16-filter convs output blocked (8 or 16 channels per
// block, whichever this CPU's oneDNN uses) and the multiply keeps it. Output
// and both input gradients must be the plain network's, read through the layout.
TEST(Sam, BlockedLayoutMatchesPlain)
{
    const std::string conv = "[convolutional]\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=";
    const std::string text = net_section(2, 3, 5, 4) + conv + "leaky\n\n" + conv + "logistic\n\n" +
                             "[sam]\nfrom=-2\nactivation=leaky\n";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *plain = nullptr, *blk = nullptr;
    ASSERT_EQ(create(text, ctx, &plain, 0, 1), WH_OK) << ctx.msg;
    ASSERT_EQ(create(text, ctx, &blk, 1, 1), WH_OK) << ctx.msg;
    wh_net_init_weights(plain, 9);
    wh_net_init_weights(blk, 9);
    const wh_layer *lb = &blk->layers[2], *lp = &plain->layers[2];
    if (lb->out_layout == WH_LAYOUT_NCHW) {
        wh_net_destroy(plain);
        wh_net_destroy(blk);
        GTEST_SKIP() << "no blocked layout on this CPU";
    }
    for (int k = 0; k < 2; k++) EXPECT_EQ(lb->in_layout[k], lb->out_layout) << "no reorder before the multiply";
    std::mt19937_64 rng(4);
    std::uniform_real_distribution<float> u(-1, 1);
    const size_t nin = (size_t)2 * 3 * 5 * 4;
    for (size_t i = 0; i < nin; i++) plain->input[i] = blk->input[i] = u(rng);
    ASSERT_EQ(wh_net_forward(plain, 1, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_forward(blk, 1, &ctx), WH_OK) << ctx.msg;
    wh_net_zero_douts(plain);
    wh_net_zero_douts(blk);
    wh_tensor tb = {lb->out, lb->out_shape, lb->out_layout};
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 16; ch++)
            for (int y = 0; y < 5; y++)
                for (int x = 0; x < 4; x++) {
                    const size_t i = (((size_t)n * 16 + ch) * 5 + y) * 4 + x;
                    const size_t j = wh_tensor_offset(&tb, n, ch, y, x);
                    EXPECT_NEAR(lb->out[j], lp->out[i], 1e-5f);
                    const float g = (float)((i * 7) % 11) / 5.f - 1.f;
                    lp->dout[i] = g;
                    lb->dout[j] = g;
                }
    ASSERT_EQ(wh_net_backward_layer(plain, 2, nullptr, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_backward_layer(blk, 2, nullptr, &ctx), WH_OK) << ctx.msg;
    for (int k = 0; k < 2; k++) {
        const wh_layer *cp = &plain->layers[k], *cb = &blk->layers[k];
        wh_tensor tc = {cb->dout, cb->out_shape, cb->out_layout};
        for (int n = 0; n < 2; n++)
            for (int ch = 0; ch < 16; ch++)
                for (int y = 0; y < 5; y++)
                    for (int x = 0; x < 4; x++)
                        EXPECT_FLOAT_EQ(cb->dout[wh_tensor_offset(&tc, n, ch, y, x)],
                                        cp->dout[(((size_t)n * 16 + ch) * 5 + y) * 4 + x])
                            << "input " << k;
    }
    wh_net_destroy(plain);
    wh_net_destroy(blk);
}

// Darknet sets no bflops for the layer; no parameters; flow and facts for pruning.
TEST(Sam, FlopsDescribeAndFacts)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    ASSERT_EQ(create(net_section(1, 8, 6, 6) + "[upsample]\nstride=1\n\n[maxpool]\nsize=1\nstride=1\n\n"
                                               "[sam]\nfrom=0\n\n[sam]\nfrom=-2\nactivation=logistic\n",
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
    EXPECT_EQ(net->layers[3].in[0], 2);
    EXPECT_EQ(net->layers[3].in[1], 1);
    wh_layer_facts f;
    wh_layer_facts_get(&net->layers[3], &f);
    EXPECT_EQ(f.keeps_producers, 1);
    EXPECT_EQ(f.act, WH_ACT_LOGISTIC);
    char buf[64];
    net->layers[2].ops->describe(&net->layers[2], buf, sizeof(buf));
    EXPECT_STREQ(buf, "0");
    net->layers[3].ops->describe(&net->layers[3], buf, sizeof(buf));
    EXPECT_STREQ(buf, "-2 logistic");
    wh_net_destroy(net);
}

TEST(Sam, ShapeMismatchNamesBothLayers)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // lines: 8 [upsample], 11 [maxpool], 15 [sam]
    EXPECT_EQ(create(net_section(1, 3, 8, 8) + "[upsample]\nstride=1\n\n[maxpool]\nsize=2\nstride=2\n\n[sam]\nfrom=-2\n",
                     ctx, &net),
              WH_ERR_SHAPE);
    EXPECT_EQ(net, nullptr);
    EXPECT_TRUE(has(ctx, "test.cfg:15")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "layer 1 (4x4x3)")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "layer 0 (8x8x3)")) << ctx.msg;
    // channels differ
    EXPECT_EQ(create(net_section(1, 3, 8, 8) +
                         "[upsample]\nstride=1\n\n[convolutional]\nfilters=2\nsize=1\nstride=1\npad=0\n"
                         "activation=logistic\n\n[sam]\nfrom=-2\n",
                     ctx, &net),
              WH_ERR_SHAPE);
    EXPECT_TRUE(has(ctx, "test.cfg:18")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "layer 1 (8x8x2)")) << ctx.msg;
    EXPECT_EQ(net, nullptr);
}

TEST(Sam, CfgErrors)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    const std::string head = net_section(1, 3, 8, 8) + "[upsample]\nstride=1\n\n[sam]\n";  // line 11
    EXPECT_EQ(create(head, ctx, &net), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:11")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "from")) << ctx.msg;
    EXPECT_EQ(create(head + "from=-2\n", ctx, &net), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:12")) << ctx.msg;
    EXPECT_TRUE(has(ctx, "'from'")) << ctx.msg;
    EXPECT_EQ(create(head + "from=5\n", ctx, &net), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:12")) << ctx.msg;
    EXPECT_EQ(create(head + "from=-1,-1\n", ctx, &net), WH_ERR_CFG);  // darknet reads one index
    EXPECT_TRUE(has(ctx, "test.cfg:12")) << ctx.msg;
    EXPECT_EQ(create(head + "from=-1\nactivation=gelu\n", ctx, &net), WH_ERR_CFG);
    EXPECT_TRUE(has(ctx, "test.cfg:13")) << ctx.msg;
    EXPECT_EQ(net, nullptr);
}

TEST(Sam, BackwardNeedsTrainingForward)
{
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c,
                           net_section(1, 2, 4, 4) +
                               "[upsample]\nstride=1\n\n[maxpool]\nsize=1\nstride=1\n\n[sam]\nfrom=-2\n"
                               "activation=leaky\n",
                           1));
    ASSERT_EQ(wh_net_forward_layer(c.net, 2, 0, &c.ctx), WH_OK);
    EXPECT_EQ(wh_net_backward_layer(c.net, 2, nullptr, &c.ctx), WH_ERR_STATE);
    ASSERT_EQ(wh_net_forward_layer(c.net, 2, 1, &c.ctx), WH_OK);
    EXPECT_EQ(wh_net_backward_layer(c.net, 2, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
}

}  // namespace
