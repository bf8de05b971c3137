// [reorg] (darknet's reorg_old_layer, YOLOv2's) and [reorg3d] (its
// reorg_layer): two small examples worked by hand from reorg_cpu's index
// formula, the harness's checks against a float64 reference written here as
// space-to-depth / depth-to-space on reshaped views (not reorg_cpu's loop),
// darknet's sizes, the pruning facts, and the sizes and keys refused.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"

extern "C" {
#include "framework/core/tensor.h"
}

namespace {

struct Reorg {
    const char *type;  // "reorg" or "reorg3d"
    int stride, reverse;
    int n, c, h, w;  // the input
};

std::string net_section(int n, int c, int h, int w)
{
    return "[net]\nbatch=" + std::to_string(n) + "\nsubdivisions=1\nwidth=" + std::to_string(w) +
           "\nheight=" + std::to_string(h) + "\nchannels=" + std::to_string(c) + "\n\n";
}

std::string reorg_section(const Reorg &r)
{
    std::string s = std::string("[") + r.type + "]\nstride=" + std::to_string(r.stride) + "\n";
    if (r.reverse) s += "reverse=1\n";
    return s;
}

// Space to depth of one (C, H, W) image: (C*s*s, H/s, W/s) with
//   out[(dy*s + dx)*C + c, y, x] = in[c, y*s + dy, x*s + dx].
wht::Vec s2d(const double *in, int C, int H, int W, int s)
{
    const int oh = H / s, ow = W / s;
    wht::Vec out((size_t)C * H * W);
    for (int dy = 0; dy < s; dy++)
        for (int dx = 0; dx < s; dx++)
            for (int c = 0; c < C; c++)
                for (int y = 0; y < oh; y++)
                    for (int x = 0; x < ow; x++)
                        out[(((size_t)(dy * s + dx) * C + c) * oh + y) * ow + x] =
                            in[((size_t)c * H + y * s + dy) * W + x * s + dx];
    return out;
}

// Depth to space, its inverse: (C, H, W) -> (C/(s*s), H*s, W*s).
wht::Vec d2s(const double *in, int C, int H, int W, int s)
{
    const int oc = C / (s * s), oh = H * s, ow = W * s;
    wht::Vec out((size_t)C * H * W);
    for (int dy = 0; dy < s; dy++)
        for (int dx = 0; dx < s; dx++)
            for (int c = 0; c < oc; c++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++)
                        out[((size_t)c * oh + y * s + dy) * ow + x * s + dx] =
                            in[(((size_t)(dy * s + dx) * oc + c) * H + y) * W + x];
    return out;
}

// Per image, with (C, H, W) the input and flat reshapes in between:
//   reorg3d           s2d of the input
//   reorg3d reverse   d2s of the input read as (C/s^2, H*s, W*s)
//   reorg             s2d of the input read as (C/s^2, H*s, W*s)
//   reorg reverse     d2s of the input
wht::Vec ref_reorg(const wht::Vec &in, const Reorg &r)
{
    const int s = r.stride, s2 = s * s;
    const size_t img = (size_t)r.c * r.h * r.w;
    const bool old = std::string(r.type) == "reorg";
    wht::Vec out;
    for (int b = 0; b < r.n; b++) {
        const double *x = in.data() + b * img;
        wht::Vec o;
        if (!old && !r.reverse) o = s2d(x, r.c, r.h, r.w, s);
        else if (!old) o = d2s(x, r.c / s2, r.h * s, r.w * s, s);
        else if (!r.reverse) o = s2d(x, r.c / s2, r.h * s, r.w * s, s);
        else o = d2s(x, r.c, r.h, r.w, s);
        out.insert(out.end(), o.begin(), o.end());
    }
    return out;
}

wht::LayerCase *build_reorg(wht::LayerCase &c, const Reorg &r, uint64_t seed)
{
    const std::string cfg = net_section(r.n, r.c, r.h, r.w) + "[upsample]\nstride=1\n\n" + reorg_section(r);
    return wht::build(c, cfg, seed) ? &c : nullptr;
}

// Input value = its flat index; the expected outputs were worked by hand
// from reorg_cpu (src/blas.c): small (k, j, i) of (c, h, w) pairs with big
// (k % ic, j*s + (k/ic)/s, i*s + (k/ic)%s) of (ic = c/s^2, h*s, w*s); a
// forward without reverse sets small = big.
TEST(Reorg, HandWorkedReorg3dTwoChannels4x4Stride2)
{
    // reorg_cpu(w=2, h=2, c=8, s=2): ic = 2; input in[c, y, x] = 16c + 4y + x.
    // k = 0: c2 0, offset 0 -> rows 2j, columns 2i of channel 0: 0 2 8 10
    // k = 1: c2 1, offset 0 -> the same of channel 1: 16 18 24 26
    // k = 2: c2 0, offset 1 -> columns 2i+1: 1 3 9 11; k = 3: 17 19 25 27
    // k = 4: c2 0, offset 2 -> rows 2j+1: 4 6 12 14;   k = 5: 20 22 28 30
    // k = 6: c2 0, offset 3 -> rows 2j+1, columns 2i+1: 5 7 13 15; k = 7: 21 23 29 31
    const float want[32] = {0, 2, 8,  10, 16, 18, 24, 26, 1, 3, 9,  11, 17, 19, 25, 27,
                            4, 6, 12, 14, 20, 22, 28, 30, 5, 7, 13, 15, 21, 23, 29, 31};
    wht::LayerCase c;
    ASSERT_NE(build_reorg(c, {"reorg3d", 2, 0, 1, 2, 4, 4}, 1), nullptr);
    ASSERT_EQ(c.l->out_shape.c, 8);
    ASSERT_EQ(c.l->out_shape.h, 2);
    ASSERT_EQ(c.l->out_shape.w, 2);
    for (int i = 0; i < 32; i++) c.net->layers[0].out[i] = (float)i;
    ASSERT_EQ(wh_net_forward_layer(c.net, 1, 1, &c.ctx), WH_OK) << c.ctx.msg;
    for (int i = 0; i < 32; i++) EXPECT_EQ(c.l->out[i], want[i]) << "at " << i;
    // backward sends each output's gradient to the input it came from
    wh_net_zero_douts(c.net);
    for (int i = 0; i < 32; i++) c.l->dout[i] = 100.f + (float)i;
    ASSERT_EQ(wh_net_backward_layer(c.net, 1, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
    for (int i = 0; i < 32; i++) EXPECT_EQ(c.net->layers[0].dout[(int)want[i]], 100.f + (float)i) << "at " << i;
}

TEST(Reorg, HandWorkedReorgOldFourChannels2x2Stride2)
{
    // [reorg] calls reorg_cpu with the INPUT's sizes (w=2, h=2, c=4, s=2):
    // ic = 1, so the input is read as one 4x4 plane big[y][x] = 4y + x (its
    // channels stacked as rows), and output flat index k*4 + j*2 + i takes
    // big[2j + k/2][2i + k%2]:
    // k = 0: big[0][0] big[0][2] big[2][0] big[2][2] = 0 2 8 10
    // k = 1: columns + 1: 1 3 9 11;  k = 2: rows + 1: 4 6 12 14;  k = 3: 5 7 13 15
    // The output is (16, 1, 1): channel k*4 + j*2 + i.
    const float want[16] = {0, 2, 8, 10, 1, 3, 9, 11, 4, 6, 12, 14, 5, 7, 13, 15};
    wht::LayerCase c;
    ASSERT_NE(build_reorg(c, {"reorg", 2, 0, 1, 4, 2, 2}, 1), nullptr);
    ASSERT_EQ(c.l->out_shape.c, 16);
    ASSERT_EQ(c.l->out_shape.h, 1);
    ASSERT_EQ(c.l->out_shape.w, 1);
    for (int i = 0; i < 16; i++) c.net->layers[0].out[i] = (float)i;
    ASSERT_EQ(wh_net_forward_layer(c.net, 1, 1, &c.ctx), WH_OK) << c.ctx.msg;
    for (int i = 0; i < 16; i++) EXPECT_EQ(c.l->out[i], want[i]) << "at " << i;
}

TEST(Reorg, MatchesReferenceAndGradients)
{
    const Reorg cases[] = {
        {"reorg3d", 2, 0, 2, 3, 4, 6},   // 2x2 blocks of 3 channels
        {"reorg3d", 3, 0, 1, 2, 6, 9},   // stride 3
        {"reorg3d", 2, 1, 1, 16, 2, 3},  // reverse: channels a multiple of 2^4
        {"reorg3d", 1, 0, 2, 3, 5, 4},   // the identity
        {"reorg", 2, 0, 2, 8, 4, 6},     // YOLOv2's, batch 2
        {"reorg", 3, 0, 1, 9, 6, 3},     // stride 3
        {"reorg", 2, 1, 1, 8, 3, 2},     // reverse
        {"reorg", 1, 1, 2, 3, 5, 4},     // the identity, reversed
    };
    for (const Reorg &r : cases) {
        SCOPED_TRACE(reorg_section(r) + " on " + std::to_string(r.n) + "x" + std::to_string(r.c) + "x" +
                     std::to_string(r.h) + "x" + std::to_string(r.w));
        wht::LayerCase c;
        ASSERT_NE(build_reorg(c, r, 3 + r.c * 7 + r.stride), nullptr);
        const int s2 = r.stride * r.stride;
        EXPECT_EQ(c.l->out_shape.n, r.n);
        EXPECT_EQ(c.l->out_shape.c, r.reverse ? r.c / s2 : r.c * s2);
        EXPECT_EQ(c.l->out_shape.h, r.reverse ? r.h * r.stride : r.h / r.stride);
        EXPECT_EQ(c.l->out_shape.w, r.reverse ? r.w * r.stride : r.w / r.stride);
        wht::check_layer(
            c, [&](const std::vector<wht::Vec> &in, const std::vector<wht::Vec> &) { return ref_reorg(in[0], r); },
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

TEST(Reorg, Yolov2SizesDefaultsAndFacts)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // YOLOv2: 26x26x64 -> 13x13x256
    ASSERT_EQ(create(net_section(1, 64, 26, 26) + "[reorg]\nstride=2\n\n[reorg]\n", ctx, &net), WH_OK) << ctx.msg;
    const wh_layer *l = &net->layers[0];
    EXPECT_EQ(l->out_shape.c, 256);
    EXPECT_EQ(l->out_shape.h, 13);
    EXPECT_EQ(l->out_shape.w, 13);
    // default stride 1: the identity
    EXPECT_TRUE(wh_shape_eq(net->layers[1].out_shape, l->out_shape));
    char buf[64];
    l->ops->describe(l, buf, sizeof(buf));
    EXPECT_STREQ(buf, "/2");
    wh_net_cost cost;
    wh_layer_cost(l, &cost);
    EXPECT_EQ(cost.darknet_flops, 0.0);
    EXPECT_EQ(cost.params, 0u);
    // pruning: a new channel space whose producers keep their channels
    EXPECT_EQ(l->ops->flow, WH_FLOW_NEW);
    wh_layer_facts f;
    wh_layer_facts_get(l, &f);
    EXPECT_EQ(f.keeps_producers, 1);
    EXPECT_EQ(ctx.n_warn_total, 0);
    wh_net_destroy(net);
    ASSERT_EQ(create(net_section(1, 64, 26, 26) + "[reorg3d]\nstride=2\nreverse=1\n", ctx, &net), WH_OK) << ctx.msg;
    EXPECT_EQ(net->layers[0].out_shape.c, 16);
    EXPECT_EQ(net->layers[0].out_shape.h, 52);
    net->layers[0].ops->describe(&net->layers[0], buf, sizeof(buf));
    EXPECT_STREQ(buf, "/2 reverse");
    wh_net_destroy(net);
}

// The reorg reads NCHW only: in a blocked network the net reorders its input
// (and the gradient back); output and input gradient are the plain network's.
TEST(Reorg, BlockedProducerIsReorderedForIt)
{
    const std::string text = net_section(1, 3, 4, 6) +
                             "[convolutional]\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=linear\n\n"
                             "[reorg]\nstride=2\n";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *nets[2] = {nullptr, nullptr};
    for (int blocked = 0; blocked < 2; blocked++) {
        wh_cfg *cfg = nullptr;
        ASSERT_EQ(wh_cfg_parse_string(text.c_str(), "test.cfg", &cfg, &ctx), WH_OK);
        wh_net_opts o = {};
        o.train = 1;
        o.blocked = blocked;
        ASSERT_EQ(wh_net_create(cfg, &o, &nets[blocked], &ctx), WH_OK) << ctx.msg;
        wh_cfg_free(cfg);
        wh_net_init_weights(nets[blocked], 5);
        for (int i = 0; i < 3 * 4 * 6; i++) nets[blocked]->input[i] = (float)((i * 7) % 11) / 11.f - 0.5f;
        ASSERT_EQ(wh_net_forward(nets[blocked], 1, &ctx), WH_OK) << ctx.msg;
        wh_net_zero_douts(nets[blocked]);
        wh_layer *l = &nets[blocked]->layers[1];
        EXPECT_EQ(l->out_layout, WH_LAYOUT_NCHW);
        EXPECT_EQ(l->in_layout[0], WH_LAYOUT_NCHW);
        for (size_t i = 0; i < wh_shape_count(l->out_shape); i++) l->dout[i] = (float)(i % 13) - 6.f;
        ASSERT_EQ(wh_net_backward_layer(nets[blocked], 1, nullptr, &ctx), WH_OK) << ctx.msg;
    }
    const wh_layer *p = &nets[0]->layers[1], *b = &nets[1]->layers[1];
    for (size_t i = 0; i < wh_shape_count(p->out_shape); i++) EXPECT_NEAR(b->out[i], p->out[i], 1e-5f) << i;
    // the conv's dout, read in its own layout
    const wh_layer *cp = &nets[0]->layers[0], *cb = &nets[1]->layers[0];
    wh_tensor tb = {cb->dout, cb->out_shape, cb->out_layout};
    for (int ch = 0; ch < 16; ch++)
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 6; x++)
                EXPECT_EQ(cb->dout[wh_tensor_offset(&tb, 0, ch, y, x)], cp->dout[(ch * 4 + y) * 6 + x]);
    wh_net_destroy(nets[0]);
    wh_net_destroy(nets[1]);
}

TEST(Reorg, Errors)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = nullptr;
    // malformed and out-of-range keys name their line
    EXPECT_EQ(create(net_section(1, 4, 8, 8) + "[reorg]\nstride=two\n", ctx, &net), WH_ERR_CFG);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:9"), std::string::npos) << ctx.msg;
    EXPECT_NE(std::string(ctx.msg).find("stride"), std::string::npos) << ctx.msg;
    EXPECT_EQ(net, nullptr);
    EXPECT_EQ(create(net_section(1, 4, 8, 8) + "[reorg]\nstride=0\n", ctx, &net), WH_ERR_CFG);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:9"), std::string::npos) << ctx.msg;
    EXPECT_EQ(create(net_section(1, 4, 8, 8) + "[reorg3d]\nstride=2\nreverse=2\n", ctx, &net), WH_ERR_CFG);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:10"), std::string::npos) << ctx.msg;
    // sizes darknet would index outside of: the section's line and why
    EXPECT_EQ(create(net_section(1, 4, 8, 7) + "[reorg]\nstride=2\n", ctx, &net), WH_ERR_SHAPE);
    EXPECT_NE(std::string(ctx.msg).find("test.cfg:8"), std::string::npos) << ctx.msg;
    EXPECT_NE(std::string(ctx.msg).find("multiples of the stride"), std::string::npos) << ctx.msg;
    EXPECT_EQ(create(net_section(1, 2, 8, 8) + "[reorg]\nstride=2\n", ctx, &net), WH_ERR_SHAPE);
    EXPECT_NE(std::string(ctx.msg).find("stride^2"), std::string::npos) << ctx.msg;
    EXPECT_EQ(create(net_section(1, 6, 8, 8) + "[reorg]\nstride=2\nreverse=1\n", ctx, &net), WH_ERR_SHAPE);
    EXPECT_EQ(create(net_section(1, 8, 8, 8) + "[reorg3d]\nstride=2\nreverse=1\n", ctx, &net), WH_ERR_SHAPE);
    EXPECT_NE(std::string(ctx.msg).find("stride^4"), std::string::npos) << ctx.msg;
    EXPECT_EQ(net, nullptr);
    // [reorg3d] has no channel condition: 2 channels are fine
    ASSERT_EQ(create(net_section(1, 2, 8, 8) + "[reorg3d]\nstride=2\n", ctx, &net), WH_OK) << ctx.msg;
    wh_net_destroy(net);
}

}  // namespace
