// Tests of image decode/encode, resize, letterbox and drawing
// (framework/data/image.c).
//
// Expected values are worked out by hand: bilinear samples from the
// corner-aligned mapping x_src = x * (w_src-1)/(w_dst-1), darknet's
// letterbox sizes, and PNG headers assembled byte by byte here.
#include "test_util.h"

#include <gtest/gtest.h>

#include <png.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "framework/data/image.h"

namespace fs = std::filesystem;

namespace {

class ImageTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        wh_ctx_init(&ctx);
        char tmpl[] = "/tmp/wh_image_testXXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
    }
    void TearDown() override { fs::remove_all(dir); }
    std::string path(const std::string &name) const { return dir + "/" + name; }

    wh_ctx ctx;
    std::string dir;
};

using wht::read_bytes;
using wht::write_bytes;

// Byte (x, y, k) of a pattern image: distinct, and covering 0 and 255.
unsigned char pattern(int x, int y, int k)
{
    return static_cast<unsigned char>((x * 37 + y * 101 + k * 83) % 256);
}

// CRC-32 as PNG defines it (ISO 3309, reflected 0xEDB88320), bit by bit.
uint32_t crc32_png(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

void put_be32(std::vector<unsigned char> &v, uint32_t x)
{
    for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<unsigned char>(x >> s));
}

// A chunk: length, type, data, CRC over type + data.
void put_chunk(std::vector<unsigned char> &v, const char *type, const std::vector<unsigned char> &data)
{
    put_be32(v, static_cast<uint32_t>(data.size()));
    std::vector<unsigned char> td(type, type + 4);
    td.insert(td.end(), data.begin(), data.end());
    v.insert(v.end(), td.begin(), td.end());
    put_be32(v, crc32_png(td.data(), td.size()));
}

// Signature + IHDR (8-bit RGB) + IEND: a header that claims w x h.
std::vector<unsigned char> png_header_only(uint32_t w, uint32_t h)
{
    std::vector<unsigned char> v = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    std::vector<unsigned char> ihdr;
    put_be32(ihdr, w);
    put_be32(ihdr, h);
    ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0}); // depth 8, colour type RGB, deflate, filter 0, no interlace
    put_chunk(v, "IHDR", ihdr);
    put_chunk(v, "IEND", {});
    return v;
}

TEST(ImageCrc, KnownValue)
{
    // The IEND chunk's CRC is the well-known AE 42 60 82.
    const unsigned char iend[] = {'I', 'E', 'N', 'D'};
    EXPECT_EQ(crc32_png(iend, 4), 0xAE426082u);
}

TEST_F(ImageTest, PngRoundTripIsExact)
{
    wh_image img;
    ASSERT_EQ(wh_image_alloc(&img, 7, 5, 3, &ctx), WH_OK);
    for (int k = 0; k < 3; k++)
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 7; x++) img.data[wh_image_index(&img, x, y, k)] = pattern(x, y, k) / 255.f;
    const std::string p = path("a.png");
    ASSERT_EQ(wh_image_save_png(p.c_str(), &img, &ctx), WH_OK) << ctx.msg;
    const auto bytes = read_bytes(p);
    ASSERT_GE(bytes.size(), 26u);
    EXPECT_EQ(bytes[0], 0x89);
    EXPECT_EQ(bytes[1], 'P');
    EXPECT_EQ(bytes[25], 2); // IHDR colour type: RGB

    wh_image back;
    ASSERT_EQ(wh_image_load(p.c_str(), &back, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(back.w, 7);
    ASSERT_EQ(back.h, 5);
    ASSERT_EQ(back.c, 3);
    for (int k = 0; k < 3; k++)
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 7; x++)
                ASSERT_EQ(back.data[wh_image_index(&back, x, y, k)], pattern(x, y, k) / 255.f)
                    << "x=" << x << " y=" << y << " k=" << k;
    int w = 0, h = 0;
    ASSERT_EQ(wh_image_read_size(p.c_str(), &w, &h, &ctx), WH_OK);
    EXPECT_EQ(w, 7);
    EXPECT_EQ(h, 5);
    wh_image_free(&img);
    wh_image_free(&back);
}

