// Tests of the synthetic VOC dataset (framework/data/synth.c).
//
// A 20-image dataset is generated once; the tests read it back as a user
// would (libxml2 for the XML, the image decoder for the JPEGs) and check
// that the files agree with each other: lists against files, boxes against
// image sizes, box contents against the class colour, counts against the
// stamp. Generation options are small so the whole file runs in ~1 s.
#include <gtest/gtest.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "framework/data/image.h"
#include "framework/data/synth.h"
#include "framework/data/voc_xml.h"

namespace fs = std::filesystem;

namespace {

using namespace vocxml;

struct Obj {
    std::string name;
    int truncated = -1, difficult = -1;
    int xmin = 0, ymin = 0, xmax = 0, ymax = 0;
};

struct Ann {
    std::string filename;
    int width = 0, height = 0, depth = 0;
    std::vector<Obj> objs;
};

std::vector<std::string> read_lines(const std::string &p)
{
    std::vector<std::string> v;
    std::ifstream f(p);
    for (std::string l; std::getline(f, l);) v.push_back(l);
    return v;
}

// Parses a VOC annotation; false (with a gtest failure) if it is not one.
bool parse_ann(const std::string &p, Ann *a)
{
    xmlDoc *doc = xmlReadFile(p.c_str(), nullptr, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        ADD_FAILURE() << p << ": not well-formed XML";
        return false;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    bool ok = root && !xmlStrcmp(root->name, BAD_CAST "annotation");
    EXPECT_TRUE(ok) << p << ": root is not <annotation>";
    if (ok) {
        xmlNode *fn = child(root, "filename"), *size = child(root, "size");
        EXPECT_NE(child(root, "folder"), nullptr) << p;
        a->filename = fn ? text_of(fn) : "";
        a->width = int_of(size, "width");
        a->height = int_of(size, "height");
        a->depth = int_of(size, "depth");
        for (xmlNode *c = root->children; c; c = c->next) {
            if (c->type != XML_ELEMENT_NODE || xmlStrcmp(c->name, BAD_CAST "object")) continue;
            Obj o;
            xmlNode *nm = child(c, "name"), *pose = child(c, "pose"), *bb = child(c, "bndbox");
            o.name = nm ? text_of(nm) : "";
            EXPECT_EQ(pose ? text_of(pose) : "", "Unspecified") << p;
            o.truncated = int_of(c, "truncated");
            o.difficult = int_of(c, "difficult");
            o.xmin = int_of(bb, "xmin");
            o.ymin = int_of(bb, "ymin");
            o.xmax = int_of(bb, "xmax");
            o.ymax = int_of(bb, "ymax");
            a->objs.push_back(o);
        }
    }
    xmlFreeDoc(doc);
    return ok;
}

std::string make_tmpdir()
{
    char tmpl[] = "/tmp/wh_synth_testXXXXXX";
    const char *d = mkdtemp(tmpl);
    return d ? d : "";
}

// Every regular file under dir, relative path -> contents.
std::map<std::string, std::string> snapshot(const std::string &dir)
{
    std::map<std::string, std::string> m;
    for (const auto &e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) m[fs::relative(e.path(), dir).string()] = read_text(e.path().string());
    return m;
}

int stamp_value(const std::string &dir, const std::string &key)
{
    for (const auto &l : read_lines(dir + "/synth.txt")) {
        std::istringstream in(l);
        std::string k;
        long v;
        if (in >> k >> v && k == key) return static_cast<int>(v);
    }
    return -1;
}

// RGB in [0,1] -> hue (degrees), saturation, value.
void rgb_to_hsv(float r, float g, float b, double *h, double *s, double *v)
{
    const double mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
    *v = mx;
    *s = mx > 0 ? d / mx : 0;
    if (d <= 0) {
        *h = 0;
        return;
    }
    double hh;
    if (mx == r) hh = std::fmod((g - b) / d, 6.0);
    else if (mx == g) hh = (b - r) / d + 2;
    else hh = (r - g) / d + 4;
    hh *= 60;
    *h = hh < 0 ? hh + 360 : hh;
}

double hue_dist(double a, double b)
{
    const double d = std::fabs(a - b);
    return std::min(d, 360 - d);
}

class SynthTest : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        dir_ = make_tmpdir();
        ASSERT_FALSE(dir_.empty());
        dir_ += "/voc"; // a folder that does not exist yet: created
        wh_synth_opts_default(&opts_);
        opts_.images = 20;
        opts_.size = 128;
        opts_.seed = 7;
        opts_.test_fraction = 0.25;
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        ASSERT_EQ(wh_synth_generate_stats(&opts_, dir_.c_str(), &stats_, &ctx), WH_OK) << ctx.msg;
    }
    static void TearDownTestSuite() { fs::remove_all(fs::path(dir_).parent_path()); }
    void SetUp() override { wh_ctx_init(&ctx); }

