// Row-major matrix products: C (M, N) = op(A) (M, K) @ op(B) (K, N) + beta * C.
// With PYVAE_OPENBLAS the work goes to OpenBLAS (the scipy-openblas32 build,
// whose symbols carry a scipy_ prefix), single-threaded per call; the
// OpenMP team splits C into blocks of rows or columns, so there is one thread
// pool and each output element is computed the same way whatever the thread
// count (bit-identical results across n_threads).
#pragma once
#include <algorithm>
#include <cstdint>

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

// Splits the larger output dimension into one block per thread (multiples of 16,
// one AVX-512 register of floats), each block a serial product.
template <class T>
void matmul(bool trans_a, bool trans_b, int M, int N, int K, const T* A, int lda, const T* B,
            int ldb, T beta, T* C, int ldc, int n_threads) {
    const double flops = 2.0 * M * N * K;
    if (n_threads <= 1 || flops < 2e5) {
        matmul_serial(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const bool split_rows = M >= N;
    const int extent = split_rows ? M : N;
    const int n_blocks = std::min(n_threads, (extent + 15) / 16);
    const int block = ((extent + n_blocks - 1) / n_blocks + 15) / 16 * 16;
#pragma omp parallel for num_threads(n_blocks) schedule(static)
    for (int blk = 0; blk < n_blocks; ++blk) {
        const int lo = blk * block, hi = std::min(extent, lo + block);
        if (lo >= hi) continue;
        if (split_rows) {
            const T* a = trans_a ? A + lo : A + int64_t(lo) * lda;
            matmul_serial(trans_a, trans_b, hi - lo, N, K, a, lda, B, ldb, beta,
                          C + int64_t(lo) * ldc, ldc);
        } else {
            const T* b = trans_b ? B + int64_t(lo) * ldb : B + lo;
            matmul_serial(trans_a, trans_b, M, hi - lo, K, A, lda, b, ldb, beta, C + lo, ldc);
        }
    }
}

inline void init_blas_threads() {
#ifdef PYVAE_OPENBLAS
    scipy_openblas_set_num_threads(1);  // our OpenMP team is the only pool
#endif
}

}  // namespace pyvae
