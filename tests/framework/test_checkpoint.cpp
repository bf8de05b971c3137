// Tests of the HDF5 checkpoint (framework/io/checkpoint.c).
//
// Round trips compare bit patterns (memcmp), not values with a tolerance.
// The checksum is recomputed here from the definition in checkpoint.h with
// HDF5 directly, so the documentation and the code cannot drift apart.
// Corruption tests find the bytes to damage by writing a recognisable
// pattern (0x5A...) and searching the file for it.
#include "test_util.h"
#include <gtest/gtest.h>

#include <dirent.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "framework/core/cfg.h"
#include "framework/io/checkpoint.h"
#include "framework/core/net.h"

namespace {

using wht::contains;

using wht::TempDir;

using wht::read_bytes;
using wht::write_bytes;

// conv 3x3 with BN (3 -> 4 channels), maxpool, grouped 1x1 conv (4 -> 6, groups 2)
std::string small_cfg(int filters0 = 4)
{
    return "[net]\nwidth=8\nheight=8\nchannels=3\nbatch=1\n"
           "[convolutional]\nbatch_normalize=1\nfilters=" +
           std::to_string(filters0) +
           "\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
           "[maxpool]\nsize=2\nstride=2\n"
           "[convolutional]\nfilters=6\nsize=1\nstride=1\ngroups=2\nactivation=linear\n";
}

struct Net {
    wh_ctx ctx;
    wh_net *net = nullptr;
    wh_status st;
    explicit Net(const std::string &text, int train = 0)
    {
        wh_ctx_init(&ctx);
        wh_cfg *cfg = nullptr;
        wh_net_opts o = {};
        o.batch = 1;
        o.train = train;
        st = wh_cfg_parse_string(text.c_str(), "small.cfg", &cfg, &ctx);
        if (st == WH_OK) st = wh_net_create(cfg, &o, &net, &ctx);
        wh_cfg_free(cfg);
    }
    ~Net() { wh_net_destroy(net); }
};

// Every parameter gets distinct pseudo-random values (rolling statistics
// included, which init_weights sets to 0 and 1).
void fill_params(wh_net *net, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (int i = 0; i < net->n_layers; i++)
        for (int k = 0; k < net->layers[i].n_params; k++) {
            wh_param *p = &net->layers[i].params[k];
            for (size_t j = 0; j < p->count; j++) {
                s = s * 1664525u + 1013904223u;
                float v = static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
                if (!std::strcmp(p->name, "rolling_variance")) v = v + 1.0f; // positive
                p->data[j] = v;
            }
        }
}

bool same_params(const wh_net *a, const wh_net *b)
{
    if (a->n_layers != b->n_layers) return false;
    for (int i = 0; i < a->n_layers; i++) {
        const wh_layer *la = &a->layers[i], *lb = &b->layers[i];
        if (la->n_params != lb->n_params) return false;
        for (int k = 0; k < la->n_params; k++) {
            if (la->params[k].count != lb->params[k].count) return false;
            if (std::memcmp(la->params[k].data, lb->params[k].data,
                            la->params[k].count * sizeof(float)) != 0)
                return false;
        }
    }
    return true;
}

wh_status write_net(const std::string &path, const wh_net *net, const std::string &cfg, wh_ctx *ctx)
{
    wh_ckpt_writer *w = nullptr;
    wh_status st = wh_ckpt_create(path.c_str(), &w, ctx);
    if (st != WH_OK) return st;
    st = wh_ckpt_put_net(w, net, cfg.c_str(), ctx);
    if (st != WH_OK) {
        wh_ckpt_abort(w);
        return st;
    }
    return wh_ckpt_commit(w, ctx);
}

// The checksum exactly as checkpoint.h documents it, with HDF5 directly.
herr_t collect(hid_t, const char *name, const H5O_info_t *info, void *user)
{
    if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string> *>(user)->push_back(name);
    return 0;
}

uint64_t documented_checksum(const std::string &path, uint64_t *stored)
{
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT_GE(f, 0);
    std::vector<std::string> names;
    H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, collect, &names, H5O_INFO_BASIC);
    std::sort(names.begin(), names.end()); // byte-wise for std::string
    uint64_t h = 0xcbf29ce484222325ull;
    auto mix = [&h](const unsigned char *p, size_t n) {
        for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    };
    for (const std::string &n : names) {
        hid_t d = H5Dopen2(f, n.c_str(), H5P_DEFAULT);
        hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
        std::vector<unsigned char> raw(static_cast<size_t>(H5Sget_simple_extent_npoints(sp)) *
                                       H5Tget_size(t));
        if (!raw.empty()) H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data());
        mix(reinterpret_cast<const unsigned char *>(n.c_str()), n.size() + 1);
        // numpy's dtype.str: every type we store is little-endian and wider than a byte
        std::string ty;
        if (H5Tget_class(t) == H5T_STRING) ty = "|S" + std::to_string(H5Tget_size(t));
        else if (H5Tget_class(t) == H5T_FLOAT) ty = "<f" + std::to_string(H5Tget_size(t));
        else
            ty = std::string(H5Tget_sign(t) == H5T_SGN_NONE ? "<u" : "<i") +
                 std::to_string(H5Tget_size(t));
        mix(reinterpret_cast<const unsigned char *>(ty.c_str()), ty.size() + 1);
        hsize_t dims[8];
        const int nd = H5Sget_simple_extent_dims(sp, dims, nullptr);
        std::vector<uint64_t> shape = {static_cast<uint64_t>(nd)};
        for (int i = 0; i < nd; i++) shape.push_back(dims[i]);
        for (uint64_t v : shape) { // little-endian uint64s
            unsigned char le[8];
            for (int b = 0; b < 8; b++) le[b] = static_cast<unsigned char>(v >> (8 * b));
            mix(le, 8);
        }
        mix(raw.data(), raw.size());
        H5Sclose(sp);
        H5Tclose(t);
        H5Dclose(d);
    }
    hid_t a = H5Aopen(f, "checksum", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_UINT64, stored);
    H5Aclose(a);
    H5Fclose(f);
    return h;
}

