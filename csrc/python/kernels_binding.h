// `_core._kernels`: the CPU kernels one by one, float32, for tests only
// (tests/test_kernels.py checks each against tests/reference.py at MNIST's
// shapes). Each function takes NumPy arrays, allocates its outputs, calls one
// kernel and returns; gradients that kernels accumulate start from zeros.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>
#include <map>
#include <string>

#include "python/binding_util.h"
#include "vae.h"

namespace pyvae::binding {

using F = float;

inline py::array_t<F> zeros(std::vector<py::ssize_t> shape) {
    py::array_t<F> a(shape);
    std::fill(a.mutable_data(), a.mutable_data() + a.size(), F(0));
    return a;
}

inline Activation activation_of(const std::string& name) {
    return parse<Activation>(name, {{"relu", Activation::relu}, {"tanh", Activation::tanh}}, "activation");
}
inline Posterior posterior_of(const std::string& name) {
    return parse<Posterior>(name, {{"gaussian", Posterior::gaussian}, {"logistic", Posterior::logistic},
                                   {"laplace", Posterior::laplace}}, "posterior");
}

// Each likelihood's pair, by name, with one signature: forward(recon, out, x, lv, floor, N, S, D, missing,
// threads) and backward(d_out, d_lv, out, x, lv, floor, N, S, D, weight, missing, threads).
struct LikelihoodPair {
    std::function<void(double*, const F*, const F*, const F*, F, int, int, int, bool, int)> forward;
    std::function<void(F*, F*, const F*, const F*, const F*, F, int, int, int, DrawWeights<F>, bool, int)> backward;
};
template <void (*Forward)(double*, const F*, const F*, int, int, int, bool, int),
          void (*Backward)(F*, const F*, const F*, int, int, int, DrawWeights<F>, bool, int)>
LikelihoodPair logit_pair() {  // the Bernoulli likelihoods: no noise variance
    return {[](double* r, const F* o, const F* x, const F*, F, int N, int S, int D, bool miss, int nt) {
                Forward(r, o, x, N, S, D, miss, nt);
            },
            [](F* d, F*, const F* o, const F* x, const F*, F, int N, int S, int D, DrawWeights<F> w, bool miss,
               int nt) { Backward(d, o, x, N, S, D, w, miss, nt); }};
}
inline const LikelihoodPair& likelihood_pair(const std::string& name) {
    static const std::map<std::string, LikelihoodPair> pairs = {
        {"bernoulli", logit_pair<bernoulli_forward<F>, bernoulli_backward<F>>()},
        {"continuous_bernoulli", logit_pair<continuous_bernoulli_forward<F>, continuous_bernoulli_backward<F>>()},
        {"gaussian", {gaussian_forward<F>, gaussian_backward<F>}},
        {"gaussian_isotropic", {gaussian_isotropic_forward<F>, gaussian_isotropic_backward<F>}},
    };
    const auto it = pairs.find(name);
    if (it == pairs.end()) throw std::invalid_argument("unknown likelihood: '" + name + "'");
    return it->second;
}

// f applied to each entry of a float64 array, as the active instruction set's kernels apply it.
template <double (*f)(double)>
py::array_t<double> elementwise(const In<double>& x) {
    py::array_t<double> out(x.size());
    double* o = out.mutable_data();
    const double* in = x.data();
    per_isa([&]() PYVAE_KERNEL {
        for (py::ssize_t i = 0; i < x.size(); ++i) o[i] = f(in[i]);
    });
    return out;
}

inline void bind_kernels(py::module_& parent) {
    auto k = parent.def_submodule("_kernels", "The CPU kernels one by one, float32 (for tests).");
    // C (M, N) = op(A) op(B): the blocked product, op a transpose where asked.
    k.def("matmul", [](In<F> A, In<F> B, bool trans_a, bool trans_b, int n_threads) {
        const int M = int(trans_a ? A.shape(1) : A.shape(0)), K = int(trans_a ? A.shape(0) : A.shape(1));
        const int N = int(trans_b ? B.shape(0) : B.shape(1));
        if ((trans_b ? B.shape(1) : B.shape(0)) != K) throw std::invalid_argument("inner dimensions differ");
        auto C = zeros({M, N});
        matmul<F>(trans_a, trans_b, M, N, K, A.data(), int(A.shape(1)), B.data(), int(B.shape(1)), F(0),
                  C.mutable_data(), N, n_threads);
        return C;
    });
    // act(pre (N, O) + b (O)): the forward epilogue alone (b = -0.0 leaves pre exact).
    k.def("bias_activation", [](In<F> pre, In<F> b, bool hidden, const std::string& act) {
        const int N = int(pre.shape(0)), O = int(pre.shape(1));
        if (b.size() != O) throw std::invalid_argument("b needs one entry per column");
        py::array_t<F> out({N, O});
        std::copy(pre.data(), pre.data() + pre.size(), out.mutable_data());
        bias_activation<F>(out.mutable_data(), O, b.data(), 0, N, 0, O, hidden, activation_of(act));
        return out;
    });
    // out (N, O) from inp (N, I), W (I, O), b (O).
    k.def("dense_forward", [](In<F> inp, In<F> W, In<F> b, bool hidden, const std::string& act, int n_threads) {
        const int N = int(inp.shape(0)), I = int(inp.shape(1)), O = int(W.shape(1));
        auto out = zeros({N, O});
        dense_forward<F>(out.mutable_data(), inp.data(), W.data(), b.data(), N, I, O, hidden, activation_of(act),
                         n_threads);
        return out;
    });
    // (d_inp (N, I), dW (I, O), db (O)) from d_pre (N, O), inp (N, I), W (I, O); `into_zeros`:
    // told that dW and db hold zeros, as a training step's do.
    k.def("dense_backward", [](In<F> d_pre, In<F> inp, In<F> W, bool inp_act, const std::string& act,
                               int n_threads, bool into_zeros) {
        const int N = int(inp.shape(0)), I = int(inp.shape(1)), O = int(W.shape(1));
        auto d_inp = zeros({N, I}), dW = zeros({I, O}), db = zeros({O});
        dense_backward<F>(d_inp.mutable_data(), dW.mutable_data(), db.mutable_data(), d_pre.data(), inp.data(),
                          W.data(), N, I, O, inp_act, activation_of(act), n_threads,
                          into_zeros ? GradStore::into_zeros : GradStore::accumulate);
        return py::make_tuple(d_inp, dW, db);
    }, py::arg("d_pre"), py::arg("inp"), py::arg("W"), py::arg("inp_act"), py::arg("act"), py::arg("n_threads"),
       py::arg("into_zeros") = false);
    // dense_forward from inp's nonzeros (sparse_input.h), whatever inp's density.
    k.def("sparse_dense_forward", [](In<F> inp, In<F> W, In<F> b, bool hidden, const std::string& act,
                                     int n_threads) {
        const int N = int(inp.shape(0)), I = int(inp.shape(1)), O = int(W.shape(1));
        SparseRows<F> s;
        sparse_rows_build(s, inp.data(), N, I, n_threads, 1.0);
        auto out = zeros({N, O});
        sparse_dense_forward<F>(out.mutable_data(), s, W.data(), b.data(), N, O, hidden, activation_of(act),
                                n_threads);
        return out;
    });
    // (dW (I, O), db (O)) from d_pre (N, O) and inp's nonzeros (the data: no d_inp).
    k.def("sparse_dense_backward", [](In<F> d_pre, In<F> inp, int n_threads) {
        const int N = int(inp.shape(0)), I = int(inp.shape(1)), O = int(d_pre.shape(1));
        SparseRows<F> s;
        sparse_rows_build(s, inp.data(), N, I, n_threads, 1.0);
        auto dW = zeros({I, O}), db = zeros({O});
        sparse_dense_backward<F>(dW.mutable_data(), db.mutable_data(), d_pre.data(), s, N, O, n_threads);
        return py::make_tuple(dW, db);
    });
    // Whether a batch x (N, D) is sparse enough for the first layer's sparse path.
    k.def("sparse_input_used", [](In<F> x) {
        SparseRows<F> s;
        return sparse_rows_build(s, x.data(), int(x.shape(0)), int(x.shape(1)), 1);
    });
    // recon (S*N) from out (S*N, D), x (N, D), the noise log-variances lv and the variance floor.
    k.def("likelihood_forward", [](const std::string& name, In<F> out, In<F> x, In<F> lv, float floor, bool missing,
                                   int n_threads) {
        const int N = int(x.shape(0)), D = int(x.shape(1)), S = int(out.shape(0) / N);
        py::array_t<double> recon(int64_t(S) * N);
        likelihood_pair(name).forward(recon.mutable_data(), out.data(), x.data(), lv.data(), floor, N, S, D, missing,
                                      n_threads);
        return recon;
    });
    // (d_out (S*N, D), d_lv) from out, x, lv and the weight of each draw.
    k.def("likelihood_backward", [](const std::string& name, In<F> out, In<F> x, In<F> lv, float floor,
                                    float weight, bool missing, int n_threads) {
        const int N = int(x.shape(0)), D = int(x.shape(1)), S = int(out.shape(0) / N);
        auto d_out = zeros({int64_t(S) * N, D}), d_lv = zeros({lv.size()});
        likelihood_pair(name).backward(d_out.mutable_data(), d_lv.mutable_data(), out.data(), x.data(), lv.data(),
                                       floor, N, S, D, weight, missing, n_threads);
        return py::make_tuple(d_out, d_lv);
    });
    // (recon, d_out, d_lv) of the Gaussians in the training step's single pass (lv of size 1
    // and `isotropic`: one variance shared by every feature).
    k.def("gaussian_forward_backward", [](In<F> out, In<F> x, In<F> lv, bool isotropic, float floor, float weight,
                                          bool missing, int n_threads) {
        const int N = int(x.shape(0)), D = int(x.shape(1)), S = int(out.shape(0) / N);
        py::array_t<double> recon(int64_t(S) * N);
        auto d_out = zeros({int64_t(S) * N, D}), d_lv = zeros({lv.size()});
        gaussian_forward_backward<F>(recon.mutable_data(), d_out.mutable_data(), d_lv.mutable_data(), out.data(),
                                     x.data(), lv.data(), isotropic ? 0 : 1, floor, N, S, D, F(weight), missing,
                                     n_threads);
        return py::make_tuple(recon, d_out, d_lv);
    });
    // (recon, d_out) of the Bernoulli in the training step's single pass.
    k.def("bernoulli_forward_backward", [](In<F> out, In<F> x, float weight, bool missing, int n_threads) {
        const int N = int(x.shape(0)), D = int(x.shape(1)), S = int(out.shape(0) / N);
        py::array_t<double> recon(int64_t(S) * N);
        auto d_out = zeros({int64_t(S) * N, D});
        bernoulli_forward_backward<F>(recon.mutable_data(), d_out.mutable_data(), out.data(), x.data(), N, S, D,
                                      F(weight), missing, n_threads);
        return py::make_tuple(recon, d_out);
    });
    // (eps, z) (S, N, Z) from head (N, 2Z) and noise (S, N, Z).
    k.def("reparameterize_forward", [](In<F> head, In<F> noise, const std::string& posterior, int n_threads) {
        const int N = int(head.shape(0)), Z = int(head.shape(1) / 2), S = int(noise.size() / (int64_t(N) * Z));
        auto eps = zeros({S, N, Z}), z = zeros({S, N, Z});
        reparameterize_forward<F>(eps.mutable_data(), z.mutable_data(), head.data(), noise.data(), N, S, Z,
                                  posterior_of(posterior), n_threads);
        return py::make_tuple(eps, z);
    });
    // d_head (N, 2Z) from dz, eps (S, N, Z) and head (N, 2Z).
    k.def("reparameterize_backward", [](In<F> dz, In<F> head, In<F> eps, int n_threads) {
        const int N = int(head.shape(0)), Z = int(head.shape(1) / 2), S = int(eps.size() / (int64_t(N) * Z));
        auto d_head = zeros({N, 2 * Z});
        reparameterize_backward<F>(d_head.mutable_data(), dz.data(), head.data(), eps.data(), N, S, Z, n_threads);
        return d_head;
    });
    // KL (N) in closed form, and its gradient d_head (N, 2Z) times `weight`.
    k.def("kl_analytic_forward", [](In<F> head) {
        const int N = int(head.shape(0)), Z = int(head.shape(1) / 2);
        py::array_t<double> kl(N);
        kl_analytic_forward<F>(kl.mutable_data(), head.data(), N, Z);
        return kl;
    });
    k.def("kl_analytic_backward", [](In<F> head, float weight) {
        const int N = int(head.shape(0)), Z = int(head.shape(1) / 2);
        auto d_head = zeros({N, 2 * Z});
        kl_analytic_backward<F>(d_head.mutable_data(), head.data(), N, Z, F(1), weight);
        return d_head;
    });
    // log q(z|x) - log p(z) (S*N) per draw.
    k.def("kl_mc_forward", [](In<F> head, In<F> eps, In<F> z, const std::string& posterior, int n_threads) {
        const int N = int(head.shape(0)), Z = int(head.shape(1) / 2), S = int(eps.size() / (int64_t(N) * Z));
        py::array_t<double> kl(int64_t(S) * N);
        kl_mc_forward<F>(kl.mutable_data(), head.data(), eps.data(), z.data(), N, S, Z, posterior_of(posterior),
                         n_threads);
        return kl;
    });
    // noise (S, N, Z) from keys (N): float32 through the vector Box-Muller, or
    // float64 through the C library's log and cos (the reference it rounds to).
    k.def("fill_noise", [](In<uint64_t> keys, int S, int Z, bool uniform, int n_threads) {
        const int N = int(keys.size());
        py::array_t<F> noise({S, N, Z});
        fill_noise<F>(noise.mutable_data(), keys.data(), N, S, Z, uniform, n_threads);
        return noise;
    });
    k.def("fill_noise_float64", [](In<uint64_t> keys, int S, int Z, bool uniform) {
        const int N = int(keys.size());
        py::array_t<double> noise({S, N, Z});
        fill_noise<double>(noise.mutable_data(), keys.data(), N, S, Z, uniform, 1);
        return noise;
    });
    // The Box-Muller's two double functions, elementwise (their accuracy tests).
    k.def("log_positive_normal", [](In<double> u) { return elementwise<log_positive_normal>(u); });
    k.def("cos_zero_to_two_pi", [](In<double> p) { return elementwise<cos_zero_to_two_pi>(p); });
    // The training loop's team-or-alone choice (step_threads.h) over steps whose
    // times each way are given: step k takes team_seconds[k] on the team,
    // solo_seconds[k] alone. Returns whether each step ran on the team.
    k.def("step_thread_choices", [](In<double> solo_seconds, In<double> team_seconds) {
        if (solo_seconds.size() != team_seconds.size()) throw std::invalid_argument("lengths differ");
        py::array_t<bool> team(solo_seconds.size());
        StepThreadChooser chooser;
        for (py::ssize_t k = 0; k < solo_seconds.size(); ++k) {
            team.mutable_data()[k] = chooser.team_next();
            chooser.record(team.data()[k] ? team_seconds.data()[k] : solo_seconds.data()[k]);
        }
        return team;
    });
}

}  // namespace pyvae::binding
