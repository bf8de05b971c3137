// Shared harness for layer tests: build a small net from cfg text, run one
// layer alone, and compare it with a float64 reference written in the test.
//
// Protocol (every layer test follows it):
//   1. The layer under test is the LAST layer of the cfg; earlier layers only
//      give it inputs of the right shapes. Their outputs are overwritten with
//      random data, so they never run.
//   2. forward (float32) vs the test's float64 reference: max |diff| below
//      1e-4 of the reference's largest magnitude.
//   3. backward: with loss L = sum(out * R) for a random R, every gradient the
//      layer produces (for each input and each trainable parameter) is
//      compared with central finite differences of the float64 reference.
//   4. The same outputs and gradients with 1 and with 2 threads.
#pragma once

#include <functional>
#include <string>
#include <vector>

extern "C" {
#include "framework/core/net.h"
}

namespace wht {

using Vec = std::vector<double>;
// ref(inputs, params) -> output. inputs in the layer's in[] order, params in
// l->params order (all params, trainable or not), everything NCHW.
using RefFn = std::function<Vec(const std::vector<Vec> &in, const std::vector<Vec> &params)>;

struct LayerCase {
    wh_ctx ctx;
    wh_net *net = nullptr;
    wh_layer *l = nullptr;
    std::vector<Vec> in;      // the inputs given to the layer (float64 copies)
    std::vector<Vec> params;  // the layer's parameters (float64 copies)
    LayerCase() { wh_ctx_init(&ctx); }
    ~LayerCase() { wh_net_destroy(net); }
};

// Builds the net (training buffers on) and fills inputs/params with random
// values in [-1, 1] (seeded). Parameter names in `positive` (e.g.
// "rolling_variance") get values in [0.5, 1.5] instead.
// Returns false with a gtest failure when the cfg does not build.
bool build(LayerCase &c, const std::string &cfg, uint64_t seed,
           const std::vector<std::string> &positive = {});

// Writes c.in / c.params into the net's buffers.
void upload(LayerCase &c);

// Runs the full protocol (steps 2-4). train: forward in training mode; with
// train false only the forward is checked (backward follows a training forward).
// fd_step: finite-difference step (float64). Checks the parameters whose
// flags have WH_PARAM_TRAIN, and every input whose producer is a layer.
void check_layer(LayerCase &c, const RefFn &ref, bool train, double fd_step = 1e-6,
                 double tol = 1e-4);

// For a layer that reads the same producer more than once (route -1,-1;
// shortcut from=-1): the harness's inputs are independent, but here they are
// tied, so the reference sees the producer's values at every use and the
// producer's gradient (all uses added) is compared with central differences
// of the tied reference, with 1 and with 2 threads.
void check_tied_inputs(LayerCase &c, const std::function<Vec(const std::vector<Vec> &)> &ref);

// Max |a-b| / max(max|b|, tiny): the relative error measure used above.
double rel_err(const float *a, const Vec &b);
double rel_err(const Vec &a, const Vec &b);

// Convenient float64 activations, the same formulas as darknet's.
double act_ref(const std::string &name, double x);

}  // namespace wht
