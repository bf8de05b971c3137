/* whittle: shapes, layouts and tensor views.
 *
 * Activations are float32 (N, C, H, W) maps. A tensor carries its layout so
 * that a chain of layers can keep oneDNN's blocked nChw16c layout (channels
 * padded to a multiple of 16, the 16 channels of a block innermost) instead of
 * reordering to plain NCHW between every pair of layers. Loops that only
 * touch every element (activations, sums, scaling) index the flat buffer and
 * need no layout; loops that need (n, c, h, w) go through wh_tensor_offset.
 */
#ifndef WH_TENSOR_H
#define WH_TENSOR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wh_layout {
    WH_LAYOUT_NCHW = 0,    /* plain: ((n*C + c)*H + h)*W + w */
    WH_LAYOUT_NCHW16C = 1, /* blocked: (((n*Cb + c/16)*H + h)*W + w)*16 + c%16 */
    WH_LAYOUT_NCHW8C = 2,  /* the same with blocks of 8 channels (oneDNN's AVX2 layout) */
    WH_LAYOUT_COUNT
} wh_layout;

#define WH_LAYOUT_BIT(l) (1u << (l))

typedef struct wh_shape {
    int n, c, h, w;
} wh_shape;

typedef struct wh_tensor {
    float *data;
    wh_shape shape;
    wh_layout layout;
} wh_tensor;

static inline size_t wh_shape_count(wh_shape s)
{
    return (size_t)s.n * (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

static inline int wh_shape_eq(wh_shape a, wh_shape b)
{
    return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w;
}

/* Channels per block: 1 for NCHW, 16 or 8 for the blocked layouts. */
static inline int wh_layout_block(wh_layout l)
{
    return l == WH_LAYOUT_NCHW16C ? 16 : l == WH_LAYOUT_NCHW8C ? 8 : 1;
}

/* Floats a tensor of this shape occupies in this layout (blocked layouts pad C). */
size_t wh_layout_count(wh_shape s, wh_layout layout);

static inline size_t wh_tensor_offset(const wh_tensor *t, int n, int c, int h, int w)
{
    const wh_shape s = t->shape;
    const int B = wh_layout_block(t->layout);
    if (B > 1) {
        const size_t cb = (size_t)(s.c + B - 1) / (size_t)B;
        return ((((size_t)n * cb + (size_t)(c / B)) * (size_t)s.h + (size_t)h) * (size_t)s.w +
                (size_t)w) * (size_t)B + (size_t)(c % B);
    }
    return (((size_t)n * (size_t)s.c + (size_t)c) * (size_t)s.h + (size_t)h) * (size_t)s.w +
           (size_t)w;
}

/* Copies src into dst (same shape, any two layouts); padding channels become 0. */
void wh_tensor_reorder(const wh_tensor *src, wh_tensor *dst);

/* dst += src, with dst in any layout (gradients flowing back over a reorder). */
void wh_tensor_reorder_add(const wh_tensor *src, wh_tensor *dst);

const char *wh_layout_name(wh_layout l);

#ifdef __cplusplus
}
#endif
#endif
