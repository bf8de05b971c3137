// Tests of the network builder (framework/core/net.c, hparams.c, plan.c).
//
// Only [convolutional] layers are used, so the tests depend on no other layer
// type. Shapes are darknet's: out = (in + 2*pad - size) / stride + 1 with
// pad = size/2 when pad=1. The whole-net gradient is checked against central
// finite differences of the float32 net itself.
#include "test_util.h"
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "framework/core/cfg.h"
#include "framework/core/net.h"

namespace {

using wht::contains;

// Parses text and builds a net from it; owns both.
struct Built {
    wh_ctx ctx;
    wh_cfg *cfg = nullptr;
    wh_net *net = nullptr;
    wh_status st = WH_OK;
    Built(const std::string &text, const wh_net_opts *opts, const char *name = "n.cfg")
    {
        wh_ctx_init(&ctx);
        st = wh_cfg_parse_string(text.c_str(), name, &cfg, &ctx);
        if (st == WH_OK) st = wh_net_create(cfg, opts, &net, &ctx);
    }
    ~Built()
    {
        wh_net_destroy(net);
        wh_cfg_free(cfg);
    }
    std::string msg() const { return ctx.msg; }
};

wh_net_opts opts(int batch, int train, int width = 0, int height = 0)
{
    wh_net_opts o = {};
    o.batch = batch;
    o.train = train;
    o.width = width;
    o.height = height;
    return o;
}

std::string conv(int filters, int size, int stride, int pad, const char *act = "linear",
                 int bn = 0)
{
    return "[convolutional]\nbatch_normalize=" + std::to_string(bn) +
           "\nfilters=" + std::to_string(filters) + "\nsize=" + std::to_string(size) +
           "\nstride=" + std::to_string(stride) + "\npad=" + std::to_string(pad) +
           "\nactivation=" + act + "\n";
}

const wh_param *find_param(const wh_layer *l, const char *name)
{
    for (int p = 0; p < l->n_params; p++)
        if (std::strcmp(l->params[p].name, name) == 0) return &l->params[p];
    return nullptr;
}

// ---------------------------------------------------------------- errors

TEST(NetCreate, FirstSectionMustBeNet)
{
    Built b("[convolutional]\nfilters=2\n[net]\nwidth=8\nheight=8\n", nullptr, "first.cfg");
    EXPECT_EQ(b.st, WH_ERR_CFG);
    EXPECT_EQ(b.net, nullptr);
    EXPECT_TRUE(contains(b.msg(), "first.cfg:1:")) << b.msg();
    EXPECT_TRUE(contains(b.msg(), "[net]")) << b.msg();
}

TEST(NetCreate, NetworkIsAnotherNameForNet)
{
    wh_net_opts o = opts(1, 0);
    Built b("[network]\nwidth=8\nheight=8\n" + conv(2, 1, 1, 0), &o);
    ASSERT_EQ(b.st, WH_OK) << b.msg();
    EXPECT_EQ(b.net->n_layers, 1);
}

TEST(NetCreate, UnknownSectionNamesLineAndKnownTypes)
{
    Built b("[net]\nwidth=8\nheight=8\n"     // 1-3
            "[convolutional]\nfilters=2\n"  // 4-5
            "\n[foo]\nbar=1\n",             // 6-8
            nullptr, "u.cfg");
    EXPECT_EQ(b.st, WH_ERR_CFG);
    EXPECT_EQ(b.net, nullptr);
    EXPECT_TRUE(contains(b.msg(), "u.cfg:7:")) << b.msg();
    EXPECT_TRUE(contains(b.msg(), "[foo]")) << b.msg();
    EXPECT_TRUE(contains(b.msg(), "[convolutional]")) << b.msg();
}

TEST(NetCreate, NetWithoutWidthNamesTheKey)
{
    Built b("\n[net]\nheight=8\n" + conv(2, 1, 1, 0), nullptr, "w.cfg");
    EXPECT_EQ(b.st, WH_ERR_CFG);
    EXPECT_EQ(b.net, nullptr);
    EXPECT_TRUE(contains(b.msg(), "'width'")) << b.msg();
    EXPECT_TRUE(contains(b.msg(), "w.cfg:2:")) << b.msg(); // the [net] header
}

TEST(NetCreate, BatchNotAMultipleOfSubdivisions)
{
    Built b("[net]\nbatch=64\nsubdivisions=3\nwidth=8\nheight=8\n" + conv(2, 1, 1, 0), nullptr,
            "b.cfg");
    EXPECT_EQ(b.st, WH_ERR_CFG);
    EXPECT_EQ(b.net, nullptr);
    EXPECT_TRUE(contains(b.msg(), "b.cfg:1:")) << b.msg();
    EXPECT_TRUE(contains(b.msg(), "64")) << b.msg();
    EXPECT_TRUE(contains(b.msg(), "subdivisions=3")) << b.msg();
}

TEST(NetCreate, OnlyNetIsAnError)
{
    Built b("[net]\nwidth=8\nheight=8\n", nullptr, "only.cfg");
    EXPECT_NE(b.st, WH_OK);
    EXPECT_EQ(b.net, nullptr);
    EXPECT_TRUE(contains(b.msg(), "only.cfg:1:")) << b.msg();
}

TEST(NetCreate, BadConvolutionalValueNamesLine)
{
    Built b("[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=2\nsize=3x\n", nullptr, "c.cfg");
    EXPECT_EQ(b.st, WH_ERR_CFG);
    EXPECT_EQ(b.net, nullptr);
    EXPECT_TRUE(contains(b.msg(), "c.cfg:6:")) << b.msg();
    EXPECT_TRUE(contains(b.msg(), "'size'")) << b.msg();
}

TEST(NetCreate, KernelLargerThanInputIsAShapeError)
{
    Built b("[net]\nwidth=4\nheight=4\n" + conv(2, 7, 1, 0), nullptr, "k.cfg");
    EXPECT_EQ(b.st, WH_ERR_SHAPE);
    EXPECT_EQ(b.net, nullptr);
    EXPECT_TRUE(contains(b.msg(), "k.cfg:4:")) << b.msg();
}

// ------------------------------------------------------- batch and shapes

TEST(NetShape, BatchIsBatchOverSubdivisions)
{
    Built b("[net]\nbatch=64\nsubdivisions=16\nwidth=24\nheight=16\nchannels=1\n" +
                conv(2, 1, 1, 0),
            nullptr);
    ASSERT_EQ(b.st, WH_OK) << b.msg();
    EXPECT_EQ(b.net->hp.batch, 64);
    EXPECT_EQ(b.net->hp.subdivisions, 16);
    const wh_shape in = b.net->in_shape;
    EXPECT_EQ(in.n, 4);
    EXPECT_EQ(in.c, 1);
    EXPECT_EQ(in.h, 16);
    EXPECT_EQ(in.w, 24);
    EXPECT_EQ(b.net->layers[0].out_shape.n, 4);
    EXPECT_EQ(b.net->train, 0); // opts NULL: inference
}

TEST(NetShape, OptionsOverrideBatchWidthHeight)
{
    wh_net_opts o = opts(3, 0, 32, 24);
    Built b("[net]\nbatch=64\nsubdivisions=16\nwidth=416\nheight=416\n" + conv(2, 3, 2, 1), &o);
    ASSERT_EQ(b.st, WH_OK) << b.msg();
    const wh_shape in = b.net->in_shape;
    EXPECT_EQ(in.n, 3);
    EXPECT_EQ(in.c, 3); // darknet's default channels
    EXPECT_EQ(in.h, 24);
    EXPECT_EQ(in.w, 32);
    EXPECT_EQ(b.net->hp.width, 32);
    EXPECT_EQ(b.net->hp.height, 24);
    const wh_shape out = b.net->layers[0].out_shape;
    EXPECT_EQ(out.n, 3);
    EXPECT_EQ(out.c, 2);
    EXPECT_EQ(out.h, 12); // (24 + 2 - 3)/2 + 1
    EXPECT_EQ(out.w, 16); // (32 + 2 - 3)/2 + 1
}

TEST(NetShape, ConvolutionShapesAsDarknet)
{
    wh_net_opts o = opts(1, 0);
    const std::string text = "[net]\nwidth=416\nheight=415\nchannels=3\n" +
                             conv(4, 3, 1, 1) +   // 416x415 -> 416x415
                             conv(8, 3, 2, 1) +   // -> (416+2-3)/2+1 = 208, (415-1)/2+1 = 208
                             conv(6, 1, 1, 0) +   // 1x1 -> 208x208
                             conv(5, 3, 1, 0) +   // no pad -> 206
                             conv(3, 3, 2, 0) +   // (206-3)/2+1 = 102 (floor)
                             "[convolutional]\nfilters=2\nsize=5\nstride=1\npadding=1\n" // explicit
                             "activation=linear\n"; // (102+2-5)/1+1 = 100
    Built b(text, &o);
    ASSERT_EQ(b.st, WH_OK) << b.msg();
    ASSERT_EQ(b.net->n_layers, 6);
    const int want[6][3] = {{4, 415, 416}, {8, 208, 208}, {6, 208, 208},
                            {5, 206, 206}, {3, 102, 102}, {2, 100, 100}};
    const int in_c[6] = {3, 4, 8, 6, 5, 3};
    for (int i = 0; i < 6; i++) {
        const wh_layer &l = b.net->layers[i];
        EXPECT_EQ(l.index, i);
        EXPECT_EQ(l.out_shape.n, 1) << i;
        EXPECT_EQ(l.out_shape.c, want[i][0]) << i;
        EXPECT_EQ(l.out_shape.h, want[i][1]) << i;
        EXPECT_EQ(l.out_shape.w, want[i][2]) << i;
        EXPECT_EQ(l.n_in, 1);
        EXPECT_EQ(l.in[0], i - 1); // default input: the previous layer
        EXPECT_EQ(l.in_shape[0].c, in_c[i]) << i;
        // weights: filters * in_c * size * size; biases: filters
        const wh_param *w = find_param(&l, "weights");
        const wh_param *bi = find_param(&l, "biases");
        ASSERT_NE(w, nullptr);
        ASSERT_NE(bi, nullptr);
        const int size = i == 2 ? 1 : i == 5 ? 5 : 3;
        EXPECT_EQ(w->count, (size_t)want[i][0] * in_c[i] * size * size) << i;
        EXPECT_EQ(bi->count, (size_t)want[i][0]) << i;
    }
    // header lines: [net] is 1-4, each conv() section is 7 lines
    EXPECT_EQ(b.net->layers[0].line, 5);
    EXPECT_EQ(b.net->layers[1].line, 12);
    EXPECT_EQ(b.net->layers[5].line, 40);
}

// ------------------------------------------------------- arenas

struct Range {
    uintptr_t lo, hi; // [lo, hi)
    std::string what;
};

// Ranges must lie inside [base, base+bytes) and be pairwise disjoint.
void expect_disjoint_inside(std::vector<Range> r, const void *base, size_t bytes)
{
    const uintptr_t b = (uintptr_t)base;
    for (const Range &x : r) {
        EXPECT_GE(x.lo, b) << x.what;
        EXPECT_LE(x.hi, b + bytes) << x.what;
        EXPECT_LT(x.lo, x.hi) << x.what;
    }
    std::sort(r.begin(), r.end(), [](const Range &a, const Range &c) { return a.lo < c.lo; });
    for (size_t i = 1; i < r.size(); i++)
        EXPECT_LE(r[i - 1].hi, r[i].lo) << r[i - 1].what << " overlaps " << r[i].what;
}

Range range(const float *p, size_t count, const std::string &what)
{
    return Range{(uintptr_t)p, (uintptr_t)(p + count), what};
}

const char *kArenaCfg = "[net]\nbatch=2\nwidth=20\nheight=12\nchannels=3\n";

std::string arena_layers()
{
    return conv(16, 3, 1, 1, "leaky", 1) + conv(20, 3, 2, 1, "leaky", 1) +
           conv(7, 1, 1, 0, "linear", 0) + conv(5, 3, 1, 1, "logistic", 1);
}

TEST(NetArena, TrainingBuffersAreDisjointAndInTheirArenas)
{
    wh_net_opts o = opts(0, 1);
    Built b(kArenaCfg + arena_layers(), &o);
    ASSERT_EQ(b.st, WH_OK) << b.msg();
    wh_net *net = b.net;
    ASSERT_EQ(net->n_layers, 4);
    EXPECT_EQ(net->train, 1);

    std::vector<Range> params, grads, acts, douts;
    size_t n_param_floats = 0, n_grad_floats = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer &l = net->layers[i];
        const std::string li = "layer " + std::to_string(i) + " ";
        // darknet's order: biases, [scales, rolling_mean, rolling_variance], weights
        const bool bn = i != 2;
        ASSERT_EQ(l.n_params, bn ? 5 : 2) << i;
        EXPECT_STREQ(l.params[0].name, "biases");
        EXPECT_STREQ(l.params[l.n_params - 1].name, "weights");
        for (int p = 0; p < l.n_params; p++) {
            const wh_param &pr = l.params[p];
            ASSERT_NE(pr.data, nullptr) << li << pr.name;
            params.push_back(range(pr.data, pr.count, li + pr.name));
            n_param_floats += pr.count;
            const bool trained = std::strncmp(pr.name, "rolling_", 8) != 0;
            EXPECT_EQ((pr.flags & WH_PARAM_TRAIN) != 0, trained) << li << pr.name;
            if (trained) {
                ASSERT_NE(pr.grad, nullptr) << li << pr.name;
                grads.push_back(range(pr.grad, pr.count, li + pr.name + " grad"));
                n_grad_floats += pr.count;
            } else {
                EXPECT_EQ(pr.grad, nullptr) << li << pr.name;
            }
        }
        ASSERT_NE(l.out, nullptr);
        ASSERT_NE(l.dout, nullptr);
        const size_t n = wh_layout_count(l.out_shape, l.out_layout);
        acts.push_back(range(l.out, n, li + "out"));
        douts.push_back(range(l.dout, n, li + "dout"));
    }
    // 16*3*9 + 20*16*9 + 7*20 + 5*7*9 weights, and 16*4 + 20*4 + 7 + 5*4 per-filter
    EXPECT_EQ(n_param_floats, (size_t)(432 + 2880 + 140 + 315) + (64 + 80 + 7 + 20));
    EXPECT_EQ(n_grad_floats, (size_t)(432 + 2880 + 140 + 315) + (32 + 40 + 7 + 10));
    EXPECT_GE(net->arena_bytes[WH_ARENA_PARAM], n_param_floats * sizeof(float));
    EXPECT_GE(net->arena_bytes[WH_ARENA_GRAD], n_grad_floats * sizeof(float));
    expect_disjoint_inside(params, net->arena[WH_ARENA_PARAM], net->arena_bytes[WH_ARENA_PARAM]);
    expect_disjoint_inside(grads, net->arena[WH_ARENA_GRAD], net->arena_bytes[WH_ARENA_GRAD]);
    // without opts.share_outs no two outputs share a byte; the input lives with the layers' own buffers
    expect_disjoint_inside(acts, net->arena[WH_ARENA_OUT], net->arena_bytes[WH_ARENA_OUT]);
    expect_disjoint_inside({range(net->input, wh_shape_count(net->in_shape), "input")}, net->arena[WH_ARENA_ACT],
                           net->arena_bytes[WH_ARENA_ACT]);
    // without opts.share_douts no two activation gradients share a byte
    expect_disjoint_inside(douts, net->arena[WH_ARENA_DOUT], net->arena_bytes[WH_ARENA_DOUT]);
}

