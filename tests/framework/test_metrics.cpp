// Tests of box overlap, NMS, mAP and detection files (framework/eval/metrics.c).
//
// Every expected number is worked out by hand in the comments beside it:
// which detections are TP, FP or ignored, the cumulative counts, the
// precision/recall points and the interpolation. Boxes are VOC pixels
// (1-based, inclusive), so a box (1,1,10,10) is 10 x 10 = 100 pixels.
#include "test_util.h"
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

#include "framework/eval/metrics.h"

namespace {

wh_object obj(int cls, float x1, float y1, float x2, float y2, int difficult = 0)
{
    wh_object o{};
    o.xmin = x1;
    o.ymin = y1;
    o.xmax = x2;
    o.ymax = y2;
    o.cls = cls;
    o.difficult = difficult;
    return o;
}

wh_det det(int image, int cls, float score, float x1, float y1, float x2, float y2)
{
    return wh_det{image, cls, score, x1, y1, x2, y2};
}

// A ground-truth dataset built in memory (the loaders are not needed).
struct Gt {
    std::vector<std::string> names, ids;
    std::vector<std::vector<wh_object>> objs;
    std::vector<char *> name_ptrs;
    std::vector<wh_sample> samples;
    wh_dataset ds{};

    Gt(std::vector<std::string> class_names, std::vector<std::string> image_ids,
       std::vector<std::vector<wh_object>> objects)
        : names(std::move(class_names)), ids(std::move(image_ids)), objs(std::move(objects))
    {
        for (auto &n : names) name_ptrs.push_back(&n[0]);
        for (size_t i = 0; i < ids.size(); i++) {
            wh_sample s{};
            s.id = &ids[i][0];
            s.n_obj = (int)objs[i].size();
            s.obj = objs[i].data();
            samples.push_back(s);
        }
        ds.n_classes = (int)names.size();
        ds.class_names = name_ptrs.data();
        ds.n = (int)samples.size();
        ds.samples = samples.data();
        ds.source = (char *)"test-gt";
    }
};

// Owns one evaluation's result.
struct Eval {
    wh_ctx ctx;
    wh_map_result res{};
    wh_status st;
    Eval(const Gt &gt, const std::vector<wh_det> &d, wh_metric m)
    {
        wh_ctx_init(&ctx);
        st = wh_map_eval(&gt.ds, d.data(), (int)d.size(), m, &res, &ctx);
    }
    ~Eval() { wh_map_result_free(&res); }
    double ap(int c) const { return res.cls[c].ap; }
};

using wht::contains;

using wht::TempFile;

// ---------------------------------------------------------------- overlaps

TEST(Metrics, IouVocUsesInclusivePixels)
{
    // a = columns 1..10 x rows 1..10: 100 pixels; b = columns 6..15: 100.
    // Shared columns 6..10 = 5, rows 10: 50 pixels. IoU = 50 / (100 + 100 - 50) = 1/3.
    wh_rect a{1, 1, 10, 10}, b{6, 1, 15, 10};
    EXPECT_NEAR(wh_box_iou_voc(a, b), 1.0 / 3, 1e-12);
    // Continuous: a, b are 9 x 9 = 81; overlap (10 - 6) x 9 = 36; 36 / 126 = 2/7.
    EXPECT_NEAR(wh_box_iou(a, b), 2.0 / 7, 1e-12);
    // Touching at column 10: one shared pixel column (10 pixels) for VOC:
    // 10 / (100 + 110 - 10) = 0.05; nothing for the continuous IoU.
    wh_rect c{10, 1, 20, 10};
    EXPECT_NEAR(wh_box_iou_voc(a, c), 0.05, 1e-12);
    EXPECT_EQ(wh_box_iou(a, c), 0.0);
    // Adjacent (column 11 on): no shared pixel.
    EXPECT_EQ(wh_box_iou_voc(a, wh_rect{11, 1, 20, 10}), 0.0);
    // A one-pixel box is one pixel for VOC: IoU with itself is 1; it has no
    // area in the continuous convention, so IoU 0 there (darknet: U == 0 -> 0).
    wh_rect p{5, 5, 5, 5};
    EXPECT_EQ(wh_box_iou_voc(p, p), 1.0);
    EXPECT_EQ(wh_box_iou(p, p), 0.0);
}

TEST(Metrics, DiouIsIouMinusCentreTerm)
{
    // a = (0,0)-(10,10), b = (0,0)-(10,5): IoU 50/100 = 0.5. Centres (5,5) and
    // (5,2.5): d = 6.25. Enclosing box 10 x 10: c = 200. (6.25/200)^0.6 =
    // (2^-5)^0.6 = 2^-3 = 0.125. DIoU = 0.375.
    wh_rect a{0, 0, 10, 10}, b{0, 0, 10, 5};
    EXPECT_NEAR(wh_box_diou(a, b, 0.6), 0.375, 1e-12);
    // beta 1: 0.5 - 6.25/200 = 0.46875.
    EXPECT_NEAR(wh_box_diou(a, b, 1.0), 0.46875, 1e-12);
    // Same centre: the IoU itself (64/100).
    EXPECT_NEAR(wh_box_diou(a, wh_rect{1, 1, 9, 9}, 0.6), 0.64, 1e-12);
}

// ---------------------------------------------------------------- NMS

// Image 0: A (0.9) and B (0.8) overlap 0.538, B and C overlap 0.538, A and C
// 0.25 (continuous IoU: 7x10 / 130 and 4x10 / 160). D is class 1 on A's box.
// Image 1: E on A's box (another image: never suppressed), F and G tie at
// 0.6 and overlap 9x10/110 = 0.818; F comes first in the input.
std::vector<wh_det> nms_set()
{
    return {
        det(0, 0, 0.7f, 6, 0, 16, 10),        // 0 C
        det(0, 0, 0.8f, 3, 0, 13, 10),        // 1 B
        det(1, 0, 0.5f, 0, 0, 10, 10),        // 2 E
        det(1, 0, 0.6f, 100, 100, 110, 110),  // 3 F
        det(0, 0, 0.9f, 0, 0, 10, 10),        // 4 A
        det(1, 0, 0.6f, 101, 100, 111, 110),  // 5 G
        det(0, 1, 0.95f, 0, 0, 10, 10),       // 6 D
    };
}

std::vector<float> kept_scores_and_x(std::vector<wh_det> d, int per_class, wh_nms_kind kind, int *n_keep)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    EXPECT_EQ(wh_nms(d.data(), (int)d.size(), 0.45f, per_class, kind, WH_NMS_DIOU_BETA, n_keep, &ctx), WH_OK);
    std::vector<float> out;
    for (int i = 0; i < *n_keep; i++) out.push_back(d[i].xmin);
    return out;
}

