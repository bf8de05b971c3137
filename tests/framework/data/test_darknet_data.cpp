// Tests of the darknet dataset reader (framework/data/darknet_data.c).
//
// Each test writes a small darknet dataset into a temporary folder: a .data
// file, a names file, list files, real PNG/JPEG files (the reader takes the
// image size from their headers) and label files. The test runs from an
// empty temporary current directory, so relative paths resolve only where
// the test puts them. Boxes are compared with pixel values worked out by
// hand from xmin = (xc - w/2) W + 1, xmax = (xc + w/2) W.
#include "test_util.h"
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "framework/data/dataset.h"

namespace {

namespace fs = std::filesystem;

using wht::contains;

void write_png(const std::string &path, int w, int h)
{
    FILE *f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr) << path;
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png_create_info_struct(p);
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(p, info);
    std::vector<unsigned char> row((size_t)w, 128);
    for (int y = 0; y < h; y++) png_write_row(p, row.data());
    png_write_end(p, nullptr);
    png_destroy_write_struct(&p, &info);
    fclose(f);
}

void write_jpeg(const std::string &path, int w, int h)
{
    FILE *f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr) << path;
    jpeg_compress_struct c;
    jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    std::vector<unsigned char> row((size_t)w, 200);
    JSAMPROW r = row.data();
    for (int y = 0; y < h; y++) jpeg_write_scanlines(&c, &r, 1);
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

// A temporary folder holding the dataset, and an empty temporary current
// directory; both removed, and the old current directory restored, at the end.
struct Tree {
    std::string root, cwd, old_cwd;
    Tree()
    {
        char a[] = "/tmp/whittle_test_darknet_XXXXXX";
        char b[] = "/tmp/whittle_test_darknet_cwd_XXXXXX";
        root = mkdtemp(a);
        cwd = mkdtemp(b);
        char buf[PATH_MAX];
        old_cwd = getcwd(buf, sizeof(buf)) ? buf : "/";
        EXPECT_EQ(chdir(cwd.c_str()), 0);
    }
    ~Tree()
    {
        EXPECT_EQ(chdir(old_cwd.c_str()), 0);
        std::error_code ec;
        fs::remove_all(root, ec);
        fs::remove_all(cwd, ec);
    }
    std::string write(const std::string &rel, const std::string &bytes) const
    {
        fs::path full = fs::path(root) / rel;
        fs::create_directories(full.parent_path());
        std::ofstream f(full, std::ios::binary);
        f << bytes;
        EXPECT_TRUE(f.good()) << full;
        return full.string();
    }
    std::string png(const std::string &rel, int w, int h) const
    {
        fs::path full = fs::path(root) / rel;
        fs::create_directories(full.parent_path());
        write_png(full.string(), w, h);
        return full.string();
    }
    std::string jpeg(const std::string &rel, int w, int h) const
    {
        fs::path full = fs::path(root) / rel;
        fs::create_directories(full.parent_path());
        write_jpeg(full.string(), w, h);
        return full.string();
    }
    std::string at(const std::string &rel) const { return root + "/" + rel; }
};

// The standard dataset:
//   d/images/a.png      200x100, labels/a.txt: two objects
//   d/JPEGImages/b.JPG   64x48,  labels/b.txt: one object
//   d/images/c.png       10x10,  no label file
//   train.txt: "images/a.png" (relative to the list's folder) and b by absolute path
//   valid.txt: c
// obj.data names train.txt and obj.names relatively (found beside the .data
// file, not in the current directory) and valid.txt absolutely.
std::string make_dataset(const Tree &t)
{
    t.png("d/images/a.png", 200, 100);
    t.jpeg("d/JPEGImages/b.JPG", 64, 48);
    t.png("d/images/c.png", 10, 10);
    t.write("d/labels/a.txt", "1 0.5 0.5 0.25 0.5\n0 0.1 0.2 0.2 0.4\n");
    t.write("d/labels/b.txt", "2 0.25 0.75 0.5 0.5\r\n\r\n");
    t.write("d/train.txt", "images/a.png\r\n" + t.at("d/JPEGImages/b.JPG") + "  \n\n");
    t.write("d/valid.txt", t.at("d/images/c.png") + "\n");
    t.write("d/obj.names", "cat\ndog\nbird\n");
    return t.write("d/obj.data", "# darknet data file\n"
                                 "classes= 3\n"
                                 "train  = train.txt\n"
                                 "valid = " + t.at("d/valid.txt") + "\n"
                                 "names = obj.names\n"
                                 "backup = backup/\n"
                                 "eval = voc\n");
}

