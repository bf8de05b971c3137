// wh_cfg_text_set: overrides written into cfg text, everything else kept.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

extern "C" {
#include "framework/core/cfg.h"
}

namespace {
std::string set(const std::string &text, const char *sec, const char *key, const char *val, wh_status want = WH_OK)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *out = nullptr;
    EXPECT_EQ(wh_cfg_text_set(text.c_str(), sec, key, val, &out, &ctx), want) << ctx.msg;
    std::string r = out ? out : "";
    free(out);
    return r;
}
}  // namespace

TEST(CfgEdit, ReplacesAnExistingKeyKeepingTheRest)
{
    std::string t = "# top\n[net]\nbatch = 64\nwidth=416\n\n[convolutional]\nbatch=3\n";
    EXPECT_EQ(set(t, "net", "batch", "8"), "# top\n[net]\nbatch=8\nwidth=416\n\n[convolutional]\nbatch=3\n");
}

TEST(CfgEdit, AddsAMissingKeyAfterTheHeader)
{
    std::string t = "[net]\nwidth=416\n[convolutional]\nfilters=3\n";
    EXPECT_EQ(set(t, "net", "max_batches", "100"), "[net]\nmax_batches=100\nwidth=416\n[convolutional]\nfilters=3\n");
    // only the first section of that name
    std::string c = "[net]\nw=1\n[convolutional]\nfilters=3\n[convolutional]\nfilters=4\n";
    EXPECT_EQ(set(c, "convolutional", "filters", "8"), "[net]\nw=1\n[convolutional]\nfilters=8\n[convolutional]\nfilters=4\n");
    // no trailing newline
    EXPECT_EQ(set("[net]", "net", "batch", "2"), "[net]\nbatch=2\n");
}

TEST(CfgEdit, ResultParsesWithTheNewValue)
{
    std::string t = set("[net]\nbatch=64\nsubdivisions=8\nwidth=32\nheight=32\n", "net", "subdivisions", "2");
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    ASSERT_EQ(wh_cfg_parse_string(t.c_str(), "e.cfg", &cfg, &ctx), WH_OK);
    int v = 0;
    EXPECT_EQ(wh_cfg_int(&cfg->sec[0], "subdivisions", 1, 1, 100, &v, &ctx), WH_OK);
    EXPECT_EQ(v, 2);
    wh_cfg_free(cfg);
}

TEST(CfgEdit, MissingSectionIsAnError)
{
    set("[convolutional]\nfilters=3\n", "net", "batch", "2", WH_ERR_CFG);
}
