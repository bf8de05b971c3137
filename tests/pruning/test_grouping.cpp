// Stage 2 groupings: module roles and strides of real YOLO graphs (index
// sets worked out by hand from darknet's cfgs), the five groups of the paper
// on yolov4 from the graph and from models/yolov4.groups, the simple
// plug-ins' counts, and what a bad groups file says.
#include "model_util.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" {
#include "pruning/prune.h"
}

using wht::contains;

namespace {

wh_net *build(const char *model, int classes, int size) { return wht::model_net(model, classes, size, 0.25); }

// Owns a net and its roles.
struct Roles {
    wh_net *net;
    std::vector<wh_role> role;
    std::vector<int> stride;
    Roles(const char *model, int size) : net(build(model, 20, size))
    {
        role.resize(net->n_layers);
        stride.resize(net->n_layers);
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        EXPECT_EQ(wh_net_roles(net, role.data(), stride.data(), &ctx), WH_OK) << ctx.msg;
    }
    ~Roles() { wh_net_destroy(net); }
    std::vector<int> with(wh_role r) const
    {
        std::vector<int> v;
        for (int i = 0; i < net->n_layers; i++)
            if (role[i] == r) v.push_back(i);
        return v;
    }
};

// The indices of inclusive ranges {a, b}, in order.
std::vector<int> ranges(std::initializer_list<std::pair<int, int>> rs)
{
    std::vector<int> v;
    for (auto r : rs)
        for (int i = r.first; i <= r.second; i++) v.push_back(i);
    return v;
}

struct Graph {
    wh_depgraph g = {};
    Graph(const wh_net *net, int all_bn_convs)
    {
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_depgraph_opts o = {};
        o.all_bn_convs = all_bn_convs;
        EXPECT_EQ(wh_depgraph_build(net, &o, &g, &ctx), WH_OK) << ctx.msg;
    }
    ~Graph() { wh_depgraph_free(&g); }
};

struct Grouping {
    wh_grouping gr = {};
    wh_status st;
    wh_ctx ctx;
    Grouping(const char *name, const char *arg, const wh_net *net, const wh_depgraph *g)
    {
        wh_ctx_init(&ctx);
        st = wh_grouping_make(name, arg, net, g, &gr, &ctx);
    }
    ~Grouping() { wh_grouping_free(&gr); }
    std::vector<std::string> names() const { return std::vector<std::string>(gr.name, gr.name + gr.n_groups); }
    int units_in(int k, int n_units) const
    {
        int n = 0;
        for (int u = 0; u < n_units; u++) n += gr.unit_group[u] == k;
        return n;
    }
};

// Layers that are convolutions with BN (they have BN scales).
std::vector<int> bn_convs(const wh_net *net)
{
    std::vector<int> v;
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        for (int p = 0; p < l->n_params; p++)
            if (!strcmp(l->params[p].name, "scales") && l->ops->flow == WH_FLOW_NEW) v.push_back(i);
    }
    return v;
}

const std::string kGroupsFile = std::string(WH_SOURCE_DIR) + "/models/yolov4.groups";

}  // namespace

// ---- roles ----------------------------------------------------------------------

TEST(ModuleRoles, NamesOfTheRoles)
{
    EXPECT_STREQ(wh_role_name(WH_ROLE_BACKBONE), "backbone");
    EXPECT_STREQ(wh_role_name(WH_ROLE_TOPDOWN), "topdown");
    EXPECT_STREQ(wh_role_name(WH_ROLE_BOTTOMUP), "bottomup");
    EXPECT_STREQ(wh_role_name(WH_ROLE_HEAD), "head");
    EXPECT_STREQ(wh_role_name((wh_role)7), "?");
}

