// The dense layer, forward and backward: the MLPs of the encoder and the
// decoder are stacks of it (Model::mlp_forward, Model::decoder_backward).
// Products go through matmul.h's blocked GEMM with the bias and activation
// fused into each block while it is in cache.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "config.h"
#include "dispatch.h"
#include "fastmath.h"
#include "matmul.h"

namespace pyvae {

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
                for (int o = c0; o < c1; ++o) {
                    const T v = y[o] + b[o];
                    y[o] = v < T(0) ? T(0) : v;  // std::max(v, 0): NaN stays NaN
                }
            } else if constexpr (std::is_same_v<T, float>) {
#pragma omp simd
                for (int o = c0; o < c1; ++o) y[o] = tanh_unit(y[o] + b[o]);
            } else {  // float64: the oracle of the gradient checks
                for (int o = c0; o < c1; ++o) y[o] = std::tanh(y[o] + b[o]);
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

// Inference computes its products in tiles of this many rows, the last one
// padded with zero rows, so every product has the same shape whatever the
// number of rows: a BLAS rounds a row the same way in any call of one shape,
// but may pick another kernel (OpenBLAS's small-matrix kernels for AVX-512,
// another split of the K sum) for another shape. A row's result then never
// depends on the rows it arrives with. 64 rows: a multiple of every kernel's
// row unroll, and, measured on MNIST's 784-400 layer with one thread, within a
// few percent of one product over thousands of rows (benchmarks/ROW_TILES.md).
constexpr int kRowTile = 64;

// dense_forward, with each row's result independent of the others (kRowTile).
template <class T>
void dense_forward_rowwise(T* out, const T* inp, const T* W, const T* b, int N, int I, int O, bool hidden,
                           Activation act, int n_threads) {
    const int full = N / kRowTile, tail = N - full * kRowTile, n_tiles = full + (tail > 0);
    std::vector<T> tail_in, tail_out;
    if (tail) {
        tail_in.assign(int64_t(kRowTile) * I, T(0));
        tail_out.resize(int64_t(kRowTile) * O);
        std::copy(inp + int64_t(full) * kRowTile * I, inp + int64_t(N) * I, tail_in.begin());
    }
    const double flops = 2.0 * n_tiles * kRowTile * double(I) * O;
    parallel_tasks(n_tiles, n_threads, flops, [&](int t) {
        const int r0 = t * kRowTile;
        if (t < full) {
            matmul_serial(false, false, kRowTile, O, I, inp + int64_t(r0) * I, I, W, O, T(0), out + int64_t(r0) * O, O);
        } else {
            matmul_serial(false, false, kRowTile, O, I, tail_in.data(), I, W, O, T(0), tail_out.data(), O);
            std::copy(tail_out.begin(), tail_out.begin() + int64_t(tail) * O, out + int64_t(r0) * O);
        }
        bias_activation(out, O, b, r0, std::min(N, r0 + kRowTile), 0, O, hidden, act);
    });
}

// db[lo, hi) += the column sums of d_pre (N, O) over those columns, rows in
// order (one task per column block: the sums do not depend on the thread count).
template <class T>
void bias_grad_columns(T* __restrict db, const T* __restrict d_pre, int N, int O, int lo, int hi) {
    return per_isa([&]() PYVAE_KERNEL {
        for (int n = 0; n < N; ++n) {
            const T* d = d_pre + int64_t(n) * O;
#pragma omp simd
            for (int o = lo; o < hi; ++o) db[o] += d[o];
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
                for (int i = c0; i < c1; ++i) d[i] = yn[i] > T(0) ? d[i] : T(0);
            } else {
#pragma omp simd
                for (int i = c0; i < c1; ++i) d[i] *= T(1) - yn[i] * yn[i];
            }
        }
    });
}

// d_pre (N, O) is the gradient w.r.t. the layer's pre-activation. Accumulates
// dW (I, O) += inp^T d_pre and db (O) += colsum(d_pre), and writes d_inp (N, I) =
// d_pre W^T when d_inp is not null. When `inp_act`, inp is itself the output of
// activation `act` (a hidden layer below), and d_inp is multiplied by its
// derivative, so it is the gradient w.r.t. that layer's pre-activation.
template <class T>
void dense_backward(T* d_inp, T* dW, T* db, const T* d_pre, const T* inp, const T* W, int N, int I, int O,
                    bool inp_act, Activation act, int n_threads) {
    // The blocks of dW, of d_inp and of the column sums are independent tasks
    // of one parallel pass: one join per layer, and a thread done with its
    // share of one product goes on with the other. Each sum runs over rows in
    // order: the result does not depend on the thread count.
    const BlockedGemm<T> weight(true, false, I, O, N, inp, I, d_pre, O, T(1), dW, O);
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
