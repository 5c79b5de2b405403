// CUDA kernels of the VAE's training step, each the twin of a CPU function of
// the core (see kernels_cuda.cuh for shapes and contracts). The arithmetic is
// the CPU's own: every formula is a PYVAE_HD function of model/ (hd.h), and a
// kernel here is only the loop over entries, rows or draws that calls it.
// Elementwise work is one thread per element; per-row sums are one block per
// row reduced by a fixed-shape tree; column sums go to cuBLAS gemv against a
// vector of ones. Nothing sums floats with atomics, so every run repeats bit for bit.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels_cuda.cuh"
#include "launch_cuda.cuh"

namespace pyvae {

using namespace launch;

void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
    if (e == cudaSuccess) return;
    // The runtime also keeps the error as the thread's last error; clear it, or
    // the next launch check would report this one again (a failed cudaMalloc
    // is not sticky: the model that threw is gone, the next one must work).
    (void)cudaGetLastError();
    throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) +
                             ") in " + what + " at " + file + ":" + std::to_string(line));
}

void check_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
    if (s == CUBLAS_STATUS_SUCCESS) return;
    throw std::runtime_error(std::string("cuBLAS error: ") + cublasGetStatusString(s) + " in " + what + " at " +
                             file + ":" + std::to_string(line));
}

namespace {

// The index of this thread in a one-dimensional grid.
__device__ inline int64_t thread_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }

// ---- layers: the activations of dense.h ----------------------------------------------

template <Activation A>
__device__ inline float activation_forward(float v) {
    if constexpr (A == Activation::relu) return relu(v);
    else return simd_tanh(v);
}
template <Activation A>
__device__ inline float activation_backward(float d, float y) {
    if constexpr (A == Activation::relu) return relu_backward(d, y);
    else return tanh_backward(d, y);
}

// y (N, O) += b; then act when kHidden. The twin of bias_activation.
template <bool kHidden, Activation A>
__global__ void bias_activation_kernel(float* y, const float* b, int64_t n, int O) {
    const int64_t k = thread_index();
    if (k >= n) return;
    const float v = y[k] + b[k % O];
    y[k] = kHidden ? activation_forward<A>(v) : v;
}

// d (n) times the activation's derivative at the saved output y (n). The twin of activation_grad.
template <Activation A>
__global__ void activation_grad_kernel(float* d, const float* y, int64_t n) {
    const int64_t k = thread_index();
    if (k < n) d[k] = activation_backward<A>(d[k], y[k]);
}

// ---- noise and data ------------------------------------------------------------------

__global__ void fill_noise_kernel(float* noise, const uint64_t* keys, int N, int S, int Z, bool uniform) {
    const int64_t k = thread_index();
    if (k >= int64_t(S) * N * Z) return;
    const int j = int(k % Z);
    const int64_t r = k / Z;  // s * N + i
    const int i = int(r % N), s = int(r / N);
    noise[k] = base_noise<float>(keys[i], s, Z, j, uniform);
}

__global__ void train_keys_kernel(uint64_t* keys, const StepState* st, int N) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    keys[i] = batch_row_key(st->seed, st->step, i);
}

// As Model::row_keys: the row's bytes hashed, then combined with the seed.
__global__ void row_keys_kernel(uint64_t* keys, const float* X, int N, int D, uint64_t seed) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    keys[i] = combine_keys(seed, hash_bytes(X + int64_t(i) * D, sizeof(float) * size_t(D)));
}

__global__ void gather_rows_kernel(float* x_obs, float* x_enc, const float* X, const int64_t* order,
                                   const StepState* st, int N, int D, bool missing) {
    const int64_t k = thread_index();
    if (k >= int64_t(N) * D) return;
    const int64_t i = k / D, c = k % D;
    const float v = X[order[st->cursor + i] * D + c];
    x_obs[k] = v;
    if (missing) x_enc[k] = isnan(v) ? 0.f : v;
}

__global__ void mask_missing_kernel(float* x_enc, const float* x, int64_t n) {
    const int64_t k = thread_index();
    if (k >= n) return;
    x_enc[k] = isnan(x[k]) ? 0.f : x[k];
}

// ---- the posterior: posterior.h's entry functions, one thread per entry ------------------