// yolov4.cfg: CSPDarknet53 0-104, SPP block 105-116 (pools 108/110/112),
// 117 feeds the first upsample (118), top-down to stride 8 (128-136), the
// stride-8 head 137-139, route 140 back to 136, 141 the 3x3/2 conv that
// starts the bottom-up path, head 148-150, route 151, 152 3x3/2, head 159-161.
TEST(ModuleRoles, Yolov4ByHandFromTheCfg)
{
    Roles r("yolov4", 128);
    ASSERT_EQ(r.net->n_layers, 162);
    EXPECT_EQ(r.with(WH_ROLE_BACKBONE), ranges({{0, 116}}));
    EXPECT_EQ(r.with(WH_ROLE_TOPDOWN), ranges({{117, 136}, {140, 140}}));
    EXPECT_EQ(r.with(WH_ROLE_HEAD), ranges({{137, 139}, {148, 150}, {159, 161}}));
    EXPECT_EQ(r.with(WH_ROLE_BOTTOMUP), ranges({{141, 147}, {151, 158}}));
    // strides: 0 is 3x3/1, 1 the first 3x3/2; 55 and 86 are the backbone's last
    // two downsamplings; 117 is at 32 before the upsample; 141/152 go back up
    const std::pair<int, int> s[] = {{0, 1},    {1, 2},     {11, 4},    {24, 8},   {54, 8},   {55, 16},
                                     {85, 16},  {86, 32},   {113, 32},  {117, 32}, {118, 16}, {127, 16},
                                     {128, 8},  {139, 8},   {140, 8},   {141, 16}, {150, 16}, {152, 32},
                                     {161, 32}};
    for (auto p : s) EXPECT_EQ(r.stride[p.first], p.second) << "layer " << p.first;
}

TEST(ModuleRoles, Yolov4SameAt416)
{
    Roles a("yolov4", 128), b("yolov4", 416);
    EXPECT_EQ(a.role, b.role);
    EXPECT_EQ(a.stride, b.stride);
}

// yolov3.cfg: Darknet-53 0-74, 75-79 five convs at stride 32, head 80-82,
// route 83 (-4 -> 79), 84 feeds upsample 85, route 86 (-1, 61), 87-91,
// head 92-94, route 95, 96 feeds upsample 97, route 98 (-1, 36), 99-103,
// head 104-106. No bottom-up path. 75-79 and 83 come before the first
// upsample feeder (84) and so count as backbone.
TEST(ModuleRoles, Yolov3ByHandFromTheCfg)
{
    Roles r("yolov3", 128);
    ASSERT_EQ(r.net->n_layers, 107);
    EXPECT_EQ(r.with(WH_ROLE_BACKBONE), ranges({{0, 79}, {83, 83}}));
    EXPECT_EQ(r.with(WH_ROLE_TOPDOWN), ranges({{84, 91}, {95, 103}}));
    EXPECT_EQ(r.with(WH_ROLE_HEAD), ranges({{80, 82}, {92, 94}, {104, 106}}));
    EXPECT_TRUE(r.with(WH_ROLE_BOTTOMUP).empty());
    const std::pair<int, int> s[] = {{0, 1},   {1, 2},   {36, 8},  {37, 16}, {62, 32},
                                     {82, 32}, {85, 16}, {97, 8},  {106, 8}};
    for (auto p : s) EXPECT_EQ(r.stride[p.first], p.second) << "layer " << p.first;
}

// yolov4-tiny.cfg: 0 and 1 are 3x3/2, CSP blocks with grouped routes and
// maxpools (9, 17, 25), 26-27 at stride 32, head 28-30, route 31 (-4 ->
// 27), 32 feeds upsample 33, route 34 (-1, 23), head 35-37. Route 34 only
// feeds the head but is not one (the head stops at its conv with BN, 35).
TEST(ModuleRoles, Yolov4TinyByHandFromTheCfg)
{
    Roles r("yolov4-tiny", 128);
    ASSERT_EQ(r.net->n_layers, 38);
    EXPECT_EQ(r.with(WH_ROLE_BACKBONE), ranges({{0, 27}, {31, 31}}));
    EXPECT_EQ(r.with(WH_ROLE_TOPDOWN), ranges({{32, 34}}));
    EXPECT_EQ(r.with(WH_ROLE_HEAD), ranges({{28, 30}, {35, 37}}));
    EXPECT_TRUE(r.with(WH_ROLE_BOTTOMUP).empty());
    const std::pair<int, int> s[] = {{0, 2}, {1, 4}, {8, 4}, {9, 8}, {17, 16}, {25, 32}, {32, 32}, {33, 16}, {37, 16}};
    for (auto p : s) EXPECT_EQ(r.stride[p.first], p.second) << "layer " << p.first;
}

// ---- scale-module: the paper's groups -------------------------------------------

namespace {
// The authors' groups of yolov4 by darknet layer index (PAPER.md).
int authors_group(int layer)
{
    return layer <= 55 ? 0 : layer <= 85 ? 1 : layer <= 116 ? 2 : layer <= 136 ? 3 : 4;
}
}  // namespace

