// Stage 2 thresholds and masks: a hand-worked network where the ratio
// quantiles, the union and majority merges of a shortcut-coupled set, the
// minimum and round-to give known keep sets; and the budget search on YOLOv4
// with the authors' group ratios lands on the asked parameter reduction.
#include "model_util.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include "pruning/prune.h"
}

namespace {

// 0 conv3x3 16 | 1 conv1x1 12 | 2 conv1x1 12 | 3 shortcut(1,2) | 4 conv1x1 12 |
// 5 shortcut(3,4) | 6 conv1x1 10 | 7 conv1x1 8 without BN (the output).
// Units: 0, 1, 2, 4, 6; layers 1, 2, 4 form one coupled set per channel.
const char *kNet = R"([net]
width=16
height=16
channels=3
[convolutional]
batch_normalize=1
filters=16
size=3
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=12
size=1
activation=leaky
[convolutional]
batch_normalize=1
filters=12
size=1
activation=leaky
[shortcut]
from=-2
activation=linear
[convolutional]
batch_normalize=1
filters=12
size=1
activation=leaky
[shortcut]
from=-2
activation=linear
[convolutional]
batch_normalize=1
filters=10
size=1
activation=leaky
[convolutional]
filters=8
size=1
activation=linear
)";

struct Hand {
    wh_net *net = nullptr;
    wh_depgraph g{};
    wh_grouping gr{};
    wh_ctx ctx;
    Hand()
    {
        wh_ctx_init(&ctx);
        net = wht::cfg_net(kNet);
        // |gamma| by hand, all distinct within a layer: L0 0.01(c+1); L1 1+0.01c
        // for even c else 0.001(c+1); L2 0.001(c+1) for c < 6 else 1+0.01c; L4
        // 0.001(c+1) for c % 3 == 0 else 1+0.01c; L6 0.1(c+1). Signs
        // alternate: the votes read |gamma|.
        auto set = [&](int layer, auto f) {
            wh_layer *l = &net->layers[layer];
            for (int p = 0; p < l->n_params; p++)
                if (!strcmp(l->params[p].name, "scales"))
                    for (int c = 0; c < l->out_shape.c; c++) l->params[p].data[c] = (c % 2 ? -1.f : 1.f) * f(c);
        };
        auto lo = [](int c) { return 0.001f * (c + 1); };
        auto hi = [](int c) { return 1.f + 0.01f * c; };
        set(0, [](int c) { return 0.01f * (c + 1); });
        set(1, [&](int c) { return c % 2 == 0 ? hi(c) : lo(c); });
        set(2, [&](int c) { return c < 6 ? lo(c) : hi(c); });
        set(4, [&](int c) { return c % 3 == 0 ? lo(c) : hi(c); });
        set(6, [](int c) { return 0.1f * (c + 1); });
        EXPECT_EQ(wh_depgraph_build(net, nullptr, &g, &ctx), WH_OK) << ctx.msg;
        EXPECT_EQ(wh_grouping_make("layer", nullptr, net, &g, &gr, &ctx), WH_OK) << ctx.msg;
    }
    ~Hand()
    {
        wh_grouping_free(&gr);
        wh_depgraph_free(&g);
        wh_net_destroy(net);
    }
    // kept output channels of a layer under plan p
    std::set<int> kept(const wh_prune_plan &p, int layer) const
    {
        std::set<int> s;
        for (int c = 0; c < net->layers[layer].out_shape.c; c++)
            if (wh_depgraph_kept(&g, p.keep, layer, c)) s.insert(c);
        return s;
    }
};

wh_prune_opts base_opts()
{
    wh_prune_opts o;
    wh_prune_opts_default(&o);
    o.ratio = 0.5;
    o.min_keep = 1;
    o.min_keep_frac = 0;
    return o;
}

}  // namespace

TEST(Masks, HandWorkedQuantilesAndUnion)
{
    Hand h;
    ASSERT_EQ(h.g.n_units, 5);
    ASSERT_EQ(h.gr.n_groups, 5);
    wh_prune_opts o = base_opts();  // one group per layer, ratio 0.5
    wh_prune_plan p;
    ASSERT_EQ(wh_prune_plan_make(h.net, &h.g, &h.gr, &o, &p, &h.ctx), WH_OK) << h.ctx.msg;
    // L0: the 8 smallest (0.01..0.08) vote out
    EXPECT_NEAR(p.group_threshold[0], 0.08, 1e-6);
    EXPECT_EQ(h.kept(p, 0), (std::set<int>{8, 9, 10, 11, 12, 13, 14, 15}));
    // votes to stay: L1 even c; L2 c >= 6; L4 4, 5, 7, 8, 10, 11 (its six
    // smallest are 0, 3, 6, 9 and then 1.01, 1.02 at c = 1, 2). Union keeps a
    // channel unless all three vote out: only 1 and 3 go, in all three layers
    // and both shortcuts.
    EXPECT_NEAR(p.group_threshold[1], 0.012, 1e-6);
    EXPECT_NEAR(p.group_threshold[2], 0.006, 1e-6);
    EXPECT_NEAR(p.group_threshold[3], 1.02, 1e-6);
    const std::set<int> u = {0, 2, 4, 5, 6, 7, 8, 9, 10, 11};
    for (int layer : {1, 2, 3, 4, 5}) EXPECT_EQ(h.kept(p, layer), u) << "layer " << layer;
    // L6: 0.1..0.5 go
    EXPECT_EQ(h.kept(p, 6), (std::set<int>{5, 6, 7, 8, 9}));
    EXPECT_TRUE(p.unit_flags[1] & WH_KEEP_COUPLED);
    EXPECT_FALSE(p.unit_flags[0] & WH_KEEP_COUPLED);
    EXPECT_EQ(p.unit_kept[0], 8);
    EXPECT_EQ(p.unit_kept[1], 10);
    EXPECT_EQ(p.unit_kept[4], 5);
    wh_prune_plan_free(&p);
}

