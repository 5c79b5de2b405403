// What a model is: its hyperparameters (Config), where each parameter tensor
// sits in the flat buffer (Layout), and the small records the training loop
// passes around. No arithmetic here.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "model/hd.h"

namespace pyvae {

enum class Activation { relu, tanh };
// gaussian_heteroscedastic: the decoder gives each row its own log-variance per
// feature beside the mean (decoder_out_width), in place of shared noise parameters.
enum class Likelihood { bernoulli, gaussian, gaussian_isotropic, continuous_bernoulli, mixed, gaussian_heteroscedastic };

PYVAE_HD inline bool is_gaussian(Likelihood l) { return l == Likelihood::gaussian || l == Likelihood::gaussian_isotropic; }
// Likelihoods with a learned log-variance per feature (mixed: for its Gaussian columns).
PYVAE_HD inline bool has_noise_per_feature(Likelihood l) { return l == Likelihood::gaussian || l == Likelihood::mixed; }

// Likelihood::mixed: the columns come in blocks of one kind each. A categorical
// block is one variable, the one-hot columns of its categories; the other kinds
// are one variable per column (adjacent columns of a kind share a block).
// A gaussian_heteroscedastic column reads its log-variance from the decoder's
// output past the D means, at logvar_start + (column - start).
enum class ColumnKind { gaussian, bernoulli, poisson, categorical, gaussian_heteroscedastic };
struct ColumnBlock {
    ColumnKind kind;
    int start, width;
    int logvar_start = -1;  // gaussian_heteroscedastic only
};
enum class KLMode { analytic, mc };
enum class Posterior { gaussian, logistic, laplace };
enum class Estimator { reparameterization, score_function };
// What training maximizes: the ELBO, or the importance-weighted bound of its
// n_mc_samples draws per row (Burda et al.), both in elbo.h.
enum class Objective { elbo, iwae };

constexpr double kLogvarBound = 30.0;  // |log-variance| of q(z|x) and of the decoder's; see logvar_clamp_forward

// A log-variance clamped to +-kLogvarBound (why: posterior.h's logvar_clamp_forward;
// the heteroscedastic decoder's log-variance is clamped the same way). NaN stays NaN.
template <class T>
PYVAE_HD inline T logvar_clamp(T lv) {
    const T above = lv < T(-kLogvarBound) ? T(-kLogvarBound) : lv;
    return T(kLogvarBound) < above ? T(kLogvarBound) : above;
}
// Whether the clamp holds at the (clamped) value lv: then it passes no gradient.
template <class T>
PYVAE_HD inline bool logvar_clamp_holds(T lv) { return hd_abs(lv) >= T(kLogvarBound); }

struct Config {
    int n_features = 0;
    int n_components = 2;
    std::vector<int> hidden_layer_sizes;  // encoder widths; the decoder mirrors them
    Activation activation = Activation::relu;
    Likelihood likelihood = Likelihood::gaussian;
    KLMode kl = KLMode::analytic;
    Posterior posterior = Posterior::gaussian;
    Estimator estimator = Estimator::reparameterization;
    Objective objective = Objective::elbo;  // iwae: K = n_mc_samples draws per row, the per-draw KL whatever `kl` says
    int n_mc_samples = 1;
    double beta = 1.0;   // weight of the KL term in the training objective
    bool missing = false;  // NaN marks an unobserved entry
    double variance_floor = 0.0;  // Gaussian likelihoods: variance = variance_floor + exp(noise log-variance)
    std::vector<ColumnBlock> columns;  // Likelihood::mixed: blocks covering [0, n_features) in order
    // The encoder sees column k as (x_k - encoder_shift[k]) / encoder_scale[k] (both (D)), or as
    // x_k when both are empty. Adam moves every weight by about the learning rate whatever the
    // scale of its input, so a column of counts in the thousands, entering as it is, would move
    // the first layer's outputs by tens at each step; the Python layer standardizes such columns
    // here, where the likelihood still sees the counts themselves.
    std::vector<double> encoder_shift, encoder_scale;
};

// Whether the encoder reads a copy of the data (missing entries set to 0, the
// encoder transform applied) rather than the data itself.
inline bool encoder_reads_copy(const Config& c) { return c.missing || !c.encoder_scale.empty(); }

// Blocks from (kind, width) pairs in column order: checks that they tile the
// n_features columns, and merges adjacent blocks of a one-column kind.
inline std::vector<ColumnBlock> make_column_blocks(const std::vector<std::pair<ColumnKind, int>>& kinds,
                                                   int n_features) {
    std::vector<ColumnBlock> blocks;
    int start = 0;
    for (const auto& [kind, width] : kinds) {
        if (width < 1 || (kind != ColumnKind::categorical && width != 1) ||
            (kind == ColumnKind::categorical && width < 2))
            throw std::invalid_argument("a categorical block has >= 2 one-hot columns, every other kind one column");
        if (kind != ColumnKind::categorical && !blocks.empty() && blocks.back().kind == kind)
            blocks.back().width += width;
        else
            blocks.push_back({kind, start, width});
        start += width;
    }
    int logvar_start = n_features;  // past the means, in column order
    for (ColumnBlock& b : blocks)
        if (b.kind == ColumnKind::gaussian_heteroscedastic) {
            b.logvar_start = logvar_start;
            logvar_start += b.width;
        }
    if (start != n_features)
        throw std::invalid_argument("the column kinds cover " + std::to_string(start) + " columns; the data has " +
                                    std::to_string(n_features));
    return blocks;
}

// Width of a row of the decoder's output: the mean (or logits) of each feature,
// then the log-variance of each heteroscedastic one, [m | lv] (ColumnBlock::logvar_start).
inline int decoder_out_width(const Config& c) {
    if (c.likelihood == Likelihood::gaussian_heteroscedastic) return 2 * c.n_features;
    int width = c.n_features;
    for (const ColumnBlock& b : c.columns)
        if (b.kind == ColumnKind::gaussian_heteroscedastic) width += b.width;
    return width;
}

// Offsets of W (n_in, n_out) and b (n_out) in the flat parameter buffer.
struct Dense {
    int64_t w, b;
    int n_in, n_out;
};

struct Layout {
    std::vector<Dense> encoder;  // the last one is the head: (.., 2Z) = [mu | logvar]
    std::vector<Dense> decoder;  // the last one gives logits or the Gaussian mean: (.., decoder_out_width)
    int64_t noise_logvar = 0;    // Gaussian likelihood: log-variance per feature (or one)
    int n_noise_logvar = 0;
    int64_t size = 0;
};

inline Layout make_layout(const Config& c) {
    if (c.n_features < 1 || c.n_components < 1 || c.n_mc_samples < 1)
        throw std::invalid_argument("n_features, n_components and n_mc_samples must be >= 1");
    if (c.kl == KLMode::analytic && c.posterior != Posterior::gaussian)
        throw std::invalid_argument("the analytic KL needs a Gaussian posterior; use kl='mc'");
    if (c.objective == Objective::iwae && c.estimator != Estimator::reparameterization)
        throw std::invalid_argument("objective='iwae' trains with the reparameterization estimator only; "
                                    "gradient_estimator='score_function' goes with objective='elbo'");
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
    add(L.decoder, width, decoder_out_width(c));
    if (c.variance_floor < 0 || !std::isfinite(c.variance_floor))
        throw std::invalid_argument("variance_floor must be finite and >= 0");
    if ((c.likelihood == Likelihood::mixed) != !c.columns.empty())
        throw std::invalid_argument("column blocks go with likelihood='mixed', and only with it");
    const size_t n_transform = c.encoder_scale.empty() ? 0 : size_t(c.n_features);
    if (c.encoder_shift.size() != n_transform || c.encoder_scale.size() != n_transform)
        throw std::invalid_argument("encoder_shift and encoder_scale need one entry per feature each, or none");
    for (size_t k = 0; k < n_transform; ++k)
        if (!std::isfinite(c.encoder_shift[k]) || !(c.encoder_scale[k] > 0) || !std::isfinite(c.encoder_scale[k]))
            throw std::invalid_argument("encoder_shift must be finite and encoder_scale finite and > 0");
    if (is_gaussian(c.likelihood) || c.likelihood == Likelihood::mixed) {
        L.n_noise_logvar = has_noise_per_feature(c.likelihood) ? c.n_features : 1;
        L.noise_logvar = L.size;
        L.size += L.n_noise_logvar;
    }
    return L;
}

// Semi-amortized inference (Model::refine_posterior): before its importance
// draws, each row's q(z|x) from the encoder takes `steps` Adam steps on the
// row's own ELBO, `draws` draws each, the step size falling linearly from
// `rate` to 0. 0 steps: the encoder's q as it is. The rate and draws: in trials
// on the evaluation suite's tuning tables (VAEImputer, 50 steps) rates 0.05 and
// 0.1 and 1, 2, 4 or 8 draws a step filled alike, and a step's cost grows with
// its draws; so one draw, and more steps where more are needed (the decaying
// step size averages their noise out).
struct Refinement {
    int steps = 0;
    double rate = 0.1;
    int draws = 1;
};

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
    double bound = 0;  // objective iwae: sum over rows of the importance-weighted bound trained on
    int64_t n_rows = 0;
    int64_t team_steps = 0;  // steps run on more than one thread (CPU engine)
    // Sums of the posterior mean and of its square per latent dimension over the
    // rows this process encoded (mu_rows): the variance behind active_units_,
    // without encoding the rows again after the epoch. Empty where an engine
    // does not keep them.
    std::vector<double> mu_sum, mu_sq_sum;
    int64_t mu_rows = 0;
    EpochStatus status = EpochStatus::ok;
};

}  // namespace pyvae
