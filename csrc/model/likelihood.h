// The likelihoods p(x | z), one forward / backward pair each: forward writes
// recon (S*N) = log p(x_i | z_si) from the decoder's output out (S*N, D) against
// the data x (N, D); backward writes d_out (S*N, D) = weight * d(-log p)/d(out)
// and, for the Gaussians, adds weight * d(-sum log p)/d(noise log-variance), each
// draw row r by its own weight[r] (DrawWeights, elbo.h: one scalar for the ELBO,
// the importance weights for the IWAE bound). Row (s, i) of out is s * N + i. With `missing`, a NaN in x marks an entry
// that neither counts nor gets a gradient. Model::likelihood_forward and
// Model::likelihood_backward pick the pair of the configured likelihood. Each
// entry's log p and gradient is likelihood_math.h's, which the CUDA kernels
// call too; this file holds the CPU's loops over rows and draws.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <algorithm>
#include <vector>

#include "model/config.h"
#include "cpu/dispatch.h"
#include "cpu/fastmath.h"
#include "model/elbo.h"
#include "model/hd.h"
#include "model/likelihood_math.h"
#include "cpu/parallel.h"

namespace pyvae {

// Rows of a likelihood pass run in parallel above this many entries.
constexpr int64_t kParallelEntries = 16384;

// ---- Bernoulli: log p(x | a) = x a - softplus(a), a the decoder's logit -------

// One pass over a row of D entries, each from one e^-|a_k|: returns
// sum_k log p(x_k | a_k) when kLogP and writes d_k = weight * (sigmoid(a_k) -
// x_k) when kGrad. The three row kernels below are this loop; forced inline,
// so each clone of theirs runs its own instruction set.
template <bool kLogP, bool kGrad>
__attribute__((always_inline)) inline float bernoulli_row_pass(float* d, const float* x, const float* a, int D,
                                                               float weight, bool missing) {
    float acc = 0;
    auto body = [&](auto with_missing) PYVAE_KERNEL {
#pragma omp simd reduction(+ : acc)
        for (int k = 0; k < D; ++k) {
            const float ak = a[k], xk = x[k];
            const float e = bernoulli_exp(ak);
            const uint32_t skip = decltype(with_missing)::value ? nan_mask(xk) : 0u;
            if constexpr (kLogP) acc += pick_bits(skip, 0.0f, bernoulli_log_p(ak, xk, e));
            if constexpr (kGrad) d[k] = pick_bits(skip, 0.0f, weight * bernoulli_grad(ak, xk, e));
        }
    };
    if (missing) body(std::true_type());
    else body(std::false_type());
    return acc;
}

// sum_k log p(x_k | a_k) over one row of D entries.
template <class T>
inline T bernoulli_row_forward(const T* x, const T* a, int D, bool missing) {
    return per_isa([&]() PYVAE_KERNEL {
        if constexpr (std::is_same_v<T, float>) return bernoulli_row_pass<true, false>(nullptr, x, a, D, 0.0f, missing);
        T acc = 0;
        for (int k = 0; k < D; ++k) {
            if (missing && std::isnan(x[k])) continue;
            acc += bernoulli_log_p(a[k], x[k], bernoulli_exp(a[k]));
        }
        return acc;
    });
}

// d_k = weight * (sigmoid(a_k) - x_k) over one row of D entries.
template <class T>
inline void bernoulli_row_backward(T* d, const T* x, const T* a, int D, T weight, bool missing) {
    return per_isa([&]() PYVAE_KERNEL {
        if constexpr (std::is_same_v<T, float>) {
            bernoulli_row_pass<false, true>(d, x, a, D, weight, missing);
            return;
        }
        for (int k = 0; k < D; ++k) {
            if (missing && std::isnan(x[k])) { d[k] = 0; continue; }
            d[k] = weight * bernoulli_grad(a[k], x[k], bernoulli_exp(a[k]));
        }
    });
}

// Both of the above in one pass over the row, sharing e^-|a|: returns the
// row's log p and writes d, with the results of the two passes.
template <class T>
inline T bernoulli_row_forward_backward(T* d, const T* x, const T* a, int D, T weight,
                                        bool missing) {
    return per_isa([&]() PYVAE_KERNEL {
        if constexpr (std::is_same_v<T, float>) return bernoulli_row_pass<true, true>(d, x, a, D, weight, missing);
        bernoulli_row_backward(d, x, a, D, weight, missing);
        return bernoulli_row_forward(x, a, D, missing);
    });
}

// f(r, x_i, out_r) for every draw row r = s * N + i of out (S*N, out_width; D unless
// given), in parallel.
template <class T, class F>
void for_each_draw_row(const T* out, const T* x, int N, int S, int D, int n_threads, F&& f, int out_width = 0) {
    const int64_t SN = int64_t(S) * N;
    const int64_t W = out_width > 0 ? out_width : D;
    parallel_for(SN, chunk_for(SN), n_threads, SN * D > kParallelEntries, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) f(r, x + (r % N) * D, out + r * W);
    });
}