TEST(ScaleModule, Yolov4GivesTheAuthorsFiveGroups)
{
    wh_net *net = build("yolov4", 20, 416);
    const std::vector<std::string> want = {"backbone-s8", "backbone-s16", "backbone-s32", "neck-topdown",
                                           "neck-bottomup+heads"};
    for (int all : {0, 1}) {
        Graph G(net, all);
        // every conv with BN is a unit with all_bn_convs (yolov4 has no
        // grouped conv); by default stage 1 leaves out 107 (feeds the SPP
        // pools), 117 and 127 (feed upsamples)
        std::vector<int> units(G.g.unit_layer, G.g.unit_layer + G.g.n_units);
        std::vector<int> expect = bn_convs(net);
        ASSERT_EQ(expect.size(), 107u);
        auto stage1_out = [](int i) { return i == 107 || i == 117 || i == 127; };
        if (!all) expect.erase(std::remove_if(expect.begin(), expect.end(), stage1_out), expect.end());
        ASSERT_EQ(units, expect) << "all_bn_convs " << all;
        Grouping gr("scale-module", nullptr, net, &G.g);
        ASSERT_EQ(gr.st, WH_OK) << gr.ctx.msg;
        EXPECT_EQ(gr.names(), want);
        int per[5] = {0, 0, 0, 0, 0};
        for (int u = 0; u < G.g.n_units; u++) {
            EXPECT_EQ(gr.gr.unit_group[u], authors_group(G.g.unit_layer[u])) << "layer " << G.g.unit_layer[u];
            per[authors_group(G.g.unit_layer[u])]++;
        }
        // 0-55: 39 convs with BN; 56-85: 20; 86-116: 18 + 107; 117-136: 12 +
        // 117, 127; 137-161: 137, 141, 143-148, 152, 154-159 = 15
        const int want_per[2][5] = {{39, 20, 18, 12, 15}, {39, 20, 19, 14, 15}};
        for (int k = 0; k < 5; k++) EXPECT_EQ(per[k], want_per[all][k]) << "group " << k;
        for (int k = 0; k < 5; k++) EXPECT_TRUE(std::isnan(gr.gr.ratio[k]));
    }
    wh_net_destroy(net);
}

// yolov3: finest head stride 8, so 0-37 (37: 3x3/2 out of stride 8) merge;
// 38-60 stride 16, 62-79 stride 32; the three head 3x3 convs (80, 92, 104)
// form "heads" (no bottom-up path), numbered before the top-down neck
// because unit 80 comes before 87.
TEST(ScaleModule, Yolov3AndTinyGroups)
{
    wh_net *v3 = build("yolov3", 20, 128);
    {
        Graph G(v3, 0);
        Grouping gr("scale-module", nullptr, v3, &G.g);
        ASSERT_EQ(gr.st, WH_OK) << gr.ctx.msg;
        EXPECT_EQ(gr.names(),
                  (std::vector<std::string>{"backbone-s8", "backbone-s16", "backbone-s32", "heads", "neck-topdown"}));
        for (int u = 0; u < G.g.n_units; u++) {
            const int i = G.g.unit_layer[u];
            const int want = i <= 37 ? 0 : i <= 60 ? 1 : i <= 79 ? 2 : (i == 80 || i == 92 || i == 104) ? 3 : 4;
            EXPECT_EQ(gr.gr.unit_group[u], want) << "layer " << i;
        }
    }
    wh_net_destroy(v3);
    // yolov4-tiny: heads at strides 32 and 16, so everything up to stride 16
    // is one group; 26, 27 at stride 32; heads 28 and 35. The top-down conv
    // 32 feeds the upsample: a unit (and a group) only with all_bn_convs.
    wh_net *t = build("yolov4-tiny", 20, 128);
    for (int all : {0, 1}) {
        Graph G(t, all);
        Grouping gr("scale-module", nullptr, t, &G.g);
        ASSERT_EQ(gr.st, WH_OK) << gr.ctx.msg;
        std::vector<std::string> want = {"backbone-s16", "backbone-s32", "heads"};
        if (all) want.push_back("neck-topdown");
        EXPECT_EQ(gr.names(), want);
        for (int u = 0; u < G.g.n_units; u++) {
            const int i = G.g.unit_layer[u];
            EXPECT_EQ(gr.gr.unit_group[u], i <= 23 ? 0 : i <= 27 ? 1 : i == 32 ? 3 : 2) << "layer " << i;
        }
    }
    wh_net_destroy(t);
}

// ---- global, layer, scale ---------------------------------------------------------

