// What p(x | z) gives back once trained: its mean and its draws, one row of
// the decoder's output a (D) at a time, for every likelihood (Config). Used by
// decode and sample_observations (model_inference.h) and by the imputer
// (impute.h), so that each kind's mean and draw is written once.
//   Bernoulli        mean sigmoid(a),          draw 1 if u < mean else 0
//   continuous B.    its mean (likelihood_math.h), draw by the inverse CDF at u
//   Gaussian         mean a,                   draw a + sd * N(0, 1)
//   heteroscedastic  mean a[k],                draw as the Gaussian, sd from the row's a[D + k]
//   Poisson          mean e^a,                 draw ~ Poisson(e^a)
//   categorical      mean softmax(a) over the block, draw one-hot of a category ~ softmax(a)
// Entry k of a row draws from counter k of the row's key (a categorical block
// from the counter of its first column).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/hd.h"
#include "model/likelihood.h"
#include "model/likelihood_math.h"
#include "model/rng.h"

namespace pyvae {

// One entry's draw (both engines, hd.h): Bernoulli from its mean and a uniform
// u; Gaussian from its mean, sd (gaussian_sd) and a standard normal n.
template <class T>
PYVAE_HD inline T bernoulli_draw(T mean, double u) { return u < double(mean) ? T(1) : T(0); }
template <class T>
PYVAE_HD inline T gaussian_draw(T mean, T sd, double n) { return mean + sd * T(n); }

// A Poisson(rate) count from the uniforms of stream (key, counter): inversion
// below rate 30, else Hoermann's transformed rejection (PTRS, 1993), which
// takes a few uniforms on average whatever the rate.
inline double poisson_draw(double rate, uint64_t key, uint64_t counter) {
    const uint64_t stream = combine_keys(key, counter);
    if (!(rate > 0)) return 0;
    if (rate < 30) {
        double k = 0, p = std::exp(-rate), cdf = p;
        const double u = standard_uniform(stream, 0);
        while (u > cdf && p > 0) {
            k += 1;
            p *= rate / k;
            cdf += p;
        }
        return k;
    }
    const double log_rate = std::log(rate), b = 0.931 + 2.53 * std::sqrt(rate);
    const double a = -0.059 + 0.02483 * b, inv_alpha = 1.1239 + 1.1328 / (b - 3.4), v_r = 0.9277 - 3.6224 / (b - 2);
    for (uint64_t j = 0;; j += 2) {
        const double u = standard_uniform(stream, j) - 0.5, v = standard_uniform(stream, j + 1);
        const double us = 0.5 - std::fabs(u);
        const double k = std::floor((2 * a / us + b) * u + rate + 0.43);
        if (us >= 0.07 && v <= v_r) return k;
        if (k < 0 || (us < 0.013 && v > us)) continue;
        if (std::log(v * inv_alpha / (a / (us * us) + b)) <= -rate + k * log_rate - std::lgamma(k + 1)) return k;
    }
}

// softmax(a) (W) into p, shifted by the maximum.
template <class T>
inline void softmax_block(const T* a, int W, T* p) {
    const T lse = log_sum_exp(a, W);
    for (int k = 0; k < W; ++k) p[k] = std::exp(a[k] - lse);
}

// mean (D) = E[x | z] from the decoder's output a (decoder_out_width).
template <class T>
void observation_mean_row(const Config& c, const T* a, T* mean) {
    const int D = c.n_features;
    switch (c.likelihood) {
        case Likelihood::bernoulli:
            for (int k = 0; k < D; ++k) mean[k] = sigmoid(a[k]);
            return;
        case Likelihood::continuous_bernoulli:
            for (int k = 0; k < D; ++k) mean[k] = continuous_bernoulli_mean(a[k]);
            return;
        case Likelihood::gaussian:
        case Likelihood::gaussian_isotropic:
        case Likelihood::gaussian_heteroscedastic:
            for (int k = 0; k < D; ++k) mean[k] = a[k];
            return;
        case Likelihood::mixed:
            for (const ColumnBlock& b : c.columns) {
                const int end = b.start + b.width;
                switch (b.kind) {
                    case ColumnKind::gaussian:
                    case ColumnKind::gaussian_heteroscedastic: for (int k = b.start; k < end; ++k) mean[k] = a[k]; break;
                    case ColumnKind::bernoulli: for (int k = b.start; k < end; ++k) mean[k] = sigmoid(a[k]); break;
                    case ColumnKind::poisson: for (int k = b.start; k < end; ++k) mean[k] = std::exp(a[k]); break;
                    case ColumnKind::categorical: softmax_block(a + b.start, b.width, mean + b.start); break;
                }
            }
            return;
    }
}

// x (D) ~ p(x | z) from the decoder's output a (decoder_out_width); sd (D) the
// Gaussian columns' standard deviations (Model::observation_sd), unused by the
// heteroscedastic Gaussian, whose row gives its own.
template <class T>
void observation_draw_row(const Config& c, const T* a, const T* sd, uint64_t key, T* x) {
    const int D = c.n_features;
    auto bernoulli = [&](int k) { return bernoulli_draw(sigmoid(a[k]), standard_uniform(key, uint64_t(k))); };
    auto gaussian = [&](int k) { return gaussian_draw(a[k], sd[k], standard_normal(key, uint64_t(k))); };
    // Column k with its log-variance at a[l]: the row's own sd.
    auto heteroscedastic = [&](int k, int l) {
        const T row_sd = gaussian_sd(heteroscedastic_feature(a[l], T(c.variance_floor)).inv_var);
        return gaussian_draw(a[k], row_sd, standard_normal(key, uint64_t(k)));
    };
    switch (c.likelihood) {
        case Likelihood::bernoulli:
            for (int k = 0; k < D; ++k) x[k] = bernoulli(k);
            return;
        case Likelihood::continuous_bernoulli:
            for (int k = 0; k < D; ++k)
                x[k] = continuous_bernoulli_inverse_cdf(a[k], T(standard_uniform(key, uint64_t(k))));
            return;
        case Likelihood::gaussian:
        case Likelihood::gaussian_isotropic:
            for (int k = 0; k < D; ++k) x[k] = gaussian(k);
            return;
        case Likelihood::gaussian_heteroscedastic:
            for (int k = 0; k < D; ++k) x[k] = heteroscedastic(k, D + k);
            return;
        case Likelihood::mixed:
            for (const ColumnBlock& b : c.columns) {
                const int end = b.start + b.width;
                switch (b.kind) {
                    case ColumnKind::gaussian: for (int k = b.start; k < end; ++k) x[k] = gaussian(k); break;
                    case ColumnKind::gaussian_heteroscedastic:
                        for (int k = b.start; k < end; ++k) x[k] = heteroscedastic(k, b.logvar_start + k - b.start);
                        break;
                    case ColumnKind::bernoulli: for (int k = b.start; k < end; ++k) x[k] = bernoulli(k); break;
                    case ColumnKind::poisson:
                        for (int k = b.start; k < end; ++k) x[k] = T(poisson_draw(std::exp(double(a[k])), key, k));
                        break;
                    case ColumnKind::categorical: {
                        // Inverse CDF of softmax(a) at one uniform; the last category catches rounding.
                        const T lse = log_sum_exp(a + b.start, b.width);
                        const double u = standard_uniform(key, uint64_t(b.start));
                        double cdf = 0;
                        int pick = end - 1;
                        for (int k = b.start; k < end - 1; ++k)
                            if (u < (cdf += std::exp(double(a[k] - lse)))) { pick = k; break; }
                        for (int k = b.start; k < end; ++k) x[k] = k == pick ? T(1) : T(0);
                        break;
                    }
                }
            }
            return;
    }
}

}  // namespace pyvae
