// ModelCuda: the orchestration of model.h's Model<float>, line for line, with the
// `_cuda` kernels. See model_cuda.h.
#include "model_cuda.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace pyvae {

namespace {

bool graphs_enabled_by_env() {
    const char* v = std::getenv("PYVAE_CUDA_GRAPHS");
    return !(v && std::string(v) == "0");
}

}  // namespace

void DeviceWorkspace::reserve(const Config& c, const Layout& L, int rows, int samples, cudaStream_t stream) {
    if (rows <= capacity && samples == S) return;
    capacity = std::max(rows, samples == S ? capacity : 0);
    S = samples;
    ++generation;
    const int64_t N = capacity, SN = int64_t(S) * capacity, D = c.n_features, Z = c.n_components;
    enc_out.resize(L.encoder.size());
    for (size_t l = 0; l < L.encoder.size(); ++l) enc_out[l].reserve(N * L.encoder[l].n_out);
    dec_out.resize(L.decoder.size());
    int64_t widest = 2 * Z;
    for (size_t l = 0; l < L.decoder.size(); ++l) {
        dec_out[l].reserve(SN * L.decoder[l].n_out);
        widest = std::max<int64_t>(widest, L.decoder[l].n_out);
    }
    for (const Dense& d : L.encoder) widest = std::max<int64_t>(widest, d.n_out);
    x_obs.reserve(N * D);
    x_enc.reserve(N * D);
    noise.reserve(SN * Z);
    eps.reserve(SN * Z);
    z.reserve(SN * Z);
    dz.reserve(SN * Z);
    d_a.reserve(SN * widest);
    d_b.reserve(SN * widest);
    d_head.reserve(N * 2 * Z);
    if (is_gaussian(c.likelihood)) lv_terms.reserve(SN * D);
    column.reserve(D);
    if (ones.reserve(std::max(SN, N))) fill_cuda(stream, ones.get(), 1.f, ones.size());
    recon.reserve(SN);
    kl.reserve(SN);
    kl_analytic.reserve(N);
    scores.reserve(N);
    keys.reserve(N);
}

ModelCuda::ModelCuda(const Config& c, int device) : config(c), layout(make_layout(c)), device_(device) {
    if (c.likelihood == Likelihood::gaussian_heteroscedastic)
        throw std::invalid_argument("the CUDA engine has no likelihood='gaussian_heteroscedastic'; use the CPU engine");
    int count = 0;
    PYVAE_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (device < 0 || device >= count)
        throw std::invalid_argument("CUDA device " + std::to_string(device) + " does not exist (" +
                                    std::to_string(count) + " found)");
    use_graphs = graphs_enabled_by_env();
    activate();
    cudaStream_t stream = nullptr;
    PYVAE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    stream_.adopt(stream);
    cublasHandle_t blas = nullptr;
    PYVAE_CUBLAS_CHECK(cublasCreate(&blas));
    blas_.adopt(blas);
    PYVAE_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    // Full FP32 products (no TF32), results that repeat bit for bit (no atomics),
    // and a workspace of our own so that the step can be captured in a graph.
    PYVAE_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
    PYVAE_CUBLAS_CHECK(cublasSetAtomicsMode(blas_, CUBLAS_ATOMICS_NOT_ALLOWED));
    const int64_t workspace_bytes = 32 << 20;
    blas_workspace_.reserve(workspace_bytes);
    PYVAE_CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_workspace_.get(), size_t(workspace_bytes)));

    const int64_t P = n_params();
    params_.reserve(P);
    grad_.reserve(P);
    m_.reserve(P);
    v_.reserve(P);
    decay_.reserve(P);
    state_.reserve(1);
    std::vector<uint8_t> decay(size_t(P), 0);
    for (const auto* layers : {&layout.encoder, &layout.decoder})
        for (const Dense& d : *layers) std::fill(decay.begin() + d.w, decay.begin() + d.b, uint8_t(1));
    upload(decay_.get(), decay.data(), P);
    sync();
}