TEST(Metrics, NmsGreedyPerClass)
{
    // Per class: A suppresses B; B is gone, so C (0.538 with B, 0.25 with A)
    // stays; D is another class; in image 1 F beats G on input order. Kept, in
    // input order: C, E, F, A, D (told apart by xmin: 6, 0, 100, 0, 0).
    int k = 0;
    std::vector<float> x = kept_scores_and_x(nms_set(), 1, WH_NMS_GREEDY, &k);
    ASSERT_EQ(k, 5);
    EXPECT_EQ(x, (std::vector<float>{6, 0, 100, 0, 0}));
    std::vector<wh_det> d = nms_set();
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_nms(d.data(), (int)d.size(), 0.45f, 1, WH_NMS_GREEDY, 0.6, &k, &ctx), WH_OK);
    EXPECT_FLOAT_EQ(d[0].score, 0.7f);  // C
    EXPECT_FLOAT_EQ(d[2].score, 0.6f);  // F, not G
    EXPECT_EQ(d[2].xmin, 100.0f);
    EXPECT_EQ(d[4].cls, 1);             // D
}

TEST(Metrics, NmsGreedyClassAgnostic)
{
    // All classes together: D (0.95) suppresses A (IoU 1) and B (0.538); C
    // (0.25 with D) stays. Image 1 as before. Kept: C, E, F, D.
    int k = 0;
    std::vector<float> x = kept_scores_and_x(nms_set(), 0, WH_NMS_GREEDY, &k);
    ASSERT_EQ(k, 4);
    EXPECT_EQ(x, (std::vector<float>{6, 0, 100, 0}));
}

TEST(Metrics, NmsDiouKeepsOffCentreBoxes)
{
    // IoU 0.5 > 0.45 but DIoU 0.375 (see DiouIsIouMinusCentreTerm): greedy
    // suppresses the lower box, DIoU-NMS keeps it. A box with the same centre
    // and IoU 0.64 is suppressed by both.
    std::vector<wh_det> d = {det(0, 0, 0.9f, 0, 0, 10, 10), det(0, 0, 0.8f, 0, 0, 10, 5),
                             det(0, 0, 0.7f, 1, 1, 9, 9)};
    int k = 0;
    EXPECT_EQ(kept_scores_and_x(d, 1, WH_NMS_GREEDY, &k).size(), 1u);
    std::vector<float> x = kept_scores_and_x(d, 1, WH_NMS_DIOU, &k);
    ASSERT_EQ(k, 2);
    EXPECT_EQ(x, (std::vector<float>{0, 0}));
    EXPECT_STREQ(wh_nms_kind_name(WH_NMS_DIOU), "diou");
}

TEST(Metrics, NmsThresholdIsStrict)
{
    // Continuous IoU exactly 0.5: (0,0)-(10,10) and (0,0)-(10,5). Not > 0.5: both kept.
    std::vector<wh_det> d = {det(0, 0, 0.9f, 0, 0, 10, 10), det(0, 0, 0.8f, 0, 0, 10, 5)};
    int k = 0;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_nms(d.data(), 2, 0.5f, 1, WH_NMS_GREEDY, 0.6, &k, &ctx), WH_OK);
    EXPECT_EQ(k, 2);
    ASSERT_EQ(wh_nms(d.data(), 2, 0.49f, 1, WH_NMS_GREEDY, 0.6, &k, &ctx), WH_OK);
    EXPECT_EQ(k, 1);
}