__global__ void logvar_clamp_forward_kernel(float* head, int N, int Z) {
    const int64_t k = thread_index();
    if (k >= int64_t(N) * Z) return;
    float& lv = head[(k / Z) * 2 * Z + Z + k % Z];
    lv = logvar_clamp(lv);
}

__global__ void logvar_clamp_backward_kernel(float* d_head, const float* head, int N, int Z) {
    const int64_t k = thread_index();
    if (k >= int64_t(N) * Z) return;
    const int64_t at = (k / Z) * 2 * Z + Z + k % Z;
    if (logvar_clamp_holds(head[at])) d_head[at] = 0.f;
}

__global__ void reparameterize_forward_kernel(float* eps, float* z, const float* head, const float* noise, int N,
                                              int S, int Z, Posterior posterior) {
    const int64_t k = thread_index();
    if (k >= int64_t(S) * N * Z) return;
    const int j = int(k % Z);
    const int i = int((k / Z) % N);
    const float* mu = head + int64_t(i) * 2 * Z;
    const float e = standardized_draw(posterior, noise[k]);
    eps[k] = e;
    z[k] = reparameterize_entry(mu[j], hd_exp(0.5f * mu[Z + j]), e);
}

// d_head's entries (i, j) of mu and logvar += the sum of grad(r, lv) over row i's
// draws r = s * N + i, in order as on the CPU: one thread per (i, j).
template <class DrawGrad>
__device__ void add_over_draws(float* d_head, const float* head, int N, int S, int Z, const DrawGrad& grad) {
    const int64_t k = thread_index();
    if (k >= int64_t(N) * Z) return;
    const int64_t i = k / Z;
    float* d = d_head + i * 2 * Z + k % Z;  // d[0] = d mu, d[Z] = d logvar
    const float lv = head[i * 2 * Z + Z + k % Z];
    float dmu = d[0], dlv = d[Z];
    for (int s = 0; s < S; ++s) {
        const HeadGrad<float> g = grad(int64_t(s) * N + i, lv);
        dmu += g.mu;
        dlv += g.logvar;
    }
    d[0] = dmu;
    d[Z] = dlv;
}

__global__ void reparameterize_backward_kernel(float* d_head, const float* dz, const float* head, const float* eps,
                                               int N, int S, int Z) {
    const int j = int(thread_index() % Z);
    add_over_draws(d_head, head, N, S, Z, [&](int64_t r, float lv) {
        const int64_t at = r * Z + j;
        return HeadGrad<float>{dz[at], reparameterize_logvar_grad(dz[at], hd_exp(0.5f * lv), eps[at])};
    });
}

// One thread per row.
__global__ void kl_analytic_forward_kernel(double* kl_analytic, const float* head, int N, int Z) {
    const int i = int(thread_index());
    if (i >= N) return;
    const float* mu = head + int64_t(i) * 2 * Z;
    float acc = 0.f;
    for (int j = 0; j < Z; ++j) acc += kl_analytic_entry(mu[j], mu[Z + j], hd_exp(mu[Z + j]));
    kl_analytic[i] = kl_analytic_row(double(acc));
}

__global__ void kl_analytic_backward_kernel(float* d_head, const float* head, int N, int Z, float weight) {
    const int64_t k = thread_index();
    if (k >= int64_t(N) * Z) return;
    const int64_t mu = (k / Z) * 2 * Z + k % Z;
    const HeadGrad<float> g = kl_analytic_grad(head[mu], hd_exp(head[mu + Z]), weight);
    d_head[mu] = g.mu;
    d_head[mu + Z] = g.logvar;
}

// One thread per draw row r = s * N + i.
__global__ void kl_mc_forward_kernel(double* kl, const float* head, const float* eps, const float* z, int N, int S,
                                     int Z, Posterior posterior) {
    const int64_t r = thread_index();
    if (r >= int64_t(S) * N) return;
    const float* lv = head + (r % N) * 2 * Z + Z;
    float acc = 0.f;
    for (int j = 0; j < Z; ++j) acc += kl_mc_entry(posterior, eps[r * Z + j], lv[j], z[r * Z + j]);
    kl[r] = double(acc);
}

