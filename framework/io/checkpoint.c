/* HDF5 checkpoints: the generic container (names, types, checksum, atomic
 * commit), then the network helpers on top of it. The layout is described in
 * checkpoint.h.
 *
 * HDF5 prints its own error stack by default; we switch that off and fold the
 * innermost HDF5 message into our wh_error text, which always names the file
 * (and the dataset when there is one).
 */
#include "framework/io/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct wh_ckpt_writer {
    hid_t file;
    hid_t lcpl;  /* link creation: intermediate groups on */
    char *path;  /* final name */
    char *tmp;   /* where we write until commit */
    int failed;  /* a put failed: refuse to commit */
};

struct wh_ckpt_reader {
    hid_t file;
    char *path;
    int n;
    char **names; /* every dataset, sorted with strcmp */
};

/* ---------------------------------------------------------------- errors */

/* The innermost HDF5 message on the error stack (the most specific one:
 * "truncated file: eof = ..."), or "" when the stack is empty. */
typedef struct wh__h5msg {
    char text[256];
} wh__h5msg;

static herr_t wh__h5_walk(unsigned n, const H5E_error2_t *e, void *user)
{
    (void)n;
    wh__h5msg *m = user;
    if (e->desc && e->desc[0]) snprintf(m->text, sizeof(m->text), "%s", e->desc);
    return 0;
}

static const char *wh__h5_last(wh__h5msg *m)
{
    m->text[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, wh__h5_walk, m);
    H5Eclear2(H5E_DEFAULT);
    return m->text;
}

static void wh__h5_quiet(void)
{
    /* Library code never prints: HDF5's automatic stack dump goes off. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* "<what> (HDF5: <innermost message>)" naming the file. */
static wh_status wh__h5_fail(wh_ctx *ctx, wh_status code, const char *path, const char *what)
{
    wh__h5msg m;
    const char *h = wh__h5_last(&m);
    if (h[0]) return wh_error(ctx, code, "%s: %s (HDF5: %s)", path, what, h);
    return wh_error(ctx, code, "%s: %s", path, what);
}

/* ---------------------------------------------------------------- checksum */

#define WH__FNV_BASIS 0xcbf29ce484222325ull
#define WH__FNV_PRIME 0x100000001b3ull

static uint64_t wh__fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= WH__FNV_PRIME;
    }
    return h;
}

static uint64_t wh__u64_fnv(uint64_t h, uint64_t v)
{
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(v >> (8 * i));
    return wh__fnv(h, le, 8);
}

/* The shape enters the checksum too: a damaged dataspace that keeps the
 * element count (4,3,3,3 -> 3,4,3,3) would otherwise go unnoticed. */
static uint64_t wh__shape_fnv(uint64_t h, hid_t sp)
{
    hsize_t d[H5S_MAX_RANK];
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || nd > H5S_MAX_RANK || H5Sget_simple_extent_dims(sp, d, NULL) < 0) nd = 0;
    h = wh__u64_fnv(h, (uint64_t)nd);
    for (int i = 0; i < nd; i++) h = wh__u64_fnv(h, (uint64_t)d[i]);
    return h;
}

/* The element type as numpy spells it ("<f4", "<i8", "<u8", "|S12"), so
 * that a damaged type (byte order, sign, width) fails the checksum too and
 * the h5py check in checkpoint.h can write it as d.dtype.str. */
static void wh__dtype_str(hid_t t, H5T_class_t cls, char *buf, size_t n)
{
    const size_t size = H5Tget_size(t);
    if (cls == H5T_STRING) {
        snprintf(buf, n, "|S%zu", size);
        return;
    }
    char order = size == 1 ? '|' : H5Tget_order(t) == H5T_ORDER_BE ? '>' : '<';
    char kind = cls == H5T_FLOAT ? 'f' : H5Tget_sign(t) == H5T_SGN_NONE ? 'u' : 'i';
    snprintf(buf, n, "%c%c%zu", order, kind, size);
}

typedef struct wh__names {
    int n, cap;
    char **v;
    int nomem;
} wh__names;

