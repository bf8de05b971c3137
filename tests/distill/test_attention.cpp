// Spatial attention maps: a hand-worked map, the blocked layouts giving the
// plain layout's map, and the loss's gradient against central differences
// of an independent float64 re-implementation, for every variant.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

extern "C" {
#include "distill/distill.h"
}

namespace {

// float64 reference: the loss of student features a against teacher map qt
double ref_loss(const std::vector<double> &a, wh_shape s, const std::vector<double> &qt, const wh_at_opts &o,
                double beta)
{
    const size_t hw = (size_t)s.h * s.w;
    double loss = 0;
    for (int n = 0; n < s.n; n++) {
        std::vector<double> q(hw, 0.0);
        for (int c = 0; c < s.c; c++)
            for (size_t i = 0; i < hw; i++) {
                const double v = a[((size_t)n * s.c + c) * hw + i];
                q[i] += o.p == 1 ? std::fabs(v) : v * v;
            }
        if (!o.sum)
            for (auto &v : q) v /= s.c;
        if (o.norm == WH_AT_SOFTMAX) {
            double z = 0;
            for (auto &v : q) z += std::exp(v / o.temperature);
            for (auto &v : q) v = std::exp(v / o.temperature) / z;
        } else {
            double ss = 0;
            for (auto v : q) ss += v * v;
            for (auto &v : q) v /= std::sqrt(ss);
        }
        double l = 0;
        for (size_t i = 0; i < hw; i++) l += (q[i] - qt[n * hw + i]) * (q[i] - qt[n * hw + i]);
        loss += beta * l / hw;
    }
    return loss;
}

}  // namespace

TEST(Attention, HandWorkedMaps)
{
    // A (1, 2, 1, 2): channel 0 = [1, 2], channel 1 = [3, 0]
    const float a[4] = {1, 2, 3, 0};
    const wh_shape s = {1, 2, 1, 2};
    wh_at_opts o;
    wh_at_opts_default(&o);
    float q[2];
    wh_at_map(a, s, WH_LAYOUT_NCHW, &o, q);  // mean of squares [5, 2], over sqrt(29)
    EXPECT_NEAR(q[0], 5 / std::sqrt(29.0), 1e-6);
    EXPECT_NEAR(q[1], 2 / std::sqrt(29.0), 1e-6);
    o.p = 1;  // mean of |A| [2, 1], over sqrt(5)
    wh_at_map(a, s, WH_LAYOUT_NCHW, &o, q);
    EXPECT_NEAR(q[0], 2 / std::sqrt(5.0), 1e-6);
    EXPECT_NEAR(q[1], 1 / std::sqrt(5.0), 1e-6);
    o.p = 2;
    o.sum = 1;  // the sum [10, 4]: the same direction after the L2 norm
    wh_at_map(a, s, WH_LAYOUT_NCHW, &o, q);
    EXPECT_NEAR(q[0], 5 / std::sqrt(29.0), 1e-6);
    o.norm = WH_AT_SOFTMAX;
    o.temperature = 2.f;  // softmax([10, 4] / 2) = [e^5, e^2] / (e^5 + e^2)
    wh_at_map(a, s, WH_LAYOUT_NCHW, &o, q);
    EXPECT_NEAR(q[0], std::exp(5.0) / (std::exp(5.0) + std::exp(2.0)), 1e-6);
    EXPECT_NEAR(q[1], std::exp(2.0) / (std::exp(5.0) + std::exp(2.0)), 1e-6);
}

TEST(Attention, BlockedLayoutsGiveThePlainMap)
{
    const wh_shape s = {2, 12, 3, 5};  // 12 channels: padding lanes in both block sizes
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> u(-2, 2);
    std::vector<float> plain(wh_shape_count(s));
    for (auto &v : plain) v = u(rng);
    wh_at_opts o;
    wh_at_opts_default(&o);
    std::vector<float> q0(2 * 15), q1(2 * 15);
    wh_at_map(plain.data(), s, WH_LAYOUT_NCHW, &o, q0.data());
    for (wh_layout lay : {WH_LAYOUT_NCHW8C, WH_LAYOUT_NCHW16C}) {
        std::vector<float> blk(wh_layout_count(s, lay), 99.f);  // padding is 0 after the reorder
        wh_tensor src = {plain.data(), s, WH_LAYOUT_NCHW}, dst = {blk.data(), s, lay};
        wh_tensor_reorder(&src, &dst);
        wh_at_map(blk.data(), s, lay, &o, q1.data());
        for (size_t i = 0; i < q0.size(); i++) EXPECT_NEAR(q1[i], q0[i], 1e-6) << wh_layout_name(lay) << " " << i;
    }
}