TEST(SimpleGroupings, Yolov4CountsByHand)
{
    wh_net *net = build("yolov4", 20, 128);
    Graph G(net, 0);
    ASSERT_EQ(G.g.n_units, 104);
    {
        Grouping gr("global", nullptr, net, &G.g);
        ASSERT_EQ(gr.st, WH_OK) << gr.ctx.msg;
        EXPECT_EQ(gr.names(), std::vector<std::string>{"all"});
        EXPECT_EQ(gr.units_in(0, G.g.n_units), 104);
    }
    {
        Grouping gr("layer", nullptr, net, &G.g);
        ASSERT_EQ(gr.st, WH_OK) << gr.ctx.msg;
        ASSERT_EQ(gr.gr.n_groups, 104);
        for (int u = 0; u < G.g.n_units; u++) {
            EXPECT_EQ(gr.gr.unit_group[u], u);
            EXPECT_EQ(std::string(gr.gr.name[u]), "L" + std::to_string(G.g.unit_layer[u]));
        }
        EXPECT_STREQ(gr.gr.name[103], "L159");
    }
    {
        // by output stride: s1 = layer 0; s2 = 1,2,4,5,6,8,10; s4 = 11,12,14,
        // 15,16,18,19,21,23; s8 = 21 in 24-54 + 130,132-136 + head 137;
        // s16 = 21 in 55-85 + 120,122-126 + 141,143-147 + head 148;
        // s32 = 13 in 86-104 + 105,106,114-116 + 152,154-158 + head 159
        Grouping gr("scale", nullptr, net, &G.g);
        ASSERT_EQ(gr.st, WH_OK) << gr.ctx.msg;
        EXPECT_EQ(gr.names(), (std::vector<std::string>{"s1", "s2", "s4", "s8", "s16", "s32"}));
        const int want[6] = {1, 7, 9, 28, 34, 25};
        for (int k = 0; k < 6; k++) EXPECT_EQ(gr.units_in(k, G.g.n_units), want[k]) << gr.gr.name[k];
    }
    wh_net_destroy(net);
}

TEST(GroupingRegistry, UnknownNameArgumentsAndMismatchedGraphs)
{
    char names[128];
    wh_grouping_names(names, sizeof(names));
    EXPECT_EQ(std::string(names).rfind("global, layer, scale, scale-module, file", 0), 0u) << names;
    char small[10];
    wh_grouping_names(small, sizeof(small));
    EXPECT_STREQ(small, "global, l");
    wh_net *net = build("yolov4-tiny", 20, 64);
    Graph G(net, 0);
    {
        Grouping gr("bogus", nullptr, net, &G.g);
        EXPECT_EQ(gr.st, WH_ERR_ARG);
        EXPECT_TRUE(contains(gr.ctx.msg, "unknown grouping 'bogus' (known: global, layer, scale, scale-module, file"))
            << gr.ctx.msg;
        EXPECT_EQ(gr.gr.name, nullptr);
    }
    {
        Grouping gr("scale", "8", net, &G.g);
        EXPECT_EQ(gr.st, WH_ERR_ARG);
        EXPECT_TRUE(contains(gr.ctx.msg, "grouping 'scale' takes no argument")) << gr.ctx.msg;
    }
    {
        Grouping gr("file", nullptr, net, &G.g);
        EXPECT_EQ(gr.st, WH_ERR_ARG);
        EXPECT_TRUE(contains(gr.ctx.msg, "needs the path")) << gr.ctx.msg;
    }
    {
        wh_depgraph other = G.g;
        other.n_layers = 162;
        Grouping gr("global", nullptr, net, &other);
        EXPECT_EQ(gr.st, WH_ERR_ARG);
        EXPECT_TRUE(contains(gr.ctx.msg, "the dependency graph has 162 layers, the network 38")) << gr.ctx.msg;
    }
    wh_net_destroy(net);
}

namespace {
// A grouping of the user's: the first half of the units, then the rest.
wh_status halves(const wh_net *, const wh_depgraph *g, const char *, wh_grouping *out, wh_ctx *ctx)
{
    WH_TRY(wh_grouping_alloc(out, 2, g->n_units, ctx));
    snprintf(out->name[0], WH_GROUP_NAME, "front");
    snprintf(out->name[1], WH_GROUP_NAME, "back");
    for (int u = 0; u < g->n_units; u++) out->unit_group[u] = u < g->n_units / 2 ? 0 : 1;
    return WH_OK;
}
// A broken one: puts every unit in group 1 of 2.
wh_status broken(const wh_net *, const wh_depgraph *g, const char *, wh_grouping *out, wh_ctx *ctx)
{
    WH_TRY(wh_grouping_alloc(out, 2, g->n_units, ctx));
    for (int u = 0; u < g->n_units; u++) out->unit_group[u] = 1;
    return WH_OK;
}
}  // namespace

