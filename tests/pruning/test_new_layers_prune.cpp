// Pruning through [avgpool], [dropout] and [reorg]: a small network with
// prunable convolutions around them. The convolutions whose channels reach
// the reorg (through a route, through a shortcut, or coupled with such a one
// by a shortcut) stay out of the prunable set and keep every channel even
// when every conv with BN is a unit; the compact network computes what the
// masked full one computes (zero betas, and nonzero betas folded: every conv
// that reads a prunable channel is 1x1, so folding is exact here).
#include "model_util.h"

#include <gtest/gtest.h>

#include <algorithm>
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

std::string conv(int filters, int size, int stride = 1)
{
    return "[convolutional]\nbatch_normalize=1\nfilters=" + std::to_string(filters) + "\nsize=" +
           std::to_string(size) + "\nstride=" + std::to_string(stride) + "\npad=1\nactivation=leaky\n\n";
}

// Layer numbers in the comments; A..K are convs with BN.
std::string net_cfg()
{
    return "[net]\nbatch=1\nsubdivisions=1\nwidth=16\nheight=16\nchannels=3\n\n" +
           conv(16, 3) +                                  // 0 A
           conv(16, 1) +                                  // 1 B
           "[shortcut]\nfrom=-2\nactivation=linear\n\n"   // 2 A + B: A, B coupled
           "[dropout]\nprobability=0.5\n\n" +             // 3
           conv(16, 1) +                                  // 4 C: reaches the reorg through route 8
           conv(8, 1) +                                   // 5 D: through shortcut 7 and route 8
           conv(8, 3) +                                   // 6 E: likewise
           "[shortcut]\nfrom=-2\nactivation=linear\n\n"   // 7 D + E
           "[route]\nlayers=-1,-4\n\n"                    // 8 [7, 4]: 24 channels
           "[reorg]\nstride=2\n\n" +                      // 9 96 x 8 x 8
           conv(16, 1) +                                  // 10 F: reads the reorg
           "[route]\nlayers=4\n\n" +                      // 11 C again
           conv(16, 3) +                                  // 12 G
           "[shortcut]\nfrom=4\nactivation=linear\n\n" +  // 13 G + C: G coupled with C
           conv(16, 3, 2) +                               // 14 H: 8 x 8
           "[route]\nlayers=-1,10\n\n"                    // 15 [H, F]
           "[avgpool]\n\n" +                              // 16 32 x 1 x 1
           conv(16, 1) +                                  // 17 K
           "[convolutional]\nfilters=5\nsize=1\nstride=1\npad=1\nactivation=linear\n";  // 18 the output
}

const std::set<int> kReorgSide = {4, 5, 6, 12};  // C, D, E, G
const std::set<int> kPrunable = {0, 1, 10, 14, 17};

uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
float uni(uint64_t &s) { return (float)((mix(s++) >> 11) * (1.0 / 9007199254740992.0)); }

void randomise(wh_net *net, uint64_t seed, bool betas)
{
    wh_net_init_weights(net, seed);
    uint64_t s = seed * 7919;
    for (int i = 0; i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++) {
            wh_param *pp = &net->layers[i].params[p];
            const std::string n = pp->name;
            for (size_t t = 0; t < pp->count; t++) {
                if (n == "scales") pp->data[t] = 0.5f + uni(s);
                else if (n == "biases") pp->data[t] = betas ? 0.4f * (uni(s) - 0.5f) : 0.f;
                else if (n == "rolling_mean") pp->data[t] = 0.2f * (uni(s) - 0.5f);
                else if (n == "rolling_variance") pp->data[t] = 0.5f + uni(s);
            }
        }
}

