// The posterior q(z|x) and its KL term, one forward / backward pair per
// equation. The encoder's head (N, 2Z) holds [mu | logvar] per row; draws are
// sample-major, row (s, i) of a (S, N, Z) buffer being s * N + i. Backward
// functions accumulate into d_head (N, 2Z) with `+=`, after one of the KL
// backwards has initialized it (the KL is the term every estimator has).
// Each equation's arithmetic on one entry is a PYVAE_HD function (hd.h) right
// above its loops here; the CUDA kernels (kernels_cuda.cu) call the same ones.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/elbo.h"
#include "model/hd.h"
#include "cpu/dispatch.h"
#include "cpu/fastmath.h"
#include "cpu/parallel.h"
#include "model/rng.h"
#include "model/standardized.h"

namespace pyvae {

// The gradient of one latent dimension's [mu | logvar] entry pair.
template <class T>
struct HeadGrad {
    T mu, logvar;
};

// Draw-level passes run in parallel above this many entries.
constexpr int64_t kParallelDraws = 16384;

// fill_noise's Gaussian draws in float through fastmath.h's vector Box-Muller:
// ~6 ns a draw with AVX-512, ~12 with AVX2, against 40-70 with the C library's
// log and cos (a table's step draws 1,150). The baseline build keeps the
// library's: without hardware FMA the polynomials cost more than it does.
// A tile of whole rows is flattened so the vector loop runs over rows x Z, not
// over Z alone (10 to 50 latent dimensions fill few vectors).
inline void fill_gaussian_noise_simd(float* noise, const uint64_t* keys, int N, int S, int Z, int n_threads) {
    std::vector<uint64_t> counter_hashes(size_t(2) * S * Z);  // mix64(2c), mix64(2c + 1), c = s Z + j
    for (int64_t c = 0; c < int64_t(S) * Z; ++c) {
        counter_hashes[2 * c] = mix64(2 * uint64_t(c));
        counter_hashes[2 * c + 1] = mix64(2 * uint64_t(c) + 1);
    }
    constexpr int kTile = 512;
    const int rows_per_tile = std::max(1, kTile / std::max(Z, 1));
    parallel_for(N, chunk_for(N), n_threads, int64_t(N) * S * Z > kParallelDraws, [&](int64_t lo, int64_t hi) {
        std::vector<uint64_t> tile(size_t(3) * rows_per_tile * Z);  // key, hash1, hash2 of each draw
        for (int s = 0; s < S; ++s) {
            const uint64_t* hashes = counter_hashes.data() + int64_t(2) * s * Z;
            for (int64_t first = lo; first < hi; first += rows_per_tile) {
                const int rows = int(std::min<int64_t>(rows_per_tile, hi - first)), n = rows * Z;
                uint64_t *key = tile.data(), *hash1 = key + n, *hash2 = hash1 + n;
                for (int r = 0; r < rows; ++r)
                    for (int j = 0; j < Z; ++j) {
                        key[r * Z + j] = keys[first + r];
                        hash1[r * Z + j] = hashes[2 * j];
                        hash2[r * Z + j] = hashes[2 * j + 1];
                    }
                float* out = noise + (int64_t(s) * N + first) * Z;
                per_isa([&]() PYVAE_KERNEL {
#pragma omp simd
                    for (int d = 0; d < n; ++d) out[d] = standard_normal_simd(key[d], hash1[d], hash2[d]);
                });
            }
        }
    });
}

// noise (S, N, Z): row i of every sample draws from the stream keys[i] (rng.h).
template <class T>
void fill_noise(T* noise, const uint64_t* keys, int N, int S, int Z, bool uniform, int n_threads) {
    if constexpr (kSimdMath<T>) {
        if (!uniform && kernels_have_fma()) return fill_gaussian_noise_simd(noise, keys, N, S, Z, n_threads);
    }
    parallel_for(N, chunk_for(N), n_threads, int64_t(N) * S * Z > 1024, [&](int64_t lo, int64_t hi) {  // ~40 ns a draw
        for (int i = int(lo); i < int(hi); ++i) {
            for (int s = 0; s < S; ++s) {
                T* u = noise + (int64_t(s) * N + i) * Z;
                for (int j = 0; j < Z; ++j) u[j] = base_noise<T>(keys[i], s, Z, j, uniform);
            }
        }
    });
}

// ---- the log-variance clamp ----------------------------------------------------
// head (N, 2Z): its logvar half clamped to +-kLogvarBound. Far from the training
// data the raw value can exceed 177, exp(logvar / 2) overflows float32 and
// z = mu + inf * eps makes the scores NaN. The clamp is part of the model; no
// fitted posterior needs a variance beyond e^(+-30). NaN stays NaN (as std::min/max).
// logvar_clamp and logvar_clamp_holds: config.h.
template <class T>
void logvar_clamp_forward(T* head, int N, int Z) {
    for (int i = 0; i < N; ++i)
        for (int j = Z; j < 2 * Z; ++j) {
            T& lv = head[int64_t(i) * 2 * Z + j];
            lv = logvar_clamp(lv);
        }
}
// d_head (N, 2Z): no gradient through the logvar half where the clamp holds.
template <class T>
void logvar_clamp_backward(T* d_head, const T* head, int N, int Z) {
    for (int i = 0; i < N; ++i)
        for (int j = Z; j < 2 * Z; ++j)
            if (logvar_clamp_holds(head[int64_t(i) * 2 * Z + j])) d_head[int64_t(i) * 2 * Z + j] = T(0);
}

// ---- the reparameterization z = mu + exp(logvar / 2) * e, e = g(u) ----------------

// z of one entry, from its standardized draw e and sd = exp(logvar / 2).
template <class T>
PYVAE_HD inline T reparameterize_entry(T mu, T sd, T e) { return mu + sd * e; }
// d logvar of one entry from d(loss)/dz: dz * exp(logvar / 2) * e / 2 (d mu is dz itself).
template <class T>
PYVAE_HD inline T reparameterize_logvar_grad(T dz, T sd, T e) { return dz * T(0.5) * sd * e; }

// out (hi - lo, Z) = exp(scale * logvar) of rows [lo, hi) of head (N, 2Z): the
// posterior's sd (scale 1/2) or variance (scale 1) in one vector pass over all
// the rows' entries (a row has Z = 2 to 50 of them: too few for a vector of
// its own; the C library's scalar expf cost ~3% of a small table's step).
template <class T>
void posterior_exp(T* out, const T* head, int64_t lo, int64_t hi, int Z, T scale) {
    for (int64_t i = lo; i < hi; ++i)
        for (int j = 0; j < Z; ++j) out[(i - lo) * Z + j] = scale * head[i * 2 * Z + Z + j];
    const int64_t n = (hi - lo) * Z;
    per_isa([&]() PYVAE_KERNEL {
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) out[k] = simd_exp(out[k]);
    });
}