static void wh__names_free(wh__names *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static herr_t wh__visit(hid_t obj, const char *name, const H5O_info_t *info, void *user)
{
    (void)obj;
    wh__names *s = user;
    if (info->type != H5O_TYPE_DATASET) return 0;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, (size_t)cap * sizeof(*v));
        if (!v) {
            s->nomem = 1;
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    char *copy = malloc(strlen(name) + 1);
    if (!copy) {
        s->nomem = 1;
        return -1;
    }
    strcpy(copy, name);
    s->v[s->n++] = copy;
    return 0;
}

static int wh__strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists every dataset (sorted) and computes the checksum over them as
 * checkpoint.h defines it. Shared by commit and open so both agree. */
static wh_status wh__checksum(hid_t file, const char *path, wh__names *names, uint64_t *sum,
                              wh_ctx *ctx)
{
    memset(names, 0, sizeof(*names));
    if (H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, wh__visit, names, H5O_INFO_BASIC) < 0) {
        if (names->nomem) {
            wh__names_free(names);
            return wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory listing datasets", path);
        }
        wh__names_free(names);
        return wh__h5_fail(ctx, WH_ERR_IO, path, "cannot list the datasets (corrupt file?)");
    }
    if (names->n > 1) qsort(names->v, (size_t)names->n, sizeof(char *), wh__strcmp_p);
    uint64_t h = WH__FNV_BASIS;
    wh_status st = WH_OK;
    void *buf = NULL;
    size_t cap = 0;
    /* A whittle checkpoint stores every dataset uncompressed, so none holds
     * more bytes than the file: a larger dataspace is damage (or a crafted
     * file), refused before its claimed size is allocated. */
    hsize_t file_bytes = 0;
    if (H5Fget_filesize(file, &file_bytes) < 0) {
        wh__names_free(names);
        return wh__h5_fail(ctx, WH_ERR_IO, path, "cannot read the file's size (corrupt file?)");
    }
    for (int i = 0; st == WH_OK && i < names->n; i++) {
        const char *nm = names->v[i];
        hid_t d = H5Dopen2(file, nm, H5P_DEFAULT);
        hid_t t = d < 0 ? -1 : H5Dget_type(d);
        hid_t sp = d < 0 ? -1 : H5Dget_space(d);
        if (d < 0 || t < 0 || sp < 0) {
            char what[512];
            snprintf(what, sizeof(what), "cannot open dataset '%s' (corrupt file?)", nm);
            st = wh__h5_fail(ctx, WH_ERR_IO, path, what);
        } else {
            H5T_class_t cls = H5Tget_class(t);
            hssize_t np = H5Sget_simple_extent_npoints(sp);
            size_t tsize = H5Tget_size(t);
            if ((cls != H5T_FLOAT && cls != H5T_INTEGER && cls != H5T_STRING) ||
                H5Tis_variable_str(t) != 0 || np < 0 || tsize == 0) {
                st = wh_error(ctx, WH_ERR_IO,
                              "%s: dataset '%s' has a type a whittle checkpoint never holds "
                              "(only float32, int64, uint64, fixed-length strings)",
                              path, nm);
            } else if ((unsigned long long)np > (unsigned long long)file_bytes / tsize) {
                st = wh_error(ctx, WH_ERR_IO,
                              "%s: dataset '%s' claims %lld elements of %zu bytes, more than the whole file "
                              "(%llu bytes): corrupt file",
                              path, nm, (long long)np, tsize, (unsigned long long)file_bytes);
            } else {
                size_t bytes = (size_t)np * tsize;
                if (bytes > cap) {
                    free(buf);
                    buf = malloc(bytes);
                    cap = buf ? bytes : 0;
                }
                if (bytes && !buf) {
                    st = wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory reading '%s' (%zu bytes)",
                                  path, nm, bytes);
                } else if (bytes && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
                    char what[512];
                    snprintf(what, sizeof(what), "cannot read dataset '%s' (truncated or corrupt?)", nm);
                    st = wh__h5_fail(ctx, WH_ERR_IO, path, what);
                } else {
                    char ty[32];
                    wh__dtype_str(t, cls, ty, sizeof(ty));
                    h = wh__fnv(h, nm, strlen(nm) + 1); /* the path and its 0x00 */
                    h = wh__fnv(h, ty, strlen(ty) + 1); /* the type and its 0x00 */
                    h = wh__shape_fnv(h, sp);
                    h = wh__fnv(h, buf, bytes);
                }
            }
        }
        if (sp >= 0) H5Sclose(sp);
        if (t >= 0) H5Tclose(t);
        if (d >= 0) H5Dclose(d);
    }
    free(buf);
    if (st != WH_OK) {
        wh__names_free(names);
        return st;
    }
    *sum = h;
    return WH_OK;
}

/* ---------------------------------------------------------------- attributes */

static herr_t wh__attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp < 0 ? -1 : H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, mtype, v);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return e;
}

