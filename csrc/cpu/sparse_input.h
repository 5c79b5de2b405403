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

#if defined(__x86_64__) && !defined(__CUDACC__)
#include <immintrin.h>
#endif

#include "model/config.h"
#include "model/dense.h"
#include "cpu/dispatch.h"
#include "cpu/matmul.h"
#include "cpu/parallel.h"

namespace pyvae {

// Above this fraction of nonzeros the dense GEMM wins. Measured for the layer's
// forward + dW on 784-400, 1 thread (AMD EPYC VM, AVX2 clones, OpenBLAS's
// Haswell kernels): on MNIST batches (19% nonzero, clustered in the middle of
// the image) the sparse path takes 0.53x the dense time at batch 128 and 0.77x
// at 1024; on uniformly scattered nonzeros it breaks even at ~25% (batch 128)
// and ~18% (batch 1024). The sparse path is bound by L2 bandwidth (one row of
// a 64-column block of W per nonzero), the dense one by the FMA units.
constexpr double kSparseInputMaxDensity = 0.25;

// Inference decides by each row (Model::input_layer_rowwise) and needs no
// backward pass: a row goes by its nonzeros up to this fraction of nonzeros.
// Measured on MNIST's 784-400 layer (transform of 10,000 rows, AVX-512 EPYC,
// 1 thread): with 0.25, the 14% of rows above it through the dense path made
// transform 1.27x the time of the batch-level choice; see benchmarks/ROW_TILES.md.
constexpr double kSparseRowMaxDensity = 0.5;

// The forward packs W into column blocks for batches of at least this many rows.
constexpr int kPackFromRows = 256;

// A batch x (N, D) by its nonzeros, by row (CSR) and, once the backward pass
// asks for it, by feature (CSC), each in increasing order of the other index.
// NaN counts as a nonzero. `packed` holds the dense operand of a product,
// cut into column blocks (pack_column_blocks).
template <class T>
struct SparseRows {
    bool active = false;   // the batch is sparse enough: the first layer uses it
    bool by_feature = false;  // col_ptr, row, col_val hold the CSC of this batch
    int N = 0, D = 0;
    std::vector<int32_t> row_ptr, col;  // (N + 1), (nnz)
    std::vector<T> row_val;             // (nnz)
    std::vector<int32_t> col_ptr, row;  // (D + 1), (nnz)
    std::vector<T> col_val;             // (nnz)
    std::vector<int32_t> fill;          // (D) scratch of the transpose
    std::vector<T> packed;              // the packed operand of the current product
};

namespace sparse_detail {

// Appends the nonzeros of xi (D) from column k0 on to (col, val) from position
// e; returns the new end. Branchless: every entry is written and the cursor
// moves past the nonzeros only (a branch on ~20% nonzeros mispredicts often);
// col and val need one slot of slack past the row's last nonzero.
template <class T>
inline int32_t compress_row_scalar(const T* xi, int k0, int D, int32_t* col, T* val, int32_t e) {
    for (int k = k0; k < D; ++k) {
        const T v = xi[k];
        col[e] = k;
        val[e] = v;
        e += v != T(0);
    }
    return e;
}

// compress_row_scalar that writes nothing past the row's last nonzero.
template <class T>
inline int32_t compress_row_exact(const T* xi, int D, int32_t* col, T* val, int32_t e) {
    for (int k = 0; k < D; ++k)
        if (xi[k] != T(0)) {
            col[e] = k;
            val[e] = xi[k];
            ++e;
        }
    return e;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
#define PYVAE_SPARSE_AVX2 1
// Left-packing 8 floats at a time: a compare gives the mask of nonzeros, a
// table gives the permutation that moves them to the front, and both the
// values and their column indices are stored whole (8 slots of slack); the
// cursor advances by the mask's popcount. ~3x the scalar loop on MNIST rows.
struct LeftPack {
    alignas(32) int32_t perm[256][8];
    LeftPack() {
        for (int m = 0; m < 256; ++m) {
            int n = 0;
            for (int j = 0; j < 8; ++j)
                if (m >> j & 1) perm[m][n++] = j;
            for (; n < 8; ++n) perm[m][n] = 0;
        }
    }
};

__attribute__((target("avx2,popcnt"))) inline int32_t compress_row_avx2(const float* xi, int D, int32_t* col,
                                                                         float* val, int32_t e) {
    static const LeftPack table;
    const __m256 zero = _mm256_setzero_ps();
    const __m256i step = _mm256_set1_epi32(8);
    __m256i cols = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int k = 0;
    for (; k + 8 <= D; k += 8, cols = _mm256_add_epi32(cols, step)) {
        const __m256 v = _mm256_loadu_ps(xi + k);
        const int mask = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ));  // NaN is a nonzero
        if (mask == 0) continue;
        const __m256i p = _mm256_load_si256(reinterpret_cast<const __m256i*>(table.perm[mask]));
        _mm256_storeu_ps(val + e, _mm256_permutevar8x32_ps(v, p));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(col + e), _mm256_permutevar8x32_epi32(cols, p));
        e += __builtin_popcount(unsigned(mask));
    }
    return compress_row_scalar(xi, k, D, col, val, e);
}

