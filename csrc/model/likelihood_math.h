// Scalar math of the likelihoods that the CPU core and the CUDA kernels both
// need, written once as host/device functions.
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

#include "model/hd.h"

namespace pyvae {

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

}  // namespace pyvae
