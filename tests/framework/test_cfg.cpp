// Tests of the darknet .cfg parser (framework/core/cfg.c).
//
// Every expectation below is worked out by hand from the cfg text: which
// sections and keys exist, on which line, and what value darknet's reading
// (all whitespace dropped, '#'/';' comments) gives them. Each kind of bad
// input has its own test that checks both the status and that the message
// names "file:line".
#include "test_util.h"
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include "framework/core/cfg.h"
#include "framework/core/net.h"

namespace {

// Owns a parsed cfg and the context it was parsed with.
struct Parsed {
    wh_ctx ctx;
    wh_cfg *cfg = nullptr;
    wh_status st = WH_OK;
    Parsed(const std::string &text, const char *name = "t.cfg")
    {
        wh_ctx_init(&ctx);
        st = wh_cfg_parse_string(text.c_str(), name, &cfg, &ctx);
    }
    ~Parsed() { wh_cfg_free(cfg); }
    std::string msg() const { return ctx.msg; }
};

using wht::contains;

using wht::TempFile;

// The good file used by several tests; line numbers on the right.
const char *kGood =
    "# a whole-line comment\n"        // 1
    "[net]\n"                         // 2
    "width = 416   \n"                // 3
    "height=416 # trailing comment\n" // 4
    "  ; an indented ';' comment\n"   // 5
    "\n"                              // 6
    "[ route ]\n"                     // 7
    "layers = -1, 61\n"               // 8
    "\t\n"                            // 9
    "[convolutional] # header comment\n" // 10
    "\tfilters=32;trailing\n"         // 11
    "activation = leaky\n";           // 12

void expect_good(const wh_cfg *cfg)
{
    ASSERT_NE(cfg, nullptr);
    ASSERT_EQ(cfg->n_sec, 3);
    const wh_cfg_section *s = cfg->sec;
    EXPECT_STREQ(s[0].type, "net");
    EXPECT_EQ(s[0].line, 2);
    EXPECT_STREQ(s[1].type, "route");
    EXPECT_EQ(s[1].line, 7);
    EXPECT_STREQ(s[2].type, "convolutional");
    EXPECT_EQ(s[2].line, 10);

    ASSERT_EQ(s[0].n_kv, 2);
    EXPECT_STREQ(s[0].kv[0].key, "width");
    EXPECT_STREQ(s[0].kv[0].val, "416");
    EXPECT_EQ(s[0].kv[0].line, 3);
    EXPECT_STREQ(s[0].kv[1].key, "height");
    EXPECT_STREQ(s[0].kv[1].val, "416");
    EXPECT_EQ(s[0].kv[1].line, 4);

    ASSERT_EQ(s[1].n_kv, 1);
    EXPECT_STREQ(s[1].kv[0].key, "layers");
    EXPECT_STREQ(s[1].kv[0].val, "-1,61");
    EXPECT_EQ(s[1].kv[0].line, 8);

    ASSERT_EQ(s[2].n_kv, 2);
    EXPECT_STREQ(s[2].kv[0].key, "filters");
    EXPECT_STREQ(s[2].kv[0].val, "32");
    EXPECT_EQ(s[2].kv[0].line, 11);
    EXPECT_STREQ(s[2].kv[1].key, "activation");
    EXPECT_STREQ(s[2].kv[1].val, "leaky");
    EXPECT_EQ(s[2].kv[1].line, 12);

    for (int i = 0; i < cfg->n_sec; i++)
        for (int k = 0; k < s[i].n_kv; k++) EXPECT_EQ(s[i].kv[k].used, 0);
}

std::string replace_all(std::string s, const std::string &from, const std::string &to)
{
    for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size())
        s.replace(p, from.size(), to);
    return s;
}

// ---------------------------------------------------------------- good files

TEST(Cfg, GoodFileSectionsKeysValuesLines)
{
    Parsed p(kGood, "good.cfg");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    expect_good(p.cfg);
    EXPECT_STREQ(p.cfg->file, "good.cfg");
    for (int i = 0; i < p.cfg->n_sec; i++) EXPECT_STREQ(p.cfg->sec[i].file, "good.cfg");
}

