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
#include <fstream>
#include <iterator>
#include <string>

namespace wht {

// A file's bytes (empty when it cannot be read), and writing them back.
inline std::vector<unsigned char> read_bytes(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
}

inline void write_bytes(const std::string &path, const std::vector<unsigned char> &b)
{
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char *>(b.data()), static_cast<std::streamsize>(b.size()));
}

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
