// Tests of the PASCAL VOC reader (framework/data/voc.c) and of
// wh_dataset_open / wh_voc_class_names (framework/data/dataset.c).
//
// Each test writes a small VOC tree into a temporary folder: annotation XML
// typed by hand, id lists (with CRLF endings and trailing spaces), and image
// files whose bytes do not matter (the VOC reader only checks they exist).
// Every parsed field is compared with the value written in the XML. Each kind
// of bad input has its own test that checks the status and that the message
// names the file (and the line, where there is one).
#include "test_util.h"
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "framework/data/dataset.h"

namespace {

namespace fs = std::filesystem;

using wht::contains;

// A temporary folder, removed with everything in it at the end of the test.
struct TempDir {
    std::string path;
    TempDir()
    {
        char tmpl[] = "/tmp/whittle_test_voc_XXXXXX";
        const char *p = mkdtemp(tmpl);
        EXPECT_NE(p, nullptr);
        path = p ? p : "/tmp";
    }
    ~TempDir()
    {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    // Writes bytes to path/rel, creating the folders on the way.
    std::string write(const std::string &rel, const std::string &bytes) const
    {
        fs::path full = fs::path(path) / rel;
        fs::create_directories(full.parent_path());
        std::ofstream f(full, std::ios::binary);
        f << bytes;
        EXPECT_TRUE(f.good()) << full;
        return full.string();
    }
};

// One object in the annotation text. Fields left empty are omitted from the XML.
struct Obj {
    std::string name, xmin, ymin, xmax, ymax, difficult, truncated;
    bool bndbox = true;
};

// VOC annotation XML, one element per line, as the devkit writes it. The
// line of each element is therefore known: see kLine* below.
std::string annotation(const std::string &file, int w, int h, int depth,
                       const std::vector<Obj> &objs)
{
    std::string x = "<annotation>\n"                                 // 1
                    "\t<folder>VOC2007</folder>\n"                   // 2
                    "\t<filename>" + file + "</filename>\n"          // 3
                    "\t<size>\n"                                     // 4
                    "\t\t<width>" + std::to_string(w) + "</width>\n" // 5
                    "\t\t<height>" + std::to_string(h) + "</height>\n" // 6
                    "\t\t<depth>" + std::to_string(depth) + "</depth>\n" // 7
                    "\t</size>\n";                                   // 8
    for (const Obj &o : objs) {
        x += "\t<object>\n";                                          // 9 (+10k)
        x += "\t\t<name>" + o.name + "</name>\n";                     // 10
        x += "\t\t<pose>Unspecified</pose>\n";                        // 11
        x += o.truncated.empty() ? "\t\t<!-- -->\n" : "\t\t<truncated>" + o.truncated + "</truncated>\n"; // 12
        x += o.difficult.empty() ? "\t\t<!-- -->\n" : "\t\t<difficult>" + o.difficult + "</difficult>\n"; // 13
        if (o.bndbox) {
            x += "\t\t<bndbox>\n";                                    // 14
            x += "\t\t\t<xmin>" + o.xmin + "</xmin>\n";               // 15
            x += "\t\t\t<ymin>" + o.ymin + "</ymin>\n";               // 16
            x += "\t\t\t<xmax>" + o.xmax + "</xmax>\n";               // 17
            x += "\t\t\t<ymax>" + o.ymax + "</ymax>\n";               // 18
            x += "\t\t</bndbox>\n";                                   // 19
        } else {
            x += "\n\n\n\n\n\n";
        }
        x += "\t</object>\n";                                         // 20
    }
    return x + "</annotation>\n";
}
// Lines in annotation() of the k-th object (0-based).
int kLineObject(int k) { return 9 + 12 * k; }
int kLineName(int k) { return 10 + 12 * k; }
int kLineBndbox(int k) { return 14 + 12 * k; }
int kLineXmin(int k) { return 15 + 12 * k; }

// A VOC root with two images, as in VOC2007:
//   000005: 500x375x3, three objects (two chairs, one person with decimal coordinates)
//   000007: 500x333x3, no objects
// trainval.txt has CRLF endings, trailing spaces and a blank line.
std::string make_root(const TempDir &t, const std::string &rel = "VOC2007")
{
    std::vector<Obj> o5 = {
        {"chair", "263", "211", "324", "339", "0", "0"},
        {" chair ", "1", "1", "500", "375", "1", "1"}, // whole image, 1-based; name trimmed
        {"person", "273.5", "10.25", "300.75", "120", "", ""}, // defaults: not difficult, not truncated
    };
    t.write(rel + "/Annotations/000005.xml", annotation("000005.jpg", 500, 375, 3, o5));
    t.write(rel + "/Annotations/000007.xml", annotation("000007.jpg", 500, 333, 3, {}));
    t.write(rel + "/JPEGImages/000005.jpg", "jpeg bytes");
    t.write(rel + "/JPEGImages/000007.jpg", "jpeg bytes");
    t.write(rel + "/ImageSets/Main/trainval.txt", "000005  \r\n\r\n000007\r\n");
    return t.path + "/" + rel;
}

struct Loaded {
    wh_ctx ctx;
    wh_dataset *d = nullptr;
    wh_status st = WH_OK;
    Loaded() { wh_ctx_init(&ctx); }
    ~Loaded() { wh_dataset_free(d); }
    std::string msg() const { return ctx.msg; }
};

void load(Loaded &l, const std::vector<std::string> &roots, const char *split,
          const std::vector<const char *> &names = {})
{
    std::vector<const char *> r;
    for (const auto &s : roots) r.push_back(s.c_str());
    l.st = wh_voc_load(r.data(), (int)r.size(), split, names.empty() ? nullptr : names.data(),
                       (int)names.size(), &l.d, &l.ctx);
}

TEST(Voc, ClassNamesAreTheDevkitOrder)
{
    const char *const *n = wh_voc_class_names();
    const char *want[20] = {"aeroplane", "bicycle", "bird",  "boat",      "bottle",
                            "bus",       "car",     "cat",   "chair",     "cow",
                            "diningtable", "dog",   "horse", "motorbike", "person",
                            "pottedplant", "sheep", "sofa",  "train",     "tvmonitor"};
    for (int i = 0; i < 20; i++) EXPECT_STREQ(n[i], want[i]) << i;
    EXPECT_EQ(n[20], nullptr);
}

TEST(Voc, ParsesEveryField)
{
    TempDir t;
    std::string root = make_root(t);
    Loaded l;
    load(l, {root}, "trainval");
    ASSERT_EQ(l.st, WH_OK) << l.msg();
    ASSERT_EQ(l.d->n_classes, 20);
    EXPECT_STREQ(l.d->class_names[8], "chair");
    EXPECT_TRUE(contains(l.d->source, root)) << l.d->source;
    ASSERT_EQ(l.d->n, 2);

    const wh_sample &a = l.d->samples[0];
    EXPECT_STREQ(a.id, "000005"); // one root: plain ids
    EXPECT_EQ(std::string(a.image_path), root + "/JPEGImages/000005.jpg");
    EXPECT_EQ(a.width, 500);
    EXPECT_EQ(a.height, 375);
    EXPECT_EQ(a.depth, 3);
    ASSERT_EQ(a.n_obj, 3);
    // chair: integers as written; cls 8 = chair
    EXPECT_EQ(a.obj[0].cls, 8);
    EXPECT_EQ(a.obj[0].xmin, 263.f);
    EXPECT_EQ(a.obj[0].ymin, 211.f);
    EXPECT_EQ(a.obj[0].xmax, 324.f);
    EXPECT_EQ(a.obj[0].ymax, 339.f);
    EXPECT_EQ(a.obj[0].difficult, 0);
    EXPECT_EQ(a.obj[0].truncated, 0);
    // " chair " trimmed; the 1-based whole-image box is kept as written
    EXPECT_EQ(a.obj[1].cls, 8);
    EXPECT_EQ(a.obj[1].xmin, 1.f);
    EXPECT_EQ(a.obj[1].ymin, 1.f);
    EXPECT_EQ(a.obj[1].xmax, 500.f);
    EXPECT_EQ(a.obj[1].ymax, 375.f);
    EXPECT_EQ(a.obj[1].difficult, 1);
    EXPECT_EQ(a.obj[1].truncated, 1);
    // person (14): decimal coordinates, absent flags default to 0
    EXPECT_EQ(a.obj[2].cls, 14);
    EXPECT_EQ(a.obj[2].xmin, 273.5f);
    EXPECT_EQ(a.obj[2].ymin, 10.25f);
    EXPECT_EQ(a.obj[2].xmax, 300.75f);
    EXPECT_EQ(a.obj[2].ymax, 120.f);
    EXPECT_EQ(a.obj[2].difficult, 0);
    EXPECT_EQ(a.obj[2].truncated, 0);

    const wh_sample &b = l.d->samples[1]; // after the blank CRLF line
    EXPECT_STREQ(b.id, "000007");
    EXPECT_EQ(b.width, 500);
    EXPECT_EQ(b.height, 333);
    EXPECT_EQ(b.n_obj, 0); // an image without objects is fine
    EXPECT_EQ(b.obj, nullptr);
}

TEST(Voc, DevkitJoinsTheYearsThatHaveTheSplit)
{
    TempDir t;
    make_root(t, "VOCdevkit/VOC2007");
    t.write("VOCdevkit/VOC2007/ImageSets/Main/test.txt", "000007\n");
    // VOC2012: one image with a dog; it has trainval but no test split.
    t.write("VOCdevkit/VOC2012/Annotations/2008_000002.xml",
            annotation("2008_000002.jpg", 400, 300, 3, {{"dog", "10", "20", "110", "220", "0", "1"}}));
    t.write("VOCdevkit/VOC2012/JPEGImages/2008_000002.jpg", "x");
    t.write("VOCdevkit/VOC2012/ImageSets/Main/trainval.txt", "2008_000002\n");
    t.write("VOCdevkit/VOCcode/readme.txt", "not a year folder\n");
    std::string devkit = t.path + "/VOCdevkit";

    Loaded l;
    load(l, {devkit}, "trainval");
    ASSERT_EQ(l.st, WH_OK) << l.msg();
    ASSERT_EQ(l.d->n, 3); // 07 (2 ids) then 12 (1 id)
    EXPECT_STREQ(l.d->samples[0].id, "VOC2007/000005");
    EXPECT_STREQ(l.d->samples[1].id, "VOC2007/000007");
    EXPECT_STREQ(l.d->samples[2].id, "VOC2012/2008_000002");
    EXPECT_EQ(std::string(l.d->samples[2].image_path),
              devkit + "/VOC2012/JPEGImages/2008_000002.jpg");
    ASSERT_EQ(l.d->samples[2].n_obj, 1);
    EXPECT_EQ(l.d->samples[2].obj[0].cls, 11); // dog
    EXPECT_EQ(l.d->samples[2].obj[0].xmax, 110.f);
    EXPECT_EQ(l.d->samples[2].obj[0].truncated, 1);

    Loaded test;
    load(test, {devkit}, "test"); // only VOC2007 has it
    ASSERT_EQ(test.st, WH_OK) << test.msg();
    ASSERT_EQ(test.d->n, 1);
    EXPECT_STREQ(test.d->samples[0].id, "VOC2007/000007");

    // Two roots given one by one are prefixed the same way.
    Loaded two;
    load(two, {devkit + "/VOC2007", devkit + "/VOC2012/"}, "trainval");
    ASSERT_EQ(two.st, WH_OK) << two.msg();
    ASSERT_EQ(two.d->n, 3);
    EXPECT_STREQ(two.d->samples[0].id, "VOC2007/000005");
    EXPECT_STREQ(two.d->samples[2].id, "VOC2012/2008_000002");

    Loaded none;
    load(none, {devkit}, "val");
    EXPECT_EQ(none.st, WH_ERR_IO);
    EXPECT_TRUE(contains(none.msg(), devkit)) << none.msg();
    EXPECT_TRUE(contains(none.msg(), "ImageSets/Main/val.txt")) << none.msg();
}

TEST(Voc, ClassNamesFromClassesTxtOrTheCaller)
{
    TempDir t;
    t.write("r/classes.txt", "cat\r\n\r\n  dog  \n");
    t.write("r/Annotations/a.xml",
            annotation("a.jpg", 100, 80, 3,
                       {{"dog", "1", "2", "30", "40", "", ""}, {"cat", "5", "6", "7", "8", "", ""}}));
    t.write("r/JPEGImages/a.jpg", "x");
    t.write("r/ImageSets/Main/train.txt", "a\n");
    std::string root = t.path + "/r";

    Loaded l;
    load(l, {root}, "train");
    ASSERT_EQ(l.st, WH_OK) << l.msg();
    ASSERT_EQ(l.d->n_classes, 2);
    EXPECT_STREQ(l.d->class_names[0], "cat");
    EXPECT_STREQ(l.d->class_names[1], "dog");
    ASSERT_EQ(l.d->samples[0].n_obj, 2);
    EXPECT_EQ(l.d->samples[0].obj[0].cls, 1);
    EXPECT_EQ(l.d->samples[0].obj[1].cls, 0);

    // The caller's list wins over classes.txt.
    Loaded c;
    load(c, {root}, "train", {"bird", "dog", "cat"});
    ASSERT_EQ(c.st, WH_OK) << c.msg();
    ASSERT_EQ(c.d->n_classes, 3);
    EXPECT_EQ(c.d->samples[0].obj[0].cls, 1);
    EXPECT_EQ(c.d->samples[0].obj[1].cls, 2);

    // A repeated name in classes.txt is an error at its line.
    t.write("r/classes.txt", "cat\ndog\ncat\n");
    Loaded dup;
    load(dup, {root}, "train");
    EXPECT_EQ(dup.st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(dup.msg(), root + "/classes.txt:3:")) << dup.msg();
}

TEST(Voc, ImageFallsBackToFilenameThenPng)
{
    TempDir t;
    std::string root = make_root(t);
    fs::remove(root + "/JPEGImages/000005.jpg");
    fs::remove(root + "/JPEGImages/000007.jpg");
    t.write("VOC2007/Annotations/000005.xml", annotation("other.jpeg", 500, 375, 3, {}));
    t.write("VOC2007/JPEGImages/other.jpeg", "x");
    t.write("VOC2007/JPEGImages/000007.png", "x");
    Loaded l;
    load(l, {root}, "trainval");
    ASSERT_EQ(l.st, WH_OK) << l.msg();
    EXPECT_EQ(std::string(l.d->samples[0].image_path), root + "/JPEGImages/other.jpeg");
    EXPECT_EQ(std::string(l.d->samples[1].image_path), root + "/JPEGImages/000007.png");
}

TEST(Voc, OffByOneAtTheBorderIsTolerated)
{
    TempDir t;
    std::string root = make_root(t);
    t.write("VOC2007/Annotations/000007.xml",
            annotation("000007.jpg", 500, 333, 3, {{"cat", "0", "0", "501", "334", "", ""}}));
    Loaded l;
    load(l, {root}, "trainval");
    ASSERT_EQ(l.st, WH_OK) << l.msg();
    EXPECT_EQ(l.d->samples[1].obj[0].xmin, 0.f);
    EXPECT_EQ(l.d->samples[1].obj[0].ymax, 334.f);
}

// ---- bad input: one test per kind ----

TEST(VocErrors, MissingSplitFile)
{
    TempDir t;
    std::string root = make_root(t);
    Loaded l;
    load(l, {root}, "test");
    EXPECT_EQ(l.st, WH_ERR_IO);
    EXPECT_TRUE(contains(l.msg(), root + "/ImageSets/Main/test.txt")) << l.msg();
}

TEST(VocErrors, MissingAnnotation)
{
    TempDir t;
    std::string root = make_root(t);
    t.write("VOC2007/ImageSets/Main/trainval.txt", "000005\n000009\n");
    Loaded l;
    load(l, {root}, "trainval");
    EXPECT_EQ(l.st, WH_ERR_IO);
    EXPECT_TRUE(contains(l.msg(), root + "/Annotations/000009.xml")) << l.msg();
    EXPECT_TRUE(contains(l.msg(), "trainval.txt:2")) << l.msg();
    EXPECT_EQ(l.d, nullptr);
}

TEST(VocErrors, MissingImage)
{
    TempDir t;
    std::string root = make_root(t);
    fs::remove(root + "/JPEGImages/000007.jpg");
    Loaded l;
    load(l, {root}, "trainval");
    EXPECT_EQ(l.st, WH_ERR_IO);
    EXPECT_TRUE(contains(l.msg(), root + "/JPEGImages/000007.jpg")) << l.msg();
    EXPECT_TRUE(contains(l.msg(), "trainval.txt:3")) << l.msg();
}

TEST(VocErrors, PerClassListLine)
{
    TempDir t;
    std::string root = make_root(t);
    t.write("VOC2007/ImageSets/Main/trainval.txt", "000005\n000007 -1\n");
    Loaded l;
    load(l, {root}, "trainval");
    EXPECT_EQ(l.st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l.msg(), root + "/ImageSets/Main/trainval.txt:2:")) << l.msg();
}

TEST(VocErrors, MalformedXmlGivesLibxmlLineAndPrintsNothing)
{
    TempDir t;
    std::string root = make_root(t);
    t.write("VOC2007/Annotations/000007.xml",
            "<annotation>\n"
            "\t<size>\n"
            "\t\t<width>500</width>\n"
            "\t\t<height>333</heigth>\n" // line 4: mismatched tag
            "\t</size>\n"
            "</annotation>\n");
    Loaded l;
    testing::internal::CaptureStderr();
    load(l, {root}, "trainval");
    std::string printed = testing::internal::GetCapturedStderr();
    EXPECT_EQ(l.st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l.msg(), root + "/Annotations/000007.xml:4:")) << l.msg();
    EXPECT_TRUE(contains(l.msg(), "malformed XML")) << l.msg();
    EXPECT_EQ(printed, "");
}