TEST(Cfg, WhitespaceAnywhereIsDropped)
{
    Parsed p("[ n e t ]\n f i l t e r s = 1 6 \n layers = -1 , 61 ,\t-3\n");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    ASSERT_EQ(p.cfg->n_sec, 1);
    EXPECT_STREQ(p.cfg->sec[0].type, "net");
    ASSERT_EQ(p.cfg->sec[0].n_kv, 2);
    EXPECT_STREQ(p.cfg->sec[0].kv[0].key, "filters");
    EXPECT_STREQ(p.cfg->sec[0].kv[0].val, "16");
    EXPECT_STREQ(p.cfg->sec[0].kv[1].val, "-1,61,-3");
}

TEST(Cfg, CrlfLineEndings)
{
    const std::string crlf = replace_all(kGood, "\n", "\r\n");
    ASSERT_NE(crlf, std::string(kGood));
    Parsed p(crlf);
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    expect_good(p.cfg);
}

TEST(Cfg, NoTrailingNewline)
{
    Parsed p("\n\n[net]\nwidth=8\nheight=9");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    ASSERT_EQ(p.cfg->n_sec, 1);
    EXPECT_EQ(p.cfg->sec[0].line, 3);
    ASSERT_EQ(p.cfg->sec[0].n_kv, 2);
    EXPECT_STREQ(p.cfg->sec[0].kv[1].key, "height");
    EXPECT_STREQ(p.cfg->sec[0].kv[1].val, "9");
    EXPECT_EQ(p.cfg->sec[0].kv[1].line, 5);
}

TEST(Cfg, CommentsOnlyKeyValueSplitAtFirstEquals)
{
    // '#' or ';' ends the value; the first '=' splits key and value.
    Parsed p("[a]\nx=1#2\ny=3;4\nz=a=b\n;[b]\n#[c]\n");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    ASSERT_EQ(p.cfg->n_sec, 1);
    ASSERT_EQ(p.cfg->sec[0].n_kv, 3);
    EXPECT_STREQ(p.cfg->sec[0].kv[0].val, "1");
    EXPECT_STREQ(p.cfg->sec[0].kv[1].val, "3");
    EXPECT_STREQ(p.cfg->sec[0].kv[2].key, "z");
    EXPECT_STREQ(p.cfg->sec[0].kv[2].val, "a=b");
}

TEST(Cfg, SameKeyInDifferentSectionsIsFine)
{
    Parsed p("[convolutional]\nfilters=1\n[convolutional]\nfilters=2\n");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    ASSERT_EQ(p.cfg->n_sec, 2);
    EXPECT_STREQ(p.cfg->sec[1].kv[0].val, "2");
    EXPECT_EQ(p.cfg->sec[1].kv[0].line, 4);
}

TEST(Cfg, NullNameIsString)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    ASSERT_EQ(wh_cfg_parse_string("[net]\nx\n", nullptr, &cfg, &ctx), WH_ERR_PARSE);
    EXPECT_EQ(cfg, nullptr);
    EXPECT_TRUE(contains(ctx.msg, "<string>:2:")) << ctx.msg;
}

TEST(Cfg, ParseFileReadsARealFile)
{
    TempFile f(replace_all(kGood, "\n", "\r\n"));
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    ASSERT_EQ(wh_cfg_parse_file(f.path.c_str(), &cfg, &ctx), WH_OK) << ctx.msg;
    expect_good(cfg);
    EXPECT_EQ(std::string(cfg->file), f.path);
    EXPECT_EQ(std::string(cfg->sec[2].file), f.path);
    wh_cfg_free(cfg);
}

TEST(Cfg, ParseFileErrorNamesPathAndLine)
{
    TempFile f("[net]\nwidth=1\nbroken line\n");
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    EXPECT_EQ(wh_cfg_parse_file(f.path.c_str(), &cfg, &ctx), WH_ERR_PARSE);
    EXPECT_EQ(cfg, nullptr);
    EXPECT_TRUE(contains(ctx.msg, f.path + ":3:")) << ctx.msg;
}

TEST(Cfg, ParseFileMissingIsIoErrorNamingThePath)
{
    const std::string path = "/tmp/whittle_no_such_dir_4711/yolo.cfg";
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = reinterpret_cast<wh_cfg *>(&ctx); // must be reset to NULL
    EXPECT_EQ(wh_cfg_parse_file(path.c_str(), &cfg, &ctx), WH_ERR_IO);
    EXPECT_EQ(cfg, nullptr);
    EXPECT_EQ(ctx.status, WH_ERR_IO);
    EXPECT_TRUE(contains(ctx.msg, path)) << ctx.msg;
}

