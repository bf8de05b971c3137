/* whittle: images. See image.h.
 *
 * libjpeg and libpng report errors by calling a handler that must not
 * return; both handlers here format the message and longjmp back. To keep
 * -Wclobbered quiet and the code correct, each setjmp lives in a small
 * function whose every piece of state sits in a struct passed by pointer
 * (an object modified between setjmp and longjmp must not be a plain local).
 */
#include "image.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "framework/core/fileio.h"

/* ---------------------------------------------------------------- basics */

wh_status wh_image_alloc(wh_image *img, int w, int h, int c, wh_ctx *ctx)
{
    memset(img, 0, sizeof(*img));
    if (w < 1 || h < 1 || c < 1 || c > 4)
        return wh_error(ctx, WH_ERR_ARG, "image size %dx%dx%d is invalid", w, h, c);
    float *d = calloc((size_t)w * (size_t)h * (size_t)c, sizeof(float));
    if (!d) return wh_error(ctx, WH_ERR_NOMEM, "out of memory for a %dx%dx%d image", w, h, c);
    img->w = w;
    img->h = h;
    img->c = c;
    img->data = d;
    return WH_OK;
}

void wh_image_free(wh_image *img)
{
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof(*img));
}

static int wh__size_ok(long long w, long long h)
{
    return w >= 1 && h >= 1 && w <= WH_IMAGE_MAX_SIDE && h <= WH_IMAGE_MAX_SIDE &&
           w * h <= WH_IMAGE_MAX_PIXELS;
}

static wh_status wh__size_error(wh_ctx *ctx, const char *name, long long w, long long h)
{
    return wh_error(ctx, WH_ERR_IO,
                    "%s: image size %lldx%lld is out of range (each side 1..%d, at most %lld pixels)",
                    name, w, h, WH_IMAGE_MAX_SIDE, (long long)WH_IMAGE_MAX_PIXELS);
}

enum { WH__FMT_UNKNOWN, WH__FMT_JPEG, WH__FMT_PNG };

static const unsigned char wh__png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int wh__sniff(const unsigned char *b, size_t n)
{
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return WH__FMT_JPEG;
    if (n >= 8 && !memcmp(b, wh__png_sig, 8)) return WH__FMT_PNG;
    return WH__FMT_UNKNOWN;
}

static uint32_t wh__be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Width and height from the PNG signature + IHDR (the first 24 bytes: 8 of
 * signature, chunk length 13, "IHDR", width, height, all big-endian). */
static wh_status wh__png_header(const unsigned char *b, size_t n, const char *name, long long *w,
                                long long *h, wh_ctx *ctx)
{
    if (n < 24) return wh_error(ctx, WH_ERR_IO, "%s: truncated PNG: the file ends inside its header", name);
    if (wh__be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4) != 0)
        return wh_error(ctx, WH_ERR_IO, "%s: corrupt PNG: no IHDR chunk after the signature", name);
    *w = wh__be32(b + 16);
    *h = wh__be32(b + 20);
    return WH_OK;
}

/* ------------------------------------------------------------ JPEG decode */

typedef struct wh__jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];  /* the fatal error */
    char warn[JMSG_LENGTH_MAX]; /* the first corrupt-data warning */
    int eof;                    /* the source ran out of bytes (fake EOI inserted) */
    int starved;                /* the entropy decoder lacked bits it needed */
    int n_warn;
} wh__jerr;

