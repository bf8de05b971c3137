// The learning-rate schedule (darknet's get_current_rate + our cosine) and
// the SGD step, against values worked out by hand / in float64 here.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

extern "C" {
#include "framework/optimizer.h"
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
