// Model<T>: the VAE assembled from the concept headers, and its training loop.
// Written once as a template: float32 trains, float64 checks gradients.
//
// One training step (loss_and_grad), each equation a function of its own:
//   encoder      mlp_forward -> logvar_clamp_forward          (dense.h, posterior.h)
//   draws        reparameterize_forward                       (posterior.h)
//   decoder      mlp_forward                                  (dense.h)
//   log p(x|z)   <likelihood>_forward                         (likelihood.h, likelihood_math.h)
//   KL           kl_analytic_forward / kl_mc_forward          (posterior.h)
//   ELBO         elbo_forward, or the IWAE bound               (elbo.h)
//                importance_bound_forward
// and back: the per-draw weights (DrawWeights; the IWAE's from
// importance_bound_backward), <likelihood>_backward, decoder_backward, the KL
// backward, then reparameterize_backward (pathwise) or score_function_backward,
// then logvar_clamp_backward and encoder_backward; adam_update (adam.h) applies it.
//
// Shapes: N = rows in a batch, S = Monte Carlo samples per row, D = features,
// Z = latent dimensions. Sample-major stacking: row (s, i) of a decoder buffer
// is s * N + i, so the decoder sees S*N rows and runs as one matrix product per
// layer. Inference (encode, score, sampling) is in model_inference.h.
#pragma once
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/adam.h"
#include "model/config.h"
#include "model/dense.h"
#include "model/elbo.h"
#include "model/likelihood.h"
#include "cpu/matmul.h"
#include "model/observation.h"
#include "model/posterior.h"
#include "model/rng.h"
#include "cpu/workspace.h"

namespace pyvae {

template <class T>
class Model {
   public:
    Config config;
    Layout layout;
    int n_threads = 1;
    TrainingBuffers<T> training_buffers;  // train_epoch's, kept between calls (workspace.h)

    explicit Model(const Config& c) : config(c), layout(make_layout(c)) { init_blas_threads(); }

    int64_t n_params() const { return layout.size; }

    // PyTorch's default for Linear layers: W and b ~ U(-1/sqrt(n_in), 1/sqrt(n_in)).
    void init_params(T* params, uint64_t seed) const {
        auto fill = [&](int64_t offset, int64_t n, double bound, uint64_t key) {
            for (int64_t k = 0; k < n; ++k) params[offset + k] = T((2 * standard_uniform(key, k) - 1) * bound);
        };
        uint64_t tensor = 0;
        for (const auto* layers : {&layout.encoder, &layout.decoder})
            for (const Dense& d : *layers) {
                const double bound = 1.0 / std::sqrt(double(d.n_in));
                fill(d.w, int64_t(d.n_in) * d.n_out, bound, combine_keys(seed, tensor++));
                fill(d.b, d.n_out, bound, combine_keys(seed, tensor++));
            }
        for (int k = 0; k < layout.n_noise_logvar; ++k) params[layout.noise_logvar + k] = T(0);
    }

    // ---- forward pieces ----------------------------------------------------

    // How a forward pass rounds. `training`: the batch as a whole, as fast as it
    // goes (a backward pass follows). `inference`: row by row, so that each row
    // gets the same bits alone, in any chunk or in the whole set (what
    // scikit-learn's subset-invariance check asks of every method): the core's
    // row-wise products (dense_forward_rowwise), and the first layer by a row's
    // nonzeros or densely as the row's own density decides.
    enum class Pass { inference, training };

    // head (N, 2Z) = [mu | logvar] from x (N, D), the logvar half clamped. In
    // training a batch that is mostly zeros goes through the first layer by its
    // nonzeros (sparse_input.h); encoder_backward then uses them too.
    const T* encoder_forward(const T* params, const T* x, int N, Workspace<T>& ws, Pass pass) const {
        const T* out;
        if (pass == Pass::training) {
            const bool sparse = sparse_rows_build(ws.sparse, x, N, config.n_features, n_threads);
            out = mlp_forward(layout.encoder, ws.enc_out, params, x, N, pass, sparse ? &ws.sparse : nullptr);
        } else {
            input_layer_rowwise(params, x, N, ws);
            out = mlp_forward(layout.encoder, ws.enc_out, params, x, N, pass, nullptr, /*first=*/1);
        }
        logvar_clamp_forward(ws.enc_out.back().data(), N, config.n_components);
        return out;
    }

