// CUDA kernels of the VAE, each the twin of a CPU function of the core (see
// kernels_cuda.cuh for shapes and contracts). Elementwise work is one thread
// per element; per-row sums are one block per row reduced by a fixed-shape
// tree; column sums go to cuBLAS gemv against a vector of ones. Nothing sums
// floats with atomics, so every run repeats bit for bit.
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

// ---- kernels: the generator (rng.h), the standardized draws (standardized.h) and
// the scalar math (hd.h) are the CPU's own functions, compiled for the device too.

// y (N, O) = act(y + b): mode 0 none, 1 relu, 2 tanh. relu keeps NaN as the CPU's
// std::max does (a NaN loss must stay visible).
__global__ void bias_activation_kernel(float* y, const float* b, int64_t n, int O, int mode) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= n) return;
    const float a = y[k] + b[k % O];
    y[k] = mode == 1 ? (a < 0.f ? 0.f : a) : (mode == 2 ? tanhf(a) : a);
}

// d (n) *= act'(pre-activation), from the saved output y.
__global__ void activation_backward_kernel(float* d, const float* y, int64_t n, int relu) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= n) return;
    if (relu) d[k] = y[k] > 0.f ? d[k] : 0.f;
    else d[k] *= 1.f - y[k] * y[k];
}

__global__ void fill_noise_kernel(float* noise, const uint64_t* keys, int N, int S, int Z, bool uniform) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= int64_t(S) * N * Z) return;
    const int j = int(k % Z);
    const int64_t r = k / Z;  // s * N + i
    const int i = int(r % N), s = int(r / N);
    noise[k] = base_noise<float>(keys[i], s, Z, j, uniform);
}

// As Model::encoder_forward: the logvar half of the head (N, 2Z) clamped to +-kLogvarBound.
__global__ void clamp_logvar_kernel(float* head, int N, int Z) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= int64_t(N) * Z) return;
    float& lv = head[(k / Z) * 2 * Z + Z + k % Z];
    // As the CPU's std::min/std::max: a NaN stays NaN (fminf/fmaxf would turn it into the bound).
    lv = lv < -float(kLogvarBound) ? -float(kLogvarBound) : (lv > float(kLogvarBound) ? float(kLogvarBound) : lv);
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
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= int64_t(N) * D) return;
    const int64_t i = k / D, c = k % D;
    const float v = X[order[st->cursor + i] * D + c];
    x_obs[k] = v;
    if (missing) x_enc[k] = isnan(v) ? 0.f : v;
}

__global__ void mask_missing_kernel(float* x_enc, const float* x, int64_t n) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= n) return;
    x_enc[k] = isnan(x[k]) ? 0.f : x[k];
}

__global__ void reparameterize_kernel(const float* head, const float* noise, float* eps, float* z, int N, int S,
                                      int Z, Posterior posterior) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= int64_t(S) * N * Z) return;
    const int j = int(k % Z);
    const int i = int((k / Z) % N);
    const float* mu = head + int64_t(i) * 2 * Z;
    const float e = standardized_draw(posterior, noise[k]);
    eps[k] = e;
    z[k] = mu[j] + expf(0.5f * mu[Z + j]) * e;
}

