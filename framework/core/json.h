/* whittle: JSON, written and read in one place.
 *
 * Writing: whittle writes its JSON files (train.jsonl, report.json, stage.json,
 * gamma.jsonl, info --json) with fprintf; every string goes through
 * wh_json_str (quotes, backslashes and every control character escaped)
 * and every number that may be non-finite through wh_json_num (null), so
 * that each file parses with Python's json and any strict parser.
 *
 * Reading: with cJSON (Debian's libcjson-dev, MIT, 1.7), a small, widely
 * used and fuzzed parser, rather than a parser of our own: what whittle
 * reads back (a pipeline stage's row decides whether the stage is done) must
 * be read by a real parser, and a second hand-written parser would be one
 * more thing to get right. Its objects stay behind this header.
 */
#ifndef WH_JSON_H
#define WH_JSON_H

#include <stdio.h>

#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A JSON string literal of s (NULL writes ""). */
void wh_json_str(FILE *f, const char *s);
/* s escaped for use inside a JSON string literal (for printf-style writers:
 * "\"%s\"" with this), cut to fit n bytes; returns buf. */
const char *wh_json_escape(char *buf, size_t n, const char *s);
/* v with printf format fmt (e.g. "%.6f"), or null when v is NaN or infinite. */
void wh_json_num(FILE *f, const char *fmt, double v);

typedef struct wh_json wh_json; /* a parsed document (a cJSON tree) */

/* Parses text; what names it in the message (a file, "file:line"), which
 * gives the line and column of the first error. */
wh_status wh_json_parse(const char *text, const char *what, wh_json **out, wh_ctx *ctx);
/* Reads and parses a whole file. */
wh_status wh_json_read_file(const char *path, wh_json **out, wh_ctx *ctx);
void wh_json_free(wh_json *j);

/* Members of a top-level object: a number (NaN when absent, null or not a
 * number), a string (NULL when absent or not a string, valid until free),
 * 1 when present at all. */
double wh_json_get_num(const wh_json *j, const char *key);
const char *wh_json_get_str(const wh_json *j, const char *key);
int wh_json_has(const wh_json *j, const char *key);
/* Member key of one line of a JSON-lines file, parsed whole; NaN when the
 * line does not parse or has no such number. */
double wh_json_line_num(const char *line, const char *key);

#ifdef __cplusplus
}
#endif
#endif
