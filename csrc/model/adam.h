// Adam over the flat parameter buffer: one fused loop, with L2 decay alpha on
// the weight matrices only (a Gaussian prior on them; biases and noise
// variances are free).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "model/config.h"
#include "cpu/dispatch.h"
#include "cpu/parallel.h"

namespace pyvae {

// Adam on elements [lo, hi) of the flat buffers, with weight decay `decay`:
// the vectorized leaf kernel, one clone per instruction set (dispatch.h). With
// kConsume, each gradient entry is set to zero once used: the loop is bound by
// the divider (a square root and a division per entry), so the extra store is
// nearly free, and the next step needs no pass to zero the gradient.
template <class T, bool kConsume>
void adam_chunk(T* __restrict p, std::conditional_t<kConsume, T, const T>* __restrict g,
                T* __restrict mm, T* __restrict vv, int64_t lo, int64_t hi, T decay, T b1, T b2,
                T step_size, T inv_sqrt_bc2, T eps) {
    return per_isa([&]() PYVAE_KERNEL {
#pragma omp simd
        for (int64_t k = lo; k < hi; ++k) {
            const T gk = g[k] + decay * p[k];
            if constexpr (kConsume) g[k] = T(0);
            const T mk = b1 * mm[k] + (1 - b1) * gk;
            const T vk = b2 * vv[k] + (1 - b2) * gk * gk;
            mm[k] = mk;
            vv[k] = vk;
            p[k] -= step_size * mk / (std::sqrt(vk) * inv_sqrt_bc2 + eps);
        }
    });
}

// params, m, v (P) updated in place from grad (P) at Adam step `step` (from 1).
// With a non-const grad (G = T), the gradient is left zeroed: consumed.
template <class T, class G>
void adam_update(const Layout& layout, T* params, G* grad, T* m, T* v, int64_t step, const AdamSettings& a,
                 int n_threads) {
    constexpr bool consume = !std::is_const_v<G>;
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
    // Each chunk runs the same clone of the kernel whichever thread takes it:
    // results do not depend on the thread count.
    const int64_t n_chunks = int64_t(chunks.size());
    parallel_for(n_chunks, chunk_for(n_chunks), n_threads, layout.size > 65536, [&](int64_t first, int64_t last) {
        for (int64_t c = first; c < last; ++c)
            adam_chunk<T, consume>(params, grad, m, v, chunks[c].lo, chunks[c].hi, chunks[c].decay, b1, b2,
                                   step_size, inv_sqrt_bc2, eps);
    });
}

}  // namespace pyvae