    // The encoder's first layer into ws.enc_out[0] for inference: rows at most
    // kSparseRowMaxDensity nonzero by their nonzeros, the others densely (dense_forward_rowwise).
    void input_layer_rowwise(const T* params, const T* x, int N, Workspace<T>& ws) const {
        const Dense& d = layout.encoder[0];
        const int D = d.n_in, O = d.n_out;
        const bool hidden = layout.encoder.size() > 1;
        const T *W = params + d.w, *b = params + d.b;
        T* out = ws.enc_out[0].data();
        std::vector<int>& dense = ws.dense_rows;
        sparse_rows_build(ws.sparse, x, N, D, n_threads, /*max_density=*/1.0, &dense,
                          int(kSparseRowMaxDensity * D));
        if (int(dense.size()) == N) return dense_forward_rowwise(out, x, W, b, N, D, O, hidden, config.activation, n_threads);
        // Every row by its nonzeros (the dense ones have none here), then the dense
        // rows gathered, computed in their own tiles and put back in place.
        sparse_dense_forward(out, ws.sparse, W, b, N, O, hidden, config.activation, n_threads);
        if (dense.empty()) return;
        const int n_dense = int(dense.size());
        std::vector<T> x_dense(size_t(n_dense) * D), y(size_t(n_dense) * O);
        for (int r = 0; r < n_dense; ++r)
            std::copy(x + int64_t(dense[r]) * D, x + int64_t(dense[r] + 1) * D, x_dense.begin() + int64_t(r) * D);
        dense_forward_rowwise(y.data(), x_dense.data(), W, b, n_dense, D, O, hidden, config.activation, n_threads);
        for (int r = 0; r < n_dense; ++r)
            std::copy(y.begin() + int64_t(r) * O, y.begin() + int64_t(r + 1) * O, out + int64_t(dense[r]) * O);
    }

    // eps, z (S, N, Z) from the head (N, 2Z) and base noise (S, N, Z).
    void reparameterize(const T* head, const T* noise, T* eps, T* z, int N, int S) const {
        reparameterize_forward(eps, z, head, noise, N, S, config.n_components, config.posterior, n_threads);
    }

    // out (M, decoder_out_width) from z (M, Z): logits (Bernoulli) or the Gaussian mean
    // (and, heteroscedastic, its log-variance).
    const T* decoder_forward(const T* params, const T* z, int M, Workspace<T>& ws, Pass pass) const {
        return mlp_forward(layout.decoder, ws.dec_out, params, z, M, pass);
    }

    // The outputs of `layers` from layer `first` on into `outs` (one buffer per
    // layer) from inp (N, first layer's width), or from outs[first - 1]: every
    // layer but the last is activated. Returns the last output. With
    // `sparse_inp` (inp by its nonzeros, training) the first layer runs on those.
    const T* mlp_forward(const std::vector<Dense>& layers, std::vector<std::vector<T>>& outs, const T* params,
                         const T* inp, int N, Pass pass, SparseRows<T>* sparse_inp = nullptr,
                         size_t first = 0) const {
        if (first > 0) inp = outs[first - 1].data();
        for (size_t l = first; l < layers.size(); ++l) {
            const Dense& d = layers[l];
            const bool hidden = l + 1 < layers.size();
            if (l == 0 && sparse_inp)
                sparse_dense_forward(outs[l].data(), *sparse_inp, params + d.w, params + d.b, N, d.n_out, hidden,
                                     config.activation, n_threads, /*by_feature_too=*/true);
            else
                dense_layer_forward(outs[l].data(), inp, params, d, N, hidden, pass == Pass::inference,
                                    config.activation, n_threads);
            inp = outs[l].data();
        }
        return inp;
    }