// One block per draw row r: recon[r], d_out row r, and for the Gaussian the
// per-entry noise log-variance terms 0.5 (1 - res^2 / var) into lv_terms.
template <int BLOCK>
__global__ void likelihood_kernel(Likelihood likelihood, bool missing, float variance_floor, const float* noise_lv,
                                  const float* out, const float* x, int N, int D, double* recon, float* d_out,
                                  float* lv_terms, float weight) {
    const int64_t r = blockIdx.x;
    const float* xi = x + (r % N) * D;
    const float* o = out + r * D;
    float* d = d_out ? d_out + r * D : nullptr;
    float* t = lv_terms ? lv_terms + r * D : nullptr;
    const bool bernoulli = !is_gaussian(likelihood);
    const bool continuous = likelihood == Likelihood::continuous_bernoulli;
    const bool shared_lv = likelihood == Likelihood::gaussian_isotropic;
    float acc = 0.f;
    for (int k = threadIdx.x; k < D; k += BLOCK) {
        const float xv = xi[k];
        if (missing && isnan(xv)) {
            if (d) d[k] = 0.f;
            if (t) t[k] = 0.f;
            continue;
        }
        if (bernoulli) {
            // log p = x * a - softplus(a), stable for any logit a.
            const float a = o[k];
            const float e = expf(-fabsf(a));
            acc += xv * a - ((a < 0.f ? 0.f : a) + log1pf(e));
            float g = (a >= 0.f ? 1.f / (1.f + e) : e / (1.f + e)) - xv;
            if (continuous) {
                acc += continuous_bernoulli_log_norm(a);
                g -= continuous_bernoulli_log_norm_grad(a);
            }
            if (d) d[k] = weight * g;
        } else {
            const float lv = noise_lv[shared_lv ? 0 : k];
            const float learned = expf(lv);
            const float var = floored_variance(lv, variance_floor);
            const float inv_var = 1.f / var;
            const float res = xv - o[k];
            acc += -0.5f * (float(kLog2Pi) + logf(var) + res * res * inv_var);
            if (d) d[k] = -weight * res * inv_var;
            if (t) t[k] = 0.5f * (1.f - res * res * inv_var) * learned * inv_var;
        }
    }
    acc = block_sum<float, BLOCK>(acc);
    if (threadIdx.x == 0) recon[r] = double(acc);
}

// dst[0] += sum(column (n)), one block.
template <int BLOCK>
__global__ void sum_into_kernel(float* dst, const float* column, int n) {
    float acc = 0.f;
    for (int k = threadIdx.x; k < n; k += BLOCK) acc += column[k];
    acc = block_sum<float, BLOCK>(acc);
    if (threadIdx.x == 0) dst[0] += acc;
}

// One thread per draw row r = s * N + i; row i < N also writes the analytic KL.
__global__ void kl_forward_kernel(const float* head, const float* eps, const float* z, int N, int S, int Z,
                                  Posterior posterior, bool analytic, double* kl, double* kl_analytic) {
    const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (r >= int64_t(S) * N) return;
    const int i = int(r % N);
    const float* mu = head + int64_t(i) * 2 * Z;
    const float* lv = mu + Z;
    if (analytic && r < N) {
        float acc = 0.f;
        for (int j = 0; j < Z; ++j) acc += mu[j] * mu[j] + expf(lv[j]) - 1.f - lv[j];
        kl_analytic[i] = 0.5 * double(acc);
    }
    const float* e = eps + r * Z;
    const float* zz = z + r * Z;
    float acc = 0.f;
    for (int j = 0; j < Z; ++j)
        acc += standardized_log_density(posterior, e[j]) - 0.5f * lv[j] + 0.5f * zz[j] * zz[j] +
               float(0.5 * kLog2Pi);
    kl[r] = double(acc);
}

// One thread per (i, j), summing over the S draws in order, as the CPU does.
__global__ void posterior_backward_kernel(const float* head, const float* eps, const float* z, const float* dz,
                                          const double* recon, const double* kl, int N, int S, int Z,
                                          Posterior posterior, bool mc, bool pathwise, float beta,
                                          const double* baseline_ptr, float* d_head) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= int64_t(N) * Z) return;
    const int i = int(k / Z), j = int(k % Z);
    const float mu = head[int64_t(i) * 2 * Z + j];
    const float lv = head[int64_t(i) * 2 * Z + Z + j];
    const float w_row = 1.f / float(N), w_draw = 1.f / (float(S) * float(N));
    float dmu, dlv;
    if (mc) {
        dmu = 0.f;
        dlv = pathwise ? -0.5f * beta * w_row : 0.f;
    } else {
        dmu = beta * w_row * mu;
        dlv = beta * w_row * 0.5f * (expf(lv) - 1.f);
    }
    const double baseline = pathwise ? 0.0 : *baseline_ptr;
    for (int s = 0; s < S; ++s) {
        const int64_t r = int64_t(s) * N + i;
        const float e = eps[r * Z + j];
        if (pathwise) {
            const float dzj = dz[r * Z + j] + (mc ? beta * w_draw * z[r * Z + j] : 0.f);
            dmu += dzj;
            dlv += dzj * 0.5f * expf(0.5f * lv) * e;
        } else {
            const double f = recon[r] - (mc ? double(beta) * kl[r] : 0.0);
            const float c = -float(f - baseline) * w_draw;
            const float g = standardized_score(posterior, e);
            dmu += c * (-g * expf(-0.5f * lv));
            dlv += c * 0.5f * (-g * e - 1.f);
        }
    }
    if (fabsf(lv) >= float(kLogvarBound)) dlv = 0.f;  // the clamp passes no gradient where it holds
    d_head[int64_t(i) * 2 * Z + j] = dmu;
    d_head[int64_t(i) * 2 * Z + Z + j] = dlv;
}

