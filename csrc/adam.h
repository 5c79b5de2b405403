// Adam over the flat parameter buffer: one fused loop, with L2 decay alpha on
// the weight matrices only (a Gaussian prior on them; biases and noise
// variances are free).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "config.h"

namespace pyvae {

// params, m, v (P) updated in place from grad (P) at Adam step `step` (from 1).
template <class T>
void adam_update(const Layout& layout, T* params, const T* grad, T* m, T* v, int64_t step, const AdamSettings& a,
                 int n_threads) {
    const double bc1 = 1 - std::pow(a.beta1, double(step));
    const double bc2 = 1 - std::pow(a.beta2, double(step));
    const T step_size = T(a.learning_rate / bc1), inv_sqrt_bc2 = T(1 / std::sqrt(bc2));
    const T b1 = T(a.beta1), b2 = T(a.beta2), eps = T(a.epsilon);
    // Fixed chunks of each tensor, one parallel loop over all of them: where a
    // chunk starts (and so which elements take the vector or the scalar path)
    // does not depend on the thread count.
    constexpr int64_t kChunk = 16384;
    struct Chunk {
        int64_t lo, hi;
        T decay;
    };
    std::vector<Chunk> chunks;
    auto add = [&](int64_t lo, int64_t hi, T decay) {
        for (int64_t c = lo; c < hi; c += kChunk) chunks.push_back({c, std::min(hi, c + kChunk), decay});
    };
    for (const auto* layers : {&layout.encoder, &layout.decoder})
        for (const Dense& d : *layers) {
            add(d.w, d.b, T(a.alpha));
            add(d.b, d.b + d.n_out, T(0));
        }
    if (layout.n_noise_logvar) add(layout.noise_logvar, layout.noise_logvar + layout.n_noise_logvar, T(0));
    T* __restrict p = params;
    const T* __restrict g = grad;
    T* __restrict mm = m;
    T* __restrict vv = v;
    const int n_chunks = int(chunks.size());
    const int nt = layout.size > 65536 ? std::min(n_threads, n_chunks) : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int c = 0; c < n_chunks; ++c) {
        const int64_t lo = chunks[c].lo, hi = chunks[c].hi;
        const T decay = chunks[c].decay;
#pragma omp simd
        for (int64_t k = lo; k < hi; ++k) {
            const T gk = g[k] + decay * p[k];
            const T mk = b1 * mm[k] + (1 - b1) * gk;
            const T vk = b2 * vv[k] + (1 - b2) * gk * gk;
            mm[k] = mk;
            vv[k] = vk;
            p[k] -= step_size * mk / (std::sqrt(vk) * inv_sqrt_bc2 + eps);
        }
    }
}

}  // namespace pyvae