TEST(NetArena, InferenceNetHasNoGradientsAndNoBackward)
{
    wh_net_opts o = opts(1, 0);
    Built b(kArenaCfg + arena_layers(), &o);
    ASSERT_EQ(b.st, WH_OK) << b.msg();
    wh_net *net = b.net;
    EXPECT_EQ(net->train, 0);
    EXPECT_EQ(net->arena[WH_ARENA_GRAD], nullptr);
    EXPECT_EQ(net->arena_bytes[WH_ARENA_GRAD], 0u);
    std::vector<Range> params, acts;
    size_t n_param_floats = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer &l = net->layers[i];
        EXPECT_EQ(l.train, 0);
        EXPECT_EQ(l.dout, nullptr) << i;
        ASSERT_NE(l.out, nullptr) << i;
        acts.push_back(range(l.out, wh_layout_count(l.out_shape, l.out_layout),
                             "layer " + std::to_string(i) + " out"));
        for (int p = 0; p < l.n_params; p++) {
            EXPECT_EQ(l.params[p].grad, nullptr) << i << " " << l.params[p].name;
            params.push_back(range(l.params[p].data, l.params[p].count, l.params[p].name));
            n_param_floats += l.params[p].count;
        }
    }
    EXPECT_GE(net->arena_bytes[WH_ARENA_PARAM], n_param_floats * sizeof(float));
    expect_disjoint_inside(params, net->arena[WH_ARENA_PARAM], net->arena_bytes[WH_ARENA_PARAM]);
    expect_disjoint_inside(acts, net->arena[WH_ARENA_OUT], net->arena_bytes[WH_ARENA_OUT]);
    expect_disjoint_inside({range(net->input, wh_shape_count(net->in_shape), "input")}, net->arena[WH_ARENA_ACT],
                           net->arena_bytes[WH_ARENA_ACT]);

    wh_net_init_weights(net, 1);
    EXPECT_EQ(wh_net_forward(net, 0, &b.ctx), WH_OK) << b.msg();
    EXPECT_EQ(wh_net_backward(net, nullptr, &b.ctx), WH_ERR_STATE);
    EXPECT_EQ(b.ctx.status, WH_ERR_STATE);
    EXPECT_EQ(wh_net_backward_layer(net, 0, nullptr, &b.ctx), WH_ERR_STATE);
    EXPECT_EQ(wh_net_forward(net, 1, &b.ctx), WH_ERR_STATE); // no training buffers
    wh_net_zero_douts(net);                                  // harmless without douts
    wh_net_zero_grads(net);
}

