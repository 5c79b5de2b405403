// Functions compiled for both engines: PYVAE_HD marks them __host__ __device__
// under nvcc and is empty for the host compiler, so the CPU core and the CUDA
// kernels run one source of each scalar formula instead of two copies.
//
// The hd_* wrappers pick the C library function by precision. On the host
// they are the very functions std:: calls (glibc's expf, log1p, ...), so the
// CPU's numbers do not depend on whether a formula is written here.
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define PYVAE_HD __host__ __device__
#else
#define PYVAE_HD
#endif

namespace pyvae {

// hd_NAME(x): the C library's NAMEf for float, NAME for double.
#define PYVAE_HD_LIBM(name)                                           \
    PYVAE_HD inline float hd_##name(float x) { return ::name##f(x); } \
    PYVAE_HD inline double hd_##name(double x) { return ::name(x); }
PYVAE_HD_LIBM(exp)
PYVAE_HD_LIBM(log)
PYVAE_HD_LIBM(log1p)
PYVAE_HD_LIBM(tanh)
PYVAE_HD_LIBM(sqrt)
PYVAE_HD_LIBM(cos)
PYVAE_HD_LIBM(lgamma)
#undef PYVAE_HD_LIBM
PYVAE_HD inline double hd_pow(double x, double y) { return ::pow(x, y); }
PYVAE_HD inline float hd_abs(float x) { return ::fabsf(x); }
PYVAE_HD inline double hd_abs(double x) { return ::fabs(x); }

constexpr double kLog2Pi = 1.8378770664093453;

// max(a, 0), as std::max(a, T(0)): a NaN stays NaN (a NaN loss must stay visible).
template <class T>
PYVAE_HD inline T relu(T a) { return a < T(0) ? T(0) : a; }

// 1 / (1 + e^-a) from e = e^-|a|, which the caller may share with other terms.
template <class T>
PYVAE_HD inline T sigmoid_of_exp(T a, T e) { return a >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e); }

// log(1 + e^a) and 1 / (1 + e^-a), stable for any a; NaN stays NaN.
template <class T>
PYVAE_HD inline T softplus(T a) { return relu(a) + hd_log1p(hd_exp(-hd_abs(a))); }
template <class T>
PYVAE_HD inline T sigmoid(T a) { return sigmoid_of_exp(a, hd_exp(-hd_abs(a))); }

// The largest value below 1 in T: where a uniform draw must stay inside (0, 1).
PYVAE_HD inline float below_one(float) { return 0x1.fffffep-1f; }
PYVAE_HD inline double below_one(double) { return 0x1.fffffffffffffp-1; }

}  // namespace pyvae