    // recon (S*N) = log p(x_i | z_si) for out (S*N, D) against x (N, D), by the configured likelihood.
    void likelihood_forward(const T* params, const T* out, const T* x, int N, int S, double* recon) const {
        const int D = config.n_features;
        const T* lv = params + layout.noise_logvar;
        const T floor = T(config.variance_floor);
        const bool missing = config.missing;
        switch (config.likelihood) {
            case Likelihood::bernoulli: return bernoulli_forward(recon, out, x, N, S, D, missing, n_threads);
            case Likelihood::continuous_bernoulli:
                return continuous_bernoulli_forward(recon, out, x, N, S, D, missing, n_threads);
            case Likelihood::gaussian: return gaussian_forward(recon, out, x, lv, floor, N, S, D, missing, n_threads);
            case Likelihood::gaussian_isotropic:
                return gaussian_isotropic_forward(recon, out, x, lv, floor, N, S, D, missing, n_threads);
            case Likelihood::mixed:
                return mixed_forward(recon, out, x, lv, floor, config.columns, N, S, D, decoder_out_width(config),
                                     missing, n_threads);
            case Likelihood::gaussian_heteroscedastic:
                return gaussian_heteroscedastic_forward(recon, out, x, floor, N, S, D, missing, n_threads);
        }
    }

    // d_out (S*N, D) = weight * d(-log p)/d(out), and d_noise_logvar += weight * d(-sum log p)/d(lv),
    // draw row r weighted by weight[r] (elbo.h).
    void likelihood_backward(const T* params, const T* out, const T* x, int N, int S, DrawWeights<T> weight,
                             T* d_out, T* d_noise_logvar) const {
        const int D = config.n_features;
        const T* lv = params + layout.noise_logvar;
        const T floor = T(config.variance_floor);
        const bool missing = config.missing;
        switch (config.likelihood) {
            case Likelihood::bernoulli: return bernoulli_backward(d_out, out, x, N, S, D, weight, missing, n_threads);
            case Likelihood::continuous_bernoulli:
                return continuous_bernoulli_backward(d_out, out, x, N, S, D, weight, missing, n_threads);
            case Likelihood::gaussian:
                return gaussian_backward(d_out, d_noise_logvar, out, x, lv, floor, N, S, D, weight, missing,
                                         n_threads);
            case Likelihood::gaussian_isotropic:
                return gaussian_isotropic_backward(d_out, d_noise_logvar, out, x, lv, floor, N, S, D, weight, missing,
                                                   n_threads);
            case Likelihood::mixed:
                return mixed_backward(d_out, d_noise_logvar, out, x, lv, floor, config.columns, N, S, D,
                                      decoder_out_width(config), weight, missing, n_threads);
            case Likelihood::gaussian_heteroscedastic:
                return gaussian_heteroscedastic_backward(d_out, out, x, floor, N, S, D, weight, missing, n_threads);
        }
    }

    // likelihood_forward then likelihood_backward; the Bernoulli's in one pass
    // (the two share e^-|out|, and its pass is most of a step's elementwise work).
    void likelihood_forward_backward(const T* params, const T* out, const T* x, int N, int S, double* recon,
                                     DrawWeights<T> weight, T* d_out, T* d_noise_logvar) const {
        if (config.likelihood == Likelihood::bernoulli)
            return bernoulli_forward_backward(recon, d_out, out, x, N, S, config.n_features, weight, config.missing,
                                              n_threads);
        if (config.likelihood == Likelihood::gaussian || config.likelihood == Likelihood::gaussian_isotropic)
            return gaussian_forward_backward(recon, d_out, d_noise_logvar, out, x, params + layout.noise_logvar,
                                             noise_logvar_stride(), T(config.variance_floor), N, S,
                                             config.n_features, weight, config.missing, n_threads);
        likelihood_forward(params, out, x, N, S, recon);
        likelihood_backward(params, out, x, N, S, weight, d_out, d_noise_logvar);
    }

    // The Gaussian likelihoods' per-feature variance terms (likelihood.h).
    GaussianNoise<T> gaussian_noise(const T* params) const {
        return GaussianNoise<T>(params + layout.noise_logvar, noise_logvar_stride(), config.n_features,
                                T(config.variance_floor));
    }
    // Feature k's noise log-variance is lv[k * stride]: 0 when one is shared by all.
    int noise_logvar_stride() const { return config.likelihood == Likelihood::gaussian_isotropic ? 0 : 1; }

