// The inference kernels of the CUDA engine (decoder means, draws, per-row
// scores), each the twin of a loop in model_inference.h; see kernels_cuda.cuh
// for their contracts. As in kernels_cuda.cu, the arithmetic is the CPU's
// PYVAE_HD functions (observation.h, likelihood_math.h, elbo.h, rng.h).
#include <cmath>
#include <stdexcept>

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

// Entry k of row i of x (N, D) draws from counter k of the row's key
// combine_keys(seed, row0 + i), as observation_draw_row: one kernel per likelihood.

// x holds the means sigmoid(a) here.
__global__ void bernoulli_draw_kernel(float* x, int64_t N, int D, int64_t row0, uint64_t seed) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= N * D) return;
    const uint64_t key = combine_keys(seed, uint64_t(row0 + k / D));
    x[k] = bernoulli_draw(x[k], standard_uniform(key, uint64_t(k % D)));
}

// x holds the logits here.
__global__ void continuous_bernoulli_draw_kernel(float* x, int64_t N, int D, int64_t row0, uint64_t seed) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= N * D) return;
    const uint64_t key = combine_keys(seed, uint64_t(row0 + k / D));
    x[k] = continuous_bernoulli_inverse_cdf(x[k], float(standard_uniform(key, uint64_t(k % D))));
}

// x holds the means; feature c's log-variance is lv[c * lv_stride] (stride 0: shared).
__global__ void gaussian_draw_kernel(float* x, const float* lv, int lv_stride, float variance_floor, int64_t N, int D,
                                     int64_t row0, uint64_t seed) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= N * D) return;
    const int c = int(k % D);
    const uint64_t key = combine_keys(seed, uint64_t(row0 + k / D));
    const float sd = gaussian_sd(gaussian_feature(lv[c * lv_stride], variance_floor).inv_var);
    x[k] = gaussian_draw(x[k], sd, standard_normal(key, uint64_t(c)));
}

// One thread per row: the loop of Model::score.
__global__ void score_rows_kernel(double* out, const double* recon, const double* kl, const double* kl_analytic,
                                  int N, int S, bool importance, bool analytic) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    out[i] = importance ? importance_bound_forward(recon, kl, i, N, S)
                        : elbo_of(elbo_forward(recon, kl, kl_analytic, i, N, S, !analytic));
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
    const unsigned blocks = blocks_for(N * D);
    switch (likelihood) {
        case Likelihood::bernoulli:
            bernoulli_draw_kernel<<<blocks, kThreads, 0, stream>>>(x, N, D, row0, seed);
            return check_launch("bernoulli_draw_kernel");
        case Likelihood::continuous_bernoulli:
            continuous_bernoulli_draw_kernel<<<blocks, kThreads, 0, stream>>>(x, N, D, row0, seed);
            return check_launch("continuous_bernoulli_draw_kernel");
        case Likelihood::gaussian:
        case Likelihood::gaussian_isotropic: {
            const int stride = likelihood == Likelihood::gaussian ? 1 : 0;
            gaussian_draw_kernel<<<blocks, kThreads, 0, stream>>>(x, noise_logvar, stride, variance_floor, N, D, row0,
                                                                  seed);
            return check_launch("gaussian_draw_kernel");
        }
        case Likelihood::mixed: break;
    }
    throw std::invalid_argument("the CUDA engine has no per-column likelihoods (likelihood='mixed')");
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
