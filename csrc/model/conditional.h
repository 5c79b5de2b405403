// ConditionalModel<T>: the VAE with arbitrary conditioning (VAEAC; Ivanov,
// Figurnov and Vetrov, ICLR 2019), a VAE built for imputation. The plain VAE's
// decoder sees only z, so whatever a missing entry depends on must pass through
// a few noisy latent dimensions; here the prior and the decoder both see the
// entries that are known, and the latent carries only what they leave open
// (benchmarks/PROBE_VAEAC.md measured the gain before this was built).
//
// Shapes: N rows in a batch, D features, Z latent dimensions. Per row, o is
// the observed mask, k (a subset of o) the entries known to the prior and the
// decoder, h = o - k the entries they must reconstruct:
//   prior     p(z | x_k)      mlp [e(x)*k | k]       (N, E+D)    -> (N, 2Z) [mu_p | logvar_p]
//   proposal  q(z | x_o)      mlp [e(x)*o | o | k]   (N, E+2D)   -> (N, 2Z) [mu_q | logvar_q]
//   decoder   p(x | z, x_k)   mlp [z | e(x)*k | k]   (N, Z+E+D)  -> (N, D) mean; a log-variance per feature
// e(x) (N, E) is each value's encoding, its feature's mask spread over its units: the value itself
// (one unit), or, with bin edges b_0 < ... < b_B for the feature, B units clamp((x - b_t) / (b_{t+1} -
// b_t), 0, 1), the piecewise-linear encoding of Gorishniy, Rubachev and Babenko (NeurIPS 2022): a step
// in one value, which a tree takes in one split, is one input unit (benchmarks/PROBE_VAEAC.md).
// loss (per row) = sum over h of -log N(x_j; mean_j, var_j) + KL(q || p), z = mu_q + sd_q * eps.
// Training draws k by hiding each observed entry with probability hide_rate;
// imputation takes k = o, draws z from the prior and averages the decoder's means.
// Both log-variance halves are clamped (posterior.h's logvar_clamp), as the VAE's.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "model/adam.h"
#include "model/config.h"
#include "model/dense.h"
#include "model/likelihood_math.h"
#include "model/rng.h"
#include "cpu/parallel.h"

namespace pyvae {

struct ConditionalConfig {
    int n_features = 0, n_components = 1;
    std::vector<int> hidden_layer_sizes{128};
    Activation activation = Activation::tanh;
    double hide_rate = 0.2, variance_floor = 1e-6;
    std::vector<std::vector<double>> bin_edges;  // per feature (empty for the value itself), or none at all
};

// Where each feature's value lands in e(x): units first[j] .. first[j + 1] - 1, each clamp((x - lower) *
// inv_width, 0, 1) for a binned feature, x itself for the others.
struct ValueEncoding {
    std::vector<int> first{0};
    std::vector<double> lower, inv_width;
    std::vector<char> binned;
    int width() const { return first.back(); }