// eps, z (S, N, Z) from the head (N, 2Z) and base noise (S, N, Z): z = mu + exp(logvar / 2) * g(u).
template <class T>
void reparameterize_forward(T* eps, T* z, const T* head, const T* noise, int N, int S, int Z, Posterior posterior,
                            int n_threads) {
    parallel_for(N, chunk_for(N), n_threads, int64_t(N) * S * Z > kParallelDraws, [&](int64_t lo, int64_t hi) {
        std::vector<T> sd_rows(size_t(hi - lo) * Z);
        posterior_exp(sd_rows.data(), head, lo, hi, Z, T(0.5));
        for (int i = int(lo); i < int(hi); ++i) {
            const T* mu = head + int64_t(i) * 2 * Z;
            const T* sd = sd_rows.data() + (i - lo) * Z;
            for (int s = 0; s < S; ++s) {
                const int64_t r = (int64_t(s) * N + i) * Z;
                for (int j = 0; j < Z; ++j) {
                    const T e = standardized_draw(posterior, noise[r + j]);
                    eps[r + j] = e;
                    z[r + j] = reparameterize_entry(mu[j], sd[j], e);
                }
            }
        }
    });
}

// d_head (N, 2Z) += the pathwise chain of dz (S, N, Z) = d(loss)/dz through z:
// d mu += dz, d logvar += dz * exp(logvar / 2) * e / 2, summed over draws in order.
template <class T>
void reparameterize_backward(T* d_head, const T* dz, const T* head, const T* eps, int N, int S, int Z,
                             int n_threads) {
    parallel_for(N, chunk_for(N), n_threads, int64_t(N) * S * Z > kParallelDraws, [&](int64_t lo, int64_t hi) {
        std::vector<T> sd_rows(size_t(hi - lo) * Z);
        posterior_exp(sd_rows.data(), head, lo, hi, Z, T(0.5));
        for (int i = int(lo); i < int(hi); ++i) {
            const T* sd = sd_rows.data() + (i - lo) * Z;
            T* d = d_head + int64_t(i) * 2 * Z;  // [d mu | d logvar]
            for (int s = 0; s < S; ++s)
                for (int j = 0; j < Z; ++j) {
                    const int64_t k = (int64_t(s) * N + i) * Z + j;
                    d[j] += dz[k];
                    d[Z + j] += reparameterize_logvar_grad(dz[k], sd[j], eps[k]);
                }
        }
    });
}