// ---------------------------------------------------------------- VOC

// Classes cat (0), dog (1), bird (2, no ground truth).
// img1: cat G1 (1,1,10,10), cat G2 (21,1,30,10)
// img2: cat G3 (1,1,10,10), cat Gd (41,41,50,50) difficult
// img3: dog H (1,1,20,20)
Gt main_gt()
{
    return Gt({"cat", "dog", "bird"}, {"img1", "img2", "img3"},
              {{obj(0, 1, 1, 10, 10), obj(0, 21, 1, 30, 10)},
               {obj(0, 1, 1, 10, 10), obj(0, 41, 41, 50, 50, 1)},
               {obj(1, 1, 1, 20, 20)}});
}

// cat, by score:
//   d1 .95 img1 on G1           TP
//   d2 .90 img2 on Gd           IoU 1 with a difficult object: ignored
//   d3 .85 img1 on G1 again     FP (duplicate)
//   d4 .80 img2 on G3           TP
//   d5 .70 img1 (21,1,25,10)    inside G2: 50 / 100 = 0.5 exactly, not > 0.5: FP
//   d6 .60 img1 on G2           TP (G2 still free: d5 did not take it)
//   d7 .50 img3                 no cat there: FP
// dog: three detections tied at 0.9, the hit last in the input: e0 in img2
//   (no dog there) and e1 away from H miss, e2 hits H. bird: one detection,
//   no ground truth.
std::vector<wh_det> main_dets()
{
    return {
        det(0, 0, 0.70f, 21, 1, 25, 10),      // d5
        det(1, 1, 0.9f, 100, 100, 120, 120),  // e0 (FP)
        det(2, 1, 0.9f, 50, 50, 60, 60),      // e1 (FP)
        det(0, 0, 0.95f, 1, 1, 10, 10),       // d1
        det(1, 0, 0.90f, 41, 41, 50, 50),     // d2
        det(2, 1, 0.9f, 1, 1, 20, 20),        // e2 (TP)
        det(0, 0, 0.85f, 1, 1, 10, 10),       // d3
        det(2, 0, 0.50f, 1, 1, 10, 10),       // d7
        det(1, 0, 0.80f, 1, 1, 10, 10),       // d4
        det(0, 0, 0.60f, 21, 1, 30, 10),      // d6
        det(0, 2, 0.40f, 1, 1, 10, 10),       // bird
    };
}
// Cat: npos 3 (Gd is difficult). Ranked, ignored d2 left out:
//   TP FP TP FP TP FP -> cumTP 1 1 2 2 3 3, cumFP 0 1 1 2 2 3
//   recall    1/3 1/3 2/3 2/3 1   1
//   precision 1   1/2 2/3 1/2 3/5 1/2
//   VOC07: t = 0, .1, .2, .3: best precision at recall >= t is 1 (4 x 1);
//          t = .4, .5, .6: 2/3 (3 x 2/3 = 2); t = .7 .. 1: 3/5 (4 x 0.6 = 2.4).
//          AP = 8.4 / 11 = 0.763636...
//   VOC:   monotone precision 1 1 2/3 2/3 3/5 3/5 1/2; recall steps 1/3 each at
//          precisions 1, 2/3, 3/5: AP = 1/3 + 2/9 + 1/5 = 34/45 = 0.755555...
// Dog: npos 1; in the stable order FP FP TP: recall 0 0 1, precision 0 0 1/3.
//   VOC07: recall 1 is reached only at precision 1/3, for every t: 1/3.
//   VOC:   monotone precision 1/3 up to recall 1: 1/3.
//   (Sorted with the hit first, dog would score 1.)
// mAP over cat and dog (bird left out): VOC07 (8.4/11 + 1/3) / 2 = 0.548485.

TEST(Metrics, Voc07HandWorked)
{
    Gt gt = main_gt();
    Eval e(gt, main_dets(), WH_METRIC_VOC07);
    ASSERT_EQ(e.st, WH_OK) << e.ctx.msg;
    ASSERT_EQ(e.res.n_classes, 3);
    EXPECT_NEAR(e.ap(0), 8.4 / 11, 1e-12);
    EXPECT_NEAR(e.ap(1), 1.0 / 3, 1e-12);
    EXPECT_EQ(e.res.cls[0].npos, 3);  // the difficult one is not counted
    EXPECT_EQ(e.res.cls[1].npos, 1);
    EXPECT_EQ(e.res.cls[0].n_dets, 7);
    EXPECT_EQ(e.res.cls[1].n_dets, 3);
    // bird: no ground truth -> undefined, out of the mean
    EXPECT_EQ(e.res.cls[2].npos, 0);
    EXPECT_EQ(e.res.cls[2].n_dets, 1);
    EXPECT_TRUE(std::isnan(e.ap(2)));
    EXPECT_EQ(e.res.n_valid, 2);
    EXPECT_NEAR(e.res.map, (8.4 / 11 + 1.0 / 3) / 2, 1e-12);
    EXPECT_EQ(e.res.metric, WH_METRIC_VOC07);
}

