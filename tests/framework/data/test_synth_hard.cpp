// Tests of the synthetic dataset's hard preset (framework/data/synth.c,
// --preset hard): what it promises in synth.h, measured on the files as a
// user reads them (libxml2 for the XML, the image decoder for the JPEGs).
//
// The statistical tests share one 120-image hard set at the preset's
// defaults (416, 6 classes) and an easy set of the same size and classes,
// generated once per process (~1.5 s of CPU); the byte-level tests make
// small sets of their own. The colour test is the point of the preset: a
// colour-only classifier that separates the easy classes almost perfectly
// must be near chance on the hard ones.
#include <gtest/gtest.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "framework/data/image.h"
#include "framework/data/synth.h"
#include "framework/data/voc_xml.h"

namespace fs = std::filesystem;

namespace {

using namespace vocxml;

struct Box {
    int cls = -1, truncated = 0, difficult = 0;
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0; // 0-based, inclusive
    double gm() const { return std::sqrt(double(x1 - x0 + 1) * (y1 - y0 + 1)); }
};

struct Image {
    int w = 0, h = 0;
    std::vector<Box> boxes;
};

std::string id_of(int i)
{
    char b[16];
    std::snprintf(b, sizeof(b), "%06d", i);
    return b;
}

// Reads a VOC annotation; class names become indices into wh_synth_class_name.
bool parse(const std::string &path, Image *im)
{
    xmlDoc *doc = xmlReadFile(path.c_str(), nullptr, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        ADD_FAILURE() << path << ": not well-formed XML";
        return false;
    }
    xmlNode *root = xmlDocGetRootElement(doc), *size = child(root, "size");
    im->w = int_of(size, "width");
    im->h = int_of(size, "height");
    for (xmlNode *c = root->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || xmlStrcmp(c->name, BAD_CAST "object")) continue;
        Box b;
        const std::string name = text_of(child(c, "name"));
        for (int k = 0; k < wh_synth_max_classes(); k++)
            if (name == wh_synth_class_name(k)) b.cls = k;
        EXPECT_GE(b.cls, 0) << path << ": " << name;
        b.truncated = int_of(c, "truncated");
        b.difficult = int_of(c, "difficult");
        xmlNode *bb = child(c, "bndbox");
        b.x0 = int_of(bb, "xmin") - 1;
        b.y0 = int_of(bb, "ymin") - 1;
        b.x1 = int_of(bb, "xmax") - 1;
        b.y1 = int_of(bb, "ymax") - 1;
        im->boxes.push_back(b);
    }
    xmlFreeDoc(doc);
    return true;
}

std::string make_tmpdir()
{
    char tmpl[] = "/tmp/wh_synth_hardXXXXXX";
    const char *d = mkdtemp(tmpl);
    return d ? d : "";
}

std::map<std::string, std::string> snapshot(const std::string &dir)
{
    std::map<std::string, std::string> m;
    for (const auto &e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) m[fs::relative(e.path(), dir).string()] = read_text(e.path().string());
    return m;
}

// The first quantisation table's DC step of a baseline JPEG (libjpeg: 3 at
// quality 90..92, 23 at 35): tells the quality an image was written at.
int jpeg_dc_step(const std::string &bytes)
{
    for (size_t i = 2; i + 5 < bytes.size(); i++)
        if ((unsigned char)bytes[i] == 0xFF && (unsigned char)bytes[i + 1] == 0xDB) return (unsigned char)bytes[i + 5];
    return -1;
}

// The colour a colour-only classifier sees: the mean RGB of an object's box.
using Rgb = std::array<double, 3>;

struct Sample {
    int cls;
    Rgb rgb;
};

