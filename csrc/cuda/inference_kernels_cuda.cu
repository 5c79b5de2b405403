// The inference kernels of the CUDA engine (decoder means, draws, per-row
// scores), each the twin of a loop in model_inference.h; see kernels_cuda.cuh
// for their contracts.
#include <cmath>

#include "kernels_cuda.cuh"
#include "launch_cuda.cuh"

namespace pyvae {

using namespace launch;

namespace {

__global__ void sigmoid_kernel(float* out, int64_t n) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= n) return;
    out[k] = sigmoid(out[k]);
}

__global__ void continuous_bernoulli_mean_kernel(float* out, int64_t n) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= n) return;
    out[k] = continuous_bernoulli_mean(out[k]);
}

__global__ void sample_prior_kernel(float* z, int64_t N, int Z, int64_t row0, uint64_t seed) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= N * Z) return;
    const int64_t i = row0 + k / Z;
    z[k] = float(standard_normal(combine_keys(seed, uint64_t(i)), uint64_t(k % Z)));
}

__global__ void sample_observations_kernel(float* x, const float* noise_lv, float variance_floor, int64_t N, int D,
                                           int64_t row0, uint64_t seed, Likelihood likelihood) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= N * D) return;
    const int64_t i = k / D;
    const int c = int(k % D);
    const uint64_t key = combine_keys(seed, uint64_t(row0 + i));
    if (likelihood == Likelihood::bernoulli) {
        x[k] = standard_uniform(key, uint64_t(c)) < double(x[k]) ? 1.f : 0.f;
    } else if (likelihood == Likelihood::continuous_bernoulli) {  // x holds the logits here
        x[k] = continuous_bernoulli_inverse_cdf(x[k], float(standard_uniform(key, uint64_t(c))));
    } else {
        const float lv = noise_lv[likelihood == Likelihood::gaussian_isotropic ? 0 : c];
        x[k] += sqrtf(floored_variance(lv, variance_floor)) * float(standard_normal(key, uint64_t(c)));
    }
}

__global__ void score_rows_kernel(double* out, const double* recon, const double* kl, const double* kl_analytic,
                                  int N, int S, bool importance, bool analytic) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    if (importance) {  // log-mean-exp, shifted by the largest term
        double top = -INFINITY;
        for (int s = 0; s < S; ++s) {
            const int64_t r = int64_t(s) * N + i;
            const double t = recon[r] - kl[r];
            top = top < t ? t : top;
        }
        double acc = 0;
        for (int s = 0; s < S; ++s) {
            const int64_t r = int64_t(s) * N + i;
            acc += exp(recon[r] - kl[r] - top);
        }
        out[i] = isinf(top) ? top : top + log(acc / S);  // every term -inf: -inf, not NaN
    } else {
        double rec = 0, k = 0;
        for (int s = 0; s < S; ++s) {
            rec += recon[int64_t(s) * N + i];
            k += kl[int64_t(s) * N + i];
        }
        k = analytic ? kl_analytic[i] : k / S;
        out[i] = rec / S - k;
    }
}

__global__ void fill_kernel(float* p, float value, int64_t n) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k < n) p[k] = value;
}

}  // namespace

void sigmoid_cuda(cudaStream_t stream, float* out, int64_t n) {
    if (n <= 0) return;
    sigmoid_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, n);
    check_launch("sigmoid_kernel");
}

void continuous_bernoulli_mean_cuda(cudaStream_t stream, float* out, int64_t n) {
    if (n <= 0) return;
    continuous_bernoulli_mean_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, n);
    check_launch("continuous_bernoulli_mean_kernel");
}

void sample_prior_cuda(cudaStream_t stream, float* z, int64_t N, int Z, int64_t row0, uint64_t seed) {
    if (N * Z <= 0) return;
    sample_prior_kernel<<<blocks_for(N * Z), kThreads, 0, stream>>>(z, N, Z, row0, seed);
    check_launch("sample_prior_kernel");
}

void sample_observations_cuda(cudaStream_t stream, float* x, const float* noise_logvar, float variance_floor,
                              int64_t N, int D, int64_t row0, uint64_t seed, Likelihood likelihood) {
    if (N * D <= 0) return;
    sample_observations_kernel<<<blocks_for(N * D), kThreads, 0, stream>>>(x, noise_logvar, variance_floor, N, D,
                                                                            row0, seed, likelihood);
    check_launch("sample_observations_kernel");
}

void score_rows_cuda(cudaStream_t stream, double* out, const double* recon, const double* kl,
                     const double* kl_analytic, int N, int S, bool importance, bool analytic) {
    if (N <= 0) return;
    score_rows_kernel<<<blocks_for(N), kThreads, 0, stream>>>(out, recon, kl, kl_analytic, N, S, importance, analytic);
    check_launch("score_rows_kernel");
}

void fill_cuda(cudaStream_t stream, float* p, float value, int64_t n) {
    if (n <= 0) return;
    fill_kernel<<<blocks_for(n), kThreads, 0, stream>>>(p, value, n);
    check_launch("fill_kernel");
}

}  // namespace pyvae