TEST(Metrics, VocAllPointHandWorked)
{
    Gt gt = main_gt();
    Eval e(gt, main_dets(), WH_METRIC_VOC);
    ASSERT_EQ(e.st, WH_OK) << e.ctx.msg;
    EXPECT_NEAR(e.ap(0), 34.0 / 45, 1e-12);
    EXPECT_NEAR(e.ap(1), 1.0 / 3, 1e-12);
    EXPECT_TRUE(std::isnan(e.ap(2)));
    EXPECT_NEAR(e.res.map, (34.0 / 45 + 1.0 / 3) / 2, 1e-12);
}

TEST(Metrics, VocScoreTiesKeepInputOrder)
{
    // Dog alone: two detections tied at 0.9. Hit first: TP then FP, recall 1 at
    // precision 1 -> AP 1. Miss first: FP then TP, recall 1 at precision 1/2
    // -> AP 1/2 (both metrics).
    Gt gt = main_gt();
    std::vector<wh_det> hit_first = {det(2, 1, 0.9f, 1, 1, 20, 20), det(2, 1, 0.9f, 50, 50, 60, 60)};
    std::vector<wh_det> miss_first = {hit_first[1], hit_first[0]};
    for (wh_metric m : {WH_METRIC_VOC07, WH_METRIC_VOC}) {
        Eval a(gt, hit_first, m), b(gt, miss_first, m);
        ASSERT_EQ(a.st, WH_OK);
        ASSERT_EQ(b.st, WH_OK);
        EXPECT_NEAR(a.ap(1), 1.0, 1e-12) << wh_metric_name(m);
        EXPECT_NEAR(b.ap(1), 0.5, 1e-12) << wh_metric_name(m);
        // cat has ground truth and no detection: AP 0, in the mean
        EXPECT_EQ(a.ap(0), 0.0);
        EXPECT_NEAR(a.res.map, 0.5, 1e-12);
    }
}

TEST(Metrics, VocDifficultMatchIsIgnoredAndNotCounted)
{
    // Only the difficult object Gd and one detection on it: no TP, no FP,
    // npos 0 -> cat has no AP. Adding a hit on G3 gives AP 1: the detection on
    // Gd, ranked first, did not count as a FP.
    Gt gt = main_gt();
    std::vector<wh_det> d = {det(1, 0, 0.9f, 41, 41, 50, 50), det(1, 0, 0.8f, 1, 1, 10, 10)};
    Eval e(gt, d, WH_METRIC_VOC);
    ASSERT_EQ(e.st, WH_OK);
    // npos 3 (G1, G2, G3), one TP at precision 1: AP = 1/3 (recall 1/3 x 1).
    EXPECT_NEAR(e.ap(0), 1.0 / 3, 1e-12);
    Eval e07(gt, d, WH_METRIC_VOC07);
    // t = 0, .1, .2, .3 reach recall 1/3 at precision 1: 4/11.
    EXPECT_NEAR(e07.ap(0), 4.0 / 11, 1e-12);
}

TEST(Metrics, Voc07RecallExactlyAtThreshold)
{
    // 10 cats in one image (disjoint 10 x 10 boxes). Ranked: TP TP TP FP TP.
    //   recall .1 .2 .3 .3 .4; precision 1 1 1 3/4 4/5
    //   VOC07: t = 0 .. .3 -> 1 (recall .3 counts for t = .3); t = .4 -> .8;
    //          t >= .5 -> 0. AP = 4.8 / 11 = 0.436364. (numpy's arange puts t
    //          a hair above .3 and would give 4.6 / 11.)
    //   VOC:   monotone precision 1 1 1 .8 .8 -> .1 + .1 + .1 + .1 x .8 = .38.
    std::vector<wh_object> cats;
    for (int i = 0; i < 10; i++) cats.push_back(obj(0, 1 + 20 * i, 1, 10 + 20 * i, 10));
    Gt gt({"cat"}, {"a"}, {cats});
    std::vector<wh_det> d = {det(0, 0, 0.9f, 1, 1, 10, 10), det(0, 0, 0.8f, 21, 1, 30, 10),
                             det(0, 0, 0.7f, 41, 1, 50, 10), det(0, 0, 0.6f, 500, 1, 510, 10),
                             det(0, 0, 0.5f, 61, 1, 70, 10)};
    Eval a(gt, d, WH_METRIC_VOC07), b(gt, d, WH_METRIC_VOC);
    ASSERT_EQ(a.st, WH_OK);
    EXPECT_NEAR(a.ap(0), 4.8 / 11, 1e-12);
    EXPECT_NEAR(b.ap(0), 0.38, 1e-12);
}

