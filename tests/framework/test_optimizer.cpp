// The learning-rate schedule (darknet's get_current_rate + our cosine) and
// the SGD step, against values worked out by hand / in float64 here.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

extern "C" {
#include "framework/train/optimizer.h"
}

namespace {

wh_hparams hp_from(const std::string &net_section)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    EXPECT_EQ(wh_cfg_parse_string(net_section.c_str(), "lr.cfg", &cfg, &ctx), WH_OK) << ctx.msg;
    wh_hparams hp{};
    EXPECT_EQ(wh_hparams_parse(&cfg->sec[0], &hp, &ctx), WH_OK) << ctx.msg;
    wh_cfg_free(cfg);
    return hp;
}

}  // namespace

TEST(LearningRate, BurnInThenSteps)
{
    wh_hparams hp = hp_from("[net]\nwidth=32\nheight=32\nlearning_rate=0.001\nburn_in=1000\n"
                            "max_batches=500500\npolicy=steps\nsteps=400000,450000\nscales=.1,.1\n");
    EXPECT_DOUBLE_EQ(wh_lr_at(&hp, 0), 0.0);
    EXPECT_NEAR(wh_lr_at(&hp, 500), 0.001 * 0.0625, 1e-9);  // lr is float32 in the cfg  // (1/2)^4
    EXPECT_NEAR(wh_lr_at(&hp, 999), 0.001 * std::pow(0.999, 4), 1e-9);  // lr is float32 in the cfg
    EXPECT_NEAR(wh_lr_at(&hp, 1000), 0.001, 1e-9);  // lr is float32 in the cfg
    EXPECT_NEAR(wh_lr_at(&hp, 399999), 0.001, 1e-9);  // lr is float32 in the cfg
    EXPECT_NEAR(wh_lr_at(&hp, 400000), 0.0001, 1e-9);  // lr is float32 in the cfg  // darknet: the step applies at batch == step
    EXPECT_NEAR(wh_lr_at(&hp, 450000), 0.00001, 1e-9);  // lr is float32 in the cfg
}

TEST(LearningRate, CosineAndSgdrAndPoly)
{
    wh_hparams hp = hp_from("[net]\nwidth=32\nheight=32\nlearning_rate=0.01\nmax_batches=1000\n"
                            "policy=cosine\nlearning_rate_min=0.001\n");
    EXPECT_NEAR(wh_lr_at(&hp, 0), 0.01, 1e-9);  // lr is float32 in the cfg
    EXPECT_NEAR(wh_lr_at(&hp, 500), 0.0055, 1e-9);  // lr is float32 in the cfg
    EXPECT_NEAR(wh_lr_at(&hp, 1000), 0.001, 1e-9);  // lr is float32 in the cfg
    EXPECT_NEAR(wh_lr_at(&hp, 5000), 0.001, 1e-9);  // lr is float32 in the cfg  // stays at the floor
    wh_hparams s = hp_from("[net]\nwidth=32\nheight=32\nlearning_rate=0.01\nmax_batches=1000\n"
                           "policy=sgdr\nlearning_rate_min=0\nsgdr_cycle=100\nsgdr_mult=2\n");
    EXPECT_NEAR(wh_lr_at(&s, 50), 0.005, 1e-9);  // lr is float32 in the cfg
    EXPECT_NEAR(wh_lr_at(&s, 100), 0.0, 1e-9);  // lr is float32 in the cfg   // end of the first cycle (darknet: start + cycle < it)
    EXPECT_NEAR(wh_lr_at(&s, 101), 0.01 * 0.5 * (1 + std::cos(M_PI / 200)), 1e-9);  // lr is float32 in the cfg  // second cycle, 200 long
    wh_hparams p = hp_from("[net]\nwidth=32\nheight=32\nlearning_rate=0.1\nmax_batches=100\npolicy=poly\npower=2\n");
    EXPECT_NEAR(wh_lr_at(&p, 50), 0.1 * 0.25, 1e-9);  // lr is float32 in the cfg
}

