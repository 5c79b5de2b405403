// The standardized posterior draw e of each family of q(z|x), compiled for both
// engines (hd.h): z = mu + exp(logvar / 2) e, and e = g(u) from the base noise
// u (design (2): u ~ N(0, 1), g the identity; design (1): u ~ U(0, 1), g the
// inverse CDF of the standardized logistic or Laplace distribution).
#pragma once
#include "model/config.h"
#include "model/hd.h"

namespace pyvae {

// e = g(u).
template <class T>
PYVAE_HD inline T standardized_draw(Posterior p, T u) {
    switch (p) {
        case Posterior::logistic: return hd_log(u) - hd_log1p(-u);
        case Posterior::laplace: return u < T(0.5) ? hd_log(2 * u) : -hd_log(2 * (1 - u));
        default: return u;
    }
}

// log density of the standardized draw e, and its derivative d/de (the score).
template <class T>
PYVAE_HD inline T standardized_log_density(Posterior p, T e) {
    switch (p) {
        case Posterior::logistic: return -e - 2 * softplus(-e);
        case Posterior::laplace: return -hd_abs(e) - T(0.6931471805599453);
        default: return T(-0.5) * e * e - T(0.5 * kLog2Pi);
    }
}
template <class T>
PYVAE_HD inline T standardized_score(Posterior p, T e) {
    switch (p) {
        case Posterior::logistic: return -hd_tanh(e / 2);
        case Posterior::laplace: return e > 0 ? T(-1) : (e < 0 ? T(1) : T(0));
        default: return -e;
    }
}

PYVAE_HD inline bool base_noise_is_uniform(Posterior p) { return p != Posterior::gaussian; }

// Standard deviation of e: a posterior's std per unit of its scale exp(logvar / 2).
PYVAE_HD inline double standardized_std(Posterior p) {
    switch (p) {
        case Posterior::logistic: return 1.8137993642342178;  // pi / sqrt(3)
        case Posterior::laplace: return 1.4142135623730951;   // sqrt(2)
        default: return 1.0;
    }
}

}  // namespace pyvae