// One thread per draw entry (S, N, Z); those of the first N rows also initialize d_head.
__global__ void kl_mc_backward_kernel(float* d_head, float* dz, const float* z, int N, int S, int Z, float beta,
                                      float w_row, float w_draw, bool pathwise) {
    const int64_t k = thread_index();
    if (k >= int64_t(S) * N * Z) return;
    if (k < int64_t(N) * Z) {
        const int64_t mu = (k / Z) * 2 * Z + k % Z;
        d_head[mu] = 0.f;
        d_head[mu + Z] = pathwise ? kl_mc_logvar_grad(beta, w_row) : 0.f;
    }
    if (pathwise) dz[k] = dz[k] + kl_mc_z_grad(z[k], beta * w_draw);
}

__global__ void score_function_backward_kernel(float* d_head, const float* head, const float* eps,
                                               const double* recon, const double* kl, int N, int S, int Z,
                                               Posterior posterior, bool mc, float beta, float w_draw,
                                               const double* baseline) {
    const int j = int(thread_index() % Z);
    add_over_draws(d_head, head, N, S, Z, [&](int64_t r, float lv) {
        const float c = score_function_weight(learning_signal(recon, kl, r, mc, double(beta)), *baseline, w_draw);
        return score_function_grad(posterior, eps[r * Z + j], lv, c);
    });
}

// ---- the likelihoods: likelihood_math.h's entry functions ------------------------------
// Each likelihood is a small functor (its entry's log p, its gradient) given to
// the two loops below, so each instantiation is that likelihood's own kernel.

struct BernoulliEntry {
    __device__ float log_p(int, float a, float x) const { return bernoulli_log_p(a, x, bernoulli_exp(a)); }
    __device__ float grad(int, float a, float x, float weight) const {
        return weight * bernoulli_grad(a, x, bernoulli_exp(a));
    }
};

// The Bernoulli's terms plus log C(a) (continuous_bernoulli_forward / _backward).
struct ContinuousBernoulliEntry {
    __device__ float log_p(int k, float a, float x) const {
        return BernoulliEntry().log_p(k, a, x) + continuous_bernoulli_log_norm(a);
    }
    __device__ float grad(int k, float a, float x, float weight) const {
        return BernoulliEntry().grad(k, a, x, weight) - weight * continuous_bernoulli_log_norm_grad(a);
    }
};

// Feature k's log-variance is lv[k * lv_stride] (stride 0: one shared by all).
struct GaussianEntry {
    const float* lv;
    int lv_stride;
    float floor;
    __device__ GaussianFeature<float> feature(int k) const { return gaussian_feature(lv[k * lv_stride], floor); }
    __device__ float log_p(int k, float m, float x) const {
        const GaussianFeature<float> f = feature(k);
        return gaussian_log_p(x - m, f.log_var, f.inv_var);
    }
    __device__ float grad(int k, float m, float x, float weight) const {
        return gaussian_grad(x - m, feature(k).inv_var, weight);
    }
};

// recon[r] = sum of log p over row r's observed entries: one block per draw row r
// of out (S*N, D), against row r % N of x.
template <int BLOCK, class Entry>
__global__ void likelihood_forward_kernel(double* recon, const float* out, const float* x, int N, int D, bool missing,
                                          Entry entry) {
    const int64_t r = blockIdx.x;
    const float* xi = x + (r % N) * D;
    const float* a = out + r * D;
    float acc = 0.f;
    for (int k = threadIdx.x; k < D; k += BLOCK)
        if (!(missing && isnan(xi[k]))) acc += entry.log_p(k, a[k], xi[k]);
    acc = block_sum<float, BLOCK>(acc);
    if (threadIdx.x == 0) recon[r] = double(acc);
}

// d_out (S*N, D) = weight * d(-log p)/d(out), 0 where x is missing: one thread per entry.
template <class Entry>
__global__ void likelihood_backward_kernel(float* d_out, const float* out, const float* x, int64_t n, int N, int D,
                                           float weight, bool missing, Entry entry) {
    const int64_t at = thread_index();
    if (at >= n) return;
    const int k = int(at % D);
    const float xv = x[(at / D) % N * D + k];
    d_out[at] = missing && isnan(xv) ? 0.f : entry.grad(k, out[at], xv, weight);
}