    template <class T>
    void encode(int j, T value, T* units) const {
        for (int u = first[j]; u < first[j + 1]; ++u)
            units[u - first[j]] =
                binned[j] ? T(std::clamp((double(value) - lower[u]) * inv_width[u], 0.0, 1.0)) : value;
    }
};

inline ValueEncoding make_value_encoding(const ConditionalConfig& c) {
    if (!c.bin_edges.empty() && int(c.bin_edges.size()) != c.n_features)
        throw std::invalid_argument("bin_edges must hold one list per feature");
    ValueEncoding e;
    for (int j = 0; j < c.n_features; ++j) {
        const std::vector<double> none, &edges = c.bin_edges.empty() ? none : c.bin_edges[j];
        for (size_t t = 0; t < edges.size(); ++t)
            if (!std::isfinite(edges[t]) || (t > 0 && !(edges[t] > edges[t - 1])))
                throw std::invalid_argument("each feature's bin edges must be finite and increasing");
        e.binned.push_back(edges.size() >= 2);
        if (edges.size() >= 2) {
            for (size_t t = 0; t + 1 < edges.size(); ++t) {
                e.lower.push_back(edges[t]);
                e.inv_width.push_back(1.0 / (edges[t + 1] - edges[t]));
            }
        } else {
            e.lower.push_back(0.0);
            e.inv_width.push_back(1.0);
        }
        e.first.push_back(int(e.lower.size()));
    }
    return e;
}

struct ConditionalLayout {
    ValueEncoding encoding;
    std::vector<Dense> prior, proposal, decoder;
    int64_t noise_logvar = 0, size = 0;
    Layout for_adam;  // the same tensors as adam.h walks them (weights decay, biases and log-variances not)
};

inline ConditionalLayout make_conditional_layout(const ConditionalConfig& c) {
    if (c.n_features < 1 || c.n_components < 1) throw std::invalid_argument("n_features and n_components must be >= 1");
    if (!(c.hide_rate > 0 && c.hide_rate < 1)) throw std::invalid_argument("hide_rate must be in (0, 1)");
    for (int h : c.hidden_layer_sizes)
        if (h < 1) throw std::invalid_argument("hidden layer sizes must be >= 1");
    ConditionalLayout L;
    L.encoding = make_value_encoding(c);
    const int D = c.n_features, Z = c.n_components, E = L.encoding.width();
    auto stack = [&](int n_in, int n_out) {
        std::vector<Dense> layers;
        std::vector<int> widths{n_in};
        widths.insert(widths.end(), c.hidden_layer_sizes.begin(), c.hidden_layer_sizes.end());
        widths.push_back(n_out);
        for (size_t l = 0; l + 1 < widths.size(); ++l) {
            layers.push_back({L.size, L.size + int64_t(widths[l]) * widths[l + 1], widths[l], widths[l + 1]});
            L.size += int64_t(widths[l]) * widths[l + 1] + widths[l + 1];
        }
        return layers;
    };
    L.prior = stack(E + D, 2 * Z);
    L.proposal = stack(E + 2 * D, 2 * Z);
    L.decoder = stack(Z + E + D, D);
    L.noise_logvar = L.size;
    L.size += D;
    L.for_adam.encoder = L.prior;
    L.for_adam.encoder.insert(L.for_adam.encoder.end(), L.proposal.begin(), L.proposal.end());
    L.for_adam.decoder = L.decoder;
    L.for_adam.noise_logvar = L.noise_logvar;
    L.for_adam.n_noise_logvar = D;
    L.for_adam.size = L.size;
    return L;
}

template <class T>
class ConditionalModel {
   public:
    ConditionalConfig config;
    ConditionalLayout layout;
    int n_threads = 1;

    explicit ConditionalModel(const ConditionalConfig& c) : config(c), layout(make_conditional_layout(c)) {
        init_blas_threads();
    }

    int64_t n_params() const { return layout.size; }

    // PyTorch's default for Linear layers, as Model::init_params: W and b ~ U(-1/sqrt(n_in), 1/sqrt(n_in));
    // the noise log-variances 0.
    void init_params(T* params, uint64_t seed) const {
        auto fill = [&](int64_t offset, int64_t n, double bound, uint64_t key) {
            for (int64_t k = 0; k < n; ++k) params[offset + k] = T((2 * standard_uniform(key, k) - 1) * bound);
        };
        uint64_t tensor = 0;
        for (const auto* layers : {&layout.prior, &layout.proposal, &layout.decoder})
            for (const Dense& d : *layers) {
                const double bound = 1.0 / std::sqrt(double(d.n_in));
                fill(d.w, int64_t(d.n_in) * d.n_out, bound, combine_keys(seed, tensor++));
                fill(d.b, d.n_out, bound, combine_keys(seed, tensor++));
            }
        std::fill(params + layout.noise_logvar, params + layout.size, T(0));
    }

    // One pass's buffers: the three networks' inputs and layer outputs, and the gradients.
    struct Buffers {
        std::vector<T> prior_in, proposal_in, decoder_in;  // (N, E + D), (N, E + 2D), (N, Z + E + D)
        std::vector<std::vector<T>> prior_out, proposal_out, decoder_out;
        std::vector<T> d_prior, d_proposal, d_decoder_in, d_a, d_b;
    };

    // ---- forward ---------------------------------------------------------------

    // outs[l] (N, width of layer l) for the stack from inp (N, its first width); the last is returned.
    // `rowwise`: inference's row-by-row products (dense_forward_rowwise: a row's bits do not depend on the batch).
    const T* mlp_forward(const std::vector<Dense>& layers, std::vector<std::vector<T>>& outs, const T* params,
                         const T* inp, int N, bool rowwise) const {
        outs.resize(layers.size());
        for (size_t l = 0; l < layers.size(); ++l) {
            const Dense& d = layers[l];
            const bool hidden = l + 1 < layers.size();
            outs[l].resize(size_t(N) * d.n_out);
            dense_layer_forward(outs[l].data(), inp, params, d, N, hidden, rowwise, config.activation, n_threads);
            inp = outs[l].data();
        }
        return inp;
    }

