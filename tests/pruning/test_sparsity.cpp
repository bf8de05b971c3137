// Stage 1 building blocks: the plug-in spec syntax, the sparsity schedulers
// (rates per channel against hand-worked values, state through a
// checkpoint), the prunable set of real YOLO graphs (known counts), and the
// L1 regulariser's update.
#include "model_util.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

extern "C" {
#include "framework/plot/plot.h"
#include "pruning/sparsity.h"
}

using wht::contains;

TEST(Spec, ParsesNameKeysValues)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_spec s;
    ASSERT_EQ(wh_spec_parse("dynamic:s=1e-4,part=0.4", &s, &ctx), WH_OK) << ctx.msg;
    EXPECT_STREQ(s.name, "dynamic");
    ASSERT_EQ(s.n, 2);
    EXPECT_STREQ(s.key[1], "part");
    EXPECT_STREQ(s.val[1], "0.4");
    ASSERT_EQ(wh_spec_parse("constant", &s, &ctx), WH_OK);
    EXPECT_EQ(s.n, 0);
}

TEST(Spec, BadSpecsSayWhatIsWrong)
{
    struct {
        const char *spec, *want;
    } bad[] = {{"", "empty spec"},
               {":s=1", "bad plug-in name"},
               {"constant:s", "expected key=value"},
               {"constant:=1", "expected key=value"},
               {"constant:s=", "expected key=value"},
               {"constant:s=1,s=2", "given twice"},
               {"constant:s=1,", "trailing comma"},
               {"bogus:s=1", "unknown sparsity scheduler 'bogus' (known: constant, step, linear, cosine, dynamic, feedback"},
               {"dynamic:rate=1", "unknown key 'rate' (valid: s, part, share, factor)"},
               {"constant:s=abc", "is not a number"},
               {"dynamic:part=1.5", "out of range"}};
    for (const auto &b : bad) {
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_sched *s = nullptr;
        EXPECT_EQ(wh_sched_create(b.spec, &s, &ctx), WH_ERR_ARG) << b.spec;
        EXPECT_EQ(s, nullptr);
        EXPECT_TRUE(contains(ctx.msg, b.want)) << b.spec << ": " << ctx.msg;
    }
}

namespace {
std::vector<float> rates(wh_sched *s, long it, long max_it, const std::vector<float> &g)
{
    std::vector<float> r(g.size());
    s->ops->rates(s->state, it, max_it, g.data(), (int)g.size(), r.data());
    return r;
}
wh_sched *make(const char *spec)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_sched *s = nullptr;
    EXPECT_EQ(wh_sched_create(spec, &s, &ctx), WH_OK) << ctx.msg;
    return s;
}
}  // namespace

TEST(Schedulers, SimpleRatesByHand)
{
    std::vector<float> g(4, 0.5f);
    wh_sched *c = make("constant:s=0.001"), *st = make("step:s=0.01,at=0.5,factor=0.1");
    wh_sched *li = make("linear:s=0.01,end=0.002"), *co = make("cosine:s=0.01,end=0");
    EXPECT_FLOAT_EQ(rates(c, 7, 10, g)[3], 0.001f);
    EXPECT_FLOAT_EQ(rates(st, 4, 10, g)[0], 0.01f);
    EXPECT_FLOAT_EQ(rates(st, 5, 10, g)[0], 0.001f);
    EXPECT_FLOAT_EQ(rates(li, 5, 10, g)[0], 0.006f);
    EXPECT_FLOAT_EQ(rates(co, 5, 10, g)[0], 0.005f);
    EXPECT_NEAR(rates(co, 10, 10, g)[0], 0.f, 1e-9);
    for (wh_sched *s : {c, st, li, co}) wh_sched_destroy(s);
}

