// An independent darknet size counter for tests: its own cfg reading and
// shape rules (darknet's), written without the product's parser or layers,
// so the product's per-layer shapes, parameters and FLOPs can be checked
// against it. Inconsistent cfgs fail the calling test.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace dkref {

struct Section {
    std::string type;
    std::map<std::string, std::string> kv;
    int geti(const std::string &k, int def = -1) const;
    bool has(const std::string &k) const { return kv.count(k) != 0; }
};

struct Shape {
    long c, h, w;
};

struct Layer {
    std::string type;
    Shape out;
    long long params = 0;
    double flops = 0;   // darknet's count: conv 2*MAC, maxpool k*k*C*HW, shortcut C*H*W per input
};

struct Summary {
    int layers = 0;
    long long params = 0;
    double conv_flops = 0;    // 2 per multiply-add
    double darknet_flops = 0; // + maxpool + shortcut
    std::map<std::string, int> count;
    std::vector<Layer> per_layer;
};

std::vector<Section> parse(const std::string &text);
std::vector<int> ints(const std::string &s);
Summary analyse(const std::string &text);

}  // namespace dkref