static void wh__jpeg_error_exit(j_common_ptr cinfo)
{
    wh__jerr *e = (wh__jerr *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* level -1: a warning; >= 0: trace output, ignored. libjpeg's default
 * prints warnings to stderr; we record them instead. */
static void wh__jpeg_emit(j_common_ptr cinfo, int level)
{
    if (level >= 0) return;
    wh__jerr *e = (wh__jerr *)cinfo->err;
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
        e->eof = 1;
    } else {
        if (cinfo->err->msg_code == JWRN_HIT_MARKER) e->starved = 1;
        if (e->n_warn++ == 0) cinfo->err->format_message(cinfo, e->warn);
    }
    cinfo->err->num_warnings++;
}

static void wh__jpeg_silent(j_common_ptr cinfo)
{
    (void)cinfo;
}

static void wh__jerr_init(wh__jerr *e)
{
    memset(e, 0, sizeof(*e));
    jpeg_std_error(&e->pub);
    e->pub.error_exit = wh__jpeg_error_exit;
    e->pub.emit_message = wh__jpeg_emit;
    e->pub.output_message = wh__jpeg_silent;
}

typedef struct wh__jdec {
    struct jpeg_decompress_struct cinfo;
    wh__jerr err;
    const unsigned char *buf;
    size_t len;
    FILE *f;        /* header-only reads use stdio instead of buf */
    int header_only;
    int bad_size;   /* the header's size failed the guard: nothing allocated */
    long long w, h;
    unsigned char *row; /* one decoded scanline, (W, components) */
    float *data;        /* (3, H, W) */
} wh__jdec;

/* Returns 0 on success, -1 when libjpeg raised an error (s->err.msg). */
static int wh__jpeg_run(wh__jdec *s)
{
    if (setjmp(s->err.jb)) return -1;
    jpeg_create_decompress(&s->cinfo);
    if (s->f) jpeg_stdio_src(&s->cinfo, s->f);
    else jpeg_mem_src(&s->cinfo, s->buf, (unsigned long)s->len);
    jpeg_read_header(&s->cinfo, TRUE);
    s->w = s->cinfo.image_width;
    s->h = s->cinfo.image_height;
    if (!wh__size_ok(s->w, s->h)) {
        s->bad_size = 1;
        return 0;
    }
    if (s->header_only) return 0;
    /* libjpeg-turbo converts gray and YCbCr to RGB itself; Adobe CMYK/YCCK
     * come out as (inverted) CMYK and are converted below. */
    const int cmyk = s->cinfo.jpeg_color_space == JCS_CMYK || s->cinfo.jpeg_color_space == JCS_YCCK;
    s->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&s->cinfo);
    const int W = (int)s->cinfo.output_width, H = (int)s->cinfo.output_height;
    const int nc = s->cinfo.output_components;
    s->row = malloc((size_t)W * (size_t)nc);
    s->data = malloc((size_t)W * (size_t)H * 3 * sizeof(float));
    if (!s->row || !s->data) {
        snprintf(s->err.msg, sizeof(s->err.msg), "out of memory for %dx%d pixels", W, H);
        return -1;
    }
    const size_t plane = (size_t)W * (size_t)H;
    while (s->cinfo.output_scanline < s->cinfo.output_height) {
        const size_t y = s->cinfo.output_scanline;
        JSAMPROW rows[1] = {s->row};
        jpeg_read_scanlines(&s->cinfo, rows, 1);
        float *r = s->data + y * (size_t)W, *g = r + plane, *b = g + plane;
        const unsigned char *p = s->row;
        for (int x = 0; x < W; x++, p += nc) {
            if (cmyk) {
                /* Adobe writes CMYK inverted: R = C*K/255 (as stb_image, OpenCV). */
                r[x] = (float)(p[0] * p[3]) / (255.f * 255.f);
                g[x] = (float)(p[1] * p[3]) / (255.f * 255.f);
                b[x] = (float)(p[2] * p[3]) / (255.f * 255.f);
            } else {
                r[x] = p[0] / 255.f;
                g[x] = p[1] / 255.f;
                b[x] = p[2] / 255.f;
            }
        }
    }
    jpeg_finish_decompress(&s->cinfo);
    s->w = W;
    s->h = H;
    return 0;
}