TEST(Metrics, VocPrecisionEnvelope)
{
    // 3 cats; ranked TP FP FP TP TP:
    //   recall    1/3 1/3 1/3 2/3 1
    //   precision 1   1/2 1/3 1/2 3/5
    //   VOC: precision made non-increasing from the right: 1 .6 .6 .6 .6, so the
    //        steps to 2/3 and to 1 both use .6: 1/3 + 2 x 1/3 x .6 = 0.7333
    //        (with the raw precisions it would be 1/3 + .5/3 + .6/3 = 0.7).
    //   VOC07: t = 0 .. .3 -> 1 (4); t = .4 .. 1 -> .6 (7 x .6 = 4.2): 8.2/11.
    Gt gt({"cat"}, {"a"}, {{obj(0, 1, 1, 10, 10), obj(0, 21, 1, 30, 10), obj(0, 41, 1, 50, 10)}});
    std::vector<wh_det> d = {det(0, 0, 0.9f, 1, 1, 10, 10), det(0, 0, 0.8f, 100, 1, 110, 10),
                             det(0, 0, 0.7f, 200, 1, 210, 10), det(0, 0, 0.6f, 21, 1, 30, 10),
                             det(0, 0, 0.5f, 41, 1, 50, 10)};
    Eval a(gt, d, WH_METRIC_VOC), b(gt, d, WH_METRIC_VOC07);
    ASSERT_EQ(a.st, WH_OK);
    EXPECT_NEAR(a.ap(0), 1.0 / 3 + 2.0 / 3 * 0.6, 1e-12);
    EXPECT_NEAR(b.ap(0), 8.2 / 11, 1e-12);
}

TEST(Metrics, BadDetectionsAreErrors)
{
    Gt gt = main_gt();
    for (wh_det d : {det(3, 0, 0.5f, 1, 1, 2, 2), det(-1, 0, 0.5f, 1, 1, 2, 2), det(0, 3, 0.5f, 1, 1, 2, 2),
                     det(0, 0, NAN, 1, 1, 2, 2)}) {
        Eval e(gt, {d}, WH_METRIC_VOC);
        EXPECT_EQ(e.st, WH_ERR_ARG);
        EXPECT_TRUE(contains(e.ctx.msg, "detection 0")) << e.ctx.msg;
    }
}

// ---------------------------------------------------------------- COCO

TEST(Metrics, CocoPerfectIsOne)
{
    Gt gt = main_gt();
    // Every non-difficult object found exactly, nothing else.
    std::vector<wh_det> d = {det(0, 0, 0.9f, 1, 1, 10, 10), det(0, 0, 0.8f, 21, 1, 30, 10),
                             det(1, 0, 0.7f, 1, 1, 10, 10), det(2, 1, 0.6f, 1, 1, 20, 20)};
    Eval e(gt, d, WH_METRIC_COCO);
    ASSERT_EQ(e.st, WH_OK) << e.ctx.msg;
    // precision is tp / (tp + fp + eps), as pycocotools: 1 - 2.2e-16
    EXPECT_NEAR(e.ap(0), 1.0, 1e-12);
    EXPECT_NEAR(e.ap(1), 1.0, 1e-12);
    EXPECT_TRUE(std::isnan(e.ap(2)));
    EXPECT_NEAR(e.res.map, 1.0, 1e-12);
}

TEST(Metrics, CocoSingleDetectionIou072)
{
    // GT (1,1,50,1): 50 pixels; detection (1,1,36,1): 36 pixels inside it.
    // IoU = 36/50 = 0.72: a hit at 0.50 0.55 0.60 0.65 0.70 (precision 1 at
    // every recall threshold), a miss at 0.75 .. 0.95 (precision 0).
    // AP = 5 x 101 / 1010 = 0.5.
    Gt gt({"cat"}, {"a"}, {{obj(0, 1, 1, 50, 1)}});
    std::vector<wh_det> d = {det(0, 0, 0.9f, 1, 1, 36, 1)};
    EXPECT_NEAR(wh_box_iou_voc(wh_rect{1, 1, 50, 1}, wh_rect{1, 1, 36, 1}), 0.72, 1e-12);
    Eval e(gt, d, WH_METRIC_COCO);
    ASSERT_EQ(e.st, WH_OK);
    EXPECT_NEAR(e.ap(0), 0.5, 1e-12);
    // The VOC metrics see one hit at IoU > 0.5: AP 1.
    Eval v(gt, d, WH_METRIC_VOC07);
    EXPECT_NEAR(v.ap(0), 1.0, 1e-12);
}

