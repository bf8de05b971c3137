#include "harness.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

namespace wht {

double rel_err(const Vec &a, const Vec &b)
{
    double m = 1e-12, d = 0;
    for (size_t i = 0; i < b.size(); i++) m = std::max(m, std::fabs(b[i]));
    for (size_t i = 0; i < b.size(); i++) d = std::max(d, std::fabs(a[i] - b[i]));
    return d / m;
}

double rel_err(const float *a, const Vec &b)
{
    Vec av(a, a + b.size());
    return rel_err(av, b);
}

double act_ref(const std::string &name, double x)
{
    if (name == "linear") return x;
    if (name == "leaky") return x > 0 ? x : 0.1 * x;
    if (name == "relu") return x > 0 ? x : 0;
    if (name == "logistic") return 1 / (1 + std::exp(-x));
    if (name == "swish") return x / (1 + std::exp(-x));
    if (name == "mish") return x * std::tanh(std::log1p(std::exp(x)));
    if (name == "tanh") return std::tanh(x);
    ADD_FAILURE() << "unknown activation " << name;
    return 0;
}

static size_t count_of(wh_shape s) { return (size_t)s.n * s.c * s.h * s.w; }

bool build(LayerCase &c, const std::string &cfg_text, uint64_t seed,
           const std::vector<std::string> &positive)
{
    wh_cfg *cfg = nullptr;
    wh_status st = wh_cfg_parse_string(cfg_text.c_str(), "test.cfg", &cfg, &c.ctx);
    EXPECT_EQ(st, WH_OK) << c.ctx.msg;
    if (st != WH_OK) return false;
    wh_net_opts o = {};
    o.train = 1;
    st = wh_net_create(cfg, &o, &c.net, &c.ctx);
    wh_cfg_free(cfg);
    EXPECT_EQ(st, WH_OK) << c.ctx.msg;
    if (st != WH_OK) return false;
    wh_net_init_weights(c.net, seed);
    c.l = &c.net->layers[c.net->n_layers - 1];
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1, 1), pos(0.5, 1.5);
    c.in.assign(c.l->n_in, Vec());
    for (int k = 0; k < c.l->n_in; k++) {
        c.in[k].resize(count_of(c.l->in_shape[k]));
        for (auto &v : c.in[k]) v = u(rng);
    }
    c.params.assign(c.l->n_params, Vec());
    for (int p = 0; p < c.l->n_params; p++) {
        bool is_pos = std::find(positive.begin(), positive.end(), c.l->params[p].name) != positive.end();
        c.params[p].resize(c.l->params[p].count);
        for (auto &v : c.params[p]) v = is_pos ? pos(rng) : u(rng);
    }
    upload(c);
    return true;
}

static float *input_buffer(LayerCase &c, int k)
{
    int j = c.l->in[k];
    return j < 0 ? c.net->input : c.net->layers[j].out;
}

static float *input_grad(LayerCase &c, int k)
{
    int j = c.l->in[k];
    return j < 0 ? nullptr : c.net->layers[j].dout;
}

void upload(LayerCase &c)
{
    for (int k = 0; k < c.l->n_in; k++) {
        float *dst = input_buffer(c, k);
        for (size_t i = 0; i < c.in[k].size(); i++) dst[i] = (float)c.in[k][i];
    }
    for (int p = 0; p < c.l->n_params; p++)
        for (size_t i = 0; i < c.params[p].size(); i++) c.l->params[p].data[i] = (float)c.params[p][i];
}

struct Result {
    std::vector<float> out;
    std::vector<std::vector<float>> din, dparam;
};