static wh_status wh__jpeg_decode(wh__jdec *s, const char *name, wh_image *out, wh_ctx *ctx)
{
    wh__jerr_init(&s->err);
    s->cinfo.err = &s->err.pub;
    const int rc = wh__jpeg_run(s);
    jpeg_destroy_decompress(&s->cinfo);
    free(s->row);
    s->row = NULL;
    wh_status st = WH_OK;
    if (rc != 0) {
        st = wh_error(ctx, WH_ERR_IO, "%s: corrupt or truncated JPEG: %s", name, s->err.msg);
    } else if (s->bad_size) {
        st = wh__size_error(ctx, name, s->w, s->h);
    } else if (s->err.eof && s->err.starved) {
        /* Out of bytes while pixels still needed them. Running out only
         * while looking for the end marker (or reading ahead) leaves a
         * complete image: that is a warning below. */
        st = wh_error(ctx, WH_ERR_IO, "%s: truncated JPEG: the data ends before the image does", name);
    } else if (!s->header_only) {
        if (s->err.eof) wh_warn(ctx, "%s: JPEG ends without its end-of-image marker (image decoded)", name);
        else if (s->err.n_warn)
            wh_warn(ctx, "%s: %s (%d warnings; image decoded)", name, s->err.warn, s->err.n_warn);
        out->w = (int)s->w;
        out->h = (int)s->h;
        out->c = 3;
        out->data = s->data;
        s->data = NULL;
    }
    free(s->data);
    s->data = NULL;
    return st;
}

/* ------------------------------------------------------------- PNG decode */

typedef struct wh__pdec {
    png_structp png;
    png_infop info;
    char msg[256];
    const unsigned char *buf;
    size_t len, pos;
    long long w, h;
    int bad_size;
    unsigned char *pix;   /* (H, W, 3) bytes */
    png_bytep *rows;      /* H pointers into pix */
    float *data;          /* (3, H, W) */
} wh__pdec;

/* libpng's default handlers print; ours record the message and jump back. */
static void wh__png_error(png_structp png, png_const_charp msg)
{
    char *dst = png_get_error_ptr(png);
    snprintf(dst, 256, "%s", msg);
    png_longjmp(png, 1);
}

static void wh__png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void wh__png_read(png_structp png, png_bytep out, size_t n)
{
    wh__pdec *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) png_error(png, "the file ends early (truncated)");
    memcpy(out, s->buf + s->pos, n);
    s->pos += n;
}

static int wh__png_run(wh__pdec *s)
{
    if (setjmp(png_jmpbuf(s->png))) return -1;
    png_set_read_fn(s->png, s, wh__png_read);
    png_read_info(s->png, s->info);
    png_uint_32 w, h;
    int depth, type, interlace;
    png_get_IHDR(s->png, s->info, &w, &h, &depth, &type, &interlace, NULL, NULL);
    s->w = w;
    s->h = h;
    if (!wh__size_ok(s->w, s->h)) {
        s->bad_size = 1;
        return 0;
    }
    /* Everything becomes 8-bit RGB: palette expanded, gray replicated,
     * 16-bit scaled (not truncated), alpha (incl. tRNS) dropped. */
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s->png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
    if (depth == 16) png_set_scale_16(s->png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(s->png);
    png_set_strip_alpha(s->png);
    png_set_interlace_handling(s->png);
    png_read_update_info(s->png, s->info);
    const size_t rb = png_get_rowbytes(s->png, s->info);
    if (png_get_channels(s->png, s->info) != 3 || rb != (size_t)w * 3) png_error(s->png, "unexpected pixel format");
    s->pix = malloc(rb * h);
    s->rows = malloc(sizeof(png_bytep) * h);
    s->data = malloc((size_t)w * h * 3 * sizeof(float));
    if (!s->pix || !s->rows || !s->data) png_error(s->png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) s->rows[y] = s->pix + y * rb;
    png_read_image(s->png, s->rows);
    png_read_end(s->png, NULL); /* checks the trailing chunks: a file cut after IDAT is truncated */
    const size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane; i++)
        for (int k = 0; k < 3; k++) s->data[k * plane + i] = s->pix[i * 3 + (size_t)k] / 255.f;
    return 0;
}

