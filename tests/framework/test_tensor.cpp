// Tests of layouts and tensor views (framework/core/tensor.c).
//
// Offsets are worked out by hand from the layout definitions:
//   NCHW     ((n*C + c)*H + h)*W + w
//   nChw16c  (((n*Cb + c/16)*H + h)*W + w)*16 + c%16,  Cb = ceil(C/16)
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "framework/core/tensor.h"

namespace {

wh_tensor view(float *data, wh_shape s, wh_layout l)
{
    wh_tensor t;
    t.data = data;
    t.shape = s;
    t.layout = l;
    return t;
}

TEST(Tensor, OffsetNchwByHand)
{
    const wh_shape s = {2, 20, 3, 5};
    wh_tensor t = view(nullptr, s, WH_LAYOUT_NCHW);
    EXPECT_EQ(wh_tensor_offset(&t, 0, 0, 0, 0), 0u);
    EXPECT_EQ(wh_tensor_offset(&t, 0, 0, 0, 1), 1u);
    EXPECT_EQ(wh_tensor_offset(&t, 0, 0, 1, 0), 5u);
    EXPECT_EQ(wh_tensor_offset(&t, 0, 1, 0, 0), 15u);
    EXPECT_EQ(wh_tensor_offset(&t, 1, 0, 0, 0), 300u);
    // ((1*20 + 17)*3 + 2)*5 + 4 = (113)*5 + 4 = 569
    EXPECT_EQ(wh_tensor_offset(&t, 1, 17, 2, 4), 569u);
    EXPECT_EQ(wh_tensor_offset(&t, 1, 19, 2, 4), 599u); // last element
}

TEST(Tensor, OffsetBlockedByHand)
{
    const wh_shape s = {2, 20, 3, 5}; // Cb = 2, one block is 3*5*16 = 240 floats
    wh_tensor t = view(nullptr, s, WH_LAYOUT_NCHW16C);
    EXPECT_EQ(wh_tensor_offset(&t, 0, 0, 0, 0), 0u);
    EXPECT_EQ(wh_tensor_offset(&t, 0, 1, 0, 0), 1u);   // channels innermost
    EXPECT_EQ(wh_tensor_offset(&t, 0, 15, 0, 0), 15u);
    EXPECT_EQ(wh_tensor_offset(&t, 0, 0, 0, 1), 16u);  // then w
    EXPECT_EQ(wh_tensor_offset(&t, 0, 0, 1, 0), 80u);  // then h: 5*16
    EXPECT_EQ(wh_tensor_offset(&t, 0, 16, 0, 0), 240u); // next channel block
    EXPECT_EQ(wh_tensor_offset(&t, 1, 0, 0, 0), 480u);  // next image: 2 blocks
    // (((1*2 + 1)*3 + 2)*5 + 4)*16 + 1 = ((11)*5 + 4)*16 + 1 = 59*16 + 1 = 945
    EXPECT_EQ(wh_tensor_offset(&t, 1, 17, 2, 4), 945u);
    // last real channel of the last pixel: 59*16 + 3 = 947; 948..959 are padding
    EXPECT_EQ(wh_tensor_offset(&t, 1, 19, 2, 4), 947u);
}

TEST(Tensor, BlockedOffsetsAreDistinctAndSkipOnlyPadding)
{
    const wh_shape s = {2, 20, 3, 5};
    wh_tensor t = view(nullptr, s, WH_LAYOUT_NCHW16C);
    const size_t total = wh_layout_count(s, WH_LAYOUT_NCHW16C);
    ASSERT_EQ(total, 960u);
    std::vector<int> hit(total, 0);
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++) {
                    const size_t o = wh_tensor_offset(&t, n, c, h, w);
                    ASSERT_LT(o, total);
                    hit[o]++;
                }
    int used = 0;
    for (size_t o = 0; o < total; o++) {
        // Padding: the second block (c/16 == 1) holds channels 16..19 at
        // positions o%16 in 0..3; positions 4..15 are padding.
        const bool second_block = (o / 240) % 2 == 1;
        const bool pad = second_block && o % 16 >= 4;
        EXPECT_EQ(hit[o], pad ? 0 : 1) << "offset " << o;
        used += hit[o];
    }
    EXPECT_EQ(used, 600);
}