struct Loaded {
    wh_ctx ctx;
    wh_dataset *d = nullptr;
    wh_status st = WH_OK;
    Loaded(const std::string &data, const char *which)
    {
        wh_ctx_init(&ctx);
        st = wh_darknet_load(data.c_str(), which, &d, &ctx);
    }
    ~Loaded() { wh_dataset_free(d); }
    std::string msg() const { return ctx.msg; }
};

void expect_box(const wh_object &o, int cls, float x0, float y0, float x1, float y1)
{
    EXPECT_EQ(o.cls, cls);
    EXPECT_NEAR(o.xmin, x0, 1e-4);
    EXPECT_NEAR(o.ymin, y0, 1e-4);
    EXPECT_NEAR(o.xmax, x1, 1e-4);
    EXPECT_NEAR(o.ymax, y1, 1e-4);
    EXPECT_EQ(o.difficult, 0);
    EXPECT_EQ(o.truncated, 0);
}

TEST(DarknetData, LoadsTrainListAndConvertsToPixels)
{
    Tree t;
    std::string data = make_dataset(t);
    Loaded l(data, "train");
    ASSERT_EQ(l.st, WH_OK) << l.msg();
    ASSERT_EQ(l.d->n_classes, 3);
    EXPECT_STREQ(l.d->class_names[0], "cat");
    EXPECT_STREQ(l.d->class_names[2], "bird");
    ASSERT_EQ(l.d->n, 2);
    EXPECT_EQ(l.ctx.n_warn_total, 0);

    const wh_sample &a = l.d->samples[0];
    EXPECT_STREQ(a.id, "a");
    EXPECT_EQ(std::string(a.image_path), t.at("d/images/a.png"));
    EXPECT_EQ(a.width, 200);
    EXPECT_EQ(a.height, 100);
    ASSERT_EQ(a.n_obj, 2);
    // 1 0.5 0.5 0.25 0.5 in 200x100: x (0.375*200+1 .. 0.625*200), y (0.25*100+1 .. 0.75*100)
    expect_box(a.obj[0], 1, 76, 26, 125, 75);
    // 0 0.1 0.2 0.2 0.4: x (0*200+1 .. 0.2*200), y (0*100+1 .. 0.4*100)
    expect_box(a.obj[1], 0, 1, 1, 40, 40);

    const wh_sample &b = l.d->samples[1];
    EXPECT_STREQ(b.id, "b");
    EXPECT_EQ(b.width, 64);
    EXPECT_EQ(b.height, 48);
    ASSERT_EQ(b.n_obj, 1);
    // 2 0.25 0.75 0.5 0.5 in 64x48: x (0*64+1 .. 0.5*64), y (0.5*48+1 .. 1*48)
    expect_box(b.obj[0], 2, 1, 25, 32, 48);
}