static wh_status wh__png_decode(const unsigned char *buf, size_t len, const char *name, wh_image *out,
                                wh_ctx *ctx)
{
    long long w = 0, h = 0;
    WH_TRY(wh__png_header(buf, len, name, &w, &h, ctx));
    /* The guard runs on the raw header, before libpng allocates anything. */
    if (!wh__size_ok(w, h)) return wh__size_error(ctx, name, w, h);
    wh__pdec s;
    memset(&s, 0, sizeof(s));
    s.buf = buf;
    s.len = len;
    s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s.msg, wh__png_error, wh__png_warning);
    if (s.png) s.info = png_create_info_struct(s.png);
    if (!s.png || !s.info) {
        png_destroy_read_struct(&s.png, NULL, NULL);
        return wh_error(ctx, WH_ERR_NOMEM, "%s: out of memory for the PNG decoder", name);
    }
    const int rc = wh__png_run(&s);
    png_destroy_read_struct(&s.png, &s.info, NULL);
    free(s.pix);
    free(s.rows);
    wh_status st = WH_OK;
    if (rc != 0) st = wh_error(ctx, WH_ERR_IO, "%s: corrupt or truncated PNG: %s", name, s.msg);
    else if (s.bad_size) st = wh__size_error(ctx, name, s.w, s.h);
    if (st != WH_OK) {
        free(s.data);
        return st;
    }
    out->w = (int)s.w;
    out->h = (int)s.h;
    out->c = 3;
    out->data = s.data;
    return WH_OK;
}

/* ------------------------------------------------------------ public load */

wh_status wh_image_decode(const void *buf, size_t len, const char *name, wh_image *out, wh_ctx *ctx)
{
    memset(out, 0, sizeof(*out));
    const unsigned char *b = buf;
    switch (wh__sniff(b, len)) {
    case WH__FMT_JPEG: {
        wh__jdec *s = calloc(1, sizeof(*s));
        if (!s) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
        s->buf = b;
        s->len = len;
        wh_status st = wh__jpeg_decode(s, name, out, ctx);
        free(s);
        return st;
    }
    case WH__FMT_PNG:
        return wh__png_decode(b, len, name, out, ctx);
    default:
        return wh_error(ctx, WH_ERR_IO, "%s: not a JPEG or PNG image (unrecognised first bytes)", name);
    }
}

wh_status wh_image_load(const char *path, wh_image *out, wh_ctx *ctx)
{
    memset(out, 0, sizeof(*out));
    unsigned char *buf;
    size_t len;
    WH_TRY(wh_file_read_all(path, WH_IMAGE_MAX_BYTES, "image", (char **)&buf, &len, ctx));
    wh_status st = wh_image_decode(buf, len, path, out, ctx);
    free(buf);
    return st;
}

wh_status wh_image_read_size(const char *path, int *w, int *h, wh_ctx *ctx)
{
    *w = *h = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return wh_error(ctx, WH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[24];
    const size_t n = fread(head, 1, sizeof(head), f);
    wh_status st = WH_OK;
    long long W = 0, H = 0;
    switch (wh__sniff(head, n)) {
    case WH__FMT_PNG:
        st = wh__png_header(head, n, path, &W, &H, ctx);
        if (st == WH_OK && !wh__size_ok(W, H)) st = wh__size_error(ctx, path, W, H);
        break;
    case WH__FMT_JPEG: {
        /* The size is in the SOF marker, which may follow large EXIF blocks:
         * let libjpeg walk the markers, reading only as far as SOF. */
        wh__jdec *s = calloc(1, sizeof(*s));
        if (!s) {
            st = wh_error(ctx, WH_ERR_NOMEM, "out of memory");
            break;
        }
        rewind(f);
        s->f = f;
        s->header_only = 1;
        wh_image unused = {0};
        st = wh__jpeg_decode(s, path, &unused, ctx);
        W = s->w;
        H = s->h;
        free(s);
        break;
    }
    default:
        st = wh_error(ctx, WH_ERR_IO, "%s: not a JPEG or PNG image (unrecognised first bytes)", path);
    }
    fclose(f);
    if (st == WH_OK) {
        *w = (int)W;
        *h = (int)H;
    }
    return st;
}

/* ---------------------------------------------------------------- encode */

static int wh__encodable(const wh_image *img)
{
    return img && img->data && (img->c == 1 || img->c == 3) && wh__size_ok(img->w, img->h);
}

static unsigned char wh__byte(float v)
{
    if (!(v > 0.f)) return 0; /* also NaN */
    if (v >= 1.f) return 255;
    return (unsigned char)(v * 255.f + 0.5f);
}

/* One row y as interleaved bytes (W, C). */
static void wh__pack_row(const wh_image *img, int y, unsigned char *dst)
{
    const size_t plane = (size_t)img->w * (size_t)img->h;
    const float *src = img->data + (size_t)y * (size_t)img->w;
    for (int x = 0; x < img->w; x++)
        for (int k = 0; k < img->c; k++) dst[x * img->c + k] = wh__byte(src[(size_t)k * plane + (size_t)x]);
}

typedef struct wh__penc {
    png_structp png;
    png_infop info;
    char msg[256];
    const wh_image *img;
    unsigned char *row;
    unsigned char *out;
    size_t len, cap;
} wh__penc;

static void wh__png_write(png_structp png, png_bytep data, size_t n)
{
    wh__penc *s = png_get_io_ptr(png);
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n) cap *= 2;
        unsigned char *p = realloc(s->out, cap);
        if (!p) png_error(png, "out of memory");
        s->out = p;
        s->cap = cap;
    }
    memcpy(s->out + s->len, data, n);
    s->len += n;
}