    // The networks' inputs for rows x (N, D; NaN where missing) with known (N, D; 1 known, 0 not):
    // prior_in = [e(x)*k | k], proposal_in = [e(x)*o | o | k] (`with_proposal`), the decoder's last E + D
    // columns [e(x)*k | k].
    void build_inputs(const T* x, const T* known, int N, Buffers& b, bool with_proposal) const {
        const ValueEncoding& enc = layout.encoding;
        const int D = config.n_features, Z = config.n_components, E = enc.width();
        b.prior_in.assign(size_t(N) * (E + D), T(0));
        b.decoder_in.assign(size_t(N) * (Z + E + D), T(0));
        if (with_proposal) b.proposal_in.assign(size_t(N) * (E + 2 * D), T(0));
        for (int i = 0; i < N; ++i) {
            T* p = b.prior_in.data() + int64_t(i) * (E + D);
            T* dec = b.decoder_in.data() + int64_t(i) * (Z + E + D) + Z;
            T* q = with_proposal ? b.proposal_in.data() + int64_t(i) * (E + 2 * D) : nullptr;
            for (int j = 0; j < D; ++j) {
                const T v = x[int64_t(i) * D + j], k = known[int64_t(i) * D + j];
                const bool observed = !std::isnan(v);
                if (k != T(0)) {
                    enc.encode(j, v, p + enc.first[j]);
                    std::copy(p + enc.first[j], p + enc.first[j + 1], dec + enc.first[j]);
                }
                p[E + j] = dec[E + j] = k;
                if (q) {
                    if (observed) enc.encode(j, v, q + enc.first[j]);
                    q[E + j] = observed ? T(1) : T(0);
                    q[E + D + j] = k;
                }
            }
        }
    }

