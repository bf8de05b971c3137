// Tests of anchors from the data (framework/data/anchors.c) and of the model
// generator's anchors (framework/io/modelgen.c).
//
// References: IoUs worked by hand; clusters whose answer is known (boxes of
// exactly three sizes); on random boxes, the two conditions that define a
// k-means result under 1 - IoU, checked with the test's own float64 code
// (every anchor is the mean of the boxes that fit it best, and the reported
// mean IoU is the mean best IoU recomputed); box sizes in network pixels
// worked by hand for resize and letterbox.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "framework/data/anchors.h"
#include "framework/io/modelgen.h"

namespace {

double iou_ref(double aw, double ah, double bw, double bh)
{
    const double i = std::min(aw, bw) * std::min(ah, bh);
    return i / (aw * ah + bw * bh - i);
}

int best_ref(double w, double h, const std::vector<float> &a, double *iou)
{
    int best = 0;
    double b = -1;
    for (size_t j = 0; j < a.size() / 2; j++) {
        const double v = iou_ref(w, h, a[2 * j], a[2 * j + 1]);
        if (v > b) b = v, best = (int)j;
    }
    *iou = b;
    return best;
}

} // namespace

TEST(Anchors, IouOfCentredBoxesByHand)
{
    EXPECT_DOUBLE_EQ(wh_anchors_iou(2, 2, 1, 1), 0.25);      // 1 / (4 + 1 - 1)
    EXPECT_DOUBLE_EQ(wh_anchors_iou(2, 1, 1, 2), 1.0 / 3.0); // 1 / (2 + 2 - 1)
    EXPECT_DOUBLE_EQ(wh_anchors_iou(3, 5, 3, 5), 1.0);
    const float wh[] = {2, 2, 1, 2};
    const float an[] = {1, 1, 2, 2};
    // box (2,2): best IoU 1 with anchor (2,2); box (1,2): IoU 0.5 with both
    EXPECT_DOUBLE_EQ(wh_anchors_mean_iou(wh, 2, an, 2), 0.75);
}

TEST(Anchors, ThreeExactSizesAreFoundSortedByArea)
{
    std::vector<float> wh;
    for (int i = 0; i < 30; i++) {
        const float sizes[] = {20, 60, 10, 10, 40, 20}; // areas 1200, 100, 800
        for (int k = 0; k < 3; k++) wh.push_back(sizes[2 * k]), wh.push_back(sizes[2 * k + 1]);
    }
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    float a[6];
    double iou = 0;
    ASSERT_EQ(wh_anchors_kmeans(wh.data(), 90, 3, 7, 3, a, &iou, &ctx), WH_OK) << ctx.msg;
    const float want[] = {10, 10, 40, 20, 20, 60};
    for (int j = 0; j < 6; j++) EXPECT_FLOAT_EQ(a[j], want[j]) << j;
    EXPECT_DOUBLE_EQ(iou, 1.0);
}

