// The benchmark library: its memory figure follows real allocations, and a
// network's figures are consistent with the network's own FLOP count and
// the timing (img/s = batch / median; a training step counts 3 forwards).
#include "model_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

extern "C" {
#include "bench/bench.h"
#include "framework/core/cfg.h"
#include "framework/io/modelgen.h"
}

TEST(Bench, PeakRssFollowsTouchedMemory)
{
    const double before = wh_bench_peak_rss_mb();
    ASSERT_TRUE(std::isfinite(before));
    const size_t n = (size_t)160 << 20;
    char *p = (char *)std::malloc(n);
    ASSERT_NE(p, nullptr);
    volatile char *vp = p; // every page written through a volatile pointer: not optimised away
    for (size_t i = 0; i < n; i += 4096) vp[i] = 1;
    const double after = wh_bench_peak_rss_mb();
    std::free(p);
    // the high-water mark rose by the 160 MiB touched (unless an earlier
    // test of this process already went higher)
    EXPECT_GE(after, before);
    EXPECT_GE(after, 160.0);
}

TEST(Bench, NetFiguresAreConsistent)
{
    const std::string cfg = wht::model_cfg("yolov4-tiny", 3, 64, 0.25);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    // the reference count: the same cfg built by hand
    wh_cfg *c = nullptr;
    ASSERT_EQ(wh_cfg_parse_string(cfg.c_str(), "t", &c, &ctx), WH_OK) << ctx.msg;
    wh_net_opts no = {};
    no.batch = 1;
    wh_net *net = nullptr;
    ASSERT_EQ(wh_net_create(c, &no, &net, &ctx), WH_OK) << ctx.msg;
    wh_net_cost cost;
    wh_net_cost_total(net, &cost);
    wh_net_destroy(net);
    wh_cfg_free(c);
    for (int train = 0; train < 2; train++) {
        wh_bench_net_opts o = {};
        o.mode = train ? WH_BENCH_TRAIN : WH_BENCH_INFER;
        o.batch = 2;
        o.runs = 3;
        o.threads = 1;
        wh_bench_net_result r;
        ASSERT_EQ(wh_bench_net(cfg.c_str(), "t", &o, &r, &ctx), WH_OK) << ctx.msg;
        EXPECT_EQ(r.batch, 2);
        EXPECT_EQ(r.width, 64);
        EXPECT_EQ(r.params, cost.params);
        EXPECT_NEAR(r.conv_gflop_per_img, cost.conv_flops / 1e9, 1e-12);
        EXPECT_GT(r.median_s, 0.0);
        EXPECT_LE(r.min_s, r.median_s);
        EXPECT_NEAR(r.img_per_s * r.median_s, 2.0, 1e-9);
        EXPECT_NEAR(r.gflop_per_s, (train ? 3 : 1) * cost.conv_flops * 2 / r.median_s / 1e9, 1e-6 * r.gflop_per_s);
        if (train) {
            double sum = 0;
            for (double t : r.phase_s) {
                EXPECT_GT(t, 0.0);
                sum += t;
            }
            EXPECT_LE(sum, 1.5 * r.median_s + 1e-3) << "the phases are medians of parts of a step";
        }
    }
    wh_bench_net_opts bad = {};
    bad.batch = 1;
    wh_bench_net_result r;
    EXPECT_EQ(wh_bench_net(cfg.c_str(), "t", &bad, &r, &ctx), WH_ERR_ARG) << "runs 0";
}

TEST(Bench, PeakMeasuresSomething)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_bench_peak p;
    // small passes: the sanitizer build runs the FMA loop through memory
    ASSERT_EQ(wh_bench_peak_measure_sized(1, 1, 200000, 1 << 20, &p, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(p.threads, 1);
    // positive and finite, and far below anything a CPU core cannot do
    EXPECT_GT(p.fma_gflops_one, 0.0);
    EXPECT_LT(p.fma_gflops_one, 1e4);
    EXPECT_GT(p.triad_gbs, 0.0);
    EXPECT_LT(p.triad_gbs, 1e4);
    EXPECT_EQ(wh_bench_peak_measure(1, 0, &p, &ctx), WH_ERR_ARG);
    EXPECT_EQ(wh_bench_peak_measure_sized(1, 1, 0, 1, &p, &ctx), WH_ERR_ARG);
}