TEST(Masks, EqualGammasLoseTheirRatioNotEverything)
{
    // An untrained network has every gamma at 1: the ratio still decides.
    Hand h;
    for (int u = 0; u < h.g.n_units; u++) {
        wh_layer *l = &h.net->layers[h.g.unit_layer[u]];
        for (int p = 0; p < l->n_params; p++)
            if (!strcmp(l->params[p].name, "scales"))
                for (int c = 0; c < l->out_shape.c; c++) l->params[p].data[c] = 1.f;
    }
    wh_grouping glob;
    ASSERT_EQ(wh_grouping_make("global", nullptr, h.net, &h.g, &glob, &h.ctx), WH_OK) << h.ctx.msg;
    wh_prune_opts o = base_opts();
    o.ratio = 0.25;
    wh_prune_plan p;
    ASSERT_EQ(wh_prune_plan_make(h.net, &h.g, &glob, &o, &p, &h.ctx), WH_OK) << h.ctx.msg;
    // ceil(0.25 * 62) = 16 votes out, ties by channel order: all of L0
    EXPECT_EQ(p.unit_kept[0], 1) << "L0 is all voted out; the minimum keeps one";
    EXPECT_TRUE(p.unit_flags[0] & WH_KEEP_ALL_BELOW);
    EXPECT_EQ(p.group_kept[0], 62 - 15);
    wh_prune_plan_free(&p);
    wh_grouping_free(&glob);
}