ModelCuda::~ModelCuda() {
    cudaSetDevice(device_);
    if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
    // The members release the rest, the cuBLAS handle and the stream included.
}

int ModelCuda::chunk_rows(int samples) { return std::max(1, 16384 / std::max(1, samples)); }

void ModelCuda::activate() const { PYVAE_CUDA_CHECK(cudaSetDevice(device_)); }
void ModelCuda::sync() const { PYVAE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }


void ModelCuda::upload_params(const float* params) { upload(params_.get(), params, n_params()); }

void ModelCuda::init_params(float* params, uint64_t seed) const { Model<float>(config).init_params(params, seed); }

// ---- the pass ------------------------------------------------------------------------

const float* ModelCuda::mlp_forward(const std::vector<Dense>& layers, std::vector<DeviceArray<float>>& outs,
                                    const float* inp, int N) {
    for (size_t l = 0; l < layers.size(); ++l) {
        const Dense& d = layers[l];
        dense_forward_cuda(blas_, stream_, outs[l].get(), inp, params_.get() + d.w, params_.get() + d.b, N, d.n_in,
                           d.n_out, l + 1 < layers.size(), config.activation);
        inp = outs[l].get();
    }
    return inp;
}

const float* ModelCuda::encoder_forward(const float* x, int N, DeviceWorkspace& ws) {
    const float* head = mlp_forward(layout.encoder, ws.enc_out, x, N);
    logvar_clamp_forward_cuda(stream_, ws.enc_out.back().get(), N, config.n_components);
    return head;
}

const float* ModelCuda::decoder_forward(const float* z, int M, DeviceWorkspace& ws) {
    return mlp_forward(layout.decoder, ws.dec_out, z, M);
}

void ModelCuda::decoder_backward(const float* z, int M, float* d_out, float* dz, DeviceWorkspace& ws) {
    float* d = d_out;
    float* spare = (d_out == ws.d_a.get()) ? ws.d_b.get() : ws.d_a.get();
    for (int l = int(layout.decoder.size()) - 1; l >= 0; --l) {
        const Dense& L = layout.decoder[l];
        const float* inp = l > 0 ? ws.dec_out[l - 1].get() : z;
        float* d_inp = l > 0 ? spare : dz;
        dense_backward_cuda(blas_, stream_, d_inp, grad_.get() + L.w, grad_.get() + L.b, d, inp, params_.get() + L.w,
                            ws.ones.get(), M, L.n_in, L.n_out, /*inp_act=*/l > 0, config.activation);
        std::swap(d, spare);
    }
}

void ModelCuda::encoder_backward(const float* x, int N, DeviceWorkspace& ws) {
    float* d = ws.d_head.get();
    logvar_clamp_backward_cuda(stream_, d, ws.enc_out.back().get(), N, config.n_components);
    float* next = ws.d_a.get();
    for (int l = int(layout.encoder.size()) - 1; l >= 0; --l) {
        const Dense& L = layout.encoder[l];
        const float* inp = l > 0 ? ws.enc_out[l - 1].get() : x;
        float* d_inp = l > 0 ? next : nullptr;  // the data needs no gradient
        dense_backward_cuda(blas_, stream_, d_inp, grad_.get() + L.w, grad_.get() + L.b, d, inp, params_.get() + L.w,
                            ws.ones.get(), N, L.n_in, L.n_out, /*inp_act=*/l > 0, config.activation);
        next = (d == ws.d_head.get()) ? ws.d_b.get() : d;
        d = d_inp;
    }
}

void ModelCuda::kl_forward(const float* head, int N, int S, DeviceWorkspace& ws) {
    const int Z = config.n_components;
    if (config.kl == KLMode::analytic) kl_analytic_forward_cuda(stream_, ws.kl_analytic.get(), head, N, Z);
    kl_mc_forward_cuda(stream_, ws.kl.get(), head, ws.eps.get(), ws.z.get(), N, S, Z, config.posterior);
}

