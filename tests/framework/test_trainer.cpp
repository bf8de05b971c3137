// The trainer end to end on a tiny synthetic dataset: a resumed run equals
// the uninterrupted one bit for bit (1 thread), and a non-finite loss stops
// the run naming the iteration and layer while the last checkpoint stays
// loadable.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include <algorithm>
#include <cstring>
#include <unistd.h>

extern "C" {
#include "framework/io/checkpoint.h"
#include "framework/data/synth.h"
#include "framework/core/fileio.h"
#include "framework/io/modelgen.h"
#include "framework/train/trainer.h"
#include "framework/data/dataset.h"
#include "pruning/sparse_train.h"
}

namespace {

struct Fixture {
    std::string dir, data, cfg;
    Fixture(const char *name)
    {
        dir = ::testing::TempDir() + "wh_trainer_" + name + "_" + std::to_string(getpid());
        std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
        EXPECT_EQ(std::system(cmd.c_str()), 0);
        data = dir + "/data";
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        wh_synth_opts so;
        wh_synth_opts_default(&so);
        so.images = 10;
        so.size = 64;
        so.seed = 5;
        EXPECT_EQ(wh_synth_generate(&so, data.c_str(), &ctx), WH_OK) << ctx.msg;
        wh_model_opts mo;
        wh_model_opts_default(&mo);
        mo.name = "yolov4-tiny";
        mo.classes = so.classes;
        mo.width = mo.height = 64;
        mo.width_multiple = 0.25;
        char *text = nullptr;
        EXPECT_EQ(wh_model_generate(&mo, &text, &ctx), WH_OK) << ctx.msg;
        char *t2 = nullptr;
        EXPECT_EQ(wh_cfg_text_set(text, "net", "burn_in", "2", &t2, &ctx), WH_OK);
        cfg = dir + "/m.cfg";
        EXPECT_EQ(wh_file_write_atomic(cfg.c_str(), t2, strlen(t2), &ctx), WH_OK);
        free(text);
        free(t2);
    }
    ~Fixture()
    {
        std::string cmd = "rm -rf '" + dir + "'";
        (void)std::system(cmd.c_str());
    }
};

struct Losses {
    std::vector<double> loss;
};

void collect(void *user, const wh_train_event *ev)
{
    if (ev->kind == WH_EV_ITER) static_cast<Losses *>(user)->loss.push_back(ev->loss);
}

wh_train_opts opts(const Fixture &f, const std::string &out, Losses *l)
{
    wh_train_opts o;
    wh_train_opts_default(&o);
    o.cfg_path = f.cfg.c_str();
    o.data = f.data.c_str();
    o.test_split = "";
    o.batch = 4;
    o.subdivisions = 2;
    o.max_batches = 5;
    o.learning_rate = 0.01f;
    o.ckpt_every = 0;
    o.chart_every = 0;
    o.seed = 9;
    o.on_event = collect;
    o.event_user = l;
    (void)out;
    return o;
}

}  // namespace

