// Tests of the darknet .cfg model generator (framework/io/modelgen.c).
//
// The generated text is parsed here by a small independent reader that
// infers every layer's (C, H, W) the way darknet does and counts parameters
// (conv weights + per filter either BN scale and shift or a bias), so the
// tests compare against darknet's own totals, not against the generator.
#include <gtest/gtest.h>

#include "framework/darknet_count.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "framework/io/modelgen.h"

using namespace dkref;

namespace {

std::string generate(const char *name, int classes = 80, int size = 416, double wm = 1.0)
{
    wh_model_opts o;
    wh_model_opts_default(&o);
    o.name = name;
    o.classes = classes;
    o.width = o.height = size;
    o.width_multiple = wm;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *text = nullptr;
    wh_status st = wh_model_generate(&o, &text, &ctx);
    EXPECT_EQ(st, WH_OK) << ctx.msg;
    if (st != WH_OK || !text) return "";
    std::string s(text);
    free(text);
    return s;
}

struct Expected {
    const char *name;
    int layers;
    long long params; // darknet's count at 80 classes (BN: scale + shift)
    int conv, route, shortcut, maxpool, upsample, yolo;
};

const Expected kExpected[] = {
    {"yolov4", 162, 64363101, 110, 21, 23, 3, 2, 3},
    {"yolov4-tiny", 38, 6056606, 21, 11, 0, 3, 1, 2},
    {"yolov3", 107, 61949149, 75, 4, 23, 0, 2, 3},
    {"yolov3-tiny", 24, 8852366, 13, 2, 0, 6, 1, 2},
};

} // namespace

TEST(ModelGen, DefaultsAreYolov4Coco416)
{
    wh_model_opts o;
    wh_model_opts_default(&o);
    EXPECT_STREQ(o.name, "yolov4");
    EXPECT_EQ(o.classes, 80);
    EXPECT_EQ(o.width, 416);
    EXPECT_EQ(o.height, 416);
    EXPECT_EQ(o.width_multiple, 1.0);
}

TEST(ModelGen, NamesListEveryModelAndEachGenerates)
{
    const char *const *names = wh_model_names();
    ASSERT_NE(names, nullptr);
    int n = 0;
    for (; names[n]; n++) EXPECT_FALSE(generate(names[n]).empty()) << names[n];
    EXPECT_EQ(n, 4);
}

TEST(ModelGen, SectionCountsLayersAndParamsMatchDarknet)
{
    for (const Expected &e : kExpected) {
        SCOPED_TRACE(e.name);
        Summary s = analyse(generate(e.name));
        EXPECT_EQ(s.layers, e.layers);
        EXPECT_EQ(s.params, e.params);
        EXPECT_EQ(s.count["convolutional"], e.conv);
        EXPECT_EQ(s.count["route"], e.route);
        EXPECT_EQ(s.count["shortcut"], e.shortcut);
        EXPECT_EQ(s.count["maxpool"], e.maxpool);
        EXPECT_EQ(s.count["upsample"], e.upsample);
        EXPECT_EQ(s.count["yolo"], e.yolo);
    }
}

TEST(ModelGen, NetSectionFirstWithRequestedSize)
{
    std::vector<Section> secs = parse(generate("yolov4-tiny", 80, 608));
    ASSERT_FALSE(secs.empty());
    EXPECT_EQ(secs[0].type, "net");
    EXPECT_EQ(secs[0].geti("width"), 608);
    EXPECT_EQ(secs[0].geti("height"), 608);
    EXPECT_EQ(secs[0].geti("channels"), 3);
    EXPECT_EQ(secs[0].geti("batch"), 64);
    EXPECT_EQ(secs[0].kv["policy"], "steps");
}

TEST(ModelGen, NonSquareInputKeepsShapesConsistent)
{
    wh_model_opts o;
    wh_model_opts_default(&o);
    o.width = 640;
    o.height = 384;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *text = nullptr;
    ASSERT_EQ(wh_model_generate(&o, &text, &ctx), WH_OK) << ctx.msg;
    Summary s = analyse(text);
    free(text);
    EXPECT_EQ(s.layers, 162);
}

