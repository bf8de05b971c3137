// The detection-head interface (layers/head.h) with a head type of the
// test's own, registered at run time: the trainer and the evaluator reach it
// only through wh_head_ops, so a second kind of head needs no change to
// either. The toy head's loss is a constant it chooses and its boxes are
// fixed, so what the trainer reports and the evaluator lists is known by hand.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "framework/core/cfg.h"
#include "framework/data/synth.h"
#include "framework/eval/evaluate.h"
#include "framework/core/fileio.h"
#include "framework/core/net.h"
#include "framework/train/trainer.h"
#include "layers/head.h"
}

namespace {

struct Toy {
    int classes;
};

long g_loss_calls = 0;
const double kToyLoss = 6.0; // per call: the trainer divides by the batch

wh_status toy_init(wh_layer *l, wh_cfg_section *s, wh_ctx *ctx)
{
    Toy *t = static_cast<Toy *>(calloc(1, sizeof(Toy)));
    if (!t) return wh_error(ctx, WH_ERR_NOMEM, "out of memory");
    l->priv = t;
    l->n_in = 1;
    l->in[0] = l->index - 1;
    return wh_cfg_int(s, "classes", 1, 1, 100, &t->classes, ctx);
}
wh_status toy_shape(wh_layer *l, wh_ctx *)
{
    l->out_shape = l->in_shape[0];
    l->out_layout = WH_LAYOUT_NCHW;
    return WH_OK;
}
wh_status toy_forward(wh_layer *l, wh_exec *x)
{
    std::memcpy(l->out, x->in[0], wh_shape_count(l->out_shape) * sizeof(float));
    return WH_OK;
}
wh_status toy_backward(wh_layer *l, wh_exec *x)
{
    if (!x->din[0]) return WH_OK;
    for (size_t i = 0; i < wh_shape_count(l->out_shape); i++) x->din[0][i] += l->dout[i];
    return WH_OK;
}
void toy_destroy(wh_layer *l)
{
    free(l->priv);
    l->priv = nullptr;
}

int toy_classes(const wh_layer *l) { return static_cast<const Toy *>(l->priv)->classes; }
float toy_jitter(const wh_layer *) { return -1.f; }
wh_status toy_loss(wh_layer *, const wh_truth *, int, int, int, wh_head_loss *parts, wh_ctx *)
{
    g_loss_calls++;
    *parts = wh_head_loss{};
    parts->loss = parts->box = kToyLoss;
    return WH_OK;
}
int toy_averages(const wh_layer *) { return 0; }
int toy_count(const wh_layer *, int, float) { return 1; }
// one box per image: the centre of the input, a quarter of its size; class 1
// scores 0.75, the others 0
wh_status toy_get(const wh_layer *l, int b, int netw, int neth, int, int, float, int, wh_detection *dets, int max,
                  float *pool, int *n, wh_ctx *)
{
    const int C = toy_classes(l);
    *n = max > 0 ? 1 : 0;
    dets[0].box = wh_box{netw / 2.f, neth / 2.f, netw / 4.f, neth / 4.f};
    dets[0].objectness = 1.f;
    dets[0].cls_count = C;
    dets[0].prob = pool;
    for (int c = 0; c < C; c++) pool[c] = c == 1 ? 0.75f : 0.f;
    dets[0].batch = b;
    return WH_OK;
}

const wh_head_ops toy_head = {toy_classes, toy_jitter, toy_loss, toy_averages, nullptr, toy_count, toy_get};

wh_layer_ops make_ops()
{
    wh_layer_ops o = {};
    o.type = "toy_head";
    o.flow = WH_FLOW_SAME;
    o.layouts_in = WH_LAYOUT_BIT(WH_LAYOUT_NCHW);
    o.init = toy_init;
    o.shape = toy_shape;
    o.forward = toy_forward;
    o.backward = toy_backward;
    o.destroy = toy_destroy;
    o.head = &toy_head;
    return o;
}
const wh_layer_ops toy_ops = make_ops();

void register_once()
{
    static bool done = false;
    if (done) return;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    ASSERT_EQ(wh_layer_register(&toy_ops, &ctx), WH_OK) << ctx.msg;
    done = true;
}

TEST(HeadInterface, TheEvaluatorDecodesAnyHead)
{
    register_once();
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_cfg *c = nullptr;
    ASSERT_EQ(wh_cfg_parse_string("[net]\nwidth=40\nheight=20\nchannels=3\n"
                                  "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
                                  "[toy_head]\nclasses=3\n",
                                  "toy.cfg", &c, &ctx),
              WH_OK)
        << ctx.msg;
    wh_net_opts o = {};
    wh_net *net = nullptr;
    ASSERT_EQ(wh_net_create(c, &o, &net, &ctx), WH_OK) << ctx.msg;
    wh_cfg_free(c);
    ASSERT_NE(wh_head_of(&net->layers[1]), nullptr);
    EXPECT_EQ(wh_head_of(&net->layers[0]), nullptr);
    ASSERT_EQ(wh_net_forward(net, 0, &ctx), WH_OK) << ctx.msg;
    int sample = 3;
    wh_xform xf = {};
    xf.sx = xf.sy = 0.5f; // the 80x40 original was halved into the 40x20 input
    xf.orig_w = 80;
    xf.orig_h = 40;
    wh_batch b = {};
    b.n = 1;
    b.sample = &sample;
    b.xform = &xf;
    wh_eval_opts eo;
    wh_eval_opts_default(&eo);
    wh_det *dets = nullptr;
    int n = 0, cap = 0;
    ASSERT_EQ(wh_detect_batch(net, &b, &eo, &dets, &n, &cap, &ctx), WH_OK) << ctx.msg;
    ASSERT_EQ(n, 1);
    EXPECT_EQ(dets[0].cls, 1);
    EXPECT_EQ(dets[0].image, 3);
    EXPECT_FLOAT_EQ(dets[0].score, 0.75f);
    // centre (20, 10), 10 x 5 in the input -> [15, 25] x [7.5, 12.5] -> x2 in
    // the original, VOC corners (x0 + 1)
    EXPECT_FLOAT_EQ(dets[0].xmin, 31.f);
    EXPECT_FLOAT_EQ(dets[0].xmax, 50.f);
    EXPECT_FLOAT_EQ(dets[0].ymin, 16.f);
    EXPECT_FLOAT_EQ(dets[0].ymax, 25.f);
    free(dets);
    wh_net_destroy(net);
}

void collect(void *user, const wh_train_event *ev)
{
    if (ev->kind == WH_EV_ITER) static_cast<std::vector<double> *>(user)->push_back(ev->loss);
}

TEST(HeadInterface, TheTrainerTrainsAnyHead)
{
    register_once();
    const std::string dir = ::testing::TempDir() + "wh_head_" + std::to_string(getpid());
    ASSERT_EQ(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()), 0);
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_synth_opts so;
    wh_synth_opts_default(&so);
    so.images = 8;
    so.size = 32;
    so.seed = 2;
    const std::string data = dir + "/data", cfg = dir + "/toy.cfg";
    ASSERT_EQ(wh_synth_generate(&so, data.c_str(), &ctx), WH_OK) << ctx.msg;
    const std::string text = "[net]\nwidth=32\nheight=32\nchannels=3\nbatch=4\nlearning_rate=0.001\n"
                             "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
                             "[toy_head]\nclasses=" + std::to_string(so.classes) + "\n";
    ASSERT_EQ(wh_file_write_atomic(cfg.c_str(), text.c_str(), text.size(), &ctx), WH_OK);
    std::vector<double> losses;
    wh_train_opts o;
    wh_train_opts_default(&o);
    o.cfg_path = cfg.c_str();
    o.data = data.c_str();
    o.test_split = "";
    o.batch = 4;
    o.subdivisions = 2;
    o.max_batches = 3;
    o.ckpt_every = 0;
    o.chart_every = 0;
    const std::string out = dir + "/run";
    o.out_dir = out.c_str();
    o.on_event = collect;
    o.event_user = &losses;
    g_loss_calls = 0;
    wh_train_result r;
    ASSERT_EQ(wh_train(&o, &r, &ctx), WH_OK) << ctx.msg;
    // one loss call per mini-batch (2 subdivisions x 3 iterations); each
    // iteration's loss is the two calls' sum over the batch of 4
    EXPECT_EQ(g_loss_calls, 6);
    ASSERT_EQ(losses.size(), 3u);
    for (double l : losses) EXPECT_DOUBLE_EQ(l, 2 * kToyLoss / 4);
    // a class count the data does not have is refused, naming the head's type
    const std::string bad = "[net]\nwidth=32\nheight=32\nchannels=3\nbatch=4\n"
                            "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"
                            "[toy_head]\nclasses=" + std::to_string(so.classes + 1) + "\n";
    ASSERT_EQ(wh_file_write_atomic(cfg.c_str(), bad.c_str(), bad.size(), &ctx), WH_OK);
    const std::string out2 = dir + "/run2";
    o.out_dir = out2.c_str();
    EXPECT_EQ(wh_train(&o, &r, &ctx), WH_ERR_CFG);
    EXPECT_NE(std::string(ctx.msg).find("[toy_head] has classes="), std::string::npos) << ctx.msg;
    (void)std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
