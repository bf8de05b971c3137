// No allocation inside the training step: after two warm-up steps, three
// more steps (zero the gradients, forward, every [yolo] loss, backward, the
// SGD step) must not call malloc, calloc, realloc, aligned_alloc or
// posix_memalign from whittle's code. This executable is linked with
// -Wl,--wrap for those symbols, so every call from the statically linked
// library and this file goes through the counters below (oneDNN's and the
// OpenMP runtime's own calls, from their shared libraries, are not seen).
// The control test shows the counters do see whittle's allocations.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <vector>

extern "C" {
#include "framework/train/optimizer.h"
#include "layers/yolo.h"
}
#include "model_util.h"

static std::atomic<int> g_counting{0};
static std::atomic<long> g_calls{0};

// Each counted call passes here: a place for a debugger's breakpoint.
extern "C" __attribute__((noinline)) void wh_alloc_counted(void) { g_calls++; }

extern "C" {
void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void *__real_aligned_alloc(size_t, size_t);
int __real_posix_memalign(void **, size_t, size_t);
void *__wrap_malloc(size_t n)
{
    if (g_counting) wh_alloc_counted();
    return __real_malloc(n);
}
void *__wrap_calloc(size_t a, size_t b)
{
    if (g_counting) wh_alloc_counted();
    return __real_calloc(a, b);
}
void *__wrap_realloc(void *p, size_t n)
{
    if (g_counting) wh_alloc_counted();
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n)
{
    if (g_counting) wh_alloc_counted();
    return __real_aligned_alloc(a, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    if (g_counting) wh_alloc_counted();
    return __real_posix_memalign(p, a, n);
}
}

namespace {

void step(wh_net *net, wh_sgd *sgd, const std::vector<wh_truth> &truth, int max_boxes)
{
    wht::forward_and_loss(net, truth.data(), max_boxes);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_net_backward(net, nullptr, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_sgd_step(sgd, net, 1e-4f, net->in_shape.n, &ctx), WH_OK) << ctx.msg;
}

}  // namespace

TEST(NoAlloc, TheCountersSeeWhittlesAllocations)
{
    g_calls = 0;
    g_counting = 1;
    wh_net *net = wht::cfg_net(wht::model_cfg("yolov4-tiny", 3, 64, 0.25), 1, 1, 1, 1);
    g_counting = 0;
    ASSERT_NE(net, nullptr);
    EXPECT_GT(g_calls.load(), 10);  // the layers, the arenas, oneDNN descriptors' holders
    wh_net_destroy(net);
}

TEST(NoAlloc, TrainingStepsAllocateNothing)
{
    for (const char *model : {"yolov4-tiny", "yolov4"}) {
        wh_net *net = wht::cfg_net(wht::model_cfg(model, 3, 64, 0.25), 2, 1, 1, 1);
        ASSERT_NE(net, nullptr);
        wh_net_init_weights(net, 3);
        std::mt19937 rng(5);
        std::uniform_real_distribution<float> u(0, 1);
        for (size_t i = 0; i < wh_shape_count(net->in_shape); i++) net->input[i] = u(rng);
        const int max_boxes = 4;
        std::vector<wh_truth> truth(2 * max_boxes);
        for (int b = 0; b < 2; b++) truth[(size_t)b * max_boxes] = {0.5f, 0.5f, 0.3f, 0.4f, b};
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_sgd *sgd = nullptr;
        ASSERT_EQ(wh_sgd_create(net, 0.9f, 5e-4f, 0, &sgd, &ctx), WH_OK) << ctx.msg;
        step(net, sgd, truth, max_boxes);
        step(net, sgd, truth, max_boxes);
        g_calls = 0;
        g_counting = 1;
        for (int k = 0; k < 3; k++) step(net, sgd, truth, max_boxes);
        g_counting = 0;
        EXPECT_EQ(g_calls.load(), 0) << model << ": allocations in three training steps";
        wh_sgd_destroy(sgd);
        wh_net_destroy(net);
    }
}