TEST(Schedulers, DynamicReleasesTheTopShareAfterItsPart)
{
    // 20 channels, |gamma| = 0.05 * (c + 1) except a few shuffled: the top
    // 35 % = 7 channels are the 7 largest.
    std::vector<float> g(20);
    for (int c = 0; c < 20; c++) g[c] = 0.05f * (float)((c * 7) % 20 + 1);
    wh_sched *d = make("dynamic:s=1e-3,part=0.4,share=0.35,factor=0.01");
    std::vector<float> before = rates(d, 39, 100, g), after = rates(d, 40, 100, g);
    int released = 0;
    for (int c = 0; c < 20; c++) {
        EXPECT_FLOAT_EQ(before[c], 1e-3f) << c;
        const bool top = g[c] > 0.05f * 13.5f;  // values 14..20 (x 0.05) are the top 7
        EXPECT_FLOAT_EQ(after[c], top ? 1e-5f : 1e-3f) << c << " gamma " << g[c];
        released += top;
    }
    EXPECT_EQ(released, 7);
    wh_sched_destroy(d);
}

TEST(Schedulers, FeedbackSteersAndResumesThroughACheckpoint)
{
    std::vector<float> g(10, 0.5f);  // nothing below thresh: behind the plan -> the rate grows
    wh_sched *f = make("feedback:s=1e-4,target=0.5,thresh=0.01,by=0.5,gain=0.1");
    EXPECT_FLOAT_EQ(rates(f, 0, 100, g)[0], 1e-4f);  // at t=0 the plan wants 0: on plan
    EXPECT_NEAR(rates(f, 10, 100, g)[0], 1.1e-4, 1e-10);
    EXPECT_NEAR(rates(f, 20, 100, g)[0], 1.21e-4, 1e-10);
    std::vector<float> ahead(10, 0.f);  // everything below thresh: ahead -> the rate shrinks
    EXPECT_NEAR(rates(f, 30, 100, ahead)[0], 1.1e-4, 1e-10);

    std::string path = ::testing::TempDir() + "sched_state_" + std::to_string(getpid()) + ".h5";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_writer *w = nullptr;
    ASSERT_EQ(wh_ckpt_create(path.c_str(), &w, &ctx), WH_OK);
    ASSERT_EQ(wh_sched_save(f, w, "sparsity", &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_commit(w, &ctx), WH_OK) << ctx.msg;
    wh_sched *again = make("feedback:s=1e-4,target=0.5,thresh=0.01,by=0.5,gain=0.1");
    wh_ckpt_reader *r = nullptr;
    ASSERT_EQ(wh_ckpt_open(path.c_str(), &r, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_sched_load(again, r, "sparsity", &ctx), WH_OK) << ctx.msg;
    for (long it = 31; it < 40; it++) EXPECT_EQ(rates(again, it, 100, g)[0], rates(f, it, 100, g)[0]) << it;
    wh_sched *other = make("constant:s=1e-4");
    EXPECT_EQ(wh_sched_load(other, r, "sparsity", &ctx), WH_ERR_ARG);
    EXPECT_TRUE(contains(ctx.msg, "not 'constant:s=1e-4'")) << ctx.msg;
    wh_ckpt_close(r);
    std::remove(path.c_str());
    for (wh_sched *s : {f, again, other}) wh_sched_destroy(s);
}

TEST(Schedulers, EveryPlugInResumesToTheSameRates)
{
    // Run each scheduler 0..19, save at 20, reload into a fresh one, and the
    // rates of 20..59 must equal those of the uninterrupted instance. The
    // gammas change with it so stateful schedulers really carry state.
    const char *specs[] = {"constant:s=1e-3", "step:s=1e-2,at=0.5,factor=0.1", "linear:s=1e-2,end=1e-3",
                           "cosine:s=1e-2,end=0", "dynamic:s=1e-3,part=0.4,share=0.35,factor=0.01",
                           "feedback:s=1e-4,target=0.5,thresh=0.01,by=0.5,gain=0.1"};
    char names[256];
    wh_sched_names(names, sizeof(names));
    int covered = 0;
    for (const char *spec : specs) {
        covered += contains(names, std::string(spec).substr(0, std::string(spec).find(':')));
        auto gam = [](long it) {
            std::vector<float> g(16);
            for (int c = 0; c < 16; c++) g[c] = 0.002f * (float)(((c * 5 + it) % 16) + 1) / (1.f + 0.05f * it);
            return g;
        };
        wh_sched *a = make(spec);
        for (long it = 0; it < 20; it++) rates(a, it, 60, gam(it));
        std::string path = ::testing::TempDir() + "sched_all_" + std::to_string(getpid()) + ".h5";
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_ckpt_writer *w = nullptr;
        ASSERT_EQ(wh_ckpt_create(path.c_str(), &w, &ctx), WH_OK);
        ASSERT_EQ(wh_sched_save(a, w, "sparsity", &ctx), WH_OK) << ctx.msg;
        ASSERT_EQ(wh_ckpt_commit(w, &ctx), WH_OK) << ctx.msg;
        wh_sched *b = make(spec);
        wh_ckpt_reader *r = nullptr;
        ASSERT_EQ(wh_ckpt_open(path.c_str(), &r, &ctx), WH_OK) << ctx.msg;
        ASSERT_EQ(wh_sched_load(b, r, "sparsity", &ctx), WH_OK) << spec << ": " << ctx.msg;
        wh_ckpt_close(r);
        std::remove(path.c_str());
        for (long it = 20; it < 60; it++) {
            std::vector<float> ra = rates(a, it, 60, gam(it)), rb = rates(b, it, 60, gam(it));
            for (int c = 0; c < 16; c++) ASSERT_EQ(ra[c], rb[c]) << spec << " it " << it << " c " << c;
        }
        wh_sched_destroy(a);
        wh_sched_destroy(b);
    }
    EXPECT_EQ(covered, 6) << "a registered scheduler is missing from this test: " << names;
    EXPECT_TRUE(contains(names, "constant, step, linear, cosine, dynamic, feedback")) << names;
}

namespace {
// A scheduler of the user's: twice s for every channel.
const char *const k_user_keys[] = {"s", nullptr};
wh_status user_create(const wh_spec *spec, void **state, wh_ctx *ctx)
{
    double *s = new double;
    wh_status st = wh_spec_double(spec, "s", 1e-4, 0, 1, s, ctx);
    if (st != WH_OK) delete s;
    else *state = s;
    return st;
}
void user_rates(void *state, long, long, const float *, int n, float *s)
{
    for (int c = 0; c < n; c++) s[c] = (float)(2 * *(double *)state);
}
void user_destroy(void *state) { delete (double *)state; }
}  // namespace

TEST(Schedulers, UserPlugInsRegisterAndParseLikeBuiltIns)
{
    static const wh_sched_ops ops = {"user-double", k_user_keys, "2 s", user_create, user_rates, user_destroy,
                                     0, nullptr, nullptr};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_sched_register(&ops, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(wh_sched_register(&ops, &ctx), WH_ERR_ARG);
    EXPECT_TRUE(contains(ctx.msg, "'user-double' is already registered")) << ctx.msg;
    static const wh_sched_ops clash = {"dynamic", k_user_keys, "", user_create, user_rates, user_destroy,
                                       0, nullptr, nullptr};
    EXPECT_EQ(wh_sched_register(&clash, &ctx), WH_ERR_ARG) << "a built-in name";
    static const wh_sched_ops colon = {"a:b", k_user_keys, "", user_create, user_rates, user_destroy,
                                       0, nullptr, nullptr};
    EXPECT_EQ(wh_sched_register(&colon, &ctx), WH_ERR_ARG);
    static const wh_sched_ops no_rates = {"norates", k_user_keys, "", user_create, nullptr, user_destroy,
                                          0, nullptr, nullptr};
    EXPECT_EQ(wh_sched_register(&no_rates, &ctx), WH_ERR_ARG);
    static const wh_sched_ops stateful = {"stateful", k_user_keys, "", user_create, user_rates, user_destroy,
                                          2, nullptr, nullptr};
    EXPECT_EQ(wh_sched_register(&stateful, &ctx), WH_ERR_ARG) << "state without get/set";
    char names[256];
    wh_sched_names(names, sizeof(names));
    EXPECT_TRUE(contains(names, "feedback, user-double")) << names;
    wh_sched *s = make("user-double:s=0.003");
    ASSERT_NE(s, nullptr);
    EXPECT_FLOAT_EQ(rates(s, 0, 10, std::vector<float>(3, 1.f))[2], 0.006f);
    wh_sched_destroy(s);
    wh_sched *bad = nullptr;
    EXPECT_EQ(wh_sched_create("user-double:t=1", &bad, &ctx), WH_ERR_ARG);
    EXPECT_TRUE(contains(ctx.msg, "unknown key 't' (valid: s)")) << ctx.msg;
}

TEST(GammaStats, QuantilesByNearestRank)
{
    const float v[] = {0.5f, 0.1f, 0.9f, 0.3f, 0.7f, 0.2f, 0.4f, 0.8f, 0.6f, 1.0f};
    EXPECT_FLOAT_EQ((float)wh_quantile(v, 10, 0.1), 0.1f);
    EXPECT_FLOAT_EQ((float)wh_quantile(v, 10, 0.5), 0.5f);
    EXPECT_FLOAT_EQ((float)wh_quantile(v, 10, 0.55), 0.6f);
    EXPECT_FLOAT_EQ((float)wh_quantile(v, 10, 1.0), 1.0f);
    EXPECT_FLOAT_EQ((float)wh_quantile(v, 10, 0.0), 0.1f);
    EXPECT_EQ(wh_quantile(v, 0, 0.5), 0.0);
}

namespace {
wh_net *build(const char *model, int classes, int size, int train)
{
    return wht::model_net(model, classes, size, 0.25, train);
}
}  // namespace

TEST(Prunable, KnownSetsOfYoloGraphs)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    // yolov4-tiny: 21 convs, 19 with BN; not prunable: the 3 convs feeding the
    // grouped routes (2, 10, 18) and the conv feeding the upsample (32).
    wh_net *t = build("yolov4-tiny", 3, 128, 0);
    wh_prunable p;
    ASSERT_EQ(wh_prunable_find(t, nullptr, 0, &p, &ctx), WH_OK);
    EXPECT_EQ(p.n_layers, 15);
    for (int k = 0; k < p.n_layers; k++)
        for (int no : {2, 10, 18, 32, 29, 36}) EXPECT_NE(p.layer[k], no);
    wh_prunable_free(&p);
    // yolov4: 110 convs, 107 with BN; not prunable: the conv feeding the SPP
    // pools (113) and the two feeding upsamples (126, 137 -> upsample at 87/98
    // in darknet numbering: found by the graph, counted here).
    wh_net *v4 = build("yolov4", 3, 128, 0);
    ASSERT_EQ(wh_prunable_find(v4, nullptr, 0, &p, &ctx), WH_OK);
    EXPECT_EQ(p.n_layers, 104);
    int has113 = 0;
    for (int k = 0; k < p.n_layers; k++) has113 |= p.layer[k] == 113;
    EXPECT_FALSE(has113);
    int exclude[1] = {0};
    wh_prunable q;
    ASSERT_EQ(wh_prunable_find(v4, exclude, 1, &q, &ctx), WH_OK);
    EXPECT_EQ(q.n_layers, 103);
    EXPECT_EQ(q.layer[0], 1);
    wh_prunable_free(&q);
    int bad[1] = {500};
    EXPECT_EQ(wh_prunable_find(v4, bad, 1, &q, &ctx), WH_ERR_ARG);
    wh_prunable_free(&p);
    wh_net_destroy(t);
    wh_net_destroy(v4);
}

TEST(Regulariser, AddsBatchTimesRateTimesSignAndTouchesNothingElse)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *net = build("yolov4-tiny", 3, 64, 1);
    wh_prunable p;
    ASSERT_EQ(wh_prunable_find(net, nullptr, 0, &p, &ctx), WH_OK);
    wh_net_zero_grads(net);
    // gammas: +0.5, -0.25, 0 repeating; rates 1e-3 * (c % 4 + 1)
    std::vector<float> s(p.n_channels);
    for (int k = 0; k < p.n_layers; k++) {
        wh_layer *l = &net->layers[p.layer[k]];
        for (int c = 0; c < l->out_shape.c; c++) {
            l->params[1].data[c] = c % 3 == 0 ? 0.5f : c % 3 == 1 ? -0.25f : 0.f;
            l->params[1].grad[c] = 0.125f;
        }
    }
    for (int c = 0; c < p.n_channels; c++) s[c] = 1e-3f * (float)(c % 4 + 1);
    ASSERT_EQ(wh_sparsity_apply(net, &p, s.data(), 8, &ctx), WH_OK);
    for (int k = 0; k < p.n_layers; k++) {
        wh_layer *l = &net->layers[p.layer[k]];
        ASSERT_STREQ(l->params[1].name, "scales");
        for (int c = 0; c < l->out_shape.c; c++) {
            float sign = c % 3 == 0 ? 1.f : c % 3 == 1 ? -1.f : 0.f;
            EXPECT_FLOAT_EQ(l->params[1].grad[c], 0.125f + 8 * s[p.offset[k] + c] * sign);
        }
    }
    // the excluded convs (grouped-route feeders, upsample feeder) and every
    // other parameter keep a zero gradient
    for (int i : {2, 10, 18, 32})
        for (int c = 0; c < net->layers[i].out_shape.c; c++) EXPECT_EQ(net->layers[i].params[1].grad[c], 0.f);
    for (int k = 0; k < p.n_layers; k++) EXPECT_EQ(net->layers[p.layer[k]].params[0].grad[0], 0.f);
    wh_prunable_free(&p);
    wh_net_destroy(net);
}

TEST(GammaStats, SharesMaxAndLogBins)
{
    // log10 values: -7 (clamped to bin 0), -5.9 (bin 0), -2.5 (bin 14), -1.5 (bin 18), 0 (bin 24), 5 (bin 31)
    const float g[6] = {1e-7f, 1.2589e-6f, 3.1623e-3f, 3.1623e-2f, 1.f, 1e5f};
    wh_gamma_stats s;
    wh_gamma_stats_compute(g, 6, &s);
    EXPECT_EQ(s.n, 6);
    EXPECT_DOUBLE_EQ(s.below_1e3, 2.0 / 6);
    EXPECT_DOUBLE_EQ(s.below_1e2, 3.0 / 6);
    EXPECT_FLOAT_EQ((float)s.max, 1e5f);
    EXPECT_FLOAT_EQ(s.hist[0], 2.f / 6);
    EXPECT_FLOAT_EQ(s.hist[14], 1.f / 6);
    EXPECT_FLOAT_EQ(s.hist[18], 1.f / 6);
    EXPECT_FLOAT_EQ(s.hist[24], 1.f / 6);
    EXPECT_FLOAT_EQ(s.hist[31], 1.f / 6);
    float sum = 0;
    for (float v : s.hist) sum += v;
    EXPECT_NEAR(sum, 1.f, 1e-6);
}

TEST(GammaStats, HistogramChartDrawsTheCurve)
{
    std::vector<float> rows(2 * WH_GAMMA_BINS, 0.f), iters = {0.f, 100.f};
    rows[WH_GAMMA_BINS + 16] = 1.f;  // the last row: everything in bin 16 (centre log10 = -1.875)
    std::string path = ::testing::TempDir() + "gamma_hist_" + std::to_string(getpid()) + ".png";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_hist_chart_save(path.c_str(), rows.data(), iters.data(), 2, WH_GAMMA_BINS, -6.f, 2.f, "T", "X", &ctx),
              WH_OK)
        << ctx.msg;
    wh_image im = {};
    ASSERT_EQ(wh_image_load(path.c_str(), &im, &ctx), WH_OK);
    // bin 16's centre: x = 70 + 16.5/32 * 890 = 529; peak 1.0 at the top of the plot (y = 40); red (last row)
    bool found = false;
    for (int dx = -2; dx <= 2; dx++)
        for (int dy = -2; dy <= 2; dy++) {
            float r = im.data[wh_image_index(&im, 529 + dx, 40 + dy, 0)], b = im.data[wh_image_index(&im, 529 + dx, 40 + dy, 2)];
            found |= r > 0.7f && b < 0.3f;
        }
    EXPECT_TRUE(found);
    wh_image_free(&im);
    std::remove(path.c_str());
}