inline bool has_avx2() {
    static const bool yes = [] {
        __builtin_cpu_init();
        // PYVAE_ISA below avx2 turns this path off too (dispatch.h).
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") &&
               (!PYVAE_DISPATCH_ISA || int(kIsa.active) >= int(Isa::avx2));
    }();
    return yes;
}
#else
#define PYVAE_SPARSE_AVX2 0
#endif

}  // namespace sparse_detail

// The row compression may write up to kCompressSlack - 1 slots past a row's last nonzero.
constexpr int kCompressSlack = 8;

// Builds the CSR of x (N, D) into s when at most max_density of it is nonzero;
// returns whether it did (s.active). The CSC waits for sparse_rows_by_feature.
// Both passes split the rows over the team; each row lands at the same place
// whoever compresses it. With `dense_rows`, a row of more than max_row_nnz
// nonzeros is left empty in s and listed there instead (inference decides by
// the row, Model::input_layer_rowwise).
template <class T>
bool sparse_rows_build(SparseRows<T>& s, const T* x, int N, int D, int n_threads,
                       double max_density = kSparseInputMaxDensity, std::vector<int>* dense_rows = nullptr,
                       int max_row_nnz = 0) {
    const int64_t n = int64_t(N) * D;
    const bool parallel = n >= (int64_t(1) << 17);
    const int64_t chunk = chunk_for(N);
    if (!dense_rows && n > 0 && n < (int64_t(1) << 17)) {
        // Training decides for the whole batch: one pass over it, rows
        // ignored, says whether it is sparse enough before any row is counted
        // (a dense table's batch: ~1 us of its ~75 us step saved).
        int64_t nnz = 0;
#pragma omp simd reduction(+ : nnz)
        for (int64_t k = 0; k < n; ++k) nnz += x[k] != T(0);
        if (double(nnz) > max_density * double(n)) {
            s.active = false;
            s.by_feature = false;
            return false;
        }
    }
    // Nonzeros per row first (a vectorized pass): their total decides the
    // path, and their running sum places each row.
    s.row_ptr.resize(N + 1);
    int32_t* count = s.row_ptr.data() + 1;
    parallel_for(N, chunk, n_threads, parallel, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
            const T* xi = x + i * D;
            int32_t c = 0;
#pragma omp simd reduction(+ : c)
            for (int k = 0; k < D; ++k) c += xi[k] != T(0);
            count[i] = c;
        }
    });
    if (dense_rows) {
        dense_rows->clear();
        for (int i = 0; i < N; ++i)
            if (count[i] > max_row_nnz) dense_rows->push_back(i), count[i] = 0;
    }
    int64_t nnz = 0;
    for (int i = 0; i < N; ++i) nnz += count[i];
    s.active = n > 0 && double(nnz) <= max_density * double(n) && nnz < INT32_MAX - kCompressSlack;
    s.by_feature = false;
    if (!s.active) return false;
    s.N = N;
    s.D = D;
    s.row_ptr[0] = 0;
    for (int i = 0; i < N; ++i) s.row_ptr[i + 1] += s.row_ptr[i];
    // resize only grows the buffers after the first batches: no allocation per step.
    s.col.resize(nnz + kCompressSlack);
    s.row_val.resize(nnz + kCompressSlack);
    int32_t* col = s.col.data();
    T* val = s.row_val.data();
    parallel_for(N, chunk, n_threads, parallel, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
            const T* xi = x + i * D;
            const int32_t e = s.row_ptr[i];
            if (dense_rows && s.row_ptr[i + 1] == e) continue;  // maybe a dense row: not compressed
            // A row's compression writes up to kCompressSlack - 1 slots past its
            // end, which the next rows then overwrite. The next chunk may be
            // written at the same time by another thread: rows that end within
            // kCompressSlack slots of the chunk's end write their nonzeros only.
            if (s.row_ptr[i + 1] + kCompressSlack > s.row_ptr[hi]) {
                sparse_detail::compress_row_exact(xi, D, col, val, e);
                continue;
            }
#if PYVAE_SPARSE_AVX2
            if constexpr (sizeof(T) == 4)
                if (sparse_detail::has_avx2()) {
                    sparse_detail::compress_row_avx2(xi, D, col, val, e);
                    continue;
                }
#endif
            sparse_detail::compress_row_scalar(xi, 0, D, col, val, e);
        }
    });
    return true;
}