TEST(Attention, LossGradientMatchesFiniteDifferences)
{
    const wh_shape s = {2, 3, 3, 4};  // student: 3 channels; teacher: 7 (pruned student)
    const wh_shape st = {2, 7, 3, 4};
    const size_t hw = 12, n = wh_shape_count(s);
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(0.2f, 1.5f);
    std::bernoulli_distribution neg(0.5);
    std::vector<float> a(n), at(wh_shape_count(st));
    for (auto &v : a) v = (neg(rng) ? -1.f : 1.f) * u(rng);  // away from |A|'s kink
    for (auto &v : at) v = (neg(rng) ? -1.f : 1.f) * u(rng);
    struct V {
        int p, sum;
        wh_at_norm norm;
        float t;
    } variants[] = {{2, 0, WH_AT_L2, 1}, {1, 0, WH_AT_L2, 1}, {2, 1, WH_AT_L2, 1}, {2, 0, WH_AT_SOFTMAX, 0.5f},
                    {1, 1, WH_AT_SOFTMAX, 2.f}};
    for (const V &v : variants) {
        wh_at_opts o = {v.p, v.sum, v.norm, v.t};
        const double beta = 3.0;
        std::vector<float> qs(2 * hw), qt(2 * hw), da(n, 0.f), scratch(4 * hw);
        wh_at_map(at.data(), st, WH_LAYOUT_NCHW, &o, qt.data());
        wh_at_map(a.data(), s, WH_LAYOUT_NCHW, &o, qs.data());
        const double loss =
            wh_at_loss(a.data(), s, WH_LAYOUT_NCHW, qs.data(), qt.data(), &o, beta, da.data(), scratch.data());
        // the same map and gradient with a (and da) in the blocked layouts;
        // 3 channels leave padding lanes, which must stay untouched
        for (wh_layout lay : {WH_LAYOUT_NCHW8C, WH_LAYOUT_NCHW16C}) {
            std::vector<float> ab(wh_layout_count(s, lay)), dab(wh_layout_count(s, lay), 0.f), back(n);
            wh_tensor src = {a.data(), s, WH_LAYOUT_NCHW}, dst = {ab.data(), s, lay};
            wh_tensor_reorder(&src, &dst);
            std::vector<float> qb(2 * hw);
            wh_at_map(ab.data(), s, lay, &o, qb.data());
            const double lb = wh_at_loss(ab.data(), s, lay, qb.data(), qt.data(), &o, beta, dab.data(), scratch.data());
            EXPECT_NEAR(lb, loss, 1e-6 * (1 + loss)) << wh_layout_name(lay);
            wh_tensor gsrc = {dab.data(), s, lay}, gdst = {back.data(), s, WH_LAYOUT_NCHW};
            wh_tensor_reorder(&gsrc, &gdst);
            for (size_t i = 0; i < n; i++) EXPECT_NEAR(back[i], da[i], 1e-5 * (1 + std::fabs(da[i]))) << i;
            for (size_t e = 0; e < dab.size(); e++) {  // padding lanes (channels 3.. of the block) stay 0
                if ((int)(e % wh_layout_block(lay)) < s.c) continue;
                EXPECT_EQ(dab[e], 0.f) << e;
            }
        }
        std::vector<double> ad(a.begin(), a.end()), qtd(qt.begin(), qt.end());
        EXPECT_NEAR(loss, ref_loss(ad, s, qtd, o, beta), 1e-6 * (1 + loss)) << "p " << v.p << " norm " << v.norm;
        EXPECT_GT(loss, 0.0);
        for (size_t i = 0; i < n; i++) {
            const double h = 1e-5;
            std::vector<double> ap = ad, am = ad;
            ap[i] += h;
            am[i] -= h;
            const double fd = (ref_loss(ap, s, qtd, o, beta) - ref_loss(am, s, qtd, o, beta)) / (2 * h);
            EXPECT_NEAR(da[i], fd, 1e-3 * std::fabs(fd) + 1e-6) << "p " << v.p << " sum " << v.sum << " norm "
                                                                  << v.norm << " at " << i;
        }
    }
}

