// Importance-weighted imputation on a fitted Model (MIWAE: Mattei & Frellsen,
// 2019). For a row x with observed part x_o (NaN = missing), K draws
// z_k ~ q(z | x_o) (the encoder sees missing entries as 0) are weighted by
//     log w_k = log p(x_o | z_k) + log p(z_k) - log q(z_k | x_o),
// normalized over k (self-normalized importance sampling), so that
//     E[x_m | x_o] ~ sum_k w_k E[x_m | z_k]
// and sampling-importance-resampling (k ~ w, then x_m ~ p(x_m | z_k)) gives
// draws from p(x_m | x_o) as K grows. A row with nothing observed has
// log p(x_o | z) = 0: the weights are p(z) / q(z | 0) and the estimate is the
// prior predictive mean E_p(z)[E[x | z]].
//
// Free functions over Model's public pieces (draw_posterior, decoder_forward,
// likelihood_forward, kl_forward): the model itself is not changed.
// Rows are processed in chunks like Model::score, and each row's noise is keyed
// by its bytes and the seed, so a row gets the same result in any call.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <vector>

#include "model/rng.h"
#include "vae.h"

namespace pyvae {

// Stream tags that keep the resampling and observation noise apart from the
// posterior noise drawn from the same row key.
constexpr uint64_t kPickStream = 0x5049434b5049434bULL;   // which z_k
constexpr uint64_t kNoiseStream = 0x4e4f495345534d50ULL;  // x_m ~ p(x_m | z_k)

template <class T>
void require_missing_mask(const Model<T>& model) {
    if (!model.config.missing)
        throw std::invalid_argument("imputation needs a model built with missing=True (NaN marks a missing entry)");
}

// weights (N, K) = softmax over k of log w (K*N, sample-major) = recon - kl, per row.
// A row whose terms are all -inf (float32 overflow far from the data) gets
// uniform weights rather than NaN.
inline void importance_weights_forward(const double* recon, const double* kl, int N, int K, double* weights,
                                       int n_threads) {
    auto normalize_row = [&](int64_t i) {
        double* w = weights + i * K;
        double top = -INFINITY;
        for (int k = 0; k < K; ++k) {
            const int64_t r = int64_t(k) * N + i;
            w[k] = log_importance_weight(recon, kl, r, 1.0);
            top = std::max(top, w[k]);
        }
        if (!std::isfinite(top)) {
            for (int k = 0; k < K; ++k) w[k] = 1.0 / K;
            return;
        }
        double total = 0;
        for (int k = 0; k < K; ++k) total += (w[k] = std::exp(w[k] - top));
        for (int k = 0; k < K; ++k) w[k] /= total;
    };
    parallel_for(N, chunk_for(N), n_threads, int64_t(N) * K > kParallelEntries, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) normalize_row(i);
    });
}

// Encodes, decodes and weighs K draws for the chunk x (N, D): after the call
// ws.dec_out.back() holds the decoder outputs (K*N, decoder_out_width) and weights (N, K) the
// normalized importance weights. Returns the row keys (ws.keys). With `refine`,
// each row's q(z | x_o) is refined on its observed entries first (draw_posterior).
template <class T>
void weighted_draws_forward(const Model<T>& model, const T* params, const T* x, int N, int K, uint64_t seed,
                            Workspace<T>& ws, double* weights, typename Model<T>::RefinedPosterior& refine) {
    const T* head = model.draw_posterior(params, x, N, K, seed, ws, &refine);
    const T* out = model.decoder_forward(params, ws.z.data(), K * N, ws, Model<T>::Pass::inference);
    model.likelihood_forward(params, out, x, N, K, ws.recon.data());
    model.kl_forward(head, ws.eps.data(), ws.z.data(), N, K, ws.kl.data(), ws.kl_analytic.data());
    importance_weights_forward(ws.recon.data(), ws.kl.data(), N, K, weights, model.n_threads);
}

// Runs the K weighted posterior draws of X (N, D) chunk by chunk, as Model::score
// does, and hands each chunk to body(x, start, n, dec (K*n, decoder_out_width), weights (n, K), ws).
template <class T, class Body>
void for_each_weighted_chunk(const Model<T>& model, const T* params, const T* X, int64_t n_rows, int K,
                             uint64_t seed, const Refinement& refine, const std::function<bool()>& interrupted,
                             Body&& body) {
    const int D = model.config.n_features, C = Model<T>::chunk_rows(K);
    Workspace<T> ws;
    typename Model<T>::RefinedPosterior refined{refine};
    ws.reserve(model.config, model.layout, int(std::min<int64_t>(C, n_rows)), K);
    std::vector<double> weights(int64_t(std::min<int64_t>(C, n_rows)) * K);
    bool stop = false;
    Model<T>::for_each_chunk(X, n_rows, D, C, [&](const T* x, int64_t start, int n) {
        if (stop) return;
        weighted_draws_forward(model, params, x, n, K, seed, ws, weights.data(), refined);
        body(x, start, n, static_cast<const T*>(ws.dec_out.back().data()), static_cast<const double*>(weights.data()),
             ws);
        stop = interrupted && interrupted();
    });
}