// Both optimizers, with the weight average on (the default): the losses
// after a resume equal the uninterrupted run's, and the final checkpoints
// hold the same average (the network) and trained weights, bit for bit.
TEST(Trainer, ResumeContinuesBitForBit)
{
    omp_set_num_threads(1);
    for (const char *optimizer : {"sgd", "adamw"}) {
        SCOPED_TRACE(optimizer);
        Fixture f(optimizer);
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        Losses whole, first, rest;
        std::string a = f.dir + "/a", b = f.dir + "/b";
        wh_train_opts o = opts(f, a, &whole);
        o.out_dir = a.c_str();
        o.optimizer = optimizer;
        if (!strcmp(optimizer, "adamw")) o.learning_rate = 0.001f;
        wh_train_result r;
        ASSERT_EQ(wh_train(&o, &r, &ctx), WH_OK) << ctx.msg;
        ASSERT_EQ(whole.loss.size(), 5u);
        EXPECT_EQ(r.iterations, 5);

        wh_train_opts o1 = o;
        o1.event_user = &first;
        o1.out_dir = b.c_str();
        o1.stop_after = 2;  // interrupted after iteration 2 (a checkpoint is written)
        ASSERT_EQ(wh_train(&o1, &r, &ctx), WH_OK) << ctx.msg;
        EXPECT_EQ(r.iterations, 2);
        wh_train_opts o2 = o;
        o2.event_user = &rest;
        o2.out_dir = b.c_str();
        o2.resume = 1;
        o2.optimizer = nullptr;  // the checkpoint's
        ASSERT_EQ(wh_train(&o2, &r, &ctx), WH_OK) << ctx.msg;
        ASSERT_EQ(first.loss.size() + rest.loss.size(), 5u);
        for (size_t i = 0; i < 2; i++) EXPECT_EQ(first.loss[i], whole.loss[i]) << "iteration " << i + 1;
        for (size_t i = 0; i < 3; i++) EXPECT_EQ(rest.loss[i], whole.loss[2 + i]) << "iteration " << i + 3;
        // and the losses are real: they differ from one iteration to the next
        EXPECT_NE(whole.loss[0], whole.loss[4]);

        // the checkpoints: the averaged network and the trained weights agree,
        // and they differ from each other (the average is not the weights)
        std::vector<float> net[2], trained[2];
        for (int k = 0; k < 2; k++) {
            wh_ckpt_reader *rd = nullptr;
            const std::string path = (k ? b : a) + "/last.h5";
            ASSERT_EQ(wh_ckpt_open(path.c_str(), &rd, &ctx), WH_OK) << ctx.msg;
            char *name = nullptr;
            ASSERT_EQ(wh_ckpt_get_str(rd, "optimizer/name", &name, &ctx), WH_OK) << ctx.msg;
            EXPECT_STREQ(name, optimizer);
            free(name);
            const char *w = "layers/000_convolutional/weights";
            uint64_t dims[8];
            int nd = 0;
            ASSERT_EQ(wh_ckpt_dims(rd, w, dims, &nd, &ctx), WH_OK) << ctx.msg;
            uint64_t count = 1;
            for (int d = 0; d < nd; d++) count *= dims[d];
            net[k].resize(count);
            ASSERT_EQ(wh_ckpt_get_f32(rd, w, net[k].data(), net[k].size(), &ctx), WH_OK) << ctx.msg;
            ASSERT_EQ(wh_ckpt_dims(rd, "ema/trained_weights", dims, &nd, &ctx), WH_OK) << ctx.msg;
            trained[k].resize(dims[0]);
            ASSERT_EQ(wh_ckpt_get_f32(rd, "ema/trained_weights", trained[k].data(), trained[k].size(), &ctx), WH_OK);
            int64_t up = 0;
            ASSERT_EQ(wh_ckpt_get_i64(rd, "ema/updates", &up, 1, &ctx), WH_OK);
            EXPECT_EQ(up, 5);
            wh_ckpt_close(rd);
        }
        EXPECT_EQ(net[0], net[1]);
        EXPECT_EQ(trained[0], trained[1]);
        // without averaging: the same losses (the average does not touch
        // training), and the network saved is the trained weights, which the
        // average is not
        Losses plain;
        std::string c = f.dir + "/c";
        wh_train_opts o3 = o;
        o3.event_user = &plain;
        o3.out_dir = c.c_str();
        o3.ema = 0;
        ASSERT_EQ(wh_train(&o3, &r, &ctx), WH_OK) << ctx.msg;
        EXPECT_EQ(plain.loss, whole.loss);
        wh_ckpt_reader *rd = nullptr;
        ASSERT_EQ(wh_ckpt_open((c + "/last.h5").c_str(), &rd, &ctx), WH_OK) << ctx.msg;
        EXPECT_FALSE(wh_ckpt_has(rd, "ema/trained_weights"));
        std::vector<float> w(net[0].size());
        ASSERT_EQ(wh_ckpt_get_f32(rd, "layers/000_convolutional/weights", w.data(), w.size(), &ctx), WH_OK);
        wh_ckpt_close(rd);
        EXPECT_NE(w, net[0]);
        // the trained weights (the arena) hold layer 0's weights somewhere
        EXPECT_NE(std::search(trained[0].begin(), trained[0].end(), w.begin(), w.end()), trained[0].end());
    }
    omp_set_num_threads(2);
}