    // sd (D): the Gaussian columns' standard deviation sqrt(floored variance), 0 elsewhere
    // (and everywhere for the heteroscedastic Gaussian, whose rows carry their own).
    std::vector<T> observation_sd(const T* params) const {
        std::vector<T> sd(config.n_features, T(0));
        if (layout.n_noise_logvar == 0) return sd;
        const GaussianNoise<T> g = gaussian_noise(params);
        for (int k = 0; k < config.n_features; ++k) sd[k] = gaussian_sd(g.inv_var[k]);
        return sd;
    }

    // kl (S*N) = log q(z_si|x_i) - log p(z_si) per draw; kl_analytic (N) = KL(q || N(0, I)) with the analytic KL.
    void kl_forward(const T* head, const T* eps, const T* z, int N, int S, double* kl, double* kl_analytic) const {
        if (config.kl == KLMode::analytic) kl_analytic_forward(kl_analytic, head, N, config.n_components);
        kl_mc_forward(kl, head, eps, z, N, S, config.n_components, config.posterior, n_threads);
    }

    // ---- backward pieces ---------------------------------------------------

    // Backward through the decoder from d_out (M, decoder_out_width); writes dz (M, Z) when not null.
    void decoder_backward(const T* params, T* grad, const T* z, int M, T* d_out, T* dz, Workspace<T>& ws) const {
        T* d = d_out;
        T* spare = (d_out == ws.d_a.data()) ? ws.d_b.data() : ws.d_a.data();
        for (int l = int(layout.decoder.size()) - 1; l >= 0; --l) {
            const Dense& L = layout.decoder[l];
            const T* inp = l > 0 ? ws.dec_out[l - 1].data() : z;
            T* d_inp = l > 0 ? spare : dz;
            dense_backward(d_inp, grad + L.w, grad + L.b, d, inp, params + L.w, M, L.n_in, L.n_out,
                           /*inp_act=*/l > 0, config.activation, n_threads, GradStore::into_zeros);
            std::swap(d, spare);
        }
    }

    // Backward through the logvar clamp and the encoder from ws.d_head (N, 2Z).
    void encoder_backward(const T* params, T* grad, const T* x, int N, Workspace<T>& ws) const {
        T* d = ws.d_head.data();
        logvar_clamp_backward(d, ws.enc_out.back().data(), N, config.n_components);
        T* next = ws.d_a.data();
        for (int l = int(layout.encoder.size()) - 1; l >= 0; --l) {
            const Dense& L = layout.encoder[l];
            const T* inp = l > 0 ? ws.enc_out[l - 1].data() : x;
            T* d_inp = l > 0 ? next : nullptr;  // the data needs no gradient
            if (l == 0 && ws.sparse.active)  // encoder_forward found the batch sparse
                sparse_dense_backward(grad + L.w, grad + L.b, d, ws.sparse, N, L.n_out, n_threads);
            else
                dense_backward(d_inp, grad + L.w, grad + L.b, d, inp, params + L.w, N, L.n_in, L.n_out,
                               /*inp_act=*/l > 0, config.activation, n_threads, GradStore::into_zeros);
            next = (d == ws.d_head.data()) ? ws.d_b.data() : d;
            d = d_inp;
        }
    }

    // d_head (N, 2Z) = d(loss)/d[mu | logvar]: the KL's gradient, then the pathwise
    // chain through z (dz (S, N, Z), the decoder's gradient w.r.t. z; the MC KL adds
    // its prior term into it) or the score-function estimator with `baseline`.
    // w_draw: the weight of each draw's term in the loss (draw_weights).
    void posterior_backward(const T* head, const T* eps, const T* z, T* dz, const double* recon, const double* kl,
                            int N, int S, double baseline, DrawWeights<T> w_draw, T* d_head) const {
        const int Z = config.n_components;
        const T beta = T(config.beta);
        const T w_row = T(1) / T(N);
        const bool mc = per_draw_kl();
        const bool pathwise = config.estimator == Estimator::reparameterization;
        if (mc) kl_mc_backward(d_head, dz, z, N, S, Z, beta, w_row, w_draw, pathwise);
        else kl_analytic_backward(d_head, head, N, Z, beta, w_row);
        if (pathwise) reparameterize_backward(d_head, dz, head, eps, N, S, Z, n_threads);
        else score_function_backward(d_head, head, eps, recon, kl, N, S, Z, config.posterior, mc, beta,
                                     w_draw.scale, baseline, n_threads);  // (objective elbo: one weight for all)
    }