void ModelCuda::posterior_backward(const float* head, float* dz, int N, int S, DeviceWorkspace& ws) {
    const int Z = config.n_components;
    const float beta = float(config.beta), w_row = 1.f / float(N), w_draw = elbo_draw_weight<float>(N, S);
    const bool mc = config.kl == KLMode::mc;  // (the ELBO only: no IWAE training here)
    const bool pathwise = config.estimator == Estimator::reparameterization;
    float* d_head = ws.d_head.get();
    if (mc) kl_mc_backward_cuda(stream_, d_head, dz, ws.z.get(), N, S, Z, beta, w_row, w_draw, pathwise);
    else kl_analytic_backward_cuda(stream_, d_head, head, N, Z, beta, w_row);
    if (pathwise) reparameterize_backward_cuda(stream_, d_head, dz, head, ws.eps.get(), N, S, Z);
    else score_function_backward_cuda(stream_, d_head, head, ws.eps.get(), ws.recon.get(), ws.kl.get(), N, S, Z,
                                      config.posterior, mc, beta, w_draw, &state_.get()->baseline);
}

void ModelCuda::forward_backward(const float* x_obs, const float* x_enc, int N) {
    const int S = config.n_mc_samples, Z = config.n_components;
    DeviceWorkspace& ws = ws_;
    PYVAE_CUDA_CHECK(cudaMemsetAsync(grad_.get(), 0, sizeof(float) * size_t(n_params()), stream_));
    const float* head = encoder_forward(x_enc, N, ws);
    reparameterize_forward_cuda(stream_, ws.eps.get(), ws.z.get(), head, ws.noise.get(), N, S, Z, config.posterior);
    const float* out = decoder_forward(ws.z.get(), S * N, ws);
    const float w_draw = elbo_draw_weight<float>(N, S);
    float* d_out = ws.d_a.get();
    likelihood_forward_backward_cuda(blas_, stream_, config, params_.get() + layout.noise_logvar, out, x_obs, N, S,
                                     ws.recon.get(), w_draw, d_out, grad_.get() + layout.noise_logvar,
                                     ws.logvar_scratch());
    kl_forward(head, N, S, ws);
    const bool pathwise = config.estimator == Estimator::reparameterization;
    float* dz = pathwise ? ws.dz.get() : nullptr;  // the score-function estimator needs none
    decoder_backward(ws.z.get(), S * N, d_out, dz, ws);
    posterior_backward(head, dz, N, S, ws);
    encoder_backward(x_enc, N, ws);
}

double ModelCuda::loss_and_grad(const float* params, float* grad, const float* x_obs, const float* x_enc,
                                const float* noise, int N, double baseline, std::vector<double>& recon,
                                std::vector<double>& kl, std::vector<double>& kl_analytic, double* mean_f) {
    std::lock_guard<std::mutex> lock(mutex_);
    activate();
    const int S = config.n_mc_samples, Z = config.n_components, D = config.n_features;
    const int64_t SN = int64_t(S) * N;
    if (N < 1) throw std::invalid_argument("loss_and_grad needs at least one row");
    ws_.reserve(config, layout, N, S, stream_);
    upload_params(params);
    upload(ws_.x_obs.get(), x_obs, int64_t(N) * D);
    upload(ws_.x_enc.get(), x_enc, int64_t(N) * D);
    upload(ws_.noise.get(), noise, SN * Z);
    StepState st;
    st.baseline = baseline;
    upload(state_.get(), &st, 1);
    forward_backward(ws_.x_obs.get(), ws_.x_enc.get(), N);
    batch_stats_cuda(stream_, ws_.recon.get(), ws_.kl.get(), ws_.kl_analytic.get(), N, S, config.kl == KLMode::mc,
                     config.beta, state_.get(), false);
    recon.resize(size_t(SN));
    kl.resize(size_t(SN));
    kl_analytic.assign(size_t(N), 0.0);
    download(grad, grad_.get(), n_params());
    download(recon.data(), ws_.recon.get(), SN);
    download(kl.data(), ws_.kl.get(), SN);
    if (config.kl == KLMode::analytic) download(kl_analytic.data(), ws_.kl_analytic.get(), N);
    download(&st, state_.get(), 1);
    sync();
    if (mean_f) *mean_f = st.mean_f;
    return st.loss;
}