// ------------------------------------------------------- initialisation

std::vector<float> all_params(const wh_net *net)
{
    std::vector<float> v;
    for (int i = 0; i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++) {
            const wh_param &pr = net->layers[i].params[p];
            v.insert(v.end(), pr.data, pr.data + pr.count);
        }
    return v;
}

TEST(NetInit, SameSeedSameWeightsOtherSeedOthers)
{
    wh_net_opts o = opts(1, 0);
    const std::string text = kArenaCfg + arena_layers();
    Built a(text, &o), b(text, &o);
    ASSERT_EQ(a.st, WH_OK) << a.msg();
    ASSERT_EQ(b.st, WH_OK) << b.msg();
    wh_net_init_weights(a.net, 12345);
    wh_net_init_weights(b.net, 12345);
    const std::vector<float> pa = all_params(a.net), pb = all_params(b.net);
    ASSERT_EQ(pa.size(), pb.size());
    EXPECT_TRUE(pa == pb);

    wh_net_init_weights(b.net, 12346);
    const std::vector<float> pc = all_params(b.net);
    // Weights differ almost everywhere; biases (0), BN scales (1), means (0)
    // and variances (1) are constants and stay equal.
    size_t n_weights = 0, differ = 0;
    for (int i = 0; i < a.net->n_layers; i++) {
        const wh_param *wa = find_param(&a.net->layers[i], "weights");
        const wh_param *wb = find_param(&b.net->layers[i], "weights");
        ASSERT_TRUE(wa && wb);
        for (size_t k = 0; k < wa->count; k++) differ += wa->data[k] != wb->data[k];
        n_weights += wa->count;
    }
    EXPECT_GT(differ, n_weights * 99 / 100);
    wh_net_init_weights(b.net, 12345); // back to the first seed: identical again
    EXPECT_TRUE(all_params(b.net) == pa);
}