// ---- KL(q || N(0, I)) in closed form (Gaussian q) ----------------------------------

// Twice one dimension's KL: mu^2 + e^logvar - 1 - logvar (var = e^logvar).
template <class T>
PYVAE_HD inline T kl_analytic_entry(T mu, T lv, T var) { return mu * mu + var - T(1) - lv; }
// weight * d KL / d[mu | logvar] of one dimension (var = e^logvar).
template <class T>
PYVAE_HD inline HeadGrad<T> kl_analytic_grad(T mu, T var, T weight) {
    return {weight * mu, weight * T(0.5) * (var - T(1))};
}
// KL_i = 0.5 * the sum over j of the entries: the sum in T, the half in double.
PYVAE_HD inline double kl_analytic_row(double entries) { return 0.5 * entries; }

// kl_analytic (N) = 0.5 sum_j (mu^2 + e^logvar - 1 - logvar).
template <class T>
void kl_analytic_forward(double* kl_analytic, const T* head, int N, int Z) {
    std::vector<T> var(size_t(N) * Z);
    posterior_exp(var.data(), head, 0, N, Z, T(1));
    for (int i = 0; i < N; ++i) {
        const T* mu = head + int64_t(i) * 2 * Z;
        const T* lv = mu + Z;
        T acc = 0;
        for (int j = 0; j < Z; ++j) acc += kl_analytic_entry(mu[j], lv[j], var[int64_t(i) * Z + j]);
        kl_analytic[i] = kl_analytic_row(double(acc));
    }
}
// d_head (N, 2Z) = weight * d KL_i / d[mu | logvar] (initializes it), weight = beta / N.
template <class T>
void kl_analytic_backward(T* d_head, const T* head, int N, int Z, T beta, T w_row) {
    const T weight = beta * w_row;
    std::vector<T> var(size_t(N) * Z);
    posterior_exp(var.data(), head, 0, N, Z, T(1));
    for (int i = 0; i < N; ++i) {
        const T* mu = head + int64_t(i) * 2 * Z;
        T* dmu = d_head + int64_t(i) * 2 * Z;
        T* dlv = dmu + Z;
        for (int j = 0; j < Z; ++j) {
            const HeadGrad<T> g = kl_analytic_grad(mu[j], var[int64_t(i) * Z + j], weight);
            dmu[j] = g.mu;
            dlv[j] = g.logvar;
        }
    }
}

// ---- KL by Monte Carlo: log q(z|x) - log p(z) per draw ------------------------------

// One entry's log q - log p(z): log f(e) - logvar / 2 + z^2 / 2 + log(2 pi) / 2,
// f the standardized density.
template <class T>
PYVAE_HD inline T kl_mc_entry(Posterior posterior, T e, T lv, T z) {
    return standardized_log_density(posterior, e) - T(0.5) * lv + T(0.5) * z * z + T(0.5 * kLog2Pi);
}
// weight * d/d logvar of -logvar / 2, for a row whose draws weigh `weight` in all.
template <class T>
PYVAE_HD inline T kl_mc_logvar_grad(T beta, T weight) { return -T(0.5) * beta * weight; }
// weight * d/dz of z^2 / 2 (the prior), c = beta * the draw's weight: what the
// pathwise estimator adds to d(loss)/dz.
template <class T>
PYVAE_HD inline T kl_mc_z_grad(T z, T c) { return c * z; }

