/* whittle: PASCAL VOC trees (Annotations/<id>.xml, JPEGImages/<id>.jpg,
 * ImageSets/Main/<split>.txt), one root, several, or a whole VOCdevkit.
 *
 * Annotations are read with libxml2. Its own error printing is switched off
 * (XML_PARSE_NOERROR / NOWARNING) and its last error, with the line number,
 * is turned into our message; XML_PARSE_NONET keeps it off the network. The
 * rules the reader applies are listed in dataset.h. */
#include "dataset.h"

#include "framework/core/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

/* A box may reach this many pixels beyond [1, size]: annotation tools write
 * 0 or size+1 for boxes touching the border. */
#define WH__VOC_SLACK 1.0

/* "VOC" followed by digits only: the year folders of a VOCdevkit. */
static int wh__is_year(const char *name)
{
    if (strncmp(name, "VOC", 3) != 0 || !name[3]) return 0;
    for (const char *p = name + 3; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return 1;
}

static int wh__has_annotations(const char *dir)
{
    char *p = wh__ds_join(dir, "Annotations");
    int yes = p && wh__ds_is_dir(p);
    free(p);
    return yes;
}

static int wh__cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The VOC<digits> folders of a devkit that have Annotations/, sorted by name
 * (so VOC2007 comes before VOC2012). */
static wh_status wh__voc_years(const char *dir, char ***out, int *n_out, wh_ctx *ctx)
{
    *out = NULL;
    *n_out = 0;
    DIR *dp = opendir(dir);
    if (!dp) return wh_error(ctx, WH_ERR_IO, "%s: cannot list the folder: %s", dir, strerror(errno));
    char **v = NULL;
    int n = 0, cap = 0;
    wh_status st = WH_OK;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        if (!wh__is_year(e->d_name)) continue;
        char *full = wh__ds_join(dir, e->d_name);
        if (!full) {
            st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
            break;
        }
        if (!wh__has_annotations(full)) {
            free(full);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            char **p = realloc(v, (size_t)cap * sizeof(*p));
            if (!p) {
                free(full);
                st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
                break;
            }
            v = p;
        }
        v[n++] = full;
    }
    closedir(dp);
    if (st != WH_OK) {
        wh__ds_free_names(v, n);
        return st;
    }
    if (n > 1) qsort(v, (size_t)n, sizeof(*v), wh__cmp_str);
    *out = v;
    *n_out = n;
    return WH_OK;
}

int wh__ds_voc_kind(const char *dir)
{
    if (wh__has_annotations(dir)) return 1;
    char **years;
    int n;
    if (wh__voc_years(dir, &years, &n, NULL) != WH_OK) return 0;
    wh__ds_free_names(years, n);
    return n > 0 ? 2 : 0;
}

/* The last component of a folder path, trailing slashes ignored; malloc'd. */
static char *wh__basename(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    char *s = malloc(n - b + 1);
    if (!s) return NULL;
    memcpy(s, dir + b, n - b);
    s[n - b] = 0;
    return s;
}

/* ---- one annotation file ---- */

static xmlNode *wh__child(xmlNode *parent, const char *name)
{
    for (xmlNode *c = parent->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, BAD_CAST name)) return c;
    return NULL;
}

/* The element's text, trimmed; malloc'd (NULL: out of memory). */
static char *wh__text(xmlNode *n)
{
    xmlChar *c = xmlNodeGetContent(n);
    char *s = wh__ds_strdup(c ? wh__ds_trim((char *)c) : "");
    xmlFree(c);
    return s;
}

/* Reads the number in <name> under parent. A missing element leaves *v and
 * returns WH_OK when it is optional. integer: the value must be whole and
 * non-negative (sizes, flags). */
static wh_status wh__num(const char *path, xmlNode *parent, const char *name, int required,
                         int integer, double *v, wh_ctx *ctx)
{
    xmlNode *c = wh__child(parent, name);
    if (!c) {
        if (!required) return WH_OK;
        return wh_error(ctx, WH_ERR_PARSE, "%s:%ld: <%s> has no <%s>", path, xmlGetLineNo(parent),
                        (const char *)parent->name, name);
    }
    char *t = wh__text(c);
    if (!t) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    char *end;
    errno = 0;
    double x = strtod(t, &end);
    wh_status st = WH_OK;
    if (!t[0] || *end || errno == ERANGE || !isfinite(x))
        st = wh_error(ctx, WH_ERR_PARSE, "%s:%ld: <%s> '%s' is not a number", path,
                      xmlGetLineNo(c), name, t);
    else if (integer && (x < 0 || x != floor(x) || x > 1e9))
        st = wh_error(ctx, WH_ERR_PARSE, "%s:%ld: <%s> '%s' is not a whole number >= 0", path,
                      xmlGetLineNo(c), name, t);
    else
        *v = x;
    free(t);
    return st;
}

