// The training chart: curve, axes and the bitmap font land where the
// geometry says (plot area 70..940 x 40..550 on a 1000x600 canvas).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

extern "C" {
#include "framework/plot/plot.h"
}

namespace {
float px(const wh_image &im, int x, int y, int c) { return im.data[wh_image_index(&im, x, y, c)]; }
bool is_blue(const wh_image &im, int x, int y) { return px(im, x, y, 2) > 0.7f && px(im, x, y, 0) < 0.3f; }
}  // namespace

TEST(Chart, LossCurveFollowsTheAxes)
{
    const float it[] = {0, 50, 100}, loss[] = {2.f, 1.f, 0.5f};
    wh_chart c = {};
    c.n = 3;
    c.iter = it;
    c.loss = loss;
    c.title = "TEST";
    wh_image im = {};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_chart_render(&c, 1000, 600, &im, &ctx), WH_OK);
    // y axis: 1.5 x the 90th percentile (1.0) = 1.5, rounded up to the 0.2 grid = 1.6;
    // loss 2 is clipped to the top (y=40), loss 1 at 550 - 510/1.6 = 231
    EXPECT_TRUE(is_blue(im, 70, 40));
    EXPECT_TRUE(is_blue(im, 505, 231));
    // halfway between the second and third points: x = 722.5, loss .75 -> y = 550 - .75/1.6*510 = 311
    EXPECT_TRUE(is_blue(im, 722, 311) || is_blue(im, 722, 310) || is_blue(im, 723, 311));
    // far from the curve: white background
    EXPECT_FLOAT_EQ(px(im, 900, 100, 0), 1.f);
    EXPECT_FALSE(is_blue(im, 900, 100));
    wh_image_free(&im);
}

TEST(Chart, FontDrawsTheGlyphBits)
{
    wh_image im = {};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_image_alloc(&im, 20, 10, 3, &ctx), WH_OK);
    const float white[3] = {1, 1, 1};
    wh_draw_text(&im, 1, 1, 1, "1", white);
    // '1' rows: 00100 01100 00100 00100 00100 00100 01110
    const char *rows[7] = {"00100", "01100", "00100", "00100", "00100", "00100", "01110"};
    for (int r = 0; r < 7; r++)
        for (int k = 0; k < 5; k++) EXPECT_EQ(px(im, 1 + k, 1 + r, 0), rows[r][k] == '1' ? 1.f : 0.f) << r << "," << k;
    wh_image_free(&im);
}

TEST(Chart, SavesAPngThatLoadsBack)
{
    const float it[] = {0, 10}, loss[] = {3.f, 1.f}, mi[] = {10}, mp[] = {0.5f};
    wh_chart c = {};
    c.n = 2;
    c.iter = it;
    c.loss = loss;
    c.n_map = 1;
    c.map_iter = mi;
    c.map = mp;
    std::string path = ::testing::TempDir() + "chart_test.png";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_chart_save(&c, path.c_str(), &ctx), WH_OK) << ctx.msg;
    wh_image im = {};
    ASSERT_EQ(wh_image_load(path.c_str(), &im, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(im.w, 1000);
    EXPECT_EQ(im.h, 600);
    // the mAP point (iteration 10 of 10 = right edge, 0.5 -> y = 295) is red
    EXPECT_GT(px(im, 937, 295, 0), 0.7f);
    EXPECT_LT(px(im, 937, 295, 2), 0.3f);
    wh_image_free(&im);
    std::remove(path.c_str());
}

TEST(Chart, SeveralSeriesShareTheAxes)
{
    // series 0: a line from (10, 0) to (20, 4); series 1: steps 2, 3 at x 10, 15
    // (the last step reaches 16). x: 10..20, y: 0..4 (grid step 0.5, so 4 stays 4).
    // Plot area 70..960 x 40..550.
    const float x0[] = {10, 20}, y0[] = {0, 4}, x1[] = {10, 15}, y1[] = {2, 3};
    wh_series s[2] = {};
    s[0].name = "loss";
    s[0].n = 2;
    s[0].x = x0;
    s[0].y = y0;
    s[1].name = "steps";
    s[1].n = 2;
    s[1].x = x1;
    s[1].y = y1;
    s[1].step = 1;
    wh_lines c = {};
    c.series = s;
    c.n_series = 2;
    wh_image im = {};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_lines_render(&c, 1000, 600, &im, &ctx), WH_OK) << ctx.msg;
    float c0[3], c1[3];
    wh_lines_color(0, c0);
    wh_lines_color(1, c1);
    auto has = [&](int x, int y, const float *col) {
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                bool same = true;
                for (int k = 0; k < 3; k++) same = same && std::fabs(px(im, x + dx, y + dy, k) - col[k]) < 1e-6f;
                if (same) return true;
            }
        return false;
    };
    // the line's midpoint (15, 2): x = 70 + 0.5 * 890 = 515, y = 550 - 0.5 * 510 = 295
    EXPECT_TRUE(has(515, 295, c0));
    // the first step, y = 2 from x 10 to 15: (292, 295); the second, y = 3 from 15 to 16: (560, 167)
    EXPECT_TRUE(has(292, 295, c1));
    EXPECT_TRUE(has(560, 168, c1));
    EXPECT_FALSE(has(700, 168, c1)) << "the last step ends at x = 16";
    // the legend swatch of series 1 sits on its row, right of the plot's middle
    EXPECT_FALSE(has(292, 200, c1));
    wh_image_free(&im);
}

TEST(Chart, BarsEndAtTheirValues)
{
    // labels of 4 characters: L = 20 + 24 = 44, R = 44 + 700 - 60 = 684; x from 0 to 1
    // (the largest value 0.8 -> nice step 0.1 -> 0.8; x_max 1 given)
    const char *labels[] = {"aaaa", "bb"};
    const double mean[] = {0.5, 0.25}, lo[] = {0.4, 0.2}, hi[] = {0.6, 0.3};
    wh_image im = {};
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_bars_render(labels, mean, lo, hi, 2, 1.0, "T", "X", &im, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(im.w, 744);
    EXPECT_EQ(im.h, 40 + 44 + 50);
    // bar 0 spans rows 44..57 up to x = 44 + 0.5 * 640 = 364; bar 1 up to 204
    auto barc = [&](int x, int y) { return std::fabs(px(im, x, y, 0) - 0.45f) < 1e-6f && std::fabs(px(im, x, y, 2) - 0.9f) < 1e-6f; };
    EXPECT_TRUE(barc(100, 46));
    EXPECT_TRUE(barc(362, 46));
    EXPECT_FALSE(barc(370, 46));
    EXPECT_TRUE(barc(200, 68));
    EXPECT_FALSE(barc(210, 68));
    // the whisker of bar 0 reaches x = 44 + 0.6 * 640 = 428 on its middle row (50)
    EXPECT_LT(px(im, 427, 50, 0), 0.2f);
    EXPECT_FLOAT_EQ(px(im, 440, 46, 0), 1.f);
    // a bad count is refused
    wh_image im2 = {};
    EXPECT_EQ(wh_bars_render(labels, mean, lo, hi, 0, 1.0, nullptr, nullptr, &im2, &ctx), WH_ERR_ARG);
    wh_image_free(&im);
}