TEST(NetInit, DarknetUniformScaleAndConstants)
{
    wh_net_opts o = opts(1, 0);
    Built b(kArenaCfg + arena_layers(), &o);
    ASSERT_EQ(b.st, WH_OK) << b.msg();
    wh_net_init_weights(b.net, 99);
    const int fan_in[4] = {3 * 9, 16 * 9, 20 * 1, 7 * 9};
    for (int i = 0; i < 4; i++) {
        const wh_layer &l = b.net->layers[i];
        const double scale = std::sqrt(2.0 / fan_in[i]);
        const wh_param *w = find_param(&l, "weights");
        double mx = 0, sum = 0;
        for (size_t k = 0; k < w->count; k++) {
            mx = std::max(mx, (double)std::fabs(w->data[k]));
            sum += w->data[k];
        }
        EXPECT_LE(mx, scale * (1 + 1e-6)) << i;
        EXPECT_GT(mx, scale * 0.8) << i;                         // uses the range
        EXPECT_LT(std::fabs(sum / w->count), scale * 0.25) << i; // roughly centred
        const wh_param *bias = find_param(&l, "biases");
        for (size_t k = 0; k < bias->count; k++) EXPECT_EQ(bias->data[k], 0.f);
        if (const wh_param *s = find_param(&l, "scales")) {
            for (size_t k = 0; k < s->count; k++) EXPECT_EQ(s->data[k], 1.f);
        }
        if (const wh_param *v = find_param(&l, "rolling_variance")) {
            for (size_t k = 0; k < v->count; k++) EXPECT_EQ(v->data[k], 1.f);
        }
    }
}

