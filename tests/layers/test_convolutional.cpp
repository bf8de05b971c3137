// [convolutional]: oneDNN convolution + darknet batch norm / bias + activation,
// against a naive float64 reference; gradients by finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "layers/harness.h"

using wht::Vec;

namespace {

struct ConvSpec {
    int n, c, h, w;        // input
    int filters, size, stride, pad, groups, bn;
    const char *act;
};

std::string cfg_for(const ConvSpec &s)
{
    std::ostringstream o;
    o << "[net]\nbatch=" << s.n << "\nsubdivisions=1\nwidth=" << s.w << "\nheight=" << s.h
      << "\nchannels=" << s.c << "\n\n[upsample]\nstride=1\n\n[convolutional]\n"
      << "batch_normalize=" << s.bn << "\nfilters=" << s.filters << "\nsize=" << s.size
      << "\nstride=" << s.stride << "\npadding=" << s.pad << "\ngroups=" << s.groups
      << "\nactivation=" << s.act << "\n";
    return o.str();
}

// The darknet layer in float64: params in darknet order
// (biases, [scales, rolling_mean, rolling_variance], weights).
Vec conv_ref(const ConvSpec &s, const Vec &x, const std::vector<Vec> &p, bool train)
{
    const Vec &bias = p[0];
    const Vec &wt = p[s.bn ? 4 : 1];
    const int oh = (s.h + 2 * s.pad - s.size) / s.stride + 1;
    const int ow = (s.w + 2 * s.pad - s.size) / s.stride + 1;
    const int cg = s.c / s.groups, fg = s.filters / s.groups;
    Vec z((size_t)s.n * s.filters * oh * ow, 0.0);
    for (int b = 0; b < s.n; b++)
        for (int f = 0; f < s.filters; f++) {
            int g = f / fg;
            for (int y = 0; y < oh; y++)
                for (int xx = 0; xx < ow; xx++) {
                    double acc = 0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int ky = 0; ky < s.size; ky++)
                            for (int kx = 0; kx < s.size; kx++) {
                                int iy = y * s.stride - s.pad + ky, ix = xx * s.stride - s.pad + kx;
                                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                                int c = g * cg + ci;
                                acc += x[(((size_t)b * s.c + c) * s.h + iy) * s.w + ix] *
                                       wt[(((size_t)f * cg + ci) * s.size + ky) * s.size + kx];
                            }
                    z[(((size_t)b * s.filters + f) * oh + y) * ow + xx] = acc;
                }
        }
    const size_t hw = (size_t)oh * ow;
    for (int f = 0; f < s.filters; f++) {
        double mean = 0, sd = 1;
        if (s.bn) {
            if (train) {
                double m = (double)s.n * hw, sum = 0, v = 0;
                for (int b = 0; b < s.n; b++)
                    for (size_t i = 0; i < hw; i++) sum += z[((size_t)b * s.filters + f) * hw + i];
                mean = sum / m;
                for (int b = 0; b < s.n; b++)
                    for (size_t i = 0; i < hw; i++) {
                        double d = z[((size_t)b * s.filters + f) * hw + i] - mean;
                        v += d * d;
                    }
                sd = std::sqrt(v / (m - 1));  // darknet: unbiased batch variance
            } else {
                mean = p[2][f];
                sd = std::sqrt(p[3][f]);
            }
        }
        for (int b = 0; b < s.n; b++)
            for (size_t i = 0; i < hw; i++) {
                double &v = z[((size_t)b * s.filters + f) * hw + i];
                if (s.bn) v = p[1][f] * (v - mean) / (sd + 1e-6) + bias[f];
                else v = v + bias[f];
                v = wht::act_ref(s.act, v);
            }
    }
    return z;
}

void run_case(const ConvSpec &s, bool train, uint64_t seed)
{
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c, cfg_for(s), seed, {"rolling_variance"}));
    ASSERT_EQ(c.l->out_shape.c, s.filters);
    wht::check_layer(
        c, [&](const std::vector<Vec> &in, const std::vector<Vec> &p) { return conv_ref(s, in[0], p, train); },
        train);
}

}  // namespace

