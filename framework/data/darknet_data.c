/* whittle: darknet datasets: a .data file (classes=, names=, train=,
 * valid=), list files of image paths, and one label file per image found
 * by darknet's replace_image_to_label. Boxes are turned into VOC pixel
 * boxes (the conversion and the path rules are written out in dataset.h). */
#include "dataset.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

/* Label values may stray this far outside [0, 1]: writers that round to
 * six digits, or compute the centre in float, land just outside. */
#define WH__LABEL_TOL 1e-3

/* ---- label path ---- */

/* Replaces the first `from` in s by `to` (not longer), in place. A path
 * that starts with `from` minus its leading '/' also counts (relative
 * "images/x.jpg"). */
static void wh__replace_dir(char *s, const char *from, const char *to)
{
    size_t nf = strlen(from), nt = strlen(to);
    char *hit = strstr(s, from);
    if (!hit && strncmp(s, from + 1, nf - 1) == 0) {
        from++, to++;
        nf--, nt--;
        hit = s;
    }
    if (!hit) return;
    memcpy(hit, to, nt);
    memmove(hit + nt, hit + nf, strlen(hit + nf) + 1);
}

static int wh__ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

wh_status wh_darknet_label_path(const char *image_path, char **out, wh_ctx *ctx)
{
    *out = NULL;
    char *p = wh__ds_strdup(image_path);
    if (!p) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    wh__replace_dir(p, "/images/", "/labels/");
    wh__replace_dir(p, "/JPEGImages/", "/labels/");
    char *slash = strrchr(p, '/');
    char *dot = strrchr(p, '.');
    static const char *const exts[] = {".jpg", ".jpeg", ".png", ".bmp"};
    int ok = 0;
    if (dot && (!slash || dot > slash + 1))
        for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) ok |= wh__ieq(dot, exts[i]);
    if (!ok) {
        free(p);
        return wh_error(ctx, WH_ERR_ARG,
                        "%s: the label file is found by replacing a .jpg, .jpeg, .png or .bmp "
                        "extension with .txt, and this path has none",
                        image_path);
    }
    strcpy(dot, ".txt"); /* no longer than the extension it replaces */
    *out = p;
    return WH_OK;
}

/* ---- .data file ---- */

enum { WH__K_CLASSES, WH__K_NAMES, WH__K_TRAIN, WH__K_VALID, WH__K_COUNT };
static const char *const wh__keys[WH__K_COUNT] = {"classes", "names", "train", "valid"};

typedef struct wh__data {
    const char *file;
    char *dir;               /* the .data file's folder, for the path fallback */
    const char *val[WH__K_COUNT]; /* into the file's text; NULL when absent */
    int line[WH__K_COUNT];
} wh__data;

static wh_status wh__parse_data(char *text, wh__data *dd, wh_ctx *ctx)
{
    char *cur = text, *raw;
    for (int line = 1; (raw = wh__ds_next_line(&cur)) != NULL; line++) {
        char *t = wh__ds_trim(raw);
        if (!t[0] || t[0] == '#') continue;
        char *eq = strchr(t, '=');
        if (!eq)
            return wh_error(ctx, WH_ERR_PARSE, "%s:%d: expected 'key = value', got '%s'", dd->file,
                            line, t);
        *eq = 0;
        char *key = wh__ds_trim(t), *val = wh__ds_trim(eq + 1);
        if (!key[0]) return wh_error(ctx, WH_ERR_PARSE, "%s:%d: empty key before '='", dd->file, line);
        for (int k = 0; k < WH__K_COUNT; k++) {
            if (strcmp(key, wh__keys[k]) != 0) continue;
            if (dd->val[k])
                return wh_error(ctx, WH_ERR_PARSE, "%s:%d: key '%s' given twice (first at line %d)",
                                dd->file, line, key, dd->line[k]);
            if (!val[0])
                return wh_error(ctx, WH_ERR_PARSE, "%s:%d: key '%s' has no value", dd->file, line,
                                key);
            dd->val[k] = val;
            dd->line[k] = line;
        }
    }
    return WH_OK;
}

static int wh__exists(const char *p)
{
    return wh__ds_is_file(p) || wh__ds_is_dir(p);
}

/* The path as written (relative to the current directory, as darknet), or,
 * when that names nothing and it is relative, relative to base. NULL: out of
 * memory. The result may not exist: the caller says so. */
static char *wh__resolve(const char *path, const char *base)
{
    if (path[0] != '/' && base[0] && !wh__exists(path)) {
        char *alt = wh__ds_join(base, path);
        if (!alt || wh__exists(alt)) return alt;
        free(alt);
    }
    return wh__ds_strdup(path);
}

/* Resolves key k of the .data file to an existing file. */
static wh_status wh__data_path(const wh__data *dd, int k, char **out, wh_ctx *ctx)
{
    *out = wh__resolve(dd->val[k], dd->dir);
    if (!*out) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (wh__ds_is_file(*out)) return WH_OK;
    free(*out);
    *out = NULL;
    return wh_error(ctx, WH_ERR_IO,
                    "%s:%d: %s file '%s' not found (tried relative to the current directory%s%s)",
                    dd->file, dd->line[k], wh__keys[k], dd->val[k], dd->dir[0] ? " and to " : "",
                    dd->dir);
}