TEST(Cfg, ParseFileOnADirectoryIsIoError)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    EXPECT_EQ(wh_cfg_parse_file("/tmp", &cfg, &ctx), WH_ERR_IO);
    EXPECT_EQ(cfg, nullptr);
    EXPECT_TRUE(contains(ctx.msg, "/tmp")) << ctx.msg;
}

TEST(Cfg, NulByteInFileIsAnError)
{
    const std::string bytes("[net]\nwidth=1\0\nheight=2\n", 24);
    ASSERT_EQ(bytes.size(), 24u);
    TempFile f(bytes);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    EXPECT_EQ(wh_cfg_parse_file(f.path.c_str(), &cfg, &ctx), WH_ERR_PARSE);
    EXPECT_EQ(cfg, nullptr);
    // The message names the file and the line of the NUL byte.
    EXPECT_TRUE(contains(ctx.msg, f.path + ":2:")) << ctx.msg;
    EXPECT_TRUE(contains(ctx.msg, "NUL")) << ctx.msg;
}

TEST(Cfg, EmptyTextHasNoSection)
{
    Parsed p("# only a comment\n\n", "empty.cfg");
    EXPECT_EQ(p.st, WH_ERR_PARSE);
    EXPECT_EQ(p.cfg, nullptr);
    EXPECT_TRUE(contains(p.msg(), "empty.cfg")) << p.msg();
}

// ------------------------------------------------------- syntax errors

// Each bad text must fail with `code`, leave no cfg, and name bad.cfg:line.
void expect_parse_error(const std::string &text, int line, const std::string &also = "")
{
    Parsed p(text, "bad.cfg");
    EXPECT_EQ(p.st, WH_ERR_PARSE) << text;
    EXPECT_EQ(p.ctx.status, WH_ERR_PARSE);
    EXPECT_EQ(p.cfg, nullptr);
    const std::string where = "bad.cfg:" + std::to_string(line) + ":";
    EXPECT_TRUE(contains(p.msg(), where)) << "want '" << where << "' in: " << p.msg();
    if (!also.empty()) {
        EXPECT_TRUE(contains(p.msg(), also)) << "want '" << also << "' in: " << p.msg();
    }
}

TEST(CfgSyntax, HeaderWithoutClosingBracket) { expect_parse_error("[net]\nwidth=1\n[net\n", 3); }
TEST(CfgSyntax, HeaderWithTextAfterBracket) { expect_parse_error("[net]x\n", 1); }
TEST(CfgSyntax, EmptyHeader) { expect_parse_error("[net]\n\n[]\n", 3); }
TEST(CfgSyntax, HeaderWithEquals) { expect_parse_error("[net]\n[a=b]\n", 2); }
TEST(CfgSyntax, HeaderWithInnerBracket) { expect_parse_error("[net]\nw=1\n[a]b]\n", 3); }
TEST(CfgSyntax, LineWithoutEquals) { expect_parse_error("[net]\nwidth=1\n\nheight 416\n", 4, "height416"); }
TEST(CfgSyntax, EmptyKey) { expect_parse_error("[net]\n =5\n", 2); }
TEST(CfgSyntax, KeyBeforeAnySection) { expect_parse_error("# c\nwidth=5\n[net]\n", 2, "width"); }
TEST(CfgSyntax, DuplicateKeyInSection)
{
    // Names the second occurrence's line, the key, and the first's line.
    expect_parse_error("[net]\nwidth=1\nheight=2\nwidth = 3\n", 4, "line 2");
    expect_parse_error("[net]\nwidth=1\nheight=2\nwidth = 3\n", 4, "'width'");
}
TEST(CfgSyntax, CrlfErrorLineIsCounted) { expect_parse_error("[net]\r\nw=1\r\n\r\nbad\r\n", 4); }

// ------------------------------------------------------- getters

