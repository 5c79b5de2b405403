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

#include "model/hd.h"

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

// exp(t) for t <= 0 (t = -|a|), relative error < 2 ulp; below -87 the result
// stays at exp(-87) (a normal number) instead of going subnormal.
inline float exp_nonpositive(float t) {
    t = t < -87.0f ? -87.0f : t;
    const float magic = 12582912.0f;                     // 1.5 * 2^23: rounds to an integer
    const float kn = std::fma(t, 1.44269504088896341f, magic);
    const float n = kn - magic;                          // round(t / ln 2), in [-126, 0]
    float r = std::fma(n, -0.693145751953125f, t);       // t - n ln2, Cody-Waite in two parts
    r = std::fma(n, -1.428606765330187045e-06f, r);
    // e^r on |r| <= ln2/2: Taylor to degree 6 (truncation < 1.3e-7 relative).
    float p = 1.0f / 720;
    p = std::fma(p, r, 1.0f / 120);
    p = std::fma(p, r, 1.0f / 24);
    p = std::fma(p, r, 1.0f / 6);
    p = std::fma(p, r, 0.5f);
    p = std::fma(p, r, 1.0f);
    p = std::fma(p, r, 1.0f);
    const uint32_t scale = (float_to_bits(kn) - float_to_bits(magic) + 127u) << 23;  // 2^n
    return p * bits_to_float(scale);
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

// tanh(a) within 2 ulp (tests/test_kernels.py measures it against float64 over
// the float range; on every third float in [0, 20]: 1.84 ulp): for |a| < 0.625,
// |a| + |a|^3 Q(a^2) with Q's coefficients fitted to tanh's relative error
// there (0.73 ulp); above, 1 - 2t / (1 + t) with t = e^(-2|a|) < 0.29 (1.84
// ulp; (1 - t) / (1 + t) reached 2.09); then a's sign. tanh(+-0) = +-0,
// tanh(+-inf) = +-1, NaN stays NaN, and a subnormal a comes back unchanged.
inline float tanh_unit(float a) {
    const float x = std::fabs(a), s = a * a;
    float q = -0.005707663018256426f;
    q = std::fma(q, s, 0.020641405135393143f);
    q = std::fma(q, s, -0.05374036729335785f);
    q = std::fma(q, s, 0.13331449031829834f);
    q = std::fma(q, s, -0.3333328068256378f);
    const float small = std::fma(x * s, q, x);
    const float t = exp_nonpositive(-2.0f * x);
    const float large = 1.0f - 2.0f * t / (1.0f + t);
    const float magnitude = pick_bits(uint32_t(-int32_t(x < 0.625f)), small, large);
    return bits_to_float(float_to_bits(magnitude) | (float_to_bits(a) & 0x80000000u));
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
