// The dense layer, forward and backward: the MLPs of the encoder and the
// decoder are stacks of it (Model::mlp_forward, Model::decoder_backward).
// Products go through matmul.h's blocked GEMM with the bias and activation
// fused into each block while it is in cache.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "model/config.h"
#include "cpu/dispatch.h"
#include "cpu/fastmath.h"
#include "cpu/matmul.h"

namespace pyvae {

// ---- the activations, one entry at a time (both engines: hd.h) ---------------------
// Forward y = act(v); backward d(loss)/dv = d(loss)/dy * act'(v), from the saved
// output y. relu(v) is hd.h's (NaN stays NaN); tanh is fastmath.h's simd_tanh.
template <class T>
PYVAE_HD inline T relu_backward(T d, T y) { return y > T(0) ? d : T(0); }
template <class T>
PYVAE_HD inline T tanh_backward(T d, T y) { return d * (T(1) - y * y); }

// Eight floats or four doubles: GCC's vector extension, which each instruction
// set's copy of a kernel lowers to its own registers (two SSE registers in the
// baseline copy, one AVX register in the others).
template <class T>
struct SimdVec {
    typedef T type __attribute__((vector_size(32)));
    static constexpr int width = 32 / sizeof(T);
};

// Rows [r0, r1), columns [c0, c1) of out (row stride O) = act(out + b), act
// applied when `hidden`: the epilogue of a forward product, run on each block
// right after its product while it is still in cache. A leaf kernel, one clone
// per instruction set (dispatch.h).
template <class T>
void bias_activation(T* __restrict out, int O, const T* __restrict b, int r0, int r1, int c0, int c1,
                     bool hidden, Activation act) {
    return per_isa([&]() PYVAE_KERNEL {
        for (int n = r0; n < r1; ++n) {
            T* y = out + int64_t(n) * O;
            if (!hidden) {
#pragma omp simd
                for (int o = c0; o < c1; ++o) y[o] += b[o];
            } else if (act == Activation::relu) {
#pragma omp simd
                for (int o = c0; o < c1; ++o) y[o] = relu(y[o] + b[o]);
            } else {
#pragma omp simd
                for (int o = c0; o < c1; ++o) y[o] = simd_tanh(y[o] + b[o]);
            }
        }
    });
}

// out (N, O) = act(inp (N, I) @ W (I, O) + b (O)); act is applied when `hidden`.
template <class T>
void dense_forward(T* out, const T* inp, const T* W, const T* b, int N, int I, int O,
                   bool hidden, Activation act, int n_threads) {
    auto epilogue = [=](int r0, int r1, int c0, int c1) { bias_activation(out, O, b, r0, r1, c0, c1, hidden, act); };
    matmul<T>(false, false, N, O, I, inp, I, W, O, T(0), out, O, n_threads, epilogue);
}

// Inference's product: out (N, O) = inp (N, I) @ W (I, O) with each row on its
// own, every element one multiply-add chain over k = 0..I-1 in order, so a
// row's result is the same bits alone, in any batch, at any position. A BLAS
// does not promise that: OpenBLAS's AVX-512 kernels round a row by the shape
// of the product (small-matrix kernels below a size), its Haswell kernels by
// the row's position in the micro-tile (tests/test_sklearn.py). Register
// tiles of 4 rows x 3 vectors of `Bytes`; the remainders run the same chain
// per element, the last columns (fewer than a vector) from `W_tail` (I, L),
// those columns of W padded with zeros.
template <int Bytes, class T>
__attribute__((always_inline)) inline void rowwise_product_tiles(T* __restrict out, const T* __restrict inp,
                                                                const T* __restrict W, const T* __restrict W_tail,
                                                                int r0, int r1, int I, int O) {
    typedef T V __attribute__((vector_size(Bytes)));
    constexpr int L = Bytes / sizeof(T);
    auto tile = [&](auto rows, auto vecs, int n, const T* w0, int ldw, int c, int width) PYVAE_KERNEL {
        constexpr int RB = decltype(rows)::value, NV = decltype(vecs)::value;
        V acc[RB][NV];
        for (int r = 0; r < RB; ++r)
            for (int v = 0; v < NV; ++v) acc[r][v] = V{};
        for (int k = 0; k < I; ++k) {
            V wv[NV];
            for (int v = 0; v < NV; ++v) std::memcpy(&wv[v], w0 + int64_t(k) * ldw + v * L, sizeof(V));
            for (int r = 0; r < RB; ++r) {
                const T a = inp[int64_t(n + r) * I + k];
                for (int v = 0; v < NV; ++v) acc[r][v] = a * wv[v] + acc[r][v];
            }
        }
        for (int r = 0; r < RB; ++r)
            for (int v = 0; v < NV; ++v)
                std::memcpy(out + int64_t(n + r) * O + c + v * L, &acc[r][v], sizeof(T) * std::min(L, width - v * L));
    };
    auto rows_of = [&](auto rows, int n) PYVAE_KERNEL {
        using One = std::integral_constant<int, 1>;
        int c = 0;
        for (; c + 3 * L <= O; c += 3 * L) tile(rows, std::integral_constant<int, 3>(), n, W + c, O, c, 3 * L);
        for (; c + L <= O; c += L) tile(rows, One(), n, W + c, O, c, L);
        if (c < O) tile(rows, One(), n, W_tail, L, c, O - c);
    };
    int n = r0;
    for (; n + 4 <= r1; n += 4) rows_of(std::integral_constant<int, 4>(), n);
    for (; n < r1; ++n) rows_of(std::integral_constant<int, 1>(), n);
}

// The vector width of rowwise_product_tiles on the active instruction set.
inline int rowwise_vector_bytes() { return kIsa.active == Isa::avx512 && PYVAE_DISPATCH_ISA ? 64 : 32; }

// Rows [r0, r1) of rowwise_product_tiles: a leaf kernel, one copy per instruction set (dispatch.h).
template <class T>
void rowwise_product_rows(T* out, const T* inp, const T* W, const T* W_tail, int r0, int r1, int I, int O) {
    return per_isa([&]() PYVAE_KERNEL {
        if (rowwise_vector_bytes() == 64) rowwise_product_tiles<64>(out, inp, W, W_tail, r0, r1, I, O);
        else rowwise_product_tiles<32>(out, inp, W, W_tail, r0, r1, I, O);
    });
}

// Rows are handed to the team in blocks of this many.
constexpr int kRowwiseBlock = 64;

// dense_forward for inference: out (N, O) = act(inp (N, I) @ W (I, O) + b (O)),
// each row's result independent of the others (rowwise_product_tiles).
template <class T>
void dense_forward_rowwise(T* out, const T* inp, const T* W, const T* b, int N, int I, int O, bool hidden,
                           Activation act, int n_threads) {
    const int L = rowwise_vector_bytes() / int(sizeof(T)), first_tail = O - O % L;
    std::vector<T> W_tail(size_t(I) * L, T(0));
    for (int k = 0; k < I; ++k)
        std::copy(W + int64_t(k) * O + first_tail, W + int64_t(k + 1) * O, W_tail.begin() + int64_t(k) * L);
    const int n_blocks = (N + kRowwiseBlock - 1) / kRowwiseBlock;
    parallel_tasks(n_blocks, n_threads, 2.0 * N * double(I) * O, [&](int t) {
        const int r0 = t * kRowwiseBlock, r1 = std::min(N, r0 + kRowwiseBlock);
        rowwise_product_rows(out, inp, W, W_tail.data(), r0, r1, I, O);
        bias_activation(out, O, b, r0, r1, 0, O, hidden, act);
    });
}

// A stack's layer d (its weights and bias in params): out (N, d.n_out) = act(inp @ W + b),
// act applied when `hidden`; row by row (dense_forward_rowwise) when `rowwise`.
template <class T>
void dense_layer_forward(T* out, const T* inp, const T* params, const Dense& d, int N, bool hidden, bool rowwise,
                         Activation act, int n_threads) {
    if (rowwise)
        dense_forward_rowwise(out, inp, params + d.w, params + d.b, N, d.n_in, d.n_out, hidden, act, n_threads);
    else
        dense_forward(out, inp, params + d.w, params + d.b, N, d.n_in, d.n_out, hidden, act, n_threads);
}

// db[lo, hi) += the column sums of d_pre (N, O) over those columns, rows in
// order (one task per column block: the sums do not depend on the thread count).
// The running sums of a strip of columns stay in registers over all rows:
// adding each row into db in memory makes every row wait on the previous
// row's store (~6 us of a small table's 80 us step).
template <class T>
void bias_grad_columns(T* __restrict db, const T* __restrict d_pre, int N, int O, int lo, int hi) {
    return per_isa([&]() PYVAE_KERNEL {
        auto strip = [&](int c, auto width) PYVAE_KERNEL {
            constexpr int W = decltype(width)::value;
            T sum[W];
            for (int j = 0; j < W; ++j) sum[j] = db[c + j];
            for (int n = 0; n < N; ++n) {
                const T* d = d_pre + int64_t(n) * O + c;
#pragma omp simd
                for (int j = 0; j < W; ++j) sum[j] += d[j];
            }
            for (int j = 0; j < W; ++j) db[c + j] = sum[j];
        };
        int c = lo;
        for (; c + 64 <= hi; c += 64) strip(c, std::integral_constant<int, 64>());  // 4 AVX-512 registers of float
        for (; c + 8 <= hi; c += 8) strip(c, std::integral_constant<int, 8>());
        for (int n = 0; n < N; ++n) {  // the last < 8 columns
            const T* d = d_pre + int64_t(n) * O;
            for (int o = c; o < hi; ++o) db[o] += d[o];
        }
    });
}

// Rows [r0, r1), columns [c0, c1) of d_inp (row stride I) times the derivative
// of activation `act` at its output y (same layout): the epilogue of an input
// gradient product.
template <class T>
void activation_grad(T* __restrict d_inp, const T* __restrict y, int I, int r0, int r1, int c0, int c1,
                     Activation act) {
    return per_isa([&]() PYVAE_KERNEL {
        for (int n = r0; n < r1; ++n) {
            T* d = d_inp + int64_t(n) * I;
            const T* yn = y + int64_t(n) * I;
            if (act == Activation::relu) {
#pragma omp simd
                for (int i = c0; i < c1; ++i) d[i] = relu_backward(d[i], yn[i]);
            } else {
#pragma omp simd
                for (int i = c0; i < c1; ++i) d[i] = tanh_backward(d[i], yn[i]);
            }
        }
    });
}

// What dW and db hold when dense_backward runs: anything (the sums are added to
// it: the kernels' contract, and the CUDA twin's), or zeros (a training step's
// gradient, which Adam leaves zeroed). Over zeros a small weight product writes
// (beta = 0) instead of adding, the same bits: OpenBLAS runs its small-matrix
// kernels only with beta = 0 (~4% of a small table's step); above their size
// (about 100^3 multiply-adds) beta = 0 would cost a pass zeroing dW.
enum class GradStore { accumulate, into_zeros };
constexpr double kSmallProductFlops = 2e6;

// d_pre (N, O) is the gradient w.r.t. the layer's pre-activation. Accumulates
// dW (I, O) += inp^T d_pre and db (O) += colsum(d_pre) (`store`: onto what), and
// writes d_inp (N, I) = d_pre W^T when d_inp is not null. When `inp_act`, inp is
// itself the output of activation `act` (a hidden layer below), and d_inp is
// multiplied by its derivative, so it is the gradient w.r.t. that layer's
// pre-activation.
template <class T>
void dense_backward(T* d_inp, T* dW, T* db, const T* d_pre, const T* inp, const T* W, int N, int I, int O,
                    bool inp_act, Activation act, int n_threads, GradStore store = GradStore::accumulate) {
    // The blocks of dW, of d_inp and of the column sums are independent tasks
    // of one parallel pass: one join per layer, and a thread done with its
    // share of one product goes on with the other. Each sum runs over rows in
    // order: the result does not depend on the thread count.
    const bool write = store == GradStore::into_zeros && 2.0 * I * O * N <= kSmallProductFlops;
    const BlockedGemm<T> weight(true, false, I, O, N, inp, I, d_pre, O, write ? T(0) : T(1), dW, O);
    const BlockedGemm<T> input(false, true, N, I, O, d_pre, O, W, O, T(0), d_inp, I);
    const Blocks cols(O);
    const int n_weight = weight.n_tasks(), n_input = d_inp ? input.n_tasks() : 0;
    auto act_grad = [=](int r0, int r1, int c0, int c1) {
        if (inp_act) activation_grad(d_inp, inp, I, r0, r1, c0, c1, act);
    };
    const double flops = weight.flops() + (d_inp ? input.flops() : 0.0);
    parallel_tasks(n_weight + n_input + cols.n, n_threads, flops, [&](int k) {
        if (k < n_weight) return weight.run(k, NoEpilogue());
        if (k < n_weight + n_input) return input.run(k - n_weight, act_grad);
        const int c = k - n_weight - n_input;
        bias_grad_columns(db, d_pre, N, O, cols.lo(c), cols.lo(c + 1));
    });
}

}  // namespace pyvae