    // Whether training differentiates the KL draw by draw: the Monte Carlo KL, and
    // the IWAE bound (its log weights hold each draw's log q - log p(z), whatever `kl`).
    bool per_draw_kl() const { return config.kl == KLMode::mc || config.objective == Objective::iwae; }

    // The weight of each draw's term in the batch's loss (elbo.h): 1 / (S N) for the
    // ELBO; for the IWAE bound 1 / N times importance (S*N), the self-normalized
    // weights, which loss_and_grad fills before any backward reads them.
    DrawWeights<T> draw_weights(int N, int S, const T* importance) const {
        if (config.objective == Objective::iwae) return DrawWeights<T>(T(1) / T(N), importance);
        return DrawWeights<T>(elbo_draw_weight<T>(N, S));
    }

    // The training objective on one batch, with its gradient:
    // objective elbo: loss = (1/N) sum_i [ -(1/S) sum_s log p(x_i|z_si) + beta * KL_i ];
    // objective iwae: loss = -(1/N) sum_i L_K,i, the importance-weighted bound of the
    // K = S draws (elbo.h; log w = log p(x|z) - beta (log q - log p(z))). stats holds
    // the ELBO's terms either way. x_obs (N, D) the targets (NaN = missing), x_enc
    // (N, D) the encoder input, noise (S, N, Z) the base noise. grad is overwritten.
    double loss_and_grad(const T* params, T* grad, const T* x_obs, const T* x_enc, const T* noise, int N,
                         double baseline, Workspace<T>& ws, BatchStats* stats, bool grad_is_zero = false) const {
        const int S = config.n_mc_samples;
        ws.reserve(config, layout, N, S);
        if (!grad_is_zero) std::memset(grad, 0, sizeof(T) * layout.size);
        const T* head = encoder_forward(params, x_enc, N, ws, Pass::training);
        reparameterize(head, noise, ws.eps.data(), ws.z.data(), N, S);
        const T* out = decoder_forward(params, ws.z.data(), S * N, ws, Pass::training);
        T* d_out = ws.d_a.data();
        const bool iwae = config.objective == Objective::iwae;
        const DrawWeights<T> w_draw = draw_weights(N, S, ws.importance.data());
        // The ELBO's weights are known before the forward: the Bernoulli's forward
        // and backward share a pass. The IWAE's come from the forward's results.
        if (iwae) likelihood_forward(params, out, x_obs, N, S, ws.recon.data());
        else likelihood_forward_backward(params, out, x_obs, N, S, ws.recon.data(), w_draw, d_out,
                                         grad + layout.noise_logvar);
        kl_forward(head, ws.eps.data(), ws.z.data(), N, S, ws.kl.data(), ws.kl_analytic.data());

        BatchStats st;
        double loss = 0;
        const bool mc = config.kl == KLMode::mc;
        for (int i = 0; i < N; ++i) {
            const ElboTerms t = elbo_forward(ws.recon.data(), ws.kl.data(), ws.kl_analytic.data(), i, N, S, mc);
            st.recon += t.recon;
            st.kl += t.kl;
            if (!iwae) {
                loss += elbo_loss(t, config.beta);
                continue;
            }
            const double bound = importance_bound_forward(ws.recon.data(), ws.kl.data(), i, N, S, config.beta);
            importance_bound_backward(ws.importance.data(), ws.recon.data(), ws.kl.data(), bound, i, N, S,
                                      config.beta);
            loss -= bound;
        }
        if (iwae) likelihood_backward(params, out, x_obs, N, S, w_draw, d_out, grad + layout.noise_logvar);
        const bool pathwise = config.estimator == Estimator::reparameterization;
        T* dz = pathwise ? ws.dz.data() : nullptr;  // the score-function estimator needs none
        decoder_backward(params, grad, ws.z.data(), S * N, d_out, dz, ws);
        posterior_backward(head, ws.eps.data(), ws.z.data(), dz, ws.recon.data(), ws.kl.data(), N, S, baseline,
                           w_draw, ws.d_head.data());
        encoder_backward(params, grad, x_enc, N, ws);

        if (stats) {
            st.mean_f = learning_signal_mean(ws.recon.data(), ws.kl.data(), N, S, mc, config.beta);
            *stats = st;
        }
        return loss / N;
    }

