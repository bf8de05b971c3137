// Small helpers shared by the test files.
#pragma once

#include <gtest/gtest.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include <cstdlib>
#include <string>

namespace wht {

inline bool contains(const std::string &hay, const std::string &needle)
{
    return hay.find(needle) != std::string::npos;
}

// A temporary file holding bytes, removed at the end of the test.
struct TempFile {
    std::string path;
    explicit TempFile(const std::string &bytes)
    {
        char tmpl[] = "/tmp/whittle_test_XXXXXX";
        int fd = mkstemp(tmpl);
        EXPECT_GE(fd, 0);
        path = tmpl;
        if (fd >= 0) {
            EXPECT_EQ(write(fd, bytes.data(), bytes.size()), (ssize_t)bytes.size());
            close(fd);
        }
    }
    ~TempFile() { unlink(path.c_str()); }
    TempFile(const TempFile &) = delete;
    TempFile &operator=(const TempFile &) = delete;
};

// A fresh folder per test, removed with its files (not subfolders) afterwards.
struct TempDir {
    std::string path;
    TempDir()
    {
        char tmpl[] = "/tmp/whittle_test_XXXXXX";
        const char *p = mkdtemp(tmpl);
        path = p ? p : "";
    }
    ~TempDir()
    {
        for (const std::string &f : files()) unlink((path + "/" + f).c_str());
        rmdir(path.c_str());
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    std::string operator/(const std::string &name) const { return path + "/" + name; }
    // The names in it, sorted.
    std::vector<std::string> files() const
    {
        std::vector<std::string> out;
        DIR *d = opendir(path.c_str());
        if (!d) return out;
        while (dirent *e = readdir(d))
            if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) out.push_back(e->d_name);
        closedir(d);
        std::sort(out.begin(), out.end());
        return out;
    }
};

}  // namespace wht
