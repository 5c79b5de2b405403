// CUDA twins of the CPU kernels (docs/layout.md): each launcher is named like the CPU
// function it must match, with a `_cuda` suffix (tests/test_cuda.py compares
// every pair). Shapes as in the CPU core: N = rows, S = Monte Carlo samples, D =
// features, Z = latent dimensions, I/O = a layer's input/output width;
// sample-major stacking, row (s, i) of a decoder buffer is s * N + i.
//
// Every launcher only enqueues work on `stream` (no host synchronization), and
// every pointer is a device pointer. Sums are deterministic: each one runs in a
// fixed order (a loop in one thread, a fixed-shape block tree, or a cuBLAS
// product, which is bit-reproducible run to run without atomics); no float sum
// uses atomics, so a run repeats bit for bit.
//
// This header is plain C++ (no CUDA syntax): the model and the bindings are
// compiled by the host compiler, only kernels_cuda.cu by nvcc.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "vae.h"

namespace pyvae {

// Scalars of a training step that live on the device, so that a step needs no
// round trip to the host and can be captured once as a CUDA graph and replayed.
struct StepState {
    // Written by the host before an epoch.
    uint64_t seed = 0;
    int64_t step = 0;       // Adam updates so far (read by train_keys_cuda, bumped by batch_stats_cuda)
    int64_t cursor = 0;     // position of the next batch in the epoch's row order
    double baseline = 0;    // running mean of the learning signal (score-function estimator)
    double learning_rate = 1e-3, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, alpha = 0;
    // Written by batch_stats_cuda.
    int32_t non_finite = 0;  // set once a loss is not finite: every later step is a no-op
    int32_t reserved = 0;
    float step_size = 0, inv_sqrt_bc2 = 1;  // Adam's bias corrections for the current step
    double loss = 0, recon = 0, kl = 0, mean_f = 0;  // the last batch (sums over rows, as BatchStats)
    double epoch_elbo = 0, epoch_recon = 0, epoch_kl = 0;
    int64_t epoch_rows = 0;
};

// Errors become C++ exceptions with the failing call and CUDA's message.
void check_cuda(cudaError_t e, const char* what, const char* file, int line);
void check_cublas(cublasStatus_t s, const char* what, const char* file, int line);
#define PYVAE_CUDA_CHECK(x) ::pyvae::check_cuda((x), #x, __FILE__, __LINE__)
#define PYVAE_CUBLAS_CHECK(x) ::pyvae::check_cublas((x), #x, __FILE__, __LINE__)

// ---- layers -----------------------------------------------------------------

// out (N, O) = act(inp (N, I) @ W (I, O) + b (O)): cuBLAS sgemm, then one fused
// bias + activation pass. Twin of dense_forward.
void dense_forward_cuda(cublasHandle_t blas, cudaStream_t stream, float* out, const float* inp, const float* W,
                        const float* b, int N, int I, int O, bool hidden, Activation act);

// d_out (N, O) in, turned in place into the pre-activation gradient for a hidden
// layer; dW (I, O) += inp^T d (sgemm), db (O) += colsum(d) (sgemv against
// `ones`, at least N long), d_inp (N, I) = d W^T when not null. Twin of dense_backward.
void dense_backward_cuda(cublasHandle_t blas, cudaStream_t stream, float* d_inp, float* dW, float* db, float* d_out,
                         const float* out, const float* inp, const float* W, const float* ones, int N, int I, int O,
                         bool hidden, Activation act);

// ---- noise --------------------------------------------------------------------

// noise (S, N, Z): row i of every sample draws from the stream keys[i], with
// the counter-based generator of rng.h ported to the device. Twin of fill_noise.
void fill_noise_cuda(cudaStream_t stream, float* noise, const uint64_t* keys, int N, int S, int Z, bool uniform);

// keys (N): the training keys of train_epoch, combine_keys(combine_keys(seed, step), i),
// with seed and step read from the device state.
void train_keys_cuda(cudaStream_t stream, uint64_t* keys, const StepState* state, int N);

// keys (N): combine_keys(seed, hash_bytes(row i of X (N, D))). Twin of Model::row_keys.
void row_keys_cuda(cudaStream_t stream, uint64_t* keys, const float* X, int N, int D, uint64_t seed);

// ---- data -----------------------------------------------------------------------

// x_obs (N, D) = X[order[cursor + i]], x_enc the same with missing entries set to 0
// (written only when `missing`). Twin of Model::gather_rows.
void gather_rows_cuda(cudaStream_t stream, float* x_obs, float* x_enc, const float* X, const int64_t* order,
                      const StepState* state, int N, int D, bool missing);

// x_enc (n) = x with NaN set to 0. Twin of Model::contiguous_encoder_input.
void contiguous_encoder_input_cuda(cudaStream_t stream, float* x_enc, const float* x, int64_t n);

// ---- posterior and likelihood ---------------------------------------------------

// eps, z (S, N, Z) from head (N, 2Z) and noise (S, N, Z). Twin of reparameterize_forward.
void reparameterize_cuda(cudaStream_t stream, const float* head, const float* noise, float* eps, float* z, int N,
                         int S, int Z, Posterior posterior);

// recon (S*N) = log p(x_i | z_si) for out (S*N, D) against x (N, D); with d_out,
// also d_out = weight * d(-log p)/d(out) and d_noise_logvar += weight * d(-sum
// log p)/d(noise log-variance). Scratch: lv_terms (S*N, D) and column (D) for
// the Gaussian likelihoods, ones (S*N). Twin of Model::likelihood_forward and
// Model::likelihood_backward (the <likelihood>_forward / _backward pairs).
void likelihood_forward_backward_cuda(cublasHandle_t blas, cudaStream_t stream, Likelihood likelihood, bool missing,
                                      float variance_floor, const float* noise_logvar, const float* out, const float* x, int N, int S, int D,
                                      double* recon, float* d_out, float* d_noise_logvar, float weight,
                                      float* lv_terms, float* column, const float* ones);

// kl (S*N) = log q(z|x) - log p(z) per draw; kl_analytic (N) when `analytic`.
// Twin of Model::kl_forward (kl_analytic_forward, kl_mc_forward).
void kl_forward_cuda(cudaStream_t stream, const float* head, const float* eps, const float* z, int N, int S, int Z,
                     Posterior posterior, bool analytic, double* kl, double* kl_analytic);

// d_head (N, 2Z) = d(loss)/d[mu | logvar], pathwise (dz (S, N, Z)) or score
// function (recon, kl (S*N), *baseline). Twin of Model::posterior_backward
// (the KL backward, then reparameterize_backward or score_function_backward).
// head (N, 2Z): clamps the logvar half to +-kLogvarBound, as Model::encoder_forward.
void clamp_logvar_cuda(cudaStream_t stream, float* head, int N, int Z);

void posterior_backward_cuda(cudaStream_t stream, const float* head, const float* eps, const float* z,
                             const float* dz, const double* recon, const double* kl, int N, int S, int Z,
                             Posterior posterior, bool mc, bool pathwise, float beta, const double* baseline,
                             float* d_head);

// ---- the step's bookkeeping and the optimizer -------------------------------------

// One block reduces the batch's per-draw terms into state->loss, recon, kl,
// mean_f (the tail of Model::loss_and_grad). With `training` it also does
// train_epoch's bookkeeping: a non-finite loss sets state->non_finite and
// freezes everything after it; otherwise step += 1, cursor += N, Adam's bias
// corrections for the new step, the baseline, and the epoch's sums.
void batch_stats_cuda(cudaStream_t stream, const double* recon, const double* kl, const double* kl_analytic, int N,
                      int S, bool mc, double beta, StepState* state, bool training);

// One fused Adam step over the flat buffer (P), L2 decay alpha where decay[k] is
// 1 (weight matrices). Reads its scalars from `state`; no-op once non_finite.
// Twin of adam_update (adam.h).
void adam_update_cuda(cudaStream_t stream, float* params, const float* grad, float* m, float* v,
                      const uint8_t* decay, int64_t P, const StepState* state);

// Host helper: Adam's per-step scalars into `state`, as batch_stats_cuda computes them.
void adam_scalars(StepState& state);

// ---- inference ---------------------------------------------------------------------

// out (n) = sigmoid(out), in place (Bernoulli decoder means). Twin of the loop in Model::decode.
void sigmoid_cuda(cudaStream_t stream, float* out, int64_t n);

// z (N, Z) ~ N(0, I), row i from combine_keys(seed, row0 + i). Twin of Model::sample_prior.
void sample_prior_cuda(cudaStream_t stream, float* z, int64_t N, int Z, int64_t row0, uint64_t seed);

// out (n) = the continuous Bernoulli's mean at logits out, in place. Twin of the loop in Model::decode.
void continuous_bernoulli_mean_cuda(cudaStream_t stream, float* out, int64_t n);

// x (N, D): decoder means in (logits for the continuous Bernoulli), draws of p(x|z) out (row keys combine_keys(seed, i),
// i counted from row0). Twin of the loop in Model::sample_observations.
void sample_observations_cuda(cudaStream_t stream, float* x, const float* noise_logvar, float variance_floor,
                              int64_t N, int D, int64_t row0, uint64_t seed, Likelihood likelihood);

// out (N) per-row bound: the ELBO from recon/kl (S*N) and kl_analytic (N), or
// the importance-weighted bound. Twin of the loop in Model::score.
void score_rows_cuda(cudaStream_t stream, double* out, const double* recon, const double* kl,
                     const double* kl_analytic, int N, int S, bool importance, bool analytic);

// p (n) = value.
void fill_cuda(cudaStream_t stream, float* p, float value, int64_t n);

}  // namespace pyvae
