// Runtime dispatch for the elementwise kernels (the Bernoulli pass, Adam, the
// bias and activation epilogues): the portable build targets x86-64-v2, and a
// function marked PYVAE_ELEMENTWISE is compiled three times (baseline, AVX2+FMA
// and AVX-512) and picked once, when the module loads, by what the CPU has
// (GCC's target_clones, an ifunc). The matrix products need none of this:
// OpenBLAS picks its own kernel at run time. With PYVAE_NATIVE (-march=native)
// or a compiler without the attribute, the mark does nothing.
//
// Mark only leaf kernels that every thread calls: a marked function that itself
// hands work to the thread team (parallel_for) would run its own clone on the
// calling thread and an unmarked copy of the lambda on a helper, and the two
// may round differently. Results on one machine never depend on the thread count. Between machines
// that pick different clones the last bits may differ (a*b+c contracted to an
// FMA or not), as they already do between OpenBLAS's kernels for two CPUs.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && \
    !defined(PYVAE_NATIVE) && !defined(__SANITIZE_ADDRESS__) && !defined(__CUDACC__)
#define PYVAE_ELEMENTWISE __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#define PYVAE_DISPATCH_ISA 1
#else
#define PYVAE_ELEMENTWISE
#define PYVAE_DISPATCH_ISA 0
#endif

namespace pyvae {

// Which clone the loader picks on this CPU (what show_config reports).
inline const char* elementwise_isa() {
#if PYVAE_DISPATCH_ISA
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2, FMA)";
    return "x86-64-v2 (baseline)";
#elif defined(PYVAE_NATIVE)
    return "native (-march=native)";
#else
    return "compiler default";
#endif
}

}  // namespace pyvae
