// Layouts: the net inserts a reorder exactly where a producer's layout is not
// one its consumer accepts, forward and backward. A test layer type that
// only works in nChw16c (registered through wh_layer_register) sits between
// plain-NCHW layers; the results must equal the plain computation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <set>
#include <string>

#include "model_util.h"

#include <random>
#include <string>
#include <vector>

extern "C" {
#include "framework/core/net.h"
#include "layers/yolo.h"
}

namespace {

// [blocked_scale]: y = 2x, input and output in nChw16c only.
wh_status bs_init(wh_layer *, wh_cfg_section *, wh_ctx *) { return WH_OK; }
wh_status bs_shape(wh_layer *l, wh_ctx *ctx)
{
    if (l->in_layout[0] != WH_LAYOUT_NCHW16C) return wh_error(ctx, WH_ERR_STATE, "not blocked");
    l->out_shape = l->in_shape[0];
    l->out_layout = WH_LAYOUT_NCHW16C;
    return WH_OK;
}
wh_status bs_forward(wh_layer *l, wh_exec *x)
{
    size_t n = wh_layout_count(l->out_shape, l->out_layout);
    for (size_t i = 0; i < n; i++) l->out[i] = 2.f * x->in[0][i];
    return WH_OK;
}
wh_status bs_backward(wh_layer *l, wh_exec *x)
{
    size_t n = wh_layout_count(l->out_shape, l->out_layout);
    if (x->din[0])
        for (size_t i = 0; i < n; i++) x->din[0][i] += 2.f * l->dout[i];
    return WH_OK;
}
const wh_layer_ops bs_ops = {
    "blocked_scale", WH_FLOW_SAME, WH_LAYOUT_BIT(WH_LAYOUT_NCHW16C), bs_init, bs_shape, nullptr,
    nullptr, nullptr, bs_forward, bs_backward, nullptr, nullptr, nullptr, nullptr, 0, 0, nullptr, nullptr, nullptr};

void register_once()
{
    static bool done = false;
    if (done) return;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_layer_register(&bs_ops, &ctx), WH_OK) << ctx.msg;
    done = true;
}

}  // namespace

TEST(Layout, ReordersOnlyWhereNeighboursDisagree)
{
    register_once();
    // 0 upsample(NCHW) -> 1 blocked -> 2 blocked -> 3 upsample(NCHW) -> 4 route(3, 0)
    const char *text =
        "[net]\nbatch=2\nwidth=5\nheight=3\nchannels=20\n"
        "[upsample]\nstride=1\n[blocked_scale]\n[blocked_scale]\n[upsample]\nstride=1\n"
        "[route]\nlayers=-1,0\n";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    ASSERT_EQ(wh_cfg_parse_string(text, "layout.cfg", &cfg, &ctx), WH_OK) << ctx.msg;
    wh_net_opts o = {};
    o.train = 1;
    wh_net *net = nullptr;
    ASSERT_EQ(wh_net_create(cfg, &o, &net, &ctx), WH_OK) << ctx.msg;
    wh_cfg_free(cfg);
    EXPECT_EQ(net->n_layout_cvt, 2);  // into layer 1, and out of layer 2 into layer 3
    EXPECT_NE(net->layers[1].in_cvt[0], nullptr);
    EXPECT_EQ(net->layers[2].in_cvt[0], nullptr);
    EXPECT_NE(net->layers[3].in_cvt[0], nullptr);
    EXPECT_EQ(net->layers[4].in_cvt[0], nullptr);
    EXPECT_EQ(net->layers[4].in_cvt[1], nullptr);

    const size_t n = 2 * 20 * 3 * 5;
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> x(n), R(2 * n);
    for (auto &v : x) v = u(rng);
    for (auto &v : R) v = u(rng);
    std::copy(x.begin(), x.end(), net->input);
    ASSERT_EQ(wh_net_forward(net, 1, &ctx), WH_OK) << ctx.msg;
    // route output: (N, 40, H, W) = [4x ; x] per image
    const float *out = net->layers[4].out;
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 40; c++)
            for (int i = 0; i < 15; i++) {
                float want = c < 20 ? 4.f * x[(b * 20 + c) * 15 + i] : x[(b * 20 + c - 20) * 15 + i];
                ASSERT_FLOAT_EQ(out[(b * 40 + c) * 15 + i], want) << b << " " << c << " " << i;
            }
    // backward: d input = 4 R[first half] + R[second half]
    wh_net_zero_douts(net);
    std::copy(R.begin(), R.end(), net->layers[4].dout);
    std::vector<float> dx(n, 0.f);
    ASSERT_EQ(wh_net_backward(net, dx.data(), &ctx), WH_OK) << ctx.msg;
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 20; c++)
            for (int i = 0; i < 15; i++)
                ASSERT_NEAR(dx[(b * 20 + c) * 15 + i],
                            4.f * R[(b * 40 + c) * 15 + i] + R[(b * 40 + c + 20) * 15 + i], 1e-5);
    wh_net_destroy(net);
}