// recon (S*N) from logits out (S*N, D) against x (N, D).
template <class T>
void bernoulli_forward(double* recon, const T* out, const T* x, int N, int S, int D, bool missing, int n_threads) {
    for_each_draw_row(out, x, N, S, D, n_threads,
                      [&](int64_t r, const T* xi, const T* a) { recon[r] = bernoulli_row_forward(xi, a, D, missing); });
}

// d_out (S*N, D) from logits out (S*N, D) against x (N, D).
template <class T>
void bernoulli_backward(T* d_out, const T* out, const T* x, int N, int S, int D, DrawWeights<T> weight,
                        bool missing, int n_threads) {
    for_each_draw_row(out, x, N, S, D, n_threads, [&](int64_t r, const T* xi, const T* a) {
        bernoulli_row_backward(d_out + r * D, xi, a, D, weight[r], missing);
    });
}

// recon (S*N) and d_out (S*N, D) in one pass: bernoulli_forward and bernoulli_backward.
template <class T>
void bernoulli_forward_backward(double* recon, T* d_out, const T* out, const T* x, int N, int S, int D,
                                DrawWeights<T> weight, bool missing, int n_threads) {
    for_each_draw_row(out, x, N, S, D, n_threads, [&](int64_t r, const T* xi, const T* a) {
        recon[r] = bernoulli_row_forward_backward(d_out + r * D, xi, a, D, weight[r], missing);
    });
}

// ---- Continuous Bernoulli: the Bernoulli's log p plus log C(a) (likelihood_math.h) ---

template <class T>
void continuous_bernoulli_forward(double* recon, const T* out, const T* x, int N, int S, int D, bool missing,
                                  int n_threads) {
    for_each_draw_row(out, x, N, S, D, n_threads, [&](int64_t r, const T* xi, const T* a) {
        double row = bernoulli_row_forward(xi, a, D, missing);
        T acc = 0;
        for (int k = 0; k < D; ++k)
            if (!(missing && std::isnan(xi[k]))) acc += continuous_bernoulli_log_norm(a[k]);
        row += acc;
        recon[r] = row;
    });
}

// d_out = the Bernoulli's gradient minus weight * d log C / da.
template <class T>
void continuous_bernoulli_backward(T* d_out, const T* out, const T* x, int N, int S, int D, DrawWeights<T> weight,
                                   bool missing, int n_threads) {
    for_each_draw_row(out, x, N, S, D, n_threads, [&](int64_t r, const T* xi, const T* a) {
        T* d = d_out + r * D;
        const T w = weight[r];
        bernoulli_row_backward(d, xi, a, D, w, missing);
        for (int k = 0; k < D; ++k)
            if (!(missing && std::isnan(xi[k]))) d[k] -= w * continuous_bernoulli_log_norm_grad(a[k]);
    });
}

// ---- Gaussian: log p(x | m) = -(log 2 pi + log var + (x - m)^2 / var) / 2 -------
// var = variance_floor + e^lv (likelihood_math.h), lv one learned log-variance
// per feature (gaussian) or one shared by all (gaussian_isotropic): feature k
// reads lv[k * lv_stride].

// Each feature's gaussian_feature (likelihood_math.h), computed once per call
// rather than once per entry; the three (D) arrays share one allocation.
template <class T>
struct GaussianNoise {
    std::vector<T> storage;  // (3, D)
    const T *log_var, *inv_var, *learned_share;
    GaussianNoise(const T* lv, int lv_stride, int D, T floor)
        : storage(size_t(3) * D), log_var(storage.data()), inv_var(log_var + D), learned_share(inv_var + D) {
        for (int k = 0; k < D; ++k) {
            const GaussianFeature<T> f = gaussian_feature(lv[k * lv_stride], floor);
            storage[k] = f.log_var;
            storage[D + k] = f.inv_var;
            storage[2 * D + k] = f.learned_share;
        }
    }
    GaussianNoise(const GaussianNoise&) = delete;  // the pointers point into storage
    GaussianNoise& operator=(const GaussianNoise&) = delete;
};