TEST(Metrics, Coco101PointInterpolation)
{
    // 2 cats; ranked TP, FP, TP (exact boxes, so the same at every IoU threshold).
    //   recall .5 .5 1; precision 1 1/2 2/3 -> made non-increasing: 1 2/3 2/3
    //   recall thresholds 0, .01, .., .50 (51 of them) first reach recall .5 at
    //   precision 1; .51 .. 1.00 (50) reach recall 1 at 2/3.
    //   COCO AP = (51 + 50 x 2/3) / 101 = 0.834983...
    // The same detections under the other metrics:
    //   VOC07: t = 0 .. .5 -> 1 (6), t = .6 .. 1 -> 2/3 (5): (6 + 10/3) / 11 = 0.848485
    //   VOC:   .5 x 1 + .5 x 2/3 = 0.833333
    Gt gt({"cat"}, {"a"}, {{obj(0, 1, 1, 10, 10), obj(0, 21, 1, 30, 10)}});
    std::vector<wh_det> d = {det(0, 0, 0.9f, 1, 1, 10, 10), det(0, 0, 0.8f, 100, 1, 110, 10),
                             det(0, 0, 0.7f, 21, 1, 30, 10)};
    Eval c(gt, d, WH_METRIC_COCO), a(gt, d, WH_METRIC_VOC07), b(gt, d, WH_METRIC_VOC);
    ASSERT_EQ(c.st, WH_OK);
    EXPECT_NEAR(c.ap(0), (51 + 50 * 2.0 / 3) / 101, 1e-12);
    EXPECT_NEAR(a.ap(0), (6 + 10.0 / 3) / 11, 1e-12);
    EXPECT_NEAR(b.ap(0), 0.5 + 0.5 * 2 / 3.0, 1e-12);
}

TEST(Metrics, CocoDifficultIsCrowd)
{
    // Regular R (1,1,10,10) and difficult D (21,1,30,10).
    //   a .9 on D: crowd, ignored.
    //   b .8 (21,1,25,10) inside D: crowd overlap = 50 / area(b) 50 = 1 -> also
    //        ignored (a crowd region takes any number of detections). Were the
    //        overlap the IoU (0.5), b would be a FP at every threshold but 0.5.
    //   c .7 on R: TP.
    //   Points: recall 0 0 1, precision 0 0 1 -> non-increasing: 1 1 1. AP = 1.
    Gt gt({"cat"}, {"a"}, {{obj(0, 21, 1, 30, 10, 1), obj(0, 1, 1, 10, 10)}});
    std::vector<wh_det> d = {det(0, 0, 0.9f, 21, 1, 30, 10), det(0, 0, 0.8f, 21, 1, 25, 10),
                             det(0, 0, 0.7f, 1, 1, 10, 10)};
    Eval c(gt, d, WH_METRIC_COCO);
    ASSERT_EQ(c.st, WH_OK);
    EXPECT_EQ(c.res.cls[0].npos, 1);
    EXPECT_NEAR(c.ap(0), 1.0, 1e-12);
    // VOC: a ignored, b has IoU 0.5 with D (not > 0.5): FP, then c TP: AP 1/2.
    Eval v(gt, d, WH_METRIC_VOC);
    EXPECT_NEAR(v.ap(0), 0.5, 1e-12);
}

TEST(Metrics, CocoRegularMatchBeatsCrowd)
{
    // One detection (1,1,50,1) (50 pixels). Crowd D is the same box (overlap 1);
    // regular R (1,1,31,1) lies inside it: IoU 31/50 = 0.62. D is listed first
    // in the sample, but pycocotools tries regular objects first and, once one
    // matched, stops at the first crowd one: at IoU thresholds .50 .55 .60 the
    // detection is a TP (AP 1 there); at .65 .. .95 R is out of reach, D takes
    // it and it is ignored (R missed: AP 0). AP = 3/10. (Matched to D first,
    // the detection would be ignored everywhere: AP 0.)
    Gt gt({"cat"}, {"a"}, {{obj(0, 1, 1, 50, 1, 1), obj(0, 1, 1, 31, 1)}});
    Eval c(gt, {det(0, 0, 0.9f, 1, 1, 50, 1)}, WH_METRIC_COCO);
    ASSERT_EQ(c.st, WH_OK);
    EXPECT_NEAR(c.ap(0), 0.3, 1e-12);
}

TEST(Metrics, CocoThresholdsAreInclusive)
{
    // IoU exactly 0.5 ((1,1,10,5) inside (1,1,10,10): 50/100): pycocotools
    // matches at IoU >= 0.5, so a hit at the first of ten thresholds: AP 0.1.
    // The VOC devkit needs > 0.5: a FP, AP 0.
    Gt gt({"cat"}, {"a"}, {{obj(0, 1, 1, 10, 10)}});
    std::vector<wh_det> d = {det(0, 0, 0.9f, 1, 1, 10, 5)};
    Eval c(gt, d, WH_METRIC_COCO), v(gt, d, WH_METRIC_VOC07);
    ASSERT_EQ(c.st, WH_OK);
    EXPECT_NEAR(c.ap(0), 0.1, 1e-12);
    EXPECT_EQ(v.ap(0), 0.0);
}