// ------------------------------------------------------- whole-net gradient

// xorshift64*, uniform in [-1, 1).
struct Rng {
    uint64_t s;
    float next()
    {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return (float)(((s * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0 * 2 - 1);
    }
};

// Central differences of loss = sum(out_last * R) (float64 sums of the
// float32 net's outputs). Leaky layers are piecewise linear: when a
// perturbation moves one of their pre-activations across 0 the difference
// quotient mixes both slopes, so such entries are reported as NaN and left
// out of the comparison. A leaky output is > 0 exactly when its input is, so
// the crossing shows in the sign of the layer's output.
struct FiniteDiff {
    wh_net *net;
    wh_ctx *ctx;
    std::vector<float> R;
    std::vector<int> leaky;                // layer indices
    std::vector<std::vector<char>> sign0;  // their output signs, unperturbed

    double loss()
    {
        EXPECT_EQ(wh_net_forward(net, 1, ctx), WH_OK) << ctx->msg;
        const wh_layer &last = net->layers[net->n_layers - 1];
        double s = 0;
        for (size_t i = 0; i < R.size(); i++) s += (double)last.out[i] * R[i];
        return s;
    }
    std::vector<std::vector<char>> signs() const
    {
        std::vector<std::vector<char>> v;
        for (int i : leaky) {
            const wh_layer &l = net->layers[i];
            const size_t n = wh_shape_count(l.out_shape);
            std::vector<char> sg(n);
            for (size_t k = 0; k < n; k++) sg[k] = l.out[k] > 0.f;
            v.push_back(std::move(sg));
        }
        return v;
    }
    void baseline()
    {
        loss();
        sign0 = signs();
    }
    // d loss / d x[k] for k = 0, stride, 2*stride, ... < n.
    std::vector<double> grad(float *x, size_t n, size_t stride, double h)
    {
        std::vector<double> g;
        for (size_t k = 0; k < n; k += stride) {
            const float x0 = x[k];
            const float xp = (float)(x0 + h), xm = (float)(x0 - h);
            x[k] = xp;
            const double lp = loss();
            bool kink = signs() != sign0;
            x[k] = xm;
            const double lm = loss();
            kink = kink || signs() != sign0;
            x[k] = x0;
            g.push_back(kink ? NAN : (lp - lm) / ((double)xp - (double)xm)); // the step taken
        }
        return g;
    }
};

std::vector<double> strided(const float *x, size_t n, size_t stride)
{
    std::vector<double> v;
    for (size_t k = 0; k < n; k += stride) v.push_back(x[k]);
    return v;
}

// Max |a - b| over max |b|, over the entries where b is not NaN. Also checks
// that at most a tenth of the entries were left out.
double rel_err(const std::vector<double> &a, const std::vector<double> &b, const char *what)
{
    EXPECT_EQ(a.size(), b.size()) << what;
    double d = 0, m = 0;
    size_t skipped = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) {
        if (std::isnan(b[i])) {
            skipped++;
            continue;
        }
        d = std::max(d, std::fabs(a[i] - b[i]));
        m = std::max(m, std::fabs(b[i]));
    }
    EXPECT_LE(skipped * 10, b.size()) << what << ": " << skipped << " of " << b.size()
                                      << " differences crossed a kink";
    return d / std::max(m, 1e-30);
}

void check_net_gradient(uint64_t seed)
{
    wh_net_opts o = opts(0, 1);
    const std::string text = "[net]\nbatch=2\nwidth=9\nheight=7\nchannels=3\n" +
                             conv(4, 3, 1, 1, "leaky") + conv(5, 3, 2, 1, "linear") +
                             conv(3, 1, 1, 0, "leaky");
    Built b(text, &o);
    ASSERT_EQ(b.st, WH_OK) << b.msg();
    wh_net *net = b.net;
    wh_ctx *ctx = &b.ctx;
    ASSERT_EQ(net->n_layers, 3);
    const wh_shape os = net->layers[2].out_shape;
    ASSERT_EQ(os.n, 2);
    ASSERT_EQ(os.c, 3);
    ASSERT_EQ(os.h, 4); // (7 + 2 - 3)/2 + 1
    ASSERT_EQ(os.w, 5); // (9 + 2 - 3)/2 + 1

    Rng rng{seed * 0x9E3779B97F4A7C15ull + 1};
    wh_net_init_weights(net, seed);
    // Non-zero biases so that they matter too.
    for (int i = 0; i < 3; i++) {
        wh_param *bias = &net->layers[i].params[0];
        ASSERT_STREQ(bias->name, "biases");
        for (size_t k = 0; k < bias->count; k++) bias->data[k] = 0.1f * rng.next();
    }
    // Inputs that keep every leaky pre-activation at least 1e-3 away from
    // the kink at 0 (a few draws at most), so that the steps below rarely
    // cross it; FiniteDiff leaves out the differences that still do.
    const size_t n_in = wh_shape_count(net->in_shape);
    const int leaky[2] = {0, 2};
    double margin = 0;
    for (int draw = 0; draw < 100 && margin < 1e-3; draw++) {
        for (size_t k = 0; k < n_in; k++) net->input[k] = rng.next();
        ASSERT_EQ(wh_net_forward(net, 1, ctx), WH_OK) << ctx->msg;
        margin = INFINITY;
        for (int i : leaky) {
            const wh_layer &l = net->layers[i];
            for (size_t k = 0; k < wh_shape_count(l.out_shape); k++) {
                const double pre = l.out[k] > 0 ? l.out[k] : l.out[k] / 0.1; // leaky: 0.1x
                margin = std::min(margin, std::fabs(pre));
            }
        }
    }
    ASSERT_GE(margin, 1e-3);
    FiniteDiff fd{net, ctx, std::vector<float>(wh_shape_count(os)), {leaky[0], leaky[1]}, {}};
    for (float &r : fd.R) r = rng.next();

    // Analytic: seed dL/d out_last = R and back-propagate.
    ASSERT_EQ(wh_net_forward(net, 1, ctx), WH_OK) << ctx->msg;
    wh_net_zero_douts(net);
    wh_net_zero_grads(net);
    std::memcpy(net->layers[2].dout, fd.R.data(), fd.R.size() * sizeof(float));
    std::vector<float> din(n_in, 0.f);
    ASSERT_EQ(wh_net_backward(net, din.data(), ctx), WH_OK) << ctx->msg;

    wh_layer *l0 = &net->layers[0];
    wh_param *w0 = &l0->params[1], *b0 = &l0->params[0];
    ASSERT_STREQ(w0->name, "weights");
    ASSERT_EQ(w0->count, (size_t)4 * 3 * 3 * 3);
    wh_param *w2 = &net->layers[2].params[1];
    const std::vector<double> gw = strided(w0->grad, w0->count, 1);
    const std::vector<double> gb = strided(b0->grad, b0->count, 1);
    const std::vector<double> gx = strided(din.data(), n_in, 5); // every 5th input
    const std::vector<double> gw2 = strided(w2->grad, w2->count, 1);

    // Numeric: a step of 1e-3 of the largest weight (1e-3 for the inputs, in
    // [-1, 1]); float32 rounding in the loss difference stays near 1e-4 of
    // the gradient.
    double wmax = 0;
    for (size_t k = 0; k < w0->count; k++) wmax = std::max(wmax, (double)std::fabs(w0->data[k]));
    const double h = 1e-3 * wmax;
    fd.baseline();
    const std::vector<double> fw = fd.grad(w0->data, w0->count, 1, h);
    const std::vector<double> fb = fd.grad(b0->data, b0->count, 1, h);
    const std::vector<double> fx = fd.grad(net->input, n_in, 5, 1e-3);
    const std::vector<double> fw2 = fd.grad(w2->data, w2->count, 1, h);

    double mfw = 0;
    for (double v : fw)
        if (!std::isnan(v)) mfw = std::max(mfw, std::fabs(v));
    EXPECT_GT(mfw, 0.1); // the check is not vacuous
    EXPECT_LT(rel_err(gw, fw, "w0"), 1e-2) << "first layer weights";
    EXPECT_LT(rel_err(gb, fb, "b0"), 1e-2) << "first layer biases";
    EXPECT_LT(rel_err(gx, fx, "input"), 1e-2) << "input";
    EXPECT_LT(rel_err(gw2, fw2, "w2"), 1e-2) << "last layer weights";

    // Parameter gradients accumulate across backward calls (subdivisions).
    ASSERT_EQ(wh_net_forward(net, 1, ctx), WH_OK) << ctx->msg;
    wh_net_zero_douts(net);
    std::memcpy(net->layers[2].dout, fd.R.data(), fd.R.size() * sizeof(float));
    ASSERT_EQ(wh_net_backward(net, nullptr, ctx), WH_OK) << ctx->msg;
    std::vector<double> twice(w0->grad, w0->grad + w0->count), gw_x2(gw);
    for (double &v : gw_x2) v *= 2;
    EXPECT_LT(rel_err(twice, gw_x2, "accumulated"), 1e-5);
    wh_net_zero_grads(net);
    for (size_t k = 0; k < w0->count; k++) ASSERT_EQ(w0->grad[k], 0.f);
}

TEST(NetGrad, ForwardBackwardMatchesFiniteDifferences)
{
    for (uint64_t seed : {7u, 8u, 9u, 10u}) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        check_net_gradient(seed);
    }
}

}  // namespace