// bernoulli_forward_backward: both from one e^-|a| per entry, one block per draw row.
template <int BLOCK>
__global__ void bernoulli_forward_backward_kernel(double* recon, float* d_out, const float* out, const float* x, int N,
                                                  int D, float weight, bool missing) {
    const int64_t r = blockIdx.x;
    const float* xi = x + (r % N) * D;
    const float* a = out + r * D;
    float* d = d_out + r * D;
    float acc = 0.f;
    for (int k = threadIdx.x; k < D; k += BLOCK) {
        if (missing && isnan(xi[k])) {
            d[k] = 0.f;
            continue;
        }
        const float e = bernoulli_exp(a[k]);
        acc += bernoulli_log_p(a[k], xi[k], e);
        d[k] = weight * bernoulli_grad(a[k], xi[k], e);
    }
    acc = block_sum<float, BLOCK>(acc);
    if (threadIdx.x == 0) recon[r] = double(acc);
}

// The Gaussians' terms (S*N, D) of the log-variance gradient, summed over rows by
// the caller: gaussian_logvar_term * learned_share, 0 where x is missing.
__global__ void gaussian_logvar_terms_kernel(float* terms, const float* out, const float* x, int64_t n, int N, int D,
                                             bool missing, GaussianEntry entry) {
    const int64_t at = thread_index();
    if (at >= n) return;
    const int k = int(at % D);
    const float xv = x[(at / D) % N * D + k];
    if (missing && isnan(xv)) {
        terms[at] = 0.f;
        return;
    }
    const GaussianFeature<float> f = entry.feature(k);
    terms[at] = gaussian_logvar_term(xv - out[at], f.inv_var) * f.learned_share;
}

// dst[0] += sum(column (n)), one block.
template <int BLOCK>
__global__ void sum_into_kernel(float* dst, const float* column, int n) {
    float acc = 0.f;
    for (int k = threadIdx.x; k < n; k += BLOCK) acc += column[k];
    acc = block_sum<float, BLOCK>(acc);
    if (threadIdx.x == 0) dst[0] += acc;
}

// ---- the step: elbo.h and adam.h ---------------------------------------------------------

template <int BLOCK>
__global__ void batch_stats_kernel(const double* recon, const double* kl, const double* kl_analytic, int N, int S,
                                   bool mc, double beta, StepState* st, bool training) {
    if (training && st->non_finite) return;  // uniform across the block
    double rec_sum = 0, kl_sum = 0, loss_sum = 0, f_sum = 0;
    for (int i = threadIdx.x; i < N; i += BLOCK) {
        const ElboTerms t = elbo_forward(recon, kl, kl_analytic, i, N, S, mc);
        rec_sum += t.recon;
        kl_sum += t.kl;
        loss_sum += elbo_loss(t, beta);
        for (int s = 0; s < S; ++s) f_sum += learning_signal(recon, kl, int64_t(s) * N + i, mc, beta);
    }
    rec_sum = block_sum<double, BLOCK>(rec_sum);
    kl_sum = block_sum<double, BLOCK>(kl_sum);
    loss_sum = block_sum<double, BLOCK>(loss_sum);
    f_sum = block_sum<double, BLOCK>(f_sum);
    if (threadIdx.x != 0) return;
    const double loss = loss_sum / N;
    st->loss = loss;
    st->recon = rec_sum;
    st->kl = kl_sum;
    st->mean_f = f_sum / (double(S) * N);
    if (!training) return;
    if (!isfinite(loss)) {
        st->non_finite = 1;
        return;
    }
    st->step += 1;
    st->cursor += N;
    st->adam_step = adam_step<float>(st->adam, st->step);
    st->baseline = baseline_update(st->baseline, st->mean_f, st->step);
    st->epoch_recon += rec_sum;
    st->epoch_kl += kl_sum;
    st->epoch_elbo += elbo_of({rec_sum, kl_sum});
    st->epoch_rows += N;
}

__global__ void adam_update_kernel(float* params, const float* grad, float* m, float* v, const uint8_t* decay,
                                   int64_t P, const StepState* st) {
    const int64_t k = thread_index();
    if (k >= P || st->non_finite) return;
    adam_element(params[k], grad[k], m[k], v[k], decay[k] ? float(st->adam.alpha) : 0.f, st->adam_step);
}

}  // namespace

// ---- launchers -------------------------------------------------------------------------