static int wh__class_index(const wh_dataset *d, const char *name)
{
    for (int i = 0; i < d->n_classes; i++)
        if (strcmp(d->class_names[i], name) == 0) return i;
    return -1;
}

static wh_status wh__unknown_class(const char *path, long line, const char *name,
                                   const wh_dataset *d, wh_ctx *ctx)
{
    char known[256] = "";
    size_t len = 0;
    for (int i = 0; i < d->n_classes && i < 5; i++) {
        int w = snprintf(known + len, sizeof(known) - len, "%s%s", i ? ", " : "",
                         d->class_names[i]);
        if (w < 0 || (size_t)w >= sizeof(known) - len) break;
        len += (size_t)w;
    }
    return wh_error(ctx, WH_ERR_PARSE,
                    "%s:%ld: unknown class '%s' (known: %s%s; %d classes in all; give the "
                    "class names, or list them in classes.txt)",
                    path, line, name, known, d->n_classes > 5 ? ", ..." : "", d->n_classes);
}

static wh_status wh__parse_object(const char *path, xmlNode *o, const wh_dataset *d,
                                  const wh_sample *s, wh_object *ob, wh_ctx *ctx)
{
    long line = xmlGetLineNo(o);
    xmlNode *nm = wh__child(o, "name");
    if (!nm) return wh_error(ctx, WH_ERR_PARSE, "%s:%ld: <object> has no <name>", path, line);
    char *name = wh__text(nm);
    if (!name) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    ob->cls = wh__class_index(d, name);
    wh_status st = WH_OK;
    if (ob->cls < 0) st = wh__unknown_class(path, xmlGetLineNo(nm), name, d, ctx);
    free(name);
    WH_TRY(st);

    double difficult = 0, truncated = 0;
    WH_TRY(wh__num(path, o, "difficult", 0, 1, &difficult, ctx));
    WH_TRY(wh__num(path, o, "truncated", 0, 1, &truncated, ctx));
    ob->difficult = difficult != 0;
    ob->truncated = truncated != 0;

    xmlNode *bb = wh__child(o, "bndbox");
    if (!bb) return wh_error(ctx, WH_ERR_PARSE, "%s:%ld: <object> has no <bndbox>", path, line);
    double x0, y0, x1, y1;
    WH_TRY(wh__num(path, bb, "xmin", 1, 0, &x0, ctx));
    WH_TRY(wh__num(path, bb, "ymin", 1, 0, &y0, ctx));
    WH_TRY(wh__num(path, bb, "xmax", 1, 0, &x1, ctx));
    WH_TRY(wh__num(path, bb, "ymax", 1, 0, &y1, ctx));
    long bl = xmlGetLineNo(bb);
    if (x1 < x0 || y1 < y0)
        return wh_error(ctx, WH_ERR_PARSE,
                        "%s:%ld: <bndbox> is inverted: x %g..%g, y %g..%g (need xmin <= xmax, "
                        "ymin <= ymax)",
                        path, bl, x0, x1, y0, y1);
    /* VOC pixels run 1..width; 0 and width+1 are common off-by-ones. */
    if (s->width > 0 && (x0 < 1 - WH__VOC_SLACK || x1 > s->width + WH__VOC_SLACK))
        return wh_error(ctx, WH_ERR_PARSE,
                        "%s:%ld: <bndbox> x %g..%g lies outside the image width %d (from <size>)",
                        path, bl, x0, x1, s->width);
    if (s->height > 0 && (y0 < 1 - WH__VOC_SLACK || y1 > s->height + WH__VOC_SLACK))
        return wh_error(ctx, WH_ERR_PARSE,
                        "%s:%ld: <bndbox> y %g..%g lies outside the image height %d (from <size>)",
                        path, bl, y0, y1, s->height);
    ob->xmin = (float)x0;
    ob->ymin = (float)y0;
    ob->xmax = (float)x1;
    ob->ymax = (float)y1;
    return WH_OK;
}

