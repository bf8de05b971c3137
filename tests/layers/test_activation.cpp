// Activations alone, over a wide range of inputs (the layer tests only see
// values near [-3, 3]): forward against float64 formulas, backward against
// float64 central differences, and the large-|x| limits.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "layers/harness.h"

extern "C" {
#include "layers/activation.h"
}

TEST(Activation, ForwardAndDerivativeOverAWideRange)
{
    std::vector<float> x;
    for (float v = -40.f; v <= 40.f; v += 0.37f) x.push_back(v);
    for (float v : {-100.f, -20.5f, -1e-3f, 1e-3f, 19.9f, 20.1f, 100.f}) x.push_back(v);
    const size_t n = x.size();
    for (int a = 0; a < WH_ACT_COUNT; a++) {
        const std::string name = wh_act_name((wh_act)a);
        std::vector<float> y(n), dy(n, 1.f), dx(n, 0.f);
        wh_act_forward((wh_act)a, x.data(), y.data(), n);
        wh_act_backward((wh_act)a, x.data(), dy.data(), dx.data(), n, 0);
        for (size_t i = 0; i < n; i++) {
            const double xi = x[i], want = wht::act_ref(name, xi);
            EXPECT_NEAR(y[i], want, 2e-6 * std::max(1.0, std::fabs(want))) << name << " at " << xi;
            if ((a == WH_ACT_LEAKY || a == WH_ACT_RELU) && std::fabs(xi) < 1e-2) continue;  // the kink
            const double h = 1e-5;
            const double fd = (wht::act_ref(name, xi + h) - wht::act_ref(name, xi - h)) / (2 * h);
            EXPECT_NEAR(dx[i], fd, 1e-5 * std::max(1.0, std::fabs(fd))) << name << "' at " << xi;
        }
    }
}

TEST(Activation, BackwardAccumulatesWhenAsked)
{
    const float x[3] = {-2.f, 0.5f, 3.f}, dy[3] = {1.f, 2.f, -1.f};
    float dx[3] = {10.f, 10.f, 10.f};
    wh_act_backward(WH_ACT_LEAKY, x, dy, dx, 3, 1);
    EXPECT_FLOAT_EQ(dx[0], 10.f + 0.1f);
    EXPECT_FLOAT_EQ(dx[1], 12.f);
    EXPECT_FLOAT_EQ(dx[2], 9.f);
}

TEST(Activation, ExpBasedOnesAreRelativelyAccurateEverywhere)
{
    // The elementwise loops use their own vectorisable exp (Cephes' expf);
    // tiny outputs (logistic at -80 is 1.8e-35) must still be right to a few
    // ulp relative, not just within an absolute tolerance.
    std::vector<float> x;
    for (float v = -86.f; v <= 86.f; v += 0.0173f) x.push_back(v);
    const size_t n = x.size();
    for (wh_act a : {WH_ACT_LOGISTIC, WH_ACT_MISH, WH_ACT_SWISH}) {
        const std::string name = wh_act_name(a);
        std::vector<float> y(n);
        wh_act_forward(a, x.data(), y.data(), n);
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            const double want = wht::act_ref(name, x[i]);
            if (want == 0.0) continue;
            worst = std::max(worst, std::fabs(y[i] - want) / std::fabs(want));
        }
        EXPECT_LT(worst, 1e-6) << name;
    }
}