static herr_t wh__attr_write_str(hid_t obj, const char *name, const char *s)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    herr_t e = H5Tset_size(t, strlen(s));
    if (e >= 0) e = H5Tset_strpad(t, H5T_STR_NULLPAD);
    if (e >= 0) e = wh__attr_write(obj, name, t, t, s);
    H5Tclose(t);
    return e;
}

/* Reads a scalar attribute; returns 0 when present and readable. */
static int wh__attr_read(hid_t obj, const char *name, hid_t mtype, void *v)
{
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Aread(a, mtype, v);
    if (a >= 0) H5Aclose(a);
    return e < 0 ? -1 : 0;
}

/* Reads a fixed-length string attribute into buf (NUL-terminated, cut to n-1). */
static int wh__attr_read_str(hid_t obj, const char *name, char *buf, size_t n)
{
    buf[0] = 0;
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    int rc = -1;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0) {
        size_t sz = H5Tget_size(t);
        char *tmp = malloc(sz + 1);
        if (tmp && H5Aread(a, t, tmp) >= 0) {
            tmp[sz] = 0;
            snprintf(buf, n, "%s", tmp);
            rc = 0;
        }
        free(tmp);
    }
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

/* ---------------------------------------------------------------- writer */

static char *wh__strdup(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

wh_status wh_ckpt_create(const char *path, wh_ckpt_writer **out, wh_ctx *ctx)
{
    *out = NULL;
    wh__h5_quiet();
    wh_ckpt_writer *w = calloc(1, sizeof(*w));
    if (!w) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    w->file = w->lcpl = -1;
    size_t n = strlen(path);
    w->path = wh__strdup(path);
    w->tmp = malloc(n + 16);
    if (!w->path || !w->tmp) {
        free(w->path);
        free(w->tmp);
        free(w);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    snprintf(w->tmp, n + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        wh_status st = wh_error(ctx, WH_ERR_IO, "%s: cannot create a temporary file beside it: %s",
                                path, strerror(errno));
        free(w->path);
        free(w->tmp);
        free(w);
        return st;
    }
    /* mkstemp creates 0600; a checkpoint is an ordinary user file. */
    int err = fchmod(fd, 0644) == 0 ? 0 : errno;
    close(fd);
    if (err) {
        wh_status st = wh_error(ctx, WH_ERR_IO, "%s: cannot set permissions: %s", w->tmp, strerror(err));
        wh_ckpt_abort(w);
        return st;
    }
    /* STRONG: closing the file closes anything still open in it, so commit
     * never leaves a half-flushed object behind. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    errno = 0;
    w->file = fapl < 0 ? -1 : H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    const int create_errno = w->file < 0 ? errno : 0; /* ENOSPC on a full disk: say so */
    if (fapl >= 0) H5Pclose(fapl);
    w->lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (w->file < 0 || w->lcpl < 0 || H5Pset_create_intermediate_group(w->lcpl, 1) < 0) {
        char what[160];
        snprintf(what, sizeof(what), "cannot create the HDF5 file%s%s", create_errno ? ": " : "",
                 create_errno ? strerror(create_errno) : "");
        wh_status st = wh__h5_fail(ctx, WH_ERR_IO, path, what);
        wh_ckpt_abort(w);
        return st;
    }
    *out = w;
    return WH_OK;
}

void wh_ckpt_abort(wh_ckpt_writer *w)
{
    if (!w) return;
    if (w->lcpl >= 0) H5Pclose(w->lcpl);
    if (w->file >= 0) H5Fclose(w->file);
    H5Eclear2(H5E_DEFAULT);
    if (w->tmp) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w);
}

static wh_status wh__check_name(const wh_ckpt_writer *w, const char *name, wh_ctx *ctx)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || name[0] == '/' || name[n - 1] == '/' || strstr(name, "//") || !strcmp(name, ".") ||
        strstr(name, "/./") || !strncmp(name, "./", 2) || (n >= 2 && !strcmp(name + n - 2, "/.")))
        return wh_error(ctx, WH_ERR_ARG, "%s: invalid dataset name '%s'", w->path, name ? name : "");
    return WH_OK;
}

/* Creates dataset name of ftype with the given shape and writes data (in
 * mtype) into it. Marks the writer failed on any error. */