__device__ void adam_scalars_device(StepState* st) {
    const double bc1 = 1 - pow(st->beta1, double(st->step));
    const double bc2 = 1 - pow(st->beta2, double(st->step));
    st->step_size = float(st->learning_rate / bc1);
    st->inv_sqrt_bc2 = float(1 / sqrt(bc2));
}

template <int BLOCK>
__global__ void batch_stats_kernel(const double* recon, const double* kl, const double* kl_analytic, int N, int S,
                                   bool mc, double beta, StepState* st, bool training) {
    if (training && st->non_finite) return;  // uniform across the block
    double rec_sum = 0, kl_sum = 0, loss_sum = 0, f_sum = 0;
    for (int i = threadIdx.x; i < N; i += BLOCK) {
        double rec = 0, klm = 0;
        for (int s = 0; s < S; ++s) {
            const int64_t r = int64_t(s) * N + i;
            rec += recon[r];
            klm += kl[r];
            f_sum += recon[r] - (mc ? beta * kl[r] : 0.0);
        }
        rec /= S;
        klm = mc ? klm / S : kl_analytic[i];
        rec_sum += rec;
        kl_sum += klm;
        loss_sum += -rec + beta * klm;
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
    adam_scalars_device(st);
    st->baseline = st->step == 1 ? st->mean_f : 0.9 * st->baseline + 0.1 * st->mean_f;
    st->epoch_recon += rec_sum;
    st->epoch_kl += kl_sum;
    st->epoch_elbo += rec_sum - kl_sum;
    st->epoch_rows += N;
}

__global__ void adam_update_kernel(float* params, const float* grad, float* m, float* v, const uint8_t* decay,
                                   int64_t P, const StepState* st) {
    const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (k >= P || st->non_finite) return;
    const float b1 = float(st->beta1), b2 = float(st->beta2), eps = float(st->epsilon);
    const float step_size = st->step_size, inv_sqrt_bc2 = st->inv_sqrt_bc2;
    const float p = params[k];
    const float g = grad[k] + (decay[k] ? float(st->alpha) : 0.f) * p;
    const float mk = b1 * m[k] + (1 - b1) * g;
    const float vk = b2 * v[k] + (1 - b2) * g * g;
    m[k] = mk;
    v[k] = vk;
    params[k] = p - step_size * mk / (sqrtf(vk) * inv_sqrt_bc2 + eps);
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
    const int mode = !hidden ? 0 : (act == Activation::relu ? 1 : 2);
    bias_activation_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, b, n, O, mode);
    check_launch("bias_activation_kernel");
}

void dense_backward_cuda(cublasHandle_t blas, cudaStream_t stream, float* d_inp, float* dW, float* db, float* d_out,
                         const float* out, const float* inp, const float* W, const float* ones, int N, int I, int O,
                         bool hidden, Activation act) {
    if (N <= 0) return;
    const int64_t n = int64_t(N) * O;
    if (hidden) {
        activation_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(d_out, out, n, act == Activation::relu);
        check_launch("activation_backward_kernel");
    }
    const float one = 1.f, zero = 0.f;
    // dW^T (O, I) += d^T (O, N) inp (N, I)
    PYVAE_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, O, I, N, &one, d_out, O, inp, I, &one, dW, O));
    // db (O) += d^T (O, N) ones (N)
    PYVAE_CUBLAS_CHECK(cublasSgemv(blas, CUBLAS_OP_N, O, N, &one, d_out, O, ones, 1, &one, db, 1));
    // d_inp^T (I, N) = W (I, O) d^T (O, N)
    if (d_inp)
        PYVAE_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, I, N, O, &one, W, O, d_out, O, &zero, d_inp, I));
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