    static std::string dir_;
    static wh_synth_opts opts_;
    static wh_synth_stats stats_;
    wh_ctx ctx;
};
std::string SynthTest::dir_;
wh_synth_opts SynthTest::opts_;
wh_synth_stats SynthTest::stats_;

std::string id_of(int i)
{
    char b[16];
    std::snprintf(b, sizeof(b), "%06d", i);
    return b;
}

TEST(SynthClasses, NamesHuesAndDefaults)
{
    ASSERT_GE(wh_synth_max_classes(), 8);
    std::set<std::string> names;
    for (int k = 0; k < wh_synth_max_classes(); k++) {
        ASSERT_NE(wh_synth_class_name(k), nullptr);
        names.insert(wh_synth_class_name(k));
        const double h = wh_synth_class_hue(k);
        EXPECT_GE(h, 0);
        EXPECT_LT(h, 360);
        for (int j = 0; j < k; j++) EXPECT_GE(hue_dist(h, wh_synth_class_hue(j)), 30) << k << " vs " << j;
    }
    EXPECT_EQ(names.size(), static_cast<size_t>(wh_synth_max_classes()));
    EXPECT_STREQ(wh_synth_class_name(0), "disc");
    EXPECT_EQ(wh_synth_class_name(wh_synth_max_classes()), nullptr);
    // The defaults' hues are 72 degrees apart: as distinct as 5 hues can be.
    wh_synth_opts o;
    wh_synth_opts_default(&o);
    EXPECT_EQ(o.images, 1000);
    EXPECT_EQ(o.classes, 5);
    EXPECT_EQ(o.size, 256);
    EXPECT_DOUBLE_EQ(o.test_fraction, 0.2);
    for (int k = 0; k < o.classes; k++)
        for (int j = 0; j < k; j++) EXPECT_GE(hue_dist(wh_synth_class_hue(k), wh_synth_class_hue(j)), 72);
}

TEST_F(SynthTest, ListsMatchFilesAndSplit)
{
    const auto train = read_lines(dir_ + "/ImageSets/Main/train.txt");
    const auto test = read_lines(dir_ + "/ImageSets/Main/test.txt");
    const auto trainval = read_lines(dir_ + "/ImageSets/Main/trainval.txt");
    EXPECT_EQ(train.size(), 15u); // 20 * (1 - 0.25)
    EXPECT_EQ(test.size(), 5u);
    EXPECT_EQ(trainval, train);
    EXPECT_EQ(stats_.train, 15);
    EXPECT_EQ(stats_.test, 5);
    EXPECT_EQ(stats_.images, 20);
    EXPECT_EQ(stats_.reused, 0);
    std::set<std::string> all(train.begin(), train.end());
    for (const auto &t : test) EXPECT_TRUE(all.insert(t).second) << t << " is in both splits";
    ASSERT_EQ(all.size(), 20u);
    for (int i = 1; i <= 20; i++) {
        const std::string id = id_of(i);
        EXPECT_TRUE(all.count(id)) << id;
        EXPECT_TRUE(fs::is_regular_file(dir_ + "/JPEGImages/" + id + ".jpg")) << id;
        EXPECT_TRUE(fs::is_regular_file(dir_ + "/Annotations/" + id + ".xml")) << id;
    }
    EXPECT_TRUE(std::is_sorted(train.begin(), train.end()));
    const auto classes = read_lines(dir_ + "/classes.txt");
    ASSERT_EQ(classes.size(), 5u);
    for (int k = 0; k < 5; k++) EXPECT_EQ(classes[k], wh_synth_class_name(k));
    // Nothing else: no temporary files left behind.
    int n = 0;
    for (const auto &e : fs::recursive_directory_iterator(dir_)) n += e.is_regular_file();
    EXPECT_EQ(n, 20 * 2 + 3 + 2); // images, annotations, 3 lists, classes.txt, synth.txt
}