namespace {

struct OneConv {
    wh_ctx ctx;
    wh_net *net = nullptr;
    OneConv()
    {
        wh_ctx_init(&ctx);
        wh_cfg *cfg = nullptr;
        const char *t = "[net]\nwidth=4\nheight=4\nchannels=2\n[convolutional]\nbatch_normalize=1\n"
                        "filters=3\nsize=1\nstride=1\nactivation=linear\n";
        EXPECT_EQ(wh_cfg_parse_string(t, "o.cfg", &cfg, &ctx), WH_OK);
        wh_net_opts o = {};
        o.train = 1;
        EXPECT_EQ(wh_net_create(cfg, &o, &net, &ctx), WH_OK) << ctx.msg;
        wh_cfg_free(cfg);
    }
    ~OneConv() { wh_net_destroy(net); }
};

}  // namespace

TEST(Sgd, TwoStepsMatchFloat64WithDecayOnWeightsOnly)
{
    for (int nesterov = 0; nesterov <= 1; nesterov++) {
        OneConv c;
        wh_layer *l = &c.net->layers[0];
        // params: biases, scales, rolling_mean, rolling_variance, weights
        ASSERT_STREQ(l->params[4].name, "weights");
        std::vector<std::vector<double>> w(5), v(5);
        for (int p = 0; p < 5; p++) {
            for (size_t k = 0; k < l->params[p].count; k++) l->params[p].data[k] = 0.1f * (float)(k + p + 1);
            w[p].assign(l->params[p].data, l->params[p].data + l->params[p].count);
            v[p].assign(l->params[p].count, 0.0);
        }
        wh_sgd *o = nullptr;
        const double m = 0.9, decay = 0.0005, lr = 0.01;
        const int batch = 4;
        ASSERT_EQ(wh_sgd_create(c.net, (float)m, (float)decay, nesterov, &o, &c.ctx), WH_OK);
        for (int step = 0; step < 2; step++) {
            for (int p = 0; p < 5; p++) {
                if (!l->params[p].grad) continue;
                for (size_t k = 0; k < l->params[p].count; k++) {
                    float g = (float)((int)(k % 3) - 1) * 0.5f + 0.25f * (float)step + 0.1f * (float)p;
                    l->params[p].grad[k] = g;
                    double gk = g / (double)batch + (p == 4 ? decay * w[p][k] : 0.0);
                    v[p][k] = m * v[p][k] + gk;
                    w[p][k] -= lr * (nesterov ? gk + m * v[p][k] : v[p][k]);
                }
            }
            ASSERT_EQ(wh_sgd_step(o, c.net, (float)lr, batch, &c.ctx), WH_OK) << c.ctx.msg;
        }
        for (int p = 0; p < 5; p++)
            for (size_t k = 0; k < l->params[p].count; k++)
                EXPECT_NEAR(l->params[p].data[k], w[p][k], 1e-6) << "nesterov " << nesterov << " param "
                                                                  << l->params[p].name << " " << k;
        // running statistics are not trainable: untouched
        EXPECT_FLOAT_EQ(l->params[2].data[0], 0.1f * 3);
        wh_sgd_destroy(o);
    }
}

TEST(Sgd, NonFiniteGradientStopsTheStepNamingTheLayer)
{
    OneConv c;
    wh_layer *l = &c.net->layers[0];
    wh_sgd *o = nullptr;
    ASSERT_EQ(wh_sgd_create(c.net, 0.9f, 0.0005f, 0, &o, &c.ctx), WH_OK);
    wh_net_zero_grads(c.net);
    std::vector<float> before(l->params[4].data, l->params[4].data + l->params[4].count);
    l->params[0].grad[0] = 1.f;  // a finite one first: it must not be applied either
    l->params[4].grad[2] = NAN;
    EXPECT_EQ(wh_sgd_step(o, c.net, 0.1f, 1, &c.ctx), WH_ERR_NUMERIC);
    EXPECT_NE(std::string(c.ctx.msg).find("layer 0 [convolutional] 'weights'"), std::string::npos) << c.ctx.msg;
    for (size_t k = 0; k < before.size(); k++) EXPECT_EQ(l->params[4].data[k], before[k]);
    EXPECT_EQ(l->params[0].data[0], 0.f);
    wh_sgd_destroy(o);
}