TEST(LogitDistill, KlAndGradientAgainstFloat64AndFiniteDifferences)
{
    // 2 samples, 2 anchors, 3 classes -> 16 channels, 2x3 cells; only the
    // objectness and class entries (4..7 of each anchor) take part
    const int n = 2, na = 2, nc = 3, hw = 6, per = 5 + nc;
    const size_t m = (size_t)n * na * per * hw;
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-4, 4);
    std::vector<float> zs(m), zt(m);
    for (auto &v : zs) v = u(rng);
    for (auto &v : zt) v = u(rng);
    const double T = 3, w = 0.7;
    auto ref = [&](const std::vector<double> &s) {
        double l = 0;
        for (int b = 0; b < n; b++)
            for (int a = 0; a < na; a++)
                for (int k = 4; k < per; k++)
                    for (int i = 0; i < hw; i++) {
                        const size_t o = (((size_t)b * na + a) * per + k) * hw + i;
                        const double ps = 1 / (1 + std::exp(-s[o] / T)), pt = 1 / (1 + std::exp(-zt[o] / T));
                        l += pt * std::log(pt / ps) + (1 - pt) * std::log((1 - pt) / (1 - ps));
                    }
        return w * T * T * l;
    };
    std::vector<float> dz(m, 0.f);
    const double loss = wh_kd_logits(zs.data(), zt.data(), n, na, nc, hw, (float)T, w, dz.data());
    std::vector<double> sd(zs.begin(), zs.end());
    EXPECT_NEAR(loss, ref(sd), 1e-9 * (1 + loss));
    EXPECT_GT(loss, 0.0);
    for (size_t o = 0; o < m; o++) {
        const int k = (int)((o / hw) % per);
        if (k < 4) {
            EXPECT_EQ(dz[o], 0.f) << "box entry " << o << " untouched";
            continue;
        }
        std::vector<double> p = sd, q = sd;
        p[o] += 1e-5;
        q[o] -= 1e-5;
        const double fd = (ref(p) - ref(q)) / 2e-5;
        EXPECT_NEAR(dz[o], fd, 1e-4 * std::fabs(fd) + 1e-6) << o;
    }
    // the same logits give no loss and no gradient
    std::vector<float> d0(m, 0.f);
    EXPECT_NEAR(wh_kd_logits(zt.data(), zt.data(), n, na, nc, hw, (float)T, w, d0.data()), 0.0, 1e-9);
    for (float v : d0) EXPECT_EQ(v, 0.f);
}

TEST(BoxDistill, DecodedBoxL2AgainstFloat64AndFiniteDifferences)
{
    // 2 samples, 2 anchors of a 3-anchor list, 2 classes, a 3x2 grid, a
    // 96x64 input, scale_x_y 1.1; the reference decodes whole boxes (cell
    // offsets included) as yolo.h documents
    const int n = 2, nc = 2, lw = 3, lh = 2, hw = lw * lh, per = 5 + nc, netw = 96, neth = 64;
    wh_yolo_params p;
    memset(&p, 0, sizeof(p));
    p.classes = nc;
    p.num = 3;
    p.n_mask = 2;
    p.mask[0] = 2;
    p.mask[1] = 0;
    const float anchors[6] = {10, 14, 23, 27, 37, 58};
    memcpy(p.anchors, anchors, sizeof(anchors));
    p.scale_x_y = 1.1f;
    const size_t m = (size_t)n * p.n_mask * per * hw;
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(-2, 2);
    std::vector<float> zs(m), zt(m);
    for (auto &v : zs) v = u(rng);
    for (auto &v : zt) v = u(rng);
    const double w = 3.0;
    auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
    auto box = [&](const double *z, int a, int i, double b[4]) {
        const double s = p.scale_x_y, off = -(s - 1) / 2;
        b[0] = (s * sig(z[i]) + off + i % lw) / lw;
        b[1] = (s * sig(z[hw + i]) + off + i / lw) / lh;
        b[2] = std::exp(z[2 * hw + i]) * p.anchors[2 * p.mask[a]] / netw;
        b[3] = std::exp(z[3 * hw + i]) * p.anchors[2 * p.mask[a] + 1] / neth;
    };
    const std::vector<double> td(zt.begin(), zt.end());
    auto ref = [&](const std::vector<double> &s) {
        double l = 0;
        for (int b = 0; b < n; b++)
            for (int a = 0; a < p.n_mask; a++)
                for (int i = 0; i < hw; i++) {
                    const size_t base = ((size_t)b * p.n_mask + a) * per * hw;
                    double bs[4], bt[4];
                    box(s.data() + base, a, i, bs);
                    box(td.data() + base, a, i, bt);
                    double e = 0;
                    for (int k = 0; k < 4; k++) e += (bs[k] - bt[k]) * (bs[k] - bt[k]);
                    l += w * sig(td[base + 4 * hw + i]) * e / 2;
                }
        return l;
    };
    std::vector<float> dz(m, 0.f);
    const double loss = wh_kd_boxes(zs.data(), zt.data(), n, &p, lw, lh, netw, neth, w, dz.data());
    const std::vector<double> sd(zs.begin(), zs.end());
    EXPECT_NEAR(loss, ref(sd), 1e-9 * (1 + loss));
    EXPECT_GT(loss, 1e-3);
    for (size_t o = 0; o < m; o++) {
        if ((o / hw) % per >= 4) {
            EXPECT_EQ(dz[o], 0.f) << "objectness/class entry " << o << " untouched";
            continue;
        }
        std::vector<double> a = sd, b = sd;
        a[o] += 1e-6;
        b[o] -= 1e-6;
        const double fd = (ref(a) - ref(b)) / 2e-6;
        EXPECT_NEAR(dz[o], fd, 1e-4 * std::fabs(fd) + 1e-7) << o;
    }
    std::vector<float> d0(m, 0.f);
    EXPECT_NEAR(wh_kd_boxes(zt.data(), zt.data(), n, &p, lw, lh, netw, neth, w, d0.data()), 0.0, 1e-12);
    for (float v : d0) EXPECT_EQ(v, 0.f);
}