TEST(Tensor, LayoutCountPadsChannelsTo16)
{
    EXPECT_EQ(wh_layout_count({2, 20, 3, 5}, WH_LAYOUT_NCHW), 600u);
    EXPECT_EQ(wh_layout_count({2, 20, 3, 5}, WH_LAYOUT_NCHW16C), 960u); // C 20 -> 32
    EXPECT_EQ(wh_layout_count({1, 1, 2, 2}, WH_LAYOUT_NCHW16C), 64u);   // C 1 -> 16
    EXPECT_EQ(wh_layout_count({1, 16, 2, 2}, WH_LAYOUT_NCHW16C), 64u);  // no padding
    EXPECT_EQ(wh_layout_count({1, 17, 2, 2}, WH_LAYOUT_NCHW16C), 128u); // C 17 -> 32
    EXPECT_EQ(wh_layout_count({3, 33, 1, 1}, WH_LAYOUT_NCHW16C), 144u); // C 33 -> 48
    EXPECT_EQ(wh_layout_count({3, 33, 1, 1}, WH_LAYOUT_NCHW), 99u);
    EXPECT_EQ(wh_shape_count({3, 33, 1, 1}), 99u);
}

// Round trip NCHW -> nChw16c (or nChw8c) -> NCHW for one shape, checking
// every element lands where the hand formula says and the padding is zero;
// then blocked -> the other blocked layout -> NCHW.
void round_trip(wh_shape s, wh_layout lay = WH_LAYOUT_NCHW16C)
{
    const int B = lay == WH_LAYOUT_NCHW16C ? 16 : 8;
    const size_t n_plain = wh_shape_count(s), n_blk = wh_layout_count(s, lay);
    const int cb = (s.c + B - 1) / B;
    ASSERT_EQ(n_blk, (size_t)s.n * cb * B * s.h * s.w);
    std::vector<float> plain(n_plain), blk(n_blk, NAN), back(n_plain, -7.f);
    for (size_t i = 0; i < n_plain; i++) plain[i] = 0.5f + (float)i; // distinct, non-zero
    wh_tensor a = view(plain.data(), s, WH_LAYOUT_NCHW);
    wh_tensor b = view(blk.data(), s, lay);
    wh_tensor c = view(back.data(), s, WH_LAYOUT_NCHW);
    wh_tensor_reorder(&a, &b);
    size_t nonpad = 0;
    for (int n = 0; n < s.n; n++)
        for (int cb_i = 0; cb_i < cb; cb_i++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    for (int ci = 0; ci < B; ci++) {
                        const size_t o = ((((size_t)n * cb + cb_i) * s.h + h) * s.w + w) * B + ci;
                        const int ch = cb_i * B + ci;
                        if (ch < s.c) {
                            const size_t p = (((size_t)n * s.c + ch) * s.h + h) * s.w + w;
                            ASSERT_EQ(blk[o], plain[p]) << n << "," << ch << "," << h << "," << w;
                            nonpad++;
                        } else {
                            ASSERT_EQ(blk[o], 0.f) << "padding at " << o;
                        }
                    }
    EXPECT_EQ(nonpad, n_plain);
    wh_tensor_reorder(&b, &c);
    for (size_t i = 0; i < n_plain; i++) ASSERT_EQ(back[i], plain[i]) << i;
    const wh_layout other = lay == WH_LAYOUT_NCHW16C ? WH_LAYOUT_NCHW8C : WH_LAYOUT_NCHW16C;
    std::vector<float> blk2(wh_layout_count(s, other), NAN), back2(n_plain, -7.f);
    wh_tensor b2 = view(blk2.data(), s, other), c2 = view(back2.data(), s, WH_LAYOUT_NCHW);
    wh_tensor_reorder(&b, &b2);
    wh_tensor_reorder(&b2, &c2);
    for (size_t i = 0; i < n_plain; i++) ASSERT_EQ(back2[i], plain[i]) << "via the other block, " << i;
}

TEST(Tensor, ReorderRoundTripWithPadding) { round_trip({2, 20, 3, 5}); }
TEST(Tensor, ReorderRoundTripFewChannels) { round_trip({1, 3, 4, 7}); }
TEST(Tensor, ReorderRoundTripExactBlocks) { round_trip({2, 32, 2, 3}); }
TEST(Tensor, ReorderRoundTripManyBlocks) { round_trip({3, 50, 5, 2}); }
TEST(Tensor, ReorderRoundTripBlocksOf8) { round_trip({2, 20, 3, 5}, WH_LAYOUT_NCHW8C); }
TEST(Tensor, ReorderRoundTripBlocksOf8Exact) { round_trip({1, 24, 4, 3}, WH_LAYOUT_NCHW8C); }

TEST(Tensor, ReorderSameLayoutCopies)
{
    const wh_shape s = {1, 20, 2, 2};
    const size_t nb = wh_layout_count(s, WH_LAYOUT_NCHW16C);
    std::vector<float> x(nb), y(nb, -1.f);
    for (size_t i = 0; i < nb; i++) x[i] = (float)i;
    wh_tensor a = view(x.data(), s, WH_LAYOUT_NCHW16C), b = view(y.data(), s, WH_LAYOUT_NCHW16C);
    wh_tensor_reorder(&a, &b);
    EXPECT_EQ(x, y); // the whole padded buffer
    std::vector<float> p(wh_shape_count(s)), q(wh_shape_count(s), -1.f);
    for (size_t i = 0; i < p.size(); i++) p[i] = (float)(3 * i);
    wh_tensor c = view(p.data(), s, WH_LAYOUT_NCHW), d = view(q.data(), s, WH_LAYOUT_NCHW);
    wh_tensor_reorder(&c, &d);
    EXPECT_EQ(p, q);
}

// dst += src across layouts: every real element gets its source added, the
// padding of a blocked dst is left as it was.
TEST(Tensor, ReorderAddAccumulatesAndLeavesPadding)
{
    const wh_shape s = {2, 20, 3, 5};
    const size_t np = wh_shape_count(s), nb = wh_layout_count(s, WH_LAYOUT_NCHW16C);
    std::vector<float> plain(np), blk(nb);
    for (size_t i = 0; i < np; i++) plain[i] = (float)(i % 97) - 40.f;
    for (size_t o = 0; o < nb; o++) blk[o] = 1000.f + (float)o;
    wh_tensor a = view(plain.data(), s, WH_LAYOUT_NCHW), b = view(blk.data(), s, WH_LAYOUT_NCHW16C);
    wh_tensor_reorder_add(&a, &b);
    std::vector<int> real(nb, 0);
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++) {
                    const size_t o = ((((size_t)n * 2 + c / 16) * 3 + h) * 5 + w) * 16 + c % 16;
                    const size_t p = (((size_t)n * 20 + c) * 3 + h) * 5 + w;
                    EXPECT_EQ(blk[o], 1000.f + (float)o + plain[p]);
                    real[o] = 1;
                }
    for (size_t o = 0; o < nb; o++) {
        if (!real[o]) {
            EXPECT_EQ(blk[o], 1000.f + (float)o) << "padding " << o;
        }
    }

    // Back: plain += blocked (only real channels are read).
    std::vector<float> acc(np, 1.f);
    wh_tensor d = view(acc.data(), s, WH_LAYOUT_NCHW);
    wh_tensor_reorder_add(&b, &d);
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++) {
                    const size_t o = ((((size_t)n * 2 + c / 16) * 3 + h) * 5 + w) * 16 + c % 16;
                    const size_t p = (((size_t)n * 20 + c) * 3 + h) * 5 + w;
                    EXPECT_EQ(acc[p], 1.f + blk[o]);
                }

    // Same layout: an element-wise sum.
    std::vector<float> x(np, 2.f);
    wh_tensor e = view(x.data(), s, WH_LAYOUT_NCHW);
    wh_tensor_reorder_add(&a, &e);
    for (size_t i = 0; i < np; i++) EXPECT_EQ(x[i], 2.f + plain[i]);
}

TEST(Tensor, ShapeHelpersAndNames)
{
    EXPECT_TRUE(wh_shape_eq({1, 2, 3, 4}, {1, 2, 3, 4}));
    EXPECT_FALSE(wh_shape_eq({1, 2, 3, 4}, {1, 2, 4, 3}));
    EXPECT_STREQ(wh_layout_name(WH_LAYOUT_NCHW), "nchw");
    EXPECT_STREQ(wh_layout_name(WH_LAYOUT_NCHW16C), "nChw16c");
    EXPECT_STREQ(wh_layout_name(WH_LAYOUT_COUNT), "?");
}

}  // namespace