TEST(DarknetData, SplitNamesAndMissingLabelWarns)
{
    Tree t;
    std::string data = make_dataset(t);
    for (const char *which : {"valid", "val", "test"}) {
        Loaded l(data, which);
        ASSERT_EQ(l.st, WH_OK) << which << ": " << l.msg();
        ASSERT_EQ(l.d->n, 1) << which;
        EXPECT_STREQ(l.d->samples[0].id, "c");
        EXPECT_EQ(l.d->samples[0].width, 10);
        EXPECT_EQ(l.d->samples[0].n_obj, 0); // no label file: no objects
        ASSERT_EQ(l.ctx.n_warn, 1);
        EXPECT_TRUE(contains(l.ctx.warn[0], t.at("d/labels/c.txt"))) << l.ctx.warn[0];
    }
    Loaded tv(data, "trainval");
    ASSERT_EQ(tv.st, WH_OK) << tv.msg();
    EXPECT_EQ(tv.d->n, 2);

    Loaded bad(data, "bogus");
    EXPECT_EQ(bad.st, WH_ERR_ARG);
    EXPECT_TRUE(contains(bad.msg(), "bogus")) << bad.msg();
}

TEST(DarknetData, LabelPathRules)
{
    struct Case {
        const char *image, *label;
    } cases[] = {
        {"/voc/VOCdevkit/VOC2007/JPEGImages/000005.jpg", "/voc/VOCdevkit/VOC2007/labels/000005.txt"},
        {"/coco/images/train2014/x.JPG", "/coco/labels/train2014/x.txt"},
        {"images/a.png", "labels/a.txt"},
        {"JPEGImages/a.jpeg", "labels/a.txt"},
        {"/a/images/b/images/c.JPEG", "/a/labels/b/images/c.txt"}, // first only, as darknet
        {"/a/b.PNG", "/a/b.txt"},
        {"/a/b.Bmp", "/a/b.txt"},
        {"/myimages/x.jpg", "/myimages/x.txt"}, // not a folder named images
        {"/d.jpg/x.png", "/d.jpg/x.txt"},
    };
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    for (const Case &c : cases) {
        char *out = nullptr;
        ASSERT_EQ(wh_darknet_label_path(c.image, &out, &ctx), WH_OK) << c.image;
        EXPECT_STREQ(out, c.label) << c.image;
        free(out);
    }
    for (const char *bad : {"/a/b.tif", "/a/b", "/a.jpg/b", "/a/.jpg"}) {
        char *out = nullptr;
        EXPECT_EQ(wh_darknet_label_path(bad, &out, &ctx), WH_ERR_ARG) << bad;
        EXPECT_EQ(out, nullptr);
        EXPECT_TRUE(contains(ctx.msg, bad)) << ctx.msg;
    }
}

TEST(DarknetData, VocBoxRoundTrip)
{
    // A VOC box (1-based inclusive) in a 353x500 image, written as the
    // label xc = (xmin - 1 + xmax) / (2W), w = (xmax - xmin + 1) / W, comes back.
    const double W = 353, H = 500, x0 = 48, y0 = 240, x1 = 195, y1 = 371;
    Tree t;
    std::string data = make_dataset(t);
    t.png("d/images/a.png", 353, 500);
    char line[256];
    snprintf(line, sizeof(line), "0 %.9f %.9f %.9f %.9f\n", (x0 - 1 + x1) / (2 * W),
             (y0 - 1 + y1) / (2 * H), (x1 - x0 + 1) / W, (y1 - y0 + 1) / H);
    t.write("d/labels/a.txt", line);
    Loaded l(data, "train");
    ASSERT_EQ(l.st, WH_OK) << l.msg();
    ASSERT_EQ(l.d->samples[0].n_obj, 1);
    expect_box(l.d->samples[0].obj[0], 0, 48, 240, 195, 371);
}

TEST(DarknetData, ValuesJustOutsideTheUnitRangeAreTolerated)
{
    Tree t;
    std::string data = make_dataset(t);
    t.write("d/labels/a.txt", "0 1.0005 -0.0005 0.1 1.0005\n");
    Loaded l(data, "train");
    ASSERT_EQ(l.st, WH_OK) << l.msg();
    ASSERT_EQ(l.d->samples[0].n_obj, 1);
    // x (0.9505*200+1 .. 1.0505*200), y (-0.50075*100+1 .. 0.49975*100)
    expect_box(l.d->samples[0].obj[0], 0, 191.1f, -49.075f, 210.1f, 49.975f);
}