// AdamW (decoupled decay on conv weights only, bias-corrected moments, b1 =
// the momentum given) against float64 loops written from the formulas.
TEST(AdamW, ThreeStepsMatchFloat64)
{
    OneConv c;
    wh_layer *l = &c.net->layers[0];
    ASSERT_STREQ(l->params[4].name, "weights");
    std::vector<std::vector<double>> w(5), m(5), v(5);
    for (int p = 0; p < 5; p++) {
        for (size_t k = 0; k < l->params[p].count; k++) l->params[p].data[k] = 0.1f * (float)(k + p + 1);
        w[p].assign(l->params[p].data, l->params[p].data + l->params[p].count);
        m[p].assign(l->params[p].count, 0.0);
        v[p].assign(l->params[p].count, 0.0);
    }
    wh_optim *o = nullptr;
    const double b1 = 0.937, b2 = 0.999, eps = 1e-8, decay = 0.05, lr = 0.001;
    const int batch = 4;
    ASSERT_EQ(wh_optim_create("adamw", c.net, (float)b1, (float)decay, 0, &o, &c.ctx), WH_OK) << c.ctx.msg;
    for (int t = 1; t <= 3; t++) {
        for (int p = 0; p < 5; p++) {
            if (!l->params[p].grad) continue;
            for (size_t k = 0; k < l->params[p].count; k++) {
                float g = (float)((int)(k % 3) - 1) * 0.5f + 0.25f * (float)t + 0.1f * (float)p;
                l->params[p].grad[k] = g;
                const double gk = g / (double)batch;
                if (p == 4) w[p][k] *= 1 - lr * decay;
                m[p][k] = b1 * m[p][k] + (1 - b1) * gk;
                v[p][k] = b2 * v[p][k] + (1 - b2) * gk * gk;
                const double mh = m[p][k] / (1 - std::pow(b1, t)), vh = v[p][k] / (1 - std::pow(b2, t));
                w[p][k] -= lr * mh / (std::sqrt(vh) + eps);
            }
        }
        ASSERT_EQ(wh_optim_step(o, c.net, (float)lr, batch, &c.ctx), WH_OK) << c.ctx.msg;
    }
    EXPECT_EQ(o->t, 3);
    for (int p = 0; p < 5; p++)
        for (size_t k = 0; k < l->params[p].count; k++)
            EXPECT_NEAR(l->params[p].data[k], w[p][k], 2e-6) << l->params[p].name << " " << k;
    EXPECT_FLOAT_EQ(l->params[2].data[0], 0.1f * 3); // running statistics untouched
    wh_optim_destroy(o);
    // unknown names and nesterov with adamw are refused, naming the choices
    EXPECT_EQ(wh_optim_create("adam9", c.net, .9f, 0, 0, &o, &c.ctx), WH_ERR_ARG);
    EXPECT_NE(std::string(c.ctx.msg).find("sgd, adamw"), std::string::npos) << c.ctx.msg;
    EXPECT_EQ(wh_optim_create("adamw", c.net, .9f, 0, 1, &o, &c.ctx), WH_ERR_ARG);
}