static wh_status wh__put(wh_ckpt_writer *w, const char *name, hid_t ftype, hid_t mtype,
                         const void *data, const uint64_t *dims, int ndims, wh_ctx *ctx)
{
    wh_status st = wh__check_name(w, name, ctx);
    if (st == WH_OK && (ndims < 0 || ndims > WH_CKPT_MAX_DIMS || (ndims > 0 && !dims)))
        st = wh_error(ctx, WH_ERR_ARG, "%s: dataset '%s': %d dimensions (0 to %d allowed)", w->path,
                      name, ndims, WH_CKPT_MAX_DIMS);
    size_t count = 1;
    hsize_t hd[WH_CKPT_MAX_DIMS];
    for (int i = 0; st == WH_OK && i < ndims; i++) {
        hd[i] = (hsize_t)dims[i];
        count *= (size_t)dims[i];
    }
    if (st == WH_OK && count > 0 && !data)
        st = wh_error(ctx, WH_ERR_ARG, "%s: dataset '%s': no data", w->path, name);
    if (st == WH_OK) {
        htri_t ex = H5Lexists(w->file, name, H5P_DEFAULT);
        H5Eclear2(H5E_DEFAULT); /* a missing intermediate group is reported as an error */
        if (ex > 0) st = wh_error(ctx, WH_ERR_ARG, "%s: dataset '%s' written twice", w->path, name);
    }
    if (st != WH_OK) {
        w->failed = 1;
        return st;
    }
    hid_t sp = ndims == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndims, hd, NULL);
    hid_t d = sp < 0 ? -1 : H5Dcreate2(w->file, name, ftype, sp, w->lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = d < 0 ? -1 : 0;
    if (e >= 0 && count > 0) e = H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (e < 0) {
        char what[512];
        snprintf(what, sizeof(what), "cannot write dataset '%s'", name);
        st = wh__h5_fail(ctx, WH_ERR_IO, w->path, what);
        w->failed = 1;
    }
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    return st;
}

wh_status wh_ckpt_put_f32(wh_ckpt_writer *w, const char *name, const float *data,
                          const uint64_t *dims, int ndims, wh_ctx *ctx)
{
    return wh__put(w, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, dims, ndims, ctx);
}

wh_status wh_ckpt_put_i64(wh_ckpt_writer *w, const char *name, const int64_t *data,
                          const uint64_t *dims, int ndims, wh_ctx *ctx)
{
    return wh__put(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, dims, ndims, ctx);
}

wh_status wh_ckpt_put_u64(wh_ckpt_writer *w, const char *name, const uint64_t *data,
                          const uint64_t *dims, int ndims, wh_ctx *ctx)
{
    return wh__put(w, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, data, dims, ndims, ctx);
}

wh_status wh_ckpt_put_str(wh_ckpt_writer *w, const char *name, const char *text, wh_ctx *ctx)
{
    if (!text) {
        w->failed = 1;
        return wh_error(ctx, WH_ERR_ARG, "%s: dataset '%s': no text", w->path, name ? name : "");
    }
    /* HDF5 has no zero-length fixed strings: "" is stored as one NUL byte. */
    size_t n = strlen(text);
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, n ? n : 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0) {
        if (t >= 0) H5Tclose(t);
        w->failed = 1;
        return wh__h5_fail(ctx, WH_ERR_IO, w->path, "cannot make a string type");
    }
    wh_status st = wh__put(w, name, t, t, n ? text : "", NULL, 0, ctx);
    H5Tclose(t);
    return st;
}

static void wh__fsync_dir(const char *path)
{
    /* The rename is durable only once the folder is synced (best effort:
     * some filesystems refuse fsync on a directory). */
    char *copy = wh__strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(copy);
}