TEST(ModelGen, HeadFiltersFollowClassCount)
{
    for (const Expected &e : kExpected) {
        SCOPED_TRACE(e.name);
        std::vector<Section> secs = parse(generate(e.name, 20));
        int heads = 0;
        for (size_t i = 1; i < secs.size(); i++) {
            if (secs[i].type != "yolo") continue;
            heads++;
            const Section &head = secs[i - 1];
            ASSERT_EQ(head.type, "convolutional");
            EXPECT_EQ(head.geti("filters"), (20 + 5) * 3);
            EXPECT_EQ(head.kv.at("activation"), "linear");
            EXPECT_FALSE(head.has("batch_normalize"));
            EXPECT_EQ(secs[i].geti("classes"), 20);
            EXPECT_EQ(ints(secs[i].kv.at("mask")).size(), 3u);
        }
        EXPECT_EQ(heads, e.yolo);
    }
}

TEST(ModelGen, TinyMasksAndAnchorsAsDarknetShips)
{
    std::vector<Section> secs = parse(generate("yolov4-tiny"));
    std::vector<std::string> masks;
    for (const Section &s : secs)
        if (s.type == "yolo") {
            masks.push_back(s.kv.at("mask"));
            EXPECT_EQ(s.geti("num"), 6);
            std::vector<int> a = ints(s.kv.at("anchors"));
            ASSERT_EQ(a.size(), 12u);
            EXPECT_EQ(a[0], 10);
            EXPECT_EQ(a[11], 319);
        }
    ASSERT_EQ(masks.size(), 2u);
    EXPECT_EQ(masks[0], "3,4,5");
    EXPECT_EQ(masks[1], "1,2,3");
}

// Halving the width changes only conv filters: the same sections in the same
// order with the same route indices, each non-head conv at its original
// count / 2 rounded to a multiple of 8, heads unchanged.
TEST(ModelGen, WidthMultipleScalesFiltersToMultiplesOf8)
{
    for (const Expected &e : kExpected) {
        SCOPED_TRACE(e.name);
        std::vector<Section> full = parse(generate(e.name, 80, 416, 1.0));
        std::vector<Section> half = parse(generate(e.name, 80, 416, 0.5));
        ASSERT_EQ(full.size(), half.size());
        for (size_t i = 1; i < full.size(); i++) {
            ASSERT_EQ(full[i].type, half[i].type) << "section " << i;
            if (full[i].type == "route") {
                EXPECT_EQ(full[i].kv["layers"], half[i].kv["layers"]);
            }
            if (full[i].type != "convolutional") continue;
            int f = half[i].geti("filters");
            if (!full[i].has("batch_normalize")) {
                EXPECT_EQ(f, 255) << "head conv " << i - 1;
                continue;
            }
            EXPECT_EQ(f % 8, 0) << "conv " << i - 1;
            int want = (int)std::floor(full[i].geti("filters") * 0.5 / 8 + 0.5) * 8;
            EXPECT_EQ(f, want < 8 ? 8 : want) << "conv " << i - 1;
        }
        Summary s = analyse(generate(e.name, 80, 416, 0.5));
        EXPECT_EQ(s.layers, e.layers);
        EXPECT_LT(s.params, e.params / 3);
    }
}

TEST(ModelGen, OddWidthMultiplesStayConsistent)
{
    const double wms[] = {0.1, 0.33, 0.75, 1.3, 4.0};
    for (const Expected &e : kExpected)
        for (double wm : wms) {
            SCOPED_TRACE(std::string(e.name) + " x" + std::to_string(wm));
            Summary s = analyse(generate(e.name, 3, 320, wm));
            EXPECT_EQ(s.layers, e.layers);
        }
}

namespace {

// Generates with one option changed and expects WH_ERR_ARG, a NULL text and a
// message containing every string in `want`.
void expect_bad(const wh_model_opts &o, std::initializer_list<const char *> want)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *text = reinterpret_cast<char *>(&ctx); // must be reset to NULL
    EXPECT_EQ(wh_model_generate(&o, &text, &ctx), WH_ERR_ARG);
    EXPECT_EQ(text, nullptr);
    EXPECT_EQ(ctx.status, WH_ERR_ARG);
    for (const char *w : want) {
        EXPECT_NE(std::string(ctx.msg).find(w), std::string::npos)
            << "message '" << ctx.msg << "' lacks '" << w << "'";
    }
}

wh_model_opts defaults()
{
    wh_model_opts o;
    wh_model_opts_default(&o);
    return o;
}

} // namespace

TEST(ModelGen, UnknownNameListsKnownOnes)
{
    wh_model_opts o = defaults();
    o.name = "yolov5";
    expect_bad(o, {"yolov5", "yolov4", "yolov4-tiny", "yolov3", "yolov3-tiny"});
    o.name = nullptr;
    expect_bad(o, {"yolov4-tiny"});
}

