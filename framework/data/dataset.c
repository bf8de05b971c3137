/* whittle: what the dataset loaders share (the sample list, files, lines,
 * class-name files) and wh_dataset_open, which picks the loader from the
 * path. The VOC reader is voc.c, the darknet reader darknet_data.c. */
#include "dataset.h"

#include "framework/core/fileio.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const wh__voc_classes[21] = {
    "aeroplane", "bicycle", "bird",  "boat",        "bottle", "bus",         "car",
    "cat",       "chair",   "cow",   "diningtable", "dog",    "horse",       "motorbike",
    "person",    "pottedplant", "sheep", "sofa",    "train",  "tvmonitor",   NULL};

const char *const *wh_voc_class_names(void)
{
    return wh__voc_classes;
}

char *wh__ds_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

char *wh__ds_join(const char *dir, const char *name)
{
    if (name[0] == '/' || dir[0] == 0) return wh__ds_strdup(name);
    size_t nd = strlen(dir), nn = strlen(name);
    int slash = dir[nd - 1] != '/';
    char *p = malloc(nd + (size_t)slash + nn + 1);
    if (!p) return NULL;
    memcpy(p, dir, nd);
    if (slash) p[nd] = '/';
    memcpy(p + nd + (size_t)slash, name, nn + 1);
    return p;
}

char *wh__ds_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return wh__ds_strdup("");
    size_t n = slash == path ? 1 : (size_t)(slash - path); /* "/x" -> "/" */
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

int wh__ds_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int wh__ds_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

wh_status wh__ds_read_text(const char *path, char **text, wh_ctx *ctx)
{
    char *buf;
    WH_TRY(wh_file_read_text(path, WH_LIST_MAX_BYTES, "list or label", &buf, ctx));
    const size_t n = strlen(buf);
    if (n >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
        (unsigned char)buf[2] == 0xBF)
        memmove(buf, buf + 3, n - 2); /* lists saved by Windows editors */
    *text = buf;
    return WH_OK;
}

char *wh__ds_next_line(char **cursor)
{
    char *p = *cursor;
    if (!p || !*p) return NULL;
    char *nl = strchr(p, '\n');
    if (nl) {
        *nl = 0;
        *cursor = nl + 1;
    } else {
        *cursor = p + strlen(p);
    }
    size_t n = strlen(p);
    if (n > 0 && p[n - 1] == '\r') p[n - 1] = 0;
    return p;
}

char *wh__ds_trim(char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

void wh__ds_free_names(char **names, int n)
{
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

wh_status wh__ds_read_names(const char *path, int positional, char ***names, int *n,
                            wh_ctx *ctx)
{
    *names = NULL;
    *n = 0;
    char *text;
    WH_TRY(wh__ds_read_text(path, &text, ctx));
    /* At most one name per line: count lines for the array. */
    int cap = 1;
    for (const char *p = text; *p; p++) cap += *p == '\n';
    char **v = calloc((size_t)cap, sizeof(*v));
    int *line_of = calloc((size_t)cap, sizeof(*line_of));
    wh_status st = WH_OK;
    int count = 0, blank_line = 0;
    if (!v || !line_of) {
        st = wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    char *cur = text, *raw;
    for (int line = 1; (raw = wh__ds_next_line(&cur)) != NULL; line++) {
        char *name = wh__ds_trim(raw);
        if (!name[0]) {
            if (!blank_line) blank_line = line;
            continue;
        }
        if (positional && blank_line) {
            st = wh_error(ctx, WH_ERR_PARSE,
                          "%s:%d: blank line between class names (darknet would count it as a "
                          "class and shift every index after it)",
                          path, blank_line);
            goto done;
        }
        if (!positional)
            for (int k = 0; k < count; k++)
                if (strcmp(v[k], name) == 0) {
                    st = wh_error(ctx, WH_ERR_PARSE, "%s:%d: class '%s' repeated (first at line %d)",
                                  path, line, name, line_of[k]);
                    goto done;
                }
        v[count] = wh__ds_strdup(name);
        if (!v[count]) {
            st = wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        line_of[count++] = line;
    }
    if (count == 0) st = wh_error(ctx, WH_ERR_PARSE, "%s: no class names in the file", path);
done:
    free(text);
    free(line_of);
    if (st != WH_OK) {
        wh__ds_free_names(v, count);
        return st;
    }
    *names = v;
    *n = count;
    return WH_OK;
}

wh_dataset *wh__ds_new(const char *source)
{
    wh_dataset *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->source = wh__ds_strdup(source);
    if (!d->source) {
        free(d);
        return NULL;
    }
    return d;
}

wh_status wh__ds_set_classes(wh_dataset *d, const char *const *names, int n, wh_ctx *ctx)
{
    char **v = calloc((size_t)n, sizeof(*v));
    if (!v) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        v[i] = wh__ds_strdup(names[i]);
        if (!v[i]) {
            wh__ds_free_names(v, i);
            return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        }
    }
    wh__ds_free_names(d->class_names, d->n_classes);
    d->class_names = v;
    d->n_classes = n;
    return WH_OK;
}

wh_status wh__ds_add_sample(wh_dataset *d, wh_sample **s, wh_ctx *ctx)
{
    /* The capacity is implied by n (16, then powers of two), so the public
     * struct needs no capacity field: grow when n reaches one. */
    int n = d->n;
    if (n == 0 || (n >= 16 && (n & (n - 1)) == 0)) {
        size_t cap = n == 0 ? 16 : 2 * (size_t)n;
        wh_sample *p = realloc(d->samples, cap * sizeof(*p));
        if (!p) return wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory", d->source);
        d->samples = p;
    }
    *s = &d->samples[d->n++];
    memset(*s, 0, sizeof(**s));
    return WH_OK;
}

void wh_dataset_free(wh_dataset *d)
{
    if (!d) return;
    for (int i = 0; i < d->n; i++) {
        free(d->samples[i].id);
        free(d->samples[i].image_path);
        free(d->samples[i].obj);
    }
    free(d->samples);
    wh__ds_free_names(d->class_names, d->n_classes);
    free(d->source);
    free(d);
}

static wh_status wh__open(const char *path, const char *split, int need_images, wh_dataset **out, wh_ctx *ctx)
{
    if (!out) return wh_error(ctx, WH_ERR_ARG, "wh_dataset_open: out is NULL");
    *out = NULL;
    if (!path || !path[0]) return wh_error(ctx, WH_ERR_ARG, "dataset path is empty");
    if (!split || !split[0]) return wh_error(ctx, WH_ERR_ARG, "%s: no split given", path);
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".data") == 0) return wh_darknet_load(path, split, out, ctx);
    struct stat st;
    if (stat(path, &st) != 0) return wh_error(ctx, WH_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode) && wh__ds_voc_kind(path) != 0)
        return need_images ? wh_voc_load(&path, 1, split, NULL, 0, out, ctx)
                           : wh_voc_load_annotations(path, split, out, ctx);
    return wh_error(ctx, WH_ERR_ARG,
                    "%s: not a dataset: expected a darknet .data file, a VOC root folder "
                    "(Annotations/, JPEGImages/, ImageSets/Main/) or a VOCdevkit folder "
                    "(VOC2007/, VOC2012/, ...)",
                    path);
}

wh_status wh_dataset_open(const char *path, const char *split, wh_dataset **out, wh_ctx *ctx)
{
    return wh__open(path, split, 1, out, ctx);
}

wh_status wh_dataset_open_annotations(const char *path, const char *split, wh_dataset **out, wh_ctx *ctx)
{
    return wh__open(path, split, 0, out, ctx);
}