// sum over the draw rows r of column k of weight.relative_at(r) * 0.5 (1 - res^2 / var)
// (rows in order: the sum does not depend on the thread count); times
// weight.scale * e^lv / var it is sum_r weight[r] d(-log p_r)/d lv_k. out (S*N, W).
template <class T>
T gaussian_logvar_grad(const T* out, const T* x, const GaussianNoise<T>& g, int k, int N, int S, int D, int W,
                       const DrawWeights<T>& weight, bool missing) {
    T acc = 0;
    for (int64_t r = 0; r < int64_t(S) * N; ++r) {
        const T xv = x[(r % N) * D + k];
        if (missing && std::isnan(xv)) continue;
        acc += weight.relative_at(r) * gaussian_logvar_term(xv - out[r * W + k], g.inv_var[k]);
    }
    return acc;  // the caller scales: weight.scale * acc * e^lv / var
}

template <class T>
void gaussian_rows_forward(double* recon, const T* out, const T* x, const GaussianNoise<T>& g, int N, int S, int D,
                           bool missing, int n_threads) {
    const T* log_var = g.log_var;
    const T* inv_var = g.inv_var;
    for_each_draw_row(out, x, N, S, D, n_threads, [&](int64_t r, const T* xi, const T* o) {
        T acc = 0;
        for (int k = 0; k < D; ++k) {
            if (missing && std::isnan(xi[k])) continue;
            acc += gaussian_log_p(xi[k] - o[k], log_var[k], inv_var[k]);
        }
        recon[r] = acc;
    });
}

// d_out (S*N, D), and column (D): weight * d(-sum log p)/d lv_k summed over rows,
// each column in row order (thread-count independent).
template <class T>
void gaussian_rows_backward(T* d_out, T* column, const T* out, const T* x, const GaussianNoise<T>& g, int N, int S,
                            int D, const DrawWeights<T>& weight, bool missing, int n_threads) {
    const T* inv_var = g.inv_var;
    for_each_draw_row(out, x, N, S, D, n_threads, [&](int64_t r, const T* xi, const T* o) {
        T* d = d_out + r * D;
        const T w = weight[r];
        for (int k = 0; k < D; ++k) {
            if (missing && std::isnan(xi[k])) { d[k] = 0; continue; }
            d[k] = gaussian_grad(xi[k] - o[k], inv_var[k], w);
        }
    });
    const int64_t SN = int64_t(S) * N;
    parallel_for(D, chunk_for(D), n_threads, SN * D > kParallelEntries, [&](int64_t lo, int64_t hi) {
        for (int k = int(lo); k < int(hi); ++k)
            column[k] = weight.scale * gaussian_logvar_grad(out, x, g, k, N, S, D, D, weight, missing) *
                        g.learned_share[k];
    });
}