TEST(Trainer, NonFiniteLossStopsNamingIterationAndLayer)
{
    Fixture f("nan");
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    Losses l;
    std::string out = f.dir + "/run";
    wh_train_opts o = opts(f, out, &l);
    o.out_dir = out.c_str();
    o.ckpt_every = 1;
    o.learning_rate = 100.f;  // the cfg maximum: blows the weights up within a few steps
    o.max_batches = 8;
    wh_train_result res;
    wh_status st = wh_train(&o, &res, &ctx);
    ASSERT_NE(st, WH_OK);
    std::string msg = ctx.msg;
    EXPECT_NE(msg.find("iteration "), std::string::npos) << msg;
    EXPECT_TRUE(msg.find("layer ") != std::string::npos || msg.find("not finite") != std::string::npos) << msg;
    EXPECT_NE(msg.find("weights"), std::string::npos) << msg;  // "...no weights were changed" / "weights unchanged"
    // the last good checkpoint opens and holds an earlier iteration
    wh_ckpt_reader *r = nullptr;
    std::string last = out + "/last.h5";
    ASSERT_EQ(wh_ckpt_open(last.c_str(), &r, &ctx), WH_OK) << ctx.msg;
    int64_t it = 0;
    ASSERT_EQ(wh_ckpt_get_i64(r, "train/iteration", &it, 1, &ctx), WH_OK);
    EXPECT_GE(it, 1);
    EXPECT_LT(it, 8);
    EXPECT_EQ((size_t)it, l.loss.size());
    wh_ckpt_close(r);
}

// Stage 1 inside the trainer: the statistics come once per epoch (and at the
// last iteration), and an interrupted sparse run resumed from its checkpoint
// ends with the same BN scales, bit for bit (1 thread), as the whole run:
// the stateful feedback scheduler's state travels in the checkpoint.
TEST(Trainer, SparseRunLogsEveryEpochAndResumesBitForBit)
{
    omp_set_num_threads(1);
    Fixture f("sparse");
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    const char *spec = "feedback:s=1,target=0.9,thresh=0.5,by=0.5,gain=0.2";
    auto run = [&](const std::string &out, long stop_after, int resume, Losses *l) {
        wh_sparse_hook h;
        EXPECT_EQ(wh_sparse_hook_init(&h, spec, nullptr, 0, &ctx), WH_OK) << ctx.msg;
        wh_sparse_hook_stats(&h, 0, out.c_str());
        wh_train_opts o = opts(f, out, l);
        o.out_dir = out.c_str();
        o.max_batches = 6;
        o.stop_after = stop_after;
        o.resume = resume;
        wh_sparse_hook_attach(&h, &o.hooks);
        wh_train_result r;
        EXPECT_EQ(wh_train(&o, &r, &ctx), WH_OK) << ctx.msg;
        wh_sparse_hook_free(&h);
    };
    auto scales = [&](const std::string &ckpt) {
        wh_net *net = nullptr;
        EXPECT_EQ(wh_ckpt_build_net(ckpt.c_str(), nullptr, &net, nullptr, &ctx), WH_OK) << ctx.msg;
        std::vector<float> all;
        for (int i = 0; net && i < net->n_layers; i++)
            for (int p = 0; p < net->layers[i].n_params; p++)
                if (!strcmp(net->layers[i].params[p].name, "scales"))
                    all.insert(all.end(), net->layers[i].params[p].data,
                               net->layers[i].params[p].data + net->layers[i].params[p].count);
        wh_net_destroy(net);
        return all;
    };
    Losses whole, first, rest, plain;
    std::string a = f.dir + "/a", b = f.dir + "/b", c = f.dir + "/c";
    run(a, 0, 0, &whole);
    // One line per epoch start plus the last iteration: the split's training
    // images n and batch 4 give epoch starts where it*4 crosses a multiple of n.
    wh_dataset *ds = nullptr;
    ASSERT_EQ(wh_dataset_open(f.data.c_str(), "train", &ds, &ctx), WH_OK) << ctx.msg;
    const long n = ds->n;
    wh_dataset_free(ds);
    std::vector<long> want;
    for (long it = 0; it < 6; it++)
        if (it == 0 || it == 5 || (it * 4) / n != ((it - 1) * 4) / n) want.push_back(it);
    std::vector<long> got;
    FILE *fp = fopen((a + "/gamma.jsonl").c_str(), "r");
    ASSERT_NE(fp, nullptr);
    char line[1 << 14];
    std::string last;
    while (fgets(line, sizeof(line), fp)) {
        got.push_back(strtol(strstr(line, "\"iteration\": ") + 13, nullptr, 10));
        last = line;
    }
    fclose(fp);
    EXPECT_EQ(got, want) << "n = " << n;
    // per group too: yolov4-tiny's scale-module groups (finest head stride 16)
    EXPECT_NE(last.find("{\"group\": \"backbone-s16\", \"channels\": "), std::string::npos) << last;
    EXPECT_NE(last.find("{\"group\": \"heads\""), std::string::npos) << last;
    {
        wh_ckpt_reader *rd = nullptr;
        ASSERT_EQ(wh_ckpt_open((a + "/last.h5").c_str(), &rd, &ctx), WH_OK) << ctx.msg;
        char *names = nullptr;
        ASSERT_EQ(wh_ckpt_get_str(rd, "sparsity/group_names", &names, &ctx), WH_OK) << ctx.msg;
        EXPECT_STREQ(names, "backbone-s16,backbone-s32,heads");
        free(names);
        float gs[9];
        ASSERT_EQ(wh_ckpt_get_f32(rd, "sparsity/group_stats", gs, 9, &ctx), WH_OK) << ctx.msg;
        for (int g = 0; g < 3; g++) {
            EXPECT_LE(gs[3 * g], gs[3 * g + 1]) << "share below 1e-3 <= share below 1e-2";
            EXPECT_GT(gs[3 * g + 2], 0.f) << "max |gamma|";
        }
        wh_ckpt_close(rd);
    }

    run(b, 3, 0, &first);
    run(b, 0, 1, &rest);
    std::vector<float> sw = scales(a + "/last.h5"), sr = scales(b + "/last.h5");
    ASSERT_EQ(sw.size(), sr.size());
    ASSERT_FALSE(sw.empty());
    for (size_t i = 0; i < sw.size(); i++) ASSERT_EQ(sw[i], sr[i]) << "scale " << i;

    // and the regulariser did something: plain training ends elsewhere, with
    // a larger sum of |gamma|
    wh_train_opts o = opts(f, c, &plain);
    o.out_dir = c.c_str();
    o.max_batches = 6;
    wh_train_result r;
    ASSERT_EQ(wh_train(&o, &r, &ctx), WH_OK) << ctx.msg;
    std::vector<float> sp = scales(c + "/last.h5");
    double l1_sparse = 0, l1_plain = 0;
    for (size_t i = 0; i < sw.size(); i++) {
        l1_sparse += std::fabs(sw[i]);
        l1_plain += std::fabs(sp[i]);
    }
    EXPECT_LT(l1_sparse, l1_plain - 0.01 * sw.size());
    omp_set_num_threads(2);
}