TEST(VocErrors, WrongRootElement)
{
    TempDir t;
    std::string root = make_root(t);
    t.write("VOC2007/Annotations/000007.xml", "<?xml version=\"1.0\"?>\n<html></html>\n");
    Loaded l;
    load(l, {root}, "trainval");
    EXPECT_EQ(l.st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l.msg(), root + "/Annotations/000007.xml:2:")) << l.msg();
}

// Loads a root whose 000007 has the objects given; returns the message.
Loaded *load_objects(const TempDir &t, const std::vector<Obj> &objs, std::string *ann)
{
    std::string root = make_root(t);
    *ann = t.write("VOC2007/Annotations/000007.xml", annotation("000007.jpg", 500, 333, 3, objs));
    Loaded *l = new Loaded;
    load(*l, {root}, "trainval");
    return l;
}

TEST(VocErrors, ObjectWithoutBndbox)
{
    TempDir t;
    std::string ann;
    Obj o = {"dog", "", "", "", "", "", ""};
    o.bndbox = false;
    std::unique_ptr<Loaded> l(load_objects(t, {{"cat", "1", "1", "9", "9", "", ""}, o}, &ann));
    EXPECT_EQ(l->st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l->msg(), ann + ":" + std::to_string(kLineObject(1)) + ":")) << l->msg();
    EXPECT_TRUE(contains(l->msg(), "bndbox")) << l->msg();
}

