// Launch helpers of the `_cuda` kernels (nvcc only, CUDA syntax): grid sizes,
// the launch check, and the deterministic block sum.
#pragma once
#include <cstdint>

#include "kernels_cuda.cuh"

namespace pyvae::launch {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

// Launch errors (bad configuration) surface at once; faults inside a kernel
// surface at the next synchronizing call, which is checked too.
inline void check_launch(const char* what) { check_cuda(cudaGetLastError(), what, __FILE__, __LINE__); }

// Sum over a block of BLOCK threads in a fixed tree (warp shuffles, then the
// warp sums in one warp): the same order every run. The result is valid in
// thread 0. Safe to call repeatedly in one kernel.
template <class T, int BLOCK>
__device__ T block_sum(T v) {
    static_assert(BLOCK % 32 == 0 && BLOCK <= 1024, "block of whole warps");
    __shared__ T warp_sums[BLOCK / 32];
    __syncthreads();  // a previous call may still read warp_sums
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < BLOCK / 32 ? warp_sums[lane] : T(0);
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    }
    return v;
}

}  // namespace pyvae::launch