TEST(Layout, RegisteringAKnownNameFails)
{
    register_once();
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    EXPECT_EQ(wh_layer_register(&bs_ops, &ctx), WH_ERR_ARG);
    EXPECT_NE(std::string(ctx.msg).find("already registered"), std::string::npos);
}

namespace {
// Plain and blocked inference networks of one model with the same random
// parameters and input: every layer's output, brought to NCHW, must agree.
void compare_blocked(const char *model, const std::string &text, int min_blocked, bool mixed)
{
    wh_net *a = wht::cfg_net(text, 2, 0, 0), *b = wht::cfg_net(text, 2, 0, 1);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    wh_net_init_weights(a, 7);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1, 1);
    for (int i = 0; i < a->n_layers; i++)
        for (int p = 0; p < a->layers[i].n_params; p++) {
            wh_param *pa = &a->layers[i].params[p];
            const bool var = !strcmp(pa->name, "rolling_variance"), scal = !strcmp(pa->name, "scales");
            for (size_t t = 0; t < pa->count; t++) {
                if (var) pa->data[t] = 0.5f + 0.5f * (u(rng) + 1.f);
                else if (scal || !strcmp(pa->name, "biases") || !strcmp(pa->name, "rolling_mean"))
                    pa->data[t] = 0.3f * u(rng) + (scal ? 1.f : 0.f);
            }
            memcpy(b->layers[i].params[p].data, pa->data, pa->count * sizeof(float));
        }
    const size_t n = wh_shape_count(a->in_shape);
    for (size_t t = 0; t < n; t++) a->input[t] = b->input[t] = 0.5f * (u(rng) + 1.f);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_net_forward(a, 0, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_forward(b, 0, &ctx), WH_OK) << ctx.msg;
    int blocked = 0;
    std::set<std::string> types;
    for (int i = 0; i < a->n_layers; i++) {
        const wh_layer *la = &a->layers[i], *lb = &b->layers[i];
        ASSERT_EQ(la->out_layout, WH_LAYOUT_NCHW) << "plain nets stay NCHW";
        const size_t m = wh_shape_count(la->out_shape);
        std::vector<float> got(m);
        wh_tensor src = {lb->out, lb->out_shape, lb->out_layout}, dst = {got.data(), la->out_shape, WH_LAYOUT_NCHW};
        wh_tensor_reorder(&src, &dst);
        double err = 0, ref = 0;
        for (size_t t = 0; t < m; t++) {
            err = std::max(err, (double)std::fabs(got[t] - la->out[t]));
            ref = std::max(ref, (double)std::fabs(la->out[t]));
        }
        EXPECT_LE(err, 1e-4 * (1 + ref)) << model << " layer " << i << " " << la->ops->type;
        if (lb->out_layout != WH_LAYOUT_NCHW) {
            blocked++;
            types.insert(lb->ops->type);
        }
        if (!strcmp(lb->ops->type, "yolo")) {
            EXPECT_EQ(lb->out_layout, WH_LAYOUT_NCHW);
        }
    }
    EXPECT_GE(blocked, min_blocked) << model;
    // only the detection convs (3 * (2 + 5) = 21 filters) stay NCHW, unless
    // a conv of 20 filters mixes the layouts
    int plain_convs = 0, heads = 0;
    for (int i = 0; i < b->n_layers; i++) {
        plain_convs += b->layers[i].out_layout == WH_LAYOUT_NCHW && !strcmp(b->layers[i].ops->type, "convolutional");
        heads += !strcmp(b->layers[i].ops->type, "yolo");
    }
    if (!mixed) {
        EXPECT_EQ(plain_convs, heads) << model;
    } else {
        EXPECT_GT(plain_convs, heads) << model;
    }
    if (min_blocked > 0) {
        EXPECT_TRUE(types.count("convolutional") && types.count("route")) << model;
    }
    std::string seen;
    for (const auto &t : types) seen += t + " ";
    ::testing::Test::RecordProperty(std::string(model) + "_blocked_layers", blocked);
    ::testing::Test::RecordProperty(std::string(model) + "_blocked_types", seen);
    wh_net_destroy(a);
    wh_net_destroy(b);
}
}  // namespace

