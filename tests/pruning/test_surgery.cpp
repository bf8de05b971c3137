// Stage 2: the channel-dependency analysis against counts known from the
// YOLO graphs, and the surgery: the compact network computes what the masked
// full network computes (exactly with zero betas; with nonzero betas after
// folding, exactly where no zero padding interferes), and the analytic cost
// of a mask equals the cost of the network built from it.
#include "model_util.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

extern "C" {
#include "pruning/prune.h"
}

namespace {

std::string model_cfg(const char *model, int size, double wm) { return wht::model_cfg(model, 3, size, wm); }

wh_net *build_text(const std::string &text) { return wht::cfg_net(text); }

uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
float uni(uint64_t &s) { return (float)((mix(s++) >> 11) * (1.0 / 9007199254740992.0)); }

// Random weights, BN scales, shifts (zero when !betas) and running statistics.
void randomise(wh_net *net, uint64_t seed, bool betas)
{
    wh_net_init_weights(net, seed);
    uint64_t s = seed * 7919;
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        for (int p = 0; p < l->n_params; p++) {
            wh_param *pp = &l->params[p];
            std::string n = pp->name;
            for (size_t t = 0; t < pp->count; t++) {
                if (n == "scales") pp->data[t] = 0.5f + uni(s);
                else if (n == "biases") pp->data[t] = betas ? 0.4f * (uni(s) - 0.5f) : 0.f;
                else if (n == "rolling_mean") pp->data[t] = 0.2f * (uni(s) - 0.5f);
                else if (n == "rolling_variance") pp->data[t] = 0.5f + uni(s);
            }
        }
    }
}

// A random mask: each coupled set kept with probability 0.6, every unit keeps one.
std::vector<unsigned char> random_keep(const wh_depgraph &g, uint64_t seed)
{
    std::vector<int> set_keep(g.n_sets + 1);
    uint64_t s = seed;
    for (int k = 0; k < g.n_sets; k++) set_keep[k] = uni(s) < 0.6f;
    for (int u = 0; u < g.n_units; u++) {
        bool any = false;
        for (int x = g.unit_off[u]; x < g.unit_off[u + 1]; x++) any |= g.set[x] < 0 || set_keep[g.set[x]];
        if (!any) set_keep[g.set[g.unit_off[u]]] = 1;
    }
    std::vector<unsigned char> keep(g.n_channels + 1);
    for (int x = 0; x < g.n_channels; x++) keep[x] = g.set[x] < 0 || set_keep[g.set[x]];
    return keep;
}

void fill_input(wh_net *net, uint64_t seed)
{
    uint64_t s = seed;
    const size_t n = (size_t)net->in_shape.n * net->in_shape.c * net->in_shape.h * net->in_shape.w;
    for (size_t t = 0; t < n; t++) net->input[t] = uni(s);
}

// Max |a - b| over the outputs of layers nobody reads (the detection
// layers), and the max |a| there; margin > 0 compares only pixels at least
// margin from the border.
void output_error(const wh_net *a, const wh_net *b, int margin, double *err, double *scale)
{
    *err = *scale = 0;
    std::vector<int> read(a->n_layers, 0);
    for (int i = 0; i < a->n_layers; i++)
        for (int k = 0; k < a->layers[i].n_in; k++)
            if (a->layers[i].in[k] >= 0) read[a->layers[i].in[k]] = 1;
    for (int i = 0; i < a->n_layers; i++) {
        if (read[i]) continue;
        const wh_shape sa = a->layers[i].out_shape, sb = b->layers[i].out_shape;
        ASSERT_EQ(sa.c, sb.c) << "output layer " << i;
        ASSERT_EQ(a->layers[i].out_layout, WH_LAYOUT_NCHW);
        for (int n = 0; n < sa.n; n++)
            for (int c = 0; c < sa.c; c++)
                for (int y = margin; y < sa.h - margin; y++)
                    for (int x = margin; x < sa.w - margin; x++) {
                        const size_t t = (((size_t)n * sa.c + c) * sa.h + y) * sa.w + x;
                        *err = std::max(*err, (double)std::fabs(a->layers[i].out[t] - b->layers[i].out[t]));
                        *scale = std::max(*scale, (double)std::fabs(a->layers[i].out[t]));
                    }
    }
}

struct Pruned {
    wh_net *full = nullptr, *small = nullptr;
    wh_depgraph g{};
    std::vector<unsigned char> keep;
    ~Pruned()
    {
        wh_net_destroy(full);
        wh_net_destroy(small);
        wh_depgraph_free(&g);
    }
};