static void wh__png_flush(png_structp png)
{
    (void)png;
}

static int wh__png_write_run(wh__penc *s)
{
    if (setjmp(png_jmpbuf(s->png))) return -1;
    png_set_write_fn(s->png, s, wh__png_write, wh__png_flush);
    png_set_IHDR(s->png, s->info, (png_uint_32)s->img->w, (png_uint_32)s->img->h, 8,
                 s->img->c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(s->png, s->info);
    for (int y = 0; y < s->img->h; y++) {
        wh__pack_row(s->img, y, s->row);
        png_write_row(s->png, s->row);
    }
    png_write_end(s->png, NULL);
    return 0;
}

wh_status wh_image_encode_png(const wh_image *img, unsigned char **buf, size_t *len, wh_ctx *ctx)
{
    *buf = NULL;
    *len = 0;
    if (!wh__encodable(img))
        return wh_error(ctx, WH_ERR_ARG, "PNG: cannot encode a %dx%dx%d image (1 or 3 channels)",
                        img ? img->w : 0, img ? img->h : 0, img ? img->c : 0);
    wh__penc s;
    memset(&s, 0, sizeof(s));
    s.img = img;
    s.row = malloc((size_t)img->w * (size_t)img->c);
    s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s.msg, wh__png_error, wh__png_warning);
    if (s.png) s.info = png_create_info_struct(s.png);
    if (!s.row || !s.png || !s.info) {
        png_destroy_write_struct(&s.png, &s.info);
        free(s.row);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory for the PNG encoder");
    }
    const int rc = wh__png_write_run(&s);
    png_destroy_write_struct(&s.png, &s.info);
    free(s.row);
    if (rc != 0) {
        free(s.out);
        return wh_error(ctx, WH_ERR_IO, "PNG encoding failed: %s", s.msg);
    }
    *buf = s.out;
    *len = s.len;
    return WH_OK;
}

typedef struct wh__jenc {
    struct jpeg_compress_struct cinfo;
    wh__jerr err;
    const wh_image *img;
    int quality;
    unsigned char *row;
    unsigned char *out; /* malloc'd by libjpeg-turbo's memory destination */
    unsigned long len;
} wh__jenc;

static int wh__jpeg_write_run(wh__jenc *s)
{
    if (setjmp(s->err.jb)) return -1;
    jpeg_create_compress(&s->cinfo);
    jpeg_mem_dest(&s->cinfo, &s->out, &s->len);
    s->cinfo.image_width = (JDIMENSION)s->img->w;
    s->cinfo.image_height = (JDIMENSION)s->img->h;
    s->cinfo.input_components = s->img->c;
    s->cinfo.in_color_space = s->img->c == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&s->cinfo);
    jpeg_set_quality(&s->cinfo, s->quality, TRUE);
    jpeg_start_compress(&s->cinfo, TRUE);
    while (s->cinfo.next_scanline < s->cinfo.image_height) {
        wh__pack_row(s->img, (int)s->cinfo.next_scanline, s->row);
        JSAMPROW rows[1] = {s->row};
        jpeg_write_scanlines(&s->cinfo, rows, 1);
    }
    jpeg_finish_compress(&s->cinfo);
    return 0;
}

