// The dense layer, forward and backward: the MLPs of the encoder and the
// decoder are stacks of it (Model::mlp_forward, Model::decoder_backward).
// Products go through matmul.h's blocked GEMM with the bias and activation
// fused into each block while it is in cache.
#pragma once
#include <cstdint>

#include "config.h"
#include "dispatch.h"
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
            } else {
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
