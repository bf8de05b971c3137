// Pruning around the multiplying layers [scale_channels] and [sam]: no
// channel that reaches either input of a multiply may be pruned, even
// through a shortcut or a route, nor a channel coupled with such a channel by
// a shortcut, since a pruned channel's constant times a data-dependent factor
// is not a constant. The convolutions away from the multiplies stay
// prunable, and the compact network computes what the masked full one does.
#include "model_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include "pruning/prune.h"
#include "pruning/sparsity.h"
}

namespace {

// Layers (16x16x3 input):
//   0 A conv 3x3 (16)       stem
//   1 B conv 1x1 (8)        prunable: feeds C only
//   2 C conv 1x1 (16)       residual partner of A
//   3 shortcut A + C        -> reaches the SE multiply: A and C keep all
//   4 maxpool 16/16         global max: squeeze (16x1x1)
//   5 E conv 1x1 (4)        prunable: feeds F only
//   6 F conv 1x1 (16) logistic, excitation: read by the multiply
//   7 scale_channels from=3 (shortcut * F)
//   8 G conv 1x1 (12)       reaches the sam through the route
//   9 H conv 3x3 (12)       reaches the sam through the route
//  10 K conv 1x1 (12)       coupled with H by the shortcut below
//  11 shortcut K + H
//  12 route 9,8 (24)        the sam's features
//  13 I conv 1x1 (24) logistic, attention: read by the sam
//  14 sam from=-2
//  15 route -1,11 (36)
//  16 P conv 1x1 (16)       prunable
//  17 conv 1x1 (8) linear, no BN: the output
// Every conv reading a prunable channel is 1x1 without padding, so folding
// the pruned channels' constants is exact.
const char *kCfg = R"([net]
width=16
height=16
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
filters=8
size=1
stride=1
pad=0
activation=leaky
[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
pad=0
activation=mish
[shortcut]
from=-3
activation=linear
[maxpool]
size=16
stride=16
padding=0
[convolutional]
batch_normalize=1
filters=4
size=1
stride=1
pad=0
activation=leaky
[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
pad=0
activation=logistic
[scale_channels]
from=3
[convolutional]
batch_normalize=1
filters=12
size=1
stride=1
pad=0
activation=leaky
[convolutional]
batch_normalize=1
filters=12
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
activation=leaky
[shortcut]
from=-2
activation=linear
[route]
layers=9,8
[convolutional]
batch_normalize=1
filters=24
size=1
stride=1
pad=0
activation=logistic
[sam]
from=-2
[route]
layers=-1,11
[convolutional]
batch_normalize=1
filters=16
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

const std::set<int> kPrunable = {1, 5, 16};

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
            const std::string n = pp->name;
            for (size_t t = 0; t < pp->count; t++) {
                if (n == "scales") pp->data[t] = 0.5f + uni(s);
                else if (n == "biases") pp->data[t] = betas ? 0.4f * (uni(s) - 0.5f) : 0.f;
                else if (n == "rolling_mean") pp->data[t] = 0.2f * (uni(s) - 0.5f);
                else if (n == "rolling_variance") pp->data[t] = 0.5f + uni(s);
            }
        }
    }
}

// Every channel of input k of layer i is fixed (never pruned).
void expect_inputs_fixed(const wh_net *net, const wh_depgraph &g, int i)
{
    const wh_layer *l = &net->layers[i];
    for (int k = 0; k < l->n_in; k++)
        for (int c = 0; c < l->in_shape[k].c; c++) {
            const int s = wh_depgraph_src(&g, l->in[k], c);
            EXPECT_TRUE(s < 0 || g.set[s] < 0) << "layer " << i << " input " << k << " channel " << c;
        }
}

