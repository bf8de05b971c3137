// Tests of darknet .weights reading and writing (framework/io/darknet_weights.c).
//
// The byte layout is checked against a file written out by hand here; sizes
// are hand-counted from the cfgs (noted next to each). Round trips compare
// bit patterns.
#include "test_util.h"
#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "framework/core/cfg.h"
#include "framework/io/checkpoint.h"
#include "framework/io/darknet_weights.h"
#include "framework/core/net.h"

namespace {

using wht::contains;

using wht::TempDir;

using wht::read_bytes;
using wht::write_bytes;

struct Net {
    wh_ctx ctx;
    wh_net *net = nullptr;
    wh_status st;
    explicit Net(const std::string &text)
    {
        wh_ctx_init(&ctx);
        wh_cfg *cfg = nullptr;
        wh_net_opts o = {};
        o.batch = 1;
        st = wh_cfg_parse_string(text.c_str(), "t.cfg", &cfg, &ctx);
        if (st == WH_OK) st = wh_net_create(cfg, &o, &net, &ctx);
        wh_cfg_free(cfg);
    }
    ~Net() { wh_net_destroy(net); }
    float *param(int layer, const char *name)
    {
        wh_layer *l = &net->layers[layer];
        for (int k = 0; k < l->n_params; k++)
            if (!std::strcmp(l->params[k].name, name)) return l->params[k].data;
        return nullptr;
    }
};

// One 1x1 convolution with BN, 2 input channels, 1 filter: every parameter
// has 1 value except the weights (1, 2, 1, 1).
const std::string kTiny = "[net]\nwidth=2\nheight=2\nchannels=2\n"
                          "[convolutional]\nbatch_normalize=1\nfilters=1\nsize=1\nstride=1\n"
                          "pad=0\nactivation=linear\n";

// conv BN 3->4 3x3 (4+4+4+4 + 4*3*3*3 = 124 floats), maxpool (none),
// conv 4->6 1x1 groups 2 no BN (6 + 6*2*1*1 = 18 floats): 142 floats.
const std::string kSmall = "[net]\nwidth=8\nheight=8\nchannels=3\n"
                           "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\n"
                           "activation=leaky\n"
                           "[maxpool]\nsize=2\nstride=2\n"
                           "[convolutional]\nfilters=6\nsize=1\nstride=1\ngroups=2\nactivation=linear\n";
const size_t kSmallBytes = 20 + 142 * 4;

void set_tiny(Net &n)
{
    *n.param(0, "biases") = 1.5f;
    *n.param(0, "scales") = 0.25f;
    *n.param(0, "rolling_mean") = -2.f;
    *n.param(0, "rolling_variance") = 3.f;
    n.param(0, "weights")[0] = 0.5f;
    n.param(0, "weights")[1] = -1.f;
}

// The tiny net's floats, little-endian, in darknet's order:
// biases 1.5, scales 0.25, rolling_mean -2, rolling_variance 3, weights 0.5 -1.
const std::vector<unsigned char> kTinyFloats = {
    0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x80, 0x3E, 0x00, 0x00, 0x00, 0xC0,
    0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x80, 0xBF};

void fill_params(wh_net *net, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (int i = 0; i < net->n_layers; i++)
        for (int k = 0; k < net->layers[i].n_params; k++) {
            wh_param *p = &net->layers[i].params[k];
            for (size_t j = 0; j < p->count; j++) {
                s = s * 1664525u + 1013904223u;
                float v = static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
                if (!std::strcmp(p->name, "rolling_variance")) v += 1.0f;
                p->data[j] = v;
            }
        }
}

bool same_params(const wh_net *a, const wh_net *b)
{
    for (int i = 0; i < a->n_layers; i++)
        for (int k = 0; k < a->layers[i].n_params; k++)
            if (std::memcmp(a->layers[i].params[k].data, b->layers[i].params[k].data,
                            a->layers[i].params[k].count * sizeof(float)) != 0)
                return false;
    return true;
}

TEST(DarknetWeights, HandBuiltFileByteByByte)
{
    TempDir dir;
    Net n(kTiny);
    ASSERT_EQ(n.st, WH_OK) << n.ctx.msg;
    set_tiny(n);
    EXPECT_EQ(wh_darknet_weights_size(n.net), 20u + 6 * 4);
    const std::string path = dir / "tiny.weights";
    ASSERT_EQ(wh_darknet_weights_save(n.net, path.c_str(), 0x0000000105060708ull, &n.ctx), WH_OK)
        << n.ctx.msg;
    std::vector<unsigned char> want = {
        0x00, 0x00, 0x00, 0x00,                         // major 0
        0x02, 0x00, 0x00, 0x00,                         // minor 2
        0x05, 0x00, 0x00, 0x00,                         // revision 5
        0x08, 0x07, 0x06, 0x05, 0x01, 0x00, 0x00, 0x00, // seen, uint64
    };
    want.insert(want.end(), kTinyFloats.begin(), kTinyFloats.end());
    EXPECT_EQ(read_bytes(path), want);

    // and back
    Net m(kTiny);
    uint64_t seen = 0;
    ASSERT_EQ(wh_darknet_weights_load(m.net, path.c_str(), &seen, &m.ctx), WH_OK) << m.ctx.msg;
    EXPECT_EQ(seen, 0x0000000105060708ull);
    EXPECT_EQ(*m.param(0, "rolling_mean"), -2.f);
    EXPECT_EQ(m.param(0, "weights")[1], -1.f);
    EXPECT_TRUE(same_params(n.net, m.net));
}

TEST(DarknetWeights, OldHeaderHas32BitSeen)
{
    TempDir dir;
    // version 0.1: seen is a uint32 (16-byte header)
    std::vector<unsigned char> v01 = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x2A, 0x01, 0x00, 0x80};
    v01.insert(v01.end(), kTinyFloats.begin(), kTinyFloats.end());
    const std::string p01 = dir / "v01.weights";
    write_bytes(p01, v01);
    Net n(kTiny), want(kTiny);
    ASSERT_EQ(n.st, WH_OK) << n.ctx.msg;
    set_tiny(want);
    uint64_t seen = 0;
    ASSERT_EQ(wh_darknet_weights_load(n.net, p01.c_str(), &seen, &n.ctx), WH_OK) << n.ctx.msg;
    EXPECT_EQ(seen, 0x8000012Aull); // unsigned: the top bit is not a sign
    EXPECT_TRUE(same_params(n.net, want.net));