TEST(ModelGen, BadClassesSizesAndWidthMultipleAreRejected)
{
    wh_model_opts o = defaults();
    o.classes = 0;
    expect_bad(o, {"classes", "0"});
    o.classes = -3;
    expect_bad(o, {"classes", "-3"});

    o = defaults();
    o.width = 400;
    expect_bad(o, {"width", "400", "32"});
    o.width = 0;
    expect_bad(o, {"width", "0"});
    o = defaults();
    o.height = 4128;
    expect_bad(o, {"height", "4128", "4096"});
    o.height = 16;
    expect_bad(o, {"height", "16"});

    o = defaults();
    o.width_multiple = 0.0;
    expect_bad(o, {"width_multiple", "0"});
    o.width_multiple = -0.5;
    expect_bad(o, {"width_multiple", "-0.5"});
    o.width_multiple = 4.5;
    expect_bad(o, {"width_multiple", "4.5"});
    o.width_multiple = std::nan("");
    expect_bad(o, {"width_multiple"});
}

TEST(ModelGen, EdgeSizesAreAccepted)
{
    EXPECT_EQ(analyse(generate("yolov4", 1, 32)).layers, 162);
    EXPECT_EQ(analyse(generate("yolov3-tiny", 1, 4096, 0.25)).layers, 24);
}

TEST(ModelGen, NullArgumentsAreRejected)
{
    wh_model_opts o = defaults();
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *text = nullptr;
    EXPECT_EQ(wh_model_generate(nullptr, &text, &ctx), WH_ERR_ARG);
    EXPECT_EQ(text, nullptr);
    EXPECT_EQ(wh_model_generate(&o, nullptr, &ctx), WH_ERR_ARG);
}

namespace {
std::vector<Section> generate_loss(int darknet_loss)
{
    wh_model_opts o;
    wh_model_opts_default(&o);
    o.name = "yolov4-tiny";
    o.classes = 6;
    o.width = o.height = 256;
    o.darknet_loss = darknet_loss;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *text = nullptr;
    EXPECT_EQ(wh_model_generate(&o, &text, &ctx), WH_OK) << ctx.msg;
    std::vector<Section> secs = parse(text ? text : "");
    free(text);
    return secs;
}
} // namespace

// The balanced loss's gains, worked by hand for yolov4-tiny, 6 classes, 256:
// two heads (3/nl = 1.5), (256/640)^2 = .16; box .05 x 64 x 1.5 = 4.8;
// classes .5 x 64 x 6/80 x 1.5 = 3.6; objectness 64 x .16 x 1.5 = 15.36 x .4
// at stride 32 (mask 3,4,5) = 6.144, x 1 at stride 16 (mask 1,2,3) = 15.36.
TEST(ModelGen, BalancedLossGainsWorkedByHand)
{
    std::vector<Section> secs = generate_loss(0);
    ASSERT_FALSE(secs.empty());
    EXPECT_EQ(secs[0].kv["learning_rate"], "0.01");
    EXPECT_EQ(secs[0].kv["momentum"], "0.937");
    int heads = 0;
    for (Section &s : secs) {
        if (s.type != "yolo") continue;
        heads++;
        EXPECT_EQ(s.kv["loss_norm"], "mean");
        EXPECT_EQ(s.kv["iou_loss"], "ciou");
        EXPECT_NEAR(std::stod(s.kv["iou_normalizer"]), 4.8, 1e-9);
        EXPECT_NEAR(std::stod(s.kv["cls_normalizer"]), 3.6, 1e-9);
        const double want = s.kv["mask"] == "3,4,5" ? 6.144 : 15.36;
        EXPECT_NEAR(std::stod(s.kv["obj_normalizer"]), want, 1e-9) << s.kv["mask"];
    }
    EXPECT_EQ(heads, 2);
    // darknet's own keys with darknet_loss = 1
    secs = generate_loss(1);
    EXPECT_EQ(secs[0].kv["learning_rate"], "0.00261");
    EXPECT_EQ(secs[0].kv["momentum"], "0.9");
    for (Section &s : secs) {
        if (s.type != "yolo") continue;
        EXPECT_EQ(s.kv.count("loss_norm"), 0u);
        EXPECT_EQ(s.kv["iou_normalizer"], "0.07");
    }
}
