// Row-major matrix products: C (M, N) = op(A) (M, K) @ op(B) (K, N) + beta * C.
// With PYVAE_OPENBLAS the work goes to OpenBLAS (the scipy-openblas32 build,
// whose symbols carry a scipy_ prefix), single-threaded per call; our thread
// team is the only thread pool.
//
// Determinism: C is cut into blocks of rows or columns whose boundaries depend
// only on the shape (never on the thread count), and each block is one serial
// BLAS call; the K sum is never split. One thread runs the same blocks in a
// loop, so every output element is computed the same way whatever n_threads:
// results are bit-identical across thread counts. Blocks are handed out
// dynamically: on a shared machine a thread that lost its core does not hold
// back a fixed half of the work.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/dispatch.h"
#include "cpu/parallel.h"

#ifdef PYVAE_OPENBLAS
#include <cblas.h>
#endif

namespace pyvae {

// The oracle and the fallback when built without BLAS.
template <class T>
void matmul_naive(bool trans_a, bool trans_b, int M, int N, int K, const T* A, int lda,
                  const T* B, int ldb, T beta, T* C, int ldc) {
    for (int i = 0; i < M; ++i) {
        T* c = C + int64_t(i) * ldc;
        for (int j = 0; j < N; ++j) c[j] = beta == T(0) ? T(0) : beta * c[j];
        for (int k = 0; k < K; ++k) {
            const T a = trans_a ? A[int64_t(k) * lda + i] : A[int64_t(i) * lda + k];
            if (!trans_b) {
                const T* b = B + int64_t(k) * ldb;
                for (int j = 0; j < N; ++j) c[j] += a * b[j];
            } else {
                for (int j = 0; j < N; ++j) c[j] += a * B[int64_t(j) * ldb + k];
            }
        }
    }
}

template <class T>
inline void matmul_serial(bool trans_a, bool trans_b, int M, int N, int K, const T* A, int lda,
                          const T* B, int ldb, T beta, T* C, int ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef PYVAE_OPENBLAS
    const auto ta = trans_a ? CblasTrans : CblasNoTrans;
    const auto tb = trans_b ? CblasTrans : CblasNoTrans;
    if constexpr (sizeof(T) == 4)
        scipy_cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    else
        scipy_cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
#else
    matmul_naive(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);
#endif
}

// Below this many FLOPs a piece of work runs on the calling thread: waking the
// team costs more than it saves (the digits model lives here).
constexpr double kParallelFlops = 1.5e6;
// Below this many FLOPs of matrix products a training step runs on one thread
// (Model::train_epoch).
constexpr double kParallelStepFlops = 2e7;
// From this many on, a step runs on the team without timing it first
// (step_threads.h): measured on the 2-vCPU VM whose slow states make a
// 0.5-GFLOP step (784-400-20, batch 128) slower on two threads than on one, a
// 4-GFLOP step (batch 1024) was 1.4-1.9x faster on two in every state seen.
constexpr double kAlwaysParallelStepFlops = 2e9;

// Runs task(k) for k in [0, n_tasks), on up to n_threads threads when the work
// (`flops`, an estimate) is worth it. Tasks must write disjoint memory.
template <class F>
inline void parallel_tasks(int n_tasks, int n_threads, double flops, F&& task) {
    n_threads = std::min(n_threads, thread_cap());
    const int nt = (n_threads > 1 && flops >= kParallelFlops) ? std::min(n_threads, n_tasks) : 1;
    if (nt <= 1) {
        for (int k = 0; k < n_tasks; ++k) task(k);
        return;
    }
    // Tasks go to whichever thread is free (a shared machine may take a core
    // away mid-step); the result does not depend on who runs what.
    ThreadTeam::get().run(n_tasks, nt, task);
}

// How an output dimension of `extent` is cut: a function of the extent alone.
// Two blocks from 128 up (one per core of a 2-core machine), then one more pair
// per 1024, at most 16. Each block repacks the operand it shares with the
// others, so blocks stay large: measured with OpenBLAS on 784-400 shapes, a
// product cut in 2 runs at ~95% of the uncut speed, in 8 pieces of 128 rows at
// ~70%. Boundaries fall on multiples of 8 (a vector of floats).
struct Blocks {
    int extent = 0, n = 1;
    explicit Blocks(int e) : extent(e) {
        n = e >= 128 ? 2 * std::max(1, std::min(8, e / 1024)) : 1;
    }
    int lo(int k) const {
        if (k >= n) return extent;
        return std::min(extent, int((int64_t(k) * extent / n + 4) / 8 * 8));
    }
};

// A product cut into blocks along the larger output dimension.
template <class T>
struct BlockedGemm {
    bool trans_a, trans_b;
    int M, N, K;
    const T* A;
    int lda;
    const T* B;
    int ldb;
    T beta;
    T* C;
    int ldc;
    bool split_rows;
    Blocks blocks;

    BlockedGemm(bool ta, bool tb, int M_, int N_, int K_, const T* A_, int lda_, const T* B_, int ldb_,
                T beta_, T* C_, int ldc_)
        : trans_a(ta), trans_b(tb), M(M_), N(N_), K(K_), A(A_), lda(lda_), B(B_), ldb(ldb_), beta(beta_),
          C(C_), ldc(ldc_), split_rows(M_ >= N_), blocks(M_ >= N_ ? M_ : N_) {}

    int n_tasks() const { return blocks.n; }
    double flops() const { return 2.0 * M * N * K; }

    // Computes block k, then calls epilogue(row_lo, row_hi, col_lo, col_hi) on it
    // while it is still in cache.
    template <class Epilogue>
    void run(int k, Epilogue&& epilogue) const {
        const int lo = blocks.lo(k), hi = blocks.lo(k + 1);
        if (lo >= hi) return;
        if (split_rows) {
            const T* a = trans_a ? A + lo : A + int64_t(lo) * lda;
            matmul_serial(trans_a, trans_b, hi - lo, N, K, a, lda, B, ldb, beta, C + int64_t(lo) * ldc, ldc);
            epilogue(lo, hi, 0, N);
        } else {
            const T* b = trans_b ? B + int64_t(lo) * ldb : B + lo;
            matmul_serial(trans_a, trans_b, M, hi - lo, K, A, lda, b, ldb, beta, C + lo, ldc);
            epilogue(0, M, lo, hi);
        }
    }
};

struct NoEpilogue {
    void operator()(int, int, int, int) const {}
};

template <class T, class Epilogue = NoEpilogue>
void matmul(bool trans_a, bool trans_b, int M, int N, int K, const T* A, int lda, const T* B,
            int ldb, T beta, T* C, int ldc, int n_threads, Epilogue epilogue = Epilogue()) {
    if (M <= 0 || N <= 0) return;
    const BlockedGemm<T> g(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);
    parallel_tasks(g.n_tasks(), n_threads, g.flops(), [&](int k) { g.run(k, epilogue); });
}

inline void init_blas_threads() {
#ifdef PYVAE_OPENBLAS
    scipy_openblas_set_num_threads(1);  // our thread team is the only pool (parallel.h)
#endif
}

}  // namespace pyvae