// The sgd plug-in is wh_sgd_step: the same weights after two steps.
TEST(Optim, SgdPluginEqualsSgd)
{
    OneConv a, b;
    for (OneConv *c : {&a, &b})
        for (int p = 0; p < 5; p++)
            for (size_t k = 0; k < c->net->layers[0].params[p].count; k++)
                c->net->layers[0].params[p].data[k] = 0.05f * (float)(k + 2 * p + 1);
    wh_sgd *s = nullptr;
    wh_optim *o = nullptr;
    ASSERT_EQ(wh_sgd_create(a.net, .9f, 5e-4f, 0, &s, &a.ctx), WH_OK);
    ASSERT_EQ(wh_optim_create("sgd", b.net, .9f, 5e-4f, 0, &o, &b.ctx), WH_OK);
    for (int t = 0; t < 2; t++) {
        for (OneConv *c : {&a, &b})
            for (int p = 0; p < 5; p++)
                if (c->net->layers[0].params[p].grad)
                    for (size_t k = 0; k < c->net->layers[0].params[p].count; k++)
                        c->net->layers[0].params[p].grad[k] = 0.3f * (float)k - 0.2f * (float)(t + p);
        ASSERT_EQ(wh_sgd_step(s, a.net, 0.01f, 2, &a.ctx), WH_OK);
        ASSERT_EQ(wh_optim_step(o, b.net, 0.01f, 2, &b.ctx), WH_OK);
    }
    for (int p = 0; p < 5; p++)
        for (size_t k = 0; k < a.net->layers[0].params[p].count; k++)
            EXPECT_EQ(a.net->layers[0].params[p].data[k], b.net->layers[0].params[p].data[k]);
    wh_sgd_destroy(s);
    wh_optim_destroy(o);
}

// The average: decay d(u) = d_max (1 - exp(-u / tau)) with the run-length
// rule worked by hand, updates against float64, swap twice = identity.
TEST(Ema, DecayRuleAndUpdatesMatchFloat64)
{
    OneConv c;
    wh_ema *e = nullptr;
    ASSERT_EQ(wh_ema_create(c.net, 3000, &e, &c.ctx), WH_OK);
    // window 3000 / 20 = 150 -> d_max = 1 - 1/150; tau = 3000 / 15 = 200
    EXPECT_NEAR(e->d_max, 1 - 1.0 / 150, 1e-12);
    EXPECT_NEAR(e->tau, 200, 1e-12);
    EXPECT_NEAR(wh_ema_decay(e, 200), (1 - 1.0 / 150) * (1 - std::exp(-1.0)), 1e-12);
    wh_ema_fit(e, 1000000); // long runs: YOLOv5's .9999 and 2000
    EXPECT_NEAR(e->d_max, 0.9999, 1e-12);
    EXPECT_NEAR(e->tau, 2000, 1e-12);
    wh_ema_fit(e, 50); // at least 10 steps of window, tau >= 1
    EXPECT_NEAR(e->d_max, 0.9, 1e-12);
    EXPECT_NEAR(e->tau, 50 / 15.0, 1e-12);
    const size_t n = e->n;
    ASSERT_GT(n, 0u);
    float *w = c.net->arena[WH_ARENA_PARAM];
    std::vector<double> avg(w, w + n);
    for (int u = 1; u <= 4; u++) {
        for (size_t k = 0; k < n; k++) w[k] = (float)(std::sin(0.3 * (double)k + u) * u);
        const double d = e->d_max * (1 - std::exp(-u / e->tau));
        for (size_t k = 0; k < n; k++) avg[k] = d * avg[k] + (1 - d) * w[k];
        wh_ema_update(e, c.net);
    }
    EXPECT_EQ(e->updates, 4);
    for (size_t k = 0; k < n; k++) ASSERT_NEAR(e->avg[k], avg[k], 1e-5) << k;
    std::vector<float> before(w, w + n);
    wh_ema_swap(e, c.net);
    for (size_t k = 0; k < n; k++) ASSERT_NEAR(w[k], avg[k], 1e-5) << k;
    wh_ema_swap(e, c.net);
    for (size_t k = 0; k < n; k++) ASSERT_EQ(w[k], before[k]) << k;
    wh_ema_destroy(e);
}
