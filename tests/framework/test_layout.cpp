// Layouts: the net inserts a reorder exactly where a producer's layout is not
// one its consumer accepts, forward and backward. A test layer type that
// only works in nChw16c (registered through wh_layer_register) sits between
// plain-NCHW layers; the results must equal the plain computation.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

extern "C" {
#include "framework/net.h"
}

namespace {

// [blocked_scale]: y = 2x, input and output in nChw16c only.
wh_status bs_init(wh_layer *, wh_cfg_section *, wh_ctx *) { return WH_OK; }
wh_status bs_shape(wh_layer *l, wh_ctx *ctx)
{
    if (l->in_layout[0] != WH_LAYOUT_NCHW16C) return wh_error(ctx, WH_ERR_STATE, "not blocked");
    l->out_shape = l->in_shape[0];
    l->out_layout = WH_LAYOUT_NCHW16C;
    return WH_OK;
}
wh_status bs_forward(wh_layer *l, wh_exec *x)
{
    size_t n = wh_layout_count(l->out_shape, l->out_layout);
    for (size_t i = 0; i < n; i++) l->out[i] = 2.f * x->in[0][i];
    return WH_OK;
}
wh_status bs_backward(wh_layer *l, wh_exec *x)
{
    size_t n = wh_layout_count(l->out_shape, l->out_layout);
    if (x->din[0])
        for (size_t i = 0; i < n; i++) x->din[0][i] += 2.f * l->dout[i];
    return WH_OK;
}
const wh_layer_ops bs_ops = {
    "blocked_scale", WH_FLOW_SAME, WH_LAYOUT_BIT(WH_LAYOUT_NCHW16C), bs_init, bs_shape, nullptr,
    nullptr, nullptr, bs_forward, bs_backward, nullptr, nullptr, nullptr, nullptr};

void register_once()
{
    static bool done = false;
    if (done) return;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_layer_register(&bs_ops, &ctx), WH_OK) << ctx.msg;
    done = true;
}

}  // namespace

TEST(Layout, ReordersOnlyWhereNeighboursDisagree)
{
    register_once();
    // 0 upsample(NCHW) -> 1 blocked -> 2 blocked -> 3 upsample(NCHW) -> 4 route(3, 0)
    const char *text =
        "[net]\nbatch=2\nwidth=5\nheight=3\nchannels=20\n"
        "[upsample]\nstride=1\n[blocked_scale]\n[blocked_scale]\n[upsample]\nstride=1\n"
        "[route]\nlayers=-1,0\n";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    ASSERT_EQ(wh_cfg_parse_string(text, "layout.cfg", &cfg, &ctx), WH_OK) << ctx.msg;
    wh_net_opts o = {};
    o.train = 1;
    wh_net *net = nullptr;
    ASSERT_EQ(wh_net_create(cfg, &o, &net, &ctx), WH_OK) << ctx.msg;
    wh_cfg_free(cfg);
    EXPECT_EQ(net->n_layout_cvt, 2);  // into layer 1, and out of layer 2 into layer 3
    EXPECT_NE(net->layers[1].in_cvt[0], nullptr);
    EXPECT_EQ(net->layers[2].in_cvt[0], nullptr);
    EXPECT_NE(net->layers[3].in_cvt[0], nullptr);
    EXPECT_EQ(net->layers[4].in_cvt[0], nullptr);
    EXPECT_EQ(net->layers[4].in_cvt[1], nullptr);

    const size_t n = 2 * 20 * 3 * 5;
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> x(n), R(2 * n);
    for (auto &v : x) v = u(rng);
    for (auto &v : R) v = u(rng);
    std::copy(x.begin(), x.end(), net->input);
    ASSERT_EQ(wh_net_forward(net, 1, &ctx), WH_OK) << ctx.msg;
    // route output: (N, 40, H, W) = [4x ; x] per image
    const float *out = net->layers[4].out;
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 40; c++)
            for (int i = 0; i < 15; i++) {
                float want = c < 20 ? 4.f * x[(b * 20 + c) * 15 + i] : x[(b * 20 + c - 20) * 15 + i];
                ASSERT_FLOAT_EQ(out[(b * 40 + c) * 15 + i], want) << b << " " << c << " " << i;
            }
    // backward: d input = 4 R[first half] + R[second half]
    wh_net_zero_douts(net);
    std::copy(R.begin(), R.end(), net->layers[4].dout);
    std::vector<float> dx(n, 0.f);
    ASSERT_EQ(wh_net_backward(net, dx.data(), &ctx), WH_OK) << ctx.msg;
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 20; c++)
            for (int i = 0; i < 15; i++)
                ASSERT_NEAR(dx[(b * 20 + c) * 15 + i],
                            4.f * R[(b * 40 + c) * 15 + i] + R[(b * 40 + c + 20) * 15 + i], 1e-5);
    wh_net_destroy(net);
}

TEST(Layout, RegisteringAKnownNameFails)
{
    register_once();
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    EXPECT_EQ(wh_layer_register(&bs_ops, &ctx), WH_ERR_ARG);
    EXPECT_NE(std::string(ctx.msg).find("already registered"), std::string::npos);
}
