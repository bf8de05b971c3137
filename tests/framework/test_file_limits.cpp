// Sizes read from files are checked before use (issue 10): every reader of
// outside input takes only a regular file up to a stated limit, and an HDF5
// dataspace larger than its file is refused before its size is allocated.
// The large files here are sparse (ftruncate): they cost no disk and no time.
#include "test_util.h"
#include <gtest/gtest.h>

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "framework/core/cfg.h"
#include "framework/io/checkpoint.h"
#include "framework/data/dataset.h"
#include "framework/data/image.h"
#include "framework/data/synth.h"
#include "framework/core/fileio.h"

namespace {

using wht::contains;
using wht::TempDir;

// A file of the given size that holds no blocks.
void sparse_file(const std::string &path, off_t bytes)
{
    const int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, bytes), 0);
    close(fd);
}

TEST(FileLimits, ReadAllTakesUpToTheLimitExactly)
{
    TempDir dir;
    const std::string p = dir / "ten";
    wht::write_bytes(p, std::vector<unsigned char>{'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'});
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *buf = nullptr;
    size_t len = 0;
    ASSERT_EQ(wh_file_read_all(p.c_str(), 10, "test", &buf, &len, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(len, 10u);
    EXPECT_EQ(std::string(buf), "0123456789"); // NUL-terminated after the data
    free(buf);
    buf = nullptr;
    EXPECT_EQ(wh_file_read_all(p.c_str(), 9, "test", &buf, &len, &ctx), WH_ERR_IO);
    EXPECT_EQ(buf, nullptr);
    EXPECT_TRUE(contains(ctx.msg, p + ": 10 bytes, more than")) << ctx.msg;
    EXPECT_TRUE(contains(ctx.msg, "limit for test files")) << ctx.msg;
}

TEST(FileLimits, DevicesAndFifosAreNotRead)
{
    TempDir dir;
    const std::string fifo = dir / "fifo";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    // O_RDONLY on a FIFO with no writer blocks in open(): a writer that
    // closes at once lets the reader's open return, then the type check runs
    const int wfd = open(fifo.c_str(), O_RDWR | O_NONBLOCK);
    ASSERT_GE(wfd, 0);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *buf = nullptr;
    size_t len = 0;
    EXPECT_EQ(wh_file_read_all(fifo.c_str(), 1 << 20, "cfg", &buf, &len, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, fifo + ": not a regular file")) << ctx.msg;
    close(wfd);
    unlink(fifo.c_str());
    EXPECT_EQ(wh_file_read_all("/dev/zero", 1 << 20, "cfg", &buf, &len, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, "/dev/zero: not a regular file")) << ctx.msg;
    EXPECT_EQ(wh_file_read_all(dir.path.c_str(), 1 << 20, "cfg", &buf, &len, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, "not a regular file")) << ctx.msg;
}

TEST(FileLimits, EachReaderHasItsLimit)
{
    TempDir dir;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    // a cfg: 64 MiB + 1 byte
    const std::string cfg = dir / "big.cfg";
    sparse_file(cfg, (off_t)WH_TEXT_MAX_BYTES + 1);
    wh_cfg *c = nullptr;
    EXPECT_EQ(wh_cfg_parse_file(cfg.c_str(), &c, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, cfg + ": 67108865 bytes, more than the 64 MiB limit for cfg or text files")) << ctx.msg;
    unlink(cfg.c_str());
    // an image list or label file: 1 GiB + 1
    const std::string list = dir / "train.txt";
    sparse_file(list, (off_t)WH_LIST_MAX_BYTES + 1);
    char *text = nullptr;
    EXPECT_EQ(wh__ds_read_text(list.c_str(), &text, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, list + ": 1073741825 bytes, more than the 1024 MiB limit for list or label files"))
        << ctx.msg;
    unlink(list.c_str());
    // an encoded image: 1 GiB + 1
    const std::string jpg = dir / "huge.jpg";
    sparse_file(jpg, (off_t)WH_IMAGE_MAX_BYTES + 1);
    wh_image img;
    EXPECT_EQ(wh_image_load(jpg.c_str(), &img, &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, jpg + ": 1073741825 bytes, more than the 1024 MiB limit for image files")) << ctx.msg;
    EXPECT_EQ(img.data, nullptr);
    unlink(jpg.c_str());
}

TEST(FileLimits, AHugeVocAnnotationIsRefusedNamingIt)
{
    // libxml2 alone would build a tree of whatever the file holds
    TempDir dir;
    const std::string root = dir / "VOC";
    const std::string mk = "mkdir -p '" + root + "/Annotations' '" + root + "/ImageSets/Main' '" + root + "/JPEGImages'";
    ASSERT_EQ(system(mk.c_str()), 0);
    wht::write_bytes(root + "/ImageSets/Main/train.txt", std::vector<unsigned char>{'x', '\n'});
    const std::string xml = root + "/Annotations/x.xml";
    sparse_file(xml, (off_t)WH_TEXT_MAX_BYTES + 1);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_dataset *ds = nullptr;
    EXPECT_NE(wh_dataset_open(root.c_str(), "train", &ds, &ctx), WH_OK);
    EXPECT_EQ(ds, nullptr);
    EXPECT_TRUE(contains(ctx.msg, xml + ": 67108865 bytes, more than the 64 MiB limit for VOC annotation files"))
        << ctx.msg;
    ASSERT_EQ(system(("rm -rf '" + root + "'").c_str()), 0);
}

TEST(FileLimits, ANulByteInAListNamesItsLine)
{
    // before, the list ended silently at the NUL and the rest was never read
    TempDir dir;
    const std::string p = dir / "labels.txt";
    const std::string bytes = std::string("0 0.5 0.5 0.1 0.1\n1 0.5 0.5 0.1 0.1\n") + '\0' + "2 0.5 0.5 0.1 0.1\n";
    wht::write_bytes(p, std::vector<unsigned char>(bytes.begin(), bytes.end()));
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    char *text = nullptr;
    EXPECT_EQ(wh__ds_read_text(p.c_str(), &text, &ctx), WH_ERR_PARSE);
    EXPECT_TRUE(contains(ctx.msg, p + ":3: contains a NUL byte")) << ctx.msg;
}

// A valid checkpoint, then a dataset appended whose dataspace claims 2^34
// floats (64 GiB) with no storage written: HDF5 would return fill values, so
// without the bound the checksum pass would allocate 64 GiB.
TEST(FileLimits, CheckpointDatasetLargerThanItsFileIsRefusedBeforeAllocation)
{
    TempDir dir;
    const std::string p = dir / "c.h5";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_ckpt_writer *w = nullptr;
    ASSERT_EQ(wh_ckpt_create(p.c_str(), &w, &ctx), WH_OK) << ctx.msg;
    const float v[4] = {1, 2, 3, 4};
    const uint64_t d4[1] = {4};
    ASSERT_EQ(wh_ckpt_put_f32(w, "x", v, d4, 1, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_ckpt_commit(w, &ctx), WH_OK) << ctx.msg;
    {
        wh_ckpt_reader *r = nullptr;
        ASSERT_EQ(wh_ckpt_open(p.c_str(), &r, &ctx), WH_OK) << ctx.msg; // the control
        wh_ckpt_close(r);
    }
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hsize_t huge[1] = {(hsize_t)1 << 34};
    const hid_t sp = H5Screate_simple(1, huge, nullptr);
    const hid_t ds = H5Dcreate2(f, "huge", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    struct stat sb;
    ASSERT_EQ(stat(p.c_str(), &sb), 0);
    ASSERT_LT(sb.st_size, 1 << 20); // the storage really is not there
    wh_ckpt_reader *r = nullptr;
    EXPECT_EQ(wh_ckpt_open(p.c_str(), &r, &ctx), WH_ERR_IO);
    EXPECT_EQ(r, nullptr);
    EXPECT_TRUE(contains(ctx.msg, "dataset 'huge' claims 17179869184 elements of 4 bytes, more than the whole file"))
        << ctx.msg;
}

// The synthetic dataset's stamp (synth.txt) decides whether a folder may be
// reused or regenerated: a damaged number makes it unreadable, so the folder
// is refused rather than taken for a dataset of atoi's reading.
TEST(FileLimits, DamagedSynthStampRefusesTheFolder)
{
    TempDir dir;
    const std::string root = dir / "synth";
    wh_synth_opts o;
    wh_synth_opts_default(&o);
    o.images = 4;
    o.size = 64;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_synth_generate(&o, root.c_str(), &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(wh_synth_generate(&o, root.c_str(), &ctx), WH_OK) << ctx.msg; // reused as it is
    const std::string stamp = root + "/synth.txt";
    std::vector<unsigned char> b = wht::read_bytes(stamp);
    std::string s(b.begin(), b.end());
    const size_t at = s.find("images 4\n");
    ASSERT_NE(at, std::string::npos) << s;
    s.replace(at, 9, "images 4x\n");
    wht::write_bytes(stamp, std::vector<unsigned char>(s.begin(), s.end()));
    EXPECT_EQ(wh_synth_generate(&o, root.c_str(), &ctx), WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, "no valid synth.txt")) << ctx.msg;
    EXPECT_EQ(wht::read_bytes(stamp).size(), s.size()); // left as it was
    std::string rm = "rm -rf '" + root + "'";
    ASSERT_EQ(system(rm.c_str()), 0);
}

} // namespace
