// Tests of mosaic augmentation in the batch loader (framework/data/loader.c).
//
// Two kinds of data. Hand-made datasets of solid-colour PNGs with boxes
// given here, with every other augmentation off, so that each quadrant's
// pixels and boxes follow from the cut point by a hand computation. And a
// small synthetic VOC set (wh_synth_generate) with darknet's augmentation
// on, for the properties that must hold whatever the draws: determinism
// (with and without prefetch, after a seek), mosaic = 0 being the
// single-image recipe, boxes inside their quadrant, max_boxes, evaluation
// untouched.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "framework/data/image.h"
#include "framework/data/loader.h"
#include "framework/data/synth.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

// A dataset of solid-colour images held in memory; the PNGs live in a
// temporary folder. The loader reads only n, image_path and the objects.
struct SolidSet {
    wht::TempDir dir;
    std::vector<std::string> paths;
    std::vector<std::vector<wh_object>> objs;
    std::vector<std::array<float, 3>> colour; // as decoded
    std::vector<wh_sample> samples;
    wh_dataset d{};

    void add(int w, int h, const std::array<int, 3> &rgb, const std::vector<wh_object> &o)
    {
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_image img{};
        ASSERT_EQ(wh_image_alloc(&img, w, h, 3, &ctx), WH_OK);
        const float c[3] = {rgb[0] / 255.f, rgb[1] / 255.f, rgb[2] / 255.f};
        wh_image_fill_rect(&img, 0, 0, w - 1, h - 1, c);
        const std::string p = dir / ("img" + std::to_string(paths.size()) + ".png");
        ASSERT_EQ(wh_image_save_png(p.c_str(), &img, &ctx), WH_OK) << ctx.msg;
        wh_image_free(&img);
        ASSERT_EQ(wh_image_load(p.c_str(), &img, &ctx), WH_OK) << ctx.msg;
        colour.push_back({img.data[0], img.data[(size_t)w * h], img.data[(size_t)2 * w * h]});
        wh_image_free(&img);
        paths.push_back(p);
        objs.push_back(o);
    }
    const wh_dataset *get()
    {
        samples.assign(paths.size(), wh_sample{});
        for (size_t i = 0; i < paths.size(); i++) {
            samples[i].image_path = const_cast<char *>(paths[i].c_str());
            samples[i].n_obj = (int)objs[i].size();
            samples[i].obj = objs[i].data();
        }
        d.n_classes = 5;
        d.n = (int)samples.size();
        d.samples = samples.data();
        return &d;
    }
};

wh_object box(float x0, float y0, float x1, float y1, int cls)
{
    wh_object o{};
    o.xmin = x0;
    o.ymin = y0;
    o.xmax = x1;
    o.ymax = y1;
    o.cls = cls;
    return o;
}

// Training with every augmentation but the mosaic off.
wh_loader_opts plain_opts(int w, int h, int batch)
{
    wh_loader_opts o;
    wh_loader_opts_default(&o, w, h, batch);
    o.jitter = 0;
    o.flip = 0;
    o.hue = 0;
    o.saturation = 1;
    o.exposure = 1;
    o.prefetch = 0;
    o.mosaic = 1;
    return o;
}

// A copy of one batch, to compare byte for byte.
struct Snap {
    int n = 0;
    long index = 0;
    std::vector<float> images;
    std::vector<wh_truth> truth;
    std::vector<int> sample;
    std::vector<wh_xform> xform;
};

Snap snap(const wh_batch *b, const wh_loader_opts &o)
{
    Snap s;
    s.n = b->n;
    s.index = b->index;
    s.images.assign(b->images, b->images + (size_t)b->n * 3 * o.width * o.height);
    s.truth.assign(b->truth, b->truth + (size_t)b->n * o.max_boxes);
    s.sample.assign(b->sample, b->sample + b->n);
    s.xform.assign(b->xform, b->xform + b->n);
    return s;
}

template <class T> bool same_bytes(const std::vector<T> &a, const std::vector<T> &b)
{
    return a.size() == b.size() && (a.empty() || !std::memcmp(a.data(), b.data(), a.size() * sizeof(T)));
}

bool same(const Snap &a, const Snap &b)
{
    return a.n == b.n && a.index == b.index && same_bytes(a.images, b.images) && same_bytes(a.truth, b.truth) &&
           same_bytes(a.sample, b.sample) && same_bytes(a.xform, b.xform);
}

