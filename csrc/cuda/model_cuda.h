// The VAE on one NVIDIA GPU, float32: the same model, layout, noise streams and
// epoch loop as Model<float> (model.h), with every kernel replaced by its `_cuda`
// twin (kernels_cuda.cuh). Host arrays in and out, device buffers inside:
//
// - the training data is copied to the device once (bind_data) and minibatches
//   are gathered there; each train_epoch uploads the parameters and Adam moments
//   from the host arrays it is given and writes them back at its end;
// - a training step needs no host round trip: its scalars (step, batch cursor,
//   baseline, Adam's bias corrections, the epoch's sums) live in a StepState on
//   the device, so full batches run as one captured CUDA graph, replayed.
//
// Not thread-safe by itself: calls on one model are serialized by a mutex.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "kernels_cuda.cuh"

namespace pyvae {

// A device allocation that only grows; contents are lost when it does.
template <class T>
class DeviceArray {
   public:
    DeviceArray() = default;
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    DeviceArray(DeviceArray&& o) noexcept : ptr_(o.ptr_), size_(o.size_) { o.ptr_ = nullptr, o.size_ = 0; }
    ~DeviceArray() { release(); }
    // Returns true when the buffer moved.
    bool reserve(int64_t n) {
        if (n <= size_) return false;
        release();
        PYVAE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), sizeof(T) * size_t(n)));
        size_ = n;
        return true;
    }
    void release() {
        if (ptr_) cudaFree(ptr_);
        ptr_ = nullptr;
        size_ = 0;
    }
    T* get() const { return ptr_; }
    int64_t size() const { return size_; }

   private:
    T* ptr_ = nullptr;
    int64_t size_ = 0;
};

// Streams and cuBLAS handles alive in this process, for tests: none may leak.
inline std::atomic<int64_t>& live_handles() {
    static std::atomic<int64_t> count{0};
    return count;
}

// Owns a handle of the CUDA runtime or cuBLAS, destroyed by `Destroy`. As a
// member it is released even when the constructor that creates it throws
// part way (a raw handle would leak: no destructor runs for that object).
template <class Handle, auto Destroy>
class Owned {
   public:
    Owned() = default;
    Owned(const Owned&) = delete;
    Owned& operator=(const Owned&) = delete;
    ~Owned() { reset(); }
    // Takes over a handle just created.
    void adopt(Handle h) {
        reset();
        handle_ = h;
        if (handle_) ++live_handles();
    }
    void reset() {
        if (handle_) {
            Destroy(handle_);
            --live_handles();
        }
        handle_ = nullptr;
    }
    operator Handle() const { return handle_; }

   private:
    Handle handle_ = nullptr;
};

// Device buffers of one pass, as Workspace<T> (workspace.h).
struct DeviceWorkspace {
    int capacity = 0, S = 0;
    uint64_t generation = 0;  // bumped whenever a buffer moves (captured graphs hold raw pointers)
    std::vector<DeviceArray<float>> enc_out, dec_out;  // (N, width) / (S*N, width) per layer
    DeviceArray<float> x_obs, x_enc;                   // (N, D)
    DeviceArray<float> noise, eps, z, dz;              // (S, N, Z)
    DeviceArray<float> d_a, d_b;                       // (S*N, widest)
    DeviceArray<float> d_head;                         // (N, 2Z)
    DeviceArray<float> lv_terms;                       // (S*N, D) Gaussian noise-variance gradient terms
    DeviceArray<float> column;                         // (D)
    DeviceArray<float> ones;                           // (S*N) for column sums
    DeviceArray<double> recon, kl;                     // (S*N)
    DeviceArray<double> kl_analytic, scores;           // (N)
    DeviceArray<uint64_t> keys;                        // (N)

    void reserve(const Config& c, const Layout& L, int rows, int samples, cudaStream_t stream);
    LogvarScratch logvar_scratch() const { return {lv_terms.get(), column.get(), ones.get()}; }
};

class ModelCuda {
   public:
    Config config;
    Layout layout;
    int n_threads = 1;  // kept for the interface of Model32; the device does not use it
    bool use_graphs = true;

    ModelCuda(const Config& c, int device);
    ~ModelCuda();
    ModelCuda(const ModelCuda&) = delete;
    ModelCuda& operator=(const ModelCuda&) = delete;

    int64_t n_params() const { return layout.size; }
    int device() const { return device_; }

    // Delegates to the CPU model: the same numbers, whatever the engine.
    void init_params(float* params, uint64_t seed) const;

    // Model::loss_and_grad on host arrays; recon, kl (S*N), kl_analytic (N) are
    // resized and filled, mean_f as BatchStats::mean_f.
    double loss_and_grad(const float* params, float* grad, const float* x_obs, const float* x_enc,
                         const float* noise, int N, double baseline, std::vector<double>& recon,
                         std::vector<double>& kl, std::vector<double>& kl_analytic, double* mean_f);

    void adam_update(float* params, const float* grad, float* m, float* v, int64_t step, const AdamSettings& a);

    // The training data X (n_rows, D), copied to the device and kept there. A
    // fingerprint of its contents tells a later call whether it is still the same data.
    void bind_data(const float* X, int64_t n_rows);
    bool is_bound(const float* X, int64_t n_rows) const;
    void release_data();
    static uint64_t fingerprint(const float* X, int64_t n_rows, int D);

