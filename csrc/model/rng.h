// Counter-based random numbers: every draw is a pure function of (key, counter).
// That makes noise independent of thread count and batch position, lets a
// row's noise be tied to the row itself when scoring, and gives the CUDA
// engine the same streams: these functions are compiled for both (hd.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>

#include "model/hd.h"

namespace pyvae {

// splitmix64 finalizer: a bijective 64-bit mixer with full avalanche.
PYVAE_HD inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

PYVAE_HD inline uint64_t combine_keys(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }

// Uniform on the open interval (0, 1): never 0 or 1, so log and logit stay finite.
PYVAE_HD inline double uniform_open(uint64_t bits) { return (double(bits >> 11) + 0.5) * 0x1.0p-53; }

PYVAE_HD inline double standard_normal(uint64_t key, uint64_t counter) {
    const double u1 = uniform_open(mix64(key ^ mix64(2 * counter)));
    const double u2 = uniform_open(mix64(key ^ mix64(2 * counter + 1)));
    return hd_sqrt(-2.0 * hd_log(u1)) * hd_cos(6.283185307179586 * u2);
}

PYVAE_HD inline double standard_uniform(uint64_t key, uint64_t counter) {
    return uniform_open(mix64(key ^ mix64(2 * counter)));
}

// FNV-1a over the bytes of a row, then mixed: the row's identity as a noise key.
PYVAE_HD inline uint64_t hash_bytes(const void* data, size_t n_bytes) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n_bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
    return mix64(h);
}

// The noise key of row i of the batch at Adam step `step`: the row's position
// in the batch, whichever rank or device holds it.
PYVAE_HD inline uint64_t batch_row_key(uint64_t seed, int64_t step, int64_t i) {
    return combine_keys(combine_keys(seed, uint64_t(step)), uint64_t(i));
}

// Noise of draw s of a row with key `key`, latent dimension j of Z: a
// standard normal, or a uniform in (0, 1) kept below 1 after rounding to T
// (a draw above 1 - 2^-25 rounds to 1 in float32, about 3 in 10^8 draws, and
// the inverse CDF of 1 is +inf).
template <class T>
PYVAE_HD inline T base_noise(uint64_t key, int s, int Z, int j, bool uniform) {
    const uint64_t counter = uint64_t(s) * uint64_t(Z) + uint64_t(j);
    if (!uniform) return T(standard_normal(key, counter));
    const T u = T(standard_uniform(key, counter));
    return u < below_one(T()) ? u : below_one(T());
}

// The epoch's row order: a Fisher-Yates shuffle of order (n) in place, keyed by
// the seed and the Adam step the epoch starts at.
inline void shuffle_rows(int64_t* order, int64_t n, uint64_t seed, int64_t step) {
    const uint64_t shuffle_key = combine_keys(seed, uint64_t(step) * 0x5851f42d4c957f2dULL + 1);
    for (int64_t k = n - 1; k > 0; --k) {
        const int64_t j = int64_t(mix64(shuffle_key ^ mix64(uint64_t(k))) % uint64_t(k + 1));
        std::swap(order[k], order[j]);
    }
}

}  // namespace pyvae