TEST(Masks, MajorityMinimumAndRoundTo)
{
    Hand h;
    wh_prune_opts o = base_opts();
    o.merge = WH_MERGE_MAJORITY;
    wh_prune_plan p;
    ASSERT_EQ(wh_prune_plan_make(h.net, &h.g, &h.gr, &o, &p, &h.ctx), WH_OK) << h.ctx.msg;
    // at least two of three votes to stay: c = 4, 6, 7, 8, 10, 11
    const std::set<int> m = {4, 6, 7, 8, 10, 11};
    for (int layer : {1, 2, 4, 5}) EXPECT_EQ(h.kept(p, layer), m) << "layer " << layer;
    EXPECT_TRUE(p.unit_flags[1] & WH_KEEP_OUTVOTED);  // L1 voted for 0 and 2 and lost
    wh_prune_plan_free(&p);

    // minimum 8: the set gets L1's largest pruned |gamma| first (c = 2: 1.02,
    // c = 0: 1.0); L6 goes from 5 to 8 with its largest pruned: c = 4, 3, 2
    // (0.5, 0.4, 0.3)
    o.min_keep = 8;
    ASSERT_EQ(wh_prune_plan_make(h.net, &h.g, &h.gr, &o, &p, &h.ctx), WH_OK) << h.ctx.msg;
    EXPECT_EQ(h.kept(p, 4), (std::set<int>{0, 2, 4, 6, 7, 8, 10, 11}));
    EXPECT_EQ(h.kept(p, 6), (std::set<int>{2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_TRUE(p.unit_flags[1] & WH_KEEP_MINIMUM);
    EXPECT_TRUE(p.unit_flags[4] & WH_KEEP_MINIMUM);
    EXPECT_FALSE(p.unit_flags[0] & WH_KEEP_MINIMUM);
    wh_prune_plan_free(&p);

    // union with round-to 4: the set 10 -> 12 (channels 3 then 1 back), L6
    // 5 -> 8 (4, 3, 2), L0 stays at 8
    o = base_opts();
    o.round_to = 4;
    ASSERT_EQ(wh_prune_plan_make(h.net, &h.g, &h.gr, &o, &p, &h.ctx), WH_OK) << h.ctx.msg;
    EXPECT_EQ(p.unit_kept[0], 8);
    EXPECT_EQ(p.unit_kept[1], 12);
    EXPECT_EQ(h.kept(p, 6), (std::set<int>{2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_TRUE(p.unit_flags[4] & WH_KEEP_ROUNDED);
    wh_prune_plan_free(&p);
}

TEST(Masks, ThresholdAboveALayerWarnsAndKeepsItsLargest)
{
    Hand h;
    wh_grouping glob;
    ASSERT_EQ(wh_grouping_make("global", nullptr, h.net, &h.g, &glob, &h.ctx), WH_OK) << h.ctx.msg;
    wh_prune_opts o = base_opts();
    o.ratio = 0.9;  // 56 of 62 go: only values above 1 stay, L0 (max 0.16) is all voted out
    o.min_keep = 2;
    wh_prune_plan p;
    ASSERT_EQ(wh_prune_plan_make(h.net, &h.g, &glob, &o, &p, &h.ctx), WH_OK) << h.ctx.msg;
    EXPECT_TRUE(p.unit_flags[0] & WH_KEEP_ALL_BELOW);
    EXPECT_EQ(h.kept(p, 0), (std::set<int>{14, 15}));
    EXPECT_GE(h.ctx.n_warn_total, 1);
    EXPECT_TRUE(wht::contains(h.ctx.warn[0], "layer 0: the threshold")) << h.ctx.warn[0];
    wh_prune_plan_free(&p);
    wh_grouping_free(&glob);
}

TEST(Masks, WrongRatioCountNamesTheGroups)
{
    Hand h;
    wh_prune_opts o = base_opts();
    const double r[2] = {0.1, 0.2};
    o.ratios = r;
    o.n_ratios = 2;
    wh_prune_plan p;
    EXPECT_EQ(wh_prune_plan_make(h.net, &h.g, &h.gr, &o, &p, &h.ctx), WH_ERR_ARG);
    EXPECT_TRUE(wht::contains(h.ctx.msg, "2 ratios given for 5 groups (L0, L1, L2, L4, L6)")) << h.ctx.msg;
}

TEST(Masks, BudgetOnYolov4WithTheAuthorsRatios)
{
    // YOLOv4, 20 classes (64,040,001 parameters at any input size), random
    // |gamma|: the authors' five groups and ratios, scaled by the search so
    // that 64.7 % of the parameters go; the analytic count must land within
    // one percentage point, every group losing at most its asked ratio.
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = wht::model_net("yolov4", 20, 64, 1.0);
    ASSERT_NE(net, nullptr);
    uint64_t s = 3;
    for (int i = 0; i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++)
            if (!strcmp(net->layers[i].params[p].name, "scales"))
                for (size_t c = 0; c < net->layers[i].params[p].count; c++) {
                    s = s * 6364136223846793005ull + 1442695040888963407ull;
                    net->layers[i].params[p].data[c] = (float)((s >> 33) % 100000) / 1e5f;
                }
    wh_depgraph g;
    ASSERT_EQ(wh_depgraph_build(net, nullptr, &g, &ctx), WH_OK);
    wh_grouping gr;
    ASSERT_EQ(wh_grouping_make("scale-module", nullptr, net, &g, &gr, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(gr.n_groups, 5);
    wh_prune_opts o;
    wh_prune_opts_default(&o);
    const double authors[5] = {0.18, 0.50, 0.97, 0.865, 0.68};
    o.ratios = authors;
    o.n_ratios = 5;
    wh_prune_plan p;
    ASSERT_EQ(wh_prune_plan_make(net, &g, &gr, &o, &p, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(p.before.params, 64040001u);
    for (int k = 0; k < 5; k++) {
        // the quantile prunes ceil(ratio * n): at most one channel over the ratio
        const double pruned = 1.0 - (double)p.group_kept[k] / p.group_channels[k];
        EXPECT_LE(pruned, authors[k] + 1.0 / p.group_channels[k]) << p.group_name[k];
        // less only where a layer's minimum or a coupled set forbids it, flagged
        if (pruned < authors[k] - 1.0 / p.group_channels[k]) {
            int why = 0;
            for (int u = 0; u < g.n_units; u++)
                if (p.unit_group[u] == k) why |= p.unit_flags[u] & (WH_KEEP_MINIMUM | WH_KEEP_COUPLED);
            EXPECT_NE(why, 0) << p.group_name[k] << " pruned " << pruned << " without a reason";
        }
    }
    wh_prune_plan_free(&p);
    o.target_params = 0.647;
    ASSERT_EQ(wh_prune_plan_make(net, &g, &gr, &o, &p, &ctx), WH_OK) << ctx.msg;
    const double red = 1.0 - (double)p.after.params / (double)p.before.params;
    EXPECT_NEAR(red, 0.647, 0.01) << "scale " << p.scale;
    EXPECT_GT(p.scale, 0.0);
    for (int k = 0; k < 5; k++) EXPECT_NEAR(p.group_ratio[k], std::fmin(authors[k] * p.scale, 0.999), 1e-12);
    wh_prune_plan_free(&p);
    wh_grouping_free(&gr);
    wh_depgraph_free(&g);
    wh_net_destroy(net);
}