wh_status wh_ckpt_commit(wh_ckpt_writer *w, wh_ctx *ctx)
{
    if (w->failed) {
        wh_status st = wh_error(ctx, WH_ERR_STATE, "%s: not written: an earlier write into it failed",
                                w->path);
        wh_ckpt_abort(w);
        return st;
    }
    wh__names names;
    uint64_t sum = 0;
    wh_status st = wh__checksum(w->file, w->tmp, &names, &sum, ctx);
    if (st == WH_OK) wh__names_free(&names);
    int32_t version = WH_CKPT_VERSION;
    if (st == WH_OK &&
        (wh__attr_write_str(w->file, "format", WH_CKPT_FORMAT) < 0 ||
         wh__attr_write(w->file, "version", H5T_STD_I32LE, H5T_NATIVE_INT32, &version) < 0 ||
         wh__attr_write(w->file, "checksum", H5T_STD_U64LE, H5T_NATIVE_UINT64, &sum) < 0 ||
         wh__attr_write_str(w->file, "checksum_algorithm", "fnv1a64") < 0))
        st = wh__h5_fail(ctx, WH_ERR_IO, w->path, "cannot write the checkpoint attributes");
    if (st == WH_OK && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
        st = wh__h5_fail(ctx, WH_ERR_IO, w->path, "cannot flush");
    if (st != WH_OK) {
        wh_ckpt_abort(w);
        return st;
    }
    H5Pclose(w->lcpl);
    w->lcpl = -1;
    herr_t e = H5Fclose(w->file);
    w->file = -1;
    if (e < 0) {
        st = wh__h5_fail(ctx, WH_ERR_IO, w->path, "cannot close the HDF5 file");
        wh_ckpt_abort(w);
        return st;
    }
    int fd = open(w->tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        st = wh_error(ctx, WH_ERR_IO, "%s: cannot sync %s: %s", w->path, w->tmp, strerror(errno));
        if (fd >= 0) close(fd);
        wh_ckpt_abort(w);
        return st;
    }
    close(fd);
    if (rename(w->tmp, w->path) != 0) {
        st = wh_error(ctx, WH_ERR_IO, "%s: cannot rename the finished file into place: %s", w->path,
                      strerror(errno));
        wh_ckpt_abort(w);
        return st;
    }
    wh__fsync_dir(w->path);
    free(w->tmp);
    free(w->path);
    free(w);
    return WH_OK;
}

/* ---------------------------------------------------------------- reader */

void wh_ckpt_close(wh_ckpt_reader *r)
{
    if (!r) return;
    if (r->file >= 0) H5Fclose(r->file);
    H5Eclear2(H5E_DEFAULT);
    for (int i = 0; i < r->n; i++) free(r->names[i]);
    free(r->names);
    free(r->path);
    free(r);
}

wh_status wh_ckpt_open(const char *path, wh_ckpt_reader **out, wh_ctx *ctx)
{
    *out = NULL;
    wh__h5_quiet();
    struct stat sb;
    if (stat(path, &sb) != 0)
        return wh_error(ctx, WH_ERR_IO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return wh_error(ctx, WH_ERR_IO, "%s: cannot open checkpoint: not a regular file", path);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return wh_error(ctx, WH_ERR_IO, "%s: not a checkpoint: not an HDF5 file (%lld bytes)", path,
                        (long long)sb.st_size);
    }
    wh_ckpt_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->path = wh__strdup(path))) {
        free(r);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (r->file < 0) {
        wh_status st = wh__h5_fail(ctx, WH_ERR_IO, path,
                                   "cannot open checkpoint: the HDF5 file is truncated or corrupt");
        wh_ckpt_close(r);
        return st;
    }
    char fmt[64];
    int32_t version = 0;
    uint64_t want = 0;
    wh_status st = WH_OK;
    if (wh__attr_read_str(r->file, "format", fmt, sizeof(fmt)) != 0 || strcmp(fmt, WH_CKPT_FORMAT) != 0)
        st = wh_error(ctx, WH_ERR_IO,
                      "%s: not a whittle checkpoint (root attribute 'format' is not \"%s\")", path,
                      WH_CKPT_FORMAT);
    else if (wh__attr_read(r->file, "version", H5T_NATIVE_INT32, &version) != 0)
        st = wh_error(ctx, WH_ERR_IO, "%s: checkpoint has no readable 'version' attribute", path);
    else if (version != WH_CKPT_VERSION)
        st = wh_error(ctx, WH_ERR_UNSUPPORTED,
                      "%s: checkpoint version %d, this program reads version %d", path, (int)version,
                      WH_CKPT_VERSION);
    else if (wh__attr_read(r->file, "checksum", H5T_NATIVE_UINT64, &want) != 0)
        st = wh_error(ctx, WH_ERR_IO, "%s: checkpoint has no readable 'checksum' attribute", path);
    if (st != WH_OK) {
        H5Eclear2(H5E_DEFAULT);
        wh_ckpt_close(r);
        return st;
    }
    wh__names names;
    uint64_t got = 0;
    st = wh__checksum(r->file, path, &names, &got, ctx);
    if (st != WH_OK) {
        wh_ckpt_close(r);
        return st;
    }
    r->n = names.n;
    r->names = names.v;
    if (got != want) {
        st = wh_error(ctx, WH_ERR_IO,
                      "%s: checkpoint checksum mismatch (stored %016llx, computed %016llx over %d "
                      "datasets): the file is corrupt",
                      path, (unsigned long long)want, (unsigned long long)got, names.n);
        wh_ckpt_close(r);
        return st;
    }
    *out = r;
    return WH_OK;
}