// Batches 0..n-1 of a fresh loader.
std::vector<Snap> run(const wh_dataset *d, const wh_loader_opts &o, int n)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_loader *l = nullptr;
    std::vector<Snap> out;
    EXPECT_EQ(wh_loader_create(d, &o, &l, &ctx), WH_OK) << ctx.msg;
    if (!l) return out;
    for (int k = 0; k < n; k++) {
        const wh_batch *b = nullptr;
        EXPECT_EQ(wh_loader_next(l, &b, &ctx), WH_OK) << ctx.msg;
        if (!b) break;
        out.push_back(snap(b, o));
    }
    wh_loader_destroy(l);
    return out;
}

int n_truth(const wh_truth *t, int max_boxes)
{
    int n = 0;
    while (n < max_boxes && t[n].w > 0) n++;
    return n;
}

// Mosaic quadrant q of the cut: columns [x0, x1), rows [y0, y1).
struct Quad {
    int x0, y0, x1, y1;
};

Quad quadrant(int q, int cx, int cy, int W, int H)
{
    return {q & 1 ? cx : 0, q >> 1 ? cy : 0, q & 1 ? W : cx, q >> 1 ? H : cy};
}

// The cut's range: whole pixels in [0.2, 0.8] of the side.
void expect_cut_in_range(const wh_xform &xf, int W, int H)
{
    EXPECT_GE(xf.cut_x, (int)(W * 0.2));
    EXPECT_LE(xf.cut_x, (int)(W * 0.8));
    EXPECT_GE(xf.cut_y, (int)(H * 0.2));
    EXPECT_LE(xf.cut_y, (int)(H * 0.8));
}

