// Sizes as darknet counts them: every layer of the generated models against
// the independent counter in darknet_count.cpp, and the totals against the
// numbers darknet itself prints for yolov4 and yolov4-tiny (416x416, 80
// classes): 60.137 / 6.910 BFLOPs, 64,363,101 / 6,056,606 parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "framework/darknet_count.h"
#include "model_util.h"

extern "C" {
#include "framework/io/modelgen.h"
#include "framework/core/net.h"
}

namespace {

struct Built {
    std::string text;
    wh_net *net = nullptr;
    ~Built() { wh_net_destroy(net); }
};

void build(Built &b, const char *name, int classes, int size, double wm)
{
    b.text = wht::model_cfg(name, classes, size, wm);
    b.net = wht::cfg_net(b.text);
    ASSERT_NE(b.net, nullptr);
}

void compare_layer_by_layer(const char *name, int classes, int size, double wm)
{
    Built b;
    build(b, name, classes, size, wm);
    ASSERT_NE(b.net, nullptr);
    dkref::Summary ref = dkref::analyse(b.text);
    ASSERT_EQ(b.net->n_layers, ref.layers) << name;
    for (int i = 0; i < ref.layers; i++) {
        const wh_layer *l = &b.net->layers[i];
        const dkref::Layer &r = ref.per_layer[i];
        EXPECT_EQ(std::string(l->ops->type), r.type) << name << " layer " << i;
        EXPECT_EQ(l->out_shape.c, r.out.c) << name << " layer " << i;
        EXPECT_EQ(l->out_shape.h, r.out.h) << name << " layer " << i;
        EXPECT_EQ(l->out_shape.w, r.out.w) << name << " layer " << i;
        wh_net_cost c;
        wh_layer_cost(l, &c);
        EXPECT_EQ((long long)c.params, r.params) << name << " layer " << i;
        EXPECT_NEAR(c.darknet_flops, r.flops, 1e-6 * r.flops + 1) << name << " layer " << i;
    }
    wh_net_cost t;
    wh_net_cost_total(b.net, &t);
    EXPECT_EQ((long long)t.params, ref.params);
    EXPECT_NEAR(t.conv_flops, ref.conv_flops, 1e-9 * ref.conv_flops);
    EXPECT_NEAR(t.darknet_flops, ref.darknet_flops, 1e-9 * ref.darknet_flops);
}

}  // namespace

TEST(Counts, Yolov4MatchesDarknetTotals)
{
    Built b;
    build(b, "yolov4", 80, 416, 1.0);
    ASSERT_NE(b.net, nullptr);
    wh_net_cost t;
    wh_net_cost_total(b.net, &t);
    EXPECT_EQ(t.params, 64363101u);
    EXPECT_EQ(std::lround(t.darknet_flops / 1e6), 60137);  // darknet prints 60.137
    EXPECT_LT(t.conv_flops, t.darknet_flops);
}

TEST(Counts, Yolov4TinyMatchesDarknetTotals)
{
    Built b;
    build(b, "yolov4-tiny", 80, 416, 1.0);
    ASSERT_NE(b.net, nullptr);
    wh_net_cost t;
    wh_net_cost_total(b.net, &t);
    EXPECT_EQ(t.params, 6056606u);
    EXPECT_EQ(std::lround(t.darknet_flops / 1e6), 6910);  // darknet prints 6.910
}

TEST(Counts, Yolov4LayerByLayer) { compare_layer_by_layer("yolov4", 80, 416, 1.0); }
TEST(Counts, Yolov4TinyLayerByLayer) { compare_layer_by_layer("yolov4-tiny", 80, 416, 1.0); }
TEST(Counts, Yolov3LayerByLayer) { compare_layer_by_layer("yolov3", 80, 416, 1.0); }
TEST(Counts, Yolov3TinyLayerByLayer) { compare_layer_by_layer("yolov3-tiny", 80, 416, 1.0); }
TEST(Counts, ScaledVariantsLayerByLayer)
{
    compare_layer_by_layer("yolov4", 20, 320, 0.5);
    compare_layer_by_layer("yolov4-tiny", 3, 608, 0.25);
}

// Darknet's count of the first layer of yolov4 as its log prints it:
// "0 conv 32 3 x 3/ 1 416 x 416 x 3 -> 416 x 416 x 32 0.299 BF".
TEST(Counts, Yolov4FirstLayersAsDarknetPrints)
{
    Built b;
    build(b, "yolov4", 80, 416, 1.0);
    ASSERT_NE(b.net, nullptr);
    const double want_bf[] = {0.299, 1.595, 0.354, 0.0, 0.354, 0.177, 1.595};
    for (int i = 0; i < 7; i++) {
        wh_net_cost c;
        wh_layer_cost(&b.net->layers[i], &c);
        EXPECT_NEAR(c.darknet_flops / 1e9, want_bf[i], 0.0005) << "layer " << i;
    }
}