wh_status wh_image_encode_jpeg(const wh_image *img, int quality, unsigned char **buf, size_t *len,
                               wh_ctx *ctx)
{
    *buf = NULL;
    *len = 0;
    if (!wh__encodable(img))
        return wh_error(ctx, WH_ERR_ARG, "JPEG: cannot encode a %dx%dx%d image (1 or 3 channels)",
                        img ? img->w : 0, img ? img->h : 0, img ? img->c : 0);
    if (quality < 1 || quality > 100)
        return wh_error(ctx, WH_ERR_ARG, "JPEG quality %d is not in 1..100", quality);
    wh__jenc *s = calloc(1, sizeof(*s));
    if (s) s->row = malloc((size_t)img->w * (size_t)img->c);
    if (!s || !s->row) {
        free(s);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory for the JPEG encoder");
    }
    wh__jerr_init(&s->err);
    s->cinfo.err = &s->err.pub;
    s->img = img;
    s->quality = quality;
    const int rc = wh__jpeg_write_run(s);
    jpeg_destroy_compress(&s->cinfo);
    free(s->row);
    wh_status st = WH_OK;
    if (rc != 0) {
        free(s->out);
        st = wh_error(ctx, WH_ERR_IO, "JPEG encoding failed: %s", s->err.msg);
    } else {
        *buf = s->out;
        *len = s->len;
    }
    free(s);
    return st;
}

static wh_status wh__save(const char *path, unsigned char *buf, size_t len, wh_ctx *ctx)
{
    wh_status st = wh_file_write_atomic(path, buf, len, ctx);
    free(buf);
    return st;
}

wh_status wh_image_save_png(const char *path, const wh_image *img, wh_ctx *ctx)
{
    unsigned char *buf;
    size_t len;
    if (wh_image_encode_png(img, &buf, &len, ctx) != WH_OK) return wh_error_prefix(ctx, "%s: ", path);
    return wh__save(path, buf, len, ctx);
}

wh_status wh_image_save_jpeg(const char *path, const wh_image *img, int quality, wh_ctx *ctx)
{
    unsigned char *buf;
    size_t len;
    if (wh_image_encode_jpeg(img, quality, &buf, &len, ctx) != WH_OK)
        return wh_error_prefix(ctx, "%s: ", path);
    return wh__save(path, buf, len, ctx);
}

/* ----------------------------------------------------- resize, letterbox */

/* Source coordinate of output index i when n outputs span m inputs with the
 * corners aligned; darknet computes the scale in float, as here. */
static void wh__src_coord(int i, int n, int m, int *i0, float *frac)
{
    if (n <= 1 || m <= 1) {
        *i0 = 0;
        *frac = 0.f;
        return;
    }
    const float scale = (float)(m - 1) / (float)(n - 1);
    const float s = (float)i * scale;
    int k = (int)s;
    float f = s - (float)k;
    if (k >= m - 1) { /* the last output lands on the last input (darknet special-cases it) */
        k = m - 1;
        f = 0.f;
    }
    *i0 = k;
    *frac = f;
}

wh_status wh_image_resize(const wh_image *src, int w, int h, wh_image *dst, wh_ctx *ctx)
{
    if (!src || !src->data || src->w < 1 || src->h < 1)
        return wh_error(ctx, WH_ERR_ARG, "resize: empty source image");
    WH_TRY(wh_image_alloc(dst, w, h, src->c, ctx));
    int *x0 = malloc(sizeof(int) * (size_t)w);
    float *fx = malloc(sizeof(float) * (size_t)w);
    if (!x0 || !fx) {
        free(x0);
        free(fx);
        wh_image_free(dst);
        return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    }
    for (int x = 0; x < w; x++) wh__src_coord(x, w, src->w, &x0[x], &fx[x]);
    for (int k = 0; k < src->c; k++) {
        for (int y = 0; y < h; y++) {
            int y0;
            float fy;
            wh__src_coord(y, h, src->h, &y0, &fy);
            const int y1 = y0 + (fy > 0.f ? 1 : 0);
            const float *r0 = src->data + wh_image_index(src, 0, y0, k);
            const float *r1 = src->data + wh_image_index(src, 0, y1, k);
            float *o = dst->data + wh_image_index(dst, 0, y, k);
            for (int x = 0; x < w; x++) {
                const int a = x0[x], b = a + (fx[x] > 0.f ? 1 : 0);
                const float top = (1.f - fx[x]) * r0[a] + fx[x] * r0[b];
                const float bot = (1.f - fx[x]) * r1[a] + fx[x] * r1[b];
                o[x] = (1.f - fy) * top + fy * bot;
            }
        }
    }
    free(x0);
    free(fx);
    return WH_OK;
}