TEST(GroupingRegistry, UserPlugInsRegisterAndAreChecked)
{
    static const wh_grouping_ops ops = {"user-halves", "first half, second half", halves};
    static const wh_grouping_ops bad = {"user-broken", "all in group 1", broken};
    static const wh_grouping_ops clash = {"global", "", halves};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_grouping_register(&ops, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_grouping_register(&bad, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(wh_grouping_register(&ops, &ctx), WH_ERR_ARG);
    EXPECT_EQ(wh_grouping_register(&clash, &ctx), WH_ERR_ARG);
    EXPECT_TRUE(contains(ctx.msg, "'global' is already registered")) << ctx.msg;
    char names[256];
    wh_grouping_names(names, sizeof(names));
    EXPECT_TRUE(contains(names, "file, user-halves, user-broken")) << names;
    wh_net *net = build("yolov4-tiny", 20, 64);
    Graph G(net, 0);
    {
        Grouping gr("user-halves", nullptr, net, &G.g);
        ASSERT_EQ(gr.st, WH_OK) << gr.ctx.msg;
        EXPECT_EQ(gr.names(), (std::vector<std::string>{"front", "back"}));
        EXPECT_EQ(gr.units_in(0, G.g.n_units), G.g.n_units / 2);
        EXPECT_EQ(gr.units_in(1, G.g.n_units), G.g.n_units - G.g.n_units / 2);
    }
    {
        Grouping gr("user-broken", nullptr, net, &G.g);
        EXPECT_EQ(gr.st, WH_ERR_STATE);
        EXPECT_TRUE(contains(gr.ctx.msg, "grouping 'user-broken': unit 0")) << gr.ctx.msg;
    }
    wh_net_destroy(net);
}

TEST(GroupingRegistry, AllocGivesEmptyNamesNanRatiosUnassignedUnits)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_grouping gr;
    ASSERT_EQ(wh_grouping_alloc(&gr, 3, 5, &ctx), WH_OK);
    EXPECT_EQ(gr.n_groups, 3);
    for (int k = 0; k < 3; k++) {
        EXPECT_STREQ(gr.name[k], "");
        EXPECT_TRUE(std::isnan(gr.ratio[k]));
    }
    for (int u = 0; u < 5; u++) EXPECT_EQ(gr.unit_group[u], -1);
    wh_grouping_free(&gr);
    EXPECT_EQ(gr.name, nullptr);
    EXPECT_EQ(gr.n_groups, 0);
}

// ---- file -------------------------------------------------------------------------

TEST(FileGrouping, AuthorsFileMatchesScaleModuleOnYolov4)
{
    wh_net *net = build("yolov4", 20, 416);
    for (int all : {0, 1}) {
        Graph G(net, all);
        Grouping sm("scale-module", nullptr, net, &G.g);
        Grouping f("file", kGroupsFile.c_str(), net, &G.g);
        ASSERT_EQ(sm.st, WH_OK) << sm.ctx.msg;
        ASSERT_EQ(f.st, WH_OK) << f.ctx.msg;
        EXPECT_EQ(f.names(), (std::vector<std::string>{"G1", "G2", "G3", "G4", "G5"}));
        ASSERT_EQ(f.gr.n_groups, sm.gr.n_groups);
        for (int u = 0; u < G.g.n_units; u++)
            EXPECT_EQ(f.gr.unit_group[u], sm.gr.unit_group[u]) << "layer " << G.g.unit_layer[u];
        const double want[5] = {0.18, 0.50, 0.97, 0.865, 0.68};
        for (int k = 0; k < 5; k++) EXPECT_DOUBLE_EQ(f.gr.ratio[k], want[k]);
    }
    wh_net_destroy(net);
}

// Lines in any order; a name on two lines is one group; a group whose ranges
// hold no unit (here the routes 3 and 6 of yolov4-tiny) is dropped and the
// ratios stay with their groups.
TEST(FileGrouping, OrderOfFirstUnitDroppedGroupsAndSplitRanges)
{
    wh_net *net = build("yolov4-tiny", 20, 64);
    Graph G(net, 0);
    // units (default): 0 1 4 5 7 12 13 15 20 21 23 26 27 28 35
    wht::TempFile f("# tiny, out of order\n"
                    "late 24-37 0.5   # 26 27 28 35\n"
                    "\n"
                    "routes 3-3 0.9\n"
                    "early 0-2 0.25\n"
                    "   early   4-5   \n"
                    "routes 6-6\n"
                    "mid 7-23 # no ratio\n");
    Grouping gr("file", f.path.c_str(), net, &G.g);
    ASSERT_EQ(gr.st, WH_OK) << gr.ctx.msg;
    EXPECT_EQ(gr.names(), (std::vector<std::string>{"early", "mid", "late"}));
    EXPECT_DOUBLE_EQ(gr.gr.ratio[0], 0.25);
    EXPECT_TRUE(std::isnan(gr.gr.ratio[1]));
    EXPECT_DOUBLE_EQ(gr.gr.ratio[2], 0.5);
    for (int u = 0; u < G.g.n_units; u++) {
        const int i = G.g.unit_layer[u];
        EXPECT_EQ(gr.gr.unit_group[u], i <= 5 ? 0 : i <= 23 ? 1 : 2) << "layer " << i;
    }
    EXPECT_EQ(gr.units_in(0, G.g.n_units), 4);
    EXPECT_EQ(gr.units_in(1, G.g.n_units), 7);
    EXPECT_EQ(gr.units_in(2, G.g.n_units), 4);
    wh_net_destroy(net);
}

TEST(FileGrouping, BadFilesSayWhereAndWhat)
{
    wh_net *net = build("yolov4-tiny", 20, 64);  // 38 layers
    Graph G(net, 0);
    struct {
        const char *text, *want;
        wh_status st;
    } bad[] = {
        {"a 0-37 0.5 extra\n", ":1: expected 'name first-last [ratio]', got 4 fields", WH_ERR_ARG},
        {"# c\na\n", ":2: expected 'name first-last [ratio]', got 1 field", WH_ERR_ARG},
        {"a 0_37\n", ":1: bad range '0_37' (expected first-last", WH_ERR_ARG},
        {"a -1-37\n", ":1: bad range '-1-37'", WH_ERR_ARG},
        {"a 0-\n", ":1: bad range '0-'", WH_ERR_ARG},
        {"a 20-10\n", ":1: range 20-10 is reversed", WH_ERR_ARG},
        {"a 0-38\n", ":1: range 0-38 goes past the network's last layer 37", WH_ERR_ARG},
        {"a 0-37 1\n", ":1: ratio 1 is outside [0, 1)", WH_ERR_ARG},
        {"a 0-37 -0.1\n", ":1: ratio -0.1 is outside [0, 1)", WH_ERR_ARG},
        {"a 0-37 half\n", ":1: bad ratio 'half'", WH_ERR_ARG},
        {"a 0-37 nan\n", ":1: bad ratio 'nan'", WH_ERR_ARG},
        {"a 0-20\n\nb 20-37\n", ":3: range 20-37 overlaps range 0-20 of line 1", WH_ERR_ARG},
        {"a 0-10 0.1\nb 11-30\na 31-37 0.2\n", ":3: group 'a' has ratio 0.2 here but 0.1 on line 1", WH_ERR_ARG},
        {"a 0-20\nb 22-37\n", ": layer 21 (a prunable convolution) is in no group's range", WH_ERR_ARG},
        {"# only a comment\n\n", ": no groups", WH_ERR_ARG},
        {"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd 0-37\n", ":1: group name",
         WH_ERR_ARG},
    };
    for (const auto &b : bad) {
        wht::TempFile f(b.text);
        Grouping gr("file", f.path.c_str(), net, &G.g);
        EXPECT_EQ(gr.st, b.st) << b.text;
        EXPECT_TRUE(contains(gr.ctx.msg, f.path + b.want)) << b.text << " -> " << gr.ctx.msg;
        EXPECT_EQ(gr.gr.unit_group, nullptr);
    }
    Grouping missing("file", "/nonexistent/whittle.groups", net, &G.g);
    EXPECT_EQ(missing.st, WH_ERR_IO);
    EXPECT_TRUE(contains(missing.ctx.msg, "/nonexistent/whittle.groups: cannot open")) << missing.ctx.msg;
    Grouping dev("file", "/dev/zero", net, &G.g); // read whole and bounded: no endless read
    EXPECT_EQ(dev.st, WH_ERR_IO);
    EXPECT_TRUE(contains(dev.ctx.msg, "/dev/zero: not a regular file")) << dev.ctx.msg;
    wh_net_destroy(net);
}