// gaussian_rows_forward and gaussian_rows_backward in one pass over the draw
// rows, for the ELBO, whose weights are known before the forward: the same
// bits, every sum in the same order. Where those two would run in parallel (a
// batch above kParallelEntries entries), they run.
template <class T>
void gaussian_rows_forward_backward(double* recon, T* d_out, T* column, const T* out, const T* x,
                                    const GaussianNoise<T>& g, int N, int S, int D, const DrawWeights<T>& weight,
                                    bool missing, int n_threads) {
    if (int64_t(S) * N * D > kParallelEntries) {
        gaussian_rows_forward(recon, out, x, g, N, S, D, missing, n_threads);
        return gaussian_rows_backward(d_out, column, out, x, g, N, S, D, weight, missing, n_threads);
    }
    std::fill(column, column + D, T(0));  // the sums of gaussian_logvar_grad, scaled at the end
    std::vector<T> log_p_terms(kSimdMath<T> ? D : 0);
    T* terms = log_p_terms.data();
    for (int s = 0; s < S; ++s)
        for (int i = 0; i < N; ++i) {
            const int64_t r = int64_t(s) * N + i;
            const T *xi = x + int64_t(i) * D, *o = out + r * D;
            T* d = d_out + r * D;
            const T w = weight[r], relative = weight.relative_at(r);
            T log_p = 0;
            if constexpr (kSimdMath<T>) {
                // The row's features in one vector loop, log p summed from their
                // terms after it. A missing entry's terms are +0 where the loop
                // below skips it: the same bits, as the sums start at +0 and so
                // are never -0.
#pragma omp simd
                for (int k = 0; k < D; ++k) {
                    const uint32_t kept = missing ? ~nan_mask(xi[k]) : ~0u;
                    const T residual = xi[k] - o[k];
                    terms[k] = pick_bits(kept, gaussian_log_p(residual, g.log_var[k], g.inv_var[k]), T(0));
                    d[k] = pick_bits(kept, gaussian_grad(residual, g.inv_var[k], w), T(0));
                    column[k] += pick_bits(kept, relative * gaussian_logvar_term(residual, g.inv_var[k]), T(0));
                }
                for (int k = 0; k < D; ++k) log_p += terms[k];
            } else {
                for (int k = 0; k < D; ++k) {
                    if (missing && std::isnan(xi[k])) { d[k] = 0; continue; }
                    const T residual = xi[k] - o[k];
                    log_p += gaussian_log_p(residual, g.log_var[k], g.inv_var[k]);
                    d[k] = gaussian_grad(residual, g.inv_var[k], w);
                    column[k] += relative * gaussian_logvar_term(residual, g.inv_var[k]);
                }
            }
            recon[r] = log_p;
        }
    for (int k = 0; k < D; ++k) column[k] = weight.scale * column[k] * g.learned_share[k];
}

// d_lv += the columns: one log-variance per feature (lv_stride 1: d_lv (D)), or
// one shared by all (lv_stride 0: d_lv (1) += the columns' sum).
template <class T>
void add_logvar_columns(T* d_lv, const T* column, int D, int lv_stride) {
    if (lv_stride == 1) {
        for (int k = 0; k < D; ++k) d_lv[k] += column[k];
        return;
    }
    T total = 0;
    for (int k = 0; k < D; ++k) total += column[k];
    d_lv[0] += total;
}

// A log-variance per feature: d_lv (D) += the columns.
template <class T>
void gaussian_forward(double* recon, const T* out, const T* x, const T* lv, T floor, int N, int S, int D,
                      bool missing, int n_threads) {
    gaussian_rows_forward(recon, out, x, GaussianNoise<T>(lv, 1, D, floor), N, S, D, missing, n_threads);
}
template <class T>
void gaussian_backward(T* d_out, T* d_lv, const T* out, const T* x, const T* lv, T floor, int N, int S, int D,
                       DrawWeights<T> weight, bool missing, int n_threads) {
    std::vector<T> column(D, T(0));
    gaussian_rows_backward(d_out, column.data(), out, x, GaussianNoise<T>(lv, 1, D, floor), N, S, D, weight, missing,
                           n_threads);
    add_logvar_columns(d_lv, column.data(), D, 1);
}

// Forward and backward in one pass (gaussian_rows_forward_backward), for either
// Gaussian: lv_stride 1 (a log-variance per feature) or 0 (one shared).
template <class T>
void gaussian_forward_backward(double* recon, T* d_out, T* d_lv, const T* out, const T* x, const T* lv, int lv_stride,
                               T floor, int N, int S, int D, DrawWeights<T> weight, bool missing, int n_threads) {
    std::vector<T> column(D);
    gaussian_rows_forward_backward(recon, d_out, column.data(), out, x, GaussianNoise<T>(lv, lv_stride, D, floor), N,
                                   S, D, weight, missing, n_threads);
    add_logvar_columns(d_lv, column.data(), D, lv_stride);
}

// One log-variance shared by all features: d_lv (1) += the columns' sum.
template <class T>
void gaussian_isotropic_forward(double* recon, const T* out, const T* x, const T* lv, T floor, int N, int S, int D,
                                bool missing, int n_threads) {
    gaussian_rows_forward(recon, out, x, GaussianNoise<T>(lv, 0, D, floor), N, S, D, missing, n_threads);
}
template <class T>
void gaussian_isotropic_backward(T* d_out, T* d_lv, const T* out, const T* x, const T* lv, T floor, int N, int S,
                                 int D, DrawWeights<T> weight, bool missing, int n_threads) {
    std::vector<T> column(D, T(0));
    gaussian_rows_backward(d_out, column.data(), out, x, GaussianNoise<T>(lv, 0, D, floor), N, S, D, weight, missing,
                           n_threads);
    add_logvar_columns(d_lv, column.data(), D, 0);
}


