#include "framework/darknet_count.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

namespace dkref {

int Section::geti(const std::string &k, int def) const
{
    auto it = kv.find(k);
    return it == kv.end() ? def : std::atoi(it->second.c_str());
}

static std::string trim(const std::string &s)
{
    size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
    return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// Darknet's reading: '#' and ';' lines are comments, "[type]" opens a section.
std::vector<Section> parse(const std::string &text)
{
    std::vector<Section> secs;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        line = trim(line);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line[0] == '[') {
            secs.push_back(Section{line.substr(1, line.size() - 2), {}});
            continue;
        }
        size_t eq = line.find('=');
        EXPECT_NE(eq, std::string::npos) << line;
        EXPECT_FALSE(secs.empty()) << "key before any section: " << line;
        if (eq == std::string::npos || secs.empty()) continue;
        secs.back().kv[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
    }
    return secs;
}

std::vector<int> ints(const std::string &s)
{
    std::vector<int> v;
    std::istringstream in(s);
    std::string tok;
    while (std::getline(in, tok, ',')) v.push_back(std::atoi(tok.c_str()));
    return v;
}

// Infers shapes layer by layer (darknet's rules) and fails the test on any
// inconsistency: a route to a later layer, a concat of different H/W, a
// shortcut of different shapes, a grouped route of an odd channel count, a
// head conv whose filters do not match its [yolo].
Summary analyse(const std::string &text)
{
    Summary s;
    std::vector<Section> secs = parse(text);
    EXPECT_FALSE(secs.empty());
    if (secs.empty()) return s;
    EXPECT_EQ(secs[0].type, "net");
    Shape prev{secs[0].geti("channels"), secs[0].geti("height"), secs[0].geti("width")};
    std::vector<Shape> out;
    for (size_t li = 1; li < secs.size(); li++) {
        const Section &sec = secs[li];
        int i = (int)li - 1;
        s.count[sec.type]++;
        Shape o = prev;
        Layer rec;
        rec.type = sec.type;
        if (sec.type == "convolutional") {
            long f = sec.geti("filters"), k = sec.geti("size"), st = sec.geti("stride");
            long pad = sec.geti("pad", 0) ? k / 2 : 0;
            o = Shape{f, (prev.h + 2 * pad - k) / st + 1, (prev.w + 2 * pad - k) / st + 1};
            bool bn = sec.geti("batch_normalize", 0) != 0;
            long groups = sec.geti("groups", 1);
            rec.params = prev.c / groups * k * k * f + (bn ? 2 * f : f);
            rec.flops = 2.0 * (prev.c / groups) * k * k * f * o.h * o.w;
            s.conv_flops += rec.flops;
        } else if (sec.type == "maxpool") {
            long k = sec.geti("size"), st = sec.geti("stride");
            long p = sec.geti("padding", (int)k - 1);
            o = Shape{prev.c, (prev.h + p - k) / st + 1, (prev.w + p - k) / st + 1};
            rec.flops = (double)k * k * prev.c * o.h * o.w;
        } else if (sec.type == "route") {
            std::vector<int> ls = ints(sec.kv.at("layers"));
            long c = 0;
            for (size_t j = 0; j < ls.size(); j++) {
                int l = ls[j] < 0 ? i + ls[j] : ls[j];
                EXPECT_TRUE(l >= 0 && l < i) << "layer " << i << " routes to " << l;
                if (l < 0 || l >= i) return s;
                c += out[l].c;
                EXPECT_EQ(out[l].h, out[ls[0] < 0 ? i + ls[0] : ls[0]].h) << "layer " << i;
                o = Shape{c, out[l].h, out[l].w};
            }
            int groups = sec.geti("groups", 1);
            EXPECT_EQ(c % groups, 0) << "layer " << i;
            o.c = c / groups;
        } else if (sec.type == "shortcut") {
            int f = sec.geti("from");
            int l = f < 0 ? i + f : f;
            EXPECT_TRUE(l >= 0 && l < i) << "layer " << i;
            if (l < 0 || l >= i) return s;
            EXPECT_EQ(out[l].c, prev.c) << "shortcut " << i << " adds unequal channels";
            EXPECT_EQ(out[l].h, prev.h) << "layer " << i;
            rec.flops = (double)prev.c * prev.h * prev.w * (double)ints(sec.kv.at("from")).size();
        } else if (sec.type == "upsample") {
            int st = sec.geti("stride");
            o = Shape{prev.c, prev.h * st, prev.w * st};
        } else if (sec.type == "yolo") {
            long want = (long)(sec.geti("classes") + 5) * (long)ints(sec.kv.at("mask")).size();
            EXPECT_EQ(prev.c, want) << "yolo " << i;
        } else {
            ADD_FAILURE() << "unexpected section [" << sec.type << "]";
        }
        out.push_back(o);
        rec.out = o;
        s.params += rec.params;
        s.darknet_flops += rec.flops;
        s.per_layer.push_back(rec);
        prev = o;
    }
    s.layers = (int)out.size();
    return s;
}

}  // namespace dkref