TEST_F(SynthTest, AnnotationsAreValidVocAndMatchTheImages)
{
    const auto classes = read_lines(dir_ + "/classes.txt");
    const std::set<std::string> known(classes.begin(), classes.end());
    long objects = 0, difficult = 0, truncated = 0;
    std::set<std::string> seen_classes;
    std::set<int> widths, heights;
    for (int i = 1; i <= 20; i++) {
        const std::string id = id_of(i), img = dir_ + "/JPEGImages/" + id + ".jpg";
        Ann a;
        ASSERT_TRUE(parse_ann(dir_ + "/Annotations/" + id + ".xml", &a));
        EXPECT_EQ(a.filename, id + ".jpg");
        int w = 0, h = 0;
        ASSERT_EQ(wh_image_read_size(img.c_str(), &w, &h, &ctx), WH_OK) << ctx.msg;
        EXPECT_EQ(a.width, w) << id;
        EXPECT_EQ(a.height, h) << id;
        EXPECT_EQ(a.depth, 3);
        // Sides vary in [0.75, 1.25] * size, independently.
        EXPECT_GE(w, 96);
        EXPECT_LE(w, 160);
        EXPECT_GE(h, 96);
        EXPECT_LE(h, 160);
        widths.insert(w);
        heights.insert(h);
        EXPECT_GE(a.objs.size(), 1u);
        EXPECT_LE(a.objs.size(), 6u);
        for (const Obj &o : a.objs) {
            EXPECT_TRUE(known.count(o.name)) << id << ": " << o.name;
            seen_classes.insert(o.name);
            // 1-based inclusive, inside the image.
            EXPECT_GE(o.xmin, 1) << id;
            EXPECT_GE(o.ymin, 1) << id;
            EXPECT_LE(o.xmax, w) << id;
            EXPECT_LE(o.ymax, h) << id;
            EXPECT_LT(o.xmin, o.xmax) << id;
            EXPECT_LT(o.ymin, o.ymax) << id;
            EXPECT_TRUE(o.truncated == 0 || o.truncated == 1);
            EXPECT_TRUE(o.difficult == 0 || o.difficult == 1);
            // A truncated object's clipped box touches the border.
            if (o.truncated) {
                EXPECT_TRUE(o.xmin == 1 || o.ymin == 1 || o.xmax == w || o.ymax == h) << id;
            }
            // Small objects are difficult.
            if (std::sqrt(double(o.xmax - o.xmin + 1) * (o.ymax - o.ymin + 1)) < 12) {
                EXPECT_EQ(o.difficult, 1) << id;
            }
            objects++;
            difficult += o.difficult;
            truncated += o.truncated;
        }
    }
    EXPECT_GE(widths.size(), 5u); // sizes do vary
    EXPECT_GE(heights.size(), 5u);
    EXPECT_GE(seen_classes.size(), 4u);
    EXPECT_EQ(objects, stats_.objects);
    EXPECT_EQ(difficult, stats_.difficult);
    EXPECT_EQ(truncated, stats_.truncated);
    EXPECT_EQ(stamp_value(dir_, "objects"), objects);
    EXPECT_EQ(stamp_value(dir_, "complete"), 1);
}

// Share of the pixels of a box (0-based, inclusive) that look like a class
// colour: hue within 25 degrees of `hue`, saturated and bright enough.
double hue_share(const wh_image &im, int x0, int y0, int x1, int y1, double hue)
{
    long n = 0, hit = 0;
    for (int y = std::max(0, y0); y <= std::min(im.h - 1, y1); y++)
        for (int x = std::max(0, x0); x <= std::min(im.w - 1, x1); x++) {
            double h, s, v;
            rgb_to_hsv(im.data[wh_image_index(&im, x, y, 0)], im.data[wh_image_index(&im, x, y, 1)],
                       im.data[wh_image_index(&im, x, y, 2)], &h, &s, &v);
            n++;
            hit += s > 0.4 && v > 0.3 && hue_dist(h, hue) < 25;
        }
    return n ? double(hit) / n : 0;
}