void ModelCuda::adam_update(float* params, const float* grad, float* m, float* v, int64_t step,
                            const AdamSettings& a) {
    std::lock_guard<std::mutex> lock(mutex_);
    activate();
    const int64_t P = n_params();
    StepState st;
    st.step = step;
    st.adam = a;
    st.adam_step = adam_step<float>(a, step);
    upload(state_.get(), &st, 1);
    upload_params(params);
    upload(grad_.get(), grad, P);
    upload(m_.get(), m, P);
    upload(v_.get(), v, P);
    adam_update_cuda(stream_, params_.get(), grad_.get(), m_.get(), v_.get(), decay_.get(), P, state_.get());
    download(params, params_.get(), P);
    download(m, m_.get(), P);
    download(v, v_.get(), P);
    sync();
}

// ---- data ----------------------------------------------------------------------------

uint64_t ModelCuda::fingerprint(const float* X, int64_t n_rows, int D) {
    // 16 rows spread over the data (the first and the last included) and the shape.
    uint64_t h = combine_keys(uint64_t(n_rows), uint64_t(D));
    const int64_t picks = std::min<int64_t>(16, n_rows);
    for (int64_t p = 0; p < picks; ++p) {
        const int64_t row = picks == 1 ? 0 : p * (n_rows - 1) / (picks - 1);
        h = combine_keys(h, hash_bytes(X + row * D, sizeof(float) * size_t(D)));
    }
    return h;
}

bool ModelCuda::is_bound(const float* X, int64_t n_rows) const {
    return data_.get() && data_host_ == X && n_data_ == n_rows &&
           data_fingerprint_ == fingerprint(X, n_rows, config.n_features);
}

void ModelCuda::bind_data(const float* X, int64_t n_rows) {
    std::lock_guard<std::mutex> lock(mutex_);
    activate();
    const int64_t n = n_rows * config.n_features;
    if (data_.size() < n) {
        data_.release();
        data_.reserve(n);
    }
    upload(data_.get(), X, n);
    sync();
    data_host_ = X;
    n_data_ = n_rows;
    data_fingerprint_ = fingerprint(X, n_rows, config.n_features);
}

void ModelCuda::release_data() {
    std::lock_guard<std::mutex> lock(mutex_);
    activate();
    drop_graph();
    data_.release();
    order_.release();
    data_host_ = nullptr;
    n_data_ = 0;
    data_fingerprint_ = 0;
}

// ---- training --------------------------------------------------------------------------

void ModelCuda::enqueue_train_step(int N) {
    const int S = config.n_mc_samples, Z = config.n_components, D = config.n_features;
    DeviceWorkspace& ws = ws_;
    gather_rows_cuda(stream_, ws.x_obs.get(), ws.x_enc.get(), data_.get(), order_.get(), state_.get(), N, D,
                     config.missing);
    train_keys_cuda(stream_, ws.keys.get(), state_.get(), N);
    fill_noise_cuda(stream_, ws.noise.get(), ws.keys.get(), N, S, Z, base_noise_is_uniform(config.posterior));
    const float* x_enc = config.missing ? ws.x_enc.get() : ws.x_obs.get();
    forward_backward(ws.x_obs.get(), x_enc, N);
    batch_stats_cuda(stream_, ws.recon.get(), ws.kl.get(), ws.kl_analytic.get(), N, S, config.kl == KLMode::mc,
                     config.beta, state_.get(), true);
    adam_update_cuda(stream_, params_.get(), grad_.get(), m_.get(), v_.get(), decay_.get(), n_params(),
                     state_.get());
}