const char *wh_ckpt_path(const wh_ckpt_reader *r) { return r->path; }
int wh_ckpt_count(const wh_ckpt_reader *r) { return r->n; }
const char *wh_ckpt_name(const wh_ckpt_reader *r, int i)
{
    return i >= 0 && i < r->n ? r->names[i] : NULL;
}

int wh_ckpt_has(const wh_ckpt_reader *r, const char *name)
{
    if (!name || r->n == 0) return 0;
    return bsearch(&name, r->names, (size_t)r->n, sizeof(char *), wh__strcmp_p) != NULL;
}

/* Opens dataset name with its type and dataspace, or fails naming it. */
static wh_status wh__open_ds(wh_ckpt_reader *r, const char *name, hid_t *d, hid_t *t, hid_t *sp,
                             wh_ctx *ctx)
{
    *d = *t = *sp = -1;
    if (!wh_ckpt_has(r, name))
        return wh_error(ctx, WH_ERR_IO, "%s: checkpoint has no dataset '%s'", r->path, name ? name : "");
    *d = H5Dopen2(r->file, name, H5P_DEFAULT);
    if (*d >= 0) *t = H5Dget_type(*d);
    if (*d >= 0) *sp = H5Dget_space(*d);
    if (*d < 0 || *t < 0 || *sp < 0) {
        char what[512];
        snprintf(what, sizeof(what), "cannot open dataset '%s'", name);
        wh_status st = wh__h5_fail(ctx, WH_ERR_IO, r->path, what);
        if (*sp >= 0) H5Sclose(*sp);
        if (*t >= 0) H5Tclose(*t);
        if (*d >= 0) H5Dclose(*d);
        *d = *t = *sp = -1;
        return st;
    }
    return WH_OK;
}

static void wh__close_ds(hid_t d, hid_t t, hid_t sp)
{
    H5Sclose(sp);
    H5Tclose(t);
    H5Dclose(d);
}

static const char *wh__type_name(hid_t t)
{
    switch (H5Tget_class(t)) {
    case H5T_FLOAT: return H5Tget_size(t) == 4 ? "float32" : "float64";
    case H5T_INTEGER: return H5Tget_sign(t) == H5T_SGN_NONE ? "unsigned integers" : "signed integers";
    case H5T_STRING: return "a string";
    default: return "another type";
    }
}

wh_status wh_ckpt_dims(wh_ckpt_reader *r, const char *name, uint64_t *dims, int *ndims, wh_ctx *ctx)
{
    hid_t d, t, sp;
    WH_TRY(wh__open_ds(r, name, &d, &t, &sp, ctx));
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t hd[WH_CKPT_MAX_DIMS];
    wh_status st = WH_OK;
    if (nd < 0 || nd > WH_CKPT_MAX_DIMS || H5Sget_simple_extent_dims(sp, hd, NULL) < 0) {
        st = wh_error(ctx, WH_ERR_IO, "%s: dataset '%s' has %d dimensions (at most %d supported)",
                      r->path, name, nd, WH_CKPT_MAX_DIMS);
        H5Eclear2(H5E_DEFAULT);
    } else {
        for (int i = 0; i < nd; i++) dims[i] = (uint64_t)hd[i];
        *ndims = nd;
    }
    wh__close_ds(d, t, sp);
    return st;
}

/* Reads count elements of dataset name as mtype; the stored type must be
 * of class cls (and, for integers, have the same signedness as mtype). */
static wh_status wh__get(wh_ckpt_reader *r, const char *name, H5T_class_t cls, hid_t mtype,
                         const char *want, void *out, size_t count, wh_ctx *ctx)
{
    hid_t d, t, sp;
    WH_TRY(wh__open_ds(r, name, &d, &t, &sp, ctx));
    wh_status st = WH_OK;
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    if (H5Tget_class(t) != cls || (cls == H5T_INTEGER && H5Tget_sign(t) != H5Tget_sign(mtype)))
        st = wh_error(ctx, WH_ERR_IO, "%s: dataset '%s' holds %s, not %s", r->path, name,
                      wh__type_name(t), want);
    else if (np < 0 || (size_t)np != count)
        st = wh_error(ctx, WH_ERR_SHAPE, "%s: dataset '%s' has %lld elements, expected %zu", r->path,
                      name, (long long)np, count);
    else if (count > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        char what[512];
        snprintf(what, sizeof(what), "cannot read dataset '%s'", name);
        st = wh__h5_fail(ctx, WH_ERR_IO, r->path, what);
    }
    wh__close_ds(d, t, sp);
    return st;
}

