// The evidence lower bound of one row from its S draws, written once for
// training (Model::loss_and_grad: loss = mean_i -recon_i + beta kl_i) and for
// scoring (Model::score: ELBO_i = recon_i - kl_i), and the importance-weighted
// bound, for scoring and for training (objective iwae). recon, kl (S*N) are the
// per-draw log p(x_i | z_si) and log q(z_si | x_i) - log p(z_si); row (s, i) is
// s * N + i. Their backward is the weight of each draw's term in the batch's
// loss (DrawWeights), which the likelihoods' and the KL's backwards apply.
// The per-row functions are PYVAE_HD (hd.h): the CUDA kernels call them too.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "model/hd.h"

namespace pyvae {

// The weight of each draw's term in the batch's loss; every backward multiplies
// draw r's gradient by weights[r]. The ELBO: `scale` = 1 / (S N) for every draw
// (a scalar converts to it). The importance-weighted bound: scale = 1 / N times
// `relative` (S*N), each row's self-normalized importance weights.
template <class T>
struct DrawWeights {
    T scale;
    const T* relative = nullptr;  // (S*N), or null: 1 for every draw
    DrawWeights(T s, const T* rel = nullptr) : scale(s), relative(rel) {}  // implicit: a scalar weight
    T operator[](int64_t r) const { return relative ? scale * relative[r] : scale; }
    // For sums over draws that apply `scale` once, outside the sum.
    T relative_at(int64_t r) const { return relative ? relative[r] : T(1); }
};

// The ELBO's weight of each draw's term in the batch's loss, 1 / (S N).
template <class T>
PYVAE_HD inline T elbo_draw_weight(int N, int S) { return T(1) / (T(S) * T(N)); }

// The two terms of row i's ELBO: E_q[log p(x|z)] as the mean over the draws,
// and the KL, in closed form (kl_analytic (N)) or as the mean over the draws.
struct ElboTerms {
    double recon, kl;
};
PYVAE_HD inline ElboTerms elbo_forward(const double* recon, const double* kl, const double* kl_analytic, int i, int N,
                                       int S, bool mc_kl) {
    double rec = 0, klm = 0;
    for (int s = 0; s < S; ++s) {
        rec += recon[int64_t(s) * N + i];
        klm += kl[int64_t(s) * N + i];
    }
    return {rec / S, mc_kl ? klm / S : kl_analytic[i]};
}
// The row's ELBO, recon - KL (a bound in nats), and its training loss -recon + beta KL.
PYVAE_HD inline double elbo_of(const ElboTerms& t) { return t.recon - t.kl; }
PYVAE_HD inline double elbo_loss(const ElboTerms& t, double beta) { return -t.recon + beta * t.kl; }

// ---- the importance-weighted bound (Burda, Grosse & Salakhutdinov, 2015) ----------
// Row i's K = S draws z_s = mu + sigma * e_s have the log importance weights
//   log w_s = log p(x | z_s) + log p(z_s) - log q(z_s | x) = recon_s - kl_s
// (training with beta: recon_s - beta kl_s), and the bound is
//   L_K = log (1/K) sum_s w_s,
// a lower bound on log p(x) (beta = 1) that tightens as K grows; K = 1 is the ELBO
// with the Monte Carlo KL.
//
// Its gradient, by hand. The noise e_s does not depend on the parameters theta (the
// reparameterization: z_s is a function of theta and e_s), so d/dtheta goes inside
// the sum, and dw_s = w_s d log w_s:
//   dL_K/dtheta = (1 / sum_j w_j) sum_s dw_s/dtheta = sum_s wt_s d log w_s/dtheta,
// with the self-normalized weights wt_s = w_s / sum_j w_j (they sum to 1).
// d log w_s/dtheta = d recon_s/dtheta - beta d kl_s/dtheta is the per-draw term the
// ELBO with the Monte Carlo KL differentiates, whose gradient is
// sum_s (1/K) d log w_s/dtheta: the bound's backward is the ELBO's with wt_s in
// place of 1/K. In the batch's loss -(1/N) sum_i L_K,i draw (s, i) thus weighs
// wt_si / N where the ELBO's weighs 1 / (S N) (DrawWeights); K = 1 gives wt = 1,
// the ELBO's gradient exactly.
//
// The weights reuse the forward's result: sum_j w_j = K e^{L_K}, so
//   wt_s = exp(log w_s - L_K) / K,
// where log w_s - L_K <= log K: the forward's shift by the largest log w keeps
// the exponentials finite, and the backward needs no shift of its own.

// log w of draw row r = s * N + i: log p(x|z) - beta (log q(z|x) - log p(z)).
PYVAE_HD inline double log_importance_weight(const double* recon, const double* kl, int64_t r, double beta) {
    return recon[r] - beta * kl[r];
}

// L_K = log (1/S) sum_s w_s for row i: log-mean-exp, shifted by the largest log w.
PYVAE_HD inline double importance_bound_forward(const double* recon, const double* kl, int i, int N, int S,
                                                double beta = 1.0) {
    double top = -INFINITY;
    for (int s = 0; s < S; ++s) {
        const double t = log_importance_weight(recon, kl, int64_t(s) * N + i, beta);
        top = top < t ? t : top;  // std::max(top, t)
    }
    double acc = 0;
    for (int s = 0; s < S; ++s) acc += hd_exp(log_importance_weight(recon, kl, int64_t(s) * N + i, beta) - top);
    // every term -inf (float32 overflow far from the data): the bound is -inf, not NaN
    return hd_abs(top) == INFINITY ? top : top + hd_log(acc / S);
}

// wt (S*N), row i's entries: its draws' self-normalized weights wt_s = exp(log w_s - L_K) / S,
// from its bound L_K = importance_bound_forward(..., beta); d L_K = sum_s wt_s d log w_s.
template <class T>
void importance_bound_backward(T* wt, const double* recon, const double* kl, double bound, int i, int N, int S,
                               double beta) {
    for (int s = 0; s < S; ++s) {
        const int64_t r = int64_t(s) * N + i;
        wt[r] = T(std::exp(log_importance_weight(recon, kl, r, beta) - bound) / S);
    }
}

// The score-function estimator's learning signal of draw row r,
// f = log p(x|z) - beta * (log q - log p(z)): its log importance weight, the
// KL part with the MC KL only (the analytic KL's gradient is exact, not estimated).
PYVAE_HD inline double learning_signal(const double* recon, const double* kl, int64_t r, bool mc_kl, double beta) {
    return mc_kl ? log_importance_weight(recon, kl, r, beta) : recon[r];
}

// The learning signal averaged over the S*N draws.
inline double learning_signal_mean(const double* recon, const double* kl, int N, int S, bool mc_kl, double beta) {
    double f = 0;
    for (int64_t r = 0; r < int64_t(S) * N; ++r) f += learning_signal(recon, kl, r, mc_kl, beta);
    return f / (double(S) * N);
}

// The score-function estimator's baseline after Adam step `step` (from 1): the
// first batch's mean learning signal, then a running mean with weight 0.1.
PYVAE_HD inline double baseline_update(double baseline, double mean_f, int64_t step) {
    return step == 1 ? mean_f : 0.9 * baseline + 0.1 * mean_f;
}

}  // namespace pyvae