// ---- numerical guards: a NaN injected into one layer's output or input
// gradient, at a chosen training forward / backward call ----
namespace {

struct Inject {
    long fwd_at[4] = {-1, -1, -1, -1}, bwd_at = -1; // 1-based call numbers
    long fwd_calls = 0, bwd_calls = 0;
} g_inject;

wh_status probe_init(wh_layer *, wh_cfg_section *, wh_ctx *) { return WH_OK; }
wh_status probe_shape(wh_layer *l, wh_ctx *)
{
    l->out_shape = l->in_shape[0];
    l->out_layout = l->in_layout[0];
    return WH_OK;
}
wh_status probe_forward(wh_layer *l, wh_exec *x)
{
    const size_t n = wh_layout_count(l->out_shape, l->out_layout);
    std::memcpy(l->out, x->in[0], n * sizeof(float));
    if (!x->train) return WH_OK;
    g_inject.fwd_calls++;
    for (long at : g_inject.fwd_at)
        if (at == g_inject.fwd_calls) l->out[n / 2] = NAN;
    return WH_OK;
}
wh_status probe_backward(wh_layer *l, wh_exec *x)
{
    const size_t n = wh_layout_count(l->out_shape, l->out_layout);
    if (!x->din[0]) return WH_OK;
    for (size_t i = 0; i < n; i++) x->din[0][i] += l->dout[i];
    if (++g_inject.bwd_calls == g_inject.bwd_at) x->din[0][n / 3] = INFINITY;
    return WH_OK;
}
const wh_layer_ops probe_ops = {"nan_probe", WH_FLOW_SAME, WH_LAYOUTS_ALL, probe_init, probe_shape, nullptr, nullptr,
                                nullptr, probe_forward, probe_backward, nullptr, nullptr, nullptr, nullptr, 0, 0, nullptr, nullptr, nullptr};

// conv -> [nan_probe] -> conv -> [yolo], on the fixture's data (5 classes)
std::string probe_cfg(const Fixture &f, bool bn_after = false)
{
    static bool registered = false;
    if (!registered) {
        wh_ctx ctx;
        wh_ctx_init(&ctx);
        EXPECT_EQ(wh_layer_register(&probe_ops, &ctx), WH_OK) << ctx.msg;
        registered = true;
    }
    const char *text0 = "[net]\nbatch=4\nsubdivisions=2\nwidth=64\nheight=64\nchannels=3\nlearning_rate=0.001\n"
                       "burn_in=0\nmax_batches=6\npolicy=constant\n"
                       "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
                       "[nan_probe]\n"
                       "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=30\nactivation=linear\n"
                       "[yolo]\nmask=0,1,2\nanchors=10,14, 23,27, 37,58\nclasses=5\nnum=3\n";
    std::string t = text0;
    if (bn_after) t.replace(t.find("[convolutional]\nsize=1"), 16, "[convolutional]\nbatch_normalize=1\n");
    const char *text = t.c_str();
    const std::string path = f.dir + (bn_after ? "/probe_bn.cfg" : "/probe.cfg");
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    EXPECT_EQ(wh_file_write_atomic(path.c_str(), text, std::strlen(text), &ctx), WH_OK) << ctx.msg;
    return path;
}

wh_status probe_run(const Fixture &f, const std::string &cfg, const std::string &out, int max_skips, wh_ctx *ctx,
                    wh_train_result *res, int check_finite = 1)
{
    Losses l;
    wh_train_opts o = opts(f, out, &l);
    o.cfg_path = cfg.c_str();
    o.out_dir = out.c_str();
    o.max_batches = 6;
    o.ckpt_every = 1;
    o.max_skips = max_skips;
    o.check_finite = check_finite;
    g_inject.fwd_calls = g_inject.bwd_calls = 0;
    return wh_train(&o, res, ctx);
}

int count_lines(const std::string &path, const std::string &needle)
{
    FILE *fp = std::fopen(path.c_str(), "r");
    if (!fp) return -1;
    char line[4096];
    int n = 0;
    while (std::fgets(line, sizeof(line), fp))
        if (std::strstr(line, needle.c_str())) n++;
    std::fclose(fp);
    return n;
}

}  // namespace

