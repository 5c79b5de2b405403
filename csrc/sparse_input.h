// The first encoder layer on a batch that is mostly zeros (MNIST: 81% of the
// pixels), from its nonzeros: the forward pass and the weight gradient are ~40%
// of a step's flops on 784-400-20, and a dense product spends most of them
// multiplying zeros. The data needs no gradient, so the layer's backward is
// only dW = X^T d_pre and db.
//
// Which path a batch takes depends on its nonzero count alone (never on the
// thread count), and each output row is a sum over the nonzeros in a fixed
// order, so results stay bit-identical across thread counts. They differ from
// the dense path's in the last bits (another summation order).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "config.h"
#include "dense.h"
#include "dispatch.h"
#include "matmul.h"
#include "parallel.h"

namespace pyvae {

// Above this fraction of nonzeros the dense GEMM wins. Measured for the layer's
// forward + dW on 784-400, 1 thread (AMD EPYC VM, AVX2 clones, OpenBLAS's
// Haswell kernels): on MNIST batches (19% nonzero, clustered in the middle of
// the image) the sparse path takes 0.53x the dense time at batch 128 and 0.77x
// at 1024; on uniformly scattered nonzeros it breaks even at ~25% (batch 128)
// and ~18% (batch 1024). The sparse path is bound by L2 bandwidth (one row of
// a 64-column block of W per nonzero), the dense one by the FMA units.
constexpr double kSparseInputMaxDensity = 0.25;

// A batch x (N, D) by its nonzeros, both by row (CSR) and by feature (CSC),
// each in increasing order of the other index. NaN counts as a nonzero.
template <class T>
struct SparseRows {
    bool active = false;  // the batch is sparse enough: the first layer uses it
    int N = 0, D = 0;
    std::vector<int32_t> row_ptr, col;  // (N + 1), (nnz)
    std::vector<T> row_val;             // (nnz)
    std::vector<int32_t> col_ptr, row;  // (D + 1), (nnz)
    std::vector<T> col_val;             // (nnz)
    std::vector<int32_t> fill;          // (D) scratch of the transpose
};

// Builds s from x (N, D) when at most kSparseInputMaxDensity of it is nonzero;
// returns whether it did (s.active).
template <class T>
bool sparse_rows_build(SparseRows<T>& s, const T* x, int N, int D, double max_density = kSparseInputMaxDensity) {
    const int64_t n = int64_t(N) * D;
    // Nonzeros per feature first (a vectorized pass): their total decides the path.
    s.col_ptr.assign(D + 1, 0);
    int32_t* count = s.col_ptr.data() + 1;
    for (int i = 0; i < N; ++i) {
        const T* xi = x + int64_t(i) * D;
#pragma omp simd
        for (int k = 0; k < D; ++k) count[k] += xi[k] != T(0);
    }
    int64_t nnz = 0;
    for (int k = 0; k < D; ++k) nnz += count[k];
    s.active = n > 0 && double(nnz) <= max_density * double(n) && nnz < INT32_MAX - D;
    if (!s.active) return false;
    s.N = N;
    s.D = D;
    // resize only grows the buffers after the first batches: no allocation per step.
    // One slot of slack: the branchless loop below writes one past the last nonzero.
    s.row_ptr.resize(N + 1);
    s.col.resize(nnz + 1);
    s.row_val.resize(nnz + 1);
    s.row.resize(nnz);
    s.col_val.resize(nnz);
    // Branchless: every entry is written, and the cursor moves past the nonzeros
    // only (a branch on ~20% nonzeros mispredicts often).
    int32_t e = 0;
    for (int i = 0; i < N; ++i) {
        s.row_ptr[i] = e;
        const T* xi = x + int64_t(i) * D;
        for (int k = 0; k < D; ++k) {
            const T v = xi[k];
            s.col[e] = k;
            s.row_val[e] = v;
            e += v != T(0);
        }
    }
    s.row_ptr[N] = e;
    for (int k = 0; k < D; ++k) s.col_ptr[k + 1] += s.col_ptr[k];
    // The transpose by a counting sort: rows stay in increasing order within a feature.
    s.fill.assign(s.col_ptr.begin(), s.col_ptr.end() - 1);
    for (int i = 0; i < N; ++i)
        for (int32_t f = s.row_ptr[i]; f < s.row_ptr[i + 1]; ++f) {
            const int32_t at = s.fill[s.col[f]]++;
            s.row[at] = i;
            s.col_val[at] = s.row_val[f];
        }
    return true;
}

namespace sparse_detail {

// Eight floats or four doubles: GCC's vector extension, which each clone of a
// PYVAE_ELEMENTWISE kernel lowers to its own instructions (two SSE registers
// in the baseline clone, one AVX register in the others).
template <class T>
struct Vec {
    typedef T type __attribute__((vector_size(32)));
    static constexpr int width = 32 / sizeof(T);
};

// acc (NV vectors) = sum over e of val[e] * M[idx[e], c0 : c0 + NV * width]: the
// accumulators stay in registers for the whole sum. Forced inline: a call would
// run the baseline (SSE) code from every clone of sparse_gather_row.
template <class T, int NV>
__attribute__((always_inline)) inline void gather_block(T* y, const int32_t* idx, const T* val, int n, const T* M, int64_t ldm, int c0,
                         bool accumulate) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    V acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = V{};
    for (int e = 0; e < n; ++e) {
        const T* m = M + int64_t(idx[e]) * ldm + c0;
        const T a = val[e];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            V w;
            std::memcpy(&w, m + v * W, sizeof(V));
            acc[v] += a * w;
        }
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
        V out = acc[v];
        if (accumulate) {
            V old;
            std::memcpy(&old, y + c0 + v * W, sizeof(V));
            out += old;
        }
        std::memcpy(y + c0 + v * W, &out, sizeof(V));
    }
}