// Four input-sized (64 x 48) images, so each one's placement is the identity
// and bilinear sampling returns the solid colour exactly. Each has the same
// five boxes (VOC, 1-based inclusive): the whole image, its top-left and
// bottom-right 8 x 8 corners, a 16 x 16 centre, and a full-width band over
// the top 40 rows, which a top quadrant of height cy shows cy - 8 rows of
// (a sliver under 10% of its 40 rows when cy < 12).
TEST(Mosaic, HandWorkedPlacement)
{
    const int W = 64, H = 48;
    SolidSet s;
    const std::array<int, 3> rgb[4] = {{200, 30, 30}, {30, 200, 30}, {30, 30, 200}, {200, 200, 30}};
    for (int k = 0; k < 4; k++)
        s.add(W, H, rgb[k],
              {box(1, 1, 64, 48, 0), box(1, 1, 8, 8, 1), box(57, 41, 64, 48, 2), box(25, 17, 40, 32, 3),
               box(1, 1, 64, 40, 4)});
    const wh_dataset *d = s.get();
    const wh_loader_opts o = plain_opts(W, H, 4);
    const std::vector<Snap> bs = run(d, o, 16);
    ASSERT_EQ(bs.size(), 16u);
    int slivers = 0; // boxes of at least 1 pixel dropped by the 10% rule
    for (const Snap &b : bs)
        for (int i = 0; i < b.n; i++) {
            SCOPED_TRACE("batch " + std::to_string(b.index) + " image " + std::to_string(i));
            const wh_xform &xf = b.xform[i];
            ASSERT_EQ(xf.mosaic, 1);
            expect_cut_in_range(xf, W, H);
            const int cx = xf.cut_x, cy = xf.cut_y;
            EXPECT_EQ(xf.part[0], b.sample[i]);
            for (int q = 1; q < 4; q++) ASSERT_TRUE(xf.part[q] >= 0 && xf.part[q] < d->n);
            // Quadrant q shows part[q]'s colour, every pixel.
            const float *img = &b.images[(size_t)i * 3 * W * H];
            int wrong = 0;
            for (int v = 0; v < H; v++)
                for (int u = 0; u < W; u++) {
                    const int q = (u >= cx) + 2 * (v >= cy);
                    for (int c = 0; c < 3; c++)
                        wrong += img[((size_t)c * H + v) * W + u] != s.colour[xf.part[q]][c];
                }
            EXPECT_EQ(wrong, 0);
            // Each image covers its whole canvas, so a left quadrant shows the
            // right-hand cx columns of its image, a right quadrant the
            // left-hand W-cx; top quadrants its bottom cy rows, bottom ones
            // its top H-cy. The shift from image pixels to the input:
            const int tx[4] = {cx - W, cx, cx - W, cx}, ty[4] = {cy - H, cy - H, cy, cy};
            // The first image's placement is described by the xform.
            EXPECT_EQ(xf.sx, 1.f);
            EXPECT_EQ(xf.sy, 1.f);
            EXPECT_EQ(xf.dx, (float)tx[0]);
            EXPECT_EQ(xf.dy, (float)ty[0]);
            EXPECT_EQ(xf.flip, 0);
            // Boxes: shifted, clipped to the quadrant, kept when at least 1
            // pixel and 10% of their width and of their height remain;
            // quadrants in order.
            std::vector<wh_truth> want;
            for (int q = 0; q < 4; q++) {
                const Quad r = quadrant(q, cx, cy, W, H);
                for (const wh_object &ob : s.objs[xf.part[q]]) {
                    const double bw = ob.xmax - ob.xmin + 1, bh = ob.ymax - ob.ymin + 1;
                    const double x0 = std::max<double>(ob.xmin - 1 + tx[q], r.x0);
                    const double x1 = std::min<double>(ob.xmax + tx[q], r.x1);
                    const double y0 = std::max<double>(ob.ymin - 1 + ty[q], r.y0);
                    const double y1 = std::min<double>(ob.ymax + ty[q], r.y1);
                    if (x1 - x0 < 1 || y1 - y0 < 1) continue;
                    if (x1 - x0 < 0.1 * bw || y1 - y0 < 0.1 * bh) {
                        slivers++;
                        continue;
                    }
                    want.push_back({(float)((x0 + x1) / 2 / W), (float)((y0 + y1) / 2 / H), (float)((x1 - x0) / W),
                                    (float)((y1 - y0) / H), ob.cls});
                }
            }
            const wh_truth *t = &b.truth[(size_t)i * o.max_boxes];
            ASSERT_EQ(n_truth(t, o.max_boxes), (int)want.size());
            for (size_t k = 0; k < want.size(); k++) {
                EXPECT_EQ(t[k].cls, want[k].cls) << k;
                EXPECT_NEAR(t[k].x, want[k].x, 1e-6) << k;
                EXPECT_NEAR(t[k].y, want[k].y, 1e-6) << k;
                EXPECT_NEAR(t[k].w, want[k].w, 1e-6) << k;
                EXPECT_NEAR(t[k].h, want[k].h, 1e-6) << k;
            }
            // What that means here: the whole-image box shows once per
            // quadrant, exactly the quadrant, however small the quadrant; the
            // corner facing away from the cut never shows (cx, cy <= 0.8 of
            // the side leaves more than 8 pixels), the near one always does.
            int whole = 0;
            for (size_t k = 0; k < want.size(); k++)
                if (t[k].cls == 0) {
                    const Quad r = quadrant(whole++, cx, cy, W, H);
                    EXPECT_NEAR(t[k].w * W, r.x1 - r.x0, 1e-4);
                    EXPECT_NEAR(t[k].h * H, r.y1 - r.y0, 1e-4);
                }
            EXPECT_EQ(whole, 4);
            EXPECT_EQ(t[1].cls, 2) << "quadrant 0 shows its image's bottom-right, never its top-left corner";
        }
    EXPECT_GT(slivers, 0) << "the 10% rule went untested";
}