// Each bad label line, written as line 2 of labels/a.txt, is an error that
// names labels/a.txt:2.
TEST(DarknetDataErrors, BadLabelLinesNameFileAndLine)
{
    const char *bad[] = {
        "3 0.5 0.5 0.1 0.1",       // class >= classes
        "-1 0.5 0.5 0.1 0.1",      // negative class
        "x 0.5 0.5 0.1 0.1",       // class not a number
        "1.0 0.5 0.5 0.1 0.1",     // class not an integer
        "0 0.5 0.5x 0.1 0.1",      // value not a number
        "0 nan 0.5 0.1 0.1",       // not finite
        "0 1.2 0.5 0.1 0.1",       // x_center > 1
        "0 0.5 -0.01 0.1 0.1",     // y_center < 0
        "0 0.5 0.5 0 0.1",         // width 0
        "0 0.5 0.5 0.1 -0.2",      // height < 0
        "0 0.5 0.5 1.5 0.1",       // width > 1
        "0 0.5 0.5 0.1",           // four fields
        "0 0.5 0.5 0.1 0.1 0.9",   // six fields
    };
    for (const char *line : bad) {
        Tree t;
        std::string data = make_dataset(t);
        std::string label = t.write("d/labels/a.txt", std::string("1 0.5 0.5 0.2 0.2\n") + line + "\n");
        Loaded l(data, "train");
        EXPECT_EQ(l.st, WH_ERR_PARSE) << line;
        EXPECT_TRUE(contains(l.msg(), label + ":2:")) << line << " -> " << l.msg();
        EXPECT_EQ(l.d, nullptr);
    }
}

TEST(DarknetDataErrors, ClassesAndNamesDisagree)
{
    Tree t;
    std::string data = make_dataset(t);
    t.write("d/obj.names", "cat\ndog\n");
    Loaded l(data, "train");
    EXPECT_EQ(l.st, WH_ERR_CFG);
    EXPECT_TRUE(contains(l.msg(), data + ":2:")) << l.msg(); // the classes= line
    EXPECT_TRUE(contains(l.msg(), "classes=3")) << l.msg();
    EXPECT_TRUE(contains(l.msg(), t.at("d/obj.names"))) << l.msg();
    EXPECT_TRUE(contains(l.msg(), "2 names")) << l.msg();
}

TEST(DarknetDataErrors, BlankLineInsideNames)
{
    Tree t;
    std::string data = make_dataset(t);
    std::string names = t.write("d/obj.names", "cat\n\ndog\nbird\n");
    t.write("d/obj.data", "train = train.txt\nnames = obj.names\n");
    Loaded l(data, "train");
    EXPECT_EQ(l.st, WH_ERR_PARSE);
    EXPECT_TRUE(contains(l.msg(), names + ":2:")) << l.msg();
}

TEST(DarknetData, NoNamesFileNamesClassesByIndex)
{
    Tree t;
    std::string data = make_dataset(t);
    t.write("d/obj.data", "classes = 3\ntrain = train.txt\n");
    Loaded l(data, "train");
    ASSERT_EQ(l.st, WH_OK) << l.msg();
    ASSERT_EQ(l.d->n_classes, 3);
    EXPECT_STREQ(l.d->class_names[0], "0");
    EXPECT_STREQ(l.d->class_names[2], "2");
    EXPECT_EQ(l.ctx.n_warn, 1);
}