// Adds the CSC to an active s.
template <class T>
void sparse_rows_by_feature(SparseRows<T>& s) {
    if (!s.active || s.by_feature) return;
    const int N = s.N, D = s.D;
    const int32_t nnz = s.row_ptr[N];
    s.row.resize(nnz);
    s.col_val.resize(nnz);
    s.col_ptr.assign(D + 1, 0);
    for (int32_t f = 0; f < nnz; ++f) ++s.col_ptr[s.col[f] + 1];
    for (int k = 0; k < D; ++k) s.col_ptr[k + 1] += s.col_ptr[k];
    // A counting sort: rows stay in increasing order within a feature.
    s.fill.assign(s.col_ptr.begin(), s.col_ptr.end() - 1);
    for (int i = 0; i < N; ++i)
        for (int32_t f = s.row_ptr[i]; f < s.row_ptr[i + 1]; ++f) {
            const int32_t at = s.fill[s.col[f]]++;
            s.row[at] = i;
            s.col_val[at] = s.row_val[f];
        }
    s.by_feature = true;
}

namespace sparse_detail {

// The gather's vectors: dense.h's SimdVec.
template <class T>
using Vec = SimdVec<T>;

// The width of the gather's column block that starts at column c of O: 8
// vectors while 8 fit, then at most one each of 4, 2 and 1 vectors, then the
// remaining columns (fewer than a vector) as one block. The packing and the
// gather both walk the columns with it.
template <class T>
constexpr int column_block_width(int c, int O) {
    constexpr int W = Vec<T>::width;
    const int left = O - c;
    for (int nv : {8, 4, 2, 1})
        if (left >= nv * W) return nv * W;
    return left;
}

// acc (NV vectors) = sum over e of val[e] * P[idx[e], :] with P a block of
// NV vectors per row, rows ldp apart (contiguous when packed): the
// accumulators stay in registers for the whole sum. Forced inline: a call
// would run the baseline (SSE) code from every clone of sparse_gather_rows.
template <class T, int NV>
__attribute__((always_inline)) inline void gather_block(T* y, const int32_t* idx, const T* val, int n, const T* P,
                                                        int64_t ldp, bool accumulate) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    V acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = V{};
    for (int e = 0; e < n; ++e) {
        const T* m = P + idx[e] * ldp;
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
            std::memcpy(&old, y + v * W, sizeof(V));
            out += old;
        }
        std::memcpy(y + v * W, &out, sizeof(V));
    }
}