    // version 1.0: major*10 + minor = 10 >= 2, so seen is a uint64 again
    std::vector<unsigned char> v10 = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0};
    v10.insert(v10.end(), kTinyFloats.begin(), kTinyFloats.end());
    const std::string p10 = dir / "v10.weights";
    write_bytes(p10, v10);
    Net m(kTiny);
    ASSERT_EQ(wh_darknet_weights_load(m.net, p10.c_str(), &seen, &m.ctx), WH_OK) << m.ctx.msg;
    EXPECT_EQ(seen, 7u);
    EXPECT_TRUE(same_params(m.net, want.net));
}

TEST(DarknetWeights, SaveLoadRoundTripIsBitIdentical)
{
    TempDir dir;
    Net a(kSmall), b(kSmall);
    ASSERT_EQ(a.st, WH_OK) << a.ctx.msg;
    fill_params(a.net, 1);
    fill_params(b.net, 2);
    ASSERT_FALSE(same_params(a.net, b.net));
    EXPECT_EQ(wh_darknet_weights_size(a.net), kSmallBytes);
    const std::string path = dir / "small.weights";
    ASSERT_EQ(wh_darknet_weights_save(a.net, path.c_str(), 123456789012ull, &a.ctx), WH_OK);
    EXPECT_EQ(read_bytes(path).size(), kSmallBytes);
    uint64_t seen = 0;
    ASSERT_EQ(wh_darknet_weights_load(b.net, path.c_str(), &seen, &b.ctx), WH_OK) << b.ctx.msg;
    EXPECT_EQ(seen, 123456789012ull);
    EXPECT_TRUE(same_params(a.net, b.net));
    // The grouped conv's weights follow layer 0's 124 floats: the 6 biases
    // at floats 124..129, then its 12 weights.
    const std::vector<unsigned char> bytes = read_bytes(path);
    float w0;
    std::memcpy(&w0, bytes.data() + 20 + (124 + 6) * 4, 4);
    EXPECT_EQ(w0, a.param(2, "weights")[0]);
}

