/* The detection-head interface's shared helper (layers/head.h). */
#include "head.h"

void wh_head_loss_add(wh_head_loss *dst, const wh_head_loss *src)
{
    dst->loss += src->loss;
    dst->box += src->box;
    dst->obj += src->obj;
    dst->cls += src->cls;
    dst->n_truth += src->n_truth;
    dst->count += src->count;
    dst->iou_sum += src->iou_sum;
    dst->recall50 += src->recall50;
    dst->recall75 += src->recall75;
    dst->obj_sum += src->obj_sum;
    dst->cls_sum += src->cls_sum;
    dst->anyobj_sum += src->anyobj_sum;
    dst->n_pred += src->n_pred;
    dst->n_box += src->n_box;
    dst->n_cls += src->n_cls;
}