// gather_block for rows [r0, r1) of a CSR-like (ptr, idx, val), into columns
// [c0, c0 + NV * width) of y.
template <class T, int NV>
__attribute__((always_inline)) inline void gather_rows(T* y, int64_t ldy, const int32_t* ptr, const int32_t* idx,
                                                       const T* val, int r0, int r1, const T* P, int64_t ldp, int c0,
                                                       bool accumulate) {
    for (int r = r0; r < r1; ++r)
        gather_block<T, NV>(y + r * ldy + c0, idx + ptr[r], val + ptr[r], ptr[r + 1] - ptr[r], P, ldp, accumulate);
}

}  // namespace sparse_detail

// P = M (K, O; row stride ldm) cut into the column blocks of the gather, each
// block's K rows contiguous (block at column c0 starts at P + K * c0). Rows
// [k0, k1) only, so callers can split the copy. Row by row: M is read in
// order and each block is written in order (block by block, M's rows would be
// read with a stride of a row: 3x slower on 784 x 400). The full blocks are
// copied with a fixed size, inline rather than by a call per piece.
template <class T>
void pack_column_blocks(T* P, const T* M, int64_t ldm, int K, int O, int k0, int k1) {
    constexpr int kFull = sparse_detail::column_block_width<T>(0, 1 << 20);
    for (int k = k0; k < k1; ++k) {
        const T* row = M + k * ldm;
        for (int c0 = 0, width; c0 < O; c0 += width) {
            width = sparse_detail::column_block_width<T>(c0, O);
            T* to = P + int64_t(K) * c0 + int64_t(k) * width;
            if (width == kFull) std::memcpy(to, row + c0, sizeof(T) * kFull);
            else std::memcpy(to, row + c0, sizeof(T) * width);
        }
    }
}

// For each r in [r0, r1): row r of y (row stride ldy) = sum over its entries e
// in [ptr[r], ptr[r+1]) of val[e] * M[idx[e], :] (O columns), added to y when
// `accumulate`: the leaf kernel of both passes, one clone per instruction set
// (dispatch.h). M (K rows) is given packed by pack_column_blocks (ldm = 0) or
// as it is, rows ldm apart. Column blocks are the outer loop: a block of 64
// columns of M (200 KB for 784 rows) stays in L2 across the rows; packed, it
// is read as whole cache lines from contiguous pages, where all of M (1.25 MB
// for 784-400) would stream from L3 for every row. Each block's accumulators
// (8 AVX registers) stay in registers for the sum. The packing changes no
// arithmetic.
template <class T>
void sparse_gather_rows(T* __restrict y, int64_t ldy, const int32_t* ptr, const int32_t* idx,
                        const T* val, int r0, int r1, const T* M, int64_t ldm, int K, int O,
                        bool accumulate) {
    return per_isa([&]() PYVAE_KERNEL {
        using sparse_detail::gather_rows;
        constexpr int W = sparse_detail::Vec<T>::width;
        for (int c = 0, width; c < O; c += width) {
            width = sparse_detail::column_block_width<T>(c, O);
            const T* block = ldm ? M + c : M + int64_t(K) * c;
            const int64_t ldp = ldm ? ldm : width;
            switch (width / W) {
                case 8: gather_rows<T, 8>(y, ldy, ptr, idx, val, r0, r1, block, ldp, c, accumulate); continue;
                case 4: gather_rows<T, 4>(y, ldy, ptr, idx, val, r0, r1, block, ldp, c, accumulate); continue;
                case 2: gather_rows<T, 2>(y, ldy, ptr, idx, val, r0, r1, block, ldp, c, accumulate); continue;
                case 1: gather_rows<T, 1>(y, ldy, ptr, idx, val, r0, r1, block, ldp, c, accumulate); continue;
            }
            for (int r = r0; r < r1; ++r)  // the last block, narrower than a vector
                for (int j = 0; j < width; ++j) {
                    T acc = T(0);
                    for (int e = ptr[r]; e < ptr[r + 1]; ++e) acc += val[e] * block[idx[e] * ldp + j];
                    T& out = y[r * ldy + c + j];
                    out = accumulate ? out + acc : acc;
                }
        }
    });
}