TEST(DarknetWeights, ExportThenImportGivesIdenticalOutputs)
{
    TempDir dir;
    Net a(kSmall);
    ASSERT_EQ(a.st, WH_OK) << a.ctx.msg;
    fill_params(a.net, 9);
    const size_t n_in = wh_shape_count(a.net->in_shape);
    std::vector<float> x(n_in);
    for (size_t i = 0; i < n_in; i++) x[i] = std::cos(0.21f * static_cast<float>(i));
    std::memcpy(a.net->input, x.data(), n_in * sizeof(float));
    ASSERT_EQ(wh_net_forward(a.net, 0, &a.ctx), WH_OK) << a.ctx.msg;

    const std::string prefix = dir / "exported";
    ASSERT_EQ(wh_darknet_export(a.net, kSmall.c_str(), prefix.c_str(), 42, &a.ctx), WH_OK)
        << a.ctx.msg;
    const std::vector<unsigned char> cfg = read_bytes(prefix + ".cfg");
    EXPECT_EQ(std::string(cfg.begin(), cfg.end()), kSmall); // unchanged

    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *b = nullptr;
    wh_net_opts o = {};
    o.batch = 1;
    ASSERT_EQ(wh_net_load_cfg((prefix + ".cfg").c_str(), &o, &b, &ctx), WH_OK) << ctx.msg;
    uint64_t seen = 0;
    ASSERT_EQ(wh_darknet_weights_load(b, (prefix + ".weights").c_str(), &seen, &ctx), WH_OK)
        << ctx.msg;
    EXPECT_EQ(seen, 42u);
    std::memcpy(b->input, x.data(), n_in * sizeof(float));
    ASSERT_EQ(wh_net_forward(b, 0, &ctx), WH_OK) << ctx.msg;
    for (int i = 0; i < a.net->n_layers; i++) {
        const wh_layer *la = &a.net->layers[i], *lb = &b->layers[i];
        const size_t n = wh_layout_count(la->out_shape, la->out_layout);
        EXPECT_EQ(std::memcmp(la->out, lb->out, n * sizeof(float)), 0) << "layer " << i;
    }
    // not vacuous: the BN layer's output is not all zeros
    float mx = 0;
    for (size_t i = 0; i < wh_shape_count(a.net->layers[0].out_shape); i++)
        mx = std::max(mx, std::fabs(a.net->layers[0].out[i]));
    EXPECT_GT(mx, 0.01f);
    wh_net_destroy(b);
}

