// Vectorizable float math for the Bernoulli likelihoods (784 exp + log1p per
// row) and the tanh activation. glibc's scalar expf/log1pf/tanhf do not
// vectorize without -ffast-math (a tanhf call costs ~15 ns); these
// are plain arithmetic the compiler turns into AVX code under `omp simd`. They
// are used for float only: the float64 build (gradient checks) keeps std::exp
// and std::log1p and is the oracle they are tested against. The simd_*
// functions at the end are how the equations (model/) call them.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cpu/dispatch.h"
#include "model/hd.h"
#include "model/rng.h"

namespace pyvae {

inline float bits_to_float(uint32_t u) { return __builtin_bit_cast(float, u); }
inline uint32_t float_to_bits(float f) { return __builtin_bit_cast(uint32_t, f); }

// Branch-free selects on bit patterns: GCC (12) does not if-convert a float
// ?: inside these loops, and a loop with control flow stays scalar.
// mask is all ones or all zeros.
inline float pick_bits(uint32_t mask, float if_set, float if_clear) {
    return bits_to_float((float_to_bits(if_set) & mask) | (float_to_bits(if_clear) & ~mask));
}
inline uint32_t sign_mask(float a) { return uint32_t(int32_t(float_to_bits(a)) >> 31); }
inline uint32_t nan_mask(float a) {
    return uint32_t(-int32_t((float_to_bits(a) & 0x7fffffffu) > 0x7f800000u));
}

// e^r - 1 for |r| <= ln2 / 2 + a little: r + r^2 P(r), P of degree 4 fitted
// (minimax, by linear programming) to expm1's relative error there: 2e-8.
inline float expm1_reduced(float r) {
    float p = 0.0013882516650483012f;
    p = std::fma(p, r, 0.008366547524929047f);
    p = std::fma(p, r, 0.04166720062494278f);
    p = std::fma(p, r, 0.1666654348373413f);
    p = std::fma(p, r, 0.4999999701976776f);
    return std::fma(r * r, p, r);
}

// t = n ln2 + r with n = round(t / ln 2) and |r| <= ln2 / 2, for t in [-87, 88]:
// r and scale = 2^n. kn rounds t / ln2 to an integer n, and its low bits hold
// n + 127, 2^n's exponent field, which the shift moves into place (the magic
// number's own bits move out).
struct Ln2Reduced {
    float r, scale;
};
inline Ln2Reduced reduce_by_ln2(float t) {
    const float magic = 12582912.0f + 127.0f;            // 1.5 * 2^23 + 127: rounds to an integer
    const float kn = std::fma(t, 1.44269504088896341f, magic);
    const float n = kn - magic;                          // round(t / ln 2), in [-126, 127]
    float r = std::fma(n, -0.693145751953125f, t);       // t - n ln2, Cody-Waite in two parts
    r = std::fma(n, -1.428606765330187045e-06f, r);
    return {r, bits_to_float(float_to_bits(kn) << 23)};
}

// e^t for t in [-87, 88] within 1.05 ulp of the float64 value (over every float
// in [-87, 87]: 1.0475; tests/test_kernels.py samples it): 2^n (1 + expm1(r));
// the rounding of r and of 1 + expm1(r) make the most of it. The callers clamp
// t into that range.
inline float exp_in_range(float t) {
    const Ln2Reduced reduced = reduce_by_ln2(t);
    return (1.0f + expm1_reduced(reduced.r)) * reduced.scale;
}

// exp(t) for t <= 0 (t = -|a|), within 1.05 ulp; below -87 the result
// stays at exp(-87) (a normal number) instead of going subnormal.
inline float exp_nonpositive(float t) { return exp_in_range(t < -87.0f ? -87.0f : t); }

// e^t for any float t, within 1.05 ulp where the result is normal (the posterior's
// exp(logvar) and exp(logvar / 2), |logvar| <= 30); above 88.72 +inf, below -87
// e^-87 (a normal number, not the subnormal); NaN stays NaN.
inline float exp_unit(float t) {
    float c = t < -87.0f ? -87.0f : t;
    c = 88.0f < c ? 88.0f : c;  // NaN passes both: its comparisons are false
    return pick_bits(uint32_t(-int32_t(t > 88.72283f)), HUGE_VALF, exp_in_range(c));
}

// log1p(e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) in [0, 1/3]; the odd
// series to s^13 leaves < 2e-8 relative; no cancellation anywhere.
inline float log1p_unit(float e) {
    const float s = e / (2.0f + e);
    const float s2 = s * s;
    float p = 1.0f / 13;
    p = std::fma(p, s2, 1.0f / 11);
    p = std::fma(p, s2, 1.0f / 9);
    p = std::fma(p, s2, 1.0f / 7);
    p = std::fma(p, s2, 1.0f / 5);
    p = std::fma(p, s2, 1.0f / 3);
    p = std::fma(p, s2, 1.0f);
    return 2.0f * s * p;
}

// tanh(a) within 2.5 ulp (tests/test_kernels.py measures it against float64
// over the float range; on every float in [0, 12]: 2.498 ulp, near 1, where
// the rounding of 2 + m counts) in ~20 vector operations: tanh|a| = -m / (2 + m)
// with m = expm1(-2|a|), one formula for the whole range. expm1(t) is
// 2^n (e^r - 1) + (2^n - 1) with t = n ln2 + r, |r| <= ln2 / 2, and e^r - 1 =
// expm1_reduced(r); for n = 0 (|a| < 0.17) no term cancels. The two-branch
// form it replaced (a polynomial below 0.625, 1 - 2t / (1 + t) above) was
// within 1.85 ulp at ~32 operations, 1.35x the time (a small table's training
// runs two tanh layers: ~25% of its step). tanh(+-0) = +-0, tanh(+-inf) = +-1,
// NaN stays NaN, and a subnormal a comes back unchanged.
inline float tanh_unit(float a) {
    const float x = std::fabs(a);
    float t = -2.0f * x;
    t = t < -20.0f ? -20.0f : t;                         // tanh(10) rounds to 1
    const Ln2Reduced reduced = reduce_by_ln2(t);
    const float m = std::fma(reduced.scale, expm1_reduced(reduced.r), reduced.scale - 1.0f);  // expm1(t), in (-1, 0]
    const float magnitude = m / (-2.0f - m);                     // +0 or -0 at a = 0: the sign is a's
    return bits_to_float((float_to_bits(magnitude) & 0x7fffffffu) | (float_to_bits(a) & 0x80000000u));
}

// ---- the Gaussian noise of rng.h, vectorizable ------------------------------------
// standard_normal (rng.h) is Box-Muller in double: sqrt(-2 log u1) cos(2 pi u2).
// glibc's scalar log and cos cost ~30 ns a draw, a sixth of a small table's
// training step. The functions below compute the same double expression with
// plain arithmetic (no conversion instruction AVX2 lacks, no table lookups),
// each within ~1 double ulp of the C library's, so the float draw they round to
// is the C library's except when the double lands within a few double ulps of a
// float rounding boundary (about 1 draw in 10^8; then 1 float ulp apart).
// tests/test_kernels.py measures both. The float64 build keeps the C library's.
// Forced inline (PYVAE_KERNEL) so per_isa's clones compile them for their ISA.

PYVAE_KERNEL inline double bits_to_double(uint64_t u) { return __builtin_bit_cast(double, u); }
PYVAE_KERNEL inline uint64_t double_to_bits(double d) { return __builtin_bit_cast(uint64_t, d); }

// c_n x^n + ... + c_0 by Horner's rule, the coefficients from the highest down.
template <class... Rest>
PYVAE_KERNEL inline double horner(double x, double highest, Rest... rest) {
    double acc = highest;
    ((acc = std::fma(acc, x, double(rest))), ...);
    return acc;
}

// double(x) for an integer x < 2^53, exactly: two halves placed in a double's
// mantissa (x86-64 has no vector uint64 -> double before AVX-512).
PYVAE_KERNEL inline double exact_double_below_2p53(uint64_t x) {
    const uint64_t two52_bits = 0x4330000000000000ULL;  // 2^52: its mantissa holds an integer below 2^52
    const double hi = bits_to_double(two52_bits | (x >> 32)) - 0x1p52;
    const double lo = bits_to_double(two52_bits | (x & 0xffffffffULL)) - 0x1p52;
    return hi * 0x1p32 + lo;  // exact: both integers, the sum below 2^53
}

// rng.h's uniform_open, bit for bit.
PYVAE_KERNEL inline double uniform_open_simd(uint64_t bits) { return (exact_double_below_2p53(bits >> 11) + 0.5) * 0x1.0p-53; }

// log(u) for a positive normal double u, within 2 ulp (where k ln 2 and log m nearly
// cancel; ~1 elsewhere): u = 2^k m with m in
// [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172,
// the odd series to s^23 (truncation < 1e-20 relative); k ln 2 in two parts so
// that k ln2_hi is exact.
PYVAE_KERNEL inline double log_positive_normal(double u) {
    const uint64_t bits = double_to_bits(u);
    const uint64_t sqrt_half_bits = 0x3fe6a09e667f3bcdULL;
    const uint64_t shifted = bits - sqrt_half_bits;                 // k in the exponent field (two's complement)
    const uint64_t k_field = shifted & 0xfff0000000000000ULL;
    const double m = bits_to_double(bits - k_field);                // in [sqrt(1/2), sqrt(2))
    const uint64_t k_biased = (shifted + (1024ULL << 52)) >> 52;    // k + 1024, positive for every normal u
    const double k = bits_to_double(0x4330000000000000ULL | k_biased) - (0x1p52 + 1024.0);
    const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    const double p = horner(s2, 1.0 / 23, 1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9,
                            1.0 / 7, 1.0 / 5, 1.0 / 3);
    const double log_m = std::fma(2.0 * s, s2 * p, 2.0 * s);
    const double ln2_hi = 0x1.62e42fefa3800p-1, ln2_lo = 0x1.ef35793c76730p-45;  // k ln2_hi exact for |k| < 2^11
    return std::fma(k, ln2_hi, std::fma(k, ln2_lo, log_m));
}

// cos(p) for p in [0, 2 pi], within ~1 ulp where |cos p| is not tiny: p = n pi/2
// + r, |r| <= pi/4 (Cody-Waite, pi/2 in three parts: n <= 4 makes n times the
// first two exact), then cos r or sin r by quadrant, Taylor to r^16 / r^17
// (truncation < 3e-18).
PYVAE_KERNEL inline double cos_zero_to_two_pi(double p) {
    const double magic = 0x1.8p52;  // adding it rounds to an integer in the low mantissa bits
    const double shifted = std::fma(p, 0.63661977236758134308, magic);
    const double n = shifted - magic;
    double r = std::fma(n, -0x1.921fb54400000p0, p);  // pi/2's first 33 bits
    r = std::fma(n, -0x1.0b4611a600000p-34, r);        // the next 33
    r = std::fma(n, -0x1.3198a2e037073p-69, r);        // the rest
    const double r2 = r * r;
    const double c = horner(r2, 1.0 / 20922789888000, -1.0 / 87178291200, 1.0 / 479001600, -1.0 / 3628800,
                            1.0 / 40320, -1.0 / 720, 1.0 / 24, -0.5, 1.0);  // 1/16! down to 1/0!
    const double sn = std::fma(horner(r2, 1.0 / 355687428096000, -1.0 / 1307674368000, 1.0 / 6227020800,
                                      -1.0 / 39916800, 1.0 / 362880, -1.0 / 5040, 1.0 / 120, -1.0 / 6) * r2, r, r);
    // cos(r + q pi/2) is cos r, -sin r, -cos r, sin r for q = 0, 1, 2, 3.
    const uint64_t q = double_to_bits(shifted) & 3;
    const uint64_t odd = -(q & 1), negate = ((q + 1) & 2) << 62;
    const uint64_t value = (double_to_bits(sn) & odd) | (double_to_bits(c) & ~odd);
    return bits_to_double(value ^ negate);
}

// rng.h's standard_normal(key, counter) rounded to float, given the counter's
// two hashes mix64(2 counter) and mix64(2 counter + 1).
PYVAE_KERNEL inline float standard_normal_simd(uint64_t key, uint64_t counter_hash1, uint64_t counter_hash2) {
    const double u1 = uniform_open_simd(mix64(key ^ counter_hash1));
    const double u2 = uniform_open_simd(mix64(key ^ counter_hash2));
    return float(std::sqrt(-2.0 * log_positive_normal(u1)) * cos_zero_to_two_pi(6.283185307179586 * u2));
}

// ---- the primitives the equations are written with ---------------------------------
// The per-element formulas of model/ are PYVAE_HD functions (one source for both
// engines) over these: in float on the CPU they are the vectorizable versions
// above, which the `omp simd` loops need; in double (the gradient checks'
// oracle) and on the CUDA device the C library's (hd.h). The versions above are
// host code (bit casts, std::fma) and the device's expf/log1pf/tanhf are fast
// already, so the GPU's bits differ from the CPU's float ones in the last
// places there (tests/test_cuda.py's tolerances), while the formula is one.

// Whether T's element math takes the vectorizable versions above: float on the CPU.
template <class T>
constexpr bool kSimdMath =
#ifdef __CUDA_ARCH__
    false;
#else
    std::is_same_v<T, float>;
#endif

// e^t.
template <class T>
PYVAE_HD inline T simd_exp(T t) {
    if constexpr (kSimdMath<T>) return exp_unit(t);
    else return hd_exp(t);
}

// e^t for t <= 0.
template <class T>
PYVAE_HD inline T simd_exp_nonpositive(T t) {
    if constexpr (kSimdMath<T>) return exp_nonpositive(t);
    else return hd_exp(t);
}

// log(1 + e) for e in [0, 1].
template <class T>
PYVAE_HD inline T simd_log1p_unit(T e) {
    if constexpr (kSimdMath<T>) return log1p_unit(e);
    else return hd_log1p(e);
}

// tanh(a).
template <class T>
PYVAE_HD inline T simd_tanh(T a) {
    if constexpr (kSimdMath<T>) return tanh_unit(a);
    else return hd_tanh(a);
}

// sigmoid(a) from e = e^-|a|: branch-free selects on the CPU (a ?: would keep
// the loop scalar), hd.h's sigmoid_of_exp elsewhere.
template <class T>
PYVAE_HD inline T simd_sigmoid_of_exp(T a, T e) {
    if constexpr (kSimdMath<T>) {
        const T inv = T(1) / (T(1) + e);  // sigmoid(|a|)
        return pick_bits(sign_mask(a), e * inv, inv);
    } else {
        return sigmoid_of_exp(a, e);
    }
}

}  // namespace pyvae