// Row-major products through column-major cuBLAS: a row-major (R, C) matrix is
// a column-major (C, R) one, so C = A B becomes C^T = B^T A^T with the operands swapped.
void dense_forward_cuda(cublasHandle_t blas, cudaStream_t stream, float* out, const float* inp, const float* W,
                        const float* b, int N, int I, int O, bool hidden, Activation act) {
    if (N <= 0) return;
    const float one = 1.f, zero = 0.f;
    PYVAE_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, O, N, I, &one, W, O, inp, I, &zero, out, O));
    const int64_t n = int64_t(N) * O;
    if (!hidden) bias_activation_kernel<false, Activation::relu><<<blocks_for(n), kThreads, 0, stream>>>(out, b, n, O);
    else if (act == Activation::relu)
        bias_activation_kernel<true, Activation::relu><<<blocks_for(n), kThreads, 0, stream>>>(out, b, n, O);
    else bias_activation_kernel<true, Activation::tanh><<<blocks_for(n), kThreads, 0, stream>>>(out, b, n, O);
    check_launch("bias_activation_kernel");
}

void dense_backward_cuda(cublasHandle_t blas, cudaStream_t stream, float* d_inp, float* dW, float* db,
                         const float* d_pre, const float* inp, const float* W, const float* ones, int N, int I, int O,
                         bool inp_act, Activation act) {
    if (N <= 0) return;
    const float one = 1.f, zero = 0.f;
    // dW^T (O, I) += d^T (O, N) inp (N, I)
    PYVAE_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, O, I, N, &one, d_pre, O, inp, I, &one, dW, O));
    // db (O) += d^T (O, N) ones (N)
    PYVAE_CUBLAS_CHECK(cublasSgemv(blas, CUBLAS_OP_N, O, N, &one, d_pre, O, ones, 1, &one, db, 1));
    if (!d_inp) return;
    // d_inp^T (I, N) = W (I, O) d^T (O, N)
    PYVAE_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, I, N, O, &one, W, O, d_pre, O, &zero, d_inp, I));
    if (!inp_act) return;
    const int64_t n = int64_t(N) * I;
    if (act == Activation::relu)
        activation_grad_kernel<Activation::relu><<<blocks_for(n), kThreads, 0, stream>>>(d_inp, inp, n);
    else activation_grad_kernel<Activation::tanh><<<blocks_for(n), kThreads, 0, stream>>>(d_inp, inp, n);
    check_launch("activation_grad_kernel");
}

void fill_noise_cuda(cudaStream_t stream, float* noise, const uint64_t* keys, int N, int S, int Z, bool uniform) {
    const int64_t n = int64_t(S) * N * Z;
    if (n <= 0) return;
    fill_noise_kernel<<<blocks_for(n), kThreads, 0, stream>>>(noise, keys, N, S, Z, uniform);
    check_launch("fill_noise_kernel");
}

void train_keys_cuda(cudaStream_t stream, uint64_t* keys, const StepState* state, int N) {
    if (N <= 0) return;
    train_keys_kernel<<<blocks_for(N), kThreads, 0, stream>>>(keys, state, N);
    check_launch("train_keys_kernel");
}

void row_keys_cuda(cudaStream_t stream, uint64_t* keys, const float* X, int N, int D, uint64_t seed) {
    if (N <= 0) return;
    row_keys_kernel<<<blocks_for(N), kThreads, 0, stream>>>(keys, X, N, D, seed);
    check_launch("row_keys_kernel");
}

void gather_rows_cuda(cudaStream_t stream, float* x_obs, float* x_enc, const float* X, const int64_t* order,
                      const StepState* state, int N, int D, bool missing) {
    const int64_t n = int64_t(N) * D;
    if (n <= 0) return;
    gather_rows_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x_obs, x_enc, X, order, state, N, D, missing);
    check_launch("gather_rows_kernel");
}

void contiguous_encoder_input_cuda(cudaStream_t stream, float* x_enc, const float* x, int64_t n) {
    if (n <= 0) return;
    mask_missing_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x_enc, x, n);
    check_launch("mask_missing_kernel");
}

// ---- the posterior

void logvar_clamp_forward_cuda(cudaStream_t stream, float* head, int N, int Z) {
    const int64_t n = int64_t(N) * Z;
    if (n <= 0) return;
    logvar_clamp_forward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(head, N, Z);
    check_launch("logvar_clamp_forward_kernel");
}

void logvar_clamp_backward_cuda(cudaStream_t stream, float* d_head, const float* head, int N, int Z) {
    const int64_t n = int64_t(N) * Z;
    if (n <= 0) return;
    logvar_clamp_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(d_head, head, N, Z);
    check_launch("logvar_clamp_backward_kernel");
}