// Letterboxed 2:1 images on a square input: each image's content covers
// rows [16, 48) of its own canvas, grey above and below. The window sits on
// the content's side facing the cut, so grey shows in a top quadrant only
// when it is taller than the content's half that fits (cut_y > 32).
TEST(Mosaic, LetterboxBandsArePushedAwayFromTheCut)
{
    const int W = 64, H = 64;
    SolidSet s;
    s.add(64, 32, {250, 10, 10}, {box(1, 1, 64, 32, 0)});
    s.add(64, 32, {10, 250, 10}, {box(1, 1, 64, 32, 1)});
    const wh_dataset *d = s.get();
    wh_loader_opts o = plain_opts(W, H, 8);
    o.letterbox = 1;
    const std::vector<Snap> bs = run(d, o, 4);
    ASSERT_EQ(bs.size(), 4u);
    for (const Snap &b : bs)
        for (int i = 0; i < b.n; i++) {
            SCOPED_TRACE("batch " + std::to_string(b.index) + " image " + std::to_string(i));
            const wh_xform &xf = b.xform[i];
            ASSERT_EQ(xf.mosaic, 1);
            const int cx = xf.cut_x, cy = xf.cut_y;
            // Window rows on the own canvas: top quadrants end at the content's
            // bottom (48), bottom ones start at its top (16); the window stays
            // on the canvas. Columns: the content fills them all.
            const int wy_top = std::min(std::max(48 - cy, 0), H - cy), wy_bot = std::min(16, cy);
            const float *img = &b.images[(size_t)i * 3 * W * H];
            int wrong = 0, grey_q0 = 0;
            for (int v = 0; v < H; v++)
                for (int u = 0; u < W; u++) {
                    const int q = (u >= cx) + 2 * (v >= cy);
                    const int own = v < cy ? v + wy_top : v - cy + wy_bot;
                    const bool grey = own < 16 || own >= 48;
                    if (q == 0 && u == 0) grey_q0 += grey;
                    for (int c = 0; c < 3; c++)
                        wrong += img[((size_t)c * H + v) * W + u] != (grey ? 0.5f : s.colour[xf.part[q]][c]);
                }
            EXPECT_EQ(wrong, 0);
            EXPECT_EQ(grey_q0, cy <= 32 ? 0 : cy <= 48 ? cy - 32 : 16 + cy - 48);
            // The box is the content, clipped to each quadrant.
            const wh_truth *t = &b.truth[(size_t)i * o.max_boxes];
            for (int k = 0; k < n_truth(t, o.max_boxes); k++) {
                const float y0 = (t[k].y - t[k].h / 2) * H, y1 = (t[k].y + t[k].h / 2) * H;
                const bool top = y1 <= cy + 1e-3f;
                const int off = top ? -wy_top : cy - wy_bot; // own row -> input row
                EXPECT_NEAR(y0, std::max(16 + off, top ? 0 : cy), 1e-3);
                EXPECT_NEAR(y1, std::min(48 + off, top ? cy : H), 1e-3);
            }
        }
}

// The synthetic VOC set, generated once.
class MosaicSynth : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        char tmpl[] = "/tmp/whittle_mosaic_XXXXXX";
        const char *p = mkdtemp(tmpl);
        ASSERT_NE(p, nullptr);
        root_ = p;
        wh_synth_opts so;
        wh_synth_opts_default(&so);
        so.images = 16;
        so.size = 96;
        so.classes = 3;
        so.seed = 5;
        so.test_fraction = 0.25;
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        const std::string voc = root_ + "/voc";
        ASSERT_EQ(wh_synth_generate(&so, voc.c_str(), &ctx), WH_OK) << ctx.msg;
        ASSERT_EQ(wh_dataset_open(voc.c_str(), "train", &d_, &ctx), WH_OK) << ctx.msg;
    }
    static void TearDownTestSuite()
    {
        wh_dataset_free(d_);
        d_ = nullptr;
        fs::remove_all(root_);
    }
    // darknet's augmentation on a non-square input.
    static wh_loader_opts opts(float mosaic)
    {
        wh_loader_opts o;
        wh_loader_opts_default(&o, 96, 80, 4);
        o.mosaic = mosaic;
        o.prefetch = 0;
        o.seed = 11;
        return o;
    }
    static std::string root_;
    static wh_dataset *d_;
};
std::string MosaicSynth::root_;
wh_dataset *MosaicSynth::d_ = nullptr;