/* Class names from names=, checked against classes=; without names=,
 * classes= alone gives the names "0", "1", ... */
static wh_status wh__data_classes(const wh__data *dd, wh_dataset *d, wh_ctx *ctx)
{
    long classes = 0;
    if (dd->val[WH__K_CLASSES]) {
        const char *v = dd->val[WH__K_CLASSES];
        char *end;
        errno = 0;
        classes = strtol(v, &end, 10);
        if (*end || errno || classes < 1 || classes > 1000000)
            return wh_error(ctx, WH_ERR_PARSE, "%s:%d: classes '%s' is not a positive integer",
                            dd->file, dd->line[WH__K_CLASSES], v);
    }
    if (!dd->val[WH__K_NAMES]) {
        if (!classes)
            return wh_error(ctx, WH_ERR_CFG, "%s: needs names= (a class-name file) or classes=",
                            dd->file);
        wh_warn(ctx, "%s: no names= file: classes are named by their index", dd->file);
        char **v = calloc((size_t)classes, sizeof(*v));
        if (!v) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        wh_status st = WH_OK;
        for (long i = 0; i < classes && st == WH_OK; i++) {
            char num[24];
            snprintf(num, sizeof(num), "%ld", i);
            if (!(v[i] = wh__ds_strdup(num))) st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        }
        if (st == WH_OK) st = wh__ds_set_classes(d, (const char *const *)v, (int)classes, ctx);
        wh__ds_free_names(v, (int)classes);
        return st;
    }
    char *path, **names;
    int n;
    WH_TRY(wh__data_path(dd, WH__K_NAMES, &path, ctx));
    wh_status st = wh__ds_read_names(path, 1, &names, &n, ctx);
    if (st == WH_OK) {
        if (classes && n != classes)
            st = wh_error(ctx, WH_ERR_CFG, "%s:%d: classes=%ld, but the names file %s has %d names",
                          dd->file, dd->line[WH__K_CLASSES], classes, path, n);
        else
            st = wh__ds_set_classes(d, (const char *const *)names, n, ctx);
        wh__ds_free_names(names, n);
    }
    free(path);
    return st;
}

/* ---- labels ---- */

/* Reads the objects of one label file into s; W, H: the image's size. */
static wh_status wh__read_labels(const char *path, int n_classes, wh_sample *s, wh_ctx *ctx)
{
    char *text;
    WH_TRY(wh__ds_read_text(path, &text, ctx));
    int cap = 1;
    for (const char *p = text; *p; p++) cap += *p == '\n';
    s->obj = calloc((size_t)cap, sizeof(*s->obj));
    wh_status st = s->obj ? WH_OK : wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory", path);
    static const char *const field[5] = {"class", "x_center", "y_center", "width", "height"};
    const double W = s->width, H = s->height;
    char *cur = text, *raw;
    for (int line = 1; st == WH_OK && (raw = wh__ds_next_line(&cur)) != NULL; line++) {
        char *tok[6];
        int nt = 0;
        for (char *p = raw; *p && nt < 6;) {
            while (*p && isspace((unsigned char)*p)) *p++ = 0;
            if (!*p) break;
            tok[nt++] = p;
            while (*p && !isspace((unsigned char)*p)) p++;
        }
        if (nt == 0) continue;
        if (nt != 5) {
            st = wh_error(ctx, WH_ERR_PARSE,
                          "%s:%d: expected 'class x_center y_center width height', got %s%d fields",
                          path, line, nt == 6 ? "more than " : "", nt == 6 ? 5 : nt);
            break;
        }
        char *end;
        errno = 0;
        long cls = strtol(tok[0], &end, 10);
        if (*end || errno) {
            st = wh_error(ctx, WH_ERR_PARSE, "%s:%d: class '%s' is not an integer", path, line,
                          tok[0]);
            break;
        }
        if (cls < 0 || cls >= n_classes) {
            st = wh_error(ctx, WH_ERR_PARSE, "%s:%d: class %ld outside [0, %d)", path, line, cls,
                          n_classes);
            break;
        }
        double v[5];
        for (int k = 1; k < 5 && st == WH_OK; k++) {
            errno = 0;
            v[k] = strtod(tok[k], &end);
            if (*end || errno == ERANGE || !isfinite(v[k]))
                st = wh_error(ctx, WH_ERR_PARSE, "%s:%d: %s '%s' is not a number", path, line,
                              field[k], tok[k]);
            else if (k >= 3 && v[k] <= 0)
                st = wh_error(ctx, WH_ERR_PARSE, "%s:%d: %s %s must be > 0", path, line, field[k],
                              tok[k]);
            else if (v[k] < -WH__LABEL_TOL || v[k] > 1 + WH__LABEL_TOL)
                st = wh_error(ctx, WH_ERR_PARSE,
                              "%s:%d: %s %s outside [0, 1] (label values are fractions of the "
                              "image size)",
                              path, line, field[k], tok[k]);
        }
        if (st != WH_OK) break;
        /* Continuous span [(xc - w/2) W, (xc + w/2) W]; VOC pixel i covers [i-1, i]. */
        wh_object *o = &s->obj[s->n_obj++];
        o->cls = (int)cls;
        o->xmin = (float)((v[1] - v[3] / 2) * W + 1);
        o->xmax = (float)((v[1] + v[3] / 2) * W);
        o->ymin = (float)((v[2] - v[4] / 2) * H + 1);
        o->ymax = (float)((v[2] + v[4] / 2) * H);
    }
    free(text);
    return st;
}