void reparameterize_forward_cuda(cudaStream_t stream, float* eps, float* z, const float* head, const float* noise,
                                 int N, int S, int Z, Posterior posterior) {
    const int64_t n = int64_t(S) * N * Z;
    if (n <= 0) return;
    reparameterize_forward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(eps, z, head, noise, N, S, Z, posterior);
    check_launch("reparameterize_forward_kernel");
}

void reparameterize_backward_cuda(cudaStream_t stream, float* d_head, const float* dz, const float* head,
                                  const float* eps, int N, int S, int Z) {
    const int64_t n = int64_t(N) * Z;
    if (n <= 0) return;
    reparameterize_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(d_head, dz, head, eps, N, S, Z);
    check_launch("reparameterize_backward_kernel");
}

void kl_analytic_forward_cuda(cudaStream_t stream, double* kl_analytic, const float* head, int N, int Z) {
    if (N <= 0) return;
    kl_analytic_forward_kernel<<<blocks_for(N), kThreads, 0, stream>>>(kl_analytic, head, N, Z);
    check_launch("kl_analytic_forward_kernel");
}

void kl_analytic_backward_cuda(cudaStream_t stream, float* d_head, const float* head, int N, int Z, float beta,
                               float w_row) {
    const int64_t n = int64_t(N) * Z;
    if (n <= 0) return;
    kl_analytic_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(d_head, head, N, Z, beta * w_row);
    check_launch("kl_analytic_backward_kernel");
}

void kl_mc_forward_cuda(cudaStream_t stream, double* kl, const float* head, const float* eps, const float* z, int N,
                        int S, int Z, Posterior posterior) {
    const int64_t SN = int64_t(S) * N;
    if (SN <= 0) return;
    kl_mc_forward_kernel<<<blocks_for(SN), kThreads, 0, stream>>>(kl, head, eps, z, N, S, Z, posterior);
    check_launch("kl_mc_forward_kernel");
}

void kl_mc_backward_cuda(cudaStream_t stream, float* d_head, float* dz, const float* z, int N, int S, int Z,
                         float beta, float w_row, float w_draw, bool pathwise) {
    const int64_t n = int64_t(S) * N * Z;
    if (n <= 0) return;
    kl_mc_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(d_head, dz, z, N, S, Z, beta, w_row, w_draw,
                                                                   pathwise);
    check_launch("kl_mc_backward_kernel");
}

void score_function_backward_cuda(cudaStream_t stream, float* d_head, const float* head, const float* eps,
                                  const double* recon, const double* kl, int N, int S, int Z, Posterior posterior,
                                  bool mc, float beta, float w_draw, const double* baseline) {
    const int64_t n = int64_t(N) * Z;
    if (n <= 0) return;
    score_function_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(d_head, head, eps, recon, kl, N, S, Z,
                                                                            posterior, mc, beta, w_draw, baseline);
    check_launch("score_function_backward_kernel");
}

// ---- the likelihoods