TEST(VocErrors, NonNumericCoordinate)
{
    TempDir t;
    std::string ann;
    std::unique_ptr<Loaded> l(load_objects(t, {{"cat", "12a", "1", "9", "9", "", ""}}, &ann));
    EXPECT_EQ(l->st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l->msg(), ann + ":" + std::to_string(kLineXmin(0)) + ":")) << l->msg();
    EXPECT_TRUE(contains(l->msg(), "'12a'")) << l->msg();
}

TEST(VocErrors, EmptyCoordinate)
{
    TempDir t;
    std::string ann;
    std::unique_ptr<Loaded> l(load_objects(t, {{"cat", "", "1", "9", "9", "", ""}}, &ann));
    EXPECT_EQ(l->st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l->msg(), ann + ":" + std::to_string(kLineXmin(0)) + ":")) << l->msg();
}

TEST(VocErrors, InvertedBox)
{
    TempDir t;
    std::string ann;
    std::unique_ptr<Loaded> l(load_objects(t, {{"cat", "50", "10", "40", "20", "", ""}}, &ann));
    EXPECT_EQ(l->st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l->msg(), ann + ":" + std::to_string(kLineBndbox(0)) + ":")) << l->msg();
    EXPECT_TRUE(contains(l->msg(), "inverted")) << l->msg();

    TempDir t2;
    std::unique_ptr<Loaded> y(load_objects(t2, {{"cat", "10", "30", "40", "20", "", ""}}, &ann));
    EXPECT_EQ(y->st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(y->msg(), "inverted")) << y->msg();
}