wh_status wh_image_letterbox(const wh_image *src, int W, int H, wh_image *dst, float *scale, int *dx,
                             int *dy, wh_ctx *ctx)
{
    if (!src || !src->data || src->w < 1 || src->h < 1 || W < 1 || H < 1)
        return wh_error(ctx, WH_ERR_ARG, "letterbox: bad sizes (%dx%d into %dx%d)", src ? src->w : 0,
                        src ? src->h : 0, W, H);
    int nw, nh;
    float s;
    if ((float)W / (float)src->w < (float)H / (float)src->h) {
        nw = W;
        nh = (int)((long long)src->h * W / src->w);
        s = (float)W / (float)src->w;
    } else {
        nh = H;
        nw = (int)((long long)src->w * H / src->h);
        s = (float)H / (float)src->h;
    }
    if (nw < 1) nw = 1;
    if (nh < 1) nh = 1;
    wh_image small;
    WH_TRY(wh_image_resize(src, nw, nh, &small, ctx));
    wh_status st = wh_image_alloc(dst, W, H, src->c, ctx);
    if (st != WH_OK) {
        wh_image_free(&small);
        return st;
    }
    const size_t n = (size_t)W * (size_t)H * (size_t)src->c;
    for (size_t i = 0; i < n; i++) dst->data[i] = 0.5f;
    const int ox = (W - nw) / 2, oy = (H - nh) / 2;
    for (int k = 0; k < src->c; k++)
        for (int y = 0; y < nh; y++)
            memcpy(dst->data + wh_image_index(dst, ox, oy + y, k), small.data + wh_image_index(&small, 0, y, k),
                   sizeof(float) * (size_t)nw);
    wh_image_free(&small);
    if (scale) *scale = s;
    if (dx) *dx = ox;
    if (dy) *dy = oy;
    return WH_OK;
}

/* --------------------------------------------------------------- drawing */

void wh_image_fill_rect(wh_image *img, int x0, int y0, int x1, int y1, const float rgb[3])
{
    if (!img || !img->data) return;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > img->w - 1) x1 = img->w - 1;
    if (y1 > img->h - 1) y1 = img->h - 1;
    if (x0 > x1 || y0 > y1) return;
    for (int k = 0; k < img->c; k++) {
        const float v = rgb[k < 3 ? k : 2];
        for (int y = y0; y <= y1; y++) {
            float *p = img->data + wh_image_index(img, 0, y, k);
            for (int x = x0; x <= x1; x++) p[x] = v;
        }
    }
}

void wh_image_draw_box(wh_image *img, int x0, int y0, int x1, int y1, int thickness, const float rgb[3])
{
    if (x0 > x1 || y0 > y1) return;
    for (int t = 0; t < thickness; t++) {
        const int a = x0 + t, b = y0 + t, c = x1 - t, d = y1 - t;
        if (a > c || b > d) break;
        wh_image_fill_rect(img, a, b, c, b, rgb); /* top */
        wh_image_fill_rect(img, a, d, c, d, rgb); /* bottom */
        wh_image_fill_rect(img, a, b, a, d, rgb); /* left */
        wh_image_fill_rect(img, c, b, c, d, rgb); /* right */
    }
}

void wh_hsv_to_rgb(float h, float s, float v, float rgb[3])
{
    float hs = (h - floorf(h)) * 6.f;
    int k = (int)hs % 6;
    float f = hs - floorf(hs), p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    float r, g, b;
    switch (k) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
    }
    rgb[0] = r;
    rgb[1] = g;
    rgb[2] = b;
}
