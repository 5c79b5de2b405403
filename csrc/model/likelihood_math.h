// Each likelihood's log p and gradient for one entry, written once as host/device
// functions (hd.h): the CPU's row loops (likelihood.h) and the CUDA kernels
// (kernels_cuda.cu) both call these. a is the decoder's output for the entry,
// x the data; gradients are d(-log p)/da.
//
// Continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019) in terms of the
// decoder's logit a, lambda = sigmoid(a):
//   p(x | lambda) = C(lambda) lambda^x (1 - lambda)^(1 - x),  x in [0, 1],
//   C(lambda) = 2 atanh(1 - 2 lambda) / (1 - 2 lambda).
// Since 1 - 2 sigmoid(a) = -tanh(a / 2) and atanh(-tanh(a / 2)) = -a / 2,
//   C = a / tanh(a / 2),   log C = log|a| - log tanh(|a| / 2),
//   d log C / da = 1 / a - 1 / sinh(a).
// Both are 0/0 at a = 0 (lambda = 1/2) and lose digits to cancellation near
// it, so small |a| uses their Taylor series instead.
#pragma once
#include <cmath>

#include "cpu/fastmath.h"
#include "model/config.h"
#include "model/hd.h"

namespace pyvae {

// ---- Bernoulli: log p(x | a) = x a - softplus(a), d(-log p)/da = sigmoid(a) - x ----------
// Both from e = e^-|a| (bernoulli_exp), computed once for the two; branch-free
// in float on the CPU, so the row loops vectorize (fastmath.h).
template <class T>
PYVAE_HD inline T bernoulli_exp(T a) { return simd_exp_nonpositive(-hd_abs(a)); }
template <class T>
PYVAE_HD inline T bernoulli_log_p(T a, T x, T e) {
    const T positive_part = relu(a);  // first: its select ends a block, and x a - (...) must fuse as before
    return x * a - (positive_part + simd_log1p_unit(e));
}
template <class T>
PYVAE_HD inline T bernoulli_grad(T a, T x, T e) { return simd_sigmoid_of_exp(a, e) - x; }

// Below this |a| the series are used: their first omitted term is < 2e-9
// relative there, while the closed forms would lose up to 4 digits.
constexpr double kContinuousBernoulliSeriesBound = 0.25;

// log C(a) = log(a / tanh(a / 2)); log 2 at a = 0.
template <class T>
PYVAE_HD inline T continuous_bernoulli_log_norm(T a) {
    const T m = a < T(0) ? -a : a;
    if (m < T(kContinuousBernoulliSeriesBound)) {
        const T a2 = a * a;  // log 2 + a^2/12 - 7a^4/1440 + 31a^6/90720 - 127a^8/4838400
        return T(0.6931471805599453) +
               a2 * (T(1.0 / 12) + a2 * (T(-7.0 / 1440) + a2 * (T(31.0 / 90720) + a2 * T(-127.0 / 4838400))));
    }
    const T e = hd_exp(-m);  // tanh(m / 2) = (1 - e) / (1 + e)
    return hd_log(m) - hd_log1p(-e) + hd_log1p(e);
}

// d log C / da = 1 / a - 1 / sinh(a); 0 at a = 0.
template <class T>
PYVAE_HD inline T continuous_bernoulli_log_norm_grad(T a) {
    const T m = a < T(0) ? -a : a;
    if (m < T(kContinuousBernoulliSeriesBound)) {
        const T a2 = a * a;  // a/6 - 7a^3/360 + 31a^5/15120 - 127a^7/604800
        return a * (T(1.0 / 6) + a2 * (T(-7.0 / 360) + a2 * (T(31.0 / 15120) + a2 * T(-127.0 / 604800))));
    }
    const T e = hd_exp(-m);  // 1 / sinh(m) = 2e / (1 - e^2), no overflow for large m
    const T g = T(1) / m - T(2) * e / ((T(1) - e) * (T(1) + e));
    return a < T(0) ? -g : g;
}

// E[x] = lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)) = sigmoid(a) / tanh(a / 2) - 1 / a,
// which is 1/2 + a/12 - a^3/720 + ... near a = 0.
template <class T>
PYVAE_HD inline T continuous_bernoulli_mean(T a) {
    const T m = a < T(0) ? -a : a;
    if (m < T(kContinuousBernoulliSeriesBound)) {
        const T a2 = a * a;
        return T(0.5) + a * (T(1.0 / 12) + a2 * (T(-1.0 / 720) + a2 * T(1.0 / 30240)));
    }
    // For a > 0: sigmoid(a) / tanh(a/2) = 1 / (1 - e) with e = exp(-a); mirror for a < 0.
    const T e = hd_exp(-m);
    const T upper = T(1) / (T(1) - e) - T(1) / m;
    return a < T(0) ? T(1) - upper : upper;
}

// The inverse CDF at u in (0, 1): x = log(1 + u (e^a - 1)) / a, written so
// that neither e^a nor the division by a overflows or cancels.
template <class T>
PYVAE_HD inline T continuous_bernoulli_inverse_cdf(T a, T u) {
    const T m = a < T(0) ? -a : a;
    if (m < T(1e-6)) return u;
    // For a > 0: x = 1 + log(u + (1 - u) e^-a) / a; for a < 0 the mirror image
    // of the draw at -a with 1 - u.
    const T e = hd_exp(-m);
    const T v = a < T(0) ? T(1) - u : u;
    const T x = T(1) + hd_log(v + (T(1) - v) * e) / m;
    const T clamped = x < T(0) ? T(0) : (x > T(1) ? T(1) : x);
    return a < T(0) ? T(1) - clamped : clamped;
}

// The Gaussian likelihoods' variance: a learned part exp(lv) above a floor
// (GaussianMixture's reg_covar), so no feature's density can grow without bound.
template <class T>
PYVAE_HD inline T floored_variance(T logvar, T floor) { return floor + hd_exp(logvar); }

// ---- Gaussian: log p(x | m) = -(log 2 pi + log var + (x - m)^2 / var) / 2 ----------------
// var = floored_variance(lv, floor), lv the feature's learned log-variance.

// What an entry's log p and gradients need of its feature's variance: log var,
// 1 / var, and d var / d lv / var = e^lv / var (the share of the variance the
// learned part holds, which scales the log-variance gradient).
template <class T>
struct GaussianFeature {
    T log_var, inv_var, learned_share;
};
template <class T>
PYVAE_HD inline GaussianFeature<T> gaussian_feature(T lv, T floor) {
    const T learned = hd_exp(lv);
    const T var = floored_variance(lv, floor);
    return {hd_log(var), T(1) / var, learned / var};
}

// log p of an entry with residual x - m.
template <class T>
PYVAE_HD inline T gaussian_log_p(T residual, T log_var, T inv_var) {
    return T(-0.5) * (T(kLog2Pi) + log_var + residual * residual * inv_var);
}
// weight * d(-log p)/dm = -weight (x - m) / var.
template <class T>
PYVAE_HD inline T gaussian_grad(T residual, T inv_var, T weight) { return -weight * residual * inv_var; }
// d(-log p)/d lv = 0.5 (1 - res^2 / var) * learned_share: this returns the first
// factor, which the callers sum over draws before scaling by the second.
template <class T>
PYVAE_HD inline T gaussian_logvar_term(T residual, T inv_var) {
    return T(0.5) * (T(1) - residual * residual * inv_var);
}
// The standard deviation of draws of p(x | z), sqrt(var), from 1 / var.
template <class T>
PYVAE_HD inline T gaussian_sd(T inv_var) { return hd_sqrt(T(1) / inv_var); }

// ---- Heteroscedastic Gaussian: the entry's own log-variance lv, a decoder output ---------
// var = floored_variance(logvar_clamp(lv), floor): clamped as q(z|x)'s log-variance is,
// so a decoder far from the data can neither overflow e^lv nor put a density spike
// past e^-30 on a feature; log p and d/dm are the Gaussian's above.
template <class T>
PYVAE_HD inline GaussianFeature<T> heteroscedastic_feature(T lv, T floor) {
    return gaussian_feature(logvar_clamp(lv), floor);
}
// weight * d(-log p)/d lv: the Gaussian's log-variance gradient, 0 where the clamp holds.
template <class T>
PYVAE_HD inline T heteroscedastic_logvar_grad(T residual, T lv, const GaussianFeature<T>& f, T weight) {
    if (logvar_clamp_holds(logvar_clamp(lv))) return T(0);
    return weight * gaussian_logvar_term(residual, f.inv_var) * f.learned_share;
}

// ---- Poisson with log-rate a: log p(x | a) = x a - e^a - log x!, d(-log p)/da = e^a - x ----
template <class T>
PYVAE_HD inline T poisson_log_p(T a, T x) { return x * a - hd_exp(a) - T(hd_lgamma(double(x) + 1.0)); }
template <class T>
PYVAE_HD inline T poisson_grad(T a, T x) { return hd_exp(a) - x; }

}  // namespace pyvae
