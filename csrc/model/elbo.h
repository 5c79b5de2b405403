// The evidence lower bound of one row from its S draws, written once for
// training (Model::loss_and_grad: loss = mean_i -recon_i + beta kl_i) and for
// scoring (Model::score: ELBO_i = recon_i - kl_i), and the importance-weighted
// bound that scoring offers beside it. recon, kl (S*N) are the per-draw
// log p(x_i | z_si) and log q(z_si | x_i) - log p(z_si); row (s, i) is s * N + i.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace pyvae {

// The two terms of row i's ELBO: E_q[log p(x|z)] as the mean over the draws,
// and the KL, in closed form (kl_analytic (N)) or as the mean over the draws.
struct ElboTerms {
    double recon, kl;
};
inline ElboTerms elbo_forward(const double* recon, const double* kl, const double* kl_analytic, int i, int N, int S,
                              bool mc_kl) {
    double rec = 0, klm = 0;
    for (int s = 0; s < S; ++s) {
        rec += recon[int64_t(s) * N + i];
        klm += kl[int64_t(s) * N + i];
    }
    return {rec / S, mc_kl ? klm / S : kl_analytic[i]};
}

// log (1/S) sum_s p(x_i, z_si) / q(z_si | x_i) for row i: log-mean-exp, shifted by the largest term.
inline double importance_bound_forward(const double* recon, const double* kl, int i, int N, int S) {
    double top = -INFINITY;
    for (int s = 0; s < S; ++s) top = std::max(top, recon[int64_t(s) * N + i] - kl[int64_t(s) * N + i]);
    double acc = 0;
    for (int s = 0; s < S; ++s) acc += std::exp(recon[int64_t(s) * N + i] - kl[int64_t(s) * N + i] - top);
    // every term -inf (float32 overflow far from the data): the bound is -inf, not NaN
    return std::isinf(top) ? top : top + std::log(acc / S);
}

// The score-function estimator's learning signal f = log p(x|z) - beta * (log q - log p(z))
// (the KL part with the MC KL only), averaged over the S*N draws.
inline double learning_signal_mean(const double* recon, const double* kl, int N, int S, bool mc_kl, double beta) {
    double f = 0;
    for (int64_t r = 0; r < int64_t(S) * N; ++r) f += recon[r] - (mc_kl ? beta * kl[r] : 0.0);
    return f / (double(S) * N);
}

}  // namespace pyvae
