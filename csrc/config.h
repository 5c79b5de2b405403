// What a model is: its hyperparameters (Config), where each parameter tensor
// sits in the flat buffer (Layout), and the small records the training loop
// passes around. No arithmetic here.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <vector>

#include "hd.h"

namespace pyvae {

enum class Activation { relu, tanh };
enum class Likelihood { bernoulli, gaussian, gaussian_isotropic, continuous_bernoulli };

PYVAE_HD inline bool is_gaussian(Likelihood l) { return l == Likelihood::gaussian || l == Likelihood::gaussian_isotropic; }
enum class KLMode { analytic, mc };
enum class Posterior { gaussian, logistic, laplace };
enum class Estimator { reparameterization, score_function };

constexpr double kLogvarBound = 30.0;  // |log-variance| of q(z|x); see logvar_clamp_forward

struct Config {
    int n_features = 0;
    int n_components = 2;
    std::vector<int> hidden_layer_sizes;  // encoder widths; the decoder mirrors them
    Activation activation = Activation::relu;
    Likelihood likelihood = Likelihood::gaussian;
    KLMode kl = KLMode::analytic;
    Posterior posterior = Posterior::gaussian;
    Estimator estimator = Estimator::reparameterization;
    int n_mc_samples = 1;
    double beta = 1.0;   // weight of the KL term in the training objective
    bool missing = false;  // NaN marks an unobserved entry
    double variance_floor = 0.0;  // Gaussian likelihoods: variance = variance_floor + exp(noise log-variance)
};

// Offsets of W (n_in, n_out) and b (n_out) in the flat parameter buffer.
struct Dense {
    int64_t w, b;
    int n_in, n_out;
};

struct Layout {
    std::vector<Dense> encoder;  // the last one is the head: (.., 2Z) = [mu | logvar]
    std::vector<Dense> decoder;  // the last one gives logits or the Gaussian mean: (.., D)
    int64_t noise_logvar = 0;    // Gaussian likelihood: log-variance per feature (or one)
    int n_noise_logvar = 0;
    int64_t size = 0;
};

inline Layout make_layout(const Config& c) {
    if (c.n_features < 1 || c.n_components < 1 || c.n_mc_samples < 1)
        throw std::invalid_argument("n_features, n_components and n_mc_samples must be >= 1");
    if (c.kl == KLMode::analytic && c.posterior != Posterior::gaussian)
        throw std::invalid_argument("the analytic KL needs a Gaussian posterior; use kl='mc'");
    Layout L;
    auto add = [&L](std::vector<Dense>& layers, int n_in, int n_out) {
        layers.push_back({L.size, L.size + int64_t(n_in) * n_out, n_in, n_out});
        L.size += int64_t(n_in) * n_out + n_out;
    };
    int width = c.n_features;
    for (int h : c.hidden_layer_sizes) { add(L.encoder, width, h); width = h; }
    add(L.encoder, width, 2 * c.n_components);
    width = c.n_components;
    for (auto h = c.hidden_layer_sizes.rbegin(); h != c.hidden_layer_sizes.rend(); ++h) {
        add(L.decoder, width, *h);
        width = *h;
    }
    add(L.decoder, width, c.n_features);
    if (c.variance_floor < 0 || !std::isfinite(c.variance_floor))
        throw std::invalid_argument("variance_floor must be finite and >= 0");
    if (is_gaussian(c.likelihood)) {
        L.n_noise_logvar = c.likelihood == Likelihood::gaussian ? c.n_features : 1;
        L.noise_logvar = L.size;
        L.size += L.n_noise_logvar;
    }
    return L;
}

// Per-row results of one pass, kept for reporting and for scores.
struct BatchStats {
    double recon = 0, kl = 0, mean_f = 0;  // sums over rows (recon, kl: per-row means over S)
};

struct AdamSettings {
    double learning_rate = 1e-3, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, alpha = 0.0;
};

// Status of an epoch: it ran through, Ctrl-C stopped it, or a loss was not finite.
enum class EpochStatus { ok = 0, interrupted = 1, non_finite = 2 };

// Data parallelism over ranks (docs/distributed.md): every rank shuffles the same
// global training rows, takes from each global batch the rows it holds, and
// `allreduce` sums the flat buffer (grad (P) | step scalars (kStepScalars)) over
// all ranks in place, once per step; it may raise the stop flag (the last
// scalar) before summing. Null means one process.
template <class T>
struct DataParallel {
    int64_t first_row = 0;  // global index of this rank's row 0
    int64_t n_local = 0;    // rows this rank holds
    std::function<void(T* buffer, int64_t size)> allreduce;
};
// The scalars that travel with the gradient: rows, loss, recon, KL, learning
// signal (all sums over the rank's rows) and a stop flag (Ctrl-C on any rank).
constexpr int kStepScalars = 6;

struct EpochResult {
    double elbo = 0, recon = 0, kl = 0;  // sums over rows
    int64_t n_rows = 0;
    EpochStatus status = EpochStatus::ok;
};

}  // namespace pyvae