// Full network with random parameters, a random mask over every conv with BN,
// the compact network; the full one then masked (gammas, and betas unless
// betas) and both run on the same random input.
void prune_and_run(Pruned &P, const std::string &text, bool betas, bool fold, uint64_t seed)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    P.full = build_text(text);
    ASSERT_NE(P.full, nullptr);
    randomise(P.full, seed, betas);
    wh_depgraph_opts o = {};
    o.all_bn_convs = 1;
    ASSERT_EQ(wh_depgraph_build(P.full, &o, &P.g, &ctx), WH_OK) << ctx.msg;
    P.keep = random_keep(P.g, seed + 1);
    char *cfg = nullptr;
    wh_net_opts no = {};
    no.batch = 1;
    ASSERT_EQ(wh_prune_build(P.full, text.c_str(), &P.g, P.keep.data(), fold, &no, &cfg, &P.small, &ctx), WH_OK)
        << ctx.msg;
    free(cfg);
    wh_net_cost analytic, built;
    wh_prune_cost(P.full, &P.g, P.keep.data(), &analytic);
    wh_net_cost_total(P.small, &built);
    EXPECT_EQ(analytic.params, built.params);
    EXPECT_NEAR(analytic.conv_flops, built.conv_flops, 1e-9 * built.conv_flops);
    EXPECT_NEAR(analytic.darknet_flops, built.darknet_flops, 1e-9 * built.darknet_flops);
    wh_prune_mask_net(P.full, &P.g, P.keep.data(), !betas);
    fill_input(P.full, seed + 2);
    memcpy(P.small->input, P.full->input,
           sizeof(float) * P.full->in_shape.n * P.full->in_shape.c * P.full->in_shape.h * P.full->in_shape.w);
    ASSERT_EQ(wh_net_forward(P.full, 0, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_forward(P.small, 0, &ctx), WH_OK) << ctx.msg;
}

int kept_total(const Pruned &P)
{
    int k = 0;
    for (int x = 0; x < P.g.n_channels; x++) k += P.keep[x];
    return k;
}

}  // namespace

TEST(Depgraph, ShortcutChainsOfYolov4ShareOneMask)
{
    // YOLOv4's CSP stages hold 1, 2, 8, 8, 4 residual blocks on 64, 64, 128,
    // 256, 512 channels: a block's shortcut couples the stage's first conv
    // with every block's output, so each stage gives sets of 2, 3, 9, 9, 5.
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = build_text(model_cfg("yolov4", 64, 1.0));
    ASSERT_NE(net, nullptr);
    wh_depgraph g;
    ASSERT_EQ(wh_depgraph_build(net, nullptr, &g, &ctx), WH_OK) << ctx.msg;
    std::map<int, int> sizes;  // set size -> number of sets
    for (int k = 0; k < g.n_sets; k++) sizes[g.set_size[k]]++;
    EXPECT_EQ(sizes[2], 64);
    EXPECT_EQ(sizes[3], 64);
    EXPECT_EQ(sizes[9], 128 + 256);
    EXPECT_EQ(sizes[5], 512);
    EXPECT_EQ(sizes.size(), 5u) << "only singletons besides the chains";
    // every shortcut's inputs are coupled channel by channel
    int shortcuts = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        if (l->ops->flow != WH_FLOW_ADD) continue;
        shortcuts++;
        for (int c = 0; c < l->out_shape.c; c++) {
            const int a = wh_depgraph_src(&g, l->in[0], c), b = wh_depgraph_src(&g, l->in[1], c);
            ASSERT_GE(a, 0);
            EXPECT_EQ(g.set[a], g.set[b]) << "shortcut " << i << " channel " << c;
        }
    }
    EXPECT_EQ(shortcuts, 23);
    // the prunable set is stage 1's: 104 units (heads, SPP and upsample feeders excluded)
    EXPECT_EQ(g.n_units, 104);
    for (int x = 0; x < g.n_channels; x++) ASSERT_GE(g.set[x], 0) << "nothing fixed in yolov4's units";
    wh_depgraph_free(&g);
    wh_net_destroy(net);
}

