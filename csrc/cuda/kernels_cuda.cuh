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
    AdamSettings adam;
    // Written by batch_stats_cuda.
    int32_t non_finite = 0;  // set once a loss is not finite: every later step is a no-op
    int32_t reserved = 0;
    AdamStep<float> adam_step{};  // adam_step(adam, step): the current step's bias corrections (adam.h)
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

// out (N, O) = act(inp (N, I) @ W (I, O) + b (O)), act applied when `hidden`:
// cuBLAS sgemm, then one fused bias + activation pass. Twin of dense_forward.
void dense_forward_cuda(cublasHandle_t blas, cudaStream_t stream, float* out, const float* inp, const float* W,
                        const float* b, int N, int I, int O, bool hidden, Activation act);

// d_pre (N, O) the gradient w.r.t. the layer's pre-activation: dW (I, O) +=
// inp^T d_pre (sgemm), db (O) += colsum(d_pre) (sgemv against `ones`, at least
// N long), d_inp (N, I) = d_pre W^T when not null, times the derivative of
// activation `act` at inp when `inp_act` (inp is a hidden layer's output), so
// that it is the layer below's pre-activation gradient. Twin of dense_backward.
void dense_backward_cuda(cublasHandle_t blas, cudaStream_t stream, float* d_inp, float* dW, float* db,
                         const float* d_pre, const float* inp, const float* W, const float* ones, int N, int I, int O,
                         bool inp_act, Activation act);

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

// ---- the posterior (posterior.h): head (N, 2Z) = [mu | logvar], draws (S, N, Z) ----

// head (N, 2Z): the logvar half clamped to +-kLogvarBound. Twin of logvar_clamp_forward.
void logvar_clamp_forward_cuda(cudaStream_t stream, float* head, int N, int Z);
// d_head (N, 2Z): 0 in the logvar half where the clamp holds. Twin of logvar_clamp_backward.
void logvar_clamp_backward_cuda(cudaStream_t stream, float* d_head, const float* head, int N, int Z);

// eps, z (S, N, Z) from head (N, 2Z) and base noise (S, N, Z). Twin of reparameterize_forward.
void reparameterize_forward_cuda(cudaStream_t stream, float* eps, float* z, const float* head, const float* noise,
                                 int N, int S, int Z, Posterior posterior);
// d_head (N, 2Z) += the pathwise chain of dz (S, N, Z), draws summed in order. Twin of reparameterize_backward.
void reparameterize_backward_cuda(cudaStream_t stream, float* d_head, const float* dz, const float* head,
                                  const float* eps, int N, int S, int Z);

// kl_analytic (N) = KL(q || N(0, I)) in closed form. Twin of kl_analytic_forward.
void kl_analytic_forward_cuda(cudaStream_t stream, double* kl_analytic, const float* head, int N, int Z);
// d_head (N, 2Z) = beta * w_row * d KL / d head (initializes it). Twin of kl_analytic_backward.
void kl_analytic_backward_cuda(cudaStream_t stream, float* d_head, const float* head, int N, int Z, float beta,
                               float w_row);

// kl (S*N) = log q(z|x) - log p(z) per draw. Twin of kl_mc_forward.
void kl_mc_forward_cuda(cudaStream_t stream, double* kl, const float* head, const float* eps, const float* z, int N,
                        int S, int Z, Posterior posterior);
// Initializes d_head (N, 2Z); pathwise, also dz (S, N, Z) += beta * w_draw * z.
// Twin of kl_mc_backward with the ELBO's one weight per draw (the CUDA engine
// trains on the ELBO only).
void kl_mc_backward_cuda(cudaStream_t stream, float* d_head, float* dz, const float* z, int N, int S, int Z,
                         float beta, float w_row, float w_draw, bool pathwise);

// d_head (N, 2Z) += the score-function estimator's gradient from recon, kl (S*N)
// and *baseline (on the device). Twin of score_function_backward.
void score_function_backward_cuda(cudaStream_t stream, float* d_head, const float* head, const float* eps,
                                  const double* recon, const double* kl, int N, int S, int Z, Posterior posterior,
                                  bool mc, float beta, float w_draw, const double* baseline);