TEST(NewLayersPrune, ReorgFeedersAndTheirPartnersAreNotPrunable)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = wht::cfg_net(net_cfg());
    ASSERT_NE(net, nullptr);
    ASSERT_EQ(net->n_layers, 19);
    ASSERT_EQ(net->layers[9].out_shape.c, 96);
    // stage 1's set
    wh_prunable p;
    ASSERT_EQ(wh_prunable_find(net, nullptr, 0, &p, &ctx), WH_OK) << ctx.msg;
    std::set<int> got(p.layer, p.layer + p.n_layers);
    EXPECT_EQ(got, kPrunable);
    wh_prunable_free(&p);
    for (int i : kReorgSide) EXPECT_TRUE(wh_prunable_blocked(net, i)) << "layer " << i;
    // the dependency graph, default rules: the same units
    wh_depgraph g;
    ASSERT_EQ(wh_depgraph_build(net, nullptr, &g, &ctx), WH_OK) << ctx.msg;
    std::set<int> units(g.unit_layer, g.unit_layer + g.n_units);
    EXPECT_EQ(units, kPrunable);
    wh_depgraph_free(&g);
    // every conv with BN a unit: those on the reorg's side are units whose
    // channels are all fixed; the others have prunable channels
    wh_depgraph_opts o = {};
    o.all_bn_convs = 1;
    ASSERT_EQ(wh_depgraph_build(net, &o, &g, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(g.n_units, 9);
    for (int u = 0; u < g.n_units; u++) {
        const int i = g.unit_layer[u];
        int fixed = 0;
        for (int x = g.unit_off[u]; x < g.unit_off[u + 1]; x++) fixed += g.set[x] < 0;
        if (kReorgSide.count(i)) {
            EXPECT_EQ(fixed, g.unit_off[u + 1] - g.unit_off[u]) << "layer " << i;
        } else {
            EXPECT_EQ(fixed, 0) << "layer " << i;
        }
    }
    // A and B are coupled by their shortcut (through it the dropout and C)
    for (int c = 0; c < 16; c++)
        EXPECT_EQ(g.set[wh_depgraph_src(&g, 0, c)], g.set[wh_depgraph_src(&g, 1, c)]);
    // the reorg's output is a space of its own, never pruned
    for (int c = 0; c < 96; c++) EXPECT_EQ(wh_depgraph_src(&g, 9, c), -1);
    wh_depgraph_free(&g);
    wh_net_destroy(net);
}

// A random mask over every conv with BN, the compact network, and both run.
void prune_and_compare(bool betas, uint64_t seed)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const std::string text = net_cfg();
    wh_net *full = wht::cfg_net(text);
    ASSERT_NE(full, nullptr);
    randomise(full, seed, betas);
    wh_depgraph g;
    wh_depgraph_opts o = {};
    o.all_bn_convs = 1;
    ASSERT_EQ(wh_depgraph_build(full, &o, &g, &ctx), WH_OK) << ctx.msg;
    std::vector<int> set_keep(g.n_sets + 1);
    uint64_t s = seed + 1;
    for (int k = 0; k < g.n_sets; k++) set_keep[k] = uni(s) < 0.5f;
    std::vector<unsigned char> keep(g.n_channels + 1);
    int kept = 0;
    for (int x = 0; x < g.n_channels; x++) kept += keep[x] = g.set[x] < 0 || set_keep[g.set[x]];
    EXPECT_LT(kept, g.n_channels);
    char *cfg = nullptr;
    wh_net *small = nullptr;
    wh_net_opts no = {};
    no.batch = 1;
    ASSERT_EQ(wh_prune_build(full, text.c_str(), &g, keep.data(), betas, &no, &cfg, &small, &ctx), WH_OK)
        << ctx.msg;
    free(cfg);
    // the prunable convs got smaller, the reorg's side did not
    int smaller = 0;
    for (int i = 0; i < full->n_layers; i++) {
        if (kReorgSide.count(i) || i == 9) {
            EXPECT_EQ(small->layers[i].out_shape.c, full->layers[i].out_shape.c) << "layer " << i;
        }
        smaller += small->layers[i].out_shape.c < full->layers[i].out_shape.c;
    }
    EXPECT_GT(smaller, 0);
    wh_net_cost analytic, built;
    wh_prune_cost(full, &g, keep.data(), &analytic);
    wh_net_cost_total(small, &built);
    EXPECT_EQ(analytic.params, built.params);
    EXPECT_NEAR(analytic.conv_flops, built.conv_flops, 1e-9 * built.conv_flops);
    wh_prune_mask_net(full, &g, keep.data(), !betas);
    uint64_t r = seed + 2;
    const size_t n_in = (size_t)3 * 16 * 16;
    for (size_t t = 0; t < n_in; t++) small->input[t] = full->input[t] = uni(r);
    ASSERT_EQ(wh_net_forward(full, 0, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_forward(small, 0, &ctx), WH_OK) << ctx.msg;
    const wh_layer *a = &full->layers[18], *b = &small->layers[18];
    ASSERT_TRUE(wh_shape_eq(a->out_shape, b->out_shape));
    double err = 0, scale = 0;
    for (size_t t = 0; t < wh_shape_count(a->out_shape); t++) {
        err = std::max(err, (double)std::fabs(a->out[t] - b->out[t]));
        scale = std::max(scale, (double)std::fabs(a->out[t]));
    }
    EXPECT_GT(scale, 0.0);
    EXPECT_LE(err, 1e-4 * scale) << "max error " << err << " of " << scale;
    wh_net_destroy(small);
    wh_net_destroy(full);
    wh_depgraph_free(&g);
}

TEST(NewLayersPrune, CompactEqualsMaskedFullWithZeroBetas)
{
    for (uint64_t seed : {11u, 12u, 13u}) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        prune_and_compare(false, seed);
    }
}

TEST(NewLayersPrune, CompactEqualsMaskedFullWithBetasFolded)
{
    for (uint64_t seed : {21u, 22u, 23u}) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        prune_and_compare(true, seed);
    }
}

}  // namespace