TEST_F(SynthTest, BoxesHoldTheirClassColour)
{
    // For isolated, unoccluded objects: the box is mostly the class's hue,
    // not another class's, and the band just outside the box is not (the
    // box is not too small). This ties each annotation to its pixels.
    std::map<std::string, int> cls;
    for (int k = 0; k < opts_.classes; k++) cls[wh_synth_class_name(k)] = k;
    int checked = 0;
    for (int i = 1; i <= 20; i++) {
        const std::string id = id_of(i);
        Ann a;
        ASSERT_TRUE(parse_ann(dir_ + "/Annotations/" + id + ".xml", &a));
        wh_image im;
        ASSERT_EQ(wh_image_load((dir_ + "/JPEGImages/" + id + ".jpg").c_str(), &im, &ctx), WH_OK) << ctx.msg;
        for (size_t j = 0; j < a.objs.size(); j++) {
            const Obj &o = a.objs[j];
            // 0-based inclusive
            const int x0 = o.xmin - 1, y0 = o.ymin - 1, x1 = o.xmax - 1, y1 = o.ymax - 1;
            if (o.difficult || o.truncated || x1 - x0 < 15 || y1 - y0 < 15) continue;
            bool isolated = true;
            for (size_t q = 0; q < a.objs.size(); q++) {
                const Obj &p = a.objs[q];
                if (q != j && p.xmin - 1 <= x1 + 6 && p.xmax - 1 >= x0 - 6 && p.ymin - 1 <= y1 + 6 &&
                    p.ymax - 1 >= y0 - 6)
                    isolated = false;
            }
            if (!isolated) continue;
            const int k = cls.at(o.name);
            const double own = hue_share(im, x0, y0, x1, y1, wh_synth_class_hue(k));
            EXPECT_GT(own, 0.3) << id << " object " << j << " (" << o.name << ")";
            for (int other = 0; other < opts_.classes; other++)
                if (other != k) {
                    EXPECT_LT(hue_share(im, x0, y0, x1, y1, wh_synth_class_hue(other)), 0.1)
                        << id << " object " << j << " (" << o.name << ") vs " << wh_synth_class_name(other);
                }
            // The band 3..5 px outside each side (JPEG chroma bleeds ~2 px).
            const double bands[4] = {hue_share(im, x0, y0 - 5, x1, y0 - 3, wh_synth_class_hue(k)),
                                     hue_share(im, x0, y1 + 3, x1, y1 + 5, wh_synth_class_hue(k)),
                                     hue_share(im, x0 - 5, y0, x0 - 3, y1, wh_synth_class_hue(k)),
                                     hue_share(im, x1 + 3, y0, x1 + 5, y1, wh_synth_class_hue(k))};
            for (double b : bands) EXPECT_LT(b, 0.1) << id << " object " << j << " (" << o.name << ")";
            checked++;
        }
        wh_image_free(&im);
    }
    EXPECT_GE(checked, 8); // enough objects were actually checked
}

TEST_F(SynthTest, SameSeedSameBytesAnyThreadCount)
{
    const std::string d = make_tmpdir();
    const int saved = omp_get_max_threads();
    wh_ctx_set_threads(&ctx, 1); // the suite's copy ran with the default thread count
    wh_synth_stats st;
    const wh_status s = wh_synth_generate_stats(&opts_, d.c_str(), &st, &ctx);
    omp_set_num_threads(saved);
    ASSERT_EQ(s, WH_OK) << ctx.msg;
    EXPECT_EQ(st.objects, stats_.objects);
    const auto a = snapshot(dir_), b = snapshot(d);
    EXPECT_EQ(a.size(), b.size());
    for (const auto &kv : a) {
        auto it = b.find(kv.first);
        ASSERT_NE(it, b.end()) << kv.first;
        EXPECT_TRUE(it->second == kv.second) << kv.first << " differs";
    }
    fs::remove_all(d);
}

TEST_F(SynthTest, OtherSeedOtherData)
{
    const std::string d = make_tmpdir();
    wh_synth_opts o = opts_;
    o.seed = 8;
    ASSERT_EQ(wh_synth_generate(&o, d.c_str(), &ctx), WH_OK) << ctx.msg;
    int differ = 0;
    for (int i = 1; i <= 20; i++) {
        const std::string rel = "/JPEGImages/" + id_of(i) + ".jpg";
        differ += read_text(dir_ + rel) != read_text(d + rel);
    }
    EXPECT_EQ(differ, 20);
    EXPECT_NE(read_text(dir_ + "/ImageSets/Main/test.txt"), read_text(d + "/ImageSets/Main/test.txt"));
    fs::remove_all(d);
}

