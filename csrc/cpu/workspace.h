// Buffers of one pass, sized once for a capacity of rows and reused every step.
#pragma once
#include <algorithm>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "model/config.h"
#include "cpu/sparse_input.h"
#include "cpu/step_threads.h"

namespace pyvae {

template <class T>
struct Workspace {
    int capacity = 0, S = 0;
    std::vector<std::vector<T>> enc_out;  // (N, width) per encoder layer; the last is the head (N, 2Z)
    std::vector<std::vector<T>> dec_out;  // (S*N, width) per decoder layer; the last is (S*N, D)
    std::vector<T> x_obs;                 // (N, D) gathered rows, NaN where missing
    std::vector<T> x_enc;                 // (N, D) encoder input (Model::encoder_input_row), when a copy
    std::vector<T> noise, eps, z;         // (S, N, Z) base noise, standardized draw, latent
    std::vector<T> d_a, d_b;              // ping-pong gradient buffers, (S*N, widest)
    std::vector<T> d_head;                // (N, 2Z)
    std::vector<T> dz;                    // (S, N, Z)
    std::vector<double> recon, kl;        // (S*N) per-draw log p(x|z) and log q - log p(z)
    std::vector<double> kl_analytic;      // (N)
    std::vector<T> importance;            // (S*N) self-normalized weights of each row's draws (objective iwae)
    std::vector<uint64_t> keys;           // (N)
    SparseRows<T> sparse;                 // the encoder input by its nonzeros, when it is sparse (sparse_input.h)
    std::vector<int> dense_rows;          // inference: the rows too dense for `sparse` (Model::input_layer_rowwise)

    // What a pass needs: encode only the encoder's buffers, decode only the
    // decoder's; training and scoring need everything. Sizing only the parts
    // in use keeps `encode` from zero-filling ~80 MB of decoder buffers.
    enum Parts : unsigned { encoder = 1, decoder = 2, all = 3 };
    unsigned parts = 0;

    void reserve(const Config& c, const Layout& L, int rows, int samples, unsigned want = all) {
        if (rows <= capacity && samples == S && (want & ~parts) == 0) return;
        capacity = std::max(rows, capacity);
        S = samples;
        parts |= want;
        rows = capacity;
        const int64_t N = rows, SN = int64_t(samples) * rows, D = c.n_features, Z = c.n_components;
        enc_out.resize(L.encoder.size());
        if (parts & encoder)
            for (size_t l = 0; l < L.encoder.size(); ++l) enc_out[l].assign(N * L.encoder[l].n_out, T(0));
        x_enc.assign(encoder_reads_copy(c) ? N * D : 0, T(0));
        dec_out.resize(L.decoder.size());
        if (parts & decoder)
            for (size_t l = 0; l < L.decoder.size(); ++l) dec_out[l].assign(SN * L.decoder[l].n_out, T(0));
        if (parts != all) return;
        int widest = 2 * c.n_components;
        for (const Dense& d : L.decoder) widest = std::max(widest, d.n_out);
        for (const Dense& d : L.encoder) widest = std::max(widest, d.n_out);
        x_obs.assign(N * D, T(0));
        noise.assign(SN * Z, T(0));
        eps.assign(SN * Z, T(0));
        z.assign(SN * Z, T(0));
        d_a.assign(SN * widest, T(0));
        d_b.assign(SN * widest, T(0));
        d_head.assign(N * 2 * Z, T(0));
        dz.assign(SN * Z, T(0));
        recon.assign(SN, 0.0);
        kl.assign(SN, 0.0);
        kl_analytic.assign(N, 0.0);
        importance.assign(c.objective == Objective::iwae ? SN : 0, T(0));
        keys.assign(N, 0);
    }
};

// The buffers of train_epoch, kept by a model between calls. Fresh ones are
// allocated, zero-filled and faulted in page by page (16 MB at batch 1024):
// ~4% of a call of a few steps (partial_fit on a chunk, a benchmark window).
// A call that finds them in use (another Python thread training the same
// model) takes fresh ones; a copy of a model starts without any.
template <class T>
class TrainingBuffers {
   public:
    struct Buffers {
        Workspace<T> ws;
        std::vector<T> grad;
        // Team or caller alone, step by step, for steps of `chooser_batch` rows on
        // `chooser_threads` threads (a new batch size or thread count starts afresh).
        StepThreadChooser chooser;
        int chooser_batch = 0, chooser_threads = 0;
    };

    TrainingBuffers() = default;
    TrainingBuffers(const TrainingBuffers&) {}
    TrainingBuffers& operator=(const TrainingBuffers&) { return *this; }

    // The kept buffers while the lease lives, or fresh ones if they are taken.
    class Lease {
       public:
        explicit Lease(const TrainingBuffers& owner) : lock_(owner.mutex_, std::try_to_lock) {
            buffers_ = lock_.owns_lock() ? &owner.kept_ : &fresh_.emplace();
        }
        Buffers& operator*() const { return *buffers_; }
        Buffers* operator->() const { return buffers_; }

       private:
        std::unique_lock<std::mutex> lock_;
        std::optional<Buffers> fresh_;
        Buffers* buffers_ = nullptr;
    };

    Lease lease() const { return Lease(*this); }

   private:
    mutable std::mutex mutex_;
    mutable Buffers kept_;
};

}  // namespace pyvae