TEST(Layout, BlockedInferenceNetsComputeWhatPlainOnesDo)
{
    // Width 0.5: every non-head conv a multiple of 16 (and of 8), blocked end
    // to end through pools, upsamples, routes (grouped ones too) and
    // shortcuts, in the block oneDNN uses on this CPU (8 on AVX2, 16 on
    // AVX-512). Then yolov4-tiny with a 20-filter conv before its first
    // grouped route: that conv and the route stay NCHW, the net reorders.
    compare_blocked("yolov4-tiny", wht::model_cfg("yolov4-tiny", 2, 96, 0.5), 30, false);
    compare_blocked("yolov4", wht::model_cfg("yolov4", 2, 96, 0.5), 150, false);
    compare_blocked("yolov3", wht::model_cfg("yolov3", 2, 96, 0.5), 95, false);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *mixed = nullptr;
    ASSERT_EQ(wh_cfg_text_set_layer(wht::model_cfg("yolov4-tiny", 2, 96, 0.5).c_str(), 2, "filters", "20", &mixed, &ctx),
              WH_OK);
    compare_blocked("yolov4-tiny/20", mixed, 20, true);
    free(mixed);
}

// Training in the blocked layout is the plain computation, reordered: the
// same network built twice (opts.blocked 0 and 1), the same weights, input and
// boxes; one training step; every layer's output and output gradient, every
// parameter gradient and running statistic must agree. The plain path is the
// one the layer tests check against float64 references and finite
// differences; this test makes every blocked kernel answer to it. The models
// mix the layouts: at width x0.25 yolov4's 8-channel layers stay plain next
// to blocked 16- and 32-channel ones (with 8-channel blocks on AVX2 more of
// them block), so reorders at the borders are covered too.
namespace {

std::vector<float> plain_copy(const float *data, wh_shape s, wh_layout lay)
{
    std::vector<float> v(wh_shape_count(s));
    wh_tensor from = {const_cast<float *>(data), s, lay}, to = {v.data(), s, WH_LAYOUT_NCHW};
    wh_tensor_reorder(&from, &to);
    return v;
}

double max_rel(const std::vector<float> &a, const std::vector<float> &b)
{
    double m = 0, d = 0;
    for (size_t i = 0; i < a.size(); i++) {
        m = std::max(m, (double)std::fabs(b[i]));
        d = std::max(d, (double)std::fabs(a[i] - b[i]));
    }
    return m > 0 ? d / m : d;
}

// One training step as the trainer runs it, layer by layer both ways: each
// layer's output is copied (in NCHW) right after its forward and its output
// gradient just before its own backward, while they are complete and alive
// (with opts.share_outs and share_douts their bytes are reused later).
void train_step(wh_net *net, const std::vector<float> &x, const std::vector<wh_truth> &truth, int max_boxes,
                std::vector<std::vector<float>> &outs, std::vector<std::vector<float>> &douts)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    std::copy(x.begin(), x.end(), net->input);
    wh_net_zero_grads(net);
    outs.assign((size_t)net->n_layers, {});
    for (int i = 0; i < net->n_layers; i++) {
        ASSERT_EQ(wh_net_forward_layer(net, i, 1, &ctx), WH_OK) << ctx.msg;
        const wh_layer *l = &net->layers[i];
        outs[(size_t)i] = plain_copy(l->out, l->out_shape, l->out_layout);
    }
    wh_net_zero_douts(net);
    for (int i = 0; i < net->n_layers; i++) {
        if (!wh_yolo_get(&net->layers[i])) continue;
        ASSERT_EQ(wh_yolo_loss(&net->layers[i], truth.data(), max_boxes, net->in_shape.w, net->in_shape.h, nullptr,
                               &ctx),
                  WH_OK)
            << ctx.msg;
    }
    douts.assign((size_t)net->n_layers, {});
    for (int i = net->n_layers - 1; i >= 0; i--) {
        const wh_layer *l = &net->layers[i];
        douts[(size_t)i] = plain_copy(l->dout, l->out_shape, l->out_layout);
        ASSERT_EQ(wh_net_backward_layer(net, i, nullptr, &ctx), WH_OK) << ctx.msg;
    }
}

