/* A JPEG decoder for bench/darknet_torch.py when Python has no PIL.
 *
 * libjpeg (the same library and the same default settings whittle's own
 * loader uses, framework/data/image.c), so the pixels are bit-identical to
 * whittle's: planar RGB float32 in [0, 1], Adobe CMYK/YCCK converted as
 * R = C*K/255^2. darknet_torch.py compiles this file on first use
 * (cc -O2 -shared -fPIC ... -ljpeg) into a cache folder and calls it with
 * ctypes. Not part of whittle.
 *
 *   int bench_jpeg_size(const char *path, int *w, int *h)
 *   int bench_jpeg_decode(const char *path, float *out, int w, int h)
 * Both return 0 on success, -1 on any error (message: bench_jpeg_error()). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

static char bench__msg[JMSG_LENGTH_MAX + 256];

struct bench__err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
};

static void bench__error_exit(j_common_ptr cinfo)
{
    struct bench__err *e = (struct bench__err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, bench__msg);
    longjmp(e->jb, 1);
}

static void bench__silent(j_common_ptr cinfo) { (void)cinfo; }

const char *bench_jpeg_error(void) { return bench__msg; }

/* out == NULL: header only (*w, *h set). */
static int bench__run(const char *path, float *out, int *w, int *h)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(bench__msg, sizeof(bench__msg), "%s: cannot open", path);
        return -1;
    }
    struct jpeg_decompress_struct cinfo;
    struct bench__err err;
    unsigned char *row = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = bench__error_exit;
    err.pub.output_message = bench__silent;
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(row);
        fclose(f);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if (!out) {
        *w = (int)cinfo.image_width;
        *h = (int)cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        return 0;
    }
    const int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    const int W = (int)cinfo.output_width, H = (int)cinfo.output_height, nc = cinfo.output_components;
    if (W != *w || H != *h) {
        snprintf(bench__msg, sizeof(bench__msg), "%s: %dx%d, expected %dx%d", path, W, H, *w, *h);
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        return -1;
    }
    row = malloc((size_t)W * (size_t)nc);
    if (!row) {
        snprintf(bench__msg, sizeof(bench__msg), "out of memory");
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        return -1;
    }
    const size_t plane = (size_t)W * (size_t)H;
    while (cinfo.output_scanline < cinfo.output_height) {
        const size_t y = cinfo.output_scanline;
        JSAMPROW rows[1] = {row};
        jpeg_read_scanlines(&cinfo, rows, 1);
        float *r = out + y * (size_t)W, *g = r + plane, *b = g + plane;
        const unsigned char *p = row;
        for (int x = 0; x < W; x++, p += nc) {
            if (cmyk) {
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
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    fclose(f);
    return 0;
}

int bench_jpeg_size(const char *path, int *w, int *h) { return bench__run(path, NULL, w, h); }

int bench_jpeg_decode(const char *path, float *out, int w, int h) { return bench__run(path, out, &w, &h); }