namespace {

constexpr int kRowBlock = 128;  // threads summing one draw row

template <class Entry>
void launch_likelihood_forward(cudaStream_t stream, double* recon, const float* out, const float* x, int N, int S, int D,
                        bool missing, const Entry& entry, const char* what) {
    const int64_t SN = int64_t(S) * N;
    if (SN <= 0) return;
    likelihood_forward_kernel<kRowBlock><<<unsigned(SN), kRowBlock, 0, stream>>>(recon, out, x, N, D, missing, entry);
    check_launch(what);
}

template <class Entry>
void launch_likelihood_backward(cudaStream_t stream, float* d_out, const float* out, const float* x, int N, int S, int D,
                         float weight, bool missing, const Entry& entry, const char* what) {
    const int64_t n = int64_t(S) * N * D;
    if (n <= 0) return;
    likelihood_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(d_out, out, x, n, N, D, weight, missing, entry);
    check_launch(what);
}

// d_out, and the log-variance terms summed over the S*N rows into d_lv (per
// feature) or into column, then d_lv[0] (isotropic).
void gaussian_backward_any(cublasHandle_t blas, cudaStream_t stream, float* d_out, float* d_lv, const float* out,
                           const float* x, const GaussianEntry& entry, int N, int S, int D, float weight, bool missing,
                           const LogvarScratch& scratch, const char* what) {
    const int64_t SN = int64_t(S) * N, n = SN * D;
    if (n <= 0) return;
    launch_likelihood_backward(stream, d_out, out, x, N, S, D, weight, missing, entry, what);
    gaussian_logvar_terms_kernel<<<blocks_for(n), kThreads, 0, stream>>>(scratch.terms, out, x, n, N, D, missing,
                                                                          entry);
    check_launch("gaussian_logvar_terms_kernel");
    // Column sums over the S*N rows: terms^T (D, SN) ones (SN).
    const float one = 1.f, zero = 0.f;
    if (entry.lv_stride == 1) {
        PYVAE_CUBLAS_CHECK(cublasSgemv(blas, CUBLAS_OP_N, D, int(SN), &weight, scratch.terms, D, scratch.ones, 1, &one,
                                       d_lv, 1));
        return;
    }
    PYVAE_CUBLAS_CHECK(cublasSgemv(blas, CUBLAS_OP_N, D, int(SN), &weight, scratch.terms, D, scratch.ones, 1, &zero,
                                   scratch.column, 1));
    sum_into_kernel<256><<<1, 256, 0, stream>>>(d_lv, scratch.column, D);
    check_launch("sum_into_kernel");
}

}  // namespace

void bernoulli_forward_cuda(cudaStream_t stream, double* recon, const float* out, const float* x, int N, int S, int D,
                            bool missing) {
    launch_likelihood_forward(stream, recon, out, x, N, S, D, missing, BernoulliEntry(), "bernoulli_forward");
}

void bernoulli_backward_cuda(cudaStream_t stream, float* d_out, const float* out, const float* x, int N, int S, int D,
                             float weight, bool missing) {
    launch_likelihood_backward(stream, d_out, out, x, N, S, D, weight, missing, BernoulliEntry(), "bernoulli_backward");
}

void bernoulli_forward_backward_cuda(cudaStream_t stream, double* recon, float* d_out, const float* out,
                                     const float* x, int N, int S, int D, float weight, bool missing) {
    const int64_t SN = int64_t(S) * N;
    if (SN <= 0) return;
    bernoulli_forward_backward_kernel<kRowBlock><<<unsigned(SN), kRowBlock, 0, stream>>>(recon, d_out, out, x, N, D,
                                                                                          weight, missing);
    check_launch("bernoulli_forward_backward_kernel");
}

void continuous_bernoulli_forward_cuda(cudaStream_t stream, double* recon, const float* out, const float* x, int N,
                                       int S, int D, bool missing) {
    launch_likelihood_forward(stream, recon, out, x, N, S, D, missing, ContinuousBernoulliEntry(),
                       "continuous_bernoulli_forward");
}

void continuous_bernoulli_backward_cuda(cudaStream_t stream, float* d_out, const float* out, const float* x, int N,
                                        int S, int D, float weight, bool missing) {
    launch_likelihood_backward(stream, d_out, out, x, N, S, D, weight, missing, ContinuousBernoulliEntry(),
                        "continuous_bernoulli_backward");
}

void gaussian_forward_cuda(cudaStream_t stream, double* recon, const float* out, const float* x, const float* lv,
                           float floor, int N, int S, int D, bool missing) {
    launch_likelihood_forward(stream, recon, out, x, N, S, D, missing, GaussianEntry{lv, 1, floor}, "gaussian_forward");
}

void gaussian_backward_cuda(cublasHandle_t blas, cudaStream_t stream, float* d_out, float* d_lv, const float* out,
                            const float* x, const float* lv, float floor, int N, int S, int D, float weight,
                            bool missing, const LogvarScratch& scratch) {
    gaussian_backward_any(blas, stream, d_out, d_lv, out, x, GaussianEntry{lv, 1, floor}, N, S, D, weight, missing,
                          scratch, "gaussian_backward");
}

void gaussian_isotropic_forward_cuda(cudaStream_t stream, double* recon, const float* out, const float* x,
                                     const float* lv, float floor, int N, int S, int D, bool missing) {
    launch_likelihood_forward(stream, recon, out, x, N, S, D, missing, GaussianEntry{lv, 0, floor},
                       "gaussian_isotropic_forward");
}

