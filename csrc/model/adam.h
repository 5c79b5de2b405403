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
#include "model/hd.h"
#include "cpu/dispatch.h"
#include "cpu/parallel.h"

namespace pyvae {

// The settings of Adam step `step` (from 1) in T, its bias corrections
// 1 - beta^step folded in once per step: the step size lr / (1 - beta1^step)
// and 1 / sqrt(1 - beta2^step), which scales sqrt(v).
template <class T>
struct AdamStep {
    T step_size, inv_sqrt_bc2, b1, b2, eps;
};
template <class T>
PYVAE_HD inline AdamStep<T> adam_step(const AdamSettings& a, int64_t step) {
    const double bc1 = 1 - hd_pow(a.beta1, double(step));
    const double bc2 = 1 - hd_pow(a.beta2, double(step));
    return {T(a.learning_rate / bc1), T(1 / hd_sqrt(bc2)), T(a.beta1), T(a.beta2), T(a.epsilon)};
}

// One element's update from its gradient g, with L2 decay `decay` (alpha or 0):
// g += decay p; m, v = the moving averages of g and g^2; p -= step_size m / (sqrt(v) / sqrt(bc2) + eps).
template <class T>
PYVAE_HD inline void adam_element(T& p, T g, T& m, T& v, T decay, const AdamStep<T>& s) {
    const T gk = g + decay * p;
    const T mk = s.b1 * m + (1 - s.b1) * gk;
    const T vk = s.b2 * v + (1 - s.b2) * gk * gk;
    m = mk;
    v = vk;
    p -= s.step_size * mk / (hd_sqrt(vk) * s.inv_sqrt_bc2 + s.eps);
}

// Adam on elements [lo, hi) of the flat buffers, with weight decay `decay`:
// the vectorized leaf kernel, one clone per instruction set (dispatch.h). With
// kConsume, the chunk's gradient is zeroed once used, while it is still in
// cache, so the next step needs no pass over the whole buffer to zero it.
template <class T, bool kConsume>
void adam_chunk(T* __restrict p, std::conditional_t<kConsume, T, const T>* __restrict g,
                T* __restrict mm, T* __restrict vv, int64_t lo, int64_t hi, T decay, AdamStep<T> s) {
    return per_isa([&]() PYVAE_KERNEL {
        // Local copies: through the lambda's captured references the compiler cannot
        // tell that the stores to p, m and v leave s and the other arrays alone, and it
        // reloaded s's fields and p in every vector iteration.
        T* __restrict pp = p;
        const T* __restrict gg = g;
        T* __restrict m_ = mm;
        T* __restrict v_ = vv;
        const AdamStep<T> st = s;
        const T dc = decay;
#pragma omp simd
        for (int64_t k = lo; k < hi; ++k) adam_element(pp[k], gg[k], m_[k], v_[k], dc, st);
        // The gradient zeroed after the loop, while the chunk is in cache: as a fourth
        // store stream inside it, Adam took 8.6% of a 784-400-20 step instead of 6.3%.
        if constexpr (kConsume) std::fill(g + lo, g + hi, T(0));
    });
}

// params, m, v (P) updated in place from grad (P) at Adam step `step` (from 1).
// With a non-const grad (G = T), the gradient is left zeroed: consumed.
template <class T, class G>
void adam_update(const Layout& layout, T* params, G* grad, T* m, T* v, int64_t step, const AdamSettings& a,
                 int n_threads) {
    constexpr bool consume = !std::is_const_v<G>;
    const AdamStep<T> s = adam_step<T>(a, step);
    // Fixed chunks of each tensor, one parallel loop over all of them: where a
    // chunk starts (and so which elements take the vector or the scalar path)
    // does not depend on the thread count.
    constexpr int64_t kChunk = 16384;
    struct Chunk {
        int64_t lo, hi;
        T decay;
    };
    std::vector<Chunk> chunks;
    // At most one partial chunk per tensor: one allocation a step, not one per doubling.
    chunks.reserve(size_t(layout.size / kChunk) + 2 * (layout.encoder.size() + layout.decoder.size()) + 1);
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
            adam_chunk<T, consume>(params, grad, m, v, chunks[c].lo, chunks[c].hi, chunks[c].decay, s);
    });
}

}  // namespace pyvae