TEST(Anchors, ResultIsAKMeansFixedPointWithItsReportedIou)
{
    std::mt19937 rng(3);
    std::lognormal_distribution<double> size(3.5, 0.7);
    std::uniform_real_distribution<double> aspect(0.4, 2.5);
    const long n = 2000;
    std::vector<float> wh(2 * n);
    for (long i = 0; i < n; i++) {
        const double s = size(rng), r = aspect(rng);
        wh[2 * i] = (float)(s * std::sqrt(r)), wh[2 * i + 1] = (float)(s / std::sqrt(r));
    }
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    for (int k : {1, 6, 9}) {
        std::vector<float> a(2 * k);
        double iou = 0;
        ASSERT_EQ(wh_anchors_kmeans(wh.data(), n, k, 1, 4, a.data(), &iou, &ctx), WH_OK) << ctx.msg;
        // the mean best IoU, recomputed
        double sum = 0;
        std::vector<double> acc(3 * k, 0.0);
        for (long i = 0; i < n; i++) {
            double v;
            const int b = best_ref(wh[2 * i], wh[2 * i + 1], a, &v);
            sum += v;
            acc[3 * b] += wh[2 * i], acc[3 * b + 1] += wh[2 * i + 1], acc[3 * b + 2] += 1;
        }
        EXPECT_NEAR(iou, sum / n, 1e-6) << "k=" << k;
        EXPECT_NEAR(wh_anchors_mean_iou(wh.data(), n, a.data(), k), sum / n, 1e-9) << "k=" << k;
        // every anchor is the mean of its boxes (k-means converged), in area order
        for (int j = 0; j < k; j++) {
            ASSERT_GT(acc[3 * j + 2], 0) << "k=" << k << ": anchor " << j << " fits no box best";
            EXPECT_NEAR(a[2 * j], acc[3 * j] / acc[3 * j + 2], 1e-3 * a[2 * j]) << "k=" << k << " anchor " << j;
            EXPECT_NEAR(a[2 * j + 1], acc[3 * j + 1] / acc[3 * j + 2], 1e-3 * a[2 * j + 1]);
            if (j) {
                EXPECT_LE(a[2 * j - 2] * a[2 * j - 1], a[2 * j] * a[2 * j + 1]);
            }
        }
        // more anchors fit better; one anchor is the mean box
        if (k == 1) {
            double mw = 0, mh = 0;
            for (long i = 0; i < n; i++) mw += wh[2 * i], mh += wh[2 * i + 1];
            EXPECT_NEAR(a[0], mw / n, 1e-3 * a[0]);
            EXPECT_NEAR(a[1], mh / n, 1e-3 * a[1]);
        }
    }
    float a6[12], a9[18];
    double i6, i9, i9one;
    ASSERT_EQ(wh_anchors_kmeans(wh.data(), n, 6, 1, 4, a6, &i6, &ctx), WH_OK);
    ASSERT_EQ(wh_anchors_kmeans(wh.data(), n, 9, 1, 4, a9, &i9, &ctx), WH_OK);
    ASSERT_EQ(wh_anchors_kmeans(wh.data(), n, 9, 1, 1, a9, &i9one, &ctx), WH_OK);
    EXPECT_GT(i9, i6);
    EXPECT_GE(i9, i9one); // restarts keep the best: never worse than the first alone
}

TEST(Anchors, SameSeedSameAnchors)
{
    std::vector<float> wh;
    for (int i = 0; i < 200; i++) wh.push_back(5.f + (float)(i % 37)), wh.push_back(7.f + (float)(i % 23) * 2);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    float a[12], b[12];
    ASSERT_EQ(wh_anchors_kmeans(wh.data(), 200, 6, 42, 3, a, nullptr, &ctx), WH_OK);
    ASSERT_EQ(wh_anchors_kmeans(wh.data(), 200, 6, 42, 3, b, nullptr, &ctx), WH_OK);
    EXPECT_EQ(std::memcmp(a, b, sizeof(a)), 0);
}

TEST(Anchors, BadInputIsRefusedSayingWhy)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    float a[18];
    const float two[] = {10, 10, 20, 20};
    EXPECT_EQ(wh_anchors_kmeans(two, 2, 3, 1, 1, a, nullptr, &ctx), WH_ERR_ARG);
    EXPECT_NE(std::string(ctx.msg).find("2 boxes are fewer than the 3 anchors"), std::string::npos) << ctx.msg;
    const float same[] = {10, 10, 10, 10, 10, 10, 20, 20};
    EXPECT_EQ(wh_anchors_kmeans(same, 4, 3, 1, 1, a, nullptr, &ctx), WH_ERR_ARG);
    EXPECT_NE(std::string(ctx.msg).find("only 2 distinct sizes"), std::string::npos) << ctx.msg;
    const float zero[] = {10, 10, 0, 5, 3, 3};
    EXPECT_EQ(wh_anchors_kmeans(zero, 3, 2, 1, 1, a, nullptr, &ctx), WH_ERR_ARG);
    EXPECT_NE(std::string(ctx.msg).find("box 1 has size 0 x 5"), std::string::npos) << ctx.msg;
    EXPECT_EQ(wh_anchors_kmeans(two, 2, 65, 1, 1, a, nullptr, &ctx), WH_ERR_ARG);
    EXPECT_EQ(wh_anchors_kmeans(two, 2, 1, 1, 0, a, nullptr, &ctx), WH_ERR_ARG);
}