// ---- the likelihoods (likelihood.h): out (S*N, D) against x (N, D) ----------------
// forward: recon (S*N) = log p(x_i | out_r) for every draw row r = s * N + i;
// backward: d_out (S*N, D) = weight * d(-log p)/d(out), and for the Gaussians
// d_lv += weight * d(-sum log p)/d(noise log-variance). With `missing`, a NaN
// in x neither counts nor gets a gradient. Each is the twin of the CPU function
// of its name.

// Scratch of the Gaussians' log-variance gradient: terms (S*N, D), column (D) for
// the isotropic one's sum, ones (S*N).
struct LogvarScratch {
    float* terms = nullptr;
    float* column = nullptr;
    const float* ones = nullptr;
};

void bernoulli_forward_cuda(cudaStream_t stream, double* recon, const float* out, const float* x, int N, int S, int D,
                            bool missing);
void bernoulli_backward_cuda(cudaStream_t stream, float* d_out, const float* out, const float* x, int N, int S, int D,
                             float weight, bool missing);
// Both in one pass, sharing e^-|out|.
void bernoulli_forward_backward_cuda(cudaStream_t stream, double* recon, float* d_out, const float* out,
                                     const float* x, int N, int S, int D, float weight, bool missing);
void continuous_bernoulli_forward_cuda(cudaStream_t stream, double* recon, const float* out, const float* x, int N,
                                       int S, int D, bool missing);
void continuous_bernoulli_backward_cuda(cudaStream_t stream, float* d_out, const float* out, const float* x, int N,
                                        int S, int D, float weight, bool missing);
// lv (D): a log-variance per feature.
void gaussian_forward_cuda(cudaStream_t stream, double* recon, const float* out, const float* x, const float* lv,
                           float floor, int N, int S, int D, bool missing);
void gaussian_backward_cuda(cublasHandle_t blas, cudaStream_t stream, float* d_out, float* d_lv, const float* out,
                            const float* x, const float* lv, float floor, int N, int S, int D, float weight,
                            bool missing, const LogvarScratch& scratch);
// lv (1): one log-variance shared by all features.
void gaussian_isotropic_forward_cuda(cudaStream_t stream, double* recon, const float* out, const float* x,
                                     const float* lv, float floor, int N, int S, int D, bool missing);
void gaussian_isotropic_backward_cuda(cublasHandle_t blas, cudaStream_t stream, float* d_out, float* d_lv,
                                      const float* out, const float* x, const float* lv, float floor, int N, int S,
                                      int D, float weight, bool missing, const LogvarScratch& scratch);

// The configured likelihood's pair (config.likelihood, missing, variance_floor;
// noise_logvar from the parameters): twins of Model::likelihood_forward,
// likelihood_backward and likelihood_forward_backward (the Bernoulli's in one pass).
void likelihood_forward_cuda(cudaStream_t stream, const Config& config, const float* noise_logvar, const float* out,
                             const float* x, int N, int S, double* recon);
void likelihood_backward_cuda(cublasHandle_t blas, cudaStream_t stream, const Config& config,
                              const float* noise_logvar, const float* out, const float* x, int N, int S, float weight,
                              float* d_out, float* d_noise_logvar, const LogvarScratch& scratch);
void likelihood_forward_backward_cuda(cublasHandle_t blas, cudaStream_t stream, const Config& config,
                                      const float* noise_logvar, const float* out, const float* x, int N, int S,
                                      double* recon, float weight, float* d_out, float* d_noise_logvar,
                                      const LogvarScratch& scratch);

// ---- the step's bookkeeping and the optimizer -------------------------------------

// One block reduces the batch's per-draw terms into state->loss, recon, kl,
// mean_f (the tail of Model::loss_and_grad, with elbo.h's functions). With
// `training` it also does train_epoch's bookkeeping: a non-finite loss sets
// state->non_finite and freezes everything after it; otherwise step += 1,
// cursor += N, adam_step for the new step, the baseline, and the epoch's sums.
void batch_stats_cuda(cudaStream_t stream, const double* recon, const double* kl, const double* kl_analytic, int N,
                      int S, bool mc, double beta, StepState* state, bool training);

// One Adam step over the flat buffer (P): adam_element with L2 decay
// state->adam.alpha where decay[k] is 1 (weight matrices), state->adam_step's
// bias corrections. No-op once non_finite. Twin of adam_update (adam.h).
void adam_update_cuda(cudaStream_t stream, float* params, const float* grad, float* m, float* v,
                      const uint8_t* decay, int64_t P, const StepState* state);

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
