/* whittle: images (decode, encode, resize, letterbox, draw).
 *
 * An image is darknet's: planar float channels in [0,1],
 * data[(c*h + y)*w + x], (C, H, W). Decoding always gives C = 3 (RGB): gray
 * is replicated, alpha dropped, palettes expanded, 16-bit samples scaled to
 * 8 bits, so every loader downstream sees one kind of image.
 *
 * JPEG and PNG are told apart by their first bytes, never by the file name.
 * Sizes are checked before any pixel buffer is allocated (a header may claim
 * anything), and libjpeg/libpng never print or exit: their errors come back
 * as a wh_status whose message names the file.
 */
#ifndef WH_IMAGE_H
#define WH_IMAGE_H

#include <stddef.h>

#include "framework/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits on decoded images: each side 1..WH_IMAGE_MAX_SIDE and at most
 * WH_IMAGE_MAX_PIXELS pixels (64M pixels = 768 MiB as float RGB). */
#define WH_IMAGE_MAX_SIDE 16384
#define WH_IMAGE_MAX_PIXELS (64ll * 1024 * 1024)

typedef struct wh_image {
    int w, h, c;
    float *data; /* (c, h, w), values in [0,1] */
} wh_image;

/* Pixel (x, y) of channel k: img->data[((size_t)k*img->h + y)*img->w + x]. */
static inline size_t wh_image_index(const wh_image *img, int x, int y, int k)
{
    return ((size_t)k * (size_t)img->h + (size_t)y) * (size_t)img->w + (size_t)x;
}

/* Zero-filled w x h x c image. On failure *img is {0}. */
wh_status wh_image_alloc(wh_image *img, int w, int h, int c, wh_ctx *ctx);
/* Frees the pixels and zeroes *img; safe on a zeroed image. */
void wh_image_free(wh_image *img);

/* Decodes a JPEG or PNG file into a 3-channel image. Errors (WH_ERR_IO):
 * unreadable file, not a JPEG/PNG, size out of range, truncated or corrupt
 * data; the message names path. Non-fatal libjpeg complaints about corrupt
 * entropy data in an otherwise complete file become warnings in ctx. */
wh_status wh_image_load(const char *path, wh_image *out, wh_ctx *ctx);
/* The same from bytes in memory; name is used in messages only. */
wh_status wh_image_decode(const void *buf, size_t len, const char *name, wh_image *out, wh_ctx *ctx);
/* Width and height from the header only (no pixels are decoded). */
wh_status wh_image_read_size(const char *path, int *w, int *h, wh_ctx *ctx);

/* Encodes c = 1 (gray) or 3 (RGB) images; values are clamped to [0,1] and
 * rounded (byte b decodes to b/255 and encodes back to b exactly). The file
 * is written atomically (temporary name, fsync, rename). */
wh_status wh_image_save_png(const char *path, const wh_image *img, wh_ctx *ctx);
/* quality 1..100 (libjpeg's scale; 4:2:0 chroma as libjpeg's default). */
wh_status wh_image_save_jpeg(const char *path, const wh_image *img, int quality, wh_ctx *ctx);
/* In-memory encoders behind the two above; *buf is malloc'd, free() it. */
wh_status wh_image_encode_png(const wh_image *img, unsigned char **buf, size_t *len, wh_ctx *ctx);
wh_status wh_image_encode_jpeg(const wh_image *img, int quality, unsigned char **buf, size_t *len,
                               wh_ctx *ctx);

/* Bilinear resize to w x h with darknet's resize_image mapping: output
 * column x samples source column x*(src.w-1)/(w-1) (corners aligned), a
 * 1-pixel side samples column 0. *dst is allocated (free the old one first). */
wh_status wh_image_resize(const wh_image *src, int w, int h, wh_image *dst, wh_ctx *ctx);

/* Darknet's letterbox_image: resize keeping the aspect ratio so the image
 * fits W x H, centre it on a 0.5 grey canvas. scale = min(W/src.w, H/src.h);
 * the resized image is new_w x new_h (the fitted side exactly W or H, the
 * other src side * W/src.w in integer arithmetic, as darknet) at offset
 * (dx, dy) = ((W-new_w)/2, (H-new_h)/2). A source pixel coordinate x maps to
 * x*scale + dx. Any of scale, dx, dy may be NULL. */
wh_status wh_image_letterbox(const wh_image *src, int W, int H, wh_image *dst, float *scale, int *dx,
                             int *dy, wh_ctx *ctx);

/* HSV -> RGB, all in [0,1] (h: fraction of the colour circle, wraps). */
void wh_hsv_to_rgb(float h, float s, float v, float rgb[3]);

/* Fills the pixels x0..x1, y0..y1 (inclusive, 0-based, clipped to the image)
 * with rgb (channel k < 3 takes rgb[k]; a gray image takes rgb[0]). */
void wh_image_fill_rect(wh_image *img, int x0, int y0, int x1, int y1, const float rgb[3]);
/* Outline of the box x0..x1, y0..y1 (inclusive), thickness pixels wide
 * growing inwards (darknet's draw_box_width), clipped to the image. */
void wh_image_draw_box(wh_image *img, int x0, int y0, int x1, int y1, int thickness, const float rgb[3]);

#ifdef __cplusplus
}
#endif
#endif