TEST(CfgGet, IntsFloatsStringsChoicesAndDefaults)
{
    Parsed p("[s]\n"
             "a = -5\n"
             "f = 1e-3\n"
             "g=.5\n"
             "l = -1, 61\n"
             "fl = 0.5,2,-1e1\n"
             "name = leaky\n"
             "pol=steps\n");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    wh_cfg_section *s = &p.cfg->sec[0];
    wh_ctx *ctx = &p.ctx;
    int i = 0;
    EXPECT_EQ(wh_cfg_int(s, "a", 7, -10, 10, &i, ctx), WH_OK);
    EXPECT_EQ(i, -5);
    EXPECT_EQ(wh_cfg_int(s, "absent", 7, -10, 10, &i, ctx), WH_OK);
    EXPECT_EQ(i, 7);
    EXPECT_EQ(wh_cfg_int_req(s, "a", -5, -5, &i, ctx), WH_OK); // bounds inclusive
    EXPECT_EQ(i, -5);
    float f = 0;
    EXPECT_EQ(wh_cfg_float(s, "f", 9.f, 0.f, 1.f, &f, ctx), WH_OK);
    EXPECT_FLOAT_EQ(f, 0.001f);
    EXPECT_EQ(wh_cfg_float(s, "g", 9.f, 0.f, 1.f, &f, ctx), WH_OK);
    EXPECT_FLOAT_EQ(f, 0.5f);
    EXPECT_EQ(wh_cfg_float(s, "absent", 9.f, 0.f, 1.f, &f, ctx), WH_OK);
    EXPECT_FLOAT_EQ(f, 9.f);
    int li[4] = {0, 0, 0, 0}, n = -1;
    EXPECT_EQ(wh_cfg_ints(s, "l", li, 4, &n, ctx), WH_OK);
    ASSERT_EQ(n, 2);
    EXPECT_EQ(li[0], -1);
    EXPECT_EQ(li[1], 61);
    EXPECT_EQ(wh_cfg_ints(s, "absent", li, 4, &n, ctx), WH_OK);
    EXPECT_EQ(n, 0);
    float lf[3] = {0, 0, 0};
    EXPECT_EQ(wh_cfg_floats(s, "fl", lf, 3, &n, ctx), WH_OK); // exactly max entries
    ASSERT_EQ(n, 3);
    EXPECT_FLOAT_EQ(lf[0], 0.5f);
    EXPECT_FLOAT_EQ(lf[1], 2.f);
    EXPECT_FLOAT_EQ(lf[2], -10.f);
    EXPECT_STREQ(wh_cfg_str(s, "name", "x"), "leaky");
    EXPECT_STREQ(wh_cfg_str(s, "absent", "x"), "x");
    EXPECT_EQ(wh_cfg_str(s, "absent", nullptr), nullptr);
    static const char *const pols[] = {"constant", "steps", "poly", nullptr};
    int idx = -1;
    EXPECT_EQ(wh_cfg_choice(s, "pol", pols, 0, &idx, ctx), WH_OK);
    EXPECT_EQ(idx, 1);
    EXPECT_EQ(wh_cfg_choice(s, "absent", pols, 2, &idx, ctx), WH_OK);
    EXPECT_EQ(idx, 2);
    EXPECT_TRUE(wh_cfg_has(s, "name"));
    EXPECT_FALSE(wh_cfg_has(s, "absent"));
    ASSERT_NE(wh_cfg_find(s, "a"), nullptr);
    EXPECT_EQ(wh_cfg_find(s, "a")->line, 2);
    EXPECT_EQ(wh_cfg_find(s, "absent"), nullptr);
    EXPECT_EQ(s->n_kv, 7); // lookups of absent keys add nothing
    for (int k = 0; k < s->n_kv; k++) EXPECT_EQ(s->kv[k].used, 1) << s->kv[k].key;
    EXPECT_EQ(ctx->n_warn, 0);
}

// Runs getter `get` on key "k" of "[sec]\n\nk=<val>" (the key on line 3) and
// expects WH_ERR_CFG naming bad.cfg:3 and the key.
template <class Get>
void expect_value_error(const std::string &val, Get get, const std::string &also = "")
{
    Parsed p("[sec]\n\nk=" + val + "\n", "bad.cfg");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    const wh_status st = get(&p.cfg->sec[0], &p.ctx);
    EXPECT_EQ(st, WH_ERR_CFG) << "value '" << val << "'";
    EXPECT_EQ(p.ctx.status, WH_ERR_CFG);
    EXPECT_TRUE(contains(p.msg(), "bad.cfg:3:")) << p.msg();
    EXPECT_TRUE(contains(p.msg(), "'k'")) << p.msg();
    if (!also.empty()) {
        EXPECT_TRUE(contains(p.msg(), also)) << "want '" << also << "' in: " << p.msg();
    }
}

