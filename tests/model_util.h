// Generated YOLO models as networks, for tests across the folders.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

extern "C" {
#include "framework/io/modelgen.h"
#include "framework/core/net.h"
#include "layers/yolo.h"
}

namespace wht {

// The cfg text whittle model writes for model (classes, square size, width multiple).
inline std::string model_cfg(const char *model, int classes, int size, double wm)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_model_opts o;
    wh_model_opts_default(&o);
    o.name = model;
    o.classes = classes;
    o.width = o.height = size;
    o.width_multiple = wm;
    char *text = nullptr;
    EXPECT_EQ(wh_model_generate(&o, &text, &ctx), WH_OK) << ctx.msg;
    std::string s = text ? text : "";
    free(text);
    return s;
}

// A network from cfg text (nullptr after a failed EXPECT); the cfg must
// build without warnings (an unknown key would be one).
inline wh_net *cfg_net(const std::string &text, int batch = 1, int train = 0, int blocked = 0, int share_douts = 0,
                       int share_outs = 0)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *cfg = nullptr;
    EXPECT_EQ(wh_cfg_parse_string(text.c_str(), "test.cfg", &cfg, &ctx), WH_OK) << ctx.msg;
    if (!cfg) return nullptr;
    wh_net_opts no = {};
    no.batch = batch;
    no.train = train;
    no.blocked = blocked;
    no.share_douts = share_douts;
    no.share_outs = share_outs;
    wh_net *net = nullptr;
    EXPECT_EQ(wh_net_create(cfg, &no, &net, &ctx), WH_OK) << ctx.msg;
    EXPECT_EQ(ctx.n_warn_total, 0) << (ctx.n_warn ? ctx.warn[0] : "");
    wh_cfg_free(cfg);
    return net;
}

inline wh_net *model_net(const char *model, int classes, int size, double wm, int train = 0)
{
    return cfg_net(model_cfg(model, classes, size, wm), 1, train);
}

// The first half of a training step, as the trainer runs it: zero the
// parameter gradients, a training forward, zero the seeded gradients, every
// [yolo] layer's loss for truth (max_boxes per image). The caller runs the
// backward (whole or layer by layer) and any optimizer step.
inline void forward_and_loss(wh_net *net, const wh_truth *truth, int max_boxes)
{
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_net_zero_grads(net);
    ASSERT_EQ(wh_net_forward(net, 1, &ctx), WH_OK) << ctx.msg;
    wh_net_zero_douts(net);
    for (int i = 0; i < net->n_layers; i++) {
        if (!wh_yolo_get(&net->layers[i])) continue;
        ASSERT_EQ(wh_yolo_loss(&net->layers[i], truth, max_boxes, net->in_shape.w, net->in_shape.h, nullptr, &ctx),
                  WH_OK)
            << ctx.msg;
    }
}

}  // namespace wht
