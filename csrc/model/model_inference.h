// Model<T>'s inference: encodings, decodings, draws and scores, computed in
// chunks of rows so that the buffers stay a few MB whatever the data's size.
// Included by model.h, after the class.
#pragma once

namespace pyvae {

// mu, logvar (N, Z) of q(z|x) for X (N, D).
template <class T>
void Model<T>::encode(const T* params, const T* X, int64_t n_rows, T* mu, T* logvar) const {
    const int Z = config.n_components, D = config.n_features, C = chunk_rows(1);
    Workspace<T> ws;
    ws.reserve(config, layout, int(std::min<int64_t>(C, n_rows)), 1, Workspace<T>::encoder);
    for_each_chunk(X, n_rows, D, C, [&](const T* x, int64_t start, int n) {
        const T* head = encoder_forward(params, contiguous_encoder_input(x, n, ws), n, ws, Pass::inference);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < Z; ++j) {
                mu[(start + i) * Z + j] = head[int64_t(i) * 2 * Z + j];
                logvar[(start + i) * Z + j] = head[int64_t(i) * 2 * Z + Z + j];
            }
    });
}

// out (N, D): the mean of p(x|z) for Zs (N, Z) (observation.h).
template <class T>
void Model<T>::decode(const T* params, const T* Zs, int64_t n_rows, T* out) const {
    const int Z = config.n_components, D = config.n_features, W = decoder_out_width(config), C = chunk_rows(1);
    Workspace<T> ws;
    ws.reserve(config, layout, int(std::min<int64_t>(C, n_rows)), 1, Workspace<T>::decoder);
    for_each_chunk(Zs, n_rows, Z, C, [&](const T* z, int64_t start, int n) {
        const T* o = decoder_forward(params, z, n, ws, Pass::inference);
        for (int i = 0; i < n; ++i) observation_mean_row(config, o + int64_t(i) * W, out + (start + i) * D);
    });
}

// z (N, Z) ~ N(0, I), row i from the stream combine_keys(seed, i).
template <class T>
void Model<T>::sample_prior(int64_t n_rows, uint64_t seed, T* z) const {
    const int Z = config.n_components;
    const int64_t C = chunk_rows(1);
    std::vector<uint64_t> keys(size_t(std::min<int64_t>(C, n_rows)));
    for (int64_t start = 0; start < n_rows; start += C) {  // the posterior's draws with S = 1 (fill_noise)
        const int n = int(std::min<int64_t>(C, n_rows - start));
        for (int i = 0; i < n; ++i) keys[i] = combine_keys(seed, uint64_t(start + i));
        fill_noise(z + start * Z, keys.data(), n, 1, Z, false, n_threads);
    }
}

// x (N, D) ~ p(x | z) for Zs (N, Z), row i from the stream combine_keys(seed, i) (observation.h).
template <class T>
void Model<T>::sample_observations(const T* params, const T* Zs, int64_t n_rows, uint64_t seed, T* out) const {
    const int D = config.n_features, W = decoder_out_width(config), C = chunk_rows(1);
    const std::vector<T> sd = observation_sd(params);
    Workspace<T> ws;
    ws.reserve(config, layout, int(std::min<int64_t>(C, n_rows)), 1, Workspace<T>::decoder);
    for_each_chunk(Zs, n_rows, config.n_components, C, [&](const T* z, int64_t start, int n) {
        const T* o = decoder_forward(params, z, n, ws, Pass::inference);
        for (int i = 0; i < n; ++i)
            observation_draw_row(config, o + int64_t(i) * W, sd.data(), combine_keys(seed, uint64_t(start + i)),
                                 out + (start + i) * D);
    });
}

// z (S, N, Z) ~ q(z | x) for X (N, D), the noise of each row tied to its bytes.
template <class T>
void Model<T>::sample_posterior(const T* params, const T* X, int64_t n_rows, int S, uint64_t seed, T* out) const {
    const int Z = config.n_components, D = config.n_features, C = chunk_rows(S);
    Workspace<T> ws;
    ws.reserve(config, layout, int(std::min<int64_t>(C, n_rows)), S);
    for_each_chunk(X, n_rows, D, C, [&](const T* x, int64_t start, int n) {
        draw_posterior(params, x, n, S, seed, ws);
        for (int s = 0; s < S; ++s)
            std::memcpy(out + (int64_t(s) * n_rows + start) * Z, ws.z.data() + int64_t(s) * n * Z,
                        sizeof(T) * n * Z);
    });
}

// Encodes x (N, D) and draws ws.z (S, N, Z) with noise keyed by each row's bytes.
template <class T>
const T* Model<T>::draw_posterior(const T* params, const T* x, int N, int S, uint64_t seed, Workspace<T>& ws) const {
    row_keys(x, N, seed, ws.keys.data());
    fill_noise(ws.noise.data(), ws.keys.data(), N, S, config.n_components,
               base_noise_is_uniform(config.posterior), n_threads);
    const T* head = encoder_forward(params, contiguous_encoder_input(x, N, ws), N, ws, Pass::inference);
    reparameterize(head, ws.noise.data(), ws.eps.data(), ws.z.data(), N, S);
    return head;
}

// Noise keys for rows: a hash of each row's bytes and the seed, so a row gets
// the same draws wherever it stands and whatever else is in the call.
template <class T>
void Model<T>::row_keys(const T* X, int N, uint64_t seed, uint64_t* keys) const {
    const int D = config.n_features;
    for (int i = 0; i < N; ++i)
        keys[i] = combine_keys(seed, hash_bytes(X + int64_t(i) * D, sizeof(T) * D));
}

// Per-row scores for X (N, D) with K draws each: the ELBO (K = 1: S draws
// averaged, analytic or MC KL as configured; beta is not applied, the score
// is a bound in nats), or with importance=true the importance-weighted bound
// log (1/K) sum_k p(x, z_k) / q(z_k | x).
template <class T>
void Model<T>::score(const T* params, const T* X, int64_t n_rows, int K, bool importance, uint64_t seed,
           double* out, const std::function<bool()>& interrupted) const {
    const int D = config.n_features;
    const int S = importance ? K : config.n_mc_samples;
    const int C = chunk_rows(S);
    Workspace<T> ws;
    ws.reserve(config, layout, int(std::min<int64_t>(C, n_rows)), S);
    bool stop = false;
    for_each_chunk(X, n_rows, D, C, [&](const T* x, int64_t start, int n) {
        if (stop) return;
        const T* head = draw_posterior(params, x, n, S, seed, ws);
        const T* o = decoder_forward(params, ws.z.data(), S * n, ws, Pass::inference);
        likelihood_forward(params, o, x, n, S, ws.recon.data());
        kl_forward(head, ws.eps.data(), ws.z.data(), n, S, ws.kl.data(), ws.kl_analytic.data());
        const bool mc = config.kl == KLMode::mc;
        for (int i = 0; i < n; ++i) {
            if (importance) {
                out[start + i] = importance_bound_forward(ws.recon.data(), ws.kl.data(), i, n, S);
            } else {
                const ElboTerms t = elbo_forward(ws.recon.data(), ws.kl.data(), ws.kl_analytic.data(), i, n, S, mc);
                out[start + i] = elbo_of(t);
            }
        }
        stop = interrupted && interrupted();
    });
}

}  // namespace pyvae
