// Replays every file of tests/fuzz/corpus/<target>/ through its fuzz
// target: the seeds, and each input that once crashed a parser (saved there
// as a regression when it was fixed). In the sanitizer run (CI), a memory
// error or leak in any parser on these inputs fails the suite.
#include <gtest/gtest.h>

#include <dirent.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" {
#include "fuzz/targets.h"
}

namespace {

std::vector<std::string> files_in(const std::string &dir)
{
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    if (!d) return out;
    while (dirent *e = readdir(d))
        if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
    closedir(d);
    return out;
}

}  // namespace

TEST(FuzzCorpus, EveryTargetHasSeedsAndSurvivesThem)
{
    int targets = 0;
    for (const wh_fuzz_target *t = wh_fuzz_targets; t->name; t++, targets++) {
        const auto files = files_in(std::string(WH_SOURCE_DIR) + "/tests/fuzz/corpus/" + t->name);
        EXPECT_GE(files.size(), 2u) << t->name << ": seed its corpus from the project's own files";
        for (const auto &f : files) {
            std::ifstream in(f, std::ios::binary);
            std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            EXPECT_EQ(t->fn(bytes.data(), bytes.size()), 0) << f;
        }
    }
    EXPECT_EQ(targets, 8);
    EXPECT_NE(wh_fuzz_find("ckpt"), nullptr);
    EXPECT_EQ(wh_fuzz_find("nope"), nullptr);
}