double dist(const Rgb &a, const Rgb &b)
{
    return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

class SynthHard : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        root_ = make_tmpdir();
        ASSERT_FALSE(root_.empty());
        wh_synth_opts_preset(&hard_, WH_SYNTH_HARD);
        hard_.images = 120;
        hard_.seed = 3;
        easy_ = hard_; // the same sizes and classes; only the preset differs
        easy_.preset = WH_SYNTH_EASY;
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        ASSERT_EQ(wh_synth_generate_stats(&hard_, (root_ + "/hard").c_str(), &hard_stats_, &ctx), WH_OK) << ctx.msg;
        ASSERT_EQ(wh_synth_generate(&easy_, (root_ + "/easy").c_str(), &ctx), WH_OK) << ctx.msg;
        for (const char *which : {"hard", "easy"}) {
            auto &v = std::string(which) == "hard" ? hard_images_ : easy_images_;
            v.resize(120);
            for (int i = 0; i < 120; i++)
                ASSERT_TRUE(parse(root_ + "/" + which + "/Annotations/" + id_of(i + 1) + ".xml", &v[i]));
        }
    }
    static void TearDownTestSuite() { fs::remove_all(root_); }
    void SetUp() override { wh_ctx_init(&ctx); }

    // Mean box colours of the clearly visible objects (not difficult, not
    // truncated, both sides >= 16 px) of one set.
    std::vector<Sample> samples(const std::string &which, const std::vector<Image> &images)
    {
        std::vector<Sample> out;
        for (int i = 0; i < 120; i++) {
            wh_image im;
            const std::string p = root_ + "/" + which + "/JPEGImages/" + id_of(i + 1) + ".jpg";
            EXPECT_EQ(wh_image_load(p.c_str(), &im, &ctx), WH_OK) << ctx.msg;
            if (ctx.status != WH_OK) continue;
            for (const Box &b : images[i].boxes) {
                if (b.difficult || b.truncated || b.x1 - b.x0 < 15 || b.y1 - b.y0 < 15) continue;
                Rgb m = {0, 0, 0};
                for (int k = 0; k < 3; k++) {
                    for (int y = b.y0; y <= b.y1; y++)
                        for (int x = b.x0; x <= b.x1; x++) m[k] += im.data[wh_image_index(&im, x, y, k)];
                    m[k] /= double(b.x1 - b.x0 + 1) * (b.y1 - b.y0 + 1);
                }
                out.push_back({b.cls, m});
            }
            wh_image_free(&im);
        }
        return out;
    }

    static std::string root_;
    static wh_synth_opts hard_, easy_;
    static wh_synth_stats hard_stats_;
    static std::vector<Image> hard_images_, easy_images_;
    wh_ctx ctx;
};
std::string SynthHard::root_;
wh_synth_opts SynthHard::hard_, SynthHard::easy_;
wh_synth_stats SynthHard::hard_stats_;
std::vector<Image> SynthHard::hard_images_, SynthHard::easy_images_;

// Per-class mean colours, one-way ANOVA F per channel (between-class
// variance of the means over within-class variance: ~1 when the class does
// not move the colour, F(5, 300) > 3.1 has p < 0.01) and a nearest-class-mean
// classifier, trained on the even samples and scored on the odd ones.
struct ColourCheck {
    double min_pair = 1e9, max_pair = 0, accuracy = 0;
    double f_min = 1e30, f_max = 0;
    int per_class_min = 1 << 30;
};

ColourCheck colour_check(const std::vector<Sample> &s, int classes)
{
    ColourCheck c;
    std::vector<Rgb> mean(classes, Rgb{0, 0, 0}), train(classes, Rgb{0, 0, 0});
    std::vector<int> n(classes, 0), nt(classes, 0);
    for (size_t i = 0; i < s.size(); i++)
        for (int k = 0; k < 3; k++) {
            mean[s[i].cls][k] += s[i].rgb[k];
            if (i % 2 == 0) train[s[i].cls][k] += s[i].rgb[k];
            if (k == 0) n[s[i].cls]++, nt[s[i].cls] += i % 2 == 0;
        }
    for (int a = 0; a < classes; a++) {
        c.per_class_min = std::min(c.per_class_min, nt[a]);
        for (int k = 0; k < 3; k++) {
            mean[a][k] /= std::max(1, n[a]);
            train[a][k] /= std::max(1, nt[a]);
        }
    }
    for (int a = 0; a < classes; a++)
        for (int b = 0; b < a; b++) {
            c.min_pair = std::min(c.min_pair, dist(mean[a], mean[b]));
            c.max_pair = std::max(c.max_pair, dist(mean[a], mean[b]));
        }
    for (int k = 0; k < 3; k++) {
        double all = 0, between = 0, within = 0;
        for (const Sample &x : s) all += x.rgb[k];
        all /= double(s.size());
        for (int a = 0; a < classes; a++) between += n[a] * (mean[a][k] - all) * (mean[a][k] - all);
        for (const Sample &x : s) within += (x.rgb[k] - mean[x.cls][k]) * (x.rgb[k] - mean[x.cls][k]);
        const double f = (between / (classes - 1)) / (within / double(s.size() - classes));
        c.f_min = std::min(c.f_min, f);
        c.f_max = std::max(c.f_max, f);
    }
    int right = 0, tested = 0;
    for (size_t i = 1; i < s.size(); i += 2) {
        int best = 0;
        for (int a = 1; a < classes; a++)
            if (dist(s[i].rgb, train[a]) < dist(s[i].rgb, train[best])) best = a;
        right += best == s[i].cls;
        tested++;
    }
    c.accuracy = tested ? double(right) / tested : 0;
    return c;
}