TEST(Convolutional, Plain3x3Leaky) { run_case({1, 3, 7, 7, 4, 3, 1, 1, 1, 0, "leaky"}, true, 1); }
TEST(Convolutional, Stride2OddSizeBatch2) { run_case({2, 3, 9, 7, 5, 3, 2, 1, 1, 0, "linear"}, true, 2); }
TEST(Convolutional, OneByOneLogistic) { run_case({2, 6, 5, 5, 3, 1, 1, 0, 1, 0, "logistic"}, true, 3); }
TEST(Convolutional, GroupsMish) { run_case({2, 4, 6, 5, 6, 3, 1, 1, 2, 0, "mish"}, true, 4); }
TEST(Convolutional, BatchNormTrainLeaky) { run_case({2, 3, 6, 5, 4, 3, 1, 1, 1, 1, "leaky"}, true, 5); }
TEST(Convolutional, BatchNormTrainStride2Swish) { run_case({3, 4, 7, 7, 8, 3, 2, 1, 1, 1, "swish"}, true, 6); }
TEST(Convolutional, BatchNormTrainGroupsRelu) { run_case({2, 4, 5, 6, 4, 3, 1, 1, 4, 1, "relu"}, true, 7); }
TEST(Convolutional, BatchNormInferenceMish) { run_case({2, 3, 5, 5, 4, 3, 1, 1, 1, 1, "mish"}, false, 8); }
TEST(Convolutional, NoBatchNormInferenceLeaky) { run_case({2, 3, 6, 7, 5, 3, 2, 1, 1, 0, "leaky"}, false, 10); }
TEST(Convolutional, Kernel5Pad2Stride2Tanh) { run_case({1, 2, 11, 9, 3, 5, 2, 2, 1, 1, "tanh"}, true, 9); }

TEST(Convolutional, RunningStatisticsMoveOnePercent)
{
    ConvSpec s = {2, 3, 5, 5, 4, 3, 1, 1, 1, 1, "linear"};
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c, cfg_for(s), 11, {"rolling_variance"}));
    Vec before_m = c.params[2], before_v = c.params[3];
    ASSERT_EQ(wh_net_forward_layer(c.net, 1, 1, &c.ctx), WH_OK) << c.ctx.msg;
    // The batch statistics of the reference's conv output, recomputed here.
    std::vector<Vec> p = c.params;
    p[1].assign(s.filters, 1.0);
    p[0].assign(s.filters, 0.0);
    ConvSpec lin = s;
    lin.bn = 0;
    std::vector<Vec> plain = {Vec(s.filters, 0.0), p[4]};
    Vec z = conv_ref(lin, c.in[0], plain, false);
    const size_t hw = 25;
    for (int f = 0; f < s.filters; f++) {
        double sum = 0, v = 0, m = 2.0 * hw;
        for (int b = 0; b < 2; b++)
            for (size_t i = 0; i < hw; i++) sum += z[((size_t)b * s.filters + f) * hw + i];
        double mean = sum / m;
        for (int b = 0; b < 2; b++)
            for (size_t i = 0; i < hw; i++) v += std::pow(z[((size_t)b * s.filters + f) * hw + i] - mean, 2);
        v /= (m - 1);
        EXPECT_NEAR(c.l->params[2].data[f], 0.99 * before_m[f] + 0.01 * mean, 1e-5);
        EXPECT_NEAR(c.l->params[3].data[f], 0.99 * before_v[f] + 0.01 * v, 1e-5);
    }
}

TEST(Convolutional, ParamsAndFlopsAsDarknetCounts)
{
    // darknet layer 0 of yolov4: 32 3x3/1 on 416x416x3 -> 0.299 BF, 864 + 2*32 params.
    wht::LayerCase c;
    ASSERT_TRUE(wht::build(c, "[net]\nwidth=416\nheight=416\nchannels=3\n[convolutional]\nbatch_normalize=1\n"
                              "filters=32\nsize=3\nstride=1\npad=1\nactivation=mish\n", 1));
    wh_net_cost cost;
    wh_layer_cost(c.l, &cost);
    EXPECT_EQ(cost.params, 32u * 3 * 9 + 2 * 32);
    EXPECT_NEAR(cost.conv_flops, 2.0 * 32 * 3 * 9 * 416 * 416, 1.0);
    EXPECT_NEAR(cost.conv_flops / 1e9, 0.299, 0.0005);
}

