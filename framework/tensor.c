#include "tensor.h"

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
    if (wh_layout_block(dst->layout) > 1)
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