/* The image's file name without folder and extension. */
static char *wh__stem(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot > b ? (size_t)(dot - b) : strlen(b);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, b, n);
    s[n] = 0;
    return s;
}

/* One line of the list file: the image, its size and its label file. */
static wh_status wh__load_entry(wh_dataset *d, const char *list, const char *list_dir, int line,
                                const char *entry, wh_ctx *ctx)
{
    wh_sample *s;
    WH_TRY(wh__ds_add_sample(d, &s, ctx));
    s->image_path = wh__resolve(entry, list_dir);
    s->id = wh__stem(entry);
    if (!s->image_path || !s->id) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (!wh__ds_is_file(s->image_path))
        return wh_error(ctx, WH_ERR_IO,
                        "%s:%d: image '%s' not found (tried relative to the current directory%s%s)",
                        list, line, entry, list_dir[0] ? " and to " : "", list_dir);
    if (wh_image_read_size(s->image_path, &s->width, &s->height, ctx) != WH_OK)
        return wh_error_prefix(ctx, "%s:%d: ", list, line);
    char *label;
    if (wh_darknet_label_path(s->image_path, &label, ctx) != WH_OK)
        return wh_error_prefix(ctx, "%s:%d: ", list, line);
    wh_status st = WH_OK;
    if (wh__ds_is_file(label))
        st = wh__read_labels(label, d->n_classes, s, ctx);
    else
        wh_warn(ctx, "%s: no label file: its image is read as one without objects", label);
    free(label);
    return st;
}

wh_status wh_darknet_load(const char *data_file, const char *which, wh_dataset **out,
                          wh_ctx *ctx)
{
    if (!out) return wh_error(ctx, WH_ERR_ARG, "wh_darknet_load: out is NULL");
    *out = NULL;
    if (!data_file || !data_file[0]) return wh_error(ctx, WH_ERR_ARG, "darknet .data path is empty");
    int key;
    if (which && (!strcmp(which, "train") || !strcmp(which, "trainval")))
        key = WH__K_TRAIN;
    else if (which && (!strcmp(which, "valid") || !strcmp(which, "val") || !strcmp(which, "test")))
        key = WH__K_VALID;
    else
        return wh_error(ctx, WH_ERR_ARG,
                        "%s: split '%s' unknown for a darknet .data file (train, trainval: "
                        "train=; valid, val, test: valid=)",
                        data_file, which ? which : "");

    wh__data dd = {.file = data_file};
    char *text = NULL, *list = NULL, *list_text = NULL, *list_dir = NULL;
    wh_dataset *d = NULL;
    wh_status st = wh__ds_read_text(data_file, &text, ctx);
    if (st != WH_OK) return st;
    dd.dir = wh__ds_dirname(data_file);
    char source[1024];
    snprintf(source, sizeof(source), "%s (%s)", data_file, wh__keys[key]);
    d = wh__ds_new(source);
    if (!dd.dir || !d) {
        st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = wh__parse_data(text, &dd, ctx)) != WH_OK) goto done;
    if ((st = wh__data_classes(&dd, d, ctx)) != WH_OK) goto done;
    if (!dd.val[key]) {
        st = wh_error(ctx, WH_ERR_CFG, "%s: no '%s' key (the list of images for split '%s')",
                      data_file, wh__keys[key], which);
        goto done;
    }
    if ((st = wh__data_path(&dd, key, &list, ctx)) != WH_OK) goto done;
    if ((st = wh__ds_read_text(list, &list_text, ctx)) != WH_OK) goto done;
    if (!(list_dir = wh__ds_dirname(list))) {
        st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        goto done;
    }
    char *cur = list_text, *raw;
    for (int line = 1; st == WH_OK && (raw = wh__ds_next_line(&cur)) != NULL; line++) {
        char *entry = wh__ds_trim(raw);
        if (entry[0]) st = wh__load_entry(d, list, list_dir, line, entry, ctx);
    }
done:
    free(text);
    free(dd.dir);
    free(list);
    free(list_text);
    free(list_dir);
    if (st != WH_OK) {
        wh_dataset_free(d);
        return st;
    }
    *out = d;
    return WH_OK;
}