TEST(Convolutional, BadKeysNameTheLine)
{
    const char *cases[][2] = {
        {"[net]\nwidth=8\nheight=8\n[convolutional]\nsize=3\n", "requires key 'filters'"},
        {"[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=-4\n", "out of range"},
        {"[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=4\nactivation=sigmoidal\n", "unknown value 'sigmoidal'"},
        {"[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=4x\n", "not an integer"},
        {"[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=4\ndilation=2\n", "not supported"},
        {"[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=4\ngroups=2\n", "groups=2"},
        // an unsupported key is parsed strictly: "1x" is not darknet's default 1
        {"[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=4\ndilation=1x\n", "not an integer"},
    };
    const int lines[] = {4, 5, 6, 5, 6, 5, 6};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_cfg *cfg = nullptr;
        ASSERT_EQ(wh_cfg_parse_string(cases[i][0], "bad.cfg", &cfg, &ctx), WH_OK);
        wh_net *net = nullptr;
        EXPECT_NE(wh_net_create(cfg, nullptr, &net, &ctx), WH_OK) << cases[i][0];
        EXPECT_EQ(net, nullptr);
        EXPECT_NE(std::string(ctx.msg).find(cases[i][1]), std::string::npos) << ctx.msg;
        std::string where = "bad.cfg:" + std::to_string(lines[i]);
        EXPECT_NE(std::string(ctx.msg).find(where), std::string::npos) << ctx.msg << " wants " << where;
        wh_cfg_free(cfg);
    }
}

namespace {
// An inference network (no training buffers) runs BN or the bias and the
// activation as post-ops of the oneDNN convolution; its forward must match
// the float64 darknet layer as the separate passes do.
void run_inference_net(const ConvSpec &s, uint64_t seed)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    ASSERT_EQ(wh_cfg_parse_string(cfg_for(s).c_str(), "conv.cfg", &cfg, &ctx), WH_OK) << ctx.msg;
    wh_net_opts no = {};
    no.batch = s.n;
    no.train = 0;
    wh_net *net = nullptr;
    ASSERT_EQ(wh_net_create(cfg, &no, &net, &ctx), WH_OK) << ctx.msg;
    wh_cfg_free(cfg);
    wh_layer *l = &net->layers[1];
    uint64_t r = seed * 2654435761u + 1;
    auto uni = [&]() {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        return (double)(r >> 11) / 9007199254740992.0;
    };
    std::vector<Vec> p(l->n_params);
    for (int k = 0; k < l->n_params; k++) {
        const bool var = !strcmp(l->params[k].name, "rolling_variance");
        p[k].resize(l->params[k].count);
        for (size_t i = 0; i < p[k].size(); i++) {
            p[k][i] = var ? 0.2 + uni() : 2 * uni() - 1;
            l->params[k].data[i] = (float)p[k][i];
        }
    }
    const size_t nin = (size_t)s.n * s.c * s.h * s.w;
    Vec x(nin);
    for (size_t i = 0; i < nin; i++) net->input[i] = (float)(x[i] = 4 * uni() - 2);
    ASSERT_EQ(wh_net_forward(net, 0, &ctx), WH_OK) << ctx.msg;
    const Vec want = conv_ref(s, x, p, false);
    ASSERT_EQ(want.size(), wh_shape_count(l->out_shape));
    for (size_t i = 0; i < want.size(); i++)
        ASSERT_NEAR(l->out[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << s.act << " bn " << s.bn << " at " << i;
    wh_net_destroy(net);
}
}  // namespace

TEST(Convolutional, InferenceNetFusedPostOpsMatchReference)
{
    const char *acts[] = {"linear", "leaky", "relu", "mish", "logistic", "swish", "tanh"};
    uint64_t seed = 40;
    for (const char *a : acts)
        for (int bn = 0; bn < 2; bn++) {
            run_inference_net({2, 3, 9, 7, 5, 3, 1, 1, 1, bn, a}, seed++);
            run_inference_net({1, 4, 8, 8, 6, 3, 2, 1, 2, bn, a}, seed++);  // grouped, stride 2
            run_inference_net({1, 16, 5, 5, 32, 1, 1, 0, 1, bn, a}, seed++); // blocked-layout sizes
        }
}