TEST(MulLayersPrune, ChannelsReachingTheMultipliesAreNotPrunable)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = wht::cfg_net(kCfg);
    ASSERT_NE(net, nullptr);
    ASSERT_STREQ(net->layers[7].ops->type, "scale_channels");
    ASSERT_STREQ(net->layers[14].ops->type, "sam");
    // stage 1's prunable set (sparsity training)
    wh_prunable p;
    ASSERT_EQ(wh_prunable_find(net, nullptr, 0, &p, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(std::set<int>(p.layer, p.layer + p.n_layers), kPrunable);
    wh_prunable_free(&p);
    for (int i = 0; i < net->n_layers; i++) {
        if (net->layers[i].ops->flow == WH_FLOW_NEW && net->layers[i].n_params > 2) {  // the BN convs
            EXPECT_EQ(wh_prunable_blocked(net, i), !kPrunable.count(i)) << "layer " << i;
        }
    }
    // the dependency analysis, with stage 1's units and with every BN conv a unit
    for (int all = 0; all < 2; all++) {
        SCOPED_TRACE(all ? "all_bn_convs" : "default units");
        wh_depgraph_opts o = {};
        o.all_bn_convs = all;
        wh_depgraph g;
        ASSERT_EQ(wh_depgraph_build(net, &o, &g, &ctx), WH_OK) << ctx.msg;
        expect_inputs_fixed(net, g, 7);
        expect_inputs_fixed(net, g, 14);
        std::set<int> free_layers;  // units with a channel that may go
        for (int x = 0; x < g.n_channels; x++)
            if (g.set[x] >= 0) free_layers.insert(g.unit_layer[g.chan_unit[x]]);
        EXPECT_EQ(free_layers, kPrunable);
        // K (10) reaches no multiply but shares H's masks through the shortcut
        for (int c = 0; c < 12; c++) {
            const int s = wh_depgraph_src(&g, 10, c);
            EXPECT_TRUE(s < 0 || g.set[s] < 0) << "K channel " << c;
        }
        wh_depgraph_free(&g);
    }
    wh_net_destroy(net);
}

// Max |a - b| and max |a| over the output layer (17).
void output_error(const wh_net *a, const wh_net *b, double *err, double *scale)
{
    *err = *scale = 0;
    const wh_layer *la = &a->layers[a->n_layers - 1], *lb = &b->layers[b->n_layers - 1];
    ASSERT_TRUE(wh_shape_eq(la->out_shape, lb->out_shape));
    for (size_t t = 0; t < wh_shape_count(la->out_shape); t++) {
        *err = std::max(*err, (double)std::fabs(la->out[t] - lb->out[t]));
        *scale = std::max(*scale, (double)std::fabs(la->out[t]));
    }
}

// Prunes about half of every free set, builds the compact network and
// compares it with the full one masked the same way, on one random input.
void prune_and_compare(bool betas, bool all_bn_convs, uint64_t seed)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *full = wht::cfg_net(kCfg);
    ASSERT_NE(full, nullptr);
    randomise(full, seed, betas);
    wh_depgraph_opts o = {};
    o.all_bn_convs = all_bn_convs;
    wh_depgraph g;
    ASSERT_EQ(wh_depgraph_build(full, &o, &g, &ctx), WH_OK) << ctx.msg;
    // keep odd sets, and the first channel of every unit
    std::vector<unsigned char> keep(g.n_channels + 1);
    for (int x = 0; x < g.n_channels; x++) keep[x] = g.set[x] < 0 || g.set[x] % 2 == 1;
    for (int u = 0; u < g.n_units; u++) keep[g.unit_off[u]] = 1;
    int kept = 0;
    for (int x = 0; x < g.n_channels; x++) kept += keep[x];
    EXPECT_LT(kept, g.n_channels) << "the mask prunes something";
    char *cfg = nullptr;
    wh_net *small = nullptr;
    wh_net_opts no = {};
    no.batch = 1;
    ASSERT_EQ(wh_prune_build(full, kCfg, &g, keep.data(), 1, &no, &cfg, &small, &ctx), WH_OK) << ctx.msg;
    free(cfg);
    wh_net_cost analytic, built;
    wh_prune_cost(full, &g, keep.data(), &analytic);
    wh_net_cost_total(small, &built);
    EXPECT_EQ(analytic.params, built.params);
    // the multiplies keep their shapes
    EXPECT_TRUE(wh_shape_eq(small->layers[7].out_shape, full->layers[7].out_shape));
    EXPECT_TRUE(wh_shape_eq(small->layers[14].out_shape, full->layers[14].out_shape));
    for (int i : kPrunable) EXPECT_LT(small->layers[i].out_shape.c, full->layers[i].out_shape.c) << "layer " << i;
    wh_prune_mask_net(full, &g, keep.data(), !betas);
    uint64_t s = seed + 2;
    const size_t n = wh_shape_count(full->in_shape);
    for (size_t t = 0; t < n; t++) full->input[t] = small->input[t] = uni(s);
    ASSERT_EQ(wh_net_forward(full, 0, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_forward(small, 0, &ctx), WH_OK) << ctx.msg;
    double err, scale;
    output_error(full, small, &err, &scale);
    EXPECT_GT(scale, 0.0);
    EXPECT_LE(err, 1e-4 * scale) << "max error " << err << " of " << scale;
    wh_net_destroy(small);
    wh_depgraph_free(&g);
    wh_net_destroy(full);
}

TEST(MulLayersPrune, CompactEqualsMaskedFull)
{
    for (int all = 0; all < 2; all++)
        for (int betas = 0; betas < 2; betas++) {
            SCOPED_TRACE(std::string(all ? "all_bn_convs" : "default units") + (betas ? ", betas folded" : ""));
            prune_and_compare(betas, all, 31 + all * 2 + betas);
        }
}

}  // namespace