TEST(Metrics, CocoKeeps100DetectionsPerImage)
{
    // One cat; 100 misses score above the one hit, which is the 101st in its
    // image and so is dropped: AP 0. (Kept, it would give recall 1 at
    // precision 1/101: AP = 1/101.)
    Gt gt({"cat"}, {"a", "b"}, {{obj(0, 1, 1, 10, 10)}, {}});
    std::vector<wh_det> d;
    for (int i = 0; i < 100; i++) d.push_back(det(0, 0, 0.9f, 500 + 20 * i, 1, 510 + 20 * i, 10));
    d.push_back(det(0, 0, 0.5f, 1, 1, 10, 10));
    Eval c(gt, d, WH_METRIC_COCO);
    ASSERT_EQ(c.st, WH_OK);
    EXPECT_EQ(c.res.cls[0].n_dets, 101);
    EXPECT_EQ(c.ap(0), 0.0);
    // Move 50 of the misses to image b: 50 + 1 in a, all kept. Ranked: 100
    // misses (tied at 0.9), then the hit: recall 1 at precision 1/101.
    for (int i = 0; i < 50; i++) d[i].image = 1;
    Eval c2(gt, d, WH_METRIC_COCO);
    EXPECT_NEAR(c2.ap(0), 1.0 / 101, 1e-12);
}

// ---------------------------------------------------------------- names and table

TEST(Metrics, MetricNamesAndParse)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const char *names[] = {"voc07", "voc", "coco"};
    for (int i = 0; i < WH_METRIC_COUNT; i++) {
        wh_metric m = WH_METRIC_COUNT;
        ASSERT_EQ(wh_metric_parse(names[i], &m, &ctx), WH_OK);
        EXPECT_EQ(m, (wh_metric)i);
        EXPECT_STREQ(wh_metric_name(m), names[i]);
    }
    EXPECT_STREQ(wh_metric_title(WH_METRIC_VOC07), "mAP@0.5 (VOC07 11-point)");
    wh_metric m;
    EXPECT_EQ(wh_metric_parse("VOC2007", &m, &ctx), WH_ERR_ARG);
    EXPECT_TRUE(contains(ctx.msg, "'VOC2007'")) << ctx.msg;
    EXPECT_TRUE(contains(ctx.msg, "voc07, voc, coco")) << ctx.msg;
}

TEST(Metrics, FormatNamesTheMetric)
{
    Gt gt = main_gt();
    Eval e(gt, main_dets(), WH_METRIC_VOC07);
    ASSERT_EQ(e.st, WH_OK);
    size_t need = wh_map_format(&e.res, gt.ds.class_names, nullptr, 0);
    std::string buf(need + 1, 'x');
    EXPECT_EQ(wh_map_format(&e.res, gt.ds.class_names, &buf[0], buf.size()), need);
    buf.resize(need);
    EXPECT_EQ(std::string(buf.c_str()), buf);  // NUL exactly at the end
    EXPECT_TRUE(contains(buf, "mAP@0.5 (VOC07 11-point), 3 classes\n")) << buf;
    EXPECT_TRUE(contains(buf, "cat     0.7636      3       7\n")) << buf;
    EXPECT_TRUE(contains(buf, "dog     0.3333      1       3\n")) << buf;
    EXPECT_TRUE(contains(buf, "bird       n/a      0       1  (no ground truth: not in the mean)\n")) << buf;
    EXPECT_TRUE(contains(buf, "voc07 mAP@0.5 (VOC07 11-point) = 0.5485 over 2 of 3 classes\n")) << buf;
    // A short buffer gets a NUL-terminated prefix and the same return value.
    char small[10];
    EXPECT_EQ(wh_map_format(&e.res, gt.ds.class_names, small, sizeof(small)), need);
    EXPECT_EQ(std::string(small), buf.substr(0, 9));
}

// ---------------------------------------------------------------- detection files

TEST(Metrics, DetsReadRefusesWhatIsNotARegularFile)
{
    // /dev/zero is one endless line: without the check getline grows until memory runs out
    Gt gt = main_gt();
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_det *d = nullptr;
    int n = -1;
    EXPECT_EQ(wh_dets_read("/dev/zero", &gt.ds, &d, &n, &ctx), WH_ERR_IO);
    EXPECT_TRUE(wht::contains(ctx.msg, "/dev/zero: not a regular file")) << ctx.msg;
    EXPECT_EQ(d, nullptr);
}