// ------------------------------------------------------------- the network

TEST(Checkpoint, NetRoundTripIsBitIdentical)
{
    TempDir dir;
    Net a(small_cfg()), b(small_cfg());
    ASSERT_EQ(a.st, WH_OK) << a.ctx.msg;
    ASSERT_EQ(b.st, WH_OK) << b.ctx.msg;
    fill_params(a.net, 1);
    fill_params(b.net, 2);
    ASSERT_FALSE(same_params(a.net, b.net));
    const std::string path = dir / "net.h5";
    ASSERT_EQ(write_net(path, a.net, small_cfg(), &a.ctx), WH_OK) << a.ctx.msg;

    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_reader *r = nullptr;
    ASSERT_EQ(wh_ckpt_open(path.c_str(), &r, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_load_net(r, b.net, &ctx), WH_OK) << ctx.msg;
    EXPECT_TRUE(same_params(a.net, b.net));

    // The layout of checkpoint.h: names (sorted) and shapes.
    const std::vector<std::string> want = {
        "cfg",
        "layers/000_convolutional/biases",
        "layers/000_convolutional/rolling_mean",
        "layers/000_convolutional/rolling_variance",
        "layers/000_convolutional/scales",
        "layers/000_convolutional/weights",
        "layers/002_convolutional/biases",
        "layers/002_convolutional/weights"};
    std::vector<std::string> have;
    for (int i = 0; i < wh_ckpt_count(r); i++) have.push_back(wh_ckpt_name(r, i));
    EXPECT_EQ(have, want);
    uint64_t dims[WH_CKPT_MAX_DIMS];
    int nd = 0;
    ASSERT_EQ(wh_ckpt_dims(r, "layers/000_convolutional/weights", dims, &nd, &ctx), WH_OK);
    ASSERT_EQ(nd, 4);
    EXPECT_EQ(std::vector<uint64_t>(dims, dims + 4), (std::vector<uint64_t>{4, 3, 3, 3}));
    ASSERT_EQ(wh_ckpt_dims(r, "layers/002_convolutional/weights", dims, &nd, &ctx), WH_OK);
    ASSERT_EQ(nd, 4); // (OC, IC/groups, K, K) = (6, 4/2, 1, 1)
    EXPECT_EQ(std::vector<uint64_t>(dims, dims + 4), (std::vector<uint64_t>{6, 2, 1, 1}));
    ASSERT_EQ(wh_ckpt_dims(r, "layers/000_convolutional/scales", dims, &nd, &ctx), WH_OK);
    ASSERT_EQ(nd, 1);
    EXPECT_EQ(dims[0], 4u);
    char *cfg = nullptr;
    ASSERT_EQ(wh_ckpt_get_str(r, "cfg", &cfg, &ctx), WH_OK);
    EXPECT_EQ(std::string(cfg), small_cfg());
    free(cfg);
    wh_ckpt_close(r);
}

TEST(Checkpoint, CheckpointAloneRebuildsTheNetwork)
{
    TempDir dir;
    Net a(small_cfg());
    ASSERT_EQ(a.st, WH_OK) << a.ctx.msg;
    fill_params(a.net, 7);
    const std::string path = dir / "alone.h5";
    ASSERT_EQ(write_net(path, a.net, small_cfg(), &a.ctx), WH_OK) << a.ctx.msg;

    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net *b = nullptr;
    char *text = nullptr;
    wh_net_opts o = {};
    o.batch = 1;
    ASSERT_EQ(wh_ckpt_build_net(path.c_str(), &o, &b, &text, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(std::string(text), small_cfg());
    EXPECT_TRUE(same_params(a.net, b));
    // Same parameters, same input: the same output, bit for bit.
    const size_t n_in = wh_shape_count(a.net->in_shape);
    for (size_t i = 0; i < n_in; i++) a.net->input[i] = b->input[i] = std::sin(0.37f * i);
    ASSERT_EQ(wh_net_forward(a.net, 0, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_net_forward(b, 0, &ctx), WH_OK) << ctx.msg;
    const wh_layer *la = &a.net->layers[a.net->n_layers - 1], *lb = &b->layers[b->n_layers - 1];
    const size_t n_out = wh_layout_count(la->out_shape, la->out_layout);
    EXPECT_EQ(std::memcmp(la->out, lb->out, n_out * sizeof(float)), 0);
    free(text);
    wh_net_destroy(b);
}

TEST(Checkpoint, OtherFiltersIsAShapeErrorNamingTheLayer)
{
    TempDir dir;
    Net a(small_cfg(4)), b(small_cfg(8));
    ASSERT_EQ(a.st, WH_OK) << a.ctx.msg;
    ASSERT_EQ(b.st, WH_OK) << b.ctx.msg;
    fill_params(a.net, 3);
    const std::string path = dir / "four.h5";
    ASSERT_EQ(write_net(path, a.net, small_cfg(4), &a.ctx), WH_OK) << a.ctx.msg;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_reader *r = nullptr;
    ASSERT_EQ(wh_ckpt_open(path.c_str(), &r, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(wh_ckpt_load_net(r, b.net, &ctx), WH_ERR_SHAPE);
    const std::string m = ctx.msg;
    EXPECT_TRUE(contains(m, "layer 0 [convolutional]")) << m;
    EXPECT_TRUE(contains(m, "'biases'")) << m; // the first parameter that differs
    EXPECT_TRUE(contains(m, "checkpoint has shape (4)")) << m;
    EXPECT_TRUE(contains(m, "the network (8)")) << m;
    EXPECT_TRUE(contains(m, path)) << m;
    wh_ckpt_close(r);
}

TEST(Checkpoint, DeeperCheckpointThanNetworkIsAnError)
{
    TempDir dir;
    Net a(small_cfg());
    // Only the first layer of small_cfg: the checkpoint's layer 2 has no home.
    Net b("[net]\nwidth=8\nheight=8\nchannels=3\nbatch=1\n"
          "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n");
    ASSERT_EQ(a.st, WH_OK) << a.ctx.msg;
    ASSERT_EQ(b.st, WH_OK) << b.ctx.msg;
    const std::string path = dir / "deep.h5";
    ASSERT_EQ(write_net(path, a.net, small_cfg(), &a.ctx), WH_OK) << a.ctx.msg;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_reader *r = nullptr;
    ASSERT_EQ(wh_ckpt_open(path.c_str(), &r, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(wh_ckpt_load_net(r, b.net, &ctx), WH_ERR_SHAPE);
    EXPECT_TRUE(contains(ctx.msg, "layers/002_convolutional/biases")) << ctx.msg;
    wh_ckpt_close(r);
}

TEST(Checkpoint, MissingParameterNamesDatasetAndLayer)
{
    TempDir dir;
    Net a(small_cfg());
    ASSERT_EQ(a.st, WH_OK) << a.ctx.msg;
    const std::string path = dir / "partial.h5";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_writer *w = nullptr;
    ASSERT_EQ(wh_ckpt_create(path.c_str(), &w, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_put_str(w, "cfg", small_cfg().c_str(), &ctx), WH_OK);
    // every parameter but layer 2's weights
    for (int i = 0; i < a.net->n_layers; i++)
        for (int k = 0; k < a.net->layers[i].n_params; k++) {
            const wh_layer *l = &a.net->layers[i];
            if (i == 2 && !std::strcmp(l->params[k].name, "weights")) continue;
            char name[256];
            uint64_t dims[4];
            wh_ckpt_param_name(l, &l->params[k], name, sizeof(name));
            int nd = wh_ckpt_param_dims(l, &l->params[k], dims);
            ASSERT_EQ(wh_ckpt_put_f32(w, name, l->params[k].data, dims, nd, &ctx), WH_OK) << ctx.msg;
        }
    ASSERT_EQ(wh_ckpt_commit(w, &ctx), WH_OK) << ctx.msg;

    wh_net *b = nullptr;
    wh_net_opts o = {};
    o.batch = 1;
    EXPECT_EQ(wh_ckpt_build_net(path.c_str(), &o, &b, nullptr, &ctx), WH_ERR_SHAPE);
    EXPECT_EQ(b, nullptr);
    const std::string m = ctx.msg;
    EXPECT_TRUE(contains(m, "layers/002_convolutional/weights")) << m;
    EXPECT_TRUE(contains(m, "layer 2 [convolutional]")) << m;
    EXPECT_TRUE(contains(m, path)) << m;
}

// ------------------------------------------------------------- generic put/get

TEST(Checkpoint, EveryTypeRoundTrips)
{
    TempDir dir;
    const std::string path = dir / "types.h5";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const float f[6] = {1.5f, -0.0f, 3.4028235e38f, 1e-45f, -2.25f, 0.1f};
    const int64_t i[3] = {INT64_MIN, -1, INT64_MAX};
    const uint64_t u[4] = {0, 1, 0x0123456789abcdefull, UINT64_MAX};
    const uint64_t scalar = 424242;
    const char *json = "{\"policy\": \"steps\", \"steps\": [400000, 450000]}\nline 2\ttab";
    const uint64_t d23[2] = {2, 3}, d3[1] = {3}, d4[1] = {4};
    wh_ckpt_writer *w = nullptr;
    ASSERT_EQ(wh_ckpt_create(path.c_str(), &w, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_put_f32(w, "optim/m/000", f, d23, 2, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_put_i64(w, "loader/pos", i, d3, 1, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_put_u64(w, "rng/state", u, d4, 1, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_put_u64(w, "seen", &scalar, nullptr, 0, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_put_str(w, "sched/json", json, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_put_str(w, "empty", "", &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_commit(w, &ctx), WH_OK) << ctx.msg;

    wh_ckpt_reader *r = nullptr;
    ASSERT_EQ(wh_ckpt_open(path.c_str(), &r, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(wh_ckpt_count(r), 6);
    EXPECT_TRUE(wh_ckpt_has(r, "optim/m/000"));
    EXPECT_FALSE(wh_ckpt_has(r, "optim/m"));   // a group, not a dataset
    EXPECT_FALSE(wh_ckpt_has(r, "optim/m/001"));
    float f2[6];
    ASSERT_EQ(wh_ckpt_get_f32(r, "optim/m/000", f2, 6, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(std::memcmp(f, f2, sizeof(f)), 0); // -0.0 and the denormal included
    int64_t i2[3];
    ASSERT_EQ(wh_ckpt_get_i64(r, "loader/pos", i2, 3, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(std::memcmp(i, i2, sizeof(i)), 0);
    uint64_t u2[4], s2 = 0;
    ASSERT_EQ(wh_ckpt_get_u64(r, "rng/state", u2, 4, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(std::memcmp(u, u2, sizeof(u)), 0);
    ASSERT_EQ(wh_ckpt_get_u64(r, "seen", &s2, 1, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(s2, scalar);
    char *s = nullptr;
    ASSERT_EQ(wh_ckpt_get_str(r, "sched/json", &s, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(std::string(s), json);
    free(s);
    ASSERT_EQ(wh_ckpt_get_str(r, "empty", &s, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(std::string(s), "");
    free(s);
    uint64_t dims[WH_CKPT_MAX_DIMS];
    int nd = -1;
    ASSERT_EQ(wh_ckpt_dims(r, "optim/m/000", dims, &nd, &ctx), WH_OK);
    ASSERT_EQ(nd, 2);
    EXPECT_EQ(dims[0], 2u);
    EXPECT_EQ(dims[1], 3u);
    ASSERT_EQ(wh_ckpt_dims(r, "seen", dims, &nd, &ctx), WH_OK);
    EXPECT_EQ(nd, 0); // a scalar

    // Wrong count, wrong type, missing: errors naming the dataset and the file.
    EXPECT_EQ(wh_ckpt_get_f32(r, "optim/m/000", f2, 5, &ctx), WH_ERR_SHAPE);
    EXPECT_TRUE(contains(ctx.msg, "'optim/m/000'") && contains(ctx.msg, "6 elements") &&
                contains(ctx.msg, "expected 5") && contains(ctx.msg, path))
        << ctx.msg;
    EXPECT_EQ(wh_ckpt_get_f32(r, "rng/state", f2, 4, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, "'rng/state'") && contains(ctx.msg, "float32")) << ctx.msg;
    EXPECT_EQ(wh_ckpt_get_i64(r, "rng/state", i2, 4, &ctx), WH_ERR_IO); // unsigned is not int64
    EXPECT_EQ(wh_ckpt_get_f32(r, "optim/v/000", f2, 6, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, "no dataset 'optim/v/000'") && contains(ctx.msg, path)) << ctx.msg;
    EXPECT_EQ(wh_ckpt_get_str(r, "seen", &s, &ctx), WH_ERR_IO);
    EXPECT_EQ(s, nullptr);
    wh_ckpt_close(r);
}

TEST(Checkpoint, ChecksumIsTheDocumentedFnv1a)
{
    TempDir dir;
    Net a(small_cfg());
    ASSERT_EQ(a.st, WH_OK) << a.ctx.msg;
    fill_params(a.net, 5);
    const std::string path = dir / "sum.h5";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_writer *w = nullptr;
    ASSERT_EQ(wh_ckpt_create(path.c_str(), &w, &ctx), WH_OK);
    ASSERT_EQ(wh_ckpt_put_net(w, a.net, small_cfg().c_str(), &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_put_str(w, "z/text", "abc", &ctx), WH_OK);
    ASSERT_EQ(wh_ckpt_put_str(w, "empty", "", &ctx), WH_OK);
    const int64_t v = -3;
    ASSERT_EQ(wh_ckpt_put_i64(w, "B_upper_sorts_first", &v, nullptr, 0, &ctx), WH_OK);
    ASSERT_EQ(wh_ckpt_commit(w, &ctx), WH_OK) << ctx.msg;
    uint64_t stored = 0;
    EXPECT_EQ(documented_checksum(path, &stored), stored);
    EXPECT_NE(stored, 0u);
}

// ------------------------------------------------------------- damage

// A checkpoint holding 4096 floats whose bytes are all 0x5A.
std::string write_pattern(const TempDir &dir, wh_ctx *ctx)
{
    const std::string path = dir / "pattern.h5";
    std::vector<float> data(4096);
    std::memset(data.data(), 0x5A, data.size() * sizeof(float));
    const uint64_t n = data.size();
    wh_ckpt_writer *w = nullptr;
    EXPECT_EQ(wh_ckpt_create(path.c_str(), &w, ctx), WH_OK);
    EXPECT_EQ(wh_ckpt_put_f32(w, "pattern", data.data(), &n, 1, ctx), WH_OK);
    EXPECT_EQ(wh_ckpt_put_str(w, "cfg", "[net]\n", ctx), WH_OK);
    EXPECT_EQ(wh_ckpt_commit(w, ctx), WH_OK) << ctx->msg;
    return path;
}

TEST(Checkpoint, OneCorruptDataByteFailsTheChecksum)
{
    TempDir dir;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const std::string path = write_pattern(dir, &ctx);
    wh_ckpt_reader *r = nullptr;
    ASSERT_EQ(wh_ckpt_open(path.c_str(), &r, &ctx), WH_OK) << ctx.msg; // intact: fine
    wh_ckpt_close(r);

    std::vector<unsigned char> b = read_bytes(path);
    const std::vector<unsigned char> run(16384, 0x5A);
    auto at = std::search(b.begin(), b.end(), run.begin(), run.end());
    ASSERT_NE(at, b.end()) << "the 0x5A pattern is not stored contiguously";
    at[8192] ^= 0x01; // one bit of one byte in the middle of the data
    write_bytes(path, b);

    r = nullptr;
    EXPECT_EQ(wh_ckpt_open(path.c_str(), &r, &ctx), WH_ERR_IO);
    EXPECT_EQ(r, nullptr);
    EXPECT_TRUE(contains(ctx.msg, "checksum mismatch")) << ctx.msg;
    EXPECT_TRUE(contains(ctx.msg, path)) << ctx.msg;
}

TEST(Checkpoint, TruncatedFileIsRefusedNamingIt)
{
    TempDir dir;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const std::string path = write_pattern(dir, &ctx);
    std::vector<unsigned char> b = read_bytes(path);
    ASSERT_GT(b.size(), 16384u);
    b.resize(b.size() / 2);
    write_bytes(path, b);
    wh_ckpt_reader *r = nullptr;
    EXPECT_EQ(wh_ckpt_open(path.c_str(), &r, &ctx), WH_ERR_IO);
    EXPECT_EQ(r, nullptr);
    EXPECT_TRUE(contains(ctx.msg, path)) << ctx.msg;
    EXPECT_TRUE(contains(ctx.msg, "truncated")) << ctx.msg;
}

TEST(Checkpoint, NotACheckpointIsRefusedNamingIt)
{
    TempDir dir;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_reader *r = nullptr;
    const std::string text = dir / "text.h5";
    write_bytes(text, std::vector<unsigned char>(100, 'x'));
    EXPECT_EQ(wh_ckpt_open(text.c_str(), &r, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, text) && contains(ctx.msg, "not an HDF5 file")) << ctx.msg;

    const std::string missing = dir / "missing.h5";
    EXPECT_EQ(wh_ckpt_open(missing.c_str(), &r, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, missing) && contains(ctx.msg, "No such file")) << ctx.msg;

    // A valid HDF5 file that is not ours (no format attribute).
    const std::string other = dir / "other.h5";
    hid_t f = H5Fcreate(other.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    H5Fclose(f);
    EXPECT_EQ(wh_ckpt_open(other.c_str(), &r, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, other) && contains(ctx.msg, "not a whittle checkpoint")) << ctx.msg;
    EXPECT_EQ(r, nullptr);
}

// ------------------------------------------------------------- atomic writes

TEST(Checkpoint, UncommittedWriteLeavesThePreviousFile)
{
    TempDir dir;
    Net a(small_cfg()), b(small_cfg()), c(small_cfg());
    ASSERT_EQ(a.st, WH_OK) << a.ctx.msg;
    fill_params(a.net, 11);
    fill_params(b.net, 12);
    const std::string path = dir / "ck.h5";
    ASSERT_EQ(write_net(path, a.net, small_cfg(), &a.ctx), WH_OK) << a.ctx.msg;
    const std::vector<unsigned char> before = read_bytes(path);

    // A second write in progress (as if the process died before commit).
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_writer *w = nullptr;
    ASSERT_EQ(wh_ckpt_create(path.c_str(), &w, &ctx), WH_OK);
    ASSERT_EQ(wh_ckpt_put_net(w, b.net, small_cfg().c_str(), &ctx), WH_OK) << ctx.msg;
    std::vector<std::string> files = dir.files();
    ASSERT_EQ(files.size(), 2u); // ck.h5 and its temp
    EXPECT_EQ(files[0], "ck.h5");
    EXPECT_EQ(files[1].rfind("ck.h5.tmp", 0), 0u) << files[1];
    EXPECT_EQ(read_bytes(path), before);
    wh_ckpt_reader *r = nullptr;
    ASSERT_EQ(wh_ckpt_open(path.c_str(), &r, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_load_net(r, c.net, &ctx), WH_OK) << ctx.msg;
    EXPECT_TRUE(same_params(a.net, c.net));
    wh_ckpt_close(r);

    wh_ckpt_abort(w);
    EXPECT_EQ(dir.files(), std::vector<std::string>{"ck.h5"}); // the temp is gone
    EXPECT_EQ(read_bytes(path), before);
}

TEST(Checkpoint, CommitReplacesAndLeavesNoTemp)
{
    TempDir dir;
    Net a(small_cfg()), b(small_cfg()), c(small_cfg());
    fill_params(a.net, 21);
    fill_params(b.net, 22);
    const std::string path = dir / "ck.h5";
    ASSERT_EQ(write_net(path, a.net, small_cfg(), &a.ctx), WH_OK) << a.ctx.msg;
    EXPECT_EQ(dir.files(), std::vector<std::string>{"ck.h5"});
    ASSERT_EQ(write_net(path, b.net, small_cfg(), &b.ctx), WH_OK) << b.ctx.msg;
    EXPECT_EQ(dir.files(), std::vector<std::string>{"ck.h5"});
    struct stat sb;
    ASSERT_EQ(stat(path.c_str(), &sb), 0);
    EXPECT_EQ(sb.st_mode & 0777, 0644u);
    wh_net *n = nullptr;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_ckpt_build_net(path.c_str(), nullptr, &n, nullptr, &ctx), WH_OK) << ctx.msg;
    EXPECT_TRUE(same_params(b.net, n)); // the second write won
    wh_net_destroy(n);
}

TEST(Checkpoint, FailedPutRefusesCommit)
{
    TempDir dir;
    const std::string path = dir / "bad.h5";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const float x = 1.f;
    const uint64_t one = 1;
    wh_ckpt_writer *w = nullptr;
    ASSERT_EQ(wh_ckpt_create(path.c_str(), &w, &ctx), WH_OK);
    ASSERT_EQ(wh_ckpt_put_f32(w, "a/x", &x, &one, 1, &ctx), WH_OK);
    EXPECT_EQ(wh_ckpt_put_f32(w, "a/x", &x, &one, 1, &ctx), WH_ERR_ARG); // twice
    EXPECT_TRUE(contains(ctx.msg, "'a/x' written twice")) << ctx.msg;
    EXPECT_EQ(wh_ckpt_put_f32(w, "/abs", &x, &one, 1, &ctx), WH_ERR_ARG);
    EXPECT_EQ(wh_ckpt_put_f32(w, "a//b", &x, &one, 1, &ctx), WH_ERR_ARG);
    EXPECT_EQ(wh_ckpt_commit(w, &ctx), WH_ERR_STATE);
    EXPECT_TRUE(contains(ctx.msg, path)) << ctx.msg;
    EXPECT_TRUE(dir.files().empty()); // neither the final file nor a temp
}

} // namespace