// gather_block for rows [r0, r1) of a CSR-like (ptr, idx, val), at columns c0 on.
template <class T, int NV>
__attribute__((always_inline)) inline void gather_rows(T* y, int64_t ldy, const int32_t* ptr, const int32_t* idx,
                                                       const T* val, int r0, int r1, const T* M, int64_t ldm, int c0,
                                                       bool accumulate) {
    for (int r = r0; r < r1; ++r)
        gather_block<T, NV>(y + r * ldy, idx + ptr[r], val + ptr[r], ptr[r + 1] - ptr[r], M, ldm, c0, accumulate);
}

}  // namespace sparse_detail

// For each r in [r0, r1): row r of y (row stride ldy) = sum over its entries e
// in [ptr[r], ptr[r+1]) of val[e] * M[idx[e], :] (M row-major, row stride ldm, O
// columns), added to y when `accumulate`: the leaf kernel of both passes, one
// clone per instruction set (dispatch.h). Column blocks are the outer loop: a
// block of 64 columns of M (200 KB for 784 rows) stays in L2 across the rows,
// where all of M (1.25 MB for 784-400) would stream from L3 for every row.
// Each block's accumulators (8 AVX registers) stay in registers for the sum.
template <class T>
PYVAE_ELEMENTWISE void sparse_gather_rows(T* __restrict y, int64_t ldy, const int32_t* ptr, const int32_t* idx,
                                          const T* val, int r0, int r1, const T* M, int64_t ldm, int O,
                                          bool accumulate) {
    using sparse_detail::gather_rows;
    constexpr int W = sparse_detail::Vec<T>::width;
    int c = 0;
    for (; c + 8 * W <= O; c += 8 * W) gather_rows<T, 8>(y, ldy, ptr, idx, val, r0, r1, M, ldm, c, accumulate);
    if (c + 4 * W <= O) gather_rows<T, 4>(y, ldy, ptr, idx, val, r0, r1, M, ldm, c, accumulate), c += 4 * W;
    if (c + 2 * W <= O) gather_rows<T, 2>(y, ldy, ptr, idx, val, r0, r1, M, ldm, c, accumulate), c += 2 * W;
    if (c + W <= O) gather_rows<T, 1>(y, ldy, ptr, idx, val, r0, r1, M, ldm, c, accumulate), c += W;
    for (; c < O; ++c)
        for (int r = r0; r < r1; ++r) {
            T acc = T(0);
            for (int e = ptr[r]; e < ptr[r + 1]; ++e) acc += val[e] * M[int64_t(idx[e]) * ldm + c];
            T& out = y[r * ldy + c];
            out = accumulate ? out + acc : acc;
        }
}

// out (N, O) = act(x (N, I) @ W (I, O) + b (O)) with x given by its nonzeros s.
template <class T>
void sparse_dense_forward(T* out, const SparseRows<T>& s, const T* W, const T* b, int N, int O, bool hidden,
                          Activation act, int n_threads) {
    const double flops = 2.0 * O * double(s.row_ptr[N]);
    parallel_for(N, chunk_for(N), n_threads, flops >= kParallelFlops, [&](int64_t lo, int64_t hi) {
        sparse_gather_rows(out, O, s.row_ptr.data(), s.col.data(), s.row_val.data(), int(lo), int(hi), W, O, O,
                           false);
        for (int i = int(lo); i < int(hi); ++i) {
            T* y = out + int64_t(i) * O;
            // As dense_forward's epilogue: the bias after the product, then the activation.
            if (!hidden) {
#pragma omp simd
                for (int o = 0; o < O; ++o) y[o] += b[o];
            } else if (act == Activation::relu) {
#pragma omp simd
                for (int o = 0; o < O; ++o) {
                    const T v = y[o] + b[o];
                    y[o] = v < T(0) ? T(0) : v;  // NaN stays NaN
                }
            } else {
                for (int o = 0; o < O; ++o) y[o] = std::tanh(y[o] + b[o]);
            }
        }
    });
}

// dense_backward for a layer whose input is the data x given by its nonzeros s
// (it needs no d_inp): dW (I, O) += x^T d_pre, db (O) += colsum(d_pre), from
// d_pre (N, O). Row k of dW sums over the rows i holding feature k, in order.
template <class T>
void sparse_dense_backward(T* dW, T* db, const T* d_pre, const SparseRows<T>& s, int N, int O, int n_threads) {
    const int I = s.D;
    const int64_t per_task = std::max(1, I / 32);  // from the shape: features near the border are often empty
    const int n_w = int((I + per_task - 1) / per_task);
    const Blocks cols(O);
    const double flops = 2.0 * O * double(s.row_ptr[N]);
    parallel_tasks(n_w + cols.n, n_threads, flops, [&](int t) {
        if (t < n_w) {
            const int k1 = int(std::min<int64_t>(I, (t + 1) * per_task));
            sparse_gather_rows(dW, O, s.col_ptr.data(), s.row.data(), s.col_val.data(), int(t * per_task), k1, d_pre,
                               O, O, true);
            return;
        }
        bias_grad_columns(db, d_pre, N, O, cols.lo(t - n_w), cols.lo(t - n_w + 1));
    });
}

}  // namespace pyvae
