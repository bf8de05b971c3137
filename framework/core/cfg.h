/* whittle: darknet .cfg parsing.
 *
 * Syntax as darknet reads it: "[section]" headers, "key=value" lines, whole-line
 * comments starting with '#' or ';', blank lines; whitespace anywhere in a line
 * is dropped (darknet strips it, so "layers = -1, 61" means "-1,61"). We also
 * drop a trailing "# ..." or "; ..." comment after a value, which darknet's
 * atoi() tolerated by accident and users rely on.
 *
 * Every section and key remembers its line so that each error names file:line.
 * Getters mark keys as used; wh_cfg_warn_unused() then warns about the keys no
 * layer understood, naming section, line and key (darknet warns too).
 */
#ifndef WH_CFG_H
#define WH_CFG_H

#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wh_cfg_kv {
    char *key;
    char *val;
    int line;
    int used;
} wh_cfg_kv;

typedef struct wh_cfg_section {
    char *type;          /* "net", "convolutional", ... */
    const char *file;    /* the cfg's name, for messages (owned by wh_cfg) */
    int line;            /* line of the "[type]" header */
    int n_kv, cap_kv;
    wh_cfg_kv *kv;
} wh_cfg_section;

typedef struct wh_cfg {
    char *file;
    int n_sec, cap_sec;
    wh_cfg_section *sec;
} wh_cfg;

wh_status wh_cfg_parse_file(const char *path, wh_cfg **out, wh_ctx *ctx);
/* name is what messages call the text ("<string>" when NULL). */
wh_status wh_cfg_parse_string(const char *text, const char *name, wh_cfg **out, wh_ctx *ctx);
void wh_cfg_free(wh_cfg *cfg);

/* The entry for key, or NULL. Marks it used. */
wh_cfg_kv *wh_cfg_find(wh_cfg_section *s, const char *key);
int wh_cfg_has(wh_cfg_section *s, const char *key);

/* Integer in [lo, hi]; absent -> def. A value that is not an integer or is out
 * of range is WH_ERR_CFG naming file:line and key. */
wh_status wh_cfg_int(wh_cfg_section *s, const char *key, int def, int lo, int hi, int *out,
                     wh_ctx *ctx);
/* Same, but the key must be present. */
wh_status wh_cfg_int_req(wh_cfg_section *s, const char *key, int lo, int hi, int *out,
                         wh_ctx *ctx);
wh_status wh_cfg_float(wh_cfg_section *s, const char *key, float def, float lo, float hi,
                       float *out, wh_ctx *ctx);
/* String value; absent -> def (may be NULL). The pointer lives as long as cfg. */
const char *wh_cfg_str(wh_cfg_section *s, const char *key, const char *def);
/* Comma-separated lists; *n gets the count. More than max entries is an error. */
wh_status wh_cfg_ints(wh_cfg_section *s, const char *key, int *out, int max, int *n,
                      wh_ctx *ctx);
wh_status wh_cfg_floats(wh_cfg_section *s, const char *key, float *out, int max, int *n,
                        wh_ctx *ctx);
/* One of the names in choices (NULL-terminated); *idx gets its position. */
wh_status wh_cfg_choice(wh_cfg_section *s, const char *key, const char *const *choices,
                        int def_idx, int *idx, wh_ctx *ctx);

/* Text editing for derived cfgs (overrides, pruned networks): returns in
 * *out (malloc'd) a copy of text where key=value is set in the first
 * [section]: an existing line for key is replaced, else the line is added
 * right after the header. Other lines, comments included, are kept as they
 * are. No such section: WH_ERR_CFG. */
wh_status wh_cfg_text_set(const char *text, const char *section, const char *key, const char *value,
                          char **out, wh_ctx *ctx);
/* The same in layer `layer`'s section (0-based, the sections after [net]). */
wh_status wh_cfg_text_set_layer(const char *text, int layer, const char *key, const char *value, char **out,
                                wh_ctx *ctx);
/* Reads a whole text file (cfg, lists) into a malloc'd NUL-terminated string. */
wh_status wh_read_text_file(const char *path, char **out, wh_ctx *ctx);

/* Warns once for each key of s that no getter asked for. */
void wh_cfg_warn_unused(const wh_cfg_section *s, wh_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