// One forward+backward of the product with loss sum(out * R).
static Result run_product(LayerCase &c, const Vec &R, bool train, int threads)
{
    Result r;
    omp_set_num_threads(threads);
    upload(c);  // training-mode forward may update running statistics: restore
    wh_net_zero_douts(c.net);
    wh_net_zero_grads(c.net);
    EXPECT_EQ(wh_net_forward_layer(c.net, c.l->index, train, &c.ctx), WH_OK) << c.ctx.msg;
    size_t n = count_of(c.l->out_shape);
    r.out.assign(c.l->out, c.l->out + n);
    for (size_t i = 0; i < n; i++) c.l->dout[i] = (float)R[i];
    EXPECT_EQ(wh_net_backward_layer(c.net, c.l->index, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
    for (int k = 0; k < c.l->n_in; k++) {
        float *g = input_grad(c, k);
        r.din.emplace_back(g ? std::vector<float>(g, g + c.in[k].size()) : std::vector<float>());
    }
    for (int p = 0; p < c.l->n_params; p++) {
        float *g = c.l->params[p].grad;
        r.dparam.emplace_back(g ? std::vector<float>(g, g + c.params[p].size()) : std::vector<float>());
    }
    return r;
}

static double loss_ref(const RefFn &ref, const std::vector<Vec> &in, const std::vector<Vec> &params,
                       const Vec &R)
{
    Vec out = ref(in, params);
    double s = 0;
    for (size_t i = 0; i < out.size(); i++) s += out[i] * R[i];
    return s;
}

static void check_grad(const char *what, const std::vector<float> &got, Vec &x, double h,
                       const std::function<double()> &L, double tol)
{
    Vec fd(x.size());
    for (size_t i = 0; i < x.size(); i++) {
        double keep = x[i];
        x[i] = keep + h;
        double lp = L();
        x[i] = keep - h;
        double lm = L();
        x[i] = keep;
        fd[i] = (lp - lm) / (2 * h);
    }
    ASSERT_EQ(got.size(), fd.size()) << what;
    Vec g(got.begin(), got.end());
    EXPECT_LT(rel_err(g, fd), tol) << what << ": product gradient vs finite differences";
}

void check_layer(LayerCase &c, const RefFn &ref, bool train, double fd_step, double tol)
{
    ASSERT_NE(c.l, nullptr);
    size_t n = count_of(c.l->out_shape);
    Vec want = ref(c.in, c.params);
    ASSERT_EQ(want.size(), n) << "reference output size";
    std::mt19937_64 rng(1234);
    std::uniform_real_distribution<double> u(-1, 1);
    Vec R(n);
    for (auto &v : R) v = u(rng);

    int saved = omp_get_max_threads();
    Result r1 = run_product(c, R, train, 1);
    Result r2 = run_product(c, R, train, 2);
    omp_set_num_threads(saved);

    EXPECT_LT(rel_err(r1.out.data(), want), tol) << "forward vs float64 reference";
    // 1 vs 2 threads: the same numbers (up to float32 summation order).
    {
        Vec a(r1.out.begin(), r1.out.end()), b(r2.out.begin(), r2.out.end());
        EXPECT_LT(rel_err(b, a), 1e-6) << "forward differs between 1 and 2 threads";
    }
    // Backward is defined for the training-mode forward only (as darknet's):
    // an inference-mode case checks the forward alone.
    if (!train) {
        upload(c);
        return;
    }
    auto L = [&]() { return loss_ref(ref, c.in, c.params, R); };
    for (int k = 0; k < c.l->n_in; k++) {
        if (c.l->in[k] < 0) continue;
        std::string what = "d input " + std::to_string(k);
        check_grad(what.c_str(), r1.din[k], c.in[k], fd_step, L, tol);
        Vec a(r1.din[k].begin(), r1.din[k].end()), b(r2.din[k].begin(), r2.din[k].end());
        EXPECT_LT(rel_err(b, a), 1e-5) << what << " differs between 1 and 2 threads";
    }
    for (int p = 0; p < c.l->n_params; p++) {
        if (!(c.l->params[p].flags & WH_PARAM_TRAIN)) continue;
        std::string what = std::string("d ") + c.l->params[p].name;
        check_grad(what.c_str(), r1.dparam[p], c.params[p], fd_step, L, tol);
        Vec a(r1.dparam[p].begin(), r1.dparam[p].end()), b(r2.dparam[p].begin(), r2.dparam[p].end());
        EXPECT_LT(rel_err(b, a), 1e-5) << what << " differs between 1 and 2 threads";
    }
    upload(c);
}

void check_tied_inputs(LayerCase &c, const std::function<Vec(const std::vector<Vec> &)> &ref)
{
    std::vector<int> producers;          // the distinct in[] entries
    std::vector<size_t> use(c.l->n_in);  // input k -> its producer's position
    for (int k = 0; k < c.l->n_in; k++) {
        auto it = std::find(producers.begin(), producers.end(), c.l->in[k]);
        use[k] = (size_t)(it - producers.begin());
        if (it == producers.end()) producers.push_back(c.l->in[k]);
    }
    std::vector<Vec> u(producers.size());
    for (int k = 0; k < c.l->n_in; k++)
        if (u[use[k]].empty()) u[use[k]] = c.in[k];
    auto tied = [&]() {
        std::vector<Vec> in(c.l->n_in);
        for (int k = 0; k < c.l->n_in; k++) in[k] = u[use[k]];
        return in;
    };
    const Vec want = ref(tied());
    std::mt19937_64 rng(77);
    std::uniform_real_distribution<double> dist(-1, 1);
    Vec R(want.size());
    for (auto &v : R) v = dist(rng);
    auto loss = [&]() {
        Vec o = ref(tied());
        double s = 0;
        for (size_t i = 0; i < o.size(); i++) s += o[i] * R[i];
        return s;
    };
    const double h = 1e-6;
    std::vector<Vec> fd(u.size());
    for (size_t j = 0; j < u.size(); j++) {
        fd[j].resize(u[j].size());
        for (size_t i = 0; i < u[j].size(); i++) {
            const double keep = u[j][i];
            u[j][i] = keep + h;
            const double lp = loss();
            u[j][i] = keep - h;
            const double lm = loss();
            u[j][i] = keep;
            fd[j][i] = (lp - lm) / (2 * h);
        }
    }
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2}) {
        SCOPED_TRACE("threads " + std::to_string(threads));
        omp_set_num_threads(threads);
        for (size_t j = 0; j < u.size(); j++)
            for (size_t i = 0; i < u[j].size(); i++) c.net->layers[producers[j]].out[i] = (float)u[j][i];
        wh_net_zero_douts(c.net);
        EXPECT_EQ(wh_net_forward_layer(c.net, c.l->index, 1, &c.ctx), WH_OK) << c.ctx.msg;
        EXPECT_LT(rel_err(c.l->out, want), 1e-4) << "forward vs float64 reference";
        for (size_t i = 0; i < R.size(); i++) c.l->dout[i] = (float)R[i];
        EXPECT_EQ(wh_net_backward_layer(c.net, c.l->index, nullptr, &c.ctx), WH_OK) << c.ctx.msg;
        for (size_t j = 0; j < u.size(); j++)
            EXPECT_LT(rel_err(c.net->layers[producers[j]].dout, fd[j]), 1e-4)
                << "d layer " << producers[j] << " vs finite differences";
    }
    omp_set_num_threads(saved);
}

}  // namespace wht