TEST(SynthPreset, NamesAndDefaults)
{
    wh_synth_opts o;
    wh_synth_opts_default(&o);
    EXPECT_EQ(o.preset, WH_SYNTH_EASY);
    EXPECT_STREQ(wh_synth_preset_name(WH_SYNTH_EASY), "easy");
    EXPECT_STREQ(wh_synth_preset_name(WH_SYNTH_HARD), "hard");
    EXPECT_EQ(wh_synth_preset_name(2), nullptr);
    EXPECT_EQ(wh_synth_preset_parse("easy"), WH_SYNTH_EASY);
    EXPECT_EQ(wh_synth_preset_parse("hard"), WH_SYNTH_HARD);
    EXPECT_EQ(wh_synth_preset_parse("bogus"), -1);
    EXPECT_EQ(wh_synth_preset_parse(nullptr), -1);
    // The easy preset's defaults are wh_synth_opts_default's.
    wh_synth_opts e;
    wh_synth_opts_preset(&e, WH_SYNTH_EASY);
    EXPECT_EQ(e.images, o.images);
    EXPECT_EQ(e.classes, o.classes);
    EXPECT_EQ(e.size, o.size);
    // The hard one's: 2000 training and 500 test images, 6 classes, 416 px.
    wh_synth_opts h;
    wh_synth_opts_preset(&h, WH_SYNTH_HARD);
    EXPECT_EQ(h.preset, WH_SYNTH_HARD);
    EXPECT_EQ(h.images, 2500);
    EXPECT_EQ(h.classes, 6);
    EXPECT_EQ(h.size, 416);
    EXPECT_DOUBLE_EQ(h.test_fraction, 0.2);
    EXPECT_EQ(h.seed, 1u);
}

TEST(SynthPreset, AnUnknownPresetIsAnError)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const std::string d = make_tmpdir() + "/never";
    wh_synth_opts o;
    wh_synth_opts_default(&o);
    o.images = 2;
    o.preset = 7;
    EXPECT_EQ(wh_synth_generate(&o, d.c_str(), &ctx), WH_ERR_ARG);
    EXPECT_NE(std::string(ctx.msg).find("easy, hard"), std::string::npos) << ctx.msg;
    EXPECT_FALSE(fs::exists(d));
    fs::remove_all(fs::path(d).parent_path());
}

// The byte-level promises on small sets of their own (12 images, 416 px).
class SynthHardFiles : public ::testing::Test {
protected:
    void SetUp() override
    {
        wh_ctx_init(&ctx);
        root = make_tmpdir();
        ASSERT_FALSE(root.empty());
        wh_synth_opts_preset(&hard, WH_SYNTH_HARD);
        hard.images = 12;
        hard.seed = 3;
        easy = hard;
        easy.preset = WH_SYNTH_EASY;
    }
    void TearDown() override { fs::remove_all(root); }

    std::string root;
    wh_synth_opts hard, easy;
    wh_ctx ctx;
};

TEST_F(SynthHardFiles, SameSeedSameBytesAnyThreadCount)
{
    const std::string a = root + "/a", b = root + "/b";
    ASSERT_EQ(wh_synth_generate(&hard, a.c_str(), &ctx), WH_OK) << ctx.msg;
    const int saved = omp_get_max_threads();
    wh_ctx_set_threads(&ctx, 1);
    const wh_status s = wh_synth_generate(&hard, b.c_str(), &ctx);
    omp_set_num_threads(saved);
    ASSERT_EQ(s, WH_OK) << ctx.msg;
    const auto sa = snapshot(a), sb = snapshot(b);
    EXPECT_EQ(sa.size(), 12u * 2 + 5);
    EXPECT_TRUE(sa == sb);
    // An image depends on (seed, index) alone: the first 8 of 12 are the 8 of a set of 8.
    wh_synth_opts o = hard;
    o.images = 8;
    ASSERT_EQ(wh_synth_generate(&o, (root + "/c").c_str(), &ctx), WH_OK) << ctx.msg;
    for (int i = 1; i <= 8; i++) {
        const std::string rel = "JPEGImages/" + id_of(i) + ".jpg";
        EXPECT_TRUE(sa.at(rel) == read_text(root + "/c/" + rel)) << rel;
    }
}