// out (N, D) = X with each missing entry replaced by sum_k w_k E[x | z_k];
// observed entries are copied unchanged. K draws per row.
template <class T>
void impute_forward(const Model<T>& model, const T* params, const T* X, int64_t n_rows, int K, uint64_t seed,
                    T* out, const std::function<bool()>& interrupted = nullptr, const Refinement& refine = {}) {
    require_missing_mask(model);
    if (K < 1) throw std::invalid_argument("the number of importance draws must be >= 1");
    const int D = model.config.n_features, W = decoder_out_width(model.config);
    for_each_weighted_chunk(model, params, X, n_rows, K, seed, refine, interrupted,
                            [&](const T* x, int64_t start, int n, const T* dec, const double* weights, Workspace<T>&) {
        // Rows are independent and each sums its draws in a fixed order:
        // the result does not depend on the thread count.
        parallel_for(n, chunk_for(n), model.n_threads, int64_t(n) * K * D > kParallelEntries, [&](int64_t lo, int64_t hi) {
            std::vector<T> mean(D);
            std::vector<double> acc(D);
            for (int64_t i = lo; i < hi; ++i) {
                const T* xi = x + int64_t(i) * D;
                const double* w = weights + int64_t(i) * K;
                std::fill(acc.begin(), acc.end(), 0.0);
                for (int k = 0; k < K; ++k) {
                    observation_mean_row(model.config, dec + (int64_t(k) * n + i) * W, mean.data());
                    for (int d = 0; d < D; ++d) acc[d] += w[k] * double(mean[d]);
                }
                T* yi = out + (start + i) * D;
                for (int d = 0; d < D; ++d) yi[d] = std::isnan(xi[d]) ? T(acc[d]) : xi[d];
            }
        });
    });
}

// out (N, M, D): M multiple imputations of each row of X (N, D) by
// sampling-importance-resampling from K weighted posterior draws: draw k with
// probability w_k, then each missing entry from p(x_m | z_k) (Gaussian: mean +
// sd * N(0, 1) with the floored variance; Bernoulli: 0 or 1; continuous
// Bernoulli: its inverse CDF). The M imputations of a row share its K
// proposals; observed entries are copied unchanged.
template <class T>
void sample_imputations_forward(const Model<T>& model, const T* params, const T* X, int64_t n_rows, int K, int M,
                                uint64_t seed, T* out, const std::function<bool()>& interrupted = nullptr,
                                const Refinement& refine = {}) {
    require_missing_mask(model);
    if (K < 1 || M < 1) throw std::invalid_argument("the numbers of importance draws and imputations must be >= 1");
    const int D = model.config.n_features, W = decoder_out_width(model.config);
    const std::vector<T> sd = model.observation_sd(params);
    for_each_weighted_chunk(model, params, X, n_rows, K, seed, refine, interrupted,
                            [&](const T* x, int64_t start, int n, const T* dec, const double* weights, Workspace<T>& ws) {
        const uint64_t* keys = ws.keys.data();   // each row's key, from its bytes and the seed
        parallel_for(n, chunk_for(n), model.n_threads, int64_t(n) * M * D > kParallelEntries, [&](int64_t lo, int64_t hi) {
            std::vector<T> draw(D);
            for (int64_t i = lo; i < hi; ++i) {
                const T* xi = x + int64_t(i) * D;
                const double* w = weights + int64_t(i) * K;
                const uint64_t pick_key = combine_keys(keys[i], kPickStream);
                for (int m = 0; m < M; ++m) {
                    // Inverse CDF of the weights; the last draw catches rounding in the sum.
                    const double u = standard_uniform(pick_key, uint64_t(m));
                    int k = 0;
                    for (double cum = w[0]; k + 1 < K && cum < u; cum += w[++k]) {}
                    const uint64_t noise_key = combine_keys(combine_keys(keys[i], kNoiseStream), uint64_t(m));
                    observation_draw_row(model.config, dec + (int64_t(k) * n + i) * W, sd.data(), noise_key,
                                         draw.data());
                    T* yi = out + ((start + i) * M + m) * D;
                    for (int d = 0; d < D; ++d) yi[d] = std::isnan(xi[d]) ? draw[d] : xi[d];
                }
            }
        });
    });
}

}  // namespace pyvae