void reparameterize_cuda(cudaStream_t stream, const float* head, const float* noise, float* eps, float* z, int N,
                         int S, int Z, Posterior posterior) {
    const int64_t n = int64_t(S) * N * Z;
    if (n <= 0) return;
    reparameterize_kernel<<<blocks_for(n), kThreads, 0, stream>>>(head, noise, eps, z, N, S, Z, posterior);
    check_launch("reparameterize_kernel");
}

void likelihood_forward_backward_cuda(cublasHandle_t blas, cudaStream_t stream, Likelihood likelihood, bool missing,
                                      float variance_floor, const float* noise_logvar, const float* out, const float* x, int N, int S, int D,
                                      double* recon, float* d_out, float* d_noise_logvar, float weight,
                                      float* lv_terms, float* column, const float* ones) {
    const int64_t SN = int64_t(S) * N;
    if (SN <= 0) return;
    const bool lv_grad = d_out && is_gaussian(likelihood);
    constexpr int B = 128;
    likelihood_kernel<B><<<unsigned(SN), B, 0, stream>>>(likelihood, missing, variance_floor, noise_logvar, out, x, N, D, recon, d_out,
                                                         lv_grad ? lv_terms : nullptr, weight);
    check_launch("likelihood_kernel");
    if (!lv_grad) return;
    // Column sums of the log-variance terms over the S*N rows: lv_terms^T (D, SN) ones (SN).
    const float one = 1.f, zero = 0.f;
    if (likelihood == Likelihood::gaussian) {
        PYVAE_CUBLAS_CHECK(cublasSgemv(blas, CUBLAS_OP_N, D, int(SN), &weight, lv_terms, D, ones, 1, &one,
                                       d_noise_logvar, 1));
    } else {
        PYVAE_CUBLAS_CHECK(cublasSgemv(blas, CUBLAS_OP_N, D, int(SN), &weight, lv_terms, D, ones, 1, &zero, column, 1));
        sum_into_kernel<256><<<1, 256, 0, stream>>>(d_noise_logvar, column, D);
        check_launch("sum_into_kernel");
    }
}

void kl_forward_cuda(cudaStream_t stream, const float* head, const float* eps, const float* z, int N, int S, int Z,
                     Posterior posterior, bool analytic, double* kl, double* kl_analytic) {
    const int64_t SN = int64_t(S) * N;
    if (SN <= 0) return;
    kl_forward_kernel<<<blocks_for(SN), kThreads, 0, stream>>>(head, eps, z, N, S, Z, posterior, analytic, kl,
                                                                kl_analytic);
    check_launch("kl_forward_kernel");
}

void clamp_logvar_cuda(cudaStream_t stream, float* head, int N, int Z) {
    const int64_t n = int64_t(N) * Z;
    if (n == 0) return;
    clamp_logvar_kernel<<<blocks_for(n), kThreads, 0, stream>>>(head, N, Z);
    check_launch("clamp_logvar_kernel");
}

void posterior_backward_cuda(cudaStream_t stream, const float* head, const float* eps, const float* z,
                             const float* dz, const double* recon, const double* kl, int N, int S, int Z,
                             Posterior posterior, bool mc, bool pathwise, float beta, const double* baseline,
                             float* d_head) {
    const int64_t n = int64_t(N) * Z;
    if (n <= 0) return;
    posterior_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(head, eps, z, dz, recon, kl, N, S, Z, posterior,
                                                                       mc, pathwise, beta, baseline, d_head);
    check_launch("posterior_backward_kernel");
}

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

void adam_scalars(StepState& st) {
    const double bc1 = 1 - std::pow(st.beta1, double(st.step));
    const double bc2 = 1 - std::pow(st.beta2, double(st.step));
    st.step_size = float(st.learning_rate / bc1);
    st.inv_sqrt_bc2 = float(1 / std::sqrt(bc2));
}

}  // namespace pyvae