void ModelCuda::drop_graph() {
    if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
    graph_exec_ = nullptr;
    graph_key_ = GraphKey{};
}

// A full batch: the captured graph of the step when possible (one launch instead
// of ~30), else the kernels one by one. A failed capture turns graphs off.
void ModelCuda::launch_train_step(int N) {
    if (use_graphs) {
        const GraphKey key{N, data_.get(), order_.get(), ws_.generation};
        if (!graph_exec_ || !(key == graph_key_)) {
            drop_graph();
            cudaGraph_t graph = nullptr;
            bool ok = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
            if (ok) {
                try {
                    enqueue_train_step(N);
                } catch (const std::exception&) {
                    ok = false;
                }
                ok = (cudaStreamEndCapture(stream_, &graph) == cudaSuccess) && ok && graph;
            }
            if (ok) ok = cudaGraphInstantiate(&graph_exec_, graph, 0) == cudaSuccess;
            if (graph) cudaGraphDestroy(graph);
            if (!ok) {
                (void)cudaGetLastError();  // clear the capture's error
                graph_exec_ = nullptr;
                use_graphs = false;
            } else {
                graph_key_ = key;
            }
        }
        if (graph_exec_) {
            PYVAE_CUDA_CHECK(cudaGraphLaunch(graph_exec_, stream_));
            return;
        }
    }
    enqueue_train_step(N);
}

EpochResult ModelCuda::train_epoch(float* params, float* m, float* v, int64_t* step, double* baseline,
                                   const int64_t* rows, int64_t n_rows, int batch_size, uint64_t seed,
                                   const AdamSettings& adam, const std::function<bool()>& interrupted) {
    std::lock_guard<std::mutex> lock(mutex_);
    activate();
    EpochResult res;
    if (!data_.get()) throw std::logic_error("train_epoch: no data bound to the device");
    if (n_rows <= 0) return res;
    // The same shuffle as Model::train_epoch.
    std::vector<int64_t> order(rows, rows + n_rows);
    shuffle_rows(order.data(), n_rows, seed, *step);
    for (int64_t r : order)
        if (r < 0 || r >= n_data_) throw std::out_of_range("row index out of range");
    const int B = int(std::min<int64_t>(batch_size, n_rows));
    ws_.reserve(config, layout, B, config.n_mc_samples, stream_);
    order_.reserve(n_rows);
    upload(order_.get(), order.data(), n_rows);
    const int64_t P = n_params();
    upload_params(params);
    upload(m_.get(), m, P);
    upload(v_.get(), v, P);
    StepState st;
    st.seed = seed;
    st.step = *step;
    st.baseline = *baseline;
    st.adam = adam;
    upload(state_.get(), &st, 1);

    bool stopped = false;
    for (int64_t start = 0; start < n_rows; start += B) {
        const int N = int(std::min<int64_t>(B, n_rows - start));
        if (N == B) launch_train_step(N);
        else enqueue_train_step(N);
        // The host runs ahead of the device; Ctrl-C stops queueing, and the
        // steps already queued finish, so the parameters stay consistent.
        if (interrupted && interrupted()) {
            stopped = true;
            break;
        }
    }
    download(&st, state_.get(), 1);
    download(params, params_.get(), P);
    download(m, m_.get(), P);
    download(v, v_.get(), P);
    sync();
    *step = st.step;
    *baseline = st.baseline;
    res.elbo = st.epoch_elbo;
    res.recon = st.epoch_recon;
    res.kl = st.epoch_kl;
    res.n_rows = st.epoch_rows;
    res.status = st.non_finite ? EpochStatus::non_finite : (stopped ? EpochStatus::interrupted : EpochStatus::ok);
    return res;
}

}  // namespace pyvae
