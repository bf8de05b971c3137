#include "framework/core/tensor.h"

#include <string.h>

size_t wh_layout_count(wh_shape s, wh_layout layout)
{
    const int B = wh_layout_block(layout);
    if (B > 1) {
        wh_shape p = s;
        p.c = (s.c + B - 1) / B * B;
        return wh_shape_count(p);
    }
    return wh_shape_count(s);
}

void wh_tensor_reorder(const wh_tensor *src, wh_tensor *dst)
{
    const wh_shape s = src->shape;
    if (src->layout == dst->layout) {
        memcpy(dst->data, src->data, wh_layout_count(s, src->layout) * sizeof(float));
        return;
    }
    const size_t hw = (size_t)s.h * s.w;
    const int bs = wh_layout_block(src->layout), bd = wh_layout_block(dst->layout);
    if (bs == 1 && bd > 1) {
        /* NCHW -> blocked: each block gathers bd planes, padding lanes 0 */
        const int cb = (s.c + bd - 1) / bd;
#pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n < s.n; n++)
            for (int q = 0; q < cb; q++) {
                float *d = dst->data + ((size_t)n * cb + (size_t)q) * hw * (size_t)bd;
                for (int t = 0; t < bd; t++) {
                    const int c = q * bd + t;
                    const float *p = c < s.c ? src->data + ((size_t)n * s.c + (size_t)c) * hw : NULL;
                    for (size_t i = 0; i < hw; i++) d[i * (size_t)bd + (size_t)t] = p ? p[i] : 0.f;
                }
            }
        return;
    }
    if (bs > 1 && bd == 1) {
        /* blocked -> NCHW: each plane strided out of its block */
        const int cb = (s.c + bs - 1) / bs;
#pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n < s.n; n++)
            for (int c = 0; c < s.c; c++) {
                const float *p = src->data + ((size_t)n * cb + (size_t)(c / bs)) * hw * (size_t)bs + (size_t)(c % bs);
                float *d = dst->data + ((size_t)n * s.c + (size_t)c) * hw;
                for (size_t i = 0; i < hw; i++) d[i] = p[i * (size_t)bs];
            }
        return;
    }
    if (bd > 1)
        memset(dst->data, 0, wh_layout_count(s, dst->layout) * sizeof(float));
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    dst->data[wh_tensor_offset(dst, n, c, h, w)] =
                        src->data[wh_tensor_offset(src, n, c, h, w)];
}

void wh_tensor_reorder_add(const wh_tensor *src, wh_tensor *dst)
{
    const wh_shape s = src->shape;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    dst->data[wh_tensor_offset(dst, n, c, h, w)] +=
                        src->data[wh_tensor_offset(src, n, c, h, w)];
}

const char *wh_layout_name(wh_layout l)
{
    switch (l) {
    case WH_LAYOUT_NCHW: return "nchw";
    case WH_LAYOUT_NCHW16C: return "nChw16c";
    case WH_LAYOUT_NCHW8C: return "nChw8c";
    default: return "?";
    }
}