wh_status get_int(wh_cfg_section *s, wh_ctx *ctx)
{
    int v = 0;
    return wh_cfg_int(s, "k", 0, 1, 100, &v, ctx);
}
wh_status get_float(wh_cfg_section *s, wh_ctx *ctx)
{
    float v = 0;
    return wh_cfg_float(s, "k", 0.f, -1.f, 1.f, &v, ctx);
}
wh_status get_ints3(wh_cfg_section *s, wh_ctx *ctx)
{
    int v[3], n = 0;
    return wh_cfg_ints(s, "k", v, 3, &n, ctx);
}
wh_status get_floats3(wh_cfg_section *s, wh_ctx *ctx)
{
    float v[3];
    int n = 0;
    return wh_cfg_floats(s, "k", v, 3, &n, ctx);
}

TEST(CfgGet, NonInteger)
{
    expect_value_error("3x", get_int, "3x");
    expect_value_error("x3", get_int);
    expect_value_error("2.5", get_int);
    expect_value_error("", get_int);
    expect_value_error("99999999999999999999999", get_int); // overflows long
}

TEST(CfgGet, OneIntegerExpectedNotAList) { expect_value_error("3,4", get_int, "3,4"); }

TEST(CfgGet, IntegerOutOfRange)
{
    expect_value_error("0", get_int, "[1, 100]");
    expect_value_error("101", get_int, "[1, 100]");
    expect_value_error("-7", get_int);
    expect_value_error("4294967297", get_int); // 2^32+1: must not wrap to 1
}

TEST(CfgGet, IntegerRequiredMissingNamesTheSectionHeader)
{
    Parsed p("[net]\nwidth=1\n\n[convolutional]\nsize=3\n", "bad.cfg");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    int v = 0;
    EXPECT_EQ(wh_cfg_int_req(&p.cfg->sec[1], "filters", 1, 10, &v, &p.ctx), WH_ERR_CFG);
    EXPECT_TRUE(contains(p.msg(), "bad.cfg:4:")) << p.msg();
    EXPECT_TRUE(contains(p.msg(), "'filters'")) << p.msg();
    EXPECT_TRUE(contains(p.msg(), "[convolutional]")) << p.msg();
}

TEST(CfgGet, FloatNotANumber)
{
    expect_value_error("abc", get_float, "abc");
    expect_value_error("0.5x", get_float);
    expect_value_error("1.5.2", get_float);
    expect_value_error("", get_float);
    expect_value_error("nan", get_float);
    expect_value_error("inf", get_float);
    expect_value_error("0.1,0.2", get_float);
}

TEST(CfgGet, FloatOutOfRange)
{
    expect_value_error("1.01", get_float, "out of range");
    expect_value_error("-2", get_float, "out of range");
}

TEST(CfgGet, FloatListValueBeyondFloat)
{
    // 1e39 is a finite double but overflows float to inf.
    expect_value_error("0.5,1e39", get_floats3);
    expect_value_error("-1e39", get_floats3);
}

TEST(CfgGet, ListTrailingComma)
{
    expect_value_error("1,2,", get_ints3, "trailing comma");
    expect_value_error("0.5,", get_floats3, "trailing comma");
}

TEST(CfgGet, ListEmptyItem)
{
    expect_value_error("1,,2", get_ints3);
    expect_value_error(",1", get_ints3);
    expect_value_error("1,x", get_ints3);
    expect_value_error("1,,2", get_floats3);
}

TEST(CfgGet, ListTooLong)
{
    expect_value_error("1,2,3,4", get_ints3, "more than 3");
    expect_value_error("1,2,3,4", get_floats3, "more than 3");
}

TEST(CfgGet, ListIntegerOutsideIntRange)
{
    // 2^32 - 1 would wrap to -1, a valid-looking relative layer index.
    expect_value_error("-1,4294967295", get_ints3);
}

TEST(CfgGet, UnknownChoiceListsTheKnownValues)
{
    static const char *const pols[] = {"constant", "steps", "poly", nullptr};
    expect_value_error(
        "stepz",
        [](wh_cfg_section *s, wh_ctx *ctx) {
            int idx = 0;
            return wh_cfg_choice(s, "k", pols, 0, &idx, ctx);
        },
        "stepz");
    Parsed p("[sec]\n\nk=Steps\n", "bad.cfg"); // case matters
    int idx = -1;
    EXPECT_EQ(wh_cfg_choice(&p.cfg->sec[0], "k", pols, 0, &idx, &p.ctx), WH_ERR_CFG);
    EXPECT_TRUE(contains(p.msg(), "constant, steps, poly")) << p.msg();
}

