// The memory planner's optimizer and weight-average terms
// (framework/core/memplan.h, wh_mem_plan_optimizer), worked by hand from the
// planned arenas of a small training net: AdamW holds two floats per
// trained parameter where SGD holds one, the average one copy of the
// parameter arena; the total follows, and planning twice changes nothing.
#include <gtest/gtest.h>

extern "C" {
#include "framework/core/cfg.h"
#include "framework/core/memplan.h"
}

TEST(MemPlan, OptimizerStateAndAverageWorkedByHand)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    const char *t = "[net]\nwidth=32\nheight=32\nchannels=3\nbatch=2\n[convolutional]\nbatch_normalize=1\n"
                    "filters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n";
    ASSERT_EQ(wh_cfg_parse_string(t, "m.cfg", &cfg, &ctx), WH_OK) << ctx.msg;
    wh_net_opts o = {};
    o.train = 1;
    wh_mem_plan p;
    ASSERT_EQ(wh_mem_plan_train(cfg, &o, 1000, 0, nullptr, 1, &p, &ctx), WH_OK) << ctx.msg;
    wh_cfg_free(cfg);
    const size_t grad = p.arenas[WH_ARENA_GRAD], param = p.arenas[WH_ARENA_PARAM], total = p.total;
    ASSERT_GT(grad, 0u);
    ASSERT_GT(param, 0u);
    EXPECT_EQ(p.momentum, grad);  // SGD: one float per trained parameter
    EXPECT_EQ(p.average, 0u);
    wh_mem_plan_optimizer(&p, 2, 1);  // AdamW with the average
    EXPECT_EQ(p.momentum, 2 * grad);
    EXPECT_EQ(p.average, param);
    EXPECT_EQ(p.total, total + grad + param);
    wh_mem_plan_optimizer(&p, 2, 1);  // idempotent
    EXPECT_EQ(p.total, total + grad + param);
    wh_mem_plan_optimizer(&p, 1, 0);  // back to SGD without
    EXPECT_EQ(p.total, total);
    char text[512];
    wh_mem_plan_format(&p, text, sizeof(text));
    EXPECT_EQ(std::string(text).find("average"), std::string::npos) << text;
    wh_mem_plan_optimizer(&p, 1, 1);
    wh_mem_plan_format(&p, text, sizeof(text));
    EXPECT_NE(std::string(text).find(", average "), std::string::npos) << text;
}