TEST_F(MosaicSynth, DeterministicWithPrefetchAndSeek)
{
    wh_loader_opts o = opts(0.5f);
    const std::vector<Snap> plain = run(d_, o, 6);
    ASSERT_EQ(plain.size(), 6u);
    EXPECT_TRUE(same(plain[3], run(d_, o, 4)[3])) << "the same batch twice";
    int mosaics = 0;
    for (const Snap &b : plain)
        for (const wh_xform &x : b.xform) mosaics += x.mosaic;
    EXPECT_GT(mosaics, 0);
    EXPECT_LT(mosaics, 24);
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        o.prefetch = prefetch;
        SCOPED_TRACE("prefetch " + std::to_string(prefetch));
        if (prefetch) {
            const std::vector<Snap> p = run(d_, o, 6);
            ASSERT_EQ(p.size(), 6u);
            for (int k = 0; k < 6; k++) EXPECT_TRUE(same(p[k], plain[k])) << "batch " << k;
        }
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_loader *l = nullptr;
        ASSERT_EQ(wh_loader_create(d_, &o, &l, &ctx), WH_OK) << ctx.msg;
        const wh_batch *b = nullptr;
        ASSERT_EQ(wh_loader_next(l, &b, &ctx), WH_OK) << ctx.msg;
        for (long at : {4L, 1L, 5L}) {
            ASSERT_EQ(wh_loader_seek(l, at, &ctx), WH_OK) << ctx.msg;
            ASSERT_EQ(wh_loader_next(l, &b, &ctx), WH_OK) << ctx.msg;
            EXPECT_TRUE(same(snap(b, o), plain[at])) << "after a seek to " << at;
        }
        wh_loader_destroy(l);
    }
}

// mosaic = 0 is the default and the single-image recipe; with mosaic > 0 an
// image that is not a mosaic is byte-identical to the mosaic = 0 one (the
// mosaic draws from a stream of its own), and a mosaic's top-left quadrant
// is that same image, shifted by whole pixels.
TEST_F(MosaicSynth, MosaicZeroIsTheSingleImageRecipe)
{
    wh_loader_opts def;
    wh_loader_opts_default(&def, 96, 80, 4);
    EXPECT_EQ(def.mosaic, 0.f);
    const wh_loader_opts o0 = opts(0.f), oh = opts(0.5f);
    const std::vector<Snap> a = run(d_, o0, 6), b = run(d_, oh, 6);
    ASSERT_EQ(a.size(), 6u);
    ASSERT_EQ(b.size(), 6u);
    const int W = o0.width, H = o0.height;
    const size_t img = (size_t)3 * W * H;
    int mosaics = 0, singles = 0;
    for (int k = 0; k < 6; k++)
        for (int i = 0; i < a[k].n; i++) {
            SCOPED_TRACE("batch " + std::to_string(k) + " image " + std::to_string(i));
            const wh_xform &x0 = a[k].xform[i], &x1 = b[k].xform[i];
            EXPECT_EQ(x0.mosaic, 0);
            EXPECT_EQ(x0.cut_x, 0);
            EXPECT_EQ(x0.cut_y, 0);
            EXPECT_EQ(x0.part[0], a[k].sample[i]);
            EXPECT_EQ(x0.part[1], -1);
            ASSERT_EQ(a[k].sample[i], b[k].sample[i]);
            const float *p0 = &a[k].images[i * img], *p1 = &b[k].images[i * img];
            if (!x1.mosaic) {
                singles++;
                EXPECT_EQ(std::memcmp(&x0, &x1, sizeof(x0)), 0);
                EXPECT_EQ(std::memcmp(p0, p1, img * sizeof(float)), 0);
                EXPECT_EQ(std::memcmp(&a[k].truth[(size_t)i * o0.max_boxes], &b[k].truth[(size_t)i * oh.max_boxes],
                                      (size_t)o0.max_boxes * sizeof(wh_truth)),
                          0);
                continue;
            }
            mosaics++;
            EXPECT_EQ(x1.sx, x0.sx);
            EXPECT_EQ(x1.sy, x0.sy);
            EXPECT_EQ(x1.flip, x0.flip);
            const int tx = (int)std::lround(x0.flip ? x0.dx - x1.dx : x1.dx - x0.dx);
            const int ty = (int)std::lround(x1.dy - x0.dy);
            int wrong = 0;
            for (int c = 0; c < 3; c++)
                for (int v = 0; v < x1.cut_y; v++)
                    for (int u = 0; u < x1.cut_x; u++)
                        wrong += p1[((size_t)c * H + v) * W + u] != p0[((size_t)c * H + (v - ty)) * W + (u - tx)];
            EXPECT_EQ(wrong, 0);
        }
    EXPECT_GT(mosaics, 0);
    EXPECT_GT(singles, 0);
}