// ------------------------------------------------------- numerical checks

// opts.check_finite: a NaN in the input shows in the first layer's output.
// A convolution with batch norm sees it in the statistics it computes anyway
// (and then skips the net's scan), one without through the scan; an
// infinity seeded into a gradient is caught before the layer uses it.
TEST(NetCheck, NonFiniteOutputsAndGradientsAreNamed)
{
    for (int bn = 0; bn < 2; bn++) {
        const std::string text = std::string("[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\n") +
                                 "[convolutional]\nbatch_normalize=" + std::to_string(bn) +
                                 "\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n" +
                                 "[convolutional]\nfilters=8\nsize=1\nstride=1\npad=1\nactivation=linear\n";
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_cfg *cfg = nullptr;
        ASSERT_EQ(wh_cfg_parse_string(text.c_str(), "t.cfg", &cfg, &ctx), WH_OK) << ctx.msg;
        wh_net_opts o = {};
        o.train = 1, o.blocked = 1, o.check_finite = 1;
        wh_net *net = nullptr;
        ASSERT_EQ(wh_net_create(cfg, &o, &net, &ctx), WH_OK) << ctx.msg;
        wh_cfg_free(cfg);
        wh_net_init_weights(net, 3);
        const size_t n = wh_shape_count(net->in_shape);
        for (size_t i = 0; i < n; i++) net->input[i] = (float)((i * 37) % 11) / 11.f;
        net->input[n / 2] = NAN;
        EXPECT_EQ(wh_net_forward(net, 1, &ctx), WH_ERR_NUMERIC) << "bn " << bn;
        EXPECT_NE(std::string(ctx.msg).find("layer 0 [convolutional] forward: non-finite output"), std::string::npos)
            << ctx.msg;
        EXPECT_NE(std::string(ctx.msg).find(bn ? "batch-norm sums of channel" : "(nan), element"), std::string::npos)
            << ctx.msg;
        // a clean forward, then an infinity in the last layer's seeded gradient
        net->input[n / 2] = 0.5f;
        wh_ctx_init(&ctx);
        ASSERT_EQ(wh_net_forward(net, 1, &ctx), WH_OK) << ctx.msg;
        wh_net_zero_douts(net);
        wh_layer *last = &net->layers[1];
        last->dout[7] = INFINITY;
        EXPECT_EQ(wh_net_backward(net, nullptr, &ctx), WH_ERR_NUMERIC);
        EXPECT_NE(std::string(ctx.msg).find("layer 1 [convolutional]: non-finite gradient (inf) of its output, "
                                            "element 7, made by the backward of the loss"),
                  std::string::npos)
            << ctx.msg;
        wh_net_destroy(net);
    }
}