    // A const grad is left as it is; a non-const one is left zeroed (adam.h).
    template <class G>
    void adam_update(T* params, G* grad, T* m, T* v, int64_t step, const AdamSettings& a) const {
        pyvae::adam_update(layout, params, grad, m, v, step, a, n_threads);
    }

    // ---- data movement -----------------------------------------------------

    // Copies rows `rows[0..N)` of X (n_total, D) into ws.x_obs and the encoder input.
    void gather_rows(const T* X, const int64_t* rows, int N, Workspace<T>& ws) const {
        const int D = config.n_features;
        parallel_for(N, chunk_for(N), n_threads, int64_t(N) * D > 65536, [&](int64_t lo, int64_t hi) {
            for (int i = int(lo); i < int(hi); ++i) {
                const T* src = X + rows[i] * D;
                std::memcpy(ws.x_obs.data() + int64_t(i) * D, src, sizeof(T) * D);
                if (encoder_reads_copy(config)) encoder_input_row(src, ws.x_enc.data() + int64_t(i) * D);
            }
        });
    }
    const T* encoder_input(Workspace<T>& ws) const {
        return encoder_reads_copy(config) ? ws.x_enc.data() : ws.x_obs.data();
    }

    // enc (D), the encoder's input for the data row x (D): a missing entry as 0,
    // after the encoder transform of Config when there is one.
    void encoder_input_row(const T* x, T* enc) const {
        const int D = config.n_features;
        if (config.encoder_scale.empty()) {
            for (int k = 0; k < D; ++k) enc[k] = std::isnan(x[k]) ? T(0) : x[k];
            return;
        }
        const double* shift = config.encoder_shift.data();
        const double* scale = config.encoder_scale.data();
        for (int k = 0; k < D; ++k) enc[k] = std::isnan(x[k]) ? T(0) : T((x[k] - shift[k]) / scale[k]);
    }

    // Encoder input for a contiguous block of rows: the rows themselves, or
    // their copy by encoder_input_row.
    const T* contiguous_encoder_input(const T* X, int N, Workspace<T>& ws) const {
        if (!encoder_reads_copy(config)) return X;
        const int D = config.n_features;
        for (int i = 0; i < N; ++i) encoder_input_row(X + int64_t(i) * D, ws.x_enc.data() + int64_t(i) * D);
        return ws.x_enc.data();
    }

    // ---- training ----------------------------------------------------------

