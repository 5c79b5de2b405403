// One pass over the values of X for input validation (VAE._validate_X): how
// many are NaN or infinite, and the range of the others. NumPy needs a pass
// per question (isfinite, min, max), each reading all of X from memory; on
// MNIST-sized data those passes were most of partial_fit's overhead.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/parallel.h"

namespace pyvae {

struct ValueScan {
    int64_t n_nan = 0, n_inf = 0;
    double lo = std::numeric_limits<double>::infinity();    // min over values that are not NaN
    double hi = -std::numeric_limits<double>::infinity();   // max over values that are not NaN
};

// x [lo, hi): counts and range. Independent lanes (no cross-lane reduction in the
// loop) so the compiler vectorizes it with blends; min, max and counts are exact,
// so neither the clone nor the split into chunks changes the result.
template <class T>
ValueScan value_scan_chunk(const T* __restrict x, int64_t n) {
    return per_isa([&]() PYVAE_KERNEL {
        constexpr int L = 64 / sizeof(T);
        constexpr T inf = std::numeric_limits<T>::infinity();
        T lo[L], hi[L];
        int32_t nan[L], infs[L];
        for (int j = 0; j < L; ++j) lo[j] = inf, hi[j] = -inf, nan[j] = 0, infs[j] = 0;
        ValueScan out;
        int64_t i = 0;
        // Lane counters are flushed every 2^20 values, long before an int32 overflows.
        while (i + L <= n) {
            const int64_t end = std::min(n - (n - i) % L, i + (int64_t(1) << 20));
            for (; i < end; i += L)
                for (int j = 0; j < L; ++j) {
                    const T v = x[i + j];
                    lo[j] = v < lo[j] ? v : lo[j];  // NaN compares false and is left out
                    hi[j] = v > hi[j] ? v : hi[j];
                    nan[j] += v != v;
                    infs[j] += std::abs(v) == inf;
                }
            for (int j = 0; j < L; ++j) out.n_nan += nan[j], out.n_inf += infs[j], nan[j] = infs[j] = 0;
        }
        for (; i < n; ++i) {
            const T v = x[i];
            lo[0] = v < lo[0] ? v : lo[0];
            hi[0] = v > hi[0] ? v : hi[0];
            out.n_nan += v != v;
            out.n_inf += std::abs(v) == inf;
        }
        for (int j = 0; j < L; ++j) out.lo = std::min<double>(out.lo, lo[j]), out.hi = std::max<double>(out.hi, hi[j]);
        return out;
    });
}

// The whole of x (n) in fixed chunks over the thread team.
template <class T>
ValueScan value_scan(const T* x, int64_t n, int n_threads) {
    constexpr int64_t kChunk = int64_t(1) << 18;
    const int64_t n_chunks = (n + kChunk - 1) / kChunk;
    std::vector<ValueScan> parts(std::max<int64_t>(1, n_chunks));
    parallel_for(n_chunks, 1, n_threads, n > 4 * kChunk, [&](int64_t first, int64_t last) {
        for (int64_t c = first; c < last; ++c)
            parts[c] = value_scan_chunk(x + c * kChunk, std::min(kChunk, n - c * kChunk));
    });
    ValueScan out;
    for (const ValueScan& p : parts) {
        out.n_nan += p.n_nan;
        out.n_inf += p.n_inf;
        out.lo = std::min(out.lo, p.lo);
        out.hi = std::max(out.hi, p.hi);
    }
    return out;
}

}  // namespace pyvae