// ------------------------------------------------------- unused keys

TEST(CfgWarn, UnusedKeysAreReportedWithSectionLineAndKey)
{
    Parsed p("[net]\nwidth=1\n\n[convolutional]\nfilters=2\nsize=3\nfliters=4\ncolour=red\n",
             "w.cfg");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    wh_cfg_section *s = &p.cfg->sec[1];
    int v = 0;
    ASSERT_EQ(wh_cfg_int(s, "filters", 1, 1, 10, &v, &p.ctx), WH_OK);
    EXPECT_TRUE(wh_cfg_has(s, "size")); // has() counts as reading
    wh_cfg_warn_unused(s, &p.ctx);
    ASSERT_EQ(p.ctx.n_warn, 2);
    EXPECT_EQ(p.ctx.n_warn_total, 2);
    const std::string w0 = p.ctx.warn[0], w1 = p.ctx.warn[1];
    EXPECT_TRUE(contains(w0, "w.cfg:7:")) << w0;
    EXPECT_TRUE(contains(w0, "[convolutional]")) << w0;
    EXPECT_TRUE(contains(w0, "'fliters'")) << w0;
    EXPECT_TRUE(contains(w1, "w.cfg:8:")) << w1;
    EXPECT_TRUE(contains(w1, "'colour'")) << w1;
    EXPECT_EQ(p.ctx.status, WH_OK); // a warning is not an error

    // [net] was never read: its key is unused too; after reading, nothing.
    wh_cfg_warn_unused(&p.cfg->sec[0], &p.ctx);
    ASSERT_EQ(p.ctx.n_warn, 3);
    EXPECT_TRUE(contains(p.ctx.warn[2], "w.cfg:2:")) << p.ctx.warn[2];
    EXPECT_TRUE(contains(p.ctx.warn[2], "'width'")) << p.ctx.warn[2];
    (void)wh_cfg_find(&p.cfg->sec[0], "width");
    wh_cfg_warn_unused(&p.cfg->sec[0], &p.ctx);
    EXPECT_EQ(p.ctx.n_warn, 3);
}

TEST(CfgWarn, NetCreateWarnsAboutAnUnknownConvolutionalKey)
{
    const char *text = "[net]\n"          // 1
                       "width=8\n"        // 2
                       "height=8\n"       // 3
                       "max_epochs=3\n"   // 4 a darknet [net] key: no warning
                       "[convolutional]\n" // 5
                       "filters=2\n"      // 6
                       "size=3\n"         // 7
                       "bogus_key=7\n"    // 8
                       "activation=linear\n"; // 9
    Parsed p(text, "net.cfg");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    wh_net_opts o = {};
    o.batch = 1;
    wh_net *net = nullptr;
    ASSERT_EQ(wh_net_create(p.cfg, &o, &net, &p.ctx), WH_OK) << p.msg();
    ASSERT_NE(net, nullptr);
    ASSERT_EQ(p.ctx.n_warn, 1);
    const std::string w = p.ctx.warn[0];
    EXPECT_TRUE(contains(w, "net.cfg:8:")) << w;
    EXPECT_TRUE(contains(w, "'bogus_key'")) << w;
    EXPECT_TRUE(contains(w, "[convolutional]")) << w;
    wh_net_destroy(net);
}

TEST(CfgWarn, NetCreateWarnsAboutAnUnknownNetKey)
{
    Parsed p("[net]\nwidth=8\nheight=8\nwidht=9\n[convolutional]\nfilters=2\n", "net.cfg");
    ASSERT_EQ(p.st, WH_OK) << p.msg();
    wh_net *net = nullptr;
    ASSERT_EQ(wh_net_create(p.cfg, nullptr, &net, &p.ctx), WH_OK) << p.msg();
    ASSERT_EQ(p.ctx.n_warn, 1);
    EXPECT_TRUE(contains(p.ctx.warn[0], "net.cfg:4:")) << p.ctx.warn[0];
    EXPECT_TRUE(contains(p.ctx.warn[0], "'widht'")) << p.ctx.warn[0];
    wh_net_destroy(net);
}

}  // namespace