wh_status wh_ckpt_get_f32(wh_ckpt_reader *r, const char *name, float *out, size_t count, wh_ctx *ctx)
{
    return wh__get(r, name, H5T_FLOAT, H5T_NATIVE_FLOAT, "float32", out, count, ctx);
}

wh_status wh_ckpt_get_i64(wh_ckpt_reader *r, const char *name, int64_t *out, size_t count,
                          wh_ctx *ctx)
{
    return wh__get(r, name, H5T_INTEGER, H5T_NATIVE_INT64, "int64", out, count, ctx);
}

wh_status wh_ckpt_get_u64(wh_ckpt_reader *r, const char *name, uint64_t *out, size_t count,
                          wh_ctx *ctx)
{
    return wh__get(r, name, H5T_INTEGER, H5T_NATIVE_UINT64, "uint64", out, count, ctx);
}

wh_status wh_ckpt_get_str(wh_ckpt_reader *r, const char *name, char **out, wh_ctx *ctx)
{
    *out = NULL;
    hid_t d, t, sp;
    WH_TRY(wh__open_ds(r, name, &d, &t, &sp, ctx));
    wh_status st = WH_OK;
    char *buf = NULL;
    if (H5Tget_class(t) != H5T_STRING || H5Tis_variable_str(t) != 0 ||
        H5Sget_simple_extent_npoints(sp) != 1) {
        st = wh_error(ctx, WH_ERR_IO, "%s: dataset '%s' is not a single fixed-length string", r->path,
                      name);
    } else {
        size_t n = H5Tget_size(t);
        buf = malloc(n + 1);
        if (!buf) st = wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory reading '%s'", r->path, name);
        else if (H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            char what[512];
            snprintf(what, sizeof(what), "cannot read dataset '%s'", name);
            st = wh__h5_fail(ctx, WH_ERR_IO, r->path, what);
        } else {
            buf[n] = 0; /* NULLPAD: the text ends at the first NUL or at n */
        }
    }
    wh__close_ds(d, t, sp);
    if (st != WH_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return WH_OK;
}

/* ---------------------------------------------------------------- the network */

void wh_ckpt_param_name(const wh_layer *l, const wh_param *p, char *buf, size_t n)
{
    snprintf(buf, n, "layers/%03d_%s/%s", l->index, l->ops->type, p->name);
}

int wh_ckpt_param_dims(const wh_layer *l, const wh_param *p, uint64_t *dims)
{
    (void)l;
    if (p->ndims < 1 || p->ndims > 4) {
        dims[0] = (uint64_t)p->count;
        return 1;
    }
    for (int k = 0; k < p->ndims; k++) dims[k] = (uint64_t)p->dims[k];
    return p->ndims;
}

wh_status wh_ckpt_put_net(wh_ckpt_writer *w, const wh_net *net, const char *cfg_text, wh_ctx *ctx)
{
    if (!cfg_text) {
        w->failed = 1;
        return wh_error(ctx, WH_ERR_ARG, "%s: the cfg text is needed to rebuild the network", w->path);
    }
    WH_TRY(wh_ckpt_put_str(w, "cfg", cfg_text, ctx));
    for (int i = 0; i < net->n_layers; i++) {
        const wh_layer *l = &net->layers[i];
        for (int k = 0; k < l->n_params; k++) {
            const wh_param *p = &l->params[k];
            char name[256];
            uint64_t dims[4];
            wh_ckpt_param_name(l, p, name, sizeof(name));
            int nd = wh_ckpt_param_dims(l, p, dims);
            WH_TRY(wh_ckpt_put_f32(w, name, p->data, dims, nd, ctx));
        }
    }
    return WH_OK;
}

static void wh__fmt_dims(char *buf, size_t n, const uint64_t *dims, int nd)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < nd && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    if (at < n) snprintf(buf + at, n - at, ")");
}

/* Is name one of layer l's parameter datasets? */
static int wh__is_param_of(const wh_layer *l, const char *name)
{
    for (int k = 0; k < l->n_params; k++) {
        char mine[256];
        wh_ckpt_param_name(l, &l->params[k], mine, sizeof(mine));
        if (!strcmp(mine, name)) return 1;
    }
    return 0;
}

