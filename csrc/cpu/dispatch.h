// Runtime dispatch for the elementwise kernels (the Bernoulli pass, Adam, the
// bias and activation epilogues, the sparse gather): the portable build
// targets x86-64-v2, and each such kernel runs its body through `per_isa`,
// which compiles it three times (baseline, AVX2+FMA, AVX-512) and runs the one
// chosen once, when the module loads: the best the CPU has, or the one the
// environment variable PYVAE_ISA names (`avx512`, `avx2` or `baseline`; one the
// CPU lacks is refused when pyvae is imported). Forcing a lower one lets any
// x86-64 CPU with AVX2 reproduce, bit for bit, what an AVX2-only CPU computes
// (tests/test_trajectory.py). The matrix products need none of this: OpenBLAS
// picks its own kernel at run time (OPENBLAS_CORETYPE pins it).
//
// The body is a lambda marked PYVAE_KERNEL (forced inline), so each of the
// three callers gets its own copy compiled for its instruction set. Use it only
// in leaf kernels that every thread calls: a body that itself hands work to
// the thread team would run its helpers' lambdas at the baseline. Results on
// one machine never depend on the thread count. Between instruction sets the
// last bits may differ (a*b+c contracted to an FMA or not), as they do between
// OpenBLAS's kernels for two CPUs. With PYVAE_NATIVE (-march=native), a
// compiler other than GCC >= 11, or the sanitizers, the body runs as compiled.
#pragma once
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && \
    !defined(PYVAE_NATIVE) && !defined(__SANITIZE_ADDRESS__) && !defined(__CUDACC__)
#define PYVAE_DISPATCH_ISA 1
#else
#define PYVAE_DISPATCH_ISA 0
#endif

#define PYVAE_KERNEL __attribute__((always_inline))

namespace pyvae {

enum class Isa { baseline = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::avx512: return "x86-64-v4 (AVX-512)";
        case Isa::avx2: return "x86-64-v3 (AVX2, FMA)";
        default: return "x86-64-v2 (baseline)";
    }
}

// The instruction set the kernels run (`active`), the best this CPU has
// (`cpu`), and why a PYVAE_ISA request was refused (`error`, empty if it was not).
struct IsaChoice {
    Isa cpu = Isa::baseline, active = Isa::baseline;
    std::string error;
};

inline IsaChoice choose_isa() {
    IsaChoice c;
#if PYVAE_DISPATCH_ISA
    __builtin_cpu_init();
    c.cpu = __builtin_cpu_supports("x86-64-v4")   ? Isa::avx512
            : __builtin_cpu_supports("x86-64-v3") ? Isa::avx2
                                                  : Isa::baseline;
    c.active = c.cpu;
    const char* asked = std::getenv("PYVAE_ISA");
    if (!asked || !*asked || !std::strcmp(asked, "auto")) return c;
    Isa want;
    if (!std::strcmp(asked, "avx512")) want = Isa::avx512;
    else if (!std::strcmp(asked, "avx2")) want = Isa::avx2;
    else if (!std::strcmp(asked, "baseline")) want = Isa::baseline;
    else {
        c.error = std::string("PYVAE_ISA=") + asked + " is not one of auto, avx512, avx2, baseline";
        return c;
    }
    if (int(want) > int(c.cpu)) {
        c.error = std::string("PYVAE_ISA=") + asked + " asks for " + isa_name(want) + ", which this CPU lacks (it has " +
                  isa_name(c.cpu) + ")";
        return c;
    }
    c.active = want;
#endif
    return c;
}

// Made once, when the module loads (before any kernel runs).
inline const IsaChoice kIsa = choose_isa();

#if PYVAE_DISPATCH_ISA
namespace isa_detail {
template <class F>
__attribute__((target("arch=x86-64-v4"))) decltype(auto) run_avx512(const F& body) { return body(); }
template <class F>
__attribute__((target("arch=x86-64-v3"))) decltype(auto) run_avx2(const F& body) { return body(); }
template <class F>
decltype(auto) run_baseline(const F& body) { return body(); }
}  // namespace isa_detail
#endif

// body() compiled for, and run on, the active instruction set.
template <class F>
inline decltype(auto) per_isa(const F& body) {
#if PYVAE_DISPATCH_ISA
    switch (kIsa.active) {
        case Isa::avx512: return isa_detail::run_avx512(body);
        case Isa::avx2: return isa_detail::run_avx2(body);
        default: return isa_detail::run_baseline(body);
    }
#else
    return body();
#endif
}

// Whether the active kernels have hardware FMA (x86-64-v3 and up). Without it
// std::fma is a library call, and code built on it loses to the C library.
inline bool kernels_have_fma() {
#if PYVAE_DISPATCH_ISA
    return kIsa.active != Isa::baseline;
#elif defined(__FMA__)
    return true;
#else
    return false;
#endif
}

// What show_config reports.
inline const char* elementwise_isa() {
#if PYVAE_DISPATCH_ISA
    return isa_name(kIsa.active);
#elif defined(PYVAE_NATIVE)
    return "native (-march=native)";
#else
    return "compiler default";
#endif
}

}  // namespace pyvae
