// Batch-norm recalibration (wh_bn_recalibrate) against float64 loops: with
// one image per batch and whole epochs, the re-estimated running mean and
// variance of each channel are the mean over the training images of that
// image's mean and (unbiased) variance of the convolution's output, whatever
// order the shuffle chose; the weights are left as they were.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

extern "C" {
#include "framework/core/cfg.h"
#include "framework/data/dataset.h"
#include "framework/data/loader.h"
#include "framework/data/synth.h"
#include "framework/train/trainer.h"
}

namespace {

const char *kCfg = "[net]\nwidth=24\nheight=20\nchannels=3\nbatch=1\n"
                   "[convolutional]\nbatch_normalize=1\nfilters=5\nsize=3\nstride=1\npad=1\nactivation=leaky\n";

wh_param *param(wh_layer &l, const char *name)
{
    for (int k = 0; k < l.n_params; k++)
        if (std::string(l.params[k].name) == name) return &l.params[k];
    return nullptr;
}

TEST(BnRecalibrate, MeanOfPerImageStatisticsOverWholeEpochs)
{
    omp_set_num_threads(1);
    const std::string dir = ::testing::TempDir() + "wh_bnrecal_" + std::to_string(getpid());
    ASSERT_EQ(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()), 0);
    const std::string data = dir + "/data";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_synth_opts so;
    wh_synth_opts_default(&so);
    so.images = 8;
    so.size = 48;
    so.seed = 3;
    ASSERT_EQ(wh_synth_generate(&so, data.c_str(), &ctx), WH_OK) << ctx.msg;
    wh_dataset *ds = nullptr;
    ASSERT_EQ(wh_dataset_open(data.c_str(), "train", &ds, &ctx), WH_OK) << ctx.msg;
    const int n = ds->n;
    ASSERT_GE(n, 3);

    wh_cfg *cfg = nullptr;
    ASSERT_EQ(wh_cfg_parse_string(kCfg, "bn.cfg", &cfg, &ctx), WH_OK) << ctx.msg;
    wh_net_opts no = {};
    wh_net *net = nullptr;
    ASSERT_EQ(wh_net_create(cfg, &no, &net, &ctx), WH_OK) << ctx.msg;
    wh_cfg_free(cfg);
    wh_net_init_weights(net, 11);
    wh_layer &l = net->layers[0];
    wh_param *w = param(l, "weights"), *rm = param(l, "rolling_mean"), *rv = param(l, "rolling_variance");
    ASSERT_TRUE(w && rm && rv);
    for (int c = 0; c < 5; c++) rm->data[c] = 9.f, rv->data[c] = 7.f; // replaced, not blended
    const std::vector<float> w0(w->data, w->data + w->count);

    // the reference: every training image as evaluation sees it (dataset
    // order, no augmentation), convolved in float64
    wh_loader_opts lo;
    wh_loader_opts_default(&lo, 24, 20, 1);
    lo.train = 0;
    lo.prefetch = 0;
    wh_loader *ld = nullptr;
    ASSERT_EQ(wh_loader_create(ds, &lo, &ld, &ctx), WH_OK) << ctx.msg;
    std::vector<double> mean(5, 0.0), var(5, 0.0);
    const int H = 20, W = 24;
    for (int i = 0; i < n; i++) {
        const wh_batch *b = nullptr;
        ASSERT_EQ(wh_loader_next(ld, &b, &ctx), WH_OK) << ctx.msg;
        for (int oc = 0; oc < 5; oc++) {
            std::vector<double> z;
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double s = 0;
                    for (int ic = 0; ic < 3; ic++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                const int yy = y + ky - 1, xx = x + kx - 1;
                                if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                                s += (double)w->data[((oc * 3 + ic) * 3 + ky) * 3 + kx] *
                                     b->images[((size_t)ic * H + yy) * W + xx];
                            }
                    z.push_back(s);
                }
            double mu = 0, v = 0;
            for (double t : z) mu += t;
            mu /= z.size();
            for (double t : z) v += (t - mu) * (t - mu);
            mean[oc] += mu / n;
            var[oc] += v / (z.size() - 1) / n;
        }
    }
    wh_loader_destroy(ld);

    for (int epochs : {1, 2}) {
        SCOPED_TRACE("epochs " + std::to_string(epochs));
        wh_bn_recal_opts ro = {n * epochs, 1, 5};
        ASSERT_EQ(wh_bn_recalibrate(net, kCfg, ds, &ro, &ctx), WH_OK) << ctx.msg;
        for (int c = 0; c < 5; c++) {
            EXPECT_NEAR(rm->data[c], mean[c], 1e-5 * (1 + std::fabs(mean[c]))) << "channel " << c;
            EXPECT_NEAR(rv->data[c], var[c], 1e-4 * var[c]) << "channel " << c;
        }
        for (size_t k = 0; k < w0.size(); k++) ASSERT_EQ(w->data[k], w0[k]) << "weight " << k;
    }
    // a cfg that does not match the network is refused, naming the layer
    const std::string other = std::string(kCfg).replace(std::string(kCfg).find("filters=5"), 9, "filters=4");
    wh_bn_recal_opts ro = {1, 1, 5};
    EXPECT_EQ(wh_bn_recalibrate(net, other.c_str(), ds, &ro, &ctx), WH_ERR_STATE);
    EXPECT_NE(std::string(ctx.msg).find("layer 0 [convolutional]"), std::string::npos) << ctx.msg;
    wh_net_destroy(net);
    wh_dataset_free(ds);
    (void)std::system(("rm -rf '" + dir + "'").c_str());
}

} // namespace