    // One shuffled pass of minibatch Adam over the rows `rows` of X (n_total, D).
    // step counts Adam updates over the model's life; baseline is the running
    // mean of the learning signal for the score-function estimator.
    EpochResult train_epoch(T* params, T* m, T* v, int64_t* step, double* baseline, const T* X,
                            const int64_t* rows, int64_t n_rows, int batch_size, uint64_t seed,
                            const AdamSettings& adam, const std::function<bool()>& interrupted,
                            const DataParallel<T>* dp = nullptr) const {
        EpochResult res;
        res.mu_sum.assign(config.n_components, 0.0);
        res.mu_sq_sum.assign(config.n_components, 0.0);
        std::vector<int64_t> order(rows, rows + n_rows);
        shuffle_rows(order.data(), n_rows, seed, *step);
        const int B = int(std::min<int64_t>(batch_size, n_rows));
        // A step this small runs on one thread: its ~20 passes are each too
        // short to share, and waking the team and moving their operands between
        // cores cost more than the second core saves (14-256-10 at batch 115,
        // 10 MFLOP a step: 2.85 ms an epoch on one thread, 3.5 on two).
        // Larger steps run on the team or alone as timing them says
        // (step_threads.h); very large ones, and those of ranks (whose steps
        // wait for each other), always on the team.
        const double flops = step_flops(B);
        const bool may_share = n_threads > 1 && flops >= kParallelStepFlops;
        const auto buffers = training_buffers.lease();
        StepThreadChooser* chooser =
            may_share && !dp && flops < kAlwaysParallelStepFlops && !step_threads_always_team() ? &buffers->chooser
                                                                                                : nullptr;
        if (chooser && (buffers->chooser_batch != B || buffers->chooser_threads != n_threads)) {
            *chooser = StepThreadChooser();
            buffers->chooser_batch = B;
            buffers->chooser_threads = n_threads;
        }
        Workspace<T>& ws = buffers->ws;
        ws.reserve(config, layout, B, config.n_mc_samples);
        // Zeroed once here; then each step's Adam update leaves it zeroed (consumed).
        std::vector<T>& grad = buffers->grad;
        grad.assign(layout.size + (dp ? kStepScalars : 0), T(0));
        std::vector<int64_t> local(B);  // rows of X in this batch (all of it, with one process)
        const int64_t lo = dp ? dp->first_row : 0, hi = dp ? lo + dp->n_local : INT64_MAX;
        const bool uniform = base_noise_is_uniform(config.posterior);
        for (int64_t start = 0; start < n_rows; start += B) {
            const int N = int(std::min<int64_t>(B, n_rows - start));
            const bool team = may_share && (!chooser || chooser->team_next());
            const ThreadCap step_threads(team ? n_threads : 1);
            using Clock = std::chrono::steady_clock;
            const Clock::time_point step_start = chooser ? Clock::now() : Clock::time_point();
            // Row i of the batch draws its noise from its position i, wherever it is held.
            int n = 0;
            for (int i = 0; i < N; ++i) {
                const int64_t r = order[start + i];
                if (r < lo || r >= hi) continue;
                local[n] = r - lo;
                ws.keys[n++] = batch_row_key(seed, *step, i);
            }
            gather_rows(X, local.data(), n, ws);
            fill_noise(ws.noise.data(), ws.keys.data(), n, config.n_mc_samples, config.n_components,
                       uniform, n_threads);
            BatchStats st;
            double loss = 0;
            if (n > 0) {
                loss = loss_and_grad(params, grad.data(), ws.x_obs.data(), encoder_input(ws),
                                     ws.noise.data(), n, *baseline, ws, &st, /*grad_is_zero=*/true);
                add_posterior_means(ws.enc_out.back().data(), n, res);
            } else {
                std::fill(grad.begin(), grad.end(), T(0));
            }
            bool stop = false;
            if (dp) loss = allreduce_step(*dp, grad.data(), n, N, loss, st, interrupted, &stop);
            if (!std::isfinite(loss)) { res.status = EpochStatus::non_finite; return res; }
            *step += 1;
            adam_update(params, grad.data(), m, v, *step, adam);
            *baseline = baseline_update(*baseline, st.mean_f, *step);
            if (chooser && N == B)  // a short last batch would read as a fast step
                chooser->record(std::chrono::duration<double>(Clock::now() - step_start).count());
            res.team_steps += team;
            res.recon += st.recon;
            res.kl += st.kl;
            res.elbo += elbo_of({st.recon, st.kl});
            if (config.objective == Objective::iwae) res.bound -= loss * N;
            res.n_rows += N;
            if (dp ? stop : (interrupted && interrupted())) { res.status = EpochStatus::interrupted; return res; }
        }
        return res;
    }

    // The matrix products of one training step on N rows: forward and the two
    // backward products of every layer, the decoder's on each of the S draws.
    double step_flops(int N) const {
        double encoder = 0, decoder = 0;
        for (const Dense& l : layout.encoder) encoder += double(l.n_in) * l.n_out;
        for (const Dense& l : layout.decoder) decoder += double(l.n_in) * l.n_out;
        return 6.0 * N * (encoder + config.n_mc_samples * decoder);
    }

    // Adds the batch's posterior means, from the head (N, 2Z), to the epoch's sums.
    void add_posterior_means(const T* head, int N, EpochResult& res) const {
        const int Z = config.n_components;
        for (int i = 0; i < N; ++i)
            for (int j = 0; j < Z; ++j) {
                const double mu = head[int64_t(i) * 2 * Z + j];
                res.mu_sum[j] += mu;
                res.mu_sq_sum[j] += mu * mu;
            }
        res.mu_rows += N;
    }