// kl (S*N) = sum_j log f(e_j) - logvar_j / 2 + z_j^2 / 2 + log(2 pi) / 2, f the standardized density.
template <class T>
void kl_mc_forward(double* kl, const T* head, const T* eps, const T* z, int N, int S, int Z, Posterior posterior,
                   int n_threads) {
    parallel_for(N, chunk_for(N), n_threads, int64_t(N) * S * Z > kParallelDraws, [&](int64_t lo, int64_t hi) {
        for (int i = int(lo); i < int(hi); ++i) {
            const T* lv = head + int64_t(i) * 2 * Z + Z;
            for (int s = 0; s < S; ++s) {
                const int64_t r = int64_t(s) * N + i;
                const T* e = eps + r * Z;
                const T* zz = z + r * Z;
                T acc = 0;
                for (int j = 0; j < Z; ++j) acc += kl_mc_entry(posterior, e[j], lv[j], zz[j]);
                kl[r] = double(acc);
            }
        }
    });
}
// Initializes d_head (N, 2Z). Pathwise (the draws' noise held fixed): the
// -logvar/2 term of draw r, weighted by w_draw[r] (elbo.h), gives d logvar =
// -beta / 2 times the sum of row i's weights, which is w_row = 1 / N for the
// ELBO (S draws of 1 / (S N)) and for the importance-weighted bound (1 / N times
// weights that sum to 1); and the prior's z^2/2 adds beta * w_draw[r] * z into
// dz (S, N, Z), which reparameterize_backward then carries. The
// score-function estimator takes the KL through its learning signal instead.
template <class T>
void kl_mc_backward(T* d_head, T* dz, const T* z, int N, int S, int Z, T beta, T w_row, DrawWeights<T> w_draw,
                    bool pathwise) {
    for (int i = 0; i < N; ++i) {
        T* dmu = d_head + int64_t(i) * 2 * Z;
        T* dlv = dmu + Z;
        for (int j = 0; j < Z; ++j) {
            dmu[j] = 0;
            dlv[j] = pathwise ? kl_mc_logvar_grad(beta, w_row) : T(0);
        }
    }
    if (!pathwise) return;
    for (int64_t r = 0; r < int64_t(S) * N; ++r) {
        const T c = beta * w_draw[r];
        for (int64_t k = r * Z; k < (r + 1) * Z; ++k) dz[k] = dz[k] + kl_mc_z_grad(z[k], c);
    }
}

// ---- the score-function (REINFORCE) estimator ---------------------------------------
// d(-f)/d(phi) ~ -(f - baseline) d log q(z|x)/d(phi), z held fixed, with the learning
// signal f = log p(x|z) - beta (log q - log p(z)) (the KL part with the MC KL only;
// learning_signal, elbo.h).

// A draw's factor c = -(f - baseline) * its weight in the loss.
template <class T>
PYVAE_HD inline T score_function_weight(double f, double baseline, T w_draw) { return -T(f - baseline) * w_draw; }
// c * d log q / d[mu | logvar] of one entry with standardized draw e: with
// g = d log f / de and e = (z - mu) exp(-logvar / 2),
// d/d mu = -g exp(-logvar / 2), d/d logvar = (-g e - 1) / 2.
template <class T>
PYVAE_HD inline HeadGrad<T> score_function_grad(Posterior posterior, T e, T lv, T c) {
    const T g = standardized_score(posterior, e);
    return {c * (-g * hd_exp(T(-0.5) * lv)), c * T(0.5) * (-g * e - T(1))};
}

// d_head (N, 2Z) += that, over the S draws in order.
template <class T>
void score_function_backward(T* d_head, const T* head, const T* eps, const double* recon, const double* kl, int N,
                             int S, int Z, Posterior posterior, bool mc, T beta, T w_draw, double baseline,
                             int n_threads) {
    parallel_for(N, chunk_for(N), n_threads, int64_t(N) * S * Z > kParallelDraws, [&](int64_t lo, int64_t hi) {
        for (int i = int(lo); i < int(hi); ++i) {
            const T* lv = head + int64_t(i) * 2 * Z + Z;
            T* dmu = d_head + int64_t(i) * 2 * Z;
            T* dlv = dmu + Z;
            for (int s = 0; s < S; ++s) {
                const int64_t r = int64_t(s) * N + i;
                const T* e = eps + r * Z;
                const T c = score_function_weight(learning_signal(recon, kl, r, mc, double(beta)), baseline, w_draw);
                for (int j = 0; j < Z; ++j) {
                    const HeadGrad<T> g = score_function_grad(posterior, e[j], lv[j], c);
                    dmu[j] += g.mu;
                    dlv[j] += g.logvar;
                }
            }
        }
    });
}

}  // namespace pyvae