TEST(Metrics, DetsReadParsesLines)
{
    Gt gt = main_gt();
    TempFile f("# image class score box\n"
               "img2 cat 0.9 41 41 50 50\n"
               "\n"
               "  img3\tdog 0.25 1.5 2 20 20.75  \r\n");
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_det *d = nullptr;
    int n = -1;
    ASSERT_EQ(wh_dets_read(f.path.c_str(), &gt.ds, &d, &n, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(n, 2);
    EXPECT_EQ(d[0].image, 1);
    EXPECT_EQ(d[0].cls, 0);
    EXPECT_FLOAT_EQ(d[0].score, 0.9f);
    EXPECT_EQ(d[0].xmax, 50.0f);
    EXPECT_EQ(d[1].image, 2);
    EXPECT_EQ(d[1].cls, 1);
    EXPECT_EQ(d[1].score, 0.25f);
    EXPECT_EQ(d[1].xmin, 1.5f);
    EXPECT_EQ(d[1].ymin, 2.0f);
    EXPECT_EQ(d[1].ymax, 20.75f);
    free(d);
}

TEST(Metrics, DetsReadErrorsNameFileAndLine)
{
    Gt gt = main_gt();
    struct Case {
        const char *bad_line, *says;
    } cases[] = {
        {"img9 cat 0.9 1 1 5 5", "unknown image id 'img9'"},
        {"img1 cow 0.9 1 1 5 5", "unknown class 'cow'"},
        {"img1 cat high 1 1 5 5", "score is not a number: 'high'"},
        {"img1 cat 0.9 1 1 5x 5", "xmax is not a number: '5x'"},
        {"img1 cat 0.9 1 1 5", "'ymax' missing"},
        {"img1 cat 0.9 1 1 5 5 7", "extra field '7'"},
        {"img1 cat nan 1 1 5 5", "score is not a finite"},
        {"img1 cat 0.9 5 1 1 5", "xmax < xmin - 1"},
        {"img1 cat 0.9 1 5 5 3.9", "ymax < ymin - 1"},
    };
    for (const Case &c : cases) {
        // The bad line is line 3, after a good line and a comment.
        TempFile f(std::string("img1 cat 0.5 1 1 10 10\n# note\n") + c.bad_line + "\nimg2 cat 0.5 1 1 10 10\n");
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_det *d = nullptr;
        int n = -1;
        EXPECT_EQ(wh_dets_read(f.path.c_str(), &gt.ds, &d, &n, &ctx), WH_ERR_PARSE) << c.bad_line;
        EXPECT_TRUE(contains(ctx.msg, f.path + ":3: ")) << ctx.msg;
        EXPECT_TRUE(contains(ctx.msg, c.says)) << ctx.msg;
        EXPECT_EQ(d, nullptr);
        EXPECT_EQ(n, 0);
    }
}

// A box under a pixel (x1 - x0 = .4, written as x0 + 1, x1) reads back:
// in VOC's inclusive pixels its width xmax - xmin + 1 is .4, not negative.
TEST(Metrics, DetsReadAcceptsBoxesUnderOnePixel)
{
    Gt gt = main_gt();
    TempFile f("img1 cat 0.5 11 21 10.4 30\n");
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_det *d = nullptr;
    int n = -1;
    ASSERT_EQ(wh_dets_read(f.path.c_str(), &gt.ds, &d, &n, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(n, 1);
    EXPECT_NEAR(d[0].xmax - d[0].xmin + 1, 0.4, 1e-5);
    free(d);
}

TEST(Metrics, DetsWriteReadsBackExactly)
{
    Gt gt = main_gt();
    std::vector<wh_det> d = main_dets();
    d[0].score = 0.123456789f;
    d[0].xmin = 21.3333f;
    char dir[] = "/tmp/whittle_test_detsw_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string path = std::string(dir) + "/dets.txt";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_dets_write(path.c_str(), &gt.ds, d.data(), (int)d.size(), &ctx), WH_OK) << ctx.msg;
    wh_det *back = nullptr;
    int n = 0;
    ASSERT_EQ(wh_dets_read(path.c_str(), &gt.ds, &back, &n, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(n, (int)d.size());
    for (int i = 0; i < n; i++) {
        EXPECT_EQ(back[i].image, d[i].image) << i;
        EXPECT_EQ(back[i].cls, d[i].cls) << i;
        EXPECT_EQ(back[i].score, d[i].score) << i;
        EXPECT_EQ(back[i].xmin, d[i].xmin) << i;
        EXPECT_EQ(back[i].ymin, d[i].ymin) << i;
        EXPECT_EQ(back[i].xmax, d[i].xmax) << i;
        EXPECT_EQ(back[i].ymax, d[i].ymax) << i;
    }
    free(back);
    // The first line, as text.
    FILE *f = fopen(path.c_str(), "r");
    ASSERT_NE(f, nullptr);
    char line[256] = "";
    ASSERT_NE(fgets(line, sizeof(line), f), nullptr);
    fclose(f);
    EXPECT_STREQ(line, "img1 cat 0.123456791 21.3332996 1 25 10\n");
    unlink(path.c_str());
    rmdir(dir);
}

TEST(Metrics, DetsReadRejectsAmbiguousIds)
{
    Gt gt({"cat"}, {"000005", "000007", "000005"}, {{}, {}, {}});
    TempFile f("000007 cat 0.5 1 1 2 2\n");
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_det *d = nullptr;
    int n = 0;
    EXPECT_EQ(wh_dets_read(f.path.c_str(), &gt.ds, &d, &n, &ctx), WH_ERR_ARG);
    EXPECT_TRUE(contains(ctx.msg, "'000005' names two samples (0 and 2)")) << ctx.msg;
}

}  // namespace