wh_status wh_ckpt_load_net(wh_ckpt_reader *r, wh_net *net, wh_ctx *ctx)
{
    /* Every checkpoint layer dataset must belong to the net: a checkpoint of
     * a deeper or differently typed net is another model, not a subset. */
    const size_t plen = strlen("layers/");
    for (int i = 0; i < r->n; i++) {
        const char *nm = r->names[i];
        if (strncmp(nm, "layers/", plen) != 0) continue;
        char *end;
        long idx = strtol(nm + plen, &end, 10);
        if (end == nm + plen || idx < 0 || idx >= net->n_layers)
            return wh_error(ctx, WH_ERR_SHAPE,
                            "%s: dataset '%s' has no layer in the network (%d layers): was it "
                            "written for another cfg?",
                            r->path, nm, net->n_layers);
        const wh_layer *l = &net->layers[idx];
        if (!wh__is_param_of(l, nm))
            return wh_error(ctx, WH_ERR_SHAPE,
                            "%s: dataset '%s' does not match layer %ld [%s] of the network (%d "
                            "parameters): was it written for another cfg?",
                            r->path, nm, idx, l->ops->type, l->n_params);
    }
    for (int i = 0; i < net->n_layers; i++) {
        wh_layer *l = &net->layers[i];
        for (int k = 0; k < l->n_params; k++) {
            wh_param *p = &l->params[k];
            char name[256];
            wh_ckpt_param_name(l, p, name, sizeof(name));
            if (!wh_ckpt_has(r, name))
                return wh_error(ctx, WH_ERR_SHAPE,
                                "%s: layer %d [%s] param '%s': checkpoint has no dataset '%s' "
                                "(written for another cfg?)",
                                r->path, i, l->ops->type, p->name, name);
            uint64_t want[4], have[WH_CKPT_MAX_DIMS];
            int nw = wh_ckpt_param_dims(l, p, want), nh = 0;
            WH_TRY(wh_ckpt_dims(r, name, have, &nh, ctx));
            int same = nw == nh;
            for (int d = 0; same && d < nw; d++) same = want[d] == have[d];
            if (!same) {
                char a[160], b[160];
                wh__fmt_dims(a, sizeof(a), have, nh);
                wh__fmt_dims(b, sizeof(b), want, nw);
                return wh_error(ctx, WH_ERR_SHAPE,
                                "%s: layer %d [%s] param '%s': checkpoint has shape %s, the "
                                "network %s (written for another cfg?)",
                                r->path, i, l->ops->type, p->name, a, b);
            }
            WH_TRY(wh_ckpt_get_f32(r, name, p->data, p->count, ctx));
        }
    }
    return WH_OK;
}

wh_status wh_ckpt_read_net(wh_ckpt_reader *r, const wh_net_opts *opts, wh_net **net,
                           char **cfg_text, wh_ctx *ctx)
{
    *net = NULL;
    if (cfg_text) *cfg_text = NULL;
    char *text = NULL;
    wh_cfg *cfg = NULL;
    wh_net *n = NULL;
    /* cfg errors then read "ckpt.h5#cfg:12: ...": the line inside the stored text */
    size_t len = strlen(r->path) + 8;
    char *name = malloc(len);
    wh_status st = name ? WH_OK : wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    if (st == WH_OK) {
        snprintf(name, len, "%s#cfg", r->path);
        st = wh_ckpt_get_str(r, "cfg", &text, ctx);
    }
    if (st == WH_OK) st = wh_cfg_parse_string(text, name, &cfg, ctx);
    if (st == WH_OK) st = wh_net_create(cfg, opts, &n, ctx);
    if (st == WH_OK && !(opts && opts->dry_run)) st = wh_ckpt_load_net(r, n, ctx); /* a plan holds no weights */
    wh_cfg_free(cfg);
    free(name);
    if (st != WH_OK) {
        wh_net_destroy(n);
        free(text);
        return st;
    }
    *net = n;
    if (cfg_text) *cfg_text = text;
    else free(text);
    return WH_OK;
}

wh_status wh_ckpt_build_net(const char *path, const wh_net_opts *opts, wh_net **net,
                            char **cfg_text, wh_ctx *ctx)
{
    *net = NULL;
    if (cfg_text) *cfg_text = NULL;
    wh_ckpt_reader *r = NULL;
    WH_TRY(wh_ckpt_open(path, &r, ctx));
    wh_status st = wh_ckpt_read_net(r, opts, net, cfg_text, ctx);
    wh_ckpt_close(r);
    return st;
}