    // Model::train_epoch on the bound data (rows index into it).
    EpochResult train_epoch(float* params, float* m, float* v, int64_t* step, double* baseline,
                            const int64_t* rows, int64_t n_rows, int batch_size, uint64_t seed,
                            const AdamSettings& adam, const std::function<bool()>& interrupted);

    void encode(const float* params, const float* X, int64_t n_rows, float* mu, float* logvar);
    void decode(const float* params, const float* Zs, int64_t n_rows, float* out);
    void sample_prior(int64_t n_rows, uint64_t seed, float* z);
    void sample_observations(const float* params, const float* Zs, int64_t n_rows, uint64_t seed, float* out);
    void sample_posterior(const float* params, const float* X, int64_t n_rows, int S, uint64_t seed, float* out);
    // Refinement of q(z|x) before the draws (Model::refine_posterior) is the CPU engine's only.
    void score(const float* params, const float* X, int64_t n_rows, int K, bool importance, uint64_t seed,
               double* out, const std::function<bool()>& interrupted, const Refinement& refine = {});

    bool graph_in_use() const { return graph_exec_ != nullptr; }

    // Rows per inference chunk: the S draws of each row are decoded together.
    // Larger than Model::chunk_rows: a GPU wants wide products.
    static int chunk_rows(int samples);

   private:
    int device_ = 0;
    // Declared so that they are destroyed in this order: the cuBLAS handle, its
    // workspace, then the stream it runs on (members go in reverse order).
    Owned<cudaStream_t, cudaStreamDestroy> stream_;
    DeviceArray<char> blas_workspace_;
    Owned<cublasHandle_t, cublasDestroy> blas_;
    std::mutex mutex_;

    DeviceArray<float> params_, grad_, m_, v_;  // (P)
    DeviceArray<uint8_t> decay_;                // (P) 1 on weight matrices
    DeviceArray<StepState> state_;              // (1)
    DeviceArray<float> data_;                   // (n_data, D) bound training data
    int64_t n_data_ = 0;
    const float* data_host_ = nullptr;
    uint64_t data_fingerprint_ = 0;
    DeviceArray<int64_t> order_;                // (n_rows) the epoch's shuffled rows
    DeviceWorkspace ws_;                        // training and loss_and_grad
    DeviceWorkspace infer_;                     // inference, so that it never moves the training buffers

    cudaGraphExec_t graph_exec_ = nullptr;
    struct GraphKey {
        int N = 0;
        const void *data = nullptr, *order = nullptr;
        uint64_t generation = 0;
        bool operator==(const GraphKey& o) const {
            return N == o.N && data == o.data && order == o.order && generation == o.generation;
        }
    } graph_key_;

    void activate() const;
    void sync() const;
    template <class T>
    void upload(T* dst, const T* src, int64_t n) const;
    template <class T>
    void download(T* dst, const T* src, int64_t n) const;
    void upload_params(const float* params);

    // The outputs of `layers` into `outs` from inp (N, first layer's width), as Model::mlp_forward.
    const float* mlp_forward(const std::vector<Dense>& layers, std::vector<DeviceArray<float>>& outs,
                             const float* inp, int N);
    const float* encoder_forward(const float* x, int N, DeviceWorkspace& ws);
    const float* decoder_forward(const float* z, int M, DeviceWorkspace& ws);
    void decoder_backward(const float* z, int M, float* d_out, float* dz, DeviceWorkspace& ws);
    void encoder_backward(const float* x, int N, DeviceWorkspace& ws);
    // ws.kl (S*N), and ws.kl_analytic (N) with the analytic KL, as Model::kl_forward.
    void kl_forward(const float* head, int N, int S, DeviceWorkspace& ws);
    // ws.d_head (N, 2Z) from the KL's gradient, then the pathwise chain through dz
    // (S, N, Z) or the score-function estimator, as Model::posterior_backward.
    void posterior_backward(const float* head, float* dz, int N, int S, DeviceWorkspace& ws);
    // The body of loss_and_grad on ws_'s x_obs, x_enc and noise: writes grad_,
    // ws_.recon, kl, kl_analytic; the baseline is read from state_.
    void forward_backward(const float* x_obs, const float* x_enc, int N);
    void enqueue_train_step(int N);
    void launch_train_step(int N);
    void drop_graph();
    // The front of an inference call, under the caller's lock: the device, infer_ sized for
    // chunks of rows with `samples` draws each, the parameters uploaded. Returns the rows per chunk.
    int prepare_inference(const float* params, int64_t n_rows, int samples);
    // decode (seed null) or sample_observations (draws keyed by *seed) over Zs (n_rows, Z) into out (n_rows, D).
    void decode_chunks(const float* params, const float* Zs, int64_t n_rows, const uint64_t* seed, float* out);
    // The shared front of score and sample_posterior: keys, noise, encoder, z for x (N, D) on the device.
    const float* posterior_draws(const float* x, int N, int S, uint64_t seed, DeviceWorkspace& ws);
};

template <class T>
void ModelCuda::upload(T* dst, const T* src, int64_t n) const {
    if (n > 0) PYVAE_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(T) * size_t(n), cudaMemcpyHostToDevice, stream_));
}
template <class T>
void ModelCuda::download(T* dst, const T* src, int64_t n) const {
    if (n > 0) PYVAE_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(T) * size_t(n), cudaMemcpyDeviceToHost, stream_));
}

}  // namespace pyvae