TEST_F(SynthTest, RefusesAForeignFolderAndTouchesNothing)
{
    const std::string d = make_tmpdir();
    {
        std::ofstream f(d + "/notes.txt");
        f << "mine\n";
    }
    EXPECT_EQ(wh_synth_generate(&opts_, d.c_str(), &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find(d), std::string::npos) << ctx.msg;
    EXPECT_EQ(read_text(d + "/notes.txt"), "mine\n");
    int n = 0;
    for (const auto &e : fs::directory_iterator(d)) n += !e.path().empty();
    EXPECT_EQ(n, 1);
    // A path that is a file is refused too.
    EXPECT_EQ(wh_synth_generate(&opts_, (d + "/notes.txt").c_str(), &ctx), WH_ERR_IO);
    EXPECT_EQ(read_text(d + "/notes.txt"), "mine\n");
    fs::remove_all(d);
}

TEST_F(SynthTest, ReusesACompleteDatasetWithoutRewriting)
{
    // Mark a file: if generation rewrote it, the mark would be gone.
    const std::string p = dir_ + "/JPEGImages/000003.jpg";
    const std::string before = read_text(p);
    {
        std::ofstream f(p, std::ios::binary | std::ios::trunc);
        f << "marked";
    }
    wh_synth_stats st;
    const wh_status s = wh_synth_generate_stats(&opts_, dir_.c_str(), &st, &ctx);
    const std::string after = read_text(p);
    {
        std::ofstream f(p, std::ios::binary | std::ios::trunc);
        f << before;
    }
    ASSERT_EQ(s, WH_OK) << ctx.msg;
    EXPECT_EQ(after, "marked");
    EXPECT_EQ(st.reused, 1);
    EXPECT_EQ(st.objects, stats_.objects);
    EXPECT_EQ(st.train, 15);

    // Other options on the same folder: refused, naming the folder.
    wh_synth_opts o = opts_;
    o.images = 21;
    EXPECT_EQ(wh_synth_generate(&o, dir_.c_str(), &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find(dir_), std::string::npos) << ctx.msg;
    EXPECT_FALSE(fs::exists(dir_ + "/JPEGImages/000021.jpg"));
}

TEST_F(SynthTest, AnIncompleteDatasetIsRegenerated)
{
    const std::string d = make_tmpdir() + "/voc";
    ASSERT_EQ(wh_synth_generate(&opts_, d.c_str(), &ctx), WH_OK) << ctx.msg;
    const auto want = snapshot(d);
    // As if interrupted: an image missing, the stamp saying "complete 0".
    fs::remove(d + "/JPEGImages/000020.jpg");
    std::string stamp = read_text(d + "/synth.txt");
    const size_t at = stamp.find("complete 1");
    ASSERT_NE(at, std::string::npos);
    stamp.replace(at, 10, "complete 0");
    {
        std::ofstream f(d + "/synth.txt", std::ios::trunc);
        f << stamp;
    }
    wh_synth_stats st;
    ASSERT_EQ(wh_synth_generate_stats(&opts_, d.c_str(), &st, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(st.reused, 0);
    EXPECT_TRUE(snapshot(d) == want);
    fs::remove_all(fs::path(d).parent_path());
}

TEST_F(SynthTest, BadOptionsAreErrors)
{
    const std::string d = make_tmpdir() + "/never";
    wh_synth_opts o = opts_;
    o.classes = wh_synth_max_classes() + 1;
    EXPECT_EQ(wh_synth_generate(&o, d.c_str(), &ctx), WH_ERR_ARG);
    const std::string m = ctx.msg;
    EXPECT_NE(m.find("1.." + std::to_string(wh_synth_max_classes())), std::string::npos) << m;
    EXPECT_NE(m.find("disc"), std::string::npos) << m;
    o = opts_;
    o.classes = 0;
    EXPECT_EQ(wh_synth_generate(&o, d.c_str(), &ctx), WH_ERR_ARG);
    o = opts_;
    o.test_fraction = 1.0;
    EXPECT_EQ(wh_synth_generate(&o, d.c_str(), &ctx), WH_ERR_ARG);
    o = opts_;
    o.images = 1;
    o.test_fraction = 0.6; // rounds to 1 test image, 0 training images
    EXPECT_EQ(wh_synth_generate(&o, d.c_str(), &ctx), WH_ERR_ARG);
    o = opts_;
    o.size = 8;
    EXPECT_EQ(wh_synth_generate(&o, d.c_str(), &ctx), WH_ERR_ARG);
    EXPECT_FALSE(fs::exists(d)); // nothing created for bad options
    fs::remove_all(fs::path(d).parent_path());
}

} // namespace