    // The mean loss over N rows of x (N, D; NaN where missing), with known (N, D) the
    // entries known to the prior and decoder (a subset of the observed) and eps (N, Z)
    // the proposal's standard normal draws; adds its gradient into grad (P) when not
    // null. The loss of each row is written to row_loss (N) when not null.
    double loss_and_grad(const T* params, T* grad, const T* x, const T* known, const T* eps, int N, Buffers& b,
                         double* row_loss = nullptr) const {
        const int D = config.n_features, Z = config.n_components, W = Z + layout.encoding.width() + D;
        build_inputs(x, known, N, b, true);
        T* head_p = const_cast<T*>(mlp_forward(layout.prior, b.prior_out, params, b.prior_in.data(), N, false));
        T* head_q = const_cast<T*>(mlp_forward(layout.proposal, b.proposal_out, params, b.proposal_in.data(), N, false));
        for (int i = 0; i < N; ++i)
            for (int j = Z; j < 2 * Z; ++j) {
                head_p[int64_t(i) * 2 * Z + j] = logvar_clamp(head_p[int64_t(i) * 2 * Z + j]);
                head_q[int64_t(i) * 2 * Z + j] = logvar_clamp(head_q[int64_t(i) * 2 * Z + j]);
            }
        // z = mu_q + exp(logvar_q / 2) eps into the decoder's first Z columns
        for (int i = 0; i < N; ++i)
            for (int j = 0; j < Z; ++j) {
                const T* hq = head_q + int64_t(i) * 2 * Z;
                b.decoder_in[int64_t(i) * W + j] = hq[j] + std::exp(hq[Z + j] / 2) * eps[int64_t(i) * Z + j];
            }
        const T* mean = mlp_forward(layout.decoder, b.decoder_out, params, b.decoder_in.data(), N, false);
        const T* lv = params + layout.noise_logvar;
        const T floor = T(config.variance_floor), w_row = T(1) / T(N);
        std::vector<GaussianFeature<T>> feature(D);
        for (int j = 0; j < D; ++j) feature[j] = gaussian_feature(lv[j], floor);
        std::vector<T> d_mean(grad ? size_t(N) * D : 0);
        std::vector<double> d_lv(grad ? D : 0, 0.0);
        if (grad) {
            b.d_prior.assign(size_t(N) * 2 * Z, T(0));
            b.d_proposal.assign(size_t(N) * 2 * Z, T(0));
        }
        double total = 0;
        for (int i = 0; i < N; ++i) {
            double loss = 0;
            for (int j = 0; j < D; ++j) {
                const int64_t e = int64_t(i) * D + j;
                const bool reconstruct = !std::isnan(x[e]) && known[e] == T(0);
                if (grad) d_mean[e] = T(0);
                if (!reconstruct) continue;
                const T residual = x[e] - mean[e];
                loss -= gaussian_log_p(residual, feature[j].log_var, feature[j].inv_var);
                if (grad) {
                    d_mean[e] = gaussian_grad(residual, feature[j].inv_var, w_row);
                    d_lv[j] += double(gaussian_logvar_term(residual, feature[j].inv_var));
                }
            }
            // KL(N(mu_q, var_q) || N(mu_p, var_p)) and its gradient on both heads
            const T* hp = head_p + int64_t(i) * 2 * Z;
            const T* hq = head_q + int64_t(i) * 2 * Z;
            for (int j = 0; j < Z; ++j) {
                const T diff = hq[j] - hp[j], inv_var_p = std::exp(-hp[Z + j]), var_q = std::exp(hq[Z + j]);
                loss += 0.5 * double(hp[Z + j] - hq[Z + j] + (var_q + diff * diff) * inv_var_p - T(1));
                if (!grad) continue;
                T* dp = b.d_prior.data() + int64_t(i) * 2 * Z;
                T* dq = b.d_proposal.data() + int64_t(i) * 2 * Z;
                dq[j] += w_row * diff * inv_var_p;
                dp[j] -= w_row * diff * inv_var_p;
                dq[Z + j] += w_row * T(0.5) * (var_q * inv_var_p - T(1));
                dp[Z + j] += w_row * T(0.5) * (T(1) - (var_q + diff * diff) * inv_var_p);
            }
            if (row_loss) row_loss[i] = loss;
            total += loss;
        }
        if (!grad) return total / N;
        for (int j = 0; j < D; ++j) grad[layout.noise_logvar + j] += T(d_lv[j]) * w_row * feature[j].learned_share;
        // decoder, back to its input; then z's gradient onto the proposal's head
        b.d_decoder_in.assign(size_t(N) * W, T(0));
        mlp_backward(layout.decoder, b.decoder_out, params, grad, b.decoder_in.data(), N, d_mean.data(),
                     b.d_decoder_in.data(), b);
        for (int i = 0; i < N; ++i)
            for (int j = 0; j < Z; ++j) {
                const T* hq = head_q + int64_t(i) * 2 * Z;
                const T dz = b.d_decoder_in[int64_t(i) * W + j];
                T* dq = b.d_proposal.data() + int64_t(i) * 2 * Z;
                dq[j] += dz;
                dq[Z + j] += dz * eps[int64_t(i) * Z + j] * T(0.5) * std::exp(hq[Z + j] / 2);
            }
        for (auto [head, d] : {std::pair{head_p, b.d_prior.data()}, std::pair{head_q, b.d_proposal.data()}})
            for (int i = 0; i < N; ++i)
                for (int j = Z; j < 2 * Z; ++j)
                    if (logvar_clamp_holds(head[int64_t(i) * 2 * Z + j])) d[int64_t(i) * 2 * Z + j] = T(0);
        mlp_backward(layout.prior, b.prior_out, params, grad, b.prior_in.data(), N, b.d_prior.data(), nullptr, b);
        mlp_backward(layout.proposal, b.proposal_out, params, grad, b.proposal_in.data(), N, b.d_proposal.data(),
                     nullptr, b);
        return total / N;
    }

    // ---- backward --------------------------------------------------------------

    // From d_out (N, last width), the gradient of the stack's last output: adds the
    // weights' gradients into grad and writes d_inp (N, first width) when not null.
    void mlp_backward(const std::vector<Dense>& layers, const std::vector<std::vector<T>>& outs, const T* params,
                      T* grad, const T* inp, int N, const T* d_out, T* d_inp, Buffers& b) const {
        int widest = 0;
        for (const Dense& d : layers) widest = std::max(widest, d.n_in);
        b.d_a.resize(size_t(N) * widest);
        b.d_b.resize(size_t(N) * widest);
        const T* d = d_out;
        T* next = b.d_a.data();
        for (int l = int(layers.size()) - 1; l >= 0; --l) {
            const Dense& L = layers[l];
            const T* in = l > 0 ? outs[l - 1].data() : inp;
            T* d_in = l > 0 ? next : d_inp;
            dense_backward(d_in, grad + L.w, grad + L.b, d, in, params + L.w, N, L.n_in, L.n_out, /*inp_act=*/l > 0,
                           config.activation, n_threads);
            d = d_in;
            next = (next == b.d_a.data()) ? b.d_b.data() : b.d_a.data();
        }
    }