TEST(VocErrors, BoxFarOutsideTheImage)
{
    TempDir t;
    std::string ann;
    // width 500: xmax 502 is two pixels past the last column
    std::unique_ptr<Loaded> l(load_objects(t, {{"cat", "10", "10", "502", "20", "", ""}}, &ann));
    EXPECT_EQ(l->st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l->msg(), ann + ":" + std::to_string(kLineBndbox(0)) + ":")) << l->msg();
    EXPECT_TRUE(contains(l->msg(), "width 500")) << l->msg();

    TempDir t2; // height 333; ymin -3
    std::unique_ptr<Loaded> y(load_objects(t2, {{"cat", "10", "-3", "20", "20", "", ""}}, &ann));
    EXPECT_EQ(y->st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(y->msg(), "height 333")) << y->msg();
}

TEST(VocErrors, NonNumericDifficult)
{
    TempDir t;
    std::string ann;
    std::unique_ptr<Loaded> l(load_objects(t, {{"cat", "1", "1", "9", "9", "yes", ""}}, &ann));
    EXPECT_EQ(l->st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l->msg(), ann + ":" + std::to_string(kLineObject(0) + 4) + ":"))
        << l->msg();
}

TEST(VocErrors, UnknownClassListsKnownOnes)
{
    TempDir t;
    std::string ann;
    std::unique_ptr<Loaded> l(load_objects(t, {{"aeroplan", "1", "1", "9", "9", "", ""}}, &ann));
    EXPECT_EQ(l->st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l->msg(), ann + ":" + std::to_string(kLineName(0)) + ":")) << l->msg();
    EXPECT_TRUE(contains(l->msg(), "'aeroplan'")) << l->msg();
    EXPECT_TRUE(contains(l->msg(), "aeroplane, bicycle")) << l->msg();
}

