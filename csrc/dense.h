// The dense layer, forward and backward: the MLPs of the encoder and the
// decoder are stacks of it (Model::mlp_forward, Model::decoder_backward).
// Products go through matmul.h's blocked GEMM with the bias and activation
// fused into each block while it is in cache.
#pragma once
#include <cstdint>

#include "config.h"
#include "matmul.h"

namespace pyvae {

// out (N, O) = act(inp (N, I) @ W (I, O) + b (O)); act is applied when `hidden`.
template <class T>
void dense_forward(T* out, const T* inp, const T* W, const T* b, int N, int I, int O,
                   bool hidden, Activation act, int n_threads) {
    // Bias and activation fused into the product: each block of the output gets
    // them right after its BLAS call, while it is still in cache.
    auto bias_act = [=](int r0, int r1, int c0, int c1) {
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
    };
    matmul<T>(false, false, N, O, I, inp, I, W, O, T(0), out, O, n_threads, bias_act);
}

// db[lo, hi) += the column sums of d_pre (N, O) over those columns, rows in
// order (one task per column block: the sums do not depend on the thread count).
template <class T>
inline void bias_grad_columns(T* db, const T* d_pre, int N, int O, int lo, int hi) {
    for (int n = 0; n < N; ++n) {
        const T* d = d_pre + int64_t(n) * O;
#pragma omp simd
        for (int o = lo; o < hi; ++o) db[o] += d[o];
    }
}

// d_pre (N, O) is the gradient w.r.t. the layer's pre-activation. Accumulates
// dW (I, O) += inp^T d_pre and db (O) += colsum(d_pre), and writes d_inp (N, I) =
// d_pre W^T when d_inp is not null. When `inp_act`, inp is itself the output of
// activation `act` (a hidden layer below), and d_inp is multiplied by its
// derivative, so it is the gradient w.r.t. that layer's pre-activation.
template <class T>
void dense_backward(T* d_inp, T* dW, T* db, const T* d_pre, const T* inp, const T* W, int N, int I, int O,
                    bool inp_act, Activation act, int n_threads) {
    // dW by blocks, and the column sums by blocks of columns, in one parallel
    // pass. Each sum runs over rows in order: the result does not depend on the
    // thread count.
    const BlockedGemm<T> g(true, false, I, O, N, inp, I, d_pre, O, T(1), dW, O);
    const Blocks cols(O);
    const int n_gemm = g.n_tasks();
    parallel_tasks(n_gemm + cols.n, n_threads, g.flops(), [&](int k) {
        if (k < n_gemm) {
            g.run(k, NoEpilogue());
            return;
        }
        bias_grad_columns(db, d_pre, N, O, cols.lo(k - n_gemm), cols.lo(k - n_gemm + 1));
    });
    if (!d_inp) return;
    auto act_grad = [=](int r0, int r1, int c0, int c1) {
        if (!inp_act) return;
        for (int n = r0; n < r1; ++n) {
            T* d = d_inp + int64_t(n) * I;
            const T* y = inp + int64_t(n) * I;
            if (act == Activation::relu) {
#pragma omp simd
                for (int i = c0; i < c1; ++i) {
                    const T di = d[i];
                    d[i] = y[i] > T(0) ? di : T(0);
                }
            } else {
#pragma omp simd
                for (int i = c0; i < c1; ++i) d[i] *= T(1) - y[i] * y[i];
            }
        }
    };
    matmul<T>(false, true, N, I, O, d_pre, O, W, O, T(0), d_inp, I, n_threads, act_grad);
}

}  // namespace pyvae
