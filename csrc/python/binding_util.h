// Helpers shared by the bindings of the CPU core (bindings.cpp) and of the
// CUDA engine (cuda/bindings_cuda.cpp): hyperparameter strings to enums,
// array checks, and the Ctrl-C check. Conversion only, no arithmetic.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "vae.h"

namespace pyvae::binding {

namespace py = pybind11;

template <class E>
E parse(const std::string& value, std::initializer_list<std::pair<const char*, E>> options,
        const char* what) {
    for (const auto& [name, e] : options)
        if (value == name) return e;
    throw std::invalid_argument(std::string("unknown ") + what + ": '" + value + "'");
}

// Refinement settings from Python, checked (model/config.h, Refinement).
inline Refinement make_refinement(int steps, double rate, int draws) {
    if (steps < 0 || !(rate > 0) || !std::isfinite(rate) || draws < 1)
        throw std::invalid_argument("refine_steps must be >= 0, refine_rate finite and > 0, refine_draws >= 1");
    return Refinement{steps, rate, draws};
}

inline Config make_config(int n_features, int n_components, std::vector<int> hidden, const std::string& activation,
                          const std::string& likelihood, const std::string& kl, const std::string& posterior,
                          const std::string& estimator, int n_mc_samples, double beta, bool missing,
                          double variance_floor,
                          const std::vector<std::pair<std::string, int>>& columns = {},
                          std::vector<double> encoder_shift = {}, std::vector<double> encoder_scale = {},
                          const std::string& objective = "elbo") {
    Config c;
    c.n_features = n_features;
    c.n_components = n_components;
    c.hidden_layer_sizes = std::move(hidden);
    c.activation = parse<Activation>(activation, {{"relu", Activation::relu}, {"tanh", Activation::tanh}}, "activation");
    c.likelihood = parse<Likelihood>(likelihood, {{"bernoulli", Likelihood::bernoulli}, {"gaussian", Likelihood::gaussian},
                                                 {"gaussian_isotropic", Likelihood::gaussian_isotropic},
                                                 {"continuous_bernoulli", Likelihood::continuous_bernoulli},
                                                 {"mixed", Likelihood::mixed},
                                                 {"gaussian_heteroscedastic", Likelihood::gaussian_heteroscedastic}},
                                  "likelihood");
    c.kl = parse<KLMode>(kl, {{"analytic", KLMode::analytic}, {"mc", KLMode::mc}}, "kl");
    c.posterior = parse<Posterior>(posterior, {{"gaussian", Posterior::gaussian}, {"logistic", Posterior::logistic},
                                               {"laplace", Posterior::laplace}}, "posterior");
    c.estimator = parse<Estimator>(estimator, {{"reparameterization", Estimator::reparameterization},
                                               {"score_function", Estimator::score_function}}, "gradient_estimator");
    c.objective = parse<Objective>(objective, {{"elbo", Objective::elbo}, {"iwae", Objective::iwae}}, "objective");
    c.n_mc_samples = n_mc_samples;
    c.beta = beta;
    c.missing = missing;
    c.variance_floor = variance_floor;
    // (kind, width) per block, in column order: likelihood "mixed" only (make_layout checks).
    std::vector<std::pair<ColumnKind, int>> kinds;
    for (const auto& [name, width] : columns)
        kinds.emplace_back(parse<ColumnKind>(name, {{"gaussian", ColumnKind::gaussian},
                                                    {"bernoulli", ColumnKind::bernoulli},
                                                    {"poisson", ColumnKind::poisson},
                                                    {"categorical", ColumnKind::categorical},
                                                    {"gaussian_heteroscedastic", ColumnKind::gaussian_heteroscedastic}},
                                        "column kind"),
                           width);
    if (!kinds.empty()) c.columns = make_column_blocks(kinds, n_features);
    c.encoder_shift = std::move(encoder_shift);  // (D) or empty: make_layout checks
    c.encoder_scale = std::move(encoder_scale);
    return c;
}

// Arrays the core reads: any layout or dtype is converted once, here.
template <class T>
using In = py::array_t<T, py::array::c_style | py::array::forcecast>;

// Arrays the core updates in place must already be exactly right: a converted
// copy would silently swallow the update.
template <class T>
T* writable(py::array_t<T>& a, int64_t size, const char* name) {
    if (!(a.flags() & py::array::c_style) || !a.writeable() || a.size() != size)
        throw std::invalid_argument(std::string(name) + " must be a writable C-contiguous array of " +
                                    std::to_string(size) + " values of the model's dtype");
    return a.mutable_data();
}

template <class T>
void check_cols(const In<T>& a, int cols, const char* name) {
    if (a.ndim() != 2 || a.shape(1) != cols)
        throw std::invalid_argument(std::string(name) + " must have shape (n, " + std::to_string(cols) + ")");
}

// Ctrl-C: the core asks between batches; the check needs the GIL for a moment.
inline bool python_interrupted() {
    py::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;
}

// [(name, offset, shape)] of every parameter tensor, in buffer order.
inline py::list describe_layout(const Layout& layout) {
    py::list out;
    auto add = [&](const std::string& prefix, const std::vector<Dense>& layers) {
        for (size_t l = 0; l < layers.size(); ++l) {
            const Dense& d = layers[l];
            out.append(py::make_tuple(prefix + std::to_string(l) + ".weight", d.w, py::make_tuple(d.n_in, d.n_out)));
            out.append(py::make_tuple(prefix + std::to_string(l) + ".bias", d.b, py::make_tuple(d.n_out)));
        }
    };
    add("encoder.", layout.encoder);
    add("decoder.", layout.decoder);
    if (layout.n_noise_logvar)
        out.append(py::make_tuple("decoder.noise_logvar", layout.noise_logvar, py::make_tuple(layout.n_noise_logvar)));
    return out;
}

}  // namespace pyvae::binding