TEST(Anchors, BoxSizesInNetworkPixelsResizedAndLetterboxed)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_dataset *d = wh__ds_new("hand-made");
    ASSERT_NE(d, nullptr);
    wh_sample *s;
    ASSERT_EQ(wh__ds_add_sample(d, &s, &ctx), WH_OK);
    s->width = 200, s->height = 100, s->n_obj = 2;
    s->obj = (wh_object *)calloc(2, sizeof(wh_object));
    // VOC's inclusive pixels: xmin 1 .. xmax 50 is 50 pixels wide
    s->obj[0] = {1, 1, 50, 20, 0, 0, 0};
    s->obj[1] = {11, 31, 210, 100, 0, 1, 0}; // a difficult box counts too
    ASSERT_EQ(wh__ds_add_sample(d, &s, &ctx), WH_OK); // an image without objects
    s->width = 10, s->height = 10;
    float *wh = nullptr;
    long n = 0;
    ASSERT_EQ(wh_anchors_boxes(d, 100, 100, 0, &wh, &n, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(n, 2);
    EXPECT_FLOAT_EQ(wh[0], 25.f); // 50 * 100/200
    EXPECT_FLOAT_EQ(wh[1], 20.f); // 20 * 100/100
    EXPECT_FLOAT_EQ(wh[2], 100.f);
    EXPECT_FLOAT_EQ(wh[3], 70.f);
    free(wh);
    ASSERT_EQ(wh_anchors_boxes(d, 100, 100, 1, &wh, &n, &ctx), WH_OK); // scale min(0.5, 1)
    EXPECT_FLOAT_EQ(wh[0], 25.f);
    EXPECT_FLOAT_EQ(wh[1], 10.f);
    free(wh);
    wh_dataset_free(d);

    wh_dataset *e = wh__ds_new("empty");
    ASSERT_EQ(wh__ds_add_sample(e, &s, &ctx), WH_OK);
    EXPECT_EQ(wh_anchors_boxes(e, 100, 100, 0, &wh, &n, &ctx), WH_ERR_ARG);
    EXPECT_NE(std::string(ctx.msg).find("empty has no objects"), std::string::npos) << ctx.msg;
    wh_dataset_free(e);
}

namespace {

std::string anchors_line(const wh_model_opts &o)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *text = nullptr;
    if (wh_model_generate(&o, &text, &ctx) != WH_OK) return std::string("error: ") + ctx.msg;
    std::string s(text);
    free(text);
    const size_t p = s.find("\nanchors=");
    return s.substr(p + 9, s.find('\n', p + 1) - p - 9);
}

} // namespace

TEST(Anchors, GeneratedModelsScaleDarknetsAnchorsOrTakeTheData)
{
    wh_model_opts o;
    wh_model_opts_default(&o);
    o.name = "yolov4-tiny";
    o.classes = 5;
    EXPECT_EQ(anchors_line(o), "10,14, 23,27, 37,58, 81,82, 135,169, 344,319"); // 416: darknet's
    o.width = 256, o.height = 256;
    // 10*256/416 = 6.15, 14*256/416 = 8.6, ..., 344*256/416 = 211.7, 319*256/416 = 196.3
    EXPECT_EQ(anchors_line(o), "6,9, 14,17, 23,36, 50,50, 83,104, 212,196");
    const float data[] = {19, 19, 30, 30, 47, 45, 65, 67, 93, 89, 120, 121};
    o.anchors = data;
    o.n_anchors = 6;
    EXPECT_EQ(anchors_line(o), "19,19, 30,30, 47,45, 65,67, 93,89, 120,121");
    o.n_anchors = 5;
    EXPECT_NE(anchors_line(o).find("5 anchors given, the model has 6"), std::string::npos) << anchors_line(o);
    int num = 0;
    float v4[2 * WH_ANCHORS_MAX];
    ASSERT_EQ(wh_model_default_anchors("yolov4", 416, 416, v4, &num), 0);
    EXPECT_EQ(num, 9);
    EXPECT_EQ(v4[17], 401);
    EXPECT_EQ(wh_model_default_anchors("nope", 416, 416, v4, &num), -1);
}

TEST(Anchors, GeneratedScheduleFollowsDarknetsCustomRule)
{
    wh_model_opts o;
    wh_model_opts_default(&o);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    auto net = [&](int classes) {
        o.classes = classes;
        char *text = nullptr;
        EXPECT_EQ(wh_model_generate(&o, &text, &ctx), WH_OK) << ctx.msg;
        std::string s(text ? text : "");
        free(text);
        auto key = [&](const char *k) {
            const size_t p = s.find(std::string("\n") + k + "=");
            return p == std::string::npos ? std::string() : s.substr(p + strlen(k) + 2, s.find('\n', p + 1) - p - strlen(k) - 2);
        };
        return key("max_batches") + " " + key("steps") + " " + key("burn_in");
    };
    EXPECT_EQ(net(80), "500500 400000,450000 1000"); // darknet's COCO yolov4.cfg
    EXPECT_EQ(net(5), "10000 8000,9000 1000");       // 2000 per class
    EXPECT_EQ(net(2), "6000 4800,5400 1000");        // at least 6000
}