TEST(Trainer, NonFiniteOutputStopsNamingLayerIterationAndType)
{
    Fixture f("nan_out");
    const std::string cfg = probe_cfg(f);
    g_inject = Inject();
    g_inject.fwd_at[0] = 5; // 2 mini-batches per iteration: iteration 3's first
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_train_result res;
    const wh_status st = probe_run(f, cfg, f.dir + "/run", 0, &ctx, &res);
    EXPECT_EQ(st, WH_ERR_NUMERIC);
    const std::string msg = ctx.msg;
    EXPECT_NE(msg.find("iteration 3: layer 1 [nan_probe] forward: non-finite output (nan)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("changed no weights"), std::string::npos) << msg;
    EXPECT_EQ(res.iterations, 2);
    // the checkpoint of iteration 2 is what is on disk
    wh_ckpt_reader *r = nullptr;
    ASSERT_EQ(wh_ckpt_open((f.dir + "/run/last.h5").c_str(), &r, &ctx), WH_OK) << ctx.msg;
    int64_t it = 0;
    EXPECT_EQ(wh_ckpt_get_i64(r, "train/iteration", &it, 1, &ctx), WH_OK);
    EXPECT_EQ(it, 2);
    wh_ckpt_close(r);
}

TEST(Trainer, NonFiniteGradientStopsNamingTheLayerThatMadeIt)
{
    Fixture f("nan_grad");
    const std::string cfg = probe_cfg(f);
    g_inject = Inject();
    g_inject.bwd_at = 4; // iteration 2's second mini-batch
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_train_result res;
    EXPECT_EQ(probe_run(f, cfg, f.dir + "/run", 0, &ctx, &res), WH_ERR_NUMERIC);
    const std::string msg = ctx.msg;
    EXPECT_NE(msg.find("iteration 2: layer 0 [convolutional]: non-finite gradient (inf) of its output, element "),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("made by the backward of 1 [nan_probe]"), std::string::npos) << msg;
    EXPECT_EQ(res.iterations, 1);
}

TEST(Trainer, SkipsUpToKNonFiniteIterationsInARow)
{
    Fixture f("nan_skip");
    const std::string cfg = probe_cfg(f);
    // iterations 2 and 3 go bad (their first mini-batch: calls 3 and 4, as
    // a failed iteration stops at its first), 2 allowed in a row: the run ends
    g_inject = Inject();
    g_inject.fwd_at[0] = 3, g_inject.fwd_at[1] = 4;
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_train_result res;
    ASSERT_EQ(probe_run(f, cfg, f.dir + "/ok", 2, &ctx, &res), WH_OK) << ctx.msg;
    EXPECT_EQ(res.iterations, 6);
    EXPECT_EQ(count_lines(f.dir + "/ok/train.jsonl", "\"skipped\": true"), 2);
    EXPECT_EQ(count_lines(f.dir + "/ok/train.jsonl", "\"loss\""), 4);
    // the running statistics were put back: every parameter of the result is finite
    wh_net *net = nullptr;
    ASSERT_EQ(wh_ckpt_build_net((f.dir + "/ok/last.h5").c_str(), nullptr, &net, nullptr, &ctx), WH_OK) << ctx.msg;
    for (int i = 0; i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++)
            for (size_t k = 0; k < net->layers[i].params[p].count; k++)
                ASSERT_TRUE(std::isfinite(net->layers[i].params[p].data[k])) << i << " " << p;
    wh_net_destroy(net);
    // three in a row with 2 allowed: stops at the third
    g_inject = Inject();
    g_inject.fwd_at[0] = 3, g_inject.fwd_at[1] = 4, g_inject.fwd_at[2] = 5;
    wh_ctx_init(&ctx);
    EXPECT_EQ(probe_run(f, cfg, f.dir + "/stop", 2, &ctx, &res), WH_ERR_NUMERIC);
    EXPECT_NE(std::string(ctx.msg).find("iteration 4: layer 1 [nan_probe] forward"), std::string::npos) << ctx.msg;
    EXPECT_NE(std::string(ctx.msg).find("3 iterations in a row were not finite (--skip-nonfinite 2)"),
              std::string::npos)
        << ctx.msg;
}

TEST(Trainer, SkippedIterationPutsTheRunningStatisticsBack)
{
    // without the per-layer checks the NaN reaches a later batch norm, whose
    // running statistics the forward moved: the skip must restore them
    Fixture f("nan_stats");
    const std::string cfg = probe_cfg(f, true);
    g_inject = Inject();
    g_inject.fwd_at[0] = 3; // iteration 2 (the search for the layer reruns the forward: call 4, clean)
    wh_ctx ctx;
    wh_ctx_init(&ctx);
    wh_train_result res;
    ASSERT_EQ(probe_run(f, cfg, f.dir + "/run", 1, &ctx, &res, 0), WH_OK) << ctx.msg;
    EXPECT_EQ(res.iterations, 6);
    EXPECT_EQ(count_lines(f.dir + "/run/train.jsonl", "\"skipped\": true"), 1);
    EXPECT_EQ(count_lines(f.dir + "/run/train.jsonl", "iteration 2: the loss is not finite"), 1);
    wh_net *net = nullptr;
    ASSERT_EQ(wh_ckpt_build_net((f.dir + "/run/last.h5").c_str(), nullptr, &net, nullptr, &ctx), WH_OK) << ctx.msg;
    int stats = 0;
    for (int i = 0; i < net->n_layers; i++)
        for (int p = 0; p < net->layers[i].n_params; p++) {
            const wh_param &q = net->layers[i].params[p];
            stats += std::strncmp(q.name, "rolling_", 8) == 0 && i == 2;
            for (size_t k = 0; k < q.count; k++) ASSERT_TRUE(std::isfinite(q.data[k])) << i << " " << q.name;
        }
    EXPECT_EQ(stats, 2); // layer 2 has running statistics to protect
    wh_net_destroy(net);
}
