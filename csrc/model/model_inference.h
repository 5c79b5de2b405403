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

// Encodes x (N, D) and draws ws.z (S, N, Z) with noise keyed by each row's bytes;
// returns the head of q(z|x) drawn from. With `refine` (and steps), each row's q
// is refined first (refine_posterior; the head returned is refine->head): the
// bound or the weights of a better proposal.
template <class T>
const T* Model<T>::draw_posterior(const T* params, const T* x, int N, int S, uint64_t seed, Workspace<T>& ws,
                                  RefinedPosterior* refine) const {
    row_keys(x, N, seed, ws.keys.data());
    fill_noise(ws.noise.data(), ws.keys.data(), N, S, config.n_components,
               base_noise_is_uniform(config.posterior), n_threads);
    const T* head = encoder_forward(params, contiguous_encoder_input(x, N, ws), N, ws, Pass::inference);
    if (refine && refine->settings.steps > 0) {
        refine->head.assign(head, head + int64_t(N) * 2 * config.n_components);
        refine_posterior(params, x, N, ws.keys.data(), refine->settings, refine->head.data(), refine->ws);
        head = refine->head.data();
    }
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
// With `refine`, each row's q(z|x) is refined (refine_posterior) before the
// draws: the bound of a better proposal, still a lower bound on log p(x).
template <class T>
void Model<T>::score(const T* params, const T* X, int64_t n_rows, int K, bool importance, uint64_t seed,
           double* out, const std::function<bool()>& interrupted, const Refinement& refine) const {
    const int D = config.n_features;
    const int S = importance ? K : config.n_mc_samples;
    const int C = chunk_rows(S);
    Workspace<T> ws;
    ws.reserve(config, layout, int(std::min<int64_t>(C, n_rows)), S);
    RefinedPosterior refined{refine};
    bool stop = false;
    for_each_chunk(X, n_rows, D, C, [&](const T* x, int64_t start, int n) {
        if (stop) return;
        const T* head = draw_posterior(params, x, n, S, seed, ws, &refined);
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

// Tag of the refinement's noise stream, apart from the draws that follow it.
constexpr uint64_t kRefineStream = 0x5245464e5245464eULL;

// Refines head (N, 2Z), each row's q(z|x) for x (N, D) (NaN: missing, left out
// of p(x|z)), in place: refine.steps steps of Adam on the row's own ELBO
// (head_elbo_backward) with refine.draws fresh draws each, the step size
// falling linearly from refine.rate to 0. The encoder's q is amortized: one
// network for every row, and far from the training data (a row in the tails,
// a row with holes it never saw as such) it can sit far from the row's best q;
// the importance-weighted bound and the conditional means of a better proposal
// are tighter and less noisy (Cremer et al., 2018; Kim et al., 2018). The
// noise of row i comes from keys[i] and the step only, and every product goes
// row by row: a row's result does not depend on the rows beside it or on the
// thread count. ws is the refinement's own workspace.
template <class T>
void Model<T>::refine_posterior(const T* params, const T* x, int N, const uint64_t* keys, const Refinement& refine,
                                T* head, Workspace<T>& ws) const {
    const int Z = config.n_components, S = refine.draws, H = 2 * Z;
    ws.reserve(config, layout, N, S);
    const DecoderTransposes transposes = decoder_transposes(params);
    std::vector<T> m(size_t(N) * H, T(0)), v(size_t(N) * H, T(0));
    std::vector<uint64_t> step_keys(N);
    const bool uniform = base_noise_is_uniform(config.posterior);
    AdamSettings adam;
    for (int t = 0; t < refine.steps; ++t) {
        for (int i = 0; i < N; ++i) step_keys[i] = combine_keys(combine_keys(keys[i], kRefineStream), uint64_t(t));
        fill_noise(ws.noise.data(), step_keys.data(), N, S, Z, uniform, n_threads);
        head_elbo_backward(params, transposes, x, N, S, head, ws.noise.data(), nullptr, ws);
        adam.learning_rate = refine.rate * (1.0 - double(t) / refine.steps);
        const AdamStep<T> step = adam_step<T>(adam, t + 1);
        const T* g = ws.d_head.data();
        for (int64_t k = 0; k < int64_t(N) * H; ++k) adam_element(head[k], g[k], m[k], v[k], T(0), step);
        logvar_clamp_forward(head, N, Z);
    }
}

template <class T>
typename Model<T>::DecoderTransposes Model<T>::decoder_transposes(const T* params) const {
    DecoderTransposes t;
    size_t widest = 0;
    for (const Dense& L : layout.decoder) {
        const T* W = params + L.w;  // (n_in, n_out)
        std::vector<T>& W_t = t.W_t.emplace_back(size_t(L.n_in) * L.n_out);
        for (int k = 0; k < L.n_in; ++k)
            for (int o = 0; o < L.n_out; ++o) W_t[int64_t(o) * L.n_in + k] = W[int64_t(k) * L.n_out + o];
        widest = std::max(widest, size_t(L.n_in));
    }
    t.zeros.assign(widest, T(0));
    return t;
}

// ws.d_head (N, 2Z) = d(-ELBO_i)/d head_i for each row i of x (N, D) and its
// q(z|x_i) given by head (N, 2Z), the ELBO estimated with the S draws of the
// base noise (S, N, Z):
//     ELBO_i = (1/S) sum_s log p(x_i | z_si) - KL_i,
// the KL in closed form for the Gaussian q, else by the same draws. With elbo,
// elbo (N) = that estimate. The decoder's parameters are held fixed; every
// product is row by row (decoder_forward's inference pass,
// decoder_input_backward_rowwise). ws holds S draws per row for N rows.
template <class T>
void Model<T>::head_elbo_backward(const T* params, const DecoderTransposes& transposes, const T* x, int N, int S,
                                  const T* head, const T* noise, double* elbo, Workspace<T>& ws) const {
    const int Z = config.n_components;
    const DrawWeights<T> w_draw(T(1) / T(S));
    const bool analytic = config.posterior == Posterior::gaussian;
    std::vector<T> d_noise(size_t(layout.n_noise_logvar) + 1);  // the likelihood's parameters: not refined
    reparameterize(head, noise, ws.eps.data(), ws.z.data(), N, S);
    const T* out = decoder_forward(params, ws.z.data(), S * N, ws, Pass::inference);
    if (elbo) {
        likelihood_forward(params, out, x, N, S, ws.recon.data());
        kl_analytic_forward(ws.kl_analytic.data(), head, N, Z);
        kl_mc_forward(ws.kl.data(), head, ws.eps.data(), ws.z.data(), N, S, Z, config.posterior, n_threads);
        for (int i = 0; i < N; ++i)
            elbo[i] = elbo_of(elbo_forward(ws.recon.data(), ws.kl.data(), ws.kl_analytic.data(), i, N, S, !analytic));
    }
    T* d_out = ws.d_a.data();
    likelihood_backward(params, out, x, N, S, w_draw, d_out, d_noise.data());
    decoder_input_backward_rowwise(transposes, S * N, d_out, ws.dz.data(), ws);
    if (analytic) kl_analytic_backward(ws.d_head.data(), head, N, Z, T(1), T(1));
    else kl_mc_backward(ws.d_head.data(), ws.dz.data(), ws.z.data(), N, S, Z, T(1), T(1), w_draw, true);
    reparameterize_backward(ws.d_head.data(), ws.dz.data(), head, ws.eps.data(), N, S, Z, n_threads);
    logvar_clamp_backward(ws.d_head.data(), head, N, Z);
}

// dz (M, Z) = d(loss)/dz from d_out (M, decoder_out_width) through the decoder
// of the last decoder_forward (its outputs in ws.dec_out): the input gradient
// only, d_inp = d @ W^T by the inference pass's row-wise product on W's
// transpose, so that a row's result is the same bits in any chunk (the promise
// of dense_forward_rowwise, for the backward), then the activation's
// derivative. transposes: decoder_transposes of the parameters. Uses ws.d_a /
// ws.d_b as scratch; d_out may be either.
template <class T>
void Model<T>::decoder_input_backward_rowwise(const DecoderTransposes& transposes, int M, const T* d_out, T* dz,
                                              Workspace<T>& ws) const {
    const T* d = d_out;
    for (int l = int(layout.decoder.size()) - 1; l >= 0; --l) {
        const Dense& L = layout.decoder[l];
        const int I = L.n_in, O = L.n_out;
        T* d_inp = l > 0 ? (d == ws.d_a.data() ? ws.d_b.data() : ws.d_a.data()) : dz;
        dense_forward_rowwise(d_inp, d, transposes.W_t[l].data(), transposes.zeros.data(), M, O, I, /*hidden=*/false,
                              config.activation, n_threads);
        if (l > 0) {  // through the activation of the layer's input, from its saved output
            const T* y = ws.dec_out[l - 1].data();
            const int64_t n = int64_t(M) * I;
            if (config.activation == Activation::tanh)
                for (int64_t k = 0; k < n; ++k) d_inp[k] = tanh_backward(d_inp[k], y[k]);
            else
                for (int64_t k = 0; k < n; ++k) d_inp[k] = relu_backward(d_inp[k], y[k]);
        }
        d = d_inp;
    }
}

}  // namespace pyvae