TEST_F(ImageTest, SaveRoundsAndClamps)
{
    wh_image img;
    ASSERT_EQ(wh_image_alloc(&img, 4, 1, 1, &ctx), WH_OK);
    // 0.5*255 = 127.5 -> 128 (rounded, not truncated); below 0 and above 1 clamp.
    const float v[4] = {0.5f, -0.3f, 1.7f, 10.f / 255.f};
    for (int i = 0; i < 4; i++) img.data[i] = v[i];
    const std::string p = path("g.png");
    ASSERT_EQ(wh_image_save_png(p.c_str(), &img, &ctx), WH_OK) << ctx.msg;
    wh_image back;
    ASSERT_EQ(wh_image_load(p.c_str(), &back, &ctx), WH_OK) << ctx.msg;
    const float want[4] = {128 / 255.f, 0.f, 1.f, 10 / 255.f};
    for (int i = 0; i < 4; i++) EXPECT_EQ(back.data[i], want[i]) << i;
    wh_image_free(&img);
    wh_image_free(&back);
}

TEST_F(ImageTest, JpegRoundTripWithinTolerance)
{
    // A smooth image: JPEG at quality 95 keeps it to a few levels.
    const int W = 64, H = 48;
    wh_image img;
    ASSERT_EQ(wh_image_alloc(&img, W, H, 3, &ctx), WH_OK);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            img.data[wh_image_index(&img, x, y, 0)] = 0.1f + 0.8f * x / (W - 1);
            img.data[wh_image_index(&img, x, y, 1)] = 0.2f + 0.6f * y / (H - 1);
            img.data[wh_image_index(&img, x, y, 2)] = 0.5f;
        }
    const std::string p = path("a.jpg");
    ASSERT_EQ(wh_image_save_jpeg(p.c_str(), &img, 95, &ctx), WH_OK) << ctx.msg;
    const auto bytes = read_bytes(p);
    ASSERT_GE(bytes.size(), 3u);
    EXPECT_EQ(bytes[0], 0xFF);
    EXPECT_EQ(bytes[1], 0xD8);
    wh_image back;
    ASSERT_EQ(wh_image_load(p.c_str(), &back, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(back.w, W);
    ASSERT_EQ(back.h, H);
    ASSERT_EQ(back.c, 3);
    double max_err = 0, sum_err = 0;
    const size_t n = static_cast<size_t>(W) * H * 3;
    for (size_t i = 0; i < n; i++) {
        const double e = std::fabs(back.data[i] - img.data[i]);
        max_err = std::max(max_err, e);
        sum_err += e;
    }
    EXPECT_LT(max_err, 0.04);
    EXPECT_LT(sum_err / n, 0.01);
    int w = 0, h = 0;
    ASSERT_EQ(wh_image_read_size(p.c_str(), &w, &h, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(w, W);
    EXPECT_EQ(h, H);
    wh_image_free(&img);
    wh_image_free(&back);
}

TEST_F(ImageTest, GrayImagesBecomeRgb)
{
    // A 1-channel image is saved as a gray PNG (colour type 0) and as a
    // gray JPEG; both load as 3 equal channels.
    wh_image img;
    ASSERT_EQ(wh_image_alloc(&img, 5, 3, 1, &ctx), WH_OK);
    for (int i = 0; i < 15; i++) img.data[i] = (i * 17) / 255.f;
    const std::string p = path("gray.png"), j = path("gray.jpg");
    ASSERT_EQ(wh_image_save_png(p.c_str(), &img, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(read_bytes(p)[25], 0); // IHDR colour type: gray
    wh_image back;
    ASSERT_EQ(wh_image_load(p.c_str(), &back, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(back.c, 3);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 15; i++) EXPECT_EQ(back.data[k * 15 + i], (i * 17) / 255.f) << k << "," << i;
    wh_image_free(&back);

    ASSERT_EQ(wh_image_save_jpeg(j.c_str(), &img, 100, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_image_load(j.c_str(), &back, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(back.c, 3);
    for (int i = 0; i < 15; i++) {
        EXPECT_EQ(back.data[i], back.data[15 + i]);
        EXPECT_EQ(back.data[i], back.data[30 + i]);
        EXPECT_NEAR(back.data[i], img.data[i], 0.03) << i;
    }
    wh_image_free(&img);
    wh_image_free(&back);
}

// Writes a PNG with libpng's simplified API (format: PNG_FORMAT_*).
void write_png_simple(const std::string &p, int w, int h, uint32_t format, const void *pixels,
                      const void *colormap = nullptr, int n_colors = 0)
{
    png_image im{};
    im.version = PNG_IMAGE_VERSION;
    im.width = static_cast<png_uint_32>(w);
    im.height = static_cast<png_uint_32>(h);
    im.format = format;
    im.colormap_entries = static_cast<png_uint_32>(n_colors);
    ASSERT_TRUE(png_image_write_to_file(&im, p.c_str(), 0, pixels, 0, colormap)) << im.message;
}

TEST_F(ImageTest, RgbaPngDropsAlpha)
{
    // Colours with alpha 0, 128 and 255: the RGB values come back unchanged.
    const unsigned char px[3 * 4] = {200, 10, 30, 0, 40, 250, 60, 128, 0, 128, 255, 255};
    const std::string p = path("rgba.png");
    write_png_simple(p, 3, 1, PNG_FORMAT_RGBA, px);
    ASSERT_EQ(read_bytes(p)[25], 6); // colour type RGBA
    wh_image back;
    ASSERT_EQ(wh_image_load(p.c_str(), &back, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(back.c, 3);
    ASSERT_EQ(back.w, 3);
    for (int x = 0; x < 3; x++)
        for (int k = 0; k < 3; k++) EXPECT_EQ(back.data[wh_image_index(&back, x, 0, k)], px[x * 4 + k] / 255.f);
    wh_image_free(&back);
}

TEST_F(ImageTest, PalettePngExpands)
{
    const unsigned char cmap[3 * 3] = {255, 0, 0, 0, 128, 0, 7, 8, 9};
    const unsigned char idx[4] = {2, 0, 1, 2};
    const std::string p = path("pal.png");
    write_png_simple(p, 2, 2, PNG_FORMAT_RGB_COLORMAP, idx, cmap, 3);
    ASSERT_EQ(read_bytes(p)[25], 3); // colour type palette
    wh_image back;
    ASSERT_EQ(wh_image_load(p.c_str(), &back, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(back.c, 3);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++) EXPECT_EQ(back.data[k * 4 + i], cmap[idx[i] * 3 + k] / 255.f);
    wh_image_free(&back);
}

// A noisy image compresses badly, so a cut at 60% lands inside the pixel data.
void noisy(wh_image *img, int w, int h, wh_ctx *ctx)
{
    ASSERT_EQ(wh_image_alloc(img, w, h, 3, ctx), WH_OK);
    uint32_t s = 12345;
    for (size_t i = 0; i < static_cast<size_t>(w) * h * 3; i++) {
        s = s * 1664525u + 1013904223u;
        img->data[i] = (s >> 24) / 255.f;
    }
}

TEST_F(ImageTest, TruncatedJpegIsAnErrorNamingTheFile)
{
    wh_image img;
    noisy(&img, 64, 64, &ctx);
    const std::string full = path("full.jpg");
    ASSERT_EQ(wh_image_save_jpeg(full.c_str(), &img, 90, &ctx), WH_OK) << ctx.msg;
    wh_image_free(&img);
    auto bytes = read_bytes(full);
    ASSERT_GT(bytes.size(), 2000u);
    for (size_t cut : {bytes.size() * 6 / 10, bytes.size() - 200, size_t(100), size_t(3)}) {
        const std::string p = path("cut" + std::to_string(cut) + ".jpg");
        write_bytes(p, std::vector<unsigned char>(bytes.begin(), bytes.begin() + static_cast<long>(cut)));
        wh_ctx c;
        wh_ctx_init(&c);
        wh_image out;
        EXPECT_EQ(wh_image_load(p.c_str(), &out, &c), WH_ERR_IO) << "cut at " << cut;
        EXPECT_NE(std::string(c.msg).find(p), std::string::npos) << c.msg;
        EXPECT_EQ(out.data, nullptr);
    }
    // The complete file still loads, without warnings.
    ASSERT_EQ(wh_image_load(full.c_str(), &img, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(ctx.n_warn_total, 0);
    wh_image wanted = img;
    // Without only its 2-byte end marker the pixels are all there: the same
    // image, and a warning naming the file.
    const std::string noeoi = path("noeoi.jpg");
    write_bytes(noeoi, std::vector<unsigned char>(bytes.begin(), bytes.end() - 2));
    wh_image out;
    ASSERT_EQ(wh_image_load(noeoi.c_str(), &out, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(ctx.n_warn_total, 1);
    EXPECT_NE(std::string(ctx.warn[0]).find(noeoi), std::string::npos) << ctx.warn[0];
    for (size_t i = 0; i < 64u * 64 * 3; i++) ASSERT_EQ(out.data[i], wanted.data[i]) << i;
    wh_image_free(&out);
    wh_image_free(&img);
}

TEST_F(ImageTest, TruncatedOrCorruptPngIsAnErrorNamingTheFile)
{
    wh_image img;
    noisy(&img, 64, 64, &ctx);
    const std::string full = path("full.png");
    ASSERT_EQ(wh_image_save_png(full.c_str(), &img, &ctx), WH_OK) << ctx.msg;
    wh_image_free(&img);
    auto bytes = read_bytes(full);
    ASSERT_GT(bytes.size(), 10000u);
    for (size_t cut : {bytes.size() * 6 / 10, size_t(20), size_t(40), bytes.size() - 4}) {
        const std::string p = path("cut" + std::to_string(cut) + ".png");
        write_bytes(p, std::vector<unsigned char>(bytes.begin(), bytes.begin() + static_cast<long>(cut)));
        wh_ctx c;
        wh_ctx_init(&c);
        wh_image out;
        EXPECT_EQ(wh_image_load(p.c_str(), &out, &c), WH_ERR_IO) << "cut at " << cut;
        EXPECT_NE(std::string(c.msg).find(p), std::string::npos) << c.msg;
    }
    // A flipped byte in the pixel data breaks the IDAT CRC.
    auto bad = bytes;
    bad[bad.size() / 2] ^= 0x55;
    const std::string p = path("flip.png");
    write_bytes(p, bad);
    wh_image out;
    EXPECT_EQ(wh_image_load(p.c_str(), &out, &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find(p), std::string::npos) << ctx.msg;
}

TEST_F(ImageTest, HugeHeaderIsRefusedBeforeDecoding)
{
    // 100000 x 100000 would be 120 GB of floats: refused from the header.
    const std::string p = path("huge.png");
    write_bytes(p, png_header_only(100000, 100000));
    wh_image out;
    EXPECT_EQ(wh_image_load(p.c_str(), &out, &ctx), WH_ERR_IO);
    const std::string m = ctx.msg;
    EXPECT_NE(m.find(p), std::string::npos) << m;
    EXPECT_NE(m.find("100000x100000"), std::string::npos) << m;
    EXPECT_EQ(out.data, nullptr);
    int w = -1, h = -1;
    EXPECT_EQ(wh_image_read_size(p.c_str(), &w, &h, &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find("100000x100000"), std::string::npos) << ctx.msg;

    // The limits exactly: one side over 16384, the pixel count over 64M, zero.
    const uint32_t bad[][2] = {{16385, 1}, {1, 16385}, {16384, 4097}, {0, 10}};
    for (const auto &s : bad) {
        write_bytes(p, png_header_only(s[0], s[1]));
        wh_ctx c;
        wh_ctx_init(&c);
        EXPECT_EQ(wh_image_load(p.c_str(), &out, &c), WH_ERR_IO) << s[0] << "x" << s[1];
        const std::string want = std::to_string(s[0]) + "x" + std::to_string(s[1]);
        EXPECT_NE(std::string(c.msg).find(want), std::string::npos) << c.msg;
    }
    // 16384 x 4096 (= 64M) passes the guard: read_size says so from the header.
    write_bytes(p, png_header_only(16384, 4096));
    ASSERT_EQ(wh_image_read_size(p.c_str(), &w, &h, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(w, 16384);
    EXPECT_EQ(h, 4096);
}

// Offset of the SOF0 marker's payload (after FF C0 and the 2-byte length):
// precision (1 byte), height (2, big-endian), width (2), components.
size_t sof0_payload(const std::vector<unsigned char> &b)
{
    for (size_t i = 2; i + 9 < b.size(); i++)
        if (b[i] == 0xFF && b[i + 1] == 0xC0) return i + 4;
    return 0;
}

TEST_F(ImageTest, JpegHeaderSizeAndCorruptHeader)
{
    wh_image img;
    ASSERT_EQ(wh_image_alloc(&img, 16, 8, 3, &ctx), WH_OK);
    const std::string ok = path("ok.jpg");
    ASSERT_EQ(wh_image_save_jpeg(ok.c_str(), &img, 90, &ctx), WH_OK);
    wh_image_free(&img);
    const auto bytes = read_bytes(ok);
    const size_t sof = sof0_payload(bytes);
    ASSERT_GT(sof, 0u);
    ASSERT_EQ(bytes[sof + 1] * 256 + bytes[sof + 2], 8);  // height
    ASSERT_EQ(bytes[sof + 3] * 256 + bytes[sof + 4], 16); // width

    // The frame header claims 20000 x 30000 (w x h): refused by the guard.
    auto big = bytes;
    big[sof + 1] = 30000 >> 8;
    big[sof + 2] = 30000 & 255;
    big[sof + 3] = 20000 >> 8;
    big[sof + 4] = 20000 & 255;
    const std::string p = path("big.jpg");
    write_bytes(p, big);
    wh_image out;
    EXPECT_EQ(wh_image_load(p.c_str(), &out, &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find(p + ": image size 20000x30000"), std::string::npos) << ctx.msg;
    int w, h;
    EXPECT_EQ(wh_image_read_size(p.c_str(), &w, &h, &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find("20000x30000"), std::string::npos) << ctx.msg;

    // A 7-bit sample precision is not JPEG baseline: libjpeg's error, named.
    auto bad = bytes;
    bad[sof] = 7;
    const std::string q = path("bad.jpg");
    write_bytes(q, bad);
    EXPECT_EQ(wh_image_load(q.c_str(), &out, &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find(q), std::string::npos) << ctx.msg;
    EXPECT_NE(std::string(ctx.msg).find("precision"), std::string::npos) << ctx.msg;
}

TEST_F(ImageTest, NonImageAndMissingFiles)
{
    const std::string p = path("notes.png"); // the name says PNG, the bytes do not
    write_bytes(p, {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'});
    wh_image out;
    EXPECT_EQ(wh_image_load(p.c_str(), &out, &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find(p), std::string::npos) << ctx.msg;
    EXPECT_NE(std::string(ctx.msg).find("not a JPEG or PNG"), std::string::npos) << ctx.msg;
    int w, h;
    EXPECT_EQ(wh_image_read_size(p.c_str(), &w, &h, &ctx), WH_ERR_IO);

    write_bytes(p, {});
    EXPECT_EQ(wh_image_load(p.c_str(), &out, &ctx), WH_ERR_IO);

    const std::string missing = path("missing.jpg");
    EXPECT_EQ(wh_image_load(missing.c_str(), &out, &ctx), WH_ERR_IO);
    EXPECT_NE(std::string(ctx.msg).find(missing), std::string::npos) << ctx.msg;
}

TEST_F(ImageTest, FormatIsSniffedNotTakenFromTheName)
{
    // A PNG named .jpg and a JPEG named .png both load.
    wh_image img;
    ASSERT_EQ(wh_image_alloc(&img, 3, 2, 3, &ctx), WH_OK);
    const std::string a = path("really_png.jpg"), b = path("really_jpeg.png");
    ASSERT_EQ(wh_image_save_png(a.c_str(), &img, &ctx), WH_OK);
    ASSERT_EQ(wh_image_save_jpeg(b.c_str(), &img, 90, &ctx), WH_OK);
    wh_image out;
    ASSERT_EQ(wh_image_load(a.c_str(), &out, &ctx), WH_OK) << ctx.msg;
    wh_image_free(&out);
    ASSERT_EQ(wh_image_load(b.c_str(), &out, &ctx), WH_OK) << ctx.msg;
    wh_image_free(&out);
    wh_image_free(&img);
}

TEST_F(ImageTest, SaveIsAtomicAndLeavesNoTemporaryFiles)
{
    wh_image img;
    ASSERT_EQ(wh_image_alloc(&img, 4, 4, 3, &ctx), WH_OK);
    const std::string p = path("x.png");
    write_bytes(p, {'o', 'l', 'd'});
    ASSERT_EQ(wh_image_save_png(p.c_str(), &img, &ctx), WH_OK);
    ASSERT_EQ(wh_image_save_jpeg(path("y.jpg").c_str(), &img, 80, &ctx), WH_OK);
    EXPECT_EQ(read_bytes(p)[0], 0x89); // replaced by the PNG
    int n = 0;
    for (const auto &e : fs::directory_iterator(dir)) {
        (void)e;
        n++;
    }
    EXPECT_EQ(n, 2); // x.png, y.jpg, no *.tmp*
    // Bad input writes nothing.
    wh_image two = img;
    two.c = 2;
    EXPECT_EQ(wh_image_save_png(path("z.png").c_str(), &two, &ctx), WH_ERR_ARG);
    EXPECT_EQ(wh_image_save_jpeg(path("z.jpg").c_str(), &img, 0, &ctx), WH_ERR_ARG);
    EXPECT_FALSE(fs::exists(path("z.png")));
    EXPECT_FALSE(fs::exists(path("z.jpg")));
    wh_image_free(&img);
}

TEST_F(ImageTest, ResizeBilinearByHand)
{
    // Source 3x2, one channel:   0  2  8
    //                            4 10  1
    // To 5x3: x_src = x*0.5, y_src = y*0.5.
    // row 0:  0, 1, 2, 5, 8
    // row 2:  4, 7, 10, 5.5, 1
    // row 1:  mean of rows 0 and 2 = 2, 4, 6, 5.25, 4.5
    wh_image src;
    ASSERT_EQ(wh_image_alloc(&src, 3, 2, 2, &ctx), WH_OK);
    const float s[6] = {0, 2, 8, 4, 10, 1};
    for (int i = 0; i < 6; i++) {
        src.data[i] = s[i];
        src.data[6 + i] = 2 * s[i] + 1; // channel 1: an affine copy, resized independently
    }
    wh_image dst;
    ASSERT_EQ(wh_image_resize(&src, 5, 3, &dst, &ctx), WH_OK);
    ASSERT_EQ(dst.w, 5);
    ASSERT_EQ(dst.h, 3);
    ASSERT_EQ(dst.c, 2);
    const float want[15] = {0, 1, 2, 5, 8, 2, 4, 6, 5.25f, 4.5f, 4, 7, 10, 5.5f, 1};
    for (int i = 0; i < 15; i++) {
        EXPECT_NEAR(dst.data[i], want[i], 1e-5) << i;
        EXPECT_NEAR(dst.data[15 + i], 2 * want[i] + 1, 1e-5) << i;
    }
    wh_image_free(&dst);

    // Unequal weights: to 4x4, x_src = 0, 2/3, 4/3, 2 and y_src = 0, 1/3, 2/3, 1.
    // row 0: 0, 2*2/3 = 4/3, 2/3*2 + 1/3*8 = 4, 8
    // row 3: 4, 1/3*4 + 2/3*10 = 8, 2/3*10 + 1/3*1 = 7, 1
    // row 1 = 2/3 row 0 + 1/3 row 3: 4/3, 32/9, 5, 17/3
    // row 2 = 1/3 row 0 + 2/3 row 3: 8/3, 52/9, 6, 10/3
    ASSERT_EQ(wh_image_resize(&src, 4, 4, &dst, &ctx), WH_OK);
    const float want4[16] = {0,         4.f / 3,    4, 8,          4.f / 3, 32.f / 9, 5, 17.f / 3,
                             8.f / 3,   52.f / 9,   6, 10.f / 3,   4,       8,        7, 1};
    for (int i = 0; i < 16; i++) EXPECT_NEAR(dst.data[i], want4[i], 1e-5) << i;
    wh_image_free(&dst);

    // Down: 4x1 -> 3x1, x_src = 0, 1.5, 3: a, (b+c)/2, d.
    wh_image row;
    ASSERT_EQ(wh_image_alloc(&row, 4, 1, 1, &ctx), WH_OK);
    const float r[4] = {1, 3, 7, 20};
    for (int i = 0; i < 4; i++) row.data[i] = r[i];
    ASSERT_EQ(wh_image_resize(&row, 3, 1, &dst, &ctx), WH_OK);
    EXPECT_NEAR(dst.data[0], 1, 1e-6);
    EXPECT_NEAR(dst.data[1], 5, 1e-6);
    EXPECT_NEAR(dst.data[2], 20, 1e-6);
    wh_image_free(&dst);
    // To one column: darknet takes column 0.
    ASSERT_EQ(wh_image_resize(&row, 1, 1, &dst, &ctx), WH_OK);
    EXPECT_EQ(dst.data[0], 1);
    wh_image_free(&dst);
    wh_image_free(&row);
    wh_image_free(&src);
}

void fill_const(wh_image *img, const float rgb[3])
{
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < img->w * img->h; i++) img->data[k * img->w * img->h + i] = rgb[k];
}

TEST_F(ImageTest, LetterboxGeometryByHand)
{
    // 200x100 into 416x416: 416/200 = 2.08 < 416/100, so new 416 x (100*416/200 = 208),
    // dx = 0, dy = (416-208)/2 = 104.
    const float col[3] = {0.2f, 0.7f, 0.9f};
    wh_image src, dst;
    ASSERT_EQ(wh_image_alloc(&src, 200, 100, 3, &ctx), WH_OK);
    fill_const(&src, col);
    float scale = 0;
    int dx = -1, dy = -1;
    ASSERT_EQ(wh_image_letterbox(&src, 416, 416, &dst, &scale, &dx, &dy, &ctx), WH_OK);
    EXPECT_FLOAT_EQ(scale, 2.08f);
    EXPECT_EQ(dx, 0);
    EXPECT_EQ(dy, 104);
    ASSERT_EQ(dst.w, 416);
    ASSERT_EQ(dst.h, 416);
    for (int k = 0; k < 3; k++)
        for (int y : {0, 103, 104, 200, 311, 312, 415})
            for (int x : {0, 207, 415}) {
                const bool inside = y >= 104 && y < 312;
                EXPECT_NEAR(dst.data[wh_image_index(&dst, x, y, k)], inside ? col[k] : 0.5f, 1e-6)
                    << "x=" << x << " y=" << y << " k=" << k;
            }
    wh_image_free(&dst);
    wh_image_free(&src);

    // Portrait 100x200 into 416x320: 416/100 > 320/200 = 1.6, new (100*320/200 = 160) x 320,
    // dx = (416-160)/2 = 128, dy = 0.
    ASSERT_EQ(wh_image_alloc(&src, 100, 200, 3, &ctx), WH_OK);
    fill_const(&src, col);
    ASSERT_EQ(wh_image_letterbox(&src, 416, 320, &dst, &scale, &dx, &dy, &ctx), WH_OK);
    EXPECT_FLOAT_EQ(scale, 1.6f);
    EXPECT_EQ(dx, 128);
    EXPECT_EQ(dy, 0);
    EXPECT_NEAR(dst.data[wh_image_index(&dst, 127, 10, 0)], 0.5f, 1e-6);
    EXPECT_NEAR(dst.data[wh_image_index(&dst, 128, 10, 0)], col[0], 1e-6);
    EXPECT_NEAR(dst.data[wh_image_index(&dst, 287, 10, 0)], col[0], 1e-6);
    EXPECT_NEAR(dst.data[wh_image_index(&dst, 288, 10, 0)], 0.5f, 1e-6);
    wh_image_free(&dst);
    wh_image_free(&src);

    // Integer rounding as darknet: 3x1 into 4x4 gives 4 x (1*4/3 = 1), dy = (4-1)/2 = 1.
    ASSERT_EQ(wh_image_alloc(&src, 3, 1, 3, &ctx), WH_OK);
    fill_const(&src, col);
    ASSERT_EQ(wh_image_letterbox(&src, 4, 4, &dst, &scale, &dx, &dy, &ctx), WH_OK);
    EXPECT_EQ(dx, 0);
    EXPECT_EQ(dy, 1);
    EXPECT_NEAR(dst.data[wh_image_index(&dst, 2, 0, 1)], 0.5f, 1e-6);
    EXPECT_NEAR(dst.data[wh_image_index(&dst, 2, 1, 1)], col[1], 1e-6);
    EXPECT_NEAR(dst.data[wh_image_index(&dst, 2, 2, 1)], 0.5f, 1e-6);
    wh_image_free(&dst);
    wh_image_free(&src);
}

int count_colour(const wh_image *img, const float rgb[3])
{
    int n = 0;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            bool same = true;
            for (int k = 0; k < 3; k++) same = same && img->data[wh_image_index(img, x, y, k)] == rgb[k];
            n += same;
        }
    return n;
}

TEST_F(ImageTest, FillRectAndDrawBoxCountPixels)
{
    const float red[3] = {1, 0, 0};
    wh_image img;
    ASSERT_EQ(wh_image_alloc(&img, 10, 10, 3, &ctx), WH_OK);
    // x -3..2, y 8..20 clipped to x 0..2, y 8..9: 3*2 = 6 pixels.
    wh_image_fill_rect(&img, -3, 8, 2, 20, red);
    EXPECT_EQ(count_colour(&img, red), 6);
    EXPECT_EQ(img.data[wh_image_index(&img, 2, 9, 0)], 1.f);
    EXPECT_EQ(img.data[wh_image_index(&img, 3, 9, 0)], 0.f);
    wh_image_free(&img);

    // Box 1..8 x 1..8, 2 px thick, inwards: rings of 8x8 (28 px) and 6x6 (20 px).
    ASSERT_EQ(wh_image_alloc(&img, 10, 10, 3, &ctx), WH_OK);
    wh_image_draw_box(&img, 1, 1, 8, 8, 2, red);
    EXPECT_EQ(count_colour(&img, red), 48);
    EXPECT_EQ(img.data[wh_image_index(&img, 2, 2, 0)], 1.f); // second ring
    EXPECT_EQ(img.data[wh_image_index(&img, 3, 3, 0)], 0.f); // inside stays
    EXPECT_EQ(img.data[wh_image_index(&img, 0, 0, 0)], 0.f); // outside stays
    // A box half off the image is clipped, not wrapped.
    wh_image_draw_box(&img, 5, -4, 14, 3, 1, red);
    EXPECT_EQ(img.data[wh_image_index(&img, 9, 3, 0)], 1.f);
    EXPECT_EQ(img.data[wh_image_index(&img, 9, 4, 0)], 0.f);
    wh_image_free(&img);
}

} // namespace

TEST(ImageColour, HsvToRgbHandValues)
{
    struct {
        float h, s, v, r, g, b;
    } cases[] = {{0.f, 1.f, 1.f, 1.f, 0.f, 0.f},          {1.f / 3, 1.f, 1.f, 0.f, 1.f, 0.f},
                 {2.f / 3, 1.f, 0.5f, 0.f, 0.f, 0.5f},    {0.f, 0.f, 0.7f, 0.7f, 0.7f, 0.7f},
                 {1.f / 12, 1.f, 1.f, 1.f, 0.5f, 0.f},    {1.25f, 0.5f, 1.f, 0.75f, 1.f, 0.5f}};
    for (const auto &c : cases) {
        float rgb[3];
        wh_hsv_to_rgb(c.h, c.s, c.v, rgb);
        EXPECT_NEAR(rgb[0], c.r, 1e-6) << c.h;
        EXPECT_NEAR(rgb[1], c.g, 1e-6) << c.h;
        EXPECT_NEAR(rgb[2], c.b, 1e-6) << c.h;
    }
}