TEST(DarknetWeights, DarknetToCheckpointAndBackIsByteIdentical)
{
    // What import-darknet and export-darknet do, through the library.
    TempDir dir;
    Net a(kSmall), b(kSmall);
    fill_params(a.net, 5);
    const std::string orig = dir / "orig.weights", ck = dir / "ck.h5", back = dir / "back";
    ASSERT_EQ(wh_darknet_weights_save(a.net, orig.c_str(), 777, &a.ctx), WH_OK);
    uint64_t seen = 0;
    ASSERT_EQ(wh_darknet_weights_load(b.net, orig.c_str(), &seen, &b.ctx), WH_OK);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_writer *w = nullptr;
    ASSERT_EQ(wh_ckpt_create(ck.c_str(), &w, &ctx), WH_OK);
    ASSERT_EQ(wh_ckpt_put_net(w, b.net, kSmall.c_str(), &ctx), WH_OK);
    ASSERT_EQ(wh_ckpt_put_u64(w, "seen", &seen, nullptr, 0, &ctx), WH_OK);
    ASSERT_EQ(wh_ckpt_commit(w, &ctx), WH_OK) << ctx.msg;

    wh_ckpt_reader *r = nullptr;
    wh_net *c = nullptr;
    char *text = nullptr;
    uint64_t seen2 = 0;
    ASSERT_EQ(wh_ckpt_open(ck.c_str(), &r, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_read_net(r, nullptr, &c, &text, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_get_u64(r, "seen", &seen2, 1, &ctx), WH_OK);
    wh_ckpt_close(r);
    ASSERT_EQ(wh_darknet_export(c, text, back.c_str(), seen2, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(read_bytes(back + ".weights"), read_bytes(orig));
    EXPECT_EQ(std::string(text), kSmall);
    free(text);
    wh_net_destroy(c);
}

TEST(DarknetWeights, OneFloatShortNamesTheLayer)
{
    TempDir dir;
    Net a(kSmall), b(kSmall);
    fill_params(a.net, 3);
    fill_params(b.net, 4);
    const std::string path = dir / "short.weights";
    ASSERT_EQ(wh_darknet_weights_save(a.net, path.c_str(), 0, &a.ctx), WH_OK);
    std::vector<unsigned char> bytes = read_bytes(path);
    bytes.resize(bytes.size() - 4);
    write_bytes(path, bytes);
    EXPECT_EQ(wh_darknet_weights_load(b.net, path.c_str(), nullptr, &b.ctx), WH_ERR_SHAPE);
    const std::string m = b.ctx.msg;
    EXPECT_TRUE(contains(m, path)) << m;
    EXPECT_TRUE(contains(m, "584 bytes, but the cfg needs 588 (4 bytes short)")) << m;
    EXPECT_TRUE(contains(m, "layer 2 [convolutional] ('weights'")) << m;

    // Cut inside layer 0: header 20 + biases 16 + scales 16 = 52, then the
    // rolling_mean (bytes 52..67) is where a 60-byte file runs out.
    bytes.resize(60);
    write_bytes(path, bytes);
    Net c(kSmall);
    fill_params(c.net, 4);
    EXPECT_EQ(wh_darknet_weights_load(c.net, path.c_str(), nullptr, &c.ctx), WH_ERR_SHAPE);
    EXPECT_TRUE(contains(c.ctx.msg, "layer 0 [convolutional] ('rolling_mean'")) << c.ctx.msg;
    EXPECT_TRUE(same_params(b.net, c.net)); // both untouched by the failed loads
}

TEST(DarknetWeights, OneFloatTooLongStatesByteCounts)
{
    TempDir dir;
    Net a(kSmall), b(kSmall), untouched(kSmall);
    fill_params(a.net, 3);
    fill_params(b.net, 4);
    fill_params(untouched.net, 4);
    const std::string path = dir / "long.weights";
    ASSERT_EQ(wh_darknet_weights_save(a.net, path.c_str(), 0, &a.ctx), WH_OK);
    std::vector<unsigned char> bytes = read_bytes(path);
    bytes.insert(bytes.end(), {0, 0, 0x80, 0x3F});
    write_bytes(path, bytes);
    EXPECT_EQ(wh_darknet_weights_load(b.net, path.c_str(), nullptr, &b.ctx), WH_ERR_SHAPE);
    const std::string m = b.ctx.msg;
    EXPECT_TRUE(contains(m, path)) << m;
    EXPECT_TRUE(contains(m, "592 bytes, but the cfg needs 588")) << m;
    EXPECT_TRUE(contains(m, "4 bytes too many")) << m;
    EXPECT_TRUE(same_params(b.net, untouched.net));
}

TEST(DarknetWeights, TooShortForTheHeaderAndMissingFile)
{
    TempDir dir;
    Net n(kTiny);
    const std::string path = dir / "hdr.weights";
    write_bytes(path, {0, 0, 0, 0, 2, 0, 0, 0, 5, 0});
    EXPECT_EQ(wh_darknet_weights_load(n.net, path.c_str(), nullptr, &n.ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(n.ctx.msg, "10 bytes, too short for a darknet .weights header")) << n.ctx.msg;
    const std::string missing = dir / "none.weights";
    EXPECT_EQ(wh_darknet_weights_load(n.net, missing.c_str(), nullptr, &n.ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(n.ctx.msg, missing)) << n.ctx.msg;
}

} // namespace