void blocked_matches_plain(const char *model, int size, double wm, int batch, int *n_blocked)
{
    const std::string text = wht::model_cfg(model, 3, size, wm);
    // the blocked net also shares its gradient and output memory by lifetime
    wh_net *plain = wht::cfg_net(text, batch, 1, 0), *blk = wht::cfg_net(text, batch, 1, 1, 1, 1);
    ASSERT_TRUE(plain && blk);
    ASSERT_EQ(plain->n_layers, blk->n_layers);
    wh_net_init_weights(plain, 7);
    wh_net_init_weights(blk, 7);
    *n_blocked = 0;
    for (int i = 0; i < blk->n_layers; i++) *n_blocked += blk->layers[i].out_layout != WH_LAYOUT_NCHW;
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(0, 1);
    std::vector<float> x(wh_shape_count(plain->in_shape));
    for (auto &v : x) v = u(rng);
    const int max_boxes = 4;
    std::vector<wh_truth> truth((size_t)batch * max_boxes);
    for (int b = 0; b < batch; b++)
        for (int j = 0; j < 3; j++) {
            wh_truth &t = truth[(size_t)b * max_boxes + j];
            t.w = 0.1f + 0.4f * u(rng), t.h = 0.1f + 0.4f * u(rng);
            t.x = t.w / 2 + (1 - t.w) * u(rng), t.y = t.h / 2 + (1 - t.h) * u(rng);
            t.cls = j % 3;
        }
    std::vector<std::vector<float>> oplain, oblk, dplain, dblk;
    train_step(plain, x, truth, max_boxes, oplain, dplain);
    train_step(blk, x, truth, max_boxes, oblk, dblk);
    EXPECT_LT(blk->arena_bytes[WH_ARENA_DOUT], plain->arena_bytes[WH_ARENA_DOUT] / 2);
    // outputs no backward reads share bytes (blocked layouts pad nothing here)
    EXPECT_LT(blk->arena_bytes[WH_ARENA_OUT], plain->arena_bytes[WH_ARENA_OUT] * 9 / 10);
    for (int i = 0; i < plain->n_layers; i++) {
        const wh_layer *a = &plain->layers[i], *b = &blk->layers[i];
        ASSERT_EQ(a->out_layout, WH_LAYOUT_NCHW);
        const auto &pa = oplain[(size_t)i], &pb = oblk[(size_t)i];
        EXPECT_LT(max_rel(pb, pa), 1e-4) << model << " layer " << i << " [" << a->ops->type << "] output, "
                                          << wh_layout_name(b->out_layout);
        const auto &ga = dplain[(size_t)i], &gb = dblk[(size_t)i];
        EXPECT_LT(max_rel(gb, ga), 1e-3) << model << " layer " << i << " [" << a->ops->type
                                         << "] output gradient, " << wh_layout_name(b->out_layout);
        for (int k = 0; k < a->n_params; k++) {
            const wh_param &p = a->params[k], &q = b->params[k];
            std::vector<float> d0(p.data, p.data + p.count), d1(q.data, q.data + q.count);
            EXPECT_LT(max_rel(d1, d0), 1e-4) << model << " layer " << i << " " << p.name;
            if (!p.grad) continue;
            std::vector<float> g0(p.grad, p.grad + p.count), g1(q.grad, q.grad + q.count);
            EXPECT_LT(max_rel(g1, g0), 1e-3) << model << " layer " << i << " " << p.name << " gradient";
        }
    }
    wh_net_destroy(plain);
    wh_net_destroy(blk);
}

}  // namespace

TEST(Layout, BlockedTrainingStepEqualsPlainTinyV4)
{
    int n_blocked = 0;
    blocked_matches_plain("yolov4-tiny", 96, 0.5, 2, &n_blocked);
    EXPECT_GT(n_blocked, 20);  // the backbone and necks really ran blocked
}

TEST(Layout, BlockedTrainingStepEqualsPlainYoloV4)
{
    int n_blocked = 0;
    blocked_matches_plain("yolov4", 64, 0.25, 2, &n_blocked);
    EXPECT_GT(n_blocked, 50);
}