    // Data parallel: turns this rank's mean gradient over its n rows into its
    // share of the mean over the global batch of N rows, then sums the gradient
    // and the step's scalars over ranks in one call, so every rank sees the same
    // gradient, loss (NaN included) and stop decision. Returns the batch's loss.
    double allreduce_step(const DataParallel<T>& dp, T* grad, int n, int N, double loss, BatchStats& st,
                          const std::function<bool()>& interrupted, bool* stop) const {
        const int64_t P = layout.size;
        const T share = T(double(n) / N);
        for (int64_t k = 0; k < P; ++k) grad[k] *= share;
        T* s = grad + P;
        s[0] = T(n);
        s[1] = T(loss * n);
        s[2] = T(st.recon);
        s[3] = T(st.kl);
        s[4] = T(st.mean_f * n);
        s[5] = T(interrupted && interrupted() ? 1 : 0);
        dp.allreduce(grad, P + kStepScalars);
        if (double(s[0]) != N)
            throw std::runtime_error("ranks disagree on the batch: " + std::to_string(double(s[0])) +
                                     " rows instead of " + std::to_string(N) + "; are the shards' first rows right?");
        st.recon = s[2];
        st.kl = s[3];
        st.mean_f = double(s[4]) / N;
        *stop = s[5] > 0;
        return double(s[1]) / N;
    }

    // ---- inference (model_inference.h) --------------------------------------

    // Rows per inference call: bounded so that S draws per row fit in a few MB.
    static int chunk_rows(int samples) { return std::max(1, 4096 / std::max(1, samples)); }

    // Calls f(rows, start, n) on consecutive chunks of at most C rows of A (n_rows, width).
    template <class F>
    static void for_each_chunk(const T* A, int64_t n_rows, int width, int C, F&& f) {
        for (int64_t start = 0; start < n_rows; start += C)
            f(A + start * width, start, int(std::min<int64_t>(C, n_rows - start)));
    }

    void encode(const T* params, const T* X, int64_t n_rows, T* mu, T* logvar) const;
    void decode(const T* params, const T* Zs, int64_t n_rows, T* out) const;
    void sample_prior(int64_t n_rows, uint64_t seed, T* z) const;
    void sample_observations(const T* params, const T* Zs, int64_t n_rows, uint64_t seed, T* out) const;
    void sample_posterior(const T* params, const T* X, int64_t n_rows, int S, uint64_t seed, T* out) const;
    // A refinement's settings, and the buffers it reuses from chunk to chunk of one call.
    struct RefinedPosterior {
        Refinement settings;
        std::vector<T> head;  // (N, 2Z) the refined q
        Workspace<T> ws;
    };
    // The decoder's weight matrices transposed, for decoder_input_backward_rowwise.
    struct DecoderTransposes {
        std::vector<std::vector<T>> W_t;  // per decoder layer, (n_out, n_in)
        std::vector<T> zeros;             // a zero bias, as wide as the widest layer input
    };
    const T* draw_posterior(const T* params, const T* x, int N, int S, uint64_t seed, Workspace<T>& ws,
                            RefinedPosterior* refine = nullptr) const;
    void row_keys(const T* X, int N, uint64_t seed, uint64_t* keys) const;
    void score(const T* params, const T* X, int64_t n_rows, int K, bool importance, uint64_t seed, double* out,
               const std::function<bool()>& interrupted, const Refinement& refine = {}) const;
    void refine_posterior(const T* params, const T* x, int N, const uint64_t* keys, const Refinement& refine,
                          T* head, Workspace<T>& ws) const;
    DecoderTransposes decoder_transposes(const T* params) const;
    void head_elbo_backward(const T* params, const DecoderTransposes& transposes, const T* x, int N, int S,
                            const T* head, const T* noise, double* elbo, Workspace<T>& ws) const;
    void decoder_input_backward_rowwise(const DecoderTransposes& transposes, int M, const T* d_out, T* dz,
                                        Workspace<T>& ws) const;
};

}  // namespace pyvae

#include "model/model_inference.h"