TEST(Depgraph, GroupedRoutesCoupleTheirHalvesAndOutputsAreFixed)
{
    // YOLOv4-tiny: three CSP blocks each slice the second half of a 64, 128,
    // 256-channel conv (route groups=2 group_id=1). With every BN conv a unit,
    // channel j of the first half is coupled with channel j of the second.
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = build_text(model_cfg("yolov4-tiny", 64, 1.0));
    ASSERT_NE(net, nullptr);
    wh_depgraph g;
    wh_depgraph_opts o = {};
    o.all_bn_convs = 1;
    ASSERT_EQ(wh_depgraph_build(net, &o, &g, &ctx), WH_OK) << ctx.msg;
    std::map<int, int> sizes;
    for (int k = 0; k < g.n_sets; k++) sizes[g.set_size[k]]++;
    EXPECT_EQ(sizes[2], 32 + 64 + 128);
    EXPECT_EQ(sizes.size(), 2u);
    int sliced = 0;
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer_facts f;
        wh_layer_facts_get(&net->layers[i], &f);
        if (net->layers[i].ops->flow != WH_FLOW_CONCAT || f.slice_groups != 2) continue;
        sliced++;
        const int src = net->layers[i].in[0], half = net->layers[src].out_shape.c / 2;
        for (int j = 0; j < half; j++)
            EXPECT_EQ(g.set[wh_depgraph_src(&g, src, j)], g.set[wh_depgraph_src(&g, src, j + half)]);
    }
    EXPECT_EQ(sliced, 3);
    // the detection convs have no BN: not units, and their outputs are -1
    for (int i = 0; i < net->n_layers; i++)
        if (!strcmp(net->layers[i].ops->type, "yolo")) {
            EXPECT_EQ(wh_depgraph_src(&g, i, 0), -1) << "yolo layer " << i;
        }
    wh_depgraph_free(&g);
    // default rules: the sliced convs are not units, so no set of two
    ASSERT_EQ(wh_depgraph_build(net, nullptr, &g, &ctx), WH_OK);
    for (int k = 0; k < g.n_sets; k++) EXPECT_EQ(g.set_size[k], 1);
    wh_depgraph_free(&g);
    wh_net_destroy(net);
}

class Surgery : public ::testing::TestWithParam<const char *> {};

TEST_P(Surgery, ZeroBetasCompactEqualsMaskedFull)
{
    Pruned P;
    prune_and_run(P, model_cfg(GetParam(), 128, 0.25), false, false, 11);
    ASSERT_NE(P.small, nullptr);
    EXPECT_LT(kept_total(P), P.g.n_channels * 0.8) << "the mask prunes something";
    double err, scale;
    output_error(P.full, P.small, 0, &err, &scale);
    EXPECT_GT(scale, 0.0);
    EXPECT_LE(err, 1e-4 * scale) << GetParam() << ": max error " << err << " of " << scale;
}

TEST_P(Surgery, FoldingBetasHelpsAndNoFoldingDoesNot)
{
    // With nonzero betas the pruned channels carry constants. Folding them
    // is exact except near zero-padded borders, which in a deep network at
    // a small size reach most of the output; folding still must bring the
    // error well below that of dropping the constants.
    Pruned F, N;
    const std::string text = model_cfg(GetParam(), 256, 0.25);
    prune_and_run(F, text, true, true, 21);
    prune_and_run(N, text, true, false, 21);
    ASSERT_NE(F.small, nullptr);
    ASSERT_NE(N.small, nullptr);
    double ef, sf, en, sn;
    output_error(F.full, F.small, 0, &ef, &sf);
    output_error(N.full, N.small, 0, &en, &sn);
    EXPECT_GT(en, 1e-3 * sn) << "dropping constants must change the output";
    EXPECT_LT(ef, 0.5 * en) << GetParam() << ": folded " << ef << " vs unfolded " << en;
}

INSTANTIATE_TEST_SUITE_P(Yolo, Surgery, ::testing::Values("yolov3", "yolov4", "yolov4-tiny"));

TEST(Surgery, FoldingIsExactWithoutPaddingNearby)
{
    // Every prunable channel here reaches only 1x1 convolutions (through a
    // shortcut, a pool, an upsample and a route), so its constant is the
    // same at every pixel and folding must reproduce the masked network.
    const std::string text = R"([net]
width=32
height=32
channels=3
[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=12
size=1
stride=1
pad=0
activation=mish
[convolutional]
batch_normalize=1
filters=12
size=1
stride=1
pad=0
activation=leaky
[shortcut]
from=-2
activation=linear
[maxpool]
size=2
stride=2
[upsample]
stride=2
[route]
layers=-1,-5
[convolutional]
batch_normalize=1
filters=10
size=1
stride=1
pad=0
activation=leaky
[convolutional]
filters=8
size=1
stride=1
pad=0
activation=linear
)";
    Pruned F;
    prune_and_run(F, text, true, true, 5);
    ASSERT_NE(F.small, nullptr);
    EXPECT_LT(kept_total(F), F.g.n_channels);
    double err, scale;
    output_error(F.full, F.small, 0, &err, &scale);
    EXPECT_LE(err, 1e-4 * scale) << "max error " << err << " of " << scale;
    Pruned N;
    prune_and_run(N, text, true, false, 5);
    output_error(N.full, N.small, 0, &err, &scale);
    EXPECT_GT(err, 1e-2 * scale) << "without folding the constants are lost";
}
