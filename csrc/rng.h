// Counter-based random numbers: every draw is a pure function of (key, counter).
// That makes noise independent of thread count and batch position, and lets
// a row's noise be tied to the row itself when scoring.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace pyvae {

// splitmix64 finalizer: a bijective 64-bit mixer with full avalanche.
inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

inline uint64_t combine_keys(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }

// Uniform on the open interval (0, 1): never 0 or 1, so log and logit stay finite.
inline double uniform_open(uint64_t bits) { return (double(bits >> 11) + 0.5) * 0x1.0p-53; }

inline double standard_normal(uint64_t key, uint64_t counter) {
    const double u1 = uniform_open(mix64(key ^ mix64(2 * counter)));
    const double u2 = uniform_open(mix64(key ^ mix64(2 * counter + 1)));
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

inline double standard_uniform(uint64_t key, uint64_t counter) {
    return uniform_open(mix64(key ^ mix64(2 * counter)));
}

// FNV-1a over the bytes of a row, then mixed: the row's identity as a noise key.
inline uint64_t hash_bytes(const void* data, size_t n_bytes) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n_bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
    return mix64(h);
}

}  // namespace pyvae
