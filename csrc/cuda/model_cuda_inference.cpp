// ModelCuda's inference: encodings, decodings, draws and scores, in chunks of
// rows on the device (chunk_rows). The orchestration of model_inference.h's
// Model<float> methods with the `_cuda` kernels. See model_cuda.h.
#include <algorithm>
#include <vector>

#include "model_cuda.h"

namespace pyvae {

int ModelCuda::prepare_inference(const float* params, int64_t n_rows, int samples) {
    activate();
    const int C = chunk_rows(samples);
    infer_.reserve(config, layout, int(std::min<int64_t>(C, n_rows)), samples, stream_);
    upload_params(params);
    return C;
}

void ModelCuda::encode(const float* params, const float* X, int64_t n_rows, float* mu, float* logvar) {
    std::lock_guard<std::mutex> lock(mutex_);
    const int Z = config.n_components, D = config.n_features;
    const int C = prepare_inference(params, n_rows, 1);
    std::vector<float> head(size_t(std::min<int64_t>(C, n_rows)) * 2 * Z);
    for (int64_t start = 0; start < n_rows; start += C) {
        const int N = int(std::min<int64_t>(C, n_rows - start));
        upload(infer_.x_obs.get(), X + start * D, int64_t(N) * D);
        const float* x = infer_.x_obs.get();
        if (config.missing) {
            contiguous_encoder_input_cuda(stream_, infer_.x_enc.get(), x, int64_t(N) * D);
            x = infer_.x_enc.get();
        }
        const float* h = encoder_forward(x, N, infer_);
        download(head.data(), h, int64_t(N) * 2 * Z);
        sync();
        for (int i = 0; i < N; ++i)
            for (int j = 0; j < Z; ++j) {
                mu[(start + i) * Z + j] = head[size_t(i) * 2 * Z + j];
                logvar[(start + i) * Z + j] = head[size_t(i) * 2 * Z + Z + j];
            }
    }
}

void ModelCuda::sample_prior(int64_t n_rows, uint64_t seed, float* z) {
    std::lock_guard<std::mutex> lock(mutex_);
    activate();
    const int Z = config.n_components;
    const int64_t C = int64_t(1) << 20;
    DeviceArray<float> buf;
    buf.reserve(std::min<int64_t>(C, n_rows) * Z);
    for (int64_t start = 0; start < n_rows; start += C) {
        const int64_t N = std::min<int64_t>(C, n_rows - start);
        sample_prior_cuda(stream_, buf.get(), N, Z, start, seed);
        download(z + start * Z, buf.get(), N * Z);
        sync();
    }
}

void ModelCuda::decode(const float* params, const float* Zs, int64_t n_rows, float* out) {
    decode_chunks(params, Zs, n_rows, nullptr, out);
}

void ModelCuda::sample_observations(const float* params, const float* Zs, int64_t n_rows, uint64_t seed,
                                    float* out) {
    decode_chunks(params, Zs, n_rows, &seed, out);
}

void ModelCuda::decode_chunks(const float* params, const float* Zs, int64_t n_rows, const uint64_t* seed,
                              float* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    const int Z = config.n_components, D = config.n_features;
    const int C = prepare_inference(params, n_rows, 1);
    for (int64_t start = 0; start < n_rows; start += C) {
        const int N = int(std::min<int64_t>(C, n_rows - start));
        const int64_t n = int64_t(N) * D;
        upload(infer_.z.get(), Zs + start * Z, int64_t(N) * Z);
        float* o = const_cast<float*>(decoder_forward(infer_.z.get(), N, infer_));
        if (config.likelihood == Likelihood::bernoulli) sigmoid_cuda(stream_, o, n);
        // The continuous Bernoulli draws from its logits; only its means need the mean kernel.
        if (config.likelihood == Likelihood::continuous_bernoulli && !seed)
            continuous_bernoulli_mean_cuda(stream_, o, n);
        if (seed)
            sample_observations_cuda(stream_, o, params_.get() + layout.noise_logvar, float(config.variance_floor), N,
                                     D, start, *seed, config.likelihood);
        download(out + start * D, o, n);
        sync();
    }
}

const float* ModelCuda::posterior_draws(const float* x, int N, int S, uint64_t seed, DeviceWorkspace& ws) {
    const int Z = config.n_components, D = config.n_features;
    row_keys_cuda(stream_, ws.keys.get(), x, N, D, seed);
    fill_noise_cuda(stream_, ws.noise.get(), ws.keys.get(), N, S, Z, base_noise_is_uniform(config.posterior));
    const float* enc = x;
    if (config.missing) {
        contiguous_encoder_input_cuda(stream_, ws.x_enc.get(), x, int64_t(N) * D);
        enc = ws.x_enc.get();
    }
    const float* head = encoder_forward(enc, N, ws);
    reparameterize_forward_cuda(stream_, ws.eps.get(), ws.z.get(), head, ws.noise.get(), N, S, Z, config.posterior);
    return head;
}

void ModelCuda::sample_posterior(const float* params, const float* X, int64_t n_rows, int S, uint64_t seed,
                                 float* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    const int Z = config.n_components, D = config.n_features;
    const int C = prepare_inference(params, n_rows, S);
    for (int64_t start = 0; start < n_rows; start += C) {
        const int N = int(std::min<int64_t>(C, n_rows - start));
        upload(infer_.x_obs.get(), X + start * D, int64_t(N) * D);
        posterior_draws(infer_.x_obs.get(), N, S, seed, infer_);
        for (int s = 0; s < S; ++s)
            download(out + (int64_t(s) * n_rows + start) * Z, infer_.z.get() + int64_t(s) * N * Z, int64_t(N) * Z);
        sync();
    }
}

void ModelCuda::score(const float* params, const float* X, int64_t n_rows, int K, bool importance, uint64_t seed,
                      double* out, const std::function<bool()>& interrupted, const Refinement& refine) {
    if (refine.steps > 0)
        throw std::invalid_argument("the CUDA engine scores with the encoder's q(z|x); refine_steps=0 there");
    std::lock_guard<std::mutex> lock(mutex_);
    const int D = config.n_features;
    const int S = importance ? K : config.n_mc_samples;
    const int C = prepare_inference(params, n_rows, S);
    const bool analytic = config.kl == KLMode::analytic;
    for (int64_t start = 0; start < n_rows; start += C) {
        const int N = int(std::min<int64_t>(C, n_rows - start));
        upload(infer_.x_obs.get(), X + start * D, int64_t(N) * D);
        const float* head = posterior_draws(infer_.x_obs.get(), N, S, seed, infer_);
        const float* o = decoder_forward(infer_.z.get(), S * N, infer_);
        likelihood_forward_cuda(stream_, config, params_.get() + layout.noise_logvar, o, infer_.x_obs.get(), N, S,
                                infer_.recon.get());
        kl_forward(head, N, S, infer_);
        score_rows_cuda(stream_, infer_.scores.get(), infer_.recon.get(), infer_.kl.get(), infer_.kl_analytic.get(),
                        N, S, importance, analytic);
        download(out + start, infer_.scores.get(), N);
        sync();
        if (interrupted && interrupted()) return;
    }
}

}  // namespace pyvae