// Whatever the draws: every box inside [0, 1], at least a pixel a side, and
// inside one quadrant; max_boxes caps the list, which is the first max_boxes
// of the uncapped one (quadrants add their boxes in order).
TEST_F(MosaicSynth, BoxesStayInTheirQuadrantAndMaxBoxesHolds)
{
    for (int letterbox = 0; letterbox < 2; letterbox++) {
        SCOPED_TRACE("letterbox " + std::to_string(letterbox));
        wh_loader_opts o = opts(1.f), o3 = opts(1.f);
        o.letterbox = o3.letterbox = letterbox;
        o3.max_boxes = 3;
        const std::vector<Snap> all = run(d_, o, 8), cap = run(d_, o3, 8);
        ASSERT_EQ(all.size(), 8u);
        ASSERT_EQ(cap.size(), 8u);
        const int W = o.width, H = o.height;
        int boxes = 0, capped = 0;
        for (int k = 0; k < 8; k++)
            for (int i = 0; i < all[k].n; i++) {
                const wh_xform &xf = all[k].xform[i];
                ASSERT_EQ(xf.mosaic, 1);
                expect_cut_in_range(xf, W, H);
                const wh_truth *t = &all[k].truth[(size_t)i * o.max_boxes];
                const int n = n_truth(t, o.max_boxes);
                boxes += n;
                for (int j = 0; j < n; j++) {
                    const float x0 = (t[j].x - t[j].w / 2) * W, x1 = (t[j].x + t[j].w / 2) * W;
                    const float y0 = (t[j].y - t[j].h / 2) * H, y1 = (t[j].y + t[j].h / 2) * H;
                    EXPECT_GE(x0, -1e-3f);
                    EXPECT_LE(x1, W + 1e-3f);
                    EXPECT_GE(y0, -1e-3f);
                    EXPECT_LE(y1, H + 1e-3f);
                    EXPECT_GE(x1 - x0, 1 - 1e-3f);
                    EXPECT_GE(y1 - y0, 1 - 1e-3f);
                    int inside = 0;
                    for (int q = 0; q < 4; q++) {
                        const Quad r = quadrant(q, xf.cut_x, xf.cut_y, W, H);
                        inside += x0 >= r.x0 - 1e-3f && x1 <= r.x1 + 1e-3f && y0 >= r.y0 - 1e-3f && y1 <= r.y1 + 1e-3f;
                    }
                    EXPECT_EQ(inside, 1) << "box " << j << " of batch " << k << " image " << i;
                }
                const wh_truth *t3 = &cap[k].truth[(size_t)i * o3.max_boxes];
                const int n3 = n_truth(t3, o3.max_boxes);
                EXPECT_EQ(n3, std::min(n, 3));
                capped += n > 3;
                EXPECT_EQ(std::memcmp(t3, t, (size_t)n3 * sizeof(wh_truth)), 0);
                EXPECT_EQ(std::memcmp(&cap[k].images[(size_t)i * 3 * W * H], &all[k].images[(size_t)i * 3 * W * H],
                                      (size_t)3 * W * H * sizeof(float)),
                          0);
            }
        EXPECT_GT(boxes, 32);
        EXPECT_GT(capped, 0) << "no image reached max_boxes: the cap went untested";
    }
}

TEST_F(MosaicSynth, EvaluationIgnoresMosaic)
{
    wh_loader_opts e0 = opts(0.f), e1 = opts(1.f);
    e0.train = e1.train = 0;
    const std::vector<Snap> a = run(d_, e0, 3), b = run(d_, e1, 3);
    ASSERT_EQ(a.size(), 3u);
    ASSERT_EQ(b.size(), 3u);
    for (int k = 0; k < 3; k++) {
        EXPECT_TRUE(same(a[k], b[k])) << "batch " << k;
        for (const wh_xform &x : b[k].xform) EXPECT_EQ(x.mosaic, 0);
    }
}

TEST_F(MosaicSynth, CreateRejectsAMosaicOutsideZeroToOne)
{
    for (float m : {-0.1f, 1.5f, NAN}) {
        wh_loader_opts o = opts(m);
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_loader *l = nullptr;
        EXPECT_EQ(wh_loader_create(d_, &o, &l, &ctx), WH_ERR_ARG) << m;
        EXPECT_EQ(l, nullptr);
        EXPECT_TRUE(wht::contains(ctx.msg, "mosaic")) << ctx.msg;
    }
}

} // namespace