/* Fills s (size, objects) from the annotation at path; *filename gets the
 * <filename> text, or NULL. */
static wh_status wh__parse_annotation(const char *path, const wh_dataset *d, wh_sample *s,
                                      char **filename, wh_ctx *ctx)
{
    *filename = NULL;
    /* read whole, bounded (VOC's are about 1 KB): a regular file of at most
     * 64 MiB, so a huge or endless one cannot grow the document tree */
    char *text;
    size_t len;
    WH_TRY(wh_file_read_all(path, WH_TEXT_MAX_BYTES, "VOC annotation", &text, &len, ctx));
    xmlParserCtxtPtr px = xmlNewParserCtxt();
    if (!px) {
        free(text);
        return wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory", path);
    }
    xmlDocPtr doc = xmlCtxtReadMemory(px, text, (int)len, path, NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    free(text);
    wh_status st = WH_OK;
    if (!doc) {
        xmlErrorPtr e = xmlCtxtGetLastError(px);
        char what[200] = "unreadable";
        if (e && e->message) {
            snprintf(what, sizeof(what), "%s", e->message);
            wh__ds_trim(what);
        }
        st = wh_error(ctx, WH_ERR_PARSE, "%s:%d: malformed XML: %s", path, e ? e->line : 0, what);
        xmlFreeParserCtxt(px);
        return st;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!root || !xmlStrEqual(root->name, BAD_CAST "annotation")) {
        st = wh_error(ctx, WH_ERR_PARSE, "%s:%ld: root element is <%s>, expected <annotation>",
                      path, root ? xmlGetLineNo(root) : 0L,
                      root ? (const char *)root->name : "nothing");
        goto done;
    }
    xmlNode *fn = wh__child(root, "filename");
    if (fn && !(*filename = wh__text(fn))) {
        st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* The size first: objects are checked against it wherever it appears. */
    xmlNode *size = wh__child(root, "size");
    if (size) {
        double w = 0, h = 0, c = 0;
        if ((st = wh__num(path, size, "width", 0, 1, &w, ctx)) != WH_OK) goto done;
        if ((st = wh__num(path, size, "height", 0, 1, &h, ctx)) != WH_OK) goto done;
        if ((st = wh__num(path, size, "depth", 0, 1, &c, ctx)) != WH_OK) goto done;
        s->width = (int)w;
        s->height = (int)h;
        s->depth = (int)c;
    }
    int n = 0;
    for (xmlNode *c = root->children; c; c = c->next)
        n += c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, BAD_CAST "object");
    if (n > 0) {
        s->obj = calloc((size_t)n, sizeof(*s->obj));
        if (!s->obj) {
            st = wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
    }
    for (xmlNode *c = root->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || !xmlStrEqual(c->name, BAD_CAST "object")) continue;
        if ((st = wh__parse_object(path, c, d, s, &s->obj[s->n_obj], ctx)) != WH_OK) goto done;
        s->n_obj++;
    }
done:
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(px);
    if (st != WH_OK) {
        free(*filename);
        *filename = NULL;
    }
    return st;
}

/* ---- one VOC folder ---- */

/* JPEGImages/<id>.jpg, else the annotation's <filename>, else <id>.png. */
static char *wh__find_image(const char *dir, const char *id, const char *filename)
{
    char name[4096];
    const char *tries[3] = {".jpg", NULL, ".png"};
    for (int t = 0; t < 3; t++) {
        if (t == 1) {
            if (!filename || !filename[0] || strchr(filename, '/')) continue;
            snprintf(name, sizeof(name), "JPEGImages/%s", filename);
        } else {
            snprintf(name, sizeof(name), "JPEGImages/%s%s", id, tries[t]);
        }
        char *p = wh__ds_join(dir, name);
        if (p && wh__ds_is_file(p)) return p;
        free(p);
    }
    return NULL;
}

static wh_status wh__load_folder(wh_dataset *d, const char *dir, const char *prefix,
                                 const char *split, int need_images, wh_ctx *ctx)
{
    char rel[1024];
    snprintf(rel, sizeof(rel), "ImageSets/Main/%s.txt", split);
    char *list = wh__ds_join(dir, rel);
    if (!list) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (!wh__ds_is_file(list)) {
        wh_status st =
            wh_error(ctx, WH_ERR_IO, "%s: split file not found (split '%s' of %s)", list, split, dir);
        free(list);
        return st;
    }
    char *text;
    wh_status st = wh__ds_read_text(list, &text, ctx);
    if (st != WH_OK) {
        free(list);
        return st;
    }
    char *cur = text, *raw, *ann = NULL, *filename = NULL;
    for (int line = 1; st == WH_OK && (raw = wh__ds_next_line(&cur)) != NULL; line++) {
        char *id = wh__ds_trim(raw);
        if (!id[0]) continue;
        if (strpbrk(id, " \t")) {
            st = wh_error(ctx, WH_ERR_PARSE,
                          "%s:%d: expected one image id per line, got '%s' (the per-class lists "
                          "'<class>_<split>.txt' are not read; give ImageSets/Main/<split>.txt)",
                          list, line, id);
            break;
        }
        snprintf(rel, sizeof(rel), "Annotations/%s.xml", id);
        ann = wh__ds_join(dir, rel);
        if (!ann) {
            st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
            break;
        }
        if (!wh__ds_is_file(ann)) {
            st = wh_error(ctx, WH_ERR_IO, "%s: annotation not found (image id '%s' at %s:%d)", ann,
                          id, list, line);
            break;
        }
        wh_sample *s;
        if ((st = wh__ds_add_sample(d, &s, ctx)) != WH_OK) break;
        size_t nid = (prefix ? strlen(prefix) + 1 : 0) + strlen(id) + 1;
        s->id = malloc(nid);
        if (!s->id) {
            st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(s->id, nid, "%s%s%s", prefix ? prefix : "", prefix ? "/" : "", id);
        if ((st = wh__parse_annotation(ann, d, s, &filename, ctx)) != WH_OK) break;
        s->image_path = wh__find_image(dir, id, filename);
        if (!s->image_path && need_images)
            st = wh_error(ctx, WH_ERR_IO,
                          "%s/JPEGImages/%s.jpg: image not found (image id '%s' at %s:%d; also "
                          "tried the annotation's <filename> and %s.png)",
                          dir, id, id, list, line, id);
        free(filename);
        filename = NULL;
        free(ann);
        ann = NULL;
    }
    free(ann);
    free(text);
    free(list);
    return st;
}

static char *wh__source(const char *const *roots, int n_roots, const char *split)
{
    size_t n = strlen(split) + 8;
    for (int i = 0; i < n_roots; i++) n += strlen(roots[i]) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    s[0] = 0;
    for (int i = 0; i < n_roots; i++) {
        if (i) strcat(s, "+");
        strcat(s, roots[i]);
    }
    strcat(s, " (");
    strcat(s, split);
    strcat(s, ")");
    return s;
}

/* Class names: the caller's, else classes.txt of the first root, else VOC's. */
static wh_status wh__voc_classes(wh_dataset *d, const char *root, const char *const *names,
                                 int n, wh_ctx *ctx)
{
    if (names) {
        for (int i = 0; i < n; i++) {
            if (!names[i] || !names[i][0])
                return wh_error(ctx, WH_ERR_ARG, "class name %d is empty", i);
            for (int k = 0; k < i; k++)
                if (strcmp(names[k], names[i]) == 0)
                    return wh_error(ctx, WH_ERR_ARG, "class name '%s' given twice", names[i]);
        }
        return wh__ds_set_classes(d, names, n, ctx);
    }
    char *file = wh__ds_join(root, "classes.txt");
    if (!file) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    wh_status st;
    if (wh__ds_is_file(file)) {
        char **v;
        int nv;
        st = wh__ds_read_names(file, 0, &v, &nv, ctx);
        if (st == WH_OK) {
            st = wh__ds_set_classes(d, (const char *const *)v, nv, ctx);
            wh__ds_free_names(v, nv);
        }
    } else {
        st = wh__ds_set_classes(d, wh_voc_class_names(), 20, ctx);
    }
    free(file);
    return st;
}

/* Drops (and frees) the year folders of a devkit that lack the split; none
 * left is an error. */
static wh_status wh__keep_with_split(const char *devkit, char **years, int *n, const char *split,
                                     wh_ctx *ctx)
{
    if (*n == 0)
        return wh_error(ctx, WH_ERR_IO,
                        "%s: neither a VOC root (no Annotations/) nor a VOCdevkit (no VOC20xx/ "
                        "folders with Annotations/)",
                        devkit);
    char rel[1024];
    snprintf(rel, sizeof(rel), "ImageSets/Main/%s.txt", split);
    int kept = 0, had = *n;
    for (int y = 0; y < had; y++) {
        char *list = wh__ds_join(years[y], rel);
        if (list && wh__ds_is_file(list))
            years[kept++] = years[y];
        else
            free(years[y]);
        free(list);
    }
    *n = kept;
    if (kept == 0)
        return wh_error(ctx, WH_ERR_IO,
                        "%s: none of its %d VOC folders has %s (split '%s' not found)", devkit,
                        had, rel, split);
    return WH_OK;
}

static wh_status wh__voc_load(const char *const *roots, int n_roots, const char *split,
                              const char *const *class_names, int n_classes, int need_images,
                              wh_dataset **out, wh_ctx *ctx)
{
    if (!out) return wh_error(ctx, WH_ERR_ARG, "wh_voc_load: out is NULL");
    *out = NULL;
    if (!roots || n_roots < 1) return wh_error(ctx, WH_ERR_ARG, "wh_voc_load: no root folder");
    for (int i = 0; i < n_roots; i++)
        if (!roots[i] || !roots[i][0]) return wh_error(ctx, WH_ERR_ARG, "VOC root %d is empty", i);
    if (!split || !split[0] || strchr(split, '/'))
        return wh_error(ctx, WH_ERR_ARG, "VOC split '%s' is not a split name (e.g. trainval, test)",
                        split ? split : "");
    if (class_names && n_classes < 1)
        return wh_error(ctx, WH_ERR_ARG, "wh_voc_load: %d class names", n_classes);

    xmlInitParser();
    char *source = wh__source(roots, n_roots, split);
    wh_dataset *d = source ? wh__ds_new(source) : NULL;
    free(source);
    if (!d) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    wh_status st = wh__voc_classes(d, roots[0], class_names, n_classes, ctx);

    /* Every VOC folder to read, in order; a devkit contributes its years that
     * have the split. */
    char **dirs = NULL;
    int n_dirs = 0, cap = 0, joined = n_roots > 1;
    for (int r = 0; st == WH_OK && r < n_roots; r++) {
        char **years = NULL;
        int n_years = 0;
        if (!wh__ds_is_dir(roots[r])) {
            st = wh_error(ctx, WH_ERR_IO, "%s: no such folder", roots[r]);
        } else if (wh__has_annotations(roots[r])) {
            years = malloc(sizeof(*years));
            if (years && (years[0] = wh__ds_strdup(roots[r])) != NULL)
                n_years = 1;
            else
                st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        } else if ((st = wh__voc_years(roots[r], &years, &n_years, ctx)) == WH_OK) {
            joined = 1;
            st = wh__keep_with_split(roots[r], years, &n_years, split, ctx);
        }
        if (st == WH_OK && n_dirs + n_years > cap) {
            cap = 2 * (n_dirs + n_years);
            char **p = realloc(dirs, (size_t)cap * sizeof(*p));
            if (!p) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
            else dirs = p;
        }
        if (st == WH_OK) {
            memcpy(dirs + n_dirs, years, (size_t)n_years * sizeof(*years));
            n_dirs += n_years;
            free(years);
        } else {
            wh__ds_free_names(years, n_years);
        }
    }
    joined = joined || n_dirs > 1;
    for (int i = 0; st == WH_OK && i < n_dirs; i++) {
        char *prefix = joined ? wh__basename(dirs[i]) : NULL;
        if (joined && !prefix) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        else st = wh__load_folder(d, dirs[i], prefix, split, need_images, ctx);
        free(prefix);
    }
    wh__ds_free_names(dirs, n_dirs);
    if (st != WH_OK) {
        wh_dataset_free(d);
        return st;
    }
    *out = d;
    return WH_OK;
}

wh_status wh_voc_load(const char *const *roots, int n_roots, const char *split,
                      const char *const *class_names, int n_classes, wh_dataset **out,
                      wh_ctx *ctx)
{
    return wh__voc_load(roots, n_roots, split, class_names, n_classes, 1, out, ctx);
}

wh_status wh_voc_load_annotations(const char *root, const char *split, wh_dataset **out, wh_ctx *ctx)
{
    return wh__voc_load(&root, 1, split, NULL, 0, 0, out, ctx);
}