    // ---- training --------------------------------------------------------------

    // One epoch over rows (n_rows indices into X (., D), NaN where missing) in
    // batches, Adam after each; the rows are shuffled by seed and the starting step.
    // Noise of batch row i at step t: batch_row_key(seed, t, i), counters 0..Z-1 the
    // proposal's draw, Z..Z+D-1 the uniforms that hide entries. Returns the mean loss
    // per row; stops at a non-finite loss (returned as it is).
    double train_epoch(T* params, T* m, T* v, int64_t* step, const T* X, const int64_t* rows, int64_t n_rows,
                       int batch_size, uint64_t seed, const AdamSettings& adam) const {
        const int D = config.n_features, Z = config.n_components;
        std::vector<int64_t> order(rows, rows + n_rows);
        shuffle_rows(order.data(), n_rows, seed, *step);
        std::vector<T> grad(size_t(layout.size), T(0)), x(size_t(batch_size) * D), known(x.size()),
            eps(size_t(batch_size) * Z);
        Buffers b;
        double total = 0;
        for (int64_t start = 0; start < n_rows; start += batch_size) {
            const int N = int(std::min<int64_t>(batch_size, n_rows - start));
            const int64_t t = *step + 1;
            for (int i = 0; i < N; ++i) {
                const uint64_t key = batch_row_key(seed, t, i);
                std::copy(X + order[start + i] * D, X + (order[start + i] + 1) * D, x.begin() + int64_t(i) * D);
                for (int j = 0; j < Z; ++j) eps[int64_t(i) * Z + j] = T(standard_normal(key, j));
                for (int j = 0; j < D; ++j) {
                    const bool observed = !std::isnan(x[int64_t(i) * D + j]);
                    known[int64_t(i) * D + j] = observed && standard_uniform(key, Z + j) >= config.hide_rate;
                }
            }
            const double loss = loss_and_grad(params, grad.data(), x.data(), known.data(), eps.data(), N, b);
            if (!std::isfinite(loss)) return loss;
            total += loss * N;
            adam_update(layout.for_adam, params, grad.data(), m, v, t, adam, n_threads);  // leaves grad zeroed
            *step = t;
        }
        return total / double(n_rows);
    }

    // ---- imputation ------------------------------------------------------------

    // out (N, D) = x with each missing entry replaced by the mean of the decoder's
    // means over `draws` draws of z from the prior given every observed entry. A
    // row's draws are keyed by its bytes and seed and its products run row by row,
    // so its result is the same bits alone, in any batch, with any thread count.
    void impute(const T* params, const T* x, int N, int draws, uint64_t seed, T* out) const {
        const int D = config.n_features, Z = config.n_components, W = Z + layout.encoding.width() + D;
        std::vector<T> known(size_t(N) * D);
        for (int64_t e = 0; e < int64_t(N) * D; ++e) known[e] = std::isnan(x[e]) ? T(0) : T(1);
        Buffers b;
        build_inputs(x, known.data(), N, b, false);
        T* head = const_cast<T*>(mlp_forward(layout.prior, b.prior_out, params, b.prior_in.data(), N, true));
        std::vector<uint64_t> keys(N);
        for (int i = 0; i < N; ++i) keys[i] = combine_keys(seed, hash_bytes(x + int64_t(i) * D, sizeof(T) * D));
        std::vector<double> sum(size_t(N) * D, 0.0);
        for (int s = 0; s < draws; ++s) {
            for (int i = 0; i < N; ++i)
                for (int j = 0; j < Z; ++j) {
                    const T* h = head + int64_t(i) * 2 * Z;
                    const T e = T(standard_normal(keys[i], uint64_t(s) * Z + j));
                    b.decoder_in[int64_t(i) * W + j] = h[j] + std::exp(logvar_clamp(h[Z + j]) / 2) * e;
                }
            const T* mean = mlp_forward(layout.decoder, b.decoder_out, params, b.decoder_in.data(), N, true);
            for (int64_t e = 0; e < int64_t(N) * D; ++e) sum[e] += double(mean[e]);
        }
        for (int64_t e = 0; e < int64_t(N) * D; ++e) out[e] = std::isnan(x[e]) ? T(sum[e] / draws) : x[e];
    }
};

}  // namespace pyvae