TEST(VocErrors, NotAVocFolder)
{
    TempDir t;
    t.write("x/readme.txt", "hello\n");
    Loaded l;
    load(l, {t.path + "/x"}, "trainval");
    EXPECT_EQ(l.st, WH_ERR_IO);
    EXPECT_TRUE(contains(l.msg(), t.path + "/x")) << l.msg();
    EXPECT_TRUE(contains(l.msg(), "Annotations")) << l.msg();
}

// ---- wh_dataset_open ----

TEST(DatasetOpen, PicksTheReaderFromThePath)
{
    TempDir t;
    std::string root = make_root(t, "VOCdevkit/VOC2007");
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_dataset *d = nullptr;
    ASSERT_EQ(wh_dataset_open(root.c_str(), "trainval", &d, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(d->n, 2);
    EXPECT_STREQ(d->samples[0].id, "000005"); // a root: plain ids
    wh_dataset_free(d);
    d = nullptr;

    std::string devkit = t.path + "/VOCdevkit";
    ASSERT_EQ(wh_dataset_open(devkit.c_str(), "trainval", &d, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(d->n, 2);
    EXPECT_STREQ(d->samples[0].id, "VOC2007/000005"); // a devkit: prefixed
    wh_dataset_free(d);
    d = nullptr;

    std::string other = t.write("plain/a.txt", "x");
    std::string folder = t.path + "/plain";
    EXPECT_EQ(wh_dataset_open(folder.c_str(), "trainval", &d, &ctx), WH_ERR_ARG);
    EXPECT_TRUE(contains(ctx.msg, folder)) << ctx.msg;
    EXPECT_TRUE(contains(ctx.msg, ".data")) << ctx.msg;
    EXPECT_EQ(wh_dataset_open(other.c_str(), "trainval", &d, &ctx), WH_ERR_ARG);
    EXPECT_TRUE(contains(ctx.msg, other)) << ctx.msg;
    std::string missing = t.path + "/nothing";
    EXPECT_EQ(wh_dataset_open(missing.c_str(), "trainval", &d, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, missing)) << ctx.msg;
    EXPECT_EQ(d, nullptr);
}

} // namespace