// ---- Heteroscedastic Gaussian: a row of the decoder's output is [m | lv] (2D) ----
// Feature k of the row has mean m_k and variance heteroscedastic_feature(lv_k)
// (likelihood_math.h): the noise follows z, with no shared parameters.

// recon (S*N) from out (S*N, 2D) against x (N, D).
template <class T>
void gaussian_heteroscedastic_forward(double* recon, const T* out, const T* x, T floor, int N, int S, int D,
                                      bool missing, int n_threads) {
    for_each_draw_row(out, x, N, S, D, n_threads, [&](int64_t r, const T* xi, const T* o) {
        T acc = 0;
        for (int k = 0; k < D; ++k) {
            if (missing && std::isnan(xi[k])) continue;
            const GaussianFeature<T> f = heteroscedastic_feature(o[D + k], floor);
            acc += gaussian_log_p(xi[k] - o[k], f.log_var, f.inv_var);
        }
        recon[r] = acc;
    }, 2 * D);
}

// d_out (S*N, 2D) = weight * d(-log p)/d[m | lv], 0 for a missing entry's pair.
template <class T>
void gaussian_heteroscedastic_backward(T* d_out, const T* out, const T* x, T floor, int N, int S, int D,
                                       DrawWeights<T> weight, bool missing, int n_threads) {
    for_each_draw_row(out, x, N, S, D, n_threads, [&](int64_t r, const T* xi, const T* o) {
        T* d = d_out + r * 2 * D;
        const T w = weight[r];
        for (int k = 0; k < D; ++k) {
            if (missing && std::isnan(xi[k])) { d[k] = d[D + k] = 0; continue; }
            const GaussianFeature<T> f = heteroscedastic_feature(o[D + k], floor);
            const T residual = xi[k] - o[k];
            d[k] = gaussian_grad(residual, f.inv_var, w);
            d[D + k] = heteroscedastic_logvar_grad(residual, o[D + k], f, w);
        }
    }, 2 * D);
}

// ---- Mixed columns: each block of Config::columns by its own kind ------------
// Gaussian columns as above (a log-variance per column, lv[k]); Bernoulli as
// above; Poisson with log-rate a (likelihood_math.h); categorical over a block of one-hot columns with logits a (its width):
//   log p(x | a) = sum_k x_k a_k - logsumexp(a),  d(-log p)/da_k = softmax(a)_k - x_k
// (with sum_k x_k = 1). With `missing`, a categorical variable is missing when
// its first column is NaN (the Python layer NaNs the whole group together).

// log-sum-exp of a (W), shifted by the maximum so that it cannot overflow.
template <class T>
inline T log_sum_exp(const T* a, int W) {
    T top = a[0];
    for (int k = 1; k < W; ++k) top = std::max(top, a[k]);
    T total = 0;
    for (int k = 0; k < W; ++k) total += std::exp(a[k] - top);
    return top + std::log(total);
}

// sum of log p(x_k | a_k) over one row of the blocks; lv per column (the heteroscedastic
// columns' from a, past the D means).
template <class T>
T mixed_row_forward(const T* x, const T* a, const GaussianNoise<T>& g, T floor, const std::vector<ColumnBlock>& blocks,
                    bool missing) {
    T acc = 0;
    for (const ColumnBlock& b : blocks) {
        const int end = b.start + b.width;
        switch (b.kind) {
            case ColumnKind::gaussian:
                for (int k = b.start; k < end; ++k) {
                    if (missing && std::isnan(x[k])) continue;
                    acc += gaussian_log_p(x[k] - a[k], g.log_var[k], g.inv_var[k]);
                }
                break;
            case ColumnKind::gaussian_heteroscedastic:
                for (int k = b.start; k < end; ++k) {
                    if (missing && std::isnan(x[k])) continue;
                    const GaussianFeature<T> f = heteroscedastic_feature(a[b.logvar_start + k - b.start], floor);
                    acc += gaussian_log_p(x[k] - a[k], f.log_var, f.inv_var);
                }
                break;
            case ColumnKind::bernoulli: acc += bernoulli_row_forward(x + b.start, a + b.start, b.width, missing); break;
            case ColumnKind::poisson:
                for (int k = b.start; k < end; ++k) {
                    if (missing && std::isnan(x[k])) continue;
                    acc += poisson_log_p(a[k], x[k]);
                }
                break;
            case ColumnKind::categorical: {
                if (missing && std::isnan(x[b.start])) break;
                const T lse = log_sum_exp(a + b.start, b.width);
                for (int k = b.start; k < end; ++k) acc += x[k] * (a[k] - lse);
                break;
            }
        }
    }
    return acc;
}