void gaussian_isotropic_backward_cuda(cublasHandle_t blas, cudaStream_t stream, float* d_out, float* d_lv,
                                      const float* out, const float* x, const float* lv, float floor, int N, int S,
                                      int D, float weight, bool missing, const LogvarScratch& scratch) {
    gaussian_backward_any(blas, stream, d_out, d_lv, out, x, GaussianEntry{lv, 0, floor}, N, S, D, weight, missing,
                          scratch, "gaussian_isotropic_backward");
}

void likelihood_forward_cuda(cudaStream_t stream, const Config& c, const float* noise_logvar, const float* out,
                             const float* x, int N, int S, double* recon) {
    const int D = c.n_features;
    const float floor = float(c.variance_floor);
    switch (c.likelihood) {
        case Likelihood::bernoulli: return bernoulli_forward_cuda(stream, recon, out, x, N, S, D, c.missing);
        case Likelihood::continuous_bernoulli:
            return continuous_bernoulli_forward_cuda(stream, recon, out, x, N, S, D, c.missing);
        case Likelihood::gaussian:
            return gaussian_forward_cuda(stream, recon, out, x, noise_logvar, floor, N, S, D, c.missing);
        case Likelihood::gaussian_isotropic:
            return gaussian_isotropic_forward_cuda(stream, recon, out, x, noise_logvar, floor, N, S, D, c.missing);
        case Likelihood::mixed: break;
    }
    throw std::invalid_argument("the CUDA engine has no per-column likelihoods (likelihood='mixed')");
}

void likelihood_backward_cuda(cublasHandle_t blas, cudaStream_t stream, const Config& c, const float* noise_logvar,
                              const float* out, const float* x, int N, int S, float weight, float* d_out,
                              float* d_noise_logvar, const LogvarScratch& scratch) {
    const int D = c.n_features;
    const float floor = float(c.variance_floor);
    switch (c.likelihood) {
        case Likelihood::bernoulli: return bernoulli_backward_cuda(stream, d_out, out, x, N, S, D, weight, c.missing);
        case Likelihood::continuous_bernoulli:
            return continuous_bernoulli_backward_cuda(stream, d_out, out, x, N, S, D, weight, c.missing);
        case Likelihood::gaussian:
            return gaussian_backward_cuda(blas, stream, d_out, d_noise_logvar, out, x, noise_logvar, floor, N, S, D,
                                          weight, c.missing, scratch);
        case Likelihood::gaussian_isotropic:
            return gaussian_isotropic_backward_cuda(blas, stream, d_out, d_noise_logvar, out, x, noise_logvar, floor,
                                                    N, S, D, weight, c.missing, scratch);
        case Likelihood::mixed: break;
    }
    throw std::invalid_argument("the CUDA engine has no per-column likelihoods (likelihood='mixed')");
}

void likelihood_forward_backward_cuda(cublasHandle_t blas, cudaStream_t stream, const Config& c,
                                      const float* noise_logvar, const float* out, const float* x, int N, int S,
                                      double* recon, float weight, float* d_out, float* d_noise_logvar,
                                      const LogvarScratch& scratch) {
    if (c.likelihood == Likelihood::bernoulli)
        return bernoulli_forward_backward_cuda(stream, recon, d_out, out, x, N, S, c.n_features, weight, c.missing);
    likelihood_forward_cuda(stream, c, noise_logvar, out, x, N, S, recon);
    likelihood_backward_cuda(blas, stream, c, noise_logvar, out, x, N, S, weight, d_out, d_noise_logvar, scratch);
}

// ---- the step

void batch_stats_cuda(cudaStream_t stream, const double* recon, const double* kl, const double* kl_analytic, int N,
                      int S, bool mc, double beta, StepState* state, bool training) {
    if (N <= 0) return;
    batch_stats_kernel<256><<<1, 256, 0, stream>>>(recon, kl, kl_analytic, N, S, mc, beta, state, training);
    check_launch("batch_stats_kernel");
}

void adam_update_cuda(cudaStream_t stream, float* params, const float* grad, float* m, float* v,
                      const uint8_t* decay, int64_t P, const StepState* state) {
    if (P <= 0) return;
    adam_update_kernel<<<blocks_for(P), kThreads, 0, stream>>>(params, grad, m, v, decay, P, state);
    check_launch("adam_update_kernel");
}

}  // namespace pyvae