TEST(DarknetDataErrors, DataFileSyntax)
{
    struct Case {
        const char *text;
        const char *want; // expected in the message after "<file>"
        wh_status st;
    } cases[] = {
        {"classes = 3\ntrain train.txt\n", ":2:", WH_ERR_PARSE},               // no '='
        {"classes = 3\n = x\n", ":2:", WH_ERR_PARSE},                          // empty key
        {"classes = 3\n#c\ntrain = a\ntrain = b\n", ":4:", WH_ERR_PARSE},      // twice
        {"classes = three\nnames = obj.names\n", ":1:", WH_ERR_PARSE},         // not a number
        {"classes = 0\nnames = obj.names\n", ":1:", WH_ERR_PARSE},             // not positive
        {"valid =\nnames = obj.names\n", ":1:", WH_ERR_PARSE},                 // no value
        {"names = obj.names\nvalid = valid.txt\n", ": no 'train' key", WH_ERR_CFG},
        {"train = train.txt\n", ": needs names=", WH_ERR_CFG},
        {"names = obj.names\ntrain = nowhere.txt\n", ":2: train file 'nowhere.txt' not found",
         WH_ERR_IO},
        {"names = none.names\ntrain = train.txt\n", ":1: names file", WH_ERR_IO},
    };
    for (const Case &c : cases) {
        Tree t;
        std::string data = make_dataset(t);
        t.write("d/obj.data", c.text);
        Loaded l(data, "train");
        EXPECT_EQ(l.st, c.st) << c.text;
        EXPECT_TRUE(contains(l.msg(), data + c.want)) << c.text << " -> " << l.msg();
    }
}

TEST(DarknetDataErrors, ImagesInTheList)
{
    Tree t;
    std::string data = make_dataset(t);
    std::string list = t.write("d/train.txt", "images/a.png\nimages/missing.png\n");
    Loaded l(data, "train");
    EXPECT_EQ(l.st, WH_ERR_IO);
    EXPECT_TRUE(contains(l.msg(), list + ":2:")) << l.msg();
    EXPECT_TRUE(contains(l.msg(), "images/missing.png")) << l.msg();

    // Not an image: the header reader's message, prefixed with list:line.
    t.write("d/images/bad.png", "not a png at all");
    t.write("d/train.txt", "images/a.png\n\nimages/bad.png\n");
    Loaded b(data, "train");
    EXPECT_NE(b.st, WH_OK);
    EXPECT_TRUE(contains(b.msg(), list + ":3:")) << b.msg();
    EXPECT_TRUE(contains(b.msg(), t.at("d/images/bad.png"))) << b.msg();

    // An extension the label rule does not know.
    t.png("d/images/e.tif", 8, 8);
    t.write("d/train.txt", "images/e.tif\n");
    Loaded e(data, "train");
    EXPECT_EQ(e.st, WH_ERR_ARG);
    EXPECT_TRUE(contains(e.msg(), list + ":1:")) << e.msg();
}

TEST(DarknetData, RelativePathsTryTheCurrentDirectoryFirst)
{
    Tree t;
    std::string data = make_dataset(t);
    {
        Loaded l(data, "train"); // nothing in the cwd: obj.names beside the .data file
        ASSERT_EQ(l.st, WH_OK) << l.msg();
        EXPECT_STREQ(l.d->class_names[0], "cat");
    }
    // An obj.names in the current directory wins, as in darknet.
    std::ofstream(t.cwd + "/obj.names") << "x\ny\nz\n";
    Loaded l(data, "train");
    ASSERT_EQ(l.st, WH_OK) << l.msg();
    EXPECT_STREQ(l.d->class_names[0], "x");
    EXPECT_STREQ(l.d->class_names[2], "z");

    // A relative .data path resolves its own relative paths beside it too.
    std::string rel = fs::relative(data, t.cwd).string();
    Loaded r(rel, "train");
    ASSERT_EQ(r.st, WH_OK) << r.msg();
    EXPECT_EQ(r.d->n, 2);
}

TEST(DarknetData, DatasetOpenReadsDataFiles)
{
    Tree t;
    std::string data = make_dataset(t);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_dataset *d = nullptr;
    ASSERT_EQ(wh_dataset_open(data.c_str(), "test", &d, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(d->n, 1);
    EXPECT_STREQ(d->samples[0].id, "c");
    EXPECT_TRUE(contains(d->source, data)) << d->source;
    wh_dataset_free(d);
}

} // namespace