// d (decoder_out_width) = weight * d(-log p)/da over one row of the blocks.
template <class T>
void mixed_row_backward(T* d, const T* x, const T* a, const GaussianNoise<T>& g, T floor,
                        const std::vector<ColumnBlock>& blocks, T weight, bool missing) {
    for (const ColumnBlock& b : blocks) {
        const int end = b.start + b.width;
        switch (b.kind) {
            case ColumnKind::gaussian:
                for (int k = b.start; k < end; ++k)
                    d[k] = missing && std::isnan(x[k]) ? T(0) : gaussian_grad(x[k] - a[k], g.inv_var[k], weight);
                break;
            case ColumnKind::gaussian_heteroscedastic:
                for (int k = b.start; k < end; ++k) {
                    const int l = b.logvar_start + k - b.start;
                    if (missing && std::isnan(x[k])) { d[k] = d[l] = 0; continue; }
                    const GaussianFeature<T> f = heteroscedastic_feature(a[l], floor);
                    d[k] = gaussian_grad(x[k] - a[k], f.inv_var, weight);
                    d[l] = heteroscedastic_logvar_grad(x[k] - a[k], a[l], f, weight);
                }
                break;
            case ColumnKind::bernoulli:
                bernoulli_row_backward(d + b.start, x + b.start, a + b.start, b.width, weight, missing);
                break;
            case ColumnKind::poisson:
                for (int k = b.start; k < end; ++k)
                    d[k] = missing && std::isnan(x[k]) ? T(0) : weight * poisson_grad(a[k], x[k]);
                break;
            case ColumnKind::categorical: {
                if (missing && std::isnan(x[b.start])) {
                    for (int k = b.start; k < end; ++k) d[k] = 0;
                    break;
                }
                const T lse = log_sum_exp(a + b.start, b.width);
                T total = 0;  // sum_k x_k: 1 for one-hot rows
                for (int k = b.start; k < end; ++k) total += x[k];
                for (int k = b.start; k < end; ++k) d[k] = weight * (total * std::exp(a[k] - lse) - x[k]);
                break;
            }
        }
    }
}

// recon (S*N) from the decoder's output out (S*N, W = decoder_out_width) against x (N, D); lv (D).
template <class T>
void mixed_forward(double* recon, const T* out, const T* x, const T* lv, T floor,
                   const std::vector<ColumnBlock>& blocks, int N, int S, int D, int W, bool missing, int n_threads) {
    const GaussianNoise<T> g(lv, 1, D, floor);
    for_each_draw_row(out, x, N, S, D, n_threads, [&](int64_t r, const T* xi, const T* a) {
        recon[r] = mixed_row_forward(xi, a, g, floor, blocks, missing);
    }, W);
}

// d_out (S*N, W), and d_lv (D) += the Gaussian columns' log-variance gradients
// (the other columns' entries of lv are unused and get none).
template <class T>
void mixed_backward(T* d_out, T* d_lv, const T* out, const T* x, const T* lv, T floor,
                    const std::vector<ColumnBlock>& blocks, int N, int S, int D, int W, DrawWeights<T> weight,
                    bool missing, int n_threads) {
    const GaussianNoise<T> g(lv, 1, D, floor);
    for_each_draw_row(out, x, N, S, D, n_threads, [&](int64_t r, const T* xi, const T* a) {
        mixed_row_backward(d_out + r * W, xi, a, g, floor, blocks, weight[r], missing);
    }, W);
    for (const ColumnBlock& b : blocks)
        if (b.kind == ColumnKind::gaussian)
            for (int k = b.start; k < b.start + b.width; ++k)
                d_lv[k] += weight.scale * gaussian_logvar_grad(out, x, g, k, N, S, D, W, weight, missing) *
                           g.learned_share[k];
}

}  // namespace pyvae