// s.packed = M (K, O) packed (pack_column_blocks), the copy split over the team.
template <class T>
const T* pack_operand(SparseRows<T>& s, const T* M, int K, int O, int n_threads) {
    s.packed.resize(int64_t(K) * O);
    T* P = s.packed.data();
    parallel_for(K, chunk_for(K), n_threads, int64_t(K) * O > (1 << 17), [&](int64_t lo, int64_t hi) {
        pack_column_blocks(P, M, O, K, O, int(lo), int(hi));
    });
    return P;
}

// The first columns of the gather's column blocks over O columns.
template <class T>
std::vector<int> column_block_starts(int O) {
    std::vector<int> starts;
    for (int c = 0; c < O; c += sparse_detail::column_block_width<T>(c, O)) starts.push_back(c);
    return starts;
}

// out (N, O) = act(x (N, I) @ W (I, O) + b (O)) with x given by its nonzeros s.
// A task is one column block for half of the rows: the block of W it reads
// (200 KB for 784 rows) stays in L2 for the task. With `by_feature_too` (a
// backward pass follows) the CSC is built as one more task of the same job:
// with two threads it overlaps the gather instead of running alone before
// the weight gradient.
template <class T>
void sparse_dense_forward(T* out, SparseRows<T>& s, const T* W, const T* b, int N, int O, bool hidden,
                          Activation act, int n_threads, bool by_feature_too = false) {
    const double flops = 2.0 * O * double(s.row_ptr[N]);
    // Packing W pays off from a few hundred rows on (measured on MNIST rows,
    // 784-400: 0.87x the packed time unpacked at 128 rows, 1.0x at 256, 1.28x
    // at 1024, the copy included).
    const bool packed = N >= kPackFromRows;
    const T* P = packed ? pack_operand(s, W, s.D, O, n_threads) : W;
    const int64_t ldp = packed ? 0 : O;
    const std::vector<int> starts = column_block_starts<T>(O);
    constexpr int kRowParts = 2;
    const int first = by_feature_too ? 1 : 0, n_gather = int(starts.size()) * kRowParts;
    parallel_tasks(first + n_gather, n_threads, flops, [&](int t) {
        if (t < first) return sparse_rows_by_feature(s);
        const int c0 = starts[(t - first) / kRowParts], part = (t - first) % kRowParts;
        const int width = sparse_detail::column_block_width<T>(c0, O);
        const int r0 = N * part / kRowParts, r1 = N * (part + 1) / kRowParts;
        sparse_gather_rows(out + c0, O, s.row_ptr.data(), s.col.data(), s.row_val.data(), r0, r1,
                           packed ? P + int64_t(s.D) * c0 : P + c0, ldp, s.D, width, false);
        bias_activation(out, O, b, r0, r1, c0, c0 + width, hidden, act);
    });
}

// dense_backward for a layer whose input is the data x given by its nonzeros s
// (it needs no d_inp): dW (I, O) += x^T d_pre, db (O) += colsum(d_pre), from
// d_pre (N, O). Row k of dW sums over the rows i holding feature k, in order.
// A task is one column block of the gather over every feature: the block of
// d_pre it reads (256 KB at batch 1024) stays in L2 for the whole task.
template <class T>
void sparse_dense_backward(T* dW, T* db, const T* d_pre, SparseRows<T>& s, int N, int O, int n_threads) {
    const int I = s.D;
    sparse_rows_by_feature(s);  // unless the forward built it
    const T* P = pack_operand(s, d_pre, N, O, n_threads);
    const std::vector<int> starts = column_block_starts<T>(O);
    const int n_w = int(starts.size());
    const Blocks cols(O);
    const double flops = 2.0 * O * double(s.row_ptr[N]);
    parallel_tasks(n_w + cols.n, n_threads, flops, [&](int t) {
        if (t < n_w) {
            const int c0 = starts[t], width = sparse_detail::column_block_width<T>(c0, O);
            sparse_gather_rows(dW + c0, O, s.col_ptr.data(), s.row.data(), s.col_val.data(), 0, I,
                               P + int64_t(N) * c0, 0, N, width, true);
            return;
        }
        bias_grad_columns(db, d_pre, N, O, cols.lo(t - n_w), cols.lo(t - n_w + 1));
    });
}

}  // namespace pyvae
