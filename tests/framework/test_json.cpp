// framework/core/json.h: what whittle writes parses back to the same text (every
// character that JSON must escape, hand-listed), numbers that are not finite
// become null, and a parse error names the line and column.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" {
#include "framework/core/json.h"
}

namespace {

std::string write_obj(const std::string &s, double v)
{
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fputs("{\"s\": ", f);
    wh_json_str(f, s.c_str());
    fputs(", \"v\": ", f);
    wh_json_num(f, "%.6f", v);
    fputs("}", f);
    fclose(f);
    std::string out(buf, len);
    free(buf);
    return out;
}

TEST(Json, StringsRoundTripThroughAParser)
{
    // quotes, backslashes, newline, tab, CR, other control characters, UTF-8
    const std::string hard = std::string("a\"b\\c\nd\te\rf") + '\x01' + '\x1f' + "\xc3\xa9/end";
    const std::string text = write_obj(hard, 0.5);
    // the escapes JSON requires, as a reader of the file sees them
    EXPECT_NE(text.find("a\\\"b\\\\c\\nd\\te\\rf\\u0001\\u001f"), std::string::npos) << text;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_json *j = nullptr;
    ASSERT_EQ(wh_json_parse(text.c_str(), "memory", &j, &ctx), WH_OK) << ctx.msg << "\n" << text;
    ASSERT_NE(wh_json_get_str(j, "s"), nullptr);
    EXPECT_EQ(std::string(wh_json_get_str(j, "s")), hard);
    EXPECT_DOUBLE_EQ(wh_json_get_num(j, "v"), 0.5);
    EXPECT_TRUE(std::isnan(wh_json_get_num(j, "s"))); // a string is not a number
    EXPECT_TRUE(std::isnan(wh_json_get_num(j, "absent")));
    EXPECT_FALSE(wh_json_has(j, "absent"));
    wh_json_free(j);
}

TEST(Json, NonFiniteNumbersAreNull)
{
    for (double v : {NAN, INFINITY, -INFINITY}) {
        const std::string text = write_obj("x", v);
        EXPECT_NE(text.find("\"v\": null"), std::string::npos) << text;
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_json *j = nullptr;
        ASSERT_EQ(wh_json_parse(text.c_str(), "memory", &j, &ctx), WH_OK) << ctx.msg;
        EXPECT_TRUE(wh_json_has(j, "v"));
        EXPECT_TRUE(std::isnan(wh_json_get_num(j, "v")));
        wh_json_free(j);
    }
}

TEST(Json, EscapeCutsOnlyBetweenWholeEscapes)
{
    char buf[8];
    // "ab" then a quote (2 bytes) then a control char (6 bytes): 4 + 6 > 7
    EXPECT_STREQ(wh_json_escape(buf, sizeof(buf), "ab\"\x02z"), "ab\\\"");
    EXPECT_STREQ(wh_json_escape(buf, sizeof(buf), "plain"), "plain");
}

TEST(Json, ParseErrorsNameTheLineAndColumn)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_json *j = nullptr;
    EXPECT_EQ(wh_json_parse("{\n  \"a\": 1,\n  \"b\": }\n", "stage.json", &j, &ctx), WH_ERR_PARSE);
    EXPECT_EQ(j, nullptr);
    EXPECT_NE(std::string(ctx.msg).find("stage.json: not valid JSON (line 3"), std::string::npos) << ctx.msg;
    // a truncated file (a writer killed mid-way) is not a row
    wh_ctx_init(&ctx);
    EXPECT_EQ(wh_json_parse("{\"stage\": \"baseline\", \"iterations\": 3", "x", &j, &ctx), WH_ERR_PARSE);
}

TEST(Json, LineNumbers)
{
    EXPECT_DOUBLE_EQ(wh_json_line_num("{\"iteration\": 12, \"loss\": 3.25}\n", "loss"), 3.25);
    // the key inside a string or a nested object is not the record's
    EXPECT_TRUE(std::isnan(wh_json_line_num("{\"reason\": \"\\\"loss\\\": 1\", \"x\": {\"loss\": 2}}", "loss")));
    EXPECT_TRUE(std::isnan(wh_json_line_num("{\"iteration\": 12, \"loss\": ", "loss")));
}

}  // namespace