TEST_F(SynthHardFiles, DiffersFromEasyAndTheStampSaysSo)
{
    const std::string h = root + "/hard", e = root + "/easy";
    wh_synth_stats hs;
    ASSERT_EQ(wh_synth_generate_stats(&hard, h.c_str(), &hs, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_synth_generate(&easy, e.c_str(), &ctx), WH_OK) << ctx.msg;
    int differ = 0;
    for (int i = 1; i <= 12; i++) {
        const std::string rel = "/JPEGImages/" + id_of(i) + ".jpg";
        differ += read_text(h + rel) != read_text(e + rel);
    }
    EXPECT_EQ(differ, 12);
    const std::string hstamp = read_text(h + "/synth.txt"), estamp = read_text(e + "/synth.txt");
    EXPECT_NE(hstamp.find("\npreset hard\n"), std::string::npos) << hstamp;
    EXPECT_EQ(estamp.find("preset"), std::string::npos) << estamp; // easy stamps are as before presets
    // The hard folder is reused for the hard options, refused for the easy ones, and the other way round.
    wh_synth_stats st;
    ASSERT_EQ(wh_synth_generate_stats(&hard, h.c_str(), &st, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(st.reused, 1);
    EXPECT_EQ(st.objects, hs.objects);
    EXPECT_EQ(wh_synth_generate(&easy, h.c_str(), &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find("preset hard"), std::string::npos) << ctx.msg;
    EXPECT_EQ(wh_synth_generate(&hard, e.c_str(), &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find("preset easy"), std::string::npos) << ctx.msg;
}

TEST_F(SynthHardFiles, AnUnknownPresetInTheStampRefusesTheFolder)
{
    wh_synth_opts o = hard;
    o.images = 2;
    const std::string d = root + "/voc";
    ASSERT_EQ(wh_synth_generate(&o, d.c_str(), &ctx), WH_OK) << ctx.msg;
    std::string s = read_text(d + "/synth.txt");
    const size_t at = s.find("preset hard");
    ASSERT_NE(at, std::string::npos);
    s.replace(at, 11, "preset bogus");
    {
        std::ofstream f(d + "/synth.txt", std::ios::trunc);
        f << s;
    }
    EXPECT_EQ(wh_synth_generate(&o, d.c_str(), &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find("no valid synth.txt"), std::string::npos) << ctx.msg;
    EXPECT_EQ(read_text(d + "/synth.txt"), s);
}

// The preset's point: the class is in the shape, not the colour. In the
// easy set a nearest-class-mean classifier on a box's mean colour is right
// almost always and the class means lie far apart (F in the hundreds); in
// the hard set it must be near chance (1/6) and the class means no further
// apart than sampling explains (the per-class means of ~50 boxes with a
// spread of 0.2 wander by ~0.03 per channel, so F, not the raw distance, is
// what can be held to a bound).
TEST_F(SynthHard, ColourDoesNotTellTheClass)
{
    const auto hs = samples("hard", hard_images_), es = samples("easy", easy_images_);
    ASSERT_GE(hs.size(), 250u);
    ASSERT_GE(es.size(), 250u);
    const ColourCheck h = colour_check(hs, 6), e = colour_check(es, 6);
    ASSERT_GE(h.per_class_min, 15); // every class has enough samples
    ASSERT_GE(e.per_class_min, 15);
    EXPECT_GT(e.accuracy, 0.8) << "easy: colour should give the class away";
    EXPECT_GT(e.min_pair, 0.1) << "easy class means";
    EXPECT_GT(e.f_min, 20) << "easy class means";
    EXPECT_LT(h.accuracy, 0.3) << "hard: colour tells the class (chance is 0.17)";
    EXPECT_LT(h.f_max, 3.1) << "hard: the class moves the mean colour (max distance " << h.max_pair << ")";
    std::printf("colour-only classifier: easy %.2f, hard %.2f (chance 0.17); class-mean F: easy >= %.0f, "
                "hard <= %.2f; class-mean distances: easy >= %.3f, hard <= %.3f (%zu, %zu boxes)\n",
                e.accuracy, h.accuracy, e.f_min, h.f_max, e.min_pair, h.max_pair, es.size(), hs.size());
}

TEST_F(SynthHard, AnnotationsMatchTheImages)
{
    std::set<int> seen;
    int n = 0;
    for (int i = 0; i < 120; i++) {
        const Image &a = hard_images_[i];
        int w = 0, h = 0;
        ASSERT_EQ(wh_image_read_size((root_ + "/hard/JPEGImages/" + id_of(i + 1) + ".jpg").c_str(), &w, &h, &ctx),
                  WH_OK)
            << ctx.msg;
        EXPECT_EQ(a.w, w);
        EXPECT_EQ(a.h, h);
        EXPECT_GE(a.boxes.size(), 1u);
        EXPECT_LE(a.boxes.size(), 8u);
        for (const Box &b : a.boxes) {
            EXPECT_LT(b.cls, 6);
            seen.insert(b.cls);
            EXPECT_GE(b.x0, 0);
            EXPECT_GE(b.y0, 0);
            EXPECT_LE(b.x1, w - 1);
            EXPECT_LE(b.y1, h - 1);
            EXPECT_LE(b.x0, b.x1);
            EXPECT_LE(b.y0, b.y1);
            if (b.truncated) {
                EXPECT_TRUE(b.x0 == 0 || b.y0 == 0 || b.x1 == w - 1 || b.y1 == h - 1) << i;
            }
            if (b.gm() < 12) {
                EXPECT_EQ(b.difficult, 1) << i;
            }
            n++;
        }
    }
    EXPECT_EQ(seen.size(), 6u);
    EXPECT_EQ(n, hard_stats_.objects);
}

// synth.h: about 9% difficult (VOC's share); up to 45% of a box may fall
// outside the image, which truncates about a quarter of the objects.
TEST_F(SynthHard, DifficultAndTruncatedShares)
{
    long n = 0, difficult = 0, truncated = 0;
    for (const Image &a : hard_images_)
        for (const Box &b : a.boxes) n++, difficult += b.difficult, truncated += b.truncated;
    ASSERT_GE(n, 400);
    EXPECT_EQ(difficult, hard_stats_.difficult);
    EXPECT_EQ(truncated, hard_stats_.truncated);
    const double fd = double(difficult) / n, ft = double(truncated) / n;
    EXPECT_GE(fd, 0.05);
    EXPECT_LE(fd, 0.14);
    EXPECT_GE(ft, 0.18);
    EXPECT_LE(ft, 0.38);
}

// Sides in [10/13, 16/13] * 416 = 320..512, independently, over the range.
TEST_F(SynthHard, ImageSizesSpanTheStatedRange)
{
    int lo = 1 << 30, hi = 0, square = 0;
    for (const Image &a : hard_images_) {
        for (int s : {a.w, a.h}) {
            EXPECT_GE(s, 320);
            EXPECT_LE(s, 512);
            lo = std::min(lo, s);
            hi = std::max(hi, s);
        }
        square += a.w == a.h;
    }
    EXPECT_LE(lo, 330);
    EXPECT_GE(hi, 502);
    EXPECT_LE(square, 6);
}

// Objects from ~12 px (geometric mean side) to 60% of the shorter side,
// log-uniform: many small ones, some very large.
TEST_F(SynthHard, BoxSizesSpanSmallToLarge)
{
    double lo = 1e9, hi = 0;
    long n = 0, small = 0, large = 0;
    for (const Image &a : hard_images_)
        for (const Box &b : a.boxes) {
            if (b.truncated) continue; // clipped boxes say little about the drawn size
            const double side = std::min(a.w, a.h), g = b.gm();
            lo = std::min(lo, g);
            hi = std::max(hi, g / side);
            n++;
            small += g < 32;
            large += g > 0.3 * side;
        }
    ASSERT_GE(n, 300);
    EXPECT_LE(lo, 14);
    EXPECT_GE(hi, 0.5);
    EXPECT_GE(double(small) / n, 0.25);
    EXPECT_GE(double(large) / n, 0.08);
}

// Each image is written at its own JPEG quality (35..90): the DC step of
// the luminance table varies; the easy set uses one quality (92) for all.
TEST_F(SynthHard, JpegQualityVariesPerImage)
{
    std::set<int> hard_steps, easy_steps;
    for (int i = 1; i <= 120; i++) {
        hard_steps.insert(jpeg_dc_step(read_text(root_ + "/hard/JPEGImages/" + id_of(i) + ".jpg")));
        easy_steps.insert(jpeg_dc_step(read_text(root_ + "/easy/JPEGImages/" + id_of(i) + ".jpg")));
    }
    EXPECT_EQ(easy_steps.size(), 1u);
    EXPECT_GE(hard_steps.size(), 8u);
    EXPECT_GE(*hard_steps.rbegin(), 18); // quality under 45 is there
    EXPECT_LE(*hard_steps.begin(), 5);   // and above 80
}

} // namespace
